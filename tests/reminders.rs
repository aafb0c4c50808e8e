//! The pushback sequence on a test clock: a Maildir, the real store and pipeline, the reminder
//! task under `tokio::time::pause()` with a wall clock the test moves by hand (a laptop that
//! sleeps moves the wall clock without moving tokio's timers). Deterministic: nothing here reads
//! the real time.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use mail_parser::MimeHeaders;
use pushback::adapters::store::{ApprovedVia, ReminderKind, ReminderStatus, Store};
use pushback::app::pipeline::SharedPipeline;
use pushback::app::reminders::{self, Clock, ReminderDesk};
use pushback::app::{Session, outbox};
use pushback::config::Config;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};

const REP: &str = "alex@northwind.example";
const BUYER: &str = "dana@purchasing.springfield.example.gov";

/// A wall clock the test sets.
struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn at(t: DateTime<Utc>) -> Arc<TestClock> {
        Arc::new(TestClock(Mutex::new(t)))
    }

    fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

struct Sandbox {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: Config,
}

impl Sandbox {
    fn new(timezone: &str, holidays: &[&str]) -> Sandbox {
        Sandbox::with(timezone, holidays, "", &[])
    }

    /// With `extra` config sections appended (`{root}` stands for the sandbox's directory) and
    /// `files` (name, text) written into it first.
    fn with(timezone: &str, holidays: &[&str], extra: &str, files: &[(&str, &str)]) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        for (name, text) in files {
            std::fs::write(root.join(name), text).unwrap();
        }
        let maildir = root.join("Maildir");
        pushback::adapters::maildir::Maildir::create(&maildir).unwrap();
        let holidays: Vec<String> = holidays.iter().map(|d| format!("\"{d}\"")).collect();
        let text = format!(
            r#"version = 1
[identity]
name = "Alex Rivera"
email = "{REP}"
title = "Account Executive"
company = "Northwind Analytics"
timezone = "{timezone}"

[mailbox]
kind = "maildir"
path = "{maildir}"

[state]
path = "{state}"

[business]
holidays = [{holidays}]

[follow-up]
at = "0 9 * * 1-5"
after-business-days = 3
max-follow-ups = 2

[reminders]
before-cutoff-business-days = 2
feed = "{feed}"
{extra}"#,
            maildir = maildir.display(),
            state = root.join("state").display(),
            holidays = holidays.join(", "),
            feed = root.join("reminders.ics").display(),
        );
        let path = root.join("config.toml");
        std::fs::write(&path, text.replace("{root}", &root.display().to_string())).unwrap();
        let config = Config::load(&path).unwrap();
        Sandbox {
            _dir: dir,
            root,
            config,
        }
    }

    fn maildir(&self) -> PathBuf {
        self.root.join("Maildir")
    }

    /// Puts a message in the inbox's new/ the way a delivery agent would.
    fn deliver(&self, name: &str, raw: &str) {
        let path = self.maildir().join("new").join(name);
        std::fs::write(path, raw.replace('\n', "\r\n")).unwrap();
    }

    fn session(&self) -> Session {
        Session::open(&self.config).unwrap()
    }

    fn store(&self) -> Store {
        Store::open(&self.config.state_dir).unwrap()
    }

    /// The pipeline a running service would hand the reminder task.
    fn pipeline(&self) -> SharedPipeline {
        let pipeline = pushback::app::trained_pipeline(&self.config, &self.store()).unwrap();
        watch::channel(Arc::new(pipeline)).1
    }

    /// Scans at `now` and returns the drafts made.
    fn scan(&self, now: DateTime<Utc>) -> Vec<i64> {
        let report = self.session().scan(now).unwrap();
        assert!(report.deferred.is_empty(), "{:?}", report.deferred);
        report.findings.iter().filter_map(|f| f.draft_id).collect()
    }

    /// The rep approves draft `id` at `now`; the local transport files it as sent.
    fn approve_and_send(&self, id: i64, now: DateTime<Utc>) {
        let mut session = self.session();
        session
            .store
            .approve(id, ApprovedVia::Cli, &[], now)
            .unwrap();
        let sent = outbox::flush(&session.maildir, &mut session.store, now).unwrap();
        assert_eq!(sent, [id]);
    }

    /// pushback's notices in the inbox (unread, flagged).
    fn notices(&self) -> Vec<String> {
        let mut found: Vec<String> = std::fs::read_dir(self.maildir().join("cur"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with("pushback-reminder."))
            .collect();
        found.sort();
        found
    }

    fn follow_ups(&self) -> Vec<pushback::adapters::store::Reminder> {
        self.store()
            .reminders(false)
            .unwrap()
            .into_iter()
            .filter(|r| r.kind == ReminderKind::FollowUp)
            .collect()
    }
}

fn local(tz: &str, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    let tz: Tz = tz.parse().unwrap();
    tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn show(t: DateTime<Utc>, tz: &str) -> String {
    let tz: Tz = tz.parse().unwrap();
    t.with_timezone(&tz)
        .format("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}

const RFP_ID: &str = "rfp-14@purchasing.springfield.example.gov";

fn rfp() -> String {
    format!(
        "From: Dana Whitfield <{BUYER}>
To: {REP}
Subject: Request for Proposal RFP #2027-014 - Fleet Telematics
Date: Mon, 1 Mar 2027 08:14:00 +0100
Message-ID: <{RFP_ID}>

Dear Supplier,

The City of Springfield is soliciting proposals under RFP #2027-014.
Proposals are due March 29, 2027 at 5:00 PM CET. Questions must be submitted
in writing no later than March 12, 2027 at 12:00 CET.

Dana Whitfield
Senior Procurement Officer
"
    )
}

/// A message from `from` answering `in_reply_to` (one of our Message-IDs).
fn answer(from: &str, in_reply_to: &str, date: &str, body: &str) -> String {
    format!(
        "From: {from}
To: {REP}
Subject: Re: Request for Proposal RFP #2027-014 - Fleet Telematics
Date: {date}
Message-ID: <answer-{n}@example.test>
In-Reply-To: <{in_reply_to}>
References: <{RFP_ID}> <{in_reply_to}>

{body}
",
        n = in_reply_to.len() + body.len()
    )
}

/// Lets the spawned task run until it is asleep again.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// The scanned RFP's pushback, approved and sent at `sent`; returns its draft id.
fn sent_pushback(sandbox: &Sandbox, scanned: DateTime<Utc>, sent: DateTime<Utc>) -> i64 {
    sandbox.deliver("1.rfp", &rfp());
    let drafts = sandbox.scan(scanned);
    assert_eq!(drafts.len(), 1, "the RFP gets one draft");
    sandbox.approve_and_send(drafts[0], sent);
    drafts[0]
}

#[tokio::test(start_paused = true)]
async fn the_whole_sequence_on_a_test_clock() {
    let tz = "Europe/Berlin";
    let sandbox = Sandbox::new(tz, &[]);
    let monday = local(tz, 2027, 3, 1, 10, 0);
    let pushback = sent_pushback(&sandbox, monday, monday);

    // The RFP's dates became reminders when it was scanned: questions 2 business days ahead at
    // the 09:00 firing, submission 3 ahead.
    let deadlines: Vec<(ReminderKind, String)> = sandbox
        .store()
        .reminders(true)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind != ReminderKind::FollowUp)
        .map(|r| (r.kind, show(r.due_at.unwrap(), tz)))
        .collect();
    assert_eq!(
        deadlines,
        [
            (ReminderKind::Questions, "Wed 2027-03-10 09:00 CET".into()),
            (ReminderKind::Submission, "Wed 2027-03-24 09:00 CET".into()),
        ]
    );

    let clock = TestClock::at(monday);
    let (stop, shutdown) = watch::channel(false);
    let wake = Arc::new(Notify::new());
    let task = tokio::spawn(reminders::run(
        sandbox.config.clone(),
        clock.clone(),
        sandbox.pipeline(),
        wake.clone(),
        shutdown,
    ));
    settle().await;
    // The first round planned follow-up 1: Monday 10:00 + 3 business days = Thursday 10:00,
    // at the next 09:00 firing: Friday.
    let planned = sandbox.follow_ups();
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0].number, 1);
    assert_eq!(planned[0].status, ReminderStatus::Scheduled);
    assert_eq!(planned[0].after_draft, Some(pushback));
    assert_eq!(
        show(planned[0].due_at.unwrap(), tz),
        "Fri 2027-03-05 09:00 CET"
    );
    assert!(sandbox.notices().is_empty());

    // Friday 09:00:30 on the wall clock; tokio wakes the task within its one-minute cap.
    clock.set(local(tz, 2027, 3, 5, 9, 0) + chrono::Duration::seconds(30));
    tokio::time::advance(reminders::MAX_SLEEP).await;
    settle().await;
    let fired = &sandbox.follow_ups()[0];
    assert_eq!(fired.status, ReminderStatus::Fired);
    let follow_up = fired
        .prepared_draft
        .expect("a follow-up draft was prepared");
    let draft = sandbox.store().draft(follow_up).unwrap().unwrap();
    assert_eq!(draft.follow_up, 1);
    assert_eq!(
        draft.status.as_str(),
        "pending",
        "nothing is sent without approval"
    );
    assert_eq!(sandbox.notices().len(), 1, "one notice in the inbox");
    assert!(sandbox.notices()[0].ends_with(":2,F"), "unread and flagged");

    // Minutes pass: nothing fires twice.
    for _ in 0..5 {
        clock.set(clock.now() + chrono::Duration::minutes(1));
        tokio::time::advance(reminders::MAX_SLEEP).await;
        settle().await;
    }
    assert_eq!(sandbox.notices().len(), 1);
    assert_eq!(sandbox.follow_ups().len(), 1);

    // The rep sends the follow-up on Friday; follow-up 2 is planned for the next Thursday.
    let friday = clock.now();
    sandbox.approve_and_send(follow_up, friday);
    wake.notify_one();
    settle().await;
    let second = sandbox
        .follow_ups()
        .into_iter()
        .find(|r| r.number == 2)
        .expect("follow-up 2 planned");
    assert_eq!(show(second.due_at.unwrap(), tz), "Thu 2027-03-11 09:00 CET");

    // The buyer answers the follow-up: the sequence ends.
    sandbox.deliver(
        "2.answer",
        &answer(
            &format!("Dana Whitfield <{BUYER}>"),
            &draft.message_id,
            "Mon, 8 Mar 2027 11:00:00 +0100",
            "Happy to set up a call with our fleet manager. Does Tuesday work?",
        ),
    );
    sandbox.scan(local(tz, 2027, 3, 8, 11, 5));
    let second = sandbox
        .follow_ups()
        .into_iter()
        .find(|r| r.number == 2)
        .unwrap();
    assert_eq!(second.status, ReminderStatus::Cancelled);
    assert!(
        second
            .closed_why
            .as_deref()
            .unwrap()
            .contains("agreed to call"),
        "{:?}",
        second.closed_why
    );
    clock.set(local(tz, 2027, 3, 12, 9, 0));
    tokio::time::advance(reminders::MAX_SLEEP).await;
    settle().await;
    assert_eq!(
        sandbox.follow_ups().len(),
        2,
        "no follow-up after an answer"
    );

    let _ = stop.send(true);
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_laptop_that_slept_fires_missed_reminders_once() {
    let tz = "America/New_York";
    let sandbox = Sandbox::new(tz, &[]);
    let monday = local(tz, 2027, 3, 1, 10, 0);
    sent_pushback(&sandbox, monday, monday);
    let clock = TestClock::at(monday);
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(reminders::run(
        sandbox.config.clone(),
        clock.clone(),
        sandbox.pipeline(),
        Arc::new(Notify::new()),
        shutdown,
    ));
    settle().await;
    assert_eq!(sandbox.follow_ups().len(), 1);
    // The lid closes on Monday and opens on Saturday: only a minute passed for tokio.
    clock.set(local(tz, 2027, 3, 6, 8, 0));
    tokio::time::advance(Duration::from_secs(61)).await;
    settle().await;
    assert_eq!(sandbox.follow_ups()[0].status, ReminderStatus::Fired);
    assert_eq!(sandbox.notices().len(), 1);
    tokio::time::advance(Duration::from_secs(600)).await;
    settle().await;
    assert_eq!(sandbox.notices().len(), 1);
    let _ = stop.send(true);
    task.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_restart_fires_due_reminders_once() {
    let tz = "Europe/Berlin";
    let sandbox = Sandbox::new(tz, &[]);
    let monday = local(tz, 2027, 3, 1, 10, 0);
    sent_pushback(&sandbox, monday, monday);
    let mut desk = ReminderDesk::open(&sandbox.config).unwrap();
    assert_eq!(desk.round(monday).await.unwrap().planned, 1);
    drop(desk);
    // Down from Monday to the Monday after: the follow-up (Friday) and the questions reminder
    // (Wednesday 10th) are not due yet, then both are.
    let later = local(tz, 2027, 3, 10, 9, 30);
    let first = ReminderDesk::open(&sandbox.config)
        .unwrap()
        .round(later)
        .await
        .unwrap();
    assert_eq!(first.fired.len(), 2, "{first:?}");
    let again = ReminderDesk::open(&sandbox.config)
        .unwrap()
        .round(later)
        .await
        .unwrap();
    assert!(again.fired.is_empty(), "{again:?}");
    assert_eq!(sandbox.notices().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn our_own_sent_copy_in_the_thread_is_not_the_buyers_answer() {
    let tz = "Europe/Berlin";
    let sandbox = Sandbox::new(tz, &[]);
    let monday = local(tz, 2027, 3, 1, 10, 0);
    let pushback = sent_pushback(&sandbox, monday, monday);
    ReminderDesk::open(&sandbox.config)
        .unwrap()
        .round(monday)
        .await
        .unwrap();
    let ours = sandbox.store().draft(pushback).unwrap().unwrap();
    // The rep's own copy (Bcc to self, another device) lands in the inbox.
    sandbox.deliver(
        "2.own",
        &answer(
            &format!("Alex Rivera <{REP}>"),
            &ours.message_id,
            "Mon, 1 Mar 2027 10:01:00 +0100",
            "Thanks, happy to talk first.",
        ),
    );
    sandbox.scan(local(tz, 2027, 3, 1, 10, 5));
    assert_eq!(sandbox.follow_ups()[0].status, ReminderStatus::Scheduled);
}

#[tokio::test(start_paused = true)]
async fn out_of_office_moves_the_follow_up_past_the_return() {
    let tz = "Europe/Berlin";
    // Tuesday 16 March is a holiday here: the follow-up after the buyer's return skips it.
    let sandbox = Sandbox::new(tz, &["2027-03-16"]);
    let monday = local(tz, 2027, 3, 1, 10, 0);
    let pushback = sent_pushback(&sandbox, monday, monday);
    ReminderDesk::open(&sandbox.config)
        .unwrap()
        .round(monday)
        .await
        .unwrap();
    let ours = sandbox.store().draft(pushback).unwrap().unwrap();
    sandbox.deliver(
        "2.ooo",
        &answer(
            &format!("Dana Whitfield <{BUYER}>"),
            &ours.message_id,
            "Mon, 1 Mar 2027 10:02:00 +0100",
            "I am out of the office until 15 March 2027 with limited access to email.",
        )
        .replace(
            "Subject: Re:",
            "Auto-Submitted: auto-replied\nSubject: Automatic reply: Re:",
        ),
    );
    sandbox.scan(local(tz, 2027, 3, 1, 10, 5));
    let follow_up = &sandbox.follow_ups()[0];
    assert_eq!(follow_up.status, ReminderStatus::Scheduled, "not cancelled");
    assert_eq!(
        show(follow_up.due_at.unwrap(), tz),
        "Wed 2027-03-17 09:00 CET",
        "back Monday 15th, the 16th is a holiday"
    );
}

#[tokio::test(start_paused = true)]
async fn follow_ups_keep_the_local_morning_across_dst() {
    for (tz, sent, want) in [
        (
            "America/New_York",
            local("America/New_York", 2027, 3, 12, 10, 0),
            "Thu 2027-03-18 09:00 EDT",
        ),
        (
            "Europe/Berlin",
            local("Europe/Berlin", 2027, 3, 26, 10, 0),
            "Thu 2027-04-01 09:00 CEST",
        ),
    ] {
        let sandbox = Sandbox::new(tz, &[]);
        sent_pushback(&sandbox, sent, sent);
        ReminderDesk::open(&sandbox.config)
            .unwrap()
            .round(sent)
            .await
            .unwrap();
        let listed = reminders::list(
            &sandbox.store(),
            &pushback::app::followups::Timekeeping::of(&sandbox.config),
            false,
            true,
        )
        .unwrap();
        let follow_up: serde_json::Value = listed
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["kind"] == "follow_up")
            .unwrap();
        let due: DateTime<Utc> = follow_up["due"].as_str().unwrap().parse().unwrap();
        assert_eq!(show(due, tz), want, "{tz}");
        let local_due = follow_up["local_due"].as_str().unwrap();
        assert!(
            local_due.ends_with(if tz == "Europe/Berlin" {
                "+02:00"
            } else {
                "-04:00"
            }),
            "{local_due}"
        );
        assert_eq!(follow_up["in_reply_to"], RFP_ID);
        assert_eq!(follow_up["status"], "scheduled");
    }
}

#[test]
fn drafts_offer_free_times_from_the_busy_calendar_and_invite_to_the_first() {
    let tz = "Europe/Berlin";
    // The rep is busy on Tuesday morning (an export from their calendar app, Berlin time).
    let busy = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n\
         UID:board@northwind.example\r\nDTSTAMP:20270201T000000Z\r\n\
         DTSTART;TZID=Europe/Berlin:20270302T090000\r\n\
         DTEND;TZID=Europe/Berlin:20270302T120000\r\nSUMMARY:Board\r\nEND:VEVENT\r\n\
         END:VCALENDAR\r\n";
    let sandbox = Sandbox::with(
        tz,
        &[],
        "\n[calendar]\nbusy = [\"{root}/busy.ics\"]\nattach-invite = true\n",
        &[("busy.ics", busy)],
    );
    sandbox.deliver("1.rfp", &rfp());
    let monday = local(tz, 2027, 3, 1, 10, 0);
    let report = pushback::app::scan_once(&sandbox.config, monday).unwrap();
    let id = report.findings[0].draft_id.expect("a draft");
    let draft = sandbox.store().draft(id).unwrap().unwrap();
    assert!(
        draft.body.contains("Tue 2 Mar, 12:00-12:30 CET"),
        "the first free time after the board meeting:\n{}",
        draft.body
    );
    assert!(!draft.body.contains("Tue 2 Mar, 09:00"), "{}", draft.body);
    let message = mail_parser::MessageParser::default()
        .parse(&draft.raw)
        .unwrap();
    let invite = message
        .attachments()
        .find(|a| a.attachment_name() == Some("invite.ics"))
        .expect("the invitation is attached");
    let ics = String::from_utf8_lossy(invite.contents()).replace("\r\n ", "");
    assert!(ics.contains("METHOD:REQUEST"), "{ics}");
    assert!(ics.contains("DTSTART:20270302T110000Z"), "{ics}");
    assert!(ics.contains(BUYER), "{ics}");
}

#[tokio::test(start_paused = true)]
async fn an_answer_withdraws_the_follow_up_draft_it_overtook() {
    let tz = "Europe/Berlin";
    let sandbox = Sandbox::new(tz, &[]);
    let monday = local(tz, 2027, 3, 1, 10, 0);
    let pushback = sent_pushback(&sandbox, monday, monday);
    let friday = local(tz, 2027, 3, 5, 9, 30);
    let mut desk = ReminderDesk::open(&sandbox.config).unwrap();
    desk.round(monday).await.unwrap();
    desk.round(friday).await.unwrap();
    let follow_up = sandbox.follow_ups()[0].prepared_draft.unwrap();
    let drafts_dir = sandbox.maildir().join(".Drafts").join("cur");
    let in_drafts = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&drafts_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let follow_up_file = sandbox
        .store()
        .draft(follow_up)
        .unwrap()
        .unwrap()
        .folder_name;
    assert_eq!(in_drafts().len(), 1, "the follow-up waits in Drafts");
    assert!(in_drafts()[0].starts_with(&follow_up_file));

    let ours = sandbox.store().draft(pushback).unwrap().unwrap();
    sandbox.deliver(
        "2.answer",
        &answer(
            &format!("Dana Whitfield <{BUYER}>"),
            &ours.message_id,
            "Fri, 5 Mar 2027 10:00:00 +0100",
            "We cannot meet before the deadline; please submit through the portal.",
        ),
    );
    sandbox.scan(local(tz, 2027, 3, 5, 10, 5));
    desk.round(local(tz, 2027, 3, 5, 10, 6)).await.unwrap();
    let withdrawn = sandbox.store().draft(follow_up).unwrap().unwrap();
    assert_eq!(withdrawn.status.as_str(), "rejected");
    // The stale follow-up is gone; the buyer's insistence got a pushback draft of its own.
    let left = in_drafts();
    assert!(
        left.iter().all(|name| !name.starts_with(&follow_up_file)),
        "{left:?}"
    );
    assert_eq!(left.len(), 1, "{left:?}");
    let reminder = &sandbox.follow_ups()[0];
    assert_eq!(reminder.status, ReminderStatus::Cancelled);
    assert!(
        reminder
            .closed_why
            .as_deref()
            .unwrap()
            .contains("insisted on process"),
        "{:?}",
        reminder.closed_why
    );
}

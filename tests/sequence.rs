//! The pushback sequence end to end against real servers: Dovecot (the rep's mailbox), the SMTP
//! sink (what leaves) and Radicale (the rep's CalDAV calendar), all started by the harness. The
//! daemon drafts, the rep approves, the reply leaves once, the follow-up and the RFP's dates
//! appear in the calendar, and the buyer's answer appended to the inbox cancels the follow-up.
//! A second thread is followed up on with the reminder desk at a later time: the follow-up draft
//! lands in Drafts and the reminder in the inbox, flagged and unread, each once.

mod support;

use chrono::{Duration as Days, Utc};
use mail_parser::MessageParser;
use pushback::adapters::store::{ReminderKind, ReminderStatus, Store};
use pushback::app::reminders::ReminderDesk;
use pushback::config::Config;
use std::path::Path;
use std::time::Duration;
use support::MailServers;
use support::pushback::{BUYER, Daemon, original_id, pushback_cli, rfp, wait_for, write_config};
use support::radicale::Radicale;

const CALENDAR: &str = "pushback";

/// The harness config with the CalDAV calendar and a feed file added.
fn config(servers: &MailServers, radicale: &Radicale, dir: &Path) -> (std::path::PathBuf, Config) {
    let path = write_config(servers, dir);
    let (user, password) = radicale.user();
    let calendar = format!(
        r#"
[reminders]
feed = "{feed}"

[calendar]
caldav-url = "{url}"
caldav-user = "{user}"
caldav-password-command = "printf %s '{password}'"
caldav-ca-file = "{ca}"
"#,
        feed = dir.join("reminders.ics").display(),
        url = radicale.calendar_url(CALENDAR),
        ca = radicale.ca_file().display(),
    );
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&calendar);
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    (path, config)
}

fn reminders(config: &Config) -> Vec<pushback::adapters::store::Reminder> {
    Store::open(&config.state_dir)
        .unwrap()
        .reminders(false)
        .unwrap()
}

fn follow_up(
    config: &Config,
    thread_original: &str,
) -> Option<pushback::adapters::store::Reminder> {
    reminders(config).into_iter().find(|r| {
        r.kind == ReminderKind::FollowUp && r.in_reply_to.as_deref() == Some(thread_original)
    })
}

/// The calendar items Radicale stores, as text.
fn calendar_items(radicale: &Radicale) -> Vec<String> {
    radicale.stored_texts(CALENDAR)
}

/// Unfolded iCalendar lines (RFC 5545 folds at 75 octets; Radicale rewrites the text).
fn unfolded(ics: &str) -> String {
    ics.replace("\r\n ", "").replace("\n ", "")
}

fn message_id(raw: &[u8]) -> String {
    MessageParser::default()
        .parse(raw)
        .unwrap()
        .message_id()
        .unwrap()
        .to_string()
}

fn answer(in_reply_to: &str, n: u32) -> Vec<u8> {
    format!(
        "From: Dana Whitfield <{BUYER}>\r\nTo: alice@northwind.example\r\n\
         Subject: RE: Request for Proposal RFP #2027-{n:03} - Fleet Telematics\r\n\
         Message-ID: <answer-{n}@purchasing.springfield.example.gov>\r\n\
         In-Reply-To: <{in_reply_to}>\r\nReferences: <{}> <{in_reply_to}>\r\n\r\n\
         Fair point. Let's set up a call with our fleet manager next week.\r\n",
        original_id(n)
    )
    .into_bytes()
}

#[test]
fn a_sent_pushback_is_followed_up_on_the_calendar_and_the_buyers_answer_cancels_it() {
    let servers = MailServers::start();
    let radicale = Radicale::start();
    let dir = tempfile::tempdir().unwrap();
    let (config_path, config) = config(&servers, &radicale, dir.path());
    // `pushback doctor` reaches the calendar too (and creates the collection).
    let doctor = pushback_cli(&config_path, &["doctor", "--json"]);
    let caldav: serde_json::Value = doctor
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|s| s["section"] == "calendar" && s["step"] == "caldav")
        .expect("a CalDAV step");
    assert_eq!(caldav["status"], "ok", "{caldav}");
    assert!(radicale.is_calendar(CALENDAR));
    let daemon = Daemon::start(config.clone());

    servers.deliver(&rfp(21));
    wait_for("the draft", Duration::from_secs(15), || {
        (!servers.folder("Drafts").is_empty()).then_some(())
    });
    pushback_cli(&config_path, &["drafts", "approve", "1"]);
    let sent = wait_for("the send", Duration::from_secs(15), || {
        let received = servers.smtp_received();
        (!received.is_empty()).then_some(received)
    });
    let ours = message_id(&sent[0].raw);

    // The sender wakes the reminder task: the follow-up is planned and, with the RFP's dates,
    // written to the CalDAV calendar (a to-do and events) and the feed.
    let planned = wait_for("the follow-up", Duration::from_secs(15), || {
        follow_up(&config, &original_id(21))
    });
    assert_eq!(planned.status, ReminderStatus::Scheduled);
    let todo_uid = format!("reminder-{}@pushback", planned.id);
    // The daemon's reminder task writes the calendar within its minute.
    let items = wait_for("the calendar items", Duration::from_secs(75), || {
        let items = calendar_items(&radicale);
        items.iter().any(|i| i.contains(&todo_uid)).then_some(items)
    });
    let todo = unfolded(items.iter().find(|i| i.contains(&todo_uid)).unwrap());
    assert!(todo.contains("BEGIN:VTODO"), "{todo}");
    assert!(todo.contains("STATUS:NEEDS-ACTION"), "{todo}");
    let events: Vec<&String> = items
        .iter()
        .filter(|i| i.contains("BEGIN:VEVENT"))
        .collect();
    assert_eq!(
        events.len(),
        2,
        "questions and submission deadlines: {items:#?}"
    );
    assert!(events.iter().all(|e| e.contains("BEGIN:VALARM")));
    let feed = std::fs::read_to_string(dir.path().join("reminders.ics")).unwrap();
    assert!(feed.contains(&todo_uid), "{feed}");

    // The buyer answers our reply: the follow-up is cancelled, in the store and the calendar.
    servers.deliver(&answer(&ours, 21));
    let cancelled = wait_for("the cancellation", Duration::from_secs(20), || {
        follow_up(&config, &original_id(21)).filter(|r| r.status == ReminderStatus::Cancelled)
    });
    assert!(
        cancelled
            .closed_why
            .as_deref()
            .unwrap()
            .contains("agreed to call"),
        "{:?}",
        cancelled.closed_why
    );
    wait_for("the cancelled to-do", Duration::from_secs(20), || {
        calendar_items(&radicale)
            .iter()
            .any(|i| i.contains(&todo_uid) && unfolded(i).contains("STATUS:CANCELLED"))
            .then_some(())
    });
    daemon.stop();
    assert_eq!(
        servers.smtp_received().len(),
        1,
        "one send, nothing else left"
    );

    // A second thread, left unanswered: a week later its follow-up fires once.
    let daemon = Daemon::start(config.clone());
    servers.deliver(&rfp(22));
    wait_for("the second draft", Duration::from_secs(15), || {
        (servers.folder("Drafts").len() == 1).then_some(())
    });
    let drafts = pushback_cli(&config_path, &["drafts", "list", "--json"]);
    let second: serde_json::Value = drafts
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|d| d["status"] == "pending")
        .unwrap();
    let id = second["id"].as_i64().unwrap().to_string();
    pushback_cli(&config_path, &["drafts", "approve", &id]);
    wait_for("the second follow-up", Duration::from_secs(15), || {
        follow_up(&config, &original_id(22))
    });
    daemon.stop();

    let later = Utc::now() + Days::days(10);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Twice, as after a restart: the first round fires it, the second finds nothing left to fire.
    let rounds: Vec<_> = (0..2)
        .map(|_| {
            runtime.block_on(async {
                ReminderDesk::open(&config)
                    .unwrap()
                    .round(later)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let fired = follow_up(&config, &original_id(22)).unwrap();
    assert_eq!(fired.status, ReminderStatus::Fired);
    assert!(rounds[0].fired.contains(&fired.id), "{:?}", rounds[0]);
    assert!(!rounds[1].fired.contains(&fired.id), "{:?}", rounds[1]);
    let drafts = servers.folder("Drafts");
    assert_eq!(drafts.len(), 1, "the follow-up draft, once");
    assert!(drafts[0].has_flag("\\Draft"));
    let follow_up_draft = MessageParser::default().parse(&drafts[0].raw).unwrap();
    assert!(
        follow_up_draft
            .references()
            .as_text_list()
            .unwrap()
            .iter()
            .any(|r| r.contains(&original_id(22))),
        "threaded on the RFP"
    );
    let notices: Vec<_> = servers
        .folder("INBOX")
        .into_iter()
        .filter(|m| String::from_utf8_lossy(&m.raw).contains("X-Pushback-Reminder:"))
        .collect();
    assert_eq!(notices.len(), 1, "one reminder in the inbox");
    assert!(notices[0].has_flag("\\Flagged"));
    assert!(!notices[0].has_flag("\\Seen"));
    assert_eq!(
        servers.smtp_received().len(),
        2,
        "nothing sent without approval"
    );
}

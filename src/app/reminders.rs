//! The reminder task and `pushback reminders`: follow-ups planned after every sent reply, due
//! reminders fired (a follow-up draft prepared for approval, a notice appended to the rep's inbox,
//! the calendar feed and CalDAV calendar brought up to date), and the rep's list, done and snooze.
//!
//! Fired once, never twice: a reminder is claimed (`scheduled -> firing`) in one transaction
//! before anything is delivered, and every delivery is idempotent (the follow-up draft is unique
//! per thread and step, the notice's Message-ID is looked up before appending, a calendar item is
//! PUT under its own name), so finishing a claim a crash interrupted repeats nothing the rep sees.
//!
//! Time: the task reads the wall clock on every wake and sleeps until the next due reminder, but
//! never longer than a minute: tokio's timers stop while a laptop sleeps and the wall clock does
//! not, so after a lid is opened every missed reminder fires, once.

use crate::adapters::calendar::{self, CalDav, CalendarItem, FeedWriter, ItemKind, ItemStatus};
use crate::adapters::imap::Session as ImapSession;
use crate::adapters::maildir::Maildir;
use crate::adapters::store::{
    DraftRecord, NewDraft, Reminder, ReminderKind, ReminderStatus, Store,
};
use crate::app::followups::{self, Timekeeping};
use crate::app::pipeline::{ComposeOptions, Pipeline, SharedPipeline};
use crate::app::slots;
use crate::config::{Config, MailboxAccess, Server};
use crate::core::draft::FollowUpInfo;
use crate::core::notice::{self, Notice, NoticeDraft};
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The longest the task sleeps between looks at the clock.
pub const MAX_SLEEP: Duration = Duration::from_secs(60);
/// How long one IMAP connection attempt or reply may take.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(60);

/// The wall clock, replaceable in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Where notices and follow-up drafts go: the mailbox pushback watches.
enum Mailroom {
    Maildir(Maildir),
    /// Logged in to afresh each time, with the credentials of that moment (an OAuth2 access
    /// token expires within the hour).
    Imap {
        server: Box<Server>,
        drafts_folder: String,
        sent_folder: String,
    },
}

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Follow-ups newly planned after sent replies.
    pub planned: usize,
    /// Reminders fired, by id.
    pub fired: Vec<i64>,
}

/// Everything a round needs, opened once from the config.
pub struct ReminderDesk {
    config: Config,
    store: Store,
    /// Shared: a running service replaces it on reload.
    pipeline: Arc<Pipeline>,
    keeping: Timekeeping,
    mailroom: Mailroom,
    calendars: Calendars,
}

impl ReminderDesk {
    pub fn open(config: &Config) -> Result<ReminderDesk> {
        let store = Store::open_account(&config.state_dir, &config.account)?;
        let pipeline = Arc::new(crate::app::trained_pipeline(config, &store)?);
        ReminderDesk::with_pipeline(config, store, pipeline)
    }

    /// With the service's own pipeline: compiling a second one would double the classifier's
    /// memory and the time to READY.
    fn with_pipeline(
        config: &Config,
        store: Store,
        pipeline: Arc<Pipeline>,
    ) -> Result<ReminderDesk> {
        let mailroom = match &config.mailbox.access {
            MailboxAccess::Maildir { path } => {
                Mailroom::Maildir(crate::app::open_maildir(path, config)?)
            }
            MailboxAccess::Imap(server) => Mailroom::Imap {
                server: Box::new(server.clone()),
                drafts_folder: config.mailbox.drafts_folder.clone(),
                sent_folder: config.mailbox.sent_folder.clone(),
            },
        };
        Ok(ReminderDesk {
            config: config.clone(),
            store,
            pipeline,
            keeping: Timekeeping::of(config),
            mailroom,
            calendars: Calendars::open(config)?,
        })
    }

    /// Plans follow-ups, then fires every reminder due at `now`. A reminder whose delivery
    /// fails stays claimed and is finished by the next round; the others go on.
    pub async fn round(&mut self, now: DateTime<Utc>) -> Result<Round> {
        let mut round = Round {
            planned: followups::plan_follow_ups(&mut self.store, &self.keeping, now)?,
            ..Round::default()
        };
        self.store.close_settled(now)?;
        if let Err(error) = self.withdraw_stale_follow_ups(now).await {
            tracing::warn!("cannot withdraw overtaken follow-up drafts now: {error:#}");
        }
        for reminder in self.store.due_reminders(now)? {
            if !self.store.claim_reminder(reminder.id, now)? {
                continue;
            }
            match self.fire(&reminder, now).await {
                Ok(()) => round.fired.push(reminder.id),
                Err(error) => tracing::warn!(
                    reminder = reminder.id,
                    "cannot deliver the reminder yet (tried again next round): {error:#}"
                ),
            }
        }
        // The calendars follow the store; one that cannot be reached now catches up later.
        if let Err(error) = self.calendars.sync(&mut self.store).await {
            tracing::warn!("cannot bring the reminder calendar up to date now: {error:#}");
        }
        if slots::refresh_due(&self.config, &self.store, now)?
            && let Err(error) = slots::refresh_busy(
                &self.config,
                self.calendars.caldav.as_ref(),
                &mut self.store,
                now,
            )
            .await
        {
            tracing::warn!("cannot read your busy times now (the last ones stay): {error:#}");
        }
        Ok(round)
    }

    /// Takes follow-up drafts the buyer's answer overtook out of the Drafts folder, then records
    /// them rejected (in that order: a crash in between leaves a draft that is simply taken out
    /// again next round). They add nothing to the classifier's feedback.
    async fn withdraw_stale_follow_ups(&mut self, now: DateTime<Utc>) -> Result<()> {
        let stale = self.store.stale_follow_up_drafts()?;
        if stale.is_empty() {
            return Ok(());
        }
        match &self.mailroom {
            Mailroom::Maildir(maildir) => {
                for draft in &stale {
                    maildir.remove_draft(&draft.folder_name)?;
                }
            }
            Mailroom::Imap {
                server,
                drafts_folder,
                sent_folder,
            } => {
                let (mut session, drafts) =
                    drafts_session(server, drafts_folder, sent_folder).await?;
                for draft in &stale {
                    let bracketed = format!("<{}>", draft.message_id.trim_matches(['<', '>']));
                    let uids = session
                        .find_by_header(&drafts, "Message-ID", &bracketed)
                        .await?;
                    if !uids.is_empty() {
                        session.delete(&drafts, &uids).await?;
                    }
                }
                session.logout().await?;
            }
        }
        for draft in &stale {
            self.store.reject(draft.id, false, &[], now)?;
            tracing::info!(
                draft = draft.id,
                "withdrew a follow-up draft: the buyer answered the thread"
            );
        }
        Ok(())
    }

    /// When the next round is due: the next reminder, but within `MAX_SLEEP`.
    pub fn sleep_from(&self, now: DateTime<Utc>) -> Result<Duration> {
        let until_next = self
            .store
            .next_reminder_due()?
            .map(|due| (due - now).to_std().unwrap_or(Duration::ZERO));
        Ok(until_next.map_or(MAX_SLEEP, |d| d.min(MAX_SLEEP)))
    }

    async fn fire(&mut self, reminder: &Reminder, now: DateTime<Utc>) -> Result<()> {
        let prepared =
            if followups::prepares_draft(reminder.kind, reminder.number, &self.keeping.follow_up) {
                Some(self.prepare_follow_up(reminder, now)?)
            } else {
                None
            };
        let draft = prepared
            .map(|id| self.store.draft(id))
            .transpose()?
            .flatten();
        let raw = self.notice(reminder, draft.as_ref(), now)?;
        let message_id =
            notice::notice_message_id(&self.config.identity, reminder.id, reminder.revision);
        self.deliver(&message_id, self.config.reminders.inbox.then_some(&raw[..]))
            .await?;
        self.store.finish_reminder(reminder.id, prepared, now)?;
        tracing::info!(
            reminder = reminder.id,
            kind = reminder.kind.as_str(),
            draft = ?prepared,
            "reminder fired"
        );
        Ok(())
    }

    /// The follow-up draft for `reminder`: composed from the thread's first reply (its buyer's
    /// original) and the message it follows up on, recorded once per thread and step.
    fn prepare_follow_up(&mut self, reminder: &Reminder, now: DateTime<Utc>) -> Result<i64> {
        let thread = self.store.thread_drafts(reminder.message)?;
        let Some(first) = thread.first() else {
            bail!("thread {} has no pushback reply", reminder.message);
        };
        let previous = reminder
            .after_draft
            .and_then(|id| thread.iter().find(|d| d.id == id))
            .with_context(|| format!("reminder {} names no sent message", reminder.id))?;
        let analysis = self
            .pipeline
            .analyse(&first.original)
            .context("cannot read the buyer's original message again")?;
        let sent_at = self
            .store
            .sent_at(previous.id)?
            .with_context(|| format!("draft {} was not sent", previous.id))?;
        let info = FollowUpInfo {
            number: reminder.number,
            max: self.keeping.follow_up.max_follow_ups,
            sent_at,
            business_days: self.keeping.follow_up.after_business_days(first.category),
        };
        let slots = slots::proposed_slots(&self.store, &self.keeping, &analysis.facts, now)?;
        let invite = match slots.first() {
            Some(slot) if self.keeping.attach_invite => Some(slots::invitation(
                &self.config.identity,
                &analysis,
                slot,
                now,
            )),
            _ => None,
        };
        let options = ComposeOptions {
            slots: &slots,
            invite: invite.as_ref(),
        };
        let composed =
            self.pipeline
                .compose_follow_up(&analysis, &previous.raw, info, options, now, 1)?;
        let draft = NewDraft {
            in_reply_to: composed.reply.in_reply_to.clone(),
            message_id: composed.reply.message_id.clone(),
            subject: composed.reply.subject.clone(),
            recipient: composed.reply.to.clone(),
            category: first.category,
            body: composed.body,
            raw: composed.reply.raw,
            original: previous.raw.clone(),
            notes: composed.notes,
            folder_name: format!("{}.follow-up-{}", first.folder_name, reminder.number),
            proposed_slots: composed.slots,
            source: Some(composed.source),
        };
        Ok(self
            .store
            .record_follow_up_draft(reminder.message, reminder.number, &draft, now)?)
    }

    fn notice(
        &self,
        reminder: &Reminder,
        draft: Option<&DraftRecord>,
        now: DateTime<Utc>,
    ) -> Result<Vec<u8>> {
        let cal = &self.keeping.calendar;
        let facts = self
            .store
            .thread_drafts(reminder.message)?
            .first()
            .map(|first| self.store.message_facts(first.id))
            .transpose()?
            .flatten()
            .map(|m| m.facts);
        let headline = match reminder.kind {
            ReminderKind::FollowUp if draft.is_some() => "Follow-up due".to_string(),
            ReminderKind::FollowUp => "No answer: the follow-up sequence has ended".to_string(),
            kind => format!("Coming up: {}", kind.label()),
        };
        let due = reminder
            .due_at
            .map(|t| crate::core::followup::local_text(t, cal))
            .unwrap_or_default();
        let notice = Notice {
            identity: &self.config.identity,
            reminder_id: reminder.id,
            revision: reminder.revision,
            headline: &headline,
            about: &reminder.about,
            due: &due,
            thread_subject: reminder.subject.as_deref(),
            buyer: reminder.sender.as_deref(),
            original_message_id: reminder.in_reply_to.as_deref(),
            facts: facts.as_ref(),
            draft: draft.map(|d| NoticeDraft {
                id: d.id,
                to: &d.recipient,
                body: &d.body,
            }),
            date: now.with_timezone(&cal.tz).fixed_offset(),
        };
        Ok(notice::compose_notice(&notice)?)
    }

    /// Places unplaced drafts in the Drafts folder and, when given, appends the notice to the
    /// inbox unread and flagged (unless an earlier attempt already did).
    async fn deliver(&mut self, message_id: &str, notice: Option<&[u8]>) -> Result<()> {
        match &self.mailroom {
            Mailroom::Maildir(maildir) => {
                crate::app::scan::place_in_maildir(maildir, &mut self.store)?;
                if let Some(raw) = notice {
                    maildir.write_flagged(&notice_file_name(message_id), raw)?;
                }
            }
            Mailroom::Imap {
                server,
                drafts_folder,
                sent_folder,
            } => {
                let (mut session, drafts) =
                    drafts_session(server, drafts_folder, sent_folder).await?;
                crate::app::watch::place_drafts(&mut session, &drafts, &mut self.store).await?;
                if let Some(raw) = notice {
                    let bracketed = format!("<{message_id}>");
                    let found = session
                        .find_by_header("INBOX", "Message-ID", &bracketed)
                        .await?;
                    if found.is_empty() {
                        session.append("INBOX", &["\\Flagged"], raw).await?;
                    }
                }
                session.logout().await?;
            }
        }
        Ok(())
    }
}

/// A reminder as a calendar item: a follow-up as a to-do due when it fires, a deadline as an event
/// at the deadline with an alarm at the reminder's time. A date still to confirm has no place yet.
fn calendar_item(r: &Reminder) -> Option<CalendarItem> {
    let due = r.due_at?;
    let status = match r.status {
        ReminderStatus::Done => ItemStatus::Done,
        ReminderStatus::Cancelled => ItemStatus::Cancelled,
        _ => ItemStatus::Open,
    };
    let thread = match (&r.subject, &r.sender) {
        (Some(subject), Some(buyer)) => format!("\"{subject}\" from {buyer}"),
        (Some(subject), None) => format!("\"{subject}\""),
        (None, Some(buyer)) => buyer.clone(),
        (None, None) => String::new(),
    };
    let description = format!(
        "{}\nThread: {thread}\nDone: pushback reminders done {id}\nLater: pushback reminders snooze {id} 1d",
        r.about,
        id = r.id
    );
    let (kind, summary, start, alarm_before) = match r.kind {
        ReminderKind::FollowUp => (
            ItemKind::Todo,
            format!(
                "Follow up: {}",
                r.subject.as_deref().unwrap_or("pushback thread")
            ),
            due,
            None,
        ),
        kind => {
            let summary = format!(
                "{}: {}",
                capitalised(kind.label()),
                r.subject.as_deref().unwrap_or("RFP")
            );
            match r.deadline_at {
                Some(deadline) => (ItemKind::Event, summary, deadline, Some(deadline - due)),
                None => (ItemKind::Event, summary, due, None),
            }
        }
    };
    Some(CalendarItem {
        uid: format!("reminder-{}@pushback", r.id),
        kind,
        summary,
        description,
        due: start,
        end: None,
        alarm_before,
        status,
        url: r.in_reply_to.as_ref().map(|id| format!("mid:{id}")),
        sequence: r.revision,
        stamp: r.updated_at,
    })
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The reminders' calendars: the feed file, written at start and again whenever its content
/// changes (told by a hash of the text this process last wrote, not by holding that text nor by
/// reading the file back), and the CalDAV collection, where each item is PUT again when its
/// revision changed since the last PUT (every item once after a start: a PUT of an unchanged item
/// changes nothing). Both read the store one reminder at a time: a backfill can plan 10,000.
struct Calendars {
    feed: std::path::PathBuf,
    /// The hash of the feed text last written, `None` before the first write.
    written: Option<u64>,
    caldav: Option<CalDav>,
    pushed: HashMap<String, u32>,
    ensured: bool,
}

/// How many items are read from the store for one run of CalDAV PUTs.
const CALDAV_PAGE: usize = 200;

impl Calendars {
    fn open(config: &Config) -> Result<Calendars> {
        let caldav = crate::app::caldav(config)?;
        Ok(Calendars {
            feed: config.reminders.feed.clone(),
            written: None,
            caldav,
            pushed: HashMap::new(),
            ensured: false,
        })
    }

    /// `store` is taken `&mut` only because a `&Store` cannot be held across an await (a SQLite
    /// connection is not `Sync`).
    async fn sync(&mut self, store: &mut Store) -> Result<()> {
        // Formatting the feed twice when it changed is cheaper than holding it between rounds.
        let current = stream_feed(store, io::sink())?;
        if self.written != Some(current) {
            let written = calendar::write_feed(&self.feed, |file| stream_feed(store, file))?;
            self.written = Some(written);
        }
        let Some(caldav) = &self.caldav else {
            return Ok(());
        };
        if !self.ensured {
            caldav.ensure_calendar().await?;
            self.ensured = true;
        }
        loop {
            let mut page = Vec::new();
            store.each_dated_reminder(|reminder| {
                if let Some(item) = calendar_item(&reminder)
                    && self.pushed.get(&item.uid) != Some(&item.sequence)
                {
                    page.push(item);
                }
                anyhow::Ok(if page.len() == CALDAV_PAGE {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                })
            })?;
            for item in &page {
                caldav.put(item).await?;
                self.pushed.insert(item.uid.clone(), item.sequence);
            }
            if page.len() < CALDAV_PAGE {
                return Ok(());
            }
        }
    }
}

/// Writes the feed of every dated reminder to `out`, one at a time, and returns the text's hash.
fn stream_feed(store: &Store, out: impl Write) -> Result<u64> {
    let mut feed = FeedWriter::start(Hashing::new(out), FEED_NAME)?;
    store.each_dated_reminder(|reminder| {
        if let Some(item) = calendar_item(&reminder) {
            feed.item(&item)?;
        }
        anyhow::Ok(ControlFlow::Continue(()))
    })?;
    Ok(feed.finish()?.hasher.finish())
}

/// Passes bytes on and hashes them on the way.
struct Hashing<W> {
    out: W,
    /// `DefaultHasher::new` is the same in every call, so equal texts hash equal.
    hasher: DefaultHasher,
}

impl<W> Hashing<W> {
    fn new(out: W) -> Hashing<W> {
        Hashing {
            out,
            hasher: DefaultHasher::new(),
        }
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let taken = self.out.write(bytes)?;
        self.hasher.write(&bytes[..taken]);
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The calendar's name in the rep's calendar app.
const FEED_NAME: &str = "pushback follow-ups and RFP deadlines";

/// A logged-in IMAP session and the server's name for the Drafts folder.
async fn drafts_session(
    server: &Server,
    drafts_folder: &str,
    sent_folder: &str,
) -> Result<(ImapSession, String)> {
    let settings = crate::app::imap_settings_async(server, NETWORK_TIMEOUT).await?;
    let mut session = ImapSession::connect(&settings).await?;
    let folders = session.special_folders(drafts_folder, sent_folder).await?;
    Ok((session, folders.drafts))
}

/// A notice's file name in the Maildir inbox: its Message-ID made safe, so a second write
/// replaces the first.
fn notice_file_name(message_id: &str) -> String {
    message_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Runs rounds until `shutdown`: at start (missed reminders fire once), when `wake` is notified
/// (a reply was sent), when the next reminder is due, and at least once a minute. Each round
/// drafts with the current pipeline.
pub async fn run(
    config: Config,
    clock: Arc<dyn Clock>,
    pipeline: SharedPipeline,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let first = pipeline.borrow().clone();
    let mut desk = ReminderDesk::with_pipeline(
        &config,
        Store::open_account(&config.state_dir, &config.account)?,
        first,
    )?;
    loop {
        desk.pipeline = pipeline.borrow().clone();
        let now = clock.now();
        match desk.round(now).await {
            Ok(round) if round.planned > 0 || !round.fired.is_empty() => {
                tracing::info!(planned = round.planned, fired = ?round.fired, "reminders");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!("cannot check reminders now: {error:#}"),
        }
        let sleep = desk.sleep_from(clock.now()).unwrap_or(MAX_SLEEP);
        tokio::select! {
            _ = tokio::time::sleep(sleep.max(Duration::from_millis(100))) => {}
            _ = wake.notified() => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        }
    }
}

/// `pushback reminders list`: open reminders, due first; with `all`, closed ones too.
pub fn list(store: &Store, keeping: &Timekeeping, all: bool, json: bool) -> Result<String> {
    let reminders = store.reminders(!all)?;
    let tz = keeping.calendar.tz;
    let mut out = String::new();
    if json {
        for r in &reminders {
            let line = serde_json::json!({
                "id": r.id,
                "account": store.account(),
                "kind": r.kind,
                "due": r.due_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                "local_due": r.due_at.map(|t| t.with_timezone(&tz).to_rfc3339_opts(chrono::SecondsFormat::Secs, false)),
                "status": r.status,
                "in_reply_to": r.in_reply_to,
                "number": r.number,
                "about": r.about,
                "subject": r.subject,
                "buyer": r.sender,
                "deadline": r.deadline_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                "draft": r.prepared_draft,
                "closed_why": r.closed_why,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
        return Ok(out);
    }
    if reminders.is_empty() {
        return Ok(if all {
            "No reminders yet.\n".into()
        } else {
            "Nothing due: no open reminders.\n".into()
        });
    }
    for r in &reminders {
        let due = r.due_at.map_or_else(
            || "date to confirm".to_string(),
            |t| {
                t.with_timezone(&tz)
                    .format("%a %Y-%m-%d %H:%M %Z")
                    .to_string()
            },
        );
        out.push_str(&format!(
            "{:>4}  {:<10} {:<24} {}\n",
            r.id,
            r.status.as_str(),
            due,
            r.about
        ));
        if let Some(draft) = r.prepared_draft {
            out.push_str(&format!(
                "      follow-up draft {draft}: `pushback drafts show {draft}`\n"
            ));
        }
        if let Some(why) = &r.closed_why {
            out.push_str(&format!("      {why}\n"));
        }
        if r.status == ReminderStatus::Confirm {
            out.push_str(&format!(
                "      check the RFP, then `pushback reminders snooze {id} DURATION` to be \
                 reminded, or `pushback reminders done {id}`\n",
                id = r.id
            ));
        }
    }
    Ok(out)
}

/// `pushback reminders done ID`.
pub fn done(store: &mut Store, id: i64, now: DateTime<Utc>) -> Result<String> {
    let r = store.reminder_done(id, now)?;
    Ok(format!("Reminder {} done: {}\n", r.id, r.about))
}

/// `pushback reminders snooze ID DURATION`: due again `duration` from now. For a date the rep
/// had to confirm, snoozing is how they give it one: it becomes a scheduled reminder.
pub fn snooze(
    store: &mut Store,
    keeping: &Timekeeping,
    id: i64,
    duration: &str,
    now: DateTime<Utc>,
) -> Result<String> {
    let length = parse_duration(duration)?;
    let until = now + length;
    let before = store
        .reminder(id)?
        .with_context(|| format!("no reminder with id {id} (see `pushback reminders list`)"))?;
    if before.status == ReminderStatus::Firing {
        bail!("reminder {id} is being delivered right now; try again in a minute");
    }
    let r = store.reschedule_reminder(id, until, now)?;
    Ok(format!(
        "Reminder {} snoozed until {}: {}\n",
        r.id,
        crate::core::followup::local_text(until, &keeping.calendar),
        r.about
    ))
}

/// "90m", "4h", "2d", "1w", or combinations such as "1d12h".
pub fn parse_duration(text: &str) -> Result<chrono::Duration> {
    let fail = || {
        anyhow::anyhow!(
            "cannot read the duration {text:?}: write a number and a unit, e.g. 90m, 4h, 2d, 1w"
        )
    };
    let mut total = chrono::Duration::zero();
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().map_err(|_| fail())?;
        digits.clear();
        total += match c {
            'm' => chrono::Duration::minutes(n),
            'h' => chrono::Duration::hours(n),
            'd' => chrono::Duration::days(n),
            'w' => chrono::Duration::weeks(n),
            _ => return Err(fail()),
        };
    }
    if !digits.is_empty() || total <= chrono::Duration::zero() {
        return Err(fail());
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_writes_them() {
        assert_eq!(
            parse_duration("90m").unwrap(),
            chrono::Duration::minutes(90)
        );
        assert_eq!(parse_duration("2d").unwrap(), chrono::Duration::days(2));
        assert_eq!(
            parse_duration("1d12h").unwrap(),
            chrono::Duration::hours(36)
        );
        assert_eq!(parse_duration("1w").unwrap(), chrono::Duration::days(7));
        for bad in ["", "2", "d", "2x", "0h", "-1d"] {
            let error = parse_duration(bad).unwrap_err().to_string();
            assert!(error.contains("90m, 4h, 2d, 1w"), "{bad:?}: {error}");
        }
    }

    #[tokio::test]
    async fn the_feed_is_written_again_only_when_its_text_changed() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open_in_memory().unwrap();
        let mut calendars = Calendars {
            feed: dir.path().join("reminders.ics"),
            written: None,
            caldav: None,
            pushed: HashMap::new(),
            ensured: false,
        };
        calendars.sync(&mut store).await.unwrap();
        let text = std::fs::read_to_string(&calendars.feed).unwrap();
        assert!(text.starts_with("BEGIN:VCALENDAR\r\n"), "{text}");
        assert!(text.ends_with("END:VCALENDAR\r\n"), "{text}");
        // Unchanged: not written again (a file removed behind our back stays removed until then).
        std::fs::remove_file(&calendars.feed).unwrap();
        calendars.sync(&mut store).await.unwrap();
        assert!(!calendars.feed.exists());
        calendars.written = calendars.written.map(|hash| hash ^ 1);
        calendars.sync(&mut store).await.unwrap();
        assert_eq!(std::fs::read_to_string(&calendars.feed).unwrap(), text);
    }

    #[test]
    fn the_hash_does_not_depend_on_how_the_text_was_cut() {
        let mut whole = Hashing::new(io::sink());
        whole
            .write_all(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
            .unwrap();
        let mut pieces = Hashing::new(Vec::new());
        for piece in [&b"BEGIN:VCAL"[..], b"ENDAR\r\nEND:", b"VCALENDAR\r\n"] {
            pieces.write_all(piece).unwrap();
        }
        assert_eq!(whole.hasher.finish(), pieces.hasher.finish());
        assert_eq!(pieces.out, b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n");
    }

    #[test]
    fn notice_file_names_are_safe_and_stable() {
        assert_eq!(
            notice_file_name("pushback-reminder.7.2@northwind.example"),
            "pushback-reminder.7.2_northwind.example"
        );
    }
}

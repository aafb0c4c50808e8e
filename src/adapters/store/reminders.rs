//! Follow-up sequences, deadline reminders and the buyer's replies (migration 4).
//!
//! A reminder is planned once (UNIQUE per thread, kind and number, so planning again adds
//! nothing), fired once (`scheduled -> firing` is a conditional update in its own transaction; a
//! crash while `firing` leaves it to be delivered again by idempotent deliveries, never claimed
//! twice), and closed by the rep (`done`) or by the buyer's answer (`cancelled`).

use super::{
    Error, NewDraft, begin, corrupt, execute, parse_category, parse_timestamp, source_columns, sql,
    timestamp, to_json,
};
use crate::core::model::{Category, DeadlineKind, Reason};
use crate::core::reply::ReplyKind;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::ops::ControlFlow;

/// What a reminder is about: the next follow-up in a pushback thread, or an RFP date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReminderKind {
    FollowUp,
    Questions,
    Submission,
    PreBid,
    IntentToBid,
    Other,
}

impl ReminderKind {
    pub const ALL: [ReminderKind; 6] = [
        ReminderKind::FollowUp,
        ReminderKind::Questions,
        ReminderKind::Submission,
        ReminderKind::PreBid,
        ReminderKind::IntentToBid,
        ReminderKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReminderKind::FollowUp => "follow_up",
            ReminderKind::Questions => "questions",
            ReminderKind::Submission => "submission",
            ReminderKind::PreBid => "pre_bid",
            ReminderKind::IntentToBid => "intent_to_bid",
            ReminderKind::Other => "other",
        }
    }

    pub fn parse(name: &str) -> Option<ReminderKind> {
        ReminderKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// For the rep: "follow-up", "questions cut-off", ...
    pub fn label(self) -> &'static str {
        match self {
            ReminderKind::FollowUp => "follow-up",
            ReminderKind::Questions => "questions cut-off",
            ReminderKind::Submission => "submission deadline",
            ReminderKind::PreBid => "pre-bid meeting",
            ReminderKind::IntentToBid => "intent-to-bid date",
            ReminderKind::Other => "RFP date",
        }
    }
}

impl From<DeadlineKind> for ReminderKind {
    fn from(kind: DeadlineKind) -> ReminderKind {
        match kind {
            DeadlineKind::Questions => ReminderKind::Questions,
            DeadlineKind::Submission => ReminderKind::Submission,
            DeadlineKind::PreBid => ReminderKind::PreBid,
            DeadlineKind::IntentToBid => ReminderKind::IntentToBid,
            DeadlineKind::Other => ReminderKind::Other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReminderStatus {
    Scheduled,
    /// A deadline pushback could not place with certainty; the rep confirms or dismisses it.
    Confirm,
    /// Claimed by the reminder task; its deliveries are under way (or were, before a crash).
    Firing,
    Fired,
    Done,
    Cancelled,
}

impl ReminderStatus {
    const ALL: [ReminderStatus; 6] = [
        ReminderStatus::Scheduled,
        ReminderStatus::Confirm,
        ReminderStatus::Firing,
        ReminderStatus::Fired,
        ReminderStatus::Done,
        ReminderStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReminderStatus::Scheduled => "scheduled",
            ReminderStatus::Confirm => "confirm",
            ReminderStatus::Firing => "firing",
            ReminderStatus::Fired => "fired",
            ReminderStatus::Done => "done",
            ReminderStatus::Cancelled => "cancelled",
        }
    }

    fn parse(name: &str) -> Option<ReminderStatus> {
        ReminderStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Still waiting for something to happen.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ReminderStatus::Scheduled | ReminderStatus::Confirm | ReminderStatus::Firing
        )
    }
}

/// A deadline reminder planned at scan time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReminder {
    pub kind: ReminderKind,
    /// The deadline's position among the message's deadlines.
    pub number: u32,
    /// `None`: the rep must confirm a date first (status `confirm`).
    pub due_at: Option<DateTime<Utc>>,
    pub deadline_at: Option<DateTime<Utc>>,
    pub about: String,
}

/// A reminder with its thread.
#[derive(Debug, Clone, PartialEq)]
pub struct Reminder {
    pub id: i64,
    /// Row id of the buyer's original message: the thread.
    pub message: i64,
    pub kind: ReminderKind,
    pub number: u32,
    pub status: ReminderStatus,
    pub due_at: Option<DateTime<Utc>>,
    pub deadline_at: Option<DateTime<Utc>>,
    pub about: String,
    /// Follow-ups: the sent draft being followed up.
    pub after_draft: Option<i64>,
    /// Follow-ups: the draft prepared when it fired.
    pub prepared_draft: Option<i64>,
    pub revision: u32,
    pub fired_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    pub closed_why: Option<String>,
    /// The original's Message-ID (without angle brackets), when it had one.
    pub in_reply_to: Option<String>,
    pub subject: Option<String>,
    /// The buyer's address.
    pub sender: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A sent message in a thread with no follow-up planned after it yet.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowUpCandidate {
    pub message: i64,
    /// The sent draft.
    pub after_draft: i64,
    /// Its place in the sequence: 0 for the pushback, n for the n-th follow-up.
    pub sent_step: u32,
    pub sent_at: DateTime<Utc>,
    pub category: Category,
    /// The latest out-of-office return date the buyer stated since, if any.
    pub buyer_returns_on: Option<NaiveDate>,
}

/// A pushback thread reply detection checks new mail against.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadRecord {
    pub message: i64,
    pub original_message_id: Option<String>,
    pub subject: String,
    pub buyer: Option<String>,
    /// Every Message-ID we sent (or prepared) in it.
    pub our_message_ids: Vec<String>,
}

/// The buyer answered thread `thread`.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadReply {
    pub thread: i64,
    pub kind: ReplyKind,
    pub reasons: Vec<Reason>,
    pub effect: ReplyEffect,
}

/// What an answer does to the thread's pending follow-up.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplyEffect {
    /// A person answered: the sequence ends.
    Cancel,
    /// Out of office until a stated date: the follow-up moves to this time.
    Reschedule(DateTime<Utc>),
    /// Out of office without a date: the follow-up stays as planned.
    Keep,
}

/// Inserts deadline reminders for message row `message`.
pub(super) fn insert(
    tx: &Connection,
    message: i64,
    reminders: &[NewReminder],
    now: DateTime<Utc>,
) -> Result<(), Error> {
    for r in reminders {
        let status = if r.due_at.is_some() {
            ReminderStatus::Scheduled
        } else {
            ReminderStatus::Confirm
        };
        execute(
            tx,
            "INSERT INTO reminders (message, kind, number, status, due_at, deadline_at, about,
                                    created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
             ON CONFLICT (message, kind, number) DO NOTHING",
            params![
                message,
                r.kind.as_str(),
                r.number,
                status.as_str(),
                r.due_at.map(timestamp),
                r.deadline_at.map(timestamp),
                r.about,
                timestamp(now),
            ],
        )
        .map_err(sql(format!("plan the {} reminder", r.kind.label())))?;
    }
    Ok(())
}

/// Records reply `message` in its thread and applies its effect on the pending follow-up.
pub(super) fn record_reply(
    tx: &Connection,
    message: i64,
    reply: &ThreadReply,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let action = || format!("record the buyer's reply in thread {}", reply.thread);
    let returns_on = match reply.kind {
        ReplyKind::OutOfOffice { returns_on } => returns_on.map(|d| d.to_string()),
        _ => None,
    };
    execute(
        tx,
        // The reply answers our latest message in the thread that went out: the wording it
        // judges, for `pushback pack stats`.
        "INSERT INTO replies (message, thread, kind, returns_on, reasons, received_at,
                              answered_draft)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6,
                 (SELECT d.id FROM drafts d JOIN outbox o ON o.draft = d.id
                  WHERE d.message = ?2 AND o.sent_at IS NOT NULL
                  ORDER BY o.sent_at DESC, d.follow_up DESC LIMIT 1))",
        params![
            message,
            reply.thread,
            reply.kind.as_str(),
            returns_on,
            to_json("reply reasons", &reply.reasons)?,
            timestamp(now),
        ],
    )
    .map_err(sql(action()))?;
    match &reply.effect {
        ReplyEffect::Cancel => {
            execute(
                tx,
                "UPDATE reminders SET status = 'cancelled', closed_at = ?2, closed_why = ?3,
                                      revision = revision + 1, updated_at = ?2
                 WHERE message = ?1 AND kind = 'follow_up' AND status IN ('scheduled', 'fired')",
                params![
                    reply.thread,
                    timestamp(now),
                    format!(
                        "the buyer replied ({})",
                        reply.kind.as_str().replace('_', " ")
                    )
                ],
            )
            .map_err(sql(action()))?;
        }
        ReplyEffect::Reschedule(due) => {
            execute(
                tx,
                "UPDATE reminders SET due_at = MAX(due_at, ?2), revision = revision + 1,
                                      updated_at = ?3
                 WHERE message = ?1 AND kind = 'follow_up' AND status = 'scheduled'",
                params![reply.thread, timestamp(*due), timestamp(now)],
            )
            .map_err(sql(action()))?;
        }
        ReplyEffect::Keep => {}
    }
    Ok(())
}

const REMINDER_SELECT: &str = "SELECT r.id, r.message, r.kind, r.number, r.status, r.due_at,
        r.deadline_at, r.about, r.after_draft, r.prepared_draft, r.revision, r.fired_at,
        r.closed_at, r.closed_why, m.message_id, m.subject, m.sender, r.created_at, r.updated_at
    FROM reminders r JOIN messages m ON m.id = r.message";

/// Read as text first, converted in `into_reminder` where errors can say which column was bad.
struct ReminderRow {
    id: i64,
    message: i64,
    kind: String,
    number: u32,
    status: String,
    due_at: Option<String>,
    deadline_at: Option<String>,
    about: String,
    after_draft: Option<i64>,
    prepared_draft: Option<i64>,
    revision: u32,
    fired_at: Option<String>,
    closed_at: Option<String>,
    closed_why: Option<String>,
    message_id: Option<String>,
    subject: Option<String>,
    sender: Option<String>,
    created_at: String,
    updated_at: String,
}

impl ReminderRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReminderRow> {
        Ok(ReminderRow {
            id: r.get(0)?,
            message: r.get(1)?,
            kind: r.get(2)?,
            number: r.get(3)?,
            status: r.get(4)?,
            due_at: r.get(5)?,
            deadline_at: r.get(6)?,
            about: r.get(7)?,
            after_draft: r.get(8)?,
            prepared_draft: r.get(9)?,
            revision: r.get(10)?,
            fired_at: r.get(11)?,
            closed_at: r.get(12)?,
            closed_why: r.get(13)?,
            message_id: r.get(14)?,
            subject: r.get(15)?,
            sender: r.get(16)?,
            created_at: r.get(17)?,
            updated_at: r.get(18)?,
        })
    }

    fn into_reminder(self) -> Result<Reminder, Error> {
        let time = |what: &str, t: Option<String>| t.map(|t| parse_timestamp(what, &t)).transpose();
        Ok(Reminder {
            id: self.id,
            message: self.message,
            kind: ReminderKind::parse(&self.kind)
                .ok_or_else(|| corrupt("reminder kind", &self.kind, "unknown kind"))?,
            number: self.number,
            status: ReminderStatus::parse(&self.status)
                .ok_or_else(|| corrupt("reminder status", &self.status, "unknown status"))?,
            due_at: time("reminder due_at", self.due_at)?,
            deadline_at: time("reminder deadline_at", self.deadline_at)?,
            about: self.about,
            after_draft: self.after_draft,
            prepared_draft: self.prepared_draft,
            revision: self.revision,
            fired_at: time("reminder fired_at", self.fired_at)?,
            closed_at: time("reminder closed_at", self.closed_at)?,
            closed_why: self.closed_why,
            in_reply_to: self.message_id.map(|id| {
                id.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .into()
            }),
            subject: self.subject,
            sender: self.sender,
            created_at: parse_timestamp("reminder created_at", &self.created_at)?,
            updated_at: parse_timestamp("reminder updated_at", &self.updated_at)?,
        })
    }
}

/// The reminders of `account` (bound as `?1`; `condition`'s own parameters start at `?2`).
fn reminders_where(
    conn: &Connection,
    condition: &str,
    params: impl rusqlite::Params,
    action: &str,
) -> Result<Vec<Reminder>, Error> {
    let query = format!(
        "{REMINDER_SELECT} WHERE m.account = ?1 AND ({condition})
         ORDER BY r.due_at IS NULL, r.due_at, r.id"
    );
    let mut stmt = conn.prepare(&query).map_err(sql(action))?;
    let rows = stmt
        .query_map(params, ReminderRow::read)
        .map_err(sql(action))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql(action))?;
    rows.into_iter().map(ReminderRow::into_reminder).collect()
}

impl super::Store {
    /// Every reminder, due first; with `open_only`, those neither done nor cancelled.
    pub fn reminders(&self, open_only: bool) -> Result<Vec<Reminder>, Error> {
        let condition = if open_only {
            "r.status NOT IN ('done', 'cancelled')"
        } else {
            "1"
        };
        reminders_where(&self.conn, condition, [&self.account], "list reminders")
    }

    /// Hands `visit` every reminder with a due date, due first, one row at a time until it
    /// breaks: the calendar feed after a big backfill (10,000 reminders) is written without
    /// holding them all. One statement, so one consistent snapshot of the table.
    pub fn each_dated_reminder<E: From<Error>>(
        &self,
        mut visit: impl FnMut(Reminder) -> Result<ControlFlow<()>, E>,
    ) -> Result<(), E> {
        let action = "list dated reminders";
        let query = format!(
            "{REMINDER_SELECT} WHERE m.account = ?1 AND r.due_at IS NOT NULL
             ORDER BY r.due_at, r.id"
        );
        let mut stmt = self.conn.prepare(&query).map_err(sql(action))?;
        let mut rows = stmt.query([&self.account]).map_err(sql(action))?;
        while let Some(row) = rows.next().map_err(sql(action))? {
            let reminder = ReminderRow::read(row).map_err(sql(action))?;
            if visit(reminder.into_reminder()?)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    pub fn reminder(&self, id: i64) -> Result<Option<Reminder>, Error> {
        Ok(reminders_where(
            &self.conn,
            "r.id = ?2",
            params![self.account, id],
            "read a reminder",
        )?
        .into_iter()
        .next())
    }

    /// Reminders to deliver at `now`: scheduled ones that are due, and ones a stopped process
    /// left `firing` (their deliveries are idempotent, so finishing them cannot duplicate).
    pub fn due_reminders(&self, now: DateTime<Utc>) -> Result<Vec<Reminder>, Error> {
        reminders_where(
            &self.conn,
            "(r.status = 'scheduled' AND r.due_at <= ?2) OR r.status = 'firing'",
            params![self.account, timestamp(now)],
            "list due reminders",
        )
    }

    /// When the next scheduled reminder is due.
    pub fn next_reminder_due(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let next: Option<String> = self
            .conn
            .query_row(
                "SELECT MIN(r.due_at) FROM reminders r JOIN messages m ON m.id = r.message
                 WHERE r.status = 'scheduled' AND m.account = ?1",
                [&self.account],
                |r| r.get(0),
            )
            .map_err(sql("find the next reminder"))?;
        next.map(|t| parse_timestamp("reminder due_at", &t))
            .transpose()
    }

    /// `scheduled -> firing`. False when another process claimed it first or it changed
    /// (done, cancelled, snoozed later) meanwhile; a reminder already `firing` is the caller's to
    /// finish and stays claimed.
    pub fn claim_reminder(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool, Error> {
        let changed = self
            .conn
            .execute(
                "UPDATE reminders SET status = 'firing', updated_at = ?2
                 WHERE id = ?1 AND status = 'scheduled' AND due_at <= ?2",
                params![id, timestamp(now)],
            )
            .map_err(sql(format!("claim reminder {id}")))?;
        if changed == 1 {
            return Ok(true);
        }
        Ok(self
            .reminder(id)?
            .is_some_and(|r| r.status == ReminderStatus::Firing))
    }

    /// `firing -> fired`, remembering the follow-up draft prepared for it.
    pub fn finish_reminder(
        &mut self,
        id: i64,
        prepared_draft: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        execute(
            &self.conn,
            "UPDATE reminders SET status = 'fired', fired_at = ?2, prepared_draft = ?3,
                                      revision = revision + 1, updated_at = ?2
                 WHERE id = ?1 AND status = 'firing'",
            params![id, timestamp(now), prepared_draft],
        )
        .map_err(sql(format!("record reminder {id} as fired")))?;
        Ok(())
    }

    /// Closes fired reminders whose matter is settled: a follow-up whose draft was sent or
    /// rejected, a deadline that has passed. Returns how many were closed.
    pub fn close_settled(&mut self, now: DateTime<Utc>) -> Result<usize, Error> {
        let action = "close settled reminders";
        let tx = begin(&mut self.conn)?;
        let mut closed = 0;
        for (condition, why) in [
            (
                "kind = 'follow_up' AND prepared_draft IN (SELECT id FROM drafts WHERE status = 'sent')",
                "the follow-up was sent",
            ),
            (
                "kind = 'follow_up' AND prepared_draft IN (SELECT id FROM drafts WHERE status = 'rejected')",
                "the follow-up draft was rejected",
            ),
            (
                "kind <> 'follow_up' AND deadline_at IS NOT NULL AND deadline_at <= ?1",
                "the date has passed",
            ),
        ] {
            closed += tx
                .execute(
                    &format!(
                        "UPDATE reminders SET status = 'done', closed_at = ?1, closed_why = ?2,
                                              revision = revision + 1, updated_at = ?1
                         WHERE status = 'fired' AND {condition}"
                    ),
                    params![timestamp(now), why],
                )
                .map_err(sql(action))?;
        }
        tx.commit().map_err(sql(action))?;
        Ok(closed)
    }

    /// The rep dealt with it. Any open or fired reminder can be closed; closing twice is a no-op.
    pub fn reminder_done(&mut self, id: i64, now: DateTime<Utc>) -> Result<Reminder, Error> {
        self.change_reminder(
            id,
            "mark as done",
            "UPDATE reminders SET status = 'done', closed_at = ?2, closed_why = 'done by the rep',
                                  revision = revision + 1, updated_at = ?2
             WHERE id = ?1 AND status IN ('scheduled', 'confirm', 'fired')",
            None,
            Some(ReminderStatus::Done),
            now,
        )
    }

    /// Due again at `until` (snooze, or a confirmed date): back to `scheduled`.
    pub fn reschedule_reminder(
        &mut self,
        id: i64,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Reminder, Error> {
        self.change_reminder(
            id,
            "reschedule",
            "UPDATE reminders SET status = 'scheduled', due_at = ?3, fired_at = NULL,
                                  revision = revision + 1, updated_at = ?2
             WHERE id = ?1 AND status IN ('scheduled', 'confirm', 'fired')",
            Some(until),
            None,
            now,
        )
    }

    fn change_reminder(
        &mut self,
        id: i64,
        verb: &str,
        update: &str,
        until: Option<DateTime<Utc>>,
        // The status the change leads to: finding the reminder there already is a no-op.
        already: Option<ReminderStatus>,
        now: DateTime<Utc>,
    ) -> Result<Reminder, Error> {
        let action = || format!("{verb} reminder {id}");
        let tx = begin(&mut self.conn)?;
        let before = reminders_where(&tx, "r.id = ?2", params![self.account, id], &action())?
            .into_iter()
            .next()
            .ok_or(Error::NoReminder { id })?;
        let changed = match until {
            Some(until) => tx.execute(update, params![id, timestamp(now), timestamp(until)]),
            None => tx.execute(update, params![id, timestamp(now)]),
        }
        .map_err(sql(action()))?;
        if changed == 0 && Some(before.status) != already {
            return Err(Error::ReminderClosed {
                id,
                verb: verb.to_string(),
                status: before.status.as_str(),
            });
        }
        let after = reminders_where(&tx, "r.id = ?2", params![self.account, id], &action())?
            .into_iter()
            .next()
            .ok_or(Error::NoReminder { id })?;
        tx.commit().map_err(sql(action()))?;
        Ok(after)
    }

    /// Sent messages in pushback threads with no follow-up planned after them, in threads the
    /// buyer has not answered since (an out-of-office reply is not an answer).
    pub fn follow_ups_to_plan(&self) -> Result<Vec<FollowUpCandidate>, Error> {
        let action = "find sent replies to follow up";
        let mut stmt = self
            .conn
            .prepare(
                "WITH sent AS (
                    SELECT d.id, d.message, d.follow_up, d.category,
                           COALESCE(o.sent_at, a.approved_at) AS sent_at
                    FROM drafts d
                    JOIN messages m ON m.id = d.message
                    LEFT JOIN outbox o ON o.draft = d.id
                    LEFT JOIN approvals a ON a.draft = d.id
                    WHERE d.status = 'sent' AND m.account = ?1)
                 SELECT s.id, s.message, s.follow_up, s.category, s.sent_at,
                        (SELECT MAX(returns_on) FROM replies p
                         WHERE p.thread = s.message AND p.kind = 'out_of_office'
                           AND p.received_at >= s.sent_at)
                 FROM sent s
                 WHERE s.sent_at IS NOT NULL
                   AND NOT EXISTS (SELECT 1 FROM reminders r
                                   WHERE r.message = s.message AND r.kind = 'follow_up'
                                     AND r.number = s.follow_up + 1)
                   AND NOT EXISTS (SELECT 1 FROM replies p
                                   WHERE p.thread = s.message AND p.kind <> 'out_of_office'
                                     AND p.received_at >= s.sent_at)
                 ORDER BY s.sent_at, s.id",
            )
            .map_err(sql(action))?;
        let rows = stmt
            .query_map([&self.account], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, u32>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<String>>(5)?,
                ))
            })
            .map_err(sql(action))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql(action))?;
        rows.into_iter()
            .map(|(after_draft, message, step, category, sent_at, returns)| {
                Ok(FollowUpCandidate {
                    message,
                    after_draft,
                    sent_step: step,
                    sent_at: parse_timestamp("sent_at", &sent_at)?,
                    category: parse_category(&category)?,
                    buyer_returns_on: returns
                        .map(|d| {
                            d.parse::<NaiveDate>()
                                .map_err(|e| corrupt("reply returns_on", &d, e))
                        })
                        .transpose()?,
                })
            })
            .collect()
    }

    /// Plans follow-up `number` of a thread, due at `due_at` (or records, with `due_at` None and
    /// an `about` saying so, that the sequence ended). Planning twice adds nothing.
    pub fn plan_follow_up(
        &mut self,
        candidate: &FollowUpCandidate,
        due_at: DateTime<Utc>,
        about: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        execute(
            &self.conn,
            "INSERT INTO reminders (message, kind, number, status, due_at, about, after_draft,
                                        created_at, updated_at)
                 VALUES (?1, 'follow_up', ?2, 'scheduled', ?3, ?4, ?5, ?6, ?6)
                 ON CONFLICT (message, kind, number) DO NOTHING",
            params![
                candidate.message,
                candidate.sent_step + 1,
                timestamp(due_at),
                about,
                candidate.after_draft,
                timestamp(now),
            ],
        )
        .map_err(sql(format!(
            "plan a follow-up in thread {}",
            candidate.message
        )))?;
        Ok(())
    }

    /// Records follow-up draft `step` of the thread of message row `message`, or returns the one
    /// recorded before (a reminder fired again after a crash prepares no second draft).
    pub fn record_follow_up_draft(
        &mut self,
        message: i64,
        step: u32,
        draft: &NewDraft,
        now: DateTime<Utc>,
    ) -> Result<i64, Error> {
        let action = || format!("record follow-up {step} in thread {message}");
        let (template, pack_name, pack_version) = source_columns(draft.source.as_ref());
        let tx = begin(&mut self.conn)?;
        execute(
            &tx,
            "INSERT INTO drafts (message, follow_up, in_reply_to, message_id, subject, recipient,
                                 category, body, raw, original, notes, folder_name, created_at,
                                 updated_at, proposed_slots, template, pack_name, pack_version)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?13, ?14, ?15, ?16,
                     ?17)
             ON CONFLICT (message, follow_up) DO NOTHING",
            params![
                message,
                step,
                draft.in_reply_to,
                draft.message_id,
                draft.subject,
                draft.recipient,
                draft.category.as_str(),
                draft.body,
                draft.raw,
                draft.original,
                to_json("draft notes", &draft.notes)?,
                draft.folder_name,
                timestamp(now),
                to_json("proposed slots", &draft.proposed_slots)?,
                template,
                pack_name,
                pack_version,
            ],
        )
        .map_err(sql(action()))?;
        let id = tx
            .query_row(
                "SELECT id FROM drafts WHERE message = ?1 AND follow_up = ?2",
                params![message, step],
                |r| r.get(0),
            )
            .map_err(sql(action()))?;
        tx.commit().map_err(sql(action()))?;
        Ok(id)
    }

    /// When draft `id` left: sent by pushback, or by the rep's own client.
    pub fn sent_at(&self, id: i64) -> Result<Option<DateTime<Utc>>, Error> {
        let at: Option<Option<String>> = self
            .conn
            .query_row(
                "SELECT COALESCE(o.sent_at, a.approved_at) FROM drafts d
                 LEFT JOIN outbox o ON o.draft = d.id
                 LEFT JOIN approvals a ON a.draft = d.id
                 WHERE d.id = ?1 AND d.status = 'sent'",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(format!("read when draft {id} was sent")))?;
        at.flatten()
            .map(|t| parse_timestamp("sent_at", &t))
            .transpose()
    }

    /// Follow-up drafts still pending in threads the buyer has answered since they were prepared:
    /// "just following up" would now cross their answer.
    pub fn stale_follow_up_drafts(&self) -> Result<Vec<super::DraftRecord>, Error> {
        let action = || "list follow-up drafts the buyer's answer overtook".to_string();
        let query = format!(
            "{} WHERE m.account = ?1 AND d.follow_up > 0 AND d.status = 'pending'
               AND EXISTS (SELECT 1 FROM replies p
                           WHERE p.thread = d.message AND p.kind <> 'out_of_office'
                             AND p.received_at >= d.created_at)
             ORDER BY d.id",
            super::DRAFT_SELECT
        );
        let mut stmt = self.conn.prepare(&query).map_err(sql(action()))?;
        let rows = stmt
            .query_map([&self.account], super::DraftRow::read)
            .map_err(sql(action()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql(action()))?;
        rows.into_iter().map(super::DraftRow::into_record).collect()
    }

    /// Every draft in the thread of message row `message`: the pushback, then its follow-ups.
    pub fn thread_drafts(&self, message: i64) -> Result<Vec<super::DraftRecord>, Error> {
        let action = || format!("list the drafts in thread {message}");
        let query = format!(
            "{} WHERE d.message = ?1 AND m.account = ?2 ORDER BY d.follow_up",
            super::DRAFT_SELECT
        );
        let mut stmt = self.conn.prepare(&query).map_err(sql(action()))?;
        let rows = stmt
            .query_map(params![message, self.account], super::DraftRow::read)
            .map_err(sql(action()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql(action()))?;
        rows.into_iter().map(super::DraftRow::into_record).collect()
    }

    /// Pushback threads with something sent in them, for reply detection: the original, and
    /// every Message-ID we sent there.
    pub fn sent_threads(&self) -> Result<Vec<ThreadRecord>, Error> {
        let action = "list pushback threads";
        // Asked once per scanned message: cached, not parsed again each time.
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT m.id, m.message_id, COALESCE(m.subject, ''), m.sender, d.message_id
                 FROM messages m JOIN drafts d ON d.message = m.id
                 WHERE m.account = ?1 AND m.id IN (SELECT message FROM drafts WHERE status = 'sent')
                 ORDER BY m.id, d.follow_up",
            )
            .map_err(sql(action))?;
        let rows = stmt
            .query_map([&self.account], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })
            .map_err(sql(action))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql(action))?;
        let mut threads: Vec<ThreadRecord> = Vec::new();
        for (message, original, subject, buyer, ours) in rows {
            match threads.last_mut() {
                Some(t) if t.message == message => t.our_message_ids.push(ours),
                _ => threads.push(ThreadRecord {
                    message,
                    original_message_id: original,
                    subject,
                    buyer,
                    our_message_ids: vec![ours],
                }),
            }
        }
        Ok(threads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::store::{RecordOutcome, Store};
    use chrono::TimeZone;

    fn at(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 3, day, hour, 0, 0).unwrap()
    }

    /// A scanned RFP with its pushback draft and a questions reminder due on the 5th (deadline
    /// the 8th) and a date to confirm; returns the draft id.
    fn scanned(store: &mut Store) -> i64 {
        let mut scan = crate::adapters::store::tests::scan("1", "<rfp-1@buyer.example>", true);
        scan.reminders = vec![
            NewReminder {
                kind: ReminderKind::Questions,
                number: 0,
                due_at: Some(at(5, 9)),
                deadline_at: Some(at(8, 17)),
                about: "Questions cut-off".into(),
            },
            NewReminder {
                kind: ReminderKind::Other,
                number: 1,
                due_at: None,
                deadline_at: None,
                about: "Confirm the site visit date".into(),
            },
        ];
        match store.record_scan(&scan, at(1, 9)).unwrap() {
            RecordOutcome::Recorded { draft_id } => draft_id.unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dated_reminders_come_one_at_a_time_in_due_order_until_the_visitor_stops() {
        let mut store = Store::open_in_memory().unwrap();
        scanned(&mut store);
        let undated = store
            .reminders(false)
            .unwrap()
            .into_iter()
            .find(|r| r.due_at.is_none())
            .unwrap();
        store
            .reschedule_reminder(undated.id, at(2, 9), at(1, 10))
            .unwrap();
        let dated: Vec<_> = store
            .reminders(false)
            .unwrap()
            .into_iter()
            .filter(|r| r.due_at.is_some())
            .collect();
        assert_eq!(dated.len(), 2);
        let mut seen = Vec::new();
        store
            .each_dated_reminder(|r| {
                seen.push(r);
                Ok::<_, Error>(ControlFlow::Continue(()))
            })
            .unwrap();
        assert_eq!(
            seen, dated,
            "the order `reminders` lists them in, due first"
        );
        assert_eq!(seen[0].due_at, Some(at(2, 9)));
        let mut first = Vec::new();
        store
            .each_dated_reminder(|r| {
                first.push(r.id);
                Ok::<_, Error>(ControlFlow::Break(()))
            })
            .unwrap();
        assert_eq!(first, [dated[0].id]);
    }

    #[test]
    fn a_reminder_is_claimed_once_and_fired_once() {
        let mut store = Store::open_in_memory().unwrap();
        scanned(&mut store);
        assert_eq!(store.next_reminder_due().unwrap(), Some(at(5, 9)));
        assert!(store.due_reminders(at(5, 8)).unwrap().is_empty());
        let due = store.due_reminders(at(5, 9)).unwrap();
        assert_eq!(due.len(), 1);
        let id = due[0].id;
        assert!(!store.claim_reminder(id, at(5, 8)).unwrap(), "not due yet");
        assert!(store.claim_reminder(id, at(5, 9)).unwrap());
        // A process that stopped mid-delivery finds it still claimed and finishes it.
        assert_eq!(
            store.due_reminders(at(5, 10)).unwrap()[0].status,
            ReminderStatus::Firing
        );
        store.finish_reminder(id, None, at(5, 9)).unwrap();
        assert!(store.due_reminders(at(9, 9)).unwrap().is_empty());
        assert!(
            !store.claim_reminder(id, at(9, 9)).unwrap(),
            "fired reminders stay fired"
        );
        let fired = store.reminder(id).unwrap().unwrap();
        assert_eq!(fired.status, ReminderStatus::Fired);
        assert_eq!(fired.revision, 1);
        assert_eq!(fired.in_reply_to.as_deref(), Some("rfp-1@buyer.example"));
        // Still open until its date passes.
        assert_eq!(store.close_settled(at(8, 16)).unwrap(), 0);
        assert_eq!(store.close_settled(at(8, 17)).unwrap(), 1);
        let closed = store.reminder(id).unwrap().unwrap();
        assert_eq!(closed.status, ReminderStatus::Done);
        assert_eq!(closed.closed_why.as_deref(), Some("the date has passed"));
    }

    #[test]
    fn a_date_to_confirm_waits_for_the_rep() {
        let mut store = Store::open_in_memory().unwrap();
        scanned(&mut store);
        let confirm = store
            .reminders(true)
            .unwrap()
            .into_iter()
            .find(|r| r.status == ReminderStatus::Confirm)
            .unwrap();
        assert_eq!(confirm.due_at, None);
        assert!(
            store
                .due_reminders(at(31, 9))
                .unwrap()
                .iter()
                .all(|r| r.id != confirm.id)
        );
        let scheduled = store
            .reschedule_reminder(confirm.id, at(6, 9), at(2, 9))
            .unwrap();
        assert_eq!(scheduled.status, ReminderStatus::Scheduled);
        assert_eq!(scheduled.due_at, Some(at(6, 9)));
        let done = store.reminder_done(confirm.id, at(2, 10)).unwrap();
        assert_eq!(done.status, ReminderStatus::Done);
        // Done twice is a no-op; a closed reminder cannot be snoozed back.
        store.reminder_done(confirm.id, at(2, 11)).unwrap();
        let error = store
            .reschedule_reminder(confirm.id, at(7, 9), at(2, 12))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("cannot reschedule reminder {}: it is done", confirm.id)
        );
        assert!(matches!(
            store.reminder_done(999, at(2, 9)),
            Err(Error::NoReminder { id: 999 })
        ));
    }

    #[test]
    fn a_sent_reply_is_followed_up_until_the_buyer_answers() {
        let mut store = Store::open_in_memory().unwrap();
        let draft = scanned(&mut store);
        assert!(
            store.follow_ups_to_plan().unwrap().is_empty(),
            "nothing sent yet"
        );
        store
            .record_sent_by_client(draft, at(1, 10), &[], at(1, 10))
            .unwrap()
            .unwrap();
        let candidates = store.follow_ups_to_plan().unwrap();
        assert_eq!(candidates.len(), 1);
        assert_eq!(candidates[0].sent_at, at(1, 10));
        assert_eq!(candidates[0].sent_step, 0);
        store
            .plan_follow_up(&candidates[0], at(4, 9), "Follow-up 1 of 2", at(1, 10))
            .unwrap();
        // Planning again adds nothing.
        store
            .plan_follow_up(&candidates[0], at(4, 9), "Follow-up 1 of 2", at(1, 11))
            .unwrap();
        assert!(store.follow_ups_to_plan().unwrap().is_empty());
        let threads = store.sent_threads().unwrap();
        assert_eq!(threads.len(), 1);
        assert_eq!(threads[0].our_message_ids, ["<draft-1@northwind.example>"]);

        // An out-of-office answer moves the follow-up later, never earlier.
        let mut ooo = crate::adapters::store::tests::scan("2", "<ooo@buyer.example>", false);
        ooo.reply = Some(ThreadReply {
            thread: threads[0].message,
            kind: ReplyKind::OutOfOffice { returns_on: None },
            reasons: Vec::new(),
            effect: ReplyEffect::Reschedule(at(9, 9)),
        });
        store.record_scan(&ooo, at(2, 9)).unwrap();
        let follow_up = |store: &Store| {
            store
                .reminders(false)
                .unwrap()
                .into_iter()
                .find(|r| r.kind == ReminderKind::FollowUp)
                .unwrap()
        };
        assert_eq!(follow_up(&store).due_at, Some(at(9, 9)));
        assert_eq!(follow_up(&store).status, ReminderStatus::Scheduled);

        // A person answers: cancelled, and no follow-up is planned after it.
        let mut answer = crate::adapters::store::tests::scan("3", "<yes@buyer.example>", false);
        answer.reply = Some(ThreadReply {
            thread: threads[0].message,
            kind: ReplyKind::AgreedToCall,
            reasons: Vec::new(),
            effect: ReplyEffect::Cancel,
        });
        store.record_scan(&answer, at(3, 9)).unwrap();
        let cancelled = follow_up(&store);
        assert_eq!(cancelled.status, ReminderStatus::Cancelled);
        assert_eq!(
            cancelled.closed_why.as_deref(),
            Some("the buyer replied (agreed to call)")
        );
        assert!(
            store
                .due_reminders(at(20, 9))
                .unwrap()
                .iter()
                .all(|r| r.kind != ReminderKind::FollowUp)
        );
        assert!(store.follow_ups_to_plan().unwrap().is_empty());
    }
}

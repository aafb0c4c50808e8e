//! The state store: one SQLite file (`pushback.sqlite3`, WAL) in the state directory remembering
//! which messages were scanned, what the classifier and extractor said about them, the drafts and
//! their approval status, the outbox, the rep's feedback and reminders. Every change that belongs
//! together is one transaction, and the schema's UNIQUE constraints make a second draft for one
//! message impossible. The store never reads the clock: callers pass `now`. It does not render,
//! classify or send anything; secrets never reach it. Several accounts share the file: every
//! message row names its account, and a `Store` handle sees and changes one account's rows only
//! (the busy times, from the shared calendar, are everyone's).

use crate::adapters::pack::{PackLabel, TemplateSource};
use crate::core::model::{Category, Classification, Facts, Label, Reason};
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use rusqlite::{
    Connection, OptionalExtension, Savepoint, Transaction, TransactionBehavior, params,
};
use rusqlite_migration::{M, Migrations};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod busy;
mod client;
mod reminders;
mod sync;
pub use client::{ClientEdit, PendingDraft};
pub use reminders::{
    FollowUpCandidate, NewReminder, Reminder, ReminderKind, ReminderStatus, ReplyEffect,
    ThreadRecord, ThreadReply,
};
pub use sync::SyncProgress;

/// The database file's name inside the state directory.
pub const FILE_NAME: &str = "pushback.sqlite3";

/// Migration 1 creates everything; later migrations append here, never edit an applied one.
const MIGRATION_LIST: &[M<'static>] = &[
    M::up(include_str!("store/0001_initial.sql")),
    M::up(include_str!("store/0002_outbox_states.sql")).foreign_key_check(),
    M::up(include_str!("store/0003_imap_sync.sql")),
    M::up(include_str!("store/0004_follow_ups.sql")).foreign_key_check(),
    M::up(include_str!("store/0005_draft_slots.sql")),
    M::up(include_str!("store/0006_draft_placing.sql")),
    M::up(include_str!("store/0007_draft_sources.sql")),
    M::up(include_str!("store/0008_accounts.sql")).foreign_key_check(),
];
const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_LIST);

/// How long a write waits for another process (e.g. `pushback drafts approve` while the daemon
/// scans) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create state directory {path}: {cause}")]
    CreateDir { path: PathBuf, cause: io::Error },
    #[error("cannot lock {path}: {cause}")]
    Lock { path: PathBuf, cause: io::Error },
    #[error("cannot open state database {path}: {cause}")]
    Open {
        path: PathBuf,
        cause: rusqlite::Error,
    },
    #[error(
        "cannot open state database {path}: the disk holding it is full; free some space there, \
         then run pushback again (nothing was changed)"
    )]
    DiskFull { path: PathBuf },
    #[error("cannot migrate state database {path}: {cause}")]
    Migrate {
        path: PathBuf,
        cause: rusqlite_migration::Error,
    },
    #[error("cannot {action}: {cause}")]
    Sql {
        action: String,
        cause: rusqlite::Error,
    },
    #[error("cannot read {what} from the state database: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("cannot encode {what}: {cause}")]
    Encode {
        what: &'static str,
        cause: serde_json::Error,
    },
    #[error("no draft with id {id}")]
    NoDraft { id: i64 },
    #[error("cannot {action} draft {id}: {}", .status.explain())]
    WrongStatus {
        action: &'static str,
        id: i64,
        status: DraftStatus,
    },
    #[error("cannot {action} draft {id}: it is not in the outbox (it was never approved)")]
    NotQueued { action: &'static str, id: i64 },
    /// The outbox row does not match a recorded approval (a row written behind approve()'s back).
    #[error("cannot send draft {id}: {reason}")]
    Unapproved { id: i64, reason: &'static str },
    #[error("no reminder with id {id} (see `pushback reminders list`)")]
    NoReminder { id: i64 },
    #[error("cannot {verb} reminder {id}: it is {status}")]
    ReminderClosed {
        id: i64,
        verb: String,
        status: &'static str,
    },
    #[error("cannot send draft {id}: its next attempt is due at {due}")]
    NotDue { id: i64, due: DateTime<Utc> },
}

fn sql(action: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
    let action = action.into();
    move |cause| Error::Sql { action, cause }
}

/// Where a draft is in its life. A pending draft is approved or rejected by the rep; an approved
/// one is in the outbox and moves `Approved -> Sending -> Sent | Failed`, back to `Approved` to
/// retry, or to `Unknown` when the process died mid-send and the rep must decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DraftStatus {
    Pending,
    /// In the outbox, waiting for its (next) attempt.
    Approved,
    /// Claimed by a sender: an attempt is under way.
    Sending,
    Sent,
    /// The server refused it for good; the reply is in the outbox's `last_error`.
    Failed,
    /// An attempt was under way when the process stopped; it may or may not have left.
    Unknown,
    Rejected,
}

impl DraftStatus {
    const ALL: [DraftStatus; 7] = [
        DraftStatus::Pending,
        DraftStatus::Approved,
        DraftStatus::Sending,
        DraftStatus::Sent,
        DraftStatus::Failed,
        DraftStatus::Unknown,
        DraftStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DraftStatus::Pending => "pending",
            DraftStatus::Approved => "approved",
            DraftStatus::Sending => "sending",
            DraftStatus::Sent => "sent",
            DraftStatus::Failed => "failed",
            DraftStatus::Unknown => "unknown",
            DraftStatus::Rejected => "rejected",
        }
    }

    pub fn parse(name: &str) -> Option<DraftStatus> {
        DraftStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Why an action that needs another status cannot go on.
    fn explain(self) -> &'static str {
        match self {
            DraftStatus::Pending => "it is still pending",
            DraftStatus::Approved => "it is already approved",
            DraftStatus::Sending => "it is being sent",
            DraftStatus::Sent => "it was already sent",
            DraftStatus::Failed => "the server refused it",
            DraftStatus::Unknown => "it may or may not have been sent",
            DraftStatus::Rejected => "it was rejected",
        }
    }
}

/// Which path the rep approved a draft through, recorded with the approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovedVia {
    /// `pushback drafts approve`.
    Cli,
    /// The web page.
    Web,
    /// The rep sent the draft from their own mail client.
    ClientSent,
}

impl ApprovedVia {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovedVia::Cli => "cli",
            ApprovedVia::Web => "web",
            ApprovedVia::ClientSent => "client-sent",
        }
    }

    fn parse(name: &str) -> Option<ApprovedVia> {
        [ApprovedVia::Cli, ApprovedVia::Web, ApprovedVia::ClientSent]
            .into_iter()
            .find(|v| v.as_str() == name)
    }
}

/// The recorded approval of one version of a draft.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub draft_id: i64,
    pub version: i64,
    pub via: ApprovedVia,
    pub approved_at: DateTime<Utc>,
}

impl fmt::Display for DraftStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything one scan learnt about one message, recorded in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct ScannedMessage {
    pub mailbox: String,
    /// IMAP UID or Maildir unique name.
    pub key: String,
    pub message_id: Option<String>,
    pub subject: String,
    pub sender: Option<String>,
    pub date: Option<DateTime<FixedOffset>>,
    pub classification: Classification,
    pub facts: Facts,
    pub draft: Option<NewDraft>,
    /// Deadline reminders planned from the facts, recorded with the message.
    pub reminders: Vec<NewReminder>,
    /// The message answers a pushback thread: recorded, and its effect on the thread's
    /// follow-ups applied, in the same transaction.
    pub reply: Option<ThreadReply>,
    /// For IMAP: the folder position this message moves the watcher to, recorded in the same
    /// transaction.
    pub progress: Option<SyncProgress>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewDraft {
    /// The original's Message-ID.
    pub in_reply_to: Option<String>,
    /// The draft's own Message-ID.
    pub message_id: String,
    pub subject: String,
    /// Where the reply goes: the original's Reply-To, else its From.
    pub recipient: String,
    pub category: Category,
    /// The rendered text the rep edits.
    pub body: String,
    /// The full RFC 5322 message.
    pub raw: Vec<u8>,
    /// The message replied to, kept so an edit can re-compose the reply around it.
    pub original: Vec<u8>,
    pub notes: Vec<String>,
    /// Deterministic name in the Drafts folder.
    pub folder_name: String,
    /// The call times the draft offers, as written in it.
    pub proposed_slots: Vec<String>,
    /// The template (and pack) that wrote it; `None` for a text not rendered from one.
    pub source: Option<TemplateSource>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// The message was recorded, with the id of its new pending draft when it got one.
    Recorded { draft_id: Option<i64> },
    /// (mailbox, key) was recorded before; nothing changed.
    AlreadySeen,
    /// Another file with the same Message-ID in this mailbox already has draft `draft_id`: this
    /// copy is remembered as seen (so it is not rescanned) but gets no draft of its own.
    DuplicateMessageId { draft_id: i64 },
}

/// A message that has a draft, as `drafted_with_message_id` finds it.
#[derive(Debug, Clone, PartialEq)]
pub struct DraftedMessage {
    pub draft_id: i64,
    pub sender: Option<String>,
    pub date: Option<DateTime<FixedOffset>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DraftRecord {
    pub id: i64,
    /// The account whose mailbox the original came to.
    pub account: String,
    /// Row id of the original message.
    pub message: i64,
    /// 0 for the pushback itself, n for the n-th follow-up in its thread.
    pub follow_up: u32,
    /// Where the original lives.
    pub mailbox: String,
    pub key: String,
    pub in_reply_to: Option<String>,
    pub message_id: String,
    pub subject: String,
    pub recipient: String,
    pub category: Category,
    pub status: DraftStatus,
    pub body: String,
    pub raw: Vec<u8>,
    pub original: Vec<u8>,
    pub notes: Vec<String>,
    /// 1 when created, bumped by every edit.
    pub version: i64,
    pub folder_name: String,
    /// The call times the draft offers, as written in it.
    pub proposed_slots: Vec<String>,
    /// The template (and pack) that wrote it; `None` for drafts recorded before pushback kept it.
    pub source: Option<TemplateSource>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What became of one draft a template wrote, as `pushback pack stats` counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct DraftOutcome {
    pub source: TemplateSource,
    pub status: DraftStatus,
    /// The version the rep approved: 1 as written, more after edits. `None` until approved.
    pub approved_version: Option<i64>,
    /// The buyer's reply to this draft, once sent, agreed to a call.
    pub call_agreed: bool,
}

/// An outbox row with its draft's status.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub draft_id: i64,
    pub status: DraftStatus,
    pub message_id: String,
    pub folder_name: String,
    pub raw: Vec<u8>,
    pub queued_at: DateTime<Utc>,
    /// Attempts begun (claims) since approval or the rep's last `resend`.
    pub attempts: u32,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The server's reply to the last failed attempt.
    pub last_error: Option<String>,
}

/// A draft claimed for one send attempt: the exact approved bytes, Message-ID included. Whoever
/// holds it must finish with `mark_sent`, `mark_retry` or `mark_failed_permanent`.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub draft_id: i64,
    pub message_id: String,
    pub folder_name: String,
    pub raw: Vec<u8>,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// The original message as scanned.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRecord {
    pub id: i64,
    pub mailbox: String,
    pub key: String,
    pub message_id: Option<String>,
    pub subject: Option<String>,
    pub sender: Option<String>,
    pub date: Option<DateTime<FixedOffset>>,
    pub seen_at: DateTime<Utc>,
}

/// What `drafts show` needs beside the draft: the original, why it was classified so, what was
/// extracted from it, and the notes for the rep.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageFacts {
    pub message: MessageRecord,
    pub classification: Classification,
    pub facts: Facts,
    pub notes: Vec<String>,
}

pub struct Store {
    conn: Connection,
    /// The account this handle reads and writes ([`DEFAULT_ACCOUNT`] for a single account).
    account: String,
}

/// The account of a single-account config, and of every row written before accounts existed.
pub const DEFAULT_ACCOUNT: &str = crate::config::DEFAULT_ACCOUNT;

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.conn.path())
            .field("account", &self.account)
            .finish()
    }
}

impl Store {
    /// Opens (creating as needed, directory mode 0700) `<state_dir>/pushback.sqlite3` and brings
    /// its schema up to date, for the single account ([`DEFAULT_ACCOUNT`]).
    pub fn open(state_dir: &Path) -> Result<Store, Error> {
        Store::open_account(state_dir, DEFAULT_ACCOUNT)
    }

    /// Like [`Store::open`], for `account`'s rows.
    pub fn open_account(state_dir: &Path, account: &str) -> Result<Store, Error> {
        // SQLite reports a full disk at open (no room for its -wal and -shm files) as a bare
        // "disk I/O error": say what it is.
        let store = Store::open_dir(state_dir).map_err(|error| match error {
            Error::Open { path, .. } if disk_full(state_dir) => Error::DiskFull { path },
            other => other,
        })?;
        Ok(Store {
            account: account.to_owned(),
            ..store
        })
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    fn open_dir(state_dir: &Path) -> Result<Store, Error> {
        create_private_dir(state_dir)?;
        // Two processes opening a new state directory at once (the daemon's first start and a
        // `pushback drafts list`) would both see schema version 0 and the second would fail with
        // "table messages already exists": migrating is serialised by a lock file, held until
        // `setup` returns. Not the database file itself: its SQLite locks are POSIX locks.
        let lock_path = state_dir.join(format!("{FILE_NAME}.lock"));
        let lock_error = |cause| Error::Lock {
            path: lock_path.clone(),
            cause,
        };
        let lock = std::fs::File::create(&lock_path).map_err(lock_error)?;
        lock.lock().map_err(lock_error)?;
        let path = state_dir.join(FILE_NAME);
        let open_error = |cause| Error::Open {
            path: path.clone(),
            cause,
        };
        let conn = Connection::open(&path).map_err(open_error)?;
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
            .map_err(open_error)?;
        Store::setup(conn, &path)
    }

    pub fn open_in_memory() -> Result<Store, Error> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|cause| Error::Open {
            path: path.clone(),
            cause,
        })?;
        Store::setup(conn, &path)
    }

    fn setup(mut conn: Connection, path: &Path) -> Result<Store, Error> {
        let open_error = |cause| Error::Open {
            path: path.to_path_buf(),
            cause,
        };
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        // Room for every statement the scan path repeats (see `execute`).
        conn.set_prepared_statement_cache_capacity(64);
        // Statement journals (a savepoint's or a multi-row change's undo) in memory: as files
        // each one was a create and unlink under the temp dir, a third of a backfill's time.
        conn.pragma_update(None, "temp_store", "MEMORY")
            .map_err(open_error)?;
        // Off while migrating: rebuilding a table (migration 2) would otherwise cascade or fail.
        // Migrations that rebuild check the keys themselves before they commit.
        conn.pragma_update(None, "foreign_keys", "OFF")
            .map_err(open_error)?;
        MIGRATIONS
            .to_latest(&mut conn)
            .map_err(|cause| Error::Migrate {
                path: path.to_path_buf(),
                cause,
            })?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_error)?;
        Ok(Store {
            conn,
            account: DEFAULT_ACCOUNT.to_owned(),
        })
    }

    pub fn is_seen(&self, mailbox: &str, key: &str) -> Result<bool, Error> {
        is_seen(&self.conn, &self.account, mailbox, key)
    }

    /// The lock file for `activity` in this account beside the database
    /// (`pushback.sqlite3.placing.lock`, `pushback.sqlite3.work.placing.lock` for account
    /// `work`), opened for the caller to `lock` or `try_lock`: tasks and processes acting on the
    /// same account's mailbox then take turns at it. `None` for an in-memory store, which
    /// nothing shares.
    pub fn lock_file(&self, activity: &str) -> Result<Option<std::fs::File>, Error> {
        let Some(db) = self.conn.path().filter(|p| !p.is_empty()) else {
            return Ok(None);
        };
        let path = if self.account == DEFAULT_ACCOUNT {
            PathBuf::from(format!("{db}.{activity}.lock"))
        } else {
            PathBuf::from(format!("{db}.{}.{activity}.lock", self.account))
        };
        std::fs::File::create(&path)
            .map(Some)
            .map_err(|cause| Error::Lock { path, cause })
    }

    /// The message with this Message-ID in this mailbox that already has a draft, if any: the
    /// caller tells a copy of it (same sender and Date) from a different message reusing the id.
    pub fn drafted_with_message_id(
        &self,
        mailbox: &str,
        message_id: &str,
    ) -> Result<Option<DraftedMessage>, Error> {
        let action = || format!("look up drafts for message-id {message_id} in {mailbox}");
        let row = self
            .conn
            .prepare_cached(
                "SELECT d.id, m.sender, m.date FROM drafts d JOIN messages m ON m.id = d.message
                 WHERE m.account = ?3 AND m.mailbox = ?1 AND m.message_id = ?2
                   AND d.follow_up = 0",
            )
            .and_then(|mut drafted| {
                drafted.query_row(params![mailbox, message_id, self.account], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                })
            })
            .optional()
            .map_err(sql(action()))?;
        row.map(|(draft_id, sender, date)| {
            let date = date
                .map(|d| {
                    DateTime::parse_from_rfc3339(&d).map_err(|e| Error::Corrupt {
                        what: "message date".into(),
                        detail: format!("{d:?}: {e}"),
                    })
                })
                .transpose()?;
            Ok(DraftedMessage {
                draft_id,
                sender,
                date,
            })
        })
        .transpose()
    }

    /// Records message, verdict, facts and the optional pending draft in one transaction.
    /// Recording a (mailbox, key) twice, or drafting twice for one Message-ID in one mailbox,
    /// records no second draft (see [`RecordOutcome`]).
    pub fn record_scan(
        &mut self,
        scan: &ScannedMessage,
        now: DateTime<Utc>,
    ) -> Result<RecordOutcome, Error> {
        let tx = begin(&mut self.conn)?;
        if let Some(progress) = scan.progress {
            sync::advance(&tx, &self.account, &scan.mailbox, progress, now)?;
        }
        if is_seen(&tx, &self.account, &scan.mailbox, &scan.key)? {
            tx.commit().map_err(sql(format!(
                "record message {} in {}",
                scan.key, scan.mailbox
            )))?;
            return Ok(RecordOutcome::AlreadySeen);
        }
        let duplicate = match (&scan.draft, &scan.message_id) {
            (Some(_), Some(message_id)) => {
                draft_for_message_id(&tx, &self.account, &scan.mailbox, message_id)?
            }
            _ => None,
        };
        let action = || format!("record message {} in {}", scan.key, scan.mailbox);
        let skip_reason =
            duplicate.map(|id| format!("copy of a message already drafted as draft {id}"));
        execute(&tx, "INSERT INTO messages (mailbox, key, message_id, subject, sender, date, seen_at, skip_reason, account)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                scan.mailbox,
                scan.key,
                scan.message_id,
                scan.subject,
                scan.sender,
                scan.date.map(|d| d.to_rfc3339()),
                timestamp(now),
                skip_reason,
                self.account,
            ],
        )
        .map_err(sql(action()))?;
        let message = tx.last_insert_rowid();
        if let Some(draft_id) = duplicate {
            tx.commit().map_err(sql(action()))?;
            return Ok(RecordOutcome::DuplicateMessageId { draft_id });
        }
        let c = &scan.classification;
        execute(&tx, "INSERT INTO verdicts (message, label, category, score, reasons) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                message,
                c.label.as_str(),
                c.category.as_str(),
                c.score,
                to_json("classifier reasons", &c.reasons)?
            ],
        )
        .map_err(sql(action()))?;
        execute(
            &tx,
            "INSERT INTO facts (message, facts) VALUES (?1, ?2)",
            params![message, to_json("extracted facts", &scan.facts)?],
        )
        .map_err(sql(action()))?;
        let draft_id = match &scan.draft {
            None => None,
            Some(d) => {
                let (template, pack_name, pack_version) = source_columns(d.source.as_ref());
                execute(&tx, "INSERT INTO drafts (message, in_reply_to, message_id, subject, recipient, category,
                                         body, raw, original, notes, folder_name, created_at, updated_at,
                                         proposed_slots, template, pack_name, pack_version)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13, ?14, ?15, ?16)",
                    params![
                        message,
                        d.in_reply_to,
                        d.message_id,
                        d.subject,
                        d.recipient,
                        d.category.as_str(),
                        d.body,
                        d.raw,
                        d.original,
                        to_json("draft notes", &d.notes)?,
                        d.folder_name,
                        timestamp(now),
                        to_json("proposed slots", &d.proposed_slots)?,
                        template,
                        pack_name,
                        pack_version,
                    ],
                )
                .map_err(sql(format!("record the draft for {}", scan.key)))?;
                Some(tx.last_insert_rowid())
            }
        };
        reminders::insert(&tx, message, &scan.reminders, now)?;
        if let Some(reply) = &scan.reply {
            reminders::record_reply(&tx, message, reply, now)?;
        }
        tx.commit().map_err(sql(action()))?;
        Ok(RecordOutcome::Recorded { draft_id })
    }

    /// Remembers a message that cannot be scanned (unparseable, too big) with its reason, so it is
    /// not retried on every scan. A message already recorded stays as it is.
    pub fn record_skip(
        &mut self,
        mailbox: &str,
        key: &str,
        reason: &str,
        progress: Option<SyncProgress>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let action = || format!("record skipped message {key} in {mailbox}");
        let tx = begin(&mut self.conn)?;
        if let Some(progress) = progress {
            sync::advance(&tx, &self.account, mailbox, progress, now)?;
        }
        execute(
            &tx,
            "INSERT INTO messages (account, mailbox, key, seen_at, skip_reason)
             VALUES (?5, ?1, ?2, ?3, ?4)
             ON CONFLICT (account, mailbox, key) DO NOTHING",
            params![mailbox, key, timestamp(now), reason, self.account],
        )
        .map_err(sql(action()))?;
        tx.commit().map_err(sql(action()))
    }

    /// Drafts oldest first, all of them or those with `status`.
    pub fn drafts(&self, status: Option<DraftStatus>) -> Result<Vec<DraftRecord>, Error> {
        let query = format!(
            "{DRAFT_SELECT} WHERE m.account = ?2 AND (?1 IS NULL OR d.status = ?1)
             ORDER BY d.created_at, d.id"
        );
        let mut stmt = self.conn.prepare(&query).map_err(sql("list drafts"))?;
        let rows = stmt
            .query_map(
                params![status.map(DraftStatus::as_str), self.account],
                DraftRow::read,
            )
            .map_err(sql("list drafts"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("list drafts"))?;
        rows.into_iter().map(DraftRow::into_record).collect()
    }

    pub fn draft(&self, id: i64) -> Result<Option<DraftRecord>, Error> {
        draft(&self.conn, &self.account, id)
    }

    /// Replaces a pending draft's text and message (the rep edited it) and bumps its version.
    pub fn update_draft(
        &mut self,
        id: i64,
        body: &str,
        raw: &[u8],
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<DraftRecord, Error> {
        let tx = begin(&mut self.conn)?;
        require_pending(&tx, &self.account, id, "edit")?;
        execute(
            &tx,
            "UPDATE drafts SET body = ?2, raw = ?3, message_id = ?4, version = version + 1,
                               updated_at = ?5
             WHERE id = ?1",
            params![id, body, raw, message_id, timestamp(now)],
        )
        .map_err(sql(format!("edit draft {id}")))?;
        let record = draft(&tx, &self.account, id)?.ok_or(Error::NoDraft { id })?;
        tx.commit().map_err(sql(format!("edit draft {id}")))?;
        Ok(record)
    }

    /// Approves a pending draft: status, the approval event (when, through which path, the exact
    /// bytes), the outbox row and a `procurement` feedback example (the rep confirmed the
    /// classification; a follow-up adds none, its text is ours) in one transaction. This is the only way to put a draft in the outbox (a
    /// trigger refuses any other); approving twice is an error, so there is never a second row.
    pub fn approve(
        &mut self,
        id: i64,
        via: ApprovedVia,
        tokens: &[String],
        now: DateTime<Utc>,
    ) -> Result<DraftRecord, Error> {
        let action = || format!("approve draft {id}");
        let tx = begin(&mut self.conn)?;
        require_pending(&tx, &self.account, id, "approve")?;
        execute(
            &tx,
            "UPDATE drafts SET status = 'approved', updated_at = ?2 WHERE id = ?1",
            params![id, timestamp(now)],
        )
        .map_err(sql(action()))?;
        record_approval(&tx, id, via, tokens, now, now)?;
        execute(
            &tx,
            "INSERT INTO outbox (draft, raw, queued_at, next_attempt_at)
             SELECT id, raw, ?2, ?2 FROM drafts WHERE id = ?1",
            params![id, timestamp(now)],
        )
        .map_err(sql(action()))?;
        let record = draft(&tx, &self.account, id)?.ok_or(Error::NoDraft { id })?;
        tx.commit().map_err(sql(action()))?;
        Ok(record)
    }

    /// The recorded approval of a draft, if it was approved.
    pub fn approval(&self, draft_id: i64) -> Result<Option<Approval>, Error> {
        let row = self
            .conn
            .query_row(
                "SELECT version, via, approved_at FROM approvals WHERE draft = ?1",
                [draft_id],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(sql(format!("read the approval of draft {draft_id}")))?;
        row.map(|(version, via, approved_at)| {
            Ok(Approval {
                draft_id,
                version,
                via: ApprovedVia::parse(&via)
                    .ok_or_else(|| corrupt("approval path", &via, "unknown path"))?,
                approved_at: parse_timestamp("approved_at", &approved_at)?,
            })
        })
        .transpose()
    }

    /// Rejects a pending draft. With `not_procurement` the rep also says the classifier was wrong,
    /// which is recorded as an `other` feedback example.
    pub fn reject(
        &mut self,
        id: i64,
        not_procurement: bool,
        tokens: &[String],
        now: DateTime<Utc>,
    ) -> Result<DraftRecord, Error> {
        let action = || format!("reject draft {id}");
        let tx = begin(&mut self.conn)?;
        require_pending(&tx, &self.account, id, "reject")?;
        execute(
            &tx,
            "UPDATE drafts SET status = 'rejected', updated_at = ?2 WHERE id = ?1",
            params![id, timestamp(now)],
        )
        .map_err(sql(action()))?;
        if not_procurement {
            execute(
                &tx,
                "INSERT INTO feedback (message, label, category, tokens, created_at)
                 SELECT message, 'other', 'none', ?2, ?3 FROM drafts
                 WHERE id = ?1 AND follow_up = 0",
                params![id, to_json("feedback tokens", tokens)?, timestamp(now)],
            )
            .map_err(sql(action()))?;
        }
        let record = draft(&tx, &self.account, id)?.ok_or(Error::NoDraft { id })?;
        tx.commit().map_err(sql(action()))?;
        Ok(record)
    }

    /// Every draft of this account that records its template, oldest first, with what became
    /// of it.
    pub fn draft_outcomes(&self) -> Result<Vec<DraftOutcome>, Error> {
        let action = || "read what became of the drafts".to_string();
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.template, d.pack_name, d.pack_version, d.status, a.version,
                        EXISTS (SELECT 1 FROM replies r
                                WHERE r.answered_draft = d.id AND r.kind = 'agreed_to_call')
                 FROM drafts d JOIN messages m ON m.id = d.message
                      LEFT JOIN approvals a ON a.draft = d.id
                 WHERE d.template IS NOT NULL AND m.account = ?1 ORDER BY d.id",
            )
            .map_err(sql(action()))?;
        let rows = stmt
            .query_map([&self.account], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, bool>(5)?,
                ))
            })
            .map_err(sql(action()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql(action()))?;
        rows.into_iter()
            .map(
                |(template, name, version, status, approved_version, call_agreed)| {
                    Ok(DraftOutcome {
                        source: TemplateSource {
                            template,
                            pack: pack_label(name, version),
                        },
                        status: parse_status(&status)?,
                        approved_version,
                        call_agreed,
                    })
                },
            )
            .collect()
    }

    /// Every outbox row not sent yet (approved, sending, failed or unknown), in approval order.
    pub fn outbox_pending(&self) -> Result<Vec<OutboxItem>, Error> {
        self.outbox_where(
            "d.status IN ('approved', 'sending', 'failed', 'unknown')",
            None,
        )
    }

    /// Approved drafts whose next attempt is due at `now`, the longest waiting first.
    pub fn outbox_due(&self, now: DateTime<Utc>) -> Result<Vec<OutboxItem>, Error> {
        self.outbox_where(
            "d.status = 'approved' AND o.next_attempt_at <= ?2",
            Some(now),
        )
    }

    /// Drafts left in `sending`: the process stopped during an attempt. Do not resend them
    /// blindly: look for their Message-ID in the Sent folder, then `mark_sent` or `mark_unknown`.
    pub fn in_flight(&self) -> Result<Vec<OutboxItem>, Error> {
        self.outbox_where("d.status = 'sending'", None)
    }

    fn outbox_where(
        &self,
        condition: &str,
        now: Option<DateTime<Utc>>,
    ) -> Result<Vec<OutboxItem>, Error> {
        let action = "list the outbox";
        let query = format!(
            "SELECT o.draft, d.status, d.message_id, d.folder_name, o.raw, o.queued_at,
                    o.attempts, o.last_attempt_at, o.next_attempt_at, o.last_error
             FROM outbox o JOIN drafts d ON d.id = o.draft JOIN messages m ON m.id = d.message
             WHERE m.account = ?1 AND {condition}
             ORDER BY COALESCE(o.next_attempt_at, o.queued_at), o.queued_at, o.id"
        );
        let mut stmt = self.conn.prepare(&query).map_err(sql(action))?;
        let mut params = vec![self.account.clone()];
        params.extend(now.map(timestamp));
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |r| {
                Ok(OutboxRow {
                    draft_id: r.get(0)?,
                    status: r.get(1)?,
                    message_id: r.get(2)?,
                    folder_name: r.get(3)?,
                    raw: r.get(4)?,
                    queued_at: r.get(5)?,
                    attempts: r.get(6)?,
                    last_attempt_at: r.get(7)?,
                    next_attempt_at: r.get(8)?,
                    last_error: r.get(9)?,
                })
            })
            .map_err(sql(action))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql(action))?;
        rows.into_iter().map(OutboxRow::into_item).collect()
    }

    /// Moves an approved, due draft to `sending` in one transaction and returns the bytes the rep
    /// approved, Message-ID and all. Refuses a draft that is not approved (so a second claim of
    /// the same draft fails), not due, or whose outbox row does not match its recorded approval.
    pub fn claim_for_sending(&mut self, draft_id: i64, now: DateTime<Utc>) -> Result<Claim, Error> {
        let verb = "send";
        let action = || format!("claim draft {draft_id} for sending");
        let tx = begin(&mut self.conn)?;
        let status = require_queued(&tx, &self.account, draft_id, verb)?;
        if status != DraftStatus::Approved {
            return Err(Error::WrongStatus {
                action: verb,
                id: draft_id,
                status,
            });
        }
        let (raw, due, approved_raw, approved_version, version, message_id, folder_name, attempts) =
            tx.query_row(
                "SELECT o.raw, o.next_attempt_at, a.raw, a.version, d.version, d.message_id,
                        d.folder_name, o.attempts
                 FROM outbox o JOIN drafts d ON d.id = o.draft
                 LEFT JOIN approvals a ON a.draft = o.draft
                 WHERE o.draft = ?1",
                [draft_id],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, Option<Vec<u8>>>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                        r.get::<_, u32>(7)?,
                    ))
                },
            )
            .map_err(sql(action()))?;
        let unapproved = |reason| Error::Unapproved {
            id: draft_id,
            reason,
        };
        let approved_raw = approved_raw.ok_or(unapproved("there is no recorded approval"))?;
        if approved_version != Some(version) {
            return Err(unapproved("the approval is for another version"));
        }
        if approved_raw != raw {
            return Err(unapproved("the queued message is not the one approved"));
        }
        let due = due
            .map(|t| parse_timestamp("outbox next_attempt_at", &t))
            .transpose()?
            .ok_or(unapproved("it has no attempt scheduled"))?;
        if due > now {
            return Err(Error::NotDue { id: draft_id, due });
        }
        set_status(
            &tx,
            draft_id,
            DraftStatus::Approved,
            DraftStatus::Sending,
            now,
        )?;
        execute(&tx, "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?2, next_attempt_at = NULL
             WHERE draft = ?1",
            params![draft_id, timestamp(now)],
        )
        .map_err(sql(action()))?;
        tx.commit().map_err(sql(action()))?;
        Ok(Claim {
            draft_id,
            message_id,
            folder_name,
            raw,
            attempt: attempts + 1,
        })
    }

    /// The attempt succeeded (or the message was found in the Sent folder): `sending -> sent`.
    /// Marking a sent draft again is a no-op.
    pub fn mark_sent(&mut self, draft_id: i64, now: DateTime<Utc>) -> Result<(), Error> {
        self.finish_sent(draft_id, &[DraftStatus::Sending], "mark as sent", now)
    }

    /// The rep says a draft in `unknown` or `failed` did leave (`drafts mark-sent`).
    pub fn confirm_sent(&mut self, draft_id: i64, now: DateTime<Utc>) -> Result<(), Error> {
        self.finish_sent(
            draft_id,
            &[DraftStatus::Unknown, DraftStatus::Failed],
            "confirm as sent",
            now,
        )
    }

    fn finish_sent(
        &mut self,
        draft_id: i64,
        from: &[DraftStatus],
        verb: &'static str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let action = || format!("{verb} draft {draft_id}");
        let tx = begin(&mut self.conn)?;
        let status = require_queued(&tx, &self.account, draft_id, verb)?;
        if status == DraftStatus::Sent {
            return Ok(());
        }
        if !from.contains(&status) {
            return Err(Error::WrongStatus {
                action: verb,
                id: draft_id,
                status,
            });
        }
        set_status(&tx, draft_id, status, DraftStatus::Sent, now)?;
        execute(
            &tx,
            "UPDATE outbox SET sent_at = ?2, next_attempt_at = NULL WHERE draft = ?1",
            params![draft_id, timestamp(now)],
        )
        .map_err(sql(action()))?;
        tx.commit().map_err(sql(action()))
    }

    /// The attempt failed for now (4xx, connection lost, timeout): `sending -> approved`, due
    /// again at `next_attempt_at`, with the error kept for the rep.
    pub fn mark_retry(
        &mut self,
        draft_id: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.finish_attempt(
            draft_id,
            DraftStatus::Approved,
            Some(error),
            Some(next_attempt_at),
            now,
        )
    }

    /// The server refused the message for good (5xx): `sending -> failed`, with its reply.
    pub fn mark_failed_permanent(
        &mut self,
        draft_id: i64,
        reply: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.finish_attempt(draft_id, DraftStatus::Failed, Some(reply), None, now)
    }

    /// A draft found in `sending` at startup and not in the Sent folder: `sending -> unknown`,
    /// for the rep to `resend` or `confirm_sent`.
    pub fn mark_unknown(&mut self, draft_id: i64, now: DateTime<Utc>) -> Result<(), Error> {
        self.finish_attempt(draft_id, DraftStatus::Unknown, None, None, now)
    }

    fn finish_attempt(
        &mut self,
        draft_id: i64,
        to: DraftStatus,
        error: Option<&str>,
        next_attempt_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let action = || format!("record the attempt to send draft {draft_id}");
        let tx = begin(&mut self.conn)?;
        let status = require_queued(&tx, &self.account, draft_id, "finish sending")?;
        if status != DraftStatus::Sending {
            return Err(Error::WrongStatus {
                action: "finish sending",
                id: draft_id,
                status,
            });
        }
        set_status(&tx, draft_id, DraftStatus::Sending, to, now)?;
        execute(
            &tx,
            "UPDATE outbox SET last_error = COALESCE(?2, last_error), next_attempt_at = ?3
             WHERE draft = ?1",
            params![draft_id, error, next_attempt_at.map(timestamp)],
        )
        .map_err(sql(action()))?;
        tx.commit().map_err(sql(action()))
    }

    /// The rep asks to send a draft in `unknown` or `failed` again (`drafts resend`): back to
    /// `approved`, due at `now`, with a fresh count of attempts. The approval and the message,
    /// Message-ID included, stay as they were.
    pub fn resend(&mut self, draft_id: i64, now: DateTime<Utc>) -> Result<(), Error> {
        let verb = "resend";
        let action = || format!("{verb} draft {draft_id}");
        let tx = begin(&mut self.conn)?;
        let status = require_queued(&tx, &self.account, draft_id, verb)?;
        if !matches!(status, DraftStatus::Unknown | DraftStatus::Failed) {
            return Err(Error::WrongStatus {
                action: verb,
                id: draft_id,
                status,
            });
        }
        set_status(&tx, draft_id, status, DraftStatus::Approved, now)?;
        execute(
            &tx,
            "UPDATE outbox SET attempts = 0, next_attempt_at = ?2 WHERE draft = ?1",
            params![draft_id, timestamp(now)],
        )
        .map_err(sql(action()))?;
        tx.commit().map_err(sql(action()))
    }

    /// The rep's verdicts as training examples, oldest first.
    pub fn feedback_examples(&self) -> Result<Vec<(Vec<String>, Label)>, Error> {
        let action = "read feedback";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT f.tokens, f.label FROM feedback f JOIN messages m ON m.id = f.message
                 WHERE m.account = ?1 ORDER BY f.id",
            )
            .map_err(sql(action))?;
        let rows = stmt
            .query_map([&self.account], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(sql(action))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql(action))?;
        rows.into_iter()
            .map(|(tokens, label)| {
                Ok((from_json("feedback tokens", &tokens)?, parse_label(&label)?))
            })
            .collect()
    }

    /// The original message behind draft `draft_id`, its verdict, facts and the draft's notes.
    pub fn message_facts(&self, draft_id: i64) -> Result<Option<MessageFacts>, Error> {
        let action = || format!("read the message behind draft {draft_id}");
        let row = self
            .conn
            .query_row(
                &format!(
                    "SELECT {MESSAGE_COLUMNS}, {VERDICT_COLUMNS}, f.facts, d.notes
                     FROM drafts d
                     JOIN messages m ON m.id = d.message
                     JOIN verdicts v ON v.message = m.id
                     JOIN facts f ON f.message = m.id
                     WHERE d.id = ?1"
                ),
                [draft_id],
                |r| {
                    Ok((
                        MessageRow::read(r)?,
                        VerdictRow::read(r, MessageRow::COLUMNS)?,
                        r.get::<_, String>(MessageRow::COLUMNS + VerdictRow::COLUMNS)?,
                        r.get::<_, String>(MessageRow::COLUMNS + VerdictRow::COLUMNS + 1)?,
                    ))
                },
            )
            .optional()
            .map_err(sql(action()))?;
        let Some((message, verdict, facts, notes)) = row else {
            return Ok(None);
        };
        Ok(Some(MessageFacts {
            message: message.into_record()?,
            classification: verdict.into_classification()?,
            facts: from_json("extracted facts", &facts)?,
            notes: from_json("draft notes", &notes)?,
        }))
    }

    /// The `limit` messages scanned last, newest first, with what the classifier concluded and
    /// why: which signals fire on the mail that actually arrives.
    pub fn recent_verdicts(
        &self,
        limit: u32,
    ) -> Result<Vec<(MessageRecord, Classification)>, Error> {
        let action = "list recent verdicts";
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {MESSAGE_COLUMNS}, {VERDICT_COLUMNS}
                 FROM messages m JOIN verdicts v ON v.message = m.id
                 WHERE m.account = ?2
                 ORDER BY m.seen_at DESC, m.id DESC LIMIT ?1"
            ))
            .map_err(sql(action))?;
        let rows = stmt
            .query_map(params![limit, self.account], |r| {
                Ok((
                    MessageRow::read(r)?,
                    VerdictRow::read(r, MessageRow::COLUMNS)?,
                ))
            })
            .map_err(sql(action))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql(action))?;
        rows.into_iter()
            .map(|(message, verdict)| Ok((message.into_record()?, verdict.into_classification()?)))
            .collect()
    }
}

/// The columns `MessageRow::read` reads, first in a SELECT over `messages m`.
const MESSAGE_COLUMNS: &str =
    "m.id, m.mailbox, m.key, m.message_id, m.subject, m.sender, m.date, m.seen_at";
/// The columns `VerdictRow::read` reads, over `verdicts v`.
const VERDICT_COLUMNS: &str = "v.label, v.category, v.score, v.reasons";

struct MessageRow {
    id: i64,
    mailbox: String,
    key: String,
    message_id: Option<String>,
    subject: Option<String>,
    sender: Option<String>,
    date: Option<String>,
    seen_at: String,
}

impl MessageRow {
    const COLUMNS: usize = 8;

    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRow> {
        Ok(MessageRow {
            id: r.get(0)?,
            mailbox: r.get(1)?,
            key: r.get(2)?,
            message_id: r.get(3)?,
            subject: r.get(4)?,
            sender: r.get(5)?,
            date: r.get(6)?,
            seen_at: r.get(7)?,
        })
    }

    fn into_record(self) -> Result<MessageRecord, Error> {
        Ok(MessageRecord {
            id: self.id,
            mailbox: self.mailbox,
            key: self.key,
            message_id: self.message_id,
            subject: self.subject,
            sender: self.sender,
            date: self
                .date
                .map(|d| {
                    DateTime::parse_from_rfc3339(&d).map_err(|e| Error::Corrupt {
                        what: "message date".into(),
                        detail: format!("{d:?}: {e}"),
                    })
                })
                .transpose()?,
            seen_at: parse_timestamp("message seen_at", &self.seen_at)?,
        })
    }
}

struct VerdictRow {
    label: String,
    category: String,
    score: f64,
    reasons: String,
}

impl VerdictRow {
    const COLUMNS: usize = 4;

    /// Reads `VERDICT_COLUMNS` starting at column `at`.
    fn read(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<VerdictRow> {
        Ok(VerdictRow {
            label: r.get(at)?,
            category: r.get(at + 1)?,
            score: r.get(at + 2)?,
            reasons: r.get(at + 3)?,
        })
    }

    fn into_classification(self) -> Result<Classification, Error> {
        Ok(Classification {
            label: parse_label(&self.label)?,
            category: parse_category(&self.category)?,
            score: self.score,
            reasons: from_json::<Vec<Reason>>("classifier reasons", &self.reasons)?,
        })
    }
}

/// Records the rep's approval of draft `id`'s current version (`via`, at `approved_at`) and, for
/// a thread's first reply, a `procurement` feedback example: the rep confirmed the classification.
/// A follow-up adds none; its text is ours. Inside the caller's transaction.
fn record_approval(
    tx: &Connection,
    id: i64,
    via: ApprovedVia,
    tokens: &[String],
    approved_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let action = || format!("record the approval of draft {id}");
    execute(
        tx,
        "INSERT INTO approvals (draft, version, raw, via, approved_at)
         SELECT id, version, raw, ?2, ?3 FROM drafts WHERE id = ?1",
        params![id, via.as_str(), timestamp(approved_at)],
    )
    .map_err(sql(action()))?;
    execute(
        tx,
        "INSERT INTO feedback (message, label, category, tokens, created_at)
         SELECT message, 'procurement', category, ?2, ?3 FROM drafts
         WHERE id = ?1 AND follow_up = 0",
        params![id, to_json("feedback tokens", tokens)?, timestamp(now)],
    )
    .map_err(sql(action()))?;
    Ok(())
}

/// One change that belongs together: its own transaction, or a savepoint inside a batch
/// (`Store::begin_batch`), so a failed change undoes only itself.
enum Tx<'c> {
    Own(Transaction<'c>),
    InBatch(Savepoint<'c>),
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            Tx::Own(tx) => tx,
            Tx::InBatch(savepoint) => savepoint,
        }
    }
}

impl Tx<'_> {
    fn commit(self) -> rusqlite::Result<()> {
        match self {
            Tx::Own(tx) => tx.commit(),
            Tx::InBatch(savepoint) => savepoint.commit(),
        }
    }
}

/// Writers take the lock up front, so a check-then-insert cannot race another process. Inside a
/// batch the lock is already held.
fn begin(conn: &mut Connection) -> Result<Tx<'_>, Error> {
    if conn.is_autocommit() {
        conn.transaction_with_behavior(TransactionBehavior::Immediate)
            .map(Tx::Own)
    } else {
        conn.savepoint().map(Tx::InBatch)
    }
    .map_err(sql("begin a transaction"))
}

/// `conn.execute` through the connection's statement cache: the scan path runs the same few
/// statements for every message, and parsing them again cost more than running them.
fn execute(
    conn: &Connection,
    statement: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(statement)?.execute(params)
}

/// Whether the file system holding `dir` has no room for SQLite's shared-memory file (32 KiB).
fn disk_full(dir: &Path) -> bool {
    let probe = dir.join(format!("{FILE_NAME}.space-probe"));
    let full = std::fs::write(&probe, [0u8; 32 * 1024])
        .is_err_and(|e| e.kind() == io::ErrorKind::StorageFull);
    let _ = std::fs::remove_file(&probe);
    full
}

fn create_private_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|cause| Error::CreateDir {
            path: dir.to_path_buf(),
            cause,
        })
}

fn is_seen(conn: &Connection, account: &str, mailbox: &str, key: &str) -> Result<bool, Error> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE account = ?3 AND mailbox = ?1 AND key = ?2)",
    )
    .and_then(|mut seen| seen.query_row(params![mailbox, key, account], |r| r.get(0)))
    .map_err(sql(format!("look up message {key} in {mailbox}")))
}

fn draft_for_message_id(
    conn: &Connection,
    account: &str,
    mailbox: &str,
    message_id: &str,
) -> Result<Option<i64>, Error> {
    conn.prepare_cached(
        "SELECT d.id FROM drafts d JOIN messages m ON m.id = d.message
         WHERE m.account = ?3 AND m.mailbox = ?1 AND m.message_id = ?2 AND d.follow_up = 0",
    )
    .and_then(|mut drafted| drafted.query_row(params![mailbox, message_id, account], |r| r.get(0)))
    .optional()
    .map_err(sql(format!(
        "look up drafts for message-id {message_id} in {mailbox}"
    )))
}

/// A draft of another account is no draft of this one.
fn require_pending(
    conn: &Connection,
    account: &str,
    id: i64,
    action: &'static str,
) -> Result<(), Error> {
    let status: Option<String> = conn
        .query_row(
            "SELECT d.status FROM drafts d JOIN messages m ON m.id = d.message
             WHERE d.id = ?1 AND m.account = ?2",
            params![id, account],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(format!("{action} draft {id}")))?;
    let status = parse_status(&status.ok_or(Error::NoDraft { id })?)?;
    if status != DraftStatus::Pending {
        return Err(Error::WrongStatus { action, id, status });
    }
    Ok(())
}

/// The status of a draft that has an outbox row; `NoDraft` or `NotQueued` otherwise.
fn require_queued(
    conn: &Connection,
    account: &str,
    draft_id: i64,
    action: &'static str,
) -> Result<DraftStatus, Error> {
    let row: Option<(String, Option<i64>)> = conn
        .query_row(
            "SELECT d.status, o.id FROM drafts d JOIN messages m ON m.id = d.message
             LEFT JOIN outbox o ON o.draft = d.id
             WHERE d.id = ?1 AND m.account = ?2",
            params![draft_id, account],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sql(format!("{action} draft {draft_id}")))?;
    match row {
        None => Err(Error::NoDraft { id: draft_id }),
        Some((_, None)) => Err(Error::NotQueued {
            action,
            id: draft_id,
        }),
        Some((status, Some(_))) => parse_status(&status),
    }
}

/// One outbox transition; the `from` condition makes a racing second writer change nothing.
fn set_status(
    conn: &Connection,
    draft_id: i64,
    from: DraftStatus,
    to: DraftStatus,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let changed = execute(
        conn,
        "UPDATE drafts SET status = ?3, updated_at = ?4 WHERE id = ?1 AND status = ?2",
        params![draft_id, from.as_str(), to.as_str(), timestamp(now)],
    )
    .map_err(sql(format!("move draft {draft_id} to {to}")))?;
    if changed != 1 {
        return Err(Error::WrongStatus {
            action: "change the status of",
            id: draft_id,
            status: from,
        });
    }
    Ok(())
}

/// An outbox row as stored, before its timestamps are parsed.
struct OutboxRow {
    draft_id: i64,
    status: String,
    message_id: String,
    folder_name: String,
    raw: Vec<u8>,
    queued_at: String,
    attempts: u32,
    last_attempt_at: Option<String>,
    next_attempt_at: Option<String>,
    last_error: Option<String>,
}

impl OutboxRow {
    fn into_item(self) -> Result<OutboxItem, Error> {
        let time = |what, t: Option<String>| t.map(|t| parse_timestamp(what, &t)).transpose();
        Ok(OutboxItem {
            draft_id: self.draft_id,
            status: parse_status(&self.status)?,
            message_id: self.message_id,
            folder_name: self.folder_name,
            raw: self.raw,
            queued_at: parse_timestamp("outbox queued_at", &self.queued_at)?,
            attempts: self.attempts,
            last_attempt_at: time("outbox last_attempt_at", self.last_attempt_at)?,
            next_attempt_at: time("outbox next_attempt_at", self.next_attempt_at)?,
            last_error: self.last_error,
        })
    }
}

const DRAFT_SELECT: &str = "SELECT d.id, d.message, m.mailbox, m.key, d.in_reply_to, d.message_id,
        d.subject, d.recipient, d.category, d.status, d.body, d.raw, d.original, d.notes, d.version,
        d.folder_name, d.created_at, d.updated_at, d.follow_up, d.proposed_slots, d.template,
        d.pack_name, d.pack_version, m.account
    FROM drafts d JOIN messages m ON m.id = d.message";

fn draft(conn: &Connection, account: &str, id: i64) -> Result<Option<DraftRecord>, Error> {
    conn.query_row(
        &format!("{DRAFT_SELECT} WHERE d.id = ?1 AND m.account = ?2"),
        params![id, account],
        DraftRow::read,
    )
    .optional()
    .map_err(sql(format!("read draft {id}")))?
    .map(DraftRow::into_record)
    .transpose()
}

/// A drafts row as stored, before its text columns are parsed.
struct DraftRow {
    id: i64,
    account: String,
    message: i64,
    mailbox: String,
    key: String,
    in_reply_to: Option<String>,
    message_id: String,
    subject: String,
    recipient: String,
    category: String,
    status: String,
    body: String,
    raw: Vec<u8>,
    original: Vec<u8>,
    notes: String,
    version: i64,
    folder_name: String,
    created_at: String,
    updated_at: String,
    follow_up: u32,
    proposed_slots: String,
    template: Option<String>,
    pack_name: Option<String>,
    pack_version: Option<String>,
}

impl DraftRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<DraftRow> {
        Ok(DraftRow {
            id: r.get(0)?,
            message: r.get(1)?,
            mailbox: r.get(2)?,
            key: r.get(3)?,
            in_reply_to: r.get(4)?,
            message_id: r.get(5)?,
            subject: r.get(6)?,
            recipient: r.get(7)?,
            category: r.get(8)?,
            status: r.get(9)?,
            body: r.get(10)?,
            raw: r.get(11)?,
            original: r.get(12)?,
            notes: r.get(13)?,
            version: r.get(14)?,
            folder_name: r.get(15)?,
            created_at: r.get(16)?,
            updated_at: r.get(17)?,
            follow_up: r.get(18)?,
            proposed_slots: r.get(19)?,
            template: r.get(20)?,
            pack_name: r.get(21)?,
            pack_version: r.get(22)?,
            account: r.get(23)?,
        })
    }

    fn into_record(self) -> Result<DraftRecord, Error> {
        Ok(DraftRecord {
            id: self.id,
            account: self.account,
            message: self.message,
            follow_up: self.follow_up,
            mailbox: self.mailbox,
            key: self.key,
            in_reply_to: self.in_reply_to,
            message_id: self.message_id,
            subject: self.subject,
            recipient: self.recipient,
            category: parse_category(&self.category)?,
            status: parse_status(&self.status)?,
            body: self.body,
            raw: self.raw,
            original: self.original,
            notes: from_json("draft notes", &self.notes)?,
            version: self.version,
            folder_name: self.folder_name,
            proposed_slots: from_json("proposed slots", &self.proposed_slots)?,
            source: self.template.map(|template| TemplateSource {
                template,
                pack: pack_label(self.pack_name, self.pack_version),
            }),
            created_at: parse_timestamp("draft created_at", &self.created_at)?,
            updated_at: parse_timestamp("draft updated_at", &self.updated_at)?,
        })
    }
}

/// The `template`, `pack_name` and `pack_version` columns of a draft.
pub(crate) fn source_columns(
    source: Option<&TemplateSource>,
) -> (Option<&str>, Option<&str>, Option<&str>) {
    let template = source.map(|s| s.template.as_str());
    let pack = source.and_then(|s| s.pack.as_ref());
    (
        template,
        pack.map(|p| p.name.as_str()),
        pack.map(|p| p.version.as_str()),
    )
}

fn pack_label(name: Option<String>, version: Option<String>) -> Option<PackLabel> {
    name.zip(version)
        .map(|(name, version)| PackLabel { name, version })
}

/// Fixed-width UTC text, so that comparing timestamps as text compares them as times.
fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_timestamp(what: &str, text: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(what, text, e))
}

fn parse_status(text: &str) -> Result<DraftStatus, Error> {
    DraftStatus::parse(text).ok_or_else(|| corrupt("draft status", text, "unknown status"))
}

fn parse_category(text: &str) -> Result<Category, Error> {
    Category::parse(text).ok_or_else(|| corrupt("category", text, "unknown category"))
}

fn parse_label(text: &str) -> Result<Label, Error> {
    match text {
        "procurement" => Ok(Label::Procurement),
        "other" => Ok(Label::Other),
        _ => Err(corrupt("label", text, "unknown label")),
    }
}

fn to_json<T: serde::Serialize + ?Sized>(what: &'static str, value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(|cause| Error::Encode { what, cause })
}

fn from_json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|e| corrupt(what, text, e))
}

fn corrupt(what: &str, text: &str, e: impl fmt::Display) -> Error {
    const SHOWN: usize = 80;
    let shown: String = text.chars().take(SHOWN).collect();
    Error::Corrupt {
        what: what.into(),
        detail: format!("{shown:?}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    /// Guards the lock around migrations: processes (here threads, each with its own lock file
    /// handle) opening a new state directory at once used to fail with "table messages already
    /// exists" (found by the kill -9 drills, tests/drills.rs).
    #[test]
    fn concurrent_first_opens_of_a_state_directory_all_succeed() {
        for _ in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let state = dir.path().join("state");
            let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
            let openers: Vec<_> = (0..6)
                .map(|_| {
                    let (state, barrier) = (state.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        super::Store::open(&state).map(drop)
                    })
                })
                .collect();
            for opener in openers {
                opener.join().unwrap().unwrap();
            }
        }
    }

    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 3, 1, hour, 0, 0).unwrap()
    }

    pub(super) fn scan(key: &str, message_id: &str, drafted: bool) -> ScannedMessage {
        ScannedMessage {
            mailbox: "INBOX".into(),
            key: key.into(),
            message_id: Some(message_id.into()),
            subject: "RFP #2027-014 Managed Print Services".into(),
            sender: Some("Pat Buyer <pat@buyer.example>".into()),
            date: DateTime::parse_from_rfc3339("2027-02-28T17:30:00+01:00").ok(),
            classification: Classification {
                label: Label::Procurement,
                category: Category::Rfp,
                score: 4.5,
                reasons: vec![Reason {
                    signal: "subject-rfp".into(),
                    weight: 3.0,
                    matched: "RFP #2027-014".into(),
                }],
            },
            facts: Facts {
                buyer: Some("Buyer Corp".into()),
                references: vec!["RFP #2027-014".into()],
                ..Facts::default()
            },
            draft: drafted.then(|| NewDraft {
                in_reply_to: Some(message_id.into()),
                message_id: format!("<draft-{key}@northwind.example>"),
                subject: "Re: RFP #2027-014 Managed Print Services".into(),
                recipient: "pat@buyer.example".into(),
                category: Category::Rfp,
                body: "Hi Pat,\n\nThanks for thinking of us.".into(),
                raw: b"Subject: Re: RFP\r\n\r\nHi Pat".to_vec(),
                original: b"Subject: RFP\r\n\r\nPlease respond".to_vec(),
                notes: vec!["submission deadline is ambiguous".into()],
                folder_name: format!("pushback-{key}"),
                proposed_slots: Vec::new(),
                source: None,
            }),
            reminders: Vec::new(),
            reply: None,
            progress: None,
        }
    }

    fn recorded_draft(store: &mut Store, key: &str) -> i64 {
        match store.record_scan(&scan(key, &format!("<{key}@buyer.example>"), true), at(9)) {
            Ok(RecordOutcome::Recorded { draft_id: Some(id) }) => id,
            other => panic!("unexpected outcome {other:?}"),
        }
    }

    fn count(store: &Store, table: &str) -> i64 {
        store
            .conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    fn tokens() -> Vec<String> {
        vec!["rfp".into(), "tender".into()]
    }

    #[test]
    fn migrations_are_valid() {
        MIGRATIONS.validate().unwrap();
    }

    #[test]
    fn recording_twice_records_no_second_draft() {
        let mut store = Store::open_in_memory().unwrap();
        let id = recorded_draft(&mut store, "k1");
        assert!(store.is_seen("INBOX", "k1").unwrap());
        assert!(!store.is_seen("INBOX", "k2").unwrap());
        assert!(!store.is_seen("Other", "k1").unwrap());
        let again = store
            .record_scan(&scan("k1", "<k1@buyer.example>", true), at(10))
            .unwrap();
        assert_eq!(again, RecordOutcome::AlreadySeen);
        assert_eq!(count(&store, "drafts"), 1);
        assert_eq!(count(&store, "messages"), 1);
        let draft = store.draft(id).unwrap().unwrap();
        assert_eq!(draft.status, DraftStatus::Pending);
        assert_eq!(draft.version, 1);
        assert_eq!(draft.key, "k1");
        assert_eq!(draft.category, Category::Rfp);
        assert_eq!(draft.notes, ["submission deadline is ambiguous"]);
        assert_eq!(draft.created_at, at(9));
    }

    #[test]
    fn same_message_id_under_another_key_gets_no_second_draft() {
        let mut store = Store::open_in_memory().unwrap();
        let id = recorded_draft(&mut store, "k1");
        let drafted = store
            .drafted_with_message_id("INBOX", "<k1@buyer.example>")
            .unwrap();
        assert_eq!(drafted.map(|d| d.draft_id), Some(id));
        let copy = store
            .record_scan(&scan("k1-copy", "<k1@buyer.example>", true), at(10))
            .unwrap();
        assert_eq!(copy, RecordOutcome::DuplicateMessageId { draft_id: id });
        assert_eq!(count(&store, "drafts"), 1);
        // The copy is remembered, so the next scan does not look at it again.
        assert!(store.is_seen("INBOX", "k1-copy").unwrap());
        // Another mailbox is another conversation.
        let mut elsewhere = scan("k1", "<k1@buyer.example>", true);
        elsewhere.mailbox = "Shared".into();
        elsewhere.draft.as_mut().unwrap().folder_name = "pushback-shared-k1".into();
        assert!(matches!(
            store.record_scan(&elsewhere, at(11)).unwrap(),
            RecordOutcome::Recorded { draft_id: Some(_) }
        ));
    }

    #[test]
    fn a_message_without_draft_records_verdict_and_facts() {
        let mut store = Store::open_in_memory().unwrap();
        let outcome = store
            .record_scan(&scan("k1", "<k1@x>", false), at(9))
            .unwrap();
        assert_eq!(outcome, RecordOutcome::Recorded { draft_id: None });
        assert_eq!(count(&store, "verdicts"), 1);
        assert_eq!(count(&store, "facts"), 1);
        assert_eq!(count(&store, "drafts"), 0);
    }

    #[test]
    fn skipped_messages_are_remembered_once() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .record_skip(
                "INBOX",
                "huge",
                "larger than max-message-bytes",
                None,
                at(9),
            )
            .unwrap();
        store
            .record_skip(
                "INBOX",
                "huge",
                "larger than max-message-bytes",
                None,
                at(10),
            )
            .unwrap();
        assert!(store.is_seen("INBOX", "huge").unwrap());
        assert_eq!(count(&store, "messages"), 1);
        let reason: String = store
            .conn
            .query_row("SELECT skip_reason FROM messages", [], |r| r.get(0))
            .unwrap();
        assert_eq!(reason, "larger than max-message-bytes");
    }

    #[test]
    fn approving_twice_is_an_error_and_leaves_one_outbox_row() {
        let mut store = Store::open_in_memory().unwrap();
        let id = recorded_draft(&mut store, "k1");
        let approved = store
            .approve(id, ApprovedVia::Cli, &tokens(), at(10))
            .unwrap();
        assert_eq!(approved.status, DraftStatus::Approved);
        assert_eq!(approved.updated_at, at(10));
        let err = store
            .approve(id, ApprovedVia::Cli, &tokens(), at(11))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot approve draft {id}: it is already approved")
        );
        assert_eq!(count(&store, "outbox"), 1);
        assert_eq!(
            store.feedback_examples().unwrap(),
            vec![(tokens(), Label::Procurement)]
        );
        let outbox = store.outbox_pending().unwrap();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].draft_id, id);
        assert_eq!(outbox[0].raw, approved.raw);
        assert_eq!(outbox[0].queued_at, at(10));
        assert_eq!(outbox[0].folder_name, "pushback-k1");
    }

    #[test]
    fn reject_with_not_procurement_records_other_feedback() {
        let mut store = Store::open_in_memory().unwrap();
        let a = recorded_draft(&mut store, "a");
        let b = recorded_draft(&mut store, "b");
        let rejected = store.reject(a, true, &tokens(), at(10)).unwrap();
        assert_eq!(rejected.status, DraftStatus::Rejected);
        store.reject(b, false, &tokens(), at(10)).unwrap();
        assert_eq!(
            store.feedback_examples().unwrap(),
            vec![(tokens(), Label::Other)]
        );
        assert_eq!(count(&store, "outbox"), 0);
        let err = store
            .approve(a, ApprovedVia::Cli, &tokens(), at(11))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot approve draft {a}: it was rejected")
        );
    }

    #[test]
    fn unknown_draft_ids_are_reported() {
        let mut store = Store::open_in_memory().unwrap();
        assert_eq!(store.draft(9).unwrap(), None);
        let err = store.approve(9, ApprovedVia::Cli, &[], at(9)).unwrap_err();
        assert_eq!(err.to_string(), "no draft with id 9");
        assert!(matches!(
            store.mark_sent(9, at(9)),
            Err(Error::NoDraft { id: 9 })
        ));
        assert_eq!(store.message_facts(9).unwrap(), None);
    }

    #[test]
    fn update_draft_bumps_version_and_only_while_pending() {
        let mut store = Store::open_in_memory().unwrap();
        let id = recorded_draft(&mut store, "k1");
        let edited = store
            .update_draft(
                id,
                "Hi Pat, edited",
                b"raw v2",
                "<v2@northwind.example>",
                at(10),
            )
            .unwrap();
        assert_eq!(edited.version, 2);
        assert_eq!(edited.body, "Hi Pat, edited");
        assert_eq!(edited.raw, b"raw v2");
        assert_eq!(edited.message_id, "<v2@northwind.example>");
        assert_eq!(edited.created_at, at(9));
        assert_eq!(edited.updated_at, at(10));
        store
            .approve(id, ApprovedVia::Cli, &tokens(), at(11))
            .unwrap();
        // The outbox carries the edited message, not the first rendering.
        assert_eq!(store.outbox_pending().unwrap()[0].raw, b"raw v2");
        let err = store
            .update_draft(id, "late", b"late", "<v3@x>", at(12))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot edit draft {id}: it is already approved")
        );
    }

    fn status(store: &Store, id: i64) -> DraftStatus {
        store.draft(id).unwrap().unwrap().status
    }

    /// The outbox row of a draft not sent yet.
    fn outbox_row(store: &Store, id: i64) -> OutboxItem {
        let items = store.outbox_pending().unwrap();
        items.into_iter().find(|i| i.draft_id == id).unwrap()
    }

    fn approved_draft(store: &mut Store, key: &str) -> i64 {
        let id = recorded_draft(store, key);
        store
            .approve(id, ApprovedVia::Cli, &tokens(), at(10))
            .unwrap();
        id
    }

    #[test]
    fn approval_is_recorded_with_its_time_and_path() {
        let mut store = Store::open_in_memory().unwrap();
        let cli = approved_draft(&mut store, "a");
        let web = recorded_draft(&mut store, "b");
        store.approve(web, ApprovedVia::Web, &[], at(11)).unwrap();
        let pending = recorded_draft(&mut store, "c");
        assert_eq!(
            store.approval(cli).unwrap(),
            Some(Approval {
                draft_id: cli,
                version: 1,
                via: ApprovedVia::Cli,
                approved_at: at(10),
            })
        );
        assert_eq!(store.approval(web).unwrap().unwrap().via, ApprovedVia::Web);
        assert_eq!(store.approval(pending).unwrap(), None);
        let due: Vec<i64> = store
            .outbox_due(at(11))
            .unwrap()
            .iter()
            .map(|i| i.draft_id)
            .collect();
        assert_eq!(due, [cli, web]);
        // Approved at 11, so not due at 10.
        assert_eq!(store.outbox_due(at(10)).unwrap().len(), 1);
    }

    #[test]
    fn a_claim_returns_the_approved_bytes_and_cannot_happen_twice() {
        let mut store = Store::open_in_memory().unwrap();
        let id = approved_draft(&mut store, "k1");
        let draft = store.draft(id).unwrap().unwrap();
        let claim = store.claim_for_sending(id, at(10)).unwrap();
        assert_eq!(
            claim,
            Claim {
                draft_id: id,
                message_id: "<draft-k1@northwind.example>".into(),
                folder_name: "pushback-k1".into(),
                raw: draft.raw,
                attempt: 1,
            }
        );
        assert_eq!(status(&store, id), DraftStatus::Sending);
        let again = store.claim_for_sending(id, at(10)).unwrap_err();
        assert_eq!(
            again.to_string(),
            format!("cannot send draft {id}: it is being sent")
        );
        assert!(store.outbox_due(at(12)).unwrap().is_empty());
        let in_flight = store.in_flight().unwrap();
        assert_eq!(in_flight.len(), 1);
        assert_eq!(in_flight[0].attempts, 1);
        assert_eq!(in_flight[0].last_attempt_at, Some(at(10)));
    }

    #[test]
    fn sending_then_sent_is_final_and_idempotent() {
        let mut store = Store::open_in_memory().unwrap();
        let id = approved_draft(&mut store, "k1");
        // Sent without a claim is refused: nothing is sent outside `sending`.
        assert!(matches!(
            store.mark_sent(id, at(10)),
            Err(Error::WrongStatus {
                status: DraftStatus::Approved,
                ..
            })
        ));
        store.claim_for_sending(id, at(10)).unwrap();
        store.mark_sent(id, at(11)).unwrap();
        store.mark_sent(id, at(12)).unwrap();
        let sent = store.draft(id).unwrap().unwrap();
        assert_eq!(sent.status, DraftStatus::Sent);
        assert_eq!(sent.updated_at, at(11));
        assert!(store.outbox_pending().unwrap().is_empty());
        for result in [
            store.claim_for_sending(id, at(13)).map(drop),
            store.mark_retry(id, "late", at(14), at(13)),
            store.mark_failed_permanent(id, "late", at(13)),
            store.mark_unknown(id, at(13)),
            store.resend(id, at(13)),
        ] {
            let error = result.unwrap_err().to_string();
            assert!(error.ends_with("it was already sent"), "{error}");
        }
    }

    #[test]
    fn a_transient_failure_waits_for_its_retry_time() {
        let mut store = Store::open_in_memory().unwrap();
        let id = approved_draft(&mut store, "k1");
        store.claim_for_sending(id, at(10)).unwrap();
        store
            .mark_retry(id, "421 4.7.0 try again later", at(12), at(10))
            .unwrap();
        assert_eq!(status(&store, id), DraftStatus::Approved);
        let item = outbox_row(&store, id);
        assert_eq!(item.attempts, 1);
        assert_eq!(item.next_attempt_at, Some(at(12)));
        assert_eq!(
            item.last_error.as_deref(),
            Some("421 4.7.0 try again later")
        );
        assert!(store.outbox_due(at(11)).unwrap().is_empty());
        assert!(matches!(
            store.claim_for_sending(id, at(11)),
            Err(Error::NotDue { due, .. }) if due == at(12)
        ));
        let claim = store.claim_for_sending(id, at(12)).unwrap();
        assert_eq!(claim.attempt, 2);
        // The same bytes, so the same Message-ID, on every attempt.
        assert_eq!(claim.raw, store.draft(id).unwrap().unwrap().raw);
    }

    #[test]
    fn a_permanent_failure_keeps_the_reply_until_the_rep_resends() {
        let mut store = Store::open_in_memory().unwrap();
        let id = approved_draft(&mut store, "k1");
        store.claim_for_sending(id, at(10)).unwrap();
        store
            .mark_failed_permanent(id, "550 5.1.1 <pat@buyer.example>: no such user", at(10))
            .unwrap();
        assert_eq!(status(&store, id), DraftStatus::Failed);
        let item = outbox_row(&store, id);
        assert_eq!(item.status, DraftStatus::Failed);
        assert_eq!(
            item.last_error.as_deref(),
            Some("550 5.1.1 <pat@buyer.example>: no such user")
        );
        assert!(store.outbox_due(at(23)).unwrap().is_empty());
        assert!(store.claim_for_sending(id, at(23)).is_err());
        store.resend(id, at(15)).unwrap();
        let item = outbox_row(&store, id);
        assert_eq!(item.status, DraftStatus::Approved);
        assert_eq!(item.attempts, 0);
        assert_eq!(item.next_attempt_at, Some(at(15)));
        assert_eq!(store.claim_for_sending(id, at(15)).unwrap().attempt, 1);
    }

    #[test]
    fn an_interrupted_send_becomes_unknown_and_the_rep_decides() {
        let dir = tempfile::tempdir().unwrap();
        let (resent, confirmed) = {
            let mut store = Store::open(dir.path()).unwrap();
            let a = approved_draft(&mut store, "a");
            let b = approved_draft(&mut store, "b");
            store.claim_for_sending(a, at(10)).unwrap();
            store.claim_for_sending(b, at(10)).unwrap();
            (a, b)
            // The process dies here, both sends under way.
        };
        let mut store = Store::open(dir.path()).unwrap();
        let stuck: Vec<i64> = store
            .in_flight()
            .unwrap()
            .iter()
            .map(|i| i.draft_id)
            .collect();
        assert_eq!(stuck, [resent, confirmed]);
        // Nothing in `sending` is ever due: a restart does not resend it blindly.
        assert!(store.outbox_due(at(23)).unwrap().is_empty());
        store.mark_unknown(resent, at(11)).unwrap();
        store.mark_unknown(confirmed, at(11)).unwrap();
        assert!(store.in_flight().unwrap().is_empty());
        let unknown: Vec<i64> = store
            .drafts(Some(DraftStatus::Unknown))
            .unwrap()
            .iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(unknown, [resent, confirmed]);
        assert!(store.claim_for_sending(resent, at(12)).is_err());
        assert!(matches!(
            store.mark_sent(confirmed, at(12)),
            Err(Error::WrongStatus {
                status: DraftStatus::Unknown,
                ..
            })
        ));
        store.resend(resent, at(12)).unwrap();
        assert_eq!(store.claim_for_sending(resent, at(12)).unwrap().attempt, 1);
        store.confirm_sent(confirmed, at(12)).unwrap();
        assert_eq!(status(&store, confirmed), DraftStatus::Sent);
        // Neither resend nor confirm applies to a draft that is not unknown or failed.
        let approved = approved_draft(&mut store, "c");
        assert!(store.resend(approved, at(13)).is_err());
        assert!(store.confirm_sent(approved, at(13)).is_err());
        assert!(store.mark_unknown(approved, at(13)).is_err());
    }

    #[test]
    fn no_send_without_approval_through_any_path() {
        let mut store = Store::open_in_memory().unwrap();
        // Pending and rejected drafts have no outbox row to claim.
        let pending = recorded_draft(&mut store, "pending");
        let rejected = recorded_draft(&mut store, "rejected");
        store.reject(rejected, false, &[], at(10)).unwrap();
        for id in [pending, rejected] {
            assert!(matches!(
                store.claim_for_sending(id, at(10)),
                Err(Error::NotQueued { .. })
            ));
        }
        assert!(matches!(
            store.claim_for_sending(99, at(10)),
            Err(Error::NoDraft { id: 99 })
        ));
        // A status set behind approve()'s back queues nothing.
        store
            .conn
            .execute(
                "UPDATE drafts SET status = 'approved' WHERE id = ?1",
                [pending],
            )
            .unwrap();
        assert!(matches!(
            store.claim_for_sending(pending, at(10)),
            Err(Error::NotQueued { .. })
        ));
        // Nor can an outbox row be written without approve().
        let error = store
            .conn
            .execute(
                "INSERT INTO outbox (draft, raw, queued_at, next_attempt_at)
                 SELECT id, raw, '2027-03-01T10:00:00.000000Z', '2027-03-01T10:00:00.000000Z'
                 FROM drafts WHERE id = ?1",
                [pending],
            )
            .unwrap_err();
        assert!(error.to_string().contains("needs an approval"), "{error}");
        assert!(store.outbox_due(at(23)).unwrap().is_empty());
    }

    #[test]
    fn a_tampered_outbox_row_is_not_sent() {
        let mut store = Store::open_in_memory().unwrap();
        let cases: [(&str, &str); 3] = [
            ("raw", "UPDATE outbox SET raw = x'00' WHERE draft = ?1"),
            ("version", "UPDATE drafts SET version = 2 WHERE id = ?1"),
            ("approval", "DELETE FROM approvals WHERE draft = ?1"),
        ];
        for (key, tamper) in cases {
            let id = approved_draft(&mut store, key);
            store.conn.execute(tamper, [id]).unwrap();
            let error = store.claim_for_sending(id, at(10)).unwrap_err();
            assert!(matches!(error, Error::Unapproved { .. }), "{key}: {error}");
            assert_eq!(status(&store, id), DraftStatus::Approved, "{key}");
        }
    }

    #[test]
    fn a_version_1_database_keeps_its_outbox_through_migration_2() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
            Migrations::from_slice(&MIGRATION_LIST[..1])
                .to_latest(&mut conn)
                .unwrap();
            conn.execute_batch(
                "INSERT INTO messages (id, mailbox, key, seen_at) VALUES (1, 'INBOX', 'k', 't');
                 INSERT INTO messages (id, mailbox, key, seen_at) VALUES (2, 'INBOX', 'l', 't');
                 INSERT INTO drafts (id, message, message_id, subject, recipient, category, status,
                                     body, raw, original, notes, folder_name, created_at, updated_at)
                 VALUES (1, 1, '<d1@x>', 's', 'r', 'rfp', 'approved', 'b', x'41', x'42', '[]',
                         'pushback-k', '2027-03-01T09:00:00.000000Z', '2027-03-01T09:00:00.000000Z'),
                        (2, 2, '<d2@x>', 's', 'r', 'rfp', 'pending', 'b', x'43', x'44', '[]',
                         'pushback-l', '2027-03-01T09:00:00.000000Z', '2027-03-01T09:00:00.000000Z');
                 INSERT INTO outbox (draft, raw, queued_at)
                 VALUES (1, x'41', '2027-03-01T10:00:00.000000Z');",
            )
            .unwrap();
        }
        let mut store = Store::open(dir.path()).unwrap();
        let approval = store.approval(1).unwrap().unwrap();
        assert_eq!(
            (approval.via, approval.approved_at),
            (ApprovedVia::Cli, at(10))
        );
        assert_eq!(store.claim_for_sending(1, at(10)).unwrap().raw, b"A");
        assert!(matches!(
            store.claim_for_sending(2, at(10)),
            Err(Error::NotQueued { .. })
        ));
        let fk: bool = store
            .conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert!(fk, "foreign keys are back on after migrating");
    }

    #[test]
    fn a_database_from_before_accounts_keeps_its_rows_under_default() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut conn = Connection::open(dir.path().join(FILE_NAME)).unwrap();
            Migrations::from_slice(&MIGRATION_LIST[..6])
                .to_latest(&mut conn)
                .unwrap();
            conn.execute_batch(
                "INSERT INTO messages (id, mailbox, key, message_id, seen_at)
                 VALUES (1, 'INBOX', '7', '<m@x>', 't');
                 INSERT INTO drafts (id, message, message_id, subject, recipient, category, body,
                                     raw, original, notes, folder_name, created_at, updated_at)
                 VALUES (1, 1, '<d1@x>', 's', 'r', 'rfp', 'b', x'41', x'42', '[]',
                         'pushback-reply.7', '2027-03-01T09:00:00.000000Z', '2027-03-01T09:00:00.000000Z');
                 INSERT INTO sync_state (mailbox, uid_validity, last_uid, updated_at)
                 VALUES ('INBOX', 9, 7, 't');",
            )
            .unwrap();
        }
        let mut store = Store::open(dir.path()).unwrap();
        assert_eq!(store.drafts(None).unwrap()[0].account, DEFAULT_ACCOUNT);
        assert!(store.is_seen("INBOX", "7").unwrap());
        assert_eq!(
            store.sync_state("INBOX").unwrap(),
            Some(SyncProgress {
                uid_validity: 9,
                uid: 7
            })
        );
        // The same message key in another account is a new message.
        let mut work = Store::open_account(dir.path(), "work").unwrap();
        assert!(!work.is_seen("INBOX", "7").unwrap());
        assert_eq!(work.sync_state("INBOX").unwrap(), None);
        assert!(matches!(
            work.record_scan(&scan("7", "<m@x>", true), at(9)).unwrap(),
            RecordOutcome::Recorded { draft_id: Some(2) }
        ));
        // The old single account still gets no second draft for its message.
        assert_eq!(
            store.record_scan(&scan("7", "<m@x>", true), at(9)).unwrap(),
            RecordOutcome::AlreadySeen
        );
        store
            .conn
            .execute_batch("PRAGMA foreign_key_check")
            .unwrap();
    }

    #[test]
    fn each_account_sees_and_changes_only_its_own_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut work = Store::open_account(dir.path(), "work").unwrap();
        let mut side = Store::open_account(dir.path(), "side").unwrap();
        // Both INBOXes hold a UID 1 carrying the same message (the buyer wrote to both).
        let mut side_scan = scan("1", "<m@x>", true);
        side_scan.draft.as_mut().unwrap().folder_name = "pushback-side-1".into();
        let mut work_scan = scan("1", "<m@x>", true);
        work_scan.draft.as_mut().unwrap().source = Some(TemplateSource {
            template: "rfp.txt".into(),
            pack: None,
        });
        let RecordOutcome::Recorded { draft_id: Some(w) } =
            work.record_scan(&work_scan, at(9)).unwrap()
        else {
            panic!("work drafts")
        };
        let RecordOutcome::Recorded { draft_id: Some(s) } =
            side.record_scan(&side_scan, at(9)).unwrap()
        else {
            panic!("side drafts too: it is another mailbox")
        };
        // Exactly once per account: a rescan of either adds nothing.
        for store in [&mut work, &mut side] {
            assert_eq!(
                store
                    .record_scan(&scan("1", "<m@x>", true), at(10))
                    .unwrap(),
                RecordOutcome::AlreadySeen
            );
        }
        let ids = |store: &Store| -> Vec<i64> {
            store.drafts(None).unwrap().iter().map(|d| d.id).collect()
        };
        assert_eq!((ids(&work), ids(&side)), (vec![w], vec![s]));
        // `pack stats` counts an account's own drafts.
        assert_eq!(work.draft_outcomes().unwrap().len(), 1);
        assert_eq!(side.draft_outcomes().unwrap(), []);
        assert_eq!(work.draft(w).unwrap().unwrap().account, "work");
        assert_eq!(work.draft(s).unwrap(), None);
        assert!(matches!(
            work.approve(s, ApprovedVia::Cli, &tokens(), at(10)),
            Err(Error::NoDraft { .. })
        ));
        side.approve(s, ApprovedVia::Cli, &tokens(), at(10))
            .unwrap();
        // Only side's sender sees side's approved draft, and only it can claim it.
        assert!(work.outbox_due(at(11)).unwrap().is_empty());
        assert_eq!(side.outbox_due(at(11)).unwrap()[0].draft_id, s);
        assert!(matches!(
            work.claim_for_sending(s, at(11)),
            Err(Error::NoDraft { .. })
        ));
        side.claim_for_sending(s, at(11)).unwrap();
        assert!(side.claim_for_sending(s, at(11)).is_err(), "claimed once");
        side.mark_sent(s, at(11)).unwrap();
        // Follow-ups are planned by the account that sent.
        assert!(work.follow_ups_to_plan().unwrap().is_empty());
        assert_eq!(side.follow_ups_to_plan().unwrap().len(), 1);
        assert_eq!(work.pending_drafts().unwrap().len(), 1);
        assert!(side.pending_drafts().unwrap().is_empty());
        // Sync positions are per account, and so are the lock files.
        work.reset_sync("INBOX", 5, at(9)).unwrap();
        assert_eq!(side.sync_state("INBOX").unwrap(), None);
        let lock = |store: &Store| store.lock_file("sending").unwrap().unwrap();
        let (work_sending, side_sending) = (lock(&work), lock(&side));
        work_sending.try_lock().unwrap();
        side_sending.try_lock().unwrap();
        assert!(lock(&work).try_lock().is_err(), "one sender per account");
    }

    #[test]
    fn drafts_filter_by_status() {
        let mut store = Store::open_in_memory().unwrap();
        let a = recorded_draft(&mut store, "a");
        let b = recorded_draft(&mut store, "b");
        store
            .approve(b, ApprovedVia::Cli, &tokens(), at(10))
            .unwrap();
        let ids = |s: Option<DraftStatus>| -> Vec<i64> {
            store.drafts(s).unwrap().iter().map(|d| d.id).collect()
        };
        assert_eq!(ids(None), [a, b]);
        assert_eq!(ids(Some(DraftStatus::Pending)), [a]);
        assert_eq!(ids(Some(DraftStatus::Approved)), [b]);
        assert!(ids(Some(DraftStatus::Sent)).is_empty());
    }

    #[test]
    fn message_facts_round_trip() {
        let mut store = Store::open_in_memory().unwrap();
        let id = recorded_draft(&mut store, "k1");
        let original = scan("k1", "<k1@buyer.example>", true);
        let facts = store.message_facts(id).unwrap().unwrap();
        assert_eq!(facts.classification, original.classification);
        assert_eq!(facts.facts, original.facts);
        assert_eq!(facts.notes, ["submission deadline is ambiguous"]);
        assert_eq!(facts.message.key, "k1");
        assert_eq!(facts.message.date, original.date);
        assert_eq!(facts.message.sender, original.sender);
        assert_eq!(facts.message.seen_at, at(9));
    }

    #[test]
    fn a_file_store_persists_across_reopen_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state/pushback");
        let id = {
            let mut store = Store::open(&state).unwrap();
            let id = recorded_draft(&mut store, "k1");
            store
                .approve(id, ApprovedVia::Cli, &tokens(), at(10))
                .unwrap();
            id
        };
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let mut store = Store::open(&state).unwrap();
        assert!(store.is_seen("INBOX", "k1").unwrap());
        assert_eq!(
            store.draft(id).unwrap().unwrap().status,
            DraftStatus::Approved
        );
        assert_eq!(store.outbox_pending().unwrap().len(), 1);
        let journal: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        assert!(
            store
                .approve(id, ApprovedVia::Cli, &tokens(), at(11))
                .is_err()
        );
    }

    #[test]
    fn migrations_apply_to_an_existing_database() {
        let dir = tempfile::tempdir().unwrap();
        // A database file that exists but was never migrated (e.g. created by hand).
        Connection::open(dir.path().join(FILE_NAME))
            .unwrap()
            .execute_batch("PRAGMA user_version = 0; CREATE TABLE scratch (x);")
            .unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        recorded_draft(&mut store, "k1");
        let version: i64 = store
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, MIGRATION_LIST.len() as i64);
        drop(store);
        // Reopening an up-to-date database applies nothing and keeps the data.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(count(&store, "drafts"), 1);
    }

    #[test]
    fn foreign_keys_are_enforced() {
        let store = Store::open_in_memory().unwrap();
        let err = store
            .conn
            .execute("INSERT INTO facts (message, facts) VALUES (42, '{}')", [])
            .unwrap_err();
        assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
    }

    #[test]
    fn a_draft_keeps_its_template_and_pack_and_its_outcome_follows_the_edits() {
        let mut store = Store::open_in_memory().unwrap();
        let source = TemplateSource {
            template: "rfp.txt".into(),
            pack: Some(PackLabel {
                name: "emea".into(),
                version: "1.4.0".into(),
            }),
        };
        let mut scanned = scan("a", "<a@buyer.example>", true);
        if let Some(draft) = scanned.draft.as_mut() {
            draft.source = Some(source.clone());
        }
        let id = match store.record_scan(&scanned, at(9)).unwrap() {
            RecordOutcome::Recorded { draft_id: Some(id) } => id,
            other => panic!("unexpected outcome {other:?}"),
        };
        assert_eq!(
            store.draft(id).unwrap().unwrap().source,
            Some(source.clone())
        );
        let untracked = recorded_draft(&mut store, "b");
        assert_eq!(store.draft(untracked).unwrap().unwrap().source, None);

        store
            .update_draft(
                id,
                "Hi Pat, edited",
                b"Subject: x\r\n\r\nedited",
                "<v2@x>",
                at(10),
            )
            .unwrap();
        store.approve(id, ApprovedVia::Cli, &[], at(11)).unwrap();
        assert_eq!(
            store.draft_outcomes().unwrap(),
            [DraftOutcome {
                source,
                status: DraftStatus::Approved,
                approved_version: Some(2),
                call_agreed: false,
            }],
            "only drafts that record their template"
        );
    }
}

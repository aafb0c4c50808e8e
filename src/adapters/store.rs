//! The state store: one SQLite file (`pushback.sqlite3`, WAL) in the state directory remembering
//! which messages were scanned, what the classifier and extractor said about them, the drafts and
//! their approval status, the outbox, the rep's feedback and reminders. Every change that belongs
//! together is one transaction, and the schema's UNIQUE constraints make a second draft for one
//! message impossible. The store never reads the clock: callers pass `now`. It does not render,
//! classify or send anything; secrets never reach it.

use crate::core::model::{Category, Classification, Facts, Label, Reason};
use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use rusqlite_migration::{M, Migrations};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod sync;
pub use sync::SyncProgress;

/// The database file's name inside the state directory.
pub const FILE_NAME: &str = "pushback.sqlite3";

/// Migration 1 creates everything; later migrations append here, never edit an applied one.
const MIGRATION_LIST: &[M<'static>] = &[
    M::up(include_str!("store/0001_initial.sql")),
    M::up(include_str!("store/0003_imap_sync.sql")),
];
const MIGRATIONS: Migrations<'static> = Migrations::from_slice(MIGRATION_LIST);

/// How long a write waits for another process (e.g. `pushback drafts approve` while the daemon
/// scans) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create state directory {path}: {cause}")]
    CreateDir { path: PathBuf, cause: io::Error },
    #[error("cannot open state database {path}: {cause}")]
    Open {
        path: PathBuf,
        cause: rusqlite::Error,
    },
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
}

fn sql(action: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
    let action = action.into();
    move |cause| Error::Sql { action, cause }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DraftStatus {
    Pending,
    Approved,
    Rejected,
    Sent,
}

impl DraftStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DraftStatus::Pending => "pending",
            DraftStatus::Approved => "approved",
            DraftStatus::Rejected => "rejected",
            DraftStatus::Sent => "sent",
        }
    }

    pub fn parse(name: &str) -> Option<DraftStatus> {
        [
            DraftStatus::Pending,
            DraftStatus::Approved,
            DraftStatus::Rejected,
            DraftStatus::Sent,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    /// Why an action that needs a pending draft cannot go on.
    fn explain(self) -> &'static str {
        match self {
            DraftStatus::Pending => "it is still pending",
            DraftStatus::Approved => "it is already approved",
            DraftStatus::Rejected => "it was rejected",
            DraftStatus::Sent => "it was already sent",
        }
    }
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

#[derive(Debug, Clone, PartialEq)]
pub struct DraftRecord {
    pub id: i64,
    /// Row id of the original message.
    pub message: i64,
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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    pub draft_id: i64,
    pub message_id: String,
    pub folder_name: String,
    pub raw: Vec<u8>,
    pub queued_at: DateTime<Utc>,
    pub attempts: u32,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
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
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.conn.path())
            .finish()
    }
}

impl Store {
    /// Opens (creating as needed, directory mode 0700) `<state_dir>/pushback.sqlite3` and brings
    /// its schema up to date.
    pub fn open(state_dir: &Path) -> Result<Store, Error> {
        create_private_dir(state_dir)?;
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
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_error)?;
        MIGRATIONS
            .to_latest(&mut conn)
            .map_err(|cause| Error::Migrate {
                path: path.to_path_buf(),
                cause,
            })?;
        Ok(Store { conn })
    }

    pub fn is_seen(&self, mailbox: &str, key: &str) -> Result<bool, Error> {
        is_seen(&self.conn, mailbox, key)
    }

    /// Whether a message with this Message-ID in this mailbox already has a draft.
    pub fn draft_exists_for_message_id(
        &self,
        mailbox: &str,
        message_id: &str,
    ) -> Result<bool, Error> {
        Ok(draft_for_message_id(&self.conn, mailbox, message_id)?.is_some())
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
            sync::advance(&tx, &scan.mailbox, progress, now)?;
        }
        if is_seen(&tx, &scan.mailbox, &scan.key)? {
            tx.commit().map_err(sql(format!(
                "record message {} in {}",
                scan.key, scan.mailbox
            )))?;
            return Ok(RecordOutcome::AlreadySeen);
        }
        let duplicate = match (&scan.draft, &scan.message_id) {
            (Some(_), Some(message_id)) => draft_for_message_id(&tx, &scan.mailbox, message_id)?,
            _ => None,
        };
        let action = || format!("record message {} in {}", scan.key, scan.mailbox);
        let skip_reason =
            duplicate.map(|id| format!("copy of a message already drafted as draft {id}"));
        tx.execute(
            "INSERT INTO messages (mailbox, key, message_id, subject, sender, date, seen_at, skip_reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                scan.mailbox,
                scan.key,
                scan.message_id,
                scan.subject,
                scan.sender,
                scan.date.map(|d| d.to_rfc3339()),
                timestamp(now),
                skip_reason,
            ],
        )
        .map_err(sql(action()))?;
        let message = tx.last_insert_rowid();
        if let Some(draft_id) = duplicate {
            tx.commit().map_err(sql(action()))?;
            return Ok(RecordOutcome::DuplicateMessageId { draft_id });
        }
        let c = &scan.classification;
        tx.execute(
            "INSERT INTO verdicts (message, label, category, score, reasons) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                message,
                c.label.as_str(),
                c.category.as_str(),
                c.score,
                to_json("classifier reasons", &c.reasons)?
            ],
        )
        .map_err(sql(action()))?;
        tx.execute(
            "INSERT INTO facts (message, facts) VALUES (?1, ?2)",
            params![message, to_json("extracted facts", &scan.facts)?],
        )
        .map_err(sql(action()))?;
        let draft_id = match &scan.draft {
            None => None,
            Some(d) => {
                tx.execute(
                    "INSERT INTO drafts (message, in_reply_to, message_id, subject, recipient, category,
                                         body, raw, original, notes, folder_name, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
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
                    ],
                )
                .map_err(sql(format!("record the draft for {}", scan.key)))?;
                Some(tx.last_insert_rowid())
            }
        };
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
            sync::advance(&tx, mailbox, progress, now)?;
        }
        tx.execute(
            "INSERT INTO messages (mailbox, key, seen_at, skip_reason) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (mailbox, key) DO NOTHING",
            params![mailbox, key, timestamp(now), reason],
        )
        .map_err(sql(action()))?;
        tx.commit().map_err(sql(action()))
    }

    /// Drafts oldest first, all of them or those with `status`.
    pub fn drafts(&self, status: Option<DraftStatus>) -> Result<Vec<DraftRecord>, Error> {
        let query =
            format!("{DRAFT_SELECT} WHERE ?1 IS NULL OR d.status = ?1 ORDER BY d.created_at, d.id");
        let mut stmt = self.conn.prepare(&query).map_err(sql("list drafts"))?;
        let rows = stmt
            .query_map([status.map(DraftStatus::as_str)], DraftRow::read)
            .map_err(sql("list drafts"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("list drafts"))?;
        rows.into_iter().map(DraftRow::into_record).collect()
    }

    pub fn draft(&self, id: i64) -> Result<Option<DraftRecord>, Error> {
        draft(&self.conn, id)
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
        require_pending(&tx, id, "edit")?;
        tx.execute(
            "UPDATE drafts SET body = ?2, raw = ?3, message_id = ?4, version = version + 1,
                               updated_at = ?5
             WHERE id = ?1",
            params![id, body, raw, message_id, timestamp(now)],
        )
        .map_err(sql(format!("edit draft {id}")))?;
        let record = draft(&tx, id)?.ok_or(Error::NoDraft { id })?;
        tx.commit().map_err(sql(format!("edit draft {id}")))?;
        Ok(record)
    }

    /// Approves a pending draft: status, outbox row and a `procurement` feedback example (the
    /// rep confirmed the classification) in one transaction. Approving twice is an error, so there
    /// is never a second outbox row.
    pub fn approve(
        &mut self,
        id: i64,
        tokens: &[String],
        now: DateTime<Utc>,
    ) -> Result<DraftRecord, Error> {
        let action = || format!("approve draft {id}");
        let tx = begin(&mut self.conn)?;
        require_pending(&tx, id, "approve")?;
        tx.execute(
            "UPDATE drafts SET status = 'approved', updated_at = ?2 WHERE id = ?1",
            params![id, timestamp(now)],
        )
        .map_err(sql(action()))?;
        tx.execute(
            "INSERT INTO outbox (draft, raw, queued_at) SELECT id, raw, ?2 FROM drafts WHERE id = ?1",
            params![id, timestamp(now)],
        )
        .map_err(sql(action()))?;
        tx.execute(
            "INSERT INTO feedback (message, label, category, tokens, created_at)
             SELECT message, 'procurement', category, ?2, ?3 FROM drafts WHERE id = ?1",
            params![id, to_json("feedback tokens", tokens)?, timestamp(now)],
        )
        .map_err(sql(action()))?;
        let record = draft(&tx, id)?.ok_or(Error::NoDraft { id })?;
        tx.commit().map_err(sql(action()))?;
        Ok(record)
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
        require_pending(&tx, id, "reject")?;
        tx.execute(
            "UPDATE drafts SET status = 'rejected', updated_at = ?2 WHERE id = ?1",
            params![id, timestamp(now)],
        )
        .map_err(sql(action()))?;
        if not_procurement {
            tx.execute(
                "INSERT INTO feedback (message, label, category, tokens, created_at)
                 SELECT message, 'other', 'none', ?2, ?3 FROM drafts WHERE id = ?1",
                params![id, to_json("feedback tokens", tokens)?, timestamp(now)],
            )
            .map_err(sql(action()))?;
        }
        let record = draft(&tx, id)?.ok_or(Error::NoDraft { id })?;
        tx.commit().map_err(sql(action()))?;
        Ok(record)
    }

    /// Approved drafts not sent yet, in the order they were approved.
    pub fn outbox_pending(&self) -> Result<Vec<OutboxItem>, Error> {
        let action = "list the outbox";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT o.draft, d.message_id, d.folder_name, o.raw, o.queued_at, o.attempts,
                        o.last_attempt_at, o.last_error
                 FROM outbox o JOIN drafts d ON d.id = o.draft
                 WHERE o.sent_at IS NULL
                 ORDER BY o.queued_at, o.id",
            )
            .map_err(sql(action))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, u32>(5)?,
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })
            .map_err(sql(action))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql(action))?;
        rows.into_iter()
            .map(
                |(draft_id, message_id, folder_name, raw, queued, attempts, last, last_error)| {
                    Ok(OutboxItem {
                        draft_id,
                        message_id,
                        folder_name,
                        raw,
                        queued_at: parse_timestamp("outbox queued_at", &queued)?,
                        attempts,
                        last_attempt_at: last
                            .map(|t| parse_timestamp("outbox last_attempt_at", &t))
                            .transpose()?,
                        last_error,
                    })
                },
            )
            .collect()
    }

    /// Marks an approved draft as sent (outbox and draft together). Marking it again is a no-op,
    /// so a retry after a crash between sending and recording is harmless.
    pub fn mark_sent(&mut self, draft_id: i64, now: DateTime<Utc>) -> Result<(), Error> {
        let action = || format!("mark draft {draft_id} as sent");
        let tx = begin(&mut self.conn)?;
        if outbox_sent_at(&tx, draft_id, "mark as sent")?.is_some() {
            return Ok(());
        }
        tx.execute(
            "UPDATE outbox SET sent_at = ?2, attempts = attempts + 1, last_attempt_at = ?2
             WHERE draft = ?1",
            params![draft_id, timestamp(now)],
        )
        .map_err(sql(action()))?;
        tx.execute(
            "UPDATE drafts SET status = 'sent', updated_at = ?2 WHERE id = ?1",
            params![draft_id, timestamp(now)],
        )
        .map_err(sql(action()))?;
        tx.commit().map_err(sql(action()))
    }

    /// Counts a failed send attempt and keeps the server's reply for the rep.
    pub fn record_send_failure(
        &mut self,
        draft_id: i64,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let verb = "record a send failure for";
        let action = || format!("{verb} draft {draft_id}");
        let tx = begin(&mut self.conn)?;
        if outbox_sent_at(&tx, draft_id, verb)?.is_some() {
            return Err(Error::WrongStatus {
                action: verb,
                id: draft_id,
                status: DraftStatus::Sent,
            });
        }
        tx.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?2, last_error = ?3
             WHERE draft = ?1",
            params![draft_id, timestamp(now), error],
        )
        .map_err(sql(action()))?;
        tx.commit().map_err(sql(action()))
    }

    /// The rep's verdicts as training examples, oldest first.
    pub fn feedback_examples(&self) -> Result<Vec<(Vec<String>, Label)>, Error> {
        let action = "read feedback";
        let mut stmt = self
            .conn
            .prepare("SELECT tokens, label FROM feedback ORDER BY id")
            .map_err(sql(action))?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
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
                "SELECT m.id, m.mailbox, m.key, m.message_id, m.subject, m.sender, m.date, m.seen_at,
                        v.label, v.category, v.score, v.reasons, f.facts, d.notes
                 FROM drafts d
                 JOIN messages m ON m.id = d.message
                 JOIN verdicts v ON v.message = m.id
                 JOIN facts f ON f.message = m.id
                 WHERE d.id = ?1",
                [draft_id],
                |r| {
                    Ok((
                        (
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Option<String>>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, Option<String>>(5)?,
                            r.get::<_, Option<String>>(6)?,
                            r.get::<_, String>(7)?,
                        ),
                        (
                            r.get::<_, String>(8)?,
                            r.get::<_, String>(9)?,
                            r.get::<_, f64>(10)?,
                            r.get::<_, String>(11)?,
                            r.get::<_, String>(12)?,
                            r.get::<_, String>(13)?,
                        ),
                    ))
                },
            )
            .optional()
            .map_err(sql(action()))?;
        let Some((m, (label, category, score, reasons, facts, notes))) = row else {
            return Ok(None);
        };
        let (id, mailbox, key, message_id, subject, sender, date, seen_at) = m;
        Ok(Some(MessageFacts {
            message: MessageRecord {
                id,
                mailbox,
                key,
                message_id,
                subject,
                sender,
                date: date
                    .map(|d| {
                        DateTime::parse_from_rfc3339(&d).map_err(|e| Error::Corrupt {
                            what: "message date".into(),
                            detail: format!("{d:?}: {e}"),
                        })
                    })
                    .transpose()?,
                seen_at: parse_timestamp("message seen_at", &seen_at)?,
            },
            classification: Classification {
                label: parse_label(&label)?,
                category: parse_category(&category)?,
                score,
                reasons: from_json::<Vec<Reason>>("classifier reasons", &reasons)?,
            },
            facts: from_json("extracted facts", &facts)?,
            notes: from_json("draft notes", &notes)?,
        }))
    }
}

/// Writers take the lock up front, so a check-then-insert cannot race another process.
fn begin(conn: &mut Connection) -> Result<Transaction<'_>, Error> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("begin a transaction"))
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

fn is_seen(conn: &Connection, mailbox: &str, key: &str) -> Result<bool, Error> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE mailbox = ?1 AND key = ?2)",
        params![mailbox, key],
        |r| r.get(0),
    )
    .map_err(sql(format!("look up message {key} in {mailbox}")))
}

fn draft_for_message_id(
    conn: &Connection,
    mailbox: &str,
    message_id: &str,
) -> Result<Option<i64>, Error> {
    conn.query_row(
        "SELECT d.id FROM drafts d JOIN messages m ON m.id = d.message
         WHERE m.mailbox = ?1 AND m.message_id = ?2",
        params![mailbox, message_id],
        |r| r.get(0),
    )
    .optional()
    .map_err(sql(format!(
        "look up drafts for message-id {message_id} in {mailbox}"
    )))
}

fn require_pending(conn: &Connection, id: i64, action: &'static str) -> Result<(), Error> {
    let status: Option<String> = conn
        .query_row("SELECT status FROM drafts WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()
        .map_err(sql(format!("{action} draft {id}")))?;
    let status = parse_status(&status.ok_or(Error::NoDraft { id })?)?;
    if status != DraftStatus::Pending {
        return Err(Error::WrongStatus { action, id, status });
    }
    Ok(())
}

/// `sent_at` of the draft's outbox row; `NotQueued` when there is no row.
fn outbox_sent_at(
    conn: &Connection,
    draft_id: i64,
    action: &'static str,
) -> Result<Option<String>, Error> {
    let row: Option<Option<String>> = conn
        .query_row(
            "SELECT sent_at FROM outbox WHERE draft = ?1",
            [draft_id],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(format!("{action} draft {draft_id}")))?;
    match row {
        Some(sent_at) => Ok(sent_at),
        None if draft(conn, draft_id)?.is_none() => Err(Error::NoDraft { id: draft_id }),
        None => Err(Error::NotQueued {
            action,
            id: draft_id,
        }),
    }
}

const DRAFT_SELECT: &str = "SELECT d.id, d.message, m.mailbox, m.key, d.in_reply_to, d.message_id,
        d.subject, d.recipient, d.category, d.status, d.body, d.raw, d.original, d.notes, d.version,
        d.folder_name, d.created_at, d.updated_at
    FROM drafts d JOIN messages m ON m.id = d.message";

fn draft(conn: &Connection, id: i64) -> Result<Option<DraftRecord>, Error> {
    conn.query_row(
        &format!("{DRAFT_SELECT} WHERE d.id = ?1"),
        [id],
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
        })
    }

    fn into_record(self) -> Result<DraftRecord, Error> {
        Ok(DraftRecord {
            id: self.id,
            message: self.message,
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
            created_at: parse_timestamp("draft created_at", &self.created_at)?,
            updated_at: parse_timestamp("draft updated_at", &self.updated_at)?,
        })
    }
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
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 3, 1, hour, 0, 0).unwrap()
    }

    fn scan(key: &str, message_id: &str, drafted: bool) -> ScannedMessage {
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
            }),
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
        assert!(
            store
                .draft_exists_for_message_id("INBOX", "<k1@buyer.example>")
                .unwrap()
        );
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
        let approved = store.approve(id, &tokens(), at(10)).unwrap();
        assert_eq!(approved.status, DraftStatus::Approved);
        assert_eq!(approved.updated_at, at(10));
        let err = store.approve(id, &tokens(), at(11)).unwrap_err();
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
        let err = store.approve(a, &tokens(), at(11)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot approve draft {a}: it was rejected")
        );
    }

    #[test]
    fn unknown_draft_ids_are_reported() {
        let mut store = Store::open_in_memory().unwrap();
        assert_eq!(store.draft(9).unwrap(), None);
        let err = store.approve(9, &[], at(9)).unwrap_err();
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
        store.approve(id, &tokens(), at(11)).unwrap();
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

    #[test]
    fn mark_sent_is_idempotent_and_failures_are_counted() {
        let mut store = Store::open_in_memory().unwrap();
        let id = recorded_draft(&mut store, "k1");
        assert!(matches!(
            store.mark_sent(id, at(10)),
            Err(Error::NotQueued { .. })
        ));
        store.approve(id, &tokens(), at(10)).unwrap();
        store
            .record_send_failure(id, "421 4.7.0 try again later", at(11))
            .unwrap();
        let item = &store.outbox_pending().unwrap()[0];
        assert_eq!(item.attempts, 1);
        assert_eq!(
            item.last_error.as_deref(),
            Some("421 4.7.0 try again later")
        );
        assert_eq!(item.last_attempt_at, Some(at(11)));
        store.mark_sent(id, at(12)).unwrap();
        store.mark_sent(id, at(13)).unwrap();
        assert!(store.outbox_pending().unwrap().is_empty());
        let sent = store.draft(id).unwrap().unwrap();
        assert_eq!(sent.status, DraftStatus::Sent);
        assert_eq!(sent.updated_at, at(12));
        let err = store.record_send_failure(id, "late", at(14)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot record a send failure for draft {id}: it was already sent")
        );
    }

    #[test]
    fn drafts_filter_by_status() {
        let mut store = Store::open_in_memory().unwrap();
        let a = recorded_draft(&mut store, "a");
        let b = recorded_draft(&mut store, "b");
        store.approve(b, &tokens(), at(10)).unwrap();
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
            store.approve(id, &tokens(), at(10)).unwrap();
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
        assert!(store.approve(id, &tokens(), at(11)).is_err());
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
}

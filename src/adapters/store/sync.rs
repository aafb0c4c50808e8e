//! IMAP sync progress: the last UID handled per folder under its UIDVALIDITY, and where each draft
//! was placed on the server. Progress is written inside the transaction that records the message,
//! which is what makes "fetch only UIDs above the last one" safe across crashes.

use super::{Error, Store, begin, sql, timestamp};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

/// A folder position: UIDs are only comparable under the same UIDVALIDITY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncProgress {
    pub uid_validity: u32,
    pub uid: u32,
}

impl Store {
    /// Where the watcher stopped in `mailbox`, if it ever started there.
    pub fn sync_state(&self, mailbox: &str) -> Result<Option<SyncProgress>, Error> {
        self.conn
            .query_row(
                "SELECT uid_validity, last_uid FROM sync_state WHERE mailbox = ?1",
                [mailbox],
                |r| {
                    Ok(SyncProgress {
                        uid_validity: r.get(0)?,
                        uid: r.get(1)?,
                    })
                },
            )
            .optional()
            .map_err(sql(format!("read the sync state of {mailbox}")))
    }

    /// Starts `mailbox` over under a new UIDVALIDITY (first start, or the server renumbered).
    pub fn reset_sync(
        &mut self,
        mailbox: &str,
        uid_validity: u32,
        now: DateTime<Utc>,
    ) -> Result<(), Error> {
        let tx = begin(&mut self.conn)?;
        tx.execute(
            "INSERT INTO sync_state (mailbox, uid_validity, last_uid, updated_at)
             VALUES (?1, ?2, 0, ?3)
             ON CONFLICT (mailbox) DO UPDATE SET uid_validity = ?2, last_uid = 0, updated_at = ?3",
            params![mailbox, uid_validity, timestamp(now)],
        )
        .map_err(sql(format!("reset the sync state of {mailbox}")))?;
        tx.commit()
            .map_err(sql(format!("reset the sync state of {mailbox}")))
    }

    /// For the watcher's own connection: scan commits are not synced to disk one by one
    /// (`synchronous = NORMAL`, safe with WAL). A process crash loses nothing; a power cut may lose
    /// the last few scans, which are then redone from the last durable UID, and a draft already
    /// placed is found in Drafts by its Message-ID before anything is appended. Approvals and
    /// sends keep full durability on their own connections.
    pub fn relax_durability_for_scanning(&self) -> Result<(), Error> {
        self.conn
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql("relax durability for scanning"))
    }

    /// Drafts recorded but not yet known to be in the server's Drafts folder.
    pub fn unplaced_drafts(&self) -> Result<Vec<i64>, Error> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id FROM drafts WHERE placed_uid IS NULL AND status = 'pending' ORDER BY id",
            )
            .map_err(sql("list unplaced drafts"))?;
        stmt.query_map([], |r| r.get(0))
            .map_err(sql("list unplaced drafts"))?
            .collect::<Result<Vec<i64>, _>>()
            .map_err(sql("list unplaced drafts"))
    }

    /// Sent drafts whose copy may still be in the Drafts folder (id, folder name, Message-ID):
    /// the process stopped between the send and the removal, or the rep confirmed a send.
    pub fn sent_still_placed(&self) -> Result<Vec<(i64, String, String)>, Error> {
        let action = "list sent drafts still in Drafts";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, folder_name, message_id FROM drafts
                 WHERE placed_uid IS NOT NULL AND status = 'sent' ORDER BY id",
            )
            .map_err(sql(action))?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(sql(action))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql(action))
    }

    /// The draft's copy is gone from the Drafts folder (a sent draft stays sent).
    pub fn mark_removed(&mut self, draft_id: i64) -> Result<(), Error> {
        self.conn
            .execute(
                "UPDATE drafts SET placed_uid = NULL WHERE id = ?1",
                [draft_id],
            )
            .map_err(sql(format!("record draft {draft_id} as out of Drafts")))?;
        Ok(())
    }

    /// Remembers where a draft landed in the server's Drafts folder (0 when the server gave no
    /// UID, e.g. without UIDPLUS: placed, position unknown).
    pub fn mark_placed(&mut self, draft_id: i64, uid: u32) -> Result<(), Error> {
        self.conn
            .execute(
                "UPDATE drafts SET placed_uid = ?2 WHERE id = ?1",
                params![draft_id, uid],
            )
            .map_err(sql(format!("record where draft {draft_id} was placed")))?;
        Ok(())
    }
}

/// Moves `mailbox`'s position forward (never back) inside the caller's transaction.
pub(super) fn advance(
    conn: &Connection,
    mailbox: &str,
    progress: SyncProgress,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    conn.execute(
        "INSERT INTO sync_state (mailbox, uid_validity, last_uid, updated_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (mailbox) DO UPDATE SET
             last_uid = max(last_uid, ?3), updated_at = ?4
         WHERE uid_validity = ?2",
        params![mailbox, progress.uid_validity, progress.uid, timestamp(now)],
    )
    .map_err(sql(format!("advance the sync state of {mailbox}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 3, 1, 9, minute, 0).unwrap()
    }

    #[test]
    fn progress_only_moves_forward_under_the_same_uidvalidity() {
        let mut store = Store::open_in_memory().unwrap();
        assert_eq!(store.sync_state("imap:INBOX").unwrap(), None);
        store.reset_sync("imap:INBOX", 7, at(0)).unwrap();
        let progress = |uid| {
            Some(SyncProgress {
                uid_validity: 7,
                uid,
            })
        };
        store
            .record_skip("imap:INBOX", "7:12", "too big", progress(12), at(1))
            .unwrap();
        store
            .record_skip("imap:INBOX", "7:5", "too big", progress(5), at(2))
            .unwrap();
        assert_eq!(
            store.sync_state("imap:INBOX").unwrap(),
            Some(SyncProgress {
                uid_validity: 7,
                uid: 12
            })
        );
        // A position under a stale UIDVALIDITY never moves the new one.
        store.reset_sync("imap:INBOX", 8, at(3)).unwrap();
        let stale = Some(SyncProgress {
            uid_validity: 7,
            uid: 40,
        });
        store
            .record_skip("imap:INBOX", "7:40", "too big", stale, at(4))
            .unwrap();
        assert_eq!(
            store.sync_state("imap:INBOX").unwrap(),
            Some(SyncProgress {
                uid_validity: 8,
                uid: 0
            })
        );
    }
}

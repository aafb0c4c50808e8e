//! IMAP sync progress: the last UID handled per folder under its UIDVALIDITY, and where each draft
//! was placed on the server. Progress is written inside the transaction that records the message,
//! which is what makes "fetch only UIDs above the last one" safe across crashes.

use super::{Error, Store, begin, execute, sql, timestamp};
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
                "SELECT uid_validity, last_uid FROM sync_state WHERE account = ?2 AND mailbox = ?1",
                params![mailbox, self.account],
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
        execute(
            &tx,
            "INSERT INTO sync_state (account, mailbox, uid_validity, last_uid, updated_at)
             VALUES (?4, ?1, ?2, 0, ?3)
             ON CONFLICT (account, mailbox) DO UPDATE SET
                 uid_validity = ?2, last_uid = 0, updated_at = ?3",
            params![mailbox, uid_validity, timestamp(now), self.account],
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

    /// Opens one transaction for a run of scans (a fetched batch): each message is still its own
    /// savepoint, but the batch shares one commit and one set of written pages. A transaction
    /// left open by an interrupted batch is committed first: what it holds is whole messages.
    pub fn begin_batch(&mut self) -> Result<(), Error> {
        self.commit_batch()?;
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(sql("begin a batch of scans"))
    }

    /// Commits the batch [`Store::begin_batch`] opened (nothing to do outside one).
    pub fn commit_batch(&mut self) -> Result<(), Error> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn
            .execute_batch("COMMIT")
            .map_err(sql("commit a batch of scans"))
    }

    /// Marks `drafts` as being appended to the server's Drafts folder, durably even on the
    /// scanning connection, before any APPEND: a crash then cannot leave a draft on the server
    /// that the store believes was never tried. Returns those an earlier attempt may already have
    /// put there, which the caller looks for by Message-ID first.
    pub fn start_placing(&mut self, drafts: &[i64]) -> Result<Vec<i64>, Error> {
        let action = "mark drafts as being placed";
        let synchronous: i64 = self
            .conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .map_err(sql(action))?;
        self.conn
            .pragma_update(None, "synchronous", "FULL")
            .map_err(sql(action))?;
        let tried = mark_placing(&mut self.conn, drafts);
        self.conn
            .pragma_update(None, "synchronous", synchronous)
            .map_err(sql(action))?;
        tried
    }

    /// Drafts recorded but not yet known to be in the server's Drafts folder.
    pub fn unplaced_drafts(&self) -> Result<Vec<i64>, Error> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.id FROM drafts d JOIN messages m ON m.id = d.message
                 WHERE d.placed_uid IS NULL AND d.status = 'pending' AND m.account = ?1
                 ORDER BY d.id",
            )
            .map_err(sql("list unplaced drafts"))?;
        stmt.query_map([&self.account], |r| r.get(0))
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
                "SELECT d.id, d.folder_name, d.message_id FROM drafts d
                 JOIN messages m ON m.id = d.message
                 WHERE d.placed_uid IS NOT NULL AND d.status = 'sent' AND m.account = ?1
                 ORDER BY d.id",
            )
            .map_err(sql(action))?;
        stmt.query_map([&self.account], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
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
        self.mark_all_placed(&[(draft_id, uid)])
    }

    /// [`Store::mark_placed`] for each (draft id, UID) pair, in one transaction.
    pub fn mark_all_placed(&mut self, placed: &[(i64, u32)]) -> Result<(), Error> {
        let action = "record where drafts were placed";
        let tx = begin(&mut self.conn)?;
        for &(draft_id, uid) in placed {
            execute(
                &tx,
                "UPDATE drafts SET placed_uid = ?2 WHERE id = ?1",
                params![draft_id, uid],
            )
            .map_err(sql(format!("record where draft {draft_id} was placed")))?;
        }
        tx.commit().map_err(sql(action))
    }
}

fn mark_placing(conn: &mut Connection, drafts: &[i64]) -> Result<Vec<i64>, Error> {
    let action = "mark drafts as being placed";
    let tx = begin(conn)?;
    let mut tried = Vec::new();
    for &id in drafts {
        let before: Option<bool> = tx
            .prepare_cached("SELECT placing FROM drafts WHERE id = ?1")
            .and_then(|mut placing| placing.query_row([id], |r| r.get(0)))
            .optional()
            .map_err(sql(action))?;
        if before == Some(true) {
            tried.push(id);
        }
        execute(&tx, "UPDATE drafts SET placing = 1 WHERE id = ?1", [id]).map_err(sql(action))?;
    }
    tx.commit().map_err(sql(action))?;
    Ok(tried)
}

/// Moves `mailbox`'s position forward (never back) inside the caller's transaction.
pub(super) fn advance(
    conn: &Connection,
    account: &str,
    mailbox: &str,
    progress: SyncProgress,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    execute(
        conn,
        "INSERT INTO sync_state (account, mailbox, uid_validity, last_uid, updated_at)
         VALUES (?5, ?1, ?2, ?3, ?4)
         ON CONFLICT (account, mailbox) DO UPDATE SET
             last_uid = max(last_uid, ?3), updated_at = ?4
         WHERE uid_validity = ?2",
        params![
            mailbox,
            progress.uid_validity,
            progress.uid,
            timestamp(now),
            account
        ],
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

    #[test]
    fn a_batch_commits_once_and_a_failed_message_inside_it_undoes_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        let reader = Store::open(dir.path()).unwrap();
        let scan = super::super::tests::scan;
        store.begin_batch().unwrap();
        store
            .record_scan(&scan("1", "<a@buyer.example>", true), at(0))
            .unwrap();
        // A draft under a file name already taken fails inside its savepoint.
        let mut broken = scan("2", "<b@buyer.example>", true);
        broken.draft.as_mut().unwrap().folder_name = "pushback-1".into();
        assert!(store.record_scan(&broken, at(1)).is_err());
        store
            .record_scan(&scan("3", "<c@buyer.example>", true), at(2))
            .unwrap();
        // Nothing is visible to another connection before the commit.
        assert!(!reader.is_seen("INBOX", "1").unwrap());
        store.commit_batch().unwrap();
        assert!(reader.is_seen("INBOX", "1").unwrap());
        assert!(!reader.is_seen("INBOX", "2").unwrap());
        assert!(reader.is_seen("INBOX", "3").unwrap());
        assert_eq!(reader.unplaced_drafts().unwrap().len(), 2);
        // A batch an interrupted caller left open is committed by the next one.
        store.begin_batch().unwrap();
        store
            .record_scan(&scan("4", "<d@buyer.example>", false), at(3))
            .unwrap();
        store.begin_batch().unwrap();
        assert!(reader.is_seen("INBOX", "4").unwrap());
        store.commit_batch().unwrap();
    }

    #[test]
    fn only_a_draft_whose_placing_was_started_before_is_looked_for() {
        let mut store = Store::open_in_memory().unwrap();
        let scan = super::super::tests::scan;
        for key in ["1", "2"] {
            store
                .record_scan(&scan(key, &format!("<{key}@buyer.example>"), true), at(0))
                .unwrap();
        }
        let unplaced = store.unplaced_drafts().unwrap();
        assert_eq!(store.start_placing(&unplaced).unwrap(), Vec::<i64>::new());
        store.mark_placed(unplaced[0], 7).unwrap();
        // A crash after the first APPEND: the second may be on the server.
        assert_eq!(store.unplaced_drafts().unwrap(), vec![unplaced[1]]);
        assert_eq!(
            store.start_placing(&[unplaced[1]]).unwrap(),
            vec![unplaced[1]]
        );
    }
}

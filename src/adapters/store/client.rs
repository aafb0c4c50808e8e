//! The rep's own mail client as an approval path, as the store records it: the pending drafts the
//! watcher compares with the server's Drafts and Sent folders, a draft edited in the client adopted
//! as the current version, and a reply the rep sent from the client recorded as approved and sent.
//! What the client did is decided in `app::client`; each change here is one transaction that only
//! applies to a draft still pending, so a decision made meanwhile on another path (the CLI) wins.

use super::{
    ApprovedVia, DraftRecord, Error, Store, begin, draft, execute, record_approval, sql, timestamp,
};
use chrono::{DateTime, Utc};
use rusqlite::params;

/// A pending draft as the rep's mail client may have changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDraft {
    pub id: i64,
    /// The original's Message-ID (bare): what the client keeps as In-Reply-To when it edits.
    pub in_reply_to: Option<String>,
    /// The current version's Message-ID (bare).
    pub message_id: String,
    pub version: i64,
    /// Its UID in the server's Drafts folder; `None` until it was placed there.
    pub placed_uid: Option<u32>,
}

/// A version of a draft the rep saved in their own mail client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEdit<'a> {
    /// The Message-ID the store knew as current when the edit was found.
    pub replaces: &'a str,
    pub message_id: &'a str,
    pub body: &'a str,
    pub raw: &'a [u8],
    pub uid: u32,
}

impl Store {
    /// Every pending draft, oldest first.
    pub fn pending_drafts(&self) -> Result<Vec<PendingDraft>, Error> {
        let action = "list pending drafts";
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.id, d.in_reply_to, d.message_id, d.version, d.placed_uid
                 FROM drafts d JOIN messages m ON m.id = d.message
                 WHERE d.status = 'pending' AND m.account = ?1 ORDER BY d.id",
            )
            .map_err(sql(action))?;
        stmt.query_map([&self.account], |r| {
            Ok(PendingDraft {
                id: r.get(0)?,
                in_reply_to: r.get(1)?,
                message_id: r.get(2)?,
                version: r.get(3)?,
                placed_uid: r.get(4)?,
            })
        })
        .map_err(sql(action))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(sql(action))
    }

    /// Whether the message with `message_id` (bare) went through pushback's outbox: a copy pushback
    /// files in Sent itself, never one the rep sent from their client.
    pub fn in_pushback_outbox(&self, message_id: &str) -> Result<bool, Error> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM drafts d JOIN outbox o ON o.draft = d.id
                                JOIN messages m ON m.id = d.message
                                WHERE d.message_id = ?1 AND m.account = ?2)",
                params![message_id, self.account],
                |r| r.get(0),
            )
            .map_err(sql(format!("look up sent message-id {message_id}")))
    }

    /// Makes the version the rep saved in their client the draft's current one (text, bytes,
    /// Message-ID, where it sits in Drafts) and bumps the version. Returns the draft, or `None`
    /// when it is no longer pending or was changed since `edit.replaces` was read (an edit or
    /// decision through the CLI meanwhile): then nothing changed.
    pub fn adopt_client_edit(
        &mut self,
        id: i64,
        edit: &ClientEdit<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<DraftRecord>, Error> {
        let action = || format!("adopt the client's edit of draft {id}");
        let tx = begin(&mut self.conn)?;
        let changed = execute(
            &tx,
            "UPDATE drafts SET body = ?3, raw = ?4, message_id = ?5, placed_uid = ?6,
                                   version = version + 1, updated_at = ?7
                 WHERE id = ?1 AND status = 'pending' AND message_id = ?2",
            params![
                id,
                edit.replaces,
                edit.body,
                edit.raw,
                edit.message_id,
                edit.uid,
                timestamp(now)
            ],
        )
        .map_err(sql(action()))?;
        if changed == 0 {
            return Ok(None);
        }
        let record = draft(&tx, &self.account, id)?.ok_or(Error::NoDraft { id })?;
        tx.commit().map_err(sql(action()))?;
        Ok(Some(record))
    }

    /// Records that the rep sent this draft's reply from their own client at `sent_at`: the
    /// approval (via `client-sent`, of the current version), status `sent` and a `procurement`
    /// feedback example, all without an outbox row, so pushback never sends it. Returns the draft,
    /// or `None` when it was no longer pending (approved or rejected meanwhile).
    pub fn record_sent_by_client(
        &mut self,
        id: i64,
        sent_at: DateTime<Utc>,
        tokens: &[String],
        now: DateTime<Utc>,
    ) -> Result<Option<DraftRecord>, Error> {
        let action = || format!("record draft {id} as sent from the rep's client");
        let tx = begin(&mut self.conn)?;
        let changed = execute(
            &tx,
            "UPDATE drafts SET status = 'sent', updated_at = ?2
                 WHERE id = ?1 AND status = 'pending'",
            params![id, timestamp(now)],
        )
        .map_err(sql(action()))?;
        if changed == 0 {
            return Ok(None);
        }
        record_approval(&tx, id, ApprovedVia::ClientSent, tokens, sent_at, now)?;
        let record = draft(&tx, &self.account, id)?.ok_or(Error::NoDraft { id })?;
        tx.commit().map_err(sql(action()))?;
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::store::{
        ApprovedVia, DraftStatus, NewDraft, RecordOutcome, ScannedMessage,
    };
    use crate::core::model::{Category, Classification, Facts, Label};
    use chrono::TimeZone;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 3, 1, 9, minute, 0).unwrap()
    }

    fn drafted(store: &mut Store) -> i64 {
        let scanned = ScannedMessage {
            mailbox: "imap:INBOX".into(),
            key: "7:1".into(),
            message_id: Some("rfp-1@buyer.example".into()),
            subject: "RFP 1".into(),
            sender: Some("pat@buyer.example".into()),
            date: None,
            classification: Classification {
                label: Label::Procurement,
                category: Category::Rfp,
                score: 4.0,
                reasons: Vec::new(),
            },
            facts: Facts::default(),
            draft: Some(NewDraft {
                in_reply_to: Some("rfp-1@buyer.example".into()),
                message_id: "pushback.1.v1@northwind.example".into(),
                subject: "Re: RFP 1".into(),
                recipient: "pat@buyer.example".into(),
                category: Category::Rfp,
                body: "Hi Pat".into(),
                raw: b"Subject: Re: RFP 1\r\n\r\nHi Pat".to_vec(),
                original: b"Subject: RFP 1\r\n\r\nPlease respond".to_vec(),
                notes: Vec::new(),
                folder_name: "pushback-1".into(),
                proposed_slots: Vec::new(),
                source: None,
            }),
            reminders: Vec::new(),
            reply: None,
            progress: None,
        };
        match store.record_scan(&scanned, at(0)).unwrap() {
            RecordOutcome::Recorded { draft_id: Some(id) } => id,
            other => panic!("unexpected outcome {other:?}"),
        }
    }

    fn count(store: &Store, table: &str) -> i64 {
        store
            .conn
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    fn edit<'a>(replaces: &'a str, message_id: &'a str) -> ClientEdit<'a> {
        ClientEdit {
            replaces,
            message_id,
            body: "Hi Pat, edited",
            raw: b"Subject: Re: RFP 1\r\n\r\nHi Pat, edited",
            uid: 9,
        }
    }

    #[test]
    fn a_client_edit_becomes_the_current_version() {
        let mut store = Store::open_in_memory().unwrap();
        let id = drafted(&mut store);
        store.mark_placed(id, 3).unwrap();
        let adopted = store
            .adopt_client_edit(
                id,
                &edit("pushback.1.v1@northwind.example", "client-1@mua"),
                at(5),
            )
            .unwrap()
            .unwrap();
        assert_eq!(adopted.body, "Hi Pat, edited");
        assert_eq!(adopted.message_id, "client-1@mua");
        assert_eq!(adopted.version, 2);
        assert_eq!(
            store.pending_drafts().unwrap(),
            [PendingDraft {
                id,
                in_reply_to: Some("rfp-1@buyer.example".into()),
                message_id: "client-1@mua".into(),
                version: 2,
                placed_uid: Some(9),
            }]
        );
    }

    // Guards against a stale read overwriting an edit the rep made meanwhile in the CLI.
    #[test]
    fn an_edit_of_a_version_that_is_no_longer_current_changes_nothing() {
        let mut store = Store::open_in_memory().unwrap();
        let id = drafted(&mut store);
        store
            .update_draft(
                id,
                "cli text",
                b"raw",
                "pushback.1.v2@northwind.example",
                at(1),
            )
            .unwrap();
        let stale = edit("pushback.1.v1@northwind.example", "client-1@mua");
        assert_eq!(store.adopt_client_edit(id, &stale, at(2)).unwrap(), None);
        let draft = store.draft(id).unwrap().unwrap();
        assert_eq!(draft.body, "cli text");
        assert_eq!(draft.version, 2);
    }

    #[test]
    fn a_reply_sent_from_the_client_is_approved_and_sent_without_an_outbox_row() {
        let mut store = Store::open_in_memory().unwrap();
        let id = drafted(&mut store);
        let sent = store
            .record_sent_by_client(id, at(3), &["rfp".into()], at(7))
            .unwrap()
            .unwrap();
        assert_eq!(sent.status, DraftStatus::Sent);
        let approval = store.approval(id).unwrap().unwrap();
        assert_eq!(approval.via, ApprovedVia::ClientSent);
        assert_eq!(approval.approved_at, at(3), "the time the reply was sent");
        assert_eq!(approval.version, 1);
        assert_eq!(count(&store, "outbox"), 0);
        assert_eq!(count(&store, "feedback"), 1);
        assert!(store.outbox_pending().unwrap().is_empty());
        assert!(store.pending_drafts().unwrap().is_empty());
        // A second sighting of the same reply records nothing more.
        assert_eq!(
            store.record_sent_by_client(id, at(3), &[], at(8)).unwrap(),
            None
        );
        assert_eq!(count(&store, "approvals"), 1);
    }

    #[test]
    fn a_draft_approved_in_the_cli_is_not_recorded_as_sent_by_the_client() {
        let mut store = Store::open_in_memory().unwrap();
        let id = drafted(&mut store);
        assert!(
            !store
                .in_pushback_outbox("pushback.1.v1@northwind.example")
                .unwrap()
        );
        store.approve(id, ApprovedVia::Cli, &[], at(1)).unwrap();
        assert!(
            store
                .in_pushback_outbox("pushback.1.v1@northwind.example")
                .unwrap()
        );
        assert_eq!(
            store.record_sent_by_client(id, at(2), &[], at(2)).unwrap(),
            None
        );
        assert_eq!(store.approval(id).unwrap().unwrap().via, ApprovedVia::Cli);
        assert_eq!(
            store.draft(id).unwrap().unwrap().status,
            DraftStatus::Approved
        );
    }
}

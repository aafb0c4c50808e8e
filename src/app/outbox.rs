//! Delivers what the rep approved, exactly once. Only the store's outbox is delivered, and only
//! approval puts a draft there. Each due draft is claimed (`approved -> sending`, one
//! transaction), sent with the bytes approved (Message-ID fixed when the draft was composed),
//! recorded as sent, and only then filed in the Sent folder and removed from Drafts. A failed
//! attempt is retried with exponential backoff (4xx, lost connection) or marked failed with the
//! server's reply (5xx). A draft found in `sending` at startup is never resent blindly:
//! [`recover_in_flight`] looks for its Message-ID in the Sent folder and otherwise leaves it
//! `unknown` for the rep.
//!
//! Without a network transport configured, the local transport only files the draft in the
//! Sent folder: nothing leaves the machine. This module never reads the clock; callers pass
//! `now`. The mailbox side (Maildir here, IMAP in the daemon) is a [`SentFolder`].

use crate::adapters::maildir::Maildir;
use crate::adapters::smtp::{Envelope, SendError, Transport};
use crate::adapters::store::Store;
use anyhow::Result;
use chrono::{DateTime, TimeDelta, Utc};
use futures::future::BoxFuture;
use mail_parser::MessageParser;

/// Transient failures in a row before a draft is marked failed (about eight hours of retrying
/// with [`retry_delay`]).
pub const MAX_ATTEMPTS: u32 = 10;
const FIRST_RETRY: TimeDelta = TimeDelta::minutes(1);
const LONGEST_RETRY: TimeDelta = TimeDelta::hours(4);

/// The mailbox operations around a send: filing the sent copy, removing the draft, and finding
/// out whether a message was already filed.
pub trait SentFolder: Send {
    /// Files `raw` in the Sent folder under `name`; filing the same name again replaces it.
    fn file_sent<'a>(&'a mut self, name: &'a str, raw: &'a [u8]) -> BoxFuture<'a, Result<()>>;
    /// Removes the draft filed as `name` whose Message-ID is `message_id`.
    fn remove_draft<'a>(
        &'a mut self,
        name: &'a str,
        message_id: &'a str,
    ) -> BoxFuture<'a, Result<()>>;
    /// Whether a message with this Message-ID is in the Sent folder.
    fn holds_message_id<'a>(&'a mut self, message_id: &'a str) -> BoxFuture<'a, Result<bool>>;
}

impl SentFolder for &Maildir {
    fn file_sent<'a>(&'a mut self, name: &'a str, raw: &'a [u8]) -> BoxFuture<'a, Result<()>> {
        let result = self.write_sent(name, raw).map(drop).map_err(Into::into);
        Box::pin(std::future::ready(result))
    }

    fn remove_draft<'a>(
        &'a mut self,
        name: &'a str,
        _message_id: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        let result = Maildir::remove_draft(self, name)
            .map(drop)
            .map_err(Into::into);
        Box::pin(std::future::ready(result))
    }

    fn holds_message_id<'a>(&'a mut self, message_id: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(std::future::ready(maildir_holds(self, message_id)))
    }
}

fn maildir_holds(maildir: &Maildir, message_id: &str) -> Result<bool> {
    let wanted = bare_message_id(message_id);
    for path in maildir.sent()? {
        let raw = std::fs::read(&path)?;
        let found = MessageParser::default()
            .parse_headers(&raw)
            .and_then(|m| m.message_id().map(|id| bare_message_id(id) == wanted));
        if found == Some(true) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn bare_message_id(id: &str) -> &str {
    id.trim().trim_start_matches('<').trim_end_matches('>')
}

/// What one delivery run did, by draft id.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub sent: Vec<i64>,
    /// Failed for now; due again later.
    pub retrying: Vec<i64>,
    pub failed: Vec<i64>,
}

/// How long to wait after failed attempt number `attempt` (1-based): one minute, doubling, at
/// most four hours.
pub fn retry_delay(attempt: u32) -> TimeDelta {
    let doublings = attempt.saturating_sub(1).min(16);
    (FIRST_RETRY * 2_i32.pow(doublings)).min(LONGEST_RETRY)
}

/// Sends every approved draft that is due at `now` through `transport`.
pub async fn deliver_pending(
    store: &mut Store,
    transport: &dyn Transport,
    folder: &mut dyn SentFolder,
    now: DateTime<Utc>,
) -> Result<Delivery> {
    deliver(store, Some(transport), folder, now).await
}

/// The local transport: files every due approved draft in the Sent folder and sends nothing.
pub async fn file_locally(
    store: &mut Store,
    folder: &mut dyn SentFolder,
    now: DateTime<Utc>,
) -> Result<Delivery> {
    deliver(store, None, folder, now).await
}

/// The local transport for a Maildir, for the command line: returns the drafts filed.
pub fn flush(maildir: &Maildir, store: &mut Store, now: DateTime<Utc>) -> Result<Vec<i64>> {
    let mut folder = maildir;
    let delivery = futures::executor::block_on(file_locally(store, &mut folder, now))?;
    Ok(delivery.sent)
}

async fn deliver(
    store: &mut Store,
    transport: Option<&dyn Transport>,
    folder: &mut dyn SentFolder,
    now: DateTime<Utc>,
) -> Result<Delivery> {
    let mut delivery = Delivery::default();
    for item in store.outbox_due(now)? {
        let id = item.draft_id;
        // One draft that cannot be claimed (its row does not match its approval) never stops
        // the others.
        let claim = match store.claim_for_sending(id, now) {
            Ok(claim) => claim,
            Err(error) => {
                tracing::error!(draft = id, "{error}");
                continue;
            }
        };
        let outcome = match transport {
            Some(transport) => match Envelope::of_message(&claim.raw) {
                Ok(envelope) => transport.send_raw(&envelope, &claim.raw).await,
                Err(error) => Err(SendError::Permanent(error.to_string())),
            },
            None => folder
                .file_sent(&claim.folder_name, &claim.raw)
                .await
                .map_err(|error| SendError::Transient(format!("{error:#}"))),
        };
        match outcome {
            Ok(()) => {
                store.mark_sent(id, now)?;
                delivery.sent.push(id);
                // The message is out; a missing copy is worth a warning, not a resend.
                if transport.is_some()
                    && let Err(error) = folder.file_sent(&claim.folder_name, &claim.raw).await
                {
                    tracing::warn!(draft = id, "sent, but cannot file the copy: {error:#}");
                }
                match folder
                    .remove_draft(&claim.folder_name, &claim.message_id)
                    .await
                {
                    Ok(()) => store.mark_removed(id)?,
                    // Removed by a later round (`remove_sent_drafts`).
                    Err(error) => {
                        tracing::warn!(draft = id, "sent, but cannot remove the draft: {error:#}")
                    }
                }
            }
            Err(SendError::Transient(error)) if claim.attempt < MAX_ATTEMPTS => {
                let next = now + retry_delay(claim.attempt);
                tracing::warn!(draft = id, attempt = claim.attempt, %next, "cannot send yet: {error}");
                store.mark_retry(id, &error, next, now)?;
                delivery.retrying.push(id);
            }
            Err(SendError::Transient(error)) => {
                let reply = format!("gave up after {} attempts: {error}", claim.attempt);
                tracing::error!(draft = id, "{reply}");
                store.mark_failed_permanent(id, &reply, now)?;
                delivery.failed.push(id);
            }
            Err(SendError::Permanent(reply)) => {
                tracing::error!(draft = id, "cannot send: {reply}");
                store.mark_failed_permanent(id, &reply, now)?;
                delivery.failed.push(id);
            }
        }
    }
    Ok(delivery)
}

/// Takes out of the Drafts folder every sent draft still there (a stop between the send and the
/// removal, a send the rep confirmed, a send recovery found in Sent): a reply that left must not
/// wait in Drafts to be sent again by hand. Returns the drafts removed.
pub async fn remove_sent_drafts(
    store: &mut Store,
    folder: &mut dyn SentFolder,
) -> Result<Vec<i64>> {
    let mut removed = Vec::new();
    for (id, folder_name, message_id) in store.sent_still_placed()? {
        match folder.remove_draft(&folder_name, &message_id).await {
            Ok(()) => {
                store.mark_removed(id)?;
                removed.push(id);
            }
            Err(error) => tracing::warn!(draft = id, "cannot remove the sent draft: {error:#}"),
        }
    }
    Ok(removed)
}

/// What startup recovery decided about drafts left in `sending`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Found in the Sent folder: recorded as sent.
    pub sent: Vec<i64>,
    /// Not found: left for the rep (`drafts resend` or `drafts mark-sent`).
    pub unknown: Vec<i64>,
}

/// Run once at startup, before any delivery, with the state's sending lock held (so no other
/// sender is mid-send): settles every draft left in `sending` without sending anything.
pub async fn recover_in_flight(
    store: &mut Store,
    folder: &mut dyn SentFolder,
    now: DateTime<Utc>,
) -> Result<Recovery> {
    let mut recovery = Recovery::default();
    for item in store.in_flight()? {
        if folder.holds_message_id(&item.message_id).await? {
            store.mark_sent(item.draft_id, now)?;
            match folder
                .remove_draft(&item.folder_name, &item.message_id)
                .await
            {
                Ok(()) => store.mark_removed(item.draft_id)?,
                Err(error) => {
                    tracing::warn!(draft = item.draft_id, "cannot remove the draft: {error:#}")
                }
            }
            recovery.sent.push(item.draft_id);
        } else {
            tracing::warn!(
                draft = item.draft_id,
                message_id = %item.message_id,
                "a send was interrupted and the message is not in the Sent folder; \
                 `pushback drafts resend` or `drafts mark-sent` decides"
            );
            store.mark_unknown(item.draft_id, now)?;
            recovery.unknown.push(item.draft_id);
        }
    }
    Ok(recovery)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::adapters::store::{
        ApprovedVia, DraftStatus, NewDraft, RecordOutcome, ScannedMessage,
    };
    use crate::core::model::{Category, Classification, Facts, Label};
    use chrono::TimeZone;
    use futures::executor::block_on;
    use std::sync::Mutex;

    pub(crate) fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 3, 1, 10, minute, 0).unwrap()
    }

    fn raw(key: &str) -> Vec<u8> {
        format!(
            "From: Alex Rivera <alex@northwind.example>\r\nTo: pat@buyer.example\r\n\
             Cc: lee@buyer.example\r\nSubject: Re: RFP {key}\r\n\
             Message-ID: <draft-{key}@northwind.example>\r\n\r\nHi Pat\r\n"
        )
        .into_bytes()
    }

    /// An approved draft for `key`, also written to the Maildir's Drafts folder.
    pub(crate) fn approved(store: &mut Store, maildir: &Maildir, key: &str) -> i64 {
        approved_message(store, maildir, key, raw(key))
    }

    fn approved_message(store: &mut Store, maildir: &Maildir, key: &str, raw: Vec<u8>) -> i64 {
        let scan = ScannedMessage {
            mailbox: "INBOX".into(),
            key: key.into(),
            message_id: Some(format!("<{key}@buyer.example>")),
            subject: "RFP".into(),
            sender: None,
            date: None,
            classification: Classification {
                label: Label::Procurement,
                category: Category::Rfp,
                score: 4.0,
                reasons: Vec::new(),
            },
            facts: Facts::default(),
            draft: Some(NewDraft {
                in_reply_to: None,
                message_id: format!("<draft-{key}@northwind.example>"),
                subject: format!("Re: RFP {key}"),
                recipient: "pat@buyer.example".into(),
                category: Category::Rfp,
                body: "Hi Pat".into(),
                raw: raw.clone(),
                original: b"Subject: RFP\r\n\r\nx".to_vec(),
                notes: Vec::new(),
                folder_name: format!("pushback-{key}"),
                proposed_slots: Vec::new(),
                source: None,
            }),
            reminders: Vec::new(),
            reply: None,
            progress: None,
        };
        let Ok(RecordOutcome::Recorded { draft_id: Some(id) }) = store.record_scan(&scan, at(0))
        else {
            panic!("no draft recorded");
        };
        maildir
            .write_draft(&format!("pushback-{key}"), &raw)
            .unwrap();
        store.approve(id, ApprovedVia::Cli, &[], at(0)).unwrap();
        id
    }

    /// Records what it is given and answers from a script (Ok once the script runs out).
    #[derive(Default)]
    struct Recorder {
        sent: Mutex<Vec<(Envelope, Vec<u8>)>>,
        script: Mutex<Vec<SendError>>,
    }

    impl Recorder {
        fn failing(errors: Vec<SendError>) -> Recorder {
            Recorder {
                script: Mutex::new(errors),
                ..Recorder::default()
            }
        }

        fn count(&self) -> usize {
            self.sent.lock().unwrap().len()
        }
    }

    impl Transport for Recorder {
        fn send_raw<'a>(
            &'a self,
            envelope: &'a Envelope,
            raw: &'a [u8],
        ) -> BoxFuture<'a, Result<(), SendError>> {
            self.sent
                .lock()
                .unwrap()
                .push((envelope.clone(), raw.to_vec()));
            let mut script = self.script.lock().unwrap();
            let result = if script.is_empty() {
                Ok(())
            } else {
                Err(script.remove(0))
            };
            Box::pin(std::future::ready(result))
        }
    }

    fn setup() -> (tempfile::TempDir, Maildir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::create(&dir.path().join("Mail")).unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        (dir, maildir, store)
    }

    pub(crate) fn status(store: &Store, id: i64) -> DraftStatus {
        store.draft(id).unwrap().unwrap().status
    }

    #[test]
    fn deliver_sends_once_then_files_the_copy_and_removes_the_draft() {
        let (_dir, maildir, mut store) = setup();
        let id = approved(&mut store, &maildir, "k1");
        let transport = Recorder::default();
        let mut folder = &maildir;
        let delivery =
            block_on(deliver_pending(&mut store, &transport, &mut folder, at(1))).unwrap();
        assert_eq!(delivery.sent, [id]);
        let sent = transport.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            sent[0].0,
            Envelope {
                from: "alex@northwind.example".into(),
                to: vec!["pat@buyer.example".into(), "lee@buyer.example".into()],
            }
        );
        assert_eq!(sent[0].1, raw("k1"));
        assert_eq!(status(&store, id), DraftStatus::Sent);
        assert_eq!(maildir.sent().unwrap().len(), 1);
        assert!(maildir.drafts().unwrap().is_empty());
        let again = block_on(deliver_pending(&mut store, &transport, &mut folder, at(59))).unwrap();
        assert_eq!(again, Delivery::default());
        assert_eq!(transport.count(), 1);
    }

    #[test]
    fn transient_failures_back_off_and_permanent_ones_keep_the_reply() {
        let (_dir, maildir, mut store) = setup();
        let id = approved(&mut store, &maildir, "k1");
        let transport = Recorder::failing(vec![
            SendError::Transient("421 4.3.2 busy".into()),
            SendError::Permanent("550 5.1.1 no such user".into()),
        ]);
        let mut folder = &maildir;
        let first = block_on(deliver_pending(&mut store, &transport, &mut folder, at(1))).unwrap();
        assert_eq!(first.retrying, [id]);
        let item = &store.outbox_pending().unwrap()[0];
        assert_eq!(item.status, DraftStatus::Approved);
        assert_eq!(item.next_attempt_at, Some(at(2)));
        assert_eq!(item.last_error.as_deref(), Some("421 4.3.2 busy"));
        // Not due yet: nothing is attempted.
        let early = block_on(deliver_pending(&mut store, &transport, &mut folder, at(1))).unwrap();
        assert_eq!(early, Delivery::default());
        assert_eq!(transport.count(), 1);
        let second = block_on(deliver_pending(&mut store, &transport, &mut folder, at(2))).unwrap();
        assert_eq!(second.failed, [id]);
        assert_eq!(status(&store, id), DraftStatus::Failed);
        let item = &store.outbox_pending().unwrap()[0];
        assert_eq!(item.last_error.as_deref(), Some("550 5.1.1 no such user"));
        // Failed drafts stay in Drafts and out of Sent, for the rep to see.
        assert!(maildir.sent().unwrap().is_empty());
        assert_eq!(maildir.drafts().unwrap().len(), 1);
        // Both attempts carried the same bytes, so the same Message-ID.
        let sent = transport.sent.lock().unwrap();
        assert_eq!(sent[0].1, sent[1].1);
    }

    #[test]
    fn transient_failures_give_up_after_max_attempts() {
        let (_dir, maildir, mut store) = setup();
        let id = approved(&mut store, &maildir, "k1");
        let errors = (0..MAX_ATTEMPTS)
            .map(|_| SendError::Transient("connection refused".into()))
            .collect();
        let transport = Recorder::failing(errors);
        let mut folder = &maildir;
        let mut now = at(0);
        for attempt in 1..=MAX_ATTEMPTS {
            let delivery =
                block_on(deliver_pending(&mut store, &transport, &mut folder, now)).unwrap();
            if attempt < MAX_ATTEMPTS {
                assert_eq!(delivery.retrying, [id], "attempt {attempt}");
            } else {
                assert_eq!(delivery.failed, [id]);
            }
            now += retry_delay(attempt);
        }
        assert_eq!(transport.count(), MAX_ATTEMPTS as usize);
        let item = &store.outbox_pending().unwrap()[0];
        assert_eq!(item.status, DraftStatus::Failed);
        assert_eq!(
            item.last_error.as_deref(),
            Some("gave up after 10 attempts: connection refused")
        );
    }

    #[test]
    fn the_backoff_doubles_from_a_minute_to_at_most_four_hours() {
        let minutes: Vec<i64> = (1..=10).map(|a| retry_delay(a).num_minutes()).collect();
        assert_eq!(minutes, [1, 2, 4, 8, 16, 32, 64, 128, 240, 240]);
        assert_eq!(retry_delay(u32::MAX), TimeDelta::hours(4));
    }

    #[test]
    fn a_message_without_recipients_fails_without_reaching_the_transport() {
        let (_dir, maildir, mut store) = setup();
        let nowhere = b"From: alex@northwind.example\r\nSubject: Re: RFP\r\n\r\nHi\r\n".to_vec();
        let broken = approved_message(&mut store, &maildir, "broken", nowhere);
        let fine = approved(&mut store, &maildir, "fine");
        let transport = Recorder::default();
        let mut folder = &maildir;
        let delivery =
            block_on(deliver_pending(&mut store, &transport, &mut folder, at(1))).unwrap();
        // One bad draft does not stop the run.
        assert_eq!(delivery.failed, [broken]);
        assert_eq!(delivery.sent, [fine]);
        assert_eq!(transport.count(), 1);
        let item = &store.outbox_pending().unwrap()[0];
        assert_eq!(
            item.last_error.as_deref(),
            Some("cannot send a message without To or Cc addresses")
        );
    }

    #[test]
    fn recovery_marks_found_messages_sent_and_the_rest_unknown() {
        let (_dir, maildir, mut store) = setup();
        let filed = approved(&mut store, &maildir, "filed");
        let lost = approved(&mut store, &maildir, "lost");
        store.claim_for_sending(filed, at(1)).unwrap();
        store.claim_for_sending(lost, at(1)).unwrap();
        // The process died after the server (or the local transport) filed one of them.
        maildir.write_sent("copy-of-filed", &raw("filed")).unwrap();
        let mut folder = &maildir;
        let recovery = block_on(recover_in_flight(&mut store, &mut folder, at(5))).unwrap();
        assert_eq!(recovery.sent, [filed]);
        assert_eq!(recovery.unknown, [lost]);
        assert_eq!(status(&store, filed), DraftStatus::Sent);
        assert_eq!(status(&store, lost), DraftStatus::Unknown);
        // Nothing was sent and the unknown one is not due for sending.
        assert!(store.outbox_due(at(59)).unwrap().is_empty());
        assert_eq!(maildir.drafts().unwrap().len(), 1);
    }

    #[test]
    fn the_local_transport_files_in_sent_and_sends_nothing() {
        let (_dir, maildir, mut store) = setup();
        let id = approved(&mut store, &maildir, "k1");
        assert_eq!(flush(&maildir, &mut store, at(1)).unwrap(), [id]);
        assert_eq!(status(&store, id), DraftStatus::Sent);
        let sent = maildir.sent().unwrap();
        assert_eq!(std::fs::read(&sent[0]).unwrap(), raw("k1"));
        assert!(maildir.drafts().unwrap().is_empty());
        assert!(flush(&maildir, &mut store, at(2)).unwrap().is_empty());
    }
}

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
    fn remove_draft<'a>(&'a mut self, name: &'a str) -> BoxFuture<'a, Result<()>>;
    /// Whether a message with this Message-ID is in the Sent folder.
    fn holds_message_id<'a>(&'a mut self, message_id: &'a str) -> BoxFuture<'a, Result<bool>>;
}

impl SentFolder for &Maildir {
    fn file_sent<'a>(&'a mut self, name: &'a str, raw: &'a [u8]) -> BoxFuture<'a, Result<()>> {
        let result = self.write_sent(name, raw).map(drop).map_err(Into::into);
        Box::pin(std::future::ready(result))
    }

    fn remove_draft<'a>(&'a mut self, name: &'a str) -> BoxFuture<'a, Result<()>> {
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
                if let Err(error) = folder.remove_draft(&claim.folder_name).await {
                    tracing::warn!(draft = id, "sent, but cannot remove the draft: {error:#}");
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

/// What startup recovery decided about drafts left in `sending`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Found in the Sent folder: recorded as sent.
    pub sent: Vec<i64>,
    /// Not found: left for the rep (`drafts resend` or `drafts mark-sent`).
    pub unknown: Vec<i64>,
}

/// Run once at startup, before any delivery and while no other sender runs: settles every draft
/// left in `sending` without sending anything.
pub async fn recover_in_flight(
    store: &mut Store,
    folder: &mut dyn SentFolder,
    now: DateTime<Utc>,
) -> Result<Recovery> {
    let mut recovery = Recovery::default();
    for item in store.in_flight()? {
        if folder.holds_message_id(&item.message_id).await? {
            store.mark_sent(item.draft_id, now)?;
            if let Err(error) = folder.remove_draft(&item.folder_name).await {
                tracing::warn!(draft = item.draft_id, "cannot remove the draft: {error:#}");
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

//! Scanning: every message not seen before is analysed and recorded, and for procurement mail a
//! pending draft reply is recorded and then placed in the mailbox's Drafts folder.
//!
//! Exactly-once without a two-phase commit: the store records the message and its draft in one
//! transaction first (a second record of the same message, or of a copy with the same Message-ID,
//! adds nothing), and only then is the draft placed. A draft recorded but not placed (a crash in
//! between) is placed on the next pass: in a Maildir under its deterministic file name, which
//! replaces rather than adds; on IMAP after searching Drafts for its Message-ID.

use crate::adapters::maildir::Maildir;
use crate::adapters::store::{
    DEFAULT_ACCOUNT, NewDraft, RecordOutcome, ScannedMessage, Store, SyncProgress,
};
use crate::app::followups::{self, Timekeeping};
use crate::app::pipeline::{Analysis, ComposeOptions, Pipeline};
use crate::app::slots;
use crate::core::draft;
use crate::core::model::Category;
use crate::core::notice;
use anyhow::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// The store's name for the local Maildir inbox.
pub const MAILDIR_INBOX: &str = "maildir:INBOX";

#[derive(Debug, Default, Serialize)]
pub struct ScanReport {
    pub examined: usize,
    pub already_seen: usize,
    pub findings: Vec<Finding>,
    /// Messages that could not be parsed (remembered with the reason, not retried).
    pub skipped: Vec<Skipped>,
    /// Messages left for the next pass (a template failed to render, a file vanished).
    pub deferred: Vec<Skipped>,
}

#[derive(Debug, Serialize)]
pub struct Finding {
    pub key: String,
    pub subject: String,
    pub sender: String,
    pub category: Category,
    pub score: f64,
    pub procurement: bool,
    /// The id of the draft recorded for it, when one was.
    pub draft_id: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub key: String,
    pub reason: String,
}

/// What became of one message.
#[derive(Debug)]
pub enum Processed {
    Found(Finding),
    Skipped(Skipped),
}

/// One message of `mailbox`, identified there by `key`: analysed, recorded (with `progress`, for
/// IMAP, in the same transaction) and, for procurement mail, given a pending draft. Placing the
/// draft in the Drafts folder is the caller's next step.
#[allow(clippy::too_many_arguments)]
pub fn process(
    store: &mut Store,
    pipeline: &Pipeline,
    keeping: &Timekeeping,
    mailbox: &str,
    key: &str,
    raw: &[u8],
    progress: Option<SyncProgress>,
    now: DateTime<Utc>,
) -> Result<Processed> {
    let analysis = match pipeline.triage(raw) {
        Ok(analysis) => analysis,
        Err(error) => {
            let reason = error.to_string();
            tracing::info!(mailbox, key, "skipping message: {reason}");
            store.record_skip(mailbox, key, &reason, progress, now)?;
            return Ok(Processed::Skipped(Skipped {
                key: key.to_string(),
                reason,
            }));
        }
    };
    if notice::is_notice(&analysis.mail) {
        let reason = "pushback's own reminder".to_string();
        store.record_skip(mailbox, key, &reason, progress, now)?;
        return Ok(Processed::Skipped(Skipped {
            key: key.to_string(),
            reason,
        }));
    }
    let drafted = match &analysis.mail.message_id {
        Some(id) => store.drafted_with_message_id(mailbox, id)?,
        None => None,
    };
    let (draft, reminders) = match (analysis.is_procurement(), drafted) {
        (false, _) => (None, Vec::new()),
        // A copy (the same message under another key) adds nothing.
        (true, Some(earlier))
            if earlier.sender.as_deref()
                == analysis.mail.from.as_ref().map(|a| a.email.as_str())
                && earlier.date == analysis.mail.date =>
        {
            (None, Vec::new())
        }
        // A different message reusing a drafted Message-ID keeps its own deadlines, but a second
        // reply threaded on that id would pass for an edit of the first draft and its answers
        // could not be told apart: the rep answers it by hand.
        (true, Some(earlier)) => {
            tracing::warn!(
                mailbox,
                key,
                subject = %analysis.mail.subject,
                "not drafting: this message reuses the Message-ID of a different message already \
                 drafted as draft {}; its deadlines are kept, answer it from your mail client",
                earlier.draft_id
            );
            (None, followups::deadline_reminders(&analysis, keeping, now))
        }
        (true, None) => {
            let reminders = followups::deadline_reminders(&analysis, keeping, now);
            match new_draft(store, pipeline, keeping, &analysis, key, raw, now) {
                Ok(draft) => (Some(draft), reminders),
                // The message itself leaves no one to answer (no From, an invalid address):
                // retrying cannot help, and an IMAP watcher would hold up all later mail behind
                // it. Recorded with its deadlines; a template or store error is retried instead.
                Err(error) if error.downcast_ref::<draft::Error>().is_some() => {
                    tracing::warn!(
                        mailbox,
                        key,
                        subject = %analysis.mail.subject,
                        "procurement mail, but no reply can be drafted: {error:#}; answer it from \
                         your mail client"
                    );
                    (None, reminders)
                }
                Err(error) => return Err(error),
            }
        }
    };
    let scanned = ScannedMessage {
        reminders,
        reply: followups::detect_reply(store, &analysis.mail, keeping)?,
        ..scanned(mailbox, key, &analysis, draft, progress)
    };
    let outcome = store.record_scan(&scanned, now)?;
    let draft_id = match outcome {
        RecordOutcome::Recorded { draft_id } => draft_id,
        RecordOutcome::AlreadySeen | RecordOutcome::DuplicateMessageId { .. } => None,
    };
    Ok(Processed::Found(Finding {
        key: key.to_string(),
        subject: analysis.mail.subject.clone(),
        sender: analysis
            .mail
            .from
            .as_ref()
            .map(|a| a.email.clone())
            .unwrap_or_default(),
        category: analysis.classification.category,
        score: analysis.classification.score,
        procurement: analysis.is_procurement(),
        draft_id,
    }))
}

/// Messages recorded under one commit: a crash loses at most this many scans, which are redone.
/// Each batch ends in a commit, a durable mark before its drafts are appended and a round trip
/// for them, while the server waits for the next fetch: a few milliseconds, paid per batch.
pub const SCAN_BATCH: usize = 1000;

/// One pass over a Maildir inbox: new messages processed, their drafts placed in `.Drafts`.
pub fn scan(
    maildir: &Maildir,
    store: &mut Store,
    pipeline: &Pipeline,
    keeping: &Timekeeping,
    now: DateTime<Utc>,
) -> Result<ScanReport> {
    let mut report = ScanReport::default();
    // Drafts a crash left recorded but unplaced go first.
    place_in_maildir(maildir, store)?;
    for batch in maildir.inbox()?.chunks(SCAN_BATCH) {
        // One commit per batch, not per message; its drafts are written out after the commit.
        store.begin_batch()?;
        for entry in batch {
            report.examined += 1;
            if store.is_seen(MAILDIR_INBOX, &entry.key)? {
                report.already_seen += 1;
                continue;
            }
            let processed = maildir
                .read(entry)
                .map_err(anyhow::Error::from)
                .and_then(|raw| {
                    process(
                        store,
                        pipeline,
                        keeping,
                        MAILDIR_INBOX,
                        &entry.key,
                        &raw,
                        None,
                        now,
                    )
                });
            match processed {
                Ok(Processed::Found(finding)) => report.findings.push(finding),
                Ok(Processed::Skipped(skipped)) => report.skipped.push(skipped),
                Err(error) => {
                    // One bad message never stops the pass; it is retried next time.
                    tracing::warn!(key = %entry.key, "cannot process message: {error:#}");
                    report.deferred.push(Skipped {
                        key: entry.key.clone(),
                        reason: format!("{error:#}"),
                    });
                }
            }
        }
        store.commit_batch()?;
        place_in_maildir(maildir, store)?;
    }
    Ok(report)
}

/// Writes every recorded but unplaced draft into `.Drafts` under its own name.
pub fn place_in_maildir(maildir: &Maildir, store: &mut Store) -> Result<()> {
    for id in store.unplaced_drafts()? {
        if let Some(draft) = store.draft(id)? {
            maildir.write_draft(&draft.folder_name, &draft.raw)?;
            // A Maildir has no UIDs: 0 records "placed, under its file name".
            store.mark_placed(id, 0)?;
        }
    }
    Ok(())
}

/// The Drafts-folder name of the reply to message `key`: deterministic, so placing it twice
/// replaces rather than adds.
pub fn draft_file_name(key: &str) -> String {
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("pushback-reply.{safe}")
}

/// The pushback draft for `analysis`, offering call times from the rep's stored busy times (and,
/// when configured, an invitation for the first).
fn new_draft(
    store: &Store,
    pipeline: &Pipeline,
    keeping: &Timekeeping,
    analysis: &Analysis,
    key: &str,
    raw: &[u8],
    now: DateTime<Utc>,
) -> Result<NewDraft> {
    let slots = slots::proposed_slots(store, keeping, &analysis.facts, now)?;
    let invite = match slots.first() {
        Some(first) if keeping.attach_invite => {
            Some(slots::invitation(pipeline.identity(), analysis, first, now))
        }
        _ => None,
    };
    let options = ComposeOptions {
        slots: &slots,
        invite: invite.as_ref(),
    };
    let composed = pipeline.compose(analysis, options, now, 1)?;
    Ok(NewDraft {
        in_reply_to: composed.reply.in_reply_to.clone(),
        message_id: composed.reply.message_id.clone(),
        subject: composed.reply.subject.clone(),
        recipient: composed.reply.to.clone(),
        category: analysis.classification.category,
        body: composed.body,
        raw: composed.reply.raw,
        original: raw.to_vec(),
        notes: composed.notes,
        // Unique among the accounts sharing the store: two INBOXes both have a UID 7.
        folder_name: match store.account() {
            DEFAULT_ACCOUNT => draft_file_name(key),
            account => draft_file_name(&format!("{account}.{key}")),
        },
        proposed_slots: composed.slots,
        source: Some(composed.source),
    })
}

fn scanned(
    mailbox: &str,
    key: &str,
    analysis: &Analysis,
    draft: Option<NewDraft>,
    progress: Option<SyncProgress>,
) -> ScannedMessage {
    ScannedMessage {
        mailbox: mailbox.to_string(),
        key: key.to_string(),
        message_id: analysis.mail.message_id.clone(),
        subject: analysis.mail.subject.clone(),
        sender: analysis.mail.from.as_ref().map(|a| a.email.clone()),
        date: analysis.mail.date,
        classification: analysis.classification.clone(),
        facts: analysis.facts.clone(),
        draft,
        reminders: Vec::new(),
        reply: None,
        progress,
    }
}

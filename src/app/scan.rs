//! One pass over the rep's Maildir inbox: every message not seen before is analysed, and for
//! procurement mail a pending draft reply is written to `.Drafts` and recorded in the state store.
//!
//! Exactly-once without a two-phase commit: the draft's file name in `.Drafts` is derived from the
//! inbox message's stable key, and writing the same name replaces the file. The file is written
//! first and the store records the message after; a crash in between leaves a draft file and an
//! unseen message, and the next pass rewrites the same file instead of adding a second one.

use crate::adapters::maildir::{InboxEntry, Maildir};
use crate::adapters::store::{NewDraft, RecordOutcome, ScannedMessage, Store};
use crate::app::pipeline::{Analysis, Pipeline};
use crate::core::model::Category;
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
    /// The id of the draft written for it, when one was.
    pub draft_id: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub key: String,
    pub reason: String,
}

/// The `.Drafts` file name for the reply to one inbox message.
pub fn draft_file_name(entry_key: &str) -> String {
    format!("pushback-reply.{entry_key}")
}

pub fn scan(
    maildir: &Maildir,
    store: &mut Store,
    pipeline: &Pipeline,
    now: DateTime<Utc>,
) -> Result<ScanReport> {
    let mut report = ScanReport::default();
    for entry in maildir.inbox()? {
        report.examined += 1;
        if store.is_seen(MAILDIR_INBOX, &entry.key)? {
            report.already_seen += 1;
            continue;
        }
        if let Err(error) = scan_one(maildir, store, pipeline, &entry, now, &mut report) {
            // One bad message never stops the pass; it is retried next time.
            tracing::warn!(key = %entry.key, "cannot process message: {error:#}");
            report.deferred.push(Skipped {
                key: entry.key.clone(),
                reason: format!("{error:#}"),
            });
        }
    }
    Ok(report)
}

fn scan_one(
    maildir: &Maildir,
    store: &mut Store,
    pipeline: &Pipeline,
    entry: &InboxEntry,
    now: DateTime<Utc>,
    report: &mut ScanReport,
) -> Result<()> {
    let raw = maildir.read(entry)?;
    let analysis = match pipeline.analyse(&raw) {
        Ok(analysis) => analysis,
        Err(error) => {
            let reason = error.to_string();
            tracing::info!(key = %entry.key, "skipping message: {reason}");
            store.record_skip(MAILDIR_INBOX, &entry.key, &reason, now)?;
            report.skipped.push(Skipped {
                key: entry.key.clone(),
                reason,
            });
            return Ok(());
        }
    };

    let duplicate = match &analysis.mail.message_id {
        Some(id) => store.draft_exists_for_message_id(MAILDIR_INBOX, id)?,
        None => false,
    };
    let draft = if analysis.is_procurement() && !duplicate {
        Some(write_draft(maildir, pipeline, &analysis, entry, &raw, now)?)
    } else {
        None
    };
    let outcome = store.record_scan(&scanned(entry, &analysis, draft), now)?;
    let draft_id = match outcome {
        RecordOutcome::Recorded { draft_id } => draft_id,
        RecordOutcome::AlreadySeen | RecordOutcome::DuplicateMessageId { .. } => None,
    };
    report.findings.push(Finding {
        key: entry.key.clone(),
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
    });
    Ok(())
}

fn write_draft(
    maildir: &Maildir,
    pipeline: &Pipeline,
    analysis: &Analysis,
    entry: &InboxEntry,
    raw: &[u8],
    now: DateTime<Utc>,
) -> Result<NewDraft> {
    let composed = pipeline.compose(analysis, now, 1)?;
    let folder_name = draft_file_name(&entry.key);
    maildir.write_draft(&folder_name, &composed.reply.raw)?;
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
        folder_name,
    })
}

fn scanned(entry: &InboxEntry, analysis: &Analysis, draft: Option<NewDraft>) -> ScannedMessage {
    ScannedMessage {
        mailbox: MAILDIR_INBOX.to_string(),
        key: entry.key.clone(),
        message_id: analysis.mail.message_id.clone(),
        subject: analysis.mail.subject.clone(),
        sender: analysis.mail.from.as_ref().map(|a| a.email.clone()),
        date: analysis.mail.date,
        classification: analysis.classification.clone(),
        facts: analysis.facts.clone(),
        draft,
    }
}

//! Delivers what the rep approved. Until SMTP arrives this is the local transport: an approved
//! draft is written to the Maildir's `.Sent` folder (as a mail client files what it sent) and
//! taken out of `.Drafts`. Only rows in the store's outbox are delivered, and only approval puts
//! them there: nothing leaves without the rep's say-so.
//!
//! Exactly-once: the `.Sent` file takes the draft's deterministic name and rewriting it replaces
//! the file, so a crash between delivery and `mark_sent` repeats the write, never the message.

use crate::adapters::maildir::Maildir;
use crate::adapters::store::Store;
use anyhow::Result;
use chrono::{DateTime, Utc};

/// Delivers every queued item; returns the ids of the drafts delivered in this call.
pub fn flush(maildir: &Maildir, store: &mut Store, now: DateTime<Utc>) -> Result<Vec<i64>> {
    let mut delivered = Vec::new();
    for item in store.outbox_pending()? {
        // The Sent copy keeps the draft's deterministic name: rewriting it replaces, never adds.
        match maildir.write_sent(&item.folder_name, &item.raw) {
            Ok(_) => {
                store.mark_sent(item.draft_id, now)?;
                maildir.remove_draft(&item.folder_name)?;
                delivered.push(item.draft_id);
            }
            Err(error) => {
                tracing::warn!(
                    draft = item.draft_id,
                    "cannot deliver approved draft: {error}"
                );
                store.record_send_failure(item.draft_id, &error.to_string(), now)?;
            }
        }
    }
    Ok(delivered)
}

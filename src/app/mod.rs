//! Use cases behind the binary's commands: each takes validated inputs, wires the core to the
//! adapters, and reports with anyhow.

pub mod approval;
pub mod daemon;
pub mod demo;
pub mod eval;
pub mod inspect;
pub mod outbox;
pub mod pipeline;
pub mod scan;
pub mod watch;

use crate::adapters::maildir::{Folders, Maildir};
use crate::adapters::store::Store;
use crate::config::{Config, MailboxAccess};
use crate::core::classify::FeedbackModel;
use anyhow::{Result, bail};
use pipeline::Pipeline;

/// Everything a mailbox command needs, opened from one validated config.
pub struct Session {
    pub maildir: Maildir,
    pub store: Store,
    pub pipeline: Pipeline,
}

impl Session {
    pub fn open(config: &Config) -> Result<Session> {
        let folders = Folders {
            drafts: config.mailbox.drafts_folder.clone(),
            sent: config.mailbox.sent_folder.clone(),
        };
        let maildir = match &config.mailbox.access {
            MailboxAccess::Maildir { path } => Maildir::open_with(path, &folders)?,
            MailboxAccess::Imap(_) => bail!(
                "cannot open the mailbox: IMAP support arrives in the next release; \
                 set [mailbox] kind = \"maildir\" for now"
            ),
        };
        let store = Store::open(&config.state_dir)?;
        let feedback = FeedbackModel::train(&store.feedback_examples()?);
        let pipeline = pipeline_for(config)?.with_feedback(feedback);
        Ok(Session {
            maildir,
            store,
            pipeline,
        })
    }
}

/// The analysis pipeline a config describes (identity, rules, templates, limits).
pub fn pipeline_for(config: &Config) -> Result<Pipeline> {
    Pipeline::new(
        config.identity.clone(),
        config.timezone,
        config.classifier_rules.as_deref(),
        config.templates_dir.as_deref(),
        usize::try_from(config.max_message_bytes).unwrap_or(usize::MAX),
    )
}

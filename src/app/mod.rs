//! Use cases behind the binary's commands: each takes validated inputs, wires the core to the
//! adapters, and reports with anyhow.

pub mod approval;
pub mod demo;
pub mod eval;
pub mod inspect;
pub mod outbox;
pub mod pipeline;
pub mod scan;

use crate::adapters::maildir::Maildir;
use crate::adapters::store::Store;
use crate::config::{Config, MailboxConfig};
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
        let maildir = match &config.mailbox {
            MailboxConfig::Maildir { path } => Maildir::open(path)?,
            MailboxConfig::Imap { .. } => bail!(
                "cannot open the mailbox: IMAP support arrives in the next release; \
                 set [mailbox] kind = \"maildir\" for now"
            ),
        };
        let store = Store::open(&config.state.path)?;
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
        config.classifier.rules.as_deref(),
        config.templates.dir.as_deref(),
        config.limits.max_message_bytes,
    )
}

//! The per-message path every command shares: bytes -> `Mail` -> classification -> facts -> a
//! rendered, composed draft with the rep's notes. Built once from the config, then reused for every
//! message, so `classify`, `draft`, `scan` and `demo` can never disagree about a mail.

use crate::adapters::templates::Templates;
use crate::core::classify::{Classifier, FeedbackModel, Rules};
use crate::core::draft::{self, DraftContext, Reply};
use crate::core::extract;
use crate::core::mail::{self, Mail};
use crate::core::model::{Classification, Facts, Identity, Label};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::path::Path;

/// One message after parsing, classification and extraction.
pub struct Analysis {
    pub mail: Mail,
    pub classification: Classification,
    pub facts: Facts,
}

impl Analysis {
    pub fn is_procurement(&self) -> bool {
        self.classification.label == Label::Procurement
    }
}

/// A draft reply ready to be recorded and written to the Drafts folder.
pub struct ComposedDraft {
    pub body: String,
    pub reply: Reply,
    pub notes: Vec<String>,
}

pub struct Pipeline {
    classifier: Classifier,
    templates: Templates,
    identity: Identity,
    timezone: Tz,
    feedback: Option<FeedbackModel>,
    max_message_bytes: usize,
}

impl Pipeline {
    pub fn new(
        identity: Identity,
        timezone: Tz,
        rules_path: Option<&Path>,
        templates_dir: Option<&Path>,
        max_message_bytes: usize,
    ) -> Result<Pipeline> {
        let rules = match rules_path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read rules file {}", path.display()))?;
                Rules::from_toml(&text, path)?
            }
            None => Rules::builtin(),
        };
        let templates = match templates_dir {
            Some(dir) => Templates::load(dir)?,
            None => Templates::builtin(),
        };
        Ok(Pipeline {
            classifier: Classifier::new(&rules)?,
            templates,
            identity,
            timezone,
            feedback: None,
            max_message_bytes,
        })
    }

    /// Lets the rep's own approvals and rejections nudge the score (explainably).
    pub fn with_feedback(mut self, feedback: FeedbackModel) -> Pipeline {
        self.feedback = Some(feedback);
        self
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    pub fn analyse(&self, raw: &[u8]) -> Result<Analysis, mail::Error> {
        let mail = Mail::parse_with_limit(raw, self.max_message_bytes)?;
        let classification = self.classifier.classify(&mail, self.feedback.as_ref());
        let mut facts = extract::extract(&mail);
        // The rep is on To/Cc of every mail they receive; they are never a stakeholder to invite.
        let own_address = self.identity.email.to_ascii_lowercase();
        facts
            .stakeholders
            .retain(|s| s.email.as_deref() != Some(own_address.as_str()));
        Ok(Analysis {
            mail,
            classification,
            facts,
        })
    }

    /// Renders the category's template and composes the reply. `version` starts at 1 and grows with
    /// every edit, so each version of a draft carries its own deterministic Message-ID.
    pub fn compose(
        &self,
        analysis: &Analysis,
        now: DateTime<Utc>,
        version: u32,
    ) -> Result<ComposedDraft> {
        let context = DraftContext::new(
            &analysis.mail,
            &analysis.classification,
            &analysis.facts,
            &self.identity,
        );
        let body = self
            .templates
            .render(analysis.classification.category, &context)?;
        let reply = self.compose_with_body(analysis, &body, now, version)?;
        let notes = draft::rep_notes(
            &analysis.mail,
            &analysis.classification,
            &analysis.facts,
            now,
        );
        Ok(ComposedDraft { body, reply, notes })
    }

    /// Composes the reply around a body the rep wrote or edited.
    pub fn compose_with_body(
        &self,
        analysis: &Analysis,
        body: &str,
        now: DateTime<Utc>,
        version: u32,
    ) -> Result<Reply> {
        let original_id = analysis
            .mail
            .message_id
            .clone()
            .unwrap_or_else(|| fallback_thread_key(&analysis.mail));
        let message_id = draft::reply_message_id(&self.identity, &original_id, version);
        let date = now.with_timezone(&self.timezone).fixed_offset();
        Ok(draft::compose_reply(
            &analysis.mail,
            &self.identity,
            body,
            &message_id,
            date,
        )?)
    }
}

/// A mail without a Message-ID still needs a stable key for our own reply's Message-ID: derive one
/// from what identifies it (sender, date, subject).
fn fallback_thread_key(mail: &Mail) -> String {
    format!(
        "{}|{}|{}",
        mail.from.as_ref().map_or("", |a| a.email.as_str()),
        mail.date.map(|d| d.to_rfc3339()).unwrap_or_default(),
        mail.subject
    )
}

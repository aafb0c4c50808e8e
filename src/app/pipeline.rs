//! The per-message path every command shares: bytes -> `Mail` -> classification -> facts -> a
//! rendered, composed draft with the rep's notes. Built once from the config, then reused for every
//! message, so `classify`, `draft`, `scan` and `demo` can never disagree about a mail.

use crate::adapters::pack::{PackLabel, TemplateSource};
use crate::adapters::templates::Templates;
use crate::core::classify::{Classifier, FeedbackModel, Rules};
use crate::core::draft::{self, Attachment, DraftContext, FollowUpInfo, Reply};
use crate::core::extract;
use crate::core::mail::{self, Mail};
use crate::core::model::{Classification, Facts, Identity, Label};
use crate::core::schedule::Slot;
use anyhow::{Context, Result, ensure};
use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use std::path::Path;
use std::sync::Arc;

/// The pipeline a running service's tasks use: a reload replaces it whole, and each task takes
/// the current one when it next wakes.
pub type SharedPipeline = tokio::sync::watch::Receiver<Arc<Pipeline>>;

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

/// What a draft may carry beyond the mail itself; the default (no slots, no invite) drafts the
/// open ask for a conversation.
#[derive(Debug, Clone, Copy, Default)]
pub struct ComposeOptions<'a> {
    /// Free discovery-call times from the rep's calendar, offered in the draft.
    pub slots: &'a [Slot],
    /// A calendar invite for the conversation, attached after the text.
    pub invite: Option<&'a Attachment>,
}

/// A draft reply ready to be recorded and written to the Drafts folder.
pub struct ComposedDraft {
    pub body: String,
    pub reply: Reply,
    pub notes: Vec<String>,
    /// The call times the body offers, as written in it.
    pub slots: Vec<String>,
    /// The template (and pack) it was rendered from.
    pub source: TemplateSource,
}

impl ComposedDraft {
    /// The draft rendered from `context`, which also says which call times it offers.
    fn new(
        body: String,
        reply: Reply,
        notes: Vec<String>,
        context: DraftContext,
        source: TemplateSource,
    ) -> ComposedDraft {
        ComposedDraft {
            body,
            reply,
            notes,
            slots: context.proposed_slots.into_iter().map(|s| s.text).collect(),
            source,
        }
    }
}

pub struct Pipeline {
    classifier: Classifier,
    templates: Templates,
    identity: Identity,
    timezone: Tz,
    feedback: Option<FeedbackModel>,
    max_message_bytes: usize,
    /// The template pack the templates and rules came from; `None` for a templates directory or
    /// rules file of the rep's own.
    pack: Option<PackLabel>,
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
            pack: None,
        })
    }

    /// Marks the templates and rules as `pack`'s, which every draft then records.
    pub fn from_pack(mut self, pack: PackLabel) -> Pipeline {
        self.pack = Some(pack);
        self
    }

    /// The template pack in use, if the templates and rules are one.
    pub fn pack(&self) -> Option<&PackLabel> {
        self.pack.as_ref()
    }

    fn source(&self, template: &str) -> TemplateSource {
        TemplateSource {
            template: template.to_string(),
            pack: self.pack.clone(),
        }
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

    /// The rep's zone: drafts are dated and slots described in it.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// Parses, classifies and extracts the facts of `raw`, whatever its verdict (for inspecting
    /// a message, or re-reading the original of a draft).
    pub fn analyse(&self, raw: &[u8]) -> Result<Analysis, mail::Error> {
        let mut analysis = self.triage(raw)?;
        if !analysis.is_procurement() {
            analysis.facts = self.facts(&analysis.mail);
        }
        Ok(analysis)
    }

    /// `analyse` as a scan needs it: facts are extracted only from mail classified as procurement,
    /// the only mail that gets a draft and deadline reminders; other mail is recorded with its
    /// verdict and no facts. Most of an inbox is other mail, and extraction costs about as much
    /// as classification.
    pub fn triage(&self, raw: &[u8]) -> Result<Analysis, mail::Error> {
        let mail = Mail::parse_with_limit(raw, self.max_message_bytes)?;
        let classification = self.classifier.classify(&mail, self.feedback.as_ref());
        let facts = if classification.label == Label::Procurement {
            self.facts(&mail)
        } else {
            Facts::default()
        };
        Ok(Analysis {
            mail,
            classification,
            facts,
        })
    }

    fn facts(&self, mail: &Mail) -> Facts {
        let mut facts = extract::extract(mail);
        // The rep is on To/Cc of every mail they receive; they are never a stakeholder to invite.
        let own_address = self.identity.email.to_ascii_lowercase();
        facts
            .stakeholders
            .retain(|s| s.email.as_deref() != Some(own_address.as_str()));
        facts
    }

    /// The context the templates see for `analysis`, offering `slots` (described in the buyer's
    /// zone when the mail states one).
    pub fn context(&self, analysis: &Analysis, slots: &[Slot]) -> DraftContext {
        DraftContext::new(
            &analysis.mail,
            &analysis.classification,
            &analysis.facts,
            &self.identity,
        )
        .with_slots(slots, self.timezone, draft::buyer_zone(&analysis.facts))
    }

    /// Renders the category's template and composes the reply. `version` starts at 1 and grows with
    /// every edit, so each version of a draft carries its own deterministic Message-ID.
    pub fn compose(
        &self,
        analysis: &Analysis,
        options: ComposeOptions<'_>,
        now: DateTime<Utc>,
        version: u32,
    ) -> Result<ComposedDraft> {
        let context = self.context(analysis, options.slots);
        let category = analysis.classification.category;
        let body = self.templates.render(category, &context)?;
        let reply = self.compose_with_body(analysis, &body, options.invite, now, version)?;
        let notes = draft::rep_notes(
            &analysis.mail,
            &analysis.classification,
            &analysis.facts,
            now,
        );
        let source = self.source(self.templates.template_for(category));
        Ok(ComposedDraft::new(body, reply, notes, context, source))
    }

    /// Composes the reply around a body the rep wrote or edited. The caller passes the invite
    /// again when the draft had one, so an edit keeps it.
    pub fn compose_with_body(
        &self,
        analysis: &Analysis,
        body: &str,
        invite: Option<&Attachment>,
        now: DateTime<Utc>,
        version: u32,
    ) -> Result<Reply> {
        let original_id = analysis
            .mail
            .message_id
            .clone()
            .unwrap_or_else(|| fallback_thread_key(&analysis.mail));
        let message_id = draft::reply_message_id(&self.identity, &original_id, version);
        Ok(draft::compose_reply(
            &analysis.mail,
            &self.identity,
            body,
            &message_id,
            self.local(now),
            invite,
        )?)
    }

    /// Renders `follow_up.txt` with `original`'s context and composes the follow-up on
    /// `previous_sent_raw`, our own unanswered message in the thread. Its Message-ID derives from
    /// that message's id and `version`, like a reply's from the original's.
    pub fn compose_follow_up(
        &self,
        original: &Analysis,
        previous_sent_raw: &[u8],
        follow_up: FollowUpInfo,
        options: ComposeOptions<'_>,
        now: DateTime<Utc>,
        version: u32,
    ) -> Result<ComposedDraft> {
        ensure!(
            (1..=follow_up.max).contains(&follow_up.number),
            "cannot draft follow-up {} of {}: follow-ups are numbered from 1 to the maximum",
            follow_up.number,
            follow_up.max
        );
        let context =
            self.context(original, options.slots)
                .with_follow_up(&follow_up, self.timezone, now);
        let body = self.templates.render_follow_up(&context)?;
        let reply =
            self.follow_up_with_body(previous_sent_raw, &body, options.invite, now, version)?;
        let notes = draft::follow_up_notes(
            &original.mail,
            &original.classification,
            &original.facts,
            &follow_up,
            self.timezone,
            now,
        );
        let source = self.source(Templates::FOLLOW_UP);
        Ok(ComposedDraft::new(body, reply, notes, context, source))
    }

    /// Composes a follow-up on `previous_sent_raw` around a body the rep wrote or edited.
    pub fn follow_up_with_body(
        &self,
        previous_sent_raw: &[u8],
        body: &str,
        invite: Option<&Attachment>,
        now: DateTime<Utc>,
        version: u32,
    ) -> Result<Reply> {
        let previous = Mail::parse_with_limit(previous_sent_raw, self.max_message_bytes)
            .context("cannot read our previous message in the thread")?;
        let previous_id = previous
            .message_id
            .clone()
            .unwrap_or_else(|| fallback_thread_key(&previous));
        let message_id = draft::reply_message_id(&self.identity, &previous_id, version);
        Ok(draft::compose_follow_up(
            &previous,
            &self.identity,
            body,
            &message_id,
            self.local(now),
            invite,
        )?)
    }

    /// `now` in the rep's zone, as the Date header shows it.
    fn local(&self, now: DateTime<Utc>) -> DateTime<FixedOffset> {
        now.with_timezone(&self.timezone).fixed_offset()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::mail::DEFAULT_MAX_MESSAGE_BYTES;
    use mail_parser::{MessageParser, MimeHeaders};

    const RFP: &[u8] = include_bytes!("demo/01-rfp-city-tender.eml");

    fn pipeline() -> Pipeline {
        Pipeline::new(
            Identity::demo(),
            chrono_tz::Europe::London,
            None,
            None,
            DEFAULT_MAX_MESSAGE_BYTES,
        )
        .unwrap()
    }

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    fn invite() -> Attachment {
        Attachment::calendar_invite(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n".to_vec())
    }

    fn attachment_names(raw: &[u8]) -> Vec<String> {
        let parsed = MessageParser::default().parse(raw).unwrap();
        parsed
            .attachments()
            .filter_map(|a| a.attachment_name().map(String::from))
            .collect()
    }

    #[test]
    fn triage_extracts_facts_from_procurement_mail_only() {
        let pipeline = pipeline();
        let rfp = pipeline.triage(RFP).unwrap();
        assert!(rfp.is_procurement());
        assert_eq!(rfp.facts, pipeline.analyse(RFP).unwrap().facts);
        assert!(!rfp.facts.deadlines.is_empty());

        let lunch: &[u8] =
            b"From: Sam Colleague <sam@seller.example>\r\nTo: rep@seller.example\r\n\
            Subject: Lunch\r\n\r\nLunch with Ref. PO-4411 on Friday 12 March 2027 at noon?\r\n";
        let full = pipeline.analyse(lunch).unwrap();
        let triaged = pipeline.triage(lunch).unwrap();
        assert!(!triaged.is_procurement());
        assert_eq!(triaged.classification, full.classification);
        assert_ne!(full.facts, Facts::default(), "analyse reads other mail too");
        assert_eq!(triaged.facts, Facts::default());
    }

    #[test]
    fn default_options_draft_the_open_ask_and_slots_are_offered() {
        let pipeline = pipeline();
        let analysis = pipeline.analyse(RFP).unwrap();
        let now = at("2027-02-22T16:00:00Z");
        let plain = pipeline
            .compose(&analysis, ComposeOptions::default(), now, 1)
            .unwrap();
        assert!(!plain.body.contains("one of these times"), "{}", plain.body);
        assert!(attachment_names(&plain.reply.raw).is_empty());

        let slots = draft::sample_slots(now, pipeline.timezone());
        let invite = invite();
        let options = ComposeOptions {
            slots: &slots,
            invite: Some(&invite),
        };
        let offered = pipeline.compose(&analysis, options, now, 1).unwrap();
        // The mail states its deadlines in EST, so the times are in the buyer's zone first.
        assert!(
            offered
                .body
                .contains("- Tue 23 Feb, 10:00-10:30 EST (15:00-15:30 GMT)"),
            "{}",
            offered.body
        );
        assert_eq!(attachment_names(&offered.reply.raw), ["invite.ics"]);
        assert_eq!(offered.reply.message_id, plain.reply.message_id);
        // The stored body stays the text the rep edits.
        assert!(!offered.body.contains("VCALENDAR"));
    }

    // Guards re-composition after an edit: the caller passes the invite again and it stays.
    #[test]
    fn an_edited_draft_keeps_its_invite() {
        let pipeline = pipeline();
        let analysis = pipeline.analyse(RFP).unwrap();
        let invite = invite();
        let now = at("2027-02-22T16:00:00Z");
        let edited = pipeline
            .compose_with_body(&analysis, "Hi Dana,\n\nEdited.\n", Some(&invite), now, 2)
            .unwrap();
        assert_eq!(attachment_names(&edited.raw), ["invite.ics"]);
        let parsed = MessageParser::default().parse(&edited.raw).unwrap();
        let text = parsed.body_text(0).unwrap().replace("\r\n", "\n");
        assert!(
            text.starts_with("Hi Dana,\n\nEdited.\n\nOn Mon, 22 Feb"),
            "{text}"
        );
    }

    #[test]
    fn a_follow_up_threads_on_our_sent_reply_with_a_deterministic_id() {
        let pipeline = pipeline();
        let analysis = pipeline.analyse(RFP).unwrap();
        let sent_at = at("2027-02-22T16:00:00Z");
        let first = pipeline
            .compose(&analysis, ComposeOptions::default(), sent_at, 1)
            .unwrap();
        let info = FollowUpInfo {
            number: 1,
            max: 2,
            sent_at,
            business_days: 3,
        };
        let now = at("2027-02-25T09:00:00Z");
        let follow_up = pipeline
            .compose_follow_up(
                &analysis,
                &first.reply.raw,
                info,
                ComposeOptions::default(),
                now,
                1,
            )
            .unwrap();
        assert_eq!(
            follow_up.reply.message_id,
            draft::reply_message_id(pipeline.identity(), &first.reply.message_id, 1)
        );
        assert_ne!(follow_up.reply.message_id, first.reply.message_id);
        assert_eq!(
            follow_up.reply.in_reply_to.as_deref(),
            Some(first.reply.message_id.as_str())
        );
        assert_eq!(follow_up.reply.subject, first.reply.subject);
        assert_eq!(follow_up.reply.to, first.reply.to);
        assert!(
            follow_up
                .body
                .starts_with("Hi Dana,\n\nI wanted to follow up on my note of 22 February 2027"),
            "{}",
            follow_up.body
        );
        // A no-contact RFP: the follow-up still asks procurement to arrange the conversation.
        assert!(follow_up.body.contains("Could you arrange"));
        assert_eq!(
            follow_up.notes[0],
            "Follow-up 1 of 2: no answer to our message of 22 February 2027 after 3 business \
             days."
        );
        let again = pipeline
            .compose_follow_up(
                &analysis,
                &first.reply.raw,
                info,
                ComposeOptions::default(),
                now,
                1,
            )
            .unwrap();
        assert_eq!(again.reply, follow_up.reply);

        for (number, max) in [(0, 2), (3, 2)] {
            let err = pipeline
                .compose_follow_up(
                    &analysis,
                    &first.reply.raw,
                    FollowUpInfo {
                        number,
                        max,
                        ..info
                    },
                    ComposeOptions::default(),
                    now,
                    1,
                )
                .err()
                .unwrap();
            assert_eq!(
                err.to_string(),
                format!(
                    "cannot draft follow-up {number} of {max}: follow-ups are numbered from 1 to \
                     the maximum"
                )
            );
        }
    }
}

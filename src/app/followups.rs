//! Keeping time on pushback threads: deadline reminders planned when an RFP is scanned, the
//! buyer's answers recognised in new mail (cancelling or moving the follow-up), and follow-ups
//! planned after every message that left. Each step is idempotent, so running it again after a
//! crash or on every wake adds nothing twice.

use crate::adapters::store::{
    FollowUpCandidate, NewReminder, ReminderKind, ReplyEffect, Store, ThreadReply,
};
use crate::app::pipeline::Analysis;
use crate::config::{Config, FollowUpPolicy, ReminderSettings};
use crate::core::followup::{self, LeadTimes};
use crate::core::mail::Mail;
use crate::core::model::{DeadlineKind, Facts};
use crate::core::reply::{self, ReplyKind, Thread, ThreadMatch};
use crate::core::schedule::BusinessCalendar;
use anyhow::Result;
use chrono::{DateTime, Utc};

/// The rep's calendar and the follow-up and reminder policies, from config.
#[derive(Debug, Clone)]
pub struct Timekeeping {
    pub calendar: BusinessCalendar,
    pub follow_up: FollowUpPolicy,
    pub reminders: ReminderSettings,
    /// Mail from these is the rep's own, never the buyer's answer.
    pub rep_addresses: Vec<String>,
    /// Proposed discovery calls: their length, how many, and whether the first goes out as an
    /// invitation.
    pub slot_minutes: u32,
    pub slot_count: u32,
    pub attach_invite: bool,
}

impl Timekeeping {
    pub fn of(config: &Config) -> Timekeeping {
        Timekeeping {
            calendar: config.business.clone(),
            follow_up: config.follow_up.clone(),
            reminders: config.reminders.clone(),
            rep_addresses: vec![config.identity.email.clone()],
            slot_minutes: config.calendar.slot_minutes,
            slot_count: config.calendar.slot_count,
            attach_invite: config.calendar.attach_invite,
        }
    }
}

impl LeadTimes for ReminderSettings {
    fn lead_business_days(&self, kind: DeadlineKind) -> u32 {
        ReminderSettings::lead_business_days(self, kind)
    }
}

/// What the rep calls the solicitation in a reminder: its reference, else its title, else the
/// mail's subject.
pub fn solicitation(facts: &Facts, subject: &str) -> String {
    facts
        .references
        .first()
        .or(facts.titles.first())
        .cloned()
        .unwrap_or_else(|| format!("\"{subject}\""))
}

/// A reminder for every deadline of a procurement mail (none for other mail).
pub fn deadline_reminders(
    analysis: &Analysis,
    keeping: &Timekeeping,
    now: DateTime<Utc>,
) -> Vec<NewReminder> {
    if !analysis.is_procurement() {
        return Vec::new();
    }
    let what = solicitation(&analysis.facts, &analysis.mail.subject);
    followup::plan_deadlines(
        &analysis.facts,
        &what,
        now,
        &keeping.calendar,
        &keeping.reminders.at,
        &keeping.reminders,
    )
    .into_iter()
    .map(|plan| NewReminder {
        kind: plan.kind.into(),
        number: plan.number,
        due_at: plan.due,
        deadline_at: plan.deadline_at,
        about: plan.about,
    })
    .collect()
}

/// Whether `mail` answers one of our pushback threads, and what that does to its follow-up.
/// Our own mail in the thread (a Sent copy, another device) is never an answer.
pub fn detect_reply(
    store: &Store,
    mail: &Mail,
    keeping: &Timekeeping,
) -> Result<Option<ThreadReply>> {
    for thread in store.sent_threads()? {
        let buyer_domain = thread
            .buyer
            .as_deref()
            .and_then(|b| b.rsplit_once('@'))
            .map(|(_, domain)| domain.to_ascii_lowercase());
        let matched = reply::match_thread(
            mail,
            &Thread {
                our_message_ids: &thread.our_message_ids,
                original_message_id: thread.original_message_id.as_deref(),
                original_subject: &thread.subject,
                buyer_domain: buyer_domain.as_deref(),
                rep_addresses: &keeping.rep_addresses,
            },
        );
        match matched {
            ThreadMatch::ByReference | ThreadMatch::BySubject => {}
            ThreadMatch::NotInThread => continue,
            ThreadMatch::FromRep => return Ok(None),
        }
        let verdict = reply::classify_reply(mail);
        let effect = match verdict.kind {
            _ if verdict.cancels_follow_up => ReplyEffect::Cancel,
            ReplyKind::OutOfOffice {
                returns_on: Some(back),
            } => ReplyEffect::Reschedule(followup::after_return(
                back,
                &keeping.calendar,
                &keeping.follow_up.at,
            )),
            _ => ReplyEffect::Keep,
        };
        tracing::info!(
            thread = thread.message,
            kind = verdict.kind.as_str(),
            "the buyer answered a pushback thread"
        );
        return Ok(Some(ThreadReply {
            thread: thread.message,
            kind: verdict.kind,
            reasons: verdict.reasons,
            effect,
        }));
    }
    Ok(None)
}

/// Plans the next follow-up after every sent message that has none yet: `after-business-days`
/// later, or after the buyer's stated return when they were out of office. Past the last
/// follow-up of the sequence, a final reminder says the sequence has ended. Returns how many
/// were planned.
pub fn plan_follow_ups(
    store: &mut Store,
    keeping: &Timekeeping,
    now: DateTime<Utc>,
) -> Result<usize> {
    let candidates = store.follow_ups_to_plan()?;
    let policy = &keeping.follow_up;
    let mut planned = 0;
    for candidate in &candidates {
        let step = candidate.sent_step + 1;
        if step > policy.max_follow_ups + 1 {
            // The end-of-sequence notice was the last step; a follow-up the rep wrote beyond it
            // by hand ends nothing new.
            continue;
        }
        let due = follow_up_due(candidate, keeping);
        let about = if step <= policy.max_follow_ups {
            format!(
                "Follow-up {step} of {}: no answer since {}",
                policy.max_follow_ups,
                followup::local_text(candidate.sent_at, &keeping.calendar)
            )
        } else {
            format!(
                "No answer after {} follow-up{}: pushback stops the sequence here; decide \
                 whether to answer through the formal process",
                policy.max_follow_ups,
                if policy.max_follow_ups == 1 { "" } else { "s" }
            )
        };
        store.plan_follow_up(candidate, due, &about, now)?;
        planned += 1;
    }
    Ok(planned)
}

fn follow_up_due(candidate: &FollowUpCandidate, keeping: &Timekeeping) -> DateTime<Utc> {
    let cal = &keeping.calendar;
    let at = &keeping.follow_up.at;
    let days = keeping.follow_up.after_business_days(candidate.category);
    let due = followup::follow_up_due(candidate.sent_at, days, cal, at);
    match candidate.buyer_returns_on {
        Some(back) => due.max(followup::after_return(back, cal, at)),
        None => due,
    }
}

/// Whether this reminder prepares a follow-up draft (steps up to the sequence's maximum) or only
/// tells the rep the sequence ended.
pub fn prepares_draft(kind: ReminderKind, number: u32, policy: &FollowUpPolicy) -> bool {
    kind == ReminderKind::FollowUp && number <= policy.max_follow_ups
}

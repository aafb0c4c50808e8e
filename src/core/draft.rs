//! The reply draft: the context a template sees (built from the mail, the classification and the
//! extracted facts, plus the meeting times offered and, for a follow-up, where it stands in its
//! sequence), the notes shown to the rep beside the draft (never sent), and the RFC 5322 message
//! itself, a reply or a follow-up on our own reply, composed with lettre's builder. Pure: the
//! clock, the message id, the free slots and the invite's bytes are passed in. Rendering the
//! templates is the templates adapter's job; finding slots and writing the .ics are the caller's.

use crate::core::mail::{Address, Mail, clean_header_value};
use crate::core::model::{
    Category, Classification, Deadline, DeadlineKind, Facts, Identity, Stakeholder, StakeholderRole,
};
use crate::core::schedule::{BusinessCalendar, Slot, Zone};
use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use serde::Serialize;

/// Quoting the whole history of a long thread makes the draft hard to review; the buyer has it.
const MAX_QUOTED_LINES: usize = 60;
const MAX_QUOTED_CHARS: usize = 6_000;

/// A deadline closer than this is called out to the rep as urgent.
pub const URGENT_WITHIN_DAYS: i64 = 7;

/// How many classifier reasons the rep notes list.
const TOP_REASONS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reply to message {message_id}: it has neither From nor Reply-To")]
    NoRecipient { message_id: String },
    #[error("cannot follow up on message {message_id}: its To names nobody but the rep")]
    NoFollowUpRecipient { message_id: String },
    #[error("cannot reply to message {message_id}: invalid address `{address}`")]
    InvalidAddress { message_id: String, address: String },
    #[error("cannot build reply to message {message_id}")]
    Build {
        message_id: String,
        #[source]
        source: lettre::error::Error,
    },
}

/// Everything a reply template sees. Optional values are always present as keys (rendered as
/// `none` when unknown) so templates can test them under strict undefined behaviour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DraftContext {
    pub identity: IdentityContext,
    pub buyer: BuyerContext,
    /// Who the salutation addresses: the contact's first name, "team" for a role mailbox
    /// (procurement@, tenders@...), else "there".
    pub greeting: String,
    pub stakeholders: StakeholdersContext,
    pub deadlines: DeadlinesContext,
    /// The first RFP/tender reference number, e.g. "RFP #2027-014".
    pub reference: Option<String>,
    /// The first solicitation title, e.g. "Managed Print Services".
    pub title: Option<String>,
    /// How to name the request in a sentence: reference and title when known, else
    /// "your <category label>".
    pub solicitation: String,
    /// The first supplier-portal URL found.
    pub portal: Option<String>,
    pub category: CategoryContext,
    pub original: OriginalContext,
    pub no_contact: NoContactContext,
    /// Discovery-call times to offer, from the rep's calendar; empty when none were found.
    pub proposed_slots: Vec<SlotContext>,
    /// Set only when the draft is a follow-up on our own unanswered reply.
    pub follow_up: Option<FollowUpContext>,
    /// When the questions cut-off falls due, to tell a follow-up whether it is still ahead.
    #[serde(skip)]
    questions_due: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdentityContext {
    pub name: String,
    pub first_name: String,
    pub email: String,
    pub title: String,
    pub company: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuyerContext {
    pub organisation: Option<String>,
    pub contact: PersonContext,
}

/// A person on the buyer's side; every field may be unknown.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PersonContext {
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub email: Option<String>,
    pub title: Option<String>,
    /// "Name (Title)", or whichever of the two is known, or none.
    pub label: Option<String>,
    /// business, procurement or unknown.
    pub role: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StakeholdersContext {
    /// People who own the business problem: the ones a discovery call should include.
    pub business: Vec<PersonContext>,
    /// Procurement, purchasing, sourcing, contracts.
    pub procurement: Vec<PersonContext>,
    /// The labels of the business stakeholders other than the contact (the person the draft is
    /// addressed to) joined for a sentence ("A (VP Ops) and B"), or none.
    pub business_names: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadlinesContext {
    pub all: Vec<DeadlineContext>,
    /// The first submission deadline, or none.
    pub submission: Option<DeadlineContext>,
    /// The first deadline for questions (the clarification cut-off), or none.
    pub questions: Option<DeadlineContext>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadlineContext {
    /// submission, questions, pre_bid, intent_to_bid or other.
    pub kind: String,
    /// "submission deadline", "deadline for questions", ...
    pub kind_label: String,
    /// "YYYY-MM-DD" or none.
    pub date: Option<String>,
    /// "HH:MM" (24h) or none.
    pub time: Option<String>,
    pub zone: Option<String>,
    /// The phrase the date came from.
    pub text: String,
    pub ambiguous: bool,
    /// "Wednesday 3 March 2027, 17:00 America/New_York"; the original phrase when there is no date.
    pub formatted: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CategoryContext {
    /// The category's name: rfp, rfq, rfi, tender, portal, questionnaire, pricing_only,
    /// demo_request, procurement_gatekeeper or none.
    pub name: String,
    /// "request for proposal", "supplier registration", ...
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OriginalContext {
    pub subject: String,
    /// "2 March 2027" or none.
    pub date: Option<String>,
}

/// One proposed discovery-call time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotContext {
    /// In the buyer's zone when it is known, the rep's alongside:
    /// "Tue 16 Feb, 10:00-10:30 EST (15:00-15:30 GMT)"; in the rep's zone alone otherwise.
    pub text: String,
    /// In the buyer's zone alone, "Tue 16 Feb, 10:00-10:30 EST", or none when it is unknown.
    pub buyer_text: Option<String>,
    /// In the rep's zone alone, "Tue 16 Feb, 15:00-15:30 GMT".
    pub rep_text: String,
    /// RFC 3339 in the rep's zone.
    pub start: String,
    pub end: String,
    pub minutes: i64,
}

/// Where a follow-up stands: given by the caller, which decides when one is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowUpInfo {
    /// 1-based.
    pub number: u32,
    /// How many follow-ups the sequence has; the one numbered `max` is the last.
    pub max: u32,
    /// When our previous message in the thread went out.
    pub sent_at: DateTime<Utc>,
    /// How many business days we have waited for an answer since.
    pub business_days: u32,
}

impl FollowUpInfo {
    pub fn is_last(&self) -> bool {
        self.number >= self.max
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FollowUpContext {
    pub number: u32,
    pub max: u32,
    /// This is the final follow-up: after it we answer through the buyer's process.
    pub last: bool,
    /// When our previous message went out, in the rep's zone: "16 February 2027".
    pub sent_date: String,
    pub business_days: u32,
    /// The deadline for questions is known, unambiguous and still ahead as the follow-up is
    /// written: only then is it worth quoting back.
    pub questions_open: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoContactContext {
    /// The buyer forbids contact outside procurement (cone of silence): drafts must ask
    /// procurement to arrange any conversation within the rules.
    pub applies: bool,
    /// The sentence that says so, or none.
    pub clause: Option<String>,
}

impl DraftContext {
    pub fn new(
        mail: &Mail,
        classification: &Classification,
        facts: &Facts,
        identity: &Identity,
    ) -> DraftContext {
        let contact = facts.contact.as_ref().map_or_else(
            || person_from_address(mail.reply_address().or(mail.from.as_ref())),
            person,
        );
        let greeting = greeting(&contact, mail);
        let business: Vec<PersonContext> = facts
            .stakeholders
            .iter()
            .filter(|s| s.role == StakeholderRole::Business)
            .map(person)
            .collect();
        let procurement = facts
            .stakeholders
            .iter()
            .filter(|s| s.role == StakeholderRole::Procurement)
            .map(person)
            .collect();
        let business_names = join_names(
            facts
                .stakeholders
                .iter()
                .filter(|s| s.role == StakeholderRole::Business && !is_contact(s, facts))
                .filter_map(|s| person(s).label)
                .collect(),
        );
        let all: Vec<DeadlineContext> = facts.deadlines.iter().map(deadline).collect();
        let first_of = |kind: DeadlineKind| {
            facts
                .deadlines
                .iter()
                .position(|d| d.kind == kind)
                .map(|i| all[i].clone())
        };
        let deadlines = DeadlinesContext {
            submission: first_of(DeadlineKind::Submission),
            questions: first_of(DeadlineKind::Questions),
            all,
        };
        let reference = facts.references.first().map(|r| clean_header_value(r));
        let title = facts.titles.first().map(|t| clean_header_value(t));
        let category = classification.category;
        DraftContext {
            identity: IdentityContext {
                name: identity.name.clone(),
                first_name: first_name(&identity.name),
                email: identity.email.clone(),
                title: identity.title.clone(),
                company: identity.company.clone(),
            },
            buyer: BuyerContext {
                organisation: facts.buyer.clone(),
                contact,
            },
            greeting,
            stakeholders: StakeholdersContext {
                business,
                procurement,
                business_names,
            },
            deadlines,
            solicitation: solicitation(reference.as_deref(), title.as_deref(), category),
            reference,
            title,
            portal: facts.portal_urls.first().cloned(),
            category: CategoryContext {
                name: category.as_str().to_string(),
                label: category_label(category).to_string(),
            },
            original: OriginalContext {
                subject: mail.subject.clone(),
                date: mail.date.map(|d| d.format("%-d %B %Y").to_string()),
            },
            no_contact: NoContactContext {
                applies: facts.no_contact_clause.is_some(),
                clause: facts.no_contact_clause.clone(),
            },
            proposed_slots: Vec::new(),
            follow_up: None,
            questions_due: facts
                .deadlines
                .iter()
                .find(|d| d.kind == DeadlineKind::Questions)
                .and_then(|d| Some(deadline_instant(d.date?, d.time, d.zone.as_deref()))),
        }
    }

    /// Offers `slots` (found by the caller in the rep's calendar), each described in the buyer's
    /// zone when known (see [`buyer_zone`]) with the rep's alongside.
    pub fn with_slots(mut self, slots: &[Slot], rep_tz: Tz, buyer: Option<Zone>) -> DraftContext {
        self.proposed_slots = slots
            .iter()
            .map(|slot| SlotContext {
                text: slot.describe_for(rep_tz, buyer),
                buyer_text: buyer.map(|zone| slot.describe_in(zone, true)),
                rep_text: slot.describe_in(Zone::Named(rep_tz), true),
                start: slot.start.with_timezone(&rep_tz).to_rfc3339(),
                end: slot.end.with_timezone(&rep_tz).to_rfc3339(),
                minutes: (slot.end - slot.start).num_minutes(),
            })
            .collect();
        self
    }

    /// Makes this the context of follow-up `info`, written at `now`.
    pub fn with_follow_up(
        mut self,
        info: &FollowUpInfo,
        rep_tz: Tz,
        now: DateTime<Utc>,
    ) -> DraftContext {
        let questions_open = self
            .deadlines
            .questions
            .as_ref()
            .is_some_and(|q| !q.ambiguous)
            && self.questions_due.is_some_and(|due| due > now);
        self.follow_up = Some(FollowUpContext {
            number: info.number,
            max: info.max,
            last: info.is_last(),
            sent_date: info
                .sent_at
                .with_timezone(&rep_tz)
                .format("%-d %B %Y")
                .to_string(),
            business_days: info.business_days,
            questions_open,
        });
        self
    }

    /// A realistic context for `category`, used to check and preview templates without a mail.
    /// The tender sample carries a no-contact clause, as public tenders usually do.
    pub fn sample(category: Category) -> DraftContext {
        let date = FixedOffset::west_opt(5 * 3600)
            .and_then(|tz| tz.with_ymd_and_hms(2027, 2, 15, 9, 30, 0).single());
        let mail = Mail {
            message_id: Some("sample-0001@northwind.example".into()),
            in_reply_to: Vec::new(),
            references: Vec::new(),
            subject: format!("Northwind Health: {}", category_label(category)),
            from: Some(Address {
                name: Some("Dana Whitfield".into()),
                email: "dana.whitfield@northwind.example".into(),
            }),
            reply_to: None,
            to: Vec::new(),
            cc: Vec::new(),
            date,
            body: "Please find the attached documents.".into(),
            attachment_names: Vec::new(),
            calendar_parts: Vec::new(),
            is_bulk: false,
            is_auto_submitted: false,
            size: 0,
        };
        let classification = Classification {
            label: crate::core::model::Label::Procurement,
            category,
            score: 0.9,
            reasons: Vec::new(),
        };
        let facts = sample_facts(category);
        let identity = Identity::demo();
        let rep_tz: Tz = identity
            .timezone
            .parse()
            .expect("the demo zone is an IANA name");
        let slots = sample_slots(date.map(|d| d.to_utc()).unwrap_or_default(), rep_tz);
        DraftContext::new(&mail, &classification, &facts, &identity).with_slots(
            &slots,
            rep_tz,
            buyer_zone(&facts),
        )
    }
}

/// Three 30-minute slots on the three business days after `after`, mid-afternoon in the rep's
/// zone (morning on the American east coast for a rep in Europe): what the samples and previews
/// offer, since no calendar is read for them.
pub fn sample_slots(after: DateTime<Utc>, rep_tz: Tz) -> Vec<Slot> {
    let calendar = BusinessCalendar::new(rep_tz);
    let mut date = after.with_timezone(&rep_tz).date_naive();
    [(15, 0), (14, 30), (16, 0)]
        .into_iter()
        .filter_map(|(hour, minute)| {
            date = date
                .iter_days()
                .skip(1)
                .find(|d| calendar.is_business_day(*d))?;
            let start = Zone::Named(rep_tz).resolve(date.and_hms_opt(hour, minute, 0)?);
            Some(Slot {
                start,
                end: start + Duration::minutes(30),
            })
        })
        .collect()
}

/// The buyer's time zone, as the solicitation states it on a deadline: the questions cut-off's,
/// else the submission deadline's, else the first other deadline's. A named zone anywhere wins
/// over an offset, since it also knows the buyer's daylight-saving changes; an offset alone
/// ("+05:30") is kept, and slots are then labelled with it. Unreadable zones are skipped; none
/// when no deadline states a zone (slots are then described in the rep's zone only).
pub fn buyer_zone(facts: &Facts) -> Option<Zone> {
    let rank = |kind: DeadlineKind| match kind {
        DeadlineKind::Questions => 0,
        DeadlineKind::Submission => 1,
        _ => 2,
    };
    let mut stated: Vec<(usize, Zone)> = facts
        .deadlines
        .iter()
        .filter_map(|d| Some((rank(d.kind), Zone::parse(d.zone.as_deref()?)?)))
        .collect();
    // Stable: deadlines of one rank keep the order they were found in.
    stated.sort_by_key(|(rank, zone)| (matches!(zone, Zone::Offset(_)), *rank));
    stated.first().map(|(_, zone)| *zone)
}

impl DraftContext {
    /// The context of a mail nothing could be read off: no name, date, deadline, stakeholder,
    /// reference or portal. Templates must still render with it.
    pub fn sparse(category: Category) -> DraftContext {
        let mail = Mail {
            message_id: None,
            in_reply_to: Vec::new(),
            references: Vec::new(),
            subject: String::new(),
            from: Some(Address {
                name: None,
                email: "procurement@buyer.example".into(),
            }),
            reply_to: None,
            to: Vec::new(),
            cc: Vec::new(),
            date: None,
            body: String::new(),
            attachment_names: Vec::new(),
            calendar_parts: Vec::new(),
            is_bulk: false,
            is_auto_submitted: false,
            size: 0,
        };
        let classification = Classification {
            label: crate::core::model::Label::Procurement,
            category,
            score: 0.5,
            reasons: Vec::new(),
        };
        DraftContext::new(&mail, &classification, &Facts::default(), &Identity::demo())
    }
}

fn sample_facts(category: Category) -> Facts {
    let stakeholder = |name: &str, title: &str, role| Stakeholder {
        name: Some(name.into()),
        email: None,
        title: Some(title.into()),
        role,
    };
    let deadline = |kind, date: (i32, u32, u32), text: &str| Deadline {
        kind,
        date: NaiveDate::from_ymd_opt(date.0, date.1, date.2),
        time: NaiveTime::from_hms_opt(17, 0, 0),
        zone: Some("America/New_York".into()),
        text: text.into(),
        ambiguous: false,
    };
    Facts {
        buyer: Some("Northwind Health".into()),
        contact: Some(Stakeholder {
            name: Some("Dana Whitfield".into()),
            email: Some("dana.whitfield@northwind.example".into()),
            title: Some("Senior Procurement Officer".into()),
            role: StakeholderRole::Procurement,
        }),
        reply_to: Some("dana.whitfield@northwind.example".into()),
        references: vec![
            match category {
                Category::Rfq | Category::PricingOnly => "RFQ #2027-031",
                Category::Rfi => "RFI #2027-009",
                Category::Tender => "Tender NW-2027-08",
                _ => "RFP #2027-014",
            }
            .into(),
        ],
        titles: vec!["Patient Analytics Platform".into()],
        portal_urls: vec!["https://suppliers.northwind.example/register".into()],
        stakeholders: vec![
            stakeholder(
                "Dana Whitfield",
                "Senior Procurement Officer",
                StakeholderRole::Procurement,
            ),
            stakeholder(
                "Maria Lopez",
                "VP Clinical Operations",
                StakeholderRole::Business,
            ),
            stakeholder("Tom Reed", "Director of IT", StakeholderRole::Business),
        ],
        deadlines: vec![
            deadline(
                DeadlineKind::Questions,
                (2027, 3, 1),
                "Questions due March 1, 2027 at 5:00 PM ET",
            ),
            deadline(
                DeadlineKind::Submission,
                (2027, 3, 15),
                "Proposals due March 15, 2027 at 5:00 PM ET",
            ),
        ],
        no_contact_clause: (category == Category::Tender).then(|| {
            "From issue until award, bidders shall not contact any Northwind Health staff \
             other than the named procurement officer."
                .into()
        }),
    }
}

/// The human label of a category, for sentences ("your request for proposal").
pub fn category_label(category: Category) -> &'static str {
    match category {
        Category::Rfp => "request for proposal",
        Category::Rfq => "request for quotation",
        Category::Rfi => "request for information",
        Category::Tender => "tender",
        Category::Portal => "supplier registration",
        Category::Questionnaire => "vendor questionnaire",
        Category::PricingOnly => "pricing request",
        Category::DemoRequest => "demo request",
        Category::ProcurementGatekeeper => "procurement process",
        Category::None => "request",
    }
}

fn solicitation(reference: Option<&str>, title: Option<&str>, category: Category) -> String {
    match (reference, title) {
        (Some(r), Some(t)) => format!("{r} ({t})"),
        (Some(r), None) => r.to_string(),
        (None, Some(t)) => format!("your {t} {}", category_label(category)),
        (None, None) => format!("your {}", category_label(category)),
    }
}

fn first_name(name: &str) -> String {
    name.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn person(s: &Stakeholder) -> PersonContext {
    let name = s
        .name
        .as_deref()
        .map(clean_header_value)
        .filter(|n| !n.is_empty());
    let title = s
        .title
        .as_deref()
        .map(clean_header_value)
        .filter(|t| !t.is_empty());
    let label = match (&name, &title) {
        (Some(n), Some(t)) => Some(format!("{n} ({t})")),
        (Some(n), None) => Some(n.clone()),
        (None, Some(t)) => Some(format!("your {t}")),
        (None, None) => None,
    };
    PersonContext {
        first_name: name.as_deref().map(first_name),
        name,
        email: s.email.clone(),
        title,
        label,
        role: role_name(s.role).to_string(),
    }
}

fn person_from_address(address: Option<&Address>) -> PersonContext {
    let name = address
        .and_then(|a| a.name.clone())
        .filter(|_| !address.is_some_and(is_role_mailbox));
    PersonContext {
        first_name: name.as_deref().map(first_name),
        label: name.clone(),
        name,
        email: address.map(|a| a.email.clone()),
        title: None,
        role: role_name(StakeholderRole::Unknown).to_string(),
    }
}

fn role_name(role: StakeholderRole) -> &'static str {
    match role {
        StakeholderRole::Business => "business",
        StakeholderRole::Procurement => "procurement",
        StakeholderRole::Unknown => "unknown",
    }
}

/// Whether `s` is the person the mail came from: the draft speaks to them, not about them.
fn is_contact(s: &Stakeholder, facts: &Facts) -> bool {
    let Some(contact) = &facts.contact else {
        return false;
    };
    let same = |a: &Option<String>, b: &Option<String>| {
        a.as_deref()
            .zip(b.as_deref())
            .is_some_and(|(a, b)| a.trim().eq_ignore_ascii_case(b.trim()))
    };
    same(&s.email, &contact.email) || same(&s.name, &contact.name)
}

/// A shared mailbox rather than a person: a display name there is a department, not a first name.
fn is_role_mailbox(address: &Address) -> bool {
    const ROLES: [&str; 12] = [
        "procurement",
        "purchasing",
        "sourcing",
        "tender",
        "rfp",
        "bids",
        "contracts",
        "vendor",
        "supplier",
        "noreply",
        "no-reply",
        "info",
    ];
    let local = address.local_part().to_ascii_lowercase();
    ROLES.iter().any(|r| local.contains(r))
}

fn greeting(contact: &PersonContext, mail: &Mail) -> String {
    if let Some(first) = &contact.first_name {
        return first.clone();
    }
    if mail.reply_address().is_some_and(is_role_mailbox) {
        "team".to_string()
    } else {
        "there".to_string()
    }
}

fn join_names(names: Vec<String>) -> Option<String> {
    match names.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [rest @ .., last] => Some(format!("{} and {last}", rest.join(", "))),
    }
}

fn deadline_kind_label(kind: DeadlineKind) -> &'static str {
    match kind {
        DeadlineKind::Submission => "submission deadline",
        DeadlineKind::Questions => "deadline for questions",
        DeadlineKind::PreBid => "pre-bid meeting",
        DeadlineKind::IntentToBid => "intent-to-bid deadline",
        DeadlineKind::Other => "deadline",
    }
}

fn format_deadline(d: &Deadline) -> String {
    let Some(date) = d.date else {
        return d.text.clone();
    };
    let mut out = date.format("%A %-d %B %Y").to_string();
    if let Some(time) = d.time {
        out.push_str(&time.format(", %H:%M").to_string());
        if let Some(zone) = &d.zone {
            out.push(' ');
            out.push_str(zone);
        }
    }
    out
}

fn deadline(d: &Deadline) -> DeadlineContext {
    DeadlineContext {
        kind: d.kind.as_str().to_string(),
        kind_label: deadline_kind_label(d.kind).to_string(),
        date: d.date.map(|x| x.format("%Y-%m-%d").to_string()),
        time: d.time.map(|x| x.format("%H:%M").to_string()),
        zone: d.zone.clone(),
        text: d.text.clone(),
        ambiguous: d.ambiguous,
        formatted: format_deadline(d),
    }
}

/// The notes shown to the rep beside the draft (never sent): why the mail was flagged, what was
/// read off it, who is worth inviting, and what to be careful about.
pub fn rep_notes(
    mail: &Mail,
    classification: &Classification,
    facts: &Facts,
    now: DateTime<Utc>,
) -> Vec<String> {
    let mut notes = vec![format!(
        "Flagged as {} ({}), score {:.2}.",
        category_label(classification.category),
        classification.category,
        classification.score
    )];
    let mut reasons: Vec<_> = classification.reasons.iter().collect();
    reasons.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
    let top: Vec<String> = reasons
        .iter()
        .take(TOP_REASONS)
        .map(|r| format!("{} ({:+.2}, matched \"{}\")", r.signal, r.weight, r.matched))
        .collect();
    if !top.is_empty() {
        notes.push(format!("Top reasons: {}.", top.join("; ")));
    }
    if let Some(buyer) = &facts.buyer {
        notes.push(format!("Buyer: {buyer}."));
    }
    if !facts.references.is_empty() {
        notes.push(format!("Reference: {}.", facts.references.join(", ")));
    }
    if !facts.titles.is_empty() {
        notes.push(format!("Title: {}.", facts.titles.join("; ")));
    }
    for d in &facts.deadlines {
        if d.date.is_none() {
            notes.push(format!(
                "{}: \"{}\" (no date read).",
                capitalise(deadline_kind_label(d.kind)),
                d.text
            ));
            continue;
        }
        let doubt = if d.ambiguous {
            " (ambiguous: confirm the date)"
        } else {
            ""
        };
        notes.push(format!(
            "{}: {}{doubt}, from \"{}\".",
            capitalise(deadline_kind_label(d.kind)),
            format_deadline(d),
            d.text
        ));
    }
    if let Some(portal) = facts.portal_urls.first() {
        notes.push(format!("Portal: {portal}"));
    }
    let business: Vec<String> = facts
        .stakeholders
        .iter()
        .filter(|s| s.role == StakeholderRole::Business && !is_contact(s, facts))
        .filter_map(|s| {
            let label = person(s).label?;
            Some(match &s.email {
                Some(email) => format!("{label} <{email}>"),
                None => label,
            })
        })
        .collect();
    let contact = facts
        .contact
        .as_ref()
        .filter(|c| c.role == StakeholderRole::Business);
    if let Some(label) = contact.and_then(|c| person(c).label) {
        notes.push(format!("The contact, {label}, owns the business problem."));
    }
    if business.is_empty() && contact.is_none() {
        notes.push("No business stakeholder named: the draft asks who owns the problem.".into());
    } else if !business.is_empty() {
        notes.push(format!("Worth inviting: {}.", business.join("; ")));
    }
    if let Some(clause) = &facts.no_contact_clause {
        notes.push(format!(
            "Caution: no-contact clause (\"{clause}\"). The draft asks procurement to arrange the \
             conversation; do not contact the business owners directly, it can disqualify the bid."
        ));
    }
    for d in &facts.deadlines {
        let label = deadline_kind_label(d.kind);
        let Some(date) = d.date else {
            notes.push(format!(
                "Caution: the {label} has no readable date (\"{}\"): confirm it.",
                d.text
            ));
            continue;
        };
        let due = deadline_instant(date, d.time, d.zone.as_deref());
        if due < now {
            notes.push(format!(
                "Caution: the {label} ({}) has already passed.",
                format_deadline(d)
            ));
        } else if due - now <= Duration::days(URGENT_WITHIN_DAYS) {
            let hours = (due - now).num_hours();
            let left = if hours < 1 {
                "less than an hour".to_string()
            } else if hours == 1 {
                "1 hour".to_string()
            } else if hours < 48 {
                format!("{hours} hours")
            } else {
                format!("{} days", hours / 24)
            };
            notes.push(format!(
                "Caution: the {label} ({}) is in {left}.",
                format_deadline(d)
            ));
        }
        if d.ambiguous {
            notes.push(format!(
                "Caution: \"{}\" can be read more than one way; confirm the {label} with the buyer.",
                d.text
            ));
        }
    }
    if mail.reply_address().is_none() {
        notes
            .push("Caution: the mail has no From or Reply-To; there is nobody to reply to.".into());
    }
    notes
}

/// The notes beside a follow-up: which one it is and how long the buyer has been quiet, then the
/// original mail's notes (its deadlines may have come closer since).
pub fn follow_up_notes(
    mail: &Mail,
    classification: &Classification,
    facts: &Facts,
    info: &FollowUpInfo,
    rep_tz: Tz,
    now: DateTime<Utc>,
) -> Vec<String> {
    let sent = info.sent_at.with_timezone(&rep_tz).format("%-d %B %Y");
    let days = match info.business_days {
        1 => "1 business day".to_string(),
        n => format!("{n} business days"),
    };
    let mut notes = vec![if info.is_last() {
        format!(
            "Follow-up {} of {}, the last: no answer to our message of {sent} after {days}. The \
             draft says we will go ahead through the buyer's process.",
            info.number, info.max
        )
    } else {
        format!(
            "Follow-up {} of {}: no answer to our message of {sent} after {days}.",
            info.number, info.max
        )
    }];
    notes.extend(rep_notes(mail, classification, facts, now));
    notes
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map_or_else(String::new, |c| {
        c.to_uppercase().chain(chars).collect::<String>()
    })
}

/// When a deadline falls due: its time (end of day when unknown) in its zone (UTC when unknown or
/// unreadable).
fn deadline_instant(date: NaiveDate, time: Option<NaiveTime>, zone: Option<&str>) -> DateTime<Utc> {
    let local =
        date.and_time(time.unwrap_or(NaiveTime::from_hms_opt(23, 59, 0).unwrap_or_default()));
    zone.and_then(Zone::parse)
        .map_or_else(|| Utc.from_utc_datetime(&local), |z| z.resolve(local))
}

/// A composed reply, ready for the rep's approval and then for sending as-is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Without angle brackets.
    pub message_id: String,
    pub subject: String,
    /// Every To address, as written in the header ("Dana <dana@x>, Tom <tom@x>").
    pub to: String,
    /// Without angle brackets.
    pub in_reply_to: Option<String>,
    /// Without angle brackets, oldest first.
    pub references: Vec<String>,
    /// The RFC 5322 message.
    pub raw: Vec<u8>,
}

/// A file sent after the text: the calendar invite for the proposed conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub file_name: String,
    pub content_type: ContentType,
    pub bytes: Vec<u8>,
}

impl Attachment {
    /// An iCalendar invitation (its text is written elsewhere) as calendar clients look for it.
    pub fn calendar_invite(ics: Vec<u8>) -> Attachment {
        Attachment {
            file_name: "invite.ics".into(),
            content_type: ContentType::parse("text/calendar; method=REQUEST; charset=UTF-8")
                .expect("a valid content type"),
            bytes: ics,
        }
    }
}

/// Compose the reply to `mail`: To is its Reply-To or From, threading headers point at it, and the
/// body is `body` followed by the original, quoted; `invite`, when given, follows as a second
/// part of a multipart/mixed message.
pub fn compose_reply(
    mail: &Mail,
    identity: &Identity,
    body: &str,
    message_id: &str,
    date: DateTime<FixedOffset>,
    invite: Option<&Attachment>,
) -> Result<Reply, Error> {
    let recipient = mail.reply_address().ok_or_else(|| Error::NoRecipient {
        message_id: thread_label(mail),
    })?;
    let recipients = Recipients {
        to: vec![recipient],
        cc: Vec::new(),
    };
    compose_in_thread(mail, &recipients, identity, body, message_id, date, invite)
}

/// Compose a follow-up on `previous`, our own unanswered message in the thread: to its To and
/// Cc again (the rep left out), threaded and quoted as a reply to it.
pub fn compose_follow_up(
    previous: &Mail,
    identity: &Identity,
    body: &str,
    message_id: &str,
    date: DateTime<FixedOffset>,
    invite: Option<&Attachment>,
) -> Result<Reply, Error> {
    let mut recipients = Recipients {
        to: Vec::new(),
        cc: Vec::new(),
    };
    let rep = identity.email.trim();
    for address in &previous.to {
        if recipients.is_new(address, rep) {
            recipients.to.push(address);
        }
    }
    for address in &previous.cc {
        if recipients.is_new(address, rep) {
            recipients.cc.push(address);
        }
    }
    if recipients.to.is_empty() {
        return Err(Error::NoFollowUpRecipient {
            message_id: thread_label(previous),
        });
    }
    compose_in_thread(
        previous,
        &recipients,
        identity,
        body,
        message_id,
        date,
        invite,
    )
}

/// Who a message in a thread goes to, each address once.
struct Recipients<'a> {
    to: Vec<&'a Address>,
    cc: Vec<&'a Address>,
}

impl Recipients<'_> {
    /// Neither the rep nor already listed.
    fn is_new(&self, address: &Address, rep: &str) -> bool {
        !address.email.eq_ignore_ascii_case(rep)
            && !self
                .to
                .iter()
                .chain(&self.cc)
                .any(|a| a.email.eq_ignore_ascii_case(&address.email))
    }
}

/// The parent's Message-ID as our threading headers carry it, when it has a usable one.
fn parent_id(mail: &Mail) -> Option<String> {
    mail.message_id
        .as_deref()
        .map(bare_message_id)
        .filter(|id| !id.is_empty())
}

/// How errors name the message being answered.
fn thread_label(mail: &Mail) -> String {
    parent_id(mail).unwrap_or_else(|| "(without Message-ID)".into())
}

/// What replies and follow-ups share: From the rep, subject and threading headers from `parent`,
/// `body` followed by `parent` quoted, the rep's own Date, and the invite as a second part.
fn compose_in_thread(
    parent: &Mail,
    recipients: &Recipients<'_>,
    identity: &Identity,
    body: &str,
    message_id: &str,
    date: DateTime<FixedOffset>,
    invite: Option<&Attachment>,
) -> Result<Reply, Error> {
    let original_id = parent_id(parent);
    let label = thread_label(parent);
    let mailboxes = |list: &[&Address]| -> Result<Vec<Mailbox>, Error> {
        list.iter()
            .map(|a| mailbox(a.name.as_deref(), &a.email, &label))
            .collect()
    };
    let to = mailboxes(&recipients.to)?;
    let cc = mailboxes(&recipients.cc)?;
    let from = mailbox(Some(&identity.name), &identity.email, &label)?;
    let subject = reply_subject(&parent.subject);
    let mut references = Vec::new();
    if let Some(id) = &original_id {
        for r in parent
            .references
            .iter()
            .map(|r| bare_message_id(r))
            .chain([id.clone()])
        {
            if !r.is_empty() && !references.contains(&r) {
                references.push(r);
            }
        }
    }
    let message_id = bare_message_id(message_id);
    let mut builder = lettre::Message::builder().from(from);
    for mailbox in to.iter().cloned() {
        builder = builder.to(mailbox);
    }
    for mailbox in cc {
        builder = builder.cc(mailbox);
    }
    builder = builder
        .subject(subject.clone())
        .date(date.into())
        .message_id(Some(format!("<{message_id}>")));
    if let Some(id) = &original_id {
        builder = builder.in_reply_to(format!("<{id}>")).references(
            references
                .iter()
                .map(|r| format!("<{r}>"))
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    let text = format!("{}\n\n{}", body.trim_end(), quote_original(parent));
    let built = match invite {
        None => builder.header(ContentType::TEXT_PLAIN).body(text),
        Some(invite) => {
            // lettre draws a random boundary; one derived from the content keeps a re-composed
            // draft byte-for-byte the same, like its Message-ID and Date.
            let mut seed = text.as_bytes().to_vec();
            seed.extend_from_slice(&invite.bytes);
            let part = lettre::message::Attachment::new(clean_header_value(&invite.file_name))
                .body(invite.bytes.clone(), invite.content_type.clone());
            builder.multipart(
                MultiPart::mixed()
                    .boundary(format!("pushback-{:016x}", fnv1a(&seed)))
                    .singlepart(SinglePart::plain(text))
                    .singlepart(part),
            )
        }
    };
    let mut message = built.map_err(|source| Error::Build {
        message_id: label,
        source,
    })?;
    // lettre writes every Date in UTC; the rep's own offset is what a mail client would show.
    message.headers_mut().insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("Date"),
        date.to_rfc2822(),
    ));
    Ok(Reply {
        message_id,
        subject,
        to: to
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        in_reply_to: original_id,
        references,
        raw: message.formatted(),
    })
}

pub(crate) fn mailbox(name: Option<&str>, email: &str, message_id: &str) -> Result<Mailbox, Error> {
    let invalid = || Error::InvalidAddress {
        message_id: message_id.to_string(),
        address: clean_header_value(email),
    };
    let address = clean_header_value(email).parse().map_err(|_| invalid())?;
    let name = name.map(clean_header_value).filter(|n| !n.is_empty());
    Ok(Mailbox::new(name, address))
}

/// A message id as it goes between angle brackets: no brackets, no whitespace or control chars.
pub(crate) fn bare_message_id(id: &str) -> String {
    id.chars()
        .filter(|c| !c.is_whitespace() && !c.is_control() && *c != '<' && *c != '>')
        .collect()
}

/// "On <date>, <name> wrote:" and the original body quoted with "> ", capped.
fn quote_original(mail: &Mail) -> String {
    let who = mail.from.as_ref().map_or_else(
        || "you".to_string(),
        |a| a.name.clone().unwrap_or_else(|| a.email.clone()),
    );
    let mut out = match mail.date {
        Some(d) => format!("On {}, {who} wrote:\n", d.format("%a, %-d %b %Y at %H:%M")),
        None => format!("{who} wrote:\n"),
    };
    let original = mail.body.replace("\r\n", "\n");
    let lines: Vec<&str> = original.trim_end().lines().collect();
    let mut used = 0;
    for (i, line) in lines.iter().enumerate() {
        used += line.len();
        if i == MAX_QUOTED_LINES || used > MAX_QUOTED_CHARS {
            out.push_str("> [...]\n");
            break;
        }
        if line.is_empty() {
            out.push_str(">\n");
        } else {
            out.push_str("> ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The right-hand side of the Message-IDs pushback makes: the rep's mail domain.
pub(crate) fn rep_domain(identity: &Identity) -> String {
    identity
        .email
        .rsplit_once('@')
        .map(|(_, d)| bare_message_id(d).to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "pushback.invalid".to_string())
}

/// The reply's Message-ID (without angle brackets): derived from the original's id, the rep and
/// the draft version, so a retry after a crash produces the same id. On the rep's domain.
pub fn reply_message_id(identity: &Identity, original_message_id: &str, version: u32) -> String {
    let domain = rep_domain(identity);
    let seed = format!(
        "{}\n{}\n{version}",
        identity.email.to_ascii_lowercase(),
        bare_message_id(original_message_id)
    );
    format!(
        "pushback.{:016x}.v{version}@{domain}",
        fnv1a(seed.as_bytes())
    )
}

/// FNV-1a: a hash whose output is fixed by its definition, unlike std's `DefaultHasher`, so ids
/// stay the same across Rust releases.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Reply prefixes in the languages buyers commonly write in; forward prefixes are not here.
const REPLY_PREFIXES: [&str; 5] = ["re", "aw", "sv", "antw", "rif"];

/// "Re: " + the original subject with its leading reply prefixes ("RE:", "Re[2]:", "AW:") removed,
/// so prefixes never pile up. A forwarded subject keeps its "Fwd:": "Re: Fwd: ...".
pub fn reply_subject(original: &str) -> String {
    let mut rest = clean_header_value(original);
    while let Some(stripped) = strip_reply_prefix(&rest) {
        rest = stripped.trim_start().to_string();
    }
    if rest.is_empty() {
        "Re: (no subject)".to_string()
    } else {
        format!("Re: {rest}")
    }
}

fn strip_reply_prefix(subject: &str) -> Option<&str> {
    let word_end = subject
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(subject.len());
    let (word, rest) = subject.split_at(word_end);
    if !REPLY_PREFIXES.iter().any(|p| word.eq_ignore_ascii_case(p)) {
        return None;
    }
    // An optional counter: "Re[2]:" or "Re(2):".
    let rest = match rest.chars().next() {
        Some(open @ ('[' | '(')) => {
            let close = if open == '[' { ']' } else { ')' };
            let end = rest.find(close)?;
            if !rest[1..end].chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            &rest[end + 1..]
        }
        _ => rest,
    };
    rest.trim_start_matches(' ').strip_prefix(':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{Label, Reason};
    use mail_parser::MimeHeaders;

    fn identity() -> Identity {
        Identity::demo()
    }

    fn mail(raw: &str) -> Mail {
        Mail::parse(raw.as_bytes()).unwrap()
    }

    const RFP: &str = "From: \"Dana Whitfield\" <dana@northwind.example>\r\n\
To: alex@northwind.example\r\n\
Subject: RE: RFP #2027-014 Patient Analytics\r\n\
Date: Mon, 15 Feb 2027 09:30:00 -0500\r\n\
Message-ID: <rfp-14@northwind.example>\r\n\
References: <older@northwind.example>\r\n\
\r\n\
Please submit through the portal.\r\n\
\r\n\
Regards, Dana\r\n";

    fn classification(category: Category) -> Classification {
        Classification {
            label: Label::Procurement,
            category,
            score: 0.82,
            reasons: vec![
                Reason {
                    signal: "subject-rfp".into(),
                    weight: 2.0,
                    matched: "RFP #2027-014".into(),
                },
                Reason {
                    signal: "body-portal".into(),
                    weight: 0.5,
                    matched: "submit through the portal".into(),
                },
                Reason {
                    signal: "feedback-bayes".into(),
                    weight: -1.5,
                    matched: "thread".into(),
                },
                Reason {
                    signal: "attachment-docx".into(),
                    weight: 0.1,
                    matched: "rfp.docx".into(),
                },
            ],
        }
    }

    fn date(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    #[test]
    fn reply_subject_adds_one_re_prefix() {
        for (original, expected) in [
            ("RFP 2027-014", "Re: RFP 2027-014"),
            ("Re: RFP 2027-014", "Re: RFP 2027-014"),
            ("RE: RE: re: RFP", "Re: RFP"),
            ("Re[2]: RFP", "Re: RFP"),
            ("Re(3): RFP", "Re: RFP"),
            ("AW: Ausschreibung", "Re: Ausschreibung"),
            ("SV: Re: Anbud", "Re: Anbud"),
            ("Re : Appel d'offres", "Re: Appel d'offres"),
            ("Fwd: RFP", "Re: Fwd: RFP"),
            ("Re: Fwd: RFP", "Re: Fwd: RFP"),
            ("FW: Re: RFP", "Re: FW: Re: RFP"),
            ("Ref: RFP 12", "Re: Ref: RFP 12"),
            ("Report due", "Re: Report due"),
            ("Re[x]: odd", "Re: Re[x]: odd"),
            ("", "Re: (no subject)"),
            ("Re:", "Re: (no subject)"),
        ] {
            assert_eq!(reply_subject(original), expected, "{original:?}");
        }
    }

    #[test]
    fn reply_message_id_is_deterministic_and_on_the_rep_domain() {
        let id = reply_message_id(&identity(), "<rfp-14@northwind.example>", 1);
        assert_eq!(
            id,
            reply_message_id(&identity(), "rfp-14@northwind.example", 1)
        );
        assert!(id.ends_with(".v1@northwind.example"), "{id}");
        assert!(id.starts_with("pushback."), "{id}");
        assert_ne!(
            id,
            reply_message_id(&identity(), "rfp-14@northwind.example", 2)
        );
        assert_ne!(
            id,
            reply_message_id(&identity(), "rfp-15@northwind.example", 1)
        );
        // Pinned: FNV-1a must not drift, or a retry after an upgrade would send a second copy.
        assert_eq!(id, "pushback.5e0d0d92d4bced34.v1@northwind.example");
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn context_reads_people_deadlines_and_reference() {
        let ctx = DraftContext::sample(Category::Rfp);
        assert_eq!(ctx.greeting, "Dana");
        assert_eq!(ctx.buyer.organisation.as_deref(), Some("Northwind Health"));
        assert_eq!(
            ctx.buyer.contact.label.as_deref(),
            Some("Dana Whitfield (Senior Procurement Officer)")
        );
        assert_eq!(ctx.stakeholders.business.len(), 2);
        assert_eq!(ctx.stakeholders.procurement.len(), 1);
        assert_eq!(
            ctx.stakeholders.business_names.as_deref(),
            Some("Maria Lopez (VP Clinical Operations) and Tom Reed (Director of IT)")
        );
        assert_eq!(ctx.deadlines.all.len(), 2);
        let questions = ctx.deadlines.questions.as_ref().unwrap();
        assert_eq!(questions.date.as_deref(), Some("2027-03-01"));
        assert_eq!(questions.time.as_deref(), Some("17:00"));
        assert_eq!(questions.kind_label, "deadline for questions");
        assert_eq!(
            ctx.deadlines.submission.as_ref().unwrap().formatted,
            "Monday 15 March 2027, 17:00 America/New_York"
        );
        assert_eq!(
            ctx.solicitation,
            "RFP #2027-014 (Patient Analytics Platform)"
        );
        assert_eq!(ctx.category.label, "request for proposal");
        assert_eq!(ctx.original.date.as_deref(), Some("15 February 2027"));
        assert!(!ctx.no_contact.applies);
        assert!(DraftContext::sample(Category::Tender).no_contact.applies);

        // The contact is spoken to, not invited: a business-owner contact is not in the names.
        let mut facts = sample_facts(Category::Rfp);
        facts.contact = facts.stakeholders.get(1).cloned();
        let ctx = DraftContext::new(
            &mail(RFP),
            &classification(Category::Rfp),
            &facts,
            &identity(),
        );
        assert_eq!(ctx.buyer.contact.role, "business");
        assert_eq!(ctx.greeting, "Maria");
        assert_eq!(
            ctx.stakeholders.business_names.as_deref(),
            Some("Tom Reed (Director of IT)")
        );
        assert_eq!(ctx.stakeholders.business.len(), 2);
    }

    #[test]
    fn sparse_context_keeps_every_key_as_an_explicit_none() {
        let ctx = DraftContext::sparse(Category::Portal);
        assert_eq!(ctx.greeting, "team");
        assert_eq!(ctx.solicitation, "your supplier registration");
        let json = serde_json::to_value(&ctx).unwrap();
        for path in [
            "/reference",
            "/title",
            "/portal",
            "/buyer/organisation",
            "/buyer/contact/first_name",
            "/stakeholders/business_names",
            "/deadlines/submission",
            "/deadlines/questions",
            "/original/date",
            "/no_contact/clause",
        ] {
            assert_eq!(json.pointer(path), Some(&serde_json::Value::Null), "{path}");
        }
    }

    #[test]
    fn greeting_falls_back_from_contact_to_sender_to_there() {
        let c = classification(Category::Rfp);
        let m = mail(RFP);
        let ctx = DraftContext::new(&m, &c, &Facts::default(), &identity());
        assert_eq!(ctx.greeting, "Dana");
        let m = mail(
            "From: \"Northwind Procurement\" <procurement@northwind.example>\r\nSubject: x\r\n\r\nbody\r\n",
        );
        let ctx = DraftContext::new(&m, &c, &Facts::default(), &identity());
        assert_eq!(ctx.greeting, "team");
        assert_eq!(ctx.buyer.contact.name, None);
        let m = mail("From: jo@northwind.example\r\nSubject: x\r\n\r\nbody\r\n");
        let ctx = DraftContext::new(&m, &c, &Facts::default(), &identity());
        assert_eq!(ctx.greeting, "there");
    }

    #[test]
    fn no_contact_clause_switches_the_context() {
        let m = mail(RFP);
        let c = classification(Category::Tender);
        let facts = Facts {
            no_contact_clause: Some("Bidders shall not contact staff.".into()),
            ..Facts::default()
        };
        let ctx = DraftContext::new(&m, &c, &facts, &identity());
        assert!(ctx.no_contact.applies);
        assert_eq!(
            ctx.no_contact.clause.as_deref(),
            Some("Bidders shall not contact staff.")
        );
        let notes = rep_notes(&m, &c, &facts, Utc::now());
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("Caution: no-contact clause")
                    && n.contains("asks procurement"))
        );
    }

    #[test]
    fn compose_threads_the_reply_and_quotes_the_original() {
        let m = mail(RFP);
        let reply = compose_reply(
            &m,
            &identity(),
            "Hi Dana,\n\nThanks.\n",
            "pushback.1.v1@northwind.example",
            date("2027-02-16T08:00:00-05:00"),
            None,
        )
        .unwrap();
        assert_eq!(reply.subject, "Re: RFP #2027-014 Patient Analytics");
        assert_eq!(reply.to, "Dana Whitfield <dana@northwind.example>");
        assert_eq!(
            reply.in_reply_to.as_deref(),
            Some("rfp-14@northwind.example")
        );
        assert_eq!(
            reply.references,
            vec!["older@northwind.example", "rfp-14@northwind.example"]
        );
        let parsed = mail_parser::MessageParser::default()
            .parse(&reply.raw)
            .unwrap();
        assert_eq!(parsed.message_id(), Some("pushback.1.v1@northwind.example"));
        assert_eq!(
            parsed.from().unwrap().first().unwrap().address(),
            Some("alex@northwind.example")
        );
        assert_eq!(
            parsed.date().unwrap().to_timestamp(),
            date("2027-02-16T08:00:00-05:00").timestamp()
        );
        let raw = String::from_utf8_lossy(&reply.raw);
        assert_eq!(raw.matches("\r\nDate: ").count(), 1, "{raw}");
        assert!(
            raw.contains("\r\nDate: Tue, 16 Feb 2027 08:00:00 -0500\r\n"),
            "{raw}"
        );
        let body = parsed.body_text(0).unwrap();
        assert_eq!(
            body.replace("\r\n", "\n"),
            "Hi Dana,\n\nThanks.\n\nOn Mon, 15 Feb 2027 at 09:30, Dana Whitfield wrote:\n\
             > Please submit through the portal.\n>\n> Regards, Dana\n"
        );
    }

    #[test]
    fn compose_prefers_reply_to_and_dedups_references() {
        let m = mail(
            "From: dana@northwind.example\r\nReply-To: \"Tenders\" <tenders@northwind.example>\r\n\
             Subject: Tender\r\nMessage-ID: <b@x>\r\nReferences: <a@x> <b@x> <a@x>\r\n\r\nBody\r\n",
        );
        let reply = compose_reply(
            &m,
            &identity(),
            "Hi",
            "r@acme",
            date("2027-02-16T08:00:00Z"),
            None,
        )
        .unwrap();
        assert_eq!(reply.to, "Tenders <tenders@northwind.example>");
        assert_eq!(reply.references, vec!["a@x", "b@x"]);
        // No date on the original: the attribution names the sender only.
        let text = String::from_utf8(reply.raw).unwrap();
        assert!(
            text.contains("\r\ndana@northwind.example wrote:\r\n"),
            "{text}"
        );
    }

    #[test]
    fn long_references_are_folded_and_survive_the_round_trip() {
        let mut m = mail(RFP);
        m.references = (0..40)
            .map(|i| format!("{i:02}.a-rather-long-message-identifier@mail.northwind.example"))
            .collect();
        let reply = compose_reply(
            &m,
            &identity(),
            "Hi",
            "r@acme",
            date("2027-02-16T08:00:00Z"),
            None,
        )
        .unwrap();
        let text = String::from_utf8(reply.raw.clone()).unwrap();
        assert!(text.lines().all(|l| l.len() <= 998), "{text}");
        let parsed = mail_parser::MessageParser::default()
            .parse(&reply.raw)
            .unwrap();
        let mail_parser::HeaderValue::TextList(refs) = parsed.references() else {
            panic!("no References list in {text}");
        };
        assert_eq!(refs.len(), 41);
        assert_eq!(refs[40], "rfp-14@northwind.example");
        assert_eq!(reply.references.len(), 41);
    }

    #[test]
    fn compose_without_message_id_omits_threading_headers() {
        let m = mail("From: dana@northwind.example\r\nSubject: RFQ\r\n\r\nQuote please\r\n");
        let reply = compose_reply(
            &m,
            &identity(),
            "Hi",
            "r@acme",
            date("2027-02-16T08:00:00Z"),
            None,
        )
        .unwrap();
        assert_eq!(reply.in_reply_to, None);
        assert!(reply.references.is_empty());
        let parsed = mail_parser::MessageParser::default()
            .parse(&reply.raw)
            .unwrap();
        assert!(parsed.header("In-Reply-To").is_none());
        assert!(parsed.header("References").is_none());
    }

    #[test]
    fn compose_without_any_sender_cannot_reply() {
        let m = mail("To: alex@acme.example\r\nSubject: RFQ\r\nMessage-ID: <q@x>\r\n\r\nQuote\r\n");
        let err = compose_reply(
            &m,
            &identity(),
            "Hi",
            "r@acme",
            date("2027-02-16T08:00:00Z"),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot reply to message q@x: it has neither From nor Reply-To"
        );
    }

    // Regression guard: a subject or name carrying CR/LF must not add a header to our reply.
    #[test]
    fn header_values_from_mail_cannot_inject_headers() {
        let mut m = mail(RFP);
        m.subject = "RFP\r\nBcc: attacker@evil.example".into();
        m.from = Some(Address {
            name: Some("Dana\r\nCc: attacker@evil.example".into()),
            email: "dana@northwind.example".into(),
        });
        m.message_id = Some("id@x>\r\nBcc: attacker@evil.example".into());
        let reply = compose_reply(
            &m,
            &identity(),
            "Hi",
            "r@acme",
            date("2027-02-16T08:00:00Z"),
            None,
        )
        .unwrap();
        let parsed = mail_parser::MessageParser::default()
            .parse(&reply.raw)
            .unwrap();
        assert!(parsed.header("Bcc").is_none());
        assert!(parsed.header("Cc").is_none());
        assert_eq!(parsed.subject(), Some("Re: RFP Bcc: attacker@evil.example"));
        let text = String::from_utf8_lossy(&reply.raw);
        assert!(
            !text
                .lines()
                .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
            "{text}"
        );
    }

    #[test]
    fn quoting_is_capped() {
        let mut m = mail(RFP);
        m.body = (0..500).map(|i| format!("line {i}\n")).collect();
        let quoted = quote_original(&m);
        assert_eq!(quoted.lines().count(), 1 + MAX_QUOTED_LINES + 1);
        assert!(quoted.ends_with("> [...]\n"));
        m.body = "x".repeat(MAX_QUOTED_CHARS * 2);
        assert_eq!(quote_original(&m).lines().nth(1), Some("> [...]"));
    }

    #[test]
    fn rep_notes_explain_and_warn() {
        let m = mail(RFP);
        let c = classification(Category::Rfp);
        let deadline = |kind, day, ambiguous| Deadline {
            kind,
            date: NaiveDate::from_ymd_opt(2027, 3, day),
            time: NaiveTime::from_hms_opt(17, 0, 0),
            zone: Some("-05:00".into()),
            text: format!("3/{day}/2027 5pm"),
            ambiguous,
        };
        let facts = Facts {
            buyer: Some("Northwind Health".into()),
            references: vec!["RFP #2027-014".into()],
            portal_urls: vec!["https://suppliers.northwind.example".into()],
            deadlines: vec![
                deadline(DeadlineKind::Questions, 1, false),
                deadline(DeadlineKind::Submission, 4, true),
                Deadline {
                    kind: DeadlineKind::PreBid,
                    date: None,
                    time: None,
                    zone: None,
                    text: "the pre-bid meeting next month".into(),
                    ambiguous: true,
                },
            ],
            stakeholders: vec![Stakeholder {
                name: Some("Maria Lopez".into()),
                email: Some("maria@northwind.example".into()),
                title: Some("VP Operations".into()),
                role: StakeholderRole::Business,
            }],
            ..Facts::default()
        };
        let now = Utc.with_ymd_and_hms(2027, 3, 2, 12, 0, 0).unwrap();
        let notes = rep_notes(&m, &c, &facts, now);
        let expected = [
            "Flagged as request for proposal (rfp), score 0.82.",
            "Top reasons: subject-rfp (+2.00, matched \"RFP #2027-014\"); feedback-bayes (-1.50, \
             matched \"thread\"); body-portal (+0.50, matched \"submit through the portal\").",
            "Buyer: Northwind Health.",
            "Reference: RFP #2027-014.",
            "Deadline for questions: Monday 1 March 2027, 17:00 -05:00, from \"3/1/2027 5pm\".",
            "Submission deadline: Thursday 4 March 2027, 17:00 -05:00 (ambiguous: confirm the \
             date), from \"3/4/2027 5pm\".",
            "Pre-bid meeting: \"the pre-bid meeting next month\" (no date read).",
            "Portal: https://suppliers.northwind.example",
            "Worth inviting: Maria Lopez (VP Operations) <maria@northwind.example>.",
            "Caution: the deadline for questions (Monday 1 March 2027, 17:00 -05:00) has already \
             passed.",
            "Caution: the submission deadline (Thursday 4 March 2027, 17:00 -05:00) is in 2 days.",
            "Caution: \"3/4/2027 5pm\" can be read more than one way; confirm the submission \
             deadline with the buyer.",
            "Caution: the pre-bid meeting has no readable date (\"the pre-bid meeting next \
             month\"): confirm it.",
        ];
        assert_eq!(notes, expected);
    }

    #[test]
    fn rep_notes_without_business_stakeholders_say_so() {
        let notes = rep_notes(
            &mail(RFP),
            &classification(Category::PricingOnly),
            &Facts::default(),
            Utc::now(),
        );
        assert!(notes.contains(
            &"No business stakeholder named: the draft asks who owns the problem.".to_string()
        ));
    }

    #[test]
    fn deadline_instants_respect_the_zone() {
        let date = NaiveDate::from_ymd_opt(2027, 3, 1).unwrap();
        let five = NaiveTime::from_hms_opt(17, 0, 0);
        let at = |zone| deadline_instant(date, five, zone).to_rfc3339();
        assert_eq!(at(Some("America/New_York")), "2027-03-01T22:00:00+00:00");
        assert_eq!(at(Some("+05:30")), "2027-03-01T11:30:00+00:00");
        assert_eq!(at(Some("Mars/Olympus")), "2027-03-01T17:00:00+00:00");
        assert_eq!(
            deadline_instant(date, None, None).to_rfc3339(),
            "2027-03-01T23:59:00+00:00"
        );
    }

    fn deadline_in(kind: DeadlineKind, zone: Option<&str>) -> Deadline {
        Deadline {
            kind,
            date: NaiveDate::from_ymd_opt(2027, 3, 1),
            time: NaiveTime::from_hms_opt(17, 0, 0),
            zone: zone.map(Into::into),
            text: "March 1, 2027 5pm".into(),
            ambiguous: false,
        }
    }

    fn zone(text: &str) -> Option<Zone> {
        Some(Zone::parse(text).unwrap())
    }

    #[test]
    fn buyer_zone_prefers_the_questions_cut_off_and_named_zones() {
        let facts = |deadlines| Facts {
            deadlines,
            ..Facts::default()
        };
        use DeadlineKind::{Other, PreBid, Questions, Submission};
        assert_eq!(buyer_zone(&Facts::default()), None);
        assert_eq!(buyer_zone(&facts(vec![deadline_in(Questions, None)])), None);
        assert_eq!(
            buyer_zone(&facts(vec![
                deadline_in(Other, Some("Europe/Berlin")),
                deadline_in(Submission, Some("America/Chicago")),
                deadline_in(Questions, Some("America/New_York")),
            ])),
            zone("America/New_York")
        );
        assert_eq!(
            buyer_zone(&facts(vec![
                deadline_in(PreBid, Some("Europe/Berlin")),
                deadline_in(Submission, Some("America/Chicago")),
            ])),
            zone("America/Chicago")
        );
        // A named zone anywhere beats an offset on the preferred deadline: it knows about DST.
        assert_eq!(
            buyer_zone(&facts(vec![
                deadline_in(Questions, Some("-05:00")),
                deadline_in(Submission, Some("America/New_York")),
            ])),
            zone("America/New_York")
        );
        // An offset alone is kept; an unreadable zone is skipped.
        assert_eq!(
            buyer_zone(&facts(vec![
                deadline_in(Questions, Some("Eastern-ish")),
                deadline_in(Submission, Some("+05:30")),
            ])),
            zone("+05:30")
        );
    }

    fn slot(start: &str, minutes: i64) -> Slot {
        let start = date(start).to_utc();
        Slot {
            start,
            end: start + Duration::minutes(minutes),
        }
    }

    #[test]
    fn slots_are_described_in_the_buyers_zone_with_the_reps_alongside() {
        let london: Tz = "Europe/London".parse().unwrap();
        let slots = [
            slot("2027-03-02T15:00:00Z", 30),
            slot("2027-03-03T16:00:00Z", 45),
        ];
        let base = DraftContext::sample(Category::Rfp);

        // A buyer in New York, a rep in London.
        let ctx = base
            .clone()
            .with_slots(&slots, london, zone("America/New_York"));
        let first = &ctx.proposed_slots[0];
        assert_eq!(first.text, "Tue 2 Mar, 10:00-10:30 EST (15:00-15:30 GMT)");
        assert_eq!(
            first.buyer_text.as_deref(),
            Some("Tue 2 Mar, 10:00-10:30 EST")
        );
        assert_eq!(first.rep_text, "Tue 2 Mar, 15:00-15:30 GMT");
        assert_eq!(first.start, "2027-03-02T15:00:00+00:00");
        assert_eq!(first.end, "2027-03-02T15:30:00+00:00");
        assert_eq!(first.minutes, 30);
        assert_eq!(ctx.proposed_slots[1].minutes, 45);
        assert_eq!(
            ctx.proposed_slots[1].text,
            "Wed 3 Mar, 11:00-11:45 EST (16:00-16:45 GMT)"
        );

        // The same zone on both sides: said once.
        let ctx = base
            .clone()
            .with_slots(&slots, london, zone("Europe/London"));
        assert_eq!(ctx.proposed_slots[0].text, "Tue 2 Mar, 15:00-15:30 GMT");

        // A bare offset is shown as the offset; start and end stay in the rep's zone.
        let ctx = base.clone().with_slots(&slots, london, zone("+05:30"));
        assert_eq!(
            ctx.proposed_slots[0].text,
            "Tue 2 Mar, 20:30-21:00 +05:30 (15:00-15:30 GMT)"
        );
        let new_york: Tz = "America/New_York".parse().unwrap();
        let ctx = base.clone().with_slots(&slots, new_york, zone("+05:30"));
        assert_eq!(ctx.proposed_slots[0].start, "2027-03-02T10:00:00-05:00");

        // No stated zone: the rep's zone alone.
        let ctx = base.with_slots(&slots, london, None);
        assert_eq!(ctx.proposed_slots[0].text, "Tue 2 Mar, 15:00-15:30 GMT");
        assert_eq!(ctx.proposed_slots[0].buyer_text, None);
    }

    #[test]
    fn samples_offer_three_slots_on_business_days_and_sparse_none() {
        let ctx = DraftContext::sample(Category::Rfp);
        let texts: Vec<&str> = ctx.proposed_slots.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Tue 16 Feb, 10:00-10:30 EST (15:00-15:30 GMT)",
                "Wed 17 Feb, 09:30-10:00 EST (14:30-15:00 GMT)",
                "Thu 18 Feb, 11:00-11:30 EST (16:00-16:30 GMT)",
            ]
        );
        // From a Friday the weekend is skipped.
        let friday = date("2027-02-19T12:00:00Z").to_utc();
        let london: Tz = "Europe/London".parse().unwrap();
        let days: Vec<String> = sample_slots(friday, london)
            .iter()
            .map(|s| s.start.format("%a %d").to_string())
            .collect();
        assert_eq!(days, ["Mon 22", "Tue 23", "Wed 24"]);
        assert!(
            DraftContext::sparse(Category::Rfp)
                .proposed_slots
                .is_empty()
        );
    }

    fn follow_up(number: u32, max: u32) -> FollowUpInfo {
        FollowUpInfo {
            number,
            max,
            // 23:30 in London is already the next day nowhere earlier: the date is the rep's.
            sent_at: date("2027-02-16T23:30:00Z").to_utc(),
            business_days: 3,
        }
    }

    #[test]
    fn follow_up_context_says_where_it_stands() {
        let london: Tz = "Europe/London".parse().unwrap();
        let tokyo: Tz = "Asia/Tokyo".parse().unwrap();
        let before_cut_off = date("2027-02-22T09:00:00Z").to_utc();
        let after_cut_off = date("2027-03-02T09:00:00Z").to_utc();
        let sample = DraftContext::sample(Category::Rfp);
        assert_eq!(sample.follow_up, None);

        let ctx = sample
            .clone()
            .with_follow_up(&follow_up(1, 2), london, before_cut_off);
        assert_eq!(
            ctx.follow_up,
            Some(FollowUpContext {
                number: 1,
                max: 2,
                last: false,
                sent_date: "16 February 2027".into(),
                business_days: 3,
                questions_open: true,
            })
        );
        let ctx = sample
            .clone()
            .with_follow_up(&follow_up(2, 2), tokyo, after_cut_off);
        let context = ctx.follow_up.unwrap();
        assert!(context.last);
        assert_eq!(context.sent_date, "17 February 2027");
        // Questions close 1 March 17:00 New York, that is 22:00 UTC.
        assert!(!context.questions_open);
        let just_before = date("2027-03-01T21:59:00Z").to_utc();
        let ctx = sample
            .clone()
            .with_follow_up(&follow_up(2, 2), london, just_before);
        assert!(ctx.follow_up.unwrap().questions_open);

        // An ambiguous or missing cut-off is never quoted back.
        let mut facts = sample_facts(Category::Rfp);
        facts.deadlines[0].ambiguous = true;
        let ctx = DraftContext::new(
            &mail(RFP),
            &classification(Category::Rfp),
            &facts,
            &identity(),
        )
        .with_follow_up(&follow_up(1, 2), london, before_cut_off);
        assert!(!ctx.follow_up.unwrap().questions_open);
        let ctx = DraftContext::sparse(Category::Rfp).with_follow_up(
            &follow_up(1, 2),
            london,
            before_cut_off,
        );
        assert!(!ctx.follow_up.unwrap().questions_open);
    }

    #[test]
    fn follow_up_notes_say_which_one_it_is() {
        let london: Tz = "Europe/London".parse().unwrap();
        let now = date("2027-02-22T09:00:00Z").to_utc();
        let (m, c) = (mail(RFP), classification(Category::Rfp));
        let notes = follow_up_notes(&m, &c, &Facts::default(), &follow_up(1, 3), london, now);
        assert_eq!(
            notes[0],
            "Follow-up 1 of 3: no answer to our message of 16 February 2027 after 3 business days."
        );
        assert_eq!(notes[1..], rep_notes(&m, &c, &Facts::default(), now));
        let info = FollowUpInfo {
            business_days: 1,
            ..follow_up(3, 3)
        };
        let notes = follow_up_notes(&m, &c, &Facts::default(), &info, london, now);
        assert_eq!(
            notes[0],
            "Follow-up 3 of 3, the last: no answer to our message of 16 February 2027 after 1 \
             business day. The draft says we will go ahead through the buyer's process."
        );
    }

    /// Our own first reply, as it sits in the Sent folder: the rep on Cc of their own mail, as
    /// some clients do, and a colleague of the buyer copied.
    const SENT: &str = "From: Alex Rivera <alex@northwind.example>\r\n\
To: Dana Whitfield <dana@northwind.example>, ALEX@northwind.example\r\n\
Cc: Tom Reed <tom@northwind.example>, alex@northwind.example, dana@northwind.example\r\n\
Subject: Re: RE: RFP #2027-014 Patient Analytics\r\n\
Date: Tue, 16 Feb 2027 08:00:00 +0000\r\n\
Message-ID: <pushback.1.v1@northwind.example>\r\n\
In-Reply-To: <rfp-14@northwind.example>\r\n\
References: <older@northwind.example> <rfp-14@northwind.example>\r\n\
\r\n\
Hi Dana,\r\n\
\r\n\
Could we talk first?\r\n\
\r\n\
On Mon, 15 Feb 2027 at 09:30, Dana Whitfield wrote:\r\n\
> Please submit through the portal.\r\n";

    #[test]
    fn follow_up_goes_to_the_same_people_in_the_same_thread() {
        let previous = mail(SENT);
        let reply = compose_follow_up(
            &previous,
            &identity(),
            "Hi Dana,\n\nJust following up.\n",
            "pushback.2.v1@northwind.example",
            date("2027-02-19T09:00:00+00:00"),
            None,
        )
        .unwrap();
        assert_eq!(reply.to, "Dana Whitfield <dana@northwind.example>");
        assert_eq!(reply.subject, "Re: RFP #2027-014 Patient Analytics");
        assert_eq!(
            reply.in_reply_to.as_deref(),
            Some("pushback.1.v1@northwind.example")
        );
        assert_eq!(
            reply.references,
            [
                "older@northwind.example",
                "rfp-14@northwind.example",
                "pushback.1.v1@northwind.example"
            ]
        );
        let parsed = mail_parser::MessageParser::default()
            .parse(&reply.raw)
            .unwrap();
        let addresses = |list: Option<&mail_parser::Address<'_>>| -> Vec<String> {
            list.map(|l| {
                l.iter()
                    .filter_map(|a| a.address())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
        };
        assert_eq!(addresses(parsed.to()), ["dana@northwind.example"]);
        assert_eq!(addresses(parsed.cc()), ["tom@northwind.example"]);
        assert_eq!(addresses(parsed.from()), ["alex@northwind.example"]);
        assert_eq!(
            parsed.subject(),
            Some("Re: RFP #2027-014 Patient Analytics")
        );
        assert_eq!(parsed.message_id(), Some("pushback.2.v1@northwind.example"));
        assert_eq!(
            parsed.in_reply_to().as_text(),
            Some("pushback.1.v1@northwind.example")
        );
        assert_eq!(
            parsed.body_text(0).unwrap().replace("\r\n", "\n"),
            "Hi Dana,\n\nJust following up.\n\nOn Tue, 16 Feb 2027 at 08:00, Alex Rivera wrote:\n\
             > Hi Dana,\n>\n> Could we talk first?\n>\n\
             > On Mon, 15 Feb 2027 at 09:30, Dana Whitfield wrote:\n\
             > > Please submit through the portal.\n"
        );
    }

    #[test]
    fn follow_up_needs_someone_besides_the_rep() {
        let previous = mail(
            "From: alex@northwind.example\r\nTo: Alex <alex@northwind.example>\r\n\
             Cc: dana@northwind.example\r\nSubject: note to self\r\nMessage-ID: <n@x>\r\n\r\nx\r\n",
        );
        let err = compose_follow_up(
            &previous,
            &identity(),
            "Hi",
            "r@acme",
            date("2027-02-19T09:00:00Z"),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot follow up on message n@x: its To names nobody but the rep"
        );
    }

    #[test]
    fn an_invite_makes_a_mixed_message_of_text_then_calendar() {
        let ics =
            b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\nSUMMARY:Discovery call\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n"
                .to_vec();
        let invite = Attachment::calendar_invite(ics.clone());
        let compose = |invite| {
            compose_reply(
                &mail(RFP),
                &identity(),
                "Hi Dana,\n\nThanks.\n",
                "pushback.1.v1@northwind.example",
                date("2027-02-16T08:00:00-05:00"),
                invite,
            )
            .unwrap()
        };
        let reply = compose(Some(&invite));
        // Composing again gives the same bytes: the boundary is no more random than the id.
        assert_eq!(reply, compose(Some(&invite)));
        let parsed = mail_parser::MessageParser::default()
            .parse(&reply.raw)
            .unwrap();
        let top = parsed.content_type().unwrap();
        assert_eq!((top.ctype(), top.subtype()), ("multipart", Some("mixed")));
        assert_eq!(parsed.message_id(), Some("pushback.1.v1@northwind.example"));
        assert_eq!(
            parsed.in_reply_to().as_text(),
            Some("rfp-14@northwind.example")
        );
        assert_eq!(parsed.text_body_count(), 1);
        assert!(
            parsed
                .body_text(0)
                .unwrap()
                .replace("\r\n", "\n")
                .starts_with("Hi Dana,\n\nThanks.\n\nOn Mon, 15 Feb 2027 at 09:30")
        );
        assert_eq!(parsed.attachment_count(), 1);
        let calendar = parsed.attachment(0).unwrap();
        let content_type = calendar.content_type().unwrap();
        assert_eq!(
            (content_type.ctype(), content_type.subtype()),
            ("text", Some("calendar"))
        );
        assert_eq!(content_type.attribute("method"), Some("REQUEST"));
        assert_eq!(
            content_type
                .attribute("charset")
                .map(str::to_ascii_lowercase),
            Some("utf-8".into())
        );
        assert_eq!(calendar.attachment_name(), Some("invite.ics"));
        assert_eq!(calendar.contents(), ics.as_slice());
        // The text comes first, the calendar second.
        let text = String::from_utf8_lossy(&reply.raw);
        let (plain, ical) = (
            text.find("text/plain").unwrap(),
            text.find("text/calendar").unwrap(),
        );
        assert!(plain < ical, "{text}");
        assert!(!text.contains("multipart/alternative"), "{text}");

        // Without an invite, a single text/plain part as before.
        let plain = mail_parser::MessageParser::default()
            .parse(&compose(None).raw)
            .unwrap()
            .content_type()
            .map(|c| (c.ctype().to_string(), c.subtype().map(String::from)));
        assert_eq!(plain, Some(("text".into(), Some("plain".into()))));
    }

    #[test]
    fn follow_ups_carry_the_invite_too() {
        let invite = Attachment::calendar_invite(b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n".to_vec());
        let reply = compose_follow_up(
            &mail(SENT),
            &identity(),
            "Hi",
            "r@acme",
            date("2027-02-19T09:00:00Z"),
            Some(&invite),
        )
        .unwrap();
        let parsed = mail_parser::MessageParser::default()
            .parse(&reply.raw)
            .unwrap();
        assert_eq!(
            parsed.attachment(0).unwrap().attachment_name(),
            Some("invite.ics")
        );
    }
}

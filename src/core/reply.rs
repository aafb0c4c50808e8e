//! The buyer's answer to our pushback: whether an inbound message belongs to the thread of a
//! pushback we sent (`match_thread`), and what it says (`classify_reply`): agreed to a call,
//! insisted on the process, declined, or an out-of-office reply with its return date. Pure: the
//! mail's Date header is the only clock, and the caller passes in our Message-IDs and the rep's
//! addresses. Cancelling or rescheduling the follow-up itself is left to the scheduler.
//!
//! How a verdict is reached, in the spirit of `classify`: every signal fires at most once and
//! adds its weight to its family (agreed, insisted, declined, out of office). Only the buyer's own
//! words are read: quoted history ("> " lines, everything below "On ... wrote:" or
//! "-----Original Message-----") is cut first, since our own pushback sits there and would trigger
//! signals of its own. The family with the largest total wins; a tie goes to the reading that asks
//! least of the buyer (declined, then insisted, then agreed, then out of office), and no signal at
//! all is `Other`. Every signal that fired comes back as a `Reason`, the winner's first.

use crate::core::draft::reply_subject;
use crate::core::extract::extract;
use crate::core::mail::Mail;
use crate::core::model::Reason;
use chrono::NaiveDate;
use regex::Regex;
use std::sync::LazyLock;

/// The pushback thread a message is checked against.
#[derive(Debug, Clone, Copy)]
pub struct Thread<'a> {
    /// Message-IDs of every message we sent in this thread (pushback, follow-ups), without angle
    /// brackets.
    pub our_message_ids: &'a [String],
    /// The buyer's solicitation we pushed back on.
    pub original_message_id: Option<&'a str>,
    pub original_subject: &'a str,
    /// The buyer's mail domain, e.g. "city.example".
    pub buyer_domain: Option<&'a str>,
    /// Every address the rep sends from.
    pub rep_addresses: &'a [String],
}

/// How a message belongs to a pushback thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadMatch {
    /// In-Reply-To or References name one of our messages.
    ByReference,
    /// No threading headers to us, but the same subject (reply prefixes aside) from the buyer's
    /// domain: mail clients that drop References, or a buyer who starts a fresh mail.
    BySubject,
    NotInThread,
    /// The rep's own mail (a Sent copy synced back, another device): never the buyer's reply.
    FromRep,
}

/// What the buyer's reply says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    AgreedToCall,
    InsistedOnProcess,
    Declined,
    /// An automatic or out-of-office reply; `returns_on` when it states an unambiguous date.
    OutOfOffice {
        returns_on: Option<NaiveDate>,
    },
    Other,
}

impl ReplyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplyKind::AgreedToCall => "agreed_to_call",
            ReplyKind::InsistedOnProcess => "insisted_on_process",
            ReplyKind::Declined => "declined",
            ReplyKind::OutOfOffice { .. } => "out_of_office",
            ReplyKind::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReplyVerdict {
    pub kind: ReplyKind,
    /// Every signal that fired, the winning family's first.
    pub reasons: Vec<Reason>,
    /// Whether the pending follow-up is cancelled: a person answered. An out-of-office reply does
    /// not cancel it; the follow-up moves to after `returns_on` instead.
    pub cancels_follow_up: bool,
}

/// Whether `mail` belongs to `thread`, and how.
pub fn match_thread(mail: &Mail, thread: &Thread<'_>) -> ThreadMatch {
    let is_ours = |id: &str| {
        let id = bare_id(id);
        thread
            .our_message_ids
            .iter()
            .any(|ours| bare_id(ours) == id)
    };
    let from_rep = mail.from.as_ref().is_some_and(|from| {
        thread
            .rep_addresses
            .iter()
            .any(|rep| rep.trim().eq_ignore_ascii_case(&from.email))
    });
    // A message carrying one of our own ids is our own, whatever address it shows.
    if from_rep || mail.message_id.as_deref().is_some_and(is_ours) {
        return ThreadMatch::FromRep;
    }
    // The solicitation itself, seen again (a rescan, a second folder): not an answer to us.
    if let (Some(id), Some(original)) = (&mail.message_id, thread.original_message_id)
        && bare_id(id) == bare_id(original)
    {
        return ThreadMatch::NotInThread;
    }
    // Only our ids tie a message to the pushback: the original's id alone is also carried by the
    // buyer's addenda to every bidder. Such mail can still match by subject below.
    if mail
        .in_reply_to
        .iter()
        .chain(&mail.references)
        .any(|id| is_ours(id))
    {
        return ThreadMatch::ByReference;
    }
    let from_buyer = match (&mail.from, thread.buyer_domain) {
        (Some(from), Some(buyer)) => is_within_domain(from.domain(), buyer),
        _ => false,
    };
    if from_buyer && same_subject(&mail.subject, thread.original_subject) {
        ThreadMatch::BySubject
    } else {
        ThreadMatch::NotInThread
    }
}

fn bare_id(id: &str) -> &str {
    id.trim().trim_start_matches('<').trim_end_matches('>')
}

/// "buyer.example" or one of its subdomains ("procurement.buyer.example").
fn is_within_domain(domain: &str, buyer: &str) -> bool {
    let domain = domain.to_ascii_lowercase();
    let buyer = buyer.trim().trim_start_matches('@').to_ascii_lowercase();
    !buyer.is_empty()
        && (domain == buyer
            || domain
                .strip_suffix(&buyer)
                .is_some_and(|head| head.ends_with('.')))
}

/// The same subject once reply prefixes ("RE: AW: Re:") are gone, ignoring case. An empty subject
/// matches nothing: every subject-less mail would otherwise join the thread.
fn same_subject(subject: &str, original: &str) -> bool {
    let ours = reply_subject(original);
    ours != reply_subject("") && reply_subject(subject).to_lowercase() == ours.to_lowercase()
}

/// The signal families, in the order a tie is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Declined,
    Insisted,
    Agreed,
    OutOfOffice,
}

const FAMILIES: [Family; 4] = [
    Family::Declined,
    Family::Insisted,
    Family::Agreed,
    Family::OutOfOffice,
];

/// Where a signal looks.
#[derive(Debug, Clone, Copy)]
enum Evidence {
    /// A pattern over the buyer's own words, lower-cased with whitespace collapsed.
    Body(&'static str),
    /// A pattern over the subject, lower-cased.
    Subject(&'static str),
    /// The `Auto-Submitted` header: an autoresponder wrote this, not a person.
    AutoSubmitted,
    /// A calendar invite from the buyer (an `.ics` attachment), or their calendar accepting ours
    /// (`METHOD:REPLY`, `PARTSTAT=ACCEPTED` or `TENTATIVE`).
    CalendarInvite,
    /// The buyer's calendar declining our invite (`METHOD:REPLY`, `PARTSTAT=DECLINED`).
    CalendarDeclined,
}

#[derive(Debug, Clone, Copy)]
struct Signal {
    name: &'static str,
    family: Family,
    weight: f64,
    evidence: Evidence,
}

const fn signal(name: &'static str, family: Family, weight: f64, evidence: Evidence) -> Signal {
    Signal {
        name,
        family,
        weight,
        evidence,
    }
}

/// Weights: a phrase that settles the answer on its own (a refusal, a cone of silence, an
/// autoresponder header) weighs most; one that only leans a way (a proposed time, a colleague
/// copied in, "until") weighs less, so two leaning phrases are needed to beat a settling one.
const SIGNALS: [Signal; 25] = [
    // Agreed to a call.
    signal(
        "agreed-call-offer",
        Family::Agreed,
        2.0,
        Evidence::Body(
            r"(?:happy|glad|keen|pleased|willing|open)\s+to\s+(?:set\s+up|schedule|arrange|have|hop\s+on|jump\s+on|get\s+on|join)\s+(?:a|an|the)\s+(?:quick\s+|short\s+|brief\s+|introductory\s+|initial\s+|discovery\s+)?(?:call|chat|meeting|conversation|video\s+call)\b|(?:happy|glad|keen|would\s+love)\s+to\s+(?:talk|chat|speak|connect)\b",
        ),
    ),
    signal(
        "agreed-lets-schedule",
        Family::Agreed,
        2.0,
        Evidence::Body(
            r"\blet'?s\s+(?:schedule|set\s+up|book|arrange|find\s+(?:a\s+)?time|set\s+(?:a\s+)?time|get\s+(?:a\s+call|something|time)\s+(?:on|in))\b|\blet\s+us\s+(?:schedule|set\s+up|arrange)\b",
        ),
    ),
    signal(
        "agreed-call-works",
        Family::Agreed,
        2.0,
        Evidence::Body(
            r"\b(?:call|chat|meeting|conversation)\s+(?:works|would\s+work|sounds\s+(?:good|great|fine|helpful|useful)|would\s+be\s+(?:good|great|helpful|useful)|makes\s+sense)\b",
        ),
    ),
    signal(
        "agreed-proposed-time",
        Family::Agreed,
        1.5,
        Evidence::Body(
            r"\b(?:how\s+about|what\s+about|does|would|could\s+we\s+do|can\s+we\s+do|can\s+you\s+do|are\s+you\s+(?:free|available)(?:\s+on)?|i'?m\s+(?:free|available)(?:\s+on)?|i\s+am\s+(?:free|available)(?:\s+on)?)\s+(?:(?:this|next)\s+)?(?:(?:mon|tues|wednes|thurs|fri)day|tomorrow|\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.))",
        ),
    ),
    signal(
        "agreed-asks-availability",
        Family::Agreed,
        1.5,
        Evidence::Body(
            r"\b(?:send|share|suggest|propose)\s+(?:[\w']+\s+){0,2}?(?:some|a\s+few|a\s+couple\s+of|your)\s+(?:times|slots|availability|options)\b|\bwhat\s+times?\s+(?:works?|suits?|would\s+work)\b|\bwhen\s+are\s+you\s+(?:free|available)\b|\b(?:here\s+is|here's)\s+(?:my|a)\s+(?:calendar|booking|scheduling)\s+link\b",
        ),
    ),
    signal(
        "agreed-looped-in",
        Family::Agreed,
        1.5,
        Evidence::Body(
            r"\b(?:i'?ve|i\s+have|we'?ve|we\s+have|i'?m|i\s+am)\s+(?:looped|looping|cc'?d|cc'?ing|copied|copying|added|adding)\s+(?:in\s+)?\w|(?:^|[.!?]\s)looping\s+in\s+\w",
        ),
    ),
    signal(
        "agreed-calendar-invite",
        Family::Agreed,
        2.5,
        Evidence::CalendarInvite,
    ),
    signal(
        "declined-calendar-reply",
        Family::Declined,
        2.5,
        Evidence::CalendarDeclined,
    ),
    // Insisted on the process.
    signal(
        "insisted-portal",
        Family::Insisted,
        2.0,
        Evidence::Body(
            r"\b(?:submit|upload|send|direct|post|route|register|enter|provide)\b[^.?!]{0,50}?\b(?:through|via|on|in|to|using)\s+(?:the|our)\s+(?:[\w-]+\s+){0,2}?(?:portal|platform|e-?sourcing\s+system|sourcing\s+system|procurement\s+system)\b",
        ),
    ),
    signal(
        "insisted-no-meetings",
        Family::Insisted,
        2.5,
        Evidence::Body(
            r"\b(?:cannot|can'?t|can\s+not|are\s+(?:not\s+able|unable)\s+to|won'?t\s+be\s+able\s+to|not\s+(?:permitted|allowed)\s+to|may\s+not|must\s+not|unable\s+to)\s+(?:meet|speak|talk|engage|communicate|have\s+(?:calls|meetings|discussions|conversations)|take\s+(?:calls|meetings))\b[^.?!]{0,60}?\b(?:vendors?|suppliers?|bidders?|proposers?|respondents?|during|while|until|outside)\b",
        ),
    ),
    signal(
        "insisted-cone-of-silence",
        Family::Insisted,
        2.0,
        Evidence::Body(
            r"\b(?:cone\s+of\s+silence|quiet\s+period|black-?out\s+period|no-?contact\s+(?:period|clause|rule)|communications?\s+(?:blackout|restrictions?)|restricted\s+communications?)\b",
        ),
    ),
    signal(
        "insisted-in-writing",
        Family::Insisted,
        2.0,
        Evidence::Body(
            r"\b(?:questions|queries|inquiries|enquiries|clarifications|communications?)\s+(?:must|should|need\s+to|have\s+to|are\s+to)\s+be\s+(?:submitted|sent|directed|made|asked|raised|put)\s+(?:in\s+writing|through|via|to\s+the|by\s+e-?mail)\b",
        ),
    ),
    signal(
        "insisted-policy",
        Family::Insisted,
        1.5,
        Evidence::Body(
            r"\b(?:per|under|in\s+(?:accordance|line)\s+with|as\s+required\s+by|according\s+to)\s+(?:our|the|company|state|county|city|federal)\s+(?:[\w-]+\s+){0,2}?(?:procurement|purchasing|sourcing)\s+(?:policy|policies|rules|regulations|guidelines|code|law|process)\b",
        ),
    ),
    signal(
        "insisted-follow-instructions",
        Family::Insisted,
        2.0,
        Evidence::Body(
            r"\b(?:follow|adhere\s+to|comply\s+with|refer\s+to)\s+(?:the|our)\s+(?:rfp|rfq|rfi|itt|itb|tender|solicitation|bid|procurement)\s+(?:instructions|process|procedures?|guidelines|documents?|requirements|terms)\b|\b(?:must|need\s+to|have\s+to|are\s+required\s+to)\s+(?:follow|go\s+through|respect)\s+(?:the|our)\s+(?:formal\s+|standard\s+|established\s+)?(?:rfp\s+|rfq\s+|procurement\s+|tender\s+|bid\s+)?process\b",
        ),
    ),
    signal(
        "insisted-fairness",
        Family::Insisted,
        1.0,
        Evidence::Body(
            r"\b(?:fair|equal|same)\s+(?:and\s+\w+\s+)?(?:to|for)\s+all\s+(?:vendors|suppliers|bidders|respondents|proposers)\b|\blevel\s+playing\s+field\b",
        ),
    ),
    // Declined.
    signal(
        "declined-not-proceeding",
        Family::Declined,
        3.0,
        Evidence::Body(
            r"\b(?:decided|chosen|elected|opted)\s+not\s+to\s+(?:proceed|move\s+forward|pursue|continue|go\s+ahead)\b|\b(?:will\s+not|won'?t|are\s+not|aren'?t)\s+(?:be\s+)?(?:proceeding|moving\s+forward|pursuing|going\s+ahead)\b",
        ),
    ),
    signal(
        "declined-not-interested",
        Family::Declined,
        3.0,
        Evidence::Body(r"\b(?:not|no\s+longer)\s+interested\b"),
    ),
    signal(
        "declined-selected-other",
        Family::Declined,
        3.0,
        Evidence::Body(
            r"\b(?:selected|chosen|gone\s+with|went\s+with|going\s+with|decided\s+on|signed\s+with|moving\s+forward\s+with|awarded\s+(?:the\s+\w+\s+)?to)\s+(?:another|a\s+different|an\s+alternative|the\s+incumbent|our\s+(?:current|existing|incumbent))\b",
        ),
    ),
    signal(
        "declined-closed",
        Family::Declined,
        2.5,
        Evidence::Body(
            r"\b(?:contract|rfp|rfq|rfi|tender|bid|project|solicitation|procurement|initiative)\s+(?:has\s+(?:already\s+)?been|was|is\s+being|is)\s+(?:awarded|cancell?ed|withdrawn|put\s+on\s+hold|shelved)\b",
        ),
    ),
    signal(
        "declined-remove-us",
        Family::Declined,
        3.0,
        Evidence::Body(
            r"\bplease\s+remove\s+(?:us|me|our)\b|\bremove\s+(?:us|me)\s+from\b|\bunsubscribe\s+(?:us|me)\b|\bdo\s+not\s+contact\s+(?:us|me)\b|\b(?:stop|cease)\s+(?:e-?mailing|contacting)\b",
        ),
    ),
    // Out of office.
    signal(
        "ooo-auto-submitted",
        Family::OutOfOffice,
        3.0,
        Evidence::AutoSubmitted,
    ),
    signal(
        "ooo-subject",
        Family::OutOfOffice,
        3.0,
        Evidence::Subject(
            r"^\s*(?:automatic\s+reply|auto(?:matic)?[\s-]?(?:reply|response)|autoreply|out\s+of\s+(?:the\s+)?office|abwesenheitsnotiz|r[ée]ponse\s+automatique|autosvar)\b",
        ),
    ),
    signal(
        "ooo-away",
        Family::OutOfOffice,
        2.0,
        // Present or future only: "I was out of the office last week" is a person answering.
        Evidence::Body(
            r"\b(?:i\s+am|i'?m|i\s+will\s+be|i'?ll\s+be|currently|will\s+be)\s+(?:currently\s+)?(?:out\s+of\s+(?:the\s+)?office|away|on\s+(?:annual\s+|parental\s+|maternity\s+|paternity\s+|sick\s+|medical\s+)?(?:leave|vacation|holiday)|off\s+work|travell?ing)\b",
        ),
    ),
    signal(
        "ooo-until",
        Family::OutOfOffice,
        1.0,
        Evidence::Body(
            r"\b(?:out\s+of\s+(?:the\s+)?office|on\s+(?:\w+\s+)?leave|away|on\s+vacation|on\s+holiday|off)\s+(?:until|till|through)\b|(?:^|[.!?]\s|\bbe\s|\bam\s|'m\s)back\s+(?:in\s+the\s+office\s+|at\s+work\s+|at\s+my\s+desk\s+)?on\s+(?:\w+day|\d|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)|\breturning\s+(?:to\s+the\s+office\s+)?on\b",
        ),
    ),
    signal(
        "ooo-limited-access",
        Family::OutOfOffice,
        1.0,
        Evidence::Body(r"\b(?:limited|no)\s+access\s+to\s+(?:e-?mail|my\s+e-?mail)\b"),
    ),
];

/// Each signal with its pattern compiled once (`None` for header and attachment signals).
static COMPILED: LazyLock<Vec<(Signal, Option<Regex>)>> = LazyLock::new(|| {
    SIGNALS
        .iter()
        .map(|s| {
            let regex = match s.evidence {
                Evidence::Body(p) | Evidence::Subject(p) => {
                    Some(Regex::new(p).unwrap_or_else(|e| panic!("signal {}: {e}", s.name)))
                }
                Evidence::AutoSubmitted | Evidence::CalendarInvite | Evidence::CalendarDeclined => {
                    None
                }
            };
            (*s, regex)
        })
        .collect()
});

/// Where an out-of-office reply states its return: the words after "until", "back on", ...
static RETURN_PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(?:until|till|through|back\s+(?:in\s+the\s+office\s+|at\s+work\s+|at\s+my\s+desk\s+)?on|returning\s+(?:to\s+the\s+office\s+)?(?:on\s+)?|return\s+(?:to\s+the\s+office\s+)?on)\s+(?P<when>[^.;!?()]{1,40})")
        .expect("return phrase regex")
});

/// Matched text in a reason is cut to about this many characters.
const MAX_MATCHED_CHARS: usize = 80;

/// What the buyer's reply says, with the signals that said it.
pub fn classify_reply(mail: &Mail) -> ReplyVerdict {
    let body = normalise(&strip_quoted(&mail.body));
    let subject = normalise(&mail.subject);
    let mut fired: Vec<(Family, Reason)> = Vec::new();
    for (signal, regex) in COMPILED.iter() {
        let matched = match (signal.evidence, regex) {
            (Evidence::Body(_), Some(regex)) => regex.find(&body).map(|m| readable(m.as_str())),
            (Evidence::Subject(_), Some(regex)) => {
                regex.find(&subject).map(|m| readable(m.as_str()))
            }
            (Evidence::AutoSubmitted, _) => {
                mail.is_auto_submitted.then(|| "Auto-Submitted".to_string())
            }
            (Evidence::CalendarInvite, _) => {
                let answers: Vec<CalendarAnswer> = mail
                    .calendar_parts
                    .iter()
                    .filter_map(|ics| calendar_answer(ics))
                    .collect();
                if let Some(yes) = answers.iter().find(|a| **a != CalendarAnswer::Declined) {
                    Some(format!("PARTSTAT={}", yes.as_str()))
                } else if answers.is_empty() {
                    mail.attachment_names
                        .iter()
                        .find(|name| name.to_ascii_lowercase().ends_with(".ics"))
                        .cloned()
                } else {
                    None
                }
            }
            (Evidence::CalendarDeclined, _) => mail
                .calendar_parts
                .iter()
                .any(|ics| calendar_answer(ics) == Some(CalendarAnswer::Declined))
                .then(|| "PARTSTAT=DECLINED".to_string()),
            (Evidence::Body(_) | Evidence::Subject(_), None) => None,
        };
        if let Some(matched) = matched {
            fired.push((
                signal.family,
                Reason {
                    signal: signal.name.to_string(),
                    weight: signal.weight,
                    matched,
                },
            ));
        }
    }

    let total = |family: Family| -> f64 {
        fired
            .iter()
            .filter(|(f, _)| *f == family)
            .map(|(_, r)| r.weight)
            .sum()
    };
    // `max_by` keeps the last of equal elements, so the families are walked in reverse to let
    // the earlier one in `FAMILIES` win a tie.
    let winner = FAMILIES
        .iter()
        .rev()
        .map(|&f| (f, total(f)))
        .filter(|(_, t)| *t > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(f, _)| f);

    let kind = match winner {
        None => ReplyKind::Other,
        Some(Family::Agreed) => ReplyKind::AgreedToCall,
        Some(Family::Insisted) => ReplyKind::InsistedOnProcess,
        Some(Family::Declined) => ReplyKind::Declined,
        Some(Family::OutOfOffice) => ReplyKind::OutOfOffice {
            returns_on: return_date(mail, &body),
        },
    };
    // Stable: within each part, signals stay in table order.
    fired.sort_by_key(|(f, _)| Some(*f) != winner);
    ReplyVerdict {
        kind,
        reasons: fired.into_iter().map(|(_, r)| r).collect(),
        cancels_follow_up: !matches!(kind, ReplyKind::OutOfOffice { .. }),
    }
}

/// The buyer's own words: lines quoted with ">" are dropped, and reading stops at the first line
/// that opens quoted history ("On ... wrote:", "-----Original Message-----", an Outlook
/// "From:/Sent:" block, a forwarded message).
fn strip_quoted(body: &str) -> String {
    let lines: Vec<&str> = body.lines().collect();
    let mut kept = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if opens_quoted_history(line, &lines[i + 1..]) {
            break;
        }
        if !line.starts_with('>') {
            kept.push(line);
        }
    }
    kept.join("\n")
}

static HISTORY_RULE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^-{2,}\s*(?:original\s+message|forwarded\s+message)|^on\s.*wrote\s*:\s*$|^am\s.*schrieb[^:]*:\s*$")
        .expect("history rule regex")
});

static HEADER_FIELD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)^(?:sent|date|to|subject)\s*:").expect("header field regex"));

fn opens_quoted_history(line: &str, after: &[&str]) -> bool {
    if HISTORY_RULE.is_match(line) {
        return true;
    }
    let lower = line.to_ascii_lowercase();
    // "On Tue, 2 Mar 2027 at 10:00, Alex Rivera <alex@northwind.example>\nwrote:": clients wrap
    // the attribution line.
    if lower.starts_with("on ")
        && after
            .iter()
            .take(2)
            .any(|next| next.trim_end().to_ascii_lowercase().ends_with("wrote:"))
    {
        return true;
    }
    // Outlook quotes without a rule: "From: ..." followed by "Sent: ..." and friends.
    lower.starts_with("from:")
        && after
            .iter()
            .take(3)
            .any(|next| HEADER_FIELD.is_match(next.trim()))
}

/// Lower-cased, typographic apostrophes made plain, whitespace runs (wrapped lines) as one space.
fn normalise(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(['\u{2019}', '\u{2018}'], "'")
        .to_lowercase()
}

fn readable(matched: &str) -> String {
    match matched.char_indices().nth(MAX_MATCHED_CHARS) {
        Some((cut, _)) => format!("{}…", &matched[..cut]),
        None => matched.to_string(),
    }
}

/// How an attendee's calendar answered an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarAnswer {
    Accepted,
    Tentative,
    Declined,
}

impl CalendarAnswer {
    pub fn as_str(self) -> &'static str {
        match self {
            CalendarAnswer::Accepted => "ACCEPTED",
            CalendarAnswer::Tentative => "TENTATIVE",
            CalendarAnswer::Declined => "DECLINED",
        }
    }
}

/// The answer an iCalendar object carries when it is a reply to an invitation (`METHOD:REPLY`,
/// RFC 5546) with an attendee's `PARTSTAT` of ACCEPTED, TENTATIVE or DECLINED; `None` for an
/// invitation itself, a cancellation or anything else. Folded lines (RFC 5545 3.1) are unfolded
/// first, since a long ATTENDEE line is usually folded before its PARTSTAT.
pub fn calendar_answer(ics: &str) -> Option<CalendarAnswer> {
    let unfolded = ics
        .replace("\r\n ", "")
        .replace("\r\n\t", "")
        .replace("\n ", "")
        .replace("\n\t", "");
    let mut is_reply = false;
    let mut answer = None;
    for line in unfolded.lines() {
        let line = line.trim_end();
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let mut params = name.split(';');
        let property = params.next().unwrap_or("").to_ascii_uppercase();
        match property.as_str() {
            "METHOD" => is_reply = value.trim().eq_ignore_ascii_case("REPLY"),
            "ATTENDEE" if answer.is_none() => {
                answer = params.find_map(|param| {
                    let (key, value) = param.split_once('=')?;
                    if !key.trim().eq_ignore_ascii_case("PARTSTAT") {
                        return None;
                    }
                    match value.trim().trim_matches('"').to_ascii_uppercase().as_str() {
                        "ACCEPTED" => Some(CalendarAnswer::Accepted),
                        "TENTATIVE" => Some(CalendarAnswer::Tentative),
                        "DECLINED" => Some(CalendarAnswer::Declined),
                        _ => None,
                    }
                })
            }
            _ => {}
        }
    }
    answer.filter(|_| is_reply)
}

/// The first return date an out-of-office reply states, read by the deadline extractor against
/// the mail's Date header. The extractor only reports dates that something is due on, so each
/// return phrase is handed to it framed as one. A date it flags ambiguous (a weekday that does
/// not fit the date, no Date header to resolve "Monday" against) is no date.
fn return_date(mail: &Mail, body: &str) -> Option<NaiveDate> {
    RETURN_PHRASE.captures_iter(body).find_map(|caps| {
        let framed = Mail {
            subject: String::new(),
            body: format!("Due {}.", caps.name("when")?.as_str().trim()),
            ..mail.clone()
        };
        let deadline = extract(&framed).deadlines.into_iter().next()?;
        if deadline.ambiguous {
            None
        } else {
            deadline.date
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail_with(headers: &str, body: &str) -> Mail {
        let raw = format!("{headers}\r\n\r\n{body}\r\n");
        Mail::parse(raw.as_bytes()).unwrap()
    }

    fn reply(body: &str) -> Mail {
        mail_with(
            "From: Pat Buyer <pat@city.example>\r\nTo: alex@northwind.example\r\n\
Subject: Re: RFP 2027-014\r\nDate: Wed, 3 Mar 2027 09:15:00 +0000",
            body,
        )
    }

    fn kind_of(body: &str) -> ReplyKind {
        classify_reply(&reply(body)).kind
    }

    fn signals(verdict: &ReplyVerdict) -> Vec<&str> {
        verdict.reasons.iter().map(|r| r.signal.as_str()).collect()
    }

    #[test]
    fn agreed_signals() {
        for body in [
            "Thanks Alex, happy to set up a call next week.",
            "Good points. Let's schedule something for Thursday.",
            "How about Tuesday at 2?",
            "Sure, a quick call works.",
            "I've looped in Dana Whitfield, who owns the project.",
            "Can you send over a few times that suit you?",
            "Does Tuesday at 10 work for you and Maria?",
        ] {
            assert_eq!(kind_of(body), ReplyKind::AgreedToCall, "{body}");
        }
    }

    #[test]
    fn a_calendar_invite_is_agreement() {
        let raw = "From: pat@city.example\r\nSubject: Invitation: Discovery call\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
See invite.\r\n--b\r\nContent-Type: text/calendar\r\nContent-Disposition: attachment; \
filename=\"invite.ics\"\r\n\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n--b--\r\n";
        let verdict = classify_reply(&Mail::parse(raw.as_bytes()).unwrap());
        assert_eq!(verdict.kind, ReplyKind::AgreedToCall);
        assert_eq!(verdict.reasons[0].matched, "invite.ics");
    }

    fn calendar_reply(partstat: &str) -> String {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\n\
             UID:pushback-1@northwind.example\r\nATTENDEE;CN=Pat Buyer;\r\n \
             PARTSTAT={partstat}:mailto:pat@city.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    }

    #[test]
    fn calendar_answers_are_read_from_replies_only() {
        assert_eq!(
            calendar_answer(&calendar_reply("ACCEPTED")),
            Some(CalendarAnswer::Accepted)
        );
        assert_eq!(
            calendar_answer(&calendar_reply("tentative")),
            Some(CalendarAnswer::Tentative)
        );
        assert_eq!(
            calendar_answer(&calendar_reply("DECLINED")),
            Some(CalendarAnswer::Declined)
        );
        let invitation = calendar_reply("NEEDS-ACTION").replace("METHOD:REPLY", "METHOD:REQUEST");
        assert_eq!(calendar_answer(&invitation), None);
        let request = calendar_reply("ACCEPTED").replace("METHOD:REPLY", "METHOD:REQUEST");
        assert_eq!(calendar_answer(&request), None, "an organiser's own copy");
        assert_eq!(calendar_answer("not a calendar"), None);
    }

    fn with_calendar_part(ics: &str) -> Mail {
        let raw = format!(
            "From: pat@city.example\r\nSubject: Accepted: Discovery call\r\n\
             Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n--b\r\n\
             Content-Type: text/plain\r\n\r\nPat Buyer has answered.\r\n--b\r\n\
             Content-Type: text/calendar; method=REPLY\r\n\r\n{ics}--b--\r\n"
        );
        Mail::parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn an_accepted_calendar_reply_is_agreement_and_a_declined_one_is_not() {
        let accepted = classify_reply(&with_calendar_part(&calendar_reply("ACCEPTED")));
        assert_eq!(accepted.kind, ReplyKind::AgreedToCall);
        assert_eq!(accepted.reasons[0].matched, "PARTSTAT=ACCEPTED");
        let declined = classify_reply(&with_calendar_part(&calendar_reply("DECLINED")));
        assert_eq!(declined.kind, ReplyKind::Declined);
        assert_eq!(declined.reasons[0].signal, "declined-calendar-reply");
    }

    #[test]
    fn insisted_signals() {
        for body in [
            "Please submit through the portal.",
            "We cannot meet with vendors during the process.",
            "All questions must be submitted in writing by Friday.",
            "Per our procurement policy, this is how we run it.",
            "Please follow the RFP instructions.",
            "We are in the cone of silence until award.",
        ] {
            assert_eq!(kind_of(body), ReplyKind::InsistedOnProcess, "{body}");
        }
    }

    #[test]
    fn declined_signals() {
        for body in [
            "We have decided not to proceed with this purchase.",
            "We are not interested at this time.",
            "We have selected another vendor.",
            "Please remove us from your list.",
            "The RFP has been cancelled.",
        ] {
            assert_eq!(kind_of(body), ReplyKind::Declined, "{body}");
        }
    }

    #[test]
    fn out_of_office_reads_the_return_date_from_the_date_header() {
        let verdict = classify_reply(&reply("I am out of the office and back on Monday 8 March."));
        assert_eq!(
            verdict.kind,
            ReplyKind::OutOfOffice {
                returns_on: NaiveDate::from_ymd_opt(2027, 3, 8)
            }
        );
        assert!(!verdict.cancels_follow_up);
        assert_eq!(
            kind_of("I'm on leave until Friday with no access to email."),
            ReplyKind::OutOfOffice {
                returns_on: NaiveDate::from_ymd_opt(2027, 3, 5)
            }
        );
    }

    #[test]
    fn out_of_office_without_a_sure_date_has_none() {
        // No date at all; a weekday that contradicts the date (8 March 2027 is a Monday).
        for body in [
            "I am currently out of the office with limited access to email.",
            "I am away until Tuesday 8 March.",
        ] {
            assert_eq!(
                kind_of(body),
                ReplyKind::OutOfOffice { returns_on: None },
                "{body}"
            );
        }
        // No Date header to resolve "Monday" against.
        let undated = mail_with(
            "From: pat@city.example\r\nSubject: Out of office",
            "I will be away until Monday.",
        );
        assert_eq!(
            classify_reply(&undated).kind,
            ReplyKind::OutOfOffice { returns_on: None }
        );
    }

    #[test]
    fn an_auto_submitted_header_alone_is_out_of_office() {
        let mail = mail_with(
            "From: pat@city.example\r\nSubject: Re: RFP 2027-014\r\nAuto-Submitted: auto-replied",
            "Thank you for your message.",
        );
        let verdict = classify_reply(&mail);
        assert_eq!(verdict.kind, ReplyKind::OutOfOffice { returns_on: None });
        assert_eq!(signals(&verdict), ["ooo-auto-submitted"]);
        assert!(!verdict.cancels_follow_up);
    }

    #[test]
    fn a_person_back_from_leave_is_not_out_of_office() {
        // Regression: past tense must not read as an autoreply and keep the follow-up alive.
        let verdict = classify_reply(&reply(
            "Sorry, I was out of the office last week. Happy to set up a call.",
        ));
        assert_eq!(verdict.kind, ReplyKind::AgreedToCall);
        assert!(verdict.cancels_follow_up);
    }

    #[test]
    fn strongest_family_wins_and_the_others_stay_as_reasons() {
        let verdict = classify_reply(&reply(
            "I've looped in Dana, but please submit through the portal; we cannot meet with \
vendors during the evaluation.",
        ));
        assert_eq!(verdict.kind, ReplyKind::InsistedOnProcess);
        assert_eq!(
            signals(&verdict),
            [
                "insisted-portal",
                "insisted-no-meetings",
                "agreed-looped-in"
            ]
        );
    }

    #[test]
    fn a_tie_goes_to_the_reading_that_asks_least() {
        // One settling phrase each way (2.0 against 2.0): the process answer wins over a yes.
        let verdict = classify_reply(&reply(
            "Happy to set up a call once you submit through the portal.",
        ));
        assert_eq!(verdict.kind, ReplyKind::InsistedOnProcess);
    }

    #[test]
    fn no_signal_is_other_and_still_cancels() {
        let verdict = classify_reply(&reply("Thanks, we'll review and get back to you."));
        assert_eq!(verdict.kind, ReplyKind::Other);
        assert!(verdict.reasons.is_empty());
        assert!(verdict.cancels_follow_up);
    }

    #[test]
    fn quoted_pushback_is_not_read() {
        let bodies = [
            // Bottom-posted attribution, wrapped by the client.
            "Thanks, noted.\n\nOn Wed, 3 Mar 2027 at 09:00, Alex Rivera <alex@northwind.example>\n\
wrote:\n> Would you be happy to set up a call? Let's schedule 20 minutes.\n",
            // Outlook rule.
            "Thanks, noted.\n\n-----Original Message-----\nFrom: Alex Rivera\n\
Happy to set up a call. Let's schedule 20 minutes.\n",
            // Outlook header block without a rule.
            "Thanks, noted.\n\nFrom: Alex Rivera <alex@northwind.example>\nSent: Wednesday\n\
Subject: RE: RFP\n\nHappy to set up a call.\n",
            // Interleaved "> " lines between the buyer's own.
            "> Happy to set up a call?\nThanks, noted.\n> Let's schedule 20 minutes.\n",
        ];
        for body in bodies {
            let verdict = classify_reply(&reply(body));
            assert_eq!(verdict.kind, ReplyKind::Other, "{body}");
        }
    }

    #[test]
    fn strip_quoted_keeps_the_buyers_own_lines() {
        let body = "Pat here.\n> quoted\nStill Pat.\nOn Tue, 2 Mar 2027, Alex wrote:\nnot Pat";
        assert_eq!(strip_quoted(body), "Pat here.\nStill Pat.");
        assert_eq!(
            strip_quoted("Yes.\n----- Forwarded message -----\nAway until Monday"),
            "Yes."
        );
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn thread_check(headers: &str) -> ThreadMatch {
        let ours = ids(&["pushback-1@northwind.example"]);
        let reps = ids(&["alex@northwind.example", "alex.rivera@northwind.example"]);
        let thread = Thread {
            our_message_ids: &ours,
            original_message_id: Some("rfp-7@city.example"),
            original_subject: "RFP 2027-014",
            buyer_domain: Some("city.example"),
            rep_addresses: &reps,
        };
        match_thread(&mail_with(headers, "Hello."), &thread)
    }

    #[test]
    fn thread_by_in_reply_to_and_by_references_only() {
        assert_eq!(
            thread_check(
                "From: pat@elsewhere.example\r\nSubject: Hi\r\nIn-Reply-To: <pushback-1@northwind.example>"
            ),
            ThreadMatch::ByReference
        );
        assert_eq!(
            thread_check(
                "From: pat@elsewhere.example\r\nSubject: Hi\r\nReferences: <rfp-7@city.example> <pushback-1@northwind.example>"
            ),
            ThreadMatch::ByReference
        );
    }

    #[test]
    fn thread_by_subject_only_from_the_buyers_domain() {
        assert_eq!(
            thread_check("From: pat@city.example\r\nSubject: RE: AW: Re: RFP 2027-014"),
            ThreadMatch::BySubject
        );
        assert_eq!(
            thread_check("From: pat@purchasing.city.example\r\nSubject: re: rfp 2027-014"),
            ThreadMatch::BySubject
        );
        assert_eq!(
            thread_check("From: pat@othercity.example\r\nSubject: RE: RFP 2027-014"),
            ThreadMatch::NotInThread
        );
        assert_eq!(
            thread_check("From: pat@city.example\r\nSubject: RFP 2027-015"),
            ThreadMatch::NotInThread
        );
    }

    #[test]
    fn the_original_alone_does_not_thread_and_is_not_its_own_reply() {
        // Regression: an addendum to all bidders references the solicitation, not our pushback.
        assert_eq!(
            thread_check(
                "From: pat@city.example\r\nSubject: Addendum 1\r\nReferences: <rfp-7@city.example>"
            ),
            ThreadMatch::NotInThread
        );
        assert_eq!(
            thread_check(
                "From: pat@city.example\r\nSubject: RFP 2027-014\r\nMessage-ID: <rfp-7@city.example>"
            ),
            ThreadMatch::NotInThread
        );
    }

    #[test]
    fn the_reps_own_mail_is_never_the_reply() {
        assert_eq!(
            thread_check(
                "From: Alex Rivera <Alex.Rivera@northwind.example>\r\nSubject: Re: RFP 2027-014\r\nIn-Reply-To: <pushback-1@northwind.example>"
            ),
            ThreadMatch::FromRep
        );
        // A Sent copy carries our own Message-ID even when sent from an alias.
        assert_eq!(
            thread_check(
                "From: sales@northwind.example\r\nSubject: Re: RFP 2027-014\r\nMessage-ID: <pushback-1@northwind.example>"
            ),
            ThreadMatch::FromRep
        );
    }

    #[test]
    fn empty_subjects_never_match() {
        let ours = ids(&[]);
        let thread = Thread {
            our_message_ids: &ours,
            original_message_id: None,
            original_subject: "",
            buyer_domain: Some("city.example"),
            rep_addresses: &ours,
        };
        let mail = mail_with("From: pat@city.example\r\nSubject: Re:", "Hello.");
        assert_eq!(match_thread(&mail, &thread), ThreadMatch::NotInThread);
    }
}

//! Deadline phrases: finds the dates a buyer sets for the supplier ("Proposals are due March 3,
//! 2027 at 5:00 PM EST", "RFP DUE TUESDAY!", "questions by 10/23/01") and reads their kind, time
//! and zone from the words around them. Relative and partial dates are resolved against the
//! message's Date header, the only clock the core has. Dates that are not the buyer's deadlines
//! (quoted header dates, issue dates, historic dates, contract terms) are left out, because every
//! false submission deadline becomes a false reminder for the rep.

use super::zones::{self, ZoneReading};
use crate::core::model::{Deadline, DeadlineKind};
use chrono::{Datelike, Days, Months, NaiveDate, NaiveTime, Weekday};
use regex::Regex;
use std::ops::Range;
use std::sync::LazyLock;

/// How to read a numeric date whose two first numbers are both 12 or less ("04/05/2027").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateOrder {
    MonthFirst,
    DayFirst,
}

/// How far a time may sit from its date and still belong to it, in bytes.
const TIME_REACH: usize = 48;
/// How much text before a date is read for its kind, in bytes.
const KIND_REACH_LEFT: usize = 160;
/// How much text after a date is read for its kind when nothing before it names one.
const KIND_REACH_RIGHT: usize = 80;
/// Longest sentence kept as a deadline's `text`.
const MAX_TEXT_CHARS: usize = 240;

/// Every deadline in the subject and the body. `base` is the local date of the Date header;
/// `order` is the clue for day/month order of numeric dates, when the sender gives one.
pub fn find_deadlines(
    subject: &str,
    body: &str,
    base: Option<NaiveDate>,
    order: Option<DateOrder>,
) -> Vec<Deadline> {
    let mut found: Vec<Deadline> = Vec::new();
    let subject = strip_reply_prefixes(subject);
    for text in [subject, body] {
        if !might_hold_a_date(text) {
            continue;
        }
        // One pass over the whole text finds the dates; only their sentences are read further.
        let all: Vec<Mention> = DATE
            .captures_iter(text)
            .filter_map(|caps| mention(text, &caps, base, order))
            .collect();
        if all.is_empty() {
            continue;
        }
        // Sentences are found around the dates only, not over the whole body.
        let mut rest = &all[..];
        while let Some(first) = rest.first() {
            if is_header_line(line_of(text, first.span.start)) {
                rest = &rest[1..];
                continue;
            }
            let sentence = sentence_around(text, first.span.clone());
            let count = rest
                .iter()
                .take_while(|m| m.span.start < sentence.end)
                .count()
                .max(1);
            let (here, later) = rest.split_at(count);
            rest = later;
            let here: Vec<Mention> = here
                .iter()
                .filter(|m| m.span.end <= sentence.end)
                .filter(|m| !is_header_line(line_of(text, m.span.start)))
                .map(|m| m.within(sentence.start))
                .collect();
            if !here.is_empty() {
                deadlines_in_sentence(&text[sentence], &here, base, &mut found);
            }
        }
    }
    found
}

/// Cheap test before any regex runs: a date needs a digit, a weekday or a relative word.
fn might_hold_a_date(text: &str) -> bool {
    text.bytes().any(|b| b.is_ascii_digit()) || PREFILTER.is_match(text)
}

static PREFILTER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)day(?-u:\b)|tomorrow|tonight|this (?:morning|afternoon|evening)|end of")
        .expect("prefilter regex")
});

fn strip_reply_prefixes(subject: &str) -> &str {
    let mut s = subject.trim();
    loop {
        let lower = s.get(..4).map(str::to_ascii_lowercase).unwrap_or_default();
        if lower.starts_with("re:") || lower.starts_with("fw:") {
            s = s[3..].trim_start();
        } else if lower == "fwd:" {
            s = s[4..].trim_start();
        } else {
            return s;
        }
    }
}

/// Lines of quoted and forwarded header blocks ("Sent: Monday, September 24, 2001", "On Tue, 2
/// Mar 2027 Pat wrote:", "Forwarded by X on 07/14/2000"): their dates are when mail was sent,
/// never a deadline, and they end any sentence around them.
fn is_header_line(line: &str) -> bool {
    let line = unquoted(line);
    // Every header-line form has a colon or starts a "----- Forwarded"/"-----Original" rule: the
    // cheap test spares the regex on ordinary lines.
    (line.as_bytes().contains(&b':') || line.starts_with('-')) && HEADER_LINE.is_match(line)
}

/// A line without its quote markers ("> > ") and surrounding spaces.
fn unquoted(line: &str) -> &str {
    line.trim_start_matches(|c: char| c == '>' || c.is_ascii_whitespace())
        .trim_ascii_end()
}

/// The line (without its newline) holding byte `pos`.
fn line_of(text: &str, pos: usize) -> &str {
    let start = text[..pos].rfind('\n').map_or(0, |p| p + 1);
    let end = text[pos..].find('\n').map_or(text.len(), |p| pos + p);
    &text[start..end]
}

static HEADER_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)^(?:(?:sent|date|from|to|cc|bcc|subject|x-[A-Za-z0-9_-]+)\s*:",
        r"|on(?-u:\b).{0,120}(?-u:\b)wrote:?\s*$",
        r"|.*(?:original message|forwarded by|forwarded message)",
        r"|.*(?-u:\b)on \d{1,2}/\d{1,2}/\d{2,4}\s+\d{1,2}:\d{2}",
        r"|\d{1,2}/\d{1,2}/\d{2,4}\s+\d{1,2}:\d{2}(?::\d{2})?\s*(?:[ap]m)?\s*$",
        r")"
    ))
    .expect("header line regex")
});

/// The sentence around a date, as a byte range: back to the previous sentence end and on to the
/// next. Wrapped lines of a paragraph are joined; short lines, list items, "Label: value" lines
/// and header lines stand alone, since deadline schedules are often written one line per date.
fn sentence_around(text: &str, span: Range<usize>) -> Range<usize> {
    let bytes = text.as_bytes();
    let mut start = span.start;
    while start > 0 {
        let at = start - 1;
        let ends = match bytes[at] {
            b'\n' => newline_ends_sentence(text, at),
            mark @ (b'.' | b'!' | b'?') => ends_sentence_at(text, at, mark == b'.'),
            _ => false,
        };
        if ends {
            break;
        }
        start = at;
    }
    let mut end = span.end.max(start);
    while end < bytes.len() {
        match bytes[end] {
            b'\n' if newline_ends_sentence(text, end) => break,
            mark @ (b'.' | b'!' | b'?') if ends_sentence_at(text, end, mark == b'.') => {
                end += 1;
                break;
            }
            _ => end += 1,
        }
    }
    start..end
}

/// Whether the newline at byte `at` ends a sentence: after a blank, short, label or header line,
/// or before a blank line, a list item, a label or a header line.
fn newline_ends_sentence(text: &str, at: usize) -> bool {
    let line = line_of(text, at);
    let next = if at + 1 < text.len() {
        line_of(text, at + 1)
    } else {
        ""
    };
    let (line_text, next_text) = (unquoted(line), unquoted(next));
    line_text.is_empty()
        || next_text.is_empty()
        || line_text.len() < 45
        || line_text.ends_with(':')
        || starts_list_item_or_label(next_text)
        || is_header_line(line)
        || is_header_line(next)
}

/// A full stop, "!" or "?" ends a sentence when a space and a capital (or the line end) follow,
/// and a full stop is not that of "p.m.", "No." or "Inc.".
fn ends_sentence_at(text: &str, at: usize, full_stop: bool) -> bool {
    let rest = &text[at + 1..];
    let after = rest.trim_start_matches([' ', '\t']);
    rest.chars().next().is_none_or(char::is_whitespace)
        && (after.is_empty() || after.starts_with(|c: char| c.is_uppercase() || c == '\n'))
        && !(full_stop && ends_with_abbreviation(&text[..at]))
}

/// "- item", "* item", "\u{2022} item", "1. item", "2) item" or "Proposals due: ...".
fn starts_list_item_or_label(line: &str) -> bool {
    let bytes = line.as_bytes();
    match bytes.first() {
        Some(b'-' | b'*') => true,
        _ if line.starts_with('\u{2022}') => true,
        Some(b'0'..=b'9') => {
            let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            digits <= 2
                && matches!(bytes.get(digits), Some(b'.' | b')'))
                && bytes.get(digits + 1).is_some_and(u8::is_ascii_whitespace)
        }
        Some(b'A'..=b'Z') => line
            .bytes()
            .take(42)
            .take_while(|b| b.is_ascii_alphabetic() || matches!(b, b' ' | b'/' | b'&' | b'-'))
            .count()
            .checked_add(0)
            .is_some_and(|n| bytes.get(n) == Some(&b':')),
        _ => false,
    }
}

fn ends_with_abbreviation(before: &str) -> bool {
    let word = before
        .rsplit(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("");
    if word.ends_with("a.m")
        || word.ends_with("p.m")
        || word.ends_with("A.M")
        || word.ends_with("P.M")
    {
        return true;
    }
    if word.len() > 6 {
        return false;
    }
    let word = word.to_ascii_lowercase();
    word.len() == 1
        || word.ends_with("a.m")
        || word.ends_with("p.m")
        || matches!(
            word.as_str(),
            "a.m"
                | "p.m"
                | "no"
                | "nos"
                | "inc"
                | "co"
                | "corp"
                | "ltd"
                | "mr"
                | "mrs"
                | "ms"
                | "dr"
                | "st"
                | "jan"
                | "feb"
                | "mar"
                | "apr"
                | "jun"
                | "jul"
                | "aug"
                | "sep"
                | "sept"
                | "oct"
                | "nov"
                | "dec"
                | "e.g"
                | "i.e"
                | "vs"
                | "approx"
                | "u.s"
        )
}

/// A date found in a sentence, before its kind is known.
#[derive(Debug, Clone)]
struct Mention {
    span: Range<usize>,
    date: Option<NaiveDate>,
    ambiguous: bool,
    /// The date carried its own year (so a past one is history, not a deadline).
    explicit_year: bool,
    /// "today", "this afternoon": as often a report of what happened as a deadline.
    today_like: bool,
    /// "EOD", "end of day": a time of day, not a date, when a date follows it.
    day_end: bool,
}

/// `mentions` are the dates in `sentence`, with spans relative to it.
impl Mention {
    /// The same mention with its span relative to a sentence starting at `offset`.
    fn within(&self, offset: usize) -> Mention {
        Mention {
            span: self.span.start - offset..self.span.end - offset,
            ..self.clone()
        }
    }
}

fn deadlines_in_sentence(
    sentence: &str,
    mentions: &[Mention],
    base: Option<NaiveDate>,
    found: &mut Vec<Deadline>,
) {
    let times = times_in(sentence, mentions);
    // "by EOD tomorrow": the words before "EOD" belong to "tomorrow".
    let mut carried_left = None;
    for (index, m) in mentions.iter().enumerate() {
        let next = mentions.get(index + 1);
        if m.day_end
            && next.is_some_and(|n| {
                matches!(
                    sentence[m.span.end..n.span.start].trim_ascii(),
                    "" | "," | "on"
                )
            })
        {
            carried_left = Some(m.span.start);
            continue;
        }
        if is_part_of_range(sentence, m, mentions.get(index + 1)) {
            continue;
        }
        if let (Some(date), Some(base), true) = (m.date, base, m.explicit_year) {
            // History, or the issue date of the solicitation: not something the supplier must meet.
            if date < base - Days::new(1) {
                continue;
            }
        }
        let left_bound = index
            .checked_sub(1)
            .map_or(0, |p| mentions[p].span.end)
            .max(floor_boundary(
                sentence,
                m.span.start.saturating_sub(KIND_REACH_LEFT),
            ));
        let left_bound = carried_left.take().map_or(left_bound, |carried| {
            // From before "EOD", not from its end.
            let before_day_end = index.checked_sub(2).map_or(0, |p| mentions[p].span.end);
            before_day_end.max(floor_boundary(
                sentence,
                carried.saturating_sub(KIND_REACH_LEFT),
            ))
        });
        let left = &sentence[left_bound..m.span.start];
        let right_end = mentions
            .get(index + 1)
            .map_or(sentence.len(), |n| n.span.start)
            .min(floor_boundary(sentence, m.span.end + KIND_REACH_RIGHT));
        let right = &sentence[m.span.end..right_end];
        // The kind test is the cheaper one and rules out most dates, so it goes first.
        let Some(kind) = kind_of(left, right) else {
            continue;
        };
        if !is_demand(sentence, left, right, m) {
            continue;
        }
        let (time, zone, time_doubt) = match nearest_time(&times, m) {
            Some(t) => (Some(t.time), t.zone.clone(), t.ambiguous),
            None => (None, None, false),
        };
        let deadline = Deadline {
            kind,
            date: m.date,
            time,
            zone,
            text: clip(sentence),
            ambiguous: m.ambiguous || time_doubt,
        };
        add_deduplicated(found, deadline);
    }
}

/// Same date and kind twice (subject and body, or a reminder line) is one deadline; the later
/// mention may add the time or zone the first lacked.
fn add_deduplicated(found: &mut Vec<Deadline>, new: Deadline) {
    let same = found.iter_mut().find(|d| {
        d.kind == new.kind && d.date == new.date && (d.date.is_some() || d.text == new.text)
    });
    match same {
        Some(existing) => {
            if existing.time.is_none() && new.time.is_some() {
                existing.time = new.time;
                existing.zone = new.zone;
                existing.text = new.text;
            } else if existing.zone.is_none() && new.zone.is_some() && existing.time == new.time {
                existing.zone = new.zone;
            }
        }
        None => found.push(new),
    }
}

fn clip(sentence: &str) -> String {
    let joined = sentence
        .split_whitespace()
        // Quote markers of quoted lines are not part of the buyer's words.
        .map(|word| word.trim_start_matches('>'))
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    match joined.char_indices().nth(MAX_TEXT_CHARS) {
        Some((cut, _)) => format!("{}...", &joined[..cut]),
        None => joined,
    }
}

fn floor_boundary(s: &str, mut index: usize) -> usize {
    index = index.min(s.len());
    while !s.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn tail(s: &str, bytes: usize) -> &str {
    let start = s.len().saturating_sub(bytes);
    let mut start = start;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// "from June 1 through August 31", "January 1, 2002 - December 31, 2002": a contract or
/// delivery period, not a deadline.
fn is_part_of_range(sentence: &str, m: &Mention, next: Option<&Mention>) -> bool {
    if RANGE_BEFORE.is_match(tail(&sentence[..m.span.start], 24)) {
        return true;
    }
    next.is_some_and(|n| RANGE_BETWEEN.is_match(&sentence[m.span.end..n.span.start]))
}

static RANGE_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)(?:from|through|thru|between|beginning|starting|commencing|effective)\s+(?:on\s+|the\s+)?$|[-\u{2013}]\s*$")
        .expect("range regex")
});

static RANGE_BETWEEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^\s*(?:-|\u{2013}|to|through|thru|until|till|and)\s*$").expect("range regex")
});

/// Whether the words around a date make it something the supplier must meet rather than a
/// report of the past: "received your question today", "the RFP received Friday", "intends to
/// issue an RFP on July 13", "SAN FRANCISCO, Nov. 26, 2001 -" (a press dateline).
fn is_demand(sentence: &str, left: &str, right: &str, m: &Mention) -> bool {
    if NOT_A_DEADLINE.is_match(tail(left, 40))
        || LAST.is_match(tail(left, 8))
        || DATELINE.is_match(&sentence[..m.span.start])
    {
        return false;
    }
    if let Some(caps) = PARTICIPLE_BEFORE.captures(left) {
        let word = caps
            .name("word")
            .map_or("", |w| w.as_str())
            .to_ascii_lowercase();
        if !PLANNED.contains(&word.as_str()) {
            return false;
        }
    }
    if m.today_like
        && (PAST_TENSE.is_match(tail(left, 60))
            || PAST_TENSE.is_match(right.get(..15).unwrap_or(right)))
    {
        return false;
    }
    // "intends to issue an RFP ... on July 13": the issue date, unless a deadline word follows.
    ISSUE.find_iter(left).last().is_none_or(|issue| {
        let after = &left[issue.end()..];
        GENERIC_DEADLINE.is_match(after) || BY_OR_BEFORE.is_match(after)
    })
}

/// Participles that put a date in the future ("scheduled on", "extended to").
const PLANNED: [&str; 17] = [
    "scheduled",
    "rescheduled",
    "planned",
    "extended",
    "postponed",
    "moved",
    "required",
    "requested",
    "expected",
    "anticipated",
    "targeted",
    "estimated",
    "projected",
    "needed",
    "delayed",
    "revised",
    "amended",
];

static PARTICIPLE_BEFORE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)(?P<word>[a-z]{3,}ed)\s+(?:on\s+)?$").expect("participle regex")
});

static PAST_TENSE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?-u:\b)[a-z]{3,}ed(?-u:\b)").expect("past tense regex"));

static ISSUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)(?:issue|release|publish|post|advertise)[sd]?(?-u:\b)")
        .expect("issue regex")
});

/// "last Friday" is past; "last day for questions: March 5" is not, so only the word right
/// before the date counts.
static LAST: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?-u:\b)last\s+$").expect("last regex"));

static BY_OR_BEFORE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)(?-u:\b)(?:by|before|until)(?-u:\b)").expect("by regex"));

static DATELINE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*[A-Z][A-Z .'&-]{2,},\s*$").expect("dateline regex"));

/// Words just before a date that make it the past or a fact rather than a demand on the supplier.
static NOT_A_DEADLINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)(?:issued?|released?|dated|sent|posted|published|advertised|signed|executed|spoke|talked|discussed|received on|provided on|submitted on|as of|since|letters? of|born|founded)(?-u:\b)[^.]{0,30}$")
        .expect("past regex")
});

/// The kind of deadline, from the words nearest before the date (a process step named anywhere
/// before it wins, since "pre-bid conference call meeting" ends in a generic word), else from
/// the words after it. `None` when nothing says this date is a deadline at all.
fn kind_of(left: &str, right: &str) -> Option<DeadlineKind> {
    let mut nearest_noun = None;
    let mut nearest_act = None;
    for word in KIND.find_iter(left) {
        match kind_of_word(word.as_str()) {
            Some((kind @ (DeadlineKind::PreBid | DeadlineKind::IntentToBid), _)) => {
                return Some(kind);
            }
            Some((kind, true)) => nearest_act = Some(kind),
            Some((kind, false)) => nearest_noun = Some(kind),
            None => {}
        }
    }
    // What is due ("questions must be submitted") says more than the verb near the date.
    if let Some(kind) = nearest_noun.or(nearest_act) {
        return Some(kind);
    }
    let mut right_act = None;
    for word in KIND.find_iter(right) {
        match kind_of_word(word.as_str()) {
            Some((kind, false)) => return Some(kind),
            Some((kind, true)) => right_act = right_act.or(Some(kind)),
            None => {}
        }
    }
    if right_act.is_some() {
        return right_act;
    }
    // "Due date: Friday", "your deadline is July 17": a deadline with no noun is the submission.
    (GENERIC_DEADLINE.is_match(left) || GENERIC_DEADLINE.is_match(right))
        .then_some(DeadlineKind::Submission)
}

/// The kind a keyword names, and whether it is only a verb ("submit", "respond"), which yields
/// to a noun ("questions", "proposals") that says what is due.
fn kind_of_word(word: &str) -> Option<(DeadlineKind, bool)> {
    KIND_BY_WORD
        .iter()
        .find(|(_, _, whole)| whole.is_match(word))
        .map(|(kind, verb, _)| (*kind, *verb))
}

/// Deadline keywords by kind, in the order they are tried. The last flag marks verbs, which
/// yield to nouns that say what is due.
const KIND_WORDS: [(DeadlineKind, bool, &str); 6] = [
    (
        DeadlineKind::PreBid,
        false,
        r"pre-?\s?(?:bid|proposal|submission|tender|quote|bidders?|offerors?)(?-u:\b)|(?:bidders?|offerors?|proposers?|vendors?|suppliers?)'?s?'?\s+(?:conference|meeting|briefing)|site\s+(?:visit|walk|inspection|tour|meeting)|walk-?\s?through|information\s+session|industry\s+day",
    ),
    (
        DeadlineKind::IntentToBid,
        false,
        r"intent(?:ion)?\s+to\s+(?:bid|propose|respond|submit|participate|tender|quote)|notice\s+of\s+intent|letter\s+of\s+intent|intent-to-bid",
    ),
    (
        DeadlineKind::Questions,
        false,
        r"questions?|q\s?&\s?a|queries|inquiries|inquiry|enquiries|enquiry|clarifications?",
    ),
    (
        DeadlineKind::Submission,
        false,
        r"expressions?\s+of\s+interest|eois?|submittals?|proposals?|bids?|bidding|responses?|quotes?|quotations?|quoting|submissions?|offers?|tenders?|pricing|prices?|rates?|rf[pqib]s?|itbs?|ifbs?|bafos?|solicitations?|closing|closes|applications?|registration|questionnaires?|forms?|declarations?",
    ),
    (
        DeadlineKind::Submission,
        true,
        r"respond|submit(?:ted)?|return(?:ed)?|complet(?:e|ed|ion)|buying|purchasing|refresh(?:ed)?|register",
    ),
    (
        DeadlineKind::Other,
        false,
        r"decisions?|decide|award(?:ed)?|select(?:ion)?|shortlist|approval|notif(?:y|ied|ication)|advise|meet(?:ing)?s?|presentations?|interviews?|pitch|demo(?:nstration)?s?|kick-?off|start\s+date",
    ),
];

/// All keywords in one pattern: found with the fast engine, then sorted by `KIND_BY_WORD`.
static KIND: LazyLock<Regex> = LazyLock::new(|| {
    let all: Vec<&str> = KIND_WORDS.iter().map(|(_, _, words)| *words).collect();
    Regex::new(&format!(r"(?i)(?-u:\b)(?:{})(?-u:\b)", all.join("|"))).expect("kind regex")
});

static KIND_BY_WORD: LazyLock<Vec<(DeadlineKind, bool, Regex)>> = LazyLock::new(|| {
    KIND_WORDS
        .iter()
        .map(|(kind, verb, words)| {
            let whole = Regex::new(&format!(r"(?i)^(?:{words})$")).expect("kind word regex");
            (*kind, *verb, whole)
        })
        .collect()
});

static GENERIC_DEADLINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)(?:due|deadline|no\s+later\s+than|not\s+later\s+than|on\s+or\s+before|cut-?\s?off|close\s+of\s+business|cob|eod|latest|expires?)(?-u:\b)")
        .expect("generic deadline regex")
});

/// Date mentions. Leftmost-first: the forms with a weekday prefix come before the bare weekday.
static DATE: LazyLock<Regex> = LazyLock::new(|| {
    let wd = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?\.?";
    let month = r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)";
    Regex::new(&format!(
        concat!(
            r"(?i)(?-u:\b)(?:",
            r"(?P<iy>\d{{4}})-(?P<im>\d{{1,2}})-(?P<id>\d{{1,2}})(?-u:\b)",
            r"|(?:(?P<mdw>{wd}),?\s+(?:the\s+)?)?(?P<mdm>{month})\.?\s*(?P<mdd>\d{{1,2}})(?:st|nd|rd|th)?(?-u:\b)(?:,?\s*(?P<mdy>\d{{4}})(?-u:\b))?",
            r"|(?:(?P<dmw>{wd}),?\s+(?:the\s+)?)?(?P<dmd>\d{{1,2}})(?:st|nd|rd|th)?(?:\s+of)?\s*(?P<dmm>{month})(?-u:\b)\.?(?:,?\s*(?P<dmy>\d{{4}})(?-u:\b))?",
            r"|(?:(?P<nw>{wd}),?\s+)?(?P<na>\d{{1,2}})/(?P<nb>\d{{1,2}})(?:/(?P<ny>\d{{4}}|\d{{2}}))?(?-u:\b)",
            r"|(?P<ea>\d{{1,2}})\.(?P<eb>\d{{1,2}})\.(?P<ey>\d{{4}})(?-u:\b)",
            r"|(?P<wpre>(?:this|next|coming)\s+)?(?P<wd>monday|tuesday|wednesday|thursday|friday|saturday|sunday)(?:\s+the\s+(?P<wdd>\d{{1,2}})(?:st|nd|rd|th)?(?-u:\b))?",
            r"|(?:the\s+)?end\s+of\s+(?P<eomm>{month})(?-u:\b)",
            r"|(?P<rel>today|tonight|tomorrow|this\s+(?:morning|afternoon|evening)|end\s+of\s+(?:the\s+)?(?:day|week|month)|eod|eow|eom)",
            r")"
        ),
        wd = wd,
        month = month
    ))
    .expect("date regex")
});

/// Indices of the named groups of `DATE`: looked up once, since a lookup by name hashes.
struct DateGroups {
    dmd: usize,
    dmm: usize,
    dmw: usize,
    dmy: usize,
    ea: usize,
    eb: usize,
    eomm: usize,
    ey: usize,
    id: usize,
    im: usize,
    iy: usize,
    mdd: usize,
    mdm: usize,
    mdw: usize,
    mdy: usize,
    na: usize,
    nb: usize,
    nw: usize,
    ny: usize,
    rel: usize,
    wd: usize,
    wdd: usize,
}

static DATE_GROUPS: LazyLock<DateGroups> = LazyLock::new(|| {
    let index = |name: &str| {
        DATE.capture_names()
            .position(|n| n == Some(name))
            .expect("date regex names this group")
    };
    DateGroups {
        dmd: index("dmd"),
        dmm: index("dmm"),
        dmw: index("dmw"),
        dmy: index("dmy"),
        ea: index("ea"),
        eb: index("eb"),
        eomm: index("eomm"),
        ey: index("ey"),
        id: index("id"),
        im: index("im"),
        iy: index("iy"),
        mdd: index("mdd"),
        mdm: index("mdm"),
        mdw: index("mdw"),
        mdy: index("mdy"),
        na: index("na"),
        nb: index("nb"),
        nw: index("nw"),
        ny: index("ny"),
        rel: index("rel"),
        wd: index("wd"),
        wdd: index("wdd"),
    }
});

fn mention(
    sentence: &str,
    caps: &regex::Captures<'_>,
    base: Option<NaiveDate>,
    order: Option<DateOrder>,
) -> Option<Mention> {
    let g = &*DATE_GROUPS;
    let whole = caps.get(0)?;
    let span = whole.range();
    // Reference numbers and file names ("ABC/2027/05", "RFQ1.xls") are not dates.
    let before = sentence[..span.start].chars().next_back();
    let after = sentence[span.end..].chars().next();
    if before.is_some_and(|c| c == '/' || c == '-' || c.is_ascii_digit())
        || after.is_some_and(|c| c == '/' || c.is_ascii_digit())
        || (after == Some('-')
            && sentence[span.end + 1..].starts_with(|c: char| c.is_ascii_digit()))
        || (after == Some('.')
            && sentence[span.end + 1..].starts_with(|c: char| c.is_alphanumeric()))
    {
        return None;
    }
    // "Friday's meeting", "Today's headlines": a name, not a date.
    if POSSESSIVE.is_match(&sentence[span.end..]) {
        return None;
    }
    if is_month_and_year(sentence, caps, base) {
        return None;
    }
    let num = |i: usize| caps.get(i).and_then(|m| m.as_str().parse::<u32>().ok());
    let weekday_named = [g.mdw, g.dmw, g.nw]
        .iter()
        .find_map(|&n| caps.get(n))
        .and_then(|m| weekday(m.as_str()));

    let (date, mut ambiguous, explicit_year) = if let Some(y) = num(g.iy) {
        (
            NaiveDate::from_ymd_opt(y as i32, num(g.im)?, num(g.id)?),
            false,
            true,
        )
    } else if let Some(m) = caps.get(g.mdm) {
        month_day(month(m.as_str())?, num(g.mdd)?, num(g.mdy), base)?
    } else if let Some(m) = caps.get(g.dmm) {
        month_day(month(m.as_str())?, num(g.dmd)?, num(g.dmy), base)?
    } else if let Some(a) = num(g.na) {
        numeric(
            a,
            num(g.nb)?,
            caps.get(g.ny).map(|y| y.as_str()),
            base,
            order,
        )?
    } else if let Some(d) = num(g.ea) {
        // Dotted dates ("14.06.2027") are written day first wherever they are used.
        (
            NaiveDate::from_ymd_opt(num(g.ey)? as i32, num(g.eb)?, d),
            false,
            true,
        )
    } else if let Some(w) = caps.get(g.wd) {
        let day = weekday(w.as_str())?;
        let next = caps
            .name("wpre")
            .is_some_and(|p| p.as_str().to_ascii_lowercase().starts_with("next"));
        match num(g.wdd) {
            Some(dom) => day_of_month(dom, base)?,
            None => weekday_date(day, next, base),
        }
    } else if let Some(m) = caps.get(g.eomm) {
        end_of_month(month(m.as_str())?, base)
    } else {
        relative(&caps.get(g.rel)?.as_str().to_ascii_lowercase(), base)
    };
    if date.is_none() && explicit_year {
        return None;
    }
    let checked_weekday =
        weekday_named.or_else(|| caps.get(g.wd).and_then(|w| weekday(w.as_str())));
    if let (Some(wd), Some(d)) = (checked_weekday, date) {
        // "Tuesday, March 3" when March 3 is a Wednesday: one of the two is wrong.
        ambiguous |= d.weekday() != wd;
    }
    let rel = caps.get(g.rel).map(|r| r.as_str());
    Some(Mention {
        span,
        date,
        ambiguous,
        explicit_year,
        today_like: rel.is_some_and(|r| TODAY_LIKE.is_match(r)),
        day_end: rel.is_some_and(|r| DAY_END.is_match(r)),
    })
}

static POSSESSIVE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^['\u{2019}]s(?-u:\b)").expect("possessive regex"));

/// Traders and buyers write months with two-digit years: "Nov01", "Apr02-Oct02", "quote for
/// Nov 01", "request for quote 12/01". A zero-padded number glued to a month, after "for/of/in",
/// or a number/number whose second half is this year's or next year's two digits, is a month.
fn is_month_and_year(sentence: &str, caps: &regex::Captures<'_>, base: Option<NaiveDate>) -> bool {
    let g = &*DATE_GROUPS;
    if let (Some(m), Some(d)) = (caps.get(g.mdm), caps.get(g.mdd)) {
        if caps.get(g.mdy).is_some() {
            return false;
        }
        let glued = d.start() == m.end();
        let suffixed = sentence[d.end()..]
            .get(..2)
            .is_some_and(|s| matches!(s.to_ascii_lowercase().as_str(), "st" | "nd" | "rd" | "th"));
        let padded = d.as_str().starts_with('0');
        let period_word = MONTH_PERIOD_WORD.is_match(tail(&sentence[..m.start()], 16));
        return !suffixed && ((glued && !d.as_str().is_empty()) || (padded && period_word));
    }
    if let (Some(a), Some(b), None) = (caps.get(g.na), caps.get(g.nb), caps.get(g.ny)) {
        let (Ok(month), Ok(yy), Some(base)) =
            (a.as_str().parse::<i32>(), b.as_str().parse::<i32>(), base)
        else {
            return false;
        };
        let this_year = base.year() % 100;
        return b.as_str().len() == 2
            && b.as_str().starts_with('0')
            && (1..=12).contains(&month)
            && (yy == this_year || yy == this_year + 1);
    }
    false
}

static MONTH_PERIOD_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)(?:for|of|in|during|through|thru|since|from)\s+$")
        .expect("period word regex")
});

/// "EOD", "end of day": a time of day when a date follows ("by EOD tomorrow").
static DAY_END: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:eod|end\s+of\s+(?:the\s+)?day)$").expect("day end regex")
});

static TODAY_LIKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:today|tonight|this\s+(?:morning|afternoon|evening))$")
        .expect("today regex")
});

type Reading = (Option<NaiveDate>, bool, bool);

fn month_day(month: u32, day: u32, year: Option<u32>, base: Option<NaiveDate>) -> Option<Reading> {
    match year {
        Some(y) => Some((
            Some(NaiveDate::from_ymd_opt(y as i32, month, day)?),
            false,
            true,
        )),
        None => {
            // Validate against a leap year so "February 29" survives until a year is known.
            NaiveDate::from_ymd_opt(2028, month, day)?;
            Some((
                next_occurrence(month, day, base),
                base.is_none() || recently_past(month, day, base),
                false,
            ))
        }
    }
}

/// How many days before the mail date a month and day still read as "just passed" rather than
/// as next year's.
const RECENT_PAST_DAYS: i64 = 31;

/// "Responses were due November 9" in a mail of November 12: next year's November 9 is the rule's
/// reading, but the buyer may well mean the one just gone, so the date is flagged.
fn recently_past(month: u32, day: u32, base: Option<NaiveDate>) -> bool {
    base.and_then(|b| NaiveDate::from_ymd_opt(b.year(), month, day).map(|d| (b, d)))
        .is_some_and(|(b, d)| d < b && (b - d).num_days() <= RECENT_PAST_DAYS)
}

/// Year inference: the next occurrence on or after the mail date.
fn next_occurrence(month: u32, day: u32, base: Option<NaiveDate>) -> Option<NaiveDate> {
    let base = base?;
    (base.year()..=base.year() + 4)
        .filter_map(|y| NaiveDate::from_ymd_opt(y, month, day))
        .find(|d| *d >= base)
}

fn numeric(
    a: u32,
    b: u32,
    year: Option<&str>,
    base: Option<NaiveDate>,
    order: Option<DateOrder>,
) -> Option<Reading> {
    let year = year.map(|y| {
        let n: i32 = y.parse().unwrap_or(0);
        if y.len() == 2 {
            if n < 70 { 2000 + n } else { 1900 + n }
        } else {
            n
        }
    });
    let (month, day, ambiguous) = match (a <= 12, b <= 12) {
        (true, false) => (a, b, false),
        (false, true) => (b, a, false),
        (true, true) if a == b => (a, b, false),
        (true, true) => match order {
            Some(DateOrder::DayFirst) => (b, a, false),
            Some(DateOrder::MonthFirst) => (a, b, false),
            None => (a, b, true),
        },
        (false, false) => return None,
    };
    if day == 0 || month == 0 {
        return None;
    }
    match year {
        Some(y) => Some((
            Some(NaiveDate::from_ymd_opt(y, month, day)?),
            ambiguous,
            true,
        )),
        None => {
            NaiveDate::from_ymd_opt(2028, month, day)?;
            Some((
                next_occurrence(month, day, base),
                ambiguous || base.is_none() || recently_past(month, day, base),
                false,
            ))
        }
    }
}

/// "Tuesday the 29th": the next 29th on or after the mail date.
fn day_of_month(day: u32, base: Option<NaiveDate>) -> Option<Reading> {
    if !(1..=31).contains(&day) {
        return None;
    }
    let Some(base) = base else {
        return Some((None, true, false));
    };
    let date = (0..13u32)
        .filter_map(|k| {
            let first = base.with_day(1)?.checked_add_months(Months::new(k))?;
            first.with_day(day)
        })
        .find(|d| *d >= base);
    Some((date, false, false))
}

/// A bare weekday: the next one on or after the mail date; "next Friday" is the first one after
/// it, flagged when it falls in the mail's own week (people mean either that one or a week on).
fn weekday_date(day: Weekday, next: bool, base: Option<NaiveDate>) -> Reading {
    let Some(base) = base else {
        return (None, true, false);
    };
    let ahead = (day.num_days_from_monday() + 7 - base.weekday().num_days_from_monday()) % 7;
    let ahead = if next && ahead == 0 { 7 } else { ahead };
    let date = base + Days::new(u64::from(ahead));
    let same_week = date.iso_week() == base.iso_week();
    (Some(date), next && same_week, false)
}

fn relative(word: &str, base: Option<NaiveDate>) -> Reading {
    let Some(base) = base else {
        return (None, true, false);
    };
    let date = if word.starts_with("tomorrow") {
        base.succ_opt()
    } else if word.ends_with("week") || word == "eow" {
        Some(
            weekday_date(Weekday::Fri, false, Some(base))
                .0
                .unwrap_or(base),
        )
    } else if word.ends_with("month") || word == "eom" {
        base.with_day(1)
            .and_then(|d| d.checked_add_months(Months::new(1)))
            .and_then(|d| d.pred_opt())
    } else {
        Some(base)
    };
    (date, false, false)
}

/// "the end of March": the last day of the next March on or after the mail date.
fn end_of_month(month: u32, base: Option<NaiveDate>) -> Reading {
    let Some(base) = base else {
        return (None, true, false);
    };
    let last_day = |year: i32| {
        NaiveDate::from_ymd_opt(year, month, 1)
            .and_then(|d| d.checked_add_months(Months::new(1)))
            .and_then(|d| d.pred_opt())
    };
    let date = [base.year(), base.year() + 1]
        .into_iter()
        .filter_map(last_day)
        .find(|d| *d >= base);
    (date, false, false)
}

fn weekday(word: &str) -> Option<Weekday> {
    let w = word.to_ascii_lowercase();
    Some(match w.get(..3)? {
        "mon" => Weekday::Mon,
        "tue" => Weekday::Tue,
        "wed" => Weekday::Wed,
        "thu" => Weekday::Thu,
        "fri" => Weekday::Fri,
        "sat" => Weekday::Sat,
        "sun" => Weekday::Sun,
        _ => return None,
    })
}

fn month(word: &str) -> Option<u32> {
    let w = word.to_ascii_lowercase();
    let names = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    names
        .iter()
        .position(|n| w.starts_with(n))
        .map(|i| i as u32 + 1)
}

/// A clock time in a sentence, with the zone written right after it.
#[derive(Debug)]
struct TimeOfDay {
    span: Range<usize>,
    time: NaiveTime,
    zone: Option<String>,
    ambiguous: bool,
}

fn times_in(sentence: &str, mentions: &[Mention]) -> Vec<TimeOfDay> {
    TIME.captures_iter(sentence)
        .filter_map(|caps| {
            let whole = caps.get(0)?;
            if mentions
                .iter()
                .any(|m| m.span.start < whole.end() && whole.start() < m.span.end)
            {
                return None;
            }
            let (time, ambiguous) = clock(&caps)?;
            let mut end = whole.end();
            let zone = match zones::zone_at_start(&sentence[end..]) {
                Some((reading, used)) => {
                    end += used;
                    match reading {
                        ZoneReading::Resolved(name) => Some(name),
                        ZoneReading::Local => None,
                    }
                }
                None => None,
            };
            Some(TimeOfDay {
                span: whole.start()..end,
                time,
                zone,
                ambiguous,
            })
        })
        .collect()
}

fn clock(caps: &regex::Captures<'_>) -> Option<(NaiveTime, bool)> {
    let num = |name: &str| caps.name(name).and_then(|m| m.as_str().parse::<u32>().ok());
    if let Some(word) = caps.name("word") {
        let w = word.as_str().to_ascii_lowercase();
        return if w == "midnight" {
            // "Midnight on March 3" is read both as the start and the end of that day.
            Some((NaiveTime::from_hms_opt(23, 59, 0)?, true))
        } else {
            Some((NaiveTime::from_hms_opt(12, 0, 0)?, false))
        };
    }
    let (hour, minute, meridiem) = if let Some(h) = num("rh") {
        (
            h,
            num("rm").unwrap_or(0),
            caps.name("rap").map(|m| m.as_str()),
        )
    } else if let Some(h) = num("h") {
        (
            h,
            num("m").unwrap_or(0),
            caps.name("ap").map(|m| m.as_str()),
        )
    } else if let Some(h) = num("h24") {
        if let Some(word) = caps.name("noon") {
            let midnight = word.as_str().eq_ignore_ascii_case("midnight");
            let t = if midnight {
                NaiveTime::from_hms_opt(23, 59, 0)
            } else {
                NaiveTime::from_hms_opt(12, 0, 0)
            };
            return Some((t?, midnight));
        }
        let minute = num("m24")?;
        // "5:00" with no a.m./p.m. in a business deadline is the afternoon: nobody sets a 5 a.m. cut-off.
        let hour = if (1..=6).contains(&h) { h + 12 } else { h };
        (hour, minute, None)
    } else if let Some(h) = num("hd") {
        // "17.00 hrs", "12.00 noon": the European way of writing a 24-hour time.
        (h, num("md")?, None)
    } else {
        (num("hh")?, num("mm")?, None)
    };
    let hour = match meridiem.map(str::to_ascii_lowercase).as_deref() {
        Some("p") if hour < 12 => hour + 12,
        Some("a") if hour == 12 => 0,
        Some(_) if hour > 12 || hour == 0 => return None,
        _ => hour,
    };
    Some((NaiveTime::from_hms_opt(hour, minute, 0)?, false))
}

static TIME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)(?-u:\b)(?:",
        r"(?P<rh>\d{1,2})(?::(?P<rm>\d{2}))?\s*(?:-|\u{2013}|to)\s*\d{1,2}(?::\d{2})?\s*(?P<rap>[ap])\.?\s?m(?-u:\b)\.?",
        r"|(?P<h>\d{1,2})(?:[:.](?P<m>\d{2}))?\s*(?P<ap>[ap])\.?\s?m(?-u:\b)\.?",
        r"|(?P<h24>\d{1,2}):(?P<m24>\d{2})(?-u:\b)(?:\s*\(?(?P<noon>noon|midnight)\)?|\s*(?:hrs|hours|h)(?-u:\b))?",
        r"|(?P<hh>[01]\d|2[0-3])(?P<mm>[0-5]\d)\s*(?:hrs|hours|h)(?-u:\b)",
        r"|(?P<hd>\d{1,2})\.(?P<md>\d{2})\s*(?:hrs|hours|h|noon)(?-u:\b)",
        r"|(?P<word>noon|midday|midnight)(?-u:\b)",
        r")"
    ))
    .expect("time regex")
});

/// The time nearest to a date in the same sentence, when close enough to belong to it.
fn nearest_time<'a>(times: &'a [TimeOfDay], m: &Mention) -> Option<&'a TimeOfDay> {
    times
        .iter()
        .map(|t| {
            let gap = if t.span.start >= m.span.end {
                t.span.start - m.span.end
            } else {
                m.span.start.saturating_sub(t.span.end)
            };
            (gap, t)
        })
        .filter(|(gap, _)| *gap <= TIME_REACH)
        .min_by_key(|(gap, _)| *gap)
        .map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    /// Monday 1 March 2027: the Date header the relative phrases are resolved against.
    fn monday() -> Option<NaiveDate> {
        Some(day(2027, 3, 1))
    }

    fn one(body: &str, base: Option<NaiveDate>) -> Deadline {
        let found = find_deadlines("", body, base, None);
        assert_eq!(found.len(), 1, "{body}: {found:#?}");
        found.into_iter().next().unwrap()
    }

    fn hm(h: u32, m: u32) -> Option<NaiveTime> {
        NaiveTime::from_hms_opt(h, m, 0)
    }

    /// Text, mail date, then the expected kind, date, time and zone.
    type Row = (
        &'static str,
        Option<NaiveDate>,
        DeadlineKind,
        NaiveDate,
        Option<NaiveTime>,
        Option<&'static str>,
    );

    #[test]
    fn reads_deadline_phrases() {
        use DeadlineKind::*;
        let ny = Some("America/New_York");
        let table: [Row; 24] = [
            (
                "Proposals are due March 3, 2027 at 5:00 PM EST.",
                monday(),
                Submission,
                day(2027, 3, 3),
                hm(17, 0),
                ny,
            ),
            (
                "Tenders must arrive no later than 2 p.m. local time on 14 June.",
                monday(),
                Submission,
                day(2027, 6, 14),
                hm(14, 0),
                None,
            ),
            (
                "Please send your quote by close of business Friday.",
                monday(),
                Submission,
                day(2027, 3, 5),
                None,
                None,
            ),
            (
                "Due date: Friday, November16th, 2001 3:00 PM EST",
                Some(day(2001, 11, 13)),
                Submission,
                day(2001, 11, 16),
                hm(15, 0),
                ny,
            ),
            (
                "Please review and respond to the attached RFQ by 10/23/01.",
                Some(day(2001, 10, 15)),
                Submission,
                day(2001, 10, 23),
                None,
                None,
            ),
            (
                "Request for Information are due this Friday, November 9.",
                Some(day(2001, 11, 5)),
                Submission,
                day(2001, 11, 9),
                None,
                None,
            ),
            (
                "Responses will be due no later than 5:00 Eastern Daylight Time on Monday, July 24, 2000.",
                Some(day(2000, 7, 14)),
                Submission,
                day(2000, 7, 24),
                hm(17, 0),
                ny,
            ),
            (
                "Bids due Tuesday June 12,2001",
                Some(day(2001, 6, 1)),
                Submission,
                day(2001, 6, 12),
                None,
                None,
            ),
            (
                "Submissions close 2027-04-15 at 17:00 CET.",
                monday(),
                Submission,
                day(2027, 4, 15),
                hm(17, 0),
                Some("Europe/Berlin"),
            ),
            (
                "Tenders must be received by 3rd March 2027 at 12:00 noon GMT.",
                monday(),
                Submission,
                day(2027, 3, 3),
                hm(12, 0),
                Some("Europe/London"),
            ),
            (
                "A pre-bid conference will be held on March 8, 2027 at 10 AM (CST).",
                monday(),
                PreBid,
                day(2027, 3, 8),
                hm(10, 0),
                Some("America/Chicago"),
            ),
            (
                "A mandatory site visit is scheduled for March 9.",
                monday(),
                PreBid,
                day(2027, 3, 9),
                None,
                None,
            ),
            (
                "A notice of intent to bid must be returned by March 5.",
                monday(),
                IntentToBid,
                day(2027, 3, 5),
                None,
                None,
            ),
            (
                "Offers are due at 17:00 UTC+5:30 on 20 March 2027.",
                monday(),
                Submission,
                day(2027, 3, 20),
                hm(17, 0),
                Some("+05:30"),
            ),
            (
                "Proposals are due 1400 hrs PST on 20.03.2027.",
                monday(),
                Submission,
                day(2027, 3, 20),
                hm(14, 0),
                Some("America/Los_Angeles"),
            ),
            (
                "Could you send pricing tomorrow?",
                monday(),
                Submission,
                day(2027, 3, 2),
                None,
                None,
            ),
            (
                "Q&A deadline: Thurs., March 4 at 17.00 hrs CEST",
                monday(),
                Questions,
                day(2027, 3, 4),
                hm(17, 0),
                Some("Europe/Berlin"),
            ),
            (
                "Expressions of interest by 12.00 noon on the 15th of March 2027.",
                monday(),
                Submission,
                day(2027, 3, 15),
                hm(12, 0),
                None,
            ),
            (
                "Submit through the portal posted on our website by 11:59 PM ET, March 19, 2027.",
                monday(),
                Submission,
                day(2027, 3, 19),
                hm(23, 59),
                ny,
            ),
            (
                "Deadline for clarifications: 2027-03-10 16:00 UTC",
                monday(),
                Questions,
                day(2027, 3, 10),
                hm(16, 0),
                Some("+00:00"),
            ),
            (
                "Closing date: 15 March 2027, 12:00 (noon) GMT",
                monday(),
                Submission,
                day(2027, 3, 15),
                hm(12, 0),
                Some("Europe/London"),
            ),
            // The noun says what is due; the verb next to the date does not.
            (
                "Questions must be submitted in writing by March 8 at 4pm PT; answers will be posted by March 12.",
                monday(),
                Questions,
                day(2027, 3, 8),
                hm(16, 0),
                Some("America/Los_Angeles"),
            ),
            (
                "Last day for questions: March 5",
                monday(),
                Questions,
                day(2027, 3, 5),
                None,
                None,
            ),
            (
                "Contract award is anticipated on April 30.",
                monday(),
                Other,
                day(2027, 4, 30),
                None,
                None,
            ),
        ];
        for (body, base, kind, date, time, zone) in table {
            let d = one(body, base);
            assert_eq!(
                (d.kind, d.date, d.time, d.zone.as_deref()),
                (kind, Some(date), time, zone),
                "{body}"
            );
            assert!(!d.ambiguous, "{body}");
        }
    }

    #[test]
    fn reads_dates_in_the_subject() {
        let found = find_deadlines("RE: RFP DUE TUESDAY!", "", monday(), None);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].kind, found[0].date),
            (DeadlineKind::Submission, Some(day(2027, 3, 2)))
        );
    }

    #[test]
    fn resolves_relative_dates_against_the_date_header() {
        let table = [
            ("Bids are due by end of month.", day(2027, 3, 31)),
            ("Quotes are due by end of week.", day(2027, 3, 5)),
            ("Please have your bid in this afternoon.", day(2027, 3, 1)),
            ("We'll be buying gas on Tuesday the 29th.", day(2027, 3, 29)),
            ("Proposals are due March 3.", day(2027, 3, 3)),
            // Month and day without a year: the next one on or after the mail date.
            ("Proposals are due February 3.", day(2028, 2, 3)),
            (
                "Please submit pricing, ideally by EOD tomorrow.",
                day(2027, 3, 2),
            ),
            ("Proposals are due by the end of April.", day(2027, 4, 30)),
        ];
        for (body, want) in table {
            assert_eq!(one(body, monday()).date, Some(want), "{body}");
        }
    }

    #[test]
    fn splits_kinds_within_one_sentence() {
        let found = find_deadlines(
            "",
            "Questions are due March 10 and proposals are due March 24.",
            monday(),
            None,
        );
        let kinds: Vec<_> = found.iter().map(|d| (d.kind, d.date.unwrap())).collect();
        assert_eq!(
            kinds,
            vec![
                (DeadlineKind::Questions, day(2027, 3, 10)),
                (DeadlineKind::Submission, day(2027, 3, 24))
            ]
        );
    }

    #[test]
    fn flags_ambiguous_dates_instead_of_guessing() {
        let numeric = one("Bids are due 04/05/2027.", monday());
        assert_eq!(
            (numeric.date, numeric.ambiguous),
            (Some(day(2027, 4, 5)), true)
        );
        let uk = &find_deadlines(
            "",
            "Bids are due 04/05/2027.",
            monday(),
            Some(DateOrder::DayFirst),
        )[0];
        assert_eq!((uk.date, uk.ambiguous), (Some(day(2027, 5, 4)), false));
        // 4 March 2027 is a Thursday.
        let clash = one("Proposals are due Tuesday, March 4, 2027.", monday());
        assert_eq!((clash.date, clash.ambiguous), (Some(day(2027, 3, 4)), true));
        // A month and day just before the mail date: next year's by the rule, but flagged.
        let passed = one("Proposals are due February 20.", monday());
        assert_eq!(
            (passed.date, passed.ambiguous),
            (Some(day(2028, 2, 20)), true)
        );
        let next = one("We need your quote next Tuesday.", monday());
        assert_eq!((next.date, next.ambiguous), (Some(day(2027, 3, 2)), true));
        for body in [
            "Proposals are due Friday.",
            "Proposals are due March 3.",
            "Send pricing tomorrow.",
        ] {
            let d = one(body, None);
            assert_eq!((d.date, d.ambiguous), (None, true), "{body}");
        }
        let noon_or_not = one("Bids are due at midnight on March 3, 2027.", monday());
        assert!(noon_or_not.ambiguous);
    }

    #[test]
    fn leaves_out_dates_that_are_not_deadlines() {
        let table = [
            "Sent: Monday, March 1, 2027 9:00 AM\nSubject: proposals due",
            "On Mon, 1 Mar 2027 at 09:00, Pat Buyer wrote:\n",
            "---------------------- Forwarded by Kim on 03/01/2027 08:20 AM ---------------------------",
            "The RFP was issued on February 1, 2027 for all bidders.",
            "We received your bid on March 1, 2020.",
            "Thanks, we received your question today regarding the RFP.",
            "See Today's headlines for RFP news.",
            "Please quote for Nov 01 and Dec01-Oct02 deliveries.",
            "Friday's meeting about the bid went well.",
            "The RFP received Friday from the county is attached.",
            "Have a good weekend.",
        ];
        for body in table {
            assert_eq!(find_deadlines("", body, monday(), None), vec![], "{body}");
        }
        // "12/01" sent in 2001 is December 2001, not a deadline on the 1st.
        let quote = find_deadlines(
            "",
            "Attached is our request for quote 12/01.",
            Some(day(2001, 11, 20)),
            None,
        );
        assert_eq!(quote, vec![]);
        let term = find_deadlines(
            "",
            "Service term from April 1, 2027 through March 31, 2028; bids due March 20, 2027.",
            monday(),
            None,
        );
        assert_eq!(
            term.iter().map(|d| d.date).collect::<Vec<_>>(),
            vec![Some(day(2027, 3, 20))]
        );
    }

    #[test]
    fn keeps_one_deadline_per_date_and_kind() {
        let found = find_deadlines(
            "RFP due March 3",
            "Reminder: proposals are due March 3.\n\nProposals are due March 3, 2027 at 5 PM EST.",
            monday(),
            None,
        );
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(
            (found[0].time, found[0].zone.as_deref()),
            (hm(17, 0), Some("America/New_York"))
        );
    }

    #[test]
    fn odd_text_does_not_panic() {
        let odd = [
            "",
            "due",
            "\u{fc}/12/\u{df} due",
            "Proposals due March 32, 2027",
            "bids due 99/99/99",
            "due 2027-13-45",
            "due Friday\u{2019}s",
            "due 31/02",
            "RFP due 12:99 pm on 3/3",
            "bids\n\n\ndue\n.\n!\n?",
            "proposals due \u{1f600} March \u{1f600} 3",
            "due 0/0/0000 and 00:00 and 29 February",
        ];
        for text in odd {
            let _ = find_deadlines(text, text, monday(), None);
            let _ = find_deadlines(text, text, None, Some(DateOrder::DayFirst));
        }
    }
}

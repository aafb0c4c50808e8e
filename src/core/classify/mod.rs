//! The explainable classifier: weighted signals from the rules file (in the spirit of
//! SpamAssassin and rspamd) decide whether a message is a buyer's procurement-process demand and
//! which kind. Every signal that fired comes back as a `Reason`, so a rep can see why a draft was
//! proposed. Reading the rules file lives in `rules`, the rep's feedback layer in `feedback`;
//! fetching mail and storing feedback are left to the adapters.
//!
//! How a verdict is reached: each signal fires at most once and adds its weight to the total; a
//! signal with a category also adds its vote to that category. Signals in one group add at most
//! the group's cap together (the excess is shown as a `group-cap:<name>` reason), and the rep's
//! feedback adds a capped `feedback-bayes` nudge. The label is procurement when the total reaches
//! `thresholds.procurement` and at least one category has a positive vote; the category is the one
//! with the largest vote (ties go to the earlier one in `Category::PROCUREMENT`).

mod feedback;
mod rules;

pub use feedback::{FeedbackModel, feedback_tokens};
pub use rules::{
    BUILTIN_TOML as BUILTIN_RULES, Error, FeedbackLimits, Field, RULES_VERSION, Rules, Signal,
    Thresholds,
};

use crate::core::mail::{Address, Mail};
use crate::core::model::{Category, Classification, Label, Reason};
use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind, PatternSet, meta};
use std::sync::Mutex;

/// Matched text in a reason is cut to about this many characters.
const MAX_MATCHED_CHARS: usize = 80;
/// Compiled programs and the lazy DFAs' caches may grow this large. The defaults are too small for
/// long phrase families, and a cache that fills up makes the regex engine fall back to a slower one.
const REGEX_SIZE_LIMIT: usize = 64 * 1024 * 1024;

/// In the field sets, a counted repetition allowing more than this many copies (the gap in
/// `register[^.]{0,60}portal`) is searched open-ended; the signal's own regex checks the count.
const WIDEST_COUNTED_IN_SETS: u32 = 8;

/// The rules, compiled once: one regex per signal, and per text (subject, body, ...) one set that
/// tells in a single pass which signals can fire there, so each text is scanned once, not once per
/// signal; the regex of a signal runs only when the set says it may match, to confirm it and find
/// what matched.
#[derive(Debug, Clone)]
pub struct Classifier {
    signals: Vec<CompiledSignal>,
    scans: Vec<FieldScan>,
    threshold: f64,
    feedback_limits: FeedbackLimits,
    /// (group name, cap), in name order.
    group_caps: Vec<(String, f64)>,
}

#[derive(Debug, Clone)]
struct CompiledSignal {
    name: String,
    field: Field,
    /// The pattern as written (or built from phrases); `None` for flag fields.
    pattern: Option<String>,
    /// Confirms what a field set found and finds the matched text; `None` for flag fields.
    regex: Option<meta::Regex>,
    weight: f64,
    category: Option<Category>,
    vote: f64,
    /// Index into `Classifier::group_caps`.
    group: Option<usize>,
}

#[derive(Debug)]
struct FieldScan {
    /// The text scanned: `Subject`, `Body`, `Sender`, `SenderName` or `Attachments`.
    field: Field,
    /// Which patterns match somewhere: one forward lazy DFA, with no reverse automaton, engine
    /// choice or literal prefilters, since a set only answers "which", never "where".
    set: DFA,
    /// Caches of `set` not in use; a search takes one (or makes one) and puts it back.
    caches: Mutex<Vec<Cache>>,
    /// Index into `Classifier::signals` for each pattern of `set`.
    signal_of: Vec<usize>,
}

impl Clone for FieldScan {
    fn clone(&self) -> FieldScan {
        FieldScan {
            field: self.field,
            set: self.set.clone(),
            caches: Mutex::default(),
            signal_of: self.signal_of.clone(),
        }
    }
}

impl FieldScan {
    /// The patterns of the set that match somewhere in `haystack`.
    fn matches(&self, haystack: &[u8]) -> PatternSet {
        let cache = self.caches.lock().expect("cache list").pop();
        let mut cache = cache.unwrap_or_else(|| self.set.create_cache());
        let mut found = PatternSet::new(self.set.pattern_len());
        self.set
            .try_which_overlapping_matches(&mut cache, &Input::new(haystack), &mut found)
            // Built never to give up and with no quit bytes, so the search cannot fail.
            .expect("a field set never gives up");
        self.caches.lock().expect("cache list").push(cache);
        found
    }
}

/// The text of one message as signals read it (lower-cased, whitespace runs collapsed), made
/// once per classification.
struct MailText {
    subject: String,
    body: String,
    sender: String,
    sender_name: String,
    attachments: String,
}

/// The texts signals read, in scan order: subject before body, so a `text` signal reports the
/// subject when both match.
const TEXT_FIELDS: [Field; 5] = [
    Field::Subject,
    Field::Body,
    Field::Sender,
    Field::SenderName,
    Field::Attachments,
];

impl MailText {
    fn of(&self, field: Field) -> &str {
        match field {
            Field::Subject => &self.subject,
            Field::Body => &self.body,
            Field::Sender => &self.sender,
            Field::SenderName => &self.sender_name,
            Field::Attachments => &self.attachments,
            Field::Text | Field::Bulk | Field::AutoSubmitted | Field::Internal => "",
        }
    }

    fn new(mail: &Mail) -> MailText {
        let from = mail.from.as_ref();
        MailText {
            subject: collapse_whitespace_runs(&mail.subject),
            body: collapse_whitespace_runs(&mail.body),
            sender: from
                .map(|a| collapse_whitespace_runs(&a.email))
                .unwrap_or_default(),
            sender_name: from
                .and_then(|a| a.name.as_deref())
                .map(collapse_whitespace_runs)
                .unwrap_or_default(),
            attachments: collapse_whitespace_runs(&mail.attachment_names.join(" | ")),
        }
    }
}

impl Classifier {
    pub fn new(rules: &Rules) -> Result<Classifier, Error> {
        let group_caps: Vec<(String, f64)> = rules
            .groups
            .iter()
            .map(|(g, cap)| (g.clone(), *cap))
            .collect();
        let signals = rules
            .signals
            .iter()
            .map(|s| compile_signal(s, &group_caps))
            .collect::<Result<Vec<_>, Error>>()?;
        let scans = TEXT_FIELDS
            .into_iter()
            .map(|field| {
                let signal_of: Vec<usize> = signals
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.field.reads(field) && s.regex.is_some())
                    .map(|(i, _)| i)
                    .collect();
                let patterns: Vec<String> = signal_of
                    .iter()
                    .filter_map(|&i| signals[i].pattern.as_deref())
                    .map(open_wide_gaps)
                    .collect();
                let set = DFA::builder()
                    .configure(
                        DFA::config()
                            .match_kind(MatchKind::All)
                            .cache_capacity(REGEX_SIZE_LIMIT)
                            .minimum_cache_clear_count(None),
                    )
                    .syntax(pattern_syntax())
                    .thompson(
                        regex_automata::nfa::thompson::Config::new()
                            .nfa_size_limit(Some(REGEX_SIZE_LIMIT)),
                    )
                    .build_many(&patterns)
                    .map_err(|e| Error::BadPattern {
                        signal: format!("{field:?} field set"),
                        message: e.to_string(),
                    })?;
                Ok((!signal_of.is_empty()).then_some(FieldScan {
                    field,
                    set,
                    caches: Mutex::default(),
                    signal_of,
                }))
            })
            .filter_map(Result::transpose)
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(Classifier {
            signals,
            scans,
            threshold: rules.thresholds.procurement,
            feedback_limits: rules.feedback.clone(),
            group_caps,
        })
    }

    pub fn classify(&self, mail: &Mail, feedback: Option<&FeedbackModel>) -> Classification {
        let text = MailText::new(mail);
        // Which signals fired, with their matched text, indexed like `self.signals`.
        let mut fired: Vec<Option<String>> = vec![None; self.signals.len()];
        for (i, signal) in self.signals.iter().enumerate() {
            let flag = match signal.field {
                Field::Bulk if mail.is_bulk => Some("list or bulk headers"),
                Field::AutoSubmitted if mail.is_auto_submitted => Some("auto-submitted header"),
                Field::Internal if is_internal(mail) => {
                    Some("sender and recipients share a domain")
                }
                _ => None,
            };
            fired[i] = flag.map(str::to_string);
        }
        for scan in &self.scans {
            let haystack = text.of(scan.field).as_bytes();
            for pattern in scan.matches(haystack).iter() {
                let i = scan.signal_of[pattern.as_usize()];
                if fired[i].is_some() {
                    continue;
                }
                let regex = self.signals[i].regex.as_ref();
                if let Some(m) = regex.and_then(|r| r.find(haystack)) {
                    fired[i] = Some(readable_match(&haystack[m.range()]));
                }
            }
        }

        let mut reasons = Vec::new();
        let mut score = 0.0;
        let mut votes = [0.0; Category::PROCUREMENT.len()];
        let mut group_sums = vec![0.0; self.group_caps.len()];
        for (signal, matched) in self.signals.iter().zip(fired) {
            let Some(matched) = matched else { continue };
            score += signal.weight;
            if let Some(g) = signal.group {
                group_sums[g] += signal.weight.max(0.0);
            }
            if let Some(slot) = signal
                .category
                .and_then(|c| Category::PROCUREMENT.iter().position(|&p| p == c))
            {
                votes[slot] += signal.vote;
            }
            reasons.push(Reason {
                signal: signal.name.clone(),
                weight: signal.weight,
                matched,
            });
        }
        for ((group, cap), sum) in self.group_caps.iter().zip(group_sums) {
            if sum > *cap {
                // Shown as its own reason so the explanation still adds up to the score.
                score += cap - sum;
                reasons.push(Reason {
                    signal: format!("group-cap:{group}"),
                    weight: cap - sum,
                    matched: format!("{group} signals add {sum} together, capped at {cap}"),
                });
            }
        }
        if let Some(reason) =
            // Tokenising is a quarter of a backfill's CPU: only for a model that can nudge.
            feedback
                .filter(|m| m.is_ready(&self.feedback_limits))
                .and_then(|m| m.nudge(&feedback_tokens(mail), &self.feedback_limits))
        {
            score += reason.weight;
            reasons.push(reason);
        }

        let category = votes
            .iter()
            .enumerate()
            .filter(|(_, v)| **v > 0.0)
            // `max_by` keeps the last of equals; iterating in reverse makes ties go to the first.
            .rev()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| Category::PROCUREMENT[i]);
        let score = (score * 1000.0).round() / 1000.0;
        match category {
            Some(category) if score >= self.threshold => Classification {
                label: Label::Procurement,
                category,
                score,
                reasons,
            },
            _ => Classification {
                label: Label::Other,
                category: Category::None,
                score,
                reasons,
            },
        }
    }
}

/// True when the sender, every To/Cc recipient and every address quoted in the body belong to one
/// organisation: colleagues talking among themselves. A forward that carries an outside party's
/// mail names that party's address, so it does not count as internal.
fn is_internal(mail: &Mail) -> bool {
    let Some(from) = &mail.from else { return false };
    let home = organisation_domain(from.domain());
    let same = |domain: &str| organisation_domain(domain).eq_ignore_ascii_case(home);
    let mut recipients = mail.to.iter().chain(&mail.cc).peekable();
    !home.is_empty()
        && recipients.peek().is_some()
        && recipients.all(|a| same(a.domain()) && a.email != from.email && !is_distribution_list(a))
        && quoted_domains(&mail.body).all(same)
}

/// Buyers blind-copy a supplier list and address the mail to themselves or to a list mailbox
/// ("bidders@", "rfp.participants@"): such a mail only looks internal.
fn is_distribution_list(address: &Address) -> bool {
    const LIST_WORDS: &[&str] = &[
        "all",
        "bidders",
        "bids",
        "distribution",
        "list",
        "participants",
        "recipients",
        "rfp",
        "rfq",
        "suppliers",
        "undisclosed",
        "vendors",
    ];
    address
        .local_part()
        .split(|c: char| !c.is_ascii_alphabetic())
        .any(|word| LIST_WORDS.contains(&word))
}

/// The domains of e-mail addresses written in a text (`name@host.tld`); bare `@word` is skipped.
fn quoted_domains(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices('@').filter_map(|(at, _)| {
        let rest = &text[at + 1..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
            .unwrap_or(rest.len());
        let domain = rest[..end].trim_end_matches('.');
        domain.contains('.').then_some(domain)
    })
}

/// The registrable part of a domain, so `mail.sales.example.com` and `example.com` count as one
/// organisation. Country domains with a second-level label (`example.co.uk`) keep three labels,
/// and so do the documentation domains (`buyer.example.com`), which host many organisations.
fn organisation_domain(domain: &str) -> &str {
    let mut dots = domain.rmatch_indices('.').map(|(i, _)| i);
    let (last, second, third) = (dots.next(), dots.next(), dots.next());
    let tld = last.map_or(domain, |i| &domain[i + 1..]);
    let sld = match (last, second) {
        (Some(i), Some(j)) => &domain[j + 1..i],
        (Some(i), None) => &domain[..i],
        _ => "",
    };
    let keep_three = (tld.len() == 2
        && matches!(sld, "co" | "com" | "ac" | "gov" | "org" | "net" | "edu"))
        || (sld == "example" && matches!(tld, "com" | "net" | "org"));
    let start = if keep_three { third } else { second };
    start.map_or(domain, |i| &domain[i + 1..])
}

fn compile_signal(signal: &Signal, group_caps: &[(String, f64)]) -> Result<CompiledSignal, Error> {
    let group =
        match &signal.group {
            None => None,
            Some(name) => Some(group_caps.iter().position(|(g, _)| g == name).ok_or_else(
                || Error::UnknownGroup {
                    signal: signal.name.clone(),
                    group: name.clone(),
                },
            )?),
        };
    let pattern = match (&signal.pattern, signal.phrases.as_slice()) {
        _ if signal.field.is_flag() => None,
        (Some(pattern), _) => Some(pattern.clone()),
        (None, []) => {
            return Err(Error::NothingToMatch {
                signal: signal.name.clone(),
            });
        }
        (None, phrases) => Some(phrase_pattern(phrases)),
    };
    let regex = pattern
        .as_deref()
        .map(|p| {
            meta::Regex::builder()
                .configure(
                    meta::Config::new()
                        .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
                        .hybrid_cache_capacity(REGEX_SIZE_LIMIT)
                        // It runs only where its field set found a match, so skipping ahead to
                        // literals saves little, and those searchers cost 0.5 MB for the rules.
                        .auto_prefilter(false),
                )
                .syntax(pattern_syntax())
                .build(p)
                .map_err(|e| Error::BadPattern {
                    signal: signal.name.clone(),
                    message: e
                        .syntax_error()
                        .map_or_else(|| e.to_string(), ToString::to_string),
                })
        })
        .transpose()?;
    Ok(CompiledSignal {
        name: signal.name.clone(),
        field: signal.field,
        pattern,
        regex,
        weight: signal.weight,
        category: signal.category,
        vote: signal.category_vote(),
        group,
    })
}

/// How every pattern is read: text is lower-cased already, and ASCII classes and word boundaries
/// keep every pattern on the fast lazy DFA; any byte may match, as in `regex::bytes`.
fn pattern_syntax() -> syntax::Config {
    syntax::Config::new().unicode(false).utf8(false)
}

/// `pattern` with every counted repetition wider than `WIDEST_COUNTED_IN_SETS` made open-ended
/// (`[^.]{0,60}` becomes `[^.]{0,}`). It matches everything `pattern` matches, so a set of such
/// patterns still names every signal that can fire. Why: while a set's lazy DFA is inside a gap
/// it needs a state for each position in the count, times the positions of every other gap open at
/// the same time, so on real mail it kept building new states (most of the classifier's time) and
/// its cache grew to megabytes; an open-ended gap is one state.
fn open_wide_gaps(pattern: &str) -> String {
    use regex_syntax::ast::{Ast, RepetitionKind, RepetitionRange, parse::Parser};
    fn open(ast: &mut Ast) {
        match ast {
            Ast::Repetition(repetition) => {
                if let RepetitionKind::Range(RepetitionRange::Bounded(min, max)) =
                    repetition.op.kind
                    && max > WIDEST_COUNTED_IN_SETS
                {
                    repetition.op.kind = RepetitionKind::Range(RepetitionRange::AtLeast(min));
                }
                open(&mut repetition.ast);
            }
            Ast::Group(group) => open(&mut group.ast),
            Ast::Alternation(alternation) => alternation.asts.iter_mut().for_each(open),
            Ast::Concat(concat) => concat.asts.iter_mut().for_each(open),
            _ => {}
        }
    }
    // The pattern compiled as a regex already, so it parses; unchanged is still correct if not.
    let Ok(mut ast) = Parser::new().parse(pattern) else {
        return pattern.to_string();
    };
    open(&mut ast);
    ast.to_string()
}

/// Lower-cases `text` and collapses each whitespace run (line breaks included: mail wraps lines
/// mid-sentence) to one space. Every signal reads text in this form.
///
/// Mail is mostly ASCII, so this runs over whole ASCII stretches at once: map each byte (which
/// the compiler vectorises), then drop the second space of each pair in one pass at the end. A
/// character-at-a-time loop cost four times the instructions, and the whole body goes through here.
fn collapse_whitespace_runs(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len() + 1);
    let mut rest = text;
    while !rest.is_empty() {
        let ascii = ascii_prefix_len(rest.as_bytes());
        out.extend(rest.as_bytes()[..ascii].iter().map(|&b| match b {
            // `char::is_whitespace` below space: tab to carriage return.
            b'\t'..=b'\r' => b' ',
            _ => b.to_ascii_lowercase(),
        }));
        rest = &rest[ascii..];
        let Some(c) = rest.chars().next() else { break };
        rest = &rest[c.len_utf8()..];
        if c.is_whitespace() {
            out.push(b' ');
        } else {
            let mut buf = [0; 4];
            for lower in c.to_lowercase() {
                out.extend_from_slice(lower.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    // No byte of a multi-byte character is a space, so this never splits one.
    out.dedup_by(|next, last| *next == b' ' && *last == b' ');
    String::from_utf8(out).expect("ASCII bytes and whole characters were written")
}

/// The length of the ASCII start of `bytes`, tested eight bytes at a time.
fn ascii_prefix_len(bytes: &[u8]) -> usize {
    let mut len = 0;
    for chunk in bytes.chunks_exact(8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("chunks of eight"));
        if word & 0x8080_8080_8080_8080 != 0 {
            break;
        }
        len += 8;
    }
    len + bytes[len..]
        .iter()
        .position(|b| !b.is_ascii())
        .unwrap_or(bytes.len() - len)
}

/// Phrases as one whole-word alternation; spaces in a phrase match any run of whitespace, since
/// mail bodies wrap lines anywhere.
fn phrase_pattern(phrases: &[String]) -> String {
    let alternatives: Vec<String> = phrases
        .iter()
        .map(|p| {
            let words = p
                .to_lowercase()
                .split_whitespace()
                .map(regex::escape)
                .collect::<Vec<_>>()
                .join(r"\s+");
            // A boundary only where the phrase has a word character to bound, so "@" or "#"
            // at either end still matches.
            let word_at = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            let start = if word_at(p.trim().chars().next()) {
                r"\b"
            } else {
                ""
            };
            let end = if word_at(p.trim().chars().last()) {
                r"\b"
            } else {
                ""
            };
            format!("{start}{words}{end}")
        })
        .collect();
    format!("(?:{})", alternatives.join("|"))
}

/// Matched bytes as one readable line of at most `MAX_MATCHED_CHARS` characters.
fn readable_match(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((cut, _)) = line.char_indices().nth(MAX_MATCHED_CHARS) {
        line.truncate(cut);
        line.push('…');
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_pattern_is_named_with_the_parser_s_explanation() {
        let rules = Rules::from_toml(
            "version = 1\n[thresholds]\nprocurement = 1.0\n[[signal]]\nname = \"broken\"\n\
             field = \"body\"\npattern = 'submit (your bid'\nweight = 1.0\n",
            std::path::Path::new("bad.toml"),
        )
        .unwrap();
        let error = Classifier::new(&rules).unwrap_err().to_string();
        assert!(
            error.starts_with("cannot compile signal `broken`: "),
            "{error}"
        );
        assert!(error.contains("unclosed group"), "{error}");
    }

    #[test]
    fn sets_search_wide_counted_gaps_open_ended() {
        assert_eq!(
            open_wide_gaps(r"\bregister\b[^.\n]{0,60}\bportal(?:\w+\s+){0,3}x{2,9}"),
            r"\bregister\b[^.\n]{0,}\bportal(?:\w+\s+){0,3}x{2,}"
        );
        assert_eq!(
            open_wide_gaps(r"(?:a|b[^.]{1,40}(?:c[^.]{0,80}d)?)"),
            r"(?:a|b[^.]{1,}(?:c[^.]{0,}d)?)"
        );
        // A set still names a signal whose gap is wider than `WIDEST_COUNTED_IN_SETS`; its own
        // regex then rejects a gap that is too wide.
        let rules = Rules::from_toml(
            "version = 1\n[thresholds]\nprocurement = 1.0\n[[signal]]\nname = \"register-portal\"\nfield = \"body\"\n\
             pattern = 'register[^.]{0,20}portal'\nweight = 2.0\ncategory = \"portal\"\n",
            std::path::Path::new("gaps.toml"),
        )
        .unwrap();
        let classifier = Classifier::new(&rules).unwrap();
        let near = buyer_mail("x", "Please register on our supplier portal.");
        let far = buyer_mail(
            "x",
            "Please register, and then at some later point, use the portal.",
        );
        assert_eq!(classifier.classify(&near, None).label, Label::Procurement);
        let far = classifier.classify(&far, None);
        assert_eq!(far.label, Label::Other);
        assert!(far.reasons.is_empty(), "{:?}", far.reasons);
    }

    fn mail(headers: &str, body: &str) -> Mail {
        let raw = format!("{headers}\r\n\r\n{body}\r\n");
        Mail::parse(raw.as_bytes()).expect("test mail parses")
    }

    fn buyer_mail(subject: &str, body: &str) -> Mail {
        mail(
            &format!(
                "From: Dana Buyer <dana@buyer.example>\r\nTo: rep@seller.example\r\nSubject: {subject}"
            ),
            body,
        )
    }

    /// Compiled once: building the full rule set per test would dominate the test run.
    static BUILTIN: std::sync::LazyLock<Classifier> = std::sync::LazyLock::new(|| {
        Classifier::new(&Rules::builtin()).expect("built-in rules compile")
    });

    fn builtin() -> &'static Classifier {
        &BUILTIN
    }

    fn verdict(mail: &Mail) -> (Label, Category) {
        let c = builtin().classify(mail, None);
        (c.label, c.category)
    }

    fn fired(c: &Classification, signal: &str) -> bool {
        c.reasons.iter().any(|r| r.signal == signal)
    }

    #[test]
    fn rfp_from_a_buyer_is_procurement() {
        let m = buyer_mail(
            "Request for Proposal 2027-03: managed print services",
            "Dear Supplier,\nAttached is our RFP for managed print services. Proposals are due\n\
             March 3 by 2:00 pm. Please submit your proposal by email.",
        );
        assert_eq!(verdict(&m), (Label::Procurement, Category::Rfp));
    }

    #[test]
    fn rfq_is_its_own_category() {
        let m = buyer_mail(
            "RFQ for November supply",
            "Please review the attached RFQ and respond by Friday. (See attached file: nov_rfq.xls)",
        );
        assert_eq!(verdict(&m), (Label::Procurement, Category::Rfq));
    }

    #[test]
    fn rfi_is_its_own_category() {
        let m = buyer_mail(
            "RFI: workforce scheduling software",
            "We have issued a Request for Information (RFI). Responses to this RFI are due\n\
             May 9. This is market research and not a request for proposal.",
        );
        assert_eq!(verdict(&m), (Label::Procurement, Category::Rfi));
    }

    #[test]
    fn invitation_to_bid_is_a_tender() {
        let m = buyer_mail(
            "Invitation to Bid 27-114",
            "To all bidders: attached is the Invitation to Bid. Bids are due by 10:00 am on\n\
             June 2 and will be opened in public. A pre-bid conference is scheduled.",
        );
        assert_eq!(verdict(&m), (Label::Procurement, Category::Tender));
    }

    #[test]
    fn supplier_portal_registration_is_portal() {
        let m = buyer_mail(
            "Action required: register in our supplier portal",
            "Hello, you have been invited to register as a supplier. Create an account on the\n\
             Coupa Supplier Portal before we can issue the sourcing event. Registration is free.",
        );
        assert_eq!(verdict(&m), (Label::Procurement, Category::Portal));
    }

    #[test]
    fn security_questionnaire_is_questionnaire() {
        let m = buyer_mail(
            "Vendor security questionnaire",
            "Before we continue, please complete the attached security questionnaire and\n\
             return it with your SOC 2 report. All suppliers handling our data are required to.",
        );
        assert_eq!(verdict(&m), (Label::Procurement, Category::Questionnaire));
    }

    #[test]
    fn just_send_pricing_is_pricing_only() {
        let m = buyer_mail(
            "Pricing",
            "We don't need a call. Could you just send me your best price for 200 seats?\n\
             We will make a decision by Friday.",
        );
        assert_eq!(verdict(&m), (Label::Procurement, Category::PricingOnly));
    }

    #[test]
    fn buyer_demanded_oral_presentation_is_demo_request() {
        let m = buyer_mail(
            "Notification of oral presentation",
            "Your firm has been shortlisted. Offerors will deliver an oral presentation of\n\
             60 minutes to the evaluation panel, followed by a question and answer session.",
        );
        assert_eq!(verdict(&m), (Label::Procurement, Category::DemoRequest));
    }

    #[test]
    fn cone_of_silence_is_gatekeeper() {
        let m = buyer_mail(
            "Cone of silence notice",
            "A cone of silence is in effect for this solicitation. All communications must be\n\
             directed to the procurement officer named below. Proposers shall not contact\n\
             council members or staff; contact may result in disqualification.",
        );
        assert_eq!(
            verdict(&m),
            (Label::Procurement, Category::ProcurementGatekeeper)
        );
    }

    #[test]
    fn own_outgoing_proposal_is_other() {
        let m = mail(
            "From: rep@seller.example\r\nTo: dana@buyer.example\r\nSubject: RE: RFP 2027-03",
            "Dana, attached is our response to your RFP. We are pleased to submit our\n\
             proposal and thank you for the opportunity to respond.",
        );
        assert_eq!(verdict(&m).0, Label::Other);
    }

    #[test]
    fn award_and_regret_letters_are_other() {
        for body in [
            "Thank you for your proposal. We regret to inform you that your firm was not\n\
             selected; we decided to proceed with another supplier.",
            "Congratulations! Your company has been selected and awarded the contract under\n\
             RFP 2027-03. A notice of award is attached.",
        ] {
            let m = buyer_mail("RFP 2027-03 outcome", body);
            assert_eq!(verdict(&m).0, Label::Other, "{body}");
        }
    }

    #[test]
    fn seller_answering_with_its_price_is_other() {
        let m = mail(
            "From: gallery@art.example\r\nTo: rep@seller.example\r\nSubject: Re: painting",
            "The piece is fairly priced at $9,500 but we can give you a $500 discount.\n\n\
             > What is your best and final price? I am ready to make a decision.",
        );
        let c = builtin().classify(&m, None);
        assert_eq!(c.label, Label::Other);
        assert!(fired(&c, "seller-states-price"));
    }

    #[test]
    fn newsletter_about_rfps_is_other() {
        let m = mail(
            "From: news@trade.example\r\nTo: rep@seller.example\r\nList-Id: <digest.trade.example>\r\n\
             Subject: This week: RFP trends",
            "In this issue: how buyers write an RFP, and bid deadlines to watch.\n\
             Unsubscribe at any time.",
        );
        let c = builtin().classify(&m, None);
        assert_eq!(c.label, Label::Other);
        assert!(fired(&c, "newsletter-bulk"));
    }

    #[test]
    fn finance_tender_offer_is_other() {
        let m = buyer_mail(
            "Tender offer for outstanding shares",
            "The board recommends shareholders tender their shares at $41 per share before\n\
             the tender offer expires.",
        );
        assert_eq!(verdict(&m).0, Label::Other);
    }

    #[test]
    fn vendor_initiated_demo_offer_is_other() {
        let m = mail(
            "From: sdr@vendor.example\r\nTo: rep@seller.example\r\nSubject: Quick demo?",
            "Hi, I'd love to show you our platform. Would you be open to a quick 15-minute\n\
             demo next week? Book a demo here.",
        );
        assert_eq!(verdict(&m).0, Label::Other);
    }

    #[test]
    fn colleagues_discussing_an_rfp_are_other() {
        let m = mail(
            "From: ann@seller.example\r\nTo: bob@seller.example\r\nSubject: City RFP",
            "Bob, can we meet about the city RFP on Tuesday? I have a draft proposal.",
        );
        let c = builtin().classify(&m, None);
        assert_eq!(c.label, Label::Other);
        assert!(fired(&c, "internal-conversation"));
    }

    #[test]
    fn internal_means_no_outside_party() {
        let internal = mail(
            "From: a@x.example\r\nTo: b@mail.x.example\r\nSubject: s",
            "hi",
        );
        assert!(is_internal(&internal));
        // A buyer that mails itself and blind-copies suppliers is not talking to colleagues.
        let to_self = mail("From: a@x.example\r\nTo: a@x.example\r\nSubject: s", "hi");
        assert!(!is_internal(&to_self));
        let to_list = mail(
            "From: a@x.example\r\nTo: all.bidders@x.example\r\nSubject: s",
            "hi",
        );
        assert!(!is_internal(&to_list));
        let forward = mail(
            "From: a@x.example\r\nTo: b@x.example\r\nSubject: s",
            "-----Original Message-----\nFrom: buyer@client.example\nPlease quote.",
        );
        assert!(!is_internal(&forward));
        let external = mail("From: a@x.example\r\nTo: b@y.example\r\nSubject: s", "hi");
        assert!(!is_internal(&external));
        assert_eq!(
            organisation_domain("mail.shop.example.co.uk"),
            "example.co.uk"
        );
        assert_eq!(organisation_domain("ect.enron.com"), "enron.com");
        assert_eq!(organisation_domain("enron.com"), "enron.com");
        assert_eq!(organisation_domain("localhost"), "localhost");
        assert_eq!(
            organisation_domain("sales.buyer.example.com"),
            "buyer.example.com"
        );
    }

    const ONE_SIGNAL: &str = r#"
version = 1
[thresholds]
procurement = 5.0
[[signal]]
name = "subject-rfp"
field = "subject"
pattern = '\brfp\b'
weight = 3.0
category = "rfp"
[[signal]]
name = "no-category"
field = "body"
phrases = ["bids are due"]
weight = 10.0
"#;

    fn rules(text: &str) -> Rules {
        Rules::from_toml(text, std::path::Path::new("test.toml")).unwrap()
    }

    #[test]
    fn label_needs_the_threshold_and_a_category_vote() {
        let mut r = rules(ONE_SIGNAL);
        let rfp = buyer_mail("RFP", "hello");
        let c = Classifier::new(&r).unwrap().classify(&rfp, None);
        assert_eq!((c.label, c.score), (Label::Other, 3.0), "below threshold");
        r.thresholds.procurement = 3.0;
        let c = Classifier::new(&r).unwrap().classify(&rfp, None);
        assert_eq!(
            (c.label, c.category),
            (Label::Procurement, Category::Rfp),
            "at threshold"
        );
        // A high score with no category vote says "procurement-ish" but not what to push back on.
        let uncategorised = buyer_mail("hello", "Bids are due\nFriday.");
        let c = Classifier::new(&r).unwrap().classify(&uncategorised, None);
        assert_eq!(
            (c.label, c.category, c.score),
            (Label::Other, Category::None, 10.0)
        );
        assert_eq!(
            c.reasons[0].matched, "bids are due",
            "phrase spans a line break"
        );
    }

    #[test]
    fn group_cap_limits_restated_facts_and_explains_itself() {
        let text = ONE_SIGNAL.replace(
            "[[signal]]\nname = \"no-category\"",
            "[[signal]]\nname = \"no-category\"\ngroup = \"topic\"",
        ) + "[groups]\ntopic = 4.0\n";
        let c = Classifier::new(&rules(&text))
            .unwrap()
            .classify(&buyer_mail("hi", "bids are due"), None);
        assert_eq!(c.score, 4.0);
        let cap = c
            .reasons
            .iter()
            .find(|r| r.signal == "group-cap:topic")
            .unwrap();
        assert_eq!(cap.weight, -6.0);
    }

    #[test]
    fn bad_regex_names_the_signal() {
        let mut r = rules(ONE_SIGNAL);
        r.signals[0].pattern = Some("(unclosed".into());
        let err = Classifier::new(&r).unwrap_err();
        assert!(
            matches!(&err, Error::BadPattern { signal, .. } if signal == "subject-rfp"),
            "{err}"
        );
        assert!(err.to_string().contains("subject-rfp"));
    }

    #[test]
    fn text_is_lower_cased_with_whitespace_runs_collapsed() {
        assert_eq!(
            collapse_whitespace_runs("Dear  Supplier,\r\n\tPlease\u{a0}SUBMIT "),
            "dear supplier, please submit "
        );
        assert_eq!(collapse_whitespace_runs("ÉTÉ"), "été");
        // Runs that cross from ASCII to other whitespace and back, past the 8-byte stretches.
        assert_eq!(
            collapse_whitespace_runs("Proposals DUE \u{a0}\r\n\u{2003} Friday\u{a0}Ünd  "),
            "proposals due friday ünd "
        );
    }

    #[test]
    fn rules_built_in_code_are_checked_too() {
        let mut r = rules(ONE_SIGNAL);
        r.signals[0].pattern = None;
        let err = Classifier::new(&r).unwrap_err();
        assert_eq!(
            err,
            Error::NothingToMatch {
                signal: "subject-rfp".into()
            }
        );
        let mut r = rules(ONE_SIGNAL);
        r.signals[0].group = Some("missing".into());
        assert!(matches!(
            Classifier::new(&r),
            Err(Error::UnknownGroup { .. })
        ));
    }

    #[test]
    fn matched_text_is_trimmed_and_on_one_line() {
        let long = format!("bids are due {}", "x".repeat(200));
        assert_eq!(readable_match(b"bids\n  are   due"), "bids are due");
        let trimmed = readable_match(long.as_bytes());
        assert_eq!(trimmed.chars().count(), MAX_MATCHED_CHARS + 1);
        assert!(trimmed.ends_with('…'));
    }

    #[test]
    fn output_is_deterministic() {
        let m = buyer_mail(
            "RFP 12 - proposals due",
            "Dear supplier, proposals are due Friday.",
        );
        let classifier = builtin();
        assert_eq!(classifier.classify(&m, None), classifier.classify(&m, None));
    }

    fn feedback_model(procurement_examples: usize, other_examples: usize) -> FeedbackModel {
        let example = |word: &str, label| (vec![word.to_string(), "common".to_string()], label);
        let examples: Vec<_> = std::iter::repeat_n(
            example("widgetbuy", Label::Procurement),
            procurement_examples,
        )
        .chain(std::iter::repeat_n(
            example("lunchplans", Label::Other),
            other_examples,
        ))
        .collect();
        FeedbackModel::train(&examples)
    }

    #[test]
    fn feedback_is_silent_below_the_minimum_examples() {
        let m = buyer_mail("widgetbuy", "widgetbuy");
        let few = feedback_model(4, 50);
        let c = builtin().classify(&m, Some(&few));
        assert!(!fired(&c, "feedback-bayes"));
        assert_eq!(c, builtin().classify(&m, None));
    }

    #[test]
    fn feedback_nudges_within_its_cap_and_names_tokens() {
        let m = buyer_mail("widgetbuy", "widgetbuy");
        let model = feedback_model(40, 40);
        let c = builtin().classify(&m, Some(&model));
        let reason = c
            .reasons
            .iter()
            .find(|r| r.signal == "feedback-bayes")
            .unwrap();
        let cap = Rules::builtin().feedback.max_nudge;
        assert!(reason.weight > 0.0 && reason.weight < cap, "{reason:?}");
        assert!(reason.matched.contains("widgetbuy"), "{reason:?}");
        assert_eq!(
            c.score, reason.weight,
            "the nudge is the whole score of a signal-free mail"
        );

        let mut eager = Rules::builtin();
        eager.feedback.scale = 100.0;
        let c = Classifier::new(&eager).unwrap().classify(&m, Some(&model));
        let reason = c
            .reasons
            .iter()
            .find(|r| r.signal == "feedback-bayes")
            .unwrap();
        assert_eq!(
            reason.weight, cap,
            "however sure the model, the nudge stops at the cap"
        );
        assert_eq!(
            c.label,
            Label::Other,
            "the nudge alone never reaches the threshold"
        );
    }

    #[test]
    fn feedback_cannot_overturn_strong_rule_evidence() {
        let m = buyer_mail(
            "Request for Proposal 2027-03 lunchplans",
            "Dear Supplier, attached is our RFP. Proposals are due March 3. lunchplans",
        );
        let model = feedback_model(40, 400);
        let c = builtin().classify(&m, Some(&model));
        let reason = c
            .reasons
            .iter()
            .find(|r| r.signal == "feedback-bayes")
            .unwrap();
        assert!(
            reason.weight < 0.0,
            "the rep's feedback leans to other: {reason:?}"
        );
        assert_eq!(c.label, Label::Procurement);
    }
}

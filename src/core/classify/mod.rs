//! The explainable classifier: weighted signals from the rules file (in the spirit of
//! SpamAssassin and rspamd) decide whether a message is a buyer's procurement-process demand and
//! which kind. Every signal that fired comes back as a `Reason`, so a rep can see why a draft was
//! proposed. Reading the rules file lives in `rules`, the rep's feedback layer in `feedback`;
//! fetching mail and storing feedback are left to the adapters.
//!
//! How a verdict is reached: each signal fires at most once and adds its weight to the total; a
//! signal with a category also adds its vote to that category. The label is procurement when the
//! total reaches `thresholds.procurement` and at least one category has a positive vote; the
//! category is the one with the largest vote (ties go to the earlier one in `Category::PROCUREMENT`).

mod feedback;
mod rules;

pub use feedback::{FeedbackModel, feedback_tokens};
pub use rules::{Error, FeedbackLimits, Field, RULES_VERSION, Rules, Signal, Thresholds};

use crate::core::mail::{Address, Mail};
use crate::core::model::{Category, Classification, Label, Reason};
use regex::bytes::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

/// Matched text in a reason is cut to about this many characters.
const MAX_MATCHED_CHARS: usize = 80;
/// Compiled programs may grow this large; the default is too small for long phrase families.
const REGEX_SIZE_LIMIT: usize = 64 * 1024 * 1024;

/// The rules, compiled once: one regex per signal, and per field one set that tells in a single
/// pass which of its signals can fire, so a message is scanned once per field, not once per signal.
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
    /// `None` for flag fields.
    regex: Option<Regex>,
    weight: f64,
    category: Option<Category>,
    vote: f64,
    /// Index into `Classifier::group_caps`.
    group: Option<usize>,
}

#[derive(Debug, Clone)]
struct FieldScan {
    field: Field,
    set: RegexSet,
    /// Index into `Classifier::signals` for each pattern of `set`.
    signal_of: Vec<usize>,
}

/// The lower-cased text of one message, made once per classification.
struct MailText {
    subject: String,
    body: String,
    sender: String,
    sender_name: String,
    attachments: String,
}

impl MailText {
    fn new(mail: &Mail) -> MailText {
        let from = mail.from.as_ref();
        MailText {
            subject: mail.subject.to_lowercase(),
            body: mail.body.to_lowercase(),
            sender: from.map(|a| a.email.to_lowercase()).unwrap_or_default(),
            sender_name: from
                .and_then(|a| a.name.as_deref())
                .map(str::to_lowercase)
                .unwrap_or_default(),
            attachments: mail.attachment_names.join("\n").to_lowercase(),
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
        let mut fields: Vec<Field> = signals
            .iter()
            .filter(|s| s.regex.is_some())
            .map(|s| s.field)
            .collect();
        fields.sort();
        fields.dedup();
        let scans = fields
            .into_iter()
            .map(|field| {
                let signal_of: Vec<usize> = signals
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.field == field && s.regex.is_some())
                    .map(|(i, _)| i)
                    .collect();
                let patterns = signal_of
                    .iter()
                    .filter_map(|&i| signals[i].regex.as_ref().map(Regex::as_str));
                let set = RegexSetBuilder::new(patterns)
                    .unicode(false)
                    .case_insensitive(true)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| Error::BadPattern {
                        signal: format!("{field:?} field set"),
                        message: e.to_string(),
                    })?;
                Ok(FieldScan {
                    field,
                    set,
                    signal_of,
                })
            })
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
            for haystack in haystacks(&text, scan.field) {
                for pattern in scan.set.matches(haystack.as_bytes()).iter() {
                    let i = scan.signal_of[pattern];
                    if fired[i].is_some() {
                        continue;
                    }
                    let regex = self.signals[i].regex.as_ref();
                    if let Some(m) = regex.and_then(|r| r.find(haystack.as_bytes())) {
                        fired[i] = Some(readable_match(m.as_bytes()));
                    }
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
            feedback.and_then(|m| m.nudge(&feedback_tokens(mail), &self.feedback_limits))
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

/// The texts a field reads, in the order they are searched.
fn haystacks(text: &MailText, field: Field) -> impl Iterator<Item = &str> {
    let (first, second) = match field {
        Field::Subject => (Some(&text.subject), None),
        Field::Body => (Some(&text.body), None),
        Field::Text => (Some(&text.subject), Some(&text.body)),
        Field::Sender => (Some(&text.sender), None),
        Field::SenderName => (Some(&text.sender_name), None),
        Field::Attachments => (Some(&text.attachments), None),
        Field::Bulk | Field::AutoSubmitted | Field::Internal => (None, None),
    };
    first.into_iter().chain(second).map(String::as_str)
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
/// organisation. Country domains with a second-level label (`example.co.uk`) keep three labels.
fn organisation_domain(domain: &str) -> &str {
    let labels: Vec<&str> = domain.rsplitn(4, '.').collect();
    let keep = match labels.as_slice() {
        [tld, sld, ..]
            if tld.len() == 2
                && matches!(*sld, "co" | "com" | "ac" | "gov" | "org" | "net" | "edu") =>
        {
            3
        }
        _ => 2,
    };
    let cut: usize = labels.iter().take(keep).map(|l| l.len() + 1).sum();
    &domain[domain.len().saturating_sub(cut.saturating_sub(1))..]
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
        .map(|p| {
            RegexBuilder::new(&p)
                // Text is lower-cased already; ASCII classes keep every pattern on the fast DFA.
                .unicode(false)
                .case_insensitive(true)
                .size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| Error::BadPattern {
                    signal: signal.name.clone(),
                    message: e.to_string(),
                })
        })
        .transpose()?;
    Ok(CompiledSignal {
        name: signal.name.clone(),
        field: signal.field,
        regex,
        weight: signal.weight,
        category: signal.category,
        vote: signal.category_vote(),
        group,
    })
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

//! The rep's own verdicts ("this was procurement", "this was not") turned into a small Naive Bayes
//! model over word tokens. It only nudges the rule score, within limits the rules file sets: it is
//! silent until it has seen enough examples of both labels, and capped so it cannot by itself
//! overturn strong rule evidence. Storing the examples is the store adapter's job; this module
//! says what a stored example holds (`feedback_tokens`).

use super::rules::FeedbackLimits;
use crate::core::mail::Mail;
use crate::core::model::{Label, Reason};
use std::collections::{BTreeMap, BTreeSet};

/// Only the top of a message speaks for it; quoted history further down repeats older mail.
const MAX_TOKEN_CHARS: usize = 4096;
/// Bounds what one feedback example costs the store.
const MAX_TOKENS: usize = 300;
/// How many tokens the explanation names.
const TOKENS_SHOWN: usize = 5;

/// Words short or common enough to say nothing about a message's kind.
const STOP_WORDS: &[&str] = &[
    "the", "and", "for", "you", "your", "our", "are", "with", "this", "that", "from", "have",
    "will", "not", "but", "all", "can", "was", "has", "any", "please", "thanks", "com", "www",
    "http", "https",
];

/// Word counts per label from the rep's feedback.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedbackModel {
    procurement_docs: u32,
    other_docs: u32,
    /// token -> (procurement examples containing it, other examples containing it)
    token_docs: BTreeMap<String, (u32, u32)>,
}

/// The tokens the store keeps per feedback example: distinct lower-cased words of the subject and
/// the top of the body, plus the sender's domain as `from:<domain>`. Sorted, so equal mail gives
/// equal examples.
pub fn feedback_tokens(mail: &Mail) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let body_top: String = mail.body.chars().take(MAX_TOKEN_CHARS).collect();
    for text in [mail.subject.as_str(), body_top.as_str()] {
        for word in text.split(|c: char| !c.is_alphanumeric()) {
            if seen.len() >= MAX_TOKENS {
                break;
            }
            let word = word.to_lowercase();
            let chars = word.chars().count();
            if (3..=20).contains(&chars)
                && !word.chars().all(|c| c.is_ascii_digit())
                && !STOP_WORDS.contains(&word.as_str())
            {
                seen.insert(word);
            }
        }
    }
    if let Some(from) = &mail.from {
        seen.insert(format!("from:{}", from.domain()));
    }
    seen.into_iter().collect()
}

impl FeedbackModel {
    pub fn train(examples: &[(Vec<String>, Label)]) -> FeedbackModel {
        let mut model = FeedbackModel::default();
        for (tokens, label) in examples {
            let distinct: BTreeSet<&String> = tokens.iter().collect();
            match label {
                Label::Procurement => model.procurement_docs += 1,
                Label::Other => model.other_docs += 1,
            }
            for token in distinct {
                let counts = model.token_docs.entry(token.clone()).or_default();
                match label {
                    Label::Procurement => counts.0 += 1,
                    Label::Other => counts.1 += 1,
                }
            }
        }
        model
    }

    /// Whether the model has enough examples of both labels to nudge a verdict.
    pub(super) fn is_ready(&self, limits: &FeedbackLimits) -> bool {
        let min = limits.min_examples_per_label;
        self.procurement_docs >= min && self.other_docs >= min
    }

    /// The nudge for a message with these tokens, as a `feedback-bayes` reason, or `None` while
    /// the model has too few examples of either label.
    pub(super) fn nudge(&self, tokens: &[String], limits: &FeedbackLimits) -> Option<Reason> {
        if !self.is_ready(limits) {
            return None;
        }
        let (p_docs, o_docs) = (f64::from(self.procurement_docs), f64::from(self.other_docs));
        // Laplace smoothing keeps a token seen under one label only from deciding alone.
        let mut contributions: Vec<(&str, f64)> = tokens
            .iter()
            .filter_map(|t| {
                let &(p, o) = self.token_docs.get(t)?;
                let in_procurement = (f64::from(p) + 1.0) / (p_docs + 2.0);
                let in_other = (f64::from(o) + 1.0) / (o_docs + 2.0);
                Some((t.as_str(), (in_procurement / in_other).ln()))
            })
            .collect();
        let prior = ((p_docs + 1.0) / (o_docs + 1.0)).ln();
        let log_odds = prior + contributions.iter().map(|(_, c)| c).sum::<f64>();
        let weight = (log_odds * limits.scale).clamp(-limits.max_nudge, limits.max_nudge);
        // Name the tokens that pushed hardest in the direction of the nudge.
        contributions.sort_by(|a, b| {
            (b.1 * weight.signum())
                .total_cmp(&(a.1 * weight.signum()))
                .then_with(|| a.0.cmp(b.0))
        });
        let matched = contributions
            .iter()
            .filter(|(_, c)| c * weight.signum() > 0.0)
            .take(TOKENS_SHOWN)
            .map(|(t, _)| *t)
            .collect::<Vec<_>>()
            .join(" ");
        Some(Reason {
            signal: "feedback-bayes".into(),
            weight: (weight * 1000.0).round() / 1000.0,
            matched,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_sorted_words_plus_sender_domain() {
        let raw = b"From: Pat <pat@Buyer.example>\r\nSubject: RFP RFP pricing\r\n\r\nThe pricing is due 2027.";
        let mail = Mail::parse(raw).unwrap();
        assert_eq!(
            feedback_tokens(&mail),
            ["due", "from:buyer.example", "pricing", "rfp"]
        );
    }

    #[test]
    fn train_counts_each_example_once_per_token() {
        let model = FeedbackModel::train(&[
            (vec!["rfp".into(), "rfp".into()], Label::Procurement),
            (vec!["rfp".into()], Label::Other),
        ]);
        assert_eq!(model.token_docs["rfp"], (1, 1));
        assert_eq!((model.procurement_docs, model.other_docs), (1, 1));
    }
}

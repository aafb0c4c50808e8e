//! The rules file a team lead edits: weighted signals, thresholds and the feedback-layer limits,
//! read from TOML and checked before anything is compiled. Errors name the file, the line and the
//! key so a typo in a hand-edited file is found in one look. Compiling the patterns is left to
//! `Classifier::new`.

use crate::core::model::Category;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The only rules-file format this build reads; an older or newer file fails loudly.
pub const RULES_VERSION: u32 = 1;

/// The built-in rules file, shown as it is when no `[classifier] rules` file is configured.
pub const BUILTIN_TOML: &str = include_str!("../../../config/rules.toml");

/// The whole rules file, as written.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Rules {
    pub version: u32,
    pub thresholds: Thresholds,
    #[serde(default)]
    pub feedback: FeedbackLimits,
    /// Group name -> the most its signals may add together. Signals that restate one fact
    /// ("this mail is about an RFP") are grouped so the fact counts once, not once per wording.
    #[serde(default)]
    pub groups: BTreeMap<String, f64>,
    #[serde(rename = "signal", default)]
    pub signals: Vec<Signal>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Thresholds {
    /// A message is procurement when its total score reaches this (and some category got a vote).
    pub procurement: f64,
}

/// How far the rep's own feedback may move a verdict.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FeedbackLimits {
    /// Below this many examples of either label the feedback layer stays silent.
    pub min_examples_per_label: u32,
    /// The nudge never exceeds this in either direction.
    pub max_nudge: f64,
    /// Score points per unit of Naive Bayes log-odds, before the cap.
    pub scale: f64,
}

impl Default for FeedbackLimits {
    fn default() -> Self {
        FeedbackLimits {
            min_examples_per_label: 5,
            max_nudge: 1.5,
            scale: 0.25,
        }
    }
}

/// Which part of a message a signal reads. Text is lower-cased, with each whitespace run collapsed
/// to one space, before matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Field {
    Subject,
    Body,
    /// Subject or body: the signal fires on whichever matches first (subject checked first).
    Text,
    /// The From address.
    Sender,
    /// The From display name.
    SenderName,
    /// Attachment file names, joined by " | ".
    Attachments,
    /// Fires when the message carries list or bulk headers; takes no pattern.
    Bulk,
    /// Fires when the message is an autoresponder or system notification; takes no pattern.
    AutoSubmitted,
    /// Fires when the sender and every recipient share one organisation's domain: colleagues
    /// talking among themselves, not a buyer writing to us; takes no pattern.
    Internal,
}

impl Field {
    /// Flag fields fire on a header marker, not on text.
    pub fn is_flag(self) -> bool {
        matches!(self, Field::Bulk | Field::AutoSubmitted | Field::Internal)
    }

    /// Whether a signal on this field reads the text named by `text_field` (`Text` reads both
    /// subject and body).
    pub fn reads(self, text_field: Field) -> bool {
        self == text_field
            || (self == Field::Text && matches!(text_field, Field::Subject | Field::Body))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Signal {
    pub name: String,
    pub field: Field,
    /// A regular expression (regex crate syntax, ASCII word classes), written in lower case: it is
    /// matched on lower-cased text.
    pub pattern: Option<String>,
    /// Literal phrases, matched as whole words; an alternative to `pattern`.
    #[serde(default)]
    pub phrases: Vec<String>,
    /// Added to the total score when the signal fires; negative for counter-evidence.
    pub weight: f64,
    /// The procurement category this signal votes for, if any.
    pub category: Option<Category>,
    /// The size of the category vote; defaults to `weight`.
    pub vote: Option<f64>,
    /// A group from `[groups]` whose cap limits this signal's positive contribution.
    pub group: Option<String>,
}

impl Signal {
    pub fn category_vote(&self) -> f64 {
        self.vote.unwrap_or(self.weight)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("cannot read rules {}:{line}: key `{key}`: {message}", file.display())]
    Invalid {
        file: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    #[error("cannot compile signal `{signal}`: {message}")]
    BadPattern { signal: String, message: String },
    #[error("cannot compile signal `{signal}`: group `{group}` is not defined")]
    UnknownGroup { signal: String, group: String },
    #[error("cannot compile signal `{signal}`: it has neither a pattern nor phrases")]
    NothingToMatch { signal: String },
}

impl Rules {
    /// The default rules shipped in `config/rules.toml`.
    pub fn builtin() -> Rules {
        // The shipped file is checked by a unit test, so a failure here is a build defect.
        Rules::from_toml(BUILTIN_TOML, Path::new("config/rules.toml"))
            .expect("the built-in config/rules.toml is valid")
    }

    pub fn from_toml(text: &str, path: &Path) -> Result<Rules, Error> {
        let rules: Rules = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let line = line_at(text, offset);
            Error::Invalid {
                file: path.to_path_buf(),
                line,
                key: key_on_line(text, line),
                message: e.message().to_string(),
            }
        })?;
        rules.check(text, path)?;
        Ok(rules)
    }

    /// Checks what serde cannot: the version, finite numbers, one way to match per signal and
    /// unique names. Each error points at the line where the offending signal starts.
    fn check(&self, text: &str, path: &Path) -> Result<(), Error> {
        let invalid = |line: usize, key: &str, message: String| Error::Invalid {
            file: path.to_path_buf(),
            line,
            key: key.to_string(),
            message,
        };
        if self.version != RULES_VERSION {
            return Err(invalid(
                line_of_key(text, "version", 0),
                "version",
                format!(
                    "this build reads version {RULES_VERSION}, the file says {}",
                    self.version
                ),
            ));
        }
        if !self.thresholds.procurement.is_finite() {
            return Err(invalid(
                line_of_key(text, "procurement", 0),
                "thresholds.procurement",
                "must be a finite number".into(),
            ));
        }
        let f = &self.feedback;
        if !(f.max_nudge.is_finite() && f.max_nudge >= 0.0 && f.scale.is_finite() && f.scale >= 0.0)
        {
            return Err(invalid(
                line_of_key(text, "max-nudge", 0),
                "feedback",
                "max-nudge and scale must be finite and not negative".into(),
            ));
        }
        for (group, cap) in &self.groups {
            if !(cap.is_finite() && *cap >= 0.0) {
                return Err(invalid(
                    line_of_key(text, group, 0),
                    group,
                    format!("group `{group}`: the cap must be a finite number, not negative"),
                ));
            }
        }
        let mut names = BTreeSet::new();
        for signal in &self.signals {
            let line = line_of_signal(text, &signal.name);
            if !names.insert(signal.name.as_str()) {
                return Err(invalid(
                    line,
                    "name",
                    format!("signal `{}` is defined twice", signal.name),
                ));
            }
            if !signal.weight.is_finite() || !signal.vote.is_none_or(f64::is_finite) {
                return Err(invalid(
                    line,
                    "weight",
                    format!("signal `{}`: weight and vote must be finite", signal.name),
                ));
            }
            if signal.category == Some(Category::None) {
                return Err(invalid(
                    line,
                    "category",
                    format!(
                        "signal `{}`: `none` is not a category to vote for; leave the key out",
                        signal.name
                    ),
                ));
            }
            if let Some(group) = &signal.group
                && !self.groups.contains_key(group)
            {
                return Err(invalid(
                    line,
                    "group",
                    format!(
                        "signal `{}`: group `{group}` is not defined in [groups]",
                        signal.name
                    ),
                ));
            }
            let has_pattern = signal.pattern.is_some();
            let has_phrases = !signal.phrases.is_empty();
            let problem = match (signal.field.is_flag(), has_pattern, has_phrases) {
                (true, false, false) | (false, true, false) | (false, false, true) => None,
                (true, _, _) => Some("a flag field takes neither pattern nor phrases"),
                (false, true, true) => Some("give either pattern or phrases, not both"),
                (false, false, false) => Some("needs a pattern or phrases"),
            };
            if let Some(problem) = problem {
                let key = if has_pattern { "pattern" } else { "phrases" };
                return Err(invalid(
                    line,
                    key,
                    format!("signal `{}`: {problem}", signal.name),
                ));
            }
            if let Some(upper) = signal.pattern.as_deref().and_then(uppercase_literal) {
                return Err(invalid(
                    line,
                    "pattern",
                    format!(
                        "signal `{}`: patterns match lower-cased text, so `{upper}` can never match; write it in lower case",
                        signal.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The first upper-case ASCII letter a pattern would match literally; escapes such as `\S`, `\B`
/// or `\P{..}` are not literals.
fn uppercase_literal(pattern: &str) -> Option<char> {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some('p' | 'P') = chars.next()
                    && chars.clone().next() == Some('{')
                {
                    chars.by_ref().find(|&c| c == '}');
                }
            }
            c if c.is_ascii_uppercase() => return Some(c),
            _ => {}
        }
    }
    None
}

/// 1-based line number of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text.as_bytes()[..offset]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The key written on a 1-based line (`key = value`), or the whole trimmed line when there is none.
fn key_on_line(text: &str, line: usize) -> String {
    let content = text
        .lines()
        .nth(line.saturating_sub(1))
        .unwrap_or("")
        .trim();
    content
        .split_once('=')
        .map_or(content, |(key, _)| key.trim())
        .to_string()
}

/// The first line at or after `from_line` that assigns `key`, or line 1.
fn line_of_key(text: &str, key: &str, from_line: usize) -> usize {
    text.lines()
        .enumerate()
        .skip(from_line)
        .find(|(_, l)| l.split_once('=').is_some_and(|(k, _)| k.trim() == key))
        .map_or(1, |(i, _)| i + 1)
}

/// The line of `name = "<signal>"` in the file.
fn line_of_signal(text: &str, signal: &str) -> usize {
    text.lines()
        .enumerate()
        .find(|(_, l)| {
            l.split_once('=').is_some_and(|(k, v)| {
                k.trim() == "name" && v.trim().trim_matches(['"', '\'']) == signal
            })
        })
        .map_or(1, |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Rules, Error> {
        Rules::from_toml(text, Path::new("rules.toml"))
    }

    fn invalid(text: &str) -> (usize, String, String) {
        match parse(text).unwrap_err() {
            Error::Invalid {
                line,
                key,
                message,
                file,
            } => {
                assert_eq!(file, Path::new("rules.toml"));
                (line, key, message)
            }
            other => panic!("expected Invalid, got {other}"),
        }
    }

    const HEAD: &str = "version = 1\n[thresholds]\nprocurement = 5.0\n";

    #[test]
    fn builtin_rules_are_valid_and_cover_every_category() {
        let rules = Rules::builtin();
        for category in Category::PROCUREMENT {
            assert!(
                rules.signals.iter().any(|s| s.category == Some(category)),
                "no signal votes for {category}"
            );
        }
        assert!(
            rules.signals.iter().any(|s| s.weight < 0.0),
            "no counter-evidence"
        );
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let text = format!("{HEAD}[[signal]]\nname = \"a\"\nfield = \"subject\"\nwieght = 2.0\n");
        let (line, key, message) = invalid(&text);
        assert_eq!((line, key.as_str()), (7, "wieght"), "{message}");
        assert!(message.contains("wieght"), "{message}");
    }

    #[test]
    fn wrong_value_type_names_line_and_key() {
        let text = format!(
            "{HEAD}[[signal]]\nname = \"a\"\nfield = \"subject\"\npattern = 'x'\nweight = \"heavy\"\n"
        );
        let (line, key, _) = invalid(&text);
        assert_eq!((line, key.as_str()), (8, "weight"));
        let text = format!(
            "{HEAD}[[signal]]\nname = \"a\"\nfield = \"headers\"\npattern = 'x'\nweight = 1.0\n"
        );
        let (line, key, _) = invalid(&text);
        assert_eq!((line, key.as_str()), (6, "field"));
    }

    #[test]
    fn version_mismatch_is_loud() {
        let (line, key, message) = invalid("version = 2\n[thresholds]\nprocurement = 5.0\n");
        assert_eq!((line, key.as_str()), (1, "version"));
        assert!(message.contains("reads version 1"), "{message}");
    }

    #[test]
    fn signal_problems_point_at_the_signal() {
        let both = format!(
            "{HEAD}\n[[signal]]\nname = \"ok\"\nfield = \"body\"\npattern = 'x'\nweight = 1.0\n\n\
             [[signal]]\nname = \"both\"\nfield = \"body\"\npattern = 'x'\nphrases = [\"y\"]\nweight = 1.0\n"
        );
        let (line, key, message) = invalid(&both);
        assert_eq!((line, key.as_str()), (12, "pattern"), "{message}");
        let flag = format!(
            "{HEAD}[[signal]]\nname = \"f\"\nfield = \"bulk\"\npattern = 'x'\nweight = -1.0\n"
        );
        assert!(invalid(&flag).2.contains("flag field"));
        let none = format!("{HEAD}[[signal]]\nname = \"n\"\nfield = \"body\"\nweight = 1.0\n");
        assert!(invalid(&none).2.contains("needs a pattern"));
        let group = format!(
            "{HEAD}[[signal]]\nname = \"g\"\nfield = \"body\"\npattern = 'x'\nweight = 1.0\ngroup = \"nope\"\n"
        );
        assert_eq!(invalid(&group).1, "group");
        let twice = format!(
            "{HEAD}[[signal]]\nname = \"d\"\nfield = \"body\"\npattern = 'x'\nweight = 1.0\n\
             [[signal]]\nname = \"d\"\nfield = \"body\"\npattern = 'y'\nweight = 1.0\n"
        );
        assert!(invalid(&twice).2.contains("defined twice"));
    }

    #[test]
    fn uppercase_in_a_pattern_is_caught() {
        let text = format!(
            "{HEAD}[[signal]]\nname = \"u\"\nfield = \"body\"\npattern = '\\bRFP\\b'\nweight = 1.0\n"
        );
        let (line, key, message) = invalid(&text);
        assert_eq!((line, key.as_str()), (5, "pattern"));
        assert!(message.contains("`R`"), "{message}");
        assert_eq!(uppercase_literal(r"\S+\B\P{Lu}\W"), None);
    }

    #[test]
    fn error_message_names_file_line_and_key() {
        let err = parse("version = 1\n[thresholds]\nprocurement = \"high\"\n").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read rules rules.toml:3: key `procurement`:"),
            "{err}"
        );
    }
}

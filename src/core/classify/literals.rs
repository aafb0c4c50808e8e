//! Required literals: for a signal's pattern, a few literal strings of which every match contains
//! at least one ("rfp" for `\brfps?\b`, "issued"/"released"/... for `we have issued an rfp`). A
//! signal whose literals are all absent from a text cannot fire there, so its regex is not run.
//! Read off the pattern's syntax tree; a pattern with no such literals (or only poor ones) gets
//! `None` and always runs.

use regex_syntax::hir::{Hir, HirKind};

/// Literals shorter than this match almost everywhere and would not spare a single regex run.
const MIN_USEFUL_LEN: usize = 3;

/// What every match of a pattern contains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Required {
    /// At least one of these occurs in every match.
    pub literals: Vec<Vec<u8>>,
    /// How many bytes before such a literal a match can start at most; `None` when unbounded.
    /// A search may then begin that far before the first literal found instead of at the start.
    pub lead: Option<usize>,
}

/// What every match of `pattern` (parsed as the classifier compiles it: bytes, ASCII classes)
/// contains, or `None` when no useful literals can be told.
pub fn required_literals(pattern: &str) -> Option<Required> {
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()?;
    required(&hir).filter(|r| shortest(&r.literals) >= MIN_USEFUL_LEN)
}

fn required(hir: &Hir) -> Option<Required> {
    match hir.kind() {
        HirKind::Literal(literal) => Some(Required {
            literals: vec![literal.0.to_vec()],
            lead: Some(0),
        }),
        HirKind::Capture(capture) => required(&capture.sub),
        // The first repetition starts the match and holds a literal.
        HirKind::Repetition(repetition) if repetition.min > 0 => required(&repetition.sub),
        // Every match goes through one branch: the union of what each branch requires.
        HirKind::Alternation(branches) => {
            let mut union = Required {
                literals: Vec::new(),
                lead: Some(0),
            };
            for branch in branches {
                let branch = required(branch)?;
                union.literals.extend(branch.literals);
                union.lead = union.lead.zip(branch.lead).map(|(a, b)| a.max(b));
            }
            union.literals.sort();
            union.literals.dedup();
            Some(union)
        }
        // Every part is in every match: the part whose literals are the rarest is enough.
        HirKind::Concat(parts) => {
            let (at, best) = parts
                .iter()
                .enumerate()
                .filter_map(|(at, part)| required(part).map(|r| (at, r)))
                .max_by_key(|(_, r)| {
                    (shortest(&r.literals), std::cmp::Reverse(r.literals.len()))
                })?;
            let before: Option<usize> = parts[..at]
                .iter()
                .map(|p| p.properties().maximum_len())
                .sum();
            Some(Required {
                lead: before.zip(best.lead).map(|(a, b)| a + b),
                ..best
            })
        }
        // Classes, optional parts, empty and look-around require no literal.
        _ => None,
    }
}

fn shortest(set: &[Vec<u8>]) -> usize {
    set.iter().map(Vec::len).min().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literals(pattern: &str) -> Option<Vec<String>> {
        required_literals(pattern).map(|r| {
            r.literals
                .into_iter()
                .map(|l| String::from_utf8(l).unwrap())
                .collect()
        })
    }

    #[test]
    fn picks_the_rarest_required_part() {
        assert_eq!(literals(r"\brfps?\b"), Some(vec!["rfp".into()]));
        assert_eq!(
            literals(r"\b(?:we\s+are|is)\s+(?:issuing|issued)\b"),
            Some(vec!["issued".into(), "issuing".into()])
        );
        assert_eq!(
            literals(r"\brfp\b|\brequest\s+for\s+proposal"),
            Some(vec!["proposal".into(), "rfp".into()])
        );
    }

    #[test]
    fn lead_bounds_where_a_match_starts_before_its_literal() {
        let lead = |pattern: &str| required_literals(pattern).unwrap().lead;
        assert_eq!(lead(r"\brfps?\b"), Some(0));
        assert_eq!(lead(r"\b(?:is|were)\s(?:issued|released)"), Some(5));
        assert_eq!(
            lead(r"\b(?:we|i)\s+would"),
            None,
            "a run of spaces has no bound"
        );
    }

    #[test]
    fn optional_short_or_open_parts_require_nothing() {
        assert_eq!(
            literals(r"\bx?rfp\b|\w+"),
            None,
            "a branch without literals"
        );
        assert_eq!(literals(r"(?:rfp)?\d+"), None, "an optional literal");
        assert_eq!(literals(r"\bis\b"), None, "too short to spare a run");
        assert_eq!(
            literals(r"(?i)rfp"),
            None,
            "case-folded letters are classes"
        );
        assert_eq!(literals("(unclosed"), None);
    }
}

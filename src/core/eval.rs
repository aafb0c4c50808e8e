//! Scoring the classifier against hand labels: reads a corpus's `labels.csv` and turns
//! (gold, predicted) pairs into precision, recall and F1, overall (procurement vs other) and per
//! category, with a category confusion table. Pure: reading files and printing belong to
//! `app::eval`; scoring deadlines belongs to the extractor.

use crate::core::model::{Category, Label};
use serde::Serialize;
use std::collections::BTreeMap;

/// One row of `labels.csv` (`file,label,category,...`; further columns are notes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoldLabel {
    pub file: String,
    pub label: Label,
    pub category: Category,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("cannot read labels.csv line {line}: {message}")]
    Labels { line: u64, message: String },
}

/// Parses `labels.csv`. The header must name `file`, `label` and `category`; other columns are
/// ignored so annotators can keep notes.
pub fn parse_labels(text: &str) -> Result<Vec<GoldLabel>, Error> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| Error::Labels {
        line: 1,
        message: e.to_string(),
    })?;
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| Error::Labels {
                line: 1,
                message: format!("no `{name}` column in the header"),
            })
    };
    let (file_col, label_col, category_col) =
        (column("file")?, column("label")?, column("category")?);
    let mut labels = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::Labels {
            line: e.position().map_or(0, |p| p.line()),
            message: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let field = |col: usize| record.get(col).unwrap_or("").trim();
        let label = match field(label_col) {
            "procurement" => Label::Procurement,
            "other" => Label::Other,
            other => {
                return Err(Error::Labels {
                    line,
                    message: format!("label `{other}` is neither `procurement` nor `other`"),
                });
            }
        };
        let category = Category::parse(field(category_col)).ok_or_else(|| Error::Labels {
            line,
            message: format!("unknown category `{}`", field(category_col)),
        })?;
        labels.push(GoldLabel {
            file: field(file_col).to_string(),
            label,
            category,
        });
    }
    Ok(labels)
}

/// Precision, recall and F1 from counts; an empty denominator scores 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Prf {
    pub true_positives: u32,
    pub false_positives: u32,
    pub false_negatives: u32,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Prf {
    pub fn from_counts(tp: u32, fp: u32, fn_: u32) -> Prf {
        let ratio = |num: u32, den: u32| {
            if den == 0 {
                0.0
            } else {
                f64::from(num) / f64::from(den)
            }
        };
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        Prf {
            true_positives: tp,
            false_positives: fp,
            false_negatives: fn_,
            precision,
            recall,
            f1,
        }
    }
}

/// One scored message: what the labels say and what the classifier said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub gold: (Label, Category),
    pub predicted: (Label, Category),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scorecard {
    pub messages: u32,
    pub gold_procurement: u32,
    pub predicted_procurement: u32,
    /// Procurement vs other.
    pub overall: Prf,
    /// Share of correctly labelled procurement messages that also got the right category.
    pub category_accuracy: f64,
    pub per_category: BTreeMap<Category, Prf>,
    /// gold category -> predicted category -> count (`none` for other).
    pub confusion: BTreeMap<Category, BTreeMap<Category, u32>>,
}

impl Scorecard {
    pub fn score(outcomes: &[Outcome]) -> Scorecard {
        let is_procurement = |l: Label| l == Label::Procurement;
        let count = |f: &dyn Fn(&Outcome) -> bool| {
            u32::try_from(outcomes.iter().filter(|o| f(o)).count()).unwrap_or(u32::MAX)
        };
        let overall = Prf::from_counts(
            count(&|o| is_procurement(o.gold.0) && is_procurement(o.predicted.0)),
            count(&|o| !is_procurement(o.gold.0) && is_procurement(o.predicted.0)),
            count(&|o| is_procurement(o.gold.0) && !is_procurement(o.predicted.0)),
        );
        let right_category = count(&|o| {
            is_procurement(o.gold.0) && is_procurement(o.predicted.0) && o.gold.1 == o.predicted.1
        });
        let category_accuracy = if overall.true_positives == 0 {
            0.0
        } else {
            f64::from(right_category) / f64::from(overall.true_positives)
        };
        let per_category = Category::PROCUREMENT
            .into_iter()
            .filter(|&c| outcomes.iter().any(|o| o.gold.1 == c || o.predicted.1 == c))
            .map(|c| {
                let prf = Prf::from_counts(
                    count(&|o| o.gold.1 == c && o.predicted.1 == c),
                    count(&|o| o.gold.1 != c && o.predicted.1 == c),
                    count(&|o| o.gold.1 == c && o.predicted.1 != c),
                );
                (c, prf)
            })
            .collect();
        let mut confusion: BTreeMap<Category, BTreeMap<Category, u32>> = BTreeMap::new();
        for o in outcomes {
            *confusion
                .entry(o.gold.1)
                .or_default()
                .entry(o.predicted.1)
                .or_default() += 1;
        }
        Scorecard {
            messages: u32::try_from(outcomes.len()).unwrap_or(u32::MAX),
            gold_procurement: count(&|o| is_procurement(o.gold.0)),
            predicted_procurement: count(&|o| is_procurement(o.predicted.0)),
            overall,
            category_accuracy,
            per_category,
            confusion,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(gold: (Label, Category), predicted: (Label, Category)) -> Outcome {
        Outcome { gold, predicted }
    }

    const RFP: (Label, Category) = (Label::Procurement, Category::Rfp);
    const RFQ: (Label, Category) = (Label::Procurement, Category::Rfq);
    const OTHER: (Label, Category) = (Label::Other, Category::None);

    #[test]
    fn parses_labels_and_ignores_note_columns() {
        let text = "file,label,category,source,note\n\
                    a.eml,procurement,rfp,x,\"a, quoted note\"\n\
                    b.eml,other,none,y,\n";
        let labels = parse_labels(text).unwrap();
        assert_eq!(labels.len(), 2);
        assert_eq!(labels[0].file, "a.eml");
        assert_eq!(labels[0].category, Category::Rfp);
        assert_eq!(labels[1].label, Label::Other);
    }

    #[test]
    fn bad_label_names_its_line() {
        let err = parse_labels("file,label,category\na.eml,procurement,rfp\nb.eml,maybe,none\n")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read labels.csv line 3: label `maybe` is neither `procurement` nor `other`"
        );
        assert!(
            parse_labels("file,category\n").is_err(),
            "missing label column"
        );
    }

    #[test]
    fn overall_and_per_category_figures() {
        let outcomes = [
            outcome(RFP, RFP),
            outcome(RFP, RFQ),   // right label, wrong category
            outcome(RFQ, OTHER), // missed
            outcome(OTHER, RFP), // false alarm
            outcome(OTHER, OTHER),
        ];
        let card = Scorecard::score(&outcomes);
        assert_eq!(card.messages, 5);
        assert_eq!(card.overall.true_positives, 2);
        assert_eq!(card.overall.false_positives, 1);
        assert_eq!(card.overall.false_negatives, 1);
        assert!((card.overall.precision - 2.0 / 3.0).abs() < 1e-9);
        assert!((card.overall.recall - 2.0 / 3.0).abs() < 1e-9);
        assert!((card.category_accuracy - 0.5).abs() < 1e-9);
        let rfp = card.per_category[&Category::Rfp];
        assert_eq!(
            (rfp.true_positives, rfp.false_positives, rfp.false_negatives),
            (1, 1, 1)
        );
        assert_eq!(card.confusion[&Category::Rfq][&Category::None], 1);
        assert!(!card.per_category.contains_key(&Category::Portal));
    }

    #[test]
    fn empty_denominators_score_zero() {
        let prf = Prf::from_counts(0, 0, 0);
        assert_eq!((prf.precision, prf.recall, prf.f1), (0.0, 0.0, 0.0));
    }
}

//! `pushback eval DIR [--rules PATH] [--json]`: runs the classifier over a labelled folder
//! (`labels.csv` beside the `.eml` files) and reports precision, recall and F1 overall and per
//! category, the messages it got wrong with the reasons that misled it, and the files it could not
//! read. The figures themselves come from `core::eval`; deadline scoring belongs to the extractor
//! and is reported in its own section.

use crate::core::classify::{Classifier, Rules};
use crate::core::eval::{Outcome, Prf, Scorecard, parse_labels};
use crate::core::extract::{self, eval::DeadlineScore, eval::score_deadlines};
use crate::core::mail::Mail;
use crate::core::model::{Category, Classification, Deadline, Label, Reason};
use anyhow::Context;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// How many reasons a misclassified message shows.
const REASONS_SHOWN: usize = 4;

#[derive(Debug, Serialize)]
struct Report {
    dir: String,
    rules: String,
    scorecard: Scorecard,
    /// Labelled files that could not be read or parsed; scored as `other`, as the daemon skips them.
    errors: Vec<FileError>,
    misclassified: Vec<Miss>,
    deadlines: DeadlineSection,
}

#[derive(Debug, Serialize)]
struct FileError {
    file: String,
    error: String,
}

#[derive(Debug, Serialize)]
struct Miss {
    file: String,
    gold_label: Label,
    gold_category: Category,
    predicted_label: Label,
    predicted_category: Category,
    score: f64,
    top_reasons: Vec<Reason>,
}

/// What the eval can say about deadline extraction for this folder.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "detail")]
enum DeadlineSection {
    /// The folder has no `deadlines.csv`.
    NoGold,
    /// Extraction scored against `deadlines.csv`.
    Scored(DeadlineScore),
}

pub fn run(dir: &Path, rules: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let (rules, rules_name) = match rules {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read rules file {}", path.display()))?;
            (Rules::from_toml(&text, path)?, path.display().to_string())
        }
        None => (Rules::builtin(), "built-in".to_string()),
    };
    let classifier = Classifier::new(&rules)?;
    let labels_path = dir.join("labels.csv");
    let labels_text = std::fs::read_to_string(&labels_path).with_context(|| {
        format!(
            "cannot read {} (eval needs a labelled folder)",
            labels_path.display()
        )
    })?;
    let gold = parse_labels(&labels_text).with_context(|| labels_path.display().to_string())?;

    let mut outcomes = Vec::with_capacity(gold.len());
    let mut errors = Vec::new();
    let mut misclassified = Vec::new();
    let mut deadlines_found: BTreeMap<String, Vec<Deadline>> = BTreeMap::new();
    for g in &gold {
        let classified = std::fs::read(dir.join(&g.file))
            .map_err(|e| format!("cannot read file: {e}"))
            .and_then(|raw| Mail::parse(&raw).map_err(|e| e.to_string()))
            .map(|mail| {
                deadlines_found.insert(g.file.clone(), extract::extract(&mail).deadlines);
                classifier.classify(&mail, None)
            });
        let predicted = match &classified {
            Ok(c) => (c.label, c.category),
            Err(error) => {
                errors.push(FileError {
                    file: g.file.clone(),
                    error: error.clone(),
                });
                (Label::Other, Category::None)
            }
        };
        let outcome = Outcome {
            gold: (g.label, g.category),
            predicted,
        };
        if let Ok(c) = &classified
            && outcome.gold != outcome.predicted
        {
            misclassified.push(miss(&g.file, outcome, c));
        }
        outcomes.push(outcome);
    }

    let report = Report {
        dir: dir.display().to_string(),
        rules: rules_name,
        scorecard: Scorecard::score(&outcomes),
        errors,
        misclassified,
        deadlines: deadline_section(dir, &deadlines_found)?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

fn miss(file: &str, outcome: Outcome, classification: &Classification) -> Miss {
    let mut top_reasons = classification.reasons.clone();
    top_reasons.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
    top_reasons.truncate(REASONS_SHOWN);
    Miss {
        file: file.to_string(),
        gold_label: outcome.gold.0,
        gold_category: outcome.gold.1,
        predicted_label: outcome.predicted.0,
        predicted_category: outcome.predicted.1,
        score: classification.score,
        top_reasons,
    }
}

/// Scores extraction when the folder has a `deadlines.csv` (the dates a person read off each mail).
fn deadline_section(
    dir: &Path,
    found: &BTreeMap<String, Vec<Deadline>>,
) -> anyhow::Result<DeadlineSection> {
    let path = dir.join("deadlines.csv");
    if !path.is_file() {
        return Ok(DeadlineSection::NoGold);
    }
    let gold = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let score = score_deadlines(&gold, found)
        .map_err(|e| anyhow::anyhow!("cannot score {}: {e}", path.display()))?;
    Ok(DeadlineSection::Scored(score))
}

fn table(report: &Report) -> String {
    let card = &report.scorecard;
    let mut out = String::new();
    let line = |out: &mut String, name: &str, prf: &Prf| {
        let _ = writeln!(
            out,
            "{name:<24} {:>9.3} {:>9.3} {:>9.3} {:>5} {:>5} {:>5}",
            prf.precision,
            prf.recall,
            prf.f1,
            prf.true_positives,
            prf.false_positives,
            prf.false_negatives
        );
    };
    let _ = writeln!(out, "eval of {} (rules: {})", report.dir, report.rules);
    let _ = writeln!(
        out,
        "{} messages, {} labelled procurement, {} predicted procurement, {} unreadable\n",
        card.messages,
        card.gold_procurement,
        card.predicted_procurement,
        report.errors.len()
    );
    let _ = writeln!(
        out,
        "{:<24} {:>9} {:>9} {:>9} {:>5} {:>5} {:>5}",
        "", "precision", "recall", "f1", "tp", "fp", "fn"
    );
    line(&mut out, "overall (procurement)", &card.overall);
    for (category, prf) in &card.per_category {
        line(&mut out, &format!("  {category}"), prf);
    }
    let _ = writeln!(
        out,
        "category accuracy among true positives: {:.3}\n",
        card.category_accuracy
    );

    let _ = writeln!(out, "confusion (gold -> predicted: count)");
    for (gold, row) in &card.confusion {
        let cells: Vec<String> = row.iter().map(|(p, n)| format!("{p}: {n}")).collect();
        let _ = writeln!(out, "  {gold:<24} {}", cells.join(", "));
    }

    if !report.errors.is_empty() {
        let _ = writeln!(out, "\nunreadable files (scored as other)");
        for e in &report.errors {
            let _ = writeln!(out, "  {}: {}", e.file, e.error);
        }
    }
    if !report.misclassified.is_empty() {
        let _ = writeln!(
            out,
            "\nmisclassified (gold -> predicted, score, top reasons)"
        );
        for m in &report.misclassified {
            let _ = writeln!(
                out,
                "  {}: {}/{} -> {}/{} ({:.1})",
                m.file,
                m.gold_label.as_str(),
                m.gold_category,
                m.predicted_label.as_str(),
                m.predicted_category,
                m.score
            );
            for r in &m.top_reasons {
                let _ = writeln!(
                    out,
                    "      {:+5.1} {:<28} {:?}",
                    r.weight, r.signal, r.matched
                );
            }
        }
    }
    match &report.deadlines {
        DeadlineSection::NoGold => {}
        DeadlineSection::Scored(score) => {
            let _ = writeln!(
                out,
                "\ndeadline extraction (against deadlines.csv)\n{score}"
            );
        }
    }
    out
}

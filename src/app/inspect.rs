//! Commands that look at mail files without touching the mailbox or the store: `classify` (what
//! pushback thinks of each message, and why), `draft` (the reply it would write) and `templates
//! preview` (one template rendered against a message, also the web page's team-lead preview).

use crate::adapters::templates::Templates;
use crate::app::pipeline::{ComposeOptions, Pipeline};
use crate::core::draft::{self, FollowUpInfo};
use crate::core::model::{Category, Facts, Label, Reason};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The `classify --json` line for one message.
#[derive(Serialize)]
#[serde(untagged)]
pub enum ClassifyLine {
    Verdict {
        path: String,
        label: Label,
        category: Category,
        score: f64,
        reasons: Vec<Reason>,
        facts: Box<Facts>,
    },
    Failure {
        path: String,
        error: String,
    },
}

/// Expands the arguments into message files: files as given, directories walked recursively for
/// `*.eml`, in a stable order.
pub fn message_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            collect_eml(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

fn collect_eml(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read directory {}", dir.display()))?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_eml(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("eml"))
        {
            files.push(path);
        }
    }
    Ok(())
}

pub fn classify_file(pipeline: &Pipeline, path: &Path) -> ClassifyLine {
    let shown = path.display().to_string();
    let raw = match std::fs::read(path) {
        Ok(raw) => raw,
        Err(error) => {
            return ClassifyLine::Failure {
                path: shown,
                error: format!("cannot read file: {error}"),
            };
        }
    };
    match pipeline.analyse(&raw) {
        Ok(analysis) => ClassifyLine::Verdict {
            path: shown,
            label: analysis.classification.label,
            category: analysis.classification.category,
            score: analysis.classification.score,
            reasons: analysis.classification.reasons,
            facts: Box::new(analysis.facts),
        },
        Err(error) => ClassifyLine::Failure {
            path: shown,
            error: error.to_string(),
        },
    }
}

/// A one-line human summary: label, category, score and the strongest reasons.
pub fn summary_line(line: &ClassifyLine) -> String {
    match line {
        ClassifyLine::Failure { path, error } => format!("{path}: error: {error}"),
        ClassifyLine::Verdict {
            path,
            label,
            category,
            score,
            reasons,
            facts,
        } => {
            let mut text = format!(
                "{path}: {} {} (score {score:.1})",
                label.as_str(),
                category.as_str()
            );
            let why = top_reasons(reasons);
            if !why.is_empty() {
                text.push_str(&format!("\n    why: {why}"));
            }
            for deadline in &facts.deadlines {
                text.push_str(&format!(
                    "\n    {}: {}{}{}{}",
                    deadline.kind.as_str(),
                    deadline
                        .date
                        .map_or("date unknown".into(), |d| d.to_string()),
                    deadline
                        .time
                        .map_or(String::new(), |t| format!(" {}", t.format("%H:%M"))),
                    deadline
                        .zone
                        .as_deref()
                        .map_or(String::new(), |z| format!(" {z}")),
                    if deadline.ambiguous {
                        " (ambiguous)"
                    } else {
                        ""
                    }
                ));
            }
            text
        }
    }
}

/// The three strongest signals, as "signal (+weight)".
pub fn top_reasons(reasons: &[Reason]) -> String {
    let mut reasons: Vec<_> = reasons.iter().collect();
    reasons.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
    reasons
        .iter()
        .take(3)
        .map(|r| format!("{} ({:+.1})", r.signal, r.weight))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reply pushback would write to `path`, as a complete RFC 5322 message. Mail that is not
/// procurement still gets a draft (the rep asked for one), with a warning on stderr from the caller.
pub fn draft_for_file(
    pipeline: &Pipeline,
    path: &Path,
    now: DateTime<Utc>,
) -> Result<(bool, Vec<u8>)> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let analysis = pipeline
        .analyse(&raw)
        .with_context(|| format!("cannot parse {}", path.display()))?;
    let composed = pipeline.compose(&analysis, ComposeOptions::default(), now, 1)?;
    Ok((analysis.is_procurement(), composed.reply.raw))
}

/// Template `name` rendered against the message `raw`. No calendar is read for a preview: it
/// offers sample times after `now`; `follow_up` is previewed as the first of two, as if we had
/// answered the mail the day it came.
pub fn preview_template(
    pipeline: &Pipeline,
    name: &str,
    raw: &[u8],
    now: DateTime<Utc>,
) -> Result<String> {
    let analysis = pipeline.analyse(raw)?;
    let rep_tz = pipeline.timezone();
    let mut context = pipeline.context(&analysis, &draft::sample_slots(now, rep_tz));
    if Templates::is_follow_up(name) {
        let info = FollowUpInfo {
            number: 1,
            max: 2,
            sent_at: analysis.mail.date.map_or(now, |d| d.to_utc()),
            business_days: 3,
        };
        context = context.with_follow_up(&info, rep_tz, now);
    }
    Ok(pipeline.templates().render_named(name, &context)?)
}

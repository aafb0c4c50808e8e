//! The whole per-message path over mail-parser's own test corpus (`resources/eml` in the crate's
//! source, which cargo has unpacked to build it): malformed, legacy, RFC and third-party messages.
//! Every one must come out as a result (analysed or refused with a reason), never as a panic:
//! parse, classify, extract, plan the deadline reminders, read it as a buyer's reply, and compose
//! a draft (for every message, not only procurement mail, so the composer meets them all).

use chrono::{TimeZone, Utc};
use pushback::app::followups::{self, Timekeeping};
use pushback::app::pipeline::ComposeOptions;
use pushback::config::Config;
use pushback::core::reply;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

/// mail-parser's unpacked source, the version this project builds with.
fn corpus_root() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
        .expect("Cargo.lock");
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"mail-parser\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .expect("mail-parser in Cargo.lock");
    let registry = home.join("registry").join("src");
    std::fs::read_dir(&registry)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", registry.display()))
        .map(|e| e.unwrap().path().join(format!("mail-parser-{version}")))
        .find(|p| p.join("resources/eml").is_dir())
        .unwrap_or_else(|| {
            panic!(
                "mail-parser {version}'s source is not under {}",
                registry.display()
            )
        })
        .join("resources/eml")
}

fn messages(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            messages(&path, out);
        } else if path.extension().is_some_and(|e| e == "eml") {
            out.push(path);
        }
    }
}

#[test]
fn no_message_in_mail_parsers_corpus_makes_the_pipeline_panic() {
    let root = corpus_root();
    let mut files = Vec::new();
    messages(&root, &mut files);
    files.sort();
    assert!(
        files.len() > 100,
        "only {} messages under {}",
        files.len(),
        root.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let config = Config::demo(&dir.path().join("Maildir"), &dir.path().join("state"));
    let pipeline = pushback::app::pipeline_for(&config).unwrap();
    let keeping = Timekeeping::of(&config);
    let now = Utc.with_ymd_and_hms(2027, 3, 1, 9, 0, 0).unwrap();
    let (mut analysed, mut refused, mut drafted, mut undraftable) = (0, 0, 0, 0);
    let mut panics = Vec::new();
    for file in &files {
        let raw = std::fs::read(file).unwrap();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let Ok(analysis) = pipeline.analyse(&raw) else {
                return None;
            };
            let _ = followups::deadline_reminders(&analysis, &keeping, now);
            let _ = reply::classify_reply(&analysis.mail);
            Some(
                pipeline
                    .compose(&analysis, ComposeOptions::default(), now, 1)
                    .is_ok(),
            )
        }));
        match outcome {
            Ok(None) => refused += 1,
            Ok(Some(draft)) => {
                analysed += 1;
                if draft {
                    drafted += 1;
                } else {
                    undraftable += 1;
                }
            }
            Err(_) => panics.push(file.strip_prefix(&root).unwrap().display().to_string()),
        }
    }
    eprintln!(
        "{} messages: {analysed} analysed ({drafted} drafted, {undraftable} refused by the composer: no \
         sender to reply to), {refused} refused with a reason, {} panics",
        files.len(),
        panics.len()
    );
    assert!(panics.is_empty(), "panics on: {panics:#?}");
}

//! Golden tests for fact extraction: every `tests/fixtures/extract/*.eml` is parsed and extracted,
//! and the facts must equal `<name>.expected.json` beside it. On a mismatch the actual facts are
//! written to `<name>.actual.json` so the difference is one `diff` away.
//!
//! Also holds the corpus measuring driver (ignored): `PUSHBACK_CORPUS=/path/to/corpus/dev cargo
//! test --test extract_golden -- --ignored --nocapture` scores deadlines against `deadlines.csv`.

use pushback::core::extract::{eval, extract};
use pushback::core::mail::Mail;
use pushback::core::model::Facts;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extract")
}

#[test]
fn fixtures_match_expected_facts() {
    let mut ran = 0;
    let mut failures = Vec::new();
    let mut paths: Vec<PathBuf> = fs::read_dir(fixture_dir())
        .expect("fixture dir exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    paths.sort();
    for path in paths {
        let raw = fs::read(&path).unwrap();
        let mail = Mail::parse(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let actual = extract(&mail);
        let expected_path = path.with_extension("expected.json");
        let actual_path = path.with_extension("actual.json");
        let expected: Option<Facts> = fs::read_to_string(&expected_path).ok().map(|text| {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()))
        });
        if expected.as_ref() == Some(&actual) {
            let _ = fs::remove_file(&actual_path);
        } else {
            fs::write(
                &actual_path,
                serde_json::to_string_pretty(&actual).unwrap() + "\n",
            )
            .unwrap();
            failures.push(format!(
                "{}: facts differ; diff {} {}",
                path.display(),
                expected_path.display(),
                actual_path.display()
            ));
        }
        ran += 1;
    }
    assert!(ran > 0, "no fixtures ran from {}", fixture_dir().display());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Measuring tool, not a test: scores extracted deadlines against a corpus folder's deadlines.csv.
#[test]
#[ignore = "needs PUSHBACK_CORPUS pointing at a corpus folder"]
fn corpus_deadline_score() {
    let Ok(dir) = std::env::var("PUSHBACK_CORPUS") else {
        println!("PUSHBACK_CORPUS not set; skipping the corpus deadline score");
        return;
    };
    let dir = PathBuf::from(dir);
    let gold = fs::read_to_string(dir.join("deadlines.csv")).expect("deadlines.csv");
    let mut found = BTreeMap::new();
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect();
    files.sort();
    let verbose = std::env::var_os("PUSHBACK_VERBOSE").is_some();
    let mut mails = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Ok(mail) = Mail::parse(&fs::read(&path).unwrap()) else {
            continue;
        };
        let facts = extract(&mail);
        mails.push(mail);
        if verbose {
            for d in &facts.deadlines {
                println!(
                    "{name}\t{}\t{}\t{}\t{}\t{}\t{}",
                    d.kind.as_str(),
                    d.date.map(|x| x.to_string()).unwrap_or_default(),
                    d.time
                        .map(|x| x.format("%H:%M").to_string())
                        .unwrap_or_default(),
                    d.zone.as_deref().unwrap_or(""),
                    if d.ambiguous { "AMBIG" } else { "" },
                    d.text
                );
            }
        }
        found.insert(name, facts.deadlines);
    }
    let score = eval::score_deadlines(&gold, &found).expect("score");
    println!("{}\n{score}", dir.display());
    // Throughput of extraction alone over the same mails; meaningful with --release.
    let start = std::time::Instant::now();
    let rounds = 20;
    for _ in 0..rounds {
        for mail in &mails {
            std::hint::black_box(extract(mail));
        }
    }
    let per_second = (rounds * mails.len()) as f64 / start.elapsed().as_secs_f64();
    println!("  extract throughput     {per_second:.0} msgs/s (one thread)");
}

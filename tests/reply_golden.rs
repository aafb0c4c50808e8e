//! Golden test for reply detection: every `tests/fixtures/reply/*.eml` must get the kind, return
//! date and follow-up decision listed in `expected.csv` (file,kind,returns_on,cancels). On a
//! mismatch the full verdict (with its reasons) is written beside the fixture as
//! `<name>.actual.txt`, so the diff is one command away.

use chrono::NaiveDate;
use pushback::core::mail::Mail;
use pushback::core::reply::{ReplyKind, classify_reply};
use std::path::Path;

#[test]
fn fixtures_get_their_expected_verdicts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/reply");
    let expected = std::fs::read_to_string(dir.join("expected.csv")).unwrap();
    let mut lines = expected.lines().filter(|l| !l.trim().is_empty());
    assert_eq!(lines.next(), Some("file,kind,returns_on,cancels"));

    let mut ran = 0;
    let mut failures = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [file, kind, returns_on, cancels] = fields[..] else {
            panic!("expected.csv: cannot read row {line:?}");
        };
        let returns_on = (!returns_on.is_empty()).then(|| {
            NaiveDate::parse_from_str(returns_on, "%Y-%m-%d")
                .unwrap_or_else(|e| panic!("expected.csv: {file}: {e}"))
        });
        let cancels: bool = cancels
            .parse()
            .unwrap_or_else(|e| panic!("expected.csv: {file}: {e}"));

        let path = dir.join(file);
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mail = Mail::parse(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let verdict = classify_reply(&mail);
        ran += 1;

        let actual_returns_on = match verdict.kind {
            ReplyKind::OutOfOffice { returns_on } => returns_on,
            _ => None,
        };
        let actual_path = path.with_extension("actual.txt");
        if (
            verdict.kind.as_str(),
            actual_returns_on,
            verdict.cancels_follow_up,
        ) == (kind, returns_on, cancels)
        {
            // A stale file from an earlier failure would point at a problem that is gone.
            let _ = std::fs::remove_file(&actual_path);
        } else {
            std::fs::write(&actual_path, format!("{verdict:#?}\n")).unwrap();
            failures.push(format!(
                "{file}: expected {kind}/{returns_on:?}/cancels={cancels}, got {}/{actual_returns_on:?}/cancels={} (see {})",
                verdict.kind.as_str(),
                verdict.cancels_follow_up,
                actual_path.display()
            ));
        }
    }

    // Every fixture on disk is listed, so a new one cannot be skipped silently.
    let on_disk = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".eml"))
        .count();
    assert_eq!(on_disk, ran, "every .eml needs a row in expected.csv");
    assert!(ran >= 9, "only {ran} fixtures ran");
    assert!(
        failures.is_empty(),
        "{} of {ran} fixtures misclassified:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

//! Golden test for the classifier: every `tests/fixtures/classify/*.eml` must get the label and
//! category listed in `labels.csv`. On a mismatch the full classification (score and reasons)
//! is written beside the fixture as `<name>.actual.json`, so the diff is one command away.

use pushback::core::classify::{Classifier, Rules};
use pushback::core::eval::parse_labels;
use pushback::core::mail::Mail;
use std::path::Path;

#[test]
fn fixtures_get_their_expected_verdicts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/classify");
    let expected_text = std::fs::read_to_string(dir.join("labels.csv")).unwrap();
    let expected = parse_labels(&expected_text).unwrap();
    let classifier = Classifier::new(&Rules::builtin()).unwrap();

    let mut failures = Vec::new();
    for case in &expected {
        let path = dir.join(&case.file);
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mail = Mail::parse(&raw).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let actual = classifier.classify(&mail, None);
        let actual_path = path.with_extension("actual.json");
        if (actual.label, actual.category) == (case.label, case.category) {
            // A stale file from an earlier failure would point at a problem that is gone.
            let _ = std::fs::remove_file(&actual_path);
        } else {
            std::fs::write(&actual_path, serde_json::to_string_pretty(&actual).unwrap()).unwrap();
            failures.push(format!(
                "{}: expected {}/{}, got {}/{} (see {})",
                case.file,
                case.label.as_str(),
                case.category,
                actual.label.as_str(),
                actual.category,
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
    assert_eq!(
        on_disk,
        expected.len(),
        "every .eml needs a row in labels.csv"
    );
    assert!(!expected.is_empty(), "no fixtures ran");
    assert!(
        failures.is_empty(),
        "{} of {} fixtures misclassified:\n{}",
        failures.len(),
        expected.len(),
        failures.join("\n")
    );
}

//! Replays, under a plain `cargo test`, every input in `fuzz/regressions/<target>/` (each once
//! found a bug) and the committed corpus `fuzz/corpus/<target>/` through the same per-input
//! function the fuzz target calls (`pushback::fuzzing`), so a fixed bug stays fixed without
//! libFuzzer or a nightly toolchain.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    let mut failed = Vec::new();
    for dir in [
        fuzz.join("regressions").join(target),
        fuzz.join("corpus").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap();
            count += 1;
            if catch_unwind(AssertUnwindSafe(|| run(&data))).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    assert!(count > 0, "no inputs for {target} under {}", fuzz.display());
    assert!(failed.is_empty(), "{target} fails on: {failed:#?}");
}

#[test]
fn pipeline_inputs() {
    replay("pipeline", pushback::fuzzing::pipeline);
}

#[test]
fn template_inputs() {
    replay("template", pushback::fuzzing::template);
}

#[test]
fn config_inputs() {
    replay("config", pushback::fuzzing::config);
}

#[test]
fn imap_response_inputs() {
    replay("imap_response", pushback::fuzzing::imap_response);
}

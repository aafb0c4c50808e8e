//! A short run of every fuzz target (`fuzz/`, cargo-fuzz on libFuzzer) from its committed corpus:
//! a new crash, hang or out-of-memory in the code the targets reach fails the test suite. The long
//! runs and their figures are in docs/reliability.md, "Fuzzing".
//!
//! Needs cargo-fuzz (`cargo install cargo-fuzz --locked`, which .ci/run does). Without it the
//! test fails in CI (CI=true) and is skipped, with a notice, elsewhere. cargo-fuzz needs nightly
//! flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

const TARGETS: [&str; 4] = ["pipeline", "template", "config", "imap_response"];
/// Seconds of fuzzing per target, after the corpus has been replayed.
const SECONDS: u32 = 15;
/// The build the long runs use (docs/reliability.md): release with debug assertions, no
/// AddressSanitizer (the code the targets reach is safe Rust), so a fuzzing machine builds once.
const BUILD_FLAGS: [&str; 1] = ["--sanitizer=none"];

fn cargo_fuzz(fuzz_dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO"));
    command
        .arg("fuzz")
        .current_dir(fuzz_dir)
        .env("RUSTC_BOOTSTRAP", "1")
        .env_remove("RUSTFLAGS");
    // What cargo set for this test is not the fuzz build's: build scripts (ring's) rerun when
    // CARGO_PKG_NAME and the like change, which rebuilt the TLS stack on every run.
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str()
            && (CARGO_SET.iter().any(|prefix| name.starts_with(prefix)) || name == "OUT_DIR")
        {
            command.env_remove(name);
        }
    }
    command
}

/// The prefixes of the variables cargo sets for a test run.
const CARGO_SET: [&str; 7] = [
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_CRATE_",
    "CARGO_BIN_",
    "CARGO_PRIMARY_",
    "CARGO_TARGET_",
    "CARGO_RUSTC_",
];

#[test]
fn every_fuzz_target_survives_a_short_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fuzz_dir = root.join("fuzz");
    let installed = cargo_fuzz(&fuzz_dir)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        let why = "cargo-fuzz is not installed; install it with `cargo install cargo-fuzz --locked` \
                   (.ci/run does)";
        assert!(std::env::var_os("CI").is_none_or(|v| v != "true"), "{why}");
        eprintln!("skipped: {why}");
        return;
    }
    let started = Instant::now();
    let status = cargo_fuzz(&fuzz_dir)
        .arg("build")
        .args(BUILD_FLAGS)
        .status()
        .expect("cargo fuzz build runs");
    assert!(status.success(), "cargo fuzz build failed: {status}");
    eprintln!("fuzz targets built in {:.0?}", started.elapsed());
    for target in TARGETS {
        // New inputs go to a scratch directory; the committed corpus is only read.
        let scratch = tempfile::tempdir().unwrap();
        let output = cargo_fuzz(&fuzz_dir)
            .arg("run")
            .args(BUILD_FLAGS)
            .arg(target)
            .arg(scratch.path())
            .arg(fuzz_dir.join("corpus").join(target))
            .arg("--")
            .arg(format!("-max_total_time={SECONDS}"))
            .arg("-timeout=10")
            .output()
            .expect("cargo fuzz run runs");
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "fuzz target {target} failed ({}):\n{}",
            output.status,
            log.lines()
                .rev()
                .take(60)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
        let last = log.lines().rfind(|l| l.contains("cov:")).unwrap_or("");
        eprintln!("{target}: {last}");
    }
    eprintln!("fuzz smoke run took {:.0?}", started.elapsed());
}

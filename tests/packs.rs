//! Team template packs through the real binary: `pushback pack check` on the built-in pack and on
//! a broken one, `pushback pack stats` after a scripted review of a Maildir's drafts and the
//! buyers' answers, and `pushback run` picking up a pulled pack edit: `pushback status` names the
//! new version and the next draft records it.

mod support;

use pushback::adapters::maildir::Maildir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;
use support::MailServers;
use support::pushback::{
    BUYER, maildir_config_text, original_id, rfp, spawn_daemon, stop, wait_logged,
    write_config_with,
};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `pushback ARGS` with `config`; the status socket goes in the state directory.
fn pushback(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pushback"))
        .args(args)
        .env("PUSHBACK_CONFIG", config)
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn ok(config: &Path, args: &[&str]) -> String {
    let out = pushback(config, args);
    assert!(
        out.status.success(),
        "pushback {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A pack in `dir` named `team` at `version`: the shipped templates, with `rfp.txt` replaced
/// when `rfp` is given.
fn write_pack(dir: &Path, version: &str, rfp: Option<&str>) {
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    for entry in std::fs::read_dir(repo().join("templates")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "txt") {
            std::fs::copy(&path, templates.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy(repo().join("config/rules.toml"), dir.join("rules.toml")).unwrap();
    if let Some(text) = rfp {
        std::fs::write(templates.join("rfp.txt"), text).unwrap();
    }
    std::fs::write(
        dir.join("pack.toml"),
        format!("name = \"team\"\nversion = \"{version}\"\n"),
    )
    .unwrap();
}

/// Writes `text` to `path` as `git pull` does: a new file renamed over the old one.
fn replace_file(path: &Path, text: &str) {
    let fresh = path.with_extension("new");
    std::fs::write(&fresh, text).unwrap();
    std::fs::rename(&fresh, path).unwrap();
}

/// The config's table naming the pack in `pack/` beside it.
const PACK_CONFIG: &str = "\n[templates]\npack = \"pack\"\n";

/// A Maildir, a pack and a config using it, under `dir`.
fn sandbox(dir: &Path) -> (PathBuf, Maildir) {
    let maildir = Maildir::create(&dir.join("Mail")).unwrap();
    write_pack(&dir.join("pack"), "2.1", None);
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        maildir_config_text(dir, &dir.join("Mail")) + PACK_CONFIG,
    )
    .unwrap();
    (config, maildir)
}

#[test]
fn pack_check_passes_the_built_in_pack_and_names_each_file_of_a_broken_one() {
    let nowhere = Path::new("/nonexistent/config.toml");
    let out = ok(nowhere, &["pack", "check", repo().to_str().unwrap()]);
    assert!(out.contains("pack pushback-default 1.0.0 ok"), "{out}");

    let broken = repo().join("tests/fixtures/packs/broken");
    let out = pushback(nowhere, &["pack", "check", broken.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    for (file, says) in [
        ("pack.toml line 9", "max-follow-ups"),
        ("rules.toml line 10", "weight"),
        ("templates/portal.txt", "missing"),
        ("templates/rfp.txt line 6", "unknown variable `buyer.nme`"),
        ("templates/rfq.txt line 1", "placeholder `[CUSTOMER NAME]`"),
        ("templates/rfi.txt line 3", "placeholder `TODO`"),
        ("templates/tender.txt", "more than 120"),
    ] {
        let at = format!("error: {}: ", broken.join(file).display());
        assert!(
            text.lines().any(|l| l.starts_with(&at) && l.contains(says)),
            "{at}{says} in\n{text}"
        );
    }

    let out = pushback(
        nowhere,
        &["pack", "check", broken.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["pack"]["name"], "broken-on-purpose");
    assert_eq!(report["problems"].as_array().unwrap().len(), 9, "{report}");
}

#[test]
fn pack_stats_counts_what_the_rep_and_the_buyers_did_with_each_template() {
    let dir = tempfile::tempdir().unwrap();
    let (config, maildir) = sandbox(dir.path());
    for n in 1..=3 {
        maildir.deliver(&rfp(n)).unwrap();
    }
    ok(&config, &["scan"]);
    let drafts = json_lines(&ok(&config, &["drafts", "list", "--json"]));
    assert_eq!(drafts.len(), 3);
    for draft in &drafts {
        assert_eq!(draft["source"]["template"], "rfp.txt", "{draft}");
        assert_eq!(draft["source"]["pack"]["name"], "team");
        assert_eq!(draft["source"]["pack"]["version"], "2.1");
    }
    let show = ok(&config, &["drafts", "show", "1"]);
    assert!(show.contains("template: rfp.txt (pack team 2.1)"), "{show}");

    // Draft 1 approved as written, draft 2 edited first, draft 3 rejected.
    ok(&config, &["drafts", "approve", "1"]);
    let editor = dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf 'Hi Dana,\\n\\nEdited by the rep.\\n' > \"$1\"\n",
    )
    .unwrap();
    assert!(
        Command::new("chmod")
            .args(["+x", editor.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    let edit = Command::new(env!("CARGO_BIN_EXE_pushback"))
        .args(["drafts", "edit", "2"])
        .env("PUSHBACK_CONFIG", &config)
        .env("EDITOR", &editor)
        .output()
        .unwrap();
    assert!(
        edit.status.success(),
        "{}",
        String::from_utf8_lossy(&edit.stderr)
    );
    ok(&config, &["drafts", "approve", "2"]);
    ok(&config, &["drafts", "reject", "3"]);

    // Buyer 1 agrees to a call; buyer 2 answers without agreeing to one.
    let drafts = json_lines(&ok(&config, &["drafts", "list", "--json"]));
    let answer = |n: usize, text: &str| {
        let ours = drafts[n - 1]["message_id"].as_str().unwrap();
        let ours = ours.trim_matches(['<', '>']);
        format!(
            "From: Dana Whitfield <{BUYER}>\r\nTo: alice@northwind.example\r\n\
             Subject: Re: Request for Proposal RFP #2027-00{n} - Fleet Telematics\r\n\
             Date: Wed, 24 Feb 2027 11:00:00 -0500\r\nMessage-ID: <answer-{n}@springfield.example>\r\n\
             In-Reply-To: <{ours}>\r\nReferences: <{orig}> <{ours}>\r\n\r\n{text}\r\n",
            orig = original_id(n as u32)
        )
        .into_bytes()
    };
    maildir
        .deliver(&answer(
            1,
            "Thanks Alex, happy to set up a call. Does Tuesday at 10 work?",
        ))
        .unwrap();
    maildir
        .deliver(&answer(2, "Thanks Alex, noted. We will come back to you."))
        .unwrap();
    ok(&config, &["scan"]);

    let stats: serde_json::Value =
        serde_json::from_str(&ok(&config, &["pack", "stats", "--json"])).unwrap();
    assert_eq!(
        stats,
        serde_json::json!([{
            "template": "rfp.txt",
            "pack": {"name": "team", "version": "2.1"},
            "drafts": 3,
            "approved_as_is": 1,
            "edited_then_approved": 1,
            "rejected": 1,
            "pending": 0,
            "call_agreed": 1,
        }])
    );
    let table = ok(&config, &["pack", "stats"]);
    let row = table.lines().nth(1).unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["team", "2.1", "rfp.txt", "3", "1", "1", "1", "0", "1"],
        "{table}"
    );
}

#[test]
fn a_pulled_pack_edit_is_reported_by_status_and_used_by_the_next_draft() {
    // IMAP, whose IDLE wakes the daemon for new mail at once (a Maildir is polled).
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let one = "Hi {{ greeting }},\n\nMARKER-ONE\n\n{% include \"_signature.txt\" %}\n";
    write_pack(&dir.path().join("pack"), "2.1", Some(one));
    let config = write_config_with(&servers, dir.path(), "", PACK_CONFIG);
    let log = dir.path().join("pushback.log");
    let mut daemon = spawn_daemon(&config, &log, true);
    let status = || -> Option<serde_json::Value> {
        let out = pushback(&config, &["status", "--json"]);
        out.status
            .success()
            .then(|| serde_json::from_slice(&out.stdout).unwrap())
    };
    let running = wait_logged("the service", Duration::from_secs(20), &log, status);
    assert_eq!(running["pack"]["name"], "team", "{running}");
    assert_eq!(running["pack"]["version"], "2.1");
    let text = ok(&config, &["status"]);
    assert!(
        text.contains(&format!(
            "template pack:  team 2.1 ({})",
            dir.path().join("pack").display()
        )),
        "{text}"
    );

    // What `git pull` of the lead's new version does: new files renamed into place.
    let pack = dir.path().join("pack");
    replace_file(
        &pack.join("templates/rfp.txt"),
        &one.replace("MARKER-ONE", "MARKER-TWO"),
    );
    replace_file(
        &pack.join("pack.toml"),
        "name = \"team\"\nversion = \"2.2\"\n",
    );
    let reloaded = wait_logged("the new pack", Duration::from_secs(20), &log, || {
        status().filter(|s| s["pack"]["version"] == "2.2")
    });
    assert!(reloaded["last_reload"]["error"].is_null(), "{reloaded}");

    servers.deliver(&rfp(1));
    let draft = wait_logged("the draft", Duration::from_secs(30), &log, || {
        json_lines(&ok(&config, &["drafts", "list", "--json"]))
            .into_iter()
            .next()
    });
    assert_eq!(draft["source"]["pack"]["version"], "2.2", "{draft}");
    let show = ok(&config, &["drafts", "show", "1"]);
    assert!(show.contains("MARKER-TWO"), "{show}");

    // A broken pull keeps the running pack and says why.
    replace_file(&pack.join("pack.toml"), "name = \"team\"\n");
    let refused = wait_logged("the refused pack", Duration::from_secs(20), &log, || {
        status().filter(|s| s["last_reload"]["error"].is_string())
    });
    assert_eq!(refused["pack"]["version"], "2.2");
    let error = refused["last_reload"]["error"].as_str().unwrap();
    assert!(
        error.contains(&pack.join("pack.toml").display().to_string()) && error.contains("version"),
        "{error}"
    );
    stop(&mut daemon);
}

#[test]
fn a_broken_pack_at_startup_is_an_error_naming_its_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _maildir) = sandbox(dir.path());
    let manifest = dir.path().join("pack/pack.toml");
    std::fs::write(&manifest, "name = \"team\"\nversion = 1.5\n").unwrap();
    let out = pushback(&config, &["run"]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8(out.stderr).unwrap();
    assert!(
        said.contains(&format!("{} line 2: version: ", manifest.display())),
        "{said}"
    );

    std::fs::write(&manifest, "name = \"team\"\nversion = \"1\"\n").unwrap();
    let rfp = dir.path().join("pack/templates/rfp.txt");
    std::fs::write(&rfp, "Hi {{ greeting }},\n\n{% if %}\n").unwrap();
    let out = pushback(&config, &["run"]);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8(out.stderr).unwrap();
    assert!(
        said.contains(&format!("{} line 3", rfp.display())),
        "{said}"
    );
}

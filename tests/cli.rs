//! End to end through the real binary on a temp Maildir: demo, scan twice, list, show, edit,
//! approve, reject, classify and draft. No network, no shared state: every test gets its own
//! directories and HOME.

use mail_parser::MessageParser;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    /// Runs `pushback demo` into a fresh directory and returns the sandbox around it.
    fn with_demo() -> Sandbox {
        let sandbox = Sandbox {
            dir: tempfile::tempdir().unwrap(),
        };
        let out = sandbox.ok(&["demo", "--dir", sandbox.demo().to_str().unwrap()]);
        assert!(out.contains("drafts written"), "{out}");
        sandbox
    }

    fn demo(&self) -> PathBuf {
        self.dir.path().join("demo")
    }

    fn maildir(&self) -> PathBuf {
        self.demo().join("Maildir")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pushback"));
        command
            .args(args)
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path().join("config"))
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("PUSHBACK_CONFIG", self.demo().join("config.toml"))
            .env_remove("RUST_LOG")
            .env_remove("VISUAL");
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "pushback {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn drafts(&self) -> Vec<Value> {
        json_lines(&self.ok(&["drafts", "list", "--json"]))
    }
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn demo_writes_one_draft_per_procurement_mail_and_a_second_scan_adds_none() {
    let sandbox = Sandbox::with_demo();
    let drafts = sandbox.drafts();
    // The demo inbox holds six procurement mails and three ordinary ones.
    assert_eq!(drafts.len(), 6, "{drafts:#?}");
    for draft in &drafts {
        assert_eq!(draft["status"], "pending");
        assert!(draft["in_reply_to"].as_str().unwrap().contains('@'));
        assert!(draft["subject"].as_str().unwrap().starts_with("Re: "));
    }
    let draft_files = files_in(&sandbox.maildir().join(".Drafts/cur"));
    assert_eq!(draft_files.len(), 6);
    for file in &draft_files {
        let name = file.file_name().unwrap().to_str().unwrap();
        let flags = name.rsplit_once(":2,").unwrap().1;
        assert!(flags.contains('D'), "draft without the D flag: {name}");
        let raw = std::fs::read(file).unwrap();
        let message = MessageParser::default().parse(&raw).unwrap();
        assert!(message.in_reply_to().as_text().is_some());
        assert!(message.subject().unwrap().starts_with("Re: "));
    }

    let rescan = sandbox.ok(&["scan", "--json"]);
    let report: Value = serde_json::from_str(&rescan).unwrap();
    assert_eq!(report["examined"], 9);
    assert_eq!(report["already_seen"], 9);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0);
    assert_eq!(sandbox.drafts().len(), 6);
    assert_eq!(files_in(&sandbox.maildir().join(".Drafts/cur")).len(), 6);
}

#[test]
fn new_mail_is_drafted_once_and_a_copy_with_the_same_message_id_is_not() {
    let sandbox = Sandbox::with_demo();
    let rfq = b"From: Buyer <buyer@acme.example>\r\nTo: alex@northwind.example\r\n\
Subject: RFQ 7781 - sensor modules\r\nDate: Mon, 1 Mar 2027 09:00:00 +0000\r\n\
Message-ID: <rfq-7781@acme.example>\r\n\r\n\
Please find attached our Request for Quotation RFQ 7781. Quotes are due by\r\n\
March 12, 2027. Please just send your best pricing; no calls needed.\r\n";
    std::fs::write(sandbox.maildir().join("new/1700000000.a1.host"), rfq).unwrap();
    std::fs::write(sandbox.maildir().join("new/1700000001.a2.host"), rfq).unwrap();
    let report: Value = serde_json::from_str(&sandbox.ok(&["scan", "--json"])).unwrap();
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2);
    let drafted = findings.iter().filter(|f| !f["draft_id"].is_null()).count();
    assert_eq!(drafted, 1, "{report:#}");
    assert_eq!(sandbox.drafts().len(), 7);
}

#[test]
fn approve_delivers_once_to_sent_and_reject_records_feedback() {
    let sandbox = Sandbox::with_demo();
    let out = sandbox.ok(&["drafts", "approve", "1"]);
    assert!(out.contains("approved"), "{out}");
    let sent = files_in(&sandbox.maildir().join(".Sent/cur"));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].to_str().unwrap().ends_with(":2,S"));
    assert_eq!(files_in(&sandbox.maildir().join(".Drafts/cur")).len(), 5);

    let again = sandbox.run(&["drafts", "approve", "1"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already"));
    sandbox.ok(&["scan"]);
    assert_eq!(files_in(&sandbox.maildir().join(".Sent/cur")).len(), 1);

    sandbox.ok(&["drafts", "reject", "2", "--not-procurement"]);
    let drafts = sandbox.drafts();
    let status = |id: i64| drafts.iter().find(|d| d["id"] == id).unwrap()["status"].clone();
    assert_eq!(status(1), "sent");
    assert_eq!(status(2), "rejected");
    assert_eq!(files_in(&sandbox.maildir().join(".Drafts/cur")).len(), 4);
    let pending = json_lines(&sandbox.ok(&["drafts", "list", "--json", "--status", "pending"]));
    assert_eq!(pending.len(), 4);
}

#[test]
fn edit_runs_the_editor_and_the_new_text_is_what_gets_sent() {
    let sandbox = Sandbox::with_demo();
    let editor = sandbox.dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf 'Hi Dana,\\n\\nEdited by the rep.\\n' > \"$1\"\n",
    )
    .unwrap();
    let mut chmod = Command::new("chmod");
    assert!(
        chmod
            .args(["+x", editor.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    let out = sandbox
        .command(&["drafts", "edit", "1"])
        .env("EDITOR", &editor)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let show = sandbox.ok(&["drafts", "show", "1"]);
    assert!(show.contains("Edited by the rep."), "{show}");
    sandbox.ok(&["drafts", "approve", "1"]);
    let sent = std::fs::read(&files_in(&sandbox.maildir().join(".Sent/cur"))[0]).unwrap();
    let message = MessageParser::default().parse(&sent).unwrap();
    assert!(message.body_text(0).unwrap().contains("Edited by the rep."));
    assert!(message.in_reply_to().as_text().is_some());
}

#[test]
fn classify_json_reports_every_file_and_errors_do_not_stop_the_run() {
    let sandbox = Sandbox::with_demo();
    let inbox = sandbox.dir.path().join("mails");
    std::fs::create_dir_all(inbox.join("nested")).unwrap();
    for (i, file) in files_in(&sandbox.maildir().join("new")).iter().enumerate() {
        std::fs::copy(file, inbox.join("nested").join(format!("{i}.eml"))).unwrap();
    }
    std::fs::write(inbox.join("broken.eml"), b"\r\n\r\n").unwrap();
    let lines = json_lines(&sandbox.ok(&["classify", "--json", inbox.to_str().unwrap()]));
    assert_eq!(lines.len(), 10);
    let broken = lines
        .iter()
        .find(|l| l["path"].as_str().unwrap().ends_with("broken.eml"))
        .unwrap();
    assert!(broken["error"].as_str().is_some());
    let verdicts: Vec<&Value> = lines.iter().filter(|l| l.get("label").is_some()).collect();
    assert_eq!(verdicts.len(), 9);
    for verdict in &verdicts {
        for key in ["path", "label", "category", "score", "reasons", "facts"] {
            assert!(verdict.get(key).is_some(), "missing {key}: {verdict}");
        }
    }
    let procurement = verdicts
        .iter()
        .filter(|v| v["label"] == "procurement")
        .count();
    assert_eq!(procurement, 6);
    let tender = verdicts
        .iter()
        .find(|v| v["facts"]["references"].to_string().contains("2027-014"))
        .expect("the city tender's reference number");
    let deadlines = tender["facts"]["deadlines"].as_array().unwrap();
    let submission = deadlines
        .iter()
        .find(|d| d["kind"] == "submission")
        .unwrap();
    assert_eq!(submission["date"], "2027-03-15");
    assert_eq!(submission["time"], "17:00");
}

#[test]
fn draft_prints_a_reply_that_parses_back() {
    let sandbox = Sandbox::with_demo();
    let sample = files_in(&sandbox.maildir().join("new"))
        .into_iter()
        .find(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains("RFP #2027-014")
        })
        .unwrap();
    let out = sandbox.run(&["draft", sample.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let message = MessageParser::default().parse(&out.stdout).unwrap();
    assert_eq!(
        message.in_reply_to().as_text(),
        Some("rfp-2027-014.notice@purchasing.springfield.example.gov")
    );
    assert!(
        message
            .subject()
            .unwrap()
            .starts_with("Re: Request for Proposal")
    );
    assert!(
        message
            .message_id()
            .unwrap()
            .ends_with("@northwind.example")
    );
}

#[test]
fn mailbox_commands_without_a_config_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pushback"))
        .args(["scan"])
        .env("HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .env_remove("PUSHBACK_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no config file") && stderr.contains("pushback demo"),
        "{stderr}"
    );
}

#[test]
fn config_check_prints_what_it_resolved() {
    let sandbox = Sandbox::with_demo();
    let out = sandbox.ok(&["config", "check"]);
    assert!(out.contains("config ok"), "{out}");
    assert!(out.contains("Europe/London"), "{out}");
}

#[test]
fn config_check_lists_the_next_three_firings_of_every_schedule() {
    let sandbox = Sandbox::with_demo();
    let config = sandbox.demo().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text + "\n[follow-up]\nat = \"30 8 * * 1-5\"\n\n[business]\nholidays = [\"2026-12-25\"]\n",
    )
    .unwrap();
    let out = sandbox.ok(&["config", "check"]);
    let lines: Vec<&str> = out.lines().collect();
    for (header, time) in [
        (
            "[follow-up] at = \"30 8 * * 1-5\", next in Europe/London:",
            "08:30",
        ),
        (
            "[reminders] at = \"0 9 * * 1-5\", next in Europe/London:",
            "09:00",
        ),
    ] {
        let at = lines
            .iter()
            .position(|l| *l == header)
            .unwrap_or_else(|| panic!("no {header:?} in\n{out}"));
        let firing = regex::Regex::new(&format!(
            r"^  (Mon|Tue|Wed|Thu|Fri) \d{{4}}-\d{{2}}-\d{{2}} {time} (GMT \(\+00:00\)|BST \(\+01:00\))$"
        ))
        .unwrap();
        let firings: Vec<&str> = lines[at + 1..]
            .iter()
            .take_while(|l| l.starts_with("  "))
            .copied()
            .collect();
        assert_eq!(firings.len(), 3, "{out}");
        for line in firings {
            assert!(firing.is_match(line), "{line:?} in\n{out}");
        }
    }
    assert!(
        out.contains(
            "business week:    Mon Tue Wed Thu Fri 09:00-17:00 Europe/London, 1 holiday\n"
        ),
        "{out}"
    );
    let feed = sandbox.demo().join("state").join("reminders.ics");
    let delivered = format!(
        "delivered to:     the inbox (as mail), the feed {}",
        feed.display()
    );
    assert!(out.contains(&delivered), "{out}");
}

/// Copies the classifier fixtures (a labelled folder) into `dir`, with one label changed so the
/// eval has a miss to count.
fn labelled_folder(dir: &Path) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/classify");
    std::fs::create_dir_all(dir).unwrap();
    for file in files_in(&fixtures) {
        if file.extension().is_some_and(|e| e == "eml") {
            std::fs::copy(&file, dir.join(file.file_name().unwrap())).unwrap();
        }
    }
    let labels = std::fs::read_to_string(fixtures.join("labels.csv")).unwrap();
    let changed = labels.replace(
        "neg_invoice.eml,other,none",
        "neg_invoice.eml,procurement,rfp",
    );
    assert_ne!(
        changed, labels,
        "the fixture list changed; pick another row to flip"
    );
    std::fs::write(dir.join("labels.csv"), changed).unwrap();
    std::fs::write(
        dir.join("deadlines.csv"),
        "file,kind,date,time,zone,relative,text\n\
         rfp_buyer_invitation.eml,submission,2027-04-14,14:00,EST,,Proposals are due April 14\n\
         rfp_buyer_invitation.eml,questions,2027-03-24,,,,Questions must be submitted by March 24\n",
    )
    .unwrap();
}

#[test]
fn eval_scores_classification_and_deadlines_on_a_labelled_folder() {
    let sandbox = Sandbox::with_demo();
    let folder = sandbox.dir.path().join("labelled");
    labelled_folder(&folder);
    let report: Value =
        serde_json::from_str(&sandbox.ok(&["eval", "--json", folder.to_str().unwrap()])).unwrap();
    let overall = &report["scorecard"]["overall"];
    assert_eq!(overall["true_positives"], 12, "{report:#}");
    assert_eq!(overall["false_negatives"], 1);
    assert_eq!(overall["false_positives"], 0);
    assert_eq!(overall["precision"], 1.0);
    assert!((overall["recall"].as_f64().unwrap() - 12.0 / 13.0).abs() < 1e-9);
    let missed = report["misclassified"].as_array().unwrap();
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0]["file"], "neg_invoice.eml");
    let deadlines = &report["deadlines"];
    assert_eq!(deadlines["status"], "scored", "{deadlines:#}");
    assert_eq!(deadlines["detail"]["submission_gold"], 1);
    assert_eq!(deadlines["detail"]["submission_found"], 1);

    let table = sandbox.ok(&["eval", folder.to_str().unwrap()]);
    assert!(table.contains("overall (procurement)"), "{table}");
    assert!(table.contains("neg_invoice.eml"), "{table}");
}

#[test]
fn templates_check_names_the_file_and_line_of_a_broken_template() {
    let sandbox = Sandbox::with_demo();
    assert!(sandbox.ok(&["templates", "check"]).contains("templates ok"));
    let dir = sandbox.dir.path().join("team-templates");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("rfq.txt"),
        "Hi {{ greeting }},\n\nThanks for {{ buyer.nme }}.\n",
    )
    .unwrap();
    let out = sandbox.run(&["templates", "check", dir.to_str().unwrap()]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rfq.txt") && stdout.contains("line 3"),
        "{stdout}"
    );
}

#[test]
fn templates_preview_renders_one_template_for_a_message() {
    let sandbox = Sandbox::with_demo();
    let sample = files_in(&sandbox.maildir().join("new"))
        .into_iter()
        .find(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .contains("just send pricing")
        })
        .unwrap();
    let out = sandbox.ok(&["templates", "preview", "rfq", sample.to_str().unwrap()]);
    assert!(out.starts_with("Hi Priya"), "{out}");
    assert!(out.contains("Alex Rivera"), "{out}");
}

#[test]
fn a_bad_config_line_names_file_line_and_key() {
    let sandbox = Sandbox::with_demo();
    let config = sandbox.demo().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("Europe/London", "Europe/Londn")).unwrap();
    let out = sandbox.run(&["config", "check"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config.toml line 9") && stderr.contains("timezone"),
        "{stderr}"
    );
}

#[test]
fn run_drafts_new_maildir_mail_and_stops_cleanly_on_sigterm() {
    let sandbox = Sandbox::with_demo();
    let rfq = b"From: Buyer <buyer@acme.example>\r\nTo: alex@northwind.example\r\n\
Subject: RFQ 9001 - cables\r\nMessage-ID: <rfq-9001@acme.example>\r\n\r\n\
Please find attached our Request for Quotation RFQ 9001. Quotes are due by March 12, 2027.\r\n";
    std::fs::write(sandbox.maildir().join("new/1700000099.b1.host"), rfq).unwrap();
    let daemon = sandbox
        .command(&["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let drafts_dir = sandbox.maildir().join(".Drafts/cur");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while files_in(&drafts_dir).len() < 7 {
        assert!(
            std::time::Instant::now() < deadline,
            "no draft for the new RFQ"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let term = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let output = daemon.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(sandbox.drafts().len(), 7);
}

#[test]
fn a_refused_send_is_shown_with_the_reply_and_can_be_resent_or_marked_sent() {
    let sandbox = Sandbox::with_demo();
    let config = sandbox.demo().join("config.toml");
    let base = std::fs::read_to_string(&config).unwrap();
    let with_sendmail = |command: &str| {
        std::fs::write(
            &config,
            format!("{base}\n[smtp]\nsendmail-command = {command:?}\n"),
        )
        .unwrap();
    };
    with_sendmail("cat >/dev/null; echo 'mailbox unavailable' >&2; exit 67");
    let out = sandbox.ok(&["drafts", "approve", "1"]);
    assert!(out.contains("refused"), "{out}");
    let show = sandbox.ok(&["drafts", "show", "1"]);
    assert!(
        show.contains("[failed]") && show.contains("mailbox unavailable"),
        "{show}"
    );
    assert!(show.contains("drafts resend 1"), "{show}");

    // Like sendmail, the command gets the recipients as arguments and the message on stdin.
    let captured = sandbox.dir.path().join("sent.eml");
    let script = sandbox.dir.path().join("sendmail.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\ncat > {}\n", captured.display()),
    )
    .unwrap();
    assert!(
        Command::new("chmod")
            .arg("+x")
            .arg(&script)
            .status()
            .unwrap()
            .success()
    );
    with_sendmail(script.to_str().unwrap());
    let out = sandbox.ok(&["drafts", "resend", "1"]);
    assert!(out.contains("draft 1 sent"), "{out}");
    let sent = MessageParser::default()
        .parse(&std::fs::read(&captured).unwrap())
        .unwrap()
        .message_id()
        .map(str::to_string);
    assert!(sent.unwrap().ends_with("@northwind.example"));

    with_sendmail("cat >/dev/null; exit 67");
    sandbox.ok(&["drafts", "approve", "2"]);
    sandbox.ok(&["drafts", "mark-sent", "2"]);
    let drafts = sandbox.drafts();
    let status = |id: i64| drafts.iter().find(|d| d["id"] == id).unwrap()["status"].clone();
    assert_eq!(status(1), "sent");
    assert_eq!(status(2), "sent");
}

#[test]
fn reminders_list_snooze_and_done() {
    let sandbox = Sandbox::with_demo();
    let listed = json_lines(&sandbox.ok(&["reminders", "list", "--json"]));
    assert!(!listed.is_empty(), "the demo's RFP dates are reminders");
    for reminder in &listed {
        let kind = reminder["kind"].as_str().unwrap();
        assert!(
            [
                "follow_up",
                "questions",
                "submission",
                "pre_bid",
                "intent_to_bid",
                "other"
            ]
            .contains(&kind),
            "{reminder}"
        );
        let due = reminder["due"].as_str().unwrap();
        assert!(due.ends_with('Z'), "{reminder}");
        let due = chrono::DateTime::parse_from_rfc3339(due).unwrap();
        let local =
            chrono::DateTime::parse_from_rfc3339(reminder["local_due"].as_str().unwrap()).unwrap();
        assert_eq!(due, local, "the same instant in the rep's zone");
        assert_eq!(reminder["status"], "scheduled");
        assert!(reminder["in_reply_to"].as_str().unwrap().contains('@'));
    }
    let id_value = listed[0]["id"].clone();
    let id = id_value.to_string();
    let out = sandbox.ok(&["reminders", "snooze", &id, "2d"]);
    assert!(out.contains("snoozed until"), "{out}");
    let snoozed = json_lines(&sandbox.ok(&["reminders", "list", "--json"]));
    let again = snoozed.iter().find(|r| r["id"] == id_value).unwrap();
    assert_ne!(again["due"], listed[0]["due"]);
    assert_eq!(again["status"], "scheduled");

    let out = sandbox.ok(&["reminders", "done", &id]);
    assert!(out.contains("done"), "{out}");
    let open = json_lines(&sandbox.ok(&["reminders", "list", "--json"]));
    assert!(open.iter().all(|r| r["id"] != id_value));
    let all = json_lines(&sandbox.ok(&["reminders", "list", "--json", "--all"]));
    let closed = all.iter().find(|r| r["id"] == id_value).unwrap();
    assert_eq!(closed["status"], "done");

    let out = sandbox.run(&["reminders", "snooze", &id, "2x"]);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("90m, 4h, 2d, 1w"), "{error}");
    let out = sandbox.run(&["reminders", "done", "999"]);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(error.contains("no reminder with id 999"), "{error}");
}

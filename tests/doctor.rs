//! `pushback doctor` against the real servers of the harness (Dovecot with STARTTLS, the SMTP
//! sink with AUTH, a private CA): every step of a good config passes, and each kind of trouble
//! (a wrong password, a server down, an untrusted certificate) fails at the right step with a
//! hint, without ever printing the password. A Maildir config is checked without any network.

mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::MailServers;
use support::pushback::{Login, config_text, write_maildir_config};

struct Run {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

impl Run {
    /// The steps of a `--json` run.
    fn steps(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    fn step(&self, section: &str, step: &str) -> Value {
        self.steps()
            .into_iter()
            .find(|s| s["section"] == section && s["step"] == step)
            .unwrap_or_else(|| panic!("no step {section}/{step} in:\n{}", self.stdout))
    }

    fn assert_never_shows(&self, secret: &str) {
        assert!(
            !self.stdout.contains(secret),
            "secret on stdout:\n{}",
            self.stdout
        );
        assert!(
            !self.stderr.contains(secret),
            "secret on stderr:\n{}",
            self.stderr
        );
    }
}

fn doctor(config: &Path, json: bool) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pushback"));
    command.arg("doctor").env("PUSHBACK_CONFIG", config);
    if json {
        command.arg("--json");
    }
    let out = command.output().expect("cannot run pushback doctor");
    Run {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// A config for alice on the harness with `password`, trusting the harness CA or not.
fn write_config(servers: &MailServers, dir: &Path, password: &str, trust_ca: bool) -> PathBuf {
    let path = dir.join("config.toml");
    let login = Login {
        password,
        trust_ca,
        smtp_port: servers.smtp_port(),
    };
    std::fs::write(&path, config_text(servers, dir, login)).unwrap();
    path
}

#[test]
fn a_good_config_passes_every_step_and_names_the_folders() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let (user, password) = servers.user();
    let config = write_config(&servers, dir.path(), password, true);

    let text = doctor(&config, false);
    println!("{}", text.stdout);
    assert_eq!(text.code, Some(0), "{}{}", text.stdout, text.stderr);
    assert!(
        text.stdout.ends_with("all checks passed\n"),
        "{}",
        text.stdout
    );
    text.assert_never_shows(password);

    let json = doctor(&config, true);
    assert_eq!(json.code, Some(0));
    json.assert_never_shows(password);
    let expected = [
        ("config", "file"),
        ("config", "identity"),
        ("state", "directory"),
        ("state", "store"),
        ("state", "drafts"),
        ("mailbox", "dns"),
        ("mailbox", "tcp connect"),
        ("mailbox", "tls"),
        ("mailbox", "credentials"),
        ("mailbox", "login"),
        ("mailbox", "capabilities"),
        ("mailbox", "folders"),
        ("mailbox", "inbox"),
        ("mailbox", "watcher"),
        ("outgoing", "dns"),
        ("outgoing", "tcp connect"),
        ("outgoing", "tls"),
        ("outgoing", "credentials"),
        ("outgoing", "login"),
        ("calendar", "reminders"),
        ("calendar", "feed"),
    ];
    let steps = json.steps();
    let seen: Vec<(&str, &str)> = steps
        .iter()
        .map(|s| (s["section"].as_str().unwrap(), s["step"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, expected);
    for step in &steps {
        assert_eq!(step["status"], "ok", "{step}");
    }
    let folders = json.step("mailbox", "folders")["detail"].to_string();
    assert!(
        folders.contains(r#"Drafts \"Drafts\", Sent \"Sent\""#),
        "{folders}"
    );
    let tls = json.step("mailbox", "tls")["detail"].to_string();
    assert!(
        tls.contains("STARTTLS") && tls.contains("certificate trusted"),
        "{tls}"
    );
    assert!(
        tls.contains(&servers.ca_file().display().to_string()),
        "{tls}"
    );
    let login = json.step("mailbox", "login")["detail"].to_string();
    assert!(login.contains(user) && login.contains("LOGIN"), "{login}");
    let watcher = json.step("mailbox", "watcher")["detail"].to_string();
    assert!(watcher.contains("not started yet"), "{watcher}");
    let smtp = json.step("outgoing", "login")["detail"].to_string();
    assert!(
        smtp.contains("AUTH as") && smtp.contains("nothing was sent"),
        "{smtp}"
    );
    assert!(
        servers.smtp_received().is_empty(),
        "doctor must not send mail"
    );
}

#[test]
fn a_wrong_password_fails_the_login_naming_host_and_user_and_never_shows() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let (user, _) = servers.user();
    let wrong = "Wr0ng-Pa55-doctor-7731";
    let config = write_config(&servers, dir.path(), wrong, true);

    let run = doctor(&config, true);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    run.assert_never_shows(wrong);
    let login = run.step("mailbox", "login");
    assert_eq!(login["status"], "failed", "{login}");
    let detail = login["detail"].as_str().unwrap();
    assert!(
        detail.contains(servers.host()) && detail.contains(user),
        "{detail}"
    );
    assert!(login["hint"].as_str().unwrap().contains(user), "{login}");
    for later in ["capabilities", "folders", "inbox", "watcher"] {
        let step = run.step("mailbox", later);
        assert_eq!(step["status"], "skipped", "{step}");
        assert_eq!(step["detail"], "skipped: needs a login");
    }
    let text = doctor(&config, false);
    text.assert_never_shows(wrong);
    assert!(text.stdout.contains("FAILED   login"), "{}", text.stdout);
}

#[test]
fn a_stopped_imap_server_fails_the_connect_and_smtp_is_still_checked() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let (_, password) = servers.user();
    let config = write_config(&servers, dir.path(), password, true);
    servers.stop_imap();

    let run = doctor(&config, true);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let connect = run.step("mailbox", "tcp connect");
    assert_eq!(connect["status"], "failed", "{connect}");
    assert!(
        connect["hint"]
            .as_str()
            .unwrap()
            .contains("is the server up"),
        "{connect}"
    );
    assert_eq!(run.step("mailbox", "tls")["status"], "skipped");
    assert_eq!(run.step("mailbox", "login")["status"], "skipped");
    // The credentials need no server.
    assert_eq!(run.step("mailbox", "credentials")["status"], "ok");
    assert_eq!(run.step("outgoing", "login")["status"], "ok");
}

#[test]
fn a_server_certificate_from_an_unknown_ca_is_not_trusted_and_ca_file_is_suggested() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let (_, password) = servers.user();
    let config = write_config(&servers, dir.path(), password, false);

    let run = doctor(&config, true);
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let tls = run.step("mailbox", "tls");
    assert_eq!(tls["status"], "failed", "{tls}");
    assert!(
        tls["detail"].as_str().unwrap().contains("NOT TRUSTED"),
        "{tls}"
    );
    assert!(tls["hint"].as_str().unwrap().contains("ca-file"), "{tls}");
    assert_eq!(run.step("mailbox", "login")["status"], "skipped");
    assert_eq!(run.step("outgoing", "login")["status"], "ok");
}

#[test]
fn a_maildir_config_checks_the_folders_and_says_nothing_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    for folder in ["", ".Drafts", ".Sent"] {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(folder).join(sub)).unwrap();
        }
    }
    let config = write_maildir_config(dir.path(), &maildir);

    let run = doctor(&config, true);
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    for step in run.steps() {
        assert_eq!(step["status"], "ok", "{step}");
    }
    assert_eq!(run.step("mailbox", "maildir")["status"], "ok");
    let folders = run.step("mailbox", "folders")["detail"].to_string();
    assert!(
        folders.contains(".Drafts") && folders.contains(".Sent"),
        "{folders}"
    );
    let transport = run.step("outgoing", "transport")["detail"].to_string();
    assert!(
        transport.contains("nothing leaves the machine"),
        "{transport}"
    );
    let reminders = run.step("calendar", "reminders")["detail"].to_string();
    assert!(
        reminders.contains("0 open, nothing scheduled"),
        "{reminders}"
    );
    let feed = run.step("calendar", "feed")["detail"].to_string();
    assert!(feed.contains("reminders.ics"), "{feed}");

    std::fs::remove_dir_all(maildir.join(".Sent")).unwrap();
    let run = doctor(&config, true);
    assert_eq!(run.code, Some(1));
    let folders = run.step("mailbox", "folders");
    assert_eq!(folders["status"], "failed", "{folders}");
    assert!(
        folders["hint"].as_str().unwrap().contains("mkdir -p"),
        "{folders}"
    );
}

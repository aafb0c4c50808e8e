//! Secrets drill: the whole flow with known credentials (the IMAP and SMTP password, the CalDAV
//! password, the approval page's token), logging at full detail, against the real servers
//! (Dovecot, the SMTP sink, Radicale). Afterwards every log line, every command's output, the state
//! database (WAL included) and every other file pushback wrote are searched for each secret. The
//! only places a secret may be are the token's own file and `pushback web-url`, whose job it is.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::MailServers;
use support::pushback::{pushback_command, rfp, stop, wait_for, write_config};
use support::radicale::Radicale;

const CALENDAR: &str = "pushback";
/// The passwords reach pushback through the environment, so the config file itself holds none
/// (a password typed into a password-command would be shown back by `config check` as part of
/// the command, which is the rep's own text, not a leak).
const MAIL_PASSWORD_ENV: &str = "PUSHBACK_TEST_MAIL_PASSWORD";
const DAV_PASSWORD_ENV: &str = "PUSHBACK_TEST_DAV_PASSWORD";

/// Runs `pushback ARGS` with the passwords in its environment, asserting it succeeds; stdout and
/// stderr together.
fn cli(config: &Path, passwords: &[(&str, &str)], args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pushback"))
        .args(args)
        .env("PUSHBACK_CONFIG", config)
        .env_remove("XDG_RUNTIME_DIR")
        .envs(passwords.iter().copied())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pushback {args:?}:\n{text}");
    text
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files_under(&entry.path(), out);
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn no_secret_reaches_a_log_an_output_or_a_file_pushback_wrote() {
    let servers = MailServers::start();
    let radicale = Radicale::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&servers, dir.path());
    let (_, mail_password) = servers.user();
    let (dav_user, dav_password) = radicale.user();
    let web_port = support::free_loopback_ports(1)[0];
    let mut text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("password-command = \"printf %s '{mail_password}'\""),
        &format!("password-env = \"{MAIL_PASSWORD_ENV}\""),
    );
    assert!(!text.contains(mail_password), "{text}");
    text.push_str(&format!(
        r#"
[reminders]
feed = "{feed}"

[calendar]
caldav-url = "{url}"
caldav-user = "{dav_user}"
caldav-password-env = "{DAV_PASSWORD_ENV}"
caldav-ca-file = "{ca}"

[web]
listen = "127.0.0.1:{web_port}"

[log]
filter = "trace"
"#,
        feed = dir.path().join("state").join("reminders.ics").display(),
        url = radicale.calendar_url(CALENDAR),
        ca = radicale.ca_file().display(),
    ));
    std::fs::write(&config, text).unwrap();

    let passwords = [
        (MAIL_PASSWORD_ENV, mail_password),
        (DAV_PASSWORD_ENV, dav_password),
    ];
    let log = dir.path().join("daemon.log");
    let mut daemon = pushback_command(&config, &log, &["-vv", "run"])
        .envs(passwords)
        .spawn()
        .unwrap();
    servers.deliver(&rfp(31));
    wait_for("the draft", Duration::from_secs(20), || {
        (!servers.folder("Drafts").is_empty()).then_some(())
    });
    let mut outputs = vec![
        cli(&config, &passwords, &["drafts", "list"]),
        cli(&config, &passwords, &["drafts", "show", "1"]),
        cli(&config, &passwords, &["drafts", "approve", "1"]),
        cli(&config, &passwords, &["reminders", "list", "--json"]),
        cli(&config, &passwords, &["config", "check"]),
        cli(&config, &passwords, &["doctor"]),
    ];
    wait_for("the send", Duration::from_secs(20), || {
        (!servers.smtp_received().is_empty()).then_some(())
    });
    // The CalDAV login happened: pushback's items are in the calendar.
    wait_for("the calendar items", Duration::from_secs(75), || {
        radicale
            .stored_items(CALENDAR)
            .iter()
            .any(|item| item.starts_with("reminder-"))
            .then_some(())
    });
    let web_url = cli(&config, &passwords, &["web-url"]);
    let token = web_url
        .split("token=")
        .nth(1)
        .map(|rest| rest.trim().to_string())
        .expect("web-url prints the token");
    assert!(token.len() >= 32, "{web_url}");
    outputs.push(cli(&config, &passwords, &["status"]));
    stop(&mut daemon);

    let log_text = std::fs::read(&log).unwrap();
    assert!(
        contains(&log_text, "DEBUG") || contains(&log_text, "TRACE"),
        "the daemon logged at full detail"
    );
    let mut files = Vec::new();
    files_under(&dir.path().join("state"), &mut files);
    let token_file = dir.path().join("state").join("web-token");
    assert!(files.contains(&token_file), "{files:?}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "sqlite3")),
        "{files:?}"
    );
    let secrets = [
        ("the mail password", mail_password),
        ("the CalDAV password", dav_password),
        ("the approval page's token", token.as_str()),
    ];
    let mut leaks = Vec::new();
    for (what, secret) in secrets {
        if contains(&log_text, secret) {
            leaks.push(format!("{what} in the daemon's log"));
        }
        for (i, output) in outputs.iter().enumerate() {
            if output.contains(secret) {
                leaks.push(format!("{what} in command output {i}"));
            }
        }
        for file in &files {
            if *file == token_file && secret == token {
                continue;
            }
            if contains(&std::fs::read(file).unwrap(), secret) {
                leaks.push(format!("{what} in {}", file.display()));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
}

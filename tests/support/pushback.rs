//! Running pushback itself against the harness servers: a config for alice, sample procurement
//! mail, the daemon in-process (stopped as by SIGTERM), and waiting for what the servers hold.

use super::MailServers;
use pushback::app::daemon;
use pushback::config::Config;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const BUYER: &str = "dana@purchasing.springfield.example.gov";

/// The config's opening: format version and the rep's identity.
pub const IDENTITY: &str = r#"version = 1
[identity]
name = "Alex Rivera"
email = "alice@northwind.example"
title = "Account Executive"
company = "Northwind Analytics"
timezone = "Europe/London"
"#;

/// The Message-ID (without brackets) of `rfp(n)`.
pub fn original_id(n: u32) -> String {
    format!("rfp-{n}@purchasing.springfield.example.gov")
}

/// A city's RFP invitation with deadlines, numbered so each has its own Message-ID.
pub fn rfp(n: u32) -> Vec<u8> {
    format!(
        "From: Dana Whitfield <{BUYER}>\r\n\
         To: alice@northwind.example\r\n\
         Subject: Request for Proposal RFP #2027-{n:03} - Fleet Telematics\r\n\
         Date: Mon, 22 Feb 2027 09:14:00 -0500\r\n\
         Message-ID: <{id}>\r\n\r\n\
         Dear Supplier,\r\n\r\nThe City of Springfield is soliciting proposals under RFP \
         #2027-{n:03}.\r\nProposals are due March 15, 2027 at 5:00 PM EST. Questions must be \
         submitted\r\nin writing no later than February 26, 2027.\r\n\r\nDana Whitfield\r\n\
         Senior Procurement Officer\r\n",
        id = original_id(n)
    )
    .into_bytes()
}

/// Everyday mail that is not procurement, numbered so each has its own Message-ID.
pub fn ordinary(n: u32) -> Vec<u8> {
    let (subject, body) = match n % 3 {
        0 => ("Lunch?", "Ramen on Thursday?"),
        1 => (
            "Weekly product newsletter",
            "Five things we shipped this week.",
        ),
        _ => ("Re: slides for Tuesday", "Looks good, one typo on slide 4."),
    };
    format!(
        "From: Sam <sam@northwind.example>\r\nTo: alice@northwind.example\r\n\
         Subject: {subject}\r\nDate: Mon, 22 Feb 2027 10:00:00 -0500\r\n\
         Message-ID: <drill-note-{n}@northwind.example>\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// How `config_text` logs in, what it trusts and where it sends.
pub struct Login<'a> {
    pub password: &'a str,
    /// Trust the harness CA (without it the server's certificate is unknown).
    pub trust_ca: bool,
    /// Where `[smtp]` points: the sink, or a relay a drill puts in between.
    pub smtp_port: u16,
}

/// A config for alice on the harness: IMAP with STARTTLS, SMTP plain on loopback with AUTH, the
/// state directory inside `dir`, IDLE renewed every minute.
pub fn config_text(servers: &MailServers, dir: &Path, login: Login<'_>) -> String {
    let (user, _) = servers.user();
    let ca = if login.trust_ca {
        format!("ca-file = \"{}\"\n", servers.ca_file().display())
    } else {
        String::new()
    };
    format!(
        r#"{IDENTITY}
[mailbox]
kind = "imap"
host = "{host}"
port = {imap}
security = "starttls"
user = "{user}"
password-command = "printf %s '{password}'"
{ca}idle-minutes = 1

[smtp]
host = "{host}"
port = {smtp}
security = "plain"
user = "{user}"
password-command = "printf %s '{password}'"

[state]
path = "{state}"
"#,
        host = servers.host(),
        imap = servers.imap_port(),
        smtp = login.smtp_port,
        password = login.password,
        state = dir.join("state").display(),
    )
}

/// `config_text` with the right password and the CA trusted, written to `dir/config.toml`.
/// A config for a local Maildir at `maildir`, with the state under `dir`.
pub fn maildir_config_text(dir: &Path, maildir: &Path) -> String {
    format!(
        "{IDENTITY}\n[mailbox]\nkind = \"maildir\"\npath = \"{}\"\n\n[state]\npath = \"{}\"\n",
        maildir.display(),
        dir.join("state").display()
    )
}

/// `maildir_config_text` written to `dir/config.toml`.
pub fn write_maildir_config(dir: &Path, maildir: &Path) -> PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(&config, maildir_config_text(dir, maildir)).unwrap();
    config
}

pub fn write_config(servers: &MailServers, dir: &Path) -> PathBuf {
    write_config_with(servers, dir, "", "")
}

/// `write_config` with `mailbox_keys` (lines such as `fetch-max-bytes = 8192`) added to
/// `[mailbox]` and `tables` (whole TOML tables, e.g. `[templates]`) appended.
pub fn write_config_with(
    servers: &MailServers,
    dir: &Path,
    mailbox_keys: &str,
    tables: &str,
) -> PathBuf {
    let (_, password) = servers.user();
    let path = dir.join("config.toml");
    let login = Login {
        password,
        trust_ca: true,
        smtp_port: servers.smtp_port(),
    };
    let text = config_text(servers, dir, login).replacen(
        "\n[smtp]\n",
        &format!("{mailbox_keys}\n[smtp]\n"),
        1,
    ) + tables;
    std::fs::write(&path, text).unwrap();
    path
}

/// The daemon on its own thread and runtime, stopped (as by SIGTERM) when dropped.
pub struct Daemon {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Daemon {
    pub fn start(mut config: Config) -> Daemon {
        // Daemons of parallel tests share the process's XDG_RUNTIME_DIR: one socket each.
        config.status_socket = config.state_dir.join("status.sock");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(daemon::run(config, async {
                let _ = stopped.await;
                Ok(())
            }))
        });
        Daemon {
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn stop(mut self) {
        self.shutdown()
            .expect("the daemon exits cleanly on shutdown");
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread.join().expect("the daemon thread panicked"),
            None => Ok(()),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Polls `check` every 100 ms until it yields, failing the test after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `wait_for` with 50 ms polls for a daemon run as a process: a failure shows its `log`.
pub fn wait_logged<T>(
    what: &str,
    timeout: Duration,
    log: &Path,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; daemon log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs the `pushback` binary with `config` and `args` and returns how it ended.
pub fn pushback_output(config: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_pushback"))
        .args(args)
        .env("PUSHBACK_CONFIG", config)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

/// Runs the `pushback` binary with `config` and `args`, asserting it succeeds; its stdout.
pub fn pushback_cli(config: &Path, args: &[&str]) -> String {
    let out = pushback_output(config, args);
    assert!(
        out.status.success(),
        "pushback {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `pushback run` as a child process, its output appended to `log` (for a failing test to show);
/// `verbose` adds `-v`.
pub fn spawn_daemon(config: &Path, log: &Path, verbose: bool) -> std::process::Child {
    let args: &[&str] = if verbose { &["-v", "run"] } else { &["run"] };
    spawn_pushback(config, log, args)
}

/// A long-running `pushback` command (`run`, `web`) with `args` as a child process, its output
/// appended to `log`.
pub fn spawn_pushback(config: &Path, log: &Path, args: &[&str]) -> std::process::Child {
    pushback_command(config, log, args)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start pushback {args:?}: {e}"))
}

/// The command `spawn_pushback` runs, for a test to add to its environment.
pub fn pushback_command(config: &Path, log: &Path, args: &[&str]) -> std::process::Command {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pushback"));
    command
        .args(args)
        .env("PUSHBACK_CONFIG", config)
        // The status socket then goes in the state dir, one per test.
        .env_remove("XDG_RUNTIME_DIR")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    command
}

/// SIGTERM, as systemd stops it; SIGKILL if it has not exited within 10 s.
pub fn stop(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
}

/// SIGKILL: no signal handler, no shutdown path, no flush.
pub fn kill_9(child: &mut std::process::Child) {
    child.kill().expect("cannot SIGKILL the daemon");
    let status = child.wait().unwrap();
    assert!(!status.success(), "the daemon was killed, not stopped");
}

/// The peak resident set size of a live process so far (VmHWM), in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read the status of process {pid}: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"))
}

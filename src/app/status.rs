//! What the running service is doing, and `pushback status`. The daemon's tasks report into one
//! [`Health`] (the mailbox connected or not, the last check, the last reload, and a lease the
//! watcher renews while its loop makes progress); the daemon turns it into systemd STATUS= lines
//! and watchdog pings, and answers on a Unix socket (mode 0600, in a 0700 directory) with one
//! JSON [`Status`] per connection, adding what the state store knows (pending drafts, the next
//! reminder). `pushback status` reads it and prints a summary.

use crate::adapters::pack::PackLabel;
use crate::adapters::store::{DraftStatus, Store};
use crate::config::{Config, MailboxAccess, STATUS_SOCKET_FILE};
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::sync::watch;

/// How long `pushback status` and the daemon wait on each other.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Until the first login to the mailbox (or the Maildir opened).
    Starting,
    Running,
    Reloading,
    Stopping,
}

/// The mailbox as the watcher last saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxState {
    /// "imap imap.example.com:993" or "maildir /home/alex/Mail".
    pub target: String,
    pub connected: bool,
    /// When it last connected or, while not connected, when it lost the connection.
    pub since: Option<DateTime<Utc>>,
    /// Why the last attempt failed, while not connected.
    pub last_error: Option<String>,
    /// The last attempt failed for want of `pushback login` (a revoked OAuth2 sign-in): the
    /// service is up and tries again now and then, but only the rep can mend it.
    #[serde(default)]
    pub login_needed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReloadTrigger {
    /// SIGHUP (`systemctl reload`): the config file and the templates.
    Signal,
    /// A file in the templates directory changed.
    Templates,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadOutcome {
    pub at: DateTime<Utc>,
    pub trigger: ReloadTrigger,
    /// Why the new config or templates were refused (the running ones were kept).
    pub error: Option<String>,
    /// Config tables that changed but only take effect after a restart.
    pub restart_needed: Vec<String>,
}

/// "team-emea 1.4.0 (/srv/packs/emea)", "pushback-default 1.0.0 (built-in)", or "none" for
/// templates or rules of the rep's own.
fn describe_pack(service: &ServiceState) -> String {
    match (&service.pack, &service.pack_dir) {
        (Some(pack), Some(dir)) => format!("{pack} ({})", dir.display()),
        (Some(pack), None) => format!("{pack} (built-in)"),
        (None, _) => "none (your own templates or rules)".to_owned(),
    }
}

/// What the daemon itself knows about what it is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// The account this state is about (`default` for a single-account config).
    #[serde(default = "default_account")]
    pub account: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub phase: Phase,
    pub mailbox: MailboxState,
    pub last_check: Option<DateTime<Utc>>,
    pub config_file: Option<PathBuf>,
    /// `None`: the built-in templates.
    pub templates_dir: Option<PathBuf>,
    /// The template pack drafts are written with (the built-in one unless the config names a
    /// templates directory or rules file of its own); `None` before the first pipeline is built.
    #[serde(default)]
    pub pack: Option<PackLabel>,
    /// `[templates] pack`; `None` for the built-in pack.
    #[serde(default)]
    pub pack_dir: Option<PathBuf>,
    pub last_reload: Option<ReloadOutcome>,
}

/// One answer on the status socket: `pushback status --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    #[serde(flatten)]
    pub service: ServiceState,
    /// `None` when the store could not be read just then.
    pub pending_drafts: Option<usize>,
    pub next_reminder: Option<DateTime<Utc>>,
    /// With several accounts, each one's status (the fields above are the first account's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<Status>,
}

fn default_account() -> String {
    crate::config::DEFAULT_ACCOUNT.to_owned()
}

/// Shared by the daemon's tasks: they report, the daemon and the status socket read.
pub struct Health {
    state: watch::Sender<ServiceState>,
    /// Until when the watcher is known to be alive: it renews this before every wait, by as
    /// long as that wait may take.
    alive_until: Mutex<Instant>,
}

impl Health {
    /// A service starting with `config`, alive for `startup` until the watcher reports.
    pub fn new(config: &Config, startup: Duration, now: DateTime<Utc>) -> Health {
        let target = match &config.mailbox.access {
            MailboxAccess::Imap(server) => format!("imap {}:{}", server.host, server.port),
            MailboxAccess::Maildir { path } => format!("maildir {}", path.display()),
        };
        let state = ServiceState {
            account: config.account.clone(),
            pid: std::process::id(),
            started_at: now,
            phase: Phase::Starting,
            mailbox: MailboxState {
                target,
                connected: false,
                since: None,
                last_error: None,
                login_needed: false,
            },
            last_check: None,
            config_file: config.file.clone(),
            templates_dir: config.templates_dir.clone(),
            pack: None,
            pack_dir: config.templates_pack.clone(),
            last_reload: None,
        };
        Health {
            state: watch::Sender::new(state),
            alive_until: Mutex::new(Instant::now() + startup),
        }
    }

    /// Told of every change.
    pub fn subscribe(&self) -> watch::Receiver<ServiceState> {
        self.state.subscribe()
    }

    pub fn snapshot(&self) -> ServiceState {
        self.state.borrow().clone()
    }

    pub fn connected(&self, now: DateTime<Utc>) {
        self.state.send_if_modified(|state| {
            let mailbox = &mut state.mailbox;
            if mailbox.connected {
                return false;
            }
            mailbox.connected = true;
            mailbox.since = Some(now);
            mailbox.last_error = None;
            mailbox.login_needed = false;
            true
        });
    }

    pub fn disconnected(&self, error: String, now: DateTime<Utc>) {
        self.failed(error, false, now);
    }

    /// Disconnected until the rep runs `pushback login` again.
    pub fn login_needed(&self, error: String, now: DateTime<Utc>) {
        self.failed(error, true, now);
    }

    fn failed(&self, error: String, login_needed: bool, now: DateTime<Utc>) {
        self.state.send_if_modified(|state| {
            let mailbox = &mut state.mailbox;
            if !mailbox.connected && mailbox.last_error.as_ref() == Some(&error) {
                return false;
            }
            mailbox.login_needed = login_needed;
            if mailbox.connected || mailbox.since.is_none() {
                mailbox.since = Some(now);
            }
            mailbox.connected = false;
            mailbox.last_error = Some(error);
            true
        });
    }

    /// The inbox was looked at and everything new in it handled.
    pub fn checked(&self, now: DateTime<Utc>) {
        self.state.send_modify(|state| state.last_check = Some(now));
    }

    pub fn set_phase(&self, phase: Phase) {
        self.state.send_if_modified(|state| {
            let changed = state.phase != phase;
            state.phase = phase;
            changed
        });
    }

    /// After a reload: what came of it, and the templates directory now in use.
    pub fn reloaded(&self, outcome: ReloadOutcome, templates_dir: Option<PathBuf>) {
        self.state.send_modify(|state| {
            state.last_reload = Some(outcome);
            state.templates_dir = templates_dir;
        });
    }

    /// A pipeline was put in place: the pack (if any) its drafts now carry, and where it lives.
    pub fn drafting_with(&self, pack: Option<&PackLabel>, pack_dir: Option<PathBuf>) {
        self.state.send_modify(|state| {
            state.pack = pack.cloned();
            state.pack_dir = pack_dir;
        });
    }

    /// The watcher is alive for at least `window` more.
    pub fn alive_for(&self, window: Duration) {
        let mut until = self.alive_until.lock().unwrap_or_else(|e| e.into_inner());
        *until = Instant::now() + window;
    }

    /// Whether the watcher's last lease still holds at `at`.
    pub fn is_alive(&self, at: Instant) -> bool {
        at <= *self.alive_until.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The STATUS= line for systemd: what the service is doing, in a few words.
pub fn status_line(state: &ServiceState) -> String {
    let mailbox = &state.mailbox;
    let mut line = match (state.phase, mailbox.connected, &mailbox.last_error) {
        (Phase::Stopping, _, _) => return "stopping: finishing the message in hand".into(),
        (Phase::Reloading, _, _) => return "reloading the config and templates".into(),
        (_, true, _) => format!("watching {}", mailbox.target),
        (_, false, None) => format!("connecting to {}", mailbox.target),
        (_, false, Some(error)) => format!("cannot reach {} (retrying): {error}", mailbox.target),
    };
    if let Some(ReloadOutcome { error: Some(_), .. }) = &state.last_reload {
        line.push_str("; the last reload failed, see `pushback status`");
    }
    line
}

/// The daemon's end of the status socket.
pub struct StatusSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl StatusSocket {
    /// Listens at `path`, creating its directory (0700) if needed. A socket file left by a
    /// crash is replaced; one a running pushback answers on is not: two services on one mailbox
    /// would draft everything twice.
    pub fn bind(path: &Path) -> Result<StatusSocket> {
        if let Some(dir) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| {
                    format!(
                        "cannot create the status socket's directory {}",
                        dir.display()
                    )
                })?;
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!(
                "another pushback is already running (it answers on {}): stop it first, or ask \
                 it with `pushback status`",
                path.display()
            );
        }
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("cannot remove the stale socket {}", path.display()));
            }
        }
        let listener = UnixListener::bind(path)
            .with_context(|| format!("cannot listen on the status socket {}", path.display()))?;
        let socket = StatusSocket {
            listener,
            path: path.to_path_buf(),
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private", path.display()))?;
        Ok(socket)
    }

    /// Answers every connection with the current [`Status`] of every account (each with its
    /// health and a store handle of its own) until `shutdown`.
    pub async fn serve(
        self,
        accounts: Vec<(std::sync::Arc<Health>, Store)>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<()> {
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            };
            let mut stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!("cannot accept on the status socket: {error}");
                    continue;
                }
            };
            let mut each: Vec<Status> = accounts
                .iter()
                .map(|(health, store)| current_status(health, store))
                .collect();
            let mut status = each[0].clone();
            if each.len() > 1 {
                status.accounts = std::mem::take(&mut each);
            }
            let mut answer = serde_json::to_vec(&status)?;
            answer.push(b'\n');
            let written = tokio::time::timeout(SOCKET_TIMEOUT, stream.write_all(&answer)).await;
            if !matches!(written, Ok(Ok(()))) {
                tracing::debug!("a status client went away before reading its answer");
            }
        }
    }
}

impl Drop for StatusSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn current_status(health: &Health, store: &Store) -> Status {
    let pending_drafts = store
        .drafts(Some(DraftStatus::Pending))
        .map(|drafts| drafts.len())
        .map_err(|error| tracing::warn!("cannot count pending drafts for status: {error}"))
        .ok();
    let next_reminder = store
        .next_reminder_due()
        .map_err(|error| tracing::warn!("cannot read the next reminder for status: {error}"))
        .ok()
        .flatten();
    Status {
        service: health.snapshot(),
        pending_drafts,
        next_reminder,
        accounts: Vec::new(),
    }
}

/// Where `pushback status` looks: the config's socket, then the state directory's (where a
/// system service, which has no runtime dir, listens while the rep's shell has one).
pub fn socket_candidates(config: &Config) -> Vec<PathBuf> {
    let mut candidates = vec![config.status_socket.clone()];
    let in_state_dir = config.state_dir.join(STATUS_SOCKET_FILE);
    if !candidates.contains(&in_state_dir) {
        candidates.push(in_state_dir);
    }
    candidates
}

/// Asks the running service; `None` when nothing answers at any of `candidates`.
pub fn query(candidates: &[PathBuf]) -> Result<Option<Status>> {
    for path in candidates {
        let mut stream = match std::os::unix::net::UnixStream::connect(path) {
            Ok(stream) => stream,
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::NotFound | ErrorKind::ConnectionRefused
                ) =>
            {
                continue;
            }
            Err(error) => {
                return Err(error).with_context(|| format!("cannot connect to {}", path.display()));
            }
        };
        stream.set_read_timeout(Some(SOCKET_TIMEOUT))?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .with_context(|| format!("cannot read the answer on {}", path.display()))?;
        let status = serde_json::from_str(&answer)
            .with_context(|| format!("cannot understand the answer on {}", path.display()))?;
        return Ok(Some(status));
    }
    Ok(None)
}

/// `pushback --account NAME status`: the one account's part of the service's answer.
pub fn of_account(status: Status, account: &str) -> Result<Status> {
    if status.accounts.is_empty() && status.service.account == account {
        return Ok(status);
    }
    let running: Vec<String> = status
        .accounts
        .iter()
        .map(|a| a.service.account.clone())
        .collect();
    let running = if running.is_empty() {
        status.service.account.clone()
    } else {
        running.join(", ")
    };
    status
        .accounts
        .into_iter()
        .find(|a| a.service.account == account)
        .with_context(|| {
            format!(
                "the running service has no account {account} (it runs {running}); after \
                 adding an account, restart it"
            )
        })
}

/// `pushback status`: the answer for a person, times in the rep's zone.
pub fn render(status: &Status, tz: Tz, now: DateTime<Utc>) -> String {
    let service = &status.service;
    let phase = match service.phase {
        Phase::Starting => "starting",
        Phase::Running => "running",
        Phase::Reloading => "reloading",
        Phase::Stopping => "stopping",
    };
    let mut out = format!(
        "pushback is {phase} (pid {}, up {})\n",
        service.pid,
        span(now - service.started_at)
    );
    if status.accounts.is_empty() {
        out.push_str(&account_details(status, tz, now));
    }
    for account in &status.accounts {
        out.push_str(&format!("account {}:\n", account.service.account));
        for line in account_details(account, tz, now).lines() {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

/// One account's lines of `pushback status`.
fn account_details(status: &Status, tz: Tz, now: DateTime<Utc>) -> String {
    let service = &status.service;
    let local = |at: DateTime<Utc>| {
        at.with_timezone(&tz)
            .format("%a %Y-%m-%d %H:%M:%S %Z")
            .to_string()
    };
    let mut out = String::new();
    let mailbox = &service.mailbox;
    let since = mailbox
        .since
        .map(|at| format!(" since {}", local(at)))
        .unwrap_or_default();
    let connection = match (&mailbox.last_error, mailbox.connected) {
        (_, true) => format!("connected{since}"),
        (None, false) => "connecting".to_owned(),
        (Some(error), false) => format!("NOT connected{since}, retrying: {error}"),
    };
    let rows = [
        ("mailbox", format!("{}, {connection}", mailbox.target)),
        (
            "last check",
            service.last_check.map_or("not yet".to_owned(), |at| {
                format!("{} ({} ago)", local(at), span(now - at))
            }),
        ),
        (
            "pending drafts",
            match status.pending_drafts {
                Some(0) => "none".to_owned(),
                Some(n) => format!("{n} (`pushback drafts list`)"),
                None => "unknown (the state store could not be read)".to_owned(),
            },
        ),
        (
            "next reminder",
            status.next_reminder.map_or("none".to_owned(), local),
        ),
        (
            "config",
            service
                .config_file
                .as_ref()
                .map_or("(built-in demo configuration)".to_owned(), |f| {
                    f.display().to_string()
                }),
        ),
        (
            "templates",
            service
                .templates_dir
                .as_ref()
                .map_or("built-in".to_owned(), |d| d.display().to_string()),
        ),
        ("template pack", describe_pack(service)),
    ];
    for (label, value) in rows {
        out.push_str(&format!("{:<16}{value}\n", format!("{label}:")));
    }
    if let Some(reload) = &service.last_reload {
        let what = match reload.trigger {
            ReloadTrigger::Signal => "reload (SIGHUP)",
            ReloadTrigger::Templates => "templates reload",
        };
        let result = match &reload.error {
            Some(error) => format!("FAILED, the running config and templates are kept: {error}"),
            None => "ok".to_owned(),
        };
        out.push_str(&format!(
            "last reload:    {what} at {}: {result}\n",
            local(reload.at)
        ));
        if !reload.restart_needed.is_empty() {
            out.push_str(&format!(
                "                changed {} take effect after a restart\n",
                reload.restart_needed.join(", ")
            ));
        }
    }
    out
}

/// "3d 4h", "2h 5m", "4m 10s", "12s".
fn span(duration: chrono::TimeDelta) -> String {
    let secs = duration.num_seconds().max(0);
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    fn health() -> Health {
        let config = Config::demo(Path::new("/m"), Path::new("/s"));
        Health::new(&config, Duration::from_secs(30), at("2027-03-01T09:00:00Z"))
    }

    #[test]
    fn the_lease_holds_for_its_window_only() {
        let health = health();
        health.alive_for(Duration::from_secs(10));
        let now = Instant::now();
        assert!(health.is_alive(now + Duration::from_secs(5)));
        assert!(!health.is_alive(now + Duration::from_secs(11)));
    }

    #[test]
    fn status_lines_follow_the_watcher_and_the_reloads() {
        let health = health();
        assert_eq!(status_line(&health.snapshot()), "connecting to maildir /m");
        health.disconnected("connection refused".into(), at("2027-03-01T09:00:01Z"));
        assert_eq!(
            status_line(&health.snapshot()),
            "cannot reach maildir /m (retrying): connection refused"
        );
        health.connected(at("2027-03-01T09:00:05Z"));
        health.reloaded(
            ReloadOutcome {
                at: at("2027-03-01T09:10:00Z"),
                trigger: ReloadTrigger::Templates,
                error: Some("rfp.txt line 2: syntax error".into()),
                restart_needed: Vec::new(),
            },
            None,
        );
        assert_eq!(
            status_line(&health.snapshot()),
            "watching maildir /m; the last reload failed, see `pushback status`"
        );
        health.set_phase(Phase::Stopping);
        assert_eq!(
            status_line(&health.snapshot()),
            "stopping: finishing the message in hand"
        );
    }

    #[test]
    fn the_summary_names_the_connection_the_counts_and_a_failed_reload() {
        let health = health();
        health.disconnected("auth failed".into(), at("2027-03-01T09:00:01Z"));
        health.checked(at("2027-03-01T09:30:00Z"));
        health.reloaded(
            ReloadOutcome {
                at: at("2027-03-01T09:10:00Z"),
                trigger: ReloadTrigger::Signal,
                error: Some("/t/rfp.txt line 2: syntax error".into()),
                restart_needed: vec!["[mailbox]".into()],
            },
            Some("/t".into()),
        );
        let status = Status {
            service: health.snapshot(),
            pending_drafts: Some(2),
            next_reminder: Some(at("2027-03-05T09:00:00Z")),
            accounts: Vec::new(),
        };
        let text = render(
            &status,
            chrono_tz::Europe::London,
            at("2027-03-01T10:00:30Z"),
        );
        let expected = format!(
            "pushback is starting (pid {}, up 1h 0m)\n\
             mailbox:        maildir /m, NOT connected since Mon 2027-03-01 09:00:01 GMT, \
             retrying: auth failed\n\
             last check:     Mon 2027-03-01 09:30:00 GMT (30m 30s ago)\n\
             pending drafts: 2 (`pushback drafts list`)\n\
             next reminder:  Fri 2027-03-05 09:00:00 GMT\n\
             config:         (built-in demo configuration)\n\
             templates:      /t\n\
             template pack:  none (your own templates or rules)\n\
             last reload:    reload (SIGHUP) at Mon 2027-03-01 09:10:00 GMT: FAILED, the \
             running config and templates are kept: /t/rfp.txt line 2: syntax error\n\
             \x20               changed [mailbox] take effect after a restart\n",
            std::process::id()
        );
        assert_eq!(text, expected);
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);
    }

    #[test]
    fn several_accounts_are_shown_one_by_one() {
        let status_of = |account: &str, mailbox: &str| {
            let mut config = Config::demo(Path::new(mailbox), Path::new("/s"));
            config.account = account.into();
            let health = Health::new(&config, Duration::from_secs(30), at("2027-03-01T09:00:00Z"));
            health.set_phase(Phase::Running);
            Status {
                service: health.snapshot(),
                pending_drafts: Some(0),
                next_reminder: None,
                accounts: Vec::new(),
            }
        };
        let work = status_of("work", "/work");
        let side = status_of("side", "/side");
        let status = Status {
            accounts: vec![work.clone(), side],
            ..work
        };
        let text = render(
            &status,
            chrono_tz::Europe::London,
            at("2027-03-01T09:00:30Z"),
        );
        assert!(text.starts_with("pushback is running (pid "), "{text}");
        for (account, mailbox) in [("work", "/work"), ("side", "/side")] {
            let at = text.find(&format!(
                "account {account}:\n  mailbox:        maildir {mailbox}"
            ));
            assert!(at.is_some(), "{account} in {text}");
        }
        assert_eq!(text.matches("pending drafts: none").count(), 2, "{text}");
        let json = serde_json::to_string(&status).unwrap();
        assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), status);

        // `--account` narrows the answer to one account.
        let side = of_account(status.clone(), "side").unwrap();
        assert_eq!(side.service.account, "side");
        assert!(side.accounts.is_empty());
        let error = of_account(status, "home").unwrap_err().to_string();
        assert!(
            error.contains("no account home (it runs work, side)"),
            "{error}"
        );
        let alone = status_of("default", "/m");
        assert_eq!(of_account(alone.clone(), "default").unwrap(), alone);
    }

    #[test]
    fn status_looks_in_the_state_dir_too() {
        let mut config = Config::demo(Path::new("/m"), Path::new("/s"));
        assert_eq!(
            socket_candidates(&config),
            [PathBuf::from("/s/status.sock")]
        );
        config.status_socket = "/run/user/1000/pushback/status.sock".into();
        assert_eq!(
            socket_candidates(&config),
            [
                PathBuf::from("/run/user/1000/pushback/status.sock"),
                PathBuf::from("/s/status.sock")
            ]
        );
    }

    #[test]
    fn the_pack_line_names_the_pack_its_version_and_where_it_is() {
        let config = Config::demo(Path::new("/m"), Path::new("/s"));
        let health = Health::new(&config, Duration::from_secs(30), Utc::now());
        let emea = PackLabel {
            name: "emea".into(),
            version: "1.4.0".into(),
        };
        health.drafting_with(Some(&emea), Some("/srv/packs/emea".into()));
        assert_eq!(
            describe_pack(&health.snapshot()),
            "emea 1.4.0 (/srv/packs/emea)"
        );
        health.drafting_with(Some(&emea), None);
        assert_eq!(describe_pack(&health.snapshot()), "emea 1.4.0 (built-in)");
        let json = serde_json::to_value(health.snapshot()).unwrap();
        assert_eq!(json["pack"]["version"], "1.4.0");
    }
}

//! `pushback doctor`: checks, step by step, everything the daemon will need (the config, the
//! state store, the mailbox and the way out) and says in plain words what works, what does not
//! and what to do about it. The checks build a report as plain data (a list of [`Step`]s); the
//! renderers turn it into text or JSON lines and never touch the network. Every network step runs
//! under [`STEP_TIMEOUT`], a failed step skips only the steps that need it, and no password or
//! token is ever part of a step. Nothing is sent and no mail is changed: the IMAP folders are
//! opened read-only and SMTP stops after the login.

use crate::adapters::calendar;
use crate::adapters::imap::{self, FolderState, ImapSettings, Session as ImapSession, tls};
use crate::adapters::secret::{self, Auth};
use crate::adapters::smtp::smtp_transport;
use crate::adapters::store::{self, DraftStatus, Store};
use crate::app::watch::IMAP_INBOX;
use crate::config::{
    Accounts, Config, Credential, Login, MailboxAccess, Outgoing, PasswordSource, Security, Server,
};
use chrono::{Days, Utc};
use serde::Serialize;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The most any one step may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Failed,
    /// Not run because a step it needs failed.
    Skipped,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
        }
    }
}

/// One verdict: what was checked, how it went, and on trouble what to do next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub section: &'static str,
    pub step: &'static str,
    pub status: Status,
    pub detail: String,
    pub hint: Option<String>,
}

impl Step {
    fn ok(section: &'static str, step: &'static str, detail: impl Into<String>) -> Step {
        Step {
            section,
            step,
            status: Status::Ok,
            detail: detail.into(),
            hint: None,
        }
    }

    fn warning(
        section: &'static str,
        step: &'static str,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Step {
        Step::ok(section, step, detail).with_hint(Status::Warning, hint)
    }

    fn failed(
        section: &'static str,
        step: &'static str,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> Step {
        Step::ok(section, step, detail).with_hint(Status::Failed, hint)
    }

    fn with_hint(self, status: Status, hint: impl Into<String>) -> Step {
        Step {
            status,
            hint: Some(hint.into()),
            ..self
        }
    }

    fn skipped(section: &'static str, step: &'static str, needs: &str) -> Step {
        Step {
            status: Status::Skipped,
            ..Step::ok(section, step, format!("skipped: needs {needs}"))
        }
    }
}

/// True when no step failed (warnings pass).
pub fn passed(steps: &[Step]) -> bool {
    !steps.iter().any(|s| s.status == Status::Failed)
}

/// The report for a person: one block per section, one line per step, the hint under it, and a
/// closing verdict.
pub fn render_text(steps: &[Step]) -> String {
    let mut out = String::new();
    let mut section = "";
    for step in steps {
        if step.section != section {
            section = step.section;
            let _ = writeln!(out, "{section}");
        }
        let _ = writeln!(
            out,
            "  {:<8} {:<13} {}",
            step.status.label(),
            step.step,
            step.detail
        );
        if let Some(hint) = &step.hint {
            let _ = writeln!(out, "  {:<8} {:<13} -> {hint}", "", "");
        }
    }
    let count = |status| steps.iter().filter(|s| s.status == status).count();
    let (failed, warnings) = (count(Status::Failed), count(Status::Warning));
    let _ = match (failed, warnings) {
        (0, 0) => writeln!(out, "all checks passed"),
        (0, w) => writeln!(out, "no check failed; {w} warning(s) above"),
        (f, w) => writeln!(
            out,
            "{f} check(s) FAILED, {w} warning(s): see the hints above"
        ),
    };
    out
}

/// The report for a program: one JSON object per step per line.
pub fn render_json(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|step| serde_json::to_string(step).expect("a step is plain strings") + "\n")
        .collect()
}

/// Runs every check for the config at `config_path`: for `account`, or every account in it.
pub fn run(config_path: &Path, account: Option<&str>) -> Vec<Step> {
    let mut steps = Vec::new();
    let configs = match Accounts::load(config_path).and_then(|all| all.select(account)) {
        Ok(configs) => configs,
        Err(error) => {
            steps.push(Step::failed(
                "config",
                "file",
                format!("{error}"),
                "fix the file (`pushback config check` shows what it resolves to), or point \
                 --config or PUSHBACK_CONFIG at the right one",
            ));
            for section in ["state", "mailbox", "outgoing", CALENDAR] {
                steps.push(Step::skipped(section, "all", "a valid config file"));
            }
            return steps;
        }
    };
    steps.push(Step::ok(
        "config",
        "file",
        format!("loaded {}", config_path.display()),
    ));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            steps.push(Step::failed(
                "config",
                "runtime",
                format!("cannot start the async runtime: {error}"),
                "the system is short of threads or file descriptors; try again",
            ));
            return steps;
        }
    };
    let several = configs.len() > 1;
    for config in &configs {
        // With several accounts, each one's checks follow the line naming it.
        let account = if several {
            format!("account {}: ", config.account)
        } else {
            String::new()
        };
        let id = &config.identity;
        steps.push(Step::ok(
            "config",
            "identity",
            format!(
                "{account}{} <{}>, {} at {}; time zone {}",
                id.name, id.email, id.title, id.company, config.timezone
            ),
        ));
        runtime.block_on(check_config(config, &mut steps));
    }
    // A password command that outlived its timeout must not keep doctor waiting.
    runtime.shutdown_background();
    steps
}

async fn check_config(config: &Config, steps: &mut Vec<Step>) {
    let store = check_state(&config.state_dir, &config.account, steps);
    match &config.mailbox.access {
        MailboxAccess::Maildir { path } => check_maildir(path, config, steps),
        MailboxAccess::Imap(server) => check_imap(server, config, store.as_ref(), steps).await,
    }
    check_outgoing(config, steps).await;
    check_calendar(config, store.as_ref(), steps).await;
}

// ---- calendar: reminders, the feed, CalDAV, busy times ----

const CALENDAR: &str = "calendar";

async fn check_calendar(config: &Config, store: Option<&Store>, steps: &mut Vec<Step>) {
    steps.push(match store.map(|s| s.reminders(true)) {
        None => Step::skipped(CALENDAR, "reminders", "a readable state store"),
        Some(Err(error)) => Step::failed(
            CALENDAR,
            "reminders",
            format!("{error}"),
            "the state file may be damaged; move it aside to start afresh",
        ),
        Some(Ok(open)) => {
            let confirm = open
                .iter()
                .filter(|r| r.status == store::ReminderStatus::Confirm)
                .count();
            let next = open.iter().filter_map(|r| r.due_at).min().map_or_else(
                || "nothing scheduled".to_string(),
                |due| {
                    format!(
                        "next due {}",
                        due.with_timezone(&config.timezone)
                            .format("%a %Y-%m-%d %H:%M %Z")
                    )
                },
            );
            let detail = format!("{} open, {next}", open.len());
            if confirm > 0 {
                Step::warning(
                    CALENDAR,
                    "reminders",
                    detail,
                    format!(
                        "{confirm} date(s) need your confirmation: `pushback reminders list`, \
                         then `reminders snooze ID DURATION` or `reminders done ID`"
                    ),
                )
            } else {
                Step::ok(CALENDAR, "reminders", detail)
            }
        }
    });
    let feed = &config.reminders.feed;
    steps.push(match feed.parent().map(std::fs::metadata) {
        Some(Ok(meta)) if meta.is_dir() && !meta.permissions().readonly() => Step::ok(
            CALENDAR,
            "feed",
            format!("reminders are written to {}", feed.display()),
        ),
        _ => Step::failed(
            CALENDAR,
            "feed",
            format!(
                "cannot write {}: its directory is missing or read-only",
                feed.display()
            ),
            "create the directory or point [reminders] feed elsewhere",
        ),
    });
    let caldav = match crate::app::caldav(config) {
        Ok(caldav) => caldav,
        Err(error) => {
            steps.push(Step::failed(
                CALENDAR,
                "caldav",
                format!("{error:#}"),
                "check caldav-user and its password or token command",
            ));
            None
        }
    };
    if let Some(caldav) = &caldav {
        steps.push(
            calendar_call(
                "caldav",
                String::new(),
                caldav.ensure_calendar(),
                |()| "the calendar collection is there".into(),
                "check [calendar] caldav-url, the login and caldav-ca-file",
            )
            .await,
        );
    }
    for source in &config.calendar.busy {
        let now = Utc::now();
        let read = calendar::fetch_busy(
            source,
            now,
            now + chrono::Duration::weeks(6),
            config.timezone,
        );
        steps.push(
            calendar_call(
                "busy",
                format!("{source}: "),
                read,
                |busy| {
                    format!(
                        "{source}: {} busy stretch(es) in the next 6 weeks",
                        busy.len()
                    )
                },
                "fix [calendar] busy: call times would be proposed over your meetings",
            )
            .await,
        );
    }
}

/// One calendar step over the network, bounded like every other step: ok with what `ok` says,
/// failed with the error and `hint`, or failed for want of an answer (`origin` names the source).
async fn calendar_call<T>(
    step: &'static str,
    origin: String,
    call: impl Future<Output = Result<T, calendar::Error>>,
    ok: impl FnOnce(T) -> String,
    hint: &str,
) -> Step {
    match within(call).await {
        Some(Ok(value)) => Step::ok(CALENDAR, step, ok(value)),
        Some(Err(error)) => Step::failed(CALENDAR, step, format!("{error}"), hint),
        None => Step::failed(
            CALENDAR,
            step,
            format!("{origin}no answer within {} s", secs(STEP_TIMEOUT)),
            "is the calendar server up and reachable?",
        ),
    }
}

// ---- state ----

const STATE: &str = "state";

fn check_state(dir: &Path, account: &str, steps: &mut Vec<Step>) -> Option<Store> {
    let writable = std::fs::create_dir_all(dir).and_then(|()| tempfile::tempfile_in(dir));
    if let Err(error) = writable {
        steps.push(Step::failed(
            STATE,
            "directory",
            format!("cannot write to {}: {error}", dir.display()),
            "make it writable by this user, or set [state] path to a directory that is",
        ));
        steps.push(Step::skipped(STATE, "store", "a writable state directory"));
        steps.push(Step::skipped(STATE, "drafts", "a writable state directory"));
        return None;
    }
    steps.push(Step::ok(
        STATE,
        "directory",
        format!("{} is writable", dir.display()),
    ));
    let file = dir.join(store::FILE_NAME);
    let store = match Store::open_account(dir, account) {
        Ok(store) => store,
        Err(error) => {
            steps.push(Step::failed(
                STATE,
                "store",
                format!("{error}"),
                "another program may hold the file, or it is damaged: move it aside to start \
                 afresh (drafts and sync progress are then forgotten)",
            ));
            steps.push(Step::skipped(STATE, "drafts", "the state store"));
            return None;
        }
    };
    steps.push(Step::ok(
        STATE,
        "store",
        format!(
            "{} opened; schema {}, migrations current",
            file.display(),
            schema_version(&file)
        ),
    ));
    steps.push(draft_counts(&store));
    Some(store)
}

/// The schema version the migrations recorded (SQLite's user_version), for the report only.
fn schema_version(file: &Path) -> String {
    rusqlite::Connection::open(file)
        .and_then(|conn| conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)))
        .map_or_else(
            |e| format!("version unreadable ({e})"),
            |v| format!("version {v}"),
        )
}

fn draft_counts(store: &Store) -> Step {
    let statuses = [
        DraftStatus::Pending,
        DraftStatus::Approved,
        DraftStatus::Failed,
        DraftStatus::Unknown,
    ];
    let mut counts = Vec::new();
    for status in statuses {
        match store.drafts(Some(status)) {
            Ok(drafts) => counts.push((status, drafts.len())),
            Err(error) => {
                return Step::failed(
                    STATE,
                    "drafts",
                    format!("{error}"),
                    "the state file may be damaged; move it aside to start afresh",
                );
            }
        }
    }
    let detail = counts
        .iter()
        .map(|(status, n)| format!("{n} {}", status.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    let count = |wanted| counts.iter().find(|(s, _)| *s == wanted).map_or(0, |c| c.1);
    if count(DraftStatus::Failed) + count(DraftStatus::Unknown) > 0 {
        Step::warning(
            STATE,
            "drafts",
            detail,
            "see `pushback drafts list --status failed` and `--status unknown`: they need your \
             decision",
        )
    } else {
        Step::ok(STATE, "drafts", detail)
    }
}

// ---- mailbox: Maildir ----

const MAILBOX: &str = "mailbox";

fn check_maildir(path: &Path, config: &Config, steps: &mut Vec<Step>) {
    let missing = |dir: &Path| {
        ["cur", "new", "tmp"]
            .into_iter()
            .filter(|sub| !dir.join(sub).is_dir())
            .collect::<Vec<_>>()
    };
    let root_missing = missing(path);
    if !root_missing.is_empty() {
        steps.push(Step::failed(
            MAILBOX,
            "maildir",
            format!(
                "{} is not a Maildir: no {}",
                path.display(),
                root_missing.join("/, ") + "/"
            ),
            format!(
                "point [mailbox] path at your Maildir, or create one: mkdir -p {}/{{cur,new,tmp}}",
                path.display()
            ),
        ));
        steps.push(Step::skipped(MAILBOX, "folders", "the Maildir"));
        return;
    }
    steps.push(Step::ok(
        MAILBOX,
        "maildir",
        format!("{} has cur/, new/ and tmp/", path.display()),
    ));
    let names = [
        ("Drafts", &config.mailbox.drafts_folder),
        ("Sent", &config.mailbox.sent_folder),
    ];
    let mut found = Vec::new();
    let mut absent = Vec::new();
    for (role, name) in names {
        let dir = path.join(format!(".{name}"));
        if missing(&dir).is_empty() {
            found.push(format!("{role} {}", dir.display()));
        } else {
            absent.push(dir);
        }
    }
    if absent.is_empty() {
        steps.push(Step::ok(MAILBOX, "folders", found.join(", ")));
    } else {
        let list: Vec<_> = absent.iter().map(|d| d.display().to_string()).collect();
        steps.push(Step::failed(
            MAILBOX,
            "folders",
            format!("missing Maildir folder(s): {}", list.join(", ")),
            format!(
                "create them (mkdir -p {}/{{cur,new,tmp}}) or set drafts-folder / sent-folder \
                 to folders that exist",
                list.join("/{cur,new,tmp} ")
            ),
        ));
    }
}

// ---- mailbox: IMAP ----

/// The network steps both servers go through, in order.
struct Probe<'a> {
    section: &'static str,
    /// "[mailbox]" or "[smtp]", for hints.
    table: &'static str,
    server: &'a Server,
}

async fn within<T>(step: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(STEP_TIMEOUT, step).await.ok()
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

impl Probe<'_> {
    fn hostport(&self) -> String {
        format!("{}:{}", self.server.host, self.server.port)
    }

    fn source(&self) -> String {
        self.server
            .login
            .as_ref()
            .map_or_else(|| "the credentials".to_string(), source_of)
    }

    /// DNS, TCP and TLS in order, each skipped when the one before failed; true when the
    /// connection could be secured.
    async fn connection(&self, steps: &mut Vec<Step>, upgrade: Upgrade) -> bool {
        let Some(addresses) = self.dns(steps).await else {
            skip(
                steps,
                self.section,
                &["tcp connect", "tls"],
                "the host's address",
            );
            return false;
        };
        if !self.tcp(&addresses, steps).await {
            skip(steps, self.section, &["tls"], "a TCP connection");
            return false;
        }
        self.tls(steps, upgrade).await
    }

    async fn dns(&self, steps: &mut Vec<Step>) -> Option<Vec<SocketAddr>> {
        let host = self
            .server
            .host
            .trim_start_matches('[')
            .trim_end_matches(']');
        let lookup = tokio::net::lookup_host((host, self.server.port));
        let failure = match within(lookup).await {
            Some(Ok(addresses)) => {
                let addresses: Vec<SocketAddr> = addresses.collect();
                if !addresses.is_empty() {
                    let list: Vec<_> = addresses.iter().map(|a| a.ip().to_string()).collect();
                    steps.push(Step::ok(
                        self.section,
                        "dns",
                        format!("{} resolves to {}", self.server.host, list.join(", ")),
                    ));
                    return Some(addresses);
                }
                "the name has no addresses".to_string()
            }
            Some(Err(error)) => error.to_string(),
            None => format!("no answer within {} s", secs(STEP_TIMEOUT)),
        };
        steps.push(Step::failed(
            self.section,
            "dns",
            format!("cannot resolve {}: {failure}", self.server.host),
            format!(
                "check the spelling of host in {} and that this machine can reach a DNS server",
                self.table
            ),
        ));
        None
    }

    async fn tcp(&self, addresses: &[SocketAddr], steps: &mut Vec<Step>) -> bool {
        let mut errors = Vec::new();
        for address in addresses {
            let started = Instant::now();
            match within(TcpStream::connect(address)).await {
                Some(Ok(_)) => {
                    steps.push(Step::ok(
                        self.section,
                        "tcp connect",
                        format!(
                            "connected to {address} in {} ms",
                            started.elapsed().as_millis()
                        ),
                    ));
                    return true;
                }
                Some(Err(error)) => errors.push(format!("{address}: {error}")),
                None => errors.push(format!(
                    "{address}: no answer within {} s",
                    secs(STEP_TIMEOUT)
                )),
            }
        }
        steps.push(Step::failed(
            self.section,
            "tcp connect",
            format!(
                "cannot connect to {}: {}",
                self.hostport(),
                errors.join("; ")
            ),
            format!(
                "is the server up and is port {} right for security = \"{}\"? A firewall or a \
                 VPN may be in the way",
                self.server.port,
                self.server.security.as_str()
            ),
        ));
        false
    }

    /// Secures a fresh connection the way the daemon will and says whom the certificate was
    /// checked against. `starttls` speaks the protocol's own upgrade first.
    async fn tls(&self, steps: &mut Vec<Step>, upgrade: Upgrade) -> bool {
        let tls_options = &self.server.tls;
        if self.server.security == Security::Plain {
            steps.push(Step::ok(
                self.section,
                "tls",
                "not encrypted: security = \"plain\" (the config allows that only to a \
                 loopback host)",
            ));
            return true;
        }
        let trust = if tls_options.accept_invalid_certs {
            tls::Trust::DangerousAcceptInvalidCerts
        } else {
            tls::Trust::Verified {
                extra_ca_file: tls_options.ca_file.as_deref(),
            }
        };
        let result = match within(self.handshake(trust, upgrade)).await {
            Some(result) => result,
            None => Err(Handshake::Other(format!(
                "no answer within {} s",
                secs(STEP_TIMEOUT)
            ))),
        };
        let how = match self.server.security {
            Security::Starttls => "STARTTLS",
            _ => "TLS",
        };
        match result {
            Ok(version) if tls_options.accept_invalid_certs => {
                steps.push(Step::warning(
                    self.section,
                    "tls",
                    format!(
                        "{how} ({version}) but the certificate is NOT CHECKED: \
                         accept-invalid-certs = true, so anyone on the network path can pose as \
                         {} and read the password and the mail",
                        self.server.host
                    ),
                    format!(
                        "trust the server's CA with ca-file in {} and remove accept-invalid-certs",
                        self.table
                    ),
                ));
                true
            }
            Ok(version) => {
                let roots = match &tls_options.ca_file {
                    Some(file) => format!(
                        "the system and webpki roots plus the CA file {}",
                        file.display()
                    ),
                    None => "the system and webpki roots".to_string(),
                };
                steps.push(Step::ok(
                    self.section,
                    "tls",
                    format!("{how} ({version}); certificate trusted, checked against {roots}"),
                ));
                true
            }
            Err(Handshake::Certificate(error)) => {
                let added = match &tls_options.ca_file {
                    Some(file) => format!(" (CA file {} was added)", file.display()),
                    None => " (no ca-file configured)".to_string(),
                };
                steps.push(Step::failed(
                    self.section,
                    "tls",
                    format!(
                        "certificate of {} NOT TRUSTED: {error}{added}",
                        self.server.host
                    ),
                    format!(
                        "if the server uses a private or company CA, set ca-file = \
                         \"/path/to/ca.pem\" in {}; otherwise have the certificate fixed \
                         (expired? wrong name?)",
                        self.table
                    ),
                ));
                false
            }
            Err(Handshake::Other(error)) => {
                steps.push(Step::failed(
                    self.section,
                    "tls",
                    format!(
                        "cannot secure the connection to {}: {error}",
                        self.hostport()
                    ),
                    format!(
                        "check that security = \"{}\" matches the port (\"tls\" for {}, \
                         \"starttls\" for {})",
                        self.server.security.as_str(),
                        upgrade.tls_port(),
                        upgrade.starttls_port()
                    ),
                ));
                false
            }
        }
    }

    async fn handshake(
        &self,
        trust: tls::Trust<'_>,
        upgrade: Upgrade,
    ) -> Result<String, Handshake> {
        let config = tls::client_config(trust).map_err(|e| Handshake::Other(e.to_string()))?;
        let host = self
            .server
            .host
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| Handshake::Other(format!("{host:?} is not a TLS server name ({e})")))?;
        let tcp = TcpStream::connect((host, self.server.port))
            .await
            .map_err(|e| Handshake::Other(e.to_string()))?;
        let tcp = if self.server.security == Security::Starttls {
            upgrade
                .run(tcp)
                .await
                .map_err(|e| Handshake::Other(e.to_string()))?
        } else {
            tcp
        };
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| match tls::certificate_error(&e) {
                Some(error) => Handshake::Certificate(error.to_string()),
                None => Handshake::Other(e.to_string()),
            })?;
        let version = stream.get_ref().1.protocol_version();
        Ok(version.map_or("TLS".to_string(), |v| {
            format!("{v:?}").replace("TLSv1_", "TLS 1.")
        }))
    }

    /// Fetches the password or token as a login would, on a thread of its own so that a hanging
    /// command cannot hang doctor. Says where it came from, never what it is.
    async fn credentials(&self, steps: &mut Vec<Step>) -> Option<Option<Auth>> {
        let Some(login) = self.server.login.clone() else {
            steps.push(Step::ok(
                self.section,
                "credentials",
                "none configured: no login",
            ));
            return Some(None);
        };
        let source = source_of(&login);
        let hint = match &login.credential {
            Credential::Password(PasswordSource::Env(name)) => format!(
                "set {name} in the environment doctor and the daemon run with (for systemd: \
                 Environment=, EnvironmentFile= or LoadCredential=)"
            ),
            Credential::OAuth2(settings) => format!(
                "run `pushback login {}` (as the user the daemon runs as)",
                settings.account
            ),
            _ => format!(
                "run {source} yourself as this user: it must print the secret on its first line \
                 and exit 0"
            ),
        };
        let host = self.server.host.clone();
        let user = login.user.clone();
        let fetch = tokio::task::spawn_blocking(move || crate::app::resolve_auth(&login, &host));
        let failure = match within(fetch).await {
            Some(Ok(Ok(auth))) => {
                let until = match &self.server.login {
                    Some(Login {
                        credential: Credential::OAuth2(settings),
                        ..
                    }) => crate::app::oauth2::held_until(settings)
                        .map(|at| format!(", valid until {}", at.format("%Y-%m-%d %H:%M UTC")))
                        .unwrap_or_default(),
                    _ => String::new(),
                };
                steps.push(Step::ok(
                    self.section,
                    "credentials",
                    format!("{} for {user} fetched from {source}{until}", kind_of(&auth)),
                ));
                return Some(Some(auth));
            }
            Some(Ok(Err(error))) => credential_failure(&error, &source),
            Some(Err(error)) => format!("the credential lookup stopped: {error}"),
            None => format!("{source} did not finish within {} s", secs(STEP_TIMEOUT)),
        };
        steps.push(Step::failed(self.section, "credentials", failure, hint));
        None
    }
}

/// Where the secret comes from, without the command line itself: a careless command may carry
/// the password in its arguments.
fn source_of(login: &Login) -> String {
    match &login.credential {
        Credential::Password(PasswordSource::Command(_)) => "the password-command".to_string(),
        Credential::Password(PasswordSource::Env(name)) => {
            format!("the environment variable {name} (password-env)")
        }
        Credential::OAuth2TokenCommand(_) => "the token-command".to_string(),
        Credential::OAuth2(settings) => format!(
            "pushback's OAuth2 login (refresh token in the {})",
            crate::app::oauth2::token_store(settings).place()
        ),
    }
}

/// Why the secret could not be fetched: exit status and stderr of a failing command, never its
/// command line or output.
fn credential_failure(error: &anyhow::Error, source: &str) -> String {
    if crate::app::oauth2::needs_login(error) {
        // Says which account and what to run; holds no token.
        return format!("{error:#}");
    }
    match error.downcast_ref::<secret::Error>() {
        Some(secret::Error::Spawn { cause, .. }) => format!("cannot run {source}: {cause}"),
        Some(secret::Error::CommandFailed { status, stderr, .. }) if stderr.is_empty() => {
            format!("{source} failed ({status}) and wrote nothing to stderr")
        }
        Some(secret::Error::CommandFailed { status, stderr, .. }) => {
            format!("{source} failed ({status}): {stderr}")
        }
        Some(secret::Error::Empty { .. }) => format!("{source} printed nothing"),
        Some(secret::Error::EnvMissing { name }) => {
            format!("the environment variable {name} is not set (or not valid UTF-8)")
        }
        None => format!("cannot fetch the credentials from {source}"),
    }
}

fn kind_of(auth: &Auth) -> &'static str {
    match auth {
        Auth::Password { .. } => "password",
        Auth::XOAuth2 { .. } => "OAuth2 token",
    }
}

enum Handshake {
    Certificate(String),
    Other(String),
}

/// The plain-text exchange that comes before TLS on a STARTTLS port.
#[derive(Clone, Copy)]
enum Upgrade {
    Imap,
    Smtp,
}

impl Upgrade {
    fn tls_port(self) -> u16 {
        match self {
            Upgrade::Imap => 993,
            Upgrade::Smtp => 465,
        }
    }

    fn starttls_port(self) -> u16 {
        match self {
            Upgrade::Imap => 143,
            Upgrade::Smtp => 587,
        }
    }

    /// Reads the greeting and asks for STARTTLS; anything buffered after the server's yes is
    /// dropped, as it must be (it was not protected).
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(self, stream: S) -> Result<S, String> {
        let mut stream = BufReader::new(stream);
        match self {
            Upgrade::Imap => {
                read_until(&mut stream, |l| l.starts_with("* ")).await?;
                send(&mut stream, "d1 STARTTLS\r\n").await?;
                let reply = read_until(&mut stream, |l| l.starts_with("d1 ")).await?;
                if !reply.to_ascii_uppercase().starts_with("D1 OK") {
                    return Err(format!("the server refused STARTTLS: {reply}"));
                }
            }
            Upgrade::Smtp => {
                let is_last = |l: &str| l.len() < 4 || l.as_bytes()[3] == b' ';
                let greeting = read_until(&mut stream, is_last).await?;
                expect_code(&greeting, "220")?;
                send(&mut stream, "EHLO pushback-doctor\r\n").await?;
                expect_code(&read_until(&mut stream, is_last).await?, "250")?;
                send(&mut stream, "STARTTLS\r\n").await?;
                let reply = read_until(&mut stream, is_last).await?;
                expect_code(&reply, "220")
                    .map_err(|_| format!("the server refused STARTTLS: {reply}"))?;
            }
        }
        Ok(stream.into_inner())
    }
}

fn expect_code(reply: &str, code: &str) -> Result<(), String> {
    if reply.starts_with(code) {
        Ok(())
    } else {
        Err(format!("unexpected reply: {reply}"))
    }
}

async fn send<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    line: &str,
) -> Result<(), String> {
    let inner = stream.get_mut();
    inner
        .write_all(line.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    inner.flush().await.map_err(|e| e.to_string())
}

async fn read_until<S: AsyncRead + Unpin>(
    stream: &mut BufReader<S>,
    last: impl Fn(&str) -> bool,
) -> Result<String, String> {
    loop {
        let mut line = String::new();
        let n = stream
            .read_line(&mut line)
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("the server closed the connection".into());
        }
        let line = line.trim_end();
        if last(line) {
            return Ok(line.to_string());
        }
    }
}

async fn check_imap(
    server: &Server,
    config: &Config,
    store: Option<&Store>,
    steps: &mut Vec<Step>,
) {
    const LATER: [&str; 5] = ["login", "capabilities", "folders", "inbox", "watcher"];
    let probe = Probe {
        section: MAILBOX,
        table: "[mailbox]",
        server,
    };
    let secured = probe.connection(steps, Upgrade::Imap).await;
    let credentials = probe.credentials(steps).await;
    let auth = match (secured, credentials) {
        (true, Some(Some(auth))) => auth,
        (false, _) => return skip(steps, MAILBOX, &LATER, "a secure connection"),
        (true, None) => return skip(steps, MAILBOX, &LATER, "the credentials"),
        (true, Some(None)) => return skip(steps, MAILBOX, &LATER, "a user in [mailbox]"),
    };
    let mechanism = match &auth {
        Auth::Password { .. } => "LOGIN",
        Auth::XOAuth2 { .. } => "AUTHENTICATE XOAUTH2",
    };
    let user = auth.user().to_string();
    let settings = ImapSettings {
        host: server.host.clone(),
        port: server.port,
        security: server.security,
        auth,
        ca_file: server.tls.ca_file.clone(),
        accept_invalid_certs: server.tls.accept_invalid_certs,
        timeout: STEP_TIMEOUT,
    };
    let mut session = match within(ImapSession::connect(&settings)).await {
        Some(Ok(session)) => session,
        failure => {
            let (detail, hint) = match failure {
                Some(Err(error @ imap::Error::Login { .. })) => (
                    format!("{error}"),
                    format!(
                        "the server refused user {user}: check user in [mailbox] and what {} \
                         gives (an expired password or token, an app password required?)",
                        probe.source()
                    ),
                ),
                Some(Err(error)) => {
                    let hint = if error.is_transient() {
                        "this looks temporary: try again in a minute"
                    } else {
                        "see the error above; `pushback config check` shows the settings used"
                    };
                    (format!("{error}"), hint.to_string())
                }
                _ => (
                    format!(
                        "cannot log in to {} (user {user}): no answer within {} s",
                        probe.hostport(),
                        secs(STEP_TIMEOUT)
                    ),
                    "the server is slow or the network drops packets: try again".to_string(),
                ),
            };
            steps.push(Step::failed(MAILBOX, "login", detail, hint));
            return skip(steps, MAILBOX, &LATER[1..], "a login");
        }
    };
    steps.push(Step::ok(
        MAILBOX,
        "login",
        format!(
            "logged in to {} as {user} with {mechanism}",
            probe.hostport()
        ),
    ));
    steps.push(capabilities_step(session.capabilities(), config));
    let special_use = session.capabilities().special_use;
    steps.push(imap_folders(&mut session, config, special_use).await);
    let inbox = match within(session.select("INBOX")).await {
        Some(Ok(state)) => {
            let next = state
                .uid_next
                .map_or(String::new(), |uid| format!(", next UID {uid}"));
            steps.push(Step::ok(
                MAILBOX,
                "inbox",
                format!(
                    "INBOX holds {} message(s), UIDVALIDITY {}{next}",
                    state.exists, state.uid_validity
                ),
            ));
            Some(state)
        }
        failure => {
            steps.push(Step::failed(
                MAILBOX,
                "inbox",
                failure.map_or_else(
                    || {
                        format!(
                            "cannot open INBOX: no answer within {} s",
                            secs(STEP_TIMEOUT)
                        )
                    },
                    |e| format!("{}", e.expect_err("Ok is matched above")),
                ),
                "the account has no usable INBOX: check it with your mail client",
            ));
            None
        }
    };
    steps.push(match (store, inbox) {
        (Some(store), Some(inbox)) => watcher_step(store, &inbox, config),
        (None, _) => Step::skipped(MAILBOX, "watcher", "the state store"),
        (_, None) => Step::skipped(MAILBOX, "watcher", "the inbox"),
    });
    // Doctor is done with the server; a failed LOGOUT changes nothing it reports.
    let _ = within(session.logout()).await;
}

fn skip(steps: &mut Vec<Step>, section: &'static str, names: &[&'static str], needs: &str) {
    for name in names {
        steps.push(Step::skipped(section, name, needs));
    }
}

fn capabilities_step(caps: &imap::Capabilities, config: &Config) -> Step {
    let sync = &config.mailbox.sync;
    let checks = [
        (
            "IDLE",
            caps.idle,
            true,
            format!(
                "no IDLE: polling every {} s (poll-seconds)",
                sync.poll_interval.as_secs()
            ),
        ),
        (
            "UIDPLUS",
            caps.uidplus,
            true,
            "no UIDPLUS: drafts pushback removes are only flagged \\Deleted and your mail \
             client expunges them"
                .to_string(),
        ),
        (
            "SPECIAL-USE",
            caps.special_use,
            true,
            format!(
                "no SPECIAL-USE: Drafts and Sent are the configured {:?} and {:?}",
                config.mailbox.drafts_folder, config.mailbox.sent_folder
            ),
        ),
        (
            "MOVE",
            caps.move_command,
            false,
            "no MOVE: not needed, pushback appends and deletes".to_string(),
        ),
        (
            "CONDSTORE",
            caps.condstore,
            false,
            "no CONDSTORE: not needed, pushback follows new mail by UID".to_string(),
        ),
    ];
    let have: Vec<&str> = checks.iter().filter(|c| c.1).map(|c| c.0).collect();
    let without: Vec<&str> = checks
        .iter()
        .filter(|c| !c.1)
        .map(|c| c.3.as_str())
        .collect();
    let mut detail = if have.is_empty() {
        "none of IDLE, UIDPLUS, SPECIAL-USE, MOVE, CONDSTORE".to_string()
    } else {
        have.join(", ")
    };
    if caps.idle {
        detail.push_str(&format!(
            "; new mail is noticed at once (IDLE renewed every {} min)",
            sync.idle_timeout.as_secs() / 60
        ));
    }
    for note in &without {
        detail.push_str("; ");
        detail.push_str(note);
    }
    if checks.iter().any(|c| c.2 && !c.1) {
        Step::warning(
            MAILBOX,
            "capabilities",
            detail,
            "pushback works without them, as said; a server upgrade would help",
        )
    } else {
        Step::ok(MAILBOX, "capabilities", detail)
    }
}

/// Drafts and Sent as the daemon will find them, each opened read-only to prove it exists.
async fn imap_folders(session: &mut ImapSession, config: &Config, special_use: bool) -> Step {
    let found =
        within(session.special_folders(&config.mailbox.drafts_folder, &config.mailbox.sent_folder))
            .await;
    let folders = match found {
        Some(Ok(folders)) => folders,
        failure => {
            return Step::failed(
                MAILBOX,
                "folders",
                failure.map_or_else(
                    || {
                        format!(
                            "cannot list the folders: no answer within {} s",
                            secs(STEP_TIMEOUT)
                        )
                    },
                    |e| format!("{}", e.expect_err("Ok is matched above")),
                ),
                "the server refused LIST: check the account with your mail client",
            );
        }
    };
    for (role, name, key) in [
        ("Drafts", &folders.drafts, "drafts-folder"),
        ("Sent", &folders.sent, "sent-folder"),
    ] {
        let opened = within(session.select(name)).await;
        if !matches!(opened, Some(Ok(_))) {
            let why = opened.map_or_else(
                || format!("no answer within {} s", secs(STEP_TIMEOUT)),
                |e| format!("{}", e.expect_err("Ok is matched above")),
            );
            return Step::failed(
                MAILBOX,
                "folders",
                format!("the {role} folder {name:?} cannot be opened: {why}"),
                format!(
                    "create {name:?} with your mail client, or set {key} in [mailbox] to a \
                     folder that exists"
                ),
            );
        }
    }
    let source = if special_use {
        "found by SPECIAL-USE where marked, else the configured names"
    } else {
        "the configured names: the server has no SPECIAL-USE"
    };
    Step::ok(
        MAILBOX,
        "folders",
        format!(
            "Drafts {:?}, Sent {:?}; both exist ({source})",
            folders.drafts, folders.sent
        ),
    )
}

fn watcher_step(store: &Store, inbox: &FolderState, config: &Config) -> Step {
    let backfill = config.mailbox.sync.backfill_days;
    match store.sync_state(IMAP_INBOX) {
        Err(error) => Step::failed(
            MAILBOX,
            "watcher",
            format!("{error}"),
            "the state file may be damaged; move it aside to start afresh",
        ),
        Ok(None) => {
            let today = Utc::now().with_timezone(&config.timezone).date_naive();
            let since = today
                .checked_sub_days(Days::new(backfill.into()))
                .unwrap_or(today);
            Step::ok(
                MAILBOX,
                "watcher",
                format!(
                    "not started yet: the first start handles inbox mail from the last \
                     {backfill} day(s), since {since} (backfill-days)"
                ),
            )
        }
        Ok(Some(progress)) if progress.uid_validity == inbox.uid_validity => Step::ok(
            MAILBOX,
            "watcher",
            format!(
                "last UID handled {} under UIDVALIDITY {}; newer mail is next",
                progress.uid, progress.uid_validity
            ),
        ),
        Ok(Some(progress)) => Step::warning(
            MAILBOX,
            "watcher",
            format!(
                "the store knows UIDVALIDITY {} but the server now says {}: the server \
                 renumbered the inbox",
                progress.uid_validity, inbox.uid_validity
            ),
            format!(
                "nothing to do: the next start goes over the last {backfill} day(s) again and \
                 Message-IDs keep drafts from repeating"
            ),
        ),
    }
}

// ---- outgoing ----

const OUTGOING: &str = "outgoing";

async fn check_outgoing(config: &Config, steps: &mut Vec<Step>) {
    match &config.outgoing {
        None => {
            let what = match &config.mailbox.access {
                MailboxAccess::Maildir { .. } => format!(
                    "approved drafts are only filed in the Maildir's {:?} folder",
                    config.mailbox.sent_folder
                ),
                MailboxAccess::Imap(_) => {
                    "approved drafts wait in the outbox until [smtp] is configured".to_string()
                }
            };
            steps.push(Step::ok(
                OUTGOING,
                "transport",
                format!("none configured: {what}; nothing leaves the machine"),
            ));
        }
        Some(Outgoing::Sendmail { command, .. }) => steps.push(sendmail_step(command)),
        Some(Outgoing::Smtp { server, .. }) => check_smtp(server, steps).await,
    }
}

fn sendmail_step(command: &str) -> Step {
    let hint = "install it (msmtp, a sendmail) or give its full path in [smtp] sendmail-command";
    let Some(program) = command.split_whitespace().next() else {
        return Step::failed(OUTGOING, "sendmail", "sendmail-command is empty", hint);
    };
    let found = if program.contains('/') {
        Some(PathBuf::from(program)).filter(|p| is_executable(p))
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|p| is_executable(p))
        })
    };
    match found {
        Some(path) => Step::ok(
            OUTGOING,
            "sendmail",
            format!(
                "sendmail-command `{command}`: {} is executable; nothing was sent (the command \
                 does its own login)",
                path.display()
            ),
        ),
        None => Step::failed(
            OUTGOING,
            "sendmail",
            format!("sendmail-command `{command}`: {program} is not an executable file on PATH"),
            hint,
        ),
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

async fn check_smtp(server: &Server, steps: &mut Vec<Step>) {
    let probe = Probe {
        section: OUTGOING,
        table: "[smtp]",
        server,
    };
    let secured = probe.connection(steps, Upgrade::Smtp).await;
    let credentials = probe.credentials(steps).await;
    let auth = match (secured, credentials) {
        (true, Some(auth)) => auth,
        (false, _) => return skip(steps, OUTGOING, &["login"], "a secure connection"),
        (true, None) => return skip(steps, OUTGOING, &["login"], "the credentials"),
    };
    let user = auth.as_ref().map(|a| a.user().to_string());
    let settings = crate::app::send::smtp_settings(server, auth, STEP_TIMEOUT);
    let transport = match smtp_transport(&settings) {
        Ok(transport) => transport,
        Err(error) => {
            steps.push(Step::failed(
                OUTGOING,
                "login",
                format!("{error}"),
                "fix the [smtp] settings named above",
            ));
            return;
        }
    };
    let target = match &user {
        Some(user) => format!("{} (user {user})", probe.hostport()),
        None => probe.hostport(),
    };
    steps.push(match within(transport.test_connection()).await {
        Some(Ok(true)) => Step::ok(
            OUTGOING,
            "login",
            match &user {
                Some(user) => format!("EHLO and AUTH as {user} accepted by {}", probe.hostport()),
                None => format!("EHLO accepted by {}; no login configured", probe.hostport()),
            } + "; nothing was sent",
        ),
        Some(Ok(false)) => Step::failed(
            OUTGOING,
            "login",
            format!("{target} accepted the login but did not answer NOOP"),
            "the server is unwell or overloaded: try again later",
        ),
        Some(Err(error)) => {
            let hint = if error.is_tls() {
                "a TLS problem: check ca-file and security in [smtp]".to_string()
            } else if error.is_permanent() && user.is_some() {
                format!(
                    "check user in [smtp] and what {} gives; the server's reply is above",
                    probe.source()
                )
            } else if error.is_permanent() {
                "the server wants a login: set user and password-command in [smtp]".to_string()
            } else {
                "this looks temporary: try again in a minute".to_string()
            };
            Step::failed(
                OUTGOING,
                "login",
                format!("cannot log in to {target}: {error}"),
                hint,
            )
        }
        None => Step::failed(
            OUTGOING,
            "login",
            format!("{target}: no answer within {} s", secs(STEP_TIMEOUT)),
            "the server is slow or the network drops packets: try again",
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Vec<Step> {
        vec![
            Step::ok("config", "file", "loaded /etc/pushback/config.toml"),
            Step::warning("mailbox", "capabilities", "no IDLE", "upgrade"),
            Step::failed("outgoing", "login", "535 no", "check the password"),
            Step::skipped("outgoing", "later", "a login"),
        ]
    }

    #[test]
    fn text_groups_steps_by_section_with_hints_and_a_verdict() {
        let text = render_text(&report());
        assert_eq!(
            text,
            "config\n  ok       file          loaded /etc/pushback/config.toml\n\
             mailbox\n  warning  capabilities  no IDLE\n                         -> upgrade\n\
             outgoing\n  FAILED   login         535 no\n\
             \x20                        -> check the password\n\
             \x20 skipped  later         skipped: needs a login\n\
             1 check(s) FAILED, 1 warning(s): see the hints above\n"
        );
    }

    #[test]
    fn a_clean_report_says_so() {
        let steps = vec![Step::ok("config", "file", "loaded x")];
        assert!(render_text(&steps).ends_with("all checks passed\n"));
        assert!(passed(&steps));
        assert!(!passed(&report()));
        let warned = vec![Step::warning("state", "drafts", "1 failed", "look")];
        assert!(passed(&warned));
        assert!(render_text(&warned).ends_with("no check failed; 1 warning(s) above\n"));
    }

    #[test]
    fn json_is_one_object_per_step_per_line() {
        let json = render_json(&report());
        let lines: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[2],
            serde_json::json!({
                "section": "outgoing", "step": "login", "status": "failed",
                "detail": "535 no", "hint": "check the password"
            })
        );
        assert_eq!(lines[0]["hint"], serde_json::Value::Null);
        assert_eq!(lines[3]["status"], "skipped");
    }

    #[test]
    fn a_sendmail_command_is_looked_up_on_path_without_running_it() {
        let found = sendmail_step("sh -c 'exit 1'");
        assert_eq!(found.status, Status::Ok, "{found:?}");
        let missing = sendmail_step("/nonexistent/sendmail -i");
        assert_eq!(missing.status, Status::Failed);
        assert!(missing.detail.contains("/nonexistent/sendmail"));
        let nowhere = sendmail_step("no-such-sendmail-anywhere -t");
        assert_eq!(nowhere.status, Status::Failed);
    }

    #[test]
    fn missing_capabilities_say_what_pushback_does_instead() {
        let config = Config::demo(Path::new("/tmp/m"), Path::new("/tmp/s"));
        let none = capabilities_step(&imap::Capabilities::default(), &config);
        assert_eq!(none.status, Status::Warning);
        assert!(
            none.detail.contains("no IDLE: polling every 120 s"),
            "{}",
            none.detail
        );
        assert!(none.detail.contains("no UIDPLUS"));
        let all = imap::Capabilities {
            idle: true,
            uidplus: true,
            special_use: true,
            move_command: true,
            condstore: true,
            multiappend: true,
            literal_plus: true,
        };
        let step = capabilities_step(&all, &config);
        assert_eq!(step.status, Status::Ok);
        assert!(
            step.detail
                .starts_with("IDLE, UIDPLUS, SPECIAL-USE, MOVE, CONDSTORE")
        );
    }
}

//! The configuration file: raw TOML (kebab-case keys, unknown keys refused, `version = 1`) is
//! validated into a typed [`Config`] with paths expanded, ports, security, TLS options and IMAP
//! sync intervals resolved and defaults applied. Every error names the file, the line and the
//! key. The config holds no secrets: a password or an OAuth2 access token is named by a command or
//! an environment variable and fetched by whoever logs in; a plain `password` key is refused.
//! Reading flags and environment overrides for the config path is the binary's business, and so
//! are TLS and the login itself (this module only checks that a `ca-file` holds certificates).

use crate::core::model::Identity;
use chrono_tz::Tz;
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Config file versions this build reads.
pub const SUPPORTED_VERSIONS: [i64; 1] = [1];
pub const DEFAULT_DRAFTS_FOLDER: &str = "Drafts";
pub const DEFAULT_SENT_FOLDER: &str = "Sent";
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 25 * 1024 * 1024;
/// `[smtp] save-to-sent`: keep a copy in the Sent folder unless the server files one itself.
pub const DEFAULT_SAVE_TO_SENT: bool = true;
/// `[mailbox] backfill-days`: on first start, mail older than this is left alone.
pub const DEFAULT_BACKFILL_DAYS: u32 = 14;
pub const BACKFILL_DAYS_RANGE: RangeInclusive<u32> = 0..=3650;
/// `[mailbox] fetch-max-bytes`: how much of each message is fetched for classification.
pub const DEFAULT_FETCH_MAX_BYTES: u32 = 256 * 1024;
/// Below this the headers and the opening of the body may not fit.
pub const MIN_FETCH_MAX_BYTES: u32 = 4096;
/// `[mailbox] idle-minutes`: RFC 2177 allows 29 minutes, but NAT routers and Microsoft 365 drop
/// an idle connection sooner, so 20 is both the default and the ceiling.
pub const DEFAULT_IDLE_MINUTES: u32 = 20;
pub const IDLE_MINUTES_RANGE: RangeInclusive<u32> = 1..=20;
/// `[mailbox] poll-seconds`: for servers without IDLE.
pub const DEFAULT_POLL_SECONDS: u32 = 120;
pub const POLL_SECONDS_RANGE: RangeInclusive<u32> = 10..=86400;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {cause}{hint}", hint = read_hint(cause))]
    Read { path: PathBuf, cause: io::Error },
    #[error("{}: {message}", location(file, *line, key))]
    Invalid {
        file: PathBuf,
        /// 1-based; `None` when the problem is the file as a whole (e.g. a missing key).
        line: Option<usize>,
        /// "[identity] timezone", "version", or empty for a syntax error.
        key: String,
        message: String,
    },
}

fn read_hint(cause: &io::Error) -> &'static str {
    if cause.kind() == io::ErrorKind::NotFound {
        " (start from config/pushback.example.toml, or point --config or PUSHBACK_CONFIG at your file)"
    } else {
        ""
    }
}

fn location(file: &Path, line: Option<usize>, key: &str) -> String {
    let mut at = file.display().to_string();
    if let Some(line) = line {
        at.push_str(&format!(" line {line}"));
    }
    if !key.is_empty() {
        at.push_str(": ");
        at.push_str(key);
    }
    at
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was read from; `None` for the built-in demo configuration.
    pub file: Option<PathBuf>,
    pub identity: Identity,
    /// `identity.timezone`, parsed.
    pub timezone: Tz,
    pub mailbox: Mailbox,
    /// How approved drafts leave; `None` when `[smtp]` is absent: approved drafts are only filed
    /// in the Sent folder and nothing leaves the machine.
    pub outgoing: Option<Outgoing>,
    /// The directory holding the SQLite state file.
    pub state_dir: PathBuf,
    /// `None`: the built-in templates.
    pub templates_dir: Option<PathBuf>,
    /// `None`: the built-in classifier rules.
    pub classifier_rules: Option<PathBuf>,
    pub max_message_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mailbox {
    pub access: MailboxAccess,
    pub drafts_folder: String,
    pub sent_folder: String,
    /// Only set from the file for IMAP; a Maildir gets the defaults.
    pub sync: ImapSync,
}

/// How the IMAP mailbox is followed.
#[derive(Debug, Clone, PartialEq)]
pub struct ImapSync {
    /// On first start, only mail from the last this many days is considered.
    pub backfill_days: u32,
    /// The cap on the first part of each message fetched for classification.
    pub fetch_max_bytes: u32,
    /// IDLE is re-issued at least this often.
    pub idle_timeout: Duration,
    /// The polling interval for servers without IDLE.
    pub poll_interval: Duration,
}

impl Default for ImapSync {
    fn default() -> ImapSync {
        ImapSync {
            backfill_days: DEFAULT_BACKFILL_DAYS,
            fetch_max_bytes: DEFAULT_FETCH_MAX_BYTES,
            idle_timeout: Duration::from_secs(u64::from(DEFAULT_IDLE_MINUTES) * 60),
            poll_interval: Duration::from_secs(u64::from(DEFAULT_POLL_SECONDS)),
        }
    }
}

/// How approved drafts leave the machine.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    Smtp {
        server: Server,
        /// Append a copy to the Sent folder after sending.
        save_to_sent: bool,
    },
    /// A sendmail-style command reading the message on stdin (`msmtp -t`), run through the
    /// shell; it does its own login.
    Sendmail { command: String, save_to_sent: bool },
}

#[derive(Debug, Clone, PartialEq)]
pub enum MailboxAccess {
    Maildir {
        path: PathBuf,
    },
    /// `login` is always present for IMAP.
    Imap(Server),
}

/// A mail server and how to log in to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// `None`: no authentication (an SMTP relay on loopback, say).
    pub login: Option<Login>,
    pub tls: TlsOptions,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    pub user: String,
    pub credential: Credential,
}

/// What proves the user at login time; never the secret itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    /// IMAP LOGIN / SMTP AUTH PLAIN or LOGIN.
    Password(PasswordSource),
    /// SASL XOAUTH2: a shell command whose first output line is an OAuth2 access token.
    OAuth2TokenCommand(String),
}

/// Certificate checking beyond the defaults (system store and webpki roots).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TlsOptions {
    /// An extra PEM CA bundle trusted in addition to the defaults (a self-hosted server).
    pub ca_file: Option<PathBuf>,
    /// Dangerous: no certificate check at all.
    pub accept_invalid_certs: bool,
}

/// Where the password comes from at login time; never the password itself.
#[derive(Debug, Clone, PartialEq)]
pub enum PasswordSource {
    /// A shell command whose first output line is the password (`pass show mail/work`).
    Command(String),
    /// The name of an environment variable holding the password (a systemd credential can be
    /// exported this way).
    Env(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// Plain connection upgraded with STARTTLS (IMAP 143, submission 587).
    Starttls,
    /// No encryption at all: refused unless the host is loopback.
    Plain,
}

impl Security {
    pub fn as_str(self) -> &'static str {
        match self {
            Security::Tls => "tls",
            Security::Starttls => "starttls",
            Security::Plain => "plain",
        }
    }
}

/// `$XDG_CONFIG_HOME/pushback/config.toml`, else `~/.config/pushback/config.toml`, else (no home
/// at all, as for a system service) `/etc/pushback/config.toml`.
pub fn default_config_path() -> PathBuf {
    config_path_from(&|name| std::env::var_os(name))
}

type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

fn config_path_from(env: Env<'_>) -> PathBuf {
    xdg_dir(env, "XDG_CONFIG_HOME", ".config")
        .map(|dir| dir.join("pushback").join("config.toml"))
        .unwrap_or_else(|| PathBuf::from("/etc/pushback/config.toml"))
}

fn default_state_dir(env: Env<'_>) -> Option<PathBuf> {
    xdg_dir(env, "XDG_STATE_HOME", ".local/state").map(|dir| dir.join("pushback"))
}

/// The XDG variable when it holds an absolute path (the spec says to ignore relative ones), else
/// `$HOME/<fallback>`.
fn xdg_dir(env: Env<'_>, var: &str, fallback: &str) -> Option<PathBuf> {
    env(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| home(env).map(|h| h.join(fallback)))
}

fn home(env: Env<'_>) -> Option<PathBuf> {
    env("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|cause| Error::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Config::from_toml(&text, path)
    }

    /// Validates config text; `path` names the file in errors and anchors relative paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, Error> {
        Parser {
            text,
            file: path,
            env: &|name| std::env::var_os(name),
        }
        .parse()
    }

    /// The embedded configuration `pushback demo` runs with: a fictional rep, a local Maildir and
    /// built-in templates and rules.
    pub fn demo(maildir: &Path, state_dir: &Path) -> Config {
        Config {
            file: None,
            identity: Identity::demo(),
            timezone: Tz::Europe__London,
            mailbox: Mailbox {
                access: MailboxAccess::Maildir {
                    path: maildir.to_path_buf(),
                },
                drafts_folder: DEFAULT_DRAFTS_FOLDER.into(),
                sent_folder: DEFAULT_SENT_FOLDER.into(),
                sync: ImapSync::default(),
            },
            outgoing: None,
            state_dir: state_dir.to_path_buf(),
            templates_dir: None,
            classifier_rules: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// What was resolved, for `pushback config check`. Holds no secrets because the config has
    /// none: only password and token commands and environment variable names. Ends with a
    /// newline, so whatever is printed after it starts on a line of its own.
    pub fn describe(&self) -> String {
        format!("{self}\n")
    }

    /// The servers whose certificates are not checked, by table, for the warnings.
    fn unchecked_servers(&self) -> Vec<(&'static str, &Server)> {
        let mailbox = match &self.mailbox.access {
            MailboxAccess::Imap(server) => Some(("[mailbox]", server)),
            MailboxAccess::Maildir { .. } => None,
        };
        let smtp = match &self.outgoing {
            Some(Outgoing::Smtp { server, .. }) => Some(("[smtp]", server)),
            _ => None,
        };
        [mailbox, smtp]
            .into_iter()
            .flatten()
            .filter(|(_, server)| server.tls.accept_invalid_certs)
            .collect()
    }
}

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => writeln!(f, "config file:      {}", file.display())?,
            None => writeln!(f, "config file:      (built-in demo configuration)")?,
        }
        let id = &self.identity;
        writeln!(
            f,
            "identity:         {} <{}>, {}, {} ({})",
            id.name, id.email, id.title, id.company, self.timezone
        )?;
        match &self.mailbox.access {
            MailboxAccess::Maildir { path } => {
                writeln!(f, "mailbox:          maildir {}", path.display())?
            }
            MailboxAccess::Imap(server) => {
                let sync = &self.mailbox.sync;
                writeln!(f, "mailbox:          imap {server}")?;
                writeln!(
                    f,
                    "imap sync:        backfill {} days, fetch up to {} bytes per message, \
                     IDLE renewed every {} min, poll every {} s without IDLE",
                    sync.backfill_days,
                    sync.fetch_max_bytes,
                    sync.idle_timeout.as_secs() / 60,
                    sync.poll_interval.as_secs()
                )?;
            }
        }
        writeln!(
            f,
            "folders:          drafts {:?}, sent {:?}",
            self.mailbox.drafts_folder, self.mailbox.sent_folder
        )?;
        let sent = |save: bool| {
            if save {
                format!("a copy is saved to {:?}", self.mailbox.sent_folder)
            } else {
                "no copy saved (save-to-sent = false)".to_owned()
            }
        };
        match &self.outgoing {
            Some(Outgoing::Smtp {
                server,
                save_to_sent,
            }) => writeln!(
                f,
                "outgoing:         smtp {server}; {}",
                sent(*save_to_sent)
            )?,
            Some(Outgoing::Sendmail {
                command,
                save_to_sent,
            }) => writeln!(
                f,
                "outgoing:         sendmail command `{command}`; {}",
                sent(*save_to_sent)
            )?,
            None => writeln!(
                f,
                "outgoing:         not configured: approved drafts are filed in {:?} and nothing \
                 leaves this machine",
                self.mailbox.sent_folder
            )?,
        }
        writeln!(f, "state:            {}", self.state_dir.display())?;
        match &self.templates_dir {
            Some(dir) => writeln!(f, "templates:        {}", dir.display())?,
            None => writeln!(f, "templates:        built-in")?,
        }
        match &self.classifier_rules {
            Some(path) => writeln!(f, "classifier rules: {}", path.display())?,
            None => writeln!(f, "classifier rules: built-in")?,
        }
        write!(f, "max message size: {} bytes", self.max_message_bytes)?;
        for (table, server) in self.unchecked_servers() {
            write!(
                f,
                "\nWARNING: {table} accept-invalid-certs = true: the certificate of {} is NOT \
                 CHECKED, so anyone on the network path can pose as the server and read the login \
                 and the mail. Trust a self-signed server with ca-file instead.",
                server.host
            )?;
        }
        Ok(())
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} ({})",
            self.host,
            self.port,
            self.security.as_str()
        )?;
        match &self.login {
            None => write!(f, ", no login")?,
            Some(Login { user, credential }) => {
                write!(f, ", user {user}, ")?;
                match credential {
                    Credential::Password(PasswordSource::Command(command)) => {
                        write!(f, "password from command `{command}`")?
                    }
                    Credential::Password(PasswordSource::Env(name)) => {
                        write!(f, "password from environment variable {name}")?
                    }
                    Credential::OAuth2TokenCommand(command) => {
                        write!(f, "XOAUTH2 with a token from command `{command}`")?
                    }
                }
            }
        }
        if let Some(ca_file) = &self.tls.ca_file {
            write!(f, ", also trusting CAs in {}", ca_file.display())?;
        }
        if self.tls.accept_invalid_certs {
            write!(f, ", CERTIFICATES NOT CHECKED (accept-invalid-certs)")?;
        }
        Ok(())
    }
}

// ---- raw TOML ------------------------------------------------------------------------------

/// Read before anything else, so that a file of another version fails on its version and not on
/// a key this build does not know.
#[derive(Deserialize)]
struct RawVersion {
    version: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    #[serde(rename = "version")]
    _version: IgnoredAny,
    identity: RawIdentity,
    mailbox: RawMailbox,
    smtp: Option<RawSmtp>,
    #[serde(default)]
    state: RawState,
    #[serde(default)]
    templates: RawTemplates,
    #[serde(default)]
    classifier: RawClassifier,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawIdentity {
    name: Spanned<String>,
    email: Spanned<String>,
    title: String,
    company: String,
    timezone: Spanned<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum MailboxKind {
    Maildir,
    Imap,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawMailbox {
    kind: Spanned<MailboxKind>,
    path: Option<Spanned<String>>,
    // The server keys again rather than `#[serde(flatten)]`: flatten defeats both
    // deny_unknown_fields and the span information.
    host: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    security: Option<Spanned<Security>>,
    user: Option<Spanned<String>>,
    password_command: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    token_command: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    accept_invalid_certs: Option<Spanned<bool>>,
    password: Option<Spanned<IgnoredAny>>,
    backfill_days: Option<Spanned<u32>>,
    fetch_max_bytes: Option<Spanned<u32>>,
    idle_minutes: Option<Spanned<u32>>,
    poll_seconds: Option<Spanned<u32>>,
    drafts_folder: Option<Spanned<String>>,
    sent_folder: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawSmtp {
    host: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    security: Option<Spanned<Security>>,
    user: Option<Spanned<String>>,
    password_command: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    token_command: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    accept_invalid_certs: Option<Spanned<bool>>,
    /// Only there to be refused with a useful message; its value is never kept.
    password: Option<Spanned<IgnoredAny>>,
    sendmail_command: Option<Spanned<String>>,
    save_to_sent: Option<Spanned<bool>>,
}

/// The server keys `[mailbox]` (kind = "imap") and `[smtp]` share, gathered from either table.
struct RawServer {
    host: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    security: Option<Spanned<Security>>,
    user: Option<Spanned<String>>,
    password_command: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    token_command: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    accept_invalid_certs: Option<Spanned<bool>>,
}

impl RawServer {
    /// The keys that are set, with where they are, for refusing them where they do not apply.
    fn keys_set(&self) -> Vec<(&'static str, Range<usize>)> {
        let string = |value: &Option<Spanned<String>>| value.as_ref().map(Spanned::span);
        [
            ("host", string(&self.host)),
            ("port", self.port.as_ref().map(Spanned::span)),
            ("security", self.security.as_ref().map(Spanned::span)),
            ("user", string(&self.user)),
            ("password-command", string(&self.password_command)),
            ("password-env", string(&self.password_env)),
            ("token-command", string(&self.token_command)),
            ("ca-file", string(&self.ca_file)),
            (
                "accept-invalid-certs",
                self.accept_invalid_certs.as_ref().map(Spanned::span),
            ),
        ]
        .into_iter()
        .filter_map(|(key, span)| span.map(|span| (key, span)))
        .collect()
    }
}

/// The first of `keys` in the file.
fn first_in_file(
    keys: impl IntoIterator<Item = (&'static str, Range<usize>)>,
) -> Option<(&'static str, Range<usize>)> {
    keys.into_iter().min_by_key(|(_, span)| span.start)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawState {
    path: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTemplates {
    dir: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawClassifier {
    rules: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    max_message_bytes: Option<Spanned<u64>>,
}

// ---- validation ----------------------------------------------------------------------------

struct Parser<'a> {
    text: &'a str,
    file: &'a Path,
    env: Env<'a>,
}

impl Parser<'_> {
    fn parse(&self) -> Result<Config, Error> {
        let version: RawVersion = toml::from_str(self.text).map_err(|e| self.toml_error(&e))?;
        self.check_version(version.version)?;
        let raw: RawConfig = toml::from_str(self.text).map_err(|e| self.toml_error(&e))?;

        let id = raw.identity;
        let timezone: Tz = id.timezone.get_ref().parse().map_err(|_| {
            self.invalid(
                id.timezone.span(),
                "[identity] timezone",
                format!(
                    "unknown time zone {:?} (use an IANA name such as \"Europe/Paris\")",
                    id.timezone.get_ref()
                ),
            )
        })?;
        if id.name.get_ref().trim().is_empty() {
            return Err(self.invalid(id.name.span(), "[identity] name", "must not be empty"));
        }
        if !id.email.get_ref().contains('@') {
            return Err(self.invalid(
                id.email.span(),
                "[identity] email",
                format!("{:?} is not an email address", id.email.get_ref()),
            ));
        }
        let identity = Identity {
            name: id.name.into_inner(),
            email: id.email.into_inner(),
            title: id.title,
            company: id.company,
            timezone: timezone.name().to_owned(),
        };

        let mailbox = self.mailbox(raw.mailbox)?;
        let outgoing = raw.smtp.map(|s| self.outgoing(s)).transpose()?;
        let state_dir = match raw.state.path {
            Some(path) => self.path("[state] path", path)?,
            None => default_state_dir(self.env).ok_or_else(|| Error::Invalid {
                file: self.file.to_path_buf(),
                line: None,
                key: "[state] path".into(),
                message: "has no default because neither XDG_STATE_HOME nor HOME is set; set it"
                    .into(),
            })?,
        };
        let templates_dir = raw
            .templates
            .dir
            .map(|p| self.path("[templates] dir", p))
            .transpose()?;
        let classifier_rules = raw
            .classifier
            .rules
            .map(|p| self.path("[classifier] rules", p))
            .transpose()?;
        let max_message_bytes = match raw.limits.max_message_bytes {
            Some(max) if *max.get_ref() == 0 => {
                return Err(self.invalid(
                    max.span(),
                    "[limits] max-message-bytes",
                    "must be more than 0",
                ));
            }
            Some(max) => max.into_inner(),
            None => DEFAULT_MAX_MESSAGE_BYTES,
        };

        Ok(Config {
            file: Some(self.file.to_path_buf()),
            identity,
            timezone,
            mailbox,
            outgoing,
            state_dir,
            templates_dir,
            classifier_rules,
            max_message_bytes,
        })
    }

    fn check_version(&self, version: Option<Spanned<toml::Value>>) -> Result<(), Error> {
        let supported = SUPPORTED_VERSIONS
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let Some(version) = version else {
            return Err(Error::Invalid {
                file: self.file.to_path_buf(),
                line: None,
                key: "version".into(),
                message: format!(
                    "missing; put `version = 1` at the top (this pushback reads config version {supported})"
                ),
            });
        };
        match version.get_ref() {
            toml::Value::Integer(v) if SUPPORTED_VERSIONS.contains(v) => Ok(()),
            toml::Value::Integer(other) => Err(self.invalid(
                version.span(),
                "version",
                format!(
                    "version {other} is not supported; this pushback reads config version {supported}"
                ),
            )),
            other => Err(self.invalid(
                version.span(),
                "version",
                format!("must be a plain number such as `version = 1`, not {other}"),
            )),
        }
    }

    fn refuse_password(
        &self,
        table: &str,
        password: Option<&Spanned<IgnoredAny>>,
    ) -> Result<(), Error> {
        match password {
            None => Ok(()),
            Some(password) => Err(self.invalid(
                password.span(),
                &format!("[{table}] password"),
                "a password in the config file is refused; use password-command (a command that \
                 prints it, e.g. \"pass show mail/work\") or password-env (the name of an \
                 environment variable holding it)",
            )),
        }
    }

    fn mailbox(&self, raw: RawMailbox) -> Result<Mailbox, Error> {
        // Before the kind checks, so a maildir user learns where passwords go, too.
        self.refuse_password("mailbox", raw.password.as_ref())?;
        let folder = |value: Option<Spanned<String>>, key: &str, default: &str| match value {
            None => Ok(default.to_owned()),
            Some(v) if v.get_ref().is_empty() || v.get_ref().contains('/') => Err(self.invalid(
                v.span(),
                key,
                format!("{:?} is not a folder name", v.get_ref()),
            )),
            Some(v) => Ok(v.into_inner()),
        };
        let drafts_folder = folder(
            raw.drafts_folder,
            "[mailbox] drafts-folder",
            DEFAULT_DRAFTS_FOLDER,
        )?;
        let sent_folder = folder(
            raw.sent_folder,
            "[mailbox] sent-folder",
            DEFAULT_SENT_FOLDER,
        )?;
        let server = RawServer {
            host: raw.host,
            port: raw.port,
            security: raw.security,
            user: raw.user,
            password_command: raw.password_command,
            password_env: raw.password_env,
            token_command: raw.token_command,
            ca_file: raw.ca_file,
            accept_invalid_certs: raw.accept_invalid_certs,
        };
        let sync_keys = [
            (
                "backfill-days",
                raw.backfill_days.as_ref().map(Spanned::span),
            ),
            (
                "fetch-max-bytes",
                raw.fetch_max_bytes.as_ref().map(Spanned::span),
            ),
            ("idle-minutes", raw.idle_minutes.as_ref().map(Spanned::span)),
            ("poll-seconds", raw.poll_seconds.as_ref().map(Spanned::span)),
        ];
        let (access, sync) = match *raw.kind.get_ref() {
            MailboxKind::Maildir => {
                let sync_keys = sync_keys
                    .into_iter()
                    .filter_map(|(key, span)| span.map(|span| (key, span)));
                if let Some((key, span)) =
                    first_in_file(server.keys_set().into_iter().chain(sync_keys))
                {
                    return Err(self.invalid(
                        span,
                        &format!("[mailbox] {key}"),
                        "only used with kind = \"imap\"; remove it for a maildir",
                    ));
                }
                let path = raw.path.ok_or_else(|| {
                    self.invalid(
                        raw.kind.span(),
                        "[mailbox] path",
                        "missing: kind = \"maildir\" needs the path of the Maildir",
                    )
                })?;
                let path = self.path("[mailbox] path", path)?;
                (MailboxAccess::Maildir { path }, ImapSync::default())
            }
            MailboxKind::Imap => {
                if let Some(path) = raw.path {
                    return Err(self.invalid(
                        path.span(),
                        "[mailbox] path",
                        "only used with kind = \"maildir\"; remove it for imap",
                    ));
                }
                let server = self.server("mailbox", server, Some(raw.kind.span()))?;
                let backfill_days = self.bounded(
                    raw.backfill_days,
                    "[mailbox] backfill-days",
                    BACKFILL_DAYS_RANGE,
                    DEFAULT_BACKFILL_DAYS,
                    "days",
                    "",
                )?;
                let fetch_max_bytes = self.bounded(
                    raw.fetch_max_bytes,
                    "[mailbox] fetch-max-bytes",
                    MIN_FETCH_MAX_BYTES..=u32::MAX,
                    DEFAULT_FETCH_MAX_BYTES,
                    "bytes",
                    " (the headers and the opening of the body must fit)",
                )?;
                let idle_minutes = self.bounded(
                    raw.idle_minutes,
                    "[mailbox] idle-minutes",
                    IDLE_MINUTES_RANGE,
                    DEFAULT_IDLE_MINUTES,
                    "minutes",
                    ": RFC 2177 allows 29, but NAT routers and Microsoft 365 drop an idle \
                     connection sooner",
                )?;
                let poll_seconds = self.bounded(
                    raw.poll_seconds,
                    "[mailbox] poll-seconds",
                    POLL_SECONDS_RANGE,
                    DEFAULT_POLL_SECONDS,
                    "seconds",
                    "",
                )?;
                let sync = ImapSync {
                    backfill_days,
                    fetch_max_bytes,
                    idle_timeout: Duration::from_secs(u64::from(idle_minutes) * 60),
                    poll_interval: Duration::from_secs(u64::from(poll_seconds)),
                };
                (MailboxAccess::Imap(server), sync)
            }
        };
        Ok(Mailbox {
            access,
            drafts_folder,
            sent_folder,
            sync,
        })
    }

    /// `value` if it lies in `bounds`, else an error saying so (with `why`, if any).
    fn bounded(
        &self,
        value: Option<Spanned<u32>>,
        key: &str,
        bounds: RangeInclusive<u32>,
        default: u32,
        unit: &str,
        why: &str,
    ) -> Result<u32, Error> {
        let Some(value) = value else {
            return Ok(default);
        };
        if bounds.contains(value.get_ref()) {
            return Ok(value.into_inner());
        }
        let allowed = if *bounds.end() == u32::MAX {
            format!("at least {}", bounds.start())
        } else {
            format!("{} to {}", bounds.start(), bounds.end())
        };
        Err(self.invalid(
            value.span(),
            key,
            format!(
                "{} is out of range: must be {allowed} {unit}{why}",
                value.get_ref()
            ),
        ))
    }

    fn outgoing(&self, raw: RawSmtp) -> Result<Outgoing, Error> {
        self.refuse_password("smtp", raw.password.as_ref())?;
        let save_to_sent = raw
            .save_to_sent
            .map_or(DEFAULT_SAVE_TO_SENT, Spanned::into_inner);
        let server = RawServer {
            host: raw.host,
            port: raw.port,
            security: raw.security,
            user: raw.user,
            password_command: raw.password_command,
            password_env: raw.password_env,
            token_command: raw.token_command,
            ca_file: raw.ca_file,
            accept_invalid_certs: raw.accept_invalid_certs,
        };
        let Some(command) = raw.sendmail_command else {
            return Ok(Outgoing::Smtp {
                server: self.server("smtp", server, None)?,
                save_to_sent,
            });
        };
        if let Some((key, span)) = first_in_file(server.keys_set()) {
            return Err(self.invalid(
                span,
                &format!("[smtp] {key}"),
                "only used with an SMTP host; remove it when sendmail-command is set (the \
                 command does its own delivery and login)",
            ));
        }
        let command = self.command("[smtp] sendmail-command", command)?;
        Ok(Outgoing::Sendmail {
            command,
            save_to_sent,
        })
    }

    /// Validates `[table]`'s server keys. `login_required_at` is where to point when a required
    /// login is missing (IMAP always logs in; SMTP may relay without).
    fn server(
        &self,
        table: &str,
        raw: RawServer,
        login_required_at: Option<Range<usize>>,
    ) -> Result<Server, Error> {
        let key = |name: &str| format!("[{table}] {name}");
        let is_imap = login_required_at.is_some();
        let host = raw.host.ok_or_else(|| Error::Invalid {
            file: self.file.to_path_buf(),
            line: login_required_at.clone().map(|span| self.line(span.start)),
            key: key("host"),
            message: if is_imap {
                "missing: the server's host name is required".into()
            } else {
                "missing: set host (an SMTP server) or sendmail-command (e.g. \"msmtp -t\")".into()
            },
        })?;
        if host.get_ref().trim().is_empty() {
            return Err(self.invalid(host.span(), &key("host"), "must not be empty"));
        }
        let security = raw
            .security
            .as_ref()
            .map_or(Security::Tls, |s| *s.get_ref());
        if let Some(plain) = raw
            .security
            .as_ref()
            .filter(|s| *s.get_ref() == Security::Plain)
        {
            if !is_loopback(host.get_ref()) {
                return Err(self.invalid(
                    plain.span(),
                    &key("security"),
                    format!(
                        "\"plain\" sends the password unencrypted, so it is only allowed to a \
                         loopback host, not {:?}; use \"tls\" or \"starttls\"",
                        host.get_ref()
                    ),
                ));
            }
            let tls_keys = [
                ("ca-file", raw.ca_file.as_ref().map(Spanned::span)),
                (
                    "accept-invalid-certs",
                    raw.accept_invalid_certs.as_ref().map(Spanned::span),
                ),
            ];
            if let Some((name, span)) =
                first_in_file(tls_keys.into_iter().filter_map(|(k, s)| s.map(|s| (k, s))))
            {
                return Err(self.invalid(
                    span,
                    &key(name),
                    "only used with TLS; security = \"plain\" has none",
                ));
            }
        }
        let port = match raw.port {
            Some(port) if *port.get_ref() == 0 => {
                return Err(self.invalid(port.span(), &key("port"), "must not be 0"));
            }
            Some(port) => port.into_inner(),
            None => match (is_imap, security) {
                (true, Security::Tls) => 993,
                (true, _) => 143,
                (false, Security::Tls) => 465,
                (false, Security::Starttls) => 587,
                (false, Security::Plain) => 25,
            },
        };
        let login = self.login(
            table,
            raw.user,
            raw.password_command,
            raw.password_env,
            raw.token_command,
            login_required_at,
        )?;
        let ca_file = raw
            .ca_file
            .map(|file| self.ca_file(&key("ca-file"), file))
            .transpose()?;
        Ok(Server {
            host: host.into_inner(),
            port,
            security,
            login,
            tls: TlsOptions {
                ca_file,
                accept_invalid_certs: raw.accept_invalid_certs.is_some_and(Spanned::into_inner),
            },
        })
    }

    /// `user` with exactly one of the three credential sources, or (SMTP only) none of them.
    fn login(
        &self,
        table: &str,
        user: Option<Spanned<String>>,
        password_command: Option<Spanned<String>>,
        password_env: Option<Spanned<String>>,
        token_command: Option<Spanned<String>>,
        login_required_at: Option<Range<usize>>,
    ) -> Result<Option<Login>, Error> {
        let key = |name: &str| format!("[{table}] {name}");
        let mut credentials: Vec<(&str, Range<usize>, Credential)> = Vec::new();
        if let Some(command) = password_command {
            let span = command.span();
            let command = self.command(&key("password-command"), command)?;
            credentials.push((
                "password-command",
                span,
                Credential::Password(PasswordSource::Command(command)),
            ));
        }
        if let Some(env) = password_env {
            // Naming rules catch the likely mistake of pasting the password itself here.
            if !is_env_name(env.get_ref()) {
                return Err(self.invalid(
                    env.span(),
                    &key("password-env"),
                    "must be the NAME of an environment variable (letters, digits and _), not \
                     the password",
                ));
            }
            credentials.push((
                "password-env",
                env.span(),
                Credential::Password(PasswordSource::Env(env.into_inner())),
            ));
        }
        if let Some(command) = token_command {
            let span = command.span();
            let command = self.command(&key("token-command"), command)?;
            credentials.push((
                "token-command",
                span,
                Credential::OAuth2TokenCommand(command),
            ));
        }
        credentials.sort_by_key(|(_, span, _)| span.start);
        if let Some((name, span, _)) = credentials.get(1) {
            return Err(self.invalid(
                span.clone(),
                &key(name),
                "set only one of password-command, password-env and token-command",
            ));
        }
        match (user, credentials.pop()) {
            (Some(user), Some((_, _, credential))) => Ok(Some(Login {
                user: user.into_inner(),
                credential,
            })),
            (Some(user), None) => Err(self.invalid(
                user.span(),
                &key("user"),
                "needs password-command, password-env or token-command to log in",
            )),
            (None, Some((name, span, _))) => Err(self.invalid(
                span,
                &key("user"),
                format!("missing: {name} needs a user to log in as"),
            )),
            (None, None) => match login_required_at {
                Some(at) => Err(Error::Invalid {
                    file: self.file.to_path_buf(),
                    line: Some(self.line(at.start)),
                    key: key("user"),
                    message: "missing: imap needs user and one of password-command, \
                              password-env or token-command"
                        .into(),
                }),
                None => Ok(None),
            },
        }
    }

    /// A shell command, which must not be blank.
    fn command(&self, key: &str, value: Spanned<String>) -> Result<String, Error> {
        if value.get_ref().trim().is_empty() {
            return Err(self.invalid(value.span(), key, "must not be empty"));
        }
        Ok(value.into_inner())
    }

    /// The path of a PEM CA bundle, checked now so that a typo fails at load time and not at the
    /// first connection.
    fn ca_file(&self, key: &str, value: Spanned<String>) -> Result<PathBuf, Error> {
        let span = value.span();
        let path = self.path(key, value)?;
        let pem = std::fs::read(&path).map_err(|cause| {
            self.invalid(
                span.clone(),
                key,
                format!("cannot read {}: {cause}", path.display()),
            )
        })?;
        let certificates = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|cause| {
                self.invalid(
                    span.clone(),
                    key,
                    format!("cannot parse {} as PEM: {cause}", path.display()),
                )
            })?;
        if certificates.is_empty() {
            return Err(self.invalid(
                span,
                key,
                format!(
                    "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----); convert a DER \
                     file with `openssl x509 -inform der -in ca.der -out ca.pem`",
                    path.display()
                ),
            ));
        }
        Ok(path)
    }

    /// Expands a leading `~` and anchors a relative path at the config file's directory.
    fn path(&self, key: &str, value: Spanned<String>) -> Result<PathBuf, Error> {
        let text = value.get_ref();
        if text.is_empty() {
            return Err(self.invalid(value.span(), key, "must not be empty"));
        }
        let path = if text == "~" || text.starts_with("~/") {
            let home = home(self.env).ok_or_else(|| {
                self.invalid(value.span(), key, "cannot expand ~ because HOME is not set")
            })?;
            home.join(text.trim_start_matches('~').trim_start_matches('/'))
        } else if text.starts_with('~') {
            return Err(self.invalid(
                value.span(),
                key,
                format!(
                    "cannot expand {text:?}: only a leading ~/ is expanded; write the full path"
                ),
            ));
        } else {
            PathBuf::from(text)
        };
        if path.is_absolute() {
            Ok(path)
        } else {
            Ok(self
                .file
                .parent()
                .map_or(path.clone(), |dir| dir.join(&path)))
        }
    }

    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn invalid(&self, span: Range<usize>, key: &str, message: impl Into<String>) -> Error {
        Error::Invalid {
            file: self.file.to_path_buf(),
            line: Some(self.line(span.start)),
            key: key.to_owned(),
            message: message.into(),
        }
    }

    /// A syntax or shape error from toml: the span gives the line, and the key is read back off
    /// that line and the table header above it.
    fn toml_error(&self, error: &toml::de::Error) -> Error {
        let message = error.message().trim().to_owned();
        match error.span() {
            // A span starting at 0 is the whole document (a missing top-level table), not line 1.
            Some(span) if span.start > 0 => Error::Invalid {
                file: self.file.to_path_buf(),
                line: Some(self.line(span.start)),
                key: key_at(self.text, span.start),
                message,
            },
            _ => Error::Invalid {
                file: self.file.to_path_buf(),
                line: None,
                key: String::new(),
                message,
            },
        }
    }
}

/// "[table] key" for the line holding `offset`: the key before `=` on that line, under the
/// nearest table header at or above it.
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("").trim();
    let header = |l: &str| -> Option<String> {
        let l = l.trim();
        (l.starts_with('[')).then(|| {
            let end = l.find(']').unwrap_or(l.len());
            format!("[{}]", l[1..end].trim_matches(['[', ' ']))
        })
    };
    if let Some(h) = header(line) {
        return h;
    }
    let table = text[..start].lines().rev().find_map(header);
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim().trim_matches('"').to_owned());
    match (table, key) {
        (Some(t), Some(k)) => format!("{t} {k}"),
        (None, Some(k)) => k,
        (Some(t), None) => t,
        (None, None) => String::new(),
    }
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDENTITY: &str = r#"
[identity]
name = "Alex Rivera"
email = "alex@northwind.example"
title = "Account Executive"
company = "Northwind Analytics"
timezone = "Europe/London"
"#;

    fn env(name: &str) -> Option<OsString> {
        match name {
            "HOME" => Some("/home/alex".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Config, Error> {
        Parser {
            text,
            file: Path::new("/etc/pb/config.toml"),
            env: &env,
        }
        .parse()
    }

    fn with_mailbox(mailbox: &str) -> String {
        format!("version = 1\n{IDENTITY}\n[mailbox]\n{mailbox}\n")
    }

    /// The 1-based line of `text` that contains `needle`.
    fn line_of(text: &str, needle: &str) -> usize {
        text.lines().position(|l| l.contains(needle)).unwrap() + 1
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_maildir_config_gets_its_defaults() {
        let config = parse(&with_mailbox("kind = \"maildir\"\npath = \"~/Mail\"")).unwrap();
        assert_eq!(
            config.mailbox.access,
            MailboxAccess::Maildir {
                path: "/home/alex/Mail".into()
            }
        );
        assert_eq!(config.mailbox.drafts_folder, "Drafts");
        assert_eq!(config.mailbox.sent_folder, "Sent");
        assert_eq!(
            config.state_dir,
            PathBuf::from("/home/alex/.local/state/pushback")
        );
        assert_eq!(config.max_message_bytes, 25 * 1024 * 1024);
        assert_eq!(config.timezone, Tz::Europe__London);
        assert_eq!(config.identity.title, "Account Executive");
        assert_eq!(config.outgoing, None);
        assert_eq!(config.mailbox.sync, ImapSync::default());
        assert_eq!(config.templates_dir, None);
        assert_eq!(config.classifier_rules, None);
    }

    #[test]
    fn relative_paths_are_anchored_at_the_config_file() {
        let text = with_mailbox("kind = \"maildir\"\npath = \"Mail\"")
            + "[templates]\ndir = \"templates\"\n";
        let config = parse(&text).unwrap();
        assert_eq!(
            config.mailbox.access,
            MailboxAccess::Maildir {
                path: "/etc/pb/Mail".into()
            }
        );
        assert_eq!(config.templates_dir, Some("/etc/pb/templates".into()));
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = with_mailbox("kind = \"maildir\"\npath = \"/m\"\ndrafts-foldr = \"X\"");
        let line = line_of(&text, "drafts-foldr");
        let message = err(&text);
        let expected =
            format!("/etc/pb/config.toml line {line}: [mailbox] drafts-foldr: unknown field");
        assert!(message.starts_with(&expected), "{message}");
    }

    #[test]
    fn bad_timezone_names_line_and_key() {
        let text = format!(
            "version = 1\n{}\n[mailbox]\nkind = \"maildir\"\npath = \"/m\"\n",
            IDENTITY.replace("Europe/London", "Europe/Pariss")
        );
        let line = line_of(&text, "timezone");
        assert_eq!(
            err(&text),
            format!(
                "/etc/pb/config.toml line {line}: [identity] timezone: unknown time zone \
                 \"Europe/Pariss\" (use an IANA name such as \"Europe/Paris\")"
            )
        );
    }

    #[test]
    fn another_version_fails_before_any_other_check() {
        // Version 2 may have keys this build does not know; the version is what to report.
        let message = err("version = 2\n[future]\nkey = 1\n");
        assert_eq!(
            message,
            "/etc/pb/config.toml line 1: version: version 2 is not supported; this pushback reads \
             config version 1"
        );
        let message = err("version = \"1\"\n");
        assert!(
            message.contains("line 1: version: must be a plain number"),
            "{message}"
        );
        let message = err("[identity]\nname = \"x\"\n");
        assert!(
            message.contains("version: missing; put `version = 1`"),
            "{message}"
        );
    }

    #[test]
    fn a_plain_password_is_refused_without_showing_it() {
        let text = with_mailbox(
            "kind = \"imap\"\nhost = \"imap.example.com\"\nuser = \"alex\"\npassword = \"hunter2\"",
        );
        let line = line_of(&text, "password =");
        let message = err(&text);
        let expected = format!(
            "/etc/pb/config.toml line {line}: [mailbox] password: a password in the config file \
             is refused; use password-command"
        );
        assert!(message.starts_with(&expected), "{message}");
        assert!(!message.contains("hunter2"));
        let maildir = with_mailbox("kind = \"maildir\"\npath = \"/m\"\npassword = \"hunter2\"");
        assert!(err(&maildir).contains("[mailbox] password: a password in the config file"));
        let smtp = with_mailbox("kind = \"maildir\"\npath = \"/m\"")
            + "[smtp]\nhost = \"smtp.example.com\"\npassword = \"hunter2\"\n";
        let message = err(&smtp);
        assert!(message.contains("[smtp] password: a password in the config file is refused"));
        assert!(!message.contains("hunter2"));
    }

    #[test]
    fn plain_security_to_a_remote_host_is_refused() {
        let text = with_mailbox(
            "kind = \"imap\"\nhost = \"imap.example.com\"\nsecurity = \"plain\"\nuser = \"alex\"\npassword-env = \"PB_PASS\"",
        );
        let line = line_of(&text, "security");
        let message = err(&text);
        let expected = format!(
            "/etc/pb/config.toml line {line}: [mailbox] security: \"plain\" sends the password \
             unencrypted"
        );
        assert!(message.starts_with(&expected), "{message}");
        let local = text.replace("imap.example.com", "127.0.0.1");
        let config = parse(&local).unwrap();
        let MailboxAccess::Imap(server) = config.mailbox.access else {
            panic!("expected imap");
        };
        assert_eq!(server.port, 143);
        assert_eq!(server.security, Security::Plain);
        assert!(is_loopback("localhost") && is_loopback("[::1]") && !is_loopback("10.0.0.1"));
    }

    #[test]
    fn imap_needs_host_user_and_a_password_source() {
        // A missing key points at the line that made it necessary.
        let text = with_mailbox("kind = \"imap\"\nuser = \"a\"\npassword-env = \"P\"");
        let line = line_of(&text, "kind");
        let message = err(&text);
        let expected = format!("line {line}: [mailbox] host: missing");
        assert!(message.contains(&expected), "{message}");
        let message = err(&with_mailbox(
            "kind = \"imap\"\nhost = \"imap.example.com\"",
        ));
        assert!(message.contains("[mailbox] user: missing"), "{message}");
        let text = with_mailbox("kind = \"imap\"\nhost = \"imap.example.com\"\nuser = \"a\"");
        let line = line_of(&text, "user");
        let message = err(&text);
        let expected = format!(
            "line {line}: [mailbox] user: needs password-command, password-env or token-command"
        );
        assert!(message.contains(&expected), "{message}");
        let message = err(&with_mailbox(
            "kind = \"imap\"\nhost = \"h\"\nuser = \"a\"\npassword-command = \"pass x\"\npassword-env = \"P\"",
        ));
        assert!(message.contains("set only one of"), "{message}");
        let message = err(&with_mailbox(
            "kind = \"imap\"\nhost = \"h\"\nuser = \"a\"\npassword-env = \"s3cr3t!\"",
        ));
        assert!(message.contains("must be the NAME of an environment variable"));
        assert!(!message.contains("s3cr3t!"));
    }

    #[test]
    fn imap_with_login_resolves_and_describes_without_secrets() {
        let text = with_mailbox(
            "kind = \"imap\"\nhost = \"imap.example.com\"\nuser = \"alex\"\npassword-command = \"pass show mail/work\"",
        ) + "[smtp]\nhost = \"smtp.example.com\"\nsecurity = \"starttls\"\nuser = \"alex\"\npassword-env = \"PB_SMTP\"\n";
        let config = parse(&text).unwrap();
        let MailboxAccess::Imap(imap) = &config.mailbox.access else {
            panic!("expected imap");
        };
        assert_eq!(imap.port, 993);
        assert_eq!(
            imap.login,
            Some(Login {
                user: "alex".into(),
                credential: Credential::Password(PasswordSource::Command(
                    "pass show mail/work".into()
                ))
            })
        );
        assert_eq!(imap.tls, TlsOptions::default());
        assert_eq!(config.mailbox.sync, ImapSync::default());
        let Some(Outgoing::Smtp {
            server: smtp,
            save_to_sent: true,
        }) = &config.outgoing
        else {
            panic!("expected smtp saving to sent: {:?}", config.outgoing);
        };
        assert_eq!(smtp.port, 587);
        let described = config.describe();
        assert!(described.contains("imap imap.example.com:993 (tls), user alex, password from command `pass show mail/work`"), "{described}");
        assert!(described.contains("smtp smtp.example.com:587 (starttls), user alex, password from environment variable PB_SMTP; a copy is saved to \"Sent\""), "{described}");
        assert!(described.contains("imap sync:        backfill 14 days, fetch up to 262144 bytes per message, IDLE renewed every 20 min, poll every 120 s"), "{described}");
        assert!(!described.contains("WARNING"), "{described}");
    }

    const IMAP: &str = "kind = \"imap\"\nhost = \"imap.example.com\"\nuser = \"alex\"";
    const MAILDIR: &str = "kind = \"maildir\"\npath = \"/m\"";

    fn imap_server(config: &Config) -> &Server {
        match &config.mailbox.access {
            MailboxAccess::Imap(server) => server,
            MailboxAccess::Maildir { .. } => panic!("expected imap"),
        }
    }

    /// A PEM file holding one (syntactically) certificate-shaped block.
    fn pem_file() -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(
            file.path(),
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        file
    }

    #[test]
    fn token_command_selects_xoauth2() {
        let text = with_mailbox(&format!("{IMAP}\ntoken-command = \"oama access alex\""))
            + "[smtp]\nhost = \"smtp.example.com\"\nuser = \"alex\"\ntoken-command = \"oama access alex\"\n";
        let config = parse(&text).unwrap();
        let xoauth2 = Some(Login {
            user: "alex".into(),
            credential: Credential::OAuth2TokenCommand("oama access alex".into()),
        });
        assert_eq!(imap_server(&config).login, xoauth2);
        let Some(Outgoing::Smtp { server, .. }) = &config.outgoing else {
            panic!("expected smtp");
        };
        assert_eq!(server.login, xoauth2);
        let described = config.describe();
        assert!(
            described.contains("user alex, XOAUTH2 with a token from command `oama access alex`"),
            "{described}"
        );
        let message = err(&with_mailbox(&format!("{IMAP}\ntoken-command = \" \"")));
        assert!(
            message.contains("[mailbox] token-command: must not be empty"),
            "{message}"
        );
    }

    #[test]
    fn exactly_one_credential_source_per_user() {
        for (first, second) in [
            (
                "password-command = \"pass x\"",
                "token-command = \"oama access\"",
            ),
            (
                "token-command = \"oama access\"",
                "password-env = \"PB_PASS\"",
            ),
            (
                "password-env = \"PB_PASS\"",
                "password-command = \"pass x\"",
            ),
        ] {
            let text = with_mailbox(&format!("{IMAP}\n{first}\n{second}"));
            let line = line_of(&text, second);
            let key = second.split_once(" =").unwrap().0;
            let expected = format!(
                "/etc/pb/config.toml line {line}: [mailbox] {key}: set only one of \
                 password-command, password-env and token-command"
            );
            assert_eq!(err(&text), expected);
        }
        let smtp = with_mailbox(MAILDIR)
            + "[smtp]\nhost = \"smtp.example.com\"\ntoken-command = \"oama access\"\n";
        let line = line_of(&smtp, "token-command");
        let message = err(&smtp);
        let expected =
            format!("line {line}: [smtp] user: missing: token-command needs a user to log in as");
        assert!(message.contains(&expected), "{message}");
    }

    #[test]
    fn imap_sync_keys_resolve_and_have_ranges() {
        let text = with_mailbox(&format!(
            "{IMAP}\npassword-env = \"P\"\nbackfill-days = 0\nfetch-max-bytes = 4096\n\
             idle-minutes = 1\npoll-seconds = 86400"
        ));
        let config = parse(&text).unwrap();
        assert_eq!(
            config.mailbox.sync,
            ImapSync {
                backfill_days: 0,
                fetch_max_bytes: 4096,
                idle_timeout: Duration::from_secs(60),
                poll_interval: Duration::from_secs(86400),
            }
        );
        for (setting, refusal) in [
            (
                "backfill-days = 3651",
                "3651 is out of range: must be 0 to 3650 days",
            ),
            (
                "fetch-max-bytes = 4095",
                "4095 is out of range: must be at least 4096 bytes (the headers",
            ),
            (
                "idle-minutes = 29",
                "29 is out of range: must be 1 to 20 minutes: RFC 2177 allows 29, but NAT \
                 routers and Microsoft 365 drop an idle connection sooner",
            ),
            (
                "idle-minutes = 0",
                "0 is out of range: must be 1 to 20 minutes",
            ),
            (
                "poll-seconds = 9",
                "9 is out of range: must be 10 to 86400 seconds",
            ),
            ("poll-seconds = 86401", "86401 is out of range"),
        ] {
            let text = with_mailbox(&format!("{IMAP}\npassword-env = \"P\"\n{setting}"));
            let line = line_of(&text, setting);
            let key = setting.split_once(" =").unwrap().0;
            let expected = format!("/etc/pb/config.toml line {line}: [mailbox] {key}: {refusal}");
            let message = err(&text);
            assert!(message.starts_with(&expected), "{message}");
        }
    }

    #[test]
    fn imap_only_keys_are_refused_for_a_maildir() {
        for setting in [
            "token-command = \"oama access\"",
            "ca-file = \"/etc/ssl/ca.pem\"",
            "accept-invalid-certs = false",
            "backfill-days = 14",
            "fetch-max-bytes = 262144",
            "idle-minutes = 20",
            "poll-seconds = 120",
        ] {
            let text = with_mailbox(&format!("{MAILDIR}\n{setting}"));
            let line = line_of(&text, setting);
            let key = setting.split_once(" =").unwrap().0;
            let expected = format!(
                "/etc/pb/config.toml line {line}: [mailbox] {key}: only used with kind = \"imap\""
            );
            let message = err(&text);
            assert!(message.starts_with(&expected), "{message}");
        }
    }

    #[test]
    fn sendmail_command_replaces_the_smtp_server() {
        let text = with_mailbox(MAILDIR) + "[smtp]\nsendmail-command = \"msmtp -t\"\n";
        let config = parse(&text).unwrap();
        assert_eq!(
            config.outgoing,
            Some(Outgoing::Sendmail {
                command: "msmtp -t".into(),
                save_to_sent: true
            })
        );
        let described = config.describe();
        assert!(
            described.contains(
                "outgoing:         sendmail command `msmtp -t`; a copy is saved to \"Sent\""
            ),
            "{described}"
        );
        for setting in [
            "host = \"smtp.example.com\"",
            "port = 587",
            "security = \"starttls\"",
            "user = \"alex\"",
            "password-command = \"pass x\"",
            "password-env = \"P\"",
            "token-command = \"oama access\"",
            "ca-file = \"/etc/ssl/ca.pem\"",
            "accept-invalid-certs = true",
        ] {
            let text = with_mailbox(MAILDIR)
                + &format!("[smtp]\nsendmail-command = \"msmtp -t\"\n{setting}\n");
            let line = line_of(&text, setting);
            let key = setting.split_once(" =").unwrap().0;
            let expected = format!(
                "/etc/pb/config.toml line {line}: [smtp] {key}: only used with an SMTP host"
            );
            let message = err(&text);
            assert!(message.starts_with(&expected), "{message}");
        }
        let message = err(&(with_mailbox(MAILDIR) + "[smtp]\nsendmail-command = \"\"\n"));
        assert!(
            message.contains("[smtp] sendmail-command: must not be empty"),
            "{message}"
        );
        // Without sendmail-command the host is still required, and the error says what else works.
        let message = err(&(with_mailbox(MAILDIR) + "[smtp]\nsave-to-sent = false\n"));
        assert!(
            message.contains("[smtp] host: missing: set host (an SMTP server) or sendmail-command"),
            "{message}"
        );
    }

    #[test]
    fn save_to_sent_can_be_turned_off() {
        let text = with_mailbox(MAILDIR)
            + "[smtp]\nhost = \"smtp.gmail.com\"\nuser = \"alex\"\npassword-env = \"P\"\nsave-to-sent = false\n";
        let config = parse(&text).unwrap();
        assert!(matches!(
            config.outgoing,
            Some(Outgoing::Smtp {
                save_to_sent: false,
                ..
            })
        ));
        assert!(
            config
                .describe()
                .contains("no copy saved (save-to-sent = false)")
        );
        let none = parse(&with_mailbox(MAILDIR)).unwrap().describe();
        assert!(none.contains("nothing leaves this machine"), "{none}");
    }

    #[test]
    fn ca_file_must_be_a_readable_pem_bundle() {
        let pem = pem_file();
        let text = with_mailbox(&format!(
            "{IMAP}\npassword-env = \"P\"\nca-file = \"{}\"",
            pem.path().display()
        ));
        let config = parse(&text).unwrap();
        let tls = &imap_server(&config).tls;
        assert_eq!(tls.ca_file.as_deref(), Some(pem.path()));
        assert!(!tls.accept_invalid_certs);
        let described = config.describe();
        assert!(
            described.contains(&format!("also trusting CAs in {}", pem.path().display())),
            "{described}"
        );

        let missing = with_mailbox(MAILDIR)
            + "[smtp]\nhost = \"smtp.example.com\"\nca-file = \"/nonexistent/ca.pem\"\n";
        let line = line_of(&missing, "ca-file");
        let message = err(&missing);
        let expected = format!(
            "/etc/pb/config.toml line {line}: [smtp] ca-file: cannot read /nonexistent/ca.pem: "
        );
        assert!(message.starts_with(&expected), "{message}");

        let not_pem = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(not_pem.path(), "not a certificate\n").unwrap();
        let text = with_mailbox(&format!(
            "{IMAP}\npassword-env = \"P\"\nca-file = \"{}\"",
            not_pem.path().display()
        ));
        let message = err(&text);
        assert!(message.contains("holds no PEM certificate"), "{message}");

        let plain = with_mailbox(&format!(
            "{IMAP}\npassword-env = \"P\"\nsecurity = \"plain\"\nca-file = \"{}\"",
            pem.path().display()
        ))
        .replace("imap.example.com", "127.0.0.1");
        let message = err(&plain);
        assert!(
            message
                .contains("[mailbox] ca-file: only used with TLS; security = \"plain\" has none"),
            "{message}"
        );
    }

    #[test]
    fn accept_invalid_certs_is_shouted_about() {
        let text = with_mailbox(&format!(
            "{IMAP}\npassword-env = \"P\"\naccept-invalid-certs = true"
        )) + "[smtp]\nhost = \"smtp.example.com\"\naccept-invalid-certs = true\n";
        let config = parse(&text).unwrap();
        assert!(imap_server(&config).tls.accept_invalid_certs);
        let described = config.describe();
        assert!(
            described.contains("imap imap.example.com:993 (tls), user alex, password from environment variable P, CERTIFICATES NOT CHECKED (accept-invalid-certs)"),
            "{described}"
        );
        assert!(
            described.contains(
                "WARNING: [mailbox] accept-invalid-certs = true: the certificate of \
                 imap.example.com is NOT CHECKED"
            ),
            "{described}"
        );
        assert!(
            described.contains("WARNING: [smtp] accept-invalid-certs = true"),
            "{described}"
        );
    }

    #[test]
    fn maildir_needs_a_path_and_refuses_imap_keys() {
        let text = with_mailbox("kind = \"maildir\"");
        let line = line_of(&text, "kind");
        let message = err(&text);
        let expected = format!("line {line}: [mailbox] path: missing");
        assert!(message.contains(&expected), "{message}");
        let text = with_mailbox("kind = \"maildir\"\npath = \"/m\"\nhost = \"h\"");
        let line = line_of(&text, "host");
        let message = err(&text);
        let expected = format!("line {line}: [mailbox] host: only used with kind = \"imap\"");
        assert!(message.contains(&expected), "{message}");
        let text = with_mailbox("kind = \"pop3\"");
        let line = line_of(&text, "kind");
        let message = err(&text);
        let expected = format!("line {line}: [mailbox] kind: unknown variant `pop3`");
        assert!(message.contains(&expected), "{message}");
    }

    #[test]
    fn a_missing_table_names_no_line() {
        // Regression: toml reports it at offset 0, which is not "line 1: version".
        let message = err("version = 1\n[mailbox]\nkind = \"maildir\"\npath = \"/m\"\n");
        assert_eq!(message, "/etc/pb/config.toml: missing field `identity`");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let message = err("version = 1\n[identity]\nname = \n");
        assert!(
            message.starts_with("/etc/pb/config.toml line 3: [identity] name: "),
            "{message}"
        );
    }

    #[test]
    fn default_paths_follow_xdg() {
        let xdg = |name: &str| match name {
            "XDG_CONFIG_HOME" => Some("/xdg/config".into()),
            "XDG_STATE_HOME" => Some("relative/ignored".into()),
            "HOME" => Some("/home/alex".into()),
            _ => None,
        };
        assert_eq!(
            config_path_from(&xdg),
            PathBuf::from("/xdg/config/pushback/config.toml")
        );
        assert_eq!(
            default_state_dir(&xdg),
            Some(PathBuf::from("/home/alex/.local/state/pushback"))
        );
        assert_eq!(
            config_path_from(&env),
            PathBuf::from("/home/alex/.config/pushback/config.toml")
        );
        assert_eq!(
            config_path_from(&|_| None),
            PathBuf::from("/etc/pushback/config.toml")
        );
    }

    #[test]
    fn demo_config_describes_itself() {
        let config = Config::demo(Path::new("/tmp/demo/Mail"), Path::new("/tmp/demo/state"));
        assert_eq!(config.identity.name, "Alex Rivera");
        assert_eq!(config.timezone.name(), config.identity.timezone);
        let described = config.describe();
        assert!(described.contains("built-in demo configuration"));
        // Regression: `config check` prints it with print!, and text after it was glued on.
        assert!(described.ends_with("bytes\n"), "{described:?}");
        assert!(described.contains("maildir /tmp/demo/Mail"));
    }
}

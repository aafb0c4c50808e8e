//! The configuration file: raw TOML (kebab-case keys, unknown keys refused, `version = 1`) is
//! validated into a typed [`Config`] with paths expanded, ports and security resolved and
//! defaults applied. Every error names the file, the line and the key. The config holds no
//! secrets: a password is named by a command or an environment variable and fetched by whoever
//! logs in; a plain `password` key is refused. Reading flags and environment overrides for the
//! config path is the binary's business.

use crate::core::model::Identity;
use chrono_tz::Tz;
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// Config file versions this build reads.
pub const SUPPORTED_VERSIONS: [i64; 1] = [1];
pub const DEFAULT_DRAFTS_FOLDER: &str = "Drafts";
pub const DEFAULT_SENT_FOLDER: &str = "Sent";
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 25 * 1024 * 1024;

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
    /// Where approved drafts are sent; `None` when `[smtp]` is absent.
    pub smtp: Option<Server>,
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
}

#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    pub user: String,
    pub password: PasswordSource,
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
            },
            smtp: None,
            state_dir: state_dir.to_path_buf(),
            templates_dir: None,
            classifier_rules: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }

    /// What was resolved, for `pushback config check`. Holds no secrets because the config has
    /// none: only password commands and environment variable names.
    pub fn describe(&self) -> String {
        self.to_string()
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
            MailboxAccess::Imap(server) => writeln!(f, "mailbox:          imap {server}")?,
        }
        writeln!(
            f,
            "folders:          drafts {:?}, sent {:?}",
            self.mailbox.drafts_folder, self.mailbox.sent_folder
        )?;
        match &self.smtp {
            Some(server) => writeln!(f, "smtp:             {server}")?,
            None => writeln!(
                f,
                "smtp:             not configured (approved drafts are not sent)"
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
        write!(f, "max message size: {} bytes", self.max_message_bytes)
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
            None => write!(f, ", no login"),
            Some(Login { user, password }) => {
                write!(f, ", user {user}, password from ")?;
                match password {
                    PasswordSource::Command(command) => write!(f, "command `{command}`"),
                    PasswordSource::Env(name) => write!(f, "environment variable {name}"),
                }
            }
        }
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
    smtp: Option<RawServer>,
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
    password: Option<Spanned<IgnoredAny>>,
    drafts_folder: Option<Spanned<String>>,
    sent_folder: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawServer {
    host: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    security: Option<Spanned<Security>>,
    user: Option<Spanned<String>>,
    password_command: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    /// Only there to be refused with a useful message; its value is never kept.
    password: Option<Spanned<IgnoredAny>>,
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
        let smtp = raw.smtp.map(|s| self.server("smtp", s, None)).transpose()?;
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
            smtp,
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
            password: raw.password,
        };
        let access = match *raw.kind.get_ref() {
            MailboxKind::Maildir => {
                let s = &server;
                let imap_only = [
                    ("host", s.host.as_ref().map(Spanned::span)),
                    ("port", s.port.as_ref().map(Spanned::span)),
                    ("security", s.security.as_ref().map(Spanned::span)),
                    ("user", s.user.as_ref().map(Spanned::span)),
                    (
                        "password-command",
                        s.password_command.as_ref().map(Spanned::span),
                    ),
                    ("password-env", s.password_env.as_ref().map(Spanned::span)),
                ];
                if let Some((key, Some(span))) = imap_only.into_iter().find(|(_, s)| s.is_some()) {
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
                MailboxAccess::Maildir {
                    path: self.path("[mailbox] path", path)?,
                }
            }
            MailboxKind::Imap => {
                if let Some(path) = raw.path {
                    return Err(self.invalid(
                        path.span(),
                        "[mailbox] path",
                        "only used with kind = \"maildir\"; remove it for imap",
                    ));
                }
                MailboxAccess::Imap(self.server("mailbox", server, Some(raw.kind.span()))?)
            }
        };
        Ok(Mailbox {
            access,
            drafts_folder,
            sent_folder,
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
        self.refuse_password(table, raw.password.as_ref())?;
        let is_imap = login_required_at.is_some();
        let host = raw.host.ok_or_else(|| Error::Invalid {
            file: self.file.to_path_buf(),
            line: login_required_at.clone().map(|span| self.line(span.start)),
            key: key("host"),
            message: "missing: the server's host name is required".into(),
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
            && !is_loopback(host.get_ref())
        {
            return Err(self.invalid(
                plain.span(),
                &key("security"),
                format!(
                    "\"plain\" sends the password unencrypted, so it is only allowed to a loopback \
                     host, not {:?}; use \"tls\" or \"starttls\"",
                    host.get_ref()
                ),
            ));
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
        let password = match (raw.password_command, raw.password_env) {
            (Some(_), Some(env)) => {
                return Err(self.invalid(
                    env.span(),
                    &key("password-env"),
                    "set only one of password-command and password-env",
                ));
            }
            (Some(command), None) => {
                if command.get_ref().trim().is_empty() {
                    return Err(self.invalid(
                        command.span(),
                        &key("password-command"),
                        "must not be empty",
                    ));
                }
                Some((
                    command.span(),
                    PasswordSource::Command(command.into_inner()),
                ))
            }
            (None, Some(env)) => {
                // Naming rules catch the likely mistake of pasting the password itself here.
                if !is_env_name(env.get_ref()) {
                    return Err(self.invalid(
                        env.span(),
                        &key("password-env"),
                        "must be the NAME of an environment variable (letters, digits and _), \
                         not the password",
                    ));
                }
                Some((env.span(), PasswordSource::Env(env.into_inner())))
            }
            (None, None) => None,
        };
        let login = match (raw.user, password) {
            (Some(user), Some((_, password))) => Some(Login {
                user: user.into_inner(),
                password,
            }),
            (Some(user), None) => {
                return Err(self.invalid(
                    user.span(),
                    &key("user"),
                    "needs password-command or password-env to log in",
                ));
            }
            (None, Some((span, _))) => {
                return Err(self.invalid(span, &key("user"), "missing: a password needs a user"));
            }
            (None, None) if is_imap => {
                return Err(Error::Invalid {
                    file: self.file.to_path_buf(),
                    line: login_required_at.map(|span| self.line(span.start)),
                    key: key("user"),
                    message: "missing: imap needs user and one of password-command or password-env"
                        .into(),
                });
            }
            (None, None) => None,
        };
        Ok(Server {
            host: host.into_inner(),
            port,
            security,
            login,
        })
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
        assert_eq!(config.smtp, None);
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
        let expected =
            format!("line {line}: [mailbox] user: needs password-command or password-env");
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
                password: PasswordSource::Command("pass show mail/work".into())
            })
        );
        let smtp = config.smtp.as_ref().unwrap();
        assert_eq!(smtp.port, 587);
        let described = config.describe();
        assert!(described.contains("imap imap.example.com:993 (tls), user alex, password from command `pass show mail/work`"), "{described}");
        assert!(described.contains("smtp.example.com:587 (starttls), user alex, password from environment variable PB_SMTP"), "{described}");
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
        assert!(described.contains("maildir /tmp/demo/Mail"));
    }
}

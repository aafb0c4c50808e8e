//! The configuration file: raw TOML (kebab-case keys, unknown keys refused, `version = 1`, or
//! `version = 2` with several `[[account]]`s, see [`Accounts`]) is validated into a typed
//! [`Config`] per account with paths expanded, ports, security, TLS options and IMAP
//! sync intervals resolved, schedules parsed, the business calendar merged with its holidays file
//! and defaults applied. Every error names the file, the line and the key. The config holds no
//! secrets: a password or an OAuth2 access token is named by a command or an environment variable
//! and fetched by whoever logs in; a plain `password` key is refused.
//! Reading flags and environment overrides for the config path is the binary's business, and so
//! are TLS and the login itself (this module only checks that a `ca-file` holds certificates and
//! that a busy-times file can be read; what it holds is the calendar adapter's to parse).

use crate::adapters::pack::{self, Pack};
use crate::core::model::{Category, DeadlineKind, Identity};
use crate::core::schedule::{self, BusinessCalendar, Schedule};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

mod oauth2;
pub use oauth2::{OAuth2Settings, Provider, ServerPreset, TokenStoreKind};
mod accounts;
pub use accounts::Accounts;

/// Config file versions this build reads.
pub const SUPPORTED_VERSIONS: [i64; 2] = [1, 2];
/// The name of the one account of a version 1 file (no `[[account]]` tables).
pub const DEFAULT_ACCOUNT: &str = "default";
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
/// `[mailbox] reconnect-max-seconds`: the longest wait between reconnection attempts (the
/// backoff doubles from a second up to it). Short gets back sooner after an outage; long spares
/// a server that is struggling.
pub const DEFAULT_RECONNECT_MAX_SECONDS: u32 = 300;
pub const RECONNECT_MAX_SECONDS_RANGE: RangeInclusive<u32> = 1..=3600;
/// `[follow-up] at` and `[reminders] at`: 09:00 Monday to Friday in the rep's zone.
pub const DEFAULT_SCHEDULE: &str = "0 9 * * 1-5";
/// `[follow-up] after-business-days`: how long the buyer gets to answer before we follow up.
pub const DEFAULT_FOLLOW_UP_AFTER_BUSINESS_DAYS: u32 = 3;
/// 0 would chase a reply the moment it left; after three months the conversation is cold.
pub const FOLLOW_UP_AFTER_BUSINESS_DAYS_RANGE: RangeInclusive<u32> = 1..=60;
/// `[follow-up] max-follow-ups`: per reply; 0 turns follow-ups off.
pub const DEFAULT_MAX_FOLLOW_UPS: u32 = 2;
/// More than a handful of chasers reads as spam to a buyer.
pub const MAX_FOLLOW_UPS_RANGE: RangeInclusive<u32> = 0..=10;
/// `[reminders] before-cutoff-business-days`: the questions cut-off.
pub const DEFAULT_BEFORE_CUTOFF_BUSINESS_DAYS: u32 = 2;
pub const DEFAULT_BEFORE_SUBMISSION_BUSINESS_DAYS: u32 = 3;
/// Pre-bid meetings, intent-to-bid notices and other deadlines.
pub const DEFAULT_BEFORE_OTHER_BUSINESS_DAYS: u32 = 1;
/// 0 reminds on the day of the deadline itself.
pub const REMINDER_LEAD_RANGE: RangeInclusive<u32> = 0..=30;
pub const DEFAULT_REMINDERS_INBOX: bool = true;
/// `[reminders] feed` is this file in the state directory unless set.
pub const DEFAULT_REMINDERS_FEED_FILE: &str = "reminders.ics";
/// `[calendar] slot-minutes`: the length of a proposed discovery call.
pub const DEFAULT_SLOT_MINUTES: u32 = 30;
pub const SLOT_MINUTES_RANGE: RangeInclusive<u32> = 15..=240;
/// `[calendar] slot-count`: how many call times a draft offers.
pub const DEFAULT_SLOT_COUNT: u32 = 3;
pub const SLOT_COUNT_RANGE: RangeInclusive<u32> = 1..=10;
pub const DEFAULT_ATTACH_INVITE: bool = false;
/// `[web] listen`: the approval page's address when `[web]` is present without one.
pub const DEFAULT_WEB_LISTEN: &str = "127.0.0.1:8025";

/// A filter as `RUST_LOG` writes it. Levels and targets (module paths) are ASCII; anything else
/// is refused here, because tracing-subscriber's parser panics on some non-ASCII text (it slices
/// the untrimmed string at offsets found in the trimmed one; found by the `config` fuzz target).
pub fn parse_log_filter(filter: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    if !filter.is_ascii() {
        return Err(
            "only ASCII letters, digits and punctuation can name levels and targets".into(),
        );
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(filter.trim())
        .map_err(|e| e.to_string())
}

/// `[log] filter`: what `pushback run` logs, in `RUST_LOG` syntax.
pub const DEFAULT_LOG_FILTER: &str = "info";
/// The status socket's file name, in `$XDG_RUNTIME_DIR/pushback/` or else the state directory.
pub const STATUS_SOCKET_FILE: &str = "status.sock";
/// How many firings of each schedule `pushback config check` lists.
pub const SHOWN_FIRINGS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {cause}{hint}", hint = read_hint(cause))]
    Read { path: PathBuf, cause: io::Error },
    #[error("{}: {account} is not an account in it; the accounts are {known}", file.display())]
    UnknownAccount {
        file: PathBuf,
        account: String,
        /// The names, comma-separated.
        known: String,
    },
    #[error(
        "{}: holds several accounts ({known}); choose one with --account NAME",
        file.display()
    )]
    SeveralAccounts { file: PathBuf, known: String },
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

/// "FILE line N: KEY", the place a config or pack error points at.
pub(crate) fn location(file: &Path, line: Option<usize>, key: &str) -> String {
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
    /// The account's name: `[[account]] name`, or [`DEFAULT_ACCOUNT`] for a version 1 file. It
    /// tells the account's rows apart in the shared state store.
    pub account: String,
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
    /// `[templates] pack`: a team's template pack directory, which holds the templates and the
    /// rules (so `templates_dir` and `classifier_rules` are then `None`); read again whenever it
    /// changes. Its `[follow-up]` defaults are already merged into `follow_up`.
    pub templates_pack: Option<PathBuf>,
    pub max_message_bytes: u64,
    /// `[business]`: the working week, hours and holidays, in `timezone`.
    pub business: BusinessCalendar,
    pub follow_up: FollowUpPolicy,
    pub reminders: ReminderSettings,
    pub calendar: CalendarSettings,
    /// `[log] filter`: an `EnvFilter` directive string, checked at load.
    pub log_filter: String,
    /// Where `pushback run` answers `pushback status`: `$XDG_RUNTIME_DIR/pushback/status.sock`,
    /// else `status.sock` in the state directory (a system service has no runtime dir of its own).
    pub status_socket: PathBuf,
    /// `[web]`: the local approval page; `None` when the section is absent (no web server).
    pub web: Option<WebSettings>,
    /// `[oauth2]`: pushback's own OAuth2 login (`pushback login`); `None` when absent.
    pub oauth2: Option<OAuth2Settings>,
}

/// `[web]`: where the approval page listens. A non-loopback address always comes with TLS.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSettings {
    pub listen: SocketAddr,
    /// `tls-cert` and `tls-key`; required for a non-loopback `listen`.
    pub tls: Option<WebTls>,
}

/// PEM files for serving the approval page over TLS, checked when the config is loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct WebTls {
    /// The certificate chain, the server's certificate first.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// `[follow-up]`: when a pushback reply the buyer has not answered is followed up.
#[derive(Debug, Clone, PartialEq)]
pub struct FollowUpPolicy {
    /// `at`: the times of day follow-ups become due.
    pub at: Schedule,
    /// `after-business-days`: business days after our reply, for categories without their own.
    pub after_business_days: u32,
    /// `[follow-up.after-business-days-by-category]`: an RFP deserves longer than a price list.
    pub after_business_days_by_category: BTreeMap<Category, u32>,
    /// `max-follow-ups`: per reply; 0 turns follow-ups off.
    pub max_follow_ups: u32,
}

impl FollowUpPolicy {
    /// The business days to wait before following up on a reply to mail of `category`.
    pub fn after_business_days(&self, category: Category) -> u32 {
        self.after_business_days_by_category
            .get(&category)
            .copied()
            .unwrap_or(self.after_business_days)
    }
}

impl Default for FollowUpPolicy {
    fn default() -> FollowUpPolicy {
        FollowUpPolicy {
            at: default_schedule(),
            after_business_days: DEFAULT_FOLLOW_UP_AFTER_BUSINESS_DAYS,
            after_business_days_by_category: BTreeMap::new(),
            max_follow_ups: DEFAULT_MAX_FOLLOW_UPS,
        }
    }
}

fn default_schedule() -> Schedule {
    Schedule::parse(DEFAULT_SCHEDULE).expect("the default schedule parses")
}

/// `[reminders]`: how long before a buyer's deadline the rep is reminded, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct ReminderSettings {
    /// `at`: the times of day deadline reminders are raised.
    pub at: Schedule,
    /// `before-cutoff-business-days`: before the questions cut-off.
    pub before_cutoff_business_days: u32,
    /// `before-submission-business-days`.
    pub before_submission_business_days: u32,
    /// `before-other-business-days`: pre-bid meetings, intent-to-bid and other deadlines.
    pub before_other_business_days: u32,
    /// `inbox`: reminders are appended to the rep's inbox as mail.
    pub inbox: bool,
    /// `feed`: the .ics file reminders are written to, for a calendar app to subscribe to.
    pub feed: PathBuf,
}

impl ReminderSettings {
    /// The defaults, with the feed in `state_dir`.
    pub fn in_state_dir(state_dir: &Path) -> ReminderSettings {
        ReminderSettings {
            at: default_schedule(),
            before_cutoff_business_days: DEFAULT_BEFORE_CUTOFF_BUSINESS_DAYS,
            before_submission_business_days: DEFAULT_BEFORE_SUBMISSION_BUSINESS_DAYS,
            before_other_business_days: DEFAULT_BEFORE_OTHER_BUSINESS_DAYS,
            inbox: DEFAULT_REMINDERS_INBOX,
            feed: state_dir.join(DEFAULT_REMINDERS_FEED_FILE),
        }
    }

    /// The business days before a deadline of `kind` that its reminder is due.
    pub fn lead_business_days(&self, kind: DeadlineKind) -> u32 {
        match kind {
            DeadlineKind::Questions => self.before_cutoff_business_days,
            DeadlineKind::Submission => self.before_submission_business_days,
            DeadlineKind::PreBid | DeadlineKind::IntentToBid | DeadlineKind::Other => {
                self.before_other_business_days
            }
        }
    }
}

/// `[calendar]`: the rep's calendar, for proposing discovery-call times and publishing reminders.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarSettings {
    /// `caldav-url` with its login; `None` when unset.
    pub caldav: Option<CalDavSettings>,
    /// `busy`: where the rep's busy times come from.
    pub busy: Vec<BusySource>,
    /// `slot-minutes`: the length of a proposed call.
    pub slot_minutes: u32,
    /// `slot-count`: how many call times a draft offers.
    pub slot_count: u32,
    /// `attach-invite`: drafts carry an .ics invitation for the proposed times.
    pub attach_invite: bool,
}

impl Default for CalendarSettings {
    fn default() -> CalendarSettings {
        CalendarSettings {
            caldav: None,
            busy: Vec::new(),
            slot_minutes: DEFAULT_SLOT_MINUTES,
            slot_count: DEFAULT_SLOT_COUNT,
            attach_invite: DEFAULT_ATTACH_INVITE,
        }
    }
}

/// A CalDAV calendar collection. The URL never holds a user or password (those are refused).
#[derive(Debug, Clone, PartialEq)]
pub struct CalDavSettings {
    /// An http or https URL.
    pub url: String,
    /// `None`: no authentication (a calendar server on loopback, say).
    pub login: Option<Login>,
    /// `caldav-ca-file`: CAs trusted beside the system's (a self-signed server).
    pub ca_file: Option<PathBuf>,
}

pub use crate::adapters::calendar::BusySource;

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
    /// The longest wait between reconnection attempts.
    pub reconnect_max: Duration,
}

impl Default for ImapSync {
    fn default() -> ImapSync {
        ImapSync {
            backfill_days: DEFAULT_BACKFILL_DAYS,
            fetch_max_bytes: DEFAULT_FETCH_MAX_BYTES,
            idle_timeout: Duration::from_secs(u64::from(DEFAULT_IDLE_MINUTES) * 60),
            poll_interval: Duration::from_secs(u64::from(DEFAULT_POLL_SECONDS)),
            reconnect_max: Duration::from_secs(u64::from(DEFAULT_RECONNECT_MAX_SECONDS)),
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
    /// A shell command whose first output line is an OAuth2 access token: SASL XOAUTH2 for IMAP
    /// and SMTP, an `Authorization: Bearer` header for CalDAV.
    OAuth2TokenCommand(String),
    /// SASL XOAUTH2 with access tokens from pushback's own OAuth2 login (`[oauth2]`).
    OAuth2(Box<OAuth2Settings>),
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

/// `$XDG_CONFIG_HOME`, else `~/.config`; `None` without a home.
pub fn user_config_dir() -> Option<PathBuf> {
    xdg_dir(&|name| std::env::var_os(name), "XDG_CONFIG_HOME", ".config")
}

fn status_socket_path(env: Env<'_>, state_dir: &Path) -> PathBuf {
    env("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .map_or_else(
            || state_dir.join(STATUS_SOCKET_FILE),
            |dir| dir.join("pushback").join(STATUS_SOCKET_FILE),
        )
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
    /// Reads and validates the config file at `path`, which must hold one account (a file
    /// with several names them, for a `--account`; see [`Accounts::load`]).
    pub fn load(path: &Path) -> Result<Config, Error> {
        Accounts::load(path)?.into_only()
    }

    /// Validates config text holding one account; `path` names the file in errors and anchors
    /// relative paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, Error> {
        Accounts::from_toml(text, path)?.into_only()
    }

    /// The embedded configuration `pushback demo` runs with: a fictional rep, a local Maildir and
    /// built-in templates and rules.
    pub fn demo(maildir: &Path, state_dir: &Path) -> Config {
        let timezone = Tz::Europe__London;
        Config {
            file: None,
            account: DEFAULT_ACCOUNT.into(),
            identity: Identity::demo(),
            timezone,
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
            templates_pack: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            business: BusinessCalendar::new(timezone),
            follow_up: FollowUpPolicy::default(),
            reminders: ReminderSettings::in_state_dir(state_dir),
            calendar: CalendarSettings::default(),
            web: None,
            log_filter: DEFAULT_LOG_FILTER.into(),
            status_socket: state_dir.join(STATUS_SOCKET_FILE),
            oauth2: None,
        }
    }

    /// Checks the `[follow-up]` table of a template pack, as `[templates] pack` would read it,
    /// for `pushback pack check`.
    pub fn check_pack_follow_up(pack: &Pack) -> Result<(), Error> {
        let file = pack.manifest_file();
        Parser {
            text: &pack.manifest_text,
            file: &file,
            env: &|name| std::env::var_os(name),
            account: None,
        }
        .pack_follow_up(&file, &pack.manifest_text)
        .map(drop)
    }

    /// What a running service takes from `new` (the file read again on SIGHUP): the templates,
    /// the classifier rules, the template pack and the log filter. Every other table it keeps as
    /// it started with, and names the ones that differ, for a "restart to apply" message.
    pub fn reloaded(&self, new: &Config) -> (Config, Vec<&'static str>) {
        // Spelled out field by field, so a new setting cannot be left out of this decision.
        let Config {
            file,
            // The loader picks the new config by this name, so it is the same.
            account: _,
            identity,
            timezone,
            mailbox,
            outgoing,
            state_dir,
            templates_dir,
            classifier_rules,
            templates_pack,
            max_message_bytes,
            business,
            follow_up,
            reminders,
            calendar,
            web,
            log_filter,
            status_socket,
            oauth2,
        } = new;
        let kept = [
            (
                "[identity]",
                identity != &self.identity || timezone != &self.timezone,
            ),
            ("[mailbox]", mailbox != &self.mailbox),
            ("[smtp]", outgoing != &self.outgoing),
            (
                "[state]",
                state_dir != &self.state_dir || status_socket != &self.status_socket,
            ),
            ("[limits]", max_message_bytes != &self.max_message_bytes),
            ("[business]", business != &self.business),
            ("[follow-up]", follow_up != &self.follow_up),
            ("[reminders]", reminders != &self.reminders),
            ("[calendar]", calendar != &self.calendar),
            // The approval page keeps its listener and token until a restart.
            ("[web]", web != &self.web),
            ("[oauth2]", oauth2 != &self.oauth2),
        ];
        let restart_needed = kept
            .into_iter()
            .filter_map(|(table, changed)| changed.then_some(table))
            .collect();
        let applied = Config {
            file: file.clone(),
            templates_dir: templates_dir.clone(),
            classifier_rules: classifier_rules.clone(),
            templates_pack: templates_pack.clone(),
            log_filter: log_filter.clone(),
            ..self.clone()
        };
        (applied, restart_needed)
    }

    /// What was resolved, for `pushback config check`. Holds no secrets because the config has
    /// none: only password and token commands and environment variable names. Ends with a
    /// newline, so whatever is printed after it starts on a line of its own.
    pub fn describe(&self) -> String {
        format!("{self}\n")
    }

    /// Every schedule with its next [`SHOWN_FIRINGS`] firings after `now` in the rep's zone, for
    /// `pushback config check`: "Mon 2026-11-30 09:00 EST (-05:00)". `now` is the caller's so this
    /// stays off the clock.
    pub fn describe_schedules(&self, now: DateTime<Utc>) -> String {
        let mut out = String::new();
        for (key, schedule) in [
            ("[follow-up] at", &self.follow_up.at),
            ("[reminders] at", &self.reminders.at),
        ] {
            out.push_str(&format!(
                "{key} = {:?}, next in {}:\n",
                schedule.as_str(),
                self.timezone
            ));
            let firings = schedule.upcoming(now, self.timezone, SHOWN_FIRINGS);
            if firings.is_empty() {
                out.push_str("  never again\n");
            }
            for at in firings {
                let local = at.with_timezone(&self.timezone);
                out.push_str(&format!(
                    "  {}\n",
                    local.format("%a %Y-%m-%d %H:%M %Z (%:z)")
                ));
            }
        }
        out
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
                     IDLE renewed every {} min, poll every {} s without IDLE, reconnect \
                     within {} s",
                    sync.backfill_days,
                    sync.fetch_max_bytes,
                    sync.idle_timeout.as_secs() / 60,
                    sync.poll_interval.as_secs(),
                    sync.reconnect_max.as_secs()
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
        if let Some(oauth2) = &self.oauth2 {
            writeln!(
                f,
                "oauth2:           {} for account {}: client {}, scopes {}, token endpoint {}, \
                 refresh token in {}",
                oauth2.provider.as_str(),
                oauth2.account,
                oauth2.client_id,
                oauth2.scopes.join(" "),
                oauth2.token_url,
                oauth2.token_store.as_str()
            )?;
        }
        writeln!(f, "state:            {}", self.state_dir.display())?;
        writeln!(f, "status socket:    {}", self.status_socket.display())?;
        writeln!(f, "log filter:       {} (pushback run)", self.log_filter)?;
        match &self.templates_dir {
            Some(dir) => writeln!(f, "templates:        {}", dir.display())?,
            None => writeln!(f, "templates:        built-in")?,
        }
        match &self.classifier_rules {
            Some(path) => writeln!(f, "classifier rules: {}", path.display())?,
            None => writeln!(f, "classifier rules: built-in")?,
        }
        if let Some(pack) = &self.templates_pack {
            writeln!(
                f,
                "template pack:    {} (its templates and rules)",
                pack.display()
            )?;
        }
        describe_time_keeping(self, f)?;
        match &self.web {
            Some(web) => writeln!(
                f,
                "approval page:    {}://{} (`pushback web-url` prints it with your token)",
                if web.tls.is_some() { "https" } else { "http" },
                web.listen
            )?,
            None => writeln!(f, "approval page:    off (no [web] section)")?,
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
            Some(login) => write!(f, ", {login}")?,
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

impl fmt::Display for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user {}, ", self.user)?;
        match &self.credential {
            Credential::Password(PasswordSource::Command(command)) => {
                write!(f, "password from command `{command}`")
            }
            Credential::Password(PasswordSource::Env(name)) => {
                write!(f, "password from environment variable {name}")
            }
            Credential::OAuth2TokenCommand(command) => {
                write!(f, "XOAUTH2 with a token from command `{command}`")
            }
            Credential::OAuth2(settings) => write!(
                f,
                "XOAUTH2 with tokens from `pushback login {}` ({})",
                settings.account,
                settings.provider.as_str()
            ),
        }
    }
}

/// The lines of `config check` for `[business]`, `[follow-up]`, `[reminders]` and `[calendar]`.
fn describe_time_keeping(config: &Config, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let business = &config.business;
    let days: Vec<String> = std::iter::successors(Some(Weekday::Mon), |d| Some(d.succ()))
        .zip(business.working_days)
        .filter(|(_, works)| *works)
        .map(|(day, _)| day.to_string())
        .collect();
    let (start, end) = business.working_hours;
    writeln!(
        f,
        "business week:    {} {}-{} {}, {} holiday{}",
        days.join(" "),
        start.format("%H:%M"),
        end.format("%H:%M"),
        business.tz,
        business.holidays.len(),
        if business.holidays.len() == 1 {
            ""
        } else {
            "s"
        }
    )?;
    let follow_up = &config.follow_up;
    let by_category: Vec<String> = follow_up
        .after_business_days_by_category
        .iter()
        .map(|(category, days)| format!("{category} {days}"))
        .collect();
    let by_category = if by_category.is_empty() {
        String::new()
    } else {
        format!(" ({})", by_category.join(", "))
    };
    writeln!(
        f,
        "follow-ups:       {} business days after our reply{by_category}, at most {} per reply, \
         due at {:?}",
        follow_up.after_business_days,
        follow_up.max_follow_ups,
        follow_up.at.as_str()
    )?;
    let reminders = &config.reminders;
    writeln!(
        f,
        "reminders:        {} business days before a questions cut-off, {} before a submission, \
         {} before other deadlines, raised at {:?}",
        reminders.before_cutoff_business_days,
        reminders.before_submission_business_days,
        reminders.before_other_business_days,
        reminders.at.as_str()
    )?;
    let mut targets = Vec::new();
    if reminders.inbox {
        targets.push("the inbox (as mail)".to_owned());
    }
    targets.push(format!("the feed {}", reminders.feed.display()));
    if let Some(caldav) = &config.calendar.caldav {
        targets.push(match &caldav.login {
            Some(login) => format!("CalDAV {} ({login})", caldav.url),
            None => format!("CalDAV {} (no login)", caldav.url),
        });
    }
    writeln!(f, "delivered to:     {}", targets.join(", "))?;
    let calendar = &config.calendar;
    let busy: Vec<String> = calendar.busy.iter().map(ToString::to_string).collect();
    let busy = if busy.is_empty() {
        "no busy times configured".to_owned()
    } else {
        format!("busy times from {}", busy.join(", "))
    };
    writeln!(
        f,
        "call slots:       {} of {} min, {}; {busy}",
        calendar.slot_count,
        calendar.slot_minutes,
        if calendar.attach_invite {
            "invite attached"
        } else {
            "no invite attached"
        }
    )
}

// ---- raw TOML ------------------------------------------------------------------------------

/// Read before anything else, so that a file of another version fails on its version and not on
/// a key this build does not know.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RawVersion {
    version: Option<Spanned<toml::Value>>,
    /// The tables whose place depends on the version, for a message on how to move them.
    account: Option<Spanned<IgnoredAny>>,
    identity: Option<Spanned<IgnoredAny>>,
    mailbox: Option<Spanned<IgnoredAny>>,
    smtp: Option<Spanned<IgnoredAny>>,
    templates: Option<Spanned<IgnoredAny>>,
    classifier: Option<Spanned<IgnoredAny>>,
    oauth2: Option<Spanned<IgnoredAny>>,
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
    #[serde(default)]
    business: RawBusiness,
    #[serde(default)]
    follow_up: RawFollowUp,
    #[serde(default)]
    reminders: RawReminders,
    #[serde(default)]
    calendar: RawCalendar,
    web: Option<RawWeb>,
    #[serde(default)]
    log: RawLog,
    oauth2: Option<oauth2::RawOAuth2>,
}

impl RawConfig {
    fn split(self) -> (RawAccount, RawShared) {
        let account = RawAccount {
            identity: self.identity,
            mailbox: self.mailbox,
            smtp: self.smtp,
            templates: self.templates,
            classifier: self.classifier,
            oauth2: self.oauth2,
        };
        let shared = RawShared {
            state: self.state,
            limits: self.limits,
            business: self.business,
            follow_up: self.follow_up,
            reminders: self.reminders,
            calendar: self.calendar,
            web: self.web,
            log: self.log,
        };
        (account, shared)
    }
}

/// The tables each account has of its own: at the top level of a version 1 file, under each
/// `[[account]]` of a version 2 file.
struct RawAccount {
    identity: RawIdentity,
    mailbox: RawMailbox,
    smtp: Option<RawSmtp>,
    templates: RawTemplates,
    classifier: RawClassifier,
    oauth2: Option<oauth2::RawOAuth2>,
}

/// The tables every account shares (always at the top level).
#[derive(Clone)]
struct RawShared {
    state: RawState,
    limits: RawLimits,
    business: RawBusiness,
    follow_up: RawFollowUp,
    reminders: RawReminders,
    calendar: RawCalendar,
    web: Option<RawWeb>,
    log: RawLog,
}

/// The keys of these tables belong to one account; an error in them names the account.
const ACCOUNT_TABLES: [&str; 6] = [
    "[identity]",
    "[mailbox]",
    "[smtp]",
    "[templates]",
    "[classifier]",
    "[oauth2]",
];

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
    reconnect_max_seconds: Option<Spanned<u32>>,
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
    login: RawLogin,
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
            ("ca-file", string(&self.ca_file)),
            (
                "accept-invalid-certs",
                self.accept_invalid_certs.as_ref().map(Spanned::span),
            ),
        ]
        .into_iter()
        .filter_map(|(key, span)| span.map(|span| (key, span)))
        .chain(self.login.keys_set())
        .collect()
    }
}

/// The login keys `[mailbox]`, `[smtp]` and (prefixed `caldav-`) `[calendar]` share.
struct RawLogin {
    user: Option<Spanned<String>>,
    password_command: Option<Spanned<String>>,
    password_env: Option<Spanned<String>>,
    token_command: Option<Spanned<String>>,
}

impl RawLogin {
    /// The keys that are set, unprefixed, with where they are.
    fn keys_set(&self) -> Vec<(&'static str, Range<usize>)> {
        [
            ("user", &self.user),
            ("password-command", &self.password_command),
            ("password-env", &self.password_env),
            ("token-command", &self.token_command),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| (key, v.span())))
        .collect()
    }
}

/// The first of `keys` in the file.
fn first_in_file(
    keys: impl IntoIterator<Item = (&'static str, Range<usize>)>,
) -> Option<(&'static str, Range<usize>)> {
    keys.into_iter().min_by_key(|(_, span)| span.start)
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawState {
    path: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawTemplates {
    dir: Option<Spanned<String>>,
    pack: Option<Spanned<String>>,
}

/// What `config` reads of a template pack's `pack.toml`: its `[follow-up]` defaults (the rest is
/// `adapters::pack`'s).
#[derive(Deserialize)]
struct RawPackPolicies {
    #[serde(default, rename = "follow-up")]
    follow_up: RawFollowUp,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawClassifier {
    rules: Option<Spanned<String>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLimits {
    max_message_bytes: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBusiness {
    /// A list of days and ranges, or one of them: `["mon", "wed-fri"]`, `"mon-fri"`.
    working_days: Option<Spanned<toml::Value>>,
    working_hours: Option<Spanned<String>>,
    #[serde(default)]
    holidays: Vec<Spanned<String>>,
    holidays_file: Option<Spanned<String>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFollowUp {
    at: Option<Spanned<String>>,
    after_business_days: Option<Spanned<u32>>,
    /// Keyed by category name; the value's span gives the line for an unknown name.
    #[serde(default)]
    after_business_days_by_category: BTreeMap<String, Spanned<u32>>,
    max_follow_ups: Option<Spanned<u32>>,
}

impl RawFollowUp {
    /// The rep's own keys over a team pack's: each key the rep sets wins, the pack fills the rest
    /// (by category too). `team` was already checked against its own file.
    fn over(self, team: RawFollowUp) -> RawFollowUp {
        let mut by_category = team.after_business_days_by_category;
        by_category.extend(self.after_business_days_by_category);
        RawFollowUp {
            at: self.at.or(team.at),
            after_business_days: self.after_business_days.or(team.after_business_days),
            after_business_days_by_category: by_category,
            max_follow_ups: self.max_follow_ups.or(team.max_follow_ups),
        }
    }
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawReminders {
    at: Option<Spanned<String>>,
    before_cutoff_business_days: Option<Spanned<u32>>,
    before_submission_business_days: Option<Spanned<u32>>,
    before_other_business_days: Option<Spanned<u32>>,
    inbox: Option<Spanned<bool>>,
    feed: Option<Spanned<String>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCalendar {
    caldav_url: Option<Spanned<String>>,
    caldav_user: Option<Spanned<String>>,
    caldav_password_command: Option<Spanned<String>>,
    caldav_password_env: Option<Spanned<String>>,
    caldav_token_command: Option<Spanned<String>>,
    caldav_ca_file: Option<Spanned<String>>,
    /// Only there to be refused with a useful message; its value is never kept.
    caldav_password: Option<Spanned<IgnoredAny>>,
    #[serde(default)]
    busy: Vec<Spanned<String>>,
    slot_minutes: Option<Spanned<u32>>,
    slot_count: Option<Spanned<u32>>,
    attach_invite: Option<Spanned<bool>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLog {
    filter: Option<Spanned<String>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawWeb {
    listen: Option<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
}

// ---- validation ----------------------------------------------------------------------------

struct Parser<'a> {
    text: &'a str,
    file: &'a Path,
    env: Env<'a>,
    /// `[[account]] #2 "work"` while an account of a version 2 file is validated: errors in its
    /// own tables name it.
    account: Option<String>,
}

impl Parser<'_> {
    /// A file holding one account.
    #[cfg(test)]
    fn parse(&self) -> Result<Config, Error> {
        Accounts {
            configs: self.parse_accounts()?,
        }
        .into_only()
    }

    /// Every account in the file, in file order.
    fn parse_accounts(&self) -> Result<Vec<Config>, Error> {
        let head: RawVersion = toml::from_str(self.text).map_err(|e| self.toml_error(&e))?;
        let version = self.check_version(head.version.clone())?;
        if version >= 2 {
            return self.parse_version_2(head);
        }
        if let Some(account) = &head.account {
            return Err(self.invalid(
                account.span(),
                "[[account]]",
                "several accounts need `version = 2`: set it, and move [identity], [mailbox], \
                 [smtp], [templates] and [classifier] under each [[account]] as \
                 [account.identity], [account.mailbox], ... (see config/pushback.accounts.toml)",
            ));
        }
        let raw: RawConfig = toml::from_str(self.text).map_err(|e| self.toml_error(&e))?;
        let (account, shared) = raw.split();
        Ok(vec![self.build(DEFAULT_ACCOUNT, account, shared)?])
    }

    /// One account's config from its own tables and the shared ones.
    fn build(&self, name: &str, raw: RawAccount, shared: RawShared) -> Result<Config, Error> {
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

        let state_dir = match shared.state.path {
            Some(path) => self.path("[state] path", path)?,
            None => default_state_dir(self.env).ok_or_else(|| {
                self.error(
                    None,
                    "[state] path",
                    "has no default because neither XDG_STATE_HOME nor HOME is set; set it",
                )
            })?,
        };
        let (templates_pack, team_follow_up) = match raw.templates.pack {
            Some(pack) => {
                // The pack holds the templates and the rules: naming them here as well would
                // leave the rep guessing which one is used.
                for (other, key) in [
                    (raw.templates.dir.as_ref(), "[templates] dir"),
                    (raw.classifier.rules.as_ref(), "[classifier] rules"),
                ] {
                    if let Some(other) = other {
                        return Err(self.invalid(
                            other.span(),
                            key,
                            "cannot be combined with [templates] pack, which holds the templates \
                             and the classifier rules; remove one of them",
                        ));
                    }
                }
                let span = pack.span();
                let dir = self.path("[templates] pack", pack)?;
                let follow_up = self.read_pack_follow_up(&dir, span)?;
                (Some(dir), Some(follow_up))
            }
            None => (None, None),
        };
        let oauth2 = raw
            .oauth2
            .map(|o| self.oauth2(o, &state_dir, name))
            .transpose()?;
        let mailbox = self.mailbox(raw.mailbox, oauth2.as_ref())?;
        let outgoing = raw
            .smtp
            .map(|s| self.outgoing(s, oauth2.as_ref()))
            .transpose()?;
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
        let max_message_bytes = match shared.limits.max_message_bytes {
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
        let business = self.business(shared.business, timezone)?;
        let follow_up = self.follow_up(match team_follow_up {
            Some(team) => shared.follow_up.over(team),
            None => shared.follow_up,
        })?;
        let reminders = self.reminders(shared.reminders, &state_dir)?;
        let calendar = self.calendar(shared.calendar)?;
        let web = shared.web.map(|web| self.web(web)).transpose()?;
        let log_filter = match shared.log.filter {
            Some(filter) => self.log_filter(filter)?,
            None => DEFAULT_LOG_FILTER.to_owned(),
        };
        let status_socket = status_socket_path(self.env, &state_dir);

        Ok(Config {
            file: Some(self.file.to_path_buf()),
            account: name.to_owned(),
            identity,
            timezone,
            mailbox,
            outgoing,
            state_dir,
            templates_dir,
            classifier_rules,
            templates_pack,
            max_message_bytes,
            business,
            follow_up,
            reminders,
            calendar,
            web,
            log_filter,
            status_socket,
            oauth2,
        })
    }

    /// The `[follow-up]` table of the pack in `dir`; `span` is `[templates] pack`'s, for a pack
    /// whose `pack.toml` cannot be read. Only that table is read here: the rest of the manifest,
    /// the templates and the rules are checked when the pack is loaded to draft, so a pack broken
    /// by a pull stops neither the running service (it keeps the last good pack) nor the commands
    /// that only read the store.
    fn read_pack_follow_up(&self, dir: &Path, span: Range<usize>) -> Result<RawFollowUp, Error> {
        let file = dir.join(pack::MANIFEST);
        let text = std::fs::read_to_string(&file).map_err(|cause| {
            self.invalid(
                span,
                "[templates] pack",
                format!(
                    "cannot read template pack file {}: {cause} (a pack is a directory with a \
                     pack.toml)",
                    file.display()
                ),
            )
        })?;
        self.pack_follow_up(&file, &text)
    }

    /// The `[follow-up]` table of pack manifest `text`, checked against the manifest itself (so
    /// an error names `pack.toml` and its line).
    fn pack_follow_up(&self, file: &Path, text: &str) -> Result<RawFollowUp, Error> {
        let in_pack = Parser {
            text,
            file,
            env: self.env,
            account: None,
        };
        let raw: RawPackPolicies = toml::from_str(text).map_err(|e| in_pack.toml_error(&e))?;
        in_pack.follow_up(raw.follow_up.clone())?;
        Ok(raw.follow_up)
    }

    fn log_filter(&self, filter: Spanned<String>) -> Result<String, Error> {
        let span = filter.span();
        let filter = filter.into_inner();
        match parse_log_filter(&filter) {
            Ok(_) => Ok(filter.trim().to_string()),
            Err(error) => Err(self.invalid(
                span,
                "[log] filter",
                format!(
                    "{filter:?} is not a log filter ({error}); write levels and targets as \
                     RUST_LOG takes them, e.g. \"info\" or \"warn,pushback=debug\""
                ),
            )),
        }
    }

    /// The file's version, if this build reads it.
    fn check_version(&self, version: Option<Spanned<toml::Value>>) -> Result<i64, Error> {
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
            toml::Value::Integer(v) if SUPPORTED_VERSIONS.contains(v) => Ok(*v),
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

    /// `prefix` goes before every login key of the table (`caldav-` in `[calendar]`).
    fn refuse_password(
        &self,
        table: &str,
        prefix: &str,
        password: Option<&Spanned<IgnoredAny>>,
    ) -> Result<(), Error> {
        match password {
            None => Ok(()),
            Some(password) => Err(self.invalid(
                password.span(),
                &format!("[{table}] {prefix}password"),
                format!(
                    "a password in the config file is refused; use {prefix}password-command (a \
                     command that prints it, e.g. \"pass show mail/work\") or {prefix}password-env \
                     (the name of an environment variable holding it)"
                ),
            )),
        }
    }

    fn mailbox(&self, raw: RawMailbox, oauth2: Option<&OAuth2Settings>) -> Result<Mailbox, Error> {
        // Before the kind checks, so a maildir user learns where passwords go, too.
        self.refuse_password("mailbox", "", raw.password.as_ref())?;
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
            login: RawLogin {
                user: raw.user,
                password_command: raw.password_command,
                password_env: raw.password_env,
                token_command: raw.token_command,
            },
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
            (
                "reconnect-max-seconds",
                raw.reconnect_max_seconds.as_ref().map(Spanned::span),
            ),
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
                let server = self.server("mailbox", server, Some(raw.kind.span()), oauth2)?;
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
                let reconnect_max_seconds = self.bounded(
                    raw.reconnect_max_seconds,
                    "[mailbox] reconnect-max-seconds",
                    RECONNECT_MAX_SECONDS_RANGE,
                    DEFAULT_RECONNECT_MAX_SECONDS,
                    "seconds",
                    "",
                )?;
                let sync = ImapSync {
                    backfill_days,
                    fetch_max_bytes,
                    idle_timeout: Duration::from_secs(u64::from(idle_minutes) * 60),
                    poll_interval: Duration::from_secs(u64::from(poll_seconds)),
                    reconnect_max: Duration::from_secs(u64::from(reconnect_max_seconds)),
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

    fn outgoing(&self, raw: RawSmtp, oauth2: Option<&OAuth2Settings>) -> Result<Outgoing, Error> {
        self.refuse_password("smtp", "", raw.password.as_ref())?;
        let save_to_sent = raw
            .save_to_sent
            .map_or(DEFAULT_SAVE_TO_SENT, Spanned::into_inner);
        let server = RawServer {
            host: raw.host,
            port: raw.port,
            security: raw.security,
            login: RawLogin {
                user: raw.user,
                password_command: raw.password_command,
                password_env: raw.password_env,
                token_command: raw.token_command,
            },
            ca_file: raw.ca_file,
            accept_invalid_certs: raw.accept_invalid_certs,
        };
        let Some(command) = raw.sendmail_command else {
            return Ok(Outgoing::Smtp {
                server: self.server("smtp", server, None, oauth2)?,
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
    /// login is missing (IMAP always logs in; SMTP may relay without). An `[oauth2]` provider
    /// preset fills the host, port and security the table leaves out, and a user without a
    /// password or token source logs in with pushback's own OAuth2 tokens.
    fn server(
        &self,
        table: &str,
        raw: RawServer,
        login_required_at: Option<Range<usize>>,
        oauth2: Option<&OAuth2Settings>,
    ) -> Result<Server, Error> {
        let key = |name: &str| format!("[{table}] {name}");
        let is_imap = login_required_at.is_some();
        let preset = oauth2.and_then(|o| o.server_preset(is_imap));
        let host = match (raw.host, preset) {
            (Some(host), _) if host.get_ref().trim().is_empty() => {
                return Err(self.invalid(host.span(), &key("host"), "must not be empty"));
            }
            (Some(host), _) => host.into_inner(),
            (None, Some(preset)) => preset.host.to_owned(),
            (None, None) => {
                return Err(self.error(
                    login_required_at.clone().map(|span| self.line(span.start)),
                    &key("host"),
                    if is_imap {
                        "missing: the server's host name is required"
                    } else {
                        "missing: set host (an SMTP server) or sendmail-command (e.g. \"msmtp -t\")"
                    },
                ));
            }
        };
        let security = raw
            .security
            .as_ref()
            .map(|s| *s.get_ref())
            .or(preset.map(|p| p.security))
            .unwrap_or(Security::Tls);
        if let Some(plain) = raw
            .security
            .as_ref()
            .filter(|s| *s.get_ref() == Security::Plain)
        {
            if !is_loopback(&host) {
                return Err(self.invalid(
                    plain.span(),
                    &key("security"),
                    format!(
                        "\"plain\" sends the password unencrypted, so it is only allowed to a \
                         loopback host, not {host:?}; use \"tls\" or \"starttls\""
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
            // The preset's port goes with the preset's security, not with one set here.
            None if raw.security.is_none() && preset.is_some() => preset.map_or(0, |p| p.port),
            None => match (is_imap, security) {
                (true, Security::Tls) => 993,
                (true, _) => 143,
                (false, Security::Tls) => 465,
                (false, Security::Starttls) => 587,
                (false, Security::Plain) => 25,
            },
        };
        let login = self.login(table, "", raw.login, login_required_at, oauth2)?;
        let ca_file = raw
            .ca_file
            .map(|file| self.ca_file(&key("ca-file"), file))
            .transpose()?;
        Ok(Server {
            host,
            port,
            security,
            login,
            tls: TlsOptions {
                ca_file,
                accept_invalid_certs: raw.accept_invalid_certs.is_some_and(Spanned::into_inner),
            },
        })
    }

    /// `user` with exactly one of the three credential sources, or (SMTP and CalDAV) none of
    /// them; with `[oauth2]`, a user alone logs in with its tokens. `prefix` goes before every
    /// key name, as in [`Parser::refuse_password`].
    fn login(
        &self,
        table: &str,
        prefix: &str,
        raw: RawLogin,
        login_required_at: Option<Range<usize>>,
        oauth2: Option<&OAuth2Settings>,
    ) -> Result<Option<Login>, Error> {
        let name = |name: &str| format!("{prefix}{name}");
        let key = |key: &str| format!("[{table}] {prefix}{key}");
        let mut credentials: Vec<(String, Range<usize>, Credential)> = Vec::new();
        if let Some(command) = raw.password_command {
            let span = command.span();
            let command = self.command(&key("password-command"), command)?;
            credentials.push((
                name("password-command"),
                span,
                Credential::Password(PasswordSource::Command(command)),
            ));
        }
        if let Some(env) = raw.password_env {
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
                name("password-env"),
                env.span(),
                Credential::Password(PasswordSource::Env(env.into_inner())),
            ));
        }
        if let Some(command) = raw.token_command {
            let span = command.span();
            let command = self.command(&key("token-command"), command)?;
            credentials.push((
                name("token-command"),
                span,
                Credential::OAuth2TokenCommand(command),
            ));
        }
        credentials.sort_by_key(|(_, span, _)| span.start);
        let sources = |conjunction: &str| {
            format!(
                "{}, {} {conjunction} {}",
                name("password-command"),
                name("password-env"),
                name("token-command")
            )
        };
        if let Some((name, span, _)) = credentials.get(1) {
            return Err(self.invalid(
                span.clone(),
                &format!("[{table}] {name}"),
                format!("set only one of {}", sources("and")),
            ));
        }
        match (raw.user, credentials.pop()) {
            (Some(user), Some((_, _, credential))) => Ok(Some(Login {
                user: user.into_inner(),
                credential,
            })),
            (Some(user), None) if let Some(settings) = oauth2 => Ok(Some(Login {
                user: user.into_inner(),
                credential: Credential::OAuth2(Box::new(settings.clone())),
            })),
            (Some(user), None) => Err(self.invalid(
                user.span(),
                &key("user"),
                format!(
                    "needs {} to log in{}",
                    sources("or"),
                    // The calendar has no OAuth2 login of pushback's own.
                    if prefix.is_empty() {
                        " (or an [oauth2] table, for `pushback login`)"
                    } else {
                        ""
                    }
                ),
            )),
            (None, Some((name, span, _))) => Err(self.invalid(
                span,
                &key("user"),
                format!("missing: {name} needs a user to log in as"),
            )),
            (None, None) => match login_required_at {
                Some(at) => Err(self.error(
                    Some(self.line(at.start)),
                    &key("user"),
                    "missing: imap needs user and one of password-command, password-env or \
                     token-command",
                )),
                None => Ok(None),
            },
        }
    }

    /// A cron schedule, or [`DEFAULT_SCHEDULE`] when unset.
    fn schedule(&self, key: &str, value: Option<Spanned<String>>) -> Result<Schedule, Error> {
        match value {
            None => Ok(default_schedule()),
            Some(expr) => Schedule::parse(expr.get_ref())
                .map_err(|e| self.invalid(expr.span(), key, e.to_string())),
        }
    }

    fn business(&self, raw: RawBusiness, tz: Tz) -> Result<BusinessCalendar, Error> {
        let mut calendar = BusinessCalendar::new(tz);
        if let Some(days) = raw.working_days {
            calendar.working_days = self.working_days(days)?;
        }
        if let Some(hours) = raw.working_hours {
            calendar.working_hours = self.working_hours(hours)?;
        }
        for day in raw.holidays {
            let date = NaiveDate::parse_from_str(day.get_ref(), "%Y-%m-%d").map_err(|_| {
                self.invalid(
                    day.span(),
                    "[business] holidays",
                    format!("{:?} is not a date (YYYY-MM-DD)", day.get_ref()),
                )
            })?;
            calendar.holidays.insert(date);
        }
        if let Some(file) = raw.holidays_file {
            calendar.holidays.extend(self.holidays_file(file)?);
        }
        Ok(calendar)
    }

    /// Day names (`mon`, `Monday`) and ranges that run forward through the week and may wrap
    /// (`sun-thu`), as one string or a list; indexed Monday = 0 like [`BusinessCalendar`].
    fn working_days(&self, value: Spanned<toml::Value>) -> Result<[bool; 7], Error> {
        const KEY: &str = "[business] working-days";
        let invalid = |message: String| self.invalid(value.span(), KEY, message);
        let items: Vec<&str> = match value.get_ref() {
            toml::Value::String(item) => vec![item],
            toml::Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .ok_or_else(|| invalid(format!("{item} is not a day name")))
                })
                .collect::<Result<_, _>>()?,
            other => {
                return Err(invalid(format!(
                    "must be a list of days such as [\"mon\", \"tue\"] or a range such as \
                     \"mon-fri\", not {other}"
                )));
            }
        };
        let weekday = |name: &str| {
            name.trim().parse::<Weekday>().map_err(|_| {
                invalid(format!(
                    "{name:?} is not a day; use mon, tue, wed, thu, fri, sat or sun, or a range \
                     such as \"mon-fri\""
                ))
            })
        };
        let mut days = [false; 7];
        for item in items {
            let (first, last) = item.split_once('-').unwrap_or((item, item));
            let (mut day, last) = (weekday(first)?, weekday(last)?);
            days[day.num_days_from_monday() as usize] = true;
            while day != last {
                day = day.succ();
                days[day.num_days_from_monday() as usize] = true;
            }
        }
        if !days.contains(&true) {
            return Err(invalid("must name at least one day".into()));
        }
        Ok(days)
    }

    /// `"09:00-17:00"`, start before end (working hours do not run past midnight).
    fn working_hours(&self, value: Spanned<String>) -> Result<(NaiveTime, NaiveTime), Error> {
        const KEY: &str = "[business] working-hours";
        let text = value.get_ref();
        let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").ok();
        let Some((start, end)) = text
            .split_once('-')
            .and_then(|(start, end)| Some((time(start)?, time(end)?)))
        else {
            return Err(self.invalid(
                value.span(),
                KEY,
                format!("{text:?} is not HH:MM-HH:MM such as \"09:00-17:00\""),
            ));
        };
        if start >= end {
            return Err(self.invalid(
                value.span(),
                KEY,
                format!(
                    "{text:?} does not end after it starts; working hours cannot run past \
                     midnight"
                ),
            ));
        }
        Ok((start, end))
    }

    /// Read now, so that a broken file fails at load time, naming its own line as well.
    fn holidays_file(&self, value: Spanned<String>) -> Result<BTreeSet<NaiveDate>, Error> {
        const KEY: &str = "[business] holidays-file";
        let span = value.span();
        let path = self.path(KEY, value)?;
        let text = std::fs::read_to_string(&path).map_err(|cause| {
            self.invalid(
                span.clone(),
                KEY,
                format!("cannot read {}: {cause}", path.display()),
            )
        })?;
        schedule::holidays_from_ics(&text).map_err(|e| {
            let at = match e {
                schedule::Error::Ics { line, problem } => {
                    format!("{} line {line}: {problem}", path.display())
                }
                other => format!("{}: {other}", path.display()),
            };
            self.invalid(span, KEY, format!("cannot read holidays from {at}"))
        })
    }

    fn follow_up(&self, raw: RawFollowUp) -> Result<FollowUpPolicy, Error> {
        let days = |value: Option<Spanned<u32>>, key: &str| {
            self.bounded(
                value,
                key,
                FOLLOW_UP_AFTER_BUSINESS_DAYS_RANGE,
                DEFAULT_FOLLOW_UP_AFTER_BUSINESS_DAYS,
                "business days",
                "",
            )
        };
        let mut by_category = BTreeMap::new();
        for (name, value) in raw.after_business_days_by_category {
            let key = format!("[follow-up.after-business-days-by-category] {name}");
            let Some(category) = Category::PROCUREMENT
                .into_iter()
                .find(|c| c.as_str() == name)
            else {
                let names: Vec<&str> = Category::PROCUREMENT.map(Category::as_str).into();
                return Err(self.invalid(
                    value.span(),
                    &key,
                    format!("unknown category {name:?}; use one of {}", names.join(", ")),
                ));
            };
            by_category.insert(category, days(Some(value), &key)?);
        }
        Ok(FollowUpPolicy {
            at: self.schedule("[follow-up] at", raw.at)?,
            after_business_days: days(raw.after_business_days, "[follow-up] after-business-days")?,
            after_business_days_by_category: by_category,
            max_follow_ups: self.bounded(
                raw.max_follow_ups,
                "[follow-up] max-follow-ups",
                MAX_FOLLOW_UPS_RANGE,
                DEFAULT_MAX_FOLLOW_UPS,
                "follow-ups",
                " (0 turns them off)",
            )?,
        })
    }

    fn reminders(&self, raw: RawReminders, state_dir: &Path) -> Result<ReminderSettings, Error> {
        let lead = |value: Option<Spanned<u32>>, key: &str, default: u32| {
            self.bounded(
                value,
                key,
                REMINDER_LEAD_RANGE,
                default,
                "business days",
                " (0 reminds on the day)",
            )
        };
        let defaults = ReminderSettings::in_state_dir(state_dir);
        Ok(ReminderSettings {
            at: self.schedule("[reminders] at", raw.at)?,
            before_cutoff_business_days: lead(
                raw.before_cutoff_business_days,
                "[reminders] before-cutoff-business-days",
                defaults.before_cutoff_business_days,
            )?,
            before_submission_business_days: lead(
                raw.before_submission_business_days,
                "[reminders] before-submission-business-days",
                defaults.before_submission_business_days,
            )?,
            before_other_business_days: lead(
                raw.before_other_business_days,
                "[reminders] before-other-business-days",
                defaults.before_other_business_days,
            )?,
            inbox: raw.inbox.map_or(defaults.inbox, Spanned::into_inner),
            feed: match raw.feed {
                Some(path) => self.path("[reminders] feed", path)?,
                None => defaults.feed,
            },
        })
    }

    fn calendar(&self, raw: RawCalendar) -> Result<CalendarSettings, Error> {
        self.refuse_password("calendar", "caldav-", raw.caldav_password.as_ref())?;
        let login = RawLogin {
            user: raw.caldav_user,
            password_command: raw.caldav_password_command,
            password_env: raw.caldav_password_env,
            token_command: raw.caldav_token_command,
        };
        let raw_ca_span = raw.caldav_ca_file.as_ref().map(Spanned::span);
        let ca_file = raw
            .caldav_ca_file
            .map(|file| self.ca_file("[calendar] caldav-ca-file", file))
            .transpose()?;
        let caldav = match raw.caldav_url {
            Some(url) => Some(self.caldav(url, login, ca_file)?),
            None if let Some(span) = raw_ca_span => {
                return Err(self.invalid(
                    span,
                    "[calendar] caldav-ca-file",
                    "only used with caldav-url; set caldav-url or remove it",
                ));
            }
            None => match first_in_file(login.keys_set()) {
                Some((key, span)) => {
                    return Err(self.invalid(
                        span,
                        &format!("[calendar] caldav-{key}"),
                        "only used with caldav-url; set caldav-url or remove it",
                    ));
                }
                None => None,
            },
        };
        let busy = raw
            .busy
            .into_iter()
            .map(|source| self.busy_source(source))
            .collect::<Result<_, _>>()?;
        let defaults = CalendarSettings::default();
        Ok(CalendarSettings {
            caldav,
            busy,
            slot_minutes: self.bounded(
                raw.slot_minutes,
                "[calendar] slot-minutes",
                SLOT_MINUTES_RANGE,
                defaults.slot_minutes,
                "minutes",
                "",
            )?,
            slot_count: self.bounded(
                raw.slot_count,
                "[calendar] slot-count",
                SLOT_COUNT_RANGE,
                defaults.slot_count,
                "slots",
                "",
            )?,
            attach_invite: raw
                .attach_invite
                .map_or(defaults.attach_invite, Spanned::into_inner),
        })
    }

    fn web(&self, raw: RawWeb) -> Result<WebSettings, Error> {
        const LISTEN: &str = "[web] listen";
        let (listen, span) = match raw.listen {
            Some(value) => {
                let span = value.span();
                let listen = value.get_ref().trim().parse::<SocketAddr>().map_err(|_| {
                    self.invalid(
                        span.clone(),
                        LISTEN,
                        format!(
                            "{:?} is not an IP address and port such as {DEFAULT_WEB_LISTEN:?} \
                             (the page binds exactly this address, so no host names)",
                            value.get_ref()
                        ),
                    )
                })?;
                (listen, Some(span))
            }
            None => (
                DEFAULT_WEB_LISTEN
                    .parse()
                    .expect("the default address parses"),
                None,
            ),
        };
        let tls = match (raw.tls_cert, raw.tls_key) {
            (Some(cert), Some(key)) => Some(WebTls {
                cert: self.ca_file("[web] tls-cert", cert)?,
                key: self.private_key("[web] tls-key", key)?,
            }),
            (Some(cert), None) => {
                return Err(self.invalid(cert.span(), "[web] tls-cert", "needs tls-key as well"));
            }
            (None, Some(key)) => {
                return Err(self.invalid(key.span(), "[web] tls-key", "needs tls-cert as well"));
            }
            (None, None) => None,
        };
        // The default address is loopback, so only a configured one can be refused here.
        if let Some(span) = span
            && tls.is_none()
            && !listen.ip().is_loopback()
        {
            return Err(self.invalid(
                span,
                LISTEN,
                format!(
                    "{listen} is reachable from other machines, and the page sends mail on your \
                     behalf: beyond loopback it is only served over TLS; set tls-cert and \
                     tls-key, or listen on {DEFAULT_WEB_LISTEN}"
                ),
            ));
        }
        Ok(WebSettings { listen, tls })
    }

    /// The path of a PEM private key, checked now. Its contents never appear in an error.
    fn private_key(&self, key: &str, value: Spanned<String>) -> Result<PathBuf, Error> {
        let (path, pem, span) = self.read_file(key, value)?;
        match rustls_pemfile::private_key(&mut pem.as_slice()) {
            Ok(Some(_)) => Ok(path),
            Ok(None) | Err(_) => Err(self.invalid(
                span,
                key,
                format!(
                    "{} holds no PEM private key (-----BEGIN PRIVATE KEY-----, or an RSA or EC \
                     key)",
                    path.display()
                ),
            )),
        }
    }

    fn caldav(
        &self,
        url: Spanned<String>,
        login: RawLogin,
        ca_file: Option<PathBuf>,
    ) -> Result<CalDavSettings, Error> {
        const KEY: &str = "[calendar] caldav-url";
        let span = url.span();
        let url = self.http_url(
            KEY,
            url,
            "; use caldav-user with caldav-password-command, caldav-password-env or \
             caldav-token-command",
        )?;
        let login = self.login("calendar", "caldav-", login, None, None)?;
        // As for IMAP and SMTP: no password in clear text beyond this machine.
        if login.is_some() && url.scheme() == "http" && !url.host_str().is_some_and(is_loopback) {
            return Err(self.invalid(
                span,
                KEY,
                "http sends the password unencrypted, so it is only allowed to a loopback host; \
                 use https",
            ));
        }
        Ok(CalDavSettings {
            url: url.into(),
            login,
            ca_file,
        })
    }

    /// A URL (anything with `://`) or an .ics file, which must be readable now.
    fn busy_source(&self, value: Spanned<String>) -> Result<BusySource, Error> {
        const KEY: &str = "[calendar] busy";
        if value.get_ref().contains("://") {
            let url = self.http_url(KEY, value, "")?;
            return Ok(BusySource::Url(url.into()));
        }
        let (path, _, _) = self.read_file(KEY, value)?;
        Ok(BusySource::File(path))
    }

    /// An http or https URL. The text is never echoed in an error, because a refused one may hold
    /// a password; one that holds a user or password is refused with `login_hint`.
    fn http_url(
        &self,
        key: &str,
        value: Spanned<String>,
        login_hint: &str,
    ) -> Result<url::Url, Error> {
        let invalid = |message: String| self.invalid(value.span(), key, message);
        let url = url::Url::parse(value.get_ref().trim())
            .map_err(|e| invalid(format!("is not a URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(format!(
                "must not hold a user name or password: secrets stay out of this file{login_hint}"
            )));
        }
        match url.scheme() {
            "http" | "https" => Ok(url),
            "webcal" => Err(invalid(
                "write https:// (or http://) instead of webcal://".into(),
            )),
            other => Err(invalid(format!(
                "{other}: URLs are not supported; use an http or https URL"
            ))),
        }
    }

    /// A shell command, which must not be blank.
    fn command(&self, key: &str, value: Spanned<String>) -> Result<String, Error> {
        if value.get_ref().trim().is_empty() {
            return Err(self.invalid(value.span(), key, "must not be empty"));
        }
        Ok(value.into_inner())
    }

    /// The path of a PEM CA bundle (or a certificate chain), checked now so that a typo fails at
    /// load time and not at the first connection.
    fn ca_file(&self, key: &str, value: Spanned<String>) -> Result<PathBuf, Error> {
        let (path, pem, span) = self.read_file(key, value)?;
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

    /// The file a path key names, read now: its path, its bytes and where the key is.
    fn read_file(
        &self,
        key: &str,
        value: Spanned<String>,
    ) -> Result<(PathBuf, Vec<u8>, Range<usize>), Error> {
        let span = value.span();
        let path = self.path(key, value)?;
        let bytes = std::fs::read(&path).map_err(|cause| {
            self.invalid(
                span.clone(),
                key,
                format!("cannot read {}: {cause}", path.display()),
            )
        })?;
        Ok((path, bytes, span))
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
        self.error(Some(self.line(span.start)), key, message)
    }

    /// An error at `line` (`None`: the file as a whole); a key of an account's own table is
    /// prefixed with the account.
    fn error(&self, line: Option<usize>, key: &str, message: impl Into<String>) -> Error {
        let key = match &self.account {
            Some(account) if ACCOUNT_TABLES.iter().any(|table| key.starts_with(table)) => {
                format!("{account} {key}")
            }
            _ => key.to_owned(),
        };
        Error::Invalid {
            file: self.file.to_path_buf(),
            line,
            key,
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
                key: accounts::in_account(self.text, span.start, key_at(self.text, span.start)),
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
            account: None,
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
    fn the_log_filter_defaults_to_info_and_a_bad_one_names_line_and_key() {
        let minimal = with_mailbox("kind = \"maildir\"\npath = \"/m\"");
        assert_eq!(parse(&minimal).unwrap().log_filter, "info");
        let set = minimal.clone() + "[log]\nfilter = \"warn,pushback=debug\"\n";
        assert_eq!(parse(&set).unwrap().log_filter, "warn,pushback=debug");
        // tracing-subscriber's own parser panicked on this (found by the `config` fuzz target).
        let non_ascii = minimal.clone() + "[log]\nfilter = \" à=1\"\n";
        assert!(
            err(&non_ascii).contains("only ASCII"),
            "{}",
            err(&non_ascii)
        );
        let bad = minimal + "[log]\nfilter = \"pushback=loud\"\n";
        let line = line_of(&bad, "loud");
        let message = err(&bad);
        assert!(
            message.starts_with(&format!(
                "/etc/pb/config.toml line {line}: [log] filter: \"pushback=loud\" is not a log \
                 filter ("
            )),
            "{message}"
        );
    }

    #[test]
    fn the_status_socket_is_in_the_runtime_dir_else_the_state_dir() {
        let text = with_mailbox("kind = \"maildir\"\npath = \"/m\"");
        let with_runtime = |name: &str| match name {
            "XDG_RUNTIME_DIR" => Some("/run/user/1000".into()),
            other => env(other),
        };
        let config = Parser {
            text: &text,
            file: Path::new("/etc/pb/config.toml"),
            env: &with_runtime,
            account: None,
        }
        .parse()
        .unwrap();
        assert_eq!(
            config.status_socket,
            PathBuf::from("/run/user/1000/pushback/status.sock")
        );
        // A system service has no runtime dir (and a relative one is ignored, as XDG says).
        assert_eq!(
            parse(&text).unwrap().status_socket,
            PathBuf::from("/home/alex/.local/state/pushback/status.sock")
        );
    }

    #[test]
    fn a_reload_takes_templates_rules_and_log_filter_and_names_the_rest() {
        let before = parse(&with_mailbox("kind = \"maildir\"\npath = \"/m\"")).unwrap();
        let text = with_mailbox("kind = \"maildir\"\npath = \"/other\"")
            + "[templates]\ndir = \"/t\"\n[classifier]\nrules = \"/r.toml\"\n\
               [log]\nfilter = \"debug\"\n[limits]\nmax-message-bytes = 1000\n";
        let edited = parse(&text).unwrap();
        let (applied, restart_needed) = before.reloaded(&edited);
        assert_eq!(restart_needed, ["[mailbox]", "[limits]"]);
        assert_eq!(applied.templates_dir, Some("/t".into()));
        assert_eq!(applied.classifier_rules, Some("/r.toml".into()));
        assert_eq!(applied.log_filter, "debug");
        assert_eq!(applied.mailbox, before.mailbox);
        assert_eq!(applied.max_message_bytes, before.max_message_bytes);

        let (same, nothing) = before.reloaded(&before);
        assert_eq!(same, before);
        assert!(nothing.is_empty());
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
        // Version 3 may have keys this build does not know; the version is what to report.
        let message = err("version = 3\n[future]\nkey = 1\n");
        assert_eq!(
            message,
            "/etc/pb/config.toml line 1: version: version 3 is not supported; this pushback reads \
             config version 1, 2"
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
             idle-minutes = 1\npoll-seconds = 86400\nreconnect-max-seconds = 5"
        ));
        let config = parse(&text).unwrap();
        assert_eq!(
            config.mailbox.sync,
            ImapSync {
                backfill_days: 0,
                fetch_max_bytes: 4096,
                idle_timeout: Duration::from_secs(60),
                poll_interval: Duration::from_secs(86400),
                reconnect_max: Duration::from_secs(5),
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

    // ---- [business], [follow-up], [reminders], [calendar] ----

    fn maildir_with(sections: &str) -> String {
        with_mailbox(MAILDIR) + sections
    }

    /// The error for `sections`, checked to start with file, line of `needle` and `key`.
    fn err_at(sections: &str, needle: &str, key: &str) -> String {
        let text = maildir_with(sections);
        let line = line_of(&text, needle);
        let message = err(&text);
        let expected = format!("/etc/pb/config.toml line {line}: {key}: ");
        assert!(message.starts_with(&expected), "{message}");
        message[expected.len()..].to_owned()
    }

    fn ics_file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::Builder::new().suffix(".ics").tempfile().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    fn time(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn time_keeping_sections_default_when_absent() {
        let config = parse(&maildir_with("")).unwrap();
        assert_eq!(config.business, BusinessCalendar::new(Tz::Europe__London));
        assert_eq!(config.business.working_hours, (time(9, 0), time(17, 0)));
        let follow_up = &config.follow_up;
        assert_eq!(follow_up.at.as_str(), "0 9 * * 1-5");
        assert_eq!(follow_up.after_business_days, 3);
        assert!(follow_up.after_business_days_by_category.is_empty());
        assert_eq!(follow_up.after_business_days(Category::Rfp), 3);
        assert_eq!(follow_up.max_follow_ups, 2);
        let reminders = &config.reminders;
        assert_eq!(reminders.at.as_str(), "0 9 * * 1-5");
        assert_eq!(
            (
                reminders.before_cutoff_business_days,
                reminders.before_submission_business_days,
                reminders.before_other_business_days
            ),
            (2, 3, 1)
        );
        assert!(reminders.inbox);
        assert_eq!(
            reminders.feed,
            PathBuf::from("/home/alex/.local/state/pushback/reminders.ics")
        );
        assert_eq!(
            config.calendar,
            CalendarSettings {
                caldav: None,
                busy: Vec::new(),
                slot_minutes: 30,
                slot_count: 3,
                attach_invite: false,
            }
        );
        // The feed follows a configured state directory.
        let config = parse(&maildir_with("[state]\npath = \"/var/lib/pb\"\n")).unwrap();
        assert_eq!(
            config.reminders.feed,
            PathBuf::from("/var/lib/pb/reminders.ics")
        );
    }

    #[test]
    fn every_time_keeping_key_is_read() {
        let holidays = ics_file(
            "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART;VALUE=DATE:20270101\nEND:VEVENT\nEND:VCALENDAR\n",
        );
        let busy = ics_file("BEGIN:VCALENDAR\nEND:VCALENDAR\n");
        let text = maildir_with(&format!(
            r#"[business]
working-days = ["mon", "wed-fri"]
working-hours = "08:30-16:00"
holidays = ["2026-12-25", "2026-12-26"]
holidays-file = "{holidays}"

[follow-up]
at = "30 8 * * MON-FRI"
after-business-days = 4
max-follow-ups = 0

[follow-up.after-business-days-by-category]
rfp = 5
pricing_only = 1

[reminders]
at = "0 0 8 * * 1-5"
before-cutoff-business-days = 4
before-submission-business-days = 6
before-other-business-days = 0
inbox = false
feed = "feeds/reminders.ics"

[calendar]
caldav-url = "https://dav.example.com/cal/alex/"
caldav-user = "alex"
caldav-password-env = "PB_DAV"
busy = ["{busy}", "https://example.com/busy.ics"]
slot-minutes = 45
slot-count = 5
attach-invite = true
"#,
            holidays = holidays.path().display(),
            busy = busy.path().display(),
        ));
        let config = parse(&text).unwrap();
        let business = &config.business;
        assert_eq!(
            business.working_days,
            [true, false, true, true, true, false, false]
        );
        assert_eq!(business.working_hours, (time(8, 30), time(16, 0)));
        assert_eq!(
            business.holidays,
            [date(2026, 12, 25), date(2026, 12, 26), date(2027, 1, 1)].into()
        );
        assert_eq!(business.tz, Tz::Europe__London);

        let follow_up = &config.follow_up;
        assert_eq!(follow_up.at.as_str(), "30 8 * * MON-FRI");
        assert_eq!(follow_up.after_business_days, 4);
        assert_eq!(follow_up.max_follow_ups, 0);
        assert_eq!(follow_up.after_business_days(Category::Rfp), 5);
        assert_eq!(follow_up.after_business_days(Category::PricingOnly), 1);
        assert_eq!(follow_up.after_business_days(Category::Tender), 4);

        let reminders = &config.reminders;
        assert_eq!(reminders.at.as_str(), "0 0 8 * * 1-5");
        assert_eq!(reminders.lead_business_days(DeadlineKind::Questions), 4);
        assert_eq!(reminders.lead_business_days(DeadlineKind::Submission), 6);
        for kind in [
            DeadlineKind::PreBid,
            DeadlineKind::IntentToBid,
            DeadlineKind::Other,
        ] {
            assert_eq!(reminders.lead_business_days(kind), 0, "{kind:?}");
        }
        assert!(!reminders.inbox);
        assert_eq!(reminders.feed, PathBuf::from("/etc/pb/feeds/reminders.ics"));

        let calendar = &config.calendar;
        assert_eq!(
            calendar.caldav,
            Some(CalDavSettings {
                url: "https://dav.example.com/cal/alex/".into(),
                login: Some(Login {
                    user: "alex".into(),
                    credential: Credential::Password(PasswordSource::Env("PB_DAV".into())),
                }),
                ca_file: None,
            })
        );
        assert_eq!(
            calendar.busy,
            vec![
                BusySource::File(busy.path().to_path_buf()),
                BusySource::Url("https://example.com/busy.ics".into()),
            ]
        );
        assert_eq!(
            (
                calendar.slot_minutes,
                calendar.slot_count,
                calendar.attach_invite
            ),
            (45, 5, true)
        );

        let described = config.describe();
        for line in [
            "business week:    Mon Wed Thu Fri 08:30-16:00 Europe/London, 3 holidays\n",
            "follow-ups:       4 business days after our reply (rfp 5, pricing_only 1), at most 0 \
             per reply, due at \"30 8 * * MON-FRI\"\n",
            "reminders:        4 business days before a questions cut-off, 6 before a submission, \
             0 before other deadlines, raised at \"0 0 8 * * 1-5\"\n",
            "delivered to:     the feed /etc/pb/feeds/reminders.ics, CalDAV \
             https://dav.example.com/cal/alex/ (user alex, password from environment variable \
             PB_DAV)\n",
        ] {
            assert!(described.contains(line), "{line:?} not in\n{described}");
        }
        let slots = format!(
            // A published calendar's address can carry a token: only its host is shown.
            "call slots:       5 of 45 min, invite attached; busy times from {}, \
             https://example.com/…\n",
            busy.path().display()
        );
        assert!(described.contains(&slots), "{described}");
    }

    #[test]
    fn working_days_take_ranges_that_may_wrap() {
        for (days, want) in [
            ("\"mon-fri\"", [true, true, true, true, true, false, false]),
            // A Sunday-to-Thursday week runs through the end of the list.
            ("\"sun-thu\"", [true, true, true, true, false, false, true]),
            (
                "[\"Saturday\"]",
                [false, false, false, false, false, true, false],
            ),
            (
                "[\"tue\", \"tue-wed\"]",
                [false, true, true, false, false, false, false],
            ),
        ] {
            let text = maildir_with(&format!("[business]\nworking-days = {days}\n"));
            assert_eq!(parse(&text).unwrap().business.working_days, want, "{days}");
        }
        const KEY: &str = "[business] working-days";
        for (days, refusal) in [
            ("[]", "must name at least one day"),
            ("\"mon-funday\"", "\"funday\" is not a day; use mon, tue,"),
            ("[\"mon\", 3]", "3 is not a day name"),
            (
                "5",
                "must be a list of days such as [\"mon\", \"tue\"] or a range",
            ),
        ] {
            let message = err_at(
                &format!("[business]\nworking-days = {days}\n"),
                "working-days",
                KEY,
            );
            assert!(message.starts_with(refusal), "{days}: {message}");
        }
    }

    #[test]
    fn bad_working_hours_are_refused() {
        for (hours, refusal) in [
            (
                "17:00-09:00",
                "\"17:00-09:00\" does not end after it starts",
            ),
            (
                "09:00-09:00",
                "\"09:00-09:00\" does not end after it starts",
            ),
            ("9-5", "\"9-5\" is not HH:MM-HH:MM such as \"09:00-17:00\""),
            ("09:00", "\"09:00\" is not HH:MM-HH:MM"),
            ("09:00-25:00", "\"09:00-25:00\" is not HH:MM-HH:MM"),
        ] {
            let message = err_at(
                &format!("[business]\nworking-hours = \"{hours}\"\n"),
                "working-hours",
                "[business] working-hours",
            );
            assert!(message.starts_with(refusal), "{hours}: {message}");
        }
    }

    #[test]
    fn a_bad_holiday_date_names_its_line() {
        let message = err_at(
            "[business]\nholidays = [\n  \"2026-12-25\",\n  \"2026-13-01\",\n]\n",
            "2026-13-01",
            "[business] holidays",
        );
        assert_eq!(message, "\"2026-13-01\" is not a date (YYYY-MM-DD)");
    }

    #[test]
    fn a_broken_holidays_file_names_both_files() {
        let broken = ics_file("BEGIN:VEVENT\nDTSTART;VALUE=DATE:2027-13-01\nEND:VEVENT\n");
        let message = err_at(
            &format!(
                "[business]\nholidays-file = \"{}\"\n",
                broken.path().display()
            ),
            "holidays-file",
            "[business] holidays-file",
        );
        assert_eq!(
            message,
            format!(
                "cannot read holidays from {} line 2: DTSTART \"2027-13-01\" is not a date \
                 (YYYYMMDD)",
                broken.path().display()
            )
        );
        let message = err_at(
            "[business]\nholidays-file = \"/nonexistent/holidays.ics\"\n",
            "holidays-file",
            "[business] holidays-file",
        );
        assert!(
            message.starts_with("cannot read /nonexistent/holidays.ics: "),
            "{message}"
        );
    }

    #[test]
    fn a_bad_schedule_names_file_line_key_and_the_problem() {
        let message = err_at(
            "[follow-up]\nat = \"0 24 * * *\"\n",
            "at =",
            "[follow-up] at",
        );
        assert_eq!(
            message,
            "cannot parse schedule \"0 24 * * *\": hour field \"24\": 24 is outside 0-23"
        );
        let message = err_at(
            "[reminders]\ninbox = true\nat = \"9 * * *\"\n",
            "at =",
            "[reminders] at",
        );
        assert!(
            message.starts_with("cannot parse schedule \"9 * * *\": expected 5 fields"),
            "{message}"
        );
        let message = err_at(
            "[reminders]\nat = \"0 9 * * 8\"\n",
            "at =",
            "[reminders] at",
        );
        assert!(message.contains("0 and 7 are Sunday"), "{message}");
    }

    #[test]
    fn an_unknown_category_lists_the_valid_names() {
        let message = err_at(
            "[follow-up.after-business-days-by-category]\nrfp = 5\nrpf = 4\n",
            "rpf",
            "[follow-up.after-business-days-by-category] rpf",
        );
        assert_eq!(
            message,
            "unknown category \"rpf\"; use one of rfp, rfq, rfi, tender, portal, questionnaire, \
             pricing_only, demo_request, procurement_gatekeeper"
        );
        // `none` is a classifier outcome, not something we reply to and follow up.
        let message = err_at(
            "[follow-up.after-business-days-by-category]\nnone = 4\n",
            "none",
            "[follow-up.after-business-days-by-category] none",
        );
        assert!(message.starts_with("unknown category"), "{message}");
    }

    #[test]
    fn time_keeping_numbers_have_ranges() {
        for (sections, needle, key, refusal) in [
            (
                "[follow-up]\nafter-business-days = 0\n",
                "after-business-days",
                "[follow-up] after-business-days",
                "0 is out of range: must be 1 to 60 business days",
            ),
            (
                "[follow-up.after-business-days-by-category]\ntender = 61\n",
                "tender",
                "[follow-up.after-business-days-by-category] tender",
                "61 is out of range: must be 1 to 60 business days",
            ),
            (
                "[follow-up]\nmax-follow-ups = 11\n",
                "max-follow-ups",
                "[follow-up] max-follow-ups",
                "11 is out of range: must be 0 to 10 follow-ups (0 turns them off)",
            ),
            (
                "[reminders]\nbefore-submission-business-days = 31\n",
                "before-submission",
                "[reminders] before-submission-business-days",
                "31 is out of range: must be 0 to 30 business days (0 reminds on the day)",
            ),
            (
                "[calendar]\nslot-minutes = 10\n",
                "slot-minutes",
                "[calendar] slot-minutes",
                "10 is out of range: must be 15 to 240 minutes",
            ),
            (
                "[calendar]\nslot-count = 0\n",
                "slot-count",
                "[calendar] slot-count",
                "0 is out of range: must be 1 to 10 slots",
            ),
        ] {
            let message = err_at(sections, needle, key);
            assert_eq!(message, refusal);
        }
    }

    #[test]
    fn unknown_time_keeping_keys_are_refused() {
        for (sections, needle, key) in [
            (
                "[business]\nholiday = []\n",
                "holiday =",
                "[business] holiday",
            ),
            (
                "[follow-up]\nafter-days = 3\n",
                "after-days",
                "[follow-up] after-days",
            ),
            (
                "[reminders]\nemail = true\n",
                "email = true",
                "[reminders] email",
            ),
            (
                "[calendar]\ncaldav-pass = \"x\"\n",
                "caldav-pass",
                "[calendar] caldav-pass",
            ),
        ] {
            let message = err_at(sections, needle, key);
            assert!(message.starts_with("unknown field"), "{message}");
        }
    }

    #[test]
    fn caldav_trusts_its_own_ca_file_only_with_a_url() {
        let pem = pem_file();
        let ca = format!("caldav-ca-file = \"{}\"", pem.path().display());
        let config = parse(&maildir_with(&format!(
            "[calendar]\ncaldav-url = \"https://dav.example.com/alex/\"\n{ca}\n"
        )))
        .unwrap();
        assert_eq!(
            config.calendar.caldav.unwrap().ca_file.as_deref(),
            Some(pem.path())
        );
        let message = err_at(
            &format!("[calendar]\n{ca}\n"),
            "caldav-ca-file",
            "[calendar] caldav-ca-file",
        );
        assert!(message.contains("only used with caldav-url"), "{message}");
    }

    #[test]
    fn caldav_logs_in_like_the_mailbox_and_keeps_secrets_out() {
        const URL: &str = "caldav-url = \"https://dav.example.com/alex/\"";
        let config = parse(&maildir_with(&format!(
            "[calendar]\n{URL}\ncaldav-user = \"alex\"\ncaldav-password-command = \"pass dav\"\n"
        )))
        .unwrap();
        let caldav = config.calendar.caldav.as_ref().unwrap();
        assert_eq!(
            caldav.login.as_ref().unwrap().credential,
            Credential::Password(PasswordSource::Command("pass dav".into()))
        );
        // No login at all is fine (a server on loopback, a public calendar).
        let config = parse(&maildir_with(&format!("[calendar]\n{URL}\n"))).unwrap();
        assert_eq!(config.calendar.caldav.unwrap().login, None);
        assert!(
            parse(&maildir_with(
                "[calendar]\ncaldav-url = \"http://127.0.0.1:5232/alex/\"\ncaldav-user = \"a\"\n\
                 caldav-password-env = \"P\"\n"
            ))
            .is_ok()
        );

        let message = err_at(
            &format!("[calendar]\n{URL}\ncaldav-user = \"alex\"\ncaldav-password = \"hunter2\"\n"),
            "caldav-password",
            "[calendar] caldav-password",
        );
        assert!(
            message.starts_with(
                "a password in the config file is refused; use caldav-password-command"
            ),
            "{message}"
        );
        assert!(!message.contains("hunter2"));
        let message = err_at(
            "[calendar]\ncaldav-url = \"https://alex:hunter2@dav.example.com/\"\n",
            "caldav-url",
            "[calendar] caldav-url",
        );
        assert!(
            message.starts_with("must not hold a user name or password: secrets stay out of this file; use caldav-user"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");
        let message = err_at(
            &format!("[calendar]\n{URL}\ncaldav-user = \"alex\"\n"),
            "caldav-user",
            "[calendar] caldav-user",
        );
        assert_eq!(
            message,
            "needs caldav-password-command, caldav-password-env or caldav-token-command to log in"
        );
        let message = err_at(
            &format!(
                "[calendar]\n{URL}\ncaldav-user = \"a\"\ncaldav-password-env = \"P\"\n\
                 caldav-token-command = \"oama access a\"\n"
            ),
            "caldav-token-command",
            "[calendar] caldav-token-command",
        );
        assert_eq!(
            message,
            "set only one of caldav-password-command, caldav-password-env and caldav-token-command"
        );
        let message = err_at(
            "[calendar]\ncaldav-user = \"alex\"\n",
            "caldav-user",
            "[calendar] caldav-user",
        );
        assert!(
            message.starts_with("only used with caldav-url"),
            "{message}"
        );
        let message = err_at(
            "[calendar]\ncaldav-url = \"http://dav.example.com/\"\ncaldav-user = \"a\"\n\
             caldav-password-env = \"P\"\n",
            "caldav-url",
            "[calendar] caldav-url",
        );
        assert!(
            message.starts_with("http sends the password unencrypted"),
            "{message}"
        );
        for (url, refusal) in [
            ("ftp://dav.example.com/", "ftp: URLs are not supported"),
            (
                "webcal://dav.example.com/",
                "write https:// (or http://) instead of webcal://",
            ),
            (
                "dav.example.com/alex",
                "is not a URL: relative URL without a base",
            ),
            ("https://", "is not a URL: empty host"),
        ] {
            let message = err_at(
                &format!("[calendar]\ncaldav-url = \"{url}\"\n"),
                "caldav-url",
                "[calendar] caldav-url",
            );
            assert!(message.starts_with(refusal), "{url}: {message}");
        }
    }

    #[test]
    fn busy_sources_must_be_readable_files_or_web_urls() {
        let message = err_at(
            "[calendar]\nbusy = [\n  \"https://example.com/busy.ics\",\n  \"/nonexistent/work.ics\",\n]\n",
            "work.ics",
            "[calendar] busy",
        );
        assert!(
            message.starts_with("cannot read /nonexistent/work.ics: "),
            "{message}"
        );
        let message = err_at(
            "[calendar]\nbusy = [\"file:///home/alex/work.ics\"]\n",
            "busy",
            "[calendar] busy",
        );
        assert!(
            message.starts_with("file: URLs are not supported"),
            "{message}"
        );
        // `~` expands like every other path in the file.
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("work.ics"), "").unwrap();
        let text = maildir_with("[calendar]\nbusy = [\"~/work.ics\"]\n");
        let home_env = |name: &str| (name == "HOME").then(|| home.path().as_os_str().to_owned());
        let config = Parser {
            text: &text,
            file: Path::new("/etc/pb/config.toml"),
            env: &home_env,
            account: None,
        }
        .parse()
        .unwrap();
        assert_eq!(
            config.calendar.busy,
            vec![BusySource::File(home.path().join("work.ics"))]
        );
    }

    #[test]
    fn schedules_list_their_next_firings_in_the_reps_zone() {
        let text = maildir_with("[reminders]\nat = \"0 0 9 * * * 2020\"\n")
            .replace("Europe/London", "America/New_York");
        let config = parse(&text).unwrap();
        assert_eq!(config.business.tz, Tz::America__New_York);
        // Friday 2026-11-27 12:00 UTC is 07:00 in New York.
        let now = DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            config.describe_schedules(now),
            "[follow-up] at = \"0 9 * * 1-5\", next in America/New_York:\n\
             \x20 Fri 2026-11-27 09:00 EST (-05:00)\n\
             \x20 Mon 2026-11-30 09:00 EST (-05:00)\n\
             \x20 Tue 2026-12-01 09:00 EST (-05:00)\n\
             [reminders] at = \"0 0 9 * * * 2020\", next in America/New_York:\n\
             \x20 never again\n"
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
        assert!(
            described.contains(
                "call slots:       3 of 30 min, no invite attached; no busy times configured\n"
            ),
            "{described}"
        );
    }

    #[test]
    fn a_web_section_listens_on_loopback_by_default() {
        let config = parse(&format!("{}[web]\n", with_mailbox(MAILDIR))).unwrap();
        let web = config.web.expect("[web] turns the page on");
        assert_eq!(web.listen, DEFAULT_WEB_LISTEN.parse().unwrap());
        assert_eq!(web.tls, None);
        assert!(parse(&with_mailbox(MAILDIR)).unwrap().web.is_none());
        let v6 = parse(&format!(
            "{}[web]\nlisten = \"[::1]:9000\"\n",
            with_mailbox(MAILDIR)
        ));
        assert_eq!(v6.unwrap().web.unwrap().listen.port(), 9000);
    }

    #[test]
    fn a_web_page_beyond_loopback_is_refused_without_tls() {
        let text = format!(
            "{}[web]\nlisten = \"0.0.0.0:8025\"\n",
            with_mailbox(MAILDIR)
        );
        let line = line_of(&text, "listen");
        let message = err(&text);
        assert!(
            message.starts_with(&format!("/etc/pb/config.toml line {line}: [web] listen: ")),
            "{message}"
        );
        assert!(
            message.contains("only served over TLS; set tls-cert and tls-key"),
            "{message}"
        );
        let text = format!(
            "{}[web]\nlisten = \"localhost:8025\"\n",
            with_mailbox(MAILDIR)
        );
        assert!(
            err(&text).contains("[web] listen: \"localhost:8025\" is not an IP address and port"),
            "{}",
            err(&text)
        );
    }

    #[test]
    fn a_web_page_beyond_loopback_is_served_with_a_readable_certificate_and_key() {
        let dir = tempfile::tempdir().unwrap();
        // Only the PEM framing is checked at load time; rustls reads the contents when serving.
        let cert = dir.path().join("cert.pem");
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let web = |extra: &str| {
            format!(
                "{}[web]\nlisten = \"0.0.0.0:8443\"\n{extra}",
                with_mailbox(MAILDIR)
            )
        };
        let both = format!(
            "tls-cert = \"{}\"\ntls-key = \"{}\"\n",
            cert.display(),
            key.display()
        );
        let config = parse(&web(&both)).unwrap().web.unwrap();
        assert_eq!(
            config.tls,
            Some(WebTls {
                cert: cert.clone(),
                key: key.clone()
            })
        );

        let text = web(&format!("tls-cert = \"{}\"\n", cert.display()));
        assert_eq!(
            err(&text),
            format!(
                "/etc/pb/config.toml line {}: [web] tls-cert: needs tls-key as well",
                line_of(&text, "tls-cert")
            )
        );
        // A certificate where the key should be: refused without showing what the file holds.
        let text = web(&format!(
            "tls-cert = \"{}\"\ntls-key = \"{}\"\n",
            cert.display(),
            cert.display()
        ));
        let message = err(&text);
        assert!(message.contains("[web] tls-key: "), "{message}");
        assert!(message.contains("holds no PEM private key"), "{message}");
        assert!(!message.contains("AAAA"), "{message}");
    }

    // ---- [templates] pack ----

    fn pack_dir(manifest: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("templates")).unwrap();
        std::fs::write(dir.path().join("pack.toml"), manifest).unwrap();
        dir
    }

    fn with_pack(pack: &Path, extra: &str) -> String {
        with_mailbox("kind = \"maildir\"\npath = \"/m\"")
            + &format!("[templates]\npack = \"{}\"\n{extra}", pack.display())
    }

    #[test]
    fn a_pack_with_a_templates_dir_or_rules_file_is_refused_at_their_line() {
        let pack = pack_dir("name = \"emea\"\nversion = \"1\"\n");
        let config = parse(&with_pack(pack.path(), "")).unwrap();
        assert_eq!(config.templates_pack, Some(pack.path().to_path_buf()));
        assert_eq!(config.templates_dir, None);
        for (extra, key) in [
            ("dir = \"/t\"\n", "[templates] dir"),
            ("[classifier]\nrules = \"/r.toml\"\n", "[classifier] rules"),
        ] {
            let text = with_pack(pack.path(), extra);
            let needle = extra.lines().last().unwrap();
            match parse(&text) {
                Err(Error::Invalid {
                    line,
                    key: got,
                    message,
                    ..
                }) => {
                    assert_eq!(line, Some(line_of(&text, needle)), "{key}");
                    assert_eq!(got, key);
                    assert!(message.contains("[templates] pack"), "{message}");
                }
                other => panic!("{key}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_packs_follow_up_policy_fills_in_what_the_rep_leaves_out() {
        let pack = pack_dir(
            "name = \"emea\"\nversion = \"1\"\n[follow-up]\nafter-business-days = 5\n\
             max-follow-ups = 1\n[follow-up.after-business-days-by-category]\nrfp = 8\nrfq = 2\n",
        );
        let config = parse(&with_pack(pack.path(), "")).unwrap();
        assert_eq!(config.follow_up.after_business_days, 5);
        assert_eq!(config.follow_up.max_follow_ups, 1);
        assert_eq!(config.follow_up.after_business_days(Category::Rfp), 8);

        let own = "[follow-up]\nmax-follow-ups = 3\n\
                   [follow-up.after-business-days-by-category]\nrfq = 4\n";
        let config = parse(&with_pack(pack.path(), own)).unwrap();
        assert_eq!(config.follow_up.max_follow_ups, 3, "the rep's own key wins");
        assert_eq!(config.follow_up.after_business_days, 5);
        assert_eq!(config.follow_up.after_business_days(Category::Rfp), 8);
        assert_eq!(config.follow_up.after_business_days(Category::Rfq), 4);
    }

    #[test]
    fn a_broken_pack_names_its_own_file_line_and_key() {
        let pack = pack_dir("name = \"emea\"\nversion = \"1\"\n[follow-up]\nmax-follow-ups = 99\n");
        let error = parse(&with_pack(pack.path(), "")).unwrap_err().to_string();
        let manifest = pack.path().join("pack.toml");
        assert!(
            error.starts_with(&format!(
                "{} line 4: [follow-up] max-follow-ups: ",
                manifest.display()
            )),
            "{error}"
        );
        std::fs::write(&manifest, "name = \"emea\"\nversion = \"1\n").unwrap();
        let error = parse(&with_pack(pack.path(), "")).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{} line 2: ", manifest.display())),
            "{error}"
        );
        // The rest of the manifest is checked when the pack is loaded to draft.
        std::fs::write(&manifest, "name = \"emea\"\nversoin = \"1\"\n").unwrap();
        assert!(parse(&with_pack(pack.path(), "")).is_ok());

        let text = with_pack(Path::new("/nowhere/pack"), "");
        let error = parse(&text).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "/etc/pb/config.toml line {}: [templates] pack: cannot read template pack file \
                 /nowhere/pack/pack.toml",
                line_of(&text, "pack =")
            )),
            "{error}"
        );
    }
}

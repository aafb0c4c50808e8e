//! Use cases behind the binary's commands: each takes validated inputs, wires the core to the
//! adapters, and reports with anyhow.

pub mod approval;
pub mod client;
pub mod daemon;
pub mod demo;
pub mod doctor;
pub mod eval;
pub mod followups;
pub mod heap;
pub mod inspect;
pub mod install;
pub mod logging;
pub mod oauth2;
pub mod outbox;
pub mod pack;
pub mod pipeline;
pub mod reload;
pub mod reminders;
pub mod scan;
pub mod send;
pub mod slots;
pub mod status;
pub mod systemd;
pub mod watch;
pub mod web;

use crate::adapters::calendar::CalDav;
use crate::adapters::imap::ImapSettings;
use crate::adapters::maildir::{Folders, Maildir};
use crate::adapters::pack::{Manifest, Pack};
use crate::adapters::secret::{self, Auth};
use crate::adapters::store::Store;
use crate::config::{Config, Credential, Login, MailboxAccess, PasswordSource, Server};
use crate::core::classify::FeedbackModel;
use anyhow::{Context, Result, bail};
use pipeline::Pipeline;
use std::sync::Arc;
use std::time::Duration;

/// Everything a mailbox command needs, opened from one validated config.
pub struct Session {
    pub maildir: Maildir,
    pub store: Store,
    /// Shared: a running service replaces it on reload.
    pub pipeline: Arc<Pipeline>,
    pub keeping: followups::Timekeeping,
}

impl Session {
    pub fn open(config: &Config) -> Result<Session> {
        let maildir = match &config.mailbox.access {
            MailboxAccess::Maildir { path } => open_maildir(path, config)?,
            MailboxAccess::Imap(_) => bail!(
                "cannot open the mailbox: IMAP support arrives in the next release; \
                 set [mailbox] kind = \"maildir\" for now"
            ),
        };
        let store = Store::open_account(&config.state_dir, &config.account)?;
        let pipeline = Arc::new(trained_pipeline(config, &store)?);
        Ok(Session {
            maildir,
            store,
            pipeline,
            keeping: followups::Timekeeping::of(config),
        })
    }

    /// One pass over the Maildir inbox.
    pub fn scan(&mut self, now: chrono::DateTime<chrono::Utc>) -> Result<scan::ScanReport> {
        scan::scan(
            &self.maildir,
            &mut self.store,
            &self.pipeline,
            &self.keeping,
            now,
        )
    }
}

/// One pass over the configured mailbox (the Maildir, or the IMAP inbox from where the last pass
/// stopped), drafts placed in its Drafts folder.
pub fn scan_once(config: &Config, now: chrono::DateTime<chrono::Utc>) -> Result<scan::ScanReport> {
    slots::refresh_before_scan(config, now)?;
    match &config.mailbox.access {
        MailboxAccess::Maildir { .. } => Session::open(config)?.scan(now),
        MailboxAccess::Imap(server) => {
            let settings = imap_settings(server, Duration::from_secs(60))?;
            let mut store = Store::open_account(&config.state_dir, &config.account)?;
            let pipeline = trained_pipeline(config, &store)?;
            let options = watch::WatchOptions::of(config);
            block_on(watch::scan_once(&settings, &options, &mut store, &pipeline))?
        }
    }
}

/// Waits, without blocking the thread, for the lock on `file` (a store's
/// [`Store::lock_file`], named for the activity); held until the returned file is dropped.
pub(crate) async fn take_turn(file: Option<std::fs::File>) -> Result<Option<std::fs::File>> {
    let Some(file) = file else {
        return Ok(None);
    };
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(anyhow::Error::from(error).context("cannot take a state lock"));
            }
        }
    }
}

/// Runs one async operation to completion from the synchronous commands.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}

/// The Maildir at `path` with the config's Drafts and Sent folder names.
pub fn open_maildir(path: &std::path::Path, config: &Config) -> Result<Maildir> {
    let folders = Folders {
        drafts: config.mailbox.drafts_folder.clone(),
        sent: config.mailbox.sent_folder.clone(),
    };
    Ok(Maildir::open_with(path, &folders)?)
}

/// The account among `configs` whose store `holds` a draft or reminder (their ids are unique
/// across the accounts sharing the store); with one account, that one, unasked.
pub fn account_holding(
    configs: &[Config],
    holds: impl Fn(&Store) -> Result<bool>,
) -> Result<Option<&Config>> {
    if let [one] = configs {
        return Ok(Some(one));
    }
    for config in configs {
        if holds(&Store::open_account(&config.state_dir, &config.account)?)? {
            return Ok(Some(config));
        }
    }
    Ok(None)
}

/// The pipeline with the rep's own feedback (approvals, "not procurement" rejections) applied:
/// what every command that scans the mailbox classifies with.
pub fn trained_pipeline(config: &Config, store: &Store) -> Result<Pipeline> {
    let feedback = FeedbackModel::train(&store.feedback_examples()?);
    Ok(pipeline_for(config)?.with_feedback(feedback))
}

/// The analysis pipeline a config describes (identity, rules, templates, limits): a team pack's
/// templates and rules, read now; else the configured directory and rules file; else the built-in
/// pack.
pub fn pipeline_for(config: &Config) -> Result<Pipeline> {
    let build = |rules: Option<&std::path::Path>, templates: Option<&std::path::Path>| {
        Pipeline::new(
            config.identity.clone(),
            config.timezone,
            rules,
            templates,
            usize::try_from(config.max_message_bytes).unwrap_or(usize::MAX),
        )
    };
    if let Some(dir) = &config.templates_pack {
        let pack = Pack::load(dir)?;
        let pipeline = build(pack.rules.as_deref(), Some(&pack.templates_dir))
            .with_context(|| format!("cannot load template pack {}", dir.display()))?;
        return Ok(pipeline.from_pack(pack.manifest.label));
    }
    let pipeline = build(
        config.classifier_rules.as_deref(),
        config.templates_dir.as_deref(),
    )?;
    Ok(
        if config.templates_dir.is_none() && config.classifier_rules.is_none() {
            pipeline.from_pack(Manifest::builtin().label)
        } else {
            pipeline
        },
    )
}

/// The classifier rules file `config` classifies with: its template pack's, else `[classifier]
/// rules`; `None` for the built-in rules.
pub fn rules_path(config: &Config) -> Result<Option<std::path::PathBuf>> {
    Ok(match &config.templates_pack {
        Some(dir) => Pack::load(dir)?.rules,
        None => config.classifier_rules.clone(),
    })
}

/// The credentials a login needs, fetched now from the command or environment the config names.
pub fn resolve_auth(login: &Login, host: &str) -> Result<Auth> {
    let fetched = match &login.credential {
        Credential::Password(PasswordSource::Command(command)) => secret::from_command(command)
            .map(|password| Auth::Password {
                user: login.user.clone(),
                password,
            }),
        Credential::Password(PasswordSource::Env(name)) => {
            secret::from_env(name).map(|password| Auth::Password {
                user: login.user.clone(),
                password,
            })
        }
        Credential::OAuth2TokenCommand(command) => {
            secret::from_command(command).map(|token| Auth::XOAuth2 {
                user: login.user.clone(),
                token,
            })
        }
        Credential::OAuth2(settings) => {
            return oauth2::access_token(settings)
                .map(|token| Auth::XOAuth2 {
                    user: login.user.clone(),
                    token,
                })
                .with_context(|| {
                    format!(
                        "cannot get an OAuth2 access token of {} for {host}",
                        login.user
                    )
                });
        }
    };
    fetched.with_context(|| format!("cannot get the credentials of {} for {host}", login.user))
}

/// The CalDAV calendar the config names, with its credentials fetched now: a password, or with
/// `caldav-token-command` an OAuth2 bearer token.
pub fn caldav(config: &Config) -> Result<Option<CalDav>> {
    let Some(settings) = &config.calendar.caldav else {
        return Ok(None);
    };
    let ca = settings.ca_file.as_deref();
    let caldav = match &settings.login {
        None => CalDav::new(&settings.url, None, None, ca)?,
        Some(login) => match resolve_auth(login, &settings.url)? {
            Auth::Password { user, password } => {
                CalDav::new(&settings.url, Some(user), Some(password), ca)?
            }
            Auth::XOAuth2 { user, token } => {
                CalDav::new(&settings.url, Some(user), None, ca)?.with_bearer_token(token)
            }
        },
    };
    Ok(Some(caldav))
}

/// [`imap_settings`] from async code: the credentials are fetched on the blocking pool, since a
/// password command or an OAuth2 token refresh may take seconds and the daemon's one thread
/// serves every account.
pub async fn imap_settings_async(server: &Server, timeout: Duration) -> Result<ImapSettings> {
    let server = server.clone();
    tokio::task::spawn_blocking(move || imap_settings(&server, timeout))
        .await
        .context("the credential fetch panicked")?
}

/// IMAP connection settings from the config, with the credentials fetched now.
pub fn imap_settings(server: &Server, timeout: Duration) -> Result<ImapSettings> {
    let login = server
        .login
        .as_ref()
        .with_context(|| format!("cannot log in to {}: no user configured", server.host))?;
    Ok(ImapSettings {
        host: server.host.clone(),
        port: server.port,
        security: server.security,
        auth: resolve_auth(login, &server.host)?,
        ca_file: server.tls.ca_file.clone(),
        accept_invalid_certs: server.tls.accept_invalid_certs,
        timeout,
    })
}

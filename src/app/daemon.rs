//! `pushback run`: the long-running service. The mailbox watcher (IMAP IDLE, or a Maildir polled
//! on an interval), the outbox sender, the reminder task and the status socket run as tokio tasks
//! under one shutdown signal (SIGTERM, what systemd sends, or SIGINT): each finishes the message in
//! hand, leaves the rest for the next start, and the process exits 0. Under systemd
//! (Type=notify) it says READY=1 once the mailbox is open, STATUS= lines as the watcher reports,
//! WATCHDOG=1 while the watcher's lease holds, and RELOADING=1 ... READY=1 around a reload on
//! SIGHUP; a change in the templates directory is reloaded as well (see `reload`). With several
//! accounts each one has its own watcher, sender, reminder task and reloader; they share the
//! status socket, the approval page and the shutdown, and one account that cannot run is logged
//! and shown while the others go on.

use crate::adapters::store::Store;
use crate::app::pipeline::SharedPipeline;
use crate::app::reload::Reloader;
use crate::app::reminders::{self, SystemClock};
use crate::app::status::{Health, Phase, ServiceState, StatusSocket, status_line};
use crate::app::{Session, send, systemd};
use crate::config::{Config, DEFAULT_ACCOUNT, MailboxAccess, Server};
use anyhow::{Context, Result, anyhow, bail};
use chrono::Utc;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Interval;
use tracing::Instrument;

/// How long the watcher may take to report for the first time (the state store opened, the
/// password command run, the first login) before the watchdog pings stop.
const STARTUP: Duration = Duration::from_secs(5 * 60);
/// A Maildir scan runs on the service's one thread; beyond this one counts as stuck.
const MAILDIR_SCAN_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Resolves when the process is asked to stop.
pub async fn shutdown_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM: finishing the message in hand"),
        result = tokio::signal::ctrl_c() => {
            result.context("cannot listen for SIGINT")?;
            tracing::info!("SIGINT: finishing the message in hand");
        }
    }
    Ok(())
}

/// Runs one account until `stop` resolves.
pub async fn run(config: Config, stop: impl Future<Output = Result<()>>) -> Result<()> {
    run_accounts(vec![config], stop).await
}

/// Runs every account in `configs` (at least one; they share the state directory, the status
/// socket, the approval page and the log filter, so those come from the first) until `stop`
/// resolves. An account that cannot start, or whose watcher gives up, is logged and shown in
/// `pushback status` while the others go on; a SIGHUP tries it again. With one account such a
/// failure ends the service, as it always did.
pub async fn run_accounts(
    configs: Vec<Config>,
    stop: impl Future<Output = Result<()>>,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // First of all: an early SIGHUP must reload, not kill (its default action).
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let Some(shared) = configs.first().cloned() else {
        bail!("cannot run without an account in the config");
    };
    let alone = configs.len() == 1;
    crate::app::logging::use_config_filter(&shared.log_filter);
    systemd::status("opening the state store and loading the templates");
    let status_socket = StatusSocket::bind(&shared.status_socket)?;
    let (shutdown_tx, _) = watch::channel(false);
    let mut accounts = Vec::with_capacity(configs.len());
    let mut answers = Vec::with_capacity(configs.len());
    for config in configs {
        let health = Arc::new(Health::new(&config, STARTUP, Utc::now()));
        answers.push((
            health.clone(),
            Store::open_account(&config.state_dir, &config.account)?,
        ));
        let mut account = Account {
            config,
            health,
            tasks: None,
        };
        if let Err(error) = account.start(&shutdown_tx) {
            if alone {
                return Err(error);
            }
            account.failed(&error);
        }
        accounts.push(account);
    }
    if accounts.iter().all(|a| a.tasks.is_none()) {
        bail!("cannot start any account; see the errors above");
    }
    // The approval page going down (its port taken, say) is logged at once; the rest of the
    // service keeps drafting and sending.
    let web = tokio::spawn({
        let configs: Vec<Config> = accounts.iter().map(|a| a.config.clone()).collect();
        let shutdown = shutdown_tx.subscribe();
        async move {
            if let Err(error) = crate::app::web::serve_accounts(configs, shutdown).await {
                tracing::error!("the approval page is down: {error:#}");
            }
        }
    });
    let status = tokio::spawn(status_socket.serve(answers, shutdown_tx.subscribe()));
    tracing::info!(
        file = ?shared.file,
        status = %shared.status_socket.display(),
        accounts = %accounts.iter().map(|a| a.config.account.as_str()).collect::<Vec<_>>().join(", "),
        "pushback running; drafts wait for your approval"
    );
    tokio::pin!(stop);
    let mut states: Vec<_> = accounts.iter().map(|a| a.health.subscribe()).collect();
    let mut watchdog = systemd::watchdog_period().map(tokio::time::interval);
    let mut ready = false;
    let mut withheld = false;
    // Every check changes the state, rarely the line: systemd hears each line once.
    let mut said = String::new();
    loop {
        tokio::select! {
            result = &mut stop => {
                result?;
                break;
            }
            event = account_event(&mut accounts) => match event {
                AccountEvent::WatcherEnded(index, joined) => {
                    if let Some(tasks) = &mut accounts[index].tasks {
                        tasks.watcher = None;
                    }
                    let ended = joined.context("the watcher task failed").and_then(|result| result);
                    if alone {
                        return ended;
                    }
                    let error = ended.err().unwrap_or_else(|| anyhow!("the watcher stopped"));
                    accounts[index].failed(&error);
                    if accounts.iter().all(|a| a.tasks.is_none()) {
                        bail!("no account is running any more; see the errors above");
                    }
                }
                AccountEvent::TemplatesChanged(index) => {
                    if let Some(tasks) = &mut accounts[index].tasks {
                        tasks.reloader.reload_templates();
                    }
                }
            },
            _ = hangup.recv() => {
                // Before READY there is no running state to reload from systemd's point of view.
                for account in &accounts {
                    account.health.set_phase(Phase::Reloading);
                }
                if ready {
                    systemd::reloading(&service_line(&accounts));
                }
                for account in &mut accounts {
                    account.reload_or_restart(&shutdown_tx);
                }
                warn_of_other_accounts(&shared, &accounts);
                for account in &accounts {
                    account.health.set_phase(if ready { Phase::Running } else { Phase::Starting });
                }
                if ready {
                    systemd::ready(&service_line(&accounts));
                }
            }
            _ = any_changed(&mut states) => {
                // Waiting for `pushback login` is a running service too: systemd must not kill
                // it (and the other accounts) for want of READY.
                let up = accounts.iter().any(|a| {
                    let mailbox = a.health.snapshot().mailbox;
                    mailbox.connected || mailbox.login_needed
                });
                if !ready && up {
                    ready = true;
                    for account in &accounts {
                        account.health.set_phase(Phase::Running);
                    }
                    said = service_line(&accounts);
                    systemd::ready(&said);
                    // Start-up's scratch memory is free now; an idle daemon should not hold it.
                    crate::app::heap::give_back_freed_memory();
                } else {
                    let line = service_line(&accounts);
                    if line != said {
                        systemd::status(&line);
                        said = line;
                    }
                }
            }
            _ = tick(&mut watchdog) => {
                let now = Instant::now();
                let overdue: Vec<&str> = accounts
                    .iter()
                    .filter(|a| a.tasks.is_some() && !a.health.is_alive(now))
                    .map(|a| a.config.account.as_str())
                    .collect();
                if overdue.is_empty() {
                    systemd::watchdog();
                    withheld = false;
                } else if !withheld {
                    tracing::error!(
                        accounts = %overdue.join(", "),
                        "the mailbox watcher is overdue: no watchdog ping, so systemd restarts \
                         pushback"
                    );
                    withheld = true;
                }
            }
        }
    }
    for account in &accounts {
        account.health.set_phase(Phase::Stopping);
    }
    systemd::stopping(&service_line(&accounts));
    let _ = shutdown_tx.send(true);
    for account in accounts {
        if let Some(tasks) = account.tasks {
            tasks.finish().await?;
        }
    }
    web.await.context("the approval page failed")?;
    status.await.context("the status task failed")??;
    tracing::info!("pushback stopped");
    Ok(())
}

/// One account of the service: its config, its health and, while it runs, its tasks.
struct Account {
    config: Config,
    health: Arc<Health>,
    /// `None` while the account cannot run (it failed to start, or its watcher gave up).
    tasks: Option<AccountTasks>,
}

/// The tasks one account runs: its watcher, outbox sender and reminders, and its reloader.
struct AccountTasks {
    reloader: Reloader,
    /// `None` once it ended (its result was taken).
    watcher: Option<JoinHandle<Result<()>>>,
    sender: JoinHandle<Result<()>>,
    reminders: JoinHandle<Result<()>>,
}

impl Account {
    /// Loads the account's templates and rules and starts its tasks.
    fn start(&mut self, shutdown_tx: &watch::Sender<bool>) -> Result<()> {
        let config = &self.config;
        // Every line an account's tasks log names the account; a single-account config's lines
        // stay as they were.
        let span = if config.account == DEFAULT_ACCOUNT {
            tracing::Span::none()
        } else {
            tracing::info_span!("account", name = %config.account)
        };
        let _entered = span.clone().entered();
        let store = Store::open_account(&config.state_dir, &config.account)?;
        let first = crate::app::trained_pipeline(config, &store)?;
        self.health
            .drafting_with(first.pack(), config.templates_pack.clone());
        let (pipelines, pipeline) = watch::channel(Arc::new(first));
        let reloader = Reloader::new(config.clone(), store, pipelines, self.health.clone())?;
        // A sent reply starts its follow-up clock and a buyer's answer stops it: the sender and
        // the watcher wake the reminder task.
        let changed = Arc::new(Notify::new());
        let watcher = tokio::spawn(
            watch_mailbox(
                config.clone(),
                pipeline.clone(),
                changed.clone(),
                self.health.clone(),
                shutdown_tx.subscribe(),
            )
            .instrument(span.clone()),
        );
        let sender = tokio::spawn(
            send_approved(config.clone(), changed.clone(), shutdown_tx.subscribe())
                .instrument(span.clone()),
        );
        let reminders = tokio::spawn(
            reminders::run(
                config.clone(),
                Arc::new(SystemClock),
                pipeline,
                changed,
                shutdown_tx.subscribe(),
            )
            .instrument(span),
        );
        self.tasks = Some(AccountTasks {
            reloader,
            watcher: Some(watcher),
            sender,
            reminders,
        });
        Ok(())
    }

    /// The account cannot run: said in the log and in `pushback status`; its other tasks stop.
    fn failed(&mut self, error: &anyhow::Error) {
        tracing::error!(
            account = %self.config.account,
            "account {} is not running (the others are; fix it and reload with SIGHUP): {error:#}",
            self.config.account
        );
        self.health.disconnected(format!("{error:#}"), Utc::now());
        if let Some(tasks) = self.tasks.take() {
            tasks.sender.abort();
            tasks.reminders.abort();
        }
    }

    /// SIGHUP: a running account reloads its config and templates; one that is not running is
    /// started again from the file as it is now.
    fn reload_or_restart(&mut self, shutdown_tx: &watch::Sender<bool>) {
        if let Some(tasks) = &mut self.tasks {
            tasks.reloader.reload_config();
            return;
        }
        let reread = self
            .config
            .file
            .as_deref()
            .context("the built-in demo configuration has no file to reload")
            .and_then(|file| {
                Ok(crate::config::Accounts::load(file)?.one(Some(&self.config.account))?)
            });
        match reread {
            Ok(config) => self.config = config,
            Err(error) => return self.failed(&error),
        }
        match self.start(shutdown_tx) {
            Ok(()) => tracing::info!(account = %self.config.account, "account started again"),
            Err(error) => self.failed(&error),
        }
    }
}

impl AccountTasks {
    async fn finish(self) -> Result<()> {
        if let Some(watcher) = self.watcher {
            watcher.await.context("the watcher task failed")??;
        }
        self.sender.await.context("the outbox task failed")??;
        self.reminders.await.context("the reminder task failed")??;
        Ok(())
    }
}

/// Something one account's tasks need the service to handle.
enum AccountEvent {
    /// Its watcher returned (it only does when it cannot start at all).
    WatcherEnded(usize, Result<Result<()>, tokio::task::JoinError>),
    /// Its templates directory changed and the edits settled.
    TemplatesChanged(usize),
}

/// The first event of any running account; never, while none runs.
async fn account_event(accounts: &mut [Account]) -> AccountEvent {
    let mut events: Vec<Pin<Box<dyn Future<Output = AccountEvent> + '_>>> = Vec::new();
    for (index, account) in accounts.iter_mut().enumerate() {
        let Some(AccountTasks {
            reloader, watcher, ..
        }) = account.tasks.as_mut()
        else {
            continue;
        };
        if let Some(watcher) = watcher.as_mut() {
            events.push(Box::pin(async move {
                AccountEvent::WatcherEnded(index, watcher.await)
            }));
        }
        events.push(Box::pin(async move {
            reloader.templates_changed().await;
            AccountEvent::TemplatesChanged(index)
        }));
    }
    if events.is_empty() {
        return std::future::pending().await;
    }
    futures::future::select_all(events).await.0
}

/// Resolves when any account's state changed.
async fn any_changed(states: &mut [watch::Receiver<ServiceState>]) {
    let changes: Vec<_> = states.iter_mut().map(|s| Box::pin(s.changed())).collect();
    // A closed channel (its health dropped) never changes again.
    match futures::future::select_all(changes).await.0 {
        Ok(()) => {}
        Err(_) => std::future::pending().await,
    }
}

/// Accounts added to or removed from the file are not started or stopped by a reload: say so.
fn warn_of_other_accounts(shared: &Config, accounts: &[Account]) {
    let Some(file) = &shared.file else {
        return;
    };
    // An unreadable file was already reported by each account's reload.
    let Ok(in_file) = crate::config::Accounts::load(file) else {
        return;
    };
    let running: Vec<&str> = accounts.iter().map(|a| a.config.account.as_str()).collect();
    if in_file.names() != running {
        tracing::warn!(
            "the accounts in {} are now {}; adding or removing an account takes effect when \
             pushback is restarted (running: {})",
            file.display(),
            in_file.names().join(", "),
            running.join(", ")
        );
    }
}

/// The STATUS= line: the account's, or with several, each account's prefixed by its name.
fn service_line(accounts: &[Account]) -> String {
    match accounts {
        [one] => status_line(&one.health.snapshot()),
        several => several
            .iter()
            .map(|a| {
                format!(
                    "{}: {}",
                    a.config.account,
                    status_line(&a.health.snapshot())
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// The next watchdog tick; never, when systemd expects no pings.
async fn tick(watchdog: &mut Option<Interval>) {
    match watchdog {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Maildir: a scan and an outbox flush every poll interval.
async fn watch_maildir(
    config: Config,
    pipeline: SharedPipeline,
    changed: Arc<Notify>,
    health: Arc<Health>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let interval = config.mailbox.sync.poll_interval;
    let mut session = Session::open(&config)?;
    health.connected(Utc::now());
    loop {
        health.alive_for(MAILDIR_SCAN_WINDOW);
        session.pipeline = pipeline.borrow().clone();
        match session.scan(Utc::now()) {
            Ok(report) => {
                if !report.findings.is_empty() {
                    tracing::info!(
                        new = report.findings.len(),
                        drafts = report
                            .findings
                            .iter()
                            .filter(|f| f.draft_id.is_some())
                            .count(),
                        "scanned the maildir"
                    );
                }
                health.checked(Utc::now());
            }
            Err(error) => tracing::warn!("cannot scan the maildir: {error:#}"),
        }
        changed.notify_one();
        health.alive_for(interval + MAILDIR_SCAN_WINDOW);
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        }
    }
}

/// How often the outbox looks for approved drafts (approval may come from another process).
const OUTBOX_INTERVAL: Duration = Duration::from_secs(10);

/// Sends what the rep approved: first settles sends a crash interrupted, then delivers every due
/// draft each interval. A failed round (server down) is logged and tried again next round.
async fn send_approved(
    config: Config,
    sent: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut store = Store::open_account(&config.state_dir, &config.account)?;
    let mut recovered = false;
    // Said once, not every round: a revoked OAuth2 login fails the same way until fixed.
    let mut last_failure = None;
    loop {
        match send::deliver(&config, &mut store, !recovered, Utc::now()).await {
            Ok((recovery, delivery)) => {
                recovered = true;
                last_failure = None;
                if !recovery.unknown.is_empty() {
                    tracing::warn!(
                        drafts = ?recovery.unknown,
                        "interrupted sends need your decision: `pushback drafts list`"
                    );
                }
                if !delivery.sent.is_empty() {
                    tracing::info!(drafts = ?delivery.sent, "sent approved replies");
                    sent.notify_one();
                }
            }
            Err(error) => {
                let text = format!("{error:#}");
                if last_failure.as_ref() != Some(&text) {
                    tracing::warn!("cannot send approved drafts now: {text}");
                    last_failure = Some(text);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(OUTBOX_INTERVAL) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        }
    }
}

/// The account's watcher: a Maildir scanned every poll interval, or an IMAP session.
async fn watch_mailbox(
    config: Config,
    pipeline: SharedPipeline,
    changed: Arc<Notify>,
    health: Arc<Health>,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    match &config.mailbox.access {
        MailboxAccess::Maildir { .. } => {
            watch_maildir(config, pipeline, changed, health, shutdown).await
        }
        MailboxAccess::Imap(server) => {
            let server = server.clone();
            watch_imap(server, config, pipeline, changed, health, shutdown).await
        }
    }
}

async fn watch_imap(
    server: Server,
    config: Config,
    pipeline: SharedPipeline,
    changed: Arc<Notify>,
    health: Arc<Health>,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let options = crate::app::watch::WatchOptions {
        mail_handled: Some(changed),
        ..crate::app::watch::WatchOptions::of(&config)
    };
    let mut store = Store::open_account(&config.state_dir, &config.account)?;
    store.relax_durability_for_scanning()?;
    // Logged in afresh at every (re)connection: an OAuth2 access token lasts an hour, and a
    // failed login (a revoked token) leaves the rest of the service running.
    let login = move || crate::app::imap_settings(&server, Duration::from_secs(60));
    crate::app::watch::run(login, &options, &mut store, &pipeline, &health, shutdown).await
}

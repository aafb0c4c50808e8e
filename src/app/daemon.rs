//! `pushback run`: the long-running service. The mailbox watcher (IMAP IDLE, or a Maildir polled
//! on an interval), the outbox sender, the reminder task and the status socket run as tokio tasks
//! under one shutdown signal (SIGTERM, what systemd sends, or SIGINT): each finishes the message in
//! hand, leaves the rest for the next start, and the process exits 0. Under systemd
//! (Type=notify) it says READY=1 once the mailbox is open, STATUS= lines as the watcher reports,
//! WATCHDOG=1 while the watcher's lease holds, and RELOADING=1 ... READY=1 around a reload on
//! SIGHUP; a change in the templates directory is reloaded as well (see `reload`).

use crate::adapters::store::Store;
use crate::app::pipeline::SharedPipeline;
use crate::app::reload::Reloader;
use crate::app::reminders::{self, SystemClock};
use crate::app::status::{Health, Phase, StatusSocket, status_line};
use crate::app::{Session, send, systemd};
use crate::config::{Config, MailboxAccess};
use anyhow::{Context, Result};
use chrono::Utc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};
use tokio::time::Interval;

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

/// Runs until `stop` resolves.
pub async fn run(config: Config, stop: impl Future<Output = Result<()>>) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // First of all: an early SIGHUP must reload, not kill (its default action).
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    crate::app::logging::use_config_filter(&config.log_filter);
    systemd::status("opening the state store and loading the templates");
    let health = Arc::new(Health::new(&config, STARTUP, Utc::now()));
    let status_socket = StatusSocket::bind(&config.status_socket)?;
    let store = Store::open(&config.state_dir)?;
    let first = crate::app::trained_pipeline(&config, &store)?;
    health.drafting_with(first.pack(), config.templates_pack.clone());
    let (pipelines, pipeline) = watch::channel(Arc::new(first));
    let mut reloader = Reloader::new(config.clone(), store, pipelines, health.clone())?;
    let (shutdown_tx, shutdown) = watch::channel(false);
    // A sent reply starts its follow-up clock and a buyer's answer stops it: the sender and the
    // watcher wake the reminder task.
    let changed = Arc::new(Notify::new());
    let mut watcher = match &config.mailbox.access {
        MailboxAccess::Maildir { .. } => tokio::spawn(watch_maildir(
            config.clone(),
            pipeline.clone(),
            changed.clone(),
            health.clone(),
            shutdown,
        )),
        MailboxAccess::Imap(_) => tokio::spawn(watch_imap(
            config.clone(),
            pipeline.clone(),
            changed.clone(),
            health.clone(),
            shutdown,
        )),
    };
    let sender = tokio::spawn(send_approved(
        config.clone(),
        changed.clone(),
        shutdown_tx.subscribe(),
    ));
    // The approval page going down (its port taken, say) is logged at once; the rest of the
    // service keeps drafting and sending.
    let web = tokio::spawn({
        let (config, shutdown) = (config.clone(), shutdown_tx.subscribe());
        async move {
            if let Err(error) = crate::app::web::serve(config, shutdown).await {
                tracing::error!("the approval page is down: {error:#}");
            }
        }
    });
    let reminders = tokio::spawn(reminders::run(
        config.clone(),
        Arc::new(SystemClock),
        pipeline,
        changed,
        shutdown_tx.subscribe(),
    ));
    let status = tokio::spawn(status_socket.serve(
        health.clone(),
        Store::open(&config.state_dir)?,
        shutdown_tx.subscribe(),
    ));
    tracing::info!(
        file = ?config.file,
        status = %config.status_socket.display(),
        "pushback running; drafts wait for your approval"
    );
    tokio::pin!(stop);
    let mut states = health.subscribe();
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
            // A watcher only returns on its own when it cannot start at all.
            joined = &mut watcher => {
                return joined.context("the watcher task failed")?;
            }
            _ = hangup.recv() => {
                // Before READY there is no running state to reload from systemd's point of view.
                if ready {
                    health.set_phase(Phase::Reloading);
                    systemd::reloading(&status_line(&health.snapshot()));
                }
                reloader.reload_config();
                if ready {
                    health.set_phase(Phase::Running);
                    systemd::ready(&status_line(&health.snapshot()));
                }
            }
            _ = reloader.templates_changed() => reloader.reload_templates(),
            _ = states.changed() => {
                let mailbox = states.borrow_and_update().mailbox.clone();
                // Waiting for `pushback login` is a running service too: systemd must not kill
                // it (and, with several accounts, the others) for want of READY.
                if !ready && (mailbox.connected || mailbox.login_needed) {
                    ready = true;
                    health.set_phase(Phase::Running);
                    said = status_line(&health.snapshot());
                    systemd::ready(&said);
                    // Start-up's scratch memory is free now; an idle daemon should not hold it.
                    crate::app::heap::give_back_freed_memory();
                } else {
                    let line = status_line(&health.snapshot());
                    if line != said {
                        systemd::status(&line);
                        said = line;
                    }
                }
            }
            _ = tick(&mut watchdog) => {
                if health.is_alive(Instant::now()) {
                    systemd::watchdog();
                    withheld = false;
                } else if !withheld {
                    tracing::error!(
                        "the mailbox watcher is overdue: no watchdog ping, so systemd restarts \
                         pushback"
                    );
                    withheld = true;
                }
            }
        }
    }
    health.set_phase(Phase::Stopping);
    systemd::stopping(&status_line(&health.snapshot()));
    let _ = shutdown_tx.send(true);
    watcher.await.context("the watcher task failed")??;
    sender.await.context("the outbox task failed")??;
    reminders.await.context("the reminder task failed")??;
    web.await.context("the approval page failed")?;
    status.await.context("the status task failed")??;
    tracing::info!("pushback stopped");
    Ok(())
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
    let mut store = Store::open(&config.state_dir)?;
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

async fn watch_imap(
    config: Config,
    pipeline: SharedPipeline,
    changed: Arc<Notify>,
    health: Arc<Health>,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let MailboxAccess::Imap(server) = &config.mailbox.access else {
        unreachable!("watch_imap is only started for an IMAP mailbox")
    };
    let options = crate::app::watch::WatchOptions {
        mail_handled: Some(changed),
        ..crate::app::watch::WatchOptions::of(&config)
    };
    let mut store = Store::open(&config.state_dir)?;
    store.relax_durability_for_scanning()?;
    // Logged in afresh at every (re)connection: an OAuth2 access token lasts an hour, and a
    // failed login (a revoked token) leaves the rest of the service running.
    let server = server.clone();
    let login = move || crate::app::imap_settings(&server, Duration::from_secs(60));
    crate::app::watch::run(login, &options, &mut store, &pipeline, &health, shutdown).await
}

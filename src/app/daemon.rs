//! `pushback run`: the long-running service. The mailbox watcher (IMAP IDLE, or a Maildir polled
//! on an interval) and the outbox sender run as tokio tasks under one shutdown signal (SIGTERM,
//! what systemd sends, or SIGINT): each finishes the message in hand, leaves the rest for the next
//! start, and the process exits 0.

use crate::adapters::store::Store;
use crate::app::reminders::{self, SystemClock};
use crate::app::{Session, send};
use crate::config::{Config, MailboxAccess};
use anyhow::{Context, Result};
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

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
    let (shutdown_tx, shutdown) = watch::channel(false);
    // A sent reply starts its follow-up clock and a buyer's answer stops it: the sender and the
    // watcher wake the reminder task.
    let changed = Arc::new(Notify::new());
    let mut watcher = match &config.mailbox.access {
        MailboxAccess::Maildir { .. } => {
            tokio::spawn(watch_maildir(config.clone(), changed.clone(), shutdown))
        }
        MailboxAccess::Imap(_) => {
            tokio::spawn(watch_imap(config.clone(), changed.clone(), shutdown))
        }
    };
    let sender = tokio::spawn(send_approved(
        config.clone(),
        changed.clone(),
        shutdown_tx.subscribe(),
    ));
    let web = tokio::spawn(crate::app::web::serve(
        config.clone(),
        shutdown_tx.subscribe(),
    ));
    let reminders = tokio::spawn(reminders::run(
        config.clone(),
        Arc::new(SystemClock),
        changed,
        shutdown_tx.subscribe(),
    ));
    tracing::info!(
        file = ?config.file,
        "pushback running; drafts wait for your approval"
    );
    tokio::select! {
        result = stop => result?,
        // A watcher only returns on its own when it cannot start at all.
        joined = async { (&mut watcher).await } => {
            return joined.context("the watcher task failed")?;
        }
    }
    let _ = shutdown_tx.send(true);
    watcher.await.context("the watcher task failed")??;
    sender.await.context("the outbox task failed")??;
    reminders.await.context("the reminder task failed")??;
    web.await.context("the approval page failed")??;
    tracing::info!("pushback stopped");
    Ok(())
}

/// Maildir: a scan and an outbox flush every poll interval.
async fn watch_maildir(
    config: Config,
    changed: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let interval = config.mailbox.sync.poll_interval;
    let mut session = Session::open(&config)?;
    loop {
        match session.scan(Utc::now()) {
            Ok(report) if !report.findings.is_empty() => tracing::info!(
                new = report.findings.len(),
                drafts = report
                    .findings
                    .iter()
                    .filter(|f| f.draft_id.is_some())
                    .count(),
                "scanned the maildir"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!("cannot scan the maildir: {error:#}"),
        }
        changed.notify_one();
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
    loop {
        match send::deliver(&config, &mut store, !recovered, Utc::now()).await {
            Ok((recovery, delivery)) => {
                recovered = true;
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
            Err(error) => tracing::warn!("cannot send approved drafts now: {error:#}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(OUTBOX_INTERVAL) => {}
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        }
    }
}

async fn watch_imap(
    config: Config,
    changed: Arc<Notify>,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let MailboxAccess::Imap(server) = &config.mailbox.access else {
        unreachable!("watch_imap is only started for an IMAP mailbox")
    };
    let settings = crate::app::imap_settings(server, Duration::from_secs(60))?;
    let options = crate::app::watch::WatchOptions {
        mail_handled: Some(changed),
        ..crate::app::watch::WatchOptions::of(&config)
    };
    let mut store = Store::open(&config.state_dir)?;
    store.relax_durability_for_scanning()?;
    // The watcher learns from the rep's feedback like every other scan.
    let pipeline = crate::app::trained_pipeline(&config, &store)?;
    crate::app::watch::run(&settings, &options, &mut store, &pipeline, shutdown).await
}

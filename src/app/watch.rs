//! The IMAP watcher: keeps the rep's inbox and the state store in step. One connection IDLEs on
//! the inbox, a second one fetches new mail and places drafts. On every wake it fetches only the
//! UIDs above the last one recorded; a changed UIDVALIDITY restarts the folder from the backfill
//! window, and the store's Message-ID check keeps that resync from drafting anything twice.
//! Network errors end the cycle; `run` reconnects with capped, jittered backoff and catches up,
//! so nothing that arrived during an outage is missed. Under `pushback run` it reports to the
//! service's `Health`: connected or not, each check, and a lease renewed before every wait for as
//! long as that wait may take, so a watcher stuck past its own timeouts stops the watchdog pings.

use crate::adapters::imap::{Backoff, ImapSettings, Session};
use crate::adapters::store::{Store, SyncProgress};
use crate::app::client;
use crate::app::followups::Timekeeping;
use crate::app::pipeline::{Pipeline, SharedPipeline};
use crate::app::scan::{self, Processed, ScanReport, Skipped};
use crate::app::status::Health;
use crate::config::Config;
use anyhow::{Context, Result};
use chrono::{Days, Utc};
use chrono_tz::Tz;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::watch;

/// The store's name for the IMAP inbox.
pub const IMAP_INBOX: &str = "imap:INBOX";
const INBOX: &str = "INBOX";

pub struct WatchOptions {
    pub backfill_days: u32,
    pub fetch_max_bytes: u32,
    pub idle_timeout: Duration,
    pub poll_interval: Duration,
    pub reconnect_max: Duration,
    pub drafts_folder: String,
    pub sent_folder: String,
    pub timezone: Tz,
    pub keeping: Timekeeping,
    /// Told after every wake (new mail scanned, the rep's client reconciled), so the reminder
    /// task plans and cancels follow-ups at once rather than at its next minute.
    pub mail_handled: Option<Arc<Notify>>,
}

impl WatchOptions {
    pub fn of(config: &Config) -> WatchOptions {
        let sync = &config.mailbox.sync;
        WatchOptions {
            backfill_days: sync.backfill_days,
            fetch_max_bytes: sync.fetch_max_bytes,
            idle_timeout: sync.idle_timeout,
            poll_interval: sync.poll_interval,
            reconnect_max: sync.reconnect_max,
            drafts_folder: config.mailbox.drafts_folder.clone(),
            sent_folder: config.mailbox.sent_folder.clone(),
            timezone: config.timezone,
            keeping: Timekeeping::of(config),
            mail_handled: None,
        }
    }
}

/// One catch-up pass (`pushback scan` on an IMAP mailbox): new inbox mail handled, drafts placed.
pub async fn scan_once(
    settings: &ImapSettings,
    options: &WatchOptions,
    store: &mut Store,
    pipeline: &Pipeline,
) -> Result<ScanReport> {
    let mut work = Session::connect(settings).await?;
    let folders = work
        .special_folders(&options.drafts_folder, &options.sent_folder)
        .await?;
    let (_never, running) = watch::channel(false);
    let mut report = ScanReport::default();
    catch_up(
        &mut work,
        &folders.drafts,
        options,
        store,
        pipeline,
        &running,
        None,
        Some(&mut report),
    )
    .await?;
    work.logout().await.ok();
    Ok(report)
}

/// How long a busy stretch (a few commands, each bounded by the network timeout) may take before
/// the watcher counts as stuck.
fn busy_window(settings: &ImapSettings) -> Duration {
    settings.timeout * 5
}

/// Reconnection state carried across cycles: the backoff, and the failure last logged, so an
/// outage is logged when it starts and when it ends, not on every attempt.
struct Connection {
    backoff: Backoff,
    last_failure: Option<String>,
}

/// How a watch cycle ended.
enum CycleEnd {
    Shutdown,
}

/// Watches until `shutdown` turns true, reconnecting after any failure. Every (re)connection logs
/// in with the settings and credentials `login` gives at that moment (a fresh OAuth2 access
/// token); `login` runs on the blocking pool, since a password command or a token endpoint may
/// take its time, and the service's other tasks share this thread. When the account needs `pushback login` again, it waits the longest reconnection
/// delay between tries instead of backing off from a second. Every wake handles mail with the
/// pipeline current at that moment.
pub async fn run(
    login: impl Fn() -> Result<ImapSettings> + Clone + Send + 'static,
    options: &WatchOptions,
    store: &mut Store,
    pipeline: &SharedPipeline,
    health: &Health,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut connection = Connection {
        backoff: Backoff::new(Duration::from_secs(1), options.reconnect_max),
        last_failure: None,
    };
    // Until the first login says otherwise: the daemon's network timeout, five times.
    let mut window = Duration::from_secs(5 * 60);
    loop {
        if *shutdown.borrow() {
            return Ok(());
        }
        health.alive_for(window);
        let credentials = tokio::task::spawn_blocking(login.clone())
            .await
            .context("the login task failed")?;
        let outcome = match credentials {
            Ok(settings) => {
                window = busy_window(&settings);
                health.alive_for(window);
                cycle(
                    &settings,
                    options,
                    store,
                    pipeline,
                    health,
                    &mut shutdown,
                    &mut connection,
                )
                .await
            }
            Err(error) => Err(error),
        };
        match outcome {
            Ok(CycleEnd::Shutdown) => return Ok(()),
            Err(error) => {
                let text = format!("{error:#}");
                let login_needed = crate::app::oauth2::needs_login(&error);
                if login_needed {
                    health.login_needed(text.clone(), Utc::now());
                } else {
                    health.disconnected(text.clone(), Utc::now());
                }
                if connection.last_failure.as_deref() != Some(text.as_str()) {
                    if login_needed {
                        tracing::error!("imap watcher cannot log in: {text}");
                    } else {
                        tracing::warn!("imap watcher disconnected, will reconnect: {text}");
                    }
                    connection.last_failure = Some(text);
                }
                let delay = if login_needed {
                    options.reconnect_max
                } else {
                    connection.backoff.next_delay(fastrand::f64())
                };
                health.alive_for(delay + window);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
    }
}

async fn cycle(
    settings: &ImapSettings,
    options: &WatchOptions,
    store: &mut Store,
    pipelines: &SharedPipeline,
    health: &Health,
    shutdown: &mut watch::Receiver<bool>,
    connection: &mut Connection,
) -> Result<CycleEnd> {
    let mut work = Session::connect(settings).await?;
    let folders = work
        .special_folders(&options.drafts_folder, &options.sent_folder)
        .await?;
    let mut idler = if work.capabilities().idle {
        let mut idler = Session::connect(settings).await?;
        idler.select(INBOX).await?;
        Some(idler)
    } else {
        None
    };
    match connection.last_failure.take() {
        Some(_) => tracing::warn!(host = %settings.host, "imap watcher reconnected"),
        None => {
            tracing::info!(host = %settings.host, drafts = %folders.drafts, "imap watcher connected")
        }
    }
    connection.backoff.reset();
    health.connected(Utc::now());
    // What the last reconcile saw; a wake that changed none of it skips the next one.
    let mut reconciled = None;
    loop {
        let pipeline = pipelines.borrow().clone();
        health.alive_for(busy_window(settings));
        catch_up(
            &mut work,
            &folders.drafts,
            options,
            store,
            &pipeline,
            shutdown,
            Some((health, busy_window(settings))),
            // Nothing kept per message: a backfill of any size runs in the same memory.
            None,
        )
        .await?;
        if *shutdown.borrow() {
            work.logout().await.ok();
            return Ok(CycleEnd::Shutdown);
        }
        // What the rep did in their own mail client since the last wake: edits, deletions, sends.
        client::reconcile(
            &mut work,
            &folders,
            store,
            pipeline.identity(),
            Utc::now(),
            &mut reconciled,
        )
        .await?;
        if let Some(handled) = &options.mail_handled {
            handled.notify_one();
        }
        health.checked(Utc::now());
        let wait = match idler {
            Some(_) => options.idle_timeout,
            None => options.poll_interval,
        };
        health.alive_for(wait + busy_window(settings));
        // New templates or rules end the wait too: a message a broken template held back is
        // drafted as soon as the fix is loaded, not at the next mail.
        let mut reloaded = pipelines.clone();
        reloaded.mark_unchanged();
        let mut stop = shutdown.clone();
        let interrupt = async move {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => {}
                _ = reloaded.changed() => {}
            }
        };
        match idler.take() {
            Some(session) => {
                let (session, _) = session.idle(options.idle_timeout, interrupt).await?;
                idler = Some(session);
            }
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(options.poll_interval) => {}
                    _ = interrupt => {}
                }
            }
        }
        if *shutdown.borrow() {
            work.logout().await.ok();
            return Ok(CycleEnd::Shutdown);
        }
    }
}

/// Handles every inbox message not handled yet, then places any unplaced draft; `report`, when
/// given (`pushback scan`), lists what was found. `lease`, when given, is renewed by its window
/// for every message handled: a backfill may take long, and is not stuck.
#[allow(clippy::too_many_arguments)]
async fn catch_up(
    work: &mut Session,
    drafts_folder: &str,
    options: &WatchOptions,
    store: &mut Store,
    pipeline: &Pipeline,
    shutdown: &watch::Receiver<bool>,
    lease: Option<(&Health, Duration)>,
    mut report: Option<&mut ScanReport>,
) -> Result<()> {
    place_drafts(work, drafts_folder, store).await?;
    let folder = work.select(INBOX).await?;
    let uids = match store.sync_state(IMAP_INBOX)? {
        Some(known) if known.uid_validity == folder.uid_validity => {
            work.uids_above(known.uid).await?
        }
        known => {
            if known.is_some() {
                tracing::warn!(
                    uid_validity = folder.uid_validity,
                    "the server renumbered the inbox (UIDVALIDITY changed): resyncing the backfill window; Message-IDs keep drafts from repeating"
                );
            }
            store.reset_sync(IMAP_INBOX, folder.uid_validity, Utc::now())?;
            let today = Utc::now().with_timezone(&options.timezone).date_naive();
            let since = today
                .checked_sub_days(Days::new(options.backfill_days.into()))
                .unwrap_or(today);
            work.uids_since(since).await?
        }
    };
    for batch in uids.chunks(scan::SCAN_BATCH) {
        let mut failure = None;
        let mut stopped = false;
        // Checked between batches: shutdown and failures. One commit per batch, and its drafts
        // are placed only after it.
        store.begin_batch()?;
        let fetched = work.fetch_heads(batch, options.fetch_max_bytes, |message| {
            // Finish the message in hand, leave the rest for the next start; after a failure,
            // stop too: progress must not pass a message that was not handled.
            if failure.is_some() || stopped {
                return;
            }
            let progress = SyncProgress {
                uid_validity: folder.uid_validity,
                uid: message.uid,
            };
            let key = format!("{}:{}", folder.uid_validity, message.uid);
            let now = Utc::now();
            if let Some((health, window)) = lease {
                health.alive_for(window);
            }
            match scan::process(
                store,
                pipeline,
                &options.keeping,
                IMAP_INBOX,
                &key,
                &message.raw,
                Some(progress),
                now,
            ) {
                Ok(Processed::Found(found)) => {
                    if found.draft_id.is_some() {
                        tracing::info!(uid = message.uid, category = %found.category, "drafted a reply");
                    }
                    if let Some(report) = report.as_deref_mut() {
                        report.examined += 1;
                        report.findings.push(found);
                    }
                }
                Ok(Processed::Skipped(skipped)) => {
                    if let Some(report) = report.as_deref_mut() {
                        report.examined += 1;
                        report.skipped.push(skipped);
                    }
                }
                Err(error) => failure = Some((message.uid, error)),
            }
            stopped = *shutdown.borrow();
        })
        .await;
        store.commit_batch()?;
        fetched?;
        // A draft looked for in Drafts leaves the inbox; the next batch is fetched from it again.
        if place_drafts(work, drafts_folder, store).await? {
            work.select(INBOX).await?;
        }
        if let Some((uid, error)) = failure {
            // Left unrecorded, so it is tried again on the next wake (a template the lead
            // fixes, say); the messages after it wait rather than overtake it.
            tracing::warn!(uid, "cannot process message: {error:#}");
            if let Some(report) = report {
                report.examined += 1;
                report.deferred.push(Skipped {
                    key: format!("{}:{uid}", folder.uid_validity),
                    reason: format!("{error:#}"),
                });
            }
            return Ok(());
        }
        if stopped {
            return Ok(());
        }
    }
    Ok(())
}

/// Drafts appended in one command (with MULTIAPPEND): one round trip for a backfill batch's
/// drafts, and a bound on what is held in memory when many wait.
const PLACE_BATCH: usize = 50;

/// Appends every recorded but unplaced draft to the server's Drafts folder with `\Draft`. Only
/// a draft an earlier attempt may have appended is first looked for there by Message-ID. Returns
/// whether any was, which leaves the Drafts folder selected.
pub(crate) async fn place_drafts(
    work: &mut Session,
    drafts_folder: &str,
    store: &mut Store,
) -> Result<bool> {
    // Most wakes have nothing to place: no lock file for them.
    if store.unplaced_drafts()?.is_empty() {
        return Ok(false);
    }
    // The watcher, the reminder task and a `pushback scan` may each find the same unplaced
    // draft: two at once would both append it. Read again under the lock: another placer may
    // have placed some meanwhile.
    let _placing = crate::app::take_turn(store.lock_file("placing")?).await?;
    let mut searched = false;
    for unplaced in store.unplaced_drafts()?.chunks(PLACE_BATCH) {
        let tried_before = store.start_placing(unplaced)?;
        searched |= !tried_before.is_empty();
        let mut placed = Vec::with_capacity(unplaced.len());
        let mut to_append = Vec::with_capacity(unplaced.len());
        for &id in unplaced {
            let Some(draft) = store.draft(id)? else {
                continue;
            };
            let found = if tried_before.contains(&id) {
                work.find_by_header(drafts_folder, "Message-ID", &draft.message_id)
                    .await?
                    .first()
                    .copied()
            } else {
                None
            };
            match found {
                Some(uid) => placed.push((id, uid)),
                None => to_append.push((id, draft.raw)),
            }
        }
        let raws: Vec<&[u8]> = to_append.iter().map(|(_, raw)| raw.as_slice()).collect();
        let landed = work.append_all(drafts_folder, &["\\Draft"], &raws).await?;
        placed.extend(
            to_append
                .iter()
                .zip(landed)
                .map(|((id, _), appended)| (*id, appended.map_or(0, |a| a.uid))),
        );
        store.mark_all_placed(&placed)?;
    }
    Ok(searched)
}

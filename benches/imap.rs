//! IMAP benchmarks for `pushback run` (the release binary) against the harness's real Dovecot on
//! loopback, each figure next to a baseline measured in the same run on the same server, since
//! the machine is shared and absolute times drift:
//!
//! - new mail to draft in Drafts under IDLE, against the server's own IDLE push delay seen by a
//!   minimal client (pushback's `imap::Session::idle` on INBOX) for the same deliveries;
//! - a backfill of N messages (default 10,000) until the store records the last UID and every
//!   draft is placed, against a minimal client fetching the same bytes with pushback's own
//!   `imap::Session::fetch_heads`; peak and idle RSS of the daemon, against the daemon's own
//!   figures in the IDLE run (50 messages).
//!
//! `cargo bench --bench imap`; `PUSHBACK_BENCH_BACKFILL=N` changes the backfill size,
//! `PUSHBACK_BENCH_SAMPLES=N` the number of IDLE samples. Needs root and Dovecot, like the tests.

#[path = "../tests/support/mod.rs"]
mod support;

use chrono::{Days, Utc};
use pushback::adapters::imap::{IdleOutcome, ImapSettings, Session};
use pushback::adapters::store::Store;
use pushback::app::watch::IMAP_INBOX;
use pushback::config::{Config, MailboxAccess};
use std::path::Path;
use std::time::{Duration, Instant};
use support::MailServers;
use support::pushback::{spawn_daemon, stop, write_config};

fn main() {
    // `cargo test --all-targets` runs a harness-less bench without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("imap bench: run with `cargo bench --bench imap`");
        return;
    }
    let samples = env_usize("PUSHBACK_BENCH_SAMPLES", 50);
    let backfill = env_usize("PUSHBACK_BENCH_BACKFILL", 10_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let idle = {
        let servers = MailServers::start();
        idle_latency(&runtime, &servers, samples)
    };
    let fill = {
        let servers = MailServers::start();
        backfill_run(&runtime, &servers, backfill)
    };
    report(&idle, &fill);
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rfp(n: usize, padding: &str) -> Vec<u8> {
    format!(
        "From: Dana Whitfield <dana@purchasing.springfield.example.gov>\r\n\
         To: alice@northwind.example\r\n\
         Subject: Request for Proposal RFP #2027-{n:05} - Fleet Telematics\r\n\
         Date: Mon, 22 Feb 2027 09:14:00 -0500\r\n\
         Message-ID: <bench-rfp-{n}@purchasing.springfield.example.gov>\r\n\r\n\
         Dear Supplier,\r\n\r\nThe City of Springfield is soliciting proposals under RFP \
         #2027-{n:05}.\r\nProposals are due March 15, 2027 at 5:00 PM EST. Questions must be \
         submitted\r\nin writing no later than February 26, 2027.\r\n\r\n{padding}\
         Dana Whitfield\r\nSenior Procurement Officer\r\n"
    )
    .into_bytes()
}

fn ordinary(n: usize, padding: &str) -> Vec<u8> {
    let subject = match n % 4 {
        0 => "Lunch?",
        1 => "Weekly product newsletter",
        2 => "Re: slides for Tuesday",
        _ => "Q3 pipeline review notes",
    };
    format!(
        "From: Sam <sam@northwind.example>\r\nTo: alice@northwind.example\r\n\
         Subject: {subject} ({n})\r\nDate: Mon, 22 Feb 2027 10:00:00 -0500\r\n\
         Message-ID: <bench-note-{n}@northwind.example>\r\n\r\nHi Alex,\r\n\r\n{padding}Sam\r\n"
    )
    .into_bytes()
}

/// About 2 KiB of ordinary prose, so messages have a realistic size.
fn padding() -> String {
    "We went through the numbers again this morning and the picture has not changed much \
     since last week; the team will follow up with the details by the end of the day.\r\n"
        .repeat(12)
}

fn settings(config: &Path) -> ImapSettings {
    let config = Config::load(config).unwrap();
    let MailboxAccess::Imap(server) = &config.mailbox.access else {
        unreachable!()
    };
    pushback::app::imap_settings(server, Duration::from_secs(120)).unwrap()
}

/// `VmHWM` and `VmRSS` of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

struct IdleFigures {
    floor_ms: Vec<f64>,
    pushback_ms: Vec<f64>,
    peak_kib: u64,
    rss_kib: u64,
}

/// New mail to draft: for each delivery, when a minimal IDLE client on INBOX hears of it (the
/// floor) and when the draft shows up in Drafts (an observer re-EXAMINEs Drafts every 5 ms).
fn idle_latency(
    runtime: &tokio::runtime::Runtime,
    servers: &MailServers,
    samples: usize,
) -> IdleFigures {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(servers, dir.path());
    let settings = settings(&config);
    let log = dir.path().join("daemon.log");
    let mut daemon = spawn_daemon(&config, &log, true);
    wait_until("the watcher to connect", Duration::from_secs(30), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("imap watcher connected")
    });

    // The floor: a minimal client IDLEs on INBOX and stamps each notification.
    let (armed_tx, armed_rx) = std::sync::mpsc::channel::<()>();
    let (heard_tx, heard_rx) = std::sync::mpsc::channel::<Instant>();
    let floor_settings = settings.clone();
    runtime.spawn(async move {
        let mut session = Session::connect(&floor_settings).await.unwrap();
        loop {
            // Selecting again clears news already seen, so each IDLE waits for the next one.
            session.select("INBOX").await.unwrap();
            armed_tx.send(()).ok();
            // The harness stops the server at the end of the run: then this observer ends.
            let Ok((back, outcome)) = session
                .idle(Duration::from_secs(600), std::future::pending())
                .await
            else {
                return;
            };
            if matches!(outcome, IdleOutcome::NewData) {
                heard_tx.send(Instant::now()).ok();
            }
            session = back;
        }
    });
    let mut observer = runtime.block_on(Session::connect(&settings)).unwrap();

    let warmup = 2;
    let mut floor_ms = Vec::new();
    let mut pushback_ms = Vec::new();
    let padding = padding();
    for n in 0..samples + warmup {
        armed_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        // IDLE is issued right after the select that preceded `armed`.
        std::thread::sleep(Duration::from_millis(150));
        servers.deliver(&rfp(n, &padding));
        let delivered = Instant::now();
        let landed = runtime.block_on(async {
            loop {
                let drafts = observer.select("Drafts").await.unwrap();
                if drafts.exists as usize > n {
                    return Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let heard = heard_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        if n >= warmup {
            floor_ms.push(heard.saturating_duration_since(delivered).as_secs_f64() * 1e3);
            pushback_ms.push(landed.saturating_duration_since(delivered).as_secs_f64() * 1e3);
        }
    }
    let (peak_kib, rss_kib) = memory_kib(daemon.id());
    stop(&mut daemon);
    IdleFigures {
        floor_ms,
        pushback_ms,
        peak_kib,
        rss_kib,
    }
}

struct BackfillFigures {
    messages: usize,
    drafts: usize,
    seed_s: f64,
    bytes: usize,
    baseline_s: Vec<f64>,
    scanned_s: f64,
    placed_s: f64,
    peak_kib: u64,
    idle_rss_kib: u64,
}

/// A minimal client's backfill: the same search and the same partial fetch pushback does, with
/// nothing done to the bytes. Returns the wall time and the bytes fetched.
fn baseline_fetch(runtime: &tokio::runtime::Runtime, config: &Path) -> (f64, usize) {
    let settings = &settings(config);
    let sync = Config::load(config).unwrap().mailbox.sync;
    runtime.block_on(async {
        let start = Instant::now();
        let mut session = Session::connect(settings).await.unwrap();
        session.select("INBOX").await.unwrap();
        let since = Utc::now()
            .date_naive()
            .checked_sub_days(Days::new(sync.backfill_days.into()))
            .unwrap();
        let uids = session.uids_since(since).await.unwrap();
        let mut bytes = 0;
        session
            .fetch_heads(&uids, sync.fetch_max_bytes, |m| bytes += m.raw.len())
            .await
            .unwrap();
        session.logout().await.ok();
        (start.elapsed().as_secs_f64(), bytes)
    })
}

fn backfill_run(
    runtime: &tokio::runtime::Runtime,
    servers: &MailServers,
    messages: usize,
) -> BackfillFigures {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(servers, dir.path());
    let settings = settings(&config);
    let padding = padding();
    // One procurement message in twenty, spread through the inbox.
    let seed: Vec<Vec<u8>> = (0..messages)
        .map(|n| {
            if n % 20 == 7 {
                rfp(n, &padding)
            } else {
                ordinary(n, &padding)
            }
        })
        .collect();
    let drafts = (0..messages).filter(|n| n % 20 == 7).count();
    let seeding = Instant::now();
    servers.deliver_many(&seed);
    let seed_s = seeding.elapsed().as_secs_f64();
    let max_uid = runtime.block_on(async {
        let mut session = Session::connect(&settings).await.unwrap();
        let inbox = session.select("INBOX").await.unwrap();
        assert_eq!(inbox.exists as usize, messages, "seeded");
        inbox.uid_next.unwrap() - 1
    });

    let mut baseline_s = Vec::new();
    let (first, bytes) = baseline_fetch(runtime, &config);
    baseline_s.push(first);

    let log = dir.path().join("daemon.log");
    let start = Instant::now();
    let mut daemon = spawn_daemon(&config, &log, false);
    let state = dir.path().join("state");
    let mut store: Option<Store> = None;
    let mut scanned_s = None;
    wait_until("the backfill", Duration::from_secs(1800), || {
        if store.is_none() && state.join("pushback.sqlite3").exists() {
            store = Store::open(&state).ok();
        }
        let Some(store) = &store else { return false };
        let Ok(Some(progress)) = store.sync_state(IMAP_INBOX) else {
            return false;
        };
        if progress.uid < max_uid {
            return false;
        }
        scanned_s.get_or_insert(start.elapsed().as_secs_f64());
        store.unplaced_drafts().is_ok_and(|u| u.is_empty())
    });
    let placed_s = start.elapsed().as_secs_f64();
    let (peak_kib, _) = memory_kib(daemon.id());
    std::thread::sleep(Duration::from_secs(3));
    let (_, idle_rss_kib) = memory_kib(daemon.id());
    stop(&mut daemon);
    let recorded = Store::open(&state).unwrap().drafts(None).unwrap().len();
    assert_eq!(recorded, drafts, "one draft per RFP");

    let (second, again) = baseline_fetch(runtime, &config);
    assert_eq!(again, bytes);
    baseline_s.push(second);
    BackfillFigures {
        messages,
        drafts,
        seed_s,
        bytes,
        baseline_s,
        scanned_s: scanned_s.unwrap(),
        placed_s,
        peak_kib,
        idle_rss_kib,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn report(idle: &IdleFigures, fill: &BackfillFigures) {
    let mut floor = idle.floor_ms.clone();
    let mut ours = idle.pushback_ms.clone();
    floor.sort_by(f64::total_cmp);
    ours.sort_by(f64::total_cmp);
    let (fm, fp) = (median(&floor), percentile(&floor, 95.0));
    let (pm, pp) = (median(&ours), percentile(&ours, 95.0));
    let baseline = fill
        .baseline_s
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "## IMAP benchmarks ({})",
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!();
    println!("| what | pushback | baseline (same run) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| new mail -> draft in Drafts, median of {} (ms) | {pm:.0} | {fm:.0} (IDLE push to a minimal client) | {:.2} |",
        ours.len(),
        pm / fm
    );
    println!(
        "| new mail -> draft in Drafts, p95 (ms) | {pp:.0} | {fp:.0} | {:.2} |",
        pp / fp
    );
    println!(
        "| new mail -> draft, median minus the IDLE floor (ms) | {:.0} | | |",
        pm - fm
    );
    println!(
        "| backfill {} msgs ({} RFPs), until last UID recorded (s) | {:.2} | {:.2} (fetch_heads of the same {:.1} MiB; runs: {}) | {:.2} |",
        fill.messages,
        fill.drafts,
        fill.scanned_s,
        baseline,
        fill.bytes as f64 / (1024.0 * 1024.0),
        fill.baseline_s
            .iter()
            .map(|s| format!("{s:.2}"))
            .collect::<Vec<_>>()
            .join(", "),
        fill.scanned_s / baseline
    );
    println!(
        "| backfill, until every draft placed in Drafts (s) | {:.2} | {:.2} | {:.2} |",
        fill.placed_s,
        baseline,
        fill.placed_s / baseline
    );
    println!(
        "| backfill throughput (msg/s) | {:.0} | {:.0} | {:.2} |",
        fill.messages as f64 / fill.placed_s,
        fill.messages as f64 / baseline,
        baseline / fill.placed_s
    );
    println!(
        "| daemon peak RSS, VmHWM (MiB) | {:.1} (backfill) | {:.1} (IDLE run, {} msgs) | {:.2} |",
        mib(fill.peak_kib),
        mib(idle.peak_kib),
        ours.len() + 2,
        fill.peak_kib as f64 / idle.peak_kib as f64
    );
    println!(
        "| daemon RSS idle after, VmRSS (MiB) | {:.1} (after backfill) | {:.1} (after IDLE run) | {:.2} |",
        mib(fill.idle_rss_kib),
        mib(idle.rss_kib),
        fill.idle_rss_kib as f64 / idle.rss_kib as f64
    );
    println!();
    println!(
        "seeding {} messages with deliver_many took {:.1} s",
        fill.messages, fill.seed_s
    );
    println!("IDLE floor samples (ms): {:?}", rounded(&idle.floor_ms));
    println!("pushback samples (ms): {:?}", rounded(&idle.pushback_ms));
}

fn rounded(v: &[f64]) -> Vec<i64> {
    v.iter().map(|x| x.round() as i64).collect()
}

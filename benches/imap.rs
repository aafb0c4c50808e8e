//! IMAP benchmarks for `pushback run` (the release binary) against the harness's real Dovecot on
//! loopback, each figure next to a baseline measured in the same run on the same server, since
//! the machine is shared and absolute times drift:
//!
//! - new mail to draft in Drafts under IDLE, against the server's own IDLE push delay seen by a
//!   minimal client (pushback's `imap::Session::idle` on INBOX) for the same deliveries;
//!   and against imapfilter (Debian's package, when installed) running a plain copy rule under
//!   IDLE on the same server, with the IDLE push delay measured again beside it;
//! - start to READY=1 (systemd's notify protocol, IMAP login included), against the same process
//!   start plus a minimal client's login and SELECT; the idle daemon's RSS after READY, against
//!   imapfilter's while it IDLEs;
//! - a backfill of N messages (10,000 and 100,000) until the store records the last UID and every
//!   draft is placed, against a minimal client fetching the same bytes with pushback's own
//!   `imap::Session::fetch_heads`; the daemon's peak RSS during it and the reminder round after it.
//!
//! `cargo bench --bench imap`; `PUSHBACK_BENCH_BACKFILL=N[,N...]` changes the backfill sizes,
//! `PUSHBACK_BENCH_SAMPLES=N` the number of IDLE samples (200). Needs root and Dovecot, like the
//! tests.

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
use support::pushback::{pushback_command, spawn_daemon, stop, write_config};

fn main() {
    // `cargo test --all-targets` runs a harness-less bench without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("imap bench: run with `cargo bench --bench imap`");
        return;
    }
    let samples = env_usize("PUSHBACK_BENCH_SAMPLES", 200);
    let backfills: Vec<usize> = std::env::var("PUSHBACK_BENCH_BACKFILL")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("PUSHBACK_BENCH_BACKFILL: sizes like 10000,100000")
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    let (startup, idle, peer) = {
        let servers = MailServers::start();
        let startup = start_to_ready(&runtime, &servers);
        let idle = idle_latency(&runtime, &servers, samples);
        let peer = imapfilter_latency(&runtime, &servers, samples);
        (startup, idle, peer)
    };
    let fills: Vec<BackfillFigures> = backfills
        .iter()
        .map(|&messages| {
            let servers = MailServers::start();
            backfill_run(&runtime, &servers, messages)
        })
        .collect();
    report(&startup, &idle, peer.as_ref(), &fills);
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

/// The anonymous part of a process's RSS (heap, stacks, relocated data), in KiB; the rest is
/// file-backed (the binary's and libraries' pages).
fn anonymous_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Anonymous:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
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

/// New mail to draft under IDLE: `samples` deliveries to the running daemon.
fn idle_latency(
    runtime: &tokio::runtime::Runtime,
    servers: &MailServers,
    samples: usize,
) -> IdleFigures {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(servers, dir.path());
    let log = dir.path().join("daemon.log");
    let mut daemon = spawn_daemon(&config, &log, true);
    wait_until("the watcher to connect", Duration::from_secs(30), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("imap watcher connected")
    });
    let (floor_ms, pushback_ms) =
        push_latency(runtime, servers, &settings(&config), samples, "Drafts");
    let (peak_kib, rss_kib) = memory_kib(daemon.id());
    stop(&mut daemon);
    IdleFigures {
        floor_ms,
        pushback_ms,
        peak_kib,
        rss_kib,
    }
}

struct PeerFigures {
    floor_ms: Vec<f64>,
    imapfilter_ms: Vec<f64>,
    idle_rss_kib: u64,
}

/// The same deliveries to imapfilter running a plain copy rule (INBOX's unseen mail copied to
/// `Filtered`, then marked seen) in its IDLE loop; `None` when imapfilter is not installed.
fn imapfilter_latency(
    runtime: &tokio::runtime::Runtime,
    servers: &MailServers,
    samples: usize,
) -> Option<PeerFigures> {
    let dir = tempfile::tempdir().unwrap();
    let (user, password) = servers.user();
    let rules = dir.path().join("config.lua");
    std::fs::write(
        &rules,
        format!(
            "options.timeout = 120\noptions.create = true\noptions.info = false\n\
             options.starttls = false\n\
             local account = IMAP {{ server = '{host}', port = {port}, username = '{user}', \
             password = '{password}' }}\n\
             while true do\n\
               local unseen = account.INBOX:is_unseen()\n\
               unseen:copy_messages(account['Filtered'])\n\
               unseen:mark_seen()\n\
               account.INBOX:enter_idle()\n\
             end\n",
            host = servers.host(),
            port = servers.imap_port(),
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.path().join("imapfilter.log")).unwrap();
    let mut peer = match std::process::Command::new("imapfilter")
        .arg("-c")
        .arg(&rules)
        .env("HOME", dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
    {
        Ok(child) => child,
        Err(error) => {
            eprintln!("imap bench: imapfilter not run ({error}); `apt-get install imapfilter`");
            return None;
        }
    };
    let settings = settings(&write_config(servers, dir.path()));
    // Up and idling: it has created the folder and copied what was there.
    std::thread::sleep(Duration::from_secs(2));
    let idle_rss_kib = memory_kib(peer.id()).1;
    let (floor_ms, imapfilter_ms) = push_latency(runtime, servers, &settings, samples, "Filtered");
    let _ = peer.kill();
    let _ = peer.wait();
    Some(PeerFigures {
        floor_ms,
        imapfilter_ms,
        idle_rss_kib,
    })
}

/// For each delivery (after two to warm up): when a minimal IDLE client on INBOX hears of it
/// (the floor) and when `folder` holds one message more (an observer re-EXAMINEs it every 5 ms).
fn push_latency(
    runtime: &tokio::runtime::Runtime,
    servers: &MailServers,
    settings: &ImapSettings,
    samples: usize,
    folder: &str,
) -> (Vec<f64>, Vec<f64>) {
    // The floor: a minimal client IDLEs on INBOX and stamps each notification.
    let (armed_tx, armed_rx) = std::sync::mpsc::channel::<()>();
    let (heard_tx, heard_rx) = std::sync::mpsc::channel::<Instant>();
    let done = std::sync::Arc::new(tokio::sync::Notify::new());
    let floor = runtime.spawn({
        let (settings, done) = (settings.clone(), done.clone());
        async move {
            let mut session = Session::connect(&settings).await.unwrap();
            loop {
                // Selecting again clears news already seen, so each IDLE waits for the next one.
                session.select("INBOX").await.unwrap();
                armed_tx.send(()).ok();
                let (back, outcome) = session
                    .idle(Duration::from_secs(600), done.notified())
                    .await
                    .unwrap();
                match outcome {
                    IdleOutcome::NewData => heard_tx.send(Instant::now()).ok(),
                    IdleOutcome::Shutdown => return,
                    IdleOutcome::Timeout => None,
                };
                session = back;
            }
        }
    });
    let mut observer = runtime.block_on(Session::connect(settings)).unwrap();
    let before = runtime
        .block_on(observer.select(folder))
        .map_or(0, |f| f.exists) as usize;

    let warmup = 2;
    let mut floor_ms = Vec::new();
    let mut landed_ms = Vec::new();
    let padding = padding();
    for n in 0..samples + warmup {
        armed_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        // IDLE is issued right after the select that preceded `armed`.
        std::thread::sleep(Duration::from_millis(150));
        servers.deliver(&rfp(n, &padding));
        let delivered = Instant::now();
        let landed = runtime.block_on(async {
            loop {
                assert!(
                    delivered.elapsed() < Duration::from_secs(30),
                    "nothing landed in {folder} within 30 s"
                );
                // The folder may not exist until the first message lands in it.
                if let Ok(state) = observer.select(folder).await
                    && state.exists as usize > before + n
                {
                    return Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let heard = heard_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        if n >= warmup {
            floor_ms.push(heard.saturating_duration_since(delivered).as_secs_f64() * 1e3);
            landed_ms.push(landed.saturating_duration_since(delivered).as_secs_f64() * 1e3);
        }
    }
    armed_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    done.notify_waiters();
    runtime.block_on(floor).unwrap();
    (floor_ms, landed_ms)
}

struct StartupFigures {
    ready_ms: Vec<f64>,
    floor_ms: Vec<f64>,
    idle_rss_kib: u64,
    idle_anonymous_kib: u64,
}

/// Start to READY=1 over `STARTS` starts of `pushback run` with NOTIFY_SOCKET set, an empty
/// inbox and the state kept between starts (as after a reboot); the floor is the same binary's
/// `--version` plus a minimal client's login and SELECT INBOX. The idle RSS is read 5 s after
/// the last READY.
fn start_to_ready(runtime: &tokio::runtime::Runtime, servers: &MailServers) -> StartupFigures {
    const STARTS: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(servers, dir.path());
    let settings = settings(&config);
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let log = dir.path().join("daemon.log");
    let mut ready_ms = Vec::new();
    let mut floor_ms = Vec::new();
    let mut idle_rss_kib = 0;
    let mut idle_anonymous_kib = 0;
    for start in 0..=STARTS {
        let began = Instant::now();
        let mut daemon = pushback_command(&config, &log, &["run"])
            .env("NOTIFY_SOCKET", &socket_path)
            .spawn()
            .unwrap();
        let mut datagram = [0u8; 4096];
        loop {
            let n = socket.recv(&mut datagram).expect("READY=1 within 30 s");
            if String::from_utf8_lossy(&datagram[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                break;
            }
        }
        let ready = began.elapsed().as_secs_f64() * 1e3;
        if start == STARTS {
            std::thread::sleep(Duration::from_secs(5));
            idle_rss_kib = memory_kib(daemon.id()).1;
            idle_anonymous_kib = anonymous_kib(daemon.id());
        }
        stop(&mut daemon);
        // The first start creates the state database: a one-off.
        if start > 0 {
            ready_ms.push(ready);
            let began = Instant::now();
            let version = std::process::Command::new(env!("CARGO_BIN_EXE_pushback"))
                .arg("--version")
                .output()
                .unwrap();
            assert!(version.status.success());
            runtime.block_on(async {
                let mut session = Session::connect(&settings).await.unwrap();
                session.select("INBOX").await.unwrap();
                session.logout().await.ok();
            });
            floor_ms.push(began.elapsed().as_secs_f64() * 1e3);
        }
    }
    StartupFigures {
        ready_ms,
        floor_ms,
        idle_rss_kib,
        idle_anonymous_kib,
    }
}

/// How long a backfill is left to settle before its peak and resting RSS are read.
const SETTLE_SECONDS: u64 = 10;

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
    // The catch-up's last wake also starts a reminder round for every RFP it found (the feed
    // and calendars brought up to date): part of the backfill's peak, so read after it.
    std::thread::sleep(Duration::from_secs(SETTLE_SECONDS));
    let (peak_kib, idle_rss_kib) = memory_kib(daemon.id());
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

/// Median and p95 of `samples`.
fn spread(samples: &[f64]) -> (f64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    (median(&sorted), percentile(&sorted, 95.0))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report(
    startup: &StartupFigures,
    idle: &IdleFigures,
    peer: Option<&PeerFigures>,
    fills: &[BackfillFigures],
) {
    let (fm, fp) = spread(&idle.floor_ms);
    let (pm, pp) = spread(&idle.pushback_ms);
    println!(
        "## IMAP benchmarks ({})",
        Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    println!();
    println!("| what | pushback | baseline (same run) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| new mail -> draft in Drafts, median of {} (ms) | {pm:.0} | {fm:.0} (IDLE push to a minimal client) | {:.2} |",
        idle.pushback_ms.len(),
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
    if let Some(peer) = peer {
        let (qm, qp) = spread(&peer.imapfilter_ms);
        let (gm, gp) = spread(&peer.floor_ms);
        println!(
            "| imapfilter copy rule under IDLE, median / p95 (ms) | {pm:.0} / {pp:.0} (pushback, above) | {qm:.0} / {qp:.0} (imapfilter; its IDLE floor {gm:.0} / {gp:.0}) | {:.2} / {:.2} |",
            pm / qm,
            pp / qp
        );
    }
    let (rm, rp) = spread(&startup.ready_ms);
    let (sm, _) = spread(&startup.floor_ms);
    println!(
        "| start -> READY=1, median / p95 of {} (ms) | {rm:.0} / {rp:.0} | {sm:.0} (`--version` + login + SELECT) | {:.2} |",
        startup.ready_ms.len(),
        rm / sm
    );
    match peer {
        Some(peer) => println!(
            "| idle daemon RSS 5 s after READY, VmRSS (MiB) | {:.1} | {:.1} (imapfilter idling) | {:.2} |",
            mib(startup.idle_rss_kib),
            mib(peer.idle_rss_kib),
            startup.idle_rss_kib as f64 / peer.idle_rss_kib as f64
        ),
        None => println!(
            "| idle daemon RSS 5 s after READY, VmRSS (MiB) | {:.1} | | |",
            mib(startup.idle_rss_kib)
        ),
    }
    println!(
        "| idle daemon RSS: anonymous / file-backed (MiB) | {:.1} / {:.1} | | |",
        mib(startup.idle_anonymous_kib),
        mib(startup.idle_rss_kib - startup.idle_anonymous_kib)
    );
    println!(
        "| daemon RSS after the IDLE run, VmRSS / VmHWM (MiB) | {:.1} / {:.1} | | |",
        mib(idle.rss_kib),
        mib(idle.peak_kib)
    );
    for fill in fills {
        let baseline = fill
            .baseline_s
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
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
            "| backfill {} msgs, until every draft placed in Drafts (s) | {:.2} | {:.2} | {:.2} |",
            fill.messages,
            fill.placed_s,
            baseline,
            fill.placed_s / baseline
        );
        println!(
            "| backfill {} msgs, daemon peak RSS, VmHWM (MiB) | {:.1} | {:.1} (IDLE run, {} msgs) | {:.2} |",
            fill.messages,
            mib(fill.peak_kib),
            mib(idle.peak_kib),
            idle.pushback_ms.len() + 2,
            fill.peak_kib as f64 / idle.peak_kib as f64
        );
    }
    println!();
    for fill in fills {
        println!(
            "seeding {} messages with deliver_many took {:.1} s; RSS {SETTLE_SECONDS} s after the backfill {:.1} MiB",
            fill.messages,
            fill.seed_s,
            mib(fill.idle_rss_kib)
        );
    }
    println!("IDLE floor samples (ms): {:?}", rounded(&idle.floor_ms));
    println!("pushback samples (ms): {:?}", rounded(&idle.pushback_ms));
    if let Some(peer) = peer {
        println!(
            "imapfilter samples (ms): {:?}",
            rounded(&peer.imapfilter_ms)
        );
    }
    println!(
        "start -> READY samples (ms): {:?}; floor: {:?}",
        rounded(&startup.ready_ms),
        rounded(&startup.floor_ms)
    );
}

fn rounded(v: &[f64]) -> Vec<i64> {
    v.iter().map(|x| x.round() as i64).collect()
}

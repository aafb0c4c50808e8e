//! Crash drills: the real `pushback run` binary as a child process, killed with SIGKILL (no
//! shutdown path runs, nothing is flushed) at the moments that matter, then started again against
//! the same state directory and the same servers (Dovecot and the recording SMTP sink from the
//! harness). Each drill asserts on what the servers and the store hold afterwards: one draft per
//! procurement message, never a second copy of a send.

mod support;

use mail_parser::MessageParser;
use pushback::adapters::store::{ApprovedVia, DraftStatus, Store};
use pushback::app::scan::SCAN_BATCH;
use pushback::app::watch::IMAP_INBOX;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;
use support::MailServers;
use support::pushback::{Login, config_text, kill_9, ordinary, spawn_daemon, stop, wait_logged};

fn rfp(n: u32) -> Vec<u8> {
    format!(
        "From: Dana Whitfield <dana@purchasing.springfield.example.gov>\r\n\
         To: alice@northwind.example\r\n\
         Subject: Request for Proposal RFP #2027-{n:03} - Fleet Telematics\r\n\
         Date: Mon, 22 Feb 2027 09:14:00 -0500\r\n\
         Message-ID: <drill-rfp-{n}@purchasing.springfield.example.gov>\r\n\r\n\
         Dear Supplier,\r\n\r\nThe City of Springfield is soliciting proposals under RFP \
         #2027-{n:03}.\r\nProposals are due March 15, 2027 at 5:00 PM EST. Questions must be \
         submitted\r\nin writing no later than February 26, 2027.\r\n\r\nDana Whitfield\r\n\
         Senior Procurement Officer\r\n"
    )
    .into_bytes()
}

/// A config for alice on the harness servers; `smtp_port` lets a drill route sends through a
/// relay that holds them.
fn write_config(servers: &MailServers, dir: &Path, smtp_port: u16) -> PathBuf {
    let (_, password) = servers.user();
    let login = Login {
        password,
        trust_ca: true,
        smtp_port,
    };
    let path = dir.join("config.toml");
    std::fs::write(&path, config_text(servers, dir, login)).unwrap();
    path
}

fn in_reply_to(raw: &[u8]) -> String {
    let parsed = MessageParser::default().parse(raw).unwrap();
    parsed
        .in_reply_to()
        .as_text()
        .expect("a draft carries In-Reply-To")
        .to_string()
}

/// Drill 1: the daemon works through a backfill of three scan batches and is SIGKILLed once
/// while it places drafts and three times at random moments, restarted each time, then left to finish.
/// Guards: a draft recorded but not yet placed, placed but not yet marked placed, or a message
/// handled but its progress not yet recorded must neither be lost nor duplicated.
#[test]
fn kill_9_during_backfill_leaves_exactly_one_draft_per_procurement_message() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&servers, dir.path(), servers.smtp_port());
    let log = dir.path().join("daemon.log");

    // A third RFPs, interleaved so every fetch batch has both; three scan batches, so progress is
    // recorded in the middle of the backfill and each batch has drafts to place in several
    // appends (a window the kill below can hit).
    let mut seed = Vec::new();
    let mut expected = Vec::new();
    let messages = u32::try_from(3 * SCAN_BATCH).unwrap();
    for n in 0..messages {
        if n % 3 == 0 {
            seed.push(rfp(n));
            expected.push(format!("drill-rfp-{n}@purchasing.springfield.example.gov"));
        } else {
            seed.push(ordinary(n));
        }
    }
    servers.deliver_many(&seed);
    let max_uid = servers.folder("INBOX").last().unwrap().uid;

    let state = dir.path().join("state");
    let progress = || {
        Store::open(&state)
            .ok()
            .and_then(|s| s.sync_state(IMAP_INBOX).ok().flatten())
            .map_or(0, |p| p.uid)
    };
    // First, a kill aimed at the placing of drafts (APPEND to Drafts, then marked placed in the
    // store): as soon as the store shows part of the first batch placed and part not.
    let mut daemon = spawn_daemon(&config, &log, true);
    let (placed, unplaced) =
        wait_logged("drafts half placed", Duration::from_secs(90), &log, || {
            let store = Store::open(&state).ok()?;
            // Drafts first: one recorded in between counts as unplaced, never as placed.
            let recorded = store.drafts(None).ok()?.len();
            let unplaced = store.unplaced_drafts().ok()?.len();
            let placed = recorded.saturating_sub(unplaced);
            (unplaced > 0 && placed > 0).then_some((placed, unplaced))
        });
    kill_9(&mut daemon);
    let mut at_kill = vec![progress()];
    eprintln!("killed while placing drafts: {placed} placed, {unplaced} not");

    // Then three at random moments while it works, not while it logs in: the clock starts once
    // it is connected.
    let connected = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .matches("imap watcher connected")
            .count()
    };
    let mut rng = fastrand::Rng::new();
    for round in 2..=4 {
        let mut daemon = spawn_daemon(&config, &log, true);
        wait_logged(
            "the watcher to connect",
            Duration::from_secs(10),
            &log,
            || (connected() >= round).then_some(()),
        );
        thread::sleep(Duration::from_millis(rng.u64(100..=900)));
        kill_9(&mut daemon);
        at_kill.push(progress());
    }
    eprintln!("last UID recorded at each kill: {at_kill:?} of {max_uid}");
    assert!(
        at_kill.iter().any(|&uid| uid > 0 && uid < max_uid),
        "at least one kill lands in the middle of the backfill: {at_kill:?}"
    );

    let mut daemon = spawn_daemon(&config, &log, true);
    wait_logged(
        "the backfill to finish",
        Duration::from_secs(180),
        &log,
        || {
            let store = Store::open(&state).ok()?;
            let done = store.sync_state(IMAP_INBOX).ok()??.uid == max_uid
                && store.unplaced_drafts().ok()?.is_empty();
            done.then_some(())
        },
    );
    // Time for anything wrong (a second placement) to happen before asserting.
    thread::sleep(Duration::from_millis(500));
    stop(&mut daemon);

    let mut on_server: HashMap<String, usize> = HashMap::new();
    for draft in servers.folder("Drafts") {
        assert!(draft.has_flag("\\Draft"), "{:?}", draft.flags);
        *on_server.entry(in_reply_to(&draft.raw)).or_default() += 1;
    }
    let store = Store::open(&state).unwrap();
    let mut in_store: HashMap<String, usize> = HashMap::new();
    for draft in store.drafts(None).unwrap() {
        let key = draft
            .in_reply_to
            .clone()
            .expect("a draft replies to a message");
        *in_store
            .entry(key.trim_matches(['<', '>']).to_string())
            .or_default() += 1;
    }
    for message_id in &expected {
        assert_eq!(
            on_server.get(message_id),
            Some(&1),
            "one draft in Drafts for {message_id}"
        );
        assert_eq!(
            in_store.get(message_id),
            Some(&1),
            "one draft row for {message_id}"
        );
    }
    assert_eq!(
        on_server.len(),
        expected.len(),
        "no draft for ordinary mail"
    );
    assert_eq!(
        in_store.len(),
        expected.len(),
        "no draft row for ordinary mail"
    );
}

/// Where the relay holds a send.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// The end of DATA never reaches the server: nothing was sent.
    BeforeTheServerHasIt,
    /// The server accepted the message; its 250 never reaches the client.
    AfterTheServerHasIt,
}

/// A loopback SMTP relay to the real sink that passes everything through until one message's
/// DATA ends, then stalls that session at the chosen point.
struct HoldingRelay {
    port: u16,
    held: Arc<AtomicBool>,
}

impl HoldingRelay {
    fn start(upstream: u16, hold: Hold) -> HoldingRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = Arc::new(AtomicBool::new(false));
        let flag = held.clone();
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    return;
                };
                let data_ended = Arc::new(AtomicBool::new(false));
                let (c_read, s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (ended, held) = (data_ended.clone(), flag.clone());
                thread::spawn(move || client_to_server(c_read, s_write, hold, &ended, &held));
                let held = flag.clone();
                thread::spawn(move || server_to_client(server, client, hold, &data_ended, &held));
            }
        });
        HoldingRelay { port, held }
    }

    fn held(&self) -> bool {
        self.held.load(Ordering::SeqCst)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn client_to_server(
    mut client: TcpStream,
    mut server: TcpStream,
    hold: Hold,
    data_ended: &AtomicBool,
    held: &AtomicBool,
) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if data_ended.load(Ordering::SeqCst) {
            // Held: whatever the client says now goes nowhere.
            continue;
        }
        seen.extend_from_slice(&buf[..n]);
        let ended = find(&seen, b"\r\nDATA\r\n")
            .is_some_and(|start| find(&seen[start + 8..], b"\r\n.\r\n").is_some());
        if ended {
            data_ended.store(true, Ordering::SeqCst);
            if hold == Hold::BeforeTheServerHasIt {
                held.store(true, Ordering::SeqCst);
                continue;
            }
        }
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
}

fn server_to_client(
    mut server: TcpStream,
    mut client: TcpStream,
    hold: Hold,
    data_ended: &AtomicBool,
    held: &AtomicBool,
) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if hold == Hold::AfterTheServerHasIt && data_ended.load(Ordering::SeqCst) {
            // The server's reply to the end of DATA: swallowed.
            held.store(true, Ordering::SeqCst);
            continue;
        }
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Write);
}

/// An RFP drafted by `pushback scan` (one pass) and approved in the store, so the daemon's first
/// outbox round sends it. Returns the draft id and its Message-ID.
fn approved_draft(servers: &MailServers, config: &Path, state: &Path) -> (i64, String) {
    servers.deliver(&rfp(7));
    let out = Command::new(env!("CARGO_BIN_EXE_pushback"))
        .arg("scan")
        .env("PUSHBACK_CONFIG", config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(servers.folder("Drafts").len(), 1, "scan placed the draft");
    let mut store = Store::open(state).unwrap();
    let drafts = store.drafts(None).unwrap();
    assert_eq!(drafts.len(), 1);
    let id = drafts[0].id;
    // Approved through the store rather than `drafts approve`, which would send at once.
    store
        .approve(id, ApprovedVia::Cli, &[], chrono::Utc::now())
        .unwrap();
    (id, drafts[0].message_id.clone())
}

fn status(state: &Path, id: i64) -> Option<DraftStatus> {
    Store::open(state).ok()?.draft(id).ok()?.map(|d| d.status)
}

/// Starts the daemon against `relay`, waits until the send is held with the draft in `sending`,
/// and SIGKILLs it there.
fn kill_9_while_sending(
    servers: &MailServers,
    dir: &Path,
    hold: Hold,
) -> (PathBuf, PathBuf, i64, String) {
    let state = dir.join("state");
    let relay = HoldingRelay::start(servers.smtp_port(), hold);
    let config = write_config(servers, dir, relay.port);
    let (id, message_id) = approved_draft(servers, &config, &state);
    let log = dir.join("daemon.log");
    let mut daemon = spawn_daemon(&config, &log, true);
    wait_logged(
        "the send to be held in `sending`",
        Duration::from_secs(15),
        &log,
        || (relay.held() && status(&state, id) == Some(DraftStatus::Sending)).then_some(()),
    );
    kill_9(&mut daemon);
    let expected = match hold {
        Hold::BeforeTheServerHasIt => 0,
        Hold::AfterTheServerHasIt => 1,
    };
    assert_eq!(servers.smtp_received().len(), expected);
    // The restart goes straight to the sink.
    let config = write_config(servers, dir, servers.smtp_port());
    (config, log, id, message_id)
}

/// Restarts the daemon and waits for startup recovery to settle the draft; returns its status
/// and `pushback drafts list`.
fn restart_and_recover(config: &Path, log: &Path, state: &Path, id: i64) -> (DraftStatus, String) {
    let mut daemon = spawn_daemon(config, log, true);
    let settled = wait_logged(
        "startup recovery to settle the draft",
        Duration::from_secs(15),
        log,
        || status(state, id).filter(|s| *s != DraftStatus::Sending),
    );
    // The recovery round goes on to deliver what is due: give it time to (wrongly) resend.
    thread::sleep(Duration::from_secs(2));
    stop(&mut daemon);
    let out = Command::new(env!("CARGO_BIN_EXE_pushback"))
        .args(["drafts", "list"])
        .env("PUSHBACK_CONFIG", config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (settled, String::from_utf8(out.stdout).unwrap())
}

fn listed_as(list: &str, id: i64) -> Option<String> {
    list.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next()? == id.to_string()).then(|| fields.next().unwrap_or("").to_string())
    })
}

/// Drill 2a: SIGKILL while the message is on its way (the server never got the end of DATA).
/// The restart must not resend blindly: not in Sent, so `unknown`, and nothing was sent.
#[test]
fn kill_9_in_sending_before_the_server_has_it_leaves_it_unknown_and_unsent() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let (config, log, id, _) =
        kill_9_while_sending(&servers, dir.path(), Hold::BeforeTheServerHasIt);
    let (settled, list) = restart_and_recover(&config, &log, &dir.path().join("state"), id);
    assert_eq!(settled, DraftStatus::Unknown);
    assert_eq!(listed_as(&list, id).as_deref(), Some("unknown"), "{list}");
    assert!(servers.smtp_received().is_empty(), "nothing was sent");
    assert_eq!(
        servers.folder("Drafts").len(),
        1,
        "the draft stays for the rep"
    );
}

/// Drill 2b: SIGKILL after the server accepted the message but before the daemon recorded it
/// as sent, and no Sent copy (a server that does not file one). On restart it is `unknown`,
/// never sent a second time.
#[test]
fn kill_9_after_the_server_took_it_never_sends_it_again() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let (config, log, id, message_id) =
        kill_9_while_sending(&servers, dir.path(), Hold::AfterTheServerHasIt);
    let (settled, list) = restart_and_recover(&config, &log, &dir.path().join("state"), id);
    assert_eq!(settled, DraftStatus::Unknown);
    assert_eq!(listed_as(&list, id).as_deref(), Some("unknown"), "{list}");
    let received = servers.smtp_received();
    assert_eq!(received.len(), 1, "sent exactly once");
    let sent = MessageParser::default().parse(&received[0].raw).unwrap();
    assert_eq!(sent.message_id(), Some(message_id.trim_matches(['<', '>'])));
}

/// Drill 2c: as 2b, but the server filed the message in Sent itself (as Gmail does): recovery
/// finds it by Message-ID, records it as sent and removes the draft; still one send.
#[test]
fn kill_9_after_the_server_took_and_filed_it_is_recovered_as_sent() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let (config, log, id, _) =
        kill_9_while_sending(&servers, dir.path(), Hold::AfterTheServerHasIt);
    let received = servers.smtp_received();
    file_in_sent(&config, &received[0].raw);
    let (settled, list) = restart_and_recover(&config, &log, &dir.path().join("state"), id);
    assert_eq!(settled, DraftStatus::Sent);
    assert_eq!(listed_as(&list, id).as_deref(), Some("sent"), "{list}");
    assert_eq!(servers.smtp_received().len(), 1, "sent exactly once");
    assert_eq!(servers.folder("Sent").len(), 1, "no second Sent copy");
    assert!(servers.folder("Drafts").is_empty(), "the draft is gone");
}

/// Appends `raw` to Sent as the SMTP server would, over IMAP with the config's login.
fn file_in_sent(config: &Path, raw: &[u8]) {
    let config = pushback::config::Config::load(config).unwrap();
    let pushback::config::MailboxAccess::Imap(server) = &config.mailbox.access else {
        unreachable!()
    };
    let settings = pushback::app::imap_settings(server, Duration::from_secs(10)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut session = pushback::adapters::imap::Session::connect(&settings)
            .await
            .unwrap();
        session.append("Sent", &["\\Seen"], raw).await.unwrap();
        session.logout().await.ok();
    });
}

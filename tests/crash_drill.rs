//! The crash drill: `pushback run` SIGKILLed a hundred times at random moments while mail keeps
//! arriving (LMTP deliveries to INBOX), the rep keeps approving drafts (half through `pushback
//! drafts approve`, which sends at once, half through the store path, which the daemon's outbox
//! sends) and deadline reminders fall due (every RFP here has deadlines inside its reminders' lead
//! time, so they fire at once). After every kill the invariants that must hold at any moment are
//! checked against what the servers and the store hold; at the end the daemon is left to settle,
//! the rep decides the sends a kill left `unknown` (as `drafts show` tells them: `mark-sent` when
//! the buyer got it, `resend` when not), and the whole promise is checked.
//!
//! Its own test binary (two to three minutes): `cargo test --locked --test crash_drill --
//! --nocapture` runs it alone and prints its figures. The schedule is seeded:
//! `PUSHBACK_DRILL_SEED=N` repeats one (the seed is printed); `PUSHBACK_DRILL_ITERATIONS=N`
//! changes the number of kills (100).

mod support;

use chrono::{Days, Utc};
use mail_parser::MessageParser;
use pushback::adapters::store::{ApprovedVia, DraftStatus, ReminderKind, ReminderStatus, Store};
use pushback::app::watch::IMAP_INBOX;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};
use support::pushback::{
    BUYER, kill_9, ordinary, pushback_output, spawn_daemon, stop, wait_logged, write_config,
};
use support::{MailServers, StoredMessage};

/// The Message-ID (without brackets) of `rfp_due_soon(n)`.
fn rfp_id(n: u32) -> String {
    format!("crash-rfp-{n}@purchasing.springfield.example.gov")
}

/// An RFP whose questions cut-off is tomorrow and whose proposals are due the day after: both
/// reminders are inside their lead time, so they are due as soon as the RFP is scanned.
fn rfp_due_soon(n: u32) -> Vec<u8> {
    let today = Utc::now().date_naive();
    let date = |days| {
        today
            .checked_add_days(Days::new(days))
            .unwrap()
            .format("%B %-d, %Y")
    };
    format!(
        "From: Dana Whitfield <{BUYER}>\r\n\
         To: alice@northwind.example\r\n\
         Subject: Request for Proposal RFP #2026-{n:03} - Fleet Telematics\r\n\
         Date: Mon, 23 Nov 2026 09:14:00 -0500\r\n\
         Message-ID: <{id}>\r\n\r\n\
         Dear Supplier,\r\n\r\nThe City of Springfield is soliciting proposals under RFP \
         #2026-{n:03}.\r\nProposals are due {proposals} at 5:00 PM EST. Questions must be \
         submitted\r\nin writing no later than {questions}.\r\n\r\nDana Whitfield\r\n\
         Senior Procurement Officer\r\n",
        id = rfp_id(n),
        proposals = date(2),
        questions = date(1),
    )
    .into_bytes()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
        Err(_) => default,
    }
}

fn bare(id: &str) -> String {
    id.trim().trim_matches(['<', '>']).to_string()
}

/// Message-IDs (bare) of `messages`, counted.
fn message_ids(messages: impl IntoIterator<Item = Vec<u8>>) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for raw in messages {
        let parsed = MessageParser::default()
            .parse_headers(&raw)
            .expect("a parseable message");
        let id = parsed.message_id().map(bare).unwrap_or_default();
        *counts.entry(id).or_default() += 1;
    }
    counts
}

/// The reminder ids of pushback's notices in INBOX, counted.
fn notices(inbox: &[StoredMessage]) -> HashMap<i64, usize> {
    let mut counts = HashMap::new();
    for message in inbox {
        let parsed = MessageParser::default()
            .parse_headers(&message.raw)
            .unwrap();
        if let Some(id) = parsed
            .header_raw("X-Pushback-Reminder")
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            *counts.entry(id).or_default() += 1;
        }
    }
    counts
}

/// What the test itself did, for the checks to compare with.
#[derive(Default)]
struct Ledger {
    rfps: Vec<String>,
    ordinary: usize,
    /// Draft ids the rep approved, and how.
    approved_by_cli: BTreeSet<i64>,
    approved_in_store: BTreeSet<i64>,
}

impl Ledger {
    fn approved(&self) -> BTreeSet<i64> {
        self.approved_by_cli
            .union(&self.approved_in_store)
            .copied()
            .collect()
    }
}

/// Delivers mail over LMTP until `done`: two RFPs for every ordinary message.
fn feed(servers: &MailServers, seed: u64, ledger: &Mutex<Ledger>, done: &AtomicBool) {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xfeed);
    let mut n = 0;
    while !done.load(Ordering::SeqCst) {
        if n % 3 == 2 {
            servers.deliver(&ordinary(n));
            ledger.lock().unwrap().ordinary += 1;
        } else {
            servers.deliver(&rfp_due_soon(n));
            ledger.lock().unwrap().rfps.push(rfp_id(n));
        }
        n += 1;
        thread::sleep(Duration::from_millis(rng.u64(300..=900)));
    }
}

/// Approves a random pending draft now and then until `done`: by the command line (which sends
/// at once) or through the store (the daemon's outbox sends it).
fn approve(config: &Path, state: &Path, seed: u64, ledger: &Mutex<Ledger>, done: &AtomicBool) {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0xa11);
    while !done.load(Ordering::SeqCst) {
        thread::sleep(Duration::from_millis(rng.u64(400..=1200)));
        let Ok(mut store) = Store::open(state) else {
            continue;
        };
        let pending = store.drafts(Some(DraftStatus::Pending)).unwrap();
        let Some(draft) = rng.choice(pending.iter()) else {
            continue;
        };
        let id = draft.id;
        if rng.bool() {
            let out = pushback_output(config, &["drafts", "approve", &id.to_string()]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            // The approval is recorded before anything is sent: whatever happened after, the
            // store says whether the rep's approval stands.
            if store.approval(id).unwrap().is_some() {
                ledger.lock().unwrap().approved_by_cli.insert(id);
            } else {
                assert!(!out.status.success(), "approved but not recorded: {stderr}");
            }
        } else if store.approve(id, ApprovedVia::Cli, &[], Utc::now()).is_ok() {
            ledger.lock().unwrap().approved_in_store.insert(id);
        }
    }
}

/// What must hold at every moment, crash or not: no second draft for a message in the store or
/// in Drafts, nothing received that the rep did not approve, nothing received twice, no reminder
/// notice twice.
fn check_safety(servers: &MailServers, state: &Path, when: &str) {
    // The sink first: an approval is recorded before its send, so the store read after it knows
    // every approval behind what the sink holds.
    let received = message_ids(servers.smtp_received().into_iter().map(|m| m.raw));
    let store = Store::open(state).unwrap();
    let drafts = store.drafts(None).unwrap();
    let mut per_original: HashMap<String, usize> = HashMap::new();
    for draft in drafts.iter().filter(|d| d.follow_up == 0) {
        *per_original
            .entry(bare(draft.in_reply_to.as_deref().unwrap()))
            .or_default() += 1;
    }
    if let Some((id, n)) = per_original.iter().find(|(_, n)| **n > 1) {
        panic!("{when}: {n} drafts in the store for {id}");
    }
    let by_message_id: HashMap<String, i64> =
        drafts.iter().map(|d| (bare(&d.message_id), d.id)).collect();
    let in_drafts = message_ids(servers.folder("Drafts").into_iter().map(|m| m.raw));
    for (id, n) in &in_drafts {
        assert_eq!(*n, 1, "{when}: {n} copies of draft {id} in Drafts");
        assert!(
            by_message_id.contains_key(id),
            "{when}: {id} in Drafts is no draft of the store"
        );
    }
    for (id, n) in &received {
        assert_eq!(*n, 1, "{when}: {id} was received {n} times");
        let approval = by_message_id
            .get(id)
            .and_then(|draft| store.approval(*draft).unwrap());
        assert!(
            approval.is_some(),
            "{when}: {id} was received but never approved"
        );
    }
    let twice: Vec<_> = notices(&servers.folder("INBOX"))
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .collect();
    assert!(
        twice.is_empty(),
        "{when}: reminders noticed twice: {twice:?}"
    );
}

/// Everything is done: INBOX handled to its last UID, every pending draft placed, nothing due in
/// the outbox or in flight, no reminder due or firing.
fn settled(servers: &MailServers, state: &Path) -> Option<()> {
    let store = Store::open(state).ok()?;
    let last = servers.folder("INBOX").last()?.uid;
    let now = Utc::now();
    let done = store.sync_state(IMAP_INBOX).ok()??.uid == last
        && store.unplaced_drafts().ok()?.is_empty()
        && store
            .outbox_pending()
            .ok()?
            .iter()
            .all(|item| item.status != DraftStatus::Approved)
        && store.in_flight().ok()?.is_empty()
        && store.due_reminders(now).ok()?.is_empty();
    done.then_some(())
}

#[test]
fn a_hundred_kill_9s_while_mail_arrives_and_approved_drafts_leave() {
    let seed = env_or("PUSHBACK_DRILL_SEED", fastrand::u64(..));
    let iterations: u32 = env_or("PUSHBACK_DRILL_ITERATIONS", 100);
    eprintln!("crash drill: seed {seed}, {iterations} kills (PUSHBACK_DRILL_SEED={seed} repeats)");
    let started = Instant::now();
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&servers, dir.path());
    let state = dir.path().join("state");
    let log = dir.path().join("daemon.log");
    let ledger = Mutex::new(Ledger::default());
    let done = AtomicBool::new(false);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut kill_after_ms = Vec::new();

    thread::scope(|s| {
        s.spawn(|| feed(&servers, seed, &ledger, &done));
        s.spawn(|| approve(&config, &state, seed, &ledger, &done));
        let connects = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .matches("imap watcher connected")
                .count()
        };
        for round in 1..=iterations {
            let before = connects();
            let mut daemon = spawn_daemon(&config, &log, false);
            let spawned = Instant::now();
            // A third of the kills land while it starts (store, login, recovery); the rest once
            // it is connected, while it handles mail, places drafts and sends.
            if rng.u8(0..3) > 0 {
                wait_logged(
                    "the watcher to connect",
                    Duration::from_secs(20),
                    &log,
                    || (connects() > before).then_some(()),
                );
                thread::sleep(Duration::from_millis(rng.u64(0..=800)));
            } else {
                thread::sleep(Duration::from_millis(rng.u64(0..=600)));
            }
            kill_9(&mut daemon);
            kill_after_ms.push(spawned.elapsed().as_millis() as u64);
            check_safety(&servers, &state, &format!("after kill {round}"));
        }
        done.store(true, Ordering::SeqCst);
    });
    let drill_time = started.elapsed();

    // Left to settle without a kill.
    let mut daemon = spawn_daemon(&config, &log, false);
    wait_logged(
        "the daemon to settle",
        Duration::from_secs(90),
        &log,
        || settled(&servers, &state),
    );
    stop(&mut daemon);
    check_safety(&servers, &state, "after settling");

    // The rep decides each send a kill interrupted, as `drafts show` tells them.
    let store = Store::open(&state).unwrap();
    let received = message_ids(servers.smtp_received().into_iter().map(|m| m.raw));
    let (mut marked_sent, mut resent) = (0, 0);
    for draft in store.drafts(Some(DraftStatus::Unknown)).unwrap() {
        let id = draft.id.to_string();
        let verb = if received.contains_key(&bare(&draft.message_id)) {
            marked_sent += 1;
            "mark-sent"
        } else {
            resent += 1;
            "resend"
        };
        let out = pushback_output(&config, &["drafts", verb, &id]);
        assert!(
            out.status.success(),
            "drafts {verb} {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The whole promise.
    let ledger = ledger.into_inner().unwrap();
    let store = Store::open(&state).unwrap();
    let drafts = store.drafts(None).unwrap();
    let in_drafts = message_ids(servers.folder("Drafts").into_iter().map(|m| m.raw));
    let received = message_ids(servers.smtp_received().into_iter().map(|m| m.raw));
    let approved = ledger.approved();
    let mut statuses: BTreeMap<&str, usize> = BTreeMap::new();
    for original in &ledger.rfps {
        let mine: Vec<_> = drafts
            .iter()
            .filter(|d| d.in_reply_to.as_deref().map(bare).as_deref() == Some(original.as_str()))
            .collect();
        assert_eq!(mine.len(), 1, "one draft for {original}: {mine:?}");
        let draft = mine[0];
        *statuses.entry(draft.status.as_str()).or_default() += 1;
        let copies = in_drafts
            .get(&bare(&draft.message_id))
            .copied()
            .unwrap_or(0);
        let (expected_copies, expected_received) = if approved.contains(&draft.id) {
            assert_eq!(
                draft.status,
                DraftStatus::Sent,
                "approved draft {}",
                draft.id
            );
            (0, 1)
        } else {
            assert_eq!(draft.status, DraftStatus::Pending, "draft {}", draft.id);
            (1, 0)
        };
        assert_eq!(
            copies, expected_copies,
            "copies of draft {} ({}) in Drafts",
            draft.id, draft.status
        );
        assert_eq!(
            received.get(&bare(&draft.message_id)).copied().unwrap_or(0),
            expected_received,
            "sends of draft {} received",
            draft.id
        );
    }
    assert_eq!(
        drafts.len(),
        ledger.rfps.len(),
        "no draft for ordinary mail"
    );
    assert_eq!(received.len(), approved.len(), "only approved drafts left");
    let with_approval = drafts
        .iter()
        .filter(|d| store.approval(d.id).unwrap().is_some())
        .count();
    assert_eq!(with_approval, approved.len(), "no approval but the rep's");

    // Every message handled, none twice; every reminder fired once, with one notice.
    let inbox = servers.folder("INBOX");
    let uid_validity = servers.uidvalidity("INBOX");
    for message in &inbox {
        assert!(
            store
                .is_seen(IMAP_INBOX, &format!("{uid_validity}:{}", message.uid))
                .unwrap(),
            "INBOX UID {} was never handled",
            message.uid
        );
    }
    let reminders: Vec<_> = store
        .reminders(false)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind != ReminderKind::FollowUp)
        .collect();
    let notices = notices(&inbox);
    assert_eq!(
        reminders.len(),
        2 * ledger.rfps.len(),
        "two deadlines a RFP"
    );
    for reminder in &reminders {
        assert_eq!(reminder.status, ReminderStatus::Fired, "{reminder:?}");
        assert_eq!(notices.get(&reminder.id), Some(&1), "{reminder:?}");
    }
    assert_eq!(
        notices.len(),
        reminders.len(),
        "no notice without a reminder"
    );

    let kills = kill_after_ms.len().max(1) as u64;
    eprintln!(
        "crash drill: seed {seed}; {iterations} kills in {:.0} s (kill after {} ms on average); \
         total {:.0} s; {} RFPs and {} ordinary messages delivered; {} drafts; approved {} by \
         the command line and {} in the store; {} received by the SMTP sink, each once; {} left \
         unknown by a kill ({marked_sent} had left: mark-sent, {resent} had not: resend); draft \
         statuses {statuses:?}; {} reminders fired, one notice each; {} INBOX messages handled",
        drill_time.as_secs_f64(),
        kill_after_ms.iter().sum::<u64>() / kills,
        started.elapsed().as_secs_f64(),
        ledger.rfps.len(),
        ledger.ordinary,
        drafts.len(),
        ledger.approved_by_cli.len(),
        ledger.approved_in_store.len(),
        received.len(),
        marked_sent + resent,
        reminders.len(),
        inbox.len(),
    );
}

//! Outage drills against the real servers: Dovecot stopped while mail arrives, an SMTP server
//! that refuses for a while (421, then 451) or for good (550), and a state directory on a full
//! disk. Each asserts what the rep must be able to count on afterwards: nothing lost, nothing
//! twice, nothing sent that was refused for good, and a message that names the problem.
//!
//! `PUSHBACK_DRILL_OUTAGE_SECS` sets how long Dovecot stays down (30, as the issue asks).

mod support;

use chrono::{TimeDelta, Utc};
use pushback::adapters::store::{DraftStatus, Store};
use pushback::app::watch::IMAP_INBOX;
use pushback::config::Config;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};
use support::MailServers;
use support::pushback::{
    original_id, pushback_cli, pushback_output, rfp, spawn_daemon, stop, wait_logged, write_config,
    write_config_with,
};

/// Every INBOX message handled and every draft placed; the number of drafts in the store.
fn caught_up(servers: &MailServers, state: &Path) -> Option<usize> {
    let store = Store::open(state).ok()?;
    let last = servers.folder("INBOX").last()?.uid;
    let done =
        store.sync_state(IMAP_INBOX).ok()??.uid == last && store.unplaced_drafts().ok()?.is_empty();
    done.then(|| store.drafts(None).ok().map(|d| d.len()))?
}

/// Drafts per original Message-ID (bare) in the server's Drafts folder.
fn drafts_on_server(servers: &MailServers) -> Vec<String> {
    let mut originals: Vec<String> = servers
        .folder("Drafts")
        .iter()
        .map(|m| {
            let parsed = mail_parser::MessageParser::default()
                .parse_headers(&m.raw)
                .unwrap();
            parsed
                .in_reply_to()
                .as_text()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    originals.sort();
    originals
}

#[test]
fn dovecot_down_while_fifty_messages_arrive_is_caught_up_once_it_returns() {
    let outage = Duration::from_secs(
        std::env::var("PUSHBACK_DRILL_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(30),
    );
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    // The reconnection backoff is capped at 5 s here (300 s by default), so the time to catch up
    // measures the daemon, not the luck of one jittered wait.
    let config = write_config_with(&servers, dir.path(), "reconnect-max-seconds = 5\n", "");
    let state = dir.path().join("state");
    let log = dir.path().join("daemon.log");
    let mut daemon = spawn_daemon(&config, &log, true);
    servers.deliver(&rfp(0));
    wait_logged("the first draft", Duration::from_secs(20), &log, || {
        caught_up(&servers, &state).filter(|n| *n == 1)
    });

    servers.stop_imap();
    let down = Instant::now();
    // Fifty messages arrive while Dovecot is down: a delivery agent files them in the Maildir
    // (Dovecot's LMTP is down with it), spread over the outage.
    for n in 1..=50 {
        servers.queue_in_maildir(&[rfp(n)]);
        thread::sleep(outage / 60);
    }
    thread::sleep(outage.saturating_sub(down.elapsed()));
    servers.start_imap();
    let up = Instant::now();
    wait_logged(
        "all fifty messages after the outage",
        Duration::from_secs(60),
        &log,
        || caught_up(&servers, &state).filter(|n| *n == 51),
    );
    let catch_up = up.elapsed();
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon kept running"
    );
    stop(&mut daemon);

    let expected: Vec<String> = {
        let mut ids: Vec<String> = (0..=50).map(original_id).collect();
        ids.sort();
        ids
    };
    assert_eq!(
        drafts_on_server(&servers),
        expected,
        "one draft per message in Drafts"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("imap watcher reconnected"), "{text}");
    eprintln!(
        "outage drill: Dovecot down {:.1} s with 50 messages arriving; all 50 drafted {:.2} s \
         after it was back (reconnect-max-seconds = 5)",
        outage.as_secs_f64(),
        catch_up.as_secs_f64()
    );
    // Bounded by one capped backoff wait (5 s) plus the work itself.
    assert!(
        catch_up < Duration::from_secs(20),
        "caught up in {catch_up:?}"
    );
}

/// One RFP drafted by `pushback scan`; returns the draft's id.
fn one_draft(servers: &MailServers, config: &Path, state: &Path) -> i64 {
    servers.deliver(&rfp(1));
    pushback_cli(config, &["scan"]);
    let drafts = Store::open(state).unwrap().drafts(None).unwrap();
    assert_eq!(drafts.len(), 1);
    drafts[0].id
}

/// The outbox round of a daemon that ran at `now`: what `pushback run` does every ten seconds,
/// with the clock given.
fn outbox_round(config: &Path, state: &Path, now: chrono::DateTime<Utc>) {
    let config = Config::load(config).unwrap();
    let mut store = Store::open(state).unwrap();
    pushback::app::block_on(pushback::app::send::deliver(
        &config, &mut store, false, now,
    ))
    .unwrap()
    .unwrap();
}

fn outbox_item(state: &Path, id: i64) -> pushback::adapters::store::OutboxItem {
    Store::open(state)
        .unwrap()
        .outbox_pending()
        .unwrap()
        .into_iter()
        .find(|item| item.draft_id == id)
        .unwrap_or_else(|| panic!("draft {id} is not in the outbox"))
}

/// A running daemon's first rounds (startup recovery, the outbox) at the real clock: it must not
/// send anything more.
fn run_daemon_briefly(config: &Path, dir: &Path) {
    let log = dir.join("daemon.log");
    let mut daemon = spawn_daemon(config, &log, true);
    wait_logged(
        "the watcher to connect",
        Duration::from_secs(15),
        &log,
        || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("imap watcher connected")
                .then_some(())
        },
    );
    thread::sleep(Duration::from_secs(1));
    stop(&mut daemon);
}

#[test]
fn smtp_refusing_with_421_then_451_sends_once_when_it_accepts_again() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&servers, dir.path());
    let state = dir.path().join("state");
    let id = one_draft(&servers, &config, &state);

    servers.smtp_refuse(Some("421 4.3.2 Service not available, closing channel"));
    let approved = Instant::now();
    let out = pushback_cli(&config, &["drafts", "approve", &id.to_string()]);
    assert!(out.contains("queued"), "{out}");
    let item = outbox_item(&state, id);
    assert_eq!(item.status, DraftStatus::Approved);
    assert!(
        item.last_error.as_deref().unwrap().contains("421"),
        "{item:?}"
    );

    // The outbox's rounds at the times the backoff gives: 451 twice, then the server accepts.
    servers.smtp_refuse(Some("451 4.3.0 Temporary local problem, try again later"));
    let mut waits = vec![item.next_attempt_at.unwrap() - item.last_attempt_at.unwrap()];
    for _ in 0..2 {
        let item = outbox_item(&state, id);
        outbox_round(&config, &state, item.next_attempt_at.unwrap());
        let after = outbox_item(&state, id);
        assert_eq!(after.status, DraftStatus::Approved);
        assert!(after.last_error.as_deref().unwrap().contains("451"));
        waits.push(after.next_attempt_at.unwrap() - after.last_attempt_at.unwrap());
    }
    assert_eq!(
        waits,
        [
            TimeDelta::minutes(1),
            TimeDelta::minutes(2),
            TimeDelta::minutes(4)
        ],
        "retries back off"
    );
    // An early round does not jump the queue.
    let item = outbox_item(&state, id);
    outbox_round(&config, &state, item.last_attempt_at.unwrap());
    servers.smtp_refuse(None);
    outbox_round(&config, &state, item.next_attempt_at.unwrap());
    let store = Store::open(&state).unwrap();
    assert_eq!(store.draft(id).unwrap().unwrap().status, DraftStatus::Sent);

    // Later rounds and a daemon's start send nothing more.
    outbox_round(&config, &state, Utc::now() + TimeDelta::days(1));
    run_daemon_briefly(&config, dir.path());
    assert_eq!(
        servers.smtp_refusals(),
        [
            "421 4.3.2 Service not available, closing channel",
            "451 4.3.0 Temporary local problem, try again later",
            "451 4.3.0 Temporary local problem, try again later",
        ]
    );
    let received = servers.smtp_received();
    assert_eq!(received.len(), 1, "sent exactly once");
    let sent = servers.folder("Sent");
    assert_eq!(sent.len(), 1, "one copy in Sent");
    assert!(servers.folder("Drafts").is_empty(), "the draft left Drafts");
    eprintln!(
        "outage drill (SMTP 421/451): refused 3 times, retried after 1, 2 and 4 minutes (outbox \
         clock), sent once; {:.1} s of wall time",
        approved.elapsed().as_secs_f64()
    );
}

#[test]
fn smtp_550_marks_the_draft_failed_shows_why_and_never_retries_it() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&servers, dir.path());
    let state = dir.path().join("state");
    let id = one_draft(&servers, &config, &state);
    let refusal = "550 5.1.1 <dana@purchasing.springfield.example.gov>: Recipient address \
                   rejected: User unknown in virtual mailbox table";
    servers.smtp_refuse(Some(refusal));
    let out = pushback_cli(&config, &["drafts", "approve", &id.to_string()]);
    assert!(out.contains("the server refused it"), "{out}");
    assert!(out.contains("User unknown"), "{out}");

    let list = pushback_cli(&config, &["drafts", "list"]);
    let line = list
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{id} ")))
        .unwrap();
    assert!(line.contains("failed"), "{list}");
    let show = pushback_cli(&config, &["drafts", "show", &id.to_string()]);
    assert!(
        show.contains("last attempt failed (1 so far): permanent error (550): 5.1.1"),
        "{show}"
    );
    assert!(show.contains("pushback drafts resend"), "{show}");

    // The server would take it now: a blind retry would show in the sink.
    servers.smtp_refuse(None);
    outbox_round(&config, &state, Utc::now() + TimeDelta::days(2));
    run_daemon_briefly(&config, dir.path());
    assert_eq!(servers.smtp_refusals().len(), 1, "tried once");
    assert!(servers.smtp_received().is_empty(), "never sent");
    let store = Store::open(&state).unwrap();
    assert_eq!(
        store.draft(id).unwrap().unwrap().status,
        DraftStatus::Failed
    );
    assert_eq!(
        servers.folder("Drafts").len(),
        1,
        "the draft stays for the rep"
    );
}

/// A tmpfs mounted on a directory for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .expect("cannot run mount");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {} (the drill needs root and mount)",
            path.display()
        );
        Tmpfs(path.to_path_buf())
    }

    /// Fills the file system up to the last byte (again, after something freed space); returns
    /// the filler file.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.write_all(&[0]);
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn integrity(state: &Path) -> String {
    let db = rusqlite::Connection::open(state.join(pushback::adapters::store::FILE_NAME)).unwrap();
    db.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn a_full_disk_under_the_state_dir_is_named_and_nothing_is_lost_or_doubled() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let tmpfs = Tmpfs::mount(&state, "8m");
    let config = write_config(&servers, dir.path());
    let log = dir.path().join("daemon.log");
    servers.deliver(&rfp(0));
    pushback_cli(&config, &["scan"]);

    // A command started on the full disk says so, and names where.
    let filler = tmpfs.fill();
    let out = pushback_output(&config, &["scan"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("the disk holding it is full"), "{said}");
    assert!(said.contains(&state.display().to_string()), "{said}");
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(
        integrity(&state),
        "ok",
        "the database is intact once there is room"
    );

    // The disk fills while the daemon runs: new mail cannot be recorded, it says why and runs
    // on. Forty messages, more than the room left in SQLite's write-ahead log.
    let mut daemon = spawn_daemon(&config, &log, true);
    wait_logged(
        "the watcher to connect",
        Duration::from_secs(20),
        &log,
        || caught_up(&servers, &state).filter(|n| *n == 1),
    );
    tmpfs.fill();
    for n in 1..=40 {
        servers.deliver(&rfp(n));
    }
    wait_logged(
        "the daemon to hit the full disk",
        Duration::from_secs(20),
        &log,
        || {
            let text = std::fs::read_to_string(&log).ok()?;
            text.contains("database or disk is full").then_some(())
        },
    );
    assert!(daemon.try_wait().unwrap().is_none(), "the daemon runs on");
    stop(&mut daemon);
    let text = std::fs::read_to_string(&log).unwrap();
    let full_line = text
        .lines()
        .find(|l| l.contains("database or disk is full"))
        .unwrap()
        .to_string();

    // Space again: the database is intact and everything is handled, once.
    std::fs::remove_file(filler).unwrap();
    assert_eq!(integrity(&state), "ok");
    for n in 41..=42 {
        servers.deliver(&rfp(n));
    }
    let mut daemon = spawn_daemon(&config, &log, true);
    wait_logged("all 43 drafts", Duration::from_secs(30), &log, || {
        caught_up(&servers, &state).filter(|n| *n == 43)
    });
    stop(&mut daemon);
    assert_eq!(integrity(&state), "ok");
    let expected: Vec<String> = {
        let mut ids: Vec<String> = (0..=42).map(original_id).collect();
        ids.sort();
        ids
    };
    assert_eq!(drafts_on_server(&servers), expected, "one draft each");
    eprintln!("disk full: `pushback scan` said {said:?}\nthe daemon logged {full_line:?}");
}

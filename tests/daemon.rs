//! `pushback run` against real servers: Dovecot for the mailbox and the recording SMTP sink for
//! sending, started by the harness on free loopback ports. Each scenario asserts on what the
//! servers hold: drafts in Drafts with `\Draft` and proper threading, exactly one send of exactly
//! the approved message, the Sent copy, the draft gone, no duplicate after a UIDVALIDITY change,
//! nothing missed across a server restart.

mod support;

use mail_parser::MessageParser;
use pushback::adapters::store::Store;
use pushback::config::Config;
use std::process::Command;
use std::time::Duration;
use support::MailServers;
use support::pushback::{Daemon, pushback_cli, rfp, wait_for, write_config};

const LUNCH: &[u8] = b"From: Sam <sam@northwind.example>\r\nTo: alice@northwind.example\r\n\
Subject: Lunch?\r\nMessage-ID: <lunch@northwind.example>\r\n\r\nRamen on Thursday?\r\n";

fn drafts_on_server(servers: &MailServers) -> Vec<support::StoredMessage> {
    servers.folder("Drafts")
}

#[test]
fn new_rfp_mail_gets_exactly_one_threaded_draft_and_approval_sends_it_once() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(&servers, dir.path());
    let config = Config::load(&config_path).unwrap();
    let daemon = Daemon::start(config.clone());

    servers.deliver(LUNCH);
    servers.deliver(&rfp(14));
    let drafts = wait_for("a draft in Drafts", Duration::from_secs(15), || {
        let drafts = drafts_on_server(&servers);
        (!drafts.is_empty()).then_some(drafts)
    });
    // Give the watcher time to do anything wrong (a second draft) before asserting.
    std::thread::sleep(Duration::from_secs(2));
    let drafts_now = drafts_on_server(&servers);
    assert_eq!(drafts_now.len(), 1, "exactly one draft for one RFP");
    assert_eq!(drafts.len(), 1);
    let draft = &drafts_now[0];
    assert!(
        draft.flags.iter().any(|f| f == "\\Draft"),
        "{:?}",
        draft.flags
    );
    let parsed = MessageParser::default().parse(&draft.raw).unwrap();
    assert_eq!(
        parsed.in_reply_to().as_text(),
        Some("rfp-14@purchasing.springfield.example.gov")
    );
    assert!(
        parsed
            .subject()
            .unwrap()
            .starts_with("Re: Request for Proposal")
    );
    let draft_message_id = parsed.message_id().unwrap().to_string();
    // The rep's mail is never marked read by pushback.
    for message in servers.folder("INBOX") {
        assert!(
            !message.flags.iter().any(|f| f == "\\Seen"),
            "{:?}",
            message.flags
        );
    }
    assert!(
        servers.smtp_received().is_empty(),
        "nothing is sent before approval"
    );

    pushback_cli(&config_path, &["drafts", "approve", "1"]);
    let received = wait_for("the send", Duration::from_secs(15), || {
        let received = servers.smtp_received();
        (!received.is_empty()).then_some(received)
    });
    // The daemon's outbox round must not send it a second time.
    std::thread::sleep(Duration::from_secs(12));
    let received_now = servers.smtp_received();
    assert_eq!(received_now.len(), 1, "exactly one send");
    assert_eq!(received.len(), 1);
    let sent = MessageParser::default()
        .parse(&received_now[0].raw)
        .unwrap();
    assert_eq!(sent.message_id(), Some(draft_message_id.as_str()));
    assert_eq!(
        received_now[0].rcpt_tos,
        ["dana@purchasing.springfield.example.gov"]
    );
    let sent_folder = servers.folder("Sent");
    assert_eq!(sent_folder.len(), 1);
    assert!(
        String::from_utf8_lossy(&sent_folder[0].raw).contains(&draft_message_id),
        "the Sent copy is the message that was sent"
    );
    assert!(drafts_on_server(&servers).is_empty(), "the draft is gone");
    daemon.stop();

    let store = Store::open(&dir.path().join("state")).unwrap();
    let recorded = store.drafts(None).unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].status.as_str(), "sent");
}

#[test]
fn a_uidvalidity_change_and_a_server_restart_neither_duplicate_nor_lose_mail() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let config = Config::load(&write_config(&servers, dir.path())).unwrap();
    let daemon = Daemon::start(config);

    servers.deliver(&rfp(1));
    wait_for("the first draft", Duration::from_secs(15), || {
        (drafts_on_server(&servers).len() == 1).then_some(())
    });

    // The server renumbers the inbox: the resync must not draft RFP 1 again.
    servers.change_uidvalidity("INBOX");
    servers.deliver(&rfp(2));
    wait_for("the second draft", Duration::from_secs(30), || {
        (drafts_on_server(&servers).len() == 2).then_some(())
    });

    // The server goes away and comes back; mail delivered right after it returns is handled.
    servers.stop_imap();
    std::thread::sleep(Duration::from_secs(2));
    servers.start_imap();
    servers.deliver(&rfp(3));
    wait_for(
        "the draft after the restart",
        Duration::from_secs(60),
        || (drafts_on_server(&servers).len() == 3).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(2));
    daemon.stop();

    let drafts = drafts_on_server(&servers);
    let mut replied_to: Vec<String> = drafts
        .iter()
        .map(|d| {
            let parsed = MessageParser::default().parse(&d.raw).unwrap();
            parsed.in_reply_to().as_text().unwrap().to_string()
        })
        .collect();
    replied_to.sort();
    assert_eq!(
        replied_to,
        [
            "rfp-1@purchasing.springfield.example.gov",
            "rfp-2@purchasing.springfield.example.gov",
            "rfp-3@purchasing.springfield.example.gov"
        ]
    );
    let store = Store::open(&dir.path().join("state")).unwrap();
    assert_eq!(store.drafts(None).unwrap().len(), 3);
}

#[test]
fn editing_or_rejecting_from_the_cli_replaces_or_removes_the_imap_draft() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(&servers, dir.path());
    let config = Config::load(&config_path).unwrap();
    servers.deliver(&rfp(7));
    pushback_cli(&config_path, &["scan"]);
    let before = drafts_on_server(&servers);
    assert_eq!(before.len(), 1);
    drop(config);

    let editor = dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf 'Hi Dana,\\n\\nEdited in pushback.\\n' > \"$1\"\n",
    )
    .unwrap();
    assert!(
        Command::new("chmod")
            .args(["+x"])
            .arg(&editor)
            .status()
            .unwrap()
            .success()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_pushback"))
        .args(["drafts", "edit", "1"])
        .env("PUSHBACK_CONFIG", &config_path)
        .env("EDITOR", &editor)
        .env_remove("VISUAL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = drafts_on_server(&servers);
    assert_eq!(
        after.len(),
        1,
        "the edit replaces the draft, it does not add one"
    );
    let edited = MessageParser::default().parse(&after[0].raw).unwrap();
    assert!(edited.body_text(0).unwrap().contains("Edited in pushback."));
    let original = MessageParser::default().parse(&before[0].raw).unwrap();
    assert_ne!(edited.message_id(), original.message_id());
    assert_eq!(
        edited.in_reply_to().as_text(),
        original.in_reply_to().as_text()
    );
    assert!(after[0].flags.iter().any(|f| f == "\\Draft"));

    pushback_cli(&config_path, &["drafts", "reject", "1"]);
    assert!(
        drafts_on_server(&servers).is_empty(),
        "a rejected draft is removed"
    );
    assert!(servers.smtp_received().is_empty());
}

#[test]
fn a_wrong_password_is_reported_with_host_and_user_and_never_logged() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(&servers, dir.path());
    let wrong = "not-the-password-4711";
    let (_, right) = servers.user();
    let text = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(&config_path, text.replace(right, wrong)).unwrap();

    let daemon = Command::new(env!("CARGO_BIN_EXE_pushback"))
        .args(["run"])
        .env("PUSHBACK_CONFIG", &config_path)
        // Even the most verbose logging must not reveal it.
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        Command::new("kill")
            .args(["-TERM", &daemon.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let output = daemon.wait_with_output().unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{log}");
    assert!(log.contains("cannot log in"), "{log}");
    assert!(
        log.contains(&format!("{}:{}", servers.host(), servers.imap_port())),
        "{log}"
    );
    assert!(log.contains("user alice"), "{log}");
    assert!(!log.contains(wrong), "the password leaked into the log");
    // Logged once per change of state, not once per reconnect attempt.
    assert_eq!(log.matches("cannot log in").count(), 1, "{log}");
}

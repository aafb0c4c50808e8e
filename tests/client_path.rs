//! The rep's own mail client as an approval path, end to end: the daemon runs in-process against
//! Dovecot and the SMTP sink while the test plays the rep's mail client with its own IMAP session,
//! saving, deleting and sending in Drafts and Sent. After each client action an unrelated message
//! is delivered to wake the watcher (it IDLEs on the inbox). Each scenario asserts on the store and
//! on what the servers hold: the edited text is what gets sent, a deleted draft stays rejected
//! across a restart, and a reply sent from the client is never sent again by pushback.

mod support;

use chrono::{DateTime, Utc};
use mail_parser::MessageParser;
use pushback::adapters::imap::{ImapSettings, Session};
use pushback::adapters::secret::{Auth, Secret};
use pushback::adapters::store::{ApprovedVia, DraftRecord, DraftStatus, Store};
use pushback::config::{Config, Security};
use std::path::Path;
use std::time::Duration;
use support::MailServers;
use support::pushback::{BUYER, Daemon, original_id, pushback_cli, rfp, wait_for, write_config};

/// Mail that is no procurement: delivered only to wake the watcher.
fn lunch(n: u32) -> Vec<u8> {
    format!(
        "From: Sam <sam@northwind.example>\r\nTo: alice@northwind.example\r\n\
         Subject: Lunch?\r\nMessage-ID: <lunch-{n}@northwind.example>\r\n\r\nRamen on Thursday?\r\n"
    )
    .into_bytes()
}

/// A reply to RFP `n` as the rep's own client writes it: its own Message-ID, threaded by
/// `threading` (In-Reply-To and/or References header lines).
fn client_reply(message_id: &str, threading: &str, date: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alex Rivera <alice@northwind.example>\r\n\
         To: Dana Whitfield <{BUYER}>\r\n\
         Subject: Re: Request for Proposal RFP - Fleet Telematics\r\n\
         Date: {date}\r\n\
         Message-ID: <{message_id}>\r\n\
         {threading}\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         {body}\r\n"
    )
    .into_bytes()
}

/// The rep's mail client: its own IMAP session on alice's mailbox.
struct MailClient {
    runtime: tokio::runtime::Runtime,
    session: Session,
}

impl MailClient {
    fn connect(servers: &MailServers) -> MailClient {
        let (user, password) = servers.user();
        let settings = ImapSettings {
            host: servers.host().to_string(),
            port: servers.imap_port(),
            security: Security::Starttls,
            auth: Auth::Password {
                user: user.to_string(),
                password: Secret::new(password),
            },
            ca_file: Some(servers.ca_file().to_path_buf()),
            accept_invalid_certs: false,
            timeout: Duration::from_secs(10),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let session = runtime.block_on(Session::connect(&settings)).unwrap();
        MailClient { runtime, session }
    }

    fn save(&mut self, folder: &str, flags: &[&str], raw: &[u8]) {
        self.runtime
            .block_on(self.session.append(folder, flags, raw))
            .unwrap();
    }

    fn delete_by_message_id(&mut self, folder: &str, message_id: &str) {
        let session = &mut self.session;
        self.runtime.block_on(async {
            let uids = session
                .find_by_header(folder, "Message-ID", &format!("<{message_id}>"))
                .await
                .unwrap();
            assert_eq!(uids.len(), 1, "{message_id} is in {folder}");
            session.delete(folder, &uids).await.unwrap();
        });
    }
}

fn stored_draft(state: &Path, id: i64) -> DraftRecord {
    Store::open(state).unwrap().draft(id).unwrap().unwrap()
}

/// The Message-IDs the drafts in the server's Drafts folder reply to, and their own.
fn drafts_on_server(servers: &MailServers) -> Vec<(String, String)> {
    servers
        .folder("Drafts")
        .iter()
        .map(|draft| {
            let parsed = MessageParser::default().parse(&draft.raw).unwrap();
            (
                parsed
                    .in_reply_to()
                    .as_text()
                    .unwrap_or_default()
                    .to_string(),
                parsed.message_id().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Delivers RFP `n` and returns the Message-ID of the draft the daemon placed for it.
fn placed_draft_for(servers: &MailServers, n: u32) -> String {
    servers.deliver(&rfp(n));
    wait_for("the draft in Drafts", Duration::from_secs(20), || {
        drafts_on_server(servers)
            .into_iter()
            .find(|(replies_to, _)| *replies_to == original_id(n))
            .map(|(_, message_id)| message_id)
    })
}

#[test]
fn a_draft_edited_in_the_client_is_adopted_and_approval_sends_the_edited_text_once() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(&servers, dir.path());
    let state = dir.path().join("state");
    let daemon = Daemon::start(Config::load(&config_path).unwrap());
    let ours = placed_draft_for(&servers, 31);

    // Save as a new message, delete the old one: what mail clients do when a draft is edited.
    let mut client = MailClient::connect(&servers);
    let edited =
        "Hi Dana,\r\n\r\nEdited in my own mail client: we will submit by March 10.\r\n\r\nAlex";
    let threading = format!(
        "In-Reply-To: <{id}>\r\nReferences: <{id}>\r\n",
        id = original_id(31)
    );
    client.save(
        "Drafts",
        &["\\Draft"],
        &client_reply(
            "edit-1@client.northwind.example",
            &threading,
            "Tue, 23 Feb 2027 10:30:00 +0000",
            edited,
        ),
    );
    client.delete_by_message_id("Drafts", &ours);
    servers.deliver(&lunch(1));

    let adopted = wait_for("the edit adopted", Duration::from_secs(20), || {
        let draft = stored_draft(&state, 1);
        (draft.message_id == "edit-1@client.northwind.example").then_some(draft)
    });
    assert_eq!(adopted.status, DraftStatus::Pending);
    assert_eq!(adopted.version, 2);
    assert!(
        adopted.body.contains("Edited in my own mail client"),
        "{:?}",
        adopted.body
    );
    assert_eq!(
        drafts_on_server(&servers),
        [(
            original_id(31),
            "edit-1@client.northwind.example".to_string()
        )],
        "the rep's version is the only draft"
    );

    pushback_cli(&config_path, &["drafts", "approve", "1"]);
    wait_for("the send", Duration::from_secs(20), || {
        (!servers.smtp_received().is_empty()).then_some(())
    });
    // Long enough for the daemon's outbox round (every 10 s) to send it again if it would.
    std::thread::sleep(Duration::from_secs(11));
    let received = servers.smtp_received();
    assert_eq!(received.len(), 1, "exactly one send");
    assert_eq!(received[0].rcpt_tos, [BUYER]);
    let sent = MessageParser::default().parse(&received[0].raw).unwrap();
    assert_eq!(sent.message_id(), Some("edit-1@client.northwind.example"));
    assert_eq!(sent.in_reply_to().as_text(), Some(original_id(31).as_str()));
    assert!(
        sent.body_text(0)
            .unwrap()
            .contains("Edited in my own mail client"),
        "the edited text is what was sent"
    );
    assert!(drafts_on_server(&servers).is_empty(), "the draft is gone");
    daemon.stop();
    assert_eq!(stored_draft(&state, 1).status, DraftStatus::Sent);
}

#[test]
fn a_draft_deleted_in_the_client_is_rejected_and_never_recreated() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(&servers, dir.path());
    let state = dir.path().join("state");
    let config = Config::load(&config_path).unwrap();
    let daemon = Daemon::start(config.clone());
    let ours = placed_draft_for(&servers, 32);

    let mut client = MailClient::connect(&servers);
    client.delete_by_message_id("Drafts", &ours);
    servers.deliver(&lunch(1));
    wait_for("the rejection", Duration::from_secs(20), || {
        (stored_draft(&state, 1).status == DraftStatus::Rejected).then_some(())
    });
    assert!(
        Store::open(&state)
            .unwrap()
            .feedback_examples()
            .unwrap()
            .is_empty(),
        "a deletion says nothing about the classification"
    );

    // More mail, a restart and a renumbered inbox (which rescans the backfill window): RFP 32
    // still gets no second draft.
    placed_draft_for(&servers, 33);
    daemon.stop();
    servers.change_uidvalidity("INBOX");
    let daemon = Daemon::start(config);
    placed_draft_for(&servers, 34);
    std::thread::sleep(Duration::from_secs(2));
    daemon.stop();

    let mut replied_to: Vec<String> = drafts_on_server(&servers)
        .into_iter()
        .map(|(replies_to, _)| replies_to)
        .collect();
    replied_to.sort();
    assert_eq!(replied_to, [original_id(33), original_id(34)]);
    let store = Store::open(&state).unwrap();
    let drafts = store.drafts(None).unwrap();
    assert_eq!(drafts.len(), 3, "{drafts:#?}");
    let for_32: Vec<&DraftRecord> = drafts
        .iter()
        .filter(|d| d.in_reply_to.as_deref() == Some(original_id(32).as_str()))
        .collect();
    assert_eq!(for_32.len(), 1);
    assert_eq!(for_32[0].status, DraftStatus::Rejected);
    assert!(servers.smtp_received().is_empty());
}

/// Asserts draft 1 was recorded as sent from the rep's client at `sent_at`, and that pushback
/// sends nothing for it, not even after an outbox round.
fn assert_sent_by_client(servers: &MailServers, state: &Path, sent_at: &str) {
    let store = Store::open(state).unwrap();
    let approval = store.approval(1).unwrap().unwrap();
    assert_eq!(approval.via, ApprovedVia::ClientSent);
    assert_eq!(
        approval.approved_at,
        DateTime::parse_from_rfc2822(sent_at)
            .unwrap()
            .with_timezone(&Utc),
        "follow-ups start when the rep sent it"
    );
    assert!(
        store.outbox_pending().unwrap().is_empty(),
        "nothing to send"
    );
    // Long enough for the daemon's outbox round (every 10 s) to send it if it would.
    std::thread::sleep(Duration::from_secs(11));
    assert!(
        servers.smtp_received().is_empty(),
        "pushback never sends what the rep sent"
    );
    assert!(drafts_on_server(servers).is_empty(), "no draft left");
    assert_eq!(servers.folder("Sent").len(), 1, "only the rep's own copy");
}

#[test]
fn a_reply_sent_from_the_client_counts_as_approved_and_sent_and_is_never_sent_again() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let daemon = Daemon::start(Config::load(&write_config(&servers, dir.path())).unwrap());
    let ours = placed_draft_for(&servers, 35);

    let mut client = MailClient::connect(&servers);
    let sent_at = "Tue, 23 Feb 2027 10:30:00 +0000";
    let threading = format!(
        "In-Reply-To: <{id}>\r\nReferences: <{id}>\r\n",
        id = original_id(35)
    );
    client.save(
        "Sent",
        &["\\Seen"],
        &client_reply(
            "sent-1@client.northwind.example",
            &threading,
            sent_at,
            "Hi Dana, we will respond.",
        ),
    );
    client.delete_by_message_id("Drafts", &ours);
    servers.deliver(&lunch(1));

    wait_for(
        "the draft recorded as sent",
        Duration::from_secs(20),
        || (stored_draft(&state, 1).status == DraftStatus::Sent).then_some(()),
    );
    assert_sent_by_client(&servers, &state, sent_at);
    daemon.stop();
}

#[test]
fn a_later_reply_of_the_reps_in_the_thread_settles_the_draft_and_removes_it_from_drafts() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let daemon = Daemon::start(Config::load(&write_config(&servers, dir.path())).unwrap());
    placed_draft_for(&servers, 36);

    // The rep answered a colleague's message in the same thread (only References names the
    // original) and left pushback's draft where it was.
    let mut client = MailClient::connect(&servers);
    let sent_at = "Wed, 24 Feb 2027 16:05:00 +0100";
    let threading = format!(
        "In-Reply-To: <colleague-1@northwind.example>\r\n\
         References: <{id}> <colleague-1@northwind.example>\r\n",
        id = original_id(36)
    );
    client.save(
        "Sent",
        &["\\Seen"],
        &client_reply(
            "sent-2@client.northwind.example",
            &threading,
            sent_at,
            "Hi Dana, Sam and I will handle this.",
        ),
    );
    servers.deliver(&lunch(1));

    wait_for(
        "the draft recorded as sent",
        Duration::from_secs(20),
        || (stored_draft(&state, 1).status == DraftStatus::Sent).then_some(()),
    );
    assert_sent_by_client(&servers, &state, sent_at);
    daemon.stop();
}

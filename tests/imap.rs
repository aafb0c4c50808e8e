//! The IMAP adapter against a real Dovecot (tests/support): every test checks what the server
//! holds afterwards, read back with doveadm, not only what the adapter said.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use pushback::adapters::imap::{Error, IdleOutcome, ImapSettings, Session};
use pushback::adapters::secret::{Auth, Secret};
use pushback::config::Security;
use support::MailServers;

fn settings(servers: &MailServers, security: Security) -> ImapSettings {
    let (user, password) = servers.user();
    ImapSettings {
        host: servers.host().to_string(),
        port: match security {
            Security::Tls => servers.imaps_port(),
            Security::Starttls | Security::Plain => servers.imap_port(),
        },
        security,
        auth: Auth::Password {
            user: user.to_string(),
            password: Secret::new(password),
        },
        ca_file: Some(servers.ca_file().to_path_buf()),
        accept_invalid_certs: false,
        timeout: Duration::from_secs(10),
    }
}

async fn connect(servers: &MailServers) -> Session {
    Session::connect(&settings(servers, Security::Starttls))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", servers.log_tail()))
}

async fn drafts_folder(session: &mut Session) -> String {
    session
        .special_folders("Drafts", "Sent")
        .await
        .unwrap()
        .drafts
}

fn message(id: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Buyer <buyer@acme.example>\r\nTo: alice@northwind.example\r\n\
         Subject: {subject}\r\nMessage-ID: <{id}>\r\nDate: Fri, 27 Nov 2026 09:00:00 +0000\r\n\
         \r\n{body}\r\n"
    )
    .into_bytes()
}

fn uids(servers: &MailServers, folder: &str) -> Vec<u32> {
    servers.folder(folder).iter().map(|m| m.uid).collect()
}

#[tokio::test]
async fn starttls_and_implicit_tls_log_in_trusting_the_harness_ca() {
    let servers = MailServers::start();
    for security in [Security::Starttls, Security::Tls] {
        let mut session = Session::connect(&settings(&servers, security))
            .await
            .unwrap_or_else(|e| panic!("{security:?}: {e}"));
        let caps = session.capabilities().clone();
        assert!(caps.idle && caps.uidplus && caps.special_use, "{caps:?}");
        let state = session.select("INBOX").await.unwrap();
        assert_eq!(state.uid_validity, servers.uidvalidity("INBOX"));
        assert_eq!(state.exists, 0);
        session.logout().await.unwrap();
    }
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused_unless_invalid_certs_are_accepted() {
    let servers = MailServers::start();
    for security in [Security::Starttls, Security::Tls] {
        let mut untrusting = settings(&servers, security);
        untrusting.ca_file = None;
        let error = Session::connect(&untrusting).await.unwrap_err();
        assert!(matches!(error, Error::Certificate { .. }), "{error}");
        assert!(!error.is_transient());
        let text = error.to_string();
        assert!(
            text.contains(&format!("127.0.0.1:{}", untrusting.port)),
            "{text}"
        );

        untrusting.accept_invalid_certs = true;
        let mut session = Session::connect(&untrusting).await.unwrap();
        let state = session.select("INBOX").await.unwrap();
        assert_eq!(state.uid_validity, servers.uidvalidity("INBOX"));
    }
}

#[tokio::test]
async fn implicit_tls_to_the_plain_text_port_is_a_permanent_error() {
    let servers = MailServers::start();
    let mut wrong_port = settings(&servers, Security::Tls);
    wrong_port.port = servers.imap_port();
    let error = Session::connect(&wrong_port).await.unwrap_err();
    assert!(matches!(error, Error::Handshake { .. }), "{error}");
    assert!(!error.is_transient(), "{error}");
    // The server is fine: the right port works.
    let mut session = connect(&servers).await;
    assert_eq!(
        session.select("INBOX").await.unwrap().uid_validity,
        servers.uidvalidity("INBOX")
    );
}

#[tokio::test]
async fn plain_is_allowed_to_loopback_only() {
    let servers = MailServers::start();
    let mut session = Session::connect(&settings(&servers, Security::Plain))
        .await
        .unwrap();
    assert_eq!(
        session.select("INBOX").await.unwrap().uid_validity,
        servers.uidvalidity("INBOX")
    );

    let mut remote = settings(&servers, Security::Plain);
    // TEST-NET-1 (RFC 5737): a connection attempt would hang until the timeout, not fail fast.
    remote.host = "192.0.2.1".into();
    let started = Instant::now();
    let error = Session::connect(&remote).await.unwrap_err();
    assert!(matches!(error, Error::PlainToRemoteHost { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(!error.is_transient());
}

#[tokio::test]
async fn a_wrong_password_names_host_and_user_and_never_the_password() {
    let servers = MailServers::start();
    let mut wrong = settings(&servers, Security::Starttls);
    let (user, _) = servers.user();
    wrong.auth = Auth::Password {
        user: user.to_string(),
        password: Secret::new("not-the-pw-81723"),
    };
    let error = Session::connect(&wrong).await.unwrap_err();
    assert!(matches!(error, Error::Login { .. }), "{error}");
    assert!(!error.is_transient());
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(text.contains("127.0.0.1") && text.contains(user), "{text}");
        assert!(text.contains(&wrong.port.to_string()), "{text}");
        assert!(!text.contains("not-the-pw-81723"), "{text}");
    }
    assert!(
        error.to_string().contains("AUTHENTICATIONFAILED"),
        "{error}"
    );
}

#[tokio::test]
async fn xoauth2_logs_in_with_the_token_and_a_wrong_token_is_refused() {
    let servers = MailServers::start();
    let (user, _) = servers.user();
    let mut oauth = settings(&servers, Security::Tls);
    oauth.auth = Auth::XOAuth2 {
        user: user.to_string(),
        token: Secret::new(servers.xoauth2_token()),
    };
    let mut session = Session::connect(&oauth).await.unwrap();
    assert!(
        session.capabilities().uidplus,
        "capabilities asked after AUTHENTICATE"
    );
    assert_eq!(
        session.select("INBOX").await.unwrap().uid_validity,
        servers.uidvalidity("INBOX")
    );

    oauth.auth = Auth::XOAuth2 {
        user: user.to_string(),
        token: Secret::new("ya29.wrong-token-5521"),
    };
    let error = Session::connect(&oauth).await.unwrap_err();
    assert!(matches!(error, Error::Login { .. }), "{error}");
    assert!(!error.is_transient());
    assert!(error.to_string().contains(user), "{error}");
    assert!(!format!("{error} {error:?}").contains("wrong-token-5521"));
}

#[tokio::test]
async fn special_folders_come_from_special_use_not_the_fallbacks() {
    let servers = MailServers::start();
    let mut session = connect(&servers).await;
    let folders = session
        .special_folders("Configured Drafts", "Configured Sent")
        .await
        .unwrap();
    assert_eq!(
        (folders.drafts.as_str(), folders.sent.as_str()),
        ("Drafts", "Sent")
    );
    // Both exist on the server: a select of each succeeds and matches doveadm's UIDVALIDITY.
    for folder in [&folders.drafts, &folders.sent] {
        let state = session.select(folder).await.unwrap();
        assert_eq!(state.uid_validity, servers.uidvalidity(folder));
    }
}

#[tokio::test]
async fn idle_returns_new_data_on_delivery_and_times_out_when_nothing_arrives() {
    let servers = Arc::new(MailServers::start());
    let mut session = connect(&servers).await;
    session.select("INBOX").await.unwrap();

    let started = Instant::now();
    let (session, outcome) = session
        .idle(Duration::from_secs(1), std::future::pending())
        .await
        .unwrap();
    assert_eq!(outcome, IdleOutcome::Timeout);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert!(servers.folder("INBOX").is_empty());

    let delivering = servers.clone();
    let delivery = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(300));
        delivering.deliver(&message("idle-1@acme.example", "RFQ 1", "Quote please."));
        Instant::now()
    });
    let (mut session, outcome) = session
        .idle(Duration::from_secs(30), std::future::pending())
        .await
        .unwrap();
    let woke = Instant::now();
    let delivered = delivery.await.unwrap();
    assert_eq!(outcome, IdleOutcome::NewData);
    // Dovecot batches notifications for about 0.5 s.
    assert!(woke.duration_since(delivered) < Duration::from_secs(2));
    let held = uids(&servers, "INBOX");
    assert_eq!(held.len(), 1);
    assert_eq!(session.uids_above(0).await.unwrap(), held);
    session.logout().await.unwrap();
}

#[tokio::test]
async fn idle_stops_on_shutdown_and_the_session_goes_on() {
    let servers = MailServers::start();
    let mut session = connect(&servers).await;
    session.select("INBOX").await.unwrap();
    let started = Instant::now();
    let (mut session, outcome) = session
        .idle(
            Duration::from_secs(60),
            tokio::time::sleep(Duration::from_millis(200)),
        )
        .await
        .unwrap();
    assert_eq!(outcome, IdleOutcome::Shutdown);
    assert!(started.elapsed() < Duration::from_secs(2));
    servers.deliver(&message("after-idle@acme.example", "RFQ 2", "Hello."));
    assert_eq!(
        session.uids_above(0).await.unwrap(),
        uids(&servers, "INBOX")
    );
}

#[tokio::test]
async fn new_mail_seen_between_commands_wakes_the_next_idle_at_once() {
    let servers = MailServers::start();
    let mut session = connect(&servers).await;
    session.select("INBOX").await.unwrap();
    servers.deliver(&message("between@acme.example", "RFQ 3", "Hello."));
    // The EXISTS for INBOX rides along with this command's reply, before the caller idles.
    session
        .append(
            "Drafts",
            &["\\Draft"],
            &message("d@pushback.test", "Re", "Hi"),
        )
        .await
        .unwrap();
    // Reading from the watched folder must not swallow the news either.
    let uid = uids(&servers, "INBOX")[0];
    assert!(session.fetch_full("INBOX", uid).await.unwrap().is_some());
    let started = Instant::now();
    let (_, outcome) = session
        .idle(Duration::from_secs(10), std::future::pending())
        .await
        .unwrap();
    assert_eq!(outcome, IdleOutcome::NewData);
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(servers.folder("INBOX").len(), 1);
    assert_eq!(servers.folder("Drafts").len(), 1);
}

#[tokio::test]
async fn uids_since_and_uids_above() {
    let servers = MailServers::start();
    for n in 1..=3 {
        servers.deliver(&message(&format!("m{n}@acme.example"), "RFQ", "Body"));
    }
    let held = uids(&servers, "INBOX");
    assert_eq!(held.len(), 3);
    let mut session = connect(&servers).await;
    let state = session.select("INBOX").await.unwrap();
    assert_eq!(state.exists, 3);
    assert_eq!(state.uid_next, Some(held[2] + 1));

    assert_eq!(session.uids_above(0).await.unwrap(), held);
    assert_eq!(session.uids_above(held[0]).await.unwrap(), held[1..]);
    // `UID n:*` with n above the last UID still matches the last message; it must not count.
    assert_eq!(
        session.uids_above(held[2]).await.unwrap(),
        Vec::<u32>::new()
    );
    assert_eq!(
        session.uids_above(u32::MAX).await.unwrap(),
        Vec::<u32>::new()
    );

    let today = Utc::now().date_naive();
    assert_eq!(
        session.uids_since(today - Days::new(1)).await.unwrap(),
        held
    );
    assert_eq!(
        session.uids_since(today + Days::new(2)).await.unwrap(),
        Vec::<u32>::new()
    );
}

#[tokio::test]
async fn fetch_heads_cuts_at_max_bytes_and_never_sets_seen() {
    let servers = MailServers::start();
    servers.deliver(&message("small@acme.example", "Small", "Short body."));
    servers.deliver(&message("large@acme.example", "Large", &"x".repeat(20_000)));
    let stored = servers.folder("INBOX");
    let mut session = connect(&servers).await;
    session.select("INBOX").await.unwrap();
    let uids: Vec<u32> = stored.iter().map(|m| m.uid).collect();

    let mut fetched = Vec::new();
    session
        .fetch_heads(&uids, 2048, |m| fetched.push(m))
        .await
        .unwrap();
    fetched.sort_by_key(|m| m.uid);
    assert_eq!(fetched.len(), 2);
    assert_eq!(fetched[0].uid, stored[0].uid);
    assert_eq!(fetched[0].raw, stored[0].raw);
    assert!(!fetched[0].truncated);
    assert_eq!(fetched[1].uid, stored[1].uid);
    assert_eq!(fetched[1].raw, stored[1].raw[..2048]);
    assert!(fetched[1].truncated);

    let full = session.fetch_full("INBOX", stored[1].uid).await.unwrap();
    assert_eq!(full.as_deref(), Some(stored[1].raw.as_slice()));
    assert_eq!(session.fetch_full("INBOX", 9999).await.unwrap(), None);

    for message in servers.folder("INBOX") {
        assert!(!message.has_flag("\\Seen"), "{:?}", message.flags);
    }
}

#[tokio::test]
async fn fetch_heads_walks_a_large_backfill_in_batches() {
    let servers = MailServers::start();
    let raws: Vec<Vec<u8>> = (0..450)
        .map(|n| message(&format!("bulk-{n}@acme.example"), "Bulk", "Body"))
        .collect();
    servers.deliver_many(&raws);
    let held = uids(&servers, "INBOX");
    assert_eq!(held.len(), 450);
    let mut session = connect(&servers).await;
    session.select("INBOX").await.unwrap();
    let since = session.uids_above(0).await.unwrap();
    assert_eq!(since, held);

    let mut seen = Vec::new();
    session
        .fetch_heads(&since, 100, |m| {
            assert!(m.raw.len() <= 100);
            seen.push(m.uid);
        })
        .await
        .unwrap();
    assert_eq!(seen.iter().copied().collect::<HashSet<_>>().len(), 450);
    assert_eq!(
        seen.into_iter().collect::<HashSet<_>>(),
        held.into_iter().collect()
    );
    assert!(
        servers
            .folder("INBOX")
            .iter()
            .all(|m| !m.has_flag("\\Seen"))
    );
}

#[tokio::test]
async fn status_counts_change_with_every_message_added_or_removed() {
    let servers = MailServers::start();
    let mut session = connect(&servers).await;
    let drafts = drafts_folder(&mut session).await;
    session.select("INBOX").await.unwrap();
    let empty = session.status(&drafts).await.unwrap();
    assert_eq!(empty.exists, 0);
    assert_eq!(empty.uid_validity, servers.uidvalidity("Drafts"));
    assert_eq!(session.status(&drafts).await.unwrap(), empty, "unchanged");

    let raw = message("status-1@pushback.test", "Re: RFQ", "Happy to talk first.");
    let uid = session
        .append(&drafts, &["\\Draft"], &raw)
        .await
        .unwrap()
        .unwrap()
        .uid;
    let one = session.status(&drafts).await.unwrap();
    assert_eq!(one.exists, 1);
    assert_ne!(one.uid_next, empty.uid_next);

    session.delete(&drafts, &[uid]).await.unwrap();
    let gone = session.status(&drafts).await.unwrap();
    assert_eq!(gone.exists, 0);
    assert_ne!(
        gone, empty,
        "the next UID stays higher, so the folder still reads as changed"
    );
    assert!(session.status("No Such Folder").await.is_err());
}

#[tokio::test]
async fn one_search_finds_messages_by_any_of_many_header_values() {
    let servers = MailServers::start();
    let mut session = connect(&servers).await;
    let drafts = drafts_folder(&mut session).await;
    let mut uids = Vec::new();
    for n in [3, 77, 140] {
        let raw = message(
            &format!("many-{n}@pushback.test"),
            "Re: RFQ",
            "Happy to talk first.",
        );
        let appended = session.append(&drafts, &["\\Draft"], &raw).await.unwrap();
        uids.push(appended.expect("Dovecot has UIDPLUS").uid);
    }
    // 150 values: three searches of up to 50 ORed keys, with a match in each.
    let wanted: Vec<String> = (0..150)
        .map(|n| format!("<many-{n}@pushback.test>"))
        .collect();
    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    assert_eq!(
        session
            .find_by_any_header(&drafts, "Message-ID", &wanted)
            .await
            .unwrap(),
        uids
    );
    assert_eq!(
        session
            .find_by_any_header(&drafts, "Message-ID", &wanted[4..70])
            .await
            .unwrap(),
        Vec::<u32>::new()
    );
    assert_eq!(
        session
            .find_by_any_header(&drafts, "Message-ID", &[])
            .await
            .unwrap(),
        Vec::<u32>::new()
    );
}

#[tokio::test]
async fn a_draft_is_appended_found_by_message_id_and_deleted() {
    let servers = MailServers::start();
    let mut session = connect(&servers).await;
    let drafts = drafts_folder(&mut session).await;
    let raw = message("draft-1@pushback.test", "Re: RFQ", "Happy to talk first.");

    let appended = session
        .append(&drafts, &["\\Draft"], &raw)
        .await
        .unwrap()
        .expect("Dovecot has UIDPLUS");
    let held = servers.folder("Drafts");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].uid, appended.uid);
    assert_eq!(appended.uid_validity, servers.uidvalidity("Drafts"));
    assert!(held[0].has_flag("\\Draft"), "{:?}", held[0].flags);
    assert!(!held[0].has_flag("\\Seen"));
    assert_eq!(held[0].raw, raw);

    assert_eq!(
        session
            .find_by_header(&drafts, "Message-ID", "<draft-1@pushback.test>")
            .await
            .unwrap(),
        [appended.uid]
    );
    assert_eq!(
        session
            .find_by_header(&drafts, "Message-ID", "<draft-2@pushback.test>")
            .await
            .unwrap(),
        Vec::<u32>::new()
    );
    assert_eq!(
        session.fetch_full(&drafts, appended.uid).await.unwrap(),
        Some(raw)
    );

    session.delete(&drafts, &[appended.uid]).await.unwrap();
    assert!(servers.folder("Drafts").is_empty());
}

#[tokio::test]
async fn sent_copies_keep_seen_and_localised_folder_names_work() {
    let servers = MailServers::start();
    servers.doveadm(&["mailbox", "create", "-u", servers.user().0, "Entwürfe"]);
    let mut session = connect(&servers).await;
    let raw = message("sent-1@pushback.test", "Re: RFQ", "Sent.");
    let sent = session
        .append("Sent", &["\\Seen"], &raw)
        .await
        .unwrap()
        .unwrap();
    let held = servers.folder("Sent");
    assert_eq!((held[0].uid, held[0].has_flag("\\Seen")), (sent.uid, true));

    let draft = session
        .append("Entwürfe", &["\\Draft"], &raw)
        .await
        .unwrap()
        .unwrap();
    let held = servers.folder("Entwürfe");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].uid, draft.uid);
    assert_eq!(
        session
            .find_by_header("Entwürfe", "Message-ID", "<sent-1@pushback.test>")
            .await
            .unwrap(),
        [draft.uid]
    );
}

#[tokio::test]
async fn a_refused_command_is_permanent_and_the_session_goes_on() {
    let servers = MailServers::start();
    let mut session = connect(&servers).await;
    let error = session.select("No Such Folder").await.unwrap_err();
    assert!(matches!(error, Error::Rejected { .. }), "{error}");
    assert!(!error.is_transient());
    assert!(error.to_string().contains("No Such Folder"), "{error}");
    let error = session.uids_above(0).await.unwrap_err();
    assert!(matches!(error, Error::InvalidArgument { .. }), "{error}");
    let error = session
        .append(
            "No Such Folder",
            &["\\Draft"],
            &message("x@pushback.test", "Re", "Hi"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Rejected { .. }), "{error}");
    assert!(!error.is_transient());
    assert!(servers.folder("Drafts").is_empty());
    assert_eq!(
        session.select("INBOX").await.unwrap().uid_validity,
        servers.uidvalidity("INBOX")
    );
}

#[tokio::test]
async fn a_changed_uidvalidity_shows_on_the_next_select() {
    let servers = MailServers::start();
    let mut session = connect(&servers).await;
    let before = session.select("INBOX").await.unwrap().uid_validity;
    servers.change_uidvalidity("INBOX");
    let mut fresh = connect(&servers).await;
    let after = fresh.select("INBOX").await.unwrap().uid_validity;
    assert_ne!(before, after);
    assert_eq!(after, servers.uidvalidity("INBOX"));
}

#[tokio::test]
async fn a_stopped_server_gives_transient_errors_until_it_is_back() {
    let servers = MailServers::start();
    servers.deliver(&message("m@acme.example", "RFQ", "Body"));
    let mut session = connect(&servers).await;
    session.select("INBOX").await.unwrap();
    servers.stop_imap();

    let error = session.uids_above(0).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    // The session knows it is broken and does not touch the wire again.
    let again = session.uids_above(0).await.unwrap_err();
    assert!(matches!(again, Error::Disconnected { .. }), "{again}");
    assert!(again.is_transient());
    assert_eq!(again.to_string().matches("cannot").count(), 1, "{again}");
    let error = Session::connect(&settings(&servers, Security::Starttls))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error}");
    assert!(error.is_transient());

    servers.start_imap();
    let mut session = connect(&servers).await;
    session.select("INBOX").await.unwrap();
    assert_eq!(
        session.uids_above(0).await.unwrap(),
        uids(&servers, "INBOX")
    );
}

//! Sending approved drafts for real: lettre against SMTP servers on loopback (a scripted server
//! in this file for exact replies) and the sendmail-command transport against a script that
//! records what it was given. Each test gets its own temp dir, store and ports.

use chrono::{DateTime, TimeZone, Utc};
mod support;

use pushback::adapters::maildir::Maildir;
use pushback::adapters::secret::{Auth, Secret};
use pushback::adapters::smtp::{
    Envelope, SendError, SendmailTransport, SmtpSettings, Transport, smtp_transport,
};
use pushback::adapters::store::{
    ApprovedVia, DraftStatus, NewDraft, RecordOutcome, ScannedMessage, Store,
};
use pushback::app::outbox::{Delivery, deliver_pending};
use pushback::config::Security;
use pushback::core::model::{Category, Classification, Facts, Label};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::MailServers;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 10, minute, 0).unwrap()
}

fn draft_raw(key: &str) -> Vec<u8> {
    format!(
        "From: Alex Rivera <alex@northwind.example>\r\n\
         To: Pat Buyer <pat@buyer.example>\r\n\
         Cc: lee@buyer.example\r\n\
         Subject: Re: RFP {key}\r\n\
         Message-ID: <draft-{key}@northwind.example>\r\n\
         \r\n\
         Hi Pat,\r\n\r\nThanks for thinking of us.\r\n"
    )
    .into_bytes()
}

struct Sandbox {
    _dir: tempfile::TempDir,
    maildir: Maildir,
    store: Store,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let maildir = Maildir::create(&dir.path().join("Mail")).unwrap();
        let store = Store::open(&dir.path().join("state")).unwrap();
        Sandbox {
            _dir: dir,
            maildir,
            store,
        }
    }

    /// Records a draft for `key`, writes it to Drafts and approves it from the CLI path.
    fn approved(&mut self, key: &str) -> i64 {
        let raw = draft_raw(key);
        let scan = ScannedMessage {
            mailbox: "INBOX".into(),
            key: key.into(),
            message_id: Some(format!("<{key}@buyer.example>")),
            subject: "RFP".into(),
            sender: Some("pat@buyer.example".into()),
            date: None,
            classification: Classification {
                label: Label::Procurement,
                category: Category::Rfp,
                score: 4.0,
                reasons: Vec::new(),
            },
            facts: Facts::default(),
            draft: Some(NewDraft {
                in_reply_to: Some(format!("<{key}@buyer.example>")),
                message_id: format!("<draft-{key}@northwind.example>"),
                subject: format!("Re: RFP {key}"),
                recipient: "pat@buyer.example".into(),
                category: Category::Rfp,
                body: "Hi Pat".into(),
                raw: raw.clone(),
                original: b"Subject: RFP\r\n\r\nPlease quote".to_vec(),
                notes: Vec::new(),
                folder_name: format!("pushback-{key}"),
                proposed_slots: Vec::new(),
                source: None,
            }),
            reminders: Vec::new(),
            reply: None,
            progress: None,
        };
        let Ok(RecordOutcome::Recorded { draft_id: Some(id) }) =
            self.store.record_scan(&scan, at(0))
        else {
            panic!("no draft recorded for {key}");
        };
        self.maildir
            .write_draft(&format!("pushback-{key}"), &raw)
            .unwrap();
        self.store
            .approve(id, ApprovedVia::Cli, &[], at(0))
            .unwrap();
        id
    }

    async fn deliver(&mut self, transport: &dyn Transport, now: DateTime<Utc>) -> Delivery {
        let mut folder = &self.maildir;
        deliver_pending(&mut self.store, transport, &mut folder, now)
            .await
            .unwrap()
    }

    fn status(&self, id: i64) -> DraftStatus {
        self.store.draft(id).unwrap().unwrap().status
    }

    fn last_error(&self, id: i64) -> String {
        let items = self.store.outbox_pending().unwrap();
        let item = items.iter().find(|i| i.draft_id == id).unwrap();
        item.last_error.clone().unwrap()
    }
}

fn plain_settings(port: u16) -> SmtpSettings {
    SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        security: Security::Plain,
        auth: None,
        ca_file: None,
        accept_invalid_certs: false,
        timeout: Duration::from_secs(5),
    }
}

/// A one-connection SMTP server that offers AUTH XOAUTH2 (and accepts any), answers RCPT TO with
/// `rcpt_reply` and records every command line it receives.
async fn scripted_server(rcpt_reply: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&lines);
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let (read, mut write) = socket.into_split();
        let mut read = BufReader::new(read);
        write.write_all(b"220 scripted ESMTP\r\n").await.unwrap();
        let mut line = String::new();
        while read.read_line(&mut line).await.unwrap_or(0) > 0 {
            let command = line.trim_end().to_string();
            line.clear();
            seen.lock().unwrap().push(command.clone());
            let verb = command
                .split([' ', ':'])
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let reply = match verb.as_str() {
                "EHLO" | "HELO" => "250-scripted\r\n250 AUTH XOAUTH2\r\n",
                "AUTH" => "235 2.7.0 accepted\r\n",
                "MAIL" | "RSET" | "NOOP" => "250 2.0.0 ok\r\n",
                "RCPT" => rcpt_reply,
                "QUIT" => {
                    let _ = write.write_all(b"221 bye\r\n").await;
                    break;
                }
                _ => "502 5.5.2 not here\r\n",
            };
            if write.write_all(reply.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    (port, lines)
}

#[tokio::test]
async fn a_5xx_reply_marks_the_draft_failed_with_the_servers_text() {
    let (port, lines) =
        scripted_server("550 5.1.1 <pat@buyer.example>: Recipient address rejected\r\n").await;
    let mut sandbox = Sandbox::new();
    let id = sandbox.approved("k1");
    let transport = smtp_transport(&plain_settings(port)).unwrap();
    let delivery = sandbox.deliver(&transport, at(1)).await;
    assert_eq!(delivery.failed, [id]);
    assert_eq!(sandbox.status(id), DraftStatus::Failed);
    let error = sandbox.last_error(id);
    assert!(error.contains("550"), "{error}");
    assert!(error.contains("Recipient address rejected"), "{error}");
    // The envelope came from the draft's From and first To.
    let lines = lines.lock().unwrap().clone();
    assert!(
        lines.contains(&"MAIL FROM:<alex@northwind.example>".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"RCPT TO:<pat@buyer.example>".to_string()),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l == "DATA"), "{lines:?}");
    // Failed stays failed: a later run does not try again.
    assert_eq!(
        sandbox.deliver(&transport, at(59)).await,
        Delivery::default()
    );
}

#[tokio::test]
async fn a_4xx_reply_is_transient() {
    let (port, _) = scripted_server("451 4.3.0 try again later\r\n").await;
    let transport = smtp_transport(&plain_settings(port)).unwrap();
    let envelope = Envelope::of_message(&draft_raw("k1")).unwrap();
    let error = transport
        .send_raw(&envelope, &draft_raw("k1"))
        .await
        .unwrap_err();
    let SendError::Transient(text) = error else {
        panic!("expected a transient error, got {error:?}");
    };
    assert!(
        text.contains("451") && text.contains("try again later"),
        "{text}"
    );
}

#[tokio::test]
async fn a_closed_port_leaves_the_draft_approved_with_a_retry_time() {
    // Bound but not listening: connections are refused, and no other test can take the port
    // while this one runs (a released port could be).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let mut sandbox = Sandbox::new();
    let id = sandbox.approved("k1");
    let transport = smtp_transport(&plain_settings(port)).unwrap();
    let delivery = sandbox.deliver(&transport, at(1)).await;
    assert_eq!(delivery.retrying, [id]);
    assert_eq!(sandbox.status(id), DraftStatus::Approved);
    let item = &sandbox.store.outbox_pending().unwrap()[0];
    assert_eq!(item.attempts, 1);
    assert_eq!(item.next_attempt_at, Some(at(2)));
    assert!(!sandbox.last_error(id).is_empty());
    assert!(sandbox.maildir.sent().unwrap().is_empty());
    assert_eq!(sandbox.maildir.drafts().unwrap().len(), 1);
}

#[test]
fn plain_to_a_remote_host_is_refused_before_connecting() {
    let mut settings = plain_settings(25);
    settings.host = "smtp.example.com".into();
    let error = smtp_transport(&settings).err().unwrap().to_string();
    assert!(
        error.starts_with("cannot send to smtp.example.com without encryption"),
        "{error}"
    );
}

/// A sendmail stand-in that records its arguments and stdin under `dir`, then exits with
/// `exit_code` (and a complaint on stderr when that is not 0).
fn recording_command(dir: &std::path::Path, exit_code: i32) -> String {
    let script = dir.join("fake-sendmail");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{dir}/args'\ncat > '{dir}/stdin'\n\
             [ {exit_code} -eq 0 ] || echo 'mailbox unavailable' >&2\nexit {exit_code}\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("'{}' -i", script.display())
}

#[tokio::test]
async fn the_sendmail_transport_pipes_the_approved_bytes_once() {
    let mut sandbox = Sandbox::new();
    let id = sandbox.approved("k1");
    let dir = tempfile::tempdir().unwrap();
    let transport =
        SendmailTransport::new(recording_command(dir.path(), 0), Duration::from_secs(10));
    let delivery = sandbox.deliver(&transport, at(1)).await;
    assert_eq!(delivery.sent, [id]);
    assert_eq!(
        std::fs::read(dir.path().join("stdin")).unwrap(),
        draft_raw("k1")
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("args")).unwrap(),
        "-i\npat@buyer.example\nlee@buyer.example\n"
    );
    assert_eq!(sandbox.status(id), DraftStatus::Sent);
    assert_eq!(sandbox.maildir.sent().unwrap().len(), 1);
    assert!(sandbox.maildir.drafts().unwrap().is_empty());
    std::fs::remove_file(dir.path().join("stdin")).unwrap();
    assert_eq!(
        sandbox.deliver(&transport, at(59)).await,
        Delivery::default()
    );
    assert!(!dir.path().join("stdin").exists(), "sent a second time");
}

#[tokio::test]
async fn sendmail_exit_75_is_transient_and_other_failures_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let envelope = Envelope::of_message(&draft_raw("k1")).unwrap();
    let tempfail =
        SendmailTransport::new(recording_command(dir.path(), 75), Duration::from_secs(10));
    let error = tempfail
        .send_raw(&envelope, &draft_raw("k1"))
        .await
        .unwrap_err();
    assert!(matches!(error, SendError::Transient(_)), "{error:?}");
    let broken = SendmailTransport::new(recording_command(dir.path(), 67), Duration::from_secs(10));
    let error = broken
        .send_raw(&envelope, &draft_raw("k1"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        SendError::Permanent("the sendmail command exited with 67: mailbox unavailable".into())
    );
    let hung = SendmailTransport::new("sleep 5; true", Duration::from_millis(200));
    let error = hung
        .send_raw(&envelope, &draft_raw("k1"))
        .await
        .unwrap_err();
    let SendError::Transient(text) = error else {
        panic!("a timeout is transient");
    };
    assert!(text.contains("no exit after"), "{text}");
}

#[tokio::test]
async fn xoauth2_sends_the_token_as_the_bearer() {
    let (port, lines) = scripted_server("250 2.1.5 ok\r\n").await;
    let mut settings = plain_settings(port);
    settings.auth = Some(Auth::XOAuth2 {
        user: "alex@northwind.example".into(),
        token: Secret::new("ya29.token"),
    });
    let transport = smtp_transport(&settings).unwrap();
    let envelope = Envelope::of_message(&draft_raw("k1")).unwrap();
    // The scripted server does not take DATA; what matters is what came before it.
    let _ = transport.send_raw(&envelope, &draft_raw("k1")).await;
    let lines = lines.lock().unwrap().clone();
    let auth = lines.iter().find(|l| l.starts_with("AUTH ")).unwrap();
    let expected = support::xoauth2_initial_response("alex@northwind.example", "ya29.token");
    assert_eq!(auth, &format!("AUTH XOAUTH2 {expected}"));
}

// ---- against the harness's real SMTP sink ----------------------------------------------------

fn harness_settings(servers: &MailServers, port: u16, security: Security) -> SmtpSettings {
    let (user, password) = servers.user();
    SmtpSettings {
        host: servers.host().into(),
        port,
        security,
        auth: Some(Auth::Password {
            user: user.into(),
            password: Secret::new(password),
        }),
        ca_file: Some(servers.ca_file().to_path_buf()),
        accept_invalid_certs: false,
        timeout: Duration::from_secs(10),
    }
}

#[tokio::test]
async fn approve_then_deliver_sends_exactly_that_message_once() {
    let servers = MailServers::start();
    let mut sandbox = Sandbox::new();
    let id = sandbox.approved("k1");
    let transport = smtp_transport(&harness_settings(
        &servers,
        servers.smtp_port(),
        Security::Plain,
    ))
    .unwrap();
    let delivery = sandbox.deliver(&transport, at(1)).await;
    assert_eq!(delivery.sent, [id]);
    let received = servers.smtp_received();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(mail.mail_from, "alex@northwind.example");
    assert_eq!(mail.rcpt_tos, ["pat@buyer.example", "lee@buyer.example"]);
    assert_eq!(mail.auth_user.as_deref(), Some(servers.user().0));
    let message = mail_parser::MessageParser::default()
        .parse(&mail.raw)
        .unwrap();
    assert_eq!(message.message_id(), Some("draft-k1@northwind.example"));
    let draft = sandbox.store.draft(id).unwrap().unwrap();
    assert_eq!(draft.message_id, "<draft-k1@northwind.example>");
    // Regression: byte for byte, without the empty line lettre's DATA ending used to add.
    assert_eq!(mail.raw, draft.raw);
    assert_eq!(sandbox.status(id), DraftStatus::Sent);
    assert_eq!(sandbox.maildir.sent().unwrap().len(), 1);
    assert!(sandbox.maildir.drafts().unwrap().is_empty());
    // A second run sends nothing.
    assert_eq!(
        sandbox.deliver(&transport, at(59)).await,
        Delivery::default()
    );
    assert_eq!(servers.smtp_received().len(), 1);
}

#[tokio::test]
async fn implicit_tls_and_starttls_trust_the_harness_ca() {
    let servers = MailServers::start();
    let envelope = Envelope::of_message(&draft_raw("k1")).unwrap();
    let smtps = smtp_transport(&harness_settings(
        &servers,
        servers.smtps_port(),
        Security::Tls,
    ))
    .unwrap();
    smtps.send_raw(&envelope, &draft_raw("k1")).await.unwrap();
    let starttls = smtp_transport(&harness_settings(
        &servers,
        servers.smtp_port(),
        Security::Starttls,
    ))
    .unwrap();
    starttls
        .send_raw(&envelope, &draft_raw("k2"))
        .await
        .unwrap();
    let received = servers.smtp_received();
    let seen: Vec<(&str, bool, Option<&str>)> = received
        .iter()
        .map(|m| (m.listener.as_str(), m.tls, m.auth_user.as_deref()))
        .collect();
    let user = Some(servers.user().0);
    assert_eq!(seen, [("smtps", true, user), ("smtp", true, user)]);
    assert_eq!(received[0].raw, draft_raw("k1"));
    assert_eq!(received[1].raw, draft_raw("k2"));
}

#[tokio::test]
async fn a_client_without_the_ca_is_refused_and_sends_nothing() {
    let servers = MailServers::start();
    let mut settings = harness_settings(&servers, servers.smtps_port(), Security::Tls);
    settings.ca_file = None;
    let transport = smtp_transport(&settings).unwrap();
    let envelope = Envelope::of_message(&draft_raw("k1")).unwrap();
    let error = transport
        .send_raw(&envelope, &draft_raw("k1"))
        .await
        .unwrap_err();
    let SendError::Transient(text) = &error else {
        panic!("a TLS failure is worth retrying once the CA is configured: {error:?}");
    };
    assert!(
        text.contains("tls") || text.contains("certificate"),
        "{text}"
    );
    assert!(servers.smtp_received().is_empty());
}

#[tokio::test]
async fn a_wrong_password_is_a_permanent_failure() {
    let servers = MailServers::start();
    let mut settings = harness_settings(&servers, servers.smtps_port(), Security::Tls);
    settings.auth = Some(Auth::Password {
        user: servers.user().0.into(),
        password: Secret::new("not-the-password"),
    });
    let transport = smtp_transport(&settings).unwrap();
    let envelope = Envelope::of_message(&draft_raw("k1")).unwrap();
    let error = transport
        .send_raw(&envelope, &draft_raw("k1"))
        .await
        .unwrap_err();
    let SendError::Permanent(text) = &error else {
        panic!("expected a 5xx: {error:?}");
    };
    assert!(text.contains("535"), "{text}");
    assert!(servers.smtp_received().is_empty());
}

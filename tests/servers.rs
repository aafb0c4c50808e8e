//! The test mail servers themselves, proved with raw protocol exchanges (no project code): what
//! the IMAP and SMTP adapters' tests rely on must hold here first.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{MailServers, base64, xoauth2_initial_response};

const REQUEST: &[u8] = b"From: Buyer <buyer@acme.example>\r\nTo: alice@northwind.example\r\n\
Subject: RFQ 7781 - sensor modules\r\nMessage-ID: <rfq-7781@acme.example>\r\n\r\n\
Please quote 400 sensor modules by March 12.\r\n.a line starting with a dot\r\n";

/// A plain-text IMAP session on the STARTTLS port, one tagged command at a time.
struct Imap {
    reader: BufReader<Box<dyn ReadWrite>>,
    tag: u32,
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

impl Imap {
    fn connect(servers: &MailServers) -> Imap {
        let stream = TcpStream::connect((servers.host(), servers.imap_port())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Imap::over(Box::new(stream))
    }

    fn over(stream: Box<dyn ReadWrite>) -> Imap {
        let mut imap = Imap {
            reader: BufReader::new(stream),
            tag: 0,
        };
        let greeting = imap.line();
        assert!(greeting.starts_with("* OK"), "greeting: {greeting}");
        imap
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "server closed the connection");
        line
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// Sends `TAG command` and returns (untagged lines, tagged completion line).
    fn command(&mut self, command: &str) -> (Vec<String>, String) {
        self.tag += 1;
        let tag = format!("a{}", self.tag);
        self.send(format!("{tag} {command}\r\n").as_bytes());
        self.until_tagged(&tag)
    }

    fn until_tagged(&mut self, tag: &str) -> (Vec<String>, String) {
        let mut untagged = Vec::new();
        loop {
            let line = self.line();
            if line.starts_with(&format!("{tag} ")) {
                return (untagged, line);
            }
            untagged.push(line);
        }
    }

    fn ok(&mut self, command: &str) -> Vec<String> {
        let (untagged, done) = self.command(command);
        assert!(done.contains(" OK"), "{command}: {done} after {untagged:?}");
        untagged
    }

    fn login(servers: &MailServers) -> Imap {
        let mut imap = Imap::connect(servers);
        let (user, password) = servers.user();
        imap.ok(&format!("LOGIN {user} {password}"));
        imap
    }
}

#[test]
fn imap_login_lists_special_folders_and_keeps_an_appended_draft() {
    let servers = MailServers::start();
    let mut imap = Imap::connect(&servers);
    let caps = imap.ok("CAPABILITY").concat();
    for cap in ["STARTTLS", "AUTH=PLAIN", "AUTH=XOAUTH2", "AUTH=OAUTHBEARER"] {
        assert!(caps.contains(cap), "{cap} missing before login from {caps}");
    }
    let (user, password) = servers.user();
    imap.ok(&format!("LOGIN {user} {password}"));
    let caps = imap.ok("CAPABILITY").concat();
    for cap in ["UIDPLUS", "IDLE", "SPECIAL-USE", "MOVE"] {
        assert!(caps.contains(cap), "{cap} missing from {caps}");
    }
    let list = imap.ok("LIST \"\" \"*\"");
    assert!(
        list.iter()
            .any(|l| l.contains("\\Drafts") && l.contains("\"/\" Drafts")),
        "{list:?}"
    );
    assert!(
        list.iter()
            .any(|l| l.contains("\\Sent") && l.contains("\"/\" Sent")),
        "{list:?}"
    );
    let select = imap.ok("SELECT INBOX").concat();
    assert!(select.contains("[UIDVALIDITY "), "{select}");

    imap.tag += 1;
    let tag = format!("a{}", imap.tag);
    imap.send(format!("{tag} APPEND Drafts (\\Draft) {{{}+}}\r\n", REQUEST.len()).as_bytes());
    imap.send(REQUEST);
    imap.send(b"\r\n");
    let (_, done) = imap.until_tagged(&tag);
    assert!(done.contains("OK [APPENDUID "), "{done}");

    let drafts = servers.folder("Drafts");
    assert_eq!(drafts.len(), 1);
    assert_eq!(drafts[0].uid, 1);
    assert!(drafts[0].has_flag("\\Draft"), "{:?}", drafts[0].flags);
    assert_eq!(
        drafts[0].raw, REQUEST,
        "Dovecot must keep the appended bytes"
    );
    assert!(servers.folder("Sent").is_empty());
}

#[test]
fn a_wrong_password_is_refused_and_does_not_slow_the_next_login() {
    let servers = MailServers::start();
    let mut imap = Imap::connect(&servers);
    let (done_untagged, done) = imap.command("LOGIN alice wrong-password");
    assert!(
        done.contains("NO [AUTHENTICATIONFAILED]"),
        "{done} {done_untagged:?}"
    );
    let started = Instant::now();
    Imap::login(&servers);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "login penalty: {:?}",
        started.elapsed()
    );
}

#[test]
fn idle_hears_about_a_delivery_and_inbox_holds_it() {
    let servers = MailServers::start();
    let mut imap = Imap::login(&servers);
    imap.ok("SELECT INBOX");
    imap.send(b"i1 IDLE\r\n");
    assert!(imap.line().starts_with("+ "));
    let delivered_at = Instant::now();
    servers.deliver(REQUEST);
    let exists = imap.line();
    assert_eq!(exists.trim_end(), "* 1 EXISTS");
    // Dovecot's notify delay is 0.5 s; an adapter's IDLE test should allow a few seconds.
    assert!(delivered_at.elapsed() < Duration::from_secs(3));
    imap.send(b"DONE\r\n");
    imap.until_tagged("i1");

    let inbox = servers.folder("INBOX");
    assert_eq!(inbox.len(), 1);
    assert!(
        !inbox[0].has_flag("\\Seen"),
        "a delivery is unseen: {:?}",
        inbox[0].flags
    );
    // LMTP adds Return-Path, Delivered-To and Received above the delivered bytes.
    assert!(
        inbox[0]
            .raw
            .starts_with(b"Return-Path: <sender@example.net>\r\n")
    );
    assert!(inbox[0].raw.ends_with(REQUEST));
}

#[test]
fn xoauth2_and_oauthbearer_accept_the_token_and_refuse_another() {
    let servers = MailServers::start();
    let (user, _) = servers.user();
    let mut imap = Imap::connect(&servers);
    let ir = xoauth2_initial_response(user, servers.xoauth2_token());
    imap.ok(&format!("AUTHENTICATE XOAUTH2 {ir}"));
    imap.ok("SELECT INBOX");

    let mut imap = Imap::connect(&servers);
    let bearer = format!(
        "n,a={user},\x01host=127.0.0.1\x01port={}\x01auth=Bearer {}\x01\x01",
        servers.imap_port(),
        servers.xoauth2_token()
    );
    imap.ok(&format!(
        "AUTHENTICATE OAUTHBEARER {}",
        base64(bearer.as_bytes())
    ));

    let mut imap = Imap::connect(&servers);
    let wrong = xoauth2_initial_response(user, "ya29.not-the-token");
    imap.send(format!("w1 AUTHENTICATE XOAUTH2 {wrong}\r\n").as_bytes());
    let mut reply = imap.line();
    if reply.starts_with("+ ") {
        // XOAUTH2 sends its JSON error as a challenge; the client answers with an empty line.
        imap.send(b"\r\n");
        reply = imap.line();
    }
    assert!(
        reply.starts_with("w1 NO"),
        "a wrong token must be refused: {reply}"
    );
}

#[test]
fn imaps_presents_a_certificate_rustls_accepts_with_the_test_ca() {
    let servers = MailServers::start();
    let tcp = TcpStream::connect((servers.host(), servers.imaps_port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let tls = rustls::StreamOwned::new(tls_client(&servers, "localhost"), tcp);
    let mut imap = Imap::over(Box::new(tls));
    let (user, password) = servers.user();
    imap.ok(&format!("LOGIN {user} {password}"));

    // The same certificate is valid for the IP address.
    let tcp = TcpStream::connect((servers.host(), servers.imaps_port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    Imap::over(Box::new(rustls::StreamOwned::new(
        tls_client(&servers, "127.0.0.1"),
        tcp,
    )));
}

/// Reads one line byte by byte, so nothing past it is buffered before a STARTTLS handshake.
fn plain_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8];
    while !line.ends_with(b"\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "connection closed");
        line.push(byte[0]);
    }
    String::from_utf8(line).unwrap()
}

#[test]
fn starttls_on_the_imap_port_verifies_against_the_test_ca() {
    let servers = MailServers::start();
    let mut tcp = TcpStream::connect((servers.host(), servers.imap_port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(plain_line(&mut tcp).starts_with("* OK"));
    tcp.write_all(b"s1 STARTTLS\r\n").unwrap();
    assert!(plain_line(&mut tcp).starts_with("s1 OK"));
    let tls = rustls::StreamOwned::new(tls_client(&servers, "localhost"), tcp);
    let mut imap = Imap {
        reader: BufReader::new(Box::new(tls)),
        tag: 1,
    };
    let (user, password) = servers.user();
    imap.ok(&format!("LOGIN {user} {password}"));
    imap.ok("SELECT Drafts");
}

#[test]
fn the_sink_offers_starttls_and_xoauth2_on_the_smtp_port() {
    let servers = MailServers::start();
    let (user, _) = servers.user();
    let mut tcp = TcpStream::connect((servers.host(), servers.smtp_port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert!(plain_line(&mut tcp).starts_with("220"));
    tcp.write_all(b"EHLO client.test\r\n").unwrap();
    let mut ehlo = Vec::new();
    loop {
        let line = plain_line(&mut tcp);
        ehlo.push(line.clone());
        if line.as_bytes()[3] == b' ' {
            break;
        }
    }
    assert!(ehlo.iter().any(|l| l.contains("STARTTLS")), "{ehlo:?}");
    tcp.write_all(b"STARTTLS\r\n").unwrap();
    assert!(plain_line(&mut tcp).starts_with("220"));
    let tls = rustls::StreamOwned::new(tls_client(&servers, "127.0.0.1"), tcp);
    let mut smtp = Smtp {
        reader: BufReader::new(Box::new(tls)),
    };
    let ehlo = smtp.send("EHLO client.test");
    assert!(ehlo.starts_with("250"), "{ehlo}");
    let wrong = xoauth2_initial_response(user, "ya29.not-the-token");
    assert!(
        smtp.send(&format!("AUTH XOAUTH2 {wrong}"))
            .starts_with("535")
    );
    let right = xoauth2_initial_response(user, servers.xoauth2_token());
    assert!(
        smtp.send(&format!("AUTH XOAUTH2 {right}"))
            .starts_with("235")
    );
    assert!(
        smtp.send("MAIL FROM:<alice@northwind.example>")
            .starts_with("250")
    );
    assert!(smtp.send("RCPT TO:<buyer@acme.example>").starts_with("250"));
    assert!(smtp.send("DATA").starts_with("354"));
    assert!(
        smtp.send("Subject: after STARTTLS\r\n\r\nhi\r\n.")
            .starts_with("250")
    );

    let received = servers.smtp_received();
    assert_eq!(received.len(), 1);
    assert!(received[0].tls, "STARTTLS counts as TLS");
    assert_eq!(received[0].auth_user.as_deref(), Some(user));
    assert_eq!(received[0].listener, "smtp");
}

fn tls_client(servers: &MailServers, name: &str) -> rustls::ClientConnection {
    let pem = std::fs::read(servers.ca_file()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    rustls::ClientConnection::new(Arc::new(config), name).unwrap()
}

/// A hand-driven SMTP session; returns each reply's last line.
struct Smtp {
    reader: BufReader<Box<dyn ReadWrite>>,
}

impl Smtp {
    fn over(stream: Box<dyn ReadWrite>) -> Smtp {
        let mut smtp = Smtp {
            reader: BufReader::new(stream),
        };
        assert!(smtp.reply().starts_with("220"));
        smtp
    }

    fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            assert!(line.len() >= 4, "short SMTP reply {line:?}");
            if line.as_bytes()[3] == b' ' {
                return line;
            }
        }
    }

    fn send(&mut self, line: &str) -> String {
        self.reader
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }
}

#[test]
fn the_sink_records_a_plain_smtp_transaction_and_checks_auth() {
    let servers = MailServers::start();
    let (user, password) = servers.user();
    let tcp = TcpStream::connect((servers.host(), servers.smtp_port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut smtp = Smtp::over(Box::new(tcp));
    assert!(smtp.send("EHLO client.test").starts_with("250"));
    let wrong = base64(format!("\0{user}\0not-the-password").as_bytes());
    assert!(smtp.send(&format!("AUTH PLAIN {wrong}")).starts_with("535"));
    let right = base64(format!("\0{user}\0{password}").as_bytes());
    assert!(smtp.send(&format!("AUTH PLAIN {right}")).starts_with("235"));
    assert!(
        smtp.send("MAIL FROM:<alice@northwind.example>")
            .starts_with("250")
    );
    assert!(smtp.send("RCPT TO:<buyer@acme.example>").starts_with("250"));
    assert!(smtp.send("RCPT TO:<cfo@acme.example>").starts_with("250"));
    assert!(smtp.send("DATA").starts_with("354"));
    let reply = smtp.send("Subject: Re: RFQ 7781\r\n\r\n..a dotted line\r\nThanks!\r\n.");
    assert!(reply.starts_with("250"), "{reply}");
    smtp.send("QUIT");

    let received = servers.smtp_received();
    assert_eq!(received.len(), 1);
    let mail = &received[0];
    assert_eq!(mail.mail_from, "alice@northwind.example");
    assert_eq!(mail.rcpt_tos, ["buyer@acme.example", "cfo@acme.example"]);
    assert_eq!(mail.auth_user.as_deref(), Some(user));
    assert_eq!(
        mail.raw,
        b"Subject: Re: RFQ 7781\r\n\r\n.a dotted line\r\nThanks!\r\n"
    );
    assert!(!mail.tls);
    assert_eq!(mail.listener, "smtp");
}

#[test]
fn the_sink_over_implicit_tls_requires_auth() {
    let servers = MailServers::start();
    let (user, password) = servers.user();
    let tcp = TcpStream::connect((servers.host(), servers.smtps_port())).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let tls = rustls::StreamOwned::new(tls_client(&servers, "localhost"), tcp);
    let mut smtp = Smtp::over(Box::new(tls));
    assert!(smtp.send("EHLO client.test").starts_with("250"));
    assert!(
        smtp.send("MAIL FROM:<alice@northwind.example>")
            .starts_with("530")
    );
    let login = smtp.send("AUTH LOGIN");
    assert!(login.starts_with("334"), "{login}");
    assert!(smtp.send(&base64(user.as_bytes())).starts_with("334"));
    assert!(smtp.send(&base64(password.as_bytes())).starts_with("235"));
    assert!(
        smtp.send("MAIL FROM:<alice@northwind.example>")
            .starts_with("250")
    );
    assert!(smtp.send("RCPT TO:<buyer@acme.example>").starts_with("250"));
    assert!(smtp.send("DATA").starts_with("354"));
    assert!(
        smtp.send("Subject: over TLS\r\n\r\nhi\r\n.")
            .starts_with("250")
    );

    let received = servers.smtp_received();
    assert_eq!(received.len(), 1);
    assert!(received[0].tls);
    assert_eq!(received[0].listener, "smtps");
    assert_eq!(received[0].auth_user.as_deref(), Some(user));
}

#[test]
fn uidvalidity_can_be_changed_and_imap_restarted_with_the_mail_kept() {
    let servers = MailServers::start();
    servers.deliver(REQUEST);
    let before = servers.uidvalidity("INBOX");
    servers.change_uidvalidity("INBOX");
    let after = servers.uidvalidity("INBOX");
    assert_ne!(before, after);
    let mut imap = Imap::login(&servers);
    let select = imap.ok("SELECT INBOX").concat();
    assert!(
        select.contains(&format!("[UIDVALIDITY {after}]")),
        "{select}"
    );

    servers.stop_imap();
    assert!(TcpStream::connect((servers.host(), servers.imap_port())).is_err());
    assert!(TcpStream::connect((servers.host(), servers.imaps_port())).is_err());
    servers.start_imap();
    let mut imap = Imap::login(&servers);
    let select = imap.ok("SELECT INBOX").concat();
    assert!(select.contains("* 1 EXISTS"), "{select}");
    assert!(servers.folder("INBOX")[0].raw.ends_with(REQUEST));
}

#[test]
fn deliver_many_seeds_inbox_in_order() {
    let servers = MailServers::start();
    servers.deliver(REQUEST);
    let seeded: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("Subject: backfill {i}\r\nMessage-ID: <b{i}@test>\r\n\r\nbody {i}\r\n"))
        .map(String::into_bytes)
        .collect();
    let started = Instant::now();
    servers.deliver_many(&seeded);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let mut imap = Imap::login(&servers);
    let select = imap.ok("SELECT INBOX").concat();
    assert!(select.contains("* 301 EXISTS"), "{select}");
    let inbox = servers.folder("INBOX");
    assert_eq!(inbox.len(), 301);
    assert!(inbox[0].raw.ends_with(REQUEST));
    for (i, (message, raw)) in inbox[1..].iter().zip(&seeded).enumerate() {
        assert_eq!(message.uid as usize, i + 2);
        assert_eq!(&message.raw, raw);
    }
}

#[test]
fn folder_returns_exact_bytes_even_with_form_feeds_and_invalid_utf8() {
    let servers = MailServers::start();
    let odd: &[&[u8]] = &[
        b"Subject: form feed\r\n\r\nline\x0c\nuid: 9\r\n\x0c\n",
        b"Subject: latin-1\r\n\r\nna\xefve \xff\xfe\r\n",
        b"Subject: no final newline\r\n\r\nbody",
    ];
    servers.deliver_many(&odd.iter().map(|m| m.to_vec()).collect::<Vec<_>>());
    let inbox = servers.folder("INBOX");
    assert_eq!(inbox.len(), odd.len());
    for (message, raw) in inbox.iter().zip(odd) {
        assert_eq!(message.raw, *raw);
        assert!(message.flags.is_empty(), "{:?}", message.flags);
    }
}

#[test]
fn instances_started_together_are_independent_and_quick() {
    let started = Instant::now();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(MailServers::start);
        let b = s.spawn(MailServers::start);
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(a.imap_port(), b.imap_port());
    assert_ne!(a.dir(), b.dir());
    a.deliver(REQUEST);
    assert_eq!(a.folder("INBOX").len(), 1);
    assert!(b.folder("INBOX").is_empty());
    let dir = a.dir().to_path_buf();
    drop(a);
    assert!(!dir.exists(), "drop removes the servers' directory");
    assert!(b.folder("INBOX").is_empty(), "the other instance survives");
}

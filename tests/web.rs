//! The approval page end to end, as a rep uses it: `pushback run` with `[web]` against Dovecot
//! and the recording SMTP sink, and a real headless Chromium (through chromedriver) that opens the
//! address `pushback web-url` prints, opens the draft, changes a sentence, saves and approves.
//! The sink must receive the edited text exactly once; requests without the token or with a
//! wrong CSRF token are refused and change nothing. Screenshots of the page are kept in
//! `target/test-artifacts/`: `web-draft.png` (the edited draft) and `web-approval.png` (sent).

mod support;

use fantoccini::Locator;
use mail_parser::MessageParser;
use pushback::adapters::store::{DraftStatus, Store};
use pushback::config::Config;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;
use support::MailServers;
use support::browser::ChromeDriver;

use support::pushback::{Daemon, IDENTITY, pushback_cli, rfp, wait_for, write_config};

/// The element `css` selects, once the page a click loads shows it (a click returns before the
/// page it leads to has loaded); panics with `missing` after 30 s.
async fn appears(
    client: &fantoccini::Client,
    css: &str,
    missing: &str,
) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{missing} ({e})"))
}

/// In the draft as composed (templates/rfp.txt), and what the rep writes instead.
const OLD_SENTENCE: &str = "Thank you for sending over";
const NEW_SENTENCE: &str = "Many thanks for thinking of us and for sending over";

/// One HTTP/1.1 request on a fresh connection; the status code and the body.
fn http(port: u16, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

fn artifact(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn a_rep_edits_and_approves_a_draft_in_a_real_browser_and_the_buyer_gets_the_edit_once() {
    let driver = ChromeDriver::start();
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(&servers, dir.path());
    let port = support::free_loopback_ports(1)[0];
    let mut text = std::fs::read_to_string(&config_path).unwrap();
    text.push_str(&format!("\n[web]\nlisten = \"127.0.0.1:{port}\"\n"));
    std::fs::write(&config_path, text).unwrap();
    let config = Config::load(&config_path).unwrap();
    let daemon = Daemon::start(config.clone());

    servers.deliver(&rfp(21));
    wait_for("the draft", Duration::from_secs(20), || {
        (servers.folder("Drafts").len() == 1).then_some(())
    });
    let url = pushback_cli(&config_path, &["web-url"]).trim().to_string();
    let prefix = format!("http://127.0.0.1:{port}/?token=");
    assert!(url.starts_with(&prefix), "{url}");
    let token = &url[prefix.len()..];
    assert_eq!(token.len(), 64, "32 random bytes, hex");
    wait_for("the approval page", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });

    // Without the token, or with a wrong one: refused.
    let host = format!("Host: 127.0.0.1:{port}\r\nConnection: close");
    let (status, body) = http(port, &format!("GET / HTTP/1.1\r\n{host}\r\n\r\n"));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("pushback web-url"), "{body}");
    let (status, _) = http(
        port,
        &format!("GET /?token=00{} HTTP/1.1\r\n{host}\r\n\r\n", &token[2..]),
    );
    assert_eq!(status, 401);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = runtime.block_on(driver.connect());
    let session = runtime.block_on(async {
        client.goto(&url).await.unwrap();
        let landed = client.current_url().await.unwrap();
        assert_eq!(landed.path(), "/");
        assert_eq!(landed.query(), None, "the token leaves the address bar");
        client
            .find(Locator::Css("a[href='/drafts/1']"))
            .await
            .expect("the pending draft is listed")
            .click()
            .await
            .unwrap();
        let textarea = appears(
            &client,
            "textarea[name=body]",
            "the draft page did not load",
        )
        .await;
        let page = client.source().await.unwrap();
        assert!(page.contains("Why it was flagged"), "{page}");
        assert!(
            page.contains("Dear Supplier"),
            "the original mail is beside the draft"
        );

        let composed = textarea.prop("value").await.unwrap().unwrap();
        assert!(composed.contains(OLD_SENTENCE), "{composed}");
        let edited = composed.replacen(OLD_SENTENCE, NEW_SENTENCE, 1);
        textarea.clear().await.unwrap();
        textarea.send_keys(&edited).await.unwrap();
        client
            .find(Locator::Id("save"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // A click returns before the form's answer has loaded: wait for it, as after approving.
        let flash = appears(&client, "p.flash", "no message after saving").await;
        assert_eq!(flash.text().await.unwrap(), "draft 1 saved as version 2");
        let png = client.screenshot().await.unwrap();
        std::fs::write(artifact("web-draft.png"), png).unwrap();
        client
            .get_named_cookie("pushback_session")
            .await
            .expect("the session cookie")
            .value()
            .to_string()
    });

    // A forged approval with the real session but a wrong CSRF token is refused.
    let form = "csrf=0123456789abcdef&version=2";
    let (status, body) = http(
        port,
        &format!(
            "POST /drafts/1/approve HTTP/1.1\r\n{host}\r\nCookie: pushback_session={session}\r\n\
             Origin: http://127.0.0.1:{port}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    );
    assert_eq!(status, 403, "{body}");
    let store = Store::open(&config.state_dir).unwrap();
    assert_eq!(
        store.draft(1).unwrap().unwrap().status,
        DraftStatus::Pending
    );
    assert!(
        servers.smtp_received().is_empty(),
        "nothing sent before approval"
    );

    runtime.block_on(async {
        client
            .find(Locator::Id("approve"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        // Approving sends at once: the page comes back when the SMTP server has answered.
        let flash = appears(&client, "p.flash", "no message after approving").await;
        let said = flash.text().await.unwrap();
        assert_eq!(
            said,
            format!(
                "draft 1 approved and sent to Dana Whitfield <{}>",
                support::pushback::BUYER
            )
        );
        let png = client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        std::fs::write(artifact("web-approval.png"), png).unwrap();
        client.close().await.unwrap();
    });

    let received = wait_for("the send", Duration::from_secs(15), || {
        let received = servers.smtp_received();
        (!received.is_empty()).then_some(received)
    });
    // The daemon's outbox round (every 10 s) must not send it again.
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(servers.smtp_received().len(), 1, "exactly one send");
    assert_eq!(received[0].rcpt_tos, [support::pushback::BUYER]);
    let sent = MessageParser::default().parse(&received[0].raw).unwrap();
    let body = words(&sent.body_text(0).unwrap());
    assert!(body.contains(&words(NEW_SENTENCE)), "{body}");
    assert!(!body.contains(OLD_SENTENCE), "{body}");
    daemon.stop();
    let store = Store::open(&config.state_dir).unwrap();
    let approval = store.approval(1).unwrap().unwrap();
    assert_eq!((approval.via.as_str(), approval.version), ("web", 2));
}

#[test]
fn beyond_loopback_the_page_is_served_over_tls_with_a_secure_cookie() {
    // Served here on 127.0.0.1 with the certificate it would use on another address; `pushback
    // web` serves the page alone.
    let dir = tempfile::tempdir().unwrap();
    let tls = support::tls::material();
    let (cert, key, ca) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert, &tls.cert_pem).unwrap();
    std::fs::write(&key, &tls.key_pem).unwrap();
    std::fs::write(&ca, &tls.ca_pem).unwrap();
    let port = support::free_loopback_ports(1)[0];
    let config_path = dir.path().join("config.toml");
    std::fs::write(
        &config_path,
        format!(
            "{IDENTITY}\n[mailbox]\nkind = \"maildir\"\npath = \"{maildir}\"\n\
             [state]\npath = \"{state}\"\n\
             [web]\nlisten = \"127.0.0.1:{port}\"\ntls-cert = \"{cert}\"\ntls-key = \"{key}\"\n",
            maildir = dir.path().join("Maildir").display(),
            state = dir.path().join("state").display(),
            cert = cert.display(),
            key = key.display(),
        ),
    )
    .unwrap();
    pushback::adapters::maildir::Maildir::create(&dir.path().join("Maildir")).unwrap();
    let url = pushback_cli(&config_path, &["web-url"]).trim().to_string();
    let prefix = format!("https://127.0.0.1:{port}/?token=");
    assert!(url.starts_with(&prefix), "{url}");
    let log = dir.path().join("web.log");
    let mut server = support::pushback::spawn_pushback(&config_path, &log, &["web"]);
    wait_for("the approval page", Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let response = runtime.block_on(async {
        use pushback::adapters::imap::tls::{Trust, client_config};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let config = client_config(Trust::Verified {
            extra_ca_file: Some(&ca),
        })
        .unwrap();
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .expect("a TLS handshake the test CA vouches for");
        let request = format!(
            "GET /?token={} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n",
            &url[prefix.len()..]
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        // The server may close without a TLS close_notify; what arrived is enough.
        let _ = stream.read_to_string(&mut response).await;
        response
    });
    support::pushback::stop(&mut server);
    assert!(response.starts_with("HTTP/1.1 303"), "{response}");
    let cookie = response
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie in {response}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert!(
        cookie.contains("; HttpOnly") && cookie.contains("; SameSite=Strict"),
        "{cookie}"
    );
    // Plain http on the TLS port gets no page.
    let mut plain = TcpStream::connect(("127.0.0.1", port));
    if let Ok(stream) = plain.as_mut() {
        let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(!answer.contains("HTTP/1.1"), "{answer}");
    }
}

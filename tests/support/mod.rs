//! Real mail servers on loopback for integration tests: Dovecot 2.3 (IMAP with STARTTLS, IMAPS,
//! LMTP, XOAUTH2/OAUTHBEARER checked against a token introspection endpoint) and a recording
//! SMTP sink (aiosmtpd), each `MailServers::start()` in its own temp dir on its own free ports.
//! Radicale (CalDAV) starts on its own: `radicale::Radicale::start()`.
//!
//! Needs root and the Debian packages dovecot-imapd, dovecot-lmtpd, python3-aiosmtpd and
//! openssl (`.ci/run` installs them). When one is missing, `start()` panics and names it: a test
//! that needs a server fails loudly, it never passes without one. What the tests assert on is
//! read back from the servers themselves (`doveadm fetch`, the sink's own record).
//!
//! Use it from an integration test with `mod support;`:
//!
//! ```ignore
//! let servers = support::MailServers::start();
//! servers.deliver(b"Subject: RFQ 7781\r\n\r\nPlease quote.\r\n");
//! // connect to servers.host():servers.imaps_port(), trusting servers.ca_file() ...
//! assert!(servers.folder("Drafts")[0].has_flag("\\Draft"));
//! ```

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod browser;
mod dovecot;
pub mod oauth2_server;
pub mod pushback;
pub mod radicale;
pub mod secret_service;
pub mod tls;

use std::collections::HashSet;
use std::collections::hash_map::RandomState;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dovecot::Layout;

const HOST: &str = "127.0.0.1";
const USER: &str = "alice";
const PASSWORD: &str = "alice-test-password";
/// A second mailbox on the same server, for tests with several accounts.
const SECOND_USER: &str = "bob";
const SECOND_PASSWORD: &str = "bob-test-password";
/// Debian's python, where python3-aiosmtpd lives (a pyenv `python3` on PATH lacks it).
const PYTHON: &str = "/usr/bin/python3";
/// Owner of the mail files: Dovecot refuses uid 0 for mail access.
const MAIL_OS_USER: &str = "vmail";
const SINK_SCRIPT: &str = include_str!("smtp_sink.py");
const INSTALL_HINT: &str = "run .ci/run as root, or: apt-get install -y dovecot-imapd \
                            dovecot-lmtpd python3-aiosmtpd openssl";

/// One message as Dovecot holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub uid: u32,
    /// System and keyword flags as IMAP spells them, e.g. `\Seen`, `\Draft`.
    pub flags: Vec<String>,
    pub raw: Vec<u8>,
}

impl StoredMessage {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }
}

/// One message the SMTP sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub raw: Vec<u8>,
    /// The login of a successful AUTH in that session, if any.
    pub auth_user: Option<String>,
    /// Whether the session ran over TLS (STARTTLS or implicit).
    pub tls: bool,
    /// `"smtp"` or `"smtps"`.
    pub listener: String,
}

#[derive(Clone, Copy)]
struct Ports {
    imap: u16,
    imaps: u16,
    lmtp: u16,
    smtp: u16,
    smtps: u16,
    oauth: u16,
}

/// Dovecot and the SMTP sink for one test. Dropping it kills both (and every Dovecot child)
/// and removes the directory, which is kept and printed instead when the test is panicking.
pub struct MailServers {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    layout: Layout,
    ports: Ports,
    ca_file: PathBuf,
    token: String,
    dovecot: Mutex<Option<Child>>,
    sink: Child,
}

impl MailServers {
    /// Starts Dovecot and the sink on free loopback ports and returns once every port accepts.
    pub fn start() -> MailServers {
        MailServers::start_with(None)
    }

    /// `start`, with Dovecot's oauth2 passdb and the sink's XOAUTH2 asking `introspection_url`
    /// (an authorization server the test runs, see `oauth2_server`) whether a bearer token is
    /// live, instead of the sink's one fixed token.
    pub fn start_with_introspection(introspection_url: &str) -> MailServers {
        MailServers::start_with(Some(introspection_url))
    }

    fn start_with(introspection_url: Option<&str>) -> MailServers {
        let (uid, gid) = preflight();
        let tmp = tempfile::Builder::new()
            .prefix("pushback-mail.")
            .tempdir()
            .expect("cannot create the mail servers' temp dir");
        let path = tmp.path().to_path_buf();
        // Dovecot's auth (user dovecot) and mail (vmail) processes must traverse the directory.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["etc", "tls", "log", "run", "state", "mail", "sink"] {
            fs::create_dir(path.join(sub)).unwrap();
        }
        chown(path.join("mail"), Some(uid), Some(gid)).unwrap();
        let tls = tls::material();
        fs::write(path.join("tls/ca.pem"), &tls.ca_pem).unwrap();
        fs::write(path.join("tls/cert.pem"), &tls.cert_pem).unwrap();
        fs::write(path.join("tls/key.pem"), &tls.key_pem).unwrap();
        fs::set_permissions(path.join("tls/key.pem"), fs::Permissions::from_mode(0o600)).unwrap();
        let layout = Layout { dir: path.clone() };
        fs::write(
            layout.users(),
            format!(
                "{USER}:{{PLAIN}}{PASSWORD}::::::\n\
                 {SECOND_USER}:{{PLAIN}}{SECOND_PASSWORD}::::::\n"
            ),
        )
        .unwrap();
        let token = format!("ya29.test-{:016x}{:016x}", random_u64(), random_u64());
        let instance = format!(
            "pushback-test-{}",
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .replace('.', "-")
        );

        let mut last_failure = String::new();
        for _attempt in 0..5 {
            let ports = free_ports();
            dovecot::write_config(
                &layout,
                &dovecot::Settings {
                    imap_port: ports.imap,
                    imaps_port: ports.imaps,
                    lmtp_port: ports.lmtp,
                    introspection_url: introspection_url.map_or_else(
                        || format!("http://127.0.0.1:{}/introspect", ports.oauth),
                        str::to_owned,
                    ),
                    mail_uid: uid,
                    mail_gid: gid,
                    instance: &instance,
                },
            );
            let mut dovecot = dovecot::spawn(&layout);
            let mut sink = spawn_sink(&layout, &ports, &token, introspection_url);
            let all = [
                ports.imap,
                ports.imaps,
                ports.lmtp,
                ports.smtp,
                ports.smtps,
                ports.oauth,
            ];
            match wait_for_ports(&all, &mut [&mut dovecot, &mut sink]) {
                Ok(()) => {
                    return MailServers {
                        dir: Some(tmp),
                        ca_file: path.join("tls/ca.pem"),
                        path,
                        layout,
                        ports,
                        token,
                        dovecot: Mutex::new(Some(dovecot)),
                        sink,
                    };
                }
                Err(why) => {
                    dovecot::kill(&mut dovecot);
                    let _ = sink.kill();
                    let _ = sink.wait();
                    last_failure = format!(
                        "{why}\n{}\n{}\n--- sink log ---\n{}",
                        dovecot::log_tail(&layout.log()),
                        fs::read_to_string(layout.dir.join("log/dovecot.stdio"))
                            .unwrap_or_default(),
                        fs::read_to_string(layout.dir.join("log/sink.log")).unwrap_or_default()
                    );
                    // A port taken between picking and binding: try again with new ones.
                    if !last_failure.contains("in use") {
                        break;
                    }
                }
            }
        }
        let kept = tmp.keep();
        panic!(
            "cannot start the test mail servers (kept {}):\n{last_failure}",
            kept.display()
        );
    }

    pub fn host(&self) -> &str {
        HOST
    }

    /// Plain IMAP that offers STARTTLS (and allows plain-text login, for raw protocol tests).
    pub fn imap_port(&self) -> u16 {
        self.ports.imap
    }

    /// IMAP over implicit TLS.
    pub fn imaps_port(&self) -> u16 {
        self.ports.imaps
    }

    /// The sink's plain SMTP port: STARTTLS and AUTH (PLAIN, LOGIN, XOAUTH2) offered, optional.
    pub fn smtp_port(&self) -> u16 {
        self.ports.smtp
    }

    /// The sink's implicit-TLS port: AUTH required before MAIL.
    pub fn smtps_port(&self) -> u16 {
        self.ports.smtps
    }

    /// Dovecot's LMTP port (what `deliver` uses).
    pub fn lmtp_port(&self) -> u16 {
        self.ports.lmtp
    }

    /// PEM of the private CA that signed the servers' certificate (valid for `localhost` and
    /// `127.0.0.1`); clients must trust it, the system trust store does not.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The one mailbox user and its password, accepted by Dovecot and by the sink's AUTH.
    pub fn user(&self) -> (&str, &str) {
        (USER, PASSWORD)
    }

    /// Another mailbox user and its password, for a second account on the same servers.
    pub fn second_user(&self) -> (&str, &str) {
        (SECOND_USER, SECOND_PASSWORD)
    }

    /// A bearer token Dovecot accepts for the user through SASL XOAUTH2 and OAUTHBEARER; Dovecot
    /// checks it against the sink's introspection endpoint, so any other token is refused.
    pub fn xoauth2_token(&self) -> &str {
        &self.token
    }

    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// Delivers one message into the user's INBOX over LMTP, as a real delivery arrives: it is
    /// new, unseen, and IDLE clients are told (Dovecot notifies about 0.5 s later). Dovecot adds
    /// `Return-Path`, `Delivered-To` and `Received` above `raw`, as for any delivery.
    pub fn deliver(&self, raw: &[u8]) {
        self.deliver_to(USER, raw);
    }

    /// [`MailServers::deliver`] into `user`'s INBOX.
    pub fn deliver_to(&self, user: &str, raw: &[u8]) {
        lmtp_deliver(self.ports.lmtp, &format!("{user}@localhost"), raw)
            .unwrap_or_else(|e| panic!("cannot deliver over LMTP: {e}\n{}", self.log_tail()));
    }

    /// Seeds many messages into INBOX at once (backfill benches): Maildir files written directly,
    /// then `doveadm force-resync` and `doveadm index`. UIDs follow the slice order.
    pub fn deliver_many(&self, raws: &[Vec<u8>]) {
        self.write_maildir(raws, "cur");
        self.doveadm(&["force-resync", "-u", USER, "INBOX"]);
        self.doveadm(&["index", "-u", USER, "INBOX"]);
    }

    /// Puts messages in INBOX's `Maildir/new` as a local delivery agent does, without Dovecot:
    /// works while it is stopped (`stop_imap`), and Dovecot finds them when it looks again.
    pub fn queue_in_maildir(&self, raws: &[Vec<u8>]) {
        self.write_maildir(raws, "new");
    }

    /// Writes `raws` as files into INBOX's Maildir `sub` folder ("new" or "cur"), owned by the
    /// mail user, in slice order.
    fn write_maildir(&self, raws: &[Vec<u8>], sub: &str) {
        let (uid, gid) = preflight();
        let maildir = self.layout.maildir(USER);
        let mut created = Vec::new();
        for dir in [
            maildir.parent().unwrap().to_path_buf(),
            maildir.clone(),
            maildir.join("cur"),
            maildir.join("new"),
            maildir.join("tmp"),
        ] {
            if !dir.exists() {
                fs::create_dir(&dir).unwrap();
                created.push(dir);
            }
        }
        for dir in created {
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
            chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let pid = std::process::id();
        let batch = random_u64() & 0xffff_ffff;
        for (i, raw) in raws.iter().enumerate() {
            // Maildir names sort by time then this counter, which fixes the UID order; a message
            // in new/ has no info part yet.
            let base = format!("{secs}.M{i:08}P{pid}Q{batch:x}.pushback-test");
            let name = if sub == "new" { base } else { base + ":2," };
            let tmp = maildir.join("tmp").join(&name);
            fs::write(&tmp, raw).unwrap();
            chown(&tmp, Some(uid), Some(gid)).unwrap();
            fs::rename(&tmp, maildir.join(sub).join(&name)).unwrap();
        }
    }

    /// Every message in `folder` ("INBOX", "Drafts", "Sent", ...) in UID order, read with one
    /// `doveadm fetch`, so a test asserts on what the server holds. `\Recent` is left out of the
    /// flags: it belongs to a session, and this fetch's session takes it from later ones.
    /// Dovecot must be running.
    pub fn folder(&self, name: &str) -> Vec<StoredMessage> {
        self.folder_of(USER, name)
    }

    /// [`MailServers::folder`] of `user`'s mailbox.
    pub fn folder_of(&self, user: &str, name: &str) -> Vec<StoredMessage> {
        let out = self.doveadm(&[
            "-f",
            "pager",
            "fetch",
            "-u",
            user,
            "uid flags size.physical text",
            "mailbox",
            name,
            "all",
        ]);
        let mut messages = parse_fetch(&out)
            .unwrap_or_else(|why| panic!("cannot parse doveadm fetch output of {name}: {why}"));
        messages.sort_by_key(|m| m.uid);
        messages
    }

    pub fn uidvalidity(&self, folder: &str) -> u32 {
        let out = self.doveadm(&[
            "-f",
            "tab",
            "mailbox",
            "status",
            "-u",
            USER,
            "uidvalidity",
            folder,
        ]);
        let out = String::from_utf8(out).unwrap();
        // "mailbox\tuidvalidity\nINBOX\t1795776756\n"
        out.lines()
            .nth(1)
            .and_then(|row| row.rsplit('\t').next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("cannot read UIDVALIDITY of {folder} from {out:?}"))
    }

    /// Gives `folder` a new UIDVALIDITY (the old one plus one), as after a server-side rebuild:
    /// a client must drop what it cached for that folder. A client that has it selected gets
    /// `* BYE IMAP session state is inconsistent, please relogin.` on its next command.
    pub fn change_uidvalidity(&self, folder: &str) {
        let next = self.uidvalidity(folder).wrapping_add(1).max(1).to_string();
        self.doveadm(&[
            "mailbox",
            "update",
            "-u",
            USER,
            "--uid-validity",
            &next,
            folder,
        ]);
    }

    /// Stops Dovecot keeping its mail, as a crash would: every process of the instance is killed,
    /// so connected clients see the connection close without a BYE, and the IMAP, IMAPS and LMTP
    /// ports refuse connections until `start_imap`. `deliver`, `folder` and the other doveadm
    /// helpers need Dovecot up.
    pub fn stop_imap(&self) {
        let mut guard = self.dovecot.lock().unwrap();
        if let Some(mut child) = guard.take() {
            dovecot::kill(&mut child);
            // A stale pid file must not lead the sink's watchdog to a recycled pid.
            let _ = fs::remove_file(self.layout.master_pid());
        }
    }

    /// Starts Dovecot again on the same ports with the same mail; returns once the ports accept.
    pub fn start_imap(&self) {
        let mut guard = self.dovecot.lock().unwrap();
        if guard.is_some() {
            return;
        }
        let mut child = dovecot::spawn(&self.layout);
        let ports = [self.ports.imap, self.ports.imaps, self.ports.lmtp];
        if let Err(why) = wait_for_ports(&ports, &mut [&mut child]) {
            dovecot::kill(&mut child);
            panic!("cannot restart Dovecot: {why}\n{}", self.log_tail());
        }
        *guard = Some(child);
    }

    /// Every message the sink accepted so far, in the order it accepted them.
    pub fn smtp_received(&self) -> Vec<ReceivedMail> {
        let jsonl = self.path.join("sink/messages.jsonl");
        let text = match fs::read_to_string(&jsonl) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("cannot read {}: {e}", jsonl.display()),
        };
        text.lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
                ReceivedMail {
                    mail_from: s("mail_from"),
                    rcpt_tos: v["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_str().unwrap().to_owned())
                        .collect(),
                    raw: fs::read(s("file")).unwrap(),
                    auth_user: v["auth_user"].as_str().map(str::to_owned),
                    tls: v["tls"].as_bool().unwrap_or(false),
                    listener: s("listener"),
                }
            })
            .collect()
    }

    /// From now on the sink answers every RCPT with `reply` (e.g. `"451 4.3.0 try again"`) and
    /// accepts nothing; `None` makes it accept again.
    pub fn smtp_refuse(&self, reply: Option<&str>) {
        let path = self.path.join("sink/refuse");
        match reply {
            Some(reply) => {
                // Written whole, then renamed: the sink never reads half a line.
                let tmp = self.path.join("sink/refuse.tmp");
                fs::write(&tmp, format!("{reply}\n")).unwrap();
                fs::rename(&tmp, &path).unwrap();
            }
            None => {
                let _ = fs::remove_file(&path);
            }
        }
    }

    /// Every refusal the sink gave so far (`smtp_refuse`), one reply per refused RCPT.
    pub fn smtp_refusals(&self) -> Vec<String> {
        fs::read_to_string(self.path.join("sink/refused.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// `doveadm` against this instance's configuration; panics with its error and the log.
    pub fn doveadm(&self, args: &[&str]) -> Vec<u8> {
        dovecot::doveadm(&self.layout, args)
    }

    /// The last lines of Dovecot's log, for panic messages.
    pub fn log_tail(&self) -> String {
        dovecot::log_tail(&self.layout.log())
    }
}

impl Drop for MailServers {
    fn drop(&mut self) {
        if let Some(mut child) = self.dovecot.get_mut().unwrap().take() {
            dovecot::kill(&mut child);
        }
        let _ = self.sink.kill();
        let _ = self.sink.wait();
        if thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!(
                "mail servers' files kept for inspection: {}",
                dir.keep().display()
            );
        }
    }
}

/// Checks once per test binary that we are root and every package is installed, and makes
/// the `vmail` user; returns its uid and gid.
fn preflight() -> (u32, u32) {
    static CHECKED: OnceLock<(u32, u32)> = OnceLock::new();
    *CHECKED.get_or_init(|| {
        let euid = fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(u32::MAX);
        assert!(
            euid == 0,
            "the mail servers' tests must run as root (Dovecot needs it)"
        );
        for (path, package) in [
            (dovecot::DOVECOT, "dovecot-imapd"),
            ("/usr/lib/dovecot/imap", "dovecot-imapd"),
            ("/usr/lib/dovecot/lmtp", "dovecot-lmtpd"),
            (PYTHON, "python3"),
        ] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: the Debian package {package} is not installed ({INSTALL_HINT})"
            );
        }
        let aiosmtpd = Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(
            aiosmtpd.success(),
            "{PYTHON} cannot import aiosmtpd: the Debian package python3-aiosmtpd is not \
             installed ({INSTALL_HINT})"
        );
        mail_os_user()
    })
}

fn mail_os_user() -> (u32, u32) {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id")
            .args([flag, MAIL_OS_USER])
            .output()
            .ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    if id("-u").is_none() {
        // Another test binary may be creating it at the same moment; check again after.
        let _ = Command::new("useradd")
            .args(["--system", "--user-group", "--no-create-home", "--home-dir"])
            .args(["/nonexistent", "--shell", "/usr/sbin/nologin", MAIL_OS_USER])
            .status();
    }
    match (id("-u"), id("-g")) {
        (Some(uid), Some(gid)) => (uid, gid),
        _ => panic!("cannot create the system user {MAIL_OS_USER} that owns the test mail"),
    }
}

/// Six distinct free loopback ports, none handed out before in this process.
fn free_ports() -> Ports {
    let ports = free_loopback_ports(6);
    Ports {
        imap: ports[0],
        imaps: ports[1],
        lmtp: ports[2],
        smtp: ports[3],
        smtps: ports[4],
        oauth: ports[5],
    }
}

/// `count` distinct free loopback ports, none handed out before in this process (to any server).
pub fn free_loopback_ports(count: usize) -> Vec<u16> {
    static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut handed_out = HANDED_OUT.lock().unwrap();
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < count {
        let listener = TcpListener::bind((HOST, 0)).expect("cannot bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        if handed_out.insert(port) {
            ports.push(port);
        }
        held.push(listener);
    }
    ports
}

fn spawn_sink(
    layout: &Layout,
    ports: &Ports,
    token: &str,
    introspection_url: Option<&str>,
) -> Child {
    let script = layout.dir.join("etc/smtp_sink.py");
    fs::write(&script, SINK_SCRIPT).unwrap();
    let log = fs::File::create(layout.dir.join("log/sink.log")).unwrap();
    let dir = &layout.dir;
    let mut command = Command::new(PYTHON);
    command.arg(&script);
    if let Some(url) = introspection_url {
        command.args(["--introspection-url", url]);
    }
    command
        .args(["--smtp-port", &ports.smtp.to_string()])
        .args(["--smtps-port", &ports.smtps.to_string()])
        .args(["--oauth-port", &ports.oauth.to_string()])
        .args(["--oauth-token", &format!("{USER}={token}")])
        .arg("--cert")
        .arg(dir.join("tls/cert.pem"))
        .arg("--key")
        .arg(dir.join("tls/key.pem"))
        .arg("--users")
        .arg(layout.users())
        .arg("--spool")
        .arg(dir.join("sink"))
        .arg("--dovecot-pidfile")
        .arg(layout.master_pid())
        // The sink exits (and stops Dovecot) when this pipe closes: the test process is gone.
        .stdin(Stdio::piped())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {PYTHON}: {e} ({INSTALL_HINT})"))
}

/// Waits until every port accepts a connection, failing early when a process exits.
fn wait_for_ports(ports: &[u16], children: &mut [&mut Child]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    for &port in ports {
        loop {
            for child in children.iter_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!("a server process exited early ({status})"));
                }
            }
            if TcpStream::connect((HOST, port)).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("port {port} did not open within 15 s"));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
    // A port that accepted may belong to another process: the servers must still be alive.
    thread::sleep(Duration::from_millis(20));
    for child in children.iter_mut() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("a server process exited early ({status})"));
        }
    }
    Ok(())
}

/// Parses `doveadm -f pager fetch "uid flags size.physical text"`: records of
/// `uid: N\nflags: F\nsize.physical: S\ntext:\n` then S raw bytes, separated by `\x0c\n`.
/// The size makes the raw bytes exact even when a message contains a form feed.
fn parse_fetch(mut out: &[u8]) -> Result<Vec<StoredMessage>, String> {
    fn field<'a>(out: &mut &'a [u8], key: &str) -> Result<&'a str, String> {
        let rest = out.strip_prefix(key.as_bytes()).ok_or_else(|| {
            format!(
                "expected {key:?} at {:?}",
                String::from_utf8_lossy(&out[..out.len().min(40)])
            )
        })?;
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("unterminated field")?;
        *out = &rest[end + 1..];
        std::str::from_utf8(&rest[..end]).map_err(|e| e.to_string())
    }
    let mut messages = Vec::new();
    while !out.is_empty() {
        let uid = field(&mut out, "uid: ")?
            .trim()
            .parse()
            .map_err(|e| format!("uid: {e}"))?;
        let flags = field(&mut out, "flags: ")?
            .split_whitespace()
            .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
            .map(str::to_owned)
            .collect();
        let size: usize = field(&mut out, "size.physical: ")?
            .trim()
            .parse()
            .map_err(|e| format!("size: {e}"))?;
        field(&mut out, "text:")?;
        if out.len() < size {
            return Err(format!(
                "uid {uid}: {size} bytes announced, {} left",
                out.len()
            ));
        }
        messages.push(StoredMessage {
            uid,
            flags,
            raw: out[..size].to_vec(),
        });
        out = &out[size..];
        out = out.strip_prefix(b"\x0c\n").unwrap_or(out);
        // A message without a final newline gets one from the formatter.
        if !out.is_empty() && !out.starts_with(b"uid: ") {
            out = out
                .strip_prefix(b"\n\x0c\n")
                .or(out.strip_prefix(b"\n"))
                .unwrap_or(out);
        }
    }
    Ok(messages)
}

/// One LMTP transaction: LHLO, MAIL, RCPT, DATA (dot-stuffed).
fn lmtp_deliver(port: u16, rcpt: &str, raw: &[u8]) -> Result<(), String> {
    let stream = TcpStream::connect((HOST, port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut reply = |expect: &str| -> Result<(), String> {
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            if !line.starts_with(expect) {
                return Err(format!("expected {expect}, got {line:?}"));
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    };
    reply("220")?;
    let mut send = |cmd: &[u8]| writer.write_all(cmd).map_err(|e| e.to_string());
    send(b"LHLO localhost\r\n")?;
    reply("250")?;
    send(b"MAIL FROM:<sender@example.net>\r\n")?;
    reply("250")?;
    send(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())?;
    reply("250")?;
    send(b"DATA\r\n")?;
    reply("354")?;
    let mut data = Vec::with_capacity(raw.len() + 16);
    let mut at_line_start = true;
    for &b in raw {
        if at_line_start && b == b'.' {
            data.push(b'.');
        }
        data.push(b);
        at_line_start = b == b'\n';
    }
    if !at_line_start {
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    send(&data)?;
    reply("250")?;
    send(b"QUIT\r\n")?;
    Ok(())
}

fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.finish()
}

/// Standard base64 with padding, for SASL initial responses in tests.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The SASL XOAUTH2 initial response for `user` and `token`, base64-encoded.
pub fn xoauth2_initial_response(user: &str, token: &str) -> String {
    base64(format!("user={user}\x01auth=Bearer {token}\x01\x01").as_bytes())
}

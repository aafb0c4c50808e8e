//! Radicale 3 (CalDAV) for one test: HTTPS on a free loopback port with the harness's test CA,
//! htpasswd (plain) login for the harness user, owner-only rights, its storage in a temp dir.
//!
//! Needs the Debian package radicale (`.ci/run` installs it); `Radicale::start()` panics naming
//! it when missing. Assert on what the server holds: `stored_items` lists its storage files
//! and `put_raw` writes a resource as another CalDAV client would.
//!
//! ```ignore
//! let radicale = support::radicale::Radicale::start();
//! let (user, password) = radicale.user();
//! let cal = CalDav::new(&radicale.calendar_url("pushback"), Some(user.into()),
//!                       Some(Secret::new(password)), Some(radicale.ca_file()))?;
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;

use super::{HOST, PASSWORD, PYTHON, USER, free_loopback_ports, tls, wait_for_ports};

const INSTALL_HINT: &str = "run .ci/run as root, or: apt-get install -y radicale";

/// Runs Radicale and exits when stdin closes, i.e. when the test process is gone, even if it
/// was killed before dropping `Radicale`.
const LAUNCHER: &str = r#"
import os, sys, threading
def watch_stdin():
    sys.stdin.buffer.read()
    os._exit(0)
threading.Thread(target=watch_stdin, daemon=True).start()
sys.argv = ["radicale", "--config", sys.argv[1]]
from radicale.__main__ import run
run()
"#;

/// PUTs stdin to a URL as a CalDAV client: argv is URL, user, password, CA file.
const PUT_SCRIPT: &str = r#"
import base64, ssl, sys, urllib.request
url, user, password, ca = sys.argv[1:5]
request = urllib.request.Request(url, data=sys.stdin.buffer.read(), method="PUT")
request.add_header("Content-Type", "text/calendar; charset=utf-8")
token = base64.b64encode(f"{user}:{password}".encode()).decode()
request.add_header("Authorization", "Basic " + token)
with urllib.request.urlopen(request, context=ssl.create_default_context(cafile=ca)) as answer:
    print(answer.status)
"#;

pub struct Radicale {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    port: u16,
    child: Child,
}

impl Radicale {
    /// Starts Radicale and returns once its port accepts connections.
    pub fn start() -> Radicale {
        preflight();
        let tmp = tempfile::Builder::new()
            .prefix("pushback-radicale.")
            .tempdir()
            .expect("cannot create Radicale's temp dir");
        let path = tmp.path().to_path_buf();
        for sub in ["etc", "tls", "log", "collections"] {
            fs::create_dir(path.join(sub)).unwrap();
        }
        let tls = tls::material();
        fs::write(path.join("tls/ca.pem"), &tls.ca_pem).unwrap();
        fs::write(path.join("tls/cert.pem"), &tls.cert_pem).unwrap();
        fs::write(path.join("tls/key.pem"), &tls.key_pem).unwrap();
        fs::write(path.join("etc/htpasswd"), format!("{USER}:{PASSWORD}\n")).unwrap();
        fs::write(path.join("etc/launcher.py"), LAUNCHER).unwrap();

        let mut last_failure = String::new();
        for _attempt in 0..5 {
            let port = free_loopback_ports(1)[0];
            write_config(&path, port);
            let mut child = spawn(&path);
            match wait_for_ports(&[port], &mut [&mut child]) {
                Ok(()) => {
                    return Radicale {
                        dir: Some(tmp),
                        path,
                        port,
                        child,
                    };
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_failure = format!(
                        "{why}\n--- radicale log ---\n{}",
                        fs::read_to_string(path.join("log/radicale.log")).unwrap_or_default()
                    );
                    // A port taken between picking and binding: try again with another one.
                    if !last_failure.contains("in use") {
                        break;
                    }
                }
            }
        }
        let kept = tmp.keep();
        panic!(
            "cannot start the test Radicale (kept {}):\n{last_failure}",
            kept.display()
        );
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https://127.0.0.1:PORT/USER/NAME/`: a calendar collection the user may create.
    pub fn calendar_url(&self, name: &str) -> String {
        format!("https://{HOST}:{}/{USER}/{name}/", self.port)
    }

    /// The one user and its password.
    pub fn user(&self) -> (&str, &str) {
        (USER, PASSWORD)
    }

    /// PEM of the CA that signed Radicale's certificate; the system trust store does not know it.
    pub fn ca_file(&self) -> PathBuf {
        self.path.join("tls/ca.pem")
    }

    /// The file names of the items stored in the user's collection `name`, sorted.
    pub fn stored_items(&self, name: &str) -> Vec<String> {
        let dir = self
            .path
            .join("collections/collection-root")
            .join(USER)
            .join(name);
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    /// The iCalendar text of every item in the user's collection `name`, as Radicale stores it,
    /// in file-name order.
    pub fn stored_texts(&self, name: &str) -> Vec<String> {
        let dir = self
            .path
            .join("collections/collection-root")
            .join(USER)
            .join(name);
        self.stored_items(name)
            .iter()
            .map(|file| {
                fs::read_to_string(dir.join(file))
                    .unwrap_or_else(|e| panic!("cannot read {file}: {e}"))
            })
            .collect()
    }

    /// Whether the user's collection `name` exists and is a calendar (Radicale's own record).
    pub fn is_calendar(&self, name: &str) -> bool {
        let props = self
            .path
            .join("collections/collection-root")
            .join(USER)
            .join(name)
            .join(".Radicale.props");
        fs::read_to_string(props).is_ok_and(|p| p.contains("\"VCALENDAR\""))
    }

    /// PUTs `ics` as `<calendar_url(collection)><file>` the way another client would.
    pub fn put_raw(&self, collection: &str, file: &str, ics: &str) {
        use std::io::Write;
        let url = format!("{}{file}", self.calendar_url(collection));
        let mut child = Command::new(PYTHON)
            .args(["-c", PUT_SCRIPT, &url, USER, PASSWORD])
            .arg(self.ca_file())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {PYTHON}: {e}"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(ics.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "PUT {url} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    /// Radicale's log, for panic messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.path.join("log/radicale.log")).unwrap_or_default()
    }
}

impl Drop for Radicale {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            eprintln!(
                "Radicale's files kept for inspection: {}",
                dir.keep().display()
            );
        }
    }
}

fn preflight() {
    let found = Command::new(PYTHON)
        .args(["-c", "import radicale"])
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON}: {e} ({INSTALL_HINT})"));
    assert!(
        found.success(),
        "{PYTHON} cannot import radicale: the Debian package radicale is not installed \
         ({INSTALL_HINT})"
    );
}

fn write_config(dir: &Path, port: u16) {
    let d = dir.display();
    let config = format!(
        "# Generated by tests/support for one test; loopback only.
[server]
hosts = {HOST}:{port}
ssl = True
certificate = {d}/tls/cert.pem
key = {d}/tls/key.pem
[auth]
type = htpasswd
htpasswd_filename = {d}/etc/htpasswd
htpasswd_encryption = plain
# One wrong-password test must not slow the next login.
delay = 0
[rights]
type = owner_only
[storage]
filesystem_folder = {d}/collections
[logging]
level = warning
"
    );
    fs::write(dir.join("etc/radicale.conf"), config).unwrap();
}

fn spawn(dir: &Path) -> Child {
    let log = fs::File::create(dir.join("log/radicale.log")).unwrap();
    Command::new(PYTHON)
        .arg(dir.join("etc/launcher.py"))
        .arg(dir.join("etc/radicale.conf"))
        .stdin(Stdio::piped())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {PYTHON}: {e} ({INSTALL_HINT})"))
}

//! A desktop secret service for one test: a private D-Bus session bus (dbus-daemon) with GNOME
//! Keyring's secrets component on it, its login keyring unlocked with a throwaway password and
//! kept in a temp dir. What `keyring` finds on a rep's desktop, without the desktop.
//!
//! Needs the Debian packages dbus-daemon, dbus-bin and gnome-keyring (`.ci/run` installs them);
//! `SecretService::start()` panics naming them when one is missing. A process sees the service
//! when its environment has [`SecretService::env`].

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str =
    "run .ci/run as root, or: apt-get install -y dbus-daemon dbus-bin gnome-keyring";

pub struct SecretService {
    _dir: tempfile::TempDir,
    address: String,
    bus: Child,
    keyring: Child,
}

impl SecretService {
    /// Starts the bus and the keyring, and returns once the secret service answers on the bus.
    pub fn start() -> SecretService {
        let dir = tempfile::Builder::new()
            .prefix("pushback-secrets.")
            .tempdir()
            .unwrap();
        for sub in ["home", "data", "run"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nosyslog", "--print-address=1"])
            .envs(private_dirs(dir.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dbus-daemon: {e} ({INSTALL_HINT})"));
        let mut address = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let address = address.trim().to_owned();
        assert!(!address.is_empty(), "dbus-daemon printed no address");
        // --unlock reads the keyring's password from stdin up to its end: the login keyring is
        // created unlocked, as a desktop session's is.
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .envs(private_dirs(dir.path()))
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start gnome-keyring-daemon: {e} ({INSTALL_HINT})"));
        keyring
            .stdin
            .take()
            .unwrap()
            .write_all(b"test-keyring-password")
            .unwrap();
        let service = SecretService {
            _dir: dir,
            address,
            bus,
            keyring,
        };
        service.wait_until_on_the_bus();
        service
    }

    /// The environment that points a process at this secret service.
    pub fn env(&self) -> [(&'static str, &str); 1] {
        [("DBUS_SESSION_BUS_ADDRESS", &self.address)]
    }

    /// Asks the bus (not the service, which the bus could then start a second of) whether the
    /// secret service's name has an owner yet.
    fn wait_until_on_the_bus(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = Command::new("dbus-send")
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ])
                .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
                .output()
                .unwrap_or_else(|e| panic!("cannot run dbus-send: {e} ({INSTALL_HINT})"));
            if String::from_utf8_lossy(&answer.stdout).contains("boolean true") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the secret service never appeared on the bus: {}",
                String::from_utf8_lossy(&answer.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Home, data and runtime directories in the test's temp dir: the keyring files and the
/// daemon's control socket stay there.
fn private_dirs(dir: &Path) -> [(&'static str, std::path::PathBuf); 3] {
    [
        ("HOME", dir.join("home")),
        ("XDG_DATA_HOME", dir.join("data")),
        ("XDG_RUNTIME_DIR", dir.join("run")),
    ]
}

impl Drop for SecretService {
    fn drop(&mut self) {
        for child in [&mut self.keyring, &mut self.bus] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

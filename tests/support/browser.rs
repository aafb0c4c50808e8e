//! A real headless Chromium for tests of the approval page, driven over WebDriver: Debian's
//! `chromedriver` started on a free loopback port, a fresh browser profile each time, and
//! fantoccini as the client. Needs the Debian packages chromium and chromium-driver (`.ci/run`
//! installs them); without them `ChromeDriver::start()` panics and names them, so a browser test
//! never passes without a browser.

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const INSTALL_HINT: &str = "run .ci/run as root, or: apt-get install -y chromium chromium-driver";

/// chromedriver on its own port, with the profile directory its browser uses; stopped (SIGTERM,
/// which ends its browsers too) and cleaned up when dropped.
pub struct ChromeDriver {
    child: Child,
    port: u16,
    profile: tempfile::TempDir,
    log: std::path::PathBuf,
}

impl ChromeDriver {
    pub fn start() -> ChromeDriver {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: the approval page is tested in a real browser; {INSTALL_HINT}"
            );
        }
        let port = super::free_loopback_ports(1)[0];
        let profile = tempfile::Builder::new()
            .prefix("pushback-chromium.")
            .tempdir()
            .expect("cannot create the browser profile directory");
        let log = profile.path().join("chromedriver.log");
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}; {INSTALL_HINT}"));
        let driver = ChromeDriver {
            child,
            port,
            profile,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not open port {port}: {}",
                driver.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        driver
    }

    /// A new browser session: headless, nothing fetched in the background, a fresh profile.
    pub async fn connect(&self) -> Client {
        let profile = self.profile.path().join("profile");
        let options = serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1400,2200",
                format!("--user-data-dir={}", profile.display()),
            ],
        });
        let mut capabilities = Capabilities::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .unwrap_or_else(|e| panic!("cannot start chromium: {e}\n{}", self.log_tail()))
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        super::pushback::stop(&mut self.child);
    }
}

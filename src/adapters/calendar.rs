//! The rep's calendar, seen from pushback: follow-ups and RFP deadlines written out as iCalendar
//! (a subscribable feed file, or items PUT to a CalDAV collection), discovery-call invitations to
//! attach to a draft, and the busy times pushback must not propose a call over (an `.ics` file or
//! URL, or a CalDAV REPORT). Which items exist and when they are due is the core's business; this
//! module only formats, parses and moves the text.

mod busy;
mod caldav;
mod ics;

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::adapters::imap::tls;

pub use busy::busy_from_ics;
pub use caldav::CalDav;
pub use ics::{FeedWriter, invite, item_ics};

/// One follow-up or deadline, as the calendar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarItem {
    /// Stable and chosen by the caller, e.g. `reminder-42@pushback`; the same uid is the same
    /// calendar entry, updated in place.
    pub uid: String,
    pub kind: ItemKind,
    pub summary: String,
    /// Free text over several lines (the thread, the facts).
    pub description: String,
    /// VTODO DUE, or VEVENT DTSTART.
    pub due: DateTime<Utc>,
    /// VEVENT DTEND; `None` means [`DEFAULT_EVENT_LENGTH`] after `due`.
    pub end: Option<DateTime<Utc>>,
    /// A display alarm this long before `due`.
    pub alarm_before: Option<chrono::Duration>,
    pub status: ItemStatus,
    /// Where the thread lives, e.g. `mid:<message-id>`.
    pub url: Option<String>,
    /// Bumped by the caller whenever the item changes (snooze, reschedule), so clients update.
    pub sequence: u32,
    /// DTSTAMP and LAST-MODIFIED; passed in so formatting never reads a clock.
    pub stamp: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// A follow-up to do: a VTODO with DUE.
    Todo,
    /// A deadline: a VEVENT at `due` with an alarm.
    Event,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemStatus {
    Open,
    Done,
    Cancelled,
}

/// How long a deadline event lasts when the caller gives no end.
pub const DEFAULT_EVENT_LENGTH: chrono::Duration = chrono::Duration::minutes(30);

/// A proposed discovery call, sent to the buyer as `text/calendar; method=REQUEST`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub uid: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub organizer_name: String,
    pub organizer_email: String,
    pub attendee_name: Option<String>,
    pub attendee_email: String,
    pub summary: String,
    pub description: String,
    pub stamp: DateTime<Utc>,
}

/// Where the rep's busy times come from: an exported `.ics` file or a published calendar URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusySource {
    File(PathBuf),
    Url(String),
}

/// A published calendar's address works like a password (Google's "secret address", Outlook's
/// published ICS links carry the token in the path), so only its scheme and host are ever shown.
impl std::fmt::Display for BusySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BusySource::File(path) => write!(f, "{}", path.display()),
            BusySource::Url(url) => f.write_str(&shown_url(url)),
        }
    }
}

/// `https://calendar.example.com/…`: a URL with its path and query left out.
fn shown_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(parsed) => match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}/…", parsed.scheme()),
            (Some(host), None) => format!("{}://{host}/…", parsed.scheme()),
            (None, _) => format!("{}:…", parsed.scheme()),
        },
        Err(_) => "(an unreadable URL)".into(),
    }
}

/// A half-open `[start, end)` stretch of busy time.
pub type Busy = (DateTime<Utc>, DateTime<Utc>);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read the iCalendar text: {reason}")]
    Ics { reason: String },
    #[error("cannot read busy times from {origin}")]
    BusySource {
        origin: String,
        #[source]
        cause: Box<Error>,
    },
    #[error("cannot read {path}: {cause}")]
    ReadFile {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot write the calendar feed {path}: {cause}")]
    WriteFeed {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot use the calendar URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot set up TLS for calendar connections")]
    Tls {
        #[source]
        cause: tls::Error,
    },
    #[error("cannot set up the HTTP client")]
    Client {
        #[source]
        cause: reqwest::Error,
    },
    // The cause chain says why (refused, timed out, TLS); reqwest's own text alone does not.
    #[error("cannot {method} {url}")]
    Transport {
        method: String,
        url: String,
        #[source]
        cause: reqwest::Error,
    },
    #[error(
        "cannot log in to {url} as {user:?}: the server answered {status}; check the user and \
         password"
    )]
    Login {
        url: String,
        user: String,
        status: u16,
    },
    #[error("cannot {method} {url}: the server answered {status}: {body}")]
    Status {
        method: String,
        url: String,
        status: u16,
        /// The start of the server's answer, on one line.
        body: String,
    },
    #[error("cannot understand the answer to {method} {url}: {reason}")]
    Answer {
        method: String,
        url: String,
        reason: String,
    },
    #[error("{url} exists but is not a calendar collection")]
    NotACalendar { url: String },
}

impl Error {
    /// The same error with a published calendar's address shown as [`shown_url`] does: a
    /// private feed's token must not reach a log.
    fn hiding_url(self) -> Error {
        let hide = |url: String| shown_url(&url);
        match self {
            Error::BadUrl { url, reason } => Error::BadUrl {
                url: hide(url),
                reason,
            },
            Error::Transport { method, url, cause } => Error::Transport {
                method,
                url: hide(url),
                cause: cause.without_url(),
            },
            Error::Login { url, user, status } => Error::Login {
                url: hide(url),
                user,
                status,
            },
            Error::Status {
                method,
                url,
                status,
                body,
            } => Error::Status {
                method,
                url: hide(url),
                status,
                body,
            },
            Error::Answer {
                method,
                url,
                reason,
            } => Error::Answer {
                method,
                url: hide(url),
                reason,
            },
            Error::NotACalendar { url } => Error::NotACalendar { url: hide(url) },
            other => other,
        }
    }

    /// Whether trying again later may succeed: the server could not be reached, timed out or
    /// said it is overloaded. Everything else needs a person to change something first, a
    /// certificate the client does not trust included.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { cause, .. } => !is_certificate_error(cause),
            Error::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            Error::BusySource { cause, .. } => cause.is_transient(),
            _ => false,
        }
    }
}

fn is_certificate_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        next = match error.downcast_ref::<std::io::Error>() {
            // rustls' error sits inside the io::Error of the failed handshake.
            Some(io) if tls::certificate_error(io).is_some() => return true,
            // io::Error::source skips the error it wraps (maybe another io::Error): step in.
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    false
}

/// Replaces the feed at `path` with what `write` writes into it, so that a calendar app polling
/// the file never reads half of it: a temp file in the same directory, buffered, fsynced,
/// renamed over `path`, then the directory fsynced so the rename survives a crash. Nothing is
/// replaced when `write` fails. The file is private to the rep (mode 0600): it quotes threads.
pub fn write_feed<T, E: From<Error>>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<T, E>,
) -> Result<T, E> {
    let write_error = |cause| Error::WriteFeed {
        path: path.to_path_buf(),
        cause,
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".pushback-feed.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(write_error)?;
    let mut buffered = std::io::BufWriter::new(temp);
    let written = write(&mut buffered)?;
    let temp = buffered
        .into_inner()
        .map_err(|e| write_error(e.into_error()))?;
    temp.as_file().sync_all().map_err(write_error)?;
    temp.persist(path).map_err(|e| write_error(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(write_error)?;
    Ok(written)
}

/// Busy times in `[from, to)` from a file or an http(s) URL; see [`busy_from_ics`].
pub async fn fetch_busy(
    source: &BusySource,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    floating_tz: chrono_tz::Tz,
) -> Result<Vec<Busy>, Error> {
    let (origin, text) = match source {
        BusySource::File(path) => {
            let text = tokio::fs::read_to_string(path)
                .await
                .map_err(|cause| Error::ReadFile {
                    path: path.clone(),
                    cause,
                })?;
            (path.display().to_string(), text)
        }
        BusySource::Url(url) => {
            let fetched = async { caldav::get_text(&http_client(None)?, http_url(url)?).await };
            let text = fetched.await.map_err(Error::hiding_url)?;
            (source.to_string(), text)
        }
    };
    busy_from_ics(&text, from, to, floating_tz).map_err(|cause| Error::BusySource {
        origin,
        cause: Box::new(cause),
    })
}

/// An http(s) URL without a user or password in it: a password in a URL ends up in logs and
/// errors, so both are given separately.
fn http_url(url: &str) -> Result<reqwest::Url, Error> {
    let bad = |reason: &str| Error::BadUrl {
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("only http and https URLs are supported"));
    }
    if parsed.password().is_some() || !parsed.username().is_empty() {
        return Err(Error::BadUrl {
            url: redacted(&parsed),
            reason: "it holds a user or password; give them separately".to_string(),
        });
    }
    Ok(parsed)
}

fn redacted(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("[redacted]"));
    }
    url.to_string()
}

/// An HTTP/1.1 client on the project's one rustls (ring provider), trusting the webpki roots,
/// the system store and `extra_ca_pem`.
fn http_client(extra_ca_pem: Option<&Path>) -> Result<reqwest::Client, Error> {
    let config = tls::client_config(tls::Trust::Verified {
        extra_ca_file: extra_ca_pem,
    })
    .map_err(|cause| Error::Tls { cause })?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(std::sync::Arc::unwrap_or_clone(config))
        .user_agent(concat!("pushback/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(10))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|cause| Error::Client { cause })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 10, h, 0, 0).unwrap()
    }

    fn todo(uid: &str) -> CalendarItem {
        CalendarItem {
            uid: uid.to_string(),
            kind: ItemKind::Todo,
            summary: "Follow up".to_string(),
            description: String::new(),
            due: at(9),
            end: None,
            alarm_before: None,
            status: ItemStatus::Open,
            url: None,
            sequence: 0,
            stamp: at(8),
        }
    }

    /// Writes the feed of `items` to `path`.
    fn write_items(path: &Path, items: &[CalendarItem]) -> Result<(), Error> {
        write_feed(path, |out| {
            let mut feed = FeedWriter::start(out, "Pushback").map_err(io_error)?;
            for item in items {
                feed.item(item).map_err(io_error)?;
            }
            feed.finish().map_err(io_error)?;
            Ok(())
        })
    }

    fn io_error(cause: std::io::Error) -> Error {
        Error::WriteFeed {
            path: PathBuf::from("(test)"),
            cause,
        }
    }

    #[test]
    fn write_feed_replaces_the_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pushback.ics");
        write_items(&path, &[todo("a@pushback")]).unwrap();
        write_items(&path, &[todo("b@pushback")]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("UID:b@pushback"), "{text}");
        assert!(!text.contains("UID:a@pushback"), "{text}");
        assert!(text.ends_with("END:VCALENDAR\r\n"), "{text}");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["pushback.ics"]);
    }

    #[test]
    fn a_failed_write_leaves_the_feed_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pushback.ics");
        write_items(&path, &[todo("a@pushback")]).unwrap();
        let before = std::fs::read_to_string(&path).unwrap();
        let failed = write_feed(&path, |out| {
            out.write_all(b"BEGIN:VCALENDAR\r\n").map_err(io_error)?;
            Err::<(), _>(io_error(std::io::Error::other("the store went away")))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_feed_names_the_file_it_cannot_write() {
        let error = write_items(Path::new("/nonexistent/dir/feed.ics"), &[]).unwrap_err();
        assert!(matches!(error, Error::WriteFeed { .. }), "{error}");
        assert!(error.to_string().contains("/nonexistent/dir/feed.ics"));
    }

    const BUSY_ICS: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
        BEGIN:VEVENT\r\nUID:x\r\nDTSTAMP:20250301T000000Z\r\nDTSTART:20250310T100000Z\r\n\
        DTEND:20250310T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[tokio::test]
    async fn fetch_busy_reads_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.ics");
        std::fs::write(&path, BUSY_ICS).unwrap();
        let busy = fetch_busy(&BusySource::File(path), at(0), at(23), chrono_tz::UTC)
            .await
            .unwrap();
        assert_eq!(busy, [(at(10), at(11))]);
    }

    #[tokio::test]
    async fn fetch_busy_names_the_file_that_does_not_parse() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.ics");
        std::fs::write(&path, "BEGIN:VCALENDAR\r\nthis is not iCalendar\r\n").unwrap();
        let error = fetch_busy(
            &BusySource::File(path.clone()),
            at(0),
            at(23),
            chrono_tz::UTC,
        )
        .await
        .unwrap_err();
        assert!(matches!(error, Error::BusySource { .. }), "{error}");
        assert!(error.to_string().contains(&path.display().to_string()));
        assert!(!error.is_transient());
    }

    /// Serves one canned HTTP answer on a loopback port and returns the URL.
    async fn serve_once(answer: String) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/busy.ics", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 4096];
            let _ = stream.read(&mut request).await.unwrap();
            stream.write_all(answer.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
        });
        url
    }

    #[tokio::test]
    async fn fetch_busy_reads_a_url() {
        let url = serve_once(format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/calendar\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{BUSY_ICS}",
            BUSY_ICS.len()
        ))
        .await;
        let busy = fetch_busy(&BusySource::Url(url), at(0), at(23), chrono_tz::UTC)
            .await
            .unwrap();
        assert_eq!(busy, [(at(10), at(11))]);
    }

    #[tokio::test]
    async fn fetch_busy_reports_the_status_and_the_answer() {
        let body = "calendar gone";
        let url = serve_once(format!(
            "HTTP/1.1 410 Gone\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ))
        .await;
        let error = fetch_busy(&BusySource::Url(url.clone()), at(0), at(23), chrono_tz::UTC)
            .await
            .unwrap_err();
        let text = error.to_string();
        let shown = BusySource::Url(url.clone()).to_string();
        assert!(
            text.contains(&shown) && text.contains("410") && text.contains(body),
            "{text}"
        );
        assert!(!text.contains(&url), "the feed's path is not shown: {text}");
        assert!(!error.is_transient());
    }

    #[tokio::test]
    async fn a_private_feed_address_never_shows_in_errors() {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = socket.local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/ical/private-s3cr3t-token/basic.ics");
        let source = BusySource::Url(url);
        assert_eq!(source.to_string(), format!("http://127.0.0.1:{port}/…"));
        let error = fetch_busy(&source, at(0), at(23), chrono_tz::UTC)
            .await
            .unwrap_err();
        let chain = format!("{:#}", anyhow::Error::from(error));
        assert!(!chain.contains("s3cr3t"), "{chain}");
        assert!(chain.contains(&format!("127.0.0.1:{port}")), "{chain}");
    }

    #[tokio::test]
    async fn an_unreachable_url_is_transient() {
        // Bound but not listening: connections are refused, and no other test can take the port.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let url = format!("http://{}/busy.ics", socket.local_addr().unwrap());
        let error = fetch_busy(&BusySource::Url(url), at(0), at(23), chrono_tz::UTC)
            .await
            .unwrap_err();
        assert!(error.is_transient(), "{error}");
    }

    #[test]
    fn a_password_in_the_url_is_refused_and_not_repeated() {
        let error = http_url("https://rep:hunter2@cal.example.com/rep/").unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("password") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(matches!(
            http_url("ftp://cal.example.com/x.ics"),
            Err(Error::BadUrl { .. })
        ));
    }
}

//! Who may use the approval page: the install token, the session it buys, and the checks every
//! request passes. The token (32 random bytes, hex) lives in `<state_dir>/web-token`, mode 0600,
//! and is only ever printed by `pushback web-url`. Visiting any page with `?token=` opens a
//! server-side session: the cookie holds a random session id (HttpOnly, SameSite=Strict, Secure
//! over TLS), never the token, and the browser is sent on to the same page without the token in
//! the address. Every POST must carry the session's CSRF token and, when the browser says where
//! it comes from, come from this page. Rendering the pages is `pages`' business.

use crate::adapters::secret::Secret;
use anyhow::{Context, Result, bail};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// The token file's name in the state directory.
pub const TOKEN_FILE: &str = "web-token";
pub const SESSION_COOKIE: &str = "pushback_session";
/// The form field every POST carries.
pub const CSRF_FIELD: &str = "csrf";
/// The query parameter `pushback web-url` puts the token in.
pub const TOKEN_PARAM: &str = "token";
/// Browsers the rep opened the page in; past this the least recently used session is dropped.
const MAX_SESSIONS: usize = 32;
/// Forms on the page are a few kilobytes; an edited draft is text.
pub const MAX_FORM_BYTES: usize = 1024 * 1024;
const RANDOM_BYTES: usize = 32;

/// The install's token, created on first use. A token file anyone else can read is refused
/// rather than used.
pub fn load_or_create_token(state_dir: &Path) -> Result<Secret> {
    let path = token_path(state_dir);
    if !path.exists() {
        create_token(state_dir, &path)?;
    }
    let mode = std::fs::metadata(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "cannot use {}: other users can read it (mode {:o}); run `chmod 600 {}`",
            path.display(),
            mode & 0o777,
            path.display()
        );
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let token = text.trim();
    if token.len() != RANDOM_BYTES * 2 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "cannot use {}: it does not hold a pushback web token; delete it and run \
             `pushback web-url` for a new one",
            path.display()
        );
    }
    Ok(Secret::new(token))
}

/// Writes a new token to a private temporary file and links it into place, so that two processes
/// creating it at once end up with one token and neither reads a half-written file.
fn create_token(state_dir: &Path, path: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .with_context(|| format!("cannot create state directory {}", state_dir.display()))?;
    let temporary = state_dir.join(format!("{TOKEN_FILE}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(random_hex().map_err(std::io::Error::other)?.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    };
    let written = write().and_then(|()| match std::fs::hard_link(&temporary, path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    });
    let _ = std::fs::remove_file(&temporary);
    written.with_context(|| format!("cannot create {}", path.display()))
}

/// 32 random bytes from the operating system, as lower-case hex.
pub fn random_hex() -> Result<String> {
    let mut bytes = [0u8; RANDOM_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("cannot get random bytes: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares secrets without leaking, through timing, how much of a guess was right.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The address the page is reached at, with the token: what `pushback web-url` prints.
pub fn page_url(listen: SocketAddr, tls: bool, token: &Secret) -> String {
    let scheme = if tls { "https" } else { "http" };
    // An unspecified address (0.0.0.0) listens on loopback too.
    let host = match listen.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_string(),
        ip if ip.is_unspecified() => "[::1]".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        std::net::IpAddr::V4(ip) => ip.to_string(),
    };
    format!(
        "{scheme}://{host}:{}/?{TOKEN_PARAM}={}",
        listen.port(),
        token.expose()
    )
}

/// One browser's session: its CSRF token and the message for the page it sees next.
struct Session {
    csrf: String,
    flash: Option<Flash>,
    used: Instant,
}

/// What a form did, shown once on the page the browser is sent to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Flash {
    pub text: String,
    pub error: bool,
}

/// The session a request belongs to, for the handlers: the CSRF token their forms carry.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub id: String,
    pub csrf: String,
}

#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn open(&self) -> Result<SessionView> {
        let view = SessionView {
            id: random_hex()?,
            csrf: random_hex()?,
        };
        let mut sessions = self.lock();
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            view.id.clone(),
            Session {
                csrf: view.csrf.clone(),
                flash: None,
                used: Instant::now(),
            },
        );
        Ok(view)
    }

    fn find(&self, id: &str) -> Option<SessionView> {
        let mut sessions = self.lock();
        let session = sessions.get_mut(id)?;
        session.used = Instant::now();
        Some(SessionView {
            id: id.to_string(),
            csrf: session.csrf.clone(),
        })
    }

    pub fn set_flash(&self, session: &SessionView, flash: Flash) {
        if let Some(s) = self.lock().get_mut(&session.id) {
            s.flash = Some(flash);
        }
    }

    pub fn take_flash(&self, session: &SessionView) -> Option<Flash> {
        self.lock().get_mut(&session.id)?.flash.take()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // A panic while holding the lock leaves the map as it was: still usable.
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Why a request is turned away, before any handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No session, or a wrong token: 401.
    NoSession,
    /// A POST without the session's CSRF token or from another site: 403.
    Forged,
    /// A Host header that is not this page's: a DNS-rebinding attempt or a proxy: 421.
    WrongHost,
    /// A form too big to be one of ours: 413.
    TooLarge,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::NoSession => StatusCode::UNAUTHORIZED,
            Refusal::Forged => StatusCode::FORBIDDEN,
            Refusal::WrongHost => StatusCode::MISDIRECTED_REQUEST,
            Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    pub fn explain(self) -> &'static str {
        match self {
            Refusal::NoSession => {
                "This page needs your pushback token. Run `pushback web-url` on this machine and \
                 open the address it prints."
            }
            Refusal::Forged => {
                "This form did not come from your pushback page (its security token is missing or \
                 stale). Nothing was changed. Go back, reload the page and try again."
            }
            Refusal::WrongHost => {
                "This request named another host than the one pushback listens on. Open the \
                 address `pushback web-url` prints."
            }
            Refusal::TooLarge => "That form was too large. Nothing was changed.",
        }
    }
}

/// What the guard decided about a request.
pub enum Admission {
    /// Go on to the handler, in this session; the body was read to check the form and is put
    /// back.
    Pass(SessionView, Box<Request<Body>>),
    /// The token was right: set this cookie and send the browser to `location`.
    Welcome {
        cookie: HeaderValue,
        location: String,
    },
    Refuse(Refusal),
}

/// The checks every request but the stylesheet passes.
pub struct Gate {
    pub token: Secret,
    pub sessions: Sessions,
    pub listen: SocketAddr,
    pub tls: bool,
}

impl Gate {
    pub fn new(token: Secret, listen: SocketAddr, tls: bool) -> Gate {
        Gate {
            token,
            sessions: Sessions::default(),
            listen,
            tls,
        }
    }

    pub async fn admit(&self, request: Request<Body>) -> Result<Admission> {
        if !self.host_is_ours(request.headers()) {
            return Ok(Admission::Refuse(Refusal::WrongHost));
        }
        if let Some(token) = query_param(request.uri().query(), TOKEN_PARAM) {
            if !same_secret(token.as_bytes(), self.token.expose().as_bytes()) {
                return Ok(Admission::Refuse(Refusal::NoSession));
            }
            let session = self.sessions.open()?;
            return Ok(Admission::Welcome {
                cookie: self.cookie(&session.id)?,
                location: request.uri().path().to_string(),
            });
        }
        let Some(session) =
            cookie_value(request.headers(), SESSION_COOKIE).and_then(|id| self.sessions.find(&id))
        else {
            return Ok(Admission::Refuse(Refusal::NoSession));
        };
        if request.method() == Method::GET || request.method() == Method::HEAD {
            return Ok(Admission::Pass(session, Box::new(request)));
        }
        if !from_this_page(request.headers()) {
            return Ok(Admission::Refuse(Refusal::Forged));
        }
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return Ok(Admission::Refuse(Refusal::TooLarge));
        };
        let csrf = query_param(Some(&String::from_utf8_lossy(&bytes)), CSRF_FIELD);
        if !csrf.is_some_and(|csrf| same_secret(csrf.as_bytes(), session.csrf.as_bytes())) {
            return Ok(Admission::Refuse(Refusal::Forged));
        }
        Ok(Admission::Pass(
            session,
            Box::new(Request::from_parts(parts, Body::from(bytes))),
        ))
    }

    fn cookie(&self, session_id: &str) -> Result<HeaderValue> {
        let secure = if self.tls { "; Secure" } else { "" };
        Ok(HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={session_id}; HttpOnly; SameSite=Strict; Path=/{secure}"
        ))?)
    }

    /// On loopback, only the loopback names of this address and port: a page on another site
    /// whose name was pointed at 127.0.0.1 (DNS rebinding) is refused. Beyond loopback the page
    /// is behind TLS, and its name is the certificate's.
    fn host_is_ours(&self, headers: &HeaderMap) -> bool {
        if !self.listen.ip().is_loopback() {
            return true;
        }
        let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
            return false;
        };
        let port = self.listen.port();
        let ours = match self.listen {
            SocketAddr::V4(addr) => format!("{}:{port}", addr.ip()),
            SocketAddr::V6(addr) => format!("[{}]:{port}", addr.ip()),
        };
        host.eq_ignore_ascii_case(&ours) || host.eq_ignore_ascii_case(&format!("localhost:{port}"))
    }
}

/// Whether a POST comes from a page on this host, as far as the browser says: its Origin (or,
/// without one, its Referer) must name the Host it is sent to. A browser that says neither is
/// left to the CSRF token alone; `Origin: null` (a sandboxed frame, a data: page) is refused.
fn from_this_page(headers: &HeaderMap) -> bool {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let Some(host) = text(header::HOST) else {
        return false;
    };
    let source = match (text(header::ORIGIN), text(header::REFERER)) {
        (Some(origin), _) => origin,
        (None, Some(referer)) => referer,
        (None, None) => return true,
    };
    url::Url::parse(source).is_ok_and(|url| {
        let authority = match (url.host_str(), url.port()) {
            (Some(name), Some(port)) => format!("{name}:{port}"),
            (Some(name), None) => name.to_string(),
            (None, _) => return false,
        };
        authority.eq_ignore_ascii_case(host)
    })
}

/// The first value of `name` in a query string or form body, decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// Where the token of the install with this state directory is kept.
fn token_path(state_dir: &Path) -> PathBuf {
    state_dir.join(TOKEN_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_created_once_private_and_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = load_or_create_token(&state).unwrap();
        assert_eq!(first.expose().len(), 64);
        let mode = std::fs::metadata(token_path(&state))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_token(&state).unwrap(), first);
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [TOKEN_FILE]);
    }

    #[test]
    fn a_token_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create_token(dir.path()).unwrap();
        let path = token_path(dir.path());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = load_or_create_token(dir.path()).unwrap_err().to_string();
        assert!(error.contains("other users can read it"), "{error}");
        assert!(error.contains("chmod 600"), "{error}");
    }

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

    #[test]
    fn the_printed_address_reaches_the_page() {
        let token = Secret::new("ab");
        let url = |listen: &str, tls| page_url(listen.parse().unwrap(), tls, &token);
        assert_eq!(
            url("127.0.0.1:8025", false),
            "http://127.0.0.1:8025/?token=ab"
        );
        assert_eq!(url("[::1]:8025", false), "http://[::1]:8025/?token=ab");
        assert_eq!(
            url("0.0.0.0:8443", true),
            "https://127.0.0.1:8443/?token=ab"
        );
    }

    #[test]
    fn a_post_must_come_from_this_host_when_the_browser_says_where_from() {
        let headers = |pairs: &[(header::HeaderName, &str)]| {
            let mut map = HeaderMap::new();
            map.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8025"));
            for (name, value) in pairs {
                map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
            }
            map
        };
        assert!(from_this_page(&headers(&[(
            header::ORIGIN,
            "http://127.0.0.1:8025"
        )])));
        assert!(from_this_page(&headers(&[])));
        assert!(from_this_page(&headers(&[(
            header::REFERER,
            "http://127.0.0.1:8025/drafts/1"
        )])));
        for (name, value) in [
            (header::ORIGIN, "http://evil.example"),
            (header::ORIGIN, "null"),
            (header::ORIGIN, "http://127.0.0.1:9999"),
            (header::REFERER, "http://evil.example/page"),
        ] {
            assert!(!from_this_page(&headers(&[(name, value)])), "{value}");
        }
    }
}

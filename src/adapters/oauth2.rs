//! OAuth2 on the wire and at rest: the token endpoint (code exchange with the PKCE verifier,
//! refresh), the loopback listener the browser is redirected to, opening the browser, and the
//! places a refresh token is kept (the desktop's secret service through `keyring`, a 0600 file
//! in the state directory, or a read-only systemd credential). Tokens, codes and verifiers travel as [`Secret`]s and never reach an error text.
//! The URL, the state and the refresh schedule are `core::oauth2`'s; which token to use when is
//! `app::oauth2`'s.

use crate::adapters::imap::tls;
use crate::adapters::secret::Secret;
use crate::core::oauth2::{ASSUMED_LIFETIME, Redirect, read_redirect};
use chrono::{DateTime, TimeDelta, Utc};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the token endpoint {url}: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("the token endpoint {url} answered HTTP {status}; it will be tried again")]
    Unavailable { url: String, status: u16 },
    /// RFC 6749 section 5.2: the refresh token (or code) is invalid, expired or revoked.
    #[error("the token endpoint {url} refused the grant (invalid_grant{description})")]
    InvalidGrant { url: String, description: String },
    #[error("the token endpoint {url} refused the request ({code}{description})")]
    Refused {
        url: String,
        code: String,
        description: String,
    },
    /// Never with the body: it may hold a token.
    #[error("cannot read the token endpoint's answer from {url}: {reason}")]
    BadAnswer { url: String, reason: &'static str },
    #[error("cannot set up HTTPS for the token endpoint: {cause}")]
    Client { cause: String },
    #[error("cannot listen for the browser's redirect on 127.0.0.1: {cause}")]
    Listen { cause: std::io::Error },
    #[error("no sign-in came back within {seconds} seconds; run the login again")]
    TimedOut { seconds: u64 },
    #[error("the sign-in was refused: {error}{description}")]
    Denied { error: String, description: String },
    #[error(
        "the redirect carried a state this login did not send (a stale tab, or a forged \
         request); run the login again"
    )]
    StateMismatch,
    #[error("cannot read the refresh token from {place}: {cause}")]
    Read {
        place: String,
        cause: std::io::Error,
    },
    #[error("cannot store the refresh token in {place}: {cause}")]
    Write {
        place: String,
        cause: std::io::Error,
    },
    #[error(
        "cannot store the refresh token in the systemd credential {name}: credentials are \
         read-only"
    )]
    ReadOnly { name: String },
    #[error("cannot use the {place}: {cause}")]
    Keyring { place: String, cause: String },
    #[error(
        "CREDENTIALS_DIRECTORY is not set, so there is no systemd credential {name}: \
         token-store = \"systemd-credential\" works under systemd with LoadCredential={name}:FILE"
    )]
    NoCredentialsDirectory { name: String },
}

impl Error {
    /// Worth trying again later: the endpoint was down or overloaded, not refusing.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unreachable { .. } | Error::Unavailable { .. })
    }
}

/// A token response.
#[derive(Debug, Clone)]
pub struct Grant {
    pub access_token: Secret,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Set when the provider issues one: always after a code exchange (with offline access),
    /// and after a refresh when it rotates refresh tokens (Microsoft does).
    pub refresh_token: Option<Secret>,
}

/// Reads a token endpoint's answer (RFC 6749 sections 5.1 and 5.2); `now` is when it arrived.
pub fn read_token_answer(
    url: &str,
    status: u16,
    body: &str,
    now: DateTime<Utc>,
) -> Result<Grant, Error> {
    if status >= 500 || status == 429 {
        return Err(Error::Unavailable {
            url: url.to_string(),
            status,
        });
    }
    let bad = |reason| Error::BadAnswer {
        url: url.to_string(),
        reason,
    };
    let json: serde_json::Value = serde_json::from_str(body).map_err(|_| bad("not JSON"))?;
    let text = |key: &str| json.get(key).and_then(serde_json::Value::as_str);
    if !(200..300).contains(&status) {
        let description = text("error_description")
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return Err(match text("error") {
            Some("invalid_grant") => Error::InvalidGrant {
                url: url.to_string(),
                description,
            },
            Some(code) => Error::Refused {
                url: url.to_string(),
                code: code.to_string(),
                description,
            },
            None => Error::Refused {
                url: url.to_string(),
                code: format!("HTTP {status}"),
                description,
            },
        });
    }
    let access_token = text("access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no access_token"))?;
    if let Some(kind) = text("token_type")
        && !kind.eq_ignore_ascii_case("bearer")
    {
        return Err(bad("token_type is not Bearer"));
    }
    // A number, or (some older Microsoft endpoints) a string of digits.
    let lifetime = match json.get("expires_in") {
        None => ASSUMED_LIFETIME,
        Some(value) => value
            .as_i64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            .filter(|seconds| *seconds >= 0)
            .map(TimeDelta::seconds)
            .ok_or_else(|| bad("expires_in is not a number of seconds"))?,
    };
    Ok(Grant {
        access_token: Secret::new(access_token),
        issued_at: now,
        expires_at: now + lifetime,
        refresh_token: text("refresh_token")
            .filter(|t| !t.is_empty())
            .map(Secret::new),
    })
}

/// The provider's token endpoint for one client.
pub struct TokenEndpoint {
    url: Url,
    client_id: String,
    client_secret: Option<Secret>,
    http: reqwest::Client,
}

impl TokenEndpoint {
    pub fn new(
        url: Url,
        client_id: &str,
        client_secret: Option<Secret>,
    ) -> Result<TokenEndpoint, Error> {
        let config = tls::client_config(tls::Trust::Verified {
            extra_ca_file: None,
        })
        .map_err(|e| Error::Client {
            cause: e.to_string(),
        })?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(std::sync::Arc::unwrap_or_clone(config))
            .user_agent(concat!("pushback/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            // A token endpoint does not redirect; following one would resend the secrets.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Client {
                cause: e.to_string(),
            })?;
        Ok(TokenEndpoint {
            url,
            client_id: client_id.to_string(),
            client_secret,
            http,
        })
    }

    /// Trades the authorization code for tokens (RFC 6749 4.1.3, with RFC 7636's verifier).
    pub async fn exchange_code(
        &self,
        code: &Secret,
        verifier: &Secret,
        redirect_uri: &str,
    ) -> Result<Grant, Error> {
        self.post(&[
            ("grant_type", "authorization_code"),
            ("code", code.expose()),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier.expose()),
        ])
        .await
    }

    /// A new access token for the refresh token (RFC 6749 section 6).
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<Grant, Error> {
        self.post(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
        ])
        .await
    }

    async fn post(&self, params: &[(&str, &str)]) -> Result<Grant, Error> {
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.extend_pairs(params);
            form.append_pair("client_id", &self.client_id);
            if let Some(secret) = &self.client_secret {
                form.append_pair("client_secret", secret.expose());
            }
            form.finish()
        };
        let url = self.url.as_str();
        // reqwest's error text names the URL only, never the body.
        let unreachable = |cause: reqwest::Error| Error::Unreachable {
            url: url.to_string(),
            cause: cause.without_url().to_string(),
        };
        let response = self
            .http
            .post(self.url.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(unreachable)?;
        read_token_answer(url, status, &body, Utc::now())
    }
}

/// The answer to the browser once the code is in hand.
const SIGNED_IN_PAGE: &str = "<!doctype html><meta charset=utf-8><title>pushback</title>\
    <p>Signed in. You can close this tab and go back to the terminal.</p>";
const FAILED_PAGE: &str = "<!doctype html><meta charset=utf-8><title>pushback</title>\
    <p>The sign-in did not complete. The terminal says why.</p>";

/// The loopback listener of RFC 8252 section 7.3: an ephemeral port on 127.0.0.1, bound before
/// the browser is sent off, so the redirect has somewhere to land.
pub struct RedirectListener {
    listener: tokio::net::TcpListener,
    port: u16,
}

impl RedirectListener {
    pub async fn bind() -> Result<RedirectListener, Error> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|cause| Error::Listen { cause })?;
        let port = listener
            .local_addr()
            .map_err(|cause| Error::Listen { cause })?
            .port();
        Ok(RedirectListener { listener, port })
    }

    pub fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Waits for the redirect with `state` and returns its code; other requests (a favicon)
    /// are answered and ignored.
    pub async fn code(&self, state: &str, timeout: Duration) -> Result<Secret, Error> {
        tokio::time::timeout(timeout, self.next_code(state))
            .await
            .map_err(|_| Error::TimedOut {
                seconds: timeout.as_secs(),
            })?
    }

    async fn next_code(&self, state: &str) -> Result<Secret, Error> {
        loop {
            let Ok((mut stream, _)) = self.listener.accept().await else {
                continue;
            };
            // A browser that opens a connection and says nothing must not hold the login up.
            let head = tokio::time::timeout(Duration::from_secs(10), request_head(&mut stream))
                .await
                .ok()
                .flatten();
            let Some(target) = head.as_deref().and_then(request_target) else {
                continue;
            };
            let outcome = match read_redirect(target) {
                Redirect::Other => {
                    respond(&mut stream, "404 Not Found", "").await;
                    continue;
                }
                Redirect::Refused { error, description } => Err(Error::Denied {
                    error,
                    description: if description.is_empty() {
                        description
                    } else {
                        format!(": {description}")
                    },
                }),
                Redirect::Code { state: got, .. } if got != state => Err(Error::StateMismatch),
                Redirect::Code { code, .. } => Ok(Secret::new(code)),
            };
            let page = if outcome.is_ok() {
                SIGNED_IN_PAGE
            } else {
                FAILED_PAGE
            };
            respond(&mut stream, "200 OK", page).await;
            return outcome;
        }
    }
}

/// The request line and headers, up to 8 KiB; `None` for a connection that says nothing usable.
async fn request_head(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buffer).await.ok()?;
        if n == 0 || head.len() > 8192 {
            return None;
        }
        head.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8(head).ok()
}

/// The target of a `GET <target> HTTP/1.x` request line.
fn request_target(head: &str) -> Option<&str> {
    let mut words = head.lines().next()?.split(' ');
    match (words.next(), words.next()) {
        (Some("GET"), Some(target)) => Some(target),
        _ => None,
    }
}

async fn respond(stream: &mut tokio::net::TcpStream, status: &str, page: &str) {
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nconnection: close\r\n\r\n{page}",
        page.len()
    );
    // The browser going away before reading the page changes nothing for the login.
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Opens `url` in the rep's browser: `$BROWSER` if set, else `xdg-open` when there is a
/// display. False when there is none or it failed, and the caller prints the URL instead.
pub fn open_browser(url: &str) -> bool {
    use std::process::{Command, Stdio};
    let quiet = |command: &mut Command| {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    };
    // $BROWSER is a colon-separated list of commands (the first is tried); a browser may run
    // until it is closed, so it is started and left to run.
    if let Some(browser) = std::env::var("BROWSER")
        .ok()
        .and_then(|b| b.split(':').next().map(str::to_owned))
        .filter(|b| !b.trim().is_empty())
    {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("{browser} \"$1\""))
            .arg("sh")
            .arg(url);
        quiet(&mut command);
        return command.spawn().is_ok();
    }
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    if !has_display {
        return false;
    }
    // xdg-open hands the URL over and exits.
    let mut command = Command::new("xdg-open");
    command.arg(url);
    quiet(&mut command);
    command.status().is_ok_and(|status| status.success())
}

/// The secret service's name for pushback's items (`secret-tool search service pushback`).
const KEYRING_SERVICE: &str = "pushback";

/// Where a refresh token is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenStore {
    /// An item of the desktop's secret service (GNOME Keyring, KWallet), over D-Bus.
    Keyring { user: String },
    /// Mode 0600, in a directory created 0700 when missing.
    File { path: PathBuf },
    /// `$CREDENTIALS_DIRECTORY/<name>`, put there by systemd's `LoadCredential=`: read-only.
    SystemdCredential { name: String },
}

impl TokenStore {
    /// The file name of an account's refresh token in the state directory.
    pub fn file_in(state_dir: &Path, account: &str) -> TokenStore {
        TokenStore::File {
            path: state_dir.join(format!("oauth2-{account}.token")),
        }
    }

    /// The credential name for an account (`LoadCredential=pushback-oauth2-<account>:FILE`).
    pub fn systemd_credential(account: &str) -> TokenStore {
        TokenStore::SystemdCredential {
            name: format!("pushback-oauth2-{account}"),
        }
    }

    /// The secret service item for an account.
    pub fn keyring(account: &str) -> TokenStore {
        TokenStore::Keyring {
            user: format!("oauth2-{account}"),
        }
    }

    /// Whether a secret service answers on the session bus: a bus to ask, and an item lookup
    /// that does not fail (finding nothing is an answer).
    pub fn keyring_reachable() -> bool {
        session_bus_named(&|name| std::env::var_os(name))
            && !matches!(
                TokenStore::keyring("probe").load(),
                Err(Error::Keyring { .. })
            )
    }

    /// For messages: "file /path", "systemd credential NAME" or "secret service item ...".
    pub fn place(&self) -> String {
        match self {
            TokenStore::Keyring { user } => {
                format!("secret service item {KEYRING_SERVICE}/{user} (keyring)")
            }
            TokenStore::File { path } => format!("file {}", path.display()),
            TokenStore::SystemdCredential { name } => format!("systemd credential {name}"),
        }
    }

    /// The stored refresh token; `None` when there is none yet.
    pub fn load(&self) -> Result<Option<Secret>, Error> {
        let path = match self {
            TokenStore::Keyring { user } => {
                return on_keyring_thread(|| {
                    match keyring::Entry::new(KEYRING_SERVICE, user)?.get_password() {
                        Ok(token) => Ok(Some(Secret::new(token))),
                        Err(keyring::Error::NoEntry) => Ok(None),
                        Err(error) => Err(error),
                    }
                })
                .map_err(|cause| self.keyring_error(&cause));
            }
            TokenStore::File { path } => path.clone(),
            TokenStore::SystemdCredential { name } => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                    .filter(|d| !d.is_empty())
                    .ok_or_else(|| Error::NoCredentialsDirectory { name: name.clone() })?;
                PathBuf::from(dir).join(name)
            }
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text.trim()).filter(|t| !t.is_empty()).map(Secret::new)),
            Err(cause) if cause.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(cause) => Err(Error::Read {
                place: self.place(),
                cause,
            }),
        }
    }

    /// Replaces the stored refresh token: written 0600 beside the old one, then renamed over it,
    /// so a crash leaves the old token or the new one, never half of one.
    pub fn save(&self, token: &Secret) -> Result<(), Error> {
        let path = match self {
            TokenStore::File { path } => path,
            TokenStore::SystemdCredential { name } => {
                return Err(Error::ReadOnly { name: name.clone() });
            }
            TokenStore::Keyring { user } => {
                return on_keyring_thread(|| {
                    keyring::Entry::new(KEYRING_SERVICE, user)?.set_password(token.expose())
                })
                .map_err(|cause| self.keyring_error(&cause));
            }
        };
        let write = |cause| Error::Write {
            place: self.place(),
            cause,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(write)?;
        let temporary = path.with_extension("token.new");
        let _ = std::fs::remove_file(&temporary);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .map_err(write)?;
        // The mode above is filtered by the umask; this one is not.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(write)?;
        file.write_all(token.expose().as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(write)?;
        std::fs::rename(&temporary, path).map_err(write)
    }
}

impl TokenStore {
    /// keyring's own text: it never holds the secret.
    fn keyring_error(&self, cause: &keyring::Error) -> Error {
        Error::Keyring {
            place: self.place(),
            cause: cause.to_string(),
        }
    }
}

/// Whether the environment names a D-Bus session bus: `DBUS_SESSION_BUS_ADDRESS`, or the
/// `bus` socket systemd puts in `XDG_RUNTIME_DIR`.
fn session_bus_named(env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    env("DBUS_SESSION_BUS_ADDRESS").is_some_and(|a| !a.is_empty())
        || env("XDG_RUNTIME_DIR")
            .map(|dir| PathBuf::from(dir).join("bus"))
            .is_some_and(|bus| bus.exists())
}

/// keyring's secret service client runs a tokio runtime of its own: called on a thread that is
/// inside one (ours), it would panic or deadlock, so every call gets a thread to itself.
fn on_keyring_thread<T: Send>(call: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(call)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 28, 9, 0, 0).unwrap()
    }

    const URL: &str = "https://oauth2.googleapis.com/token";

    #[test]
    fn a_token_answer_gives_the_tokens_and_the_expiry() {
        let grant = read_token_answer(
            URL,
            200,
            r#"{"access_token":"ya29.a","expires_in":3599,"token_type":"Bearer",
                "refresh_token":"1//r","scope":"https://mail.google.com/"}"#,
            now(),
        )
        .unwrap();
        assert_eq!(grant.access_token.expose(), "ya29.a");
        assert_eq!(grant.refresh_token.unwrap().expose(), "1//r");
        assert_eq!(grant.expires_at - grant.issued_at, TimeDelta::seconds(3599));
        // A refresh answer without a new refresh token, expires_in as a string, no token_type.
        let grant = read_token_answer(URL, 200, r#"{"access_token":"b","expires_in":"60"}"#, now())
            .unwrap();
        assert!(grant.refresh_token.is_none());
        assert_eq!(grant.expires_at, now() + TimeDelta::seconds(60));
        let grant = read_token_answer(URL, 200, r#"{"access_token":"c"}"#, now()).unwrap();
        assert_eq!(grant.expires_at, now() + ASSUMED_LIFETIME);
    }

    #[test]
    fn refusals_are_told_apart_and_never_quote_the_body() {
        let revoked = read_token_answer(
            URL,
            400,
            r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
            now(),
        )
        .unwrap_err();
        assert!(matches!(revoked, Error::InvalidGrant { .. }));
        assert!(!revoked.is_transient());
        assert!(
            revoked
                .to_string()
                .contains("Token has been expired or revoked.")
        );
        let client = read_token_answer(URL, 401, r#"{"error":"invalid_client"}"#, now());
        assert!(matches!(client, Err(Error::Refused { code, .. }) if code == "invalid_client"));
        for status in [500, 503, 429] {
            let error = read_token_answer(URL, status, "<html>busy</html>", now()).unwrap_err();
            assert!(error.is_transient(), "{status}");
        }
        // A malformed success must not echo its body, which may hold a token.
        for body in [
            r#"{"access_token":"ya29.secret","token_type":"mac"}"#,
            r#"{"access_token":"ya29.secret","expires_in":"soon ya29.secret"}"#,
            "ya29.secret",
            r#"{"refresh_token":"1//secret"}"#,
        ] {
            let error = read_token_answer(URL, 200, body, now()).unwrap_err();
            assert!(matches!(error, Error::BadAnswer { .. }), "{body}");
            assert!(!error.to_string().contains("secret"), "{error}");
            assert!(!error.is_transient());
        }
        let grant = read_token_answer(URL, 200, r#"{"access_token":"ya29.s"}"#, now()).unwrap();
        assert!(!format!("{grant:?}").contains("ya29.s"));
    }

    #[test]
    fn the_file_store_writes_0600_in_a_0700_dir_and_replaces_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let store = TokenStore::file_in(&state, "default");
        assert!(store.load().unwrap().is_none());
        store.save(&Secret::new("1//first")).unwrap();
        store.save(&Secret::new("1//second")).unwrap();
        assert_eq!(store.load().unwrap().unwrap().expose(), "1//second");
        let TokenStore::File { path } = &store else {
            unreachable!()
        };
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(path), 0o600);
        assert_eq!(mode(&state), 0o700);
        assert_eq!(
            std::fs::read_dir(&state).unwrap().count(),
            1,
            "no temporary left"
        );
    }

    #[test]
    fn a_systemd_credential_is_read_only() {
        let store = TokenStore::systemd_credential("default");
        assert!(matches!(
            store.save(&Secret::new("x")),
            Err(Error::ReadOnly { name }) if name == "pushback-oauth2-default"
        ));
    }

    #[test]
    fn a_session_bus_is_named_by_its_address_or_the_runtime_dirs_socket() {
        let dir = tempfile::tempdir().unwrap();
        let runtime_dir = dir.path().as_os_str().to_owned();
        let with = |address: Option<&'static str>| {
            let runtime_dir = runtime_dir.clone();
            move |name: &str| match name {
                "DBUS_SESSION_BUS_ADDRESS" => address.map(Into::into),
                "XDG_RUNTIME_DIR" => Some(runtime_dir.clone()),
                _ => None,
            }
        };
        assert!(!session_bus_named(&with(None)));
        assert!(!session_bus_named(&with(Some(""))));
        assert!(session_bus_named(&with(Some(
            "unix:path=/run/user/1000/bus"
        ))));
        std::fs::write(dir.path().join("bus"), "").unwrap();
        assert!(session_bus_named(&with(None)));
    }

    /// Regression guard: keyring's secret service client starts a runtime of its own, which
    /// panics when called from inside ours (every caller in the service is).
    #[tokio::test]
    async fn the_keyring_store_answers_from_inside_a_runtime() {
        let store = TokenStore::keyring(&format!("test-{:016x}", fastrand::u64(..)));
        // No secret service here (CI): an error naming the item; a desktop: nothing stored yet.
        match store.load() {
            Ok(found) => assert!(found.is_none()),
            Err(error) => assert!(
                error
                    .to_string()
                    .contains("secret service item pushback/oauth2-test-"),
                "{error}"
            ),
        }
    }

    #[tokio::test]
    async fn the_listener_answers_the_browser_and_checks_the_state() {
        async fn get(port: u16, target: &str) -> String {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            stream
                .write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            answer
        }
        let listener = RedirectListener::bind().await.unwrap();
        let port = listener.port;
        assert_eq!(listener.redirect_uri(), format!("http://127.0.0.1:{port}/"));
        let browser = tokio::spawn(async move {
            let favicon = get(port, "/favicon.ico").await;
            let signed_in = get(port, "/?code=c0de&state=s1").await;
            (favicon, signed_in)
        });
        let code = listener.code("s1", Duration::from_secs(10)).await.unwrap();
        assert_eq!(code.expose(), "c0de");
        let (favicon, signed_in) = browser.await.unwrap();
        assert!(favicon.starts_with("HTTP/1.1 404"), "{favicon}");
        assert!(signed_in.contains("Signed in."), "{signed_in}");

        let forged = tokio::spawn(async move { get(port, "/?code=c0de&state=other").await });
        let error = listener.code("s1", Duration::from_secs(10)).await;
        assert!(matches!(error, Err(Error::StateMismatch)));
        assert!(forged.await.unwrap().contains("did not complete"));

        let error = listener.code("s1", Duration::from_millis(50)).await;
        assert!(matches!(error, Err(Error::TimedOut { .. })));
    }
}

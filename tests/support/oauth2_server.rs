//! A small OAuth2 authorization server on loopback for the OAuth2 tests, on std::net with one
//! thread: `/authorize` approves at once and redirects to the client's loopback `redirect_uri`
//! with a code and the state; `/token` takes the `authorization_code` grant (checking the PKCE
//! S256 verifier, the client id and the redirect URI) and the `refresh_token` grant; `/introspect`
//! answers Dovecot's oauth2 passdb (and the SMTP sink) as RFC 7662 does: `{"active": true,
//! "username": ...}` for a live access token. Access tokens live as long as the test says;
//! refresh tokens can be rotated on every refresh, or all revoked at once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const CLIENT_ID: &str = "pushback-test-client";

#[derive(Default)]
struct State {
    /// code -> (PKCE challenge, redirect URI)
    codes: HashMap<String, (String, String)>,
    /// access token -> when it stops being accepted
    access: HashMap<String, Instant>,
    /// refresh tokens currently valid
    refresh: Vec<String>,
    access_lifetime: Duration,
    rotate: bool,
    refresh_grants: usize,
    refused_refreshes: usize,
    code_grants: usize,
    issued: u64,
}

pub struct AuthServer {
    port: u16,
    user: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AuthServer {
    /// Serves on a free loopback port; tokens it issues log in as `user`.
    pub fn start(user: &str, access_lifetime: Duration) -> AuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind the auth server");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            access_lifetime,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (state, stop, user) = (state.clone(), stop.clone(), user.to_string());
            move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(stream) = stream {
                        serve(stream, &state, &user);
                    }
                }
            }
        });
        AuthServer {
            port,
            user: user.to_string(),
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Every later refresh answers with a new refresh token and retires the one it was given.
    pub fn rotate_refresh_tokens(&self, rotate: bool) {
        self.state.lock().unwrap().rotate = rotate;
    }

    /// The rep (or an admin) revoked the app: every refresh token is refused from now on.
    pub fn revoke_refresh_tokens(&self) {
        self.state.lock().unwrap().refresh.clear();
    }

    pub fn refresh_grants(&self) -> usize {
        self.state.lock().unwrap().refresh_grants
    }

    /// Refresh grants answered `invalid_grant`.
    pub fn refused_refreshes(&self) -> usize {
        self.state.lock().unwrap().refused_refreshes
    }

    pub fn code_grants(&self) -> usize {
        self.state.lock().unwrap().code_grants
    }

    pub fn is_valid_refresh_token(&self, token: &str) -> bool {
        self.state
            .lock()
            .unwrap()
            .refresh
            .iter()
            .any(|t| t == token)
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request, one answer, then the connection is closed.
fn serve(stream: TcpStream, state: &Mutex<State>, user: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let Some((method, target, body)) = read_request(&stream) else {
        return;
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let answer = match (method.as_str(), path) {
        ("GET", "/authorize") => authorize(&form(query), state),
        ("POST", "/token") => token(&form(&body), state),
        ("POST", "/introspect") => introspect(&form(&body), state, user),
        _ => reply("404 Not Found", "application/json", "{}", &[]),
    };
    let mut stream = stream;
    let _ = stream.write_all(answer.as_bytes());
}

fn read_request(stream: &TcpStream) -> Option<(String, String, String)> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let (method, target) = (words.next()?.to_string(), words.next()?.to_string());
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((method, target, String::from_utf8(body).ok()?))
}

fn form(text: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

fn reply(status: &str, kind: &str, body: &str, headers: &[(&str, &str)]) -> String {
    let mut head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head + "\r\n" + body
}

fn json(status: &str, value: serde_json::Value) -> String {
    reply(status, "application/json", &value.to_string(), &[])
}

fn oauth_error(error: &str, description: &str) -> String {
    json(
        "400 Bad Request",
        serde_json::json!({"error": error, "error_description": description}),
    )
}

fn new_token(state: &mut State, kind: &str) -> String {
    state.issued += 1;
    format!("{kind}-{}-{:016x}", state.issued, fastrand::u64(..))
}

fn authorize(params: &HashMap<String, String>, state: &Mutex<State>) -> String {
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if get("response_type") != "code" || get("client_id") != CLIENT_ID {
        return oauth_error("unauthorized_client", "unknown client or response type");
    }
    if get("code_challenge_method") != "S256" || get("code_challenge").is_empty() {
        return oauth_error("invalid_request", "PKCE with S256 is required");
    }
    let redirect = get("redirect_uri");
    if !redirect.starts_with("http://127.0.0.1:") {
        return oauth_error("invalid_request", "only loopback redirects");
    }
    let mut state = state.lock().unwrap();
    let code = new_token(&mut state, "code");
    state.codes.insert(
        code.clone(),
        (get("code_challenge").to_string(), redirect.to_string()),
    );
    let mut location = url::Url::parse(redirect).unwrap();
    location
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", get("state"));
    reply(
        "302 Found",
        "text/plain",
        "",
        &[("location", location.as_str())],
    )
}

fn token(params: &HashMap<String, String>, state: &Mutex<State>) -> String {
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if get("client_id") != CLIENT_ID {
        return json(
            "401 Unauthorized",
            serde_json::json!({"error": "invalid_client"}),
        );
    }
    let mut state = state.lock().unwrap();
    let new_refresh = match get("grant_type") {
        "authorization_code" => {
            let Some((challenge, redirect)) = state.codes.remove(get("code")) else {
                return oauth_error("invalid_grant", "unknown or used code");
            };
            let digest =
                ring::digest::digest(&ring::digest::SHA256, get("code_verifier").as_bytes());
            if URL_SAFE_NO_PAD.encode(digest.as_ref()) != challenge {
                return oauth_error("invalid_grant", "PKCE verification failed");
            }
            if redirect != get("redirect_uri") {
                return oauth_error("invalid_grant", "redirect_uri differs");
            }
            state.code_grants += 1;
            let refresh = new_token(&mut state, "refresh");
            state.refresh.push(refresh.clone());
            Some(refresh)
        }
        "refresh_token" => {
            let given = get("refresh_token");
            let Some(at) = state.refresh.iter().position(|t| t == given) else {
                state.refused_refreshes += 1;
                return oauth_error("invalid_grant", "Token has been expired or revoked.");
            };
            state.refresh_grants += 1;
            if state.rotate {
                state.refresh.remove(at);
                let refresh = new_token(&mut state, "refresh");
                state.refresh.push(refresh.clone());
                Some(refresh)
            } else {
                None
            }
        }
        _ => return oauth_error("unsupported_grant_type", "no such grant"),
    };
    let access = new_token(&mut state, "access");
    let lifetime = state.access_lifetime;
    state
        .access
        .insert(access.clone(), Instant::now() + lifetime);
    let mut answer = serde_json::json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "scope": "mail",
    });
    if let Some(refresh) = new_refresh {
        answer["refresh_token"] = refresh.into();
    }
    json("200 OK", answer)
}

fn introspect(params: &HashMap<String, String>, state: &Mutex<State>, user: &str) -> String {
    let state = state.lock().unwrap();
    let live = params
        .get("token")
        .and_then(|t| state.access.get(t))
        .is_some_and(|until| Instant::now() < *until);
    let answer = if live {
        serde_json::json!({"active": true, "username": user})
    } else {
        serde_json::json!({"active": false})
    };
    json("200 OK", answer)
}

/// GETs `url` (plain http on loopback) and returns the status code, the `location` header and
/// the body: the test plays the browser.
pub fn browser_get(url: &str) -> (u16, Option<String>, String) {
    let url = url::Url::parse(url).unwrap();
    let mut stream = TcpStream::connect((url.host_str().unwrap(), url.port().unwrap())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let target = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        url.host_str().unwrap()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = head.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(name, _)| name.eq_ignore_ascii_case("location"))
            .map(|(_, value)| value.trim().to_string())
    });
    (status, location, body.to_string())
}

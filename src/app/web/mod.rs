//! The local approval page (`[web] listen`): pending drafts beside the mail they answer, why the
//! mail was flagged and what was read off it, the draft to edit, approve (which sends it through
//! the outbox, exactly once, as `drafts approve` does), reject or snooze; upcoming reminders, sent
//! replies, and a team lead's view of the templates and the classifier. Server-rendered HTML with
//! one stylesheet of its own and no script; nothing is loaded from elsewhere.
//!
//! This module owns the HTTP side: binding (loopback, or TLS beyond it), the security headers and
//! routing. Who may come in is `auth`'s; what each page shows and what each form does is `pages`',
//! which calls the same `approval`, `reminders` and `send` functions the command line does.

mod auth;
mod original;
mod pages;

use crate::adapters::secret::Secret;
use crate::adapters::store::Store;
use crate::config::{Config, WebSettings, WebTls};
use anyhow::{Context, Result, bail};
use auth::{Admission, Gate};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Scripts only from the page itself (there are none), no plugins, no framing, forms only back
/// to the page: a mail that slipped something past the sanitiser still cannot run or load it.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; \
     object-src 'none'";
/// `no-referrer` would make browsers send `Origin: null` with the page's own forms, which the
/// origin check must refuse; `same-origin` still tells no other site where the rep came from.
const REFERRER_POLICY: &str = "same-origin";
/// A TLS client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const STYLESHEET: &str = include_str!("static/pushback.css");

/// Serves the approval page on `[web] listen` until `shutdown` turns true. Without a `[web]`
/// section there is nothing to serve and it returns at once.
pub async fn serve(config: Config, shutdown: watch::Receiver<bool>) -> Result<()> {
    serve_accounts(vec![config], shutdown).await
}

/// [`serve`] for several accounts: the page lists every account's drafts. The accounts share
/// `[web]` and the state directory, so the first one's say where it listens.
pub async fn serve_accounts(
    accounts: Vec<Config>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let Some(settings) = accounts.first().and_then(|config| config.web.clone()) else {
        return Ok(());
    };
    let listener = TcpListener::bind(settings.listen).await.with_context(|| {
        format!(
            "cannot listen on {} for the approval page (is another pushback running?)",
            settings.listen
        )
    })?;
    let app = router(Web::for_accounts(accounts, &settings)?);
    let stop = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    tracing::info!(
        listen = %settings.listen,
        "approval page up; `pushback web-url` prints its address"
    );
    match &settings.tls {
        None => axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
            .context("the approval page stopped")?,
        Some(tls) => axum::serve(TlsListener::new(listener, acceptor(tls)?), app)
            .with_graceful_shutdown(stop)
            .await
            .context("the approval page stopped")?,
    }
    Ok(())
}

/// `pushback web`: the approval page alone, without the mailbox watcher or the outbox task (an
/// approval still sends at once), until SIGTERM or SIGINT.
pub async fn run_alone(accounts: Vec<Config>) -> Result<()> {
    let Some(first) = accounts.first() else {
        bail!("cannot serve the approval page without an account");
    };
    // Says how to turn the page on when `[web]` is missing.
    url(first)?;
    let (stop, stopped) = watch::channel(false);
    let mut server = tokio::spawn(serve_accounts(accounts, stopped));
    tokio::select! {
        signal = crate::app::daemon::shutdown_signal() => signal?,
        // The server only returns on its own when it cannot start (the port is taken).
        served = &mut server => return served.context("the approval page failed")?,
    }
    let _ = stop.send(true);
    server.await.context("the approval page failed")?
}

/// `pushback web-url`: the page's address with the install's token, created on first use.
pub fn url(config: &Config) -> Result<String> {
    let Some(web) = &config.web else {
        let file = config
            .file
            .as_ref()
            .map_or("your config file".to_string(), |f| f.display().to_string());
        bail!(
            "the approval page is off: add `[web]` with `listen = \"{}\"` to {file}, then \
             restart `pushback run`",
            crate::config::DEFAULT_WEB_LISTEN
        );
    };
    let token = auth::load_or_create_token(&config.state_dir)?;
    Ok(auth::page_url(web.listen, web.tls.is_some(), &token))
}

/// What every handler shares: the config of each account the page was started with and the
/// gate's sessions.
#[derive(Clone)]
struct Web(Arc<Shared>);

struct Shared {
    /// Never empty; the first account's config also holds the shared settings.
    accounts: Vec<Config>,
    gate: Gate,
}

impl Web {
    #[cfg(test)]
    fn new(config: Config, settings: &WebSettings) -> Result<Web> {
        Web::for_accounts(vec![config], settings)
    }

    fn for_accounts(accounts: Vec<Config>, settings: &WebSettings) -> Result<Web> {
        let Some(first) = accounts.first() else {
            bail!("cannot serve the approval page without an account");
        };
        let token: Secret = auth::load_or_create_token(&first.state_dir)?;
        let gate = Gate::new(token, settings.listen, settings.tls.is_some());
        Ok(Web(Arc::new(Shared { accounts, gate })))
    }

    /// The first account's config: the shared settings, and the pages that show one account.
    fn config(&self) -> &Config {
        &self.0.accounts[0]
    }

    fn accounts(&self) -> &[Config] {
        &self.0.accounts
    }

    /// The account draft `id` belongs to (draft ids are unique across the accounts); the first
    /// when none has it, whose store then says there is no such draft.
    fn account_of(&self, id: i64) -> &Config {
        self.owner(|store| Ok(store.draft(id)?.is_some()))
    }

    /// [`Web::account_of`] for reminder `id`.
    fn reminder_account_of(&self, id: i64) -> &Config {
        self.owner(|store| Ok(store.reminder(id)?.is_some()))
    }

    fn owner(&self, holds: impl Fn(&Store) -> Result<bool>) -> &Config {
        crate::app::account_holding(self.accounts(), holds)
            .ok()
            .flatten()
            .unwrap_or(self.config())
    }

    fn sessions(&self) -> &auth::Sessions {
        &self.0.gate.sessions
    }
}

fn router(web: Web) -> Router {
    let pages = Router::new()
        .route("/", get(pages::drafts))
        .route("/drafts/{id}", get(pages::draft))
        .route("/drafts/{id}/edit", post(pages::edit))
        .route("/drafts/{id}/approve", post(pages::approve))
        .route("/drafts/{id}/reject", post(pages::reject))
        .route("/drafts/{id}/snooze", post(pages::snooze_thread))
        .route("/reminders", get(pages::reminders))
        .route("/reminders/{id}/done", post(pages::reminder_done))
        .route("/reminders/{id}/snooze", post(pages::reminder_snooze))
        .route("/sent", get(pages::sent))
        .route("/lead", get(pages::lead))
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(web.clone(), guard));
    Router::new()
        .route("/static/pushback.css", get(stylesheet))
        .merge(pages)
        .layer(middleware::map_response(security_headers))
        .with_state(web)
}

/// Lets a request through to its page only with a session (and, for a POST, its CSRF token).
async fn guard(State(web): State<Web>, request: Request, next: Next) -> Response {
    match web.0.gate.admit(request).await {
        Ok(Admission::Pass(session, mut request)) => {
            request.extensions_mut().insert(session);
            next.run(*request).await
        }
        Ok(Admission::Welcome { cookie, location }) => {
            // Only one of our own paths: `//host` would send the browser to another site.
            let ours = !location.starts_with("//")
                && location
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/-_.".contains(c));
            let location = if ours { location } else { "/".to_string() };
            (
                StatusCode::SEE_OTHER,
                [(header::SET_COOKIE, cookie)],
                [(header::LOCATION, location)],
            )
                .into_response()
        }
        Ok(Admission::Refuse(refusal)) => {
            pages::message_page(refusal.status(), "Not allowed", refusal.explain())
        }
        Err(error) => pages::PageError::Failed(error).into_response(),
    }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, REFERRER_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Pages hold customers' mail: not for the browser's disk cache.
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The certificate and key from `[web]`, for rustls on the ring provider.
fn acceptor(tls: &WebTls) -> Result<TlsAcceptor> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let cert_pem = read(&tls.cert)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("cannot parse {}", tls.cert.display()))?;
    let key_pem = read(&tls.key)?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .ok()
        .flatten()
        .with_context(|| format!("{} holds no PEM private key", tls.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "cannot serve with {} and {}",
                tls.cert.display(),
                tls.key.display()
            )
        })?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Accepts TCP connections and hands on those that complete a TLS handshake; handshakes run side
/// by side, so a client that stalls in one holds up nobody else.
struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<Option<(TlsStream<TcpStream>, SocketAddr)>>,
}

impl TlsListener {
    fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> TlsListener {
        TlsListener {
            tcp,
            acceptor,
            handshakes: JoinSet::new(),
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            tokio::select! {
                accepted = self.tcp.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let acceptor = self.acceptor.clone();
                        self.handshakes.spawn(async move {
                            let handshake = acceptor.accept(stream);
                            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                                Ok(Ok(tls)) => Some((tls, peer)),
                                Ok(Err(error)) => {
                                    tracing::debug!(%peer, "approval page: TLS handshake failed: {error}");
                                    None
                                }
                                Err(_) => None,
                            }
                        });
                    }
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    Err(error) => {
                        tracing::warn!("approval page: cannot accept a connection: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(done) = self.handshakes.join_next() => {
                    if let Ok(Some(connection)) = done {
                        return connection;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

#[cfg(test)]
mod tests;

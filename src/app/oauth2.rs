//! pushback's own OAuth2 login: `pushback login` (the authorization code flow with PKCE and a
//! loopback redirect; the refresh token goes to the token store), and the access tokens every
//! IMAP and SMTP login of the process takes from here. An access token is kept in memory with
//! its expiry and refreshed shortly before it runs out; a rotated refresh token is stored. A
//! refused refresh token (`invalid_grant`) is remembered, so the endpoint is not asked again
//! with it: every login of that account fails at once with [`LoginNeeded`] until the rep runs
//! `pushback login` again, while other accounts and the rest of the service go on.

use crate::adapters::oauth2::{self as wire, Grant, RedirectListener, TokenEndpoint, TokenStore};
use crate::adapters::secret::{self, Secret};
use crate::config::{Config, OAuth2Settings, PasswordSource, TokenStoreKind};
use crate::core::oauth2::{self as flow, AuthorizationRequest};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

/// How long `pushback login` waits for the browser to come back.
pub const LOGIN_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Tries of a refresh against a token endpoint that is down, the wait doubling from
/// [`REFRESH_RETRY_WAIT`] between them.
const REFRESH_TRIES: u32 = 3;
const REFRESH_RETRY_WAIT: Duration = Duration::from_secs(1);

/// The account needs `pushback login` again: its refresh token is missing, or the provider
/// refused it. Permanent for this account; not a reason to stop the process.
#[derive(Debug, thiserror::Error)]
#[error("{why}; run `pushback login {account}` again")]
pub struct LoginNeeded {
    pub account: String,
    why: String,
}

/// Whether `error` (anywhere in its chain) is a [`LoginNeeded`]: retrying soon will not help.
pub fn needs_login(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| cause.is::<LoginNeeded>())
}

/// Where the account's refresh token is kept: "auto" is the desktop's secret service when one
/// answers now, else the file in the state directory.
pub fn token_store(settings: &OAuth2Settings) -> TokenStore {
    let file = || TokenStore::file_in(&settings.state_dir, &settings.account);
    match settings.token_store {
        TokenStoreKind::Auto if TokenStore::keyring_reachable() => {
            TokenStore::keyring(&settings.account)
        }
        TokenStoreKind::Auto | TokenStoreKind::File => file(),
        TokenStoreKind::Keyring => TokenStore::keyring(&settings.account),
        TokenStoreKind::SystemdCredential => TokenStore::systemd_credential(&settings.account),
    }
}

/// What this process knows of one account's tokens.
#[derive(Default)]
struct Held {
    access: Option<Grant>,
    /// A rotated refresh token the store could not take (a read-only systemd credential).
    unstored_refresh: Option<Secret>,
    /// The refresh token the provider refused: not sent again.
    refused: Option<Secret>,
}

/// Per account and token endpoint ([`held_key`]), for the whole process: the watcher, the sender and the reminders share one
/// access token, and one refresh at a time (a provider that rotates refresh tokens would
/// invalidate the second of two concurrent refreshes).
static HELD: Mutex<Option<HashMap<String, Held>>> = Mutex::new(None);

/// A valid access token for the account: the one in memory, or a new one from the token
/// endpoint when it is due for a refresh. Blocks the calling thread for the exchange, as a
/// password command does (the exchange runs on a thread of its own).
pub fn access_token(settings: &OAuth2Settings) -> Result<Secret> {
    let mut held = HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let held = held
        .get_or_insert_with(HashMap::new)
        .entry(held_key(settings))
        .or_default();
    if let Some(grant) = &held.access
        && !flow::refresh_due(grant.issued_at, grant.expires_at, Utc::now())
    {
        return Ok(grant.access_token.clone());
    }
    let store = token_store(settings);
    let refresh_token = match held.unstored_refresh.clone() {
        Some(token) => token,
        None => store.load()?.ok_or_else(|| LoginNeeded {
            account: settings.account.clone(),
            why: format!("no OAuth2 refresh token in the {}", store.place()),
        })?,
    };
    if held.refused.as_ref() == Some(&refresh_token) {
        return Err(refused(settings).into());
    }
    let endpoint = token_endpoint(settings)?;
    let grant = match on_own_thread(refresh_with_retries(
        &endpoint,
        &refresh_token,
        REFRESH_RETRY_WAIT,
    ))? {
        Ok(grant) => grant,
        Err(wire::Error::InvalidGrant { description, .. }) => {
            tracing::warn!(
                account = %settings.account,
                "the OAuth2 refresh token was refused (invalid_grant{description})"
            );
            held.access = None;
            held.unstored_refresh = None;
            held.refused = Some(refresh_token);
            return Err(refused(settings).into());
        }
        Err(error) => {
            return Err(anyhow::Error::from(error).context(format!(
                "cannot refresh the OAuth2 access token of account {}",
                settings.account
            )));
        }
    };
    if let Some(rotated) = &grant.refresh_token
        && rotated != &refresh_token
    {
        match store.save(rotated) {
            Ok(()) => held.unstored_refresh = None,
            Err(error) => {
                tracing::warn!(
                    account = %settings.account,
                    "the provider rotated the refresh token; kept in memory only: {error}"
                );
                held.unstored_refresh = Some(rotated.clone());
            }
        }
    }
    tracing::info!(
        account = %settings.account,
        expires = %grant.expires_at.format("%H:%M:%S UTC"),
        "refreshed the OAuth2 access token"
    );
    let token = grant.access_token.clone();
    held.access = Some(grant);
    Ok(token)
}

/// When the access token this process holds for the account expires, if it holds one.
pub fn held_until(settings: &OAuth2Settings) -> Option<DateTime<Utc>> {
    let held = HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let grant = held.as_ref()?.get(&held_key(settings))?.access.as_ref()?;
    Some(grant.expires_at)
}

/// The account and its provider: a config reloaded with another provider starts afresh.
fn held_key(settings: &OAuth2Settings) -> String {
    format!("{} {}", settings.account, settings.token_url)
}

fn refused(settings: &OAuth2Settings) -> LoginNeeded {
    LoginNeeded {
        account: settings.account.clone(),
        why: format!(
            "the provider refused the OAuth2 refresh token of account {} (it was revoked or \
             has expired)",
            settings.account
        ),
    }
}

/// A refresh that tries again, after `wait` and twice that, while the endpoint is unreachable or
/// answers 5xx; the callers' own reconnection backoff takes it from there.
async fn refresh_with_retries(
    endpoint: &TokenEndpoint,
    refresh_token: &Secret,
    mut wait: Duration,
) -> Result<Grant, wire::Error> {
    let mut tries = 1;
    loop {
        match endpoint.refresh(refresh_token).await {
            Err(error) if error.is_transient() && tries < REFRESH_TRIES => {
                tracing::debug!("token endpoint unavailable, trying again: {error}");
                tokio::time::sleep(wait).await;
                wait *= 2;
                tries += 1;
            }
            outcome => return outcome,
        }
    }
}

fn token_endpoint(settings: &OAuth2Settings) -> Result<TokenEndpoint> {
    let client_secret = match &settings.client_secret {
        None => None,
        Some(PasswordSource::Command(command)) => Some(secret::from_command(command)),
        Some(PasswordSource::Env(name)) => Some(secret::from_env(name)),
    }
    .transpose()
    .context("cannot get the OAuth2 client secret")?;
    Ok(TokenEndpoint::new(
        settings.token_url.clone(),
        &settings.client_id,
        client_secret,
    )?)
}

/// Runs `future` to completion on a new thread with a runtime of its own, so that a
/// synchronous caller may be inside another runtime or not.
fn on_own_thread<F>(future: F) -> Result<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| crate::app::block_on(future))
            .join()
            .map_err(|_| anyhow::anyhow!("the token exchange panicked"))?
    })
}

/// `pushback login [ACCOUNT]` for `config`: the sign-in, with the URL and progress on stdout.
pub fn login_command(config: &Config, open_browser: bool) -> Result<String> {
    let settings = config.oauth2.as_ref().with_context(|| {
        format!(
            "cannot log in: account {} in {} has no [oauth2] table ([account.oauth2] in a \
             version 2 file; see config/pushback.example.toml)",
            config.account,
            config
                .file
                .as_deref()
                .map_or("the config".into(), |f| f.display().to_string())
        )
    })?;
    let mut stdout = std::io::stdout();
    let place = crate::app::block_on(login(settings, open_browser, LOGIN_TIMEOUT, &mut stdout))??;
    Ok(format!(
        "Signed in: account {} can log in to its mail now (refresh token in the {place}).\n",
        settings.account
    ))
}

/// `pushback login`: sends the rep's browser to the provider (or prints the URL when
/// `open_browser` is false or no browser opens), waits for the redirect to the loopback
/// listener, trades the code for tokens and stores the refresh token. Returns where it went.
pub async fn login(
    settings: &OAuth2Settings,
    open_browser: bool,
    timeout: Duration,
    out: &mut (dyn Write + Send),
) -> Result<String> {
    let store = token_store(settings);
    if let TokenStore::SystemdCredential { name } = &store {
        anyhow::bail!(
            "cannot log in into the {}: systemd credentials are read-only. Log in with \
             token-store = \"file\", then point LoadCredential={name}:FILE at the token file \
             it writes",
            store.place(),
        );
    }
    let verifier = Secret::new(flow::pkce_verifier(&random_bytes()?));
    let state = flow::pkce_verifier(&random_bytes()?);
    let listener = RedirectListener::bind().await?;
    let redirect_uri = listener.redirect_uri();
    let url = flow::authorization_url(&AuthorizationRequest {
        endpoint: &settings.authorize_url,
        client_id: &settings.client_id,
        redirect_uri: &redirect_uri,
        scopes: &settings.scopes,
        state: &state,
        code_challenge: &flow::pkce_challenge(verifier.expose()),
        extra: &settings.extra_params,
    });
    if open_browser && wire::open_browser(url.as_str()) {
        writeln!(
            out,
            "Sign in to account {} in the browser window that opened.\nIf none did, open this \
             URL:\n\n{url}\n",
            settings.account
        )?;
    } else {
        writeln!(
            out,
            "Open this URL in a browser on this machine to sign in to account {}:\n\n{url}\n",
            settings.account
        )?;
    }
    writeln!(
        out,
        "Waiting for the sign-in (up to {} minutes) ...",
        timeout.as_secs() / 60
    )?;
    out.flush()?;
    let code = listener.code(&state, timeout).await?;
    let grant = token_endpoint(settings)?
        .exchange_code(&code, &verifier, &redirect_uri)
        .await
        .context("cannot trade the sign-in for tokens")?;
    let refresh_token = grant.refresh_token.ok_or_else(|| {
        anyhow::anyhow!(
            "the provider sent no refresh token, so pushback could only work for an hour; check \
             that the app may have offline access (Microsoft: the offline_access scope)"
        )
    })?;
    store.save(&refresh_token)?;
    Ok(store.place())
}

fn random_bytes() -> Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("cannot get random bytes: {e}"))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read};
    use std::net::TcpListener;

    /// A token endpoint that gives the `answers` in turn, one per connection, and counts them.
    fn endpoint_answering(
        answers: Vec<(u16, &'static str)>,
    ) -> (TokenEndpoint, std::thread::JoinHandle<usize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let mut served = 0;
            for (status, body) in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut form = vec![0; length];
                reader.read_exact(&mut form).unwrap();
                let answer = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
                std::io::Write::write_all(reader.get_mut(), answer.as_bytes()).unwrap();
                served += 1;
            }
            served
        });
        let endpoint = TokenEndpoint::new(url.parse().unwrap(), "client", None).unwrap();
        (endpoint, server)
    }

    #[tokio::test]
    async fn a_refresh_tries_again_while_the_endpoint_is_down_but_not_when_it_refuses() {
        let (endpoint, server) = endpoint_answering(vec![
            (503, "busy"),
            (502, "busy"),
            (200, r#"{"access_token":"fresh","expires_in":60}"#),
        ]);
        let grant = refresh_with_retries(&endpoint, &Secret::new("r"), Duration::from_millis(1))
            .await
            .unwrap();
        assert_eq!(grant.access_token.expose(), "fresh");
        assert_eq!(server.join().unwrap(), 3);

        let (endpoint, server) = endpoint_answering(vec![(
            400,
            r#"{"error":"invalid_grant","error_description":"revoked"}"#,
        )]);
        let refused =
            refresh_with_retries(&endpoint, &Secret::new("r"), Duration::from_millis(1)).await;
        assert!(matches!(refused, Err(wire::Error::InvalidGrant { .. })));
        assert_eq!(server.join().unwrap(), 1, "a refusal is not tried again");

        let (endpoint, server) = endpoint_answering(vec![(503, ""), (503, ""), (503, "")]);
        let down =
            refresh_with_retries(&endpoint, &Secret::new("r"), Duration::from_millis(1)).await;
        assert!(matches!(down, Err(error) if error.is_transient()));
        assert_eq!(server.join().unwrap(), REFRESH_TRIES as usize);
    }
}

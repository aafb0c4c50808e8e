//! pushback's own OAuth2 login end to end: `pushback login --no-browser` against the harness's
//! authorization server (the test plays the browser), then IMAP logins to Dovecot and SMTP sends
//! to the sink, both of which ask that server whether each bearer token is live (Dovecot's
//! oauth2 passdb, RFC 7662 introspection). Access tokens live four seconds here, so the tests see
//! them expire, get refreshed (with rotated refresh tokens stored) and finally refused when the
//! refresh token is revoked: the rep is told to run `pushback login` again, and the daemon keeps
//! running until they do. On a desktop the refresh token goes to the secret service: GNOME
//! Keyring on a private session bus.

mod support;

use pushback::adapters::imap::Session;
use pushback::adapters::smtp::Envelope;
use pushback::app::oauth2::needs_login;
use pushback::config::{Config, MailboxAccess};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::MailServers;
use support::oauth2_server::{AuthServer, CLIENT_ID, browser_get};
use support::pushback::{
    IDENTITY, pushback_cli, pushback_output, rfp, spawn_daemon, stop, wait_for, wait_logged,
};
use support::secret_service::SecretService;

const LIFETIME: Duration = Duration::from_secs(4);
const RELOGIN: &str = "run `pushback login default` again";

fn write_config(servers: &MailServers, auth: &AuthServer, dir: &Path, extra: &str) -> PathBuf {
    let text = format!(
        "{IDENTITY}\n{}{}",
        state_table(dir),
        mail_tables(servers, auth, "", extra)
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn state_table(dir: &Path) -> String {
    format!("[state]\npath = \"{}\"\n", dir.join("state").display())
}

/// One account's `[mailbox]`, `[smtp]` and `[oauth2]` on the harness's servers, the table names
/// after `prefix` ("account." inside an `[[account]]`); `extra` goes into the mailbox table.
fn mail_tables(servers: &MailServers, auth: &AuthServer, prefix: &str, extra: &str) -> String {
    let (user, _) = servers.user();
    format!(
        r#"
[{prefix}mailbox]
kind = "imap"
host = "{host}"
port = {imaps}
ca-file = "{ca}"
user = "{user}"
{extra}
[{prefix}smtp]
host = "{host}"
port = {smtps}
ca-file = "{ca}"
user = "{user}"

[{prefix}oauth2]
provider = "custom"
client-id = "{CLIENT_ID}"
authorize-url = "{authorize}"
token-url = "{token}"
scopes = ["mail"]
token-store = "file"
"#,
        host = servers.host(),
        imaps = servers.imaps_port(),
        smtps = servers.smtps_port(),
        ca = servers.ca_file().display(),
        authorize = auth.url("/authorize"),
        token = auth.url("/token"),
    )
}

/// `pushback login --no-browser`, with the test opening the printed URL as the rep's browser
/// would: the server redirects to pushback's loopback listener with the code.
fn sign_in(config: &Path, auth: &AuthServer) {
    sign_in_as(config, auth, "default", &["login", "--no-browser"], &[]);
}

/// [`sign_in`] with the `pushback` arguments given, for the account they name, with `env` added
/// to its environment; returns what it said after the sign-in.
fn sign_in_as(
    config: &Path,
    auth: &AuthServer,
    account: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pushback"))
        .args(args)
        .env("PUSHBACK_CONFIG", config)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .envs(env.iter().copied())
        .env_remove("BROWSER")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map(Result::unwrap)
        .find(|line| line.starts_with(&auth.url("/authorize?")))
        .expect("pushback login printed no authorization URL");
    let (status, location, _) = browser_get(&url);
    assert_eq!(status, 302, "the authorization server did not redirect");
    let location = location.unwrap();
    assert!(location.starts_with("http://127.0.0.1:"), "{location}");
    let (status, _, page) = browser_get(&location);
    assert_eq!(status, 200);
    assert!(page.contains("Signed in"), "{page}");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "pushback login failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        rest.iter()
            .any(|l| l.starts_with(&format!("Signed in: account {account} "))),
        "{rest:?}"
    );
    rest
}

fn stored_refresh_token(dir: &Path) -> String {
    let file = dir.join("state/oauth2-default.token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the token file is readable by others");
    std::fs::read_to_string(file).unwrap().trim().to_string()
}

/// One IMAP login with the credentials of this moment.
async fn imap_login(config: &Config) -> anyhow::Result<()> {
    let MailboxAccess::Imap(server) = &config.mailbox.access else {
        unreachable!()
    };
    let settings = pushback::app::imap_settings(server, Duration::from_secs(20))?;
    Session::connect(&settings).await?.logout().await?;
    Ok(())
}

/// One message through the SMTP transport built now, as each delivery round builds it.
async fn send_one(config: &Config, n: u32) -> anyhow::Result<()> {
    let raw = format!(
        "From: alice@northwind.example\r\nTo: dana@purchasing.example.gov\r\n\
         Subject: note {n}\r\nMessage-ID: <oauth2-{n}@northwind.example>\r\n\r\nHello.\r\n"
    );
    let transport = pushback::app::send::transport(config)?.expect("[smtp] is configured");
    let envelope = Envelope::of_message(raw.as_bytes())?;
    transport
        .send_raw(&envelope, raw.as_bytes())
        .await
        .map_err(|e| anyhow::anyhow!("cannot send: {e}"))?;
    Ok(())
}

#[test]
fn login_then_imap_and_smtp_with_refreshed_tokens_until_the_refresh_token_is_revoked() {
    let auth = AuthServer::start("alice", LIFETIME);
    let servers = MailServers::start_with_introspection(&auth.url("/introspect"));
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(&servers, &auth, dir.path(), "");

    // Before any login the rep is told what to run.
    let before = pushback_output(&config_path, &["scan"]);
    assert!(!before.status.success());
    let said = String::from_utf8_lossy(&before.stderr);
    assert!(said.contains("no OAuth2 refresh token"), "{said}");
    assert!(said.contains(RELOGIN), "{said}");

    sign_in(&config_path, &auth);
    assert_eq!(auth.code_grants(), 1);
    let first_refresh = stored_refresh_token(dir.path());
    assert!(auth.is_valid_refresh_token(&first_refresh));

    let config = Config::load(&config_path).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // The process holds no access token yet: one refresh, then IMAP and SMTP share it.
        imap_login(&config)
            .await
            .expect("IMAP login with the access token");
        send_one(&config, 1)
            .await
            .expect("SMTP send with the access token");
        assert_eq!(auth.refresh_grants(), 1);

        // Expired (Dovecot and the sink would refuse it now): refreshed, and the rotated refresh
        // token replaces the stored one. The second send's transport carries the new token.
        auth.rotate_refresh_tokens(true);
        tokio::time::sleep(LIFETIME + Duration::from_millis(200)).await;
        imap_login(&config)
            .await
            .expect("IMAP login after the refresh");
        assert_eq!(auth.refresh_grants(), 2);
        send_one(&config, 2)
            .await
            .expect("SMTP send after the refresh");
        assert_eq!(auth.refresh_grants(), 2);
        let rotated = stored_refresh_token(dir.path());
        assert_ne!(rotated, first_refresh);
        assert!(auth.is_valid_refresh_token(&rotated));
        assert!(!auth.is_valid_refresh_token(&first_refresh));

        // Revoked: a clear, permanent error for this account, and the endpoint is not asked
        // again with the same refresh token.
        auth.revoke_refresh_tokens();
        tokio::time::sleep(LIFETIME + Duration::from_millis(200)).await;
        for _ in 0..2 {
            let error = imap_login(&config).await.unwrap_err();
            assert!(needs_login(&error), "{error:#}");
            let text = format!("{error:#}");
            assert!(text.contains(RELOGIN), "{text}");
            assert!(text.contains("revoked"), "{text}");
            assert!(
                !text.contains(&rotated),
                "the error shows the refresh token"
            );
        }
        let error = send_one(&config, 3).await.unwrap_err();
        assert!(needs_login(&error), "{error:#}");
        assert_eq!(auth.refused_refreshes(), 1);
    });
    let received = servers.smtp_received();
    assert_eq!(received.len(), 2);
    assert!(
        received
            .iter()
            .all(|m| m.auth_user.as_deref() == Some("alice") && m.tls)
    );

    // The CLI says the same; logging in again mends it, in this process too.
    let after = pushback_output(&config_path, &["scan"]);
    assert!(!after.status.success());
    assert!(String::from_utf8_lossy(&after.stderr).contains(RELOGIN));
    sign_in(&config_path, &auth);
    runtime
        .block_on(imap_login(&config))
        .expect("IMAP login after logging in again");

    // doctor says where the token is and until when the access token holds, never the token.
    let doctor = pushback_output(&config_path, &["doctor"]);
    let report = String::from_utf8_lossy(&doctor.stdout);
    let stored = stored_refresh_token(dir.path());
    assert!(
        report.contains(
            "OAuth2 token for alice fetched from pushback's OAuth2 login (refresh token in the file"
        ),
        "{report}"
    );
    assert!(report.contains("valid until"), "{report}");
    assert!(
        !report.contains(&stored) && !report.contains("access-"),
        "{report}"
    );
}

#[test]
fn a_revoked_login_leaves_the_daemon_running_until_the_rep_logs_in_again() {
    let auth = AuthServer::start("alice", Duration::from_secs(60));
    let servers = MailServers::start_with_introspection(&auth.url("/introspect"));
    let dir = tempfile::tempdir().unwrap();
    // Tried again every two seconds once the login is refused, so the test sees the mend soon.
    let config_path = write_config(&servers, &auth, dir.path(), "reconnect-max-seconds = 2\n");
    sign_in(&config_path, &auth);
    let refresh = stored_refresh_token(dir.path());
    auth.revoke_refresh_tokens();

    let log = dir.path().join("daemon.log");
    let mut daemon = spawn_daemon(&config_path, &log, false);
    wait_logged("the login message", Duration::from_secs(30), &log, || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains(RELOGIN)
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the daemon stopped: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    // Up and ready (systemd would hear READY=1), waiting for the rep's login.
    let status = pushback_output(&config_path, &["status", "--json"]);
    assert!(status.status.success(), "the status socket does not answer");
    let answer: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let service = &answer;
    assert_eq!(service["phase"], "running", "{answer}");
    assert_eq!(service["mailbox"]["login_needed"], true, "{answer}");
    let error = service["mailbox"]["last_error"].as_str().unwrap();
    assert!(error.contains(RELOGIN), "{error}");
    // Refused once, then remembered: not a hot loop against the token endpoint.
    assert_eq!(auth.refused_refreshes(), 1);

    sign_in(&config_path, &auth);
    wait_logged(
        "the watcher to log in",
        Duration::from_secs(30),
        &log,
        || {
            std::fs::read_to_string(&log)
                .unwrap()
                .contains("imap watcher reconnected")
                .then_some(())
        },
    );
    stop(&mut daemon);
    let exit = wait_for("the daemon to exit", Duration::from_secs(15), || {
        daemon.try_wait().unwrap()
    });
    assert!(exit.success(), "{}", std::fs::read_to_string(&log).unwrap());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains(&refresh), "the log shows a refresh token");
    assert!(!logged.contains("access-"), "the log shows an access token");
}

/// With `$BROWSER` set, `pushback login` hands it the URL instead of asking the rep to copy it;
/// no mail server is involved in signing in.
#[test]
fn login_opens_the_browser_named_by_browser() {
    let auth = AuthServer::start("alice", LIFETIME);
    let dir = tempfile::tempdir().unwrap();
    let opened = dir.path().join("opened-url");
    let browser = dir.path().join("browser");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > {}\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "{IDENTITY}\n[mailbox]\nkind = \"imap\"\nhost = \"127.0.0.1\"\nuser = \"alice\"\n\
             [state]\npath = \"{}\"\n[oauth2]\nprovider = \"custom\"\nclient-id = \"{CLIENT_ID}\"\n\
             authorize-url = \"{}\"\ntoken-url = \"{}\"\nscopes = [\"mail\"]\n\
             token-store = \"file\"\n",
            dir.path().join("state").display(),
            auth.url("/authorize"),
            auth.url("/token"),
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_pushback"))
        .args(["login", "default"])
        .env("PUSHBACK_CONFIG", &config)
        .env("BROWSER", &browser)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = wait_for("the browser to be opened", Duration::from_secs(30), || {
        std::fs::read_to_string(&opened)
            .ok()
            .filter(|u| !u.is_empty())
    });
    assert!(url.starts_with(&auth.url("/authorize?")), "{url}");
    let (_, location, _) = browser_get(&url);
    let (status, _, _) = browser_get(&location.unwrap());
    assert_eq!(status, 200);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(said.contains("in the browser window that opened"), "{said}");
    assert!(said.contains("Signed in: account default"), "{said}");
    assert_eq!(auth.code_grants(), 1);
    assert!(auth.is_valid_refresh_token(&stored_refresh_token(dir.path())));

    // Another account name is refused: this config has one, "default".
    let other = pushback_output(&config, &["login", "work"]);
    assert!(!other.status.success());
    let refused = String::from_utf8_lossy(&other.stderr);
    assert!(
        refused.contains("work is not an account in it; the accounts are default"),
        "{refused}"
    );
}

/// Two accounts in one service: a revoked sign-in stops only its own account. The other one, on
/// a local Maildir, drafts as before, and `pushback status` shows which account needs a login.
#[test]
fn a_revoked_login_in_one_account_leaves_the_other_drafting() {
    let auth = AuthServer::start("alice", Duration::from_secs(60));
    let servers = MailServers::start_with_introspection(&auth.url("/introspect"));
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    for folder in ["", ".Drafts", ".Sent"] {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(folder).join(sub)).unwrap();
        }
    }
    let identity = IDENTITY
        .replace("version = 1", "")
        .replace("[identity]", "[account.identity]");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "version = 2\n{}\n[[account]]\nname = \"work\"\n{}\n[account.mailbox]\n\
             kind = \"maildir\"\npath = \"{}\"\n\n[[account]]\nname = \"mail\"\n{}\n{}",
            state_table(dir.path()),
            identity.replace("alice@", "alex@"),
            maildir.display(),
            identity,
            mail_tables(&servers, &auth, "account.", "reconnect-max-seconds = 2"),
        ),
    )
    .unwrap();
    sign_in_as(
        &config,
        &auth,
        "mail",
        &["login", "mail", "--no-browser"],
        &[],
    );
    let token_file = dir.path().join("state/oauth2-mail.token");
    let refresh = std::fs::read_to_string(&token_file).unwrap();
    auth.revoke_refresh_tokens();

    std::fs::write(maildir.join("new/1700000001.w1.host"), rfp(1)).unwrap();

    let log = dir.path().join("daemon.log");
    let mut daemon = spawn_daemon(&config, &log, false);
    wait_logged("the login message", Duration::from_secs(30), &log, || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("run `pushback login mail` again")
            .then_some(())
    });
    let drafts = wait_logged("work's draft", Duration::from_secs(30), &log, || {
        let out = pushback_cli(&config, &["--account", "work", "drafts", "list", "--json"]);
        (!out.trim().is_empty()).then_some(out)
    });
    assert!(drafts.contains("rfp-1@"), "{drafts}");
    assert!(daemon.try_wait().unwrap().is_none(), "the daemon stopped");
    let status = pushback_output(&config, &["status", "--json"]);
    let answer: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let accounts = answer["accounts"]
        .as_array()
        .expect("one answer per account");
    let of = |name: &str| accounts.iter().find(|a| a["account"] == name).unwrap();
    assert_eq!(of("mail")["mailbox"]["login_needed"], true, "{answer}");
    assert_ne!(of("work")["mailbox"]["login_needed"], true, "{answer}");

    stop(&mut daemon);
    let exit = wait_for("the daemon to exit", Duration::from_secs(15), || {
        daemon.try_wait().unwrap()
    });
    assert!(exit.success(), "{}", std::fs::read_to_string(&log).unwrap());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        !logged.contains(refresh.trim()),
        "the log shows a refresh token"
    );
}

/// On a desktop, `token-store = "auto"` keeps the refresh token in the secret service (GNOME
/// Keyring on a private session bus here), never in a file, and the service logs in with it;
/// without a secret service to ask, the same config looks for the file.
#[test]
fn on_a_desktop_the_refresh_token_goes_to_the_secret_service() {
    let secrets = SecretService::start();
    let auth = AuthServer::start("alice", Duration::from_secs(60));
    let servers = MailServers::start_with_introspection(&auth.url("/introspect"));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(&servers, &auth, dir.path(), "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("token-store = \"file\"", "token-store = \"auto\""),
    )
    .unwrap();

    let said = sign_in_as(
        &config,
        &auth,
        "default",
        &["login", "--no-browser"],
        &secrets.env(),
    );
    assert!(
        said.iter()
            .any(|l| l.contains("secret service item pushback/oauth2-default")),
        "{said:?}"
    );
    assert!(!dir.path().join("state/oauth2-default.token").exists());

    let pushback = |args: &[&str], env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_pushback"))
            .args(args)
            .env("PUSHBACK_CONFIG", &config)
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    servers.deliver(&rfp(1));
    let scan = pushback(&["scan"], &secrets.env());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&scan.stdout),
        String::from_utf8_lossy(&scan.stderr),
    );
    assert!(scan.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("1 drafts written"), "{stdout}");
    assert_eq!(servers.folder("Drafts").len(), 1);
    let doctor = pushback(&["doctor"], &secrets.env());
    let report = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        report.contains("refresh token in the secret service item pushback/oauth2-default"),
        "{report}"
    );

    let alone = pushback(&["scan"], &[]);
    assert!(!alone.status.success());
    let said = String::from_utf8_lossy(&alone.stderr);
    assert!(
        said.contains("no OAuth2 refresh token in the file"),
        "{said}"
    );
}

//! Several accounts in one `pushback run`: a local Maildir account and an IMAP account on the
//! harness's Dovecot whose password is wrong. The broken account is retried and shown in
//! `pushback status`; the other one drafts as if it were alone. `--account` picks one account on
//! the command line, and an unknown name lists the real ones.

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::MailServers;
use support::pushback::{
    pushback_cli, pushback_output, rfp, spawn_daemon, stop, wait_for, wait_logged,
};

fn identity(email: &str) -> String {
    format!(
        "[account.identity]\nname = \"Alex Rivera\"\nemail = \"{email}\"\n\
         title = \"Account Executive\"\ncompany = \"Northwind Analytics\"\n\
         timezone = \"Europe/London\"\n"
    )
}

/// An `[[account]]` on the harness's IMAP server as `user` with `password`, sending through the
/// harness's SMTP sink when `smtp`.
fn imap_account(
    servers: &MailServers,
    name: &str,
    user: &str,
    password: &str,
    smtp: bool,
) -> String {
    let smtp = if smtp {
        format!(
            "[account.smtp]\nhost = \"{host}\"\nport = {port}\nsecurity = \"plain\"\n\
             user = \"{user}\"\npassword-command = \"printf %s '{password}'\"\n",
            host = servers.host(),
            port = servers.smtp_port(),
        )
    } else {
        String::new()
    };
    format!(
        r#"[[account]]
name = "{name}"
{identity}
[account.mailbox]
kind = "imap"
host = "{host}"
port = {imap}
security = "starttls"
user = "{user}"
password-command = "printf %s '{password}'"
ca-file = "{ca}"
reconnect-max-seconds = 2
{smtp}
"#,
        identity = identity(&format!("{user}@northwind.example")),
        host = servers.host(),
        imap = servers.imap_port(),
        ca = servers.ca_file().display(),
    )
}

/// A version 2 config: account `work` on the Maildir at `maildir`, account `side` on the
/// harness's IMAP server with the wrong password.
fn two_accounts(servers: &MailServers, dir: &Path, maildir: &Path) -> String {
    let (user, _) = servers.user();
    format!(
        "version = 2\n\n[state]\npath = \"{state}\"\n\n[[account]]\nname = \"work\"\n\
         {work_identity}\n[account.mailbox]\nkind = \"maildir\"\npath = \"{maildir}\"\n\n{side}",
        state = dir.join("state").display(),
        work_identity = identity("alex@northwind.example"),
        maildir = maildir.display(),
        side = imap_account(servers, "side", user, "not-the-password", false),
    )
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn a_broken_account_is_retried_and_shown_while_the_other_drafts() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    for folder in ["", ".Drafts", ".Sent"] {
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(folder).join(sub)).unwrap();
        }
    }
    std::fs::write(maildir.join("new/1700000001.w1.host"), rfp(1)).unwrap();
    // Mail for the broken account, which it cannot read.
    servers.deliver(&rfp(2));
    let config = dir.path().join("config.toml");
    std::fs::write(&config, two_accounts(&servers, dir.path(), &maildir)).unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = spawn_daemon(&config, &log, false);

    let work_drafts = wait_logged("work's draft", Duration::from_secs(30), &log, || {
        let out = pushback_cli(&config, &["--account", "work", "drafts", "list", "--json"]);
        let drafts = json_lines(&out);
        (!drafts.is_empty()).then_some(drafts)
    });
    assert_eq!(work_drafts.len(), 1, "{work_drafts:?}");
    assert_eq!(work_drafts[0]["account"], "work");
    let in_reply_to = work_drafts[0]["in_reply_to"].as_str().unwrap();
    assert!(in_reply_to.contains("rfp-1@"), "{in_reply_to}");
    let drafts_dir = maildir.join(".Drafts/cur");
    assert_eq!(std::fs::read_dir(&drafts_dir).unwrap().count(), 1);

    // The broken account is in the status answer with its error, retrying.
    let side = wait_logged(
        "side's failure in status",
        Duration::from_secs(30),
        &log,
        || {
            let out = pushback_output(&config, &["status", "--json"]);
            let answer: Value = serde_json::from_slice(&out.stdout).ok()?;
            let side = answer["accounts"]
                .as_array()?
                .iter()
                .find(|a| a["account"] == "side")?
                .clone();
            side["mailbox"]["last_error"].is_string().then_some(side)
        },
    );
    assert_eq!(side["mailbox"]["connected"], false);
    let status = pushback_cli(&config, &["status"]);
    assert!(
        status.contains("account work:") && status.contains("account side:"),
        "{status}"
    );
    assert!(status.contains("NOT connected"), "{status}");
    let work_only = pushback_cli(&config, &["--account", "work", "status"]);
    assert!(
        !work_only.contains("account side") && work_only.contains("connected"),
        "{work_only}"
    );

    // The broken account drafted nothing; without --account the list covers both.
    let side_drafts = pushback_cli(&config, &["--account", "side", "drafts", "list", "--json"]);
    assert!(side_drafts.is_empty(), "{side_drafts}");
    let all = pushback_cli(&config, &["drafts", "list"]);
    assert!(
        all.contains("account work:") && all.contains("account side:"),
        "{all}"
    );
    // A draft's id finds its account; an unknown account names the real ones.
    let id = work_drafts[0]["id"].as_i64().unwrap().to_string();
    let shown = pushback_cli(&config, &["drafts", "show", &id]);
    assert!(shown.contains("RFP #2027-001"), "{shown}");
    let unknown = pushback_output(&config, &["--account", "home", "drafts", "list"]);
    assert!(!unknown.status.success());
    let error = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        error.contains("home is not an account in it; the accounts are work, side"),
        "{error}"
    );
    // A scan of every account reports the broken one and still scans the other.
    let scan = pushback_output(&config, &["scan"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&scan.stdout),
        String::from_utf8_lossy(&scan.stderr),
    );
    assert!(!scan.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("account work: scanned"), "{stdout}");
    assert!(
        stderr.contains("account side: ") && stderr.contains("cannot scan account(s) side"),
        "{stderr}"
    );
    // Commands on one mailbox ask which one.
    let ambiguous = pushback_output(&config, &["templates", "check"]);
    let error = String::from_utf8_lossy(&ambiguous.stderr);
    assert!(
        error.contains("holds several accounts (work, side); choose one with --account"),
        "{error}"
    );

    assert!(
        daemon.try_wait().unwrap().is_none(),
        "the service keeps running: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    stop(&mut daemon);
    let exit = daemon.wait().unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(exit.success(), "{exit:?}: {logged}");
    assert!(
        logged.contains("side"),
        "the failure names its account: {logged}"
    );
}

/// A version 2 config with two Maildir accounts under `dir`; `side_tables` goes into the second.
fn two_maildirs(dir: &Path, side_tables: &str) -> String {
    let account = |name: &str, email: &str, tables: &str| {
        format!(
            "[[account]]\nname = \"{name}\"\n{identity}\
             [account.mailbox]\nkind = \"maildir\"\npath = \"{maildir}\"\n{tables}\n",
            identity = identity(email),
            maildir = dir.join(name).display()
        )
    };
    format!(
        "version = 2\n[state]\npath = \"{}\"\n\n{}{}",
        dir.join("state").display(),
        account("work", "alex@northwind.example", ""),
        account("side", "alex@side.example", side_tables),
    )
}

fn maildir_with(root: &Path, raw: &[u8]) {
    for folder in ["", ".Drafts", ".Sent"] {
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(root.join(folder).join(sub)).unwrap();
        }
    }
    std::fs::write(root.join("new/1700000001.a1.host"), raw).unwrap();
}

fn drafts_of(config: &Path, account: &str) -> Vec<Value> {
    json_lines(&pushback_cli(
        config,
        &["--account", account, "drafts", "list", "--json"],
    ))
}

#[test]
fn an_account_that_cannot_start_waits_for_a_reload_while_the_other_drafts() {
    let dir = tempfile::tempdir().unwrap();
    maildir_with(&dir.path().join("work"), &rfp(1));
    maildir_with(&dir.path().join("side"), &rfp(2));
    let templates = dir.path().join("broken-templates");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(templates.join("rfp.txt"), "Hi {{ greeting\n").unwrap();
    let config = dir.path().join("config.toml");
    let broken = format!("[account.templates]\ndir = \"{}\"\n", templates.display());
    std::fs::write(&config, two_maildirs(dir.path(), &broken)).unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = spawn_daemon(&config, &log, false);

    wait_logged("work's draft", Duration::from_secs(30), &log, || {
        (drafts_of(&config, "work").len() == 1).then_some(())
    });
    let side = wait_logged(
        "side's error in status",
        Duration::from_secs(30),
        &log,
        || {
            let out = pushback_output(&config, &["status", "--json"]);
            let answer: Value = serde_json::from_slice(&out.stdout).ok()?;
            answer["accounts"][1]["mailbox"]["last_error"]
                .as_str()
                .map(str::to_owned)
        },
    );
    assert!(side.contains("rfp.txt"), "{side}");
    assert!(drafts_of(&config, "side").is_empty());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("account side is not running"), "{logged}");

    // Fixed in the file; SIGHUP starts the account.
    std::fs::write(&config, two_maildirs(dir.path(), "")).unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    wait_logged(
        "side's draft after the reload",
        Duration::from_secs(30),
        &log,
        || (drafts_of(&config, "side").len() == 1).then_some(()),
    );
    // Each account drafted its own mail, once.
    assert_eq!(drafts_of(&config, "work").len(), 1);
    stop(&mut daemon);
    let exit = daemon.wait().unwrap();
    assert!(
        exit.success(),
        "{exit:?}: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

/// Two IMAP accounts on one server, as a rep with a work and a partner mailbox has: each INBOX
/// holds a UID 1, each account drafts its own mail into its own Drafts folder, and an approved
/// reply leaves through its own account's SMTP login while the other's draft waits.
#[test]
fn two_imap_accounts_each_draft_and_send_their_own_mail() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let (alice, alice_password) = servers.user();
    let (bob, bob_password) = servers.second_user();
    servers.deliver_to(alice, &rfp(1));
    servers.deliver_to(bob, &rfp(2));
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "version = 2\n[state]\npath = \"{}\"\n\n{}{}",
            dir.path().join("state").display(),
            imap_account(&servers, "alice", alice, alice_password, true),
            imap_account(&servers, "bob", bob, bob_password, true),
        ),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = spawn_daemon(&config, &log, false);

    let drafted = |account: &str| {
        wait_logged(
            &format!("{account}'s draft"),
            Duration::from_secs(30),
            &log,
            || {
                let drafts = drafts_of(&config, account);
                (!drafts.is_empty()).then_some(drafts)
            },
        )
    };
    let (alice_drafts, bob_drafts) = (drafted("alice"), drafted("bob"));
    assert_eq!((alice_drafts.len(), bob_drafts.len()), (1, 1));
    let replying_to = |drafts: &[Value]| drafts[0]["in_reply_to"].as_str().unwrap().to_owned();
    assert!(replying_to(&alice_drafts).contains("rfp-1@"));
    assert!(replying_to(&bob_drafts).contains("rfp-2@"));
    for (user, n) in [(alice, 1), (bob, 2)] {
        let drafts = wait_for("the draft on the server", Duration::from_secs(30), || {
            Some(servers.folder_of(user, "Drafts")).filter(|f| !f.is_empty())
        });
        assert_eq!(drafts.len(), 1, "{user}");
        let raw = String::from_utf8_lossy(&drafts[0].raw);
        assert!(raw.contains(&format!("rfp-{n}@")), "{user}'s Drafts: {raw}");
    }

    // Bob's reply, approved by id alone, goes out with bob's login; alice's draft waits.
    let bob_id = bob_drafts[0]["id"].as_i64().unwrap().to_string();
    pushback_cli(&config, &["drafts", "approve", &bob_id]);
    let sent = wait_for("bob's reply at the sink", Duration::from_secs(30), || {
        Some(servers.smtp_received()).filter(|r| !r.is_empty())
    });
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].auth_user.as_deref(), Some(bob));
    assert!(String::from_utf8_lossy(&sent[0].raw).contains("rfp-2@"));
    assert_eq!(drafts_of(&config, "alice")[0]["status"], "pending");

    stop(&mut daemon);
    let exit = daemon.wait().unwrap();
    assert!(exit.success(), "{}", std::fs::read_to_string(&log).unwrap());
}

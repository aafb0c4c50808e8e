//! The example config must parse, resolve to the defaults, and mention every key the config
//! accepts, so that it cannot drift from the code.

use pushback::config::{
    self, Accounts, CalendarSettings, Config, FollowUpPolicy, ImapSync, MailboxAccess,
    ReminderSettings,
};
use pushback::core::schedule::BusinessCalendar;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pushback.example.toml")
}

#[test]
fn the_example_parses_strictly_and_resolves_to_the_defaults() {
    let config = Config::load(&example_path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.identity.timezone, "Europe/London");
    let MailboxAccess::Maildir { path } = &config.mailbox.access else {
        panic!("the example's mailbox should be a maildir");
    };
    assert!(path.ends_with("Mail") && path.is_absolute(), "{path:?}");
    assert_eq!(config.mailbox.drafts_folder, config::DEFAULT_DRAFTS_FOLDER);
    assert_eq!(config.mailbox.sent_folder, config::DEFAULT_SENT_FOLDER);
    assert_eq!(config.outgoing, None);
    assert_eq!(config.mailbox.sync, ImapSync::default());
    assert_eq!(config.templates_dir, None);
    assert_eq!(config.classifier_rules, None);
    assert_eq!(config.max_message_bytes, config::DEFAULT_MAX_MESSAGE_BYTES);
    assert!(config.state_dir.ends_with("pushback"));
    assert_eq!(config.business, BusinessCalendar::new(config.timezone));
    assert_eq!(config.follow_up, FollowUpPolicy::default());
    assert_eq!(
        config.reminders,
        ReminderSettings::in_state_dir(&config.state_dir)
    );
    assert_eq!(config.calendar, CalendarSettings::default());
    assert_eq!(
        config.web, None,
        "the approval page is off unless [web] is set"
    );
}

#[test]
fn the_several_accounts_example_parses_into_its_accounts() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/pushback.accounts.toml");
    let accounts = Accounts::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(accounts.names(), ["work", "partner-desk"]);
    let [work, partners] = accounts.all() else {
        panic!("two accounts")
    };
    assert!(matches!(work.mailbox.access, MailboxAccess::Maildir { .. }));
    assert_eq!(work.outgoing, None);
    assert!(partners.outgoing.is_some());
    // The Microsoft 365 preset fills the server, and the token is kept under the account's name.
    let MailboxAccess::Imap(server) = &partners.mailbox.access else {
        panic!("partner-desk reads IMAP")
    };
    assert_eq!(server.host, "outlook.office365.com");
    let oauth2 = partners
        .oauth2
        .as_ref()
        .expect("partner-desk signs in with OAuth2");
    assert_eq!(oauth2.account, "partner-desk");
    assert!(work.oauth2.is_none());
    assert_eq!(partners.timezone, chrono_tz::America::New_York);
    assert!(partners.templates_dir.is_some() && work.templates_dir.is_none());
    assert_eq!(work.state_dir, partners.state_dir);
    assert_eq!(work.follow_up.max_follow_ups, 1);
    assert_eq!(partners.follow_up.max_follow_ups, 1);
    // A tool that takes one account asks which.
    assert!(Config::load(&path).is_err());
}

/// The keys the config accepts in `table` (None: the top level), read from the error for an
/// unknown key, which lists them.
fn accepted_keys(table: Option<&str>) -> BTreeSet<String> {
    let probe = match table {
        None => "version = 1\nzz-probe = 1\n".to_owned(),
        Some(table) => format!("version = 1\n[{table}]\nzz-probe = 1\n"),
    };
    let error = Config::from_toml(&probe, Path::new("probe.toml"))
        .expect_err("an unknown key must be refused")
        .to_string();
    let (_, expected) = error
        .split_once("unknown field `zz-probe`, expected")
        .unwrap_or_else(|| panic!("no key list in {error:?}"));
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// (section, key) for every `key = value` line in the example, commented out or not. A subtable
/// header `[a.b]` counts as key `b` of section `a`.
fn example_keys() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let mut section = String::new();
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(header) = line.strip_prefix('[') {
            section = header.trim_end_matches(']').to_owned();
            let (parent, key) = section.rsplit_once('.').unwrap_or(("", &section));
            keys.insert((parent.to_owned(), key.to_owned()));
        } else if let Some((key, _)) = line.split_once(" = ")
            && !key.contains(' ')
        {
            keys.insert((section.clone(), key.to_owned()));
        }
    }
    keys
}

#[test]
fn the_example_mentions_every_accepted_key() {
    let documented = example_keys();
    let top = accepted_keys(None);
    assert!(top.contains("identity"), "probe found {top:?}");
    let mut checked = 0;
    for table in &top {
        assert!(
            documented.contains(&(String::new(), table.clone())),
            "the example does not mention `{table}`"
        );
        checked += 1;
        if table == "version" {
            continue;
        }
        for key in accepted_keys(Some(table)) {
            // Accepted only to be refused with a pointer to password-command / password-env (or
            // client-secret-command / client-secret-env).
            if matches!(
                key.as_str(),
                "password" | "caldav-password" | "client-secret"
            ) {
                continue;
            }
            assert!(
                documented.contains(&(table.clone(), key.clone())),
                "the example does not mention [{table}] {key}"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} keys checked");
}

/// The first value written for `[section] key` in the example, commented out or not.
fn example_value(section: &str, key: &str) -> String {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim_start_matches('#').trim();
        if let Some(header) = line.strip_prefix('[') {
            current = header.trim_end_matches(']').to_owned();
        } else if current == section
            && let Some((k, value)) = line.split_once(" = ")
            && k == key
        {
            return value.to_owned();
        }
    }
    panic!("the example has no [{section}] {key}");
}

#[test]
fn the_examples_commented_defaults_are_the_real_defaults() {
    // The IMAP and SMTP keys are commented out in the example (it is a maildir), so the parse
    // above cannot check their values.
    let sync = ImapSync::default();
    let mailbox = |key| example_value("mailbox", key);
    assert_eq!(mailbox("backfill-days"), sync.backfill_days.to_string());
    assert_eq!(mailbox("fetch-max-bytes"), sync.fetch_max_bytes.to_string());
    assert_eq!(
        mailbox("idle-minutes"),
        (sync.idle_timeout.as_secs() / 60).to_string()
    );
    assert_eq!(
        mailbox("poll-seconds"),
        sync.poll_interval.as_secs().to_string()
    );
    assert_eq!(
        mailbox("reconnect-max-seconds"),
        sync.reconnect_max.as_secs().to_string()
    );
    assert_eq!(mailbox("accept-invalid-certs"), "false");
    assert_eq!(example_value("smtp", "accept-invalid-certs"), "false");
    assert_eq!(
        example_value("smtp", "save-to-sent"),
        config::DEFAULT_SAVE_TO_SENT.to_string()
    );
    assert_eq!(
        example_value("web", "listen"),
        format!("{:?}", config::DEFAULT_WEB_LISTEN)
    );
    let feed = example_value("reminders", "feed");
    assert!(
        feed.ends_with(&format!("/{}\"", config::DEFAULT_REMINDERS_FEED_FILE)),
        "{feed}"
    );
}

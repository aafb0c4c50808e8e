//! Several accounts in one file (`version = 2`): each `[[account]]` has a name and its own
//! `identity`, `mailbox`, `smtp`, `templates` and `classifier` tables (the same keys as the top
//! level tables of a version 1 file); every other table stays at the top level and applies to
//! all of them. Each account becomes one complete [`Config`]. A version 1 file is one account,
//! named [`DEFAULT_ACCOUNT`](super::DEFAULT_ACCOUNT). Which account a command acts on (`--account`) is the binary's to
//! ask; this module says which names exist.

use super::{
    Config, Error, MailboxAccess, Parser, RawAccount, RawBusiness, RawCalendar, RawClassifier,
    RawFollowUp, RawIdentity, RawLimits, RawLog, RawMailbox, RawReminders, RawShared, RawSmtp,
    RawState, RawTemplates, RawVersion, RawWeb, oauth2::RawOAuth2,
};
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::path::{Path, PathBuf};
use toml::Spanned;

/// The longest account name: it goes into log lines, flags and file names.
const MAX_NAME_LEN: usize = 40;

/// Every account of a config file, in file order (never empty).
#[derive(Debug, Clone, PartialEq)]
pub struct Accounts {
    pub(super) configs: Vec<Config>,
}

impl Accounts {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Accounts, Error> {
        let text = std::fs::read_to_string(path).map_err(|cause| Error::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Accounts::from_toml(&text, path)
    }

    /// Validates config text; `path` names the file in errors and anchors relative paths.
    pub fn from_toml(text: &str, path: &Path) -> Result<Accounts, Error> {
        let configs = Parser {
            text,
            file: path,
            env: &|name| std::env::var_os(name),
            account: None,
        }
        .parse_accounts()?;
        Ok(Accounts { configs })
    }

    pub fn all(&self) -> &[Config] {
        &self.configs
    }

    pub fn names(&self) -> Vec<&str> {
        self.configs.iter().map(|c| c.account.as_str()).collect()
    }

    /// The account called `name`, or with `None` the only one.
    pub fn one(self, name: Option<&str>) -> Result<Config, Error> {
        match name {
            Some(name) => {
                let known = self.known();
                let file = self.file();
                self.configs
                    .into_iter()
                    .find(|c| c.account == name)
                    .ok_or(Error::UnknownAccount {
                        file,
                        account: name.to_owned(),
                        known,
                    })
            }
            None => self.into_only(),
        }
    }

    /// The account called `name`, or with `None` every account.
    pub fn select(self, name: Option<&str>) -> Result<Vec<Config>, Error> {
        match name {
            Some(_) => Ok(vec![self.one(name)?]),
            None => Ok(self.configs),
        }
    }

    /// The only account; a file with several is an error naming them.
    pub fn into_only(mut self) -> Result<Config, Error> {
        if self.configs.len() == 1 {
            return Ok(self.configs.remove(0));
        }
        Err(Error::SeveralAccounts {
            file: self.file(),
            known: self.known(),
        })
    }

    fn known(&self) -> String {
        self.names().join(", ")
    }

    fn file(&self) -> PathBuf {
        self.configs
            .first()
            .and_then(|c| c.file.clone())
            .unwrap_or_default()
    }
}

/// A version 2 file: the shared tables at the top level, the accounts in `[[account]]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfigV2 {
    #[serde(rename = "version")]
    _version: IgnoredAny,
    account: Vec<RawAccountTable>,
    #[serde(default)]
    state: RawState,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    business: RawBusiness,
    #[serde(default)]
    follow_up: RawFollowUp,
    #[serde(default)]
    reminders: RawReminders,
    #[serde(default)]
    calendar: RawCalendar,
    web: Option<RawWeb>,
    #[serde(default)]
    log: RawLog,
}

/// One `[[account]]`: a name and the tables a version 1 file has at its top level.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAccountTable {
    name: Spanned<String>,
    identity: RawIdentity,
    mailbox: RawMailbox,
    smtp: Option<RawSmtp>,
    #[serde(default)]
    templates: RawTemplates,
    #[serde(default)]
    classifier: RawClassifier,
    oauth2: Option<RawOAuth2>,
}

impl Parser<'_> {
    pub(super) fn parse_version_2(&self, head: RawVersion) -> Result<Vec<Config>, Error> {
        let misplaced = [
            ("identity", &head.identity),
            ("mailbox", &head.mailbox),
            ("smtp", &head.smtp),
            ("templates", &head.templates),
            ("classifier", &head.classifier),
            ("oauth2", &head.oauth2),
        ];
        if let Some((table, Some(value))) = misplaced
            .into_iter()
            .filter(|(_, value)| value.is_some())
            .min_by_key(|(_, value)| value.as_ref().map(|v| v.span().start))
        {
            return Err(self.invalid(
                value.span(),
                &format!("[{table}]"),
                format!(
                    "a version 2 file keeps [{table}] in each account: move it under its \
                     [[account]] as [account.{table}] (or, for one account, go back to \
                     `version = 1`, which keeps it at the top level)"
                ),
            ));
        }
        if head.account.is_none() {
            return Err(self.error(
                None,
                "[[account]]",
                "missing: a version 2 file needs at least one [[account]] with a name, \
                 [account.identity] and [account.mailbox]",
            ));
        }
        let raw: RawConfigV2 = toml::from_str(self.text).map_err(|e| self.toml_error(&e))?;
        let shared = RawShared {
            state: raw.state,
            limits: raw.limits,
            business: raw.business,
            follow_up: raw.follow_up,
            reminders: raw.reminders,
            calendar: raw.calendar,
            web: raw.web,
            log: raw.log,
        };
        let mut configs: Vec<Config> = Vec::with_capacity(raw.account.len());
        for (index, table) in raw.account.into_iter().enumerate() {
            let label = format!("[[account]] #{}", index + 1);
            let name_span = table.name.span();
            let name = table.name.into_inner();
            if let Err(why) = check_name(&name) {
                return Err(self.invalid(name_span, &format!("{label} name"), why));
            }
            if configs.iter().any(|c| c.account == name) {
                return Err(self.invalid(
                    name_span,
                    &format!("{label} name"),
                    format!("{name:?} names two accounts; give each account its own name"),
                ));
            }
            let mailbox_span = table.mailbox.kind.span();
            let parser = Parser {
                text: self.text,
                file: self.file,
                env: self.env,
                account: Some(format!("{label} {name:?}")),
            };
            let account = RawAccount {
                identity: table.identity,
                mailbox: table.mailbox,
                smtp: table.smtp,
                templates: table.templates,
                classifier: table.classifier,
                oauth2: table.oauth2,
            };
            let mut config = parser.build(&name, account, shared.clone())?;
            if let Some(other) = configs
                .iter()
                .find(|c| same_mailbox(&c.mailbox.access, &config.mailbox.access))
            {
                return Err(parser.invalid(
                    mailbox_span,
                    "[mailbox]",
                    format!(
                        "is the mailbox of account {:?} too; two accounts watching one mailbox \
                         would draft every message twice",
                        other.account
                    ),
                ));
            }
            // Each account publishes its own reminders: one file each, side by side.
            config.reminders.feed = per_account_file(&config.reminders.feed, &name);
            configs.push(config);
        }
        Ok(configs)
    }
}

/// `key` (read off the line at `offset`) with the `[[account]] #n` it is in, when it is in one
/// of an account's tables: toml's own errors (an unknown key, a wrong type) then say which.
pub(super) fn in_account(text: &str, offset: usize, key: String) -> String {
    if !key.starts_with("[account") {
        return key;
    }
    let offset = offset.min(text.len());
    let n = text[..offset]
        .lines()
        .filter(|line| line.trim_start().starts_with("[[account]]"))
        .count();
    match n {
        0 => key,
        n => format!("[[account]] #{n} {key}"),
    }
}

/// Account names appear in flags, log lines, the status answer and file names: a short slug.
fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if first_ok && rest_ok && name.len() <= MAX_NAME_LEN {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not an account name: use lower-case letters, digits and '-', starting \
             with a letter or digit, at most {MAX_NAME_LEN} characters (e.g. \"work\")"
        ))
    }
}

fn same_mailbox(a: &MailboxAccess, b: &MailboxAccess) -> bool {
    match (a, b) {
        (MailboxAccess::Maildir { path: a }, MailboxAccess::Maildir { path: b }) => a == b,
        (MailboxAccess::Imap(a), MailboxAccess::Imap(b)) => {
            let user = |server: &super::Server| server.login.as_ref().map(|l| l.user.clone());
            a.host.eq_ignore_ascii_case(&b.host) && user(a) == user(b)
        }
        _ => false,
    }
}

/// `reminders.ics` for account `work` is `reminders.work.ics`.
fn per_account_file(path: &Path, account: &str) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.{account}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{account}"),
    };
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_ACCOUNT;
    use std::ffi::OsString;

    fn env(name: &str) -> Option<OsString> {
        (name == "HOME").then(|| "/home/alex".into())
    }

    fn parse(text: &str) -> Result<Accounts, Error> {
        Parser {
            text,
            file: Path::new("/etc/pb/config.toml"),
            env: &env,
            account: None,
        }
        .parse_accounts()
        .map(|configs| Accounts { configs })
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    fn line_of(text: &str, needle: &str) -> usize {
        nth_line_of(text, needle, 0)
    }

    /// The 1-based line of the `n`-th (from 0) line of `text` containing `needle`.
    fn nth_line_of(text: &str, needle: &str, n: usize) -> usize {
        let mut lines = text.lines().enumerate().filter(|(_, l)| l.contains(needle));
        lines.nth(n).unwrap().0 + 1
    }

    fn account(name: &str, email: &str, mailbox: &str) -> String {
        format!(
            r#"
[[account]]
name = "{name}"
[account.identity]
name = "Alex Rivera"
email = "{email}"
title = "Account Executive"
company = "Northwind Analytics"
timezone = "Europe/London"
[account.mailbox]
{mailbox}
"#
        )
    }

    const V1: &str = r#"version = 1
[identity]
name = "Alex Rivera"
email = "alex@northwind.example"
title = "Account Executive"
company = "Northwind Analytics"
timezone = "Europe/London"
[mailbox]
kind = "maildir"
path = "/m"
"#;

    fn two_accounts() -> String {
        format!(
            "version = 2\n[state]\npath = \"/var/pb\"\n[follow-up]\nmax-follow-ups = 1\n{}{}",
            account(
                "work",
                "alex@northwind.example",
                "kind = \"maildir\"\npath = \"/m/work\""
            ),
            account(
                "side",
                "alex@side.example",
                "kind = \"imap\"\nhost = \"imap.side.example\"\nuser = \"alex\"\n\
                 password-env = \"SIDE_PASSWORD\""
            ),
        )
    }

    #[test]
    fn a_version_1_file_is_one_account_named_default() {
        let accounts = parse(V1).unwrap();
        assert_eq!(accounts.names(), ["default"]);
        let config = accounts.one(None).unwrap();
        assert_eq!(config.account, DEFAULT_ACCOUNT);
        // Its reminders feed keeps its name: nothing changes for an existing single account.
        assert!(config.reminders.feed.ends_with("reminders.ics"));
    }

    #[test]
    fn version_2_accounts_have_their_own_tables_and_share_the_rest() {
        let accounts = parse(&two_accounts()).unwrap();
        assert_eq!(accounts.names(), ["work", "side"]);
        let [work, side] = accounts.all() else {
            panic!("two accounts")
        };
        assert_eq!(work.identity.email, "alex@northwind.example");
        assert_eq!(side.identity.email, "alex@side.example");
        assert!(matches!(work.mailbox.access, MailboxAccess::Maildir { .. }));
        assert!(matches!(side.mailbox.access, MailboxAccess::Imap(_)));
        assert_eq!(work.state_dir, PathBuf::from("/var/pb"));
        assert_eq!(work.state_dir, side.state_dir);
        assert_eq!(work.status_socket, side.status_socket);
        assert_eq!(work.follow_up.max_follow_ups, 1);
        assert_eq!(side.follow_up.max_follow_ups, 1);
        assert_eq!(
            work.reminders.feed,
            PathBuf::from("/var/pb/reminders.work.ics")
        );
        assert_eq!(
            side.reminders.feed,
            PathBuf::from("/var/pb/reminders.side.ics")
        );
    }

    #[test]
    fn picking_an_account_by_name_and_an_unknown_name_lists_the_names() {
        let accounts = parse(&two_accounts()).unwrap();
        assert_eq!(accounts.clone().one(Some("side")).unwrap().account, "side");
        assert_eq!(accounts.clone().select(None).unwrap().len(), 2);
        assert_eq!(
            accounts.clone().one(Some("home")).unwrap_err().to_string(),
            "/etc/pb/config.toml: home is not an account in it; the accounts are work, side"
        );
        assert_eq!(
            accounts.one(None).unwrap_err().to_string(),
            "/etc/pb/config.toml: holds several accounts (work, side); choose one with \
             --account NAME"
        );
    }

    #[test]
    fn an_error_in_an_account_names_file_line_account_and_key() {
        let text = two_accounts().replace("imap.side.example", "");
        let line = line_of(&text, "host = \"\"");
        assert_eq!(
            err(&text),
            format!(
                "/etc/pb/config.toml line {line}: [[account]] #2 \"side\" [mailbox] host: must \
                 not be empty"
            )
        );
        // A shared table's key names no account.
        let text = two_accounts().replace("max-follow-ups = 1", "max-follow-ups = 99");
        let line = line_of(&text, "max-follow-ups");
        assert!(
            err(&text).starts_with(&format!(
                "/etc/pb/config.toml line {line}: [follow-up] max-follow-ups: "
            )),
            "{}",
            err(&text)
        );
        // An unknown key inside an account table.
        let text = two_accounts().replace(
            "[account.mailbox]\nkind = \"imap\"",
            "[account.mailbox]\nkind = \"imap\"\nzz = 1",
        );
        let line = line_of(&text, "zz = 1");
        assert!(
            err(&text).starts_with(&format!(
                "/etc/pb/config.toml line {line}: [[account]] #2 [account.mailbox] zz: unknown \
                 field `zz`"
            )),
            "{}",
            err(&text)
        );
    }

    #[test]
    fn account_names_are_required_unique_slugs() {
        let text = two_accounts().replace("name = \"side\"", "name = \"work\"");
        let line = nth_line_of(&text, "name = \"work\"", 1);
        assert_eq!(
            err(&text),
            format!(
                "/etc/pb/config.toml line {line}: [[account]] #2 name: \"work\" names two \
                 accounts; give each account its own name"
            )
        );
        for bad in ["Work", "", "-x", "a b", "w/x", &"x".repeat(41)] {
            let text = two_accounts().replace("name = \"side\"", &format!("name = {bad:?}"));
            assert!(
                err(&text).contains("[[account]] #2 name: ")
                    && err(&text).contains("is not an account name"),
                "{bad:?}: {}",
                err(&text)
            );
        }
        let text = two_accounts().replace("name = \"side\"\n", "");
        assert!(
            err(&text).contains("missing field `name`"),
            "{}",
            err(&text)
        );
    }

    #[test]
    fn two_accounts_on_one_mailbox_are_refused() {
        let text = format!(
            "version = 2\n{}{}",
            account("a", "a@x.example", "kind = \"maildir\"\npath = \"/m\""),
            account("b", "b@x.example", "kind = \"maildir\"\npath = \"/m\""),
        );
        let line = nth_line_of(&text, "kind = \"maildir\"", 1);
        assert_eq!(
            err(&text),
            format!(
                "/etc/pb/config.toml line {line}: [[account]] #2 \"b\" [mailbox]: is the \
                 mailbox of account \"a\" too; two accounts watching one mailbox would draft \
                 every message twice"
            )
        );
        let imap = |host: &str| {
            format!("kind = \"imap\"\nhost = \"{host}\"\nuser = \"alex\"\npassword-env = \"P\"")
        };
        let text = format!(
            "version = 2\n{}{}",
            account("a", "a@x.example", &imap("imap.x.example")),
            account("b", "b@x.example", &imap("IMAP.x.example")),
        );
        assert!(err(&text).contains("is the mailbox of account \"a\" too"));
        // Another user on the same server is another mailbox.
        let text = text.replacen("user = \"alex\"", "user = \"sam\"", 1);
        assert_eq!(parse(&text).unwrap().names(), ["a", "b"]);
    }

    #[test]
    fn a_version_mismatch_says_how_to_migrate() {
        let text = format!(
            "version = 1\n{}",
            account("a", "a@x.example", "kind = \"maildir\"\npath = \"/m\"")
        );
        let line = line_of(&text, "[[account]]");
        let error = err(&text);
        assert!(
            error.starts_with(&format!(
                "/etc/pb/config.toml line {line}: [[account]]: several accounts need `version = 2`"
            )),
            "{error}"
        );
        let text = V1.replace("version = 1", "version = 2");
        let line = line_of(&text, "[identity]");
        let error = err(&text);
        assert!(
            error.starts_with(&format!(
                "/etc/pb/config.toml line {line}: [identity]: a version 2 file keeps [identity] \
                 in each account: move it under its [[account]] as [account.identity]"
            )),
            "{error}"
        );
        assert_eq!(
            err("version = 2\n"),
            "/etc/pb/config.toml: [[account]]: missing: a version 2 file needs at least one \
             [[account]] with a name, [account.identity] and [account.mailbox]"
        );
    }

    #[test]
    fn per_account_files_keep_their_extension() {
        assert_eq!(
            per_account_file(Path::new("/s/reminders.ics"), "work"),
            PathBuf::from("/s/reminders.work.ics")
        );
        assert_eq!(
            per_account_file(Path::new("/s/feed"), "work"),
            PathBuf::from("/s/feed.work")
        );
    }
}

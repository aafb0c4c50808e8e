//! `pushback demo`: the whole flow on a throw-away local Maildir, no account and no config needed.
//! It seeds an inbox with the sample mails shipped in the binary, writes a config file pointing at
//! it, runs one scan and tells the rep which commands to try next.

use crate::adapters::maildir::Maildir;
use crate::app::Session;
use crate::config::Config;
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Sample inbound mail: procurement mail of different kinds plus ordinary mail (`pack check`
/// renders every template against them too).
pub(crate) const SAMPLES: [&[u8]; 9] = [
    include_bytes!("demo/01-rfp-city-tender.eml"),
    include_bytes!("demo/02-rfq-just-pricing.eml"),
    include_bytes!("demo/03-portal-registration.eml"),
    include_bytes!("demo/04-security-questionnaire.eml"),
    include_bytes!("demo/05-demo-request.eml"),
    include_bytes!("demo/06-gatekeeper.eml"),
    include_bytes!("demo/07-colleague-lunch.eml"),
    include_bytes!("demo/08-newsletter.eml"),
    include_bytes!("demo/09-purchase-order.eml"),
];

/// Marks a directory as ours, so re-running the demo may wipe it and nothing else.
const MARKER: &str = ".pushback-demo";

pub fn default_dir() -> PathBuf {
    let data_home = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(std::env::temp_dir);
    data_home.join("pushback").join("demo")
}

pub fn run(dir: &Path, now: DateTime<Utc>) -> Result<String> {
    prepare(dir)?;
    let maildir_path = dir.join("Maildir");
    let maildir = Maildir::create(&maildir_path)?;
    for sample in SAMPLES {
        maildir.deliver(sample)?;
    }
    let config_path = dir.join("config.toml");
    std::fs::write(&config_path, demo_config(dir))
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let config = Config::load(&config_path)?;
    let mut session = Session::open(&config)?;
    let report = session.scan(now)?;

    let mut out = String::new();
    writeln!(
        out,
        "Demo inbox: {} ({} messages)",
        maildir_path.display(),
        SAMPLES.len()
    )?;
    writeln!(out, "Scanned {} messages:\n", report.examined)?;
    for finding in &report.findings {
        let verdict = if finding.procurement {
            format!("procurement/{}", finding.category)
        } else {
            "other".to_string()
        };
        let draft = finding
            .draft_id
            .map_or(String::new(), |id| format!("  -> draft {id}"));
        writeln!(
            out,
            "  {verdict:<36} {:>5.1}  {}{draft}",
            finding.score, finding.subject
        )?;
    }
    for skipped in report.skipped.iter().chain(&report.deferred) {
        writeln!(out, "  skipped {}: {}", skipped.key, skipped.reason)?;
    }
    let drafts = session.store.drafts(None)?;
    writeln!(
        out,
        "\n{} drafts written to {} (a mail client sees them as drafts). The first one:\n",
        drafts.len(),
        maildir_path.join(".Drafts").display()
    )?;
    if let Some(first) = drafts.first() {
        out.push_str(&crate::app::approval::show(&session.store, first.id)?);
    }
    let config_arg = shell_quote(&config_path);
    writeln!(out, "\nNothing was sent. Try next:")?;
    writeln!(out, "  export PUSHBACK_CONFIG={config_arg}")?;
    writeln!(out, "  pushback drafts list")?;
    writeln!(out, "  pushback drafts show 1")?;
    writeln!(out, "  pushback drafts edit 1        # opens $EDITOR")?;
    writeln!(
        out,
        "  pushback drafts approve 1     # delivered to the demo's Sent folder"
    )?;
    writeln!(out, "  pushback drafts reject 2 --not-procurement")?;
    writeln!(
        out,
        "  pushback reminders list       # the RFPs' dates; a follow-up once a reply is sent"
    )?;
    writeln!(
        out,
        "  pushback classify --json {}",
        shell_quote(&maildir_path.join("new"))
    )?;
    writeln!(out, "  pushback config check")?;
    Ok(out)
}

/// Empties a previous demo directory, refusing to touch a directory that is not one.
fn prepare(dir: &Path) -> Result<()> {
    if dir.exists() {
        let is_empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_none();
        if !is_empty && !dir.join(MARKER).exists() {
            bail!(
                "cannot use {} for the demo: it is not empty and was not made by `pushback demo`",
                dir.display()
            );
        }
        if !is_empty {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear the previous demo in {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "made by `pushback demo`; safe to delete\n",
    )
    .with_context(|| format!("cannot write {}", dir.join(MARKER).display()))?;
    Ok(())
}

fn demo_config(dir: &Path) -> String {
    let maildir = dir.join("Maildir");
    let state = dir.join("state");
    let identity = Config::demo(&maildir, &state).identity;
    format!(
        r#"# Written by `pushback demo`: a fictional rep reading a local demo Maildir.
version = 1

[identity]
name = {name}
email = {email}
title = {title}
company = {company}
timezone = {timezone}

[mailbox]
kind = "maildir"
path = {maildir}

[state]
path = {state}
"#,
        name = toml_string(&identity.name),
        email = toml_string(&identity.email),
        title = toml_string(&identity.title),
        company = toml_string(&identity.company),
        timezone = toml_string(&identity.timezone),
        maildir = toml_string(&maildir.display().to_string()),
        state = toml_string(&state.display().to_string()),
    )
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

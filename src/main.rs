//! The `pushback` binary: parses flags, sets up logging, loads the config and hands over to
//! `pushback::app`. Errors are printed with their causes (`{:#}`) and exit with status 1.

use anyhow::{Context, Result, bail};
use chrono::Utc;
use clap::{Parser, Subcommand};
use pushback::adapters::pack::Pack;
use pushback::adapters::store::Store;
use pushback::adapters::store::{ApprovedVia, DraftStatus};
use pushback::adapters::templates::Templates;
use pushback::app::approval::DraftsFolder;
use pushback::app::followups::Timekeeping;
use pushback::app::install::{self, Scope};
use pushback::app::reminders::{self, ReminderDesk};
use pushback::app::{self, approval, daemon, demo, inspect, logging, scan, send, status};
use pushback::config::MailboxAccess;
use pushback::config::{self, Accounts, Config};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pushback",
    version,
    about = "Polite pushback for procurement-process mail"
)]
struct Cli {
    /// Config file [default: $XDG_CONFIG_HOME/pushback/config.toml]
    #[arg(long, global = true, env = "PUSHBACK_CONFIG")]
    config: Option<PathBuf>,
    /// The account to act on, by its [[account]] name [default: every account where that is
    /// natural (run, scan, status, drafts list, reminders list, pack stats, config check,
    /// doctor), else the only one]
    #[arg(long, global = true, value_name = "NAME")]
    account: Option<String>,
    /// Log more (-v: info, -vv: debug); RUST_LOG overrides
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seed a local demo Maildir with sample mail, scan it and show the drafts (no account needed)
    Demo {
        /// Where to put the demo [default: $XDG_DATA_HOME/pushback/demo]
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Classify .eml files (directories are searched recursively) and explain why
    Classify {
        /// One JSON object per message per line
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Print the reply draft that would be written for a message, as a complete RFC 5322 message
    Draft { file: PathBuf },
    /// One pass over the configured mailbox: classify new mail and write drafts for procurement mail
    Scan {
        /// The report as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Sign in with OAuth2 ([oauth2]: Gmail, Microsoft 365 or your own provider) in a browser and
    /// store the refresh token; run it again when pushback says the sign-in was revoked
    Login {
        /// The account to sign in ("default" in a config with one account)
        account: Option<String>,
        /// Print the URL to open instead of opening a browser
        #[arg(long)]
        no_browser: bool,
    },
    /// Run as a service: watch the mailbox, draft replies, send what you approved (until SIGTERM/SIGINT;
    /// SIGHUP reloads the config and templates)
    Run,
    /// Serve only the local approval page ([web]), without watching the mailbox (until SIGTERM/SIGINT)
    Web,
    /// Print the approval page's address with your token (created on first use; keep it private)
    WebUrl,
    /// Ask the running service what it is doing (exit 3 when none runs)
    Status {
        /// The answer as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Put the systemd unit in place (pointing at this binary) and print how to start it
    Install {
        /// The template unit pushback@.service for the system manager (a shared host), as root
        #[arg(long)]
        system: bool,
        /// Replace a unit that differs from the one this pushback writes
        #[arg(long)]
        force: bool,
    },
    /// Review drafts: nothing is sent without approval
    #[command(subcommand)]
    Drafts(DraftsCommand),
    /// Follow-ups and RFP deadline reminders: what is due when
    #[command(subcommand)]
    Reminders(RemindersCommand),
    /// Validate or preview reply templates
    #[command(subcommand)]
    Templates(TemplatesCommand),
    /// Team template packs: lint one, or see which wording works
    #[command(subcommand)]
    Pack(PackCommand),
    /// Configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Score the classifier and the deadline extractor on a labelled folder (labels.csv, deadlines.csv)
    Eval {
        dir: PathBuf,
        /// Rules file to use instead of the configured or built-in one
        #[arg(long)]
        rules: Option<PathBuf>,
        /// One JSON object with every figure instead of the table
        #[arg(long)]
        json: bool,
    },
    /// Check the config, the state store, the mailbox and the way out, step by step
    Doctor {
        /// One JSON object per step per line
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DraftsCommand {
    /// List drafts, newest last
    List {
        #[arg(long)]
        json: bool,
        /// Only drafts with this status (pending, approved, rejected, sent)
        #[arg(long)]
        status: Option<String>,
    },
    #[command(flatten)]
    On(DraftAction),
}

/// What `pushback drafts` does to one draft.
#[derive(Subcommand)]
enum DraftAction {
    /// Show a draft with the notes for you (never sent)
    Show { id: i64 },
    /// Edit a pending draft in $EDITOR
    Edit { id: i64 },
    /// Approve a draft: it is queued and delivered
    Approve { id: i64 },
    /// Send again a draft whose send failed or was interrupted
    Resend { id: i64 },
    /// Record that a failed or interrupted draft did go out (it is never sent again)
    MarkSent { id: i64 },
    /// Reject a draft
    Reject {
        id: i64,
        /// The mail was not procurement mail: teach the classifier
        #[arg(long)]
        not_procurement: bool,
    },
}

impl DraftAction {
    fn draft_id(&self) -> i64 {
        match self {
            DraftAction::Show { id }
            | DraftAction::Edit { id }
            | DraftAction::Approve { id }
            | DraftAction::Resend { id }
            | DraftAction::MarkSent { id }
            | DraftAction::Reject { id, .. } => *id,
        }
    }
}

#[derive(Subcommand)]
enum RemindersCommand {
    /// Open reminders, due first
    List {
        /// One JSON object per reminder per line
        #[arg(long)]
        json: bool,
        /// Closed (done, cancelled) reminders too
        #[arg(long)]
        all: bool,
    },
    #[command(flatten)]
    On(ReminderAction),
}

/// What `pushback reminders` does to one reminder.
#[derive(Subcommand)]
enum ReminderAction {
    /// Mark a reminder done
    Done { id: i64 },
    /// Remind again after DURATION (90m, 4h, 2d, 1w, 1d12h); gives a date to confirm a time
    Snooze { id: i64, duration: String },
}

#[derive(Subcommand)]
enum TemplatesCommand {
    /// Render every template against sample mail and report problems with file and line
    Check {
        /// Templates directory [default: the configured one, else the built-in set]
        dir: Option<PathBuf>,
    },
    /// Render one template against a message (offering sample meeting times; `follow_up` as the
    /// first of two follow-ups)
    Preview { name: String, file: PathBuf },
}

#[derive(Subcommand)]
enum PackCommand {
    /// Lint a template pack: manifest, rules, follow-up policy, every category covered, every
    /// variable known, every template rendered against the bundled sample mails without
    /// placeholders and under the word limit (exit 1 on errors)
    Check {
        /// The pack directory (holding pack.toml)
        dir: PathBuf,
        /// Most words per rendered draft [default: the pack's [check] max-words, else 250]
        #[arg(long)]
        max_words: Option<usize>,
        /// One JSON object instead of the list
        #[arg(long)]
        json: bool,
    },
    /// Per template and pack version: drafts approved as is, edited then approved, rejected, and
    /// how often the buyer agreed to a call
    Stats {
        /// One JSON array instead of the table
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Load and validate the config, print what it resolved to and when each schedule fires next
    Check,
}

/// `pushback status` when no service answers, as `systemctl status` says "inactive".
const NOT_RUNNING: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("pushback: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let now = Utc::now();
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(config::default_config_path);
    let account = cli.account.as_deref();
    let out = match cli.command {
        Command::Demo { dir } => demo::run(&dir.unwrap_or_else(demo::default_dir), now)?,
        Command::Classify { json, paths } => {
            let pipeline = app::pipeline_for(&optional_config(&config_path, account)?)?;
            let mut stdout = std::io::stdout().lock();
            for file in inspect::message_files(&paths)? {
                let line = inspect::classify_file(&pipeline, &file);
                if json {
                    writeln!(stdout, "{}", serde_json::to_string(&line)?)?;
                } else {
                    writeln!(stdout, "{}", inspect::summary_line(&line))?;
                }
            }
            String::new()
        }
        Command::Draft { file } => {
            let pipeline = app::pipeline_for(&optional_config(&config_path, account)?)?;
            let (procurement, raw) = inspect::draft_for_file(&pipeline, &file, now)?;
            if !procurement {
                eprintln!(
                    "note: {} does not look like procurement mail; drafting anyway",
                    file.display()
                );
            }
            std::io::stdout().write_all(&raw)?;
            String::new()
        }
        Command::Scan { json } => {
            let configs = accounts(&config_path, account)?;
            if let [config] = configs.as_slice() {
                scan_account(config, json, now)?
            } else {
                // One account failing (its server down) does not keep the others from a scan.
                let mut failed = Vec::new();
                for config in &configs {
                    match scan_account(config, json, now) {
                        Ok(report) if json => print!("{report}"),
                        Ok(report) => print!("account {}: {report}", config.account),
                        Err(error) => {
                            eprintln!("pushback: account {}: {error:#}", config.account);
                            failed.push(config.account.as_str());
                        }
                    }
                }
                if !failed.is_empty() {
                    bail!("cannot scan account(s) {}", failed.join(", "));
                }
                String::new()
            }
        }
        Command::Login {
            account: named,
            no_browser,
        } => {
            // `pushback login work` and `pushback --account work login` say the same.
            let config = required_config(&config_path, named.as_deref().or(account))?;
            app::oauth2::login_command(&config, !no_browser)?
        }
        Command::Run => {
            let configs = accounts(&config_path, account)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(daemon::run_accounts(configs, daemon::shutdown_signal()))?;
            String::new()
        }
        // The approval page, its token and the status socket are the service's, shared by every
        // account: any account's config tells where they are.
        Command::Web => {
            let configs = accounts(&config_path, account)?;
            app::block_on(app::web::run_alone(configs))??;
            String::new()
        }
        Command::WebUrl => app::web::url(&first_account(&config_path, account)?)? + "\n",
        Command::Status { json } => {
            let config = first_account(&config_path, account)?;
            let candidates = status::socket_candidates(&config);
            let Some(answer) = status::query(&candidates)? else {
                let tried: Vec<String> =
                    candidates.iter().map(|p| p.display().to_string()).collect();
                eprintln!(
                    "pushback is not running: nothing answers at {}. Start it with \
                     `systemctl --user start pushback` (see `pushback install`) or `pushback run`.",
                    tried.join(" or ")
                );
                return Ok(ExitCode::from(NOT_RUNNING));
            };
            let answer = match account {
                Some(name) => status::of_account(answer, name)?,
                None => answer,
            };
            if json {
                serde_json::to_string(&answer)? + "\n"
            } else {
                status::render(&answer, config.timezone, now)
            }
        }
        Command::Install { system, force } => {
            let scope = if system { Scope::System } else { Scope::User };
            let exe = std::env::current_exe()
                .and_then(|exe| exe.canonicalize())
                .context("cannot tell where this pushback binary is")?;
            let (path, installed) = install::install(scope, &scope.unit_dir()?, &exe, force)?;
            install::next_steps(scope, &path, installed)
        }
        Command::Reminders(RemindersCommand::List { json, all }) => {
            list_per_account(&accounts(&config_path, account)?, json, |store, config| {
                reminders::list(store, &Timekeeping::of(config), all, json)
            })?
        }
        Command::Reminders(RemindersCommand::On(action)) => {
            let (ReminderAction::Done { id } | ReminderAction::Snooze { id, .. }) = action;
            let config = owner(&config_path, account, "reminder", |store| {
                Ok(store.reminder(id)?.is_some())
            })?;
            let mut store = Store::open_account(&config.state_dir, &config.account)?;
            let keeping = Timekeeping::of(&config);
            match action {
                ReminderAction::Done { id } => reminders::done(&mut store, id, now)?,
                ReminderAction::Snooze { id, duration } => {
                    reminders::snooze(&mut store, &keeping, id, &duration, now)?
                }
            }
        }
        Command::Drafts(DraftsCommand::List { json, status }) => {
            let status = status
                .map(|s| {
                    DraftStatus::parse(&s).with_context(|| {
                        format!(
                            "unknown status {s:?}; use pending, approved, sending, sent, \
                             failed, unknown or rejected"
                        )
                    })
                })
                .transpose()?;
            list_per_account(&accounts(&config_path, account)?, json, |store, _| {
                approval::list(store, status, json)
            })?
        }
        Command::Drafts(DraftsCommand::On(action)) => {
            let id = action.draft_id();
            let config = owner(&config_path, account, "draft", |store| {
                Ok(store.draft(id)?.is_some())
            })?;
            let mut store = Store::open_account(&config.state_dir, &config.account)?;
            let maildir = match &config.mailbox.access {
                MailboxAccess::Maildir { path } => Some(app::open_maildir(path, &config)?),
                MailboxAccess::Imap(_) => None,
            };
            let folder = DraftsFolder::of(&config, maildir.as_ref())?;
            match action {
                DraftAction::Show { id } => approval::show(&store, id)?,
                DraftAction::Edit { id } => {
                    let pipeline = app::pipeline_for(&config)?;
                    approval::edit(&mut store, &folder, &pipeline, id, now)? + "\n"
                }
                DraftAction::Approve { id } => {
                    let approve = approval::approve(&config, &mut store, id, ApprovedVia::Cli, now);
                    app::block_on(approve)?? + "\n"
                }
                DraftAction::Resend { id } => {
                    approval::resend(&config, &mut store, id, now)? + "\n"
                }
                DraftAction::MarkSent { id } => {
                    approval::mark_sent(&config, &mut store, id, now)? + "\n"
                }
                DraftAction::Reject {
                    id,
                    not_procurement,
                } => {
                    let reject = approval::reject(&mut store, &folder, id, not_procurement, now);
                    app::block_on(reject)?? + "\n"
                }
            }
        }
        Command::Templates(TemplatesCommand::Check { dir }) => {
            let config = optional_config(&config_path, account)?;
            let dir = match (dir, &config.templates_pack) {
                (Some(dir), _) => Some(dir),
                (None, Some(pack)) => Some(Pack::load(pack)?.templates_dir),
                (None, None) => config.templates_dir,
            };
            let templates = match dir {
                Some(dir) => Templates::load(&dir)?,
                None => Templates::builtin(),
            };
            let problems = templates.check();
            if problems.is_empty() {
                println!("templates ok: every category renders against the sample mail");
                return Ok(ExitCode::SUCCESS);
            }
            for problem in &problems {
                println!("{problem}");
            }
            return Ok(ExitCode::FAILURE);
        }
        Command::Templates(TemplatesCommand::Preview { name, file }) => {
            let pipeline = app::pipeline_for(&optional_config(&config_path, account)?)?;
            let raw =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            inspect::preview_template(&pipeline, &name, &raw, now)
                .with_context(|| format!("cannot preview {name} against {}", file.display()))?
                + "\n"
        }
        Command::Pack(PackCommand::Check {
            dir,
            max_words,
            json,
        }) => {
            let report = app::pack::check(&dir, max_words);
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.render_text());
            }
            return Ok(if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Command::Pack(PackCommand::Stats { json }) => {
            let stores = accounts(&config_path, account)?
                .iter()
                .map(|config| Store::open_account(&config.state_dir, &config.account))
                .collect::<Result<Vec<_>, _>>()?;
            app::pack::stats(&stores, json)?
        }
        Command::Config(ConfigCommand::Check) => {
            let configs = accounts(&config_path, account)?;
            let several = configs.len() > 1;
            let mut out = format!("config ok: {}\n", config_path.display());
            for config in configs {
                let pipeline = app::pipeline_for(&config)?;
                let problems = pipeline.templates().check();
                if several {
                    out.push_str(&format!("account {}:\n", config.account));
                }
                out.push_str(&config.describe());
                out.push_str(&config.describe_schedules(now));
                if !problems.is_empty() {
                    out.push_str("template problems:\n");
                    for problem in problems {
                        out.push_str(&format!("  {problem}\n"));
                    }
                }
            }
            out
        }
        Command::Eval { dir, rules, json } => {
            let rules = match rules {
                Some(rules) => Some(rules),
                None => app::rules_path(&optional_config(&config_path, account)?)?,
            };
            app::eval::run(&dir, rules.as_deref(), json)?;
            String::new()
        }
        Command::Doctor { json } => {
            let steps = app::doctor::run(&config_path, account);
            if json {
                print!("{}", app::doctor::render_json(&steps));
            } else {
                print!("{}", app::doctor::render_text(&steps));
            }
            return Ok(if app::doctor::passed(&steps) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// Commands that work on the mailbox need a config file; say how to get one.
fn load_accounts(path: &Path) -> Result<Accounts> {
    if !path.exists() {
        bail!(
            "no config file at {}: run `pushback demo` for a tour with a ready-made config, \
             or copy config/pushback.example.toml there and fill in [identity] and [mailbox]",
            path.display()
        );
    }
    let accounts = Accounts::load(path)?;
    tracing::info!(path = %path.display(), accounts = %accounts.names().join(", "), "loaded config");
    Ok(accounts)
}

/// `--account NAME`, or the only account (several without `--account` is an error naming them).
fn required_config(path: &Path, account: Option<&str>) -> Result<Config> {
    Ok(load_accounts(path)?.one(account)?)
}

/// `--account NAME`, or every account.
fn accounts(path: &Path, account: Option<&str>) -> Result<Vec<Config>> {
    Ok(load_accounts(path)?.select(account)?)
}

/// `--account NAME`, or the first account: for what the accounts share.
fn first_account(path: &Path, account: Option<&str>) -> Result<Config> {
    Ok(accounts(path, account)?.remove(0))
}

/// One list per account, each under the account's name when there are several (JSON lines carry
/// their account).
fn list_per_account(
    configs: &[Config],
    json: bool,
    list: impl Fn(&Store, &Config) -> Result<String>,
) -> Result<String> {
    let mut out = String::new();
    for config in configs {
        let store = Store::open_account(&config.state_dir, &config.account)?;
        if configs.len() > 1 && !json {
            out += &format!("account {}:\n", config.account);
        }
        out += &list(&store, config)?;
    }
    Ok(out)
}

/// `--account NAME`, or the account whose store `holds` the draft or reminder (their ids are
/// unique across the accounts sharing the store).
fn owner(
    path: &Path,
    account: Option<&str>,
    what: &str,
    holds: impl Fn(&Store) -> Result<bool>,
) -> Result<Config> {
    let configs = accounts(path, account)?;
    app::account_holding(&configs, holds)?
        .cloned()
        .with_context(|| {
            format!("no {what} with that id in any account (see `pushback {what}s list`)")
        })
}

/// Commands that only read mail files use the config when there is one, else the demo identity.
fn optional_config(path: &Path, account: Option<&str>) -> Result<Config> {
    if path.exists() {
        return required_config(path, account);
    }
    tracing::info!(path = %path.display(), "no config file; using the demo identity");
    let scratch = std::env::temp_dir().join("pushback-no-config");
    Ok(Config::demo(
        &scratch.join("Maildir"),
        &scratch.join("state"),
    ))
}

/// `pushback scan` for one account: the scan, then its outbox and its due reminders.
fn scan_account(config: &Config, json: bool, now: chrono::DateTime<Utc>) -> Result<String> {
    let report = app::scan_once(config, now)?;
    let mut store = Store::open_account(&config.state_dir, &config.account)?;
    app::block_on(send::deliver(config, &mut store, false, now))??;
    let mut desk = ReminderDesk::open(config)?;
    let round = app::block_on(desk.round(now))??;
    if !json && !round.fired.is_empty() {
        eprintln!(
            "{} reminder(s) due: `pushback reminders list`",
            round.fired.len()
        );
    }
    Ok(if json {
        serde_json::to_string(&report)? + "\n"
    } else {
        scan_summary(&report)
    })
}

fn scan_summary(report: &scan::ScanReport) -> String {
    let drafted = report
        .findings
        .iter()
        .filter(|f| f.draft_id.is_some())
        .count();
    let procurement = report.findings.iter().filter(|f| f.procurement).count();
    let mut out = format!(
        "scanned {} messages: {} new, {} procurement, {} drafts written, {} skipped, {} deferred\n",
        report.examined,
        report.findings.len() + report.skipped.len() + report.deferred.len(),
        procurement,
        drafted,
        report.skipped.len(),
        report.deferred.len()
    );
    for finding in report.findings.iter().filter(|f| f.procurement) {
        let draft = finding
            .draft_id
            .map_or("no new draft".to_string(), |id| format!("draft {id}"));
        out.push_str(&format!(
            "  {:<23} {draft:<12} {}\n",
            finding.category.as_str(),
            finding.subject
        ));
    }
    for skipped in &report.skipped {
        out.push_str(&format!("  skipped {}: {}\n", skipped.key, skipped.reason));
    }
    // Not skipped: tried again on the next scan.
    for deferred in &report.deferred {
        out.push_str(&format!(
            "  deferred {}: {}\n",
            deferred.key, deferred.reason
        ));
    }
    out
}

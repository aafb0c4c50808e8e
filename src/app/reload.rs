//! Reloading a running service without a restart: on SIGHUP the config file is read again and its
//! templates, classifier rules, template pack and log filter taken; when a file in the templates
//! directory or the template pack changes (an edit, a `git pull`), they are read again. Either way
//! a new pipeline is built and checked first (every template must render against the sample mail)
//! and only then handed to the running tasks; a config, template or pack that fails keeps the last
//! good set, and the error goes to the log and to `pushback status`. Tables that cannot change under a running service (the mailbox, the
//! state directory, ...) are named in a "restart to apply" warning.

use crate::adapters::pack::is_pack_file;
use crate::adapters::store::Store;
use crate::adapters::templates::Severity;
use crate::app::pipeline::Pipeline;
use crate::app::status::{Health, ReloadOutcome, ReloadTrigger};
use crate::config::{Accounts, Config};
use anyhow::{Context, Result, bail};
use chrono::Utc;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// Editors write a file in several steps (a swap file, a rename); wait for them to settle.
const SETTLE: Duration = Duration::from_secs(1);

/// Holds the running config and hands new pipelines to the tasks.
pub struct Reloader {
    config: Config,
    /// For the rep's feedback, which every new pipeline is trained with.
    store: Store,
    pipelines: watch::Sender<Arc<Pipeline>>,
    health: Arc<Health>,
    templates: Option<TemplatesWatch>,
}

impl Reloader {
    pub fn new(
        config: Config,
        store: Store,
        pipelines: watch::Sender<Arc<Pipeline>>,
        health: Arc<Health>,
    ) -> Result<Reloader> {
        let templates = TemplatesWatch::of(&config)?;
        Ok(Reloader {
            config,
            store,
            pipelines,
            health,
            templates,
        })
    }

    /// Resolves when a template file changed and the edits settled (never, without a templates
    /// directory).
    pub async fn templates_changed(&mut self) {
        match &mut self.templates {
            Some(watch) => watch.settled().await,
            None => std::future::pending().await,
        }
    }

    /// SIGHUP: the config file read again.
    pub fn reload_config(&mut self) {
        let outcome = self.try_config();
        self.record(ReloadTrigger::Signal, outcome);
    }

    /// The templates directory or pack changed: the running config's templates (and the pack's
    /// rules) read again.
    pub fn reload_templates(&mut self) {
        let outcome = self
            .install(self.config.clone())
            .map(|()| self.pack_follow_up_changed());
        self.record(ReloadTrigger::Templates, outcome);
    }

    /// A pack's `[follow-up]` reaches the service through the config, whose follow-up policy
    /// needs a restart: a changed one is reported as such rather than silently left unused. A
    /// config file that does not load just now is SIGHUP's to report.
    fn pack_follow_up_changed(&self) -> Vec<&'static str> {
        let (Some(_), Some(file)) = (&self.config.templates_pack, &self.config.file) else {
            return Vec::new();
        };
        let now =
            Accounts::load(file).and_then(|accounts| accounts.one(Some(&self.config.account)));
        match now {
            Ok(now) if now.follow_up != self.config.follow_up => vec!["the pack's [follow-up]"],
            _ => Vec::new(),
        }
    }

    /// Returns the tables that changed but need a restart.
    fn try_config(&mut self) -> Result<Vec<&'static str>> {
        let Some(file) = self.config.file.clone() else {
            bail!("the built-in demo configuration has no file to reload");
        };
        // This account as the file now has it (every account reloads on SIGHUP).
        let new = Accounts::load(&file)?.one(Some(&self.config.account))?;
        let (applied, restart_needed) = self.config.reloaded(&new);
        // Watching the new directory is part of taking it: it starts before anything is swapped.
        let moved = (watched(&applied) != watched(&self.config))
            .then(|| TemplatesWatch::of(&applied))
            .transpose()?;
        self.install(applied)?;
        if let Some(watch) = moved {
            self.templates = watch;
        }
        crate::app::logging::use_config_filter(&self.config.log_filter);
        Ok(restart_needed)
    }

    /// Builds and checks the pipeline for `config`; only if it passes does `config` become the
    /// running one and the pipeline the tasks'.
    fn install(&mut self, config: Config) -> Result<()> {
        let pipeline = crate::app::trained_pipeline(&config, &self.store)?;
        let errors: Vec<String> = pipeline
            .templates()
            .check()
            .into_iter()
            .filter(|problem| problem.severity == Severity::Error)
            .map(|problem| problem.to_string())
            .collect();
        if !errors.is_empty() {
            bail!("{}", errors.join("; "));
        }
        self.health
            .drafting_with(pipeline.pack(), config.templates_pack.clone());
        self.pipelines.send_replace(Arc::new(pipeline));
        self.config = config;
        Ok(())
    }

    fn record(&mut self, trigger: ReloadTrigger, outcome: Result<Vec<&'static str>>) {
        let what = match trigger {
            ReloadTrigger::Signal => "the config and templates",
            ReloadTrigger::Templates => "the templates",
        };
        let (error, restart_needed) = match outcome {
            Ok(restart_needed) => {
                tracing::info!(
                    config = ?self.config.file,
                    templates = ?self.config.templates_dir,
                    pack = ?self.config.templates_pack,
                    "reloaded {what}"
                );
                if !restart_needed.is_empty() {
                    tracing::warn!(
                        "changes to {} take effect when pushback is restarted",
                        restart_needed.join(", ")
                    );
                }
                (None, restart_needed)
            }
            Err(error) => {
                let text = format!("{error:#}");
                tracing::error!("cannot reload {what}, keeping the running ones: {text}");
                (Some(text), Vec::new())
            }
        };
        self.health.reloaded(
            ReloadOutcome {
                at: Utc::now(),
                trigger,
                error,
                restart_needed: restart_needed.into_iter().map(String::from).collect(),
            },
            self.config.templates_dir.clone(),
        );
    }
}

/// The directory a running service watches: a template pack (its manifest, templates and rules,
/// subdirectories included, since a `git pull` may replace any of them) or a templates directory
/// (its `*.txt` files).
fn watched(config: &Config) -> Option<(&Path, RecursiveMode)> {
    match (&config.templates_pack, &config.templates_dir) {
        (Some(pack), _) => Some((pack, RecursiveMode::Recursive)),
        (None, Some(dir)) => Some((dir, RecursiveMode::NonRecursive)),
        (None, None) => None,
    }
}

/// Watches a templates directory or template pack for changes.
struct TemplatesWatch {
    /// Told by the watcher's thread for every change.
    changed: Arc<Notify>,
    /// When the last change not yet reported came; kept here rather than in `settled`, so a
    /// caller that gives up waiting (a `select!` taking another branch) loses nothing.
    unsettled_since: Option<Instant>,
    /// Dropping it stops the watching.
    _watcher: RecommendedWatcher,
}

impl TemplatesWatch {
    /// Watches what `config` drafts with; `None` for the built-in set, which cannot change.
    fn of(config: &Config) -> Result<Option<TemplatesWatch>> {
        watched(config)
            .map(|(dir, mode)| TemplatesWatch::start(dir, mode))
            .transpose()
    }

    fn start(dir: &Path, mode: RecursiveMode) -> Result<TemplatesWatch> {
        let changed = Arc::new(Notify::new());
        let tell = changed.clone();
        let root = dir.to_path_buf();
        // A pack's files are its manifest, rules and templates, not git's own bookkeeping.
        let counts = move |path: &Path| match mode {
            RecursiveMode::Recursive => is_pack_file(&root, path),
            RecursiveMode::NonRecursive => is_template(path),
        };
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                match event {
                    // Reading the templates (our own reload among others) is no change; and only
                    // templates count, not an editor's swap and backup files.
                    Ok(event)
                        if !matches!(event.kind, EventKind::Access(_))
                            && event.paths.iter().any(|path| counts(path)) =>
                    {
                        tell.notify_one()
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!("cannot watch the templates directory: {error}"),
                }
            })
            .context("cannot watch the templates directory")?;
        watcher
            .watch(dir, mode)
            .with_context(|| format!("cannot watch the templates directory {}", dir.display()))?;
        Ok(TemplatesWatch {
            changed,
            unsettled_since: None,
            _watcher: watcher,
        })
    }

    /// Resolves once a change came and no other followed for `SETTLE`.
    async fn settled(&mut self) {
        loop {
            match self.unsettled_since {
                None => {
                    self.changed.notified().await;
                    self.unsettled_since = Some(Instant::now());
                }
                Some(since) => tokio::select! {
                    _ = self.changed.notified() => self.unsettled_since = Some(Instant::now()),
                    _ = tokio::time::sleep_until(since + SETTLE) => {
                        self.unsettled_since = None;
                        return;
                    }
                },
            }
        }
    }
}

fn is_template(path: &Path) -> bool {
    path.extension().is_some_and(|ext| ext == "txt")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::pipeline::ComposeOptions;

    const RFP: &[u8] = include_bytes!("demo/01-rfp-city-tender.eml");

    fn config_text(root: &Path, templates: &str, extra: &str) -> String {
        format!(
            "version = 1\n[identity]\nname = \"Alex Rivera\"\nemail = \"alex@northwind.example\"\n\
             title = \"AE\"\ncompany = \"Northwind\"\ntimezone = \"Europe/London\"\n\
             [mailbox]\nkind = \"maildir\"\npath = \"{root}/Mail\"\n[state]\npath = \"{root}/state\"\n\
             [templates]\ndir = \"{root}/{templates}\"\n{extra}",
            root = root.display()
        )
    }

    fn drafted(pipeline: &Pipeline) -> String {
        let analysis = pipeline.analyse(RFP).unwrap();
        pipeline
            .compose(&analysis, ComposeOptions::default(), Utc::now(), 1)
            .unwrap()
            .body
    }

    #[test]
    fn sighup_takes_a_new_templates_dir_and_a_broken_config_keeps_the_running_one() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (sub, word) in [("a", "ALPHA"), ("b", "BETA")] {
            std::fs::create_dir(root.join(sub)).unwrap();
            std::fs::write(root.join(sub).join("rfp.txt"), format!("Hi,\n\n{word}\n")).unwrap();
        }
        let file = root.join("config.toml");
        std::fs::write(&file, config_text(root, "a", "")).unwrap();
        let config = Config::load(&file).unwrap();
        let store = Store::open_account(&config.state_dir, &config.account).unwrap();
        let first = Arc::new(crate::app::trained_pipeline(&config, &store).unwrap());
        let (pipelines, pipeline) = watch::channel(first);
        let health = Arc::new(Health::new(&config, Duration::from_secs(1), Utc::now()));
        let mut reloader = Reloader::new(config, store, pipelines, health.clone()).unwrap();
        assert!(drafted(&pipeline.borrow()).contains("ALPHA"));

        let limits = "[limits]\nmax-message-bytes = 1000\n";
        std::fs::write(&file, config_text(root, "b", limits)).unwrap();
        reloader.reload_config();
        let state = health.snapshot();
        let reload = state.last_reload.unwrap();
        assert_eq!(reload.error, None);
        assert_eq!(reload.trigger, ReloadTrigger::Signal);
        assert_eq!(reload.restart_needed, ["[limits]"]);
        assert_eq!(state.templates_dir, Some(root.join("b")));
        let taken = pipeline.borrow().clone();
        assert!(drafted(&taken).contains("BETA"));

        let broken = config_text(root, "a", "bogus-key = 1\n");
        let line = broken
            .lines()
            .position(|l| l.starts_with("bogus-key"))
            .unwrap()
            + 1;
        std::fs::write(&file, broken).unwrap();
        reloader.reload_config();
        let error = health.snapshot().last_reload.unwrap().error.unwrap();
        assert!(
            error.starts_with(&format!(
                "{} line {line}: [templates] bogus-key: unknown field",
                file.display()
            )),
            "{error}"
        );
        assert!(
            Arc::ptr_eq(&pipeline.borrow(), &taken),
            "the running pipeline stays"
        );
        assert_eq!(health.snapshot().templates_dir, Some(root.join("b")));
    }

    #[test]
    fn a_changed_pack_is_taken_with_its_version_and_a_broken_one_keeps_the_last_good() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let pack = root.join("pack");
        std::fs::create_dir_all(pack.join("templates")).unwrap();
        let write_pack = |version: &str, word: &str| {
            std::fs::write(
                pack.join("pack.toml"),
                format!("name = \"team\"\nversion = \"{version}\"\n"),
            )
            .unwrap();
            std::fs::write(pack.join("templates/rfp.txt"), format!("Hi,\n\n{word}\n")).unwrap();
        };
        write_pack("1", "ALPHA");
        let file = root.join("config.toml");
        let text = config_text(root, "unused", "").replace(
            &format!("dir = \"{}/unused\"", root.display()),
            "pack = \"pack\"",
        );
        std::fs::write(&file, text).unwrap();
        let config = Config::load(&file).unwrap();
        let store = Store::open(&config.state_dir).unwrap();
        let first = Arc::new(crate::app::trained_pipeline(&config, &store).unwrap());
        assert_eq!(first.pack().unwrap().version, "1");
        let (pipelines, pipeline) = watch::channel(first);
        let health = Arc::new(Health::new(&config, Duration::from_secs(1), Utc::now()));
        let mut reloader = Reloader::new(config, store, pipelines, health.clone()).unwrap();

        write_pack("2", "BETA");
        reloader.reload_templates();
        let state = health.snapshot();
        assert_eq!(state.last_reload.unwrap().error, None);
        assert_eq!(state.pack.unwrap().version, "2");
        assert_eq!(state.pack_dir, Some(pack.clone()));
        let taken = pipeline.borrow().clone();
        assert!(drafted(&taken).contains("BETA"));

        std::fs::write(pack.join("templates/rfp.txt"), "Hi,\n\n{% if %}\n").unwrap();
        reloader.reload_templates();
        let state = health.snapshot();
        let error = state.last_reload.unwrap().error.unwrap();
        assert!(error.contains("rfp.txt line 3"), "{error}");
        assert_eq!(state.pack.unwrap().version, "2", "the running pack stays");
        assert!(Arc::ptr_eq(&pipeline.borrow(), &taken));

        // A new follow-up policy in the pack waits for a restart, and says so.
        write_pack("3", "GAMMA");
        let manifest = std::fs::read_to_string(pack.join("pack.toml")).unwrap();
        std::fs::write(
            pack.join("pack.toml"),
            manifest + "[follow-up]\nmax-follow-ups = 3\n",
        )
        .unwrap();
        reloader.reload_templates();
        let reload = health.snapshot().last_reload.unwrap();
        assert_eq!(reload.error, None);
        assert_eq!(reload.restart_needed, ["the pack's [follow-up]"]);
        assert!(drafted(&pipeline.borrow()).contains("GAMMA"));
    }
}

//! `pushback pack check` and `pushback pack stats`: what a team lead runs on a template pack.
//! `check` lints a pack directory (manifest, rules, follow-up policy, every category covered,
//! every variable known, every template rendered against the sample mails bundled with the
//! binary, no placeholder left, drafts under a word count) and reports each problem at its file
//! and line. `stats` counts, per template and pack version, what became of the drafts it wrote.
//! Loading the files is the adapters' (`pack`, `templates`); recording outcomes is the store's.

use crate::adapters::pack::{Pack, PackLabel, TemplateSource};
use crate::adapters::store::{DraftOutcome, DraftStatus, Store};
use crate::adapters::templates::{self, Problem, Severity, Templates};
use crate::app::pipeline::Pipeline;
use crate::core::classify::{Classifier, Rules};
use crate::core::draft::{self, DraftContext, FollowUpInfo};
use crate::core::mail::DEFAULT_MAX_MESSAGE_BYTES;
use crate::core::model::{Category, Identity};
use anyhow::Result;
use chrono::{DateTime, TimeZone, Utc};
use regex::Regex;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::LazyLock;

/// `pack check`'s word limit per rendered draft when neither `[check] max-words` nor `--max-words`
/// sets one: the templates' own rule is "under about 180 words before the signature".
pub const DEFAULT_MAX_WORDS: usize = 250;

/// Left-over placeholders a lead may have forgotten to fill in: template syntax that did not
/// render, TODO/TBD/XXX markers, and `[NAME]`- or `<first name>`-style blanks. Email addresses
/// in angle brackets (`<dana@city.example>`) are not placeholders.
static PLACEHOLDER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"\{\{|\{%|\{#|\b(?:TODO|TBD|FIXME|XXX+)\b",
        r"|\[[A-Z][A-Z0-9 _.-]*\]|<[A-Za-z][A-Za-z _-]*>|(?i:lorem ipsum)"
    ))
    .expect("the placeholder pattern compiles")
});

/// The `push_once` key of a template that fails to render: one such problem per file and line,
/// however many contexts fail on it (an unknown variable fails every one that reaches it).
const RENDER: &str = "render";

/// Names minijinja provides itself, never context variables.
const GLOBALS: [&str; 4] = ["range", "dict", "namespace", "debug"];

/// What `pack check` found.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// `None` when `pack.toml` itself could not be read.
    pub pack: Option<PackLabel>,
    /// `pack.toml`'s `description`, for the reps.
    pub description: Option<String>,
    pub max_words: usize,
    /// How many drafts were rendered from the sample mails.
    pub rendered: usize,
    pub problems: Vec<Problem>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        !self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    pub fn render_text(&self) -> String {
        let mut out = String::new();
        if let (Some(pack), Some(description)) = (&self.pack, &self.description) {
            out.push_str(&format!("{pack}: {description}\n"));
        }
        for problem in &self.problems {
            out.push_str(&format!("{problem}\n"));
        }
        let errors = self
            .problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count();
        let pack = self
            .pack
            .as_ref()
            .map_or("the pack".to_string(), |p| format!("pack {p}"));
        if errors == 0 {
            out.push_str(&format!(
                "{pack} ok: every category has a template, {} drafts rendered from the sample \
                 mails, none over {} words\n",
                self.rendered, self.max_words
            ));
        } else {
            out.push_str(&format!("{pack}: {errors} error(s)\n"));
        }
        out
    }
}

/// Lints the pack in `dir`; `max_words` overrides the pack's `[check] max-words`.
pub fn check(dir: &Path, max_words: Option<usize>) -> CheckReport {
    let mut report = CheckReport {
        pack: None,
        description: None,
        max_words: max_words.unwrap_or(DEFAULT_MAX_WORDS),
        rendered: 0,
        problems: Vec::new(),
    };
    let pack = match Pack::load(dir) {
        Ok(pack) => pack,
        Err(error) => {
            report.problems.push(pack_problem(&error, dir));
            return report;
        }
    };
    report.pack = Some(pack.manifest.label.clone());
    report.description = pack.manifest.description.clone();
    report.max_words = max_words
        .or(pack.manifest.max_words)
        .unwrap_or(DEFAULT_MAX_WORDS);
    let mut lint = Lint::default();
    if let Err(error) = crate::config::Config::check_pack_follow_up(&pack) {
        lint.push(config_problem(&error));
    }
    check_rules(&pack, &mut lint);
    let templates = match Templates::load(&pack.templates_dir) {
        Ok(templates) => templates,
        Err(error) => {
            lint.push(template_problem(error, &pack.templates_dir));
            report.problems = lint.finish();
            return report;
        }
    };
    let missing = check_coverage(&templates, &pack, &mut lint);
    check_variables(&templates, &mut lint);
    // The synthetic contexts exercise every branch a real mail can take (no contact, no slots,
    // sparse facts); a category without its own file was reported above.
    for problem in templates.check() {
        if missing.contains(&problem.file) {
            continue;
        }
        match problem.severity {
            Severity::Error => lint.push_once(RENDER.into(), problem),
            Severity::Notice => lint.push(problem),
        }
    }
    // Only the facts of the sample mails matter here (every category is rendered for each), so
    // the built-in pipeline reads them whatever the pack's rules say.
    let analyser = Pipeline::new(
        Identity::demo(),
        chrono_tz::Europe::London,
        None,
        None,
        DEFAULT_MAX_MESSAGE_BYTES,
    )
    .expect("the built-in templates and rules load (covered by tests)");
    report.rendered = render_samples(&analyser, &templates, &mut lint);
    lint.too_long(report.max_words);
    report.problems = lint.finish();
    report
}

/// Problems in the order found, each once.
#[derive(Default)]
struct Lint {
    problems: Vec<Problem>,
    /// (file, line, what): a problem seen in many renders is reported at its first.
    seen: BTreeSet<(String, Option<usize>, String)>,
    /// Per template file, its longest rendered draft: (words, which render).
    longest: BTreeMap<String, (usize, String)>,
}

impl Lint {
    fn push(&mut self, problem: Problem) {
        self.push_once(problem.message.clone(), problem);
    }

    fn push_once(&mut self, what: String, problem: Problem) {
        if self.seen.insert((problem.file.clone(), problem.line, what)) {
            self.problems.push(problem);
        }
    }

    fn rendered(&mut self, file: String, words: usize, what: &str) {
        let longest = self.longest.entry(file).or_insert((0, String::new()));
        if words > longest.0 {
            *longest = (words, what.to_string());
        }
    }

    /// Every template whose longest draft has more than `max_words` words.
    fn too_long(&mut self, max_words: usize) {
        let longest = std::mem::take(&mut self.longest);
        for (file, (words, what)) in longest {
            if words > max_words {
                self.push(error(
                    file,
                    None,
                    format!("the {what} has {words} words, more than {max_words}"),
                ));
            }
        }
    }

    /// Errors first, then notices, each in file order.
    fn finish(mut self) -> Vec<Problem> {
        self.problems
            .sort_by(|a, b| (a.severity, &a.file, a.line).cmp(&(b.severity, &b.file, b.line)));
        self.problems
    }
}

fn error(file: impl Into<String>, line: Option<usize>, message: impl Into<String>) -> Problem {
    Problem {
        severity: Severity::Error,
        file: file.into(),
        line,
        message: message.into(),
    }
}

fn pack_problem(e: &crate::adapters::pack::Error, dir: &Path) -> Problem {
    match e {
        crate::adapters::pack::Error::Invalid {
            file,
            line,
            key,
            message,
        } => {
            let key = if key.is_empty() {
                String::new()
            } else {
                format!("{key}: ")
            };
            error(file.display().to_string(), *line, format!("{key}{message}"))
        }
        crate::adapters::pack::Error::Read { path, source } => error(
            path.display().to_string(),
            None,
            format!(
                "cannot read it: {source} (is {} a template pack?)",
                dir.display()
            ),
        ),
    }
}

fn config_problem(e: &crate::config::Error) -> Problem {
    match e {
        crate::config::Error::Invalid {
            file,
            line,
            key,
            message,
        } => error(
            file.display().to_string(),
            *line,
            format!("{key}: {message}"),
        ),
        crate::config::Error::Read { path, cause } => {
            error(path.display().to_string(), None, cause.to_string())
        }
        // Account selection, which a pack's own file never reaches.
        other @ (crate::config::Error::UnknownAccount { file, .. }
        | crate::config::Error::SeveralAccounts { file, .. }) => {
            error(file.display().to_string(), None, other.to_string())
        }
    }
}

fn template_problem(e: templates::Error, dir: &Path) -> Problem {
    match e {
        templates::Error::Syntax { file, line, detail }
        | templates::Error::Render { file, line, detail } => error(file, line, detail),
        other => error(dir.display().to_string(), None, other.to_string()),
    }
}

/// The pack's rules must parse and compile.
fn check_rules(pack: &Pack, lint: &mut Lint) {
    let Some(path) = &pack.rules else {
        lint.push(Problem {
            severity: Severity::Notice,
            file: pack.manifest_file().display().to_string(),
            line: None,
            message: "no rules file (`rules`, default rules.toml): the built-in classifier \
                      rules apply"
                .into(),
        });
        return;
    };
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            lint.push(error(file, None, format!("cannot read the rules: {e}")));
            return;
        }
    };
    match Rules::from_toml(&text, path).and_then(|rules| Classifier::new(&rules)) {
        Ok(_) => {}
        Err(crate::core::classify::Error::Invalid {
            line, key, message, ..
        }) => lint.push(error(file, Some(line), format!("{key}: {message}"))),
        Err(other) => lint.push(error(file, None, other.to_string())),
    }
}

/// Every category, and the follow-up, needs a template of the pack's own (its `fallback.txt`
/// counts for the categories it lacks, with a notice). Returns the files reported missing.
fn check_coverage(templates: &Templates, pack: &Pack, lint: &mut Lint) -> BTreeSet<String> {
    let mut missing = BTreeSet::new();
    let categories = Category::PROCUREMENT.into_iter().chain([Category::None]);
    let needed = categories
        .map(|c| {
            (
                templates.template_for(c).to_string(),
                own_file(c),
                match c {
                    Category::None => "mail of no category".to_string(),
                    procurement => format!("{procurement} mail"),
                },
            )
        })
        .chain([(
            Templates::FOLLOW_UP.to_string(),
            Templates::FOLLOW_UP.to_string(),
            "the follow-up".to_string(),
        )]);
    for (used, own, what) in needed {
        let file = pack.templates_dir.join(&own).display().to_string();
        if !templates.is_from_dir(&used) {
            lint.push(error(
                file.clone(),
                None,
                format!("missing: {what} has no template in this pack (add {own})"),
            ));
            missing.insert(file);
        }
    }
    missing
}

fn own_file(category: Category) -> String {
    match category {
        Category::None => "fallback.txt".into(),
        other => format!("{other}.txt"),
    }
}

/// Every variable a template reads, in every branch, must be one the drafts provide: `buyer.nme`
/// fails here even in an `{% if %}` no sample takes.
fn check_variables(templates: &Templates, lint: &mut Lint) {
    let known = known_variables();
    for (name, origin) in templates.origins() {
        if !templates.is_from_dir(name) {
            continue;
        }
        let source = templates.source(name).unwrap_or_default();
        for variable in templates.undeclared_variables(name) {
            if GLOBALS.contains(&variable.as_str()) || is_known(&known, &variable) {
                continue;
            }
            lint.push_once(
                RENDER.into(),
                error(
                    origin,
                    line_containing(&source, &variable),
                    format!("unknown variable `{variable}` (templates/README.md lists them)"),
                ),
            );
        }
    }
}

/// The variables of a full sample context (a follow-up's, so `follow_up.*` is there too).
fn known_variables() -> serde_json::Value {
    let context = DraftContext::sample(Category::Rfp).with_follow_up(
        &FollowUpInfo {
            number: 1,
            max: 2,
            sent_at: check_time(),
            business_days: 3,
        },
        chrono_tz::Europe::London,
        check_time(),
    );
    serde_json::to_value(&context).expect("a draft context serialises")
}

/// Whether dotted `variable` is a path into `known`. Below a value that is not an object (a list,
/// a none) the shape is not known and anything is accepted.
fn is_known(known: &serde_json::Value, variable: &str) -> bool {
    let mut at = known;
    for part in variable.split('.') {
        match at {
            serde_json::Value::Object(map) => match map.get(part) {
                Some(next) => at = next,
                None => return false,
            },
            _ => return true,
        }
    }
    true
}

fn line_containing(source: &str, needle: &str) -> Option<usize> {
    source
        .lines()
        .position(|line| line.contains(needle))
        .map(|i| i + 1)
}

/// The fixed time `check` renders at, so a check is the same on every run.
fn check_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 2, 19, 10, 0, 0)
        .single()
        .expect("a valid date")
}

/// Renders every category's template, and both ends of a follow-up sequence, against every
/// sample mail (with and without meeting times), checking each text for placeholders and noting
/// its length.
/// Returns how many drafts were rendered.
fn render_samples(analyser: &Pipeline, templates: &Templates, lint: &mut Lint) -> usize {
    let now = check_time();
    let rep_tz = chrono_tz::Europe::London;
    let slots = draft::sample_slots(now, rep_tz);
    let mut rendered = 0;
    for (sample, raw) in crate::app::demo::SAMPLES.iter().enumerate() {
        let Ok(mut analysis) = analyser.analyse(raw) else {
            continue;
        };
        let what_mail = format!("sample mail {} ({:?})", sample + 1, analysis.mail.subject);
        for offered in [&slots[..], &[]] {
            for category in Category::PROCUREMENT.into_iter().chain([Category::None]) {
                analysis.classification.category = category;
                let context = analyser.context(&analysis, offered);
                let name = templates.template_for(category).to_string();
                let what = format!("{category} reply to {what_mail}");
                rendered += render_one(templates, &name, &what, &context, lint);
                for (number, max) in [(1, 2), (2, 2)] {
                    let info = FollowUpInfo {
                        number,
                        max,
                        sent_at: now - chrono::Duration::days(7),
                        business_days: 5,
                    };
                    let follow_up = context.clone().with_follow_up(&info, rep_tz, now);
                    let what = format!("follow-up {number} of {max} to the {what}");
                    rendered +=
                        render_one(templates, Templates::FOLLOW_UP, &what, &follow_up, lint);
                }
            }
        }
    }
    rendered
}

/// Renders one draft, checks its text for placeholders and notes its length; returns 1 when it
/// rendered.
fn render_one(
    templates: &Templates,
    name: &str,
    what: &str,
    context: &DraftContext,
    lint: &mut Lint,
) -> usize {
    let text = match templates.render_named(name, context) {
        Ok(text) => text,
        Err(e) => {
            lint.push_once(RENDER.into(), template_problem(e, Path::new(name)));
            return 0;
        }
    };
    // A built-in template standing in for a missing one was reported as missing.
    if !templates.is_from_dir(name) {
        return 1;
    }
    let origin = templates.origin(name);
    if let Some(found) = PLACEHOLDER.find(&text) {
        let placeholder = found.as_str();
        // Point at the file and line that wrote it: the template or one of its partials.
        let (file, line) = templates
            .origins()
            .filter(|(n, _)| templates.is_from_dir(n))
            .find_map(|(n, o)| {
                line_containing(&templates.source(n).unwrap_or_default(), placeholder)
                    .map(|line| (o.to_string(), Some(line)))
            })
            .unwrap_or((origin.clone(), None));
        lint.push_once(
            format!("placeholder {placeholder}"),
            error(
                file,
                line,
                format!("placeholder `{placeholder}` left in the {what}"),
            ),
        );
    }
    lint.rendered(origin, text.split_whitespace().count(), what);
    1
}

/// One row of `pack stats`: what became of the drafts one template of one pack version wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TemplateStats {
    pub template: String,
    pub pack: Option<PackLabel>,
    pub drafts: usize,
    pub approved_as_is: usize,
    pub edited_then_approved: usize,
    pub rejected: usize,
    /// Neither approved nor rejected yet.
    pub pending: usize,
    /// Sent drafts whose reply from the buyer agreed to a call.
    pub call_agreed: usize,
}

/// Counts `outcomes` per template and pack version, in pack, version and template order.
pub fn aggregate(outcomes: &[DraftOutcome]) -> Vec<TemplateStats> {
    let mut rows: BTreeMap<(Option<PackLabel>, String), TemplateStats> = BTreeMap::new();
    for outcome in outcomes {
        let TemplateSource { template, pack } = &outcome.source;
        let row = rows
            .entry((pack.clone(), template.clone()))
            .or_insert_with(|| TemplateStats {
                template: template.clone(),
                pack: pack.clone(),
                drafts: 0,
                approved_as_is: 0,
                edited_then_approved: 0,
                rejected: 0,
                pending: 0,
                call_agreed: 0,
            });
        row.drafts += 1;
        match (outcome.status, outcome.approved_version) {
            (DraftStatus::Rejected, _) => row.rejected += 1,
            (_, Some(1)) => row.approved_as_is += 1,
            (_, Some(_)) => row.edited_then_approved += 1,
            (_, None) => row.pending += 1,
        }
        if outcome.call_agreed {
            row.call_agreed += 1;
        }
    }
    rows.into_values().collect()
}

/// `pushback pack stats` over the accounts' stores, counted together: a table, or with `json`
/// one JSON array.
pub fn stats(stores: &[Store], json: bool) -> Result<String> {
    let mut outcomes = Vec::new();
    for store in stores {
        outcomes.extend(store.draft_outcomes()?);
    }
    let rows = aggregate(&outcomes);
    if json {
        return Ok(serde_json::to_string(&rows)? + "\n");
    }
    if rows.is_empty() {
        return Ok("no drafts recorded with their template yet\n".into());
    }
    let mut out = format!(
        "{:<28} {:<26} {:>6} {:>6} {:>7} {:>8} {:>7} {:>6}\n",
        "pack", "template", "drafts", "as is", "edited", "rejected", "pending", "calls"
    );
    for row in rows {
        let pack = row
            .pack
            .as_ref()
            .map_or("(own templates)".to_string(), PackLabel::to_string);
        out.push_str(&format!(
            "{pack:<28} {:<26} {:>6} {:>6} {:>7} {:>8} {:>7} {:>6}\n",
            row.template,
            row.drafts,
            row.approved_as_is,
            row.edited_then_approved,
            row.rejected,
            row.pending,
            row.call_agreed
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/packs")
            .join(name)
    }

    #[test]
    fn the_built_in_pack_passes_its_own_check() {
        let report = check(Path::new(env!("CARGO_MANIFEST_DIR")), None);
        assert!(report.passed(), "{}", report.render_text());
        assert_eq!(report.pack.unwrap().name, "pushback-default");
        // 9 sample mails x 2 (with and without times) x 10 categories x (reply + 2 follow-ups).
        assert_eq!(report.rendered, 9 * 2 * 10 * 3);
    }

    #[test]
    fn every_kind_of_problem_is_reported_at_its_file() {
        let dir = fixture("broken");
        let report = check(&dir, None);
        assert!(!report.passed());
        assert_eq!(report.max_words, 120, "the pack's [check] max-words");
        let at = |file: &str, line: Option<usize>, says: &str| {
            let file = dir.join(file).display().to_string();
            assert!(
                report.problems.iter().any(|p| p.severity == Severity::Error
                    && p.file == file
                    && p.line == line
                    && p.message.contains(says)),
                "{file} line {line:?}: {says:?} in\n{}",
                report.render_text()
            );
        };
        at("pack.toml", Some(9), "[follow-up] max-follow-ups");
        at("rules.toml", Some(10), "weight");
        at("templates/portal.txt", None, "missing: portal mail");
        at(
            "templates/fallback.txt",
            None,
            "missing: mail of no category",
        );
        at("templates/follow_up.txt", None, "missing: the follow-up");
        at("templates/rfp.txt", Some(6), "unknown variable `buyer.nme`");
        at(
            "templates/rfq.txt",
            Some(1),
            "placeholder `[CUSTOMER NAME]`",
        );
        at("templates/rfi.txt", Some(3), "placeholder `TODO`");
        at("templates/tender.txt", None, "more than 120");
        assert_eq!(
            report.problems.len(),
            9,
            "each problem once:\n{}",
            report.render_text()
        );
    }

    #[test]
    fn the_word_limit_flag_overrides_the_pack() {
        let report = check(&fixture("broken"), Some(1000));
        assert_eq!(report.max_words, 1000);
        assert!(!report.problems.iter().any(|p| p.message.contains("words")));
    }

    #[test]
    fn an_unreadable_manifest_is_the_only_problem() {
        let dir = tempfile::tempdir().unwrap();
        let report = check(dir.path(), None);
        assert_eq!(report.problems.len(), 1);
        assert_eq!(
            report.problems[0].file,
            dir.path().join("pack.toml").display().to_string()
        );
        assert!(report.pack.is_none());
    }

    #[test]
    fn placeholders_are_caught_and_addresses_are_not() {
        for text in [
            "{{ x }}",
            "{% if %}",
            "TODO",
            "TBD",
            "XXX",
            "[NAME]",
            "<first name>",
        ] {
            assert!(PLACEHOLDER.is_match(text), "{text}");
        }
        for text in [
            "Dana <dana@city.example>",
            "today",
            "[1]",
            "Regards, Alex",
            "<https://portal.example>",
        ] {
            assert!(!PLACEHOLDER.is_match(text), "{text}");
        }
    }

    #[test]
    fn known_variables_are_paths_into_the_context() {
        let known = known_variables();
        for variable in [
            "greeting",
            "buyer.contact.first_name",
            "follow_up.last",
            "deadlines.all",
            "stakeholders.business",
        ] {
            assert!(is_known(&known, variable), "{variable}");
        }
        for variable in ["buyer.nme", "gretting", "identity.phone"] {
            assert!(!is_known(&known, variable), "{variable}");
        }
    }

    fn outcome(
        template: &str,
        version: &str,
        status: DraftStatus,
        approved_version: Option<i64>,
        call_agreed: bool,
    ) -> DraftOutcome {
        DraftOutcome {
            source: TemplateSource {
                template: template.into(),
                pack: Some(PackLabel {
                    name: "emea".into(),
                    version: version.into(),
                }),
            },
            status,
            approved_version,
            call_agreed,
        }
    }

    #[test]
    fn stats_count_each_template_of_each_pack_version() {
        let rows = aggregate(&[
            outcome("rfp.txt", "1", DraftStatus::Sent, Some(1), true),
            outcome("rfp.txt", "1", DraftStatus::Sent, Some(3), false),
            outcome("rfp.txt", "1", DraftStatus::Rejected, None, false),
            outcome("rfp.txt", "1", DraftStatus::Pending, None, false),
            outcome("rfp.txt", "2", DraftStatus::Approved, Some(1), false),
            outcome("rfq.txt", "1", DraftStatus::Sent, Some(2), true),
        ]);
        let summary: Vec<(&str, &str, [usize; 6])> = rows
            .iter()
            .map(|r| {
                (
                    r.template.as_str(),
                    r.pack.as_ref().unwrap().version.as_str(),
                    [
                        r.drafts,
                        r.approved_as_is,
                        r.edited_then_approved,
                        r.rejected,
                        r.pending,
                        r.call_agreed,
                    ],
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("rfp.txt", "1", [4, 1, 1, 1, 1, 1]),
                ("rfq.txt", "1", [1, 0, 1, 0, 0, 1]),
                ("rfp.txt", "2", [1, 1, 0, 0, 0, 0]),
            ]
        );
    }
}

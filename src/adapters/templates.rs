//! The reply templates: the built-in set shipped in `templates/` (embedded in the binary) or a
//! team lead's directory, loaded into one minijinja environment, checked and rendered against a
//! `DraftContext`. Errors name the template file and line. Choosing the category and composing
//! the message are left to the core.

use crate::core::draft::{self, DraftContext, FollowUpInfo};
use crate::core::model::Category;
use chrono::{DateTime, TimeZone, Utc};
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// Enough for any sensible reply template; a template stuck in a runaway loop stops here.
const FUEL: u64 = 50_000;

/// Used for `Category::None` and, in a team lead's directory, for every category it lacks.
const FALLBACK: &str = "fallback.txt";

/// Every follow-up on an unanswered reply, whatever the category.
const FOLLOW_UP: &str = "follow_up.txt";

/// The shipped templates. Partials (included by the others) start with '_'.
const BUILTIN: [(&str, &str); 13] = [
    ("rfp.txt", include_str!("../../templates/rfp.txt")),
    ("rfq.txt", include_str!("../../templates/rfq.txt")),
    ("rfi.txt", include_str!("../../templates/rfi.txt")),
    ("tender.txt", include_str!("../../templates/tender.txt")),
    ("portal.txt", include_str!("../../templates/portal.txt")),
    (
        "questionnaire.txt",
        include_str!("../../templates/questionnaire.txt"),
    ),
    (
        "pricing_only.txt",
        include_str!("../../templates/pricing_only.txt"),
    ),
    (
        "demo_request.txt",
        include_str!("../../templates/demo_request.txt"),
    ),
    (
        "procurement_gatekeeper.txt",
        include_str!("../../templates/procurement_gatekeeper.txt"),
    ),
    (FALLBACK, include_str!("../../templates/fallback.txt")),
    (FOLLOW_UP, include_str!("../../templates/follow_up.txt")),
    (
        "_next_step.txt",
        include_str!("../../templates/_next_step.txt"),
    ),
    (
        "_signature.txt",
        include_str!("../../templates/_signature.txt"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read templates from {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load {}: {detail}", at(file, *line))]
    Syntax {
        file: String,
        line: Option<usize>,
        detail: String,
    },
    #[error("cannot render {}: {detail}", at(file, *line))]
    Render {
        file: String,
        line: Option<usize>,
        detail: String,
    },
    #[error("cannot find template `{name}`; known templates: {known}")]
    UnknownTemplate { name: String, known: String },
}

fn at(file: &str, line: Option<usize>) -> String {
    match line {
        Some(line) => format!("{file} line {line}"),
        None => file.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The template cannot produce a draft.
    Error,
    /// Worth knowing, drafts still work (a category using a fallback, an unused file).
    Notice,
}

/// What `Templates::check` found, located at a file and, where known, a line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Problem {
    pub severity: Severity,
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Notice => "notice",
        };
        write!(
            f,
            "{severity}: {}: {}",
            at(&self.file, self.line),
            self.message
        )
    }
}

/// A loaded, syntax-checked set of reply templates.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    /// Template name -> where it came from ("templates/rfp.txt" or the team lead's path).
    origins: BTreeMap<String, String>,
    /// Category -> the template name that renders it.
    assigned: BTreeMap<Category, String>,
    /// What loading decided that a team lead should hear about (fallbacks, unused files).
    notices: Vec<Problem>,
    /// The names read from a team lead's directory (the rest are built in).
    from_dir: BTreeSet<String>,
}

impl Templates {
    /// The shipped templates, embedded at build time.
    pub fn builtin() -> Templates {
        let mut templates = Templates::empty();
        for (name, source) in BUILTIN {
            templates
                .add(name, source.to_string(), format!("templates/{name}"))
                .expect("the built-in templates parse (covered by tests)");
        }
        for category in all_categories() {
            templates.assigned.insert(category, template_file(category));
        }
        templates
    }

    /// A team lead's directory of `*.txt` templates. Each file overrides the built-in one of the
    /// same name; a category without a file uses the directory's `fallback.txt` when it has one,
    /// else the built-in template. `check` reports each such fallback.
    pub fn load(dir: &Path) -> Result<Templates, Error> {
        let io = |source| Error::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let path = entry.map_err(io)?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if path.is_file() && name.ends_with(".txt") {
                let source = std::fs::read_to_string(&path).map_err(|source| Error::Io {
                    path: path.clone(),
                    source,
                })?;
                files.insert(name.to_string(), (source, path.display().to_string()));
            }
        }
        Templates::from_files(dir, files)
    }

    /// A team lead's templates as `load` read them from `dir`: file name -> (source, where it came
    /// from). No IO; the fuzz target `template` loads hostile template text through here.
    pub fn from_files(
        dir: &Path,
        files: BTreeMap<String, (String, String)>,
    ) -> Result<Templates, Error> {
        let names: Vec<String> = files.keys().cloned().collect();
        let dir_has = |name: &str| names.iter().any(|n| n == name);
        let mut templates = Templates::builtin();
        let known: Vec<String> = BUILTIN.iter().map(|(n, _)| n.to_string()).collect();
        for (name, (source, origin)) in files {
            if !known.contains(&name) && !name.starts_with('_') {
                templates.notices.push(Problem {
                    severity: Severity::Notice,
                    file: origin.clone(),
                    line: None,
                    message: "not used for any category (partials start with '_'; categories are \
                              named like rfp.txt)"
                        .into(),
                });
            }
            templates.add(&name, source, origin)?;
            templates.from_dir.insert(name);
        }
        for category in Category::PROCUREMENT {
            let file = template_file(category);
            if dir_has(&file) {
                continue;
            }
            let (used, what) = if dir_has(FALLBACK) {
                (FALLBACK.to_string(), "this directory's fallback")
            } else {
                (file.clone(), "the built-in template")
            };
            templates.notices.push(Problem {
                severity: Severity::Notice,
                file: dir.join(&file).display().to_string(),
                line: None,
                message: format!("missing: {category} mail uses {what}"),
            });
            templates.assigned.insert(category, used);
        }
        if !dir_has(FOLLOW_UP) {
            templates.notices.push(Problem {
                severity: Severity::Notice,
                file: dir.join(FOLLOW_UP).display().to_string(),
                line: None,
                message: "missing: follow-ups use the built-in template".into(),
            });
        }
        Ok(templates)
    }

    /// The follow-up template's file name.
    pub const FOLLOW_UP: &'static str = FOLLOW_UP;

    /// The draft body for a mail of `category`.
    pub fn render(&self, category: Category, ctx: &DraftContext) -> Result<String, Error> {
        self.render_template(self.template_for(category), ctx)
    }

    /// The file name of the template that renders mail of `category` ("rfp.txt", or
    /// "fallback.txt" for a category a directory lacks).
    pub fn template_for(&self, category: Category) -> &str {
        self.assigned
            .get(&category)
            .map_or(FALLBACK, String::as_str)
    }

    /// Whether template `name` was read from a directory rather than built in.
    pub fn is_from_dir(&self, name: &str) -> bool {
        self.from_dir.contains(name)
    }

    /// The body of a follow-up: `ctx` must carry its `follow_up` (`DraftContext::with_follow_up`).
    pub fn render_follow_up(&self, ctx: &DraftContext) -> Result<String, Error> {
        self.render_template(FOLLOW_UP, ctx)
    }

    /// Whether `name`, as `render_named` takes it, is the follow-up template: its context needs
    /// `DraftContext::with_follow_up`.
    pub fn is_follow_up(name: &str) -> bool {
        name.strip_suffix(".txt").unwrap_or(name) == FOLLOW_UP.trim_end_matches(".txt")
    }

    /// Every template's file name ("rfp.txt", "_signature.txt") with where it came from, in name
    /// order: what the team lead's view lists.
    pub fn origins(&self) -> impl Iterator<Item = (&str, &str)> {
        self.origins.iter().map(|(n, o)| (n.as_str(), o.as_str()))
    }

    /// The dotted variables template `name` reads without setting them ("buyer.contact.name"),
    /// in every branch, rendered or not.
    pub fn undeclared_variables(&self, name: &str) -> Vec<String> {
        let mut variables: Vec<String> = self
            .env
            .get_template(name)
            .map(|t| t.undeclared_variables(true).into_iter().collect())
            .unwrap_or_default();
        variables.sort();
        variables
    }

    /// The text of template file `name` as loaded.
    pub fn source(&self, name: &str) -> Option<String> {
        let template = self.env.get_template(name).ok()?;
        Some(template.source().to_string())
    }

    /// Render one template by name ("rfp", "rfp.txt", "fallback", "_signature"), for previews.
    pub fn render_named(&self, name: &str, ctx: &DraftContext) -> Result<String, Error> {
        if let Some(category) = Category::parse(name) {
            return self.render(category, ctx);
        }
        let file = if name.ends_with(".txt") {
            name.to_string()
        } else {
            format!("{name}.txt")
        };
        if !self.origins.contains_key(&file) {
            return Err(Error::UnknownTemplate {
                name: name.to_string(),
                known: self.origins.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        self.render_template(&file, ctx)
    }

    /// Render every category against the contexts of `check_contexts`, and the follow-up against
    /// those of `follow_up_contexts`, so every branch a real mail can take is exercised. Returns
    /// the problems, fallbacks included.
    pub fn check(&self) -> Vec<Problem> {
        let mut problems = self.notices.clone();
        for category in all_categories() {
            let first_reply = self.assigned[&category].as_str();
            let runs = check_contexts(category)
                .into_iter()
                .map(|(which, ctx)| {
                    (
                        first_reply,
                        format!("{category} with the {which} context"),
                        ctx,
                    )
                })
                .chain(
                    follow_up_contexts(category)
                        .into_iter()
                        .map(|(which, ctx)| {
                            (
                                FOLLOW_UP,
                                format!("a {category} follow-up with the {which} context"),
                                ctx,
                            )
                        }),
                );
            for (name, what, ctx) in runs {
                if let Some(problem) = self.check_one(name, &what, &ctx)
                    && !problems.contains(&problem)
                {
                    problems.push(problem);
                }
            }
        }
        problems
    }

    fn check_one(&self, name: &str, what: &str, ctx: &DraftContext) -> Option<Problem> {
        Some(match self.render_template(name, ctx) {
            Ok(text) if text.contains("{{") || text.contains("{%") => Problem {
                severity: Severity::Error,
                file: self.origin(name),
                line: None,
                message: format!("output for {what} contains an unrendered `{{{{` or `{{%`"),
            },
            Ok(_) => return None,
            Err(Error::Render { file, line, detail }) => Problem {
                severity: Severity::Error,
                file,
                line,
                message: format!("{detail} (rendering {what})"),
            },
            Err(other) => Problem {
                severity: Severity::Error,
                file: self.origin(name),
                line: None,
                message: other.to_string(),
            },
        })
    }

    fn empty() -> Templates {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // Debug mode keeps the template source on errors, which `describe` needs to name the
        // undefined expression; its default is off in release builds, which the daemon runs.
        env.set_debug(true);
        env.set_fuel(Some(FUEL));
        // Plain text: block tags on their own line leave no blank line behind, and nothing is
        // HTML-escaped.
        env.set_syntax(
            SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .expect("the default delimiters are valid"),
        );
        env.set_auto_escape_callback(|_| AutoEscape::None);
        Templates {
            env,
            origins: BTreeMap::new(),
            assigned: BTreeMap::new(),
            notices: Vec::new(),
            from_dir: BTreeSet::new(),
        }
    }

    fn add(&mut self, name: &str, source: String, origin: String) -> Result<(), Error> {
        self.env
            .add_template_owned(name.to_string(), source)
            .map_err(|e| Error::Syntax {
                file: origin.clone(),
                line: e.line(),
                detail: describe(&e),
            })?;
        self.origins.insert(name.to_string(), origin);
        Ok(())
    }

    /// Where template `name` came from: the team lead's file, or `templates/NAME` built in.
    pub fn origin(&self, name: &str) -> String {
        self.origins
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    fn render_template(&self, name: &str, ctx: &DraftContext) -> Result<String, Error> {
        let render_error = |e: minijinja::Error| {
            // An error inside an included partial is reported by the partial's own name.
            let mut innermost = &e;
            while let Some(inner) = std::error::Error::source(innermost)
                .and_then(|s| s.downcast_ref::<minijinja::Error>())
            {
                innermost = inner;
            }
            Error::Render {
                file: self.origin(innermost.name().unwrap_or(name)),
                line: innermost.line(),
                detail: describe(innermost),
            }
        };
        let template = self.env.get_template(name).map_err(render_error)?;
        template.render(Serde(ctx)).map_err(render_error)
    }
}

/// The error text without minijinja's location suffix: the file and line are ours to add. An
/// undefined value is named by the expression that produced it, `buyer.nme`.
fn describe(e: &minijinja::Error) -> String {
    if e.kind() == ErrorKind::UndefinedError
        && let (Some(range), Some(source)) = (e.range(), e.template_source())
        && let Some(expr) = source.get(range)
    {
        return format!("undefined variable `{}`", expr.trim());
    }
    e.detail()
        .map_or_else(|| e.kind().to_string(), |d| format!("{}: {d}", e.kind()))
}

/// The sample for `category` and its variants: the no-contact switch flipped, written to a
/// business owner with nobody else to invite, without meeting times, and sparse (nothing
/// extracted) with and without a no-contact clause or times (then in the rep's zone only).
fn check_contexts(category: Category) -> Vec<(&'static str, DraftContext)> {
    let sample = DraftContext::sample(category);
    let mut without_slots = sample.clone();
    without_slots.proposed_slots.clear();
    let mut sparse_with_slots = DraftContext::sparse(category);
    sparse_with_slots.proposed_slots = sample
        .proposed_slots
        .iter()
        .map(|slot| draft::SlotContext {
            text: slot.rep_text.clone(),
            buyer_text: None,
            ..slot.clone()
        })
        .collect();
    let mut flipped = sample.clone();
    flipped.no_contact.applies = !flipped.no_contact.applies;
    let mut to_business_owner = sample.clone();
    to_business_owner.no_contact.applies = false;
    to_business_owner.stakeholders.business_names = None;
    to_business_owner.buyer.contact.role = "business".to_string();
    let mut sparse_no_contact = DraftContext::sparse(category);
    sparse_no_contact.no_contact.applies = true;
    vec![
        ("sample", sample),
        ("sample with the no-contact switch flipped", flipped),
        ("business-owner contact", to_business_owner),
        ("sample without meeting times", without_slots),
        ("sparse", DraftContext::sparse(category)),
        ("sparse no-contact", sparse_no_contact),
        ("sparse with meeting times", sparse_with_slots),
    ]
}

/// Each of `check_contexts` as the first of two follow-ups, written while the questions are still
/// open, and as the last, written after they closed.
fn follow_up_contexts(category: Category) -> Vec<(String, DraftContext)> {
    let rep_tz = chrono_tz::Europe::London;
    let at = |day| -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 2, day, 10, 0, 0)
            .single()
            .expect("a valid date")
    };
    let first = FollowUpInfo {
        number: 1,
        max: 2,
        sent_at: at(16),
        business_days: 3,
    };
    let last = FollowUpInfo {
        number: 2,
        sent_at: at(19),
        business_days: 5,
        ..first
    };
    check_contexts(category)
        .into_iter()
        .flat_map(|(which, ctx)| {
            [
                (
                    format!("{which}, follow-up 1 of 2"),
                    ctx.clone().with_follow_up(&first, rep_tz, at(19)),
                ),
                (
                    format!("{which}, follow-up 2 of 2"),
                    ctx.with_follow_up(&last, rep_tz, at(19) + chrono::Duration::days(14)),
                ),
            ]
        })
        .collect()
}

fn all_categories() -> impl Iterator<Item = Category> {
    Category::PROCUREMENT.into_iter().chain([Category::None])
}

fn template_file(category: Category) -> String {
    match category {
        Category::None => FALLBACK.to_string(),
        other => format!("{other}.txt"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    /// The words a buyer reads before the signature.
    fn words_before_signature(text: &str) -> usize {
        let body = text.split("Best regards,").next().unwrap();
        body.split_whitespace().count()
    }

    #[test]
    fn builtin_templates_pass_their_own_check() {
        assert_eq!(Templates::builtin().check(), Vec::<Problem>::new());
    }

    #[test]
    fn every_template_renders_for_every_category_and_context() {
        let templates = Templates::builtin();
        let mut rendered = 0;
        for (name, _) in BUILTIN {
            for category in all_categories() {
                // The follow-up needs its `follow_up`; every other template renders without one.
                let contexts: Vec<(String, DraftContext)> = if name == FOLLOW_UP {
                    follow_up_contexts(category)
                } else {
                    check_contexts(category)
                        .into_iter()
                        .map(|(which, ctx)| (which.to_string(), ctx))
                        .collect()
                };
                for (which, ctx) in contexts {
                    let text = templates
                        .render_named(name, &ctx)
                        .unwrap_or_else(|e| panic!("{name}, {category}, {which}: {e}"));
                    assert!(!text.trim().is_empty(), "{name} {which}");
                    assert!(
                        !text.contains("{{") && !text.contains("{%") && !text.contains("none"),
                        "{name}, {category}, {which}:\n{text}"
                    );
                    rendered += 1;
                }
            }
        }
        assert_eq!(rendered, (BUILTIN.len() + 1) * 10 * 7);
    }

    #[test]
    fn drafts_are_brief_and_ask_for_a_conversation() {
        let templates = Templates::builtin();
        for category in all_categories() {
            let first_replies = check_contexts(category).into_iter().map(|(which, ctx)| {
                let text = templates.render(category, &ctx).unwrap();
                (which.to_string(), ctx, text)
            });
            let follow_ups = follow_up_contexts(category)
                .into_iter()
                .map(|(which, ctx)| {
                    let text = templates.render_follow_up(&ctx).unwrap();
                    (which, ctx, text)
                });
            for (which, ctx, text) in first_replies.chain(follow_ups) {
                assert!(
                    text.contains("30-minute") || text.contains("Could you arrange"),
                    "{category} {which}: no ask\n{text}"
                );
                let words = words_before_signature(&text);
                assert!(words <= 180, "{category} {which}: {words} words\n{text}");
                assert!(text.starts_with("Hi "), "{category} {which}");
                assert!(text.trim_end().ends_with(&ctx.identity.email));
                assert!(!text.contains("\n\n\n"), "{category} {which}:\n{text}");
            }
        }
    }

    #[test]
    fn no_contact_clause_routes_the_ask_through_procurement_in_every_template() {
        let templates = Templates::builtin();
        for category in all_categories() {
            let mut ctx = DraftContext::sample(category);
            ctx.no_contact.applies = true;
            let text = templates.render(category, &ctx).unwrap();
            assert!(text.contains("Could you arrange"), "{category}:\n{text}");
            assert!(text.contains("clarification meeting"), "{category}");
            assert!(!text.contains("30-minute call"), "{category}:\n{text}");
            assert!(text.contains("Maria Lopez (VP Clinical Operations)"));

            ctx.no_contact.applies = false;
            let text = templates.render(category, &ctx).unwrap();
            assert!(
                text.contains("Would one of these times work for a 30-minute conversation"),
                "{category}:\n{text}"
            );
            assert!(!text.contains("clarification meeting"), "{category}");
            ctx.proposed_slots.clear();
            let text = templates.render(category, &ctx).unwrap();
            assert!(
                text.contains("30-minute call this week or next"),
                "{category}:\n{text}"
            );
        }
    }

    #[test]
    fn next_step_offers_the_slots_when_there_are_some() {
        let templates = Templates::builtin();
        let mut ctx = DraftContext::sample(Category::Rfp);
        assert_eq!(ctx.proposed_slots.len(), 3);
        let text = templates.render_named("_next_step", &ctx).unwrap();
        assert_eq!(
            text.trim_end(),
            "Would one of these times work for a 30-minute conversation, bringing in Maria Lopez \
             (VP Clinical Operations) and Tom Reed (Director of IT)?\n\n\
             - Tue 16 Feb, 10:00-10:30 EST (15:00-15:30 GMT)\n\
             - Wed 17 Feb, 09:30-10:00 EST (14:30-15:00 GMT)\n\
             - Thu 18 Feb, 11:00-11:30 EST (16:00-16:30 GMT)\n\n\
             Hearing their goals first will make whatever we send you far more useful. If these \
             times do not suit, suggest one that does."
        );
        // The length comes from the slots, and one slot is offered as one.
        ctx.proposed_slots.truncate(1);
        ctx.proposed_slots[0].minutes = 45;
        let text = templates.render_named("_next_step", &ctx).unwrap();
        assert!(
            text.starts_with("Would this time work for a 45-minute conversation, bringing in"),
            "{text}"
        );
        assert!(
            text.contains("If it does not suit, suggest one that does."),
            "{text}"
        );
        assert_eq!(text.matches("\n- ").count(), 1, "{text}");

        // Without slots, today's open ask, word for word.
        ctx.proposed_slots.clear();
        let text = templates.render_named("_next_step", &ctx).unwrap();
        assert_eq!(
            text.trim_end(),
            "Could we set up a 30-minute call this week or next, bringing in Maria Lopez (VP \
             Clinical Operations) and Tom Reed (Director of IT)? Hearing their goals first will \
             make whatever we send you far more useful."
        );
    }

    #[test]
    fn under_a_no_contact_clause_the_slots_are_offered_to_procurement() {
        let templates = Templates::builtin();
        let ctx = DraftContext::sample(Category::Tender);
        assert!(ctx.no_contact.applies);
        let text = templates.render_named("_next_step", &ctx).unwrap();
        assert_eq!(
            text.trim_end(),
            "I understand that all contact during this process goes through you, and we will \
             respect that. Could you arrange a short clarification meeting or pre-proposal session \
             with Maria Lopez (VP Clinical Operations) and Tom Reed (Director of IT), within the \
             rules of the process? We could make any of these times:\n\n\
             - Tue 16 Feb, 10:00-10:30 EST (15:00-15:30 GMT)\n\
             - Wed 17 Feb, 09:30-10:00 EST (14:30-15:00 GMT)\n\
             - Thu 18 Feb, 11:00-11:30 EST (16:00-16:30 GMT)\n\n\
             If a meeting is not possible, I would be glad to send a few written questions for you \
             to route to them, with the answers shared as your process requires."
        );
        let mut one = ctx.clone();
        one.proposed_slots.truncate(1);
        let text = templates.render_named("_next_step", &one).unwrap();
        assert!(
            text.contains("within the rules of the process? We could make this time:\n\n- Tue"),
            "{text}"
        );
        let mut without = ctx.clone();
        without.proposed_slots.clear();
        let text = templates.render_named("_next_step", &without).unwrap();
        assert_eq!(
            text.trim_end(),
            "I understand that all contact during this process goes through you, and we will \
             respect that. Could you arrange a short clarification meeting or pre-proposal session \
             with Maria Lopez (VP Clinical Operations) and Tom Reed (Director of IT), within the \
             rules of the process? If a meeting is not possible, I would be glad to send a few \
             written questions for you to route to them, with the answers shared as your process \
             requires."
        );
    }

    #[test]
    fn follow_ups_nudge_then_say_the_last_is_the_last() {
        let templates = Templates::builtin();
        let contexts = follow_up_contexts(Category::Rfp);
        let (_, first) = &contexts[0];
        let (_, last) = &contexts[1];
        let text = templates.render_follow_up(first).unwrap();
        assert!(
            text.starts_with(
                "Hi Dana,\n\nI wanted to follow up on my note of 16 February 2027 about RFP \
                 #2027-014 (Patient Analytics Platform). "
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "With questions closing on Monday 1 March 2027, 17:00 America/New_York, a \
                 conversation before then"
            ),
            "{text}"
        );
        assert!(text.contains("Would one of these times work"), "{text}");
        assert!(!text.contains("last nudge"), "{text}");

        // Written after the cut-off: the last one does not quote it back.
        let text = templates.render_follow_up(last).unwrap();
        assert!(
            text.contains("I am following up one last time on my note of 19 February 2027"),
            "{text}"
        );
        assert!(!text.contains("1 March 2027"), "{text}");
        assert!(
            text.contains(
                "This is my last nudge: if a conversation does not work for you, we will go ahead \
                 and respond through your process as it stands."
            ),
            "{text}"
        );
        assert!(
            text.trim_end().ends_with("alex@northwind.example"),
            "{text}"
        );

        // A middle one is neither the first nor the last.
        let mut middle = first.clone();
        middle.follow_up.as_mut().unwrap().number = 2;
        middle.follow_up.as_mut().unwrap().max = 3;
        let text = templates.render_follow_up(&middle).unwrap();
        assert!(
            text.contains("I am following up again on my note"),
            "{text}"
        );
        assert!(!text.contains("last nudge"), "{text}");
    }

    #[test]
    fn follow_ups_keep_the_no_contact_rule() {
        let templates = Templates::builtin();
        for (which, ctx) in follow_up_contexts(Category::Tender) {
            let text = templates.render_follow_up(&ctx).unwrap();
            assert_eq!(
                text.contains("Could you arrange"),
                ctx.no_contact.applies,
                "{which}:\n{text}"
            );
            assert_eq!(
                text.contains("Would one of these times work"),
                !ctx.no_contact.applies && !ctx.proposed_slots.is_empty(),
                "{which}:\n{text}"
            );
        }
    }

    #[test]
    fn the_follow_up_template_is_known_by_its_names() {
        assert!(Templates::is_follow_up("follow_up"));
        assert!(Templates::is_follow_up("follow_up.txt"));
        assert!(!Templates::is_follow_up("rfp"));
        assert!(!Templates::is_follow_up("_next_step.txt"));
    }

    #[test]
    fn business_stakeholders_are_named_and_missing_ones_asked_for() {
        let templates = Templates::builtin();
        let text = templates
            .render(Category::Rfp, &DraftContext::sample(Category::Rfp))
            .unwrap();
        assert!(
            text.contains("Maria Lopez (VP Clinical Operations) and Tom Reed (Director of IT)"),
            "{text}"
        );
        let text = templates
            .render(Category::Rfp, &DraftContext::sparse(Category::Rfp))
            .unwrap();
        assert!(
            text.contains("whoever owns this problem on the business side"),
            "{text}"
        );
        assert!(text.starts_with("Hi team,"), "{text}");
        let (_, mut ctx) = check_contexts(Category::Rfp).swap_remove(2);
        let text = templates.render(Category::Rfp, &ctx).unwrap();
        assert!(
            text.contains("Would one of these times work for a 30-minute conversation?"),
            "{text}"
        );
        assert!(
            text.contains("You are welcome to bring anyone else"),
            "{text}"
        );
        ctx.proposed_slots.clear();
        let text = templates.render(Category::Rfp, &ctx).unwrap();
        assert!(
            text.contains("talk through what you want to achieve"),
            "{text}"
        );
    }

    #[test]
    fn rfp_and_tender_mention_the_question_cut_off_unless_ambiguous() {
        let templates = Templates::builtin();
        for category in [Category::Rfp, Category::Tender] {
            let mut ctx = DraftContext::sample(category);
            let text = templates.render(category, &ctx).unwrap();
            assert!(
                text.contains("Monday 1 March 2027, 17:00 America/New_York"),
                "{text}"
            );
            ctx.deadlines.questions.as_mut().unwrap().ambiguous = true;
            let text = templates.render(category, &ctx).unwrap();
            assert!(!text.contains("1 March 2027"), "{text}");
        }
    }

    #[test]
    fn a_syntax_error_is_a_load_error_naming_file_and_line() {
        let dir = dir_with(&[(
            "rfp.txt",
            "Hi {{ greeting }},\n\n{% if reference %}\nno end\n",
        )]);
        let err = Templates::load(dir.path()).unwrap_err();
        let text = err.to_string();
        let file = dir.path().join("rfp.txt").display().to_string();
        assert!(
            text.starts_with(&format!("cannot load {file} line ")),
            "{text}"
        );
        assert!(matches!(err, Error::Syntax { line: Some(_), .. }), "{text}");
    }

    #[test]
    fn an_undefined_variable_names_file_line_and_expression() {
        let dir = dir_with(&[("rfp.txt", "Hi {{ greeting }},\n\nFor {{ buyer.nme }}.\n")]);
        let templates = Templates::load(dir.path()).unwrap();
        let err = templates
            .render(Category::Rfp, &DraftContext::sample(Category::Rfp))
            .unwrap_err();
        let file = dir.path().join("rfp.txt").display().to_string();
        assert_eq!(
            err.to_string(),
            format!("cannot render {file} line 3: undefined variable `buyer.nme`")
        );
        let problems = templates.check();
        assert!(
            problems
                .iter()
                .any(|p| p.severity == Severity::Error && p.file == file && p.line == Some(3)),
            "{problems:?}"
        );
    }

    #[test]
    fn an_error_inside_a_partial_names_the_partial() {
        let dir = dir_with(&[("_signature.txt", "Best,\n{{ identity.nickname }}\n")]);
        let templates = Templates::load(dir.path()).unwrap();
        let err = templates
            .render(Category::Rfq, &DraftContext::sample(Category::Rfq))
            .unwrap_err()
            .to_string();
        let file = dir.path().join("_signature.txt").display().to_string();
        assert_eq!(
            err,
            format!("cannot render {file} line 2: undefined variable `identity.nickname`")
        );
    }

    #[test]
    fn builtin_errors_name_the_shipped_file() {
        let templates = Templates::builtin();
        let err = templates
            .render_named("_signature", &DraftContext::sample(Category::Rfp))
            .map(|_| ())
            .and_then(|()| templates.render_named("no_such", &DraftContext::sample(Category::Rfp)))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot find template `no_such`; known templates: "),
            "{err}"
        );
        assert_eq!(templates.origin("rfp.txt"), "templates/rfp.txt");
    }

    #[test]
    fn missing_categories_use_the_builtin_template_and_check_says_so() {
        let dir = dir_with(&[("rfp.txt", "Hi {{ greeting }}, our own RFP reply.\n")]);
        let templates = Templates::load(dir.path()).unwrap();
        let ctx = DraftContext::sample(Category::Rfq);
        assert_eq!(
            templates.render(Category::Rfp, &ctx).unwrap(),
            "Hi Dana, our own RFP reply."
        );
        assert_eq!(
            templates.render(Category::Rfq, &ctx).unwrap(),
            Templates::builtin().render(Category::Rfq, &ctx).unwrap()
        );
        let problems = templates.check();
        assert_eq!(problems.len(), 9, "{problems:?}");
        assert!(problems.iter().all(|p| p.severity == Severity::Notice));
        let rfq = dir.path().join("rfq.txt").display().to_string();
        assert!(
            problems
                .iter()
                .any(|p| p.file == rfq
                    && p.message == "missing: rfq mail uses the built-in template")
        );
        assert!(problems.iter().any(|p| p.file.ends_with("follow_up.txt")
            && p.message == "missing: follow-ups use the built-in template"));
    }

    #[test]
    fn missing_categories_use_the_directory_fallback_when_there_is_one() {
        let dir = dir_with(&[
            ("fallback.txt", "Hi {{ greeting }}, our house reply.\n"),
            ("rfq2.txt", "a typo'd name\n"),
        ]);
        let templates = Templates::load(dir.path()).unwrap();
        let ctx = DraftContext::sample(Category::Portal);
        assert_eq!(
            templates.render(Category::Portal, &ctx).unwrap(),
            "Hi Dana, our house reply."
        );
        let problems = templates.check();
        assert!(
            problems
                .iter()
                .any(|p| p.message == "missing: portal mail uses this directory's fallback")
        );
        assert!(
            problems
                .iter()
                .any(|p| p.file.ends_with("rfq2.txt") && p.message.starts_with("not used"))
        );
    }

    #[test]
    fn a_runaway_template_runs_out_of_fuel() {
        let dir = dir_with(&[(
            "rfp.txt",
            "{% for i in range(1000) %}{% for j in range(1000) %}.{% endfor %}{% endfor %}",
        )]);
        let templates = Templates::load(dir.path()).unwrap();
        let err = templates
            .render(Category::Rfp, &DraftContext::sample(Category::Rfp))
            .unwrap_err();
        assert!(err.to_string().contains("fuel"), "{err}");
    }

    // Fuel also pays for every byte a template makes (minijinja 3.1), so output and values built
    // with `*` and `~` are bounded too, not only loops.
    #[test]
    fn an_exploding_template_runs_out_of_fuel() {
        for source in [
            "{% for i in range(50) %}{{ \"x\" * 100000000 }}{% endfor %}",
            "{% set ns = namespace(s=\"xxxxxxxx\") %}{% for i in range(64) %}\
             {% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        ] {
            let dir = dir_with(&[("rfp.txt", source)]);
            let templates = Templates::load(dir.path()).unwrap();
            let err = templates
                .render(Category::Rfp, &DraftContext::sample(Category::Rfp))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("rfp.txt line 1: engine ran out of fuel"),
                "{err}"
            );
        }
    }

    // Guards the documentation: a context field added without a README entry fails here.
    #[test]
    fn every_context_variable_is_documented() {
        fn keys(value: &serde_json::Value, out: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (k, v) in map {
                        out.push(k.clone());
                        keys(v, out);
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| keys(v, out)),
                _ => {}
            }
        }
        let readme = include_str!("../../templates/README.md");
        let mut found = Vec::new();
        // The follow-up context is the fullest: the sample's keys, slots and `follow_up`.
        let (_, ctx) = follow_up_contexts(Category::Tender).swap_remove(0);
        assert!(!ctx.proposed_slots.is_empty() && ctx.follow_up.is_some());
        keys(&serde_json::to_value(ctx).unwrap(), &mut found);
        assert!(found.len() > 30);
        for key in found {
            assert!(
                [format!("`{key}`"), format!("`{key}."), format!(".{key}`")]
                    .iter()
                    .any(|form| readme.contains(form.as_str())),
                "templates/README.md does not document `{key}`"
            );
        }
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_it() {
        let err = Templates::load(Path::new("/nonexistent/pushback-templates")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot read templates from /nonexistent/pushback-templates"
        );
    }
}

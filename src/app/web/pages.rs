//! What each page of the approval page shows, and what each of its forms does. Every form ends in
//! a redirect to a page that says what happened (or why not), and every action is the command
//! line's own: `approval::save_edit`, `approval::approve` (recorded as approved via the web, then
//! sent through the outbox), `approval::reject`, `reminders::snooze` and `reminders::done`. The
//! store, mailbox and pipeline are opened per request from the config, as a command would.
//! Views are minijinja templates in `pages/`, escaped automatically (`.html`).

use super::Web;
use super::auth::{Flash, SessionView};
use super::original::OriginalView;
use crate::adapters::calendar;
use crate::adapters::maildir::Maildir;
use crate::adapters::store::{
    ApprovedVia, DraftRecord, DraftStatus, Reminder, ReminderStatus, Store,
};
use crate::app::approval::{self, DraftsFolder};
use crate::app::followups::Timekeeping;
use crate::app::{self, inspect, reminders};
use crate::config::{Config, MailboxAccess};
use crate::core::classify::BUILTIN_RULES;
use crate::core::followup::local_text;
use crate::core::model::{Classification, Facts, Reason, Stakeholder, StakeholderRole};
use crate::core::schedule::BusinessCalendar;
use anyhow::{Result, bail};
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{Duration, Utc};
use minijinja::Environment;
use minijinja::value::Serde;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// How many of the last scanned messages the team lead's view explains.
const RECENT_VERDICTS: u32 = 25;

const VIEWS: [(&str, &str); 7] = [
    ("base.html", include_str!("pages/base.html")),
    ("message.html", include_str!("pages/message.html")),
    ("drafts.html", include_str!("pages/drafts.html")),
    ("draft.html", include_str!("pages/draft.html")),
    ("reminders.html", include_str!("pages/reminders.html")),
    ("sent.html", include_str!("pages/sent.html")),
    ("lead.html", include_str!("pages/lead.html")),
];

fn views() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in VIEWS {
            env.add_template(name, source)
                .expect("the page templates parse (covered by tests)");
        }
        env
    })
}

fn render(name: &str, ctx: serde_json::Value) -> Result<Html<String>, PageError> {
    let html = views()
        .get_template(name)
        .and_then(|view| view.render(Serde(&ctx)))
        .map_err(|e| anyhow::anyhow!("cannot render {name}: {e:#}"))?;
    Ok(Html(html))
}

/// A page that only says something: a refusal, a missing draft, a failure.
pub fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    match render("message.html", json!({ "title": title, "text": text })) {
        Ok(html) => (status, html).into_response(),
        // Only if the built-in template itself were broken.
        Err(_) => (status, text.to_string()).into_response(),
    }
}

/// Why a page cannot be shown.
pub enum PageError {
    NotFound(String),
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for PageError {
    fn from(error: E) -> PageError {
        PageError::Failed(error.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::NotFound(what) => message_page(StatusCode::NOT_FOUND, "Not found", &what),
            PageError::Failed(error) => {
                tracing::warn!("approval page: {error:#}");
                message_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    &format!("{error:#}"),
                )
            }
        }
    }
}

type Page = Result<Html<String>, PageError>;

/// What every page shows around its own content.
#[derive(Serialize)]
struct Frame {
    csrf: String,
    flash: Option<Flash>,
    section: &'static str,
    rep: String,
}

fn frame(web: &Web, session: &SessionView, section: &'static str) -> Frame {
    let identity = &web.config().identity;
    Frame {
        csrf: session.csrf.clone(),
        flash: web.sessions().take_flash(session),
        section,
        rep: format!("{} <{}>", identity.name, identity.email),
    }
}

/// Shows what a form did on the page the browser goes to next.
fn report(web: &Web, session: &SessionView, outcome: Result<String>) {
    let flash = match outcome {
        Ok(text) => Flash {
            text: text.trim().to_string(),
            error: false,
        },
        Err(error) => Flash {
            text: format!("{error:#}"),
            error: true,
        },
    };
    web.sessions().set_flash(session, flash);
}

pub(super) fn open_store(config: &Config) -> Result<Store> {
    Ok(Store::open_account(&config.state_dir, &config.account)?)
}

/// The Maildir, when the mailbox is one (an IMAP mailbox is reached per action).
fn open_maildir(config: &Config) -> Result<Option<Maildir>> {
    match &config.mailbox.access {
        MailboxAccess::Maildir { path } => Ok(Some(app::open_maildir(path, config)?)),
        MailboxAccess::Imap(_) => Ok(None),
    }
}

fn calendar_of(config: &Config) -> BusinessCalendar {
    Timekeeping::of(config).calendar
}

/// Where an approved reply goes, in words, for the rep deciding to approve.
fn way_out(config: &Config) -> &'static str {
    match (&config.outgoing, &config.mailbox.access) {
        (Some(_), _) => "Approving sends the reply right away, exactly as shown.",
        (None, MailboxAccess::Maildir { .. }) => {
            "No [smtp] is configured: approving files the reply in your Sent folder and nothing \
             leaves this machine."
        }
        (None, MailboxAccess::Imap(_)) => {
            "No [smtp] is configured: approved replies wait until it is."
        }
    }
}

// ---- drafts --------------------------------------------------------------------------------

#[derive(Serialize)]
struct DraftLine {
    id: i64,
    /// With several accounts, whose draft it is.
    account: Option<String>,
    subject: String,
    recipient: String,
    category: String,
    status: &'static str,
    follow_up: u32,
    created: String,
}

impl DraftLine {
    fn of(draft: &DraftRecord, cal: &BusinessCalendar) -> DraftLine {
        DraftLine {
            id: draft.id,
            account: None,
            subject: draft.subject.clone(),
            recipient: draft.recipient.clone(),
            category: draft.category.as_str().to_string(),
            status: draft.status.as_str(),
            follow_up: draft.follow_up,
            created: local_text(draft.created_at, cal),
        }
    }
}

#[derive(Serialize)]
struct OutboxLine {
    draft: DraftLine,
    attempts: u32,
    last_error: Option<String>,
    next_attempt: Option<String>,
}

/// `/`: the drafts waiting for the rep, and what is in the outbox, of every account.
pub async fn drafts(State(web): State<Web>, Extension(session): Extension<SessionView>) -> Page {
    let config = web.config();
    let several = web.accounts().len() > 1;
    let mut pending = Vec::new();
    let mut outbox = Vec::new();
    for account in web.accounts() {
        let cal = calendar_of(account);
        let store = open_store(account)?;
        let line = |draft: &DraftRecord| DraftLine {
            account: several.then(|| draft.account.clone()),
            ..DraftLine::of(draft, &cal)
        };
        pending.extend(store.drafts(Some(DraftStatus::Pending))?.iter().map(line));
        for item in store.outbox_pending()? {
            let draft = approval::find(&store, item.draft_id)?;
            outbox.push(OutboxLine {
                draft: line(&draft),
                attempts: item.attempts,
                last_error: item.last_error,
                next_attempt: item.next_attempt_at.map(|t| local_text(t, &cal)),
            });
        }
    }
    render(
        "drafts.html",
        json!({ "frame": frame(&web, &session, "drafts"), "pending": pending, "outbox": outbox, "way_out": way_out(config) }),
    )
}

#[derive(Serialize)]
struct DraftView {
    #[serde(flatten)]
    line: DraftLine,
    pending: bool,
    version: i64,
    body: String,
    notes: Vec<String>,
    approval: Option<String>,
    /// The call times the draft offers, as written in it.
    slots: Vec<String>,
}

#[derive(Serialize)]
struct ReasonLine {
    signal: String,
    weight: String,
    matched: String,
    against: bool,
}

#[derive(Serialize)]
struct VerdictView {
    label: &'static str,
    category: String,
    score: String,
    reasons: Vec<ReasonLine>,
}

impl VerdictView {
    fn of(classification: &Classification) -> VerdictView {
        let mut reasons: Vec<&Reason> = classification.reasons.iter().collect();
        reasons.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
        VerdictView {
            label: classification.label.as_str(),
            category: classification.category.as_str().to_string(),
            score: format!("{:.2}", classification.score),
            reasons: reasons
                .into_iter()
                .map(|r| ReasonLine {
                    signal: r.signal.clone(),
                    weight: format!("{:+.2}", r.weight),
                    matched: r.matched.clone(),
                    against: r.weight < 0.0,
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct ReminderLine {
    id: i64,
    /// With several accounts, whose reminder it is.
    account: Option<String>,
    kind: &'static str,
    status: &'static str,
    due: String,
    about: String,
    subject: Option<String>,
    prepared_draft: Option<i64>,
    closed_why: Option<String>,
    /// Snoozing gives a date to a reminder whose date the rep must confirm.
    to_confirm: bool,
}

impl ReminderLine {
    fn of(r: &Reminder, cal: &BusinessCalendar) -> ReminderLine {
        ReminderLine {
            id: r.id,
            account: None,
            kind: r.kind.label(),
            status: r.status.as_str(),
            due: r
                .due_at
                .map_or("date to confirm".to_string(), |t| local_text(t, cal)),
            about: r.about.clone(),
            subject: r.subject.clone(),
            prepared_draft: r.prepared_draft,
            closed_why: r.closed_why.clone(),
            to_confirm: r.status == ReminderStatus::Confirm,
        }
    }
}

/// `/drafts/{id}`: the draft beside the mail it answers, why, and what was read off it.
pub async fn draft(
    State(web): State<Web>,
    Extension(session): Extension<SessionView>,
    Path(id): Path<i64>,
) -> Page {
    let config = web.account_of(id);
    let cal = calendar_of(config);
    let store = open_store(config)?;
    let Some(draft) = store.draft(id)? else {
        return Err(PageError::NotFound(format!(
            "There is no draft {id}. The list of drafts is on the first page."
        )));
    };
    let known = store.message_facts(id)?;
    let approval = store.approval(id)?.map(|a| {
        format!(
            "Approved via {} on {} (version {}).",
            a.via.as_str(),
            local_text(a.approved_at, &cal),
            a.version
        )
    });
    let thread: Vec<ReminderLine> = store
        .reminders(true)?
        .iter()
        .filter(|r| r.message == draft.message)
        .map(|r| ReminderLine::of(r, &cal))
        .collect();
    let view = DraftView {
        line: DraftLine::of(&draft, &cal),
        pending: draft.status == DraftStatus::Pending,
        version: draft.version,
        body: draft.body.clone(),
        notes: draft.notes.clone(),
        approval,
        slots: draft.proposed_slots.clone(),
    };
    render(
        "draft.html",
        json!({ "frame": frame(&web, &session, "drafts"), "d": view, "original": OriginalView::of(&draft.original), "verdict": known.as_ref().map(|k| VerdictView::of(&k.classification)), "facts": known.as_ref().map(|k| facts_view(&k.facts)), "invitation": invitation(&draft, config), "thread": thread, "way_out": way_out(config) }),
    )
}

#[derive(Serialize)]
struct FactsView {
    buyer: Option<String>,
    contact: Option<String>,
    references: Vec<String>,
    titles: Vec<String>,
    portals: Vec<String>,
    deadlines: Vec<String>,
    stakeholders: Vec<String>,
    no_contact_clause: Option<String>,
}

fn facts_view(facts: &Facts) -> FactsView {
    let person = |s: &Stakeholder| {
        let mut text = s.name.clone().unwrap_or_default();
        if let Some(title) = &s.title {
            text.push_str(&format!(", {title}"));
        }
        if let Some(email) = &s.email {
            text.push_str(&format!(" <{email}>"));
        }
        let role = match s.role {
            StakeholderRole::Procurement => "procurement",
            StakeholderRole::Business => "business: owns the problem",
            StakeholderRole::Unknown => "role unknown",
        };
        format!("{} ({role})", text.trim_start_matches(", "))
    };
    FactsView {
        buyer: facts.buyer.clone(),
        contact: facts.contact.as_ref().map(person),
        references: facts.references.clone(),
        titles: facts.titles.clone(),
        portals: facts.portal_urls.clone(),
        deadlines: facts
            .deadlines
            .iter()
            .map(|d| {
                let mut when = d.date.map_or("no date read".to_string(), |x| x.to_string());
                if let Some(time) = d.time {
                    when.push_str(&time.format(" %H:%M").to_string());
                }
                if let Some(zone) = &d.zone {
                    when.push_str(&format!(" {zone}"));
                }
                let doubt = if d.ambiguous { " (ambiguous)" } else { "" };
                format!(
                    "{}: {when}{doubt}, from \"{}\"",
                    d.kind.as_str().replace('_', " "),
                    d.text
                )
            })
            .collect(),
        stakeholders: facts.stakeholders.iter().map(person).collect(),
        no_contact_clause: facts.no_contact_clause.clone(),
    }
}

/// The call time of the invitation the draft carries, in the rep's zone.
fn invitation(draft: &DraftRecord, config: &Config) -> Option<String> {
    let invite = approval::attached_invite(&draft.raw)?;
    let text = String::from_utf8_lossy(&invite.bytes);
    let around = draft.created_at;
    let times = calendar::busy_from_ics(
        &text,
        around - Duration::days(366),
        around + Duration::days(366),
        config.timezone,
    )
    .ok()?;
    let (start, end) = times.first()?;
    let cal = calendar_of(config);
    Some(format!(
        "{} to {}",
        local_text(*start, &cal),
        end.with_timezone(&cal.tz).format("%H:%M")
    ))
}

#[derive(Deserialize)]
pub struct EditForm {
    body: String,
}

/// POST `/drafts/{id}/edit`: the edited text becomes the draft's next version, in the Drafts
/// folder too.
pub async fn edit(
    State(web): State<Web>,
    Extension(session): Extension<SessionView>,
    Path(id): Path<i64>,
    Form(form): Form<EditForm>,
) -> Redirect {
    // Browsers send a textarea's lines with CRLF; the draft's text has LF, as composed.
    let body = form.body.replace("\r\n", "\n");
    let config = web.account_of(id);
    let outcome = async {
        let mut store = open_store(config)?;
        let maildir = open_maildir(config)?;
        let folder = DraftsFolder::of(config, maildir.as_ref())?;
        let pipeline = app::pipeline_for(config)?;
        approval::save_edit(&mut store, &folder, &pipeline, id, &body, Utc::now()).await
    };
    report(&web, &session, outcome.await);
    Redirect::to(&format!("/drafts/{id}"))
}

#[derive(Deserialize)]
pub struct ApproveForm {
    /// The version the rep read: a draft changed since (an edit in their mail client) is not
    /// approved unseen.
    version: i64,
}

/// POST `/drafts/{id}/approve`: approved via the web, then sent through the outbox.
pub async fn approve(
    State(web): State<Web>,
    Extension(session): Extension<SessionView>,
    Path(id): Path<i64>,
    Form(form): Form<ApproveForm>,
) -> Redirect {
    let config = web.account_of(id);
    let outcome = async {
        let mut store = open_store(config)?;
        let draft = approval::find(&store, id)?;
        if draft.version != form.version {
            bail!(
                "draft {id} changed since you opened it (it is now version {}): read it again, \
                 then approve",
                draft.version
            );
        }
        approval::approve(config, &mut store, id, ApprovedVia::Web, Utc::now()).await
    };
    report(&web, &session, outcome.await);
    Redirect::to(&format!("/drafts/{id}"))
}

#[derive(Deserialize)]
pub struct RejectForm {
    /// The checkbox: present when ticked.
    not_procurement: Option<String>,
}

/// POST `/drafts/{id}/reject`, optionally teaching the classifier it was not procurement mail.
pub async fn reject(
    State(web): State<Web>,
    Extension(session): Extension<SessionView>,
    Path(id): Path<i64>,
    Form(form): Form<RejectForm>,
) -> Redirect {
    let config = web.account_of(id);
    let outcome = async {
        let mut store = open_store(config)?;
        let maildir = open_maildir(config)?;
        let folder = DraftsFolder::of(config, maildir.as_ref())?;
        let not_procurement = form.not_procurement.is_some();
        approval::reject(&mut store, &folder, id, not_procurement, Utc::now()).await
    };
    report(&web, &session, outcome.await);
    Redirect::to("/")
}

#[derive(Deserialize)]
pub struct SnoozeForm {
    /// As `reminders snooze` reads it: 90m, 4h, 2d, 1w.
    duration: String,
}

/// POST `/drafts/{id}/snooze`: every open reminder of the draft's thread, snoozed alike.
pub async fn snooze_thread(
    State(web): State<Web>,
    Extension(session): Extension<SessionView>,
    Path(id): Path<i64>,
    Form(form): Form<SnoozeForm>,
) -> Redirect {
    let outcome = snooze_reminders_of(web.account_of(id), id, &form.duration);
    report(&web, &session, outcome);
    Redirect::to(&format!("/drafts/{id}"))
}

fn snooze_reminders_of(config: &Config, id: i64, duration: &str) -> Result<String> {
    let mut store = open_store(config)?;
    let keeping = Timekeeping::of(config);
    let draft = approval::find(&store, id)?;
    let open: Vec<i64> = store
        .reminders(true)?
        .iter()
        .filter(|r| r.message == draft.message)
        .map(|r| r.id)
        .collect();
    if open.is_empty() {
        bail!("the thread of draft {id} has no open reminders to snooze");
    }
    let now = Utc::now();
    let mut said = String::new();
    for reminder in open {
        said.push_str(&reminders::snooze(
            &mut store, &keeping, reminder, duration, now,
        )?);
    }
    Ok(said)
}

// ---- reminders and sent replies -------------------------------------------------------------

/// `/reminders`: open reminders of every account, due first.
pub async fn reminders(State(web): State<Web>, Extension(session): Extension<SessionView>) -> Page {
    let several = web.accounts().len() > 1;
    let mut due = Vec::new();
    for account in web.accounts() {
        let cal = calendar_of(account);
        for reminder in open_store(account)?.reminders(true)? {
            let line = ReminderLine {
                account: several.then(|| account.account.clone()),
                ..ReminderLine::of(&reminder, &cal)
            };
            due.push(((reminder.due_at, reminder.id), line));
        }
    }
    // As the store orders them: a date to confirm first, then by due time.
    due.sort_by_key(|(order, _)| *order);
    let open: Vec<ReminderLine> = due.into_iter().map(|(_, line)| line).collect();
    render(
        "reminders.html",
        json!({ "frame": frame(&web, &session, "reminders"), "reminders": open }),
    )
}

/// POST `/reminders/{id}/done`.
pub async fn reminder_done(
    State(web): State<Web>,
    Extension(session): Extension<SessionView>,
    Path(id): Path<i64>,
) -> Redirect {
    let outcome = open_store(web.reminder_account_of(id))
        .and_then(|mut store| reminders::done(&mut store, id, Utc::now()));
    report(&web, &session, outcome);
    Redirect::to("/reminders")
}

/// POST `/reminders/{id}/snooze`.
pub async fn reminder_snooze(
    State(web): State<Web>,
    Extension(session): Extension<SessionView>,
    Path(id): Path<i64>,
    Form(form): Form<SnoozeForm>,
) -> Redirect {
    let config = web.reminder_account_of(id);
    let keeping = Timekeeping::of(config);
    let outcome = open_store(config).and_then(|mut store| {
        reminders::snooze(&mut store, &keeping, id, &form.duration, Utc::now())
    });
    report(&web, &session, outcome);
    Redirect::to("/reminders")
}

#[derive(Serialize)]
struct SentLine {
    #[serde(flatten)]
    line: DraftLine,
    sent: String,
    via: String,
    opening: String,
}

/// `/sent`: the replies of every account that left, newest first.
pub async fn sent(State(web): State<Web>, Extension(session): Extension<SessionView>) -> Page {
    let several = web.accounts().len() > 1;
    let mut sent = Vec::new();
    for account in web.accounts() {
        let cal = calendar_of(account);
        let store = open_store(account)?;
        for draft in store.drafts(Some(DraftStatus::Sent))? {
            let opening: String = draft
                .body
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
            let sent_at = store.sent_at(draft.id)?;
            let line = SentLine {
                line: DraftLine {
                    account: several.then(|| draft.account.clone()),
                    ..DraftLine::of(&draft, &cal)
                },
                sent: sent_at.map_or_else(String::new, |t| local_text(t, &cal)),
                via: store
                    .approval(draft.id)?
                    .map_or_else(String::new, |a| a.via.as_str().to_string()),
                opening,
            };
            sent.push(((sent_at, draft.id), line));
        }
    }
    sent.sort_by_key(|(order, _)| std::cmp::Reverse(*order));
    let lines: Vec<SentLine> = sent.into_iter().map(|(_, line)| line).collect();
    render(
        "sent.html",
        json!({ "frame": frame(&web, &session, "sent"), "sent": lines }),
    )
}

// ---- the team lead's view -------------------------------------------------------------------

#[derive(Deserialize)]
pub struct LeadQuery {
    /// With several accounts, whose templates and mail (the first account's by default).
    account: Option<String>,
    template: Option<String>,
    draft: Option<i64>,
}

#[derive(Serialize)]
struct TemplateLine {
    name: String,
    origin: String,
    partial: bool,
}

#[derive(Serialize)]
struct MailChoice {
    id: i64,
    label: String,
}

#[derive(Serialize)]
struct Outcome {
    text: String,
    error: bool,
}

#[derive(Serialize)]
struct RecentLine {
    subject: String,
    sender: String,
    seen: String,
    verdict: VerdictView,
}

#[derive(Serialize)]
struct SignalCount {
    signal: String,
    fired: usize,
}

/// `/lead`: the templates with a preview against a real mail, the classifier rules and the
/// signals that fired on recent mail, and the `templates check` results.
pub async fn lead(
    State(web): State<Web>,
    Extension(session): Extension<SessionView>,
    Query(query): Query<LeadQuery>,
) -> Page {
    let config = web
        .accounts()
        .iter()
        .find(|c| query.account.as_ref() == Some(&c.account))
        .unwrap_or(web.config());
    let accounts: Vec<&str> = match web.accounts() {
        [_] => Vec::new(),
        several => several.iter().map(|c| c.account.as_str()).collect(),
    };
    let cal = calendar_of(config);
    let store = open_store(config)?;
    // The mails a template can be tried on: the buyers' mails pushback drafted for.
    let mails: Vec<MailChoice> = store
        .drafts(None)?
        .iter()
        .rev()
        .filter(|d| d.follow_up == 0)
        .map(|d| MailChoice {
            id: d.id,
            label: format!("#{} {} ({})", d.id, d.subject, d.status.as_str()),
        })
        .collect();
    // A mail of another account (the account was switched) is not this account's to try.
    let chosen = query.draft.filter(|id| mails.iter().any(|m| m.id == *id));
    // A team lead's broken template must not take the rest of the view down with it.
    let (templates, selected, source, preview, problems, load_error) =
        match app::trained_pipeline(config, &store) {
            Ok(pipeline) => {
                let templates: Vec<TemplateLine> = pipeline
                    .templates()
                    .origins()
                    .map(|(name, origin)| TemplateLine {
                        name: name.to_string(),
                        origin: origin.to_string(),
                        partial: name.starts_with('_'),
                    })
                    .collect();
                let selected = query
                    .template
                    .filter(|t| templates.iter().any(|l| &l.name == t))
                    .or_else(|| {
                        templates
                            .iter()
                            .find(|l| !l.partial)
                            .map(|l| l.name.clone())
                    })
                    .unwrap_or_default();
                let source = pipeline.templates().source(&selected);
                let preview = chosen.map(|id| {
                    let rendered = approval::find(&store, id).and_then(|d| {
                        inspect::preview_template(&pipeline, &selected, &d.original, Utc::now())
                    });
                    match rendered {
                        Ok(text) => Outcome { text, error: false },
                        Err(error) => Outcome {
                            text: format!("{error:#}"),
                            error: true,
                        },
                    }
                });
                let problems: Vec<String> = pipeline
                    .templates()
                    .check()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                (templates, selected, source, preview, problems, None)
            }
            Err(error) => (
                Vec::new(),
                String::new(),
                None,
                None,
                Vec::new(),
                Some(format!("{error:#}")),
            ),
        };
    let (rules_origin, rules) = match app::rules_path(config) {
        Ok(Some(path)) => (
            path.display().to_string(),
            std::fs::read_to_string(&path)
                .unwrap_or_else(|e| format!("cannot read {}: {e}", path.display())),
        ),
        Ok(None) => ("built-in".to_string(), BUILTIN_RULES.to_string()),
        Err(error) => ("the template pack".to_string(), format!("{error:#}")),
    };
    let recent: Vec<RecentLine> = store
        .recent_verdicts(RECENT_VERDICTS)?
        .iter()
        .map(|(message, classification)| RecentLine {
            subject: message.subject.clone().unwrap_or_default(),
            sender: message.sender.clone().unwrap_or_default(),
            seen: local_text(message.seen_at, &cal),
            verdict: VerdictView::of(classification),
        })
        .collect();
    let mut fired: BTreeMap<&str, usize> = BTreeMap::new();
    for line in &recent {
        for reason in &line.verdict.reasons {
            *fired.entry(reason.signal.as_str()).or_default() += 1;
        }
    }
    let mut signals: Vec<SignalCount> = fired
        .into_iter()
        .map(|(signal, fired)| SignalCount {
            signal: signal.to_string(),
            fired,
        })
        .collect();
    signals.sort_by_key(|s| std::cmp::Reverse(s.fired));
    render(
        "lead.html",
        json!({ "frame": frame(&web, &session, "lead"), "accounts": accounts, "account": config.account, "templates": templates, "selected": selected, "source": source, "preview": preview, "problems": problems, "load_error": load_error, "mails": mails, "chosen": chosen, "rules_origin": rules_origin, "rules": rules, "recent": recent, "signals": signals }),
    )
}

/// Any other address, for someone with a session.
pub async fn not_found() -> PageError {
    PageError::NotFound("There is no such page.".into())
}

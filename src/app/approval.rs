//! The rep's side of the promise that nothing leaves without approval: list, show, edit, approve
//! and reject drafts, from the command line and from the web page (`app::web`), which share the
//! async cores here (`save_edit`, `approve`, `reject`). Approval is recorded, then the draft is
//! sent the way the daemon sends (`app::send`); an edit replaces the draft in the mailbox's Drafts
//! folder and a rejection removes it; rejection as "not procurement" becomes classifier feedback.

use crate::adapters::maildir::Maildir;
use crate::adapters::pack::TemplateSource;
use crate::adapters::store::{ApprovedVia, DraftRecord, DraftStatus, Store};
use crate::app::followups::{self, Timekeeping};
use crate::app::outbox::SentFolder;
use crate::app::pipeline::Pipeline;
use crate::app::send::{self, ImapFolders};
use crate::config::{Config, MailboxAccess};
use crate::core::classify::feedback_tokens;
use crate::core::draft::Attachment;
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use mail_parser::{MessageParser, MimeHeaders};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;

/// The `drafts list --json` line: one object per draft.
#[derive(Serialize)]
struct DraftLine<'a> {
    id: i64,
    account: &'a str,
    status: &'a str,
    in_reply_to: Option<&'a str>,
    subject: &'a str,
    category: &'a str,
    to: &'a str,
    message_id: &'a str,
    version: i64,
    /// The template that wrote it, with its pack's name and version (`pushback pack stats`).
    source: Option<&'a TemplateSource>,
    created_at: String,
    updated_at: String,
}

impl<'a> From<&'a DraftRecord> for DraftLine<'a> {
    fn from(d: &'a DraftRecord) -> Self {
        DraftLine {
            id: d.id,
            account: &d.account,
            status: d.status.as_str(),
            in_reply_to: d.in_reply_to.as_deref(),
            subject: &d.subject,
            category: d.category.as_str(),
            to: &d.recipient,
            message_id: &d.message_id,
            version: d.version,
            source: d.source.as_ref(),
            created_at: d.created_at.to_rfc3339(),
            updated_at: d.updated_at.to_rfc3339(),
        }
    }
}

pub fn list(store: &Store, status: Option<DraftStatus>, json: bool) -> Result<String> {
    let drafts = store.drafts(status)?;
    let mut out = String::new();
    if json {
        for draft in &drafts {
            writeln!(out, "{}", serde_json::to_string(&DraftLine::from(draft))?)?;
        }
        return Ok(out);
    }
    if drafts.is_empty() {
        out.push_str("no drafts\n");
        return Ok(out);
    }
    writeln!(
        out,
        "{:>4}  {:<9} {:<23} {:<30} subject",
        "id", "status", "category", "to"
    )?;
    for d in &drafts {
        writeln!(
            out,
            "{:>4}  {:<9} {:<23} {:<30} {}",
            d.id,
            d.status.as_str(),
            d.category.as_str(),
            truncate(&d.recipient, 30),
            d.subject
        )?;
    }
    Ok(out)
}

pub fn show(store: &Store, id: i64) -> Result<String> {
    let draft = find(store, id)?;
    let mut out = String::new();
    writeln!(
        out,
        "draft {}  [{}]  version {}",
        draft.id,
        draft.status.as_str(),
        draft.version
    )?;
    writeln!(out, "category: {}", draft.category)?;
    if let Some(source) = &draft.source {
        let pack = source
            .pack
            .as_ref()
            .map_or("your own templates".to_string(), |p| format!("pack {p}"));
        writeln!(out, "template: {} ({pack})", source.template)?;
    }
    if let Some(approval) = store.approval(id)? {
        writeln!(
            out,
            "approved: {} via {} (version {})",
            approval.approved_at.to_rfc3339(),
            approval.via.as_str(),
            approval.version
        )?;
    }
    if let Some(item) = store
        .outbox_pending()?
        .into_iter()
        .find(|item| item.draft_id == id)
    {
        if let Some(error) = &item.last_error {
            writeln!(
                out,
                "last attempt failed ({} so far): {error}",
                item.attempts
            )?;
        }
        if let Some(next) = item
            .next_attempt_at
            .filter(|_| item.status == DraftStatus::Approved)
        {
            writeln!(out, "next attempt: {}", next.to_rfc3339())?;
        }
    }
    match draft.status {
        DraftStatus::Unknown => writeln!(
            out,
            "a send was interrupted and the message is not in Sent: check with the buyer or your \
             Sent folder, then `pushback drafts mark-sent {id}` or `pushback drafts resend {id}`"
        )?,
        DraftStatus::Failed => writeln!(
            out,
            "the server refused it: fix the cause, then `pushback drafts resend {id}`"
        )?,
        _ => {}
    }
    writeln!(out)?;
    writeln!(out, "--- notes for you (never sent) ---")?;
    for note in &draft.notes {
        writeln!(out, "* {note}")?;
    }
    writeln!(out)?;
    writeln!(out, "--- the reply ---")?;
    out.push_str(&readable_message(&draft.raw));
    Ok(out)
}

/// The header block as composed, then the body decoded (the raw body is quoted-printable).
fn readable_message(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let header_end = text.find("\r\n\r\n").map(|i| i + 2).unwrap_or(text.len());
    let headers: String = text[..header_end]
        .lines()
        .filter(|line| !line.starts_with("Content-Transfer-Encoding"))
        .map(|line| format!("{line}\n"))
        .collect();
    let body = MessageParser::default()
        .parse(raw)
        .and_then(|message| message.body_text(0).map(|b| b.into_owned()))
        .unwrap_or_default();
    format!("{headers}\n{}\n", body.trim_end())
}

/// Opens the draft's text in `$EDITOR` (or `$VISUAL`), then saves the edited text as a new
/// version (`save_edit`). Returns a line saying what happened.
pub fn edit(
    store: &mut Store,
    folder: &DraftsFolder<'_>,
    pipeline: &Pipeline,
    id: i64,
    now: DateTime<Utc>,
) -> Result<String> {
    let draft = pending(store, id)?;
    let editor = std::env::var("VISUAL")
        .or_else(|_| std::env::var("EDITOR"))
        .context("cannot edit: set $EDITOR (or $VISUAL) to the editor to use")?;
    let mut file = tempfile::Builder::new()
        .prefix(&format!("pushback-draft-{id}-"))
        .suffix(".txt")
        .tempfile()
        .context("cannot create a temporary file for editing")?;
    file.write_all(draft.body.as_bytes())?;
    file.flush()?;
    // $EDITOR may carry arguments ("code --wait"), as git allows: run it through the shell.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("pushback-editor")
        .arg(file.path())
        .status()
        .with_context(|| format!("cannot start editor {editor:?}"))?;
    if !status.success() {
        bail!("editor {editor:?} exited with {status}; draft {id} left unchanged");
    }
    let edited = std::fs::read_to_string(file.path()).context("cannot read the edited draft")?;
    crate::app::block_on(save_edit(store, folder, pipeline, id, &edited, now))?
}

/// Recomposes the reply around the rep's edited text as a new version of pending draft `id`, and
/// puts it in place of the previous version in the Drafts folder. Returns a line saying what
/// happened.
pub async fn save_edit(
    store: &mut Store,
    folder: &DraftsFolder<'_>,
    pipeline: &Pipeline,
    id: i64,
    edited: &str,
    now: DateTime<Utc>,
) -> Result<String> {
    let draft = pending(store, id)?;
    if edited.trim().is_empty() {
        bail!(
            "the edited text is empty; draft {id} left unchanged (use `drafts reject {id}` to drop it)"
        );
    }
    if edited == draft.body {
        return Ok(format!("draft {id} unchanged"));
    }
    // The invitation the draft carried (if any) goes out with the edited text unchanged.
    let invite = attached_invite(&draft.raw);
    let version = u32::try_from(draft.version + 1)?;
    let reply = if draft.follow_up > 0 {
        pipeline.follow_up_with_body(&draft.original, edited, invite.as_ref(), now, version)?
    } else {
        let analysis = pipeline
            .analyse(&draft.original)
            .context("cannot re-read the original message of this draft")?;
        pipeline.compose_with_body(&analysis, edited, invite.as_ref(), now, version)?
    };
    let updated = store.update_draft(id, edited, &reply.raw, &reply.message_id, now)?;
    folder.replace(store, &draft.message_id, &updated).await?;
    Ok(format!("draft {id} saved as version {}", updated.version))
}

/// The calendar invitation attached to a composed draft, if it has one.
pub fn attached_invite(raw: &[u8]) -> Option<Attachment> {
    let message = MessageParser::default().parse(raw)?;
    message.attachments().find_map(|part| {
        let calendar = part.content_type().is_some_and(|t| {
            t.ctype().eq_ignore_ascii_case("text")
                && t.subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("calendar"))
        });
        calendar.then(|| Attachment::calendar_invite(part.contents().to_vec()))
    })
}

/// Records the rep's approval (given `via` the command line or the web page), then sends right
/// away when a transport is configured (the daemon would do the same within seconds; the claim in
/// the store makes sure only one sends).
pub async fn approve(
    config: &Config,
    store: &mut Store,
    id: i64,
    via: ApprovedVia,
    now: DateTime<Utc>,
) -> Result<String> {
    let draft = find(store, id)?;
    let tokens = original_tokens(&draft);
    store.approve(id, via, &tokens, now)?;
    let local = config.outgoing.is_none();
    let (_, delivery) = send::deliver(config, store, false, now)
        .await
        .with_context(|| format!("draft {id} is approved; sending failed for now"))?;
    // The follow-up clock starts when the reply leaves; `reminders list` shows it right away.
    followups::plan_follow_ups(store, &Timekeeping::of(config), now)?;
    Ok(if delivery.sent.contains(&id) && local {
        format!(
            "draft {id} approved and filed in the Sent folder by the local transport; \
             nothing left this machine (configure [smtp] to send)"
        )
    } else if delivery.sent.contains(&id) {
        format!("draft {id} approved and sent to {}", draft.recipient)
    } else if delivery.failed.contains(&id) {
        let reason = store
            .outbox_pending()?
            .into_iter()
            .find(|item| item.draft_id == id)
            .and_then(|item| item.last_error)
            .unwrap_or_default();
        format!("draft {id} approved but the server refused it: {reason}")
    } else {
        format!("draft {id} approved and queued; `pushback run` keeps trying to send it")
    })
}

pub async fn reject(
    store: &mut Store,
    folder: &DraftsFolder<'_>,
    id: i64,
    not_procurement: bool,
    now: DateTime<Utc>,
) -> Result<String> {
    let draft = find(store, id)?;
    let tokens = if not_procurement {
        original_tokens(&draft)
    } else {
        Vec::new()
    };
    let rejected = store.reject(id, not_procurement, &tokens, now)?;
    folder.remove(&rejected).await?;
    Ok(if not_procurement {
        format!("draft {id} rejected; the classifier will learn this was not procurement mail")
    } else {
        format!("draft {id} rejected")
    })
}

/// Draft `id`, or an error saying how to find the drafts there are.
pub fn find(store: &Store, id: i64) -> Result<DraftRecord> {
    store
        .draft(id)?
        .with_context(|| format!("no draft with id {id}; `pushback drafts list` shows them"))
}

fn pending(store: &Store, id: i64) -> Result<DraftRecord> {
    let draft = find(store, id)?;
    if draft.status != DraftStatus::Pending {
        bail!("cannot edit draft {id}: it is {}", draft.status.as_str());
    }
    Ok(draft)
}

/// Feedback is learnt from the original mail's words; a draft whose original cannot be parsed
/// any more gives none rather than failing the rep's command.
fn original_tokens(draft: &DraftRecord) -> Vec<String> {
    crate::core::mail::Mail::parse(&draft.original)
        .map(|mail| feedback_tokens(&mail))
        .unwrap_or_default()
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

/// Where the rep's drafts live, for replacing an edited one and removing a rejected one.
pub enum DraftsFolder<'a> {
    Maildir(&'a Maildir),
    Imap(&'a Config),
}

impl DraftsFolder<'_> {
    /// Puts `draft`'s current version in place of the one with `previous_message_id`.
    async fn replace(
        &self,
        store: &mut Store,
        previous_message_id: &str,
        draft: &DraftRecord,
    ) -> Result<()> {
        match self {
            DraftsFolder::Maildir(maildir) => {
                maildir.write_draft(&draft.folder_name, &draft.raw)?;
                Ok(())
            }
            DraftsFolder::Imap(config) => {
                let mut folders = ImapFolders::open(config).await?;
                let uid = folders
                    .replace_draft(previous_message_id, &draft.raw)
                    .await?;
                store.mark_placed(draft.id, uid)?;
                Ok(())
            }
        }
    }

    async fn remove(&self, draft: &DraftRecord) -> Result<()> {
        match self {
            DraftsFolder::Maildir(maildir) => {
                maildir.remove_draft(&draft.folder_name)?;
                Ok(())
            }
            DraftsFolder::Imap(config) => {
                let mut folders = ImapFolders::open(config).await?;
                folders
                    .remove_draft(&draft.folder_name, &draft.message_id)
                    .await
            }
        }
    }
}

impl<'a> DraftsFolder<'a> {
    pub fn of(config: &'a Config, maildir: Option<&'a Maildir>) -> Result<DraftsFolder<'a>> {
        match (&config.mailbox.access, maildir) {
            (MailboxAccess::Maildir { .. }, Some(maildir)) => Ok(DraftsFolder::Maildir(maildir)),
            (MailboxAccess::Imap(_), _) => Ok(DraftsFolder::Imap(config)),
            (MailboxAccess::Maildir { .. }, None) => bail!("the Maildir is not open"),
        }
    }
}

/// Sends again a draft whose send failed or was interrupted (the rep checked it did not go out).
pub fn resend(config: &Config, store: &mut Store, id: i64, now: DateTime<Utc>) -> Result<String> {
    store.resend(id, now)?;
    let (_, delivery) = crate::app::block_on(send::deliver(config, store, false, now))?
        .with_context(|| format!("draft {id} is queued again; sending failed for now"))?;
    Ok(if delivery.sent.contains(&id) {
        format!("draft {id} sent")
    } else {
        format!("draft {id} queued again; `pushback run` keeps trying to send it")
    })
}

/// Records that an interrupted or failed draft did go out after all (the rep saw it in Sent),
/// and takes it out of Drafts, where it must not wait to be sent again.
pub fn mark_sent(
    config: &Config,
    store: &mut Store,
    id: i64,
    now: DateTime<Utc>,
) -> Result<String> {
    store.confirm_sent(id, now)?;
    crate::app::block_on(send::deliver(config, store, false, now))?.with_context(|| {
        format!("draft {id} is recorded as sent, but cannot be taken out of Drafts now")
    })?;
    Ok(format!(
        "draft {id} recorded as sent; it will not be sent again"
    ))
}

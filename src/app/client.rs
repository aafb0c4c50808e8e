//! The rep's own mail client as a first-class approval path. On every wake the watcher compares
//! each pending draft with the server's Sent and Drafts folders:
//!
//! - a reply the rep sent from their client (In-Reply-To the original, or a reply from the rep's
//!   address that references it) makes the draft approved (via `client-sent`, at the reply's Date)
//!   and sent, with no outbox row, so pushback never sends it; our draft leaves Drafts;
//! - a message in Drafts replying to the original under another Message-ID is the rep's edit
//!   (clients save a new message and delete the old): it becomes the draft's current version, so
//!   what the rep approves later is the edited text, and our older version leaves Drafts;
//! - a placed draft with nothing left in Drafts was deleted by the rep: rejected, without
//!   classifier feedback, and never placed again (only pending drafts are placed).
//!
//! Only the pending drafts are looked up, all at once: per folder one UID SEARCH for any of their
//! originals (an OR of HEADER keys, in chunks), then the heads of the matches. A wake never
//! refetches whole folders, and its round trips do not grow with the number of pending drafts
//! (looking each draft up on its own took 8 s a wake after a 10,000-message backfill). Reading
//! the rep's Sent folder here is about our drafts only: the rep's own messages found there are
//! [`RepReply`]s, never the buyer's answer.

use crate::adapters::imap::{FolderState, Session, SpecialFolders};
use crate::adapters::store::{self, ClientEdit, PendingDraft, Store};
use crate::core::classify::feedback_tokens;
use crate::core::draft::reply_message_id;
use crate::core::mail::Mail;
use crate::core::model::Identity;
use anyhow::Result;
use chrono::{DateTime, Utc};
use mail_parser::MessageParser;

/// Bytes fetched of a message whose header is all that is needed.
const HEAD_BYTES: u32 = 8 * 1024;

/// What a reconcile reads: the pending drafts and the counts of the Sent and Drafts folders.
/// Whatever the rep does in their client adds a message to one of those folders or removes one,
/// so while none of it changes, another reconcile would find nothing new.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientView {
    pending: Vec<PendingDraft>,
    sent: FolderState,
    drafts: FolderState,
}

/// Brings every pending draft in step with what the rep did to it in their own mail client,
/// unless nothing it reads changed since `last` (the view of the last reconcile that finished,
/// which this one replaces). Leaves the session with another folder selected.
pub async fn reconcile(
    work: &mut Session,
    folders: &SpecialFolders,
    store: &mut Store,
    identity: &Identity,
    now: DateTime<Utc>,
    last: &mut Option<ClientView>,
) -> Result<()> {
    let pending = store.pending_drafts()?;
    let view = match (
        work.status(&folders.sent).await,
        work.status(&folders.drafts).await,
    ) {
        (Ok(sent), Ok(drafts)) => Some(ClientView {
            pending: pending.clone(),
            sent,
            drafts,
        }),
        // Counts the server will not give: look every time, as without them.
        _ => None,
    };
    if view.is_some() && *last == view {
        return Ok(());
    }
    let originals: Vec<String> = pending
        .iter()
        .filter_map(|draft| draft.in_reply_to.as_deref().map(angle))
        .collect();
    let originals: Vec<&str> = originals.iter().map(String::as_str).collect();
    let sent = heads_matching(
        work,
        &folders.sent,
        &[("In-Reply-To", &originals), ("References", &originals)],
    )
    .await?;
    let ours: Vec<String> = pending
        .iter()
        .filter(|draft| draft.placed_uid.is_some())
        .map(|draft| angle(&draft.message_id))
        .collect();
    let ours: Vec<&str> = ours.iter().map(String::as_str).collect();
    let in_drafts = if ours.is_empty() {
        Vec::new()
    } else {
        heads_matching(
            work,
            &folders.drafts,
            &[("In-Reply-To", &originals), ("Message-ID", &ours)],
        )
        .await?
    };
    for draft in &pending {
        if let Some(reply) = rep_reply_in_sent(&sent, store, identity, draft)? {
            settle_sent_by_rep(work, &folders.drafts, store, draft, &reply, now).await?;
        } else if draft.placed_uid.is_some() {
            follow_drafts_folder(
                work,
                &folders.drafts,
                store,
                identity,
                draft,
                &in_drafts,
                now,
            )
            .await?;
        }
    }
    *last = view;
    Ok(())
}

/// A message's head as read from a folder, with its UID there.
struct Head {
    uid: u32,
    mail: Mail,
}

/// The heads of the messages in `folder` whose header contains one of the values given for it,
/// for any of the (header, values) pairs; unreadable heads are left out.
async fn heads_matching(
    work: &mut Session,
    folder: &str,
    wanted: &[(&str, &[&str])],
) -> Result<Vec<Head>> {
    let mut uids = Vec::new();
    for (header, values) in wanted {
        uids.extend(work.find_by_any_header(folder, header, values).await?);
    }
    uids.sort_unstable();
    uids.dedup();
    let mut heads = Vec::new();
    work.fetch_heads(&uids, HEAD_BYTES, |message| {
        if let Ok(mail) = Mail::parse(&message.raw) {
            heads.push(Head {
                uid: message.uid,
                mail,
            });
        }
    })
    .await?;
    Ok(heads)
}

/// A reply the rep sent from their own client, found in the Sent folder: the rep's message, not
/// the buyer's, whatever later reads the thread.
#[derive(Debug, Clone, PartialEq)]
struct RepReply {
    /// The reply's Date header, when it has one.
    sent_at: Option<DateTime<Utc>>,
}

/// The rep's reply to the draft's original among `sent`, the Sent heads answering or referencing
/// any pending draft's original.
fn rep_reply_in_sent(
    sent: &[Head],
    store: &Store,
    identity: &Identity,
    draft: &PendingDraft,
) -> Result<Option<RepReply>> {
    let Some(original) = &draft.in_reply_to else {
        return Ok(None);
    };
    let answering: Vec<&Mail> = sent
        .iter()
        .map(|head| &head.mail)
        .filter(|mail| names(&mail.in_reply_to, original))
        .collect();
    let answers_original = !answering.is_empty();
    let candidates = if answers_original {
        answering
    } else {
        sent.iter()
            .map(|head| &head.mail)
            .filter(|mail| names(&mail.references, original))
            .collect()
    };
    let mut found: Option<RepReply> = None;
    for mail in candidates {
        // pushback's own Sent copies are replies too; only the rep's client counts here.
        if let Some(id) = &mail.message_id
            && store.in_pushback_outbox(id)?
        {
            continue;
        }
        // A later reply in the thread counts only when the rep wrote it.
        if !answers_original && !from_rep(mail, identity) {
            continue;
        }
        let sent_at = mail.date.map(|date| date.with_timezone(&Utc));
        found = Some(match found {
            Some(earlier) => RepReply {
                sent_at: earliest(earlier.sent_at, sent_at),
            },
            None => RepReply { sent_at },
        });
    }
    Ok(found)
}

fn from_rep(mail: &Mail, identity: &Identity) -> bool {
    mail.from
        .as_ref()
        .is_some_and(|from| from.email.eq_ignore_ascii_case(&identity.email))
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Records the draft as approved and sent by the rep, then removes it from Drafts if the client
/// left it there.
async fn settle_sent_by_rep(
    work: &mut Session,
    drafts: &str,
    store: &mut Store,
    draft: &PendingDraft,
    reply: &RepReply,
    now: DateTime<Utc>,
) -> Result<()> {
    let tokens = store
        .draft(draft.id)?
        .and_then(|record| Mail::parse(&record.original).ok())
        .map(|original| feedback_tokens(&original))
        .unwrap_or_default();
    let sent_at = reply.sent_at.unwrap_or(now);
    if store
        .record_sent_by_client(draft.id, sent_at, &tokens, now)?
        .is_none()
    {
        // Approved or rejected through pushback meanwhile: that decision stands.
        return Ok(());
    }
    tracing::info!(draft = draft.id, %sent_at, "the rep sent this reply from their mail client");
    let left = work
        .find_by_header(drafts, "Message-ID", &angle(&draft.message_id))
        .await?;
    work.delete(drafts, &left).await?;
    Ok(())
}

/// One message in Drafts replying to a draft's original.
#[derive(Debug, Clone, PartialEq)]
struct DraftHead {
    uid: u32,
    /// Bare; `None` when the message has none (then it cannot be told apart and is left alone).
    message_id: Option<String>,
}

/// Adopts the rep's edit of `draft`, or rejects it when the rep deleted it. `in_drafts` holds
/// the Drafts heads answering any pending draft's original or carrying a placed draft's id.
async fn follow_drafts_folder(
    work: &mut Session,
    drafts: &str,
    store: &mut Store,
    identity: &Identity,
    draft: &PendingDraft,
    in_drafts: &[Head],
    now: DateTime<Utc>,
) -> Result<()> {
    let replies: Vec<&Head> = match &draft.in_reply_to {
        Some(original) => in_drafts
            .iter()
            .filter(|head| names(&head.mail.in_reply_to, original))
            .collect(),
        None => Vec::new(),
    };
    if replies.is_empty() {
        // Checked by Message-ID as well: a draft without an original's id has no In-Reply-To.
        let ours = in_drafts
            .iter()
            .any(|head| names(head.mail.message_id.as_slice(), &draft.message_id));
        if !ours {
            reject_deleted(store, draft.id, now)?;
        }
        return Ok(());
    }
    // Only our draft, where we put it: the rep has not touched it.
    if let ([only], Some(placed)) = (replies.as_slice(), draft.placed_uid)
        && only.uid == placed
    {
        return Ok(());
    }
    let heads: Vec<DraftHead> = replies
        .iter()
        .map(|head| DraftHead {
            uid: head.uid,
            message_id: head.mail.message_id.clone(),
        })
        .collect();
    let own = own_message_ids(identity, draft);
    match client_edit(&heads, &draft.message_id, &own) {
        Some(edit) => adopt_edit(work, drafts, store, draft, edit, now).await,
        None => {
            // Ours, under a UID we did not know (the folder was renumbered, or the server gave
            // none when it was placed): remember where it is.
            if let Some(head) = heads
                .iter()
                .find(|head| head.message_id.as_deref() == Some(draft.message_id.as_str()))
                && draft.placed_uid != Some(head.uid)
            {
                store.mark_placed(draft.id, head.uid)?;
            }
            Ok(())
        }
    }
}

fn reject_deleted(store: &mut Store, id: i64, now: DateTime<Utc>) -> Result<()> {
    match store.reject(id, false, &[], now) {
        Ok(_) => {
            tracing::info!(
                draft = id,
                "the rep deleted this draft in their mail client: rejected"
            );
            Ok(())
        }
        // Approved or rejected through pushback meanwhile: that decision stands.
        Err(store::Error::WrongStatus { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Every Message-ID pushback gave a version of this draft (they are derived from the original's
/// id, the rep and the version): an older version of ours is never mistaken for the rep's edit.
fn own_message_ids(identity: &Identity, draft: &PendingDraft) -> Vec<String> {
    let Some(original) = &draft.in_reply_to else {
        return Vec::new();
    };
    let versions = u32::try_from(draft.version).unwrap_or(u32::MAX);
    (1..=versions)
        .map(|version| reply_message_id(identity, original, version))
        .collect()
}

/// The rep's newest edit among the Drafts messages replying to the original: one with a
/// Message-ID that is neither the current version's nor one pushback gave an earlier version.
fn client_edit<'a>(heads: &'a [DraftHead], current: &str, own: &[String]) -> Option<&'a DraftHead> {
    heads
        .iter()
        .filter(|head| {
            head.message_id
                .as_deref()
                .is_some_and(|id| id != current && !own.iter().any(|own| own == id))
        })
        .max_by_key(|head| head.uid)
}

/// Makes the rep's edit the draft's current version and removes our previous one from Drafts.
async fn adopt_edit(
    work: &mut Session,
    drafts: &str,
    store: &mut Store,
    draft: &PendingDraft,
    edit: &DraftHead,
    now: DateTime<Utc>,
) -> Result<()> {
    let Some(message_id) = &edit.message_id else {
        return Ok(());
    };
    let Some(raw) = work.fetch_full(drafts, edit.uid).await? else {
        // Saved over again since the search: the next wake sees the newer one.
        return Ok(());
    };
    let body = MessageParser::default()
        .parse(&raw)
        .and_then(|message| message.body_text(0).map(|text| text.into_owned()))
        .unwrap_or_default();
    let adopted = store.adopt_client_edit(
        draft.id,
        &ClientEdit {
            replaces: &draft.message_id,
            message_id,
            body: &body,
            raw: &raw,
            uid: edit.uid,
        },
        now,
    )?;
    let Some(adopted) = adopted else {
        // Edited, approved or rejected through pushback meanwhile: that stands.
        return Ok(());
    };
    tracing::info!(
        draft = draft.id,
        version = adopted.version,
        "adopted the rep's edit from their mail client"
    );
    let previous = work
        .find_by_header(drafts, "Message-ID", &angle(&draft.message_id))
        .await?;
    work.delete(drafts, &previous).await?;
    Ok(())
}

/// Whether `ids` holds `id`, ignoring case as the server's HEADER search does.
fn names(ids: &[String], id: &str) -> bool {
    ids.iter()
        .any(|candidate| candidate.eq_ignore_ascii_case(id))
}

/// A bare Message-ID as it appears in a header: the server matches substrings, and the angle
/// brackets keep `<a@x>` from matching `<ba@x>`.
fn angle(bare: &str) -> String {
    format!("<{bare}>")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(uid: u32, message_id: Option<&str>) -> DraftHead {
        DraftHead {
            uid,
            message_id: message_id.map(str::to_string),
        }
    }

    fn identity() -> Identity {
        Identity {
            name: "Alex Rivera".into(),
            email: "alice@northwind.example".into(),
            title: "Account Executive".into(),
            company: "Northwind Analytics".into(),
            timezone: "Europe/London".into(),
        }
    }

    #[test]
    fn the_newest_foreign_message_is_the_edit() {
        let heads = [
            head(3, Some("ours-v1@x")),
            head(5, Some("client-a@mua")),
            head(8, Some("client-b@mua")),
            head(9, None),
        ];
        let edit = client_edit(&heads, "ours-v1@x", &[]).unwrap();
        assert_eq!(edit.uid, 8);
    }

    #[test]
    fn only_our_current_draft_is_no_edit() {
        let heads = [head(3, Some("ours-v1@x"))];
        assert_eq!(client_edit(&heads, "ours-v1@x", &[]), None);
    }

    // Guards the CLI edit race: between the store update and the server's replacement, Drafts
    // still holds our previous version, which must not come back as "the rep's edit".
    #[test]
    fn an_older_version_of_ours_is_not_an_edit() {
        let draft = PendingDraft {
            id: 1,
            in_reply_to: Some("rfp-1@buyer.example".into()),
            message_id: reply_message_id(&identity(), "rfp-1@buyer.example", 2),
            version: 2,
            placed_uid: Some(3),
        };
        let own = own_message_ids(&identity(), &draft);
        let older = reply_message_id(&identity(), "rfp-1@buyer.example", 1);
        let heads = [head(3, Some(&older))];
        assert_eq!(client_edit(&heads, &draft.message_id, &own), None);
    }

    #[test]
    fn the_earliest_date_of_the_reps_replies_counts() {
        let at = |h| DateTime::parse_from_rfc3339(h).unwrap().with_timezone(&Utc);
        let first = at("2027-03-01T09:00:00Z");
        let later = at("2027-03-01T10:00:00Z");
        assert_eq!(earliest(Some(later), Some(first)), Some(first));
        assert_eq!(earliest(None, Some(later)), Some(later));
        assert_eq!(earliest(None, None), None);
    }
}

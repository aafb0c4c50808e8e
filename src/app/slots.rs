//! Discovery-call times for drafts. The rep's busy times are read from their calendars (.ics
//! files or URLs, the CalDAV calendar) by whoever has the network at hand (the daemon's
//! reminder task every few minutes, `pushback scan` once) and kept in the store, so proposing
//! slots while a draft is composed is a pure computation over them.

use crate::adapters::calendar::{self, CalDav, Invite};
use crate::adapters::store::Store;
use crate::app::followups::{self, Timekeeping};
use crate::app::pipeline::Analysis;
use crate::config::Config;
use crate::core::draft::{Attachment, buyer_zone, reply_message_id};
use crate::core::followup;
use crate::core::model::{Facts, Identity};
use crate::core::schedule::{self, Slot};
use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};

/// How far ahead busy times are read and slots looked for.
const HORIZON: Duration = Duration::weeks(6);
/// Busy times older than this are read again.
pub const REFRESH_EVERY: Duration = Duration::minutes(15);

/// Whether the stored busy times are due for a refresh.
pub fn refresh_due(config: &Config, store: &Store, now: DateTime<Utc>) -> Result<bool> {
    if config.calendar.busy.is_empty() && config.calendar.caldav.is_none() {
        return Ok(false);
    }
    Ok(store
        .busy_refreshed_at()?
        .is_none_or(|at| now - at >= REFRESH_EVERY))
}

/// Reads every busy source and replaces the stored busy times. A source that fails fails the
/// refresh (the previous times stay), so a calendar that is down never makes the rep look free.
pub async fn refresh_busy(
    config: &Config,
    caldav: Option<&CalDav>,
    store: &mut Store,
    now: DateTime<Utc>,
) -> Result<usize> {
    let (from, to) = (now, now + HORIZON);
    let mut busy = Vec::new();
    for source in &config.calendar.busy {
        busy.extend(calendar::fetch_busy(source, from, to, config.timezone).await?);
    }
    if let Some(caldav) = caldav {
        busy.extend(
            caldav
                .busy(from, to, config.timezone)
                .await
                .context("cannot read busy times from the CalDAV calendar")?,
        );
    }
    busy.sort();
    store.replace_busy_times(&busy, now)?;
    Ok(busy.len())
}

/// For one-shot commands (`pushback scan`): reads the busy times when they are due, before drafts
/// are composed. A calendar that cannot be read is a warning; the last busy times stay.
pub fn refresh_before_scan(config: &Config, now: DateTime<Utc>) -> Result<()> {
    let mut store = Store::open_account(&config.state_dir, &config.account)?;
    if !refresh_due(config, &store, now)? {
        return Ok(());
    }
    let caldav = crate::app::caldav(config)?;
    if let Err(error) =
        crate::app::block_on(refresh_busy(config, caldav.as_ref(), &mut store, now))?
    {
        tracing::warn!("cannot read your busy times now (the last ones stay): {error:#}");
    }
    Ok(())
}

/// Up to `slot-count` free call slots of `slot-minutes` for a reply about `facts`: working hours,
/// business days from tomorrow, clear of the stored busy times, before the questions cut-off,
/// and inside the buyer's working day when the RFP states their zone.
pub fn proposed_slots(
    store: &Store,
    keeping: &Timekeeping,
    facts: &Facts,
    now: DateTime<Utc>,
) -> Result<Vec<Slot>> {
    let busy = store.busy_between(now, now + HORIZON)?;
    Ok(schedule::propose_slots_for(
        now,
        &keeping.calendar,
        &busy,
        Duration::minutes(keeping.slot_minutes.into()),
        keeping.slot_count as usize,
        followup::questions_cutoff(facts, &keeping.calendar),
        buyer_zone(facts),
    ))
}

/// An invitation to the buyer for `slot`, to attach to the pushback draft. Its UID comes from the
/// buyer's message, so composing the draft again gives the same invitation.
pub fn invitation(
    identity: &Identity,
    analysis: &Analysis,
    slot: &Slot,
    now: DateTime<Utc>,
) -> Attachment {
    let mail = &analysis.mail;
    let buyer = mail.reply_address().or(mail.from.as_ref());
    let about = followups::solicitation(&analysis.facts, &mail.subject);
    let thread = mail.message_id.as_deref().unwrap_or(&mail.subject);
    let invite = Invite {
        uid: format!(
            "{}@pushback",
            reply_message_id(identity, thread, 0)
                .split('@')
                .next()
                .unwrap_or("discovery-call")
        ),
        start: slot.start,
        end: slot.end,
        organizer_name: identity.name.clone(),
        organizer_email: identity.email.clone(),
        attendee_name: buyer.and_then(|b| b.name.clone()),
        attendee_email: buyer.map(|b| b.email.clone()).unwrap_or_default(),
        summary: format!("{} / {}: discovery call", identity.company, about),
        description: format!(
            "A short conversation about {about} with the people who own the problem, before we \
             answer in writing. {} ({})",
            identity.name, identity.email
        ),
        stamp: now,
    };
    Attachment::calendar_invite(calendar::invite(&invite).into_bytes())
}

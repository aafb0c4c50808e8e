//! Fact extraction: reads one parsed mail and returns the `Facts` a draft and its reminders need:
//! deadlines (`dates`), the buyer and the people involved (`parties`), solicitation numbers,
//! titles, portal links and the no-contact clause (`references`). Pure: the Date header is the
//! only clock, and nothing here knows which address is the rep's (the caller filters that).

mod dates;
pub mod eval;
mod parties;
mod references;
mod zones;

use crate::core::mail::Mail;
use crate::core::model::Facts;

pub use dates::DateOrder;

/// Everything this module can read off one message.
pub fn extract(mail: &Mail) -> Facts {
    let base = mail.date.map(|d| d.date_naive());
    let order = date_order(mail);
    let deadlines = dates::find_deadlines(&mail.subject, &mail.body, base, order);
    let people = parties::find_parties(mail);
    let refs = references::find_references(&mail.subject, &mail.body);
    Facts {
        buyer: people.buyer,
        contact: people.contact,
        reply_to: mail.reply_address().map(|a| a.email.clone()),
        references: refs.references,
        titles: refs.titles,
        portal_urls: refs.portal_urls,
        stakeholders: people.stakeholders,
        deadlines,
        no_contact_clause: refs.no_contact_clause,
    }
}

/// The clue for reading "04/05/2027": the sender's country domain when it has one, else a North
/// American Date-header offset (UTC-4 to UTC-10) on a generic domain means month first. No clue
/// leaves such dates flagged ambiguous.
pub fn date_order(mail: &Mail) -> Option<DateOrder> {
    let domain = mail.from.as_ref().map(|a| a.domain()).unwrap_or("");
    let tld = domain.rsplit('.').next().unwrap_or("");
    match tld {
        "us" | "gov" | "mil" => return Some(DateOrder::MonthFirst),
        "com" | "net" | "org" | "edu" | "biz" | "info" | "io" | "" => {}
        // Canada and the Philippines mix both orders.
        "ca" | "ph" => return None,
        _ if tld.len() == 2 => return Some(DateOrder::DayFirst),
        _ => {}
    }
    let offset = mail.date?.offset().local_minus_utc();
    (-10 * 3600..=-4 * 3600)
        .contains(&offset)
        .then_some(DateOrder::MonthFirst)
}

//! The reminder mail pushback puts in the rep's own inbox (appended, never sent): what is due, the
//! thread, the facts, and the draft waiting for approval. Its Message-ID is derived from the
//! reminder and its revision, so delivering it again after a crash finds the first copy instead of
//! adding a second, and the scanner recognises it as pushback's own and leaves it alone.

use crate::core::draft::{Error, bare_message_id, mailbox, rep_domain};
use crate::core::mail::{Mail, clean_header_value};
use crate::core::model::{Facts, Identity};
use chrono::{DateTime, FixedOffset};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};

const MESSAGE_ID_PREFIX: &str = "pushback-reminder.";

/// One reminder as the rep reads it.
#[derive(Debug, Clone)]
pub struct Notice<'a> {
    pub identity: &'a Identity,
    pub reminder_id: i64,
    /// Bumped whenever the reminder changes; a snoozed reminder firing again is a new mail.
    pub revision: u32,
    /// "Follow-up due", "Questions cut-off", ...
    pub headline: &'a str,
    /// The reminder's own line ("Questions cut-off for RFP 2027-014: Wed 10 Mar 2027 17:00 EST").
    pub about: &'a str,
    /// When it was due, in the rep's zone.
    pub due: &'a str,
    pub thread_subject: Option<&'a str>,
    pub buyer: Option<&'a str>,
    /// The original's Message-ID: the notice threads with it in the rep's client.
    pub original_message_id: Option<&'a str>,
    pub facts: Option<&'a Facts>,
    pub draft: Option<NoticeDraft<'a>>,
    pub date: DateTime<FixedOffset>,
}

/// The follow-up draft prepared for the rep.
#[derive(Debug, Clone, Copy)]
pub struct NoticeDraft<'a> {
    pub id: i64,
    pub to: &'a str,
    pub body: &'a str,
}

/// The notice's Message-ID (without angle brackets).
pub fn notice_message_id(identity: &Identity, reminder_id: i64, revision: u32) -> String {
    format!(
        "{MESSAGE_ID_PREFIX}{reminder_id}.{revision}@{}",
        rep_domain(identity)
    )
}

/// Whether `mail` is one of pushback's own notices (so scanning it again is pointless).
pub fn is_notice(mail: &Mail) -> bool {
    mail.message_id
        .as_deref()
        .is_some_and(|id| bare_message_id(id).starts_with(MESSAGE_ID_PREFIX))
}

/// The notice as an RFC 5322 message from the rep to the rep.
pub fn compose_notice(notice: &Notice<'_>) -> Result<Vec<u8>, Error> {
    let identity = notice.identity;
    let message_id = notice_message_id(identity, notice.reminder_id, notice.revision);
    let me = mailbox(Some("pushback"), &identity.email, &message_id)?;
    let rep = mailbox(Some(&identity.name), &identity.email, &message_id)?;
    let subject = match notice.thread_subject {
        Some(s) => format!("[pushback] {}: {}", notice.headline, clean_header_value(s)),
        None => format!("[pushback] {}", notice.headline),
    };
    let mut builder = lettre::Message::builder()
        .from(me)
        .to(rep)
        .subject(subject)
        .date(notice.date.into())
        .message_id(Some(format!("<{message_id}>")));
    if let Some(original) = notice.original_message_id.map(bare_message_id) {
        builder = builder
            .in_reply_to(format!("<{original}>"))
            .references(format!("<{original}>"));
    }
    let mut message = builder
        .header(ContentType::TEXT_PLAIN)
        .body(body(notice))
        .map_err(|source| Error::Build {
            message_id: message_id.clone(),
            source,
        })?;
    let headers = message.headers_mut();
    headers.insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("Date"),
        notice.date.to_rfc2822(),
    ));
    // RFC 3834: machine-made, so vacation responders and filters leave it alone.
    headers.insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("Auto-Submitted"),
        "auto-generated".into(),
    ));
    headers.insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("X-Pushback-Reminder"),
        notice.reminder_id.to_string(),
    ));
    Ok(message.formatted())
}

fn body(notice: &Notice<'_>) -> String {
    let mut out = format!("{}\n\nDue: {}\n", notice.about, notice.due);
    match (notice.thread_subject, notice.buyer) {
        (Some(subject), Some(buyer)) => {
            out.push_str(&format!("Thread: \"{subject}\" from {buyer}\n"))
        }
        (Some(subject), None) => out.push_str(&format!("Thread: \"{subject}\"\n")),
        (None, Some(buyer)) => out.push_str(&format!("Buyer: {buyer}\n")),
        (None, None) => {}
    }
    if let Some(facts) = notice.facts {
        let lines = fact_lines(facts);
        if !lines.is_empty() {
            out.push_str("\nWhat the RFP says:\n");
            for line in lines {
                out.push_str(&format!("- {line}\n"));
            }
        }
    }
    if let Some(draft) = notice.draft {
        out.push_str(&format!(
            "\nA follow-up to {} is waiting in your Drafts folder (draft {}). Nothing is sent \
             until you approve it: send it from your mail client, or run\n  pushback drafts \
             approve {}\n\n----- draft {} -----\n{}\n----- end of draft -----\n",
            draft.to,
            draft.id,
            draft.id,
            draft.id,
            draft.body.trim_end()
        ));
    }
    out.push_str(&format!(
        "\nDone with it:  pushback reminders done {id}\nLater:         pushback reminders \
         snooze {id} 1d\n",
        id = notice.reminder_id
    ));
    out
}

fn fact_lines(facts: &Facts) -> Vec<String> {
    let mut lines: Vec<String> = facts
        .deadlines
        .iter()
        .map(|d| {
            let mut line = format!("{}: {}", d.kind.as_str().replace('_', " "), d.text);
            if d.ambiguous {
                line.push_str(" (date unclear: check it)");
            }
            line
        })
        .collect();
    lines.extend(facts.references.first().map(|r| format!("reference: {r}")));
    lines.extend(facts.portal_urls.first().map(|u| format!("portal: {u}")));
    if let Some(clause) = &facts.no_contact_clause {
        lines.push(format!("no-contact clause: {clause}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::{Deadline, DeadlineKind};
    use chrono::TimeZone;

    fn notice<'a>(identity: &'a Identity, facts: &'a Facts) -> Notice<'a> {
        Notice {
            identity,
            reminder_id: 7,
            revision: 2,
            headline: "Follow-up due",
            about: "Follow-up 1 of 2: no answer since Mon 1 Mar 2027 10:00 GMT",
            due: "Thu 4 Mar 2027 09:00 GMT",
            thread_subject: Some("RFP 2027-014: CRM replacement"),
            buyer: Some("pat@city.example"),
            original_message_id: Some("<rfp-14@city.example>"),
            facts: Some(facts),
            draft: Some(NoticeDraft {
                id: 12,
                to: "Pat Lee <pat@city.example>",
                body: "Hi Pat,\n\nJust following up.\n",
            }),
            date: FixedOffset::east_opt(0)
                .unwrap()
                .with_ymd_and_hms(2027, 3, 4, 9, 0, 0)
                .unwrap(),
        }
    }

    #[test]
    fn a_notice_is_a_threaded_self_addressed_machine_mail() {
        let identity = Identity::demo();
        let facts = Facts {
            deadlines: vec![Deadline {
                kind: DeadlineKind::Questions,
                date: None,
                time: None,
                zone: None,
                text: "questions by 10 March".into(),
                ambiguous: false,
            }],
            references: vec!["RFP 2027-014".into()],
            ..Facts::default()
        };
        let raw = compose_notice(&notice(&identity, &facts)).unwrap();
        let mail = Mail::parse(&raw).unwrap();
        assert!(is_notice(&mail));
        assert_eq!(
            mail.message_id.as_deref(),
            Some(notice_message_id(&identity, 7, 2).as_str())
        );
        assert_eq!(mail.in_reply_to, ["rfp-14@city.example"]);
        assert_eq!(mail.to[0].email, identity.email);
        assert_eq!(mail.from.as_ref().unwrap().email, identity.email);
        assert_eq!(
            mail.subject,
            "[pushback] Follow-up due: RFP 2027-014: CRM replacement"
        );
        assert!(mail.is_auto_submitted);
        for wanted in [
            "Due: Thu 4 Mar 2027 09:00 GMT",
            "- questions: questions by 10 March",
            "- reference: RFP 2027-014",
            "(draft 12)",
            "pushback drafts approve 12",
            "Just following up.",
            "pushback reminders done 7",
        ] {
            assert!(
                mail.body.contains(wanted),
                "{wanted:?} missing in:\n{}",
                mail.body
            );
        }
    }

    #[test]
    fn the_message_id_follows_the_revision() {
        let identity = Identity::demo();
        assert_ne!(
            notice_message_id(&identity, 7, 1),
            notice_message_id(&identity, 7, 2)
        );
        let facts = Facts::default();
        let mut plain = notice(&identity, &facts);
        plain.draft = None;
        plain.thread_subject = None;
        let mail = Mail::parse(&compose_notice(&plain).unwrap()).unwrap();
        assert_eq!(mail.subject, "[pushback] Follow-up due");
        assert!(!mail.body.contains("Drafts folder"));
    }
}

//! One inbound message, parsed once with mail-parser into the owned, normalised form the rest of
//! the core reads: addresses, threading headers, a plain-text body (HTML converted), attachment
//! names and the bulk-mail markers. Parsing never panics and never touches IO; the caller hands in
//! the bytes. Limits (the size cap) are decided here so every entry point skips the same mail.

use chrono::{DateTime, FixedOffset};
use mail_parser::{HeaderValue, MessageParser, MimeHeaders};
use serde::Serialize;

/// Messages above this many bytes are skipped with a reason instead of parsed.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 25 * 1024 * 1024;

/// Body text beyond this many characters is not read by the classifier or the extractor: the
/// buyer's request is at the top, and quoted history or legal annexes below only add noise and cost.
const MAX_BODY_CHARS: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub name: Option<String>,
    pub email: String,
}

impl Address {
    /// The part after '@', lower-cased.
    pub fn domain(&self) -> &str {
        self.email.rsplit_once('@').map_or("", |(_, d)| d)
    }

    /// The part before '@'.
    pub fn local_part(&self) -> &str {
        self.email.split_once('@').map_or(&self.email, |(l, _)| l)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mail {
    /// Without angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub subject: String,
    pub from: Option<Address>,
    pub reply_to: Option<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub date: Option<DateTime<FixedOffset>>,
    /// Plain text of the first text body (HTML converted to text when there is no plain part).
    pub body: String,
    pub attachment_names: Vec<String>,
    /// The text of every `text/calendar` part, attached or inline: an invitation, or an answer
    /// to ours (`METHOD:REPLY`).
    pub calendar_parts: Vec<String>,
    /// List-Id, List-Unsubscribe or `Precedence: bulk/list`: a newsletter or mailing list.
    pub is_bulk: bool,
    /// `Auto-Submitted` other than `no`: an autoresponder or a system notification.
    pub is_auto_submitted: bool,
    pub size: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("cannot parse message: {size} bytes is over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("cannot parse message: no header fields found")]
    NoHeaders,
    #[error("cannot parse message: it is empty")]
    Empty,
    #[error("cannot parse message: the MIME parser failed on it")]
    Unparseable,
}

impl Mail {
    pub fn parse(raw: &[u8]) -> Result<Mail, Error> {
        Mail::parse_with_limit(raw, DEFAULT_MAX_MESSAGE_BYTES)
    }

    pub fn parse_with_limit(raw: &[u8], max_bytes: usize) -> Result<Mail, Error> {
        if raw.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::Empty);
        }
        if raw.len() > max_bytes {
            return Err(Error::TooLarge {
                size: raw.len(),
                limit: max_bytes,
            });
        }
        // mail-parser checks its own invariants with debug assertions, and the `pipeline` fuzz
        // target found a multipart message that trips one; a message the parser fails on is
        // refused like any other unreadable one, so one bad message never stops a run.
        let message = std::panic::catch_unwind(|| MessageParser::default().parse(raw))
            .map_err(|_| Error::Unparseable)?
            .ok_or(Error::NoHeaders)?;
        if message.headers().is_empty() {
            return Err(Error::NoHeaders);
        }

        let mut body = message
            .body_text(0)
            .map(|b| b.into_owned())
            .unwrap_or_default();
        truncate_chars(&mut body, MAX_BODY_CHARS);

        let is_bulk = !message.list_id().is_empty()
            || !message.list_unsubscribe().is_empty()
            || header_text(&message, "Precedence").is_some_and(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "bulk" || p == "list" || p == "junk"
            });
        let is_auto_submitted = header_text(&message, "Auto-Submitted")
            .is_some_and(|v| !v.trim().eq_ignore_ascii_case("no"));

        Ok(Mail {
            message_id: message.message_id().map(clean_header_value),
            in_reply_to: text_list(message.in_reply_to()),
            references: text_list(message.references()),
            subject: message
                .subject()
                .map(clean_header_value)
                .unwrap_or_default(),
            from: first_address(message.from()),
            reply_to: first_address(message.reply_to()),
            to: all_addresses(message.to()),
            cc: all_addresses(message.cc()),
            date: message.date().and_then(to_chrono),
            body,
            attachment_names: message
                .attachments()
                .filter_map(|part| part.attachment_name().map(clean_header_value))
                .collect(),
            calendar_parts: message
                .parts
                .iter()
                .filter(|part| {
                    part.content_type().is_some_and(|ct| {
                        ct.ctype().eq_ignore_ascii_case("text")
                            && ct
                                .subtype()
                                .is_some_and(|s| s.eq_ignore_ascii_case("calendar"))
                    })
                })
                .map(|part| String::from_utf8_lossy(part.contents()).into_owned())
                .collect(),
            is_bulk,
            is_auto_submitted,
            size: raw.len(),
        })
    }

    /// Reply-To when present, else From: where an answer to this mail goes.
    pub fn reply_address(&self) -> Option<&Address> {
        self.reply_to.as_ref().or(self.from.as_ref())
    }
}

/// Header values from mail end up in our own headers and logs: strip CR, LF and other control
/// characters so no value can start a new header line.
pub fn clean_header_value(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn truncate_chars(text: &mut String, max_chars: usize) {
    // A text of no more bytes than that has no more characters either: most bodies end here
    // instead of being walked character by character.
    if text.len() <= max_chars {
        return;
    }
    if let Some((byte_index, _)) = text.char_indices().nth(max_chars) {
        text.truncate(byte_index);
    }
}

fn header_text<'a>(message: &'a mail_parser::Message<'a>, name: &'static str) -> Option<&'a str> {
    message.header(name).and_then(HeaderValue::as_text)
}

fn text_list(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => vec![clean_header_value(t)],
        HeaderValue::TextList(list) => list.iter().map(|t| clean_header_value(t)).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|id| !id.is_empty())
    .collect()
}

fn to_address(addr: &mail_parser::Addr<'_>) -> Option<Address> {
    let email = clean_header_value(addr.address()?).to_ascii_lowercase();
    if !email.contains('@') {
        return None;
    }
    let name = addr
        .name()
        .map(clean_header_value)
        .filter(|n| !n.is_empty() && !n.eq_ignore_ascii_case(&email));
    Some(Address { name, email })
}

fn first_address(addr: Option<&mail_parser::Address<'_>>) -> Option<Address> {
    addr?.iter().find_map(to_address)
}

fn all_addresses(addr: Option<&mail_parser::Address<'_>>) -> Vec<Address> {
    addr.map(|a| a.iter().filter_map(to_address).collect())
        .unwrap_or_default()
}

fn to_chrono(date: &mail_parser::DateTime) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(&date.to_rfc3339()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = b"From: \"Pat Buyer\" <Pat@Buyer.example>\r\n\
Reply-To: rfp@buyer.example\r\n\
To: rep@seller.example, \"Sam Ops\" <sam@buyer.example>\r\n\
Subject: RFP 2027-014\r\n\
Date: Tue, 2 Mar 2027 10:00:00 -0500\r\n\
Message-ID: <abc@buyer.example>\r\n\
References: <one@x> <two@x>\r\n\
\r\n\
Proposals are due March 3.\r\n";

    #[test]
    fn parses_addresses_threading_and_body() {
        let mail = Mail::parse(SAMPLE).unwrap();
        assert_eq!(mail.message_id.as_deref(), Some("abc@buyer.example"));
        assert_eq!(mail.references, vec!["one@x", "two@x"]);
        assert_eq!(mail.from.as_ref().unwrap().email, "pat@buyer.example");
        assert_eq!(
            mail.from.as_ref().unwrap().name.as_deref(),
            Some("Pat Buyer")
        );
        assert_eq!(mail.reply_address().unwrap().email, "rfp@buyer.example");
        assert_eq!(mail.to.len(), 2);
        assert_eq!(mail.date.unwrap().to_rfc3339(), "2027-03-02T10:00:00-05:00");
        assert!(mail.body.contains("Proposals are due"));
        assert!(!mail.is_bulk);
    }

    #[test]
    fn html_only_mail_yields_text() {
        let raw = b"From: a@b.example\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n<p>Submit your <b>bid</b> by Friday</p>";
        let mail = Mail::parse(raw).unwrap();
        assert!(
            mail.body.contains("Submit your bid by Friday"),
            "{}",
            mail.body
        );
    }

    #[test]
    fn header_values_cannot_inject_lines() {
        assert_eq!(clean_header_value("Hi\r\nBcc: evil@x"), "Hi Bcc: evil@x");
    }

    #[test]
    fn rejects_empty_and_oversized_input() {
        assert_eq!(Mail::parse(b"  \r\n"), Err(Error::Empty));
        assert!(matches!(
            Mail::parse_with_limit(SAMPLE, 10),
            Err(Error::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_does_not_panic() {
        for raw in [
            &b"\xff\xfe\x00garbage"[..],
            b"::::\n\n",
            b"Content-Type: multipart/mixed; boundary=\"\"\n\n--\n--",
        ] {
            let _ = Mail::parse(raw);
        }
    }
}

//! The buyer's original mail as the approval page shows it beside the draft: the header fields a
//! person reads, and the body as plain text, or, for mail that only has HTML, that HTML cleaned by
//! ammonia: no scripts, styles, forms or frames, no images (a remote image tells the sender the
//! mail was read), links that open without a referrer. Escaping the plain text is the template's.

use mail_parser::{Address, MessageParser};
use serde::Serialize;
use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OriginalView {
    pub from: String,
    pub to: String,
    pub cc: String,
    pub subject: String,
    pub date: String,
    /// The plain-text body, to be escaped when shown; `None` when `html` is set.
    pub text: Option<String>,
    /// The HTML body, already sanitised: safe to insert as markup.
    pub html: Option<String>,
}

impl OriginalView {
    pub fn of(raw: &[u8]) -> OriginalView {
        let Some(message) = MessageParser::default().parse(raw) else {
            return OriginalView {
                from: String::new(),
                to: String::new(),
                cc: String::new(),
                subject: "(the original could not be read)".into(),
                date: String::new(),
                text: Some(String::from_utf8_lossy(raw).into_owned()),
                html: None,
            };
        };
        let plain = message
            .text_bodies()
            .find(|part| !part.is_text_html())
            .and_then(|part| part.text_contents())
            .map(str::to_string);
        let html = match plain {
            Some(_) => None,
            None => message
                .html_bodies()
                .find(|part| part.is_text_html())
                .and_then(|part| part.text_contents())
                .map(sanitise),
        };
        OriginalView {
            from: addresses(message.from()),
            to: addresses(message.to()),
            cc: addresses(message.cc()),
            subject: message.subject().unwrap_or_default().to_string(),
            date: message.date().map(|d| d.to_rfc822()).unwrap_or_default(),
            text: match (&plain, &html) {
                (None, None) => Some(String::new()),
                _ => plain,
            },
            html,
        }
    }
}

fn addresses(list: Option<&Address<'_>>) -> String {
    let Some(list) = list else {
        return String::new();
    };
    list.iter()
        .map(|a| match (a.name(), a.address()) {
            (Some(name), Some(email)) => format!("{name} <{email}>"),
            (None, Some(email)) => email.to_string(),
            (Some(name), None) => name.to_string(),
            (None, None) => String::new(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Mail HTML made safe to show inside the page.
pub fn sanitise(html: &str) -> String {
    ammonia::Builder::default()
        .rm_tags(["img"])
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .link_rel(Some("noopener noreferrer nofollow"))
        .clean(html)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_only_mail_is_shown_without_scripts_or_remote_images() {
        let raw = b"From: Dana <dana@buyer.example>\r\nTo: alex@northwind.example\r\n\
Subject: RFP\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<p onclick=\"steal()\">Please <b>respond</b>.</p><script>alert(1)</script>\
<img src=\"http://tracker.example/pixel.gif\"><a href=\"javascript:alert(2)\">x</a>\
<a href=\"https://portal.example/rfp\">portal</a><style>p{}</style>\r\n";
        let view = OriginalView::of(raw);
        assert_eq!(view.text, None);
        let html = view.html.unwrap();
        assert!(html.contains("<b>respond</b>"), "{html}");
        for gone in [
            "<script",
            "alert(1)",
            "onclick",
            "<img",
            "tracker.example",
            "javascript:",
            "<style",
        ] {
            assert!(!html.contains(gone), "{gone} in {html}");
        }
        assert!(
            html.contains(
                "href=\"https://portal.example/rfp\" rel=\"noopener noreferrer nofollow\""
            ),
            "{html}"
        );
        assert_eq!(view.from, "Dana <dana@buyer.example>");
        assert_eq!(view.subject, "RFP");
    }

    #[test]
    fn plain_text_is_preferred_and_left_for_the_template_to_escape() {
        let raw = b"From: dana@buyer.example\r\nSubject: RFQ\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nQuote <now> & fast\r\n\
--b\r\nContent-Type: text/html\r\n\r\n<p>Quote</p>\r\n--b--\r\n";
        let view = OriginalView::of(raw);
        assert_eq!(view.html, None);
        assert_eq!(
            view.text.as_deref().map(str::trim),
            Some("Quote <now> & fast")
        );
    }
}

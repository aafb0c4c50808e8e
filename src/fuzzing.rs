//! What each fuzz target in `fuzz/` does with one input, and the properties it checks. Kept in the
//! library so `tests/fuzz_regressions.rs` replays the committed corpora and every input that once
//! found a bug through the very same code under a plain `cargo test`, without libFuzzer.
//!
//! Each function takes the fuzzer's bytes and panics only when a property fails: any other outcome
//! (a parsed message, a refusal with a reason, an error naming the file and line) is fine.

use crate::adapters::templates::Templates;
use crate::app::followups::{self, Timekeeping};
use crate::app::pipeline::{ComposeOptions, Pipeline};
use crate::config::Config;
use crate::core::draft::{self, DraftContext, FollowUpInfo};
use crate::core::mail::{Address, Mail};
use crate::core::model::{
    Category, Classification, Facts, Identity, Label, Stakeholder, StakeholderRole,
};
use crate::core::reply;
use chrono::{DateTime, TimeZone, Utc};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

/// The demo configuration's pipeline, built once: the config is no part of what is fuzzed here.
static DEMO: LazyLock<(Pipeline, Timekeeping)> = LazyLock::new(|| {
    let config = Config::demo(
        Path::new("/nonexistent/Maildir"),
        Path::new("/nonexistent/state"),
    );
    let pipeline = crate::app::pipeline_for(&config).expect("the demo pipeline builds");
    (pipeline, Timekeeping::of(&config))
});

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 3, 1, 9, 0, 0).unwrap()
}

/// Raw message bytes through the whole per-message path: parse, classify, extract, the deadline
/// reminders, read as a buyer's answer, a draft with call times, and a follow-up composed on that
/// draft (so our own output is parsed back too). Every message we compose must carry each header
/// once and no header the original smuggled in.
pub fn pipeline(raw: &[u8]) {
    let (pipeline, keeping) = &*DEMO;
    let Ok(analysis) = pipeline.analyse(raw) else {
        return;
    };
    let _ = followups::deadline_reminders(&analysis, keeping, now());
    let _ = reply::classify_reply(&analysis.mail);
    let slots = draft::sample_slots(now(), pipeline.timezone());
    let options = ComposeOptions {
        slots: &slots,
        invite: None,
    };
    let Ok(composed) = pipeline.compose(&analysis, options, now(), 1) else {
        return;
    };
    assert_headers_once(&composed.reply.raw);
    let follow_up = FollowUpInfo {
        number: 1,
        max: 2,
        sent_at: now(),
        business_days: 3,
    };
    if let Ok(next) =
        pipeline.compose_follow_up(&analysis, &composed.reply.raw, follow_up, options, now(), 2)
    {
        assert_headers_once(&next.reply.raw);
    }
}

/// Template rendering with hostile values and hostile template text. The input is split at
/// U+001F: the first part, when not empty, is a team lead's `rfp.txt` (and the second, a
/// `_signature.txt` it may include); the rest are the values a mail carries into the context
/// (subject, names, addresses, body, reference, title, portal, the no-contact clause, the rep's
/// own name and company), used in turn. The template renders, or fails with an error that names
/// its file, and the draft composed around it carries each header once.
pub fn template(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1f}');
    let template = parts.next().unwrap_or_default();
    let signature = parts.next().unwrap_or_default();
    let values: Vec<&str> = parts.collect();
    let value = |i: usize| match values.len() {
        0 => "{{ x }}\r\nBcc: x@example.com",
        n => values[i % n],
    };
    let mail = Mail {
        message_id: Some(value(0).into()),
        in_reply_to: Vec::new(),
        references: vec![value(1).into()],
        subject: value(2).into(),
        from: Some(Address {
            name: Some(value(3).into()),
            email: format!("{}@example.com", value(4)),
        }),
        reply_to: None,
        to: Vec::new(),
        cc: Vec::new(),
        date: None,
        body: value(5).into(),
        attachment_names: vec![value(6).into()],
        calendar_parts: Vec::new(),
        is_bulk: false,
        is_auto_submitted: false,
        size: 0,
    };
    let facts = Facts {
        buyer: Some(value(7).into()),
        contact: Some(Stakeholder {
            name: Some(value(8).into()),
            email: Some(value(9).into()),
            title: Some(value(10).into()),
            role: StakeholderRole::Procurement,
        }),
        reply_to: None,
        references: vec![value(11).into()],
        titles: vec![value(12).into()],
        portal_urls: vec![value(13).into()],
        stakeholders: vec![Stakeholder {
            name: Some(value(14).into()),
            email: None,
            title: Some(value(15).into()),
            role: StakeholderRole::Business,
        }],
        deadlines: Vec::new(),
        no_contact_clause: Some(value(16).into()),
    };
    let identity = Identity {
        name: value(17).into(),
        title: value(18).into(),
        company: value(19).into(),
        ..Identity::demo()
    };
    let templates = if template.is_empty() {
        Templates::builtin()
    } else {
        let mut files = BTreeMap::new();
        for (name, source) in [("rfp.txt", template), ("_signature.txt", signature)] {
            files.insert(
                name.to_string(),
                (source.to_string(), format!("lead/{name}")),
            );
        }
        match Templates::from_files(Path::new("lead"), files) {
            Ok(templates) => templates,
            Err(e) => {
                assert!(e.to_string().contains("lead/"), "unlocated: {e}");
                return;
            }
        }
    };
    // The built-in set renders every category; a lead's text is rendered as rfp.txt (every
    // category takes the same path through it).
    let categories: Vec<Category> = if template.is_empty() {
        Category::PROCUREMENT
            .into_iter()
            .chain([Category::None])
            .collect()
    } else {
        vec![Category::Rfp]
    };
    for category in categories {
        let classification = Classification {
            label: Label::Procurement,
            category,
            score: 1.0,
            reasons: Vec::new(),
        };
        let ctx = DraftContext::new(&mail, &classification, &facts, &identity);
        let body = match templates.render(category, &ctx) {
            Ok(body) => body,
            Err(e) => {
                assert!(e.to_string().starts_with("cannot render "), "{e}");
                continue;
            }
        };
        let local = now().fixed_offset();
        if let Ok(reply) =
            draft::compose_reply(&mail, &identity, &body, "fuzz@example.com", local, None)
        {
            assert_headers_once(&reply.raw);
        }
    }
}

/// Config text through the loader: a config, or an error that names the file. A valid config
/// also describes itself and its schedules.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml(text, Path::new("fuzz.toml")) {
        Ok(config) => {
            let _ = config.describe();
            let _ = config.describe_schedules(now());
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.toml"), "unlocated: {e}"),
    }
}

/// The bytes an IMAP server sends, through a whole session of the adapter's commands
/// (`adapters::imap::replay`).
pub fn imap_response(data: &[u8]) {
    crate::adapters::imap::replay(data);
}

/// The headers pushback writes, each at most once, and nothing else: a CR or LF in a value from
/// a mail or a template must never start a header of its own.
fn assert_headers_once(raw: &[u8]) {
    const ALLOWED: [&str; 11] = [
        "mime-version",
        "from",
        "to",
        "cc",
        "subject",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "content-type",
        "content-transfer-encoding",
    ];
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let mut seen = Vec::new();
    for line in head.split("\r\n") {
        assert!(
            !line.contains(['\r', '\n']),
            "a bare CR or LF in the header block: {head:?}"
        );
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let name = line
            .split_once(':')
            .map(|(name, _)| name.to_ascii_lowercase())
            .unwrap_or_else(|| panic!("a header line without a name: {line:?} in {head:?}"));
        assert!(
            ALLOWED.contains(&name.as_str()),
            "unexpected header {name:?} in {head:?}"
        );
        assert!(!seen.contains(&name), "header {name:?} twice in {head:?}");
        seen.push(name);
    }
}

//! What the solicitation is called and where it lives: reference numbers ("RFP #2027-014",
//! "Tender Ref: ABC/2027/05"), the stated title ("RFP for Managed Print Services"), links to
//! e-sourcing portals, and the no-contact clause (cone of silence) that forbids reaching the
//! business outside procurement, which the drafter must then respect.

use aho_corasick::{AhoCorasick, MatchKind};
use regex::Regex;
use std::sync::LazyLock;

/// Longest clause or title kept, in characters.
const MAX_CLAUSE_CHARS: usize = 400;
const MAX_TITLE_CHARS: usize = 100;
/// How far after a solicitation word its number or title may reach, in bytes.
const REFERENCE_WINDOW: usize = 80;
const TITLE_WINDOW: usize = 260;
/// How far before and after a contact word a no-contact clause is looked for, in bytes.
const CLAUSE_LEAD: usize = 100;
const CLAUSE_TAIL: usize = 200;

#[derive(Debug, Default)]
pub struct References {
    pub references: Vec<String>,
    pub titles: Vec<String>,
    pub portal_urls: Vec<String>,
    pub no_contact_clause: Option<String>,
}

pub fn find_references(subject: &str, body: &str) -> References {
    let mut found = References::default();
    if let Some(title) = SUBJECT_TITLE
        .captures(subject)
        .and_then(|c| c.name("title"))
        .map(|t| clean_title(t.as_str()))
    {
        push_title(&mut found.titles, title);
    }
    for text in [subject, body] {
        solicitation_names(text, &mut found);
    }
    if body.contains("http") || body.contains("www.") {
        for m in URL.find_iter(body) {
            let url = m
                .as_str()
                .trim_end_matches(['.', ',', ';', ':', ')', ']', '>', '!', '?', '\'', '"']);
            if PORTAL.is_match(url) {
                push_unique(&mut found.portal_urls, url.to_string());
            }
        }
    }
    found.no_contact_clause = no_contact_clause(body);
    found
}

/// Reference numbers and titles both start at a solicitation word ("RFP", "Tender", "Bid"):
/// a fast literal search finds those words and the costly patterns run anchored there only.
fn solicitation_names(text: &str, found: &mut References) {
    let mut reference_end = 0;
    let mut title_end = 0;
    for hit in SOLICITATION_WORD.find_iter(text) {
        let start = hit.start();
        if text[..start]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
        {
            continue;
        }
        // An identifier needs a digit: without one in reach the costly pattern cannot yield
        // a reference, and most hits ("project", "contract") are ordinary words like that.
        let reference_window = window(text, start, REFERENCE_WINDOW);
        if start >= reference_end
            && reference_window.bytes().any(|b| b.is_ascii_digit())
            && let Some(end) = REFERENCE
                .captures(reference_window)
                .and_then(|caps| push_reference(&mut found.references, reference_window, &caps))
        {
            reference_end = start + end;
        }
        if start >= title_end
            && TITLE_WORDS
                .iter()
                .any(|w| text[hit.range()].eq_ignore_ascii_case(w))
        {
            let window = window(text, start, TITLE_WINDOW);
            if let Some(title) = TITLE.captures(window).and_then(|c| c.name("title")) {
                title_end = start + title.end();
                push_title(&mut found.titles, clean_title(title.as_str()));
            }
        }
    }
}

/// Adds "RFP #2027-014" (label and identifier as written); returns where it ended in `window`.
fn push_reference(
    references: &mut Vec<String>,
    window: &str,
    caps: &regex::Captures<'_>,
) -> Option<usize> {
    let id = caps.name("id")?;
    let trimmed = id.as_str().trim_end_matches(['.', '-', '/', '_']);
    if !is_reference_id(trimmed) {
        return None;
    }
    let end = id.start() + trimmed.len();
    let label = window[..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if !references.iter().any(|r| r.ends_with(trimmed)) {
        references.push(label);
    }
    Some(end)
}

/// The clause often runs over two sentences ("A cone of silence applies. Proposers shall not
/// contact..."): both are kept so the drafter sees exactly what is forbidden. The pattern runs
/// only in windows around a contact word.
fn no_contact_clause(body: &str) -> Option<String> {
    let mut clause: Vec<String> = Vec::new();
    let mut searched_to = 0;
    for hit in CONTACT_WORD.find_iter(body) {
        if hit.start() < searched_to || clause.len() == 2 {
            continue;
        }
        let mut from = hit.start().saturating_sub(CLAUSE_LEAD);
        while !body.is_char_boundary(from) {
            from -= 1;
        }
        let window = window(body, from, CLAUSE_LEAD + CLAUSE_TAIL);
        searched_to = from + window.len();
        for m in NO_CONTACT.find_iter(window) {
            let sentence = sentence_around(body, from + m.start(), from + m.end());
            if !clause.contains(&sentence) && clause.len() < 2 {
                clause.push(sentence);
            }
        }
    }
    if clause.is_empty() {
        return None;
    }
    Some(clause.join(" ").chars().take(MAX_CLAUSE_CHARS).collect())
}

/// Up to `len` bytes of `text` from `start`, cut on a character boundary.
fn window(text: &str, start: usize, len: usize) -> &str {
    let mut end = (start + len).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[start..end]
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if item.chars().count() >= 3 && !list.iter().any(|x| x.eq_ignore_ascii_case(&item)) {
        list.push(item);
    }
}

/// "Managed Print Services across all departments" after "Managed Print Services" is the same
/// title with the sentence running on: keep the shorter.
fn push_title(titles: &mut Vec<String>, title: String) {
    let lower = title.to_lowercase();
    if let Some(existing) = titles.iter_mut().find(|t| {
        let t = t.to_lowercase();
        lower.starts_with(&t) || t.starts_with(&lower)
    }) {
        if title.len() < existing.len() && title.chars().count() >= 3 {
            *existing = title;
        }
        return;
    }
    push_unique(titles, title);
}

/// An identifier carries a digit and is not a file name, a year alone or a price.
fn is_reference_id(id: &str) -> bool {
    let lower = id.to_ascii_lowercase();
    id.chars().any(|c| c.is_ascii_digit())
        && !(id.len() == 4 && id.chars().all(|c| c.is_ascii_digit()))
        && ![".doc", ".xls", ".pdf", ".zip", ".txt", "docx", "xlsx"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

fn clean_title(title: &str) -> String {
    let joined = title.split_whitespace().collect::<Vec<_>>().join(" ");
    let trimmed = joined.trim_end_matches(['.', ',', ';', ':', '-', ' ', '"', ')']);
    trimmed.chars().take(MAX_TITLE_CHARS).collect()
}

/// The sentence holding a match: back to the previous sentence end or blank line, on to the next.
fn sentence_around(text: &str, start: usize, end: usize) -> String {
    let from = text[..start]
        .rfind(". ")
        .map(|p| p + 2)
        .into_iter()
        .chain(text[..start].rfind("\n\n").map(|p| p + 2))
        .max()
        .unwrap_or(0);
    let to = [". ", ".\n", "\n\n"]
        .iter()
        .filter_map(|s| text[end..].find(s).map(|p| end + p + 1))
        .min()
        .unwrap_or(text.len());
    let joined = text[from..to]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    joined.chars().take(MAX_CLAUSE_CHARS).collect()
}

/// Cheap literal prefilters (see `literal_words`): the costly patterns below run only on mail
/// that contains one of their words.
static SOLICITATION_WORD: LazyLock<AhoCorasick> = LazyLock::new(|| {
    literal_words(&[
        "rfp",
        "rfq",
        "rfi",
        "rfb",
        "rft",
        "rfx",
        "itb",
        "itn",
        "itt",
        "ifb",
        "eoi",
        "tender",
        "solicitation",
        "bid",
        "contract",
        "project",
        "event",
        "quot",
        "request for",
        "invitation",
    ])
});

static CONTACT_WORD: LazyLock<AhoCorasick> = LazyLock::new(|| {
    literal_words(&[
        "silence",
        "quiet period",
        "blackout",
        "contact",
        "lobby",
        "communicat",
        "discuss",
        "directed",
        "addressed",
        "routed",
        "point of",
    ])
});

/// A search for plain words written in lower, Capitalised or UPPER case, earlier words first
/// where two start at one place (as a regex alternation would). A literal search, not a regex:
/// these words hit dozens of times in a long mail, and a regex match costs far more per hit.
fn literal_words(words: &[&str]) -> AhoCorasick {
    let mut variants = Vec::with_capacity(words.len() * 3);
    for word in words {
        let mut capitalised = word.to_string();
        capitalised[..1].make_ascii_uppercase();
        variants.push(word.to_string());
        variants.push(capitalised);
        variants.push(word.to_ascii_uppercase());
    }
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostFirst)
        .build(variants)
        .expect("literal word search")
}

/// Acronyms may stand before a bare number ("RFP 2027-014"); words need a number marker
/// ("Bid Number: B-1234"), or "bids due 12" would be a reference.
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)^(?:",
        r"(?:RFP|RFQ|RFI|RFB|RFT|ITB|IFB|ITT|ITN|RFx|EOI)\s*(?:No\.?|Number|Num\.?|Ref(?:erence)?\.?|ID)?\s*[:#]?\s*",
        r"|(?:tender|solicitation|bid|contract|project|event|sourcing\s+event|quote|quotation)\s*(?:No\.?|Number|Num\.?|Ref(?:erence)?\.?|ID|#)\s*[:#]?\s*",
        r")(?P<id>[A-Z0-9][A-Z0-9/._-]*)"
    ))
    .expect("reference regex")
});

/// The solicitation words `TITLE` can start with; the other hits are not tried.
const TITLE_WORDS: [&str; 8] = [
    "rfp",
    "rfq",
    "rfi",
    "itb",
    "ifb",
    "tender",
    "request for",
    "invitation",
];

static TITLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:RFP|RFQ|RFI|ITB|IFB|request\s+for\s+(?:proposals?|quot(?:es?|ations?)|information|bids?)|invitation\s+to\s+(?:bid|tender)|tender)\s+(?:for|to\s+provide|regarding)\s+(?:the\s+)?(?P<title>[A-Z][^.\n;:()]{2,100}?)(?:\s+(?:is|are|will|due|by|on|from|that|which|must|to\s+be)(?-u:\b)|[.\n;:(]|,\s|$)")
        .expect("title regex")
});

/// "RFP 2027-014 - Fleet Telematics", "RFQ: Office Furniture".
static SUBJECT_TITLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:(?:re|fwd?):\s*)*(?:RFP|RFQ|RFI|ITB|IFB|tender|solicitation)(?-u:\b)(?:\s*(?:No\.?|#)?\s*[A-Z0-9/._-]*\d[A-Z0-9/._-]*)?\s*(?:[-:\u{2013}]|for)\s+(?P<title>[A-Z][^\n]{2,100})$")
        .expect("subject title regex")
});

static URL: LazyLock<Regex> = LazyLock::new(|| {
    // Literal starts without (?i), for the engine's fast multi-literal search.
    Regex::new(r#"(?-u:\b)(?:https?://|HTTPS?://|Https?://|www\.|WWW\.)[^\s<>"'\]\)]+"#)
        .expect("url regex")
});

static PORTAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)ariba|coupa|jaggaer|sciquest|bonfirehub|bonfire|network\.sap|business\s*network|oracle(?:cloud)?\.com/.*(?:supplier|sourcing)|supplier\.?portal|ivalua|proactis|bidnet|periscope|bidsync|negometrix|tenders?\.|e-?sourcing|e-?procurement|eprocure|supplier[-_]?(?:registration|portal|login)|vendor[-_]?(?:registration|portal|login|self-?service)|isupplier|opengov|planetbids|demandstar|publicpurchase|govspend|procurement")
        .expect("portal regex")
});

static NO_CONTACT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)cone\s+of\s+silence|quiet\s+period|blackout\s+period|no[-\s]contact\s+period|lobbying",
        r"|(?:shall|must|may|should|will)\s+not\s+(?:contact|communicate|discuss|lobby)",
        r"|(?:prohibited|restricted|barred)\s+from\s+(?:contacting|communicating|discussing|lobbying)",
        r"|no\s+(?:contact|communications?)\s+(?:with|regarding|about|shall|may|is\s+permitted)",
        r"|(?:all\s+)?(?:communications?|contacts?|inquiries|questions)\s+(?:[A-Za-z0-9_]+\s+){0,6}(?:must|shall|should|are\s+to)\s+be\s+(?:directed|addressed|made|submitted|routed)\s+(?:only\s+|solely\s+|exclusively\s+)?(?:to|through|via)",
        r"|(?:sole|only|single)\s+point\s+of\s+contact"
    ))
    .expect("no-contact regex")
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_reference_numbers() {
        let table = [
            ("See RFP #2027-014 attached.", "RFP #2027-014"),
            ("Solicitation No. 21-33 is open.", "Solicitation No. 21-33"),
            ("Tender Ref: ABC/2027/05.", "Tender Ref: ABC/2027/05"),
            ("Bid Number: B-1234", "Bid Number: B-1234"),
            ("RFQ 0601-7 for gas", "RFQ 0601-7"),
        ];
        for (text, want) in table {
            let r = find_references("", text);
            assert_eq!(r.references, vec![want.to_string()], "{text}");
        }
    }

    #[test]
    fn ignores_numbers_that_are_not_references() {
        for text in [
            "Bids due 12 June",
            "See 0601RFQ1.xls",
            "RFP 2001 season",
            "the RFP process",
        ] {
            assert!(find_references("", text).references.is_empty(), "{text}");
        }
    }

    #[test]
    fn reads_titles_from_body_and_subject() {
        let r = find_references(
            "RFP 2027-014 - Fleet Telematics",
            "This RFP for Managed Print Services is due soon.",
        );
        assert_eq!(r.titles, vec!["Fleet Telematics", "Managed Print Services"]);
        let run_on = find_references(
            "RFP - Managed Print Services",
            "A Request for Proposals for Managed Print Services across all sites.",
        );
        assert_eq!(run_on.titles, vec!["Managed Print Services"]);
    }

    #[test]
    fn keeps_only_portal_links_without_trailing_punctuation() {
        let body = "Register at https://service.ariba.com/Supplier.aw/ad/register. Our site is https://www.example.com/about, see (https://acme.bonfirehub.com/opportunities/123).";
        let r = find_references("", body);
        assert_eq!(
            r.portal_urls,
            vec![
                "https://service.ariba.com/Supplier.aw/ad/register",
                "https://acme.bonfirehub.com/opportunities/123"
            ]
        );
    }

    #[test]
    fn finds_no_contact_clause() {
        let body = "Thanks for your interest.\n\nFrom issue until award, a cone of silence applies. Vendors shall not contact any staff other than the designated procurement officer.\n";
        let r = find_references("", body);
        assert_eq!(
            r.no_contact_clause.as_deref(),
            Some(
                "From issue until award, a cone of silence applies. Vendors shall not contact any staff other than the designated procurement officer."
            )
        );
        let directed = find_references(
            "",
            "All communication regarding this RFP must be directed to Jane Roe, Buyer.",
        );
        assert!(
            directed
                .no_contact_clause
                .unwrap()
                .starts_with("All communication")
        );
        assert!(
            find_references("", "Call me anytime.")
                .no_contact_clause
                .is_none()
        );
    }
}

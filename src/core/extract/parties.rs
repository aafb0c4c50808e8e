//! Who is on the buyer's side: the buying organisation, the sender as the contact (with the title
//! from the signature) and the people on To/Cc, each split into procurement (owns the process)
//! and business (owns the problem). The rep's own address cannot be told apart here; the caller
//! filters it.

use crate::core::mail::{Address, Mail};
use crate::core::model::{Stakeholder, StakeholderRole};
use aho_corasick::{AhoCorasick, MatchKind};
use regex::Regex;
use std::sync::LazyLock;

/// How many lines under the name are read as the signature block.
const SIGNATURE_LINES: usize = 6;
/// How many lines above the quoted history are searched for the signature.
const SIGNATURE_SEARCH_LINES: usize = 40;
/// Longer lines are prose, not a name or a closing ("Kind regards,").
const MAX_NAME_LINE_LEN: usize = 60;
const MAX_CLOSING_LEN: usize = 24;

#[derive(Debug, Default)]
pub struct Parties {
    pub buyer: Option<String>,
    pub contact: Option<Stakeholder>,
    pub stakeholders: Vec<Stakeholder>,
}

pub fn find_parties(mail: &Mail) -> Parties {
    let signature = mail
        .from
        .as_ref()
        .and_then(|from| signature(&mail.body, from));
    let contact = mail.from.as_ref().map(|from| {
        let name = from.name.as_deref().map(natural_name).or_else(|| {
            signature
                .as_ref()
                .filter(|s| s.is_sender)
                .map(|s| s.name.clone())
        });
        let title = signature
            .as_ref()
            .filter(|s| s.is_sender)
            .and_then(|s| s.title.clone());
        let role = match role_of(title.as_deref(), from) {
            StakeholderRole::Unknown => from
                .name
                .as_deref()
                .map_or(StakeholderRole::Unknown, role_from_title),
            known => known,
        };
        Stakeholder {
            role,
            name,
            email: Some(from.email.clone()),
            title,
        }
    });
    let buyer = signature
        .as_ref()
        .and_then(|s| s.company.clone())
        .or_else(|| {
            mail.from
                .as_ref()
                .and_then(|f| f.name.as_deref())
                .filter(|n| ORGANISATION.is_match(n))
                .map(String::from)
        })
        .or_else(|| {
            mail.from
                .as_ref()
                .and_then(|f| organisation_domain(f.domain()))
        });
    let sender = mail.from.as_ref().map(|f| f.email.as_str());
    let mut stakeholders: Vec<Stakeholder> = Vec::new();
    for address in mail.to.iter().chain(&mail.cc) {
        if Some(address.email.as_str()) == sender
            || stakeholders
                .iter()
                .any(|s| s.email.as_deref() == Some(&address.email))
        {
            continue;
        }
        stakeholders.push(Stakeholder {
            name: address.name.as_deref().map(natural_name),
            email: Some(address.email.clone()),
            title: None,
            role: role_of(None, address),
        });
    }
    for named in named_in_text(&mail.body) {
        let known = |s: &Stakeholder| {
            s.name
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(named.name.as_deref().unwrap_or("")))
        };
        match stakeholders.iter_mut().find(|s| known(s)) {
            Some(existing) if existing.title.is_none() => {
                existing.role = named.role;
                existing.title = named.title;
            }
            Some(_) => {}
            None if !contact.as_ref().is_some_and(known) => stakeholders.push(named),
            None => {}
        }
    }
    Parties {
        buyer,
        contact,
        stakeholders,
    }
}

/// People the buyer names with their role ("our Head of Operations, Sarah Mills", "Tom Lee
/// (CFO)"): often the business owners a discovery call should include. A fast search for title
/// words finds the candidates; the full pattern runs only around them.
fn named_in_text(body: &str) -> Vec<Stakeholder> {
    let mut found: Vec<Stakeholder> = Vec::new();
    let mut searched_to = 0;
    for hit in TITLE_HINT.find_iter(body) {
        if hit.start() < searched_to {
            continue;
        }
        let mut from = hit.start().saturating_sub(NAMED_REACH);
        while !body.is_char_boundary(from) {
            from -= 1;
        }
        let mut to = (hit.end() + NAMED_REACH).min(body.len());
        while !body.is_char_boundary(to) {
            to -= 1;
        }
        searched_to = to;
        for caps in NAMED_PERSON.captures_iter(&body[from..to]) {
            let pick = |names: [&str; 3]| names.iter().find_map(|n| caps.name(n));
            let (Some(name), Some(title)) = (
                pick(["name", "name2", "name3"]),
                pick(["title", "title2", "title3"]),
            ) else {
                continue;
            };
            let name = name
                .as_str()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            let title = title
                .as_str()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            // "the RFP Committee, John Smith" names a group, not a role; "Chief Procurement
            // Officer" and "Director of Facilities Management" are titles cut in two, not people.
            let title_cut = ["of", "for", "and", "&"]
                .iter()
                .any(|w| title.rsplit(' ').next() == Some(*w));
            if !TITLE_WORD.is_match(&title)
                || title_cut
                || TITLE_WORD.is_match(&name)
                || ORGANISATION.is_match(&name)
                || UNIT_WORD.is_match(&name)
                || found
                    .iter()
                    .any(|s| s.name.as_deref() == Some(name.as_str()))
            {
                continue;
            }
            found.push(Stakeholder {
                role: role_from_title(&title),
                name: Some(name),
                email: None,
                title: Some(title),
            });
        }
    }
    found
}

static UNIT_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)(?:management|operations|division|office|team|committee|unit|facilities|finance|technology|resources|affairs|relations|development|marketing|sales|support)(?-u:\b)")
        .expect("unit word regex")
});

/// How far around a title word a "name, title" pair is looked for, in bytes.
const NAMED_REACH: usize = 60;

/// A literal search, first listed word first where two start at one place (as the regex
/// alternation it replaced): a regex costs far more per hit.
static TITLE_HINT: LazyLock<AhoCorasick> = LazyLock::new(|| {
    AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostFirst)
        .build([
            "Director",
            "Manager",
            "Head of",
            "VP",
            "Vice President",
            "Chief",
            "CIO",
            "CFO",
            "CEO",
            "COO",
            "CTO",
            "CISO",
            "President",
            "Owner",
            "Officer",
            "Buyer",
            "Superintendent",
            "Controller",
        ])
        .expect("title hint search")
});

/// "our Head of Operations, Sarah Mills" / "Sarah Mills, our IT Manager" / "Tom Lee (CFO)".
static NAMED_PERSON: LazyLock<Regex> = LazyLock::new(|| {
    let title = r"(?:(?:Senior|Sr\.?|Chief|Deputy|Assistant|Associate|General|Executive|Vice|Head|Director|Manager|VP|[A-Z]{2,4}|President|Owner|Officer|Buyer|Superintendent|Controller|of|for|and|&|[A-Z][a-z]+)\s?){1,6}";
    let person = r"[A-Z][a-z]+(?:\s[A-Z]\.)?\s[A-Z][a-zA-Z'-]+";
    Regex::new(&format!(
        r"(?:(?i:our|the|my|your)\s+(?P<title>{title}),?\s+(?P<name>{person}))|(?:(?P<name2>{person}),\s+(?i:our|the)\s+(?P<title2>{title})|(?P<name3>{person})\s+\((?P<title3>{title})\))"
    ))
    .expect("named person regex")
});

/// Procurement titles are checked first: "Director of Procurement" runs the process.
pub fn role_from_title(title: &str) -> StakeholderRole {
    if PROCUREMENT_TITLE.is_match(title) {
        StakeholderRole::Procurement
    } else if BUSINESS_TITLE.is_match(title) {
        StakeholderRole::Business
    } else {
        StakeholderRole::Unknown
    }
}

fn role_of(title: Option<&str>, address: &Address) -> StakeholderRole {
    match title.map(role_from_title) {
        Some(role) if role != StakeholderRole::Unknown => role,
        _ if PROCUREMENT_MAILBOX.is_match(address.local_part()) => StakeholderRole::Procurement,
        _ => StakeholderRole::Unknown,
    }
}

static PROCUREMENT_TITLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)(?:procurement|purchasing|sourcing|contracts?|contracting|buyer|category\s+manager|tender|acquisitions?|supply\s+chain|commodity\s+manager|vendor\s+management|bids?)(?-u:\b)")
        .expect("procurement title regex")
});

static BUSINESS_TITLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)(?:vp|svp|evp|vice\s+president|director|head\s+of|chief|cio|cfo|ceo|coo|cto|ciso|president|owner|founder|manager|superintendent|operations|general\s+manager|principal|partner|administrator|lead|supervisor|engineer)(?-u:\b)")
        .expect("business title regex")
});

static PROCUREMENT_MAILBOX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)procure|purchas|sourcing|tender|bids?(?-u:\b)|rfp|rfq|contracts|buyer|supplier|vendor",
    )
    .expect("mailbox regex")
});

static ORGANISATION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)(?:inc|llc|llp|ltd|limited|corp|corporation|company|co|group|gmbh|ag|plc|s\.?a|city|county|state|department|dept|university|college|school|district|authority|agency|services|energy|power|gas|electric|utilities|bank|hospital|council|ministry|board|commission|association|partners|holdings|technologies|systems|solutions)(?-u:\b)\.?")
        .expect("organisation regex")
});

/// Free-mail domains say nothing about the buyer.
fn organisation_domain(domain: &str) -> Option<String> {
    let free = [
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "aol.com",
        "live.com",
        "msn.com",
        "icloud.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
    ];
    if domain.is_empty() || free.contains(&domain) {
        return None;
    }
    let trimmed = ["mail.", "email.", "smtp.", "mx."]
        .iter()
        .find_map(|p| domain.strip_prefix(p))
        .unwrap_or(domain);
    Some(trimmed.to_string())
}

/// "Gutman, Paul" (directory style) -> "Paul Gutman".
fn natural_name(name: &str) -> String {
    let name = name.trim().trim_matches('"').trim();
    match name.split_once(',') {
        Some((last, first))
            if !last.trim().contains(' ') && !first.trim().is_empty() && !first.contains(',') =>
        {
            format!("{} {}", first.trim(), last.trim())
        }
        _ => name.to_string(),
    }
}

#[derive(Debug)]
struct Signature {
    name: String,
    title: Option<String>,
    company: Option<String>,
    /// The block carries the sender's own name, so its title is the sender's.
    is_sender: bool,
}

/// The sender's signature block in the new part of the body (above any quoted history): the line
/// bearing the sender's name, then a title line and a company line below it.
fn signature(body: &str, from: &Address) -> Option<Signature> {
    let mut new_part_end = body.len();
    let mut offset = 0;
    for line in body.split_inclusive('\n') {
        if starts_quoted_history(line) {
            new_part_end = offset;
            break;
        }
        offset += line.len();
    }
    // A signature sits at the bottom of the new text: only its last lines are searched.
    let mut lines: Vec<&str> = body[..new_part_end]
        .lines()
        .rev()
        .take(SIGNATURE_SEARCH_LINES)
        .map(str::trim)
        .collect();
    lines.reverse();
    let tokens = name_tokens(from);
    let (name_at, is_sender) = match lines.iter().rposition(|line| is_name_line(line, &tokens)) {
        Some(at) => (at, true),
        // A team mailbox ("Supplier Onboarding") signs with a person's name under the closing.
        None => {
            let closing = lines
                .iter()
                .rposition(|line| line.len() <= MAX_CLOSING_LEN && CLOSING.is_match(line))?;
            let at = lines[closing + 1..].iter().position(|l| !l.is_empty())? + closing + 1;
            (at, false)
        }
    };
    let name_line = lines[name_at].trim_end_matches(',');
    // "Jim Mathes, President": name and title on one line.
    let (name, mut title) = match name_line.split_once(", ") {
        Some((name, rest)) if is_title_line(rest) => (name.to_string(), Some(rest.to_string())),
        _ => (name_line.to_string(), None),
    };
    let block = lines[name_at + 1..]
        .iter()
        .filter(|l| !l.is_empty())
        .take(SIGNATURE_LINES);
    let mut company = None;
    for line in block {
        // Contact lines, header lines ("Subject: ...") and prose are not titles or companies.
        if line.contains('@')
            || line.contains(':')
            || line.contains("http")
            || line.contains("www.")
            || line.len() > MAX_NAME_LINE_LEN
            || line.chars().filter(char::is_ascii_digit).count() >= 3
        {
            continue;
        }
        if title.is_none() && company.is_none() && is_title_line(line) {
            title = Some(collapse_spaces(line));
        } else if company.is_none()
            && ORGANISATION.is_match(line)
            && line.split_whitespace().count() <= 8
        {
            company = Some(collapse_spaces(line.trim_end_matches(['.', ','])));
        }
    }
    Some(Signature {
        name,
        title,
        company,
        is_sender,
    })
}

fn collapse_spaces(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "Senior Buyer", "Energy Manager": a line with a title word that is not a company's name,
/// or whose last word is the title itself (so "Energy" does not make it a company).
fn is_title_line(line: &str) -> bool {
    let last_word = line.rsplit(' ').next().unwrap_or("");
    TITLE_WORD.is_match(line) && (!ORGANISATION.is_match(line) || TITLE_WORD.is_match(last_word))
}

/// Lower-case name parts to look for: from the display name, else from the mailbox name.
fn name_tokens(from: &Address) -> Vec<String> {
    match &from.name {
        Some(name) => natural_name(name)
            .split(|c: char| !c.is_alphabetic())
            .filter(|t| t.len() >= 3)
            .map(str::to_lowercase)
            .collect(),
        None => vec![from.local_part().to_lowercase()],
    }
}

/// A short line of capitalised words without digits, sharing a name part with the sender.
fn is_name_line(line: &str, tokens: &[String]) -> bool {
    // "Reagan:" opens a letter; it does not sign one.
    if line.is_empty() || line.len() > MAX_NAME_LINE_LEN || line.ends_with(':') {
        return false;
    }
    let words: Vec<&str> = line.trim_end_matches(',').split_whitespace().collect();
    if words.is_empty() || words.len() > 5 || line.chars().any(|c| c.is_ascii_digit() || c == '@') {
        return false;
    }
    if !words
        .iter()
        .all(|w| w.starts_with(|c: char| c.is_uppercase()))
    {
        return false;
    }
    words.iter().any(|w| {
        let w: String = w
            .chars()
            .filter(|c| c.is_alphabetic())
            .collect::<String>()
            .to_lowercase();
        w.len() >= 3
            && tokens
                .iter()
                .any(|t| t == &w || (t.len() > w.len() && t.contains(&w)))
    })
}

/// Where the quoted history begins: "> ...", "-----Original Message-----", "----- Forwarded by",
/// "On ... wrote:" or a bare "From:" header. Plain string tests: this runs on every body line.
fn starts_quoted_history(line: &str) -> bool {
    let line = line.trim();
    let has_prefix = |prefix: &str| {
        line.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    line.starts_with('>')
        || (line.starts_with("--") && (line.contains("riginal") || line.contains("orward")))
        || has_prefix("from:")
        || (has_prefix("on ") && line.trim_end_matches(':').ends_with("wrote"))
}

static CLOSING: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^(?:(?:kind|best|warm|many)\s+)?(?:regards|thanks|thank\s+you|sincerely|cheers|best|respectfully)[,.!]?$")
        .expect("closing regex")
});

static TITLE_WORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?-u:\b)(?:manager|director|officer|buyer|specialist|analyst|coordinator|vp|vice\s+president|president|head|chief|cio|cfo|ceo|coo|cto|owner|administrator|agent|lead|supervisor|engineer|consultant|principal|purchasing|procurement|sourcing|contracts?|executive|superintendent|controller|treasurer|associate)(?-u:\b)")
        .expect("title regex")
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_roles_by_title() {
        let table = [
            ("Senior Buyer", StakeholderRole::Procurement),
            ("Director of Procurement", StakeholderRole::Procurement),
            ("Category Manager, IT", StakeholderRole::Procurement),
            ("Contracts Officer", StakeholderRole::Procurement),
            ("Tender Officer", StakeholderRole::Procurement),
            ("VP Operations", StakeholderRole::Business),
            ("Director of Facilities", StakeholderRole::Business),
            ("Head of Customer Service", StakeholderRole::Business),
            ("CIO", StakeholderRole::Business),
            ("IT Manager", StakeholderRole::Business),
            ("Owner", StakeholderRole::Business),
            ("Receptionist", StakeholderRole::Unknown),
        ];
        for (title, want) in table {
            assert_eq!(role_from_title(title), want, "{title}");
        }
    }

    #[test]
    fn reads_directory_style_names() {
        assert_eq!(natural_name("Gutman, Paul"), "Paul Gutman");
        assert_eq!(natural_name("Pat Buyer"), "Pat Buyer");
        assert_eq!(natural_name("Smith, Jones, and Co"), "Smith, Jones, and Co");
    }

    #[test]
    fn finds_signature_under_mailbox_name() {
        let from = Address {
            name: None,
            email: "bberneking@summit.example".into(),
        };
        let body = "Please bid.\n\nBrent Berneking\nSenior Buyer\nSummit Energy Services, Inc.\n502-429-3800\n";
        let sig = signature(body, &from).unwrap();
        assert_eq!(sig.name, "Brent Berneking");
        assert_eq!(sig.title.as_deref(), Some("Senior Buyer"));
        assert_eq!(sig.company.as_deref(), Some("Summit Energy Services, Inc"));
    }

    #[test]
    fn finds_people_named_with_their_role() {
        let body = "Our Head of Operations, Sarah Mills, will decide. Please copy Tom Lee (CFO) \
and Jane Roe, our Contracts Manager. Regards, the RFP Committee, John Smith. Our Chief Procurement Officer and the Director of \
Facilities Management will attend.";
        let named: Vec<_> = named_in_text(body)
            .into_iter()
            .map(|s| (s.name.unwrap(), s.title.unwrap(), s.role))
            .collect();
        assert_eq!(
            named,
            vec![
                (
                    "Sarah Mills".to_string(),
                    "Head of Operations".to_string(),
                    StakeholderRole::Business
                ),
                (
                    "Tom Lee".to_string(),
                    "CFO".to_string(),
                    StakeholderRole::Business
                ),
                (
                    "Jane Roe".to_string(),
                    "Contracts Manager".to_string(),
                    StakeholderRole::Procurement
                ),
            ]
        );
    }

    #[test]
    fn reads_title_beside_name_and_skips_prose() {
        let from = Address {
            name: Some("Jim Mathes".into()),
            email: "jmathes@chamber.example".into(),
        };
        let body = "Please attend.\n\nJim Mathes, President\nNorth Bay Chamber of Commerce\n";
        let sig = signature(body, &from).unwrap();
        assert_eq!(
            (sig.name.as_str(), sig.title.as_deref()),
            ("Jim Mathes", Some("President"))
        );
        let body = "Thanks,\nJim Mathes\nEnergy Manager\nSubject: RFP: Gas Supply\n";
        let sig = signature(body, &from).unwrap();
        assert_eq!(
            (sig.title.as_deref(), sig.company),
            (Some("Energy Manager"), None)
        );
    }

    #[test]
    fn free_mail_is_no_buyer() {
        assert_eq!(organisation_domain("gmail.com"), None);
        assert_eq!(
            organisation_domain("mail.cityofexample.gov").as_deref(),
            Some("cityofexample.gov")
        );
    }
}

//! Who is on the buyer's side: the buying organisation, the sender as the contact (with the title
//! from the signature) and the people on To/Cc, each split into procurement (owns the process)
//! and business (owns the problem). The rep's own address cannot be told apart here; the caller
//! filters it.

use crate::core::mail::{Address, Mail};
use crate::core::model::{Stakeholder, StakeholderRole};
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
        Stakeholder {
            role: role_of(title.as_deref(), from),
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
    Parties {
        buyer,
        contact,
        stakeholders,
    }
}

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
    let name = lines[name_at].trim_end_matches(',').to_string();
    let block = lines[name_at + 1..]
        .iter()
        .filter(|l| !l.is_empty())
        .take(SIGNATURE_LINES);
    let mut title = None;
    let mut company = None;
    for line in block {
        if line.contains('@')
            || line.contains("http")
            || line.contains("www.")
            || line.chars().filter(char::is_ascii_digit).count() >= 3
        {
            continue;
        }
        if title.is_none()
            && company.is_none()
            && TITLE_WORD.is_match(line)
            && !ORGANISATION.is_match(line)
        {
            title = Some(line.to_string());
        } else if company.is_none()
            && ORGANISATION.is_match(line)
            && line.split_whitespace().count() <= 8
        {
            company = Some(line.trim_end_matches(['.', ',']).to_string());
        }
    }
    Some(Signature {
        name,
        title,
        company,
        is_sender,
    })
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
    if line.is_empty() || line.len() > MAX_NAME_LINE_LEN {
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
    fn free_mail_is_no_buyer() {
        assert_eq!(organisation_domain("gmail.com"), None);
        assert_eq!(
            organisation_domain("mail.cityofexample.gov").as_deref(),
            Some("cityofexample.gov")
        );
    }
}

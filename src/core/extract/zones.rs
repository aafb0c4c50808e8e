//! Time-zone names as buyers write them after a deadline time ("5:00 PM EST", "17:00 CET",
//! "2:00 p.m. Pacific prevailing time", "UTC+5:30") resolved to an IANA name or a UTC offset.
//! "Local time" is recognised so callers can tell "no zone stated" from "the buyer's own zone".

use regex::Regex;
use std::sync::LazyLock;

/// What a zone phrase after a time means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZoneReading {
    /// An IANA name ("America/New_York") or a UTC offset ("+05:30").
    Resolved(String),
    /// "local time": the buyer's own zone, which the mail does not name.
    Local,
}

/// A zone phrase directly at the start of `text` (after spaces, commas or an opening bracket):
/// the reading and the byte length consumed.
pub fn zone_at_start(text: &str) -> Option<(ZoneReading, usize)> {
    let caps = ZONE_AT_START.captures(text)?;
    let whole = caps.get(0)?;
    let phrase = caps.name("zone")?.as_str();
    let reading = read_zone(phrase)?;
    Some((reading, whole.end()))
}

/// Resolves a zone phrase on its own ("EST", "Eastern Daylight Time", "GMT+1", "local time").
pub fn read_zone(phrase: &str) -> Option<ZoneReading> {
    let lower = phrase.trim().to_ascii_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let first = *words.first()?;
    if lower.contains("local") {
        return Some(ZoneReading::Local);
    }
    if let Some(offset) = offset_zone(&lower) {
        return Some(ZoneReading::Resolved(offset));
    }
    let name = match first {
        "eastern" | "est" | "edt" | "et" => "America/New_York",
        "central" if words.get(1) == Some(&"european") => "Europe/Berlin",
        "central" | "cst" | "cdt" | "ct" => "America/Chicago",
        "mountain" | "mst" | "mdt" | "mt" => "America/Denver",
        "pacific" | "pst" | "pdt" | "pt" | "ppt" => "America/Los_Angeles",
        "alaska" | "akst" | "akdt" => "America/Anchorage",
        "hawaii" | "hst" => "Pacific/Honolulu",
        "atlantic" | "ast" | "adt" => "America/Halifax",
        "gmt" | "bst" | "uk" | "british" | "london" | "greenwich" => "Europe/London",
        "utc" | "z" | "zulu" => return Some(ZoneReading::Resolved("+00:00".into())),
        "cet" | "cest" | "met" | "mez" | "mesz" => "Europe/Berlin",
        "eet" | "eest" => "Europe/Helsinki",
        "wet" | "west" => "Europe/Lisbon",
        // IST is also Irish and Israel time; in B2B mail it is overwhelmingly India.
        "ist" | "india" => "Asia/Kolkata",
        "sgt" | "singapore" => "Asia/Singapore",
        "hkt" => "Asia/Hong_Kong",
        "jst" => "Asia/Tokyo",
        "aest" | "aedt" => "Australia/Sydney",
        "acst" | "acdt" => "Australia/Adelaide",
        "awst" => "Australia/Perth",
        "nzst" | "nzdt" => "Pacific/Auckland",
        "sast" => "Africa/Johannesburg",
        _ => return None,
    };
    Some(ZoneReading::Resolved(name.into()))
}

/// "UTC+5:30", "GMT-05:00", "UTC +1" -> "+05:30", "-05:00", "+01:00".
fn offset_zone(lower: &str) -> Option<String> {
    let caps = OFFSET.captures(lower)?;
    let sign = caps.name("sign")?.as_str();
    let hours: u32 = caps.name("h")?.as_str().parse().ok()?;
    let minutes: u32 = caps.name("m").map_or(Ok(0), |m| m.as_str().parse()).ok()?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    let sign = if sign == "-" { '-' } else { '+' };
    Some(format!("{sign}{hours:02}:{minutes:02}"))
}

static OFFSET: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:utc|gmt)\s*(?P<sign>[+-])\s*(?P<h>\d{1,2})(?::?(?P<m>\d{2}))?$")
        .expect("offset regex")
});

/// Long names are case-insensitive; abbreviations must be upper case, since "et", "ct" and "pt"
/// are ordinary words in lower case.
static ZONE_AT_START: LazyLock<Regex> = LazyLock::new(|| {
    let long = r"(?i:(?:prevailing\s+)?local\s+time|(?:eastern|central|mountain|pacific|alaska|hawaii|atlantic)(?:\s+(?:standard|daylight|prevailing))?(?:\s+time)?|central\s+european(?:\s+(?:summer|standard))?\s+time|(?:uk|british|london|greenwich|india|singapore)(?:\s+(?:summer|standard|mean))?\s+time|(?:utc|gmt)\s*[+-]\s*\d{1,2}(?::?\d{2})?)";
    let abbrev = r"(?:UTC|GMT|BST|EST|EDT|ET|CST|CDT|CT|MST|MDT|MT|PST|PDT|PT|PPT|AKST|AKDT|HST|AST|ADT|CET|CEST|MET|MEZ|MESZ|EET|EEST|WET|WEST|IST|SGT|HKT|JST|AEST|AEDT|ACST|ACDT|AWST|NZST|NZDT|SAST|Z)";
    Regex::new(&format!(
        r"^[\s,]*(?:\(\s*)?(?P<zone>{long}|{abbrev})(?-u:\b)\)?"
    ))
    .expect("zone regex")
});

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(s: &str) -> Option<String> {
        match read_zone(s)? {
            ZoneReading::Resolved(name) => Some(name),
            ZoneReading::Local => None,
        }
    }

    #[test]
    fn reads_zone_phrases() {
        let table = [
            ("EST", "America/New_York"),
            ("EDT", "America/New_York"),
            ("Eastern Daylight Time", "America/New_York"),
            ("CST", "America/Chicago"),
            ("Central Standard Time", "America/Chicago"),
            ("PST", "America/Los_Angeles"),
            ("Pacific prevailing time", "America/Los_Angeles"),
            ("PPT", "America/Los_Angeles"),
            ("GMT", "Europe/London"),
            ("BST", "Europe/London"),
            ("CET", "Europe/Berlin"),
            ("CEST", "Europe/Berlin"),
            ("Central European Time", "Europe/Berlin"),
            ("UTC", "+00:00"),
            ("UTC+5:30", "+05:30"),
            ("GMT-05:00", "-05:00"),
            ("UTC +1", "+01:00"),
        ];
        for (phrase, want) in table {
            assert_eq!(resolved(phrase).as_deref(), Some(want), "{phrase}");
        }
        assert_eq!(read_zone("local time"), Some(ZoneReading::Local));
        assert_eq!(read_zone("prevailing local time"), Some(ZoneReading::Local));
        assert_eq!(read_zone("Martian time"), None);
        assert_eq!(read_zone("UTC+99"), None);
    }

    #[test]
    fn finds_zone_after_a_time() {
        let (z, used) = zone_at_start(" (PT) on Thursday").unwrap();
        assert_eq!(z, ZoneReading::Resolved("America/Los_Angeles".into()));
        assert_eq!(used, " (PT)".len());
        let (z, _) = zone_at_start(", Central Standard Time, on Monday").unwrap();
        assert_eq!(z, ZoneReading::Resolved("America/Chicago".into()));
        let (z, _) = zone_at_start(" local time on 14 June").unwrap();
        assert_eq!(z, ZoneReading::Local);
        // Lower-case "et" is a word, not Eastern Time.
        assert!(zone_at_start(" et al").is_none());
        assert!(zone_at_start(" on Monday").is_none());
    }
}

//! Deadline scoring: compares extracted deadlines with the dates a person read off each mail
//! (a `deadlines.csv`: file,kind,date,time,zone,relative,text). Pure: the caller reads the files
//! and runs the extraction; this module only counts.

use super::zones::{self, ZoneReading};
use crate::core::model::Deadline;
use chrono::{NaiveDate, NaiveTime, Offset, TimeZone};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, Serialize)]
pub struct DeadlineScore {
    /// Files present both in the gold file and in what was extracted.
    pub files: usize,
    /// Labelled submission deadlines with a date, and how many were found with that kind and date.
    pub submission_gold: usize,
    pub submission_found: usize,
    /// All labelled deadlines with a date (any kind), and how many were found with kind and date.
    pub all_gold: usize,
    pub all_found: usize,
    /// Labelled deadlines with no date ("early October"): not scored.
    pub undated_gold: usize,
    /// Labelled deadlines stating a date, a time and a zone, and how many were found with all three
    /// right (zones compared by meaning: "EST" matches "America/New_York" and "-05:00").
    pub timed_gold: usize,
    pub timed_found: usize,
    /// Extracted deadlines on labelled files whose date matches no labelled date of that file.
    pub false_positives: usize,
    /// Extracted deadlines whose date is labelled but with another kind.
    pub wrong_kind: usize,
    /// Deadlines extracted from files the gold file does not list (mail labelled not procurement).
    pub on_unlabelled_files: usize,
}

impl DeadlineScore {
    pub fn submission_recall(&self) -> f64 {
        ratio(self.submission_found, self.submission_gold)
    }

    pub fn all_recall(&self) -> f64 {
        ratio(self.all_found, self.all_gold)
    }

    pub fn timed_recall(&self) -> f64 {
        ratio(self.timed_found, self.timed_gold)
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

impl fmt::Display for DeadlineScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "deadlines over {} labelled files", self.files)?;
        writeln!(
            f,
            "  submission kind+date   {:>3}/{:<3} {:.3}",
            self.submission_found,
            self.submission_gold,
            self.submission_recall()
        )?;
        writeln!(
            f,
            "  all kinds kind+date    {:>3}/{:<3} {:.3}",
            self.all_found,
            self.all_gold,
            self.all_recall()
        )?;
        writeln!(
            f,
            "  time+zone right        {:>3}/{:<3} {:.3}",
            self.timed_found,
            self.timed_gold,
            self.timed_recall()
        )?;
        writeln!(f, "  undated gold (skipped) {:>3}", self.undated_gold)?;
        writeln!(f, "  false positives        {:>3}", self.false_positives)?;
        writeln!(f, "  right date, wrong kind {:>3}", self.wrong_kind)?;
        write!(
            f,
            "  on unlabelled files    {:>3}",
            self.on_unlabelled_files
        )
    }
}

#[derive(Debug, serde::Deserialize)]
struct GoldRow {
    file: String,
    kind: String,
    date: String,
    time: String,
    zone: String,
}

/// gold = text of a deadlines.csv; found = extracted deadlines per file name (e.g. "dev_002.eml").
/// Only files present in `found` are scored (the caller passes the procurement-labelled ones or all).
pub fn score_deadlines(
    gold_csv_text: &str,
    found: &BTreeMap<String, Vec<Deadline>>,
) -> Result<DeadlineScore, String> {
    let mut gold: BTreeMap<String, Vec<GoldRow>> = BTreeMap::new();
    let mut reader = csv::Reader::from_reader(gold_csv_text.as_bytes());
    for (index, row) in reader.deserialize::<GoldRow>().enumerate() {
        let row = row.map_err(|e| format!("cannot read deadlines row {}: {e}", index + 2))?;
        gold.entry(row.file.clone()).or_default().push(row);
    }
    let mut score = DeadlineScore {
        files: 0,
        submission_gold: 0,
        submission_found: 0,
        all_gold: 0,
        all_found: 0,
        undated_gold: 0,
        timed_gold: 0,
        timed_found: 0,
        false_positives: 0,
        wrong_kind: 0,
        on_unlabelled_files: 0,
    };
    for (file, extracted) in found {
        let Some(rows) = gold.get(file) else {
            score.on_unlabelled_files += extracted.len();
            continue;
        };
        score.files += 1;
        let mut gold_dates = Vec::new();
        for row in rows.iter().filter(|r| r.kind != "none") {
            let Some(date) = parse_date(&row.date, file)? else {
                score.undated_gold += 1;
                continue;
            };
            gold_dates.push((row.kind.as_str(), date));
            let hit = extracted
                .iter()
                .find(|d| d.kind.as_str() == row.kind && d.date == Some(date));
            score.all_gold += 1;
            score.all_found += usize::from(hit.is_some());
            if row.kind == "submission" {
                score.submission_gold += 1;
                score.submission_found += usize::from(hit.is_some());
            }
            if !row.time.is_empty() && !row.zone.is_empty() {
                score.timed_gold += 1;
                let time = NaiveTime::parse_from_str(&row.time, "%H:%M")
                    .map_err(|e| format!("cannot read time {:?} for {file}: {e}", row.time))?;
                let right = hit.is_some_and(|d| {
                    d.time == Some(time)
                        && d.zone
                            .as_deref()
                            .is_some_and(|z| same_zone(&row.zone, z, date, time))
                });
                score.timed_found += usize::from(right);
            }
        }
        for d in extracted {
            let Some(date) = d.date else { continue };
            if gold_dates
                .iter()
                .any(|(k, g)| *g == date && *k == d.kind.as_str())
            {
                continue;
            }
            if gold_dates.iter().any(|(_, g)| *g == date) {
                score.wrong_kind += 1;
            } else {
                score.false_positives += 1;
            }
        }
    }
    Ok(score)
}

fn parse_date(text: &str, file: &str) -> Result<Option<NaiveDate>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(Some)
        .map_err(|e| format!("cannot read date {text:?} for {file}: {e}"))
}

/// Zones compared by meaning: the same IANA name, or the same UTC offset at that moment.
fn same_zone(gold: &str, found: &str, date: NaiveDate, time: NaiveTime) -> bool {
    let gold = match zones::read_zone(gold) {
        Some(ZoneReading::Resolved(name)) => name,
        _ => return gold.eq_ignore_ascii_case(found),
    };
    gold == found || offset_seconds(&gold, date, time) == offset_seconds(found, date, time)
}

fn offset_seconds(zone: &str, date: NaiveDate, time: NaiveTime) -> Option<i32> {
    if let Some(rest) = zone.strip_prefix(['+', '-']) {
        let (h, m) = rest.split_once(':')?;
        let secs = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
        return Some(if zone.starts_with('-') { -secs } else { secs });
    }
    let tz: chrono_tz::Tz = zone.parse().ok()?;
    let local = tz.from_local_datetime(&date.and_time(time)).earliest()?;
    Some(local.offset().fix().local_minus_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::DeadlineKind;

    const GOLD: &str = "file,kind,date,time,zone,relative,text\n\
a.eml,submission,2027-03-03,17:00,EST,,x\n\
a.eml,questions,2027-02-20,,,,y\n\
b.eml,pre_bid,,,,early March,z\n\
c.eml,none,,,,,\n";

    fn deadline(
        kind: DeadlineKind,
        date: &str,
        time: Option<&str>,
        zone: Option<&str>,
    ) -> Deadline {
        Deadline {
            kind,
            date: NaiveDate::parse_from_str(date, "%Y-%m-%d").ok(),
            time: time.and_then(|t| NaiveTime::parse_from_str(t, "%H:%M").ok()),
            zone: zone.map(String::from),
            text: String::new(),
            ambiguous: false,
        }
    }

    #[test]
    fn counts_hits_misses_and_false_positives() {
        let mut found = BTreeMap::new();
        found.insert(
            "a.eml".to_string(),
            vec![
                // EST in winter is -05:00, so an offset counts as the same zone.
                deadline(
                    DeadlineKind::Submission,
                    "2027-03-03",
                    Some("17:00"),
                    Some("-05:00"),
                ),
                deadline(DeadlineKind::Submission, "2027-02-20", None, None),
                deadline(DeadlineKind::Other, "2027-04-01", None, None),
            ],
        );
        found.insert("b.eml".to_string(), vec![]);
        found.insert(
            "z.eml".to_string(),
            vec![deadline(DeadlineKind::Other, "2027-01-01", None, None)],
        );
        let s = score_deadlines(GOLD, &found).unwrap();
        assert_eq!((s.files, s.submission_gold, s.submission_found), (2, 1, 1));
        assert_eq!((s.all_gold, s.all_found, s.undated_gold), (2, 1, 1));
        assert_eq!((s.timed_gold, s.timed_found), (1, 1));
        assert_eq!(
            (s.false_positives, s.wrong_kind, s.on_unlabelled_files),
            (1, 1, 1)
        );
        assert!(s.to_string().contains("submission kind+date"));
    }

    #[test]
    fn zones_compare_by_meaning() {
        let date = NaiveDate::from_ymd_opt(2000, 7, 24).unwrap();
        let time = NaiveTime::from_hms_opt(17, 0, 0).unwrap();
        assert!(same_zone(
            "Eastern Daylight Time",
            "America/New_York",
            date,
            time
        ));
        assert!(same_zone("EDT", "-04:00", date, time));
        assert!(!same_zone("EDT", "America/Chicago", date, time));
    }

    #[test]
    fn bad_gold_is_an_error() {
        let found = BTreeMap::from([("a.eml".to_string(), vec![])]);
        let bad = "file,kind,date,time,zone,relative,text\na.eml,submission,March,,,,x\n";
        assert!(score_deadlines(bad, &found).is_err());
    }
}

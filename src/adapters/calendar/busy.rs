//! Busy time in iCalendar text from elsewhere (an export, a published URL, CalDAV data): which
//! stretches of `[from, to)` the rep cannot take a call in. Pure: no IO, no clock.
//!
//! Time zones: a TZID is looked up as an IANA name (also inside a prefixed path such as
//! `/mozilla.org/20050126_1/Europe/Berlin`, or through the VTIMEZONE's X-LIC-LOCATION); failing
//! that, the calendar's own VTIMEZONE definition is evaluated (Outlook and Exchange write Windows
//! names such as `W. Europe Standard Time`). A TZID that is neither is an error naming it: a
//! guessed offset could put a real meeting in a slot pushback offers the buyer.
//!
//! Recurrence goes through the `rrule` crate (every FREQ, BYxxx, COUNT and UNTIL it supports),
//! expanded on wall-clock times so a 09:00 meeting stays at 09:00 across a DST change, with
//! RDATE, EXDATE and overridden instances (RECURRENCE-ID) applied here.

use std::collections::HashMap;
use std::rc::Rc;

use chrono::{
    DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;
use icalendar::parser::{Component, Property, read_calendar_simple, unfold};
use rrule::{RRule, Unvalidated};

use super::{Busy, Error};

pub fn busy_from_ics(
    text: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    floating_tz: Tz,
) -> Result<Vec<Busy>, Error> {
    busy_except(text, from, to, floating_tz, |_| false)
}

/// Like [`busy_from_ics`], leaving out the events whose UID `is_own` accepts.
pub(super) fn busy_except(
    text: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    floating_tz: Tz,
    is_own: impl Fn(&str) -> bool,
) -> Result<Vec<Busy>, Error> {
    let unfolded = unfold(text);
    let roots = read_calendar_simple(&unfolded).map_err(|e| Error::Ics {
        reason: format!("syntax error ({:?}) near {:?}", e.code, excerpt(e.input)),
    })?;
    let calendars: Vec<&Component<'_>> = roots.iter().filter(|c| is(c, "VCALENDAR")).collect();
    if calendars.is_empty() {
        return Err(Error::Ics {
            reason: format!("no VCALENDAR in {:?}", excerpt(&unfolded)),
        });
    }
    let window = Window { from, to };
    let mut busy = Vec::new();
    for calendar in calendars {
        let zones = Zones::new(calendar, floating_tz);
        let events: Vec<&Component<'_>> = calendar
            .components
            .iter()
            .filter(|c| is(c, "VEVENT"))
            .filter(|c| !is_own(value(c, "UID").unwrap_or("")))
            .collect();
        let mut moved: HashMap<&str, Vec<Time>> = HashMap::new();
        for event in &events {
            if let Some(id) = event.find_prop("RECURRENCE-ID") {
                let uid = value(event, "UID").unwrap_or("");
                let time = zones
                    .time(id)
                    .map_err(|reason| event_error(event, reason))?;
                moved.entry(uid).or_default().push(time);
            }
        }
        for event in events {
            let uid = value(event, "UID").unwrap_or("");
            let moved = match event.find_prop("RECURRENCE-ID") {
                None => moved.get(uid).map(Vec::as_slice).unwrap_or_default(),
                Some(_) => &[],
            };
            event_busy(event, &zones, moved, window, &mut busy)
                .map_err(|reason| event_error(event, reason))?;
        }
        for freebusy in calendar.components.iter().filter(|c| is(c, "VFREEBUSY")) {
            freebusy_busy(freebusy, &zones, window, &mut busy).map_err(|reason| Error::Ics {
                reason: format!("VFREEBUSY: {reason}"),
            })?;
        }
    }
    Ok(merge(busy))
}

#[derive(Clone, Copy)]
struct Window {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

impl Window {
    fn keep(&self, start: DateTime<Utc>, end: DateTime<Utc>, busy: &mut Vec<Busy>) {
        if start < self.to && end > self.from && start < end {
            busy.push((start, end));
        }
    }
}

fn event_error(event: &Component<'_>, reason: String) -> Error {
    Error::Ics {
        reason: format!(
            "event {:?}: {reason}",
            value(event, "UID").unwrap_or("without UID")
        ),
    }
}

/// One VEVENT's busy stretches in the window: every occurrence unless it is transparent,
/// cancelled, excluded or moved (`moved`: the RECURRENCE-IDs other VEVENTs take over).
fn event_busy(
    event: &Component<'_>,
    zones: &Zones,
    moved: &[Time],
    window: Window,
    busy: &mut Vec<Busy>,
) -> Result<(), String> {
    if value(event, "TRANSP").is_some_and(|v| v.eq_ignore_ascii_case("TRANSPARENT"))
        || value(event, "STATUS").is_some_and(|v| v.eq_ignore_ascii_case("CANCELLED"))
    {
        return Ok(());
    }
    let start = zones.time(event.find_prop("DTSTART").ok_or("no DTSTART")?)?;
    let zone = start.zone.clone();
    let length = if let Some(end) = event.find_prop("DTEND") {
        let end = zones.time(end)?;
        if start.date {
            Length::days((end.wall - start.wall).num_days())
        } else {
            Length::exact(end.instant() - start.instant())
        }
    } else if let Some(text) = value(event, "DURATION") {
        parse_duration(text).ok_or_else(|| format!("bad DURATION {text:?}"))?
    } else if start.date {
        Length::days(1)
    } else {
        Length::exact(Duration::zero())
    };
    if length.approximate() <= Duration::zero() {
        return Ok(());
    }
    let mut starts = vec![start.wall];
    if let Some(rule) = event.find_prop("RRULE") {
        // Wide enough for any UTC offset on either side, then cut exactly below.
        let low = window.from.naive_utc() - length.approximate() - Duration::days(2);
        let high = window.to.naive_utc() + Duration::days(2);
        starts.extend(expand(rule.val.as_str(), &start, low, high)?);
    }
    for rdate in props(event, "RDATE") {
        starts.extend(zones.times(rdate)?.iter().map(|t| zone.wall(t.instant())));
    }
    let mut excluded = moved.to_vec();
    for exdate in props(event, "EXDATE") {
        excluded.extend(zones.times(exdate)?);
    }
    starts.sort();
    starts.dedup();
    for wall in starts {
        if excluded.iter().any(|x| x.matches(wall, &zone)) {
            continue;
        }
        let end = length
            .after(wall, &zone)
            .ok_or("the event ends out of range")?;
        window.keep(zone.instant(wall), end, busy);
    }
    Ok(())
}

/// FREEBUSY periods (`start/end` or `start/duration`) that are not FBTYPE=FREE.
fn freebusy_busy(
    component: &Component<'_>,
    zones: &Zones,
    window: Window,
    busy: &mut Vec<Busy>,
) -> Result<(), String> {
    for property in props(component, "FREEBUSY") {
        if param(property, "FBTYPE").is_some_and(|t| t.eq_ignore_ascii_case("FREE")) {
            continue;
        }
        for period in property.val.as_str().split(',') {
            let (start, end) = period
                .split_once('/')
                .ok_or_else(|| format!("bad period {period:?}"))?;
            let start = zones.parse(start, None)?.instant();
            let end = match parse_duration(end) {
                Some(length) => length
                    .after(start.naive_utc(), &UTC)
                    .ok_or_else(|| format!("bad period {period:?}"))?,
                None => zones.parse(end, None)?.instant(),
            };
            window.keep(start, end, busy);
        }
    }
    Ok(())
}

/// The occurrence starts of `rule` (an RRULE value) from `start` that fall in `[low, high]`,
/// as wall-clock times in the start's zone.
fn expand(
    rule: &str,
    start: &Time,
    low: NaiveDateTime,
    high: NaiveDateTime,
) -> Result<Vec<NaiveDateTime>, String> {
    let (mut parsed, until) = split_rule(rule)?;
    if let Some(until) = until {
        let until = Time::parse(until, &start.zone)?;
        let wall = if until.date {
            // A date UNTIL includes that whole day.
            until.wall + Duration::days(1) - Duration::seconds(1)
        } else {
            start.zone.wall(until.instant())
        };
        if wall < start.wall {
            return Ok(Vec::new());
        }
        parsed = parsed.until(stand_in(wall));
    }
    let set = parsed
        .build(stand_in(start.wall))
        .map_err(|e| format!("bad RRULE {rule:?}: {e}"))?
        .after(stand_in(low))
        .before(stand_in(high));
    Ok(set
        .all(u16::MAX)
        .dates
        .iter()
        .map(|d| d.naive_utc())
        .collect())
}

/// An RRULE value without its UNTIL, and the UNTIL text: rrule would read a floating UNTIL in
/// the machine's local zone, so callers put it back as the wall-clock time it means.
fn split_rule(rule: &str) -> Result<(RRule<Unvalidated>, Option<&str>), String> {
    let (parts, until): (Vec<&str>, Vec<&str>) = rule
        .split(';')
        .partition(|p| !p.to_ascii_uppercase().starts_with("UNTIL="));
    let parsed = parts
        .join(";")
        .parse()
        .map_err(|e| format!("bad RRULE {rule:?}: {e}"))?;
    Ok((parsed, until.first().map(|u| &u["UNTIL=".len()..])))
}

/// rrule works on zoned times; UTC, which has no DST, stands in for a bare wall clock.
fn stand_in(wall: NaiveDateTime) -> DateTime<rrule::Tz> {
    rrule::Tz::UTC.from_utc_datetime(&wall)
}

/// One DATE or DATE-TIME value: a wall-clock time and the zone that gives it meaning.
#[derive(Clone)]
struct Time {
    wall: NaiveDateTime,
    zone: Zone,
    /// A DATE (all-day) value, at midnight in the rep's zone.
    date: bool,
}

impl Time {
    /// `text` is `YYYYMMDD`, `YYYYMMDDTHHMMSS` (in `zone`) or `YYYYMMDDTHHMMSSZ`.
    fn parse(text: &str, zone: &Zone) -> Result<Time, String> {
        let bad = || format!("bad date or time {text:?}");
        if text.len() == 8 {
            let day = NaiveDate::parse_from_str(text, "%Y%m%d").map_err(|_| bad())?;
            return Ok(Time {
                wall: day.and_time(NaiveTime::MIN),
                zone: zone.clone(),
                date: true,
            });
        }
        let (digits, utc) = match text.strip_suffix(['Z', 'z']) {
            Some(digits) => (digits, true),
            None => (text, false),
        };
        let wall = NaiveDateTime::parse_from_str(digits, "%Y%m%dT%H%M%S").map_err(|_| bad())?;
        Ok(Time {
            wall,
            zone: if utc { UTC } else { zone.clone() },
            date: false,
        })
    }

    fn instant(&self) -> DateTime<Utc> {
        self.zone.instant(self.wall)
    }

    /// Whether this EXDATE or RECURRENCE-ID names the occurrence starting at `wall` in `zone`;
    /// a DATE names every occurrence that day.
    fn matches(&self, wall: NaiveDateTime, zone: &Zone) -> bool {
        if self.date {
            self.wall.date() == wall.date()
        } else {
            zone.wall(self.instant()) == wall
        }
    }
}

const UTC: Zone = Zone::Iana(Tz::UTC);

/// How wall-clock times in one TZID become instants.
#[derive(Clone)]
enum Zone {
    Iana(Tz),
    /// From the calendar's VTIMEZONE, for names no IANA lookup knows.
    Defined(Rc<Vec<Observance>>),
}

impl Zone {
    fn instant(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        match self {
            Zone::Iana(tz) => match tz.from_local_datetime(&wall) {
                LocalResult::Single(t) => t.with_timezone(&Utc),
                // Twice on the clock (DST ends): RFC 5545 takes the first.
                LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
                // In the gap (DST starts): RFC 5545 uses the offset from before the gap.
                LocalResult::None => {
                    let before = tz.offset_from_utc_datetime(&(wall - Duration::days(1)));
                    Utc.from_utc_datetime(&(wall - before.fix()))
                }
            },
            Zone::Defined(observances) => {
                let offset = Observance::offset_at(observances, wall);
                Utc.from_utc_datetime(&(wall - Duration::seconds(offset.into())))
            }
        }
    }

    fn wall(&self, instant: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Zone::Iana(tz) => instant.with_timezone(tz).naive_local(),
            Zone::Defined(observances) => {
                let utc = instant.naive_utc();
                let offset = Observance::offset_at(observances, utc);
                utc + Duration::seconds(offset.into())
            }
        }
    }
}

/// One STANDARD or DAYLIGHT part of a VTIMEZONE: from its onsets on, clocks show `offset_to`.
struct Observance {
    start: NaiveDateTime,
    offset_from: i32,
    offset_to: i32,
    rule: Option<RRule<Unvalidated>>,
    rdates: Vec<NaiveDateTime>,
}

impl Observance {
    fn parse(component: &Component<'_>) -> Result<Observance, String> {
        let offset = |name: &str| {
            let text = value(component, name).ok_or(format!("no {name}"))?;
            parse_offset(text).ok_or(format!("bad {name} {text:?}"))
        };
        let start = value(component, "DTSTART").ok_or("no DTSTART")?;
        let start = Time::parse(start, &UTC)?.wall;
        let rule = match value(component, "RRULE").map(split_rule).transpose()? {
            // This UNTIL is UTC by definition; taking it as wall-clock time errs by hours on
            // the last onset of a rule that ended years ago, which changes nothing.
            Some((rule, Some(until))) => Some(rule.until(stand_in(Time::parse(until, &UTC)?.wall))),
            Some((rule, None)) => Some(rule),
            None => None,
        };
        let mut rdates = Vec::new();
        for rdate in props(component, "RDATE") {
            for text in rdate.val.as_str().split(',') {
                rdates.push(Time::parse(text, &UTC)?.wall);
            }
        }
        Ok(Observance {
            start,
            offset_from: offset("TZOFFSETFROM")?,
            offset_to: offset("TZOFFSETTO")?,
            rule,
            rdates,
        })
    }

    /// The UTC offset in seconds at `wall`: that of the observance with the latest onset at
    /// or before it (before every onset, the earliest one's TZOFFSETFROM).
    fn offset_at(observances: &[Observance], wall: NaiveDateTime) -> i32 {
        observances
            .iter()
            .filter_map(|o| o.last_onset(wall).map(|onset| (onset, o.offset_to)))
            .max_by_key(|(onset, _)| *onset)
            .map(|(_, offset)| offset)
            .or_else(|| {
                observances
                    .iter()
                    .min_by_key(|o| o.start)
                    .map(|o| o.offset_from)
            })
            .unwrap_or(0)
    }

    fn last_onset(&self, wall: NaiveDateTime) -> Option<NaiveDateTime> {
        if self.start > wall {
            return None;
        }
        let from_rule = self.rule.clone().and_then(|rule| {
            let set = rule.build(stand_in(self.start)).ok()?;
            // Onsets are yearly: the last one lies within the year and a day before `wall`.
            let set = set
                .after(stand_in(wall - Duration::days(367)))
                .before(stand_in(wall));
            set.all(u16::MAX).dates.last().map(|d| d.naive_utc())
        });
        let from_rdates = self.rdates.iter().copied().filter(|d| *d <= wall).max();
        [Some(self.start), from_rule, from_rdates]
            .into_iter()
            .flatten()
            .max()
    }
}

/// The TZIDs of one VCALENDAR and the rep's zone for floating times and dates.
struct Zones {
    floating: Zone,
    /// VTIMEZONE definitions by TZID, kept for names no IANA lookup resolves.
    defined: HashMap<String, Result<Zone, String>>,
    /// X-LIC-LOCATION (an IANA name some producers add) by TZID.
    locations: HashMap<String, String>,
}

impl Zones {
    fn new(calendar: &Component<'_>, floating_tz: Tz) -> Zones {
        let mut defined = HashMap::new();
        let mut locations = HashMap::new();
        for vtimezone in calendar.components.iter().filter(|c| is(c, "VTIMEZONE")) {
            let Some(tzid) = value(vtimezone, "TZID") else {
                continue;
            };
            if let Some(location) = value(vtimezone, "X-LIC-LOCATION") {
                locations.insert(tzid.to_string(), location.to_string());
            }
            let observances = vtimezone
                .components
                .iter()
                .filter(|c| is(c, "STANDARD") || is(c, "DAYLIGHT"))
                .map(Observance::parse)
                .collect::<Result<Vec<_>, _>>()
                .and_then(|o| {
                    if o.is_empty() {
                        Err("no STANDARD or DAYLIGHT part".to_string())
                    } else {
                        Ok(Zone::Defined(Rc::new(o)))
                    }
                })
                .map_err(|e| format!("cannot use the VTIMEZONE {tzid:?}: {e}"));
            defined.insert(tzid.to_string(), observances);
        }
        Zones {
            floating: Zone::Iana(floating_tz),
            defined,
            locations,
        }
    }

    fn zone(&self, tzid: &str) -> Result<Zone, String> {
        let tzid = tzid.trim_matches('"');
        let iana = |name: &str| name.parse::<Tz>().ok();
        // "/mozilla.org/20050126_1/Europe/Berlin": the IANA name is a suffix of the path.
        let suffix = || {
            tzid.match_indices('/')
                .find_map(|(i, _)| iana(&tzid[i + 1..]))
        };
        if let Some(tz) = iana(tzid)
            .or_else(|| self.locations.get(tzid).and_then(|l| iana(l)))
            .or_else(suffix)
        {
            return Ok(Zone::Iana(tz));
        }
        match self.defined.get(tzid) {
            Some(defined) => defined.clone(),
            None => Err(format!(
                "unknown time zone {tzid:?}: not an IANA name and no VTIMEZONE defines it"
            )),
        }
    }

    /// A DATE or DATE-TIME property's first value, in its TZID's zone if it has one.
    fn time(&self, property: &Property<'_>) -> Result<Time, String> {
        let text = property.val.as_str().split(',').next().unwrap_or_default();
        self.parse(text, param(property, "TZID"))
    }

    /// Every value of a list property (EXDATE, RDATE); a PERIOD counts by its start.
    fn times(&self, property: &Property<'_>) -> Result<Vec<Time>, String> {
        property
            .val
            .as_str()
            .split(',')
            .map(|text| {
                let start = text.split('/').next().unwrap_or_default();
                self.parse(start, param(property, "TZID"))
            })
            .collect()
    }

    fn parse(&self, text: &str, tzid: Option<&str>) -> Result<Time, String> {
        let zone = match tzid {
            // A DATE is a day on the rep's calendar, whatever TZID it carries.
            Some(tzid) if text.trim().len() != 8 => self.zone(tzid)?,
            _ => self.floating.clone(),
        };
        Time::parse(text.trim(), &zone)
    }
}

/// `+0100`, `-0430`, `+013045`: seconds east of UTC.
fn parse_offset(text: &str) -> Option<i32> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    if !matches!(digits.len(), 4 | 6) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let part = |i: usize| {
        digits
            .get(i..i + 2)
            .map_or(Some(0), |p| p.parse::<i32>().ok())
    };
    Some(sign * (part(0)? * 3600 + part(2)? * 60 + part(4)?))
}

/// How long an event lasts, the RFC 5545 way: days (and weeks) are nominal, so a day-long
/// event ends at the same wall-clock time the next day even across a DST change; hours,
/// minutes and seconds are exact, and so is the span from DTSTART to a DTEND.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Length {
    days: i64,
    exact: Duration,
}

impl Length {
    fn days(days: i64) -> Length {
        Length {
            days,
            exact: Duration::zero(),
        }
    }

    fn exact(exact: Duration) -> Length {
        Length { days: 0, exact }
    }

    fn approximate(&self) -> Duration {
        Duration::days(self.days) + self.exact
    }

    /// When something starting at `wall` in `zone` ends.
    fn after(&self, wall: NaiveDateTime, zone: &Zone) -> Option<DateTime<Utc>> {
        let days = wall.checked_add_signed(Duration::try_days(self.days)?)?;
        zone.instant(days).checked_add_signed(self.exact)
    }
}

/// RFC 5545 DURATION: `P1W`, `-P2D`, `PT1H30M`, `P1DT12H`.
fn parse_duration(text: &str) -> Option<Length> {
    let text = text.trim();
    let (sign, rest) = match text.as_bytes().first()? {
        b'-' => (-1, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => (1, text),
    };
    let mut days = 0i64;
    let mut exact = Duration::zero();
    let mut number = String::new();
    let mut in_time = false;
    let mut parts = 0;
    for c in rest.strip_prefix(['P', 'p'])?.chars() {
        match c.to_ascii_uppercase() {
            '0'..='9' => number.push(c),
            'T' if number.is_empty() && !in_time => in_time = true,
            unit => {
                let n: i64 = number.parse().ok()?;
                number.clear();
                parts += 1;
                match (in_time, unit) {
                    (false, 'W') => days = days.checked_add(n.checked_mul(7)?)?,
                    (false, 'D') => days = days.checked_add(n)?,
                    (true, 'H') => exact += Duration::try_hours(n)?,
                    (true, 'M') => exact += Duration::try_minutes(n)?,
                    (true, 'S') => exact += Duration::try_seconds(n)?,
                    _ => return None,
                }
            }
        }
    }
    // Keeps `after` from overflowing on absurd input; no event lasts 10,000 years.
    let sane = days.abs() < 3_650_000 && exact.num_days().abs() < 3_650_000;
    (number.is_empty() && parts > 0 && sane).then_some(Length {
        days: days * sign,
        exact: exact * sign as i32,
    })
}

/// Sorted, with overlapping and touching stretches joined.
pub(super) fn merge(mut busy: Vec<Busy>) -> Vec<Busy> {
    busy.sort();
    let mut merged: Vec<Busy> = Vec::with_capacity(busy.len());
    for (start, end) in busy {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

fn is(component: &Component<'_>, name: &str) -> bool {
    component.name.as_str().eq_ignore_ascii_case(name)
}

fn value<'a>(component: &'a Component<'_>, name: &str) -> Option<&'a str> {
    component.find_prop(name).map(|p| p.val.as_str().trim())
}

fn props<'a, 'b>(
    component: &'a Component<'b>,
    name: &'a str,
) -> impl Iterator<Item = &'a Property<'b>> {
    component
        .properties
        .iter()
        .filter(move |p| p.name.as_str().eq_ignore_ascii_case(name))
}

fn param<'a>(property: &'a Property<'_>, key: &str) -> Option<&'a str> {
    property
        .params
        .iter()
        .find(|p| p.key.as_str().eq_ignore_ascii_case(key))?
        .val
        .as_ref()
        .map(|v| v.as_str())
}

fn excerpt(text: &str) -> String {
    text.chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America::New_York, Europe::Berlin};

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    /// A VCALENDAR around `body` (content lines separated by `\n`, written with CRLF).
    fn calendar(body: &str) -> String {
        let lines: Vec<&str> = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
            .into_iter()
            .chain(body.lines().map(str::trim).filter(|l| !l.is_empty()))
            .chain(["END:VCALENDAR", ""])
            .collect();
        lines.join("\r\n")
    }

    fn busy(body: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Busy> {
        busy_from_ics(&calendar(body), from, to, Berlin).unwrap()
    }

    fn march() -> (DateTime<Utc>, DateTime<Utc>) {
        (utc(2025, 3, 1, 0, 0), utc(2025, 4, 1, 0, 0))
    }

    #[test]
    fn utc_events_in_the_window_are_busy_and_others_are_not() {
        let (from, to) = (utc(2025, 3, 10, 0, 0), utc(2025, 3, 11, 0, 0));
        let found = busy(
            "BEGIN:VEVENT
             UID:inside
             DTSTART:20250310T100000Z
             DTEND:20250310T110000Z
             END:VEVENT
             BEGIN:VEVENT
             UID:straddles-the-start
             DTSTART:20250309T230000Z
             DTEND:20250310T003000Z
             END:VEVENT
             BEGIN:VEVENT
             UID:ends-when-the-window-starts
             DTSTART:20250309T200000Z
             DTEND:20250310T000000Z
             END:VEVENT
             BEGIN:VEVENT
             UID:the-next-day
             DTSTART:20250311T000000Z
             DTEND:20250311T010000Z
             END:VEVENT",
            from,
            to,
        );
        assert_eq!(
            found,
            [
                (utc(2025, 3, 9, 23, 0), utc(2025, 3, 10, 0, 30)),
                (utc(2025, 3, 10, 10, 0), utc(2025, 3, 10, 11, 0)),
            ]
        );
    }

    #[test]
    fn tzid_times_follow_the_zones_dst_changes() {
        // Berlin is UTC+1 until 30 March 2025 and from 26 October, UTC+2 in between.
        let found = busy(
            "BEGIN:VEVENT
             UID:weekly
             DTSTART;TZID=Europe/Berlin:20250324T090000
             DTEND;TZID=Europe/Berlin:20250324T100000
             RRULE:FREQ=WEEKLY;COUNT=2
             END:VEVENT
             BEGIN:VEVENT
             UID:october
             DTSTART;TZID=Europe/Berlin:20251025T090000
             DURATION:P1D
             END:VEVENT",
            utc(2025, 3, 1, 0, 0),
            utc(2025, 12, 1, 0, 0),
        );
        assert_eq!(
            found,
            [
                (utc(2025, 3, 24, 8, 0), utc(2025, 3, 24, 9, 0)),
                (utc(2025, 3, 31, 7, 0), utc(2025, 3, 31, 8, 0)),
                // A day on the wall clock: 25 hours, the night the clocks go back.
                (utc(2025, 10, 25, 7, 0), utc(2025, 10, 26, 8, 0)),
            ]
        );
    }

    #[test]
    fn a_time_in_the_spring_gap_uses_the_offset_from_before_it() {
        let found = busy(
            "BEGIN:VEVENT
             UID:gap
             DTSTART;TZID=Europe/Berlin:20250330T023000
             DURATION:PT30M
             END:VEVENT",
            march().0,
            march().1,
        );
        assert_eq!(found, [(utc(2025, 3, 30, 1, 30), utc(2025, 3, 30, 2, 0))]);
    }

    #[test]
    fn floating_times_and_all_day_events_are_in_the_reps_zone() {
        let text = calendar(
            "BEGIN:VEVENT
             UID:floating
             DTSTART:20250310T090000
             DTEND:20250310T093000
             END:VEVENT
             BEGIN:VEVENT
             UID:all-day
             DTSTART;VALUE=DATE:20250312
             END:VEVENT
             BEGIN:VEVENT
             UID:two-days
             DTSTART;VALUE=DATE:20250314
             DTEND;VALUE=DATE:20250316
             END:VEVENT",
        );
        let found = busy_from_ics(&text, march().0, march().1, New_York).unwrap();
        // New York is UTC-4 from 9 March 2025.
        assert_eq!(
            found,
            [
                (utc(2025, 3, 10, 13, 0), utc(2025, 3, 10, 13, 30)),
                (utc(2025, 3, 12, 4, 0), utc(2025, 3, 13, 4, 0)),
                (utc(2025, 3, 14, 4, 0), utc(2025, 3, 16, 4, 0)),
            ]
        );
    }

    #[test]
    fn transparent_and_cancelled_events_are_not_busy() {
        let found = busy(
            "BEGIN:VEVENT
             UID:free
             DTSTART:20250310T100000Z
             DTEND:20250310T110000Z
             TRANSP:TRANSPARENT
             END:VEVENT
             BEGIN:VEVENT
             UID:cancelled
             DTSTART:20250310T120000Z
             DTEND:20250310T130000Z
             STATUS:CANCELLED
             END:VEVENT
             BEGIN:VEVENT
             UID:opaque
             DTSTART:20250310T140000Z
             DTEND:20250310T150000Z
             TRANSP:OPAQUE
             END:VEVENT
             BEGIN:VTODO
             UID:a-todo-is-never-busy
             DUE:20250310T160000Z
             END:VTODO",
            march().0,
            march().1,
        );
        assert_eq!(found, [(utc(2025, 3, 10, 14, 0), utc(2025, 3, 10, 15, 0))]);
    }

    #[test]
    fn a_weekly_rule_skips_its_exdates_and_moved_instances() {
        let found = busy(
            "BEGIN:VEVENT
             UID:standup
             DTSTART;TZID=Europe/Berlin:20250303T090000
             DTEND;TZID=Europe/Berlin:20250303T091500
             RRULE:FREQ=WEEKLY;BYDAY=MO,TH;UNTIL=20250317T080000Z
             EXDATE;TZID=Europe/Berlin:20250306T090000,20250310T090000
             END:VEVENT
             BEGIN:VEVENT
             UID:standup
             RECURRENCE-ID;TZID=Europe/Berlin:20250313T090000
             DTSTART;TZID=Europe/Berlin:20250313T160000
             DTEND;TZID=Europe/Berlin:20250313T161500
             END:VEVENT",
            march().0,
            march().1,
        );
        assert_eq!(
            found,
            [
                (utc(2025, 3, 3, 8, 0), utc(2025, 3, 3, 8, 15)),
                // 6 and 10 March excluded; 13 March moved to the afternoon.
                (utc(2025, 3, 13, 15, 0), utc(2025, 3, 13, 15, 15)),
                // UNTIL is inclusive: 08:00Z is 09:00 in Berlin.
                (utc(2025, 3, 17, 8, 0), utc(2025, 3, 17, 8, 15)),
            ]
        );
    }

    #[test]
    fn daily_and_monthly_rules_with_interval_expand_only_inside_the_window() {
        let found = busy(
            "BEGIN:VEVENT
             UID:every-other-day-since-2020
             DTSTART:20200101T120000Z
             DURATION:PT1H
             RRULE:FREQ=DAILY;INTERVAL=2
             END:VEVENT
             BEGIN:VEVENT
             UID:first-monday
             DTSTART:20250106T150000Z
             DURATION:PT2H
             RRULE:FREQ=MONTHLY;BYDAY=1MO
             END:VEVENT",
            utc(2025, 3, 3, 0, 0),
            utc(2025, 3, 6, 0, 0),
        );
        assert_eq!(
            found,
            [
                (utc(2025, 3, 3, 12, 0), utc(2025, 3, 3, 13, 0)),
                (utc(2025, 3, 3, 15, 0), utc(2025, 3, 3, 17, 0)),
                (utc(2025, 3, 5, 12, 0), utc(2025, 3, 5, 13, 0)),
            ]
        );
    }

    #[test]
    fn freebusy_periods_count_unless_free() {
        let found = busy(
            "BEGIN:VFREEBUSY
             DTSTART:20250310T000000Z
             DTEND:20250311T000000Z
             FREEBUSY:20250310T090000Z/20250310T100000Z,20250310T110000Z/PT30M
             FREEBUSY;FBTYPE=BUSY-TENTATIVE:20250310T130000Z/20250310T140000Z
             FREEBUSY;FBTYPE=FREE:20250310T150000Z/20250310T160000Z
             END:VFREEBUSY",
            march().0,
            march().1,
        );
        assert_eq!(
            found,
            [
                (utc(2025, 3, 10, 9, 0), utc(2025, 3, 10, 10, 0)),
                (utc(2025, 3, 10, 11, 0), utc(2025, 3, 10, 11, 30)),
                (utc(2025, 3, 10, 13, 0), utc(2025, 3, 10, 14, 0)),
            ]
        );
    }

    #[test]
    fn overlapping_and_touching_stretches_are_joined() {
        let found = busy(
            "BEGIN:VEVENT
             UID:a
             DTSTART:20250310T090000Z
             DTEND:20250310T100000Z
             END:VEVENT
             BEGIN:VEVENT
             UID:b
             DTSTART:20250310T093000Z
             DTEND:20250310T103000Z
             END:VEVENT
             BEGIN:VEVENT
             UID:c
             DTSTART:20250310T103000Z
             DTEND:20250310T110000Z
             END:VEVENT",
            march().0,
            march().1,
        );
        assert_eq!(found, [(utc(2025, 3, 10, 9, 0), utc(2025, 3, 10, 11, 0))]);
    }

    /// How Outlook and Exchange write zones: a Windows name, defined by a VTIMEZONE whose rules
    /// start in 1601.
    const WINDOWS_ZONE: &str = "BEGIN:VTIMEZONE
        TZID:W. Europe Standard Time
        BEGIN:STANDARD
        DTSTART:16010101T030000
        TZOFFSETFROM:+0200
        TZOFFSETTO:+0100
        RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10
        END:STANDARD
        BEGIN:DAYLIGHT
        DTSTART:16010101T020000
        TZOFFSETFROM:+0100
        TZOFFSETTO:+0200
        RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3
        END:DAYLIGHT
        END:VTIMEZONE";

    #[test]
    fn a_zone_only_the_calendars_vtimezone_defines_is_evaluated() {
        let found = busy(
            &format!(
                "{WINDOWS_ZONE}
                 BEGIN:VEVENT
                 UID:winter
                 DTSTART;TZID=W. Europe Standard Time:20250310T090000
                 DTEND;TZID=W. Europe Standard Time:20250310T100000
                 END:VEVENT
                 BEGIN:VEVENT
                 UID:summer
                 DTSTART;TZID=\"W. Europe Standard Time\":20250710T090000
                 DTEND;TZID=\"W. Europe Standard Time\":20250710T100000
                 END:VEVENT"
            ),
            march().0,
            utc(2025, 8, 1, 0, 0),
        );
        assert_eq!(
            found,
            [
                (utc(2025, 3, 10, 8, 0), utc(2025, 3, 10, 9, 0)),
                (utc(2025, 7, 10, 7, 0), utc(2025, 7, 10, 8, 0)),
            ]
        );
    }

    #[test]
    fn an_iana_name_inside_a_tzid_path_is_found() {
        let found = busy(
            "BEGIN:VEVENT
             UID:mozilla
             DTSTART;TZID=/mozilla.org/20050126_1/America/New_York:20250310T090000
             DURATION:PT1H
             END:VEVENT",
            march().0,
            march().1,
        );
        assert_eq!(found, [(utc(2025, 3, 10, 13, 0), utc(2025, 3, 10, 14, 0))]);
    }

    #[test]
    fn an_unknown_tzid_is_an_error_naming_it_and_the_event() {
        let text = calendar(
            "BEGIN:VEVENT
             UID:mystery@example.com
             DTSTART;TZID=Middle Earth Time:20250310T090000
             DURATION:PT1H
             END:VEVENT",
        );
        let error = busy_from_ics(&text, march().0, march().1, Berlin)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("Middle Earth Time") && error.contains("mystery@example.com"),
            "{error}"
        );
    }

    #[test]
    fn text_that_is_no_icalendar_is_an_error() {
        for text in [
            "<html><body>Please sign in</body></html>",
            "",
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:2025\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        ] {
            let error = busy_from_ics(text, march().0, march().1, Berlin);
            assert!(
                matches!(error, Err(Error::Ics { .. })),
                "{text:?}: {error:?}"
            );
        }
    }

    #[test]
    fn pushbacks_own_events_can_be_left_out() {
        let text = calendar(
            "BEGIN:VEVENT
             UID:deadline-7@pushback
             DTSTART:20250310T090000Z
             DURATION:PT1H
             END:VEVENT
             BEGIN:VEVENT
             UID:meeting@example.com
             DTSTART:20250310T120000Z
             DURATION:PT1H
             END:VEVENT",
        );
        let found = busy_except(&text, march().0, march().1, Berlin, |uid| {
            uid.ends_with("@pushback")
        })
        .unwrap();
        assert_eq!(found, [(utc(2025, 3, 10, 12, 0), utc(2025, 3, 10, 13, 0))]);
    }

    #[test]
    fn durations_parse_the_rfc_5545_way() {
        assert_eq!(parse_duration("P1W"), Some(Length::days(7)));
        assert_eq!(parse_duration("-P2D"), Some(Length::days(-2)));
        assert_eq!(
            parse_duration("P1DT2H30M15S"),
            Some(Length {
                days: 1,
                exact: Duration::seconds(9015)
            })
        );
        for bad in [
            "",
            "P",
            "PT",
            "1H",
            "PT1",
            "P1H",
            "PT1D",
            "P99999999999999W",
            "PT9999999999999999S",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(parse_offset("+0530"), Some(19_800));
        assert_eq!(parse_offset("-013045"), Some(-5445));
        assert_eq!(parse_offset("0100"), None);
    }
}

//! iCalendar text for what pushback writes: the feed, one item for a CalDAV PUT, and the
//! discovery-call invitation. Built with the `icalendar` crate, which escapes TEXT values; every
//! time comes from the caller, so the same input always gives the same bytes.

use std::fmt::Write as _;
use std::io;

use chrono::Duration;
use icalendar::{
    Alarm, Calendar, Component, Event, EventLike, EventStatus, Property, Todo, TodoStatus, Trigger,
};

use super::{CalendarItem, DEFAULT_EVENT_LENGTH, Invite, ItemKind, ItemStatus};

const PRODID: &str = concat!("-//pushback//pushback ", env!("CARGO_PKG_VERSION"), "//EN");
/// Content lines longer than this many octets are folded (RFC 5545 section 3.1).
const LINE_LIMIT: usize = 75;
/// The calendar's last line.
const CLOSING: &str = "END:VCALENDAR\r\n";

/// A calendar written item by item as the caller hands them over, so that only one item's text
/// is ever held: built as one `Calendar` and one text, the feed of a 100,000-message backfill
/// (10,000 reminders) took about 70 MiB at once.
pub struct FeedWriter<W: io::Write> {
    out: W,
    /// One item's text, reused from item to item.
    scratch: String,
}

impl<W: io::Write> FeedWriter<W> {
    /// The feed's opening: its name in the rep's calendar app and how often to refresh it.
    pub fn start(out: W, calendar_name: &str) -> io::Result<FeedWriter<W>> {
        let mut calendar = calendar();
        calendar.append_property(Property::new("X-WR-CALNAME", escape(calendar_name)));
        // Subscribed calendars refresh daily by default; a follow-up moved today should show today.
        calendar.append_property(Property::new("X-PUBLISHED-TTL", "PT1H"));
        FeedWriter::opening(out, &calendar)
    }

    /// Writes `calendar`'s properties; its components are the items to come.
    fn opening(mut out: W, calendar: &Calendar) -> io::Result<FeedWriter<W>> {
        let whole = text(calendar);
        let opening = whole
            .strip_suffix(CLOSING)
            .expect("a calendar's text ends with its closing line");
        out.write_all(opening.as_bytes())?;
        Ok(FeedWriter {
            out,
            scratch: String::new(),
        })
    }

    pub fn item(&mut self, item: &CalendarItem) -> io::Result<()> {
        self.scratch.clear();
        refold_into(&mut self.scratch, &component_text(item));
        self.out.write_all(self.scratch.as_bytes())
    }

    /// Writes the closing line and hands back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(CLOSING.as_bytes())?;
        Ok(self.out)
    }
}

pub fn item_ics(item: &CalendarItem) -> String {
    let mut bytes = Vec::new();
    let mut writer =
        FeedWriter::opening(&mut bytes, &calendar()).expect("memory takes every write");
    writer.item(item).expect("memory takes every write");
    writer.finish().expect("memory takes every write");
    String::from_utf8(bytes).expect("the crate writes UTF-8")
}

pub fn invite(invite: &Invite) -> String {
    let mut event = Event::new();
    event
        .uid(&invite.uid)
        .timestamp(invite.stamp)
        .sequence(0)
        .starts(invite.start)
        .ends(invite.end)
        .summary(&one_line(&invite.summary))
        .status(EventStatus::Confirmed)
        .add_property("TRANSP", "OPAQUE");
    if !invite.description.is_empty() {
        event.description(&multi_line(&invite.description));
    }
    event.append_property(
        Property::new("ORGANIZER", mailto(&invite.organizer_email))
            .add_parameter("CN", &parameter(&invite.organizer_name))
            .done(),
    );
    let mut attendee = Property::new("ATTENDEE", mailto(&invite.attendee_email));
    if let Some(name) = &invite.attendee_name {
        attendee.add_parameter("CN", &parameter(name));
    }
    attendee
        .add_parameter("ROLE", "REQ-PARTICIPANT")
        .add_parameter("PARTSTAT", "NEEDS-ACTION")
        .add_parameter("RSVP", "TRUE");
    event.append_multi_property(attendee);
    let mut calendar = calendar();
    calendar.append_property(Property::new("METHOD", "REQUEST"));
    calendar.push(event);
    text(&calendar)
}

fn calendar() -> Calendar {
    let mut calendar = Calendar::empty();
    calendar
        .append_property(Property::new("VERSION", "2.0"))
        .append_property(Property::new("PRODID", PRODID))
        .append_property(Property::new("CALSCALE", "GREGORIAN"));
    calendar
}

/// One item as a VTODO or VEVENT, as the crate writes it (folded its way).
fn component_text(item: &CalendarItem) -> String {
    match item.kind {
        ItemKind::Todo => Component::to_string(&todo(item)),
        ItemKind::Event => Component::to_string(&event(item)),
    }
}

fn todo(item: &CalendarItem) -> Todo {
    let mut todo = Todo::new();
    common(&mut todo, item);
    todo.due(item.due);
    match item.status {
        ItemStatus::Open => todo.status(TodoStatus::NeedsAction),
        ItemStatus::Done => todo
            .status(TodoStatus::Completed)
            .completed(item.stamp)
            .percent_complete(100),
        ItemStatus::Cancelled => todo.status(TodoStatus::Cancelled),
    };
    // For a VTODO, RELATED=END means relative to DUE.
    alarm(&mut todo, item, "END");
    todo
}

fn event(item: &CalendarItem) -> Event {
    let mut event = Event::new();
    common(&mut event, item);
    event
        .starts(item.due)
        .ends(item.end.unwrap_or(item.due + DEFAULT_EVENT_LENGTH))
        // A deadline is a marker, not a meeting: it must not block the rep's free/busy
        // (nor pushback's own slot finder, when the feed is read back as busy time).
        .add_property("TRANSP", "TRANSPARENT")
        .status(match item.status {
            ItemStatus::Open | ItemStatus::Done => EventStatus::Confirmed,
            ItemStatus::Cancelled => EventStatus::Cancelled,
        });
    alarm(&mut event, item, "START");
    event
}

fn common(component: &mut impl Component, item: &CalendarItem) {
    component
        .uid(&item.uid)
        .timestamp(item.stamp)
        .last_modified(item.stamp)
        .sequence(item.sequence)
        .summary(&one_line(&item.summary));
    if !item.description.is_empty() {
        component.description(&multi_line(&item.description));
    }
    if let Some(url) = &item.url {
        component.url(url);
    }
}

/// A display alarm `alarm_before` ahead, only while the item is open: nobody wants to be
/// reminded of a follow-up already sent or a deadline dropped.
fn alarm(component: &mut impl Component, item: &CalendarItem, related: &str) {
    let Some(before) = item.alarm_before else {
        return;
    };
    if item.status != ItemStatus::Open {
        return;
    }
    let mut alarm = Alarm::display(&one_line(&item.summary), Trigger::before_start(before));
    alarm
        // Replaces the crate's TRIGGER, which spells two days `-PT172800S`.
        .append_property(
            Property::new("TRIGGER", duration(-before))
                .add_parameter("RELATED", related)
                .done(),
        )
        // The crate writes DTSTAMP (from the clock) and a random UID into every component that
        // lacks them, alarms included; fixed values keep the output reproducible.
        .timestamp(item.stamp)
        .uid(&format!("{}-alarm", item.uid));
    component.append_component(alarm);
}

/// RFC 5545 DURATION text: `-P2D`, `PT1H30M`, `P1DT12H`.
fn duration(d: Duration) -> String {
    let mut out = String::from(if d < Duration::zero() { "-P" } else { "P" });
    let seconds = d.num_seconds().unsigned_abs();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    if days > 0 {
        let _ = write!(out, "{days}D");
    }
    if rest > 0 || days == 0 {
        out.push('T');
        let (hours, minutes, seconds) = (rest / 3600, rest % 3600 / 60, rest % 60);
        if hours > 0 {
            let _ = write!(out, "{hours}H");
        }
        if minutes > 0 {
            let _ = write!(out, "{minutes}M");
        }
        if seconds > 0 || rest == 0 {
            let _ = write!(out, "{seconds}S");
        }
    }
    out
}

/// The crate escapes `\n` in TEXT but leaves a bare CR, which would end the content line.
fn multi_line(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// TEXT escaping for a property the crate does not know as TEXT (it writes X- values raw).
fn escape(text: &str) -> String {
    one_line(text)
        .replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
}

/// A parameter value cannot hold a double quote or a control character at all (the crate
/// quotes the value when it holds `:`, `;` or `,`).
fn parameter(value: &str) -> String {
    one_line(value)
        .chars()
        .filter(|c| *c != '"' && !c.is_control())
        .collect()
}

fn mailto(email: &str) -> String {
    format!("mailto:{}", email.trim())
}

/// The calendar as text, its content lines folded at 75 octets (see [`refold_into`]).
fn text(calendar: &Calendar) -> String {
    let mut out = String::new();
    refold_into(&mut out, &calendar.to_string());
    out
}

/// Appends iCalendar text the crate wrote, its content lines folded again at 75 octets: the
/// crate folds too, but its last continuation line can be 76 octets long, so its lines are joined
/// and folded again.
fn refold_into(out: &mut String, written: &str) {
    out.reserve(written.len() + written.len() / 64);
    let mut logical = String::new();
    for line in written.split("\r\n") {
        if let Some(continued) = line.strip_prefix(' ') {
            logical.push_str(continued);
            continue;
        }
        fold_into(out, &logical);
        logical.clear();
        logical.push_str(line);
    }
    fold_into(out, &logical);
}

/// Appends `line` and CRLF, breaking it before any char that would take a physical line past
/// the limit; continuation lines start with one space, which counts.
fn fold_into(out: &mut String, line: &str) {
    if line.is_empty() {
        return;
    }
    let mut used = 0;
    for c in line.chars() {
        if used + c.len_utf8() > LINE_LIMIT {
            out.push_str("\r\n ");
            used = 1;
        }
        out.push(c);
        used += c.len_utf8();
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    use icalendar::parser::{Component as Parsed, read_calendar, unfold};

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, d, h, 0, 0).unwrap()
    }

    const DESCRIPTION: &str = "Buyer: Dana, ACME; procurement\r\nThread: RFP 7781, \"due\" Friday\n\
                               Back\\slash and a long line that goes on and on past the fold \
                               limit, with ümläuts and 日本語 to fold on char boundaries";

    fn item(kind: ItemKind) -> CalendarItem {
        CalendarItem {
            uid: "reminder-42@pushback".to_string(),
            kind,
            summary: "Follow up: RFP 7781, ACME; pricing".to_string(),
            description: DESCRIPTION.to_string(),
            due: at(14, 9),
            end: None,
            alarm_before: Some(Duration::days(2)),
            status: ItemStatus::Open,
            url: Some("mid:<abc@mail.acme.example>".to_string()),
            sequence: 3,
            stamp: at(10, 8),
        }
    }

    fn value<'a>(component: &'a Parsed<'_>, name: &str) -> Option<&'a str> {
        component.find_prop(name).map(|p| p.val.as_str())
    }

    fn param<'a>(component: &'a Parsed<'_>, name: &str, key: &str) -> Option<&'a str> {
        component
            .find_prop(name)?
            .params
            .iter()
            .find(|p| p.key.as_str() == key)?
            .val
            .as_ref()
            .map(|v| v.as_str())
    }

    /// Every physical line ends in CRLF and is at most 75 octets.
    fn assert_folded(text: &str) {
        assert!(text.ends_with("\r\n"), "{text}");
        for line in text.strip_suffix("\r\n").unwrap().split("\r\n") {
            assert!(line.len() <= 75, "{} octets: {line:?}", line.len());
            assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
        }
    }

    #[test]
    fn a_todo_is_a_vtodo_with_due_and_an_alarm_before_it() {
        let text = item_ics(&item(ItemKind::Todo));
        assert_folded(&text);
        let unfolded = unfold(&text);
        let calendar = read_calendar(&unfolded).unwrap();
        let [todo] = &calendar.components[..] else {
            panic!("{text}")
        };
        assert_eq!(todo.name.as_str(), "VTODO");
        assert_eq!(value(todo, "UID"), Some("reminder-42@pushback"));
        assert_eq!(value(todo, "DUE"), Some("20250314T090000Z"));
        assert_eq!(value(todo, "DTSTAMP"), Some("20250310T080000Z"));
        assert_eq!(value(todo, "LAST-MODIFIED"), Some("20250310T080000Z"));
        assert_eq!(value(todo, "SEQUENCE"), Some("3"));
        assert_eq!(value(todo, "STATUS"), Some("NEEDS-ACTION"));
        assert_eq!(value(todo, "URL"), Some("mid:<abc@mail.acme.example>"));
        assert_eq!(
            value(todo, "SUMMARY"),
            Some("Follow up: RFP 7781, ACME; pricing")
        );
        let [alarm] = &todo.components[..] else {
            panic!("{text}")
        };
        assert_eq!(alarm.name.as_str(), "VALARM");
        assert_eq!(value(alarm, "ACTION"), Some("DISPLAY"));
        assert_eq!(value(alarm, "TRIGGER"), Some("-P2D"));
        assert_eq!(param(alarm, "TRIGGER", "RELATED"), Some("END"));
        assert!(
            calendar
                .properties
                .iter()
                .any(|p| p.name.as_str() == "PRODID")
        );
    }

    #[test]
    fn the_description_survives_escaping_and_folding() {
        let text = item_ics(&item(ItemKind::Todo));
        assert!(
            text.contains(r"ACME\; procurement\nThread: RFP 7781\, "),
            "{text}"
        );
        assert!(text.contains(r"Back\\slash"), "{text}");
        let calendar: icalendar::Calendar = text.parse().unwrap();
        let todo = calendar.todos().next().unwrap();
        assert_eq!(
            todo.get_description(),
            Some(DESCRIPTION.replace("\r\n", "\n").as_str())
        );
        assert_eq!(
            todo.get_summary(),
            Some("Follow up: RFP 7781, ACME; pricing")
        );
    }

    #[test]
    fn an_event_is_a_transparent_vevent_with_an_alarm() {
        let mut deadline = item(ItemKind::Event);
        deadline.alarm_before = Some(Duration::hours(26) + Duration::minutes(30));
        let text = item_ics(&deadline);
        assert_folded(&text);
        let unfolded = unfold(&text);
        let calendar = read_calendar(&unfolded).unwrap();
        let [event] = &calendar.components[..] else {
            panic!("{text}")
        };
        assert_eq!(event.name.as_str(), "VEVENT");
        assert_eq!(value(event, "DTSTART"), Some("20250314T090000Z"));
        assert_eq!(value(event, "DTEND"), Some("20250314T093000Z"));
        assert_eq!(value(event, "TRANSP"), Some("TRANSPARENT"));
        assert_eq!(value(event, "STATUS"), Some("CONFIRMED"));
        let [alarm] = &event.components[..] else {
            panic!("{text}")
        };
        assert_eq!(value(alarm, "TRIGGER"), Some("-P1DT2H30M"));
        assert_eq!(param(alarm, "TRIGGER", "RELATED"), Some("START"));
    }

    #[test]
    fn done_and_cancelled_items_carry_their_status_and_no_alarm() {
        let mut done = item(ItemKind::Todo);
        done.status = ItemStatus::Done;
        let text = item_ics(&done);
        assert!(text.contains("STATUS:COMPLETED\r\n"), "{text}");
        assert!(text.contains("COMPLETED:20250310T080000Z\r\n"), "{text}");
        assert!(!text.contains("VALARM"), "{text}");
        let mut cancelled = item(ItemKind::Event);
        cancelled.status = ItemStatus::Cancelled;
        cancelled.end = Some(at(14, 12));
        let text = item_ics(&cancelled);
        assert!(text.contains("STATUS:CANCELLED\r\n"), "{text}");
        assert!(text.contains("DTEND:20250314T120000Z\r\n"), "{text}");
        assert!(!text.contains("VALARM"), "{text}");
    }

    /// The feed of `items`, streamed into memory.
    fn feed(items: &[CalendarItem], calendar_name: &str) -> String {
        let mut writer = FeedWriter::start(Vec::new(), calendar_name).unwrap();
        for item in items {
            writer.item(item).unwrap();
        }
        String::from_utf8(writer.finish().unwrap()).unwrap()
    }

    /// The feed as it was built before it was streamed: one `Calendar` holding every item,
    /// written out at once.
    fn whole_calendar_feed(items: &[CalendarItem], calendar_name: &str) -> String {
        let mut calendar = calendar();
        calendar.append_property(Property::new("X-WR-CALNAME", escape(calendar_name)));
        calendar.append_property(Property::new("X-PUBLISHED-TTL", "PT1H"));
        calendar.extend(items.iter().map(component));
        text(&calendar)
    }

    fn component(item: &CalendarItem) -> icalendar::CalendarComponent {
        match item.kind {
            ItemKind::Todo => todo(item).into(),
            ItemKind::Event => event(item).into(),
        }
    }

    #[test]
    fn the_streamed_feed_is_the_calendar_built_whole() {
        let mut done = item(ItemKind::Todo);
        done.uid = "reminder-43@pushback".to_string();
        done.status = ItemStatus::Done;
        let mut cancelled = deadline();
        cancelled.status = ItemStatus::Cancelled;
        cancelled.end = Some(at(14, 12));
        let mut bare = item(ItemKind::Event);
        bare.uid = "reminder-44@pushback".to_string();
        bare.description = String::new();
        bare.url = None;
        bare.alarm_before = None;
        let mut long = item(ItemKind::Todo);
        long.uid = "reminder-45@pushback".to_string();
        long.summary = "Follow up: ".to_string() + &"日本語 and ümläuts, ".repeat(12);
        let items = [
            item(ItemKind::Todo),
            deadline(),
            done,
            cancelled,
            bare,
            long,
        ];
        let name = "Pushback, ACME; follow-ups";
        let streamed = feed(&items, name);
        assert_eq!(streamed, whole_calendar_feed(&items, name));
        assert_eq!(feed(&[], name), whole_calendar_feed(&[], name));
        assert_eq!(streamed.matches("BEGIN:VCALENDAR").count(), 1, "{streamed}");
        for one in &items {
            let mut calendar = calendar();
            calendar.push(component(one));
            assert_eq!(item_ics(one), text(&calendar));
        }
    }

    #[test]
    fn the_feed_holds_every_item_under_one_named_calendar() {
        let items = [item(ItemKind::Todo), deadline()];
        let text = feed(&items, "Pushback, ACME; follow-ups");
        assert_folded(&text);
        // Same input, same bytes: nothing in the output comes from a clock or a random source.
        assert_eq!(text, feed(&items, "Pushback, ACME; follow-ups"));
        let unfolded = unfold(&text);
        let calendar = read_calendar(&unfolded).unwrap();
        let property = |name: &str| {
            calendar
                .properties
                .iter()
                .find(|p| p.name.as_str() == name)
                .map(|p| p.val.as_str())
        };
        assert_eq!(property("VERSION"), Some("2.0"));
        assert_eq!(property("PRODID"), Some(PRODID));
        assert_eq!(
            property("X-WR-CALNAME"),
            // The parser leaves X- values as written: escaped by us, since the crate does not.
            Some(r"Pushback\, ACME\; follow-ups")
        );
        let kinds: Vec<_> = calendar
            .components
            .iter()
            .map(|c| (c.name.as_str(), value(c, "UID").unwrap()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("VTODO", "reminder-42@pushback"),
                ("VEVENT", "deadline-7@pushback")
            ]
        );
        assert!(feed(&[], "Empty").contains("X-WR-CALNAME:Empty\r\n"));
    }

    fn deadline() -> CalendarItem {
        let mut deadline = item(ItemKind::Event);
        deadline.uid = "deadline-7@pushback".to_string();
        deadline
    }

    #[test]
    fn an_invite_is_a_request_with_organizer_and_attendee() {
        let text = invite(&Invite {
            uid: "call-9@pushback".to_string(),
            start: at(18, 14),
            end: at(18, 15),
            organizer_name: "Sam Rep, Sales".to_string(),
            organizer_email: "sam@vendor.example".to_string(),
            attendee_name: Some("Dana \"D\" Buyer".to_string()),
            attendee_email: "dana@acme.example".to_string(),
            summary: "Discovery call: RFP 7781".to_string(),
            description: "Agenda:\n1. scope\n2. timeline".to_string(),
            stamp: at(10, 8),
        });
        assert_folded(&text);
        let unfolded = unfold(&text);
        let calendar = read_calendar(&unfolded).unwrap();
        assert!(
            calendar
                .properties
                .iter()
                .any(|p| p.name.as_str() == "METHOD" && p.val.as_str() == "REQUEST")
        );
        let [event] = &calendar.components[..] else {
            panic!("{text}")
        };
        assert_eq!(value(event, "UID"), Some("call-9@pushback"));
        assert_eq!(value(event, "DTSTART"), Some("20250318T140000Z"));
        assert_eq!(value(event, "DTEND"), Some("20250318T150000Z"));
        assert_eq!(value(event, "DTSTAMP"), Some("20250310T080000Z"));
        assert_eq!(value(event, "SEQUENCE"), Some("0"));
        assert_eq!(value(event, "SUMMARY"), Some("Discovery call: RFP 7781"));
        assert_eq!(
            value(event, "DESCRIPTION"),
            Some("Agenda:\n1. scope\n2. timeline")
        );
        assert_eq!(value(event, "ORGANIZER"), Some("mailto:sam@vendor.example"));
        assert_eq!(param(event, "ORGANIZER", "CN"), Some("Sam Rep, Sales"));
        assert_eq!(value(event, "ATTENDEE"), Some("mailto:dana@acme.example"));
        assert_eq!(param(event, "ATTENDEE", "CN"), Some("Dana D Buyer"));
        assert_eq!(param(event, "ATTENDEE", "RSVP"), Some("TRUE"));
        assert_eq!(param(event, "ATTENDEE", "ROLE"), Some("REQ-PARTICIPANT"));
        assert_eq!(param(event, "ATTENDEE", "PARTSTAT"), Some("NEEDS-ACTION"));
        // A comma in a parameter value must be quoted, or it splits the value.
        assert!(text.contains("CN=\"Sam Rep, Sales\""), "{text}");
    }

    #[test]
    fn durations_are_written_the_rfc_5545_way() {
        assert_eq!(duration(-Duration::days(2)), "-P2D");
        assert_eq!(duration(Duration::minutes(90)), "PT1H30M");
        assert_eq!(duration(Duration::hours(36)), "P1DT12H");
        assert_eq!(duration(-Duration::seconds(45)), "-PT45S");
        assert_eq!(duration(Duration::zero()), "PT0S");
    }

    #[test]
    fn folding_never_passes_75_octets_nor_splits_a_char() {
        // Regression: the crate's own folding wrote a 76-octet last line for 150 octets.
        for len in [74, 75, 76, 149, 150, 151, 300] {
            let mut out = String::new();
            fold_into(&mut out, &"x".repeat(len));
            assert_folded(&out);
            assert_eq!(unfold(&out).trim_end(), "x".repeat(len));
        }
        let mut out = String::new();
        let wide = "SUMMARY:".to_string() + &"日本語".repeat(30);
        fold_into(&mut out, &wide);
        assert_folded(&out);
        assert_eq!(unfold(&out).trim_end(), wide);
    }
}

//! The CalDAV adapter against a real Radicale on loopback (HTTPS with the harness's test CA).
//! Radicale rewrites the iCalendar text it stores, so what it returns is parsed and compared
//! property by property.

mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Europe::Berlin;
use icalendar::parser::{Component, read_calendar, unfold};
use pushback::adapters::calendar::{CalDav, CalendarItem, Error, ItemKind, ItemStatus};
use pushback::adapters::secret::Secret;
use support::radicale::Radicale;

const COLLECTION: &str = "pushback";

fn utc(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, d, h, 0, 0).unwrap()
}

fn caldav(radicale: &Radicale, password: &str) -> CalDav {
    let (user, _) = radicale.user();
    CalDav::new(
        &radicale.calendar_url(COLLECTION),
        Some(user.to_string()),
        Some(Secret::new(password)),
        Some(&radicale.ca_file()),
    )
    .unwrap()
}

fn logged_in(radicale: &Radicale) -> CalDav {
    caldav(radicale, radicale.user().1)
}

fn follow_up() -> CalendarItem {
    CalendarItem {
        uid: "reminder-42@pushback".to_string(),
        kind: ItemKind::Todo,
        summary: "Follow up: RFP 7781, ACME; pricing".to_string(),
        description: "Buyer: Dana\nThread: \"RFP 7781\", due Friday; see below".to_string(),
        due: utc(14, 9),
        end: None,
        alarm_before: Some(Duration::days(1)),
        status: ItemStatus::Open,
        url: Some("mid:<rfp-7781@acme.example>".to_string()),
        sequence: 0,
        stamp: utc(10, 8),
    }
}

fn deadline() -> CalendarItem {
    CalendarItem {
        uid: "deadline-7781@pushback".to_string(),
        kind: ItemKind::Event,
        summary: "RFP 7781 proposals due".to_string(),
        description: "Submit through the city's portal.".to_string(),
        due: utc(21, 16),
        end: Some(utc(21, 17)),
        alarm_before: Some(Duration::days(2)),
        status: ItemStatus::Open,
        url: None,
        sequence: 0,
        stamp: utc(10, 8),
    }
}

/// The one VTODO or VEVENT in a stored resource.
fn only_component(text: &str) -> Component<'static> {
    let unfolded = unfold(text);
    let calendar = read_calendar(&unfolded).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut items: Vec<_> = calendar
        .components
        .into_iter()
        .filter(|c| matches!(c.name.as_str(), "VTODO" | "VEVENT"))
        .collect();
    assert_eq!(items.len(), 1, "{text}");
    into_owned(items.remove(0))
}

fn into_owned(c: Component<'_>) -> Component<'static> {
    Component {
        name: c.name.into_owned(),
        properties: c
            .properties
            .into_iter()
            .map(|p| icalendar::parser::Property {
                name: p.name.into_owned(),
                val: p.val.into_owned(),
                params: p
                    .params
                    .into_iter()
                    .map(|a| icalendar::parser::Parameter {
                        key: a.key.into_owned(),
                        val: a.val.map(|v| v.into_owned()),
                    })
                    .collect(),
            })
            .collect(),
        components: c.components.into_iter().map(into_owned).collect(),
    }
}

fn value<'a>(component: &'a Component<'_>, name: &str) -> Option<&'a str> {
    component.find_prop(name).map(|p| p.val.as_str())
}

#[tokio::test]
async fn items_are_created_updated_in_place_and_deleted() {
    let radicale = Radicale::start();
    let cal = logged_in(&radicale);

    cal.ensure_calendar().await.unwrap();
    assert!(radicale.is_calendar(COLLECTION), "{}", radicale.log());
    // Existing now: a no-op, not a second MKCALENDAR (which Radicale would refuse).
    cal.ensure_calendar().await.unwrap();

    let todo = follow_up();
    cal.put(&todo).await.unwrap();
    cal.put(&deadline()).await.unwrap();
    assert_eq!(
        radicale.stored_items(COLLECTION),
        ["deadline-7781@pushback.ics", "reminder-42@pushback.ics"]
    );

    let stored = cal
        .get(&todo.uid)
        .await
        .unwrap()
        .expect("the follow-up is stored");
    let vtodo = only_component(&stored);
    assert_eq!(vtodo.name.as_str(), "VTODO");
    assert_eq!(value(&vtodo, "UID"), Some("reminder-42@pushback"));
    assert_eq!(value(&vtodo, "DUE"), Some("20250314T090000Z"));
    assert_eq!(value(&vtodo, "SUMMARY"), Some(todo.summary.as_str()));
    assert_eq!(
        value(&vtodo, "DESCRIPTION"),
        Some(todo.description.as_str())
    );
    assert_eq!(value(&vtodo, "STATUS"), Some("NEEDS-ACTION"));
    assert_eq!(value(&vtodo, "URL"), Some("mid:<rfp-7781@acme.example>"));
    assert_eq!(value(&vtodo.components[0], "TRIGGER"), Some("-P1D"));

    let stored = cal.get(&deadline().uid).await.unwrap().unwrap();
    let vevent = only_component(&stored);
    assert_eq!(vevent.name.as_str(), "VEVENT");
    assert_eq!(value(&vevent, "DTSTART"), Some("20250321T160000Z"));
    assert_eq!(value(&vevent, "DTEND"), Some("20250321T170000Z"));
    assert_eq!(vevent.components[0].name.as_str(), "VALARM");
    assert_eq!(value(&vevent.components[0], "TRIGGER"), Some("-P2D"));

    // Snoozed: same UID, so the same resource, changed.
    let snoozed = CalendarItem {
        due: utc(17, 9),
        sequence: 1,
        stamp: utc(14, 9),
        ..follow_up()
    };
    cal.put(&snoozed).await.unwrap();
    let vtodo = only_component(&cal.get(&todo.uid).await.unwrap().unwrap());
    assert_eq!(value(&vtodo, "DUE"), Some("20250317T090000Z"));
    assert_eq!(value(&vtodo, "SEQUENCE"), Some("1"));
    assert_eq!(radicale.stored_items(COLLECTION).len(), 2);

    cal.delete(&todo.uid).await.unwrap();
    assert_eq!(cal.get(&todo.uid).await.unwrap(), None);
    assert_eq!(
        radicale.stored_items(COLLECTION),
        ["deadline-7781@pushback.ics"]
    );
    // Already gone is fine.
    cal.delete(&todo.uid).await.unwrap();
}

#[tokio::test]
async fn busy_time_is_the_reps_events_and_never_pushbacks_own() {
    let radicale = Radicale::start();
    let cal = logged_in(&radicale);
    cal.ensure_calendar().await.unwrap();
    // The rep's weekly call, written by their calendar app (with the VTIMEZONE such apps
    // send), skipping 17 March.
    radicale.put_raw(
        COLLECTION,
        "weekly.ics",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//other app//EN\r\n\
         BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n\
         BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\n\
         TZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n\
         BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\n\
         TZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\n\
         END:VTIMEZONE\r\n\
         BEGIN:VEVENT\r\nUID:weekly-sync@example.com\r\nDTSTAMP:20250301T000000Z\r\n\
         DTSTART;TZID=Europe/Berlin:20250310T100000\r\n\
         DTEND;TZID=Europe/Berlin:20250310T110000\r\n\
         RRULE:FREQ=WEEKLY;COUNT=4\r\n\
         EXDATE;TZID=Europe/Berlin:20250317T100000\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n",
    );
    // Opaque, but pushback's own: still not the rep's busy time.
    radicale.put_raw(
        COLLECTION,
        "own.ics",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//pushback//EN\r\n\
         BEGIN:VEVENT\r\nUID:hold-1@pushback\r\nDTSTAMP:20250301T000000Z\r\n\
         DTSTART:20250312T090000Z\r\nDTEND:20250312T100000Z\r\n\
         END:VEVENT\r\nEND:VCALENDAR\r\n",
    );
    cal.put(&deadline()).await.unwrap();
    cal.put(&follow_up()).await.unwrap();

    let busy = cal.busy(utc(10, 0), utc(28, 0), Berlin).await.unwrap();
    assert_eq!(
        busy,
        [(utc(10, 9), utc(10, 10)), (utc(24, 9), utc(24, 10)),],
        "{}",
        radicale.log()
    );
    // Berlin is on summer time from 30 March: the series' last meeting is an hour earlier in UTC.
    let busy = cal.busy(utc(30, 0), utc(31, 23), Berlin).await.unwrap();
    assert_eq!(busy, [(utc(31, 8), utc(31, 9))]);
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_without_the_password() {
    let radicale = Radicale::start();
    let cal = caldav(&radicale, "not-the-password-123");
    let error = cal.ensure_calendar().await.unwrap_err();
    assert!(matches!(error, Error::Login { status: 401, .. }), "{error}");
    let text = format!("{error} {error:?}");
    assert!(
        text.contains(&radicale.calendar_url(COLLECTION)) && text.contains("check the user"),
        "{text}"
    );
    assert!(!text.contains("not-the-password-123"), "{text}");
    assert!(!format!("{cal:?}").contains("not-the-password-123"));
    assert!(!error.is_transient());
}

#[tokio::test]
async fn a_server_that_is_down_is_a_transient_error() {
    let radicale = Radicale::start();
    let cal = logged_in(&radicale);
    drop(radicale);
    let error = cal.put(&follow_up()).await.unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_permanent_error() {
    let radicale = Radicale::start();
    let (user, password) = radicale.user();
    let cal = CalDav::new(
        &radicale.calendar_url(COLLECTION),
        Some(user.to_string()),
        Some(Secret::new(password)),
        None,
    )
    .unwrap();
    let error = cal.ensure_calendar().await.unwrap_err();
    let chain = format!("{:#}", anyhow::Error::new(error));
    assert!(chain.contains("certificate"), "{chain}");
    let error = cal.get("x").await.unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
}

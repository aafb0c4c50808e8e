//! The pushback sequence's timing: when a follow-up is due after a sent reply, where an
//! out-of-office answer moves it, and which reminder each extracted RFP date gets. Pure: `now`,
//! the rep's business calendar and the schedules from config come in as values.

use crate::core::model::{Deadline, DeadlineKind, Facts};
use crate::core::schedule::{self, BusinessCalendar, ReminderPlan, Schedule};
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};

/// `after_business_days` business days after `sent_at`, at the next firing of `at` on a
/// business day ("0 9 * * 1-5": the next working morning from then).
pub fn follow_up_due(
    sent_at: DateTime<Utc>,
    after_business_days: u32,
    cal: &BusinessCalendar,
    at: &Schedule,
) -> DateTime<Utc> {
    let earliest = schedule::follow_up_due(sent_at, after_business_days, cal);
    at.next_on_business_day(earliest, cal).unwrap_or(earliest)
}

/// The buyer is out of office until `returns_on`: follow up on the business day after they are
/// back (their first day goes to the backlog), at the next firing of `at`.
pub fn after_return(returns_on: NaiveDate, cal: &BusinessCalendar, at: &Schedule) -> DateTime<Utc> {
    let back = schedule::resolve_local(&cal.tz, returns_on.and_time(NaiveTime::MIN));
    follow_up_due(back, 1, cal, at)
}

/// A reminder planned for one extracted deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadlinePlan {
    pub kind: DeadlineKind,
    /// The deadline's position among the message's deadlines: tells two of one kind apart.
    pub number: u32,
    /// `None`: the rep must confirm the date (see `about`).
    pub due: Option<DateTime<Utc>>,
    pub deadline_at: Option<DateTime<Utc>>,
    /// One line for the rep.
    pub about: String,
}

/// Lead times, in business days, per deadline kind.
pub trait LeadTimes {
    fn lead_business_days(&self, kind: DeadlineKind) -> u32;
}

/// Plans a reminder for every extracted deadline: `lead` business days ahead, at the latest
/// firing of `at` on that business day that is not after the lead point (a morning reminder
/// for an afternoon cut-off), never before `now`. A past, ambiguous or undated deadline becomes
/// a reminder for the rep to confirm; nothing about it is scheduled silently.
pub fn plan_deadlines(
    facts: &Facts,
    solicitation: &str,
    now: DateTime<Utc>,
    cal: &BusinessCalendar,
    at: &Schedule,
    leads: &impl LeadTimes,
) -> Vec<DeadlinePlan> {
    facts
        .deadlines
        .iter()
        .enumerate()
        .map(|(i, deadline)| {
            let lead = leads.lead_business_days(deadline.kind);
            let what = format!("{} for {solicitation}", kind_label(deadline.kind));
            let deadline_at = schedule::deadline_instant(deadline, cal).ok();
            let (due, about) = match schedule::deadline_reminder(deadline, lead, now, cal) {
                ReminderPlan::Schedule(lead_point) => {
                    let due = morning_of(lead_point, cal, at).max(now);
                    let when =
                        deadline_at.map_or_else(|| deadline.text.clone(), |t| local_text(t, cal));
                    (Some(due), format!("{what}: {when}"))
                }
                ReminderPlan::Confirm(why) => (None, format!("Confirm the {what}: {why}")),
            };
            DeadlinePlan {
                kind: deadline.kind,
                number: i as u32,
                due,
                deadline_at,
                about,
            }
        })
        .collect()
}

/// The latest firing of `at` on `lead_point`'s business day that is not after it; the lead
/// point itself when `at` has none that day.
fn morning_of(lead_point: DateTime<Utc>, cal: &BusinessCalendar, at: &Schedule) -> DateTime<Utc> {
    let day = lead_point.with_timezone(&cal.tz).date_naive();
    let start = schedule::resolve_local(&cal.tz, day.and_time(NaiveTime::MIN));
    let mut best = None;
    let mut after = start - Duration::seconds(1);
    while let Some(t) = at.next_after(after, cal.tz) {
        if t > lead_point {
            break;
        }
        best = Some(t);
        after = t;
    }
    best.unwrap_or(lead_point)
}

fn kind_label(kind: DeadlineKind) -> &'static str {
    match kind {
        DeadlineKind::Questions => "Questions cut-off",
        DeadlineKind::Submission => "Submission deadline",
        DeadlineKind::PreBid => "Pre-bid meeting",
        DeadlineKind::IntentToBid => "Intent-to-bid date",
        DeadlineKind::Other => "RFP date",
    }
}

/// "Wed 3 Mar 2027 17:00 GMT" in the rep's zone.
pub fn local_text(t: DateTime<Utc>, cal: &BusinessCalendar) -> String {
    t.with_timezone(&cal.tz)
        .format("%a %-d %b %Y %H:%M %Z")
        .to_string()
}

/// The deadline that bounds proposed call times: the questions cut-off when it is known.
pub fn questions_cutoff(facts: &Facts, cal: &BusinessCalendar) -> Option<DateTime<Utc>> {
    facts
        .deadlines
        .iter()
        .filter(|d: &&Deadline| d.kind == DeadlineKind::Questions)
        .find_map(|d| schedule::deadline_instant(d, cal).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono_tz::America::New_York;
    use chrono_tz::Europe::Berlin;
    use chrono_tz::Tz;

    struct Leads;
    impl LeadTimes for Leads {
        fn lead_business_days(&self, kind: DeadlineKind) -> u32 {
            match kind {
                DeadlineKind::Questions => 2,
                DeadlineKind::Submission => 3,
                _ => 1,
            }
        }
    }

    fn local(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn show(t: DateTime<Utc>, tz: Tz) -> String {
        t.with_timezone(&tz)
            .format("%a %Y-%m-%d %H:%M %Z")
            .to_string()
    }

    fn mornings() -> Schedule {
        Schedule::parse("0 9 * * 1-5").unwrap()
    }

    fn deadline(
        kind: DeadlineKind,
        date: &str,
        time: Option<&str>,
        zone: Option<&str>,
    ) -> Deadline {
        Deadline {
            kind,
            date: Some(date.parse().unwrap()),
            time: time.map(|t| NaiveTime::parse_from_str(t, "%H:%M").unwrap()),
            zone: zone.map(str::to_string),
            text: format!("{kind:?} {date}"),
            ambiguous: false,
        }
    }

    #[test]
    fn follow_up_lands_on_the_next_schedule_firing() {
        let cal = BusinessCalendar::new(New_York);
        // Friday 15:00 + 3 business days = Wednesday 15:00; the next 09:00 is Thursday.
        let due = follow_up_due(local(New_York, 2027, 3, 5, 15, 0), 3, &cal, &mornings());
        assert_eq!(show(due, New_York), "Thu 2027-03-11 09:00 EST");
        // With an hourly working-hours schedule the same follow-up is due at Wednesday 15:00.
        let hourly = Schedule::parse("0 9-16 * * 1-5").unwrap();
        let due = follow_up_due(local(New_York, 2027, 3, 5, 15, 0), 3, &cal, &hourly);
        assert_eq!(show(due, New_York), "Wed 2027-03-10 15:00 EST");
    }

    #[test]
    fn follow_up_skips_a_holiday_on_the_due_day() {
        let mut cal = BusinessCalendar::new(Berlin);
        // Thursday 1 April 2027 + 1 business day is Good Friday (holiday), then Easter Monday.
        cal.holidays.insert("2027-04-02".parse().unwrap());
        cal.holidays.insert("2027-04-05".parse().unwrap());
        let due = follow_up_due(local(Berlin, 2027, 4, 1, 8, 0), 1, &cal, &mornings());
        assert_eq!(show(due, Berlin), "Tue 2027-04-06 09:00 CEST");
    }

    #[test]
    fn follow_ups_across_dst_keep_the_local_morning() {
        // New York springs forward on 14 March 2027, Berlin on 28 March and back on 31 October.
        // Friday 10:00 + 3 business days is Wednesday 10:00; the next 09:00 is Thursday's.
        for (tz, sent, want) in [
            (
                New_York,
                local(New_York, 2027, 3, 12, 10, 0),
                "Thu 2027-03-18 09:00 EDT",
            ),
            (
                Berlin,
                local(Berlin, 2027, 3, 26, 10, 0),
                "Thu 2027-04-01 09:00 CEST",
            ),
            (
                Berlin,
                local(Berlin, 2027, 10, 29, 10, 0),
                "Thu 2027-11-04 09:00 CET",
            ),
        ] {
            let cal = BusinessCalendar::new(tz);
            assert_eq!(show(follow_up_due(sent, 3, &cal, &mornings()), tz), want);
        }
    }

    #[test]
    fn out_of_office_moves_the_follow_up_past_the_return() {
        let cal = BusinessCalendar::new(Berlin);
        // Back on Monday 12 April: the follow-up goes out Tuesday morning.
        let due = after_return("2027-04-12".parse().unwrap(), &cal, &mornings());
        assert_eq!(show(due, Berlin), "Tue 2027-04-13 09:00 CEST");
        // Back on a Saturday: Monday is their first day back, Tuesday the follow-up.
        let due = after_return("2027-04-10".parse().unwrap(), &cal, &mornings());
        assert_eq!(show(due, Berlin), "Mon 2027-04-12 09:00 CEST");
    }

    #[test]
    fn deadlines_get_morning_reminders_ahead_or_ask_the_rep() {
        let cal = BusinessCalendar::new(New_York);
        let now = local(New_York, 2027, 3, 1, 12, 0);
        let mut past = deadline(DeadlineKind::Other, "2027-02-20", None, None);
        past.text = "site visit 20 Feb".into();
        let mut ambiguous = deadline(DeadlineKind::PreBid, "2027-04-03", None, None);
        ambiguous.ambiguous = true;
        let facts = Facts {
            deadlines: vec![
                deadline(
                    DeadlineKind::Questions,
                    "2027-03-10",
                    Some("17:00"),
                    Some("America/New_York"),
                ),
                deadline(
                    DeadlineKind::Submission,
                    "2027-03-22",
                    Some("14:00"),
                    Some("Europe/Berlin"),
                ),
                past,
                ambiguous,
            ],
            ..Facts::default()
        };
        let plans = plan_deadlines(&facts, "RFP 2027-014", now, &cal, &mornings(), &Leads);
        let shown: Vec<(Option<String>, &str)> = plans
            .iter()
            .map(|p| (p.due.map(|t| show(t, New_York)), p.about.as_str()))
            .collect();
        assert_eq!(shown[0].0.as_deref(), Some("Mon 2027-03-08 09:00 EST"));
        assert_eq!(
            shown[0].1,
            "Questions cut-off for RFP 2027-014: Wed 10 Mar 2027 17:00 EST"
        );
        // 14:00 Berlin = 09:00 New York (EDT from 14 March); 3 business days back is Wednesday
        // the 17th at 09:00, which the 09:00 schedule firing matches exactly.
        assert_eq!(shown[1].0.as_deref(), Some("Wed 2027-03-17 09:00 EDT"));
        assert_eq!(shown[2].0, None);
        assert!(
            shown[2]
                .1
                .starts_with("Confirm the RFP date for RFP 2027-014: "),
            "{}",
            shown[2].1
        );
        assert!(shown[2].1.contains("already past"), "{}", shown[2].1);
        assert_eq!(shown[3].0, None);
        assert!(shown[3].1.contains("more than one way"), "{}", shown[3].1);
        assert_eq!(
            plans.iter().map(|p| p.number).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn a_reminder_inside_the_lead_time_is_due_now() {
        let cal = BusinessCalendar::new(New_York);
        let now = local(New_York, 2027, 3, 9, 12, 0);
        let facts = Facts {
            deadlines: vec![deadline(
                DeadlineKind::Questions,
                "2027-03-10",
                Some("17:00"),
                None,
            )],
            ..Facts::default()
        };
        let plans = plan_deadlines(&facts, "the RFP", now, &cal, &mornings(), &Leads);
        assert_eq!(plans[0].due, Some(now));
    }

    #[test]
    fn the_questions_cutoff_bounds_call_slots() {
        let cal = BusinessCalendar::new(New_York);
        let facts = Facts {
            deadlines: vec![
                deadline(DeadlineKind::Submission, "2027-03-22", Some("14:00"), None),
                deadline(DeadlineKind::Questions, "2027-03-10", Some("17:00"), None),
            ],
            ..Facts::default()
        };
        assert_eq!(
            questions_cutoff(&facts, &cal),
            Some(local(New_York, 2027, 3, 10, 17, 0))
        );
        assert_eq!(questions_cutoff(&Facts::default(), &cal), None);
    }
}

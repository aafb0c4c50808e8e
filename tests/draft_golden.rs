//! Golden drafts: every `tests/fixtures/draft/*.eml` is drafted with the built-in templates,
//! composed into a reply, parsed back with mail-parser and compared with
//! `<name>.expected.txt` (the reply's body) and `<name>.notes.expected.txt` (the rep notes). A
//! fixture whose case asks for follow-ups also gets each follow-up drafted on the message before
//! it (the reply, then follow-up 1, ...), compared with `<name>.follow_up_<n>.expected.txt` and
//! `<name>.follow_up_<n>.notes.expected.txt`. On a mismatch the actual output is written to
//! `<name>[.follow_up_<n>][.notes].actual.txt`, so `diff` shows the change; accept it by
//! renaming. The classification and facts each fixture needs are written out here, since the
//! classifier and the extractor are tested on their own.

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use mail_parser::{HeaderValue, Message, MessageParser};
use pushback::adapters::templates::Templates;
use pushback::core::draft::{
    DraftContext, FollowUpInfo, Reply, buyer_zone, compose_follow_up, compose_reply,
    follow_up_notes, rep_notes, reply_message_id, reply_subject,
};
use pushback::core::mail::Mail;
use pushback::core::model::{
    Category, Classification, Deadline, DeadlineKind, Facts, Identity, Label, Reason, Stakeholder,
    StakeholderRole,
};
use pushback::core::schedule::{BusinessCalendar, Slot, Zone, follow_up_due, propose_slots};
use std::path::{Path, PathBuf};

const FIXTURES: &str = "tests/fixtures/draft";

/// What a fixture should produce, besides the golden body and notes.
struct Case {
    classification: Classification,
    facts: Facts,
    subject: &'static str,
    to: &'static str,
    in_reply_to: Option<&'static str>,
    references: &'static [&'static str],
    /// Offer free times from the rep's (empty) calendar in every draft.
    offer_slots: bool,
    /// How many follow-ups to draft after the reply, each the buyer's silence after the last.
    follow_ups: u32,
}

fn identity() -> Identity {
    Identity::demo()
}

fn classified(category: Category, score: f64, reasons: &[(&str, f64, &str)]) -> Classification {
    Classification {
        label: Label::Procurement,
        category,
        score,
        reasons: reasons
            .iter()
            .map(|(signal, weight, matched)| Reason {
                signal: signal.to_string(),
                weight: *weight,
                matched: matched.to_string(),
            })
            .collect(),
    }
}

fn person(name: &str, email: Option<&str>, title: &str, role: StakeholderRole) -> Stakeholder {
    Stakeholder {
        name: Some(name.into()),
        email: email.map(Into::into),
        title: Some(title.into()),
        role,
    }
}

fn deadline(
    kind: DeadlineKind,
    ymd: (i32, u32, u32),
    hm: Option<(u32, u32)>,
    zone: Option<&str>,
    text: &str,
) -> Deadline {
    Deadline {
        kind,
        date: NaiveDate::from_ymd_opt(ymd.0, ymd.1, ymd.2),
        time: hm.and_then(|(h, m)| NaiveTime::from_hms_opt(h, m, 0)),
        zone: zone.map(Into::into),
        text: text.into(),
        ambiguous: false,
    }
}

fn case(name: &str) -> Case {
    match name {
        "city_rfp_no_contact" => Case {
            classification: classified(
                Category::Rfp,
                0.94,
                &[
                    ("subject-rfp", 2.5, "RFP #2027-014"),
                    ("body-no-contact", 1.2, "proposers shall not contact"),
                    ("body-portal-link", 0.6, "bid portal"),
                ],
            ),
            facts: Facts {
                buyer: Some("City of Brookfield".into()),
                contact: Some(person(
                    "Janet Okafor",
                    Some("jokafor@cityofbrookfield.example"),
                    "Procurement Officer",
                    StakeholderRole::Procurement,
                )),
                reply_to: Some("procurement@cityofbrookfield.example".into()),
                references: vec!["RFP #2027-014".into()],
                titles: vec!["Citywide Permit Analytics".into()],
                portal_urls: vec!["https://bids.cityofbrookfield.example/rfp/2027-014".into()],
                stakeholders: vec![
                    person(
                        "Luis Ortega",
                        None,
                        "Director of Planning",
                        StakeholderRole::Business,
                    ),
                    person(
                        "Janet Okafor",
                        Some("jokafor@cityofbrookfield.example"),
                        "Procurement Officer",
                        StakeholderRole::Procurement,
                    ),
                ],
                deadlines: vec![
                    deadline(
                        DeadlineKind::Questions,
                        (2027, 3, 1),
                        Some((14, 0)),
                        Some("America/New_York"),
                        "Written questions due: March 1, 2027 at 2:00 PM Eastern",
                    ),
                    deadline(
                        DeadlineKind::Submission,
                        (2027, 3, 22),
                        Some((14, 0)),
                        Some("America/New_York"),
                        "Proposals due: March 22, 2027 at 2:00 PM Eastern",
                    ),
                ],
                no_contact_clause: Some(
                    "from the issue date of this RFP until contract award, proposers shall not \
                     contact any City employee or official other than the Procurement Officer \
                     named below regarding this solicitation."
                        .into(),
                ),
            },
            subject: "Re: RFP #2027-014 Citywide Permit Analytics - Invitation to Propose",
            to: "procurement@cityofbrookfield.example",
            in_reply_to: Some("20270215141244.4411@mail.cityofbrookfield.example"),
            references: &["20270215141244.4411@mail.cityofbrookfield.example"],
            offer_slots: false,
            follow_ups: 2,
        },
        "rfq_best_price" => Case {
            classification: classified(
                Category::Rfq,
                0.81,
                &[
                    ("body-best-price", 1.4, "send your best price"),
                    ("body-rfq-template", 1.1, "RFQ template (RFQ-HL-0042)"),
                    (
                        "body-comparing-vendors",
                        0.7,
                        "collecting quotes from three vendors",
                    ),
                    ("feedback-bayes", -0.3, "thanks for the overview"),
                ],
            ),
            facts: Facts {
                buyer: Some("Helix Logistics".into()),
                contact: Some(person(
                    "Priya Natarajan",
                    Some("priya.natarajan@helixlogistics.example"),
                    "Category Manager, Indirect Procurement",
                    StakeholderRole::Procurement,
                )),
                reply_to: Some("priya.natarajan@helixlogistics.example".into()),
                references: vec!["RFQ-HL-0042".into()],
                titles: Vec::new(),
                portal_urls: Vec::new(),
                stakeholders: vec![person(
                    "Ben Carter",
                    Some("ben.carter@helixlogistics.example"),
                    "Head of Fleet Operations",
                    StakeholderRole::Business,
                )],
                deadlines: vec![Deadline {
                    ambiguous: true,
                    ..deadline(
                        DeadlineKind::Submission,
                        (2027, 2, 26),
                        None,
                        None,
                        "by Friday 26 February",
                    )
                }],
                no_contact_clause: None,
            },
            subject: "Re: Quote request - analytics licences",
            to: "priya.natarajan@helixlogistics.example",
            in_reply_to: Some("CAF3x9-priya-0217@helixlogistics.example"),
            references: &[
                "CAF3x9-ben-0209@helixlogistics.example",
                "CAF3x9-priya-0210@helixlogistics.example",
                "CAF3x9-priya-0217@helixlogistics.example",
            ],
            offer_slots: false,
            follow_ups: 0,
        },
        "portal_registration_no_message_id" => Case {
            classification: classified(
                Category::Portal,
                0.88,
                &[(
                    "subject-supplier-portal",
                    2.0,
                    "register in the Vantage Bank supplier portal",
                )],
            ),
            facts: Facts {
                buyer: Some("Vantage Bank".into()),
                reply_to: Some("supplier.enablement@vantagebank.example".into()),
                portal_urls: vec![
                    "https://vantagebank.example-ariba.com/register?supplier=ACME".into(),
                ],
                deadlines: vec![Deadline {
                    date: None,
                    ..deadline(
                        DeadlineKind::Other,
                        (2027, 3, 4),
                        None,
                        None,
                        "within 10 business days",
                    )
                }],
                ..Facts::default()
            },
            subject: "Re: Action required: register in the Vantage Bank supplier portal",
            to: "supplier.enablement@vantagebank.example",
            in_reply_to: None,
            references: &[],
            offer_slots: false,
            follow_ups: 0,
        },
        "demo_request_html_utf8" => Case {
            classification: classified(
                Category::DemoRequest,
                0.72,
                &[("body-demo-request", 1.5, "would like a product demo")],
            ),
            facts: Facts {
                buyer: Some("Alpenwerk GmbH".into()),
                contact: Some(person(
                    "José Müller",
                    Some("jose.mueller@alpenwerk.example"),
                    "Head of Controlling",
                    StakeholderRole::Business,
                )),
                reply_to: Some("jose.mueller@alpenwerk.example".into()),
                stakeholders: vec![person(
                    "José Müller",
                    Some("jose.mueller@alpenwerk.example"),
                    "Head of Controlling",
                    StakeholderRole::Business,
                )],
                ..Facts::default()
            },
            subject: "Re: Demo für unser Controlling-Team",
            to: "jose.mueller@alpenwerk.example",
            in_reply_to: Some("a81f2c3d.demo@alpenwerk.example"),
            references: &["a81f2c3d.demo@alpenwerk.example"],
            offer_slots: false,
            follow_ups: 0,
        },
        "questionnaire_german_prefix" => Case {
            classification: classified(
                Category::Questionnaire,
                0.86,
                &[
                    (
                        "body-questionnaire",
                        1.8,
                        "complete the attached vendor security",
                    ),
                    (
                        "body-gate-meetings",
                        0.9,
                        "cannot schedule any meetings before",
                    ),
                ],
            ),
            facts: Facts {
                buyer: Some("Nordstahl AG".into()),
                contact: Some(person(
                    "Katrin Vogel",
                    Some("k.vogel@nordstahl.example"),
                    "Strategic Sourcing",
                    StakeholderRole::Procurement,
                )),
                reply_to: Some("k.vogel@nordstahl.example".into()),
                deadlines: vec![deadline(
                    DeadlineKind::Submission,
                    (2027, 3, 5),
                    None,
                    None,
                    "return it by 5 March 2027",
                )],
                ..Facts::default()
            },
            subject: "Re: Lieferantenfragebogen / supplier questionnaire",
            to: "k.vogel@nordstahl.example",
            in_reply_to: Some("nordstahl-2027-0222-1302@nordstahl.example"),
            references: &[
                "nordstahl-2027-0218@nordstahl.example",
                "acme-0219@acme-analytics.example",
                "nordstahl-2027-0222-1302@nordstahl.example",
            ],
            offer_slots: false,
            follow_ups: 0,
        },
        "gatekeeper_header_injection" => Case {
            classification: classified(
                Category::ProcurementGatekeeper,
                0.9,
                &[
                    (
                        "body-goes-through-procurement",
                        2.2,
                        "goes through Procurement",
                    ),
                    ("body-pricing-deck", 0.8, "send your standard pricing"),
                ],
            ),
            facts: Facts {
                buyer: Some("Meridian Health".into()),
                reply_to: Some("procurement@meridianhealth.example".into()),
                no_contact_clause: Some("Do not reach out to clinical or IT staff directly".into()),
                ..Facts::default()
            },
            // Guards the injection: the encoded CR LF in the subject stays inside the subject.
            subject: "Re: Vendor contact policy Bcc: attacker@evil.example",
            to: "procurement@meridianhealth.example",
            in_reply_to: Some("policy-7781@meridianhealth.example"),
            references: &[
                "thread-1@meridianhealth.example",
                "policy-7781@meridianhealth.example",
            ],
            offer_slots: false,
            follow_ups: 0,
        },
        "rfp_slots_ny_buyer" => Case {
            classification: classified(
                Category::Rfp,
                0.91,
                &[
                    ("subject-rfp", 2.5, "RFP HV-2027-07"),
                    ("body-submit-proposal", 1.0, "submit your proposal"),
                ],
            ),
            facts: Facts {
                buyer: Some("Harborview Outfitters".into()),
                contact: Some(person(
                    "Rachel Kim",
                    Some("rachel.kim@harborview.example"),
                    "Sourcing Manager",
                    StakeholderRole::Procurement,
                )),
                reply_to: Some("rachel.kim@harborview.example".into()),
                references: vec!["RFP HV-2027-07".into()],
                titles: vec!["Customer Analytics Platform".into()],
                stakeholders: vec![person(
                    "Omar Haddad",
                    None,
                    "VP of E-commerce",
                    StakeholderRole::Business,
                )],
                deadlines: vec![
                    deadline(
                        DeadlineKind::Submission,
                        (2027, 3, 19),
                        Some((17, 0)),
                        Some("America/New_York"),
                        "submit your proposal by March 19, 2027 at 5:00 PM Eastern",
                    ),
                    deadline(
                        DeadlineKind::Questions,
                        (2027, 3, 5),
                        Some((12, 0)),
                        Some("America/New_York"),
                        "Questions are due by March 5, 2027 at 12:00 PM Eastern",
                    ),
                ],
                ..Facts::default()
            },
            subject: "Re: RFP HV-2027-07: Customer Analytics Platform",
            to: "rachel.kim@harborview.example",
            in_reply_to: Some("hv-2027-07.rfp@harborview.example"),
            references: &["hv-2027-07.rfp@harborview.example"],
            offer_slots: true,
            follow_ups: 2,
        },
        other => panic!("fixture {other}.eml has no case in tests/draft_golden.rs"),
    }
}

fn text_list(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// Compare with `<stem><suffix>.expected.txt`; on a mismatch write `.actual.txt` and say so.
fn compare_golden(dir: &Path, stem: &str, suffix: &str, actual: &str) -> Option<String> {
    let expected_path = dir.join(format!("{stem}{suffix}.expected.txt"));
    let actual_path = dir.join(format!("{stem}{suffix}.actual.txt"));
    match std::fs::read_to_string(&expected_path) {
        Ok(expected) if expected == actual => {
            let _ = std::fs::remove_file(&actual_path);
            None
        }
        found => {
            std::fs::write(&actual_path, actual).unwrap();
            let why = if found.is_ok() {
                "differs from"
            } else {
                "has no"
            };
            Some(format!(
                "{stem}: output {why} {}; see {}",
                expected_path.display(),
                actual_path.display()
            ))
        }
    }
}

/// Free times for a draft written at `now`, as the app layer would find them: the rep in London
/// keeps 14:00-17:00 for calls with the Americas, the calendar is otherwise empty, and nothing is
/// offered after the questions cut-off.
fn slots_after(now: DateTime<Utc>, calendar: &BusinessCalendar, facts: &Facts) -> Vec<Slot> {
    let mut afternoons = calendar.clone();
    afternoons.working_hours = (
        NaiveTime::from_hms_opt(14, 0, 0).unwrap(),
        NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
    );
    let cut_off = facts
        .deadlines
        .iter()
        .find(|d| d.kind == DeadlineKind::Questions)
        .map(|d| {
            let zone = Zone::parse(d.zone.as_deref().unwrap()).unwrap();
            zone.resolve(d.date.unwrap().and_time(d.time.unwrap()))
        });
    propose_slots(now, &afternoons, &[], Duration::minutes(30), 3, cut_off)
}

/// What every composed draft must carry, checked on the message as parsed back.
fn check_headers(stem: &str, case: &Case, reply: &Reply, id: &str, identity: &Identity) -> String {
    let parsed: Message<'_> = MessageParser::default()
        .parse(&reply.raw)
        .unwrap_or_else(|| panic!("{stem}: the draft does not parse"));
    assert_eq!(parsed.subject(), Some(case.subject), "{stem}");
    assert_eq!(parsed.message_id(), Some(id), "{stem}");
    assert_eq!(
        parsed.in_reply_to().as_text(),
        reply.in_reply_to.as_deref(),
        "{stem}: In-Reply-To"
    );
    assert_eq!(
        text_list(parsed.references()),
        reply.references,
        "{stem}: References"
    );
    let to = parsed
        .to()
        .and_then(|a| a.first())
        .and_then(|a| a.address());
    assert_eq!(to, Some(case.to), "{stem}: To");
    assert_eq!(parsed.to().map(|a| a.iter().count()), Some(1), "{stem}");
    let from = parsed
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address());
    assert_eq!(from, Some(identity.email.as_str()), "{stem}: From");
    assert!(parsed.header("Bcc").is_none(), "{stem}: Bcc");
    assert!(parsed.header("Cc").is_none(), "{stem}: Cc");
    parsed.body_text(0).unwrap().replace("\r\n", "\n")
}

#[test]
fn golden_drafts() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(FIXTURES);
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    fixtures.sort();
    let templates = Templates::builtin();
    let identity = identity();
    let rep_tz: Tz = identity.timezone.parse().unwrap();
    let calendar = BusinessCalendar::new(rep_tz);
    let now: DateTime<Utc> = Utc.with_ymd_and_hms(2027, 2, 24, 15, 0, 0).unwrap();
    let sent = now.fixed_offset();
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut follow_ups_ran = 0;
    let mut slots_offered = 0;

    for path in &fixtures {
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let mail = Mail::parse(&std::fs::read(path).unwrap()).unwrap();
        let case = case(stem);
        let context = |at: DateTime<Utc>| {
            let slots = if case.offer_slots {
                slots_after(at, &calendar, &case.facts)
            } else {
                Vec::new()
            };
            DraftContext::new(&mail, &case.classification, &case.facts, &identity).with_slots(
                &slots,
                rep_tz,
                buyer_zone(&case.facts),
            )
        };
        let ctx = context(now);
        slots_offered += ctx.proposed_slots.len();
        let body = templates
            .render(case.classification.category, &ctx)
            .unwrap_or_else(|e| panic!("{stem}: {e}"));
        let id = reply_message_id(&identity, mail.message_id.as_deref().unwrap_or(stem), 1);
        let reply = compose_reply(&mail, &identity, &body, &id, sent, None)
            .unwrap_or_else(|e| panic!("{stem}: {e}"));

        assert_eq!(reply.subject, reply_subject(&mail.subject), "{stem}");
        assert_eq!(reply.subject, case.subject, "{stem}");
        assert_eq!(reply.in_reply_to.as_deref(), case.in_reply_to, "{stem}");
        assert_eq!(reply.references, case.references, "{stem}");
        let text = check_headers(stem, &case, &reply, &id, &identity);
        assert!(
            text.starts_with(body.trim_end()),
            "{stem}: the draft leads the body"
        );
        failures.extend(compare_golden(&dir, stem, "", &text));
        let notes = rep_notes(&mail, &case.classification, &case.facts, now).join("\n") + "\n";
        failures.extend(compare_golden(&dir, stem, ".notes", &notes));
        ran += 1;

        // Each follow-up answers the message before it, once the buyer has been quiet for three
        // business days.
        let (mut previous, mut previous_sent) = (reply, now);
        for number in 1..=case.follow_ups {
            let at = follow_up_due(previous_sent, 3, &calendar);
            let info = FollowUpInfo {
                number,
                max: case.follow_ups,
                sent_at: previous_sent,
                business_days: 3,
            };
            let body = templates
                .render_follow_up(&context(at).with_follow_up(&info, rep_tz, at))
                .unwrap_or_else(|e| panic!("{stem} follow-up {number}: {e}"));
            let id = reply_message_id(&identity, &previous.message_id, 1);
            let previous_mail = Mail::parse(&previous.raw).unwrap();
            let follow_up = compose_follow_up(
                &previous_mail,
                &identity,
                &body,
                &id,
                at.fixed_offset(),
                None,
            )
            .unwrap_or_else(|e| panic!("{stem} follow-up {number}: {e}"));
            let label = format!("{stem} follow-up {number}");
            assert_eq!(follow_up.subject, case.subject, "{label}");
            assert_eq!(
                follow_up.in_reply_to.as_deref(),
                Some(previous.message_id.as_str()),
                "{label}"
            );
            let mut references = previous.references.clone();
            references.push(previous.message_id.clone());
            assert_eq!(follow_up.references, references, "{label}");
            let text = check_headers(&label, &case, &follow_up, &id, &identity);
            assert!(
                text.starts_with(body.trim_end()),
                "{label}: the draft leads the body"
            );
            let suffix = format!(".follow_up_{number}");
            failures.extend(compare_golden(&dir, stem, &suffix, &text));
            let notes =
                follow_up_notes(&mail, &case.classification, &case.facts, &info, rep_tz, at)
                    .join("\n")
                    + "\n";
            failures.extend(compare_golden(
                &dir,
                stem,
                &format!("{suffix}.notes"),
                &notes,
            ));
            (previous, previous_sent) = (follow_up, at);
            follow_ups_ran += 1;
        }
    }

    assert!(ran >= 7, "only {ran} fixtures under {FIXTURES} ran");
    assert!(follow_ups_ran >= 4, "only {follow_ups_ran} follow-ups ran");
    assert!(slots_offered >= 3, "no fixture offered meeting times");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

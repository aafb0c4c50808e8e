//! The domain vocabulary shared by the pure core and the adapters: what a procurement mail is
//! called, what the classifier concluded and what facts were read off it. Plain data, serde-ready;
//! no behaviour beyond naming and formatting.

use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Whether a message is a buyer-side procurement-process demand aimed at us as a supplier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    Procurement,
    Other,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Procurement => "procurement",
            Label::Other => "other",
        }
    }
}

/// The kind of procurement process a message pushes us into. `None` goes with `Label::Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Rfp,
    Rfq,
    Rfi,
    Tender,
    Portal,
    Questionnaire,
    PricingOnly,
    DemoRequest,
    ProcurementGatekeeper,
    None,
}

impl Category {
    /// Every procurement category, in the order reports list them (`None` excluded).
    pub const PROCUREMENT: [Category; 9] = [
        Category::Rfp,
        Category::Rfq,
        Category::Rfi,
        Category::Tender,
        Category::Portal,
        Category::Questionnaire,
        Category::PricingOnly,
        Category::DemoRequest,
        Category::ProcurementGatekeeper,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Rfp => "rfp",
            Category::Rfq => "rfq",
            Category::Rfi => "rfi",
            Category::Tender => "tender",
            Category::Portal => "portal",
            Category::Questionnaire => "questionnaire",
            Category::PricingOnly => "pricing_only",
            Category::DemoRequest => "demo_request",
            Category::ProcurementGatekeeper => "procurement_gatekeeper",
            Category::None => "none",
        }
    }

    pub fn parse(name: &str) -> Option<Category> {
        Category::PROCUREMENT
            .into_iter()
            .chain([Category::None])
            .find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One signal that fired, with the text that made it fire: the classifier's explanation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    /// The rule's name from the rules file, e.g. `subject-rfp` or `feedback-bayes`.
    pub signal: String,
    pub weight: f64,
    /// The text that matched (trimmed to a readable length).
    pub matched: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    pub label: Label,
    pub category: Category,
    pub score: f64,
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadlineKind {
    Submission,
    Questions,
    PreBid,
    IntentToBid,
    Other,
}

impl DeadlineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadlineKind::Submission => "submission",
            DeadlineKind::Questions => "questions",
            DeadlineKind::PreBid => "pre_bid",
            DeadlineKind::IntentToBid => "intent_to_bid",
            DeadlineKind::Other => "other",
        }
    }
}

/// A date the buyer set for us. Missing parts stay `None`; a date that could be read two ways
/// (or was resolved from a relative phrase with doubt) is kept and flagged `ambiguous`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deadline {
    pub kind: DeadlineKind,
    /// Serialised as "YYYY-MM-DD".
    pub date: Option<NaiveDate>,
    /// Serialised as "HH:MM", 24h.
    #[serde(with = "hh_mm")]
    pub time: Option<NaiveTime>,
    /// As resolved: an IANA name ("America/New_York") or a UTC offset ("+05:30").
    pub zone: Option<String>,
    /// The phrase the date came from.
    pub text: String,
    pub ambiguous: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StakeholderRole {
    /// Procurement, purchasing, sourcing, contracts: owns the process, not the problem.
    Procurement,
    /// Someone who owns the business problem: the people a discovery call should include.
    Business,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stakeholder {
    pub name: Option<String>,
    pub email: Option<String>,
    pub title: Option<String>,
    pub role: StakeholderRole,
}

/// Everything extracted from one message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// The buying organisation, from the signature, the sender's domain or the text.
    pub buyer: Option<String>,
    /// Who sent the request on the buyer's side.
    pub contact: Option<Stakeholder>,
    /// Where a reply goes: Reply-To, else From.
    pub reply_to: Option<String>,
    /// RFP/tender reference numbers ("RFP #2027-014").
    pub references: Vec<String>,
    /// Titles of the solicitation ("Managed Print Services").
    pub titles: Vec<String>,
    pub portal_urls: Vec<String>,
    pub stakeholders: Vec<Stakeholder>,
    pub deadlines: Vec<Deadline>,
    /// The sentence that forbids contact outside procurement (cone of silence), when present.
    pub no_contact_clause: Option<String>,
}

/// The rep: who drafts are written as.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub name: String,
    pub email: String,
    pub title: String,
    pub company: String,
    /// IANA time zone name.
    pub timezone: String,
}

impl Identity {
    /// The fictional rep of the demo, the template samples and the tests.
    pub fn demo() -> Identity {
        Identity {
            name: "Alex Rivera".into(),
            email: "alex@northwind.example".into(),
            title: "Account Executive".into(),
            company: "Northwind Analytics".into(),
            timezone: "Europe/London".into(),
        }
    }
}

mod hh_mm {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &Option<NaiveTime>, s: S) -> Result<S::Ok, S::Error> {
        match time {
            Some(t) => s.serialize_str(&t.format("%H:%M").to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| NaiveTime::parse_from_str(&s, "%H:%M").map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_serialises_in_the_documented_shape() {
        let d = Deadline {
            kind: DeadlineKind::PreBid,
            date: NaiveDate::from_ymd_opt(2027, 3, 3),
            time: NaiveTime::from_hms_opt(17, 0, 0),
            zone: Some("America/New_York".into()),
            text: "March 3, 2027 at 5:00 PM EST".into(),
            ambiguous: false,
        };
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["kind"], "pre_bid");
        assert_eq!(json["date"], "2027-03-03");
        assert_eq!(json["time"], "17:00");
        let back: Deadline = serde_json::from_value(json).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn category_names_round_trip() {
        for c in Category::PROCUREMENT.into_iter().chain([Category::None]) {
            assert_eq!(Category::parse(c.as_str()), Some(c));
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
    }
}

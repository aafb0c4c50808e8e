//! Fact extraction: reads one parsed mail and returns the `Facts` a draft and its reminders need:
//! deadlines (`dates`), the buyer and the people involved (`parties`), solicitation numbers,
//! titles, portal links and the no-contact clause (`references`). Pure: the Date header is the
//! only clock, and nothing here knows which address is the rep's (the caller filters that).

mod dates;
pub mod eval;
mod parties;
mod references;
mod zones;

use crate::core::mail::Mail;
use crate::core::model::Facts;

pub use dates::DateOrder;

/// Everything this module can read off one message.
pub fn extract(mail: &Mail) -> Facts {
    let base = mail.date.map(|d| d.date_naive());
    let order = date_order(mail);
    let deadlines = dates::find_deadlines(&mail.subject, &mail.body, base, order);
    let people = parties::find_parties(mail);
    let refs = references::find_references(&mail.subject, &mail.body);
    Facts {
        buyer: people.buyer,
        contact: people.contact,
        reply_to: mail.reply_address().map(|a| a.email.clone()),
        references: refs.references,
        titles: refs.titles,
        portal_urls: refs.portal_urls,
        stakeholders: people.stakeholders,
        deadlines,
        no_contact_clause: refs.no_contact_clause,
    }
}

/// The clue for reading "04/05/2027": the sender's country domain when it has one, else a North
/// American Date-header offset (UTC-4 to UTC-10) on a generic domain means month first. No clue
/// leaves such dates flagged ambiguous.
pub fn date_order(mail: &Mail) -> Option<DateOrder> {
    let domain = mail.from.as_ref().map(|a| a.domain()).unwrap_or("");
    let tld = domain.rsplit('.').next().unwrap_or("");
    match tld {
        "us" | "gov" | "mil" => return Some(DateOrder::MonthFirst),
        "com" | "net" | "org" | "edu" | "biz" | "info" | "io" | "" => {}
        // Canada and the Philippines mix both orders.
        "ca" | "ph" => return None,
        _ if tld.len() == 2 => return Some(DateOrder::DayFirst),
        _ => {}
    }
    let offset = mail.date?.offset().local_minus_utc();
    (-10 * 3600..=-4 * 3600)
        .contains(&offset)
        .then_some(DateOrder::MonthFirst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::DeadlineKind;

    fn mail(from: &str, date: &str, body: &str) -> Mail {
        let raw = format!(
            "From: {from}\r\nTo: rep@seller.example\r\nSubject: Quote request\r\nDate: {date}\r\n\r\n{body}\r\n"
        );
        Mail::parse(raw.as_bytes()).unwrap()
    }

    #[test]
    fn date_order_follows_sender_country_then_offset() {
        let table = [
            (
                "a@buyer.co.uk",
                "Mon, 1 Mar 2027 09:00:00 -0500",
                Some(DateOrder::DayFirst),
            ),
            (
                "a@city.gov",
                "Mon, 1 Mar 2027 09:00:00 +0100",
                Some(DateOrder::MonthFirst),
            ),
            (
                "a@buyer.com",
                "Mon, 1 Mar 2027 09:00:00 -0500",
                Some(DateOrder::MonthFirst),
            ),
            ("a@buyer.com", "Mon, 1 Mar 2027 09:00:00 +0100", None),
            ("a@buyer.ca", "Mon, 1 Mar 2027 09:00:00 -0500", None),
        ];
        for (from, date, want) in table {
            assert_eq!(date_order(&mail(from, date, "")), want, "{from} {date}");
        }
    }

    #[test]
    fn reads_quoted_buyer_text_but_not_quoted_headers() {
        let body = "Can you bid on this?\r\n\r\n-----Original Message-----\r\nFrom: Pat Buyer\r\n\
Sent: Monday, March 1, 2027 9:00 AM\r\nSubject: RFQ\r\n\r\n> Quotes are due March 5, 2027 by 3 PM EST.\r\n";
        let facts = extract(&mail("a@buyer.com", "Tue, 2 Mar 2027 10:00:00 -0500", body));
        let dates: Vec<_> = facts.deadlines.iter().map(|d| (d.kind, d.date)).collect();
        assert_eq!(
            dates,
            vec![(
                DeadlineKind::Submission,
                chrono::NaiveDate::from_ymd_opt(2027, 3, 5)
            )]
        );
        assert_eq!(
            facts.deadlines[0].text,
            "Quotes are due March 5, 2027 by 3 PM EST."
        );
        assert_eq!(facts.reply_to.as_deref(), Some("a@buyer.com"));
    }

    #[test]
    fn garbage_mail_does_not_panic() {
        let raws: [&[u8]; 4] = [
            b"From: x@y.example\r\n\r\n\xff\xfe due 3/3 \xc3\x28 Friday\r\n> > >\r\n",
            b"Subject: RFP due 31/31/31\r\n\r\n-----\n--\n>\n",
            b"From: <@>\r\nDate: garbage\r\n\r\nProposals due tomorrow. Regards,\r\n",
            b"From: \"\" <a@b.example>\r\n\r\nRegards,\r\n\r\n",
        ];
        for raw in raws {
            if let Ok(m) = Mail::parse(raw) {
                let _ = extract(&m);
            }
        }
    }
}

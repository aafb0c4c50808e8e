//! The scan's exactly-once promise under crashes, driven through the library with a fixed clock:
//! a draft file left behind by a crash before the store recorded it is replaced, not doubled; an
//! unparseable message is remembered with its reason and never stops the pass.

use chrono::{TimeZone, Utc};
use pushback::adapters::maildir::Maildir;
use pushback::adapters::store::Store;
use pushback::app::{Session, scan};
use pushback::config::Config;

const RFQ: &[u8] = b"From: Buyer <buyer@acme.example>\r\nTo: alex@northwind.example\r\n\
Subject: RFQ 7781 - sensor modules\r\nDate: Mon, 1 Mar 2027 09:00:00 +0000\r\n\
Message-ID: <rfq-7781@acme.example>\r\n\r\n\
Please find attached our Request for Quotation RFQ 7781 for 400 sensor modules.\r\n\
Quotations are due by March 12, 2027. Please submit your best price per unit.\r\n";

fn session(dir: &std::path::Path) -> Session {
    let config = Config::demo(&dir.join("Maildir"), &dir.join("state"));
    Maildir::create(&dir.join("Maildir")).unwrap();
    Session::open(&config).unwrap()
}

#[test]
fn a_draft_file_left_by_a_crash_is_replaced_not_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = session(dir.path());
    let entry = session.maildir.deliver(RFQ).unwrap();
    // A crash after writing the draft file but before the store recorded the message.
    let leftover = scan::draft_file_name(&entry.key);
    session
        .maildir
        .write_draft(&leftover, b"Subject: half-done\r\n\r\n")
        .unwrap();

    let now = Utc.with_ymd_and_hms(2027, 3, 1, 10, 0, 0).unwrap();
    let report = session.scan(now).unwrap();
    assert_eq!(report.findings.len(), 1);
    assert!(report.findings[0].draft_id.is_some(), "{report:?}");

    let drafts = session.maildir.drafts().unwrap();
    assert_eq!(drafts.len(), 1, "{drafts:?}");
    let written = std::fs::read_to_string(&drafts[0]).unwrap();
    assert!(
        written.contains("In-Reply-To: <rfq-7781@acme.example>"),
        "{written}"
    );

    // A restart: a new store handle on the same files finds nothing new to do.
    drop(session);
    let mut session = self::session(dir.path());
    let again = session.scan(now).unwrap();
    assert_eq!(again.already_seen, 1);
    assert_eq!(session.maildir.drafts().unwrap().len(), 1);
    assert_eq!(session.store.drafts(None).unwrap().len(), 1);
}

#[test]
fn a_broken_message_is_skipped_with_its_reason_and_the_pass_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut session = session(dir.path());
    session.maildir.deliver(b"\r\n\r\n").unwrap();
    session.maildir.deliver(RFQ).unwrap();
    let now = Utc.with_ymd_and_hms(2027, 3, 1, 10, 0, 0).unwrap();
    let report = session.scan(now).unwrap();
    assert_eq!(report.skipped.len(), 1);
    assert!(
        report.skipped[0].reason.contains("cannot parse"),
        "{report:?}"
    );
    assert_eq!(report.findings.len(), 1);
    // Remembered: the next pass neither retries nor reports it again.
    let again = session.scan(now).unwrap();
    assert_eq!(again.already_seen, 2);
    assert!(again.skipped.is_empty());
}

#[test]
fn an_oversized_message_is_skipped_with_a_clear_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::demo(&dir.path().join("Maildir"), &dir.path().join("state"));
    config.max_message_bytes = 200;
    let maildir = Maildir::create(&dir.path().join("Maildir")).unwrap();
    maildir.deliver(RFQ).unwrap();
    let mut session = Session::open(&config).unwrap();
    let now = Utc.with_ymd_and_hms(2027, 3, 1, 10, 0, 0).unwrap();
    let report = session.scan(now).unwrap();
    assert_eq!(report.skipped.len(), 1);
    assert!(report.skipped[0].reason.contains("limit"), "{report:?}");
    let store: &Store = &session.store;
    assert!(store.drafts(None).unwrap().is_empty());
}

//! Bad input drills: hostile messages (50 MB, 10,000 MIME parts, charsets that do not exist,
//! bytes that are not what the charset says, NUL bytes, a 1 MB header line, two different
//! messages sharing one Message-ID, an RFP with no one to reply to) through the real daemon on
//! Dovecot and through a Maildir scan; a reply template that loops forever; a config with every
//! kind of mistake. Each gets a clear message, and nothing is lost: every message is recorded and
//! every ordinary RFP after a hostile one is still drafted. The big inputs are generated here.

mod support;

use pushback::adapters::store::Store;
use pushback::app::watch::IMAP_INBOX;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};
use support::MailServers;
use support::pushback::{
    BUYER, maildir_config_text, original_id, peak_rss_kib, pushback_cli, pushback_output, rfp,
    spawn_daemon, stop, wait_logged, write_config_with, write_maildir_config,
};

const RFP_TEXT: &str = "Dear Supplier,\r\n\r\nThe City of Springfield is soliciting proposals \
    under RFP #2026-900.\r\nProposals are due March 15, 2027 at 5:00 PM EST. Questions must be \
    submitted\r\nin writing no later than February 26, 2027.\r\n\r\nDana Whitfield\r\nSenior \
    Procurement Officer\r\n";

/// Headers of a hostile RFP: `extra` goes after Message-ID, before the blank line.
fn head(id: &str, subject: &str, date: &str, extra: &str) -> String {
    format!(
        "From: Dana Whitfield <{BUYER}>\r\nTo: alice@northwind.example\r\nSubject: {subject}\r\n\
         Date: {date}\r\nMessage-ID: <{id}>\r\nMIME-Version: 1.0\r\n{extra}"
    )
}

const DATE: &str = "Mon, 22 Feb 2027 09:14:00 -0500";

/// The hostile messages, by name, and the Message-ID each carries.
fn hostile() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let id = |name: &str| format!("bad-{name}@purchasing.springfield.example.gov");

    // 50 MB: the RFP's text, then a 50 MB attachment.
    let mut big = head(
        &id("50mb"),
        "RFP #2026-900 - specifications attached",
        DATE,
        "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
    );
    write!(
        big,
        "--b\r\nContent-Type: text/plain\r\n\r\n{RFP_TEXT}--b\r\n\
         Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"specs.bin\"\r\n\r\n"
    )
    .unwrap();
    let line = format!("{}\r\n", "QUJD".repeat(19));
    while big.len() < 50 * 1024 * 1024 {
        big.push_str(&line);
    }
    big.push_str("--b--\r\n");
    out.push(("50 MB message", id("50mb"), big.into_bytes()));

    // 10,000 MIME parts.
    let mut parts = head(
        &id("parts"),
        "RFP #2026-901 - 10,000 attachments",
        DATE,
        "Content-Type: multipart/mixed; boundary=\"p\"\r\n\r\n",
    );
    write!(parts, "--p\r\nContent-Type: text/plain\r\n\r\n{RFP_TEXT}").unwrap();
    for n in 1..10_000 {
        write!(parts, "--p\r\nContent-Type: text/plain\r\n\r\npart {n}\r\n").unwrap();
    }
    parts.push_str("--p--\r\n");
    out.push(("10,000 MIME parts", id("parts"), parts.into_bytes()));

    // Charsets that do not exist, and bytes that are not UTF-8 in a UTF-8 part.
    let mut charsets = head(
        &id("charset"),
        "=?x-no-such-charset?B?UkZQICMyMDI2LTkwMg==?= Request for Proposal",
        DATE,
        "Content-Type: text/plain; charset=\"x-no-such-charset\"\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n",
    )
    .into_bytes();
    charsets.extend_from_slice(b"\xff\xfe\x80\x81 ");
    charsets.extend_from_slice(RFP_TEXT.as_bytes());
    out.push(("an unknown charset", id("charset"), charsets));
    let mut utf8 = head(
        &id("utf8"),
        "Request for Proposal RFP #2026-903 \u{fffd}",
        DATE,
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    )
    .into_bytes();
    utf8.extend_from_slice(b"Caf\xc3 \xe9\xed\xa0\x80 overlong \xc0\xaf\r\n");
    utf8.extend_from_slice(RFP_TEXT.as_bytes());
    out.push(("invalid UTF-8", id("utf8"), utf8));

    // NUL bytes in a header and in the body.
    let nul = head(
        &id("nul"),
        "Request for Proposal\0 RFP #2026-904\0",
        DATE,
        "Content-Type: text/plain\r\n\r\n",
    ) + &RFP_TEXT.replace("Proposals", "Pro\0posals")
        + "\0\0\0\r\n";
    out.push(("NUL bytes", id("nul"), nul.into_bytes()));

    // One header line of 1 MB.
    let long = head(
        &id("long-header"),
        "Request for Proposal RFP #2026-905",
        DATE,
        &format!(
            "X-Tracking: {}\r\nContent-Type: text/plain\r\n\r\n",
            "a".repeat(1024 * 1024)
        ),
    ) + RFP_TEXT;
    out.push(("a 1 MB header line", id("long-header"), long.into_bytes()));

    // Two different messages, one Message-ID.
    let shared = id("shared");
    let first = head(
        &shared,
        "Request for Proposal RFP #2026-906 - Fleet Telematics",
        DATE,
        "Content-Type: text/plain\r\n\r\n",
    ) + RFP_TEXT;
    out.push((
        "a Message-ID shared (1 of 2)",
        shared.clone(),
        first.into_bytes(),
    ));
    let second = head(
        &shared,
        "RFQ 2026-907 - Office Chairs, quote by Friday",
        "Wed, 24 Feb 2027 11:02:00 -0500",
        "Content-Type: text/plain\r\n\r\n",
    ) + "Dear Vendor,\r\n\r\nPlease send your best price for 40 office chairs under RFQ \
         2026-907.\r\nQuotes are due March 5, 2027.\r\n\r\nDana Whitfield\r\nProcurement\r\n";
    out.push(("a Message-ID shared (2 of 2)", shared, second.into_bytes()));

    // An RFP nobody can be answered on: no From, no Reply-To.
    let anonymous = format!(
        "To: alice@northwind.example\r\nSubject: Request for Proposal RFP #2026-908\r\n\
         Date: {DATE}\r\nMessage-ID: <{}>\r\n\r\n{RFP_TEXT}",
        id("no-sender")
    );
    out.push((
        "an RFP without a sender",
        id("no-sender"),
        anonymous.into_bytes(),
    ));
    out
}

/// Each hostile message followed by an ordinary RFP, numbered from 100.
struct Inbox {
    raws: Vec<Vec<u8>>,
    /// The hostile messages' names and Message-IDs, in order.
    hostile: Vec<(&'static str, String)>,
    /// The ordinary RFPs' Message-IDs.
    good: Vec<String>,
}

fn inbox() -> Inbox {
    let mut inbox = Inbox {
        raws: Vec::new(),
        hostile: Vec::new(),
        good: Vec::new(),
    };
    for (n, (name, id, raw)) in (100..).zip(hostile()) {
        inbox.raws.push(raw);
        inbox.hostile.push((name, id));
        inbox.raws.push(rfp(n));
        inbox.good.push(original_id(n));
    }
    inbox
}

fn bare(id: &str) -> String {
    id.trim().trim_matches(['<', '>']).to_string()
}

#[test]
fn hostile_messages_through_the_daemon_are_each_handled_and_none_is_lost() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(&servers, dir.path(), "", "");
    let state = dir.path().join("state");
    let log = dir.path().join("daemon.log");
    let Inbox {
        raws,
        hostile: hostile_ids,
        good,
    } = inbox();
    servers.deliver_many(&raws);
    let last = servers.folder("INBOX").last().unwrap().uid;

    let started = Instant::now();
    let mut daemon = spawn_daemon(&config, &log, true);
    wait_logged(
        "every message handled",
        Duration::from_secs(60),
        &log,
        || {
            let store = Store::open(&state).ok()?;
            let done = store.sync_state(IMAP_INBOX).ok()??.uid == last
                && store.unplaced_drafts().ok()?.is_empty();
            done.then_some(())
        },
    );
    let took = started.elapsed();
    let peak = peak_rss_kib(daemon.id());
    assert!(daemon.try_wait().unwrap().is_none(), "the daemon runs on");
    stop(&mut daemon);

    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("panicked"), "{text}");
    let store = Store::open(&state).unwrap();
    let uid_validity = servers.uidvalidity("INBOX");
    for message in servers.folder("INBOX") {
        let key = format!("{uid_validity}:{}", message.uid);
        assert!(store.is_seen(IMAP_INBOX, &key).unwrap(), "{key} handled");
    }
    let drafts = store.drafts(None).unwrap();
    let mut by_original: HashMap<String, Vec<&pushback::adapters::store::DraftRecord>> =
        HashMap::new();
    for draft in &drafts {
        by_original
            .entry(bare(draft.in_reply_to.as_deref().unwrap_or_default()))
            .or_default()
            .push(draft);
    }
    for id in &good {
        assert_eq!(
            by_original.get(id).map(Vec::len),
            Some(1),
            "{id}: the RFP after a hostile message is drafted"
        );
    }
    let mut outcomes = Vec::new();
    for (name, id) in &hostile_ids {
        let n = by_original.get(id).map_or(0, Vec::len);
        outcomes.push(format!("{name}: {n} draft(s)"));
    }
    eprintln!(
        "bad input through the daemon: {} messages handled in {:.2} s, peak RSS {} KiB; {}",
        raws.len(),
        took.as_secs_f64(),
        peak,
        outcomes.join("; ")
    );
    // Only the head of each message is fetched: the 50 MB one is drafted from its text.
    assert_eq!(by_original[&bare(&hostile_ids[0].1)].len(), 1, "50 MB");
    assert!(peak < 100 * 1024, "peak RSS {peak} KiB");
    // Two different messages, one Message-ID: the first is drafted; the second is no copy, so it
    // keeps its own deadlines and the rep is told to answer it by hand (a second reply threaded
    // on that id would pass for an edit of the first).
    let shared = &by_original[&hostile_ids[6].1];
    assert_eq!(shared.len(), 1, "{shared:?}");
    assert!(shared[0].subject.contains("Fleet Telematics"));
    let reminders = store.reminders(false).unwrap();
    assert!(
        reminders.iter().any(|r| r
            .subject
            .as_deref()
            .is_some_and(|s| s.contains("Office Chairs"))),
        "the second message's deadline is kept: {reminders:?}"
    );
    assert!(
        text.contains("reuses the Message-ID of a different message"),
        "{text}"
    );
    let in_drafts = servers.folder("Drafts").len();
    assert_eq!(in_drafts, drafts.len(), "every draft in Drafts, once");
    // No one to reply to: recorded with the reason, and the rest went on.
    assert!(!by_original.contains_key(&hostile_ids[8].1));
    assert!(text.contains("neither From nor Reply-To"), "{text}");
}

#[test]
fn hostile_messages_in_a_maildir_are_each_reported_and_none_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Mail");
    pushback::adapters::maildir::Maildir::create(&maildir).unwrap();
    let Inbox { raws, good, .. } = inbox();
    for (n, raw) in raws.iter().enumerate() {
        std::fs::write(
            maildir
                .join("new")
                .join(format!("1700000000.M{n:04}.drill")),
            raw,
        )
        .unwrap();
    }
    let config = write_maildir_config(dir.path(), &maildir);
    let started = Instant::now();
    let report: serde_json::Value =
        serde_json::from_str(&pushback_cli(&config, &["scan", "--json"])).unwrap();
    let took = started.elapsed();
    let count = |key: &str| report[key].as_array().unwrap().len();
    assert_eq!(report["examined"], raws.len());
    assert_eq!(
        count("findings") + count("skipped") + count("deferred"),
        raws.len(),
        "{report:#}"
    );
    let skipped: Vec<String> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["reason"].as_str().unwrap().to_string())
        .collect();
    assert!(
        skipped.iter().any(|r| r.contains("byte limit")),
        "the 50 MB message is over max-message-bytes: {skipped:?}"
    );
    let store = Store::open(&dir.path().join("state")).unwrap();
    let drafts = store.drafts(None).unwrap();
    for id in &good {
        assert_eq!(
            drafts
                .iter()
                .filter(|d| d.in_reply_to.as_deref().map(bare).as_deref() == Some(id.as_str()))
                .count(),
            1,
            "{id}"
        );
    }
    eprintln!(
        "bad input in a Maildir: {} messages in {:.2} s: {} findings, skipped {skipped:?}, \
         deferred {}",
        raws.len(),
        took.as_secs_f64(),
        count("findings"),
        report["deferred"]
    );
}

/// Writes the repository's templates into `dir`.
fn copy_templates(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    for entry in std::fs::read_dir(repo).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "txt") {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
}

const LOOPING: &str = "Hi {{ greeting }},\n\n\
    {% for a in range(100000) %}{% for b in range(100000) %}.{% endfor %}{% endfor %}\n";

#[test]
fn a_template_that_loops_forever_is_refused_by_name_and_line_and_the_last_good_one_drafts() {
    let servers = MailServers::start();
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    copy_templates(&templates);
    let tables = format!("\n[templates]\ndir = \"{}\"\n", templates.display());
    let config = write_config_with(&servers, dir.path(), "", &tables);
    let state = dir.path().join("state");
    let log = dir.path().join("daemon.log");

    // `templates check` names the file and the line, and says why.
    let looping_dir = dir.path().join("looping");
    copy_templates(&looping_dir);
    std::fs::write(looping_dir.join("rfp.txt"), LOOPING).unwrap();
    let started = Instant::now();
    let out = pushback_output(
        &config,
        &["templates", "check", looping_dir.to_str().unwrap()],
    );
    let check_took = started.elapsed();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("rfp.txt line 3"), "{said}");
    assert!(said.contains("fuel"), "{said}");

    // A running daemon refuses it on reload and drafts with the last good set.
    let mut daemon = spawn_daemon(&config, &log, true);
    servers.deliver(&rfp(1));
    wait_logged("the first draft", Duration::from_secs(20), &log, || {
        let n = Store::open(&state).ok()?.drafts(None).ok()?.len();
        (n == 1).then_some(())
    });
    std::fs::write(templates.join("rfp.txt"), LOOPING).unwrap();
    wait_logged(
        "the reload to be refused",
        Duration::from_secs(20),
        &log,
        || {
            let text = std::fs::read_to_string(&log).ok()?;
            text.contains("fuel").then_some(())
        },
    );
    servers.deliver(&rfp(2));
    wait_logged("the second draft", Duration::from_secs(20), &log, || {
        let n = Store::open(&state).ok()?.drafts(None).ok()?.len();
        (n == 2).then_some(())
    });
    assert!(daemon.try_wait().unwrap().is_none(), "the daemon runs on");
    stop(&mut daemon);
    let store = Store::open(&state).unwrap();
    let second = &store.drafts(None).unwrap()[1];
    assert!(!second.body.contains("...."), "{}", second.body);
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().find(|l| l.contains("fuel")).unwrap();
    assert!(line.contains("rfp.txt line 3"), "{line}");
    eprintln!(
        "looping template: `templates check` refused it in {:.2} s: {}",
        check_took.as_secs_f64(),
        said.lines()
            .find(|l| l.contains("fuel"))
            .unwrap_or_default()
            .trim()
    );

    // Started with the looping template in place: the RFP waits, undrafted but not lost, and
    // is drafted once the template is fixed.
    let mut daemon = spawn_daemon(&config, &log, true);
    servers.deliver(&rfp(3));
    wait_logged("the RFP to wait", Duration::from_secs(20), &log, || {
        let text = std::fs::read_to_string(&log).ok()?;
        (text.matches("cannot process message").count() > 0).then_some(())
    });
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/rfp.txt"),
        templates.join("rfp.txt"),
    )
    .unwrap();
    wait_logged("the third draft", Duration::from_secs(30), &log, || {
        let n = Store::open(&state).ok()?.drafts(None).ok()?.len();
        (n == 3).then_some(())
    });
    stop(&mut daemon);
    let drafts = Store::open(&state).unwrap().drafts(None).unwrap();
    assert_eq!(
        drafts[2].in_reply_to.as_deref().map(bare),
        Some(original_id(3))
    );
}

/// `config check` on `text`: its stderr, which must fail.
fn refused(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let out = pushback_output(&path, &["config", "check"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{name} was accepted:\n{text}");
    stderr
}

#[test]
fn every_kind_of_config_mistake_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = maildir_config_text(dir.path(), &dir.path().join("Mail"));
    let out = {
        let path = dir.path().join("good.toml");
        std::fs::write(&path, &good).unwrap();
        pushback_output(&path, &["config", "check"])
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // (file, mistake, what the message must say): the line numbers count from the file's top.
    let lines_before_tail = good.lines().count();
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        (
            "unknown-key.toml",
            good.clone() + "\n[follow-up]\nafter-buisness-days = 3\n",
            vec![
                format!("line {}", lines_before_tail + 3),
                "after-buisness-days".into(),
            ],
        ),
        (
            "wrong-type.toml",
            good.clone() + "\n[follow-up]\nafter-business-days = \"three\"\n",
            vec![
                format!("line {}", lines_before_tail + 3),
                "after-business-days".into(),
                "invalid type: string \"three\", expected u32".into(),
            ],
        ),
        (
            "bad-zone.toml",
            good.replace("Europe/London", "Europe/Londn"),
            vec!["line 7".into(), "timezone".into(), "Europe/Londn".into()],
        ),
        (
            "bad-cron.toml",
            good.clone() + "\n[reminders]\nat = \"0 25 * * *\"\n",
            vec![
                format!("line {}", lines_before_tail + 3),
                "[reminders] at".into(),
            ],
        ),
        (
            "bad-number-of-days.toml",
            good.clone() + "\n[follow-up]\nafter-business-days = 0\n",
            vec![
                format!("line {}", lines_before_tail + 3),
                "after-business-days".into(),
                "out of range".into(),
            ],
        ),
        (
            "bad-hours.toml",
            good.clone() + "\n[business]\nworking-hours = \"17:00-09:00\"\n",
            vec![
                format!("line {}", lines_before_tail + 3),
                "working-hours".into(),
            ],
        ),
        (
            "missing-file.toml",
            good.clone() + "\n[business]\nholidays-file = \"no-such-holidays.ics\"\n",
            vec![
                format!("line {}", lines_before_tail + 3),
                "holidays-file".into(),
                "no-such-holidays.ics".into(),
            ],
        ),
        (
            "duplicate-key.toml",
            good.replace("title = ", "name = \"Alex\"\ntitle = "),
            vec!["line 5".into(), "name".into(), "duplicate".into()],
        ),
        (
            "bad-syntax.toml",
            good.replace("company = \"Northwind Analytics\"", "company = \"Northwind"),
            vec!["line 6".into()],
        ),
        (
            "missing-key.toml",
            good.replace("email = \"alice@northwind.example\"\n", ""),
            vec!["email".into(), "missing".into()],
        ),
        (
            "bad-version.toml",
            good.replace("version = 1", "version = 3"),
            vec!["line 1".into(), "version".into()],
        ),
        // A single-account file marked version 2 is told how to migrate.
        (
            "version-2-single.toml",
            good.replace("version = 1", "version = 2"),
            vec![
                "line 2".into(),
                "[identity]".into(),
                "[account.identity]".into(),
            ],
        ),
    ];
    let mut said = Vec::new();
    for (name, text, wanted) in &cases {
        let stderr = refused(dir.path(), name, text);
        assert!(stderr.contains(name), "{name}: the file is named: {stderr}");
        for want in wanted {
            assert!(
                stderr.contains(want.as_str()),
                "{name}: {want:?} in {stderr}"
            );
        }
        said.push(format!("{name}: {}", stderr.trim()));
    }
    // No config at all names where it looked.
    let missing = dir.path().join("nowhere.toml");
    let out = pushback_output(&missing, &["config", "check"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(stderr.contains("nowhere.toml"), "{stderr}");
    said.push(format!("nowhere.toml: {}", stderr.trim()));
    eprintln!("config mistakes:\n{}", said.join("\n"));
}

//! Classification throughput on one core: parse + classify + extract (`Pipeline::analyse`, what
//! every message costs when inspected), and `Pipeline::triage` (what a scan runs: facts extracted only
//! from mail classified as procurement), against mail-parser parsing alone on the same
//! bytes in the same run. Inputs: a seeded synthetic corpus with a realistic spread of sizes and
//! kinds (generated here, so the bench needs nothing outside the repo), the project's own labelled
//! mail (`tests/fixtures/**/*.eml`), and optionally a folder of real `.eml` files
//! (`PUSHBACK_BENCH_CORPUS=../shared/corpus/dev`).
//!
//! A second table splits one message's cost into its stages, each alone on inputs prepared
//! beforehand: mail-parser's parse, `Mail::parse` (that parse and the body text signals read),
//! `Classifier::classify` and `extract`, in microseconds per message and as multiples of the parse.
//!
//! `cargo bench --bench classify`; `PUSHBACK_BENCH_MESSAGES=N` sets the synthetic corpus size
//! (default 100,000), `PUSHBACK_BENCH_SECONDS=S` the minimum time per measurement (default 3),
//! `PUSHBACK_BENCH_PASSES=P` the minimum passes over each corpus per measurement (default 1):
//! with `PUSHBACK_BENCH_SECONDS=0` a fixed amount of work, for counting instructions under
//! callgrind (docs/benchmarks.md).

use chrono::Utc;
use pushback::config::Config;
use pushback::core::classify::{BUILTIN_RULES, Classifier, Rules};
use pushback::core::extract;
use pushback::core::mail::Mail;
use std::path::Path;
use std::time::{Duration, Instant};

fn main() {
    // `cargo test --all-targets` runs a harness-less bench without `--bench`: do nothing then.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("classify bench: run with `cargo bench --bench classify`");
        return;
    }
    let messages = env_usize("PUSHBACK_BENCH_MESSAGES", 100_000);
    let seconds = env_usize("PUSHBACK_BENCH_SECONDS", 3) as u64;
    let passes = env_usize("PUSHBACK_BENCH_PASSES", 1);
    let dir = tempfile::tempdir().unwrap();
    let config = Config::demo(&dir.path().join("Maildir"), &dir.path().join("state"));
    let pipeline = pushback::app::pipeline_for(&config).unwrap();

    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut corpora = vec![
        ("synthetic", synthetic(messages, 20_27)),
        ("fixtures", read_eml(&fixtures)),
    ];
    if let Ok(path) = std::env::var("PUSHBACK_BENCH_CORPUS") {
        corpora.push(("PUSHBACK_BENCH_CORPUS", read_eml(Path::new(&path))));
    }
    println!(
        "## Classification throughput ({} UTC)\n",
        Utc::now().format("%Y-%m-%d %H:%M")
    );
    println!(
        "| corpus | messages | mean size | procurement | parse only (msg/s) | parse + classify + extract (msg/s) | ratio | as a scan runs it: extract procurement only (msg/s) | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, corpus) in &corpora {
        let bytes: usize = corpus.iter().map(Vec::len).sum();
        let parse = rate(corpus, seconds, passes, parse_only);
        let analyse = rate(corpus, seconds, passes, |raw| {
            let _ = std::hint::black_box(pipeline.analyse(raw));
        });
        let triage = rate(corpus, seconds, passes, |raw| {
            let _ = std::hint::black_box(pipeline.triage(raw));
        });
        let procurement = corpus
            .iter()
            .filter(|raw| pipeline.triage(raw).is_ok_and(|a| a.is_procurement()))
            .count();
        println!(
            "| {name} | {} | {:.1} KiB | {:.0}% | {parse:.0} | {analyse:.0} | {:.2} | {triage:.0} | {:.2} |",
            corpus.len(),
            bytes as f64 / corpus.len() as f64 / 1024.0,
            100.0 * procurement as f64 / corpus.len() as f64,
            analyse / parse,
            triage / parse
        );
    }

    let rules = Rules::from_toml(BUILTIN_RULES, Path::new("rules.toml")).unwrap();
    let classifier = Classifier::new(&rules).unwrap();
    println!(
        "\n| corpus | parse (µs) | Mail::parse (µs) | classify (µs) | extract (µs) | Mail::parse / parse | classify / parse | extract / parse |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (name, corpus) in &corpora {
        let mails: Vec<Mail> = corpus
            .iter()
            .filter_map(|raw| Mail::parse(raw).ok())
            .collect();
        let micros = |per_second: f64| 1e6 / per_second;
        let parse = micros(rate(corpus, seconds, passes, parse_only));
        let mail = micros(rate(corpus, seconds, passes, |raw| {
            let _ = std::hint::black_box(Mail::parse(raw));
        }));
        let classify = micros(rate(&mails, seconds, passes, |mail| {
            std::hint::black_box(classifier.classify(mail, None));
        }));
        let extract = micros(rate(&mails, seconds, passes, |mail| {
            std::hint::black_box(extract::extract(mail));
        }));
        println!(
            "| {name} | {parse:.1} | {mail:.1} | {classify:.1} | {extract:.1} | {:.2} | {:.2} | {:.2} |",
            mail / parse,
            classify / parse,
            extract / parse
        );
    }
}

/// The baseline: mail-parser alone.
fn parse_only(raw: &Vec<u8>) {
    std::hint::black_box(mail_parser::MessageParser::default().parse(raw));
}

/// Messages per second of `work` over `corpus`, cycling through it for at least `seconds` and at
/// least `passes` times.
fn rate<T>(corpus: &[T], seconds: u64, passes: usize, mut work: impl FnMut(&T)) -> f64 {
    let budget = Duration::from_secs(seconds);
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed() < budget || done < corpus.len() * passes {
        work(&corpus[done % corpus.len()]);
        done += 1;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn read_eml(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(read_eml(&path));
        } else if path.extension().is_some_and(|e| e == "eml") {
            out.push(std::fs::read(&path).unwrap());
        }
    }
    assert!(!out.is_empty(), "no .eml files under {}", dir.display());
    out
}

/// `n` messages from `seed`: short replies and plain-text mail of a few KiB, replies on top of a
/// quoted thread, some HTML newsletters, some with base64 attachments, a few large ones; about one
/// in twenty a procurement request (RFP, portal registration, questionnaire, "just send
/// pricing"), the rest everyday business mail.
fn synthetic(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|i| message(&mut rng, i)).collect()
}

const WORDS: &[&str] = &[
    "project", "update", "meeting", "schedule", "budget", "team", "review", "quarter", "customer",
    "delivery", "timeline", "report", "thanks", "please", "attached", "draft", "next", "week",
    "call", "agenda", "notes", "follow", "plan", "launch", "invoice", "contract", "renewal",
    "support", "ticket", "question", "feedback", "design", "release", "numbers", "forecast",
];

const PROCUREMENT: &[(&str, &str)] = &[
    (
        "Request for Proposal RFP #{n} - Fleet Telematics",
        "The City is soliciting proposals under RFP #{n}. Proposals are due March 15, 2027 at \
         5:00 PM EST. Questions must be submitted in writing no later than February 26, 2027. \
         All communication must be directed to the Procurement Officer named below.",
    ),
    (
        "Action required: register in our supplier portal",
        "To be considered for future sourcing events please register your company in our \
         supplier portal at https://suppliers.example.com/register before 12 March 2027.",
    ),
    (
        "Vendor security questionnaire - please complete",
        "As part of our vendor onboarding, please complete the attached security questionnaire \
         and return it by 10 March 2027.",
    ),
    (
        "Pricing",
        "Before we go any further, just send us your pricing for 250 seats. No need for a call.",
    ),
];

/// A sentence of `min..max` words.
fn sentence(rng: &mut fastrand::Rng, min: usize, max: usize) -> String {
    let words = rng.usize(min..max);
    let mut s: Vec<&str> = (0..words)
        .map(|_| WORDS[rng.usize(..WORDS.len())])
        .collect();
    s[0] = "We";
    s.join(" ") + "."
}

fn paragraphs(rng: &mut fastrand::Rng, bytes: usize) -> String {
    let mut out = String::new();
    while out.len() < bytes {
        for _ in 0..rng.usize(2..6) {
            out.push_str(&sentence(rng, 6, 18));
            out.push(' ');
        }
        out.push_str("\r\n\r\n");
    }
    out
}

/// `text` as a mail client quotes it in a reply: wrapped at 76 columns, each line behind "> ".
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 11 / 10);
    for paragraph in text.split("\r\n") {
        let mut line = String::new();
        for word in paragraph.split(' ').filter(|w| !w.is_empty()) {
            if !line.is_empty() && line.len() + word.len() > 74 {
                out.push_str(&format!("> {line}\r\n"));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        out.push_str(&format!("> {line}\r\n"));
    }
    out
}

fn message(rng: &mut fastrand::Rng, i: usize) -> Vec<u8> {
    let procurement = rng.usize(..20) == 0;
    let (subject, lead) = if procurement {
        let (s, b) = PROCUREMENT[rng.usize(..PROCUREMENT.len())];
        let n = format!("2027-{:03}", i % 1000);
        (s.replace("{n}", &n), b.replace("{n}", &n))
    } else {
        (sentence(rng, 3, 8), String::new())
    };
    // Sizes: short replies, mostly a few KiB, a tail of long threads and large newsletters.
    let body_bytes = match rng.usize(..100) {
        0..=24 => rng.usize(80..600),
        25..=69 => rng.usize(600..3_000),
        70..=94 => rng.usize(3_000..20_000),
        _ => rng.usize(20_000..120_000),
    };
    let from = if procurement {
        "Dana Whitfield <dana@purchasing.springfield.example.gov>"
    } else {
        [
            "Sam Lee <sam@northwind.example>",
            "news@updates.example.com",
            "Kim <kim@partner.example>",
        ][rng.usize(..3)]
    };
    let head = format!(
        "From: {from}\r\nTo: alex@northwind.example\r\nSubject: {subject}\r\n\
         Date: Mon, 1 Mar 2027 09:{:02}:00 +0000\r\nMessage-ID: <bench-{i}@example.test>\r\n\
         MIME-Version: 1.0\r\n",
        i % 60
    );
    let text = if rng.usize(..10) < 3 {
        // A reply on top of the quoted thread, which makes up most of its size.
        format!(
            "{lead}\r\n{}\r\n\r\nSam\r\n\r\nOn Fri, 26 Feb 2027 at 16:{:02}, Kim <kim@partner.example> wrote:\r\n{}",
            sentence(rng, 4, 12),
            i % 60,
            quoted(&paragraphs(rng, body_bytes))
        )
    } else {
        format!(
            "Hello,\r\n\r\n{lead}\r\n\r\n{}Regards\r\n",
            paragraphs(rng, body_bytes)
        )
    };
    let raw = match rng.usize(..10) {
        // A newsletter: HTML with a plain alternative.
        0 | 1 => format!(
            "{head}Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--alt\r\n\
             Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>{}</p></body></html>\r\n--alt--\r\n",
            text.replace("\r\n\r\n", "</p><p>")
        ),
        // A document attached, base64.
        2 => {
            let blob: String = (0..rng.usize(2_000..60_000))
                .map(|_| {
                    char::from(
                        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                            [rng.usize(..64)],
                    )
                })
                .collect::<Vec<char>>()
                .chunks(76)
                .map(|line| line.iter().collect::<String>() + "\r\n")
                .collect();
            format!(
                "{head}Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\n\
                 Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--mix\r\n\
                 Content-Type: application/pdf; name=\"document.pdf\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n{blob}--mix--\r\n"
            )
        }
        _ => format!("{head}Content-Type: text/plain; charset=utf-8\r\n\r\n{text}"),
    };
    raw.into_bytes()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

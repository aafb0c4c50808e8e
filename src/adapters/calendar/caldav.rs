//! One CalDAV calendar collection (RFC 4791) over HTTP: create it when missing, PUT, GET and
//! DELETE pushback's items by UID, and REPORT the rep's busy time. What goes into an item and
//! what busy time means are `ics` and `busy`'s business.

use std::fmt;
use std::path::Path;

use chrono::{DateTime, Utc};
use reqwest::{Client, Method, RequestBuilder, Response, Url};

use super::busy::{busy_except, merge};
use super::{Busy, CalendarItem, Error, http_client, http_url, item_ics};
use crate::adapters::secret::Secret;

const DAV: &str = "DAV:";
const CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
/// The UID suffix of what pushback writes: its own reminders are not the rep's busy time.
const OWN_UID_SUFFIX: &str = "@pushback";

pub struct CalDav {
    /// Always ends in `/`, so resources are named relative to it.
    collection: Url,
    user: Option<String>,
    password: Option<Secret>,
    /// An OAuth2 access token, sent as `Authorization: Bearer` instead of a password.
    bearer: Option<Secret>,
    http: Client,
}

impl fmt::Debug for CalDav {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CalDav")
            .field("collection", &self.collection.as_str())
            .field("user", &self.user)
            .field("password", &self.password)
            .field("bearer", &self.bearer)
            .finish_non_exhaustive()
    }
}

impl CalDav {
    /// `url` is the calendar collection, e.g. `https://dav.example.com/rep/pushback/`.
    pub fn new(
        url: &str,
        user: Option<String>,
        password: Option<Secret>,
        extra_ca_pem: Option<&Path>,
    ) -> Result<CalDav, Error> {
        let mut collection = http_url(url)?;
        if password.is_some() && user.is_none() {
            return Err(Error::BadUrl {
                url: url.to_string(),
                reason: "a password is given but no user".to_string(),
            });
        }
        if !collection.path().ends_with('/') {
            collection.set_path(&format!("{}/", collection.path()));
        }
        Ok(CalDav {
            collection,
            user,
            password,
            bearer: None,
            http: http_client(extra_ca_pem)?,
        })
    }

    /// Authenticates with an OAuth2 access token (`Authorization: Bearer`) instead of a password.
    pub fn with_bearer_token(mut self, token: Secret) -> CalDav {
        self.bearer = Some(token);
        self
    }

    /// Creates the collection (MKCALENDAR, for events and to-dos) unless it exists; one that
    /// exists but is no calendar is an error.
    pub async fn ensure_calendar(&self) -> Result<(), Error> {
        let propfind = webdav_method("PROPFIND");
        let body = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>"#;
        let request = self.xml(propfind.clone(), &self.collection, "0", body.to_string());
        let response = send(
            request,
            &propfind,
            &self.collection,
            self.user(),
            &[207, 404],
        )
        .await?;
        if response.status() == 207 {
            let text = body_text(response, &propfind, &self.collection).await?;
            let entries = multistatus(&text)
                .map_err(|reason| answer_error(&propfind, &self.collection, reason))?;
            if !entries.iter().any(|e| e.calendar) {
                return Err(Error::NotACalendar {
                    url: self.collection.to_string(),
                });
            }
            return Ok(());
        }
        let mkcalendar = webdav_method("MKCALENDAR");
        let name = self
            .collection
            .path_segments()
            .and_then(|mut s| s.rfind(|s| !s.is_empty()))
            .unwrap_or("pushback");
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="{CALDAV}"><D:set><D:prop>
<D:displayname>{}</D:displayname>
<C:supported-calendar-component-set><C:comp name="VEVENT"/><C:comp name="VTODO"/></C:supported-calendar-component-set>
</D:prop></D:set></C:mkcalendar>"#,
            xml_escape(name)
        );
        let request = self
            .authorized(mkcalendar.clone(), &self.collection)
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(body);
        send(
            request,
            &mkcalendar,
            &self.collection,
            self.user(),
            &[200, 201],
        )
        .await?;
        Ok(())
    }

    /// Writes the item to the resource its UID names, creating or replacing it.
    pub async fn put(&self, item: &CalendarItem) -> Result<(), Error> {
        let url = self.resource(&item.uid);
        let request = self
            .authorized(Method::PUT, &url)
            .header("Content-Type", "text/calendar; charset=utf-8")
            .body(item_ics(item));
        send(request, &Method::PUT, &url, self.user(), &[200, 201, 204]).await?;
        Ok(())
    }

    /// Removes the item; one that is already gone is fine.
    pub async fn delete(&self, uid: &str) -> Result<(), Error> {
        let url = self.resource(uid);
        let request = self.authorized(Method::DELETE, &url);
        send(
            request,
            &Method::DELETE,
            &url,
            self.user(),
            &[200, 204, 404],
        )
        .await?;
        Ok(())
    }

    /// The item's text as the server stores it (servers rewrite it: compare parsed content).
    pub async fn get(&self, uid: &str) -> Result<Option<String>, Error> {
        let url = self.resource(uid);
        let request = self.authorized(Method::GET, &url);
        let response = send(request, &Method::GET, &url, self.user(), &[200, 404]).await?;
        if response.status() == 404 {
            return Ok(None);
        }
        body_text(response, &Method::GET, &url).await.map(Some)
    }

    /// The rep's busy time in `[from, to)` from every event in the collection (a calendar-query
    /// REPORT with a time-range filter), leaving out pushback's own items.
    pub async fn busy(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        floating_tz: chrono_tz::Tz,
    ) -> Result<Vec<Busy>, Error> {
        let report = webdav_method("REPORT");
        let range = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ");
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="{CALDAV}">
<D:prop><C:calendar-data/></D:prop>
<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">
<C:time-range start="{}" end="{}"/>
</C:comp-filter></C:comp-filter></C:filter>
</C:calendar-query>"#,
            range(from),
            range(to)
        );
        let request = self.xml(report.clone(), &self.collection, "1", body);
        let response = send(request, &report, &self.collection, self.user(), &[207]).await?;
        let text = body_text(response, &report, &self.collection).await?;
        let entries =
            multistatus(&text).map_err(|reason| answer_error(&report, &self.collection, reason))?;
        let mut busy = Vec::new();
        for entry in entries {
            let Some(data) = entry.data else { continue };
            let found = busy_except(&data, from, to, floating_tz, |uid| {
                uid.ends_with(OWN_UID_SUFFIX)
            })
            .map_err(|cause| Error::BusySource {
                origin: self
                    .collection
                    .join(&entry.href)
                    .map_or(entry.href, String::from),
                cause: Box::new(cause),
            })?;
            busy.extend(found);
        }
        Ok(merge(busy))
    }

    /// `<collection>/<name>.ics`, the name made from the UID so that any UID gives one safe
    /// path segment and different UIDs never share one: ASCII letters, digits, `-` and `@`
    /// stay, every other byte becomes `_XX` (hex), `_` and `.` included.
    fn resource(&self, uid: &str) -> Url {
        let mut name = String::with_capacity(uid.len() + 4);
        for byte in uid.bytes() {
            match byte {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'@' => name.push(byte as char),
                _ => name.push_str(&format!("_{byte:02X}")),
            }
        }
        name.push_str(".ics");
        let mut url = self.collection.clone();
        url.path_segments_mut()
            .expect("an http(s) URL has path segments")
            .pop_if_empty()
            .push(&name);
        url
    }

    fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    fn authorized(&self, method: Method, url: &Url) -> RequestBuilder {
        let request = self.http.request(method, url.clone());
        match (&self.bearer, &self.user) {
            (Some(token), _) => request.bearer_auth(token.expose()),
            (None, Some(user)) => {
                request.basic_auth(user, self.password.as_ref().map(Secret::expose))
            }
            (None, None) => request,
        }
    }

    fn xml(&self, method: Method, url: &Url, depth: &str, body: String) -> RequestBuilder {
        self.authorized(method, url)
            .header("Depth", depth)
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(body)
    }
}

fn webdav_method(name: &'static str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("a WebDAV method name is a valid token")
}

/// The body of a plain GET (a published calendar), for [`super::fetch_busy`].
pub(super) async fn get_text(http: &Client, url: Url) -> Result<String, Error> {
    let response = send(http.get(url.clone()), &Method::GET, &url, None, &[200]).await?;
    body_text(response, &Method::GET, &url).await
}

/// Sends the request and returns the response when its status is one of `expected`; any other
/// answer becomes an error quoting the status and the start of the body.
async fn send(
    request: RequestBuilder,
    method: &Method,
    url: &Url,
    user: Option<&str>,
    expected: &[u16],
) -> Result<Response, Error> {
    let response = request
        .send()
        .await
        .map_err(|cause| transport_error(method, url, cause))?;
    let status = response.status().as_u16();
    if expected.contains(&status) {
        return Ok(response);
    }
    if status == 401 {
        return Err(Error::Login {
            url: url.to_string(),
            user: user.unwrap_or_default().to_string(),
            status,
        });
    }
    let body = response.text().await.unwrap_or_default();
    Err(Error::Status {
        method: method.to_string(),
        url: url.to_string(),
        status,
        body: one_line_excerpt(&body),
    })
}

async fn body_text(response: Response, method: &Method, url: &Url) -> Result<String, Error> {
    response
        .text()
        .await
        .map_err(|cause| transport_error(method, url, cause))
}

fn transport_error(method: &Method, url: &Url, cause: reqwest::Error) -> Error {
    Error::Transport {
        method: method.to_string(),
        url: url.to_string(),
        // The URL is in our own message already.
        cause: cause.without_url(),
    }
}

fn answer_error(method: &Method, url: &Url, reason: String) -> Error {
    Error::Answer {
        method: method.to_string(),
        url: url.to_string(),
        reason,
    }
}

fn one_line_excerpt(body: &str) -> String {
    let text = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None if text.is_empty() => "(no body)".to_string(),
        None => text,
    }
}

/// One `<D:response>` of a multistatus answer, from its 200 propstat.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    href: String,
    /// Its resourcetype holds `<C:calendar/>`.
    calendar: bool,
    data: Option<String>,
}

fn multistatus(text: &str) -> Result<Vec<Entry>, String> {
    let doc = roxmltree::Document::parse(text).map_err(|e| e.to_string())?;
    let root = doc.root_element();
    if !root.has_tag_name((DAV, "multistatus")) {
        return Err(format!(
            "expected a DAV multistatus, got <{}>",
            root.tag_name().name()
        ));
    }
    let mut entries = Vec::new();
    for response in root
        .children()
        .filter(|c| c.has_tag_name((DAV, "response")))
    {
        let href = child(response, DAV, "href")
            .and_then(|h| h.text())
            .ok_or("a response without href")?
            .trim()
            .to_string();
        let ok = response
            .children()
            .filter(|c| c.has_tag_name((DAV, "propstat")))
            .filter(|p| {
                child(*p, DAV, "status")
                    .and_then(|s| s.text())
                    .is_some_and(|s| s.split_whitespace().nth(1) == Some("200"))
            })
            .filter_map(|p| child(p, DAV, "prop"));
        let mut entry = Entry {
            href,
            calendar: false,
            data: None,
        };
        for prop in ok {
            entry.calendar |= child(prop, DAV, "resourcetype")
                .is_some_and(|t| child(t, CALDAV, "calendar").is_some());
            if let Some(data) = child(prop, CALDAV, "calendar-data").and_then(|d| d.text()) {
                entry.data = Some(data.to_string());
            }
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn child<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    ns: &str,
    name: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    node.children().find(|c| c.has_tag_name((ns, name)))
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caldav(url: &str) -> CalDav {
        CalDav::new(url, Some("rep".into()), Some(Secret::new("hunter2")), None).unwrap()
    }

    #[test]
    fn resource_names_are_one_safe_segment_per_uid() {
        let cal = caldav("https://dav.example.com/rep/pushback");
        assert_eq!(
            cal.resource("reminder-42@pushback").as_str(),
            "https://dav.example.com/rep/pushback/reminder-42@pushback.ics"
        );
        assert_eq!(
            cal.resource("../x/y z_ü.").as_str(),
            "https://dav.example.com/rep/pushback/_2E_2E_2Fx_2Fy_20z_5F_C3_BC_2E.ics"
        );
        // `_` is escaped too, so no two UIDs share a name.
        assert_ne!(cal.resource("a_2E"), cal.resource("a."));
    }

    #[test]
    fn debug_and_errors_never_show_the_password() {
        let cal = caldav("https://dav.example.com/rep/pushback/");
        let debug = format!("{cal:?}");
        assert!(
            debug.contains("dav.example.com") && !debug.contains("hunter2"),
            "{debug}"
        );
        let error = CalDav::new(
            "https://dav.example.com/",
            None,
            Some(Secret::new("hunter2")),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("no user") && !error.contains("hunter2"),
            "{error}"
        );
    }

    #[test]
    fn a_multistatus_gives_hrefs_resource_types_and_calendar_data() {
        let text = r#"<?xml version="1.0"?>
<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <response>
    <href>/rep/pushback/</href>
    <propstat><prop><resourcetype><collection/><C:calendar/></resourcetype></prop>
      <status>HTTP/1.1 200 OK</status></propstat>
  </response>
  <response>
    <href>/rep/pushback/a.ics</href>
    <propstat><prop><C:calendar-data>BEGIN:VCALENDAR&#13;
END:VCALENDAR&#13;
</C:calendar-data></prop><status>HTTP/1.1 200 OK</status></propstat>
    <propstat><prop><C:calendar/></prop><status>HTTP/1.1 404 Not Found</status></propstat>
  </response>
</multistatus>"#;
        assert_eq!(
            multistatus(text).unwrap(),
            [
                Entry {
                    href: "/rep/pushback/".into(),
                    calendar: true,
                    data: None
                },
                Entry {
                    href: "/rep/pushback/a.ics".into(),
                    calendar: false,
                    data: Some("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n".into())
                },
            ]
        );
        assert!(multistatus("<html/>").unwrap_err().contains("multistatus"));
        assert!(multistatus("not xml").is_err());
    }

    #[test]
    fn an_error_answer_is_quoted_on_one_short_line() {
        assert_eq!(one_line_excerpt("  Not\n  found \n"), "Not found");
        assert_eq!(one_line_excerpt(""), "(no body)");
        let long = one_line_excerpt(&"ä".repeat(500));
        assert_eq!(long.chars().count(), 203);
    }
}

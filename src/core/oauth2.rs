//! The OAuth2 decisions that need no network (RFC 6749 with PKCE, RFC 7636, and RFC 8252's
//! loopback redirect for native apps): the S256 challenge of a verifier, the authorization
//! request URL, what the browser brought back to the loopback listener, and when an access token
//! is due for a refresh. Randomness and the clock come from the caller; the HTTP exchanges and
//! where the refresh token is kept are `adapters::oauth2`'s.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use url::Url;

/// The most an access token is refreshed ahead of its expiry. Less for a short-lived token:
/// a tenth of its lifetime, so a token that lives two seconds is not always "due".
pub const REFRESH_MARGIN_MAX: TimeDelta = TimeDelta::minutes(5);

/// The lifetime assumed when a token response carries no `expires_in` (RFC 6749 only
/// recommends it); Google and Microsoft issue one-hour tokens.
pub const ASSUMED_LIFETIME: TimeDelta = TimeDelta::hours(1);

/// A PKCE code verifier from 32 random bytes: 43 characters of base64url, the length RFC 7636
/// section 4.1 recommends.
pub fn pkce_verifier(random: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(random)
}

/// The `S256` code challenge of `verifier`: base64url(SHA-256(verifier)), unpadded.
pub fn pkce_challenge(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// What the authorization request asks for.
pub struct AuthorizationRequest<'a> {
    pub endpoint: &'a Url,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    pub state: &'a str,
    pub code_challenge: &'a str,
    /// Provider specifics, such as Google's `access_type=offline` (without it Google issues no
    /// refresh token).
    pub extra: &'a [(String, String)],
}

/// The URL the rep opens: the endpoint with the request's parameters appended to any query it
/// already has.
pub fn authorization_url(request: &AuthorizationRequest<'_>) -> Url {
    let mut url = request.endpoint.clone();
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", request.client_id)
            .append_pair("redirect_uri", request.redirect_uri)
            .append_pair("scope", &request.scopes.join(" "))
            .append_pair("state", request.state)
            .append_pair("code_challenge", request.code_challenge)
            .append_pair("code_challenge_method", "S256");
        for (key, value) in request.extra {
            query.append_pair(key, value);
        }
    }
    url
}

/// What the browser's request to the loopback listener carried.
pub enum Redirect {
    /// The authorization code and the state it came with.
    Code { code: String, state: String },
    /// The provider refused (the rep clicked "cancel": `access_denied`), with its own words.
    Refused { error: String, description: String },
    /// Anything else the browser asks for (`/favicon.ico`), to be answered and ignored.
    Other,
}

/// Reads a request target such as `/?code=...&state=...`.
pub fn read_redirect(target: &str) -> Redirect {
    let Some(query) = target.strip_prefix("/?") else {
        return Redirect::Other;
    };
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    if let Some(error) = get("error") {
        return Redirect::Refused {
            error,
            description: get("error_description").unwrap_or_default(),
        };
    }
    match (get("code"), get("state")) {
        (Some(code), Some(state)) => Redirect::Code { code, state },
        _ => Redirect::Other,
    }
}

/// Whether an access token issued at `issued_at` and expiring at `expires_at` should be
/// refreshed at `now`: from [`REFRESH_MARGIN_MAX`] (or a tenth of its lifetime, if that is
/// less) before it expires.
pub fn refresh_due(
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    let lifetime = (expires_at - issued_at).max(TimeDelta::zero());
    let margin = (lifetime / 10).min(REFRESH_MARGIN_MAX);
    now >= expires_at - margin
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_challenge_matches_rfc_7636_appendix_b() {
        let random: [u8; 32] = [
            116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212,
            37, 77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
        ];
        let verifier = pkce_verifier(&random);
        assert_eq!(verifier, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(
            pkce_challenge(&verifier),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn the_authorization_url_carries_every_parameter_encoded() {
        let endpoint =
            Url::parse("https://login.microsoftonline.com/common/oauth2/v2.0/authorize?x=1")
                .unwrap();
        let scopes = vec![
            "https://outlook.office.com/IMAP.AccessAsUser.All".to_string(),
            "offline_access".to_string(),
        ];
        let extra = vec![("prompt".to_string(), "consent".to_string())];
        let url = authorization_url(&AuthorizationRequest {
            endpoint: &endpoint,
            client_id: "client-1",
            redirect_uri: "http://127.0.0.1:4711/",
            scopes: &scopes,
            state: "st&te",
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            extra: &extra,
        });
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(key, _)| key == k).unwrap().1.as_str();
        assert_eq!(get("x"), "1");
        assert_eq!(get("response_type"), "code");
        assert_eq!(get("client_id"), "client-1");
        assert_eq!(get("redirect_uri"), "http://127.0.0.1:4711/");
        assert_eq!(
            get("scope"),
            "https://outlook.office.com/IMAP.AccessAsUser.All offline_access"
        );
        assert_eq!(get("state"), "st&te");
        assert_eq!(get("code_challenge_method"), "S256");
        assert_eq!(get("prompt"), "consent");
        assert!(url.as_str().contains("state=st%26te"), "{url}");
    }

    #[test]
    fn the_redirect_gives_the_code_a_refusal_or_nothing() {
        assert!(matches!(
            read_redirect("/?state=s1&code=4%2F0Ab"),
            Redirect::Code { code, state } if code == "4/0Ab" && state == "s1"
        ));
        assert!(matches!(
            read_redirect("/?error=access_denied&error_description=The+user+said+no&state=s1"),
            Redirect::Refused { error, description }
                if error == "access_denied" && description == "The user said no"
        ));
        assert!(matches!(read_redirect("/favicon.ico"), Redirect::Other));
        assert!(matches!(read_redirect("/?code=only"), Redirect::Other));
    }

    #[test]
    fn a_token_is_refreshed_five_minutes_or_a_tenth_of_its_life_before_it_expires() {
        let at = |s: i64| Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap();
        // An hour-long token: five minutes ahead.
        assert!(!refresh_due(at(0), at(3600), at(3600 - 301)));
        assert!(refresh_due(at(0), at(3600), at(3600 - 300)));
        assert!(refresh_due(at(0), at(3600), at(7200)));
        // A 20-second token: two seconds ahead, not at once.
        assert!(!refresh_due(at(0), at(20), at(1)));
        assert!(!refresh_due(at(0), at(20), at(17)));
        assert!(refresh_due(at(0), at(20), at(18)));
        // Already expired when issued (a skewed clock): due.
        assert!(refresh_due(at(10), at(5), at(10)));
    }
}

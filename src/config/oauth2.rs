//! `[oauth2]`: pushback's own OAuth2 login (`pushback login`) for the account's IMAP and SMTP.
//! A provider preset (`gmail`, `microsoft365`) fills the endpoints, scopes and the servers'
//! hosts, ports and security; `custom` takes the endpoints and scopes from the table. The client
//! secret, when the provider wants one, comes from a command or an environment variable; the
//! refresh token is never in this file (see `token-store`).

use super::{Error, Parser, PasswordSource, Security, is_env_name, is_loopback};
use serde::Deserialize;
use serde::de::IgnoredAny;
use std::path::{Path, PathBuf};
use toml::Spanned;
use url::Url;

/// `[oauth2] tenant`: Microsoft's "any work, school or personal account".
pub const DEFAULT_TENANT: &str = "common";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Gmail,
    Microsoft365,
    Custom,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Gmail => "gmail",
            Provider::Microsoft365 => "microsoft365",
            Provider::Custom => "custom",
        }
    }

    fn preset(self) -> Option<&'static Preset> {
        match self {
            Provider::Gmail => Some(&GMAIL),
            Provider::Microsoft365 => Some(&MICROSOFT365),
            Provider::Custom => None,
        }
    }
}

/// A provider's servers and endpoints, as its documentation gives them.
struct Preset {
    imap: ServerPreset,
    smtp: ServerPreset,
    /// `{tenant}` is replaced by `[oauth2] tenant`.
    authorize_url: &'static str,
    token_url: &'static str,
    scopes: &'static [&'static str],
    extra: &'static [(&'static str, &'static str)],
}

/// Host, port and security filled in when `[mailbox]` or `[smtp]` leaves them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerPreset {
    pub host: &'static str,
    pub port: u16,
    pub security: Security,
}

/// Google's "IMAP, POP and SMTP" XOAUTH2 page: one scope for all three. Without
/// `access_type=offline` Google issues no refresh token, and without `prompt=consent` a second
/// login issues none either.
const GMAIL: Preset = Preset {
    imap: ServerPreset {
        host: "imap.gmail.com",
        port: 993,
        security: Security::Tls,
    },
    smtp: ServerPreset {
        host: "smtp.gmail.com",
        port: 465,
        security: Security::Tls,
    },
    authorize_url: "https://accounts.google.com/o/oauth2/v2/auth",
    token_url: "https://oauth2.googleapis.com/token",
    scopes: &["https://mail.google.com/"],
    extra: &[("access_type", "offline"), ("prompt", "consent")],
};

/// Microsoft's "Authenticate an IMAP, POP or SMTP connection using OAuth": the Outlook resource
/// scopes, and `offline_access` for a refresh token.
const MICROSOFT365: Preset = Preset {
    imap: ServerPreset {
        host: "outlook.office365.com",
        port: 993,
        security: Security::Tls,
    },
    smtp: ServerPreset {
        host: "smtp.office365.com",
        port: 587,
        security: Security::Starttls,
    },
    authorize_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
    token_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
    scopes: &[
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    ],
    extra: &[],
};

/// Where the refresh token is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenStoreKind {
    /// The desktop's secret service (GNOME Keyring, KWallet) over D-Bus.
    Keyring,
    /// A 0600 file in the state directory.
    File,
    /// `$CREDENTIALS_DIRECTORY/pushback-oauth2-<account>` under systemd: read-only.
    SystemdCredential,
    /// The secret service when one answers, else the file.
    Auto,
}

impl TokenStoreKind {
    /// For `pushback config check`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStoreKind::Keyring => "the secret service (keyring)",
            TokenStoreKind::File => "a file in the state directory",
            TokenStoreKind::SystemdCredential => "a systemd credential",
            TokenStoreKind::Auto => "the secret service if one answers, else a file",
        }
    }
}

/// The validated `[oauth2]` table of one account.
#[derive(Debug, Clone, PartialEq)]
pub struct OAuth2Settings {
    /// The account the refresh token is stored under (its `[[account]]` name, or "default").
    pub account: String,
    pub provider: Provider,
    pub client_id: String,
    /// Google's desktop clients have a (not very secret) client secret; public clients none.
    pub client_secret: Option<PasswordSource>,
    pub authorize_url: Url,
    pub token_url: Url,
    pub scopes: Vec<String>,
    /// More authorization request parameters (the preset's).
    pub extra_params: Vec<(String, String)>,
    pub token_store: TokenStoreKind,
    /// The state directory, where the file store keeps the token.
    pub state_dir: PathBuf,
}

impl OAuth2Settings {
    /// The provider's IMAP (`imap`) or SMTP server, for the keys a table leaves out.
    pub fn server_preset(&self, imap: bool) -> Option<ServerPreset> {
        self.provider
            .preset()
            .map(|p| if imap { p.imap } else { p.smtp })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawOAuth2 {
    provider: Spanned<Provider>,
    client_id: Option<Spanned<String>>,
    client_secret_command: Option<Spanned<String>>,
    client_secret_env: Option<Spanned<String>>,
    /// Only there to be refused with a useful message; its value is never kept.
    client_secret: Option<Spanned<IgnoredAny>>,
    tenant: Option<Spanned<String>>,
    authorize_url: Option<Spanned<String>>,
    token_url: Option<Spanned<String>>,
    scopes: Option<Spanned<Vec<String>>>,
    token_store: Option<Spanned<TokenStoreKind>>,
}

impl Parser<'_> {
    /// `[oauth2]` for the account named `account`, its token kept under `state_dir`.
    pub(super) fn oauth2(
        &self,
        raw: RawOAuth2,
        state_dir: &Path,
        account: &str,
    ) -> Result<OAuth2Settings, Error> {
        let key = |name: &str| format!("[oauth2] {name}");
        if let Some(secret) = raw.client_secret {
            return Err(self.invalid(
                secret.span(),
                &key("client-secret"),
                "a client secret in the config file is refused; use client-secret-command (a \
                 command that prints it) or client-secret-env (the name of an environment \
                 variable holding it)",
            ));
        }
        let provider = *raw.provider.get_ref();
        let client_id = raw.client_id.ok_or_else(|| {
            self.invalid(
                raw.provider.span(),
                &key("client-id"),
                "missing: the OAuth2 client id of the app registered with the provider",
            )
        })?;
        if client_id.get_ref().trim().is_empty() {
            return Err(self.invalid(client_id.span(), &key("client-id"), "must not be empty"));
        }
        let client_secret = match (raw.client_secret_command, raw.client_secret_env) {
            (Some(_), Some(env)) => {
                return Err(self.invalid(
                    env.span(),
                    &key("client-secret-env"),
                    "set only one of client-secret-command and client-secret-env",
                ));
            }
            (Some(command), None) => Some(PasswordSource::Command(
                self.command(&key("client-secret-command"), command)?,
            )),
            (None, Some(env)) if !is_env_name(env.get_ref()) => {
                return Err(self.invalid(
                    env.span(),
                    &key("client-secret-env"),
                    "must be the NAME of an environment variable (letters, digits and _), not \
                     the secret",
                ));
            }
            (None, Some(env)) => Some(PasswordSource::Env(env.into_inner())),
            (None, None) => None,
        };
        let tenant = match (provider, raw.tenant) {
            (Provider::Microsoft365, None) => DEFAULT_TENANT.to_owned(),
            (Provider::Microsoft365, Some(tenant)) => {
                let valid = !tenant.get_ref().is_empty()
                    && tenant
                        .get_ref()
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
                if !valid {
                    return Err(self.invalid(
                        tenant.span(),
                        &key("tenant"),
                        "must be a tenant id or domain (\"common\", \"organizations\", \
                         \"contoso.onmicrosoft.com\", a GUID)",
                    ));
                }
                tenant.into_inner()
            }
            (_, Some(tenant)) => {
                return Err(self.invalid(
                    tenant.span(),
                    &key("tenant"),
                    "only used with provider = \"microsoft365\"",
                ));
            }
            (_, None) => String::new(),
        };
        let (authorize_url, token_url, scopes, extra_params) = match provider.preset() {
            Some(preset) => {
                let own = [
                    ("authorize-url", raw.authorize_url.map(|v| v.span())),
                    ("token-url", raw.token_url.map(|v| v.span())),
                    ("scopes", raw.scopes.map(|v| v.span())),
                ];
                if let Some((name, span)) = own
                    .into_iter()
                    .find_map(|(name, span)| span.map(|span| (name, span)))
                {
                    return Err(self.invalid(
                        span,
                        &key(name),
                        format!(
                            "set by provider = \"{}\"; use provider = \"custom\" to choose your \
                             own",
                            provider.as_str()
                        ),
                    ));
                }
                let url = |template: &str| {
                    Url::parse(&template.replace("{tenant}", &tenant))
                        .expect("a preset's URL parses")
                };
                (
                    url(preset.authorize_url),
                    url(preset.token_url),
                    preset.scopes.iter().map(|s| s.to_string()).collect(),
                    preset
                        .extra
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                )
            }
            None => {
                let required = |value: Option<Spanned<String>>, name: &str| {
                    value.ok_or_else(|| {
                        self.invalid(
                            raw.provider.span(),
                            &key(name),
                            "missing: provider = \"custom\" needs authorize-url, token-url and \
                             scopes",
                        )
                    })
                };
                let authorize_url = self.endpoint(
                    &key("authorize-url"),
                    required(raw.authorize_url, "authorize-url")?,
                )?;
                let token_url =
                    self.endpoint(&key("token-url"), required(raw.token_url, "token-url")?)?;
                let scopes = raw.scopes.ok_or_else(|| {
                    self.invalid(
                        raw.provider.span(),
                        &key("scopes"),
                        "missing: provider = \"custom\" needs authorize-url, token-url and \
                         scopes",
                    )
                })?;
                if scopes
                    .get_ref()
                    .iter()
                    .any(|s| s.trim().is_empty() || s.contains(' '))
                {
                    return Err(self.invalid(
                        scopes.span(),
                        &key("scopes"),
                        "each scope is one word, none empty",
                    ));
                }
                (authorize_url, token_url, scopes.into_inner(), Vec::new())
            }
        };
        Ok(OAuth2Settings {
            account: account.to_owned(),
            provider,
            client_id: client_id.into_inner(),
            client_secret,
            authorize_url,
            token_url,
            scopes,
            extra_params,
            token_store: raw
                .token_store
                .map_or(TokenStoreKind::Auto, Spanned::into_inner),
            state_dir: state_dir.to_path_buf(),
        })
    }

    /// An OAuth2 endpoint: https, or http to a loopback host (a local test server).
    fn endpoint(&self, key: &str, value: Spanned<String>) -> Result<Url, Error> {
        let span = value.span();
        let url = self.http_url(key, value, "")?;
        if url.scheme() == "http" && !url.host_str().is_some_and(is_loopback) {
            return Err(self.invalid(
                span,
                key,
                "must be https:// (http:// only to a loopback host): it carries the tokens",
            ));
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Config, Credential, MailboxAccess, Outgoing, Server};
    use super::*;
    use std::ffi::OsString;

    const FILE: &str = "/etc/pb/config.toml";

    fn parse(tables: &str) -> Result<Config, Error> {
        let text = format!(
            "version = 1\n[identity]\nname = \"Alex\"\nemail = \"alex@northwind.example\"\n\
             title = \"AE\"\ncompany = \"Northwind\"\ntimezone = \"Europe/London\"\n\
             [state]\npath = \"/var/lib/pb\"\n{tables}"
        );
        let env = |_: &str| -> Option<OsString> { None };
        Parser {
            text: &text,
            file: Path::new(FILE),
            env: &env,
            account: None,
        }
        .parse()
    }

    fn servers(config: &Config) -> (&Server, &Server) {
        let MailboxAccess::Imap(imap) = &config.mailbox.access else {
            panic!("not imap")
        };
        let Some(Outgoing::Smtp { server: smtp, .. }) = &config.outgoing else {
            panic!("no smtp")
        };
        (imap, smtp)
    }

    const USERS: &str = "[mailbox]\nkind = \"imap\"\nuser = \"alex@northwind.example\"\n\
                         [smtp]\nuser = \"alex@northwind.example\"\n";

    #[test]
    fn the_gmail_preset_fills_servers_endpoints_and_scopes() {
        let config = parse(&format!(
            "{USERS}[oauth2]\nprovider = \"gmail\"\nclient-id = \"123.apps.googleusercontent.com\"\n\
             client-secret-command = \"pass show google/secret\"\n"
        ))
        .unwrap();
        let (imap, smtp) = servers(&config);
        assert_eq!(
            (imap.host.as_str(), imap.port, imap.security),
            ("imap.gmail.com", 993, Security::Tls)
        );
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.security),
            ("smtp.gmail.com", 465, Security::Tls)
        );
        let oauth2 = config.oauth2.as_ref().unwrap();
        assert_eq!(oauth2.account, "default");
        assert_eq!(
            oauth2.authorize_url.as_str(),
            "https://accounts.google.com/o/oauth2/v2/auth"
        );
        assert_eq!(
            oauth2.token_url.as_str(),
            "https://oauth2.googleapis.com/token"
        );
        assert_eq!(oauth2.scopes, ["https://mail.google.com/"]);
        assert!(
            oauth2
                .extra_params
                .contains(&("access_type".into(), "offline".into()))
        );
        assert_eq!(
            oauth2.client_secret,
            Some(PasswordSource::Command("pass show google/secret".into()))
        );
        assert_eq!(oauth2.token_store, TokenStoreKind::Auto);
        assert_eq!(oauth2.state_dir, Path::new("/var/lib/pb"));
        for server in [imap, smtp] {
            let login = server.login.as_ref().unwrap();
            assert!(matches!(&login.credential, Credential::OAuth2(s) if **s == *oauth2));
        }
        assert!(
            config
                .describe()
                .contains("XOAUTH2 with tokens from `pushback login default` (gmail)"),
            "{}",
            config.describe()
        );
        assert!(
            config.describe().contains(
                "oauth2:           gmail for account default: client 123.apps.googleusercontent.com, \
                 scopes https://mail.google.com/, token endpoint \
                 https://oauth2.googleapis.com/token, refresh token in the secret service if \
                 one answers, else a file"
            ),
            "{}",
            config.describe()
        );
        assert!(
            !config.describe().contains("pass show"),
            "no secret source shown needlessly"
        );
    }

    #[test]
    fn microsoft365_takes_a_tenant_and_explicit_keys_override_the_preset() {
        let config = parse(
            "[mailbox]\nkind = \"imap\"\nhost = \"imap.internal.example\"\nuser = \"a@b.example\"\n\
             [smtp]\nsecurity = \"tls\"\nuser = \"a@b.example\"\n\
             [oauth2]\nprovider = \"microsoft365\"\nclient-id = \"c1\"\ntenant = \"contoso.onmicrosoft.com\"\n\
             token-store = \"systemd-credential\"\n",
        )
        .unwrap();
        let (imap, smtp) = servers(&config);
        assert_eq!(
            (imap.host.as_str(), imap.port),
            ("imap.internal.example", 993)
        );
        // security set here: its own default port, not the preset's 587.
        assert_eq!(
            (smtp.host.as_str(), smtp.port, smtp.security),
            ("smtp.office365.com", 465, Security::Tls)
        );
        let oauth2 = config.oauth2.as_ref().unwrap();
        assert_eq!(
            oauth2.token_url.as_str(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert!(oauth2.scopes.contains(&"offline_access".to_string()));
        assert_eq!(oauth2.token_store, TokenStoreKind::SystemdCredential);

        let config = parse(&format!(
            "{USERS}[oauth2]\nprovider = \"microsoft365\"\nclient-id = \"c1\"\n"
        ))
        .unwrap();
        let (_, smtp) = servers(&config);
        assert_eq!((smtp.port, smtp.security), (587, Security::Starttls));
        assert_eq!(
            config.oauth2.unwrap().authorize_url.as_str(),
            "https://login.microsoftonline.com/common/oauth2/v2.0/authorize"
        );
    }

    #[test]
    fn custom_takes_endpoints_and_scopes_from_the_table() {
        let config = parse(
            "[mailbox]\nkind = \"imap\"\nhost = \"mail.example\"\nuser = \"a\"\n\
             [oauth2]\nprovider = \"custom\"\nclient-id = \"c\"\n\
             authorize-url = \"https://id.example/authorize\"\n\
             token-url = \"http://127.0.0.1:8080/token\"\nscopes = [\"mail\", \"offline\"]\n\
             token-store = \"keyring\"\n",
        )
        .unwrap();
        let oauth2 = config.oauth2.unwrap();
        assert_eq!(oauth2.token_url.as_str(), "http://127.0.0.1:8080/token");
        assert_eq!(oauth2.scopes, ["mail", "offline"]);
        assert!(oauth2.extra_params.is_empty());
        assert_eq!(oauth2.token_store, TokenStoreKind::Keyring);
    }

    #[test]
    fn mistakes_name_file_line_and_key() {
        let cases = [
            (
                "client-secret = \"s3cret\"\n",
                "gmail",
                "line 18: [oauth2] client-secret",
                "refused",
            ),
            (
                "tenant = \"x\"\n",
                "gmail",
                "line 18: [oauth2] tenant",
                "microsoft365",
            ),
            (
                "token-url = \"https://evil.example/token\"\n",
                "microsoft365",
                "line 18: [oauth2] token-url",
                "provider = \"custom\"",
            ),
            (
                "tenant = \"a/b\"\n",
                "microsoft365",
                "line 18: [oauth2] tenant",
                "tenant id",
            ),
            (
                "client-secret-env = \"hunter 2\"\n",
                "gmail",
                "line 18: [oauth2] client-secret-env",
                "NAME",
            ),
            (
                "authorize-url = \"https://id.example/a\"\ntoken-url = \"http://id.example/t\"\n\
                 scopes = [\"m\"]\n",
                "custom",
                "line 19: [oauth2] token-url",
                "https",
            ),
            (
                "authorize-url = \"https://id.example/a\"\nscopes = [\"m\"]\n",
                "custom",
                "line 16: [oauth2] token-url",
                "missing",
            ),
            (
                "refresh-token = \"x\"\n",
                "gmail",
                "line 18: [oauth2] refresh-token",
                "unknown",
            ),
        ];
        for (keys, provider, at, says) in cases {
            let tables =
                format!("{USERS}[oauth2]\nprovider = \"{provider}\"\nclient-id = \"c\"\n{keys}");
            let error = parse(&tables).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("{FILE} {at}")),
                "{keys}: {error}"
            );
            assert!(error.contains(says), "{keys}: {error}");
            assert!(!error.contains("s3cret"), "{error}");
        }
        let error = parse(&format!("{USERS}[oauth2]\nprovider = \"gmail\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 16: [oauth2] client-id: missing"),
            "{error}"
        );
        // Without [oauth2], a user alone still needs a password or token source.
        let error = parse("[mailbox]\nkind = \"imap\"\nhost = \"mail.example\"\nuser = \"a\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("line 13: [mailbox] user: needs password-command"),
            "{error}"
        );
    }
}

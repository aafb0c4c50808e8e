//! Sending a message the rep approved, byte for byte: over SMTP (lettre's async transport, TLS
//! with rustls) or by piping it to a sendmail-style command. Both sit behind one small
//! [`Transport`] trait shaped like lettre's `send_raw`. The envelope comes only from the
//! message's own From, To and Cc headers. Failures say whether trying again later can help
//! ([`SendError::Transient`]) or not ([`SendError::Permanent`], with the server's reply). Which
//! message to send, when, and what to record is the outbox's business (`app::outbox`).

use crate::adapters::secret::Auth;
use crate::config::Security;
use futures::future::BoxFuture;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use mail_parser::MessageParser;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// `EX_TEMPFAIL` from sysexits.h: sendmail's "try again later".
const EX_TEMPFAIL: i32 = 75;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot send to {host} without encryption: security = \"plain\" is only allowed to a \
         loopback address; use \"tls\" (port 465) or \"starttls\" (port 587)"
    )]
    PlainToRemote { host: String },
    #[error("cannot read the CA file {path}: {cause}")]
    CaFile { path: PathBuf, cause: io::Error },
    #[error("cannot use the CA file {path}: {cause}")]
    CaCertificate {
        path: PathBuf,
        cause: lettre::transport::smtp::Error,
    },
    #[error("cannot set up TLS for {host}: {cause}")]
    Tls {
        host: String,
        cause: lettre::transport::smtp::Error,
    },
    #[error("cannot parse the message to send")]
    Unparseable,
    #[error("cannot send a message without a From address")]
    NoSender,
    #[error("cannot send a message without To or Cc addresses")]
    NoRecipients,
    #[error("cannot use {address:?} as an envelope address: {detail}")]
    BadAddress { address: String, detail: String },
}

/// Who the message is from and to, for the SMTP envelope (MAIL FROM, RCPT TO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub from: String,
    pub to: Vec<String>,
}

impl Envelope {
    /// The envelope of a composed message: From's address, then every To and Cc address once.
    /// Bcc is not read: a draft never carries one.
    pub fn of_message(raw: &[u8]) -> Result<Envelope, Error> {
        let message = MessageParser::default()
            .parse_headers(raw)
            .ok_or(Error::Unparseable)?;
        let from = message
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .ok_or(Error::NoSender)?;
        let mut to: Vec<String> = Vec::new();
        for address in [message.to(), message.cc()].into_iter().flatten() {
            for addr in address.iter().filter_map(|a| a.address()) {
                if !to.iter().any(|t| t.eq_ignore_ascii_case(addr)) {
                    to.push(addr.to_string());
                }
            }
        }
        if to.is_empty() {
            return Err(Error::NoRecipients);
        }
        let envelope = Envelope {
            from: from.to_string(),
            to,
        };
        envelope.to_lettre()?;
        Ok(envelope)
    }

    /// Every address checked as an address (an argument that starts with `-` would be an option
    /// to a sendmail command, so it is refused too).
    fn to_lettre(&self) -> Result<lettre::address::Envelope, Error> {
        let parse = |address: &str| -> Result<Address, Error> {
            let bad = |detail: String| Error::BadAddress {
                address: address.to_string(),
                detail,
            };
            if address.starts_with('-') {
                return Err(bad("it starts with '-'".into()));
            }
            address.parse().map_err(|e| bad(format!("{e}")))
        };
        let to = self
            .to
            .iter()
            .map(|a| parse(a))
            .collect::<Result<Vec<_>, _>>()?;
        lettre::address::Envelope::new(Some(parse(&self.from)?), to).map_err(|e| {
            Error::BadAddress {
                address: self.from.clone(),
                detail: e.to_string(),
            }
        })
    }
}

/// Why a message did not go out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Worth trying again later: a 4xx reply, a connection lost or timed out, TLS or login
    /// trouble an admin can fix.
    Transient(String),
    /// Trying again will not help: a 5xx reply (its text is kept), an unusable address, a
    /// sendmail command that failed.
    Permanent(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Transient(text) => write!(f, "temporary failure: {text}"),
            SendError::Permanent(text) => write!(f, "permanent failure: {text}"),
        }
    }
}

impl From<lettre::transport::smtp::Error> for SendError {
    fn from(error: lettre::transport::smtp::Error) -> SendError {
        // Only a 5xx reply is final; anything else (4xx, network, timeout, TLS) may pass.
        if error.is_permanent() {
            SendError::Permanent(error.to_string())
        } else {
            SendError::Transient(error.to_string())
        }
    }
}

/// Sends one composed message as it is.
pub trait Transport: Send + Sync {
    fn send_raw<'a>(
        &'a self,
        envelope: &'a Envelope,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<(), SendError>>;
}

/// Where and how to reach the SMTP server.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// `None`: no AUTH (a relay on loopback).
    pub auth: Option<Auth>,
    /// A CA to trust beside the webpki roots (a company CA, a test CA).
    pub ca_file: Option<PathBuf>,
    /// Accepts any certificate: for testing only, never for a real server.
    pub accept_invalid_certs: bool,
    /// For connecting and for every reply.
    pub timeout: Duration,
}

pub struct SmtpTransport {
    inner: AsyncSmtpTransport<Tokio1Executor>,
}

/// An SMTP transport for `settings`. Connects lazily, on the first send; build and drop it inside
/// a tokio runtime (its connection pool runs there).
pub fn smtp_transport(settings: &SmtpSettings) -> Result<SmtpTransport, Error> {
    let tls = match settings.security {
        Security::Tls => Tls::Wrapper(tls_parameters(settings)?),
        Security::Starttls => Tls::Required(tls_parameters(settings)?),
        Security::Plain if is_loopback(&settings.host) => Tls::None,
        Security::Plain => {
            return Err(Error::PlainToRemote {
                host: settings.host.clone(),
            });
        }
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
        .port(settings.port)
        .tls(tls)
        .timeout(Some(settings.timeout));
    builder = match &settings.auth {
        None => builder,
        Some(Auth::Password { user, password }) => builder
            .credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ))
            .authentication(vec![Mechanism::Plain, Mechanism::Login]),
        Some(Auth::XOAuth2 { user, token }) => builder
            .credentials(Credentials::new(user.clone(), token.expose().to_string()))
            .authentication(vec![Mechanism::Xoauth2]),
    };
    Ok(SmtpTransport {
        inner: builder.build(),
    })
}

impl SmtpTransport {
    /// Connects, says EHLO, starts TLS and logs in exactly as a send would, then checks the
    /// connection with NOOP: nothing is sent (for `pushback doctor`).
    pub async fn test_connection(&self) -> Result<bool, lettre::transport::smtp::Error> {
        self.inner.test_connection().await
    }
}

fn tls_parameters(settings: &SmtpSettings) -> Result<TlsParameters, Error> {
    let mut builder = TlsParameters::builder(settings.host.clone())
        .dangerous_accept_invalid_certs(settings.accept_invalid_certs);
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|cause| Error::CaFile {
            path: path.clone(),
            cause,
        })?;
        let certificate = Certificate::from_pem(&pem).map_err(|cause| Error::CaCertificate {
            path: path.clone(),
            cause,
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build_rustls().map_err(|cause| Error::Tls {
        host: settings.host.clone(),
        cause,
    })
}

impl Transport for SmtpTransport {
    fn send_raw<'a>(
        &'a self,
        envelope: &'a Envelope,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move {
            let envelope = envelope
                .to_lettre()
                .map_err(|e| SendError::Permanent(e.to_string()))?;
            self.inner
                .send_raw(&envelope, without_final_crlf(raw))
                .await?;
            Ok(())
        })
    }
}

/// Pipes the message to `sh -c "<command> \"$@\""` with every envelope recipient as one more
/// argument (sendmail and msmtp style: `/usr/sbin/sendmail -i`, `msmtp -a work`; not `-t`, which
/// would read the recipients from the headers a second time). The envelope sender is the
/// command's business (add `-f` to the command if it needs one). Exit 0 is sent, 75
/// (`EX_TEMPFAIL`) or death by a signal is transient, any other exit is permanent with the
/// command's stderr.
pub struct SendmailTransport {
    command: String,
    timeout: Duration,
}

impl SendmailTransport {
    pub fn new(command: impl Into<String>, timeout: Duration) -> SendmailTransport {
        SendmailTransport {
            command: command.into(),
            timeout,
        }
    }

    async fn run(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendError> {
        let cannot = |what: &str, e: &dyn fmt::Display| {
            SendError::Transient(format!(
                "cannot {what} the sendmail command {:?}: {e}",
                self.command
            ))
        };
        envelope
            .to_lettre()
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{} \"$@\"", self.command))
            .arg("pushback-sendmail")
            .args(&envelope.to)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| cannot("start", &e))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let run = async {
            // A command that exits without reading everything is judged by its exit status.
            match stdin.write_all(raw).await {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e),
                _ => drop(stdin),
            }
            child.wait_with_output().await
        };
        let output = tokio::time::timeout(self.timeout, run)
            .await
            .map_err(|_| cannot("finish", &format!("no exit after {:?}", self.timeout)))?
            .map_err(|e| cannot("run", &e))?;
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        match output.status.code() {
            Some(0) => Ok(()),
            Some(EX_TEMPFAIL) => Err(SendError::Transient(format!(
                "the sendmail command exited with 75 (try again later): {stderr}"
            ))),
            Some(code) => Err(SendError::Permanent(format!(
                "the sendmail command exited with {code}: {stderr}"
            ))),
            None => Err(SendError::Transient(format!(
                "the sendmail command was killed ({}): {stderr}",
                output.status
            ))),
        }
    }
}

impl Transport for SendmailTransport {
    fn send_raw<'a>(
        &'a self,
        envelope: &'a Envelope,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(self.run(envelope, raw))
    }
}

/// lettre ends DATA with `CRLF . CRLF` whatever the message ends with; the CRLF that ends the
/// message's last line must be that one, or the server stores an extra empty line.
fn without_final_crlf(raw: &[u8]) -> &[u8] {
    raw.strip_suffix(b"\r\n").unwrap_or(raw)
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::secret::Secret;

    const DRAFT: &[u8] = b"From: Alex Rivera <alex@northwind.example>\r\n\
        To: Pat Buyer <pat@buyer.example>, procurement@buyer.example\r\n\
        Cc: \"Lee\" <lee@buyer.example>, PAT@buyer.example\r\n\
        Bcc: hidden@elsewhere.example\r\n\
        Subject: Re: RFP\r\n\
        Message-ID: <draft-1@northwind.example>\r\n\r\nHello\r\n";

    fn settings(host: &str, security: Security) -> SmtpSettings {
        SmtpSettings {
            host: host.into(),
            port: 25,
            security,
            auth: Some(Auth::Password {
                user: "alex".into(),
                password: Secret::new("hunter2"),
            }),
            ca_file: None,
            accept_invalid_certs: false,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_envelope_comes_from_from_to_and_cc_only() {
        let envelope = Envelope::of_message(DRAFT).unwrap();
        assert_eq!(envelope.from, "alex@northwind.example");
        assert_eq!(
            envelope.to,
            [
                "pat@buyer.example",
                "procurement@buyer.example",
                "lee@buyer.example"
            ]
        );
    }

    #[test]
    fn an_envelope_needs_a_sender_recipients_and_plain_addresses() {
        let no_to = b"From: a@x.example\r\nSubject: s\r\n\r\nb";
        assert!(matches!(
            Envelope::of_message(no_to),
            Err(Error::NoRecipients)
        ));
        let no_from = b"To: a@x.example\r\nSubject: s\r\n\r\nb";
        assert!(matches!(
            Envelope::of_message(no_from),
            Err(Error::NoSender)
        ));
        // Regression guard: an address that a sendmail command would read as an option.
        let option = b"From: a@x.example\r\nTo: -oQ/tmp/x@y.example\r\n\r\nb";
        let error = Envelope::of_message(option).unwrap_err().to_string();
        assert!(error.contains("starts with '-'"), "{error}");
    }

    // lettre's connection pool lives on the tokio runtime, even unused.
    #[tokio::test]
    async fn plain_is_refused_to_a_remote_host_before_connecting() {
        let error = smtp_transport(&settings("smtp.example.com", Security::Plain))
            .err()
            .unwrap();
        assert!(matches!(error, Error::PlainToRemote { .. }), "{error}");
        assert!(smtp_transport(&settings("127.0.0.1", Security::Plain)).is_ok());
        assert!(smtp_transport(&settings("localhost", Security::Plain)).is_ok());
        assert!(smtp_transport(&settings("[::1]", Security::Plain)).is_ok());
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let mut s = settings("smtp.example.com", Security::Tls);
        s.ca_file = Some("/nonexistent/ca.pem".into());
        let error = smtp_transport(&s).err().unwrap().to_string();
        assert!(
            error.starts_with("cannot read the CA file /nonexistent/ca.pem"),
            "{error}"
        );
    }

    #[test]
    fn only_the_final_line_break_is_left_to_lettre() {
        assert_eq!(without_final_crlf(b"a\r\n\r\n"), b"a\r\n");
        assert_eq!(without_final_crlf(b"a"), b"a");
    }

    #[test]
    fn send_errors_print_their_kind() {
        assert_eq!(
            SendError::Permanent("550 5.1.1 no such user".into()).to_string(),
            "permanent failure: 550 5.1.1 no such user"
        );
        assert_eq!(
            SendError::Transient("421 busy".into()).to_string(),
            "temporary failure: 421 busy"
        );
    }
}

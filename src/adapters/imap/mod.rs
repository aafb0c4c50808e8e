//! The IMAP adapter: one authenticated connection to the rep's mailbox and the few commands the
//! daemon needs (find new mail, read it without marking it seen, put drafts into Drafts, find and
//! remove them, wait for new mail with IDLE). It speaks UTF-8 folder names to its callers and
//! never holds a whole mailbox in memory. What to do with the mail, when to reconnect and which
//! UIDs were already seen are the caller's business; [`Backoff`] says how long to wait.
//!
//! The searches, fetches and IDLE work on the folder selected last; the daemon either selects
//! INBOX again after working in Drafts or keeps a second session for drafts.
//!
//! Every command runs under the configured timeout. After a timeout or a broken connection the
//! session refuses further commands (the protocol state is unknown); the caller connects again.

mod backoff;
mod mutf7;
pub mod tls;

pub use backoff::Backoff;

use crate::adapters::secret::{Auth, Secret};
use crate::config::Security;
use async_imap::error::Error as ImapError;
use async_imap::extensions::idle::IdleResponse;
use async_imap::imap_proto::rfc4315::UidSetMember;
use async_imap::imap_proto::{MailboxDatum, RequestId, Response, ResponseCode, Status};
use async_imap::types::{NameAttribute, UnsolicitedResponse};
use chrono::NaiveDate;
use futures::{FutureExt, StreamExt, TryStreamExt};
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, error::Elapsed};

/// How many UIDs go into one UID FETCH: enough to amortise the round trip, few enough that a
/// batch of message heads stays small in memory.
const FETCH_BATCH: usize = 200;
/// UIDs per UID STORE / UID EXPUNGE, to keep command lines well under server limits.
const STORE_BATCH: usize = 500;
/// HEADER keys ORed in one UID SEARCH: about 6 KB of command line for Message-IDs, well under
/// server limits (Dovecot's is 64 KB), and a shallow OR nesting.
const SEARCH_OR_TERMS: usize = 50;

#[derive(Debug, Clone)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub auth: Auth,
    /// One more PEM file of trusted CAs, besides the webpki roots and the system store.
    pub ca_file: Option<PathBuf>,
    /// Trust any certificate: encrypted but not authenticated.
    pub accept_invalid_certs: bool,
    /// For connecting and for each command (each response, for long fetches).
    pub timeout: Duration,
}

/// Which server and login an error is about; never the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{} (user {})", self.host, self.port, self.user)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot resolve {target}: {cause}")]
    Resolve { target: Target, cause: io::Error },
    #[error("cannot connect to {target}: {cause}")]
    Connect { target: Target, cause: io::Error },
    #[error(
        "cannot connect to {target} without TLS: plain IMAP sends the password in the clear, so it \
         is only allowed to a loopback host (use security \"tls\" or \"starttls\")"
    )]
    PlainToRemoteHost { target: Target },
    #[error("cannot set up TLS for {target}: {cause}")]
    TlsSetup {
        target: Target,
        cause: Box<tls::Error>,
    },
    #[error(
        "cannot trust the TLS certificate of {target}: {cause} (name the server's CA in ca-file, \
         or have the certificate fixed)"
    )]
    Certificate {
        target: Target,
        cause: Box<rustls::Error>,
    },
    #[error("cannot complete the TLS handshake with {target}: {cause}")]
    Handshake { target: Target, cause: io::Error },
    #[error("cannot start TLS with {target}: the server refused STARTTLS ({reply})")]
    StartTls { target: Target, reply: String },
    #[error("cannot log in to {target}: {reply}")]
    Login {
        target: Target,
        /// The server's own words.
        reply: String,
        /// The server said the failure is temporary (`[UNAVAILABLE]`, RFC 5530).
        transient: bool,
    },
    #[error("cannot {action} on {target}: no reply within {after:?}")]
    Timeout {
        target: Target,
        action: String,
        after: Duration,
    },
    #[error("cannot {action} on {target}: the connection is gone ({cause})")]
    Disconnected {
        target: Target,
        action: String,
        cause: String,
    },
    #[error("cannot {action} on {target}: the server said {reply}")]
    Rejected {
        target: Target,
        action: String,
        reply: String,
    },
    #[error("cannot {action} on {target}: the server does not support {capability}")]
    Unsupported {
        target: Target,
        action: String,
        capability: &'static str,
    },
    #[error("cannot {action} on {target}: unexpected reply from the server ({detail})")]
    Protocol {
        target: Target,
        action: String,
        detail: String,
    },
    #[error("cannot {action}: {reason}")]
    InvalidArgument { action: String, reason: String },
}

impl Error {
    /// True when trying again later may work (network, timeouts, the server going away or saying
    /// it is temporarily unavailable); false for a refused login, an untrusted certificate, a
    /// refused command or a bad argument, which need a person.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Resolve { .. }
            | Error::Connect { .. }
            | Error::Timeout { .. }
            | Error::Disconnected { .. } => true,
            // A reset or EOF mid-handshake may pass; TLS that makes no sense (a plain-text port,
            // no common protocol version) will not.
            Error::Handshake { cause, .. } => cause
                .get_ref()
                .is_none_or(|inner| !inner.is::<rustls::Error>()),
            Error::Login { transient, .. } => *transient,
            Error::PlainToRemoteHost { .. }
            | Error::TlsSetup { .. }
            | Error::Certificate { .. }
            | Error::StartTls { .. }
            | Error::Rejected { .. }
            | Error::Unsupported { .. }
            | Error::Protocol { .. }
            | Error::InvalidArgument { .. } => false,
        }
    }
}

/// The server capabilities the daemon cares about, read after login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub idle: bool,
    /// APPENDUID and UID EXPUNGE (RFC 4315).
    pub uidplus: bool,
    /// `\Drafts`, `\Sent`... on LIST (RFC 6154).
    pub special_use: bool,
    /// MOVE (RFC 6851).
    pub move_command: bool,
    pub condstore: bool,
    /// Several messages in one APPEND (RFC 3502).
    pub multiappend: bool,
    /// Literals sent without waiting for the server's go-ahead (RFC 7888).
    pub literal_plus: bool,
}

impl Capabilities {
    fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Capabilities {
        let mut caps = Capabilities::default();
        for name in names {
            let flag = match name.to_ascii_uppercase().as_str() {
                "IDLE" => &mut caps.idle,
                "UIDPLUS" => &mut caps.uidplus,
                "SPECIAL-USE" => &mut caps.special_use,
                "MOVE" => &mut caps.move_command,
                "CONDSTORE" => &mut caps.condstore,
                "MULTIAPPEND" => &mut caps.multiappend,
                "LITERAL+" => &mut caps.literal_plus,
                _ => continue,
            };
            *flag = true;
        }
        caps
    }

    fn from_server(caps: &async_imap::types::Capabilities) -> Capabilities {
        use async_imap::types::Capability;
        Capabilities::from_names(caps.iter().filter_map(|cap| match cap {
            Capability::Atom(name) => Some(name.as_ref()),
            _ => None,
        }))
    }
}

/// Drafts and Sent, as UTF-8 folder names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialFolders {
    pub drafts: String,
    pub sent: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderState {
    pub uid_validity: u32,
    pub uid_next: Option<u32>,
    pub exists: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedMessage {
    pub uid: u32,
    /// The first `max_bytes` of the message as stored.
    pub raw: Vec<u8>,
    /// The message is longer than `raw`.
    pub truncated: bool,
}

/// Where an appended message landed (RFC 4315 APPENDUID): a UID only means something together
/// with the folder's UIDVALIDITY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedUid {
    pub uid_validity: u32,
    pub uid: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleOutcome {
    /// Messages arrived or were expunged in the selected folder.
    NewData,
    Timeout,
    Shutdown,
}

/// Anything a TLS or plain connection can be boxed as.
trait Transport: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Transport for T {}
type Stream = Box<dyn Transport>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Selected {
    folder: String,
    /// SELECT rather than EXAMINE: needed to change flags.
    writable: bool,
}

/// One authenticated connection.
#[derive(Debug)]
pub struct Session {
    imap: async_imap::Session<Stream>,
    target: Target,
    timeout: Duration,
    capabilities: Capabilities,
    selected: Option<Selected>,
    /// EXISTS, RECENT or EXPUNGE arrived with another command's reply since the folder was
    /// selected; the next `idle` returns at once instead of waiting for news already missed.
    new_data: bool,
    /// Why the connection cannot be used any more.
    broken: Option<String>,
}

impl Session {
    /// Connects, secures and logs in. Plain connections are refused, without connecting, unless
    /// the host is loopback.
    pub async fn connect(settings: &ImapSettings) -> Result<Session, Error> {
        let target = Target {
            host: settings.host.clone(),
            port: settings.port,
            user: settings.auth.user().to_string(),
        };
        let t = settings.timeout;
        // Everything that can be refused without the network is refused before connecting.
        let plan = match settings.security {
            Security::Plain if !is_loopback(&settings.host) => {
                return Err(Error::PlainToRemoteHost { target });
            }
            Security::Plain => Plan::Plain,
            Security::Tls => Plan::Tls(connector(settings, &target)?),
            Security::Starttls => Plan::Starttls(connector(settings, &target)?),
        };
        let tcp = within(t, &target, "connect", connect_tcp(&target)).await?;
        let stream: Stream = match plan {
            Plan::Plain => Box::new(tcp),
            Plan::Tls(tls) => Box::new(handshake(&tls, tcp, &target, t).await?),
            Plan::Starttls(tls) => {
                let mut client = async_imap::Client::new(tcp);
                greeting(&mut client, &target, t).await?;
                let starttls =
                    guarded(async { Ok(client.run_command_and_check_ok("STARTTLS", None).await?) });
                match tokio::time::timeout(t, starttls).await {
                    Err(_) => return Err(timeout_error(&target, "start TLS", t)),
                    Ok(Err(Failure::Imap(ImapError::No(reply) | ImapError::Bad(reply)))) => {
                        return Err(Error::StartTls {
                            target,
                            reply: server_text(&reply),
                        });
                    }
                    Ok(Err(failure)) => {
                        return Err(failure_error(&target, "start TLS", failure, t));
                    }
                    Ok(Ok(())) => {}
                }
                // Anything the server sent after its OK is dropped with the client: bytes
                // injected before the handshake must not be read as protected.
                Box::new(handshake(&tls, client.into_inner(), &target, t).await?)
            }
        };
        let mut client = async_imap::Client::new(stream);
        if settings.security != Security::Starttls {
            greeting(&mut client, &target, t).await?;
        }
        let session = Session::log_in(client, &settings.auth, target, t).await?;
        tracing::debug!(
            "logged in to {} over {}; {:?}",
            session.target,
            settings.security.as_str(),
            session.capabilities
        );
        Ok(session)
    }

    /// Logs in on a greeted connection and reads the capabilities.
    async fn log_in(
        client: async_imap::Client<Stream>,
        auth: &Auth,
        target: Target,
        t: Duration,
    ) -> Result<Session, Error> {
        let (imap, caps) = login(client, auth, &target, t).await?;
        let mut session = Session {
            imap,
            target,
            timeout: t,
            capabilities: Capabilities::default(),
            selected: None,
            new_data: false,
            broken: None,
        };
        session.capabilities = match caps {
            Some(caps) => Capabilities::from_server(&caps),
            None => {
                let result = timed(t, session.imap.capabilities()).await;
                Capabilities::from_server(&session.settle("read the capabilities", result)?)
            }
        };
        Ok(session)
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// The folders marked `\Drafts` and `\Sent` (RFC 6154), else the fallbacks.
    pub async fn special_folders(
        &mut self,
        drafts_fallback: &str,
        sent_fallback: &str,
    ) -> Result<SpecialFolders, Error> {
        let action = "list the folders";
        self.usable(action)?;
        let imap = &mut self.imap;
        let t = self.timeout;
        let result: Result<_, Failure> = guarded(async {
            let mut names = tokio::time::timeout(t, imap.list(Some(""), Some("*"))).await??;
            let (mut drafts, mut sent) = (None, None);
            while let Some(name) = tokio::time::timeout(t, names.next()).await? {
                let name = name?;
                for attribute in name.attributes() {
                    let slot = match attribute {
                        NameAttribute::Drafts => &mut drafts,
                        NameAttribute::Sent => &mut sent,
                        _ => continue,
                    };
                    slot.get_or_insert_with(|| folder_from_wire(name.name()));
                }
            }
            Ok((drafts, sent))
        })
        .await;
        let (drafts, sent) = self.settle(action, result)?;
        Ok(SpecialFolders {
            drafts: drafts.unwrap_or_else(|| drafts_fallback.to_string()),
            sent: sent.unwrap_or_else(|| sent_fallback.to_string()),
        })
    }

    /// Opens `folder` read-only (EXAMINE), always asking the server for current counts: nothing
    /// the daemon reads can change a flag there, and the rep's own client keeps seeing new mail
    /// as `\Recent`. `delete` reopens it read-write itself. The searches, fetches and `idle`
    /// work on the folder selected last, and `find_by_header`, `delete` and `fetch_full` select
    /// theirs: select the watched folder again after them.
    pub async fn select(&mut self, folder: &str) -> Result<FolderState, Error> {
        let state = self.send_select(folder, false).await?;
        // The caller searches next and so learns of everything up to here.
        self.new_data = false;
        Ok(state)
    }

    /// The counts of `folder` (STATUS UIDVALIDITY UIDNEXT MESSAGES), without selecting it:
    /// enough to tell that nothing was added to or removed from it since the last look.
    pub async fn status(&mut self, folder: &str) -> Result<FolderState, Error> {
        let action = format!("read the counts of {folder:?}");
        self.usable(&action)?;
        let wire = mutf7::encode(folder);
        // async-imap quotes the name itself, without escaping.
        if wire.contains(['"', '\\']) {
            return Err(Error::InvalidArgument {
                action,
                reason: "the folder name holds a quote or backslash".into(),
            });
        }
        let result = timed(
            self.timeout,
            self.imap.status(&wire, "(UIDVALIDITY UIDNEXT MESSAGES)"),
        )
        .await;
        let mailbox = self.settle(&action, result)?;
        Ok(FolderState {
            uid_validity: mailbox.uid_validity.unwrap_or_default(),
            uid_next: mailbox.uid_next,
            exists: mailbox.exists,
        })
    }

    /// UIDs in the selected folder with an internal date on or after `date`, ascending.
    pub async fn uids_since(&mut self, date: NaiveDate) -> Result<Vec<u32>, Error> {
        let action = "search for mail by date";
        self.refresh(action).await?;
        let query = format!("SINCE {}", date.format("%-d-%b-%Y"));
        let result = timed(self.timeout, self.imap.uid_search(query)).await;
        Ok(sorted(self.settle(action, result)?))
    }

    /// UIDs in the selected folder above `last_uid`, ascending.
    pub async fn uids_above(&mut self, last_uid: u32) -> Result<Vec<u32>, Error> {
        let action = "search for new mail";
        self.refresh(action).await?;
        let Some(first) = last_uid.checked_add(1) else {
            return Ok(Vec::new());
        };
        let result = timed(self.timeout, self.imap.uid_search(format!("UID {first}:*"))).await;
        let mut uids = sorted(self.settle(action, result)?);
        // `n:*` always matches the last message, even when its UID is below n (RFC 3501 6.4.8).
        uids.retain(|&uid| uid > last_uid);
        Ok(uids)
    }

    /// Hands the first `max_bytes` of each message in `uids` (in the selected folder) to
    /// `each`, fetching 200 at a time so a backfill never holds more than one batch; UIDs no
    /// longer there are skipped. Uses BODY.PEEK, so `\Seen` is never set.
    pub async fn fetch_heads(
        &mut self,
        uids: &[u32],
        max_bytes: u32,
        mut each: impl FnMut(FetchedMessage),
    ) -> Result<(), Error> {
        let action = "fetch messages";
        self.selected(action)?;
        let query = format!("(UID RFC822.SIZE BODY.PEEK[]<0.{max_bytes}>)");
        for batch in uids.chunks(FETCH_BATCH) {
            let wanted: HashSet<u32> = batch.iter().copied().collect();
            let imap = &mut self.imap;
            let t = self.timeout;
            let result: Result<(), Failure> = guarded(async {
                let mut fetches =
                    tokio::time::timeout(t, imap.uid_fetch(uid_set(batch), &query)).await??;
                while let Some(fetch) = tokio::time::timeout(t, fetches.next()).await? {
                    let fetch = fetch?;
                    // Flag updates for other messages may arrive unasked; they carry no body.
                    let (Some(uid), Some(raw)) = (fetch.uid, fetch.body()) else {
                        continue;
                    };
                    if !wanted.contains(&uid) {
                        continue;
                    }
                    let truncated = match fetch.size {
                        Some(size) => size as usize > raw.len(),
                        None => raw.len() >= max_bytes as usize,
                    };
                    each(FetchedMessage {
                        uid,
                        raw: raw.to_vec(),
                        truncated,
                    });
                }
                Ok(())
            })
            .await;
            self.settle(action, result)?;
        }
        Ok(())
    }

    /// Appends `raw` to `folder` with `flags` (e.g. `\Draft`, or `\Seen` for Sent). Returns
    /// where it landed when the server has UIDPLUS.
    pub async fn append(
        &mut self,
        folder: &str,
        flags: &[&str],
        raw: &[u8],
    ) -> Result<Option<AppendedUid>, Error> {
        let action = format!("append a message to {folder:?}");
        self.usable(&action)?;
        let mailbox = quoted_folder(folder, &action)?;
        let flags = flag_list(flags, &action)?;
        let command = format!("APPEND {mailbox} {flags} {{{}}}", raw.len());
        let result = guarded(append_literal(
            &mut self.imap,
            &command,
            raw,
            self.timeout,
            &mut self.new_data,
        ))
        .await;
        self.settle(&action, result)
    }

    /// Appends each of `raws` to `folder` with `flags`, in order, and returns where each landed
    /// when the server says. With LITERAL+ and MULTIAPPEND that is one command and one round
    /// trip for all of them, all or none; otherwise one APPEND, two round trips, each.
    pub async fn append_all(
        &mut self,
        folder: &str,
        flags: &[&str],
        raws: &[&[u8]],
    ) -> Result<Vec<Option<AppendedUid>>, Error> {
        let caps = &self.capabilities;
        let one_command = caps.literal_plus && (caps.multiappend || raws.len() == 1);
        if raws.is_empty() || !one_command {
            let mut landed = Vec::with_capacity(raws.len());
            for raw in raws {
                landed.push(self.append(folder, flags, raw).await?);
            }
            return Ok(landed);
        }
        let action = format!("append {} messages to {folder:?}", raws.len());
        self.usable(&action)?;
        let mailbox = quoted_folder(folder, &action)?;
        let flags = flag_list(flags, &action)?;
        let result = guarded(append_non_synchronising(
            &mut self.imap,
            &format!("APPEND {mailbox}"),
            &flags,
            raws,
            self.timeout,
            &mut self.new_data,
        ))
        .await;
        self.settle(&action, result)
    }

    /// UIDs in `folder` whose `header` contains `value` (UID SEARCH HEADER), e.g. a draft by its
    /// Message-ID or replies by In-Reply-To. The server matches substrings, so pass the whole
    /// `<id@host>` with its angle brackets.
    pub async fn find_by_header(
        &mut self,
        folder: &str,
        header: &str,
        value: &str,
    ) -> Result<Vec<u32>, Error> {
        self.find_by_any_header(folder, header, &[value]).await
    }

    /// UIDs in `folder` whose `header` contains any of `values`, ascending: one search per
    /// `SEARCH_OR_TERMS` values (an OR of HEADER keys), however many values there are.
    pub async fn find_by_any_header(
        &mut self,
        folder: &str,
        header: &str,
        values: &[&str],
    ) -> Result<Vec<u32>, Error> {
        let action = format!("search {folder:?} by {header}");
        self.usable(&action)?;
        let name = quoted(header, "header name", &action)?;
        let keys = values
            .iter()
            .map(|value| {
                Ok(format!(
                    "HEADER {name} {}",
                    quoted(value, "header value", &action)?
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let mut found = HashSet::new();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.open(folder, false).await?;
        self.sync(&action).await?;
        for keys in keys.chunks(SEARCH_OR_TERMS) {
            // `OR OR a b c` is (a OR b) OR c: one OR before the keys for each key after the first.
            let query = format!("{}{}", "OR ".repeat(keys.len() - 1), keys.join(" "));
            let result = timed(self.timeout, self.imap.uid_search(query)).await;
            found.extend(self.settle(&action, result)?);
        }
        Ok(sorted(found))
    }

    /// Marks `uids` in `folder` `\Deleted` and, with UIDPLUS, expunges exactly those. Without
    /// UIDPLUS a plain EXPUNGE would also remove whatever the rep's client marked deleted, so
    /// they stay marked and the rep's client expunges them.
    pub async fn delete(&mut self, folder: &str, uids: &[u32]) -> Result<(), Error> {
        let action = format!("delete messages from {folder:?}");
        if uids.is_empty() {
            return Ok(());
        }
        self.open(folder, true).await?;
        let expunge = self.capabilities.uidplus;
        for batch in uids.chunks(STORE_BATCH) {
            let set = uid_set(batch);
            let imap = &mut self.imap;
            let t = self.timeout;
            let result: Result<(), Failure> = guarded(async {
                let stored =
                    tokio::time::timeout(t, imap.uid_store(&set, "+FLAGS.SILENT (\\Deleted)"))
                        .await??;
                tokio::time::timeout(t, stored.try_collect::<Vec<_>>()).await??;
                if expunge {
                    let expunged = tokio::time::timeout(t, imap.uid_expunge(&set)).await??;
                    tokio::time::timeout(t, expunged.try_collect::<Vec<_>>()).await??;
                }
                Ok(())
            })
            .await;
            self.settle(&action, result)?;
        }
        Ok(())
    }

    /// The whole message `uid` in `folder`, without setting `\Seen`; `None` if it is gone.
    pub async fn fetch_full(&mut self, folder: &str, uid: u32) -> Result<Option<Vec<u8>>, Error> {
        let action = format!("fetch message {uid} from {folder:?}");
        self.open(folder, false).await?;
        let imap = &mut self.imap;
        let t = self.timeout;
        let result: Result<_, Failure> = guarded(async {
            let mut fetches =
                tokio::time::timeout(t, imap.uid_fetch(uid.to_string(), "(UID BODY.PEEK[])"))
                    .await??;
            let mut found = None;
            while let Some(fetch) = tokio::time::timeout(t, fetches.next()).await? {
                let fetch = fetch?;
                if fetch.uid == Some(uid)
                    && let Some(body) = fetch.body()
                {
                    found = Some(body.to_vec());
                }
            }
            Ok(found)
        })
        .await;
        self.settle(&action, result)
    }

    /// Waits with IDLE on the selected folder until messages arrive or are expunged, `timeout`
    /// passes (keep it at most 20 minutes: servers drop idle clients after 30) or `shutdown`
    /// completes. The session comes back for the next command.
    pub async fn idle(
        mut self,
        timeout: Duration,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(Session, IdleOutcome), Error> {
        let action = "wait for new mail";
        self.selected(action)?;
        if !self.capabilities.idle {
            return Err(Error::Unsupported {
                target: self.target,
                action: action.into(),
                capability: "IDLE",
            });
        }
        self.drain_unsolicited();
        if std::mem::take(&mut self.new_data) {
            return Ok((self, IdleOutcome::NewData));
        }
        let Session {
            imap,
            target,
            timeout: t,
            capabilities,
            selected,
            ..
        } = self;
        let fail = |failure| failure_error(&target, action, failure, t);
        let mut handle = imap.idle();
        timed(t, handle.init()).await.map_err(fail)?;
        let deadline = Instant::now() + timeout;
        let mut shutdown = std::pin::pin!(shutdown);
        let outcome = loop {
            let (wait, _interrupt) =
                handle.wait_with_timeout(deadline.saturating_duration_since(Instant::now()));
            let response = tokio::select! {
                response = guarded(async { Ok(wait.await?) }) => response,
                () = tokio::time::sleep_until(deadline) => break IdleOutcome::Timeout,
                () = &mut shutdown => break IdleOutcome::Shutdown,
            };
            match response.map_err(fail)? {
                IdleResponse::Timeout => break IdleOutcome::Timeout,
                // Only the stream ending stops the wait this way: we never use the interrupt.
                IdleResponse::ManualInterrupt => {
                    return Err(fail(Failure::Imap(ImapError::ConnectionLost)));
                }
                IdleResponse::NewData(data) => match data.parsed() {
                    news if is_news(news) => break IdleOutcome::NewData,
                    Response::Data {
                        status: Status::Bye,
                        outcome,
                    } => {
                        return Err(Error::Disconnected {
                            target,
                            action: action.into(),
                            cause: format!(
                                "the server said BYE: {}",
                                outcome.information.as_deref().unwrap_or("")
                            ),
                        });
                    }
                    // Flag changes by the rep's client, and the like.
                    _ => continue,
                },
            }
        };
        let imap = timed(t, handle.done()).await.map_err(fail)?;
        let mut session = Session {
            imap,
            target,
            timeout: t,
            capabilities,
            selected,
            new_data: false,
            broken: None,
        };
        session.drain_unsolicited();
        Ok((session, outcome))
    }

    pub async fn logout(mut self) -> Result<(), Error> {
        let action = "log out";
        self.usable(action)?;
        let result = timed(self.timeout, self.imap.logout()).await;
        self.settle(action, result)
    }

    /// Makes `folder` the selected one, read-write if `writable`, unless it already is in a
    /// mode that will do.
    async fn open(&mut self, folder: &str, writable: bool) -> Result<(), Error> {
        let reopening = match &self.selected {
            Some(open) if open.folder == folder => {
                if open.writable || !writable {
                    return Ok(());
                }
                true
            }
            _ => false,
        };
        self.send_select(folder, writable).await?;
        // Reopening the watched folder folds messages nobody announced into the new EXISTS
        // count; one spurious wake-up beats a delivery missed until the IDLE timeout.
        self.new_data = reopening;
        Ok(())
    }

    async fn send_select(&mut self, folder: &str, writable: bool) -> Result<FolderState, Error> {
        let action = format!("open folder {folder:?}");
        self.usable(&action)?;
        let mailbox = quoted_folder(folder, &action)?;
        let command = if writable { "SELECT" } else { "EXAMINE" };
        // A failed SELECT leaves nothing selected.
        self.selected = None;
        let result = guarded(async {
            let id = tokio::time::timeout(
                self.timeout,
                self.imap.run_command(format!("{command} {mailbox}")),
            )
            .await??;
            read_folder_state(&mut self.imap, &id, self.timeout).await
        })
        .await;
        let state = self.settle(&action, result)?;
        self.selected = Some(Selected {
            folder: folder.to_string(),
            writable,
        });
        Ok(state)
    }

    /// NOOP before a search for new mail: a server shows a search only the messages it has
    /// announced, and announces new ones at the end of a command. The caller learns of all of
    /// them from the search; what arrives during it still sets `new_data`.
    async fn refresh(&mut self, action: &str) -> Result<(), Error> {
        self.sync(action).await?;
        self.new_data = false;
        Ok(())
    }

    async fn sync(&mut self, action: &str) -> Result<(), Error> {
        self.selected(action)?;
        let result = timed(self.timeout, self.imap.noop()).await;
        self.settle(action, result)
    }

    fn usable(&self, action: &str) -> Result<(), Error> {
        match &self.broken {
            Some(cause) => Err(Error::Disconnected {
                target: self.target.clone(),
                action: action.into(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn selected(&self, action: &str) -> Result<(), Error> {
        self.usable(action)?;
        if self.selected.is_none() {
            return Err(Error::InvalidArgument {
                action: action.into(),
                reason: "no folder is selected (call select first)".into(),
            });
        }
        Ok(())
    }

    /// Turns a command's outcome into the adapter's error, marking the session broken when the
    /// protocol state is no longer known.
    fn settle<T>(&mut self, action: &str, result: Result<T, Failure>) -> Result<T, Error> {
        match result {
            Ok(value) => {
                self.drain_unsolicited();
                Ok(value)
            }
            Err(failure) => {
                let error = failure_error(&self.target, action, failure, self.timeout);
                self.broken = match &error {
                    Error::Timeout { after, .. } => {
                        Some(format!("an earlier command got no reply within {after:?}"))
                    }
                    Error::Disconnected { cause, .. } => Some(cause.clone()),
                    Error::Protocol { detail, .. } => {
                        Some(format!("an earlier reply made no sense: {detail}"))
                    }
                    _ => None,
                };
                Err(error)
            }
        }
    }

    /// async-imap queues unasked-for EXISTS/EXPUNGE in a bounded channel and drops what does not
    /// fit; empty it after each command and keep only the fact that something happened.
    fn drain_unsolicited(&mut self) {
        while let Ok(response) = self.imap.unsolicited_responses.try_recv() {
            if matches!(
                response,
                UnsolicitedResponse::Exists(_)
                    | UnsolicitedResponse::Recent(_)
                    | UnsolicitedResponse::Expunge(_)
            ) {
                self.new_data = true;
            }
        }
    }
}

/// Why a command failed, before it is put in the adapter's words.
#[derive(Debug)]
enum Failure {
    Timeout,
    Imap(ImapError),
    Unexpected(String),
}

impl From<Elapsed> for Failure {
    fn from(_: Elapsed) -> Failure {
        Failure::Timeout
    }
}

impl From<ImapError> for Failure {
    fn from(error: ImapError) -> Failure {
        Failure::Imap(error)
    }
}

impl From<io::Error> for Failure {
    fn from(error: io::Error) -> Failure {
        Failure::Imap(ImapError::Io(error))
    }
}

async fn timed<T>(
    t: Duration,
    command: impl Future<Output = Result<T, ImapError>>,
) -> Result<T, Failure> {
    guarded(async { Ok(tokio::time::timeout(t, command).await??) }).await
}

/// Runs one exchange with the server, its parser's panic turned into a failure. imap-proto 0.17
/// panics on some replies (a response code followed at once by a non-ASCII byte, as in
/// `* OK [ALERT]\xe9`); one bad reply must drop this connection (the caller reconnects), not
/// take the service down. Found by the `imap_response` fuzz target.
async fn guarded<T>(exchange: impl Future<Output = Result<T, Failure>>) -> Result<T, Failure> {
    AssertUnwindSafe(exchange)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(Failure::Unexpected("the IMAP parser failed on it".into())))
}

fn timeout_error(target: &Target, action: &str, after: Duration) -> Error {
    Error::Timeout {
        target: target.clone(),
        action: action.into(),
        after,
    }
}

fn failure_error(target: &Target, action: &str, failure: Failure, t: Duration) -> Error {
    let target = target.clone();
    let action = action.to_string();
    match failure {
        Failure::Timeout => Error::Timeout {
            target,
            action,
            after: t,
        },
        Failure::Imap(ImapError::No(reply) | ImapError::Bad(reply)) => Error::Rejected {
            target,
            action,
            reply: server_text(&reply),
        },
        Failure::Imap(ImapError::Validate(e)) => Error::InvalidArgument {
            action,
            reason: e.to_string(),
        },
        Failure::Imap(e @ (ImapError::Io(_) | ImapError::ConnectionLost)) => Error::Disconnected {
            target,
            action,
            cause: e.to_string(),
        },
        Failure::Imap(e) => Error::Protocol {
            target,
            action,
            detail: e.to_string(),
        },
        Failure::Unexpected(detail) => Error::Protocol {
            target,
            action,
            detail,
        },
    }
}

/// The server's words from async-imap's `code: .., info: Some("..")` rendering of NO and BAD.
fn server_text(rendered: &str) -> String {
    const INFO: &str = "info: Some(\"";
    match rendered.find(INFO) {
        Some(start) => rendered[start + INFO.len()..]
            .trim_end_matches("\")")
            .replace("\\\"", "\"")
            .replace("\\\\", "\\"),
        None => rendered.to_string(),
    }
}

/// How a connection is secured, decided before connecting.
enum Plan {
    Plain,
    Tls(tokio_rustls::TlsConnector),
    Starttls(tokio_rustls::TlsConnector),
}

fn connector(
    settings: &ImapSettings,
    target: &Target,
) -> Result<tokio_rustls::TlsConnector, Error> {
    let trust = if settings.accept_invalid_certs {
        tls::Trust::DangerousAcceptInvalidCerts
    } else {
        tls::Trust::Verified {
            extra_ca_file: settings.ca_file.as_deref(),
        }
    };
    let config = tls::client_config(trust).map_err(|cause| Error::TlsSetup {
        target: target.clone(),
        cause: Box::new(cause),
    })?;
    Ok(tokio_rustls::TlsConnector::from(config))
}

/// Runs `step` under the timeout, naming `action` if it runs out.
async fn within<T>(
    t: Duration,
    target: &Target,
    action: &str,
    step: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(t, step)
        .await
        .unwrap_or_else(|_| Err(timeout_error(target, action, t)))
}

async fn connect_tcp(target: &Target) -> Result<TcpStream, Error> {
    let addresses: Vec<_> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|cause| Error::Resolve {
            target: target.clone(),
            cause,
        })?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no addresses");
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(tcp) => {
                // IMAP is request/response with small commands; do not wait to coalesce them.
                tcp.set_nodelay(true).ok();
                return Ok(tcp);
            }
            Err(e) => last = e,
        }
    }
    Err(Error::Connect {
        target: target.clone(),
        cause: last,
    })
}

async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    tls: &tokio_rustls::TlsConnector,
    stream: S,
    target: &Target,
    t: Duration,
) -> Result<tokio_rustls::client::TlsStream<S>, Error> {
    let host = target.host.trim_start_matches('[').trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
        Error::InvalidArgument {
            action: format!("connect to {target}"),
            reason: format!("{host:?} is not a valid TLS server name ({e})"),
        }
    })?;
    let step = async {
        tls.connect(name, stream)
            .await
            .map_err(|cause| match tls::certificate_error(&cause) {
                Some(rustls_error) => Error::Certificate {
                    target: target.clone(),
                    cause: Box::new(rustls_error.clone()),
                },
                None => Error::Handshake {
                    target: target.clone(),
                    cause,
                },
            })
    };
    within(t, target, "complete the TLS handshake", step).await
}

/// Reads the server's first line; a BYE there means it is not taking connections now.
async fn greeting<T: AsyncRead + AsyncWrite + Unpin + fmt::Debug + Send>(
    client: &mut async_imap::Client<T>,
    target: &Target,
    t: Duration,
) -> Result<(), Error> {
    let action = "read the greeting";
    let read = guarded(async { Ok(client.read_response().await?) });
    let response = match tokio::time::timeout(t, read).await {
        Err(_) => return Err(timeout_error(target, action, t)),
        Ok(Err(failure)) => return Err(failure_error(target, action, failure, t)),
        Ok(Ok(None)) => {
            return Err(failure_error(
                target,
                action,
                Failure::Imap(ImapError::ConnectionLost),
                t,
            ));
        }
        Ok(Ok(Some(response))) => response,
    };
    match response.parsed() {
        Response::Data {
            status: Status::Ok | Status::PreAuth,
            ..
        } => Ok(()),
        Response::Data {
            status: Status::Bye,
            outcome,
        } => Err(Error::Disconnected {
            target: target.clone(),
            action: action.into(),
            cause: format!(
                "the server said BYE: {}",
                outcome.information.as_deref().unwrap_or("")
            ),
        }),
        other => Err(Error::Protocol {
            target: target.clone(),
            action: action.into(),
            detail: format!("{other:?}"),
        }),
    }
}

/// SASL XOAUTH2: the token once; an empty reply to the server's error challenge, as the
/// mechanism requires, so the server can finish with NO.
struct XOAuth2<'a> {
    user: &'a str,
    token: &'a Secret,
    sent: bool,
}

impl async_imap::Authenticator for XOAuth2<'_> {
    type Response = String;

    fn process(&mut self, _challenge: &[u8]) -> String {
        if std::mem::replace(&mut self.sent, true) {
            return String::new();
        }
        xoauth2_response(self.user, self.token)
    }
}

fn xoauth2_response(user: &str, token: &Secret) -> String {
    format!("user={user}\x01auth=Bearer {}\x01\x01", token.expose())
}

async fn login(
    client: async_imap::Client<Stream>,
    auth: &Auth,
    target: &Target,
    t: Duration,
) -> Result<
    (
        async_imap::Session<Stream>,
        Option<async_imap::types::Capabilities>,
    ),
    Error,
> {
    let attempt = guarded(async {
        let logged_in = match auth {
            Auth::Password { user, password } => client
                .login_with_capabilities(user, password.expose())
                .await
                .map_err(|(e, _)| e),
            Auth::XOAuth2 { user, token } => {
                let mechanism = XOAuth2 {
                    user,
                    token,
                    sent: false,
                };
                client
                    .authenticate("XOAUTH2", mechanism)
                    .await
                    .map(|session| (session, None))
                    .map_err(|(e, _)| e)
            }
        };
        Ok(logged_in?)
    });
    match tokio::time::timeout(t, attempt).await {
        Err(_) => Err(timeout_error(target, "log in", t)),
        Ok(Ok(logged_in)) => Ok(logged_in),
        Ok(Err(Failure::Imap(ImapError::No(reply) | ImapError::Bad(reply)))) => {
            let reply = server_text(&reply);
            Err(Error::Login {
                target: target.clone(),
                transient: reply.contains("[UNAVAILABLE]"),
                reply,
            })
        }
        Ok(Err(failure)) => Err(failure_error(target, "log in", failure, t)),
    }
}

/// Reads SELECT/EXAMINE's untagged data up to its tagged reply.
async fn read_folder_state(
    imap: &mut async_imap::Session<Stream>,
    id: &RequestId,
    t: Duration,
) -> Result<FolderState, Failure> {
    let (mut uid_validity, mut uid_next, mut exists) = (None, None, 0);
    // The folder's state is all news to the caller anyway.
    let mut news = false;
    read_until(imap, t, &mut news, |response| {
        match response {
            Response::MailboxData(MailboxDatum::Exists(n)) => exists = *n,
            Response::Data { outcome, .. } => match outcome.code {
                Some(ResponseCode::UidValidity(v)) => uid_validity = Some(v),
                Some(ResponseCode::UidNext(n)) => uid_next = Some(n),
                _ => {}
            },
            Response::Done {
                tag,
                status,
                outcome,
            } if tag == id => {
                return Some(
                    check_done(status, outcome.information.as_deref()).and_then(|()| {
                        Ok(FolderState {
                            uid_validity: uid_validity.ok_or_else(|| {
                                Failure::Unexpected("the folder has no UIDVALIDITY".into())
                            })?,
                            uid_next,
                            exists,
                        })
                    }),
                );
            }
            _ => {}
        }
        None
    })
    .await
}

/// APPEND with a synchronising literal, reading APPENDUID from the tagged OK (async-imap's own
/// `append` drops it).
async fn append_literal(
    imap: &mut async_imap::Session<Stream>,
    command: &str,
    raw: &[u8],
    t: Duration,
    new_data: &mut bool,
) -> Result<Option<AppendedUid>, Failure> {
    let id = tokio::time::timeout(t, imap.run_command(command)).await??;
    read_until(imap, t, new_data, |response| match response {
        Response::Continue { .. } => Some(Ok(())),
        Response::Done {
            tag,
            status,
            outcome,
        } if *tag == id => Some(check_done(status, outcome.information.as_deref()).and_then(
            |()| {
                Err(Failure::Unexpected(
                    "APPEND finished before the message".into(),
                ))
            },
        )),
        _ => None,
    })
    .await?;
    tokio::time::timeout(t, async {
        let stream = imap.get_mut();
        stream.write_all(raw).await?;
        stream.write_all(b"\r\n").await?;
        stream.flush().await
    })
    .await??;
    Ok(appended_reply(imap, &id, 1, t, new_data).await?[0])
}

/// APPEND of several messages (MULTIAPPEND) as non-synchronising literals (LITERAL+): the whole
/// command is written at once and only the tagged reply is waited for.
async fn append_non_synchronising(
    imap: &mut async_imap::Session<Stream>,
    command: &str,
    flags: &str,
    raws: &[&[u8]],
    t: Duration,
    new_data: &mut bool,
) -> Result<Vec<Option<AppendedUid>>, Failure> {
    let Some((first, rest)) = raws.split_first() else {
        return Ok(Vec::new());
    };
    let id = tokio::time::timeout(
        t,
        imap.run_command(format!("{command} {flags} {{{}+}}", first.len())),
    )
    .await??;
    // One buffer, so the literals go out as a few large writes rather than one per piece.
    let mut literals = Vec::with_capacity(raws.iter().map(|raw| raw.len() + 32).sum());
    literals.extend_from_slice(first);
    for raw in rest {
        literals.extend_from_slice(format!(" {flags} {{{}+}}\r\n", raw.len()).as_bytes());
        literals.extend_from_slice(raw);
    }
    literals.extend_from_slice(b"\r\n");
    tokio::time::timeout(t, async {
        let stream = imap.get_mut();
        stream.write_all(&literals).await?;
        stream.flush().await
    })
    .await??;
    appended_reply(imap, &id, raws.len(), t, new_data).await
}

/// Reads up to APPEND's tagged reply: where its `count` messages landed.
async fn appended_reply(
    imap: &mut async_imap::Session<Stream>,
    id: &RequestId,
    count: usize,
    t: Duration,
    new_data: &mut bool,
) -> Result<Vec<Option<AppendedUid>>, Failure> {
    read_until(imap, t, new_data, |response| match response {
        Response::Done {
            tag,
            status,
            outcome,
        } if tag == id => Some(
            check_done(status, outcome.information.as_deref())
                .map(|()| appended_uids(outcome.code.as_ref(), count)),
        ),
        _ => None,
    })
    .await
}

/// Where each of `count` appended messages landed, from the tagged OK's APPENDUID (RFC 4315: a
/// UID set, in the order appended); all `None` when the server said nothing that fits.
fn appended_uids(code: Option<&ResponseCode<'_>>, count: usize) -> Vec<Option<AppendedUid>> {
    let Some(ResponseCode::AppendUid(uid_validity, members)) = code else {
        return vec![None; count];
    };
    let uids: Vec<u32> = members
        .iter()
        .flat_map(|member| match member {
            UidSetMember::Uid(uid) => *uid..=*uid,
            UidSetMember::UidRange(range) => range.clone(),
        })
        .take(count + 1)
        .collect();
    if uids.len() != count {
        return vec![None; count];
    }
    uids.into_iter()
        .map(|uid| {
            Some(AppendedUid {
                uid_validity: *uid_validity,
                uid,
            })
        })
        .collect()
}

/// Reads responses, handing each to `visit`, until `visit` has a result. Unasked-for EXISTS,
/// RECENT and EXPUNGE set `new_data`: the server will not announce them again.
async fn read_until<T>(
    imap: &mut async_imap::Session<Stream>,
    t: Duration,
    new_data: &mut bool,
    mut visit: impl FnMut(&Response<'_>) -> Option<Result<T, Failure>>,
) -> Result<T, Failure> {
    loop {
        let response = tokio::time::timeout(t, imap.read_response())
            .await??
            .ok_or(Failure::Imap(ImapError::ConnectionLost))?;
        if let Some(result) = visit(response.parsed()) {
            return result;
        }
        if is_news(response.parsed()) {
            *new_data = true;
        }
    }
}

fn is_news(response: &Response<'_>) -> bool {
    matches!(
        response,
        Response::MailboxData(MailboxDatum::Exists(_) | MailboxDatum::Recent(_))
            | Response::Expunge(_)
    )
}

fn check_done(status: &Status, information: Option<&str>) -> Result<(), Failure> {
    let reply = information.unwrap_or("").to_string();
    match status {
        Status::Ok => Ok(()),
        Status::No => Err(Failure::Imap(ImapError::No(reply))),
        Status::Bad => Err(Failure::Imap(ImapError::Bad(reply))),
        other => Err(Failure::Unexpected(format!("{other:?} {reply}"))),
    }
}

fn sorted(uids: HashSet<u32>) -> Vec<u32> {
    let mut uids: Vec<u32> = uids.into_iter().collect();
    uids.sort_unstable();
    uids
}

/// `1:3,7,9:10` for [1, 2, 3, 7, 9, 10]: short command lines for long runs of UIDs.
fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for uid in sorted {
        match ranges.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(uid) => *end = uid,
            _ => ranges.push((uid, uid)),
        }
    }
    ranges
        .iter()
        .map(|&(start, end)| {
            if start == end {
                start.to_string()
            } else {
                format!("{start}:{end}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// An IMAP quoted string; CR, LF, NUL and non-ASCII cannot be quoted.
fn quoted(value: &str, what: &str, action: &str) -> Result<String, Error> {
    if let Some(c) = value
        .chars()
        .find(|c| !c.is_ascii() || matches!(c, '\r' | '\n' | '\0'))
    {
        return Err(Error::InvalidArgument {
            action: action.into(),
            reason: format!("the {what} holds {c:?}, which IMAP cannot search or send quoted"),
        });
    }
    Ok(format!(
        "\"{}\"",
        value.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

fn quoted_folder(folder: &str, action: &str) -> Result<String, Error> {
    quoted(&mutf7::encode(folder), "folder name", action)
}

fn folder_from_wire(wire: &str) -> String {
    mutf7::decode(wire).unwrap_or_else(|| wire.to_string())
}

/// `(\Draft \Seen)`; each flag a system flag or keyword made of atom characters.
fn flag_list(flags: &[&str], action: &str) -> Result<String, Error> {
    for flag in flags {
        let atom = flag.strip_prefix('\\').unwrap_or(flag);
        let valid = !atom.is_empty()
            && atom
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"(){%*\"\\]".contains(&b));
        if !valid {
            return Err(Error::InvalidArgument {
                action: action.into(),
                reason: format!("{flag:?} is not an IMAP flag"),
            });
        }
    }
    Ok(format!("({})", flags.join(" ")))
}

/// 127.0.0.0/8, ::1 and "localhost": the only hosts a plain connection may go to.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A whole session against `server`, the bytes a server sends (greeting, replies, untagged data),
/// with every command the daemon uses, in the order it uses them; what the client writes is
/// dropped. The fuzz target `imap_response` and its regression tests drive the adapter's own
/// response handling through this, over a real async-imap client. Every command must end in a
/// value or an error, never a panic or a hang: the input ends, so the connection does.
pub(crate) fn replay(server: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(converse(server.to_vec()));
}

async fn converse(server: Vec<u8>) {
    let t = Duration::from_secs(30);
    let target = Target {
        host: "localhost".into(),
        port: 143,
        user: "rep".into(),
    };
    let auth = Auth::Password {
        user: "rep".into(),
        password: Secret::new("secret"),
    };
    let mut client = async_imap::Client::new(Box::new(Scripted::new(server)) as Stream);
    if greeting(&mut client, &target, t).await.is_err() {
        return;
    }
    let Ok(mut session) = Session::log_in(client, &auth, target, t).await else {
        return;
    };
    let _ = session.special_folders("Drafts", "Sent").await;
    let _ = session.select("INBOX").await;
    let since = NaiveDate::from_ymd_opt(2027, 2, 1).expect("a valid date");
    let mut uids = session.uids_since(since).await.unwrap_or_default();
    uids.extend(session.uids_above(1).await.unwrap_or_default());
    uids.extend([1, 2, 3]);
    let _ = session
        .fetch_heads(&uids, 4096, |message| {
            assert!(uids.contains(&message.uid), "a UID we did not ask for");
        })
        .await;
    let _ = session
        .append("Entwürfe", &["\\Draft"], b"Subject: x\r\n\r\nx\r\n")
        .await;
    let _ = session
        .append_all(
            "Entwürfe",
            &["\\Draft"],
            &[b"Subject: y\r\n\r\ny\r\n", b"z\r\n"],
        )
        .await;
    let found = session
        .find_by_header("Entwürfe", "Message-ID", "<x@example.com>")
        .await
        .unwrap_or_default();
    let _ = session.delete("Entwürfe", &found).await;
    let _ = session.fetch_full("INBOX", 1).await;
    let _ = session.select("INBOX").await;
    if let Ok((session, _)) = session
        .idle(Duration::from_secs(60), std::future::pending())
        .await
    {
        let _ = session.logout().await;
    }
}

/// A connection whose server side is a fixed script: reads come from it and then end; writes go
/// nowhere.
#[derive(Debug)]
struct Scripted(io::Cursor<Vec<u8>>);

impl Scripted {
    fn new(server: Vec<u8>) -> Scripted {
        Scripted(io::Cursor::new(server))
    }
}

impl AsyncRead for Scripted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            host: "imap.example.com".into(),
            port: 993,
            user: "rep@example.com".into(),
        }
    }

    #[test]
    fn uid_sets_collapse_runs() {
        assert_eq!(uid_set(&[10, 1, 2, 3, 7, 9, 3]), "1:3,7,9:10");
        assert_eq!(uid_set(&[42]), "42");
        assert_eq!(uid_set(&[u32::MAX - 1, u32::MAX]), "4294967294:4294967295");
    }

    #[test]
    fn appended_uids_follow_the_uid_set_in_order_or_are_all_unknown() {
        let code = ResponseCode::AppendUid(
            7,
            vec![UidSetMember::UidRange(40..=42), UidSetMember::Uid(45)],
        );
        let uids: Vec<_> = appended_uids(Some(&code), 4)
            .into_iter()
            .map(|a| a.map(|a| (a.uid_validity, a.uid)))
            .collect();
        assert_eq!(
            uids,
            [Some((7, 40)), Some((7, 41)), Some((7, 42)), Some((7, 45))]
        );
        // A set that does not match the count tells nothing about which landed where.
        assert_eq!(appended_uids(Some(&code), 3), vec![None; 3]);
        assert_eq!(appended_uids(Some(&code), 5), vec![None; 5]);
        assert_eq!(appended_uids(None, 2), vec![None; 2]);
    }

    #[test]
    fn only_loopback_hosts_count_as_loopback() {
        for host in [
            "localhost",
            "LOCALHOST",
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "10.0.0.1",
            "imap.example.com",
            "localhost.example.com",
            "::2",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }

    #[test]
    fn quoting_escapes_and_refuses_what_cannot_be_quoted() {
        assert_eq!(quoted("<a\"b\\c@x>", "v", "a").unwrap(), r#""<a\"b\\c@x>""#);
        let error = quoted("x\r\nA1 DELETE INBOX", "header value", "search").unwrap_err();
        assert!(!error.is_transient());
        assert!(error.to_string().contains("header value"), "{error}");
        assert!(quoted("Grüße", "v", "a").is_err());
        assert_eq!(quoted_folder("Entwürfe", "a").unwrap(), "\"Entw&APw-rfe\"");
    }

    #[test]
    fn flags_must_be_atoms() {
        assert_eq!(flag_list(&["\\Draft"], "a").unwrap(), "(\\Draft)");
        assert_eq!(
            flag_list(&["\\Seen", "$Pushback"], "a").unwrap(),
            "(\\Seen $Pushback)"
        );
        assert_eq!(flag_list(&[], "a").unwrap(), "()");
        for bad in ["", "\\", "\\Draft)", "two words", "\\Sé"] {
            assert!(flag_list(&[bad], "a").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn server_text_is_the_servers_words() {
        assert_eq!(
            server_text(
                r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")"#
            ),
            "[AUTHENTICATIONFAILED] Authentication failed."
        );
        assert_eq!(
            server_text(r#"code: None, info: Some("Mailbox \"x\" doesn't exist")"#),
            "Mailbox \"x\" doesn't exist"
        );
        assert_eq!(server_text("something else"), "something else");
    }

    #[test]
    fn capabilities_are_read_case_insensitively() {
        let caps = Capabilities::from_names([
            "IMAP4rev1",
            "idle",
            "UIDPLUS",
            "MOVE",
            "X-FOO",
            "MultiAppend",
            "LITERAL+",
        ]);
        assert_eq!(
            caps,
            Capabilities {
                idle: true,
                uidplus: true,
                special_use: false,
                move_command: true,
                condstore: false,
                multiappend: true,
                literal_plus: true,
            }
        );
    }

    #[test]
    fn the_xoauth2_response_is_the_sasl_string_and_is_sent_once() {
        let token = Secret::new("ya29.token");
        assert_eq!(
            xoauth2_response("rep@example.com", &token),
            "user=rep@example.com\x01auth=Bearer ya29.token\x01\x01"
        );
        let mut mechanism = XOAuth2 {
            user: "rep@example.com",
            token: &token,
            sent: false,
        };
        use async_imap::Authenticator;
        assert!(mechanism.process(b"").contains("ya29.token"));
        // The second challenge is the server's error report; answering it with the token again
        // would resend the secret for nothing.
        assert_eq!(mechanism.process(b"{\"status\":\"401\"}"), "");
    }

    #[test]
    fn errors_name_the_server_and_say_whether_to_retry() {
        let refused = Error::Connect {
            target: target(),
            cause: io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused"),
        };
        assert!(refused.is_transient());
        assert_eq!(
            refused.to_string(),
            "cannot connect to imap.example.com:993 (user rep@example.com): connection refused"
        );
        let login = Error::Login {
            target: target(),
            reply: "[AUTHENTICATIONFAILED] Authentication failed.".into(),
            transient: false,
        };
        assert!(!login.is_transient());
        let lost = failure_error(
            &target(),
            "search for new mail",
            Failure::Imap(ImapError::ConnectionLost),
            Duration::from_secs(30),
        );
        assert!(lost.is_transient(), "{lost}");
        let timed_out = failure_error(
            &target(),
            "fetch messages",
            Failure::Timeout,
            Duration::from_secs(30),
        );
        assert!(timed_out.is_transient());
        assert!(timed_out.to_string().contains("30s"), "{timed_out}");
        let refused_command = failure_error(
            &target(),
            "open folder \"Nope\"",
            Failure::Imap(ImapError::No("Mailbox doesn't exist: Nope".into())),
            Duration::from_secs(30),
        );
        assert!(!refused_command.is_transient());
        assert!(
            refused_command
                .to_string()
                .contains("Mailbox doesn't exist")
        );
    }

    #[test]
    fn wire_traces_are_compiled_out() {
        // Guards the `log` max_level_debug feature in Cargo.toml: async-imap traces each command
        // line, and LOGIN's holds the password.
        assert!(log::STATIC_MAX_LEVEL < log::LevelFilter::Trace);
    }

    #[tokio::test]
    async fn plain_to_a_remote_host_is_refused_before_connecting() {
        let settings = ImapSettings {
            // A documentation address (RFC 5737): connecting would hang, not fail fast.
            host: "192.0.2.1".into(),
            port: 143,
            security: Security::Plain,
            auth: Auth::Password {
                user: "rep".into(),
                password: Secret::new("hunter2"),
            },
            ca_file: None,
            accept_invalid_certs: false,
            timeout: Duration::from_secs(30),
        };
        let started = std::time::Instant::now();
        let error = Session::connect(&settings).await.unwrap_err();
        assert!(matches!(error, Error::PlainToRemoteHost { .. }), "{error}");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(!error.is_transient());
        assert!(!error.to_string().contains("hunter2"));
    }
}

//! Sending what the rep approved, the same way from the daemon and from `drafts approve`: the
//! configured transport (SMTP or a sendmail command), then the copy filed in Sent and the draft
//! removed, in the Maildir or on the IMAP server the mailbox lives on. With no transport
//! configured, approved drafts are only filed in the local Sent folder and nothing leaves.

use crate::adapters::imap::Session as ImapSession;
use crate::adapters::secret::Auth;
use crate::adapters::smtp::{SendmailTransport, SmtpSettings, Transport, smtp_transport};
use crate::adapters::store::Store;
use crate::app::outbox::{self, Delivery, Recovery, SentFolder};
use crate::config::{Config, MailboxAccess, Outgoing, Server};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use std::time::Duration;

/// How long one connection attempt or server reply may take.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(60);

/// The transport the config names, or `None` for "nothing leaves this machine". Built afresh for
/// every delivery round, with the credentials of that moment: lettre's connection pool keeps the
/// credentials it was built with, so a transport kept across rounds would go on presenting an
/// OAuth2 access token after it was refreshed (and expired).
pub fn transport(config: &Config) -> Result<Option<Box<dyn Transport>>> {
    Ok(match &config.outgoing {
        None => None,
        Some(Outgoing::Sendmail { command, .. }) => {
            Some(Box::new(SendmailTransport::new(command, NETWORK_TIMEOUT)))
        }
        Some(Outgoing::Smtp { server, .. }) => {
            let auth = server
                .login
                .as_ref()
                .map(|login| crate::app::resolve_auth(login, &server.host))
                .transpose()?;
            let settings = smtp_settings(server, auth, NETWORK_TIMEOUT);
            Some(Box::new(smtp_transport(&settings).with_context(|| {
                format!("cannot set up SMTP to {}:{}", server.host, server.port)
            })?))
        }
    })
}

/// SMTP connection settings for a configured server, with the credentials already fetched.
pub fn smtp_settings(server: &Server, auth: Option<Auth>, timeout: Duration) -> SmtpSettings {
    SmtpSettings {
        host: server.host.clone(),
        port: server.port,
        security: server.security,
        auth,
        ca_file: server.tls.ca_file.clone(),
        accept_invalid_certs: server.tls.accept_invalid_certs,
        timeout,
    }
}

/// Whether a copy of each sent message goes to the Sent folder.
fn save_to_sent(config: &Config) -> bool {
    match &config.outgoing {
        Some(Outgoing::Smtp { save_to_sent, .. } | Outgoing::Sendmail { save_to_sent, .. }) => {
            *save_to_sent
        }
        // The local transport's whole job is the Sent copy.
        None => true,
    }
}

/// The IMAP server's Drafts and Sent folders, as the outbox sees them.
pub struct ImapFolders {
    session: ImapSession,
    drafts: String,
    sent: String,
    save_to_sent: bool,
}

impl ImapFolders {
    pub async fn open(config: &Config) -> Result<ImapFolders> {
        let MailboxAccess::Imap(server) = &config.mailbox.access else {
            anyhow::bail!("the mailbox is not on an IMAP server");
        };
        let settings = crate::app::imap_settings_async(server, NETWORK_TIMEOUT).await?;
        let mut session = ImapSession::connect(&settings).await?;
        let folders = session
            .special_folders(&config.mailbox.drafts_folder, &config.mailbox.sent_folder)
            .await?;
        Ok(ImapFolders {
            session,
            drafts: folders.drafts,
            sent: folders.sent,
            save_to_sent: save_to_sent(config),
        })
    }

    /// Replaces the draft with `previous_message_id` by `raw` (an edit made in pushback);
    /// returns the new draft's UID, 0 when the server does not say.
    pub async fn replace_draft(&mut self, previous_message_id: &str, raw: &[u8]) -> Result<u32> {
        let appended = self.session.append(&self.drafts, &["\\Draft"], raw).await?;
        let old = self
            .session
            .find_by_header(&self.drafts, "Message-ID", previous_message_id)
            .await?;
        if !old.is_empty() {
            self.session.delete(&self.drafts, &old).await?;
        }
        Ok(appended.map_or(0, |a| a.uid))
    }

    async fn sent_holds(&mut self, message_id: &str) -> Result<bool> {
        let found = self
            .session
            .find_by_header(&self.sent, "Message-ID", message_id)
            .await?;
        Ok(!found.is_empty())
    }
}

impl SentFolder for ImapFolders {
    fn file_sent<'a>(&'a mut self, _name: &'a str, raw: &'a [u8]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if !self.save_to_sent {
                return Ok(());
            }
            let message_id = crate::core::mail::Mail::parse(raw)
                .ok()
                .and_then(|mail| mail.message_id);
            // Filing twice (a retry after a crash) would show the rep two sent copies.
            if let Some(id) = &message_id
                && self.sent_holds(id).await?
            {
                return Ok(());
            }
            self.session.append(&self.sent, &["\\Seen"], raw).await?;
            Ok(())
        })
    }

    fn remove_draft<'a>(
        &'a mut self,
        _name: &'a str,
        message_id: &'a str,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let uids = self
                .session
                .find_by_header(&self.drafts, "Message-ID", message_id)
                .await?;
            if !uids.is_empty() {
                self.session.delete(&self.drafts, &uids).await?;
            }
            Ok(())
        })
    }

    fn holds_message_id<'a>(&'a mut self, message_id: &'a str) -> BoxFuture<'a, Result<bool>> {
        Box::pin(self.sent_holds(message_id))
    }
}

/// Sends every due approved draft and files it; `recover` first settles sends a crash
/// interrupted (the daemon at start-up). Deliveries sharing a state take turns, so a send in
/// flight in another process is finished, not settled.
pub async fn deliver(
    config: &Config,
    store: &mut Store,
    recover: bool,
    now: DateTime<Utc>,
) -> Result<(Recovery, Delivery)> {
    // Most rounds have nothing to do: no connection, no credential command, no log line then.
    let in_flight = recover && !store.in_flight()?.is_empty();
    let tidy = !store.sent_still_placed()?.is_empty();
    if !in_flight && !tidy && store.outbox_due(now)?.is_empty() {
        return Ok((Recovery::default(), Delivery::default()));
    }
    // The daemon and a `drafts approve` may deliver at once: each claim is atomic, but a send
    // in flight elsewhere looks interrupted to a recovery that does not wait for it.
    let _sending = crate::app::take_turn(store.lock_file("sending")?).await?;
    // Off the async thread: the credentials may come from a command or a token endpoint.
    let transport = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || transport(&config))
            .await
            .context("the SMTP credential fetch panicked")??
    };
    match &config.mailbox.access {
        MailboxAccess::Maildir { path } => {
            let maildir = crate::app::open_maildir(path, config)?;
            deliver_with(store, transport.as_deref(), &mut &maildir, recover, now).await
        }
        // Filing an unsent message in the server's Sent folder would tell the rep's other
        // devices it went out: without a transport, approved drafts wait.
        MailboxAccess::Imap(_) if transport.is_none() => {
            let waiting = store.outbox_due(now)?.len();
            if waiting > 0 {
                tracing::warn!(
                    waiting,
                    "approved drafts are waiting: configure [smtp] to send them"
                );
            }
            Ok((Recovery::default(), Delivery::default()))
        }
        MailboxAccess::Imap(_) => {
            let mut folders = ImapFolders::open(config).await?;
            deliver_with(store, transport.as_deref(), &mut folders, recover, now).await
        }
    }
}

async fn deliver_with(
    store: &mut Store,
    transport: Option<&dyn Transport>,
    folder: &mut dyn SentFolder,
    recover: bool,
    now: DateTime<Utc>,
) -> Result<(Recovery, Delivery)> {
    let recovery = if recover {
        outbox::recover_in_flight(store, folder, now).await?
    } else {
        Recovery::default()
    };
    let delivery = match transport {
        Some(transport) => outbox::deliver_pending(store, transport, folder, now).await?,
        None => outbox::file_locally(store, folder, now).await?,
    };
    outbox::remove_sent_drafts(store, folder).await?;
    Ok((recovery, delivery))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::store::DraftStatus;
    use crate::app::outbox::tests::{approved, at, status};

    /// `drafts approve` in another process claimed the draft and is mid-send when the daemon
    /// starts: its recovery waits for that send instead of calling it interrupted.
    #[tokio::test(start_paused = true)]
    async fn recovery_waits_for_a_send_in_flight_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::demo(&dir.path().join("Mail"), &dir.path().join("state"));
        let maildir = crate::adapters::maildir::Maildir::create(&dir.path().join("Mail")).unwrap();
        let mut store = Store::open_account(&config.state_dir, &config.account).unwrap();
        let id = approved(&mut store, &maildir, "a");
        store.claim_for_sending(id, at(1)).unwrap();
        let elsewhere = store.lock_file("sending").unwrap().unwrap();
        elsewhere.lock().unwrap();

        let daemon_config = config.clone();
        let daemon = tokio::spawn(async move {
            let mut store =
                Store::open_account(&daemon_config.state_dir, &daemon_config.account).unwrap();
            deliver(&daemon_config, &mut store, true, at(2))
                .await
                .unwrap()
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!daemon.is_finished(), "recovery ran during the other send");
        assert_eq!(status(&store, id), DraftStatus::Sending);

        store.mark_sent(id, at(1)).unwrap();
        drop(elsewhere);
        let (recovery, delivery) = daemon.await.unwrap();
        assert_eq!(recovery, Recovery::default());
        assert!(delivery.sent.is_empty());
        assert_eq!(status(&store, id), DraftStatus::Sent);
    }
}

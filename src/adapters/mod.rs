//! Thin adapters between the core and the outside world: the mailbox, the state store, the
//! template files and packs, the mail servers and the secrets that open them, and the rep's
//! calendar.

pub mod calendar;
pub mod imap;
pub mod maildir;
pub mod oauth2;
pub mod pack;
pub mod secret;
pub mod smtp;
pub mod store;
pub mod templates;

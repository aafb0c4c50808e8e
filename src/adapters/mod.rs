//! Thin adapters between the core and the outside world: the mailbox, the state store and the
//! template files.

pub mod maildir;
pub mod store;
pub mod templates;

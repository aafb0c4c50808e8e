//! The pure core: domain types and the decisions made on them. Nothing here touches the network,
//! the file system or the clock; callers pass time and data in and get values back.

pub mod classify;
pub mod draft;
pub mod eval;
pub mod extract;
pub mod followup;
pub mod mail;
pub mod model;
pub mod notice;
pub mod oauth2;
pub mod reply;
pub mod schedule;

//! pushback: recognises procurement-process mail, drafts a polite pushback reply asking for a
//! discovery conversation, and keeps every draft waiting for the rep's approval.

#![deny(unsafe_code, unused_must_use, rust_2018_idioms)]

/// Mailbox, state store and template adapters.
pub mod adapters;
/// Use cases the binary exposes: scan, demo, approval, eval.
pub mod app;
/// Raw TOML config validated into a typed `Config`.
pub mod config;
/// Pure domain logic: parse, classify, extract, draft (no IO, no clock).
pub mod core;
/// What each fuzz target does with one input; shared with the regression tests.
#[doc(hidden)]
pub mod fuzzing;

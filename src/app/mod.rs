//! Use cases behind the binary's commands: each takes validated inputs, wires the core to the
//! adapters, and reports with anyhow.

pub mod eval;

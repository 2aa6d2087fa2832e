//! toggle_spigot, the operator CLI: turn the spigot on or off, show its state, drain the
//! backlog from here, and redrive the DLQ.
//!
//! `main.rs` parses and wires; everything else lives here as plain functions over
//! explicit dependencies ([`ops::Spigot`]: the stage and the webhook buffer), so that
//! tests call them directly.

pub mod age;
pub mod cli;
pub mod commands;
pub mod ops;
pub mod report;
pub mod settings;

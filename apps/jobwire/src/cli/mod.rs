//! The subcommands for people at a terminal.

pub mod token;

//! jcsql: SQL over a JumpCloud directory, joined with the user's other tools.
//!
//! Data flows one way: JumpCloud API → [`jumpcloud::client`] → Arrow snapshots ([`cache`]) →
//! table providers ([`catalog`]) → DataFusion → the front ends ([`cli`]). [`Engine`] is the
//! embeddable entry point.

pub mod actions;
pub mod boards;
pub mod cache;
pub mod catalog;
pub mod engine;
pub mod error;
pub mod jumpcloud;

pub use engine::{Engine, EngineOptions};
pub use error::{JcsqlError, Result};
pub mod cli;
pub mod config;
pub mod hints;
pub mod output;
pub mod progress;
pub mod repl;
pub mod sources;
pub mod workspace;

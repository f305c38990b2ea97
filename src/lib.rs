//! jcsql: SQL over a JumpCloud directory, joined with the user's other tools.
//!
//! Data flows one way: source → fetch ([`jumpcloud`], a [`connection::Connector`]) → Arrow
//! snapshots ([`cache`]) → table providers ([`catalog`]) → DataFusion ([`engine::Engine`]) →
//! the front ends ([`cli`], [`serve`], [`web`]). Layers only point down: nothing outside `cli/`
//! names `crate::cli`, and no front end names another.
//!
//! | layer | modules |
//! |---|---|
//! | front ends | [`cli`] (commands, REPL, statement pipeline, output, progress, workspace commands), [`serve`] (the Postgres wire), [`web`] (the web page); [`listen`] is what the network front ends share (TLS, secrets) |
//! | engine | [`engine`] |
//! | saved views, other tools, actions, watching | [`boards`], [`sources`], [`actions`], [`watch`] |
//! | SQL catalog | [`catalog`], [`explain`] |
//! | refresh policy and cache | [`connection`], [`cache`], [`log_store`] (event logs on disk) |
//! | connectors | [`jumpcloud`], [`google`] (client, table definitions, simulator each), [`http`] (what their clients share) |
//! | vocabulary | [`table`] (table definitions, JSON → Arrow), [`error`] |

pub mod actions;
pub mod boards;
pub mod cache;
pub mod catalog;
pub mod changes;
pub mod cli;
pub mod connection;
pub mod engine;
pub mod error;
pub mod explain;
pub mod google;
pub mod http;
pub mod jumpcloud;
pub mod layout;
pub mod listen;
pub mod log_store;
pub mod serve;
pub mod sources;
pub mod statistics;
pub mod table;
pub mod watch;
pub mod web;

pub use engine::{ConnectionOptions, Engine, EngineOptions};
pub use error::{JcsqlError, Result};

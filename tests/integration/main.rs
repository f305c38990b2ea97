//! The one integration test binary (every file in tests/ would link DataFusion again).

mod actions;
mod audit;
mod boards;
mod cache;
mod changes;
mod cli;
mod clients;
mod common;
mod errors;
mod events;
mod exports;
mod google;
mod google_actions;
mod insights;
mod orgs;
mod recordings;
mod repl;
mod requests;
mod serve;
mod spec;
mod tables;
mod watch;
mod web;
mod webdriver;

//! The Google Workspace connector (DESIGN §3d): users, groups and group members from the
//! Directory API as schema `google`, beside JumpCloud's, through the same connection, cache and
//! refresh policy. Only how a table is fetched lives here.

pub mod auth;
pub mod client;
pub mod simulator;
pub mod tables;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::TimestampMicrosecondType;

use crate::cache::{CachedTable, Snapshot};
use crate::connection::{Connection, Connector, Fetched, Freshness, RefreshSummary, finish_fetch, now_us};
use crate::error::{GoogleError, JcsqlError, Result};
use crate::table::Source;
use crate::table::decode::TablePage;
pub use client::{GoogleClient, GoogleConfig};

pub const SCHEMA: &str = "google";

/// The Google connection (schema `google`), fetching with `client` when there is one.
pub fn connection(client: Option<GoogleClient>, cache_dir: Option<&Path>, f: Freshness) -> Connection {
    let connector = client.map(|client| Arc::new(GoogleConnector { client }) as Arc<dyn Connector>);
    Connection::new(SCHEMA, connector, tables::all_tables(), tables::VIEWS, cache_dir, f)
}

pub struct GoogleConnector {
    pub client: GoogleClient,
}

#[async_trait]
impl Connector for GoogleConnector {
    async fn fetch(
        &self,
        conn: &Connection,
        table: &CachedTable,
        only_parents: Option<&[String]>,
    ) -> Result<(Snapshot, RefreshSummary)> {
        let def = table.def;
        let name = def.name;
        let observer = conn.observer();
        let started = Instant::now();
        let fetched_at_us = now_us();
        let mut fetched = Fetched { pages: Vec::new(), expected: None, bytes: 0, requests: 0 };
        match &def.source {
            Source::List { path } => {
                observer.started(name, None, "rows");
                let decoder = TablePage { def, parent: None, fetched_at_us };
                let listing = self.client.list(path, &[], &|rows| observer.advance(name, rows), &decoder).await?;
                (fetched.pages, fetched.bytes, fetched.requests) = (listing.pages, listing.bytes, listing.requests);
            }
            Source::PerParent { parent, path, query } => {
                let in_flight = self.client.config().max_in_flight.max(1) * 2;
                let listings = conn
                    .per_parent(def, parent, only_parents, in_flight, |id| async move {
                        let url = path.replace("{id}", &id);
                        let decoder = TablePage { def, parent: Some(id.as_str()), fetched_at_us };
                        match self.client.list(&url, query, &|_| {}, &decoder).await {
                            // Deleted between the two listings: it has no members.
                            Err(JcsqlError::Google(GoogleError::Http { status: 404, .. })) => Ok(Default::default()),
                            listed => listed,
                        }
                    })
                    .await?;
                for l in listings {
                    fetched.bytes += l.bytes;
                    fetched.requests += l.requests;
                    fetched.pages.extend(l.pages);
                }
            }
            Source::Log { .. } => return Err(JcsqlError::Config(format!("google.{name} is not an event log"))),
            Source::Insights { .. } => {
                return Err(JcsqlError::Config(format!("google.{name} is not a System Insights table")));
            }
        }
        let (mut snapshot, summary) = finish_fetch(conn, def, fetched, started, fetched_at_us)?;
        snapshot.batches = snapshot.batches.into_iter().map(never_as_null).collect::<Result<_>>()?;
        Ok((snapshot, summary))
    }
}

/// Google reports "never logged in" as 1970-01-01T00:00:00Z; it is NULL here.
fn never_as_null(batch: RecordBatch) -> Result<RecordBatch> {
    let Some(i) = batch.schema().index_of("last_login_time").ok() else { return Ok(batch) };
    let times = batch.column(i).as_primitive::<TimestampMicrosecondType>();
    let never = times.iter().map(|t| Some(t == Some(0))).collect();
    let cleared = datafusion::arrow::compute::nullif(times, &never).map_err(|e| JcsqlError::Cache(e.to_string()))?;
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[i] = cleared;
    RecordBatch::try_new(batch.schema(), columns).map_err(|e| JcsqlError::Cache(e.to_string()))
}

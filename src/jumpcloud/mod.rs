//! The JumpCloud connector: its HTTP client, its table definitions, and how a table is fetched
//! (every page of a list, or one listing per parent for relation tables). When and how often is
//! the generic [`Connection`]'s business; a connection per org is just another value.

pub mod client;
pub mod insights;
pub mod simulator;
pub mod tables;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use serde_json::json;

use crate::cache::{CachedTable, Snapshot};
use crate::connection::{
    Connection, Connector, Fetched, Freshness, LogFilter, LogWindow, RefreshSummary, dedupe_and_merge, finish_fetch,
    now_us,
};
use crate::error::{JcsqlError, Result};
use crate::table::Source;
use crate::table::decode::{PageRows, TablePage};
use client::{JumpCloudClient, Listing};

/// Directory Insights returns at most 10,000 events a page.
pub const EVENTS_PAGE_SIZE: u64 = 10_000;
/// A refresh of events asks again for the last minute it holds (late arrivals), de-duplicated by id.
const EVENTS_OVERLAP_US: i64 = 60_000_000;

/// The schema of the default JumpCloud connection.
pub const DEFAULT_SCHEMA: &str = "jumpcloud";

/// A JumpCloud connection named `name` (its schema), fetching with `client` when there is one.
pub fn connection(name: &str, client: Option<JumpCloudClient>, cache_dir: Option<&Path>, f: Freshness) -> Connection {
    let connector = client.map(|client| Arc::new(JumpCloudConnector { client }) as Arc<dyn Connector>);
    Connection::new(name, connector, tables::all_tables(), tables::VIEWS, cache_dir, f)
}

pub struct JumpCloudConnector {
    pub client: JumpCloudClient,
}

#[async_trait]
impl Connector for JumpCloudConnector {
    /// Every record of `table` (or of the given parents), each page converted to Arrow as soon
    /// as it arrives; rows seen on an earlier page are dropped.
    async fn fetch(
        &self,
        conn: &Connection,
        table: &CachedTable,
        only_parents: Option<&[String]>,
    ) -> Result<(Snapshot, RefreshSummary)> {
        let client = &self.client;
        let def = table.def;
        let observer = conn.observer();
        let start = Instant::now();
        let fetched_at_us = now_us();
        let name = def.name;
        let mut log_window = None;
        let (pages, expected, bytes, requests) = match &def.source {
            Source::Log { path, time_column } => {
                // Only what is newer than the newest event held (a minute of overlap), appended
                // to what is held within the window; the first fetch covers the whole window.
                observer.started(name, None, "rows");
                let window_start = self.window_start_us();
                let (old, _) = table.current();
                let newest = old.meta.as_ref().and_then(|m| m.newest_us);
                let from = newest.map_or(window_start, |n| (n - EVENTS_OVERLAP_US).max(window_start));
                let query = json!({"service": ["all"], "start_time": rfc3339(from), "sort": "ASC"});
                let decoder = TablePage { def, parent: None, fetched_at_us };
                let l = client.query_log(path, &query, EVENTS_PAGE_SIZE, &decoder).await?;
                let mut pages = held_within(time_column, &old.batches, window_start)?;
                pages.extend(l.pages);
                log_window = Some((window_start, *time_column));
                (pages, None, l.bytes, l.requests)
            }
            Source::List { path } => {
                observer.started(name, None, "rows");
                let progress = |rows: u64, total: Option<u64>| {
                    if let Some(t) = total {
                        observer.set_total(name, t);
                    }
                    observer.advance(name, rows);
                };
                let decoder = TablePage { def, parent: None, fetched_at_us };
                let l = client.list(path, &[], &progress, &decoder).await?;
                (l.pages, l.expected, l.bytes, l.requests)
            }
            Source::Insights { path } => {
                observer.started(name, None, "rows");
                let devices = match only_parents {
                    Some(_) => Vec::new(),
                    None => conn.parent_ids(crate::table::INSIGHTS_DEVICE_TABLE, None).await?,
                };
                let l = insights::fetch(
                    client,
                    def,
                    path,
                    &devices,
                    only_parents,
                    client.config().insights_page_size,
                    fetched_at_us,
                    &|rows| observer.advance(name, rows),
                )
                .await?;
                // No count: a table is whole when every page chain ended on a short page.
                (l.pages, None, l.bytes, l.requests)
            }
            Source::PerParent { parent, path, query } => {
                let in_flight = client.config().max_in_flight.max(1) * 2;
                let listings: Vec<Listing<PageRows>> = conn
                    .per_parent(def, parent, only_parents, in_flight, |id| async move {
                        let url = path.replace("{id}", &id);
                        let decoder = TablePage { def, parent: Some(id.as_str()), fetched_at_us };
                        match client.list(&url, query, &|_, _| {}, &decoder).await {
                            // The parent went away (or never existed): it has no children.
                            Err(JcsqlError::Http { status: 404 | 400, .. }) => {
                                Ok(Listing { requests: 1, ..Default::default() })
                            }
                            listed => listed,
                        }
                    })
                    .await?;
                let mut pages = Vec::new();
                let mut expected = Some(0u64);
                let (mut bytes, mut requests) = (0, 0);
                for l in listings {
                    let rows: u64 = l.pages.iter().map(|p| p.keys.len() as u64).sum();
                    expected = expected.map(|e| e + l.expected.unwrap_or(rows));
                    bytes += l.bytes;
                    requests += l.requests;
                    pages.extend(l.pages);
                }
                (pages, expected, bytes, requests)
            }
        };
        let log = log_window.map(|(start, time_column)| LogWindow { start_us: start, time_column });
        finish_fetch(conn, def, Fetched { pages, expected, bytes, requests }, start, fetched_at_us, log)
    }

    async fn fetch_log(&self, conn: &Connection, table: &CachedTable, filter: &LogFilter) -> Result<Vec<RecordBatch>> {
        let Source::Log { path, .. } = &table.def.source else {
            return Err(JcsqlError::Config(format!("{} is not an event log", table.def.name)));
        };
        let from = filter.from_us.unwrap_or_else(|| self.window_start_us());
        // JumpCloud keeps 90 days; asking for more only returns what it has.
        let oldest = now_us() - client::EVENTS_RETENTION.as_micros() as i64;
        let mut query = json!({"service": ["all"], "start_time": rfc3339(from.max(oldest)), "sort": "ASC"});
        if let Some(to) = filter.to_us {
            query["end_time"] = json!(rfc3339(to));
        }
        if let Some(services) = filter.values("service") {
            query["service"] = json!(services);
        }
        if let Some(types) = filter.values("event_type") {
            let term = if types.len() == 1 { json!(types[0]) } else { json!(types) };
            query["search_term"] = json!({"and": [{"event_type": term}]});
        }
        let decoder = TablePage { def: table.def, parent: None, fetched_at_us: now_us() };
        let listing = self.client.query_log(path, &query, EVENTS_PAGE_SIZE, &decoder).await?;
        conn.count_requests(listing.requests);
        dedupe_and_merge(&table.def.schema(), listing.pages)
    }

    fn log_window_start_us(&self) -> Option<i64> {
        Some(self.window_start_us())
    }

    fn secret(&self) -> Option<&str> {
        Some(self.client.config().api_key.expose())
    }
}

impl JumpCloudConnector {
    fn window_start_us(&self) -> i64 {
        now_us() - self.client.config().events_window.as_micros() as i64
    }
}

fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The rows of a held log snapshot still inside the window, as pages keyed like fetched ones so
/// a re-fetched entry (the overlap) is kept once.
fn held_within(time_column: &str, batches: &[RecordBatch], start_us: i64) -> Result<Vec<PageRows>> {
    let fail = |e: &dyn std::fmt::Display| JcsqlError::Cache(e.to_string());
    let mut pages = Vec::with_capacity(batches.len());
    for b in batches {
        let (Some(time), Some(id)) = (b.column_by_name(time_column), b.column_by_name("id")) else { continue };
        let time = time.as_primitive::<TimestampMicrosecondType>();
        let keep: BooleanArray =
            (0..b.num_rows()).map(|i| Some(time.is_valid(i) && time.value(i) >= start_us)).collect();
        let kept = filter_record_batch(b, &keep).map_err(|e| fail(&e))?;
        let ids = datafusion::arrow::compute::filter(id, &keep).map_err(|e| fail(&e))?;
        let ids = ids.as_string::<i32>();
        let keys = (0..ids.len()).map(|i| format!("\u{1f}{}", ids.value(i))).collect();
        pages.push(PageRows { keys, batch: kept });
    }
    Ok(pages)
}

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
use std::sync::atomic::{AtomicU64, Ordering};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::json;

use crate::cache::{CachedTable, Snapshot};
use crate::connection::{
    Connection, Connector, Fetched, Freshness, LogAsk, LogFetched, LogSink, RefreshSummary, finish_fetch, now_us,
};
use crate::error::{JcsqlError, Result};
use crate::log_store::Span;
use crate::table::Source;
use crate::table::decode::{PageRows, TablePage};
use client::{JumpCloudClient, Listing};

/// Directory Insights returns at most 10,000 events a page.
pub const EVENTS_PAGE_SIZE: u64 = 10_000;

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
        let (pages, expected, bytes, requests) = match &def.source {
            Source::Log { .. } => {
                // Held in parts by the connection (`Connection::log_rows`), never as one snapshot.
                return Err(JcsqlError::Config(format!("{name} is an event log: it is filled through fetch_log")));
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
        finish_fetch(conn, def, Fetched { pages, expected, bytes, requests }, start, fetched_at_us)
    }

    async fn fetch_log(
        &self,
        conn: &Connection,
        table: &CachedTable,
        ask: &LogAsk,
        sink: &dyn LogSink,
    ) -> Result<LogFetched> {
        let Source::Log { path, time_column } = &table.def.source else {
            return Err(JcsqlError::Config(format!("{} is not an event log", table.def.name)));
        };
        let events = EventQuery {
            client: &self.client,
            path,
            time_column,
            base: base_query(ask),
            decoder: TablePage { def: table.def, parent: None, fetched_at_us: now_us() },
            sink,
            observer: conn.observer(),
            table: table.def.name,
            rows: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        };
        // JumpCloud keeps 90 days; asking for more only returns what it has.
        let oldest = now_us() - client::EVENTS_RETENTION.as_micros() as i64;
        let spans: Vec<Span> =
            ask.spans.iter().map(|&(from, to)| (from.max(oldest), to)).filter(|(from, to)| from < to).collect();
        match ask.at_most {
            Some(n) => events.first_rows(spans, n).await?,
            None => events.fetch(spans).await?,
        }
        Ok(LogFetched { requests: events.requests.into_inner(), bytes: events.bytes.into_inner() })
    }

    fn log_window_start_us(&self) -> Option<i64> {
        Some(self.window_start_us())
    }

    fn log_held_services(&self) -> Option<Vec<String>> {
        self.client.config().events_services.clone()
    }

    fn log_services(&self) -> Vec<String> {
        EVENT_SERVICES.iter().map(|s| s.to_string()).collect()
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

/// The services Directory Insights knows (the spec's enum, `all` aside).
pub const EVENT_SERVICES: &[&str] = &[
    "access_management",
    "alerts",
    "asset_management",
    "directory",
    "ldap",
    "mdm",
    "notifications",
    "object_storage",
    "password_manager",
    "radius",
    "reports",
    "saas_app_management",
    "software",
    "sso",
    "systems",
];

/// The body every request of `ask` shares: its services and event types.
fn base_query(ask: &LogAsk) -> serde_json::Value {
    let mut query = json!({"service": ask.services.clone().unwrap_or_else(|| vec!["all".to_string()]), "sort": "ASC"});
    if let Some(types) = &ask.event_types {
        let term = if types.len() == 1 { json!(types[0]) } else { json!(types) };
        query["search_term"] = json!({"and": [{"event_type": term}]});
    }
    query
}

/// `start_time`/`end_time` covering `[from, to)` at the API's millisecond precision: rows
/// outside the span are dropped on arrival, so a span's edges are exact whichever of them the
/// API counts in.
fn with_span(base: &serde_json::Value, (from, to): Span) -> serde_json::Value {
    let mut q = base.clone();
    q["start_time"] = json!(rfc3339(from.div_euclid(1000) * 1000));
    q["end_time"] = json!(rfc3339((to + 999).div_euclid(1000) * 1000));
    q
}

/// One fetch of event-log spans: the first page of each span is asked at once; a span with
/// more asks for its counts by time bucket (`/interval`) and is cut into slices of about equal
/// counts, one per request in flight, each its own `search_after` chain.
struct EventQuery<'a> {
    client: &'a JumpCloudClient,
    path: &'a str,
    time_column: &'static str,
    base: serde_json::Value,
    decoder: TablePage<'a>,
    sink: &'a dyn LogSink,
    observer: Arc<dyn crate::connection::SyncObserver>,
    table: &'static str,
    rows: AtomicU64,
    requests: AtomicU64,
    bytes: AtomicU64,
}

/// A span whose first page came full: where that page ended and the page size kept to.
struct Unfinished {
    span: Span,
    /// The time of the first page's last entry: the page is whole before it.
    reached: i64,
    limit: u64,
    next: serde_json::Value,
    /// Every entry of the page has one time (a burst): the chain goes on from its token.
    one_time: bool,
}

impl EventQuery<'_> {
    async fn fetch(&self, spans: Vec<Span>) -> Result<()> {
        let in_flight = self.client.config().max_in_flight.max(1);
        let unfinished: Vec<Option<Unfinished>> =
            stream::iter(spans).map(|span| self.first_page(span)).buffer_unordered(in_flight).try_collect().await?;
        let mut slices: Vec<(Span, Option<serde_json::Value>)> = Vec::new();
        for u in unfinished.into_iter().flatten() {
            if u.one_time {
                slices.push((u.span, Some(u.next)));
                continue;
            }
            for slice in self.plan((u.reached, u.span.1), u.limit, in_flight).await {
                slices.push((slice, None));
            }
        }
        stream::iter(slices)
            .map(|(slice, token)| self.chain(slice, token))
            .buffer_unordered(in_flight)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Any `n` entries of the first spans: one page each until there are enough.
    async fn first_rows(&self, spans: Vec<Span>, n: u64) -> Result<()> {
        let mut left = n;
        for span in spans {
            if left == 0 {
                break;
            }
            let mut body = with_span(&self.base, span);
            body["limit"] = json!(left.min(EVENTS_PAGE_SIZE));
            let page = self.client.query_log_page(self.path, &body, &self.decoder).await?;
            self.count(&page);
            left = left.saturating_sub(page.rows.batch.num_rows() as u64);
            self.deliver(span, page.rows)?;
        }
        Ok(())
    }

    fn count(&self, page: &crate::jumpcloud::client::LogPage<PageRows>) {
        self.requests.fetch_add(page.requests, Ordering::Relaxed);
        self.bytes.fetch_add(page.bytes, Ordering::Relaxed);
    }

    fn deliver(&self, slice: Span, rows: PageRows) -> Result<()> {
        let batch = crate::log_store::rows_within(&rows.batch, self.time_column, slice, &Default::default())?;
        let n = batch.num_rows() as u64;
        self.rows.fetch_add(n, Ordering::Relaxed);
        self.observer.advance(self.table, n);
        self.sink.page(slice, batch)
    }

    /// The first page of `span`: the whole span when it comes short, else what is left.
    async fn first_page(&self, span: Span) -> Result<Option<Unfinished>> {
        let mut body = with_span(&self.base, span);
        body["limit"] = json!(EVENTS_PAGE_SIZE);
        let page = self.client.query_log_page(self.path, &body, &self.decoder).await?;
        self.count(&page);
        let Some(next) = page.next else {
            self.deliver(span, page.rows)?;
            return self.sink.done(span).map(|_| None);
        };
        let times =
            page.rows.batch.column_by_name(self.time_column).map(|c| c.as_primitive::<TimestampMicrosecondType>());
        let (first, last) = match times {
            Some(t) => (datafusion::arrow::compute::min(t), datafusion::arrow::compute::max(t)),
            None => (None, None),
        };
        let (limit, span_from) = (page.limit, span.0);
        match (first, last) {
            (Some(first), Some(last)) if first < last && last > span_from => {
                // Whole before its last time; entries at that time may go on in the next page.
                self.deliver((span_from, last), page.rows)?;
                self.sink.done((span_from, last))?;
                Ok(Some(Unfinished { span, reached: last, limit, next, one_time: false }))
            }
            _ => {
                self.deliver(span, page.rows)?;
                Ok(Some(Unfinished { span, reached: span_from, limit, next, one_time: true }))
            }
        }
    }

    /// `span` cut into slices of about equal counts, from the counts by time bucket; equal
    /// stretches of time when the counts cannot be had.
    async fn plan(&self, span: Span, limit: u64, in_flight: usize) -> Vec<Span> {
        let length = span.1 - span.0;
        let (unit, value) = match length {
            l if l > 4 * DAY_US => ("h", 1),
            l if l > 4 * HOUR_US => ("m", 10),
            _ => ("m", 1),
        };
        let mut body = with_span(&self.base, span);
        body["interval_unit"] = json!(unit);
        body["interval_value"] = json!(value.to_string());
        let buckets = match self.client.query_log_counts(self.path, &body).await {
            Ok((counts, requests)) => {
                self.requests.fetch_add(requests, Ordering::Relaxed);
                counts
            }
            Err(e) => {
                tracing::debug!("no counts by time for {} ({e}); slicing by time", self.table);
                Vec::new()
            }
        };
        let total: u64 = buckets.iter().map(|b| b.1).sum();
        if buckets.is_empty() || total == 0 {
            let n = in_flight as i64;
            return (0..n).map(|i| (span.0 + length * i / n, span.0 + length * (i + 1) / n)).collect();
        }
        self.observer.set_total(self.table, self.rows.load(Ordering::Relaxed) + total);
        let pages = total.div_ceil(limit.max(1));
        let slices = pages.min(in_flight as u64).max(1);
        let per_slice = total.div_ceil(slices);
        let mut cuts = vec![span.0];
        let mut count = 0;
        for &(start_ms, n) in &buckets {
            let start = start_ms * 1000;
            if count >= per_slice * cuts.len() as u64 && start > *cuts.last().unwrap_or(&span.0) && start < span.1 {
                cuts.push(start);
            }
            count += n;
        }
        cuts.push(span.1);
        cuts.windows(2).map(|w| (w[0], w[1])).filter(|(a, b)| a < b).collect()
    }

    /// Every page of `slice` (from `token` when a chain goes on), then the slice is done.
    async fn chain(&self, slice: Span, mut token: Option<serde_json::Value>) -> Result<()> {
        let mut body = with_span(&self.base, slice);
        body["limit"] = json!(EVENTS_PAGE_SIZE);
        loop {
            if let Some(t) = token.take() {
                body["search_after"] = t;
            }
            let page = self.client.query_log_page(self.path, &body, &self.decoder).await?;
            self.count(&page);
            let next = page.next;
            self.deliver(slice, page.rows)?;
            match next {
                Some(t) => token = Some(t),
                None => return self.sink.done(slice),
            }
        }
    }
}

const HOUR_US: i64 = 3_600_000_000;
const DAY_US: i64 = 24 * HOUR_US;

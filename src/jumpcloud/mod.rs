//! A JumpCloud connection: its client, its cached tables and its freshness policy, passed
//! around as a value (never a global) so a later release can hold one per org.

pub mod client;
pub mod decode;
pub mod simulator;
pub mod tables;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use futures::{StreamExt, TryStreamExt, stream};

use crate::cache::{CachedTable, Snapshot, SnapshotMeta, schema_fingerprint};
use crate::error::{JcsqlError, Result};
use client::{JumpCloudClient, Listing};
use decode::{PageRows, TablePage};
use tables::Source;

pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// How old a snapshot may be before a query refreshes it, and whether fetching is allowed.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    pub max_age: Duration,
    pub offline: bool,
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness { max_age: DEFAULT_MAX_AGE, offline: false }
    }
}

/// Receives fetch progress; the CLI draws progress bars, an embedding program may log.
pub trait SyncObserver: Send + Sync {
    /// A fetch starts; `total` is the expected amount of `unit` when known.
    fn started(&self, _table: &str, _total: Option<u64>, _unit: &str) {}
    fn set_total(&self, _table: &str, _total: u64) {}
    fn advance(&self, _table: &str, _n: u64) {}
    fn finished(&self, _table: &str, _outcome: std::result::Result<&RefreshSummary, &JcsqlError>) {}
    /// Something the user should know (stale data served, a snapshot file discarded).
    fn warning(&self, _message: &str) {}
}

/// Reports nothing; the default for embedded use.
pub struct SilentObserver;
impl SyncObserver for SilentObserver {}

#[derive(Debug, Clone)]
pub struct RefreshSummary {
    pub table: String,
    pub rows: u64,
    pub expected_rows: Option<u64>,
    pub requests: u64,
    pub duration: Duration,
    pub bytes_received: u64,
}

pub struct Connection {
    /// The connection's name (`jumpcloud`) and the SQL schema its tables live in.
    pub name: String,
    pub schema_name: String,
    client: Option<JumpCloudClient>,
    tables: Vec<Arc<CachedTable>>,
    freshness: RwLock<Freshness>,
    observer: RwLock<Arc<dyn SyncObserver>>,
    /// Requests made by fetches, for `.timer` and tests.
    requests: AtomicU64,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("name", &self.name).finish()
    }
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl Connection {
    /// `client` is `None` when no key is configured: cached snapshots still answer.
    pub fn new(name: &str, client: Option<JumpCloudClient>, cache_dir: Option<&Path>, freshness: Freshness) -> Self {
        let tables = tables::all_tables().iter().map(|def| Arc::new(CachedTable::new(def, cache_dir))).collect();
        Connection {
            name: name.to_string(),
            schema_name: name.to_string(),
            client,
            tables,
            freshness: RwLock::new(freshness),
            observer: RwLock::new(Arc::new(SilentObserver)),
            requests: AtomicU64::new(0),
        }
    }

    pub fn client(&self) -> Option<&JumpCloudClient> {
        self.client.as_ref()
    }

    pub fn tables(&self) -> &[Arc<CachedTable>] {
        &self.tables
    }

    pub fn table(&self, name: &str) -> Result<&Arc<CachedTable>> {
        let short = name.strip_prefix(&format!("{}.", self.schema_name)).unwrap_or(name);
        self.tables.iter().find(|t| t.def.name == short).ok_or_else(|| JcsqlError::UnknownTable {
            name: name.to_string(),
            known: self.tables.iter().map(|t| t.def.name).collect::<Vec<_>>().join(", "),
        })
    }

    pub fn freshness(&self) -> Freshness {
        self.freshness.read().map(|f| *f).unwrap_or_default()
    }

    pub fn set_freshness(&self, f: Freshness) {
        if let Ok(mut w) = self.freshness.write() {
            *w = f;
        }
    }

    pub fn set_observer(&self, observer: Arc<dyn SyncObserver>) {
        if let Ok(mut w) = self.observer.write() {
            *w = observer;
        }
    }

    fn observer(&self) -> Arc<dyn SyncObserver> {
        self.observer.read().map(|o| o.clone()).unwrap_or_else(|_| Arc::new(SilentObserver))
    }

    pub fn requests_made(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn is_fresh(&self, snap: &Snapshot) -> bool {
        let max_age = self.freshness().max_age;
        snap.age_seconds(now_us()).is_some_and(|age| age < max_age.as_secs_f64())
    }

    fn current(&self, table: &CachedTable) -> Arc<Snapshot> {
        let (snap, warning) = table.current();
        if let Some(w) = warning {
            self.observer().warning(&w);
        }
        snap
    }

    /// The snapshot a query should read: the cached one while fresh, else refreshed first.
    /// A failed refresh answers from the previous snapshot with a warning naming its age.
    pub async fn snapshot_for_query(&self, table: &CachedTable) -> Result<Arc<Snapshot>> {
        let snap = self.current(table);
        if self.is_fresh(&snap) || (snap.meta.is_some() && (self.freshness().offline || self.client.is_none())) {
            return Ok(snap);
        }
        if self.freshness().offline {
            return Err(JcsqlError::OfflineNoData { table: table.def.name.to_string() });
        }
        if self.client.is_none() {
            return Err(JcsqlError::NotConnected);
        }
        let _guard = table.refresh_lock.lock().await;
        // Another query may have refreshed it while this one waited for the lock.
        let snap = self.current(table);
        if self.is_fresh(&snap) {
            return Ok(snap);
        }
        match self.fetch_and_store(table).await {
            Ok(_) => Ok(self.current(table)),
            Err(e) if snap.meta.is_some() => {
                let age = snap.age_seconds(now_us()).unwrap_or_default();
                self.observer().warning(&format!(
                    "{}.{}: refresh failed ({e}); answering from the snapshot fetched {} ago",
                    self.schema_name,
                    table.def.name,
                    human_age(age)
                ));
                Ok(snap)
            }
            Err(e) => Err(e),
        }
    }

    /// Fetches a table now (`jcsql sync`, `.refresh`), whatever its age.
    pub async fn refresh(&self, table: &CachedTable) -> Result<RefreshSummary> {
        if self.client.is_none() {
            return Err(JcsqlError::NotConnected);
        }
        let _guard = table.refresh_lock.lock().await;
        self.fetch_and_store(table).await
    }

    async fn fetch_and_store(&self, table: &CachedTable) -> Result<RefreshSummary> {
        let observer = self.observer();
        let result = self.fetch(table, None).await;
        let result = match result {
            Ok((snapshot, summary)) => table.replace(snapshot).map(|_| summary),
            Err(e) => Err(e),
        };
        match &result {
            Ok(s) => observer.finished(table.def.name, Ok(s)),
            Err(e) => {
                table.set_error(Some(e.to_string()));
                observer.finished(table.def.name, Err(e));
            }
        }
        result
    }

    /// Rows of a relation table for the given parents only: from the snapshot while it is fresh,
    /// else one listing per parent (not cached, since it is not the whole table).
    pub async fn rows_for_parents(&self, table: &CachedTable, parents: &[String]) -> Result<Vec<RecordBatch>> {
        let snap = self.current(table);
        if self.is_fresh(&snap) || (snap.meta.is_some() && (self.freshness().offline || self.client.is_none())) {
            return Ok(snap.batches.clone());
        }
        if self.freshness().offline {
            return Err(JcsqlError::OfflineNoData { table: table.def.name.to_string() });
        }
        if self.client.is_none() {
            return Err(JcsqlError::NotConnected);
        }
        let (snapshot, _) = self.fetch(table, Some(parents)).await?;
        Ok(snapshot.batches)
    }

    /// Fetches every record of `table` (or of the given parents) and builds its snapshot. Each
    /// page becomes Arrow as soon as it arrives; rows seen on an earlier page are dropped.
    async fn fetch(&self, table: &CachedTable, only_parents: Option<&[String]>) -> Result<(Snapshot, RefreshSummary)> {
        let client = self.client.as_ref().ok_or(JcsqlError::NotConnected)?;
        let def = table.def;
        let observer = self.observer();
        let start = Instant::now();
        let fetched_at_us = now_us();
        let name = def.name;
        let (pages, expected, bytes, requests) = match &def.source {
            Source::V1List { path } | Source::V2List { path } => {
                observer.started(name, None, "rows");
                let progress = |rows: u64, total: Option<u64>| {
                    if let Some(t) = total {
                        observer.set_total(name, t);
                    }
                    observer.advance(name, rows);
                };
                let decoder = TablePage { def, parent: None, fetched_at_us };
                let l = match &def.source {
                    Source::V1List { .. } => client.list_v1(path, &progress, &decoder).await?,
                    _ => client.list_v2(path, &[], &progress, &decoder).await?,
                };
                (l.pages, l.expected, l.bytes, l.requests)
            }
            Source::PerParent { parent, path, query } => {
                let parent_ids = match only_parents {
                    Some(ids) => ids.to_vec(),
                    None => {
                        let parent_table = self.table(parent)?.clone();
                        let parent_snap = Box::pin(self.snapshot_for_query(&parent_table)).await?;
                        ids_of(&parent_snap.batches)
                    }
                };
                observer.started(name, Some(parent_ids.len() as u64), "parents");
                let listings: Vec<Listing<PageRows>> = stream::iter(parent_ids)
                    .map(|id| {
                        let url = path.replace("{id}", &id);
                        let observer = observer.clone();
                        async move {
                            let decoder = TablePage { def, parent: Some(id.as_str()), fetched_at_us };
                            let l = match client.list_v2(&url, query, &|_, _| {}, &decoder).await {
                                Ok(l) => l,
                                // The parent went away (or never existed): it has no children.
                                Err(JcsqlError::Http { status: 404 | 400, .. }) => {
                                    Listing { requests: 1, ..Default::default() }
                                }
                                Err(e) => return Err(e),
                            };
                            observer.advance(name, 1);
                            Ok::<_, JcsqlError>(l)
                        }
                    })
                    .buffer_unordered(client.config().max_in_flight.max(1) * 2)
                    .try_collect()
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
        self.requests.fetch_add(requests, Ordering::Relaxed);
        let batches = dedupe_and_merge(&def.schema(), pages)?;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        if let Some(expected) = expected.filter(|e| rows < *e) {
            return Err(JcsqlError::Incomplete { table: format!("{}.{}", self.schema_name, name), rows, expected });
        }
        let duration = start.elapsed();
        let meta = SnapshotMeta {
            fetched_at_us,
            rows,
            expected_rows: expected,
            requests,
            duration_ms: duration.as_millis() as u64,
            bytes_received: bytes,
            schema_fingerprint: schema_fingerprint(&def.schema()),
        };
        let summary = RefreshSummary {
            table: name.to_string(),
            rows,
            expected_rows: expected,
            requests,
            duration,
            bytes_received: bytes,
        };
        Ok((Snapshot { batches, meta: Some(meta) }, summary))
    }

    /// Fetches the given tables (all when empty), parents before the relations that need them.
    pub async fn sync(&self, names: &[String]) -> Vec<(String, Result<RefreshSummary>)> {
        let wanted: Vec<Arc<CachedTable>> = if names.is_empty() {
            self.tables.clone()
        } else {
            let mut v = Vec::new();
            for n in names {
                match self.table(n) {
                    Ok(t) => v.push(t.clone()),
                    Err(e) => return vec![(n.clone(), Err(e))],
                }
            }
            v
        };
        // Every table at once: the limiter bounds the requests in flight, and a relation table
        // waits on its parent's refresh lock, so it starts as soon as its parent has landed.
        futures::future::join_all(wanted.iter().map(|t| async move { (t.def.name.to_string(), self.refresh(t).await) }))
            .await
    }
}

pub fn human_age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// The `id` column of a parent snapshot.
fn ids_of(batches: &[RecordBatch]) -> Vec<String> {
    let mut ids = Vec::new();
    for b in batches {
        if let Some(col) = b.column_by_name("id").and_then(|c| c.as_any().downcast_ref::<StringArray>()) {
            ids.extend((0..col.len()).filter(|i| col.is_valid(*i)).map(|i| col.value(i).to_string()));
        }
    }
    ids
}

const BATCH_ROWS: usize = 8192;

/// Drops rows seen on an earlier page (a record can move between pages while paging) and merges
/// the small page batches into batches of about [`BATCH_ROWS`].
fn dedupe_and_merge(schema: &SchemaRef, pages: Vec<PageRows>) -> Result<Vec<RecordBatch>> {
    let fail = |e: datafusion::arrow::error::ArrowError| JcsqlError::Cache(e.to_string());
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0;
    for page in pages {
        let keep: Vec<bool> = page.keys.into_iter().map(|k| seen.insert(k)).collect();
        let batch = if keep.iter().all(|k| *k) {
            page.batch
        } else {
            filter_record_batch(&page.batch, &BooleanArray::from(keep)).map_err(fail)?
        };
        pending_rows += batch.num_rows();
        pending.push(batch);
        if pending_rows >= BATCH_ROWS {
            out.push(concat_batches(schema, &pending).map_err(fail)?);
            pending.clear();
            pending_rows = 0;
        }
    }
    if pending_rows > 0 {
        out.push(concat_batches(schema, &pending).map_err(fail)?);
    }
    Ok(out)
}

/// Where a connection's snapshots live under `$JCSQL_HOME`.
pub fn cache_dir(home: &Path, connection: &str) -> PathBuf {
    home.join("cache").join(connection)
}

/// Rows per table, keyed by table name (used by `jcsql.tables` and the summary).
pub fn row_counts(conn: &Connection) -> HashMap<String, u64> {
    conn.tables()
        .iter()
        .map(|t| (t.def.name.to_string(), t.current().0.meta.as_ref().map(|m| m.rows).unwrap_or(0)))
        .collect()
}

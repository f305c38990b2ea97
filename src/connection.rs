//! A connection is a value: a name (its SQL schema), the tables it serves, a connector that
//! fetches them (its client and limiter), a cache folder and a freshness policy. The refresh
//! policy lives here, once, for every connector: fresh snapshots answer; a stale one is
//! refreshed by the first query that needs it while the others wait on it (single flight); a
//! failed refresh answers from the previous snapshot with a warning naming its age; offline
//! and not-connected answer from the cache or say what to do.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{concat_batches, filter_record_batch};
use datafusion::arrow::datatypes::SchemaRef;

use crate::cache::{CachedTable, Snapshot, SnapshotMeta, schema_fingerprint};
use crate::error::{JcsqlError, Result};
use crate::log_store::{FillFacts, LogStore, PartWriter, Span, add_span, gaps};
use crate::table::decode::PageRows;
use crate::table::{TableDef, ViewDef};

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
    /// What changed since the previous snapshot (`None` for the first one).
    pub changes: Option<crate::changes::ChangeCounts>,
    pub rows: u64,
    pub expected_rows: Option<u64>,
    pub requests: u64,
    pub duration: Duration,
    pub bytes_received: u64,
}

/// What a connector does: fetch one table (or, for a relation table, only the given parents'
/// rows) into a snapshot. Everything around it (when, how often, what on failure) is the
/// connection's.
#[async_trait]
pub trait Connector: Send + Sync {
    async fn fetch(
        &self,
        conn: &Connection,
        table: &CachedTable,
        only_parents: Option<&[String]>,
    ) -> Result<(Snapshot, RefreshSummary)>;

    /// Entries of an event log (`Source::Log`) in the spans of `ask`, with its services and
    /// types in the requests; each page reaches `sink` as it lands, and each slice of time is
    /// reported done once every entry of it has come.
    async fn fetch_log(
        &self,
        _conn: &Connection,
        table: &CachedTable,
        _ask: &LogAsk,
        _sink: &dyn LogSink,
    ) -> Result<LogFetched> {
        Err(JcsqlError::Config(format!("{} is not an event log", table.def.name)))
    }

    /// The start of the time window an event log's store covers (now minus the window).
    fn log_window_start_us(&self) -> Option<i64> {
        None
    }

    /// The services an event log's store holds (`None`: all); the others are fetched when a
    /// query asks for them.
    fn log_held_services(&self) -> Option<Vec<String>> {
        None
    }

    /// Every service the log knows, for asking for those not held.
    fn log_services(&self) -> Vec<String> {
        Vec::new()
    }

    /// The secret the connector holds (an API key), so front ends can keep it out of history.
    fn secret(&self) -> Option<&str> {
        None
    }
}

/// What a query asks of an event log: a time range and equalities on text columns (`IN`
/// lists hold several values). The connector puts what its API understands into the request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogFilter {
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
    pub equals: Vec<(String, Vec<String>)>,
}

impl LogFilter {
    pub fn values(&self, column: &str) -> Option<&[String]> {
        self.equals.iter().find(|(c, _)| c == column).map(|(_, v)| v.as_slice())
    }
}

/// What to fetch of an event log: spans of time (each `[from, to)`), and the services and
/// event types to ask for (`None`: all).
#[derive(Debug, Clone, Default)]
pub struct LogAsk {
    pub spans: Vec<Span>,
    pub services: Option<Vec<String>>,
    pub event_types: Option<Vec<String>>,
    /// Any this many entries will do (a `LIMIT` with nothing else): one page, not every slice.
    pub at_most: Option<u64>,
}

/// Where fetched log entries go: the store, or one query's answer.
pub trait LogSink: Send + Sync {
    /// Entries of `slice` (only ones inside it), a page at a time.
    fn page(&self, slice: Span, batch: RecordBatch) -> Result<()>;
    /// Every entry of `slice` has come.
    fn done(&self, slice: Span) -> Result<()>;
}

/// What fetching log entries cost.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFetched {
    pub requests: u64,
    pub bytes: u64,
}

/// What a query reads of an event log: held parts on disk (from `floor_us` on: the part at the
/// window's old end also holds older entries) and entries fetched for it alone.
#[derive(Debug, Default)]
pub struct LogRows {
    pub files: Vec<PathBuf>,
    pub floor_us: Option<i64>,
    pub fetched: Vec<RecordBatch>,
}

impl LogRows {
    /// The held parts with entries between `from_us` and `to_us`, and their floor.
    fn held(store: &LogStore, from_us: i64, to_us: i64) -> Self {
        LogRows {
            files: store.files_between(from_us, to_us),
            floor_us: store.floor_between(from_us, to_us),
            fetched: Vec::new(),
        }
    }
}

/// A refresh asks again for the last minute it holds (late arrivals), keeping new ids only.
pub const LOG_OVERLAP_US: i64 = 60_000_000;

/// Fetched entries written into the store: a part per page, named by the manifest (with the
/// slice marked held) once the slice is whole.
struct StoreSink<'a> {
    store: &'a LogStore,
    /// Ids already held in the re-asked minute.
    skip: HashSet<String>,
    /// Each slice's parts, streamed as its pages come (a slice's pages come in order).
    writers: std::sync::Mutex<std::collections::HashMap<Span, Arc<std::sync::Mutex<PartWriter<'a>>>>>,
    facts: FillFacts,
}

impl StoreSink<'_> {
    fn lock_failed() -> JcsqlError {
        JcsqlError::Cache("a part writer's lock was poisoned".into())
    }
}

impl LogSink for StoreSink<'_> {
    fn page(&self, slice: Span, batch: RecordBatch) -> Result<()> {
        // The batch is inside its slice already; only the re-asked minute's held ids go.
        let batch = match self.skip.is_empty() {
            true => batch,
            false => crate::log_store::rows_within(&batch, self.store.time_column(), slice, &self.skip)?,
        };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let writer = {
            let mut writers = self.writers.lock().map_err(|_| Self::lock_failed())?;
            writers.entry(slice).or_insert_with(|| Arc::new(std::sync::Mutex::new(self.store.part_writer()))).clone()
        };
        writer.lock().map_err(|_| Self::lock_failed())?.write(&batch)
    }

    fn done(&self, slice: Span) -> Result<()> {
        let writer = self.writers.lock().map_err(|_| Self::lock_failed())?.remove(&slice);
        let parts = match writer.and_then(|w| Arc::try_unwrap(w).ok()) {
            Some(w) => w.into_inner().map_err(|_| Self::lock_failed())?.finish()?,
            None => Vec::new(),
        };
        self.store.commit(parts, slice, self.facts)
    }
}

/// Fetched entries kept for one query's answer.
#[derive(Default)]
struct CollectSink {
    batches: std::sync::Mutex<Vec<RecordBatch>>,
}

impl LogSink for CollectSink {
    fn page(&self, _slice: Span, batch: RecordBatch) -> Result<()> {
        if let Ok(mut b) = self.batches.lock() {
            b.push(batch);
        }
        Ok(())
    }

    fn done(&self, _slice: Span) -> Result<()> {
        Ok(())
    }
}

pub struct Connection {
    /// The connection's name, which is also the SQL schema its tables live in.
    pub name: String,
    connector: Option<Arc<dyn Connector>>,
    tables: Vec<Arc<CachedTable>>,
    pub views: &'static [ViewDef],
    pub definitions: &'static [TableDef],
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

/// What a connector fetched for a table, before it becomes a snapshot.
pub struct Fetched {
    pub pages: Vec<PageRows>,
    /// The server's count, when it sent one (a fetch with fewer rows is incomplete).
    pub expected: Option<u64>,
    pub bytes: u64,
    pub requests: u64,
}

/// Pages → one de-duplicated snapshot with its metadata and the refresh summary; a fetch with
/// fewer rows than the server counted is refused, so the previous snapshot stays.
pub fn finish_fetch(
    conn: &Connection,
    def: &TableDef,
    fetched: Fetched,
    started: std::time::Instant,
    fetched_at_us: i64,
) -> Result<(Snapshot, RefreshSummary)> {
    let Fetched { pages, expected, bytes, requests } = fetched;
    let batches = dedupe_and_merge(&def.schema(), pages)?;
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    conn.observer().advance(def.name, 0);
    if let Some(expected) = expected.filter(|e| rows < *e) {
        return Err(JcsqlError::Incomplete { table: format!("{}.{}", conn.name, def.name), rows, expected });
    }
    let duration = started.elapsed();
    let meta = SnapshotMeta {
        fetched_at_us,
        rows,
        expected_rows: expected,
        requests,
        duration_ms: duration.as_millis() as u64,
        bytes_received: bytes,
        schema_fingerprint: schema_fingerprint(&def.schema()),
        covers_from_us: None,
        newest_us: None,
    };
    let summary = RefreshSummary {
        table: def.name.to_string(),
        changes: None,
        rows,
        expected_rows: expected,
        requests,
        duration,
        bytes_received: bytes,
    };
    Ok((Snapshot::new(batches, meta), summary))
}

pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Where a connection's snapshots live under `$JCSQL_HOME`.
pub fn cache_dir(home: &Path, connection: &str) -> PathBuf {
    home.join("cache").join(connection)
}

impl Connection {
    /// `connector` is `None` when no credentials are configured: cached snapshots still answer.
    pub fn new(
        name: &str,
        connector: Option<Arc<dyn Connector>>,
        definitions: &'static [TableDef],
        views: &'static [ViewDef],
        cache_dir: Option<&Path>,
        freshness: Freshness,
    ) -> Self {
        let tables = definitions.iter().map(|def| Arc::new(CachedTable::new(def, cache_dir))).collect();
        Connection {
            name: name.to_string(),
            connector,
            tables,
            views,
            definitions,
            freshness: RwLock::new(freshness),
            observer: RwLock::new(Arc::new(SilentObserver)),
            requests: AtomicU64::new(0),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connector.is_some()
    }

    pub fn secret(&self) -> Option<&str> {
        self.connector.as_deref().and_then(|c| c.secret())
    }

    pub fn tables(&self) -> &[Arc<CachedTable>] {
        &self.tables
    }

    /// A table by name (`users`, or qualified with this connection's schema).
    pub fn table(&self, name: &str) -> Result<&Arc<CachedTable>> {
        let short = name.strip_prefix(&format!("{}.", self.name)).unwrap_or(name);
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

    pub fn observer(&self) -> Arc<dyn SyncObserver> {
        self.observer.read().map(|o| o.clone()).unwrap_or_else(|_| Arc::new(SilentObserver))
    }

    pub fn requests_made(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The parents a relation table is fetched for: the given ones, or every id in the parent
    /// table's snapshot (refreshed first when stale).
    pub async fn parent_ids(&self, parent: &str, only: Option<&[String]>) -> Result<Vec<String>> {
        if let Some(ids) = only {
            return Ok(ids.to_vec());
        }
        let parent_table = self.table(parent)?.clone();
        let parent_snap = Box::pin(self.snapshot_for_query(&parent_table)).await?;
        Ok(ids_of(&parent_snap.batches))
    }

    /// One listing per parent of the relation table `def` (the given parents, or every row of
    /// `parent`), `in_flight` at once, each counted on the progress bar as it completes.
    pub async fn per_parent<T, F, Fut>(
        &self,
        def: &TableDef,
        parent: &str,
        only: Option<&[String]>,
        in_flight: usize,
        list: F,
    ) -> Result<Vec<T>>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        use futures::{StreamExt, TryStreamExt};
        let ids = self.parent_ids(parent, only).await?;
        let observer = self.observer();
        observer.started(def.name, Some(ids.len() as u64), "parents");
        futures::stream::iter(ids)
            .map(|id| {
                let (listed, observer) = (list(id), observer.clone());
                async move {
                    let listing = listed.await?;
                    observer.advance(def.name, 1);
                    Ok(listing)
                }
            })
            .buffer_unordered(in_flight.max(1))
            .try_collect()
            .await
    }

    /// How long `table`'s snapshots stay fresh: the connection's freshness, or the table's own
    /// when shorter (event logs).
    pub fn max_age(&self, table: &CachedTable) -> Duration {
        let max_age = self.freshness().max_age;
        table.def.max_age.map_or(max_age, |own| own.min(max_age))
    }

    fn is_fresh(&self, table: &CachedTable, snap: &Snapshot) -> bool {
        self.is_young(table, snap.age_seconds(now_us()))
    }

    /// Whether a snapshot `age` seconds old is still fresh for `table` (`None`: never fetched).
    pub fn is_young(&self, table: &CachedTable, age: Option<f64>) -> bool {
        age.is_some_and(|age| age < self.max_age(table).as_secs_f64())
    }

    fn current(&self, table: &CachedTable) -> Arc<Snapshot> {
        let (snap, warning) = table.current();
        if let Some(w) = warning {
            self.observer().warning(&w);
        }
        snap
    }

    /// The cached snapshot when it may answer without a fetch: fresh, or held while fetching is
    /// impossible (offline, not connected). `Err` when it must not be fetched and is not held.
    fn cached_answer(&self, table: &CachedTable) -> Result<Option<Arc<Snapshot>>> {
        let snap = self.current(table);
        let cannot_fetch = self.freshness().offline || self.connector.is_none();
        if self.is_fresh(table, &snap) || (snap.meta.is_some() && cannot_fetch) {
            return Ok(Some(snap));
        }
        if self.freshness().offline {
            return Err(JcsqlError::OfflineNoData { table: table.def.name.to_string() });
        }
        if self.connector.is_none() {
            return Err(JcsqlError::NotConnected);
        }
        Ok(None)
    }

    /// The snapshot a query should read: the cached one while fresh, else refreshed first.
    /// A failed refresh answers from the previous snapshot with a warning naming its age.
    pub async fn snapshot_for_query(&self, table: &CachedTable) -> Result<Arc<Snapshot>> {
        if let Some(snap) = self.cached_answer(table)? {
            return Ok(snap);
        }
        let _guard = table.refresh_lock.lock().await;
        // Another query may have refreshed it while this one waited for the lock.
        let snap = self.current(table);
        if self.is_fresh(table, &snap) {
            return Ok(snap);
        }
        match self.fetch_and_store(table).await {
            Ok(_) => Ok(self.current(table)),
            Err(e) if snap.meta.is_some() => {
                let age = snap.age_seconds(now_us()).unwrap_or_default();
                self.observer().warning(&format!(
                    "{}.{}: refresh failed ({e}); answering from the snapshot fetched {} ago",
                    self.name,
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
        if self.connector.is_none() {
            return Err(JcsqlError::NotConnected);
        }
        let _guard = table.refresh_lock.lock().await;
        self.fetch_and_store(table).await
    }

    async fn fetch_and_store(&self, table: &CachedTable) -> Result<RefreshSummary> {
        if table.log.is_some() {
            return self.fill_window(table).await;
        }
        let connector = self.connector.as_ref().ok_or(JcsqlError::NotConnected)?;
        let observer = self.observer();
        let result = match connector.fetch(self, table, None).await {
            Ok((snapshot, summary)) => {
                self.requests.fetch_add(summary.requests, Ordering::Relaxed);
                table.replace(snapshot).map(|changes| RefreshSummary { changes, ..summary })
            }
            Err(e) => Err(e),
        };
        self.report(table, &observer, result)
    }

    /// A refresh's outcome, in `jcsql.tables` and to the observer.
    fn report(
        &self,
        table: &CachedTable,
        observer: &Arc<dyn SyncObserver>,
        result: Result<RefreshSummary>,
    ) -> Result<RefreshSummary> {
        match &result {
            Ok(s) => {
                table.set_error(None);
                observer.finished(table.def.name, Ok(s));
            }
            Err(e) => {
                table.set_error(Some(e.to_string()));
                observer.finished(table.def.name, Err(e));
            }
        }
        result
    }

    /// Rows of a relation table for the given parents only: from the snapshot while it may
    /// answer, else fetched for those parents (not cached, since it is not the whole table).
    pub async fn rows_for_parents(&self, table: &CachedTable, parents: &[String]) -> Result<Vec<RecordBatch>> {
        if let Some(snap) = self.cached_answer(table)? {
            return Ok(snap.batches.clone());
        }
        let connector = self.connector.as_ref().ok_or(JcsqlError::NotConnected)?;
        let (snapshot, summary) = connector.fetch(self, table, Some(parents)).await?;
        self.requests.fetch_add(summary.requests, Ordering::Relaxed);
        Ok(snapshot.batches)
    }

    /// What a query reads of an event log. Held spans answer from disk; the tail after the
    /// newest held span is refreshed into the store once stale; other spans not held are filled
    /// into the store when the query asks for every entry of them, or fetched for this query
    /// alone (with its services and types in the request) when it narrows them. Services the
    /// store does not hold (`events_services`) are always fetched for the query. A bare
    /// `LIMIT n` (`at_most`, no filter) takes any n entries: held ones, or one page fetched.
    pub async fn log_rows(&self, table: &CachedTable, filter: &LogFilter, at_most: Option<usize>) -> Result<LogRows> {
        let store =
            table.log.as_ref().ok_or_else(|| JcsqlError::Config(format!("{} is not an event log", table.def.name)))?;
        let (meta, warning) = store.meta();
        if let Some(w) = warning {
            self.observer().warning(&w);
        }
        let now = now_us();
        let connector = match &self.connector {
            Some(c) if !self.freshness().offline => c.clone(),
            _ if meta.is_some() => {
                return Ok(LogRows::held(store, filter.from_us.unwrap_or(i64::MIN), filter.to_us.unwrap_or(i64::MAX)));
            }
            _ if self.freshness().offline => {
                return Err(JcsqlError::OfflineNoData { table: table.def.name.to_string() });
            }
            _ => return Err(JcsqlError::NotConnected),
        };
        let window_start = connector.log_window_start_us().unwrap_or(now);
        let held_services = connector.log_held_services();
        let asked = filter.values("service").map(<[String]>::to_vec);
        let types = filter.values("event_type").map(<[String]>::to_vec);
        let from = filter.from_us.unwrap_or(window_start);
        let to = filter.to_us.map_or(now, |t| t.saturating_add(1).min(now));
        let mut rows = LogRows::default();
        if from >= to {
            return Ok(rows);
        }
        if let Some(n) = at_most.filter(|_| *filter == LogFilter::default()) {
            if meta.as_ref().is_some_and(|m| m.rows >= n as u64) {
                rows = LogRows::held(store, i64::MIN, i64::MAX);
            } else {
                let ask = LogAsk { spans: vec![(from, to)], at_most: Some(n as u64), ..Default::default() };
                rows.fetched = self.fetch_log_rows(table, &ask, &connector).await?;
            }
            return Ok(rows);
        }
        // Older than the window: never held, fetched for this query.
        let mut live: Vec<Span> = Vec::new();
        if from < window_start {
            live.push((from, to.min(window_start)));
        }
        let (store_from, store_to) = (from.max(window_start), to);
        let reads_store = match (&held_services, &asked) {
            (Some(held), Some(asked)) => asked.iter().any(|s| held.contains(s)),
            _ => true,
        };
        if reads_store && store_from < store_to {
            let _guard = table.refresh_lock.lock().await;
            store.hold_services(held_services.as_deref())?;
            store.trim(window_start)?;
            let (m, _) = store.manifest();
            let tail_from = m.held.last().map(|s| s.1);
            let age = tail_from.map(|end| (now - end).max(0) as f64 / 1e6);
            let mut held = m.held.clone();
            if let Some(end) = tail_from
                && self.is_young(table, age)
            {
                held = add_span(&held, (end, now));
            }
            let narrows = asked.is_some() || types.is_some();
            let (fill, narrow): (Vec<Span>, Vec<Span>) =
                gaps(&held, store_from, store_to).into_iter().partition(|g| !narrows || Some(g.0) == tail_from);
            if !fill.is_empty() {
                let filled = self.fill_log(table, store, fill, window_start, &connector).await;
                if let Err(e) = filled {
                    if meta.is_none() {
                        return Err(e);
                    }
                    self.observer().warning(&format!(
                        "{}.{}: refresh failed ({e}); answering from the events held",
                        self.name, table.def.name
                    ));
                }
            }
            live.extend(narrow);
            rows = LogRows::held(store, store_from, store_to);
        }
        let narrowed_services = match (&asked, &held_services) {
            (Some(a), Some(h)) => Some(a.iter().filter(|s| h.contains(s)).cloned().collect()),
            (a, _) => a.clone(),
        };
        if !live.is_empty() {
            let ask = LogAsk { spans: live, services: narrowed_services, event_types: types.clone(), at_most: None };
            rows.fetched.extend(self.fetch_log_rows(table, &ask, &connector).await?);
        }
        // Services the store leaves out, over the whole range asked.
        if let Some(held) = &held_services {
            let wanted = asked.clone().unwrap_or_else(|| connector.log_services());
            let rest: Vec<String> = wanted.into_iter().filter(|s| !held.contains(s) && s != "all").collect();
            if !rest.is_empty() {
                let ask = LogAsk { spans: vec![(from, to)], services: Some(rest), event_types: types, at_most: None };
                rows.fetched.extend(self.fetch_log_rows(table, &ask, &connector).await?);
            }
        }
        Ok(rows)
    }

    /// Entries fetched for one query, not held.
    async fn fetch_log_rows(
        &self,
        table: &CachedTable,
        ask: &LogAsk,
        connector: &Arc<dyn Connector>,
    ) -> Result<Vec<RecordBatch>> {
        let sink = CollectSink::default();
        let fetched = connector.fetch_log(self, table, ask, &sink).await?;
        self.count_requests(fetched.requests);
        Ok(sink.batches.into_inner().unwrap_or_default())
    }

    /// Every entry of the log in the held services over `spans` (within the window), written
    /// into the store. A span starting where the held window ends asks again from a minute
    /// before the newest entry held, and keeps only entries not held yet.
    async fn fill_log(
        &self,
        table: &CachedTable,
        store: &LogStore,
        spans: Vec<Span>,
        window_start: i64,
        connector: &Arc<dyn Connector>,
    ) -> Result<RefreshSummary> {
        let started = std::time::Instant::now();
        let observer = self.observer();
        let (m, _) = store.manifest();
        let held_end = m.held.last().map(|s| s.1);
        let newest = m.parts.iter().map(|p| p.last_us).max();
        let mut overlap: Option<Span> = None;
        let spans: Vec<Span> = spans
            .into_iter()
            .map(|(from, to)| match (held_end, newest) {
                (Some(end), Some(newest)) if from == end => {
                    let again = (newest - LOG_OVERLAP_US).max(window_start).min(from);
                    overlap = Some((again, from));
                    (again, to)
                }
                _ => (from, to),
            })
            .collect();
        let skip = match overlap {
            Some((a, b)) if a < b => store.ids_between(a, b)?,
            _ => HashSet::new(),
        };
        observer.started(table.def.name, None, "rows");
        let sink = StoreSink {
            store,
            skip,
            writers: Default::default(),
            facts: FillFacts { fetched_at_us: now_us(), ..Default::default() },
        };
        let ask = LogAsk { spans, services: connector.log_held_services(), event_types: None, at_most: None };
        let result = connector.fetch_log(self, table, &ask, &sink).await;
        let outcome = match result {
            Ok(fetched) => {
                self.count_requests(fetched.requests);
                let facts = FillFacts {
                    fetched_at_us: sink.facts.fetched_at_us,
                    requests: fetched.requests,
                    duration_ms: started.elapsed().as_millis() as u64,
                    bytes_received: fetched.bytes,
                };
                store.touch(facts).and_then(|_| store.trim(window_start)).map(|_| {
                    let (meta, _) = store.meta();
                    RefreshSummary {
                        table: table.def.name.to_string(),
                        changes: None,
                        rows: meta.map_or(0, |m| m.rows),
                        expected_rows: None,
                        requests: fetched.requests,
                        duration: started.elapsed(),
                        bytes_received: fetched.bytes,
                    }
                })
            }
            Err(e) => Err(e),
        };
        self.report(table, &observer, outcome)
    }

    /// Fills the whole window of an event log (`jcsql sync`): every span not held yet, and the
    /// entries newer than the newest held.
    async fn fill_window(&self, table: &CachedTable) -> Result<RefreshSummary> {
        let connector = self.connector.clone().ok_or(JcsqlError::NotConnected)?;
        let store =
            table.log.as_ref().ok_or_else(|| JcsqlError::Config(format!("{} is not an event log", table.def.name)))?;
        let now = now_us();
        let window_start = connector.log_window_start_us().unwrap_or(now);
        store.hold_services(connector.log_held_services().as_deref())?;
        let (m, _) = store.manifest();
        let spans = gaps(&m.held, window_start, now);
        self.fill_log(table, store, spans, window_start, &connector).await
    }

    pub(crate) fn count_requests(&self, n: u64) {
        self.requests.fetch_add(n, Ordering::Relaxed);
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
pub fn ids_of(batches: &[RecordBatch]) -> Vec<String> {
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
pub fn dedupe_and_merge(schema: &SchemaRef, pages: Vec<PageRows>) -> Result<Vec<RecordBatch>> {
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

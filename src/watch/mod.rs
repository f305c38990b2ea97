//! Boards that watch: run boards for cron and CI (`jcsql check`), and compare each run with the
//! last to say what appeared, went away or changed (`jcsql watch`), delivering events to webhooks.
//!
//! Two promises shape it. *Nothing twice*: a board's rows, its run counter and its undelivered
//! deliveries live in one state file written atomically, so a restart or a second `--once` repeats
//! nothing and a retried delivery keeps its id. *Nothing false*: a board whose sources could not be
//! fetched whole is not compared (a failed fetch must never read as every row `removed`); it gives
//! one `source_error` per outage and keeps its state.

pub mod deliver;
pub mod state;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::json::writer::{JsonArray, WriterBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::boards::Board;
use crate::connection::{Connection, RefreshSummary, SyncObserver};
use crate::engine::Engine;
use crate::error::JcsqlError;

pub use state::BoardState;

/// A row as JSON: column → value (NULL as `null`).
pub type Row = Map<String, Value>;

/// What one run of a board gave.
pub struct BoardRun {
    pub name: String,
    pub title: Option<String>,
    /// The rows, as batches (for printing) and as JSON objects (for comparing).
    pub batches: Vec<RecordBatch>,
    pub rows: Vec<Row>,
    /// When the oldest snapshot the board read was fetched (RFC 3339), when known.
    pub data_as_of: Option<String>,
    /// Why the board could not be run or compared: a failed or partial fetch, a board error.
    pub error: Option<String>,
}

/// Records the fetches that failed while a board ran, and passes everything on.
struct FailureRecorder {
    connection: String,
    inner: Arc<dyn SyncObserver>,
    /// (`connection.table`, what failed).
    failures: Arc<Mutex<Vec<(String, String)>>>,
}

impl SyncObserver for FailureRecorder {
    fn started(&self, table: &str, total: Option<u64>, unit: &str) {
        self.inner.started(table, total, unit);
    }
    fn set_total(&self, table: &str, total: u64) {
        self.inner.set_total(table, total);
    }
    fn advance(&self, table: &str, n: u64) {
        self.inner.advance(table, n);
    }
    fn finished(&self, table: &str, outcome: Result<&RefreshSummary, &JcsqlError>) {
        if let Err(e) = outcome
            && let Ok(mut f) = self.failures.lock()
        {
            let table = format!("{}.{table}", self.connection);
            f.push((table.clone(), format!("{table}: {e}")));
        }
        self.inner.finished(table, outcome);
    }
    fn warning(&self, message: &str) {
        self.inner.warning(message);
    }
}

/// The board's key columns: a `-- key: a, b` header line, else the first column.
pub fn key_columns(sql: &str, columns: &[String]) -> Vec<String> {
    let declared = sql
        .lines()
        .map(str::trim)
        .take_while(|l| l.starts_with("--") || l.is_empty())
        .find_map(|l| l.trim_start_matches('-').trim().strip_prefix("key:").map(str::to_string));
    match declared {
        Some(list) => list.split(',').map(|c| c.trim().to_string()).filter(|c| !c.is_empty()).collect(),
        None => columns.first().cloned().into_iter().collect(),
    }
}

/// Batches as JSON objects, with NULLs kept.
pub fn rows_of(batches: &[RecordBatch]) -> Result<Vec<Row>, String> {
    let mut buf = Vec::new();
    {
        let mut w = WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(&mut buf);
        let refs: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
        w.write_batches(&refs).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice::<Vec<Row>>(&buf).map_err(|e| e.to_string())
}

/// Runs boards on fresh data (the connections' freshness decides what is refetched), as many at
/// once as there are cores; the runs come back in the boards' order. Any fetch that fails while
/// they run makes an error of the run of every board that reads the table, even when a stale
/// snapshot answered.
pub async fn run_boards(engine: &Engine, boards: &[Board]) -> Vec<BoardRun> {
    use futures::StreamExt;
    let failures: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let connections: Vec<Arc<Connection>> = engine.all_connections().cloned().collect();
    let previous: Vec<Arc<dyn SyncObserver>> = connections.iter().map(|c| c.observer()).collect();
    for (conn, inner) in connections.iter().zip(&previous) {
        conn.set_observer(Arc::new(FailureRecorder {
            connection: conn.name.clone(),
            inner: inner.clone(),
            failures: failures.clone(),
        }));
    }
    let at_once = std::thread::available_parallelism().map_or(2, |n| n.get());
    // The futures are made before the stream (not by a closure inside it), so the whole run
    // stays `Send` for a web handler to await.
    let pending: Vec<_> = boards.iter().map(|b| run_board(engine, b)).collect();
    let mut runs: Vec<BoardRun> = futures::stream::iter(pending).buffered(at_once).collect().await;
    for (conn, inner) in connections.iter().zip(previous) {
        conn.set_observer(inner);
    }
    let failed = failures.lock().map(|f| f.clone()).unwrap_or_default();
    let all = engine.boards();
    for (run, board) in runs.iter_mut().zip(boards) {
        let reads: BTreeSet<String> = connection_tables_read(engine, board, &all)
            .iter()
            .map(|(conn, table)| format!("{}.{table}", conn.name))
            .collect();
        let mut why: Vec<String> =
            failed.iter().filter(|(table, _)| reads.contains(table)).map(|(_, e)| e.clone()).collect();
        why.sort();
        why.dedup();
        if run.error.is_none() && !why.is_empty() {
            run.error = Some(format!("a source could not be fetched: {}", why.join("; ")));
            run.rows.clear();
            run.batches.clear();
        }
    }
    runs
}

/// One board's rows, or why not (failed fetches are [`run_boards`]'s to add).
async fn run_board(engine: &Engine, board: &Board) -> BoardRun {
    let mut run = BoardRun {
        name: board.name.clone(),
        title: board.title.clone(),
        batches: Vec::new(),
        rows: Vec::new(),
        data_as_of: None,
        error: board.error.as_ref().map(|e| e.to_string()),
    };
    if run.error.is_some() {
        return run;
    }
    let sql = format!("select * from {}.\"{}\"", crate::boards::SCHEMA, board.name.replace('"', "\"\""));
    match engine.sql(&sql).await {
        Err(e) => run.error = Some(engine.explain(&e)),
        Ok(batches) => match rows_of(&batches) {
            Ok(rows) => {
                run.rows = rows;
                run.batches = batches;
            }
            Err(e) => run.error = Some(format!("cannot read the board's rows: {e}")),
        },
    }
    run.data_as_of = data_as_of(engine, board);
    run
}

/// The connection tables a board reads directly, through other boards, or through a
/// connection's views (`user_application_access` reads the memberships), each as its connection
/// and table. A schema resolves as the engine does (`jumpcloud` is the default org's connection,
/// whatever its name), so these name tables as the connections' observers do.
pub fn connection_tables_read(engine: &Engine, board: &Board, all: &[Board]) -> Vec<(Arc<Connection>, String)> {
    let schemas = engine.connection_schemas();
    let mut out: Vec<(Arc<Connection>, String)> = Vec::new();
    for t in crate::boards::tables_of(board, all) {
        let Some((schema, table)) = crate::catalog::without_catalog(&t).split_once('.') else { continue };
        let Some((_, conn)) = schemas.iter().find(|(s, _)| s == schema) else { continue };
        let tables: Vec<String> = match conn.views.iter().find(|v| v.name == table) {
            Some(view) => view.reads().map(str::to_string).collect(),
            None => vec![table.to_string()],
        };
        for table in tables {
            if !out.iter().any(|(c, t)| Arc::ptr_eq(c, conn) && *t == table) {
                out.push((conn.clone(), table));
            }
        }
    }
    out
}

/// The fetch time of the oldest snapshot among the connection tables the board reads.
pub fn data_as_of(engine: &Engine, board: &Board) -> Option<String> {
    let oldest = connection_tables_read(engine, board, &engine.boards())
        .iter()
        .filter_map(|(conn, table)| conn.table(table).ok())
        .filter_map(|cached| cached.current().0.meta.as_ref().map(|m| m.fetched_at_us))
        .min();
    oldest
        .and_then(chrono::DateTime::from_timestamp_micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// One event of a watched board (DESIGN §6a); a line of `--events` and an item of a webhook body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub kind: String,
    pub at: String,
    pub board: String,
    pub key: Option<Value>,
    pub row: Option<Value>,
    pub before: Option<Value>,
    pub changed_columns: Option<Vec<String>>,
    pub open_count: usize,
    pub data_as_of: Option<String>,
    pub error: Option<String>,
}

/// A short stable id: the same inputs give the same id in every run and process.
pub fn stable_id(parts: &[&str]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, parts.join("\u{1f}").as_bytes());
    digest.as_ref()[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// Columns a board may show that change on every fetch without meaning anything.
fn compared(row: &Row) -> Row {
    row.iter().filter(|(k, _)| !k.starts_with("_fetched_at")).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The rows keyed by the board's key (a JSON object of the key columns, as text).
pub fn keyed(rows: &[Row], key: &[String]) -> BTreeMap<String, Row> {
    rows.iter()
        .map(|r| {
            let k: Map<String, Value> =
                key.iter().map(|c| (c.clone(), r.get(c).cloned().unwrap_or(Value::Null))).collect();
            (Value::Object(k).to_string(), r.clone())
        })
        .collect()
}

/// What one run of a watched board gives, and the state it leaves.
pub fn compare(previous: Option<&BoardState>, run: &BoardRun, sql: &str, at: &str) -> (Vec<Event>, BoardState) {
    let sql_hash = stable_id(&[sql]);
    let mut state = previous.cloned().unwrap_or_else(|| BoardState::new(&sql_hash));
    state.run += 1;
    state.last_run_at = Some(at.to_string());
    let run_no = state.run.to_string();
    let event = |kind: &str, key: Option<&str>| Event {
        event_id: stable_id(&[&run.name, &run_no, kind, key.unwrap_or("")]),
        kind: kind.to_string(),
        at: at.to_string(),
        board: run.name.clone(),
        key: key.and_then(|k| serde_json::from_str(k).ok()),
        row: None,
        before: None,
        changed_columns: None,
        open_count: 0,
        data_as_of: run.data_as_of.clone(),
        error: None,
    };
    let mut events = Vec::new();
    if let Some(error) = &run.error {
        state.last_error = Some(error.clone());
        if state.outage.is_none() {
            state.outage = Some(error.clone());
            events.push(Event {
                open_count: state.rows.len(),
                error: Some(error.clone()),
                ..event("source_error", None)
            });
        }
        return (events, state);
    }
    state.last_error = None;
    // Rows keep the result's column order (serde_json's `preserve_order`); without rows the key
    // has nothing to name.
    let columns: Vec<String> = run.rows.first().map(|r| r.keys().cloned().collect()).unwrap_or_default();
    let current = keyed(&run.rows, &key_columns(sql, &columns));
    if state.outage.take().is_some() {
        events.push(Event { open_count: current.len(), ..event("source_recovered", None) });
    }
    if previous.is_none() || state.sql_hash != sql_hash {
        state.sql_hash = sql_hash;
        events.push(Event { open_count: current.len(), ..event("baseline", None) });
        state.rows = current;
        return (events, state);
    }
    // Added, then changed, then removed; each in key order.
    let mut changes = Vec::new();
    for (k, row) in &current {
        match state.rows.get(k) {
            None => events.push(Event {
                row: Some(Value::Object(row.clone())),
                open_count: current.len(),
                ..event("added", Some(k))
            }),
            Some(before) if compared(before) != compared(row) => {
                let changed: Vec<String> = row
                    .iter()
                    .filter(|(c, v)| !c.starts_with("_fetched_at") && before.get(*c) != Some(*v))
                    .map(|(c, _)| c.clone())
                    .collect();
                let old: Map<String, Value> =
                    changed.iter().map(|c| (c.clone(), before.get(c).cloned().unwrap_or(Value::Null))).collect();
                changes.push(Event {
                    row: Some(Value::Object(row.clone())),
                    before: Some(Value::Object(old)),
                    changed_columns: Some(changed),
                    open_count: current.len(),
                    ..event("changed", Some(k))
                });
            }
            Some(_) => {}
        }
    }
    events.append(&mut changes);
    for (k, row) in &state.rows {
        if !current.contains_key(k) {
            events.push(Event {
                row: Some(Value::Object(row.clone())),
                open_count: current.len(),
                ..event("removed", Some(k))
            });
        }
    }
    state.rows = current;
    (events, state)
}

/// What one watch run did for one board.
pub struct Watched {
    pub board: String,
    pub events: Vec<Event>,
    /// The board could not be run or compared (or its state not read or written).
    pub error: Option<String>,
    pub delivered: usize,
    /// Deliveries for this run's targets still in the outbox, with why.
    pub undelivered: Vec<String>,
}

/// One run of `jcsql watch` over `boards`: run, compare, keep the state, deliver (the outbox
/// first). `dir` holds the state files.
pub async fn watch_once(
    engine: &Engine,
    boards: &[Board],
    dir: &std::path::Path,
    targets: &[deliver::Target],
    http: &reqwest::Client,
) -> Vec<Watched> {
    let mut out = Vec::new();
    let runs = run_boards(engine, boards).await;
    for (board, run) in boards.iter().zip(runs) {
        let mut watched = Watched {
            board: board.name.clone(),
            events: Vec::new(),
            error: None,
            delivered: 0,
            undelivered: Vec::new(),
        };
        let previous = match state::load(dir, &board.name) {
            Ok(s) => s,
            Err(e) => {
                watched.error = Some(e);
                out.push(watched);
                continue;
            }
        };
        watched.error = run.error.clone();
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let (events, mut state) = compare(previous.as_ref(), &run, &board.sql, &at);
        if events.iter().any(|e| e.kind != "baseline") {
            for target in targets {
                state.outbox.push(deliver::Delivery {
                    id: stable_id(&[&board.name, &state.run.to_string(), &target.fingerprint]),
                    target: target.fingerprint.clone(),
                    body: target.body(&board.name, board.title.as_deref(), &events),
                    tries: 0,
                    last_error: None,
                });
            }
        }
        watched.events = events;
        if let Err(e) = state::save(dir, &board.name, &state) {
            watched.error = Some(e);
            out.push(watched);
            continue;
        }
        let mut i = 0;
        while i < state.outbox.len() {
            let Some(target) = targets.iter().find(|t| t.fingerprint == state.outbox[i].target) else {
                i += 1;
                continue;
            };
            match deliver::deliver(http, target, &mut state.outbox[i]).await {
                deliver::Outcome::Delivered => {
                    state.outbox.remove(i);
                    watched.delivered += 1;
                }
                deliver::Outcome::Kept(why) => {
                    watched.undelivered.push(why);
                    i += 1;
                }
            }
            if let Err(e) = state::save(dir, &board.name, &state) {
                watched.error = Some(e);
                break;
            }
        }
        out.push(watched);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, Value)]) -> Row {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn run_of(rows: Vec<Row>) -> BoardRun {
        BoardRun { name: "b".into(), title: None, batches: vec![], rows, data_as_of: None, error: None }
    }

    #[test]
    fn the_key_is_the_header_or_the_first_column() {
        let cols = vec!["email".to_string(), "device".to_string()];
        assert_eq!(key_columns("select 1", &cols), ["email"]);
        assert_eq!(key_columns("-- title: x\n-- key: email, device\nselect 1", &cols), ["email", "device"]);
    }

    #[test]
    fn a_run_gives_added_removed_and_changed_once() {
        let a = row(&[("email", "a@x".into()), ("dept", "IT".into())]);
        let b = row(&[("email", "b@x".into()), ("dept", "HR".into())]);
        let (events, state) = compare(None, &run_of(vec![a.clone(), b.clone()]), "select", "t1");
        assert_eq!(events.iter().map(|e| (e.kind.as_str(), e.open_count)).collect::<Vec<_>>(), [("baseline", 2)]);
        let b2 = row(&[("email", "b@x".into()), ("dept", "Sales".into())]);
        let c = row(&[("email", "c@x".into()), ("dept", Value::Null)]);
        let (events, state2) = compare(Some(&state), &run_of(vec![b2, c]), "select", "t2");
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["added", "changed", "removed"]);
        assert_eq!(events[1].changed_columns.as_deref(), Some(&["dept".to_string()][..]));
        assert_eq!(events[1].before, Some(serde_json::json!({"dept": "HR"})));
        assert_eq!(events[2].key, Some(serde_json::json!({"email": "a@x"})));
        // Ids are stable for the same board, run and row.
        let (again, _) = compare(Some(&state2), &run_of(state2.rows.values().cloned().collect()), "select", "t3");
        assert!(again.is_empty());
        let (replayed, _) = compare(Some(&state), &run_of(vec![]), "select", "t9");
        assert_eq!(replayed[0].event_id, events[2].event_id);
    }

    #[test]
    fn an_outage_is_one_event_and_compares_nothing() {
        let a = row(&[("email", "a@x".into())]);
        let (_, state) = compare(None, &run_of(vec![a.clone()]), "select", "t1");
        let failed = BoardRun { error: Some("jumpcloud.users: 503".into()), ..run_of(vec![]) };
        let (events, state) = compare(Some(&state), &failed, "select", "t2");
        assert_eq!(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["source_error"]);
        assert_eq!(state.rows.len(), 1);
        let (events, state) = compare(Some(&state), &failed, "select", "t3");
        assert!(events.is_empty());
        let (events, _) = compare(Some(&state), &run_of(vec![a]), "select", "t4");
        assert_eq!(events.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["source_recovered"]);
    }
}

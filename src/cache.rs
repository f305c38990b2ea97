//! Arrow snapshots in memory and on disk. Each table's snapshot is one Arrow IPC file whose
//! schema metadata carries the snapshot's facts (fetched_at, rows, expected rows, requests,
//! duration, schema fingerprint), written to a temp file and renamed, so a reader sees the old
//! file or the new one, never half of one. A file that is truncated, corrupted or written for
//! another schema is reported in one line and ignored (the table is refetched).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use datafusion::arrow::array::{ArrayRef, MutableArrayData, RecordBatch, make_array};
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::reader::FileReader;
use datafusion::arrow::ipc::writer::FileWriter;
use serde::{Deserialize, Serialize};

use crate::changes::{self, ChangeCounts, ChangeSource, Retention};
use crate::error::{JcsqlError, Result};
use crate::table::{Source, TableDef};

const SNAPSHOT_KEY: &str = "jcsql.snapshot";

/// Facts about one snapshot, stored inside its IPC file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SnapshotMeta {
    pub fetched_at_us: i64,
    pub rows: u64,
    pub expected_rows: Option<u64>,
    pub requests: u64,
    pub duration_ms: u64,
    /// Bytes of JSON the API sent for this snapshot.
    pub bytes_received: u64,
    /// Changes whenever the table's columns change, so an old file is never read as new.
    pub schema_fingerprint: String,
    /// For event logs: the start of the time held (`jcsql.tables.covers_from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers_from_us: Option<i64>,
    /// For event logs: the time of the newest entry held (`jcsql.tables.newest_row`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_us: Option<i64>,
}

#[derive(Debug, Default)]
pub struct Snapshot {
    pub batches: Vec<RecordBatch>,
    /// `None` until the table has been fetched (or loaded from disk) once.
    pub meta: Option<SnapshotMeta>,
    /// Computed from `batches` when a query first needs them.
    pub statistics: crate::statistics::HeldStatistics,
}

impl Snapshot {
    pub fn new(batches: Vec<RecordBatch>, meta: SnapshotMeta) -> Self {
        Snapshot { batches, meta: Some(meta), statistics: Default::default() }
    }

    pub fn age_seconds(&self, now_us: i64) -> Option<f64> {
        self.meta.as_ref().map(|m| (now_us - m.fetched_at_us).max(0) as f64 / 1e6)
    }
}

/// The last refresh outcome, shown in `jcsql.tables`.
#[derive(Debug, Default, Clone)]
pub struct TableStatus {
    pub error: Option<String>,
}

/// One table's snapshot, swapped whole on refresh; the provider over it lives as long as the
/// engine, so views planned earlier read the new batches.
pub struct CachedTable {
    pub def: &'static TableDef,
    snapshot: ArcSwap<Snapshot>,
    /// Held while fetching, so two queries needing the same stale table fetch once.
    pub refresh_lock: tokio::sync::Mutex<()>,
    status: std::sync::Mutex<TableStatus>,
    file: Option<PathBuf>,
    disk_checked: AtomicBool,
    /// `changes.TABLE`: loaded from disk at first use, kept beside the snapshots.
    changes: std::sync::Mutex<Option<Vec<RecordBatch>>>,
    changes_file: Option<PathBuf>,
    pub retention: Retention,
    /// An event log's entries, held on disk in parts rather than as one snapshot.
    pub log: Option<crate::log_store::LogStore>,
}

impl std::fmt::Debug for CachedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedTable").field("table", &self.def.name).finish()
    }
}

pub fn schema_fingerprint(schema: &Schema) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for f in schema.fields() {
        for b in f.name().bytes().chain(format!("{:?}", f.data_type()).bytes()) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

impl CachedTable {
    pub fn new(def: &'static TableDef, dir: Option<&Path>) -> Self {
        let log = match &def.source {
            Source::Log { time_column, .. } => {
                // Before parts, a log was one snapshot file: what it held is fetched again.
                if let Some(d) = dir {
                    let _ = std::fs::remove_file(d.join(format!("{}.arrow", def.name)));
                }
                Some(crate::log_store::LogStore::new(def, time_column, dir))
            }
            _ => None,
        };
        CachedTable {
            def,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            refresh_lock: tokio::sync::Mutex::new(()),
            status: std::sync::Mutex::new(TableStatus::default()),
            file: dir.filter(|_| log.is_none()).map(|d| d.join(format!("{}.arrow", def.name))),
            disk_checked: AtomicBool::new(false),
            changes: std::sync::Mutex::new(None),
            changes_file: dir.map(|d| d.join("changes").join(format!("{}.arrow", def.name))),
            retention: Retention::default(),
            log,
        }
    }

    pub fn schema(&self) -> SchemaRef {
        self.def.schema()
    }

    /// The current snapshot, loading it from disk the first time (a warning comes back when
    /// a file exists but cannot be used).
    pub fn current(&self) -> (Arc<Snapshot>, Option<String>) {
        if let Some(log) = &self.log {
            // A log's facts come from its store's manifest; its rows stay on disk.
            let (meta, warning) = log.meta();
            return (Arc::new(Snapshot { meta, ..Default::default() }), warning);
        }
        let mut warning = None;
        if !self.disk_checked.swap(true, Ordering::AcqRel)
            && let Some(path) = &self.file
        {
            match read_snapshot(path, &self.schema()) {
                Ok(Some(snap)) => {
                    if self.snapshot.load().meta.is_none() {
                        self.snapshot.store(Arc::new(snap));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    warning = Some(format!("{e}; it will be fetched again"));
                    // A broken file must not come back after a restart either.
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        (self.snapshot.load_full(), warning)
    }

    /// Replaces the snapshot after a fetch: on disk first (atomically), then in memory, and
    /// records what changed since the previous one. The first snapshot is the baseline, and a
    /// fetch short of its expected rows records nothing (it must never look like deletions).
    pub fn replace(&self, snapshot: Snapshot) -> Result<Option<ChangeCounts>> {
        let (old, _) = self.current();
        let at = snapshot.meta.as_ref().map(|m| m.fetched_at_us).unwrap_or_default();
        let complete =
            snapshot.meta.as_ref().is_some_and(|m| m.expected_rows.is_none_or(|expected| m.rows >= expected));
        let since = old.meta.as_ref().map(|m| m.fetched_at_us);
        let new = snapshot.batches.clone();
        self.store(snapshot)?;
        if since.is_none() || !complete {
            return Ok(None);
        }
        self.record_changes(&old.batches, &new, since, at, ChangeSource::Fetch)
    }

    fn store(&self, snapshot: Snapshot) -> Result<()> {
        if let (Some(path), Some(meta)) = (&self.file, &snapshot.meta) {
            write_snapshot(path, &self.schema(), &snapshot.batches, meta)?;
        }
        self.disk_checked.store(true, Ordering::Release);
        self.snapshot.store(Arc::new(snapshot));
        self.set_error(None);
        Ok(())
    }

    /// Compares two versions of the table and appends the differences to `changes.TABLE`.
    fn record_changes(
        &self,
        old: &[RecordBatch],
        new: &[RecordBatch],
        since: Option<i64>,
        at: i64,
        source: ChangeSource,
    ) -> Result<Option<ChangeCounts>> {
        // An event log only grows: every refresh would be all `added`, which the log itself says.
        if matches!(self.def.source, Source::Log { .. }) {
            return Ok(None);
        }
        let fail =
            |e: &dyn std::fmt::Display| JcsqlError::Cache(format!("{}: cannot compare snapshots: {e}", self.def.name));
        let Some((batch, counts)) = changes::diff(self.def, old, new, since, at, source).map_err(|e| fail(&e))? else {
            return Ok(Some(ChangeCounts::default()));
        };
        let mut log = self.changes.lock().map_err(|e| fail(&e))?;
        let mut all = match log.take() {
            Some(held) => held,
            None => self.read_changes(),
        };
        all.push(batch);
        let all = changes::trim(all, at, self.retention).map_err(|e| fail(&e))?;
        if let Some(path) = &self.changes_file {
            write_ipc(path, &changes::schema(self.def), &all, HashMap::new())?;
        }
        *log = Some(all);
        Ok(Some(counts))
    }

    /// The rows of `changes.TABLE`, oldest first.
    pub fn changes(&self) -> Vec<RecordBatch> {
        let Ok(mut log) = self.changes.lock() else { return Vec::new() };
        if log.is_none() {
            *log = Some(self.read_changes());
        }
        log.clone().unwrap_or_default()
    }

    /// The change log on disk; one that cannot be read is dropped (and said so in the log).
    fn read_changes(&self) -> Vec<RecordBatch> {
        let Some(path) = &self.changes_file else { return Vec::new() };
        match read_ipc(path, &changes::schema(self.def)) {
            Ok(batches) => batches,
            Err(e) => {
                tracing::warn!("{e}; the change history of {} starts again", self.def.name);
                let _ = std::fs::remove_file(path);
                Vec::new()
            }
        }
    }

    /// Applies a change made by an action to the snapshot in memory and on disk.
    /// The change is recorded in `changes.TABLE` with `_source = 'action'`.
    pub fn patch(&self, f: impl FnOnce(&[RecordBatch]) -> Result<Vec<RecordBatch>>) -> Result<()> {
        let (current, _) = self.current();
        let Some(meta) = current.meta.clone() else {
            return Ok(());
        };
        let batches = f(&current.batches)?;
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let since = meta.fetched_at_us;
        self.store(Snapshot::new(batches.clone(), SnapshotMeta { rows, ..meta }))?;
        let now = chrono::Utc::now().timestamp_micros();
        self.record_changes(&current.batches, &batches, Some(since), now, ChangeSource::Action).map(|_| ())
    }

    pub fn status(&self) -> TableStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn set_error(&self, error: Option<String>) {
        if let Ok(mut s) = self.status.lock() {
            s.error = error;
        }
    }
}

fn write_snapshot(path: &Path, schema: &SchemaRef, batches: &[RecordBatch], meta: &SnapshotMeta) -> Result<()> {
    let meta_json = serde_json::to_string(meta).map_err(|e| JcsqlError::Cache(e.to_string()))?;
    write_ipc(path, schema, batches, HashMap::from([(SNAPSHOT_KEY.to_string(), meta_json)]))
}

/// Writes batches as one Arrow IPC file, via a temp file and a rename.
fn write_ipc(path: &Path, schema: &SchemaRef, batches: &[RecordBatch], extra: HashMap<String, String>) -> Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| JcsqlError::Cache(format!("cannot create {}: {e}", dir.display())))?;
    let mut md: HashMap<String, String> = schema.metadata().clone();
    md.extend(extra);
    let file_schema = Arc::new(Schema::new_with_metadata(schema.fields().clone(), md));
    let fail = |e: &dyn std::fmt::Display| JcsqlError::Cache(format!("cannot write {}: {e}", path.display()));
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(&e))?;
    {
        let mut writer = FileWriter::try_new(BufWriter::new(tmp.as_file()), &file_schema).map_err(|e| fail(&e))?;
        for b in batches {
            let b = b.clone().with_schema(file_schema.clone()).map_err(|e| fail(&e))?;
            writer.write(&b).map_err(|e| fail(&e))?;
        }
        writer.finish().map_err(|e| fail(&e))?;
    }
    tmp.as_file().sync_all().map_err(|e| fail(&e))?;
    tmp.persist(path).map_err(|e| fail(&e.error))?;
    Ok(())
}

/// An IPC batch's columns are slices of one allocation, so each reports the whole batch's size,
/// and DataFusion's join planning (which compares sizes to pick the hash table's side) then
/// takes a 4-column scan of users for larger than 300,000 memberships. Copying each column into
/// buffers of its own keeps the sizes true; it costs one memcpy of the table on load.
fn owned_columns(batch: &RecordBatch) -> std::result::Result<Vec<ArrayRef>, ArrowError> {
    batch
        .columns()
        .iter()
        .map(|column| {
            let data = column.to_data();
            let mut copy = MutableArrayData::new(vec![&data], false, data.len());
            copy.try_extend(0, 0, data.len())?;
            Ok(make_array(copy.freeze()))
        })
        .collect()
}

/// The batches of an IPC file written for `schema` (none when there is no file).
fn read_ipc(path: &Path, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(JcsqlError::Cache(format!("cannot open {}: {e}", path.display()))),
    };
    let bad = |why: String| JcsqlError::Cache(format!("{} is unusable ({why})", path.display()));
    let reader = FileReader::try_new(BufReader::new(file), None).map_err(|e| bad(e.to_string()))?;
    if reader.schema().fields() != schema.fields() {
        return Err(bad("written for other columns".into()));
    }
    reader
        .map(|b| {
            let b = b.map_err(|e| bad(e.to_string()))?;
            RecordBatch::try_new(schema.clone(), b.columns().to_vec()).map_err(|e| bad(e.to_string()))
        })
        .collect()
}

/// `Ok(None)` when there is no file; `Err` when there is one that cannot be trusted.
fn read_snapshot(path: &Path, schema: &SchemaRef) -> Result<Option<Snapshot>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(JcsqlError::Cache(format!("cannot open {}: {e}", path.display())));
        }
    };
    let bad = |why: String| JcsqlError::Cache(format!("the snapshot {} is unusable ({why})", path.display()));
    let reader = FileReader::try_new(BufReader::new(file), None).map_err(|e| bad(e.to_string()))?;
    let file_schema = reader.schema();
    let meta: SnapshotMeta = file_schema
        .metadata()
        .get(SNAPSHOT_KEY)
        .and_then(|m| serde_json::from_str(m).ok())
        .ok_or_else(|| bad("no snapshot metadata".into()))?;
    if meta.schema_fingerprint != schema_fingerprint(schema) {
        return Err(bad("written by another version of jcsql's schema".into()));
    }
    let mut batches = Vec::new();
    for b in reader {
        let b = b.map_err(|e| bad(e.to_string()))?;
        let columns = owned_columns(&b).map_err(|e| bad(e.to_string()))?;
        batches.push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| bad(e.to_string()))?);
    }
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    if rows != meta.rows {
        return Err(bad(format!("{rows} rows where {} were written", meta.rows)));
    }
    Ok(Some(Snapshot::new(batches, meta)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field};

    #[test]
    fn a_reloaded_column_reports_its_own_size_not_its_batchs() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
            Field::new("text", DataType::Utf8, false),
        ]));
        let rows = 1000;
        let ids = StringArray::from_iter_values((0..rows).map(|i| format!("{i:024x}")));
        let text = StringArray::from_iter_values((0..rows).map(|i| "x".repeat(200 + i % 7)));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(ids), Arc::new(Int64Array::from_iter_values(0..rows as i64)), Arc::new(text)],
        )
        .expect("batch");
        let fresh_id_size = batch.column(0).get_array_memory_size();
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("t.arrow");
        let meta = SnapshotMeta {
            fetched_at_us: 0,
            rows: rows as u64,
            expected_rows: None,
            requests: 1,
            duration_ms: 0,
            bytes_received: 0,
            schema_fingerprint: schema_fingerprint(&schema),
            covers_from_us: None,
            newest_us: None,
        };
        write_snapshot(&path, &schema, std::slice::from_ref(&batch), &meta).expect("write");
        let loaded = read_snapshot(&path, &schema).expect("read").expect("a snapshot");
        let id = loaded.batches[0].column(0);
        assert_eq!(id.as_ref(), batch.column(0).as_ref());
        // The 200-byte text column dwarfs the ids; a shared buffer would report it too.
        assert!(
            id.get_array_memory_size() <= fresh_id_size + 1024,
            "reloaded ids report {} bytes, fresh ones {fresh_id_size}",
            id.get_array_memory_size()
        );
    }
}

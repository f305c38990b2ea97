//! An event log held on disk: zstd-compressed Parquet parts, each the entries of one fetched
//! slice of time within one day, in a folder per day, and a manifest naming the parts and the
//! time ranges held whole. Queries read only the parts whose times overlap theirs; memory does not
//! grow with the window.
//!
//! Parts are written first, each to a temp file renamed into place; the manifest (also written
//! and renamed) is what makes them count. A crash between the two leaves files no manifest
//! names, which the next open deletes, so the held window is always the one the last manifest
//! describes, readable and whole. A refresh appends parts; trimming the window drops whole parts.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::TimestampMicrosecondType;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::cache::{SnapshotMeta, schema_fingerprint};
use crate::error::{JcsqlError, Result};
use crate::table::TableDef;

const MANIFEST: &str = "manifest.json";

const DAY_US: i64 = 86_400_000_000;
const ROW_GROUP_ROWS: usize = 65_536;

/// A stretch of time `[from_us, to_us)`.
pub type Span = (i64, i64);

/// One Parquet file of entries, with the times of its first and last entry (for pruning).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Part {
    /// Relative to the store's folder: `2026-12-07/part-12.parquet`.
    pub file: String,
    pub first_us: i64,
    pub last_us: i64,
    pub rows: u64,
}

/// What a store holds: its parts, and the spans of time whose entries are all held (for the
/// services named, or all of them).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub schema_fingerprint: String,
    /// The services held; `None` is all of them.
    pub services: Option<Vec<String>>,
    /// Sorted, disjoint, not touching.
    pub held: Vec<Span>,
    pub parts: Vec<Part>,
    pub fetched_at_us: Option<i64>,
    pub requests: u64,
    pub duration_ms: u64,
    pub bytes_received: u64,
    next_part: u64,
}

/// A part written but not yet named by the manifest.
#[derive(Debug)]
pub struct Written(Part);

/// A part being written: a temp file renamed into place when finished.
struct OpenPart {
    day: i64,
    file: String,
    tmp: tempfile::NamedTempFile,
    writer: ArrowWriter<File>,
    first_us: i64,
    last_us: i64,
    rows: u64,
}

impl OpenPart {
    fn finish(self, dir: &Path) -> Result<Written> {
        let path = dir.join(&self.file);
        let what = format!("cannot write {}", path.display());
        self.writer.close().map_err(|e| fail(&what, &e))?;
        self.tmp.as_file().sync_all().map_err(|e| fail(&what, &e))?;
        self.tmp.persist(&path).map_err(|e| fail(&what, &e.error))?;
        Ok(Written(Part { file: self.file, first_us: self.first_us, last_us: self.last_us, rows: self.rows }))
    }
}

/// Entries streamed into parts, a file per day: memory holds one row group's encoded pages, not
/// the entries. Dropped unfinished, its temp files go with it.
pub struct PartWriter<'a> {
    store: &'a LogStore,
    open: Option<OpenPart>,
    finished: Vec<Written>,
}

impl PartWriter<'_> {
    /// Appends `batch` (in time order), starting a new part where the day changes.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let store = self.store;
        let Some(times) = batch.column_by_name(store.time_column) else {
            return Err(JcsqlError::Cache(format!("{}: no {} column", store.def.name, store.time_column)));
        };
        let times = times.as_primitive::<TimestampMicrosecondType>();
        let mut start = 0;
        while start < batch.num_rows() {
            let day = times.value(start).div_euclid(DAY_US);
            let len = (start..batch.num_rows()).take_while(|&i| times.value(i).div_euclid(DAY_US) == day).count();
            if self.open.as_ref().is_some_and(|p| p.day != day)
                && let Some(done) = self.open.take()
            {
                self.finished.push(done.finish(&store.dir)?);
            }
            let part = match &mut self.open {
                Some(p) => p,
                None => self.open.insert(store.open_part(day)?),
            };
            let chunk = batch.slice(start, len);
            let what = || format!("cannot write {}", part.file);
            let chunk =
                RecordBatch::try_new(store.def.schema(), chunk.columns().to_vec()).map_err(|e| fail(&what(), &e))?;
            part.writer.write(&chunk).map_err(|e| fail(&what(), &e))?;
            let chunk_times = times.slice(start, len);
            if let (Some(lo), Some(hi)) =
                (datafusion::arrow::compute::min(&chunk_times), datafusion::arrow::compute::max(&chunk_times))
            {
                part.first_us = part.first_us.min(lo);
                part.last_us = part.last_us.max(hi);
            }
            part.rows += len as u64;
            start += len;
        }
        Ok(())
    }

    /// The parts written, renamed into place.
    pub fn finish(mut self) -> Result<Vec<Written>> {
        if let Some(p) = self.open.take() {
            self.finished.push(p.finish(&self.store.dir)?);
        }
        Ok(self.finished)
    }
}

/// What one fill of the store cost, for `jcsql.tables`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FillFacts {
    pub fetched_at_us: i64,
    pub requests: u64,
    pub duration_ms: u64,
    pub bytes_received: u64,
}

#[derive(Debug)]
pub struct LogStore {
    dir: PathBuf,
    def: &'static TableDef,
    time_column: &'static str,
    /// `None` until the manifest is read at first use.
    manifest: Mutex<Option<Manifest>>,
    /// Removed on drop: a store for a session without a home folder.
    temporary: bool,
}

impl Drop for LogStore {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn fail(what: &str, e: &dyn std::fmt::Display) -> JcsqlError {
    JcsqlError::Cache(format!("{what}: {e}"))
}

/// `2026-12-07` for a time in microseconds.
fn day_of(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default().format("%Y-%m-%d").to_string()
}

impl LogStore {
    /// A store in `dir` (created when first written), or in a temp folder when `dir` is `None`.
    pub fn new(def: &'static TableDef, time_column: &'static str, dir: Option<&Path>) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let (dir, temporary) = match dir {
            Some(d) => (d.join(def.name), false),
            None => {
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (std::env::temp_dir().join(format!("jcsql-{}-{}-{n}", def.name, std::process::id())), true)
            }
        };
        LogStore { dir, def, time_column, manifest: Mutex::new(None), temporary }
    }

    pub fn time_column(&self) -> &'static str {
        self.time_column
    }

    /// The manifest, read from disk the first time; a warning comes back when one existed but
    /// could not be used (the store then starts empty).
    pub fn manifest(&self) -> (Manifest, Option<String>) {
        let Ok(mut held) = self.manifest.lock() else { return (Manifest::default(), None) };
        let mut warning = None;
        if held.is_none() {
            let (m, w) = self.load();
            warning = w;
            *held = Some(m);
        }
        (held.clone().unwrap_or_default(), warning)
    }

    fn load(&self) -> (Manifest, Option<String>) {
        let fingerprint = schema_fingerprint(&self.def.schema());
        let fresh = Manifest { schema_fingerprint: fingerprint.clone(), ..Default::default() };
        let path = self.dir.join(MANIFEST);
        let (manifest, warning) = match std::fs::read(&path) {
            Err(_) => (fresh, None),
            Ok(bytes) => match serde_json::from_slice::<Manifest>(&bytes) {
                Ok(m) if m.schema_fingerprint == fingerprint => (m, None),
                Ok(_) => {
                    (fresh, Some(format!("{} was written for other columns; it will be fetched again", path.display())))
                }
                Err(e) => (fresh, Some(format!("{} is unusable ({e}); it will be fetched again", path.display()))),
            },
        };
        self.remove_strays(&manifest);
        (manifest, warning)
    }

    /// Deletes files the manifest does not name: parts of a fill that never finished.
    fn remove_strays(&self, manifest: &Manifest) {
        let named: HashSet<&str> = manifest.parts.iter().map(|p| p.file.as_str()).collect();
        let Ok(days) = std::fs::read_dir(&self.dir) else { return };
        for day in days.flatten() {
            let path = day.path();
            if !path.is_dir() {
                continue;
            }
            let Ok(files) = std::fs::read_dir(&path) else { continue };
            let mut left = 0;
            for f in files.flatten() {
                let rel = format!("{}/{}", day.file_name().to_string_lossy(), f.file_name().to_string_lossy());
                if named.contains(rel.as_str()) {
                    left += 1;
                } else {
                    let _ = std::fs::remove_file(f.path());
                }
            }
            if left == 0 {
                let _ = std::fs::remove_dir(&path);
            }
        }
    }

    /// The facts `jcsql.tables` shows, once anything was held.
    pub fn meta(&self) -> (Option<SnapshotMeta>, Option<String>) {
        let (m, warning) = self.manifest();
        // Fresh means the newest held instant is recent, however much of the window is held.
        let as_of = m.held.last().map(|s| s.1).or(m.fetched_at_us);
        let meta = as_of.map(|fetched_at_us| SnapshotMeta {
            fetched_at_us,
            rows: m.parts.iter().map(|p| p.rows).sum(),
            expected_rows: None,
            requests: m.requests,
            duration_ms: m.duration_ms,
            bytes_received: m.bytes_received,
            schema_fingerprint: m.schema_fingerprint.clone(),
            covers_from_us: m.held.first().map(|s| s.0),
            newest_us: m.parts.iter().map(|p| p.last_us).max(),
        });
        (meta, warning)
    }

    /// A writer of parts: batches in time order streamed into one file per day (not yet
    /// counted: see [`LogStore::commit`]).
    pub fn part_writer(&self) -> PartWriter<'_> {
        PartWriter { store: self, open: None, finished: Vec::new() }
    }

    fn open_part(&self, day: i64) -> Result<OpenPart> {
        let n = {
            let Ok(mut held) = self.manifest.lock() else { return Err(JcsqlError::Cache("store lock".into())) };
            let m = held.get_or_insert_with(|| self.load().0);
            m.next_part += 1;
            m.next_part
        };
        let file = format!("{}/part-{}-{n}.parquet", day_of(day * DAY_US), std::process::id());
        let path = self.dir.join(&file);
        let folder = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(folder).map_err(|e| fail(&format!("cannot create {}", folder.display()), &e))?;
        let what = format!("cannot write {}", path.display());
        let tmp = tempfile::NamedTempFile::new_in(folder).map_err(|e| fail(&what, &e))?;
        // zstd's fastest level: the sync writes millions of entries and the whole JSON of each
        // compresses well at any level. Unique columns get no dictionary, the JSON no statistics;
        // row groups of 64k entries let a query skip by time inside a file too.
        let mut props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS));
        for unique in ["id", "event"] {
            props = props.set_column_dictionary_enabled(ColumnPath::from(unique), false);
        }
        let props = props.set_column_statistics_enabled(ColumnPath::from("event"), EnabledStatistics::None).build();
        let sink = tmp.as_file().try_clone().map_err(|e| fail(&what, &e))?;
        let writer = ArrowWriter::try_new(sink, self.def.schema(), Some(props)).map_err(|e| fail(&what, &e))?;
        Ok(OpenPart { day, file, tmp, writer, first_us: i64::MAX, last_us: i64::MIN, rows: 0 })
    }

    /// Changes the manifest with `change` and writes it (atomically) before it counts in memory;
    /// `change` answers the files to delete once the new manifest is written.
    fn update(&self, change: impl FnOnce(&mut Manifest) -> Vec<Part>) -> Result<()> {
        let Ok(mut held) = self.manifest.lock() else { return Err(JcsqlError::Cache("store lock".into())) };
        let mut m = held.clone().unwrap_or_else(|| self.load().0);
        let dropped = change(&mut m);
        self.write_manifest(&m)?;
        *held = Some(m);
        for p in dropped {
            let _ = std::fs::remove_file(self.dir.join(p.file));
        }
        Ok(())
    }

    fn record(m: &mut Manifest, facts: FillFacts) {
        m.fetched_at_us = Some(m.fetched_at_us.map_or(facts.fetched_at_us, |f| f.max(facts.fetched_at_us)));
        m.requests = facts.requests;
        m.duration_ms = facts.duration_ms;
        m.bytes_received = facts.bytes_received;
    }

    /// Starts over when the services held are not `services` (the setting changed): what was
    /// held no longer says what is.
    pub fn hold_services(&self, services: Option<&[String]>) -> Result<()> {
        if self.manifest().0.services.as_deref() == services {
            return Ok(());
        }
        self.update(|m| {
            m.held.clear();
            m.fetched_at_us = None;
            m.services = services.map(<[String]>::to_vec);
            std::mem::take(&mut m.parts)
        })
    }

    /// Names `parts` in the manifest and marks `span` held, in one atomic write.
    pub fn commit(&self, parts: Vec<Written>, span: Span, facts: FillFacts) -> Result<()> {
        self.update(|m| {
            m.parts.extend(parts.into_iter().map(|w| w.0));
            m.held = add_span(&m.held, span);
            Self::record(m, facts);
            Vec::new()
        })
    }

    /// Records what a whole fill cost, once its slices are committed.
    pub fn touch(&self, facts: FillFacts) -> Result<()> {
        self.update(|m| {
            Self::record(m, facts);
            Vec::new()
        })
    }

    /// Forgets what is older than `start_us`: parts wholly older are dropped and the held spans
    /// start no earlier. A part reaching across it stays whole (rewriting it at every refresh
    /// would cost more than it saves); queries read from the first held span's start on.
    pub fn trim(&self, start_us: i64) -> Result<()> {
        let (m, _) = self.manifest();
        let clipped: Vec<Span> =
            m.held.iter().filter(|s| s.1 > start_us).map(|&(from, to)| (from.max(start_us), to)).collect();
        if clipped == m.held && m.parts.iter().all(|p| p.last_us >= start_us) {
            return Ok(());
        }
        self.update(|m| {
            let (old, kept): (Vec<Part>, Vec<Part>) = m.parts.drain(..).partition(|p| p.last_us < start_us);
            m.parts = kept;
            m.held = clipped;
            old
        })
    }

    fn read_file(&self, path: &Path) -> Result<Vec<RecordBatch>> {
        let what = format!("cannot read {}", path.display());
        let file = File::open(path).map_err(|e| fail(&what, &e))?;
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(file).and_then(|b| b.build()).map_err(|e| fail(&what, &e))?;
        reader
            .map(|batch| {
                let batch = batch.map_err(|e| fail(&what, &e))?;
                RecordBatch::try_new(self.def.schema(), batch.columns().to_vec()).map_err(|e| fail(&what, &e))
            })
            .collect()
    }

    fn write_manifest(&self, m: &Manifest) -> Result<()> {
        let path = self.dir.join(MANIFEST);
        let what = format!("cannot write {}", path.display());
        std::fs::create_dir_all(&self.dir).map_err(|e| fail(&what, &e))?;
        let tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(|e| fail(&what, &e))?;
        serde_json::to_writer(tmp.as_file(), m).map_err(|e| fail(&what, &e))?;
        tmp.as_file().sync_all().map_err(|e| fail(&what, &e))?;
        tmp.persist(&path).map_err(|e| fail(&what, &e.error))?;
        Ok(())
    }

    /// The files of the parts holding entries between `from_us` and `to_us` (inclusive).
    pub fn files_between(&self, from_us: i64, to_us: i64) -> Vec<PathBuf> {
        let (m, _) = self.manifest();
        m.parts.iter().filter(|p| p.last_us >= from_us && p.first_us <= to_us).map(|p| self.dir.join(&p.file)).collect()
    }

    /// The held start, when a part between `from_us` and `to_us` also holds older entries
    /// (the part reaching across the window's old end): reads start there.
    pub fn floor_between(&self, from_us: i64, to_us: i64) -> Option<i64> {
        let (m, _) = self.manifest();
        let floor = m.held.first()?.0;
        m.parts.iter().any(|p| p.last_us >= from_us && p.first_us <= to_us && p.first_us < floor).then_some(floor)
    }

    /// The ids held with a time in `[from_us, to_us)`: a refresh asks again for the last
    /// minute it holds and keeps only entries it does not have.
    pub fn ids_between(&self, from_us: i64, to_us: i64) -> Result<HashSet<String>> {
        let mut ids = HashSet::new();
        for path in self.files_between(from_us, to_us) {
            let what = format!("cannot read {}", path.display());
            let file = File::open(&path).map_err(|e| fail(&what, &e))?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| fail(&what, &e))?;
            let schema = builder.schema().clone();
            let (Ok(id_at), Ok(time_at)) = (schema.index_of("id"), schema.index_of(self.time_column)) else {
                continue;
            };
            let mask = ProjectionMask::roots(builder.parquet_schema(), [id_at, time_at]);
            let reader = builder.with_projection(mask).build().map_err(|e| fail(&what, &e))?;
            for batch in reader {
                let batch = batch.map_err(|e| fail(&what, &e))?;
                let (Some(id), Some(time)) = (batch.column_by_name("id"), batch.column_by_name(self.time_column))
                else {
                    continue;
                };
                let (id, time) = (id.as_string::<i32>(), time.as_primitive::<TimestampMicrosecondType>());
                for i in 0..batch.num_rows() {
                    if time.is_valid(i) && (from_us..to_us).contains(&time.value(i)) && id.is_valid(i) {
                        ids.insert(id.value(i).to_string());
                    }
                }
            }
        }
        Ok(ids)
    }

    /// Copies the held parts into `folder` as `part-N.parquet`; a part reaching across the
    /// held start is written again from the start on, so the copy holds what queries read.
    pub fn export_to(&self, folder: &Path) -> Result<usize> {
        let (m, _) = self.manifest();
        let floor = m.held.first().map_or(i64::MIN, |s| s.0);
        let what = format!("cannot write {}", folder.display());
        std::fs::create_dir_all(folder).map_err(|e| fail(&what, &e))?;
        for (i, part) in m.parts.iter().enumerate() {
            let to = folder.join(format!("part-{i}.parquet"));
            let from = self.dir.join(&part.file);
            if part.first_us >= floor {
                std::fs::copy(&from, &to).map_err(|e| fail(&what, &e))?;
                continue;
            }
            let file = File::create(&to).map_err(|e| fail(&what, &e))?;
            let mut writer = ArrowWriter::try_new(file, self.def.schema(), None).map_err(|e| fail(&what, &e))?;
            for batch in self.read_file(&from)? {
                let kept = rows_within(&batch, self.time_column, (floor, i64::MAX), &HashSet::new())?;
                writer.write(&kept).map_err(|e| fail(&what, &e))?;
            }
            writer.close().map_err(|e| fail(&what, &e))?;
        }
        Ok(m.parts.len())
    }

    /// Every held entry between `from_us` and `to_us`, read into memory (the many-org table).
    pub fn read_between(&self, from_us: i64, to_us: i64) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        for path in self.files_between(from_us, to_us) {
            out.extend(self.read_file(&path)?);
        }
        Ok(out)
    }
}

/// `spans` with `span` added, merged with those it overlaps or touches.
pub fn add_span(spans: &[Span], span: Span) -> Vec<Span> {
    let mut all: Vec<Span> = spans.to_vec();
    if span.0 < span.1 {
        all.push(span);
    }
    all.sort_unstable();
    let mut out: Vec<Span> = Vec::with_capacity(all.len());
    for s in all {
        match out.last_mut() {
            Some(last) if s.0 <= last.1 => last.1 = last.1.max(s.1),
            _ => out.push(s),
        }
    }
    out
}

/// The parts of `[from, to)` no span of `held` covers.
pub fn gaps(held: &[Span], from: i64, to: i64) -> Vec<Span> {
    let mut out = Vec::new();
    let mut at = from;
    for &(a, b) in held {
        if b <= at {
            continue;
        }
        if a >= to {
            break;
        }
        if a > at {
            out.push((at, a));
        }
        at = at.max(b);
        if at >= to {
            break;
        }
    }
    if at < to {
        out.push((at, to));
    }
    out
}

/// The rows of `batch` with a time in `[from, to)` and an id not in `skip`.
pub fn rows_within(batch: &RecordBatch, time_column: &str, span: Span, skip: &HashSet<String>) -> Result<RecordBatch> {
    use datafusion::arrow::array::BooleanArray;
    let (Some(time), Some(id)) = (batch.column_by_name(time_column), batch.column_by_name("id")) else {
        return Ok(batch.clone());
    };
    let (time, id) = (time.as_primitive::<TimestampMicrosecondType>(), id.as_string::<i32>());
    let keep: BooleanArray = (0..batch.num_rows())
        .map(|i| {
            Some(
                time.is_valid(i)
                    && (span.0..span.1).contains(&time.value(i))
                    && (skip.is_empty() || !id.is_valid(i) || !skip.contains(id.value(i))),
            )
        })
        .collect();
    if keep.true_count() == batch.num_rows() {
        return Ok(batch.clone());
    }
    datafusion::arrow::compute::filter_record_batch(batch, &keep).map_err(|e| fail("cannot filter events", &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_merge_and_gaps_are_what_is_left() {
        let held = add_span(&add_span(&[], (10, 20)), (30, 40));
        assert_eq!(held, vec![(10, 20), (30, 40)]);
        assert_eq!(add_span(&held, (20, 30)), vec![(10, 40)]);
        assert_eq!(gaps(&held, 0, 50), vec![(0, 10), (20, 30), (40, 50)]);
        assert_eq!(gaps(&held, 12, 18), Vec::<Span>::new());
        assert_eq!(gaps(&held, 15, 35), vec![(20, 30)]);
        assert_eq!(gaps(&[], 5, 9), vec![(5, 9)]);
    }
}

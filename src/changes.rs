//! What changed between two snapshots of a table, as rows of `changes.TABLE`: the table's
//! columns (the new row for `added` and `changed`, the old one for `removed`) and `_op`, `_at`
//! (the new snapshot's time), `_since` (the old one's), `_changed` (JSON array of the changed
//! columns), `_before` (JSON object of their old values) and `_source` (`fetch` or `action`).
//!
//! Rows are matched by the table's key (relation tables: the parent and child ids) with Arrow's
//! row format, so a 100,000-row table compares in one pass. Volatile columns (`_fetched_at`,
//! a device's `last_contact`) never make a row `changed`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, new_null_array};
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::ScalarValue;
use serde_json::{Map, Value};

use crate::table::{Kind, TableDef};

/// How long changes are kept, and how many rows a table keeps at most (the newest).
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_age: Duration,
    pub max_rows: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention { max_age: Duration::from_secs(90 * 86400), max_rows: 1_000_000 }
    }
}

/// Where a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSource {
    /// A refresh that replaced the snapshot.
    Fetch,
    /// An applied action's patch of the cache.
    Action,
}

impl ChangeSource {
    fn as_str(self) -> &'static str {
        match self {
            ChangeSource::Fetch => "fetch",
            ChangeSource::Action => "action",
        }
    }
}

/// How many rows of each kind one comparison found (for `jcsql sync`'s summary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChangeCounts {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
}

impl ChangeCounts {
    pub fn is_empty(&self) -> bool {
        self.added + self.removed + self.changed == 0
    }
}

impl std::fmt::Display for ChangeCounts {
    /// `3 added, 1 changed`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = [(self.added, "added"), (self.removed, "removed"), (self.changed, "changed")]
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, w)| format!("{n} {w}"))
            .collect();
        if parts.is_empty() { f.write_str("no changes") } else { f.write_str(&parts.join(", ")) }
    }
}

pub const OP: &str = "_op";
pub const AT: &str = "_at";
pub const SINCE: &str = "_since";
pub const CHANGED: &str = "_changed";
pub const BEFORE: &str = "_before";
pub const SOURCE: &str = "_source";

/// The schema of `changes.TABLE`.
pub fn schema(def: &TableDef) -> SchemaRef {
    let ts = DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()));
    let mut fields: Vec<Field> =
        def.schema().fields().iter().map(|f| f.as_ref().clone().with_metadata(HashMap::new())).collect();
    fields.extend([
        Field::new(OP, DataType::Utf8, false),
        Field::new(AT, ts.clone(), false),
        Field::new(SINCE, ts, true),
        Field::new(CHANGED, DataType::Utf8, true),
        Field::new(BEFORE, DataType::Utf8, true),
        Field::new(SOURCE, DataType::Utf8, false),
    ]);
    Arc::new(Schema::new(fields))
}

/// The columns that identify a row: the parent's id (relation tables), then the key.
pub fn key_columns(def: &TableDef) -> Vec<String> {
    let mut cols: Vec<String> = def.parent_column().map(str::to_string).into_iter().collect();
    for k in def.key {
        if !cols.iter().any(|c| c == k) {
            cols.push(k.to_string());
        }
    }
    cols
}

/// Whether a column's value changing makes its row `changed`.
fn compared(def: &TableDef, name: &str, keys: &[String]) -> bool {
    let volatile = def.volatile.contains(&name);
    let fetched_at = def.column(name).is_some_and(|c| c.kind == Kind::FetchedAt);
    !volatile && !fetched_at && !keys.iter().any(|k| k == name)
}

fn rows_of(converter: &RowConverter, batches: &[RecordBatch], cols: &[usize]) -> Result<Vec<Rows>, ArrowError> {
    batches
        .iter()
        .map(|b| converter.convert_columns(&cols.iter().map(|&i| b.column(i).clone()).collect::<Vec<_>>()))
        .collect()
}

/// The differences between `old` and `new` (snapshots of `def`), as one batch of
/// `changes.TABLE`, and their counts. `None` when nothing changed.
pub fn diff(
    def: &TableDef,
    old: &[RecordBatch],
    new: &[RecordBatch],
    since_us: Option<i64>,
    at_us: i64,
    source: ChangeSource,
) -> Result<Option<(RecordBatch, ChangeCounts)>, ArrowError> {
    let schema = def.schema();
    let keys = key_columns(def);
    let key_idx: Vec<usize> = keys.iter().filter_map(|k| schema.index_of(k).ok()).collect();
    let cmp_idx: Vec<usize> =
        (0..schema.fields().len()).filter(|&i| compared(def, schema.field(i).name(), &keys)).collect();
    let fields = |idx: &[usize]| -> Vec<SortField> {
        idx.iter().map(|&i| SortField::new(schema.field(i).data_type().clone())).collect()
    };
    let key_conv = RowConverter::new(fields(&key_idx))?;
    let (old_keys, new_keys) = (rows_of(&key_conv, old, &key_idx)?, rows_of(&key_conv, new, &key_idx)?);
    // A relation row is all key: it can be added or removed, never changed.
    let values = if cmp_idx.is_empty() {
        None
    } else {
        let val_conv = RowConverter::new(fields(&cmp_idx))?;
        Some((rows_of(&val_conv, old, &cmp_idx)?, rows_of(&val_conv, new, &cmp_idx)?))
    };
    let has_null_key =
        |batches: &[RecordBatch], b: usize, r: usize| key_idx.iter().any(|&k| batches[b].column(k).is_null(r));

    let mut old_at: HashMap<&[u8], (usize, usize)> = HashMap::new();
    for (b, rows) in old_keys.iter().enumerate() {
        for r in 0..rows.num_rows() {
            if !has_null_key(old, b, r) {
                old_at.insert(rows.row(r).data(), (b, r));
            }
        }
    }
    // (from the new snapshot?, batch, row), op, changed columns, the old row of a changed key
    type Pick = ((bool, usize, usize), &'static str, Vec<usize>, Option<(usize, usize)>);
    let mut out: Vec<Pick> = Vec::new();
    let mut counts = ChangeCounts::default();
    for (b, rows) in new_keys.iter().enumerate() {
        for r in 0..rows.num_rows() {
            if has_null_key(new, b, r) {
                continue;
            }
            match old_at.remove(rows.row(r).data()) {
                None => {
                    counts.added += 1;
                    out.push(((true, b, r), "added", Vec::new(), None));
                }
                Some((ob, or)) if values.as_ref().is_some_and(|(o, n)| o[ob].row(or) != n[b].row(r)) => {
                    let changed: Vec<usize> = cmp_idx
                        .iter()
                        .copied()
                        .filter(|&c| value(old[ob].column(c), or) != value(new[b].column(c), r))
                        .collect();
                    if !changed.is_empty() {
                        counts.changed += 1;
                        out.push(((true, b, r), "changed", changed, Some((ob, or))));
                    }
                }
                Some(_) => {}
            }
        }
    }
    let mut removed: Vec<(usize, usize)> = old_at.into_values().collect();
    removed.sort_unstable();
    for (b, r) in removed {
        counts.removed += 1;
        out.push(((false, b, r), "removed", Vec::new(), None));
    }
    if out.is_empty() {
        return Ok(None);
    }

    // The table's columns, taken from the old or the new snapshot row by row.
    let all: Vec<&RecordBatch> = old.iter().chain(new.iter()).collect();
    let picks: Vec<(usize, usize)> =
        out.iter().map(|((is_new, b, r), ..)| (if *is_new { old.len() + b } else { *b }, *r)).collect();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len() + 6);
    for c in 0..schema.fields().len() {
        let arrays: Vec<&dyn Array> = all.iter().map(|b| b.column(c).as_ref()).collect();
        columns.push(if arrays.is_empty() {
            new_null_array(schema.field(c).data_type(), 0)
        } else {
            interleave(&arrays, &picks)?
        });
    }
    let n = out.len();
    let name = |c: usize| schema.field(c).name().clone();
    columns.push(Arc::new(StringArray::from(out.iter().map(|(_, op, ..)| *op).collect::<Vec<_>>())));
    columns.push(Arc::new(TimestampMicrosecondArray::from(vec![at_us; n]).with_timezone("UTC")));
    columns.push(Arc::new(TimestampMicrosecondArray::from(vec![since_us; n]).with_timezone("UTC")));
    columns.push(Arc::new(StringArray::from(
        out.iter()
            .map(|(_, _, ch, _)| {
                (!ch.is_empty()).then(|| Value::from(ch.iter().map(|&c| name(c)).collect::<Vec<_>>()).to_string())
            })
            .collect::<Vec<_>>(),
    )));
    columns.push(Arc::new(StringArray::from(
        out.iter()
            .map(|(_, _, ch, old_row)| {
                old_row.map(|(ob, or)| {
                    let m: Map<String, Value> =
                        ch.iter().map(|&c| (name(c), json_value(old[ob].column(c), or))).collect();
                    Value::Object(m).to_string()
                })
            })
            .collect::<Vec<_>>(),
    )));
    columns.push(Arc::new(StringArray::from(vec![source.as_str(); n])));
    let batch = RecordBatch::try_new(self::schema(def), columns)?;
    Ok(Some((batch, counts)))
}

fn value(col: &ArrayRef, row: usize) -> Option<ScalarValue> {
    ScalarValue::try_from_array(col, row).ok()
}

/// A cell as JSON: text as a string, numbers and booleans as themselves, timestamps as
/// RFC 3339 text, NULL as null.
fn json_value(col: &ArrayRef, row: usize) -> Value {
    if col.is_null(row) {
        return Value::Null;
    }
    match value(col, row) {
        Some(ScalarValue::Boolean(Some(b))) => Value::Bool(b),
        Some(ScalarValue::Int64(Some(i))) => Value::from(i),
        Some(ScalarValue::Utf8(Some(s))) => Value::String(s),
        Some(ScalarValue::TimestampMicrosecond(Some(us), _)) => Value::String(
            chrono::DateTime::from_timestamp_micros(us)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default(),
        ),
        Some(other) => Value::String(other.to_string()),
        None => Value::Null,
    }
}

/// Keeps the change rows of the retention period, at most `max_rows` of them (the newest).
pub fn trim(batches: Vec<RecordBatch>, now_us: i64, retention: Retention) -> Result<Vec<RecordBatch>, ArrowError> {
    let oldest = now_us - retention.max_age.as_micros() as i64;
    let mut kept = Vec::with_capacity(batches.len());
    for b in batches {
        let Some(at) = b.column_by_name(AT).and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>()) else {
            continue;
        };
        let keep: datafusion::arrow::array::BooleanArray =
            at.iter().map(|t| Some(t.is_some_and(|t| t >= oldest))).collect();
        let b = datafusion::arrow::compute::filter_record_batch(&b, &keep)?;
        if b.num_rows() > 0 {
            kept.push(b);
        }
    }
    // Batches are in time order: drop from the front until the newest max_rows remain.
    let mut total: usize = kept.iter().map(RecordBatch::num_rows).sum();
    let mut out = Vec::with_capacity(kept.len());
    for b in kept {
        if total > retention.max_rows {
            let over = total - retention.max_rows;
            if over >= b.num_rows() {
                total -= b.num_rows();
                continue;
            }
            total -= over;
            out.push(b.slice(over, b.num_rows() - over));
        } else {
            out.push(b);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_at(times: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(
            AT,
            DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
            false,
        )]));
        let at = TimestampMicrosecondArray::from(times.to_vec()).with_timezone("UTC");
        RecordBatch::try_new(schema, vec![Arc::new(at)]).expect("batch")
    }

    #[test]
    fn retention_drops_old_rows_and_keeps_the_newest() {
        let day = 86_400_000_000i64;
        let now = 100 * day;
        let batches = vec![batch_at(&[now - 95 * day, now - 91 * day, now - 89 * day]), batch_at(&[now - day, now])];
        let kept = trim(batches.clone(), now, Retention::default()).expect("trim");
        assert_eq!(kept.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
        let capped =
            trim(batches, now, Retention { max_age: Duration::from_secs(90 * 86400), max_rows: 2 }).expect("trim");
        let times: Vec<i64> = capped
            .iter()
            .flat_map(|b| {
                let a = b.column(0).as_any().downcast_ref::<TimestampMicrosecondArray>().expect("ts").clone();
                a.values().to_vec()
            })
            .collect();
        assert_eq!(times, vec![now - day, now], "the newest two");
    }
}

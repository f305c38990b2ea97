//! Kept rows laid out by one text column ([`crate::table::ViewDef::clustered_by`]): all the rows
//! of a value in one partition, the one DataFusion's own repartitioning would send them to (its
//! hash, modulo the partitions), and sorted by the value within each partition.
//!
//! Declared to DataFusion (hash partitioning and sort order), a count per value, or a
//! `count(distinct user_id)` grouped by `application_id`, runs in one stage on every core and
//! streams value by value, instead of exchanging a million pairs between cores and hashing them
//! all into one table.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::HashMap;
use datafusion::common::hash_utils::create_hashes;
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::repartition::REPARTITION_RANDOM_STATE;

use crate::catalog::SLICE_ROWS;

/// Rows laid out in `partitions.len()` partitions by `column`.
#[derive(Debug)]
pub struct Clustered {
    pub column: usize,
    pub partitions: Vec<Vec<RecordBatch>>,
}

/// `batches` laid out by `column` (a text column) in `n` partitions; `None` for other types.
pub fn cluster(batches: &[RecordBatch], column: usize, n: usize) -> Result<Option<Clustered>> {
    let Some(first) = batches.first() else { return Ok(None) };
    if n == 0 || first.schema().fields().get(column).map(|f| f.data_type()) != Some(&DataType::Utf8) {
        return Ok(None);
    }
    // Each row's value, numbered in order of appearance.
    let mut number: HashMap<Option<&str>, usize> = HashMap::new();
    let mut values: Vec<Option<&str>> = Vec::new();
    let mut row_value: Vec<usize> = Vec::new();
    for b in batches {
        let keys = b.column(column).as_string::<i32>();
        for i in 0..keys.len() {
            let v = keys.is_valid(i).then(|| keys.value(i));
            let id = *number.entry(v).or_insert_with(|| {
                values.push(v);
                values.len() - 1
            });
            row_value.push(id);
        }
    }
    // The partition of each value, computed as RepartitionExec computes it.
    let mut hashes = vec![0u64; values.len()];
    create_hashes(
        [&StringArray::from(values.clone()) as &dyn Array],
        REPARTITION_RANDOM_STATE.random_state(),
        &mut hashes,
    )?;
    let partition_of: Vec<usize> = hashes.iter().map(|h| (h % n as u64) as usize).collect();
    // Values by partition, then ascending (NULL first, as DataFusion's default ascending order).
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&x, &y| (partition_of[x], values[x]).cmp(&(partition_of[y], values[y])));
    let mut rank = vec![0usize; values.len()];
    for (r, &v) in order.iter().enumerate() {
        rank[v] = r;
    }
    // A stable counting sort of the rows by their value's rank.
    let mut start = vec![0usize; values.len() + 1];
    for &v in &row_value {
        start[rank[v] + 1] += 1;
    }
    for r in 1..start.len() {
        start[r] += start[r - 1];
    }
    let mut rows_per_partition = vec![0usize; n];
    for (v, &p) in partition_of.iter().enumerate() {
        rows_per_partition[p] += start[rank[v] + 1] - start[rank[v]];
    }
    let mut next = start;
    let mut placed: Vec<(usize, usize)> = vec![(0, 0); row_value.len()];
    let mut i = 0;
    for (b, batch) in batches.iter().enumerate() {
        for r in 0..batch.num_rows() {
            let slot = &mut next[rank[row_value[i]]];
            placed[*slot] = (b, r);
            *slot += 1;
            i += 1;
        }
    }
    let mut ranges = Vec::with_capacity(n);
    let mut offset = 0;
    for rows in rows_per_partition {
        ranges.push(&placed[offset..offset + rows]);
        offset += rows;
    }
    // Each partition copied on its own thread.
    let partitions = std::thread::scope(|scope| {
        let workers: Vec<_> = ranges.into_iter().map(|rows| scope.spawn(move || gather(batches, rows))).collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err(DataFusionError::Internal("laying out rows failed".into()))))
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(Some(Clustered { column, partitions }))
}

/// The rows at `placed` ((batch, row) pairs), in that order, as batches of [`SLICE_ROWS`].
fn gather(batches: &[RecordBatch], placed: &[(usize, usize)]) -> Result<Vec<RecordBatch>> {
    let Some(first) = batches.first() else { return Ok(Vec::new()) };
    let schema = first.schema();
    let columns: Vec<Vec<&dyn Array>> =
        (0..schema.fields().len()).map(|c| batches.iter().map(|b| b.column(c).as_ref()).collect()).collect();
    placed
        .chunks(SLICE_ROWS)
        .map(|chunk| {
            let arrays = columns
                .iter()
                .map(|sources| interleave(sources, chunk))
                .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
            Ok(RecordBatch::try_new(schema.clone(), arrays)?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    #[test]
    fn each_value_lands_whole_in_the_partition_datafusion_would_pick_and_sorted() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("app", DataType::Utf8, true),
            Field::new("n", DataType::Int64, false),
        ]));
        let apps = ["b", "a", "c", "a", "d", "b", "e", "a"];
        let batch = |from: usize, to: usize| {
            let columns: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from(apps[from..to].iter().map(|a| Some(*a)).collect::<Vec<_>>())),
                Arc::new(Int64Array::from((from as i64..to as i64).collect::<Vec<_>>())),
            ];
            RecordBatch::try_new(schema.clone(), columns).expect("batch")
        };
        let c = cluster(&[batch(0, 5), batch(5, 8)], 0, 2).expect("clusters").expect("text column");
        assert_eq!(c.partitions.len(), 2);
        let mut seen = Vec::new();
        for (p, batches) in c.partitions.iter().enumerate() {
            let mut rows: Vec<(String, i64)> = Vec::new();
            for b in batches {
                let (a, n) = (
                    b.column(0).as_string::<i32>(),
                    b.column(1).as_primitive::<datafusion::arrow::datatypes::Int64Type>(),
                );
                rows.extend((0..b.num_rows()).map(|i| (a.value(i).to_string(), n.value(i))));
            }
            let mut sorted = rows.clone();
            sorted.sort_by(|x, y| x.0.cmp(&y.0));
            assert_eq!(rows, sorted, "partition {p} is sorted by app, rows of an app in their first order");
            for (app, _) in &rows {
                let mut h = [0u64];
                create_hashes(
                    [&StringArray::from(vec![app.as_str()]) as &dyn Array],
                    REPARTITION_RANDOM_STATE.random_state(),
                    &mut h,
                )
                .expect("hash");
                assert_eq!((h[0] % 2) as usize, p, "{app} is where RepartitionExec sends it");
            }
            seen.extend(rows);
        }
        seen.sort();
        let mut all: Vec<(String, i64)> = apps.iter().enumerate().map(|(i, a)| (a.to_string(), i as i64)).collect();
        all.sort();
        assert_eq!(seen, all, "every row once");
    }
}

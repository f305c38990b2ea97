//! DataFusion schemas over the cache: one per connection (one long-lived provider per table,
//! plus its views), the meta tables' building block ([`ComputedTable`]), and `jcsql.tables`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::cache::CachedTable;
use crate::connection::Connection;

/// A connection's table. The provider never changes; the snapshot inside it is swapped on
/// refresh, so views (boards) planned before a refresh read the new rows.
#[derive(Debug)]
pub struct ConnectionTable {
    conn: Arc<Connection>,
    table: Arc<CachedTable>,
}

impl ConnectionTable {
    pub fn new(conn: Arc<Connection>, table: Arc<CachedTable>) -> Self {
        ConnectionTable { conn, table }
    }

    /// Parent ids named by `parent_col = 'x'` or `parent_col IN ('x', 'y')`.
    fn parent_ids(&self, filters: &[Expr]) -> Option<Vec<String>> {
        let col = self.table.def.parent_column()?;
        filters.iter().find_map(|f| parent_filter_values(f, col))
    }
}

fn literal_text(e: &Expr) -> Option<String> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s)) | ScalarValue::Utf8View(Some(s)) | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s.clone()),
        Expr::Cast(c) => literal_text(&c.expr),
        _ => None,
    }
}

fn is_column(e: &Expr, name: &str) -> bool {
    matches!(e, Expr::Column(c) if c.name == name)
}

fn parent_filter_values(f: &Expr, col: &str) -> Option<Vec<String>> {
    match f {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) => {
            if is_column(left, col) {
                literal_text(right).map(|v| vec![v])
            } else if is_column(right, col) {
                literal_text(left).map(|v| vec![v])
            } else {
                None
            }
        }
        // The optimizer turns short IN lists into OR chains.
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Or, right }) => {
            let mut values = parent_filter_values(left, col)?;
            values.extend(parent_filter_values(right, col)?);
            Some(values)
        }
        Expr::InList(list) if !list.negated && is_column(&list.expr, col) => {
            list.list.iter().map(literal_text).collect::<Option<Vec<_>>>()
        }
        _ => None,
    }
}

#[async_trait]
impl TableProvider for ConnectionTable {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        let col = self.table.def.parent_column();
        Ok(filters
            .iter()
            .map(|f| match col {
                // Inexact: the filter picks which parents to fetch; DataFusion still applies it.
                Some(c) if parent_filter_values(f, c).is_some() => TableProviderFilterPushDown::Inexact,
                _ => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batches = match self.parent_ids(filters) {
            Some(ids) => self.conn.rows_for_parents(&self.table, &ids).await?,
            None => self.conn.snapshot_for_query(&self.table).await?.batches.clone(),
        };
        let exec = MemorySourceConfig::try_new(&[batches], self.schema(), projection.cloned())?;
        // A limit is only safe when no filter is left for DataFusion to apply after the scan.
        let exec = if filters.is_empty() { exec.with_limit(limit) } else { exec };
        Ok(datafusion::datasource::memory::DataSourceExec::from_data_source(exec))
    }
}

/// A connection's schema (`jumpcloud`): its tables and the views over them.
#[derive(Debug)]
pub struct ConnectionSchema {
    tables: BTreeMap<String, Arc<dyn TableProvider>>,
    views: RwLock<BTreeMap<String, Arc<dyn TableProvider>>>,
}

impl ConnectionSchema {
    pub fn new(conn: &Arc<Connection>) -> Self {
        let tables = conn
            .tables()
            .iter()
            .map(|t| {
                let p: Arc<dyn TableProvider> = Arc::new(ConnectionTable::new(conn.clone(), t.clone()));
                (t.def.name.to_string(), p)
            })
            .collect();
        ConnectionSchema { tables, views: RwLock::new(BTreeMap::new()) }
    }

    pub fn add_view(&self, name: &str, view: Arc<dyn TableProvider>) {
        if let Ok(mut v) = self.views.write() {
            v.insert(name.to_string(), view);
        }
    }
}

#[async_trait]
impl SchemaProvider for ConnectionSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tables.keys().cloned().collect();
        if let Ok(v) = self.views.read() {
            names.extend(v.keys().cloned());
        }
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if let Some(t) = self.tables.get(name) {
            return Ok(Some(t.clone()));
        }
        Ok(self.views.read().ok().and_then(|v| v.get(name).cloned()))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.tables.contains_key(name) || self.views.read().map(|v| v.contains_key(name)).unwrap_or(false)
    }
}

/// A meta table whose rows are computed each time it is scanned.
pub struct ComputedTable {
    schema: SchemaRef,
    compute: Box<dyn Fn() -> Result<RecordBatch> + Send + Sync>,
}

impl std::fmt::Debug for ComputedTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComputedTable").field("schema", &self.schema).finish()
    }
}

impl ComputedTable {
    pub fn new(schema: SchemaRef, compute: impl Fn() -> Result<RecordBatch> + Send + Sync + 'static) -> Self {
        ComputedTable { schema, compute: Box::new(compute) }
    }
}

#[async_trait]
impl TableProvider for ComputedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = (self.compute)()?;
        let exec = MemorySourceConfig::try_new(&[vec![batch]], self.schema(), projection.cloned())?.with_limit(limit);
        Ok(datafusion::datasource::memory::DataSourceExec::from_data_source(exec))
    }
}

pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// A batch of nullable text columns, for meta tables.
pub fn text_batch(columns: Vec<(&str, Vec<Option<String>>)>) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> =
        columns.iter().map(|(_, v)| Arc::new(StringArray::from(v.clone())) as ArrayRef).collect();
    Ok(RecordBatch::try_new(text_schema(&columns.iter().map(|(n, _)| *n).collect::<Vec<_>>()), arrays)?)
}

pub fn text_schema(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(names.iter().map(|n| Field::new(*n, DataType::Utf8, true)).collect::<Vec<_>>()))
}

fn tables_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("schema_name", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("row_count", DataType::Int64, true),
        Field::new("expected_rows", DataType::Int64, true),
        Field::new("fetched_at", timestamp_type(), true),
        Field::new("age_seconds", DataType::Float64, true),
        Field::new("requests", DataType::Int64, true),
        Field::new("duration_ms", DataType::Int64, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("primary_field", DataType::Utf8, true),
        Field::new("description", DataType::Utf8, true),
    ]))
}

/// `jcsql.tables`: one row per table of every connection, with its snapshot's facts and last error.
pub fn tables_meta(connections: Vec<Arc<Connection>>) -> ComputedTable {
    let schema = tables_schema();
    ComputedTable::new(schema.clone(), move || {
        let now = chrono::Utc::now().timestamp_micros();
        let n: usize = connections.iter().map(|c| c.tables().len()).sum();
        let mut schema_name = StringBuilder::new();
        let mut table_name = StringBuilder::new();
        let mut rows = Int64Builder::with_capacity(n);
        let mut expected = Int64Builder::with_capacity(n);
        let mut fetched = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut age = Float64Builder::with_capacity(n);
        let mut requests = Int64Builder::with_capacity(n);
        let mut duration = Int64Builder::with_capacity(n);
        let mut status = StringBuilder::new();
        let mut error = StringBuilder::new();
        let mut primary = StringBuilder::new();
        let mut description = StringBuilder::new();
        for conn in &connections {
            let max_age = conn.freshness().max_age.as_secs_f64();
            for t in conn.tables() {
                let (snap, _) = t.current();
                let st = t.status();
                schema_name.append_value(&conn.name);
                table_name.append_value(t.def.name);
                let meta = snap.meta.as_ref();
                rows.append_option(meta.map(|m| m.rows as i64));
                expected.append_option(meta.and_then(|m| m.expected_rows).map(|e| e as i64));
                fetched.append_option(meta.map(|m| m.fetched_at_us));
                let a = snap.age_seconds(now);
                age.append_option(a);
                requests.append_option(meta.map(|m| m.requests as i64));
                duration.append_option(meta.map(|m| m.duration_ms as i64));
                status.append_value(match (&st.error, a) {
                    (Some(_), _) => "error",
                    (None, None) => "not fetched",
                    (None, Some(a)) if a < max_age => "fresh",
                    (None, Some(_)) => "stale",
                });
                error.append_option(st.error.as_deref());
                primary.append_option(t.def.primary);
                description.append_value(t.def.description);
            }
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(schema_name.finish()),
            Arc::new(table_name.finish()),
            Arc::new(rows.finish()),
            Arc::new(expected.finish()),
            Arc::new(fetched.finish()),
            Arc::new(age.finish()),
            Arc::new(requests.finish()),
            Arc::new(duration.finish()),
            Arc::new(status.finish()),
            Arc::new(error.finish()),
            Arc::new(primary.finish()),
            Arc::new(description.finish()),
        ];
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    })
}

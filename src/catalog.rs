//! DataFusion schemas over the cache: `jumpcloud` (one long-lived provider per table, plus its
//! views) and `jcsql` (meta tables computed when queried).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::cache::CachedTable;
use crate::jumpcloud::Connection;

/// A JumpCloud table. The provider never changes; the snapshot inside it is swapped on refresh,
/// so views (boards) planned before a refresh read the new rows.
#[derive(Debug)]
pub struct JumpCloudTable {
    conn: Arc<Connection>,
    table: Arc<CachedTable>,
}

impl JumpCloudTable {
    pub fn new(conn: Arc<Connection>, table: Arc<CachedTable>) -> Self {
        JumpCloudTable { conn, table }
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
impl TableProvider for JumpCloudTable {
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

/// Schema `jumpcloud`: the tables of one connection and the views over them.
#[derive(Debug)]
pub struct JumpCloudSchema {
    tables: BTreeMap<String, Arc<dyn TableProvider>>,
    views: RwLock<BTreeMap<String, Arc<dyn TableProvider>>>,
}

impl JumpCloudSchema {
    pub fn new(conn: &Arc<Connection>) -> Self {
        let tables = conn
            .tables()
            .iter()
            .map(|t| {
                let p: Arc<dyn TableProvider> = Arc::new(JumpCloudTable::new(conn.clone(), t.clone()));
                (t.def.name.to_string(), p)
            })
            .collect();
        JumpCloudSchema { tables, views: RwLock::new(BTreeMap::new()) }
    }

    pub fn add_view(&self, name: &str, view: Arc<dyn TableProvider>) {
        if let Ok(mut v) = self.views.write() {
            v.insert(name.to_string(), view);
        }
    }
}

#[async_trait]
impl SchemaProvider for JumpCloudSchema {
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

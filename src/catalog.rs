//! DataFusion schemas over the cache: one per connection (one long-lived provider per table,
//! plus its views), the meta tables' building block ([`ComputedTable`]), and `jcsql.tables`.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;

use crate::cache::{CachedTable, Snapshot};
use crate::connection::{Connection, LogFilter};
use crate::layout::Clustered;
use crate::statistics::{HeldRowsSource, HeldStatistics};
use crate::table::Source;

/// The one DataFusion catalog every schema lives in. Postgres clients see it as the database
/// (`current_database()`, `pg_database`, `\l`), so it is named like the URL jcsql serve prints.
pub const CATALOG: &str = "jcsql";

/// A table name without the catalog DataFusion may put in front (`jcsql.jumpcloud.users` →
/// `jumpcloud.users`).
pub fn without_catalog(name: &str) -> &str {
    name.strip_prefix(CATALOG).and_then(|rest| rest.strip_prefix('.')).unwrap_or(name)
}

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

    /// Whether a filter can go into an event log's request (time range, text equalities).
    fn log_filter_column(&self, f: &Expr) -> bool {
        let Source::Log { time_column, .. } = &self.table.def.source else { return false };
        let mut one = LogFilter::default();
        add_log_filter(&mut one, f, time_column);
        one != LogFilter::default()
    }
}

fn literal_time_us(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(v, _) => match v {
            ScalarValue::TimestampSecond(Some(t), _) => Some(t.saturating_mul(1_000_000)),
            ScalarValue::TimestampMillisecond(Some(t), _) => Some(t.saturating_mul(1000)),
            ScalarValue::TimestampMicrosecond(Some(t), _) => Some(*t),
            ScalarValue::TimestampNanosecond(Some(t), _) => Some(t / 1000),
            ScalarValue::Date32(Some(d)) => Some(i64::from(*d) * 86_400_000_000),
            _ => literal_text(e).and_then(|s| crate::table::parse_timestamp_us(&s)),
        },
        Expr::Cast(c) => literal_time_us(&c.expr),
        _ => None,
    }
}

/// Adds what `f` says about an event log to `filter`: `time >= / > / <= / < / BETWEEN` bound
/// the range; `column = 'x'` and `column IN (…)` are equalities.
fn add_log_filter(filter: &mut LogFilter, f: &Expr, time_column: &str) {
    match f {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, value) = if is_column(left, time_column) {
                (*op, right)
            } else if is_column(right, time_column) {
                match op.swap() {
                    Some(swapped) => (swapped, left),
                    None => return,
                }
            } else {
                if let (Operator::Eq, Expr::Column(c)) = (op, left.as_ref())
                    && let Some(v) = literal_text(right)
                {
                    filter.equals.push((c.name.clone(), vec![v]));
                }
                return;
            };
            let Some(t) = literal_time_us(value) else { return };
            match op {
                Operator::GtEq | Operator::Gt => filter.from_us = Some(filter.from_us.map_or(t, |f| f.max(t))),
                Operator::LtEq | Operator::Lt => filter.to_us = Some(filter.to_us.map_or(t, |x| x.min(t))),
                _ => {}
            }
        }
        Expr::Between(b) if !b.negated && is_column(&b.expr, time_column) => {
            if let (Some(lo), Some(hi)) = (literal_time_us(&b.low), literal_time_us(&b.high)) {
                filter.from_us = Some(lo);
                filter.to_us = Some(hi);
            }
        }
        Expr::InList(list) if !list.negated => {
            if let (Expr::Column(c), Some(values)) =
                (list.expr.as_ref(), list.list.iter().map(literal_text).collect::<Option<Vec<_>>>())
            {
                filter.equals.push((c.name.clone(), values));
            }
        }
        _ => {}
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
                _ if self.log_filter_column(f) => TableProviderFilterPushDown::Inexact,
                _ => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // A limit is only safe when no filter is left for DataFusion to apply after the scan.
        let limit = if filters.is_empty() { limit } else { None };
        let batches = match (&self.table.def.source, self.parent_ids(filters)) {
            (_, Some(ids)) => self.conn.rows_for_parents(&self.table, &ids).await?,
            (Source::Log { time_column, .. }, None) => {
                let mut filter = LogFilter::default();
                for f in filters {
                    add_log_filter(&mut filter, f, time_column);
                }
                let rows = self.conn.log_rows(&self.table, &filter, limit).await?;
                return log_exec(state, rows, time_column, self.schema(), projection, filters, limit).await;
            }
            (_, None) => {
                let snapshot = self.conn.snapshot_for_query(&self.table).await?;
                return spread_exec(
                    state,
                    &snapshot.batches,
                    self.schema(),
                    projection,
                    limit,
                    Some(&snapshot.statistics),
                );
            }
        };
        spread_exec(state, &batches, self.schema(), projection, limit, None)
    }
}

/// The scan of an event log: its held parts as a Parquet listing (pruned by their row groups'
/// statistics), beside the entries fetched for this query.
async fn log_exec(
    state: &dyn Session,
    rows: crate::connection::LogRows,
    time_column: &str,
    schema: SchemaRef,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
    let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
    if !rows.files.is_empty() {
        let urls =
            rows.files.iter().map(|f| ListingTableUrl::parse(f.to_string_lossy())).collect::<Result<Vec<_>>>()?;
        // Filters applied while decoding: a failed-logins question reads the user names of the
        // failed entries only, not of every entry.
        let mut parquet = datafusion::config::TableParquetOptions::default();
        parquet.global.pushdown_filters = true;
        parquet.global.reorder_filters = true;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default().with_options(parquet)))
            .with_file_extension(".parquet");
        let config =
            ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).with_schema(schema.clone());
        let parts = ListingTable::try_new(config)?;
        let scan = match rows.floor_us {
            None => parts.scan(state, projection, filters, limit).await?,
            Some(floor) => floored_scan(state, &parts, &schema, time_column, floor, projection, filters).await?,
        };
        inputs.push(scan);
    }
    if !rows.fetched.is_empty() || inputs.is_empty() {
        inputs.push(spread_exec(state, &rows.fetched, schema, projection, limit, None)?);
    }
    if inputs.len() == 1 {
        return Ok(inputs.remove(0));
    }
    datafusion::physical_plan::union::UnionExec::try_new(inputs)
}

/// The parts' rows from `floor` on: the time column is scanned whatever the query projects, a
/// filter keeps the rows from the floor on (pushed into the Parquet decoder by the physical
/// optimizer), and a projection drops the time column again when the query did not ask for it.
async fn floored_scan(
    state: &dyn Session,
    parts: &datafusion::datasource::listing::ListingTable,
    schema: &SchemaRef,
    time_column: &str,
    floor: i64,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
) -> Result<Arc<dyn ExecutionPlan>> {
    use datafusion::physical_expr::expressions::{BinaryExpr as PhysicalBinary, Column as PhysicalColumn, lit};
    use datafusion::physical_expr::projection::ProjectionExpr;
    use datafusion::physical_plan::filter::FilterExec;
    use datafusion::physical_plan::projection::ProjectionExec;
    let time_at = schema.index_of(time_column)?;
    let mut wide: Vec<usize> = projection.cloned().unwrap_or_else(|| (0..schema.fields().len()).collect());
    let added = !wide.contains(&time_at);
    if added {
        wide.push(time_at);
    }
    let scan = parts.scan(state, Some(&wide), filters, None).await?;
    let scanned = scan.schema();
    let time: Arc<dyn datafusion::physical_expr::PhysicalExpr> =
        Arc::new(PhysicalColumn::new(time_column, scanned.index_of(time_column)?));
    let floor = lit(ScalarValue::TimestampMicrosecond(Some(floor), Some("UTC".into())));
    let predicate = Arc::new(PhysicalBinary::new(time, Operator::GtEq, floor));
    let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(predicate, scan)?);
    if !added {
        return Ok(filtered);
    }
    let keep: Vec<ProjectionExpr> = (0..wide.len() - 1)
        .map(|i| {
            let name = scanned.field(i).name().clone();
            ProjectionExpr { expr: Arc::new(PhysicalColumn::new(&name, i)), alias: name }
        })
        .collect();
    Ok(Arc::new(ProjectionExec::try_new(keep, filtered)?))
}

/// Rows per slice a scan hands out.
pub const SLICE_ROWS: usize = 8192;

/// A snapshot as `n` partitions of zero-copy slices dealt in turn, so every core scans (a
/// snapshot is held as one or a few large batches).
pub fn spread(batches: &[RecordBatch], n: usize) -> Vec<Vec<RecordBatch>> {
    let n = n.max(1);
    let mut partitions = vec![Vec::new(); n];
    let mut next = 0;
    for batch in batches {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = SLICE_ROWS.min(batch.num_rows() - offset);
            partitions[next % n].push(batch.slice(offset, len));
            next += 1;
            offset += len;
        }
    }
    partitions
}

/// The scan of rows held in memory, [`spread`] over the session's partitions, with the rows'
/// column statistics when they are held (a snapshot, a kept view) rather than fetched for this
/// query.
fn spread_exec(
    state: &dyn Session,
    batches: &[RecordBatch],
    schema: SchemaRef,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
    statistics: Option<&HeldStatistics>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let n = state.config().target_partitions();
    let partitions = spread(batches, n);
    let exec = MemorySourceConfig::try_new(&partitions, schema.clone(), projection.cloned())?.with_limit(limit);
    match statistics {
        Some(held) => {
            let statistics = held.of(batches, &schema, projection).with_fetch(limit, 0, n)?;
            Ok(HeldRowsSource::exec(exec, statistics, None))
        }
        None => Ok(datafusion::datasource::memory::DataSourceExec::from_data_source(exec)),
    }
}

/// The source snapshots a view's rows were computed from, and the rows (with their statistics).
type Materialized = (Vec<Arc<Snapshot>>, Arc<KeptRows>);

/// A view's rows (with their statistics) and, when the view is clustered, their layout
/// (`rows.batches` holds the same batches, the partitions one after another).
#[derive(Debug)]
struct KeptRows {
    rows: Snapshot,
    clustered: Option<Clustered>,
}

/// A view over a connection's tables kept as rows from its second scan on: computed once for each set of source
/// snapshots (a fetch, or an action's patch, makes new ones) rather than expanded at every query.
/// `user_application_access` is a union and a join over ~300,000 memberships at 100,000 users.
#[derive(Debug)]
pub struct MaterializedView {
    conn: Arc<Connection>,
    sources: Vec<Arc<CachedTable>>,
    plan: LogicalPlan,
    schema: SchemaRef,
    /// The source snapshots the rows were computed from (held, so identity is exact), and the
    /// rows. The async lock makes a recomputation single-flight.
    held: tokio::sync::Mutex<Option<Materialized>>,
    /// The column the rows are laid out by ([`crate::layout`]).
    clustered_by: Option<usize>,
    /// Scans so far in this process: the first is planned from the view's query instead.
    scans: std::sync::atomic::AtomicUsize,
}

impl MaterializedView {
    /// `plan` reads tables of `conn` only.
    pub fn new(conn: Arc<Connection>, plan: LogicalPlan, clustered_by: Option<&str>) -> Self {
        let mut sources: Vec<Arc<CachedTable>> = Vec::new();
        let _ = plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && let Ok(t) = conn.table(scan.table_name.table())
                && !sources.iter().any(|s| Arc::ptr_eq(s, t))
            {
                sources.push(t.clone());
            }
            Ok(TreeNodeRecursion::Continue)
        });
        let schema = Arc::new(plan.schema().as_arrow().clone());
        let clustered_by = clustered_by.and_then(|c| schema.index_of(c).ok());
        MaterializedView {
            conn,
            sources,
            plan,
            schema,
            held: tokio::sync::Mutex::new(None),
            clustered_by,
            scans: Default::default(),
        }
    }

    async fn rows(&self, state: &dyn Session) -> Result<Arc<KeptRows>> {
        let mut current = Vec::with_capacity(self.sources.len());
        for t in &self.sources {
            current.push(self.conn.snapshot_for_query(t).await?);
        }
        let mut held = self.held.lock().await;
        if let Some((from, rows)) = held.as_ref()
            && from.len() == current.len()
            && from.iter().zip(&current).all(|(a, b)| Arc::ptr_eq(a, b))
        {
            return Ok(rows.clone());
        }
        let physical = state.create_physical_plan(&self.plan).await?;
        let batches = datafusion::physical_plan::collect(physical, state.task_ctx()).await?;
        let laid_out = match self.clustered_by {
            Some(column) => crate::layout::cluster(&batches, column, state.config().target_partitions())?,
            None => None,
        };
        let batches = laid_out.as_ref().map_or(batches, |c| c.partitions.concat());
        let kept = KeptRows { rows: Snapshot { batches, ..Default::default() }, clustered: laid_out };
        let kept = Arc::new(kept);
        *held = Some((current, kept.clone()));
        Ok(kept)
    }
}

/// The scan of clustered rows, declaring their partitioning and order when `projection` keeps
/// the clustering column.
fn clustered_exec(
    kept: &KeptRows,
    schema: SchemaRef,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
    n: usize,
) -> Result<Option<Arc<dyn ExecutionPlan>>> {
    use datafusion::physical_expr::expressions::Column;
    use datafusion::physical_expr::{LexOrdering, Partitioning, PhysicalSortExpr};
    let Some(Clustered { column, partitions }) = &kept.clustered else { return Ok(None) };
    let projected_at = match projection {
        Some(p) => p.iter().position(|c| c == column),
        None => Some(*column),
    };
    let Some(projected_at) = projected_at.filter(|_| partitions.len() == n) else { return Ok(None) };
    let name = schema.field(*column).name().clone();
    let order = LexOrdering::new(vec![PhysicalSortExpr::new_default(Arc::new(Column::new(&name, *column)))]);
    let memory = MemorySourceConfig::try_new(partitions, schema.clone(), projection.cloned())?
        .try_with_sort_information(order.into_iter().collect())?
        .with_limit(limit);
    let statistics = kept.rows.statistics.of(&kept.rows.batches, &schema, projection).with_fetch(limit, 0, n)?;
    let partitioning = Partitioning::Hash(vec![Arc::new(Column::new(&name, projected_at))], n);
    Ok(Some(HeldRowsSource::exec(memory, statistics, Some(partitioning))))
}

#[async_trait]
impl TableProvider for MaterializedView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Keeping the rows costs about two queries' worth (4.7 M access paths at 100,000 users,
        // then their layout), and a one-shot run (`-c`, `jcsql check`) reads the view once: the
        // first scan of a process reads the view's query as a plain view would, the second keeps.
        if self.scans.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
            let mut plan = datafusion::logical_expr::LogicalPlanBuilder::from(self.plan.clone());
            if let Some(columns) = projection {
                plan = plan.select(columns.iter().copied())?;
            }
            if let Some(n) = limit {
                plan = plan.limit(0, Some(n))?;
            }
            return PlannedQuery::plan(state, &plan.build()?).await;
        }
        let kept = self.rows(state).await?;
        let n = state.config().target_partitions();
        if let Some(exec) = clustered_exec(&kept, self.schema(), projection, limit, n)? {
            return Ok(exec);
        }
        spread_exec(state, &kept.rows.batches, self.schema(), projection, limit, Some(&kept.rows.statistics))
    }
}

/// A saved query (a board) as a view that keeps its `ORDER BY`: DataFusion drops the sort of a
/// view it inlines, so `select * from boards.x` (what a BI tool sends) would come back unordered.
/// The query is planned whole at scan time; outer filters apply to its rows.
#[derive(Debug)]
pub struct OrderedView {
    plan: LogicalPlan,
    sql: String,
    schema: SchemaRef,
}

impl OrderedView {
    pub fn new(plan: LogicalPlan, sql: String) -> Self {
        let schema = Arc::new(plan.schema().as_arrow().clone());
        OrderedView { plan, sql, schema }
    }
}

#[async_trait]
impl TableProvider for OrderedView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        Some(&self.sql)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let plan = match projection {
            Some(columns) => {
                let exprs: Vec<Expr> = columns
                    .iter()
                    .map(|&i| Expr::Column(datafusion::common::Column::from(self.plan.schema().qualified_field(i))))
                    .collect();
                datafusion::logical_expr::LogicalPlanBuilder::from(self.plan.clone()).project(exprs)?.build()?
            }
            None => self.plan.clone(),
        };
        PlannedQuery::plan(state, &plan).await
    }
}

/// A view's query planned whole inside a table scan: already optimized, so the outer query's
/// optimizer must not run over it again. DataFusion's passes are not idempotent on a finished
/// plan (a second join reordering trips over the dynamic filters the first pass built: "Cannot
/// swap HashJoinExec inputs after dynamic filters have been constructed"), so to the outer
/// plan this is a leaf that executes the inner one.
#[derive(Debug)]
pub struct PlannedQuery {
    inner: Arc<dyn ExecutionPlan>,
    statistics: Arc<datafusion::common::Statistics>,
}

impl PlannedQuery {
    pub async fn plan(state: &dyn Session, plan: &LogicalPlan) -> Result<Arc<dyn ExecutionPlan>> {
        use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};
        let inner = state.create_physical_plan(plan).await?;
        let statistics = StatisticsContext::new().compute(inner.as_ref(), &StatisticsArgs::new())?;
        Ok(Arc::new(PlannedQuery { inner, statistics }))
    }
}

impl datafusion::physical_plan::DisplayAs for PlannedQuery {
    fn fmt_as(
        &self,
        _t: datafusion::physical_plan::DisplayFormatType,
        f: &mut std::fmt::Formatter,
    ) -> std::fmt::Result {
        let inner = datafusion::physical_plan::displayable(self.inner.as_ref()).indent(false).to_string();
        write!(f, "PlannedQuery: [{}]", inner.trim_end().replace('\n', "; "))
    }
}

impl ExecutionPlan for PlannedQuery {
    fn name(&self) -> &str {
        "PlannedQuery"
    }

    fn properties(&self) -> &Arc<datafusion::physical_plan::PlanProperties> {
        self.inner.properties()
    }

    /// The inner plan's expressions are its own business: nothing outside rewrites them.
    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn datafusion::physical_expr::PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<datafusion::execution::TaskContext>,
    ) -> Result<datafusion::execution::SendableRecordBatchStream> {
        self.inner.execute(partition, context)
    }

    fn partition_statistics(&self, partition: Option<usize>) -> Result<Arc<datafusion::common::Statistics>> {
        match partition {
            None => Ok(self.statistics.clone()),
            Some(_) => Ok(Arc::new(datafusion::common::Statistics::new_unknown(&self.schema()))),
        }
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
        // Event logs: the window the snapshot covers and its newest entry.
        Field::new("covers_from", timestamp_type(), true),
        Field::new("newest_row", timestamp_type(), true),
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
        let mut covers_from = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        let mut newest = TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC");
        for conn in &connections {
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
                    (None, Some(_)) if conn.is_young(t, a) => "fresh",
                    (None, Some(_)) => "stale",
                });
                error.append_option(st.error.as_deref());
                primary.append_option(t.def.primary);
                description.append_value(t.def.description);
                covers_from.append_option(meta.and_then(|m| m.covers_from_us));
                newest.append_option(meta.and_then(|m| m.newest_us));
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
            Arc::new(covers_from.finish()),
            Arc::new(newest.finish()),
        ];
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    })
}

/// `changes.TABLE`: what changed in a table, refreshed first when the table is stale (so "since
/// yesterday" is up to date).
#[derive(Debug)]
pub struct ChangesTable {
    conn: Arc<Connection>,
    table: Arc<CachedTable>,
}

impl ChangesTable {
    pub fn new(conn: Arc<Connection>, table: Arc<CachedTable>) -> Self {
        ChangesTable { conn, table }
    }
}

#[async_trait]
impl TableProvider for ChangesTable {
    fn schema(&self) -> SchemaRef {
        crate::changes::schema(self.table.def)
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
        if self.conn.is_connected() && !self.conn.freshness().offline {
            self.conn.snapshot_for_query(&self.table).await?;
        }
        let exec =
            MemorySourceConfig::try_new(&[self.table.changes()], self.schema(), projection.cloned())?.with_limit(limit);
        Ok(datafusion::datasource::memory::DataSourceExec::from_data_source(exec))
    }
}

/// `changes.all`: every table's changes as one feed (table_name, op, key, at, changed, source);
/// `key` is the row's key values joined by `/`.
pub fn changes_feed(conn: Arc<Connection>) -> ComputedTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("op", DataType::Utf8, false),
        Field::new("key", DataType::Utf8, true),
        Field::new("at", timestamp_type(), false),
        Field::new("changed", DataType::Utf8, true),
        Field::new("source", DataType::Utf8, false),
    ]));
    ComputedTable::new(schema.clone(), move || {
        let (mut table, mut op, mut key, mut changed, mut source) = (
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        let mut at = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        for t in conn.tables() {
            let keys = crate::changes::key_columns(t.def);
            for b in t.changes() {
                let text =
                    |name: &str| b.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned());
                let (Some(ops), Some(ch), Some(src)) =
                    (text(crate::changes::OP), text(crate::changes::CHANGED), text(crate::changes::SOURCE))
                else {
                    continue;
                };
                let times = b.column_by_name(crate::changes::AT).and_then(|c| {
                    c.as_any().downcast_ref::<datafusion::arrow::array::TimestampMicrosecondArray>().cloned()
                });
                let key_cols: Vec<StringArray> = keys.iter().filter_map(|k| text(k)).collect();
                for i in 0..b.num_rows() {
                    table.append_value(t.def.name);
                    op.append_value(ops.value(i));
                    let parts: Vec<&str> =
                        key_cols.iter().map(|c| if c.is_valid(i) { c.value(i) } else { "" }).collect();
                    key.append_value(parts.join("/"));
                    at.append_option(times.as_ref().map(|a| a.value(i)));
                    changed.append_option(ch.is_valid(i).then(|| ch.value(i)));
                    source.append_value(src.value(i));
                }
            }
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(table.finish()),
            Arc::new(op.finish()),
            Arc::new(key.finish()),
            Arc::new(at.finish()),
            Arc::new(changed.finish()),
            Arc::new(source.finish()),
        ];
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    })
}

/// The schema that holds a connection's change tables: `changes` for the default connection,
/// `NAME_changes` for others.
pub fn changes_schema(conn: &Arc<Connection>, default: bool) -> (String, Arc<dyn SchemaProvider>) {
    let schema = datafusion::catalog::MemorySchemaProvider::new();
    for t in conn.tables() {
        let _ = schema.register_table(t.def.name.to_string(), Arc::new(ChangesTable::new(conn.clone(), t.clone())));
    }
    let _ = schema.register_table("all".into(), Arc::new(changes_feed(conn.clone())));
    let name = if default { "changes".to_string() } else { format!("{}_changes", conn.name) };
    (name, Arc::new(schema))
}

/// `jumpcloud_all.TABLE`: every org's TABLE with a leading `org` column. `WHERE org = …` /
/// `IN (…)` fetches only those orgs; at most 8 orgs are fetched at once (all under the key's one
/// limiter). An org that fails is left out with a warning, and the others still answer.
#[derive(Debug)]
pub struct OrgUnionTable {
    schema: SchemaRef,
    /// (org name, its connection, its table)
    members: Vec<(String, Arc<Connection>, Arc<CachedTable>)>,
}

/// Orgs fetched at once for a union query.
const ORGS_AT_ONCE: usize = 8;

impl OrgUnionTable {
    pub fn new(members: Vec<(String, Arc<Connection>, Arc<CachedTable>)>) -> Option<Self> {
        let first = members.first()?;
        let mut fields = vec![Arc::new(Field::new("org", DataType::Utf8, false))];
        fields.extend(first.2.schema().fields().iter().cloned());
        Some(OrgUnionTable { schema: Arc::new(Schema::new(fields)), members })
    }

    fn wanted_orgs(filters: &[Expr]) -> Option<Vec<String>> {
        filters.iter().find_map(|f| parent_filter_values(f, "org"))
    }
}

#[async_trait]
impl TableProvider for OrgUnionTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                if parent_filter_values(f, "org").is_some() {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        use futures::StreamExt;
        let wanted = Self::wanted_orgs(filters);
        let members: Vec<(String, Arc<Connection>, Arc<CachedTable>)> =
            self.members.iter().filter(|(org, ..)| wanted.as_ref().is_none_or(|w| w.contains(org))).cloned().collect();
        let fetched: Vec<(String, std::result::Result<Vec<RecordBatch>, crate::error::JcsqlError>)> =
            futures::stream::iter(members)
                .map(|(org, conn, table)| async move {
                    let rows = match &table.log {
                        // Every org's log read into memory: a many-org question about events is rare.
                        Some(store) => match conn.log_rows(&table, &LogFilter::default(), None).await {
                            Ok(rows) => store.read_between(i64::MIN, i64::MAX).map(|mut held| {
                                held.extend(rows.fetched);
                                held
                            }),
                            Err(e) => Err(e),
                        },
                        None => conn.snapshot_for_query(&table).await.map(|s| s.batches.clone()),
                    };
                    (org, rows)
                })
                .buffer_unordered(ORGS_AT_ONCE)
                .collect()
                .await;
        let mut batches = Vec::new();
        for (org, result) in fetched {
            let snapshot = match result {
                Ok(s) => s,
                Err(e) => {
                    if let Some((_, conn, _)) = self.members.iter().find(|(o, ..)| *o == org) {
                        conn.observer().warning(&format!("org {org} is left out: {e}"));
                    }
                    continue;
                }
            };
            for b in &snapshot {
                let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec![org.as_str(); b.num_rows()]))];
                cols.extend(b.columns().iter().cloned());
                batches.push(RecordBatch::try_new(self.schema.clone(), cols)?);
            }
        }
        let limit = if filters.is_empty() { limit } else { None };
        spread_exec(state, &batches, self.schema(), projection, limit, None)
    }
}

/// An org for `jcsql.orgs`: name, org id, display name, its connection.
pub type OrgEntry = (String, String, Option<String>, Arc<Connection>);

/// `jcsql.orgs`: each org (name, org_id, display_name), how many of its tables are fresh, and
/// the last error any of its tables met.
pub fn orgs_meta(orgs: Vec<OrgEntry>) -> ComputedTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("org_id", DataType::Utf8, false),
        Field::new("display_name", DataType::Utf8, true),
        Field::new("tables_fresh", DataType::Int64, false),
        Field::new("error", DataType::Utf8, true),
    ]));
    ComputedTable::new(schema.clone(), move || {
        let now = chrono::Utc::now().timestamp_micros();
        let mut fresh = Int64Builder::new();
        let mut error = StringBuilder::new();
        for (_, _, _, conn) in &orgs {
            let n = conn.tables().iter().filter(|t| conn.is_young(t, t.current().0.age_seconds(now))).count();
            fresh.append_value(n as i64);
            error.append_option(conn.tables().iter().find_map(|t| t.status().error));
        }
        let text = |f: &dyn Fn(&OrgEntry) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from(orgs.iter().map(f).collect::<Vec<_>>()))
        };
        let cols: Vec<ArrayRef> = vec![
            text(&|o| Some(o.0.clone())),
            text(&|o| Some(o.1.clone())),
            text(&|o| o.2.clone()),
            Arc::new(fresh.finish()),
            Arc::new(error.finish()),
        ];
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    })
}

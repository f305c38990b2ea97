//! A board or table as a page: filters, sort, pages, facets and exports, all run by the engine
//! with DataFusion's DataFrame API (names are identifiers, values literals: nothing a visitor
//! types becomes SQL text).
//!
//! A board runs once per request and is held for that request's queries (the page, the count,
//! each facet), numbered in its own order so pages never repeat or skip a row. A board without
//! an `ORDER BY` is put in the order of all its columns, so two requests agree on its pages.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, UInt64Array};
use datafusion::arrow::compute::can_cast_types;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::JoinType;
use datafusion::dataframe::DataFrame;
use datafusion::error::DataFusionError;
use datafusion::functions::string::expr_fn::{contains, lower};
use datafusion::functions_aggregate::expr_fn::{count, min};
use datafusion::logical_expr::{Expr, LogicalPlan, SortExpr, cast, col, ident, lit};
use datafusion::prelude::SessionContext;

use crate::Engine;
use crate::boards::Board;

pub const PAGE_ROWS: usize = 100;
/// A facet is offered for a text or boolean column with at most this many distinct values.
pub const FACET_MAX_VALUES: usize = 20;
/// Facets shown at most, first columns first.
const FACETS_SHOWN: usize = 6;
/// The column that numbers a board's rows in its own order (never shown).
const ROW: &str = "__jcsql_row";

/// What a page shows of its rows: the query string, parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    /// `q`: any column contains this, case-insensitively.
    pub q: String,
    /// `f.COL=V`: equality; values of one column are ORed, columns ANDed. An empty value is NULL.
    pub filters: Vec<(String, Vec<String>)>,
    pub sort: Option<String>,
    pub descending: bool,
    /// From 1.
    pub page: usize,
    /// `add=TABLE.FIELD`: fields of other tables shown as columns (Add field).
    pub add: Vec<String>,
}

impl View {
    pub fn parse(query: &str) -> View {
        let mut v = View { page: 1, ..View::default() };
        for (k, val) in form_urlencoded::parse(query.as_bytes()) {
            let (k, val) = (k.into_owned(), val.into_owned());
            match k.as_str() {
                "q" => v.q = val,
                "sort" if !val.is_empty() => v.sort = Some(val),
                "dir" => v.descending = val.eq_ignore_ascii_case("desc"),
                "page" => v.page = val.trim().parse().unwrap_or(1).max(1),
                "add" if !val.is_empty() && !v.add.contains(&val) => v.add.push(val),
                _ => {
                    if let Some(column) = k.strip_prefix("f.") {
                        match v.filters.iter_mut().find(|(c, _)| c == column) {
                            Some((_, values)) if !values.contains(&val) => values.push(val),
                            Some(_) => {}
                            None => v.filters.push((column.to_string(), vec![val])),
                        }
                    }
                }
            }
        }
        v
    }

    /// The query string (without `?`), page included when it is not 1.
    pub fn query(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        if !self.q.is_empty() {
            s.append_pair("q", &self.q);
        }
        for (c, values) in &self.filters {
            for v in values {
                s.append_pair(&format!("f.{c}"), v);
            }
        }
        if let Some(sort) = &self.sort {
            s.append_pair("sort", sort);
            s.append_pair("dir", if self.descending { "desc" } else { "asc" });
        }
        for a in &self.add {
            s.append_pair("add", a);
        }
        if self.page > 1 {
            s.append_pair("page", &self.page.to_string());
        }
        s.finish()
    }

    /// This view with `column = value` toggled (page back to 1).
    pub fn toggled(&self, column: &str, value: &str) -> View {
        let mut v = View { page: 1, ..self.clone() };
        match v.filters.iter().position(|(c, _)| c == column) {
            Some(i) => {
                let values = &mut v.filters[i].1;
                match values.iter().position(|x| x == value) {
                    Some(j) => {
                        values.remove(j);
                        if values.is_empty() {
                            v.filters.remove(i);
                        }
                    }
                    None => values.push(value.to_string()),
                }
            }
            None => v.filters.push((column.to_string(), vec![value.to_string()])),
        }
        v
    }

    pub fn is_selected(&self, column: &str, value: &str) -> bool {
        self.filters.iter().any(|(c, vs)| c == column && vs.iter().any(|v| v == value))
    }

    /// Sorted by `column`: ascending first, descending when it already is ascending.
    pub fn sorted_by(&self, column: &str) -> View {
        let descending = self.sort.as_deref() == Some(column) && !self.descending;
        View { sort: Some(column.to_string()), descending, page: 1, ..self.clone() }
    }

    pub fn on_page(&self, page: usize) -> View {
        View { page, ..self.clone() }
    }

    pub fn with_field(&self, field: &str) -> View {
        let mut v = View { page: 1, ..self.clone() };
        if !v.add.iter().any(|a| a == field) {
            v.add.push(field.to_string());
        }
        v
    }
}

/// A request the page cannot answer, said in one sentence (a 4xx page).
#[derive(Debug, Clone, PartialEq)]
pub struct BadView(pub String);

/// A field another table offers to join to a board's key (Add field).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinableField {
    /// `hr.cost_center`
    pub name: String,
    /// The table (`hr`, `google.users`) and its column that matches the board's `key`.
    pub table: String,
    pub table_column: String,
    pub field: String,
    pub key: String,
    pub match_rate: Option<f64>,
}

/// The rows a page is drawn from: the board (or table) as one DataFrame, with its own order.
pub struct Rows {
    pub ctx: SessionContext,
    pub frame: DataFrame,
    /// The shown columns (without the row number).
    pub columns: Vec<(String, DataType)>,
    /// The order when no sort is asked for (the row number, or a table's key).
    own_order: Vec<SortExpr>,
}

/// An identifier as SQL text: bare when it is one already (so the tables a saved board reads
/// are named as everywhere else), else quoted.
fn quoted(name: &str) -> String {
    let bare = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if bare { name.to_string() } else { format!("\"{}\"", name.replace('"', "\"\"")) }
}

fn failed(engine: &Engine, e: &DataFusionError) -> String {
    engine.explain(e)
}

/// Whether a plan's rows come out sorted (a board with `ORDER BY`).
fn is_ordered(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Sort(_) => true,
        LogicalPlan::Projection(p) => is_ordered(&p.input),
        LogicalPlan::SubqueryAlias(a) => is_ordered(&a.input),
        LogicalPlan::Limit(l) => is_ordered(&l.input),
        _ => false,
    }
}

fn sortable(t: &DataType) -> bool {
    !t.is_nested() && !matches!(t, DataType::Binary | DataType::LargeBinary | DataType::BinaryView)
}

impl Rows {
    /// A board's rows, with `fields` joined on.
    pub async fn board(engine: &Engine, board: &Board, fields: &[&JoinableField]) -> Result<Rows, String> {
        let ctx = engine.context().clone();
        let sql = format!("select * from {}.{}", crate::boards::SCHEMA, quoted(&board.name));
        let mut frame = ctx.sql(&sql).await.map_err(|e| failed(engine, &e))?;
        // The view is a scan until the optimizer inlines it: its own SQL says whether it sorts.
        let own = ctx.state().create_logical_plan(&board.sql).await.map_err(|e| failed(engine, &e))?;
        if !is_ordered(&own) {
            let order: Vec<SortExpr> = frame
                .schema()
                .fields()
                .iter()
                .filter(|f| sortable(f.data_type()))
                .map(|f| ident(f.name()).sort(true, false))
                .collect();
            if !order.is_empty() {
                frame = frame.sort(order).map_err(|e| failed(engine, &e))?;
            }
        }
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await.map_err(|e| failed(engine, &e))?;
        let mut frame = numbered(&ctx, &schema, batches).map_err(|e| failed(engine, &e))?;
        for field in fields {
            frame = join_field(&ctx, frame, field).await.map_err(|e| failed(engine, &e))?;
        }
        if !fields.is_empty() {
            // Joined once here, not again by each of the page's queries (which order by the row
            // number, so the join's order does not matter).
            let schema = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await.map_err(|e| failed(engine, &e))?;
            frame = held(&ctx, schema, batches).map_err(|e| failed(engine, &e))?;
        }
        Ok(Rows::new(ctx, frame, vec![ident(ROW).sort(true, false)]))
    }

    /// A table's rows, in the order of `key` (its key columns).
    pub async fn table(engine: &Engine, qualified: &str, key: &[String]) -> Result<Rows, String> {
        let ctx = engine.context().clone();
        let frame = ctx.table(qualified).await.map_err(|e| failed(engine, &e))?;
        let order = key.iter().map(|k| ident(k).sort(true, false)).collect();
        Ok(Rows::new(ctx, frame, order))
    }

    fn new(ctx: SessionContext, frame: DataFrame, own_order: Vec<SortExpr>) -> Rows {
        let columns = frame
            .schema()
            .fields()
            .iter()
            .filter(|f| f.name() != ROW)
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        Rows { ctx, frame, columns, own_order }
    }

    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|(c, _)| c.clone()).collect()
    }

    fn check_column(&self, column: &str, what: &str) -> Result<(), BadView> {
        if self.columns.iter().any(|(c, _)| c == column) {
            return Ok(());
        }
        let names: Vec<&str> = self.columns.iter().map(|(c, _)| c.as_str()).collect();
        Err(BadView(format!(
            "cannot {what} by {column}: there is no such column; the columns are {}",
            names.join(", ")
        )))
    }

    /// The rows under `view`'s search and filters, leaving out the filter of `except`.
    fn filtered(&self, view: &View, except: Option<&str>) -> Result<DataFrame, BadView> {
        let mut predicate: Option<Expr> = None;
        let mut and = |e: Expr| {
            predicate = Some(match predicate.take() {
                Some(p) => p.and(e),
                None => e,
            })
        };
        if !view.q.trim().is_empty() {
            let needle = lit(view.q.trim().to_lowercase());
            let any = self
                .columns
                .iter()
                .filter(|(_, t)| can_cast_types(t, &DataType::Utf8))
                .map(|(c, _)| contains(lower(cast(ident(c), DataType::Utf8)), needle.clone()))
                .reduce(Expr::or);
            and(any.unwrap_or(lit(false)));
        }
        for (column, values) in &view.filters {
            self.check_column(column, "filter")?;
            if except == Some(column.as_str()) {
                continue;
            }
            let either = values
                .iter()
                .map(|v| {
                    if v.is_empty() {
                        ident(column).is_null()
                    } else {
                        cast(ident(column), DataType::Utf8).eq(lit(v.clone()))
                    }
                })
                .reduce(Expr::or);
            if let Some(e) = either {
                and(e);
            }
        }
        let frame = self.frame.clone();
        match predicate {
            None => Ok(frame),
            Some(p) => frame.filter(p).map_err(|e| BadView(format!("cannot filter these rows: {e}"))),
        }
    }

    fn order(&self, view: &View) -> Result<Vec<SortExpr>, BadView> {
        let mut order = Vec::new();
        if let Some(column) = &view.sort {
            self.check_column(column, "sort")?;
            order.push(ident(column).sort(!view.descending, false));
        }
        order.extend(self.own_order.iter().cloned());
        Ok(order)
    }

    fn shown(&self, frame: DataFrame) -> Result<DataFrame, DataFusionError> {
        frame.select(self.columns.iter().map(|(c, _)| ident(c)).collect::<Vec<_>>())
    }

    /// One page of rows under `view`, and how many rows match.
    pub async fn page(&self, view: &View) -> Result<Result<(Vec<RecordBatch>, usize), String>, BadView> {
        let filtered = self.filtered(view, None)?;
        let order = self.order(view)?;
        let count = filtered.clone().count();
        let offset = (view.page - 1).saturating_mul(PAGE_ROWS);
        let rows = async {
            let sorted = filtered.sort(order)?.limit(offset, Some(PAGE_ROWS))?;
            self.shown(sorted)?.collect().await
        };
        let (count, rows) = futures::join!(count, rows);
        Ok(match (count, rows) {
            (Ok(c), Ok(r)) => Ok((r, c)),
            (Err(e), _) | (_, Err(e)) => Err(e.to_string()),
        })
    }

    /// Every row under `view`'s filters and sort (the exports).
    pub async fn all(&self, view: &View) -> Result<Result<(SchemaRef, Vec<RecordBatch>), String>, BadView> {
        let sorted = self.filtered(view, None)?.sort(self.order(view)?);
        let result = async {
            let frame = self.shown(sorted?)?;
            let schema = Arc::new(frame.schema().as_arrow().clone());
            Ok::<_, DataFusionError>((schema, frame.collect().await?))
        };
        Ok(result.await.map_err(|e| e.to_string()))
    }

    /// Value counts of the text and boolean columns with few distinct values, each counted
    /// under the other columns' filters (so another value of the same column can be added).
    pub async fn facets(&self, view: &View) -> Result<Vec<Facet>, BadView> {
        let candidates: Vec<String> = self
            .columns
            .iter()
            .filter(|(_, t)| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean))
            .map(|(c, _)| c.clone())
            .collect();
        let few = futures::future::join_all(candidates.iter().map(|c| async move {
            let distinct =
                self.frame.clone().select(vec![ident(c)])?.distinct()?.limit(0, Some(FACET_MAX_VALUES + 1))?;
            let n: usize = distinct.collect().await?.iter().map(RecordBatch::num_rows).sum();
            Ok::<bool, DataFusionError>(n <= FACET_MAX_VALUES)
        }))
        .await;
        let chosen: Vec<&String> = candidates
            .iter()
            .zip(few)
            .filter(|(_, f)| matches!(f, Ok(true)))
            .map(|(c, _)| c)
            .take(FACETS_SHOWN)
            .collect();
        let mut frames = Vec::new();
        for c in &chosen {
            frames.push((c.to_string(), self.filtered(view, Some(c))?));
        }
        let counted = futures::future::join_all(frames.into_iter().map(|(c, frame)| async move {
            let counts = frame
                .aggregate(vec![cast(ident(&c), DataType::Utf8).alias("value")], vec![count(lit(1)).alias("n")])?
                .sort(vec![col("n").sort(false, false), col("value").sort(true, true)])?
                .collect()
                .await?;
            let mut values = Vec::new();
            for b in &counts {
                let texts = text_column(b.column(0));
                let ns = b.column(1).as_any().downcast_ref::<datafusion::arrow::array::Int64Array>();
                for (i, t) in texts.into_iter().enumerate() {
                    values.push((t, ns.map_or(0, |a| a.value(i))));
                }
            }
            Ok::<Facet, DataFusionError>(Facet { column: c, values })
        }))
        .await;
        Ok(counted.into_iter().filter_map(Result::ok).collect())
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }
}

/// A column's value counts (`None`: NULL).
#[derive(Debug, Clone, PartialEq)]
pub struct Facet {
    pub column: String,
    pub values: Vec<(Option<String>, i64)>,
}

/// The batches, numbered in their order by a row-number column.
fn numbered(ctx: &SessionContext, schema: &SchemaRef, batches: Vec<RecordBatch>) -> Result<DataFrame, DataFusionError> {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(ROW, DataType::UInt64, false));
    let numbered = Arc::new(Schema::new(fields));
    let mut next = 0u64;
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let n = b.num_rows() as u64;
        let mut cols: Vec<ArrayRef> = b.columns().to_vec();
        cols.push(Arc::new(UInt64Array::from_iter_values(next..next + n)));
        next += n;
        out.push(RecordBatch::try_new(numbered.clone(), cols)?);
    }
    held(ctx, numbered, out)
}

/// Rows held in memory for this request's queries.
fn held(ctx: &SessionContext, schema: SchemaRef, batches: Vec<RecordBatch>) -> Result<DataFrame, DataFusionError> {
    let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
    ctx.read_table(Arc::new(table))
}

/// `frame` with `field` joined on: one value per key (the least when several rows match),
/// matched case-insensitively as text.
async fn join_field(
    ctx: &SessionContext,
    frame: DataFrame,
    field: &JoinableField,
) -> Result<DataFrame, DataFusionError> {
    let key = "__jcsql_key";
    let other = ctx.table(field.table.as_str()).await?.filter(ident(&field.table_column).is_not_null())?.aggregate(
        vec![lower(cast(ident(&field.table_column), DataType::Utf8)).alias(key)],
        vec![min(ident(&field.field)).alias(added_column_name(field, &[]))],
    )?;
    let existing: Vec<String> = frame.schema().fields().iter().map(|f| f.name().clone()).collect();
    let name = added_column_name(field, &existing);
    let other = other.select(vec![ident(key), ident(added_column_name(field, &[])).alias(&name)])?;
    let board_key = "__jcsql_board_key";
    let mut shown: Vec<Expr> = existing.iter().map(ident).collect();
    shown.push(ident(&name));
    frame
        .with_column(board_key, lower(cast(ident(&field.key), DataType::Utf8)))?
        .join_on(other, JoinType::Left, vec![ident(board_key).eq(ident(key))])?
        .select(shown)
}

/// The column an added field shows as: its name, or `TABLE_FIELD` when the board has one.
pub fn added_column_name(field: &JoinableField, existing: &[String]) -> String {
    if existing.iter().any(|c| c == &field.field) {
        format!("{}_{}", field.table.rsplit('.').next().unwrap_or(&field.table), field.field)
    } else {
        field.field.clone()
    }
}

/// The SQL of a board that shows `board` with `fields` added (what `#save-board` saves): it reads
/// the board, so the original file stays as it is.
pub fn board_with_fields(board: &Board, columns: &[String], fields: &[&JoinableField]) -> String {
    let mut select = vec!["b.*".to_string()];
    let mut joins = Vec::new();
    let mut existing = columns.to_vec();
    for (i, f) in fields.iter().enumerate() {
        let name = added_column_name(f, &existing);
        select.push(format!("a{i}.v as {}", quoted(&name)));
        joins.push(format!(
            "left join (select lower(cast({tc} as varchar)) as k, min({field}) as v from {table} where {tc} is not null group by 1) a{i}\n  on a{i}.k = lower(cast(b.{key} as varchar))",
            tc = quoted(&f.table_column),
            field = quoted(&f.field),
            table = f.table.split('.').map(quoted).collect::<Vec<_>>().join("."),
            key = quoted(&f.key),
        ));
        existing.push(name);
    }
    format!(
        "select {}\nfrom {}.{} b\n{}",
        select.join(", "),
        crate::boards::SCHEMA,
        quoted(&board.name),
        joins.join("\n")
    )
}

/// The fields of other tables that join to one of `key` (Add field), best match first: every
/// field of each table that matches, not only the matching column.
pub async fn joinable_fields(engine: &Engine, relation: &str, key: &[String]) -> Result<Vec<JoinableField>, String> {
    let found = crate::sources::joinable_fields(
        engine.context(),
        &engine.connection_schemas(),
        relation,
        &engine.sources(),
        true,
    )
    .await?;
    let mut out: Vec<JoinableField> = Vec::new();
    for j in found.iter().filter(|j| key.contains(&j.column)) {
        let Ok(provider) = engine.context().table_provider(j.other_table.as_str()).await else { continue };
        for f in provider.schema().fields() {
            if f.name() == &j.other_column || !sortable(f.data_type()) {
                continue;
            }
            let name = format!("{}.{}", j.other_table, f.name());
            if out.iter().any(|o| o.name == name) {
                continue;
            }
            out.push(JoinableField {
                name,
                table: j.other_table.clone(),
                table_column: j.other_column.clone(),
                field: f.name().clone(),
                key: j.column.clone(),
                match_rate: j.match_rate,
            });
        }
    }
    Ok(out)
}

/// A column's values as text, NULL as `None` (cells show it empty).
pub fn text_column(array: &ArrayRef) -> Vec<Option<String>> {
    let options = FormatOptions::default().with_null("");
    match ArrayFormatter::try_new(array.as_ref(), &options) {
        Ok(f) => (0..array.len()).map(|i| (!array.is_null(i)).then(|| f.value(i).to_string())).collect(),
        Err(_) => vec![None; array.len()],
    }
}

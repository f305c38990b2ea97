//! The user's other tools: a file (table `NAME` in the default schema, so `FROM hr` works; a
//! workbook of several sheets is schema `NAME` with a table per sheet) or a folder of files
//! (schema `NAME`, one table per file) of CSV / JSON / NDJSON / Parquet / Excel exports. CSV and
//! Parquet are read from disk when queried, so they are always as fresh as the export; JSON and
//! workbooks are loaded when connected ([`readers`]).

pub mod readers;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use crate::catalog::{ComputedTable, text_batch, text_schema};
use crate::connection::Connection;
use crate::error::{SourceError, user_message};
use crate::table::relations_of;

/// A source as stored in the config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceConfig {
    pub name: String,
    pub path: PathBuf,
}

/// A registered source and what became of it, for `jcsql.sources`.
#[derive(Debug, Clone)]
pub struct SourceStatus {
    pub name: String,
    /// `file` or `folder`.
    pub kind: &'static str,
    pub path: PathBuf,
    /// Qualified table names (`hr`, `inventory.laptops`).
    pub tables: Vec<String>,
    pub error: Option<SourceError>,
    /// What the user should know (renamed or widened columns, JSON loaded into memory).
    pub notes: Vec<String>,
}

/// Names that cannot be a source: they are schemas of jcsql's own (connections' schemas too).
pub const RESERVED: &[&str] = &["jumpcloud", "jcsql", "boards", "public", "information_schema", "datafusion"];

/// `Device Inventory.csv` → `device_inventory`.
pub fn table_name_for(path: &Path) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let mut out = String::new();
    for c in stem.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let out = out.trim_matches('_').to_string();
    if out.chars().next().is_some_and(|c| c.is_ascii_digit()) { format!("t_{out}") } else { out }
}

/// A source's name must be a plain identifier and must not shadow a schema of jcsql's own
/// (`taken` lists the connections' schemas).
pub fn validate_name(name: &str, taken: &[String]) -> Result<(), SourceError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(SourceError::BadName { name: name.to_string() });
    }
    if RESERVED.contains(&name) || taken.iter().any(|t| t == name) {
        return Err(SourceError::Reserved { name: name.to_string() });
    }
    Ok(())
}

/// Registers what one file holds: its only table as `table`, or, for a workbook of several
/// sheets, a table per sheet in `schema` named `prefix` + the sheet.
async fn register_file(
    ctx: &SessionContext,
    path: &Path,
    single: TableReference,
    sheets: (&str, &str),
    max_json_bytes: u64,
    status: &mut SourceStatus,
) -> Result<(), SourceError> {
    let read = readers::read_file(ctx, path, max_json_bytes).await?;
    status.notes.extend(read.notes);
    let register = |name: TableReference, provider| {
        ctx.register_table(name, provider)
            .map(|_| ())
            .map_err(|e| SourceError::Read { path: path.display().to_string(), reason: e.to_string() })
    };
    for (sheet, provider) in read.tables {
        match sheet {
            None => {
                status.tables.push(single.to_string());
                register(single.clone(), provider)?;
            }
            Some(sheet) => {
                let (schema, prefix) = sheets;
                ensure_schema(ctx, schema);
                let name = format!("{prefix}{}", table_name_for(Path::new(&format!("{sheet}.x"))));
                status.tables.push(format!("{schema}.{name}"));
                register(TableReference::partial(schema, name.as_str()), provider)?;
            }
        }
    }
    Ok(())
}

fn ensure_schema(ctx: &SessionContext, name: &str) {
    if let Some(catalog) = ctx.catalog(crate::catalog::CATALOG)
        && catalog.schema(name).is_none()
    {
        let _ = catalog.register_schema(name, Arc::new(MemorySchemaProvider::new()));
    }
}

/// Registers a source in the engine's session; failures are kept in the status, not raised,
/// so one broken source never stops the others.
pub async fn register(ctx: &SessionContext, cfg: &SourceConfig, taken: &[String], max_json_bytes: u64) -> SourceStatus {
    let mut status = SourceStatus {
        name: cfg.name.clone(),
        kind: if cfg.path.is_dir() { "folder" } else { "file" },
        path: cfg.path.clone(),
        tables: Vec::new(),
        error: None,
        notes: Vec::new(),
    };
    if let Err(e) = validate_name(&cfg.name, taken) {
        status.error = Some(e);
        return status;
    }
    if cfg.path.is_dir() {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&cfg.path) {
            Ok(rd) => rd.flatten().map(|e| e.path()).filter(|p| p.is_file() && readers::is_data_file(p)).collect(),
            Err(e) => {
                status.error =
                    Some(SourceError::Unreadable { path: cfg.path.display().to_string(), reason: e.to_string() });
                return status;
            }
        };
        files.sort();
        ensure_schema(ctx, &cfg.name);
        let mut errors = Vec::new();
        for f in files {
            let table = table_name_for(&f);
            let single = TableReference::partial(cfg.name.as_str(), table.as_str());
            let prefix = format!("{table}_");
            if let Err(e) = register_file(ctx, &f, single, (&cfg.name, &prefix), max_json_bytes, &mut status).await {
                errors.push(e);
            }
        }
        status.tables.sort();
        if status.tables.is_empty() && errors.is_empty() {
            errors.push(SourceError::EmptyFolder { path: cfg.path.display().to_string() });
        }
        status.error = match errors.len() {
            0 => None,
            1 => errors.pop(),
            _ => Some(SourceError::Several(errors)),
        };
    } else {
        let single = TableReference::bare(cfg.name.as_str());
        if let Err(e) = register_file(ctx, &cfg.path, single, (&cfg.name, ""), max_json_bytes, &mut status).await {
            status.error = Some(e);
        }
    }
    status
}

/// Names that suggest a column identifies a row, best first.
const KEY_HINTS: &[&str] = &["id", "email", "username", "user_name", "login", "serial", "hostname", "name"];

fn key_rank(column: &str) -> usize {
    let c = column.to_lowercase();
    KEY_HINTS
        .iter()
        .position(|h| c == *h || c.ends_with(&format!("_{h}")) || c.starts_with(&format!("{h}_")) || c.contains(h))
        .unwrap_or(KEY_HINTS.len())
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The primary field of a source's table: a unique, non-null column, preferring id-, email- and
/// name-like columns. `None` when no column qualifies.
pub async fn primary_field(ctx: &SessionContext, table: &str) -> Option<String> {
    let provider = ctx.table_provider(table).await.ok()?;
    let schema = provider.schema();
    let mut columns: Vec<String> = schema
        .fields()
        .iter()
        .filter(|f| {
            !matches!(
                f.data_type(),
                datafusion::arrow::datatypes::DataType::Float32 | datafusion::arrow::datatypes::DataType::Float64
            )
        })
        .map(|f| f.name().clone())
        .collect();
    columns.sort_by_key(|c| key_rank(c));
    for c in columns {
        let q = quote_ident(&c);
        let sql =
            format!("select count(*) = count({q}) and count({q}) = count(distinct {q}) and count(*) > 0 from {table}");
        let unique = collect(ctx, &sql).await.and_then(|b| {
            b.column(0).as_any().downcast_ref::<datafusion::arrow::array::BooleanArray>().map(|a| a.value(0))
        });
        if unique == Some(true) {
            return Some(c);
        }
    }
    None
}

/// One way to join to a table: a known JumpCloud relation, or a column of another source whose
/// values match one of the table's key columns.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinableField {
    pub column: String,
    pub other_table: String,
    pub other_column: String,
    /// Share of the other column's distinct values found in `column` (NULL for relations).
    pub match_rate: Option<f64>,
    pub matched: Option<i64>,
    pub kind: &'static str,
}

/// Columns whose values identify people and machines across tools.
const MATCHABLE: &[&str] = &[
    "id",
    "email",
    "primary_email",
    "username",
    "serial_number",
    "hostname",
    "display_name",
    "employee_identifier",
    "name",
    "display_label",
    "alternate_email",
];

/// `.fields TABLE`: the known relations of a JumpCloud table, then every column of the other
/// sources whose values match one of TABLE's key columns (case-insensitively), best match first.
/// `held_only` leaves out connection tables not fetched yet (a page must not fetch them all).
pub async fn joinable_fields(
    ctx: &SessionContext,
    connections: &[(String, Arc<Connection>)],
    table: &str,
    sources: &[SourceStatus],
    held_only: bool,
) -> Result<Vec<JoinableField>, String> {
    let qualified = qualify(ctx, connections, table)
        .await
        .ok_or_else(|| format!("unknown table {table}; `.tables` lists the tables"))?;
    // Relations the definitions declare, when the table is a connection's.
    let mut out: Vec<JoinableField> = Vec::new();
    let own = qualified.split_once('.').and_then(|(schema, _)| connections.iter().find(|(name, _)| name == schema));
    if let Some((schema, short)) = qualified.split_once('.')
        && let Some((_, conn)) = own
    {
        out.extend(relations_of(short, conn.definitions, conn.views).into_iter().map(|r| JoinableField {
            column: r.column,
            other_table: format!("{schema}.{}", r.other_table),
            other_column: r.other_column,
            match_rate: None,
            matched: None,
            kind: "relation",
        }));
    }
    let provider = ctx.table_provider(qualified.as_str()).await.map_err(|e| user_message(&e))?;
    let schema = provider.schema();
    let keys: Vec<String> = schema
        .fields()
        .iter()
        .filter(|f| {
            f.data_type() == &datafusion::arrow::datatypes::DataType::Utf8 && MATCHABLE.contains(&f.name().as_str())
        })
        .map(|f| f.name().clone())
        .collect();
    // Other tools' tables (Google's beside JumpCloud's), matched on their identifying columns;
    // another org of the same tool is not another tool.
    let tools: Vec<String> = connections
        .iter()
        .filter(|(_, c)| own.is_none_or(|(_, o)| !std::ptr::eq(c.definitions, o.definitions)))
        .flat_map(|(schema, c)| {
            c.definitions
                .iter()
                .filter(move |d| !held_only || c.table(d.name).is_ok_and(|t| t.current().0.meta.is_some()))
                .map(move |d| format!("{schema}.{}", d.name))
        })
        .collect();
    let candidates =
        sources.iter().flat_map(|s| s.tables.iter()).map(|t| (t, false)).chain(tools.iter().map(|t| (t, true)));
    let mut matches = Vec::new();
    for (other, identifying_only) in candidates {
        if *other == qualified {
            continue;
        }
        let Ok(p) = ctx.table_provider(other.as_str()).await else { continue };
        for f in p.schema().fields() {
            if identifying_only && !MATCHABLE.contains(&f.name().as_str()) {
                continue;
            }
            let oc = quote_ident(f.name());
            for k in &keys {
                let kq = quote_ident(k);
                let sql = format!(
                    "select count(*) as total, count(k.v) as matched from \
                     (select distinct lower(cast({oc} as varchar)) as v from {other} where {oc} is not null) o \
                     left join (select distinct lower({kq}) as v from {qualified} where {kq} is not null) k on o.v = k.v"
                );
                let Some(b) = collect(ctx, &sql).await else { continue };
                let ints = |i: usize| {
                    b.column(i).as_any().downcast_ref::<datafusion::arrow::array::Int64Array>().map(|a| a.value(0))
                };
                if let (Some(total), Some(matched)) = (ints(0), ints(1))
                    && matched > 0
                    && total > 0
                {
                    matches.push(JoinableField {
                        column: k.clone(),
                        other_table: other.clone(),
                        other_column: f.name().clone(),
                        match_rate: Some(matched as f64 / total as f64),
                        matched: Some(matched),
                        kind: "values",
                    });
                }
            }
        }
    }
    matches.sort_by(|a, b| {
        b.match_rate.partial_cmp(&a.match_rate).unwrap_or(std::cmp::Ordering::Equal).then(b.matched.cmp(&a.matched))
    });
    out.extend(matches);
    Ok(out)
}

/// `table` as the session knows it: as written, else in the first connection schema that has
/// it (`devices` → `jumpcloud.devices`). `connections` are (schema, connection), default first.
pub async fn qualify(ctx: &SessionContext, connections: &[(String, Arc<Connection>)], table: &str) -> Option<String> {
    if ctx.table_provider(table).await.is_ok() {
        return Some(table.to_string());
    }
    for (schema, _) in connections {
        let q = format!("{schema}.{table}");
        if ctx.table_provider(q.as_str()).await.is_ok() {
            return Some(q);
        }
    }
    None
}

/// The first batch of a query's result; `None` when it fails or is empty.
async fn collect(ctx: &SessionContext, sql: &str) -> Option<datafusion::arrow::array::RecordBatch> {
    ctx.sql(sql).await.ok()?.collect().await.ok()?.into_iter().next()
}

/// `jcsql.sources`: the other tools' exports, their tables and any error reading them.
pub fn meta_table(sources: Arc<RwLock<Vec<SourceStatus>>>) -> ComputedTable {
    const COLUMNS: [&str; 5] = ["name", "kind", "path", "tables", "error"];
    ComputedTable::new(text_schema(&COLUMNS), move || {
        let all = sources.read().map(|s| s.clone()).unwrap_or_default();
        text_batch(vec![
            ("name", all.iter().map(|s| Some(s.name.clone())).collect()),
            ("kind", all.iter().map(|s| Some(s.kind.to_string())).collect()),
            ("path", all.iter().map(|s| Some(s.path.display().to_string())).collect()),
            ("tables", all.iter().map(|s| Some(s.tables.join(", "))).collect()),
            ("error", all.iter().map(|s| s.error.as_ref().map(ToString::to_string)).collect()),
        ])
    })
}

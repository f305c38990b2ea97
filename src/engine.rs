//! [`Engine`]: a DataFusion session with the JumpCloud schema, the meta tables and the JSON
//! functions registered. This is what a Rust program embeds; the CLI is a thin layer over it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::ViewTable;
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::actions::{self, Actions, Call, CallResult, Permissions};
use crate::boards::{self, Board};
use crate::catalog::{ComputedTable, JumpCloudSchema};
use crate::error::{JcsqlError, Result};
use crate::jumpcloud::client::{ClientConfig, JumpCloudClient};
use crate::jumpcloud::tables::VIEWS;
use crate::jumpcloud::{Connection, Freshness};
use crate::sources::{self, SourceConfig, SourceStatus};

pub const META_SCHEMA: &str = "jcsql";

#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// `None`: no key configured; cached snapshots still answer.
    pub client: Option<ClientConfig>,
    /// Where snapshots are kept; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    pub freshness: Freshness,
    pub permissions: Permissions,
    /// Where applied actions are appended (JSON lines); `None` keeps no log.
    pub audit_log: Option<PathBuf>,
}

/// What a statement produced: its rows, and the action calls its result shows as planned.
pub struct Executed {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// Actions the statement calls (even when no row shows a planned call).
    pub called: std::collections::BTreeSet<String>,
    /// The calls whose `planned #N` appears in the result, to apply after confirmation.
    pub planned: Vec<(usize, Call)>,
}

pub struct Engine {
    ctx: SessionContext,
    connection: Arc<Connection>,
    boards: Arc<RwLock<Vec<Board>>>,
    boards_dir: RwLock<Option<PathBuf>>,
    sources: Arc<RwLock<Vec<SourceStatus>>>,
    actions: Arc<Actions>,
}

impl Engine {
    pub async fn new(options: EngineOptions) -> Result<Engine> {
        let client = options.client.map(JumpCloudClient::new).transpose()?;
        let cache_dir = options.cache_dir.as_ref().map(|d| crate::jumpcloud::cache_dir(d, "jumpcloud"));
        let connection = Arc::new(Connection::new("jumpcloud", client, cache_dir.as_deref(), options.freshness));

        let config =
            SessionConfig::new().with_information_schema(true).with_default_catalog_and_schema("datafusion", "public");
        let mut ctx = SessionContext::new_with_config(config);
        datafusion_functions_json::register_all(&mut ctx)
            .map_err(|e| JcsqlError::Config(format!("cannot register the JSON functions: {e}")))?;

        let catalog =
            ctx.catalog("datafusion").ok_or_else(|| JcsqlError::Config("the default catalog is missing".into()))?;
        let schema = Arc::new(JumpCloudSchema::new(&connection));
        catalog
            .register_schema(&connection.schema_name, schema.clone())
            .map_err(|e| JcsqlError::Config(e.to_string()))?;
        let meta = Arc::new(MemorySchemaProvider::new());
        let actions =
            Arc::new(Actions::new(connection.clone(), options.permissions.clone(), options.audit_log.clone()));
        for udf in actions.udfs() {
            ctx.register_udf(udf);
        }
        let boards: Arc<RwLock<Vec<Board>>> = Arc::default();
        let sources: Arc<RwLock<Vec<SourceStatus>>> = Arc::default();
        let meta_tables = [
            ("tables", tables_meta(connection.clone())),
            ("boards", boards_meta(boards.clone())),
            ("sources", sources_meta(sources.clone())),
            ("action_log", action_log_meta(actions.clone())),
            ("permissions", permissions_meta(actions.clone())),
        ];
        for (name, table) in meta_tables {
            meta.register_table(name.into(), Arc::new(table)).map_err(|e| JcsqlError::Config(e.to_string()))?;
        }
        catalog.register_schema(META_SCHEMA, meta).map_err(|e| JcsqlError::Config(e.to_string()))?;
        catalog
            .register_schema(boards::SCHEMA, Arc::new(MemorySchemaProvider::new()))
            .map_err(|e| JcsqlError::Config(e.to_string()))?;

        for (name, sql, _) in VIEWS {
            let plan = ctx
                .state()
                .create_logical_plan(sql)
                .await
                .map_err(|e| JcsqlError::Config(format!("view {name}: {e}")))?;
            schema.add_view(name, Arc::new(ViewTable::new(plan, Some(sql.to_string()))));
        }
        Ok(Engine { ctx, connection, boards, boards_dir: RwLock::new(None), sources, actions })
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn connection(&self) -> &Arc<Connection> {
        &self.connection
    }

    /// Registers another tool's export (file or folder); a failure is recorded, not raised.
    pub async fn add_source(&self, cfg: &SourceConfig) -> SourceStatus {
        let status = sources::register(self, cfg).await;
        if let Ok(mut list) = self.sources.write() {
            list.retain(|s| s.name != cfg.name);
            list.push(status.clone());
        }
        status
    }

    pub fn sources(&self) -> Vec<SourceStatus> {
        self.sources.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// (Re)loads every board of `dir` as views `boards.NAME`.
    pub async fn load_boards(&self, dir: &Path) -> Vec<Board> {
        let loaded = boards::load_all(self, dir).await;
        if let Ok(mut b) = self.boards.write() {
            *b = loaded.clone();
        }
        if let Ok(mut d) = self.boards_dir.write() {
            *d = Some(dir.to_path_buf());
        }
        loaded
    }

    pub fn boards(&self) -> Vec<Board> {
        self.boards.read().map(|b| b.clone()).unwrap_or_default()
    }

    pub fn boards_dir(&self) -> Option<PathBuf> {
        self.boards_dir.read().ok().and_then(|d| d.clone())
    }

    pub fn actions(&self) -> &Arc<Actions> {
        &self.actions
    }

    /// Runs one statement. Action calls in it are planned, never applied: a disabled action is
    /// refused before anything runs, and the calls the result shows come back in `planned`.
    pub async fn execute(&self, sql: &str) -> std::result::Result<Executed, DataFusionError> {
        self.actions.begin();
        let df = self.ctx.sql(sql).await?;
        let called = actions::called_actions(df.logical_plan());
        let permissions = self.actions.permissions();
        if let Some(refusal) = called.iter().find_map(|a| permissions.refusal(a)) {
            return Err(JcsqlError::Config(refusal).into());
        }
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        let planned =
            if called.is_empty() { Vec::new() } else { self.actions.planned(&actions::planned_numbers(&batches)) };
        Ok(Executed { schema, batches, called, planned })
    }

    /// Applies planned calls (after the user confirmed them).
    pub async fn apply(&self, calls: &[(usize, Call)]) -> Vec<CallResult> {
        self.actions.apply(calls).await
    }

    /// Runs one statement and collects its rows.
    pub async fn sql(&self, sql: &str) -> std::result::Result<Vec<RecordBatch>, DataFusionError> {
        self.ctx.sql(sql).await?.collect().await
    }
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn tables_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("schema_name", DataType::Utf8, false),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("row_count", DataType::Int64, true),
        Field::new("expected_rows", DataType::Int64, true),
        Field::new("fetched_at", ts_type(), true),
        Field::new("age_seconds", DataType::Float64, true),
        Field::new("requests", DataType::Int64, true),
        Field::new("duration_ms", DataType::Int64, true),
        Field::new("status", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
        Field::new("primary_field", DataType::Utf8, true),
        Field::new("description", DataType::Utf8, true),
    ]))
}

/// `jcsql.tables`: one row per JumpCloud table with its snapshot's facts and last error.
fn tables_meta(conn: Arc<Connection>) -> ComputedTable {
    let schema = tables_schema();
    ComputedTable::new(schema.clone(), move || {
        let now = chrono::Utc::now().timestamp_micros();
        let max_age = conn.freshness().max_age.as_secs_f64();
        let n = conn.tables().len();
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
        for t in conn.tables() {
            let (snap, _) = t.current();
            let st = t.status();
            schema_name.append_value(&conn.schema_name);
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

fn text_columns(columns: Vec<(&str, Vec<Option<String>>)>) -> datafusion::error::Result<RecordBatch> {
    let schema =
        Arc::new(Schema::new(columns.iter().map(|(n, _)| Field::new(*n, DataType::Utf8, true)).collect::<Vec<_>>()));
    let arrays: Vec<ArrayRef> = columns
        .into_iter()
        .map(|(_, v)| Arc::new(datafusion::arrow::array::StringArray::from(v)) as ArrayRef)
        .collect();
    Ok(RecordBatch::try_new(schema, arrays)?)
}

fn text_schema(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(names.iter().map(|n| Field::new(*n, DataType::Utf8, true)).collect::<Vec<_>>()))
}

/// `jcsql.boards`: each board, its title, the sources it reads (through other boards too) and its error.
fn boards_meta(boards: Arc<RwLock<Vec<Board>>>) -> ComputedTable {
    const COLUMNS: [&str; 7] = ["name", "title", "description", "sources", "tables", "error", "path"];
    ComputedTable::new(text_schema(&COLUMNS), move || {
        let all = boards.read().map(|b| b.clone()).unwrap_or_default();
        let sources: Vec<Option<String>> =
            all.iter().map(|b| Some(boards::sources_of(b, &all).into_iter().collect::<Vec<_>>().join(", "))).collect();
        text_columns(vec![
            ("name", all.iter().map(|b| Some(b.name.clone())).collect()),
            ("title", all.iter().map(|b| b.title.clone()).collect()),
            ("description", all.iter().map(|b| b.description.clone()).collect()),
            ("sources", sources),
            ("tables", all.iter().map(|b| Some(b.tables.join(", "))).collect()),
            ("error", all.iter().map(|b| b.error.clone()).collect()),
            ("path", all.iter().map(|b| Some(b.path.display().to_string())).collect()),
        ])
    })
}

/// `jcsql.sources`: the other tools' exports, their tables and any error reading them.
fn sources_meta(sources: Arc<RwLock<Vec<SourceStatus>>>) -> ComputedTable {
    const COLUMNS: [&str; 5] = ["name", "kind", "path", "tables", "error"];
    ComputedTable::new(text_schema(&COLUMNS), move || {
        let all = sources.read().map(|s| s.clone()).unwrap_or_default();
        text_columns(vec![
            ("name", all.iter().map(|s| Some(s.name.clone())).collect()),
            ("kind", all.iter().map(|s| Some(s.kind.to_string())).collect()),
            ("path", all.iter().map(|s| Some(s.path.display().to_string())).collect()),
            ("tables", all.iter().map(|s| Some(s.tables.join(", "))).collect()),
            ("error", all.iter().map(|s| s.error.clone()).collect()),
        ])
    })
}

/// `jcsql.action_log`: every applied call from the audit log.
fn action_log_meta(actions: Arc<Actions>) -> ComputedTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("at", ts_type(), true),
        Field::new("action", DataType::Utf8, false),
        Field::new("inputs", DataType::Utf8, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("http_status", DataType::Int64, true),
    ]));
    ComputedTable::new(schema.clone(), move || {
        let entries = actions.read_audit();
        let mut at = TimestampMicrosecondBuilder::with_capacity(entries.len()).with_timezone("UTC");
        let mut status = Int64Builder::with_capacity(entries.len());
        for e in &entries {
            at.append_option(crate::jumpcloud::tables::parse_timestamp_us(&e.at));
            status.append_option(e.http_status.map(i64::from));
        }
        let text = |f: &dyn Fn(&actions::AuditEntry) -> String| -> ArrayRef {
            Arc::new(datafusion::arrow::array::StringArray::from(entries.iter().map(f).collect::<Vec<_>>()))
        };
        let cols: Vec<ArrayRef> = vec![
            Arc::new(at.finish()),
            text(&|e| e.action.clone()),
            text(&|e| e.inputs.to_string()),
            text(&|e| e.outcome.clone()),
            Arc::new(status.finish()),
        ];
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    })
}

/// `jcsql.permissions`: each action and whether it may run; `read_only` refuses them all.
fn permissions_meta(actions: Arc<Actions>) -> ComputedTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("action", DataType::Utf8, false),
        Field::new("enabled", DataType::Boolean, false),
    ]));
    ComputedTable::new(schema.clone(), move || {
        let p = actions.permissions();
        let mut names: Vec<String> = actions::ACTIONS.iter().map(|(n, _, _)| n.to_string()).collect();
        let mut enabled: Vec<bool> = actions::ACTIONS.iter().map(|(n, _, _)| p.allows(n)).collect();
        names.push("read_only".into());
        enabled.push(p.read_only);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(datafusion::arrow::array::StringArray::from(names)),
            Arc::new(datafusion::arrow::array::BooleanArray::from(enabled)),
        ];
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    })
}

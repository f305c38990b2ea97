//! [`Engine`]: a DataFusion session with the JumpCloud schema, the meta tables and the JSON
//! functions registered. This is what a Rust program embeds; the CLI is a thin layer over it.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider};
use datafusion::datasource::ViewTable;
use datafusion::error::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::catalog::{ComputedTable, JumpCloudSchema};
use crate::error::{JcsqlError, Result};
use crate::jumpcloud::client::{ClientConfig, JumpCloudClient};
use crate::jumpcloud::tables::VIEWS;
use crate::jumpcloud::{Connection, Freshness};

pub const META_SCHEMA: &str = "jcsql";

#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// `None`: no key configured; cached snapshots still answer.
    pub client: Option<ClientConfig>,
    /// Where snapshots are kept; `None` keeps them in memory only.
    pub cache_dir: Option<PathBuf>,
    pub freshness: Freshness,
}

pub struct Engine {
    ctx: SessionContext,
    connection: Arc<Connection>,
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
        meta.register_table("tables".into(), Arc::new(tables_meta(connection.clone())))
            .map_err(|e| JcsqlError::Config(e.to_string()))?;
        catalog.register_schema(META_SCHEMA, meta).map_err(|e| JcsqlError::Config(e.to_string()))?;

        for (name, sql, _) in VIEWS {
            let plan = ctx
                .state()
                .create_logical_plan(sql)
                .await
                .map_err(|e| JcsqlError::Config(format!("view {name}: {e}")))?;
            schema.add_view(name, Arc::new(ViewTable::new(plan, Some(sql.to_string()))));
        }
        Ok(Engine { ctx, connection })
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    pub fn connection(&self) -> &Arc<Connection> {
        &self.connection
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

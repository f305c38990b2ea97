//! [`Engine`]: a DataFusion session with every connection's schema, the meta tables, boards,
//! sources, the action functions and the JSON functions registered. This is what a Rust program
//! embeds; the front ends in `cli/` are thin layers over it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::actions::{self, Actions, Call, CallResult, Permissions, StatementPlan};
use crate::boards::{self, Board};
use crate::catalog::CATALOG;
use crate::catalog::{ConnectionSchema, tables_meta};
use crate::connection::{Connection, Freshness, cache_dir};
use crate::error::{JcsqlError, Result};
use crate::google::GoogleConfig;
use crate::jumpcloud::client::{ClientConfig, JumpCloudClient};
use crate::sources::{self, SourceConfig, SourceStatus};

pub const META_SCHEMA: &str = "jcsql";

/// An org a multi-tenant key reaches: schema `jumpcloud_NAME`, same key, its `x-org-id`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OrgOptions {
    pub name: String,
    pub org_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl OrgOptions {
    pub fn schema(&self) -> String {
        format!("{}_{}", crate::jumpcloud::DEFAULT_SCHEMA, self.name)
    }
}

/// The schema that unions every org's tables, with a leading `org` column.
pub const ALL_ORGS_SCHEMA: &str = "jumpcloud_all";

/// One more JumpCloud connection (another org): its schema name and client.
#[derive(Debug, Clone)]
pub struct ConnectionOptions {
    pub name: String,
    /// `None`: no key for it; its cached snapshots still answer.
    pub client: Option<ClientConfig>,
}

#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// The default JumpCloud connection (schema `jumpcloud`); `None`: no key configured, cached
    /// snapshots still answer.
    pub client: Option<ClientConfig>,
    /// Further JumpCloud connections, each a schema of its own.
    pub connections: Vec<ConnectionOptions>,
    /// The orgs of the default key (`jcsql orgs discover`): schemas `jumpcloud_NAME` and the
    /// union `jumpcloud_all`.
    pub orgs: Vec<OrgOptions>,
    /// Where snapshots are kept (a folder per connection below it); `None` keeps them in memory.
    pub cache_dir: Option<PathBuf>,
    pub freshness: Freshness,
    pub permissions: Permissions,
    /// Where applied actions are appended (JSON lines); `None` keeps no log.
    pub audit_log: Option<PathBuf>,
    /// The largest JSON export loaded into memory (`None`: 256 MiB).
    pub max_json_bytes: Option<u64>,
    /// Google Workspace (schema `google`), when connected.
    pub google: Option<GoogleConfig>,
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

/// Why [`Engine::read_query`] gave no rows.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadError {
    /// The statement is not a read; nothing ran.
    Refused(String),
    /// The query failed (bad SQL, an unknown table); one line that says why.
    Failed(String),
}

pub struct Engine {
    ctx: SessionContext,
    /// JumpCloud's connections (orgs), the default first; actions target these.
    connections: Vec<Arc<Connection>>,
    /// Other live tools (Google Workspace): read, joined, never acted on.
    tools: Vec<Arc<Connection>>,
    boards: Arc<RwLock<Vec<Board>>>,
    boards_dir: RwLock<Option<PathBuf>>,
    sources: Arc<RwLock<Vec<SourceStatus>>>,
    actions: Arc<Actions>,
    max_json_bytes: u64,
}

fn registration(e: impl std::fmt::Display) -> JcsqlError {
    JcsqlError::Config(format!("cannot set up the SQL session: {e}"))
}

impl Engine {
    pub async fn new(options: EngineOptions) -> Result<Engine> {
        let mut names = vec![crate::jumpcloud::DEFAULT_SCHEMA.to_string()];
        let mut clients: Vec<Option<JumpCloudClient>> = vec![options.client.map(JumpCloudClient::new).transpose()?];
        let first_org = 1 + options.connections.len();
        for spec in options.connections {
            names.push(spec.name);
            clients.push(spec.client.map(JumpCloudClient::new).transpose()?);
        }
        // The orgs of a multi-tenant key: one connection each, sharing the key's one limiter.
        for org in &options.orgs {
            names.push(org.schema());
            clients.push(clients[0].as_ref().map(|c| c.for_org(&org.org_id)));
        }
        let mut connections = Vec::new();
        for (name, client) in names.iter().zip(&clients) {
            let dir = options.cache_dir.as_ref().map(|d| cache_dir(d, name));
            let conn = crate::jumpcloud::connection(name, client.clone(), dir.as_deref(), options.freshness);
            connections.push(Arc::new(conn));
        }
        // The default org, when it is one of the orgs, is that org's connection under both
        // schemas: one cache and one fetch, not two.
        let default_org = clients[0].as_ref().and_then(|c| c.config().org_id.clone());
        if let Some(k) = default_org.and_then(|id| options.orgs.iter().position(|o| o.org_id == id)) {
            connections[0] = connections[first_org + k].clone();
            clients[0] = clients[first_org + k].clone();
        }
        let mut unique: Vec<Arc<Connection>> = Vec::new();
        for c in &connections {
            if !unique.iter().any(|u| Arc::ptr_eq(u, c)) {
                unique.push(c.clone());
            }
        }

        let mut tools = Vec::new();
        let mut google_target = None;
        if let Some(google) = options.google {
            let client = crate::google::GoogleClient::new(google)?;
            let dir = options.cache_dir.as_ref().map(|d| cache_dir(d, crate::google::SCHEMA));
            let conn = Arc::new(crate::google::connection(Some(client.clone()), dir.as_deref(), options.freshness));
            google_target = Some((conn.clone(), Some(client)));
            tools.push(conn);
        }
        unique.extend(tools.iter().cloned());

        let mut config =
            SessionConfig::new().with_information_schema(true).with_default_catalog_and_schema(CATALOG, "public");
        // Rows already hashed over every core by a grouping column's prefix (a clustered view,
        // or a join's exchange) are not exchanged again: there is no more parallelism to gain.
        let cores = config.target_partitions();
        config.options_mut().optimizer.subset_repartition_threshold = cores;
        let mut ctx = SessionContext::new_with_config(config);
        datafusion_functions_json::register_all(&mut ctx).map_err(registration)?;
        let catalog = ctx.catalog(CATALOG).ok_or_else(|| registration("the default catalog is missing"))?;

        let targets = connections.iter().cloned().zip(clients.iter().cloned()).collect();
        let actions =
            Arc::new(Actions::new(targets, google_target, options.permissions.clone(), options.audit_log.clone()));
        // Without a statement's plan the action functions only plan (boards are checked with them).
        for udf in actions.udfs(None) {
            ctx.register_udf(udf);
        }
        let boards: Arc<RwLock<Vec<Board>>> = Arc::default();
        let sources: Arc<RwLock<Vec<SourceStatus>>> = Arc::default();
        let meta = Arc::new(MemorySchemaProvider::new());
        let meta_tables = [
            ("tables", tables_meta(unique)),
            ("boards", boards::meta_table(boards.clone())),
            ("sources", sources::meta_table(sources.clone())),
            ("action_log", actions::action_log_meta(actions.clone())),
            ("permissions", actions::permissions_meta(actions.clone())),
        ];
        for (name, table) in meta_tables {
            meta.register_table(name.into(), Arc::new(table)).map_err(registration)?;
        }
        catalog.register_schema(META_SCHEMA, meta).map_err(registration)?;
        catalog.register_schema(boards::SCHEMA, Arc::new(MemorySchemaProvider::new())).map_err(registration)?;
        for (i, conn) in connections.iter().enumerate() {
            let schema = if i == 0 { crate::jumpcloud::DEFAULT_SCHEMA } else { conn.name.as_str() };
            register_connection(&ctx, catalog.as_ref(), conn, schema).await?;
            let (name, changes) = crate::catalog::changes_schema(conn, i == 0);
            catalog.register_schema(&name, changes).map_err(registration)?;
        }
        for tool in &tools {
            register_connection(&ctx, catalog.as_ref(), tool, &tool.name).await?;
            let (name, changes) = crate::catalog::changes_schema(tool, false);
            catalog.register_schema(&name, changes).map_err(registration)?;
        }
        // Many orgs: `jumpcloud_all` unions them, `jcsql.orgs` lists them.
        let org_connections: Vec<(OrgOptions, Arc<Connection>)> = options
            .orgs
            .iter()
            .filter_map(|o| Some((o.clone(), connections.iter().find(|c| c.name == o.schema())?.clone())))
            .collect();
        if !org_connections.is_empty() {
            let all = MemorySchemaProvider::new();
            for def in crate::jumpcloud::tables::all_tables() {
                let members = org_connections
                    .iter()
                    .filter_map(|(o, c)| Some((o.name.clone(), c.clone(), c.table(def.name).ok()?.clone())))
                    .collect();
                if let Some(union) = crate::catalog::OrgUnionTable::new(members) {
                    all.register_table(def.name.to_string(), Arc::new(union)).map_err(registration)?;
                }
            }
            catalog.register_schema(ALL_ORGS_SCHEMA, Arc::new(all)).map_err(registration)?;
        }
        let orgs_list = org_connections
            .iter()
            .map(|(o, c)| (o.name.clone(), o.org_id.clone(), o.display_name.clone(), c.clone()))
            .collect();
        if let Some(meta) = catalog.schema(META_SCHEMA) {
            meta.register_table("orgs".into(), Arc::new(crate::catalog::orgs_meta(orgs_list))).map_err(registration)?;
        }
        let max_json_bytes = options.max_json_bytes.unwrap_or(sources::readers::DEFAULT_MAX_JSON_BYTES);
        Ok(Engine { ctx, connections, tools, boards, boards_dir: RwLock::new(None), sources, actions, max_json_bytes })
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The catalog every schema lives in (what `pg_catalog` is added to by `jcsql serve`).
    pub fn catalog_name(&self) -> &'static str {
        CATALOG
    }

    /// The default connection (schema `jumpcloud`).
    pub fn connection(&self) -> &Arc<Connection> {
        &self.connections[0]
    }

    /// The connection behind a schema (`jumpcloud` is the default one, whatever its name).
    pub fn schema_connection(&self, schema: &str) -> Option<&Arc<Connection>> {
        if schema == crate::jumpcloud::DEFAULT_SCHEMA {
            return self.connections.first();
        }
        self.connections.iter().find(|c| c.name == schema)
    }

    /// Every connection schema and its connection, the default (`jumpcloud`) first, other
    /// tools (`google`) last.
    pub fn connection_schemas(&self) -> Vec<(String, Arc<Connection>)> {
        self.connections
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (if i == 0 { crate::jumpcloud::DEFAULT_SCHEMA.to_string() } else { c.name.clone() }, c.clone())
            })
            .chain(self.tools.iter().map(|t| (t.name.clone(), t.clone())))
            .collect()
    }

    /// JumpCloud's connections (orgs), the default first.
    pub fn connections(&self) -> &[Arc<Connection>] {
        &self.connections
    }

    /// The other live tools' connections (`google`).
    pub fn tools(&self) -> &[Arc<Connection>] {
        &self.tools
    }

    /// Every connection: JumpCloud's, then the other tools'.
    pub fn all_connections(&self) -> impl Iterator<Item = &Arc<Connection>> {
        self.connections.iter().chain(&self.tools)
    }

    /// Every secret a connection holds (API keys), so front ends keep them out of history.
    pub fn secrets(&self) -> Vec<String> {
        self.connections.iter().filter_map(|c| c.secret().map(str::to_string)).collect()
    }

    /// Registers another tool's export (file or folder); a failure is recorded, not raised.
    pub async fn add_source(&self, cfg: &SourceConfig) -> SourceStatus {
        let taken: Vec<String> = self.connections.iter().map(|c| c.name.clone()).collect();
        let status = sources::register(&self.ctx, cfg, &taken, self.max_json_bytes).await;
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
        let loaded = boards::load_all(&self.ctx, dir).await;
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

    /// `table`'s full name: as written when the session has it, else in the first connection
    /// schema that has it (`devices` → `jumpcloud.devices`).
    pub async fn qualify(&self, table: &str) -> Option<String> {
        sources::qualify(&self.ctx, &self.connection_schemas(), table).await
    }

    /// One line for an error: nearest tables for an unknown table, nearest columns for an
    /// unknown column, our own message for our own errors.
    pub fn explain(&self, err: &DataFusionError) -> String {
        let text = crate::explain::explain(err, &crate::explain::known_tables(&self.ctx));
        let google = format!("unknown table {}.", crate::google::SCHEMA);
        if text.starts_with(&google) && self.tools.is_empty() {
            return format!(
                "{}; Google Workspace is not connected: run `jcsql connect google --service-account FILE --subject ADMIN_EMAIL` (or try `jcsql demo`, which has a Google account)",
                text.split(';').next().unwrap_or(&text)
            );
        }
        text
    }

    /// Runs one statement. Action calls in it are planned, never applied: a disabled action is
    /// refused before anything runs, and the calls the result shows come back in `planned`.
    /// Each statement that calls actions records into a plan of its own, so statements running
    /// at once on one engine never see (or apply) each other's calls.
    pub async fn execute(&self, sql: &str) -> std::result::Result<Executed, DataFusionError> {
        let plan = self.ctx.state().create_logical_plan(sql).await?;
        let called = actions::called_actions(&plan);
        if called.is_empty() {
            let df = self.ctx.execute_logical_plan(plan).await?;
            let schema = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            return Ok(Executed { schema, batches, called, planned: Vec::new() });
        }
        let permissions = self.actions.permissions();
        if let Some(refusal) = called.iter().find_map(|a| permissions.refusal(a)) {
            return Err(refusal.into());
        }
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|_| {
            DataFusionError::from(JcsqlError::Config(
                "actions run in queries (SELECT …), not in views or other statements".into(),
            ))
        })?;
        let statement = Arc::new(StatementPlan::on(self.action_target(&plan)?));
        let ctx = SessionContext::new_with_state(self.ctx.state());
        for udf in self.actions.udfs(Some(statement.clone())) {
            ctx.register_udf(udf);
        }
        let df = ctx.sql(sql).await?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        let planned = statement.planned(&actions::planned_numbers(&batches));
        Ok(Executed { schema, batches, called, planned })
    }

    /// The connection a statement's actions act on: the one org schema it reads (the default
    /// connection when it reads none). Reading `jumpcloud_all`, or two orgs, is refused.
    fn action_target(&self, plan: &LogicalPlan) -> std::result::Result<usize, DataFusionError> {
        let mut schemas = std::collections::BTreeSet::new();
        let _ = plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && let Some(schema) = scan.table_name.schema()
            {
                schemas.insert(schema.to_string());
            }
            Ok(TreeNodeRecursion::Continue)
        });
        let org_schemas = || {
            let names: Vec<&str> = self.connections.iter().skip(1).map(|c| c.name.as_str()).collect();
            if names.is_empty() { self.connections[0].name.clone() } else { names.join(", ") }
        };
        if schemas.contains(ALL_ORGS_SCHEMA) {
            let e = JcsqlError::ActionsNeedOneOrg { reads: ALL_ORGS_SCHEMA.into(), schemas: org_schemas() };
            return Err(e.into());
        }
        // The distinct connections the statement reads (the default one may have two names).
        let mut read: Vec<usize> = Vec::new();
        for schema in &schemas {
            if let Some(conn) = self.schema_connection(schema)
                && let Some(i) = self.connections.iter().position(|c| Arc::ptr_eq(c, conn))
                && !read.contains(&i)
            {
                read.push(i);
            }
        }
        match read.as_slice() {
            [] => Ok(0),
            [one] => Ok(*one),
            several => {
                let reads =
                    several.iter().map(|&i| self.connections[i].name.as_str()).collect::<Vec<_>>().join(" and ");
                Err(JcsqlError::ActionsNeedOneOrg { reads, schemas: org_schemas() }.into())
            }
        }
    }

    /// Applies planned calls (after the user confirmed them).
    pub async fn apply(&self, calls: &[(usize, Call)]) -> Vec<CallResult> {
        self.actions.apply(calls).await
    }

    /// Runs what a read-only front end (the web page's SQL box) lets through: one query that
    /// reads. DDL, DML, `COPY`, settings and action functions are [`ReadError::Refused`].
    pub async fn read_query(&self, sql: &str) -> std::result::Result<(SchemaRef, Vec<RecordBatch>), ReadError> {
        use datafusion::sql::parser::{DFParser, Statement as DfStatement};
        use datafusion::sql::sqlparser::ast::Statement;
        let statements = DFParser::parse_sql(sql).map_err(|e| ReadError::Failed(self.explain(&e)))?;
        let statement = match statements.len() {
            0 => return Err(ReadError::Refused("there is no statement to run: write a query (SELECT …)".into())),
            1 => statements.front(),
            n => {
                return Err(ReadError::Refused(format!(
                    "one query at a time: this text holds {n} statements; run them one by one"
                )));
            }
        };
        if !matches!(statement, Some(DfStatement::Statement(s)) if matches!(**s, Statement::Query(_))) {
            let word = sql.split_whitespace().next().unwrap_or("this statement").to_uppercase();
            return Err(ReadError::Refused(format!(
                "{word} is refused: this page only reads (SELECT …); change data from the jcsql prompt"
            )));
        }
        let plan = self.ctx.state().create_logical_plan(sql).await.map_err(|e| ReadError::Failed(self.explain(&e)))?;
        if let Some(action) = actions::called_actions(&plan).into_iter().next() {
            return Err(ReadError::Refused(format!(
                "the action {action} is refused here: start it from Integration actions, where it is planned and confirmed"
            )));
        }
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)
            .map_err(|_| ReadError::Refused("only queries that read are run here (SELECT …)".into()))?;
        let df = self.ctx.execute_logical_plan(plan).await.map_err(|e| ReadError::Failed(self.explain(&e)))?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await.map_err(|e| ReadError::Failed(self.explain(&e)))?;
        Ok((schema, batches))
    }

    /// Saves `sql` as board `name` in `dir` after checking it plans, and reloads the boards.
    pub async fn save_board(&self, dir: &Path, name: &str, sql: &str, title: Option<&str>) -> Result<PathBuf> {
        use crate::error::BoardError;
        boards::validate_name(name)?;
        boards::plan(&self.ctx, sql)
            .await
            .map_err(|e| BoardError::NotSaved { name: name.to_string(), error: Box::new(e) })?;
        let path = boards::save(dir, name, sql, title)?;
        let loaded = self.load_boards(dir).await;
        if let Some(e) = loaded.iter().find(|b| b.name == name).and_then(|b| b.error.clone()) {
            return Err(BoardError::SavedButBroken { name: name.to_string(), error: e.to_string() }.into());
        }
        Ok(path)
    }

    /// Runs one statement and collects its rows (action functions refuse to run here).
    pub async fn sql(&self, sql: &str) -> std::result::Result<Vec<RecordBatch>, DataFusionError> {
        self.ctx.sql(sql).await?.collect().await
    }
}

/// A connection's tables and views as schema `name` (its views read the schema they are in).
async fn register_connection(
    ctx: &SessionContext,
    catalog: &dyn CatalogProvider,
    conn: &Arc<Connection>,
    name: &str,
) -> Result<()> {
    let schema = Arc::new(ConnectionSchema::new(conn));
    catalog.register_schema(name, schema.clone()).map_err(registration)?;
    for view in conn.views {
        let sql = view.sql_for(name);
        let plan = ctx
            .state()
            .create_logical_plan(&sql)
            .await
            .map_err(|e| registration(format!("view {}.{}: {e}", conn.name, view.name)))?;
        // Kept as rows, recomputed when a source snapshot changes (DESIGN §8: natural SQL).
        schema.add_view(
            view.name,
            Arc::new(crate::catalog::MaterializedView::new(conn.clone(), plan, view.clustered_by)),
        );
    }
    Ok(())
}

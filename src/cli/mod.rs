//! The front ends: the `jcsql` command line (argument parsing, one-shot statements, `sync`,
//! `connect`, `simulate`, `demo`), the REPL ([`repl`]), output formats ([`output`]), progress
//! bars ([`progress`]), the workspace commands ([`workspace`]) and the one statement pipeline
//! they share ([`pipeline`]). Everything here sits on [`Engine`]; nothing below names it.

pub mod config;
pub mod google;
pub mod output;
pub mod pipeline;
pub mod progress;
pub mod repl;
pub mod serve;
pub mod watch;
pub mod web;
pub mod workspace;

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use futures::StreamExt;

use crate::connection::{DEFAULT_MAX_AGE, Freshness, RefreshSummary, SyncObserver};
use crate::error::JcsqlError;
use crate::jumpcloud::client::{ApiKey, ClientConfig, DEFAULT_BASE_URL};
use crate::jumpcloud::simulator::{DEMO_API_KEY, Simulator, SimulatorConfig};
use crate::{Engine, EngineOptions};
use config::{Home, JumpCloudSettings, StoredConfig, parse_duration};
use output::Format;
pub use pipeline::plural;
use pipeline::{Outcome, Pipeline, ScriptStep, YesFlag, split_script, write_result};
use progress::ProgressObserver;

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_NOT_APPLIED: u8 = 3;

/// The default demo org (its exports in `examples/data/` are made for it).
pub const DEMO_USERS: usize = 300;
pub const DEMO_SEED: u64 = 42;

#[derive(Debug, Parser)]
#[command(name = "jcsql", version, about = "SQL over your JumpCloud directory, joined with your other tools")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct GlobalArgs {
    /// Run SQL and exit (repeatable; each may hold several statements; may start with a comment)
    #[arg(short = 'c', long = "command", global = true, value_name = "SQL", allow_hyphen_values = true)]
    pub commands: Vec<String>,
    /// Run the SQL in FILE and exit (repeatable)
    #[arg(short = 'f', long = "file", global = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format (default: table on a terminal, csv otherwise)
    #[arg(long, global = true, value_enum)]
    pub format: Option<Format>,
    /// Apply planned actions without asking
    #[arg(long, global = true)]
    pub yes: bool,
    /// Never fetch: answer from the cached snapshots only
    #[arg(long, global = true)]
    pub offline: bool,
    /// Folder of board files (default: $JCSQL_HOME/boards)
    #[arg(long, global = true, value_name = "DIR")]
    pub boards: Option<PathBuf>,
    /// How old a snapshot may be before a query refreshes it (e.g. 24h, 90m, 0)
    #[arg(long, global = true, value_name = "AGE")]
    pub max_age: Option<String>,
    /// Requests in flight at once against JumpCloud
    #[arg(long, global = true, value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// Show at most N rows in table output (the query still computes all)
    #[arg(long, global = true, value_name = "N")]
    pub maxrows: Option<usize>,
    /// No progress bars or footers on stderr
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the built-in simulated org and query it (REPL, or -c / -f)
    Demo {
        /// Users in the simulated org (groups, devices and apps scale with it)
        #[arg(long, default_value_t = DEMO_USERS)]
        users: usize,
        /// Seed of the org generator
        #[arg(long, default_value_t = DEMO_SEED)]
        seed: u64,
        /// Simulate a multi-tenant key reaching this many orgs (schemas jumpcloud_NAME, jumpcloud_all)
        #[arg(long, default_value_t = 1)]
        orgs: usize,
        #[command(subcommand)]
        command: Option<DemoCommand>,
    },
    /// Serve the tables and boards over the Postgres wire protocol, read-only (psql, Metabase, Grafana)
    Serve(serve::ServeArgs),
    /// The boards as web pages, with filters, exports, Add field and Integration actions
    Web(web::WebArgs),
    /// Fetch tables now (all when none is named)
    Sync {
        /// Tables to fetch, e.g. users or jumpcloud.devices
        tables: Vec<String>,
        /// Fetch these orgs (names from `jcsql orgs`) instead of the default one
        #[arg(long = "org", value_name = "NAME")]
        orgs: Vec<String>,
        /// Fetch every org the key reaches
        #[arg(long)]
        all_orgs: bool,
    },
    /// List the orgs of a multi-tenant key, or find them (`jcsql orgs discover`)
    Orgs {
        #[command(subcommand)]
        command: Option<OrgsCommand>,
    },
    /// Write every cached table as Hive-partitioned Parquet: DIR/org=NAME/table=TABLE/part-0.parquet
    Export { dir: PathBuf },
    /// Connect a data source
    Connect {
        #[command(subcommand)]
        target: ConnectTarget,
    },
    /// Disconnect a source: deletes the boards that read it (kept in boards/.deleted/)
    Disconnect { name: String },
    /// Manage boards (saved queries, views boards.NAME)
    Board {
        #[command(subcommand)]
        command: workspace::BoardCommand,
    },
    /// What can be joined to TABLE: relations, and other tools' columns whose values match
    Fields { table: String },
    /// Run boards for cron and CI: exit 0 when no board has a row, 1 when some board has, 2 on an error
    Check(watch::CheckArgs),
    /// Watch boards: events for rows added, removed or changed since the last run, to webhooks
    Watch(watch::WatchArgs),
    /// Show or change which actions may run
    Permissions {
        #[command(subcommand)]
        change: Option<PermissionChange>,
    },
    /// Run the JumpCloud simulator as a standalone server on 127.0.0.1
    Simulate {
        #[arg(long, default_value_t = 0)]
        port: u16,
        #[arg(long, default_value = DEMO_API_KEY)]
        api_key: String,
        #[arg(long, default_value_t = 300)]
        users: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Share of requests answered 503 (0.0 to 1.0)
        #[arg(long, default_value_t = 0.0)]
        fail_rate: f64,
        /// Requests per second before answering 429
        #[arg(long)]
        rate_limit: Option<f64>,
        /// Orgs the key reaches (more than one: a multi-tenant key, x-org-id required)
        #[arg(long, default_value_t = 1)]
        orgs: usize,
        /// Directory Insights at volume: events per user per day over the last 31 days
        /// (LDAP binds and RADIUS in bursts, logins, SSO)
        #[arg(long)]
        events_per_user_per_day: Option<f64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DemoCommand {
    /// Serve the demo org over the Postgres wire protocol (`jcsql serve` on the simulated org)
    Serve(serve::ServeArgs),
    /// Run the demo's boards as `jcsql check` does (exit 0 no rows, 1 rows, 2 an error)
    Check(watch::CheckArgs),
    /// The demo's boards as web pages (`jcsql web` on the simulated org)
    Web(web::WebArgs),
}

#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// Ask JumpCloud which orgs the key reaches and store them in the config
    Discover,
}

#[derive(Debug, Subcommand)]
pub enum PermissionChange {
    /// Allow an action (or turn read_only on)
    Enable { action: String },
    /// Refuse an action (or turn read_only off)
    Disable { action: String },
}

#[derive(Debug, Subcommand)]
pub enum ConnectTarget {
    /// Store a JumpCloud API key (validated first) and run the first sync
    Jumpcloud {
        /// Read the key from standard input instead of prompting
        #[arg(long)]
        api_key_stdin: bool,
        /// API base URL (default https://console.jumpcloud.com; EU: https://console.eu.jumpcloud.com)
        #[arg(long)]
        api_url: Option<String>,
        /// Organization id, for multi-tenant administrators
        #[arg(long)]
        org_id: Option<String>,
    },
    /// Read Google Workspace users and groups (schema google) with a service account
    Google {
        /// The service account's JSON key file (its path is stored, never its contents)
        #[arg(long, value_name = "FILE")]
        service_account: PathBuf,
        /// The administrator the service account acts as (domain-wide delegation)
        #[arg(long, value_name = "ADMIN_EMAIL")]
        subject: String,
        /// Customer id (default my_customer: the whole account)
        #[arg(long)]
        customer: Option<String>,
    },
    /// Register a CSV / JSON / NDJSON / Parquet export (a file, or a folder of them) as source NAME
    Files { name: String, path: PathBuf },
}

/// Entry point of the binary: parses arguments, runs, and maps errors to one line and an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let code = runtime.block_on(run(cli));
    // Background tasks (the demo simulator) must not hold the process open.
    runtime.shutdown_timeout(Duration::from_millis(200));
    ExitCode::from(code)
}

fn init_tracing() {
    if let Ok(filter) = std::env::var("JCSQL_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
}

pub async fn run(cli: Cli) -> u8 {
    match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            EXIT_ERROR
        }
    }
}

async fn dispatch(cli: Cli) -> Result<u8, JcsqlError> {
    let g = cli.global.clone();
    match cli.command {
        None => {
            let home = Home::from_env()?;
            let (engine, _) = engine_from_settings(&home, &g).await?;
            run_front_end(&engine, &g, &home).await
        }
        Some(Command::Demo { users, seed, orgs, command }) => {
            let demo = Demo::start_orgs(users, seed, orgs, &g).await?;
            let home = Home::from_env().unwrap_or_else(|_| Home::at(demo.dir.path()));
            match command {
                Some(DemoCommand::Serve(args)) => return serve::serve(&demo.engine, &args, &home, &g).await,
                Some(DemoCommand::Check(args)) => return Ok(watch::check(&demo.engine, &args, output_format(&g)).await),
                Some(DemoCommand::Web(args)) => {
                    // The simulators and the temp folder live as long as this scope.
                    let Demo { engine, simulator, google, dir } = demo;
                    let exit = web::web(std::sync::Arc::new(engine), &args, &g).await;
                    drop((simulator, google, dir));
                    return exit;
                }
                None => {}
            }
            if !g.quiet && g.commands.is_empty() && g.files.is_empty() && std::io::stdin().is_terminal() {
                eprintln!(
                    "jcsql demo: a simulated org of {users} users at {} (seed {seed}), with {} boards; try `select * from jcsql.boards;` or `.help`",
                    demo.simulator.base_url(),
                    demo.engine.boards().len()
                );
            }
            run_front_end(&demo.engine, &g, &home).await
        }
        Some(Command::Web(args)) => {
            let home = Home::from_env()?;
            let (engine, _) = engine_from_settings(&home, &g).await?;
            web::web(std::sync::Arc::new(engine), &args, &g).await
        }
        Some(Command::Serve(args)) => {
            let home = Home::from_env()?;
            let (engine, _) = engine_from_settings(&home, &g).await?;
            serve::serve(&engine, &args, &home, &g).await
        }
        Some(Command::Sync { tables, orgs, all_orgs }) => {
            let home = Home::from_env()?;
            let (engine, stored) = engine_from_settings(&home, &g).await?;
            if orgs.is_empty() && !all_orgs {
                return sync(&engine, &tables, &g).await;
            }
            let chosen: Vec<String> = if all_orgs { stored.orgs.keys().cloned().collect() } else { orgs };
            if chosen.is_empty() {
                return Err(JcsqlError::Config("no orgs are known yet; run `jcsql orgs discover` first".into()));
            }
            let mut conns = Vec::new();
            for name in chosen {
                let schema = format!("{}_{name}", crate::jumpcloud::DEFAULT_SCHEMA);
                let Some(conn) = engine.connections().iter().find(|c| c.name == schema) else {
                    let known = stored.orgs.keys().cloned().collect::<Vec<_>>().join(", ");
                    return Err(JcsqlError::Config(format!("no org named {name}; the orgs are: {known}")));
                };
                can_fetch(conn, &g)?;
                conns.push((name, conn.clone()));
            }
            // At most 8 orgs at once, all under the key's one limiter.
            let started = std::time::Instant::now();
            let tables = &tables;
            let mut per_org: Vec<(String, SyncResults)> = futures::stream::iter(conns)
                .map(|(name, conn)| async move { (name, conn.sync(tables).await) })
                .buffer_unordered(8)
                .collect()
                .await;
            per_org.sort_by(|a, b| a.0.cmp(&b.0));
            let results = per_org
                .into_iter()
                .flat_map(|(org, rs)| rs.into_iter().map(move |(t, r)| (format!("{org}.{t}"), r)))
                .collect();
            report_sync(results, started, &g)
        }
        Some(Command::Orgs { command }) => {
            let home = Home::from_env()?;
            orgs_command(&home, command, &g).await
        }
        Some(Command::Export { dir }) => {
            let home = Home::from_env()?;
            let (engine, _) = engine_from_settings(&home, &g).await?;
            export(&engine, &dir, &g)
        }
        Some(Command::Connect { target: ConnectTarget::Jumpcloud { api_key_stdin, api_url, org_id } }) => {
            let home = Home::from_env()?;
            connect_jumpcloud(&home, &g, api_key_stdin, api_url, org_id).await
        }
        Some(Command::Connect { target: ConnectTarget::Google { service_account, subject, customer } }) => {
            let home = Home::from_env()?;
            google::connect_google(&home, &g, service_account, subject, customer).await
        }
        Some(Command::Connect { target: ConnectTarget::Files { name, path } }) => {
            let home = Home::from_env()?;
            let (engine, _) = engine_from_settings(&home, &g).await?;
            workspace::connect_files(&engine, &home, &name, &path).await
        }
        Some(Command::Disconnect { name }) => {
            let home = Home::from_env()?;
            let (engine, _) = engine_from_settings(&home, &g).await?;
            workspace::disconnect(&engine, &home, &name, &g).await
        }
        Some(Command::Board { command }) => {
            let home = Home::from_env()?;
            let (engine, _) = engine_from_settings(&home, &g).await?;
            workspace::board_command(&engine, command, &g).await
        }
        Some(Command::Permissions { change }) => {
            let home = Home::from_env()?;
            permissions(&home, change, &g).await
        }
        // An error of either is exit 2, as their other errors are (1 means "rows found").
        Some(Command::Check(args)) => Ok(match home_and_engine(&g).await {
            Ok((_, engine)) => watch::check(&engine, &args, output_format(&g)).await,
            Err(e) => report_failure(&e),
        }),
        Some(Command::Watch(args)) => Ok(match home_and_engine(&g).await {
            Ok((home, engine)) => watch::watch(&engine, &args, &home.config_dir, output_format(&g), g.quiet).await,
            Err(e) => report_failure(&e),
        }),
        Some(Command::Fields { table }) => {
            let home = Home::from_env()?;
            let (engine, _) = engine_from_settings(&home, &g).await?;
            workspace::fields_command(&engine, &table, &g).await
        }
        Some(Command::Simulate {
            port,
            api_key,
            users,
            seed,
            latency_ms,
            fail_rate,
            rate_limit,
            orgs,
            events_per_user_per_day,
        }) => {
            let mut cfg = SimulatorConfig::new(users, seed);
            cfg.org.events_per_user_per_day = events_per_user_per_day;
            cfg.orgs = orgs.max(1);
            cfg.port = port;
            cfg.api_key = api_key;
            cfg.latency = Duration::from_millis(latency_ms);
            cfg.fail_rate = fail_rate.clamp(0.0, 1.0);
            cfg.rate_limit = rate_limit;
            let sim = Simulator::start(cfg)
                .await
                .map_err(|e| JcsqlError::Config(format!("cannot start the simulator on port {port}: {e}")))?;
            println!("{}", sim.base_url());
            let _ = std::io::stdout().flush();
            eprintln!(
                "simulating a JumpCloud org of {users} users; point jcsql at it with JUMPCLOUD_API_URL={} and the configured key; Ctrl-C stops it",
                sim.base_url()
            );
            let _ = tokio::signal::ctrl_c().await;
            Ok(EXIT_OK)
        }
    }
}

/// The built-in simulated org with an engine on it; both live as long as this value.
pub struct Demo {
    pub simulator: Simulator,
    /// The demo's Google Workspace account (schema `google`).
    pub google: crate::google::simulator::GoogleSimulator,
    pub engine: Engine,
    pub dir: tempfile::TempDir,
}

impl Demo {
    pub async fn start(users: usize, seed: u64, g: &GlobalArgs) -> Result<Demo, JcsqlError> {
        Self::start_orgs(users, seed, 1, g).await
    }

    /// The demo with a multi-tenant key reaching `orgs` orgs (the first is `jumpcloud`).
    pub async fn start_orgs(users: usize, seed: u64, orgs: usize, g: &GlobalArgs) -> Result<Demo, JcsqlError> {
        let mut config = SimulatorConfig::new(users, seed);
        config.orgs = orgs.max(1);
        let simulator = Simulator::start(config)
            .await
            .map_err(|e| JcsqlError::Config(format!("cannot start the demo simulator: {e}")))?;
        let dir = tempfile::Builder::new()
            .prefix("jcsql-demo-")
            .tempdir()
            .map_err(|e| JcsqlError::Config(format!("cannot create a temporary folder: {e}")))?;
        let mut client = ClientConfig::new(simulator.base_url(), ApiKey::new(DEMO_API_KEY));
        client.events_window = events_window(None)?;
        client.events_services = events_services(None)?;
        if let Some(n) = g.max_in_flight {
            client.max_in_flight = n;
        }
        let org_list = if orgs > 1 { discover(&client).await? } else { Vec::new() };
        client.org_id = org_list.first().map(|o| o.org_id.clone());
        let freshness = freshness_from(g, None)?;
        let google_org = simulator.with_org(google::demo_google_org);
        let google = crate::google::simulator::GoogleSimulator::start(
            crate::google::simulator::GoogleSimulatorConfig::new(google_org),
        )
        .await
        .map_err(|e| JcsqlError::Config(format!("cannot start the demo Google simulator: {e}")))?;
        let key_file = google
            .write_key_file(dir.path())
            .map_err(|e| JcsqlError::Config(format!("cannot write the demo Google key file: {e}")))?;
        let mut google_cfg = crate::google::GoogleConfig::new(key_file, google.admin_email());
        google_cfg.api_url = google.api_url();
        // The demo's actions follow `jcsql permissions` (the config in JCSQL_HOME), so enabling
        // `offboard_user` there lets the demo try it.
        let permissions = Home::from_env()
            .ok()
            .and_then(|home| StoredConfig::load(&home.config_file()).ok())
            .map(|stored| stored.permissions)
            .unwrap_or_default();
        let engine = Engine::new(EngineOptions {
            client: Some(client),
            cache_dir: Some(dir.path().to_path_buf()),
            freshness,
            permissions,
            audit_log: Some(dir.path().join("audit.jsonl")),
            orgs: org_list,
            google: Some(google_cfg),
            ..Default::default()
        })
        .await?;
        install_observer(&engine, g);
        // The example boards and the exports that join to this org, unless --boards points elsewhere.
        let sources = simulator
            .with_org(|org| workspace::write_demo_workspace(dir.path(), org))
            .map_err(|e| JcsqlError::Config(format!("cannot write the demo boards: {e}")))?;
        let boards_dir = g.boards.clone().unwrap_or_else(|| dir.path().join("boards"));
        workspace::open(&engine, &sources, &boards_dir, g.quiet).await;
        Ok(Demo { simulator, google, engine, dir })
    }
}

fn install_observer(engine: &Engine, g: &GlobalArgs) {
    let observer: Arc<dyn SyncObserver> = Arc::new(ProgressObserver::new(!g.quiet));
    for (i, conn) in engine.connections().iter().enumerate() {
        match conn.name.strip_prefix("jumpcloud_") {
            // Orgs are synced several at once: each reports as ORG.TABLE.
            Some(org) if i > 0 => {
                conn.set_observer(Arc::new(progress::OrgProgress { org: org.to_string(), inner: observer.clone() }))
            }
            _ => conn.set_observer(observer.clone()),
        }
    }
    for tool in engine.tools() {
        tool.set_observer(Arc::new(progress::OrgProgress { org: tool.name.clone(), inner: observer.clone() }));
    }
}

fn freshness_from(g: &GlobalArgs, stored: Option<&JumpCloudSettings>) -> Result<Freshness, JcsqlError> {
    let text = g
        .max_age
        .clone()
        .or_else(|| std::env::var("JCSQL_MAX_AGE").ok().filter(|s| !s.is_empty()))
        .or_else(|| stored.and_then(|s| s.max_age.clone()));
    let max_age = match text {
        Some(t) => parse_duration(&t)?,
        None => DEFAULT_MAX_AGE,
    };
    Ok(Freshness { max_age, offline: g.offline })
}

/// `JCSQL_MAX_JSON_MB`: the largest JSON export loaded into memory.
fn max_json_bytes() -> Result<Option<u64>, JcsqlError> {
    match std::env::var("JCSQL_MAX_JSON_MB").ok().filter(|s| !s.trim().is_empty()) {
        None => Ok(None),
        Some(text) => text.trim().parse::<u64>().map(|mb| Some(mb << 20)).map_err(|_| {
            JcsqlError::Config(format!("JCSQL_MAX_JSON_MB is {text:?}; give a whole number of MiB, e.g. 512"))
        }),
    }
}

/// How far back `directory_events` reaches: `JCSQL_EVENTS_SINCE`, else the config's
/// `events_since`, else 30 days; more than JumpCloud's 90-day retention is refused.
fn events_window(stored: Option<&JumpCloudSettings>) -> Result<Duration, JcsqlError> {
    let text = std::env::var("JCSQL_EVENTS_SINCE")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| stored.and_then(|s| s.events_since.clone()));
    let Some(text) = text else { return Ok(crate::jumpcloud::client::DEFAULT_EVENTS_WINDOW) };
    let window = parse_duration(&text)?;
    if window > crate::jumpcloud::client::EVENTS_RETENTION {
        return Err(JcsqlError::Config(format!(
            "JCSQL_EVENTS_SINCE is {text}, but JumpCloud keeps events for 90 days; use 90d or less"
        )));
    }
    Ok(window)
}

/// Which services `directory_events` holds on disk: `JCSQL_EVENTS_SERVICES`, else the config's
/// `events_services` (comma-separated, e.g. `directory,sso,systems`), else all; a name
/// Directory Insights does not know is refused with the list of those it does.
fn events_services(stored: Option<&JumpCloudSettings>) -> Result<Option<Vec<String>>, JcsqlError> {
    let text = std::env::var("JCSQL_EVENTS_SERVICES")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| stored.and_then(|s| s.events_services.clone()));
    let Some(text) = text else { return Ok(None) };
    let mut services: Vec<String> =
        text.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect();
    if services.iter().any(|s| s == "all") {
        return Ok(None);
    }
    let known = crate::jumpcloud::EVENT_SERVICES;
    if let Some(bad) = services.iter().find(|s| !known.contains(&s.as_str())) {
        return Err(JcsqlError::Config(format!(
            "events_services names {bad:?}, which Directory Insights does not know; use all or some of: {}",
            known.join(", ")
        )));
    }
    services.sort();
    services.dedup();
    Ok(Some(services))
}

/// The engine for the configured connection: environment first, then the config file.
pub async fn engine_from_settings(home: &Home, g: &GlobalArgs) -> Result<(Engine, StoredConfig), JcsqlError> {
    engine_with_key(home, g, None).await
}

/// The API key and base URL: the environment's, else the config file's (else the US console).
fn key_and_url(settings: &JumpCloudSettings) -> (Option<String>, String) {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let key = env("JUMPCLOUD_API_KEY").or(settings.api_key.clone());
    let url = env("JUMPCLOUD_API_URL").or(settings.api_url.clone()).unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
    (key, url)
}

/// The engine for the configured connection; `key` (a key just stored) wins over the
/// environment's, which wins over the config file's.
async fn engine_with_key(
    home: &Home,
    g: &GlobalArgs,
    key: Option<String>,
) -> Result<(Engine, StoredConfig), JcsqlError> {
    let stored = StoredConfig::load(&home.config_file())?;
    let settings = stored.jumpcloud.clone().unwrap_or_default();
    let (stored_key, url) = key_and_url(&settings);
    let key = key.or(stored_key);
    // The default org: JUMPCLOUD_ORG_ID, else the stored one, else the first discovered org.
    let org = std::env::var("JUMPCLOUD_ORG_ID")
        .ok()
        .filter(|o| !o.trim().is_empty())
        .or(settings.org_id.clone())
        .or_else(|| stored.orgs.values().next().map(|o| o.org_id.clone()));
    let orgs: Vec<crate::engine::OrgOptions> = stored
        .orgs
        .iter()
        .map(|(name, o)| crate::engine::OrgOptions {
            name: name.clone(),
            org_id: o.org_id.clone(),
            display_name: o.display_name.clone(),
        })
        .collect();
    let events_window = events_window(Some(&settings))?;
    let events_services = events_services(Some(&settings))?;
    let client = key.map(|k| {
        let mut c = ClientConfig::new(url, ApiKey::new(k));
        c.org_id = org;
        c.events_window = events_window;
        c.events_services = events_services;
        if let Some(insights) = std::env::var("JUMPCLOUD_INSIGHTS_URL").ok().filter(|u| !u.trim().is_empty()) {
            c.insights_url = insights.trim_end_matches('/').to_string();
        }
        if let Some(n) = g.max_in_flight.or(settings.max_in_flight) {
            c.max_in_flight = n;
        }
        c
    });
    let freshness = freshness_from(g, Some(&settings))?;
    let engine = Engine::new(EngineOptions {
        client,
        cache_dir: Some(home.cache_dir.clone()),
        freshness,
        permissions: stored.permissions.clone(),
        audit_log: Some(home.audit_log()),
        max_json_bytes: max_json_bytes()?,
        orgs,
        google: google::google_config(&stored, g),
        ..Default::default()
    })
    .await?;
    install_observer(&engine, g);
    let boards_dir = g.boards.clone().unwrap_or_else(|| home.boards_dir());
    workspace::open(&engine, &stored.sources, &boards_dir, g.quiet).await;
    Ok((engine, stored))
}

/// The output format: `--format`, else a table on a terminal and CSV when piped.
fn output_format(g: &GlobalArgs) -> Format {
    g.format.unwrap_or(if std::io::stdout().is_terminal() { Format::Table } else { Format::Csv })
}

async fn home_and_engine(g: &GlobalArgs) -> Result<(Home, Engine), JcsqlError> {
    let home = Home::from_env()?;
    let (engine, _) = engine_from_settings(&home, g).await?;
    Ok((home, engine))
}

/// Prints a command's error as its one line and gives `check`/`watch`'s error code.
fn report_failure(e: &JcsqlError) -> u8 {
    eprintln!("Error: {e}");
    watch::FAILED
}

/// `-c` / `-f` / piped stdin run statements and exit; otherwise the REPL opens.
async fn run_front_end(engine: &Engine, g: &GlobalArgs, home: &Home) -> Result<u8, JcsqlError> {
    let format = output_format(g);
    let mut scripts: Vec<(String, String)> = g.commands.iter().map(|c| ("-c".to_string(), c.clone())).collect();
    for f in &g.files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| JcsqlError::File { path: f.display().to_string(), reason: format!("cannot read it ({e})") })?;
        scripts.push((f.display().to_string(), text));
    }
    if scripts.is_empty() && !std::io::stdin().is_terminal() {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| JcsqlError::Config(format!("cannot read SQL from standard input: {e}")))?;
        scripts.push(("stdin".to_string(), text));
    }
    if scripts.is_empty() {
        return repl::run(engine, g, home, format).await;
    }
    // Scripts keep the REPL's settings as they go: `.mode csv` or `.timer on` in a file holds for
    // the statements after it, as psql's meta-commands do in `-f` files.
    let mut repl = repl::Repl::new(engine, format, Box::new(std::io::stdout()), Box::new(std::io::stderr()));
    repl.maxrows = g.maxrows;
    repl.width = if std::io::stdout().is_terminal() { output::terminal_width() } else { None };
    let mut failed_calls = false;
    for (origin, text) in scripts {
        let steps = split_script(&text);
        let many = steps.len() > 1 || origin != "-c";
        let fail = |line: usize, msg: &str| {
            if many {
                eprintln!("Error: {origin}, line {line}: {msg}");
            } else {
                eprintln!("Error: {msg}");
            }
        };
        for step in steps {
            let stmt = match step {
                ScriptStep::Meta(meta) => {
                    if meta.sql.split_whitespace().next() == Some(".action") {
                        fail(
                            meta.line,
                            "`.action` asks for its inputs at the prompt; in a script call the action as a function, \
                             e.g. select add_user_to_group('user', 'group')",
                        );
                        return Ok(EXIT_ERROR);
                    }
                    match repl.meta_command(&meta.sql, &mut repl::ScriptedReader::new(&[])).await {
                        Ok(repl::Flow::Continue) => continue,
                        Ok(repl::Flow::Quit) => return Ok(if failed_calls { EXIT_ERROR } else { EXIT_OK }),
                        Err(msg) => {
                            fail(meta.line, &msg);
                            return Ok(EXIT_ERROR);
                        }
                    }
                }
                ScriptStep::Sql(stmt) => stmt,
            };
            let pipeline = Pipeline {
                engine,
                format: repl.format,
                maxrows: repl.maxrows,
                width: repl.width,
                footer: !g.quiet && repl.format == Format::Table && std::io::stderr().is_terminal(),
                timer: repl.timer,
                summary: !g.quiet,
                cancellable: false,
            };
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            match pipeline.run(&stmt.sql, &mut out, &mut err, &mut YesFlag(g.yes)).await {
                Outcome::Shown => {}
                Outcome::Applied(results) => failed_calls |= results.iter().any(|r| r.status.starts_with("error")),
                Outcome::NotApplied => return Ok(EXIT_NOT_APPLIED),
                Outcome::Cancelled => return Ok(EXIT_ERROR),
                Outcome::Failed(msg) => {
                    fail(stmt.line, &msg);
                    return Ok(EXIT_ERROR);
                }
            }
        }
    }
    Ok(if failed_calls { EXIT_ERROR } else { EXIT_OK })
}

/// Prints a result on stdout (fitted to the terminal when it is one).
pub fn print_result(
    format: Format,
    schema: &datafusion::arrow::datatypes::SchemaRef,
    batches: &[RecordBatch],
    maxrows: Option<usize>,
) -> Result<(), JcsqlError> {
    let width = if std::io::stdout().is_terminal() { output::terminal_width() } else { None };
    write_result(&mut std::io::stdout().lock(), format, schema, batches, maxrows, width)
}

/// Runs a read-only query for a command's output (`board list`, `permissions`).
pub async fn print_query(engine: &Engine, sql: &str, format: Format, maxrows: Option<usize>) -> Result<(), JcsqlError> {
    let batches = engine.sql(sql).await.map_err(|e| JcsqlError::Config(engine.explain(&e)))?;
    let schema = batches.first().map(|b| b.schema()).unwrap_or_else(|| Arc::new(Schema::empty()));
    print_result(format, &schema, &batches, maxrows)
}

/// `jcsql sync`: fetch now, with progress on stderr and a summary table on stdout.
/// `jcsql sync [TABLE…]`: JumpCloud's tables, and another tool's when named with its schema
/// (`google.users`) or when none is named.
async fn sync(engine: &Engine, tables: &[String], g: &GlobalArgs) -> Result<u8, JcsqlError> {
    let mut jobs: Vec<(&Arc<crate::connection::Connection>, Vec<String>)> = Vec::new();
    let mut jumpcloud_tables = Vec::new();
    for t in tables {
        match engine.tools().iter().find(|tool| t.starts_with(&format!("{}.", tool.name))) {
            Some(tool) => match jobs.iter_mut().find(|(c, _)| Arc::ptr_eq(c, tool)) {
                Some((_, names)) => names.push(t.clone()),
                None => jobs.push((tool, vec![t.clone()])),
            },
            None => jumpcloud_tables.push(t.clone()),
        }
    }
    if tables.is_empty() {
        jobs = engine.tools().iter().map(|t| (t, Vec::new())).collect();
    }
    // JumpCloud, unless only other tools' tables were named.
    if tables.is_empty() || !jumpcloud_tables.is_empty() {
        jobs.insert(0, (engine.connection(), jumpcloud_tables));
    }
    let started = std::time::Instant::now();
    let mut results = Vec::new();
    for (conn, names) in jobs {
        can_fetch(conn, g)?;
        let prefix = if Arc::ptr_eq(conn, engine.connection()) { String::new() } else { format!("{}.", conn.name) };
        let names: Vec<String> = names.iter().map(|n| n.strip_prefix(&prefix).unwrap_or(n).to_string()).collect();
        for (name, r) in conn.sync(&names).await {
            results.push((format!("{prefix}{name}"), r));
        }
    }
    report_sync(results, started, g)
}

/// `jcsql sync` needs a key and may not be offline.
fn can_fetch(conn: &crate::connection::Connection, g: &GlobalArgs) -> Result<(), JcsqlError> {
    if !conn.is_connected() {
        return Err(JcsqlError::NotConnected);
    }
    if g.offline {
        return Err(JcsqlError::Config("`jcsql sync` fetches, which --offline forbids; drop --offline".into()));
    }
    Ok(())
}

async fn sync_connection(
    conn: &crate::connection::Connection,
    tables: &[String],
    g: &GlobalArgs,
) -> Result<u8, JcsqlError> {
    can_fetch(conn, g)?;
    let started = std::time::Instant::now();
    let results = conn.sync(tables).await;
    report_sync(results, started, g)
}

/// Each table's refresh outcome, by name.
type SyncResults = Vec<(String, Result<RefreshSummary, JcsqlError>)>;

/// The summary table on stdout, then errors, totals and what changed on stderr.
fn report_sync(results: SyncResults, started: std::time::Instant, g: &GlobalArgs) -> Result<u8, JcsqlError> {
    let format = g.format.unwrap_or(if std::io::stdout().is_terminal() { Format::Table } else { Format::Csv });
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    let batch = summary_batch(&results).map_err(|e| JcsqlError::Config(e.to_string()))?;
    print_result(format, &batch.schema(), &[batch], None)?;
    for (name, r) in &results {
        if let Err(e) = r {
            eprintln!("Error: {name}: {e}");
        }
    }
    if !g.quiet {
        let requests: u64 = results.iter().filter_map(|(_, r)| r.as_ref().ok()).map(|s| s.requests).sum();
        eprintln!(
            "synced {} of {} in {:.1}s with {}",
            results.len() - failed,
            plural(results.len(), "table"),
            started.elapsed().as_secs_f64(),
            plural(requests as usize, "request")
        );
        // What changed since the previous sync, a line per table that changed.
        let compared: Vec<(&String, crate::changes::ChangeCounts)> =
            results.iter().filter_map(|(n, r)| Some((n, r.as_ref().ok()?.changes?))).collect();
        for (name, counts) in compared.iter().filter(|(_, c)| !c.is_empty()) {
            eprintln!("{name}: {counts}");
        }
        if !compared.is_empty() && compared.iter().all(|(_, c)| c.is_empty()) {
            eprintln!("no changes since the last fetch");
        }
    }
    Ok(if failed > 0 { EXIT_ERROR } else { EXIT_OK })
}

fn summary_batch(results: &[(String, Result<RefreshSummary, JcsqlError>)]) -> datafusion::error::Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, true),
        Field::new("requests", DataType::Int64, true),
        Field::new("seconds", DataType::Float64, true),
        Field::new("status", DataType::Utf8, false),
    ]));
    let names: StringArray = results.iter().map(|(n, _)| Some(n.as_str())).collect();
    let rows: Int64Array = results.iter().map(|(_, r)| r.as_ref().ok().map(|s| s.rows as i64)).collect();
    let requests: Int64Array = results.iter().map(|(_, r)| r.as_ref().ok().map(|s| s.requests as i64)).collect();
    let secs: Float64Array = results
        .iter()
        .map(|(_, r)| r.as_ref().ok().map(|s| (s.duration.as_secs_f64() * 1000.0).round() / 1000.0))
        .collect();
    let status: StringArray = results.iter().map(|(_, r)| Some(if r.is_ok() { "ok" } else { "error" })).collect();
    let cols: Vec<ArrayRef> =
        vec![Arc::new(names), Arc::new(rows), Arc::new(requests), Arc::new(secs), Arc::new(status)];
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// `jcsql connect jumpcloud`: read the key without echo, validate it with one request, store it
/// (mode 0600), then run the first sync.
async fn connect_jumpcloud(
    home: &Home,
    g: &GlobalArgs,
    from_stdin: bool,
    api_url: Option<String>,
    org_id: Option<String>,
) -> Result<u8, JcsqlError> {
    let key = if from_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| JcsqlError::Config(format!("cannot read the key from standard input: {e}")))?;
        s.trim().to_string()
    } else {
        eprintln!("Paste your JumpCloud API key (Admin Portal → your initials → My API Key); it will not be shown.");
        rpassword::prompt_password("API key: ").map_err(|e| JcsqlError::Config(format!("cannot read the key: {e}")))?
    };
    if key.trim().is_empty() {
        return Err(JcsqlError::Config("no API key given; nothing was saved".into()));
    }
    let mut stored = StoredConfig::load(&home.config_file())?;
    let mut settings = stored.jumpcloud.clone().unwrap_or_default();
    let url = api_url
        .or_else(|| std::env::var("JUMPCLOUD_API_URL").ok().filter(|u| !u.is_empty()))
        .or(settings.api_url.clone())
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
    let mut cfg = ClientConfig::new(url.clone(), ApiKey::new(key.clone()));
    cfg.org_id = org_id.clone().or(settings.org_id.clone());
    let client = crate::jumpcloud::client::JumpCloudClient::new(cfg)?;
    client.validate().await?;
    settings.api_key = Some(key);
    settings.api_url = (url != DEFAULT_BASE_URL).then_some(url);
    if org_id.is_some() {
        settings.org_id = org_id;
    }
    stored.jumpcloud = Some(settings);
    stored.save(&home.config_file())?;
    eprintln!(
        "The key works; it is saved in {} (readable by you only). Fetching your directory…",
        home.config_file().display()
    );
    // The first sync uses the key just stored, whatever the environment holds.
    let stored_key = stored.jumpcloud.as_ref().and_then(|s| s.api_key.clone());
    let (engine, _) = engine_with_key(home, g, stored_key).await?;
    sync(&engine, &[], g).await
}

/// The orgs a key reaches, with schema-friendly names (repeated names get `_2`).
async fn discover(client: &ClientConfig) -> Result<Vec<crate::engine::OrgOptions>, JcsqlError> {
    let client = crate::jumpcloud::client::JumpCloudClient::new(client.clone())?;
    let mut out: Vec<crate::engine::OrgOptions> = Vec::new();
    for (org_id, display_name) in client.organizations().await? {
        let base = config::org_slug(display_name.as_deref(), &org_id);
        let mut name = base.clone();
        let mut n = 2;
        while out.iter().any(|o| o.name == name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        out.push(crate::engine::OrgOptions { name, org_id, display_name });
    }
    Ok(out)
}

/// `jcsql orgs` lists the stored orgs; `jcsql orgs discover` asks JumpCloud and stores them.
async fn orgs_command(home: &Home, command: Option<OrgsCommand>, g: &GlobalArgs) -> Result<u8, JcsqlError> {
    let mut stored = StoredConfig::load(&home.config_file())?;
    if let Some(OrgsCommand::Discover) = command {
        let (key, url) = key_and_url(&stored.jumpcloud.clone().unwrap_or_default());
        let key = key.ok_or(JcsqlError::NotConnected)?;
        let found = discover(&ClientConfig::new(url, ApiKey::new(key))).await?;
        stored.orgs = found
            .iter()
            .map(|o| {
                (o.name.clone(), config::OrgSettings { org_id: o.org_id.clone(), display_name: o.display_name.clone() })
            })
            .collect();
        stored.save(&home.config_file())?;
        if !g.quiet {
            eprintln!(
                "found {}; query them as jumpcloud_NAME.TABLE, or all at once as jumpcloud_all.TABLE",
                plural(found.len(), "org")
            );
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("schema", DataType::Utf8, false),
        Field::new("org_id", DataType::Utf8, false),
        Field::new("display_name", DataType::Utf8, true),
    ]));
    let orgs: Vec<(&String, &config::OrgSettings)> = stored.orgs.iter().collect();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(orgs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>())),
        Arc::new(StringArray::from(orgs.iter().map(|(n, _)| format!("jumpcloud_{n}")).collect::<Vec<_>>())),
        Arc::new(StringArray::from(orgs.iter().map(|(_, o)| o.org_id.as_str()).collect::<Vec<_>>())),
        Arc::new(StringArray::from(orgs.iter().map(|(_, o)| o.display_name.clone()).collect::<Vec<_>>())),
    ];
    let batch = RecordBatch::try_new(schema, cols).map_err(|e| JcsqlError::Config(e.to_string()))?;
    let format = g.format.unwrap_or(if std::io::stdout().is_terminal() { Format::Table } else { Format::Csv });
    print_result(format, &batch.schema(), &[batch], None)?;
    Ok(EXIT_OK)
}

/// `jcsql export DIR`: every cached table of every connection as Hive-partitioned Parquet,
/// `DIR/org=NAME/table=TABLE/part-0.parquet`. With orgs discovered, the default connection is
/// one of them and is not written twice; alone, it is `org=default`.
fn export(engine: &Engine, dir: &std::path::Path, g: &GlobalArgs) -> Result<u8, JcsqlError> {
    let mut written = 0;
    let has_orgs = engine.connections().iter().any(|c| c.name.starts_with("jumpcloud_"));
    for conn in engine.connections() {
        let org = match conn.name.strip_prefix("jumpcloud_") {
            Some(org) => org,
            None if has_orgs => continue,
            None => "default",
        };
        for t in conn.tables() {
            let (snap, _) = t.current();
            if snap.meta.is_none() {
                continue;
            }
            let folder = dir.join(format!("org={org}")).join(format!("table={}", t.def.name));
            if let Some(store) = &t.log {
                // An event log's held parts are Parquet already: copied.
                let fail = |e: &dyn std::fmt::Display| JcsqlError::File {
                    path: folder.display().to_string(),
                    reason: e.to_string(),
                };
                store.export_to(&folder).map_err(|e| fail(&e))?;
                written += 1;
                continue;
            }
            let path = folder.join("part-0.parquet");
            let fail = |e: &dyn std::fmt::Display| JcsqlError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            };
            std::fs::create_dir_all(&folder).map_err(|e| fail(&e))?;
            let file = std::fs::File::create(&path).map_err(|e| fail(&e))?;
            let schema = t.def.schema();
            let plain = Arc::new(Schema::new(
                schema
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_metadata(Default::default()))
                    .collect::<Vec<_>>(),
            ));
            let mut writer =
                datafusion::parquet::arrow::ArrowWriter::try_new(file, plain.clone(), None).map_err(|e| fail(&e))?;
            for b in &snap.batches {
                let b = RecordBatch::try_new(plain.clone(), b.columns().to_vec()).map_err(|e| fail(&e))?;
                writer.write(&b).map_err(|e| fail(&e))?;
            }
            writer.close().map_err(|e| fail(&e))?;
            written += 1;
        }
    }
    if !g.quiet {
        eprintln!("wrote {} to {}", plural(written, "table"), dir.display());
    }
    if written == 0 {
        return Err(JcsqlError::Config("nothing is cached yet; run `jcsql sync` (or `--all-orgs`) first".into()));
    }
    Ok(EXIT_OK)
}

/// `jcsql permissions [enable|disable ACTION]`: changes the config file, then shows the table.
async fn permissions(home: &Home, change: Option<PermissionChange>, g: &GlobalArgs) -> Result<u8, JcsqlError> {
    let mut stored = StoredConfig::load(&home.config_file())?;
    if let Some(change) = change {
        match change {
            PermissionChange::Enable { action } => stored.permissions.set(&action, true)?,
            PermissionChange::Disable { action } => stored.permissions.set(&action, false)?,
        }
        stored.save(&home.config_file())?;
    }
    let engine = Engine::new(EngineOptions { permissions: stored.permissions.clone(), ..Default::default() }).await?;
    let format = g.format.unwrap_or(if std::io::stdout().is_terminal() { Format::Table } else { Format::Csv });
    print_query(&engine, "select action, enabled from jcsql.permissions", format, None).await?;
    Ok(EXIT_OK)
}

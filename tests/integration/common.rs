//! Test helpers: a simulator on 127.0.0.1:0, an engine on it, and ways to read results.

use std::path::PathBuf;
use std::process::Output;

use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use jcsql::jumpcloud::client::{ApiKey, ClientConfig};
use jcsql::jumpcloud::simulator::{Simulator, SimulatorConfig};
use jcsql::{Engine, EngineOptions};

#[allow(dead_code)] // `dir` keeps the cache folder alive for the test.
pub struct TestOrg {
    pub sim: Simulator,
    pub engine: Engine,
    pub dir: tempfile::TempDir,
}

pub fn fast_client(base_url: String, key: &str) -> ClientConfig {
    let mut c = ClientConfig::new(base_url, ApiKey::new(key));
    c.base_backoff = std::time::Duration::from_millis(20);
    c.max_backoff = std::time::Duration::from_millis(200);
    c
}

/// A Google connection to `google` acting as `subject`, with a key file written to `dir` and
/// short backoffs.
pub fn google_config(
    google: &jcsql::google::simulator::GoogleSimulator,
    dir: &std::path::Path,
    subject: &str,
) -> jcsql::google::GoogleConfig {
    let key_file = google.write_key_file(dir).expect("key file");
    let mut cfg = jcsql::google::GoogleConfig::new(key_file, subject);
    cfg.api_url = google.api_url();
    cfg.base_backoff = std::time::Duration::from_millis(10);
    cfg.max_backoff = std::time::Duration::from_millis(50);
    cfg
}

pub async fn start(users: usize) -> TestOrg {
    start_with(SimulatorConfig::new(users, 7), |_| {}).await
}

pub async fn start_with(cfg: SimulatorConfig, tweak: impl FnOnce(&mut ClientConfig)) -> TestOrg {
    let sim = Simulator::start(cfg).await.expect("simulator starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut client = fast_client(sim.base_url(), sim.api_key());
    tweak(&mut client);
    let engine = engine_for(client, dir.path().to_path_buf()).await;
    TestOrg { sim, engine, dir }
}

pub async fn engine_for(client: ClientConfig, cache: PathBuf) -> Engine {
    Engine::new(EngineOptions {
        client: Some(client),
        cache_dir: Some(cache),
        freshness: Default::default(),
        ..Default::default()
    })
    .await
    .expect("engine starts")
}

pub async fn query(engine: &Engine, sql: &str) -> Vec<RecordBatch> {
    match engine.sql(sql).await {
        Ok(b) => b,
        Err(e) => panic!("{sql}: {}", jcsql::error::user_message(&e)),
    }
}

/// Every row as display strings (NULL as "NULL").
pub fn rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in batches {
        let fmts: Vec<_> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref() as &dyn Array, &opts).expect("formatter"))
            .collect();
        for r in 0..b.num_rows() {
            out.push(fmts.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    out
}

pub async fn strings(engine: &Engine, sql: &str) -> Vec<Vec<String>> {
    rows(&query(engine, sql).await)
}

pub async fn count(engine: &Engine, sql: &str) -> i64 {
    let r = strings(engine, sql).await;
    r[0][0].parse().unwrap_or_else(|_| panic!("{sql} gave {:?}", r))
}

/// Runs the jcsql binary with a clean environment of its own.
pub fn jcsql(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jcsql"));
    cmd.args(args)
        .env_remove("JUMPCLOUD_API_KEY")
        .env_remove("JUMPCLOUD_API_URL")
        .env_remove("JUMPCLOUD_ORG_ID")
        .env_remove("JCSQL_MAX_AGE")
        .env_remove("JCSQL_EVENTS_SINCE")
        .env_remove("JCSQL_EVENTS_SERVICES")
        .env_remove("JUMPCLOUD_INSIGHTS_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("jcsql runs");
    if let Some(mut s) = child.stdin.take()
        && let Some(text) = stdin
    {
        s.write_all(text.as_bytes()).expect("stdin");
    }
    child.wait_with_output().expect("jcsql finishes")
}

/// The environment that points the binary at a simulator (with its default key) and a home.
pub fn sim_env(sim: &Simulator, home: &std::path::Path) -> Vec<(String, String)> {
    vec![
        ("JUMPCLOUD_API_URL".to_string(), sim.base_url()),
        ("JUMPCLOUD_API_KEY".to_string(), sim.api_key().to_string()),
        ("JCSQL_HOME".to_string(), home.display().to_string()),
    ]
}

/// Runs the binary off the async workers (the tests' simulator keeps serving meanwhile).
pub fn spawn_cli(
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
) -> tokio::task::JoinHandle<Output> {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        jcsql(&a, &e, stdin.as_deref())
    })
}

pub fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The test data in the repository (`tests/data/`, with `SOURCES.md` saying where each file came from).
pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// Held by the tests that load the machine (a headless browser) and those that measure how busy
/// a pipeline stays, so one does not starve the other.
pub async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The JSON bodies of the requests the simulator got on `path`, in order.
pub fn bodies(sim: &Simulator, path: &str) -> Vec<serde_json::Value> {
    sim.requests()
        .into_iter()
        .filter(|r| r.path == path)
        .map(|r| serde_json::from_str(r.body.as_deref().unwrap_or("null")).expect("a JSON body"))
        .collect()
}

/// Every file under `dir`.
pub fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

//! jcsql's benchmark against the targets of DESIGN §8.
//!
//! `cargo run --release --example bench [-- --users 100000 --latency-ms 20 --in-flight 16 --save]`
//!
//! It generates the org in the simulator (in this process), then runs the release `jcsql`
//! binary as a child process against it, so memory and start-up are jcsql's alone:
//! a full sync (requests against the minimum page count, wall time against the bound, peak
//! resident memory), a peer-like fetch on a sample (10 rows a page, one request at a time),
//! warm starts from the disk snapshots, and each example board on warm data.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use jcsql::jumpcloud::EVENTS_PAGE_SIZE;
use jcsql::jumpcloud::client::PAGE_SIZE;
use jcsql::jumpcloud::insights::INSIGHTS_PAGE_SIZE;
use jcsql::jumpcloud::simulator::{Org, OrgSpec, Simulator, SimulatorConfig};
use jcsql::jumpcloud::tables::all_tables;
use jcsql::table::Source;

/// The WebDriver commands the web page's tests send (the page load in a browser).
#[path = "../tests/integration/webdriver.rs"]
#[allow(dead_code)]
mod webdriver;

struct Args {
    users: usize,
    groups: usize,
    devices: usize,
    applications: usize,
    latency_ms: u64,
    in_flight: usize,
    peer_sample: usize,
    runs: usize,
    save: bool,
    /// The many-orgs scenario: orgs of `org_users` users each (0 skips it).
    orgs: usize,
    org_users: usize,
    /// The event log at volume: an org of `event_users` users making `events_per_user_per_day`
    /// events a day (0 skips it); `--events-only` runs only that scenario.
    event_users: usize,
    events_per_user_per_day: usize,
    events_only: bool,
}

fn parse_args() -> Args {
    let mut a = Args {
        users: 100_000,
        groups: 5_000,
        devices: 20_000,
        applications: 500,
        latency_ms: 20,
        in_flight: 16,
        peer_sample: 2_000,
        runs: 7,
        save: false,
        orgs: 200,
        org_users: 500,
        event_users: 5_000,
        events_per_user_per_day: 21,
        events_only: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let val = |i: usize| argv.get(i + 1).and_then(|v| v.parse::<usize>().ok());
        match argv[i].as_str() {
            "--users" => a.users = val(i).unwrap_or(a.users),
            "--groups" => a.groups = val(i).unwrap_or(a.groups),
            "--devices" => a.devices = val(i).unwrap_or(a.devices),
            "--applications" => a.applications = val(i).unwrap_or(a.applications),
            "--latency-ms" => a.latency_ms = val(i).map(|v| v as u64).unwrap_or(a.latency_ms),
            "--in-flight" => a.in_flight = val(i).unwrap_or(a.in_flight),
            "--peer-sample" => a.peer_sample = val(i).unwrap_or(a.peer_sample),
            "--runs" => a.runs = val(i).unwrap_or(a.runs),
            "--orgs" => a.orgs = val(i).unwrap_or(a.orgs),
            "--org-users" => a.org_users = val(i).unwrap_or(a.org_users),
            "--event-users" => a.event_users = val(i).unwrap_or(a.event_users),
            "--events-per-user-per-day" => a.events_per_user_per_day = val(i).unwrap_or(a.events_per_user_per_day),
            "--save" => {
                a.save = true;
                i -= 1;
            }
            "--events-only" => {
                a.events_only = true;
                i -= 1;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    a
}

fn pages(n: usize) -> u64 {
    (n as u64).div_ceil(PAGE_SIZE).max(1)
}

/// Σ max(1, ⌈rows ÷ 100⌉) over each list and each parent of each relation, plus the event
/// log's pages of 10,000 (its last page is always short, so ⌊rows ÷ 10,000⌋ + 1).
fn minimum_pages(org: &Org, insights: bool) -> u64 {
    all_tables()
        .iter()
        .filter(|t| is_insights(t) == insights)
        .map(|t| match &t.source {
            Source::List { .. } => pages(org.rows_of(t.name).unwrap_or(0)),
            Source::PerParent { .. } => org.rows_per_parent(t.name).unwrap_or_default().into_iter().map(pages).sum(),
            Source::Log { .. } => org.rows_of(t.name).unwrap_or(0) as u64 / EVENTS_PAGE_SIZE + 1,
            Source::Insights { .. } => org.rows_of(t.name).unwrap_or(0) as u64 / INSIGHTS_PAGE_SIZE + 1,
        })
        .sum()
}

/// System Insights tables are synced and reported on their own (DESIGN §8: device inventory).
fn is_insights(t: &jcsql::table::TableDef) -> bool {
    matches!(t.source, Source::Insights { .. })
}

/// `jcsql sync` of the directory's tables (or of System Insights'), with its other arguments.
fn sync_args(insights: bool, rest: &[&str]) -> Vec<String> {
    let mut args = vec!["sync".to_string()];
    args.extend(all_tables().iter().filter(|t| is_insights(t) == insights).map(|t| t.name.to_string()));
    args.extend(rest.iter().map(|s| s.to_string()));
    args
}

fn jcsql_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("bench path");
    // target/release/examples/bench → target/release/jcsql
    exe.parent().and_then(Path::parent).map(|p| p.join("jcsql")).expect("jcsql next to the examples")
}

/// What one jcsql run took.
struct Run {
    wall: Duration,
    peak_rss: u64,
    /// User + system CPU, read from /proc until the process exits (so up to one poll short).
    cpu: Duration,
    output: String,
    ok: bool,
}

/// Runs jcsql, polling its peak resident memory (VmHWM) and CPU time while it runs.
fn run_jcsql(args: &[&str], envs: &[(&str, String)]) -> Run {
    let started = Instant::now();
    let mut cmd = Command::new(jcsql_binary());
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).env_remove("JUMPCLOUD_API_KEY");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run jcsql (build it with cargo build --release first)");
    // Drain both pipes while it runs: a summary of thousands of rows must not block it.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let status_path = format!("/proc/{}/status", child.id());
    let stat_path = format!("/proc/{}/stat", child.id());
    let (mut peak_kib, mut cpu_ticks) = (0u64, 0u64);
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path)
            && let Some(v) = s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1))
        {
            peak_kib = peak_kib.max(v.parse().unwrap_or(0));
        }
        // Fields 14 and 15 (utime, stime), counted after the parenthesised command name.
        if let Ok(s) = std::fs::read_to_string(&stat_path)
            && let Some(rest) = s.rsplit(')').next()
        {
            let f: Vec<u64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
            if f.len() > 12 {
                cpu_ticks = cpu_ticks.max(f[11] + f[12]);
            }
        }
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = child.wait().expect("jcsql exit status");
    let wall = started.elapsed();
    let (out, err) = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
    let output = String::from_utf8_lossy(&out).into_owned() + &String::from_utf8_lossy(&err);
    // Linux reports CPU time in ticks of 1/100 s.
    Run { wall, peak_rss: peak_kib * 1024, cpu: Duration::from_millis(cpu_ticks * 10), output, ok: status.success() }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A peer's way: 10 rows a page, one request after another, on the first `sample` users.
async fn peer_fetch(base: &str, key: &str, sample: usize) -> (Duration, u64) {
    jcsql::jumpcloud::client::install_crypto_provider();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut requests = 0;
    let mut skip = 0;
    while skip < sample {
        let url = format!("{base}/api/systemusers?limit=10&skip={skip}");
        let body = http.get(&url).header("x-api-key", key).send().await.expect("peer get").bytes().await.expect("body");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        requests += 1;
        let n = v["results"].as_array().map(Vec::len).unwrap_or(0);
        if n == 0 {
            break;
        }
        skip += n;
    }
    (started.elapsed(), requests)
}

fn main() {
    let a = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(bench(a));
}

async fn bench(a: Args) {
    if a.events_only {
        println!("{}", events_bench(&a).await);
        return;
    }
    let spec = OrgSpec {
        users: a.users,
        seed: 42,
        groups: Some(a.groups),
        devices: Some(a.devices),
        applications: Some(a.applications),
        events_per_user_per_day: None,
    };
    eprintln!("generating the org ({} users)…", a.users);
    let org = Org::generate(&spec);
    let memberships = org.membership_count();
    let bindings: usize = org.device_users.iter().map(Vec::len).sum();
    let min_pages = minimum_pages(&org, false);
    let insights_min_pages = minimum_pages(&org, true);
    let mut cfg = SimulatorConfig::new(a.users, 42);
    cfg.latency = Duration::from_millis(a.latency_ms);
    cfg.org = spec.clone();
    let sim = Simulator::start_with_org(cfg, org.clone()).await.expect("simulator");
    let home = tempfile::tempdir().expect("temp dir");
    let envs = vec![
        ("JUMPCLOUD_API_URL", sim.base_url()),
        ("JUMPCLOUD_API_KEY", sim.api_key().to_string()),
        ("JCSQL_HOME", home.path().display().to_string()),
    ];

    eprintln!("full sync…");
    sim.clear_requests();
    let in_flight = a.in_flight.to_string();
    let directory_sync = sync_args(false, &["--max-in-flight", &in_flight, "--format", "csv"]);
    let directory_sync: Vec<&str> = directory_sync.iter().map(String::as_str).collect();
    let sync = tokio::task::block_in_place(|| run_jcsql(&directory_sync, &envs));
    assert!(sync.ok, "sync failed: {}", sync.output);
    let (sync_wall, sync_peak) = (sync.wall, sync.peak_rss);
    let requests = sim.request_count();
    let load = sim.request_load();
    // A second full sync compares every table with the snapshot it replaces (`changes.*`).
    eprintln!("second full sync (every table diffed)…");
    let resync = tokio::task::block_in_place(|| run_jcsql(&directory_sync, &envs));
    assert!(resync.ok, "second sync failed: {}", resync.output);

    let rows: usize = all_tables().iter().filter(|t| !is_insights(t)).map(|t| org.rows_of(t.name).unwrap_or(0)).sum();

    // Device inventory: the nine System Insights tables on their own.
    eprintln!("System Insights sync…");
    sim.clear_requests();
    let insights_sync = sync_args(true, &["--max-in-flight", &in_flight, "--format", "csv"]);
    let insights_sync: Vec<&str> = insights_sync.iter().map(String::as_str).collect();
    let insights = tokio::task::block_in_place(|| run_jcsql(&insights_sync, &envs));
    assert!(insights.ok, "System Insights sync failed: {}", insights.output);
    let insights_requests = sim.request_count();
    let insights_rows: usize =
        all_tables().iter().filter(|t| is_insights(t)).map(|t| org.rows_of(t.name).unwrap_or(0)).sum();
    let package_rows = org.rows_of("device_apps").unwrap_or(0) + org.rows_of("device_programs").unwrap_or(0);
    let insights_bound =
        Duration::from_secs_f64(insights_requests as f64 / a.in_flight as f64 * a.latency_ms as f64 / 1000.0);
    let bound = Duration::from_secs_f64(requests as f64 / a.in_flight as f64 * a.latency_ms as f64 / 1000.0);
    let cache_bytes: u64 = std::fs::read_dir(home.path().join("cache/jumpcloud"))
        .map(|rd| rd.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0);

    eprintln!("peer-like fetch of {} users…", a.peer_sample);
    let (peer_wall, peer_requests) = peer_fetch(&sim.base_url(), sim.api_key(), a.peer_sample).await;
    let jc_user_requests = (a.peer_sample as u64).div_ceil(PAGE_SIZE);
    let jc_user_wall =
        Duration::from_secs_f64(jc_user_requests as f64 / a.in_flight as f64 * a.latency_ms as f64 / 1000.0)
            .max(Duration::from_millis(a.latency_ms));
    let sync_rows_per_sec = rows as f64 / sync_wall.as_secs_f64();
    let peer_rows_per_sec = a.peer_sample as f64 / peer_wall.as_secs_f64();

    eprintln!("warm starts…");
    sim.clear_requests();
    let mut warm = Vec::new();
    for _ in 0..a.runs {
        let run = tokio::task::block_in_place(|| {
            run_jcsql(&["--format", "csv", "-c", "select count(*) from jumpcloud.users"], &envs)
        });
        assert!(run.ok && run.output.contains(&a.users.to_string()), "warm start failed: {}", run.output);
        warm.push(run.wall);
    }
    let warm_requests = sim.request_count();

    // Boards that watch, on the warm cache: every example board that reads JumpCloud alone (the
    // others join exports or Google, which this org has not connected).
    eprintln!("jcsql check --all and watch --once…");
    // The directory's boards, then with the device boards (System Insights) too.
    let watched = tempfile::tempdir().expect("boards dir");
    let with_devices = tempfile::tempdir().expect("boards dir");
    let examples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/boards");
    for e in std::fs::read_dir(&examples).into_iter().flatten().flatten() {
        let sql = std::fs::read_to_string(e.path()).unwrap_or_default();
        let other_tool =
            ["google.", "from hr", "join hr", "from inventory", "join inventory"].iter().any(|t| sql.contains(t));
        if e.path().extension().is_some_and(|x| x == "sql") && !other_tool {
            let _ = std::fs::copy(e.path(), with_devices.path().join(e.file_name()));
            if !sql.contains("jumpcloud.device_") || sql.contains("jumpcloud.device_users") {
                let _ = std::fs::copy(e.path(), watched.path().join(e.file_name()));
            }
        }
    }
    let count_boards = |dir: &Path| std::fs::read_dir(dir).map(|rd| rd.count()).unwrap_or(0);
    let (watched_boards, all_boards) = (count_boards(watched.path()), count_boards(with_devices.path()));
    let boards_arg = watched.path().display().to_string();
    let check_all = |dir: &str| {
        let mut checks = Vec::new();
        for _ in 0..a.runs {
            let run = tokio::task::block_in_place(|| {
                run_jcsql(&["--boards", dir, "check", "--all", "--format", "csv"], &envs)
            });
            assert!(
                run.output.contains(" rows\n") && !run.output.contains(": error: "),
                "check failed: {}",
                run.output
            );
            checks.push(run.wall);
        }
        median(checks)
    };
    let check_median = check_all(&boards_arg);
    let check_devices_median = check_all(&with_devices.path().display().to_string());
    let watch_runs: Vec<Duration> = (0..2)
        .map(|_| {
            let run = tokio::task::block_in_place(|| {
                run_jcsql(&["--boards", &boards_arg, "watch", "--all", "--once"], &envs)
            });
            assert!(run.ok, "watch failed: {}", run.output);
            run.wall
        })
        .collect();

    eprintln!("example boards…");
    let mut boards = Vec::new();
    let mut wire: Vec<(String, WireRun)> = Vec::new();
    let mut natural: Vec<Natural> = Vec::new();
    let mut web: Vec<WebRun> = Vec::new();
    let boards_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/boards");
    if let Ok(rd) = std::fs::read_dir(&boards_dir) {
        let mut files: Vec<PathBuf> =
            rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "sql")).collect();
        files.sort();
        let engine = jcsql::Engine::new(jcsql::EngineOptions {
            client: Some(jcsql::jumpcloud::client::ClientConfig::new(
                sim.base_url(),
                jcsql::jumpcloud::client::ApiKey::new(sim.api_key()),
            )),
            cache_dir: Some(home.path().to_path_buf()),
            ..Default::default()
        })
        .await
        .expect("engine");
        // The exports the example boards join, made for this org.
        let sources = jcsql::cli::workspace::write_demo_workspace(home.path(), &org).expect("demo exports");
        for s in &sources {
            engine.add_source(s).await;
        }
        for f in files {
            let sql = std::fs::read_to_string(&f).unwrap_or_default();
            let name = f.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let _ = engine.sql(&sql).await; // warm the snapshots into memory
            let mut times = Vec::new();
            let mut rows = 0;
            for _ in 0..a.runs {
                let t = Instant::now();
                match engine.sql(&sql).await {
                    Ok(b) => rows = b.iter().map(|b| b.num_rows()).sum::<usize>(),
                    Err(e) => {
                        eprintln!("board {name}: {}", jcsql::error::user_message(&e));
                        break;
                    }
                }
                times.push(t.elapsed());
            }
            if !times.is_empty() {
                boards.push((name, median(times), rows));
            }
        }
        eprintln!("the web page…");
        let engine = std::sync::Arc::new(engine);
        web = web_bench(engine.clone(), &boards_dir, a.runs).await;
        eprintln!("natural queries, jcsql and DuckDB side by side…");
        natural = side_by_side(&engine, a.runs).await;
        eprintln!("the Postgres wire (pgbench)…");
        wire = wire_bench(&engine, &org).await;
    }

    eprintln!("diff cost per table…");
    let mut diffs: Vec<(String, Duration, usize)> = Vec::new();
    {
        let engine = offline_engine(home.path()).await;
        // The event log only grows and is never compared.
        for t in engine.connection().tables().iter().filter(|t| !matches!(t.def.source, Source::Log { .. })) {
            let (snap, _) = t.current();
            let rows: usize = snap.batches.iter().map(|b| b.num_rows()).sum();
            let started = Instant::now();
            let _ = jcsql::changes::diff(
                t.def,
                &snap.batches,
                &snap.batches,
                Some(0),
                1,
                jcsql::changes::ChangeSource::Fetch,
            );
            diffs.push((t.def.name.to_string(), started.elapsed(), rows));
        }
    }
    // Each against its own sync's CPU: the directory's tables, and System Insights'.
    let diff_of = |insights: bool| -> Duration {
        diffs
            .iter()
            .filter(|(name, ..)| jcsql::jumpcloud::tables::table(name).is_some_and(|t| is_insights(t) == insights))
            .map(|(_, d, _)| *d)
            .sum()
    };
    let (diff_total, insights_diff) = (diff_of(false), diff_of(true));

    let warm_median = median(warm.clone());
    let check = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut out = String::new();
    out.push_str(&format!(
        "Org: {} users, {} groups, {} memberships, {} devices ({} bindings), {} applications, {} administrators, {} device groups, {} policies ({} results), {} events in 30 days; {} rows in all; simulator latency {} ms; {} requests in flight.\n\n",
        org.users.len(), org.groups.len(), memberships, org.devices.len(), bindings, org.applications.len(),
        org.audit.admins.len(), org.audit.device_groups.len(), org.audit.policies.len(),
        org.rows_of("policy_statuses").unwrap_or(0), org.rows_of("directory_events").unwrap_or(0), rows,
        a.latency_ms, a.in_flight
    ));
    out.push_str("| measure | figure | target | |\n|---|---|---|---|\n");
    out.push_str(&format!(
        "| full sync: requests | {requests} (minimum pages {min_pages}, ×{:.3}) | ≤ 1.05 × minimum | {} |\n",
        requests as f64 / min_pages as f64,
        check(requests as f64 <= 1.05 * min_pages as f64)
    ));
    out.push_str(&format!(
        "| full sync: wall time | {:.2} s (bound {:.2} s, ×{:.2}) | ≤ 1.25 × requests ÷ in-flight × latency | {} |\n",
        sync_wall.as_secs_f64(),
        bound.as_secs_f64(),
        sync_wall.as_secs_f64() / bound.as_secs_f64(),
        check(sync_wall.as_secs_f64() <= 1.25 * bound.as_secs_f64())
    ));
    out.push_str(&format!("| full sync: rows | {rows} at {sync_rows_per_sec:.0} rows/s | | |\n"));
    out.push_str(&format!(
        "| full sync: requests in flight (server side) | average {:.1} of {} (peak {}) | | |\n",
        load.busy.as_secs_f64() / sync_wall.as_secs_f64(),
        a.in_flight,
        load.peak_in_flight
    ));
    out.push_str(&format!(
        "| full sync: jcsql CPU (decode, Arrow, HTTP, snapshots) | {:.2} s, {:.1} µs a row | | |\n",
        sync.cpu.as_secs_f64(),
        sync.cpu.as_secs_f64() * 1e6 / rows as f64
    ));
    out.push_str(&format!(
        "| full sync: peak resident memory | {:.0} MiB | < 1 GiB | {} |\n",
        sync_peak as f64 / 1048576.0,
        check(sync_peak < 1 << 30)
    ));
    out.push_str(&format!("| snapshots on disk | {:.1} MiB | | |\n", cache_bytes as f64 / 1048576.0));
    out.push_str(&format!(
        "| System Insights sync: requests ({insights_rows} rows, {package_rows} of them apps and programs, {} devices) | {insights_requests} (minimum pages {insights_min_pages}, ×{:.3}) | ≤ 1.05 × minimum | {} |\n",
        org.devices.len(),
        insights_requests as f64 / insights_min_pages as f64,
        check(insights_requests as f64 <= 1.05 * insights_min_pages as f64)
    ));
    out.push_str(&format!(
        "| System Insights sync: wall time | {:.2} s (bound {:.2} s, ×{:.2}; CPU {:.2} s) | ≤ 1.25 × requests ÷ in-flight × latency | {} |\n",
        insights.wall.as_secs_f64(),
        insights_bound.as_secs_f64(),
        insights.wall.as_secs_f64() / insights_bound.as_secs_f64(),
        insights.cpu.as_secs_f64(),
        check(insights.wall.as_secs_f64() <= 1.25 * insights_bound.as_secs_f64())
    ));
    out.push_str(&format!(
        "| System Insights sync: peak resident memory | {:.0} MiB | < 2 GiB | {} |\n",
        insights.peak_rss as f64 / 1048576.0,
        check(insights.peak_rss < 2 << 30)
    ));
    out.push_str(&format!(
        "| second full sync (every table compared with its last snapshot) | {:.2} s wall, {:.2} s CPU, {:.0} MiB peak | | |\n",
        resync.wall.as_secs_f64(),
        resync.cpu.as_secs_f64(),
        resync.peak_rss as f64 / 1048576.0
    ));
    out.push_str(&format!(
        "| diff of every directory table (in process, snapshot against itself) | {:.0} ms, {:.1} % of the sync's CPU | < 10 % of the sync's CPU | {} |\n",
        diff_total.as_secs_f64() * 1000.0,
        diff_total.as_secs_f64() * 100.0 / sync.cpu.as_secs_f64(),
        check(diff_total.as_secs_f64() < 0.1 * sync.cpu.as_secs_f64())
    ));
    out.push_str(&format!(
        "| diff of every System Insights table | {:.0} ms, {:.1} % of that sync's CPU | | |\n",
        insights_diff.as_secs_f64() * 1000.0,
        insights_diff.as_secs_f64() * 100.0 / insights.cpu.as_secs_f64(),
    ));
    for (name, d, rows) in diffs.iter().filter(|(_, d, _)| *d >= Duration::from_millis(5)) {
        out.push_str(&format!("| diff of {name} ({rows} rows) | {} | | |\n", ms(*d)));
    }
    out.push_str(&format!(
        "| peer-like users fetch ({} users, 10 a page, sequential) | {peer_requests} requests, {:.2} s ({peer_rows_per_sec:.0} rows/s) | | |\n",
        a.peer_sample,
        peer_wall.as_secs_f64()
    ));
    out.push_str(&format!(
        "| jcsql on the same rows | {jc_user_requests} requests, ≥ {:.3} s by the bound | peer needs 10× the requests, 160× the time | {:.0}× requests, {:.0}× time |\n",
        jc_user_wall.as_secs_f64(),
        peer_requests as f64 / jc_user_requests as f64,
        peer_wall.as_secs_f64() / jc_user_wall.as_secs_f64()
    ));
    out.push_str(&format!(
        "| warm start `jcsql -c \"select count(*) from jumpcloud.users\"` | median {} of {} runs (min {}), {warm_requests} requests | < 300 ms | {} |\n",
        ms(warm_median),
        a.runs,
        ms(*warm.iter().min().unwrap_or(&Duration::ZERO)),
        check(warm_median < Duration::from_millis(300))
    ));
    out.push_str(&format!(
        "| `jcsql check --all` ({watched_boards} boards, warm cache, whole process) | median {} of {} runs | < 1 s | {} |\n",
        ms(check_median),
        a.runs,
        check(check_median < Duration::from_secs(1))
    ));
    out.push_str(&format!(
        "| `jcsql check --all` with the device boards ({all_boards} boards: the software inventory reads 1.2 M rows) | median {} of {} runs | | |\n",
        ms(check_devices_median),
        a.runs
    ));
    out.push_str(&format!(
        "| `jcsql watch --all --once` ({watched_boards} boards): baseline run, then a compared run | {} / {} | | |\n",
        ms(watch_runs[0]),
        ms(watch_runs[1])
    ));
    for (name, d, rows) in &boards {
        out.push_str(&format!(
            "| board {name} (warm, median of {}) | {} ({rows} rows) | < 100 ms | {} |\n",
            a.runs,
            ms(*d),
            check(*d < Duration::from_millis(100))
        ));
    }
    if !natural.is_empty() {
        let (ours, theirs): (f64, f64) =
            natural.iter().map(|n| (n.jcsql_ms, n.duckdb_ms)).fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        for n in &natural {
            out.push_str(&format!(
                "| natural SQL: {} ({} rows) | jcsql {:.1} ms, DuckDB {:.1} ms, ×{:.2} | ≤ 1.0 × DuckDB | {} |\n",
                n.name,
                n.rows,
                n.jcsql_ms,
                n.duckdb_ms,
                n.jcsql_ms / n.duckdb_ms,
                check(n.jcsql_ms <= n.duckdb_ms)
            ));
        }
        out.push_str(&format!(
            "| natural SQL: all {} queries | jcsql {ours:.1} ms, DuckDB {theirs:.1} ms, ×{:.2} | ≤ 1.0 × DuckDB | {} |\n",
            natural.len(),
            ours / theirs,
            check(ours <= theirs)
        ));
    }
    for w in &web {
        let target = if w.target {
            format!("< 100 ms | {}", check(w.median < Duration::from_millis(100)))
        } else {
            " | ".into()
        };
        out.push_str(&format!(
            "| web: {} | median {} of {} runs, first {} | {target} |\n",
            w.what,
            ms(w.median),
            a.runs,
            ms(w.first)
        ));
    }
    for (what, run) in &wire {
        let target = if what.contains("1 client") && what.contains("by id") {
            format!("< 5 ms | {}", check(run.latency_ms < 5.0))
        } else {
            " | ".into()
        };
        out.push_str(&format!(
            "| wire: {what} | {:.2} ms a query, {:.0} queries/s ({} failed) | {target} |\n",
            run.latency_ms, run.tps, run.failed
        ));
    }
    if a.orgs > 0 {
        out.push_str(&many_orgs(&a).await);
    }
    if a.event_users > 0 {
        out.push('\n');
        out.push_str(&events_bench(&a).await);
    }
    println!("{out}");
    if a.save {
        let machine = format!(
            "{} cores, {}",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|c| c.lines().find(|l| l.starts_with("model name")).map(|l| l
                    .split(':')
                    .nth(1)
                    .unwrap_or("")
                    .trim()
                    .to_string()))
                .unwrap_or_default()
        );
        let doc = format!(
            "# Benchmark\n\nLast output of `cargo run --release --example bench -- --save` ({}), on {machine}.\n\n{out}",
            chrono::Utc::now().format("%Y-%m-%d")
        );
        std::fs::write(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/BENCH.md"), doc)
            .expect("write BENCH.md");
    }
}

struct WebRun {
    what: String,
    first: Duration,
    median: Duration,
    /// Held to the board-page target (< 100 ms server time).
    target: bool,
}

/// The web page at this org's size: board pages (the first 100 rows, the count, the facets) as
/// the server answers them over loopback, warm (the first request also computes Add field), and
/// the page load in headless Chromium when chromedriver is installed.
async fn web_bench(engine: std::sync::Arc<jcsql::Engine>, examples: &Path, runs: usize) -> Vec<WebRun> {
    let dir = tempfile::tempdir().expect("boards dir");
    if let Ok(rd) = std::fs::read_dir(examples) {
        for e in rd.flatten() {
            let _ = std::fs::copy(e.path(), dir.path().join(e.file_name()));
        }
    }
    // A board of every user: the page of a 100,000-row board.
    std::fs::write(
        dir.path().join("all_users.sql"),
        "-- title: Every user\nselect email, username, state, department, suspended, mfa_configured, created from jumpcloud.users order by email",
    )
    .expect("board");
    engine.load_boards(dir.path()).await;
    let options = jcsql::web::WebOptions {
        host: "127.0.0.1".into(),
        port: 0,
        read_only: false,
        token: Some("bench".into()),
        tls: None,
    };
    let server = jcsql::web::WebServer::bind(engine, options).await.expect("web binds");
    let base = format!("http://{}", server.local_addr().expect("addr"));
    tokio::spawn(server.run());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let login = http.get(format!("{base}/?token=bench")).send().await.expect("login");
    let cookie = login.headers()["set-cookie"].to_str().expect("cookie").split(';').next().unwrap_or("").to_string();
    let pages = [
        ("board all_users: 100,000 rows, page 1, count and facets", "/boards/all_users", true),
        (
            "board all_users, page 500 sorted by department desc",
            "/boards/all_users?sort=department&dir=desc&page=500",
            true,
        ),
        (
            "board all_users filtered (q=garcia, f.state=ACTIVATED)",
            "/boards/all_users?q=garcia&f.state=ACTIVATED",
            true,
        ),
        ("board users_without_mfa, page 1", "/boards/users_without_mfa", true),
        ("board users_in_no_group, page 1", "/boards/users_in_no_group", true),
        ("table jumpcloud.users, page 1", "/tables/jumpcloud.users", true),
        ("board all_users as CSV (every row)", "/boards/all_users.csv", false),
        ("/ (every board run for its count)", "/", false),
    ];
    let mut out = Vec::new();
    for (what, path, target) in pages {
        let mut times = Vec::new();
        for _ in 0..runs + 1 {
            let t = Instant::now();
            let r = http.get(format!("{base}{path}")).header("cookie", &cookie).send().await.expect("page");
            assert!(r.status().is_success(), "{path}: {}", r.status());
            let _ = r.bytes().await.expect("body");
            times.push(t.elapsed());
        }
        let first = times.remove(0);
        out.push(WebRun { what: what.to_string(), first, median: median(times), target });
    }
    if let Some(load) = browser_load(&base).await {
        out.push(WebRun {
            what: "board all_users: page load in headless Chromium".into(),
            first: load.0,
            median: load.1,
            target: false,
        });
    }
    out
}

/// The load of the 100,000-row board's page in headless Chromium (first, then median of 5), when
/// chromium and chromedriver are installed.
async fn browser_load(base: &str) -> Option<(Duration, Duration)> {
    let installed = |tool: &str| Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    if !installed("chromedriver") || !installed("chromium") {
        eprintln!("no chromium and chromedriver: the page load in a browser is not measured");
        return None;
    }
    let mut browser = webdriver::Browser::start().await;
    browser.goto(&format!("{base}/?token=bench")).await;
    let mut times = Vec::new();
    for _ in 0..6 {
        let t = Instant::now();
        browser.goto(&format!("{base}/boards/all_users")).await;
        times.push(t.elapsed());
    }
    let first = times.remove(0);
    Some((first, median(times)))
}

struct Natural {
    name: String,
    rows: usize,
    jcsql_ms: f64,
    duckdb_ms: f64,
}

/// `examples/natural_queries.sql` in jcsql (warm, in process) and in DuckDB (Python package, in
/// memory, on the same rows exported by jcsql as Parquet), median of `runs` each.
async fn side_by_side(engine: &jcsql::Engine, runs: usize) -> Vec<Natural> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples");
    let text = std::fs::read_to_string(root.join("natural_queries.sql")).expect("natural_queries.sql");
    let mut queries: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("-- name:") {
            queries.push((name.trim().to_string(), String::new()));
        } else if let Some((_, sql)) = queries.last_mut().filter(|_| !line.starts_with("--")) {
            sql.push_str(line);
            sql.push('\n');
        }
    }
    let dir = tempfile::tempdir().expect("dir");
    for t in [
        "users",
        "user_groups",
        "user_group_members",
        "devices",
        "device_users",
        "applications",
        "application_users",
        "application_user_groups",
        "device_apps",
        "device_programs",
    ] {
        let path = dir.path().join(format!("{t}.parquet"));
        let copy = format!("COPY (SELECT * FROM jumpcloud.{t}) TO '{}' STORED AS PARQUET", path.display());
        engine.sql(&copy).await.expect("export to Parquet");
    }
    let view = jcsql::jumpcloud::tables::VIEWS[0].sql_for("jumpcloud");
    let duck = tokio::task::block_in_place(|| {
        Command::new("python3")
            .arg(root.join("duckdb_side_by_side.py"))
            .arg(dir.path())
            .arg(root.join("natural_queries.sql"))
            .arg(runs.to_string())
            .arg(&view)
            .output()
    });
    let duck = match duck {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            eprintln!("DuckDB side failed (pip install duckdb): {}", String::from_utf8_lossy(&o.stderr));
            return Vec::new();
        }
        Err(e) => {
            eprintln!("python3 is missing: {e}");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (name, sql) in queries {
        let rows = engine.sql(&sql).await.map(|b| b.iter().map(|b| b.num_rows()).sum::<usize>()).expect(&name);
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let _ = engine.sql(&sql).await;
            times.push(t.elapsed());
        }
        let Some(line) = duck.lines().find(|l| l.split('\t').next() == Some(name.as_str())) else { continue };
        let fields: Vec<&str> = line.split('\t').collect();
        let duckdb_ms: f64 = fields.get(1).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
        let duck_rows: usize = fields.get(2).and_then(|v| v.parse().ok()).unwrap_or(0);
        assert_eq!(rows, duck_rows, "{name}: jcsql and DuckDB disagree on the row count");
        out.push(Natural { name, rows, jcsql_ms: median(times).as_secs_f64() * 1000.0, duckdb_ms });
    }
    out
}

struct WireRun {
    latency_ms: f64,
    tps: f64,
    failed: u64,
}

/// `jcsql serve` on the warm engine, driven by pgbench (prepared statements, 5 s a run).
async fn wire_bench(engine: &jcsql::Engine, org: &Org) -> Vec<(String, WireRun)> {
    use jcsql::serve::{ServeOptions, Server};
    let password = "bench";
    let options = ServeOptions { host: "127.0.0.1".into(), port: 0, password: password.into(), tls: None };
    let server = Server::bind(engine, options).await.expect("server binds");
    let url = server.url().expect("url");
    tokio::spawn(server.run());
    let dir = tempfile::tempdir().expect("dir");
    let id = org.users.get(org.users.len() / 2).map(|u| u.id.clone()).unwrap_or_default();
    let queries = [
        ("select 1, 1 client", "select 1;".to_string(), 1),
        ("one user by id, 1 client", format!("select email, state from jumpcloud.users where id = '{id}';"), 1),
        ("one user by id, 16 clients", format!("select email, state from jumpcloud.users where id = '{id}';"), 16),
        ("count of users, 16 clients", "select count(*) from jumpcloud.users where not suspended;".to_string(), 16),
    ];
    let mut runs = Vec::new();
    for (what, sql, clients) in queries {
        let script = dir.path().join("q.sql");
        std::fs::write(&script, sql).expect("script");
        let out = tokio::task::block_in_place(|| {
            std::process::Command::new("pgbench")
                .args(["-n", "-M", "prepared", "-T", "5", "-j", "2", "-c", &clients.to_string(), "-f"])
                .arg(&script)
                .arg(&url)
                .env("PGPASSWORD", password)
                .output()
        });
        let Ok(out) = out else {
            eprintln!("pgbench is missing (apt-get install postgresql-client); no wire figures");
            return Vec::new();
        };
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        let figure = |prefix: &str| -> f64 {
            report
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(f64::NAN)
        };
        let failed = figure("number of failed transactions: ") as u64;
        runs.push((
            what.to_string(),
            WireRun { latency_ms: figure("latency average = "), tps: figure("tps = "), failed },
        ));
    }
    runs
}

/// Many orgs: `orgs` orgs of `org_users` users behind one multi-tenant key. jcsql syncs them all
/// in one process under the key's one limiter; the peer way is one process per org, 8 at a
/// time, with the same requests in flight in all (2 each).
async fn many_orgs(a: &Args) -> String {
    eprintln!("many orgs: {} orgs of {} users…", a.orgs, a.org_users);
    let mut cfg = SimulatorConfig::new(a.org_users, 42);
    cfg.latency = Duration::from_millis(a.latency_ms);
    cfg.orgs = a.orgs;
    let sim = Simulator::start(cfg).await.expect("simulator");
    let home = tempfile::tempdir().expect("temp dir");
    let envs = vec![
        ("JUMPCLOUD_API_URL", sim.base_url()),
        ("JUMPCLOUD_API_KEY", sim.api_key().to_string()),
        ("JCSQL_HOME", home.path().display().to_string()),
    ];
    let discover = tokio::task::block_in_place(|| run_jcsql(&["orgs", "discover", "--format", "csv"], &envs));
    assert!(discover.ok, "orgs discover failed: {}", discover.output);
    let in_flight = a.in_flight.to_string();
    sim.clear_requests();
    let sync = tokio::task::block_in_place(|| {
        run_jcsql(&["sync", "--all-orgs", "--max-in-flight", &in_flight, "--format", "csv", "-q"], &envs)
    });
    assert!(sync.ok, "sync --all-orgs failed: {}", sync.output);
    let requests = sim.request_count();
    let bound = Duration::from_secs_f64(requests as f64 / a.in_flight as f64 * a.latency_ms as f64 / 1000.0);

    // The peer way: a process per org, 8 at a time, each with its share of the requests in flight.
    let per_process = (a.in_flight / 8).max(1).to_string();
    let ids: Vec<String> = (0..sim.org_count()).map(|i| sim.org_at(i).org_id).collect();
    let started = Instant::now();
    for chunk in ids.chunks(8) {
        let handles: Vec<_> = chunk
            .iter()
            .map(|id| {
                let (url, key, id, per_process) =
                    (sim.base_url(), sim.api_key().to_string(), id.clone(), per_process.clone());
                std::thread::spawn(move || {
                    let dir = tempfile::tempdir().expect("temp dir");
                    let envs = vec![
                        ("JUMPCLOUD_API_URL", url),
                        ("JUMPCLOUD_API_KEY", key),
                        ("JUMPCLOUD_ORG_ID", id),
                        ("JCSQL_HOME", dir.path().display().to_string()),
                    ];
                    run_jcsql(&["sync", "--max-in-flight", &per_process, "--format", "csv", "-q"], &envs).ok
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap_or(false), "a per-org sync failed");
        }
    }
    let per_org_wall = started.elapsed();

    let first = jcsql::cli::config::org_slug(sim.org_at(0).display_name.as_deref(), &sim.org_at(0).org_id);
    let one_org = format!("select count(*) from jumpcloud_{first}.users");
    let mut warm = Vec::new();
    for _ in 0..a.runs {
        let run = tokio::task::block_in_place(|| run_jcsql(&["--offline", "--format", "csv", "-c", &one_org], &envs));
        assert!(run.ok, "warm start failed: {}", run.output);
        warm.push(run.wall);
    }
    let mut union = Vec::new();
    for _ in 0..a.runs {
        let run = tokio::task::block_in_place(|| {
            run_jcsql(&["--offline", "--format", "csv", "-c", "select count(*) from jumpcloud_all.users"], &envs)
        });
        assert!(run.ok && run.output.contains(&(a.orgs * a.org_users).to_string()), "union failed: {}", run.output);
        union.push(run.wall);
    }
    let (warm, union) = (median(warm), median(union));
    let check = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut out = format!(
        "\nMany orgs: {} orgs of {} users behind one key; simulator latency {} ms; {} requests in flight.\n\n",
        a.orgs, a.org_users, a.latency_ms, a.in_flight
    );
    out.push_str("| measure | figure | target | |\n|---|---|---|---|\n");
    out.push_str(&format!(
        "| `jcsql sync --all-orgs` | {:.2} s for {requests} requests (bound {:.2} s, ×{:.2}) | | |\n",
        sync.wall.as_secs_f64(),
        bound.as_secs_f64(),
        sync.wall.as_secs_f64() / bound.as_secs_f64()
    ));
    out.push_str(&format!(
        "| one process per org, 8 at a time ({} in flight each) | {:.2} s (×{:.2} of jcsql's) | | |\n",
        per_process,
        per_org_wall.as_secs_f64(),
        per_org_wall.as_secs_f64() / sync.wall.as_secs_f64()
    ));
    out.push_str(&format!(
        "| warm start with {} org schemas | median {} of {} runs | < 300 ms | {} |\n",
        a.orgs,
        ms(warm),
        a.runs,
        check(warm < Duration::from_millis(300))
    ));
    out.push_str(&format!(
        "| `select count(*) from jumpcloud_all.users` (a process, warm data) | median {} | | |\n",
        ms(union)
    ));
    out
}

/// The event log at volume (DESIGN §3a "At real volume"): `jcsql sync directory_events` of a
/// 30-day window against its bound and memory, a one-day query in a fresh process, and failed
/// logins by user over the window beside DuckDB on the same Parquet parts.
async fn events_bench(a: &Args) -> String {
    let spec =
        OrgSpec { events_per_user_per_day: Some(a.events_per_user_per_day as f64), ..OrgSpec::new(a.event_users, 42) };
    eprintln!("generating {} users' events…", a.event_users);
    let org = Org::generate(&spec);
    let now_ms = chrono::Utc::now().timestamp_millis();
    let window_from = now_ms - 30 * 86_400_000;
    let in_window = org.audit.volume.iter().filter(|e| e.at_ms >= window_from && e.at_ms <= now_ms).count()
        + org.audit.events.iter().filter(|e| e.at_ms >= window_from && e.at_ms <= now_ms).count();
    let mut cfg = SimulatorConfig::new(a.event_users, 42);
    cfg.latency = Duration::from_millis(a.latency_ms);
    cfg.org = spec.clone();
    let sim = Simulator::start_with_org(cfg, org).await.expect("simulator");
    let home = tempfile::tempdir().expect("temp dir");
    let envs = vec![
        ("JUMPCLOUD_API_URL", sim.base_url()),
        ("JUMPCLOUD_API_KEY", sim.api_key().to_string()),
        ("JCSQL_HOME", home.path().display().to_string()),
    ];
    let in_flight = a.in_flight.to_string();
    eprintln!("event log sync ({in_window} events in the window)…");
    sim.clear_requests();
    let sync = tokio::task::block_in_place(|| {
        run_jcsql(&["sync", "directory_events", "--max-in-flight", &in_flight, "--format", "csv"], &envs)
    });
    assert!(sync.ok, "events sync failed: {}", sync.output);
    let requests = sim.request_count();
    let pages = (in_window as u64).div_ceil(EVENTS_PAGE_SIZE);
    let bound = Duration::from_secs_f64(pages as f64 / a.in_flight as f64 * a.latency_ms as f64 / 1000.0);
    let store = home.path().join("cache/jumpcloud/directory_events");
    let files: Vec<PathBuf> =
        walk_files(&store).into_iter().filter(|p| p.extension().is_some_and(|x| x == "parquet")).collect();
    let disk: u64 = files.iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();

    // The same sync with no latency: what decoding and writing cost on this machine.
    let floor_home = tempfile::tempdir().expect("temp dir");
    let mut floor_cfg = SimulatorConfig::new(a.event_users, 42);
    floor_cfg.org = spec.clone();
    let floor_sim = Simulator::start_with_org(floor_cfg, sim.org()).await.expect("simulator");
    let floor_envs = vec![
        ("JUMPCLOUD_API_URL", floor_sim.base_url()),
        ("JUMPCLOUD_API_KEY", floor_sim.api_key().to_string()),
        ("JCSQL_HOME", floor_home.path().display().to_string()),
    ];
    eprintln!("the same sync at no latency…");
    let floor = tokio::task::block_in_place(|| {
        run_jcsql(&["sync", "directory_events", "--max-in-flight", &in_flight, "--format", "csv"], &floor_envs)
    });
    assert!(floor.ok, "events sync failed: {}", floor.output);
    drop(floor_sim);
    eprintln!(
        "sync: {requests} requests, {:.2} s wall ({:.2} s CPU, {:.0} MiB peak) against a bound of {:.2} s; at no latency {:.2} s wall, {:.2} s CPU; {:.0} MiB in {} parts",
        sync.wall.as_secs_f64(),
        sync.cpu.as_secs_f64(),
        sync.peak_rss as f64 / 1048576.0,
        bound.as_secs_f64(),
        floor.wall.as_secs_f64(),
        floor.cpu.as_secs_f64(),
        disk as f64 / 1048576.0,
        files.len()
    );

    eprintln!("one-day queries in fresh processes…");
    let one_day = "select count(*) from jumpcloud.directory_events where timestamp >= now() - interval '1 day'";
    let mut day_runs = Vec::new();
    for _ in 0..a.runs {
        let run = tokio::task::block_in_place(|| run_jcsql(&["--offline", "--format", "csv", "-c", one_day], &envs));
        assert!(run.ok, "one-day query failed: {}", run.output);
        day_runs.push(run);
    }
    let day_wall = median(day_runs.iter().map(|r| r.wall).collect());
    let day_rss = day_runs.iter().map(|r| r.peak_rss).max().unwrap_or(0);
    eprintln!("one-day count: {} median, {:.0} MiB peak", ms(day_wall), day_rss as f64 / 1048576.0);

    eprintln!("failed logins by user, beside DuckDB…");
    let failed_by_user = "select username, count(*) as failures from jumpcloud.directory_events \
                          where not success and username is not null \
                          group by username order by failures desc, username limit 10";
    let engine = offline_engine(home.path()).await;
    let ours = engine.sql(failed_by_user).await.expect("failed logins by user");
    let schema = ours.first().map(|b| b.schema()).expect("rows");
    let ours_rows = jcsql::cli::output::render(jcsql::cli::output::Format::Csv, &schema, &ours).expect("csv");
    let mut times = Vec::new();
    for _ in 0..a.runs {
        let t = Instant::now();
        let _ = engine.sql(failed_by_user).await;
        times.push(t.elapsed());
    }
    let jcsql_ms = median(times).as_secs_f64() * 1000.0;
    let glob = format!("{}/*/*.parquet", store.display());
    let duck_sql = failed_by_user.replace("jumpcloud.directory_events", &format!("read_parquet('{glob}')"));
    let script = format!(
        "import duckdb, statistics, time\ncon = duckdb.connect()\ncon.execute('set threads = 2')\n\
         q = {duck_sql:?}\nrows = con.execute(q).fetchall()\nts = []\nfor _ in range({runs}):\n    \
         t = time.perf_counter(); con.execute(q).fetchall(); ts.append((time.perf_counter() - t) * 1000)\n\
         print(statistics.median(ts))\nfor r in rows: print(f'{{r[0]}},{{r[1]}}')\n",
        runs = a.runs
    );
    let duck = tokio::task::block_in_place(|| Command::new("python3").arg("-c").arg(&script).output());
    let (duck_ms, duck_rows) = match duck {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            let mut lines = text.lines();
            let ms: f64 = lines.next().and_then(|l| l.parse().ok()).unwrap_or(f64::NAN);
            (ms, lines.map(|l| format!("{l}\n")).collect::<String>())
        }
        Ok(o) => {
            eprintln!("DuckDB side failed (pip install duckdb): {}", String::from_utf8_lossy(&o.stderr));
            (f64::NAN, String::new())
        }
        Err(e) => {
            eprintln!("python3 is missing: {e}");
            (f64::NAN, String::new())
        }
    };
    let same = ours_rows.lines().skip(1).map(|l| format!("{l}\n")).collect::<String>() == duck_rows;
    let check = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut out = String::new();
    out.push_str(&format!(
        "Event log: {} users, {in_window} events in the 30-day window, simulator at {} ms a request, {} in flight\n\n",
        a.event_users, a.latency_ms, a.in_flight
    ));
    out.push_str("| what | measured | target | |\n|---|---|---|---|\n");
    out.push_str(&format!("| sync of the window: requests | {requests} ({pages} pages of 10,000 at least) | | |\n"));
    out.push_str(&format!(
        "| sync of the window: wall | {:.2} s (bound {:.2} s; CPU {:.2} s) | ≤ 1.25 × bound = {:.2} s | {} |\n",
        sync.wall.as_secs_f64(),
        bound.as_secs_f64(),
        sync.cpu.as_secs_f64(),
        bound.as_secs_f64() * 1.25,
        check(sync.wall.as_secs_f64() <= bound.as_secs_f64() * 1.25)
    ));
    out.push_str(&format!(
        "| the same sync at 0 ms latency (decode + write floor) | {:.2} s wall, {:.2} s CPU | | |\n",
        floor.wall.as_secs_f64(),
        floor.cpu.as_secs_f64()
    ));
    out.push_str(&format!(
        "| sync of the window: peak resident memory | {:.0} MiB | < 1 GiB | {} |\n",
        sync.peak_rss as f64 / 1048576.0,
        check(sync.peak_rss < 1 << 30)
    ));
    out.push_str(&format!(
        "| held on disk | {:.0} MiB in {} Parquet parts | | |\n",
        disk as f64 / 1048576.0,
        files.len()
    ));
    out.push_str(&format!(
        "| one-day count in a fresh process | {} (median of {}), peak {:.0} MiB | < 200 ms, < 200 MiB | {} |\n",
        ms(day_wall),
        a.runs,
        day_rss as f64 / 1048576.0,
        check(day_wall < Duration::from_millis(200) && day_rss < 200 << 20)
    ));
    out.push_str(&format!(
        "| failed logins by user, 30 days | jcsql {jcsql_ms:.1} ms, DuckDB {duck_ms:.1} ms (×{:.2}){} | ≤ 1.0× | {} |\n",
        jcsql_ms / duck_ms,
        if same { ", same rows" } else { ", ROWS DIFFER" },
        check(jcsql_ms <= duck_ms && same)
    ));
    out
}

/// An engine on the cache `home` holds, never fetching.
async fn offline_engine(home: &Path) -> jcsql::Engine {
    jcsql::Engine::new(jcsql::EngineOptions {
        cache_dir: Some(home.to_path_buf()),
        freshness: jcsql::connection::Freshness { offline: true, ..Default::default() },
        ..Default::default()
    })
    .await
    .expect("engine")
}

fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

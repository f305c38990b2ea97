//! The event log at volume (DESIGN §3a "At real volume"): first queries on a fresh home fetch
//! only what they ask, with their filters in the request; the window is fetched in concurrent
//! slices that meet without duplicates or gaps at equal timestamps; held events live on disk in
//! parts, whole after a crash between parts; services left out of the store are fetched when asked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::common::*;
use jcsql::jumpcloud::simulator::{Simulator, SimulatorConfig};

const EVENTS: &str = "/insights/directory/v1/events";
const DAY_MS: i64 = 86_400_000;

fn time_of(body: &serde_json::Value, key: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(body[key].as_str().unwrap_or_else(|| panic!("{key} in {body}")))
        .expect("RFC3339")
        .timestamp_millis()
}

/// An org of `users` with `rate` more events per user per day (LDAP and RADIUS in bursts).
fn volume(users: usize, rate: f64) -> SimulatorConfig {
    let mut cfg = SimulatorConfig::new(users, 11);
    cfg.org.events_per_user_per_day = Some(rate);
    cfg
}

/// (time in ms, service, event_type) of every event of the simulator's org, both kinds.
fn all_events(sim: &Simulator) -> Vec<(i64, String, String)> {
    sim.with_org(|o| {
        let base = o.audit.events.iter().map(|e| {
            (
                e.at_ms,
                e.body["service"].as_str().unwrap_or("").to_string(),
                e.body["event_type"].as_str().unwrap_or("").to_string(),
            )
        });
        let volume = o.audit.volume.iter().map(|e| (e.at_ms, e.service().to_string(), e.event_type().to_string()));
        base.chain(volume).collect()
    })
}

fn count_between(events: &[(i64, String, String)], from_ms: i64, to_ms: i64, keep: impl Fn(&str, &str) -> bool) -> i64 {
    events.iter().filter(|(t, s, ty)| *t >= from_ms && *t <= to_ms && keep(s, ty)).count() as i64
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    walk(dir).into_iter().filter(|p| p.extension().is_some_and(|x| x == "parquet")).collect()
}

/// The files of an event store but its manifest: named parts, and parts being written.
fn part_files(dir: &Path) -> Vec<PathBuf> {
    walk(dir).into_iter().filter(|p| !p.ends_with("manifest.json")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_queries_on_a_fresh_home_fetch_only_what_they_ask() {
    let t = start_with(volume(300, 40.0), |c| c.max_in_flight = 4).await;
    let e = &t.engine;
    let events = all_events(&t.sim);

    // One day: only that day is asked for, with the time range in the body.
    let (before, n, after) = (
        now_ms(),
        count(e, "select count(*) from jumpcloud.directory_events where timestamp >= now() - interval '1 day'").await,
        now_ms(),
    );
    let want_lo = count_between(&events, after - DAY_MS, before, |_, _| true);
    let want_hi = count_between(&events, before - DAY_MS, after, |_, _| true);
    assert!((want_lo..=want_hi).contains(&n), "{n} events in a day, want {want_lo}..={want_hi}");
    let asked = bodies(&t.sim, EVENTS);
    let pages = (n as usize).div_ceil(10_000);
    assert!(pages >= 1 && asked.len() <= pages + 4 + 1, "{} requests for {pages} pages", asked.len());
    for b in &asked {
        assert!((before - DAY_MS - 1_000..=after).contains(&time_of(b, "start_time")), "{b}");
        assert!(time_of(b, "end_time") <= after + 1_000, "{b}");
        assert_eq!(b["service"], serde_json::json!(["all"]));
        assert!(b.get("search_term").is_none());
    }
    let held_from = strings(e, "select covers_from >= now() - interval '1 day' - interval '1 minute' from jcsql.tables where table_name = 'directory_events'").await;
    assert_eq!(held_from, vec![vec!["true"]], "the day is held, not the window");

    // The same day again: answered from disk.
    t.sim.clear_requests();
    count(e, "select count(*) from jumpcloud.directory_events where timestamp >= now() - interval '1 day'").await;
    assert_eq!(t.sim.request_count(), 0);

    // A service over the whole window: asked for with the service in the body, not held.
    t.sim.clear_requests();
    let (before, sso, after) =
        (now_ms(), count(e, "select count(*) from jumpcloud.directory_events where service = 'sso'").await, now_ms());
    let want_lo = count_between(&events, after - 30 * DAY_MS, before, |s, _| s == "sso");
    let want_hi = count_between(&events, before - 30 * DAY_MS, after, |s, _| s == "sso");
    assert!((want_lo..=want_hi).contains(&sso), "{sso} sso events, want {want_lo}..={want_hi}");
    let asked = bodies(&t.sim, EVENTS);
    assert!(!asked.is_empty());
    assert!(asked.iter().all(|b| b["service"] == serde_json::json!(["sso"])), "{asked:?}");
    // The day held answers its part: nothing newer than the held day's start is asked again.
    assert!(asked.iter().all(|b| time_of(b, "end_time") <= before - DAY_MS + 60_000), "{asked:?}");
    assert_eq!(held_from, strings(e, "select covers_from >= now() - interval '1 day' - interval '1 minute' from jcsql.tables where table_name = 'directory_events'").await);

    // A type over two days: the search term in the body, for the day not held only.
    t.sim.clear_requests();
    let ldap = count(
        e,
        "select count(*) from jumpcloud.directory_events where event_type = 'ldap_bind' and timestamp >= now() - interval '2 days'",
    )
    .await;
    let asked = bodies(&t.sim, EVENTS);
    assert!(!asked.is_empty());
    for b in &asked {
        assert_eq!(b["search_term"], serde_json::json!({"and": [{"event_type": "ldap_bind"}]}));
        assert_eq!(b["service"], serde_json::json!(["all"]));
        assert!(time_of(b, "start_time") >= now_ms() - 2 * DAY_MS - 60_000);
        assert!(time_of(b, "end_time") <= now_ms() - DAY_MS + 60_000, "{b}");
    }
    let now = now_ms();
    let want = count_between(&events, now - 2 * DAY_MS - 60_000, now, |_, ty| ty == "ldap_bind");
    assert!((want - want / 50..=want).contains(&ldap), "{ldap} ldap binds, want about {want}");
    assert!(ldap > 1_000, "bursts of binds: {ldap}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_meet_without_duplicates_or_gaps_at_equal_timestamps() {
    let mut cfg = volume(200, 8.0);
    cfg.events_page_limit = 1_000;
    let sim = Simulator::start(cfg).await.expect("sim");
    // Bursts larger than a page at hour boundaries (where slices are cut) and inside hours.
    let today = now_ms() - now_ms().rem_euclid(DAY_MS);
    let org_id = sim.org().org_id;
    let bursts = [today - 5 * DAY_MS, today - 9 * DAY_MS + 3_600_000, today - 12 * DAY_MS + 1_234_567];
    sim.with_org_mut(|o| {
        for at in bursts {
            o.audit.add_burst(&org_id, at, 2_500);
        }
    });
    let dir = tempfile::tempdir().expect("dir");
    let mut client = fast_client(sim.base_url(), sim.api_key());
    client.max_in_flight = 6;
    let e = engine_for(client, dir.path().to_path_buf()).await;
    let results = e.connection().sync(&["directory_events".to_string()]).await;
    assert!(results[0].1.is_ok(), "{results:?}");
    let from_us: i64 =
        strings(&e, "select cast(covers_from as bigint) from jcsql.tables where table_name = 'directory_events'").await
            [0][0]
            .parse()
            .expect("covers_from");
    let events = all_events(&sim);
    let want = events.iter().filter(|(t, ..)| t * 1000 >= from_us && *t <= now_ms()).count() as i64;
    let r = strings(&e, "select count(*), count(distinct id) from jumpcloud.directory_events").await;
    assert_eq!(r, vec![vec![want.to_string(), want.to_string()]], "every event once");
    for at in bursts {
        let at_ms = events.iter().filter(|(t, ..)| *t == at).count();
        let held = count(
            &e,
            &format!("select count(*) from jumpcloud.directory_events where timestamp = to_timestamp_millis({at})"),
        )
        .await;
        assert_eq!(held, at_ms as i64, "the burst at {at}");
    }
    // Several slices, each a chain of its own.
    let chains: BTreeSet<String> =
        bodies(&sim, EVENTS).iter().map(|b| b["start_time"].as_str().unwrap_or("").to_string()).collect();
    assert!(chains.len() >= 6, "{} slices", chains.len());
}

/// `jcsql` started with `env`, not waited for.
fn spawn(args: &[&str], env: &[(String, String)]) -> std::process::Child {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jcsql"));
    cmd.args(args).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("jcsql runs")
}

/// Waits for `child`: its exit code, output and peak resident memory, read from its VmHWM
/// while it runs (a wait4 rusage would count the test process's own peak, which a child
/// started by vfork inherits).
fn wait_measured(mut child: std::process::Child) -> (Option<i32>, String, String, u64) {
    use std::io::Read;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_file)
            && let Some(v) = s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1))
        {
            peak_kib = peak_kib.max(v.parse().unwrap_or(0));
        }
        if let Some(status) = child.try_wait().expect("child status") {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    };
    (status.code(), out.join().unwrap_or_default(), err.join().unwrap_or_default(), peak_kib * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_parts_leaves_the_held_window_whole() {
    let mut cfg = volume(200, 10.0);
    cfg.events_page_limit = 500;
    cfg.latency = std::time::Duration::from_millis(60);
    let sim = Simulator::start(cfg).await.expect("sim");
    let home = tempfile::tempdir().expect("home");
    let env = sim_env(&sim, home.path());
    let mut child = spawn(&["sync", "directory_events", "--quiet", "--max-in-flight", "2"], &env);
    // Killed (SIGKILL: no cleanup) once a slice is held and parts of others are written.
    let manifest = || walk(home.path()).into_iter().find(|p| p.ends_with("directory_events/manifest.json"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let named = manifest()
            .and_then(|m| std::fs::read(m).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|m| m["parts"].as_array().map(Vec::len))
            .unwrap_or(0);
        // Parts of slices not done yet are temp files beside the named ones.
        if named >= 1 && part_files(home.path()).len() >= named + 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the sync never got far enough");
        assert!(child.try_wait().expect("alive").is_none(), "the sync ended before it was killed");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    child.kill().expect("kill");
    let _ = child.wait();
    // A torn part, as a crash mid-write leaves it.
    let store = manifest().expect("manifest").parent().expect("store").to_path_buf();
    std::fs::write(
        store.join(parquet_files(&store)[0].parent().expect("day").file_name().expect("day")).join("torn.parquet"),
        b"PAR1\0\0",
    )
    .expect("torn file");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest().expect("manifest")).expect("read")).expect("json");
    let held: Vec<(i64, i64)> = m["held"]
        .as_array()
        .expect("held")
        .iter()
        .map(|s| (s[0].as_i64().expect("from"), s[1].as_i64().expect("to")))
        .collect();
    let named: BTreeSet<String> =
        m["parts"].as_array().expect("parts").iter().map(|p| p["file"].as_str().expect("file").to_string()).collect();
    assert!(part_files(&store).len() > named.len(), "the crash left parts no manifest names");

    // Offline, the held window answers: exactly the events of the held spans, once each.
    let events = all_events(&sim);
    let want = events.iter().filter(|(t, ..)| held.iter().any(|(a, b)| (*a..*b).contains(&(t * 1000)))).count();
    let out = jcsql(
        &[
            "--offline",
            "-c",
            "select count(*) as n, count(distinct id) as d from jumpcloud.directory_events",
            "--format",
            "csv",
        ],
        &env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(),
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("n,d\n{want},{want}\n"));
    let left: BTreeSet<String> = part_files(&store)
        .iter()
        .map(|p| p.strip_prefix(&store).expect("inside").to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, named, "parts no manifest names are gone, the named ones kept");

    // The next sync fills the rest: every event of the window once.
    let out = jcsql(
        &["sync", "directory_events", "--quiet"],
        &env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(),
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest().expect("manifest")).expect("read")).expect("json");
    let from_us = m["held"][0][0].as_i64().expect("from");
    assert_eq!(m["held"].as_array().map(Vec::len), Some(1), "one span: the window");
    let want = events.iter().filter(|(t, ..)| t * 1000 >= from_us && *t <= now_ms()).count();
    let out = jcsql(
        &[
            "--offline",
            "-c",
            "select count(*) = count(distinct id), count(*) from jumpcloud.directory_events",
            "--format",
            "csv",
        ],
        &env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(),
        None,
    );
    let last = text(&out.stdout).lines().nth(1).unwrap_or_default().to_string();
    assert_eq!(last, format!("true,{want}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_day_query_reads_about_one_day() {
    let sim = Simulator::start(volume(300, 20.0)).await.expect("sim");
    let home = tempfile::tempdir().expect("home");
    let env = sim_env(&sim, home.path());
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = jcsql(&["sync", "directory_events", "--quiet"], &env_ref, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let disk: u64 = walk(home.path()).iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum();
    let (window, day, json_mib) = sim.with_org(|o| {
        let now = now_ms();
        let in_window = o.audit.volume.iter().filter(|e| e.at_ms >= now - 30 * DAY_MS && e.at_ms <= now).count();
        let in_day = o.audit.volume.iter().filter(|e| e.at_ms >= now - DAY_MS && e.at_ms <= now).count();
        let sample: usize = o.audit.volume.iter().take(1000).map(|e| e.json(o).len()).sum();
        (in_window, in_day, (sample * in_window / 1000) as f64 / 1048576.0)
    });
    let sql =
        "select count(*) from jumpcloud.directory_events where timestamp >= now() - interval '1 day' and not success";
    let (code, out, err, one_day_rss) = wait_measured(spawn(&["--offline", "-c", sql, "--format", "csv"], &env));
    assert_eq!(code, Some(0), "{err}");
    let failed: i64 = out.lines().nth(1).and_then(|l| l.parse().ok()).expect("a count");
    assert!(failed > 0 && (failed as usize) < day, "{failed} of {day}");
    let sql = "select count(*) from jumpcloud.directory_events where not success";
    let (code, _, err, window_rss) = wait_measured(spawn(&["--offline", "-c", sql, "--format", "csv"], &env));
    assert_eq!(code, Some(0), "{err}");
    println!(
        "event log: {window} events in the window ({json_mib:.0} MiB of JSON, {:.1} MiB on disk); \
         a one-day query ({day} events) peaked at {:.0} MiB resident, a whole-window one at {:.0} MiB",
        disk as f64 / 1048576.0,
        one_day_rss as f64 / 1048576.0,
        window_rss as f64 / 1048576.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_left_out_of_the_store_are_fetched_when_asked() {
    let t = start_with(volume(200, 10.0), |c| {
        c.events_services = Some(vec!["directory".into(), "sso".into(), "systems".into()]);
        c.max_in_flight = 4;
    })
    .await;
    let e = &t.engine;
    let results = e.connection().sync(&["directory_events".to_string()]).await;
    assert!(results[0].1.is_ok(), "{results:?}");
    let asked = bodies(&t.sim, EVENTS);
    assert!(asked.iter().all(|b| b["service"] == serde_json::json!(["directory", "sso", "systems"])), "{asked:?}");
    let held: i64 = strings(e, "select row_count from jcsql.tables where table_name = 'directory_events'").await[0][0]
        .parse()
        .expect("rows");

    // LDAP over a day: fetched for the query alone, nothing read or written of the store.
    t.sim.clear_requests();
    let ldap = count(
        e,
        "select count(*) from jumpcloud.directory_events where service = 'ldap' and timestamp >= now() - interval '1 day'",
    )
    .await;
    let asked = bodies(&t.sim, EVENTS);
    assert!(!asked.is_empty() && asked.iter().all(|b| b["service"] == serde_json::json!(["ldap"])), "{asked:?}");
    let now = now_ms();
    let events = all_events(&t.sim);
    let want = count_between(&events, now - DAY_MS - 60_000, now, |s, _| s == "ldap");
    assert!((want - want / 50..=want).contains(&ldap), "{ldap} vs {want}");
    let rows: i64 = strings(e, "select row_count from jcsql.tables where table_name = 'directory_events'").await[0][0]
        .parse()
        .expect("rows");
    assert_eq!(rows, held);

    // Every service over an hour: the held ones from disk, the others asked for by name.
    t.sim.clear_requests();
    let hour =
        count(e, "select count(*) from jumpcloud.directory_events where timestamp >= now() - interval '1 hour'").await;
    let asked = bodies(&t.sim, EVENTS);
    assert!(!asked.is_empty());
    for b in &asked {
        let services: Vec<&str> = b["service"].as_array().expect("service").iter().filter_map(|s| s.as_str()).collect();
        assert!(services.contains(&"ldap") && services.contains(&"radius") && !services.contains(&"sso"), "{b}");
    }
    let now = now_ms();
    let want = count_between(&events, now - 3_600_000 - 60_000, now, |_, _| true);
    assert!((want - want / 20 - 5..=want).contains(&hour), "{hour} vs {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_service_in_the_setting_is_refused() {
    let sim = Simulator::start(SimulatorConfig::new(20, 7)).await.expect("sim");
    let home = tempfile::tempdir().expect("home");
    let mut env = sim_env(&sim, home.path());
    env.push(("JCSQL_EVENTS_SERVICES".into(), "directory, ldpa".into()));
    let out = spawn_cli(owned(&["-c", "select count(*) from jumpcloud.users"]), env, None).await.expect("join");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error: events_services names \"ldpa\", which Directory Insights does not know; use all or some of: \
         access_management, alerts, asset_management, directory, ldap, mdm, notifications, object_storage, \
         password_manager, radius, reports, saas_app_management, software, sso, systems\n"
    );
    assert_eq!(sim.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_window_answers_exactly_from_the_parts_held() {
    let sim = Simulator::start(volume(100, 30.0)).await.expect("sim");
    let home = tempfile::tempdir().expect("home");
    let out_dir = tempfile::tempdir().expect("out");
    let env = |since: &str| {
        let mut env = sim_env(&sim, home.path());
        env.push(("JCSQL_EVENTS_SINCE".into(), since.into()));
        env
    };
    let run = |args: &[&str], env: &[(String, String)]| {
        let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let out = jcsql(args, &env_ref, None);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    // Bursts either side of where the day's window will start, so the part reaching across it
    // holds entries older than the start whatever the time of day.
    let org_id = sim.org().org_id;
    let start = now_ms() - DAY_MS;
    sim.with_org_mut(|o| {
        o.audit.add_burst(&org_id, start - 600_000, 50);
        o.audit.add_burst(&org_id, start + 600_000, 50);
    });
    run(&["sync", "directory_events", "--quiet"], &env("3d"));
    // The window shrinks to a day: the parts of the two older days are dropped, the one reaching
    // across the new start is read from the start on, and nothing is fetched.
    sim.clear_requests();
    let before = now_ms();
    let out = run(&["--format", "csv", "-c", "select count(*) as n from jumpcloud.directory_events"], &env("1d"));
    let after = now_ms();
    let n: i64 = out.lines().nth(1).and_then(|l| l.parse().ok()).expect("a count");
    assert_eq!(sim.request_count(), 0);
    let events = all_events(&sim);
    let lo = count_between(&events, after - DAY_MS, before, |_, _| true);
    let hi = count_between(&events, before - DAY_MS - 1_000, after, |_, _| true);
    assert!((lo..=hi).contains(&n), "{n} events, want {lo}..={hi}");
    let days: BTreeSet<String> = parquet_files(home.path())
        .iter()
        .filter_map(|p| p.parent().and_then(|d| d.file_name()).map(|d| d.to_string_lossy().into_owned()))
        .collect();
    assert!(days.len() <= 2, "{days:?}");
    // The export holds what the table answers: the part across the start is written from it on.
    run(&["--offline", "export", &out_dir.path().display().to_string()], &env("1d"));
    let ctx = datafusion::prelude::SessionContext::new();
    let folder = out_dir.path().join("org=default/table=directory_events");
    ctx.register_parquet("events", &format!("{}/", folder.display()), Default::default()).await.expect("register");
    let batches = ctx.sql("select count(*) as n from events").await.expect("sql").collect().await.expect("collect");
    assert_eq!(rows(&batches), vec![vec![n.to_string()]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_copies_the_held_parts() {
    let sim = Simulator::start(volume(60, 10.0)).await.expect("sim");
    let home = tempfile::tempdir().expect("home");
    let out_dir = tempfile::tempdir().expect("out");
    let env = sim_env(&sim, home.path());
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = jcsql(&["sync", "directory_events", "--quiet"], &env_ref, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = jcsql(
        &["--offline", "--format", "csv", "-c", "select count(*) as n from jumpcloud.directory_events"],
        &env_ref,
        None,
    );
    let held = text(&out.stdout);
    let out = jcsql(&["--offline", "export", &out_dir.path().display().to_string()], &env_ref, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let folder = out_dir.path().join("org=default/table=directory_events");
    assert!(folder.join("part-0.parquet").is_file());
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_parquet("events", &format!("{}/", folder.display()), Default::default()).await.expect("register");
    let batches = ctx.sql("select count(*) as n from events").await.expect("sql").collect().await.expect("collect");
    let exported: i64 = rows(&batches)[0][0].parse().expect("count");
    let answered: i64 = held.lines().nth(1).and_then(|l| l.parse().ok()).expect("count");
    assert!(answered > 0);
    assert_eq!(exported, answered, "the export holds what jcsql answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_look_with_a_limit_fetches_one_page() {
    let t = start_with(volume(100, 10.0), |_| {}).await;
    let e = &t.engine;
    let r = strings(e, "select count(*) from (select id, event_type from jumpcloud.directory_events limit 3)").await;
    assert_eq!(r, vec![vec!["3"]]);
    let asked = bodies(&t.sim, EVENTS);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["limit"], 3);
    let held =
        strings(e, "select coalesce(row_count, 0) from jcsql.tables where table_name = 'directory_events'").await;
    assert_eq!(held, vec![vec!["0"]], "a look is not held");
    // With the window held, a look reads it: no request.
    let results = e.connection().sync(&["directory_events".to_string()]).await;
    assert!(results[0].1.is_ok(), "{results:?}");
    t.sim.clear_requests();
    let r = strings(e, "select count(*) from (select * from jumpcloud.directory_events limit 5)").await;
    assert_eq!(r, vec![vec!["5"]]);
    assert_eq!(t.sim.request_count(), 0);
}

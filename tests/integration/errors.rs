//! Bad weather: 429 storms, 503s, a wrong key, malformed JSON, a dead network, bad SQL.

use std::time::Duration;

use crate::common::*;
use jcsql::jumpcloud::simulator::{Fault, Simulator, SimulatorConfig};

async fn assert_exact_org(t: &TestOrg) {
    let org = t.sim.org();
    for (table, result) in t.engine.connection().sync(&[]).await {
        assert!(result.is_ok(), "{table}: {result:?}");
    }
    let e = &t.engine;
    assert_eq!(count(e, "select count(*) from jumpcloud.users").await, org.users.len() as i64);
    assert_eq!(count(e, "select count(distinct id) from jumpcloud.users").await, org.users.len() as i64);
    assert_eq!(count(e, "select count(*) from jumpcloud.user_group_members").await, org.membership_count() as i64);
    let bindings: usize = org.device_users.iter().map(Vec::len).sum();
    assert_eq!(count(e, "select count(*) from jumpcloud.device_users").await, bindings as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_still_gives_exact_results() {
    let mut cfg = SimulatorConfig::new(120, 3);
    cfg.rate_limit = Some(40.0);
    let t = start_with(cfg, |c| c.max_in_flight = 8).await;
    assert_exact_org(&t).await;
    let throttled = t.sim.requests().iter().filter(|r| r.status == 429).count();
    assert!(throttled > 0, "the storm happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intermittent_503s_still_give_exact_results() {
    let mut cfg = SimulatorConfig::new(300, 5);
    cfg.fail_rate = 0.25;
    let t = start_with(cfg, |_| {}).await;
    assert_exact_org(&t).await;
    let failed = t.sim.requests().iter().filter(|r| r.status == 503).count();
    assert!(failed > 10, "503s happened: {failed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_are_bounded_and_say_what_happened() {
    let t = start(50).await;
    t.sim.set_fault("/api/systems", Fault::Status(503));
    let err = t.engine.sql("select count(*) from jumpcloud.devices").await.expect_err("fails");
    let msg = jcsql::error::user_message(&err);
    assert_eq!(
        msg,
        "JumpCloud kept answering 503 for GET /api/systems after 8 attempts (Service Unavailable); try again later, or lower the load with --max-in-flight"
    );
    assert_eq!(t.sim.requests().iter().filter(|r| r.path == "/api/systems").count(), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_json_is_a_clear_error_not_a_panic() {
    let t = start(50).await;
    t.sim.set_fault("/api/v2/usergroups", Fault::MalformedJson);
    let err = t.engine.sql("select count(*) from jumpcloud.user_groups").await.expect_err("fails");
    let msg = jcsql::error::user_message(&err);
    assert!(
        msg.starts_with("JumpCloud sent a response jcsql cannot read for GET /api/v2/usergroups (EOF while parsing")
            && msg.ends_with("retry with `jcsql sync`, and report it if it persists"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    // The other tables still work.
    assert_eq!(count(&t.engine, "select count(*) from jumpcloud.users").await, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_one_line_exit_1_and_never_printed() {
    let sim = Simulator::start(SimulatorConfig::new(20, 1)).await.expect("sim");
    let home = tempfile::tempdir().expect("dir");
    let url = sim.base_url();
    let home_s = home.path().to_string_lossy().to_string();
    let out = tokio::task::spawn_blocking(move || {
        jcsql(
            &["-c", "select count(*) from jumpcloud.users"],
            &[("JUMPCLOUD_API_URL", &url), ("JUMPCLOUD_API_KEY", "jca_wrong_secret_123"), ("JCSQL_HOME", &home_s)],
            None,
        )
    })
    .await
    .expect("joined");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(
        err,
        "Error: JumpCloud rejected the API key (401: Unauthorized). Check JUMPCLOUD_API_KEY, or run `jcsql connect jumpcloud` to store a new key\n"
    );
    assert!(text(&out.stdout).is_empty());
    // Nothing under JCSQL_HOME holds the key (no cache of a failed fetch, no history).
    for entry in walk(home.path()) {
        let content = std::fs::read(&entry).unwrap_or_default();
        assert!(!String::from_utf8_lossy(&content).contains("jca_wrong_secret_123"), "{}", entry.display());
    }
}

pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_network_is_one_line() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let mut client = fast_client(format!("http://127.0.0.1:{port}"), "jca_x");
    client.request_timeout = Duration::from_secs(2);
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine_for(client, dir.path().to_path_buf()).await;
    let err = engine.sql("select * from jumpcloud.users").await.expect_err("fails");
    let msg = jcsql::error::user_message(&err);
    assert!(msg.starts_with(&format!("cannot reach JumpCloud at http://127.0.0.1:{port} (connection failed")), "{msg}");
    assert!(msg.ends_with("check the network or JUMPCLOUD_API_URL"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_and_exit_codes() {
    let out = tokio::task::spawn_blocking(|| jcsql(&["demo", "--users", "20", "-c", "selec 1"], &[], None))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("Error: SQL error: ParserError(\"Expected: an SQL statement, found: selec"), "{err}");

    let out = tokio::task::spawn_blocking(|| {
        jcsql(&["demo", "--users", "20", "-c", "select * from jumpcloud.userz"], &[], None)
    })
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr).lines().count(), 1);

    let out = tokio::task::spawn_blocking(|| jcsql(&["--no-such-flag"], &[], None)).await.expect("join");
    assert_eq!(out.status.code(), Some(2));

    // Not connected: the message says how to connect or try the demo.
    let home = tempfile::tempdir().expect("dir");
    let h = home.path().to_string_lossy().to_string();
    let out = tokio::task::spawn_blocking(move || {
        jcsql(&["-c", "select count(*) from jumpcloud.users"], &[("JCSQL_HOME", &h)], None)
    })
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error: not connected to JumpCloud: set JUMPCLOUD_API_KEY, run `jcsql connect jumpcloud`, or try the built-in demo org with `jcsql demo`\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_answers_the_readme_query() {
    let out = tokio::task::spawn_blocking(|| {
        jcsql(
            &[
                "demo",
                "-c",
                "select u.email, g.name from jumpcloud.users u join jumpcloud.user_group_members m on m.user_id = u.id \
                 join jumpcloud.user_groups g on g.id = m.group_id order by u.email, g.name limit 5",
            ],
            &[],
            None,
        )
    })
    .await
    .expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "csv header and five rows: {stdout}");
    assert_eq!(lines[0], "email,name");
    assert!(lines[1..].iter().all(|l| l.contains("@acme.example,")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datafusion_internal_error_is_one_line_not_a_crash() {
    // DataFusion 55 fails this shape with an internal schema error (see the DataFusion notes).
    let t = start(20).await;
    let err = t
        .engine
        .sql("with c as (select mfa_configured is true as x from jumpcloud.users) select sum(case when x then 1 else 0 end) from c")
        .await
        .expect_err("DataFusion 55 rejects it");
    let msg = jcsql::error::user_message(&err);
    assert!(
        msg.starts_with("the query engine hit an internal error (Physical input schema should be the same"),
        "{msg}"
    );
    assert!(msg.ends_with("rewriting the query usually avoids it (e.g. move a CASE inside the aggregate)"), "{msg}");
    assert!(!msg.contains('\n'));
    // The rewrite the message suggests works.
    let n = t.sim.org().users.iter().filter(|u| u.mfa.configured).count();
    assert_eq!(
        count(&t.engine, "select sum(case when mfa_configured is true then 1 else 0 end) from jumpcloud.users").await,
        n as i64
    );
}

//! Snapshots on disk: restarts without requests, single-flight refresh, nothing lost to a failed
//! or incomplete fetch, broken files refetched, views that see refreshed data.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use jcsql::connection::{Freshness, RefreshSummary, SyncObserver};
use jcsql::error::JcsqlError;
use jcsql::jumpcloud::simulator::{Fault, Simulator, SimulatorConfig};
use jcsql::{Engine, EngineOptions};

#[derive(Default)]
struct Collect {
    warnings: Mutex<Vec<String>>,
}

impl SyncObserver for Collect {
    fn warning(&self, message: &str) {
        self.warnings.lock().expect("lock").push(message.to_string());
    }
    fn finished(&self, _: &str, _: Result<&RefreshSummary, &JcsqlError>) {}
}

async fn engine(sim: &Simulator, dir: &std::path::Path, max_age: Duration) -> (Engine, Arc<Collect>) {
    let e = Engine::new(EngineOptions {
        client: Some(fast_client(sim.base_url(), sim.api_key())),
        cache_dir: Some(dir.to_path_buf()),
        freshness: Freshness { max_age, offline: false },
        ..Default::default()
    })
    .await
    .expect("engine");
    let observer = Arc::new(Collect::default());
    e.connection().set_observer(observer.clone());
    (e, observer)
}

const DAY: Duration = Duration::from_secs(86400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_answers_from_disk_without_a_request() {
    let sim = Simulator::start(SimulatorConfig::new(250, 4)).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let (first, _) = engine(&sim, dir.path(), DAY).await;
    for (t, r) in first.connection().sync(&[]).await {
        assert!(r.is_ok(), "{t}: {r:?}");
    }
    let before = strings(&first, "select * from jumpcloud.users order by id").await;
    let access = count(&first, "select count(*) from jumpcloud.user_application_access").await;
    drop(first);
    sim.clear_requests();

    let (second, warnings) = engine(&sim, dir.path(), DAY).await;
    let after = strings(&second, "select * from jumpcloud.users order by id").await;
    assert_eq!(after, before, "the same rows, _fetched_at included");
    assert_eq!(count(&second, "select count(*) from jumpcloud.user_application_access").await, access);
    assert_eq!(sim.request_count(), 0, "a restart makes no request");
    assert!(warnings.warnings.lock().expect("lock").is_empty());
    let meta = strings(
        &second,
        "select row_count, expected_rows, requests, status from jcsql.tables where table_name = 'users'",
    )
    .await;
    assert_eq!(meta[0], vec!["250", "250", "3", "fresh"]);
    // --offline never fetches, even a table that is not cached.
    std::fs::remove_file(dir.path().join("cache/jumpcloud/devices.arrow")).expect("remove");
    let offline = Engine::new(EngineOptions {
        client: Some(fast_client(sim.base_url(), sim.api_key())),
        cache_dir: Some(dir.path().to_path_buf()),
        freshness: Freshness { max_age: DAY, offline: true },
        ..Default::default()
    })
    .await
    .expect("engine");
    assert_eq!(count(&offline, "select count(*) from jumpcloud.users").await, 250);
    let err = offline.sql("select count(*) from jumpcloud.devices").await.expect_err("no data offline");
    assert_eq!(
        jcsql::error::user_message(&err),
        "devices has no data yet and jcsql is offline; run without --offline (or `jcsql sync devices`) to fetch it"
    );
    assert_eq!(sim.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_table_is_fetched_once_for_two_concurrent_queries() {
    let sim = Simulator::start(SimulatorConfig::new(250, 4)).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let (e, _) = engine(&sim, dir.path(), Duration::from_millis(1500)).await;
    assert_eq!(count(&e, "select count(*) from jumpcloud.users").await, 250);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    sim.clear_requests();
    let (a, b) = tokio::join!(
        count(&e, "select count(*) from jumpcloud.users"),
        count(&e, "select count(distinct email) from jumpcloud.users")
    );
    assert_eq!((a, b), (250, 250));
    assert_eq!(sim.request_count(), 3, "one fetch of ⌈250/100⌉ pages: {:?}", sim.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_keeps_the_old_rows_and_reports_the_error() {
    let sim = Simulator::start(SimulatorConfig::new(100, 4)).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let (e, warnings) = engine(&sim, dir.path(), Duration::from_millis(500)).await;
    let devices = sim.org().devices.len() as i64;
    assert_eq!(count(&e, "select count(*) from jumpcloud.devices").await, devices);
    let file = dir.path().join("cache/jumpcloud/devices.arrow");
    let good = std::fs::read(&file).expect("snapshot");
    tokio::time::sleep(Duration::from_millis(600)).await;
    sim.set_fault("/api/systems", Fault::Status(500));
    assert_eq!(count(&e, "select count(*) from jumpcloud.devices").await, devices, "old rows answer");
    let w = warnings.warnings.lock().expect("lock").clone();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].starts_with(
            "jumpcloud.devices: refresh failed (JumpCloud kept answering 500 for GET /api/systems after 8 attempts"
        ),
        "{}",
        w[0]
    );
    assert!(w[0].contains("answering from the snapshot fetched 0s ago") || w[0].contains("fetched 1s ago"), "{}", w[0]);
    let meta = strings(&e, "select row_count, status, error from jcsql.tables where table_name = 'devices'").await;
    assert_eq!(meta[0][0], devices.to_string());
    assert_eq!(meta[0][1], "error");
    assert!(meta[0][2].starts_with("JumpCloud kept answering 500 for GET /api/systems"), "{}", meta[0][2]);
    assert_eq!(std::fs::read(&file).expect("snapshot"), good, "the file on disk is untouched");

    // An incomplete listing (fewer rows than the server's count) is a failure too.
    sim.clear_faults();
    sim.set_fault("/api/systems", Fault::DropRecords);
    let results = e.connection().sync(&["devices".to_string()]).await;
    let err = results[0].1.as_ref().expect_err("incomplete");
    assert_eq!(
        err.to_string(),
        format!(
            "the fetch of jumpcloud.devices was incomplete: {} rows, but JumpCloud counted {devices}; the previous snapshot is kept, retry with `jcsql sync jumpcloud.devices`",
            devices - 1
        )
    );
    assert_eq!(std::fs::read(&file).expect("snapshot"), good);
    // Once JumpCloud is well again, the refresh lands and the error clears.
    sim.clear_faults();
    assert!(e.connection().sync(&["devices".to_string()]).await[0].1.is_ok());
    let meta = strings(&e, "select status, error from jcsql.tables where table_name = 'devices'").await;
    assert_eq!(meta[0], vec!["fresh", "NULL"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_or_foreign_snapshot_is_refetched() {
    let sim = Simulator::start(SimulatorConfig::new(120, 4)).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let (e, _) = engine(&sim, dir.path(), DAY).await;
    assert_eq!(count(&e, "select count(*) from jumpcloud.users").await, 120);
    drop(e);
    let file = dir.path().join("cache/jumpcloud/users.arrow");
    let bytes = std::fs::read(&file).expect("read");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("truncate");
    sim.clear_requests();
    let (e, warnings) = engine(&sim, dir.path(), DAY).await;
    assert_eq!(count(&e, "select count(*) from jumpcloud.users").await, 120);
    assert_eq!(sim.request_count(), 2, "refetched");
    let w = warnings.warnings.lock().expect("lock").clone();
    assert_eq!(w.len(), 1);
    assert!(w[0].starts_with(&format!("cache: the snapshot {} is unusable (", file.display())), "{}", w[0]);
    assert!(w[0].ends_with("; it will be fetched again"), "{}", w[0]);
    assert!(!w[0].contains('\n'));
    drop(e);
    // Garbage in place of the file: the same.
    std::fs::write(&file, b"not arrow at all").expect("write");
    sim.clear_requests();
    let (e, _) = engine(&sim, dir.path(), DAY).await;
    assert_eq!(count(&e, "select count(*) from jumpcloud.users").await, 120);
    assert_eq!(sim.request_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_planned_before_a_refresh_sees_the_new_rows() {
    let sim = Simulator::start(SimulatorConfig::new(60, 4)).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let (e, _) = engine(&sim, dir.path(), DAY).await;
    let groups = sim.org().groups.len() as i64;
    query(&e, "create view group_count as select count(*) as n from jumpcloud.user_groups").await;
    assert_eq!(count(&e, "select n from group_count").await, groups);
    jcsql::jumpcloud::client::install_crypto_provider();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/api/v2/usergroups", sim.base_url()))
        .header("x-api-key", sim.api_key())
        .body(r#"{"name": "Auditors"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 201);
    assert_eq!(count(&e, "select n from group_count").await, groups, "fresh snapshot, not refetched");
    assert!(e.connection().sync(&["jumpcloud.user_groups".into()]).await[0].1.is_ok());
    assert_eq!(count(&e, "select n from group_count").await, groups + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_smaller_than_the_json_and_record_fetch_facts() {
    let sim = Simulator::start(SimulatorConfig::new(300, 4)).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let (e, _) = engine(&sim, dir.path(), DAY).await;
    let results = e.connection().sync(&["users".into()]).await;
    let summary = results[0].1.as_ref().expect("synced");
    let on_disk = std::fs::metadata(dir.path().join("cache/jumpcloud/users.arrow")).expect("file").len();
    assert!(summary.bytes_received > 0);
    assert!(on_disk < summary.bytes_received, "{on_disk} bytes on disk for {} bytes of JSON", summary.bytes_received);
    let r = strings(&e, "select count(*), count(distinct _fetched_at) from jumpcloud.users").await;
    assert_eq!(r[0], vec!["300", "1"]);
}

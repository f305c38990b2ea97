//! System Insights tables against the simulator over HTTP: every value of the nine tables, the
//! paging of bare arrays (no duplicate at page edges, no limit above 10,000, no request twice),
//! `device_id` pushdown, devices with System Insights off, and the three device boards with
//! their rows computed here from the simulated fleet.

use std::collections::{BTreeMap, BTreeSet};

use jcsql::jumpcloud::simulator::SimulatorConfig;
use jcsql::jumpcloud::simulator::insights::{enabled, rows as fleet_rows};
use jcsql::jumpcloud::simulator::org::Org;
use serde_json::Value;

use crate::common::*;

/// (table, route) of the nine tables.
const TABLES: &[(&str, &str)] = &[
    ("device_os_versions", "os_version"),
    ("device_system_info", "system_info"),
    ("device_apps", "apps"),
    ("device_programs", "programs"),
    ("device_disk_encryption", "disk_encryption"),
    ("device_bitlocker", "bitlocker_info"),
    ("device_chrome_extensions", "chrome_extensions"),
    ("device_local_users", "users"),
    ("device_mounts", "mounts"),
];

fn today_ms() -> i64 {
    chrono::Utc::now().timestamp_millis() / 86_400_000 * 86_400_000
}

/// Device indexes in id order.
fn by_id(org: &Org) -> Vec<usize> {
    let mut ds: Vec<usize> = (0..org.devices.len()).collect();
    ds.sort_by(|a, b| org.devices[*a].id.cmp(&org.devices[*b].id));
    ds
}

/// Every generated row of `route`, device by device in id order (the server's key order within).
fn fleet(org: &Org, route: &str) -> Vec<(usize, Value)> {
    by_id(org)
        .into_iter()
        .flat_map(|d| fleet_rows(org, route, d, today_ms()).into_iter().map(move |r| (d, r)))
        .collect()
}

/// A value as the comparison sees it: numbers as f64, timestamps as microseconds.
fn normal(v: Option<&Value>, timestamp: bool) -> Value {
    match v {
        None | Some(Value::Null) => Value::Null,
        Some(Value::String(s)) if timestamp => {
            serde_json::json!(jcsql::table::parse_timestamp_us(s).expect("a timestamp parses"))
        }
        Some(Value::Number(n)) => serde_json::json!(n.as_f64()),
        Some(other) => other.clone(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_value_of_the_nine_tables_is_the_simulators() {
    let t = start(300).await;
    let org = t.sim.org();
    let e = &t.engine;
    assert!(org.devices.iter().any(|d| !enabled(d)), "some devices have System Insights off");
    for (table, route) in TABLES {
        let def = jcsql::jumpcloud::tables::table(table).expect("defined");
        let key = def.key.join(", ");
        let batches = query(e, &format!("select * from jumpcloud.{table} order by {key}")).await;
        let got = jcsql::watch::rows_of(&batches).expect("rows");
        let expected = fleet(&org, route);
        assert!(!expected.is_empty(), "{table}: the fleet has rows");
        assert_eq!(got.len(), expected.len(), "{table}");
        for (row, (d, want)) in got.iter().zip(&expected) {
            assert!(enabled(&org.devices[*d]), "{table}: rows only from devices with insights on");
            for c in def.columns.iter().filter(|c| c.name != "_fetched_at") {
                let field = match c.name.as_str() {
                    "device_id" => "system_id",
                    "collected_at" => "collection_time",
                    "volume_device_id" => "device_id",
                    other => other,
                };
                let timestamp = c.name == "collected_at";
                assert_eq!(
                    normal(row.get(&c.name), timestamp),
                    normal(want.get(field), timestamp),
                    "{table}.{} of device {}",
                    c.name,
                    org.devices[*d].id
                );
            }
        }
    }
    // Linux agents send lower-case RFC 3339; it parses like the rest.
    assert!(
        fleet(&org, "os_version").iter().any(|(_, r)| r["collection_time"].as_str().is_some_and(|s| s.ends_with('z')))
    );
    assert_eq!(count(e, "select count(*) from jumpcloud.device_os_versions where collected_at is null").await, 0);
    // Each table fit one page of 10,000: one request each, sorted on its key.
    let requests: Vec<_> =
        t.sim.requests().into_iter().filter(|r| r.path.starts_with("/api/v2/systeminsights/")).collect();
    assert_eq!(requests.len(), TABLES.len(), "{requests:?}");
    for r in &requests {
        assert!(
            r.query.contains("limit=10000") && r.query.contains("skip=0") && r.query.contains("sort=system_id"),
            "{r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_a_bare_array_meet_without_gaps_duplicates_or_repeats() {
    let page = 150u64;
    let t = start_with(SimulatorConfig::new(300, 7), |c| c.insights_page_size = page).await;
    let org = t.sim.org();
    let total = fleet(&org, "apps").len() as u64;
    assert!(total > 5 * page, "{total} apps span many pages");
    let got = strings(&t.engine, "select device_id, path from jumpcloud.device_apps order by device_id, path").await;
    let want: Vec<Vec<String>> = fleet(&org, "apps")
        .into_iter()
        .map(|(d, r)| vec![org.devices[d].id.clone(), r["path"].as_str().unwrap_or_default().to_string()])
        .collect();
    assert_eq!(got, want);
    let requests: Vec<String> =
        t.sim.requests().into_iter().filter(|r| r.path == "/api/v2/systeminsights/apps").map(|r| r.query).collect();
    let distinct: BTreeSet<&String> = requests.iter().collect();
    assert_eq!(distinct.len(), requests.len(), "no page asked for twice: {requests:?}");
    assert!(requests.iter().all(|q| q.contains(&format!("limit={page}"))), "{requests:?}");
    // The listing ends on a short page; the minimum is every full page plus that one.
    let minimum = total / page + 1;
    println!("device_apps: {total} rows, {} requests, minimum {minimum}", requests.len());
    assert!(
        requests.len() as u64 <= minimum + minimum / 20 + 1,
        "{} requests, minimum {minimum}: {requests:#?}",
        requests.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_filter_fetches_only_those_devices_and_insights_off_is_no_error() {
    let t = start(300).await;
    let org = t.sim.org();
    let mac = org.devices.iter().position(|d| d.os == "Mac OS X" && enabled(d)).expect("a mac with insights");
    let off = org.devices.iter().position(|d| d.os == "Mac OS X" && !enabled(d)).expect("a mac without insights");
    let (mac_id, off_id) = (org.devices[mac].id.clone(), org.devices[off].id.clone());
    let apps = fleet_rows(&org, "apps", mac, today_ms()).len() as i64;
    assert!(apps >= 40);

    let one = format!("select count(*) from jumpcloud.device_apps where device_id = '{mac_id}'");
    assert_eq!(count(&t.engine, &one).await, apps);
    let none = format!("select count(*) from jumpcloud.device_apps where device_id = '{off_id}'");
    assert_eq!(count(&t.engine, &none).await, 0);
    let both = format!("select count(*) from jumpcloud.device_apps where device_id in ('{mac_id}', '{off_id}')");
    assert_eq!(count(&t.engine, &both).await, apps);
    let requests: Vec<String> = t
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/v2/systeminsights/"))
        .map(|r| r.query)
        .collect();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert!(requests.iter().all(|q| q.contains("filter=system_id")), "only filtered requests: {requests:?}");
    assert!(requests[0].contains(&mac_id) && !requests[0].contains(&off_id), "{requests:?}");
    // Nothing was kept: a filtered fetch is not the whole table.
    assert!(t.sim.requests().iter().all(|r| r.path != "/api/systems"), "no devices list needed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_boards_find_what_the_fleet_holds() {
    let quiet = jcsql::cli::GlobalArgs { quiet: true, ..Default::default() };
    let demo = jcsql::cli::Demo::start(300, 42, &quiet).await.expect("demo");
    let e = &demo.engine;
    let org = demo.simulator.org();

    // Boot volumes: a device with insights on whose full-disk encryption is off, on any OS.
    let mut unencrypted: Vec<String> =
        org.devices.iter().filter(|d| enabled(d) && d.fde["active"] == false).map(|d| d.id.clone()).collect();
    unencrypted.sort();
    let mut got: Vec<String> = strings(e, "select device_id from boards.unencrypted_boot_volumes")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    got.sort();
    assert!(!unencrypted.is_empty());
    assert_eq!(got, unencrypted);

    // Local administrators, active, whose name is no bound JumpCloud user's.
    let mut admins = BTreeSet::new();
    for d in 0..org.devices.len() {
        let bound: BTreeSet<&str> = org.device_users[d].iter().map(|(u, _)| org.users[*u].username.as_str()).collect();
        for r in fleet_rows(&org, "users", d, today_ms()) {
            let name = r["username"].as_str().unwrap_or_default().to_string();
            if r["admin"] == true && r["suspended"] != true && !bound.contains(name.as_str()) {
                admins.insert((org.devices[d].id.clone(), name));
            }
        }
    }
    let got: BTreeSet<(String, String)> = strings(e, "select device_id, username from boards.local_admins_not_bound")
        .await
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert!(!admins.is_empty());
    assert_eq!(got, admins);

    // Software: each (name, version) and the devices it is on, apps and programs together.
    let mut software: BTreeMap<(String, String), BTreeSet<usize>> = BTreeMap::new();
    for (route, name, version) in [("apps", "bundle_name", "bundle_short_version"), ("programs", "name", "version")] {
        for (d, r) in fleet(&org, route) {
            let text = |f: &str| r[f].as_str().unwrap_or_default().to_string();
            software.entry((text(name), text(version))).or_default().insert(d);
        }
    }
    let mut want: Vec<Vec<String>> =
        software.into_iter().map(|((n, v), ds)| vec![n, v, ds.len().to_string()]).collect();
    want.sort_by(|a, b| b[2].parse::<usize>().unwrap_or(0).cmp(&a[2].parse().unwrap_or(0)).then(a.cmp(b)));
    assert_eq!(strings(e, "select * from boards.software_inventory").await, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_answers_insights_like_the_spec_at_the_edges() {
    let sim = jcsql::jumpcloud::simulator::Simulator::start(SimulatorConfig::new(30, 2)).await.expect("sim");
    jcsql::jumpcloud::client::install_crypto_provider();
    let http = reqwest::Client::new();
    let get = |q: &str| {
        http.get(format!("{}/api/v2/systeminsights/{q}", sim.base_url())).header("x-api-key", "jca_demo").send()
    };
    let body = |r: reqwest::Response| async move { r.text().await.expect("body") };
    let r = get("apps?limit=10001").await.expect("get");
    assert_eq!(r.status(), 400);
    assert_eq!(
        body(r).await,
        r#"{"message":"Bad Request: request parameter \"limit\" exceeds maximum value of 10000"}"#
    );
    let r = get("apps?filter=path:eq:/Applications/Safari.app").await.expect("get");
    assert_eq!(r.status(), 400);
    assert!(body(r).await.contains("valid filter fields are system_id and bundle_name"));
    let r = get("apps?filter=system_id:gt:1").await.expect("get");
    assert_eq!(r.status(), 400);
    assert_eq!(get("no_such_table").await.expect("get").status(), 404);
    // The default page is 10 records, a bare array with no count.
    let r = get("mounts").await.expect("get");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-total-count").is_none());
    let page: Vec<Value> = serde_json::from_str(&body(r).await).expect("array");
    assert_eq!(page.len(), 10);
    // The spec's one extra filter field: `bundle_name`, with `in`.
    let r = get("apps?limit=10000&filter=bundle_name:in:Safari|Slack").await.expect("get");
    let page: Vec<Value> = serde_json::from_str(&body(r).await).expect("array");
    assert!(!page.is_empty());
    assert!(page.iter().all(|a| a["bundle_name"] == "Safari" || a["bundle_name"] == "Slack"));
}

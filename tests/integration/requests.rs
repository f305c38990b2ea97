//! What the client asks of JumpCloud: page size, page counts, pushdown to one parent.

use crate::common::*;
use jcsql::jumpcloud::simulator::count_by_path;

fn param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_at_100_and_cost_one_request_per_page() {
    let t = start(350).await;
    t.sim.clear_requests();
    assert_eq!(count(&t.engine, "select count(*) from jumpcloud.users").await, 350);
    let reqs = t.sim.requests();
    assert_eq!(reqs.len(), 4, "⌈350/100⌉ pages: {reqs:?}");
    for r in &reqs {
        assert_eq!(r.path, "/api/systemusers");
        assert_eq!(param(&r.query, "limit"), Some("100"));
        assert_eq!(param(&r.query, "sort"), Some("_id"));
    }
    let mut skips: Vec<u64> = reqs.iter().filter_map(|r| param(&r.query, "skip")?.parse().ok()).collect();
    skips.sort();
    assert_eq!(skips, vec![0, 100, 200, 300]);

    // Every request of a full sync respects the page size.
    t.sim.clear_requests();
    for (table, result) in t.engine.connection().sync(&[]).await {
        assert!(result.is_ok(), "{table}: {result:?}");
    }
    let all = t.sim.requests();
    let (lists, logs): (Vec<_>, Vec<_>) = all.iter().partition(|r| r.method == "GET");
    // System Insights pages hold up to 10,000 (the spec's most); every other list 100.
    let limit =
        |r: &&jcsql::jumpcloud::simulator::RequestRecord| param(&r.query, "limit").and_then(|l| l.parse::<u32>().ok());
    let (insights, lists): (Vec<_>, Vec<_>) =
        lists.into_iter().partition(|r| r.path.starts_with("/api/v2/systeminsights/"));
    assert!(lists.iter().all(|r| limit(r).is_some_and(|l| l <= 100)));
    assert_eq!(insights.len(), 9, "{insights:?}");
    assert!(insights.iter().all(|r| limit(r) == Some(10_000)), "{insights:?}");
    // The event log pages by 10,000 (Directory Insights' most), in the POST body.
    assert_eq!(logs.len(), 1, "{logs:?}");
    let body: serde_json::Value = serde_json::from_str(logs[0].body.as_deref().unwrap_or("{}")).expect("json body");
    assert_eq!(body["limit"], 10_000);
    let org = t.sim.org();
    let by_path = count_by_path(&all);
    assert_eq!(by_path["/api/systemusers"], 4);
    assert_eq!(by_path["/api/systems"], org.devices.len().div_ceil(100));
    assert_eq!(by_path["/api/v2/usergroups"], org.groups.len().div_ceil(100));
    // One request per group, plus one per extra page of the groups over 100 members.
    let member_requests: usize = org.group_members.iter().map(|m| m.len().div_ceil(100).max(1)).sum();
    let got: usize = by_path
        .iter()
        .filter(|(p, _)| p.starts_with("/api/v2/usergroups/") && p.ends_with("/members"))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(got, member_requests);
    // jcsql.tables records the requests per table.
    let r =
        strings(&t.engine, "select requests, row_count, expected_rows from jcsql.tables where table_name = 'users'")
            .await;
    assert_eq!(r[0], vec!["4", "350", "350"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_filter_fetches_only_that_parent() {
    let t = start(300).await;
    let org = t.sim.org();
    let (gi, members) = org.group_members.iter().enumerate().max_by_key(|(_, m)| m.len()).expect("groups");
    let gid = &org.groups[gi].id;
    t.sim.clear_requests();
    let n =
        count(&t.engine, &format!("select count(*) from jumpcloud.user_group_members where group_id = '{gid}'")).await;
    assert_eq!(n, members.len() as i64);
    let reqs = t.sim.requests();
    assert_eq!(reqs.len(), members.len().div_ceil(100), "{reqs:?}");
    assert!(reqs.iter().all(|r| r.path == format!("/api/v2/usergroups/{gid}/members")));

    // IN lists fetch each named parent; an unknown id is simply empty.
    let d0 = &org.devices[0].id;
    let d1 = &org.devices[1].id;
    t.sim.clear_requests();
    let n = count(
        &t.engine,
        &format!("select count(*) from jumpcloud.device_users where device_id in ('{d0}', '{d1}', '000000000000000000000000')"),
    )
    .await;
    assert_eq!(n, (org.device_users[0].len() + org.device_users[1].len()) as i64);
    assert_eq!(t.sim.requests().len(), 3);
}

/// The limiter is the one knob between jcsql and JumpCloud's rate limits: during a sync the
/// server sees `max_in_flight` requests at once at most, reaches it, and stays well above one at a
/// time (about 3 of 4 in a debug build; a sequential client would average 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_keeps_exactly_max_in_flight_requests_at_the_server() {
    let _alone = crate::common::exclusive().await;
    let mut cfg = jcsql::jumpcloud::simulator::SimulatorConfig::new(400, 5);
    // Latency well above a debug build's work per page, so a busy machine (the suite runs its
    // tests at once on 2 cores) does not empty the pipeline.
    cfg.latency = std::time::Duration::from_millis(40);
    let t = start_with(cfg, |c| c.max_in_flight = 4).await;
    t.sim.clear_requests();
    let started = std::time::Instant::now();
    // The directory's tables: System Insights pages are few and large (their own test pages them).
    let directory: Vec<String> = jcsql::jumpcloud::tables::all_tables()
        .iter()
        .filter(|t| !matches!(t.source, jcsql::table::Source::Insights { .. }))
        .map(|t| t.name.to_string())
        .collect();
    for (table, result) in t.engine.connection().sync(&directory).await {
        assert!(result.is_ok(), "{table}: {result:?}");
    }
    let wall = started.elapsed();
    let load = t.sim.request_load();
    assert_eq!(load.peak_in_flight, 4, "{load:?}");
    let average = load.busy.as_secs_f64() / wall.as_secs_f64();
    assert!(average > 2.0, "the pipeline stays full: {average:.2} in flight on average, {load:?} over {wall:?}");
}

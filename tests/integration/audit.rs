//! What admins audit: administrators, device groups, policies and the Directory Insights event
//! log, against the simulator's generated org, with request counts, paging and faults.

use std::collections::BTreeSet;

use crate::common::*;
use jcsql::jumpcloud::simulator::{Fault, Simulator, SimulatorConfig};

const DAY_MS: i64 = 86_400_000;

const EVENTS: &str = "/insights/directory/v1/events";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_tables_hold_exactly_the_generated_org() {
    // A multi-tenant key names its org: every request carries x-org-id but the administrators
    // list, which refuses it (403), as live JumpCloud does.
    let sim = Simulator::start(SimulatorConfig::new(300, 7)).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let org = sim.org();
    let client = fast_client(sim.base_url(), sim.api_key()).with_org(org.org_id.clone());
    let engine = engine_for(client, dir.path().to_path_buf()).await;
    let t = TestOrg { sim, engine, dir };
    let e = &t.engine;
    let a = &org.audit;
    for admin in &a.admins {
        let r = strings(
            e,
            &format!(
                "select email, role_name, enable_multi_factor, suspended, api_key_set, created from jumpcloud.administrators where id = '{}'",
                admin._id
            ),
        )
        .await;
        let created = chrono::DateTime::parse_from_rfc3339(&admin.created).expect("date");
        assert_eq!(
            r,
            vec![vec![
                admin.email.clone(),
                admin.role_name.to_string(),
                admin.enable_multi_factor.to_string(),
                admin.suspended.to_string(),
                admin.api_key_set.to_string(),
                created.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            ]]
        );
    }
    assert!(t.sim.requests().iter().any(|r| r.path == "/api/users" && r.status == 200));
    assert!(t.sim.requests().iter().all(|r| r.status == 200), "no request was refused");
    for (g, members) in a.device_groups.iter().zip(&a.device_group_members) {
        let got: BTreeSet<String> =
            strings(e, &format!("select device_id from jumpcloud.device_group_members where group_id = '{}'", g.id))
                .await
                .into_iter()
                .map(|r| r[0].clone())
                .collect();
        let want: BTreeSet<String> = members.iter().map(|&d| org.devices[d].id.clone()).collect();
        assert_eq!(got, want, "{}", g.name);
    }
    let failed: usize = a.policy_results.iter().flatten().filter(|r| r.state == "failed").count();
    assert!(failed > 0);
    assert_eq!(count(e, "select count(*) from jumpcloud.policy_statuses where state = 'failed'").await, failed as i64);
    let p = &a.policies[0];
    let r = strings(
        e,
        &format!(
            "select name, template_name, template_os_meta_family, json_length(template_delivery_types) from jumpcloud.policies where id = '{}'",
            p.id
        ),
    )
    .await;
    assert_eq!(
        r[0],
        vec![
            p.name.clone(),
            p.template["name"].as_str().unwrap_or_default().to_string(),
            p.family.to_string(),
            "1".into()
        ]
    );
    // Events: the window's rows, flattened; the whole event is kept as JSON text.
    let (before, n, after) = (now_ms(), count(e, "select count(*) from jumpcloud.directory_events").await, now_ms());
    let in_window = |at: i64| a.events.iter().filter(|ev| ev.at_ms >= at - 30 * DAY_MS).count() as i64;
    assert!((in_window(after)..=in_window(before)).contains(&n), "{n} events");
    let ev = a.events.iter().rev().find(|ev| ev.body["event_type"] == "user_update").expect("an admin change");
    let r = strings(
        e,
        &format!(
            "select event_type, service, initiated_by_type, initiated_by_email, resource_id, resource_type, \
             json_get_str(changes, 0, 'field'), geoip_country_code, json_get_str(event, 'id') \
             from jumpcloud.directory_events where id = '{}'",
            ev.id
        ),
    )
    .await;
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("NULL").to_string();
    assert_eq!(
        r[0],
        vec![
            "user_update".to_string(),
            "directory".into(),
            "admin".into(),
            s(&ev.body["initiated_by"]["email"]),
            s(&ev.body["resource"]["id"]),
            "user".into(),
            s(&ev.body["changes"][0]["field"]),
            s(&ev.body["geoip"]["country_code2"]),
            ev.id.clone(),
        ]
    );
    let window = strings(
        e,
        "select covers_from is not null, newest_row is not null, status from jcsql.tables where table_name = 'directory_events'",
    )
    .await;
    assert_eq!(window, vec![vec!["true", "true", "fresh"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_filter_fetches_one_device_group_or_policy() {
    let t = start(300).await;
    let org = t.sim.org();
    let g = org.audit.device_group_members.iter().position(|m| !m.is_empty()).expect("a group with devices");
    let gid = &org.audit.device_groups[g].id;
    t.sim.clear_requests();
    let n = count(&t.engine, &format!("select count(*) from jumpcloud.device_group_members where group_id = '{gid}'"))
        .await;
    assert_eq!(n, org.audit.device_group_members[g].len() as i64);
    let paths: Vec<String> = t.sim.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec![format!("/api/v2/systemgroups/{gid}/members")]);
    let p = &org.audit.policies[1];
    t.sim.clear_requests();
    let n =
        count(&t.engine, &format!("select count(*) from jumpcloud.policy_statuses where policy_id = '{}'", p.id)).await;
    assert_eq!(n, org.audit.policy_results[1].len() as i64);
    let paths: Vec<String> = t.sim.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, vec![format!("/api/v2/policies/{}/policystatuses", p.id)]);
}

/// Events of the simulator's org at or after `from_us` (the held window's start).
fn events_since(t: &TestOrg, from_us: i64) -> i64 {
    t.sim.with_org(|o| o.audit.events.iter().filter(|ev| ev.at_ms * 1000 >= from_us).count()) as i64
}

async fn covers_from(e: &jcsql::Engine) -> i64 {
    strings(e, "select cast(covers_from as bigint) from jcsql.tables where table_name = 'directory_events'").await[0][0]
        .parse()
        .expect("covers_from")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_page_by_search_after_and_refresh_only_what_is_new() {
    let mut cfg = SimulatorConfig::new(300, 7);
    cfg.events_page_limit = 100;
    let t = start_with(cfg, |c| c.max_in_flight = 4).await;
    let e = &t.engine;
    let held = count(e, "select count(*) from jumpcloud.directory_events").await;
    assert_eq!(held, events_since(&t, covers_from(e).await), "every event of the window");
    assert!(held > 250, "{held} events");
    assert_eq!(count(e, "select count(distinct id) from jumpcloud.directory_events").await, held, "no duplicates");
    // The first page came full: the counts by hour cut the rest into 4 slices of about equal
    // counts, each a chain of pages joined by X-Search_after until a short page.
    let intervals = bodies(&t.sim, &format!("{EVENTS}/interval"));
    assert_eq!(intervals.len(), 1);
    assert_eq!(
        (intervals[0]["interval_unit"].as_str(), intervals[0]["interval_value"].as_str()),
        (Some("h"), Some("1"))
    );
    let pages = bodies(&t.sim, EVENTS);
    assert!(pages[0].get("search_after").is_none());
    let chains: BTreeSet<(String, String)> = pages[1..]
        .iter()
        .map(|b| (b["start_time"].as_str().unwrap_or("").to_string(), b["end_time"].as_str().unwrap_or("").to_string()))
        .collect();
    assert_eq!(chains.len(), 4, "{chains:?}");
    for (start, end) in &chains {
        let chain: Vec<&serde_json::Value> =
            pages[1..].iter().filter(|b| b["start_time"] == start.as_str() && b["end_time"] == end.as_str()).collect();
        assert!(chain[0].get("search_after").is_none());
        assert!(chain[1..].iter().all(|b| b["search_after"].is_array()), "joined by X-Search_after");
    }
    let minimum = (held as usize).div_ceil(100);
    assert!(pages.len() <= minimum + 1 + 4, "{} pages for {held} events", pages.len());
    assert!(pages.iter().all(|b| b["service"] == serde_json::json!(["all"]) && b["limit"] == 10_000));

    // The org changes: three writes through the API, each an event.
    let org = t.sim.org();
    let client = reqwest::Client::new();
    jcsql::jumpcloud::client::install_crypto_provider();
    for name in ["Auditors", "Red Team", "Blue Team"] {
        let r = client
            .post(format!("{}/api/v2/usergroups", t.sim.base_url()))
            .header("x-api-key", t.sim.api_key())
            .header("content-type", "application/json")
            .body(serde_json::json!({"name": name}).to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 201);
    }
    t.sim.clear_requests();
    let newest_before = org.audit.events.last().expect("events").at_ms;
    let results = e.connection().sync(&["directory_events".to_string()]).await;
    assert!(results[0].1.is_ok(), "{results:?}");
    let asked = bodies(&t.sim, EVENTS);
    assert_eq!(asked.len(), 1, "one page of new events");
    assert!(bodies(&t.sim, &format!("{EVENTS}/interval")).is_empty(), "a short first page needs no counts");
    let start = chrono::DateTime::parse_from_rfc3339(asked[0]["start_time"].as_str().expect("start_time"))
        .expect("RFC3339")
        .timestamp_millis();
    assert_eq!(start, newest_before - 60_000, "only what is newer than the newest held, with a minute of overlap");
    assert_eq!(count(e, "select count(*) from jumpcloud.directory_events").await, held + 3);
    assert_eq!(count(e, "select count(distinct id) from jumpcloud.directory_events").await, held + 3);
    let created = strings(
        e,
        "select resource_name from jumpcloud.directory_events where event_type = 'user_group_create' order by timestamp",
    )
    .await;
    assert_eq!(created, vec![vec!["Auditors"], vec!["Red Team"], vec!["Blue Team"]]);
    // The refresh appended a part: the parts before it are as they were.
    let parts = |dir: &std::path::Path| -> usize {
        walk(dir).iter().filter(|p| p.extension().is_some_and(|x| x == "parquet")).count()
    };
    let before = parts(t.dir.path());

    // A refresh that fails keeps what was held: no partial append, no duplicates.
    t.sim.set_fault(EVENTS, Fault::StatusAfter(0, 400));
    let results = e.connection().sync(&["directory_events".to_string()]).await;
    assert!(results[0].1.is_err());
    t.sim.clear_faults();
    assert_eq!(parts(t.dir.path()), before);
    assert_eq!(count(e, "select count(*) from jumpcloud.directory_events").await, held + 3);
    let status = strings(e, "select status from jcsql.tables where table_name = 'directory_events'").await;
    assert_eq!(status, vec![vec!["error"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_on_a_later_page_keeps_only_whole_slices() {
    let mut cfg = SimulatorConfig::new(300, 7);
    cfg.events_page_limit = 100;
    let t = start_with(cfg, |c| c.max_in_flight = 4).await;
    let e = &t.engine;
    // The first fill fails on its fourth request: the slices that ended before it are held,
    // the others are not, and no slice is held in half.
    t.sim.set_fault(EVENTS, Fault::StatusAfter(3, 400));
    let err = e.sql("select count(*) from jumpcloud.directory_events").await.expect_err("fails");
    assert!(jcsql::error::user_message(&err).contains("400"), "{}", jcsql::error::user_message(&err));
    t.sim.clear_faults();
    t.sim.clear_requests();
    let n = count(e, "select count(*) from jumpcloud.directory_events").await;
    assert_eq!(n, events_since(&t, covers_from(e).await));
    assert_eq!(count(e, "select count(distinct id) from jumpcloud.directory_events").await, n);
    // Only what was not held was asked for again.
    let asked = bodies(&t.sim, EVENTS);
    assert!(!asked.is_empty() && (asked.len() as i64) < n / 100 + 5, "{} pages", asked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_service_and_type_filters_go_into_the_request_for_older_events() {
    let t = start(300).await;
    let org = t.sim.org();
    let e = &t.engine;
    // Inside the window: answered from the snapshot (one fetch of the window, then none).
    count(e, "select count(*) from jumpcloud.directory_events").await;
    t.sim.clear_requests();
    let week = count(
        e,
        "select count(*) from jumpcloud.directory_events where timestamp >= now() - interval '7 days' and service = 'sso'",
    )
    .await;
    assert_eq!(t.sim.request_count(), 0);
    let since = |days: i64| now_ms() - days * DAY_MS;
    let sso_since =
        |from: i64| org.audit.events.iter().filter(|ev| ev.at_ms >= from && ev.body["service"] == "sso").count() as i64;
    assert!((sso_since(since(7) + 5_000)..=sso_since(since(7) - 5_000)).contains(&week));
    // Older than the window: one request with the filters in its body.
    t.sim.clear_requests();
    let older = count(
        e,
        "select count(*) from jumpcloud.directory_events where timestamp >= now() - interval '50 days' \
         and timestamp < now() - interval '40 days' and service = 'sso' and event_type = 'sso_auth'",
    )
    .await;
    let asked = bodies(&t.sim, EVENTS);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["service"], serde_json::json!(["sso"]));
    assert_eq!(asked[0]["search_term"], serde_json::json!({"and": [{"event_type": "sso_auth"}]}));
    assert!(asked[0]["end_time"].is_string());
    let want = org
        .audit
        .events
        .iter()
        .filter(|ev| ev.at_ms >= since(50) && ev.at_ms < since(40) && ev.body["event_type"] == "sso_auth")
        .count() as i64;
    assert!((want - 1..=want + 1).contains(&older), "{older} vs {want}");
    assert!(older > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_directory_insights_leaves_the_other_tables_answering() {
    let t = start(60).await;
    t.sim.set_fault(EVENTS, Fault::Status(403));
    let e = &t.engine;
    let err = e.sql("select count(*) from jumpcloud.directory_events").await.expect_err("refused");
    assert_eq!(
        jcsql::error::user_message(&err),
        "JumpCloud refused POST /insights/directory/v1/events (403: Forbidden). The key's administrator needs API access and a role that can read it (Admin Portal → Administrators)"
    );
    assert_eq!(count(e, "select count(*) from jumpcloud.users").await, 60);
    let r =
        strings(e, "select status, error like '%403%' from jcsql.tables where table_name = 'directory_events'").await;
    assert_eq!(r, vec![vec!["error", "true"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_longer_than_retention_is_refused() {
    let sim = Simulator::start(SimulatorConfig::new(20, 7)).await.expect("sim");
    let home = tempfile::tempdir().expect("home");
    let env: Vec<(String, String)> = vec![
        ("JCSQL_HOME".into(), home.path().display().to_string()),
        ("JUMPCLOUD_API_URL".into(), sim.base_url()),
        ("JUMPCLOUD_API_KEY".into(), "jca_demo".into()),
        ("JCSQL_EVENTS_SINCE".into(), "120d".into()),
    ];
    let out =
        spawn_cli(owned(&["-c", "select count(*) from jumpcloud.directory_events"]), env, None).await.expect("join");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error: JCSQL_EVENTS_SINCE is 120d, but JumpCloud keeps events for 90 days; use 90d or less\n"
    );
    assert_eq!(sim.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_boards_answer_what_the_org_holds() {
    use jcsql::cli::{DEMO_SEED, DEMO_USERS, Demo, GlobalArgs};
    let demo =
        Demo::start(DEMO_USERS, DEMO_SEED, &GlobalArgs { quiet: true, ..Default::default() }).await.expect("demo");
    let org = demo.simulator.org();
    let a = &org.audit;
    let e = &demo.engine;
    let no_mfa: Vec<Vec<String>> = {
        let mut v: Vec<String> =
            a.admins.iter().filter(|x| !x.enable_multi_factor && !x.suspended).map(|x| x.email.clone()).collect();
        v.sort();
        v.into_iter().map(|x| vec![x]).collect()
    };
    assert!(!no_mfa.is_empty());
    assert_eq!(strings(e, "select email from boards.administrators_without_mfa").await, no_mfa);
    let empty: Vec<Vec<String>> = a
        .device_groups
        .iter()
        .zip(&a.device_group_members)
        .filter(|(_, m)| m.is_empty())
        .map(|(g, _)| vec![g.name.clone()])
        .collect();
    assert_eq!(strings(e, "select name from boards.empty_device_groups order by name").await, empty);
    let failed = a.policy_results.iter().flatten().filter(|r| r.state == "failed").count() as i64;
    assert_eq!(count(e, "select count(*) from boards.devices_with_failed_policy").await, failed);
    // Failed logins and admin changes: counted from the generated events of the last 7 days.
    let week = now_ms() - 7 * DAY_MS;
    let logins = ["user_login_attempt", "admin_login_attempt", "sso_auth", "radius_auth", "login_attempt"];
    let failures = a
        .events
        .iter()
        .filter(|ev| ev.at_ms >= week + 5_000 && ev.body["success"] == false)
        .filter(|ev| logins.iter().any(|l| ev.body["event_type"] == *l))
        .count() as i64;
    let got = count(e, "select sum(failures) from boards.failed_logins_last_7_days").await;
    assert!((failures..=failures + 1).contains(&got), "{got} vs {failures}");
    let changes = a
        .events
        .iter()
        .filter(|ev| {
            ev.at_ms >= week + 5_000 && ev.body["initiated_by"]["type"] == "admin" && ev.body.get("changes").is_some()
        })
        .count() as i64;
    let got = count(e, "select sum(changes) from boards.admin_changes_last_7_days").await;
    assert!((changes..=changes + 1).contains(&got), "{got} vs {changes}");
    assert!(changes > 0);
}

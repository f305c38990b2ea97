//! jcsql parses every real JumpCloud response recorded in `tests/data/jumpcloud/recordings`,
//! served over HTTP by a small replay server started in the test.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::common::*;

struct Recorded {
    status: u16,
    total: Option<String>,
    body: Value,
}

fn query_map(q: &str) -> HashMap<String, String> {
    q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Requests are matched on path, skip and targets (jcsql also sends `sort=_id`).
fn key(path: &str, query: &str) -> String {
    let q = query_map(query);
    format!(
        "{path}|{}|{}",
        q.get("skip").map(String::as_str).unwrap_or("0"),
        q.get("targets").map(String::as_str).unwrap_or("")
    )
}

fn load(dir: &Path, into: &mut HashMap<String, Recorded>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("readable").flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            load(&p, into);
        } else if p.extension().is_some_and(|e| e == "json") {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("recording parses");
            let url = v["url"].as_str().unwrap_or_default();
            let (path, query) = url.split_once('?').unwrap_or((url, ""));
            // The first recording of a request wins (fetchApplications, the newest, sorts first).
            into.entry(key(path, query)).or_insert(Recorded {
                status: v["status"].as_u64().unwrap_or(200) as u16,
                total: v["headers"]["x-total-count"].as_str().map(str::to_string),
                body: v["body"].clone(),
            });
        }
    }
}

async fn replay(State(recs): State<Arc<HashMap<String, Recorded>>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let k = key(&path, req.uri().query().unwrap_or_default());
    let (status, total, body) = match recs.get(&k) {
        Some(r) => (r.status, r.total.clone(), r.body.to_string()),
        // Lists nobody recorded are empty, as for an org without such objects or events.
        None if path.starts_with("/api/v2/") || path.starts_with("/insights/") => (200, Some("0".into()), "[]".into()),
        None if path.starts_with("/api/") => (200, None, r#"{"totalCount":0,"results":[]}"#.into()),
        None => (404, None, r#"{"message":"Not Found"}"#.into()),
    };
    let mut resp = (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body).into_response();
    resp.headers_mut().insert("content-type", HeaderValue::from_static("application/json; charset=utf-8"));
    if let Some(t) = total.and_then(|t| HeaderValue::from_str(&t).ok()) {
        resp.headers_mut().insert("x-total-count", t);
    }
    resp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_recorded_response_parses_into_the_tables() {
    let mut recs = HashMap::new();
    load(&data_dir().join("jumpcloud/recordings"), &mut recs);
    assert!(recs.len() >= 20, "recordings loaded: {}", recs.len());
    let app = Router::new().fallback(replay).with_state(Arc::new(recs));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine_for(fast_client(format!("http://{addr}"), "jca_replay"), dir.path().to_path_buf()).await;
    let e = &engine;
    // Every table of the registry answers from the recordings (a new table needs its count here).
    let expected: HashMap<&str, i64> = HashMap::from([
        ("users", 1),
        ("user_groups", 2),
        ("applications", 1),
        ("devices", 2),
        ("user_group_members", 1),
        ("application_user_groups", 1),
        ("application_users", 0),
        ("device_users", 0),
        // Nobody recorded these: served as empty lists.
        ("administrators", 0),
        ("device_groups", 0),
        ("device_group_members", 0),
        ("policies", 0),
        ("policy_statuses", 0),
        ("directory_events", 0),
    ]);
    // Nobody recorded System Insights rows either (only an error body, checked elsewhere).
    for def in jcsql::jumpcloud::tables::all_tables()
        .iter()
        .filter(|t| !t.name.starts_with("device_") || t.name == "device_users" || t.name.starts_with("device_group"))
    {
        let n = expected.get(def.name).unwrap_or_else(|| panic!("no recorded count for {}", def.name));
        assert_eq!(count(e, &format!("select count(*) from jumpcloud.{}", def.name)).await, *n, "{}", def.name);
    }

    // `_id` and `id` both present; `activated: false` with `state: ACTIVATED` kept as sent;
    // empty strings stay empty, nulls are NULL.
    let u = strings(
        e,
        "select id, email, state, activated, department, employee_identifier, account_locked_date, mfa_configured, \
         created, unix_uid from jumpcloud.users",
    )
    .await;
    assert_eq!(
        u[0],
        vec![
            "6026bec6b8207255280d5981",
            "austin.kelleher+testjc@jupiterone.com",
            "ACTIVATED",
            "false",
            "",
            "NULL",
            "NULL",
            "false",
            "2021-02-12T17:45:42.369Z",
            "5001"
        ]
    );
    let g = strings(e, "select name, email, description, attributes from jumpcloud.user_groups order by name").await;
    assert_eq!(g, vec![vec!["All Users", "", "", "NULL"], vec!["My Test Group", "", "Testing!", "NULL"]]);
    // `config` arrived as a string: kept as JSON text.
    let a = strings(
        e,
        "select display_label, config, color, sso_type, sso_idp_cert_expiration_at from jumpcloud.applications",
    )
    .await;
    assert_eq!(a[0], vec!["AWS SSO", "\"[REDACTED]\"", "NULL", "saml", "2026-10-29T17:58:59Z"]);
    let d = strings(e, "select display_name, os, version, arch, file_system, system_timezone, json_length(network_interfaces) from jumpcloud.devices order by display_name").await;
    assert_eq!(d[0], vec!["DESKTOP-245CO5K Deb Cockrum", "Windows", "10 Pro", "64-bit", "NULL", "-7", "7"]);
    assert_eq!(d[1][0], "LAPTOP-FF7SJ1K1");
    let m = strings(e, "select g.name, m.user_id from jumpcloud.user_group_members m join jumpcloud.user_groups g on g.id = m.group_id").await;
    assert_eq!(m, vec![vec!["My Test Group", "6026bec6b8207255280d5981"]]);
    let access =
        strings(e, "select user_id, application_id, via_group_id from jumpcloud.user_application_access").await;
    assert_eq!(access, vec![vec!["6026bec6b8207255280d5981", "617c3664e6f8ae27f7e1201e", "6026da081f24755306c2ee0d"]]);
}

#[test]
fn recorded_error_bodies_become_one_line_messages() {
    let path = data_dir().join("jumpcloud/recordings/karlrink-jumpcloud/GET-api-v2-systeminsights-5df3efcdf2d66c6f6a287-apps--limit-100-skip-0.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("parse");
    let body = v["body"].to_string();
    let msg = jcsql::jumpcloud::client::error_message(reqwest::StatusCode::BAD_REQUEST, body.as_bytes());
    assert_eq!(msg, "Bad Request: invalid object id \"5df3efcdf2d66c6f6a287\"");
    // Bodies with only `error`, or none at all, still give a message.
    assert_eq!(
        jcsql::jumpcloud::client::error_message(reqwest::StatusCode::FORBIDDEN, br#"{"error":"forbidden"}"#),
        "forbidden"
    );
    assert_eq!(jcsql::jumpcloud::client::error_message(reqwest::StatusCode::BAD_GATEWAY, b"<html>"), "Bad Gateway");
}

//! The simulator speaks the official spec: every field it emits exists in the spec's definition
//! with the same JSON type. The spec's fields are kept as a derived list
//! (`tests/data/spec_fields.tsv`), checked against the spec's definitions
//! (`tests/data/jumpcloud/spec/*.definitions.json`, copied by `tests/data/copy_from_shared.py`).
//! Regenerate it with `JCSQL_UPDATE_SPEC_FIELDS=1 cargo test spec`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;

use crate::common::*;
use jcsql::jumpcloud::simulator::{Simulator, SimulatorConfig};
use jcsql::jumpcloud::tables::all_tables;
use jcsql::table::Source;

const SPEC_FILES: &[&str] = &["JumpCloud.SDK.V1.definitions.json", "JumpCloud.SDK.V2.definitions.json"];

/// The spec definitions of every table in the registry, sorted. Event logs are
/// `additionalProperties: true` objects in their spec: nothing to check field by field.
fn definitions() -> BTreeSet<&'static str> {
    all_tables()
        .iter()
        .filter(|t| !matches!(t.source, Source::Log { .. }))
        .map(|t| t.spec.unwrap_or_else(|| panic!("{} names no spec definition", t.name)))
        .collect()
}

/// Fields live JumpCloud sends that the spec does not list (see the recordings' SOURCES.md).
const LIVE_ONLY: &[(&str, &str)] = &[
    ("systemuserreturn", "id"),
    ("systemuserreturn", "systemUsername"),
    ("JcSystem", "id"),
    ("JcSystem", "systemToken"),
    ("application", "id"),
];

fn derived_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/spec_fields.tsv")
}

type FieldList = BTreeMap<String, BTreeMap<String, String>>;

fn walk(
    defs: &Value,
    schema: &Value,
    prefix: &str,
    depth: usize,
    stack: &mut Vec<String>,
    out: &mut BTreeMap<String, String>,
) {
    let mut schema = schema.clone();
    let mut pushed = 0;
    while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or_default().to_string();
        if stack.contains(&name) {
            out.insert(prefix.to_string(), "object".into());
            stack.truncate(stack.len() - pushed);
            return;
        }
        stack.push(name.clone());
        pushed += 1;
        schema = defs[&name].clone();
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        let mut props = serde_json::Map::new();
        for p in parts {
            let mut p = p.clone();
            while let Some(r) = p.get("$ref").and_then(Value::as_str) {
                p = defs[r.rsplit('/').next().unwrap_or_default()].clone();
            }
            if let Some(ps) = p.get("properties").and_then(Value::as_object) {
                props.extend(ps.clone());
            }
        }
        schema = serde_json::json!({"type": "object", "properties": props});
    }
    let kind = schema
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| if schema.get("properties").is_some() { "object".into() } else { "any".into() });
    if !prefix.is_empty() {
        out.insert(prefix.to_string(), kind.clone());
    }
    if depth < 6 {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                walk(defs, v, &p, depth + 1, stack, out);
            }
        }
        if kind == "array"
            && let Some(items) = schema.get("items")
        {
            walk(defs, items, &format!("{prefix}[]"), depth + 1, stack, out);
        }
    }
    stack.truncate(stack.len() - pushed);
}

fn derive_from_spec(spec_dir: &std::path::Path) -> String {
    let mut text = String::from(
        "# Fields of the JumpCloud objects jcsql reads, derived from the official spec (JumpCloud.SDK.V1/V2.json)\n\
         # by tests/integration/spec.rs. Regenerate: JCSQL_UPDATE_SPEC_FIELDS=1 cargo test spec\n\
         # definition\tpath\tjson type\n",
    );
    let specs: Vec<Value> = SPEC_FILES
        .iter()
        .map(|file| {
            let raw = std::fs::read_to_string(spec_dir.join(file)).expect("spec readable");
            serde_json::from_str(&raw).expect("spec parses")
        })
        .collect();
    for def in definitions() {
        let spec = specs
            .iter()
            .find(|s| s["definitions"].get(def).is_some())
            .unwrap_or_else(|| panic!("no spec defines {def}"));
        let defs = &spec["definitions"];
        let mut out = BTreeMap::new();
        walk(defs, &defs[def], "", 0, &mut vec![def.to_string()], &mut out);
        for (path, kind) in out {
            text.push_str(&format!("{def}\t{path}\t{kind}\n"));
        }
    }
    text
}

fn load_derived() -> FieldList {
    let text = std::fs::read_to_string(derived_path()).expect("tests/data/spec_fields.tsv exists");
    let mut out: FieldList = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let mut parts = line.split('\t');
        let (Some(d), Some(p), Some(t)) = (parts.next(), parts.next(), parts.next()) else { panic!("bad line {line}") };
        out.entry(d.to_string()).or_default().insert(p.to_string(), t.to_string());
    }
    out
}

#[test]
fn derived_field_list_matches_the_official_spec() {
    let derived = derive_from_spec(&data_dir().join("jumpcloud/spec"));
    if std::env::var_os("JCSQL_UPDATE_SPEC_FIELDS").is_some() {
        std::fs::write(derived_path(), &derived).expect("write derived list");
    }
    let committed = std::fs::read_to_string(derived_path()).unwrap_or_default();
    assert!(
        committed == derived,
        "tests/data/spec_fields.tsv is out of date; run JCSQL_UPDATE_SPEC_FIELDS=1 cargo test spec"
    );
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Problems with one emitted record against its definition's fields.
fn check(def: &str, fields: &BTreeMap<String, String>, prefix: &str, v: &Value, problems: &mut BTreeSet<String>) {
    let entries: Vec<(String, &Value)> = match v {
        Value::Object(o) => {
            o.iter().map(|(k, v)| (if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v)).collect()
        }
        Value::Array(a) => a.iter().map(|v| (format!("{prefix}[]"), v)).collect(),
        _ => return,
    };
    for (path, value) in entries {
        if prefix.is_empty() && LIVE_ONLY.contains(&(def, path.as_str())) {
            continue;
        }
        let Some(spec_type) = fields.get(&path) else {
            problems.insert(format!("{def}: {path} is not in the spec"));
            continue;
        };
        let got = json_type(value);
        let ok = got == "null" || spec_type == "any" || got == spec_type || (spec_type == "number" && got == "integer");
        if !ok {
            problems.insert(format!("{def}: {path} is {got}, the spec says {spec_type}"));
            continue;
        }
        // An object the spec leaves open (no listed properties) may hold anything.
        let open = fields.keys().all(|k| !k.starts_with(&format!("{path}.")) && !k.starts_with(&format!("{path}[]")));
        if !open {
            check(def, fields, &path, value, problems);
        }
    }
}

async fn get_all(client: &reqwest::Client, base: &str, key: &str, path: &str, extra: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut skip = 0;
    loop {
        let url = format!("{base}{path}?limit=100&skip={skip}{extra}");
        let body: Value = client.get(&url).header("x-api-key", key).send().await.expect("get").json_value().await;
        let page: Vec<Value> = match body {
            Value::Array(a) => a,
            Value::Object(mut o) => match o.remove("results") {
                Some(Value::Array(a)) => a,
                _ => panic!("no results in {url}"),
            },
            _ => panic!("unexpected body from {url}"),
        };
        let n = page.len();
        out.extend(page);
        if n < 100 {
            return out;
        }
        skip += 100;
    }
}

trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        serde_json::from_slice(&self.bytes().await.expect("body")).expect("json")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_the_simulator_emits_is_in_the_spec_with_its_type() {
    let fields = load_derived();
    let sim = Simulator::start(SimulatorConfig::new(300, 11)).await.expect("sim");
    let (base, key) = (sim.base_url(), sim.api_key().to_string());
    jcsql::jumpcloud::client::install_crypto_provider();
    let http = reqwest::Client::new();
    let mut problems = BTreeSet::new();
    let mut seen = 0;
    // Every table of the registry, through its own route: lists whole, relations for up to 40
    // parents each (parents come first in the registry, so their ids are known).
    let mut ids: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for table in all_tables() {
        let Some(def) = table.spec else { continue };
        let records = match &table.source {
            Source::Log { .. } => continue,
            Source::List { path } | Source::Insights { path } => {
                get_all(&http, &base, &key, &format!("/api{path}"), "").await
            }
            Source::PerParent { parent, path, query } => {
                let extra: String = query.iter().map(|(k, v)| format!("&{k}={v}")).collect();
                let mut all = Vec::new();
                for id in ids.get(parent).map(Vec::as_slice).unwrap_or_default().iter().take(40) {
                    all.extend(get_all(&http, &base, &key, &format!("/api{}", path.replace("{id}", id)), &extra).await);
                }
                all
            }
        };
        assert!(!records.is_empty(), "the simulator serves {}", table.name);
        for record in &records {
            check(def, &fields[def], "", record, &mut problems);
            if let Some(id) = record.get("_id").or_else(|| record.get("id")).and_then(Value::as_str) {
                ids.entry(table.name).or_default().push(id.to_string());
            }
            seen += 1;
        }
    }
    assert!(seen > 1000, "checked {seen} records");
    assert!(problems.is_empty(), "{problems:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_answers_like_jumpcloud_at_the_edges() {
    let sim = Simulator::start(SimulatorConfig::new(30, 2)).await.expect("sim");
    jcsql::jumpcloud::client::install_crypto_provider();
    let http = reqwest::Client::new();
    let base = sim.base_url();
    let get = |path: &str, key: &str| http.get(format!("{base}{path}")).header("x-api-key", key.to_string()).send();
    let r = get("/api/systemusers?limit=101", "jca_demo").await.expect("get");
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json_value().await,
        serde_json::json!({"message": "Bad Request: request parameter \"limit\" exceeds maximum value of 100"})
    );
    let r = get("/api/systemusers", "nope").await.expect("get");
    assert_eq!(r.status(), 401);
    assert_eq!(r.json_value().await["message"], "Unauthorized");
    let r = get("/api/v2/usergroups?limit=5", "jca_demo").await.expect("get");
    assert_eq!(r.headers()["x-total-count"], sim.org().groups.len().to_string().as_str());
    assert_eq!(r.json_value().await.as_array().map(Vec::len), Some(5));
    // Default page size is 10, as JumpCloud's.
    let r = get("/api/systemusers", "jca_demo").await.expect("get");
    let v = r.json_value().await;
    assert_eq!(v["results"].as_array().map(Vec::len), Some(10));
    assert_eq!(v["totalCount"], 30);
    let d = &sim.org().devices[0].id;
    let r = get(&format!("/api/v2/systems/{d}/associations"), "jca_demo").await.expect("get");
    assert_eq!(r.status(), 400, "targets is required");
    // Writes: 201 on create, 409 on a duplicate name, 204 on add, 409 on a second add, 404 on removing a non-member.
    let post = |path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .header("x-api-key", "jca_demo")
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    let r = post("/api/v2/usergroups", serde_json::json!({"name": "Auditors"})).await.expect("post");
    assert_eq!(r.status(), 201);
    let gid = r.json_value().await["id"].as_str().expect("id").to_string();
    assert_eq!(post("/api/v2/usergroups", serde_json::json!({"name": "Auditors"})).await.expect("post").status(), 409);
    let uid = sim.org().users[0].id.clone();
    let member = |op: &str| serde_json::json!({"op": op, "type": "user", "id": uid});
    assert_eq!(post(&format!("/api/v2/usergroups/{gid}/members"), member("add")).await.expect("post").status(), 204);
    assert_eq!(post(&format!("/api/v2/usergroups/{gid}/members"), member("add")).await.expect("post").status(), 409);
    assert_eq!(post(&format!("/api/v2/usergroups/{gid}/members"), member("remove")).await.expect("post").status(), 204);
    assert_eq!(post(&format!("/api/v2/usergroups/{gid}/members"), member("remove")).await.expect("post").status(), 404);
}

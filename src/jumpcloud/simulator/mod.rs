//! A faithful fake JumpCloud API (axum on 127.0.0.1) over a generated [`Org`]. It speaks the
//! official spec's envelopes and statuses, checks `x-api-key` and `x-org-id`, applies writes to
//! its state, and has knobs for latency, 5xx failures, rate limiting and targeted faults.
//! `jcsql demo`, `jcsql simulate`, the tests and the benchmark all run it.

pub mod audit;
pub mod demo_data;
pub mod insights;
pub mod org;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

pub use org::{Org, OrgSpec};

pub const DEMO_API_KEY: &str = "jca_demo";

#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    pub org: OrgSpec,
    pub api_key: String,
    pub port: u16,
    pub latency: Duration,
    /// Share of requests answered 503 (0.0–1.0).
    pub fail_rate: f64,
    /// Requests per second before answering 429 with `Retry-After`.
    pub rate_limit: Option<f64>,
    /// The most events a Directory Insights page holds (`X-Limit`); JumpCloud's is 10,000.
    pub events_page_limit: usize,
    /// Orgs the key reaches. With more than one, the simulator is multi-tenant: every request
    /// but `/api/organizations` and `/api/users` must name its org in `x-org-id`.
    pub orgs: usize,
}

impl SimulatorConfig {
    pub fn new(users: usize, seed: u64) -> Self {
        SimulatorConfig {
            org: OrgSpec::new(users, seed),
            api_key: DEMO_API_KEY.to_string(),
            port: 0,
            latency: Duration::ZERO,
            fail_rate: 0.0,
            rate_limit: None,
            events_page_limit: 10_000,
            orgs: 1,
        }
    }
}

/// A fault aimed at requests whose path starts with `path_prefix` (e.g. `/api/systems`).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and a JumpCloud-style error body.
    Status(u16),
    /// Answer 200 with the body cut in half, as a dropped connection leaves it.
    MalformedJson,
    /// Answer 200 but drop the last record of each page (an incomplete listing).
    DropRecords,
    /// Let this many matching requests through, then answer every later one with the status.
    StatusAfter(u64, u16),
}

#[derive(Debug, Clone, Serialize)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    pub status: u16,
    /// The JSON body of a POST or PUT.
    pub body: Option<String>,
    /// The `x-org-id` header, when sent.
    pub org_id: Option<String>,
}

struct Shared {
    /// One directory per org; the first is the default.
    orgs: Vec<RwLock<Org>>,
    config: SimulatorConfig,
    faults: RwLock<Vec<(String, Fault)>>,
    /// Requests each `StatusAfter` fault has let through.
    fault_hits: AtomicU64,
    log: Mutex<Vec<RequestRecord>>,
    requests: AtomicU64,
    fail_counter: AtomicU64,
    bucket: Mutex<(f64, Instant)>,
    in_flight: AtomicU64,
    peak_in_flight: AtomicU64,
    /// Sum of the time each request spent in the server, latency included.
    busy_us: AtomicU64,
    /// System Insights paging indexes by (org, route).
    insights: Mutex<HashMap<(usize, String), Arc<insights::Index>>>,
}

/// How busy the server was since the last [`Simulator::clear_requests`]: `busy` ÷ wall time is
/// the average number of requests in flight.
#[derive(Debug, Clone, Copy)]
pub struct RequestLoad {
    pub busy: Duration,
    pub peak_in_flight: u64,
}

/// A running simulator; it stops when dropped.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Simulator {
    /// Generates the org and serves it on 127.0.0.1 (`config.port`, 0 = any free port).
    pub async fn start(config: SimulatorConfig) -> std::io::Result<Simulator> {
        let org = Org::generate(&config.org);
        Self::start_with_org(config, org).await
    }

    /// Serves `org` first, then the other orgs `config.orgs` asks for (each generated from its
    /// own seed).
    pub async fn start_with_org(config: SimulatorConfig, org: Org) -> std::io::Result<Simulator> {
        let name = |i: usize| {
            let round = i / ORG_NAMES.len();
            let base = ORG_NAMES[i % ORG_NAMES.len()];
            Some(if round == 0 { base.to_string() } else { format!("{base} {}", round + 1) })
        };
        let mut first = org;
        if config.orgs > 1 {
            first.display_name = name(0);
        }
        let mut orgs = vec![RwLock::new(first)];
        for i in 1..config.orgs.max(1) {
            let mut spec = config.org.clone();
            spec.seed = spec.seed.wrapping_add(i as u64 * 7919);
            let mut extra = Org::generate(&spec);
            extra.display_name = name(i);
            orgs.push(RwLock::new(extra));
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let capacity = config.rate_limit.unwrap_or(0.0);
        let shared = Arc::new(Shared {
            orgs,
            config,
            faults: RwLock::new(Vec::new()),
            fault_hits: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
            fail_counter: AtomicU64::new(0),
            bucket: Mutex::new((capacity, Instant::now())),
            in_flight: AtomicU64::new(0),
            peak_in_flight: AtomicU64::new(0),
            busy_us: AtomicU64::new(0),
            insights: Mutex::new(HashMap::new()),
        });
        let app = router(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Simulator { addr, shared, shutdown: Some(tx) })
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn api_key(&self) -> &str {
        &self.shared.config.api_key
    }

    /// A copy of the (first) org as it is now (writes included).
    pub fn org(&self) -> Org {
        self.org_at(0)
    }

    /// A copy of org `i` (in `/api/organizations` order).
    pub fn org_at(&self, i: usize) -> Org {
        let o = &self.shared.orgs[i.min(self.shared.orgs.len() - 1)];
        o.read().map(|o| o.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }

    pub fn org_count(&self) -> usize {
        self.shared.orgs.len()
    }

    /// Runs `f` on the org without copying it.
    pub fn with_org<T>(&self, f: impl FnOnce(&Org) -> T) -> T {
        match self.shared.orgs[0].read() {
            Ok(o) => f(&o),
            Err(e) => f(&e.into_inner()),
        }
    }

    /// Changes the org in place, as if someone changed it in the Admin Portal.
    pub fn with_org_mut<T>(&self, f: impl FnOnce(&mut Org) -> T) -> T {
        match self.shared.orgs[0].write() {
            Ok(mut o) => f(&mut o),
            Err(e) => f(&mut e.into_inner()),
        }
    }

    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn clear_requests(&self) {
        if let Ok(mut l) = self.shared.log.lock() {
            l.clear();
        }
        self.shared.requests.store(0, Ordering::Relaxed);
        self.shared.peak_in_flight.store(0, Ordering::Relaxed);
        self.shared.busy_us.store(0, Ordering::Relaxed);
    }

    pub fn request_load(&self) -> RequestLoad {
        RequestLoad {
            busy: Duration::from_micros(self.shared.busy_us.load(Ordering::Relaxed)),
            peak_in_flight: self.shared.peak_in_flight.load(Ordering::Relaxed),
        }
    }

    pub fn set_fault(&self, path_prefix: &str, fault: Fault) {
        if let Ok(mut f) = self.shared.faults.write() {
            f.push((path_prefix.to_string(), fault));
        }
    }

    pub fn clear_faults(&self) {
        if let Ok(mut f) = self.shared.faults.write() {
            f.clear();
        }
        self.shared.fault_hits.store(0, Ordering::Relaxed);
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/api/systemusers", get(list_users))
        .route("/api/systemusers/{id}", get(get_user).put(update_user))
        .route("/api/users", get(list_admins))
        .route("/api/organizations", get(list_organizations))
        .route("/api/v2/systemgroups", get(list_device_groups))
        .route("/api/v2/systemgroups/{id}/members", get(device_group_members))
        .route("/api/v2/policies", get(list_policies))
        .route("/api/v2/systeminsights/{route}", get(system_insights))
        .route("/api/v2/policies/{id}/policystatuses", get(policy_statuses))
        .route("/insights/directory/v1/events", axum::routing::post(query_events))
        .route("/insights/directory/v1/events/interval", axum::routing::post(event_intervals))
        .route("/api/systems", get(list_devices))
        .route("/api/applications", get(list_applications))
        .route("/api/v2/usergroups", get(list_groups).post(create_group))
        .route("/api/v2/usergroups/{id}/members", get(group_members).post(change_member))
        .route("/api/v2/systems/{id}/associations", get(device_associations))
        .route("/api/v2/applications/{id}/associations", get(application_associations))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Not Found") })
        .layer(middleware::from_fn_with_state(shared.clone(), gatekeeper))
        .with_state(shared)
}

/// JumpCloud's error body: `{"message": …}`, with `error` on auth failures as live JumpCloud sends.
fn error(status: StatusCode, message: &str) -> Response {
    let body = if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        json!({"message": message, "error": message})
    } else {
        json!({"message": message})
    };
    json_response(status, body.to_string(), None)
}

fn json_response(status: StatusCode, body: String, total: Option<usize>) -> Response {
    let mut resp = (status, body).into_response();
    let headers = resp.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json; charset=utf-8"));
    if let Some(t) = total
        && let Ok(v) = HeaderValue::from_str(&t.to_string())
    {
        headers.insert("x-total-count", v);
    }
    resp
}

fn is_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Counts a request as in flight until it is answered or its client goes away.
struct InFlight<'a> {
    shared: &'a Shared,
    started: Instant,
}

impl<'a> InFlight<'a> {
    fn enter(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        shared.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight { shared, started: Instant::now() }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.shared.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.shared.busy_us.fetch_add(self.started.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
}

/// Latency, auth, org selection, rate limit, random failures, targeted faults and the log,
/// in the order a real edge would apply them.
async fn gatekeeper(State(shared): State<Arc<Shared>>, headers: HeaderMap, req: Request, next: Next) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let in_flight = InFlight::enter(&shared);
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let org_id = headers.get("x-org-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    // Writes and Directory Insights queries carry their meaning in the body: keep it for the log.
    let (req, body) = if method == "POST" || method == "PUT" {
        let (parts, body) = req.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        (Request::from_parts(parts, Body::from(bytes)), Some(text))
    } else {
        (req, None)
    };
    // The latency is the request's whole time in the server: reading, answering and waiting.
    let answered_at = in_flight.started + shared.config.latency;
    let resp = gate(&shared, &headers, &path, req, next).await;
    sleep_precisely(answered_at.saturating_duration_since(Instant::now())).await;
    if let Ok(mut log) = shared.log.lock() {
        log.push(RequestRecord { method, path, query, status: resp.status().as_u16(), body, org_id });
    }
    resp
}

/// Waits `d` to within a fraction of a millisecond. tokio's timer rounds every sleep up to its
/// next 1 ms tick, which made a 20 ms latency about 21 ms and charged that to the client under
/// test; a blocking thread's sleep is exact to ~0.1 ms.
async fn sleep_precisely(d: Duration) {
    if d.is_zero() {
        return;
    }
    if tokio::task::spawn_blocking(move || std::thread::sleep(d)).await.is_err() {
        tokio::time::sleep(d).await;
    }
}

async fn gate(shared: &Shared, headers: &HeaderMap, path: &str, mut req: Request, next: Next) -> Response {
    let cfg = &shared.config;
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if key != Some(cfg.api_key.as_str()) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    // The organizations and administrators lists belong to the key, not to an org.
    let key_level = path == "/api/users" || path == "/api/organizations";
    let multi_tenant = shared.orgs.len() > 1;
    let index = match headers.get("x-org-id").and_then(|v| v.to_str().ok()) {
        Some(_) if key_level => {
            return error(StatusCode::FORBIDDEN, "Forbidden: organization selection not allowed via header");
        }
        Some(org) if !is_object_id(org) => {
            return error(StatusCode::BAD_REQUEST, "Bad Request: invalid x-org-id header");
        }
        Some(org) => {
            let found = shared.orgs.iter().position(|o| o.read().map(|o| o.org_id == org).unwrap_or(false));
            match found {
                Some(i) => i,
                None if multi_tenant => {
                    return error(StatusCode::FORBIDDEN, "Forbidden: this key cannot reach that organization");
                }
                None => return error(StatusCode::NOT_FOUND, "Not Found: organization not found"),
            }
        }
        None if multi_tenant && !key_level => {
            return error(
                StatusCode::UNAUTHORIZED,
                "Unauthorized: a multi-tenant key must name its organization in x-org-id",
            );
        }
        None => 0,
    };
    req.extensions_mut().insert(OrgIndex(index));
    if let Some(rps) = cfg.rate_limit.filter(|r| *r > 0.0)
        && let Some(wait) = take_token(shared, rps)
    {
        let mut resp = error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert("retry-after", v);
        }
        return resp;
    }
    if cfg.fail_rate > 0.0 {
        let n = shared.fail_counter.fetch_add(1, Ordering::Relaxed);
        let mut rng = org::Rng::new(n.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ cfg.org.seed);
        if rng.chance(cfg.fail_rate) {
            return error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
        }
    }
    let fault = shared
        .faults
        .read()
        .ok()
        .and_then(|f| f.iter().find(|(p, _)| path.starts_with(p.as_str())).map(|(_, f)| f.clone()));
    match fault {
        Some(Fault::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            error(status, status.canonical_reason().unwrap_or("Error"))
        }
        Some(Fault::MalformedJson) => {
            let resp = next.run(req).await;
            rewrite_body(resp, |b| b[..b.len() / 2].to_vec()).await
        }
        Some(Fault::DropRecords) => {
            let resp = next.run(req).await;
            rewrite_body(resp, drop_last_record).await
        }
        Some(Fault::StatusAfter(allowed, code)) => {
            if shared.fault_hits.fetch_add(1, Ordering::Relaxed) < allowed {
                next.run(req).await
            } else {
                let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                error(status, status.canonical_reason().unwrap_or("Error"))
            }
        }
        None => next.run(req).await,
    }
}

async fn rewrite_body(resp: Response, f: impl FnOnce(&[u8]) -> Vec<u8>) -> Response {
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
    };
    let mut parts = parts;
    parts.headers.remove("content-length");
    Response::from_parts(parts, Body::from(f(&bytes)))
}

fn drop_last_record(bytes: &[u8]) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    match &mut v {
        Value::Array(a) => {
            a.pop();
        }
        Value::Object(o) => {
            if let Some(Value::Array(a)) = o.get_mut("results") {
                a.pop();
            }
        }
        _ => {}
    }
    v.to_string().into_bytes()
}

/// A token bucket holding one second of requests; `Some(wait)` when it is empty.
fn take_token(shared: &Shared, rps: f64) -> Option<Duration> {
    let mut b = shared.bucket.lock().ok()?;
    let now = Instant::now();
    let (tokens, last) = *b;
    let tokens = (tokens + now.duration_since(last).as_secs_f64() * rps).min(rps.max(1.0));
    if tokens >= 1.0 {
        *b = (tokens - 1.0, now);
        None
    } else {
        *b = (tokens, now);
        Some(Duration::from_secs_f64((1.0 - tokens) / rps))
    }
}

#[derive(Debug, serde::Deserialize)]
struct Paging {
    limit: Option<String>,
    skip: Option<String>,
    targets: Option<String>,
}

/// `limit` (default 10, at most 100) and `skip`, validated as JumpCloud does.
// Handlers return axum responses by value; boxing the error response would buy nothing.
#[allow(clippy::result_large_err)]
fn paging(p: &Paging) -> Result<(usize, usize), Response> {
    let limit = match &p.limit {
        None => 10,
        Some(s) => s.parse::<usize>().map_err(|_| {
            error(StatusCode::BAD_REQUEST, &format!("Bad Request: invalid request parameter \"limit\": {s:?}"))
        })?,
    };
    if limit > 100 {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "Bad Request: request parameter \"limit\" exceeds maximum value of 100",
        ));
    }
    let skip = match &p.skip {
        None => 0,
        Some(s) => s.parse::<usize>().map_err(|_| {
            error(StatusCode::BAD_REQUEST, &format!("Bad Request: invalid request parameter \"skip\": {s:?}"))
        })?,
    };
    Ok((if limit == 0 { 10 } else { limit }, skip))
}

fn v1_page<T: Serialize>(items: &[T], p: &Paging) -> Response {
    match paging(p) {
        Err(r) => r,
        Ok((limit, skip)) => {
            let page: Vec<&T> = items.iter().skip(skip).take(limit).collect();
            let body = json!({"totalCount": items.len(), "results": page});
            json_response(StatusCode::OK, body.to_string(), None)
        }
    }
}

/// A v2 page: only the requested slice is converted and serialized (skipping comes first, so a
/// late page of a large group costs no more than the first), with the total in `x-total-count`.
fn v2_page<I, T: Serialize>(
    total: usize,
    items: impl Iterator<Item = I>,
    to_json: impl Fn(I) -> T,
    p: &Paging,
) -> Response {
    match paging(p) {
        Err(r) => r,
        Ok((limit, skip)) => {
            let page: Vec<T> = items.skip(skip).take(limit).map(to_json).collect();
            json_response(StatusCode::OK, serde_json::to_string(&page).unwrap_or_else(|_| "[]".into()), Some(total))
        }
    }
}

/// The org a request is for (chosen from `x-org-id` by the gate).
#[derive(Debug, Clone, Copy)]
struct OrgIndex(usize);

/// A handler's view of the simulator: the shared state and the request's org.
struct Tenant {
    shared: Arc<Shared>,
    index: usize,
}

impl axum::extract::FromRequestParts<Arc<Shared>> for Tenant {
    type Rejection = Response;
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        let index = parts.extensions.get::<OrgIndex>().map_or(0, |o| o.0);
        Ok(Tenant { shared: state.clone(), index })
    }
}

impl Tenant {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Org> {
        self.shared.orgs[self.index].read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Org> {
        self.shared.orgs[self.index].write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Display names of the generated orgs after the first.
const ORG_NAMES: &[&str] = &[
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Logistics",
    "Wayne Foods",
    "Hooli",
    "Vandelay Imports",
    "Soylent Labs",
    "Cyberdyne",
    "Tyrell Retail",
    "Wonka Sweets",
];

/// `GET /api/v2/systeminsights/ROUTE`: the fleet's osquery rows ([`insights`]).
async fn system_insights(t: Tenant, Path(route): Path<String>, Query(query): Query<Vec<(String, String)>>) -> Response {
    let org = t.read();
    let key = (t.index, route.clone());
    let cached = t.shared.insights.lock().ok().and_then(|c| c.get(&key).cloned()).filter(|i| i.is_for(&org));
    let index = match cached {
        Some(i) => i,
        None => {
            let built = Arc::new(insights::Index::build(&org, &route));
            if let Ok(mut c) = t.shared.insights.lock() {
                c.insert(key, built.clone());
            }
            built
        }
    };
    // Rows are collected "today", so every page of one sync agrees.
    let today_ms = chrono::Utc::now().timestamp_millis() / 86_400_000 * 86_400_000;
    match insights::answer(&org, &route, &query, &index, today_ms) {
        Ok(body) => json_response(StatusCode::OK, body, None),
        Err((status, message)) => error(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), &message),
    }
}

/// `GET /api/organizations`: the orgs the key reaches (v1 envelope).
async fn list_organizations(State(s): State<Arc<Shared>>, Query(p): Query<Paging>) -> Response {
    let orgs: Vec<Value> = s
        .orgs
        .iter()
        .map(|o| {
            let o = o.read().unwrap_or_else(|e| e.into_inner());
            json!({"_id": o.org_id, "id": o.org_id, "displayName": o.display_name, "logoUrl": null, "created": o.created})
        })
        .collect();
    v1_page(&orgs, &p)
}

async fn list_users(t: Tenant, Query(p): Query<Paging>) -> Response {
    v1_page(&t.read().users, &p)
}

async fn get_user(t: Tenant, Path(id): Path<String>) -> Response {
    let org = t.read();
    match find(&org.user_index, &id) {
        Ok(u) => json_response(StatusCode::OK, serde_json::to_string(&org.users[u]).unwrap_or_default(), None),
        Err(r) => r,
    }
}

/// `PUT /systemusers/{id}`: jcsql's actions send `{"suspended": true|false}`; the answer is the
/// user as it now is (`systemuserreturn`).
async fn update_user(t: Tenant, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    if let Some(r) = invalid_id(&id) {
        return r;
    }
    let v = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let mut org = t.write();
    let Some(&u) = org.user_index.get(&id) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let was = org.users[u].suspended;
    match v.get("suspended") {
        Some(Value::Bool(suspended)) => {
            org.set_suspended(&id, *suspended);
            if was != *suspended {
                let (org_id, user) = (org.org_id.clone(), &org.users[u]);
                let resource = json!({"id": user.id, "type": "user", "username": user.username, "email": user.email});
                let changes = json!([{"field": "suspended", "from": was, "to": suspended}]);
                org.audit.record_change(&org_id, "user_update", resource, changes);
            }
        }
        Some(_) => return error(StatusCode::BAD_REQUEST, "Bad Request: suspended must be a boolean"),
        None => {}
    }
    json_response(StatusCode::OK, serde_json::to_string(&org.users[u]).unwrap_or_default(), None)
}

async fn list_devices(t: Tenant, Query(p): Query<Paging>) -> Response {
    v1_page(&t.read().devices, &p)
}

async fn list_applications(t: Tenant, Query(p): Query<Paging>) -> Response {
    v1_page(&t.read().applications, &p)
}

async fn list_groups(t: Tenant, Query(p): Query<Paging>) -> Response {
    let org = t.read();
    v2_page(org.groups.len(), org.groups.iter(), |g| g, &p)
}

/// A `GraphConnection` edge as `/members` and `/associations` return it.
fn edge(id: &str, kind: &str, attributes: Value) -> Value {
    json!({"attributes": attributes, "to": {"attributes": null, "id": id, "type": kind}})
}

/// JumpCloud's 400 for an id that is not an ObjectId.
fn invalid_id(id: &str) -> Option<Response> {
    (!is_object_id(id)).then(|| error(StatusCode::BAD_REQUEST, &format!("Bad Request: invalid object id \"{id}\"")))
}

/// The index of the object `id` names: 400 for a malformed id, 404 for an unknown one.
#[allow(clippy::result_large_err)]
fn find(index: &HashMap<String, usize>, id: &str) -> Result<usize, Response> {
    if let Some(r) = invalid_id(id) {
        return Err(r);
    }
    index.get(id).copied().ok_or_else(|| error(StatusCode::NOT_FOUND, "Not Found"))
}

/// The position of the object `id` names among `ids`: 400 for a malformed id, 404 for an unknown one.
#[allow(clippy::result_large_err)]
fn position_of<'a>(id: &str, mut ids: impl Iterator<Item = &'a String>) -> Result<usize, Response> {
    if let Some(r) = invalid_id(id) {
        return Err(r);
    }
    ids.position(|x| x == id).ok_or_else(|| error(StatusCode::NOT_FOUND, "Not Found"))
}

async fn group_members(t: Tenant, Path(id): Path<String>, Query(p): Query<Paging>) -> Response {
    let org = t.read();
    let g = match find(&org.group_index, &id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let members = &org.group_members[g];
    v2_page(members.len(), members.iter(), |&u| edge(&org.users[u].id, "user", Value::Null), &p)
}

fn targets_error(allowed: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        &format!("Bad Request: request parameter \"targets\" is required and must be one of: {allowed}"),
    )
}

async fn device_associations(t: Tenant, Path(id): Path<String>, Query(p): Query<Paging>) -> Response {
    let org = t.read();
    let d = match find(&org.device_index, &id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match p.targets.as_deref() {
        Some("user") => {
            let bound = &org.device_users[d];
            let to_edge = |(u, sudo): &(usize, org::Sudo)| {
                let attrs = match sudo {
                    Some((enabled, without)) => json!({"sudo": {"enabled": enabled, "withoutPassword": without}}),
                    None => Value::Null,
                };
                edge(&org.users[*u].id, "user", attrs)
            };
            v2_page(bound.len(), bound.iter(), to_edge, &p)
        }
        Some("command" | "policy" | "policy_group" | "user_group") => {
            v2_page(0, std::iter::empty::<Value>(), |v| v, &p)
        }
        _ => targets_error("command, policy, policy_group, user, user_group"),
    }
}

async fn application_associations(t: Tenant, Path(id): Path<String>, Query(p): Query<Paging>) -> Response {
    let org = t.read();
    let a = match find(&org.app_index, &id) {
        Ok(i) => i,
        Err(r) => return r,
    };
    match p.targets.as_deref() {
        Some("user") => {
            let users = &org.app_users[a];
            v2_page(users.len(), users.iter(), |&u| edge(&org.users[u].id, "user", Value::Null), &p)
        }
        Some("user_group") => {
            let groups = &org.app_groups[a];
            v2_page(groups.len(), groups.iter(), |&g| edge(&org.groups[g].id, "user_group", Value::Null), &p)
        }
        _ => targets_error("user, user_group"),
    }
}

#[allow(clippy::result_large_err)]
fn body_json(bytes: &[u8]) -> Result<Value, Response> {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| error(StatusCode::BAD_REQUEST, "Bad Request: body must be a JSON object"))
}

async fn create_group(t: Tenant, body: axum::body::Bytes) -> Response {
    let v = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Some(name) = v.get("name").and_then(Value::as_str).filter(|n| !n.trim().is_empty()) else {
        return error(StatusCode::BAD_REQUEST, "Bad Request: name is required");
    };
    let description = v.get("description").and_then(Value::as_str).unwrap_or_default();
    let mut org = t.write();
    let Some(g) = org.create_group(name, description).cloned() else {
        return error(StatusCode::CONFLICT, "Already Exists");
    };
    let org_id = org.org_id.clone();
    let resource = json!({"id": g.id, "type": "user_group", "name": g.name});
    org.audit.record_change(
        &org_id,
        "user_group_create",
        resource,
        json!([{"field": "name", "from": null, "to": g.name}]),
    );
    json_response(StatusCode::CREATED, serde_json::to_string(&g).unwrap_or_default(), None)
}

async fn change_member(t: Tenant, Path(id): Path<String>, body: axum::body::Bytes) -> Response {
    if let Some(r) = invalid_id(&id) {
        return r;
    }
    let v = match body_json(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let op = v.get("op").and_then(Value::as_str).unwrap_or_default().to_string();
    let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
    let Some(user_id) = v.get("id").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "Bad Request: id is required");
    };
    if kind != "user" {
        return error(StatusCode::BAD_REQUEST, "Bad Request: type must be user");
    }
    let mut org = t.write();
    let (Some(&g), Some(&u)) = (org.group_index.get(&id), org.user_index.get(user_id)) else {
        return error(StatusCode::NOT_FOUND, "Not Found");
    };
    let changed = match op.as_str() {
        "add" => org.group_members[g].insert(u),
        "remove" => org.group_members[g].remove(&u),
        _ => {
            return error(StatusCode::BAD_REQUEST, "Bad Request: op must be add or remove");
        }
    };
    if changed {
        let (org_id, group, user) = (org.org_id.clone(), org.groups[g].name.clone(), org.users[u].email.clone());
        let resource = json!({"id": id, "type": "user_group", "name": group});
        let (from, to) = if op == "add" { (Value::Null, json!(user)) } else { (json!(user), Value::Null) };
        org.audit.record_change(
            &org_id,
            "association_change",
            resource,
            json!([{"field": "member", "from": from, "to": to}]),
        );
    }
    match (op.as_str(), changed) {
        (_, true) => StatusCode::NO_CONTENT.into_response(),
        ("add", false) => error(StatusCode::CONFLICT, "Already Exists"),
        _ => error(StatusCode::NOT_FOUND, "Not Found"),
    }
}

async fn list_admins(t: Tenant, Query(p): Query<Paging>) -> Response {
    v1_page(&t.read().audit.admins, &p)
}

async fn list_device_groups(t: Tenant, Query(p): Query<Paging>) -> Response {
    let org = t.read();
    v2_page(org.audit.device_groups.len(), org.audit.device_groups.iter(), |g| g, &p)
}

async fn device_group_members(t: Tenant, Path(id): Path<String>, Query(p): Query<Paging>) -> Response {
    let org = t.read();
    let g = match position_of(&id, org.audit.device_groups.iter().map(|g| &g.id)) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let members = &org.audit.device_group_members[g];
    v2_page(members.len(), members.iter(), |&d| edge(&org.devices[d].id, "system", Value::Null), &p)
}

async fn list_policies(t: Tenant, Query(p): Query<Paging>) -> Response {
    let org = t.read();
    v2_page(org.audit.policies.len(), org.audit.policies.iter(), |p| p, &p)
}

async fn policy_statuses(t: Tenant, Path(id): Path<String>, Query(p): Query<Paging>) -> Response {
    let org = t.read();
    let i = match position_of(&id, org.audit.policies.iter().map(|p| &p.id)) {
        Ok(i) => i,
        Err(r) => return r,
    };
    let results = &org.audit.policy_results[i];
    v2_page(results.len(), results.iter(), |r| r, &p)
}

/// What a Directory Insights query asks for: `service` and `start_time` required; `end_time`,
/// `search_term` (`and` / `or` of `{field: value or [values]}`).
struct EventFilter {
    services: Vec<String>,
    start_ms: i64,
    end_ms: Option<i64>,
    term: Option<Value>,
}

impl EventFilter {
    /// A query body and its filter, or JumpCloud's 400.
    fn of_body(body: &[u8]) -> Result<(Value, EventFilter), Box<Response>> {
        let q = body_json(body).map_err(Box::new)?;
        let filter = EventFilter::parse(&q).map_err(|why| Box::new(error(StatusCode::BAD_REQUEST, why)))?;
        Ok((q, filter))
    }

    /// The filter of a query body, or why JumpCloud would answer 400.
    fn parse(q: &Value) -> Result<EventFilter, &'static str> {
        let Some(services) = q.get("service").and_then(Value::as_array) else {
            return Err("Bad Request: service is required");
        };
        let services: Vec<String> = services.iter().filter_map(Value::as_str).map(str::to_string).collect();
        let time =
            |k: &str| q.get(k).and_then(Value::as_str).and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let Some(start) = time("start_time") else {
            return Err("Bad Request: start_time is required, in RFC3339 format");
        };
        let end = time("end_time");
        if q.get("end_time").is_some() && end.is_none() {
            return Err("Bad Request: end_time must be in RFC3339 format");
        }
        Ok(EventFilter {
            services,
            start_ms: start.timestamp_millis(),
            end_ms: end.map(|e| e.timestamp_millis()),
            term: q.get("search_term").cloned(),
        })
    }

    fn service(&self, service: &str) -> bool {
        self.services.iter().any(|s| s == "all" || s == service)
    }

    /// Whether the term holds for an event; `field` answers a top-level field by name.
    fn term_holds(&self, field: &dyn Fn(&str) -> Value) -> bool {
        let check = |t: &Value| {
            t.as_object().is_some_and(|o| {
                o.iter().all(|(k, want)| match want {
                    Value::Array(vals) => vals.contains(&field(k)),
                    v => &field(k) == v,
                })
            })
        };
        match &self.term {
            None => true,
            Some(t) => match (t.get("and").and_then(Value::as_array), t.get("or").and_then(Value::as_array)) {
                (Some(all), _) => all.iter().all(check),
                (None, Some(any)) => any.iter().any(check),
                _ => true,
            },
        }
    }

    fn wants(&self, e: &audit::Event) -> bool {
        self.service(e.body["service"].as_str().unwrap_or_default()) && self.term_holds(&|k| e.body[k].clone())
    }

    fn wants_volume(&self, e: &audit::VolumeEvent, org: &Org) -> bool {
        self.service(e.service())
            && self.term_holds(&|k| match k {
                "event_type" => Value::from(e.event_type()),
                "service" => Value::from(e.service()),
                "success" => Value::from(e.ok),
                _ => serde_json::from_str::<Value>(&e.json(org)).map(|v| v[k].clone()).unwrap_or(Value::Null),
            })
    }

    /// Every matching event of both kinds in time order (then id), from just after `after`.
    fn events<'a>(&'a self, org: &'a Org, after: Option<&'a (i64, String)>) -> impl Iterator<Item = Hit<'a>> + 'a {
        let a = &org.audit;
        let base_from = match after {
            Some((t, id)) => a.events.partition_point(|e| (e.at_ms, e.id.as_str()) <= (*t, id.as_str())),
            None => a.events.partition_point(|e| e.at_ms < self.start_ms),
        };
        let volume_from = match after {
            Some((t, id)) => {
                let at = a.volume.partition_point(|e| e.at_ms < *t);
                at + a.volume[at..].iter().take_while(|e| e.at_ms == *t && e.id() <= *id).count()
            }
            None => a.volume.partition_point(|e| e.at_ms < self.start_ms),
        };
        let end = self.end_ms.unwrap_or(i64::MAX);
        let base = a.events[base_from..]
            .iter()
            .filter(move |e| e.at_ms >= self.start_ms)
            .take_while(move |e| e.at_ms <= end)
            .filter(move |e| self.wants(e))
            .map(Hit::Base);
        let volume = a.volume[volume_from..]
            .iter()
            .filter(move |e| e.at_ms >= self.start_ms)
            .take_while(move |e| e.at_ms <= end)
            .filter(move |e| self.wants_volume(e, org))
            .map(Hit::Volume);
        Merged { a: base.peekable(), b: volume.peekable() }
    }
}

/// An event of the org's few or of its volume.
enum Hit<'a> {
    Base(&'a audit::Event),
    Volume(&'a audit::VolumeEvent),
}

impl Hit<'_> {
    fn key(&self) -> (i64, std::borrow::Cow<'_, str>) {
        match self {
            Hit::Base(e) => (e.at_ms, e.id.as_str().into()),
            Hit::Volume(e) => (e.at_ms, e.id().into()),
        }
    }
}

/// Two iterators in (time, id) order merged into one.
struct Merged<A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<'x, A: Iterator<Item = Hit<'x>>, B: Iterator<Item = Hit<'x>>> Iterator for Merged<A, B> {
    type Item = Hit<'x>;
    fn next(&mut self) -> Option<Hit<'x>> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if x.key() <= y.key() => self.a.next(),
            (Some(_), Some(_)) => self.b.next(),
            (Some(_), None) => self.a.next(),
            _ => self.b.next(),
        }
    }
}

/// `POST /insights/directory/v1/events`: the filter, `sort` (ASC default), `limit` (1,000
/// default, at most 10,000) and `search_after` (the last page's `X-Search_after`).
async fn query_events(t: Tenant, body: axum::body::Bytes) -> Response {
    let (q, filter) = match EventFilter::of_body(&body) {
        Ok(parsed) => parsed,
        Err(r) => return *r,
    };
    let limit = q.get("limit").and_then(Value::as_u64).filter(|l| (1..=10_000).contains(l)).unwrap_or(1000) as usize;
    let limit = limit.min(t.shared.config.events_page_limit.max(1));
    let descending = q.get("sort").and_then(Value::as_str).is_some_and(|s| s.eq_ignore_ascii_case("desc"));
    let after: Option<(i64, String)> = q
        .get("search_after")
        .and_then(Value::as_array)
        .and_then(|a| Some((a.first()?.as_i64()?, a.get(1)?.as_str()?.to_string())));
    let org = t.read();
    let page: Vec<Hit> = if descending {
        let all: Vec<Hit> = filter.events(&org, None).collect();
        all.into_iter()
            .rev()
            .filter(|e| after.as_ref().is_none_or(|(t, id)| e.key() < (*t, id.as_str().into())))
            .take(limit)
            .collect()
    } else {
        filter.events(&org, after.as_ref()).take(limit).collect()
    };
    let token = page.last().map(|e| json!([e.key().0, e.key().1])).unwrap_or_else(|| json!([0, ""]));
    let mut body = String::with_capacity(page.len() * 700 + 2);
    body.push('[');
    for (i, e) in page.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        match e {
            Hit::Base(e) => body.push_str(&e.body.to_string()),
            Hit::Volume(e) => body.push_str(&e.json(&org)),
        }
    }
    body.push(']');
    let mut resp = json_response(StatusCode::OK, body, None);
    let headers = resp.headers_mut();
    for (name, value) in [
        ("x-result-count", page.len().to_string()),
        ("x-limit", limit.to_string()),
        ("x-sort", if descending { "DESC" } else { "ASC" }.to_string()),
        ("x-search_after", token.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    resp
}

/// `POST /insights/directory/v1/events/interval`: counts of the matching events in buckets of
/// `interval_value` × `interval_unit` (s, m, h, d, w), `{"buckets": [{key, key_as_string,
/// doc_count}]}` with `key` the bucket's start in milliseconds (UTC).
async fn event_intervals(t: Tenant, body: axum::body::Bytes) -> Response {
    let (q, filter) = match EventFilter::of_body(&body) {
        Ok(parsed) => parsed,
        Err(r) => return *r,
    };
    let unit_ms: i64 = match q.get("interval_unit").and_then(Value::as_str) {
        Some("s") => 1000,
        Some("m") => 60_000,
        Some("h") => 3_600_000,
        Some("d") => 86_400_000,
        Some("w") => 7 * 86_400_000,
        _ => return error(StatusCode::BAD_REQUEST, "Bad Request: interval_unit must be one of s, m, h, d, w"),
    };
    let value = q.get("interval_value").and_then(Value::as_str).map_or(Some(1), |v| v.parse::<i64>().ok());
    let Some(width) = value.filter(|v| *v > 0).map(|v| v * unit_ms) else {
        return error(StatusCode::BAD_REQUEST, "Bad Request: interval_value must be a positive whole number");
    };
    let org = t.read();
    let mut buckets: std::collections::BTreeMap<i64, u64> = Default::default();
    for e in filter.events(&org, None) {
        *buckets.entry(e.key().0.div_euclid(width) * width).or_default() += 1;
    }
    let buckets: Vec<Value> = buckets
        .into_iter()
        .map(|(key, n)| json!({"key": key, "key_as_string": org::iso(key), "doc_count": n}))
        .collect();
    json_response(StatusCode::OK, json!({"buckets": buckets}).to_string(), None)
}

/// Per-path request counts, for tests and the benchmark.
pub fn count_by_path(records: &[RequestRecord]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for r in records {
        *m.entry(r.path.clone()).or_insert(0) += 1;
    }
    m
}

//! HTTP to JumpCloud: auth headers, both pagination envelopes, one request limiter per
//! connection, retries with `Retry-After` or capped exponential backoff, and error bodies turned
//! into one-line errors. Nothing here knows about DataFusion.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use reqwest::StatusCode;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};

use crate::error::{JcsqlError, Result, one_line};
pub use crate::http::install_crypto_provider;
use crate::http::{Envelope, Records, jitter, parse_body, transport_reason};
pub use crate::http::{Listing, WriteResponse};
use crate::table::decode::PageDecoder;

/// JumpCloud pages hold at most 100 records; asking for more is a 400.
pub const PAGE_SIZE: u64 = 100;
pub const DEFAULT_BASE_URL: &str = "https://console.jumpcloud.com";
pub const DEFAULT_INSIGHTS_URL: &str = "https://api.jumpcloud.com";
/// `directory_events` holds the last 30 days unless told otherwise.
pub const DEFAULT_EVENTS_WINDOW: Duration = Duration::from_secs(30 * 86400);
/// JumpCloud keeps events for 90 days.
pub const EVENTS_RETENTION: Duration = Duration::from_secs(90 * 86400);

/// An API key that cannot leak through `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into().trim().to_string())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://console.jumpcloud.com`; v1 is `{base_url}/api`, v2 `{base_url}/api/v2`.
    pub base_url: String,
    pub api_key: ApiKey,
    pub org_id: Option<String>,
    /// Directory Insights' base (`https://api.jumpcloud.com` for the US console; the simulator
    /// serves both APIs on one address).
    pub insights_url: String,
    /// How far back `directory_events` reaches (at most JumpCloud's 90-day retention).
    pub events_window: Duration,
    /// The services `directory_events` holds on disk (`None`: all); the others are fetched for
    /// the queries that ask for them.
    pub events_services: Option<Vec<String>>,
    /// Requests in flight at once, across every table of the connection.
    pub max_in_flight: usize,
    /// Records a System Insights page asks for (the spec's maximum, 10,000; smaller in tests).
    pub insights_page_size: u64,
    /// Optional steady pace, requests per second.
    pub requests_per_second: Option<f64>,
    /// Attempts for a read that gets 429, 5xx or a transport error.
    pub max_attempts: u32,
    /// First backoff step; doubled each attempt, capped at `max_backoff`, with full jitter.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    pub request_timeout: Duration,
}

impl ClientConfig {
    pub fn new(base_url: impl Into<String>, api_key: ApiKey) -> Self {
        let base_url = base_url.into().trim_end_matches('/').to_string();
        let insights_url =
            if base_url == DEFAULT_BASE_URL { DEFAULT_INSIGHTS_URL.to_string() } else { base_url.clone() };
        ClientConfig {
            base_url,
            api_key,
            org_id: None,
            insights_url,
            events_window: DEFAULT_EVENTS_WINDOW,
            events_services: None,
            max_in_flight: 8,
            insights_page_size: super::insights::INSIGHTS_PAGE_SIZE,
            requests_per_second: None,
            max_attempts: 8,
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }

    /// The same key on another org (sent as `x-org-id`), for multi-tenant administrators.
    pub fn with_org(mut self, org_id: impl Into<String>) -> Self {
        self.org_id = Some(org_id.into());
        self
    }
}

/// One decoded page.
struct PageOf<B> {
    page: B,
    rows: u64,
    total: Option<u64>,
    bytes: u64,
    attempts: u64,
}

/// Counts a page's records and keeps nothing.
struct CountRecords;

impl PageDecoder for CountRecords {
    type Page = ();
    fn decode_records<'de, D: serde::Deserializer<'de>>(&self, records: D) -> std::result::Result<((), u64), D::Error> {
        Ok(((), Vec::<IgnoredAny>::deserialize(records)?.len() as u64))
    }
}

/// Counters shared by every request of a connection.
/// Called after each page with the number of records it held and the server's count.
pub type PageCallback<'a> = &'a (dyn Fn(u64, Option<u64>) + Send + Sync);

#[derive(Debug, Clone)]
pub struct JumpCloudClient {
    http: reqwest::Client,
    cfg: Arc<ClientConfig>,
    in_flight: Arc<Semaphore>,
    pace: Arc<Mutex<Instant>>,
    /// HTTP requests sent, retries and writes included.
    requests: Arc<AtomicU64>,
}

/// One page of an event-log query: its rows, the page size the server keeps to (`X-Limit`),
/// the token of the next page (none after the last), and what it cost.
pub struct LogPage<T> {
    pub rows: T,
    pub limit: u64,
    pub next: Option<Value>,
    pub requests: u64,
    pub bytes: u64,
}

struct Page {
    body: bytes::Bytes,
    total: Option<u64>,
    /// HTTP requests this page took, retries included.
    attempts: u64,
    /// Directory Insights' paging headers: `X-Result-Count`, `X-Limit`, `X-Search_after`.
    result_count: Option<u64>,
    limit: Option<u64>,
    search_after: Option<String>,
}

/// reqwest is built without a default TLS provider (ring instead of aws-lc, for build time);
/// any program that builds a `reqwest::Client` itself calls this first.
/// Routes that refuse `x-org-id` (403 "organization selection not allowed via header"): the
/// administrators and organizations lists belong to the key, not to an org.
fn rejects_org_header(url: &str) -> bool {
    let path = url.split('?').next().unwrap_or(url);
    path.ends_with("/api/users") || path.ends_with("/api/organizations")
}

impl JumpCloudClient {
    pub fn new(cfg: ClientConfig) -> Result<Self> {
        if cfg.events_window > EVENTS_RETENTION {
            return Err(JcsqlError::Config(format!(
                "the events window is {} days, but JumpCloud keeps events for 90 days; set JCSQL_EVENTS_SINCE (or events_since in the config) to 90d or less",
                cfg.events_window.as_secs() / 86400
            )));
        }
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("jcsql/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(cfg.request_timeout)
            .pool_max_idle_per_host(cfg.max_in_flight.max(1) * 2)
            .build()
            .map_err(|e| JcsqlError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(JumpCloudClient {
            http,
            in_flight: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
            pace: Arc::new(Mutex::new(Instant::now())),
            requests: Arc::new(AtomicU64::new(0)),
            cfg: Arc::new(cfg),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    pub fn requests_made(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `path` is below `/api`: `/systemusers` (v1) or `/v2/usergroups` (v2).
    fn url(&self, path: &str) -> String {
        format!("{}/api{path}", self.cfg.base_url)
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .request(method, url)
            .header("x-api-key", self.cfg.api_key.expose())
            .header("accept", "application/json");
        if let Some(org) = &self.cfg.org_id
            && !rejects_org_header(url)
        {
            req = req.header("x-org-id", org);
        }
        req
    }

    /// One page of a Directory Insights query: `POST {insights}{path}` with `body` (its
    /// `limit` and `search_after` set by the caller).
    pub async fn query_log_page<P: PageDecoder>(
        &self,
        path: &str,
        body: &Value,
        decoder: &P,
    ) -> Result<LogPage<P::Page>> {
        let url = format!("{}{path}", self.cfg.insights_url);
        let what = format!("POST {path}");
        let page = self.read(reqwest::Method::POST, url, what.clone(), &[], Some(body)).await?;
        let (decoded, rows) = parse_body(&page.body, Records(decoder))
            .map_err(|e| JcsqlError::Decode { what: what.clone(), reason: e.to_string() })?;
        let asked = body.get("limit").and_then(Value::as_u64).unwrap_or(u64::MAX);
        let limit = page.limit.unwrap_or(asked);
        let count = page.result_count.unwrap_or(rows);
        let last = count < limit || rows == 0;
        let next = if last {
            None
        } else {
            Some(
                page.search_after
                    .as_deref()
                    .and_then(|t| serde_json::from_str::<Value>(t).ok())
                    .filter(Value::is_array)
                    .ok_or_else(|| JcsqlError::Decode {
                        what: what.clone(),
                        reason: "a full page came without an X-Search_after header".into(),
                    })?,
            )
        };
        Ok(LogPage { rows: decoded, limit, next, requests: page.attempts, bytes: page.body.len() as u64 })
    }

    /// Counts of a Directory Insights query in buckets of time (`POST {insights}{path}/interval`):
    /// (bucket start in milliseconds, entries).
    pub async fn query_log_counts(&self, path: &str, body: &Value) -> Result<(Vec<(i64, u64)>, u64)> {
        let url = format!("{}{path}/interval", self.cfg.insights_url);
        let what = format!("POST {path}/interval");
        let page = self.read(reqwest::Method::POST, url, what.clone(), &[], Some(body)).await?;
        let v: Value = serde_json::from_slice(&page.body)
            .map_err(|e| JcsqlError::Decode { what: what.clone(), reason: e.to_string() })?;
        let buckets = v
            .get("buckets")
            .and_then(Value::as_array)
            .ok_or_else(|| JcsqlError::Decode { what, reason: "no buckets in the answer".into() })?;
        let counts =
            buckets.iter().filter_map(|b| Some((b.get("key")?.as_i64()?, b.get("doc_count")?.as_u64()?))).collect();
        Ok((counts, page.attempts))
    }

    async fn wait_for_pace(&self) {
        let Some(rps) = self.cfg.requests_per_second.filter(|r| *r > 0.0) else {
            return;
        };
        let slot = {
            let mut next = self.pace.lock().await;
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + Duration::from_secs_f64(1.0 / rps);
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(d) = retry_after {
            return d.min(Duration::from_secs(60));
        }
        let exp = self.cfg.base_backoff.saturating_mul(1u32 << attempt.min(16));
        let cap = exp.min(self.cfg.max_backoff);
        // Full jitter keeps many clients (and our own concurrent pages) from retrying in step.
        cap.mul_f64(0.5 + 0.5 * jitter())
    }

    /// A GET with the limiter, retries on 429 / 5xx / transport errors, and JumpCloud's error
    /// bodies mapped to [`JcsqlError`].
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Page> {
        self.read(reqwest::Method::GET, self.url(path), format!("GET /api{path}"), query, None).await
    }

    /// A read (a GET, or Directory Insights' POST query, which changes nothing and so may be
    /// sent again) with the limiter and retries.
    async fn read(
        &self,
        method: reqwest::Method,
        url: String,
        what: String,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Page> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.wait_for_pace().await;
            let permit = self.in_flight.acquire().await.map_err(|_| JcsqlError::Network {
                base_url: self.cfg.base_url.clone(),
                reason: "the request limiter was closed".into(),
            })?;
            self.requests.fetch_add(1, Ordering::Relaxed);
            let mut req = self.request(method.clone(), &url).query(query);
            if let Some(b) = body {
                req = req.header("content-type", "application/json").body(b.to_string());
            }
            let sent = req.send().await;
            let outcome = match sent {
                Ok(resp) => {
                    let status = resp.status();
                    let header =
                        |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
                    let number = |name: &str| header(name).and_then(|v| v.trim().parse::<u64>().ok());
                    let total = number("x-total-count");
                    let paging = (number("x-result-count"), number("x-limit"), header("x-search_after"));
                    let retry_after = crate::http::retry_after(resp.headers());
                    match resp.bytes().await {
                        Ok(body) => Ok((status, total, retry_after, body, paging)),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            drop(permit);
            match outcome {
                Ok((status, total, _, body, (result_count, limit, search_after))) if status.is_success() => {
                    return Ok(Page { body, total, attempts: attempt as u64, result_count, limit, search_after });
                }
                Ok((status, _, retry_after, body, _)) if is_retryable(status) => {
                    let body: bytes::Bytes = body;
                    if attempt >= self.cfg.max_attempts {
                        return Err(JcsqlError::RetriesExhausted {
                            status: status.as_u16(),
                            what,
                            attempts: attempt,
                            message: error_message(status, &body),
                        });
                    }
                    tracing::debug!(%status, attempt, "retrying {what}");
                    tokio::time::sleep(self.backoff(attempt, retry_after)).await;
                }
                Ok((status, _, _, body, _)) => return Err(status_error(status, what, &body)),
                Err(e) => {
                    if attempt >= self.cfg.max_attempts.min(4) {
                        return Err(JcsqlError::Network {
                            base_url: self.cfg.base_url.clone(),
                            reason: transport_reason(&e),
                        });
                    }
                    tokio::time::sleep(self.backoff(attempt, None)).await;
                }
            }
        }
    }

    async fn v1_page<P: PageDecoder>(&self, path: &str, skip: u64, limit: u64, decoder: &P) -> Result<PageOf<P::Page>> {
        let query = [("limit", limit.to_string()), ("skip", skip.to_string()), ("sort", "_id".to_string())];
        let page = self.get(path, &query).await?;
        let what = || format!("GET /api{path}");
        let (results, total) = parse_body(&page.body, Envelope::<_, u64>::new("results", "totalCount", decoder))
            .map_err(|e| JcsqlError::Decode { what: what(), reason: e.to_string() })?;
        let (decoded, rows) = results
            .ok_or_else(|| JcsqlError::Decode { what: what(), reason: "the body has no `results` list".into() })?;
        Ok(PageOf {
            page: decoded,
            rows,
            total: total.or(page.total),
            bytes: page.body.len() as u64,
            attempts: page.attempts,
        })
    }

    async fn v2_page<P: PageDecoder>(
        &self,
        path: &str,
        extra: &[(&str, &str)],
        skip: u64,
        limit: u64,
        decoder: &P,
    ) -> Result<PageOf<P::Page>> {
        let mut query: Vec<(&str, String)> = extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
        query.push(("limit", limit.to_string()));
        query.push(("skip", skip.to_string()));
        let page = self.get(path, &query).await?;
        let (decoded, rows) = parse_body(&page.body, Records(decoder))
            .map_err(|e| JcsqlError::Decode { what: format!("GET /api{path}"), reason: e.to_string() })?;
        Ok(PageOf { page: decoded, rows, total: page.total, bytes: page.body.len() as u64, attempts: page.attempts })
    }

    /// One page of a System Insights route (a bare array, no count): the decoded page, its
    /// record count, the requests it took and its size.
    pub async fn insights_page<P: PageDecoder>(
        &self,
        path: &str,
        query: &[(&str, String)],
        skip: u64,
        limit: u64,
        decoder: &P,
    ) -> Result<(P::Page, u64, u64, u64)> {
        let extra: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let p = self.v2_page(path, &extra, skip, limit, decoder).await?;
        Ok((p.page, p.rows, p.attempts, p.bytes))
    }

    /// The same key on another org (`x-org-id`), sharing this client's limiter: every org of
    /// a multi-tenant key counts against the one key's requests in flight.
    pub fn for_org(&self, org_id: &str) -> JumpCloudClient {
        let mut cfg = (*self.cfg).clone();
        cfg.org_id = Some(org_id.to_string());
        JumpCloudClient { cfg: Arc::new(cfg), ..self.clone() }
    }

    /// The orgs the key reaches (`GET /api/organizations`, sent without `x-org-id`): id and
    /// display name (which may be null).
    pub async fn organizations(&self) -> Result<Vec<(String, Option<String>)>> {
        let mut out = Vec::new();
        let mut skip = 0;
        loop {
            let query = [("limit", PAGE_SIZE.to_string()), ("skip", skip.to_string())];
            let page = self.get("/organizations", &query).await?;
            let body: Value = serde_json::from_slice(&page.body)
                .map_err(|e| JcsqlError::Decode { what: "GET /api/organizations".into(), reason: e.to_string() })?;
            let results = body["results"].as_array().cloned().unwrap_or_default();
            for r in &results {
                if let Some(id) = r["_id"].as_str().or_else(|| r["id"].as_str()) {
                    out.push((id.to_string(), r["displayName"].as_str().map(str::to_string)));
                }
            }
            let total = body["totalCount"].as_u64().unwrap_or(0);
            skip += results.len() as u64;
            if results.is_empty() || skip >= total {
                return Ok(out);
            }
        }
    }

    /// One cheap request that proves the key (and org id) work.
    pub async fn validate(&self) -> Result<()> {
        self.v1_page("/systemusers", 0, 1, &CountRecords).await.map(|_| ())
    }

    /// Every record of a list. v2 paths (`/v2/…`) answer a JSON array with the count in
    /// `x-total-count`; v1 paths answer `{totalCount, results}` and are sorted by `_id` for
    /// stable paging. The pages after the first are fetched concurrently once the count is known.
    pub async fn list<P: PageDecoder>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        on_page: PageCallback<'_>,
        decoder: &P,
    ) -> Result<Listing<P::Page>> {
        if path.starts_with("/v2/") {
            self.all_pages(on_page, |skip| self.v2_page(path, query, skip, PAGE_SIZE, decoder)).await
        } else {
            self.all_pages(on_page, |skip| self.v1_page(path, skip, PAGE_SIZE, decoder)).await
        }
    }

    /// One object as JSON (`GET /api{path}`), e.g. a user before an action changes it.
    pub async fn get_object(&self, path: &str) -> Result<Value> {
        let page = self.get(path, &[]).await?;
        serde_json::from_slice(&page.body)
            .map_err(|e| JcsqlError::Decode { what: format!("GET /api{path}"), reason: e.to_string() })
    }

    async fn all_pages<'a, B: Send, F, Fut>(&'a self, on_page: PageCallback<'_>, page: F) -> Result<Listing<B>>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Result<PageOf<B>>> + 'a,
    {
        let first = page(0).await?;
        let first_len = first.rows;
        let total = first.total;
        on_page(first_len, total);
        let mut listing =
            Listing { pages: vec![first.page], expected: total, requests: first.attempts, bytes: first.bytes };
        match total {
            Some(total) if total > first_len && first_len > 0 => {
                let skips: Vec<u64> = (1..total.div_ceil(PAGE_SIZE)).map(|i| i * PAGE_SIZE).collect();
                let mut pages: Vec<(u64, B, u64, u64)> = stream::iter(skips)
                    .map(|skip| {
                        let fut = page(skip);
                        async move {
                            let p = fut.await?;
                            on_page(p.rows, p.total);
                            Ok::<_, JcsqlError>((skip, p.page, p.attempts, p.bytes))
                        }
                    })
                    .buffer_unordered(self.cfg.max_in_flight.max(1))
                    .try_collect()
                    .await?;
                pages.sort_by_key(|(skip, ..)| *skip);
                for (_, b, attempts, bytes) in pages {
                    listing.requests += attempts;
                    listing.bytes += bytes;
                    listing.pages.push(b);
                }
            }
            Some(_) => {}
            None => {
                // No count from the server: walk pages until a short one.
                let mut last = first_len;
                let mut skip = first_len;
                while last == PAGE_SIZE {
                    let p = page(skip).await?;
                    last = p.rows;
                    on_page(last, None);
                    skip += last;
                    listing.requests += p.attempts;
                    listing.bytes += p.bytes;
                    listing.pages.push(p.page);
                }
            }
        }
        Ok(listing)
    }

    /// Sends a write (any method) once: writes are never retried, since a retry of a create that
    /// did happen would change its outcome. Non-2xx statuses are returned, not raised, so
    /// callers can map 409 / 404 to statuses; 401 and transport errors are raised.
    pub async fn write(&self, method: reqwest::Method, path: &str, body: &Value) -> Result<WriteResponse> {
        let url = self.url(path);
        let what = format!("{method} /api{path}");
        self.wait_for_pace().await;
        let _permit = self.in_flight.acquire().await.map_err(|_| JcsqlError::Network {
            base_url: self.cfg.base_url.clone(),
            reason: "the request limiter was closed".into(),
        })?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = self
            .request(method, &url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| JcsqlError::Network { base_url: self.cfg.base_url.clone(), reason: transport_reason(&e) })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| JcsqlError::Network { base_url: self.cfg.base_url.clone(), reason: transport_reason(&e) })?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(status_error(status, what, &bytes));
        }
        Ok(WriteResponse {
            status: status.as_u16(),
            body: serde_json::from_slice(&bytes).ok(),
            message: error_message(status, &bytes),
        })
    }
}

fn is_retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// `message`, else `error`, else the reason phrase (live JumpCloud bodies vary).
pub fn error_message(status: StatusCode, body: &[u8]) -> String {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let text = parsed
        .as_ref()
        .and_then(|v| {
            v.get("message")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .or_else(|| v.get("error").and_then(Value::as_str))
                .map(str::to_string)
        })
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("no reason given").to_string());
    let text = one_line(&text);
    if text.chars().count() > 200 { format!("{}…", text.chars().take(200).collect::<String>()) } else { text }
}

fn status_error(status: StatusCode, what: String, body: &[u8]) -> JcsqlError {
    let message = error_message(status, body);
    match status.as_u16() {
        401 => JcsqlError::Unauthorized { message },
        403 => JcsqlError::Forbidden { what, message },
        s => JcsqlError::Http { status: s, what, message },
    }
}

//! HTTP to the Google Directory API: a bearer token from [`super::auth`], `pageToken` /
//! `nextPageToken` paging, one request limiter, and retries on 429, 5xx and 403
//! `rateLimitExceeded` with capped exponential backoff.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::{Mutex, Semaphore};

use super::auth::{AccessToken, JWT_BEARER, SCOPES, ServiceAccount, TokenResponse, WRITE_SCOPES, scopes};
use crate::error::{GoogleError, JcsqlError, Result, one_line};
use crate::http::{
    Envelope, EnvelopeOf, Listing, WriteResponse, install_crypto_provider, jitter, parse_body, transport_reason,
};
use crate::table::decode::PageDecoder;

pub const DEFAULT_API_URL: &str = "https://admin.googleapis.com/admin/directory/v1";
/// The whole account's users and groups (the customer of the subject's domain).
pub const MY_CUSTOMER: &str = "my_customer";

#[derive(Debug, Clone)]
pub struct GoogleConfig {
    /// The Directory API base, `…/admin/directory/v1`.
    pub api_url: String,
    /// The service-account key file; read once when the client is built.
    pub key_file: PathBuf,
    /// The administrator the service account acts as (domain-wide delegation).
    pub subject: String,
    pub customer: String,
    pub max_in_flight: usize,
    pub max_attempts: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    pub request_timeout: Duration,
}

impl GoogleConfig {
    pub fn new(key_file: impl Into<PathBuf>, subject: impl Into<String>) -> Self {
        GoogleConfig {
            api_url: DEFAULT_API_URL.into(),
            key_file: key_file.into(),
            subject: subject.into(),
            customer: MY_CUSTOMER.into(),
            max_in_flight: 8,
            max_attempts: 8,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(32),
            request_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Clone)]
pub struct GoogleClient {
    http: reqwest::Client,
    cfg: Arc<GoogleConfig>,
    account: Arc<ServiceAccount>,
    /// One token for every request, and the scopes it was granted for; the lock makes its
    /// renewal single-flight.
    token: Arc<Mutex<Option<(AccessToken, String)>>>,
    in_flight: Arc<Semaphore>,
    /// Ask for the write scopes: some Google action is enabled.
    write_access: Arc<AtomicBool>,
}

impl fmt::Debug for GoogleClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleClient").field("api_url", &self.cfg.api_url).field("account", &self.account).finish()
    }
}

/// What one attempt at a request came to.
enum Attempt {
    Done(bytes::Bytes),
    Retry { status: u16, message: String, after: Option<Duration> },
    Failed(JcsqlError),
}

impl GoogleClient {
    pub fn new(cfg: GoogleConfig) -> Result<Self> {
        let account = ServiceAccount::load(&cfg.key_file)?;
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("jcsql/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(cfg.request_timeout)
            .build()
            .map_err(|e| JcsqlError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(GoogleClient {
            http,
            in_flight: Arc::new(Semaphore::new(cfg.max_in_flight.max(1))),
            cfg: Arc::new(cfg),
            account: Arc::new(account),
            token: Arc::default(),
            write_access: Arc::default(),
        })
    }

    /// Asks for the write scopes from the next token on (or stops asking): jcsql holds them only
    /// while a Google action is enabled.
    pub fn set_write_access(&self, on: bool) {
        self.write_access.store(on, Ordering::Relaxed);
    }

    /// The scopes the next token asks for.
    pub fn scopes(&self) -> String {
        scopes(self.write_access.load(Ordering::Relaxed))
    }

    pub fn config(&self) -> &GoogleConfig {
        &self.cfg
    }

    pub fn service_account_email(&self) -> &str {
        &self.account.client_email
    }

    /// A token worth sending: the held one, or a new one when it is close to expiry or was
    /// just refused (`refused`).
    async fn token(&self, refused: Option<&str>) -> Result<String> {
        let scopes = self.scopes();
        let mut held = self.token.lock().await;
        if let Some((t, _)) =
            held.as_ref().filter(|(t, s)| t.is_fresh() && *s == scopes && Some(t.value.as_str()) != refused)
        {
            return Ok(t.value.clone());
        }
        let fresh = match self.exchange(&scopes).await {
            Err(JcsqlError::Google(GoogleError::TokenRefused { .. })) if scopes != SCOPES => {
                return Err(self.missing_scopes().await);
            }
            other => other?,
        };
        let value = fresh.value.clone();
        *held = Some((fresh, scopes));
        Ok(value)
    }

    /// Why a token with the write scopes was refused: which of them the delegation lacks, found
    /// by asking for each beside the read-only ones.
    async fn missing_scopes(&self) -> JcsqlError {
        if let Err(e) = self.exchange(SCOPES).await {
            return e;
        }
        let mut missing = Vec::new();
        for scope in WRITE_SCOPES {
            if self.exchange(&format!("{SCOPES} {scope}")).await.is_err() {
                missing.push(*scope);
            }
        }
        let missing = if missing.is_empty() { WRITE_SCOPES.to_vec() } else { missing };
        GoogleError::ScopeNotDelegated { missing: missing.join(", "), account: self.account.client_email.clone() }
            .into()
    }

    /// The JWT-bearer exchange at the key file's `token_uri`, for `scopes`.
    async fn exchange(&self, scopes: &str) -> Result<AccessToken> {
        let url = self.account.token_uri.clone();
        let what = "the token request".to_string();
        let body = self.send(&what, &url, || {
            let assertion = self.account.assertion(&self.cfg.subject, scopes)?;
            Ok(self.http.post(&url).form(&[("grant_type", JWT_BEARER), ("assertion", assertion.as_str())]))
        });
        let body = match body.await {
            Ok(b) => b,
            Err(JcsqlError::Google(GoogleError::Http { status, message, .. })) => {
                let (error, description) = message.split_once(": ").unwrap_or((message.as_str(), ""));
                return Err(GoogleError::TokenRefused {
                    subject: self.cfg.subject.clone(),
                    status,
                    error: error.to_string(),
                    description: description.to_string(),
                }
                .into());
            }
            Err(e) => return Err(e),
        };
        let parsed: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| GoogleError::Decode { what: what.clone(), reason: e.to_string() })?;
        let value = parsed
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| GoogleError::Decode { what, reason: "no access_token in the answer".into() })?;
        Ok(AccessToken::new(value, parsed.expires_in.unwrap_or(3600)))
    }

    /// Sends the request `build` makes until it succeeds, retrying what may be retried.
    async fn send(
        &self,
        what: &str,
        url: &str,
        build: impl Fn() -> Result<reqwest::RequestBuilder>,
    ) -> Result<bytes::Bytes> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let permit = self.in_flight.acquire().await.map_err(|_| GoogleError::Network {
                url: url.to_string(),
                reason: "the request limiter was closed".into(),
            })?;
            let outcome = match build()?.send().await {
                Ok(resp) => judge(resp, what).await,
                Err(e) if attempt < self.cfg.max_attempts.min(4) => {
                    Attempt::Retry { status: 0, message: transport_reason(&e), after: None }
                }
                Err(e) => Attempt::Failed(
                    GoogleError::Network { url: self.cfg.api_url.clone(), reason: transport_reason(&e) }.into(),
                ),
            };
            drop(permit);
            match outcome {
                Attempt::Done(body) => return Ok(body),
                Attempt::Failed(e) => return Err(e),
                Attempt::Retry { status, message, .. } if attempt >= self.cfg.max_attempts => {
                    return Err(GoogleError::RetriesExhausted {
                        status,
                        what: what.into(),
                        attempts: attempt,
                        message,
                    }
                    .into());
                }
                Attempt::Retry { after, .. } => tokio::time::sleep(self.backoff(attempt, after)).await,
            }
        }
    }

    fn backoff(&self, attempt: u32, after: Option<Duration>) -> Duration {
        if let Some(d) = after {
            return d.min(Duration::from_secs(60));
        }
        let exp = self.cfg.base_backoff.saturating_mul(1u32 << attempt.min(16));
        exp.min(self.cfg.max_backoff).mul_f64(0.5 + 0.5 * jitter())
    }

    /// One GET of the Directory API with the current token; a 401 renews the token once.
    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<bytes::Bytes> {
        let url = format!("{}{path}", self.cfg.api_url);
        let what = format!("GET {}", path.split('?').next().unwrap_or(path));
        let send = |token: String| {
            let (url, what) = (&url, &what);
            async move { self.send(what, url, || Ok(self.http.get(url).query(query).bearer_auth(&token))).await }
        };
        let token = self.token(None).await?;
        match send(token.clone()).await {
            Err(JcsqlError::Google(GoogleError::Http { status: 401, .. })) => {
                send(self.token(Some(&token)).await?).await
            }
            answered => answered,
        }
    }

    /// Every page of a list (`/users?projection=full`, `/groups/{id}/members`), following
    /// `nextPageToken` until it is absent. The records are under the path's last segment.
    pub async fn list<P: PageDecoder>(
        &self,
        path: &str,
        extra: &[(&str, &str)],
        on_page: &(dyn Fn(u64) + Send + Sync),
        decoder: &P,
    ) -> Result<Listing<P::Page>> {
        let items = path.split('?').next().unwrap_or(path).rsplit('/').next().unwrap_or("items");
        let mut query: Vec<(&str, String)> = extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
        if !path.contains("/members") {
            query.push(("customer", self.cfg.customer.clone()));
        }
        let mut listing = Listing::default();
        let mut page_token: Option<String> = None;
        loop {
            let mut q = query.clone();
            if let Some(t) = &page_token {
                q.push(("pageToken", t.clone()));
            }
            let body = self.get(path, &q).await?;
            listing.requests += 1;
            listing.bytes += body.len() as u64;
            let (records, next) = parse_page(items, &body, decoder)
                .map_err(|e| GoogleError::Decode { what: format!("GET {path}"), reason: e.to_string() })?;
            if let Some((page, rows)) = records {
                listing.pages.push(page);
                on_page(rows);
            }
            match next.filter(|t| !t.is_empty()) {
                Some(t) if Some(&t) != page_token.as_ref() => page_token = Some(t),
                _ => return Ok(listing),
            }
        }
    }

    /// Sends a write. A 401 renews the token and sends it again, as do 429 and 403 rate limits
    /// (Google did not act on those); after a 5xx or a lost connection the write may have been
    /// applied, so it is sent again only when `idempotent` (a PUT of the same body).
    pub async fn write(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        idempotent: bool,
    ) -> Result<WriteResponse> {
        let url = format!("{}{path}", self.cfg.api_url);
        let what = format!("{method} {path}");
        let mut refused: Option<String> = None;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let token = self.token(refused.as_deref()).await?;
            let permit = self.in_flight.acquire().await.map_err(|_| GoogleError::Network {
                url: url.clone(),
                reason: "the request limiter was closed".into(),
            })?;
            let mut req = self.http.request(method.clone(), &url).bearer_auth(&token);
            if let Some(b) = body {
                req = req.header("content-type", "application/json").body(b.to_string());
            }
            let sent = req.send().await;
            let answered = match sent {
                Ok(resp) => {
                    let status = resp.status();
                    let after = crate::http::retry_after(resp.headers());
                    resp.bytes().await.map(|b| (status, b, after))
                }
                Err(e) => Err(e),
            };
            drop(permit);
            let last = attempt >= self.cfg.max_attempts;
            let (status, bytes, after) = match answered {
                Ok(a) => a,
                Err(e) if idempotent && !last => {
                    tracing::debug!("retrying {what}: {}", transport_reason(&e));
                    tokio::time::sleep(self.backoff(attempt, None)).await;
                    continue;
                }
                Err(e) => {
                    let reason = transport_reason(&e);
                    let reason = if idempotent {
                        reason
                    } else {
                        format!("{reason}; it may have been applied, so it was not sent again: check in Google")
                    };
                    return Err(GoogleError::Network { url: self.cfg.api_url.clone(), reason }.into());
                }
            };
            let (message, reason) =
                if status.is_success() { (String::new(), String::new()) } else { error_of(status, &bytes) };
            let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
                || (status == StatusCode::FORBIDDEN
                    && matches!(reason.as_str(), "rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded"));
            match status.as_u16() {
                401 if refused.is_none() => refused = Some(token),
                _ if rate_limited && !last => tokio::time::sleep(self.backoff(attempt, after)).await,
                _ if status.is_server_error() && idempotent && !last => {
                    tokio::time::sleep(self.backoff(attempt, after)).await
                }
                s => {
                    let parsed = serde_json::from_slice::<Value>(&bytes).ok().filter(|_| status.is_success());
                    return Ok(WriteResponse { status: s, body: parsed, message });
                }
            }
        }
    }

    /// One object as JSON (`GET {path}`), e.g. a user before an action changes it.
    pub async fn get_object(&self, path: &str) -> Result<Value> {
        let body = self.get(path, &[]).await?;
        serde_json::from_slice(&body)
            .map_err(|e| GoogleError::Decode { what: format!("GET {path}"), reason: e.to_string() }.into())
    }

    /// One request that proves the key, the subject and the delegation work.
    pub async fn validate(&self) -> Result<()> {
        let query = [("customer", self.cfg.customer.clone()), ("maxResults", "1".to_string())];
        self.get("/users", &query).await.map(|_| ())
    }
}

/// Reads an answer: the body, or whether and why to try again.
async fn judge(resp: reqwest::Response, what: &str) -> Attempt {
    let status = resp.status();
    let after = crate::http::retry_after(resp.headers());
    let body = match resp.bytes().await {
        Ok(b) => b,
        Err(e) => return Attempt::Retry { status: status.as_u16(), message: transport_reason(&e), after: None },
    };
    if status.is_success() {
        return Attempt::Done(body);
    }
    let (message, reason) = error_of(status, &body);
    let rate_limited = matches!(reason.as_str(), "rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded");
    if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() || (status.as_u16() == 403 && rate_limited) {
        return Attempt::Retry { status: status.as_u16(), message, after };
    }
    let what = what.to_string();
    Attempt::Failed(
        match status.as_u16() {
            403 => GoogleError::Forbidden { what, message },
            s => GoogleError::Http { status: s, what, message },
        }
        .into(),
    )
}

/// Google's error bodies: `{"error": {"message", "errors": [{"reason"}]}}` from the API, or
/// `{"error": "invalid_grant", "error_description"}` from the token endpoint.
fn error_of(status: StatusCode, body: &[u8]) -> (String, String) {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let (message, reason) = match error {
        Some(Value::Object(o)) => (
            o.get("message").and_then(Value::as_str).unwrap_or_default().to_string(),
            o.get("errors")
                .and_then(|e| e.get(0))
                .and_then(|e| e.get("reason"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        ),
        Some(Value::String(code)) => {
            let description = parsed.as_ref().and_then(|v| v.get("error_description")).and_then(Value::as_str);
            (format!("{code}: {}", description.unwrap_or_default()), code.clone())
        }
        _ => (String::new(), String::new()),
    };
    let message =
        if message.is_empty() { status.canonical_reason().unwrap_or("no reason given").into() } else { message };
    let message = one_line(&message);
    let message = if message.chars().count() > 200 {
        format!("{}…", message.chars().take(200).collect::<String>())
    } else {
        message
    };
    (message, reason)
}

/// One page of a Directory API list: its records under `items` (`users`, `groups`, `members`),
/// decoded by `decoder` (`None` when the list is empty: Google then omits the key), and the next
/// page's token.
pub fn parse_page<P: PageDecoder>(items: &str, body: &[u8], decoder: &P) -> serde_json::Result<EnvelopeOf<P, String>> {
    parse_body(body, Envelope::new(items, "nextPageToken", decoder))
}

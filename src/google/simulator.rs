//! A Google Workspace Directory API simulator on 127.0.0.1: the token endpoint (checks the
//! JWT's RS256 signature, issuer, audience, scope, expiry and subject, and issues tokens that
//! expire), `users.list`, `groups.list` and `members.list` with Google's envelopes, page caps and
//! error bodies (as the discovery document and the recorded responses in
//! `../shared/google/` show them). `jcsql demo` runs it with people who overlap the demo org.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::auth::{Claims, JWT_BEARER};

/// The simulator's service account: a throwaway RSA key made for it, never valid at Google.
pub const DEMO_PRIVATE_KEY: &str = include_str!("demo_key/private.pem");
const DEMO_PUBLIC_KEY: &str = include_str!("demo_key/public.pem");
pub const DEMO_CLIENT_EMAIL: &str = "jcsql-demo@jcsql-demo.iam.gserviceaccount.com";
const CUSTOMER_ID: &str = "C03az79cb";
const API_PREFIX: &str = "/admin/directory/v1";
const USER_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
const GROUP_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.group.readonly";

/// A person in the Google account.
#[derive(Debug, Clone)]
pub struct Person {
    pub email: String,
    pub given_name: String,
    pub family_name: String,
    pub suspended: bool,
    pub is_admin: bool,
    pub enrolled_2sv: bool,
    /// Days since the last login; `None` for never (Google's 1970-01-01).
    pub last_login_days_ago: Option<u32>,
    pub org_unit: String,
}

/// A group and the emails of its direct members.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub email: String,
    pub description: String,
    pub members: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct GoogleOrg {
    pub domain: String,
    pub people: Vec<Person>,
    pub groups: Vec<Group>,
}

impl GoogleOrg {
    /// Google's 21-digit user id for `email`, stable across runs.
    pub fn user_id(email: &str) -> String {
        let h = fnv(email);
        format!("1{:020}", h % 100_000_000_000_000_000_000u128)
    }

    /// Google's 15-character group id for `email`.
    pub fn group_id(email: &str) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let mut h = fnv(email);
        (0..15)
            .map(|_| {
                let c = ALPHABET[(h % 36) as usize] as char;
                h /= 36;
                c
            })
            .collect()
    }
}

fn fnv(s: &str) -> u128 {
    s.bytes()
        .fold(0x6c62272e07bb014262b821756295c58d_u128, |h, b| (h ^ b as u128).wrapping_mul(0x1000000000000000000013B))
}

/// Knobs for tests: page sizes, token lifetime, faults.
#[derive(Debug, Clone)]
pub struct GoogleSimulatorConfig {
    pub org: GoogleOrg,
    /// Seconds a token lives (Google: 3600).
    pub token_lifetime: u64,
    /// The most records a page holds, whatever `maxResults` asks (Google's caps: 500 / 200 / 200).
    pub page_cap: Option<usize>,
}

impl GoogleSimulatorConfig {
    pub fn new(org: GoogleOrg) -> Self {
        GoogleSimulatorConfig { org, token_lifetime: 3600, page_cap: None }
    }
}

struct Shared {
    config: GoogleSimulatorConfig,
    base_url: String,
    /// token → (expiry, scopes, subject)
    tokens: Mutex<HashMap<String, (Instant, String, String)>>,
    serial: AtomicU64,
    /// Answer this many of the next API requests 429 `rateLimitExceeded`.
    rate_limited: AtomicUsize,
    /// Paths (below the API prefix, prefix match) answered 403.
    forbidden: RwLock<Vec<String>>,
    log: Mutex<Vec<(String, String, String)>>,
}

pub struct GoogleSimulator {
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for GoogleSimulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl GoogleSimulator {
    pub async fn start(config: GoogleSimulatorConfig) -> std::io::Result<GoogleSimulator> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            base_url: format!("http://{addr}"),
            tokens: Mutex::default(),
            serial: AtomicU64::new(1),
            rate_limited: AtomicUsize::new(0),
            forbidden: RwLock::default(),
            log: Mutex::default(),
        });
        let app = Router::new()
            .route("/token", post(token))
            .route("/admin/directory/v1/users", get(list_users))
            .route("/admin/directory/v1/groups", get(list_groups))
            .route("/admin/directory/v1/groups/{key}/members", get(list_members))
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(GoogleSimulator { shared, shutdown: Some(tx) })
    }

    /// The Directory API base (`GOOGLE_API_URL`).
    pub fn api_url(&self) -> String {
        format!("{}{API_PREFIX}", self.shared.base_url)
    }

    pub fn token_uri(&self) -> String {
        format!("{}/token", self.shared.base_url)
    }

    /// A service-account key file for this simulator, written to `dir`.
    pub fn write_key_file(&self, dir: &FsPath) -> std::io::Result<PathBuf> {
        let path = dir.join("google-service-account.json");
        let key = json!({
            "type": "service_account",
            "project_id": "jcsql-demo",
            "private_key_id": "0123456789abcdef0123456789abcdef01234567",
            "private_key": DEMO_PRIVATE_KEY,
            "client_email": DEMO_CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri(),
        });
        std::fs::write(&path, serde_json::to_vec_pretty(&key)?)?;
        Ok(path)
    }

    /// An administrator's email, the subject the service account may act as.
    pub fn admin_email(&self) -> String {
        self.shared.config.org.people.iter().find(|p| p.is_admin).map(|p| p.email.clone()).unwrap_or_default()
    }

    pub fn org(&self) -> &GoogleOrg {
        &self.shared.config.org
    }

    /// (method, path, query) of every request, in order.
    pub fn requests(&self) -> Vec<(String, String, String)> {
        self.shared.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    pub fn clear_requests(&self) {
        if let Ok(mut l) = self.shared.log.lock() {
            l.clear();
        }
    }

    /// The next `n` API requests are answered 429 `rateLimitExceeded`.
    pub fn rate_limit_next(&self, n: usize) {
        self.shared.rate_limited.store(n, Ordering::SeqCst);
    }

    /// Requests under `path` (e.g. `/groups`) are answered 403.
    pub fn forbid(&self, path: &str) {
        if let Ok(mut f) = self.shared.forbidden.write() {
            f.push(path.to_string());
        }
    }

    /// Every token issued so far stops working, as if an hour had passed.
    pub fn expire_tokens(&self) {
        if let Ok(mut t) = self.shared.tokens.lock() {
            for (expiry, _, _) in t.values_mut() {
                *expiry = Instant::now() - Duration::from_secs(1);
            }
        }
    }

    pub fn tokens_issued(&self) -> u64 {
        self.shared.serial.load(Ordering::SeqCst) - 1
    }
}

fn google_error(status: StatusCode, reason: &str, message: &str) -> Response {
    let body = json!({"error": {
        "code": status.as_u16(),
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
    }});
    (status, Json(body)).into_response()
}

fn oauth_error(error: &str, description: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error, "error_description": description}))).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    assertion: Option<String>,
}

async fn token(State(s): State<Arc<Shared>>, Form(form): Form<TokenForm>) -> Response {
    log(&s, "POST", "/token", "");
    if form.grant_type.as_deref() != Some(JWT_BEARER) {
        return oauth_error("unsupported_grant_type", "Invalid grant_type");
    }
    let Some(assertion) = form.assertion else {
        return oauth_error("invalid_request", "Missing required parameter: assertion");
    };
    let Ok(key) = DecodingKey::from_rsa_pem(DEMO_PUBLIC_KEY.as_bytes()) else {
        return oauth_error("internal_failure", "the simulator's key does not load");
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[format!("{}/token", s.base_url)]);
    validation.set_issuer(&[DEMO_CLIENT_EMAIL]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss", "sub"]);
    validation.leeway = 0;
    let claims = match jsonwebtoken::decode::<Claims>(&assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            use jsonwebtoken::errors::ErrorKind;
            return match e.kind() {
                ErrorKind::ExpiredSignature => oauth_error(
                    "invalid_grant",
                    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
                ),
                ErrorKind::InvalidAudience => oauth_error("invalid_grant", "Invalid JWT: Failed audience check."),
                ErrorKind::InvalidSignature => oauth_error("invalid_grant", "Invalid JWT Signature."),
                _ => oauth_error("invalid_grant", "Invalid JWT."),
            };
        }
    };
    if claims.exp.saturating_sub(claims.iat) > 3600 {
        return oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes).");
    }
    let scopes: Vec<&str> = claims.scope.split_whitespace().collect();
    if scopes.is_empty() || !scopes.iter().all(|sc| [USER_SCOPE, GROUP_SCOPE].contains(sc)) {
        return oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.");
    }
    if !s.config.org.people.iter().any(|p| p.email.eq_ignore_ascii_case(&claims.sub)) {
        return oauth_error("invalid_grant", "Invalid email or User ID");
    }
    let serial = s.serial.fetch_add(1, Ordering::SeqCst);
    let token = format!("ya29.sim-{serial}-{:x}", fnv(&claims.sub) as u64);
    let expiry = Instant::now() + Duration::from_secs(s.config.token_lifetime);
    if let Ok(mut t) = s.tokens.lock() {
        t.insert(token.clone(), (expiry, claims.scope.clone(), claims.sub.to_lowercase()));
    }
    Json(json!({"access_token": token, "expires_in": s.config.token_lifetime, "token_type": "Bearer"})).into_response()
}

fn log(s: &Shared, method: &str, path: &str, query: &str) {
    if let Ok(mut l) = s.log.lock() {
        l.push((method.to_string(), path.to_string(), query.to_string()));
    }
}

/// The checks every API request passes: a live token with the scope, an admin subject, faults.
/// The refusal, when the request may not pass.
fn admit(s: &Shared, headers: &HeaderMap, path: &str, scope: &str) -> Option<Response> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let unauthenticated = || {
        google_error(
            StatusCode::UNAUTHORIZED,
            "authError",
            "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        )
    };
    let Some(bearer) = bearer else { return Some(unauthenticated()) };
    let grant = s.tokens.lock().ok().and_then(|t| t.get(&bearer).cloned());
    let Some((expiry, scopes, subject)) = grant else { return Some(unauthenticated()) };
    if Instant::now() >= expiry {
        return Some(unauthenticated());
    }
    let forbidden = s.forbidden.read().map(|f| f.iter().any(|p| path.starts_with(p.as_str()))).unwrap_or(false);
    let is_admin = s.config.org.people.iter().any(|p| p.is_admin && p.email.eq_ignore_ascii_case(&subject));
    if forbidden || !is_admin || !scopes.split_whitespace().any(|sc| sc == scope) {
        return Some(google_error(StatusCode::FORBIDDEN, "forbidden", "Not Authorized to access this resource/api"));
    }
    let limited = s.rate_limited.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if limited {
        return Some(google_error(
            StatusCode::TOO_MANY_REQUESTS,
            "rateLimitExceeded",
            "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'.",
        ));
    }
    None
}

#[derive(Deserialize)]
struct ListQuery {
    customer: Option<String>,
    domain: Option<String>,
    #[serde(rename = "maxResults")]
    max_results: Option<String>,
    #[serde(rename = "pageToken")]
    page_token: Option<String>,
}

/// One page of `items` as Google sends it: the items key omitted when there are none.
fn page(s: &Shared, kind: &str, key: &str, items: Vec<Value>, q: &ListQuery, default: usize, cap: usize) -> Response {
    let asked = match q.max_results.as_deref().map(str::parse::<usize>) {
        None => default,
        Some(Ok(n)) if n >= 1 => n.min(cap),
        Some(_) => return google_error(StatusCode::BAD_REQUEST, "invalid", "Invalid value for maxResults"),
    };
    let size = s.config.page_cap.map_or(asked, |c| asked.min(c));
    let start = match &q.page_token {
        None => 0,
        Some(t) => match t.strip_prefix("p").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) if n <= items.len() => n,
            _ => return google_error(StatusCode::BAD_REQUEST, "invalid", "Invalid page token"),
        },
    };
    let end = (start + size).min(items.len());
    let mut body = serde_json::Map::new();
    body.insert("kind".into(), json!(format!("admin#directory#{kind}")));
    body.insert("etag".into(), json!(format!("\"sim/{kind}-{start}\"")));
    if end > start {
        body.insert(key.into(), json!(items[start..end]));
    }
    if end < items.len() {
        body.insert("nextPageToken".into(), json!(format!("p{end}")));
    }
    (StatusCode::OK, [("content-type", "application/json; charset=UTF-8")], Json(Value::Object(body))).into_response()
}

/// The refusal of a list without a known `customer` (or a `domain`).
fn customer_missing(q: &ListQuery) -> Option<Response> {
    match (&q.customer, &q.domain) {
        (Some(c), _) if c == "my_customer" || c == CUSTOMER_ID => None,
        (None, Some(_)) => None,
        _ => Some(google_error(StatusCode::BAD_REQUEST, "badRequest", "Bad Request")),
    }
}

fn query_text(q: &ListQuery) -> String {
    let parts = [
        q.customer.as_ref().map(|c| format!("customer={c}")),
        q.max_results.as_ref().map(|m| format!("maxResults={m}")),
        q.page_token.as_ref().map(|p| format!("pageToken={p}")),
    ];
    parts.into_iter().flatten().collect::<Vec<_>>().join("&")
}

async fn list_users(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    log(&s, "GET", "/users", &query_text(&q));
    if let Some(r) = admit(&s, &headers, "/users", USER_SCOPE).or_else(|| customer_missing(&q)) {
        return r;
    }
    let org = &s.config.org;
    let mut people: Vec<&Person> = org.people.iter().collect();
    people.sort_by(|a, b| a.email.cmp(&b.email));
    let items = people.into_iter().map(|p| user_json(org, p)).collect();
    page(&s, "users", "users", items, &q, 100, 500)
}

fn user_json(org: &GoogleOrg, p: &Person) -> Value {
    let id = GoogleOrg::user_id(&p.email);
    let last_login = match p.last_login_days_ago {
        Some(days) => {
            (chrono::Utc::now() - chrono::Duration::days(days as i64)).format("%Y-%m-%dT%H:%M:%S.000Z").to_string()
        }
        None => "1970-01-01T00:00:00.000Z".to_string(),
    };
    let local = p.email.split('@').next().unwrap_or_default();
    let test_alias = format!("{local}@{}.test-google-a.com", org.domain);
    let mut user = json!({
        "kind": "admin#directory#user",
        "id": id,
        "etag": format!("\"sim/{id}\""),
        "primaryEmail": p.email,
        "name": {"givenName": p.given_name, "familyName": p.family_name, "fullName": format!("{} {}", p.given_name, p.family_name)},
        "isAdmin": p.is_admin,
        "isDelegatedAdmin": false,
        "lastLoginTime": last_login,
        "creationTime": "2022-03-14T09:26:53.000Z",
        "agreedToTerms": p.last_login_days_ago.is_some(),
        "suspended": p.suspended,
        "archived": false,
        "changePasswordAtNextLogin": false,
        "ipWhitelisted": false,
        "emails": [{"address": p.email, "primary": true}, {"address": test_alias}],
        "nonEditableAliases": [test_alias],
        "customerId": CUSTOMER_ID,
        "orgUnitPath": p.org_unit,
        "isMailboxSetup": true,
        "isEnrolledIn2Sv": p.enrolled_2sv,
        "isEnforcedIn2Sv": p.is_admin,
        "includeInGlobalAddressList": true,
    });
    if p.suspended
        && let Some(o) = user.as_object_mut()
    {
        o.insert("suspensionReason".into(), json!("ADMIN"));
    }
    user
}

async fn list_groups(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    log(&s, "GET", "/groups", &query_text(&q));
    if let Some(r) = admit(&s, &headers, "/groups", GROUP_SCOPE).or_else(|| customer_missing(&q)) {
        return r;
    }
    let org = &s.config.org;
    let items = org
        .groups
        .iter()
        .map(|g| {
            let id = GoogleOrg::group_id(&g.email);
            json!({
                "kind": "admin#directory#group",
                "id": id,
                "etag": format!("\"sim/{id}\""),
                "email": g.email,
                "name": g.name,
                "directMembersCount": g.members.len().to_string(),
                "description": g.description,
                "adminCreated": true,
                "nonEditableAliases": [format!("{}.test-google-a.com", g.email)],
            })
        })
        .collect();
    page(&s, "groups", "groups", items, &q, 200, 200)
}

async fn list_members(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let path = format!("/groups/{key}/members");
    log(&s, "GET", &path, &query_text(&q));
    if let Some(r) = admit(&s, &headers, &path, GROUP_SCOPE) {
        return r;
    }
    let org = &s.config.org;
    let Some(group) = org.groups.iter().find(|g| GoogleOrg::group_id(&g.email) == key || g.email == key) else {
        return google_error(StatusCode::NOT_FOUND, "notFound", "Resource Not Found: groupKey");
    };
    let items = group
        .members
        .iter()
        .enumerate()
        .map(|(i, email)| {
            let person = org.people.iter().find(|p| &p.email == email);
            let id = GoogleOrg::user_id(email);
            json!({
                "kind": "admin#directory#member",
                "etag": format!("\"sim/{key}/{id}\""),
                "id": id,
                "email": email,
                "role": if i == 0 { "OWNER" } else { "MEMBER" },
                "type": "USER",
                "status": if person.is_some_and(|p| p.suspended) { "SUSPENDED" } else { "ACTIVE" },
            })
        })
        .collect();
    page(&s, "members", "members", items, &q, 200, 200)
}

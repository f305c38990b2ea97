//! A Google Workspace Directory API simulator on 127.0.0.1: the token endpoint (checks the
//! JWT's RS256 signature, issuer, audience, scope, expiry and subject, and issues tokens that
//! expire), `users.list`, `groups.list` and `members.list` with Google's envelopes, page caps and
//! error bodies (as the discovery document and the recorded responses in
//! `../shared/google/` show them), and the writes the Google actions make (`users.update`,
//! `users.signOut`, `members.insert`, `members.delete`), applied to its state and checked
//! against the token's scopes. `jcsql demo` runs it with people who overlap the demo org.

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
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
const USER_WRITE_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user";
const SECURITY_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.security";
const MEMBER_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.group.member";
/// Every scope the simulator knows; a token may ask only for these.
pub const ALL_SCOPES: &[&str] = &[USER_SCOPE, GROUP_SCOPE, USER_WRITE_SCOPE, SECURITY_SCOPE, MEMBER_SCOPE];

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
    /// Google itself suspended them (for abuse): only Google may lift it (412 on unsuspend).
    pub abuse: bool,
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
    /// The scopes the domain-wide delegation grants the service account (all of them unless a
    /// test takes some away); a token asking for another is refused.
    pub delegated: Vec<String>,
}

impl GoogleSimulatorConfig {
    pub fn new(org: GoogleOrg) -> Self {
        GoogleSimulatorConfig {
            org,
            token_lifetime: 3600,
            page_cap: None,
            delegated: ALL_SCOPES.iter().map(|s| s.to_string()).collect(),
        }
    }
}

struct Shared {
    config: GoogleSimulatorConfig,
    /// The account as it is now: writes change it.
    org: RwLock<GoogleOrg>,
    /// (method, path, body) of every write, in order.
    writes: Mutex<Vec<(String, String, String)>>,
    /// Whom `signOut` signed out, in order.
    signed_out: Mutex<Vec<String>>,
    /// The scopes each token request asked for, refused ones included.
    scopes_asked: Mutex<Vec<String>>,
    /// Answer this many of the next writes 503 (after recording them, before applying them).
    failing_writes: AtomicUsize,
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
            org: RwLock::new(config.org.clone()),
            writes: Mutex::default(),
            signed_out: Mutex::default(),
            scopes_asked: Mutex::default(),
            failing_writes: AtomicUsize::new(0),
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
            .route("/admin/directory/v1/users/{key}", get(get_user).put(update_user))
            .route("/admin/directory/v1/users/{key}/signOut", post(sign_out))
            .route("/admin/directory/v1/groups", get(list_groups))
            .route("/admin/directory/v1/groups/{key}/members", get(list_members).post(insert_member))
            .route("/admin/directory/v1/groups/{key}/members/{member}", delete(delete_member))
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
        self.org().people.iter().find(|p| p.is_admin).map(|p| p.email.clone()).unwrap_or_default()
    }

    /// The account as it is now (writes applied).
    pub fn org(&self) -> GoogleOrg {
        self.shared.org.read().map(|o| o.clone()).unwrap_or_else(|e| e.into_inner().clone())
    }

    /// (method, path below the API prefix, JSON body) of every write, in order.
    pub fn writes(&self) -> Vec<(String, String, String)> {
        self.shared.writes.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// Whom `signOut` signed out, in order.
    pub fn signed_out(&self) -> Vec<String> {
        self.shared.signed_out.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// The next `n` writes are answered 503 `backendError` (and not applied).
    pub fn fail_next_writes(&self, n: usize) {
        self.shared.failing_writes.store(n, Ordering::SeqCst);
    }

    /// The scopes of every token issued, in order.
    pub fn scopes_asked(&self) -> Vec<String> {
        self.shared.scopes_asked.lock().map(|w| w.clone()).unwrap_or_default()
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
    if let Ok(mut asked) = s.scopes_asked.lock() {
        asked.push(claims.scope.clone());
    }
    let scopes: Vec<&str> = claims.scope.split_whitespace().collect();
    if scopes.is_empty() || !scopes.iter().all(|sc| ALL_SCOPES.contains(sc)) {
        return oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.");
    }
    if !scopes.iter().all(|sc| s.config.delegated.iter().any(|d| d == sc)) {
        let body = json!({"error": "unauthorized_client", "error_description": "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested."});
        return (StatusCode::UNAUTHORIZED, Json(body)).into_response();
    }
    let known = s.org.read().map(|o| o.people.iter().any(|p| p.email.eq_ignore_ascii_case(&claims.sub)));
    if !known.unwrap_or(false) {
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

/// The checks every API request passes: a live token with one of `scopes`, an admin subject,
/// faults. The refusal, when the request may not pass.
fn admit(s: &Shared, headers: &HeaderMap, path: &str, scopes_needed: &[&str]) -> Option<Response> {
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
    let is_admin = s
        .org
        .read()
        .map(|o| o.people.iter().any(|p| p.is_admin && p.email.eq_ignore_ascii_case(&subject)))
        .unwrap_or(false);
    if forbidden || !is_admin {
        return Some(google_error(StatusCode::FORBIDDEN, "forbidden", "Not Authorized to access this resource/api"));
    }
    if !scopes.split_whitespace().any(|sc| scopes_needed.contains(&sc)) {
        return Some(google_error(
            StatusCode::FORBIDDEN,
            "insufficientPermissions",
            "Request had insufficient authentication scopes.",
        ));
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
    if let Some(r) = admit(&s, &headers, "/users", &[USER_SCOPE, USER_WRITE_SCOPE]).or_else(|| customer_missing(&q)) {
        return r;
    }
    let org = &*s.org.read().unwrap_or_else(|e| e.into_inner());
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
    let test_alias = test_alias(org, &p.email);
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
        o.insert("suspensionReason".into(), json!(if p.abuse { "ABUSE" } else { "ADMIN" }));
    }
    user
}

async fn list_groups(State(s): State<Arc<Shared>>, headers: HeaderMap, Query(q): Query<ListQuery>) -> Response {
    log(&s, "GET", "/groups", &query_text(&q));
    if let Some(r) = admit(&s, &headers, "/groups", &[GROUP_SCOPE]).or_else(|| customer_missing(&q)) {
        return r;
    }
    let org = &*s.org.read().unwrap_or_else(|e| e.into_inner());
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
    if let Some(r) = admit(&s, &headers, &path, &[GROUP_SCOPE, MEMBER_SCOPE]) {
        return r;
    }
    let org = &*s.org.read().unwrap_or_else(|e| e.into_inner());
    let Some(group) = org.groups.iter().find(|g| GoogleOrg::group_id(&g.email) == key || g.email == key) else {
        return google_error(StatusCode::NOT_FOUND, "notFound", "Resource Not Found: groupKey");
    };
    let items = group
        .members
        .iter()
        .enumerate()
        .map(|(i, email)| member_json(org, &key, email, if i == 0 { "OWNER" } else { "MEMBER" }))
        .collect();
    page(&s, "members", "members", items, &q, 200, 200)
}

/// The alias Google gives every user of a domain (`ana@acme.example.test-google-a.com`).
fn test_alias(org: &GoogleOrg, email: &str) -> String {
    let local = email.split('@').next().unwrap_or_default();
    format!("{local}@{}.test-google-a.com", org.domain)
}

/// A person by `userKey`: primary email, alias or id (case-insensitive email).
fn person_index(org: &GoogleOrg, key: &str) -> Option<usize> {
    org.people.iter().position(|p| {
        p.email.eq_ignore_ascii_case(key)
            || GoogleOrg::user_id(&p.email) == key
            || test_alias(org, &p.email).eq_ignore_ascii_case(key)
    })
}

fn group_index(org: &GoogleOrg, key: &str) -> Option<usize> {
    org.groups.iter().position(|g| g.email.eq_ignore_ascii_case(key) || GoogleOrg::group_id(&g.email) == key)
}

/// Logs a write; `Some` is the 503 a test asked for instead of applying it.
fn record_write(s: &Shared, method: &str, path: &str, body: &str) -> Option<Response> {
    log(s, method, path, "");
    if let Ok(mut w) = s.writes.lock() {
        w.push((method.to_string(), path.to_string(), body.to_string()));
    }
    let failing = s.failing_writes.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    failing.then(|| google_error(StatusCode::SERVICE_UNAVAILABLE, "backendError", "Backend Error"))
}

/// `GET /users/{userKey}`: one user, as the list shows them.
async fn get_user(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(key): Path<String>) -> Response {
    let path = format!("/users/{key}");
    log(&s, "GET", &path, "");
    if let Some(r) = admit(&s, &headers, &path, &[USER_SCOPE, USER_WRITE_SCOPE]) {
        return r;
    }
    let org = s.org.read().unwrap_or_else(|e| e.into_inner());
    match person_index(&org, &key) {
        Some(i) => Json(user_json(&org, &org.people[i])).into_response(),
        None => google_error(StatusCode::NOT_FOUND, "notFound", "Resource Not Found: userKey"),
    }
}

/// `PUT /users/{userKey}`: `suspended` is the field the actions change; 412 when Google itself
/// suspended the person.
async fn update_user(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let path = format!("/users/{key}");
    if let Some(r) = record_write(&s, "PUT", &path, &String::from_utf8_lossy(&body)) {
        return r;
    }
    if let Some(r) = admit(&s, &headers, &path, &[USER_WRITE_SCOPE]) {
        return r;
    }
    let Ok(change) = serde_json::from_slice::<Value>(&body) else {
        return google_error(StatusCode::BAD_REQUEST, "parseError", "Parse Error");
    };
    let mut org = s.org.write().unwrap_or_else(|e| e.into_inner());
    let Some(i) = person_index(&org, &key) else {
        return google_error(StatusCode::NOT_FOUND, "notFound", "Resource Not Found: userKey");
    };
    if let Some(suspended) = change.get("suspended").and_then(Value::as_bool) {
        let person = &mut org.people[i];
        if !suspended && person.suspended && person.abuse {
            return google_error(
                StatusCode::PRECONDITION_FAILED,
                "conditionNotMet",
                "Precondition Failed: the user was suspended by Google for abuse and cannot be unsuspended by an administrator.",
            );
        }
        person.suspended = suspended;
        if !suspended {
            person.abuse = false;
        }
    }
    Json(user_json(&org, &org.people[i])).into_response()
}

/// `POST /users/{userKey}/signOut`: ends the person's web and device sessions; no body back.
async fn sign_out(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(key): Path<String>) -> Response {
    let path = format!("/users/{key}/signOut");
    if let Some(r) = record_write(&s, "POST", &path, "") {
        return r;
    }
    if let Some(r) = admit(&s, &headers, &path, &[SECURITY_SCOPE]) {
        return r;
    }
    let org = s.org.read().unwrap_or_else(|e| e.into_inner());
    let Some(i) = person_index(&org, &key) else {
        return google_error(StatusCode::NOT_FOUND, "notFound", "Resource Not Found: userKey");
    };
    if let Ok(mut out) = s.signed_out.lock() {
        out.push(org.people[i].email.clone());
    }
    StatusCode::NO_CONTENT.into_response()
}

/// A member as `members.list` and `members.insert` show it.
fn member_json(org: &GoogleOrg, group_key: &str, email: &str, role: &str) -> Value {
    let person = org.people.iter().find(|p| p.email.eq_ignore_ascii_case(email));
    let id = GoogleOrg::user_id(email);
    json!({
        "kind": "admin#directory#member",
        "etag": format!("\"sim/{group_key}/{id}\""),
        "id": id,
        "email": email,
        "role": role,
        "type": "USER",
        "status": if person.is_some_and(|p| p.suspended) { "SUSPENDED" } else { "ACTIVE" },
    })
}

/// `POST /groups/{groupKey}/members` `{"email", "role"}`: 409 when already a member.
async fn insert_member(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let path = format!("/groups/{key}/members");
    if let Some(r) = record_write(&s, "POST", &path, &String::from_utf8_lossy(&body)) {
        return r;
    }
    if let Some(r) = admit(&s, &headers, &path, &[MEMBER_SCOPE]) {
        return r;
    }
    let email = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["email"].as_str().map(str::to_string));
    let Some(email) = email.filter(|e| e.contains('@')) else {
        return google_error(StatusCode::BAD_REQUEST, "required", "Missing required field: member");
    };
    let mut org = s.org.write().unwrap_or_else(|e| e.into_inner());
    let Some(g) = group_index(&org, &key) else {
        return google_error(StatusCode::NOT_FOUND, "notFound", "Resource Not Found: groupKey");
    };
    let email = match person_index(&org, &email) {
        Some(i) => org.people[i].email.clone(),
        None => email,
    };
    if org.groups[g].members.iter().any(|m| m.eq_ignore_ascii_case(&email)) {
        return google_error(StatusCode::CONFLICT, "duplicate", "Member already exists.");
    }
    org.groups[g].members.push(email.clone());
    Json(member_json(&org, &key, &email, "MEMBER")).into_response()
}

/// `DELETE /groups/{groupKey}/members/{memberKey}`: 404 `memberKey` when not a member.
async fn delete_member(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Path((key, member)): Path<(String, String)>,
) -> Response {
    let path = format!("/groups/{key}/members/{member}");
    if let Some(r) = record_write(&s, "DELETE", &path, "") {
        return r;
    }
    if let Some(r) = admit(&s, &headers, &path, &[MEMBER_SCOPE]) {
        return r;
    }
    let mut org = s.org.write().unwrap_or_else(|e| e.into_inner());
    let Some(g) = group_index(&org, &key) else {
        return google_error(StatusCode::NOT_FOUND, "notFound", "Resource Not Found: groupKey");
    };
    let email = person_index(&org, &member).map(|i| org.people[i].email.clone()).unwrap_or(member);
    let before = org.groups[g].members.len();
    org.groups[g].members.retain(|m| !m.eq_ignore_ascii_case(&email));
    if org.groups[g].members.len() == before {
        return google_error(StatusCode::NOT_FOUND, "notFound", "Resource Not Found: memberKey");
    }
    StatusCode::NO_CONTENT.into_response()
}

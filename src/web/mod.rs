//! `jcsql web`: boards as web pages (DESIGN §7b). One view per page kind ([`pages`]), the
//! markup apart ([`templates`]), the rows as SQL in the engine ([`grid`]), and every check a
//! request passes in one place here: the `Host`, the session cookie (the one-time token opens
//! it) and, for each POST, the CSRF token and the origin ([`Posted`]).

pub mod grid;
pub mod pages;
pub mod templates;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::engine::Engine;
use crate::error::Result;
use crate::listen::{TlsFiles, random_token, require_tls_off_loopback, same_secret, tls_acceptor};

pub const DEFAULT_PORT: u16 = 8080;
const COOKIE: &str = "jcsql_session";
/// Sessions kept at most (each opening of the token URL starts one); the oldest go first.
const MAX_SESSIONS: usize = 256;

#[derive(Debug, Clone)]
pub struct WebOptions {
    pub host: String,
    pub port: u16,
    /// Show no actions and refuse their POSTs.
    pub read_only: bool,
    /// The one-time token of the first URL (`None`: a random one).
    pub token: Option<String>,
    pub tls: Option<TlsFiles>,
}

/// What every request shares.
pub struct Site {
    pub engine: Arc<Engine>,
    pub read_only: bool,
    token: String,
    /// The host the server was bound to; a request naming another (not loopback) is refused.
    host: String,
    sessions: Mutex<VecDeque<String>>,
    csrf_key: ring::hmac::Key,
    /// Add field's choices per board, computed once (they ask many queries) until data changes.
    joinable: Mutex<HashMap<String, Vec<grid::JoinableField>>>,
    /// One run of every board at a time: a run watches the connections' fetches for failures,
    /// and two at once would hand the watch back in the wrong order.
    pub(crate) board_runs: tokio::sync::Mutex<()>,
    /// Served over TLS: the cookie is `Secure`.
    tls: bool,
}

/// The session a request belongs to (set by [`guard`]).
#[derive(Debug, Clone)]
pub struct Session(pub String);

impl Site {
    /// The CSRF token of a session: bound to it, unguessable without the server's key.
    pub fn csrf_token(&self, session: &Session) -> String {
        let tag = ring::hmac::sign(&self.csrf_key, session.0.as_bytes());
        tag.as_ref()[..20].iter().map(|b| format!("{b:02x}")).collect()
    }

    fn open_session(&self) -> String {
        let id = random_token();
        if let Ok(mut s) = self.sessions.lock() {
            if s.len() >= MAX_SESSIONS {
                s.pop_front();
            }
            s.push_back(id.clone());
        }
        id
    }

    fn has_session(&self, id: &str) -> bool {
        self.sessions.lock().is_ok_and(|s| s.iter().any(|k| same_secret(k, id)))
    }

    /// Data changed (a refresh, an applied plan, a saved board): Add field is computed again.
    pub fn data_changed(&self) {
        if let Ok(mut j) = self.joinable.lock() {
            j.clear();
        }
    }

    pub fn cached_joinable(&self, board: &str) -> Option<Vec<grid::JoinableField>> {
        self.joinable.lock().ok().and_then(|j| j.get(board).cloned())
    }

    pub fn keep_joinable(&self, board: &str, fields: Vec<grid::JoinableField>) {
        if let Ok(mut j) = self.joinable.lock() {
            j.insert(board.to_string(), fields);
        }
    }
}

/// A page that says in one sentence why a request was refused or failed.
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl PageError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError { status, message: message.into() }
    }
    pub fn bad(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn forbidden(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = templates::error_page(self.status, &self.message);
        (self.status, axum::response::Html(page.into_string())).into_response()
    }
}

/// A bound, not yet serving, web page.
pub struct WebServer {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    site: Arc<Site>,
}

impl WebServer {
    pub async fn bind(engine: Arc<Engine>, options: WebOptions) -> Result<WebServer> {
        require_tls_off_loopback("serving the web page", &options.host, options.tls.as_ref())?;
        let tls = options.tls.as_ref().map(tls_acceptor).transpose()?;
        let listener = crate::listen::bind(&options.host, options.port).await?;
        let token = options.token.filter(|t| !t.trim().is_empty()).unwrap_or_else(random_token);
        let key_bytes = crate::listen::random_bytes::<32>();
        let site = Site {
            engine,
            read_only: options.read_only,
            token: token.trim().to_string(),
            host: options.host.clone(),
            sessions: Mutex::default(),
            csrf_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key_bytes),
            joinable: Mutex::default(),
            board_runs: tokio::sync::Mutex::default(),
            tls: tls.is_some(),
        };
        Ok(WebServer { listener, tls, site: Arc::new(site) })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        crate::listen::local_addr(&self.listener)
    }

    /// `http://HOST:PORT/?token=T`: the one line to open (the token is in no page or log).
    pub fn url(&self) -> Result<String> {
        let addr = self.local_addr()?;
        let host = crate::listen::url_host(&addr);
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Ok(format!("{scheme}://{host}:{}/?token={}", addr.port(), self.site.token))
    }

    pub fn site(&self) -> Arc<Site> {
        self.site.clone()
    }

    /// Serves until the task is dropped.
    pub async fn run(self) {
        let app = router(self.site.clone());
        let result = match self.tls {
            None => axum::serve(self.listener, app).await,
            Some(acceptor) => axum::serve(TlsListener { listener: self.listener, acceptor }, app).await,
        };
        if let Err(e) = result {
            tracing::warn!("the web page stopped: {e}");
        }
    }
}

/// Every route, behind [`guard`] and the security headers.
pub fn router(site: Arc<Site>) -> Router {
    let headers = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // `no-referrer` would make browsers send `Origin: null` with the page's own forms.
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    let mut app = Router::new()
        .route("/", get(pages::index))
        .route("/boards/{name}", get(pages::board))
        .route("/boards/{name}/refresh", axum::routing::post(pages::refresh_board))
        .route("/boards/{name}/save", axum::routing::post(pages::save_board))
        .route("/tables/{name}", get(pages::table))
        .route("/tables/{name}/refresh", axum::routing::post(pages::refresh_table))
        .route("/actions", get(pages::actions))
        .route("/actions/{name}", get(pages::action_form).post(pages::plan_action))
        .route("/plans/{id}", get(pages::plan).post(pages::confirm_plan))
        .route("/sql", get(pages::sql))
        .route("/static/jcsql.css", get(pages::stylesheet))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(site.clone(), guard))
        .with_state(site);
    for (name, value) in headers {
        app = app.layer(SetResponseHeaderLayer::overriding(name, HeaderValue::from_static(value)));
    }
    app
}

/// The host part of a `Host` header (`[::1]:8080` → `::1`).
fn host_name(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    value.rsplit_once(':').map_or(value, |(h, _)| h)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.split(';').find_map(|pair| {
            let (k, val) = pair.trim().split_once('=')?;
            (k == name).then(|| val.to_string())
        })
    })
}

/// Every request: a `Host` that is the bound host or a loopback name (no DNS rebinding), then
/// the one-time token (which opens a session and is dropped from the address) or the session's
/// cookie. Without either: 403 and no data.
async fn guard(State(site): State<Arc<Site>>, mut request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(host_name).unwrap_or("");
    if host.is_empty() || !(crate::listen::is_loopback(host) || host.eq_ignore_ascii_case(&site.host)) {
        return PageError::forbidden(format!(
            "this page answers only to the address jcsql web printed ({}) or a loopback name",
            site.host
        ))
        .into_response();
    }
    let token = request
        .uri()
        .query()
        .and_then(|q| form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "token").map(|(_, v)| v.into_owned()));
    if let Some(token) = token {
        if request.method() != axum::http::Method::GET || !same_secret(&token, &site.token) {
            return PageError::forbidden("this link's token is not the one jcsql web printed; open the URL it printed")
                .into_response();
        }
        let session = site.open_session();
        let mut response = Redirect::to("/").into_response();
        let secure = if site.tls { "; Secure" } else { "" };
        let value = format!("{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/{secure}");
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
        return response;
    }
    match cookie(request.headers(), COOKIE).filter(|s| site.has_session(s)) {
        Some(session) => {
            request.extensions_mut().insert(Session(session));
            next.run(request).await
        }
        None => {
            PageError::forbidden("open the URL jcsql web printed (with its token) to use this page").into_response()
        }
    }
}

/// A POSTed form that passed the CSRF check: the token bound to the session is among its
/// fields, and the browser does not say the form came from another site.
pub struct Posted {
    pub session: Session,
    pub fields: Vec<(String, String)>,
}

impl Posted {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl FromRequest<Arc<Site>> for Posted {
    type Rejection = PageError;

    async fn from_request(request: Request, site: &Arc<Site>) -> std::result::Result<Self, Self::Rejection> {
        let refused = || {
            PageError::forbidden(
                "this form was refused: it did not come from this page; reload the page and submit it again",
            )
        };
        let headers = request.headers();
        let session = request.extensions().get::<Session>().cloned().ok_or_else(refused)?;
        if let Some(site_header) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
            && site_header != "same-origin"
        {
            return Err(refused());
        }
        if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
            let same = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host);
            if !same {
                return Err(refused());
            }
        }
        let body = axum::body::to_bytes(request.into_body(), 1 << 20)
            .await
            .map_err(|_| PageError::bad("the form is too large (over 1 MiB)"))?;
        let fields: Vec<(String, String)> =
            form_urlencoded::parse(&body).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let sent = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or("");
        if !same_secret(sent, &site.csrf_token(&session)) {
            return Err(refused());
        }
        Ok(Posted { session, fields })
    }
}

/// TLS on an accepted connection before HTTP sees it; a failed handshake drops that connection
/// only.
struct TlsListener {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((socket, peer)) = self.listener.accept().await else {
                // Out of file descriptors, say: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let handshake = tokio::time::timeout(Duration::from_secs(10), self.acceptor.accept(socket));
            if let Ok(Ok(stream)) = handshake.await {
                return (stream, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

//! `jcsql serve`: the engine's catalog over the PostgreSQL wire protocol, read-only, for psql,
//! Metabase, Grafana, DBeaver and any other Postgres client.
//!
//! The protocol, `pg_catalog` and Arrow → Postgres encoding come from `datafusion-postgres`
//! (over `pgwire`); this module adds what jcsql needs on top: one user with a SCRAM-SHA-256
//! password, TLS required off loopback, the [`guard::ReadOnlyGuard`], and errors with SQLSTATEs
//! and jcsql's hints. Every connection shares the one engine, so a table refreshed for one
//! client is fresh for all (the providers refresh single-flight), while each connection keeps
//! its own settings (`statement_timeout`, `application_name`, time zone) in its session.

pub mod guard;
pub mod settings;

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, Int32Array, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{ColumnarValue, ScalarUDF, Volatility, create_udf};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion_postgres::auth::AuthManager;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::{Grant, Permission, ResourceType, Role, User};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::auth::sasl::SASLAuthStartupHandler;
use datafusion_postgres::pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use datafusion_postgres::pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use datafusion_postgres::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::{ClientInfo, ConnectionManager, ErrorHandler, PgWireServerHandlers};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::tokio::process_socket;
use datafusion_postgres::pgwire::tokio::tokio_rustls::TlsAcceptor;
use datafusion_postgres::{DfSessionService, QueryHook};
use tokio::net::TcpListener;

use crate::engine::Engine;
use crate::error::{JcsqlError, Result};
pub use crate::listen::TlsFiles;
use crate::listen::{random_bytes, require_tls_off_loopback, tls_acceptor};

/// The one user name clients log in with.
pub const USER: &str = "jcsql";
/// The database name in the URL (any name is accepted; there is one catalog).
pub const DATABASE: &str = "jcsql";
pub const DEFAULT_PORT: u16 = 5433;
/// Where a generated password is kept, under `JCSQL_HOME`.
pub const PASSWORD_FILE: &str = "serve-password";
const SCRAM_ITERATIONS: usize = 4096;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    pub password: String,
    pub tls: Option<TlsFiles>,
}

/// A bound, not yet serving, Postgres endpoint.
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
}

/// What every connection shares: the engine's session behind datafusion-postgres's handlers.
struct Shared {
    ctx: SessionContext,
    session: Arc<DfSessionService>,
    password: Arc<ScramPassword>,
    parameters: Arc<DefaultServerParameterProvider>,
    connections: Arc<ConnectionManager>,
}

impl Server {
    /// Binds the address (port 0: any free port) and adds `pg_catalog` to the engine's catalog.
    pub async fn bind(engine: &Engine, options: ServeOptions) -> Result<Server> {
        require_tls_off_loopback("serving", &options.host, options.tls.as_ref())?;
        if options.password.is_empty() {
            return Err(JcsqlError::Config("the serve password is empty; put one in the password file".into()));
        }
        let tls = options.tls.as_ref().map(tls_acceptor).transpose()?;
        let listener = crate::listen::bind(&options.host, options.port).await?;

        let auth = Arc::new(AuthManager::new());
        add_read_only_user(&auth).await?;
        setup_pg_catalog(engine.context(), engine.catalog_name(), auth.as_ref().clone())
            .map_err(|e| JcsqlError::Config(format!("cannot set up pg_catalog: {e}")))?;
        // Everyone logs in as `jcsql`, who owns every table (pg_catalog's own answer is `postgres`).
        engine.context().register_udf(constant_text_udf("session_user", &[], USER));
        engine.context().register_udf(constant_text_udf("pg_get_userbyid", &[DataType::Int32], USER));
        engine.context().register_udf(encoding_name_udf());
        for udf in settings::fallback_functions() {
            engine.context().register_udf(udf);
        }
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(guard::ReadOnlyGuard),
            Arc::new(settings::SettingsHook),
            Arc::new(CursorStatementHook),
            Arc::new(SetShowHook),
            Arc::new(TransactionStatementHook),
        ];
        let session = Arc::new(DfSessionService::new_with_hooks(Arc::new(engine.context().clone()), hooks));
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.default_transaction_read_only = true;
        parameters.is_superuser = false;
        parameters.server_version = settings::SERVER_VERSION.into();
        let shared = Shared {
            ctx: engine.context().clone(),
            session,
            password: Arc::new(ScramPassword::new(&options.password)),
            parameters: Arc::new(parameters),
            connections: Arc::new(ConnectionManager::new()),
        };
        Ok(Server { listener, tls, shared: Arc::new(shared) })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        crate::listen::local_addr(&self.listener)
    }

    /// `postgres://jcsql@HOST:PORT/jcsql`, the line a client needs (the password is asked for).
    pub fn url(&self) -> Result<String> {
        let addr = self.local_addr()?;
        let host = crate::listen::url_host(&addr);
        Ok(format!("postgres://{USER}@{host}:{}/{DATABASE}", addr.port()))
    }

    /// Serves until the task is dropped; each connection runs on its own task.
    pub async fn run(self) {
        loop {
            let (socket, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            };
            let _ = socket.set_nodelay(true);
            let handlers = ConnectionHandlers::new(self.shared.clone());
            let tls = self.tls.clone();
            tokio::spawn(async move {
                if let Err(e) = process_socket(socket, tls, handlers).await {
                    tracing::debug!("connection from {peer} ended: {e}");
                }
            });
        }
    }
}

/// A function that answers `value` for every row.
fn constant_text_udf(name: &str, args: &[DataType], value: &'static str) -> ScalarUDF {
    let answer = move |args: &[ColumnarValue]| {
        let rows = args.iter().find_map(|a| match a {
            ColumnarValue::Array(a) => Some(a.len()),
            ColumnarValue::Scalar(_) => None,
        });
        Ok(match rows {
            Some(rows) => ColumnarValue::Array(Arc::new(StringArray::from(vec![value; rows]))),
            None => ColumnarValue::Scalar(ScalarValue::Utf8(Some(value.to_string()))),
        })
    };
    create_udf(name, args.to_vec(), DataType::Utf8, Volatility::Stable, Arc::new(answer))
}

/// `pg_encoding_to_char`: Postgres's names (`UTF8`, as `SHOW server_encoding` says; pg_catalog's
/// own answer is `UTF-8`, which `\l` would show).
fn encoding_name_udf() -> ScalarUDF {
    let answer = |args: &[ColumnarValue]| {
        let args = ColumnarValue::values_to_arrays(args)?;
        let codes = args.first().and_then(|a| a.as_any().downcast_ref::<Int32Array>());
        let names: StringArray = match codes {
            Some(codes) => codes
                .iter()
                .map(|c| match c {
                    Some(0) => Some("SQL_ASCII"),
                    Some(6) => Some("UTF8"),
                    _ => None,
                })
                .collect(),
            None => StringArray::new_null(args.first().map_or(0, |a| a.len())),
        };
        Ok(ColumnarValue::Array(Arc::new(names)))
    };
    create_udf("pg_encoding_to_char", vec![DataType::Int32], DataType::Utf8, Volatility::Immutable, Arc::new(answer))
}

async fn add_read_only_user(auth: &AuthManager) -> Result<()> {
    let role = Role {
        name: USER.into(),
        is_superuser: false,
        can_login: true,
        can_create_db: false,
        can_create_role: false,
        can_create_user: false,
        can_replication: false,
        grants: vec![Grant {
            permission: Permission::Select,
            resource: ResourceType::All,
            granted_by: "jcsql".into(),
            with_grant_option: false,
        }],
        inherited_roles: vec![],
    };
    let user = User {
        username: USER.into(),
        // Authentication is SCRAM against ScramPassword; this table only feeds pg_roles.
        password_hash: String::new(),
        roles: vec![USER.into()],
        is_superuser: false,
        can_login: true,
        connection_limit: None,
    };
    let failed = |e: PgWireError| JcsqlError::Config(format!("cannot set up the serve user: {e}"));
    auth.add_role(role).await.map_err(failed)?;
    auth.add_user(user).await.map_err(failed)
}

/// The password as SCRAM keeps it: salted and hashed once, never in clear after start.
#[derive(Debug)]
struct ScramPassword {
    salt: Vec<u8>,
    salted: Vec<u8>,
}

impl ScramPassword {
    fn new(password: &str) -> Self {
        let salt = random_bytes::<16>().to_vec();
        let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
        ScramPassword { salt, salted }
    }
}

#[async_trait]
impl AuthSource for ScramPassword {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        if login.user() != Some(USER) {
            let user = login.user().unwrap_or("");
            return Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28P01".into(),
                format!("password authentication failed for user \"{user}\" (jcsql serve has one user: {USER})"),
            ))));
        }
        Ok(Password::new(Some(self.salt.clone()), self.salted.clone()))
    }
}

/// One connection's handlers: the SCRAM exchange holds per-connection state, the rest is shared.
struct ConnectionHandlers {
    shared: Arc<Shared>,
    startup: Arc<SASLAuthStartupHandler<DefaultServerParameterProvider>>,
}

impl ConnectionHandlers {
    fn new(shared: Arc<Shared>) -> Self {
        let mut scram = ScramAuth::new(shared.password.clone());
        scram.set_iterations(SCRAM_ITERATIONS);
        let startup = SASLAuthStartupHandler::new(shared.parameters.clone())
            .with_scram(scram)
            .with_connection_manager(shared.connections.clone());
        ConnectionHandlers { shared, startup: Arc::new(startup) }
    }
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.shared.session.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.shared.session.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(ExplainingErrors { ctx: self.shared.ctx.clone() })
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::new(DefaultCancelHandler::new(self.shared.connections.clone()))
    }
}

/// DataFusion's errors reach clients with a SQLSTATE and jcsql's hint (did you mean …).
struct ExplainingErrors {
    ctx: SessionContext,
}

impl ErrorHandler for ExplainingErrors {
    fn on_error<C: ClientInfo>(&self, _client: &C, error: &mut PgWireError) {
        let info = match error {
            PgWireError::ApiError(inner) => {
                if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                    let message = crate::explain::explain(df, &crate::explain::known_tables(&self.ctx));
                    // The prompt's meta-command means nothing to a Postgres client.
                    let message = message.replace("`.tables`", "`\\dt *.*`");
                    ErrorInfo::new("ERROR".into(), guard::sqlstate(df).into(), message)
                } else if let Some(syntax) = inner.downcast_ref::<ParserError>() {
                    let message = syntax.to_string();
                    let message = message.strip_prefix("sql parser error: ").unwrap_or(&message);
                    ErrorInfo::new("ERROR".into(), "42601".into(), format!("syntax error: {message}"))
                } else {
                    return;
                }
            }
            PgWireError::InvalidPassword(_) => ErrorInfo::new(
                "FATAL".into(),
                "28P01".into(),
                format!(
                    "password authentication failed for user \"{USER}\" (the password is the one `jcsql serve` was started with)"
                ),
            ),
            _ => return,
        };
        *error = PgWireError::UserError(Box::new(info));
    }
}

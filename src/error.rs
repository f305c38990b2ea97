//! jcsql's errors. Each message is one line that says what happened and what to do next; they
//! travel through DataFusion as `DataFusionError::External` and are recovered by [`user_message`].

use datafusion::error::DataFusionError;

pub type Result<T, E = JcsqlError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum JcsqlError {
    #[error(
        "JumpCloud rejected the API key (401: {message}). Check JUMPCLOUD_API_KEY, or run `jcsql connect jumpcloud` to store a new key"
    )]
    Unauthorized { message: String },

    #[error(
        "JumpCloud refused {what} (403: {message}). The key's administrator needs API access and a role that can read it (Admin Portal → Administrators)"
    )]
    Forbidden { what: String, message: String },

    #[error("JumpCloud answered {status} for {what}: {message}")]
    Http { status: u16, what: String, message: String },

    #[error(
        "JumpCloud kept answering {status} for {what} after {attempts} attempts ({message}); try again later, or lower the load with --max-in-flight"
    )]
    RetriesExhausted { status: u16, what: String, attempts: u32, message: String },

    #[error("cannot reach JumpCloud at {base_url} ({reason}); check the network or JUMPCLOUD_API_URL")]
    Network { base_url: String, reason: String },

    #[error(
        "JumpCloud sent a response jcsql cannot read for {what} ({reason}); retry with `jcsql sync`, and report it if it persists"
    )]
    Decode { what: String, reason: String },

    #[error(
        "the fetch of {table} was incomplete: {rows} rows, but JumpCloud counted {expected}; the previous snapshot is kept, retry with `jcsql sync {table}`"
    )]
    Incomplete { table: String, rows: u64, expected: u64 },

    #[error(
        "not connected to JumpCloud: set JUMPCLOUD_API_KEY, run `jcsql connect jumpcloud`, or try the built-in demo org with `jcsql demo`"
    )]
    NotConnected,

    #[error(
        "{table} has no data yet and jcsql is offline; run without --offline (or `jcsql sync {table}`) to fetch it"
    )]
    OfflineNoData { table: String },

    #[error("unknown table {name}; the JumpCloud tables are: {known}")]
    UnknownTable { name: String, known: String },

    #[error("{action} is disabled; enable it with `jcsql permissions enable {action}`")]
    ActionDisabled { action: String },

    #[error("{action} is refused: jcsql is read-only; allow actions with `jcsql permissions disable read_only`")]
    ReadOnly { action: String },

    #[error(
        "actions change one org at a time, and this statement reads {reads}; run it on one org's schema ({schemas})"
    )]
    ActionsNeedOneOrg { reads: String, schemas: String },

    #[error("unknown action {name}; the actions are: {known}")]
    UnknownAction { name: String, known: String },

    #[error("{0}")]
    Board(#[from] BoardError),

    #[error("{0}")]
    Source(#[from] SourceError),

    #[error("{0}")]
    Google(#[from] GoogleError),

    #[error("{0}")]
    Config(String),

    #[error("{path}: {reason}")]
    File { path: String, reason: String },

    #[error("cache: {0}")]
    Cache(String),
}

/// Why a board cannot be saved, loaded or found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BoardError {
    #[error("{name:?} cannot name a board: use lowercase letters, digits and _ (e.g. stale_devices)")]
    BadName { name: String },
    #[error("a board holds exactly one query; this file has {count}")]
    NotOneQuery { count: usize },
    #[error("a board must be a query (SELECT or WITH …), not a statement that changes something")]
    NotAQuery,
    #[error("boards are read-only, and this one calls the action {action}(); run actions from the prompt or with -c")]
    CallsAction { action: String },
    /// The query does not plan; the message is already explained (nearest names and all).
    #[error("{0}")]
    Query(String),
    #[error("{path} line {line}: {error}")]
    InFile { path: String, line: usize, error: Box<BoardError> },
    #[error("no board named {name}; the boards are: {known}")]
    Unknown { name: String, known: String },
    #[error("board {name} not saved: {error}")]
    NotSaved { name: String, error: Box<BoardError> },
    #[error("board {name} was saved but does not load: {error}")]
    SavedButBroken { name: String, error: String },
    #[error("no boards folder is set")]
    NoFolder,
    #[error("{0}")]
    Io(String),
}

/// Why Google Workspace cannot be read. None of these quotes the key file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GoogleError {
    #[error(
        "cannot use the Google service-account key file {path}: {reason}; download a JSON key for the service account (Google Cloud console → IAM → Service accounts → Keys) and run `jcsql connect google --service-account FILE --subject ADMIN_EMAIL`"
    )]
    KeyFile { path: String, reason: String },
    #[error(
        "Google refused the service account's token for {subject} ({status} {error}: {description}); the subject must be an administrator of the domain and the service account needs domain-wide delegation for the read-only directory scopes (Admin console → Security → API controls)"
    )]
    TokenRefused { subject: String, status: u16, error: String, description: String },
    #[error(
        "Google refused {what} (403: {message}); the subject needs an admin role that can read users and groups, and the service account domain-wide delegation for the read-only directory scopes"
    )]
    Forbidden { what: String, message: String },
    #[error("Google answered {status} for {what}: {message}")]
    Http { status: u16, what: String, message: String },
    #[error(
        "Google refused a token with the scopes the enabled Google actions need: delegate {missing} to the service account {account} (Admin console → Security → API controls → Domain-wide delegation), or disable the Google actions with `jcsql permissions disable ACTION`"
    )]
    ScopeNotDelegated { missing: String, account: String },
    #[error(
        "Google kept answering {status} for {what} after {attempts} attempts ({message}); try again later, or lower the load with --max-in-flight"
    )]
    RetriesExhausted { status: u16, what: String, attempts: u32, message: String },
    #[error("cannot reach Google at {url} ({reason}); check the network, or GOOGLE_API_URL")]
    Network { url: String, reason: String },
    #[error(
        "Google sent a response jcsql cannot read for {what} ({reason}); retry with `jcsql sync google.users`, and report it if it persists"
    )]
    Decode { what: String, reason: String },
}

/// Why another tool's export cannot be registered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SourceError {
    #[error("{name:?} cannot name a source: use lowercase letters, digits and _ (e.g. hr or okta_export)")]
    BadName { name: String },
    #[error("{name} is taken by jcsql itself; pick another name")]
    Reserved { name: String },
    #[error("cannot read {path} ({reason})")]
    Unreadable { path: String, reason: String },
    #[error("{path} is not a CSV, JSON, NDJSON, Parquet or Excel file")]
    UnknownFormat { path: String },
    #[error("{path} holds no CSV, JSON, NDJSON, Parquet or Excel files")]
    EmptyFolder { path: String },
    #[error("{path} is empty (no rows, no columns); export it again with its header row")]
    Empty { path: String },
    #[error(
        "{path} is {mib} MiB of JSON, more than the {max_mib} MiB jcsql loads into memory (JCSQL_MAX_JSON_MB); convert it to Parquet once, e.g. duckdb -c \"COPY (SELECT * FROM read_json_auto('{path}')) TO '{path}.parquet'\", and connect the Parquet file"
    )]
    TooLarge { path: String, mib: u64, max_mib: u64 },
    #[error("{path} is not valid JSON ({reason})")]
    BadJson { path: String, reason: String },
    #[error("{path} must be an array of objects, one per row")]
    NotRows { path: String },
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{}", join_errors(.0))]
    Several(Vec<SourceError>),
    #[error("no source named {name}; the sources are: {known}")]
    Unknown { name: String, known: String },
    #[error("source {name} not connected: {error}")]
    NotConnected { name: String, error: Box<SourceError> },
}

impl From<JcsqlError> for DataFusionError {
    fn from(e: JcsqlError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

/// The one line a person sees for an error that crossed DataFusion: our own message when the
/// root cause is ours, DataFusion's otherwise, without backtraces or nested prefixes.
pub fn user_message(e: &DataFusionError) -> String {
    let root = e.find_root();
    let text = match root {
        DataFusionError::External(inner) => match inner.downcast_ref::<JcsqlError>() {
            Some(ours) => ours.to_string(),
            None => inner.to_string(),
        },
        DataFusionError::Internal(msg) => format!(
            "the query engine hit an internal error ({}); rewriting the query usually avoids it (e.g. move a CASE inside the aggregate)",
            first_line(msg)
        ),
        other => other.strip_backtrace(),
    };
    one_line(&text)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Folds whitespace so a message is exactly one line.
pub fn one_line(s: &str) -> String {
    let s = s.split("\n\nBacktrace").next().unwrap_or(s);
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn join_errors(errors: &[SourceError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

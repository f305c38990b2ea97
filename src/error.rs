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

    #[error("{0}")]
    Config(String),

    #[error("{path}: {reason}")]
    File { path: String, reason: String },

    #[error("cache: {0}")]
    Cache(String),
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

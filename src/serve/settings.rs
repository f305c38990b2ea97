//! Postgres's run-time settings as clients read them. Drivers and BI tools decide what they may send
//! from `server_version_num`, `version()`, `SHOW TRANSACTION ISOLATION LEVEL` and `pg_settings`;
//! they set `application_name`, `extra_float_digits` or `search_path` and read them back. Every way
//! of asking (`SHOW`, `current_setting()`, `set_config()`, `pg_settings`) answers from one table and
//! the connection's own values, so they always agree.
//!
//! `datafusion-postgres` answers a few of these itself, some unlike Postgres (`read_committed`,
//! `datafusion 55.2.0 on …`), and has no `current_setting()`; this hook runs before its `SET`/`SHOW`
//! hook and leaves it only the settings it keeps in its own way (`statement_timeout`, `TimeZone`,
//! the ones it reports with `ParameterStatus`).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray, StringArray};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::exec_err;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::expr_fn::SimpleScalarUDF;
use datafusion::logical_expr::{
    ColumnarValue, LogicalPlan, ScalarUDF, Signature, TypeSignature, Volatility, create_udf,
};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName, ObjectNamePart, Query, SelectItem, Set,
    SetExpr, Statement, TableAlias, TableFactor, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::encode_dataframe;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::portal::Format;
use datafusion_postgres::pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use datafusion_postgres::pgwire::api::{ClientInfo, Type};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::types::format::FormatOptions;

/// The Postgres release whose behaviour jcsql serve follows.
pub const SERVER_VERSION: &str = "16.6";
pub const SERVER_VERSION_NUM: &str = "160006";

/// `version()`: Postgres's prefix, which drivers parse, then what is really answering.
pub fn version() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (jcsql {} on Apache DataFusion {}) on {}-{}, 64-bit",
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION,
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

/// Who may change a setting, in Postgres's words (`pg_settings.context`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Context {
    /// Any session may set it.
    User,
    /// Fixed by the server.
    Internal,
}

struct Setting {
    name: &'static str,
    value: &'static str,
    unit: Option<&'static str>,
    vartype: &'static str,
    context: Context,
    category: &'static str,
    description: &'static str,
}

const fn user(name: &'static str, value: &'static str, vartype: &'static str, description: &'static str) -> Setting {
    Setting {
        name,
        value,
        unit: None,
        vartype,
        context: Context::User,
        category: "Client Connection Defaults",
        description,
    }
}

const fn internal(
    name: &'static str,
    value: &'static str,
    vartype: &'static str,
    description: &'static str,
) -> Setting {
    Setting { name, value, unit: None, vartype, context: Context::Internal, category: "Preset Options", description }
}

const fn millis(name: &'static str, description: &'static str) -> Setting {
    Setting { unit: Some("ms"), ..user(name, "0", "integer", description) }
}

/// The settings clients read, with Postgres 16's names and defaults (and jcsql's truths:
/// read-only, UTF-8, one user).
const SETTINGS: &[Setting] = &[
    user("application_name", "", "string", "Sets the application name to be reported in statistics and logs."),
    user("bytea_output", "hex", "enum", "Sets the output format for bytea."),
    user("client_encoding", "UTF8", "string", "Sets the client's character set encoding."),
    user("client_min_messages", "notice", "enum", "Sets the message levels that are sent to the client."),
    user("DateStyle", "ISO, MDY", "string", "Sets the display format for date and time values."),
    user(
        "default_transaction_isolation",
        "read committed",
        "enum",
        "Sets the transaction isolation level of each new transaction.",
    ),
    user("default_transaction_read_only", "on", "bool", "Sets the default read-only status of new transactions."),
    user("extra_float_digits", "1", "integer", "Sets the number of digits displayed for floating-point values."),
    millis(
        "idle_in_transaction_session_timeout",
        "Sets the maximum allowed idle time between queries, when in a transaction.",
    ),
    internal("in_hot_standby", "off", "bool", "Shows whether hot standby is currently active."),
    internal("integer_datetimes", "on", "bool", "Shows whether datetimes are integer based."),
    user("IntervalStyle", "postgres", "enum", "Sets the display format for interval values."),
    internal("is_superuser", "off", "bool", "Shows whether the current user is a superuser."),
    internal("lc_collate", "en_US.UTF-8", "string", "Shows the collation order locale."),
    internal("lc_ctype", "en_US.UTF-8", "string", "Shows the character classification and case conversion locale."),
    user("lc_messages", "en_US.UTF-8", "string", "Sets the language in which messages are displayed."),
    user("lc_monetary", "en_US.UTF-8", "string", "Sets the locale for formatting monetary amounts."),
    user("lc_numeric", "en_US.UTF-8", "string", "Sets the locale for formatting numbers."),
    user("lc_time", "en_US.UTF-8", "string", "Sets the locale for formatting date and time values."),
    millis("lock_timeout", "Sets the maximum allowed duration of any wait for a lock."),
    internal("max_connections", "64", "integer", "Sets the maximum number of concurrent connections."),
    internal("max_identifier_length", "63", "integer", "Shows the maximum identifier length."),
    internal("max_index_keys", "32", "integer", "Shows the maximum number of index keys."),
    user(
        "search_path",
        "\"$user\", public",
        "string",
        "Sets the schema search order for names that are not schema-qualified.",
    ),
    internal("server_encoding", "UTF8", "string", "Shows the server (database) character set encoding."),
    internal("server_version", SERVER_VERSION, "string", "Shows the server version."),
    internal("server_version_num", SERVER_VERSION_NUM, "integer", "Shows the server version as an integer."),
    internal("session_authorization", crate::serve::USER, "string", "Sets the session user name."),
    user("standard_conforming_strings", "on", "bool", "Causes '...' strings to treat backslashes literally."),
    millis("statement_timeout", "Sets the maximum allowed duration of any statement."),
    user("TimeZone", "UTC", "string", "Sets the time zone for displaying and interpreting time stamps."),
    user("transaction_isolation", "read committed", "enum", "Sets the current transaction's isolation level."),
    user("transaction_read_only", "on", "bool", "Sets the current transaction's read-only status."),
];

/// Settings `datafusion-postgres` keeps itself (its `SET` also tells the client with
/// `ParameterStatus`, or applies the setting): its hook handles a plain `SET` of these.
const KEPT_BY_DATAFUSION_POSTGRES: &[&str] = &[
    "statement_timeout",
    "datestyle",
    "bytea_output",
    "intervalstyle",
    "application_name",
    "extra_float_digits",
    "search_path",
];

/// Where datafusion-postgres keeps the statement timeout and a `SET TIME ZONE`.
const STATEMENT_TIMEOUT_KEY: &str = "statement_timeout_ms";
const TIMEZONE_KEY: &str = "timezone";

fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// A refusal as the client receives it (boxed: `ErrorInfo` is large).
type Refusal = Box<ErrorInfo>;

fn error(code: &str, message: String) -> Refusal {
    Box::new(ErrorInfo::new("ERROR".into(), code.into(), message))
}

fn unrecognized(name: &str) -> Refusal {
    error("42704", format!("unrecognized configuration parameter \"{name}\""))
}

/// Postgres shows durations in the largest unit that divides them (`5s`, `1min`, `250ms`).
fn show_millis(ms: u64) -> String {
    match ms {
        0 => "0".into(),
        ms if ms % 60_000 == 0 => format!("{}min", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

fn parse_millis(text: &str) -> Option<u64> {
    let t = text.trim();
    let (number, factor) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1)
    } else if let Some(n) = t.strip_suffix("min") {
        (n, 60_000)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1000)
    } else {
        (t, 1)
    };
    number.trim().parse::<u64>().ok().map(|n| n * factor)
}

/// One connection's view of the settings: what it set, else what it sent at startup, else the
/// server's default.
pub struct Session<'a> {
    metadata: &'a HashMap<String, String>,
}

impl<'a> Session<'a> {
    pub fn new(metadata: &'a HashMap<String, String>) -> Self {
        Session { metadata }
    }

    fn stored(&self, name: &str) -> Option<String> {
        let lower = name.to_lowercase();
        // A `SET` stores the lower-case name; the startup packet keeps the client's spelling
        // (`DateStyle`, `TimeZone`): the later `SET` wins.
        self.metadata
            .get(&lower)
            .or_else(|| self.metadata.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
            .cloned()
    }

    /// The value `SHOW name` gives, or `None` for a name Postgres would not know.
    pub fn value(&self, name: &str) -> Option<String> {
        if name.eq_ignore_ascii_case("statement_timeout") {
            let ms = self.metadata.get(STATEMENT_TIMEOUT_KEY).and_then(|v| v.parse().ok()).unwrap_or(0);
            return Some(show_millis(ms));
        }
        if name.eq_ignore_ascii_case("session_authorization") {
            return Some(self.metadata.get("user").cloned().unwrap_or_else(|| crate::serve::USER.into()));
        }
        match setting(name) {
            Some(s) if s.context == Context::Internal => Some(s.value.to_string()),
            Some(s) => Some(self.stored(s.name).unwrap_or_else(|| s.value.to_string())),
            // Custom settings (`myapp.tenant`) exist once set, as in Postgres.
            None if name.contains('.') => self.stored(name),
            None => None,
        }
    }

    /// Rows of `pg_settings`, with this connection's values.
    fn rows(&self) -> Vec<[String; 7]> {
        SETTINGS
            .iter()
            .map(|s| {
                [
                    s.name.to_string(),
                    self.value(s.name).unwrap_or_default(),
                    s.unit.unwrap_or_default().to_string(),
                    s.category.to_string(),
                    s.description.to_string(),
                    match s.context {
                        Context::User => "user",
                        Context::Internal => "internal",
                    }
                    .to_string(),
                    s.vartype.to_string(),
                ]
            })
            .collect()
    }
}

/// Stores a connection's new value for a setting, as `SET` and `set_config()` do.
fn store(metadata: &mut HashMap<String, String>, name: &str, value: Option<&str>) -> Result<(), Refusal> {
    let known = setting(name);
    let lower = name.to_lowercase();
    match known {
        Some(s) if s.context == Context::Internal => {
            return Err(error("55P02", format!("parameter \"{}\" cannot be changed", s.name)));
        }
        Some(s)
            if matches!(s.name, "transaction_read_only" | "default_transaction_read_only")
                && value.is_some_and(|v| matches!(v.to_lowercase().as_str(), "off" | "false" | "0" | "no")) =>
        {
            return Err(error("25006", "cannot set transaction read-write mode: jcsql serve is read-only".into()));
        }
        None if !name.contains('.') => return Err(unrecognized(name)),
        _ => {}
    }
    let (key, value) = match lower.as_str() {
        "statement_timeout" => {
            let ms = match value {
                None => 0,
                Some(v) => parse_millis(v).ok_or_else(|| {
                    error("22023", format!("invalid value for parameter \"statement_timeout\": \"{v}\""))
                })?,
            };
            (STATEMENT_TIMEOUT_KEY.to_string(), (ms > 0).then(|| ms.to_string()))
        }
        "timezone" => (TIMEZONE_KEY.to_string(), value.map(str::to_string)),
        _ => (lower.clone(), value.map(str::to_string)),
    };
    // The startup packet's spelling (`TimeZone`) must not shadow the new value.
    metadata.retain(|k, _| !k.eq_ignore_ascii_case(&lower) || k == &key);
    match value {
        Some(v) => metadata.insert(key, v),
        None => metadata.remove(&key),
    };
    Ok(())
}

/// A `SET` value as text: `'ISO'`, `ISO`, `3`, `DEFAULT` (`None`), or a list joined as Postgres shows it.
fn set_value(values: &[Expr]) -> Option<String> {
    let texts: Vec<String> = values
        .iter()
        .map(|v| match v {
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
                other => other.to_string(),
            },
            Expr::Identifier(i) => i.value.clone(),
            other => other.to_string(),
        })
        .collect();
    match texts.as_slice() {
        [one] if one.eq_ignore_ascii_case("default") => None,
        _ => Some(texts.join(", ")),
    }
}

/// A `set_config` argument: literal text, or a parameter (`$1`) known only at execute.
#[derive(Debug, Clone)]
enum Arg {
    Text(String),
    Parameter(String),
}

impl Arg {
    fn resolve(&self, params: Option<&ParamValues>) -> Result<String, Refusal> {
        match self {
            Arg::Text(t) => Ok(t.clone()),
            Arg::Parameter(id) => params
                .and_then(|p| p.get_placeholders_with_values(id).ok())
                .and_then(|v| match v.value {
                    ScalarValue::Utf8(s) | ScalarValue::LargeUtf8(s) | ScalarValue::Utf8View(s) => s,
                    ScalarValue::Null => None,
                    other => Some(other.to_string()),
                })
                .ok_or_else(|| error("22023", format!("set_config needs a text value for {id}"))),
        }
    }
}

/// What the hook does with a statement.
enum Plan {
    /// `SHOW name`: one column, one row.
    Show { column: String, value: String },
    /// `SHOW ALL`.
    ShowAll(Vec<[String; 3]>),
    /// A `SET` this hook keeps.
    Set { name: String, value: Option<String> },
    /// A query that reads settings: run in its rewritten form (after `set_config` stores).
    Rewritten { statement: Box<Statement>, stores: Vec<(Arg, Arg)> },
}

/// What the hook makes of a statement, for one connection; `None` leaves it to the next hook.
fn plan(statement: &Statement, session: &Session) -> Option<Result<Plan, Refusal>> {
    match statement {
        Statement::ShowVariable { variable } => {
            let words: Vec<String> = variable.iter().map(|v| v.value.to_lowercase()).collect();
            let name = match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
                ["all"] => {
                    let rows = SETTINGS
                        .iter()
                        .map(|s| {
                            [s.name.to_string(), session.value(s.name).unwrap_or_default(), s.description.to_string()]
                        })
                        .collect();
                    return Some(Ok(Plan::ShowAll(rows)));
                }
                ["transaction", "isolation", "level"] => "transaction_isolation".to_string(),
                ["time", "zone"] => "TimeZone".to_string(),
                ["session", "authorization"] => "session_authorization".to_string(),
                _ => variable.iter().map(|v| v.value.as_str()).collect::<Vec<_>>().join("."),
            };
            if name.to_lowercase().starts_with("datafusion.") {
                return None;
            }
            let column = setting(&name).map_or_else(|| name.to_lowercase(), |s| s.name.to_string());
            Some(session.value(&name).map(|value| Plan::Show { column, value }).ok_or_else(|| unrecognized(&name)))
        }
        Statement::Set(Set::SingleAssignment { scope, hivevar: false, variable, values }) => {
            let name = variable.to_string();
            let lower = name.to_lowercase();
            let known = setting(&name).is_some() || lower.contains('.');
            if !known || lower.starts_with("datafusion.") {
                return None;
            }
            if scope.is_none() && KEPT_BY_DATAFUSION_POSTGRES.contains(&lower.as_str()) {
                return None;
            }
            Some(Ok(Plan::Set { name, value: set_value(values) }))
        }
        Statement::Query(_) => {
            let mut rewriter = Rewriter { session, stores: Vec::new(), error: None, changed: false };
            let mut rewritten = statement.clone();
            let _ = rewritten.visit(&mut rewriter);
            if let Some(e) = rewriter.error {
                return Some(Err(e));
            }
            (rewriter.changed || !rewriter.stores.is_empty())
                .then(|| Ok(Plan::Rewritten { statement: Box::new(rewritten), stores: rewriter.stores }))
        }
        _ => None,
    }
}

/// Replaces what reads settings with this connection's values: `current_setting('x')`,
/// `set_config('x', 'v', local)`, `version()`, and `pg_settings` as a table.
struct Rewriter<'s, 'm> {
    session: &'s Session<'m>,
    stores: Vec<(Arg, Arg)>,
    error: Option<Refusal>,
    changed: bool,
}

fn function_name(name: &ObjectName) -> Option<String> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(i.value.to_lowercase()),
            _ => None,
        })
        .collect();
    match parts.as_slice() {
        [name] => Some(name.clone()),
        [schema, name] if schema == "pg_catalog" => Some(name.clone()),
        _ => None,
    }
}

/// The arguments of a call, when each is a literal or a parameter; `None` otherwise.
fn call_args(args: &FunctionArguments) -> Option<Vec<Arg>> {
    let FunctionArguments::List(list) = args else {
        return matches!(args, FunctionArguments::None).then(Vec::new);
    };
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => match &v.value {
                Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(Arg::Text(s.clone())),
                Value::Boolean(b) => Some(Arg::Text(b.to_string())),
                Value::Number(n, _) => Some(Arg::Text(n.to_string())),
                Value::Placeholder(id) => Some(Arg::Parameter(id.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn text_literal(s: String) -> Expr {
    Expr::value(Value::SingleQuotedString(s))
}

impl Rewriter<'_, '_> {
    /// The literal a settings function call becomes, if it is one with literal arguments.
    /// `set_config` with a parameter stays a call (the function answers its value) and its store
    /// waits for the parameter's value at execute.
    fn replacement(&mut self, name: &str, args: &FunctionArguments) -> Option<Result<Expr, Refusal>> {
        let args = call_args(args)?;
        match (name, args.as_slice()) {
            ("version", []) => Some(Ok(text_literal(version()))),
            ("current_setting", [Arg::Text(setting)] | [Arg::Text(setting), Arg::Text(_)]) => {
                let missing_ok = matches!(args.get(1), Some(Arg::Text(m)) if m == "true");
                let just_set = self.stores.iter().rev().find_map(|(n, v)| match (n, v) {
                    (Arg::Text(n), Arg::Text(v)) if n.eq_ignore_ascii_case(setting) => Some(v.clone()),
                    _ => None,
                });
                Some(match just_set.or_else(|| self.session.value(setting)) {
                    Some(v) => Ok(text_literal(v)),
                    None if missing_ok => Ok(Expr::value(Value::Null)),
                    None => Err(unrecognized(setting)),
                })
            }
            ("set_config", [setting, value, _]) => {
                // A literal setting and value are checked now; every store happens at execute.
                if let (Arg::Text(setting), Arg::Text(value)) = (setting, value) {
                    let mut probe = HashMap::new();
                    if let Err(e) = store(&mut probe, setting, Some(value)) {
                        return Some(Err(e));
                    }
                }
                self.stores.push((setting.clone(), value.clone()));
                match value {
                    Arg::Text(v) if matches!(setting, Arg::Text(_)) => Some(Ok(text_literal(v.clone()))),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    fn pg_settings(&self, alias: Option<TableAlias>) -> Option<TableFactor> {
        let quote = |s: &str| format!("'{}'", s.replace('\'', "''"));
        let rows: Vec<String> = self
            .session
            .rows()
            .iter()
            .map(|r| {
                let cells: Vec<String> = r.iter().map(|c| quote(c)).collect();
                format!(
                    "({}, {}, NULLIF({}, ''), {}, {}, NULL, {}, {}, 'default', NULL, NULL, NULL, {}, {}, NULL, CAST(NULL AS INT), false)",
                    cells[0], cells[1], cells[2], cells[3], cells[4], cells[5], cells[6], cells[1], cells[1]
                )
            })
            .collect();
        let sql = format!(
            "SELECT * FROM (VALUES {}) AS pg_settings(name, setting, unit, category, short_desc, extra_desc, context, \
             vartype, source, min_val, max_val, enumvals, boot_val, reset_val, sourcefile, sourceline, pending_restart)",
            rows.join(", ")
        );
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, &sql).ok()?.pop()?;
        let Statement::Query(subquery) = statement else { return None };
        let alias =
            alias.unwrap_or(TableAlias { explicit: true, name: Ident::new("pg_settings"), columns: vec![], at: None });
        Some(TableFactor::Derived { lateral: false, subquery, alias: Some(alias), sample: None })
    }
}

impl VisitorMut for Rewriter<'_, '_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        // Columns named as Postgres names them: `current_setting`, `current_user`. datafusion-
        // postgres has already turned `current_user` into `session_user()` and `current_catalog`
        // into `current_database()`, and nothing in the statement tells which was written: each
        // takes the first of its two names not yet used (the values are the same either way), so
        // `select session_user, current_user` is two columns rather than an error.
        if let SetExpr::Select(select) = query.body.as_mut() {
            let mut used: Vec<String> = Vec::new();
            for item in &mut select.projection {
                let SelectItem::UnnamedExpr(Expr::Function(f)) = item else { continue };
                let Some(name) = function_name(&f.name) else { continue };
                let choices: &[&str] = match name.as_str() {
                    "current_setting" => &["current_setting"],
                    "set_config" => &["set_config"],
                    "session_user" => &["current_user", "session_user"],
                    "current_database" => &["current_database", "current_catalog"],
                    _ => continue,
                };
                let Some(column) = choices.iter().find(|c| !used.iter().any(|u| u == *c)) else { continue };
                used.push(column.to_string());
                *item = SelectItem::ExprWithAlias { expr: Expr::Function(f.clone()), alias: Ident::new(*column) };
                self.changed = true;
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = expr
            && let Some(name) = function_name(&f.name)
            && let Some(replacement) = self.replacement(&name, &f.args)
        {
            match replacement {
                Ok(literal) => {
                    *expr = literal;
                    self.changed = true;
                }
                Err(e) => {
                    self.error = Some(e);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, alias, args: None, .. } = factor
            && function_name(name).as_deref() == Some("pg_settings")
            && let Some(derived) = self.pg_settings(alias.clone())
        {
            *factor = derived;
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// `current_setting(name [, missing_ok])` and `set_config(name, value, is_local)` as functions,
/// for calls the hook cannot turn into literals (a name read from a column, a parameter): they
/// answer the server's defaults, and `set_config` its value (the hook stores it at execute).
pub fn fallback_functions() -> Vec<ScalarUDF> {
    let current_setting = |args: &[ColumnarValue]| {
        let args = ColumnarValue::values_to_arrays(args)?;
        let defaults = HashMap::new();
        let session = Session::new(&defaults);
        let names = args.first().map(|a| a.as_string::<i32>());
        let missing_ok = args.get(1).map(|a| a.as_boolean());
        let mut values = Vec::new();
        for row in 0..names.map_or(0, |n| n.len()) {
            let name = names.filter(|n| n.is_valid(row)).map(|n| n.value(row));
            let value = name.and_then(|n| session.value(n));
            if value.is_none() && name.is_some() && !missing_ok.is_some_and(|m| m.is_valid(row) && m.value(row)) {
                let name = name.unwrap_or_default();
                return exec_err!("unrecognized configuration parameter \"{name}\"");
            }
            values.push(value);
        }
        Ok(ColumnarValue::Array(Arc::new(StringArray::from(values))))
    };
    let set_config = |args: &[ColumnarValue]| {
        let args = ColumnarValue::values_to_arrays(args)?;
        match args.get(1) {
            Some(value) => Ok(ColumnarValue::Array(value.clone())),
            None => exec_err!("set_config takes a setting, a value and is_local"),
        }
    };
    let one_or_two = Signature::one_of(
        vec![TypeSignature::Exact(vec![DataType::Utf8]), TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean])],
        Volatility::Stable,
    );
    vec![
        ScalarUDF::from(SimpleScalarUDF::new_with_signature(
            "current_setting",
            one_or_two,
            DataType::Utf8,
            Arc::new(current_setting),
        )),
        create_udf(
            "set_config",
            vec![DataType::Utf8, DataType::Utf8, DataType::Boolean],
            DataType::Utf8,
            Volatility::Volatile,
            Arc::new(set_config),
        ),
    ]
}

fn text_response(columns: &[&str], rows: Vec<Vec<String>>) -> PgWireResult<Response> {
    let fields: Vec<FieldInfo> =
        columns.iter().map(|c| FieldInfo::new(c.to_string(), None, None, Type::TEXT, FieldFormat::Text)).collect();
    let fields = Arc::new(fields);
    let mut encoded = Vec::with_capacity(rows.len());
    for row in rows {
        let mut encoder = DataRowEncoder::new(fields.clone());
        for cell in &row {
            encoder.encode_field(&Some(cell.as_str()))?;
        }
        encoded.push(Ok(encoder.take_row()));
    }
    Ok(Response::Query(QueryResponse::new(fields, futures::stream::iter(encoded))))
}

fn user_error(e: Refusal) -> PgWireError {
    PgWireError::UserError(e)
}

/// Runs a plan that answers without DataFusion (`SHOW`, `SET`), or stores what a rewritten
/// query's `set_config` calls set; `None` for a query the caller still runs.
fn answer(plan: &Plan, client: &mut dyn HookClient, params: Option<&ParamValues>) -> Option<PgWireResult<Response>> {
    match plan {
        Plan::Show { column, value } => Some(text_response(&[column], vec![vec![value.clone()]])),
        Plan::ShowAll(rows) => {
            Some(text_response(&["name", "setting", "description"], rows.iter().map(|r| r.to_vec()).collect()))
        }
        Plan::Set { name, value } => Some(
            store(client.metadata_mut(), name, value.as_deref())
                .map(|()| Response::Execution(Tag::new("SET")))
                .map_err(user_error),
        ),
        Plan::Rewritten { stores, .. } => {
            for (name, value) in stores {
                let stored = name
                    .resolve(params)
                    .and_then(|n| value.resolve(params).map(|v| (n, v)))
                    .and_then(|(n, v)| store(client.metadata_mut(), &n, Some(&v)));
                if let Err(e) = stored {
                    return Some(Err(user_error(e)));
                }
            }
            None
        }
    }
}

async fn logical_plan(ctx: &SessionContext, statement: &Statement) -> PgWireResult<LogicalPlan> {
    ctx.state()
        .statement_to_plan(DfStatement::Statement(Box::new(statement.clone())))
        .await
        .map_err(|e| PgWireError::ApiError(Box::new(e)))
}

/// The `SET`/`SHOW` hook for the settings above; placed after the read-only guard and before
/// datafusion-postgres's own.
#[derive(Debug)]
pub struct SettingsHook;

#[async_trait]
impl QueryHook for SettingsHook {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let plan = match plan(statement, &Session::new(client.metadata()))? {
            Ok(plan) => plan,
            Err(e) => return Some(Err(user_error(e))),
        };
        if let Some(answered) = answer(&plan, client, None) {
            return Some(answered);
        }
        let Plan::Rewritten { statement, .. } = plan else { return None };
        let run = async {
            let plan = logical_plan(ctx, &statement).await?;
            let df = ctx.execute_logical_plan(plan).await.map_err(|e| PgWireError::ApiError(Box::new(e)))?;
            let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
            encode_dataframe(df, &Format::UnifiedText, Some(options)).await.map(Response::Query)
        };
        Some(run.await)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        let plan = match plan(statement, &Session::new(client.metadata()))? {
            Ok(plan) => plan,
            Err(e) => return Some(Err(user_error(e))),
        };
        // What the statement describes itself as; `SHOW` and `SET` are answered at execute.
        let sql = match &plan {
            Plan::Show { column, .. } => format!("SELECT CAST(NULL AS TEXT) AS \"{}\"", column.replace('"', "\"\"")),
            Plan::ShowAll(_) => {
                "SELECT CAST(NULL AS TEXT) AS name, CAST(NULL AS TEXT) AS setting, CAST(NULL AS TEXT) AS description"
                    .into()
            }
            Plan::Set { .. } => return None,
            Plan::Rewritten { statement, .. } => return Some(logical_plan(ctx, statement).await),
        };
        Some(ctx.state().create_logical_plan(&sql).await.map_err(|e| PgWireError::ApiError(Box::new(e))))
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        params: &ParamValues,
        _ctx: &SessionContext,
        client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        let plan = match plan(statement, &Session::new(client.metadata()))? {
            Ok(plan) => plan,
            Err(e) => return Some(Err(user_error(e))),
        };
        // A rewritten query runs as the plan made at parse time.
        answer(&plan, client, Some(params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_show_as_postgres_shows_them() {
        assert_eq!(show_millis(0), "0");
        assert_eq!(show_millis(5000), "5s");
        assert_eq!(show_millis(120_000), "2min");
        assert_eq!(show_millis(1500), "1500ms");
        assert_eq!(parse_millis("5s"), Some(5000));
        assert_eq!(parse_millis("250"), Some(250));
        assert_eq!(parse_millis("1min"), Some(60_000));
        assert_eq!(parse_millis("soon"), None);
    }

    #[test]
    fn a_set_value_wins_over_the_startup_spelling() {
        let mut meta = HashMap::from([("TimeZone".to_string(), "Europe/Paris".to_string())]);
        assert_eq!(Session::new(&meta).value("timezone").as_deref(), Some("Europe/Paris"));
        store(&mut meta, "TimeZone", Some("UTC")).expect("stored");
        assert_eq!(Session::new(&meta).value("TimeZone").as_deref(), Some("UTC"));
        assert_eq!(meta.len(), 1);
        let refused = store(&mut meta, "server_version", Some("9.6")).expect_err("internal");
        assert_eq!(refused.code, "55P02");
        let refused = store(&mut meta, "transaction_read_only", Some("off")).expect_err("read-only");
        assert_eq!(refused.code, "25006");
        assert_eq!(store(&mut meta, "no_such_thing", Some("1")).expect_err("unknown").code, "42704");
    }
}

//! What the Postgres endpoint lets through: reads only. Refusals carry Postgres's own SQLSTATEs
//! (25006 for anything that would change state, 42501 for an action), and DataFusion's errors are
//! given the codes and hints clients show (42P01 unknown table, 42703 unknown column, 42601 syntax).

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr, Statement, visit_expressions};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::ClientInfo;
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use std::ops::ControlFlow;

pub const READ_ONLY: &str = "25006";
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";

/// Refuses every statement but reads (and the session statements clients send when they
/// connect: `SET application_name`, `BEGIN`, cursors), before DataFusion plans it.
#[derive(Debug)]
pub struct ReadOnlyGuard;

impl ReadOnlyGuard {
    pub fn check(statement: &Statement) -> Result<(), Box<ErrorInfo>> {
        if let Some(action) = called_action(statement) {
            return Err(refusal(
                INSUFFICIENT_PRIVILEGE,
                format!("permission denied for action {action}: jcsql serve only reads"),
                "run actions from the jcsql prompt or `jcsql -c`, where they are planned and confirmed",
            ));
        }
        match statement {
            Statement::Query(_)
            | Statement::ExplainTable { .. }
            | Statement::ShowVariable { .. }
            | Statement::ShowStatus { .. }
            | Statement::ShowCatalogs { .. }
            | Statement::ShowTables { .. }
            | Statement::ShowColumns { .. }
            | Statement::ShowFunctions { .. }
            | Statement::StartTransaction { .. }
            | Statement::Commit { .. }
            | Statement::Rollback { .. }
            | Statement::Declare { .. }
            | Statement::Fetch { .. }
            | Statement::Close { .. } => Ok(()),
            Statement::Explain { statement, analyze, .. } => {
                if *analyze {
                    ReadOnlyGuard::check(statement)
                } else {
                    Ok(())
                }
            }
            // Client settings live with the connection; DataFusion's settings are the server's.
            Statement::Set(set) if !set.to_string().to_lowercase().contains("datafusion.") => Ok(()),
            other => Err(refusal(
                READ_ONLY,
                format!("cannot execute {} in a read-only transaction", command_name(other)),
                "jcsql serve is read-only; change data from the jcsql prompt",
            )),
        }
    }
}

fn refusal(code: &str, message: String, hint: &str) -> Box<ErrorInfo> {
    let mut info = ErrorInfo::new("ERROR".into(), code.into(), message);
    info.hint = Some(hint.into());
    Box::new(info)
}

/// The first action function a statement calls, if any.
fn called_action(statement: &Statement) -> Option<String> {
    let found = visit_expressions(statement, |expr| {
        if let Expr::Function(f) = expr {
            let name = f.name.to_string();
            let last = name.rsplit('.').next().unwrap_or(&name).trim_matches('"').to_lowercase();
            if crate::actions::action(&last).is_some() {
                return ControlFlow::Break(last);
            }
        }
        ControlFlow::Continue(())
    });
    match found {
        ControlFlow::Break(name) => Some(name),
        ControlFlow::Continue(()) => None,
    }
}

/// `CREATE TABLE`, `INSERT`, `COPY`: the words Postgres names a refused command by.
fn command_name(statement: &Statement) -> String {
    const OBJECTS: &[&str] = &[
        "TABLE",
        "VIEW",
        "SCHEMA",
        "INDEX",
        "FUNCTION",
        "DATABASE",
        "ROLE",
        "USER",
        "EXTERNAL",
        "TEMPORARY",
        "MATERIALIZED",
        "SEQUENCE",
        "TYPE",
        "EXTENSION",
        "CATALOG",
        "MACRO",
    ];
    let text = statement.to_string();
    let mut words = text.split_whitespace().map(|w| w.to_uppercase());
    let Some(first) = words.next() else { return "this statement".into() };
    if !matches!(first.as_str(), "CREATE" | "DROP" | "ALTER") {
        return first;
    }
    match words.find(|w| w != "OR" && w != "REPLACE") {
        Some(w) if OBJECTS.contains(&w.as_str()) => format!("{first} {w}"),
        _ => first,
    }
}

/// The error a refused statement answers with, in either protocol.
fn refusal_of(statement: &Statement) -> Option<PgWireError> {
    ReadOnlyGuard::check(statement).err().map(PgWireError::UserError)
}

#[async_trait]
impl QueryHook for ReadOnlyGuard {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refusal_of(statement).map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        refusal_of(statement).map(Err)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refusal_of(statement).map(Err)
    }
}

/// The SQLSTATE a client shows for a DataFusion error.
pub fn sqlstate(err: &DataFusionError) -> &'static str {
    match err.find_root() {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::SchemaError(e, _) if e.to_string().contains("No field named") => "42703",
        DataFusionError::Plan(m) if m.contains("not found") && m.contains("table") => "42P01",
        DataFusionError::Plan(m) if m.contains("Invalid function") => "42883",
        DataFusionError::NotImplemented(_) => "0A000",
        DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => "42000",
        _ => "XX000",
    }
}

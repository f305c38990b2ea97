//! Boards: `NAME.sql` files holding one query each, registered as views `boards.NAME`.
//! Optional leading `-- title:` / `-- description:` lines describe them. A board that fails to
//! load is reported by name and line and never stops the others; boards may read other boards.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;

use crate::catalog::{ComputedTable, text_batch, text_schema};
use crate::error::BoardError;
use crate::explain::{explain, known_tables};

pub const SCHEMA: &str = "boards";

#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    pub name: String,
    pub title: Option<String>,
    pub description: Option<String>,
    pub path: PathBuf,
    pub sql: String,
    /// Tables the query reads directly (`jumpcloud.users`, `hr`, `boards.other`).
    pub tables: Vec<String>,
    pub error: Option<BoardError>,
}

/// `-- title:` and `-- description:` among the leading comment lines.
pub fn header(sql: &str) -> (Option<String>, Option<String>) {
    let mut title = None;
    let mut description = None;
    for line in sql.lines() {
        let l = line.trim();
        if l.is_empty() {
            continue;
        }
        let Some(comment) = l.strip_prefix("--") else { break };
        let comment = comment.trim();
        if let Some(t) = comment.strip_prefix("title:") {
            title = Some(t.trim().to_string());
        } else if let Some(d) = comment.strip_prefix("description:") {
            description = Some(d.trim().to_string());
        }
    }
    (title, description)
}

pub fn validate_name(name: &str) -> Result<(), BoardError> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(BoardError::BadName { name: name.to_string() });
    }
    Ok(())
}

/// The board files of a folder, by name (hidden files and `.deleted/` are skipped).
pub fn board_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<(String, PathBuf)> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "sql"))
        .filter_map(|p| {
            let name = p.file_stem()?.to_string_lossy().into_owned();
            (!name.starts_with('.')).then_some((name, p))
        })
        .collect();
    files.sort();
    files
}

/// Plans a board's query: exactly one read-only statement that calls no action.
pub async fn plan(ctx: &SessionContext, sql: &str) -> Result<(LogicalPlan, Vec<String>), BoardError> {
    let statements = datafusion::sql::parser::DFParser::parse_sql(sql).map_err(|e| BoardError::Query(e.to_string()))?;
    if statements.len() != 1 {
        return Err(BoardError::NotOneQuery { count: statements.len() });
    }
    let plan =
        ctx.state().create_logical_plan(sql).await.map_err(|e| BoardError::Query(explain(&e, &known_tables(ctx))))?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(&plan)
        .map_err(|_| BoardError::NotAQuery)?;
    if let Some(action) = crate::actions::called_actions(&plan).into_iter().next() {
        return Err(BoardError::CallsAction { action });
    }
    // The tables the SQL names (views stay views: the planner would inline them), minus
    // CTE names and anything else that is not a table of the session.
    let mut named = BTreeSet::new();
    if let Some(datafusion::sql::parser::Statement::Statement(stmt)) = statements.front() {
        let _ = datafusion::sql::sqlparser::ast::visit_relations(stmt.as_ref(), |rel| {
            named.insert(rel.to_string().to_lowercase());
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
    let mut tables = Vec::new();
    for t in named {
        if ctx.table_provider(t.as_str()).await.is_ok() {
            tables.push(t);
        }
    }
    Ok((plan, tables))
}

/// The file line an error points at: sqlparser's `Line: N`, else the first line naming the
/// unknown table, else the first line of the query.
fn error_line(sql: &str, error: &BoardError) -> usize {
    let error = error.to_string();
    if let Some(rest) = error.split("Line: ").nth(1)
        && let Some(n) = rest.split(|c: char| !c.is_ascii_digit()).next().and_then(|n| n.parse().ok())
    {
        return n;
    }
    if let Some(name) = error.strip_prefix("unknown table ").and_then(|r| r.split(';').next()) {
        let short = name.rsplit('.').next().unwrap_or(name);
        if let Some(i) = sql.lines().position(|l| !l.trim_start().starts_with("--") && l.contains(short)) {
            return i + 1;
        }
    }
    sql.lines().position(|l| !l.trim().is_empty() && !l.trim_start().starts_with("--")).map(|i| i + 1).unwrap_or(1)
}

/// Loads every board of `dir` into schema `boards`, replacing what was there. Boards that read
/// other boards load after them (passes until nothing more loads).
pub async fn load_all(ctx: &SessionContext, dir: &Path) -> Vec<Board> {
    if let Some(schema) = ctx.catalog(crate::catalog::CATALOG).and_then(|c| c.schema(SCHEMA)) {
        for t in schema.table_names() {
            let _ = schema.deregister_table(&t);
        }
    }
    let mut pending: Vec<Board> = board_files(dir)
        .into_iter()
        .map(|(name, path)| {
            let read = std::fs::read_to_string(&path);
            let (sql, error) = match read {
                Ok(s) => (s, None),
                Err(e) => (String::new(), Some(BoardError::Io(format!("cannot read {} ({e})", path.display())))),
            };
            let (title, description) = header(&sql);
            let error = error.or_else(|| validate_name(&name).err());
            Board { name, title, description, path, sql, tables: Vec::new(), error }
        })
        .collect();
    let mut done: Vec<Board> = Vec::new();
    loop {
        let mut progress = false;
        let mut still = Vec::new();
        for mut b in pending {
            if b.error.is_some() {
                done.push(b);
                continue;
            }
            match plan(ctx, &b.sql).await {
                Ok((plan, tables)) => {
                    let view = Arc::new(crate::catalog::OrderedView::new(plan, b.sql.clone()));
                    match ctx.register_table(format!("{SCHEMA}.{}", b.name), view) {
                        Ok(_) => {
                            b.tables = tables;
                            progress = true;
                            done.push(b);
                        }
                        Err(e) => {
                            b.error = Some(BoardError::Query(e.to_string()));
                            done.push(b);
                        }
                    }
                }
                Err(e) => {
                    let line = error_line(&b.sql, &e);
                    b.error = Some(BoardError::InFile { path: b.path.display().to_string(), line, error: Box::new(e) });
                    still.push(b);
                }
            }
        }
        if !progress || still.is_empty() {
            done.extend(still);
            break;
        }
        for b in &mut still {
            b.error = None;
        }
        pending = still;
    }
    done.sort_by(|a, b| a.name.cmp(&b.name));
    done
}

/// The sources a table reference belongs to: `jumpcloud.users` → `jumpcloud`,
/// `inventory.laptops` → `inventory`, `hr` → `hr`.
pub fn source_of(table: &str) -> String {
    let t = crate::catalog::without_catalog(table);
    let t = t.strip_prefix("public.").unwrap_or(t);
    match t.split_once('.') {
        Some((schema, _)) => schema.to_string(),
        None => t.to_string(),
    }
}

/// Every table a board reads that is not a board, through the boards it reads, as written in
/// the boards (`jumpcloud.users`, `hr`).
pub fn tables_of(board: &Board, all: &[Board]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![board.name.clone()];
    let mut seen = BTreeSet::new();
    while let Some(name) = stack.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(b) = all.iter().find(|b| b.name == name) else { continue };
        for t in &b.tables {
            if source_of(t) == SCHEMA {
                stack.push(t.rsplit('.').next().unwrap_or(t).to_string());
            } else {
                out.insert(t.clone());
            }
        }
    }
    out
}

/// Every source a board reads, through the boards it reads.
pub fn sources_of(board: &Board, all: &[Board]) -> BTreeSet<String> {
    tables_of(board, all).iter().map(|t| source_of(t)).collect()
}

/// Writes `NAME.sql` (with an optional title line) atomically.
pub fn save(dir: &Path, name: &str, sql: &str, title: Option<&str>) -> Result<PathBuf, BoardError> {
    validate_name(name)?;
    let io = BoardError::Io;
    std::fs::create_dir_all(dir).map_err(|e| io(format!("cannot create {} ({e})", dir.display())))?;
    let path = dir.join(format!("{name}.sql"));
    let mut text = String::new();
    if let Some(t) = title.filter(|t| !t.is_empty()) {
        text.push_str(&format!("-- title: {t}\n"));
    }
    text.push_str(sql.trim().trim_end_matches(';').trim_end());
    text.push('\n');
    let tmp =
        tempfile::NamedTempFile::new_in(dir).map_err(|e| io(format!("cannot write in {} ({e})", dir.display())))?;
    std::fs::write(tmp.path(), text).map_err(|e| io(format!("cannot write {} ({e})", path.display())))?;
    tmp.persist(&path).map_err(|e| io(format!("cannot write {} ({})", path.display(), e.error)))?;
    Ok(path)
}

/// Moves board files to `boards/.deleted/<timestamp>/`, so a mistake can be undone.
pub fn archive(dir: &Path, names: &[String]) -> Result<PathBuf, BoardError> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
    let target = dir.join(".deleted").join(stamp);
    std::fs::create_dir_all(&target)
        .map_err(|e| BoardError::Io(format!("cannot create {} ({e})", target.display())))?;
    for n in names {
        let from = dir.join(format!("{n}.sql"));
        std::fs::rename(&from, target.join(format!("{n}.sql")))
            .map_err(|e| BoardError::Io(format!("cannot move {} ({e})", from.display())))?;
    }
    Ok(target)
}

/// The board called `name` (`boards.` prefix allowed).
pub fn find<'a>(all: &'a [Board], name: &str) -> Result<&'a Board, BoardError> {
    let name = name.strip_prefix("boards.").unwrap_or(name);
    all.iter().find(|b| b.name == name).ok_or_else(|| BoardError::Unknown {
        name: name.to_string(),
        known: all.iter().map(|b| b.name.as_str()).collect::<Vec<_>>().join(", "),
    })
}

/// `jcsql.boards`: each board, its title, the sources it reads (through other boards too) and its error.
pub fn meta_table(boards: Arc<RwLock<Vec<Board>>>) -> ComputedTable {
    const COLUMNS: [&str; 7] = ["name", "title", "description", "sources", "tables", "error", "path"];
    ComputedTable::new(text_schema(&COLUMNS), move || {
        let all = boards.read().map(|b| b.clone()).unwrap_or_default();
        let sources: Vec<Option<String>> =
            all.iter().map(|b| Some(sources_of(b, &all).into_iter().collect::<Vec<_>>().join(", "))).collect();
        text_batch(vec![
            ("name", all.iter().map(|b| Some(b.name.clone())).collect()),
            ("title", all.iter().map(|b| b.title.clone()).collect()),
            ("description", all.iter().map(|b| b.description.clone()).collect()),
            ("sources", sources),
            ("tables", all.iter().map(|b| Some(b.tables.join(", "))).collect()),
            ("error", all.iter().map(|b| b.error.as_ref().map(ToString::to_string)).collect()),
            ("path", all.iter().map(|b| Some(b.path.display().to_string())).collect()),
        ])
    })
}

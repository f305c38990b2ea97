//! One handler per page kind. GET handlers only read; each POST handler takes a [`Posted`]
//! form (CSRF checked) and answers with a redirect to the page that shows what it did.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use super::grid::{self, Rows, View};
use super::templates::{self, ActionLink, BoardLine, FormInput, GridPage, TableLine, with_query};
use super::{PageError, Posted, Session, Site};
use crate::Engine;
use crate::actions::pending::{PlanState, PlannedCall, Refusal};
use crate::actions::{ACTIONS, ActionDef};
use crate::boards::Board;
use crate::cache::CachedTable;
use crate::connection::Connection;

type PageResult = Result<Response, PageError>;

fn html(markup: maud::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

pub async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], templates::STYLESHEET).into_response()
}

pub async fn not_found() -> PageError {
    PageError::not_found("there is no such page; the boards are listed at /")
}

fn age_of(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => {
            let seconds = (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds() as f64;
            format!("{rfc3339} ({} ago)", crate::connection::human_age(seconds))
        }
        Err(_) => rfc3339.to_string(),
    }
}

fn fetched_at(us: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(us).map(|t| age_of(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
}

/// `/`: the boards with their row counts, data age and errors; then the tables.
pub async fn index(State(site): State<Arc<Site>>) -> PageResult {
    let engine = &site.engine;
    let boards = engine.boards();
    let runs = {
        let _one_at_a_time = site.board_runs.lock().await;
        crate::watch::run_boards(engine, &boards).await
    };
    let lines: Vec<BoardLine> = boards
        .iter()
        .zip(runs)
        .map(|(b, run)| BoardLine {
            name: b.name.clone(),
            title: b.title.clone().unwrap_or_else(|| b.name.clone()),
            rows: run.error.is_none().then(|| run.batches.iter().map(RecordBatch::num_rows).sum()),
            age: run.data_as_of.as_deref().map(age_of),
            error: run.error,
        })
        .collect();
    let mut tables = Vec::new();
    for (schema, conn) in engine.connection_schemas() {
        for t in conn.tables() {
            let (snapshot, _) = t.current();
            let meta = snapshot.meta.as_ref();
            tables.push(TableLine {
                name: format!("{schema}.{}", t.def.name),
                rows: meta.map(|m| m.rows as usize),
                age: meta.and_then(|m| fetched_at(m.fetched_at_us)),
                export: false,
            });
        }
    }
    for source in engine.sources() {
        for t in source.tables {
            tables.push(TableLine { name: t, rows: None, age: None, export: true });
        }
    }
    Ok(html(templates::index(&lines, &tables)))
}

/// `NAME.csv` → (`NAME`, csv).
fn split_export(name: &str) -> (&str, Option<&'static str>) {
    for ext in ["csv", "ndjson", "json"] {
        if let Some(stem) = name.strip_suffix(&format!(".{ext}")) {
            return (stem, Some(ext));
        }
    }
    (name, None)
}

fn find_board(engine: &Engine, name: &str) -> Result<Board, PageError> {
    let boards = engine.boards();
    boards.iter().find(|b| b.name == name).cloned().ok_or_else(|| {
        let names: Vec<&str> = boards.iter().map(|b| b.name.as_str()).collect();
        PageError::not_found(if names.is_empty() {
            format!("there is no board named {name}; there are no boards yet")
        } else {
            format!("there is no board named {name}; the boards are {}", names.join(", "))
        })
    })
}

/// The columns a board shows (before any added field).
async fn board_columns(engine: &Engine, board: &Board) -> Result<Vec<String>, PageError> {
    let relation = format!("{}.\"{}\"", crate::boards::SCHEMA, board.name);
    let provider = engine
        .context()
        .table_provider(relation.as_str())
        .await
        .map_err(|e| PageError::new(StatusCode::UNPROCESSABLE_ENTITY, engine.explain(&e)))?;
    Ok(provider.schema().fields().iter().map(|f| f.name().clone()).collect())
}

/// Add field's choices for a board, computed once until data changes.
async fn joinable_for(site: &Site, board: &Board, key: &[String]) -> Vec<grid::JoinableField> {
    if let Some(found) = site.cached_joinable(&board.name) {
        return found;
    }
    let relation = format!("{}.{}", crate::boards::SCHEMA, board.name);
    let found = grid::joinable_fields(&site.engine, &relation, key).await.unwrap_or_default();
    site.keep_joinable(&board.name, found.clone());
    found
}

/// What a board page and Save board both need: the board's columns, its key, and the fields
/// that join to that key.
struct BoardFields {
    columns: Vec<String>,
    key: Vec<String>,
    joinable: Vec<grid::JoinableField>,
}

impl BoardFields {
    async fn of(site: &Site, board: &Board) -> Result<BoardFields, PageError> {
        let columns = board_columns(&site.engine, board).await?;
        let key = crate::watch::key_columns(&board.sql, &columns);
        let joinable = joinable_for(site, board, &key).await;
        Ok(BoardFields { columns, key, joinable })
    }

    /// The fields `add` names, each one Add field offers.
    fn chosen(&self, add: &[String]) -> Result<Vec<&grid::JoinableField>, PageError> {
        add.iter()
            .map(|a| {
                self.joinable.iter().find(|j| &j.name == a).ok_or_else(|| {
                    PageError::bad(format!(
                        "{a} is not a field that joins to this board; Add field lists those that do"
                    ))
                })
            })
            .collect()
    }
}

/// A connection's cached table behind a qualified name (`None` for another tool's export).
fn connection_table(engine: &Engine, qualified: &str) -> Option<(Arc<Connection>, Arc<CachedTable>)> {
    let (schema, short) = qualified.split_once('.')?;
    let (_, conn) = engine.connection_schemas().into_iter().find(|(s, _)| s == schema)?;
    let table = conn.table(short).ok()?.clone();
    Some((conn, table))
}

/// The row's values an action can start from: a user (email first) and a group.
fn row_prefill(columns: &[String], row: &[Option<String>]) -> Vec<(String, String)> {
    const USER: &[&str] = &["email", "user_email", "primary_email", "username", "user"];
    const GROUP: &[&str] = &["group", "group_name", "group_email"];
    let mut out = Vec::new();
    for (input, names) in [("user", USER), ("group", GROUP)] {
        let found = names.iter().find_map(|n| {
            let i = columns.iter().position(|c| c == n)?;
            row.get(i)?.clone().filter(|v| !v.is_empty())
        });
        if let Some(v) = found {
            out.push((input.to_string(), v));
        }
    }
    out
}

/// A query string's pairs, in order (repeated names kept).
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

pub(super) fn query_of(pairs: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The actions panel: every action of every connected tool, disabled ones with how to enable them.
fn action_links(site: &Site, prefill: &[(String, String)]) -> Vec<ActionLink> {
    let permissions = site.engine.actions().permissions();
    ACTIONS
        .iter()
        .filter(|a| site.engine.actions().offered(a))
        .map(|a| {
            let relevant: Vec<(String, String)> =
                prefill.iter().filter(|(k, _)| k == "from" || a.inputs.iter().any(|i| i.name == k)).cloned().collect();
            let q = query_of(&relevant);
            ActionLink {
                name: a.name,
                does: a.does,
                disabled: permissions
                    .refusal(a.name)
                    .map(|_| format!("enable it with `jcsql permissions enable {}`", a.name)),
                href: with_query(&format!("/actions/{}", a.name), &q),
            }
        })
        .collect()
}

struct Shown {
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
}

fn shown(batches: &[RecordBatch], columns: Vec<String>) -> Shown {
    let mut rows: Vec<Vec<Option<String>>> = Vec::new();
    for b in batches {
        let cols: Vec<Vec<Option<String>>> = b.columns().iter().map(grid::text_column).collect();
        for i in 0..b.num_rows() {
            rows.push(cols.iter().map(|c| c[i].clone()).collect());
        }
    }
    Shown { columns, rows }
}

fn export(name: &str, ext: &str, schema: &SchemaRef, batches: &[RecordBatch]) -> PageResult {
    use datafusion::arrow::json::writer::{JsonArray, LineDelimited, WriterBuilder};
    let failed = |e: datafusion::arrow::error::ArrowError| {
        PageError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot write the export: {e}"))
    };
    let mut buf = Vec::new();
    let content_type = match ext {
        "csv" => {
            let mut w = datafusion::arrow::csv::WriterBuilder::new().with_header(true).build(&mut buf);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema.clone())).map_err(failed)?;
            }
            for b in batches {
                w.write(b).map_err(failed)?;
            }
            "text/csv; charset=utf-8"
        }
        "json" => {
            let refs: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
            let mut w = WriterBuilder::new().with_explicit_nulls(true).build::<_, JsonArray>(&mut buf);
            w.write_batches(&refs).map_err(failed)?;
            w.finish().map_err(failed)?;
            drop(w);
            if buf.is_empty() {
                buf.extend_from_slice(b"[]");
            }
            "application/json"
        }
        _ => {
            let refs: Vec<&RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).collect();
            let mut w = WriterBuilder::new().with_explicit_nulls(true).build::<_, LineDelimited>(&mut buf);
            w.write_batches(&refs).map_err(failed)?;
            w.finish().map_err(failed)?;
            "application/x-ndjson"
        }
    };
    // CSV downloads as a file; JSON opens in the browser (which shows it as text).
    let disposition = if ext == "csv" { "attachment" } else { "inline" };
    let file = format!("{disposition}; filename=\"{}.{ext}\"", name.replace(['"', '\\', '/'], "_"));
    Ok(([(header::CONTENT_TYPE, content_type.to_string()), (header::CONTENT_DISPOSITION, file)], buf).into_response())
}

/// What a board page and a table page have in common, once their rows are chosen.
struct Subject {
    path: String,
    name: String,
    heading: String,
    description: Option<String>,
    sql: String,
    key: Vec<String>,
    freshness: Option<String>,
    joinable: Option<Vec<grid::JoinableField>>,
    can_save: bool,
}

async fn grid_page(
    site: &Site,
    session: &Session,
    rows: Rows,
    subject: Subject,
    view: &View,
    ext: Option<&str>,
) -> PageResult {
    if let Some(ext) = ext {
        let (schema, batches) = rows.all(view).await.map_err(|e| PageError::bad(e.0))?.map_err(PageError::bad)?;
        return export(&subject.name, ext, &schema, &batches);
    }
    let (page, facets) = futures::join!(rows.page(view), rows.facets(view));
    let (batches, total) = page.map_err(|e| PageError::bad(e.0))?.map_err(PageError::bad)?;
    let facets = facets.map_err(|e| PageError::bad(e.0))?;
    let shown = shown(&batches, rows.column_names());
    let key_at: Vec<usize> = subject.key.iter().filter_map(|k| shown.columns.iter().position(|c| c == k)).collect();
    let keys = shown
        .rows
        .iter()
        .map(|r| key_at.iter().map(|&i| r[i].clone().unwrap_or_default()).collect::<Vec<_>>().join("\t"))
        .collect();
    let from = with_query(&subject.path, &view.query());
    let row_actions = shown
        .rows
        .iter()
        .map(|r| {
            let mut prefill = row_prefill(&shown.columns, r);
            (!prefill.is_empty() && !site.read_only).then(|| {
                prefill.push(("from".into(), from.clone()));
                format!("/actions?{}", query_of(&prefill))
            })
        })
        .collect();
    let actions = templates::actions_panel(&action_links(site, &[("from".to_string(), from.clone())]), site.read_only);
    let page = GridPage {
        path: subject.path,
        heading: subject.heading,
        description: subject.description,
        view,
        columns: shown.columns,
        rows: shown.rows,
        keys,
        row_actions,
        total,
        facets,
        freshness: subject.freshness,
        sql: subject.sql,
        joinable: subject.joinable,
        actions,
        csrf: site.csrf_token(session),
        can_save: subject.can_save,
    };
    Ok(html(templates::grid(&page)))
}

/// `/boards/NAME` (and `NAME.csv`, `.json`, `.ndjson`).
pub async fn board(
    State(site): State<Arc<Site>>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> PageResult {
    let engine = &site.engine;
    let (name, ext) = split_export(&name);
    let board = find_board(engine, name)?;
    if let Some(e) = &board.error {
        return Err(PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("board {name} cannot run: {e} (fix {} and reload)", board.path.display()),
        ));
    }
    let view = View::parse(query.as_deref().unwrap_or(""));
    let fields = BoardFields::of(&site, &board).await?;
    let chosen = fields.chosen(&view.add)?;
    let rows = Rows::board(engine, &board, &chosen)
        .await
        .map_err(|e| PageError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("board {name} failed: {e}")))?;
    let sql = if chosen.is_empty() {
        board.sql.clone()
    } else {
        let with_fields = grid::board_with_fields(&board, &fields.columns, &chosen);
        format!("{}\n\n-- with the added fields:\n{with_fields}", board.sql.trim())
    };
    let subject = Subject {
        path: format!("/boards/{name}"),
        name: name.to_string(),
        heading: board.title.clone().unwrap_or_else(|| name.to_string()),
        description: board.description.clone(),
        sql,
        key: fields.key,
        freshness: crate::watch::data_as_of(engine, &board).as_deref().map(age_of),
        joinable: Some(fields.joinable),
        can_save: !site.read_only && engine.boards_dir().is_some(),
    };
    grid_page(&site, &session, rows, subject, &view, ext).await
}

/// `/tables/SCHEMA.TABLE` (and its exports).
pub async fn table(
    State(site): State<Arc<Site>>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> PageResult {
    let engine = &site.engine;
    let (name, ext) = split_export(&name);
    let qualified = engine
        .qualify(name)
        .await
        .ok_or_else(|| PageError::not_found(format!("there is no table named {name}; the tables are listed at /")))?;
    let view = View::parse(query.as_deref().unwrap_or(""));
    if !view.add.is_empty() {
        return Err(PageError::bad("Add field is offered on board pages; save a query as a board first"));
    }
    let cached = connection_table(engine, &qualified).map(|(_, t)| t);
    let provider = engine
        .context()
        .table_provider(qualified.as_str())
        .await
        .map_err(|e| PageError::not_found(engine.explain(&e)))?;
    let columns: Vec<String> = provider.schema().fields().iter().map(|f| f.name().clone()).collect();
    let key = match &cached {
        Some(t) => crate::changes::key_columns(t.def),
        None => columns.iter().take(1).cloned().collect(),
    };
    let key: Vec<String> = key.into_iter().filter(|k| columns.contains(k)).collect();
    let order = if key.is_empty() { columns.clone() } else { key.clone() };
    let rows = Rows::table(engine, &qualified, &order).await.map_err(PageError::bad)?;
    let freshness = cached.and_then(|t| t.current().0.meta.as_ref().and_then(|m| fetched_at(m.fetched_at_us)));
    let subject = Subject {
        path: format!("/tables/{qualified}"),
        name: qualified.clone(),
        heading: qualified.clone(),
        description: None,
        sql: format!("select * from {qualified}"),
        key,
        freshness,
        joinable: None,
        can_save: false,
    };
    grid_page(&site, &session, rows, subject, &view, ext).await
}

/// Where to go back to after a POST: this page with the view it showed.
fn back_to(path: &str, posted: &Posted) -> Redirect {
    Redirect::to(&with_query(path, &View::parse(posted.get("view").unwrap_or("")).query()))
}

async fn refresh(site: &Site, tables: Vec<(Arc<Connection>, String)>) -> Result<(), PageError> {
    let mut failed = Vec::new();
    for (conn, table) in tables {
        for (name, result) in conn.sync(std::slice::from_ref(&table)).await {
            if let Err(e) = result {
                failed.push(format!("{}.{name}: {e}", conn.name));
            }
        }
    }
    site.data_changed();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(PageError::new(
            StatusCode::BAD_GATEWAY,
            format!("the refresh failed, so the page still shows the data held before: {}", failed.join("; ")),
        ))
    }
}

pub async fn refresh_board(State(site): State<Arc<Site>>, Path(name): Path<String>, posted: Posted) -> PageResult {
    let board = find_board(&site.engine, &name)?;
    let tables = crate::watch::connection_tables_read(&site.engine, &board, &site.engine.boards());
    refresh(&site, tables).await?;
    Ok(back_to(&format!("/boards/{name}"), &posted).into_response())
}

pub async fn refresh_table(State(site): State<Arc<Site>>, Path(name): Path<String>, posted: Posted) -> PageResult {
    let engine = &site.engine;
    let qualified =
        engine.qualify(&name).await.ok_or_else(|| PageError::not_found(format!("there is no table named {name}")))?;
    let tables = match connection_table(engine, &qualified) {
        Some((conn, table)) => vec![(conn, table.def.name.to_string())],
        None => {
            return Err(PageError::bad(format!(
                "{qualified} is another tool's export: it is read from its file on each query"
            )));
        }
    };
    refresh(&site, tables).await?;
    Ok(back_to(&format!("/tables/{qualified}"), &posted).into_response())
}

/// `#save-board`: the board with the chosen fields, saved as a new board (the original file is
/// untouched).
pub async fn save_board(State(site): State<Arc<Site>>, Path(name): Path<String>, posted: Posted) -> PageResult {
    if site.read_only {
        return Err(PageError::forbidden("this page is read-only (--read-only): boards are not saved from it"));
    }
    let engine = &site.engine;
    let board = find_board(engine, &name)?;
    let new_name = posted.get("name").unwrap_or("").trim().to_string();
    crate::boards::validate_name(&new_name).map_err(|e| PageError::bad(e.to_string()))?;
    if engine.boards().iter().any(|b| b.name == new_name) {
        return Err(PageError::new(
            StatusCode::CONFLICT,
            format!("a board named {new_name} exists already; choose another name (no board was changed)"),
        ));
    }
    let dir = engine
        .boards_dir()
        .ok_or_else(|| PageError::bad("no boards folder is set; start jcsql web with --boards DIR"))?;
    let add: Vec<String> = posted.fields.iter().filter(|(k, _)| k == "add").map(|(_, v)| v.clone()).collect();
    if add.is_empty() {
        return Err(PageError::bad(
            "choose a field with Add field first; the new board is the board with those fields",
        ));
    }
    let fields = BoardFields::of(&site, &board).await?;
    let chosen = fields.chosen(&add)?;
    let added: Vec<&str> = chosen.iter().map(|j| j.field.as_str()).collect();
    let title = format!("{} with {}", board.title.clone().unwrap_or_else(|| name.clone()), added.join(", "));
    let sql =
        format!("-- key: {}\n{}", fields.key.join(", "), grid::board_with_fields(&board, &fields.columns, &chosen));
    engine.save_board(&dir, &new_name, &sql, Some(&title)).await.map_err(|e| PageError::bad(e.to_string()))?;
    site.data_changed();
    Ok(Redirect::to(&format!("/boards/{new_name}")).into_response())
}

fn refuse_read_only(site: &Site) -> Result<(), PageError> {
    if site.read_only {
        return Err(PageError::forbidden("this page is read-only (--read-only): actions are not offered"));
    }
    Ok(())
}

fn find_action(site: &Site, name: &str) -> Result<&'static ActionDef, PageError> {
    let def = crate::actions::action(name).filter(|a| site.engine.actions().offered(a)).ok_or_else(|| {
        PageError::not_found(format!("there is no action named {name}; Integration actions lists them"))
    })?;
    if let Some(why) = site.engine.actions().permissions().refusal(def.name) {
        return Err(PageError::forbidden(format!("{why}; nothing was planned")));
    }
    Ok(def)
}

/// A `from` that is a path of this site (never another site).
fn local_path(from: Option<&str>) -> String {
    match from {
        Some(f) if f.starts_with('/') && !f.starts_with("//") && !f.contains('\\') => f.to_string(),
        _ => String::new(),
    }
}

/// `/actions?user=…`: the actions, pre-filled from a row.
pub async fn actions(State(site): State<Arc<Site>>, RawQuery(query): RawQuery) -> PageResult {
    refuse_read_only(&site)?;
    let prefill: Vec<(String, String)> = query_pairs(query.as_deref())
        .into_iter()
        .filter(|(k, v)| !v.is_empty() && (k != "from" || !local_path(Some(v)).is_empty()))
        .collect();
    let shown: Vec<(String, String)> = prefill.iter().filter(|(k, _)| k != "from").cloned().collect();
    let panel = templates::actions_panel(&action_links(&site, &prefill), false);
    Ok(html(templates::action_list(panel, &shown)))
}

/// `GET /actions/NAME?user=…`: the form.
pub async fn action_form(
    State(site): State<Arc<Site>>,
    Extension(session): Extension<Session>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> PageResult {
    refuse_read_only(&site)?;
    let def = find_action(&site, &name)?;
    let given = query_pairs(query.as_deref());
    let value = |n: &str| param(&given, n).unwrap_or_default();
    let inputs: Vec<FormInput> = def
        .inputs
        .iter()
        .map(|i| FormInput { name: i.name, label: i.describe(), value: value(i.name), required: !i.optional })
        .collect();
    let from = local_path(Some(&value("from")));
    Ok(html(templates::action_form(def.name, def.does, &inputs, &site.csrf_token(&session), &from)))
}

/// `POST /actions/NAME`: plans the call (nothing is written) and shows the plan.
pub async fn plan_action(State(site): State<Arc<Site>>, Path(name): Path<String>, posted: Posted) -> PageResult {
    refuse_read_only(&site)?;
    let def = find_action(&site, &name)?;
    let mut values = Vec::new();
    for input in def.inputs {
        let v = posted.get(input.name).unwrap_or("").trim().to_string();
        if v.is_empty() && !input.optional {
            return Err(PageError::bad(format!("{} needs {}; nothing was planned", def.name, input.describe())));
        }
        values.push(v);
    }
    let sql = crate::actions::statement_for(def, &values);
    let engine = &site.engine;
    let done = engine.execute(&sql).await.map_err(|e| {
        PageError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{}; nothing was planned", engine.explain(&e)))
    })?;
    if done.planned.is_empty() {
        let said: Vec<String> = done
            .batches
            .iter()
            .flat_map(|b| grid::text_column(b.column(0)))
            .flatten()
            .filter(|s| !s.is_empty())
            .collect();
        return Err(PageError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "nothing to apply: {}; nothing was planned",
                if said.is_empty() { "the action planned no call".into() } else { said.join("; ") }
            ),
        ));
    }
    let id = engine.actions().pending().propose(&posted.session.0, done.planned);
    let from = local_path(posted.get("from"));
    let back = if from.is_empty() { String::new() } else { query_of(&[("from".into(), from)]) };
    let target = with_query(&format!("/plans/{id}"), &back);
    Ok(Redirect::to(&target).into_response())
}

fn planned_calls(site: &Site, calls: &[(usize, crate::actions::Call)]) -> Vec<PlannedCall> {
    let permissions = site.engine.actions().permissions();
    calls.iter().map(|(n, c)| PlannedCall::new(*n, c, &permissions)).collect()
}

/// `GET /plans/ID`: the plan waiting for confirmation, or what applying it gave.
pub async fn plan(
    State(site): State<Arc<Site>>,
    Extension(session): Extension<Session>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> PageResult {
    let from = local_path(param(&query_pairs(query.as_deref()), "from").as_deref());
    let (calls, state) = site.engine.actions().pending().show(&session.0, &id).map_err(refusal_page)?;
    let lines = planned_calls(&site, &calls);
    let csrf = site.csrf_token(&session);
    let markup = match state {
        PlanState::Waiting { expires_in } => {
            if site.read_only {
                return Err(PageError::forbidden("this page is read-only (--read-only): actions are not offered"));
            }
            templates::plan_page(&id, &lines, Some((expires_in.as_secs().div_ceil(60), &csrf)), None, &from)
        }
        PlanState::Applied(results) => templates::plan_page(&id, &lines, None, Some(&results), &from),
        PlanState::Expired => return Err(refusal_page(Refusal::Expired)),
    };
    Ok(html(markup))
}

fn refusal_page(r: Refusal) -> PageError {
    let status = match r {
        Refusal::Unknown => StatusCode::NOT_FOUND,
        Refusal::AlreadyApplied => StatusCode::CONFLICT,
        Refusal::Expired => StatusCode::GONE,
    };
    PageError::new(status, r.to_string())
}

/// `POST /plans/ID`: applies exactly the plan, once.
pub async fn confirm_plan(
    State(site): State<Arc<Site>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    posted: Posted,
) -> PageResult {
    refuse_read_only(&site)?;
    if posted.get("plan") != Some(id.as_str()) {
        return Err(PageError::bad("the confirmation names another plan; nothing was applied"));
    }
    let pending = site.engine.actions().pending();
    let calls = pending.take(&posted.session.0, &id).map_err(refusal_page)?;
    let results = site.engine.apply(&calls).await;
    pending.record(&id, results);
    site.data_changed();
    Ok(Redirect::to(&with_query(&format!("/plans/{id}"), query.as_deref().unwrap_or(""))).into_response())
}

/// Rows shown at most by the SQL page (the count says how many there were).
const SQL_ROWS_SHOWN: usize = 1000;

/// `/sql?sql=…`: one read-only query as a table.
pub async fn sql(State(site): State<Arc<Site>>, RawQuery(query): RawQuery) -> PageResult {
    let text = param(&query_pairs(query.as_deref()), "sql").unwrap_or_default();
    if text.trim().is_empty() {
        return Ok(html(templates::sql_page("", None)));
    }
    match site.engine.read_query(&text).await {
        Ok((schema, batches)) => {
            let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
            let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
            let mut s = shown(&batches, columns);
            s.rows.truncate(SQL_ROWS_SHOWN);
            Ok(html(templates::sql_page(&text, Some(Ok((s.columns, s.rows, total))))))
        }
        Err(crate::engine::ReadError::Refused(why)) => {
            Ok((StatusCode::FORBIDDEN, html(templates::sql_page(&text, Some(Err(&why))))).into_response())
        }
        Err(crate::engine::ReadError::Failed(why)) => {
            Ok((StatusCode::BAD_REQUEST, html(templates::sql_page(&text, Some(Err(&why))))).into_response())
        }
    }
}

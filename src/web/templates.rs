//! The markup of each page kind (maud: checked when compiled, every value escaped). Pages work
//! without JavaScript: links and forms, POST answered by a redirect to a page that GET shows.

use axum::http::StatusCode;
use maud::{DOCTYPE, Markup, html};

use super::grid::{Facet, JoinableField, View};
use crate::actions::CallResult;
use crate::actions::pending::PlannedCall;

pub const STYLESHEET: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }
header { display: flex; align-items: center; gap: 1.5em; padding: .6em 1.2em; background: #17324d; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
header nav a { margin-right: 1.2em; }
main { padding: 1em 1.2em 3em; }
h1 { font-size: 1.35em; margin: .2em 0 .4em; }
h2 { font-size: 1.05em; margin: 1.4em 0 .4em; }
table { border-collapse: collapse; background: #fff; margin: .4em 0; }
th, td { border: 1px solid #d9dde3; padding: .25em .55em; text-align: left; vertical-align: top; }
th { background: #eef1f5; white-space: nowrap; }
th a { color: inherit; }
.top { display: flex; justify-content: space-between; align-items: flex-start; gap: 2em; }
#actions { background: #fff; border: 1px solid #d9dde3; padding: .5em .9em; min-width: 16em; }
#actions ul, #add-field ul, .facet ul { list-style: none; padding: 0; margin: .2em 0; }
#actions .disabled { color: #707784; }
.facets { display: flex; flex-wrap: wrap; gap: 1.2em; }
.facet a.selected { font-weight: 700; }
.error, #error { color: #a4161a; }
form.inline { display: inline; }
pre.sql { background: #fff; border: 1px solid #d9dde3; padding: .6em; overflow-x: auto; }
button { font: inherit; padding: .25em .8em; cursor: pointer; }
label { display: block; margin: .5em 0 .2em; font-weight: 600; }
input[type=text], input[type=search], textarea { font: inherit; padding: .25em; min-width: 22em; }
.pages a, .pages span { margin-right: .6em; }
"#;

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · jcsql" }
                link rel="stylesheet" href="/static/jcsql.css";
            }
            body {
                header {
                    a href="/" { "jcsql" }
                    nav { a href="/" { "Boards" } " " a href="/sql" { "SQL" } }
                }
                main { (body) }
            }
        }
    }
}

pub fn error_page(status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    layout(
        title,
        html! {
            h1 { (title) }
            p #error { (message) }
            p { a href="/" { "Back to the boards" } }
        },
    )
}

pub struct BoardLine {
    pub name: String,
    pub title: String,
    pub rows: Option<usize>,
    pub age: Option<String>,
    pub error: Option<String>,
}

pub struct TableLine {
    pub name: String,
    pub rows: Option<usize>,
    pub age: Option<String>,
    /// Another tool's export, read from its file on each query (no snapshot, no age).
    pub export: bool,
}

pub fn index(boards: &[BoardLine], tables: &[TableLine]) -> Markup {
    layout(
        "Boards",
        html! {
            h1 { "Boards" }
            table #boards {
                thead { tr { th scope="col" { "Board" } th scope="col" { "Rows" } th scope="col" { "Data as of" } th scope="col" { "Error" } } }
                tbody {
                    @for b in boards {
                        tr data-board=(b.name) {
                            td.title { a href={ "/boards/" (b.name) } { (b.title) } }
                            td.rows { @if let Some(n) = b.rows { (n) } }
                            td.age { @if let Some(a) = &b.age { (a) } }
                            td.error { @if let Some(e) = &b.error { (e) } }
                        }
                    }
                }
            }
            @if boards.is_empty() {
                p { "No boards yet: save a query as a board (" code { ".save NAME" } " in the REPL, or " code { "jcsql board save" } ")." }
            }
            h2 { "Tables" }
            table #tables {
                thead { tr { th scope="col" { "Table" } th scope="col" { "Rows" } th scope="col" { "Data as of" } } }
                tbody {
                    @for t in tables {
                        tr data-table=(t.name) {
                            td { a href={ "/tables/" (t.name) } { (t.name) } }
                            td.rows { @if let Some(n) = t.rows { (n) } @else if t.export { "export" } @else { "not fetched" } }
                            td.age { @if let Some(a) = &t.age { (a) } }
                        }
                    }
                }
            }
        },
    )
}

/// One action as the panel lists it.
pub struct ActionLink {
    pub name: &'static str,
    pub does: &'static str,
    /// `None`: enabled, linked; `Some(how)`: disabled, with how to enable it.
    pub disabled: Option<String>,
    pub href: String,
}

pub fn actions_panel(actions: &[ActionLink], read_only: bool) -> Markup {
    html! {
        @if read_only {
            aside #read-only { "Read-only: this page offers no actions." }
        } @else {
            aside #actions {
                strong { "Integration actions" }
                ul {
                    @for a in actions {
                        @if let Some(how) = &a.disabled {
                            li.disabled data-disabled-action=(a.name) title=(a.does) { (a.name) " — disabled: " (how) }
                        } @else {
                            li { a data-action=(a.name) href=(a.href) title=(a.does) { (a.name) } }
                        }
                    }
                }
            }
        }
    }
}

/// A board or table page.
pub struct GridPage<'a> {
    /// `/boards/NAME` or `/tables/SCHEMA.TABLE`.
    pub path: String,
    pub heading: String,
    pub description: Option<String>,
    pub view: &'a View,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    pub keys: Vec<String>,
    /// Per row, the link that starts an action pre-filled from it.
    pub row_actions: Vec<Option<String>>,
    pub total: usize,
    pub facets: Vec<Facet>,
    pub freshness: Option<String>,
    pub sql: String,
    pub joinable: Option<Vec<JoinableField>>,
    pub actions: Markup,
    pub csrf: String,
    pub can_save: bool,
}

/// `path?query`, or `path` when the query is empty.
pub fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() { path.to_string() } else { format!("{path}?{query}") }
}

fn href(path: &str, view: &View) -> String {
    with_query(path, &view.query())
}

pub fn grid(p: &GridPage) -> Markup {
    let view = p.view;
    let pages = p.total.div_ceil(super::grid::PAGE_ROWS).max(1);
    let export = |ext: &str| href(&format!("{}.{ext}", p.path), &view.on_page(1));
    layout(
        &p.heading,
        html! {
            div.top {
                div {
                    h1 { (p.heading) }
                    @if let Some(d) = &p.description { p.description { (d) } }
                    p #freshness {
                        @if let Some(f) = &p.freshness { "data as of " (f) } @else { "data not fetched yet" }
                        " "
                        form.inline method="post" action={ (p.path) "/refresh" } {
                            input type="hidden" name="csrf" value=(p.csrf);
                            input type="hidden" name="view" value=(view.query());
                            button #refresh type="submit" { "Refresh" }
                        }
                    }
                }
                (p.actions)
            }
            form #filter method="get" action=(p.path) {
                label for="q" { "Search every column" }
                input #q type="search" name="q" value=(view.q);
                @for (c, values) in &view.filters { @for v in values { input type="hidden" name={ "f." (c) } value=(v); } }
                @if let Some(s) = &view.sort {
                    input type="hidden" name="sort" value=(s);
                    input type="hidden" name="dir" value=(if view.descending { "desc" } else { "asc" });
                }
                @for a in &view.add { input type="hidden" name="add" value=(a); }
                " " button type="submit" { "Search" }
                @if !view.filters.is_empty() || !view.q.is_empty() {
                    " " a #clear href=(href(&p.path, &View { add: view.add.clone(), ..View::default() })) { "Clear filters" }
                }
            }
            @if !p.facets.is_empty() {
                div.facets {
                    @for f in &p.facets {
                        div.facet data-column=(f.column) {
                            strong { (f.column) }
                            ul {
                                @for (value, n) in &f.values {
                                    @let v = value.clone().unwrap_or_default();
                                    li {
                                        a.selected[view.is_selected(&f.column, &v)] href=(href(&p.path, &view.toggled(&f.column, &v))) {
                                            @if value.is_none() { "(empty)" } @else { (v) }
                                        }
                                        " " span.count { (n) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p #row-count { (p.total) " rows" }
            table #rows {
                thead {
                    tr {
                        @for c in &p.columns {
                            th scope="col" {
                                a href=(href(&p.path, &view.sorted_by(c))) { (c) }
                                @if view.sort.as_deref() == Some(c.as_str()) { @if view.descending { " ▼" } @else { " ▲" } }
                            }
                        }
                        @if p.row_actions.iter().any(Option::is_some) { th scope="col" { "Act" } }
                    }
                }
                tbody {
                    @for (i, row) in p.rows.iter().enumerate() {
                        tr data-key=(p.keys.get(i).cloned().unwrap_or_default()) {
                            @for cell in row { td { @if let Some(v) = cell { (v) } } }
                            @if let Some(Some(link)) = p.row_actions.get(i) { td { a.row-action href=(link) { "Act…" } } }
                            @else if p.row_actions.iter().any(Option::is_some) { td {} }
                        }
                    }
                }
            }
            div.pages {
                @if view.page > 1 { a #prev rel="prev" href=(href(&p.path, &view.on_page(view.page - 1))) { "← previous" } }
                span { "page " (view.page) " of " (pages) }
                @if view.page < pages { a #next rel="next" href=(href(&p.path, &view.on_page(view.page + 1))) { "next →" } }
            }
            p {
                "Export every row under these filters: "
                a #export-csv href=(export("csv")) { "CSV" } " · "
                a #export-json href=(export("json")) { "JSON" } " · "
                a #export-ndjson href=(export("ndjson")) { "NDJSON" }
            }
            @if let Some(fields) = &p.joinable {
                section #add-field {
                    h2 { "Add field" }
                    @if fields.is_empty() {
                        p { "No other table's fields join to this board's key yet; " code { "jcsql connect files NAME PATH" } " adds another tool's export." }
                    } @else {
                        ul {
                            @for f in fields {
                                li {
                                    @if view.add.contains(&f.name) {
                                        span.added data-field=(f.name) { (f.name) " (shown)" }
                                    } @else {
                                        a.add-field data-field=(f.name) href=(href(&p.path, &view.with_field(&f.name))) { (f.name) }
                                    }
                                    " — joins on " (f.key) " = " (f.table) "." (f.table_column)
                                    @if let Some(r) = f.match_rate { ", " (format!("{:.0}", r * 100.0)) "% match" }
                                }
                            }
                        }
                    }
                    @if !view.add.is_empty() && p.can_save {
                        form #save-board method="post" action={ (p.path) "/save" } {
                            input type="hidden" name="csrf" value=(p.csrf);
                            @for a in &view.add { input type="hidden" name="add" value=(a); }
                            label for="board-name" { "Save as a new board named" }
                            input #board-name type="text" name="name" required pattern="[a-z0-9_]+" title="lowercase letters, digits and _";
                            " " button #save type="submit" { "Save board" }
                        }
                    }
                }
            }
            h2 { "SQL" }
            pre.sql #sql { (p.sql) }
        },
    )
}

pub fn action_list(actions: Markup, prefill: &[(String, String)]) -> Markup {
    layout(
        "Integration actions",
        html! {
            h1 { "Integration actions" }
            @if !prefill.is_empty() {
                p { "Pre-filled with "
                    @for (i, (k, v)) in prefill.iter().enumerate() { @if i > 0 { ", " } (k) " " strong { (v) } }
                    "." }
            }
            (actions)
        },
    )
}

pub struct FormInput {
    pub name: &'static str,
    pub label: String,
    pub value: String,
    pub required: bool,
}

pub fn action_form(action: &str, does: &str, inputs: &[FormInput], csrf: &str, from: &str) -> Markup {
    layout(
        action,
        html! {
            h1 { (action) }
            p { (does) }
            form #action-form method="post" action={ "/actions/" (action) } {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="from" value=(from);
                @for i in inputs {
                    label for={ "input-" (i.name) } { (i.label) }
                    input id={ "input-" (i.name) } type="text" name=(i.name) value=(i.value) required[i.required];
                }
                p { button #plan type="submit" { "Plan" } }
            }
            p { "Nothing changes until you confirm the plan on the next page." }
        },
    )
}

pub fn plan_page(
    id: &str,
    calls: &[PlannedCall],
    waiting: Option<(u64, &str)>,
    results: Option<&[CallResult]>,
    from: &str,
) -> Markup {
    let back = if from.is_empty() { String::new() } else { super::pages::query_of(&[("from".into(), from.into())]) };
    let confirm_action = with_query(&format!("/plans/{id}"), &back);
    layout(
        "Plan",
        html! {
            h1 { @if results.is_some() { "Applied" } @else { "Plan" } }
            ol #plan {
                @for c in calls {
                    li.call data-number=(c.number) data-action=(c.action) {
                        "#" (c.number) " " strong { (c.action) } " "
                        @for (i, (name, label, id)) in c.inputs.iter().enumerate() {
                            @if i > 0 { ", " }
                            (name) " " span.label { (label) }
                            @if let Some(id) = id { " (id " code.id { (id) } ")" }
                        }
                        @if let Some(why) = &c.denied { " — will be denied: " (why) }
                    }
                }
            }
            @if let Some((minutes, csrf)) = waiting {
                form #confirm-form method="post" action=(confirm_action) {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="plan" value=(id);
                    p { "Confirm to apply exactly these " (calls.len()) " calls once. This plan expires in " (minutes) " minutes." }
                    button #confirm type="submit" { "Confirm and apply" }
                }
            }
            @if let Some(results) = results {
                table #results {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Action" } th scope="col" { "Inputs" } th scope="col" { "Status" } th scope="col" { "HTTP" } } }
                    tbody {
                        @for r in results {
                            tr data-number=(r.number) {
                                td { (r.number) } td { (r.call.action) } td { (r.call.describe()) }
                                td.status { (r.status) }
                                td { @if let Some(h) = r.http_status { (h) } }
                            }
                        }
                    }
                }
            }
            @if !from.is_empty() { p { a #back href=(from) { "Back to the board" } } }
        },
    )
}

/// A query's answer as the SQL page shows it: the columns, the rows shown, and the row count.
pub type Answer = (Vec<String>, Vec<Vec<Option<String>>>, usize);

pub fn sql_page(sql: &str, result: Option<Result<Answer, &str>>) -> Markup {
    layout(
        "SQL",
        html! {
            h1 { "SQL" }
            form #sql method="get" action="/sql" {
                label for="sql-text" { "A query (read-only)" }
                textarea #sql-text name="sql" rows="8" cols="100" { (sql) }
                p { button #run type="submit" { "Run" } }
            }
            @match result {
                None => {}
                Some(Err(message)) => p #error { (message) },
                Some(Ok((columns, rows, total))) => {
                    p #row-count { (total) " rows" @if rows.len() < total { " (the first " (rows.len()) " shown)" } }
                    table #rows {
                        thead { tr { @for c in &columns { th scope="col" { (c) } } } }
                        tbody { @for r in &rows { tr { @for cell in r { td { @if let Some(v) = cell { (v) } } } } } }
                    }
                }
            }
        },
    )
}

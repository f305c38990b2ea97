//! The interactive prompt: multi-line statements ended by `;`, persistent history (never with
//! the API key in it), Ctrl-C cancels the running statement, Ctrl-D exits, tab completion of
//! keywords, schemas, tables, columns, functions and meta-commands, and dot meta-commands
//! (with `\` aliases). The line editor sits behind [`LineReader`] so tests can script it.

use std::collections::{BTreeSet, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex, RwLock};

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::{DefaultHistory, History};
use rustyline::validate::Validator;
use rustyline::{Context, Editor, Helper};

use super::GlobalArgs;
use super::config::Home;
use super::output::{Format, terminal_width};
use super::pipeline::{Confirm, Outcome, Pipeline, YesFlag, plural, split_statements, write_result};
use crate::Engine;
use crate::actions::ACTIONS;
use crate::connection::Freshness;
use crate::error::JcsqlError;
use crate::table::PRIMARY_FIELD_KEY;

/// Meta-commands: name, arguments, what it does. `.help` and completion read this table.
pub const META_COMMANDS: &[(&str, &str, &str)] = &[
    (".help", "", "this text (also \\?)"),
    (".tables", "", "list the tables (also \\d)"),
    (".schema", "TABLE", "columns, types, primary field and meaning of each column (also \\d TABLE)"),
    (".mode", "table|line|csv|json|ndjson|markdown", "how results are printed"),
    (".timer", "on|off", "show time, rows and API requests after each statement"),
    (".refresh", "[TABLE]", "fetch a table now (every table when none is named)"),
    (".offline", "on|off", "answer from the cached snapshots only"),
    (".boards", "", "the boards (saved queries), their sources and errors"),
    (".save", "NAME [TITLE]", "save the last query as board NAME (view boards.NAME)"),
    (".sources", "", "other tools' exports and their tables"),
    (".fields", "TABLE", "what joins to TABLE: relations, and other tools' columns whose values match"),
    (".actions", "", "the actions, their inputs, and whether each is enabled"),
    (".action", "NAME", "run one action, asking for each input"),
    (".permissions", "", "which actions may run (change with `jcsql permissions`)"),
    (".quit", "", "leave (also .exit, \\q, Ctrl-D)"),
];

/// Where the REPL's lines come from.
pub trait LineReader {
    fn read_line(&mut self, prompt: &str) -> ReadResult;
    fn add_history(&mut self, _line: &str) {}
}

pub enum ReadResult {
    Line(String),
    /// Ctrl-C at the prompt: drop the statement being typed.
    Interrupted,
    /// Ctrl-D: leave.
    Eof,
}

/// Lines given in advance, for tests and scripts.
pub struct ScriptedReader(pub VecDeque<String>);

impl ScriptedReader {
    pub fn new(lines: &[&str]) -> Self {
        ScriptedReader(lines.iter().map(|l| l.to_string()).collect())
    }
}

impl LineReader for ScriptedReader {
    fn read_line(&mut self, _prompt: &str) -> ReadResult {
        match self.0.pop_front() {
            Some(l) => ReadResult::Line(l),
            None => ReadResult::Eof,
        }
    }
}

/// Words offered by tab completion, rebuilt after each statement.
#[derive(Debug, Default, Clone)]
pub struct Words {
    pub schemas: Vec<String>,
    /// `schema.table`, and plain names for the default schema.
    pub tables: Vec<String>,
    pub columns: Vec<String>,
    pub functions: Vec<String>,
}

const KEYWORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "group by",
    "order by",
    "having",
    "limit",
    "offset",
    "join",
    "left join",
    "inner join",
    "on",
    "as",
    "and",
    "or",
    "not",
    "null",
    "is",
    "in",
    "like",
    "ilike",
    "between",
    "case",
    "when",
    "then",
    "else",
    "end",
    "distinct",
    "count",
    "union all",
    "with",
    "exists",
    "desc",
    "asc",
    "true",
    "false",
    "cast",
    "interval",
    "now()",
    "explain",
    "show tables",
    "create view",
    "describe",
];

impl Words {
    pub async fn collect(engine: &Engine) -> Words {
        let mut w = Words::default();
        let ctx = engine.context();
        let mut columns = BTreeSet::new();
        if let Some(catalog) = ctx.catalog(crate::catalog::CATALOG) {
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else { continue };
                w.schemas.push(schema_name.clone());
                for t in schema.table_names() {
                    if schema_name != "information_schema"
                        && let Ok(Some(p)) = schema.table(&t).await
                    {
                        columns.extend(p.schema().fields().iter().map(|f| f.name().clone()));
                    }
                    w.tables.push(if schema_name == "public" { t } else { format!("{schema_name}.{t}") });
                }
            }
        }
        w.tables.sort();
        w.columns = columns.into_iter().collect();
        w.functions = ctx.state().scalar_functions().keys().cloned().collect();
        w.functions.sort();
        w
    }

    /// Completions of the word that ends at `pos`: its start and the candidates.
    pub fn complete(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = &line[..pos];
        let start = before.rfind(|c: char| c.is_whitespace() || "(),=<>'".contains(c)).map(|i| i + 1).unwrap_or(0);
        let word = &before[start..];
        let lower = word.to_lowercase();
        let mut out: Vec<String> = Vec::new();
        if start == 0 && (word.starts_with('.') || word.starts_with('\\')) {
            out.extend(META_COMMANDS.iter().map(|(n, _, _)| n.to_string()).filter(|n| n.starts_with(&lower)));
            return (start, out);
        }
        if before.trim_start().starts_with('.') {
            // Arguments of meta-commands are table names.
            out.extend(self.tables.iter().filter(|t| t.starts_with(&lower)).cloned());
            return (start, out);
        }
        if word.is_empty() {
            return (start, out);
        }
        if let Some((qualifier, rest)) = word.rsplit_once('.') {
            if self.schemas.iter().any(|s| s == qualifier) {
                out.extend(
                    self.tables
                        .iter()
                        .filter(|t| t.starts_with(&format!("{qualifier}.{}", rest.to_lowercase())))
                        .cloned(),
                );
            } else {
                // An alias or table name: its columns.
                let rest = rest.to_lowercase();
                out.extend(self.columns.iter().filter(|c| c.starts_with(&rest)).map(|c| format!("{qualifier}.{c}")));
            }
            return (start, out);
        }
        let upper = word.chars().next().is_some_and(char::is_uppercase);
        out.extend(
            KEYWORDS
                .iter()
                .filter(|k| k.starts_with(&lower))
                .map(|k| if upper { k.to_uppercase() } else { k.to_string() }),
        );
        out.extend(self.schemas.iter().filter(|s| s.starts_with(&lower)).map(|s| format!("{s}.")));
        out.extend(self.tables.iter().filter(|t| t.starts_with(&lower)).cloned());
        out.extend(self.columns.iter().filter(|c| c.starts_with(&lower)).cloned());
        out.extend(self.functions.iter().filter(|f| f.starts_with(&lower)).cloned());
        let mut seen = BTreeSet::new();
        out.retain(|c| seen.insert(c.clone()));
        (start, out)
    }
}

/// rustyline's helper: completion from [`Words`]; no hints, highlighting or validation.
pub struct ReplHelper {
    pub words: Arc<RwLock<Words>>,
}

impl Completer for ReplHelper {
    type Candidate = String;
    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(self.words.read().map(|w| w.complete(line, pos)).unwrap_or((pos, Vec::new())))
    }
}
impl Hinter for ReplHelper {
    type Hint = String;
}
impl Highlighter for ReplHelper {}
impl Validator for ReplHelper {}
impl Helper for ReplHelper {}

struct RustylineReader {
    editor: Editor<ReplHelper, DefaultHistory>,
}

impl LineReader for RustylineReader {
    fn read_line(&mut self, prompt: &str) -> ReadResult {
        match tokio::task::block_in_place(|| self.editor.readline(prompt)) {
            Ok(l) => ReadResult::Line(l),
            Err(ReadlineError::Interrupted) => ReadResult::Interrupted,
            Err(_) => ReadResult::Eof,
        }
    }
    fn add_history(&mut self, line: &str) {
        let _ = self.editor.add_history_entry(line);
    }
}

/// A `Write` whose bytes tests can read back.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    pub fn text(&self) -> String {
        self.0.lock().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the loop that read a meta-command does next.
#[derive(Debug, PartialEq)]
pub enum Flow {
    Continue,
    Quit,
}

pub struct Repl<'a> {
    engine: &'a Engine,
    pub format: Format,
    pub timer: bool,
    pub maxrows: Option<usize>,
    /// Table width; `None` prints tables at their natural width.
    pub width: Option<usize>,
    out: Box<dyn Write + Send + 'a>,
    err: Box<dyn Write + Send + 'a>,
    pub words: Arc<RwLock<Words>>,
    /// The last statement that ran without error (for `.save`).
    pub last_query: Option<String>,
}

impl<'a> Repl<'a> {
    pub fn new(
        engine: &'a Engine,
        format: Format,
        out: Box<dyn Write + Send + 'a>,
        err: Box<dyn Write + Send + 'a>,
    ) -> Self {
        Repl {
            engine,
            format,
            timer: false,
            maxrows: None,
            width: None,
            out,
            err,
            words: Arc::new(RwLock::new(Words::default())),
            last_query: None,
        }
    }

    async fn refresh_words(&self) {
        let w = Words::collect(self.engine).await;
        if let Ok(mut words) = self.words.write() {
            *words = w;
        }
    }

    /// Reads and runs until `.quit` or end of input.
    pub async fn run(&mut self, reader: &mut dyn LineReader) {
        self.refresh_words().await;
        let secrets = self.engine.secrets();
        let mut buffer = String::new();
        loop {
            let prompt = if buffer.is_empty() { "jcsql> " } else { "   ...> " };
            let line = match reader.read_line(prompt) {
                ReadResult::Line(l) => l,
                ReadResult::Interrupted => {
                    buffer.clear();
                    continue;
                }
                ReadResult::Eof => break,
            };
            let trimmed = line.trim();
            let keep_in_history = |l: &str| secrets.iter().all(|s| s.is_empty() || !l.contains(s.as_str()));
            if buffer.is_empty() && (trimmed.starts_with('.') || trimmed.starts_with('\\')) {
                if keep_in_history(trimmed) {
                    reader.add_history(trimmed);
                }
                match self.meta_command(trimmed, reader).await {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Quit) => break,
                    Err(msg) => {
                        let _ = writeln!(self.err, "Error: {msg}");
                    }
                }
                continue;
            }
            if trimmed.is_empty() && buffer.is_empty() {
                continue;
            }
            if !buffer.is_empty() {
                buffer.push('\n');
            }
            buffer.push_str(&line);
            if !trimmed.ends_with(';') {
                continue;
            }
            let text = std::mem::take(&mut buffer);
            if keep_in_history(text.trim()) {
                reader.add_history(text.trim());
            }
            for stmt in split_statements(&text) {
                self.run_statement(&stmt.sql, reader).await;
            }
            self.refresh_words().await;
        }
        let _ = self.out.flush();
    }

    /// Runs one statement through the pipeline: result, plan, the question, what was applied.
    pub async fn run_statement(&mut self, sql: &str, reader: &mut dyn LineReader) {
        if self.run_with(sql, &mut Ask(reader)).await {
            self.last_query = Some(sql.to_string());
        }
    }

    /// A meta-command's query (it plans no action, so nothing is asked).
    async fn show_query(&mut self, sql: &str) {
        self.run_with(sql, &mut YesFlag(false)).await;
    }

    /// `true` when the statement ran (whatever became of its plan).
    async fn run_with(&mut self, sql: &str, confirm: &mut dyn Confirm) -> bool {
        let pipeline = Pipeline {
            engine: self.engine,
            format: self.format,
            maxrows: self.maxrows,
            width: self.width,
            footer: matches!(self.format, Format::Table | Format::Line),
            timer: self.timer,
            summary: true,
            cancellable: true,
        };
        let ran = match pipeline.run(sql, &mut self.out, &mut self.err, confirm).await {
            Outcome::Failed(msg) => {
                let _ = writeln!(self.err, "Error: {msg}");
                false
            }
            Outcome::Cancelled => false,
            _ => true,
        };
        let _ = self.out.flush();
        ran
    }

    /// `.action NAME`: asks for each input, then plans, confirms and applies the one call.
    async fn prompted_action(&mut self, name: &str, reader: &mut dyn LineReader) {
        let Some(action) = crate::actions::action(name) else {
            let names: Vec<&str> = ACTIONS.iter().map(|a| a.name).collect();
            let _ = writeln!(self.err, "Error: unknown action {name}; the actions are: {}", names.join(", "));
            return;
        };
        let mut values = Vec::new();
        for input in action.inputs {
            match reader.read_line(&format!("{}: ", input.describe())) {
                ReadResult::Line(v) if !v.trim().is_empty() => values.push(v.trim().to_string()),
                ReadResult::Line(_) if input.optional => {}
                _ => {
                    let _ = writeln!(self.err, "Nothing was planned.");
                    return;
                }
            }
        }
        let sql = crate::actions::statement_for(action, &values);
        self.run_statement(&sql, reader).await;
    }

    fn print_batch(&mut self, batch: RecordBatch) {
        let schema = batch.schema();
        if let Err(e) = write_result(&mut self.out, self.format, &schema, &[batch], None, self.width) {
            let _ = writeln!(self.err, "Error: {e}");
        }
    }

    /// Runs a meta-command. `Err` is the one-line error (the REPL prints it and goes on; a script
    /// stops on it).
    pub async fn meta_command(&mut self, line: &str, reader: &mut dyn LineReader) -> Result<Flow, String> {
        let mut parts = line.trim_end_matches(';').split_whitespace();
        let cmd = parts.next().unwrap_or_default();
        let arg = parts.next();
        let name = match cmd {
            "\\q" => ".quit",
            "\\?" | "\\h" => ".help",
            "\\d" if arg.is_some() => ".schema",
            "\\d" => ".tables",
            ".exit" => ".quit",
            c => c,
        };
        match (name, arg) {
            (".quit", _) => return Ok(Flow::Quit),
            (".help", _) => {
                let batch = help_batch();
                self.print_batch(batch);
                let _ = writeln!(
                    self.out,
                    "Statements end with `;` and may span lines; Ctrl-C cancels a running statement."
                );
            }
            (".tables", _) => {
                self.show_query(
                    "select table_schema as schema, table_name as name, lower(table_type) as type \
                     from information_schema.tables where table_schema <> 'information_schema' order by 1, 2",
                )
                .await;
            }
            (".schema", Some(table)) => {
                let b = schema_batch(self.engine, table).await?;
                self.print_batch(b);
            }
            (".mode", Some(m)) => {
                self.format = <Format as clap::ValueEnum>::from_str(m, true)
                    .map_err(|_| format!("unknown mode {m}; use table, line, csv, json, ndjson or markdown"))?;
            }
            (".boards", None) => {
                self.show_query("select name, title, sources, error from jcsql.boards order by name").await;
            }
            (".sources", None) => {
                self.show_query("select name, kind, path, tables, error from jcsql.sources order by name").await;
            }
            (".permissions", None) => {
                self.show_query("select action, enabled from jcsql.permissions").await;
            }
            (".actions", None) => {
                let p = self.engine.actions().permissions();
                let batch = string_batch(&[
                    ("action", ACTIONS.iter().map(|a| a.name.to_string()).collect()),
                    (
                        "inputs",
                        ACTIONS
                            .iter()
                            .map(|a| a.inputs.iter().map(|i| i.describe()).collect::<Vec<_>>().join(", "))
                            .collect(),
                    ),
                    ("enabled", ACTIONS.iter().map(|a| p.allows(a.name).to_string()).collect()),
                    ("does", ACTIONS.iter().map(|a| a.does.to_string()).collect()),
                ]);
                self.print_batch(batch);
            }
            (".action", Some(name)) => self.prompted_action(name, reader).await,
            (".fields", Some(table)) => {
                let b = super::workspace::fields_batch(self.engine, table).await.map_err(|e| e.to_string())?;
                if b.num_rows() == 0 {
                    let _ = writeln!(
                        self.err,
                        "Nothing joins to {table} yet; `jcsql connect files NAME PATH` adds another tool's export."
                    );
                } else {
                    self.print_batch(b);
                }
            }
            (".save", Some(board)) => {
                let title: Vec<&str> = line.split_whitespace().skip(2).collect();
                let title = (!title.is_empty()).then(|| title.join(" "));
                let result = match (&self.last_query, self.engine.boards_dir()) {
                    (None, _) => Err("no query to save yet: run one first, then `.save NAME`".to_string()),
                    (_, None) => Err("no boards folder is set".to_string()),
                    (Some(sql), Some(dir)) => {
                        self.engine.save_board(&dir, board, sql, title.as_deref()).await.map_err(|e| e.to_string())
                    }
                };
                let path = result?;
                let _ = writeln!(self.err, "saved board {board} in {} (query it as boards.{board})", path.display());
                self.refresh_words().await;
            }
            (".timer", Some(v @ ("on" | "off"))) => self.timer = v == "on",
            (".offline", Some(v @ ("on" | "off"))) => {
                for conn in self.engine.all_connections() {
                    conn.set_freshness(Freshness { offline: v == "on", ..conn.freshness() });
                }
            }
            (".refresh", table) => {
                let names: Vec<String> = table.map(|t| vec![t.to_string()]).unwrap_or_default();
                let mut failed = Vec::new();
                for (name, r) in self.engine.connection().sync(&names).await {
                    match r {
                        Ok(s) => {
                            let _ = writeln!(
                                self.err,
                                "{name}: {} in {:.1}s ({})",
                                plural(s.rows as usize, "row"),
                                s.duration.as_secs_f64(),
                                plural(s.requests as usize, "request")
                            );
                        }
                        Err(e) => failed.push(format!("{name}: {e}")),
                    }
                }
                if !failed.is_empty() {
                    return Err(failed.join("; "));
                }
            }
            _ => {
                return Err(match META_COMMANDS.iter().find(|(n, _, _)| *n == name) {
                    Some((n, args, _)) => format!("usage: {n} {args}"),
                    None => format!("unknown command {cmd}; `.help` lists the commands"),
                });
            }
        }
        Ok(Flow::Continue)
    }
}

fn string_batch(columns: &[(&str, Vec<String>)]) -> RecordBatch {
    let schema =
        Arc::new(Schema::new(columns.iter().map(|(n, _)| Field::new(*n, DataType::Utf8, false)).collect::<Vec<_>>()));
    let arrays: Vec<ArrayRef> =
        columns.iter().map(|(_, v)| Arc::new(StringArray::from(v.clone())) as ArrayRef).collect();
    RecordBatch::try_new(schema, arrays).unwrap_or_else(|_| RecordBatch::new_empty(Arc::new(Schema::empty())))
}

fn help_batch() -> RecordBatch {
    string_batch(&[
        ("command", META_COMMANDS.iter().map(|(n, a, _)| format!("{n} {a}").trim_end().to_string()).collect()),
        ("does", META_COMMANDS.iter().map(|(_, _, d)| d.to_string()).collect()),
    ])
}

/// `.schema TABLE`: each column's name, type, whether it is the primary field, and its meaning.
pub async fn schema_batch(engine: &Engine, table: &str) -> Result<RecordBatch, String> {
    let ctx = engine.context();
    let Some(table) = engine.qualify(table).await else {
        let tables = crate::explain::known_tables(ctx);
        let near = crate::explain::nearest(table, tables.iter(), 3);
        return Err(if near.is_empty() {
            format!("unknown table {table}; `.tables` lists the tables")
        } else {
            format!(
                "unknown table {table}; did you mean {}?",
                near.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            )
        });
    };
    let provider = ctx.table_provider(table.as_str()).await.map_err(|e| engine.explain(&e))?;
    let schema = provider.schema();
    // A connection's table is described by its definition; other tools' primary field is found
    // from the data.
    let def = table.split_once('.').and_then(|(schema, name)| {
        let conn = engine.schema_connection(schema)?;
        conn.definitions.iter().find(|d| d.name == name)
    });
    let view = table.split_once('.').and_then(|(schema, name)| {
        let conn = engine.schema_connection(schema)?;
        conn.views.iter().find(|v| v.name == name)
    });
    let found_primary =
        if def.is_none() && view.is_none() { crate::sources::primary_field(ctx, &table).await } else { None };
    let mut names = Vec::new();
    let mut types = Vec::new();
    let mut primary = Vec::new();
    let mut meaning = Vec::new();
    for f in schema.fields() {
        names.push(f.name().clone());
        types.push(f.data_type().to_string());
        let is_primary = f.metadata().get(PRIMARY_FIELD_KEY).is_some() || found_primary.as_deref() == Some(f.name());
        primary.push(if is_primary { "primary".into() } else { String::new() });
        meaning.push(def.and_then(|d| d.column(f.name())).map(|c| c.description.to_string()).unwrap_or_default());
    }
    Ok(string_batch(&[("column", names), ("type", types), ("key", primary), ("description", meaning)]))
}

/// Asks on the REPL's line reader whether to apply a plan.
struct Ask<'r>(&'r mut dyn LineReader);

impl Confirm for Ask<'_> {
    fn confirm(&mut self, calls: usize) -> Result<(), String> {
        match self.0.read_line(&format!("Apply {}? [y/N] ", plural(calls, "call"))) {
            ReadResult::Line(a) if matches!(a.trim(), "y" | "Y" | "yes") => Ok(()),
            _ => Err("Nothing was applied.".into()),
        }
    }
}

/// The interactive REPL on the terminal.
pub async fn run(engine: &Engine, g: &GlobalArgs, home: &Home, format: Format) -> Result<u8, JcsqlError> {
    let mut editor = Editor::<ReplHelper, DefaultHistory>::new()
        .map_err(|e| JcsqlError::Config(format!("cannot start the line editor: {e}")))?;
    let history = home.history_file();
    let _ = editor.load_history(&history);
    if !engine.connection().is_connected() {
        eprintln!("{}", JcsqlError::NotConnected);
    }
    let mut repl = Repl::new(engine, format, Box::new(std::io::stdout()), Box::new(std::io::stderr()));
    repl.maxrows = g.maxrows;
    repl.width = terminal_width();
    editor.set_helper(Some(ReplHelper { words: repl.words.clone() }));
    let mut reader = RustylineReader { editor };
    repl.run(&mut reader).await;
    if let Some(dir) = history.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = reader.editor.history_mut().set_max_len(5000);
    let _ = reader.editor.save_history(&history);
    Ok(0)
}

//! The one statement pipeline every front end uses (`-c`, `-f`, stdin, the REPL, `.action`):
//! run → show the result → show the plan → confirm → apply → show what happened.

use std::io::Write;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

use super::output::{Format, render, render_table};
use crate::Engine;
use crate::actions::{self, CallResult, describe_plan};
use crate::error::JcsqlError;

/// How a front end answers "apply these calls?".
pub trait Confirm {
    /// `Ok(())` to apply `calls`; `Err(message)` says why nothing is applied.
    fn confirm(&mut self, calls: usize) -> Result<(), String>;
    /// Whether the statement's own result is shown before the plan. `-c --yes` shows only what
    /// was applied, so a script's output is the outcome.
    fn shows_planned_result(&self) -> bool {
        true
    }
}

/// `-c` / `-f`: apply only with `--yes`.
pub struct YesFlag(pub bool);

impl Confirm for YesFlag {
    fn confirm(&mut self, calls: usize) -> Result<(), String> {
        if self.0 {
            Ok(())
        } else {
            Err(format!("Nothing was applied: run again with --yes to apply {}.", plural(calls, "call")))
        }
    }
    fn shows_planned_result(&self) -> bool {
        !self.0
    }
}

/// What became of one statement.
#[derive(Debug)]
pub enum Outcome {
    /// Rows were shown (no action planned).
    Shown,
    /// Actions were planned and applied; the results say how each call went.
    Applied(Vec<CallResult>),
    /// Actions were planned and the user (or the missing `--yes`) said no.
    NotApplied,
    /// Cancelled with Ctrl-C.
    Cancelled,
    /// The statement failed; the one-line message was not printed yet.
    Failed(String),
}

pub struct Pipeline<'a> {
    pub engine: &'a Engine,
    pub format: Format,
    /// Rows shown at most in table, line and markdown output.
    pub maxrows: Option<usize>,
    /// Terminal width for tables.
    pub width: Option<usize>,
    /// Print `N rows in T s` after each result.
    pub footer: bool,
    /// Add the API requests the statement caused to the footer.
    pub timer: bool,
    /// Print `Applied: …` after applying.
    pub summary: bool,
    /// Ctrl-C cancels the statement instead of the process.
    pub cancellable: bool,
}

pub fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

impl Pipeline<'_> {
    pub async fn run(&self, sql: &str, out: &mut dyn Write, err: &mut dyn Write, confirm: &mut dyn Confirm) -> Outcome {
        let started = Instant::now();
        let requests_before = self.requests_made();
        let result = if self.cancellable {
            tokio::select! {
                r = self.engine.execute(sql) => Some(r),
                _ = tokio::signal::ctrl_c() => None,
            }
        } else {
            Some(self.engine.execute(sql).await)
        };
        let done = match result {
            None => {
                let _ = writeln!(err, "cancelled");
                return Outcome::Cancelled;
            }
            Some(Err(e)) => return Outcome::Failed(self.engine.explain(&e)),
            Some(Ok(done)) => done,
        };
        // A statement with no result columns (DDL, `SET`) prints no header, as psql prints none.
        let has_result = !done.schema.fields().is_empty();
        if has_result && (done.planned.is_empty() || confirm.shows_planned_result()) {
            self.show(out, err, &done.schema, &done.batches);
            if self.footer || self.timer {
                let rows: usize = done.batches.iter().map(RecordBatch::num_rows).sum();
                let mut footer = format!("{} in {:.3}s", plural(rows, "row"), started.elapsed().as_secs_f64());
                if let Some(m) =
                    self.maxrows.filter(|m| *m < rows && matches!(self.format, Format::Table | Format::Line))
                {
                    footer.push_str(&format!(" ({m} shown)"));
                }
                if self.timer {
                    let requests = self.requests_made().saturating_sub(requests_before);
                    footer.push_str(&format!(", {}", plural(requests as usize, "API request")));
                }
                let _ = writeln!(err, "{footer}");
            }
        }
        if done.planned.is_empty() {
            if !done.called.is_empty() {
                let _ = writeln!(err, "The result shows no planned call, so nothing is applied.");
            }
            return Outcome::Shown;
        }
        let _ = write!(err, "{}", describe_plan(&done.planned, &self.engine.actions().permissions()));
        let _ = err.flush();
        if let Err(why) = confirm.confirm(done.planned.len()) {
            let _ = writeln!(err, "{why}");
            return Outcome::NotApplied;
        }
        let results = self.engine.apply(&done.planned).await;
        let batch = actions::results_batch(&results);
        self.show(out, err, &batch.schema(), std::slice::from_ref(&batch));
        if self.summary {
            let _ = writeln!(err, "Applied: {}", actions::summarize(&results));
        }
        Outcome::Applied(results)
    }

    fn requests_made(&self) -> u64 {
        self.engine.all_connections().map(|c| c.requests_made()).sum()
    }

    fn show(&self, out: &mut dyn Write, err: &mut dyn Write, schema: &SchemaRef, batches: &[RecordBatch]) {
        if let Err(e) = write_result(out, self.format, schema, batches, self.maxrows, self.width) {
            let _ = writeln!(err, "Error: {e}");
        }
    }
}

/// Writes a result in `format`; `maxrows` caps the rows shown in table, line and markdown
/// output, `width` fits tables to a terminal.
pub fn write_result(
    out: &mut dyn Write,
    format: Format,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    maxrows: Option<usize>,
    width: Option<usize>,
) -> Result<(), JcsqlError> {
    let shown: Vec<RecordBatch> = match (format, maxrows) {
        (Format::Table | Format::Line | Format::Markdown, Some(max)) => {
            let mut left = max;
            batches
                .iter()
                .filter_map(|b| {
                    let take = left.min(b.num_rows());
                    left -= take;
                    (take > 0).then(|| b.slice(0, take))
                })
                .collect()
        }
        _ => batches.to_vec(),
    };
    let text = match format {
        Format::Table => render_table(schema, &shown, width),
        f => render(f, schema, &shown),
    }
    .map_err(|e| JcsqlError::Config(format!("cannot format the result: {e}")))?;
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
    Ok(())
}

/// One statement of a script and the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub line: usize,
    pub sql: String,
}

/// One step of a `-f` file, `-c` text or stdin script: SQL, or a meta-command on a line of its own.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptStep {
    Sql(Statement),
    /// `.timer on`, `\d users`: a line starting with `.` or `\` where no statement is open, as
    /// psql reads its own meta-commands in `-f` files.
    Meta(Statement),
}

/// Splits a script into statements and meta-command lines, in order.
pub fn split_script(text: &str) -> Vec<ScriptStep> {
    let mut steps = Vec::new();
    let mut pending = String::new();
    let mut pending_from = 1;
    let flush = |pending: &str, from: usize, steps: &mut Vec<ScriptStep>| {
        for mut stmt in split_statements(pending) {
            stmt.line += from - 1;
            steps.push(ScriptStep::Sql(stmt));
        }
    };
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if (trimmed.starts_with('.') || trimmed.starts_with('\\')) && !split(&pending).1 {
            flush(&pending, pending_from, &mut steps);
            pending.clear();
            pending_from = i + 2;
            steps.push(ScriptStep::Meta(Statement { line: i + 1, sql: trimmed.to_string() }));
            continue;
        }
        pending.push_str(line);
        pending.push('\n');
    }
    flush(&pending, pending_from, &mut steps);
    steps
}

/// Splits on `;` outside quotes and comments; empty statements are dropped.
pub fn split_statements(text: &str) -> Vec<Statement> {
    split(text).0
}

/// The statements, and whether the text ends inside one (unterminated, in a quote or a comment).
fn split(text: &str) -> (Vec<Statement>, bool) {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut line = 1;
    let mut start_line = None;
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    let mut in_comment = false;
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        }
        if let Some(q) = quote {
            cur.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                start_line.get_or_insert(line);
                cur.push(c);
            }
            '-' if chars.peek() == Some(&'-') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        line += 1;
                        cur.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut prev = ' ';
                in_comment = true;
                for n in chars.by_ref() {
                    if n == '\n' {
                        line += 1;
                    }
                    if prev == '*' && n == '/' {
                        in_comment = false;
                        break;
                    }
                    prev = n;
                }
                cur.push(' ');
            }
            ';' => {
                if !cur.trim().is_empty() {
                    out.push(Statement { line: start_line.unwrap_or(line), sql: cur.trim().to_string() });
                }
                cur.clear();
                start_line = None;
            }
            c => {
                if !c.is_whitespace() {
                    start_line.get_or_insert(line);
                }
                cur.push(c);
            }
        }
    }
    let open = quote.is_some() || in_comment || !cur.trim().is_empty();
    if !cur.trim().is_empty() {
        out.push(Statement { line: start_line.unwrap_or(line), sql: cur.trim().to_string() });
    }
    (out, open)
}

//! `jcsql check` (boards for cron and CI) and `jcsql watch` (what changed since the last run,
//! delivered to webhooks); the work is in [`crate::watch`], this is how it prints and exits.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::output::Format;
use super::pipeline::{plural, write_result};
use crate::Engine;
use crate::boards::Board;
use crate::watch::{self, deliver};

/// Exit codes of `check` and `watch --once`: nothing to report, something to report, an error.
pub const CLEAN: u8 = 0;
pub const FOUND: u8 = 1;
pub const FAILED: u8 = 2;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Boards to run (names from `jcsql board list`)
    #[arg(value_name = "BOARD")]
    pub names: Vec<String>,
    /// Run every board
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WatchArgs {
    #[command(subcommand)]
    pub command: Option<WatchCommand>,
    /// Boards to watch (names from `jcsql board list`)
    #[arg(value_name = "BOARD")]
    pub names: Vec<String>,
    /// Watch every board
    #[arg(long)]
    pub all: bool,
    /// Run every D (e.g. 1h, 15m) until interrupted
    #[arg(long, value_name = "D", conflicts_with = "once")]
    pub every: Option<String>,
    /// Run once and exit: 0 nothing new, 1 new events (all delivered), 2 an error or undelivered events
    #[arg(long)]
    pub once: bool,
    /// POST each board's events here (repeatable); the URL is never printed
    #[arg(long = "webhook", value_name = "URL")]
    pub webhooks: Vec<String>,
    /// Post a one-line summary to this Slack incoming webhook
    #[arg(long, value_name = "URL")]
    pub slack: Option<String>,
    /// Append every event as a JSON line to FILE (`-`: standard output)
    #[arg(long, value_name = "FILE")]
    pub events: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
pub enum WatchCommand {
    /// Each watched board's last run, open rows, last error and undelivered deliveries
    Status,
}

/// The boards named, or all of them; `Err` is the usage error.
fn chosen(engine: &Engine, names: &[String], all: bool) -> Result<Vec<Board>, String> {
    let boards = engine.boards();
    match (all, names.is_empty()) {
        // A wrong boards folder must not pass a CI job by running nothing.
        (true, true) if boards.is_empty() => Err(format!(
            "no boards to run: {} has no .sql files (set --boards DIR)",
            engine.boards_dir().map_or_else(|| "the boards folder".to_string(), |d| d.display().to_string())
        )),
        (true, true) => Ok(boards),
        (true, false) => Err("name boards or use --all, not both".into()),
        (false, true) => Err("name the boards to run, or use --all (`jcsql board list` lists them)".into()),
        (false, false) => {
            names.iter().map(|n| crate::boards::find(&boards, n).cloned().map_err(|e| e.to_string())).collect()
        }
    }
}

/// `jcsql check`: each board's rows; exit 0 (none), 1 (some board has rows) or 2 (an error).
pub async fn check(engine: &Engine, args: &CheckArgs, format: Format) -> u8 {
    let boards = match chosen(engine, &args.names, args.all) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("Error: {e}");
            return FAILED;
        }
    };
    let runs = watch::run_boards(engine, &boards).await;
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json | Format::Ndjson => {
            let objects: Vec<serde_json::Value> = runs
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "board": r.name, "title": r.title, "count": r.rows.len(), "rows": r.rows,
                        "data_as_of": r.data_as_of, "error": r.error,
                    })
                })
                .collect();
            let text = if format == Format::Json {
                serde_json::Value::Array(objects).to_string() + "\n"
            } else {
                objects.iter().map(|o| o.to_string() + "\n").collect()
            };
            let _ = out.write_all(text.as_bytes());
        }
        _ => {
            for (i, r) in runs.iter().enumerate() {
                if i > 0 {
                    let _ = writeln!(out);
                }
                match &r.error {
                    Some(e) => {
                        let _ = writeln!(out, "{}: error: {e}", r.name);
                    }
                    None => {
                        let _ = writeln!(out, "{}: {}", r.name, plural(r.rows.len(), "row"));
                        if let Some(first) = r.batches.iter().find(|b| b.num_rows() > 0) {
                            let _ = write_result(&mut out, format, &first.schema(), &r.batches, None, None);
                        }
                    }
                }
            }
        }
    }
    let _ = out.flush();
    for r in runs.iter().filter(|r| r.error.is_some()) {
        eprintln!("Error: board {}: {}", r.name, r.error.as_deref().unwrap_or_default());
    }
    if runs.iter().any(|r| r.error.is_some()) {
        FAILED
    } else if runs.iter().any(|r| !r.rows.is_empty()) {
        FOUND
    } else {
        CLEAN
    }
}

/// `jcsql watch …`: one run (`--once`) or one every D until Ctrl-C; `watch status`.
pub async fn watch(engine: &Engine, args: &WatchArgs, home: &Path, format: Format, quiet: bool) -> u8 {
    let dir = watch::state::dir(home);
    if let Some(WatchCommand::Status) = args.command {
        return status(&dir, format);
    }
    let usage = |e: &str| {
        eprintln!("Error: {e}");
        FAILED
    };
    let boards = match chosen(engine, &args.names, args.all) {
        Ok(b) => b,
        Err(e) => return usage(&e),
    };
    let every = match (&args.every, args.once) {
        (Some(d), false) => match super::config::parse_duration(d) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => return usage(&format!("--every takes a duration such as 1h or 15m, not {d}")),
        },
        (None, true) => None,
        _ => return usage("say how often: --every 1h, or --once"),
    };
    let mut targets = Vec::new();
    for (url, slack) in args.webhooks.iter().map(|u| (u, false)).chain(args.slack.iter().map(|u| (u, true))) {
        match deliver::Target::new(url, slack) {
            Ok(t) => targets.push(t),
            Err(e) => return usage(&e),
        }
    }
    let http = match deliver::client() {
        Ok(c) => c,
        Err(e) => return usage(&e),
    };
    // One watcher per home at a time: two would compare against the same state and post twice.
    let _lock = match watch::state::lock(&dir) {
        Ok(lock) => lock,
        Err(e) => return usage(&e),
    };
    let Some(every) = every else {
        return run_once(engine, &boards, &dir, &targets, &http, args.events.as_deref(), quiet).await;
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::new(tokio::sync::Notify::new());
    {
        let (stop, stopped) = (stop.clone(), stopped.clone());
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
                stopped.notify_waiters();
            }
        });
    }
    loop {
        run_once(engine, &boards, &dir, &targets, &http, args.events.as_deref(), quiet).await;
        if stop.load(Ordering::SeqCst) {
            return CLEAN;
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopped.notified() => return CLEAN,
        }
        if stop.load(Ordering::SeqCst) {
            return CLEAN;
        }
    }
}

async fn run_once(
    engine: &Engine,
    boards: &[Board],
    dir: &Path,
    targets: &[deliver::Target],
    http: &reqwest::Client,
    events_to: Option<&str>,
    quiet: bool,
) -> u8 {
    let watched = watch::watch_once(engine, boards, dir, targets, http).await;
    if let Some(to) = events_to {
        let lines: String = watched
            .iter()
            .flat_map(|w| &w.events)
            .filter_map(|e| serde_json::to_string(e).ok())
            .map(|l| l + "\n")
            .collect();
        let written = if to == "-" {
            std::io::stdout().lock().write_all(lines.as_bytes())
        } else {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(to)
                .and_then(|mut f| f.write_all(lines.as_bytes()))
        };
        if let Err(e) = written {
            eprintln!("Error: cannot write the events to {to}: {e}");
            return FAILED;
        }
    }
    let mut code = CLEAN;
    for w in &watched {
        let count = |kind: &str| w.events.iter().filter(|e| e.kind == kind).count();
        if w.events.iter().any(|e| e.kind != "baseline") {
            code = code.max(FOUND);
        }
        if w.error.is_some() || !w.undelivered.is_empty() {
            code = FAILED;
        }
        if quiet {
            continue;
        }
        let mut said = Vec::new();
        if count("baseline") > 0 {
            let open = w.events.iter().find(|e| e.kind == "baseline").map_or(0, |e| e.open_count);
            said.push(format!("baseline, {open} open"));
        }
        for kind in ["added", "removed", "changed", "source_error", "source_recovered"] {
            let n = count(kind);
            if n > 0 {
                said.push(format!("{n} {}", kind.replace('_', " ")));
            }
        }
        if said.is_empty() {
            said.push("nothing new".into());
        }
        if w.delivered > 0 {
            said.push(format!("{} delivered", plural(w.delivered, "post")));
        }
        if let Some(e) = &w.error {
            said.push(format!("error: {e}"));
        }
        for why in &w.undelivered {
            said.push(format!("not delivered: {why}; kept in the outbox for the next run"));
        }
        eprintln!("{}: {}", w.board, said.join("; "));
    }
    code
}

fn status(dir: &Path, format: Format) -> u8 {
    let states = watch::state::all(dir);
    if states.is_empty() {
        eprintln!("No board has been watched yet: `jcsql watch --all --once` makes the baseline.");
        return CLEAN;
    }
    let mut columns: Vec<Vec<String>> = vec![Vec::new(); 6];
    let mut code = CLEAN;
    for (board, state) in &states {
        let row = match state {
            Ok(s) => [
                board.clone(),
                s.run.to_string(),
                s.last_run_at.clone().unwrap_or_default(),
                s.rows.len().to_string(),
                s.last_error.clone().unwrap_or_default(),
                s.outbox.len().to_string(),
            ],
            Err(e) => {
                code = FAILED;
                [board.clone(), String::new(), String::new(), String::new(), e.clone(), String::new()]
            }
        };
        for (c, v) in columns.iter_mut().zip(row) {
            c.push(v);
        }
    }
    let names = ["board", "runs", "last_run", "open", "last_error", "outbox"];
    let schema = Arc::new(Schema::new(names.iter().map(|n| Field::new(*n, DataType::Utf8, false)).collect::<Vec<_>>()));
    let arrays: Vec<ArrayRef> = columns.into_iter().map(|c| Arc::new(StringArray::from(c)) as ArrayRef).collect();
    match RecordBatch::try_new(schema.clone(), arrays) {
        Ok(batch) => {
            let _ = write_result(&mut std::io::stdout().lock(), format, &schema, &[batch], None, None);
        }
        Err(e) => {
            eprintln!("Error: {e}");
            return FAILED;
        }
    }
    code
}

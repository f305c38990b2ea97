//! The interactive prompt: multi-line statements ended by `;`, persistent history, Ctrl-C
//! cancels the running statement, Ctrl-D exits, and dot meta-commands (`\` aliases).

use std::time::Instant;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::Engine;
use crate::cli::{GlobalArgs, plural, print_result, run_statement, split_statements};
use crate::config::Home;
use crate::error::{JcsqlError, user_message};
use crate::jumpcloud::{Freshness, human_age};
use crate::output::Format;

pub const HELP: &str = "\
Statements end with `;` and may span lines. Ctrl-C cancels a running statement, Ctrl-D exits.

  .tables               list tables (JumpCloud, meta and other sources)
  .schema TABLE         columns, types and what each JumpCloud column means
  .mode FORMAT          table, csv, json, ndjson or markdown
  .timer on|off         show time, rows and API requests after each statement
  .refresh [TABLE]      fetch a table (all tables when none is named) now
  .offline on|off       answer from the cached snapshots only
  .help                 this text
  .quit                 leave (also \\q)

Try: select state, count(*) from jumpcloud.users group by state;";

struct ReplState {
    format: Format,
    timer: bool,
}

pub async fn run(engine: &Engine, g: &GlobalArgs, home: &Home, format: Format) -> Result<u8, JcsqlError> {
    let mut editor =
        DefaultEditor::new().map_err(|e| JcsqlError::Config(format!("cannot start the line editor: {e}")))?;
    let history = home.history_file();
    let _ = editor.load_history(&history);
    if engine.connection().client().is_none() {
        eprintln!("{}", JcsqlError::NotConnected);
    }
    let mut state = ReplState { format, timer: false };
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "jcsql> " } else { "   ...> " };
        let line = tokio::task::block_in_place(|| editor.readline(prompt));
        match line {
            Ok(line) => {
                let trimmed = line.trim();
                if buffer.is_empty() && (trimmed.starts_with('.') || trimmed.starts_with('\\')) {
                    let _ = editor.add_history_entry(trimmed);
                    if !meta_command(engine, &mut state, trimmed).await {
                        break;
                    }
                    continue;
                }
                if !buffer.is_empty() {
                    buffer.push('\n');
                }
                buffer.push_str(&line);
                if !trimmed.ends_with(';') {
                    continue;
                }
                let _ = editor.add_history_entry(buffer.trim());
                let text = std::mem::take(&mut buffer);
                for stmt in split_statements(&text) {
                    execute(engine, &state, g, &stmt.sql).await;
                }
            }
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(JcsqlError::Config(format!("the line editor failed: {e}"))),
        }
    }
    if let Some(dir) = history.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = editor.save_history(&history);
    Ok(0)
}

async fn execute(engine: &Engine, state: &ReplState, g: &GlobalArgs, sql: &str) {
    let started = Instant::now();
    let requests_before = engine.connection().requests_made();
    tokio::select! {
        result = run_statement(engine, sql) => match result {
            Ok((schema, batches)) => {
                if let Err(e) = print_result(state.format, &schema, &batches, g.maxrows) {
                    eprintln!("Error: {e}");
                }
                let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
                if state.timer {
                    let requests = engine.connection().requests_made() - requests_before;
                    eprintln!("{} in {:.3}s, {}", plural(rows, "row"), started.elapsed().as_secs_f64(), plural(requests as usize, "API request"));
                } else if state.format == Format::Table {
                    eprintln!("{}", plural(rows, "row"));
                }
            }
            Err(e) => eprintln!("Error: {}", user_message(&e)),
        },
        _ = tokio::signal::ctrl_c() => eprintln!("cancelled"),
    }
}

/// Runs a meta-command; `false` means leave the REPL.
async fn meta_command(engine: &Engine, state: &mut ReplState, line: &str) -> bool {
    let mut parts = line.trim_end_matches(';').split_whitespace();
    let cmd = parts.next().unwrap_or_default().trim_start_matches(['.', '\\']);
    let arg = parts.next();
    match (cmd, arg) {
        ("quit" | "exit" | "q", _) => return false,
        ("help" | "?" | "h", _) => println!("{HELP}"),
        ("tables" | "d", None) => {
            execute(
                engine,
                state,
                &GlobalArgs::default_for_repl(),
                "select table_schema, table_name, table_type from information_schema.tables \
                 where table_schema not in ('information_schema') order by 1, 2",
            )
            .await
        }
        ("schema" | "d", Some(table)) => {
            let (schema, name) = table.split_once('.').unwrap_or(("jumpcloud", table));
            let sql = format!(
                "select column_name, data_type, is_nullable from information_schema.columns \
                 where table_schema = '{}' and table_name = '{}' order by ordinal_position",
                schema.replace('\'', "''"),
                name.replace('\'', "''")
            );
            execute(engine, state, &GlobalArgs::default_for_repl(), &sql).await
        }
        ("mode", Some(m)) => match <Format as clap::ValueEnum>::from_str(m, true) {
            Ok(f) => state.format = f,
            Err(_) => {
                eprintln!("Error: unknown mode {m}; use table, csv, json, ndjson or markdown")
            }
        },
        ("timer", Some(v)) => state.timer = v == "on",
        ("offline", Some(v)) => {
            let f = engine.connection().freshness();
            engine.connection().set_freshness(Freshness { offline: v == "on", ..f });
        }
        ("refresh", table) => {
            let names: Vec<String> = table.map(|t| vec![t.to_string()]).unwrap_or_default();
            for (name, r) in engine.connection().sync(&names).await {
                match r {
                    Ok(s) => eprintln!(
                        "{name}: {} in {:.1}s ({})",
                        plural(s.rows as usize, "row"),
                        s.duration.as_secs_f64(),
                        plural(s.requests as usize, "request")
                    ),
                    Err(e) => eprintln!("Error: {name}: {e}"),
                }
            }
        }
        _ => eprintln!("Error: unknown command {line}; .help lists the commands"),
    }
    let _ = human_age;
    true
}

impl GlobalArgs {
    fn default_for_repl() -> GlobalArgs {
        GlobalArgs {
            commands: vec![],
            files: vec![],
            format: None,
            yes: false,
            offline: false,
            boards: None,
            max_age: None,
            max_in_flight: None,
            maxrows: None,
            quiet: false,
        }
    }
}

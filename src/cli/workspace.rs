//! The user's workspace around the JumpCloud connection: boards and other tools' exports,
//! and the shell commands that manage them (`board …`, `connect files`, `disconnect`, `fields`).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use super::config::{Home, StoredConfig};
use super::output::Format;
use super::{EXIT_NOT_APPLIED, EXIT_OK, GlobalArgs, plural, print_query, print_result};
use crate::Engine;
use crate::boards::{self, find};
use crate::error::{BoardError, JcsqlError, SourceError};
use crate::jumpcloud::simulator::Org;
use crate::jumpcloud::simulator::demo_data::{hr_csv, inventory_json};
use crate::sources::{self, SourceConfig};

/// The example boards, built into the binary so `jcsql demo` shows them anywhere.
pub const EXAMPLE_BOARDS: &[(&str, &str)] = &[
    (
        "google_accounts_without_jumpcloud_user",
        include_str!("../../examples/boards/google_accounts_without_jumpcloud_user.sql"),
    ),
    ("google_admins_without_2sv", include_str!("../../examples/boards/google_admins_without_2sv.sql")),
    (
        "google_groups_differing_from_jumpcloud",
        include_str!("../../examples/boards/google_groups_differing_from_jumpcloud.sql"),
    ),
    (
        "suspended_in_jumpcloud_active_in_google",
        include_str!("../../examples/boards/suspended_in_jumpcloud_active_in_google.sql"),
    ),
    (
        "suspended_in_jumpcloud_in_google_groups",
        include_str!("../../examples/boards/suspended_in_jumpcloud_in_google_groups.sql"),
    ),
    ("admin_changes_last_7_days", include_str!("../../examples/boards/admin_changes_last_7_days.sql")),
    ("administrators_without_mfa", include_str!("../../examples/boards/administrators_without_mfa.sql")),
    ("devices_with_failed_policy", include_str!("../../examples/boards/devices_with_failed_policy.sql")),
    ("empty_device_groups", include_str!("../../examples/boards/empty_device_groups.sql")),
    ("failed_logins_last_7_days", include_str!("../../examples/boards/failed_logins_last_7_days.sql")),
    ("apps_reachable_without_mfa", include_str!("../../examples/boards/apps_reachable_without_mfa.sql")),
    ("changes_last_24_hours", include_str!("../../examples/boards/changes_last_24_hours.sql")),
    ("empty_groups", include_str!("../../examples/boards/empty_groups.sql")),
    ("hr_leavers_still_active", include_str!("../../examples/boards/hr_leavers_still_active.sql")),
    ("new_administrators", include_str!("../../examples/boards/new_administrators.sql")),
    ("stale_devices", include_str!("../../examples/boards/stale_devices.sql")),
    ("stale_staged_users", include_str!("../../examples/boards/stale_staged_users.sql")),
    ("suspended_users_with_devices", include_str!("../../examples/boards/suspended_users_with_devices.sql")),
    ("unencrypted_devices", include_str!("../../examples/boards/unencrypted_devices.sql")),
    ("unenrolled_laptops", include_str!("../../examples/boards/unenrolled_laptops.sql")),
    ("users_in_no_group", include_str!("../../examples/boards/users_in_no_group.sql")),
    (
        "users_suspended_or_unsuspended_this_week",
        include_str!("../../examples/boards/users_suspended_or_unsuspended_this_week.sql"),
    ),
    ("users_without_mfa", include_str!("../../examples/boards/users_without_mfa.sql")),
    ("unencrypted_boot_volumes", include_str!("../../examples/boards/unencrypted_boot_volumes.sql")),
    ("local_admins_not_bound", include_str!("../../examples/boards/local_admins_not_bound.sql")),
    ("software_inventory", include_str!("../../examples/boards/software_inventory.sql")),
];

/// Writes the example boards and the exports that join to `org` under `dir`, and returns the
/// sources to register (`hr`, `inventory`).
pub fn write_demo_workspace(dir: &Path, org: &Org) -> std::io::Result<Vec<SourceConfig>> {
    let boards_dir = dir.join("boards");
    let data = dir.join("data");
    std::fs::create_dir_all(&boards_dir)?;
    std::fs::create_dir_all(&data)?;
    for (name, sql) in EXAMPLE_BOARDS {
        std::fs::write(boards_dir.join(format!("{name}.sql")), sql)?;
    }
    std::fs::write(data.join("hr.csv"), hr_csv(org))?;
    std::fs::write(data.join("inventory.json"), inventory_json(org))?;
    Ok(vec![
        SourceConfig { name: "hr".into(), path: data.join("hr.csv") },
        SourceConfig { name: "inventory".into(), path: data.join("inventory.json") },
    ])
}

/// Registers the sources and loads the boards; each failure is one warning line.
pub async fn open(engine: &Engine, sources: &[SourceConfig], boards_dir: &Path, quiet: bool) {
    for s in sources {
        let status = engine.add_source(s).await;
        if let Some(e) = status.error
            && !quiet
        {
            eprintln!("warning: source {}: {e}", s.name);
        }
    }
    for b in engine.load_boards(boards_dir).await {
        if let Some(e) = &b.error
            && !quiet
        {
            eprintln!("warning: board {}: {e}", b.name);
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum BoardCommand {
    /// List the boards, their titles, sources and errors
    List,
    /// Print a board's SQL and its status
    Show { name: String },
    /// Run a board
    Run { name: String },
    /// Save SQL (argument, or standard input) as a board
    Save {
        name: String,
        sql: Option<String>,
        #[arg(long)]
        title: Option<String>,
    },
    /// Delete a board (moved to boards/.deleted/ so it can be restored)
    Delete { name: String },
}

fn output_format(g: &GlobalArgs) -> Format {
    g.format.unwrap_or(if std::io::stdout().is_terminal() { Format::Table } else { Format::Csv })
}

pub async fn board_command(engine: &Engine, cmd: BoardCommand, g: &GlobalArgs) -> Result<u8, JcsqlError> {
    let dir = engine.boards_dir().ok_or(BoardError::NoFolder)?;
    let all = engine.boards();
    match cmd {
        BoardCommand::List => {
            let sql = "select name, title, sources, error from jcsql.boards order by name";
            print_query(engine, sql, output_format(g), g.maxrows).await?;
        }
        BoardCommand::Show { name } => {
            let b = find(&all, &name)?;
            print!("{}", b.sql);
            if !b.sql.ends_with('\n') {
                println!();
            }
            let sources = boards::sources_of(b, &all).into_iter().collect::<Vec<_>>().join(", ");
            eprintln!(
                "-- {} · reads {sources}{}",
                b.path.display(),
                b.error.as_ref().map(|e| format!(" · error: {e}")).unwrap_or_default()
            );
        }
        BoardCommand::Run { name } => {
            let b = find(&all, &name)?;
            if let Some(e) = &b.error {
                return Err(JcsqlError::Config(format!("board {}: {e}", b.name)));
            }
            print_query(engine, &format!("select * from boards.{}", b.name), output_format(g), g.maxrows).await?;
        }
        BoardCommand::Save { name, sql, title } => {
            let sql = match sql {
                Some(s) => s,
                None => {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                        .map_err(|e| JcsqlError::Config(format!("cannot read the SQL from standard input: {e}")))?;
                    s
                }
            };
            let path = engine.save_board(&dir, &name, &sql, title.as_deref()).await?;
            eprintln!("saved board {name} in {}", path.display());
        }
        BoardCommand::Delete { name } => {
            let b = find(&all, &name)?;
            let to = boards::archive(&dir, std::slice::from_ref(&b.name))?;
            engine.load_boards(&dir).await;
            eprintln!("deleted board {} (moved to {})", b.name, to.display());
        }
    }
    Ok(EXIT_OK)
}

/// `jcsql connect files NAME PATH`: registers the export now (so errors show at once) and
/// stores it in the config file.
pub async fn connect_files(engine: &Engine, home: &Home, name: &str, path: &Path) -> Result<u8, JcsqlError> {
    let taken: Vec<String> = engine.connections().iter().map(|c| c.name.clone()).collect();
    sources::validate_name(name, &taken)?;
    let path = std::fs::canonicalize(path)
        .map_err(|e| JcsqlError::File { path: path.display().to_string(), reason: format!("cannot read it ({e})") })?;
    let cfg = SourceConfig { name: name.to_string(), path };
    let status = engine.add_source(&cfg).await;
    if let Some(e) = status.error {
        return Err(SourceError::NotConnected { name: name.to_string(), error: Box::new(e) }.into());
    }
    for note in &status.notes {
        eprintln!("note: {note}");
    }
    let mut stored = StoredConfig::load(&home.config_file())?;
    stored.sources.retain(|s| s.name != name);
    stored.sources.push(cfg);
    stored.save(&home.config_file())?;
    let mut out = std::io::stdout().lock();
    for t in &status.tables {
        let primary = sources::primary_field(engine.context(), t).await.unwrap_or_else(|| "none found".into());
        let _ = writeln!(out, "{t} (primary field: {primary})");
    }
    Ok(EXIT_OK)
}

/// `jcsql disconnect NAME`: lists the boards that read the source, asks (or takes --yes), moves
/// them to `boards/.deleted/<timestamp>/`, and forgets the source (for `jumpcloud`: the key and
/// the cached snapshots).
pub async fn disconnect(engine: &Engine, home: &Home, name: &str, g: &GlobalArgs) -> Result<u8, JcsqlError> {
    let mut stored = StoredConfig::load(&home.config_file())?;
    let is_jumpcloud = name == "jumpcloud";
    if !is_jumpcloud && !stored.sources.iter().any(|s| s.name == name) {
        let known: Vec<&str> = stored.sources.iter().map(|s| s.name.as_str()).chain(["jumpcloud"]).collect();
        return Err(SourceError::Unknown { name: name.to_string(), known: known.join(", ") }.into());
    }
    let all = engine.boards();
    let using: Vec<String> =
        all.iter().filter(|b| boards::sources_of(b, &all).contains(name)).map(|b| b.name.clone()).collect();
    let dir = engine.boards_dir().unwrap_or_else(|| home.boards_dir());
    if using.is_empty() {
        eprintln!("No board reads {name}.");
    } else {
        eprintln!(
            "Disconnecting {name} deletes {} that read it: {} (moved to {}/.deleted/, so they can be restored).",
            plural(using.len(), "board"),
            using.join(", "),
            dir.display()
        );
    }
    if !g.yes {
        if !std::io::stdin().is_terminal() {
            eprintln!("Nothing was changed: run again with --yes to confirm.");
            return Ok(EXIT_NOT_APPLIED);
        }
        eprint!("Disconnect {name}? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            eprintln!("Nothing was changed.");
            return Ok(EXIT_NOT_APPLIED);
        }
    }
    if !using.is_empty() {
        let to = boards::archive(&dir, &using)?;
        eprintln!("Moved {} to {}.", plural(using.len(), "board"), to.display());
    }
    if is_jumpcloud {
        stored.jumpcloud = None;
        let cache = crate::connection::cache_dir(&home.cache_dir, "jumpcloud");
        if cache.exists()
            && let Err(e) = std::fs::remove_dir_all(&cache)
        {
            eprintln!("warning: cannot remove {} ({e})", cache.display());
        }
    } else {
        stored.sources.retain(|s| s.name != name);
    }
    stored.save(&home.config_file())?;
    eprintln!("Disconnected {name}.");
    Ok(EXIT_OK)
}

/// `.fields TABLE` / `jcsql fields TABLE` as a result table.
pub async fn fields_batch(engine: &Engine, table: &str) -> Result<RecordBatch, JcsqlError> {
    let found =
        sources::joinable_fields(engine.context(), &engine.connection_schemas(), table, &engine.sources(), false)
            .await
            .map_err(JcsqlError::Config)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("column", DataType::Utf8, false),
        Field::new("joins", DataType::Utf8, false),
        Field::new("match_rate", DataType::Float64, true),
        Field::new("matched", DataType::Int64, true),
        Field::new("kind", DataType::Utf8, false),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(found.iter().map(|f| f.column.clone()).collect::<Vec<_>>())),
        Arc::new(StringArray::from(
            found.iter().map(|f| format!("{}.{}", f.other_table, f.other_column)).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            found.iter().map(|f| f.match_rate.map(|r| (r * 1000.0).round() / 1000.0)).collect::<Vec<_>>(),
        )),
        Arc::new(Int64Array::from(found.iter().map(|f| f.matched).collect::<Vec<_>>())),
        Arc::new(StringArray::from(found.iter().map(|f| f.kind.to_string()).collect::<Vec<_>>())),
    ];
    RecordBatch::try_new(schema, cols).map_err(|e| JcsqlError::Config(e.to_string()))
}

pub async fn fields_command(engine: &Engine, table: &str, g: &GlobalArgs) -> Result<u8, JcsqlError> {
    let batch = fields_batch(engine, table).await?;
    if batch.num_rows() == 0 {
        eprintln!("Nothing joins to {table} yet; `jcsql connect files NAME PATH` adds another tool's export.");
        return Ok(EXIT_OK);
    }
    print_result(output_format(g), &batch.schema(), &[batch], g.maxrows)?;
    Ok(EXIT_OK)
}

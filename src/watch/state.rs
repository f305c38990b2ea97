//! A watched board's state on disk: `$JCSQL_HOME/watch/NAME.json`, one file a board, written to a
//! temporary file and renamed, so a crash leaves the previous state or the new one, never half.
//! The undelivered deliveries live in the same file as the rows they describe: one write moves
//! both, so nothing is announced twice or lost between them.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Row;
use super::deliver::Delivery;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoardState {
    /// The board's SQL the rows were compared under: a changed board starts a new baseline.
    pub sql_hash: String,
    /// Runs so far; part of every event id.
    pub run: u64,
    pub last_run_at: Option<String>,
    pub last_error: Option<String>,
    /// The error an ongoing outage began with (one `source_error` per outage).
    pub outage: Option<String>,
    /// The last compared rows, by key.
    pub rows: BTreeMap<String, Row>,
    /// Deliveries not yet accepted by their target, oldest first.
    #[serde(default)]
    pub outbox: Vec<Delivery>,
}

impl BoardState {
    pub fn new(sql_hash: &str) -> Self {
        BoardState {
            sql_hash: sql_hash.to_string(),
            run: 0,
            last_run_at: None,
            last_error: None,
            outage: None,
            rows: BTreeMap::new(),
            outbox: Vec::new(),
        }
    }
}

/// The folder of the state files.
pub fn dir(home: &Path) -> PathBuf {
    home.join("watch")
}

fn path(dir: &Path, board: &str) -> PathBuf {
    dir.join(format!("{board}.json"))
}

/// The board's state; `Ok(None)` before its first run. A file that does not parse is an error
/// (rather than a silent new baseline that would hide what changed).
pub fn load(dir: &Path, board: &str) -> Result<Option<BoardState>, String> {
    let p = path(dir, board);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            format!("the watch state {} does not parse ({e}); move it away to start a new baseline", p.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read the watch state {}: {e}", p.display())),
    }
}

/// Writes the state atomically (temporary file in the same folder, then rename).
pub fn save(dir: &Path, board: &str, state: &BoardState) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot write the watch state in {}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(&e))?;
    let bytes = serde_json::to_vec(state).map_err(|e| fail(&e))?;
    tmp.write_all(&bytes).map_err(|e| fail(&e))?;
    tmp.as_file().sync_all().map_err(|e| fail(&e))?;
    tmp.persist(path(dir, board)).map_err(|e| fail(&e.error))?;
    Ok(())
}

/// Holds `watch/.lock` while a watcher runs; `Err` says another one holds it.
pub fn lock(dir: &Path) -> Result<std::fs::File, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(format!(
            "another jcsql watch is running on {} (it holds {}); let it finish, or stop it",
            dir.display(),
            path.display()
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(format!("cannot lock {}: {e}", path.display())),
    }
}

/// Every board with a state file, by name.
pub fn all(dir: &Path) -> Vec<(String, Result<BoardState, String>)> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_string))
        .collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|n| match load(dir, &n) {
            Ok(Some(s)) => Some((n, Ok(s))),
            Ok(None) => None,
            Err(e) => Some((n, Err(e))),
        })
        .collect()
}

//! Where jcsql keeps its files, and the config file (`config.toml`, mode 0600 since it may hold
//! the API key).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{JcsqlError, Result};

/// jcsql's folders: `JCSQL_HOME` for everything, else the user's config and cache directories.
#[derive(Debug, Clone)]
pub struct Home {
    pub config_dir: PathBuf,
    pub cache_dir: PathBuf,
}

impl Home {
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        Home { cache_dir: dir.clone(), config_dir: dir }
    }

    pub fn from_env() -> Result<Self> {
        if let Some(h) = std::env::var_os("JCSQL_HOME").filter(|h| !h.is_empty()) {
            return Ok(Home::at(h));
        }
        let dirs = directories::ProjectDirs::from("", "", "jcsql").ok_or_else(|| {
            JcsqlError::Config("cannot find a home directory; set JCSQL_HOME to a folder jcsql may use".into())
        })?;
        Ok(Home { config_dir: dirs.config_dir().to_path_buf(), cache_dir: dirs.cache_dir().to_path_buf() })
    }

    pub fn config_file(&self) -> PathBuf {
        self.config_dir.join("config.toml")
    }

    pub fn history_file(&self) -> PathBuf {
        self.config_dir.join("history")
    }

    pub fn audit_log(&self) -> PathBuf {
        self.config_dir.join("audit.jsonl")
    }

    pub fn boards_dir(&self) -> PathBuf {
        self.config_dir.join("boards")
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JumpCloudSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub org_id: Option<String>,
    /// Freshness, e.g. `24h`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<usize>,
    /// How far back `directory_events` reaches, e.g. `30d` (at most `90d`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_since: Option<String>,
    /// The services `directory_events` holds on disk, e.g. `directory,sso,systems` (default
    /// all); the others are fetched when a query asks for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_services: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jumpcloud: Option<JumpCloudSettings>,
    /// Other tools' exports (`jcsql connect files NAME PATH`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<crate::sources::SourceConfig>,
    /// Which actions may run (`jcsql permissions`).
    #[serde(default)]
    pub permissions: crate::actions::Permissions,
    /// Google Workspace (`jcsql connect google`): where the key file is, never what it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub google: Option<GoogleSettings>,
    /// The orgs a multi-tenant key reaches (`jcsql orgs discover`), by name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub orgs: std::collections::BTreeMap<String, OrgSettings>,
}

/// `[google]`: the service-account key file's path and the administrator it acts as.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GoogleSettings {
    pub service_account: PathBuf,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
}

/// `[orgs.NAME]`: one org of a multi-tenant key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct OrgSettings {
    pub org_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

/// A schema-friendly name for an org: `Acme Corp` → `acme_corp`; no name → `org_` and the end
/// of its id.
pub fn org_slug(display_name: Option<&str>, org_id: &str) -> String {
    let mut out = String::new();
    for c in display_name.unwrap_or_default().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_').to_string();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("org_{}", &org_id[org_id.len().saturating_sub(6)..])
    } else {
        out
    }
}

impl StoredConfig {
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| JcsqlError::File {
                path: path.display().to_string(),
                reason: format!("not a valid config file ({}); fix or delete it", e.message()),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoredConfig::default()),
            Err(e) => Err(JcsqlError::File { path: path.display().to_string(), reason: e.to_string() }),
        }
    }

    /// Writes the file readable by its owner only, via a temp file and a rename.
    pub fn save(&self, path: &Path) -> Result<()> {
        let fail =
            |e: &dyn std::fmt::Display| JcsqlError::File { path: path.display().to_string(), reason: e.to_string() };
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        let text = toml::to_string(self).map_err(|e| fail(&e))?;
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(&e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600)).map_err(|e| fail(&e))?;
        }
        std::fs::write(tmp.path(), text).map_err(|e| fail(&e))?;
        tmp.persist(path).map_err(|e| fail(&e.error))?;
        Ok(())
    }
}

/// `24h`, `90m`, `30s`, `2d`, `0` (always refetch), or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let s = s.trim();
    let bad = || JcsqlError::Config(format!("cannot read {s:?} as a duration; use e.g. 24h, 90m, 30s or 0"));
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(s.len()));
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return Err(bad()),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("24h").ok(), Some(Duration::from_secs(86400)));
        assert_eq!(parse_duration("90m").ok(), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0").ok(), Some(Duration::ZERO));
        assert!(parse_duration("soon").is_err());
    }
}

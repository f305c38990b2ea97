//! The table registry's vocabulary, shared by every connector: a [`TableDef`] says where a
//! table's rows come from, how each JSON field becomes an Arrow column, which field is its
//! primary one and which other tables its columns point to. The relations behind `.fields`,
//! the parent-id pushdown and the relation tests are derived from these definitions.
//!
//! Column names follow DESIGN §3: snake_case of the API field (`jobTitle` → `job_title`,
//! `_id` → `id`), scalar leaves of one-level objects flattened as `parent_child`, references
//! suffixed `_id`, date fields as `Timestamp(Microsecond, "UTC")`, arrays and deep objects as
//! JSON text with secrets removed.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::DataFusionError;
use serde_json::Value;

pub mod decode;

use decode::{FieldPlan, PageBuilder};

/// Where a table's rows come from; the connector knows the endpoint's envelope and paging.
#[derive(Debug, Clone)]
pub enum Source {
    /// A list endpoint, every page of it.
    List { path: &'static str },
    /// A list fetched once per row of `parent` (`{id}` in `path` is the parent's id).
    PerParent { parent: &'static str, path: &'static str, query: &'static [(&'static str, &'static str)] },
    /// An append-only event log queried by time. A refresh asks only for entries newer than the
    /// newest one held and appends them; the snapshot covers a window of time.
    Log { path: &'static str, time_column: &'static str },
    /// A System Insights route: one list across every device (bare arrays, no count), sorted on
    /// the table's key and narrowed to devices by a `system_id` filter.
    Insights { path: &'static str },
}

/// How one JSON value becomes one Arrow value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Bool,
    Int,
    Float,
    Timestamp,
    /// Arrays and objects holding more than scalars, kept as JSON text (secrets removed).
    Json,
    /// An id of another object; the column name gets an `_id` suffix.
    Reference,
    /// The id of the parent object a relation row was fetched for.
    ParentId,
    /// When the snapshot holding the row was fetched.
    FetchedAt,
}

impl Kind {
    pub fn data_type(self) -> DataType {
        match self {
            Kind::Text | Kind::Json | Kind::Reference | Kind::ParentId => DataType::Utf8,
            Kind::Bool => DataType::Boolean,
            Kind::Int => DataType::Int64,
            Kind::Float => DataType::Float64,
            Kind::Timestamp | Kind::FetchedAt => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// Dot-separated JSON path (`mfa.configured`); the first segment may list alternatives
    /// separated by `|` (`_id|id`), the first one present wins.
    pub path: &'static str,
    pub kind: Kind,
    pub description: &'static str,
    /// The table (of the same connection) whose `id` this column holds.
    pub references: Option<&'static str>,
}

impl Column {
    pub fn new(path: &'static str, kind: Kind, description: &'static str) -> Self {
        Column { name: column_name(path, kind), path, kind, description, references: None }
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Marks the column as holding ids of `table`'s rows.
    pub fn refers_to(mut self, table: &'static str) -> Self {
        self.references = Some(table);
        self
    }
}

/// The column name DESIGN §3 gives a JSON path.
pub fn column_name(path: &str, kind: Kind) -> String {
    let first = path.split('|').next().unwrap_or(path);
    let name = first
        .split('.')
        .map(|part| if part == "_id" { "id".to_string() } else { snake_case(part) })
        .collect::<Vec<_>>()
        .join("_");
    if kind == Kind::Reference && !name.ends_with("_id") { format!("{name}_id") } else { name }
}

/// `jobTitle` → `job_title`, `remoteIP` → `remote_ip`, `modifySSHDConfig` → `modify_sshd_config`.
pub fn snake_case(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev_lower = i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if i > 0 && !out.ends_with('_') && (prev_lower || (prev_upper && next_lower)) {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[derive(Debug)]
pub struct TableDef {
    pub name: &'static str,
    pub description: &'static str,
    pub source: Source,
    pub columns: Vec<Column>,
    /// The field a person would name a row by (DESIGN §3); recorded in the Arrow metadata.
    pub primary: Option<&'static str>,
    /// Columns that identify a row, for de-duplication across pages.
    pub key: &'static [&'static str],
    /// The definition in the API's official spec that describes one record (`systemuserreturn`).
    pub spec: Option<&'static str>,
    /// How long a snapshot stays fresh, when shorter than the connection's (event logs).
    pub max_age: Option<std::time::Duration>,
    /// Columns whose changes do not make a row `changed` (a device's last contact).
    pub volatile: &'static [&'static str],
    schema: SchemaRef,
    pub(crate) plan: FieldPlan,
}

pub const PRIMARY_FIELD_KEY: &str = "jcsql.primary_field";

/// A System Insights table's rows belong to a device: fetched for devices, narrowed by this column.
pub const INSIGHTS_DEVICE_TABLE: &str = "devices";
pub const INSIGHTS_DEVICE_COLUMN: &str = "device_id";

impl TableDef {
    pub fn new(
        name: &'static str,
        description: &'static str,
        source: Source,
        primary: Option<&'static str>,
        key: &'static [&'static str],
        mut columns: Vec<Column>,
    ) -> Self {
        columns.push(Column::new("_fetched_at", Kind::FetchedAt, "When jcsql fetched this row."));
        // A relation row's parent column points to the parent table.
        if let Source::PerParent { parent, .. } = &source {
            for c in columns.iter_mut().filter(|c| c.kind == Kind::ParentId && c.references.is_none()) {
                c.references = Some(parent);
            }
        }
        // Only the primary field carries metadata: DataFusion compares field and schema
        // metadata across UNION branches, so descriptions stay in the definition.
        let fields: Vec<Field> = columns
            .iter()
            .map(|c| {
                let field = Field::new(&c.name, c.kind.data_type(), true);
                if Some(c.name.as_str()) == primary {
                    field.with_metadata(HashMap::from([(PRIMARY_FIELD_KEY.to_string(), "true".to_string())]))
                } else {
                    field
                }
            })
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let plan = FieldPlan::new(&columns, key);
        TableDef {
            name,
            description,
            source,
            columns,
            primary,
            key,
            spec: None,
            max_age: None,
            volatile: &[],
            schema,
            plan,
        }
    }

    /// Names the columns that change on their own (check-ins), so they never make a row `changed`.
    pub fn with_volatile(mut self, columns: &'static [&'static str]) -> Self {
        self.volatile = columns;
        self
    }

    /// Keeps snapshots fresh for at most `max_age`, whatever the connection's freshness.
    pub fn with_max_age(mut self, max_age: std::time::Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Names the spec definition of the table's records, so tests check the simulator against it.
    pub fn with_spec(mut self, definition: &'static str) -> Self {
        self.spec = Some(definition);
        self
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The column holding the parent's id, for relation tables.
    pub fn parent_column(&self) -> Option<&str> {
        match self.source {
            Source::Insights { .. } => Some(INSIGHTS_DEVICE_COLUMN),
            _ => self.columns.iter().find(|c| c.kind == Kind::ParentId).map(|c| c.name.as_str()),
        }
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The table this relation table is fetched per row of.
    pub fn parent_table(&self) -> Option<&'static str> {
        match &self.source {
            Source::PerParent { parent, .. } => Some(parent),
            Source::Insights { .. } => Some(INSIGHTS_DEVICE_TABLE),
            Source::List { .. } | Source::Log { .. } => None,
        }
    }

    /// Builds one batch from records already decoded (a write's response, a test's fixture);
    /// `parent` is the id of the object relation rows were fetched for.
    pub fn to_batch(
        &self,
        records: &[Value],
        parent: Option<&str>,
        fetched_at_us: i64,
    ) -> datafusion::error::Result<RecordBatch> {
        let mut page = PageBuilder::new(self, parent, fetched_at_us, records.len());
        for r in records {
            page.push(r).map_err(|e| DataFusionError::Execution(format!("{}: {e}", self.name)))?;
        }
        Ok(page.finish()?.batch)
    }
}

/// `2021-02-12T17:45:42.369Z`, an offset date-time, or a bare date; anything else is NULL,
/// since one odd value must not fail a whole table.
pub fn parse_timestamp_us(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc().timestamp_micros());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f") {
        return Some(t.and_utc().timestamp_micros());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

/// Keys that hold credentials in API objects (device `systemToken`, SAML private keys,
/// passwords, shared secrets). They never reach a column, even inside JSON text.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "token", "secret", "privatekey", "private_key", "apikey", "api_key"].iter().any(|s| k.contains(s))
        && !matches!(k.as_str(), "passwordless_sudo" | "password_never_expires" | "password_expired")
}

fn strip_secrets(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter().filter(|(k, _)| !is_secret_key(k)).map(|(k, v)| (k.clone(), strip_secrets(v))).collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_secrets).collect()),
        other => other.clone(),
    }
}

pub fn redacted_json(v: &Value) -> String {
    strip_secrets(v).to_string()
}

/// A view over a connection's tables. `{schema}` in its SQL is the connection's schema, so every
/// connection (org) gets its own copy.
#[derive(Debug)]
pub struct ViewDef {
    pub name: &'static str,
    pub sql: &'static str,
    pub description: &'static str,
    /// (column, table whose `id` it holds).
    pub references: &'static [(&'static str, &'static str)],
    /// The text column the kept rows are laid out by: each value's rows on one core (hashed as
    /// DataFusion hashes) and sorted by it, so counting per value needs no exchange between cores
    /// and no large hash table.
    pub clustered_by: Option<&'static str>,
}

impl ViewDef {
    pub fn sql_for(&self, schema: &str) -> String {
        self.sql.replace("{schema}", schema)
    }

    /// The tables of its connection the view reads.
    pub fn reads(&self) -> impl Iterator<Item = &'static str> {
        self.sql.split("{schema}.").skip(1).filter_map(|rest| rest.split([' ', ',', ')']).next())
    }
}

/// A join the definitions declare: `table.column` holds ids of `other_table` (`other_column`
/// = `id`), or the other way round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub table: &'static str,
    pub column: String,
    pub other_table: &'static str,
    pub other_column: String,
}

/// Every relation of `table` among `tables` and `views`: its references to other tables first,
/// then the columns of other tables and views that reference it.
pub fn relations_of(table: &str, tables: &'static [TableDef], views: &'static [ViewDef]) -> Vec<Relation> {
    let Some(this) = tables.iter().find(|t| t.name == table) else { return Vec::new() };
    let mut out: Vec<Relation> = this
        .columns
        .iter()
        .filter_map(|c| {
            c.references.map(|other| Relation {
                table: this.name,
                column: c.name.clone(),
                other_table: other,
                other_column: "id".into(),
            })
        })
        .collect();
    let has_id = this.column("id").is_some();
    let pointing_in = tables
        .iter()
        .flat_map(|t| t.columns.iter().map(move |c| (t.name, c.name.as_str(), c.references)))
        .chain(views.iter().flat_map(|v| v.references.iter().map(move |(c, r)| (v.name, *c, Some(*r)))));
    for (other, column, references) in pointing_in {
        if has_id && references == Some(this.name) {
            out.push(Relation {
                table: this.name,
                column: "id".into(),
                other_table: other,
                other_column: column.to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_column_rule() {
        assert_eq!(snake_case("jobTitle"), "job_title");
        assert_eq!(snake_case("remoteIP"), "remote_ip");
        assert_eq!(snake_case("modifySSHDConfig"), "modify_sshd_config");
        assert_eq!(snake_case("amazonInstanceID"), "amazon_instance_id");
        assert_eq!(snake_case("passwordAPFSValid"), "password_apfs_valid");
        assert_eq!(column_name("mfa.exclusionUntil", Kind::Timestamp), "mfa_exclusion_until");
        assert_eq!(column_name("manager", Kind::Reference), "manager_id");
        assert_eq!(column_name("primarySystemUser.id", Kind::Text), "primary_system_user_id");
    }

    #[test]
    fn secrets_never_reach_json_text() {
        let v: Value = serde_json::json!({"idpPrivateKey": {"value": "x"}, "acsUrl": {"value": "u"},
            "nested": [{"systemToken": "t", "ok": 1}]});
        let s = redacted_json(&v);
        assert!(!s.contains("idpPrivateKey") && !s.contains("systemToken"), "{s}");
        assert!(s.contains("acsUrl") && s.contains("\"ok\":1"));
    }
}

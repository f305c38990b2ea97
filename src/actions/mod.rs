//! Actions as SQL functions, from one registry ([`list::ACTIONS`]): each definition names its
//! typed inputs, the request it makes, how HTTP statuses map to outcomes, how the cache is
//! patched, and whether it may run before the user enables it.
//!
//! A statement never writes. Each call resolves its inputs against the cached tables, is
//! recorded once in the statement's own [`StatementPlan`] (identical calls share a number) and
//! returns `planned #N`. The front end shows the result and the plan, asks, and then
//! [`Actions::apply`] runs exactly the calls whose `planned #N` appears in the result: rows
//! dropped by LIMIT, filters or aggregation drop their calls, and nothing the engine
//! re-evaluates can add one. Two statements planning at once never see each other's calls.

pub mod list;
pub mod pending;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Builder, RecordBatch, StringArray, TimestampMicrosecondBuilder,
};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::{ComputedTable, timestamp_type};
use crate::connection::{Connection, now_us};
use crate::error::JcsqlError;
use crate::google::GoogleClient;
use crate::jumpcloud::client::JumpCloudClient;
pub use list::ACTIONS;

/// The tool an action changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    JumpCloud,
    Google,
    /// Every connected tool, one step per call of the other actions (`offboard_user`).
    Every,
}

/// What an input names, and so how it is resolved before the call is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A user by id, username or email (case-insensitive), resolved to its id.
    User,
    /// A user group by id or name, resolved to its id.
    Group,
    /// A Google user by primary email, alias or id, resolved to its id.
    GoogleUser,
    /// A Google group by email or id, resolved to its id.
    GoogleGroup,
    /// Text taken as given.
    Text,
}

#[derive(Debug, Clone, Copy)]
pub struct Input {
    pub name: &'static str,
    pub kind: InputKind,
    pub optional: bool,
    /// The result column (`user` or `group`) that shows this input.
    pub shown_as: Option<&'static str>,
}

impl Input {
    pub const fn user() -> Input {
        Input { name: "user", kind: InputKind::User, optional: false, shown_as: Some("user") }
    }
    pub const fn group() -> Input {
        Input { name: "group", kind: InputKind::Group, optional: false, shown_as: Some("group") }
    }
    pub const fn google_user() -> Input {
        Input { name: "user", kind: InputKind::GoogleUser, optional: false, shown_as: Some("user") }
    }
    pub const fn google_group() -> Input {
        Input { name: "group", kind: InputKind::GoogleGroup, optional: false, shown_as: Some("group") }
    }
    pub const fn text(name: &'static str) -> Input {
        Input { name, kind: InputKind::Text, optional: false, shown_as: None }
    }
    pub const fn optional(self) -> Input {
        Input { optional: true, ..self }
    }
    pub const fn shown_as(self, column: &'static str) -> Input {
        Input { shown_as: Some(column), ..self }
    }

    /// How `.actions` and `.action` describe the input.
    pub fn describe(&self) -> String {
        let base = match self.kind {
            InputKind::User => format!("{} (id, username or email)", self.name),
            InputKind::Group => format!("{} (id or name)", self.name),
            InputKind::GoogleUser => format!("{} (Google primary email, alias or id)", self.name),
            InputKind::GoogleGroup => format!("{} (Google group email or id)", self.name),
            InputKind::Text => self.name.to_string(),
        };
        if self.optional { format!("{base} (optional)") } else { base }
    }
}

/// One HTTP request an applied call makes (`path` below `/api`, or below the Directory API's
/// base for Google); a `Null` body sends none.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: reqwest::Method,
    pub path: String,
    pub body: Value,
}

/// A read made before the write: when `holds` is true of the object at `path`, the call is
/// already done and ends with `status` without writing (e.g. `already_suspended`).
#[derive(Debug, Clone, Copy)]
pub struct Check {
    pub path: fn(&Call) -> String,
    pub holds: fn(&Value) -> bool,
    pub status: &'static str,
}

/// A change to a cached table after a call succeeded, so boards show it at once.
#[derive(Debug, Clone)]
pub enum Patch {
    /// Add a record, decoded by the table's definition (`parent` for relation rows).
    Append { table: &'static str, record: Value, parent: Option<String> },
    /// Remove the rows whose text columns equal these values.
    Remove { table: &'static str, matching: Vec<(&'static str, String)> },
    /// Replace the row whose `id` is `id` with `record`.
    Replace { table: &'static str, id: String, record: Value },
}

/// A call's status for an HTTP status and message, when `outcomes` cannot say.
pub type Explain = fn(&Call, u16, &str) -> Option<String>;

/// One action.
#[derive(Debug)]
pub struct ActionDef {
    pub name: &'static str,
    /// The tool it changes: its client, its directory for inputs, its cached tables.
    pub tool: Tool,
    pub does: &'static str,
    pub inputs: &'static [Input],
    pub enabled_by_default: bool,
    pub check: Option<Check>,
    pub request: fn(&Call) -> Request,
    /// HTTP status → outcome; any other status is `error: …`.
    pub outcomes: &'static [(u16, &'static str)],
    /// A status whose meaning depends on the answer (Google's 404 for a member or for a group,
    /// 412 for an abuse suspension): the call's status, before `outcomes` is consulted.
    pub explain: Option<Explain>,
    /// The cache patches after a successful call, given the response body.
    pub patch: fn(&Call, Option<&Value>) -> Vec<Patch>,
}

/// The statement that plans one action with the given inputs, in the action's input order
/// (`.action` in the REPL and the web page's form): `select add_user_to_group('ada', 'Finance') as status`.
/// An empty optional input is left out.
pub fn statement_for(def: &ActionDef, values: &[String]) -> String {
    let args: Vec<String> = values
        .iter()
        .zip(def.inputs)
        .filter(|(v, input)| !(input.optional && v.trim().is_empty()))
        .map(|(v, _)| format!("'{}'", v.trim().replace('\'', "''")))
        .collect();
    format!("select {}({}) as status", def.name, args.join(", "))
}

fn count(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

/// A plan as a person reads it: the count, then one line per call; a step whose action is
/// disabled (an offboarding's) says it will be `denied`.
pub fn describe_plan(calls: &[(usize, Call)], permissions: &Permissions) -> String {
    let mut s = format!("Plan: {}\n", count(calls.len(), "call"));
    for (n, c) in calls {
        match permissions.refusal(c.action) {
            None => s.push_str(&format!("  #{n} {}\n", c.describe())),
            Some(why) => s.push_str(&format!("  #{n} {}: denied ({why})\n", c.describe())),
        }
    }
    s
}

pub fn action(name: &str) -> Option<&'static ActionDef> {
    ACTIONS.iter().find(|a| a.name == name)
}

/// Which actions may run. Kept in the config file, never in SQL settings, so `SET` cannot
/// change it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Permissions {
    /// Refuse every action.
    #[serde(default)]
    pub read_only: bool,
    /// Actions enabled by default that the user disabled.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub disabled: BTreeSet<String>,
    /// Actions disabled by default that the user enabled.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub enabled: BTreeSet<String>,
}

impl Permissions {
    pub fn allows(&self, action: &str) -> bool {
        self.refusal(action).is_none()
    }

    /// Why `action` is refused, with how to allow it.
    pub fn refusal(&self, action: &str) -> Option<JcsqlError> {
        let by_default = self::action(action).is_none_or(|a| a.enabled_by_default);
        if self.read_only {
            Some(JcsqlError::ReadOnly { action: action.to_string() })
        } else if self.disabled.contains(action) || (!by_default && !self.enabled.contains(action)) {
            Some(JcsqlError::ActionDisabled { action: action.to_string() })
        } else {
            None
        }
    }

    /// `jcsql permissions enable|disable NAME` (NAME may be `read_only`).
    pub fn set(&mut self, name: &str, enable: bool) -> Result<(), JcsqlError> {
        if name == "read_only" {
            self.read_only = enable;
            return Ok(());
        }
        if action(name).is_none() {
            let known: Vec<&str> = ACTIONS.iter().map(|a| a.name).chain(["read_only"]).collect();
            return Err(JcsqlError::UnknownAction { name: name.to_string(), known: known.join(", ") });
        }
        self.disabled.remove(name);
        self.enabled.remove(name);
        match (enable, action(name).is_some_and(|a| a.enabled_by_default)) {
            (true, false) => self.enabled.insert(name.to_string()),
            (false, true) => self.disabled.insert(name.to_string()),
            _ => true,
        };
        Ok(())
    }
}

/// A resolved input: the id it names (users, groups) and the label a person recognises.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arg {
    pub id: Option<String>,
    pub label: String,
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Call {
    pub action: &'static str,
    /// Which of the engine's connections (orgs) it acts on; 0 is the default one.
    pub connection: usize,
    pub args: Vec<Arg>,
    /// For a step of `offboard_user`, the person (email) it offboards: a failed step stops
    /// that person's later steps.
    pub person: Option<String>,
}

impl Call {
    pub fn def(&self) -> Option<&'static ActionDef> {
        action(self.action)
    }

    /// The id input `i` resolved to (empty for text inputs).
    pub fn id(&self, i: usize) -> &str {
        self.args.get(i).and_then(|a| a.id.as_deref()).unwrap_or_default()
    }

    /// The label of input `i` (empty when an optional input was not given).
    pub fn label(&self, i: usize) -> &str {
        self.args.get(i).map(|a| a.label.as_str()).unwrap_or_default()
    }

    /// The label shown in result column `column` (`user` or `group`).
    pub fn shown(&self, column: &str) -> String {
        let inputs = self.def().map(|d| d.inputs).unwrap_or_default();
        inputs.iter().position(|i| i.shown_as == Some(column)).map(|i| self.label(i).to_string()).unwrap_or_default()
    }

    /// `add_user_to_group(ada@example.com, Finance)`.
    pub fn describe(&self) -> String {
        let labels: Vec<&str> = self.args.iter().map(|a| a.label.as_str()).filter(|l| !l.is_empty()).collect();
        format!("{}({})", self.action, labels.join(", "))
    }

    /// The inputs as the audit log keeps them: each label, and the id it resolved to.
    pub fn inputs_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        let inputs = self.def().map(|d| d.inputs).unwrap_or_default();
        for (input, arg) in inputs.iter().zip(&self.args) {
            m.insert(input.name.to_string(), Value::String(arg.label.clone()));
            if let Some(id) = &arg.id {
                m.insert(format!("{}_id", input.name), Value::String(id.clone()));
            }
        }
        Value::Object(m)
    }
}

/// The outcome of one applied call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    pub number: usize,
    pub call: Call,
    /// One of the definition's outcomes, its check's status, `denied`, or `error: …`.
    pub status: String,
    pub http_status: Option<u16>,
}

/// An audit log line (`audit.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: String,
    /// The schema (org) the call acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub action: String,
    pub inputs: Value,
    pub outcome: String,
    pub http_status: Option<u16>,
}

/// The calls one statement recorded, numbered from 1 in the order they were first seen, all
/// on one connection (the org whose schema the statement reads).
#[derive(Default)]
pub struct StatementPlan {
    recorded: Mutex<(Vec<Call>, HashMap<Call, usize>)>,
    pub connection: usize,
}

impl StatementPlan {
    pub fn on(connection: usize) -> Self {
        StatementPlan { connection, ..Default::default() }
    }
}

impl StatementPlan {
    fn record(&self, call: Call) -> usize {
        let Ok(mut r) = self.recorded.lock() else { return 0 };
        if let Some(n) = r.1.get(&call) {
            return *n;
        }
        r.0.push(call.clone());
        let n = r.0.len();
        r.1.insert(call, n);
        n
    }

    /// The recorded calls whose number is in `shown`, in order.
    pub fn planned(&self, shown: &BTreeSet<usize>) -> Vec<(usize, Call)> {
        let Ok(r) = self.recorded.lock() else { return Vec::new() };
        shown.iter().filter_map(|n| r.0.get(n.wrapping_sub(1)).map(|c| (*n, c.clone()))).collect()
    }
}

/// Permissions, the connections (orgs) actions read and write with their clients, and the
/// audit log.
pub struct Actions {
    targets: Vec<(Arc<Connection>, Option<JumpCloudClient>)>,
    /// Google Workspace, when connected, with the client that writes to it.
    google: Option<(Arc<Connection>, Option<GoogleClient>)>,
    permissions: RwLock<Permissions>,
    audit_log: Option<PathBuf>,
    /// Plans waiting for a confirmation that comes in a later request (the web page).
    pending: pending::PendingPlans,
}

impl std::fmt::Debug for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actions").field("connections", &self.targets.len()).finish()
    }
}

fn refused(e: JcsqlError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The `planned #N` numbers that appear in a result, in any text column.
pub fn planned_numbers(batches: &[RecordBatch]) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for b in batches {
        for col in b.columns() {
            if !matches!(col.data_type(), DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8) {
                continue;
            }
            let Ok(strings) = cast(col, &DataType::Utf8) else { continue };
            let Some(strings) = strings.as_any().downcast_ref::<StringArray>() else { continue };
            for s in strings.iter().flatten() {
                // `planned #3`, or an offboarding's steps: `planned #3, #4, #5`.
                for part in s.split("planned ").skip(1) {
                    for token in part.split(", ") {
                        let Some(rest) = token.strip_prefix('#') else { break };
                        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                        match digits.parse() {
                            Ok(n) => out.insert(n),
                            Err(_) => break,
                        };
                        if digits.len() != rest.len() {
                            break;
                        }
                    }
                }
            }
        }
    }
    out
}

/// Action functions called anywhere in a plan.
pub fn called_actions(plan: &LogicalPlan) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let _ = plan.apply_with_subqueries(|node| {
        for e in node.expressions() {
            let _ = e.apply(|x| {
                if let Expr::ScalarFunction(f) = x
                    && action(f.name()).is_some()
                {
                    found.insert(f.name().to_string());
                }
                Ok(TreeNodeRecursion::Continue)
            });
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Looks people and groups up in the cached tables: JumpCloud's `users` and `user_groups`,
/// Google's `users` and `groups`.
#[derive(Default)]
struct Directory {
    /// lower-case id / username / email → (id, email or username)
    users: HashMap<String, (String, String)>,
    /// id / name / lower-case name → (id, name)
    groups: HashMap<String, (String, String)>,
    /// lower-case Google id / primary email / alias → (id, primary email)
    google_users: HashMap<String, (String, String)>,
    /// Google ids of suspended people.
    google_suspended: BTreeSet<String>,
    /// lower-case Google group id / email → (id, email)
    google_groups: HashMap<String, (String, String)>,
}

fn text_column<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    b.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<StringArray>())
}

/// The lower-case addresses in Google's `aliases` (strings) or `emails` (`{"address"}`) JSON.
fn addresses(json: &str) -> Vec<String> {
    let parsed: Vec<Value> = serde_json::from_str(json).unwrap_or_default();
    parsed
        .iter()
        .filter_map(|v| v.as_str().or_else(|| v.get("address").and_then(Value::as_str)))
        .map(str::to_lowercase)
        .collect()
}

impl Directory {
    /// Google's people (every address of each) and groups.
    async fn load_google(&mut self, conn: &Connection) -> DfResult<()> {
        let users = conn.snapshot_for_query(conn.table("users")?).await?;
        let groups = conn.snapshot_for_query(conn.table("groups")?).await?;
        for b in &users.batches {
            let (Some(id), Some(primary)) = (text_column(b, "id"), text_column(b, "primary_email")) else { continue };
            let (aliases, emails) = (text_column(b, "aliases"), text_column(b, "emails"));
            let suspended = b.column_by_name("suspended").and_then(|c| c.as_any().downcast_ref::<BooleanArray>());
            for i in 0..b.num_rows() {
                if id.is_null(i) || primary.is_null(i) {
                    continue;
                }
                let entry = (id.value(i).to_string(), primary.value(i).to_string());
                let mut keys = vec![id.value(i).to_string(), primary.value(i).to_lowercase()];
                for json in [aliases, emails].into_iter().flatten().filter(|c| c.is_valid(i)) {
                    keys.extend(addresses(json.value(i)));
                }
                for key in keys {
                    self.google_users.entry(key).or_insert_with(|| entry.clone());
                }
                if suspended.is_some_and(|c| c.is_valid(i) && c.value(i)) {
                    self.google_suspended.insert(id.value(i).to_string());
                }
            }
        }
        for b in &groups.batches {
            let (Some(id), Some(email)) = (text_column(b, "id"), text_column(b, "email")) else { continue };
            for i in 0..b.num_rows() {
                if id.is_null(i) || email.is_null(i) {
                    continue;
                }
                let entry = (id.value(i).to_string(), email.value(i).to_string());
                self.google_groups.insert(id.value(i).to_lowercase(), entry.clone());
                self.google_groups.insert(email.value(i).to_lowercase(), entry);
            }
        }
        Ok(())
    }

    async fn load_jumpcloud(&mut self, conn: &Connection) -> DfResult<()> {
        let users = conn.snapshot_for_query(conn.table("users")?).await?;
        let groups = conn.snapshot_for_query(conn.table("user_groups")?).await?;
        for b in &users.batches {
            let (Some(id), Some(username), Some(email)) =
                (text_column(b, "id"), text_column(b, "username"), text_column(b, "email"))
            else {
                continue;
            };
            for i in 0..b.num_rows() {
                if id.is_null(i) {
                    continue;
                }
                let label = if email.is_valid(i) && !email.value(i).is_empty() {
                    email.value(i).to_string()
                } else {
                    username.value(i).to_string()
                };
                let entry = (id.value(i).to_string(), label);
                for key in [id.value(i), username.value(i), email.value(i)] {
                    if !key.is_empty() {
                        self.users.entry(key.to_lowercase()).or_insert_with(|| entry.clone());
                    }
                }
            }
        }
        for b in &groups.batches {
            let (Some(id), Some(name)) = (text_column(b, "id"), text_column(b, "name")) else { continue };
            for i in 0..b.num_rows() {
                if id.is_null(i) || name.is_null(i) {
                    continue;
                }
                let entry = (id.value(i).to_string(), name.value(i).to_string());
                self.groups.insert(id.value(i).to_string(), entry.clone());
                self.groups.insert(name.value(i).to_string(), entry.clone());
                self.groups.entry(name.value(i).to_lowercase()).or_insert(entry);
            }
        }
        Ok(())
    }

    /// Resolves one input value; `Err` is the row's status.
    fn resolve(&self, input: &Input, value: Option<String>) -> Result<Arg, String> {
        let given = value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let Some(v) = given else {
            return match (input.optional, input.kind) {
                (true, _) => Ok(Arg { id: None, label: String::new() }),
                (false, InputKind::Text) => Err(format!("error: a {} is needed", input.name)),
                (false, _) => Err(format!("error: no {} given", input.name)),
            };
        };
        let arg = |(id, label): &(String, String)| Arg { id: Some(id.clone()), label: label.clone() };
        let found =
            |hit: Option<&(String, String)>| hit.map(arg).ok_or_else(|| format!("error: no {} named {v}", input.name));
        let in_google = |hit: Option<&(String, String)>| {
            hit.map(arg).ok_or_else(|| format!("error: no such Google {} {v}", input.name))
        };
        match input.kind {
            InputKind::Text => Ok(Arg { id: None, label: v.clone() }),
            InputKind::User => found(self.users.get(&v.to_lowercase())),
            InputKind::Group => found(self.groups.get(&v).or_else(|| self.groups.get(&v.to_lowercase()))),
            InputKind::GoogleUser => in_google(self.google_users.get(&v.to_lowercase())),
            InputKind::GoogleGroup => in_google(self.google_groups.get(&v.to_lowercase())),
        }
    }
}

impl Actions {
    /// `targets`: each connection actions may act on, with the client that writes to it.
    pub fn new(
        targets: Vec<(Arc<Connection>, Option<JumpCloudClient>)>,
        google: Option<(Arc<Connection>, Option<GoogleClient>)>,
        permissions: Permissions,
        audit_log: Option<PathBuf>,
    ) -> Self {
        let actions = Actions {
            targets,
            google,
            permissions: RwLock::new(Permissions::default()),
            audit_log,
            pending: pending::PendingPlans::default(),
        };
        actions.set_permissions(permissions);
        actions
    }

    fn google(&self) -> Result<&(Arc<Connection>, Option<GoogleClient>), JcsqlError> {
        self.google.as_ref().ok_or_else(|| {
            JcsqlError::Config(
                "Google Workspace is not connected: run `jcsql connect google --service-account FILE --subject ADMIN_EMAIL`"
                    .into(),
            )
        })
    }

    /// The connection a call's action changes.
    fn connection_of(&self, call: &Call) -> Result<&Arc<Connection>, JcsqlError> {
        match call.def().map(|d| d.tool) {
            Some(Tool::Google) => Ok(&self.google()?.0),
            _ => Ok(&self.target(call.connection)?.0),
        }
    }

    fn target(&self, i: usize) -> Result<&(Arc<Connection>, Option<JumpCloudClient>), JcsqlError> {
        self.targets.get(i).ok_or_else(|| JcsqlError::Config(format!("no connection number {i}")))
    }

    pub fn pending(&self) -> &pending::PendingPlans {
        &self.pending
    }

    /// Whether the tool an action changes is connected (Google's actions need Google).
    pub fn offered(&self, def: &ActionDef) -> bool {
        def.tool != Tool::Google || self.google.is_some()
    }

    pub fn permissions(&self) -> Permissions {
        self.permissions.read().map(|p| p.clone()).unwrap_or_default()
    }

    /// Also decides which scopes Google tokens ask for: the write scopes only while a Google
    /// action is enabled.
    pub fn set_permissions(&self, p: Permissions) {
        if let Some((_, Some(client))) = &self.google {
            client.set_write_access(ACTIONS.iter().any(|a| a.tool == Tool::Google && p.allows(a.name)));
        }
        if let Ok(mut w) = self.permissions.write() {
            *w = p;
        }
    }

    /// Plans one batch of calls: resolves inputs, records them in `plan`, returns statuses.
    async fn plan_rows(
        &self,
        def: &'static ActionDef,
        plan: &StatementPlan,
        args: &[ArrayRef],
        rows: usize,
    ) -> DfResult<ArrayRef> {
        if let Some(refusal) = self.permissions().refusal(def.name) {
            return Err(refused(refusal));
        }
        let strings: Vec<StringArray> = args
            .iter()
            .map(|a| {
                cast(a, &DataType::Utf8)
                    .ok()
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
                    .unwrap_or_else(|| StringArray::new_null(rows))
            })
            .collect();
        let arg = |k: usize, i: usize| {
            strings.get(k).filter(|a| i < a.len() && a.is_valid(i)).map(|a| a.value(i).to_string())
        };
        if def.tool == Tool::Every {
            let people: Vec<Option<String>> = (0..rows).map(|i| arg(0, i)).collect();
            return self.plan_offboarding(plan, &people).await;
        }
        let mut directory = Directory::default();
        if def.inputs.iter().any(|i| matches!(i.kind, InputKind::User | InputKind::Group)) {
            directory.load_jumpcloud(&self.target(plan.connection)?.0).await?;
        }
        if def.inputs.iter().any(|i| matches!(i.kind, InputKind::GoogleUser | InputKind::GoogleGroup)) {
            directory.load_google(&self.google()?.0).await?;
        }
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            let resolved: Result<Vec<Arg>, String> =
                def.inputs.iter().enumerate().map(|(k, input)| directory.resolve(input, arg(k, i))).collect();
            out.push(match resolved {
                Ok(args) => format!(
                    "planned #{}",
                    plan.record(Call { action: def.name, connection: plan.connection, args, person: None })
                ),
                Err(status) => status,
            });
        }
        Ok(Arc::new(StringArray::from(out)))
    }

    /// `offboard_user`: each person's steps in every connected tool (DESIGN §5a), recorded as
    /// calls of the other actions, whatever their permissions (a disabled step is `denied` when
    /// applied, so the plan shows it rather than dropping it).
    async fn plan_offboarding(&self, plan: &StatementPlan, people: &[Option<String>]) -> DfResult<ArrayRef> {
        let jumpcloud = &self.target(plan.connection)?.0;
        let mut directory = Directory::default();
        directory.load_jumpcloud(jumpcloud).await?;
        let jc_groups = memberships(jumpcloud, "user_group_members", "group_id", "user_id").await?;
        let google_groups = match &self.google {
            Some((conn, _)) => {
                directory.load_google(conn).await?;
                memberships(conn, "group_members", "group_id", "member_id").await?
            }
            None => Vec::new(),
        };
        let label = |map: &HashMap<String, (String, String)>, id: &str| {
            map.get(&id.to_lowercase()).or_else(|| map.get(id)).map_or(id.to_string(), |(_, l)| l.clone())
        };
        let mut out = Vec::with_capacity(people.len());
        for given in people {
            let Some(given) = given.as_deref().map(str::trim).filter(|g| !g.is_empty()) else {
                out.push("error: no user given".to_string());
                continue;
            };
            let jc = directory.users.get(&given.to_lowercase()).cloned();
            let email = jc.as_ref().map_or(given.to_string(), |(_, label)| label.clone()).to_lowercase();
            let g = directory
                .google_users
                .get(&email)
                .or_else(|| directory.google_users.get(&given.to_lowercase()))
                .cloned();
            if jc.is_none() && g.is_none() {
                out.push(format!("error: no user named {given} in JumpCloud or Google"));
                continue;
            }
            let person = Some(email.clone());
            let mut steps: Vec<Call> = Vec::new();
            let arg = |id: &str, label: String| Arg { id: Some(id.to_string()), label };
            let step = |action: &'static str, args: Vec<Arg>| Call {
                action,
                connection: plan.connection,
                args,
                person: person.clone(),
            };
            if let Some((gid, primary)) = &g {
                if !directory.google_suspended.contains(gid) {
                    steps.push(step("sign_out_google_user", vec![arg(gid, primary.clone())]));
                }
                for (group, _) in google_groups.iter().filter(|(_, member)| member == gid) {
                    let group_label = label(&directory.google_groups, group);
                    steps.push(step(
                        "remove_user_from_google_group",
                        vec![arg(gid, primary.clone()), arg(group, group_label)],
                    ));
                }
                steps.push(step("suspend_google_user", vec![arg(gid, primary.clone())]));
            }
            if let Some((uid, jc_label)) = &jc {
                for (group, _) in jc_groups.iter().filter(|(_, member)| member == uid) {
                    let group_label = label(&directory.groups, group);
                    steps.push(step(
                        "remove_user_from_group",
                        vec![arg(uid, jc_label.clone()), arg(group, group_label)],
                    ));
                }
                steps.push(step("suspend_user", vec![arg(uid, jc_label.clone())]));
            }
            let numbers: Vec<String> = steps.into_iter().map(|c| format!("#{}", plan.record(c))).collect();
            out.push(format!("planned {}", numbers.join(", ")));
        }
        Ok(Arc::new(StringArray::from(out)))
    }

    /// Runs the given calls, in order, against their tools ([`ToolClient`] says which answers
    /// may be sent again), patches the cached tables, and appends each outcome to the audit log.
    /// A failed step of an offboarding skips that person's later steps.
    pub async fn apply(&self, calls: &[(usize, Call)]) -> Vec<CallResult> {
        let mut results = Vec::with_capacity(calls.len());
        // People whose offboarding hit an error: their later steps do not run.
        let mut stopped: BTreeSet<String> = BTreeSet::new();
        for (number, call) in calls {
            if call.person.as_ref().is_some_and(|p| stopped.contains(p)) {
                let status = "skipped: an earlier step for this person failed".to_string();
                self.audit(call, &status, None);
                results.push(CallResult { number: *number, call: call.clone(), status, http_status: None });
                continue;
            }
            let (status, http_status) = match (call.def(), self.permissions().refusal(call.action)) {
                (None, _) => (format!("error: unknown action {}", call.action), None),
                (_, Some(_)) => ("denied".to_string(), None),
                (Some(def), None) => self.apply_one(def, call).await,
            };
            if status.starts_with("error")
                && let Some(p) = &call.person
            {
                stopped.insert(p.clone());
            }
            self.audit(call, &status, http_status);
            results.push(CallResult { number: *number, call: call.clone(), status, http_status });
        }
        results
    }

    /// One call: the check's read, the request, its answer mapped to an outcome, the cache
    /// patched on success. The tool's client decides how a write may be sent again.
    async fn apply_one(&self, def: &ActionDef, call: &Call) -> (String, Option<u16>) {
        let client: &dyn ToolClient = match def.tool {
            Tool::JumpCloud => match self.target(call.connection) {
                Ok((_, Some(client))) => client,
                Ok((_, None)) => return (format!("error: {}", JcsqlError::NotConnected), None),
                Err(e) => return (format!("error: {e}"), None),
            },
            Tool::Google => match self.google() {
                Ok((_, Some(client))) => client,
                Ok((_, None)) => return ("error: Google Workspace is not connected".to_string(), None),
                Err(e) => return (format!("error: {e}"), None),
            },
            Tool::Every => return (format!("error: {} runs as its steps", def.name), None),
        };
        if let Some(check) = &def.check {
            match client.read(&(check.path)(call)).await {
                Ok(object) if (check.holds)(&object) => return (check.status.to_string(), Some(200)),
                Ok(_) => {}
                Err(e) => return (format!("error: {e}"), None),
            }
        }
        let response = match client.send(&(def.request)(call)).await {
            Ok(r) => r,
            Err(e) => return (format!("error: {e}"), None),
        };
        if let Some(status) = def.explain.and_then(|explain| explain(call, response.status, &response.message)) {
            return (status, Some(response.status));
        }
        match def.outcomes.iter().find(|(code, _)| *code == response.status) {
            Some((_, outcome)) => {
                if (200..300).contains(&response.status) {
                    self.patch_after(def, call, response.body.as_ref());
                }
                (outcome.to_string(), Some(response.status))
            }
            None => (
                format!("error: {} answered {}: {}", client.tool_name(), response.status, response.message),
                Some(response.status),
            ),
        }
    }

    fn patch_after(&self, def: &ActionDef, call: &Call, body: Option<&Value>) {
        let conn = match self.connection_of(call) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot patch the cache after {}: {e}", call.describe());
                return;
            }
        };
        for patch in (def.patch)(call, body) {
            if let Err(e) = self.patch(conn, &patch) {
                tracing::warn!("cannot patch the cache after {}: {e}", call.describe());
            }
        }
    }

    /// Applies one change to a cached table of `conn`, in memory and on disk.
    fn patch(&self, conn: &Connection, patch: &Patch) -> Result<(), JcsqlError> {
        let name = match patch {
            Patch::Append { table, .. } | Patch::Remove { table, .. } | Patch::Replace { table, .. } => *table,
        };
        let table = conn.table(name)?;
        let def = table.def;
        let cache_err = |e: &dyn std::fmt::Display| JcsqlError::Cache(e.to_string());
        let keep_rows = |b: &RecordBatch, drop: &dyn Fn(usize) -> bool| {
            let keep: BooleanArray = (0..b.num_rows()).map(|i| Some(!drop(i))).collect();
            filter_record_batch(b, &keep).map_err(|e| cache_err(&e))
        };
        table.patch(|batches| match patch {
            Patch::Append { record, parent, .. } => {
                let mut out = batches.to_vec();
                out.push(
                    def.to_batch(std::slice::from_ref(record), parent.as_deref(), now_us())
                        .map_err(|e| cache_err(&e))?,
                );
                Ok(out)
            }
            Patch::Remove { matching, .. } => batches
                .iter()
                .map(|b| {
                    let cols: Vec<(Option<&StringArray>, &String)> =
                        matching.iter().map(|(c, v)| (text_column(b, c), v)).collect();
                    keep_rows(b, &|i| {
                        cols.iter().all(|(c, v)| c.is_some_and(|c| c.is_valid(i) && c.value(i) == v.as_str()))
                    })
                })
                .collect(),
            Patch::Replace { id, record, .. } => {
                let mut out = batches
                    .iter()
                    .map(|b| {
                        let ids = text_column(b, "id");
                        keep_rows(b, &|i| ids.is_some_and(|c| c.is_valid(i) && c.value(i) == id.as_str()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                out.push(def.to_batch(std::slice::from_ref(record), None, now_us()).map_err(|e| cache_err(&e))?);
                Ok(out)
            }
        })
    }

    fn audit(&self, call: &Call, outcome: &str, http_status: Option<u16>) {
        let Some(path) = &self.audit_log else { return };
        let entry = AuditEntry {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            schema: self.connection_of(call).ok().map(|c| c.name.clone()),
            action: call.action.to_string(),
            inputs: call.inputs_json(),
            outcome: outcome.to_string(),
            http_status,
        };
        let Ok(line) = serde_json::to_string(&entry) else { return };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
        match file {
            Ok(mut f) => {
                let _ = writeln!(f, "{line}");
            }
            Err(e) => tracing::warn!("cannot append to the audit log {}: {e}", path.display()),
        }
    }

    /// The audit log's entries, oldest first; unreadable lines are skipped.
    pub fn read_audit(&self) -> Vec<AuditEntry> {
        let Some(path) = &self.audit_log else { return Vec::new() };
        std::fs::read_to_string(path)
            .map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
            .unwrap_or_default()
    }

    /// The action functions, recording into `plan`. Without a plan they only plan queries
    /// (boards are checked with them) and refuse to run.
    pub fn udfs(self: &Arc<Self>, plan: Option<Arc<StatementPlan>>) -> Vec<ScalarUDF> {
        ACTIONS
            .iter()
            .map(|def| {
                let required = def.inputs.iter().filter(|i| !i.optional).count();
                let shapes: Vec<TypeSignature> = (required..=def.inputs.len()).map(TypeSignature::String).collect();
                let signature = Signature::one_of(shapes, Volatility::Volatile);
                let f = ActionFunction { def, signature, actions: self.clone(), plan: plan.clone() };
                AsyncScalarUDF::new(Arc::new(f)).into_scalar_udf()
            })
            .collect()
    }
}

/// One action as an async scalar function (volatile, so it is never folded at plan time).
#[derive(Debug)]
struct ActionFunction {
    def: &'static ActionDef,
    signature: Signature,
    actions: Arc<Actions>,
    plan: Option<Arc<StatementPlan>>,
}

impl std::fmt::Debug for StatementPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementPlan").finish()
    }
}

impl PartialEq for ActionFunction {
    fn eq(&self, other: &Self) -> bool {
        self.def.name == other.def.name
            && Arc::ptr_eq(&self.actions, &other.actions)
            && match (&self.plan, &other.plan) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            }
    }
}
impl Eq for ActionFunction {}
impl std::hash::Hash for ActionFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.def.name.hash(state);
    }
}

impl ScalarUDFImpl for ActionFunction {
    fn name(&self) -> &str {
        self.def.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(refused(JcsqlError::Config(format!("{} can only run as an action", self.def.name))))
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for ActionFunction {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let Some(plan) = &self.plan else {
            return Err(refused(JcsqlError::Config(format!(
                "{}() runs only in a statement given to Engine::execute (the prompt, -c, -f)",
                self.def.name
            ))));
        };
        let rows = args.number_rows;
        // Literal arguments come as scalars: expand each to the batch's rows.
        let arrays = args.args.iter().map(|a| a.to_array(rows)).collect::<DfResult<Vec<_>>>()?;
        let out = self.actions.plan_rows(self.def, plan, &arrays, rows).await?;
        Ok(ColumnarValue::Array(out))
    }
}

/// Apply results as a table: call, action, user, group, status.
pub fn results_batch(results: &[CallResult]) -> RecordBatch {
    let col = |f: &dyn Fn(&CallResult) -> String| -> ArrayRef {
        Arc::new(StringArray::from(results.iter().map(f).collect::<Vec<_>>()))
    };
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("call", col(&|r| format!("#{}", r.number))),
        ("action", col(&|r| r.call.action.to_string())),
        ("user", col(&|r| r.call.shown("user"))),
        ("group", col(&|r| r.call.shown("group"))),
        ("status", col(&|r| r.status.clone())),
    ];
    RecordBatch::try_from_iter(cols).unwrap_or_else(|_| RecordBatch::new_empty(Arc::new(Schema::empty())))
}

/// Per-action status counts, e.g. `added 3, already_member 1`.
pub fn summarize(results: &[CallResult]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in results {
        let key = if r.status.starts_with("error") { "error".to_string() } else { r.status.clone() };
        *counts.entry(key).or_default() += 1;
    }
    counts.into_iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
}

/// `jcsql.action_log`: every applied call from the audit log.
pub fn action_log_meta(actions: Arc<Actions>) -> ComputedTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("at", timestamp_type(), true),
        Field::new("action", DataType::Utf8, false),
        Field::new("inputs", DataType::Utf8, false),
        Field::new("outcome", DataType::Utf8, false),
        Field::new("http_status", DataType::Int64, true),
    ]));
    ComputedTable::new(schema.clone(), move || {
        let entries = actions.read_audit();
        let mut at = TimestampMicrosecondBuilder::with_capacity(entries.len()).with_timezone("UTC");
        let mut status = Int64Builder::with_capacity(entries.len());
        for e in &entries {
            at.append_option(crate::table::parse_timestamp_us(&e.at));
            status.append_option(e.http_status.map(i64::from));
        }
        let text = |f: &dyn Fn(&AuditEntry) -> String| -> ArrayRef {
            Arc::new(StringArray::from(entries.iter().map(f).collect::<Vec<_>>()))
        };
        let cols: Vec<ArrayRef> = vec![
            Arc::new(at.finish()),
            text(&|e| e.action.clone()),
            text(&|e| e.inputs.to_string()),
            text(&|e| e.outcome.clone()),
            Arc::new(status.finish()),
        ];
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    })
}

/// `jcsql.permissions`: each action and whether it may run; `read_only` refuses them all.
pub fn permissions_meta(actions: Arc<Actions>) -> ComputedTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("action", DataType::Utf8, false),
        Field::new("enabled", DataType::Boolean, false),
    ]));
    ComputedTable::new(schema.clone(), move || {
        let p = actions.permissions();
        let mut names: Vec<String> = ACTIONS.iter().map(|a| a.name.to_string()).collect();
        let mut enabled: Vec<bool> = ACTIONS.iter().map(|a| p.allows(a.name)).collect();
        names.push("read_only".into());
        enabled.push(p.read_only);
        let cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(names)), Arc::new(BooleanArray::from(enabled))];
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    })
}

/// What applying needs of a tool's HTTP client: a read for a check, and a write sent as that
/// tool allows (the answer's status and body, non-2xx included).
#[async_trait]
trait ToolClient: Sync {
    fn tool_name(&self) -> &'static str;
    async fn read(&self, path: &str) -> Result<Value, JcsqlError>;
    async fn send(&self, request: &Request) -> Result<crate::http::WriteResponse, JcsqlError>;
}

#[async_trait]
impl ToolClient for JumpCloudClient {
    fn tool_name(&self) -> &'static str {
        "JumpCloud"
    }

    async fn read(&self, path: &str) -> Result<Value, JcsqlError> {
        self.get_object(path).await
    }

    /// Sent once; a 429 means JumpCloud did not process it, so that alone is sent again.
    async fn send(&self, request: &Request) -> Result<crate::http::WriteResponse, JcsqlError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = self.write(request.method.clone(), &request.path, &request.body).await?;
            if r.status != 429 || attempt >= 5 {
                return Ok(r);
            }
            tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
        }
    }
}

#[async_trait]
impl ToolClient for GoogleClient {
    fn tool_name(&self) -> &'static str {
        "Google"
    }

    async fn read(&self, path: &str) -> Result<Value, JcsqlError> {
        self.get_object(path).await
    }

    /// A PUT may be sent again after a 5xx (the same PUT twice is one change); nothing else.
    async fn send(&self, request: &Request) -> Result<crate::http::WriteResponse, JcsqlError> {
        let body = (!request.body.is_null()).then_some(&request.body);
        let idempotent = request.method == reqwest::Method::PUT;
        self.write(request.method.clone(), &request.path, body, idempotent).await
    }
}

/// (group id, member id) of every row of a membership table.
async fn memberships(conn: &Connection, table: &str, group: &str, member: &str) -> DfResult<Vec<(String, String)>> {
    let snap = conn.snapshot_for_query(conn.table(table)?).await?;
    let mut out = Vec::new();
    for b in &snap.batches {
        let (Some(g), Some(m)) = (text_column(b, group), text_column(b, member)) else { continue };
        for i in 0..b.num_rows() {
            if g.is_valid(i) && m.is_valid(i) {
                out.push((g.value(i).to_string(), m.value(i).to_string()));
            }
        }
    }
    Ok(out)
}

//! Actions as SQL functions: `create_user_group(name [, description])`,
//! `add_user_to_group(user, group)`, `remove_user_from_group(user, group)`.
//!
//! A statement never writes. Each call resolves its inputs against the cached tables, is
//! recorded once (identical calls share a number) and returns `planned #N`. The front end shows
//! the result and the plan, asks, and then [`Actions::apply`] runs exactly the calls whose
//! `planned #N` appears in the result: rows dropped by LIMIT, filters or aggregation drop their
//! calls, and nothing the engine re-evaluates can add one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::compute::{cast, filter_record_batch};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::async_udf::{AsyncScalarUDF, AsyncScalarUDFImpl};
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::JcsqlError;
use crate::jumpcloud::Connection;
use crate::jumpcloud::client::WriteResponse;

/// Each action: name, inputs, what it does.
pub const ACTIONS: &[(&str, &[&str], &str)] = &[
    ("create_user_group", &["name", "description (optional)"], "create a user group"),
    ("add_user_to_group", &["user (id, username or email)", "group (id or name)"], "add a user to a group"),
    ("remove_user_from_group", &["user (id, username or email)", "group (id or name)"], "remove a user from a group"),
];

/// Which actions may run. Kept in the config file, never in SQL settings, so `SET` cannot
/// change it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Permissions {
    /// Refuse every action.
    #[serde(default)]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub disabled: BTreeSet<String>,
}

impl Permissions {
    pub fn allows(&self, action: &str) -> bool {
        !self.read_only && !self.disabled.contains(action)
    }

    /// Why `action` is refused, with how to allow it.
    pub fn refusal(&self, action: &str) -> Option<String> {
        if self.read_only {
            Some(format!(
                "{action} is refused: jcsql is read-only; allow actions with `jcsql permissions disable read_only`"
            ))
        } else if self.disabled.contains(action) {
            Some(format!("{action} is disabled; enable it with `jcsql permissions enable {action}`"))
        } else {
            None
        }
    }
}

/// One recorded call, with the ids it resolved to and the labels a person recognises.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Call {
    CreateGroup { name: String, description: String },
    AddMember { user_id: String, user: String, group_id: String, group: String },
    RemoveMember { user_id: String, user: String, group_id: String, group: String },
}

impl Call {
    pub fn action(&self) -> &'static str {
        match self {
            Call::CreateGroup { .. } => "create_user_group",
            Call::AddMember { .. } => "add_user_to_group",
            Call::RemoveMember { .. } => "remove_user_from_group",
        }
    }

    /// (user, group) as shown in plans and results.
    pub fn labels(&self) -> (String, String) {
        match self {
            Call::CreateGroup { name, .. } => (String::new(), name.clone()),
            Call::AddMember { user, group, .. } | Call::RemoveMember { user, group, .. } => {
                (user.clone(), group.clone())
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Call::CreateGroup { name, description } if description.is_empty() => format!("create_user_group({name})"),
            Call::CreateGroup { name, description } => format!("create_user_group({name}, {description})"),
            Call::AddMember { user, group, .. } => format!("add_user_to_group({user}, {group})"),
            Call::RemoveMember { user, group, .. } => format!("remove_user_from_group({user}, {group})"),
        }
    }

    fn inputs(&self) -> Value {
        match self {
            Call::CreateGroup { name, description } => json!({"name": name, "description": description}),
            Call::AddMember { user_id, user, group_id, group }
            | Call::RemoveMember { user_id, user, group_id, group } => {
                json!({"user": user, "user_id": user_id, "group": group, "group_id": group_id})
            }
        }
    }
}

/// The outcome of one applied call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    pub number: usize,
    pub call: Call,
    /// `created`, `exists`, `added`, `already_member`, `removed`, `not_member`, `denied` or `error: …`.
    pub status: String,
    pub http_status: Option<u16>,
}

/// An audit log line (`audit.jsonl`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: String,
    pub action: String,
    pub inputs: Value,
    pub outcome: String,
    pub http_status: Option<u16>,
}

#[derive(Default)]
struct Recorder {
    calls: Vec<Call>,
    numbers: HashMap<Call, usize>,
}

/// Shared by the three functions and the front end: permissions, the calls of the statement
/// being run, the connection to apply them with, and the audit log.
pub struct Actions {
    conn: Arc<Connection>,
    permissions: RwLock<Permissions>,
    recorder: Mutex<Recorder>,
    audit_log: Option<PathBuf>,
}

impl std::fmt::Debug for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actions").finish()
    }
}

fn internal(msg: impl Into<String>) -> DataFusionError {
    DataFusionError::External(Box::new(JcsqlError::Config(msg.into())))
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
                for part in s.split("planned #").skip(1) {
                    let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
                    if let Ok(n) = digits.parse() {
                        out.insert(n);
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
                    && ACTIONS.iter().any(|(n, _, _)| *n == f.name())
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

/// Looks people and groups up in the cached `users` and `user_groups`.
struct Directory {
    /// lower-case id / username / email → (id, email or username)
    users: HashMap<String, (String, String)>,
    /// id / name / lower-case name → (id, name)
    groups: HashMap<String, (String, String)>,
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    b.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<StringArray>())
}

impl Directory {
    async fn load(conn: &Connection) -> DfResult<Directory> {
        let users = conn.snapshot_for_query(conn.table("users")?).await?;
        let groups = conn.snapshot_for_query(conn.table("user_groups")?).await?;
        let mut d = Directory { users: HashMap::new(), groups: HashMap::new() };
        for b in &users.batches {
            let (Some(id), Some(username), Some(email)) = (column(b, "id"), column(b, "username"), column(b, "email"))
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
                        d.users.entry(key.to_lowercase()).or_insert_with(|| entry.clone());
                    }
                }
            }
        }
        for b in &groups.batches {
            let (Some(id), Some(name)) = (column(b, "id"), column(b, "name")) else { continue };
            for i in 0..b.num_rows() {
                if id.is_null(i) || name.is_null(i) {
                    continue;
                }
                let entry = (id.value(i).to_string(), name.value(i).to_string());
                d.groups.insert(id.value(i).to_string(), entry.clone());
                d.groups.insert(name.value(i).to_string(), entry.clone());
                d.groups.entry(name.value(i).to_lowercase()).or_insert(entry);
            }
        }
        Ok(d)
    }

    fn user(&self, key: &str) -> Result<(String, String), String> {
        self.users.get(&key.trim().to_lowercase()).cloned().ok_or_else(|| format!("error: no user named {key}"))
    }

    fn group(&self, key: &str) -> Result<(String, String), String> {
        let k = key.trim();
        self.groups
            .get(k)
            .or_else(|| self.groups.get(&k.to_lowercase()))
            .cloned()
            .ok_or_else(|| format!("error: no group named {key}"))
    }
}

impl Actions {
    pub fn new(conn: Arc<Connection>, permissions: Permissions, audit_log: Option<PathBuf>) -> Self {
        Actions { conn, permissions: RwLock::new(permissions), recorder: Mutex::new(Recorder::default()), audit_log }
    }

    pub fn permissions(&self) -> Permissions {
        self.permissions.read().map(|p| p.clone()).unwrap_or_default()
    }

    pub fn set_permissions(&self, p: Permissions) {
        if let Ok(mut w) = self.permissions.write() {
            *w = p;
        }
    }

    pub fn audit_log(&self) -> Option<&PathBuf> {
        self.audit_log.as_ref()
    }

    /// Forgets the calls of the previous statement.
    pub fn begin(&self) {
        if let Ok(mut r) = self.recorder.lock() {
            *r = Recorder::default();
        }
    }

    /// The recorded calls whose number is in `shown`, in order.
    pub fn planned(&self, shown: &BTreeSet<usize>) -> Vec<(usize, Call)> {
        let Ok(r) = self.recorder.lock() else { return Vec::new() };
        shown.iter().filter_map(|n| r.calls.get(n.wrapping_sub(1)).map(|c| (*n, c.clone()))).collect()
    }

    fn record(&self, call: Call) -> usize {
        let Ok(mut r) = self.recorder.lock() else { return 0 };
        if let Some(n) = r.numbers.get(&call) {
            return *n;
        }
        r.calls.push(call.clone());
        let n = r.calls.len();
        r.numbers.insert(call, n);
        n
    }

    /// Plans one batch of calls of `action`: resolves inputs, records, returns statuses.
    async fn plan_rows(&self, action: &str, args: &[ArrayRef], rows: usize) -> DfResult<ArrayRef> {
        if let Some(refusal) = self.permissions().refusal(action) {
            return Err(internal(refusal));
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
        let directory = if action == "create_user_group" { None } else { Some(Directory::load(&self.conn).await?) };
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            let status = match (action, &directory) {
                ("create_user_group", _) => match arg(0, i).map(|n| n.trim().to_string()).filter(|n| !n.is_empty()) {
                    None => "error: a group needs a name".to_string(),
                    Some(name) => {
                        let description = arg(1, i).unwrap_or_default();
                        format!("planned #{}", self.record(Call::CreateGroup { name, description }))
                    }
                },
                (_, Some(dir)) => match (arg(0, i), arg(1, i)) {
                    (None, _) => "error: no user given".to_string(),
                    (_, None) => "error: no group given".to_string(),
                    (Some(u), Some(g)) => match (dir.user(&u), dir.group(&g)) {
                        (Err(e), _) | (_, Err(e)) => e,
                        (Ok((user_id, user)), Ok((group_id, group))) => {
                            let call = if action == "add_user_to_group" {
                                Call::AddMember { user_id, user, group_id, group }
                            } else {
                                Call::RemoveMember { user_id, user, group_id, group }
                            };
                            format!("planned #{}", self.record(call))
                        }
                    },
                },
                _ => "error: unknown action".to_string(),
            };
            out.push(status);
        }
        Ok(Arc::new(StringArray::from(out)))
    }

    /// Runs the given calls against JumpCloud, one request each (429s are waited out; nothing
    /// else is retried), patches the cached tables, and appends each outcome to the audit log.
    pub async fn apply(&self, calls: &[(usize, Call)]) -> Vec<CallResult> {
        let mut results = Vec::with_capacity(calls.len());
        for (number, call) in calls {
            let (status, http_status) = match self.permissions().refusal(call.action()) {
                Some(_) => ("denied".to_string(), None),
                None => self.apply_one(call).await,
            };
            self.audit(call, &status, http_status);
            results.push(CallResult { number: *number, call: call.clone(), status, http_status });
        }
        results
    }

    async fn post(&self, path: &str, body: &Value) -> Result<WriteResponse, String> {
        let client = self.conn.client().ok_or_else(|| JcsqlError::NotConnected.to_string())?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = client.post(true, path, body).await.map_err(|e| e.to_string())?;
            // A 429 means the request was not processed, so sending it again is safe.
            if r.status != 429 || attempt >= 5 {
                return Ok(r);
            }
            tokio::time::sleep(Duration::from_millis(500 * attempt)).await;
        }
    }

    async fn apply_one(&self, call: &Call) -> (String, Option<u16>) {
        let (path, body) = match call {
            Call::CreateGroup { name, description } => {
                let mut body = json!({"name": name});
                if !description.is_empty() {
                    body["description"] = json!(description);
                }
                ("/usergroups".to_string(), body)
            }
            Call::AddMember { user_id, group_id, .. } => {
                (format!("/usergroups/{group_id}/members"), json!({"op": "add", "type": "user", "id": user_id}))
            }
            Call::RemoveMember { user_id, group_id, .. } => {
                (format!("/usergroups/{group_id}/members"), json!({"op": "remove", "type": "user", "id": user_id}))
            }
        };
        let r = match self.post(&path, &body).await {
            Ok(r) => r,
            Err(e) => return (format!("error: {e}"), None),
        };
        let status = match (call, r.status) {
            (Call::CreateGroup { .. }, 200 | 201) => {
                if let Some(group) = &r.body {
                    self.patch_new_group(group);
                }
                "created"
            }
            (Call::CreateGroup { .. }, 409) => "exists",
            (Call::AddMember { user_id, group_id, .. }, 200 | 204) => {
                self.patch_membership(group_id, user_id, true);
                "added"
            }
            (Call::AddMember { .. }, 409) => "already_member",
            (Call::RemoveMember { user_id, group_id, .. }, 200 | 204) => {
                self.patch_membership(group_id, user_id, false);
                "removed"
            }
            (Call::RemoveMember { .. }, 404) => "not_member",
            (_, code) => return (format!("error: JumpCloud answered {code}: {}", r.message), Some(code)),
        };
        (status.to_string(), Some(r.status))
    }

    fn patch_new_group(&self, group: &Value) {
        let Ok(table) = self.conn.table("user_groups") else { return };
        let now = chrono::Utc::now().timestamp_micros();
        let _ = table.patch(|batches| {
            let mut out = batches.to_vec();
            out.push(
                table
                    .def
                    .to_batch(std::slice::from_ref(group), None, now)
                    .map_err(|e| JcsqlError::Cache(e.to_string()))?,
            );
            Ok(out)
        });
    }

    fn patch_membership(&self, group_id: &str, user_id: &str, add: bool) {
        let Ok(table) = self.conn.table("user_group_members") else { return };
        let now = chrono::Utc::now().timestamp_micros();
        let _ = table.patch(|batches| {
            if add {
                let mut out = batches.to_vec();
                let edge = json!({"to": {"id": user_id, "type": "user"}, "attributes": null});
                out.push(
                    table.def.to_batch(&[edge], Some(group_id), now).map_err(|e| JcsqlError::Cache(e.to_string()))?,
                );
                return Ok(out);
            }
            batches
                .iter()
                .map(|b| {
                    let keep: BooleanArray = match (column(b, "group_id"), column(b, "user_id")) {
                        (Some(g), Some(u)) => (0..b.num_rows())
                            .map(|i| Some(!(g.value(i) == group_id && u.value(i) == user_id)))
                            .collect(),
                        _ => (0..b.num_rows()).map(|_| Some(true)).collect(),
                    };
                    filter_record_batch(b, &keep).map_err(|e| JcsqlError::Cache(e.to_string()))
                })
                .collect()
        });
    }

    fn audit(&self, call: &Call, outcome: &str, http_status: Option<u16>) {
        let Some(path) = &self.audit_log else { return };
        let entry = AuditEntry {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            action: call.action().to_string(),
            inputs: call.inputs(),
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

    /// The three functions, ready to register.
    pub fn udfs(self: &Arc<Self>) -> Vec<datafusion::logical_expr::ScalarUDF> {
        ACTIONS
            .iter()
            .map(|(name, inputs, _)| {
                let sig = if *name == "create_user_group" {
                    Signature::one_of(vec![TypeSignature::String(1), TypeSignature::String(2)], Volatility::Volatile)
                } else {
                    Signature::string(inputs.len(), Volatility::Volatile)
                };
                let f = ActionFunction { name, signature: sig, actions: self.clone() };
                AsyncScalarUDF::new(Arc::new(f)).into_scalar_udf()
            })
            .collect()
    }
}

/// One action as an async scalar function (volatile, so it is never folded at plan time).
#[derive(Debug)]
struct ActionFunction {
    name: &'static str,
    signature: Signature,
    actions: Arc<Actions>,
}

impl PartialEq for ActionFunction {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.actions, &other.actions)
    }
}
impl Eq for ActionFunction {}
impl std::hash::Hash for ActionFunction {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for ActionFunction {
    fn name(&self) -> &str {
        self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        Err(internal(format!("{} can only run as an action", self.name)))
    }
}

#[async_trait]
impl AsyncScalarUDFImpl for ActionFunction {
    async fn invoke_async_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        // Literal arguments come as scalars: expand each to the batch's rows.
        let arrays = args.args.iter().map(|a| a.to_array(rows)).collect::<DfResult<Vec<_>>>()?;
        let out = self.actions.plan_rows(self.name, &arrays, rows).await?;
        Ok(ColumnarValue::Array(out))
    }
}

/// A plan as a person reads it: the count, then one line per call.
pub fn describe_plan(calls: &[(usize, Call)]) -> String {
    let mut s = format!("Plan: {}\n", crate::cli::plural(calls.len(), "call"));
    for (n, c) in calls {
        s.push_str(&format!("  #{n} {}\n", c.describe()));
    }
    s
}

/// Apply results as a table: call, action, user, group, status.
pub fn results_batch(results: &[CallResult]) -> RecordBatch {
    let col = |f: &dyn Fn(&CallResult) -> String| -> ArrayRef {
        Arc::new(StringArray::from(results.iter().map(f).collect::<Vec<_>>()))
    };
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("call", col(&|r| format!("#{}", r.number))),
        ("action", col(&|r| r.call.action().to_string())),
        ("user", col(&|r| r.call.labels().0)),
        ("group", col(&|r| r.call.labels().1)),
        ("status", col(&|r| r.status.clone())),
    ];
    RecordBatch::try_from_iter(cols)
        .unwrap_or_else(|_| RecordBatch::new_empty(Arc::new(datafusion::arrow::datatypes::Schema::empty())))
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

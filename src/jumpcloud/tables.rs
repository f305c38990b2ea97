//! One definition per JumpCloud table: where its rows come from, how each JSON field becomes an
//! Arrow column, and which field is its primary one. Adding a table means adding one definition
//! to [`all_tables`]; the client, cache, catalog and simulator tests all iterate over that list.
//!
//! Column names follow DESIGN §3: snake_case of the API field (`jobTitle` → `job_title`,
//! `_id` → `id`), scalar leaves of one-level objects flattened as `parent_child`, references
//! suffixed `_id`, date fields as `Timestamp(Microsecond, "UTC")`, arrays and deep objects as
//! JSON text with secrets removed.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::DataFusionError;
use serde_json::Value;

use super::decode::{FieldPlan, PageBuilder};

/// Where a table's rows come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A v1 list: `GET /api{path}` answering `{totalCount, results}`.
    V1List { path: &'static str },
    /// A v2 list: `GET /api/v2{path}` answering a JSON array with `x-total-count`.
    V2List { path: &'static str },
    /// A v2 graph list fetched once per row of `parent` (`{id}` in `path` is the parent's id).
    PerParent { parent: &'static str, path: &'static str, query: &'static [(&'static str, &'static str)] },
}

/// How one JSON value becomes one Arrow value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Bool,
    Int,
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
}

impl Column {
    fn new(path: &'static str, kind: Kind, description: &'static str) -> Self {
        Column { name: column_name(path, kind), path, kind, description }
    }

    fn named(mut self, name: &str) -> Self {
        self.name = name.to_string();
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
    schema: SchemaRef,
    pub(crate) plan: FieldPlan,
}

pub const PRIMARY_FIELD_KEY: &str = "jcsql.primary_field";

impl TableDef {
    fn new(
        name: &'static str,
        description: &'static str,
        source: Source,
        primary: Option<&'static str>,
        key: &'static [&'static str],
        mut columns: Vec<Column>,
    ) -> Self {
        columns.push(Column::new("_fetched_at", Kind::FetchedAt, "When jcsql fetched this row from JumpCloud."));
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
        TableDef { name, description, source, columns, primary, key, schema, plan }
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The column holding the parent's id, for relation tables.
    pub fn parent_column(&self) -> Option<&str> {
        self.columns.iter().find(|c| c.kind == Kind::ParentId).map(|c| c.name.as_str())
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
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

/// Keys that hold credentials in JumpCloud objects (device `systemToken`, SAML private keys,
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

// ---------------------------------------------------------------------------------------------
// The tables
// ---------------------------------------------------------------------------------------------

use Kind::*;

fn users() -> TableDef {
    TableDef::new(
        "users",
        "People in the directory (v1 /systemusers).",
        Source::V1List { path: "/systemusers" },
        Some("email"),
        &["id"],
        vec![
            Column::new("_id|id", Text, "JumpCloud id of the user.").named("id"),
            Column::new("username", Text, "Login name, unique in the org."),
            Column::new("email", Text, "Primary email address, unique in the org."),
            Column::new("firstname", Text, "First name."),
            Column::new("middlename", Text, "Middle name."),
            Column::new("lastname", Text, "Last name."),
            Column::new("displayname", Text, "Name shown in the console and user portal."),
            Column::new("state", Text, "STAGED, ACTIVATED or SUSPENDED."),
            Column::new("activated", Bool, "Whether the user has activated the account (may disagree with state)."),
            Column::new("suspended", Bool, "Whether the account is suspended."),
            Column::new("account_locked", Bool, "Locked after too many failed logins."),
            Column::new("account_locked_date", Timestamp, "When the account was locked."),
            Column::new("mfa.configured", Bool, "The user has set up an MFA factor."),
            Column::new("mfa.exclusion", Bool, "The user is excluded from MFA."),
            Column::new("mfa.exclusionDays", Int, "Days of MFA exclusion granted."),
            Column::new("mfa.exclusionUntil", Timestamp, "When the MFA exclusion ends."),
            Column::new("mfaEnrollment.overallStatus", Text, "MFA enrollment status overall."),
            Column::new("mfaEnrollment.totpStatus", Text, "TOTP enrollment status."),
            Column::new("mfaEnrollment.webAuthnStatus", Text, "WebAuthn enrollment status."),
            Column::new("mfaEnrollment.pushStatus", Text, "Push (JumpCloud Protect) enrollment status."),
            Column::new("mfaEnrollment.jcGoStatus", Text, "JumpCloud Go enrollment status."),
            Column::new("totp_enabled", Bool, "TOTP MFA is enabled for the user."),
            Column::new("enable_user_portal_multifactor", Bool, "MFA required for the user portal."),
            Column::new("password_date", Timestamp, "When the password was last set."),
            Column::new("password_expired", Bool, "The password has expired."),
            Column::new("password_never_expires", Bool, "The password is exempt from expiry."),
            Column::new("password_expiration_date", Timestamp, "When the password expires."),
            Column::new("external_password_expiration_date", Timestamp, "Password expiry in the external directory."),
            Column::new("passwordless_sudo", Bool, "May sudo without a password on bound devices."),
            Column::new("sudo", Bool, "Has sudo (admin) rights on bound devices."),
            Column::new("department", Text, "Department."),
            Column::new("jobTitle", Text, "Job title."),
            Column::new("company", Text, "Company."),
            Column::new("costCenter", Text, "Cost center."),
            Column::new("employeeIdentifier", Text, "Employee id from HR."),
            Column::new("employeeType", Text, "Employee type (full-time, contractor, ...)."),
            Column::new("location", Text, "Office or location."),
            Column::new("description", Text, "Free-text description."),
            Column::new("manager", Reference, "Id of the user's manager (a users.id)."),
            Column::new("alternateEmail", Text, "Alternate email address."),
            Column::new("recoveryEmail.address", Text, "Recovery email address."),
            Column::new("recoveryEmail.verified", Bool, "The recovery email is verified."),
            Column::new("recoveryEmail.verifiedAt", Timestamp, "When the recovery email was verified."),
            Column::new("managedAppleId", Text, "Managed Apple ID."),
            Column::new("systemUsername", Text, "Local account name on devices, when it differs from username."),
            Column::new("unix_uid", Int, "UNIX user id on bound devices."),
            Column::new("unix_guid", Int, "UNIX group id on bound devices."),
            Column::new("badLoginAttempts", Int, "Failed logins since the last success."),
            Column::new("allow_public_key", Bool, "May log in to devices with an SSH key."),
            Column::new("ldap_binding_user", Bool, "Is an LDAP binding (service) user."),
            Column::new("samba_service_user", Bool, "Is a Samba service user."),
            Column::new("enable_managed_uid", Bool, "UID/GID are managed by JumpCloud."),
            Column::new("disableDeviceMaxLoginAttempts", Bool, "Device lockout after failed logins is off."),
            Column::new("externally_managed", Bool, "Managed by an external directory (deprecated)."),
            Column::new("external_dn", Text, "Distinguished name in the external directory."),
            Column::new("external_source_type", Text, "Kind of external directory."),
            Column::new("creationSource", Text, "How the user was created."),
            Column::new("delegatedAuthority.id", Text, "Id of the delegated authority (an identity provider)."),
            Column::new("delegatedAuthority.name", Text, "Name of the delegated authority."),
            Column::new("organization", Reference, "Id of the organization."),
            Column::new("created", Timestamp, "When the user was created."),
            Column::new("addresses", Json, "Postal addresses (JSON array)."),
            Column::new("phoneNumbers", Json, "Phone numbers (JSON array)."),
            Column::new("attributes", Json, "Custom attributes (JSON array of {name, value})."),
            Column::new("relationships", Json, "Relationships to other people (JSON array)."),
            Column::new("restrictedFields", Json, "Fields an external directory owns (JSON array)."),
            Column::new("ssh_keys", Json, "Public SSH keys (JSON array)."),
            Column::new("admin", Json, "Admin role, when the user is also an administrator (JSON)."),
        ],
    )
}

fn user_groups() -> TableDef {
    TableDef::new(
        "user_groups",
        "User groups (v2 /usergroups).",
        Source::V2List { path: "/usergroups" },
        Some("name"),
        &["id"],
        vec![
            Column::new("id", Text, "JumpCloud id of the group."),
            Column::new("name", Text, "Group name, unique in the org."),
            Column::new("description", Text, "Description."),
            Column::new("type", Text, "Always user_group."),
            Column::new("membershipMethod", Text, "NOTSET, STATIC, DYNAMIC_REVIEW_REQUIRED or DYNAMIC_AUTOMATED."),
            Column::new("email", Text, "Group email address."),
            Column::new("attributes.sudo.enabled", Bool, "Members get sudo on devices bound to the group.")
                .named("sudo_enabled"),
            Column::new("attributes.sudo.withoutPassword", Bool, "Members get passwordless sudo.")
                .named("sudo_without_password"),
            Column::new("attributes.sambaEnabled", Bool, "Samba is enabled for the group.").named("samba_enabled"),
            Column::new(
                "attributes",
                Json,
                "All group attributes (JSON: sudo, ldapGroups, posixGroups, radius, custom).",
            ),
            Column::new("memberQuery", Json, "Rule of a dynamic group (JSON)."),
            Column::new("memberQueryErrorFlags", Json, "Problems with the dynamic rule (JSON array)."),
            Column::new("memberQueryExemptions", Json, "Objects exempted from the dynamic rule (JSON array)."),
            Column::new("memberSuggestionsNotify", Bool, "Admins are emailed membership suggestions."),
            Column::new("suggestionCounts.add", Int, "Suggested additions pending review."),
            Column::new("suggestionCounts.remove", Int, "Suggested removals pending review."),
            Column::new("suggestionCounts.total", Int, "All suggestions pending review."),
            Column::new("organizationObjectId", Text, "Id of the organization.").named("organization_id"),
        ],
    )
}

fn devices() -> TableDef {
    TableDef::new(
        "devices",
        "Devices (systems) running the JumpCloud agent (v1 /systems).",
        Source::V1List { path: "/systems" },
        Some("display_name"),
        &["id"],
        vec![
            Column::new("_id|id", Text, "JumpCloud id of the device.").named("id"),
            Column::new("displayName", Text, "Name shown in the console."),
            Column::new("hostname", Text, "Host name reported by the agent."),
            Column::new("serialNumber", Text, "Hardware serial number."),
            Column::new("os", Text, "Operating system (Windows, Mac OS X, Ubuntu, ...)."),
            Column::new("osFamily", Text, "OS family (windows, darwin, linux)."),
            Column::new("version", Text, "OS version."),
            Column::new("arch", Text, "Architecture as reported (e.g. 64-bit, arm64)."),
            Column::new("archFamily", Text, "Architecture family."),
            Column::new("agentVersion", Text, "JumpCloud agent version."),
            Column::new("active", Bool, "The agent is connected now."),
            Column::new("lastContact", Timestamp, "When the agent last checked in."),
            Column::new("created", Timestamp, "When the device was enrolled."),
            Column::new("fde.active", Bool, "Full-disk encryption is on."),
            Column::new("fde.keyPresent", Bool, "JumpCloud holds the recovery key."),
            Column::new("remoteIP", Text, "Public IP address last seen."),
            Column::new("primarySystemUser.id", Text, "Id of the device's primary user (a users.id)."),
            Column::new("description", Text, "Description."),
            Column::new("hwVendor", Text, "Hardware vendor."),
            Column::new("templateName", Text, "Agent template."),
            Column::new("systemTimezone", Int, "Time zone offset in hours."),
            Column::new("fileSystem", Text, "File system."),
            Column::new("displayManager", Text, "Display manager (Linux)."),
            Column::new("amazonInstanceID", Text, "EC2 instance id."),
            Column::new("remoteAssistAgentVersion", Text, "Remote assist agent version."),
            Column::new("agentHasFullDiskAccess", Bool, "macOS: the agent has full disk access."),
            Column::new("allowMultiFactorAuthentication", Bool, "MFA on login is allowed."),
            Column::new("allowPublicKeyAuthentication", Bool, "SSH key login is allowed."),
            Column::new("allowSshPasswordAuthentication", Bool, "SSH password login is allowed."),
            Column::new("allowSshRootLogin", Bool, "SSH root login is allowed."),
            Column::new("sshRootEnabled", Bool, "Root SSH is enabled."),
            Column::new("modifySSHDConfig", Bool, "JumpCloud manages sshd_config."),
            Column::new("azureAdJoined", Bool, "Windows: joined to Entra ID."),
            Column::new("desktopCapable", Bool, "Has a desktop."),
            Column::new("hasServiceAccount", Bool, "macOS: has the JumpCloud service account."),
            Column::new("isPolicyBound", Bool, "Bound to at least one policy."),
            Column::new("domainInfo.domainName", Text, "Windows domain name."),
            Column::new("domainInfo.partOfDomain", Bool, "Windows: joined to a domain."),
            Column::new("secureLogin.enabled", Bool, "Secure login is enabled."),
            Column::new("secureLogin.supported", Bool, "Secure login is supported."),
            Column::new("systemInsights.state", Text, "System Insights state."),
            Column::new("serviceAccountState.hasSecureToken", Bool, "macOS service account has a secure token."),
            Column::new("serviceAccountState.passwordAPFSValid", Bool, "macOS service account APFS password is valid."),
            Column::new("serviceAccountState.passwordODValid", Bool, "macOS service account OD password is valid."),
            Column::new("osVersionDetail.osName", Text, "OS name in detail."),
            Column::new("osVersionDetail.distributionName", Text, "Linux distribution."),
            Column::new("osVersionDetail.releaseName", Text, "Release name."),
            Column::new("osVersionDetail.version", Text, "Full OS version."),
            Column::new("osVersionDetail.major", Text, "Major version."),
            Column::new("osVersionDetail.minor", Text, "Minor version."),
            Column::new("osVersionDetail.patch", Text, "Patch version."),
            Column::new("osVersionDetail.revision", Text, "Revision."),
            Column::new("osVersionDetail.majorNumber", Int, "Major version number."),
            Column::new("osVersionDetail.minorNumber", Int, "Minor version number."),
            Column::new("osVersionDetail.patchNumber", Int, "Patch version number."),
            Column::new("policyStats.total", Int, "Policies bound."),
            Column::new("policyStats.success", Int, "Policies applied."),
            Column::new("policyStats.failed", Int, "Policies failed."),
            Column::new("policyStats.pending", Int, "Policies pending."),
            Column::new("policyStats.duplicate", Int, "Duplicate policies."),
            Column::new("policyStats.unsupportedOs", Int, "Policies unsupported on this OS."),
            Column::new("organization", Reference, "Id of the organization."),
            Column::new("mdm", Json, "MDM enrollment (JSON)."),
            Column::new("networkInterfaces", Json, "Network interfaces (JSON array)."),
            Column::new("attributes", Json, "Custom attributes (JSON array)."),
            Column::new("builtInCommands", Json, "Built-in commands available (JSON array)."),
            Column::new("userMetrics", Json, "Local accounts seen by the agent (JSON array)."),
            Column::new("sshdParams", Json, "sshd parameters (JSON array)."),
            Column::new("connectionHistory", Json, "Recent connections (JSON array)."),
            Column::new("provisionMetadata", Json, "How the device was provisioned (JSON)."),
        ],
    )
}

fn applications() -> TableDef {
    TableDef::new(
        "applications",
        "SSO applications (v1 /applications).",
        Source::V1List { path: "/applications" },
        Some("display_label"),
        &["id"],
        vec![
            Column::new("_id|id", Text, "JumpCloud id of the application.").named("id"),
            Column::new("name", Text, "Catalog key of the application (e.g. aws-sso)."),
            Column::new("displayLabel", Text, "Label the admin gave the application."),
            Column::new("displayName", Text, "Catalog name of the application."),
            Column::new("ssoUrl", Text, "IdP-initiated SSO URL."),
            Column::new("active", Bool, "The application is active."),
            Column::new("beta", Bool, "A beta connector."),
            Column::new("created", Timestamp, "When the application was added."),
            Column::new("description", Text, "Description."),
            Column::new("learnMore", Text, "Documentation link."),
            Column::new("color", Text, "Tile color."),
            Column::new("logo.url", Text, "Logo URL."),
            Column::new("logo.color", Text, "Logo color."),
            Column::new("parentApp", Text, "Parent application id."),
            Column::new("sso.type", Text, "SSO protocol (saml, oidc, ...)."),
            Column::new("sso.jit", Bool, "Just-in-time provisioning is on."),
            Column::new("sso.hidden", Bool, "Hidden from the user portal."),
            Column::new("sso.beta", Bool, "SSO connector is beta."),
            Column::new("sso.idpCertExpirationAt", Timestamp, "When the IdP certificate expires."),
            Column::new("sso.idpCertificateUpdatedAt", Timestamp, "When the IdP certificate was replaced."),
            Column::new("sso.spCertificateUpdatedAt", Timestamp, "When the SP certificate was replaced."),
            Column::new("organization", Reference, "Id of the organization."),
            Column::new("config", Json, "Connector configuration (JSON; private keys and secrets removed)."),
            Column::new("databaseAttributes", Json, "Attribute mappings (JSON array)."),
        ],
    )
}

/// A graph (edge) table fetched once per parent: `{parent_col}` is the parent's id and
/// `{target_col}` the `to.id` of each edge.
struct Edge {
    name: &'static str,
    description: &'static str,
    parent: &'static str,
    path: &'static str,
    query: &'static [(&'static str, &'static str)],
    parent_col: &'static str,
    target_col: &'static str,
    key: &'static [&'static str],
}

impl Edge {
    fn table(self, extra: Vec<Column>) -> TableDef {
        let mut columns = vec![
            Column::new("parent", ParentId, "Id of the object the edge starts from.").named(self.parent_col),
            Column::new("to.id", Text, "Id of the object the edge points to.").named(self.target_col),
        ];
        columns.extend(extra);
        let source = Source::PerParent { parent: self.parent, path: self.path, query: self.query };
        TableDef::new(self.name, self.description, source, None, self.key, columns)
    }
}

fn user_group_members() -> TableDef {
    Edge {
        name: "user_group_members",
        description: "Direct members of each user group (v2 /usergroups/{id}/members).",
        parent: "user_groups",
        path: "/usergroups/{id}/members",
        query: &[],
        parent_col: "group_id",
        target_col: "user_id",
        key: &["user_id"],
    }
    .table(vec![])
}

fn device_users() -> TableDef {
    Edge {
        name: "device_users",
        description: "Users bound to each device (v2 /systems/{id}/associations?targets=user).",
        parent: "devices",
        path: "/systems/{id}/associations",
        query: &[("targets", "user")],
        parent_col: "device_id",
        target_col: "user_id",
        key: &["user_id"],
    }
    .table(vec![
        Column::new("attributes.sudo.enabled", Bool, "The user has sudo on this device.").named("sudo_enabled"),
        Column::new("attributes.sudo.withoutPassword", Bool, "The user has passwordless sudo on this device.")
            .named("sudo_without_password"),
    ])
}

fn application_user_groups() -> TableDef {
    Edge {
        name: "application_user_groups",
        description: "User groups bound to each application (v2 /applications/{id}/associations?targets=user_group).",
        parent: "applications",
        path: "/applications/{id}/associations",
        query: &[("targets", "user_group")],
        parent_col: "application_id",
        target_col: "group_id",
        key: &["group_id"],
    }
    .table(vec![])
}

fn application_users() -> TableDef {
    Edge {
        name: "application_users",
        description: "Users bound directly to each application (v2 /applications/{id}/associations?targets=user).",
        parent: "applications",
        path: "/applications/{id}/associations",
        query: &[("targets", "user")],
        parent_col: "application_id",
        target_col: "user_id",
        key: &["user_id"],
    }
    .table(vec![])
}

static TABLES: LazyLock<Vec<TableDef>> = LazyLock::new(|| {
    vec![
        users(),
        user_groups(),
        devices(),
        applications(),
        user_group_members(),
        device_users(),
        application_user_groups(),
        application_users(),
    ]
});

/// Every JumpCloud table, parents before the relation tables that need them.
pub fn all_tables() -> &'static [TableDef] {
    &TABLES
}

pub fn table(name: &str) -> Option<&'static TableDef> {
    let name = name.strip_prefix("jumpcloud.").unwrap_or(name);
    TABLES.iter().find(|t| t.name == name)
}

/// Views over the tables above, created in schema `jumpcloud` (name, SQL, description).
pub const VIEWS: &[(&str, &str, &str)] = &[(
    "user_application_access",
    "SELECT au.user_id, au.application_id, CAST(NULL AS VARCHAR) AS via_group_id \
     FROM jumpcloud.application_users au \
     UNION ALL \
     SELECT m.user_id, ag.application_id, ag.group_id AS via_group_id \
     FROM jumpcloud.application_user_groups ag \
     JOIN jumpcloud.user_group_members m ON m.group_id = ag.group_id",
    "Every path by which a user reaches an application: directly (via_group_id NULL) or through a group.",
)];

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

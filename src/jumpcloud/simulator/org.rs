//! A deterministic, realistic JumpCloud org: departments and managers, suspended and staged
//! users, users without MFA, devices not seen for months, groups larger than one page, apps
//! bound to groups and to users, nulls, empty strings and non-ASCII names. Records are shaped
//! like the recorded live responses (`_id` and `id` both on v1 records, empty strings for unset
//! text, fields absent on older records).
//!
//! Dates are relative to the day the org is generated, so "not seen for 90 days" stays true
//! for the planted devices whenever the org is generated.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{Value, json};

/// splitmix64: tiny, fast and the same on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[derive(Debug, Clone)]
pub struct OrgSpec {
    pub users: usize,
    pub seed: u64,
    /// Defaults scale with `users` (DESIGN §2: group, device and app counts scale with N).
    pub groups: Option<usize>,
    pub devices: Option<usize>,
    pub applications: Option<usize>,
    /// Directory Insights volume: this many more events per user per day over the last 31
    /// days (LDAP binds and RADIUS in bursts, logins, SSO), beside the few the org always has.
    pub events_per_user_per_day: Option<f64>,
}

impl OrgSpec {
    pub fn new(users: usize, seed: u64) -> Self {
        OrgSpec { users, seed, groups: None, devices: None, applications: None, events_per_user_per_day: None }
    }
    pub fn group_count(&self) -> usize {
        self.groups.unwrap_or((self.users / 20).max(16))
    }
    pub fn device_count(&self) -> usize {
        self.devices.unwrap_or((self.users / 5).max(8))
    }
    pub fn application_count(&self) -> usize {
        self.applications.unwrap_or((self.users / 200).max(6))
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Mfa {
    pub exclusion: bool,
    pub configured: bool,
    #[serde(rename = "exclusionUntil", skip_serializing_if = "Option::is_none")]
    pub exclusion_until: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MfaEnrollment {
    #[serde(rename = "overallStatus")]
    pub overall_status: &'static str,
    #[serde(rename = "totpStatus")]
    pub totp_status: &'static str,
    #[serde(rename = "webAuthnStatus")]
    pub web_authn_status: &'static str,
    #[serde(rename = "pushStatus")]
    pub push_status: &'static str,
}

/// A `systemuserreturn` record as live JumpCloud sends it.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub account_locked: bool,
    pub account_locked_date: Option<String>,
    pub activated: bool,
    pub addresses: Vec<Value>,
    pub allow_public_key: bool,
    pub attributes: Vec<Value>,
    pub company: String,
    #[serde(rename = "costCenter")]
    pub cost_center: String,
    pub department: String,
    pub description: String,
    #[serde(rename = "disableDeviceMaxLoginAttempts")]
    pub disable_device_max_login_attempts: bool,
    pub displayname: String,
    pub email: String,
    #[serde(rename = "employeeIdentifier")]
    pub employee_identifier: Option<String>,
    #[serde(rename = "employeeType")]
    pub employee_type: String,
    pub enable_managed_uid: bool,
    pub enable_user_portal_multifactor: bool,
    pub external_dn: String,
    pub external_source_type: String,
    pub externally_managed: bool,
    pub firstname: String,
    #[serde(rename = "jobTitle")]
    pub job_title: String,
    pub lastname: String,
    pub ldap_binding_user: bool,
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    pub mfa: Mfa,
    #[serde(rename = "mfaEnrollment", skip_serializing_if = "Option::is_none")]
    pub mfa_enrollment: Option<MfaEnrollment>,
    pub middlename: String,
    pub organization: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_expiration_date: Option<String>,
    pub password_never_expires: bool,
    pub passwordless_sudo: bool,
    #[serde(rename = "phoneNumbers")]
    pub phone_numbers: Vec<Value>,
    pub samba_service_user: bool,
    pub ssh_keys: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    pub sudo: bool,
    pub suspended: bool,
    #[serde(rename = "systemUsername")]
    pub system_username: String,
    pub unix_guid: i64,
    pub unix_uid: i64,
    pub username: String,
    pub created: String,
    pub password_expired: bool,
    pub totp_enabled: bool,
    pub _id: String,
    pub id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct UserGroup {
    pub attributes: Option<Value>,
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub email: String,
    pub description: String,
    #[serde(rename = "membershipMethod", skip_serializing_if = "Option::is_none")]
    pub membership_method: Option<&'static str>,
    #[serde(rename = "organizationObjectId", skip_serializing_if = "Option::is_none")]
    pub organization_object_id: Option<String>,
}

/// A `JcSystem` record. `systemToken` is sent because live JumpCloud sends it; jcsql must drop it.
#[derive(Debug, Clone, Serialize)]
pub struct Device {
    pub _id: String,
    pub active: bool,
    #[serde(rename = "agentVersion")]
    pub agent_version: String,
    #[serde(rename = "allowMultiFactorAuthentication")]
    pub allow_multi_factor_authentication: bool,
    #[serde(rename = "allowPublicKeyAuthentication")]
    pub allow_public_key_authentication: bool,
    #[serde(rename = "allowSshPasswordAuthentication")]
    pub allow_ssh_password_authentication: bool,
    #[serde(rename = "allowSshRootLogin")]
    pub allow_ssh_root_login: bool,
    pub arch: &'static str,
    #[serde(rename = "builtInCommands", skip_serializing_if = "Option::is_none")]
    pub built_in_commands: Option<Vec<Value>>,
    #[serde(rename = "connectionHistory")]
    pub connection_history: Vec<Value>,
    pub created: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
    pub fde: Value,
    #[serde(rename = "fileSystem")]
    pub file_system: Option<&'static str>,
    #[serde(rename = "hasServiceAccount")]
    pub has_service_account: bool,
    pub hostname: String,
    pub id: String,
    #[serde(rename = "lastContact")]
    pub last_contact: Option<String>,
    #[serde(rename = "modifySSHDConfig")]
    pub modify_sshd_config: bool,
    #[serde(rename = "networkInterfaces")]
    pub network_interfaces: Vec<Value>,
    pub organization: String,
    pub os: &'static str,
    #[serde(rename = "osFamily", skip_serializing_if = "Option::is_none")]
    pub os_family: Option<&'static str>,
    #[serde(rename = "primarySystemUser", skip_serializing_if = "Option::is_none")]
    pub primary_system_user: Option<Value>,
    #[serde(rename = "remoteIP")]
    pub remote_ip: String,
    #[serde(rename = "serialNumber")]
    pub serial_number: String,
    #[serde(rename = "sshRootEnabled")]
    pub ssh_root_enabled: bool,
    #[serde(rename = "sshdParams")]
    pub sshd_params: Vec<Value>,
    #[serde(rename = "systemInsights")]
    pub system_insights: Value,
    #[serde(rename = "systemTimezone")]
    pub system_timezone: i64,
    #[serde(rename = "systemToken")]
    pub system_token: String,
    #[serde(rename = "templateName")]
    pub template_name: String,
    pub version: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Application {
    pub _id: String,
    pub id: String,
    pub active: bool,
    pub name: String,
    #[serde(rename = "displayName")]
    pub display_name: String,
    #[serde(rename = "displayLabel")]
    pub display_label: String,
    pub beta: bool,
    pub color: Option<String>,
    pub organization: String,
    pub logo: Value,
    #[serde(rename = "ssoUrl")]
    pub sso_url: String,
    #[serde(rename = "learnMore")]
    pub learn_more: String,
    pub description: String,
    pub config: Value,
    #[serde(rename = "databaseAttributes")]
    pub database_attributes: Vec<Value>,
    pub created: String,
    pub sso: Value,
}

/// Sudo rights on a device binding; `None` is an edge whose `attributes` is null.
pub type Sudo = Option<(bool, bool)>;

/// The whole org. Relation lists are indexed like their parents and hold child indexes.
#[derive(Debug, Clone)]
pub struct Org {
    pub org_id: String,
    /// As `/api/organizations` lists it (`null` for the first, as the recorded live org has).
    pub display_name: Option<String>,
    pub created: String,
    pub users: Vec<User>,
    pub groups: Vec<UserGroup>,
    pub devices: Vec<Device>,
    pub applications: Vec<Application>,
    pub group_members: Vec<BTreeSet<usize>>,
    pub device_users: Vec<Vec<(usize, Sudo)>>,
    pub app_groups: Vec<Vec<usize>>,
    pub app_users: Vec<Vec<usize>>,
    pub user_index: HashMap<String, usize>,
    pub group_index: HashMap<String, usize>,
    pub device_index: HashMap<String, usize>,
    pub app_index: HashMap<String, usize>,
    /// Source of ids for objects created later (POST /usergroups).
    pub next_serial: u64,
    /// Administrators, device groups, policies and the event log.
    pub audit: super::audit::Audit,
}

const DEPARTMENTS: &[(&str, &[&str])] = &[
    ("Engineering", &["Software Engineer", "Senior Software Engineer", "Staff Engineer", "Engineering Manager"]),
    ("Sales", &["Account Executive", "Sales Development Rep", "Sales Manager"]),
    ("Marketing", &["Marketing Manager", "Content Strategist", "Designer"]),
    ("Finance", &["Accountant", "Financial Analyst", "Controller"]),
    ("People", &["HR Business Partner", "Recruiter", "People Ops Specialist"]),
    ("Support", &["Support Engineer", "Customer Success Manager"]),
    ("IT", &["IT Administrator", "Security Engineer", "Helpdesk Technician"]),
    ("Legal", &["Counsel", "Paralegal"]),
    ("Operations", &["Operations Manager", "Office Manager"]),
    ("Product", &["Product Manager", "Product Designer", "UX Researcher"]),
];

/// (display, ascii) pairs: the display form carries accents and other scripts.
const FIRST_NAMES: &[(&str, &str)] = &[
    ("José", "jose"),
    ("Zoë", "zoe"),
    ("Łukasz", "lukasz"),
    ("Søren", "soren"),
    ("Chloé", "chloe"),
    ("Amélie", "amelie"),
    ("Björn", "bjorn"),
    ("Ana", "ana"),
    ("Liam", "liam"),
    ("Olivia", "olivia"),
    ("Noah", "noah"),
    ("Emma", "emma"),
    ("Mateo", "mateo"),
    ("Sofía", "sofia"),
    ("Yuki", "yuki"),
    ("Aarav", "aarav"),
    ("Fatima", "fatima"),
    ("Kwame", "kwame"),
    ("Ingrid", "ingrid"),
    ("Dmitri", "dmitri"),
    ("Mei", "mei"),
    ("Jürgen", "jurgen"),
    ("Siobhán", "siobhan"),
    ("Ethan", "ethan"),
    ("Ava", "ava"),
    ("Lucas", "lucas"),
    ("Maya", "maya"),
    ("Omar", "omar"),
    ("Priya", "priya"),
    ("Hannah", "hannah"),
];

const LAST_NAMES: &[(&str, &str)] = &[
    ("Müller", "muller"),
    ("García", "garcia"),
    ("Nguyễn", "nguyen"),
    ("O'Brien", "obrien"),
    ("Sørensen", "sorensen"),
    ("Dubois", "dubois"),
    ("Kowalski", "kowalski"),
    ("Smith", "smith"),
    ("Tanaka", "tanaka"),
    ("Ivanova", "ivanova"),
    ("Johnson", "johnson"),
    ("Silva", "silva"),
    ("Rossi", "rossi"),
    ("Kim", "kim"),
    ("Patel", "patel"),
    ("Okafor", "okafor"),
    ("Larsen", "larsen"),
    ("Brown", "brown"),
    ("Chen", "chen"),
    ("Fernández", "fernandez"),
    ("Novák", "novak"),
    ("Wilson", "wilson"),
    ("山田", "yamada"),
    ("Dupont", "dupont"),
    ("Schmidt", "schmidt"),
];

const LOCATIONS: &[&str] = &["Berlin", "São Paulo", "New York", "Zürich", "Tokyo", "London", "Remote", ""];

const APPS: &[(&str, &str, &str)] = &[
    ("aws-sso", "AWS SSO", "saml"),
    ("slack", "Slack", "saml"),
    ("salesforce", "Salesforce", "saml"),
    ("github", "GitHub", "saml"),
    ("zoom", "Zoom", "saml"),
    ("google-workspace", "Google Workspace", "saml"),
    ("atlassian", "Atlassian Cloud", "saml"),
    ("workday", "Workday", "saml"),
    ("box", "Box", "saml"),
    ("datadog", "Datadog", "oidc"),
];

const PROJECT_WORDS: &[&str] = &[
    "Apollo",
    "Zephyr",
    "Équipe Paris",
    "München Office",
    "On-call",
    "VPN Users",
    "Contractors",
    "Interns",
    "Finance Approvers",
    "Design Review",
    "Data Platform",
    "Mobile",
    "Security Champions",
    "Board",
];

const MS_PER_DAY: i64 = 86_400_000;

pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// A 24-hex, ObjectId-shaped id that sorts in creation order within a kind.
pub fn object_id(kind: u16, serial: u64, rng: &mut Rng) -> String {
    format!("{:08x}{:04x}{:012x}", 0x6000_0000u64 + serial, kind, rng.next_u64() & 0xffff_ffff_ffff)
}

pub const KIND_USER: u16 = 1;
pub const KIND_GROUP: u16 = 2;
pub const KIND_DEVICE: u16 = 3;
pub const KIND_APP: u16 = 4;

impl Org {
    /// Generates the org as of the start of today (UTC), so two runs on one day are identical.
    pub fn generate(spec: &OrgSpec) -> Org {
        let now = chrono::Utc::now().timestamp_millis();
        Self::generate_at(spec, now - now.rem_euclid(MS_PER_DAY))
    }

    pub fn generate_at(spec: &OrgSpec, now_ms: i64) -> Org {
        let mut rng = Rng::new(spec.seed);
        let org_id = format!("5f{:022x}", spec.seed as u128 & 0xffff_ffff_ffff_ffff_ffff);
        let days_ago = |rng: &mut Rng, lo: i64, hi: i64| {
            now_ms - (lo + rng.below((hi - lo).max(1) as u64) as i64) * MS_PER_DAY - rng.below(MS_PER_DAY as u64) as i64
        };

        // Users
        let mut users = Vec::with_capacity(spec.users);
        let mut dept_heads: HashMap<&str, String> = HashMap::new();
        for i in 0..spec.users {
            let (first, first_ascii) = *rng.pick(FIRST_NAMES);
            let (last, last_ascii) = *rng.pick(LAST_NAMES);
            let (dept, titles) =
                DEPARTMENTS[if i < DEPARTMENTS.len() { i } else { rng.below(DEPARTMENTS.len() as u64) as usize }];
            let id = object_id(KIND_USER, i as u64, &mut rng);
            let roll = rng.below(100);
            let state = if roll < 5 {
                "STAGED"
            } else if roll < 11 {
                "SUSPENDED"
            } else {
                "ACTIVATED"
            };
            let mfa_configured = state != "STAGED" && rng.chance(0.75);
            let exclusion = rng.chance(0.03);
            let username = format!("{first_ascii}.{last_ascii}{i}");
            let manager = match dept_heads.get(dept) {
                Some(head) if rng.chance(0.95) => Some(head.clone()),
                Some(_) => None,
                None => {
                    dept_heads.insert(dept, id.clone());
                    None
                }
            };
            let created = if state == "STAGED" { days_ago(&mut rng, 1, 90) } else { days_ago(&mut rng, 30, 1500) };
            let password_date = (state != "STAGED").then(|| iso(days_ago(&mut rng, 0, 200)));
            let locked = state == "ACTIVATED" && rng.chance(0.02);
            users.push(User {
                account_locked: locked,
                account_locked_date: locked.then(|| iso(days_ago(&mut rng, 0, 5))),
                activated: state != "STAGED",
                addresses: vec![],
                allow_public_key: rng.chance(0.8),
                attributes: if rng.chance(0.1) {
                    vec![json!({"name": "costCode", "value": format!("CC-{}", rng.below(90) + 10)})]
                } else {
                    vec![]
                },
                company: if rng.chance(0.9) { "Acme Corp".into() } else { String::new() },
                cost_center: String::new(),
                department: dept.to_string(),
                description: String::new(),
                disable_device_max_login_attempts: false,
                displayname: format!("{first} {last}"),
                email: format!("{username}@acme.example"),
                employee_identifier: if rng.chance(0.9) { Some(format!("E{:06}", i + 1)) } else { None },
                employee_type: if rng.chance(0.85) { "full-time".into() } else { "contractor".into() },
                enable_managed_uid: false,
                enable_user_portal_multifactor: mfa_configured && rng.chance(0.5),
                external_dn: String::new(),
                external_source_type: String::new(),
                externally_managed: false,
                firstname: first.to_string(),
                job_title: rng.pick(titles).to_string(),
                lastname: last.to_string(),
                ldap_binding_user: false,
                location: rng.pick(LOCATIONS).to_string(),
                manager,
                mfa: Mfa {
                    exclusion,
                    configured: mfa_configured,
                    exclusion_until: exclusion.then(|| iso(now_ms + (rng.below(30) as i64 + 1) * MS_PER_DAY)),
                },
                mfa_enrollment: rng.chance(0.8).then_some(MfaEnrollment {
                    overall_status: if mfa_configured { "ENROLLED" } else { "NOT_ENROLLED" },
                    totp_status: if mfa_configured { "ENROLLED" } else { "NOT_ENROLLED" },
                    web_authn_status: "NOT_ENROLLED",
                    push_status: "NOT_ENROLLED",
                }),
                middlename: String::new(),
                organization: org_id.clone(),
                password_expiration_date: password_date.as_ref().and_then(|_| rng.chance(0.7).then(|| iso(now_ms + (rng.below(120) as i64 - 20) * MS_PER_DAY))),
                password_date,
                password_never_expires: rng.chance(0.05),
                passwordless_sudo: false,
                phone_numbers: if rng.chance(0.3) {
                    vec![json!({"id": object_id(9, i as u64, &mut rng), "number": format!("+1 555 01{:02}", rng.below(100)), "type": "mobile"})]
                } else {
                    vec![]
                },
                samba_service_user: false,
                ssh_keys: vec![],
                state: if rng.chance(0.02) { None } else { Some(state) },
                sudo: dept == "IT" && rng.chance(0.5),
                suspended: state == "SUSPENDED",
                system_username: String::new(),
                unix_guid: 5001 + i as i64,
                unix_uid: 5001 + i as i64,
                username,
                created: iso(created),
                password_expired: rng.chance(0.03),
                totp_enabled: mfa_configured && rng.chance(0.9),
                _id: id.clone(),
                id,
            });
        }

        // Groups: everyone, one per department, then project groups (a few left empty).
        let group_count = spec.group_count().max(DEPARTMENTS.len() + 2);
        let mut groups = Vec::with_capacity(group_count);
        let mut group_members: Vec<BTreeSet<usize>> = Vec::with_capacity(group_count);
        let mk_group =
            |rng: &mut Rng, serial: usize, name: String, description: &str, attributes: Option<Value>| UserGroup {
                attributes,
                id: object_id(KIND_GROUP, serial as u64, rng),
                name,
                kind: "user_group",
                email: String::new(),
                description: description.to_string(),
                membership_method: Some("STATIC"),
                organization_object_id: Some(org_id.clone()),
            };
        groups.push(mk_group(&mut rng, 0, "All Employees".into(), "Everyone who has started", None));
        group_members.push(
            users
                .iter()
                .enumerate()
                .filter(|(_, u)| u.state != Some("STAGED") && u.activated)
                .map(|(i, _)| i)
                .collect(),
        );
        for (d, (dept, _)) in DEPARTMENTS.iter().enumerate() {
            let attrs = (*dept == "IT" || *dept == "Engineering").then(|| {
                json!({"sudo": {"enabled": true, "withoutPassword": *dept == "IT"}, "ldapGroups": [{"name": dept.to_lowercase()}]})
            });
            groups.push(mk_group(&mut rng, d + 1, (*dept).to_string(), "", attrs));
            group_members.push(
                users
                    .iter()
                    .enumerate()
                    .filter(|(_, u)| u.department == *dept && u.activated)
                    .map(|(i, _)| i)
                    .collect(),
            );
        }
        let empty_groups = (group_count / 50).max(2);
        let project_groups = group_count - groups.len();
        for p in 0..project_groups {
            let serial = groups.len();
            let base = PROJECT_WORDS[p % PROJECT_WORDS.len()];
            let name = if p < PROJECT_WORDS.len() {
                base.to_string()
            } else {
                format!("{base} {}", p / PROJECT_WORDS.len() + 1)
            };
            groups.push(mk_group(&mut rng, serial, name, "Project group", None));
            let mut members = BTreeSet::new();
            if p >= empty_groups {
                let size = 5 + rng.below(36) as usize;
                for _ in 0..size {
                    let u = rng.below(users.len() as u64) as usize;
                    if users.get(u).is_some_and(|u| u.activated) {
                        members.insert(u);
                    }
                }
            }
            group_members.push(members);
        }

        // Devices
        let device_count = spec.device_count();
        let bindable: Vec<usize> = users.iter().enumerate().filter(|(_, u)| u.activated).map(|(i, _)| i).collect();
        let mut devices = Vec::with_capacity(device_count);
        let mut device_users = Vec::with_capacity(device_count);
        for i in 0..device_count {
            let id = object_id(KIND_DEVICE, i as u64, &mut rng);
            let (os, family, version, template, arch) = match rng.below(100) {
                0..50 => (
                    "Mac OS X",
                    "darwin",
                    *rng.pick(&["14.6.1", "15.1", "13.6.9"]),
                    "macosx-darwin-x86_64",
                    *rng.pick(&["arm64", "x86_64"]),
                ),
                50..85 => (
                    "Windows",
                    "windows",
                    *rng.pick(&["11 Pro", "10 Pro", "10 Home"]),
                    "windows-windows-x86_64",
                    "64-bit",
                ),
                _ => ("Ubuntu", "linux", *rng.pick(&["22.04", "24.04"]), "linux-ubuntu-x86_64", "x86_64"),
            };
            let stale = rng.chance(0.1);
            let last_contact = if stale { days_ago(&mut rng, 91, 400) } else { days_ago(&mut rng, 0, 7) };
            let prefix = match family {
                "darwin" => "MBP",
                "windows" => "DESKTOP",
                _ => "ubuntu",
            };
            let hostname = format!("{prefix}-{:05}", i + 1);
            let mut bound: Vec<(usize, Sudo)> = Vec::new();
            if !bindable.is_empty() && !rng.chance(0.08) {
                let n = if rng.chance(0.1) { 2 } else { 1 };
                for _ in 0..n {
                    let u = *rng.pick(&bindable);
                    if !bound.iter().any(|(b, _)| *b == u) {
                        let sudo = rng.chance(0.2).then(|| (true, rng.chance(0.3)));
                        bound.push((u, sudo));
                    }
                }
            }
            let primary = bound.first().map(|(u, _)| json!({"id": users[*u].id}));
            let fde_active = rng.chance(0.85);
            devices.push(Device {
                _id: id.clone(),
                active: !stale && rng.chance(0.7),
                agent_version: format!("1.{}.{}", 150 + rng.below(20), rng.below(10)),
                allow_multi_factor_authentication: rng.chance(0.5),
                allow_public_key_authentication: family == "linux",
                allow_ssh_password_authentication: false,
                allow_ssh_root_login: false,
                arch,
                built_in_commands: (rng.chance(0.7)).then(|| {
                    ["erase", "lock", "restart", "shutdown"].iter().map(|n| json!({"name": n, "type": "security"})).collect()
                }),
                connection_history: vec![],
                created: iso(days_ago(&mut rng, 100, 1200)),
                display_name: if rng.chance(0.05) { format!("{}’s laptop", users.get(bound.first().map(|b| b.0).unwrap_or(0)).map(|u| u.firstname.as_str()).unwrap_or("Spare")) } else { hostname.clone() },
                fde: json!({"active": fde_active, "keyPresent": fde_active && rng.chance(0.9)}),
                file_system: match family { "darwin" => Some("apfs"), "linux" => Some("ext4"), _ => None },
                has_service_account: family == "darwin",
                hostname,
                id,
                last_contact: Some(iso(last_contact)),
                modify_sshd_config: false,
                network_interfaces: vec![json!({"address": format!("10.{}.{}.{}", rng.below(255), rng.below(255), 1 + rng.below(250)), "family": "IPv4", "internal": false, "name": "en0"})],
                organization: org_id.clone(),
                os,
                os_family: rng.chance(0.8).then_some(family),
                primary_system_user: primary,
                remote_ip: format!("203.0.113.{}", 1 + rng.below(250)),
                serial_number: format!("C{:02}X{:07}", rng.below(100), rng.below(10_000_000)),
                ssh_root_enabled: false,
                sshd_params: vec![],
                system_insights: json!({"state": if rng.chance(0.9) { "enabled" } else { "deferred" }}),
                system_timezone: *rng.pick(&[-8, -5, 0, 1, 9]),
                system_token: format!("{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}", rng.next_u64() as u32, rng.below(0xffff), rng.below(0xfff), rng.below(0xfff), rng.next_u64() & 0xffff_ffff_ffff),
                template_name: template.to_string(),
                version,
            });
            device_users.push(bound);
        }

        // Applications: bound to one to three groups, and sometimes to people directly.
        let app_count = spec.application_count();
        let mut applications = Vec::with_capacity(app_count);
        let mut app_groups = Vec::with_capacity(app_count);
        let mut app_users = Vec::with_capacity(app_count);
        for i in 0..app_count {
            let (key, name, sso_type) = APPS[i % APPS.len()];
            let label = if i < APPS.len() { name.to_string() } else { format!("{name} ({})", i / APPS.len() + 1) };
            let id = object_id(KIND_APP, i as u64, &mut rng);
            let cert_expiry = now_ms + (rng.below(700) as i64 - 60) * MS_PER_DAY;
            applications.push(Application {
                _id: id.clone(),
                id: id.clone(),
                active: rng.chance(0.9),
                name: key.to_string(),
                display_name: name.to_string(),
                display_label: label,
                beta: false,
                color: None,
                organization: org_id.clone(),
                logo: json!({"url": format!("https://s3.amazonaws.com/static.jumpcloud.com/applications/logos/application-icon-{key}.png")}),
                sso_url: format!("https://sso.jumpcloud.com/saml2/{key}-{i}"),
                learn_more: String::new(),
                description: String::new(),
                config: json!({
                    "acsUrl": {"label": "ACS URL", "type": "text", "value": format!("https://{key}.example/acs"), "visible": true},
                    "idpCertificate": {"label": "IdP Certificate", "type": "file", "value": "-----BEGIN CERTIFICATE-----\nMIIC...\n-----END CERTIFICATE-----", "visible": true},
                    "idpPrivateKey": {"label": "IdP Private Key", "type": "file", "value": format!("-----BEGIN PRIVATE KEY-----\nSIMULATED{:016x}\n-----END PRIVATE KEY-----", rng.next_u64()), "visible": true},
                    "spEntityId": {"label": "SP Entity ID", "type": "text", "value": format!("urn:{key}"), "visible": true}
                }),
                database_attributes: vec![],
                created: iso(days_ago(&mut rng, 30, 900)),
                sso: json!({"jit": false, "beta": false, "type": sso_type, "idpCertExpirationAt": iso(cert_expiry)}),
            });
            let mut gs = vec![1 + rng.below(DEPARTMENTS.len() as u64) as usize];
            // Half get a team group too, and some of those a second: people in two or three
            // groups of one application are the overlaps access questions must not count twice.
            let teams = if rng.chance(0.5) { 1 + usize::from(rng.chance(0.3)) } else { 0 };
            for _ in 0..teams {
                if groups.len() > DEPARTMENTS.len() + 1 {
                    let extra =
                        DEPARTMENTS.len() + 1 + rng.below((groups.len() - DEPARTMENTS.len() - 1) as u64) as usize;
                    if !gs.contains(&extra) {
                        gs.push(extra);
                    }
                }
            }
            app_groups.push(gs);
            let mut direct: Vec<usize> = Vec::new();
            for _ in 0..rng.below(4) {
                let u = rng.below(users.len().max(1) as u64) as usize;
                if u < users.len() && !direct.contains(&u) {
                    direct.push(u);
                }
            }
            app_users.push(direct);
        }

        let index =
            |ids: Vec<&String>| ids.into_iter().enumerate().map(|(i, id)| (id.clone(), i)).collect::<HashMap<_, _>>();
        let mut org = Org {
            display_name: None,
            created: iso(now_ms - 900 * MS_PER_DAY),
            user_index: index(users.iter().map(|u| &u.id).collect()),
            group_index: index(groups.iter().map(|g| &g.id).collect()),
            device_index: index(devices.iter().map(|d| &d.id).collect()),
            app_index: index(applications.iter().map(|a| &a.id).collect()),
            next_serial: groups.len() as u64,
            org_id,
            users,
            groups,
            devices,
            applications,
            group_members,
            device_users,
            app_groups,
            app_users,
            audit: Default::default(),
        };
        org.audit = super::audit::Audit::generate(&org, spec.seed, now_ms);
        if let Some(rate) = spec.events_per_user_per_day.filter(|r| *r > 0.0) {
            org.audit.volume = super::audit::volume(&org, spec.seed, now_ms + MS_PER_DAY, rate);
        }
        org
    }

    pub fn membership_count(&self) -> usize {
        self.group_members.iter().map(BTreeSet::len).sum()
    }

    /// Creates a user group as `POST /usergroups` does; `None` when the name is taken.
    pub fn create_group(&mut self, name: &str, description: &str) -> Option<&UserGroup> {
        if self.groups.iter().any(|g| g.name == name) {
            return None;
        }
        let mut rng = Rng::new(self.next_serial.wrapping_mul(7919));
        let serial = self.next_serial;
        self.next_serial += 1;
        let group = UserGroup {
            attributes: None,
            id: object_id(KIND_GROUP, serial, &mut rng),
            name: name.to_string(),
            kind: "user_group",
            email: String::new(),
            description: description.to_string(),
            membership_method: Some("STATIC"),
            organization_object_id: Some(self.org_id.clone()),
        };
        self.group_index.insert(group.id.clone(), self.groups.len());
        self.groups.push(group);
        self.group_members.push(BTreeSet::new());
        self.groups.last()
    }

    /// Suspends or unsuspends a user as `PUT /systemusers/{id}` with `{"suspended": …}` does:
    /// `state` follows (`SUSPENDED`, or `ACTIVATED` again). `None` for an unknown id.
    pub fn set_suspended(&mut self, id: &str, suspended: bool) -> Option<&User> {
        let &i = self.user_index.get(id)?;
        let u = &mut self.users[i];
        u.suspended = suspended;
        u.state = Some(if suspended { "SUSPENDED" } else { "ACTIVATED" });
        Some(&self.users[i])
    }

    /// For a relation table, how many rows each parent has (in the parent's order): what the
    /// per-parent listings return. `None` for a table that is not a relation.
    pub fn rows_per_parent(&self, table: &str) -> Option<Vec<usize>> {
        let lens = |lists: &[Vec<usize>]| lists.iter().map(Vec::len).collect();
        Some(match table {
            "user_group_members" => self.group_members.iter().map(BTreeSet::len).collect(),
            "device_users" => self.device_users.iter().map(Vec::len).collect(),
            "application_user_groups" => lens(&self.app_groups),
            "application_users" => lens(&self.app_users),
            "device_group_members" => lens(&self.audit.device_group_members),
            "policy_statuses" => self.audit.policy_results.iter().map(Vec::len).collect(),
            _ => return None,
        })
    }

    /// How many rows each JumpCloud table has for this org, by table name: what a complete
    /// fetch must return. `None` for a table the simulator does not serve.
    pub fn rows_of(&self, table: &str) -> Option<usize> {
        let sum = |lists: &[Vec<usize>]| lists.iter().map(Vec::len).sum::<usize>();
        Some(match table {
            "users" => self.users.len(),
            "user_groups" => self.groups.len(),
            "devices" => self.devices.len(),
            "applications" => self.applications.len(),
            "user_group_members" => self.membership_count(),
            "device_users" => self.device_users.iter().map(Vec::len).sum(),
            "application_user_groups" => sum(&self.app_groups),
            "application_users" => sum(&self.app_users),
            "administrators" => self.audit.admins.len(),
            "device_groups" => self.audit.device_groups.len(),
            "device_group_members" => self.audit.device_group_members.iter().map(Vec::len).sum(),
            "policies" => self.audit.policies.len(),
            "policy_statuses" => self.audit.policy_results.iter().map(Vec::len).sum(),
            // The default window: the last 30 days.
            "directory_events" => {
                let from = chrono::Utc::now().timestamp_millis() - 30 * MS_PER_DAY;
                self.audit.events_between(from, None).count()
            }
            "user_application_access" => {
                sum(&self.app_users)
                    + self.app_groups.iter().flatten().map(|g| self.group_members[*g].len()).sum::<usize>()
            }
            other => {
                let route = super::insights::route_of(other)?;
                (0..self.devices.len()).map(|d| super::insights::count(self, route, d)).sum()
            }
        })
    }

    /// Adds a user like `template` (an existing user's index) with a new id, username and email.
    pub fn add_user(&mut self, template: usize, username: &str, email: &str) -> String {
        let mut rng = Rng::new(self.next_serial.wrapping_mul(104_729));
        let id = object_id(KIND_USER, 1_000_000 + self.next_serial, &mut rng);
        self.next_serial += 1;
        let mut user = self.users[template].clone();
        user.id = id.clone();
        user._id = id.clone();
        user.username = username.to_string();
        user.email = email.to_string();
        self.user_index.insert(id.clone(), self.users.len());
        self.users.push(user);
        id
    }

    /// Deletes a device and its bindings and group memberships; `false` for an unknown id.
    pub fn delete_device(&mut self, id: &str) -> bool {
        let Some(&d) = self.device_index.get(id) else { return false };
        self.devices.remove(d);
        self.device_users.remove(d);
        for members in &mut self.audit.device_group_members {
            members.retain(|&m| m != d);
            for m in members.iter_mut() {
                if *m > d {
                    *m -= 1;
                }
            }
        }
        self.device_index = self.devices.iter().enumerate().map(|(i, x)| (x.id.clone(), i)).collect();
        true
    }

    /// Renames a user group; `false` for an unknown id.
    pub fn rename_group(&mut self, id: &str, name: &str) -> bool {
        match self.group_index.get(id) {
            Some(&g) => {
                self.groups[g].name = name.to_string();
                true
            }
            None => false,
        }
    }
}

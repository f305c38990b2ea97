//! What admins audit, generated for an [`Org`]: its administrators (`userreturn`), device groups
//! (`SystemGroup`) and their members, policies (`Policy`) and how they applied on each device
//! (`PolicyResult`), and 60 days of Directory Insights events: console, user-portal, SSO,
//! RADIUS and device logins (successes and failures) and administrators' changes to users and
//! groups with `changes: [{field, from, to}]`. Writes through the API append events as they
//! happen. Deterministic for a seed, and relative to the day the org is generated.

use serde::Serialize;
use serde_json::{Value, json};

use super::org::{Org, Rng, iso, object_id};

pub const KIND_ADMIN: u16 = 5;
pub const KIND_DEVICE_GROUP: u16 = 6;
pub const KIND_POLICY: u16 = 7;
pub const KIND_POLICY_RESULT: u16 = 8;
pub const KIND_EVENT: u16 = 9;
pub const KIND_TEMPLATE: u16 = 10;

const MS_PER_DAY: i64 = 86_400_000;

/// A `userreturn` record as `GET /api/users` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Admin {
    pub _id: String,
    pub email: String,
    pub firstname: String,
    pub lastname: String,
    #[serde(rename = "roleName")]
    pub role_name: &'static str,
    pub role: String,
    #[serde(rename = "roleNames")]
    pub role_names: Vec<&'static str>,
    #[serde(rename = "enableMultiFactor")]
    pub enable_multi_factor: bool,
    #[serde(rename = "totpEnrolled")]
    pub totp_enrolled: bool,
    #[serde(rename = "totpUpdatedAt", skip_serializing_if = "Option::is_none")]
    pub totp_updated_at: Option<String>,
    pub suspended: bool,
    #[serde(rename = "apiKeyAllowed")]
    pub api_key_allowed: bool,
    #[serde(rename = "apiKeySet")]
    pub api_key_set: bool,
    #[serde(rename = "apiKeyUpdatedAt", skip_serializing_if = "Option::is_none")]
    pub api_key_updated_at: Option<String>,
    #[serde(rename = "apiKeyHash", skip_serializing_if = "Option::is_none")]
    pub api_key_hash: Option<Value>,
    #[serde(rename = "passwordUpdatedAt")]
    pub password_updated_at: String,
    #[serde(rename = "sessionCount")]
    pub session_count: i64,
    #[serde(rename = "usersTimeZone")]
    pub users_time_zone: &'static str,
    #[serde(rename = "disableIntroduction")]
    pub disable_introduction: bool,
    #[serde(rename = "growthData")]
    pub growth_data: Value,
    pub organization: String,
    pub created: String,
}

/// A `SystemGroup` record.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceGroup {
    pub attributes: Option<Value>,
    pub description: String,
    pub email: String,
    pub id: String,
    #[serde(rename = "membershipMethod")]
    pub membership_method: &'static str,
    pub name: String,
    #[serde(rename = "organizationObjectId")]
    pub organization_object_id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// A `Policy` record with its shallow `PolicyTemplate`.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    pub id: String,
    pub name: String,
    pub template: Value,
    /// The OS family of its template (not serialized apart from the template).
    #[serde(skip)]
    pub family: &'static str,
}

/// A `PolicyResult` record.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyResult {
    pub detail: String,
    #[serde(rename = "endedAt")]
    pub ended_at: String,
    #[serde(rename = "exitStatus")]
    pub exit_status: i64,
    pub id: String,
    #[serde(rename = "policyID")]
    pub policy_id: String,
    #[serde(rename = "startedAt")]
    pub started_at: String,
    pub state: &'static str,
    #[serde(rename = "stdErr")]
    pub std_err: String,
    #[serde(rename = "stdOut")]
    pub std_out: String,
    pub success: bool,
    #[serde(rename = "systemID")]
    pub system_id: String,
}

/// One Directory Insights event and its time, kept in time order.
#[derive(Debug, Clone)]
pub struct Event {
    pub at_ms: i64,
    pub id: String,
    pub body: Value,
}

#[derive(Debug, Clone, Default)]
pub struct Audit {
    pub admins: Vec<Admin>,
    pub device_groups: Vec<DeviceGroup>,
    /// Device indexes per device group.
    pub device_group_members: Vec<Vec<usize>>,
    pub policies: Vec<Policy>,
    pub policy_results: Vec<Vec<PolicyResult>>,
    /// Sorted by (time, id).
    pub events: Vec<Event>,
    pub next_event: u64,
    /// Events at volume (`OrgSpec::events_per_user_per_day`), held compactly and written out
    /// as JSON only when asked for.
    pub volume: Vec<VolumeEvent>,
}

/// One event of the volume: sorted by (time, seq), its id is [`VolumeEvent::id`].
#[derive(Debug, Clone, Copy)]
pub struct VolumeEvent {
    pub at_ms: i64,
    pub seq: u32,
    pub user: u32,
    pub kind: u8,
    pub ok: bool,
}

/// (event_type, service) of each volume kind.
pub const VOLUME_KINDS: &[(&str, &str)] = &[
    ("ldap_bind", "ldap"),
    ("radius_auth", "radius"),
    ("sso_auth", "sso"),
    ("user_login_attempt", "directory"),
    ("login_attempt", "systems"),
];

impl VolumeEvent {
    pub fn id(&self) -> String {
        format!("6b00e7e7{:016x}", self.seq)
    }

    pub fn event_type(&self) -> &'static str {
        VOLUME_KINDS[self.kind as usize].0
    }

    pub fn service(&self) -> &'static str {
        VOLUME_KINDS[self.kind as usize].1
    }

    /// The event as Directory Insights sends it, written straight to JSON (a page holds 10,000).
    pub fn json(&self, org: &Org) -> String {
        use std::fmt::Write;
        let u = &org.users[self.user as usize % org.users.len().max(1)];
        let (country, region, tz) = COUNTRIES[(self.seq as usize) % COUNTRIES.len()];
        let h = self.seq.wrapping_mul(2_654_435_761);
        let ip = format!("{}.{}.{}.{}", 20 + h % 180, (h >> 8) % 255, (h >> 16) % 255, 1 + (h >> 24) % 250);
        let mut o = String::with_capacity(640);
        let _ = write!(
            o,
            r#"{{"@version":"1","id":"{}","timestamp":"{}","event_type":"{}","service":"{}","organization":"{}","client_ip":"{}","success":{},"username":{},"geoip":{{"country_code2":"{}","region_name":"{}","timezone":"{}","continent_code":"NA"}},"initiated_by":{{"id":"{}","type":"user","username":{}}}"#,
            self.id(),
            iso(self.at_ms),
            self.event_type(),
            self.service(),
            org.org_id,
            ip,
            self.ok,
            serde_json::Value::from(u.username.as_str()),
            country,
            region,
            tz,
            u.id,
            serde_json::Value::from(u.username.as_str()),
        );
        match self.kind {
            0 => {
                let _ = write!(
                    o,
                    r#","auth_method":"simple","useragent":null,"resource":{{"type":"ldap","name":"ldap.jumpcloud.com"}}"#
                );
            }
            1 => {
                let _ = write!(o, r#","auth_method":"pap","useragent":null,"mfa":false"#);
            }
            2 => {
                let app = &org.applications[(h as usize) % org.applications.len().max(1)];
                let _ = write!(
                    o,
                    r#","mfa":{},"application":{{"id":"{}","name":{},"display_label":{}}},"resource":{{"id":"{}","type":"application","name":{}}},"useragent":{{"name":"Chrome","os":"Mac OS X","device":"Mac"}}"#,
                    u.mfa.configured,
                    app.id,
                    serde_json::Value::from(app.name.as_str()),
                    serde_json::Value::from(app.display_label.as_str()),
                    app.id,
                    serde_json::Value::from(app.display_label.as_str()),
                );
            }
            3 => {
                let _ = write!(
                    o,
                    r#","mfa":{},"auth_method":"password","resource":{{"id":"{}","type":"user","email":{}}},"useragent":{{"name":"Chrome","os":"Windows","device":"Other"}}"#,
                    u.mfa.configured && self.ok,
                    u.id,
                    serde_json::Value::from(u.email.as_str()),
                );
            }
            _ => {
                let d = &org.devices[(h as usize) % org.devices.len().max(1)];
                let _ = write!(
                    o,
                    r#","system":{{"id":"{}","hostname":{}}},"resource":{{"id":"{}","type":"system"}},"useragent":null"#,
                    d.id,
                    serde_json::Value::from(d.hostname.as_str()),
                    d.id,
                );
            }
        }
        if !self.ok {
            o.push_str(r#","error_message":"invalid credentials""#);
        }
        o.push('}');
        o
    }
}

/// `per_user_per_day` events for each user on each of the 31 days before `end_ms`, fewer at
/// weekends and at night; LDAP binds and RADIUS come in bursts sharing one millisecond.
pub fn volume(org: &Org, seed: u64, end_ms: i64, per_user_per_day: f64) -> Vec<VolumeEvent> {
    let mut rng = Rng::new(seed ^ 0x0B0B_5EED);
    let users = org.users.len().max(1) as u64;
    let mut out = Vec::new();
    let mut seq: u32 = 0;
    for day in 0..31i64 {
        let day_start = end_ms - (day + 1) * MS_PER_DAY;
        let weekday = chrono::DateTime::from_timestamp_millis(day_start)
            .map(|t| chrono::Datelike::weekday(&t).num_days_from_monday())
            .unwrap_or(0);
        let factor = if weekday >= 5 { 0.4 } else { 1.15 };
        let wanted = (users as f64 * per_user_per_day * factor) as u64;
        let mut made = 0u64;
        while made < wanted {
            let roll = rng.below(100);
            let kind: u8 = match roll {
                0..45 => 0,
                45..60 => 1,
                60..75 => 2,
                75..87 => 3,
                _ => 4,
            };
            // Office hours mostly: the mean of three uniform draws leans to the middle of the day.
            let t = (rng.below(MS_PER_DAY as u64) + rng.below(MS_PER_DAY as u64) + rng.below(MS_PER_DAY as u64)) / 3;
            let at = day_start + t as i64;
            let burst = if kind <= 1 && rng.chance(0.3) { 20 + rng.below(380) } else { 1 };
            let user = rng.below(users) as u32;
            for _ in 0..burst.min(wanted - made) {
                out.push(VolumeEvent { at_ms: at, seq, user, kind, ok: !rng.chance(0.08) });
                seq = seq.wrapping_add(1);
                made += 1;
            }
        }
    }
    out.sort_unstable_by_key(|e| (e.at_ms, e.seq));
    out
}

const ROLES: &[&str] = &["Administrator", "Manager", "Help Desk", "Read Only", "Command Runner"];

/// (template name, display name, OS family).
const TEMPLATES: &[(&str, &str, &str)] = &[
    ("disk_encryption_darwin", "FileVault 2 Disk Encryption", "darwin"),
    ("bitlocker_windows", "BitLocker Full Disk Encryption", "windows"),
    ("screensaver_lock_darwin", "Screen Saver Lock", "darwin"),
    ("windows_update_windows", "Windows Updates", "windows"),
    ("ufw_firewall_linux", "Firewall (ufw)", "linux"),
    ("usb_storage_windows", "Restrict USB Storage", "windows"),
    ("gatekeeper_darwin", "Gatekeeper", "darwin"),
    ("auto_updates_linux", "Unattended Upgrades", "linux"),
];

const COUNTRIES: &[(&str, &str, &str)] = &[
    ("US", "California", "America/Los_Angeles"),
    ("US", "Colorado", "America/Denver"),
    ("GB", "England", "Europe/London"),
    ("DE", "Berlin", "Europe/Berlin"),
    ("PL", "Mazovia", "Europe/Warsaw"),
    ("BR", "Sao Paulo", "America/Sao_Paulo"),
];

impl Audit {
    pub fn generate(org: &Org, seed: u64, now_ms: i64) -> Audit {
        let mut rng = Rng::new(seed ^ 0xA0D1_7000);
        let mut audit = Audit::default();
        let days_ago = |rng: &mut Rng, lo: i64, hi: i64| {
            now_ms - (lo + rng.below((hi - lo).max(1) as u64) as i64) * MS_PER_DAY - rng.below(MS_PER_DAY as u64) as i64
        };

        // Administrators: IT people, the first with billing; some without MFA, the last suspended.
        let it: Vec<usize> = (0..org.users.len()).filter(|&i| org.users[i].department == "IT").collect();
        let admin_count = (org.users.len() / 100).clamp(4, 40);
        for i in 0..admin_count {
            let person = it.get(i).map(|&u| &org.users[u]);
            let (first, last, email) = match person {
                Some(u) => (u.firstname.clone(), u.lastname.clone(), u.email.clone()),
                None => ("IT".to_string(), format!("Admin {i}"), format!("it.admin{i}@acme.example")),
            };
            let role_name = if i == 0 { "Administrator With Billing" } else { ROLES[i % ROLES.len()] };
            // The second administrator never has MFA, so the audit always has one to find.
            let mfa = i == 0 || (i != 1 && !rng.chance(0.35));
            let key_set = rng.chance(0.4);
            audit.admins.push(Admin {
                _id: object_id(KIND_ADMIN, i as u64, &mut rng),
                email,
                firstname: first,
                lastname: last,
                role_name,
                role: format!("{:024x}", 0xA11 + (i % ROLES.len()) as u64),
                role_names: vec![role_name],
                enable_multi_factor: mfa,
                totp_enrolled: mfa && rng.chance(0.9),
                totp_updated_at: mfa.then(|| iso(days_ago(&mut rng, 10, 300))),
                suspended: i == admin_count - 1,
                api_key_allowed: key_set || rng.chance(0.3),
                api_key_set: key_set,
                api_key_updated_at: key_set.then(|| iso(days_ago(&mut rng, 1, 400))),
                api_key_hash: key_set.then(|| {
                    json!({"prefix": "jca_", "createdAt": iso(days_ago(&mut rng, 1, 400)), "expireAt": iso(now_ms + 365 * MS_PER_DAY)})
                }),
                password_updated_at: iso(days_ago(&mut rng, 1, 500)),
                session_count: rng.below(4) as i64,
                users_time_zone: COUNTRIES[i % COUNTRIES.len()].2,
                disable_introduction: true,
                growth_data: json!({"experimentStates": {}, "onboardingState": {}}),
                organization: org.org_id.clone(),
                created: iso(days_ago(&mut rng, 30, 1500)),
            });
        }

        // Device groups: one per OS family, a random fleet, two nobody is in, then more fleets.
        let family = |d: usize| org.devices[d].os_family.unwrap_or_default();
        let group_count = (org.devices.len() / 50).max(8);
        for g in 0..group_count {
            let (name, members): (String, Vec<usize>) = match g {
                0 => ("All Macs".into(), (0..org.devices.len()).filter(|&d| family(d) == "darwin").collect()),
                1 => ("All Windows".into(), (0..org.devices.len()).filter(|&d| family(d) == "windows").collect()),
                2 => ("Linux Servers".into(), (0..org.devices.len()).filter(|&d| family(d) == "linux").collect()),
                3 => ("Engineering Laptops".into(), (0..org.devices.len()).filter(|_| rng.chance(0.3)).collect()),
                4 => ("Kiosks".into(), Vec::new()),
                5 => ("Retired Hardware".into(), Vec::new()),
                n => {
                    let size = 1 + rng.below(60) as usize;
                    let mut m: Vec<usize> =
                        (0..size).map(|_| rng.below(org.devices.len().max(1) as u64) as usize).collect();
                    m.sort_unstable();
                    m.dedup();
                    (format!("Fleet {n}"), m)
                }
            };
            audit.device_groups.push(DeviceGroup {
                attributes: None,
                description: if g < 3 { format!("Every {name} device") } else { String::new() },
                email: String::new(),
                id: object_id(KIND_DEVICE_GROUP, g as u64, &mut rng),
                membership_method: if g < 3 { "DYNAMIC_AUTOMATED" } else { "STATIC" },
                name,
                organization_object_id: org.org_id.clone(),
                kind: "system_group",
            });
            audit.device_group_members.push(members);
        }

        // Policies, and each device's results for up to three policies of its OS family.
        let policy_count = (org.devices.len() / 100).clamp(TEMPLATES.len(), 80);
        for p in 0..policy_count {
            let (tname, display, fam) = TEMPLATES[p % TEMPLATES.len()];
            let template_id = object_id(KIND_TEMPLATE, (p % TEMPLATES.len()) as u64, &mut Rng::new(7));
            let name = if p < TEMPLATES.len() {
                display.to_string()
            } else {
                format!("{display} ({})", p / TEMPLATES.len() + 1)
            };
            audit.policies.push(Policy {
                id: object_id(KIND_POLICY, p as u64, &mut rng),
                name,
                template: json!({"id": template_id, "name": tname, "displayName": display, "osMetaFamily": fam,
                    "description": format!("{display} on {fam} devices"), "state": "", "deliveryTypes": ["agent"],
                    "activation": "", "alert": "", "behavior": "", "reference": ""}),
                family: fam,
            });
            audit.policy_results.push(Vec::new());
        }
        let mut serial = 0u64;
        for d in 0..org.devices.len() {
            let mine: Vec<usize> =
                (0..audit.policies.len()).filter(|&p| audit.policies[p].family == family(d)).collect();
            for _ in 0..mine.len().min(3) {
                let p = mine[rng.below(mine.len() as u64) as usize];
                if audit.policy_results[p].iter().any(|r| r.system_id == org.devices[d].id) {
                    continue;
                }
                let roll = rng.below(100);
                let (state, success, exit) = match roll {
                    0..7 => ("failed", false, 1 + rng.below(3) as i64),
                    7..10 => ("pending", false, 0),
                    _ => ("success", true, 0),
                };
                let started = days_ago(&mut rng, 0, 20);
                audit.policy_results[p].push(PolicyResult {
                    detail: if success { String::new() } else { format!("policy {state}") },
                    ended_at: iso(started + 1500 + rng.below(60_000) as i64),
                    exit_status: exit,
                    id: object_id(KIND_POLICY_RESULT, serial, &mut rng),
                    policy_id: audit.policies[p].id.clone(),
                    started_at: iso(started),
                    state,
                    std_err: if state == "failed" {
                        format!("exit status {exit}: the setting could not be applied")
                    } else {
                        String::new()
                    },
                    std_out: String::new(),
                    success,
                    system_id: org.devices[d].id.clone(),
                });
                serial += 1;
            }
        }

        // 60 days of events.
        let total = (org.users.len() * 3).max(500);
        let mut events: Vec<Event> = Vec::with_capacity(total);
        for n in 0..total {
            let at = days_ago(&mut rng, 0, 60);
            let body = audit.random_event(org, &mut rng);
            let id = object_id(KIND_EVENT, n as u64, &mut rng);
            events.push(Event { at_ms: at, id, body });
        }
        events.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
        for e in &mut events {
            e.body["id"] = json!(e.id);
            e.body["timestamp"] = json!(iso(e.at_ms));
        }
        audit.next_event = total as u64;
        audit.events = events;
        audit
    }

    fn random_event(&self, org: &Org, rng: &mut Rng) -> Value {
        let users = &org.users;
        let u = &users[rng.below(users.len().max(1) as u64) as usize];
        let (country, region, tz) = COUNTRIES[rng.below(COUNTRIES.len() as u64) as usize];
        let ip = format!("{}.{}.{}.{}", 20 + rng.below(180), rng.below(255), rng.below(255), 1 + rng.below(250));
        let ok = !rng.chance(0.12);
        let mut e = json!({
            "@version": "1",
            "organization": org.org_id,
            "client_ip": ip,
            "geoip": {"country_code2": country, "region_name": region, "timezone": tz, "continent_code": "NA"},
            "useragent": {"name": "Chrome", "os": "Mac OS X", "os_name": "Mac OS X", "device": "Mac", "major": "131"},
            "provider": null,
            "success": ok,
        });
        let kind = rng.below(100);
        match kind {
            0..35 => {
                e["event_type"] = json!("user_login_attempt");
                e["service"] = json!("directory");
                e["username"] = json!(u.username);
                e["mfa"] = json!(u.mfa.configured && ok);
                e["auth_method"] = json!("password");
                e["initiated_by"] = json!({"id": u.id, "type": "user", "username": u.username});
                e["resource"] = json!({"id": u.id, "type": "user", "username": u.username, "email": u.email});
            }
            35..65 => {
                let app = &org.applications[rng.below(org.applications.len().max(1) as u64) as usize];
                e["event_type"] = json!("sso_auth");
                e["service"] = json!("sso");
                e["username"] = json!(u.username);
                e["mfa"] = json!(u.mfa.configured);
                e["application"] = json!({"id": app.id, "name": app.name, "display_label": app.display_label});
                e["initiated_by"] = json!({"id": u.id, "type": "user", "username": u.username});
                e["resource"] = json!({"id": app.id, "type": "application", "name": app.display_label});
            }
            65..78 => {
                e["event_type"] = json!("radius_auth");
                e["service"] = json!("radius");
                e["username"] = json!(u.username);
                e["auth_method"] = json!("pap");
                e["initiated_by"] = json!({"id": u.id, "type": "user", "username": u.username});
                e["useragent"] = Value::Null;
            }
            78..90 => {
                let d = &org.devices[rng.below(org.devices.len().max(1) as u64) as usize];
                e["event_type"] = json!("login_attempt");
                e["service"] = json!("systems");
                e["username"] = json!(u.username);
                e["system"] = json!({"id": d.id, "hostname": d.hostname, "displayName": d.display_name});
                e["initiated_by"] = json!({"id": u.id, "type": "user", "username": u.username});
                e["resource"] = json!({"id": d.id, "type": "system", "name": d.display_name});
                e["useragent"] = Value::Null;
            }
            90..94 => {
                let a = &self.admins[rng.below(self.admins.len().max(1) as u64) as usize];
                e["event_type"] = json!("admin_login_attempt");
                e["service"] = json!("directory");
                e["mfa"] = json!(a.enable_multi_factor && ok);
                e["initiated_by"] = json!({"id": a._id, "type": "admin", "email": a.email});
                e["resource"] = json!({"id": a._id, "type": "admin", "email": a.email});
            }
            _ => {
                let a = &self.admins[rng.below(self.admins.len().max(1) as u64) as usize];
                let (field, from, to) = match rng.below(3) {
                    0 => ("department", json!(u.department), json!("Operations")),
                    1 => ("jobTitle", json!(u.job_title), json!("Senior ".to_string() + &u.job_title)),
                    _ => ("suspended", json!(!u.suspended), json!(u.suspended)),
                };
                e["event_type"] = json!("user_update");
                e["service"] = json!("directory");
                e["success"] = json!(true);
                e["initiated_by"] = json!({"id": a._id, "type": "admin", "email": a.email});
                e["resource"] = json!({"id": u.id, "type": "user", "username": u.username, "email": u.email});
                e["changes"] = json!([{"field": field, "from": from, "to": to}]);
            }
        }
        if !ok && e.get("error_message").is_none() {
            e["error_message"] = json!("invalid credentials");
        }
        e
    }

    /// Appends an event that a write through the API caused, done by the key's administrator.
    pub fn record_change(&mut self, org_id: &str, event_type: &str, resource: Value, changes: Value) {
        let now = chrono::Utc::now().timestamp_millis().max(self.events.last().map_or(0, |e| e.at_ms));
        let mut rng = Rng::new(self.next_event);
        let id = object_id(KIND_EVENT, self.next_event, &mut rng);
        self.next_event += 1;
        let admin = self.admins.first();
        let body = json!({
            "@version": "1",
            "id": id,
            "timestamp": iso(now),
            "event_type": event_type,
            "service": "directory",
            "success": true,
            "organization": org_id,
            "client_ip": "127.0.0.1",
            "initiated_by": {"id": admin.map(|a| a._id.clone()), "type": "admin", "email": admin.map(|a| a.email.clone())},
            "resource": resource,
            "changes": changes,
        });
        self.events.push(Event { at_ms: now, id, body });
    }

    /// Adds `n` events at one millisecond (a test's burst at a slice edge).
    pub fn add_burst(&mut self, org_id: &str, at_ms: i64, n: usize) {
        for _ in 0..n {
            let mut rng = Rng::new(self.next_event);
            let id = object_id(KIND_EVENT, self.next_event, &mut rng);
            self.next_event += 1;
            let body = json!({"@version": "1", "id": id, "timestamp": iso(at_ms), "event_type": "ldap_bind",
                "service": "ldap", "success": true, "organization": org_id, "client_ip": "10.0.0.9"});
            self.events.push(Event { at_ms, id, body });
        }
        self.events.sort_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
    }

    /// Events at or after `from_ms` (and at or before `to_ms`), in time order.
    pub fn events_between(&self, from_ms: i64, to_ms: Option<i64>) -> impl Iterator<Item = &Event> {
        let start = self.events.partition_point(|e| e.at_ms < from_ms);
        self.events[start..].iter().take_while(move |e| to_ms.is_none_or(|t| e.at_ms <= t))
    }
}

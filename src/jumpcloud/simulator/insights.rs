//! System Insights for the simulated fleet: `GET /api/v2/systeminsights/TABLE` for the nine
//! tables jcsql reads, as the spec describes them (bare arrays, no count, `limit` up to 10,000,
//! `skip`, `sort`, `filter=field:eq:v` / `field:in:a|b` on `system_id` and one field per table).
//!
//! Rows are generated per device from its id, OS and bindings, so they need no storage and are
//! the same on every request: macOS devices have apps, disks and mounts; Windows devices have
//! programs and BitLocker drives; Linux devices have disks and mounts but no package table; a
//! device whose System Insights is not `enabled` has no rows at all. Paging an unfiltered listing
//! needs each device's row count, which [`count`] gives without building the rows.

use serde_json::{Value, json};

use super::org::{Device, Org, Rng, iso};

/// The routes, their spec's filterable field besides `system_id`, and their sort key.
pub const ROUTES: &[(&str, &str, &[&str])] = &[
    ("os_version", "version", &["system_id"]),
    ("system_info", "cpu_subtype", &["system_id"]),
    ("apps", "bundle_name", &["system_id", "path"]),
    ("programs", "name", &["system_id", "name", "version"]),
    ("disk_encryption", "encryption_status", &["system_id", "name"]),
    ("bitlocker_info", "protection_status", &["system_id", "drive_letter"]),
    ("chrome_extensions", "name", &["system_id", "uid", "path"]),
    ("users", "username", &["system_id", "uid"]),
    ("mounts", "path", &["system_id", "path"]),
];

/// Installed macOS applications: (name, bundle identifier, versions).
const MAC_APPS: &[(&str, &str, &[&str])] = &[
    ("Safari", "com.apple.Safari", &["18.1", "17.6"]),
    ("Google Chrome", "com.google.Chrome", &["131.0.6778.86", "130.0.6723.117"]),
    ("Firefox", "org.mozilla.firefox", &["133.0", "128.5.1"]),
    ("Slack", "com.tinyspeck.slackmacgap", &["4.41.105", "4.40.126"]),
    ("zoom.us", "us.zoom.xos", &["6.2.11", "6.1.6"]),
    ("Microsoft Word", "com.microsoft.Word", &["16.91", "16.89"]),
    ("Microsoft Excel", "com.microsoft.Excel", &["16.91", "16.89"]),
    ("Microsoft PowerPoint", "com.microsoft.Powerpoint", &["16.91"]),
    ("Microsoft Outlook", "com.microsoft.Outlook", &["16.91", "16.90"]),
    ("Microsoft Teams", "com.microsoft.teams2", &["24295.606.3238"]),
    ("1Password", "com.1password.1password", &["8.10.54", "8.10.48"]),
    ("Visual Studio Code", "com.microsoft.VSCode", &["1.95.3", "1.94.2"]),
    ("Docker", "com.docker.docker", &["4.36.0", "4.34.3"]),
    ("iTerm", "com.googlecode.iterm2", &["3.5.10"]),
    ("Xcode", "com.apple.dt.Xcode", &["16.1", "15.4"]),
    ("Notion", "notion.id", &["4.1.1"]),
    ("Figma", "com.figma.Desktop", &["124.6.5"]),
    ("Spotify", "com.spotify.client", &["1.2.52.442"]),
    ("Keynote", "com.apple.iWork.Keynote", &["14.2"]),
    ("Pages", "com.apple.iWork.Pages", &["14.2"]),
    ("Numbers", "com.apple.iWork.Numbers", &["14.2"]),
    ("Übersicht", "tracesOf.Uebersicht", &["1.6.77"]),
    ("Pixelmator Pro", "com.pixelmatorteam.pixelmator.x", &["3.6.13"]),
    ("微信 WeChat", "com.tencent.xinWeChat", &["3.8.9"]),
    ("JumpCloud", "com.jumpcloud.jcagent-tray", &["1.17.6"]),
    ("CrowdStrike Falcon", "com.crowdstrike.falcon.App", &["7.19.18913"]),
    ("Postman", "com.postmanlabs.mac", &["11.20.0"]),
    ("TablePlus", "com.tinyapp.TablePlus", &["6.2.1"]),
    ("Rectangle", "com.knollsoft.Rectangle", &["0.84"]),
    ("Tailscale", "io.tailscale.ipn.macsys", &["1.76.6"]),
];

/// Installed Windows programs: (name, publisher, versions).
const WINDOWS_PROGRAMS: &[(&str, &str, &[&str])] = &[
    ("Google Chrome", "Google LLC", &["131.0.6778.86", "130.0.6723.117"]),
    ("Mozilla Firefox (x64 en-US)", "Mozilla", &["133.0"]),
    ("Microsoft Edge", "Microsoft Corporation", &["131.0.2903.70"]),
    ("Microsoft 365 Apps for enterprise - en-us", "Microsoft Corporation", &["16.0.18129.20158"]),
    ("Microsoft Teams", "Microsoft Corporation", &["24295.606.3238"]),
    ("Slack", "Slack Technologies Inc.", &["4.41.105"]),
    ("Zoom Workplace (64-bit)", "Zoom Video Communications, Inc.", &["6.2.11"]),
    ("7-Zip 24.08 (x64)", "Igor Pavlov", &["24.08"]),
    ("Notepad++ (64-bit x64)", "Notepad++ Team", &["8.7.1", "8.6.9"]),
    ("Adobe Acrobat (64-bit)", "Adobe", &["24.004.20272"]),
    ("JumpCloud Agent", "JumpCloud Inc.", &["1.17.6"]),
    ("CrowdStrike Windows Sensor", "CrowdStrike, Inc.", &["7.19.18913.0"]),
    ("Git", "The Git Development Community", &["2.47.0"]),
    ("Python 3.12.7 (64-bit)", "Python Software Foundation", &["3.12.7150.0"]),
    ("Microsoft Visual C++ 2015-2022 Redistributable (x64)", "Microsoft Corporation", &["14.40.33810.0"]),
    ("Dell Command | Update", "Dell Inc.", &["5.4.0"]),
    ("Lenovo Vantage Service", "Lenovo Group Ltd.", &["4.1.46.0"]),
    ("VLC media player", "VideoLAN", &["3.0.21"]),
    ("Cisco Secure Client", "Cisco Systems, Inc.", &["5.1.6.103"]),
    ("Logitech G HUB", "Logitech", &["2024.8.641856"]),
    ("Paint.NET", "dotPDN LLC", &["5.0.13"]),
    ("Bürosoftware Zeiterfassung", "Müller & Söhne GmbH", &["3.2.1"]),
];

const CHROME_EXTENSIONS: &[(&str, &str)] = &[
    ("1Password – Password Manager", "aeblfdkhhhdcdjpifhhbdiojplfjncoa"),
    ("uBlock Origin", "cjpalhdlnbpafiamejdnhcphjbkeiagm"),
    ("Grammarly: AI Writing and Grammar Checker App", "kbfnbcaeplbcioakkpcpgfkobkghlhen"),
    ("Google Docs Offline", "ghbmnnjooekpmoecnnnilnnbdlolhkhi"),
    ("LastPass: Free Password Manager", "hdokiejnpimakedhajhdlcegeplioahd"),
    ("React Developer Tools", "fmkadmapgofadopljbjfkapdkoienihi"),
];

/// The route of a jcsql table (`device_apps` → `apps`), from its definition's path.
pub fn route_of(table: &str) -> Option<&'static str> {
    match crate::jumpcloud::tables::table(table)?.source {
        crate::table::Source::Insights { path } => path.strip_prefix("/v2/systeminsights/"),
        _ => None,
    }
}

/// Devices whose System Insights is on.
pub fn enabled(device: &Device) -> bool {
    device.system_insights.get("state").and_then(Value::as_str) == Some("enabled")
}

fn family(device: &Device) -> &'static str {
    match device.os {
        "Mac OS X" => "darwin",
        "Windows" => "windows",
        _ => "linux",
    }
}

/// The generator of one device's rows of one table: the same draws on every request.
fn rng_for(device: &Device, route: &str) -> Rng {
    let mut seed = 0xcbf2_9ce4_8422_2325u64;
    for b in device.id.bytes().chain(route.bytes()) {
        seed = (seed ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    Rng::new(seed)
}

/// Distinct picks of `n` out of `0..len`, in catalogue order.
fn distinct(rng: &mut Rng, len: usize, n: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..len).collect();
    for i in 0..n.min(len) {
        let j = i + rng.below((len - i) as u64) as usize;
        all.swap(i, j);
    }
    let mut picked = all[..n.min(len)].to_vec();
    picked.sort_unstable();
    picked
}

/// How many packages a macOS or Windows device has: 40 to 116 (78 on average, so a fleet of
/// 20,000 devices, 85 % of them macOS or Windows and 90 % with System Insights on, holds about
/// 1.2 million), from the catalogue and the in-house tools past it.
fn package_count(rng: &mut Rng) -> usize {
    40 + rng.below(77) as usize
}

/// A package of the catalogue, or past it an in-house tool, as (name, vendor or id, version).
fn package(catalogue: &[(&'static str, &'static str, &'static [&'static str])], i: usize) -> (String, String, String) {
    match catalogue.get(i) {
        Some((name, id, versions)) => (name.to_string(), id.to_string(), versions[i % versions.len()].to_string()),
        None => {
            let n = i - catalogue.len();
            (format!("Acme Tool {n:02}"), format!("com.acme.tool{n:02}"), format!("2.{}.{}", n % 7, n % 3))
        }
    }
}

const PACKAGES: usize = 130;

/// When the agent collected the device's rows: within the last day; Linux agents send
/// lower-case RFC 3339 (`…t…z`).
fn collected(device: &Device, now_ms: i64) -> String {
    let mut rng = rng_for(device, "collection_time");
    let text = iso(now_ms - rng.below(86_400_000) as i64);
    if family(device) == "linux" { text.to_lowercase() } else { text }
}

/// The device's local accounts: (uid, username, description, admin, real user, suspended).
fn local_users(org: &Org, d: usize) -> Vec<(String, String, String, bool, bool, bool)> {
    let device = &org.devices[d];
    let mut rng = rng_for(device, "users");
    let windows = family(device) == "windows";
    let mut out = Vec::new();
    if windows {
        out.push((
            "500".into(),
            "Administrator".into(),
            "Built-in account for administering the computer".into(),
            true,
            false,
            true,
        ));
        out.push(("501".into(), "Guest".into(), "Built-in account for guest access".into(), false, false, true));
    } else {
        out.push(("0".into(), "root".into(), "System Administrator".into(), false, false, false));
    }
    let first_uid = if windows { 1001 } else { 501 };
    for (n, (u, sudo)) in org.device_users[d].iter().enumerate() {
        let user = &org.users[*u];
        let description = format!("{} {}", user.firstname, user.lastname);
        out.push(((first_uid + n).to_string(), user.username.clone(), description, sudo.is_some(), true, false));
    }
    // An administrator account someone made by hand: the board's finding.
    if rng.chance(0.15) {
        let name = *rng.pick(&["itadmin", "admin", "support", "técnico"]);
        out.push(((first_uid + 50).to_string(), name.to_string(), "Local administrator".into(), true, true, false));
    }
    out
}

/// The rows of `route` for device `d` (none when its System Insights is off), in key order.
pub fn rows(org: &Org, route: &str, d: usize, now_ms: i64) -> Vec<Value> {
    let device = &org.devices[d];
    if !enabled(device) {
        return Vec::new();
    }
    let at = collected(device, now_ms);
    let id = device.id.as_str();
    let os = family(device);
    let mut rng = rng_for(device, route);
    let encrypted = device.fde.get("active").and_then(Value::as_bool).unwrap_or(false);
    let mut out: Vec<Value> = match (route, os) {
        ("os_version", _) => {
            let parts: Vec<i64> = device.version.split(['.', ' ']).map(|p| p.parse().unwrap_or(0)).collect();
            let v = |i: usize| parts.get(i).copied().unwrap_or(0);
            let row = match os {
                "darwin" => {
                    let codename = match v(0) {
                        15 => "Sequoia",
                        14 => "Sonoma",
                        _ => "Ventura",
                    };
                    json!({"name": "macOS", "version": device.version, "major": v(0), "minor": v(1), "patch": v(2),
                           "build": format!("{}G{}", 8 + v(0), 90 + v(1)), "platform": "darwin",
                           "platform_like": "darwin", "codename": codename, "install_date": ""})
                }
                "windows" => {
                    let build = if device.version.starts_with("11") { 22631 } else { 19045 };
                    json!({"name": format!("Microsoft Windows {}", device.version), "version": format!("10.0.{build}"),
                           "major": 10, "minor": 0, "patch": build, "build": build.to_string(), "platform": "windows",
                           "platform_like": "windows", "codename": null, "install_date": "20240311"})
                }
                _ => json!({"name": "Ubuntu", "version": format!("{}.4 LTS", device.version), "major": v(0), "minor": v(1),
                            "patch": 0, "build": "", "platform": "ubuntu", "platform_like": "debian",
                            "codename": if v(0) == 24 { "noble" } else { "jammy" }, "install_date": null}),
            };
            vec![row]
        }
        ("system_info", _) => {
            let (brand, vendor, model, subtype) = match os {
                "darwin" if device.arch == "arm64" => ("Apple M2 Pro", "Apple Inc.", "Mac14,9", "ARM64E"),
                "darwin" => ("Intel(R) Core(TM) i7-9750H CPU @ 2.60GHz", "Apple Inc.", "MacBookPro16,1", "Intel x86-64h Haswell"),
                "windows" => ("11th Gen Intel(R) Core(TM) i7-1185G7 @ 3.00GHz", "Dell Inc.", "Latitude 7420", "-1"),
                _ => ("AMD Ryzen 7 PRO 6850U", "LENOVO", "21CM0001US", "25"),
            };
            let cores = *rng.pick(&[8i64, 10, 12]);
            vec![json!({"computer_name": device.display_name, "hostname": device.hostname,
                        "local_hostname": device.hostname, "cpu_brand": brand, "cpu_type": "x86_64",
                        "cpu_subtype": subtype, "cpu_microcode": "", "cpu_logical_cores": cores,
                        "cpu_physical_cores": cores / 2 + 2,
                        "physical_memory": (*rng.pick(&[16u64, 32, 64]) << 30).to_string(),
                        "hardware_vendor": vendor, "hardware_model": model, "hardware_version": "",
                        "hardware_serial": device.serial_number,
                        "uuid": format!("{:08X}-0000-0000-0000-{:012X}", rng.next_u64() as u32, rng.next_u64() & 0xffff_ffff_ffff)})]
        }
        ("apps", "darwin") => {
            let n = package_count(&mut rng);
            distinct(&mut rng, PACKAGES, n)
                .into_iter()
                .map(|i| {
                    let (name, bundle, version) = package(MAC_APPS, i);
                    let opened = if rng.chance(0.2) { -1.0 } else { (now_ms / 1000 - rng.below(90 * 86_400) as i64) as f64 };
                    json!({"name": format!("{name}.app"), "path": format!("/Applications/{name}.app"),
                           "bundle_name": name, "display_name": name, "bundle_short_version": version,
                           "bundle_version": version, "bundle_identifier": bundle, "bundle_executable": name,
                           "bundle_package_type": "APPL", "category": "public.app-category.productivity",
                           "copyright": "", "info_string": "", "minimum_system_version": "12.0", "compiler": "",
                           "development_region": "en", "element": "", "environment": "", "applescript_enabled": "0",
                           "last_opened_time": opened})
                })
                .collect()
        }
        ("programs", "windows") => {
            let n = package_count(&mut rng);
            distinct(&mut rng, PACKAGES, n)
                .into_iter()
                .map(|i| {
                    let (name, publisher, version) = package(WINDOWS_PROGRAMS, i);
                    json!({"name": name, "version": version, "publisher": publisher,
                           "install_date": format!("2024{:02}{:02}", 1 + rng.below(12), 1 + rng.below(28)),
                           "install_location": "", "install_source": "", "language": "1033",
                           "identifying_number": format!("{{{:08X}-{:04X}}}", rng.next_u64() as u32, rng.below(0xffff)),
                           "uninstall_string": format!("MsiExec.exe /X{{{name}}}")})
                })
                .collect()
        }
        ("disk_encryption", "darwin") => {
            let status = if encrypted { ("1", "encrypted", "APFS Encryption") } else { ("0", "not encrypted", "") };
            ["/dev/disk3s1s1", "/dev/disk3s5"]
                .iter()
                .map(|name| {
                    json!({"name": name, "encrypted": status.0.parse::<i64>().unwrap_or(0), "encryption_status": status.1,
                           "type": status.2, "uid": if encrypted { "501" } else { "" }, "user_uuid": "",
                           "uuid": format!("{:08X}-{}", rng.next_u64() as u32, &name[5..])})
                })
                .collect()
        }
        ("disk_encryption", "linux") => {
            let root = if encrypted {
                json!({"name": "/dev/mapper/ubuntu--vg-ubuntu--lv", "encrypted": 1, "encryption_status": "encrypted",
                       "type": "LUKS2 aes-xts-plain64", "uid": "", "user_uuid": "", "uuid": ""})
            } else {
                json!({"name": "/dev/nvme0n1p2", "encrypted": 0, "encryption_status": "not encrypted",
                       "type": "", "uid": "", "user_uuid": "", "uuid": ""})
            };
            let efi = json!({"name": "/dev/nvme0n1p1", "encrypted": 0, "encryption_status": "undefined",
                             "type": "", "uid": "", "user_uuid": "", "uuid": ""});
            vec![root, efi]
        }
        ("bitlocker_info", "windows") => {
            let mut drives = vec!["C:"];
            if rng.chance(0.3) {
                drives.push("D:");
            }
            drives
                .into_iter()
                .map(|letter| {
                    let on = encrypted || letter == "D:" && rng.chance(0.5);
                    json!({"drive_letter": letter, "device_id": format!("\\\\?\\Volume{{{:08x}-0000-0000-0000-{:012x}}}\\", rng.next_u64() as u32, rng.next_u64() & 0xffff_ffff_ffff),
                           "protection_status": i64::from(on), "conversion_status": i64::from(on),
                           "percentage_encrypted": if on { 100 } else { 0 },
                           "encryption_method": if on { "XTS_AES_128" } else { "None" },
                           "persistent_volume_id": ""})
                })
                .collect()
        }
        ("chrome_extensions", _) if rng.chance(0.5) => {
            let users = local_users(org, d);
            let people: Vec<&(String, String, String, bool, bool, bool)> = users.iter().filter(|u| u.4).collect();
            let mut out = Vec::new();
            for u in people {
                let n = 1 + rng.below(3) as usize;
                for i in distinct(&mut rng, CHROME_EXTENSIONS.len(), n) {
                    let (name, ext) = CHROME_EXTENSIONS[i];
                    let home = match os {
                        "darwin" => format!("/Users/{}/Library/Application Support/Google/Chrome", u.1),
                        "windows" => format!("C:\\Users\\{}\\AppData\\Local\\Google\\Chrome\\User Data", u.1),
                        _ => format!("/home/{}/.config/google-chrome", u.1),
                    };
                    out.push(json!({"uid": u.0, "name": name, "identifier": ext, "version": "1.0.0", "author": "",
                                    "description": "", "locale": "en", "path": format!("{home}/Default/Extensions/{ext}"),
                                    "permissions": "storage, tabs", "persistent": 0,
                                    "update_url": "https://clients2.google.com/service/update2/crx"}));
                }
            }
            out
        }
        ("users", _) => local_users(org, d)
            .into_iter()
            .map(|(uid, username, description, admin, real, suspended)| {
                let directory = match os {
                    "darwin" if uid == "0" => "/var/root".to_string(),
                    "darwin" => format!("/Users/{username}"),
                    "windows" => format!("C:\\Users\\{username}"),
                    _ if uid == "0" => "/root".to_string(),
                    _ => format!("/home/{username}"),
                };
                json!({"uid": uid, "username": username, "description": description, "admin": admin,
                       "managed": real && username != "itadmin", "ad_managed": false, "real_user": real,
                       "suspended": suspended, "type": if os == "windows" { "local" } else { "" },
                       "directory": directory, "shell": if os == "windows" { "C:\\Windows\\system32\\cmd.exe" } else { "/bin/zsh" },
                       "gid": "20", "uid_signed": uid, "gid_signed": "20", "uuid": "", "last_login": ""})
            })
            .collect(),
        ("mounts", "darwin") => vec![
            mount("/", "/dev/disk3s1s1", "apfs"),
            mount("/System/Volumes/Data", "/dev/disk3s5", "apfs"),
            mount("/dev", "devfs", "devfs"),
        ],
        ("mounts", "linux") => vec![
            mount("/", if encrypted { "/dev/mapper/ubuntu--vg-ubuntu--lv" } else { "/dev/nvme0n1p2" }, "ext4"),
            mount("/boot/efi", "/dev/nvme0n1p1", "vfat"),
        ],
        _ => Vec::new(),
    };
    let key = ROUTES.iter().find(|r| r.0 == route).map_or(&[][..], |r| r.2);
    out.sort_by(|a, b| compare(a, b, key));
    for row in &mut out {
        if let Value::Object(o) = row {
            o.insert("system_id".into(), json!(id));
            o.insert("collection_time".into(), json!(at));
        }
    }
    out
}

fn mount(path: &str, device: &str, kind: &str) -> Value {
    json!({"path": path, "device": device, "device_alias": device, "type": kind, "flags": "",
           "blocks": "242837545", "blocks_size": "4096", "blocks_free": "94618423", "blocks_available": "94618423",
           "inodes": "3811539048", "inodes_free": "3784957480"})
}

/// Orders two rows by `fields` (`-field` descending), comparing values as text (numbers as numbers).
pub fn compare(a: &Value, b: &Value, fields: &[&str]) -> std::cmp::Ordering {
    for f in fields {
        let (name, descending) = match f.strip_prefix('-') {
            Some(n) => (n, true),
            None => (*f, false),
        };
        let (x, y) = (a.get(name), b.get(name));
        let order = match (x.and_then(Value::as_f64), y.and_then(Value::as_f64)) {
            (Some(p), Some(q)) => p.total_cmp(&q),
            _ => text(x).cmp(&text(y)),
        };
        let order = if descending { order.reverse() } else { order };
        if order.is_ne() {
            return order;
        }
    }
    std::cmp::Ordering::Equal
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// How many rows [`rows`] gives, without building them (paging needs it for every device).
pub fn count(org: &Org, route: &str, d: usize) -> usize {
    let device = &org.devices[d];
    if !enabled(device) {
        return 0;
    }
    let mut rng = rng_for(device, route);
    match (route, family(device)) {
        ("os_version" | "system_info", _) => 1,
        ("apps", "darwin") | ("programs", "windows") => package_count(&mut rng),
        ("disk_encryption", "darwin" | "linux") | ("mounts", "linux") => 2,
        ("mounts", "darwin") => 3,
        ("bitlocker_info", "windows") => 1 + usize::from(rng.chance(0.3)),
        ("users", _) => local_users(org, d).len(),
        ("chrome_extensions", _) => rows(org, route, d, 0).len(),
        _ => 0,
    }
}

/// Each device's row count of a route in device-id order, for paging without building rows.
#[derive(Debug)]
pub struct Index {
    /// Devices in the org when it was built (a new device makes a new index).
    devices: usize,
    /// Device indexes in id order, and the rows before each (one more entry: the total).
    sorted: Vec<usize>,
    before: Vec<usize>,
}

impl Index {
    pub fn build(org: &Org, route: &str) -> Index {
        let mut sorted: Vec<usize> = (0..org.devices.len()).collect();
        sorted.sort_by(|a, b| org.devices[*a].id.cmp(&org.devices[*b].id));
        let mut before = Vec::with_capacity(sorted.len() + 1);
        let mut total = 0;
        for &d in &sorted {
            before.push(total);
            total += count(org, route, d);
        }
        before.push(total);
        Index { devices: org.devices.len(), sorted, before }
    }

    pub fn is_for(&self, org: &Org) -> bool {
        self.devices == org.devices.len()
    }
}

/// A request's answer: the JSON body, or a status and JumpCloud's message.
pub type Answer = Result<String, (u16, String)>;

fn bad(message: String) -> (u16, String) {
    (400, format!("Bad Request: {message}"))
}

/// `GET /api/v2/systeminsights/ROUTE` with `query` (pairs in order, keys may repeat).
pub fn answer(org: &Org, route: &str, query: &[(String, String)], index: &Index, today_ms: i64) -> Answer {
    let Some((_, filterable, key)) = ROUTES.iter().find(|r| r.0 == route) else {
        return Err((404, "Not Found".into()));
    };
    let number = |name: &str, default: usize| -> Result<usize, (u16, String)> {
        match query.iter().rev().find(|(k, _)| k == name) {
            None => Ok(default),
            Some((_, v)) => v.parse().map_err(|_| bad(format!("invalid request parameter \"{name}\": {v:?}"))),
        }
    };
    let limit = number("limit", 10)?;
    if limit > 10_000 {
        return Err(bad("request parameter \"limit\" exceeds maximum value of 10000".into()));
    }
    let limit = if limit == 0 { 10 } else { limit };
    let skip = number("skip", 0)?;
    let sort: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "sort")
        .flat_map(|(_, v)| v.split(',').map(str::trim).filter(|f| !f.is_empty()))
        .collect();
    if let Some(f) =
        sort.iter().find(|f| !f.trim_start_matches('-').chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    {
        return Err(bad(format!("invalid sort field {f:?}")));
    }
    let mut devices: Option<Vec<usize>> = None;
    let mut other: Vec<(&str, Vec<&str>)> = Vec::new();
    for (_, f) in query.iter().filter(|(k, _)| k == "filter") {
        let mut parts = f.splitn(3, ':');
        let (field, op, value) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next());
        let values: Vec<&str> = match (op, value) {
            ("eq", Some(v)) => vec![v],
            ("in", Some(v)) => v.split('|').collect(),
            _ => return Err(bad(format!("invalid filter {f:?}: use field:eq:value or field:in:a|b"))),
        };
        if field == "system_id" {
            let mut ds: Vec<usize> = values.iter().filter_map(|v| org.device_index.get(*v).copied()).collect();
            ds.sort_by(|a, b| org.devices[*a].id.cmp(&org.devices[*b].id));
            ds.dedup();
            devices = Some(ds);
        } else if field == *filterable {
            other.push((field, values));
        } else {
            return Err(bad(format!(
                "invalid filter field {field:?}; valid filter fields are system_id and {filterable}"
            )));
        }
    }
    let canonical = sort.is_empty() || sort == *key;
    let page: Vec<Value> = if canonical && other.is_empty() {
        // Whole devices are skipped by their counts; only the page's rows are built.
        let order: Vec<usize> = match &devices {
            Some(ds) => ds.clone(),
            None => index.sorted.clone(),
        };
        let start = match &devices {
            Some(_) => 0,
            None => index.before.partition_point(|b| *b <= skip).saturating_sub(1),
        };
        let mut passed = match &devices {
            Some(_) => 0,
            None => index.before.get(start).copied().unwrap_or(0),
        };
        let mut out = Vec::with_capacity(limit.min(10_000));
        for &d in order.iter().skip(start) {
            if out.len() >= limit {
                break;
            }
            let rows = rows(org, route, d, today_ms);
            for r in rows {
                if passed >= skip && out.len() < limit {
                    out.push(r);
                }
                passed += 1;
            }
        }
        out
    } else {
        let order: Vec<usize> = devices.unwrap_or_else(|| index.sorted.clone());
        let mut all: Vec<Value> = order
            .iter()
            .flat_map(|d| rows(org, route, *d, today_ms))
            .filter(|r| {
                other.iter().all(|(field, values)| {
                    let v = text(r.get(*field));
                    values.iter().any(|x| *x == v)
                })
            })
            .collect();
        if !sort.is_empty() {
            all.sort_by(|a, b| compare(a, b, &sort));
        }
        all.into_iter().skip(skip).take(limit).collect()
    };
    Ok(serde_json::to_string(&page).unwrap_or_else(|_| "[]".into()))
}

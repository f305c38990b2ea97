//! Exports of "other tools" that join to a generated org: an HR roster (CSV) and a device
//! inventory (JSON). `jcsql demo` writes them beside its boards; `examples/data/` holds the ones
//! for the default demo org (`cargo run --example demo_data` rewrites them).
//!
//! Planted for the example boards: every 23rd person has left the company (some are still
//! active in JumpCloud), a few HR rows are people JumpCloud does not know, a few inventory
//! laptops were never enrolled, and some enrolled devices are missing from the inventory.

use serde_json::json;

use super::org::Org;

/// Whether the HR roster says person `i` has left.
pub fn is_leaver(i: usize) -> bool {
    i % 23 == 5
}

/// `employee_id,email,full_name,department,status,termination_date`; emails of leavers in
/// upper case, as HR systems often keep them (joins should compare case-insensitively).
pub fn hr_csv(org: &Org) -> String {
    let mut out = String::from("employee_id,email,full_name,department,status,termination_date\n");
    for (i, u) in org.users.iter().enumerate() {
        let (status, ended, email) = if is_leaver(i) {
            ("terminated", format!("2026-{:02}-{:02}", 1 + i % 10, 1 + i % 27), u.email.to_uppercase())
        } else if u.state == Some("STAGED") {
            ("pre-hire", String::new(), u.email.clone())
        } else {
            ("active", String::new(), u.email.clone())
        };
        let id = u.employee_identifier.clone().unwrap_or_else(|| format!("X{:06}", i + 1));
        out.push_str(&format!("{id},{email},\"{}\",{},{status},{ended}\n", u.displayname, u.department));
    }
    for (n, (name, email)) in [
        ("Pat Contractor", "pat@agency.example"),
        ("Sam Temp", "sam.temp@agency.example"),
        ("Lee Intern", "lee@uni.example"),
    ]
    .iter()
    .enumerate()
    {
        out.push_str(&format!("C{:05},{email},\"{name}\",Operations,active,\n", n + 1));
    }
    out
}

/// A JSON array: `serial`, `hostname`, `assigned_to` (email), `model`, `purchased`. Every
/// 10th enrolled device is missing; three laptops were never enrolled.
pub fn inventory_json(org: &Org) -> String {
    let mut items = Vec::new();
    for (i, d) in org.devices.iter().enumerate() {
        if i % 10 == 9 {
            continue;
        }
        let owner = org.device_users[i].first().map(|(u, _)| org.users[*u].email.clone());
        let model = match d.os {
            "Mac OS X" => "MacBook Pro 14",
            "Windows" => "ThinkPad T14",
            _ => "Dell XPS 13",
        };
        items.push(json!({
            "serial": d.serial_number,
            "hostname": d.hostname,
            "assigned_to": owner,
            "model": model,
            "purchased": format!("20{}-{:02}-15", 22 + i % 4, 1 + i % 12),
        }));
    }
    for n in 0..3 {
        items.push(json!({
            "serial": format!("UNENROLLED{n:03}"),
            "hostname": format!("spare-{n}"),
            "assigned_to": null,
            "model": "MacBook Air 13",
            "purchased": "2025-06-01",
        }));
    }
    let mut text = serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".into());
    text.push('\n');
    text
}

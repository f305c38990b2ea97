//! `jcsql connect google`, the Google settings (environment first, then the config file), and
//! the demo's Google account, made from the demo org's people.

use std::path::PathBuf;

use crate::error::JcsqlError;
use crate::google::GoogleConfig;
use crate::google::client::GoogleClient;
use crate::google::simulator::{GoogleOrg, Group, Person};
use crate::jumpcloud::simulator::Org;

use super::config::{GoogleSettings, Home, StoredConfig};
use super::{GlobalArgs, engine_from_settings};

/// The Google connection's settings: `GOOGLE_APPLICATION_CREDENTIALS` and
/// `GOOGLE_ADMIN_SUBJECT` (with `GOOGLE_CUSTOMER`, `GOOGLE_API_URL`) win over `[google]`.
pub fn google_config(stored: &StoredConfig, g: &GlobalArgs) -> Option<GoogleConfig> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let settings = stored.google.clone().unwrap_or_default();
    let key_file = env("GOOGLE_APPLICATION_CREDENTIALS").map(PathBuf::from).or((!settings
        .service_account
        .as_os_str()
        .is_empty())
    .then_some(settings.service_account))?;
    let subject = env("GOOGLE_ADMIN_SUBJECT").or((!settings.subject.is_empty()).then_some(settings.subject))?;
    let mut cfg = GoogleConfig::new(key_file, subject);
    if let Some(customer) = env("GOOGLE_CUSTOMER").or(settings.customer) {
        cfg.customer = customer;
    }
    if let Some(url) = env("GOOGLE_API_URL").or(settings.api_url) {
        cfg.api_url = url.trim_end_matches('/').to_string();
    }
    if let Some(n) = g.max_in_flight {
        cfg.max_in_flight = n;
    }
    Some(cfg)
}

/// Checks the key file, the subject and the delegation with one request, stores the path (not
/// the key), and fetches the Google tables.
pub async fn connect_google(
    home: &Home,
    g: &GlobalArgs,
    service_account: PathBuf,
    subject: String,
    customer: Option<String>,
) -> Result<u8, JcsqlError> {
    let service_account = std::fs::canonicalize(&service_account).unwrap_or(service_account);
    let mut cfg = GoogleConfig::new(service_account.clone(), subject.clone());
    let api_url = std::env::var("GOOGLE_API_URL").ok().filter(|u| !u.trim().is_empty());
    if let Some(url) = &api_url {
        cfg.api_url = url.trim_end_matches('/').to_string();
    }
    if let Some(c) = &customer {
        cfg.customer = c.clone();
    }
    let client = GoogleClient::new(cfg)?;
    client.validate().await?;
    let mut stored = StoredConfig::load(&home.config_file())?;
    stored.google = Some(GoogleSettings { service_account, subject: subject.clone(), customer, api_url });
    stored.save(&home.config_file())?;
    eprintln!(
        "Google Workspace answers for {subject} (service account {}); the key file's path is saved in {}. Fetching google.users, google.groups and google.group_members…",
        client.service_account_email(),
        home.config_file().display()
    );
    let (engine, _) = engine_from_settings(home, g).await?;
    let Some(google) = engine.tools().first() else {
        return Err(JcsqlError::Config("the Google connection did not start".into()));
    };
    super::sync_connection(google, &[], g).await
}

/// The demo's Google account: the demo org's people, most in both, some only in one, some
/// suspended in one only; its groups mirror JumpCloud's by name, a few with other members.
pub fn demo_google_org(org: &Org) -> GoogleOrg {
    let domain = org.users.first().and_then(|u| u.email.split('@').nth(1)).unwrap_or("acme.example").to_string();
    let mut people = Vec::new();
    for (i, u) in org.users.iter().enumerate() {
        if i % 20 == 7 {
            continue; // only in JumpCloud
        }
        let suspended = if u.suspended { i % 3 != 0 } else { i % 37 == 5 };
        let is_admin = i % 50 == 3 || i == 1;
        people.push(Person {
            abuse: false,
            email: u.email.clone(),
            given_name: u.firstname.clone(),
            family_name: u.lastname.clone(),
            suspended,
            is_admin,
            enrolled_2sv: if is_admin { i % 100 != 3 } else { i % 5 != 0 },
            last_login_days_ago: (i % 11 != 0).then_some((i % 60) as u32),
            org_unit: format!("/{}", u.department),
        });
    }
    // Only in Google: contractors JumpCloud never saw.
    for k in 0..(org.users.len() / 25).max(1) {
        people.push(Person {
            abuse: false,
            email: format!("contractor{k}@{domain}"),
            given_name: "Contractor".into(),
            family_name: format!("{k}"),
            suspended: false,
            is_admin: false,
            enrolled_2sv: k % 2 == 0,
            last_login_days_ago: Some((k % 30) as u32),
            org_unit: "/Contractors".into(),
        });
    }
    let in_google = |email: &String| people.iter().any(|p| &p.email == email);
    let mut groups = Vec::new();
    for (g, group) in org.groups.iter().enumerate() {
        let mut members: Vec<String> = org
            .group_members
            .get(g)
            .map(|m| m.iter().map(|&u| org.users[u].email.clone()).filter(in_google).collect())
            .unwrap_or_default();
        if g % 4 == 1 && !members.is_empty() {
            members.remove(0);
        }
        if g % 5 == 2 {
            members.push(format!("contractor0@{domain}"));
        }
        let slug: String =
            group.name.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        groups.push(Group {
            name: group.name.clone(),
            email: format!("{slug}@{domain}"),
            description: format!("{} (synced from JumpCloud)", group.name),
            members,
        });
    }
    groups.push(Group {
        name: "Contractors".into(),
        email: format!("contractors@{domain}"),
        description: "People outside JumpCloud".into(),
        members: (0..(org.users.len() / 25).max(1)).map(|k| format!("contractor{k}@{domain}")).collect(),
    });
    GoogleOrg { domain, people, groups }
}

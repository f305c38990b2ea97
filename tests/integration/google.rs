//! Google Workspace: the connector against its simulator over loopback (token exchange, paging,
//! errors), the boards that join it with JumpCloud, `.fields`, and the real recorded responses.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use jcsql::google::GoogleConfig;
use jcsql::google::simulator::{GoogleOrg, GoogleSimulator, GoogleSimulatorConfig};
use jcsql::jumpcloud::simulator::{Simulator, SimulatorConfig};
use jcsql::{Engine, EngineOptions};

use crate::common::{self, count, fast_client, google_config, strings, text};

struct Both {
    jumpcloud: Simulator,
    google: GoogleSimulator,
    engine: Engine,
    dir: tempfile::TempDir,
}

async fn start(users: usize, tweak: impl FnOnce(&mut GoogleSimulatorConfig)) -> Both {
    let jumpcloud = Simulator::start(SimulatorConfig::new(users, 11)).await.expect("simulator");
    let mut config = GoogleSimulatorConfig::new(jumpcloud.with_org(jcsql::cli::google::demo_google_org));
    tweak(&mut config);
    let google = GoogleSimulator::start(config).await.expect("google simulator");
    let dir = tempfile::tempdir().expect("dir");
    let cfg = google_config(&google, dir.path(), &google.admin_email());
    let engine = engine(&jumpcloud, Some(cfg), dir.path()).await.expect("engine");
    Both { jumpcloud, google, engine, dir }
}

async fn engine(jumpcloud: &Simulator, google: Option<GoogleConfig>, dir: &Path) -> jcsql::Result<Engine> {
    Engine::new(EngineOptions {
        client: Some(fast_client(jumpcloud.base_url(), jumpcloud.api_key())),
        cache_dir: Some(dir.join("cache")),
        google,
        ..Default::default()
    })
    .await
}

fn jumpcloud_emails(sim: &Simulator) -> HashSet<String> {
    sim.with_org(|o| o.users.iter().map(|u| u.email.clone()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_tables_hold_exactly_the_simulated_account() {
    let t = start(120, |_| {}).await;
    let org = t.google.org().clone();
    assert_eq!(count(&t.engine, "select count(*) from google.users").await as usize, org.people.len());
    assert_eq!(count(&t.engine, "select count(*) from google.groups").await as usize, org.groups.len());
    let members: usize = org.groups.iter().map(|g| g.members.len()).sum();
    assert_eq!(count(&t.engine, "select count(*) from google.group_members").await as usize, members);

    // One person, every column a query would read.
    let never = org.people.iter().filter(|p| p.last_login_days_ago.is_none()).count();
    assert!(never > 0);
    assert_eq!(
        count(&t.engine, "select count(*) from google.users where last_login_time is null").await as usize,
        never
    );
    let p = org.people.iter().find(|p| p.suspended).expect("a suspended person");
    let row = &strings(
        &t.engine,
        &format!(
            "select id, primary_email, name_full_name, suspended, suspension_reason, last_login_time, \
             org_unit_path, customer_id, json_length(emails) from google.users where primary_email = '{}'",
            p.email
        ),
    )
    .await[0];
    let expected = [
        GoogleOrg::user_id(&p.email),
        p.email.clone(),
        format!("{} {}", p.given_name, p.family_name),
        "true".into(),
        "ADMIN".into(),
        row[5].clone(),
        p.org_unit.clone(),
        "C03az79cb".into(),
        "2".into(),
    ];
    assert_eq!(row, &expected);
    assert_eq!(row[5] == "NULL", p.last_login_days_ago.is_none(), "1970-01-01 is NULL, other logins are kept");
    assert_eq!(row[0].len(), 21);

    // Members carry their group and the person's id.
    let group = org.groups.iter().find(|g| g.members.len() >= 3).expect("a group");
    let got = strings(
        &t.engine,
        &format!(
            "select m.email, m.member_id, g.direct_members_count from google.group_members m \
             join google.groups g on g.id = m.group_id where g.email = '{}' order by m.email",
            group.email
        ),
    )
    .await;
    let mut want: Vec<Vec<String>> =
        group.members.iter().map(|e| vec![e.clone(), GoogleOrg::user_id(e), group.members.len().to_string()]).collect();
    want.sort();
    assert_eq!(got, want);
    // jcsql.tables lists the Google tables beside JumpCloud's.
    assert_eq!(count(&t.engine, "select count(*) from jcsql.tables where schema_name = 'google'").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_follows_next_page_token_to_the_last_page() {
    let t = start(60, |c| c.page_cap = Some(7)).await;
    let people = t.google.org().people.len();
    assert_eq!(count(&t.engine, "select count(distinct id) from google.users").await as usize, people);
    let user_pages: Vec<_> = t.google.requests().into_iter().filter(|(_, p, _)| p == "/users").collect();
    assert_eq!(user_pages.len(), people.div_ceil(7));
    assert!(user_pages[0].2.contains("customer=my_customer") && user_pages[0].2.contains("maxResults=500"));
    assert!(!user_pages[0].2.contains("pageToken"));
    assert!(user_pages[1].2.contains("pageToken=p7"), "{:?}", user_pages[1]);
    let members: usize = t.google.org().groups.iter().map(|g| g.members.len()).sum();
    assert_eq!(count(&t.engine, "select count(*) from google.group_members").await as usize, members);
    let member_pages = t.google.requests().iter().filter(|(_, p, _)| p.ends_with("/members")).count();
    let expected: usize = t.google.org().groups.iter().map(|g| g.members.len().div_ceil(7).max(1)).sum();
    assert_eq!(member_pages, expected);
    // One token for all of it.
    assert_eq!(t.google.tokens_issued(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_is_ridden_out_and_an_expired_token_renewed() {
    let t = start(40, |_| {}).await;
    t.google.rate_limit_next(5);
    let people = t.google.org().people.len() as i64;
    assert_eq!(count(&t.engine, "select count(*) from google.users").await, people);
    let tries = t.google.requests().iter().filter(|(_, p, _)| p == "/users").count();
    assert_eq!(tries, 6, "five 429s, then the page");

    t.google.expire_tokens();
    let google = t.engine.tools()[0].clone();
    let results = google.sync(&["groups".to_string()]).await;
    assert!(results[0].1.is_ok(), "{:?}", results[0].1.as_ref().err().map(ToString::to_string));
    assert_eq!(t.google.tokens_issued(), 2, "the refused token was replaced once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_and_refusals_each_give_one_line() {
    let jumpcloud = Simulator::start(SimulatorConfig::new(20, 3)).await.expect("simulator");
    let org = jumpcloud.with_org(jcsql::cli::google::demo_google_org);
    let google = GoogleSimulator::start(GoogleSimulatorConfig::new(org.clone())).await.expect("google");
    let dir = tempfile::tempdir().expect("dir");

    // A key file that is not one.
    for (name, body, reason) in [
        ("notjson.json", "PRIVATE KEY but not json".to_string(), "it is not a JSON key file (line 1, column 1)"),
        ("nokey.json", r#"{"type":"service_account","client_email":"a@b.iam.gserviceaccount.com","token_uri":"http://x/token"}"#.to_string(), "it has no private_key"),
        ("badpem.json", r#"{"type":"service_account","client_email":"a@b.c","token_uri":"http://x/token","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#.to_string(), "its private_key is not an RSA private key in PEM form"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &body).expect("write");
        let err = engine(&jumpcloud, Some(GoogleConfig::new(&path, "x@y")), dir.path()).await.err().expect("refused").to_string();
        assert!(err.contains(&format!("cannot use the Google service-account key file {}: {reason};", path.display())), "{err}");
        assert!(!err.contains("AAAA") && !err.contains("but not json"), "{err}");
        assert_eq!(err.lines().count(), 1);
    }
    let missing = dir.path().join("missing.json");
    let err = engine(&jumpcloud, Some(GoogleConfig::new(&missing, "x@y")), dir.path()).await.err().expect("refused");
    assert!(err.to_string().contains("cannot read it (entity not found)"), "{err}");

    // A subject Google does not know, and one that is no administrator.
    let outsider = google_config(&google, dir.path(), "nobody@acme.example");
    let e = engine(&jumpcloud, Some(outsider), dir.path()).await.expect("engine");
    let err = jcsql::error::user_message(&e.sql("select count(*) from google.users").await.expect_err("refused"));
    assert_eq!(
        err,
        "Google refused the service account's token for nobody@acme.example (400 invalid_grant: Invalid email or User ID); the subject must be an administrator of the domain and the service account needs domain-wide delegation for the read-only directory scopes (Admin console → Security → API controls)"
    );
    let member = org.people.iter().find(|p| !p.is_admin).expect("a non-admin");
    let e =
        engine(&jumpcloud, Some(google_config(&google, dir.path(), &member.email)), dir.path()).await.expect("engine");
    let err = jcsql::error::user_message(&e.sql("select count(*) from google.users").await.expect_err("refused"));
    assert!(err.starts_with("Google refused GET /users (403: Not Authorized to access this resource/api)"), "{err}");

    // A 403 on groups leaves users answering.
    google.forbid("/groups");
    let e = engine(&jumpcloud, Some(google_config(&google, dir.path(), &google.admin_email())), dir.path())
        .await
        .expect("engine");
    assert_eq!(count(&e, "select count(*) from google.users").await as usize, org.people.len());
    let err = jcsql::error::user_message(&e.sql("select count(*) from google.groups").await.expect_err("refused"));
    assert!(err.starts_with("Google refused GET /groups (403:"), "{err}");
    // JumpCloud is untouched by Google's refusals.
    assert_eq!(count(&e, "select count(*) from jumpcloud.users").await, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_four_google_boards_answer_what_the_two_accounts_say() {
    let t = start(200, |_| {}).await;
    t.engine.load_boards(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/boards")).await;
    let org = t.google.org().clone();
    let jc: Vec<(String, bool)> =
        t.jumpcloud.with_org(|o| o.users.iter().map(|u| (u.email.clone(), u.suspended)).collect());
    let jc_emails = jumpcloud_emails(&t.jumpcloud);
    let person = |e: &str| org.people.iter().find(|p| p.email == e);

    let suspended_active: Vec<String> =
        jc.iter().filter(|(e, s)| *s && person(e).is_some_and(|p| !p.suspended)).map(|(e, _)| e.clone()).collect();
    assert!(!suspended_active.is_empty());
    let mut got: Vec<String> = strings(&t.engine, "select email from boards.suspended_in_jumpcloud_active_in_google")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    got.sort();
    let mut want = suspended_active;
    want.sort();
    assert_eq!(got, want);

    let not_in_jc = org.people.iter().filter(|p| !jc_emails.contains(&p.email)).count();
    assert_eq!(
        count(&t.engine, "select count(*) from boards.google_accounts_without_jumpcloud_user").await as usize,
        not_in_jc
    );

    let admins = org.people.iter().filter(|p| p.is_admin && !p.enrolled_2sv && !p.suspended).count();
    assert!(admins >= 1);
    assert_eq!(count(&t.engine, "select count(*) from boards.google_admins_without_2sv").await as usize, admins);

    // Members in one group and not the other, for the groups both have.
    let differing: usize = t.jumpcloud.with_org(|o| {
        o.groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| {
                let gg = org.groups.iter().find(|x| x.name == g.name)?;
                let jcm: HashSet<String> = o.group_members[i].iter().map(|&u| o.users[u].email.clone()).collect();
                let gm: HashSet<String> = gg.members.iter().cloned().collect();
                Some(jcm.symmetric_difference(&gm).count())
            })
            .sum()
    });
    assert!(differing > 0);
    assert_eq!(
        count(&t.engine, "select count(*) from boards.google_groups_differing_from_jumpcloud").await as usize,
        differing
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_shows_the_join_to_google_users_by_email_with_its_match_rate() {
    let t = start(100, |_| {}).await;
    let found =
        jcsql::sources::joinable_fields(t.engine.context(), &t.engine.connection_schemas(), "users", &[], false)
            .await
            .expect("fields");
    let google = found
        .iter()
        .find(|f| f.other_table == "google.users" && f.other_column == "primary_email" && f.column == "email")
        .expect("users.email joins google.users.primary_email");
    let jc = jumpcloud_emails(&t.jumpcloud);
    let google_org = t.google.org();
    let people = &google_org.people;
    let shared = people.iter().filter(|p| jc.contains(&p.email)).count() as i64;
    assert_eq!(google.matched, Some(shared));
    assert_eq!(google.match_rate, Some(shared as f64 / people.len() as f64));
    // Other JumpCloud tables are relations, not value matches.
    assert!(!found.iter().any(|f| f.kind == "values" && f.other_table.starts_with("jumpcloud.")));
}

#[test]
fn every_recorded_google_response_parses() {
    let root = common::data_dir().join("google/recordings");
    let mut files: Vec<PathBuf> = Vec::new();
    for dir in std::fs::read_dir(root.join("jupiterone-graph-google")).expect("recordings").flatten() {
        files.extend(std::fs::read_dir(dir.path()).expect("dir").flatten().map(|e| e.path()));
    }
    files.sort();
    let (mut lists, mut tokens) = (0, 0);
    for f in &files {
        let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(f).expect("read")).expect("json");
        let url = rec["url"].as_str().unwrap_or_default();
        let body = serde_json::to_vec(&rec["body"]).expect("body");
        if url.contains("/token") {
            let t: jcsql::google::auth::TokenResponse = serde_json::from_slice(&body).expect("token answer");
            assert!(t.access_token.is_some(), "{}", f.display());
            tokens += 1;
            continue;
        }
        let path = url.split('?').next().unwrap_or(url);
        let (table, items) = if path.ends_with("/members") {
            ("group_members", "members")
        } else if path.ends_with("/groups") {
            ("groups", "groups")
        } else {
            ("users", "users")
        };
        let def = jcsql::google::tables::all_tables().iter().find(|d| d.name == table).expect("table");
        let decoder = jcsql::table::decode::TablePage { def, parent: Some("g"), fetched_at_us: 0 };
        let (page, next) = jcsql::google::client::parse_page(items, &body, &decoder)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let expected = rec["body"][items].as_array().map_or(0, Vec::len);
        assert_eq!(page.map_or(0, |(_, n)| n) as usize, expected, "{}", f.display());
        assert_eq!(next, None);
        lists += 1;
    }
    assert_eq!((lists, tokens), (13, 7));
}

/// `jcsql connect google` as users run it: the key file's path stored, its contents nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_google_stores_the_path_and_never_the_key() {
    let t = start(30, |_| {}).await;
    let home = tempfile::tempdir().expect("home");
    let key_file = t.google.write_key_file(t.dir.path()).expect("key");
    let key_line = jcsql::google::simulator::DEMO_PRIVATE_KEY.lines().nth(3).expect("a line of the key").to_string();
    let args = vec![
        "connect".to_string(),
        "google".into(),
        "--service-account".into(),
        key_file.display().to_string(),
        "--subject".into(),
        t.google.admin_email(),
    ];
    let env = vec![
        ("JCSQL_HOME".to_string(), home.path().display().to_string()),
        ("GOOGLE_API_URL".to_string(), t.google.api_url()),
        ("JCSQL_LOG".to_string(), "debug".to_string()),
    ];
    let out = common::spawn_cli(args, env.clone(), None).await.expect("cli");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("Google Workspace answers for {}", t.google.admin_email())), "{stderr}");
    assert!(stdout.contains("google.users") || stdout.contains("users"), "{stdout}");
    let config = std::fs::read_to_string(home.path().join("config.toml")).expect("config");
    assert!(config.contains(&key_file.display().to_string()), "{config}");
    // The key appears in no output, log or cached file.
    for (what, content) in [("stdout", stdout.as_bytes()), ("stderr", stderr.as_bytes())] {
        let s = String::from_utf8_lossy(content);
        assert!(!s.contains(&key_line) && !s.contains("PRIVATE KEY"), "{what} holds the key");
    }
    let mut files = vec![home.path().to_path_buf()];
    let mut scanned = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).expect("dir").flatten().map(|e| e.path()));
        } else {
            let bytes = std::fs::read(&p).expect("file");
            let s = String::from_utf8_lossy(&bytes);
            assert!(!s.contains(&key_line) && !s.contains("PRIVATE KEY"), "{} holds the key", p.display());
            scanned += 1;
        }
    }
    assert!(scanned >= 4, "config and the three Google snapshots");

    // Later runs read Google from the stored settings.
    let args = common::owned(&["-q", "--format", "csv", "-c", "select count(*) as n from google.users"]);
    let out = common::spawn_cli(args, env, None).await.expect("cli");
    assert_eq!(text(&out.stdout), format!("n\n{}\n", t.google.org().people.len()), "{}", text(&out.stderr));
}

//! Boards and other tools: the example boards return what the generator planted, joins with the
//! exports, joinable fields, broken boards, disconnect.

use std::collections::{BTreeSet, HashSet};

use crate::common::*;
use jcsql::cli::output::Format;
use jcsql::cli::repl::{Repl, ScriptedReader, SharedBuf};
use jcsql::cli::{DEMO_SEED, DEMO_USERS, Demo, GlobalArgs};
use jcsql::jumpcloud::simulator::Org;
use jcsql::jumpcloud::simulator::demo_data::{hr_csv, inventory_json, is_leaver};

fn days_ago(ts: &str) -> f64 {
    let t = chrono::DateTime::parse_from_rfc3339(ts).expect("date").with_timezone(&chrono::Utc);
    (chrono::Utc::now() - t).num_seconds() as f64 / 86400.0
}

fn reachable(org: &Org, app: usize) -> BTreeSet<usize> {
    let mut users: BTreeSet<usize> = org.app_users[app].iter().copied().collect();
    for g in &org.app_groups[app] {
        users.extend(org.group_members[*g].iter().copied());
    }
    users
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_example_board_returns_what_the_generator_planted() {
    let demo =
        Demo::start(DEMO_USERS, DEMO_SEED, &GlobalArgs { quiet: true, ..Default::default() }).await.expect("demo");
    let org = demo.simulator.org();
    let e = &demo.engine;
    let boards = strings(e, "select name, error from jcsql.boards order by name").await;
    assert_eq!(boards.len(), jcsql::cli::workspace::EXAMPLE_BOARDS.len());
    assert_eq!(boards.len(), 26);
    assert!(boards.iter().all(|b| b[1] == "NULL"), "{boards:?}");

    let active_no_mfa =
        |i: usize| org.users[i].state == Some("ACTIVATED") && !org.users[i].suspended && !org.users[i].mfa.configured;
    let expected: Vec<(&str, usize)> = vec![
        ("users_without_mfa", (0..org.users.len()).filter(|&i| active_no_mfa(i)).count()),
        (
            "suspended_users_with_devices",
            org.device_users.iter().flatten().filter(|(u, _)| org.users[*u].suspended).count(),
        ),
        (
            "stale_devices",
            org.devices.iter().filter(|d| d.last_contact.as_deref().is_some_and(|t| days_ago(t) > 90.0)).count(),
        ),
        (
            "stale_staged_users",
            org.users.iter().filter(|u| u.state == Some("STAGED") && days_ago(&u.created) > 30.0).count(),
        ),
        (
            "apps_reachable_without_mfa",
            (0..org.applications.len()).filter(|&a| reachable(&org, a).into_iter().any(active_no_mfa)).count(),
        ),
        ("empty_groups", org.group_members.iter().filter(|m| m.is_empty()).count()),
        (
            "users_in_no_group",
            (0..org.users.len()).filter(|i| org.group_members.iter().all(|m| !m.contains(i))).count(),
        ),
        ("hr_leavers_still_active", (0..org.users.len()).filter(|&i| is_leaver(i) && !org.users[i].suspended).count()),
        ("unenrolled_laptops", 3),
        ("unencrypted_devices", org.devices.iter().filter(|d| d.fde["active"] == false).count()),
        // The demo's Google account: the demo org's people, less a few, plus contractors.
        (
            "google_accounts_without_jumpcloud_user",
            demo.google.org().people.iter().filter(|p| !org.users.iter().any(|u| u.email == p.email)).count(),
        ),
        (
            "suspended_in_jumpcloud_in_google_groups",
            org.users
                .iter()
                .filter(|u| u.suspended)
                .map(|u| demo.google.org().groups.iter().filter(|g| g.members.contains(&u.email)).count())
                .sum(),
        ),
        (
            "suspended_in_jumpcloud_active_in_google",
            org.users
                .iter()
                .filter(|u| u.suspended && demo.google.org().people.iter().any(|p| p.email == u.email && !p.suspended))
                .count(),
        ),
    ];
    // `select * from boards.x` (what a BI tool sends) keeps the board's ORDER BY.
    for board in ["google_groups_differing_from_jumpcloud", "empty_groups"] {
        let sql = std::fs::read_to_string(format!("{}/examples/boards/{board}.sql", env!("CARGO_MANIFEST_DIR")))
            .expect("board");
        let direct = strings(e, &sql).await;
        assert!(direct.len() > 1, "{board}");
        assert_eq!(strings(e, &format!("select * from boards.{board}")).await, direct, "{board}");
    }
    for (board, n) in &expected {
        assert!(*n > 0, "the generator plants rows for {board}");
        assert_eq!(count(e, &format!("select count(*) from boards.{board}")).await, *n as i64, "{board}");
    }
    // Per-application counts, not just the number of applications.
    let rows = strings(e, "select application, users_without_mfa from boards.apps_reachable_without_mfa").await;
    for r in rows {
        let a = org.applications.iter().position(|a| a.display_label == r[0]).expect("app");
        let n = reachable(&org, a).into_iter().filter(|&u| active_no_mfa(u)).count();
        assert_eq!(r[1], n.to_string(), "{}", r[0]);
    }
    // The HR join finds exactly the planted leavers (emails in upper case in the CSV).
    let leavers: HashSet<String> = strings(e, "select email from boards.hr_leavers_still_active")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    let planted: HashSet<String> = (0..org.users.len())
        .filter(|&i| is_leaver(i) && !org.users[i].suspended)
        .map(|i| org.users[i].email.clone())
        .collect();
    assert_eq!(leavers, planted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_lists_the_matching_export_columns_with_their_rates() {
    let demo =
        Demo::start(DEMO_USERS, DEMO_SEED, &GlobalArgs { quiet: true, ..Default::default() }).await.expect("demo");
    let batch = jcsql::cli::workspace::fields_batch(&demo.engine, "users").await.expect("fields");
    let found = rows(&[batch]);
    assert!(found.contains(&vec![
        "id".into(),
        "jumpcloud.user_group_members.user_id".into(),
        "NULL".into(),
        "NULL".into(),
        "relation".into()
    ]));
    // 300 people in JumpCloud and 3 contractors only HR knows: 300 of 303 emails match.
    assert!(
        found.contains(&vec!["email".into(), "hr.email".into(), "0.99".into(), "300".into(), "values".into()]),
        "{found:?}"
    );
    let values: Vec<&Vec<String>> = found.iter().filter(|r| r[4] == "values").collect();
    let rates: Vec<f64> = values.iter().map(|r| r[2].parse().expect("rate")).collect();
    assert!(rates.windows(2).all(|w| w[0] >= w[1]), "best first: {found:?}");
    let d = rows(&[jcsql::cli::workspace::fields_batch(&demo.engine, "devices").await.expect("fields")]);
    assert!(d.iter().any(|r| r[0] == "serial_number" && r[1] == "inventory.serial" && r[4] == "values"), "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_boards_are_reported_and_the_others_load() {
    let t = start(20).await;
    let dir = tempfile::tempdir().expect("dir");
    let write = |name: &str, sql: &str| std::fs::write(dir.path().join(format!("{name}.sql")), sql).expect("write");
    write(
        "active",
        "-- title: Active people\n-- description: the activated ones\nselect email from jumpcloud.users where state = 'ACTIVATED'\n",
    );
    write("z_count_active", "select count(*) as n from boards.active\n");
    write("broken", "-- title: Broken\nselect email\nfrom jumpcloud.users\nwhere state = = 'x'\n");
    write("unknown", "select *\nfrom jumpcloud.userz\n");
    write("two", "select 1; select 2;\n");
    write("writes", "create view x as select 1\n");
    let loaded = t.engine.load_boards(dir.path()).await;
    let by_name = |n: &str| loaded.iter().find(|b| b.name == n).expect("board listed");
    assert_eq!(by_name("active").error, None);
    assert_eq!(by_name("active").title.as_deref(), Some("Active people"));
    assert_eq!(by_name("z_count_active").error, None, "a board may read another board");
    let p = |n: &str| dir.path().join(format!("{n}.sql")).display().to_string();
    assert_eq!(
        by_name("broken").error.as_ref().map(ToString::to_string).as_deref(),
        Some(
            format!(
                "{} line 4: SQL error: ParserError(\"Expected: an expression, found: = at Line: 4, Column: 15\")",
                p("broken")
            )
            .as_str()
        )
    );
    assert_eq!(
        by_name("unknown").error.as_ref().map(ToString::to_string).as_deref(),
        Some(
            format!(
                "{} line 2: unknown table jumpcloud.userz; did you mean jumpcloud.users? (`.tables` lists the tables)",
                p("unknown")
            )
            .as_str()
        )
    );
    assert_eq!(
        by_name("two").error.as_ref().map(ToString::to_string).as_deref(),
        Some(format!("{} line 1: a board holds exactly one query; this file has 2", p("two")).as_str())
    );
    assert!(by_name("writes").error.as_ref().map(ToString::to_string).as_deref().is_some_and(|e| {
        e.ends_with("a board must be a query (SELECT or WITH …), not a statement that changes something")
    }));
    let active = t.sim.org().users.iter().filter(|u| u.state == Some("ACTIVATED")).count();
    assert_eq!(count(&t.engine, "select n from boards.z_count_active").await, active as i64);
    let meta =
        strings(&t.engine, "select name, title, sources, tables from jcsql.boards where error is null order by name")
            .await;
    assert_eq!(
        meta,
        vec![
            vec!["active", "Active people", "jumpcloud", "jumpcloud.users"],
            vec!["z_count_active", "NULL", "jumpcloud", "boards.active"],
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_from_the_repl_makes_a_view_at_once() {
    let t = start(20).await;
    let dir = tempfile::tempdir().expect("dir");
    t.engine.load_boards(dir.path()).await;
    let out = SharedBuf::default();
    let err = SharedBuf::default();
    let mut repl = Repl::new(&t.engine, Format::Csv, Box::new(out.clone()), Box::new(err.clone()));
    repl.run(&mut ScriptedReader::new(&[
        ".save nothing_yet",
        "select email from jumpcloud.users where suspended;",
        ".save suspended People who are suspended",
        "select count(*) as n from boards.suspended;",
        ".boards",
    ]))
    .await;
    let suspended = t.sim.org().users.iter().filter(|u| u.suspended).count();
    let text = std::fs::read_to_string(dir.path().join("suspended.sql")).expect("saved");
    assert_eq!(text, "-- title: People who are suspended\nselect email from jumpcloud.users where suspended\n");
    assert!(out.text().contains(&format!("n\n{suspended}\n")), "{}", out.text());
    assert!(out.text().contains("suspended,People who are suspended,jumpcloud,\n"), "{}", out.text());
    let err = err.text();
    assert!(err.starts_with("Error: no query to save yet: run one first, then `.save NAME`\n"), "{err}");
    assert!(err.contains(&format!(
        "saved board suspended in {} (query it as boards.suspended)",
        dir.path().join("suspended.sql").display()
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_export_is_one_line_and_the_rest_works() {
    let t = start(20).await;
    let dir = tempfile::tempdir().expect("dir");
    let good = dir.path().join("people.csv");
    std::fs::write(&good, "email,team\na@x.example,red\nb@x.example,blue\n").expect("write");
    let folder = dir.path().join("okta");
    std::fs::create_dir(&folder).expect("dir");
    std::fs::write(folder.join("Users Export.csv"), "login,status\na@x.example,ACTIVE\n").expect("write");
    std::fs::write(folder.join("groups.ndjson"), "{\"name\":\"eng\",\"size\":3}\n{\"name\":\"ops\",\"size\":1}\n")
        .expect("write");
    let missing = dir.path().join("gone.csv");
    use jcsql::sources::SourceConfig;
    let s1 = t.engine.add_source(&SourceConfig { name: "people".into(), path: good }).await;
    let s2 = t.engine.add_source(&SourceConfig { name: "gone".into(), path: missing.clone() }).await;
    let s3 = t.engine.add_source(&SourceConfig { name: "okta".into(), path: folder }).await;
    assert_eq!(s1.error, None);
    assert_eq!(
        s2.error.as_ref().map(ToString::to_string).as_deref(),
        Some(format!("cannot read {} (No such file or directory (os error 2))", missing.display()).as_str())
    );
    assert_eq!(s3.tables, vec!["okta.groups", "okta.users_export"]);
    assert_eq!(count(&t.engine, "select count(*) from people").await, 2);
    assert_eq!(count(&t.engine, "select sum(size) from okta.groups").await, 4);
    assert_eq!(strings(&t.engine, "select login from okta.users_export").await, vec![vec!["a@x.example"]]);
    let meta = strings(&t.engine, "select name, kind, tables, error is null from jcsql.sources order by name").await;
    assert_eq!(
        meta,
        vec![
            vec!["gone", "file", "", "false"],
            vec!["okta", "folder", "okta.groups, okta.users_export", "true"],
            vec!["people", "file", "people", "true"]
        ]
    );
    assert_eq!(jcsql::sources::primary_field(t.engine.context(), "people").await.as_deref(), Some("email"));
    assert_eq!(jcsql::sources::primary_field(t.engine.context(), "okta.groups").await.as_deref(), Some("name"));
}

#[test]
fn the_committed_demo_exports_match_the_demo_org() {
    let org = Org::generate(&jcsql::jumpcloud::simulator::OrgSpec::new(DEMO_USERS, DEMO_SEED));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data");
    assert_eq!(
        std::fs::read_to_string(dir.join("hr.csv")).expect("hr.csv"),
        hr_csv(&org),
        "run cargo run --example demo_data"
    );
    assert_eq!(std::fs::read_to_string(dir.join("inventory.json")).expect("inventory.json"), inventory_json(&org));
    // Every example board file is built into the binary.
    let files: BTreeSet<String> =
        std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/boards"))
            .expect("boards")
            .flatten()
            .filter_map(|e| e.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
    let built: BTreeSet<String> = jcsql::cli::workspace::EXAMPLE_BOARDS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(files, built);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_moves_exactly_the_boards_that_read_the_source() {
    let sim = jcsql::jumpcloud::simulator::Simulator::start(jcsql::jumpcloud::simulator::SimulatorConfig::new(20, 3))
        .await
        .expect("sim");
    let home = tempfile::tempdir().expect("home");
    let data = tempfile::tempdir().expect("data");
    std::fs::write(data.path().join("hr.csv"), "email,status\na@x.example,terminated\n").expect("write");
    std::fs::write(data.path().join("assets.csv"), "serial,owner\nS1,a@x.example\n").expect("write");
    let h = home.path().display().to_string();
    let env = vec![
        ("JCSQL_HOME".to_string(), h.clone()),
        ("JUMPCLOUD_API_URL".to_string(), sim.base_url()),
        ("JUMPCLOUD_API_KEY".to_string(), "jca_demo".to_string()),
    ];
    let run = |args: Vec<String>, stdin: Option<String>| spawn_cli(args, env.clone(), stdin);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let hr_path = data.path().join("hr.csv").display().to_string();
    let assets_path = data.path().join("assets.csv").display().to_string();
    let out = run(s(&["connect", "files", "hr", &hr_path]), None).await.expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hr (primary field: email)\n");
    let out = run(s(&["connect", "files", "assets", &assets_path]), None).await.expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for (name, sql) in [
        ("leavers", "select * from hr where status = 'terminated'"),
        ("leaver_count", "select count(*) as n from boards.leavers"),
        ("asset_owners", "select * from assets"),
        ("people", "select email from jumpcloud.users"),
    ] {
        let out = run(s(&["board", "save", name, sql]), None).await.expect("join");
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let boards = home.path().join("boards");
    let out = run(s(&["disconnect", "hr"]), None).await.expect("join");
    assert_eq!(out.status.code(), Some(3), "no --yes and no terminal: nothing changes");
    assert_eq!(
        text(&out.stderr),
        "Disconnecting hr deletes 2 boards that read it: leaver_count, leavers (moved to ".to_string()
            + &boards.display().to_string()
            + "/.deleted/, so they can be restored).\nNothing was changed: run again with --yes to confirm.\n"
    );
    assert!(boards.join("leavers.sql").exists());
    let out = run(s(&["disconnect", "hr", "--yes"]), None).await.expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let left: BTreeSet<String> = std::fs::read_dir(&boards)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, BTreeSet::from([".deleted".to_string(), "asset_owners.sql".into(), "people.sql".into()]));
    let deleted: Vec<_> = std::fs::read_dir(boards.join(".deleted")).expect("deleted").flatten().collect();
    assert_eq!(deleted.len(), 1);
    let moved: BTreeSet<String> = std::fs::read_dir(deleted[0].path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(moved, BTreeSet::from(["leaver_count.sql".to_string(), "leavers.sql".into()]));
    let config = std::fs::read_to_string(home.path().join("config.toml")).expect("config");
    assert!(!config.contains("hr.csv") && config.contains("assets.csv"), "{config}");
    let out = run(s(&["board", "list", "--format", "csv"]), None).await.expect("join");
    assert_eq!(text(&out.stdout), "name,title,sources,error\nasset_owners,,assets,\npeople,,jumpcloud,\n");
}

/// The MFA board counts paths instead of listing (application, person) pairs, so people who
/// reach an application several ways (two or three of its groups, a group and a direct
/// assignment) are where it could go wrong. Plant each case with real actions, then compare with
/// the org itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mfa_board_counts_a_person_once_however_many_ways_they_reach_an_app() {
    let demo = Demo::start(3000, DEMO_SEED, &GlobalArgs { quiet: true, ..Default::default() }).await.expect("demo");
    let e = &demo.engine;
    let org = demo.simulator.org();
    let active_no_mfa =
        |i: usize| org.users[i].state == Some("ACTIVATED") && !org.users[i].suspended && !org.users[i].mfa.configured;
    let in_groups = |u: usize, a: usize| org.app_groups[a].iter().any(|g| org.group_members[*g].contains(&u));

    let three = (0..org.applications.len()).find(|&a| org.app_groups[a].len() == 3).expect("an app with three groups");
    let everywhere =
        (0..org.users.len()).find(|&u| active_no_mfa(u) && !in_groups(u, three)).expect("someone outside its groups");
    let (direct_app, direct_person) = (0..org.applications.len())
        .flat_map(|a| org.app_users[a].iter().map(move |&u| (a, u)))
        .find(|&(a, u)| active_no_mfa(u) && !in_groups(u, a))
        .expect("a direct assignee no group reaches");
    let mut adds: Vec<(usize, usize)> = org.app_groups[three].iter().map(|&g| (everywhere, g)).collect();
    adds.push((direct_person, org.app_groups[direct_app][0]));
    let sql = adds
        .iter()
        .map(|(u, g)| format!("select add_user_to_group('{}', '{}')", org.users[*u].email, org.groups[*g].id))
        .collect::<Vec<_>>()
        .join(" union all ");
    let planned = e.execute(&sql).await.expect("plans");
    let results = e.apply(&planned.planned).await;
    assert!(results.iter().all(|r| r.status == "added"), "{results:?}");

    // Every multi-path case is present now.
    let paths = strings(
        e,
        "with no_mfa as (select id from jumpcloud.users where state = 'ACTIVATED' and not coalesce(suspended, false) \
         and not coalesce(mfa_configured, false)) \
         select count(*) filter (where group_paths = 3), count(*) filter (where group_paths = 2), \
                count(*) filter (where paths > group_paths and group_paths > 0) \
         from (select a.application_id, a.user_id, count(*) as paths, count(a.via_group_id) as group_paths \
               from jumpcloud.user_application_access a join no_mfa n on n.id = a.user_id group by 1, 2)",
    )
    .await;
    let [three_groups, two_groups, direct_and_group] = [0, 1, 2].map(|i| paths[0][i].parse::<i64>().expect("count"));
    assert!(three_groups >= 1 && two_groups >= 1 && direct_and_group >= 1, "{paths:?}");

    let now = demo.simulator.org();
    let active_no_mfa =
        |i: usize| now.users[i].state == Some("ACTIVATED") && !now.users[i].suspended && !now.users[i].mfa.configured;
    let board = strings(
        e,
        "select application, users_without_mfa from boards.apps_reachable_without_mfa \
         order by users_without_mfa desc, application",
    )
    .await;
    let expected: Vec<Vec<String>> = {
        let mut v: Vec<(usize, String)> = (0..now.applications.len())
            .map(|a| (reachable(&now, a).into_iter().filter(|&u| active_no_mfa(u)).count(), a))
            .filter(|(n, _)| *n > 0)
            .map(|(n, a)| (n, now.applications[a].display_label.clone()))
            .collect();
        v.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        v.into_iter().map(|(n, label)| vec![label, n.to_string()]).collect()
    };
    assert_eq!(board, expected);
}

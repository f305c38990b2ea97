//! What changed since the last fetch: `changes.TABLE` and `changes.all`, from fetches and from
//! applied actions, never from a failed or short fetch, kept on disk.

use crate::common::*;
use jcsql::jumpcloud::simulator::{Fault, Simulator, SimulatorConfig};

async fn sync_all(e: &jcsql::Engine) -> Vec<(String, Option<jcsql::changes::ChangeCounts>)> {
    e.connection()
        .sync(&[])
        .await
        .into_iter()
        .map(|(n, r)| (n.clone(), r.unwrap_or_else(|err| panic!("{n}: {err}")).changes))
        .collect()
}

fn counts_of(r: &[(String, Option<jcsql::changes::ChangeCounts>)], table: &str) -> String {
    r.iter().find(|(n, _)| n == table).and_then(|(_, c)| c.map(|c| c.to_string())).unwrap_or("baseline".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_fetch_records_exactly_what_changed() {
    let t = start(120).await;
    let e = &t.engine;
    let first = sync_all(e).await;
    assert!(first.iter().all(|(_, c)| c.is_none()), "the first fetch is the baseline");
    assert_eq!(count(e, "select count(*) from changes.all").await, 0);

    let org = t.sim.org();
    let a = org.users.iter().find(|u| u.state == Some("ACTIVATED") && !u.suspended).expect("an active user");
    let d =
        org.devices.iter().position(|d| !org.device_users[org.device_index[&d.id]].is_empty()).expect("a bound device");
    let (device_id, bindings) = (org.devices[d].id.clone(), org.device_users[d].len());
    let in_groups = org.audit.device_group_members.iter().filter(|m| m.contains(&d)).count();
    let g = &org.groups[3];
    let new_id = t.sim.with_org_mut(|o| {
        o.set_suspended(&a.id, true);
        assert!(o.delete_device(&device_id));
        assert!(o.rename_group(&g.id, "Renamed Team"));
        o.add_user(0, "new.hire", "new.hire@acme.example")
    });

    let second = sync_all(e).await;
    assert_eq!(counts_of(&second, "users"), "1 added, 1 changed");
    assert_eq!(counts_of(&second, "devices"), "1 removed");
    assert_eq!(counts_of(&second, "user_groups"), "1 changed");
    assert_eq!(counts_of(&second, "device_users"), format!("{bindings} removed"));
    assert_eq!(counts_of(&second, "device_group_members"), format!("{in_groups} removed"));
    assert_eq!(counts_of(&second, "applications"), "no changes");

    let users = strings(
        e,
        "select id, _op, _changed, _before, suspended, _source, _at > _since from changes.users order by _op",
    )
    .await;
    let template_suspended = t.sim.org().users.iter().find(|u| u.id == new_id).expect("added").suspended;
    assert_eq!(
        users,
        vec![
            vec![
                new_id,
                "added".into(),
                "NULL".into(),
                "NULL".into(),
                template_suspended.to_string(),
                "fetch".into(),
                "true".into()
            ],
            vec![
                a.id.clone(),
                "changed".into(),
                r#"["state","suspended"]"#.into(),
                r#"{"state":"ACTIVATED","suspended":false}"#.into(),
                "true".into(),
                "fetch".into(),
                "true".into()
            ],
        ]
    );
    // A removed row is the old one.
    let removed = strings(e, "select id, display_name, _op, _changed from changes.devices").await;
    assert_eq!(
        removed,
        vec![vec![device_id.clone(), org.devices[d].display_name.clone(), "removed".into(), "NULL".into()]]
    );
    let renamed = strings(e, "select name, _changed, json_get_str(_before, 'name') from changes.user_groups").await;
    assert_eq!(renamed, vec![vec!["Renamed Team".to_string(), r#"["name"]"#.into(), g.name.clone()]]);
    // The feed: one row per change, keyed.
    let feed = strings(
        e,
        "select table_name, op, key from changes.all where table_name in ('devices', 'users') order by 1, 2",
    )
    .await;
    assert_eq!(feed.len(), 3);
    assert_eq!(feed[0], vec!["devices".to_string(), "removed".into(), device_id]);
    let total = count(e, "select count(*) from changes.all").await;
    // The removed device's System Insights rows went with it.
    let insights: usize = jcsql::jumpcloud::simulator::insights::ROUTES
        .iter()
        .map(|(route, ..)| jcsql::jumpcloud::simulator::insights::count(&org, route, d))
        .sum();
    assert_eq!(total as usize, 2 + 1 + 1 + bindings + in_groups + insights);

    // Nothing changed: a third fetch records nothing.
    let third = sync_all(e).await;
    // (The event log only grows; it keeps no change history of its own.)
    assert!(
        third.iter().filter(|(n, _)| n != "directory_events").all(|(_, c)| c.is_some_and(|c| c.is_empty())),
        "{third:?}"
    );
    assert_eq!(count(e, "select count(*) from changes.all").await, total);

    // A failed fetch and a short one record nothing, however different they look.
    t.sim.with_org_mut(|o| {
        o.set_suspended(&a.id, false);
    });
    t.sim.set_fault("/api/systemusers", Fault::DropRecords);
    let short = e.connection().sync(&["users".into()]).await;
    assert!(short[0].1.is_err());
    t.sim.clear_faults();
    t.sim.set_fault("/api/systemusers", Fault::Status(400));
    assert!(e.connection().sync(&["users".into()]).await[0].1.is_err());
    t.sim.clear_faults();
    assert_eq!(count(e, "select count(*) from changes.all").await, total);

    // Kept on disk: a new engine on the same cache reads the history back.
    let again = engine_for(fast_client(t.sim.base_url(), t.sim.api_key()), t.dir.path().to_path_buf()).await;
    assert_eq!(count(&again, "select count(*) from changes.users where _op = 'added'").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_action_is_recorded_once() {
    let t = start(60).await;
    let e = &t.engine;
    assert!(count(e, "select count(*) from jumpcloud.user_group_members").await > 0);
    let org = t.sim.org();
    let finance = org.groups.iter().position(|g| g.name == "Finance").expect("Finance");
    let outsider = (0..org.users.len()).find(|u| !org.group_members[finance].contains(u)).expect("someone outside");
    let plan = e
        .execute(&format!("select add_user_to_group('{}', 'Finance')", org.users[outsider].email))
        .await
        .expect("plans");
    assert_eq!(e.apply(&plan.planned).await[0].status, "added");
    let rows = strings(e, "select user_id, group_id, _op, _source from changes.user_group_members").await;
    assert_eq!(
        rows,
        vec![vec![org.users[outsider].id.clone(), org.groups[finance].id.clone(), "added".into(), "action".into()]]
    );
    // The next fetch confirms it and records nothing more.
    let r = e.connection().sync(&["user_group_members".into()]).await;
    assert!(r[0].1.as_ref().is_ok_and(|s| s.changes.is_some_and(|c| c.is_empty())), "{r:?}");
    assert_eq!(count(e, "select count(*) from changes.user_group_members").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_prints_a_line_per_table_that_changed() {
    let sim = Simulator::start(SimulatorConfig::new(40, 9)).await.expect("sim");
    let home = tempfile::tempdir().expect("dir");
    let env: Vec<(String, String)> = vec![
        ("JUMPCLOUD_API_URL".into(), sim.base_url()),
        ("JUMPCLOUD_API_KEY".into(), "jca_demo".into()),
        ("JCSQL_HOME".into(), home.path().display().to_string()),
    ];
    let run = |args: Vec<&'static str>| spawn_cli(owned(&args), env.clone(), None);
    let out = run(vec!["sync", "users", "user_groups"]).await.expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let org = sim.org();
    sim.with_org_mut(|o| {
        o.add_user(1, "a.new", "a.new@acme.example");
        o.add_user(2, "b.new", "b.new@acme.example");
        o.rename_group(&org.groups[0].id, "Everyone Else");
    });
    let out = run(vec!["sync", "users", "user_groups"]).await.expect("join");
    let err = text(&out.stderr);
    assert!(err.contains("\nusers: 2 added\nuser_groups: 1 changed\n"), "{err}");
    let out = run(vec!["sync", "users", "user_groups"]).await.expect("join");
    assert!(text(&out.stderr).ends_with("no changes since the last fetch\n"), "{}", text(&out.stderr));
    let out = run(vec![
        "--offline",
        "--format",
        "csv",
        "-c",
        "select table_name, op, count(*) from changes.all group by 1, 2 order by 1",
    ])
    .await
    .expect("join");
    assert_eq!(text(&out.stdout), "table_name,op,count(*)\nuser_groups,changed,1\nusers,added,2\n");
}

//! Actions: planned without writing, applied exactly as planned, permitted, audited, and
//! reflected in the cached tables at once.

use std::collections::BTreeSet;

use crate::common::*;
use jcsql::actions::Permissions;
use jcsql::cli::output::Format;
use jcsql::cli::repl::{Repl, ScriptedReader, SharedBuf};
use jcsql::jumpcloud::simulator::{Fault, Simulator, SimulatorConfig};
use jcsql::{Engine, EngineOptions};

fn posts(sim: &Simulator) -> Vec<jcsql::jumpcloud::simulator::RequestRecord> {
    sim.requests().into_iter().filter(|r| r.method == "POST").collect()
}

async fn engine_with(sim: &Simulator, dir: &std::path::Path, permissions: Permissions) -> Engine {
    Engine::new(EngineOptions {
        client: Some(fast_client(sim.base_url(), sim.api_key())),
        cache_dir: Some(dir.to_path_buf()),
        permissions,
        audit_log: Some(dir.join("audit.jsonl")),
        ..Default::default()
    })
    .await
    .expect("engine")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_writes_nothing_apply_writes_exactly_the_plan() {
    let sim = Simulator::start(SimulatorConfig::new(60, 8)).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let e = engine_with(&sim, dir.path(), Permissions::default()).await;
    let org = sim.org();
    let finance = org.groups.iter().position(|g| g.name == "Finance").expect("Finance");
    let legal: Vec<usize> = (0..org.users.len())
        .filter(|&i| org.users[i].department == "Legal" && !org.group_members[finance].contains(&i))
        .collect();
    assert!(legal.len() >= 2);
    // A board-like view planned before the change.
    query(&e, "create view finance_size as select count(*) as n from jumpcloud.user_group_members m join jumpcloud.user_groups g on g.id = m.group_id where g.name = 'Finance'").await;
    let before = count(&e, "select n from finance_size").await;
    assert_eq!(before, org.group_members[finance].len() as i64);
    // The access view is kept as rows; it must follow the memberships the action changes.
    let finance_apps = org.app_groups.iter().filter(|gs| gs.contains(&finance)).count() as i64;
    let access_via_finance = "select count(*) from jumpcloud.user_application_access where via_group_id = (select id from jumpcloud.user_groups where name = 'Finance')";
    // The first read plans the view's query; the second keeps its rows, which the action must
    // then replace.
    let access_before = count(&e, access_via_finance).await;
    assert_eq!(count(&e, access_via_finance).await, access_before);
    assert!(finance_apps > 0, "Finance reaches an application");
    assert_eq!(access_before, before * finance_apps);

    let sql = "select username, add_user_to_group(email, 'Finance') as status from jumpcloud.users where department = 'Legal' order by username";
    let done = e.execute(sql).await.expect("plans");
    assert!(posts(&sim).is_empty(), "a plan makes no write request");
    let statuses = rows(&done.batches);
    assert_eq!(statuses.len(), org.users.iter().filter(|u| u.department == "Legal").count());
    assert!(statuses.iter().all(|r| r[1].starts_with("planned #")), "{statuses:?}");
    assert_eq!(done.planned.len(), statuses.len());

    sim.clear_requests();
    let results = e.apply(&done.planned).await;
    let writes = posts(&sim);
    assert_eq!(writes.len(), done.planned.len(), "one request per planned call");
    assert!(writes.iter().all(|r| r.path == format!("/api/v2/usergroups/{}/members", org.groups[finance].id)));
    let now = sim.org();
    for &u in &legal {
        assert!(now.group_members[finance].contains(&u), "the simulator's state changed");
    }
    let added = results.iter().filter(|r| r.status == "added").count();
    let already = results.iter().filter(|r| r.status == "already_member").count();
    assert_eq!((added, already), (legal.len(), statuses.len() - legal.len()));

    // Boards see the change at once, from the patched cache: no request.
    sim.clear_requests();
    assert_eq!(count(&e, "select n from finance_size").await, before + legal.len() as i64);
    assert_eq!(count(&e, access_via_finance).await, (before + legal.len() as i64) * finance_apps);
    assert_eq!(sim.request_count(), 0);

    // The same statement again: every call is now already_member.
    let again = e.execute(sql).await.expect("plans");
    let results = e.apply(&again.planned).await;
    assert!(results.iter().all(|r| r.status == "already_member"), "{results:?}");

    // One audit line per applied call, never the key.
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit log");
    assert_eq!(log.lines().count(), 2 * statuses.len());
    assert!(!log.contains("jca_demo"));
    let r = strings(
        &e,
        "select action, outcome, http_status, json_get_str(inputs, 'group') from jcsql.action_log order by at limit 1",
    )
    .await;
    assert_eq!(r[0][0], "add_user_to_group");
    assert!(["added", "already_member"].contains(&r[0][1].as_str()));
    assert_eq!(r[0][3], "Finance");
    assert_eq!(
        count(&e, "select count(*) from jcsql.action_log where outcome = 'already_member' and http_status = 409").await
            as usize,
        statuses.len() + already
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_and_duplicates_bound_the_plan() {
    let t = start(40).await;
    let done = t
        .engine
        .execute("select add_user_to_group(email, 'Finance') from jumpcloud.users order by email limit 3")
        .await
        .expect("plans");
    assert_eq!(done.planned.len(), 3, "rows dropped by LIMIT drop their calls");
    assert_eq!(done.planned.iter().map(|(n, _)| *n).collect::<BTreeSet<_>>().len(), 3);
    let done = t
        .engine
        .execute("select create_user_group('Auditors', 'Quarterly') from jumpcloud.users")
        .await
        .expect("plans");
    assert_eq!(
        rows(&done.batches).iter().filter(|r| r[0] == "planned #1").count(),
        40,
        "identical calls share one number"
    );
    assert_eq!(done.planned.len(), 1);
    let results = t.engine.apply(&done.planned).await;
    assert_eq!(results[0].status, "created");
    // The new group is in the cache at once, and a second create says `exists`.
    t.sim.clear_requests();
    assert_eq!(
        count(
            &t.engine,
            "select count(*) from jumpcloud.user_groups where name = 'Auditors' and description = 'Quarterly'"
        )
        .await,
        1
    );
    assert_eq!(t.sim.request_count(), 0);
    let again = t.engine.execute("select create_user_group('Auditors')").await.expect("plans");
    assert_eq!(t.engine.apply(&again.planned).await[0].status, "exists");
    // Aggregated away: nothing shows a planned call, so nothing is applied.
    let agg = t
        .engine
        .execute("select count(*) from (select add_user_to_group(email, 'Finance') s from jumpcloud.users)")
        .await
        .expect("runs");
    assert!(agg.planned.is_empty());
    assert_eq!(agg.called, BTreeSet::from(["add_user_to_group".to_string()]));
    // Unknown names are per-row errors.
    let bad = t.engine.execute("select add_user_to_group('nobody@nowhere', 'Finance') a, add_user_to_group(username, 'Nope') b from jumpcloud.users limit 1").await.expect("runs");
    assert_eq!(rows(&bad.batches), vec![vec!["error: no user named nobody@nowhere", "error: no group named Nope"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disabled_action_is_refused_before_any_request() {
    let sim = Simulator::start(SimulatorConfig::new(30, 8)).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let mut p = Permissions::default();
    p.disabled.insert("remove_user_from_group".into());
    let e = engine_with(&sim, dir.path(), p).await;
    sim.clear_requests();
    let err =
        e.execute("select remove_user_from_group(email, 'Finance') from jumpcloud.users").await.err().expect("refused");
    assert_eq!(
        jcsql::error::user_message(&err),
        "remove_user_from_group is disabled; enable it with `jcsql permissions enable remove_user_from_group`"
    );
    assert_eq!(sim.request_count(), 0, "no request at all");
    // SQL cannot change a permission.
    assert!(e.sql("set jcsql.permissions = 'all'").await.is_err());
    assert!(e.execute("select remove_user_from_group('a', 'b')").await.is_err());
    let perms = strings(&e, "select action, enabled from jcsql.permissions").await;
    assert_eq!(
        perms,
        vec![
            vec!["create_user_group", "true"],
            vec!["add_user_to_group", "true"],
            vec!["remove_user_from_group", "false"],
            vec!["suspend_user", "false"],
            vec!["unsuspend_user", "false"],
            vec!["suspend_google_user", "false"],
            vec!["unsuspend_google_user", "false"],
            vec!["sign_out_google_user", "false"],
            vec!["add_user_to_google_group", "false"],
            vec!["remove_user_from_google_group", "false"],
            vec!["offboard_user", "false"],
            vec!["read_only", "false"]
        ]
    );
    // Read-only refuses everything.
    e.actions().set_permissions(Permissions { read_only: true, ..Default::default() });
    let err = e.execute("select create_user_group('x')").await.err().expect("refused");
    assert_eq!(
        jcsql::error::user_message(&err),
        "create_user_group is refused: jcsql is read-only; allow actions with `jcsql permissions disable read_only`"
    );
    // A board that calls an action is refused too.
    e.actions().set_permissions(Permissions::default());
    let boards = tempfile::tempdir().expect("dir");
    std::fs::write(
        boards.path().join("sneaky.sql"),
        "select add_user_to_group(email, 'Finance') from jumpcloud.users\n",
    )
    .expect("write");
    let loaded = e.load_boards(boards.path()).await;
    assert!(
        loaded[0].error.as_ref().map(ToString::to_string).as_deref().is_some_and(|m| m.ends_with("boards are read-only, and this one calls the action add_user_to_group(); run actions from the prompt or with -c")),
        "{:?}",
        loaded[0].error
    );
    assert!(posts(&sim).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_on_one_of_five_calls_leaves_four_applied() {
    let sim = Simulator::start(SimulatorConfig::new(60, 8)).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let e = engine_with(&sim, dir.path(), Permissions::default()).await;
    let org = sim.org();
    let legal = org.groups.iter().find(|g| g.name == "Legal").expect("Legal").id.clone();
    let plan = e
        .execute(
            "select add_user_to_group(email, g) from (select email from jumpcloud.users where department <> 'Marketing' and department <> 'Legal' order by email limit 4) \
             cross join (select 'Marketing' as g) \
             union all select add_user_to_group(email, 'Legal') from (select email from jumpcloud.users where department <> 'Legal' order by email limit 1)",
        )
        .await
        .expect("plans");
    assert_eq!(plan.planned.len(), 5);
    sim.set_fault(&format!("/api/v2/usergroups/{legal}/members"), Fault::Status(500));
    sim.clear_requests();
    let results = e.apply(&plan.planned).await;
    let statuses: Vec<&str> = results.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "added").count(), 4, "{statuses:?}");
    let failed: Vec<&str> = statuses.iter().copied().filter(|s| s.starts_with("error")).collect();
    assert_eq!(failed, vec!["error: JumpCloud answered 500: Internal Server Error"]);
    assert_eq!(posts(&sim).len(), 5, "a failed write is not retried");
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    assert_eq!(log.lines().count(), 5);
    assert_eq!(log.lines().filter(|l| l.contains("\"http_status\":500")).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repl_asks_before_applying_and_prompts_for_inputs() {
    let t = start(30).await;
    let out = SharedBuf::default();
    let err = SharedBuf::default();
    let mut repl = Repl::new(&t.engine, Format::Csv, Box::new(out.clone()), Box::new(err.clone()));
    let org = t.sim.org();
    let u = &org.users[3];
    repl.run(&mut ScriptedReader::new(&[
        "select create_user_group('Auditors') as s;",
        "n",
        "select create_user_group('Auditors') as s;",
        "y",
        ".action add_user_to_group",
        &u.username,
        "Auditors",
        "y",
        ".actions",
    ]))
    .await;
    let err = err.text();
    assert!(err.contains("Plan: 1 call\n  #1 create_user_group(Auditors)\nNothing was applied.\n"), "{err}");
    assert!(err.contains("Applied: created 1\n"), "{err}");
    assert!(
        err.contains(&format!("Plan: 1 call\n  #1 add_user_to_group({}, Auditors)\nApplied: added 1\n", u.email)),
        "{err}"
    );
    let out = out.text();
    assert!(out.contains("call,action,user,group,status\n#1,create_user_group,,Auditors,created\n"), "{out}");
    assert!(out.contains(&format!("#1,add_user_to_group,{},Auditors,added\n", u.email)), "{out}");
    assert!(
        out.contains(
            "action,inputs,enabled,does\ncreate_user_group,\"name, description (optional)\",true,create a user group\n"
        ),
        "{out}"
    );
    let sim_org = t.sim.org();
    let g = sim_org.groups.iter().position(|g| g.name == "Auditors").expect("created");
    assert!(sim_org.group_members[g].contains(&3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_applies_only_with_yes_and_permissions_persist() {
    let sim = Simulator::start(SimulatorConfig::new(30, 8)).await.expect("sim");
    let home = tempfile::tempdir().expect("home");
    let env: Vec<(String, String)> = vec![
        ("JCSQL_HOME".into(), home.path().display().to_string()),
        ("JUMPCLOUD_API_URL".into(), sim.base_url()),
        ("JUMPCLOUD_API_KEY".into(), "jca_demo".into()),
    ];
    let run = |args: Vec<&'static str>| spawn_cli(owned(&args), env.clone(), None);
    let out = run(vec!["-c", "select create_user_group('Auditors') as s"]).await.expect("join");
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(text(&out.stdout), "s\nplanned #1\n");
    assert_eq!(
        text(&out.stderr),
        "Plan: 1 call\n  #1 create_user_group(Auditors)\nNothing was applied: run again with --yes to apply 1 call.\n"
    );
    assert!(posts(&sim).is_empty());
    let out = run(vec!["-c", "select create_user_group('Auditors') as s", "--yes"]).await.expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "call,action,user,group,status\n#1,create_user_group,,Auditors,created\n");
    assert_eq!(posts(&sim).len(), 1);
    let out = run(vec!["permissions", "disable", "create_user_group"]).await.expect("join");
    assert_eq!(
        text(&out.stdout),
        "action,enabled\ncreate_user_group,false\nadd_user_to_group,true\nremove_user_from_group,true\nsuspend_user,false\nunsuspend_user,false\n\
         suspend_google_user,false\nunsuspend_google_user,false\nsign_out_google_user,false\n\
         add_user_to_google_group,false\nremove_user_from_google_group,false\noffboard_user,false\nread_only,false\n"
    );
    let out = run(vec!["-c", "select create_user_group('Other')", "--yes"]).await.expect("join");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error: create_user_group is disabled; enable it with `jcsql permissions enable create_user_group`\n"
    );
    assert_eq!(posts(&sim).len(), 1);
    let out = run(vec!["permissions", "enable", "nonsense"]).await.expect("join");
    assert_eq!(out.status.code(), Some(1));
    let log = std::fs::read_to_string(home.path().join("audit.jsonl")).expect("audit");
    assert_eq!(log.lines().count(), 1);
}

fn with_enabled(names: &[&str]) -> Permissions {
    let mut p = Permissions::default();
    for n in names {
        p.set(n, true).expect("a known action");
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_and_unsuspend_are_off_until_enabled_and_report_each_outcome() {
    let sim = Simulator::start(SimulatorConfig::new(40, 8)).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let e = engine_with(&sim, dir.path(), Permissions::default()).await;
    let org = sim.org();
    let active: Vec<&jcsql::jumpcloud::simulator::org::User> = org.users.iter().filter(|u| !u.suspended).collect();
    let suspended = org.users.iter().find(|u| u.suspended).expect("a suspended user");
    let (a, c) = (active[0], active[1]);

    // Off by default: refused before any request, with how to turn it on.
    sim.clear_requests();
    let err = e.execute(&format!("select suspend_user('{}')", a.email)).await.err().expect("refused");
    assert_eq!(
        jcsql::error::user_message(&err),
        "suspend_user is disabled; enable it with `jcsql permissions enable suspend_user`"
    );
    assert_eq!(sim.request_count(), 0);

    e.actions().set_permissions(with_enabled(&["suspend_user", "unsuspend_user"]));
    let plan = e
        .execute(&format!(
            "select suspend_user(who) as s from (values ('{}'), ('{}')) t(who) order by who",
            a.email, suspended.username
        ))
        .await
        .expect("plans");
    assert_eq!(plan.planned.len(), 2);
    sim.clear_requests();
    let results = e.apply(&plan.planned).await;
    let by_user: Vec<(String, String)> = results.iter().map(|r| (r.call.shown("user"), r.status.clone())).collect();
    assert!(by_user.contains(&(a.email.clone(), "suspended".into())), "{by_user:?}");
    assert!(by_user.contains(&(suspended.email.clone(), "already_suspended".into())), "{by_user:?}");
    // One read each, and a write only for the one that changes.
    let calls: Vec<(String, String)> = sim.requests().into_iter().map(|r| (r.method, r.path)).collect();
    assert_eq!(
        calls.iter().filter(|(m, _)| m == "PUT").collect::<Vec<_>>(),
        vec![&("PUT".to_string(), format!("/api/systemusers/{}", a.id))]
    );
    assert_eq!(calls.iter().filter(|(m, _)| m == "GET").count(), 2);
    assert!(sim.org().users.iter().find(|u| u.id == a.id).is_some_and(|u| u.suspended));

    // The cached row changed at once: no request.
    sim.clear_requests();
    let row = strings(&e, &format!("select suspended, state from jumpcloud.users where id = '{}'", a.id)).await;
    assert_eq!(row, vec![vec!["true", "SUSPENDED"]]);
    assert_eq!(count(&e, "select count(*) from jumpcloud.users").await, 40, "replaced, not added");
    assert_eq!(sim.request_count(), 0);

    let plan = e
        .execute(&format!("select unsuspend_user(who) from (values ('{}'), ('{}')) t(who)", a.id, c.email))
        .await
        .expect("plans");
    let results = e.apply(&plan.planned).await;
    let statuses: BTreeSet<(String, String)> =
        results.iter().map(|r| (r.call.shown("user"), r.status.clone())).collect();
    assert_eq!(
        statuses,
        BTreeSet::from([(a.email.clone(), "unsuspended".into()), (c.email.clone(), "not_suspended".into())])
    );
    assert!(sim.org().users.iter().find(|u| u.id == a.id).is_some_and(|u| !u.suspended));
    let log =
        strings(&e, "select action, outcome, json_get_str(inputs, 'user') from jcsql.action_log order by at").await;
    assert_eq!(log.len(), 4);
    assert!(log.contains(&vec!["unsuspend_user".into(), "unsuspended".into(), a.email.clone()]), "{log:?}");
    // Disabled again, a planned call is denied at apply time, without a request.
    let plan = e.execute(&format!("select suspend_user('{}')", c.email)).await.expect("plans");
    e.actions().set_permissions(Permissions::default());
    sim.clear_requests();
    assert_eq!(e.apply(&plan.planned).await[0].status, "denied");
    assert_eq!(sim.request_count(), 0);
}

/// Every JumpCloud action in the registry plans and applies against the simulator's route for
/// it (Google's: `google_actions.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_registered_action_applies_against_the_simulator() {
    use jcsql::actions::{ACTIONS, InputKind, Tool};
    let sim = Simulator::start(SimulatorConfig::new(40, 8)).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let all: Vec<&str> = ACTIONS.iter().map(|a| a.name).collect();
    let e = engine_with(&sim, dir.path(), with_enabled(&all)).await;
    let org = sim.org();
    let user = org.users.iter().find(|u| !u.suspended).expect("an active user");
    let jumpcloud: Vec<_> = ACTIONS.iter().filter(|a| a.tool == Tool::JumpCloud).collect();
    for def in &jumpcloud {
        let args: Vec<String> = def
            .inputs
            .iter()
            .map(|i| match i.kind {
                InputKind::User => format!("'{}'", user.email),
                InputKind::Group => "'Finance'".to_string(),
                InputKind::Text => format!("'Registry {}'", def.name),
                InputKind::GoogleUser | InputKind::GoogleGroup => unreachable!("a JumpCloud action"),
            })
            .collect();
        let plan = e.execute(&format!("select {}({})", def.name, args.join(", "))).await.expect("plans");
        assert_eq!(plan.planned.len(), 1, "{}", def.name);
        let results = e.apply(&plan.planned).await;
        let known: Vec<&str> = def.outcomes.iter().map(|(_, o)| *o).chain(def.check.iter().map(|c| c.status)).collect();
        assert!(known.contains(&results[0].status.as_str()), "{}: {}", def.name, results[0].status);
        assert!(matches!(results[0].http_status, Some(200..=299) | Some(404) | Some(409)), "{}", def.name);
    }
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    assert_eq!(log.lines().count(), jumpcloud.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_planned_at_once_apply_only_their_own_calls() {
    let sim = Simulator::start(SimulatorConfig::new(80, 8)).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let e = engine_with(&sim, dir.path(), Permissions::default()).await;
    let org = sim.org();
    let finance = org.groups.iter().position(|g| g.name == "Finance").expect("Finance");
    let members: BTreeSet<String> = org.group_members[finance].iter().map(|&u| org.users[u].email.clone()).collect();
    let outsiders = org.users.len() - members.len();
    for _ in 0..3 {
        let (adds, removes) = tokio::join!(
            e.execute("select add_user_to_group(email, 'Finance') from jumpcloud.users"),
            e.execute(
                "select remove_user_from_group(u.email, 'Finance') from jumpcloud.users u \
                 join jumpcloud.user_group_members m on m.user_id = u.id \
                 join jumpcloud.user_groups g on g.id = m.group_id where g.name = 'Finance'"
            ),
        );
        let (adds, removes) = (adds.expect("plans"), removes.expect("plans"));
        // Each statement numbers its own calls from 1 and sees only its own action.
        assert_eq!(adds.planned.len(), org.users.len());
        assert_eq!(removes.planned.len(), members.len());
        assert!(adds.planned.iter().all(|(_, c)| c.action == "add_user_to_group"));
        assert!(removes.planned.iter().all(|(_, c)| c.action == "remove_user_from_group"));
        assert_eq!(
            removes.planned.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            (1..=members.len()).collect::<Vec<_>>()
        );
        let removed: BTreeSet<String> = removes.planned.iter().map(|(_, c)| c.shown("user")).collect();
        assert_eq!(removed, members);
    }
    let plan = e.execute("select add_user_to_group(email, 'Finance') from jumpcloud.users").await.expect("plans");
    sim.clear_requests();
    let results = e.apply(&plan.planned).await;
    assert_eq!(posts(&sim).len(), org.users.len());
    assert_eq!(results.iter().filter(|r| r.status == "added").count(), outsiders);
    assert!(results.iter().all(|r| r.call.action == "add_user_to_group"));
}

//! Actions across tools against both simulators over HTTP: each Google action's request and
//! outcomes, the scopes asked for, the cross-tool board acted on, and `offboard_user` in order,
//! stopped by an error and a no-op the second time.

use std::path::Path;

use jcsql::actions::Permissions;
use jcsql::google::simulator::{GoogleOrg, GoogleSimulator, GoogleSimulatorConfig};
use jcsql::jumpcloud::simulator::{Simulator, SimulatorConfig};
use jcsql::{Engine, EngineOptions};

use crate::common::{fast_client, google_config, strings};

const GOOGLE_ACTIONS: &[&str] = &[
    "suspend_google_user",
    "unsuspend_google_user",
    "sign_out_google_user",
    "add_user_to_google_group",
    "remove_user_from_google_group",
];

struct Both {
    jumpcloud: Simulator,
    google: GoogleSimulator,
    engine: Engine,
    dir: tempfile::TempDir,
}

fn permissions(enabled: &[&str]) -> Permissions {
    let mut p = Permissions::default();
    for a in enabled {
        p.set(a, true).expect("known action");
    }
    p
}

async fn engine(jumpcloud: &Simulator, google: &GoogleSimulator, dir: &Path, p: Permissions) -> jcsql::Result<Engine> {
    Engine::new(EngineOptions {
        client: Some(fast_client(jumpcloud.base_url(), jumpcloud.api_key())),
        cache_dir: Some(dir.join("cache")),
        google: Some(google_config(google, dir, &google.admin_email())),
        permissions: p,
        audit_log: Some(dir.join("audit.jsonl")),
        ..Default::default()
    })
    .await
}

async fn start(enabled: &[&str], tweak: impl FnOnce(&mut GoogleSimulatorConfig)) -> Both {
    let jumpcloud = Simulator::start(SimulatorConfig::new(120, 11)).await.expect("simulator");
    let mut config = GoogleSimulatorConfig::new(jumpcloud.with_org(jcsql::cli::google::demo_google_org));
    tweak(&mut config);
    let google = GoogleSimulator::start(config).await.expect("google simulator");
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine(&jumpcloud, &google, dir.path(), permissions(enabled)).await.expect("engine");
    Both { jumpcloud, google, engine, dir }
}

/// Plans `sql`, checks nothing was written, applies it, and gives each call's status.
async fn run(t: &Both, sql: &str) -> Vec<String> {
    let writes = t.google.writes().len();
    let done = t.engine.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {}", jcsql::error::user_message(&e)));
    assert_eq!(t.google.writes().len(), writes, "a plan writes nothing: {sql}");
    t.engine.apply(&done.planned).await.into_iter().map(|r| r.status).collect()
}

/// An active person in both tools, in at least one Google group and one JumpCloud group.
fn person(t: &Both) -> (String, String) {
    let g = t.google.org();
    let jc = t.jumpcloud.org();
    let p = g
        .people
        .iter()
        .find(|p| {
            !p.suspended
                && !p.is_admin
                && g.groups.iter().any(|gr| gr.members.contains(&p.email))
                && jc
                    .users
                    .iter()
                    .position(|u| u.email == p.email)
                    .is_some_and(|u| !jc.users[u].suspended && jc.group_members.iter().any(|m| m.contains(&u)))
        })
        .expect("a person in both tools and in groups of both");
    (p.email.clone(), GoogleOrg::user_id(&p.email))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_google_action_makes_its_request_and_maps_googles_answers() {
    let t = start(GOOGLE_ACTIONS, |c| {
        let abused = c.org.people.iter().position(|p| p.suspended && !p.is_admin).expect("a suspended person");
        c.org.people[abused].abuse = true;
    })
    .await;
    let (email, id) = person(&t);
    let org = t.google.org();
    let outside = org.groups.iter().find(|g| !g.members.contains(&email)).expect("a group without them").email.clone();
    let outside_id = GoogleOrg::group_id(&outside);
    // Read the account first, so what follows is the actions' traffic alone.
    let warm = "select (select count(*) from google.users) as people, (select count(*) from google.group_members) as memberships";
    assert_eq!(strings(&t.engine, warm).await.len(), 1);
    let list_requests = |t: &Both| t.google.requests().iter().filter(|r| r.0 == "GET" && r.1 == "/users").count();
    let lists_before = list_requests(&t);

    assert_eq!(run(&t, &format!("select suspend_google_user('{email}')")).await, ["suspended"]);
    assert_eq!(t.google.writes(), [("PUT".to_string(), format!("/users/{id}"), r#"{"suspended":true}"#.to_string())]);
    assert!(t.google.requests().iter().any(|r| r.0 == "GET" && r.1 == format!("/users/{id}")), "read before suspend");
    // The cache is patched, with no refetch.
    let q = format!("select suspended from google.users where primary_email = '{email}'");
    assert_eq!(strings(&t.engine, &q).await, [["true"]]);
    assert_eq!(list_requests(&t), lists_before);
    // And `google_changes` records it, as `changes` records JumpCloud's actions.
    let change = format!("select _op, _changed, _source from google_changes.users where id = '{id}'");
    assert_eq!(strings(&t.engine, &change).await, [["changed", r#"["suspended","suspension_reason"]"#, "action"]]);
    // By an alias too, and again: already done, nothing written.
    let local = email.split('@').next().unwrap_or_default();
    let alias = format!("{local}@{}.test-google-a.com", org.domain);
    assert_eq!(run(&t, &format!("select suspend_google_user('{alias}')")).await, ["already_suspended"]);
    assert_eq!(t.google.writes().len(), 1);

    assert_eq!(run(&t, &format!("select unsuspend_google_user('{email}')")).await, ["unsuspended"]);
    assert_eq!(run(&t, &format!("select unsuspend_google_user('{email}')")).await, ["not_suspended"]);
    let abused = org.people.iter().find(|p| p.abuse).expect("abused").email.clone();
    let refused = run(&t, &format!("select unsuspend_google_user('{abused}')")).await;
    assert_eq!(refused.len(), 1);
    assert!(refused[0].starts_with("error: Google itself suspended") && refused[0].contains("abuse"), "{refused:?}");
    assert!(t.google.org().people.iter().any(|p| p.email == abused && p.suspended));

    assert_eq!(run(&t, &format!("select sign_out_google_user('{email}')")).await, ["signed_out"]);
    assert_eq!(t.google.signed_out(), std::slice::from_ref(&email));
    let last = t.google.writes().last().cloned().expect("a write");
    assert_eq!(last, ("POST".to_string(), format!("/users/{id}/signOut"), String::new()));

    let add = format!("select add_user_to_google_group('{email}', '{outside}')");
    assert_eq!(run(&t, &add).await, ["added"]);
    let last = t.google.writes().last().cloned().expect("a write");
    assert_eq!(
        last,
        (
            "POST".to_string(),
            format!("/groups/{outside_id}/members"),
            format!(r#"{{"email":"{email}","role":"MEMBER"}}"#)
        )
    );
    let member =
        format!("select count(*) from google.group_members where group_id = '{outside_id}' and member_id = '{id}'");
    assert_eq!(strings(&t.engine, &member).await, [["1"]]);
    assert_eq!(run(&t, &add).await, ["already_member"]);
    let remove = format!("select remove_user_from_google_group('{email}', '{outside}')");
    assert_eq!(run(&t, &remove).await, ["removed"]);
    let last = t.google.writes().last().cloned().expect("a write");
    assert_eq!(last, ("DELETE".to_string(), format!("/groups/{outside_id}/members/{id}"), String::new()));
    assert_eq!(strings(&t.engine, &member).await, [["0"]]);
    assert_eq!(run(&t, &remove).await, ["not_member"]);
    assert_eq!(list_requests(&t), lists_before, "the cache was patched, never refetched");

    // A 503 may hide an applied write: a POST is not sent again; a PUT is (twice is once).
    let before = t.google.writes().len();
    t.google.fail_next_writes(1);
    let failed = run(&t, &format!("select sign_out_google_user('{email}')")).await;
    assert_eq!(failed, ["error: Google answered 503: Backend Error"]);
    assert_eq!(t.google.writes().len(), before + 1);
    t.google.fail_next_writes(1);
    assert_eq!(run(&t, &format!("select suspend_google_user('{email}')")).await, ["suspended"]);
    let puts: Vec<_> = t.google.writes()[before + 1..].iter().map(|w| w.0.clone()).collect();
    assert_eq!(puts, ["PUT", "PUT"]);

    // Inputs that name nobody are the row's status, and no call.
    let done = t.engine.execute("select suspend_google_user('nobody@nowhere.example')").await.expect("plans");
    assert!(done.planned.is_empty());
    assert_eq!(crate::common::rows(&done.batches), [["error: no such Google user nobody@nowhere.example"]]);
    let sql = format!("select add_user_to_google_group('{email}', 'no-group@nowhere.example')");
    let done = t.engine.execute(&sql).await.expect("plans");
    assert_eq!(crate::common::rows(&done.batches), [["error: no such Google group no-group@nowhere.example"]]);

    // The audit log has every call, and neither the token nor the key.
    let log = std::fs::read_to_string(t.dir.path().join("audit.jsonl")).expect("audit log");
    assert!(log.lines().count() >= 10);
    assert!(log.contains("\"schema\":\"google\""));
    assert!(!log.contains("ya29") && !log.contains("PRIVATE KEY"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_actions_are_disabled_until_enabled_and_ask_for_write_scopes_only_then() {
    let read_only = "https://www.googleapis.com/auth/admin.directory.user.readonly https://www.googleapis.com/auth/admin.directory.group.readonly";
    let t = start(&[], |_| {}).await;
    let (email, _) = person(&t);
    let refused = t.engine.execute(&format!("select suspend_google_user('{email}')")).await;
    let message = refused.err().map(|e| jcsql::error::user_message(&e)).unwrap_or_default();
    assert!(message.contains("jcsql permissions enable suspend_google_user"), "{message}");
    assert!(t.google.writes().is_empty());
    strings(&t.engine, "select count(*) from google.users").await;
    assert_eq!(t.google.scopes_asked(), [read_only]);

    // One Google action enabled: the write scopes (and reading groups), nothing more.
    let t = start(&["sign_out_google_user"], |_| {}).await;
    strings(&t.engine, "select count(*) from google.users").await;
    let asked = t.google.scopes_asked();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0],
        "https://www.googleapis.com/auth/admin.directory.user https://www.googleapis.com/auth/admin.directory.user.security https://www.googleapis.com/auth/admin.directory.group.member https://www.googleapis.com/auth/admin.directory.group.readonly"
    );

    // A delegation without the sign-out scope: the one line names it.
    let t = start(&["sign_out_google_user"], |c| {
        c.delegated.retain(|s| !s.ends_with("admin.directory.user.security"));
    })
    .await;
    let failed = t.engine.sql("select count(*) from google.users").await;
    let message = failed.err().map(|e| jcsql::error::user_message(&e)).unwrap_or_default();
    assert!(!message.contains('\n'), "{message}");
    assert!(
        message
            .contains("delegate https://www.googleapis.com/auth/admin.directory.user.security to the service account"),
        "{message}"
    );
    assert!(!message.contains("admin.directory.group.member,"), "only the missing scope: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cross_tool_board_suspends_exactly_its_people() {
    let t = start(&["suspend_google_user"], |_| {}).await;
    let jc = t.jumpcloud.org();
    let google = t.google.org();
    let mut expected: Vec<String> = jc
        .users
        .iter()
        .filter(|u| u.suspended && google.people.iter().any(|p| p.email.eq_ignore_ascii_case(&u.email) && !p.suspended))
        .map(|u| GoogleOrg::user_id(&u.email))
        .collect();
    expected.sort();
    assert!(expected.len() >= 2, "{expected:?}");
    let sql = std::fs::read_to_string(format!(
        "{}/examples/boards/suspended_in_jumpcloud_active_in_google.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("board");
    let boards = t.dir.path().join("boards");
    std::fs::create_dir_all(&boards).expect("boards dir");
    std::fs::write(boards.join("suspended_in_jumpcloud_active_in_google.sql"), sql).expect("board");
    t.engine.load_boards(&boards).await;
    let statuses =
        run(&t, "select email, suspend_google_user(email) from boards.suspended_in_jumpcloud_active_in_google").await;
    assert!(statuses.iter().all(|s| s == "suspended"), "{statuses:?}");
    let mut puts: Vec<String> = t
        .google
        .writes()
        .into_iter()
        .filter(|w| w.0 == "PUT")
        .map(|w| w.1.trim_start_matches("/users/").to_string())
        .collect();
    puts.sort();
    assert_eq!(puts, expected, "one PUT each");
    assert_eq!(
        strings(&t.engine, "select count(*) from boards.suspended_in_jumpcloud_active_in_google").await,
        [["0"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offboard_user_writes_in_order_stops_at_an_error_and_is_a_no_op_again() {
    let mut enabled = GOOGLE_ACTIONS.to_vec();
    enabled.extend(["suspend_user", "offboard_user"]);
    let t = start(&enabled, |_| {}).await;
    let (email, gid) = person(&t);
    let jc = t.jumpcloud.org();
    let u = jc.users.iter().position(|u| u.email == email).expect("in JumpCloud");
    let uid = jc.users[u].id.clone();
    let jc_groups = jc.group_members.iter().filter(|m| m.contains(&u)).count();
    let google_groups: Vec<String> = t
        .google
        .org()
        .groups
        .iter()
        .filter(|g| g.members.contains(&email))
        .map(|g| GoogleOrg::group_id(&g.email))
        .collect();

    let done = t.engine.execute(&format!("select offboard_user('{email}') as steps")).await.expect("plans");
    let steps = done.planned.len();
    assert_eq!(steps, 1 + google_groups.len() + 1 + jc_groups + 1);
    let numbers: Vec<String> = (1..=steps).map(|n| format!("#{n}")).collect();
    assert_eq!(crate::common::rows(&done.batches), [[format!("planned {}", numbers.join(", "))]]);
    let actions: Vec<&str> = done.planned.iter().map(|(_, c)| c.action).collect();
    let mut order = vec!["sign_out_google_user"];
    order.extend(google_groups.iter().map(|_| "remove_user_from_google_group"));
    order.push("suspend_google_user");
    order.extend((0..jc_groups).map(|_| "remove_user_from_group"));
    order.push("suspend_user");
    assert_eq!(actions, order);
    assert!(t.google.writes().is_empty());

    t.jumpcloud.clear_requests();
    let results = t.engine.apply(&done.planned).await;
    let statuses: Vec<&str> = results.iter().map(|r| r.status.as_str()).collect();
    let mut want = vec!["signed_out"];
    want.extend(google_groups.iter().map(|_| "removed"));
    want.push("suspended");
    want.extend((0..jc_groups).map(|_| "removed"));
    want.push("suspended");
    assert_eq!(statuses, want);
    // Google's writes in DESIGN's order, then JumpCloud's.
    let google_writes: Vec<(String, String)> = t.google.writes().into_iter().map(|w| (w.0, w.1)).collect();
    let mut want_google = vec![("POST".to_string(), format!("/users/{gid}/signOut"))];
    want_google.extend(google_groups.iter().map(|g| ("DELETE".to_string(), format!("/groups/{g}/members/{gid}"))));
    want_google.push(("PUT".to_string(), format!("/users/{gid}")));
    assert_eq!(google_writes, want_google);
    let jc_writes: Vec<String> = t
        .jumpcloud
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(jc_writes.len(), jc_groups + 1, "{jc_writes:?}");
    assert_eq!(jc_writes.last().cloned().unwrap_or_default(), format!("PUT /api/systemusers/{uid}"));

    // Again: nothing left to do but say so.
    let again = run(&t, &format!("select offboard_user('{email}')")).await;
    assert_eq!(again, ["already_suspended", "already_suspended"]);
    assert_eq!(t.google.writes().len(), want_google.len(), "no new write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offboarding_step_that_fails_stops_that_persons_later_steps_and_a_denied_one_does_not() {
    // sign_out_google_user stays disabled: its step is denied, the rest run.
    let t =
        start(&["suspend_google_user", "remove_user_from_google_group", "suspend_user", "offboard_user"], |_| {}).await;
    let (email, gid) = person(&t);
    let group = t.google.org().groups.iter().find(|g| g.members.contains(&email)).map(|g| g.email.clone());
    let group_id = GoogleOrg::group_id(&group.expect("a group"));
    t.google.forbid(&format!("/groups/{group_id}/members/{gid}"));
    let done = t.engine.execute(&format!("select offboard_user('{email}')")).await.expect("plans");
    let results = t.engine.apply(&done.planned).await;
    assert_eq!(results[0].status, "denied");
    let failed = results.iter().position(|r| r.status.starts_with("error")).expect("the forbidden removal fails");
    assert_eq!(results[failed].call.action, "remove_user_from_google_group");
    assert!(
        results[failed + 1..].iter().all(|r| r.status == "skipped: an earlier step for this person failed"),
        "{results:?}"
    );
    // Nothing after the failure was written to either tool.
    assert!(t.google.writes().iter().all(|w| w.0 != "PUT"), "{:?}", t.google.writes());
    assert!(t.jumpcloud.requests().iter().all(|r| r.method == "GET"));
}

/// The whole path a person takes: `jcsql permissions enable …`, then the demo's Google account
/// and JumpCloud org, planned without `--yes` (exit 3, nothing applied), applied with it.
#[test]
fn the_demo_offboards_only_with_yes_and_the_enabled_permissions() {
    use crate::common::{jcsql, text};
    let home = tempfile::tempdir().expect("home");
    let env = [("JCSQL_HOME", home.path().to_str().unwrap_or_default())];
    for action in ["offboard_user", "suspend_google_user", "remove_user_from_google_group", "suspend_user"] {
        let out = jcsql(&["permissions", "enable", action], &env, None);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let who = jcsql(
        &[
            "demo",
            "--format",
            "csv",
            "-c",
            "select min(email) as email from boards.suspended_in_jumpcloud_in_google_groups",
        ],
        &env,
        None,
    );
    let email = text(&who.stdout).lines().nth(1).unwrap_or_default().to_string();
    assert!(email.contains('@'), "{}", text(&who.stderr));
    let sql = format!("select offboard_user('{email}') as steps");

    let planned = jcsql(&["demo", "--format", "csv", "-c", &sql], &env, None);
    assert_eq!(planned.status.code(), Some(3), "{}", text(&planned.stderr));
    assert!(text(&planned.stdout).starts_with("steps\n\"planned #1, #2"), "{}", text(&planned.stdout));
    let err = text(&planned.stderr);
    assert!(err.contains("  #1 ") && err.contains("Nothing was applied: run again with --yes"), "{err}");
    // sign_out_google_user is not enabled: its step (if the person needs one) says so.
    assert!(!err.contains("sign_out_google_user(") || err.contains(": denied ("), "{err}");

    let applied = jcsql(&["demo", "--yes", "--format", "csv", "-c", &sql], &env, None);
    assert_eq!(applied.status.code(), Some(0), "{}", text(&applied.stderr));
    let out = text(&applied.stdout);
    let statuses: Vec<&str> = out.lines().skip(1).filter_map(|l| l.rsplit(',').next()).collect();
    assert!(statuses.len() >= 3, "{out}");
    assert!(statuses.iter().all(|s| ["removed", "suspended", "already_suspended", "denied"].contains(s)), "{out}");
    assert!(out.contains(&format!(",remove_user_from_google_group,{email},")), "{out}");
    assert!(!out.contains("ya29") && !text(&applied.stderr).contains("PRIVATE KEY"));
}

//! `jcsql check` and `jcsql watch` as cron runs them: the binary against the simulator over HTTP,
//! a webhook receiver on 127.0.0.1 in the test, each run a new process.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use jcsql::jumpcloud::simulator::{Fault, Simulator, SimulatorConfig};
use serde_json::Value;

use crate::common::{owned, sim_env, spawn_cli, text};

const SECRET: &str = "T0KEN-s3cr3t-in-the-path";

/// What the receiver was sent, and what it answers next (200 once the script runs out).
#[derive(Default)]
struct Receiver {
    posts: Mutex<Vec<(String, Value)>>,
    times: Mutex<Vec<std::time::Instant>>,
    answers: Mutex<VecDeque<u16>>,
}

/// Answers the next scripted status; a 429 asks to wait one second.
async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    let id = headers.get("x-jcsql-delivery").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if let Ok(mut p) = r.posts.lock() {
        p.push((id, body));
    }
    if let Ok(mut t) = r.times.lock() {
        t.push(std::time::Instant::now());
    }
    let status = r.answers.lock().ok().and_then(|mut a| a.pop_front()).unwrap_or(200);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    if status == StatusCode::TOO_MANY_REQUESTS {
        return (status, [("retry-after", "1")]).into_response();
    }
    status.into_response()
}

impl Receiver {
    fn take_times(&self) -> Vec<std::time::Instant> {
        self.times.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default()
    }
    fn take(&self) -> Vec<(String, Value)> {
        self.posts.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default()
    }
    fn answer(&self, statuses: &[u16]) {
        if let Ok(mut a) = self.answers.lock() {
            a.extend(statuses);
        }
    }
}

struct Setup {
    sim: Simulator,
    home: tempfile::TempDir,
    boards: tempfile::TempDir,
    receiver: Arc<Receiver>,
    hook: String,
}

impl Setup {
    async fn start() -> Setup {
        let sim = Simulator::start(SimulatorConfig::new(60, 5)).await.expect("sim");
        let boards = tempfile::tempdir().expect("boards");
        std::fs::write(
            boards.path().join("suspended.sql"),
            "-- title: Suspended users\n-- key: email\n\
             select email, department from jumpcloud.users where suspended order by email\n",
        )
        .expect("board");
        std::fs::write(
            boards.path().join("nobody.sql"),
            "select email from jumpcloud.users where email = 'nobody@nowhere.example'\n",
        )
        .expect("board");
        let receiver = Arc::new(Receiver::default());
        let app = Router::new().route("/hook/{token}", post(receive)).with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let hook = format!("http://{}/hook/{SECRET}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Setup { sim, home: tempfile::tempdir().expect("home"), boards, receiver, hook }
    }

    fn events_file(&self) -> PathBuf {
        self.home.path().join("events.ndjson")
    }

    fn args_and_env(&self, args: &[&str]) -> (Vec<String>, Vec<(String, String)>) {
        let mut all = owned(&["--boards", &self.boards.path().display().to_string(), "--max-age", "0"]);
        all.extend(owned(args));
        (all, sim_env(&self.sim, self.home.path()))
    }

    /// Runs jcsql with the org, home and boards of the test; every run refetches (`--max-age 0`).
    async fn run(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let (all, env) = self.args_and_env(args);
        let out = spawn_cli(all, env, None).await.expect("joined");
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    }

    async fn watch_once(&self) -> (Option<i32>, String, String) {
        let events = self.events_file().display().to_string();
        self.run(&["watch", "--all", "--once", "--webhook", &self.hook, "--events", &events]).await
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.events_file())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("an event line parses"))
            .collect()
    }

    /// Suspended users' (email, department), by email.
    fn suspended(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .sim
            .org()
            .users
            .iter()
            .filter(|u| u.suspended)
            .map(|u| (u.email.clone(), u.department.clone()))
            .collect();
        v.sort();
        v
    }
}

fn kinds(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            (e["board"].as_str().unwrap_or_default().to_string(), e["kind"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_exits_by_what_the_boards_find() {
    let s = Setup::start().await;
    let suspended = s.suspended();
    assert!(suspended.len() >= 2, "the org has suspended users");

    let (code, out, err) = s.run(&["check", "suspended", "nobody", "--format", "csv"]).await;
    assert_eq!(code, Some(1), "{err}");
    let mut expected = format!("suspended: {} rows\nemail,department\n", suspended.len());
    for (email, dept) in &suspended {
        expected.push_str(&format!("{email},{dept}\n"));
    }
    expected.push_str("\nnobody: 0 rows\n");
    assert_eq!(out, expected);

    let (code, out, _) = s.run(&["check", "nobody"]).await;
    assert_eq!((code, out.as_str()), (Some(0), "nobody: 0 rows\n"));

    let (code, out, _) = s.run(&["check", "--all", "--format", "json"]).await;
    assert_eq!(code, Some(1));
    let parsed: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(parsed[0]["board"], "nobody");
    assert_eq!(parsed[1]["count"], suspended.len());
    assert_eq!(parsed[1]["rows"][0]["email"], suspended[0].0.as_str());

    // A fetch that comes back short is an error, not "all clear": exit 2 wins over 1.
    s.sim.set_fault("/api/systemusers", Fault::DropRecords);
    let (code, out, err) = s.run(&["check", "--all"]).await;
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(out.contains("nobody: error: a source could not be fetched: jumpcloud.users:"), "{out}");
    assert_eq!(err.lines().filter(|l| l.starts_with("Error: board ")).count(), 2, "{err}");
    assert!(err.contains("Error: board suspended: a source could not be fetched: jumpcloud.users: the fetch of jumpcloud.users was incomplete"), "{err}");
    s.sim.clear_faults();

    // Usage errors are exit 2 too, and so is --all over a folder with no boards (a wrong path
    // must not pass a CI job).
    assert_eq!(s.run(&["check"]).await.0, Some(2));
    let empty = tempfile::tempdir().expect("dir");
    let (mut args, env) = s.args_and_env(&["check", "--all"]);
    args[1] = empty.path().display().to_string();
    let out = spawn_cli(args, env, None).await.expect("joined");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!("Error: no boards to run: {} has no .sql files (set --boards DIR)\n", empty.path().display())
    );
    let (code, _, err) = s.run(&["check", "nosuch"]).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("nosuch"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_reports_each_change_once_and_nothing_false() {
    let s = Setup::start().await;
    let suspended = s.suspended();

    // The first run is the baseline: one event per board, nothing posted.
    let (code, out, err) = s.watch_once().await;
    assert_eq!(code, Some(0), "{out}{err}");
    let events = s.events();
    assert_eq!(kinds(&events), [("nobody".into(), "baseline".into()), ("suspended".into(), "baseline".into())]);
    assert_eq!(events[1]["open_count"], suspended.len());
    // When the users snapshot the board read was fetched: during this run.
    let as_of = events[1]["data_as_of"].as_str().expect("data_as_of");
    let as_of = chrono::DateTime::parse_from_rfc3339(as_of).expect("RFC 3339");
    assert!(chrono::Utc::now().signed_duration_since(as_of) < chrono::Duration::seconds(60), "{as_of}");
    assert!(s.receiver.take().is_empty());

    // Nothing changed: nothing new, a second time too.
    for _ in 0..2 {
        let (code, _, err) = s.watch_once().await;
        assert_eq!(code, Some(0), "{err}");
    }
    assert_eq!(s.events().len(), 2);
    assert!(s.receiver.take().is_empty());

    // One user suspended, one unsuspended, one suspended user moved to another department.
    let (newly, lifted, moved) = s.sim.with_org_mut(|o| {
        let newly = o.users.iter_mut().find(|u| !u.suspended).expect("an active user");
        newly.suspended = true;
        let newly = (newly.email.clone(), newly.department.clone());
        let mut suspended: Vec<&mut _> = o.users.iter_mut().filter(|u| u.suspended && u.email != newly.0).collect();
        suspended.sort_by(|a, b| a.email.cmp(&b.email));
        suspended[0].suspended = false;
        let lifted = (suspended[0].email.clone(), suspended[0].department.clone());
        let old = suspended[1].department.clone();
        suspended[1].department = "Moved Department".into();
        (newly, lifted, (suspended[1].email.clone(), old))
    });
    let (code, _, err) = s.watch_once().await;
    assert_eq!(code, Some(1), "{err}");
    let events = s.events()[2..].to_vec();
    assert_eq!(
        kinds(&events),
        [
            ("suspended".into(), "added".into()),
            ("suspended".into(), "changed".into()),
            ("suspended".into(), "removed".into())
        ]
    );
    let by_kind = |k: &str| events.iter().find(|e| e["kind"] == k).expect("event");
    assert_eq!(by_kind("added")["key"], serde_json::json!({"email": newly.0}));
    assert_eq!(by_kind("added")["row"], serde_json::json!({"email": newly.0, "department": newly.1}));
    assert_eq!(by_kind("removed")["key"], serde_json::json!({"email": lifted.0}));
    assert_eq!(by_kind("changed")["changed_columns"], serde_json::json!(["department"]));
    assert_eq!(by_kind("changed")["before"], serde_json::json!({"department": moved.1}));
    assert_eq!(by_kind("changed")["row"]["department"], "Moved Department");
    let posts = s.receiver.take();
    assert_eq!(posts.len(), 1, "one POST for the board that changed");
    let (id, body) = &posts[0];
    assert_eq!(id.len(), 24);
    assert_eq!(body["jcsql"]["board"], "suspended");
    assert_eq!(body["jcsql"]["status"], "firing");
    assert_eq!(
        body["jcsql"]["counts"],
        serde_json::json!({"added": 1, "removed": 1, "changed": 1, "open": suspended.len()})
    );
    assert_eq!(body["text"], format!("Suspended users: 1 added, 1 removed, 1 changed; {} open", suspended.len()));
    assert_eq!(body["jcsql"]["events"].as_array().map(Vec::len), Some(3));

    // A fetch that comes back short compares nothing: no `removed`, one `source_error` per board
    // for the whole outage, then `source_recovered`.
    s.sim.set_fault("/api/systemusers", Fault::DropRecords);
    let (code, _, err) = s.watch_once().await;
    assert_eq!(code, Some(2), "{err}");
    let (code, _, _) = s.watch_once().await;
    assert_eq!(code, Some(2));
    let outage = s.events()[5..].to_vec();
    assert_eq!(kinds(&outage), [("nobody".into(), "source_error".into()), ("suspended".into(), "source_error".into())]);
    let posts = s.receiver.take();
    assert_eq!(posts.len(), 2);
    assert!(posts.iter().all(|(_, b)| b["jcsql"]["status"] == "error"), "{posts:?}");
    s.sim.clear_faults();
    let (code, _, _) = s.watch_once().await;
    assert_eq!(code, Some(1));
    let recovered = s.events()[7..].to_vec();
    assert_eq!(
        kinds(&recovered),
        [("nobody".into(), "source_recovered".into()), ("suspended".into(), "source_recovered".into())]
    );
    assert_eq!(s.receiver.take().len(), 2);

    // A receiver that answers 503, 503, then 200 gets three POSTs of one delivery.
    s.receiver.answer(&[503, 503]);
    s.sim.with_org_mut(|o| {
        if let Some(u) = o.users.iter_mut().find(|u| !u.suspended) {
            u.suspended = true;
        }
    });
    let (code, _, err) = s.watch_once().await;
    assert_eq!(code, Some(1), "{err}");
    let posts = s.receiver.take();
    assert_eq!(posts.len(), 3);
    assert!(posts.iter().all(|(id, _)| id == &posts[0].0));

    // 400 is not retried: the delivery waits in the outbox, then goes once, with its id.
    s.receiver.answer(&[400]);
    s.sim.with_org_mut(|o| {
        if let Some(u) = o.users.iter_mut().find(|u| !u.suspended) {
            u.suspended = true;
        }
    });
    let (code, _, err) = s.watch_once().await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("answered 400, which is not retried; kept in the outbox"), "{err}");
    let refused = s.receiver.take();
    assert_eq!(refused.len(), 1);
    let (code, status, _) = s.run(&["watch", "status", "--format", "csv"]).await;
    assert_eq!(code, Some(0));
    let suspended_line = status.lines().find(|l| l.starts_with("suspended,")).expect("a status line");
    assert!(suspended_line.ends_with(",1"), "{status}");
    let (code, _, err) = s.watch_once().await;
    assert_eq!(code, Some(0), "nothing new; the kept delivery went: {err}");
    let delivered = s.receiver.take();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0], refused[0], "the same delivery, id and body");
    let (_, status, _) = s.run(&["watch", "status", "--format", "csv"]).await;
    assert!(status.lines().any(|l| l.starts_with("suspended,") && l.ends_with(",0")), "{status}");

    // The webhook URL's secret is in no output, event or file jcsql wrote.
    let (_, out, err) = s.watch_once().await;
    assert!(!out.contains(SECRET) && !err.contains(SECRET));
    for f in files_under(s.home.path()) {
        let bytes = std::fs::read(&f).expect("read");
        assert!(!String::from_utf8_lossy(&bytes).contains(SECRET), "{} holds the webhook secret", f.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_board_starts_a_new_baseline() {
    let s = Setup::start().await;
    assert_eq!(s.watch_once().await.0, Some(0));
    std::fs::write(
        s.boards.path().join("suspended.sql"),
        "-- key: email\nselect email from jumpcloud.users where suspended order by email\n",
    )
    .expect("board");
    let (code, _, err) = s.watch_once().await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(kinds(&s.events()[2..]), [("suspended".into(), "baseline".into())]);
    assert!(s.receiver.take().is_empty());
    // Neither --every nor --once, and an unparsable webhook URL: usage errors, exit 2.
    assert_eq!(s.run(&["watch", "--all"]).await.0, Some(2));
    let (code, _, err) = s.run(&["watch", "--all", "--once", "--webhook", "not a url"]).await;
    assert_eq!(code, Some(2));
    assert!(!err.contains("not a url"), "{err}");
}

/// Suspends one more active user in the simulated org.
fn suspend_one(s: &Setup) {
    s.sim.with_org_mut(|o| {
        if let Some(u) = o.users.iter_mut().find(|u| !u.suspended) {
            u.suspended = true;
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_retry_after_and_a_watch_that_runs_until_interrupted() {
    let s = Setup::start().await;
    let open = s.suspended().len();
    assert_eq!(s.watch_once().await.0, Some(0));

    // 429 with Retry-After: 1 is retried after that second, with the same delivery.
    s.receiver.answer(&[429]);
    suspend_one(&s);
    let (code, _, err) = s.watch_once().await;
    assert_eq!(code, Some(1), "{err}");
    let times = s.receiver.take_times();
    let posts = s.receiver.take();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].0, posts[1].0);
    assert!(times[1] - times[0] >= std::time::Duration::from_millis(950), "{:?}", times[1] - times[0]);

    // Slack gets `{"text"}` alone, naming the board by its title.
    let slack = s.hook.replace("/hook/", "/hook/slack-");
    suspend_one(&s);
    let (code, _, err) = s.run(&["watch", "--all", "--once", "--slack", &slack]).await;
    assert_eq!(code, Some(1), "{err}");
    let posts = s.receiver.take();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].1, serde_json::json!({"text": format!("Suspended users: 1 added; {} open", open + 2)}));

    // --every runs until Ctrl-C, then exits 0 after the run under way.
    let (args, env) = s.args_and_env(&["watch", "--all", "--every", "1s", "--webhook", &s.hook]);
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_jcsql"));
    cmd.args(&args).envs(env).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("jcsql runs");
    let pid = child.id().to_string();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    // A second watcher on the same home is refused while the first runs.
    let (code, _, err) = s.watch_once().await;
    assert_eq!(code, Some(2));
    assert!(err.contains("another jcsql watch is running on"), "{err}");
    suspend_one(&s);
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    let killed = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill");
    assert!(killed.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("joined").expect("exits");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.lines().filter(|l| l.starts_with("suspended: ")).count() >= 2, "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("suspended: 1 added")).count(), 1, "{err}");
    assert_eq!(s.receiver.take().len(), 1, "the one change, posted once");
}

/// `jcsql demo check` runs the demo's example boards, Google's and the exports' included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_checks_its_boards() {
    let out = spawn_cli(owned(&["demo", "--users", "60", "check", "--all", "--format", "json"]), vec![], None)
        .await
        .expect("joined");
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let boards: Value = serde_json::from_slice(&out.stdout).expect("json");
    let boards = boards.as_array().expect("array");
    assert_eq!(boards.len(), 26);
    assert!(boards.iter().all(|b| b["error"].is_null()), "{boards:?}");
    let without_mfa = boards.iter().find(|b| b["board"] == "users_without_mfa").expect("board");
    assert_eq!(without_mfa["count"], without_mfa["rows"].as_array().map_or(0, Vec::len));
}

/// Boards run side by side; a source that cannot be fetched whole is the error of the boards
/// that read it (here through `user_application_access`) and of no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fetch_is_the_error_of_the_boards_that_read_it_and_of_no_other() {
    let s = Setup::start().await;
    std::fs::write(
        s.boards.path().join("access.sql"),
        "select application_id, count(*) as paths from jumpcloud.user_application_access group by 1 order by 1\n",
    )
    .expect("board");
    std::fs::write(s.boards.path().join("fleet.sql"), "select count(*) as devices from jumpcloud.devices\n")
        .expect("board");
    let boards = ["check", "access", "fleet", "suspended", "--format", "csv"];
    let heads = |out: &str| -> Vec<String> { out.lines().filter(|l| l.contains(": ")).map(str::to_string).collect() };
    let (code, out, err) = s.run(&boards).await;
    assert_eq!(code, Some(1), "{out}{err}");
    assert_eq!(heads(&out).len(), 3, "{out}");
    assert!(heads(&out).iter().all(|h| !h.contains("error")), "{out}");
    // Every run refetches (`--max-age 0`); now the applications' bindings come back short, so
    // the access board is an error even though the last snapshot answered its query.
    s.sim.set_fault("/api/v2/applications/", Fault::DropRecords);
    let (code, out, err) = s.run(&boards).await;
    assert_eq!(code, Some(2), "{out}{err}");
    let heads = heads(&out);
    assert_eq!(heads.len(), 3, "{out}");
    assert!(heads[0].starts_with("access: error: a source could not be fetched: jumpcloud.application_"), "{out}");
    assert_eq!(heads[1], "fleet: 1 row");
    assert_eq!(heads[2], format!("suspended: {} rows", s.suspended().len()));
}

/// With a multi-tenant key, schema `jumpcloud` is the default org's connection, named after
/// the org: a failed fetch there is still the error of the boards that read `jumpcloud.users`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fetch_counts_when_the_default_schema_is_one_of_many_orgs() {
    let mut cfg = SimulatorConfig::new(40, 5);
    cfg.orgs = 2;
    let sim = Simulator::start(cfg).await.expect("sim");
    let home = tempfile::tempdir().expect("home");
    let boards = tempfile::tempdir().expect("boards");
    std::fs::write(boards.path().join("suspended.sql"), "select email from jumpcloud.users where suspended\n")
        .expect("board");
    let env = sim_env(&sim, home.path());
    let run = |args: &[&str]| {
        let mut all = owned(&["--boards", &boards.path().display().to_string(), "--max-age", "0"]);
        all.extend(owned(args));
        spawn_cli(all, env.clone(), None)
    };
    let discovered = run(&["orgs", "discover"]).await.expect("joined");
    assert_eq!(discovered.status.code(), Some(0), "{}", text(&discovered.stderr));
    let first = run(&["check", "suspended"]).await.expect("joined");
    assert_eq!(first.status.code(), Some(1), "{}{}", text(&first.stdout), text(&first.stderr));
    sim.set_fault("/api/systemusers", Fault::DropRecords);
    let failed = run(&["check", "suspended"]).await.expect("joined");
    let out = text(&failed.stdout);
    assert_eq!(failed.status.code(), Some(2), "{out}{}", text(&failed.stderr));
    assert!(out.starts_with("suspended: error: a source could not be fetched: jumpcloud_"), "{out}");
}

//! `jcsql web` (DESIGN §7b): the guards over plain HTTP (token, cookie, Host, CSRF, origin,
//! read-only, refusals, replayed and expired plans), and the whole path in a real headless
//! Chromium through chromedriver: list → board → filter → export → Add field → save → action →
//! plan → confirm → result, against the simulator over HTTP, with its write log checked at
//! each step.

use std::sync::Arc;
use std::time::Duration;

use jcsql::actions::Permissions;
use jcsql::jumpcloud::simulator::{Simulator, SimulatorConfig};
use jcsql::web::{Site, WebOptions, WebServer};
use jcsql::{Engine, EngineOptions};

use crate::common::{fast_client, strings};
use crate::webdriver::Browser;

const TOKEN: &str = "test-token-4f9a2c";

struct Web {
    sim: Simulator,
    engine: Arc<Engine>,
    site: Arc<Site>,
    /// `http://127.0.0.1:PORT`
    base: String,
    dir: tempfile::TempDir,
}

impl Web {
    /// The simulator's writes so far (every request that is not a read; Directory Insights'
    /// event search is a POST that reads).
    fn writes(&self) -> Vec<String> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET" && !r.path.starts_with("/insights/"))
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

async fn start(read_only: bool) -> Web {
    let sim = Simulator::start(SimulatorConfig::new(150, 5)).await.expect("simulator");
    let dir = tempfile::tempdir().expect("dir");
    let sources = sim.with_org(|org| jcsql::cli::workspace::write_demo_workspace(dir.path(), org)).expect("workspace");
    let engine = Engine::new(EngineOptions {
        client: Some(fast_client(sim.base_url(), sim.api_key())),
        cache_dir: Some(dir.path().join("cache")),
        permissions: Permissions::default(),
        audit_log: Some(dir.path().join("audit.jsonl")),
        ..Default::default()
    })
    .await
    .expect("engine");
    for s in &sources {
        assert!(engine.add_source(s).await.error.is_none(), "source {}", s.name);
    }
    engine.load_boards(&dir.path().join("boards")).await;
    let engine = Arc::new(engine);
    let options = WebOptions { host: "127.0.0.1".into(), port: 0, read_only, token: Some(TOKEN.into()), tls: None };
    let server = WebServer::bind(engine.clone(), options).await.expect("web binds");
    let url = server.url().expect("url");
    assert_eq!(url, format!("http://{}/?token={TOKEN}", server.local_addr().expect("addr")));
    let base = url.trim_end_matches(&format!("/?token={TOKEN}")).to_string();
    let site = server.site();
    tokio::spawn(server.run());
    Web { sim, engine, site, base, dir }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

/// Opens the token URL and gives the session cookie (`name=value`).
async fn login(w: &Web) -> String {
    let r = http().get(format!("{}/?token={TOKEN}", w.base)).send().await.expect("login");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let set = r.headers()["set-cookie"].to_str().expect("cookie").to_string();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    set.split(';').next().expect("pair").to_string()
}

async fn get(w: &Web, cookie: &str, path: &str) -> (u16, String) {
    let r = http().get(format!("{}{path}", w.base)).header("cookie", cookie).send().await.expect("get");
    (r.status().as_u16(), r.text().await.expect("body"))
}

async fn post(
    w: &Web,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
    extra: &[(&str, &str)],
) -> (u16, String, String) {
    let mut req = http().post(format!("{}{path}", w.base)).header("cookie", cookie).form(form);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("post");
    let location = r.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or("").to_string();
    (r.status().as_u16(), location, r.text().await.expect("body"))
}

/// The value of `name="NAME" value="…"` in a page (the CSRF token, the plan id).
fn hidden(page: &str, name: &str) -> String {
    let at = page.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no field {name} in {page}"));
    let rest = &page[at + name.len() + 15..];
    rest[..rest.find('"').expect("quote")].to_string()
}

/// The one-sentence message of an error page.
fn error_of(page: &str) -> String {
    let at = page.find("<p id=\"error\">").unwrap_or_else(|| panic!("no error in {page}"));
    let rest = &page[at + 14..];
    rest[..rest.find("</p>").expect("end")].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_token_cookie_or_host_get_403_and_no_data() {
    let w = start(false).await;
    let (status, body) = get(&w, "", "/").await;
    assert_eq!(status, 403);
    assert!(!body.contains("users_without_mfa") && !body.contains("@"), "{body}");
    assert_eq!(error_of(&body), "open the URL jcsql web printed (with its token) to use this page");
    let (status, _) = get(&w, "", "/boards/users_without_mfa.csv").await;
    assert_eq!(status, 403);
    let r = http().get(format!("{}/?token=wrong", w.base)).send().await.expect("get");
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("set-cookie").is_none());
    let (status, _) = get(&w, "jcsql_session=forged", "/").await;
    assert_eq!(status, 403);

    let cookie = login(&w).await;
    // The token URL opens again while the server runs (a second session).
    let second = login(&w).await;
    assert_ne!(cookie, second);
    let (status, body) = get(&w, &cookie, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("<table id=\"boards\">") && body.contains("data-board=\"users_without_mfa\""));
    assert!(!body.contains(TOKEN), "the token is in no page");
    // DNS rebinding: another Host name is refused even with the cookie.
    let r = http()
        .get(format!("{}/", w.base))
        .header("cookie", &cookie)
        .header("host", "evil.example:80")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 403);
    let body = r.text().await.expect("body");
    assert!(!body.contains("data-board"), "{body}");
    // `localhost` is a loopback name.
    let r = http().get(format!("{}/", w.base)).header("cookie", &cookie).header("host", "localhost").send().await;
    assert_eq!(r.expect("get").status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_cross_site_posts_write_nothing_and_bad_input_says_why() {
    let w = start(false).await;
    let cookie = login(&w).await;
    let (_, form) = get(&w, &cookie, "/actions/add_user_to_group").await;
    let csrf = hidden(&form, "csrf");
    let user = strings(&w.engine, "select email from jumpcloud.users order by email limit 1").await[0][0].clone();
    let group = strings(&w.engine, "select name from jumpcloud.user_groups order by name limit 1").await[0][0].clone();
    let fields = [("user", user.as_str()), ("group", group.as_str())];

    // No CSRF token, a wrong one, another session's, another origin, another site: 403.
    let other = login(&w).await;
    let (_, other_form) = get(&w, &other, "/actions/add_user_to_group").await;
    let other_csrf = hidden(&other_form, "csrf");
    for (form, extra) in [
        (vec![], vec![]),
        (vec![("csrf", "0000")], vec![]),
        (vec![("csrf", other_csrf.as_str())], vec![]),
        (vec![("csrf", csrf.as_str())], vec![("origin", "http://evil.example")]),
        (vec![("csrf", csrf.as_str())], vec![("sec-fetch-site", "cross-site")]),
    ] {
        let mut all: Vec<(&str, &str)> = fields.to_vec();
        all.extend(form);
        let (status, _, body) = post(&w, &cookie, "/actions/add_user_to_group", &all, &extra).await;
        assert_eq!(status, 403, "{body}");
        assert_eq!(
            error_of(&body),
            "this form was refused: it did not come from this page; reload the page and submit it again"
        );
    }
    assert!(w.site.engine.actions().pending().show("x", "y").is_err());
    assert_eq!(w.writes(), Vec::<String>::new());

    // An input that resolves to nobody: 422, nothing planned.
    let with_csrf = [("user", "nobody@nowhere.example"), ("group", group.as_str()), ("csrf", csrf.as_str())];
    let (status, _, body) = post(&w, &cookie, "/actions/add_user_to_group", &with_csrf, &[]).await;
    assert_eq!(status, 422, "{body}");
    assert!(error_of(&body).starts_with("nothing to apply: error: "), "{}", error_of(&body));
    // A disabled action: refused, with how to enable it.
    let (status, body) = get(&w, &cookie, "/actions/suspend_user").await;
    assert_eq!(status, 403);
    assert!(error_of(&body).contains("jcsql permissions enable suspend_user"), "{body}");
    let (status, _, _) =
        post(&w, &cookie, "/actions/suspend_user", &[("user", user.as_str()), ("csrf", csrf.as_str())], &[]).await;
    assert_eq!(status, 403);

    // A plan, confirmed once: exactly one write; a replay and an expired plan write nothing.
    let ok = [("user", user.as_str()), ("group", group.as_str()), ("csrf", csrf.as_str())];
    let (status, location, _) = post(&w, &cookie, "/actions/add_user_to_group", &ok, &[]).await;
    assert_eq!(status, 303);
    let id = location.trim_start_matches("/plans/").to_string();
    assert_eq!(w.writes(), Vec::<String>::new(), "planning writes nothing");
    // Another session cannot see or confirm it.
    let (status, _) = get(&w, &other, &location).await;
    assert_eq!(status, 404);
    let (status, _, _) = post(&w, &other, &location, &[("csrf", &other_csrf), ("plan", &id)], &[]).await;
    assert_eq!(status, 404);
    let confirm = [("csrf", csrf.as_str()), ("plan", id.as_str())];
    let (status, back, _) = post(&w, &cookie, &location, &confirm, &[]).await;
    assert_eq!((status, back.as_str()), (303, location.as_str()));
    let writes = w.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert!(writes[0].starts_with("POST /api/v2/usergroups/") && writes[0].ends_with("/members"), "{writes:?}");
    let (status, _, body) = post(&w, &cookie, &location, &confirm, &[]).await;
    assert_eq!(status, 409);
    assert_eq!(error_of(&body), "this plan was already applied; nothing was applied again");
    let (status, page) = get(&w, &cookie, &location).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<td class=\"status\">already_member</td>") || page.contains("<td class=\"status\">added</td>")
    );
    let (_, location, _) = post(&w, &cookie, "/actions/add_user_to_group", &ok, &[]).await;
    w.engine.actions().pending().age_all(Duration::from_secs(11 * 60));
    let id = location.trim_start_matches("/plans/").to_string();
    let (status, _, body) = post(&w, &cookie, &location, &[("csrf", &csrf), ("plan", &id)], &[]).await;
    assert_eq!(status, 410);
    assert!(error_of(&body).starts_with("this plan expired after 10 minutes"), "{body}");
    assert_eq!(w.writes().len(), 1);

    // Bad requests: a page that says why, 4xx.
    let (status, body) = get(&w, &cookie, "/boards/no_such_board").await;
    assert_eq!(status, 404);
    assert!(error_of(&body).starts_with("there is no board named no_such_board; the boards are "), "{body}");
    let (status, body) = get(&w, &cookie, "/boards/users_without_mfa?f.nope=1").await;
    assert_eq!(status, 400);
    assert_eq!(
        error_of(&body),
        "cannot filter by nope: there is no such column; the columns are email, displayname, department, created"
    );
    let (status, body) = get(&w, &cookie, "/boards/users_without_mfa?sort=nope").await;
    assert_eq!(status, 400);
    assert!(error_of(&body).starts_with("cannot sort by nope"), "{body}");
    let (status, body) = get(&w, &cookie, "/boards/users_without_mfa?add=hr.nope").await;
    assert_eq!(status, 400);
    assert_eq!(error_of(&body), "hr.nope is not a field that joins to this board; Add field lists those that do");
    std::fs::write(w.dir.path().join("boards/broken.sql"), "select nope from jumpcloud.users").expect("write");
    w.engine.load_boards(&w.dir.path().join("boards")).await;
    let (status, body) = get(&w, &cookie, "/boards/broken").await;
    assert_eq!(status, 422);
    assert!(error_of(&body).starts_with("board broken cannot run: "), "{body}");
    for (sql, status, said) in [
        (
            "drop table jumpcloud.users",
            403,
            "DROP is refused: this page only reads (SELECT …); change data from the jcsql prompt",
        ),
        (
            "copy (select 1) to '/tmp/x.csv'",
            403,
            "COPY is refused: this page only reads (SELECT …); change data from the jcsql prompt",
        ),
        (
            "set datafusion.execution.batch_size = 1",
            403,
            "SET is refused: this page only reads (SELECT …); change data from the jcsql prompt",
        ),
        (
            "select suspend_user('x')",
            403,
            "the action suspend_user is refused here: start it from Integration actions, where it is planned and confirmed",
        ),
        ("select 1; select 2", 403, "one query at a time: this text holds 2 statements; run them one by one"),
    ] {
        let path = format!("/sql?{}", form_urlencoded::Serializer::new(String::new()).append_pair("sql", sql).finish());
        let (got, body) = get(&w, &cookie, &path).await;
        assert_eq!((got, error_of(&body).replace("&amp;", "&")), (status, said.to_string()), "{sql}");
    }
    let (status, body) = get(&w, &cookie, "/sql?sql=select+nope+from+jumpcloud.users").await;
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("nope"), "{body}");
    let (status, body) = get(&w, &cookie, "/sql?sql=select+count(*)+as+n+from+jumpcloud.users").await;
    assert_eq!(status, 200);
    assert!(body.contains("<td>150</td>"), "{body}");
    assert_eq!(w.writes().len(), 1, "nothing above wrote");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_shows_no_actions_and_refuses_their_posts() {
    let w = start(true).await;
    let cookie = login(&w).await;
    let (status, page) = get(&w, &cookie, "/boards/users_in_no_group").await;
    assert_eq!(status, 200);
    assert!(!page.contains("data-action=") && !page.contains("id=\"actions\"") && !page.contains("row-action"));
    assert!(page.contains("id=\"read-only\""));
    let csrf = hidden(&page, "csrf");
    for path in ["/actions", "/actions/add_user_to_group"] {
        let (status, body) = get(&w, &cookie, path).await;
        assert_eq!(status, 403, "{path}");
        assert_eq!(error_of(&body), "this page is read-only (--read-only): actions are not offered");
    }
    let (status, _, _) =
        post(&w, &cookie, "/actions/create_user_group", &[("name", "Web"), ("csrf", csrf.as_str())], &[]).await;
    assert_eq!(status, 403);
    assert_eq!(w.writes(), Vec::<String>::new());
}

/// The rows of `table#rows` as the browser shows them (cells' text).
async fn shown_rows(b: &mut Browser) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for tr in b.find_all("table#rows tbody tr").await {
        let mut row = Vec::new();
        for td in b.find_all_in(Some(&tr), "td").await {
            row.push(b.text_of(&td).await);
        }
        out.push(row);
    }
    out
}

/// Waits for a navigation (a form's POST and its redirect) to land on `path`.
async fn wait_for(b: &mut Browser, path: &str) {
    for _ in 0..100 {
        if b.path().await == path {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the browser is at {} (wanted {path}): {}", b.path().await, b.text("main").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_list_board_filter_export_add_field_save_act_plan_confirm() {
    let _alone = crate::common::exclusive().await;
    let w = start(false).await;
    let mut b = Browser::start().await;
    let b = &mut b;
    let e = &w.engine;

    // List.
    b.goto(&format!("{}/?token={TOKEN}", w.base)).await;
    assert_eq!(b.path().await, "/", "the token is dropped from the address");
    let expected = strings(e, "select count(*) from boards.users_without_mfa").await[0][0].clone();
    assert_eq!(b.text("tr[data-board=users_without_mfa] td.rows").await, expected);

    // Board: the first page in the board's own order, keyed by email.
    b.click("tr[data-board=users_without_mfa] td.title a").await;
    wait_for(b, "/boards/users_without_mfa").await;
    assert_eq!(b.text("#row-count").await, format!("{expected} rows"));
    let want =
        strings(e, "select email, displayname, department, cast(created as varchar) from boards.users_without_mfa")
            .await;
    let got = shown_rows(b).await;
    assert_eq!(got.len(), want.len().min(100));
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g[0..3], w[0..3]);
    }
    let first = b.find("table#rows tbody tr").await;
    assert_eq!(b.attribute(&first, "data-key").await.as_deref(), Some(want[0][0].as_str()));
    assert!(b.text("#freshness").await.starts_with("data as of "));

    // Filter by a facet: the count and rows are the department's.
    let department = strings(
        e,
        "select department from boards.users_without_mfa where department is not null group by 1 order by count(*) desc, 1 limit 1",
    )
    .await[0][0]
        .clone();
    let link = format!(".facet[data-column=department] a[href$='f.department={}']", department.replace(' ', "+"));
    b.click(&link).await;
    wait_for(b, &format!("/boards/users_without_mfa?f.department={}", department.replace(' ', "+"))).await;
    let n =
        strings(e, &format!("select count(*) from boards.users_without_mfa where department = '{department}'")).await;
    assert_eq!(b.text("#row-count").await, format!("{} rows", n[0][0]));
    assert!(shown_rows(b).await.iter().all(|r| r[2] == department));

    // Export under the same filter: every row, as JSON objects.
    let export = b.find("a#export-json").await;
    let json_href = b.attribute(&export, "href").await;
    assert!(json_href.as_deref().is_some_and(|h| h.contains("f.department=")), "{json_href:?}");
    b.click("a#export-json").await;
    let body = b.text("body").await;
    let exported: Vec<serde_json::Value> = serde_json::from_str(&body).expect("json array");
    assert_eq!(exported.len().to_string(), n[0][0]);
    assert!(exported.iter().all(|o| o["department"] == department.as_str()));
    b.back().await;

    // Add field: hr's employee_id joins on email; shown as a column with hr's values.
    b.goto(&format!("{}/boards/users_without_mfa", w.base)).await;
    let offered = b.text("#add-field").await;
    assert!(offered.contains("hr.employee_id") && offered.contains("hr.full_name"), "{offered}");
    b.click("a.add-field[data-field='hr.employee_id']").await;
    wait_for(b, "/boards/users_without_mfa?add=hr.employee_id").await;
    let mut headers = Vec::new();
    for th in b.find_all("table#rows thead th").await {
        headers.push(b.text_of(&th).await);
    }
    assert_eq!(headers[..5], ["email", "displayname", "department", "created", "employee_id"]);
    let joined = strings(
        e,
        "select b.email, h.employee_id from boards.users_without_mfa b left join hr h on lower(h.email) = lower(b.email)",
    )
    .await;
    for row in shown_rows(b).await.iter().take(20) {
        let hr = joined.iter().find(|j| j[0] == row[0]).expect("row");
        assert_eq!(row[4], hr[1], "{row:?}");
    }

    // Save: a new board file; the original untouched.
    let original = std::fs::read(w.dir.path().join("boards/users_without_mfa.sql")).expect("original");
    b.type_into("#save-board input[name=name]", "without_mfa_with_ids").await;
    b.click("#save-board button#save").await;
    wait_for(b, "/boards/without_mfa_with_ids").await;
    assert!(b.text("#freshness").await.starts_with("data as of "), "it reads the same tables");
    assert_eq!(b.text("#row-count").await, format!("{expected} rows"));
    assert_eq!(std::fs::read(w.dir.path().join("boards/users_without_mfa.sql")).expect("original"), original);
    let saved = std::fs::read_to_string(w.dir.path().join("boards/without_mfa_with_ids.sql")).expect("saved");
    assert!(saved.starts_with("-- title: Active users without MFA with employee_id\n-- key: email\n"), "{saved}");
    assert_eq!(strings(e, "select count(employee_id) > 0 from boards.without_mfa_with_ids").await, [["true"]]);

    // Act on a row: the user is pre-filled; plan; nothing is written until confirm.
    b.goto(&format!("{}/boards/users_in_no_group", w.base)).await;
    let row = b.find("table#rows tbody tr").await;
    let user = b.attribute(&row, "data-key").await.expect("data-key");
    b.click("table#rows tbody tr a.row-action").await;
    b.click("a[data-action=add_user_to_group]").await;
    let input = b.find("#action-form input[name=user]").await;
    assert_eq!(b.property(&input, "value").await.as_deref(), Some(user.as_str()));
    let group = strings(e, "select name from jumpcloud.user_groups order by name limit 1").await[0][0].clone();
    b.type_into("#action-form input[name=group]", &group).await;
    b.click("button#plan").await;
    let call = b.text("#plan li.call").await;
    let user_id = strings(e, &format!("select id from jumpcloud.users where email = '{user}'")).await[0][0].clone();
    let group_id =
        strings(e, &format!("select id from jumpcloud.user_groups where name = '{group}'")).await[0][0].clone();
    assert_eq!(call, format!("#1 add_user_to_group user {user} (id {user_id}), group {group} (id {group_id})"));
    assert_eq!(w.writes(), Vec::<String>::new(), "no write before confirm");

    // Confirm: exactly one write, the result shown, and the board patched.
    b.click("button#confirm").await;
    assert_eq!(b.text("table#results td.status").await, "added");
    assert_eq!(w.writes(), [format!("POST /api/v2/usergroups/{group_id}/members")]);
    // Reloading the result page (GET) applies nothing again.
    b.refresh().await;
    assert_eq!(b.text("table#results td.status").await, "added");
    assert_eq!(w.writes().len(), 1);
    b.click("a#back").await;
    wait_for(b, "/boards/users_in_no_group").await;
    let mut keys = Vec::new();
    for tr in b.find_all("table#rows tbody tr").await {
        keys.push(b.attribute(&tr, "data-key").await);
    }
    assert!(!keys.is_empty() && !keys.contains(&Some(user.clone())), "the patched cache no longer lists {user}");

    // The board page as the README shows it.
    b.goto(&format!("{}/boards/users_without_mfa?add=hr.employee_id", w.base)).await;
    let png = b.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-board.png"), png).expect("png");
}

/// Sends one HTTP request over TLS with `openssl s_client` and gives the response's head.
fn over_tls(port: u16, request: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(["s_client", "-quiet", "-connect", &format!("127.0.0.1:{port}")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl runs (tests/run installs it)");
    child.stdin.take().expect("stdin").write_all(request.as_bytes()).expect("request");
    let out = child.wait_with_output().expect("openssl ends");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn jcsql_web_prints_its_url_first_and_needs_tls_off_loopback() {
    use std::io::BufRead;
    let home = tempfile::tempdir().expect("home");
    let env = [("JCSQL_HOME", home.path().to_str().expect("path")), ("JCSQL_WEB_TOKEN", TOKEN)];
    let out = crate::common::jcsql(&["demo", "--users", "30", "web", "--host", "0.0.0.0", "--port", "0"], &env, None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        crate::common::text(&out.stderr),
        "Error: serving the web page on 0.0.0.0 needs --tls-cert and --tls-key: off this machine, queries and answers would cross the network unencrypted (or use --host 127.0.0.1)\n"
    );

    let (cert, key) = (home.path().join("cert.pem"), home.path().join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl runs");
    assert!(made.success());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_jcsql"))
        .args(["demo", "--users", "30", "web", "--port", "0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .envs(env)
        .env_remove("JUMPCLOUD_API_KEY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("jcsql demo web starts");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("first line");
    let port: u16 = first
        .trim()
        .strip_prefix("https://127.0.0.1:")
        .and_then(|r| r.strip_suffix(&format!("/?token={TOKEN}")))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("first line: {first}"));
    let opened =
        over_tls(port, &format!("GET /?token={TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"));
    assert!(opened.starts_with("HTTP/1.1 303"), "{opened}");
    assert!(opened.to_lowercase().contains("set-cookie: jcsql_session="), "{opened}");
    assert!(opened.contains("HttpOnly; SameSite=Strict; Path=/; Secure"), "over TLS the cookie is Secure: {opened}");
    let refused = over_tls(port, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
    let _ = child.kill();
    let out = child.wait_with_output().expect("ends");
    let stderr = crate::common::text(&out.stderr);
    assert!(stderr.contains("jcsql web: ") && !stderr.contains(TOKEN), "{stderr}");
}

/// The `data-key` of each row of a page, in order.
fn keys_of(page: &str) -> Vec<String> {
    page.split("<tr data-key=\"").skip(1).map(|r| r[..r.find('"').expect("quote")].to_string()).collect()
}

fn first_cells(page: &str) -> Vec<String> {
    page.split("<tr data-key=\"")
        .skip(1)
        .map(|r| {
            let cell = &r[r.find("<td>").expect("cell") + 4..];
            cell[..cell.find("</td>").expect("end")].to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_sorts_facets_and_exports_are_the_engines_answers() {
    let w = start(false).await;
    let cookie = login(&w).await;
    let e = &w.engine;
    // Pages of 100 in the table's key order: every row once.
    let (_, one) = get(&w, &cookie, "/tables/jumpcloud.users").await;
    let (_, two) = get(&w, &cookie, "/tables/users?page=2").await;
    let (a, b) = (keys_of(&one), keys_of(&two));
    assert_eq!((a.len(), b.len()), (100, 50));
    let ids: Vec<String> =
        strings(e, "select id from jumpcloud.users order by id").await.into_iter().map(|r| r[0].clone()).collect();
    assert_eq!([a, b].concat(), ids);
    assert!(one.contains("<p id=\"row-count\">150 rows</p>"));
    assert!(two.contains("href=\"/tables/jumpcloud.users?page=1\"") || two.contains("id=\"prev\""));
    // Sort by a column, descending.
    let (_, sorted) = get(&w, &cookie, "/tables/jumpcloud.users?sort=email&dir=desc").await;
    let top: Vec<String> = strings(e, "select id from jumpcloud.users order by email desc, id limit 100")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(keys_of(&sorted), top);
    // One column twice is OR, two columns AND; the count is the engine's.
    let path = "/boards/users_in_no_group?f.state=ACTIVATED&f.state=STAGED&f.department=Sales";
    let (status, page) = get(&w, &cookie, path).await;
    assert_eq!(status, 200);
    let n = strings(
        e,
        "select count(*) from boards.users_in_no_group where state in ('ACTIVATED', 'STAGED') and department = 'Sales'",
    )
    .await[0][0]
        .clone();
    assert!(page.contains(&format!("<p id=\"row-count\">{n} rows</p>")), "{page}");
    assert!(first_cells(&page).iter().all(|c| c.contains('@')));
    // A facet's counts are under the other columns' filters: state's values add to the count
    // of the department filter alone.
    let by_state = strings(
        e,
        "select coalesce(state, ''), count(*) from boards.users_in_no_group where department = 'Sales' group by 1 order by 2 desc, 1",
    )
    .await;
    for row in &by_state {
        let link = format!("f.state={}", row[0]);
        assert!(page.contains(&link), "facet {link} in {page}");
    }
    // Exports: every row under the filters, CSV with a header, NDJSON a line each.
    let r = http()
        .get(format!("{}{}", w.base, path.replacen("users_in_no_group", "users_in_no_group.csv", 1)))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("csv");
    assert_eq!(r.headers()["content-type"], "text/csv; charset=utf-8");
    assert_eq!(r.headers()["content-disposition"], "attachment; filename=\"users_in_no_group.csv\"");
    let csv = r.text().await.expect("body");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("email,state,department"));
    assert_eq!(lines.count().to_string(), n);
    let (_, ndjson) = get(&w, &cookie, "/tables/jumpcloud.users.ndjson?q=acme&sort=email").await;
    let emails: Vec<String> = ndjson
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("object")["email"].as_str().unwrap_or("").to_string()
        })
        .collect();
    let want: Vec<String> = strings(e, "select email from jumpcloud.users where strpos(lower(email), 'acme') > 0 or strpos(lower(username), 'acme') > 0 order by email, id")
        .await
        .into_iter()
        .map(|r| r[0].clone())
        .collect();
    assert_eq!(emails, want);
    // NULL is an empty cell.
    let (_, nulls) = get(&w, &cookie, "/sql?sql=select+'x'+as+a,+cast(null+as+varchar)+as+b").await;
    assert!(nulls.contains("<td>x</td><td></td>"), "{nulls}");
}

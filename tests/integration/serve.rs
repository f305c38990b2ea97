//! `jcsql serve`: the real psql and pgbench against the server on 127.0.0.1:0, in-process
//! beside the simulator (so the test sees every request the server caused).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use jcsql::jumpcloud::simulator::SimulatorConfig;
use jcsql::serve::{ServeOptions, Server, TlsFiles};

use crate::common::{self, TestOrg, text};

pub const PASSWORD: &str = "s3rve-test-pw";

/// Starts the server on the test org's engine; returns its URL.
pub async fn serving(t: &TestOrg) -> String {
    let options = ServeOptions { host: "127.0.0.1".into(), port: 0, password: PASSWORD.into(), tls: None };
    let server = Server::bind(&t.engine, options).await.expect("server binds");
    let url = server.url().expect("url");
    tokio::spawn(server.run());
    url
}

pub async fn run(program: &'static str, args: Vec<String>, password: &str) -> Output {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        Command::new(program)
            .args(&args)
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGSERVICE")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{program} does not run ({e}): tests/run installs it"))
    })
    .await
    .expect("client finishes")
}

/// psql, unaligned and tuples only, stopping at the first error.
pub async fn psql(url: &str, sql: &str) -> Output {
    let args = ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-d", url, "-c", sql];
    run("psql", args.iter().map(|s| s.to_string()).collect(), PASSWORD).await
}

pub async fn psql_ok(url: &str, sql: &str) -> String {
    let out = psql(url, sql).await;
    assert!(out.status.success(), "{sql}: {}", text(&out.stderr));
    text(&out.stdout).trim_end().to_string()
}

fn rows_of(t: &TestOrg, table: &str) -> usize {
    t.sim.with_org(|o| o.rows_of(table)).expect("known table")
}

fn boards_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/boards")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn psql_sees_the_tables_the_boards_and_the_catalog() {
    let t = common::start(150).await;
    t.engine.load_boards(&boards_dir()).await;
    let url = serving(&t).await;

    for table in ["users", "user_groups", "user_group_members", "devices", "applications"] {
        let n = psql_ok(&url, &format!("select count(*) from jumpcloud.{table}")).await;
        assert_eq!(n, rows_of(&t, table).to_string(), "{table}");
    }
    // A board answers what it answers in-process.
    let board = "select name from boards.empty_device_groups order by name";
    let expected: Vec<String> = common::strings(&t.engine, board).await.into_iter().map(|r| r.join("|")).collect();
    assert_eq!(expected.len(), 2);
    assert_eq!(psql_ok(&url, board).await, expected.join("\n"));

    // psql's meta-commands.
    let described = psql_ok(&url, r"\d jumpcloud.users").await;
    for line in ["id|text", "email|text", "suspended|boolean", "created|timestamp with time zone"] {
        assert!(described.lines().any(|l| l.starts_with(line)), "\\d shows {line}:\n{described}");
    }
    let tables = psql_ok(&url, r"\dt jumpcloud.*").await;
    assert_eq!(tables.lines().count(), jcsql::jumpcloud::tables::all_tables().len(), "{tables}");
    assert!(tables.lines().any(|l| l.starts_with("jumpcloud|users|table|")), "{tables}");
    let schemas = psql_ok(&url, r"\dn").await;
    for schema in ["boards", "changes", "jcsql", "jumpcloud"] {
        assert!(schemas.lines().any(|l| l.starts_with(&format!("{schema}|"))), "\\dn lists {schema}:\n{schemas}");
    }
    let views = psql_ok(&url, r"\dv boards.*").await;
    let loaded =
        common::count(&t.engine, "select count(*) from information_schema.views where table_schema = 'boards'").await;
    assert_eq!(loaded, 18, "the 26 example boards but the 3 that read exports and the 5 that read Google");
    assert_eq!(views.lines().count(), 18, "{views}");
    assert!(psql(&url, r"\l").await.status.success());

    // Parameters over the extended protocol, typed by the column they meet.
    let pattern = psql_ok(&url, "select count(*) from jumpcloud.users where email like '%@%'").await;
    assert_eq!(pattern, rows_of(&t, "users").to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_statements_bi_tools_send_on_connect_are_answered() {
    let t = common::start(40).await;
    let url = serving(&t).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/client_startup.sql");
    let statements = std::fs::read_to_string(&script).expect("script").matches(";\n").count();
    assert_eq!(statements, 30);
    // Simple protocol (psql), then extended and prepared (pgbench, as JDBC drivers send them).
    let args = vec!["-X".into(), "-q".into(), "-v".into(), "ON_ERROR_STOP=1".into(), "-d".into(), url.clone()];
    let out = run("psql", [args, vec!["-f".into(), script.display().to_string()]].concat(), PASSWORD).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    for mode in ["extended", "prepared"] {
        let out = pgbench(&url, &script, mode, 1, 1).await;
        assert!(
            text(&out.stdout).contains("number of transactions actually processed: 1/1"),
            "{mode}: {}",
            text(&out.stderr)
        );
    }
}

async fn pgbench(url: &str, script: &Path, mode: &str, clients: usize, transactions: usize) -> Output {
    let args = [
        "-n".to_string(),
        "-M".into(),
        mode.into(),
        "-c".into(),
        clients.to_string(),
        "-j".into(),
        "2".into(),
        "-t".into(),
        transactions.to_string(),
        "-f".into(),
        script.display().to_string(),
        url.into(),
    ];
    let out = run("pgbench", args.to_vec(), PASSWORD).await;
    assert!(out.status.success(), "pgbench -M {mode}: {}{}", text(&out.stdout), text(&out.stderr));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pgbench_runs_in_every_protocol_mode() {
    let t = common::start(60).await;
    let url = serving(&t).await;
    let dir = tempfile::tempdir().expect("dir");
    let script = dir.path().join("reads.sql");
    std::fs::write(
        &script,
        "\\set n random(1, 9)\n\
         select email from jumpcloud.users where email like :n || '%' order by email limit 5;\n\
         select count(*) from jumpcloud.user_group_members m join jumpcloud.users u on u.id = m.user_id where not u.suspended;\n",
    )
    .expect("script");
    for mode in ["simple", "extended", "prepared"] {
        let out = pgbench(&url, &script, mode, 4, 10).await;
        let report = text(&out.stdout);
        assert!(report.contains("number of transactions actually processed: 40/40"), "{mode}: {report}");
        assert!(report.contains("number of failed transactions: 0 (0.000%)"), "{mode}: {report}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_statements_return_their_sqlstate_and_change_nothing() {
    let t = common::start(30).await;
    t.engine.load_boards(&boards_dir()).await;
    let url = serving(&t).await;
    let users = psql_ok(&url, "select count(*) from jumpcloud.users").await;
    let user_id = psql_ok(&url, "select id from jumpcloud.users order by id limit 1").await;
    t.sim.clear_requests();

    let refused = [
        ("create table t as select 1", "25006", "cannot execute CREATE TABLE in a read-only transaction"),
        ("create view boards.mine as select 1", "25006", "cannot execute CREATE VIEW in a read-only transaction"),
        ("drop view boards.empty_device_groups", "25006", "cannot execute DROP VIEW in a read-only transaction"),
        ("insert into jumpcloud.users (id) values ('x')", "25006", "cannot execute INSERT in a read-only transaction"),
        ("delete from jumpcloud.users", "25006", "cannot execute DELETE in a read-only transaction"),
        ("update jumpcloud.users set email = 'x'", "25006", "cannot execute UPDATE in a read-only transaction"),
        (
            "copy jumpcloud.users to '/tmp/jcsql-serve-copy.csv'",
            "25006",
            "cannot execute COPY in a read-only transaction",
        ),
        ("set datafusion.execution.batch_size = 7", "25006", "cannot execute SET in a read-only transaction"),
        (&format!("select suspend_user('{user_id}')"), "42501", "permission denied for action suspend_user"),
        ("select create_user_group('Serve')", "42501", "permission denied for action create_user_group"),
        (
            &format!("select remove_user_from_group(id, 'Engineering') from jumpcloud.users where id = '{user_id}'"),
            "42501",
            "permission denied for action remove_user_from_group",
        ),
    ];
    for (sql, code, message) in refused {
        let out = psql(&url, sql).await;
        assert!(!out.status.success(), "{sql} was not refused");
        let err = text(&out.stderr);
        assert!(err.contains(&format!("ERROR:  {code}: {message}")), "{sql}: {err}");
    }
    // Clients' own settings are accepted and stay with their connection.
    psql_ok(&url, "set application_name = 'Metabase'").await;
    psql_ok(&url, "set extra_float_digits = 3").await;

    // Errors a user makes get the codes and hints of the prompt.
    let err = text(&psql(&url, "select * from jumpcloud.userz").await.stderr);
    assert!(err.contains("ERROR:  42P01: unknown table jumpcloud.userz; did you mean jumpcloud.users?"), "{err}");
    let err = text(&psql(&url, "select emial from jumpcloud.users").await.stderr);
    assert!(err.contains("ERROR:  42703: unknown column emial (did you mean email?)"), "{err}");
    let err = text(&psql(&url, "selec 1").await.stderr);
    assert!(err.contains("ERROR:  42601: syntax error"), "{err}");

    // Nothing but reads reached JumpCloud, and nothing changed.
    let writes: Vec<_> = t.sim.requests().into_iter().filter(|r| r.method != "GET").collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(psql_ok(&url, "select count(*) from jumpcloud.users").await, users);
    assert_eq!(psql_ok(&url, "select count(*) from jcsql.boards").await, "26");
    assert!(t.engine.actions().read_audit().is_empty());
    assert_eq!(t.engine.context().state().config().options().execution.batch_size.get(), 8192);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_password_or_user_is_refused() {
    let t = common::start(10).await;
    let url = serving(&t).await;
    let out = run("psql", vec!["-X".into(), "-d".into(), url.clone(), "-c".into(), "select 1".into()], "wrong").await;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("password authentication failed for user \"jcsql\""), "{}", text(&out.stderr));
    let other = url.replace("jcsql@", "postgres@");
    let out = run("psql", vec!["-X".into(), "-d".into(), other, "-c".into(), "select 1".into()], PASSWORD).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("password authentication failed for user \"postgres\""),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_share_one_refresh_and_all_get_the_answer() {
    let t = common::start_with(SimulatorConfig::new(250, 3), |_| {}).await;
    let url = serving(&t).await;
    t.sim.clear_requests();
    let sql = "select count(*), count(distinct m.group_id) from jumpcloud.users u \
               left join jumpcloud.user_group_members m on m.user_id = u.id where u.email like '%@%'";
    let clients: Vec<_> = (0..64)
        .map(|_| {
            tokio::spawn({
                let url = url.clone();
                async move { psql(&url, sql).await }
            })
        })
        .collect();
    let mut answers = Vec::new();
    for c in clients {
        let out = c.await.expect("client");
        assert!(out.status.success(), "{}", text(&out.stderr));
        answers.push(text(&out.stdout).trim().to_string());
    }
    let expected = common::strings(&t.engine, sql).await[0].join("|");
    assert!(answers.iter().all(|a| *a == expected), "{expected} vs {answers:?}");
    // One fetch of users for all 64 (3 pages of 100), not one per client.
    let user_pages = t.sim.requests().iter().filter(|r| r.path == "/api/systemusers").count();
    assert_eq!(user_pages, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_is_required_off_loopback_and_works_when_given() {
    let t = common::start(10).await;
    let options = ServeOptions { host: "0.0.0.0".into(), port: 0, password: PASSWORD.into(), tls: None };
    let err = Server::bind(&t.engine, options).await.err().expect("refused").to_string();
    assert!(err.contains("serving on 0.0.0.0 needs --tls-cert and --tls-key"), "{err}");

    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-keyout", &key.display().to_string(), "-out", &cert.display().to_string()])
        .output()
        .expect("openssl runs");
    assert!(made.status.success(), "{}", text(&made.stderr));
    let tls = Some(TlsFiles { cert, key });
    let options = ServeOptions { host: "127.0.0.1".into(), port: 0, password: PASSWORD.into(), tls };
    let server = Server::bind(&t.engine, options).await.expect("binds with TLS");
    let url = format!("{}?sslmode=require", server.url().expect("url"));
    tokio::spawn(server.run());
    let ssl = psql_ok(&url, "select count(*) from jumpcloud.users").await;
    assert_eq!(ssl, rows_of(&t, "users").to_string());
    let out = psql(&url, r"\conninfo").await;
    assert!(text(&out.stdout).contains("SSL connection (protocol: TLSv1.3"), "{}", text(&out.stdout));
}

/// `jcsql serve` as users start it: the first line, a generated 0600 password, the key unseen.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jcsql_serve_prints_its_url_first_and_keeps_the_key_and_password_out_of_its_output() {
    use std::io::{BufRead, Read};
    let t = common::start(20).await;
    let home = tempfile::tempdir().expect("home");
    let mut child = Command::new(env!("CARGO_BIN_EXE_jcsql"))
        .args(["serve", "--port", "0"])
        .env("JCSQL_HOME", home.path())
        .env("JUMPCLOUD_API_KEY", t.sim.api_key())
        .env("JUMPCLOUD_API_URL", t.sim.base_url())
        .env_remove("JCSQL_SERVE_PASSWORD")
        .env_remove("JUMPCLOUD_ORG_ID")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("jcsql serve starts");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        stdout.read_line(&mut line).map(|_| line)
    })
    .await
    .expect("reader")
    .expect("first line");
    let url = first.trim().to_string();
    assert!(url.starts_with("postgres://jcsql@127.0.0.1:") && url.ends_with("/jcsql"), "{url}");

    let password_file = home.path().join("serve-password");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&password_file).expect("password saved").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let password = std::fs::read_to_string(&password_file).expect("password").trim().to_string();
    assert_eq!(password.len(), 24);
    let args = vec!["-X".into(), "-A".into(), "-t".into(), "-d".into(), url.clone(), "-c".into()];
    let out = run("psql", [args, vec!["select count(*) from jumpcloud.users".into()]].concat(), &password).await;
    assert_eq!(text(&out.stdout).trim(), "20", "{}", text(&out.stderr));

    let _ = child.kill();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    let _ = child.wait();
    assert!(err.contains("password generated and saved in"), "{err}");
    for secret in [t.sim.api_key(), password.as_str()] {
        assert!(!err.contains(secret) && !first.contains(secret), "a secret was printed: {err}");
    }
}

//! Postgres clients as they really connect to `jcsql serve`: what drivers and BI tools ask a
//! server about itself (through psql, with Postgres's own answers), then whole sessions of
//! psycopg 3 and pgJDBC against the simulator's org with exact values.

use std::path::PathBuf;
use std::process::Output;

use crate::common::{self, TestOrg, text};
use crate::serve::{PASSWORD, psql, psql_ok, run, serving};

/// psql with several `-c` in one session (each its own simple query), unaligned, tuples only.
async fn psql_session(url: &str, statements: &[&str]) -> Output {
    let mut args: Vec<String> =
        ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", url].iter().map(|s| s.to_string()).collect();
    for s in statements {
        args.push("-c".into());
        args.push(s.to_string());
    }
    run("psql", args, PASSWORD).await
}

/// The SQLSTATE psql prints with VERBOSITY=verbose (`ERROR:  42704: …`).
fn sqlstate(out: &Output) -> String {
    let err = text(&out.stderr);
    err.split("ERROR:  ").nth(1).and_then(|rest| rest.split(':').next()).unwrap_or(&err).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_describes_itself_as_postgres_does() {
    let t = common::start(20).await;
    let url = serving(&t).await;
    let answers = [
        // Grafana's Postgres data source, on connect.
        ("select current_setting('server_version_num')::int/100", "1600"),
        ("select current_setting('server_version_num')", "160006"),
        ("show server_version", "16.6"),
        ("show server_version_num", "160006"),
        ("select version() like 'PostgreSQL 16.6 (jcsql 0.1.0 on Apache DataFusion 55.%) on %, 64-bit'", "t"),
        ("select current_database()", "jcsql"),
        ("select current_catalog", "jcsql"),
        ("select session_user, current_user", "jcsql|jcsql"),
        ("select datname from pg_database where datname = current_database()", "jcsql"),
        ("show transaction isolation level", "read committed"),
        ("show transaction_isolation", "read committed"),
        ("show default_transaction_isolation", "read committed"),
        ("show default_transaction_read_only", "on"),
        ("show transaction_read_only", "on"),
        ("show standard_conforming_strings", "on"),
        ("show is_superuser", "off"),
        ("show server_encoding", "UTF8"),
        ("show client_encoding", "UTF8"),
        ("show integer_datetimes", "on"),
        ("show max_identifier_length", "63"),
        ("show statement_timeout", "0"),
        ("select setting from pg_settings where name = 'server_version_num'", "160006"),
        ("select setting from pg_catalog.pg_settings where name = 'transaction_isolation'", "read committed"),
        ("select count(*) > 30 from pg_settings", "t"),
        ("select current_setting('no_such_setting', true) is null", "t"),
        // A name from a column: the function itself answers (the server's values).
        (
            "select name, current_setting(name) from pg_settings where name like 'server_version%' order by 1",
            "server_version|16.6\nserver_version_num|160006",
        ),
    ];
    for (sql, expected) in answers {
        assert_eq!(psql_ok(&url, sql).await, expected, "{sql}");
    }
    // `\l` lists the database as jcsql, owned by jcsql.
    let list = psql_ok(&url, r"\l").await;
    assert!(list.lines().any(|l| l.starts_with("jcsql|jcsql|UTF8|en_US.UTF-8|en_US.UTF-8|")), "{list}");
    assert_eq!(psql_ok(&url, "show lc_collate").await, "en_US.UTF-8");

    // What a connection sets, every way of reading it sees (and no other connection does).
    let out = psql_session(
        &url,
        &[
            "set application_name = 'grafana'",
            "show application_name",
            "select current_setting('application_name')",
            "select setting from pg_settings where name = 'application_name'",
            "select set_config('statement_timeout', '5s', false)",
            "show statement_timeout",
            "select current_setting('statement_timeout'), setting from pg_settings where name = 'statement_timeout'",
            "set datestyle = 'ISO, DMY'",
            "select current_setting('DateStyle')",
            "set time zone 'Europe/Paris'",
            "show timezone",
            "set lock_timeout = '2s'",
            "show lock_timeout",
            "set myapp.tenant = 'acme'",
            "select current_setting('myapp.tenant')",
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "grafana\ngrafana\ngrafana\n5s\n5s\n5s|5s\nISO, DMY\nEurope/Paris\n2s\nacme\n");
    assert_eq!(psql_ok(&url, "show application_name").await, "psql");
    assert_eq!(psql_ok(&url, "show statement_timeout").await, "0");

    // Refusals as Postgres words them.
    let refused = [
        ("show no_such_setting", "42704", "unrecognized configuration parameter \"no_such_setting\""),
        (
            "select current_setting('no_such_setting')",
            "42704",
            "unrecognized configuration parameter \"no_such_setting\"",
        ),
        ("set server_version = '9.6'", "55P02", "parameter \"server_version\" cannot be changed"),
        ("select set_config('is_superuser', 'on', false)", "55P02", "parameter \"is_superuser\" cannot be changed"),
        (
            "set transaction_read_only = off",
            "25006",
            "cannot set transaction read-write mode: jcsql serve is read-only",
        ),
    ];
    for (sql, code, message) in refused {
        let out = psql(&url, sql).await;
        assert!(!out.status.success(), "{sql} was accepted");
        assert_eq!(sqlstate(&out), code, "{sql}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains(message), "{sql}: {}", text(&out.stderr));
    }
}

/// The first user by id, and the facts the driver tests read about them.
fn first_user(t: &TestOrg) -> jcsql::jumpcloud::simulator::org::User {
    let org = t.sim.org();
    let mut users = org.users.clone();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    users.into_iter().next().expect("a user")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn psycopg_reads_the_org_with_parameters_and_gets_refusals_as_errors() {
    let t = common::start(40).await;
    let url = serving(&t).await;
    let user = first_user(&t);
    let org = t.sim.org();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/psycopg_session.py");
    let out = run("python3", vec![script.display().to_string(), url.clone(), user.id.clone()], PASSWORD).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let facts: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let active_with_email = org.users.iter().filter(|u| !u.suspended && u.email.contains('@')).count();
    let created = chrono::DateTime::parse_from_rfc3339(&user.created).expect("created").to_utc();
    let expected = serde_json::json!({
        "server_version": 160006,
        "database": "jcsql",
        "current_database": "jcsql",
        "current_user": "jcsql",
        "session_user": "jcsql",
        "version": jcsql::serve::settings::version(),
        "application_name": "psycopg-test",
        "server_version_num": 160006,
        "set_config": "jumpcloud",
        "search_path": "jumpcloud",
        "username": user.username,
        "email": user.email,
        "suspended": user.suspended,
        "suspended_type": "bool",
        // Python's isoformat: microseconds unless there are none.
        "created": if created.timestamp_subsec_micros() == 0 {
            created.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
        } else {
            created.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
        },
        "manager": user.manager,
        "active_with_email": active_with_email,
        "ids": org.users.len(),
        "refused": {"create": "25006", "insert": "25006", "action": "42501"},
        "users_after": org.users.len(),
        "django_set_config": "Europe/Berlin",
        "timezone": "Europe/Berlin",
    });
    assert_eq!(facts, expected);
    assert_eq!(t.sim.requests().iter().filter(|r| r.method != "GET").count(), 0, "nothing but reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pgjdbc_browses_the_catalog_and_runs_prepared_statements() {
    let t = common::start(40).await;
    t.engine.load_boards(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/boards")).await;
    let url = serving(&t).await;
    let user = first_user(&t);
    let org = t.sim.org();
    let classes = tempfile::tempdir().expect("dir");
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/JdbcSession.java");
    let compiled =
        run("javac", vec!["-d".into(), classes.path().display().to_string(), source.display().to_string()], PASSWORD)
            .await;
    assert!(compiled.status.success(), "{}", text(&compiled.stderr));
    let jdbc_url = url.replace("postgres://jcsql@", "jdbc:postgresql://");
    let classpath = format!("{}:/usr/share/java/postgresql.jar", classes.path().display());
    let out = run(
        "java",
        vec!["-cp".into(), classpath, "JdbcSession".into(), jdbc_url, PASSWORD.into(), user.id.clone()],
        PASSWORD,
    )
    .await;
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let facts: Vec<(String, String)> = text(&out.stdout)
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('\t').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect();
    let mut tables: Vec<&str> = jcsql::jumpcloud::tables::all_tables().iter().map(|d| d.name).collect();
    tables.sort();
    let created = chrono::DateTime::parse_from_rfc3339(&user.created).expect("created").timestamp_millis();
    let expected: Vec<(String, String)> = [
        ("product", "PostgreSQL".to_string()),
        ("product_version", "16.6".into()),
        ("major", "16".into()),
        ("user", "jcsql".into()),
        ("catalog", "jcsql".into()),
        ("schemas", "boards,changes,jcsql,jumpcloud,pg_catalog,public".into()),
        ("tables", tables.join(",")),
        ("board_views", "18".into()),
        ("user_columns", "id:text,username:text,email:text".into()),
        ("grafana_version_probe", "1600".into()),
        ("isolation", "read committed".into()),
        ("isolation_level", "true".into()),
        ("username", user.username.clone()),
        ("email", user.email.clone()),
        ("suspended", user.suspended.to_string()),
        ("created_epoch_ms", created.to_string()),
        ("manager_null", user.manager.is_none().to_string()),
        ("rows", "1".into()),
        ("refused", "25006".into()),
        ("refused", "42501".into()),
        ("users", org.users.len().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(facts, expected);
    assert_eq!(t.sim.requests().iter().filter(|r| r.method != "GET").count(), 0, "nothing but reads");
}

//! The binary: `sync`, `connect jumpcloud`, output formats, scripts.

use crate::common::*;
use jcsql::jumpcloud::simulator::{Simulator, SimulatorConfig};

async fn run(args: Vec<String>, env: Vec<(String, String)>, stdin: Option<String>) -> std::process::Output {
    spawn_cli(args, env, stdin).await.expect("joined")
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_prints_a_summary_and_restarts_offline() {
    let sim = Simulator::start(SimulatorConfig::new(230, 9)).await.expect("sim");
    let home = tempfile::tempdir().expect("dir");
    let env = sim_env(&sim, home.path());
    let out = run(strs(&["sync", "users", "jumpcloud.devices", "--format", "csv"]), env.clone(), None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "table,rows,requests,seconds,status");
    assert!(lines[1].starts_with("users,230,3,"), "{}", lines[1]);
    assert!(lines[1].ends_with(",ok"));
    let devices = sim.org().devices.len();
    assert!(lines[2].starts_with(&format!("devices,{devices},1,")), "{}", lines[2]);
    assert_eq!(lines.len(), 3);
    assert!(text(&out.stderr).starts_with("synced 2 of 2 tables in "), "{}", text(&out.stderr));

    sim.clear_requests();
    let out = run(strs(&["--offline", "-c", "select count(*) as n from jumpcloud.users"]), env.clone(), None).await;
    assert_eq!(text(&out.stdout), "n\n230\n");
    assert_eq!(sim.request_count(), 0);

    // Google's schema, asked for before Google is connected, says how to connect it.
    let out = run(strs(&["-c", "select count(*) from google.users"]), env.clone(), None).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error: unknown table google.users; Google Workspace is not connected: run `jcsql connect google --service-account FILE --subject ADMIN_EMAIL` (or try `jcsql demo`, which has a Google account)\n"
    );

    // Unknown table names are one-line errors that list the tables.
    let out = run(strs(&["sync", "userz"]), env, None).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("Error: userz: unknown table userz; the JumpCloud tables are: users, user_groups"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_validates_the_key_and_stores_it_privately() {
    let sim = Simulator::start(SimulatorConfig::new(40, 9)).await.expect("sim");
    let home = tempfile::tempdir().expect("dir");
    let env = vec![
        ("JUMPCLOUD_API_URL".to_string(), sim.base_url()),
        ("JCSQL_HOME".to_string(), home.path().display().to_string()),
    ];
    let config = home.path().join("config.toml");

    let out = run(strs(&["connect", "jumpcloud", "--api-key-stdin"]), env.clone(), Some("jca_wrong\n".into())).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error: JumpCloud rejected the API key (401: Unauthorized). Check JUMPCLOUD_API_KEY, or run `jcsql connect jumpcloud` to store a new key\n"
    );
    assert!(!config.exists(), "nothing saved for a bad key");
    assert_eq!(sim.request_count(), 1, "one validating request");

    let out = run(
        strs(&["connect", "jumpcloud", "--api-key-stdin", "--format", "csv"]),
        env.clone(),
        Some("jca_demo\n".into()),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("\nusers,40,1,"), "{}", text(&out.stdout));
    assert!(!text(&out.stderr).contains("jca_demo") && !text(&out.stdout).contains("jca_demo"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&config).expect("saved").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert!(std::fs::read_to_string(&config).expect("read").contains("api_key = \"jca_demo\""));
    // The stored key is used without the environment variable; snapshots never hold it.
    let out = run(strs(&["-c", "select count(*) as n from jumpcloud.user_groups"]), env, None).await;
    assert_eq!(text(&out.stdout), format!("n\n{}\n", sim.org().groups.len()));
    for f in crate::errors::walk(&home.path().join("cache")) {
        let bytes = std::fs::read(&f).expect("read");
        assert!(!String::from_utf8_lossy(&bytes).contains("jca_demo"), "{}", f.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formats_round_trip_and_scripts_report_lines() {
    let q = "select username, displayname, mfa_configured, created from jumpcloud.users order by username limit 3";
    let csv = run(strs(&["demo", "--users", "30", "--format", "csv", "-c", q]), vec![], None).await;
    let json = run(strs(&["demo", "--users", "30", "--format", "json", "-c", q]), vec![], None).await;
    let ndjson = run(strs(&["demo", "--users", "30", "--format", "ndjson", "-c", q]), vec![], None).await;
    let md = run(strs(&["demo", "--users", "30", "--format", "markdown", "-c", q]), vec![], None).await;
    let csv_rows: Vec<Vec<String>> =
        text(&csv.stdout).lines().skip(1).map(|l| l.split(',').map(str::to_string).collect()).collect();
    assert_eq!(csv_rows.len(), 3);
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json parses");
    let rows = parsed.as_array().expect("array");
    assert_eq!(rows.len(), 3);
    for (row, c) in rows.iter().zip(&csv_rows) {
        assert_eq!(row["username"], c[0].as_str());
        assert_eq!(row["displayname"], c[1].as_str());
        assert_eq!(row["mfa_configured"].to_string(), c[2]);
        assert_eq!(row["created"], c[3].as_str());
    }
    let nd: Vec<serde_json::Value> =
        text(&ndjson.stdout).lines().map(|l| serde_json::from_str(l).expect("line parses")).collect();
    assert_eq!(&nd, rows);
    let md = text(&md.stdout);
    assert!(md.starts_with("| username | displayname | mfa_configured | created |\n|---|---|---|---|\n"), "{md}");
    assert_eq!(md.lines().count(), 5);

    // A script stops at its first error and names the line.
    let dir = tempfile::tempdir().expect("dir");
    let script = dir.path().join("check.sql");
    std::fs::write(&script, "select 1;\n-- a comment\nselect 2;\n\nselect nope\n  from jumpcloud.users;\nselect 4;\n")
        .expect("write");
    let out = run(strs(&["demo", "--users", "10", "-f", &script.display().to_string()]), vec![], None).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "Int64(1)\n1\nInt64(2)\n2\n");
    let err = text(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "Error: {}, line 5: unknown column nope; the columns are: id, username, email,",
            script.display()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);

    // SQL on standard input.
    let out =
        run(strs(&["demo", "--users", "10"]), vec![], Some("select count(*) as n from jumpcloud.users;".into())).await;
    assert_eq!(text(&out.stdout), "n\n10\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_may_start_with_a_comment() {
    let sim = Simulator::start(SimulatorConfig::new(25, 9)).await.expect("sim");
    let home = tempfile::tempdir().expect("dir");
    let env = sim_env(&sim, home.path());
    let sql = "-- who is in the directory\nselect count(*) as n from jumpcloud.users";
    let out = run(strs(&["-c", sql]), env.clone(), None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "n\n25\n");
    // Also when it is the long form, and when only a comment is given (nothing to run).
    let out = run(strs(&["--command", "--only a comment"]), env.clone(), None).await;
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(0), String::new()), "{}", text(&out.stderr));
    // A real unknown flag is still a usage error.
    let out = run(strs(&["--frobnicate"]), env, None).await;
    assert_eq!(out.status.code(), Some(2));
}

/// `-f` files and stdin scripts take the prompt's meta-commands, one per line, as psql takes its
/// own in `-f` files; each holds for the statements after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_take_meta_commands_between_statements() {
    let sim = Simulator::start(SimulatorConfig::new(30, 9)).await.expect("sim");
    let home = tempfile::tempdir().expect("dir");
    let env = sim_env(&sim, home.path());
    let org = sim.org();
    let mut names: Vec<&str> = org.users.iter().map(|u| u.username.as_str()).collect();
    names.sort();
    let script = home.path().join("morning.sql");
    std::fs::write(
        &script,
        "-- the morning check\n\
         .timer on\n\
         select count(*) as n from jumpcloud.users;\n\
         .mode json\n\
         select username\n  from jumpcloud.users order by username limit 2;\n\
         \n\
         .refresh users\n\
         .offline on\n\
         .mode csv\n\
         select count(*) as n from jumpcloud.users;\n\
         .timer off\n\
         select 'done' as status;\n",
    )
    .expect("write");
    let out = run(strs(&["-f", &script.display().to_string()]), env.clone(), None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("n\n30\n[{{\"username\":\"{}\"}},{{\"username\":\"{}\"}}]\nn\n30\nstatus\ndone\n", names[0], names[1])
    );
    // The timer's lines (on stderr): the first query fetched the users, the second and, offline,
    // the third asked for nothing; `.refresh` fetched them again; after `.timer off`, no line.
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert!(lines[0].starts_with("1 row in ") && lines[0].ends_with("s, 1 API request"), "{err}");
    assert!(lines[1].starts_with("2 rows in ") && lines[1].ends_with("s, 0 API requests"), "{err}");
    assert!(lines[2].starts_with("users: 30 rows in ") && lines[2].ends_with("s (1 request)"), "{err}");
    assert!(lines[3].starts_with("1 row in ") && lines[3].ends_with("s, 0 API requests"), "{err}");
    assert_eq!(sim.requests().iter().filter(|r| r.path == "/api/systemusers").count(), 2);

    // The same script on standard input.
    let stdin = std::fs::read_to_string(&script).expect("read");
    let again = run(strs(&["--offline"]), env.clone(), Some(stdin)).await;
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), text(&out.stdout));

    // A meta-command the prompt does not know stops the script at its line; nothing after it runs.
    std::fs::write(&script, "select 1 as a;\n.mode csv\n.frobnicate now\nselect 2 as b;\n").expect("write");
    let out = run(strs(&["--offline", "-f", &script.display().to_string()]), env.clone(), None).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stdout), "a\n1\n");
    assert_eq!(
        text(&out.stderr),
        format!("Error: {}, line 3: unknown command .frobnicate; `.help` lists the commands\n", script.display())
    );
    // `.action` asks at the prompt; a script calls the function instead.
    let out = run(strs(&["--offline", "-c", ".action suspend_user"]), env.clone(), None).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "Error: `.action` asks for its inputs at the prompt; in a script call the action as a function, e.g. select add_user_to_group('user', 'group')\n"
    );
    // A line starting with `.` inside an open statement is part of the statement.
    let out = run(strs(&["--offline", "-c", "select\n.5 as half;"]), env.clone(), None).await;
    assert_eq!((out.status.code(), text(&out.stdout)), (Some(0), "half\n0.5\n".to_string()), "{}", text(&out.stderr));
}

/// A statement with no result (DDL, SET) prints nothing: no empty header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_without_a_result_print_nothing() {
    for format in ["csv", "table", "json", "markdown"] {
        let out = run(
            strs(&["demo", "--users", "10", "--format", format, "-c", "set datafusion.execution.batch_size = 4096"]),
            vec![],
            None,
        )
        .await;
        assert_eq!(out.status.code(), Some(0), "{format}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "", "{format}");
    }
    let out = run(
        strs(&[
            "demo",
            "--users",
            "10",
            "-c",
            "create view recent as select 1 as n; select * from recent; drop view recent",
        ]),
        vec![],
        None,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "n\n1\n");
}

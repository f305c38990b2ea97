//! The REPL driven by scripted input: meta-commands, formats, completion, history.

use crate::common::*;
use jcsql::cli::output::Format;
use jcsql::cli::repl::{LineReader, ReadResult, Repl, ScriptedReader, SharedBuf, Words};

async fn session(t: &TestOrg, lines: &[&str]) -> (String, String) {
    let out = SharedBuf::default();
    let err = SharedBuf::default();
    let mut repl = Repl::new(&t.engine, Format::Table, Box::new(out.clone()), Box::new(err.clone()));
    repl.run(&mut ScriptedReader::new(lines)).await;
    (out.text(), err.text())
}

/// Elapsed times vary; everything else is exact.
fn mask_times(s: &str) -> String {
    s.lines()
        .map(|l| match l.find(" in ") {
            Some(i) if l.ends_with('s') || l.contains("s,") || l.contains("s (") => {
                let rest = &l[i + 4..];
                let end = rest.find('s').map(|e| e + 1).unwrap_or(rest.len());
                format!("{} in <t>{}", &l[..i], &rest[end..])
            }
            _ => l.to_string(),
        })
        .map(|l| l + "\n")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_commands_print_what_they_say() {
    let t = start(30).await;
    let (out, err) = session(
        &t,
        &[
            ".help",
            ".mode csv",
            "select username, state",
            "  from jumpcloud.users order by id limit 2;",
            ".mode line",
            "select username, mfa_configured from jumpcloud.users order by id limit 2;",
            ".timer on",
            ".mode json",
            "select count(*) as n from jumpcloud.devices;",
            ".mode table",
            ".schema devices",
            ".mode nonsense",
            ".frobnicate",
            "select * from jumpcloud.devics;",
            ".quit",
            "select 'never runs';",
        ],
    )
    .await;
    let org = t.sim.org();
    let expected_help = "\
+-------------------------------------------+-----------------------------------------------------------------------------+
| command                                   | does                                                                        |
+-------------------------------------------+-----------------------------------------------------------------------------+
| .help                                     | this text (also \\?)                                                         |
| .tables                                   | list the tables (also \\d)                                                   |
| .schema TABLE                             | columns, types, primary field and meaning of each column (also \\d TABLE)    |
| .mode table|line|csv|json|ndjson|markdown | how results are printed                                                     |
| .timer on|off                             | show time, rows and API requests after each statement                       |
| .refresh [TABLE]                          | fetch a table now (every table when none is named)                          |
| .offline on|off                           | answer from the cached snapshots only                                       |
| .boards                                   | the boards (saved queries), their sources and errors                        |
| .save NAME [TITLE]                        | save the last query as board NAME (view boards.NAME)                        |
| .sources                                  | other tools' exports and their tables                                       |
| .fields TABLE                             | what joins to TABLE: relations, and other tools' columns whose values match |
| .actions                                  | the actions, their inputs, and whether each is enabled                      |
| .action NAME                              | run one action, asking for each input                                       |
| .permissions                              | which actions may run (change with `jcsql permissions`)                     |
| .quit                                     | leave (also .exit, \\q, Ctrl-D)                                              |
+-------------------------------------------+-----------------------------------------------------------------------------+
Statements end with `;` and may span lines; Ctrl-C cancels a running statement.
";
    assert!(out.starts_with(expected_help), "{out}");
    let rest = &out[expected_help.len()..];
    let (u0, u1) = (&org.users[0], &org.users[1]);
    let csv = format!(
        "username,state\n{},{}\n{},{}\n",
        u0.username,
        u0.state.unwrap_or_default(),
        u1.username,
        u1.state.unwrap_or_default()
    );
    assert!(rest.starts_with(&csv), "{rest}");
    let rest = &rest[csv.len()..];
    let line = format!(
        "      username = {}\nmfa_configured = {}\n\n      username = {}\nmfa_configured = {}\n",
        u0.username, u0.mfa.configured, u1.username, u1.mfa.configured
    );
    assert!(rest.starts_with(&line), "{rest}");
    let rest = &rest[line.len()..];
    let json = format!("[{{\"n\":{}}}]\n", org.devices.len());
    assert!(rest.starts_with(&json), "{rest}");
    let schema = &rest[json.len()..];
    assert!(schema.contains("\n| display_name "), "{schema}");
    assert!(schema.contains("| primary |"), "the primary field is marked: {schema}");
    assert!(schema.contains("| last_contact                              | Timestamp(µs, \"UTC\") |         | When the agent last checked in.                    |"), "{schema}");
    assert!(!out.contains("never runs"));

    let err = mask_times(&err);
    // csv prints no footer; line mode does; with the timer on, the json statement fetched devices (1 request).
    assert_eq!(
        err,
        "2 rows in <t>\n1 row in <t>, 1 API request\n\
         Error: unknown mode nonsense; use table, line, csv, json, ndjson or markdown\n\
         Error: unknown command .frobnicate; `.help` lists the commands\n\
         Error: unknown table jumpcloud.devics; did you mean jumpcloud.devices, jumpcloud.device_apps, jumpcloud.policies? (`.tables` lists the tables)\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxrows_caps_what_is_shown_not_what_is_computed() {
    let t = start(30).await;
    let out = SharedBuf::default();
    let err = SharedBuf::default();
    let mut repl = Repl::new(&t.engine, Format::Table, Box::new(out.clone()), Box::new(err.clone()));
    repl.maxrows = Some(3);
    repl.width = Some(60);
    repl.run(&mut ScriptedReader::new(&[
        "select username, addresses, config from jumpcloud.users, jumpcloud.applications;",
    ]))
    .await;
    let out = out.text();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3 + 3 + 1, "header, three rows, rules: {out}");
    assert!(lines.iter().all(|l| unicode_width::UnicodeWidthStr::width(*l) <= 60), "{out}");
    assert!(lines[3].ends_with("… |"), "wide JSON is cut with an ellipsis: {out}");
    let apps = t.sim.org().applications.len();
    assert_eq!(mask_times(&err.text()), format!("{} rows in <t> (3 shown)\n", 30 * apps));
}

struct Recording {
    lines: Vec<ReadResult>,
    history: Vec<String>,
}

impl LineReader for Recording {
    fn read_line(&mut self, _prompt: &str) -> ReadResult {
        if self.lines.is_empty() { ReadResult::Eof } else { self.lines.remove(0) }
    }
    fn add_history(&mut self, line: &str) {
        self.history.push(line.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_never_holds_the_key_and_ctrl_c_drops_the_statement() {
    let t = start(10).await;
    let out = SharedBuf::default();
    let err = SharedBuf::default();
    let mut repl = Repl::new(&t.engine, Format::Csv, Box::new(out.clone()), Box::new(err.clone()));
    let mut reader = Recording {
        lines: vec![
            ReadResult::Line("select 'jca_demo' as k;".into()),
            ReadResult::Line("select 1 as a".into()),
            ReadResult::Interrupted,
            ReadResult::Line("select 2 as b;".into()),
        ],
        history: vec![],
    };
    repl.run(&mut reader).await;
    assert_eq!(reader.history, vec!["select 2 as b;"]);
    assert_eq!(out.text(), "k\njca_demo\nb\n2\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_offers_tables_columns_keywords_and_commands() {
    let t = start(10).await;
    let w = Words::collect(&t.engine).await;
    let complete = |line: &str| w.complete(line, line.len());
    assert_eq!(
        complete("select * from jumpcloud.user"),
        (
            14,
            vec![
                "jumpcloud.user_application_access".to_string(),
                "jumpcloud.user_group_members".to_string(),
                "jumpcloud.user_groups".to_string(),
                "jumpcloud.users".to_string()
            ]
        )
    );
    assert_eq!(complete(".sc"), (0, vec![".schema".to_string()]));
    assert_eq!(
        complete(".schema jumpcloud.dev"),
        (
            8,
            [
                "device_apps",
                "device_bitlocker",
                "device_chrome_extensions",
                "device_disk_encryption",
                "device_group_members",
                "device_groups",
                "device_local_users",
                "device_mounts",
                "device_os_versions",
                "device_programs",
                "device_system_info",
                "device_users",
                "devices"
            ]
            .iter()
            .map(|t| format!("jumpcloud.{t}"))
            .collect::<Vec<_>>()
        )
    );
    assert_eq!(complete("select u.mfa_c"), (7, vec!["u.mfa_configured".to_string()]));
    let (_, c) = complete("select emai");
    assert!(c.contains(&"email".to_string()), "{c:?}");
    let (_, c) = complete("SEL");
    assert_eq!(c, vec!["SELECT".to_string()]);
    let (_, c) = complete("select json_get_s");
    assert!(c.contains(&"json_get_str".to_string()), "{c:?}");
    let (_, c) = complete("select * from jc");
    assert!(c.contains(&"jcsql.".to_string()) && c.contains(&"jcsql.tables".to_string()), "{c:?}");
}

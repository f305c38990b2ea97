//! Other tools' exports as they really come: sniffed CSV, repeated headers, JSON whose types
//! disagree or nest, Excel workbooks, empty and oversized files, and nested values in every
//! output format.

use std::path::{Path, PathBuf};

use crate::common::*;
use jcsql::cli::output::{Format, render};
use jcsql::sources::SourceConfig;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

async fn connect(e: &jcsql::Engine, name: &str, path: PathBuf) -> jcsql::sources::SourceStatus {
    let s = e.add_source(&SourceConfig { name: name.into(), path }).await;
    assert!(s.error.is_none(), "{name}: {:?}", s.error.as_ref().map(ToString::to_string));
    s
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

async fn columns(e: &jcsql::Engine, table: &str) -> Vec<String> {
    let p = e.context().table_provider(table).await.expect("table");
    p.schema().fields().iter().map(|f| format!("{} {}", f.name(), f.data_type())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_dialects_are_sniffed_and_repeated_headers_renamed() {
    let t = start(20).await;
    let e = &t.engine;
    let dir = tempfile::tempdir().expect("dir");
    // What Excel writes in much of Europe.
    connect(
        e,
        "eu",
        write(dir.path(), "eu.csv", "Email;Name;Salary\nann@x.example;Ann;1200,50\nbob@x.example;\"Bob; Jr.\";900\n"),
    )
    .await;
    assert_eq!(columns(e, "eu").await, vec!["Email Utf8", "Name Utf8", "Salary Utf8"]);
    assert_eq!(
        strings(e, r#"select "Email", "Name" from eu order by 1"#).await,
        vec![vec!["ann@x.example", "Ann"], vec!["bob@x.example", "Bob; Jr."]]
    );
    connect(e, "tabs", write(dir.path(), "tabs.tsv", "id\tlogin\n1\tann\n2\tbob\n")).await;
    assert_eq!(columns(e, "tabs").await, vec!["id Int64", "login Utf8"]);
    connect(e, "pipes", write(dir.path(), "pipes.txt", "host|owner\nmbp-1|ann\nmbp-2|bob\n")).await;
    assert_eq!(count(e, "select count(*) from pipes where owner = 'bob'").await, 1);
    // A header that repeats a name: each column is still queryable, and the rename is said once.
    let s = connect(e, "dup", write(dir.path(), "dup.csv", "email,name,email\na@x,Ann,a@home\nb@x,Bob,\n")).await;
    assert_eq!(columns(e, "dup").await, vec!["email Utf8", "name Utf8", "email_2 Utf8"]);
    assert_eq!(
        strings(e, "select email, email_2 from dup order by 1").await,
        vec![vec!["a@x", "a@home"], vec!["b@x", "NULL"]]
    );
    assert_eq!(
        s.notes,
        vec![format!("{}: the header repeats email; that column is email_2", dir.path().join("dup.csv").display())]
    );
    // No header: the first row holds numbers.
    connect(e, "raw", write(dir.path(), "raw.csv", "1,ann,3.5\n2,bob,4\n")).await;
    assert_eq!(columns(e, "raw").await, vec!["column_1 Int64", "column_2 Utf8", "column_3 Float64"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_types_are_widened_and_objects_flattened() {
    let t = start(20).await;
    let e = &t.engine;
    let dir = tempfile::tempdir().expect("dir");
    let mixed = r#"[{"id": 1, "tag": 1, "ok": true}, {"id": 2, "tag": "x", "ok": false}, {"id": 3, "tag": {"k": 1}}]"#;
    let s = connect(e, "mixed", write(dir.path(), "mixed.json", mixed)).await;
    assert_eq!(columns(e, "mixed").await, vec!["id Int64", "tag Utf8", "ok Boolean"]);
    assert_eq!(
        strings(e, "select id, tag, ok from mixed order by id").await,
        vec![vec!["1", "1", "true"], vec!["2", "x", "false"], vec!["3", r#"{"k":1}"#, "NULL"]]
    );
    assert!(
        s.notes.iter().any(|n| n.ends_with("tag holds values of different types; it is read as text")),
        "{:?}",
        s.notes
    );
    let nested = "{\"id\": 1, \"user\": {\"email\": \"a@x\", \"address\": {\"city\": \"Oslo\"}}, \"tags\": [\"a\", \"b\"]}\n\
                  {\"id\": 2, \"user\": {\"email\": \"b@x\"}, \"score\": 2.5}\n";
    connect(e, "nested", write(dir.path(), "nested.ndjson", nested)).await;
    assert_eq!(
        columns(e, "nested").await,
        vec!["id Int64", "user_email Utf8", "user_address Utf8", "tags Utf8", "score Float64"]
    );
    assert_eq!(
        strings(
            e,
            "select user_email, json_get_str(user_address, 'city'), json_length(tags), score from nested order by id"
        )
        .await,
        vec![vec!["a@x", "Oslo", "2", "NULL"], vec!["b@x", "NULL", "NULL", "2.5"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excel_workbooks_are_tables_with_dates_and_numbers() {
    let t = start(20).await;
    let e = &t.engine;
    let s = connect(e, "people", fixture("people.xlsx")).await;
    assert_eq!(s.tables, vec!["people"]);
    assert_eq!(
        columns(e, "people").await,
        vec![
            "Email Utf8",
            "Name Utf8",
            "Start Date Timestamp(µs, \"UTC\")",
            "Salary Float64",
            "Active Boolean",
            "Email_2 Utf8"
        ]
    );
    assert_eq!(
        strings(e, r#"select "Email", "Start Date", "Salary", "Active", "Email_2" from people order by 1"#).await,
        vec![
            vec!["ada@acme.example", "2021-03-01T00:00:00Z", "125000.0", "true", "ada@home.example"],
            vec!["alan@acme.example", "2019-11-15T09:30:00Z", "118500.5", "false", "NULL"],
            vec!["grace@acme.example", "2023-01-09T00:00:00Z", "131000.0", "true", "grace@home.example"],
        ]
    );
    // Several sheets: a schema, a table per sheet; the empty sheet is no table.
    let s = connect(e, "assets", fixture("assets.xlsx")).await;
    assert_eq!(s.tables, vec!["assets.laptops", "assets.phones"]);
    assert_eq!(columns(e, "assets.phones").await, vec!["IMEI Int64", "Owner Utf8"]);
    assert_eq!(strings(e, r#"select "IMEI" from assets.phones"#).await, vec![vec!["356938035643809"]]);
    assert_eq!(count(e, r#"select count(*) from assets.laptops where "Purchased" < '2021-01-01'"#).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_unreadable_and_oversized_files_are_refused_in_one_line() {
    let sim = jcsql::jumpcloud::simulator::Simulator::start(jcsql::jumpcloud::simulator::SimulatorConfig::new(20, 7))
        .await
        .expect("sim");
    let home = tempfile::tempdir().expect("home");
    let data = tempfile::tempdir().expect("data");
    std::fs::create_dir_all(home.path().join("boards")).expect("boards");
    std::fs::write(home.path().join("boards/keep.sql"), "select 1 as one\n").expect("board");
    let empty = write(data.path(), "empty.csv", "");
    let blank = write(data.path(), "blank.json", "  \n");
    let none = write(data.path(), "none.json", "[]");
    let broken = write(data.path(), "broken.json", "[{\"a\": 1},");
    let big =
        write(data.path(), "big.json", &format!("[{}]", vec![r#"{"a": "xxxxxxxxxxxxxxxxxxxx"}"#; 60_000].join(",")));
    let env: Vec<(String, String)> = vec![
        ("JCSQL_HOME".into(), home.path().display().to_string()),
        ("JUMPCLOUD_API_URL".into(), sim.base_url()),
        ("JUMPCLOUD_API_KEY".into(), "jca_demo".into()),
        ("JCSQL_MAX_JSON_MB".into(), "1".into()),
    ];
    let run = |args: Vec<String>| spawn_cli(args, env.clone(), None);
    let cases = [
        (
            empty.clone(),
            format!("{} is empty (no rows, no columns); export it again with its header row", empty.display()),
        ),
        (
            blank.clone(),
            format!("{} is empty (no rows, no columns); export it again with its header row", blank.display()),
        ),
        (
            none.clone(),
            format!("{} is empty (no rows, no columns); export it again with its header row", none.display()),
        ),
        (
            broken.clone(),
            format!("{} is not valid JSON (EOF while parsing a value at line 1 column 10)", broken.display()),
        ),
    ];
    for (path, why) in cases {
        let out =
            run(vec!["connect".into(), "files".into(), "x".into(), path.display().to_string()]).await.expect("join");
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(text(&out.stderr), format!("Error: source x not connected: {why}\n"));
    }
    let out = run(vec!["connect".into(), "files".into(), "x".into(), big.display().to_string()]).await.expect("join");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("MiB of JSON, more than the 1 MiB jcsql loads into memory") && err.contains("COPY"), "{err}");
    // Nothing was registered, and no board was touched.
    assert!(
        !home.path().join("config.toml").exists()
            || !std::fs::read_to_string(home.path().join("config.toml")).unwrap_or_default().contains("[[sources]]")
    );
    assert_eq!(std::fs::read_to_string(home.path().join("boards/keep.sql")).expect("board"), "select 1 as one\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_values_print_as_json_in_every_format() {
    let t = start(20).await;
    let batches = query(
        &t.engine,
        "select 1 as id, named_struct('a', 1, 'b', 'x') as s, make_array(1, 2) as l, \
         map(['k'], ['v']) as m, cast(null as int[]) as none",
    )
    .await;
    let schema = batches[0].schema();
    let out = |f: Format| render(f, &schema, &batches).expect("renders");
    assert_eq!(
        out(Format::Csv),
        "id,s,l,m,none\n1,\"{\"\"a\"\":1,\"\"b\"\":\"\"x\"\"}\",\"[1,2]\",\"{\"\"k\"\":\"\"v\"\"}\",\n"
    );
    assert_eq!(out(Format::Ndjson), "{\"id\":1,\"s\":{\"a\":1,\"b\":\"x\"},\"l\":[1,2],\"m\":{\"k\":\"v\"}}\n");
    assert!(out(Format::Json).starts_with("[{\"id\":1,\"s\":{\"a\":1,\"b\":\"x\"}"), "{}", out(Format::Json));
    assert!(
        out(Format::Table).contains("| 1  | {\"a\":1,\"b\":\"x\"} | [1,2] | {\"k\":\"v\"} | NULL |"),
        "{}",
        out(Format::Table)
    );
    assert!(out(Format::Line).contains("   s = {\"a\":1,\"b\":\"x\"}\n"), "{}", out(Format::Line));
    assert!(
        out(Format::Markdown).contains("| 1 | {\"a\":1,\"b\":\"x\"} | [1,2] | {\"k\":\"v\"} |  |"),
        "{}",
        out(Format::Markdown)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_finds_joins_through_flattened_and_renamed_columns() {
    let t = start(40).await;
    let org = t.sim.org();
    let e = &t.engine;
    let dir = tempfile::tempdir().expect("dir");
    let emails: Vec<&str> = org.users.iter().take(10).map(|u| u.email.as_str()).collect();
    let csv: String = std::iter::once("name;email;email\n".to_string())
        .chain(emails.iter().map(|m| format!("x;other@x.example;{m}\n")))
        .collect();
    let json: String = emails.iter().map(|m| format!("{{\"user\": {{\"email\": \"{m}\"}}}}\n")).collect();
    let status = e.add_source(&SourceConfig { name: "tools".into(), path: dir.path().to_path_buf() }).await;
    assert!(status.tables.is_empty());
    write(dir.path(), "sheet.csv", &csv);
    write(dir.path(), "okta.ndjson", &json);
    let status = connect(e, "tools", dir.path().to_path_buf()).await;
    assert_eq!(status.tables, vec!["tools.okta", "tools.sheet"]);
    let found = jcsql::sources::joinable_fields(e.context(), &e.connection_schemas(), "users", &e.sources(), false)
        .await
        .expect("fields");
    let by_values: Vec<(String, String)> = found
        .iter()
        .filter(|f| f.kind == "values" && f.column == "email")
        .map(|f| (f.other_table.clone(), f.other_column.clone()))
        .collect();
    assert!(by_values.contains(&("tools.okta".into(), "user_email".into())), "{by_values:?}");
    assert!(by_values.contains(&("tools.sheet".into(), "email_2".into())), "{by_values:?}");
}

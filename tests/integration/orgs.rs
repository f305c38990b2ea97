//! Many orgs for managed service providers: a schema per org, `jumpcloud_all` across them,
//! actions on one org only, and a Parquet export DuckDB or DataFusion reads back.

use crate::common::*;
use jcsql::engine::OrgOptions;
use jcsql::jumpcloud::simulator::{Simulator, SimulatorConfig};
use jcsql::{Engine, EngineOptions};

async fn msp(orgs: usize, extra: Vec<OrgOptions>) -> (Simulator, Engine, tempfile::TempDir) {
    let mut cfg = SimulatorConfig::new(40, 7);
    cfg.orgs = orgs;
    let sim = Simulator::start(cfg).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let client =
        jcsql::jumpcloud::client::JumpCloudClient::new(fast_client(sim.base_url(), sim.api_key())).expect("client");
    let mut list: Vec<OrgOptions> = client
        .organizations()
        .await
        .expect("orgs")
        .into_iter()
        .map(|(org_id, name)| OrgOptions {
            name: jcsql::cli::config::org_slug(name.as_deref(), &org_id),
            org_id,
            display_name: name,
        })
        .collect();
    list.extend(extra);
    let default = list[0].org_id.clone();
    let e = Engine::new(EngineOptions {
        client: Some(fast_client(sim.base_url(), sim.api_key()).with_org(default)),
        orgs: list,
        cache_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .await
    .expect("engine");
    (sim, e, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_org_is_a_schema_and_jumpcloud_all_is_every_org() {
    let (sim, e, _dir) = msp(3, vec![]).await;
    let names = strings(&e, "select name, display_name from jcsql.orgs order by name").await;
    assert_eq!(names, vec![vec!["acme_corp", "Acme Corp"], vec!["globex", "Globex"], vec!["initech", "Initech"]]);
    let mut total = 0;
    for (i, name) in ["acme_corp", "globex", "initech"].iter().enumerate() {
        let org = sim.org_at(i);
        let n = count(&e, &format!("select count(*) from jumpcloud_{name}.user_group_members")).await;
        assert_eq!(n, org.membership_count() as i64, "{name}");
        total += org.membership_count() as i64;
    }
    assert_eq!(count(&e, "select count(*) from jumpcloud_all.user_group_members").await, total);
    let per_org = strings(&e, "select org, count(*) from jumpcloud_all.users group by org order by org").await;
    assert_eq!(per_org, vec![vec!["acme_corp", "40"], vec!["globex", "40"], vec!["initech", "40"]]);
    // The default org is the first one, under both names: one cache, one fetch.
    sim.clear_requests();
    assert_eq!(count(&e, "select count(*) from jumpcloud.users").await, 40);
    assert_eq!(sim.request_count(), 0, "jumpcloud is jumpcloud_acme_corp, already fetched");
    let tables = all_tables_len();
    assert_eq!(count(&e, "select count(*) from jcsql.tables").await, 3 * tables);
    // Ids are each org's own.
    let globex = sim.org_at(1);
    let r = strings(&e, &format!("select org from jumpcloud_all.users where id = '{}'", globex.users[5].id)).await;
    assert_eq!(r, vec![vec!["globex"]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_union_asks_only_that_org() {
    let (sim, e, _dir) = msp(3, vec![]).await;
    let initech = sim.org_at(2);
    sim.clear_requests();
    let n = count(&e, "select count(*) from jumpcloud_all.devices where org = 'initech'").await;
    assert_eq!(n, initech.devices.len() as i64);
    let reqs = sim.requests();
    assert!(!reqs.is_empty());
    assert!(reqs.iter().all(|r| r.org_id.as_deref() == Some(initech.org_id.as_str())), "{reqs:?}");
    sim.clear_requests();
    let two = count(&e, "select count(*) from jumpcloud_all.devices where org in ('globex', 'initech')").await;
    assert_eq!(two, (initech.devices.len() + sim.org_at(1).devices.len()) as i64);
    assert!(
        sim.requests().iter().all(|r| r.org_id.as_deref() == Some(sim.org_at(1).org_id.as_str())),
        "initech is cached"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_the_key_cannot_reach_fails_alone() {
    let lost = OrgOptions {
        name: "lost".into(),
        org_id: "5f00000000000000000fffff".into(),
        display_name: Some("Lost".into()),
    };
    let (sim, e, _dir) = msp(2, vec![lost]).await;
    let per_org = strings(&e, "select org, count(*) from jumpcloud_all.users group by org order by org").await;
    assert_eq!(per_org, vec![vec!["acme_corp", "40"], vec!["globex", "40"]]);
    let r = strings(&e, "select name, error like '%403%' from jcsql.orgs where name = 'lost'").await;
    assert_eq!(r, vec![vec!["lost", "true"]]);
    let t = strings(
        &e,
        "select status, error like '%403: Forbidden: this key cannot reach that organization%' from jcsql.tables \
         where schema_name = 'jumpcloud_lost' and table_name = 'users'",
    )
    .await;
    assert_eq!(t, vec![vec!["error", "true"]]);
    assert!(sim.requests().iter().any(|r| r.status == 403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_run_on_one_org_and_are_refused_on_the_union() {
    let (sim, e, _dir) = msp(2, vec![]).await;
    sim.clear_requests();
    let err = e
        .execute("select add_user_to_group(email, 'Finance') from jumpcloud_all.users limit 1")
        .await
        .err()
        .expect("refused");
    assert_eq!(
        jcsql::error::user_message(&err),
        "actions change one org at a time, and this statement reads jumpcloud_all; run it on one org's schema (jumpcloud_acme_corp, jumpcloud_globex)"
    );
    assert!(sim.requests().iter().all(|r| r.method == "GET"), "no write");
    // On one org's schema, the call goes to that org.
    let globex = sim.org_at(1);
    let finance = globex.groups.iter().position(|g| g.name == "Finance").expect("Finance");
    let outsider = (0..globex.users.len()).find(|u| !globex.group_members[finance].contains(u)).expect("outsider");
    let plan = e
        .execute(&format!(
            "select add_user_to_group(email, 'Finance') from jumpcloud_globex.users where id = '{}'",
            globex.users[outsider].id
        ))
        .await
        .expect("plans");
    assert_eq!(plan.planned.len(), 1);
    sim.clear_requests();
    assert_eq!(e.apply(&plan.planned).await[0].status, "added");
    let writes: Vec<_> = sim.requests().into_iter().filter(|r| r.method == "POST").collect();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].org_id.as_deref(), Some(globex.org_id.as_str()));
    assert!(sim.org_at(1).group_members[finance].contains(&outsider));
    let err = e
        .execute("select add_user_to_group(a.email, 'Finance') from jumpcloud_globex.users a join jumpcloud_acme_corp.users b on a.email = b.email")
        .await
        .err()
        .expect("refused");
    assert!(
        jcsql::error::user_message(&err).contains("reads jumpcloud_acme_corp and jumpcloud_globex"),
        "{}",
        jcsql::error::user_message(&err)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_discovers_syncs_and_exports_hive_partitioned_parquet() {
    let mut cfg = SimulatorConfig::new(30, 7);
    cfg.orgs = 3;
    let sim = Simulator::start(cfg).await.expect("sim");
    let home = tempfile::tempdir().expect("home");
    let out_dir = tempfile::tempdir().expect("out");
    let env: Vec<(String, String)> = vec![
        ("JCSQL_HOME".into(), home.path().display().to_string()),
        ("JUMPCLOUD_API_URL".into(), sim.base_url()),
        ("JUMPCLOUD_API_KEY".into(), "jca_demo".into()),
    ];
    let run = |args: Vec<String>| spawn_cli(args, env.clone(), None);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let out = run(s(&["orgs", "discover", "--format", "csv"])).await.expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let org = |i: usize| sim.org_at(i).org_id;
    assert_eq!(
        text(&out.stdout),
        format!(
            "name,schema,org_id,display_name\nacme_corp,jumpcloud_acme_corp,{},Acme Corp\nglobex,jumpcloud_globex,{},Globex\ninitech,jumpcloud_initech,{},Initech\n",
            org(0),
            org(1),
            org(2)
        )
    );
    let out = run(s(&["sync", "--all-orgs", "users", "devices", "--format", "csv"])).await.expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run(s(&[
        "--offline",
        "--format",
        "csv",
        "-c",
        "select org, count(*) as n from jumpcloud_all.users group by org order by org",
    ]))
    .await
    .expect("join");
    assert_eq!(text(&out.stdout), "org,n\nacme_corp,30\nglobex,30\ninitech,30\n", "{}", text(&out.stderr));
    let out = run(vec!["--offline".into(), "export".into(), out_dir.path().display().to_string()]).await.expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out_dir.path().join("org=globex/table=users/part-0.parquet").is_file());
    // DataFusion's own Parquet reader, with the Hive partitions as columns.
    let ctx = datafusion::prelude::SessionContext::new();
    let opts = datafusion::prelude::ParquetReadOptions::default().table_partition_cols(vec![
        ("org".to_string(), datafusion::arrow::datatypes::DataType::Utf8),
        ("table".to_string(), datafusion::arrow::datatypes::DataType::Utf8),
    ]);
    ctx.register_parquet("users", &format!("{}/", out_dir.path().display()), opts).await.expect("register");
    let batches = ctx
        .sql("select org, count(*) as n, count(distinct email) as e from users where \"table\" = 'users' group by org order by org")
        .await
        .expect("sql")
        .collect()
        .await
        .expect("collect");
    assert_eq!(
        rows(&batches),
        vec![vec!["acme_corp", "30", "30"], vec!["globex", "30", "30"], vec!["initech", "30", "30"]]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_tenant_simulator_wants_an_org_and_only_its_own() {
    let mut cfg = SimulatorConfig::new(10, 7);
    cfg.orgs = 2;
    let sim = Simulator::start(cfg).await.expect("sim");
    jcsql::jumpcloud::client::install_crypto_provider();
    let http = reqwest::Client::new();
    let get = |org: Option<&str>| {
        let mut r = http.get(format!("{}/api/systemusers", sim.base_url())).header("x-api-key", "jca_demo");
        if let Some(o) = org {
            r = r.header("x-org-id", o);
        }
        r.send()
    };
    assert_eq!(get(None).await.expect("get").status(), 401);
    assert_eq!(get(Some("5f00000000000000000fffff")).await.expect("get").status(), 403);
    assert_eq!(get(Some(&sim.org_at(1).org_id)).await.expect("get").status(), 200);
}

fn all_tables_len() -> i64 {
    jcsql::jumpcloud::tables::all_tables().len() as i64
}

//! Every table's rows and a sample of exact values equal the simulator's generated org.

use crate::common::*;
use jcsql::jumpcloud::tables::all_tables;
use jcsql::table::PRIMARY_FIELD_KEY;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_matches_the_generated_org() {
    let t = start(300).await;
    let org = t.sim.org();
    let e = &t.engine;
    let views = jcsql::jumpcloud::tables::VIEWS.iter().map(|v| v.name);
    for name in all_tables().iter().map(|d| d.name).chain(views) {
        let expected = org.rows_of(name).unwrap_or_else(|| panic!("the simulator serves {name}"));
        assert!(expected > 0, "the generated org has {name}");
        assert_eq!(count(e, &format!("select count(*) from jumpcloud.{name}")).await, expected as i64, "{name}");
    }
    assert_eq!(org.users.len(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relations_come_from_the_definitions() {
    use jcsql::jumpcloud::tables::VIEWS;
    use jcsql::table::relations_of;
    let pairs = |table: &str| -> Vec<String> {
        relations_of(table, all_tables(), VIEWS)
            .iter()
            .map(|r| format!("{}.{} = {}.{}", r.table, r.column, r.other_table, r.other_column))
            .collect()
    };
    assert_eq!(
        pairs("users"),
        vec![
            "users.manager_id = users.id",
            "users.id = users.manager_id",
            "users.id = devices.primary_system_user_id",
            "users.id = user_group_members.user_id",
            "users.id = device_users.user_id",
            "users.id = application_users.user_id",
            "users.id = user_application_access.user_id",
        ]
    );
    assert_eq!(pairs("device_users"), vec!["device_users.device_id = devices.id", "device_users.user_id = users.id"]);
    // Every reference points to a table of the registry, and every relation table to its parent.
    for def in all_tables() {
        for c in &def.columns {
            if let Some(target) = c.references {
                assert!(all_tables().iter().any(|t| t.name == target), "{}.{} → {target}", def.name, c.name);
            }
        }
        if let Some(parent) = def.parent_table() {
            let col = def.parent_column().expect("a parent column");
            assert_eq!(def.column(col).and_then(|c| c.references), Some(parent), "{}", def.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_values_are_exact_including_nulls_and_non_ascii() {
    let t = start(300).await;
    let org = t.sim.org();
    let e = &t.engine;
    for u in org.users.iter().step_by(37) {
        let r = strings(
            e,
            &format!(
                "select username, email, displayname, state, suspended, mfa_configured, manager_id, employee_identifier, \
                 department, job_title, cost_center, created, unix_uid from jumpcloud.users where id = '{}'",
                u.id
            ),
        )
        .await;
        assert_eq!(r.len(), 1, "one row for {}", u.id);
        let created = chrono::DateTime::parse_from_rfc3339(&u.created).expect("generated date");
        let expected = vec![
            u.username.clone(),
            u.email.clone(),
            u.displayname.clone(),
            u.state.map(str::to_string).unwrap_or("NULL".into()),
            u.suspended.to_string(),
            u.mfa.configured.to_string(),
            u.manager.clone().unwrap_or("NULL".into()),
            u.employee_identifier.clone().unwrap_or("NULL".into()),
            u.department.clone(),
            u.job_title.clone(),
            // Empty strings stay empty strings.
            String::new(),
            created.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            u.unix_uid.to_string(),
        ];
        assert_eq!(r[0], expected);
    }
    // Non-ASCII names arrive intact.
    let non_ascii = org.users.iter().filter(|u| !u.displayname.is_ascii()).count() as i64;
    assert!(non_ascii > 0);
    assert_eq!(
        count(
            e,
            "select count(*) from jumpcloud.users where displayname <> regexp_replace(displayname, '[^ -~]', '', 'g')"
        )
        .await,
        non_ascii
    );
    // Absent fields are NULL (no `state` on some older records, no manager on department heads).
    let no_state = org.users.iter().filter(|u| u.state.is_none()).count() as i64;
    assert_eq!(count(e, "select count(*) from jumpcloud.users where state is null").await, no_state);
    let no_manager = org.users.iter().filter(|u| u.manager.is_none()).count() as i64;
    assert_eq!(count(e, "select count(*) from jumpcloud.users where manager_id is null").await, no_manager);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_larger_than_two_pages_is_complete() {
    let t = start(300).await;
    let org = t.sim.org();
    let (gi, biggest) = org.group_members.iter().enumerate().max_by_key(|(_, m)| m.len()).expect("groups");
    assert!(biggest.len() > 250, "the generator plants a group of more than 250 members");
    let sql = format!(
        "select count(*), count(distinct m.user_id) from jumpcloud.user_group_members m \
         join jumpcloud.user_groups g on g.id = m.group_id where g.name = '{}'",
        org.groups[gi].name
    );
    let r = strings(&t.engine, &sql).await;
    assert_eq!(r[0], vec![biggest.len().to_string(), biggest.len().to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_and_apps_flatten_types_and_hide_secrets() {
    let t = start(300).await;
    let org = t.sim.org();
    let e = &t.engine;
    let d = &org.devices[3];
    let r = strings(
        e,
        &format!(
            "select display_name, hostname, serial_number, os, arch, fde_active, fde_key_present, primary_system_user_id, \
             arrow_typeof(last_contact), json_length(network_interfaces) from jumpcloud.devices where id = '{}'",
            d.id
        ),
    )
    .await;
    assert_eq!(
        r[0],
        vec![
            d.display_name.clone(),
            d.hostname.clone(),
            d.serial_number.clone(),
            d.os.to_string(),
            d.arch.to_string(),
            d.fde["active"].to_string(),
            d.fde["keyPresent"].to_string(),
            d.primary_system_user
                .as_ref()
                .map(|p| p["id"].as_str().unwrap_or_default().to_string())
                .unwrap_or("NULL".into()),
            "Timestamp(µs, \"UTC\")".to_string(),
            "1".to_string(),
        ]
    );
    // The device token and SAML private keys never reach a column, not even JSON text.
    let all_devices = rows(&query(e, "select * from jumpcloud.devices").await).concat().join("|");
    for dev in &org.devices {
        assert!(!all_devices.contains(&dev.system_token), "systemToken leaked");
    }
    assert!(!all_devices.contains("system_token"));
    let all_apps = rows(&query(e, "select * from jumpcloud.applications").await).concat().join("|");
    assert!(all_apps.contains("acsUrl"), "config is kept as JSON text");
    assert!(!all_apps.contains("PRIVATE KEY") && !all_apps.contains("idpPrivateKey"), "private key leaked");
    let acs =
        strings(e, "select json_get_str(config, 'acsUrl', 'value') from jumpcloud.applications order by id limit 1")
            .await;
    assert_eq!(acs[0][0], format!("https://{}.example/acs", org.applications[0].name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_record_the_primary_field_and_required_columns() {
    let t = start(20).await;
    for def in all_tables() {
        let schema = def.schema();
        if let Some(p) = def.primary {
            let f = schema.field_with_name(p).expect("primary column exists");
            assert_eq!(f.metadata().get(PRIMARY_FIELD_KEY).map(String::as_str), Some("true"), "{}", def.name);
        }
        assert!(schema.field_with_name("_fetched_at").is_ok());
    }
    let required: &[(&str, &str)] = &[
        (
            "users",
            "id, username, email, firstname, lastname, displayname, state, activated, suspended, account_locked, account_locked_date, mfa_configured, mfa_exclusion, mfa_exclusion_until, totp_enabled, password_date, password_expired, password_never_expires, password_expiration_date, department, job_title, company, employee_identifier, employee_type, location, manager_id, created",
        ),
        ("user_groups", "id, name, description, type, membership_method, email"),
        (
            "devices",
            "id, display_name, hostname, serial_number, os, os_family, version, arch, agent_version, active, last_contact, created, fde_active, fde_key_present, remote_ip, primary_system_user_id",
        ),
        ("applications", "id, name, display_label, display_name, sso_url, active, beta, created"),
        ("user_group_members", "group_id, user_id"),
        ("device_users", "device_id, user_id, sudo_enabled, sudo_without_password"),
        ("application_user_groups", "application_id, group_id"),
        ("application_users", "application_id, user_id"),
        ("user_application_access", "user_id, application_id, via_group_id"),
    ];
    for (table, cols) in required {
        let sql = format!("select {cols} from jumpcloud.{table} limit 1");
        query(&t.engine, &sql).await;
    }
    let types = strings(
        &t.engine,
        "select column_name, data_type from information_schema.columns where table_schema = 'jumpcloud' \
         and table_name = 'users' and column_name in ('created', 'password_date', 'mfa_exclusion_until') order by 1",
    )
    .await;
    assert_eq!(types.len(), 3);
    for row in types {
        assert_eq!(row[1], "Timestamp(µs, \"UTC\")", "{}", row[0]);
    }
}

/// Connections are values: two JumpCloud orgs live in one engine, each a schema with its own
/// client, cache folder and views, and a query on one never asks the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_orgs_live_in_one_engine() {
    use jcsql::jumpcloud::simulator::{Simulator, SimulatorConfig};
    use jcsql::{ConnectionOptions, Engine, EngineOptions};
    let first = Simulator::start(SimulatorConfig::new(40, 7)).await.expect("sim");
    let second = Simulator::start(SimulatorConfig::new(70, 9)).await.expect("sim");
    let dir = tempfile::tempdir().expect("dir");
    let e = Engine::new(EngineOptions {
        client: Some(fast_client(first.base_url(), first.api_key())),
        connections: vec![ConnectionOptions {
            name: "jumpcloud_beta".into(),
            client: Some(fast_client(second.base_url(), second.api_key())),
        }],
        cache_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .await
    .expect("engine");
    first.clear_requests();
    let (one, two) = (first.org(), second.org());
    assert_eq!(count(&e, "select count(*) from jumpcloud_beta.users").await, 70);
    assert_eq!(first.request_count(), 0, "the other org is not asked");
    assert_eq!(
        count(&e, "select count(*) from jumpcloud_beta.user_application_access").await,
        two.rows_of("user_application_access").expect("served") as i64
    );
    assert_eq!(
        count(&e, "select count(*) from jumpcloud.user_application_access").await,
        one.rows_of("user_application_access").expect("served") as i64
    );
    let both = strings(
        &e,
        "select schema_name, count(*), sum(case when status = 'fresh' then 1 else 0 end) from jcsql.tables \
         group by schema_name order by 1",
    )
    .await;
    let n = all_tables().len().to_string();
    assert_eq!(
        both,
        vec![vec!["jumpcloud".to_string(), n.clone(), "5".into()], vec!["jumpcloud_beta".into(), n, "6".into()]]
    );
    for schema in ["jumpcloud", "jumpcloud_beta"] {
        assert!(
            dir.path().join("cache").join(schema).join("applications.arrow").is_file(),
            "{schema} has its own folder"
        );
    }
    // `.fields` derives each org's relations within its own schema.
    let found =
        jcsql::sources::joinable_fields(e.context(), &e.connection_schemas(), "jumpcloud_beta.users", &[], false)
            .await
            .expect("fields");
    assert!(found.iter().any(|f| f.other_table == "jumpcloud_beta.user_group_members"), "{found:?}");
    assert!(found.iter().all(|f| f.other_table.starts_with("jumpcloud_beta.")), "{found:?}");
}

/// The snapshots tell DataFusion their statistics (rows, nulls, range, distinct values). With
/// them the natural access query builds its hash table on the few active users instead of on
/// every access path (a semi join with the users on the build side), and `min`, `max` and
/// `count(*)` are answered from the statistics, with the same values a scan gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_put_the_small_side_in_memory_and_answer_exactly() {
    let t = start(1500).await;
    let e = &t.engine;
    let plan = strings(
        e,
        "explain select a.display_label, count(distinct x.user_id) as users
         from jumpcloud.user_application_access x
         join jumpcloud.applications a on a.id = x.application_id
         join jumpcloud.users u on u.id = x.user_id
         where u.state = 'ACTIVATED'
         group by a.display_label",
    )
    .await;
    let physical = plan.iter().find(|r| r[0] == "physical_plan").map(|r| r[1].clone()).expect("physical plan");
    assert!(physical.contains("join_type=RightSemi, on=[(id@0, user_id@0)]"), "{physical}");
    // The join's first input (its build side), under the gathering of partitions on several cores.
    let semi_join_build = physical
        .lines()
        .skip_while(|l| !l.contains("RightSemi"))
        .skip(1)
        .find(|l| !l.contains("CoalescePartitionsExec"))
        .unwrap_or_default();
    assert!(semi_join_build.contains("FilterExec: state@1 = ACTIVATED"), "{physical}");

    let from_statistics =
        "select count(*), min(username), max(username), min(created), max(created) from jumpcloud.users";
    let plan = strings(e, &format!("explain {from_statistics}")).await;
    let physical = plan.iter().find(|r| r[0] == "physical_plan").map(|r| r[1].clone()).expect("physical plan");
    assert!(!physical.contains("AggregateExec"), "answered without reading the rows: {physical}");
    let scanned = strings(e, &format!("{from_statistics} where id <> ''")).await;
    assert_eq!(strings(e, from_statistics).await, scanned);
    let org = t.sim.org();
    let names: Vec<&str> = org.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(scanned[0][0], "1500");
    assert_eq!(scanned[0][1], names.iter().min().copied().unwrap_or_default());
    assert_eq!(scanned[0][2], names.iter().max().copied().unwrap_or_default());
}

/// The kept access view is laid out by application: each application's paths on one core (the
/// one DataFusion's own exchange would pick) and sorted. Counting distinct people per application
/// runs in one stage without an exchange, and a join that exchanges the other side by the same
/// hash still meets the right rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_view_is_laid_out_by_application_and_joins_stay_exact() {
    let t = start(600).await;
    let e = &t.engine;
    let org = t.sim.org();
    let mut people: Vec<Vec<String>> = Vec::new();
    let mut paths: Vec<Vec<String>> = Vec::new();
    for (a, app) in org.applications.iter().enumerate() {
        let mut reach: std::collections::BTreeSet<usize> = org.app_users[a].iter().copied().collect();
        let mut n = org.app_users[a].len();
        for &g in &org.app_groups[a] {
            reach.extend(org.group_members[g].iter().copied());
            n += org.group_members[g].len();
        }
        if !reach.is_empty() {
            people.push(vec![app.id.clone(), reach.len().to_string()]);
        }
        if n > 0 {
            paths.push(vec![app.id.clone(), n.to_string()]);
        }
    }
    people.sort();
    paths.sort();
    assert!(people.len() >= 5, "{} applications reached", people.len());

    let per_app = "select application_id, count(distinct user_id) from jumpcloud.user_application_access \
                   group by application_id order by application_id";
    // A process's first read plans the view's query (a one-shot run reads it once); the rows are
    // kept, laid out, from the second on.
    assert_eq!(strings(e, per_app).await, people);
    let plan = strings(e, &format!("explain {per_app}")).await;
    let physical = plan.iter().find(|r| r[0] == "physical_plan").map(|r| r[1].clone()).expect("physical plan");
    assert!(!physical.contains("RepartitionExec"), "no exchange between cores: {physical}");
    // `SinglePartitioned` on several cores, `Single` on one.
    assert!(physical.contains("AggregateExec: mode=Single"), "{physical}");
    assert_eq!(strings(e, per_app).await, people);

    // Force the join to exchange both sides by hash: the applications side is hashed by
    // DataFusion, the access side is taken as already laid out.
    query(e, "set datafusion.optimizer.hash_join_single_partition_threshold = 0").await;
    query(e, "set datafusion.optimizer.hash_join_single_partition_threshold_rows = 0").await;
    let joined = "select a.id, count(*) from jumpcloud.user_application_access x \
                  join jumpcloud.applications a on a.id = x.application_id group by a.id order by a.id";
    let plan = strings(e, &format!("explain {joined}")).await;
    let physical = plan.iter().find(|r| r[0] == "physical_plan").map(|r| r[1].clone()).expect("physical plan");
    if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        assert!(physical.contains("mode=Partitioned"), "{physical}");
    }
    assert_eq!(strings(e, joined).await, paths);
}

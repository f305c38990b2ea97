"""psycopg 3 (the driver behind pandas, Superset and dbt) against `jcsql serve`: server identity,
a parameterised query read into Python types, a cursor over many rows, and what jcsql refuses.
Prints one JSON object; the Rust test compares it exactly.

Run: PGPASSWORD=… python3 psycopg_session.py URL USER_ID
"""
import json
import sys

import psycopg

url, user_id = sys.argv[1], sys.argv[2]
facts = {}
with psycopg.connect(url, application_name="psycopg-test", connect_timeout=10) as conn:
    facts["server_version"] = conn.info.server_version
    facts["database"] = conn.info.dbname
    with conn.cursor() as cur:
        cur.execute("select current_database(), current_user, session_user, version()")
        db, current, session, version = cur.fetchone()
        facts.update(current_database=db, current_user=current, session_user=session, version=version)
        cur.execute("select current_setting('application_name'), current_setting('server_version_num')::int")
        facts["application_name"], facts["server_version_num"] = cur.fetchone()
        cur.execute("select set_config('search_path', 'jumpcloud', false)")
        facts["set_config"] = cur.fetchone()[0]
        cur.execute("show search_path")
        facts["search_path"] = cur.fetchone()[0]

        cur.execute(
            "select username, email, suspended, created, manager_id from jumpcloud.users where id = %s",
            (user_id,),
        )
        username, email, suspended, created, manager = cur.fetchone()
        facts.update(
            username=username,
            email=email,
            suspended=suspended,
            suspended_type=type(suspended).__name__,
            created=created.isoformat(),
            manager=manager,
        )
        # Server-side binding with a typed parameter and a text one.
        cur.execute(
            "select count(*) from jumpcloud.users where suspended = %s and email like %s",
            (False, "%@%"),
        )
        facts["active_with_email"] = cur.fetchone()[0]
        cur.execute("select id from jumpcloud.users order by id")
        facts["ids"] = len(cur.fetchall())

    refused = {}
    for name, sql in [
        ("create", "create table t (a int)"),
        ("insert", "insert into jumpcloud.users (id) values ('x')"),
        ("action", f"select suspend_user('{user_id}')"),
    ]:
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
            refused[name] = "NOT REFUSED"
        except psycopg.Error as e:
            refused[name] = e.sqlstate
            conn.rollback()
    facts["refused"] = refused
    with conn.cursor() as cur:
        cur.execute("select count(*) from jumpcloud.users")
        facts["users_after"] = cur.fetchone()[0]
        # Django's psycopg backend, on every new connection: the value is a parameter.
        cur.execute("select set_config('TimeZone', %s, false)", ("Europe/Berlin",))
        facts["django_set_config"] = cur.fetchone()[0]
        cur.execute("show timezone")
        facts["timezone"] = cur.fetchone()[0]
print(json.dumps(facts, sort_keys=True))

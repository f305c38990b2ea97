"""DuckDB's side of examples/bench.rs: load jcsql's Parquet export into an in-memory DuckDB,
define the same access view, run each natural query (median of RUNS after one warm-up) and print
one line per query: `name<TAB>milliseconds<TAB>rows`.

usage: python3 duckdb_side_by_side.py PARQUET_DIR QUERIES.sql RUNS VIEW_SQL
"""
import statistics
import sys
import time

import duckdb

parquet_dir, queries_file, runs, view_sql = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
con = duckdb.connect()
con.execute("set threads = 2")
con.execute("create schema jumpcloud")
import os
for f in sorted(os.listdir(parquet_dir)):
    if f.endswith(".parquet"):
        table = f[: -len(".parquet")]
        con.execute(f"create table jumpcloud.{table} as select * from read_parquet('{parquet_dir}/{f}')")
con.execute(f"create view jumpcloud.user_application_access as {view_sql}")

queries, name, lines = [], None, []
for line in open(queries_file):
    if line.startswith("-- name:"):
        if name:
            queries.append((name, "".join(lines)))
        name, lines = line.split(":", 1)[1].strip(), []
    elif name and not line.startswith("--"):
        lines.append(line)
if name:
    queries.append((name, "".join(lines)))

for name, sql in queries:
    sql = sql.strip().rstrip(";")
    rows = len(con.execute(sql).fetchall())
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        con.execute(sql).fetchall()
        times.append((time.perf_counter() - t) * 1000)
    print(f"{name}\t{statistics.median(times):.3f}\t{rows}", flush=True)

"""DuckDB's native table against `opentrail query`, the same group-by, alternately.

    python crates/bench/sql_alternating.py WORK_DIR OPENTRAIL_BINARY [ROUNDS]

WORK_DIR is a 10M run kept with `opentrail-bench --work-dir WORK_DIR` (its gz log files,
`duckdb_queries.json`, `duckdb_lookups.py` and the server's `data`). The harness times the
two in separate phases, so load that changes between them moves its ratio; alternating
round by round does not. Run with the venv the harness made (duckdb pinned there).
"""
import json
import statistics
import subprocess
import sys
import time

work_dir, binary = sys.argv[1], sys.argv[2]
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 7
sys.path.insert(0, work_dir)
import duckdb  # noqa: E402
from duckdb_lookups import RECORD  # noqa: E402  (the record type the harness reads with)

spec = json.load(open(f"{work_dir}/duckdb_queries.json"))
con = duckdb.connect()
gz = ("(SELECT unnest(record) FROM (SELECT unnest(Records) AS record FROM read_json("
      f"'{spec['logs_glob']}', columns = {{'Records': '{RECORD}[]'}},"
      " maximum_object_size = 268435456)))")
started = time.perf_counter()
con.execute(f"CREATE TABLE events AS SELECT * FROM {gz}")
rows = con.execute("SELECT count(*) FROM events").fetchone()[0]
print(f"DuckDB {duckdb.__version__} loaded {rows} rows in {time.perf_counter() - started:.0f} s")
query = "SELECT eventName, COUNT(*) AS n FROM events GROUP BY eventName ORDER BY n DESC, eventName"
duck, ours = [], []
for round_number in range(rounds):
    started = time.perf_counter()
    con.execute(query).fetchall()
    duck.append((time.perf_counter() - started) * 1000)
    run = subprocess.run(
        [binary, "query", "--quiet", "--stats", "--output", "json",
         "--data-dir", f"{work_dir}/data", query],
        capture_output=True, text=True, check=True)
    stats = json.loads(run.stderr.strip().splitlines()[-1])
    ours.append(stats["execution_ms"])
    print(f"{round_number}: DuckDB {duck[-1]:.0f} ms, OpenTrail {ours[-1]:.0f} ms "
          f"({stats['events_scanned']} events)")
print(f"median DuckDB {statistics.median(duck):.0f} ms, OpenTrail {statistics.median(ours):.0f} ms,"
      f" ratio {statistics.median(ours) / statistics.median(duck):.2f}")

"""DuckDB side of opentrail-bench: the same LookupEvents queries as SQL WHERE clauses,
first over read_json of the CloudTrail gz log files (as a responder runs them), then over
a native DuckDB table loaded from those files (the "fast columnar engine" bound).

Usage: python duckdb_lookups.py QUERIES.json RESULTS.json
QUERIES.json: {"logs_glob", "region", "start", "end", "limit", "native_repeats",
               "queries": [{"attribute", "value", "gz"}],
               "sql": [{"name", "duckdb", "opentrail"}],   (DuckDB's SQL with {source})
               "opentrail": {"binary", "data_dir"} or null}
Writes timings, the event ids each engine returned, and for each query the full set of
matching ids at or after the page's oldest eventTime (to compare pages whose last second
holds more matches than fit: such ties may be broken differently by each engine).
"""
import json
import os
import subprocess
import sys
import time

import duckdb

# Only the members the lookups read; DuckDB ignores the others. Declaring them keeps
# DuckDB from sampling files to infer a schema, which is the fastest way to run it.
RECORD = (
    "STRUCT(eventID VARCHAR, eventTime VARCHAR, eventName VARCHAR, eventSource VARCHAR,"
    " awsRegion VARCHAR, readOnly BOOLEAN, errorCode VARCHAR,"
    " userIdentity STRUCT(type VARCHAR, userName VARCHAR, arn VARCHAR,"
    " accessKeyId VARCHAR, invokedBy VARCHAR),"
    " resources STRUCT(type VARCHAR, ARN VARCHAR)[])"
)

# CloudTrail's Username as OpenTrail derives it (crates/event/src/attributes.rs), for the
# identity types the generator writes.
USERNAME = (
    "CASE userIdentity.type"
    " WHEN 'IAMUser' THEN userIdentity.userName"
    " WHEN 'Root' THEN coalesce(userIdentity.userName, 'root')"
    " WHEN 'AssumedRole' THEN regexp_extract(userIdentity.arn, '[^/]+$')"
    " WHEN 'AWSService' THEN userIdentity.invokedBy"
    " ELSE coalesce(userIdentity.userName, regexp_extract(userIdentity.arn, '[^/]+$'),"
    " userIdentity.invokedBy) END"
)

CONDITIONS = {
    "EventId": "eventID = $value",
    "EventName": "eventName = $value",
    "ReadOnly": "readOnly = ($value = 'true')",
    "Username": USERNAME + " = $value",
    "ResourceType": "list_contains(list_transform(resources, lambda r: r.type), $value)",
    "ResourceName": "list_contains(list_transform(resources, lambda r: r.ARN), $value)",
    "EventSource": "eventSource = $value",
    "AccessKeyId": "userIdentity.accessKeyId = $value",
}


def opentrail_query(opentrail, sql):
    """`opentrail query` on a stopped server's data dir: its execution time as it reports it
    (the data dir's opening excluded, as DuckDB's table is already loaded)."""
    run = subprocess.run(
        [opentrail["binary"], "query", "--quiet", "--stats", "--output", "json",
         "--data-dir", opentrail["data_dir"], sql],
        capture_output=True, text=True, check=True,
        env={key: value for key, value in os.environ.items()
             if key not in ("OPENTRAIL_CONFIG", "OPENTRAIL_DATA_DIR")})
    return float(json.loads(run.stderr.strip().splitlines()[-1])["execution_ms"])


def main():
    spec = json.load(open(sys.argv[1]))
    limit = int(spec["limit"])
    con = duckdb.connect()
    scope = "awsRegion = $region AND eventTime >= $start AND eventTime <= $end"
    # One row per file holding the Records list; one row per record after the unnests.
    gz_source = (
        "(SELECT unnest(record) FROM (SELECT unnest(Records) AS record FROM read_json("
        f"'{spec['logs_glob']}', columns = {{'Records': '{RECORD}[]'}},"
        " maximum_object_size = 268435456)))"
    )
    results = {"duckdb_version": duckdb.__version__, "queries": []}

    def run(source, query):
        sql = (
            f"SELECT eventID, eventTime FROM {source} WHERE {scope} AND "
            f"{CONDITIONS[query['attribute']]} ORDER BY eventTime DESC LIMIT {limit}"
        )
        params = {
            "value": query["value"],
            "region": spec["region"],
            "start": spec["start"],
            "end": spec["end"],
        }
        started = time.perf_counter()
        rows = con.execute(sql, params).fetchall()
        return (time.perf_counter() - started) * 1000.0, rows, params

    for query in spec["queries"]:
        entry = {"attribute": query["attribute"], "value": query["value"],
                 "gz_ms": None, "gz_ids": None}
        # Each gz query reads every file; --quick runs it for some attributes only.
        if query.get("gz", True):
            elapsed, rows, _ = run(gz_source, query)
            entry["gz_ms"] = elapsed
            entry["gz_ids"] = [row[0] for row in rows]
            print(f"duckdb gz {query['attribute']}: {elapsed:.0f} ms", file=sys.stderr, flush=True)
        results["queries"].append(entry)

    started = time.perf_counter()
    con.execute(f"CREATE TABLE events AS SELECT * FROM {gz_source}")
    results["native_load_ms"] = (time.perf_counter() - started) * 1000.0
    results["native_rows"] = con.execute("SELECT count(*) FROM events").fetchone()[0]

    for entry, query in zip(results["queries"], spec["queries"]):
        timings = []
        for _ in range(int(spec["native_repeats"])):
            elapsed, rows, params = run("events", query)
            timings.append(elapsed)
        entry["native_ms"] = timings
        entry["native_ids"] = [row[0] for row in rows]
        # Every match at or after the page's oldest second, with its time.
        if rows:
            boundary = min(row[1] for row in rows)
            tie_sql = (
                f"SELECT eventID, eventTime FROM events WHERE {scope} AND "
                f"{CONDITIONS[query['attribute']]} AND eventTime >= $boundary"
            )
            tie_rows = con.execute(tie_sql, dict(params, boundary=boundary)).fetchall()
            entry["boundary"] = boundary
            entry["candidates"] = [[row[0], row[1]] for row in tie_rows]
        else:
            entry["boundary"] = None
            entry["candidates"] = []

    # The SQL group-bys (issue 14): once over the gz files, then over the native table,
    # each native run followed by `opentrail query` with the same question when the spec
    # names a data dir. Alternating round by round keeps a change in the machine's load
    # from landing on one engine only (the two ran minutes apart before, and a shared
    # machine moved their ratio between 1.2 and 2.9).
    results["sql"] = []
    opentrail = spec.get("opentrail")
    for query in spec.get("sql", []):
        started = time.perf_counter()
        con.execute(query["duckdb"].replace("{source}", gz_source)).fetchall()
        gz_ms = (time.perf_counter() - started) * 1000.0
        native_ms, opentrail_ms = [], []
        for _ in range(int(spec["native_repeats"])):
            started = time.perf_counter()
            rows = con.execute(query["duckdb"].replace("{source}", "events")).fetchall()
            native_ms.append((time.perf_counter() - started) * 1000.0)
            if opentrail:
                opentrail_ms.append(opentrail_query(opentrail, query["opentrail"]))
        print(f"duckdb sql {query['name']}: gz {gz_ms:.0f} ms, native {min(native_ms):.0f} ms"
              + (f", opentrail alternately {min(opentrail_ms):.0f} ms" if opentrail_ms else ""),
              file=sys.stderr, flush=True)
        results["sql"].append({
            "name": query["name"], "gz_ms": gz_ms, "native_ms": native_ms,
            "opentrail_ms": opentrail_ms,
            "rows": [["" if value is None else str(value) for value in row] for row in rows],
        })

    json.dump(results, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()

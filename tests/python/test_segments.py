"""The store's sealed segments: their Parquet columns are what DuckDB and DataFusion read,
and they agree with the store's own lookups."""

from __future__ import annotations

import time
from collections import Counter

import datafusion
import duckdb

import otlib


def _segment_parquet(server) -> str:
    return str(server.data_dir / "store" / "segments" / "*.parquet")


def _parquet_count(server, where: str) -> int:
    if not list((server.data_dir / "store" / "segments").glob("*.parquet")):
        return 0
    return duckdb.execute(
        "SELECT count(*) FROM read_parquet(?) WHERE " + where, [_segment_parquet(server)]
    ).fetchone()[0]


def test_duckdb_counts_per_event_name_over_segments_equal_the_store(server_factory):
    server = server_factory(extra_env={"OPENTRAIL_SEAL_INTERVAL_SECS": "1"})
    prefix = otlib.uniq("Seg")
    names = [f"{prefix}Put", f"{prefix}Get", f"{prefix}Delete"]
    when = otlib.utcnow().replace(year=2024, month=6, day=3)
    records = [
        otlib.cloudtrail_event(names[i % 3] if i % 5 else names[2], event_time=when, event_id=f"{prefix}-{i}")
        for i in range(120)
    ]
    server.ingest_ok(records)
    # Resending stores nothing new: no extra Parquet rows either.
    resent = server.ingest(records[:10])
    assert len(resent["duplicates"]) == 10 and resent["failed"] == []

    where = f"eventname LIKE '{prefix}%'"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _parquet_count(server, where) < len(records):
        time.sleep(0.3)
    assert _parquet_count(server, where) == len(records), server.logs()

    by_duckdb = dict(
        duckdb.execute(
            f"SELECT eventname, count(*) FROM read_parquet(?) WHERE {where} GROUP BY eventname",
            [_segment_parquet(server)],
        ).fetchall()
    )
    client = server.client()
    by_store = Counter()
    for name in names:
        paginator = client.get_paginator("lookup_events")
        for page in paginator.paginate(
            LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": name}],
            StartTime=when.replace(hour=0, minute=0),
        ):
            by_store[name] += len(page["Events"])
    assert by_duckdb == dict(by_store)
    assert sum(by_duckdb.values()) == len(records)

    row = duckdb.execute(
        "SELECT eventid, eventsource, recipientaccountid, awsregion, username, eventtime "
        "FROM read_parquet(?) WHERE eventid = ?",
        [_segment_parquet(server), f"{prefix}-7"],
    ).fetchone()
    assert row[0] == f"{prefix}-7"
    assert row[1] == "dynamodb.amazonaws.com"
    assert row[2] == otlib.ACCOUNT_ID and row[3] == otlib.REGION
    assert row[4] == "alice"
    assert (row[5].year, row[5].month, row[5].day) == (2024, 6, 3)


def test_datafusion_reads_segment_parquet_as_it_is(server_factory):
    server = server_factory(extra_env={"OPENTRAIL_SEAL_INTERVAL_SECS": "1"})
    name = otlib.uniq("SegFusion")
    when = otlib.utcnow().replace(year=2023, month=9, day=1)
    server.ingest_ok([otlib.cloudtrail_event(name, event_time=when, event_id=f"{name}-{i}") for i in range(9)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _parquet_count(server, f"eventname = '{name}'") < 9:
        time.sleep(0.3)
    context = datafusion.SessionContext()
    context.register_parquet("events", str(server.data_dir / "store" / "segments"), file_extension=".parquet")
    table = context.sql(f"SELECT count(*) AS n FROM events WHERE eventname = '{name}'").to_pydict()
    assert table["n"] == [9], server.logs()

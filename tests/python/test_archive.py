"""The Parquet archive: events reach it on their own, and DuckDB reads it as it is."""

from __future__ import annotations

import time

import datafusion
import duckdb
import pyarrow

import otlib


def _archived_rows(archive_dir, where: str) -> int:
    files = list(archive_dir.glob("event_date=*/*.parquet"))
    if not files:
        return 0
    query = (
        "SELECT count(*) FROM read_parquet(?, hive_partitioning = true) WHERE " + where
    )
    return duckdb.execute(query, [str(archive_dir / "event_date=*" / "*.parquet")]).fetchone()[0]


def test_ingested_events_are_archived_as_parquet_that_duckdb_reads(server_factory):
    server = server_factory(extra_env={"OPENTRAIL_ARCHIVE_SEAL_AGE_SECS": "1"})
    name = otlib.uniq("Archived")
    day_one = otlib.utcnow().replace(year=2024, month=3, day=1)
    day_two = day_one.replace(day=2)
    records = [
        otlib.cloudtrail_event(name, event_time=day_one if i % 2 else day_two, event_id=f"{name}-{i}")
        for i in range(20)
    ]
    server.ingest_ok(records)

    archive = server.data_dir / "archive"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _archived_rows(archive, f"eventname = '{name}'") < 20:
        time.sleep(0.5)
    assert _archived_rows(archive, f"eventname = '{name}'") == 20, server.logs()

    partitions = sorted(p.name for p in archive.glob("event_date=*") if any(p.glob("*.parquet")))
    assert "event_date=2024-03-01" in partitions and "event_date=2024-03-02" in partitions, partitions
    row = duckdb.execute(
        "SELECT eventid, eventsource, readonly, useridentity_username, "
        "json_extract_string(useridentity, '$.userName'), eventtime "
        "FROM read_parquet(?, hive_partitioning = true) WHERE eventid = ?",
        [str(archive / "event_date=*" / "*.parquet"), f"{name}-3"],
    ).fetchone()
    assert row[0] == f"{name}-3"
    assert row[1] == "dynamodb.amazonaws.com"
    assert row[2] is False
    assert row[3] == "alice" and row[4] == "alice"
    assert row[5].year == 2024


def test_datafusion_reads_the_archive_as_it_is(server_factory):
    server = server_factory(extra_env={"OPENTRAIL_ARCHIVE_SEAL_AGE_SECS": "1"})
    name = otlib.uniq("Fusion")
    when = otlib.utcnow().replace(year=2023, month=7, day=10)
    server.ingest_ok([otlib.cloudtrail_event(name, event_time=when, event_id=f"{name}-{i}") for i in range(7)])
    archive = server.data_dir / "archive"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _archived_rows(archive, f"eventname = '{name}'") < 7:
        time.sleep(0.5)

    context = datafusion.SessionContext()
    context.register_parquet(
        "events",
        str(archive),
        table_partition_cols=[("event_date", pyarrow.string())],
        file_extension=".parquet",
    )
    rows = context.sql(
        f"SELECT event_date, count(*) AS n, min(useridentity_username) AS who "
        f"FROM events WHERE eventname = '{name}' GROUP BY event_date"
    ).to_pylist()
    assert rows == [{"event_date": "2023-07-10", "n": 7, "who": "alice"}], rows

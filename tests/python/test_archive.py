"""The Parquet archive: events reach it on their own, and DuckDB reads it as it is.

By default an event moves to the archive the day before the store's retention drops it
(`archive_after_days`), so recent events are kept once, in the store's segments; these
tests set `OPENTRAIL_ARCHIVE_AFTER_DAYS=0` to archive at once, except the one about that
default.
"""

from __future__ import annotations

import time

import datafusion
import duckdb
import pyarrow

import otlib


ARCHIVE_AT_ONCE = {"OPENTRAIL_ARCHIVE_SEAL_AGE_SECS": "1", "OPENTRAIL_ARCHIVE_AFTER_DAYS": "0"}


def _archived_rows(archive_dir, where: str) -> int:
    files = list(archive_dir.glob("event_date=*/*.parquet"))
    if not files:
        return 0
    query = (
        "SELECT count(*) FROM read_parquet(?, hive_partitioning = true) WHERE " + where
    )
    return duckdb.execute(query, [str(archive_dir / "event_date=*" / "*.parquet")]).fetchone()[0]


def test_ingested_events_are_archived_as_parquet_that_duckdb_reads(server_factory):
    server = server_factory(extra_env=ARCHIVE_AT_ONCE)
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
    server = server_factory(extra_env=ARCHIVE_AT_ONCE)
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


def test_recent_events_are_kept_once_in_the_store_until_they_are_due_for_the_archive(server_factory):
    server = server_factory(
        extra_env={"OPENTRAIL_ARCHIVE_SEAL_AGE_SECS": "1", "OPENTRAIL_SEAL_INTERVAL_SECS": "1"}
    )
    name = otlib.uniq("Recent")
    now = otlib.utcnow()
    server.ingest_ok([otlib.cloudtrail_event(name, event_time=now, event_id=f"{name}-{i}") for i in range(12)])
    segments = server.data_dir / "store" / "segments"
    where = f"eventname = '{name}'"

    def in_segments() -> int:
        if not list(segments.glob("*.parquet")):
            return 0
        query = "SELECT count(*) FROM read_parquet(?) WHERE " + where
        return duckdb.execute(query, [str(segments / "*.parquet")]).fetchone()[0]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and in_segments() < 12:
        time.sleep(0.5)
    assert in_segments() == 12, server.logs()
    # The archiver checks every second and its seal age is 1 s: give it a few chances.
    time.sleep(4)
    archive = server.data_dir / "archive"
    assert _archived_rows(archive, where) == 0, "a recent event is not copied to the archive"
    assert sorted(server.stored_event_ids(name)) == sorted(f"{name}-{i}" for i in range(12))

    # Due at once: the same events reach the archive, and lookups still find them.
    server.extra_env.update(ARCHIVE_AT_ONCE)
    server.restart()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _archived_rows(archive, where) < 12:
        time.sleep(0.5)
    assert _archived_rows(archive, where) == 12, server.logs()
    assert len(server.stored_event_ids(name)) == 12

"""Sealed segments in a bucket (OPENTRAIL_SEGMENTS_URL=s3://BUCKET/PREFIX) on a real
S3-compatible server (moto_server, the same fixture as test_import_s3.py).

The server seals, uploads each segment (`.seg`) and its columns (`.parquet`); after it
stops, the local copies of the segments and the journal are deleted, and a server started
again on the same data dir answers every lookup from what it downloads from the bucket.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import duckdb

import otlib
from test_import_s3 import S3_KEY_ID, S3_REGION, S3_SECRET, s3_client

PREFIX = "audit/segments"


def _keys(s3, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return sorted(keys)


def _rows_in_bucket_parquet(s3, bucket: str, into: Path, event_id_prefix: str) -> int:
    """Rows of our events in the bucket's Parquet objects, read by DuckDB."""
    if into.exists():
        shutil.rmtree(into)
    into.mkdir(parents=True)
    parquet = [key for key in _keys(s3, bucket) if key.endswith(".parquet")]
    for key in parquet:
        s3.download_file(bucket, key, str(into / key.rsplit("/", 1)[-1]))
    if not parquet:
        return 0
    return duckdb.execute(
        "SELECT count(*) FROM read_parquet(?) WHERE eventid LIKE ?",
        [str(into / "*.parquet"), event_id_prefix + "%"],
    ).fetchone()[0]


def _native_ids(server, event_name: str) -> list[str]:
    stored: list[str] = []
    cursor = None
    while True:
        path = f"/v1/events?eventName={event_name}&limit=1000" + (f"&cursor={cursor}" if cursor else "")
        response = server.signed_request("GET", path)
        assert response.status == 200, response.text
        page = response.json
        stored.extend(record["eventID"] for record in page["events"])
        cursor = page.get("nextCursor")
        if not cursor:
            return stored


def test_segments_sealed_into_a_bucket_answer_lookups_after_the_local_copy_is_gone(
    server_factory, s3_endpoint, tmp_path  # noqa: F811
):
    s3 = s3_client(s3_endpoint)
    bucket = f"segments-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    env = {
        "OPENTRAIL_SEAL_INTERVAL_SECS": "1",
        "OPENTRAIL_SEGMENTS_URL": f"s3://{bucket}/{PREFIX}",
        "OPENTRAIL_S3_ENDPOINT": s3_endpoint,
        "OPENTRAIL_S3_REGION": S3_REGION,
        "OPENTRAIL_S3_ACCESS_KEY_ID": S3_KEY_ID,
        "OPENTRAIL_S3_SECRET_ACCESS_KEY": S3_SECRET,
    }
    server = server_factory(extra_env=env)

    tag = otlib.uniq("S3Seg")
    names = [f"{tag}Put", f"{tag}Get", f"{tag}Delete"]
    users = ["alice", "bob"]
    when = otlib.utcnow().replace(microsecond=0)
    records = [
        otlib.cloudtrail_event(
            names[i % 3],
            event_time=when,
            user=users[i % 2],
            event_id=f"{tag}-{i}",
            access_key_id=f"AKIA{tag.upper()[:8]}{i % 2:08d}",
        )
        for i in range(300)
    ]
    for start in range(0, len(records), 100):
        server.ingest_ok(records[start : start + 100])

    # The sealer uploads within about the seal interval: every event reaches the bucket's
    # Parquet objects, and each segment's `.seg` is beside its `.parquet`.
    otlib.wait_for(
        lambda: _rows_in_bucket_parquet(s3, bucket, tmp_path / "parquet", tag) == len(records),
        timeout=120,
        interval=0.5,
        what="every event in the bucket's Parquet objects",
    )
    server.stop()

    keys = _keys(s3, bucket)
    segments = [key for key in keys if key.endswith(".seg")]
    parquet = [key for key in keys if key.endswith(".parquet")]
    assert segments and parquet, keys
    assert all(key.startswith(PREFIX + "/") for key in keys), keys
    assert sorted(key[: -len(".seg")] for key in segments) == sorted(key[: -len(".parquet")] for key in parquet), keys

    # Drop every local copy: the segments and the journal.
    store_dir = server.data_dir / "store"
    shutil.rmtree(store_dir / "segments")
    for journal in (store_dir / "journal").iterdir():
        journal.unlink()

    server.start()
    client = server.client()
    expected = {r["eventID"] for r in records}
    by_name: list[str] = []
    for name in names:
        by_name.extend(otlib.ids(otlib.lookup_attr(client, "EventName", name)))
    assert sorted(by_name) == sorted(expected), server.logs()
    for user in users:
        found = otlib.ids(otlib.lookup_attr(client, "Username", user))
        assert sorted(found) == sorted(r["eventID"] for r in records if r["userIdentity"]["userName"] == user)
    key_id = records[1]["userIdentity"]["accessKeyId"]
    assert sorted(otlib.ids(otlib.lookup_attr(client, "AccessKeyId", key_id))) == sorted(
        r["eventID"] for r in records if r["userIdentity"]["accessKeyId"] == key_id
    )
    for index in (0, 137, 299):
        event_id = records[index]["eventID"]
        found = otlib.lookup_attr(client, "EventId", event_id)
        assert otlib.ids(found) == [event_id]
        otlib.assert_record_preserved(json.loads(found[0]["CloudTrailEvent"]), records[index])

    native: list[str] = []
    for name in names:
        native.extend(_native_ids(server, name))
    assert sorted(native) == sorted(expected)

    local = sorted(path.name for path in (store_dir / "segments").iterdir())
    assert set(local) >= {key.rsplit("/", 1)[-1] for key in keys}, (local, keys)

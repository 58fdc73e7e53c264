"""A full disk, for real: the data dir is a small tmpfs that a filler file fills up.

Writes are refused with a modelled 503 (and `/ready` says why) before the disk is full,
reads go on, writes resume by themselves once space is freed, and after a kill -9 every
acknowledged event is there exactly once. With the reserve turned off, the journal write
itself fails with ENOSPC: it is rolled back and the store carries on all the same.
Mounting needs root (CI runs as root); elsewhere the tests skip, except under CI.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

import otlib

DISK_MB = 64
BATCH = 100


@pytest.fixture
def small_disk(tmp_path):
    mount_point = tmp_path / "data"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a {DISK_MB} MB tmpfs: {mounted.stderr.strip()}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI runs as root)", pytrace=False)
        pytest.skip(reason)
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _free_bytes(path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def _fill(path, leave_bytes: int):
    """Writes a filler file so that about `leave_bytes` stay free; returns its path."""
    filler = path / "filler"
    size = max(_free_bytes(path) - leave_bytes, 0)
    with open(filler, "wb") as out:
        chunk = b"\0" * (1 << 20)
        while size > 0:
            out.write(chunk[: min(size, len(chunk))])
            size -= min(size, len(chunk))
    return filler


def _batch(tag: str, number: int) -> bytes:
    records = [
        otlib.cloudtrail_event(
            "PutObject", event_time=otlib.utcnow(), event_id=f"full-{tag}-{number}-{index}"
        )
        for index in range(BATCH)
    ]
    return json.dumps({"Records": records}).encode()


def _ingest_until_refused(server: otlib.Server, tag: str, acked: list[str], limit: int = 2000):
    """Ingests batches until one is refused; returns that response."""
    for number in range(limit):
        result = server.ingest_raw(_batch(tag, number))
        if result.status != 200:
            return result
        body = result.json
        acked.extend(entry["eventId"] for entry in body["accepted"] + body["duplicates"])
    raise AssertionError(f"{limit} batches were all accepted: the disk never filled")


def _assert_every_acknowledged_event_once(server: otlib.Server, acked: list[str]) -> None:
    stored = server.stored_event_ids("PutObject")
    assert len(stored) == len(set(stored)), "an event is stored twice"
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"


def _start(small_disk, reserve_mb: int) -> otlib.Server:
    server = otlib.Server(
        otlib.opentrail_bin(),
        small_disk,
        extra_env={
            "OPENTRAIL_FREE_SPACE_RESERVE_MB": str(reserve_mb),
            "OPENTRAIL_SEAL_INTERVAL_SECS": "1",
        },
    )
    return server.start()


def test_writes_are_refused_under_the_reserve_and_resume_when_space_is_freed(small_disk):
    server = _start(small_disk, reserve_mb=16)
    try:
        ready = server.raw_request("GET", "/ready")
        assert ready.status == 200 and ready.json["status"] == "ready", ready

        # Leave 8 MB above the reserve, then ingest until the store refuses.
        filler = _fill(small_disk, leave_bytes=24 * 1_000_000)
        acked: list[str] = []
        refused = _ingest_until_refused(server, "reserve", acked)
        assert refused.status == 503, refused
        assert refused.error_code == "ServiceUnavailable", refused
        assert refused.header("Retry-After"), refused
        assert "reserve" in refused.message and "resume" in refused.message, refused
        assert len(acked) >= BATCH, "nothing was accepted before the reserve was reached"
        # Refused before the disk is full: the reserve is still there.
        assert _free_bytes(small_disk) > 8 * 1_000_000

        ready = server.raw_request("GET", "/ready")
        assert ready.status == 503, ready
        assert ready.json["status"] == "degraded" and ready.json["writes"] == "refusing", ready.json
        assert any("reserve" in reason for reason in ready.json["reasons"]), ready.json
        assert server.raw_request("GET", "/health").status == 200  # still alive

        # Reads keep working.
        events = otlib.lookup_attr(server.client(), "EventId", acked[-1])
        assert [event["EventId"] for event in events] == [acked[-1]]
        metrics = server.signed_request("GET", "/metrics").text
        assert "opentrail_store_writes_refused_total" in metrics
        assert "opentrail_store_free_bytes" in metrics

        # Space is back: writes resume without a restart.
        filler.unlink()
        body = server.ingest(json.loads(_batch("after", 0)))
        assert len(body["accepted"]) == BATCH
        acked.extend(entry["eventId"] for entry in body["accepted"])
        ready = server.raw_request("GET", "/ready")
        assert ready.status == 200 and ready.json["writes"] == "accepting", ready

        server.kill()
        server.start()
        _assert_every_acknowledged_event_once(server, acked)
    finally:
        server.kill()


def test_a_journal_write_that_hits_enospc_is_rolled_back_and_the_store_carries_on(small_disk):
    server = _start(small_disk, reserve_mb=0)
    try:
        filler = _fill(small_disk, leave_bytes=3 * 1_000_000)
        acked: list[str] = []
        refused = _ingest_until_refused(server, "enospc", acked)
        assert refused.status == 503, refused
        assert refused.error_code == "ServiceUnavailable", refused
        assert "not stored" in refused.message and "No space left" in refused.message, refused
        ready = server.raw_request("GET", "/ready")
        assert ready.status == 503 and ready.json["writes"] == "refusing", ready.json

        filler.unlink()
        body = server.ingest(json.loads(_batch("after", 0)))
        assert len(body["accepted"]) == BATCH
        acked.extend(entry["eventId"] for entry in body["accepted"])
        assert server.raw_request("GET", "/ready").status == 200

        server.kill()
        server.start()
        _assert_every_acknowledged_event_once(server, acked)
    finally:
        server.kill()

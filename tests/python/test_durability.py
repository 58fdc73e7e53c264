"""Durability of the real server: SIGKILL `opentrail serve` while 8 clients ingest, restart
it, and check every acknowledged eventID is there exactly once."""

from __future__ import annotations

import json
import threading
import time

import otlib

CLIENTS = 8
BATCH = 50
KILL_CYCLES = 3


def _writer(server: otlib.Server, client: int, cycle: int, acked: list[str], stop: threading.Event) -> None:
    batch_number = 0
    while not stop.is_set():
        records = [
            otlib.cloudtrail_event(
                "PutObject",
                event_time=otlib.utcnow(),
                event_id=f"crash-c{cycle}-w{client}-b{batch_number}-{i}",
            )
            for i in range(BATCH)
        ]
        batch_number += 1
        try:
            result = server.ingest_raw(json.dumps({"Records": records}).encode())
        except OSError:
            return  # the server died mid-request: nothing was acknowledged
        if result.status != 200:
            continue
        body = result.json
        acked.extend(entry["eventId"] for entry in body["accepted"] + body["duplicates"])


def _count_by_event_id(server: otlib.Server, event_id: str) -> int:
    response = server.client().lookup_events(
        LookupAttributes=[{"AttributeKey": "EventId", "AttributeValue": event_id}]
    )
    return len(response["Events"])


def test_every_acknowledged_event_survives_sigkill_under_concurrent_ingest(server_factory):
    server = server_factory()
    acked: list[str] = []
    for cycle in range(KILL_CYCLES):
        stop = threading.Event()
        writers = [
            threading.Thread(target=_writer, args=(server, client, cycle, acked, stop), daemon=True)
            for client in range(CLIENTS)
        ]
        for writer in writers:
            writer.start()
        time.sleep(1.5 + cycle * 0.7)
        server.kill()  # SIGKILL: no shutdown, no flush
        stop.set()
        for writer in writers:
            writer.join(timeout=30)
        server.start()

        # Every acknowledged event is there exactly once, with the same id.
        unique = set(acked)
        assert len(unique) > 100, f"cycle {cycle}: the writers made progress ({len(unique)} acknowledged)"
        stored = server.stored_event_ids("PutObject")
        assert len(stored) == len(set(stored)), f"cycle {cycle}: an event is stored twice"
        missing = unique - set(stored)
        assert not missing, f"cycle {cycle}: {len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"
        sample = sorted(unique)[cycle]
        assert _count_by_event_id(server, sample) == 1

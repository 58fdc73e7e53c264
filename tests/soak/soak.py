"""Soak: mixed load against a real `opentrail serve` with a kill -9 every few minutes.

Ingest clients (paced), LookupEvents clients, console reads and a trail delivering to a
local bucket run together for --minutes; every --kill-every seconds the server is killed
with SIGKILL and started again on the same data dir. At the end the load stops, delivery
catches up, and the run checks that every acknowledged event is stored exactly once and
delivered exactly once. It reports RSS over time, errors by kind, and those counts.

    scripts/soak --minutes 30 --kill-every 300 --out soak.json

Run by hand (it takes as long as it is told to); RELIABILITY.md records results.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
import otlib  # noqa: E402

BATCH = 100


class Run:
    def __init__(self, server: otlib.Server, rate: int):
        self.server = server
        self.rate = rate
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked: set[str] = set()
        self.errors: collections.Counter[str] = collections.Counter()
        self.requests: collections.Counter[str] = collections.Counter()
        self.lookup_ms: list[float] = []
        self.rss_mb: list[tuple[float, float]] = []
        self.restarting = threading.Event()
        self.started = time.monotonic()

    def count(self, kind: str, outcome: str) -> None:
        with self.lock:
            self.requests[kind] += 1
            if outcome != "ok":
                self.errors[f"{kind}: {outcome}"] += 1

    # ---- load

    def ingest(self, client: int) -> None:
        batch_number = 0
        interval = BATCH / max(self.rate, 1) * 4  # four ingest clients share the rate
        while not self.stop.is_set():
            began = time.monotonic()
            records = [
                otlib.cloudtrail_event(
                    "SoakEvent",
                    event_time=otlib.utcnow(),
                    user=f"user{random.randrange(50)}",
                    event_id=f"soak-{client}-{batch_number}-{index}",
                )
                for index in range(BATCH)
            ]
            batch_number += 1
            try:
                answer = self.server.ingest_raw(json.dumps({"Records": records}).encode())
            except OSError as error:
                self.count("ingest", "down" if self.restarting.is_set() else f"connection: {error}")
                time.sleep(0.2)
                continue
            if answer.status == 200:
                body = answer.json
                with self.lock:
                    self.acked.update(entry["eventId"] for entry in body["accepted"] + body["duplicates"])
                self.count("ingest", "ok")
            else:
                self.count("ingest", f"HTTP {answer.status} {answer.error_code}")
            time.sleep(max(0.0, interval - (time.monotonic() - began)))

    def lookups(self) -> None:
        while not self.stop.is_set():
            attribute, value = random.choice(
                [("EventName", "SoakEvent"), ("Username", f"user{random.randrange(50)}"), ("ReadOnly", "false")]
            )
            began = time.monotonic()
            try:
                answer = self.server.json_call(
                    "LookupEvents",
                    {"LookupAttributes": [{"AttributeKey": attribute, "AttributeValue": value}], "MaxResults": 50},
                )
            except OSError as error:
                self.count("lookup", "down" if self.restarting.is_set() else f"connection: {error}")
                time.sleep(0.2)
                continue
            if answer.status == 200:
                with self.lock:
                    self.lookup_ms.append((time.monotonic() - began) * 1000)
                self.count("lookup", "ok")
            else:
                self.count("lookup", f"HTTP {answer.status} {answer.error_code}")
            time.sleep(0.05)

    def console(self) -> None:
        while not self.stop.is_set():
            for path in ("/console/", "/console/api/session", "/ready"):
                try:
                    answer = self.server.raw_request("GET", path)
                    self.count("console", "ok" if answer.status == 200 else f"HTTP {answer.status} {path}")
                except OSError as error:
                    self.count("console", "down" if self.restarting.is_set() else f"connection: {error}")
            time.sleep(1)

    def sample_rss(self) -> None:
        while not self.stop.wait(10):
            process = self.server.proc
            if process is None or process.poll() is not None:
                continue
            try:
                status = Path(f"/proc/{process.pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    self.rss_mb.append((time.monotonic() - self.started, int(line.split()[1]) / 1024))

    def kill_and_restart(self) -> None:
        self.restarting.set()
        self.server.kill()
        self.server.start()
        self.restarting.clear()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--kill-every", type=float, default=300, help="seconds between kill -9s")
    parser.add_argument("--rate", type=int, default=2000, help="events per second offered")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/opentrail-soak"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    work_dir = args.work_dir
    if work_dir.exists():
        import shutil

        shutil.rmtree(work_dir)
    work_dir.mkdir(parents=True)
    server = otlib.Server(
        otlib.opentrail_bin(),
        work_dir / "data",
        extra_env={"OPENTRAIL_DELIVERY_INTERVAL_SECS": "5", "OPENTRAIL_SEAL_INTERVAL_SECS": "10",
                   "RUST_LOG": "warn"},
    )
    server.start()
    bucket = "soak-trail-bucket"
    trail = server.client().create_trail(Name="soak", S3BucketName=bucket, IsMultiRegionTrail=True)
    server.client().start_logging(Name=trail["TrailARN"])

    run = Run(server, args.rate)
    threads = [threading.Thread(target=run.ingest, args=(client,), daemon=True) for client in range(4)]
    threads += [threading.Thread(target=run.lookups, daemon=True) for _ in range(2)]
    threads += [threading.Thread(target=run.console, daemon=True), threading.Thread(target=run.sample_rss, daemon=True)]
    for thread in threads:
        thread.start()
    deadline = run.started + args.minutes * 60
    kills = 0
    next_kill = run.started + args.kill_every
    while time.monotonic() < deadline:
        time.sleep(1)
        if time.monotonic() >= next_kill and time.monotonic() < deadline - 30:
            run.kill_and_restart()
            kills += 1
            next_kill += args.kill_every
            print(f"[{time.monotonic() - run.started:7.0f} s] kill -9 #{kills}, restarted; {len(run.acked)} acknowledged", flush=True)
    run.stop.set()
    for thread in threads:
        thread.join(timeout=120)

    # Delivery catches up: every acknowledged event reaches the bucket.
    bucket_root = server.data_dir / "buckets" / bucket
    wait_until = time.monotonic() + 180
    delivered = otlib.delivered_event_ids(bucket_root, "SoakEvent")
    while set(run.acked) - set(delivered) and time.monotonic() < wait_until:
        time.sleep(5)
        delivered = otlib.delivered_event_ids(bucket_root, "SoakEvent")
    stored = collections.Counter(server.stored_event_ids("SoakEvent"))
    server.stop()

    lookups = sorted(run.lookup_ms)
    percentile = lambda fraction: lookups[min(len(lookups) - 1, int(fraction * len(lookups)))] if lookups else None  # noqa: E731
    report = {
        "minutes": args.minutes,
        "kills": kills,
        "rate_offered": args.rate,
        "acknowledged": len(run.acked),
        "stored_missing": len(run.acked - set(stored)),
        "stored_twice": sum(1 for count in stored.values() if count > 1),
        "delivered_missing": len(run.acked - set(delivered)),
        "delivered_twice": sum(1 for count in delivered.values() if count > 1),
        "requests": dict(run.requests),
        "errors": dict(run.errors),
        "lookup_p50_ms": percentile(0.5),
        "lookup_p99_ms": percentile(0.99),
        "rss_mb": [[round(at), round(mb, 1)] for at, mb in run.rss_mb],
        "rss_mb_max": max((mb for _, mb in run.rss_mb), default=None),
    }
    print(json.dumps({key: value for key, value in report.items() if key != "rss_mb"}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    failed = report["stored_missing"] or report["stored_twice"] or report["delivered_missing"] or report["delivered_twice"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

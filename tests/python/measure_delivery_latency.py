"""Measures the time from an ingest acknowledgement to the log file's presence in S3.

Not a test (pytest does not collect it): a measurement for the notes. It starts moto_server
and `opentrail serve` with OPENTRAIL_DELIVERY_INTERVAL_SECS=<interval>, creates a trail,
then repeatedly ingests one event and polls ListObjectsV2 (every 25 ms) until an object
holding that event appears.

    OPENTRAIL_BIN=target/debug/opentrail ~/.cache/opentrail-venv/bin/python \\
        tests/python/measure_delivery_latency.py --interval 1 --samples 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import otlib  # noqa: E402
from test_delivery import WITHOUT_SELF_AUDIT, s3_client  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=int, default=1, help="OPENTRAIL_DELIVERY_INTERVAL_SECS")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--pause", type=float, default=0.5, help="seconds between samples")
    args = parser.parse_args()
    otlib.isolate_aws_environment()
    moto = otlib.MotoServer().start()
    work = Path(tempfile.mkdtemp(prefix="opentrail-latency-"))
    server = otlib.Server(
        otlib.opentrail_bin(),
        work / "data",
        extra_env={
            "OPENTRAIL_DELIVERY_INTERVAL_SECS": str(args.interval),
            "OPENTRAIL_S3_ENDPOINT": moto.endpoint,
            "OPENTRAIL_S3_ACCESS_KEY_ID": "test",
            "OPENTRAIL_S3_SECRET_ACCESS_KEY": "test",
            "RUST_LOG": "warn",
        },
    )
    try:
        server.start()
        s3 = s3_client(moto.endpoint)
        s3.create_bucket(Bucket="latency-bucket")
        ct = server.client()
        ct.create_trail(Name="latency-trail", S3BucketName="latency-bucket")
        ct.put_event_selectors(TrailName="latency-trail", AdvancedEventSelectors=WITHOUT_SELF_AUDIT)
        ct.start_logging(Name="latency-trail")
        seen_keys: set[str] = set()
        latencies = []
        for sample in range(args.samples):
            event = otlib.cloudtrail_event(f"Latency{sample}", event_time=otlib.utcnow())
            [event_id] = server.ingest_ok([event])
            acked = time.monotonic()
            found = None
            while found is None:
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket="latency-bucket"):
                    for obj in page.get("Contents", []):
                        if obj["Key"] in seen_keys:
                            continue
                        body = s3.get_object(Bucket="latency-bucket", Key=obj["Key"])["Body"].read()
                        seen_keys.add(obj["Key"])
                        records = json.loads(zlib.decompress(body, 16 + zlib.MAX_WBITS))["Records"]
                        if any(record["eventID"] == event_id for record in records):
                            found = time.monotonic()
                if found is None:
                    if time.monotonic() - acked > args.interval * 3 + 30:
                        raise SystemExit(f"sample {sample}: not delivered\n{server.logs()}")
                    time.sleep(0.025)
            latencies.append(found - acked)
            print(f"sample {sample}: {found - acked:.3f} s", flush=True)
            time.sleep(args.pause)
        print(
            f"interval {args.interval} s, {len(latencies)} samples: "
            f"min {min(latencies):.3f} s, median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s"
        )
    finally:
        server.stop()
        moto.stop()


if __name__ == "__main__":
    main()

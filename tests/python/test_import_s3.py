"""`opentrail import s3://bucket/prefix` against a real S3-compatible server (moto_server).

Corpus files are uploaded with boto3 in the AWSLogs layout CloudTrail delivers, next to a
digest file, another service's file and objects outside the prefix; the import must take
exactly the log files under the prefix, and the events must then be found with boto3's
LookupEvents on a server started on the imported data directory.

The S3 server is $OPENTRAIL_TEST_S3_ENDPOINT when set, else a `moto_server` from the venv
on a free loopback port.
"""

from __future__ import annotations

import collections
import datetime as dt
import gzip
import json
import os
import subprocess
import uuid
from pathlib import Path

import boto3

import otlib

CORPUS = otlib.REPO.parent / "shared" / "corpus" / "cloudtrail"
INVICTUS = CORPUS / "invictus-ir-aws_dataset" / "CloudTrail"
SANS = CORPUS / "sans504-s3-ransomware-lab" / "CloudTrail" / "us-west-1"
S3_KEY_ID = "opentrailtest"
S3_SECRET = "opentrailtestsecret"
S3_REGION = "us-east-1"
SANS_FILES_UPLOADED = 60


def s3_client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name=S3_REGION,
    )


def records_of(data: bytes) -> list[dict]:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    body = json.loads(data.decode("utf-8-sig"))
    if isinstance(body, dict) and "Records" in body:
        return body["Records"]
    return body if isinstance(body, list) else [body]


def run_import(source: str, data_dir: Path, endpoint: str, *extra: str) -> dict:
    env = dict(os.environ)
    for name in ("OPENTRAIL_CONFIG", "OPENTRAIL_DATA_DIR", "OPENTRAIL_ENDPOINT", "OPENTRAIL_ACCOUNT_ID"):
        env.pop(name, None)
    env.update(
        OPENTRAIL_S3_ENDPOINT=endpoint,
        OPENTRAIL_S3_REGION=S3_REGION,
        OPENTRAIL_S3_ACCESS_KEY_ID=S3_KEY_ID,
        OPENTRAIL_S3_SECRET_ACCESS_KEY=S3_SECRET,
    )
    cmd = [str(otlib.opentrail_bin()), "import", source, "--data-dir", str(data_dir), "--output", "json", *extra]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return json.loads(p.stdout)


def test_import_from_s3_takes_the_log_files_under_the_prefix_and_lookups_find_them(s3_endpoint, tmp_path):
    s3 = s3_client(s3_endpoint)
    bucket = f"trail-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    prefix = "org/AWSLogs/218007301253/CloudTrail"

    expected: dict[tuple[str, str], dict] = {}
    log_files = 0
    for path in sorted(INVICTUS.glob("*.json")):
        data = path.read_bytes()
        s3.put_object(Bucket=bucket, Key=f"{prefix}/us-east-1/2023/07/10/{path.name}", Body=data)
        log_files += 1
        for record in records_of(data):
            expected[(record["recipientAccountId"], record["eventID"])] = record
    sans_files = sorted(p for p in SANS.rglob("*.json.gz"))[:SANS_FILES_UPLOADED]
    assert len(sans_files) == SANS_FILES_UPLOADED
    for path in sans_files:
        data = path.read_bytes()
        relative = path.relative_to(SANS.parent.parent).as_posix()
        s3.put_object(Bucket=bucket, Key=f"{prefix}/{relative}", Body=data)
        log_files += 1
        for record in records_of(data):
            expected[(record["recipientAccountId"], record["eventID"])] = record
    # Skipped under the prefix: a digest file (its own folder) and a file of no log type.
    s3.put_object(
        Bucket=bucket,
        Key="org/AWSLogs/218007301253/CloudTrail-Digest/us-east-1/2023/07/10/"
        "218007301253_CloudTrail-Digest_us-east-1_t_us-east-1_20230710T120000Z.json.gz",
        Body=gzip.compress(b'{"digestStartTime":"2023-07-10T11:00:00Z"}'),
    )
    s3.put_object(Bucket=bucket, Key=f"{prefix}/us-east-1/README.txt", Body=b"not a log")
    # Outside the prefix: never listed.
    s3.put_object(Bucket=bucket, Key="elsewhere/x.json", Body=INVICTUS.joinpath(sorted(p.name for p in INVICTUS.glob("*.json"))[0]).read_bytes())

    data_dir = tmp_path / "data"
    summary = run_import(f"s3://{bucket}/org/AWSLogs", data_dir, s3_endpoint)
    for key in ("files", "events_imported", "duplicates", "files_skipped", "errors"):
        assert key in summary, f"summary lacks {key}: {summary}"
    assert summary["errors"] == [], summary
    assert summary["files"] == log_files, summary
    assert summary["files_skipped"] == 2, summary
    assert summary["files_skipped_digest"] == 1, summary
    assert summary["events_imported"] == len(expected), summary

    again = run_import(f"s3://{bucket}/org/AWSLogs", data_dir, s3_endpoint)
    assert again["events_imported"] == 0, again
    assert again["files_already_imported"] == log_files, again
    reread = run_import(f"s3://{bucket}/org/AWSLogs", data_dir, s3_endpoint, "--no-resume")
    assert (reread["events_imported"], reread["duplicates"]) == (0, len(expected)), reread

    # Look the events up with boto3 on a server started on the imported data directory.
    server = otlib.Server(otlib.opentrail_bin(), data_dir)
    server.start()
    try:
        names = collections.Counter(
            r["eventName"] for r in expected.values() if r.get("awsRegion") == otlib.REGION
        )
        event_name, want = names.most_common(1)[0]
        times = [dt.datetime.fromisoformat(r["eventTime"].replace("Z", "+00:00")) for r in expected.values()]
        events = otlib.lookup_attr(
            server.client(),
            "EventName",
            event_name,
            start=min(times) - dt.timedelta(minutes=1),
            end=max(times) + dt.timedelta(minutes=1),
        )
        assert len(events) == want, f"{event_name}: {len(events)} found, {want} imported"
        assert {e["EventId"] for e in events} <= {key[1] for key in expected}
    finally:
        server.stop()

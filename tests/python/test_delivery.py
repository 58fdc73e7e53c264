"""Delivery of log files end to end, against a real S3-compatible server and against the
local directory destination: CloudTrail's key layout, one gzip member of
`{"Records":[…]}`, selectors, stopped trails, `kill -9` during delivery (every event once),
outages of S3, SNS-shaped notifications, stream sinks, and DuckDB reading the files.

The S3 server is conftest's `s3_endpoint`: `moto_server` from the test venv on a free
loopback port, unless OPENTRAIL_TEST_S3_ENDPOINT names one that is already running. Servers deliver with
OPENTRAIL_DELIVERY_INTERVAL_SECS=1. Polls are bounded; no timing is asserted.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import http.client
import http.server
import json
import random
import threading
import time
import uuid
import zlib

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import otlib

DELIVERY_WAIT_S = 60.0
# Self-audit records management calls as `cloudtrail.amazonaws.com` events; selectors that
# leave them out make the delivered set exactly what a test ingested.
WITHOUT_SELF_AUDIT = [
    {
        "Name": "management events except OpenTrail's own",
        "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Management"]},
            {"Field": "eventSource", "NotEquals": ["cloudtrail.amazonaws.com"]},
        ],
    }
]


# --------------------------------------------------------------------------- S3 server


def s3_client(endpoint: str):
    return boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    ).client("s3", endpoint_url=endpoint, config=Config(retries={"total_max_attempts": 2}, s3={"addressing_style": "path"}))


# --------------------------------------------------------------------------- destinations


class Destination:
    """Where a test's server delivers, and how the test reads the files back."""

    def __init__(self, kind: str, endpoint: str | None):
        self.kind = kind
        self.endpoint = endpoint

    def env(self, interval_secs: int = 1) -> dict[str, str]:
        env = {"OPENTRAIL_DELIVERY_INTERVAL_SECS": str(interval_secs)}
        if self.kind == "s3":
            env.update(
                OPENTRAIL_S3_ENDPOINT=self.endpoint,
                OPENTRAIL_S3_REGION="us-east-1",
                OPENTRAIL_S3_ACCESS_KEY_ID="test",
                OPENTRAIL_S3_SECRET_ACCESS_KEY="test",
            )
        return env

    def new_bucket(self) -> str:
        name = f"trail-{uuid.uuid4().hex[:12]}"
        if self.kind == "s3":
            s3_client(self.endpoint).create_bucket(Bucket=name)
        return name

    def files(self, srv: otlib.Server, bucket: str) -> dict[str, bytes]:
        """Every delivered object: key → gzip bytes."""
        found: dict[str, bytes] = {}
        if self.kind == "local":
            root = srv.data_dir / "buckets" / bucket
            for path in sorted(root.rglob("*.json.gz")) if root.exists() else []:
                found[path.relative_to(root).as_posix()] = path.read_bytes()
            return found
        s3 = s3_client(self.endpoint)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                found[obj["Key"]] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        return found


@pytest.fixture(params=["local", "s3"])
def destination(request):
    endpoint = request.getfixturevalue("s3_endpoint") if request.param == "s3" else None
    return Destination(request.param, endpoint)


# --------------------------------------------------------------------------- helpers


def gunzip_one_member(data: bytes) -> bytes:
    """The decompressed bytes; fails unless the file is exactly one gzip member."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    body = decompressor.decompress(data) + decompressor.flush()
    assert decompressor.eof, "truncated gzip stream"
    assert decompressor.unused_data == b"", f"{len(decompressor.unused_data)} bytes after the first gzip member"
    return body


def records_by_key(files: dict[str, bytes]) -> dict[str, list[dict]]:
    out = {}
    for key, data in files.items():
        document = json.loads(gunzip_one_member(data))
        assert list(document) == ["Records"], document.keys()
        out[key] = document["Records"]
    return out


def id_counts(files: dict[str, bytes]) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for records in records_by_key(files).values():
        counts.update(record["eventID"] for record in records)
    return counts


def wait_for_ids(destination: Destination, srv: otlib.Server, bucket: str, ids, timeout=DELIVERY_WAIT_S):
    wanted = set(ids)
    deadline = time.monotonic() + timeout
    while True:
        files = destination.files(srv, bucket)
        missing = wanted - set(id_counts(files))
        if not missing:
            return files
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(missing)} of {len(wanted)} events not delivered within {timeout:.0f}s\n{srv.logs()}")
        time.sleep(0.3)


def events(prefix: str, count: int, **kwargs) -> list[dict]:
    now = otlib.utcnow()
    return [otlib.cloudtrail_event(f"{prefix}{index}", event_time=now, **kwargs) for index in range(count)]


def start_trail(srv: otlib.Server, name: str, bucket: str, *, prefix: str | None = None, advanced=WITHOUT_SELF_AUDIT, **extra):
    ct = srv.client()
    params = {"Name": name, "S3BucketName": bucket, **extra}
    if prefix:
        params["S3KeyPrefix"] = prefix
    ct.create_trail(**params)
    if advanced is not None:
        ct.put_event_selectors(TrailName=name, AdvancedEventSelectors=advanced)
    ct.start_logging(Name=name)
    return ct


# --------------------------------------------------------------------------- tests


def test_files_follow_cloudtrail_layout_with_one_gzip_member_of_records(destination, server_factory):
    srv = server_factory(extra_env=destination.env())
    bucket = destination.new_bucket()
    start_trail(srv, "layout-trail", bucket, prefix="org/prod")
    sent = events("Layout", 5) + events("Elsewhere", 2, region="eu-west-1")
    ids = srv.ingest_ok(sent)
    ids_here = ids[:5]
    files = wait_for_ids(destination, srv, bucket, ids_here)
    records = records_by_key(files)
    counts = id_counts(files)
    assert all(counts[i] == 1 for i in ids_here)
    # A single-region trail leaves out other regions' events.
    assert not set(ids[5:]) & set(counts)
    for key, recs in records.items():
        parts = key.split("/")
        assert parts[:5] == ["org", "prod", "AWSLogs", otlib.ACCOUNT_ID, "CloudTrail"], key
        assert parts[5] == otlib.REGION
        yyyy, mm, dd, name = parts[6:]
        prefix = f"{otlib.ACCOUNT_ID}_CloudTrail_{otlib.REGION}_{yyyy}{mm}{dd}T"
        assert name.startswith(prefix), key
        stamp, unique = name[len(f"{otlib.ACCOUNT_ID}_CloudTrail_{otlib.REGION}_"):-len(".json.gz")].split("_")
        assert len(stamp) == 14 and stamp[8] == "T" and stamp.endswith("Z"), stamp
        assert len(unique) == 16 and unique.isalnum(), unique
        assert name.endswith(".json.gz")
        for record in recs:
            assert record["recipientAccountId"] == otlib.ACCOUNT_ID and record["awsRegion"] == otlib.REGION
    # Records are the stored records, fields intact.
    delivered = {r["eventID"]: r for recs in records.values() for r in recs}
    for sent_record, event_id in zip(sent[:5], ids_here):
        otlib.assert_record_preserved(delivered[event_id], sent_record)
    status = srv.client().get_trail_status(Name="layout-trail")
    assert "LatestDeliveryTime" in status and "LatestDeliveryError" not in status, status


def test_selectors_decide_what_is_delivered(destination, server_factory):
    srv = server_factory(extra_env=destination.env())
    bucket = destination.new_bucket()
    advanced = [
        {
            "Name": "keep writes named Keep*",
            "FieldSelectors": [
                {"Field": "eventCategory", "Equals": ["Management"]},
                {"Field": "eventName", "StartsWith": ["Keep"], "NotEndsWith": ["Drop"]},
                {"Field": "readOnly", "Equals": ["false"]},
            ],
        }
    ]
    start_trail(srv, "advanced-trail", bucket, prefix="advanced", advanced=advanced)
    ct = srv.client()
    ct.create_trail(Name="basic-trail", S3BucketName=bucket, S3KeyPrefix="basic")
    ct.put_event_selectors(
        TrailName="basic-trail",
        EventSelectors=[
            {
                "ReadWriteType": "ReadOnly",
                "IncludeManagementEvents": False,
                "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::wanted-bucket/"]}],
            }
        ],
    )
    ct.start_logging(Name="basic-trail")

    def s3_event(name, bucket_name, read_only):
        return otlib.cloudtrail_event(
            name,
            event_time=otlib.utcnow(),
            event_source="s3.amazonaws.com",
            read_only=read_only,
            eventCategory="Data",
            managementEvent=False,
            resources=[{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket_name}/key.txt"}],
        )

    batch = [
        otlib.cloudtrail_event("KeepThis", event_time=otlib.utcnow()),
        otlib.cloudtrail_event("KeepButDrop", event_time=otlib.utcnow()),
        otlib.cloudtrail_event("KeepReadOnly", event_time=otlib.utcnow(), read_only=True),
        otlib.cloudtrail_event("Other", event_time=otlib.utcnow()),
        s3_event("GetObject", "wanted-bucket", True),
        s3_event("PutObject", "wanted-bucket", False),
        s3_event("GetObject", "other-bucket", True),
    ]
    ids = srv.ingest_ok(batch)
    files = wait_for_ids(destination, srv, bucket, [ids[0], ids[4]])
    # Give any wrongly selected event time to show up too.
    time.sleep(2.5)
    files = destination.files(srv, bucket)
    by_prefix = collections.defaultdict(set)
    for key, records in records_by_key(files).items():
        by_prefix[key.split("/")[0]].update(r["eventID"] for r in records)
    assert by_prefix["advanced"] == {ids[0]}
    assert by_prefix["basic"] == {ids[4]}


def test_events_accepted_while_stopped_are_not_delivered(destination, server_factory):
    srv = server_factory(extra_env=destination.env())
    bucket = destination.new_bucket()
    ct = start_trail(srv, "pausing-trail", bucket)
    logged = srv.ingest_ok(events("Logged", 3))
    ct.stop_logging(Name="pausing-trail")
    stopped = srv.ingest_ok(events("WhileStopped", 3))
    ct.start_logging(Name="pausing-trail")
    resumed = srv.ingest_ok(events("Resumed", 3))
    files = wait_for_ids(destination, srv, bucket, logged + resumed)
    time.sleep(2.5)
    counts = id_counts(destination.files(srv, bucket))
    assert all(counts[i] == 1 for i in logged + resumed)
    assert not set(stopped) & set(counts), "events accepted while the trail was stopped were delivered"
    assert files


def test_kill_9_during_delivery_delivers_every_event_exactly_once(destination, server_factory):
    srv = server_factory(extra_env=destination.env())
    bucket = destination.new_bucket()
    start_trail(srv, "crash-trail", bucket)
    acked: list[str] = []
    rng = random.Random(5)
    for cycle in range(3):
        stop = threading.Event()

        def ingest_until_killed(cycle=cycle):
            batch_number = 0
            while not stop.is_set():
                batch = events(f"Crash{cycle}x{batch_number}x", 20)
                try:
                    acked.extend(srv.ingest_ok(batch))
                except (OSError, AssertionError, http.client.HTTPException):
                    return
                batch_number += 1

        ingester = threading.Thread(target=ingest_until_killed)
        ingester.start()
        # Deliveries run every second meanwhile, so the kill lands mid-batch sometimes.
        time.sleep(rng.uniform(1.2, 3.0))
        srv.kill()
        stop.set()
        ingester.join(timeout=60)
        srv.start()
    assert len(acked) > 100, "the ingester barely ran"
    files = wait_for_ids(destination, srv, bucket, acked, timeout=120)
    counts = id_counts(files)
    missing = [i for i in acked if counts[i] == 0]
    doubled = {i: n for i, n in counts.items() if n > 1}
    assert not missing, f"{len(missing)} acknowledged events were never delivered"
    assert not doubled, f"events in more than one file: {list(doubled.items())[:5]}"
    # Every file is whole: one gzip member of valid JSON (records_by_key checks each).
    assert records_by_key(files)


def test_duckdb_read_json_counts_the_delivered_events(destination, server_factory, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    srv = server_factory(extra_env=destination.env())
    bucket = destination.new_bucket()
    start_trail(srv, "duck-trail", bucket)
    ids = srv.ingest_ok(events("Duck", 37))
    files = wait_for_ids(destination, srv, bucket, ids)
    root = tmp_path / "copy"
    for key, data in files.items():
        target = root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    pattern = str(root / "**" / "*.json.gz")
    connection = duckdb.connect()
    total = connection.execute(
        "SELECT count(*) FROM (SELECT unnest(Records) AS r FROM read_json(?, format = 'auto'))",
        [pattern],
    ).fetchone()[0]
    assert total == 37
    named = connection.execute(
        "SELECT count(DISTINCT r.eventID) FROM (SELECT unnest(Records) AS r FROM read_json(?)) WHERE r.eventName LIKE 'Duck%'",
        [pattern],
    ).fetchone()[0]
    assert named == 37


def test_missing_s3_bucket_is_s3_bucket_does_not_exist(s3_endpoint, server_factory):
    destination = Destination("s3", s3_endpoint)
    srv = server_factory(extra_env=destination.env())
    ct = srv.client()
    with pytest.raises(ClientError) as e:
        ct.create_trail(Name="no-bucket-trail", S3BucketName=f"absent-{uuid.uuid4().hex[:10]}")
    assert e.value.response["Error"]["Code"] == "S3BucketDoesNotExistException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    existing = destination.new_bucket()
    ct.create_trail(Name="bucket-trail", S3BucketName=existing)
    with pytest.raises(ClientError) as e:
        ct.update_trail(Name="bucket-trail", S3BucketName=f"absent-{uuid.uuid4().hex[:10]}")
    assert e.value.response["Error"]["Code"] == "S3BucketDoesNotExistException"
    cli = srv.aws("cloudtrail", "create-trail", "--name", "cli-no-bucket", "--s3-bucket-name", "absent-bucket-xyz")
    assert cli.code != 0 and "S3BucketDoesNotExistException" in cli.stderr, cli


def test_an_s3_outage_is_retried_and_nothing_is_lost(server_factory):
    moto = otlib.MotoServer().start()
    try:
        destination = Destination("s3", moto.endpoint)
        srv = server_factory(extra_env=destination.env())
        bucket = destination.new_bucket()
        ct = start_trail(srv, "outage-trail", bucket)
        before = srv.ingest_ok(events("BeforeOutage", 3))
        wait_for_ids(destination, srv, bucket, before)
        moto.stop()
        during = srv.ingest_ok(events("DuringOutage", 5))
        otlib.wait_for(
            lambda: "LatestDeliveryError" in ct.get_trail_status(Name="outage-trail"),
            timeout=30,
            what="LatestDeliveryError during the outage",
        )
        # The same endpoint comes back (empty: moto keeps nothing), with the bucket.
        moto = otlib.MotoServer(moto.port).start()
        s3_client(moto.endpoint).create_bucket(Bucket=bucket)
        files = wait_for_ids(destination, srv, bucket, during, timeout=120)
        counts = id_counts(files)
        assert all(counts[i] == 1 for i in during)
        status = ct.get_trail_status(Name="outage-trail")
        assert "LatestDeliveryError" not in status, status
    finally:
        moto.stop()


class CaptureHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.server.captured.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def capture_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CaptureHandler)
    server.captured = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def test_sns_notifications_and_stream_sinks(server_factory, capture_server, tmp_path):
    port = capture_server.server_address[1]
    topic_arn = f"arn:aws:sns:us-east-1:{otlib.ACCOUNT_ID}:trail-topic"
    webhook_group = f"arn:aws:logs:us-east-1:{otlib.ACCOUNT_ID}:log-group:audit-webhook:*"
    file_group = f"arn:aws:logs:us-east-1:{otlib.ACCOUNT_ID}:log-group:audit-file"
    ndjson_path = tmp_path / "stream" / "audit.ndjson"
    config = tmp_path / "opentrail.toml"
    config.write_text(
        f"""
[sns_topics]
"{topic_arn}" = "http://127.0.0.1:{port}/sns"

[cloudwatch_log_groups."{webhook_group}"]
kind = "webhook"
url = "http://127.0.0.1:{port}/logs"
secret = "hook-secret"

[cloudwatch_log_groups."{file_group}"]
kind = "file"
path = "{ndjson_path}"
rotate_bytes = 4096
keep_files = 3
"""
    )
    destination = Destination("local", None)
    srv = server_factory(extra_env=destination.env(), extra_args=["--config", str(config)])
    bucket = destination.new_bucket()
    ct = start_trail(
        srv,
        "notified-trail",
        bucket,
        SnsTopicName="trail-topic",
        CloudWatchLogsLogGroupArn=webhook_group,
        CloudWatchLogsRoleArn=f"arn:aws:iam::{otlib.ACCOUNT_ID}:role/CloudTrail_CloudWatchLogs_Role",
    )
    trail = ct.get_trail(Name="notified-trail")["Trail"]
    assert trail["SnsTopicARN"] == topic_arn
    start_trail(srv, "file-stream-trail", bucket, prefix="file", CloudWatchLogsLogGroupArn=file_group)
    ids = srv.ingest_ok(events("Notified", 12))
    wait_for_ids(destination, srv, bucket, ids)

    def notified_keys():
        keys = set()
        for path, headers, body in capture_server.captured:
            if path == "/sns":
                envelope = json.loads(body)
                assert envelope["Type"] == "Notification" and envelope["TopicArn"] == topic_arn
                assert headers["x-amz-sns-message-type"] == "Notification"
                message = json.loads(envelope["Message"])
                assert message["s3Bucket"] == bucket
                keys.update(message["s3ObjectKey"])
        return keys

    # Both trails write to one bucket; the notified trail's files are those outside file/.
    def notified_trail_files():
        return {k for k in destination.files(srv, bucket) if not k.startswith("file/")}

    otlib.wait_for(
        lambda: "LatestNotificationTime" in ct.get_trail_status(Name="notified-trail"),
        timeout=30,
        what="a notification",
    )
    otlib.wait_for(
        lambda: set(ids) <= set(id_counts({k: v for k, v in destination.files(srv, bucket).items() if not k.startswith("file/")})),
        timeout=30,
        what="the notified trail's files",
    )
    otlib.wait_for(lambda: notified_trail_files() <= notified_keys(), timeout=30, what="SNS notifications")

    def streamed_ids():
        found = set()
        for path, headers, body in capture_server.captured:
            if path == "/logs":
                expected = "sha256=" + hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
                assert headers["x-opentrail-signature-256"] == expected
                assert headers["content-type"] == "application/x-ndjson"
                assert headers["x-opentrail-log-stream"] == f"{otlib.ACCOUNT_ID}_CloudTrail_us-east-1"
                for line in body.decode().splitlines():
                    found.add(json.loads(line)["eventID"])
        return found

    otlib.wait_for(lambda: set(ids) <= streamed_ids(), timeout=30, what="webhook stream")

    def file_ids():
        found = []
        for path in sorted(ndjson_path.parent.glob("audit.ndjson*")):
            found += [json.loads(line)["eventID"] for line in path.read_text().splitlines() if line]
        return found

    otlib.wait_for(lambda: set(ids) <= set(file_ids()), timeout=30, what="file stream")
    assert len(list(ndjson_path.parent.glob("audit.ndjson.*"))) >= 1, "12 records of ~1 KB rotate a 4 KB file"

    status = ct.get_trail_status(Name="notified-trail")
    assert "LatestNotificationTime" in status and "LatestNotificationError" not in status, status
    assert "LatestCloudWatchLogsDeliveryTime" in status, status


def test_unreachable_webhook_is_reported_in_latest_notification_error(server_factory, tmp_path):
    dead_port = otlib.free_port()
    topic = "dead-topic"
    config = tmp_path / "opentrail.toml"
    config.write_text(f'[sns_topics]\n"{topic}" = "http://127.0.0.1:{dead_port}/sns"\n')
    destination = Destination("local", None)
    srv = server_factory(extra_env=destination.env(), extra_args=["--config", str(config)])
    bucket = destination.new_bucket()
    ct = start_trail(srv, "dead-topic-trail", bucket, SnsTopicName=topic)
    ids = srv.ingest_ok(events("DeadTopic", 2))
    wait_for_ids(destination, srv, bucket, ids)
    otlib.wait_for(
        lambda: "LatestNotificationError" in ct.get_trail_status(Name="dead-topic-trail"),
        timeout=60,
        what="LatestNotificationError",
    )

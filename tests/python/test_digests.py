"""Log file integrity end to end: the real `aws cloudtrail validate-logs` (awsCLI v1 from
PyPI) accepts OpenTrail's digest chain in a real S3-compatible server, and reports a
changed log file as INVALID with exit status 1; `opentrail validate` agrees.

The S3 server is conftest's `s3_endpoint` (`moto_server` on a free port unless
OPENTRAIL_TEST_S3_ENDPOINT names a running one). The aws CLI reaches OpenTrail through
`--endpoint-url` and S3 through AWS_ENDPOINT_URL_S3: validate-logs never sends
--endpoint-url to S3 (spec §6.4). Digests are written every 2 s here.
"""

from __future__ import annotations

import datetime
import gzip
import json
import os
import subprocess
import time
import uuid


import otlib
from test_delivery import WITHOUT_SELF_AUDIT, s3_client

WAIT_S = 90.0


def s3_env(endpoint: str) -> dict[str, str]:
    return {
        "OPENTRAIL_DELIVERY_INTERVAL_SECS": "1",
        "OPENTRAIL_DIGEST_INTERVAL_SECS": "2",
        "OPENTRAIL_S3_ENDPOINT": endpoint,
        "OPENTRAIL_S3_REGION": "us-east-1",
        "OPENTRAIL_S3_ACCESS_KEY_ID": "test",
        "OPENTRAIL_S3_SECRET_ACCESS_KEY": "test",
    }


def digests_in(s3, bucket: str) -> dict[str, dict]:
    found = {}
    for page in s3.get_paginator("list_objects").paginate(Bucket=bucket, Prefix="AWSLogs/"):
        for obj in page.get("Contents", []):
            if "/CloudTrail-Digest/" in obj["Key"]:
                body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
                found[obj["Key"]] = json.loads(gzip.decompress(body))
    return found


def log_files_in(s3, bucket: str) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects").paginate(Bucket=bucket, Prefix="AWSLogs/"):
        keys += [obj["Key"] for obj in page.get("Contents", []) if "/CloudTrail/" in obj["Key"]]
    return keys


def wait_for_digested(s3, bucket: str, srv: otlib.Server, minimum_digests: int = 3) -> dict[str, dict]:
    """Waits until every delivered log file is in a digest and the chain is long enough."""
    deadline = time.monotonic() + WAIT_S
    while True:
        logs = set(log_files_in(s3, bucket))
        digests = digests_in(s3, bucket)
        covered = {f["s3Object"] for d in digests.values() for f in d["logFiles"]}
        if logs and logs <= covered and len(digests) >= minimum_digests:
            return digests
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(logs - covered)} log files not digested, {len(digests)} digests\n{srv.logs()}")
        time.sleep(0.5)


def validate_logs(srv: otlib.Server, arn: str, start: str, s3_endpoint: str) -> otlib.CliResult:
    return srv.aws(
        "cloudtrail", "validate-logs", "--trail-arn", arn, "--start-time", start, "--verbose",
        env={"AWS_ENDPOINT_URL_S3": s3_endpoint},
    )


def opentrail_validate(srv: otlib.Server, arn: str, start: str, s3_endpoint: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=srv.admin.access_key_id,
        AWS_SECRET_ACCESS_KEY=srv.admin.secret_access_key,
        OPENTRAIL_S3_ENDPOINT=s3_endpoint,
        OPENTRAIL_S3_ACCESS_KEY_ID="test",
        OPENTRAIL_S3_SECRET_ACCESS_KEY="test",
    )
    return subprocess.run(
        [str(srv.binary), "validate", "--trail-arn", arn, "--start-time", start, "--endpoint", srv.endpoint],
        env=env, capture_output=True, text=True, timeout=120,
    )


def test_aws_cli_validate_logs_accepts_the_chain_and_catches_a_changed_log_file(s3_endpoint, server_factory):
    srv = server_factory(extra_env=s3_env(s3_endpoint))
    s3 = s3_client(s3_endpoint)
    bucket = f"digests-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    ct = srv.client()
    start = otlib.iso(otlib.utcnow() - datetime.timedelta(minutes=1))
    arn = ct.create_trail(Name="integrity", S3BucketName=bucket, EnableLogFileValidation=True)["TrailARN"]
    ct.put_event_selectors(TrailName="integrity", AdvancedEventSelectors=WITHOUT_SELF_AUDIT)
    ct.start_logging(Name="integrity")
    now = otlib.utcnow()
    for batch in range(2):
        srv.ingest_ok([otlib.cloudtrail_event(f"Digest{batch}{i}", event_time=now) for i in range(5)])
        time.sleep(2.5)
    digests = wait_for_digested(s3, bucket, srv)

    # Every field, chained, the first with nulls.
    first = min(digests.values(), key=lambda d: d["digestEndTime"])
    assert first["previousDigestSignature"] is None and first["previousDigestS3Object"] is None
    for key, digest in digests.items():
        assert digest["digestS3Object"] == key and digest["digestS3Bucket"] == bucket
        assert digest["digestSignatureAlgorithm"] == "SHA256withRSA"
        head = s3.head_object(Bucket=bucket, Key=key)
        assert len(head["Metadata"]["signature"]) == 512
        assert head["Metadata"]["signature-algorithm"] == "SHA256withRSA"

    result = validate_logs(srv, arn, start, s3_endpoint)
    print(result.stdout)
    assert result.code == 0, f"{result.stdout}\n{result.stderr}"
    assert "INVALID" not in result.stdout
    assert "digest files valid" in result.stdout and "log files valid" in result.stdout

    ours = opentrail_validate(srv, arn, start, s3_endpoint)
    assert ours.returncode == 0, f"{ours.stdout}\n{ours.stderr}"

    # Change one delivered log file: both validators must say so.
    victim = sorted(log_files_in(s3, bucket))[0]
    original = gzip.decompress(s3.get_object(Bucket=bucket, Key=victim)["Body"].read())
    s3.put_object(Bucket=bucket, Key=victim, Body=gzip.compress(original.replace(b"Digest", b"Dogest")))
    tampered = validate_logs(srv, arn, start, s3_endpoint)
    print(tampered.stdout)
    assert tampered.code == 1, f"{tampered.stdout}\n{tampered.stderr}"
    assert f"s3://{bucket}/{victim}\tINVALID" in tampered.stdout + tampered.stderr

    ours = opentrail_validate(srv, arn, start, s3_endpoint)
    assert ours.returncode == 1, f"{ours.stdout}\n{ours.stderr}"
    assert f"s3://{bucket}/{victim}\tINVALID: hash value doesn't match" in ours.stdout


def test_list_public_keys_returns_pkcs1_keys_matching_digest_fingerprints(s3_endpoint, server_factory):
    srv = server_factory(extra_env=s3_env(s3_endpoint))
    s3 = s3_client(s3_endpoint)
    bucket = f"keys-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    ct = srv.client()
    ct.create_trail(Name="keyed", S3BucketName=bucket, EnableLogFileValidation=True)
    ct.start_logging(Name="keyed")
    deadline = time.monotonic() + WAIT_S
    while not digests_in(s3, bucket):
        assert time.monotonic() < deadline, srv.logs()
        time.sleep(0.5)
    digest = next(iter(digests_in(s3, bucket).values()))
    keys = ct.list_public_keys(StartTime=otlib.utcnow().timestamp() - 3600, EndTime=otlib.utcnow().timestamp() + 7200)["PublicKeyList"]
    assert [k["Fingerprint"] for k in keys] == [digest["digestPublicKeyFingerprint"]]
    import rsa  # awscli's own dependency: loads exactly what validate-logs loads

    rsa.PublicKey.load_pkcs1(keys[0]["Value"], format="DER")
    assert keys[0]["ValidityEndTime"] > keys[0]["ValidityStartTime"]

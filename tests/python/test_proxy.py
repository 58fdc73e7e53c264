"""The recording proxy (`opentrail proxy`, `[[proxy]]`) and the Kubernetes audit webhook.

Real components only: `moto_server` is the AWS-protocol upstream, driven through the proxy
by boto3 and the aws CLI; a small Python HTTP server is the plain-HTTP upstream and tells
what it received; OpenTrail is the real binary, killed with SIGKILL where the test says so.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions
import pytest

import otlib
from test_tls import certificates, tls_server  # noqa: F401 (fixtures)

PROXY_KEY = "AKIAPROXYALICE000001"
PROXY_SECRET = "moto-does-not-check-this-secret"


def write_credentials(path: Path, creds: otlib.Creds) -> Path:
    path.write_text(
        f"[default]\naws_access_key_id = {creds.access_key_id}\naws_secret_access_key = {creds.secret_access_key}\n"
    )
    return path


class ProxyProcess:
    """One `opentrail proxy` on a free loopback port."""

    def __init__(self, base: Path, upstream: str, *args: str):
        self.base = base
        self.port = otlib.free_port()
        self.log = base / f"proxy-{self.port}.log"
        self.cmd = [
            str(otlib.opentrail_bin()),
            "proxy",
            "--listen",
            f"127.0.0.1:{self.port}",
            "--upstream",
            upstream,
            *args,
        ]
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ProxyProcess":
        env = dict(os.environ, RUST_LOG="info")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"opentrail proxy exited:\n{self.log.read_text()}")
            try:
                import socket

                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"opentrail proxy did not listen:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def peak_rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM in /proc status")


def aws_client(service: str, endpoint: str, key: str = PROXY_KEY):
    return boto3.session.Session(
        aws_access_key_id=key, aws_secret_access_key=PROXY_SECRET, region_name="us-east-1"
    ).client(
        service,
        endpoint_url=endpoint,
        config=botocore.config.Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="module")
def moto():
    server = otlib.MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def proxies(tmp_path):
    started: list[ProxyProcess] = []

    def start(upstream: str, *args: str) -> ProxyProcess:
        proxy = ProxyProcess(tmp_path, upstream, *args).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@contextlib.contextmanager
def served(data_dir: Path):
    """`opentrail serve` on a data directory a stopped proxy recorded into."""
    server = otlib.Server(otlib.opentrail_bin(), data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def remote_proxy(proxies, upstream: str, server: otlib.Server, tmp_path: Path, queue: str, *extra: str) -> "ProxyProcess":
    """`opentrail proxy` recording into `server` with a fresh ingest key, through `queue`."""
    credentials = write_credentials(tmp_path / f"{queue}-credentials", server.create_key("ingest"))
    return proxies(
        upstream,
        "--endpoint", server.endpoint,
        "--credentials", str(credentials),
        "--queue-dir", str(tmp_path / queue),
        *extra,
    )


def events_of_key(server: otlib.Server, key: str) -> list[dict]:
    client = server.client()
    events = otlib.lookup_all(client, LookupAttributes=[{"AttributeKey": "AccessKeyId", "AttributeValue": key}])
    return [json.loads(event["CloudTrailEvent"]) for event in events]


def wait_for_events(server: otlib.Server, key: str, predicate, what: str, timeout: float = 20.0) -> list[dict]:
    found: list[dict] = []

    def ready() -> bool:
        nonlocal found
        found = events_of_key(server, key)
        return predicate(found)

    try:
        otlib.wait_for(ready, timeout=timeout, interval=0.2, what=what)
    except AssertionError as error:
        names = sorted((r["eventSource"], r["eventName"], r.get("errorCode") or "") for r in found)
        raise AssertionError(f"{error}; recorded so far: {names}") from None
    return found


# --------------------------------------------------------------------------- AWS calls


def test_aws_calls_through_the_proxy_are_recorded_with_name_user_resource_and_error(server_factory, moto, proxies, tmp_path):
    server = server_factory()
    proxy = remote_proxy(
        proxies, moto.endpoint, server, tmp_path, "queue",
        "--key-name", f"{PROXY_KEY}=alice", "--account-id", server.account_id,
    )
    s3 = aws_client("s3", proxy.endpoint)
    s3.create_bucket(Bucket="reports")
    s3.put_object(Bucket="reports", Key="2026/q4.csv", Body=b"a,b\n1,2\n")
    assert s3.get_object(Bucket="reports", Key="2026/q4.csv")["Body"].read() == b"a,b\n1,2\n"
    with pytest.raises(botocore.exceptions.ClientError) as missing:
        s3.get_object(Bucket="reports", Key="missing.csv")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"
    s3.delete_object(Bucket="reports", Key="2026/q4.csv")

    dynamodb = aws_client("dynamodb", proxy.endpoint)
    dynamodb.create_table(
        TableName="orders",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.delete_table(TableName="orders")
    with pytest.raises(botocore.exceptions.ClientError) as gone:
        dynamodb.delete_table(TableName="orders")
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"

    iam = aws_client("iam", proxy.endpoint)
    iam.create_user(UserName="bob")
    with pytest.raises(botocore.exceptions.ClientError) as no_user:
        iam.get_user(UserName="nobody")
    assert no_user.value.response["Error"]["Code"] == "NoSuchEntity"
    aws_client("sts", proxy.endpoint).get_caller_identity()
    sqs = aws_client("sqs", proxy.endpoint)
    queue_url = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="hello")

    # The aws CLI, unmodified, through the proxy.
    env = dict(os.environ, AWS_ACCESS_KEY_ID=PROXY_KEY, AWS_SECRET_ACCESS_KEY=PROXY_SECRET, AWS_DEFAULT_REGION="us-east-1")
    listed = subprocess.run(
        [otlib.aws_cli_path(), "--endpoint-url", proxy.endpoint, "dynamodb", "list-tables", "--output", "json"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert listed.returncode == 0, listed.stderr
    upload = tmp_path / "notes.txt"
    upload.write_text("quarterly notes\n")
    copied = subprocess.run(
        [otlib.aws_cli_path(), "--endpoint-url", proxy.endpoint, "s3", "cp", str(upload), "s3://reports/notes.txt"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert copied.returncode == 0, copied.stderr
    missing_user = subprocess.run(
        [otlib.aws_cli_path(), "--endpoint-url", proxy.endpoint, "iam", "get-user", "--user-name", "ghost"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert missing_user.returncode != 0 and "NoSuchEntity" in missing_user.stderr

    expected = {
        ("s3.amazonaws.com", "CreateBucket", None),
        ("s3.amazonaws.com", "PutObject", None),
        ("s3.amazonaws.com", "GetObject", None),
        ("s3.amazonaws.com", "GetObject", "NoSuchKey"),
        ("s3.amazonaws.com", "DeleteObject", None),
        ("dynamodb.amazonaws.com", "CreateTable", None),
        ("dynamodb.amazonaws.com", "DeleteTable", None),
        ("dynamodb.amazonaws.com", "DeleteTable", "ResourceNotFoundException"),
        ("dynamodb.amazonaws.com", "ListTables", None),
        ("s3.amazonaws.com", "PutObject", None),
        ("iam.amazonaws.com", "CreateUser", None),
        ("iam.amazonaws.com", "GetUser", "NoSuchEntity"),
        ("sts.amazonaws.com", "GetCallerIdentity", None),
        ("sqs.amazonaws.com", "CreateQueue", None),
        ("sqs.amazonaws.com", "SendMessage", None),
    }
    records = wait_for_events(
        server, PROXY_KEY,
        lambda found: expected <= {(r["eventSource"], r["eventName"], r.get("errorCode")) for r in found},
        "every call recorded",
    )
    assert len(records) == 16, sorted(r["eventName"] for r in records)
    by_name = {}
    for record in records:
        by_name.setdefault((record["eventName"], record.get("errorCode")), record)
        assert record["userIdentity"]["accessKeyId"] == PROXY_KEY
        assert record["userIdentity"]["userName"] == "alice"
        assert record["recipientAccountId"] == server.account_id
        assert record["sourceIPAddress"] == "127.0.0.1"
        assert "Signature=" not in json.dumps(record), "no signature is stored"

    put = next(r for r in records if r["eventName"] == "PutObject" and r["requestParameters"]["key"] == "2026/q4.csv")
    assert put["requestParameters"]["bucketName"] == "reports"
    assert put["requestParameters"]["key"] == "2026/q4.csv"
    assert {r["ARN"] for r in put["resources"]} == {"arn:aws:s3:::reports", "arn:aws:s3:::reports/2026/q4.csv"}
    assert put["eventCategory"] == "Data" and put["readOnly"] is False
    assert by_name[("GetObject", None)]["readOnly"] is True
    deleted = by_name[("DeleteTable", None)]
    assert deleted["resources"][0]["ARN"] == f"arn:aws:dynamodb:us-east-1:{server.account_id}:table/orders"
    assert deleted["eventCategory"] == "Management"
    failed = by_name[("DeleteTable", "ResourceNotFoundException")]
    assert failed["errorMessage"], failed
    assert by_name[("CreateUser", None)]["requestParameters"]["userName"] == "bob"
    assert by_name[("ListTables", None)]["userAgent"].startswith("aws-cli/")
    cli_put = [r for r in records if r["eventName"] == "PutObject" and r["requestParameters"]["key"] == "notes.txt"]
    assert len(cli_put) == 1 and cli_put[0]["userAgent"].startswith("aws-cli/")
    ghost = [r for r in records if r["eventName"] == "GetUser" and r["requestParameters"]["userName"] == "ghost"]
    assert len(ghost) == 1 and ghost[0]["errorCode"] == "NoSuchEntity"

    # Combined filters find a recorded call like any other event.
    found = otlib.lookup_attr(server.client(), "ResourceName", "orders")
    assert {json.loads(e["CloudTrailEvent"])["eventName"] for e in found} >= {"CreateTable", "DeleteTable"}


def test_a_100_mb_upload_streams_through_byte_identical_without_buffering(server_factory, moto, proxies, tmp_path):
    server = server_factory()
    proxy = proxies(moto.endpoint, "--data-dir", str(tmp_path / "proxy-data"))
    s3 = aws_client("s3", proxy.endpoint, key="AKIAPROXYUPLOAD00001")
    s3.create_bucket(Bucket="big")
    # The proxy's own store is open and has recorded a call: its memory is in use already.
    before = proxy.peak_rss_mb()
    body = os.urandom(100 * 1024 * 1024)
    s3.put_object(Bucket="big", Key="blob.bin", Body=body)
    direct = aws_client("s3", moto.endpoint)
    stored = direct.get_object(Bucket="big", Key="blob.bin")["Body"].read()
    assert hashlib.sha256(stored).hexdigest() == hashlib.sha256(body).hexdigest()
    # The proxy copied only the first bytes of the body; buffering it would add 100 MB.
    added = proxy.peak_rss_mb() - before
    assert added < 50, f"the upload raised the proxy's peak RSS by {added:.0f} MB (from {before:.0f} MB)"
    del server


def test_local_recording_survives_into_the_data_directory(server_factory, moto, proxies, tmp_path):
    data_dir = tmp_path / "recorded"
    proxy = proxies(moto.endpoint, "--data-dir", str(data_dir))
    dynamodb = aws_client("dynamodb", proxy.endpoint, key="AKIAPROXYLOCAL000001")
    dynamodb.list_tables()
    time.sleep(0.5)  # the record is appended right after the response; stopping drains it anyway
    proxy.stop()
    assert proxy.proc.returncode == 0, proxy.log.read_text()
    with served(data_dir) as server:
        records = events_of_key(server, "AKIAPROXYLOCAL000001")
        assert [(r["eventSource"], r["eventName"]) for r in records] == [("dynamodb.amazonaws.com", "ListTables")]


def test_a_kill_9_of_opentrail_neither_blocks_the_proxy_nor_loses_or_doubles_a_call(server_factory, moto, proxies, tmp_path):
    server = server_factory()
    proxy = remote_proxy(proxies, moto.endpoint, server, tmp_path, "queue")
    key = "AKIAPROXYOUTAGE00001"
    s3 = aws_client("s3", proxy.endpoint, key=key)
    s3.create_bucket(Bucket="outage")
    for index in range(20):
        s3.put_object(Bucket="outage", Key=f"before-{index}", Body=b"x")
    port = server.port
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=30)
    # OpenTrail is down: calls still go through, and wait on the proxy's disk.
    for index in range(30):
        s3.put_object(Bucket="outage", Key=f"during-{index}", Body=b"x")
    server.start(port=port)
    expected = {f"before-{i}" for i in range(20)} | {f"during-{i}" for i in range(30)}
    records = wait_for_events(
        server, key,
        lambda found: {r["requestParameters"]["key"] for r in found if r["eventName"] == "PutObject"} >= expected,
        "every call recorded after the restart",
        timeout=40,
    )
    puts = [r["requestParameters"]["key"] for r in records if r["eventName"] == "PutObject"]
    assert sorted(puts) == sorted(expected), "each call exactly once"
    assert len({r["eventID"] for r in records}) == len(records)


# --------------------------------------------------------------------------- plain HTTP


class EchoUpstream(http.server.ThreadingHTTPServer):
    """A plain HTTP API that remembers what it received and answers by path."""

    def __init__(self):
        self.received: list[dict] = []
        super().__init__(("127.0.0.1", 0), EchoHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class EchoHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.received.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        if "forbidden" in self.path:
            status, answer = 403, {"error": "AccessDenied", "message": "not for you"}
        else:
            status, answer = 200, {"ok": True}
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


def jwt(claims: dict) -> str:
    encode = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{encode({'alg': 'HS256'})}.{encode(claims)}.c2lnbmF0dXJl"


def call(endpoint: str, method: str, path: str, body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(endpoint + path, data=data, method=method, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_plain_http_calls_follow_route_rules_and_secrets_never_reach_the_store(server_factory, proxies, tmp_path):
    upstream = EchoUpstream()
    config = tmp_path / "proxy.toml"
    config.write_text(
        """
[[proxy]]
[proxy.recording]
event_source = "users.example.com"
redact_headers = ["x-tenant-secret"]
redact_json_paths = ["credentials.apiKey"]

[[proxy.recording.routes]]
method = "POST"
path = "/v1/users/{user}/keys"
event_name = "CreateUserKey"
resource_type = "Example::User"
resource_name = "users/{user}"
"""
    )
    data_dir = tmp_path / "recorded"
    proxy = proxies(upstream.endpoint, "--data-dir", str(data_dir), "--config", str(config))
    secrets = ["tenant-secret-1", "api-key-2", "password-3", "basic-password-4", "jwt-secret-5"]
    body = {"credentials": {"apiKey": secrets[1], "label": "ci"}, "password": secrets[2]}
    status, _ = call(
        proxy.endpoint, "POST", "/v1/users/carol/keys", body,
        {"x-tenant-secret": secrets[0], "authorization": "Basic " + base64.b64encode(f"carol:{secrets[3]}".encode()).decode()},
    )
    assert status == 200
    status, _ = call(
        proxy.endpoint, "GET", "/v1/forbidden/thing?verbose=1", None,
        {"authorization": "Bearer " + jwt({"sub": "dave", "iss": "https://idp.example.com", "nonce": secrets[4]})},
    )
    assert status == 403

    # The upstream got the call unchanged: body bytes and headers, secrets included.
    first = upstream.received[0]
    assert json.loads(first["body"]) == body
    assert first["headers"]["x-tenant-secret"] == secrets[0]

    time.sleep(0.5)
    proxy.stop()
    try:
        with served(data_dir) as server:
            client = server.client()
            created = otlib.lookup_attr(client, "EventName", "CreateUserKey")
            assert len(created) == 1
            record = json.loads(created[0]["CloudTrailEvent"])
            assert record["eventSource"] == "users.example.com"
            assert record["userIdentity"]["userName"] == "carol"
            assert [(r["type"], r["ARN"]) for r in record["resources"]] == [("Example::User", "users/carol")]
            assert record["requestParameters"]["user"] == "carol"
            assert record["requestParameters"]["credentials"]["label"] == "ci"
            forbidden = otlib.lookup_attr(client, "Username", "dave")
            assert len(forbidden) == 1
            denied = json.loads(forbidden[0]["CloudTrailEvent"])
            assert denied["errorCode"] == "AccessDenied" and denied["errorMessage"] == "not for you"
            assert denied["userIdentity"]["identityProvider"] == "https://idp.example.com"
            assert denied["readOnly"] is True
            for stored in (record, denied):
                text = json.dumps(stored)
                for secret in secrets:
                    assert secret not in text, f"{secret} stored: {text}"
            # Nor any file of the data directory (uncompressed parts such as indexes).
            for path in data_dir.rglob("*"):
                if path.is_file():
                    content = path.read_bytes()
                    for secret in secrets:
                        assert secret.encode() not in content, f"{secret} stored in {path}"
    finally:
        upstream.shutdown()


def test_a_full_queue_refuses_calls_unless_told_to_pass_them(server_factory, proxies, tmp_path):
    upstream = EchoUpstream()
    server = server_factory()
    try:
        # A queue of 0 MB is always full.
        strict = remote_proxy(proxies, upstream.endpoint, server, tmp_path, "q1", "--queue-max-mb", "0")
        status, answer = call(strict.endpoint, "POST", "/v1/orders", {"item": "book"})
        assert status == 503 and json.loads(answer)["__type"] == "ServiceUnavailable", answer
        assert upstream.received == [], "a call that cannot be recorded is not forwarded"
        lenient = remote_proxy(proxies, upstream.endpoint, server, tmp_path, "q2",
                               "--queue-max-mb", "0", "--on-queue-full", "pass")
        status, _ = call(lenient.endpoint, "POST", "/v1/orders", {"item": "book"})
        assert status == 200 and len(upstream.received) == 1
    finally:
        upstream.shutdown()


# --------------------------------------------------------------------------- [[proxy]] sections


def server_with_proxy_section(server_factory, upstream: str, tmp_path, recording: str = "", *args: str):
    """A server whose config has one `[[proxy]]` section in front of `upstream`; returns
    it and the proxy's endpoint."""
    port = otlib.free_port()
    config = tmp_path / "opentrail.toml"
    config.write_text(
        f"""
[[proxy]]
listen = "127.0.0.1:{port}"
upstream = "{upstream}"
{recording}
"""
    )
    server = server_factory(extra_args=["--config", str(config), *args])
    return server, f"http://127.0.0.1:{port}"


def test_a_proxy_section_in_the_server_config_records_into_the_server(server_factory, moto, tmp_path):
    server, proxy = server_with_proxy_section(
        server_factory,
        moto.endpoint,
        tmp_path,
        '[proxy.recording]\nkey_names = { AKIAPROXYSECTION0001 = "erin" }',
    )
    sqs = aws_client("sqs", proxy, key="AKIAPROXYSECTION0001")
    sqs.create_queue(QueueName="section-jobs")
    records = wait_for_events(server, "AKIAPROXYSECTION0001", lambda found: len(found) >= 1, "the section's call recorded")
    assert records[0]["eventName"] == "CreateQueue"
    assert records[0]["userIdentity"]["userName"] == "erin"
    assert records[0]["resources"][0]["ARN"] == f"arn:aws:sqs:us-east-1:{server.account_id}:section-jobs"


def test_calls_a_proxy_section_records_are_matched_by_the_servers_rules(server_factory, moto, tmp_path):
    rules_dir = Path(__file__).resolve().parents[2] / "rules" / "cloudtrail"
    # No rule fires on CreateBucket; the starter rule "S3 bucket deleted" fires on the
    # DeleteBucket, which the proxy records into the server (screened like HTTP ingest).
    server, proxy = server_with_proxy_section(
        server_factory, moto.endpoint, tmp_path, "", "--rules", str(rules_dir)
    )
    s3 = aws_client("s3", proxy, key="AKIAPROXYRULES000001")
    kept, deleted = otlib.uniq("kept-bucket").lower(), otlib.uniq("gone-bucket").lower()
    for bucket in (kept, deleted):
        s3.create_bucket(Bucket=bucket)
    s3.delete_bucket(Bucket=deleted)
    records = wait_for_events(
        server, "AKIAPROXYRULES000001", lambda found: len(found) >= 3, "the three calls recorded"
    )
    deletion = next(record for record in records if record["eventName"] == "DeleteBucket")

    def bucket_alerts() -> list[dict]:
        answer = server.signed_request("GET", "/v1/alerts", query={"limit": "100"})
        assert answer.status == 200, answer
        return answer.json["alerts"]

    otlib.wait_for(lambda: bucket_alerts(), timeout=20, interval=0.2, what="an alert for the deleted bucket")
    alerts = bucket_alerts()
    assert [(alert["ruleTitle"], alert["eventId"]) for alert in alerts] == [
        ("S3 bucket deleted", deletion["eventID"])
    ], alerts


# --------------------------------------------------------------------------- Kubernetes


def audit_event(audit_id: str, verb: str, uri: str, user: str, object_ref: dict | None, code: int, **extra) -> dict:
    event = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "RequestResponse",
        "auditID": audit_id,
        "stage": "ResponseComplete",
        "requestURI": uri,
        "verb": verb,
        "user": {"username": user, "uid": f"uid-{user}", "groups": ["system:authenticated"]},
        "sourceIPs": ["10.1.2.3"],
        "userAgent": "kubectl/v1.31.0 (linux/amd64) kubernetes/abcdef",
        "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": "2026-12-04T09:15:02.123456Z",
        "stageTimestamp": "2026-12-04T09:15:02.234567Z",
        "annotations": {"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
    }
    if object_ref is not None:
        event["objectRef"] = object_ref
    event.update(extra)
    return event


def test_kubernetes_audit_events_become_records_once(server_factory):
    server = server_factory()
    ingest = server.create_key("ingest")
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1"}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}
    secret_data = "c3VwZXItc2VjcmV0LXZhbHVl"
    forbidden = audit_event(
        "6c4d7f5e-0000-4000-8000-000000000003", "list", "/api/v1/namespaces/kube-system/secrets",
        "system:serviceaccount:default:intruder",
        {"resource": "secrets", "namespace": "kube-system", "apiVersion": "v1"}, 403,
        annotations={"authorization.k8s.io/decision": "forbid", "authorization.k8s.io/reason": ""},
    )
    forbidden["responseStatus"] = {
        "metadata": {}, "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": 'secrets is forbidden: User "system:serviceaccount:default:intruder" cannot list resource "secrets"',
    }
    event_list = {
        "kind": "EventList",
        "apiVersion": "audit.k8s.io/v1",
        "metadata": {},
        "items": [
            audit_event(
                "6c4d7f5e-0000-4000-8000-000000000001", "create", "/api/v1/namespaces/default/pods", "alice",
                {"resource": "pods", "namespace": "default", "name": "web-1", "apiVersion": "v1"}, 201,
                requestObject=pod,
            ),
            audit_event(
                "6c4d7f5e-0000-4000-8000-000000000002", "delete", "/api/v1/namespaces/default/secrets/db-password", "bob",
                {"resource": "secrets", "namespace": "default", "name": "db-password", "apiVersion": "v1"}, 200,
                requestObject={"kind": "DeleteOptions", "data": {"password": secret_data}},
            ),
            forbidden,
            # The same create at an earlier stage: not a second record.
            {**audit_event(
                "6c4d7f5e-0000-4000-8000-000000000001", "create", "/api/v1/namespaces/default/pods", "alice",
                {"resource": "pods", "namespace": "default", "name": "web-1", "apiVersion": "v1"}, 201,
            ), "stage": "RequestReceived"},
        ],
    }
    body = json.dumps(event_list).encode()
    headers = {"content-type": "application/json", "Authorization": f"Bearer {ingest.token}"}
    first = server.raw_request("POST", "/v1/k8s-audit?cluster=prod-eu", body, headers)
    assert first.status == 200, first.text
    answer = first.json
    assert [a["index"] for a in answer["accepted"]] == [0, 1, 2] and answer["skippedStages"] == 1, answer
    again = server.raw_request("POST", "/v1/k8s-audit?cluster=prod-eu", body, headers).json
    assert again["accepted"] == [] and len(again["duplicates"]) == 3, again

    client = server.client()
    records = {}
    for event in otlib.lookup_all(client, LookupAttributes=[{"AttributeKey": "EventSource", "AttributeValue": "k8s.prod-eu"}]):
        record = json.loads(event["CloudTrailEvent"])
        records[record["eventName"]] = record
    assert sorted(records) == ["CreatePod", "DeleteSecret", "ListSecrets"]
    created = records["CreatePod"]
    assert created["userIdentity"]["userName"] == "alice"
    assert created["userIdentity"]["type"] == "KubernetesUser"
    assert created["sourceIPAddress"] == "10.1.2.3"
    assert created["eventTime"] == "2026-12-04T09:15:02Z"
    assert created["eventID"] == "6c4d7f5e-0000-4000-8000-000000000001"
    assert created["requestParameters"]["requestObject"]["spec"]["containers"][0]["image"] == "nginx"
    assert created["resources"][0]["type"] == "K8s::Pod"
    assert created["readOnly"] is False
    deleted = records["DeleteSecret"]
    assert "requestObject" not in deleted["requestParameters"], "a Secret's body is never stored"
    assert secret_data not in json.dumps(deleted)
    denied = records["ListSecrets"]
    assert denied["errorCode"] == "Forbidden" and "cannot list" in denied["errorMessage"]
    assert denied["userIdentity"]["type"] == "KubernetesServiceAccount"
    assert denied["readOnly"] is True
    by_name = otlib.lookup_attr(client, "ResourceName", "web-1")
    assert [json.loads(e["CloudTrailEvent"])["eventName"] for e in by_name] == ["CreatePod"]

    not_a_list = server.raw_request("POST", "/v1/k8s-audit", b'{"kind":"Pod","apiVersion":"v1"}', headers)
    assert not_a_list.status == 400 and not_a_list.error_code == "SerializationException", not_a_list.text
    reader = server.create_key("read")
    refused = server.signed_request("POST", "/v1/k8s-audit", body, {"content-type": "application/json"}, creds=reader)
    assert refused.status == 403 and refused.error_code == "AccessDeniedException", refused.text


# --------------------------------------------------------------------------- TLS and HTTP/2


def test_a_tls_upstream_is_reached_with_its_ca_and_http2_clients_are_served(tls_server, proxies, tmp_path):
    """The upstream is OpenTrail itself over HTTPS (HTTP/2 offered by ALPN), reached with a
    private CA; the SigV4 signature still verifies because the proxy keeps the Host."""
    data_dir = tmp_path / "recorded"
    proxy = proxies(
        tls_server.endpoint, "--data-dir", str(data_dir), "--upstream-ca", str(tls_server.ca_bundle),
    )
    cloudtrail = boto3.session.Session(
        aws_access_key_id=tls_server.admin.access_key_id,
        aws_secret_access_key=tls_server.admin.secret_access_key,
        region_name="us-east-1",
    ).client("cloudtrail", endpoint_url=proxy.endpoint)
    assert "Events" in cloudtrail.lookup_events(MaxResults=1)

    h2 = subprocess.run(
        ["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", proxy.endpoint + "/health"],
        capture_output=True, text=True, timeout=30,
    )
    assert h2.stdout == "2 200", (h2.stdout, h2.stderr)

    without_ca = proxies(tls_server.endpoint, "--data-dir", str(tmp_path / "unused"))
    status, answer = call(without_ca.endpoint, "GET", "/health")
    assert status == 502 and b"UpstreamUnavailable" in answer, answer

    time.sleep(0.5)
    proxy.stop()
    with served(data_dir) as server:
        looked_up = otlib.lookup_attr(server.client(), "AccessKeyId", tls_server.admin.access_key_id)
        records = [json.loads(e["CloudTrailEvent"]) for e in looked_up]
        assert [(r["eventSource"], r["eventName"]) for r in records] == [("cloudtrail.amazonaws.com", "LookupEvents")]
        assert records[0]["requestParameters"]["maxResults"] == 1
        health = otlib.lookup_attr(server.client(), "EventName", "GetHealth")
        assert len(health) == 1


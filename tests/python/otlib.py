"""Helpers for the real-client tests: the `opentrail serve` process, signed raw HTTP, boto3
clients, the aws CLI, the `opentrail keys` commands and CloudTrail record builders.

Nothing here fakes the server: every helper talks to the real binary over loopback, with
boto3/botocore, the aws CLI (v1, from the venv) or hand-built SigV4 requests.
"""

from __future__ import annotations

import collections
import configparser
import datetime as dt
import gzip
import hashlib
import base64
import http.client
import itertools
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.auth import SigV4Auth, SIGV4_TIMESTAMP
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

ACCOUNT_ID = "111122223333"
OTHER_ACCOUNT_ID = "222233334444"
REGION = "us-east-1"
TARGET_PREFIX = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101"
JSON_11 = "application/x-amz-json-1.1"

REPO = Path(__file__).resolve().parents[2]
HEALTH_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0
HTTP_TIMEOUT_S = 60.0


def isolate_aws_environment() -> None:
    """Keeps the host's AWS configuration (profiles, endpoints, credentials) out of the tests."""
    for var in list(os.environ):
        if var.startswith("AWS_"):
            del os.environ[var]
    os.environ["AWS_CONFIG_FILE"] = os.devnull
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Creds:
    access_key_id: str
    secret_access_key: str
    role: str = "admin"
    account_id: str = ACCOUNT_ID
    token: str | None = None

    def botocore(self) -> Credentials:
        return Credentials(self.access_key_id, self.secret_access_key)

    def with_secret(self, secret: str) -> "Creds":
        return Creds(self.access_key_id, secret, self.role, self.account_id, self.token)


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    @property
    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def error_code(self) -> str | None:
        """The error code as botocore reads it: the x-amzn-ErrorType header, else the body's
        `__type`/`code`; keep what follows the last '#', drop what follows the first ':'."""
        raw = self.header("x-amzn-errortype")
        body = self.json if isinstance(self.json, dict) else {}
        if not raw:
            raw = body.get("__type") or body.get("code") or body.get("Code")
        if not raw:
            return None
        return raw.split(":")[0].rsplit("#", 1)[-1]

    @property
    def message(self) -> str | None:
        body = self.json if isinstance(self.json, dict) else {}
        return body.get("message") or body.get("Message")

    def __str__(self) -> str:
        return f"HTTP {self.status} {self.headers} {self.text[:2000]}"


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    json: Any

    def __iter__(self):
        return iter((self.code, self.stdout, self.stderr, self.json))

    def __str__(self) -> str:
        return f"exit {self.code}\nstdout: {self.stdout[:3000]}\nstderr: {self.stderr[:3000]}"


class FixedTimeSigV4Auth(SigV4Auth):
    """botocore's SigV4 signer with a chosen signing time (for stale or future X-Amz-Date)."""

    def __init__(self, credentials, service_name, region_name, when: dt.datetime | None = None):
        super().__init__(credentials, service_name, region_name)
        self._when = when

    def add_auth(self, request):
        if self._when is None:
            return super().add_auth(request)
        request.context["timestamp"] = self._when.astimezone(dt.timezone.utc).strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical_request = self.canonical_request(request)
        string_to_sign = self.string_to_sign(request, canonical_request)
        signature = self.signature(string_to_sign, request)
        self._inject_signature_to_request(request, signature)


# --------------------------------------------------------------------------- time


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def iso(t: dt.datetime) -> str:
    """CloudTrail's eventTime format: whole seconds, UTC, `Z`."""
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(t: dt.datetime) -> float:
    return t.timestamp()


_window_counter = itertools.count()
# Fixed once per session, so windows never collide when the clock crosses an hour.
_WINDOW_ANCHOR = utcnow().replace(minute=0, second=0, microsecond=0) - dt.timedelta(days=2)


def new_window() -> dt.datetime:
    """A whole hour in the past that no other test of this session uses.

    Events placed inside it are isolated from every other test's events (and from the
    self-audit events, which happen now), so time-bounded lookups can assert exact results.
    Windows lie 2 days ago and earlier, one hour each (a session uses far fewer than the
    ~2000 that fit in CloudTrail's 90 days).
    """
    k = next(_window_counter)
    return _WINDOW_ANCHOR - dt.timedelta(hours=k + 1)


def uniq(prefix: str = "T") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def fake_access_key(prefix: str = "AKIA") -> str:
    return (prefix + uuid.uuid4().hex.upper())[:20]


# --------------------------------------------------------------------------- records


def cloudtrail_event(
    event_name: str,
    *,
    event_time: dt.datetime,
    event_source: str = "dynamodb.amazonaws.com",
    user: str = "alice",
    access_key_id: str | None = "AKIAEXAMPLEALICE0001",
    read_only: bool | None = False,
    resources: list[dict] | None = None,
    source_ip: str = "203.0.113.7",
    account: str | None = ACCOUNT_ID,
    region: str | None = REGION,
    event_id: str | None = None,
    request_parameters: Any = None,
    response_elements: Any = None,
    **extra: Any,
) -> dict:
    """A complete CloudTrail record (eventVersion 1.11) of an IAM user's API call.

    Fields passed as None are left out (so the server's normalisation fills them).
    """
    acct = account or ACCOUNT_ID
    identity = {
        "type": "IAMUser",
        "principalId": "AIDA" + hashlib.sha1(user.encode()).hexdigest()[:16].upper(),
        "arn": f"arn:aws:iam::{acct}:user/{user}",
        "accountId": acct,
        "userName": user,
    }
    if access_key_id is not None:
        identity["accessKeyId"] = access_key_id
    rec: dict[str, Any] = {
        "eventVersion": "1.11",
        "userIdentity": identity,
        "eventTime": iso(event_time),
        "eventSource": event_source,
        "eventName": event_name,
        "awsRegion": region,
        "sourceIPAddress": source_ip,
        "userAgent": "aws-cli/1.46.3 md/Botocore#1.43.62 ua/2.1 os/linux#6.1 md/arch#x86_64 lang/python#3.11.7",
        "requestParameters": request_parameters,
        "responseElements": response_elements,
        "requestID": str(uuid.uuid4()),
        "eventID": event_id or str(uuid.uuid4()),
        "readOnly": read_only,
        "resources": resources,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
        "eventCategory": "Management",
    }
    rec.update(extra)
    # requestParameters/responseElements are legitimately null in CloudTrail: keep them.
    keep_null = {"requestParameters", "responseElements"}
    return {k: v for k, v in rec.items() if v is not None or k in keep_null}


def table_arn(name: str, account: str = ACCOUNT_ID, region: str = REGION) -> str:
    return f"arn:aws:dynamodb:{region}:{account}:table/{name}"


def delete_table_event(event_time: dt.datetime, table: str = "orders", **kw: Any) -> dict:
    """The classic: IAM user alice deletes the DynamoDB table `orders` from 203.0.113.7."""
    account = kw.get("account") or ACCOUNT_ID
    arn = table_arn(table, account)
    kw.setdefault("resources", [{"ARN": arn, "accountId": account, "type": "AWS::DynamoDB::Table"}])
    kw.setdefault("request_parameters", {"tableName": table})
    kw.setdefault(
        "response_elements",
        {"tableDescription": {"tableName": table, "tableArn": arn, "tableStatus": "DELETING", "itemCount": 0}},
    )
    return cloudtrail_event("DeleteTable", event_time=event_time, **kw)


# Fields the server may add to a record while normalising it (issue 2, "Normalisation").
NORMALISED_FIELDS = {
    "eventID",
    "eventVersion",
    "eventCategory",
    "eventType",
    "recipientAccountId",
    "awsRegion",
    "readOnly",
    "managementEvent",
}


def assert_record_preserved(stored: dict, sent: dict) -> None:
    """The stored record is the sent one, plus only fields normalisation may add."""
    for key, value in sent.items():
        assert key in stored, f"field {key!r} was lost; stored record: {stored}"
        assert stored[key] == value, f"field {key!r} changed: sent {value!r}, stored {stored[key]!r}"
    extra = set(stored) - set(sent)
    assert extra <= NORMALISED_FIELDS, f"unexpected fields added: {sorted(extra - NORMALISED_FIELDS)}"


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def aws_cli_path() -> str:
    candidate = Path(sys.executable).parent / "aws"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("aws")
    if not found:
        raise RuntimeError("the aws CLI is not installed in the test venv (scripts/python-env installs it)")
    return found


def opentrail_bin() -> Path:
    raw = os.environ.get("OPENTRAIL_BIN")
    path = Path(raw) if raw else REPO / "target" / "debug" / "opentrail"
    return path


class Server:
    """One `opentrail serve` process on a free loopback port with its own data dir."""

    def __init__(
        self,
        binary: Path,
        data_dir: Path,
        *,
        account_id: str = ACCOUNT_ID,
        region: str = REGION,
        extra_env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
        ca_bundle: Path | None = None,
    ):
        self.binary = Path(binary)
        self.data_dir = Path(data_dir)
        self.account_id = account_id
        self.region = region
        self.extra_env = dict(extra_env or {})
        self.extra_args = list(extra_args or [])
        # Set when the server serves HTTPS: the CA that signed its certificate.
        self.ca_bundle = Path(ca_bundle) if ca_bundle else None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.admin: Creds | None = None
        self._clients: dict[tuple, Any] = {}
        self._log_index = 0
        self.stdout_path: Path | None = None
        self.stderr_path: Path | None = None

    # ---- lifecycle

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.ca_bundle else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("RUST_LOG", "info")
        env["OPENTRAIL_ACCOUNT_ID"] = self.account_id
        env["OPENTRAIL_REGION"] = self.region
        env.update(self.extra_env)
        return env

    def start(self, port: int | None = None) -> "Server":
        """Starts on a free port, or on `port` (a restart that clients must find again)."""
        if not self.binary.exists():
            raise RuntimeError(
                f"opentrail binary not found at {self.binary}; build it (cargo build -p opentrail) "
                "or set OPENTRAIL_BIN"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probing and binding
            self.port = port or free_port()
            self._log_index += 1
            logs = self.data_dir.parent
            self.stdout_path = logs / f"{self.data_dir.name}.stdout.{self._log_index}.log"
            self.stderr_path = logs / f"{self.data_dir.name}.stderr.{self._log_index}.log"
            cmd = [
                str(self.binary),
                "serve",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                f"127.0.0.1:{self.port}",
                *self.extra_args,
            ]
            with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(cmd, env=self.env(), stdout=out, stderr=err, stdin=subprocess.DEVNULL)
            ok, last_error = self._wait_healthy()
            if ok:
                self._read_credentials()
                return self
            self.kill()
            if "address" not in last_error.lower() or "in use" not in last_error.lower():
                break
        raise RuntimeError(last_error)

    def _wait_healthy(self) -> tuple[bool, str]:
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False, (
                    f"`opentrail serve` exited with code {self.proc.returncode} before /health "
                    f"answered 200.\n{self.logs()}"
                )
            try:
                r = self.raw_request("GET", "/health", timeout=2)
                if r.status == 200:
                    return True, ""
                last = f"/health answered {r.status}: {r.text[:500]}"
            except OSError as e:
                last = f"/health: {e}"
            time.sleep(0.1)
        return False, f"/health did not answer 200 within {HEALTH_TIMEOUT_S:.0f}s ({last}).\n{self.logs()}"

    def _read_credentials(self) -> None:
        path = self.data_dir / "credentials"
        assert path.exists(), f"{path} was not written on first start"
        cp = configparser.ConfigParser()
        cp.read(path)
        assert cp.has_section("default"), f"{path} has no [default] profile: {path.read_text()}"
        self.admin = Creds(
            cp["default"]["aws_access_key_id"].strip(),
            cp["default"]["aws_secret_access_key"].strip(),
            role="admin",
            account_id=self.account_id,
        )

    def logs(self, limit: int = 6000) -> str:
        parts = []
        for label, path in (("stderr", self.stderr_path), ("stdout", self.stdout_path)):
            if path and path.exists():
                text = path.read_text(errors="replace")
                parts.append(f"--- server {label} (last {limit} chars) ---\n{text[-limit:]}")
        return "\n".join(parts)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, then wait. Returns the exit code; raises if it did not exit in time."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"`opentrail serve` did not exit within {timeout:.0f}s of SIGTERM\n{self.logs()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def restart(self) -> "Server":
        self.stop()
        self._clients.clear()
        return self.start()

    # ---- raw HTTP

    def raw_request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        timeout: float = HTTP_TIMEOUT_S,
    ) -> HttpResult:
        """One plain HTTP request (no signature unless given in headers)."""
        if self.ca_bundle:
            context = ssl.create_default_context(cafile=str(self.ca_bundle))
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body if body else None, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            hdrs: dict[str, str] = {}
            for k, v in resp.getheaders():
                k = k.lower()
                hdrs[k] = f"{hdrs[k]}, {v}" if k in hdrs else v
            return HttpResult(resp.status, hdrs, data)
        finally:
            conn.close()

    def signed_request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        creds: Creds | None = None,
        service: str = "cloudtrail",
        region: str = REGION,
        query: dict[str, str] | None = None,
        when: dt.datetime | None = None,
        send_body: bytes | None = None,
        timeout: float = HTTP_TIMEOUT_S,
    ) -> HttpResult:
        """A request signed with botocore's SigV4 (as the SDKs sign it).

        `when` signs with another time; `send_body` sends different bytes than were signed.
        """
        creds = creds or self.admin
        url = self.endpoint + path
        if query:
            url += "?" + urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        req = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
        FixedTimeSigV4Auth(creds.botocore(), service, region, when).add_auth(req)
        prepared = req.prepare()
        split = urllib.parse.urlsplit(prepared.url)
        target = split.path + (("?" + split.query) if split.query else "")
        out_headers = {k: v for k, v in prepared.headers.items()}
        payload = prepared.body if send_body is None else send_body
        if isinstance(payload, str):
            payload = payload.encode()
        out_headers.pop("Content-Length", None)
        return self.raw_request(method, target, payload or b"", out_headers, timeout=timeout)

    def json_call(
        self,
        operation: str,
        params: dict | None = None,
        *,
        creds: Creds | None = None,
        region: str = REGION,
        when: dt.datetime | None = None,
        raw_body: bytes | None = None,
    ) -> HttpResult:
        """An awsJson1_1 call (`POST /` with X-Amz-Target), signed by hand, response unparsed."""
        body = raw_body if raw_body is not None else json.dumps(params or {}).encode()
        headers = {"X-Amz-Target": f"{TARGET_PREFIX}.{operation}", "Content-Type": JSON_11}
        return self.signed_request("POST", "/", body, headers, creds=creds, region=region, when=when)

    # ---- ingest API

    def ingest_raw(
        self,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        creds: Creds | None = None,
        region: str = REGION,
        bearer: str | None = None,
    ) -> HttpResult:
        """POST /v1/events: SigV4 (service `cloudtrail`), or `Authorization: Bearer` if given."""
        headers = {"Content-Type": "application/json", **(headers or {})}
        if bearer is not None:
            return self.raw_request("POST", "/v1/events", body, {**headers, "Authorization": f"Bearer {bearer}"})
        return self.signed_request("POST", "/v1/events", body, headers, creds=creds, region=region)

    def ingest(self, records: list[dict] | dict, *, creds: Creds | None = None, region: str = REGION) -> dict:
        """Sends records as {"Records":[…]} and returns the parsed response; asserts HTTP 200."""
        payload = {"Records": records} if isinstance(records, list) else records
        r = self.ingest_raw(json.dumps(payload).encode(), creds=creds, region=region)
        assert r.status == 200, f"ingest failed: {r}"
        body = r.json
        assert isinstance(body, dict), f"ingest response is not a JSON object: {r}"
        for key in ("accepted", "duplicates", "failed"):
            assert isinstance(body.get(key), list), f"ingest response lacks list {key!r}: {body}"
        return body

    def stored_event_ids(self, event_name: str) -> list[str]:
        """Every stored eventID with this eventName, through the native lookup's pages
        (duplicates kept, so callers can check each is there once)."""
        stored: list[str] = []
        cursor = None
        while True:
            path = f"/v1/events?eventName={event_name}&limit=1000" + (f"&cursor={cursor}" if cursor else "")
            page = self.signed_request("GET", path, timeout=120).json
            stored.extend(record["eventID"] for record in page["events"])
            cursor = page.get("nextCursor")
            if not cursor:
                return stored

    def ingest_ok(self, records: list[dict], **kw: Any) -> list[str]:
        """Ingests records that must all be accepted; returns their eventIds in order."""
        body = self.ingest(records, **kw)
        assert body["failed"] == [], f"records failed: {body['failed']}"
        assert body["duplicates"] == [], f"unexpected duplicates: {body['duplicates']}"
        assert [a["index"] for a in body["accepted"]] == list(range(len(records))), body
        return [a["eventId"] for a in body["accepted"]]

    # ---- clients

    def client(self, creds: Creds | None = None, region: str = REGION, service: str = "cloudtrail"):
        creds = creds or self.admin
        key = (service, creds.access_key_id, creds.secret_access_key, region, self.port)
        if key not in self._clients:
            session = boto3.session.Session(
                aws_access_key_id=creds.access_key_id,
                aws_secret_access_key=creds.secret_access_key,
                region_name=region,
            )
            self._clients[key] = session.client(
                service,
                endpoint_url=self.endpoint,
                verify=str(self.ca_bundle) if self.ca_bundle else None,
                config=Config(
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=5,
                    read_timeout=HTTP_TIMEOUT_S,
                ),
            )
        return self._clients[key]

    def data_client(self, creds: Creds | None = None, region: str = REGION):
        return self.client(creds, region, service="cloudtrail-data")

    def aws(
        self,
        *args: str,
        creds: Creds | None = None,
        region: str = REGION,
        timeout: float = 120,
        env: dict[str, str | None] | None = None,
    ) -> CliResult:
        """Runs the aws CLI (v1, from the venv) against the server; `--output json`.

        Credentials go in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; `env` adds variables
        (a None value removes one).
        """
        creds = creds or self.admin
        full_env = dict(os.environ)
        full_env.update(
            AWS_ACCESS_KEY_ID=creds.access_key_id,
            AWS_SECRET_ACCESS_KEY=creds.secret_access_key,
            AWS_DEFAULT_REGION=region,
            AWS_MAX_ATTEMPTS="1",
            AWS_PAGER="",
        )
        for k, v in (env or {}).items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = v
        env = full_env
        cmd = [aws_cli_path(), "--endpoint-url", self.endpoint, "--output", "json", *args]
        if self.ca_bundle:
            cmd[1:1] = ["--ca-bundle", str(self.ca_bundle)]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        parsed = None
        if p.stdout.strip():
            try:
                parsed = json.loads(p.stdout)
            except ValueError:
                parsed = None
        return CliResult(p.returncode, p.stdout, p.stderr, parsed)

    # ---- the opentrail CLI

    def opentrail(self, *args: str, creds: Creds | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        creds = creds or self.admin
        env = dict(os.environ)
        env.update(AWS_ACCESS_KEY_ID=creds.access_key_id, AWS_SECRET_ACCESS_KEY=creds.secret_access_key)
        return subprocess.run(
            [str(self.binary), *args], env=env, capture_output=True, text=True, timeout=timeout
        )

    def create_key(self, role: str, account: str | None = None) -> Creds:
        """`opentrail keys create --role ROLE [--account ID] --endpoint URL --output json`."""
        args = ["keys", "create", "--role", role]
        if account:
            args += ["--account", account]
        args += ["--endpoint", self.endpoint, "--output", "json"]
        p = self.opentrail(*args)
        assert p.returncode == 0, f"opentrail {' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
        try:
            out = json.loads(p.stdout)
        except ValueError as e:
            raise AssertionError(f"`opentrail keys create --output json` printed no JSON: {p.stdout!r}") from e
        for k in ("accessKeyId", "secretAccessKey", "role", "accountId"):
            assert k in out, f"`keys create` output lacks {k!r}: {out}"
        assert out["role"] == role, out
        assert out["accountId"] == (account or self.account_id), out
        return Creds(out["accessKeyId"], out["secretAccessKey"], out["role"], out["accountId"], out.get("token"))

    def revoke_key(self, access_key_id: str) -> None:
        """`opentrail keys revoke ACCESS_KEY_ID --endpoint URL`."""
        p = self.opentrail("keys", "revoke", access_key_id, "--endpoint", self.endpoint)
        assert p.returncode == 0, f"opentrail keys revoke failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"


# --------------------------------------------------------------------------- lookups


def lookup_all(client, **kwargs) -> list[dict]:
    """Every event of a LookupEvents query, following NextToken (boto3 paginator)."""
    events: list[dict] = []
    for page in client.get_paginator("lookup_events").paginate(**kwargs):
        events.extend(page["Events"])
    return events


def lookup_attr(client, key: str, value: str, start: dt.datetime | None = None, end: dt.datetime | None = None) -> list[dict]:
    kwargs: dict[str, Any] = {"LookupAttributes": [{"AttributeKey": key, "AttributeValue": value}]}
    if start is not None:
        kwargs["StartTime"] = start
    if end is not None:
        kwargs["EndTime"] = end
    return lookup_all(client, **kwargs)


def ids(events: list[dict]) -> list[str]:
    return [e["EventId"] for e in events]


def assert_newest_first(events: list[dict]) -> None:
    times = [e["EventTime"].timestamp() if isinstance(e["EventTime"], dt.datetime) else float(e["EventTime"]) for e in events]
    assert times == sorted(times, reverse=True), f"events are not newest first: {times}"


def delivered_event_ids(bucket_root: Path, event_name: str) -> "collections.Counter[str]":
    """How often each eventID with this eventName appears in the trail log files under a
    local bucket directory (digest files left out)."""
    found: collections.Counter[str] = collections.Counter()
    for path in bucket_root.rglob("*.json.gz"):
        if "CloudTrail-Digest" in path.parts:
            continue
        for record in json.loads(gzip.decompress(path.read_bytes()))["Records"]:
            if record.get("eventName") == event_name:
                found[record["eventID"]] += 1
    return found


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.1, what: str = "condition"):
    """Polls until predicate() is truthy (bounded; no timing is asserted)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def checksum(event_data: str) -> str:
    """PutAuditEvents' eventDataChecksum: base64(SHA-256(eventData))."""
    return base64.b64encode(hashlib.sha256(event_data.encode()).digest()).decode()


# --------------------------------------------------------------------------- S3 server


class MotoServer:
    """`moto_server` on a loopback port (in memory: a restart forgets every bucket)."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MotoServer":
        binary = Path(sys.executable).parent / "moto_server"
        if not binary.exists():
            raise RuntimeError(f"moto_server not found next to {sys.executable}: run scripts/python-env")
        self.proc = subprocess.Popen(
            [str(binary), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=1):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        raise RuntimeError(f"moto_server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

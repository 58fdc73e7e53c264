"""Detections, part two (issue 15): rules managed through the API, alert notification
targets, and `opentrail rules test --against s3://`.

- `POST /v1/rules` (Sigma YAML), `GET /v1/rules`, `POST /v1/rules/{id}/disable|enable`,
  `DELETE /v1/rules/{id}`: a rule added fires on events posted after it; a disabled one
  stops; a restart keeps both; roles, refusals and self-audit.
- `OPENTRAIL_ALERT_FILE` and `OPENTRAIL_ALERT_SYSLOG` (a UDP listener here) receive every
  alert exactly once across a kill -9 and a restart; `OPENTRAIL_ALERT_WEBHOOK_SECRET`
  signs each webhook request as documented (`X-OpenTrail-Signature-256: sha256=<hex
  HMAC-SHA256(secret, body)>`).
- `rules test --against s3://bucket/prefix` against moto_server ($OPENTRAIL_TEST_S3_ENDPOINT
  when set), as `opentrail import s3://` reads it.

"Did not fire" is never waited for: a canary rule that fires on a later event shows the
consumer has passed the earlier one (it matches in log order). Waits are bounded polls.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import http.server
import json
import os
import socket
import subprocess
import threading
import uuid
from pathlib import Path

import boto3
import pytest

import otlib

RULES_DIR = Path(__file__).resolve().parents[2] / "rules" / "cloudtrail"
TABLE_DELETED_RULE = "22cabe4d-de6d-499a-81c2-2600a930e78d"
S3_KEY_ID = "opentrailtest"
S3_SECRET = "opentrailtestsecret"
S3_REGION = "us-east-1"


def sigma_rule(rule_id: str, title: str, event_name: str) -> str:
    return f"""title: {title}
id: {rule_id}
status: test
level: high
logsource:
    product: aws
    service: cloudtrail
detection:
    selection:
        eventName: {event_name}
    condition: selection
"""


def add_rule(server: otlib.Server, text: str, creds=None) -> otlib.HttpResult:
    return server.signed_request(
        "POST", "/v1/rules", text.encode(), {"Content-Type": "application/yaml"}, creds=creds
    )


def list_rules(server: otlib.Server, creds=None) -> dict:
    answer = server.signed_request("GET", "/v1/rules", creds=creds)
    assert answer.status == 200, answer
    return answer.json


def rule_action(server: otlib.Server, rule_id: str, action: str, creds=None) -> otlib.HttpResult:
    if action == "delete":
        return server.signed_request("DELETE", f"/v1/rules/{rule_id}", creds=creds)
    return server.signed_request("POST", f"/v1/rules/{rule_id}/{action}", creds=creds)


def alerts_for(server: otlib.Server, event_id: str) -> list[dict]:
    answer = server.signed_request("GET", "/v1/alerts", query={"limit": "1000"})
    assert answer.status == 200, answer
    return [alert for alert in answer.json["alerts"] if alert["eventId"] == event_id]


def event(window, name: str) -> dict:
    return otlib.cloudtrail_event(name, event_time=window, event_source="s3.amazonaws.com")


def test_a_rule_added_through_the_api_fires_on_later_events_and_a_disabled_rule_stops(
    server_factory, window
):
    server = server_factory()
    policy_rule = str(uuid.uuid4())
    canary_rule = str(uuid.uuid4())
    added = add_rule(server, sigma_rule(policy_rule, "Bucket policy changed", "PutBucketPolicy"))
    assert added.status == 201, added
    assert added.json["rule"]["id"] == policy_rule
    assert added.json["rule"]["origin"] == "api" and added.json["rule"]["enabled"] is True
    assert add_rule(server, sigma_rule(canary_rule, "Canary", "PutBucketTagging")).status == 201

    [first] = server.ingest_ok([event(window, "PutBucketPolicy")])
    listed = otlib.wait_for(lambda: alerts_for(server, first), what="the added rule's alert")
    assert [alert["ruleId"] for alert in listed] == [policy_rule]

    disabled = rule_action(server, policy_rule, "disable")
    assert disabled.status == 200 and disabled.json["rule"]["enabled"] is False, disabled
    [quiet, canary] = server.ingest_ok([event(window, "PutBucketPolicy"), event(window, "PutBucketTagging")])
    otlib.wait_for(lambda: alerts_for(server, canary), what="the canary's alert")
    assert alerts_for(server, quiet) == [], "a disabled rule fired"

    assert rule_action(server, policy_rule, "enable").json["rule"]["enabled"] is True
    [again] = server.ingest_ok([event(window, "PutBucketPolicy")])
    otlib.wait_for(lambda: alerts_for(server, again), what="the re-enabled rule's alert")


def test_a_restart_keeps_api_rules_and_disabled_state_and_directory_rules_can_be_disabled(
    server_factory, window
):
    server = server_factory(extra_args=["--rules", str(RULES_DIR)])
    kept_rule = str(uuid.uuid4())
    assert add_rule(server, sigma_rule(kept_rule, "Bucket tagged", "PutBucketTagging")).status == 201
    assert rule_action(server, TABLE_DELETED_RULE, "disable").status == 200
    server.restart()

    rules = {rule["id"]: rule for rule in list_rules(server)["rules"]}
    assert rules[kept_rule]["origin"] == "api" and rules[kept_rule]["enabled"] is True
    assert rules[TABLE_DELETED_RULE]["origin"] == "directory"
    assert rules[TABLE_DELETED_RULE]["enabled"] is False
    assert rules[TABLE_DELETED_RULE]["file"].endswith("dynamodb_table_deleted.yml")
    assert len(rules) == 8

    deleted = otlib.delete_table_event(window, table=otlib.uniq("t"))
    [quiet, tagged] = server.ingest_ok([deleted, event(window, "PutBucketTagging")])
    listed = otlib.wait_for(lambda: alerts_for(server, tagged), what="the kept API rule's alert")
    assert [alert["ruleId"] for alert in listed] == [kept_rule]
    assert alerts_for(server, quiet) == [], "the disabled directory rule fired after a restart"

    removed = rule_action(server, kept_rule, "delete")
    assert removed.status == 200 and removed.json["rule"]["id"] == kept_rule, removed
    server.restart()
    assert kept_rule not in {rule["id"] for rule in list_rules(server)["rules"]}


def test_rule_calls_are_role_checked_refused_with_reasons_and_audited(server_factory):
    server = server_factory(extra_args=["--rules", str(RULES_DIR)])
    reader = server.create_key("read")
    other_admin = server.create_key("admin", account="444455556666")
    rule_id = str(uuid.uuid4())
    text = sigma_rule(rule_id, "Bucket tagged", "PutBucketTagging")

    assert len(list_rules(server, creds=reader)["rules"]) == 7
    for creds in (reader, other_admin):
        denied = add_rule(server, text, creds=creds)
        assert denied.status == 403 and denied.error_code == "AccessDeniedException", denied
        denied = rule_action(server, TABLE_DELETED_RULE, "disable", creds=creds)
        assert denied.status == 403, denied

    broken = text.replace("eventName:", "eventName|sounds_like:")
    refused = add_rule(server, broken)
    assert refused.status == 400 and refused.error_code == "InvalidRuleException", refused
    assert "line 10" in refused.message and "sounds_like" in refused.message, refused
    clash = add_rule(server, sigma_rule(TABLE_DELETED_RULE, "Clash", "DeleteTable"))
    assert clash.status == 400 and "already used" in clash.message, clash
    not_yaml = add_rule(server, "just: [unclosed")
    assert not_yaml.status == 400 and not_yaml.error_code == "InvalidRuleException", not_yaml

    missing = rule_action(server, str(uuid.uuid4()), "disable")
    assert missing.status == 404 and missing.error_code == "RuleNotFoundException", missing
    directory = rule_action(server, TABLE_DELETED_RULE, "delete")
    assert directory.status == 400 and directory.error_code == "OperationNotPermittedException", directory
    unsigned = server.raw_request("GET", "/v1/rules")
    assert unsigned.status in (401, 403), unsigned

    assert add_rule(server, text).status == 201
    client = server.client()
    for name in ("CreateRule", "DisableRule", "ListRules"):
        found = otlib.wait_for(
            lambda name=name: otlib.lookup_attr(client, "EventName", name), what=f"the {name} record"
        )
        assert found, name
    created = [
        json.loads(record["CloudTrailEvent"])
        for record in otlib.lookup_attr(client, "EventName", "CreateRule")
    ]
    assert any(
        (record.get("requestParameters") or {}).get("ruleId") == rule_id for record in created
    ), created
    assert any(record.get("errorCode") == "AccessDeniedException" for record in created), created


class UdpCollector:
    """A syslog receiver: every datagram, kept."""

    def __init__(self):
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.settimeout(0.2)
        self.messages: list[str] = []
        self.running = True
        self.thread = threading.Thread(target=self._receive, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"udp://127.0.0.1:{self.socket.getsockname()[1]}"

    def _receive(self):
        while self.running:
            try:
                data, _ = self.socket.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.messages.append(data.decode())

    def alert_ids(self) -> list[str]:
        ids = []
        for message in list(self.messages):
            assert message.startswith("<134>1 "), message
            ids.append(json.loads(message[message.index("] {") + 2 :])["alertId"])
        return ids

    def close(self):
        self.running = False
        self.thread.join(timeout=5)
        self.socket.close()


@pytest.fixture
def syslog():
    collector = UdpCollector()
    yield collector
    collector.close()


def file_alert_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [json.loads(line)["alertId"] for line in path.read_text().splitlines() if line]


def delivered_count(state_file: Path) -> int:
    return json.loads(state_file.read_text())["delivered"] if state_file.exists() else 0


def test_file_and_syslog_targets_get_each_alert_once_across_a_kill_and_restart(
    server_factory, syslog, window, tmp_path
):
    alert_file = tmp_path / "alerts" / "alerts.ndjson"
    server = server_factory(
        extra_args=["--rules", str(RULES_DIR)],
        extra_env={"OPENTRAIL_ALERT_FILE": str(alert_file), "OPENTRAIL_ALERT_SYSLOG": syslog.address},
    )
    [first] = server.ingest_ok([otlib.delete_table_event(window, table=otlib.uniq("t"))])
    [first_alert] = otlib.wait_for(lambda: alerts_for(server, first), what="the first alert")
    otlib.wait_for(lambda: first_alert["alertId"] in file_alert_ids(alert_file), what="the file line")
    otlib.wait_for(lambda: first_alert["alertId"] in syslog.alert_ids(), what="the syslog message")
    # A kill between a send and its recorded count sends again (at least once, as
    # documented); here the counts are recorded first.
    state_dir = server.data_dir / "alerts"
    otlib.wait_for(
        lambda: all(delivered_count(state_dir / f"delivered-{kind}.json") == 1 for kind in ("file", "syslog")),
        what="both deliveries recorded",
    )

    server.kill()
    # Except for the file, which is its own record: a crash after its line was written but
    # before the count was saved must not write the line twice.
    (state_dir / "delivered-file.json").write_text('{"delivered":0}')
    server.start()
    [second] = server.ingest_ok([otlib.delete_table_event(window, table=otlib.uniq("t"))])
    [second_alert] = otlib.wait_for(lambda: alerts_for(server, second), what="the second alert")
    otlib.wait_for(lambda: second_alert["alertId"] in file_alert_ids(alert_file), what="the second line")
    otlib.wait_for(lambda: second_alert["alertId"] in syslog.alert_ids(), what="the second message")

    expected = [first_alert["alertId"], second_alert["alertId"]]
    assert file_alert_ids(alert_file) == expected
    assert sorted(syslog.alert_ids()) == sorted(expected)
    line = json.loads(alert_file.read_text().splitlines()[0])
    for key in ("ruleId", "ruleTitle", "eventId", "eventName", "eventTime"):
        assert line[key], (key, line)


class SigningWebhook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append((dict(self.headers.items()), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_alert_webhook_is_signed_with_the_secret_as_documented(server_factory, window):
    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SigningWebhook)
    receiver.received = []
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    secret = "alert-webhook-secret"
    try:
        server = server_factory(
            extra_args=["--rules", str(RULES_DIR)],
            extra_env={
                "OPENTRAIL_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{receiver.server_address[1]}/hook",
                "OPENTRAIL_ALERT_WEBHOOK_SECRET": secret,
            },
        )
        [deleted] = server.ingest_ok([otlib.delete_table_event(window, table=otlib.uniq("t"))])
        [(headers, body)] = otlib.wait_for(
            lambda: [item for item in receiver.received if json.loads(item[1])["eventId"] == deleted],
            what="the signed delivery",
        )
    finally:
        receiver.shutdown()
    headers = {name.lower(): value for name, value in headers.items()}
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-opentrail-signature-256"], expected), headers
    assert headers["content-type"] == "application/json"
    alert = json.loads(body)
    for key in ("ruleId", "ruleTitle", "eventId", "eventName", "eventTime"):
        assert alert[key], (key, alert)
    assert alert["ruleId"] == TABLE_DELETED_RULE


def test_rules_test_runs_a_rule_over_log_files_under_an_s3_prefix(s3_endpoint, window, tmp_path):
    s3 = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=S3_KEY_ID,
        aws_secret_access_key=S3_SECRET,
        region_name=S3_REGION,
    )
    bucket = f"rules-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    prefix = f"AWSLogs/{otlib.ACCOUNT_ID}/CloudTrail/us-east-1/2026/11/30"
    deleted = otlib.delete_table_event(window, table="orders")
    described = otlib.cloudtrail_event("DescribeTable", event_time=window)
    log_key = f"{prefix}/{otlib.ACCOUNT_ID}_CloudTrail_us-east-1_20261130T1000Z_a.json.gz"
    s3.put_object(
        Bucket=bucket, Key=log_key, Body=gzip.compress(json.dumps({"Records": [deleted, described]}).encode())
    )
    # Passed over: a digest file, and a log file outside the prefix.
    s3.put_object(
        Bucket=bucket,
        Key=f"AWSLogs/{otlib.ACCOUNT_ID}/CloudTrail-Digest/us-east-1/2026/11/30/x_CloudTrail-Digest_a.json.gz",
        Body=gzip.compress(b'{"Records":[]}'),
    )
    other = otlib.delete_table_event(window, table="elsewhere")
    s3.put_object(Bucket=bucket, Key="elsewhere/log.json", Body=json.dumps({"Records": [other]}).encode())

    rule = RULES_DIR / "dynamodb_table_deleted.yml"
    env = dict(os.environ)
    for name in ("OPENTRAIL_CONFIG", "OPENTRAIL_S3_ENDPOINT", "OPENTRAIL_S3_ACCESS_KEY_ID"):
        env.pop(name, None)
    command = [
        str(otlib.opentrail_bin()),
        "rules",
        "test",
        str(rule),
        "--against",
        f"s3://{bucket}/AWSLogs/{otlib.ACCOUNT_ID}/CloudTrail",
        "--s3-endpoint",
        s3_endpoint,
        "--s3-access-key-id",
        S3_KEY_ID,
        "--s3-secret-access-key",
        S3_SECRET,
        "--output",
        "json",
    ]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    report = json.loads(run.stdout)
    assert report["files"] == 1, report
    assert report["records"] == 2, report
    assert [(match["eventId"], match["file"]) for match in report["matches"]] == [
        (deleted["eventID"], f"s3://{bucket}/{log_key}")
    ], report
    assert report["counts"][0]["matches"] == 1 and report["counts"][0]["ruleId"] == TABLE_DELETED_RULE

    table = subprocess.run(command[:-2], env=env, capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr
    assert deleted["eventID"] in table.stdout and "1 matches in 2 records from 1 files." in table.stdout

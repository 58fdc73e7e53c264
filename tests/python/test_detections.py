"""Detections: Sigma rules matched against every acknowledged event (issue 15).

The real `opentrail serve --rules DIR` with the starter rules of `rules/cloudtrail`, an
alert webhook served by a local HTTP server, `GET /v1/alerts`, and a kill -9 between the
match and its delivery. No timing is asserted: waits are bounded polls.
"""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

import otlib

RULES_DIR = Path(__file__).resolve().parents[2] / "rules" / "cloudtrail"


class WebhookHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.server.failing:
            self.send_response(500)
            self.end_headers()
            return
        self.server.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WebhookHandler)
    server.received = []
    server.failing = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def detections_server(server_factory, webhook) -> otlib.Server:
    url = f"http://127.0.0.1:{webhook.server_address[1]}/alerts"
    return server_factory(
        extra_args=["--rules", str(RULES_DIR)],
        extra_env={"OPENTRAIL_ALERT_WEBHOOK_URL": url},
    )


def alerts(server: otlib.Server, creds=None, limit: int | None = None) -> list[dict]:
    query = {"limit": str(limit)} if limit else None
    answer = server.signed_request("GET", "/v1/alerts", creds=creds, query=query)
    assert answer.status == 200, answer
    return answer.json["alerts"]


def alerts_for(server: otlib.Server, event_id: str, creds=None) -> list[dict]:
    return [alert for alert in alerts(server, creds, limit=1000) if alert["eventId"] == event_id]


def test_a_matching_event_becomes_one_alert_listed_and_delivered(server_factory, webhook, window):
    server = detections_server(server_factory, webhook)
    deleted = otlib.delete_table_event(window, table=otlib.uniq("orders"))
    harmless = otlib.cloudtrail_event("DescribeTable", event_time=window)
    [deleted_id, harmless_id] = server.ingest_ok([deleted, harmless])

    listed = otlib.wait_for(lambda: alerts_for(server, deleted_id), what="the DeleteTable alert")
    assert len(listed) == 1, listed
    alert = listed[0]
    assert alert["eventName"] == "DeleteTable"
    assert alert["ruleTitle"] and alert["ruleId"]
    assert alert["recipientAccountId"] == otlib.ACCOUNT_ID
    assert alerts_for(server, harmless_id) == []

    delivered = otlib.wait_for(
        lambda: [body for body in webhook.received if body["eventId"] == deleted_id],
        what="the webhook delivery",
    )
    assert len(delivered) == 1, webhook.received
    for key in ("ruleId", "ruleTitle", "eventId", "eventName", "eventTime"):
        assert delivered[0][key], (key, delivered[0])


def test_a_restart_neither_misses_nor_repeats_and_kill_9_before_delivery_delivers_once(
    server_factory, webhook, window
):
    server = detections_server(server_factory, webhook)
    webhook.failing = True
    first = otlib.delete_table_event(window, table=otlib.uniq("t"))
    [first_id] = server.ingest_ok([first])
    otlib.wait_for(lambda: alerts_for(server, first_id), what="the first alert")
    assert webhook.received == []

    server.kill()
    webhook.failing = False
    server.start()
    delivered = otlib.wait_for(
        lambda: [body for body in webhook.received if body["eventId"] == first_id],
        what="delivery after the restart",
    )
    second = otlib.delete_table_event(window, table=otlib.uniq("t"))
    [second_id] = server.ingest_ok([second])
    otlib.wait_for(
        lambda: [body for body in webhook.received if body["eventId"] == second_id],
        what="the second alert's delivery",
    )
    assert len(alerts_for(server, first_id)) == 1, "a restart repeated the alert"
    assert len([body for body in webhook.received if body["eventId"] == first_id]) == 1
    assert len(delivered) == 1


def test_alerts_are_listed_newest_first_within_the_callers_account(server_factory, webhook, window):
    server = detections_server(server_factory, webhook)
    ids = server.ingest_ok([otlib.delete_table_event(window, table=otlib.uniq("t")) for _ in range(3)])
    otlib.wait_for(lambda: all(alerts_for(server, event_id) for event_id in ids), what="three alerts")
    newest = alerts(server, limit=2)
    assert [alert["eventId"] for alert in newest] == [ids[2], ids[1]]

    other_reader = server.create_key("read", account="444455556666")
    assert alerts(server, creds=other_reader) == []
    answer = server.signed_request("GET", "/v1/alerts", query={"limit": "0"})
    assert answer.status == 400 and answer.error_code == "ValidationException", answer
    unsigned = server.raw_request("GET", "/v1/alerts")
    assert unsigned.status in (401, 403), unsigned


def test_a_server_without_rules_lists_no_alerts(server):
    assert alerts(server) == []


def test_alerts_are_acknowledged_from_the_cli_durably_and_only_by_an_admin(server_factory, webhook, window):
    server = detections_server(server_factory, webhook)
    ids = server.ingest_ok([otlib.delete_table_event(window, table=otlib.uniq("t")) for _ in range(2)])
    otlib.wait_for(lambda: all(alerts_for(server, event_id) for event_id in ids), what="two alerts")
    def cli() -> tuple[str, ...]:
        # A restart may move the server to another port.
        return ("alerts", "--endpoint", server.endpoint)

    def listed(*extra: str) -> list[dict]:
        run = server.opentrail(*cli(), "--output", "json", "--limit", "1000", *extra)
        assert run.returncode == 0, run.stderr
        return [alert for alert in json.loads(run.stdout)["alerts"] if alert["eventId"] in ids]

    first, second = sorted(listed(), key=lambda alert: ids.index(alert["eventId"]))
    assert not first["acknowledged"] and first["acknowledgedBy"] is None

    reader = server.create_key("read")
    refused = server.opentrail(*cli(), "ack", first["alertId"], creds=reader)
    assert refused.returncode != 0 and "AccessDenied" in refused.stderr, refused

    done = server.opentrail(*cli(), "acknowledge", first["alertId"])
    assert done.returncode == 0, done.stderr
    assert f"Acknowledged {first['alertId']}" in done.stdout and server.admin.access_key_id in done.stdout
    [acknowledged] = [alert for alert in listed() if alert["alertId"] == first["alertId"]]
    assert acknowledged["acknowledged"] and acknowledged["acknowledgedBy"] == server.admin.access_key_id
    assert [alert["alertId"] for alert in listed("--unacknowledged")] == [second["alertId"]]

    again = server.opentrail(*cli(), "--output", "json", "ack", first["alertId"])
    assert json.loads(again.stdout)["alert"]["acknowledgedAt"] == acknowledged["acknowledgedAt"]
    table = server.opentrail(*cli())
    [row] = [line for line in table.stdout.splitlines() if first["alertId"] in line]
    assert server.admin.access_key_id in row, table.stdout
    missing = server.opentrail(*cli(), "ack", "999999-no-such-rule")
    assert missing.returncode != 0 and "AlertNotFoundException" in missing.stderr, missing

    server.kill()
    server.start()
    assert [alert["alertId"] for alert in listed("--unacknowledged")] == [second["alertId"]]

"""Self-audit: management calls to OpenTrail are recorded as CloudTrail events
(eventSource cloudtrail.amazonaws.com); ingest calls are not, by default."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

import otlib
from otlib import lookup_attr, wait_for


def _audit_events(server, access_key_id: str, event_name: str = "LookupEvents") -> list[dict]:
    found = lookup_attr(server.client(), "AccessKeyId", access_key_id)
    return [e for e in found if e["EventName"] == event_name]


def test_lookup_events_is_recorded(server):
    key = server.create_key("read")
    marker = otlib.uniq("Marker")
    server.client(key).lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": marker}], MaxResults=5
    )
    events = wait_for(lambda: _audit_events(server, key.access_key_id), what="the self-audit event")
    # Our lookups (as admin) are recorded too, but under the admin's key: exactly one here.
    assert len(events) == 1, events
    ev = events[0]
    assert ev["EventSource"] == "cloudtrail.amazonaws.com"
    assert ev["AccessKeyId"] == key.access_key_id
    assert ev["ReadOnly"] == "true"
    rec = json.loads(ev["CloudTrailEvent"])
    assert rec["eventSource"] == "cloudtrail.amazonaws.com"
    assert rec["eventName"] == "LookupEvents"
    assert rec["userIdentity"]["accessKeyId"] == key.access_key_id
    assert rec["userIdentity"].get("accountId") == key.account_id
    assert rec["sourceIPAddress"] == "127.0.0.1"
    assert "Boto3" in rec["userAgent"] or "botocore" in rec["userAgent"], rec["userAgent"]
    assert rec["recipientAccountId"] == key.account_id
    assert rec["awsRegion"] == "us-east-1"
    assert rec["eventCategory"] == "Management"
    assert "errorCode" not in rec
    # The request's parameters are recorded (CloudTrail writes them in lowerCamelCase).
    assert marker in json.dumps(rec["requestParameters"]), rec["requestParameters"]
    # Findable by EventName as well.
    by_name = lookup_attr(server.client(), "EventName", "LookupEvents")
    assert ev["EventId"] in [e["EventId"] for e in by_name]


def test_failed_call_is_recorded_with_its_error_code(server):
    key = server.create_key("read")
    with pytest.raises(ClientError):
        server.client(key).lookup_events(MaxResults=51)
    events = wait_for(lambda: _audit_events(server, key.access_key_id), what="the self-audit event")
    rec = json.loads(events[0]["CloudTrailEvent"])
    assert rec["errorCode"] == "InvalidMaxResultsException"


def test_ingest_is_not_recorded_by_default(server):
    ingest = server.create_key("ingest")
    server.ingest_ok([otlib.cloudtrail_event(otlib.uniq("Quiet"), event_time=otlib.utcnow())], creds=ingest)
    # Barrier: a later audited call has been recorded, so an audit of the ingest would be too.
    reader = server.create_key("read")
    server.client(reader).lookup_events(MaxResults=1)
    wait_for(lambda: _audit_events(server, reader.access_key_id), what="the barrier's self-audit event")
    assert lookup_attr(server.client(), "AccessKeyId", ingest.access_key_id) == []


def test_key_management_is_recorded_without_secrets(server):
    """Creating, listing and revoking keys are recorded under the admin's key, and a
    refused attempt (a read key listing keys) is recorded with its error."""
    created = server.create_key("read")
    server.revoke_key(created.access_key_id)
    reader = server.create_key("read")
    refused = server.opentrail("keys", "list", "--endpoint", server.endpoint, creds=reader)
    assert refused.returncode != 0, refused.stdout

    def admin_events(name):
        return _audit_events(server, server.admin.access_key_id, name)

    creations = wait_for(
        lambda: [
            e for e in admin_events("CreateAccessKey")
            if created.access_key_id in e["CloudTrailEvent"]
        ],
        what="the CreateAccessKey record",
    )
    record = json.loads(creations[0]["CloudTrailEvent"])
    assert record["eventSource"] == "cloudtrail.amazonaws.com"
    assert record["readOnly"] is False
    assert record["requestParameters"]["request"]["role"] == "read"
    assert created.secret_access_key not in creations[0]["CloudTrailEvent"]

    revocations = wait_for(
        lambda: [
            e for e in admin_events("DeleteAccessKey")
            if created.access_key_id in e["CloudTrailEvent"]
        ],
        what="the DeleteAccessKey record",
    )
    assert json.loads(revocations[0]["CloudTrailEvent"])["requestParameters"] == {
        "accessKeyId": created.access_key_id
    }

    denied = wait_for(
        lambda: _audit_events(server, reader.access_key_id, "ListAccessKeys"),
        what="the refused ListAccessKeys record",
    )
    assert json.loads(denied[0]["CloudTrailEvent"])["errorCode"] == "AccessDeniedException"

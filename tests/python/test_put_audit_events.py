"""Channels and PutAuditEvents (cloudtrail-data, restJson1; spec §1.4, §2.2) with boto3.

CreateChannel requires Name, Source and Destinations (botocore model). We send
Source="Custom" and one destination {"Type": "EVENT_DATA_STORE", "Location": <an event data
store ARN>}; OpenTrail accepts any Location string for now.
"""

from __future__ import annotations

import json
import re

import pytest
from botocore.exceptions import ClientError

import otlib
from otlib import ACCOUNT_ID, checksum, ids, lookup_attr

EDS_ARN = f"arn:aws:cloudtrail:us-east-1:{ACCOUNT_ID}:eventdatastore/EXAMPLE-f852-4e8f-8bd1-bcf6cEXAMPLE"
CHANNEL_ARN_RE = re.compile(rf"^arn:aws:cloudtrail:us-east-1:{ACCOUNT_ID}:channel/[A-Za-z0-9._\-]+$")


def _destinations():
    return [{"Type": "EVENT_DATA_STORE", "Location": EDS_ARN}]


@pytest.fixture(scope="module")
def channel(server):
    name = otlib.uniq("app-")
    resp = server.client().create_channel(Name=name, Source="Custom", Destinations=_destinations())
    assert CHANNEL_ARN_RE.match(resp["ChannelArn"]), resp
    assert resp["Name"] == name
    assert resp["Source"] == "Custom"
    assert resp["Destinations"] == _destinations()
    return {"arn": resp["ChannelArn"], "name": name}


def event_data(event_name: str, **overrides) -> str:
    """eventData per the CloudTrail Lake integration schema (spec §2.2)."""
    data = {
        "version": "1.0",
        "userIdentity": {"type": "CustomUser", "principalId": "user-42", "details": {"team": "payments"}},
        "userAgent": "payments-api/2.3",
        "eventSource": "payments.example.com",
        "eventName": event_name,
        "eventTime": otlib.iso(otlib.utcnow()),
        "UID": otlib.uniq("uid-"),
        "requestParameters": {"invoiceId": "inv-123"},
        "responseElements": {"status": "refunded"},
        "sourceIPAddress": "198.51.100.9",
        "recipientAccountId": ACCOUNT_ID,
        "additionalEventData": {"amountCents": 1999},
    }
    data.update(overrides)
    data = {k: v for k, v in data.items() if v is not None}
    return json.dumps(data)


def audit_event(id_: str, data: str, good_checksum: bool = True) -> dict:
    return {
        "id": id_,
        "eventData": data,
        "eventDataChecksum": checksum(data) if good_checksum else checksum(data + "tampered"),
    }


def test_put_audit_events_and_lookup(server, channel):
    name = otlib.uniq("RefundIssued")
    data = event_data(name)
    resp = server.data_client().put_audit_events(channelArn=channel["arn"], auditEvents=[audit_event("1", data)])
    assert resp["failed"] == []
    [ok] = resp["successful"]
    assert ok["id"] == "1"
    event_id = ok["eventID"]
    assert event_id

    [ev] = lookup_attr(server.client(), "EventName", name)
    assert ev["EventId"] == event_id
    record = json.loads(ev["CloudTrailEvent"])
    assert record["eventCategory"] == "ActivityAuditLog"
    assert record["eventType"] == "ActivityLog"
    assert record["eventID"] == event_id
    assert record["recipientAccountId"] == ACCOUNT_ID
    assert record["awsRegion"] == "us-east-1"
    assert record["metadata"]["channelARN"] == channel["arn"]
    assert record["metadata"].get("ingestionTime")
    # CloudTrail keeps the producer's document under eventData.
    assert record["eventData"] == json.loads(data)
    # Findable by its id too.
    assert ids(lookup_attr(server.client(), "EventId", event_id)) == [event_id]


def test_several_events_with_one_bad_checksum(server, channel):
    names = [otlib.uniq("Batch") for _ in range(3)]
    events = [
        audit_event("a-1", event_data(names[0])),
        audit_event("a-2", event_data(names[1]), good_checksum=False),
        audit_event("a-3", event_data(names[2])),
    ]
    resp = server.data_client().put_audit_events(channelArn=channel["arn"], auditEvents=events)
    assert sorted(s["id"] for s in resp["successful"]) == ["a-1", "a-3"]
    [bad] = resp["failed"]
    assert bad["id"] == "a-2"
    assert bad["errorCode"] == "InvalidChecksum"
    assert bad["errorMessage"]
    assert len(lookup_attr(server.client(), "EventName", names[0])) == 1
    assert lookup_attr(server.client(), "EventName", names[1]) == []
    assert len(lookup_attr(server.client(), "EventName", names[2])) == 1


def test_checksum_is_optional(server, channel):
    name = otlib.uniq("NoChecksum")
    resp = server.data_client().put_audit_events(
        channelArn=channel["arn"], auditEvents=[{"id": "n1", "eventData": event_data(name)}]
    )
    assert [s["id"] for s in resp["successful"]] == ["n1"]
    assert resp["failed"] == []


def test_event_data_that_is_not_json(server, channel):
    data = "this is not json"
    resp = server.data_client().put_audit_events(channelArn=channel["arn"], auditEvents=[audit_event("x", data)])
    assert resp["successful"] == []
    [bad] = resp["failed"]
    assert bad["id"] == "x" and bad["errorCode"] == "InvalidData", bad


def test_event_data_missing_required_field(server, channel):
    data = event_data("Whatever", eventName=None)
    resp = server.data_client().put_audit_events(channelArn=channel["arn"], auditEvents=[audit_event("m", data)])
    assert resp["successful"] == []
    [bad] = resp["failed"]
    assert bad["id"] == "m" and bad["errorCode"] == "FieldNotFound", bad


def test_recipient_must_be_the_channel_owner(server, channel):
    data = event_data(otlib.uniq("Elsewhere"), recipientAccountId=otlib.OTHER_ACCOUNT_ID)
    resp = server.data_client().put_audit_events(channelArn=channel["arn"], auditEvents=[audit_event("r", data)])
    assert resp["successful"] == []
    [bad] = resp["failed"]
    assert bad["id"] == "r" and bad["errorCode"] == "InvalidRecipient", bad


def test_duplicated_audit_event_id(server, channel):
    events = [audit_event("dup", event_data(otlib.uniq("D"))), audit_event("dup", event_data(otlib.uniq("D")))]
    with pytest.raises(ClientError) as e:
        server.data_client().put_audit_events(channelArn=channel["arn"], auditEvents=events)
    assert e.value.response["Error"]["Code"] == "DuplicatedAuditEventId"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_unknown_channel(server):
    arn = f"arn:aws:cloudtrail:us-east-1:{ACCOUNT_ID}:channel/00000000-0000-0000-0000-000000000000"
    with pytest.raises(ClientError) as e:
        server.data_client().put_audit_events(
            channelArn=arn, auditEvents=[audit_event("1", event_data("X"))]
        )
    assert e.value.response["Error"]["Code"] == "ChannelNotFound"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_channel_id_suffix_is_accepted(server, channel):
    """channelArn may be the ARN or the id after `channel/` (spec §2.2)."""
    name = otlib.uniq("BySuffix")
    suffix = channel["arn"].split("channel/", 1)[1]
    resp = server.data_client().put_audit_events(channelArn=suffix, auditEvents=[audit_event("s", event_data(name))])
    assert [s["id"] for s in resp["successful"]] == ["s"]
    [ev] = lookup_attr(server.client(), "EventName", name)
    assert json.loads(ev["CloudTrailEvent"])["metadata"]["channelARN"] == channel["arn"]


def test_get_and_list_channels(server, channel):
    client = server.client()
    got = client.get_channel(Channel=channel["arn"])
    assert got["ChannelArn"] == channel["arn"]
    assert got["Name"] == channel["name"]
    assert got["Source"] == "Custom"
    assert got["Destinations"] == _destinations()
    # The id after `channel/` works as well as the ARN ("the ARN or UUID of a channel").
    suffix = channel["arn"].split("channel/", 1)[1]
    assert client.get_channel(Channel=suffix)["ChannelArn"] == channel["arn"]

    listed = []
    for page in _list_pages(client):
        listed += page["Channels"]
    assert {"ChannelArn": channel["arn"], "Name": channel["name"]} in listed


def _list_pages(client):
    kwargs = {}
    while True:
        page = client.list_channels(**kwargs)
        yield page
        if not page.get("NextToken"):
            return
        kwargs["NextToken"] = page["NextToken"]


def test_delete_channel(server):
    client = server.client()
    name = otlib.uniq("gone-")
    arn = client.create_channel(Name=name, Source="Custom", Destinations=_destinations())["ChannelArn"]
    client.delete_channel(Channel=arn)
    with pytest.raises(ClientError) as e:
        client.get_channel(Channel=arn)
    assert e.value.response["Error"]["Code"] == "ChannelNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert arn not in [c["ChannelArn"] for p in _list_pages(client) for c in p["Channels"]]
    with pytest.raises(ClientError) as e:
        server.data_client().put_audit_events(channelArn=arn, auditEvents=[audit_event("1", event_data("X"))])
    assert e.value.response["Error"]["Code"] == "ChannelNotFound"


def test_get_unknown_channel(server):
    with pytest.raises(ClientError) as e:
        server.client().get_channel(
            Channel=f"arn:aws:cloudtrail:us-east-1:{ACCOUNT_ID}:channel/11111111-2222-3333-4444-555555555555"
        )
    assert e.value.response["Error"]["Code"] == "ChannelNotFoundException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_aws_cli_put_audit_events(server, channel):
    name = otlib.uniq("CliAudit")
    data = event_data(name)
    res = server.aws(
        "cloudtrail-data", "put-audit-events",
        "--channel-arn", channel["arn"],
        "--audit-events", json.dumps([audit_event("c1", data)]),
    )
    assert res.code == 0, str(res)
    assert [s["id"] for s in res.json["successful"]] == ["c1"]
    assert res.json["failed"] == []
    assert len(lookup_attr(server.client(), "EventName", name)) == 1

"""LookupEvents with boto3 and the aws CLI (spec §3, §1.3): every attribute, the Event shape
on the wire, ordering, time ranges, read-your-writes."""

from __future__ import annotations

import datetime as dt
import json

import pytest

import otlib
from otlib import ACCOUNT_ID, ids, lookup_attr, assert_newest_first

S = dt.timedelta(seconds=1)


@pytest.fixture(scope="module")
def dataset(server):
    """Five events in a private past hour, covering every lookup attribute.

    e1  DeleteTable     alice  dynamodb  readOnly=false  table/orders-*   (the classic)
    e2  DescribeTable   alice  dynamodb  readOnly=true   table/orders-*
    e3  GetObject       bob    s3        readOnly=true   bucket + object
    e4  RunInstances    carol  ec2       readOnly=false  no resources
    e5  DeleteTable     bob    dynamodb  readOnly=false  table/archive-*
    """
    base = otlib.new_window()
    u = otlib.uniq("")
    k_alice, k_bob, k_carol = (otlib.fake_access_key() for _ in range(3))
    orders, archive = f"orders-{u}", f"archive-{u}"
    bucket = f"bucket-{u}"
    recs = {}
    recs["e1"] = otlib.delete_table_event(base + 10 * S, table=orders, access_key_id=k_alice)
    recs["e2"] = otlib.cloudtrail_event(
        "DescribeTable",
        event_time=base + 20 * S,
        access_key_id=k_alice,
        read_only=True,
        request_parameters={"tableName": orders},
        resources=[{"ARN": otlib.table_arn(orders), "accountId": ACCOUNT_ID, "type": "AWS::DynamoDB::Table"}],
    )
    recs["e3"] = otlib.cloudtrail_event(
        "GetObject",
        event_time=base + 30 * S,
        user="bob",
        access_key_id=k_bob,
        event_source="s3.amazonaws.com",
        read_only=True,
        source_ip="198.51.100.20",
        request_parameters={"bucketName": bucket, "key": "reports/q3.csv"},
        resources=[
            {"ARN": f"arn:aws:s3:::{bucket}/reports/q3.csv", "type": "AWS::S3::Object"},
            {"ARN": f"arn:aws:s3:::{bucket}", "accountId": ACCOUNT_ID, "type": "AWS::S3::Bucket"},
        ],
        eventCategory="Data",
        managementEvent=False,
    )
    recs["e4"] = otlib.cloudtrail_event(
        "RunInstances",
        event_time=base + 40 * S,
        user="carol",
        access_key_id=k_carol,
        event_source="ec2.amazonaws.com",
        read_only=False,
        request_parameters={"instanceType": "t3.micro"},
    )
    recs["e5"] = otlib.delete_table_event(base + 50 * S, table=archive, user="bob", access_key_id=k_bob)
    names = list(recs)
    event_ids = server.ingest_ok([recs[n] for n in names])
    # The server keeps the producer's eventID.
    for n, eid in zip(names, event_ids):
        assert eid == recs[n]["eventID"]
    return {
        "base": base,
        "start": base,
        "end": base + dt.timedelta(minutes=59),
        "recs": recs,
        "id": {n: recs[n]["eventID"] for n in names},
        "keys": {"alice": k_alice, "bob": k_bob, "carol": k_carol},
        "orders": orders,
        "archive": archive,
        "bucket": bucket,
    }


def _expect(dataset, *names):
    return [dataset["id"][n] for n in names]


ATTRIBUTE_CASES = [
    # (AttributeKey, value (callable on dataset), expected events newest first)
    ("EventId", lambda d: d["id"]["e3"], ("e3",)),
    ("EventName", lambda d: "DeleteTable", ("e5", "e1")),
    ("EventName", lambda d: "GetObject", ("e3",)),
    ("ReadOnly", lambda d: "true", ("e3", "e2")),
    ("ReadOnly", lambda d: "false", ("e5", "e4", "e1")),
    ("Username", lambda d: "alice", ("e2", "e1")),
    ("Username", lambda d: "bob", ("e5", "e3")),
    ("ResourceType", lambda d: "AWS::DynamoDB::Table", ("e5", "e2", "e1")),
    ("ResourceType", lambda d: "AWS::S3::Object", ("e3",)),
    # ResourceName is the resource's ARN, as recorded in resources[].ARN.
    ("ResourceName", lambda d: otlib.table_arn(d["orders"]), ("e2", "e1")),
    ("ResourceName", lambda d: f"arn:aws:s3:::{d['bucket']}", ("e3",)),
    ("EventSource", lambda d: "dynamodb.amazonaws.com", ("e5", "e2", "e1")),
    ("EventSource", lambda d: "ec2.amazonaws.com", ("e4",)),
    ("AccessKeyId", lambda d: d["keys"]["bob"], ("e5", "e3")),
    ("AccessKeyId", lambda d: d["keys"]["carol"], ("e4",)),
]


@pytest.mark.parametrize(
    "key,value,expected", ATTRIBUTE_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(ATTRIBUTE_CASES)]
)
def test_every_attribute_finds_exactly_the_expected_events(server, dataset, key, value, expected):
    client = server.client()
    found = lookup_attr(client, key, value(dataset), dataset["start"], dataset["end"])
    assert ids(found) == _expect(dataset, *expected), f"{key}={value(dataset)}"


@pytest.mark.parametrize("key", ["EventId", "AccessKeyId"])
def test_unique_attributes_need_no_time_range(server, dataset, key):
    value = dataset["id"]["e1"] if key == "EventId" else dataset["keys"]["alice"]
    expected = ("e1",) if key == "EventId" else ("e2", "e1")
    found = lookup_attr(server.client(), key, value)
    assert ids(found) == _expect(dataset, *expected)


def test_event_shape_boto3(server, dataset):
    rec = dataset["recs"]["e1"]
    [ev] = lookup_attr(server.client(), "EventId", rec["eventID"])
    assert ev["EventId"] == rec["eventID"]
    assert ev["EventName"] == "DeleteTable"
    assert ev["ReadOnly"] == "false"
    assert ev["AccessKeyId"] == dataset["keys"]["alice"]
    assert isinstance(ev["EventTime"], dt.datetime)
    assert ev["EventTime"].timestamp() == (dataset["base"] + 10 * S).timestamp()
    assert ev["EventSource"] == "dynamodb.amazonaws.com"
    assert ev["Username"] == "alice"
    assert ev["Resources"] == [{"ResourceType": "AWS::DynamoDB::Table", "ResourceName": otlib.table_arn(dataset["orders"])}]
    assert isinstance(ev["CloudTrailEvent"], str)
    otlib.assert_record_preserved(json.loads(ev["CloudTrailEvent"]), rec)

    [ro] = lookup_attr(server.client(), "EventId", dataset["id"]["e2"])
    assert ro["ReadOnly"] == "true"


def test_event_shape_on_the_wire(server, dataset):
    """EventTime is an epoch-seconds JSON number, ReadOnly and CloudTrailEvent are strings,
    an event without resources has `Resources: []`, and a request id header is sent."""
    r = server.json_call(
        "LookupEvents",
        {"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "RunInstances"}],
         "StartTime": int(dataset["start"].timestamp()), "EndTime": int(dataset["end"].timestamp())},
    )
    assert r.status == 200, str(r)
    assert r.header("x-amzn-RequestId"), f"no x-amzn-RequestId header: {r.headers}"
    assert "json" in (r.header("content-type") or ""), r.headers
    body = r.json
    [ev] = body["Events"]
    assert ev["EventId"] == dataset["id"]["e4"]
    assert isinstance(ev["EventTime"], (int, float)) and not isinstance(ev["EventTime"], bool), ev
    assert ev["EventTime"] == (dataset["base"] + 40 * S).timestamp()
    assert ev["ReadOnly"] == "false"
    assert isinstance(ev["CloudTrailEvent"], str)
    assert ev["Resources"] == []
    assert "NextToken" not in body or body["NextToken"] in (None, "")


def test_data_events_are_included(server, dataset):
    """CloudTrail's event history leaves data events out; OpenTrail includes them."""
    [ev] = lookup_attr(server.client(), "EventId", dataset["id"]["e3"])
    assert json.loads(ev["CloudTrailEvent"])["eventCategory"] == "Data"
    types = sorted(r["ResourceType"] for r in ev["Resources"])
    assert types == ["AWS::S3::Bucket", "AWS::S3::Object"]


def test_time_range_boto3_datetimes_and_floats(server, dataset):
    """StartTime and EndTime are both inclusive; boto3 sends floats for sub-second times."""
    base = dataset["base"]
    client = server.client()
    # Whole seconds, exactly on e2 and e4: both included.
    got = otlib.lookup_all(client, StartTime=base + 20 * S, EndTime=base + 40 * S)
    assert ids(got) == _expect(dataset, "e4", "e3", "e2")
    # Fractions (sent as floats): 19.5 .. 40.25 still holds e2..e4; 20.5 .. 39.5 drops e2 and e4.
    half = dt.timedelta(milliseconds=500)
    got = otlib.lookup_all(client, StartTime=base + 19 * S + half, EndTime=base + 40 * S + half / 2)
    assert ids(got) == _expect(dataset, "e4", "e3", "e2")
    got = otlib.lookup_all(client, StartTime=base + 20 * S + half, EndTime=base + 39 * S + half)
    assert ids(got) == _expect(dataset, "e3")
    # Only a start, only an end.
    got = lookup_attr(client, "EventSource", "dynamodb.amazonaws.com", start=base + 11 * S, end=dataset["end"])
    assert ids(got) == _expect(dataset, "e5", "e2")
    got = lookup_attr(client, "AccessKeyId", dataset["keys"]["bob"], end=base + 49 * S)
    assert ids(got) == _expect(dataset, "e3")


def test_time_range_epoch_numbers_raw(server, dataset):
    """A hand-made request with integer and float epoch seconds."""
    base = dataset["base"].timestamp()
    for start, end in ((base + 20, base + 40), (base + 19.5, base + 40.25)):
        r = server.json_call("LookupEvents", {"StartTime": start, "EndTime": end})
        assert r.status == 200, str(r)
        assert [e["EventId"] for e in r.json["Events"]] == _expect(dataset, "e4", "e3", "e2")


def test_results_are_newest_first(server, dataset):
    got = otlib.lookup_all(server.client(), StartTime=dataset["start"], EndTime=dataset["end"])
    assert ids(got) == _expect(dataset, "e5", "e4", "e3", "e2", "e1")
    assert_newest_first(got)


def test_aws_cli_lookup_events_by_event_name(server, dataset):
    """The README's tour: who deleted the table?"""
    res = server.aws(
        "cloudtrail", "lookup-events",
        "--lookup-attributes", "AttributeKey=EventName,AttributeValue=DeleteTable",
        "--start-time", otlib.iso(dataset["start"]),
        "--end-time", otlib.iso(dataset["end"]),
    )
    assert res.code == 0, str(res)
    events = res.json["Events"]
    assert [e["EventId"] for e in events] == _expect(dataset, "e5", "e1")
    classic = events[1]
    assert classic["Username"] == "alice"
    assert classic["ReadOnly"] == "false"
    # CLI v1 prints timestamps as they came over the wire: a number.
    assert isinstance(classic["EventTime"], (int, float))
    assert classic["EventTime"] == (dataset["base"] + 10 * S).timestamp()
    record = json.loads(classic["CloudTrailEvent"])
    assert record["sourceIPAddress"] == "203.0.113.7"
    assert record["userIdentity"]["userName"] == "alice"
    assert record["requestParameters"] == {"tableName": dataset["orders"]}


def test_aws_cli_time_range(server, dataset):
    """The CLI sends whole-second integers; naive times are UTC; offsets are honoured."""
    base = dataset["base"]
    res = server.aws(
        "cloudtrail", "lookup-events",
        "--start-time", otlib.iso(base + 20 * S),
        "--end-time", otlib.iso(base + 40 * S),
    )
    assert res.code == 0, str(res)
    assert [e["EventId"] for e in res.json["Events"]] == _expect(dataset, "e4", "e3", "e2")

    # Naive date-time (taken as UTC) and epoch seconds.
    naive = (base + 30 * S).strftime("%Y-%m-%dT%H:%M:%S")
    res = server.aws(
        "cloudtrail", "lookup-events",
        "--lookup-attributes", "AttributeKey=ReadOnly,AttributeValue=true",
        "--start-time", naive,
        "--end-time", str(int((base + 59 * dt.timedelta(minutes=1)).timestamp())),
    )
    assert res.code == 0, str(res)
    assert [e["EventId"] for e in res.json["Events"]] == _expect(dataset, "e3")

    # An offset: 02:00 ahead of UTC.
    plus2 = dt.timezone(dt.timedelta(hours=2))
    res = server.aws(
        "cloudtrail", "lookup-events",
        "--lookup-attributes", f"AttributeKey=AccessKeyId,AttributeValue={dataset['keys']['bob']}",
        "--start-time", (base + 31 * S).astimezone(plus2).isoformat(),
    )
    assert res.code == 0, str(res)
    assert [e["EventId"] for e in res.json["Events"]] == _expect(dataset, "e5")


def test_read_your_writes(server):
    """An event is visible to LookupEvents as soon as the ingest response arrives."""
    name = otlib.uniq("ReadYourWrites")
    rec = otlib.cloudtrail_event(name, event_time=otlib.utcnow(), access_key_id=otlib.fake_access_key())
    [eid] = server.ingest_ok([rec])
    client = server.client()
    assert ids(lookup_attr(client, "EventId", eid)) == [eid]
    assert ids(lookup_attr(client, "EventName", name)) == [eid]
    # And with no time range at all: the default end is "now" and includes it.
    r = server.json_call("LookupEvents", {"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": name}]})
    assert r.status == 200, str(r)
    assert [e["EventId"] for e in r.json["Events"]] == [eid]


def test_no_rate_limit_by_default(server, dataset):
    """CloudTrail allows 2 LookupEvents per second; OpenTrail has no limit by default."""
    client = server.client()
    for _ in range(25):
        resp = client.lookup_events(
            LookupAttributes=[{"AttributeKey": "EventId", "AttributeValue": dataset["id"]["e1"]}]
        )
        assert ids(resp["Events"]) == [dataset["id"]["e1"]]


def test_empty_result(server):
    resp = server.client().lookup_events(
        LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": otlib.uniq("NoSuchEvent")}]
    )
    assert resp["Events"] == []
    assert "NextToken" not in resp
    assert resp["ResponseMetadata"]["RequestId"]


def test_region_scoping(server):
    """LookupEvents is scoped to the signing region."""
    name = otlib.uniq("RegionScoped")
    t = otlib.new_window()
    recs = [
        otlib.cloudtrail_event(name, event_time=t + S, region="eu-west-1"),
        otlib.cloudtrail_event(name, event_time=t + 2 * S, region="us-east-1"),
    ]
    eu, us = server.ingest_ok(recs)
    assert ids(lookup_attr(server.client(region="us-east-1"), "EventName", name)) == [us]
    assert ids(lookup_attr(server.client(region="eu-west-1"), "EventName", name)) == [eu]

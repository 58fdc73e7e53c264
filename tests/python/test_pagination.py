"""LookupEvents pagination: the boto3 paginator, the CLI's auto-pagination and --max-items,
and NextToken rules (reusable, tied to its parameters, stable while ingest goes on)."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError

import otlib
from otlib import ids, assert_newest_first

N = 120


@pytest.fixture(scope="module")
def many(server):
    """120 events with one unique EventName; three share each second (ties across pages)."""
    name = otlib.uniq("Paginate")
    base = otlib.new_window()
    recs = [
        otlib.cloudtrail_event(name, event_time=base + dt.timedelta(seconds=i // 3), read_only=True)
        for i in range(N)
    ]
    event_ids = server.ingest_ok(recs)
    return {"name": name, "ids": event_ids, "base": base}


def _attrs(name):
    return [{"AttributeKey": "EventName", "AttributeValue": name}]


def test_boto3_paginator_returns_all_exactly_once(server, many):
    pages = list(
        server.client()
        .get_paginator("lookup_events")
        .paginate(LookupAttributes=_attrs(many["name"]), PaginationConfig={"PageSize": 50})
    )
    sizes = [len(p["Events"]) for p in pages]
    assert sizes[:2] == [50, 50], sizes
    assert sum(sizes) == N, sizes
    events = [e for p in pages for e in p["Events"]]
    assert len(set(ids(events))) == N, "duplicates across pages"
    assert set(ids(events)) == set(many["ids"])
    assert_newest_first(events)
    assert "NextToken" not in pages[-1]


def test_default_page_size_is_50(server, many):
    resp = server.client().lookup_events(LookupAttributes=_attrs(many["name"]))
    assert len(resp["Events"]) == 50
    assert resp.get("NextToken")


@pytest.mark.parametrize("page_size", [1, 7, 50])
def test_page_sizes(server, many, page_size):
    pages = list(
        server.client()
        .get_paginator("lookup_events")
        .paginate(LookupAttributes=_attrs(many["name"]), PaginationConfig={"PageSize": page_size})
    )
    events = [e for p in pages for e in p["Events"]]
    assert all(len(p["Events"]) <= page_size for p in pages)
    assert sorted(ids(events)) == sorted(many["ids"])
    assert_newest_first(events)


def test_aws_cli_auto_paginates(server, many):
    res = server.aws(
        "cloudtrail", "lookup-events",
        "--lookup-attributes", f"AttributeKey=EventName,AttributeValue={many['name']}",
    )
    assert res.code == 0, str(res)
    events = res.json["Events"]
    assert len(events) == N
    assert sorted(e["EventId"] for e in events) == sorted(many["ids"])
    assert_newest_first(events)
    assert "NextToken" not in res.json


def test_aws_cli_max_items_and_starting_token(server, many):
    seen: list[str] = []
    token = None
    calls = 0
    while True:
        args = [
            "cloudtrail", "lookup-events",
            "--lookup-attributes", f"AttributeKey=EventName,AttributeValue={many['name']}",
            "--max-items", "30",
        ]
        if token:
            args += ["--starting-token", token]
        res = server.aws(*args)
        assert res.code == 0, str(res)
        calls += 1
        batch = [e["EventId"] for e in res.json["Events"]]
        assert len(batch) == (30 if len(seen) < 120 else 0)
        seen += batch
        token = res.json.get("NextToken")
        if not token:
            break
        assert calls < 10, "the CLI kept returning tokens"
    assert len(seen) == N and len(set(seen)) == N
    assert set(seen) == set(many["ids"])


def test_next_token_is_reusable(server, many):
    client = server.client()
    first = client.lookup_events(LookupAttributes=_attrs(many["name"]), MaxResults=50)
    token = first["NextToken"]
    a = client.lookup_events(LookupAttributes=_attrs(many["name"]), MaxResults=50, NextToken=token)
    b = client.lookup_events(LookupAttributes=_attrs(many["name"]), MaxResults=50, NextToken=token)
    assert ids(a["Events"]) == ids(b["Events"])
    assert len(a["Events"]) == 50
    assert not set(ids(a["Events"])) & set(ids(first["Events"]))
    assert a.get("NextToken") == b.get("NextToken")


def test_pages_do_not_shift_while_ingest_goes_on(server):
    """A page already served never shifts: newer events do not move the next page."""
    name = otlib.uniq("Shift")
    base = otlib.new_window()
    recs = [otlib.cloudtrail_event(name, event_time=base + dt.timedelta(seconds=i)) for i in range(60)]
    server.ingest_ok(recs)
    client = server.client()
    first = client.lookup_events(LookupAttributes=_attrs(name), MaxResults=25)
    second = client.lookup_events(LookupAttributes=_attrs(name), MaxResults=25, NextToken=first["NextToken"])
    # Newer events with the same name, some newer than everything, some inside page 1's span.
    newer = [otlib.cloudtrail_event(name, event_time=base + dt.timedelta(seconds=50 + i)) for i in range(20)]
    server.ingest_ok(newer)
    again = client.lookup_events(LookupAttributes=_attrs(name), MaxResults=25, NextToken=first["NextToken"])
    assert ids(again["Events"]) == ids(second["Events"])


@pytest.mark.parametrize(
    "change",
    ["other-event-name", "other-attribute-key", "time-range", "no-attributes"],
)
def test_next_token_with_other_parameters_is_rejected(server, many, change):
    client = server.client()
    first = client.lookup_events(LookupAttributes=_attrs(many["name"]), MaxResults=10)
    token = first["NextToken"]
    params = {"LookupAttributes": _attrs(many["name"]), "MaxResults": 10, "NextToken": token}
    if change == "other-event-name":
        params["LookupAttributes"] = _attrs(many["name"] + "X")
    elif change == "other-attribute-key":
        params["LookupAttributes"] = [{"AttributeKey": "ReadOnly", "AttributeValue": "true"}]
    elif change == "time-range":
        params["StartTime"] = many["base"]
    elif change == "no-attributes":
        del params["LookupAttributes"]
    with pytest.raises(ClientError) as e:
        client.lookup_events(**params)
    assert e.value.response["Error"]["Code"] == "InvalidNextTokenException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

"""Every modelled LookupEvents error, with botocore's code and the HTTP status (spec §1.2, §3),
plus the awsJson1_1 error envelope: `__type`, `x-amzn-ErrorType` and `x-amzn-RequestId`."""

from __future__ import annotations

import datetime as dt

import pytest
from botocore.exceptions import ClientError

import otlib


def _client_error(call, **params) -> dict:
    with pytest.raises(ClientError) as e:
        call(**params)
    return e.value.response


def _assert_error(resp: dict, code: str, status: int = 400) -> None:
    assert resp["Error"]["Code"] == code, resp
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == status, resp
    assert resp["ResponseMetadata"].get("RequestId"), f"no x-amzn-RequestId on the error: {resp}"
    assert resp["Error"].get("Message"), f"error without a message: {resp}"


def _assert_raw_error(r: otlib.HttpResult, code: str, status: int = 400) -> None:
    assert r.status == status, str(r)
    assert r.error_code == code, str(r)
    body = r.json
    assert isinstance(body, dict), f"error body is not JSON: {r}"
    assert body.get("__type", "").split(":")[0].rsplit("#", 1)[-1] == code, f"__type: {r}"
    assert r.header("x-amzn-ErrorType", ) and r.header("x-amzn-ErrorType").split(":")[0].rsplit("#", 1)[-1] == code, (
        f"x-amzn-ErrorType header: {r}"
    )
    assert r.header("x-amzn-RequestId"), f"no x-amzn-RequestId: {r}"
    assert r.message, f"no message: {r}"


def test_two_attributes(server):
    resp = _client_error(
        server.client().lookup_events,
        LookupAttributes=[
            {"AttributeKey": "EventName", "AttributeValue": "DeleteTable"},
            {"AttributeKey": "Username", "AttributeValue": "alice"},
        ],
    )
    _assert_error(resp, "InvalidLookupAttributesException")


def test_unknown_attribute_key(server):
    resp = _client_error(
        server.client().lookup_events, LookupAttributes=[{"AttributeKey": "Bogus", "AttributeValue": "x"}]
    )
    _assert_error(resp, "InvalidLookupAttributesException")


def test_attribute_keys_are_case_sensitive(server):
    resp = _client_error(
        server.client().lookup_events, LookupAttributes=[{"AttributeKey": "eventName", "AttributeValue": "x"}]
    )
    _assert_error(resp, "InvalidLookupAttributesException")


def test_max_results_above_50(server):
    resp = _client_error(server.client().lookup_events, MaxResults=51)
    _assert_error(resp, "InvalidMaxResultsException")


def test_max_results_zero_raw(server):
    # botocore refuses MaxResults=0 on the client side, so send it by hand.
    r = server.json_call("LookupEvents", {"MaxResults": 0})
    _assert_raw_error(r, "InvalidMaxResultsException")


def test_max_results_1_and_50_are_fine(server):
    for n in (1, 50):
        resp = server.client().lookup_events(MaxResults=n)
        assert len(resp["Events"]) <= n


def test_start_after_end(server):
    now = otlib.utcnow()
    resp = _client_error(server.client().lookup_events, StartTime=now, EndTime=now - dt.timedelta(hours=1))
    _assert_error(resp, "InvalidTimeRangeException")


def test_start_equal_end_is_fine(server):
    t = otlib.utcnow().replace(microsecond=0) - dt.timedelta(days=1)
    resp = server.client().lookup_events(StartTime=t, EndTime=t)
    assert isinstance(resp["Events"], list)


def test_invalid_event_category(server):
    # botocore does not check enum values, so this reaches the server as sent.
    resp = _client_error(server.client().lookup_events, EventCategory="bogus")
    _assert_error(resp, "InvalidEventCategoryException")


def test_insight_category_is_accepted(server):
    resp = server.client().lookup_events(EventCategory="insight")
    assert resp["Events"] == [] or all("Insight" in e["CloudTrailEvent"] for e in resp["Events"])


def test_garbage_next_token(server):
    resp = _client_error(server.client().lookup_events, NextToken="this-is-not-a-token")
    _assert_error(resp, "InvalidNextTokenException")


def test_garbage_next_token_base64_shaped(server):
    resp = _client_error(server.client().lookup_events, NextToken="QUJDREVGR0hJSktMTU5PUA==")
    _assert_error(resp, "InvalidNextTokenException")


def test_error_envelope_raw(server):
    """awsJson1_1 errors: status from the model, `__type`, `x-amzn-ErrorType`, `message`."""
    r = server.json_call(
        "LookupEvents",
        {"LookupAttributes": [
            {"AttributeKey": "EventName", "AttributeValue": "a"},
            {"AttributeKey": "EventName", "AttributeValue": "b"},
        ]},
    )
    _assert_raw_error(r, "InvalidLookupAttributesException")


def test_unknown_operation(server):
    r = server.json_call("NoSuchOperation", {})
    _assert_raw_error(r, "UnknownOperationException")


def test_unknown_target_prefix(server):
    r = server.signed_request(
        "POST", "/", b"{}",
        {"X-Amz-Target": "com.amazonaws.example.v1.Other.LookupEvents", "Content-Type": otlib.JSON_11},
    )
    _assert_raw_error(r, "UnknownOperationException")


def test_malformed_json_body(server):
    r = server.json_call("LookupEvents", raw_body=b"{not json")
    assert r.status == 400, str(r)
    assert r.error_code, str(r)
    assert r.header("x-amzn-RequestId"), str(r)


def test_wrong_type_max_results(server):
    r = server.json_call("LookupEvents", {"MaxResults": "ten"})
    assert r.status == 400, str(r)
    assert r.error_code, str(r)


def test_request_id_on_success(server):
    resp = server.client().lookup_events(MaxResults=1)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert resp["ResponseMetadata"]["RequestId"]
    r = server.json_call("LookupEvents", {"MaxResults": 1})
    assert r.status == 200 and r.header("x-amzn-RequestId"), str(r)
    # Every response gets its own id.
    r2 = server.json_call("LookupEvents", {"MaxResults": 1})
    assert r2.header("x-amzn-RequestId") != r.header("x-amzn-RequestId")


def test_aws_cli_reports_the_error(server):
    res = server.aws("cloudtrail", "lookup-events", "--max-results", "51")
    assert res.code != 0
    assert "InvalidMaxResultsException" in res.stderr, str(res)

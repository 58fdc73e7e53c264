"""POST /v1/events: every body shape, per-record failures, duplicates, normalisation,
the size limit and unparseable bodies."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import uuid

import pytest

import otlib
from otlib import ACCOUNT_ID, ids, lookup_attr


def _event(name: str | None = None, **kw) -> dict:
    return otlib.cloudtrail_event(name or otlib.uniq("Ingest"), event_time=otlib.utcnow(), **kw)


def _assert_stored_once(server, *event_ids: str) -> None:
    client = server.client()
    for eid in event_ids:
        assert ids(lookup_attr(client, "EventId", eid)) == [eid], f"{eid} is not stored exactly once"


def _accepted(resp: dict, n: int) -> list[str]:
    assert resp["failed"] == [] and resp["duplicates"] == [], resp
    assert [a["index"] for a in resp["accepted"]] == list(range(n)), resp
    return [a["eventId"] for a in resp["accepted"]]


# ----------------------------------------------------------------- body shapes


def test_records_object(server):
    recs = [_event(), _event()]
    r = server.ingest_raw(json.dumps({"Records": recs}).encode())
    assert r.status == 200, str(r)
    assert _accepted(r.json, 2) == [x["eventID"] for x in recs]
    assert r.header("x-amzn-RequestId"), r.headers
    _assert_stored_once(server, *(x["eventID"] for x in recs))


def test_json_array(server):
    recs = [_event(), _event(), _event()]
    r = server.ingest_raw(json.dumps(recs).encode())
    assert r.status == 200, str(r)
    assert _accepted(r.json, 3) == [x["eventID"] for x in recs]
    _assert_stored_once(server, *(x["eventID"] for x in recs))


def test_single_object(server):
    rec = _event()
    r = server.ingest_raw(json.dumps(rec).encode())
    assert r.status == 200, str(r)
    assert _accepted(r.json, 1) == [rec["eventID"]]
    _assert_stored_once(server, rec["eventID"])


def test_ndjson(server):
    recs = [_event(), _event(), _event()]
    body = "\n".join(json.dumps(x) for x in recs) + "\n"
    r = server.ingest_raw(body.encode(), {"Content-Type": "application/x-ndjson"})
    assert r.status == 200, str(r)
    assert _accepted(r.json, 3) == [x["eventID"] for x in recs]
    _assert_stored_once(server, *(x["eventID"] for x in recs))


def test_gzip_with_content_encoding(server):
    recs = [_event(), _event()]
    body = gzip.compress(json.dumps({"Records": recs}).encode())
    r = server.ingest_raw(body, {"Content-Encoding": "gzip"})
    assert r.status == 200, str(r)
    assert _accepted(r.json, 2) == [x["eventID"] for x in recs]
    _assert_stored_once(server, *(x["eventID"] for x in recs))


def test_gzip_ndjson_with_content_encoding(server):
    recs = [_event(), _event()]
    body = gzip.compress(("\n".join(json.dumps(x) for x in recs)).encode())
    r = server.ingest_raw(body, {"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"})
    assert r.status == 200, str(r)
    assert _accepted(r.json, 2) == [x["eventID"] for x in recs]


def test_gzip_file_as_delivered_by_cloudtrail(server):
    """A CloudTrail log file (.json.gz) posted as it is, without Content-Encoding."""
    recs = [_event(), _event()]
    body = gzip.compress(json.dumps({"Records": recs}).encode())
    r = server.ingest_raw(body, {"Content-Type": "application/gzip"})
    assert r.status == 200, str(r)
    assert _accepted(r.json, 2) == [x["eventID"] for x in recs]


def test_record_is_stored_losslessly(server):
    rec = _event(
        unknownFutureField={"nested": [1, 2.5, "x", None, True]},
        tlsDetails={"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                    "clientProvidedHostHeader": "dynamodb.us-east-1.amazonaws.com"},
        additionalEventData={"emoji": "\u00e9\u4e2d\U0001F600"},
    )
    [eid] = server.ingest_ok([rec])
    [ev] = lookup_attr(server.client(), "EventId", eid)
    assert json.loads(ev["CloudTrailEvent"]) == rec


# ----------------------------------------------------------------- per-record failures


def test_bad_records_fail_alone(server):
    good0, good4, good5 = _event(), _event(), _event()
    good5["eventTime"] = "2024-01-02T03:04:05.678+02:00"  # offsets and fractions are RFC 3339
    no_name = _event()
    del no_name["eventName"]
    bad_time = _event()
    bad_time["eventTime"] = "yesterday at noon"
    batch = [good0, no_name, bad_time, 42, good4, good5]
    resp = server.ingest(batch)
    assert [a["index"] for a in resp["accepted"]] == [0, 4, 5], resp
    assert [a["eventId"] for a in resp["accepted"]] == [good0["eventID"], good4["eventID"], good5["eventID"]]
    assert resp["duplicates"] == []
    failed = {f["index"]: f for f in resp["failed"]}
    assert sorted(failed) == [1, 2, 3], resp
    for f in failed.values():
        assert isinstance(f["errorCode"], str) and f["errorCode"], f
        assert isinstance(f["message"], str) and f["message"], f
    assert "eventName" in failed[1]["message"], failed[1]
    assert "eventTime" in failed[2]["message"], failed[2]
    _assert_stored_once(server, good0["eventID"], good4["eventID"], good5["eventID"])
    assert lookup_attr(server.client(), "EventId", no_name["eventID"]) == []


@pytest.mark.parametrize("missing", ["eventName", "eventSource", "eventTime"])
def test_required_fields(server, missing):
    rec = _event()
    del rec[missing]
    resp = server.ingest([rec])
    assert resp["accepted"] == []
    [f] = resp["failed"]
    assert f["index"] == 0 and missing in f["message"], f


def test_record_over_256_kb(server):
    big = _event(requestParameters={"blob": "x" * (300 * 1024)})
    ok = _event()
    resp = server.ingest([ok, big])
    assert [a["index"] for a in resp["accepted"]] == [0]
    [f] = resp["failed"]
    assert f["index"] == 1 and f["errorCode"], f


def test_resend_yields_duplicates(server):
    recs = [_event(), _event(), _event()]
    first = server.ingest(recs)
    assert [a["index"] for a in first["accepted"]] == [0, 1, 2]
    again = server.ingest(recs)
    assert again["accepted"] == []
    assert again["failed"] == []
    assert [(d["index"], d["eventId"]) for d in again["duplicates"]] == [(i, r["eventID"]) for i, r in enumerate(recs)]
    _assert_stored_once(server, *(r["eventID"] for r in recs))


def test_duplicate_inside_one_batch(server):
    rec = _event()
    resp = server.ingest([rec, dict(rec)])
    assert [a["index"] for a in resp["accepted"]] == [0]
    assert [(d["index"], d["eventId"]) for d in resp["duplicates"]] == [(1, rec["eventID"])]
    _assert_stored_once(server, rec["eventID"])


def test_resending_records_without_event_id_stores_them_once(server):
    """A retried batch whose producer left eventID out is not stored twice: the
    generated id is derived from the record's text."""
    name = otlib.uniq("NoId")
    recs = [
        {"eventTime": otlib.iso(otlib.utcnow()), "eventSource": "example.amazonaws.com",
         "eventName": name, "requestParameters": {"n": n}}
        for n in range(3)
    ]
    first = server.ingest(recs)
    generated = [a["eventId"] for a in first["accepted"]]
    assert len(set(generated)) == 3, first
    again = server.ingest(recs)
    assert again["accepted"] == [] and again["failed"] == [], again
    assert [(d["index"], d["eventId"]) for d in again["duplicates"]] == list(enumerate(generated))
    assert sorted(ids(lookup_attr(server.client(), "EventName", name))) == sorted(generated)


def test_same_event_id_in_two_accounts_is_two_events(server):
    """Dedup is by (recipientAccountId, eventID)."""
    eid = str(uuid.uuid4())
    name = otlib.uniq("TwoAccounts")
    a = _event(name, event_id=eid, account=ACCOUNT_ID)
    b = _event(name, event_id=eid, account=otlib.OTHER_ACCOUNT_ID)
    resp = server.ingest([a, b])
    assert [x["index"] for x in resp["accepted"]] == [0, 1], resp
    assert len(lookup_attr(server.client(), "EventName", name)) == 2


# ----------------------------------------------------------------- normalisation


def test_normalisation_of_absent_fields(server):
    name_list = otlib.uniq("ListThings")
    bare = {
        "eventTime": otlib.iso(otlib.utcnow()),
        "eventSource": "example.amazonaws.com",
        "eventName": name_list,
        "userIdentity": {"type": "IAMUser", "userName": "dave"},
    }
    resp = server.ingest([bare])
    [acc] = resp["accepted"]
    eid = acc["eventId"]
    uuid.UUID(eid)  # a generated UUID
    [ev] = lookup_attr(server.client(), "EventId", eid)
    rec = json.loads(ev["CloudTrailEvent"])
    assert rec["eventID"] == eid
    assert rec["eventVersion"] == "1.11"
    assert rec["eventCategory"] == "Management"
    assert rec["eventType"] == "AwsApiCall"
    assert rec["recipientAccountId"] == ACCOUNT_ID
    assert rec["awsRegion"] == "us-east-1"
    assert ev["Username"] == "dave"
    for k, v in bare.items():
        assert rec[k] == v


@pytest.mark.parametrize(
    "verb,read_only",
    [("ListBuckets", True), ("GetObject", True), ("DescribeInstances", True), ("HeadObject", True),
     ("LookupEvents", True), ("DeleteBucket", False), ("PutObject", False), ("CreateUser", False)],
)
def test_read_only_is_inferred_from_the_verb(server, verb, read_only):
    rec = _event(read_only=None)
    rec["eventName"] = verb
    [eid] = server.ingest_ok([rec])
    [ev] = lookup_attr(server.client(), "EventId", eid)
    assert ev["ReadOnly"] == ("true" if read_only else "false")
    assert json.loads(ev["CloudTrailEvent"])["readOnly"] is read_only


# ----------------------------------------------------------------- whole-body errors


def test_garbage_body(server):
    r = server.ingest_raw(b"this is { not json")
    assert r.status == 400, str(r)
    assert r.body.strip(), "a 400 must say why"
    if isinstance(r.json, dict):
        assert r.message, str(r)


def test_empty_body(server):
    r = server.ingest_raw(b"")
    assert r.status == 400, str(r)
    assert r.body.strip()


def test_bad_gzip(server):
    r = server.ingest_raw(b"\x1f\x8b\x08\x00 definitely not deflate data", {"Content-Encoding": "gzip"})
    assert r.status == 400, str(r)
    assert r.body.strip()


def test_body_under_the_limit(server):
    """~9 MB of records (under the 10 MB default limit) is accepted."""
    name = otlib.uniq("Bulk")
    one = len(json.dumps(_event(name, requestParameters={"pad": "", "i": 0})))
    pad = "p" * (3000 - one)  # ~3 kB per record
    recs = [_event(name, requestParameters={"pad": pad, "i": i}) for i in range(3000)]
    body = json.dumps({"Records": recs}).encode()
    assert 8_500_000 < len(body) < 9_500_000, len(body)
    r = server.ingest_raw(body)
    assert r.status == 200, str(r)[:2000]
    assert len(r.json["accepted"]) == len(recs)
    resp = server.client().lookup_events(LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": name}])
    assert len(resp["Events"]) == 50


def _send_concurrently(server, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    """Sends a request whose body the server may refuse before reading it all.

    The body is written from a thread while this thread reads the response, so an early
    413 is seen even if the server then closes the connection.
    """
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
    for k, v in headers.items():
        head += f"{k}: {v}\r\n"
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"

    def writer():
        try:
            sock.sendall(head.encode() + body)
        except OSError:
            pass  # the server stopped reading: expected for a 413

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        # Read what else arrives (headers and a short body), tolerating a reset.
        sock.settimeout(5)
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        t.join(timeout=30)
        sock.close()
    assert data.startswith(b"HTTP/1."), f"no HTTP response: {data[:200]!r}"
    status = int(data.split(b" ", 2)[1])
    return status, data


def test_body_over_10_mb_gets_413(server):
    from botocore.awsrequest import AWSRequest

    pad = "p" * 4000
    recs = [_event(requestParameters={"pad": pad}) for i in range(2800)]
    body = json.dumps({"Records": recs}).encode()
    assert len(body) > 11 * 1024 * 1024
    req = AWSRequest(method="POST", url=server.endpoint + "/v1/events", data=body,
                     headers={"Content-Type": "application/json"})
    otlib.FixedTimeSigV4Auth(server.admin.botocore(), "cloudtrail", otlib.REGION).add_auth(req)
    headers = {k: v for k, v in req.headers.items() if k.lower() != "content-length"}
    status, raw = _send_concurrently(server, "POST", "/v1/events", body, headers)
    assert status == 413, raw[:500]
    assert lookup_attr(server.client(), "EventId", recs[0]["eventID"]) == []
    # The server is still fine afterwards.
    assert server.raw_request("GET", "/health").status == 200

"""Authentication (SigV4, Bearer tokens) and permissions (roles, accounts, revocation)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from botocore.exceptions import ClientError

import otlib
from otlib import ACCOUNT_ID, OTHER_ACCOUNT_ID, ids, lookup_attr

LOOKUP_HEADERS = {"X-Amz-Target": f"{otlib.TARGET_PREFIX}.LookupEvents", "Content-Type": otlib.JSON_11}
# Auth failures: AWS JSON services answer these with 400 or 403 depending on the service;
# either is accepted here. MissingAuthenticationToken and AccessDenied must be 403.
AUTH_STATUSES = (400, 403)


def _err(call, **params) -> dict:
    with pytest.raises(ClientError) as e:
        call(**params)
    return e.value.response


def _one_event(name: str | None = None, **kw) -> dict:
    return otlib.cloudtrail_event(name or otlib.uniq("Auth"), event_time=otlib.utcnow(), **kw)


# ----------------------------------------------------------------- unauthenticated


def test_health_needs_no_auth(server):
    r = server.raw_request("GET", "/health")
    assert r.status == 200, str(r)


def test_unsigned_lookup(server):
    r = server.raw_request("POST", "/", b"{}", LOOKUP_HEADERS)
    assert r.status == 403, str(r)
    assert r.error_code == "MissingAuthenticationTokenException", str(r)
    assert r.header("x-amzn-RequestId"), str(r)


def test_unsigned_ingest(server):
    body = json.dumps({"Records": [_one_event()]}).encode()
    r = server.raw_request("POST", "/v1/events", body, {"Content-Type": "application/json"})
    assert r.status == 403, str(r)
    assert r.error_code == "MissingAuthenticationTokenException", str(r)


# ----------------------------------------------------------------- bad signatures


def test_wrong_secret(server):
    bad = server.admin.with_secret("x" * 40)
    resp = _err(server.client(bad).lookup_events)
    assert resp["Error"]["Code"] == "InvalidSignatureException", resp
    assert resp["ResponseMetadata"]["HTTPStatusCode"] in AUTH_STATUSES


def test_wrong_secret_on_ingest(server):
    bad = server.admin.with_secret("y" * 40)
    r = server.ingest_raw(json.dumps({"Records": [_one_event()]}).encode(), creds=bad)
    assert r.status in AUTH_STATUSES, str(r)
    assert r.error_code == "InvalidSignatureException", str(r)


def test_unknown_access_key(server):
    ghost = otlib.Creds("AKIAGHOSTKEY00000000", "z" * 40)
    resp = _err(server.client(ghost).lookup_events)
    assert resp["Error"]["Code"] == "UnrecognizedClientException", resp
    assert resp["ResponseMetadata"]["HTTPStatusCode"] in AUTH_STATUSES


def test_stale_date(server):
    """X-Amz-Date 20 minutes old: outside the 15-minute window."""
    when = otlib.utcnow() - dt.timedelta(minutes=20)
    r = server.json_call("LookupEvents", {}, when=when)
    assert r.status in AUTH_STATUSES, str(r)
    assert r.error_code == "InvalidSignatureException", str(r)
    assert "Signature expired" in (r.message or ""), str(r)


def test_future_date(server):
    when = otlib.utcnow() + dt.timedelta(minutes=20)
    r = server.json_call("LookupEvents", {}, when=when)
    assert r.status in AUTH_STATUSES, str(r)
    assert r.error_code == "InvalidSignatureException", str(r)


def test_date_inside_the_window_is_fine(server):
    when = otlib.utcnow() - dt.timedelta(minutes=10)
    r = server.json_call("LookupEvents", {"MaxResults": 1}, when=when)
    assert r.status == 200, str(r)


def test_tampered_body(server):
    """The payload hash is verified: a body other than the signed one is rejected."""
    signed = json.dumps({"MaxResults": 1}).encode()
    sent = json.dumps({"MaxResults": 2}).encode()
    r = server.signed_request("POST", "/", signed, LOOKUP_HEADERS, send_body=sent)
    assert r.status in AUTH_STATUSES, str(r)
    assert r.error_code == "InvalidSignatureException", str(r)


def test_tampered_signed_header(server):
    """X-Amz-Target is signed: changing it after signing breaks the signature."""
    headers = dict(LOOKUP_HEADERS)
    creds = server.admin
    from botocore.awsrequest import AWSRequest

    req = AWSRequest(method="POST", url=server.endpoint + "/", data=b"{}", headers=headers)
    otlib.FixedTimeSigV4Auth(creds.botocore(), "cloudtrail", otlib.REGION).add_auth(req)
    prepared = req.prepare()
    out = dict(prepared.headers.items())
    out.pop("Content-Length", None)
    out["X-Amz-Target"] = f"{otlib.TARGET_PREFIX}.ListChannels"
    r = server.raw_request("POST", "/", b"{}", out)
    assert r.status in AUTH_STATUSES, str(r)
    assert r.error_code == "InvalidSignatureException", str(r)


def test_wrong_service_in_scope(server):
    r = server.signed_request("POST", "/", b"{}", LOOKUP_HEADERS, service="s3")
    assert r.status in AUTH_STATUSES, str(r)
    assert r.error_code in ("InvalidSignatureException", "IncompleteSignatureException", "IncompleteSignature"), str(r)


def test_incomplete_signature(server):
    headers = {
        **LOOKUP_HEADERS,
        "X-Amz-Date": otlib.utcnow().strftime("%Y%m%dT%H%M%SZ"),
        "Authorization": f"AWS4-HMAC-SHA256 Credential={server.admin.access_key_id}/20240101/us-east-1/cloudtrail/aws4_request",
    }
    r = server.raw_request("POST", "/", b"{}", headers)
    assert r.status in AUTH_STATUSES, str(r)
    assert r.error_code in ("IncompleteSignatureException", "IncompleteSignature"), str(r)


# ----------------------------------------------------------------- roles


def test_read_key_cannot_ingest(server, read_key):
    r = server.ingest_raw(json.dumps({"Records": [_one_event()]}).encode(), creds=read_key)
    assert r.status == 403, str(r)
    assert r.error_code == "AccessDeniedException", str(r)


def test_read_key_can_lookup(server, read_key):
    resp = server.client(read_key).lookup_events(MaxResults=1)
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_ingest_key_cannot_lookup(server, ingest_key):
    resp = _err(server.client(ingest_key).lookup_events)
    assert resp["Error"]["Code"] == "AccessDeniedException", resp
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_ingest_key_can_ingest(server, ingest_key):
    rec = _one_event()
    body = server.ingest([rec], creds=ingest_key)
    assert [a["eventId"] for a in body["accepted"]] == [rec["eventID"]]
    assert ids(lookup_attr(server.client(), "EventId", rec["eventID"])) == [rec["eventID"]]


def test_read_and_ingest_keys_cannot_manage_channels(server, read_key, ingest_key):
    for creds in (read_key, ingest_key):
        resp = _err(
            server.client(creds).create_channel,
            Name=otlib.uniq("nope-"),
            Source="Custom",
            Destinations=[{"Type": "EVENT_DATA_STORE", "Location": "arn:aws:cloudtrail:us-east-1:111122223333:eventdatastore/x"}],
        )
        assert resp["Error"]["Code"] == "AccessDeniedException", resp


def test_keys_create_output(server):
    key = server.create_key("read", OTHER_ACCOUNT_ID)
    assert key.access_key_id and key.secret_access_key
    assert key.access_key_id != server.admin.access_key_id
    assert key.account_id == OTHER_ACCOUNT_ID and key.role == "read"


def test_secrets_are_not_stored_in_plain_text(server):
    """Secrets of created keys appear nowhere in the data dir (only the first admin's
    secret, in the credentials file)."""
    key = server.create_key("read")
    needle = key.secret_access_key.encode()
    for path in server.data_dir.rglob("*"):
        if path.is_file():
            assert needle not in path.read_bytes(), f"secret found in plain text in {path}"


def test_revoked_key_is_rejected(server):
    key = server.create_key("read")
    client = server.client(key)
    client.lookup_events(MaxResults=1)
    server.revoke_key(key.access_key_id)
    resp = _err(client.lookup_events, MaxResults=1)
    assert resp["Error"]["Code"] == "UnrecognizedClientException", resp
    assert resp["ResponseMetadata"]["HTTPStatusCode"] in AUTH_STATUSES


# ----------------------------------------------------------------- bearer tokens


@pytest.fixture(scope="module")
def bearer_key(server):
    key = server.create_key("ingest")
    assert key.token, f"`keys create --role ingest` printed no token: {key}"
    return key


def test_bearer_token_can_ingest(server, bearer_key):
    rec = _one_event()
    r = server.ingest_raw(json.dumps({"Records": [rec]}).encode(), bearer=bearer_key.token)
    assert r.status == 200, str(r)
    assert [a["eventId"] for a in r.json["accepted"]] == [rec["eventID"]]
    assert ids(lookup_attr(server.client(), "EventId", rec["eventID"])) == [rec["eventID"]]


def test_bearer_token_cannot_lookup(server, bearer_key):
    r = server.raw_request("POST", "/", b"{}", {**LOOKUP_HEADERS, "Authorization": f"Bearer {bearer_key.token}"})
    assert r.status in AUTH_STATUSES, str(r)
    assert r.error_code, str(r)
    assert "Events" not in (r.json or {})


def test_bad_bearer_token(server):
    body = json.dumps({"Records": [_one_event()]}).encode()
    r = server.ingest_raw(body, bearer="not-a-real-token")
    assert r.status in AUTH_STATUSES, str(r)
    assert r.error_code, str(r)


def test_revoked_bearer_token(server):
    key = server.create_key("ingest")
    body = json.dumps({"Records": [_one_event()]}).encode()
    assert server.ingest_raw(body, bearer=key.token).status == 200
    server.revoke_key(key.access_key_id)
    r = server.ingest_raw(json.dumps({"Records": [_one_event()]}).encode(), bearer=key.token)
    assert r.status in AUTH_STATUSES, str(r)


# ----------------------------------------------------------------- accounts


@pytest.fixture(scope="module")
def accounts(server):
    """Events ingested into two accounts by each account's ingest key."""
    keys = {
        "ingest_a": server.create_key("ingest", ACCOUNT_ID),
        "ingest_b": server.create_key("ingest", OTHER_ACCOUNT_ID),
        "read_a": server.create_key("read", ACCOUNT_ID),
        "read_b": server.create_key("read", OTHER_ACCOUNT_ID),
    }
    name = otlib.uniq("Isolation")
    # No recipientAccountId/awsRegion: the server fills in the caller's account and region.
    rec_a = _one_event(name, account=None, region=None)
    rec_b = _one_event(name, account=None, region=None)
    [id_a] = server.ingest_ok([rec_a], creds=keys["ingest_a"])
    [id_b] = server.ingest_ok([rec_b], creds=keys["ingest_b"])
    return {"keys": keys, "name": name, "a": id_a, "b": id_b}


def test_each_account_sees_only_its_own_events(server, accounts):
    k = accounts["keys"]
    assert ids(lookup_attr(server.client(k["read_a"]), "EventName", accounts["name"])) == [accounts["a"]]
    assert ids(lookup_attr(server.client(k["read_b"]), "EventName", accounts["name"])) == [accounts["b"]]
    # Not even by id.
    assert lookup_attr(server.client(k["read_a"]), "EventId", accounts["b"]) == []
    assert lookup_attr(server.client(k["read_b"]), "EventId", accounts["a"]) == []


def test_recipient_account_is_the_callers(server, accounts):
    k = accounts["keys"]
    [ev] = lookup_attr(server.client(k["read_b"]), "EventId", accounts["b"])
    rec = json.loads(ev["CloudTrailEvent"])
    assert rec["recipientAccountId"] == OTHER_ACCOUNT_ID
    assert rec["awsRegion"] == "us-east-1"


def test_admin_of_default_account_sees_every_account(server, accounts):
    found = lookup_attr(server.client(), "EventName", accounts["name"])
    assert sorted(ids(found)) == sorted([accounts["a"], accounts["b"]])
    # … in the region it signs for.
    assert lookup_attr(server.client(region="eu-west-1"), "EventName", accounts["name"]) == []


def test_admin_of_another_account_sees_only_that_account(server, accounts):
    admin_b = server.create_key("admin", OTHER_ACCOUNT_ID)
    assert ids(lookup_attr(server.client(admin_b), "EventName", accounts["name"])) == [accounts["b"]]


def test_cli_with_a_read_key(server, accounts):
    res = server.aws(
        "cloudtrail", "lookup-events",
        "--lookup-attributes", f"AttributeKey=EventName,AttributeValue={accounts['name']}",
        creds=accounts["keys"]["read_b"],
    )
    assert res.code == 0, str(res)
    assert [e["EventId"] for e in res.json["Events"]] == [accounts["b"]]

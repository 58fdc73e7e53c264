"""PutInsightSelectors / GetInsightSelectors with real boto3 and the aws CLI: shapes, the
default category, turning Insights off, HasInsightSelectors in GetTrail and
DescribeTrails, every modelled error with its HTTP status, and Insights records (ingested
through POST /v1/events) delivered to the trail's S3 bucket under CloudTrail-Insight, and
never in its log files.

The S3 server is conftest's `s3_endpoint` (`moto_server`, or OPENTRAIL_TEST_S3_ENDPOINT). Polls are
bounded; no timing is asserted.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from botocore.exceptions import ClientError

import otlib
from test_delivery import WITHOUT_SELF_AUDIT, gunzip_one_member, s3_client

DELIVERY_WAIT_S = 60.0
CALL_RATE = "ApiCallRateInsight"
ERROR_RATE = "ApiErrorRateInsight"


@pytest.fixture
def srv(server_factory):
    return server_factory()


def arn(name: str, region: str = otlib.REGION, account: str = otlib.ACCOUNT_ID) -> str:
    return f"arn:aws:cloudtrail:{region}:{account}:trail/{name}"


def expect_error(call, code: str, status: int, **kwargs) -> dict:
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    response = e.value.response
    assert (response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]) == (code, status), response
    assert response["Error"]["Message"], response
    return response


def insight_record(insight_type: str, state: str, shared_event_id: str, **extra) -> dict:
    """An Insights record as CloudTrail writes it, plus top-level eventSource/eventName."""
    details = {
        "state": state,
        "eventSource": "ssm.amazonaws.com",
        "eventName": "PutParameter",
        "insightType": insight_type,
        "insightContext": {
            "statistics": {"baseline": {"average": 0.25}, "insight": {"average": 14.0}, "baselineDuration": 10080},
            "attributions": [],
        },
    }
    if insight_type == ERROR_RATE:
        details["errorCode"] = "AccessDeniedException"
    record = {
        "eventVersion": "1.08",
        "eventTime": otlib.iso(otlib.utcnow()),
        "awsRegion": otlib.REGION,
        "eventID": str(uuid.uuid4()),
        "eventType": "AwsCloudTrailInsight",
        "recipientAccountId": otlib.ACCOUNT_ID,
        "sharedEventID": shared_event_id,
        "eventSource": "ssm.amazonaws.com",
        "eventName": "PutParameter",
        "insightDetails": details,
        "eventCategory": "Insight",
    }
    record.update(extra)
    return record


# --------------------------------------------------------------------------- the API


def test_put_and_get_insight_selectors_and_has_insight_selectors(srv):
    ct = srv.client()
    ct.create_trail(Name="insights-trail", S3BucketName="insights-bucket")
    expect_error(ct.get_insight_selectors, "InsightNotEnabledException", 400, TrailName="insights-trail")
    assert ct.get_trail(Name="insights-trail")["Trail"]["HasInsightSelectors"] is False

    put = ct.put_insight_selectors(
        TrailName="insights-trail",
        InsightSelectors=[{"InsightType": CALL_RATE}, {"InsightType": ERROR_RATE, "EventCategories": ["Management"]}],
    )
    expected = [
        {"InsightType": CALL_RATE, "EventCategories": ["Management"]},
        {"InsightType": ERROR_RATE, "EventCategories": ["Management"]},
    ]
    assert put["TrailARN"] == arn("insights-trail")
    assert put["InsightSelectors"] == expected
    assert "EventDataStoreArn" not in put and "InsightsDestination" not in put
    for name in ["insights-trail", arn("insights-trail")]:
        got = ct.get_insight_selectors(TrailName=name)
        assert got["TrailARN"] == arn("insights-trail") and got["InsightSelectors"] == expected, got
    assert ct.get_trail(Name="insights-trail")["Trail"]["HasInsightSelectors"] is True
    described = ct.describe_trails(trailNameList=["insights-trail"])["trailList"]
    assert [t["HasInsightSelectors"] for t in described] == [True]
    # A reader sees them; a multi-region trail's shadow is not involved here.
    reader = srv.create_key("read")
    assert srv.client(reader).get_insight_selectors(TrailName="insights-trail")["InsightSelectors"] == expected

    # Replacing keeps only what the last call named (here: one type, on management events).
    replaced = ct.put_insight_selectors(TrailName=arn("insights-trail"), InsightSelectors=[{"InsightType": ERROR_RATE}])
    assert replaced["InsightSelectors"] == [{"InsightType": ERROR_RATE, "EventCategories": ["Management"]}]

    # An empty list turns Insights off.
    off = ct.put_insight_selectors(TrailName="insights-trail", InsightSelectors=[])
    assert off["InsightSelectors"] == [] and off["TrailARN"] == arn("insights-trail")
    expect_error(ct.get_insight_selectors, "InsightNotEnabledException", 400, TrailName="insights-trail")
    assert ct.get_trail(Name="insights-trail")["Trail"]["HasInsightSelectors"] is False
    assert ct.describe_trails()["trailList"][0]["HasInsightSelectors"] is False


def test_data_event_insights_need_a_trail_that_logs_data_events(srv):
    ct = srv.client()
    ct.create_trail(Name="data-trail", S3BucketName="insights-bucket")
    data = [{"InsightType": CALL_RATE, "EventCategories": ["Data", "Management"]}]
    expect_error(ct.put_insight_selectors, "InvalidInsightSelectorsException", 400, TrailName="data-trail", InsightSelectors=data)
    ct.put_event_selectors(
        TrailName="data-trail",
        AdvancedEventSelectors=[
            {"Name": "management", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]},
            {
                "Name": "s3 objects",
                "FieldSelectors": [
                    {"Field": "eventCategory", "Equals": ["Data"]},
                    {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                ],
            },
        ],
    )
    assert ct.put_insight_selectors(TrailName="data-trail", InsightSelectors=data)["InsightSelectors"] == data
    assert ct.get_insight_selectors(TrailName="data-trail")["InsightSelectors"] == data


def test_every_modelled_error_with_its_status(srv):
    ct = srv.client()
    ct.create_trail(Name="home-trail", S3BucketName="insights-bucket", IsMultiRegionTrail=True)
    ok = [{"InsightType": CALL_RATE}]
    put, get = ct.put_insight_selectors, ct.get_insight_selectors

    for selectors in [
        [{"InsightType": "ApiCallRate"}],
        [{"EventCategories": ["Management"]}],
        [{"InsightType": CALL_RATE}, {"InsightType": CALL_RATE, "EventCategories": ["Data"]}],
        [{"InsightType": CALL_RATE, "EventCategories": ["Insight"]}],
        [{"InsightType": CALL_RATE, "EventCategories": ["Management", "Management"]}],
        [{"InsightType": CALL_RATE, "EventCategories": []}],
    ]:
        expect_error(put, "InvalidInsightSelectorsException", 400, TrailName="home-trail", InsightSelectors=selectors)

    expect_error(put, "InvalidParameterCombinationException", 400, TrailName="home-trail", EventDataStore="eds-example", InsightSelectors=ok)
    expect_error(put, "InvalidParameterCombinationException", 400, TrailName="home-trail", InsightsDestination="eds-example", InsightSelectors=ok)
    expect_error(get, "InvalidParameterCombinationException", 400, TrailName="home-trail", EventDataStore="eds-example")
    unsupported = expect_error(
        put, "UnsupportedOperationException", 400, EventDataStore="eds-example", InsightsDestination="eds-other", InsightSelectors=ok
    )
    assert "event data store" in unsupported["Error"]["Message"]
    expect_error(get, "UnsupportedOperationException", 400, EventDataStore="eds-example")

    expect_error(put, "TrailNotFoundException", 404, TrailName="no-such-trail", InsightSelectors=ok)
    expect_error(get, "TrailNotFoundException", 404, TrailName=arn("no-such-trail"))
    expect_error(put, "InvalidTrailNameException", 400, TrailName="my--trail", InsightSelectors=ok)
    expect_error(get, "InvalidTrailNameException", 400, TrailName="ab")
    expect_error(put, "CloudTrailARNInvalidException", 400, TrailName="arn:aws:cloudtrail:us-east-1:123:trail/home-trail", InsightSelectors=ok)

    # Changes happen in the home region; reads work wherever the trail is visible.
    elsewhere = srv.client(region="eu-west-1")
    expect_error(elsewhere.put_insight_selectors, "InvalidHomeRegionException", 400, TrailName=arn("home-trail"), InsightSelectors=ok)
    put(TrailName="home-trail", InsightSelectors=ok)
    assert elsewhere.get_insight_selectors(TrailName="home-trail")["InsightSelectors"][0]["InsightType"] == CALL_RATE

    # Call rates need write management events.
    ct.create_trail(Name="reads-only", S3BucketName="insights-bucket")
    ct.put_event_selectors(TrailName="reads-only", EventSelectors=[{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}])
    rejected = expect_error(put, "InvalidInsightSelectorsException", 400, TrailName="reads-only", InsightSelectors=ok)
    assert "write management" in rejected["Error"]["Message"]
    put(TrailName="reads-only", InsightSelectors=[{"InsightType": ERROR_RATE}])

    # Roles and tenants: a reader cannot change them; another account sees no trail.
    reader = srv.create_key("read")
    expect_error(srv.client(reader).put_insight_selectors, "AccessDeniedException", 403, TrailName="home-trail", InsightSelectors=[])
    ingester = srv.create_key("ingest")
    expect_error(srv.client(ingester).get_insight_selectors, "AccessDeniedException", 403, TrailName="home-trail")
    stranger = srv.create_key("admin", account="999988887777")
    expect_error(srv.client(stranger).get_insight_selectors, "TrailNotFoundException", 404, TrailName="home-trail")
    expect_error(
        srv.client(stranger).put_insight_selectors, "TrailNotFoundException", 404, TrailName=arn("home-trail"), InsightSelectors=[]
    )
    # Nothing above changed the selectors.
    assert get(TrailName="home-trail")["InsightSelectors"] == [{"InsightType": CALL_RATE, "EventCategories": ["Management"]}]


def test_aws_cli_insight_selectors(srv):
    def aws(*args):
        result = srv.aws("cloudtrail", *args)
        assert result.code == 0, result
        return result.json

    aws("create-trail", "--name", "cli-insights", "--s3-bucket-name", "insights-bucket")
    missing = srv.aws("cloudtrail", "get-insight-selectors", "--trail-name", "cli-insights")
    assert missing.code != 0 and "InsightNotEnabledException" in missing.stderr, missing
    selectors = [{"InsightType": ERROR_RATE, "EventCategories": ["Management"]}]
    put = aws("put-insight-selectors", "--trail-name", "cli-insights", "--insight-selectors", json.dumps(selectors))
    assert put == {"TrailARN": arn("cli-insights"), "InsightSelectors": selectors}, put
    assert aws("get-insight-selectors", "--trail-name", arn("cli-insights"))["InsightSelectors"] == selectors
    assert aws("get-trail", "--name", "cli-insights")["Trail"]["HasInsightSelectors"] is True
    assert aws("describe-trails")["trailList"][0]["HasInsightSelectors"] is True
    bad = srv.aws(
        "cloudtrail", "put-insight-selectors", "--trail-name", "cli-insights",
        "--insight-selectors", json.dumps([{"InsightType": "ApiVolumeInsight"}]),
    )
    assert bad.code != 0 and "InvalidInsightSelectorsException" in bad.stderr, bad
    both = srv.aws(
        "cloudtrail", "get-insight-selectors", "--trail-name", "cli-insights", "--event-data-store", "eds-example"
    )
    assert both.code != 0 and "InvalidParameterCombinationException" in both.stderr, both
    off = aws("put-insight-selectors", "--trail-name", "cli-insights", "--insight-selectors", "[]")
    assert off["InsightSelectors"] == []
    assert aws("get-trail", "--name", "cli-insights")["Trail"]["HasInsightSelectors"] is False


def test_selectors_persist_across_a_restart(srv):
    ct = srv.client()
    ct.create_trail(Name="kept-trail", S3BucketName="insights-bucket")
    ct.put_insight_selectors(TrailName="kept-trail", InsightSelectors=[{"InsightType": CALL_RATE}])
    srv.restart()
    ct = srv.client()
    assert ct.get_insight_selectors(TrailName="kept-trail")["InsightSelectors"] == [
        {"InsightType": CALL_RATE, "EventCategories": ["Management"]}
    ]
    assert ct.get_trail(Name="kept-trail")["Trail"]["HasInsightSelectors"] is True


# --------------------------------------------------------------------------- delivery


def objects(endpoint: str, bucket: str) -> dict[str, list[dict]]:
    s3 = s3_client(endpoint)
    found: dict[str, list[dict]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            document = json.loads(gunzip_one_member(body))
            assert list(document) == ["Records"], obj["Key"]
            found[obj["Key"]] = document["Records"]
    return found


def wait_for_ids(srv, endpoint: str, bucket: str, folder: str, ids: list[str]) -> dict[str, list[dict]]:
    deadline = time.monotonic() + DELIVERY_WAIT_S
    while True:
        files = {key: records for key, records in objects(endpoint, bucket).items() if f"/{folder}/" in key}
        delivered = {record["eventID"] for records in files.values() for record in records}
        if set(ids) <= delivered:
            return files
        if time.monotonic() > deadline:
            raise AssertionError(f"{set(ids) - delivered} not delivered under {folder} within {DELIVERY_WAIT_S:.0f}s\n{srv.logs()}")
        time.sleep(0.3)


def test_ingested_insights_are_delivered_to_s3_under_cloudtrail_insight(server_factory, s3_endpoint):
    srv = server_factory(
        extra_env={
            "OPENTRAIL_DELIVERY_INTERVAL_SECS": "1",
            "OPENTRAIL_S3_ENDPOINT": s3_endpoint,
            "OPENTRAIL_S3_REGION": "us-east-1",
            "OPENTRAIL_S3_ACCESS_KEY_ID": "test",
            "OPENTRAIL_S3_SECRET_ACCESS_KEY": "test",
        }
    )
    bucket = f"insights-{uuid.uuid4().hex[:12]}"
    s3_client(s3_endpoint).create_bucket(Bucket=bucket)
    ct = srv.client()
    ct.create_trail(Name="delivering", S3BucketName=bucket, S3KeyPrefix="org/prod")
    ct.put_event_selectors(TrailName="delivering", AdvancedEventSelectors=WITHOUT_SELF_AUDIT)
    ct.start_logging(Name="delivering")
    # An Insight recorded before Insights are on is not delivered (no back-fill).
    early = srv.ingest_ok([insight_record(CALL_RATE, "Start", str(uuid.uuid4()))])
    turned_on = srv.aws(
        "cloudtrail", "put-insight-selectors", "--trail-name", "delivering",
        "--insight-selectors", json.dumps([{"InsightType": CALL_RATE}]),
    )
    assert turned_on.code == 0, turned_on

    shared = str(uuid.uuid4())
    management = otlib.cloudtrail_event("PutParameter", event_time=otlib.utcnow(), event_source="ssm.amazonaws.com")
    sent = [
        insight_record(CALL_RATE, "Start", shared),
        insight_record(ERROR_RATE, "Start", str(uuid.uuid4())),
        insight_record(CALL_RATE, "Start", str(uuid.uuid4()), awsRegion="eu-west-1"),
        management,
        insight_record(CALL_RATE, "End", shared),
    ]
    ids = srv.ingest_ok(sent)
    start_id, error_id, elsewhere_id, management_id, end_id = ids

    insight_files = wait_for_ids(srv, s3_endpoint, bucket, "CloudTrail-Insight", [start_id, end_id])
    log_files = wait_for_ids(srv, s3_endpoint, bucket, "CloudTrail", [management_id])
    for key in insight_files:
        parts = key.split("/")
        assert parts[:6] == ["org", "prod", "AWSLogs", otlib.ACCOUNT_ID, "CloudTrail-Insight", otlib.REGION], key
        yyyy, mm, dd, name = parts[6:]
        head = f"{otlib.ACCOUNT_ID}_CloudTrail-Insight_{otlib.REGION}_"
        assert name.startswith(head) and name.endswith(".json.gz"), key
        stamp, unique = name[len(head):-len(".json.gz")].split("_")
        assert stamp.startswith(f"{yyyy}{mm}{dd}T") and len(stamp) == 14 and stamp.endswith("Z"), stamp
        assert len(unique) == 16 and unique.isalnum(), unique
    delivered = [record for records in insight_files.values() for record in records]
    # The selected type, in this trail's region, each once, Start before End, as sent.
    assert [record["eventID"] for record in delivered] == [start_id, end_id]
    for record, original in zip(delivered, [sent[0], sent[4]]):
        otlib.assert_record_preserved(record, original)
    assert delivered[0]["sharedEventID"] == delivered[1]["sharedEventID"] == shared
    assert early[0] not in {record["eventID"] for record in delivered}
    # Log files hold the management call and no Insights record.
    logged = {record["eventID"] for records in log_files.values() for record in records}
    assert management_id in logged
    assert not logged & {start_id, end_id, error_id, elsewhere_id, early[0]}, logged

    # Turned off: what is recorded from now on stays out of the bucket.
    assert ct.put_insight_selectors(TrailName="delivering", InsightSelectors=[])["InsightSelectors"] == []
    later = srv.ingest_ok(
        [
            insight_record(CALL_RATE, "Start", str(uuid.uuid4())),
            otlib.cloudtrail_event("DeleteParameter", event_time=otlib.utcnow(), event_source="ssm.amazonaws.com"),
        ]
    )
    wait_for_ids(srv, s3_endpoint, bucket, "CloudTrail", [later[1]])
    everything = {record["eventID"] for records in objects(s3_endpoint, bucket).values() for record in records}
    assert later[0] not in everything
    assert "LatestDeliveryError" not in ct.get_trail_status(Name="delivering")

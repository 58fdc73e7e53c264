"""CloudTrail Insights end to end, with real boto3 and the aws CLI: a trail with Insights
selectors, a burst of write calls and a burst of AccessDenied errors against a short
baseline (OPENTRAIL_INSIGHTS_BASELINE_MINUTES), the Start/End pairs in LookupEvents with
EventCategory=insight, the files under CloudTrail-Insight, ListInsightsMetricData, and a
kill -9 that neither loses the baseline nor repeats a period."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import time

import botocore.exceptions
import pytest

import otlib

BASELINE_MINUTES = 5
# Generous bounds: the analysis needs a few seconds after the last burst minute closes.
INSIGHT_WAIT_S = 90


def insights_server(server_factory):
    return server_factory(
        extra_env={
            "OPENTRAIL_INSIGHTS_BASELINE_MINUTES": str(BASELINE_MINUTES),
            "OPENTRAIL_DELIVERY_INTERVAL_SECS": "1",
        }
    )


def minute_floor(t: dt.datetime) -> dt.datetime:
    return t.replace(second=0, microsecond=0)


def calls(event_name: str, source: str, user: str, start: dt.datetime, count: int, spread_s: int, **extra) -> list[dict]:
    return [
        otlib.cloudtrail_event(
            event_name,
            event_source=source,
            user=user,
            event_time=start + dt.timedelta(seconds=spread_s * i / max(count, 1)),
            **extra,
        )
        for i in range(count)
    ]


def baseline(spike_minute: dt.datetime) -> list[dict]:
    """Two writes and one error a minute for the 8 minutes before the spike minute."""
    records = []
    for minutes_before in range(8, 0, -1):
        start = spike_minute - dt.timedelta(minutes=minutes_before)
        records += calls("PutParameter", "ssm.amazonaws.com", "ci", start, 2, 50)
        records += calls(
            "GetSecretValue",
            "secretsmanager.amazonaws.com",
            "app",
            start,
            1,
            50,
            read_only=True,
            errorCode="AccessDenied",
            errorMessage="denied",
        )
    return records


def spikes(spike_minute: dt.datetime) -> list[dict]:
    """mallory writes 30 parameters and eve is refused 25 secrets, in one minute."""
    return calls("PutParameter", "ssm.amazonaws.com", "mallory", spike_minute, 30, 55) + calls(
        "GetSecretValue",
        "secretsmanager.amazonaws.com",
        "eve",
        spike_minute,
        25,
        55,
        read_only=True,
        errorCode="AccessDenied",
        errorMessage="denied",
    )


def insight_events(ct) -> list[dict]:
    return otlib.lookup_all(ct, EventCategory="insight")


def by_name(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e["EventName"] == name]


def wait_for_pairs(ct, names=("PutParameter", "GetSecretValue"), timeout: float = INSIGHT_WAIT_S) -> list[dict]:
    def both_pairs():
        found = insight_events(ct)
        return found if all(len(by_name(found, name)) >= 2 for name in names) else None

    return otlib.wait_for(both_pairs, timeout=timeout, interval=0.5, what="Insights Start/End pairs")


def enable_insights(srv: otlib.Server, trail: str) -> None:
    ct = srv.client()
    ct.create_trail(Name=trail, S3BucketName=f"{trail}-bucket")
    ct.start_logging(Name=trail)
    ct.put_insight_selectors(
        TrailName=trail,
        InsightSelectors=[{"InsightType": "ApiCallRateInsight"}, {"InsightType": "ApiErrorRateInsight"}],
    )


def attribution(record: dict, attribute: str) -> dict:
    for item in record["insightDetails"]["insightContext"]["attributions"]:
        if item["attribute"] == attribute:
            return item
    raise AssertionError(f"no {attribute} attribution in {record}")


def test_a_call_spike_and_an_error_spike_are_one_start_end_pair_each(server_factory):
    srv = insights_server(server_factory)
    enable_insights(srv, "insights-trail")
    spike_minute = minute_floor(otlib.utcnow()) - dt.timedelta(minutes=3)
    # One batch: the analysis reads history and burst together, as from an import.
    srv.ingest_ok(baseline(spike_minute) + spikes(spike_minute))
    ct = srv.client()
    found = wait_for_pairs(ct)

    for name, insight_type, principal in [
        ("PutParameter", "ApiCallRateInsight", "mallory"),
        ("GetSecretValue", "ApiErrorRateInsight", "eve"),
    ]:
        pair = by_name(found, name)
        assert len(pair) == 2, pair
        records = [json.loads(e["CloudTrailEvent"]) for e in pair]
        assert sorted(r["insightDetails"]["state"] for r in records) == ["End", "Start"]
        assert records[0]["sharedEventID"] == records[1]["sharedEventID"]
        for record in records:
            assert record["eventType"] == "AwsCloudTrailInsight"
            assert record["eventCategory"] == "Insight"
            assert "userIdentity" not in record
            details = record["insightDetails"]
            assert details["insightType"] == insight_type
            statistics = details["insightContext"]["statistics"]
            assert statistics["baselineDuration"] == BASELINE_MINUTES
            assert statistics["insight"]["average"] > statistics["baseline"]["average"]
            top = attribution(record, "userIdentityArn")["insight"][0]["value"]
            assert top.endswith(f":user/{principal}"), top
        if insight_type == "ApiErrorRateInsight":
            assert all(r["insightDetails"]["errorCode"] == "AccessDenied" for r in records)
            codes = attribution(records[0], "errorCode")["insight"]
            assert codes[0]["value"] == "AccessDenied"
        start = next(r for r in records if r["insightDetails"]["state"] == "Start")
        assert start["eventTime"] == spike_minute.strftime("%Y-%m-%dT%H:%M:%SZ")

    # Insights stay out of ordinary lookups, and filter by the attributes the model allows.
    ordinary = otlib.lookup_all(ct, LookupAttributes=[{"AttributeKey": "EventName", "AttributeValue": "PutParameter"}])
    assert all(json.loads(e["CloudTrailEvent"])["eventType"] != "AwsCloudTrailInsight" for e in ordinary)
    only_errors = otlib.lookup_all(
        ct,
        EventCategory="insight",
        LookupAttributes=[{"AttributeKey": "EventSource", "AttributeValue": "secretsmanager.amazonaws.com"}],
    )
    assert len(only_errors) == 2

    # The same pairs through the aws CLI.
    out = srv.aws("cloudtrail", "lookup-events", "--event-category", "insight", "--max-results", "50")
    assert sum(1 for e in json.loads(out.stdout)["Events"] if e["EventName"] == "PutParameter") == 2

    # The trail delivers them under CloudTrail-Insight, and not with the ordinary logs.
    bucket_root = srv.data_dir / "buckets" / "insights-trail-bucket"

    def insight_files():
        files = [p for p in bucket_root.rglob("*.json.gz") if "CloudTrail-Insight" in p.parts]
        ids = {r["eventID"] for p in files for r in json.loads(gzip.decompress(p.read_bytes()))["Records"]}
        return files if ids >= {json.loads(e["CloudTrailEvent"])["eventID"] for e in found} else None

    files = otlib.wait_for(insight_files, timeout=60, interval=0.5, what="Insights files in the bucket")
    for path in files:
        parts = path.relative_to(bucket_root).parts
        assert parts[:4] == ("AWSLogs", otlib.ACCOUNT_ID, "CloudTrail-Insight", otlib.REGION), parts
        assert f"_CloudTrail-Insight_{otlib.REGION}_" in path.name
    for path in bucket_root.rglob("*.json.gz"):
        if "CloudTrail" in path.parts:
            records = json.loads(gzip.decompress(path.read_bytes()))["Records"]
            assert all(r.get("eventType") != "AwsCloudTrailInsight" for r in records)


def test_list_insights_metric_data_returns_the_per_minute_series(server_factory):
    srv = insights_server(server_factory)
    enable_insights(srv, "metrics-trail")
    spike_minute = minute_floor(otlib.utcnow()) - dt.timedelta(minutes=3)
    srv.ingest_ok(baseline(spike_minute) + spikes(spike_minute))
    ct = srv.client()
    wait_for_pairs(ct)

    start = spike_minute - dt.timedelta(minutes=8)
    end = spike_minute + dt.timedelta(minutes=2)
    answer = ct.list_insights_metric_data(
        EventSource="ssm.amazonaws.com",
        EventName="PutParameter",
        InsightType="ApiCallRateInsight",
        StartTime=start,
        EndTime=end,
        Period=60,
        DataType="FillWithZeros",
    )
    assert answer["EventName"] == "PutParameter"
    assert len(answer["Timestamps"]) == len(answer["Values"]) == 10
    by_time = dict(zip(answer["Timestamps"], answer["Values"]))
    assert by_time[spike_minute.replace(tzinfo=dt.timezone.utc)] == 30.0
    assert by_time[(spike_minute - dt.timedelta(minutes=1)).replace(tzinfo=dt.timezone.utc)] == 2.0
    assert by_time[(spike_minute + dt.timedelta(minutes=1)).replace(tzinfo=dt.timezone.utc)] == 0.0

    errors = ct.list_insights_metric_data(
        EventSource="secretsmanager.amazonaws.com",
        EventName="GetSecretValue",
        InsightType="ApiErrorRateInsight",
        ErrorCode="AccessDenied",
        StartTime=start,
        EndTime=end,
        Period=300,
    )
    assert errors["ErrorCode"] == "AccessDenied"
    assert sum(errors["Values"]) == 8 + 25

    # Paging with MaxResults, as the CLI does with --max-items.
    first = ct.list_insights_metric_data(
        EventSource="ssm.amazonaws.com",
        EventName="PutParameter",
        InsightType="ApiCallRateInsight",
        StartTime=start,
        EndTime=end,
        Period=60,
        DataType="FillWithZeros",
        MaxResults=4,
    )
    assert len(first["Values"]) == 4 and "NextToken" in first
    out = srv.aws(
        "cloudtrail",
        "list-insights-metric-data",
        "--event-source",
        "ssm.amazonaws.com",
        "--event-name",
        "PutParameter",
        "--insight-type",
        "ApiCallRateInsight",
        "--start-time",
        otlib.iso(start),
        "--end-time",
        otlib.iso(end),
        "--period",
        "60",
    )
    assert 30.0 in json.loads(out.stdout)["Values"]

    # The model's rules, as modelled errors.
    for bad, message in [
        ({"InsightType": "ApiErrorRateInsight"}, "ErrorCode"),
        ({"InsightType": "ApiCallRateInsight", "Period": 120}, "Period"),
        ({"InsightType": "ApiCallRateInsight", "DataType": "Everything"}, "DataType"),
    ]:
        with pytest.raises(botocore.exceptions.ClientError) as error:
            ct.list_insights_metric_data(EventSource="ssm.amazonaws.com", EventName="PutParameter", **bad)
        assert error.value.response["Error"]["Code"] == "InvalidParameterException"
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert message in error.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as error:
        ct.list_insights_metric_data(
            EventSource="ssm.amazonaws.com",
            EventName="PutParameter",
            InsightType="ApiCallRateInsight",
            TrailName="no-such-trail",
        )
    assert error.value.response["Error"]["Code"] == "InvalidTrailNameException"


# The burst is live, so its minute and the next must end by the clock: up to 2.5 minutes.
@pytest.mark.timeout(360)
def test_the_baseline_survives_kill_9_and_no_period_is_reported_twice(server_factory):
    srv = insights_server(server_factory)
    enable_insights(srv, "durable-trail")
    this_minute = minute_floor(otlib.utcnow())
    srv.ingest_ok(baseline(this_minute))
    # Let the analysis take in the baseline, then kill it without a chance to save more.
    state = srv.data_dir / "insights" / "state.json"
    otlib.wait_for(state.exists, timeout=60, interval=0.3, what="an Insights snapshot")
    srv.kill()
    srv.start()
    # The burst happens now, live: its minute ends by the clock.
    now = otlib.utcnow()
    srv.ingest_ok(calls("PutParameter", "ssm.amazonaws.com", "mallory", now, 30, 0))
    ct = srv.client()
    found = wait_for_pairs(ct, names=("PutParameter",), timeout=240)
    pair = [json.loads(e["CloudTrailEvent"]) for e in by_name(found, "PutParameter")]
    assert len(pair) == 2
    top = attribution(pair[0], "userIdentityArn")["insight"][0]["value"]
    assert top.endswith(":user/mallory")
    # The baseline the restarted analysis judged against is the one from before the kill.
    assert pair[0]["insightDetails"]["insightContext"]["statistics"]["baseline"]["average"] > 0

    srv.kill()
    state.unlink()  # the worst case: the whole analysis is replayed from the log
    srv.start()
    ct = srv.client()
    otlib.wait_for(state.exists, timeout=60, interval=0.3, what="the replayed analysis")
    found = insight_events(ct)
    assert len(by_name(found, "PutParameter")) == 2


def test_insights_turned_on_later_find_the_periods_already_in_the_log(server_factory):
    srv = insights_server(server_factory)
    ct = srv.client()
    ct.create_trail(Name="later-trail", S3BucketName="later-bucket")
    ct.start_logging(Name="later-trail")
    spike_minute = minute_floor(otlib.utcnow()) - dt.timedelta(minutes=3)
    srv.ingest_ok(baseline(spike_minute) + spikes(spike_minute))
    # Without selectors nothing is analysed: no state, no cursor holding retention back.
    time.sleep(3)
    assert insight_events(ct) == []
    assert not (srv.data_dir / "insights" / "state.json").exists()
    # Turned on, the analysis reads the retained log from its start.
    ct.put_insight_selectors(TrailName="later-trail", InsightSelectors=[{"InsightType": "ApiCallRateInsight"}])
    found = wait_for_pairs(ct, names=("PutParameter",))
    assert len(by_name(found, "PutParameter")) == 2
    # Only the selected type is reported.
    assert by_name(found, "GetSecretValue") == []

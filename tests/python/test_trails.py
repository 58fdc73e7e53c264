"""The trail API with real clients: CreateTrail, GetTrail, DescribeTrails, ListTrails,
UpdateTrail, DeleteTrail, StartLogging, StopLogging, GetTrailStatus, Put/GetEventSelectors,
AddTags/ListTags/RemoveTags: shapes, defaults, error names and HTTP statuses (spec §2.2),
the eight invalid name forms, home-region rules, permissions and persistence.

Every test runs on its own server (trails are limited per region), with the default local
directory destination.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from botocore.exceptions import ClientError

import otlib

INVALID_NAMES = [
    ("ab", "too short"),
    ("a" * 129, "too long"),
    ("my trail", "a character outside [A-Za-z0-9._-]"),
    ("-trail", "starts with a symbol"),
    ("trail_", "ends with a symbol"),
    ("my-_namespace", "mixed adjacent symbols"),
    ("my--namespace", "repeated adjacent symbols"),
    ("192.168.5.4", "IP address format"),
]


@pytest.fixture
def srv(server_factory):
    return server_factory()


def error_of(excinfo) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def expect_error(call, code: str, status: int, **kwargs):
    with pytest.raises(ClientError) as e:
        call(**kwargs)
    assert error_of(e) == (code, status), e.value.response
    return e.value.response


def arn(name: str, region: str = otlib.REGION, account: str = otlib.ACCOUNT_ID) -> str:
    return f"arn:aws:cloudtrail:{region}:{account}:trail/{name}"


def test_create_trail_defaults_and_response_shape(srv):
    ct = srv.client()
    out = ct.create_trail(Name="main-trail", S3BucketName="audit-logs")
    assert out["Name"] == "main-trail"
    assert out["S3BucketName"] == "audit-logs"
    assert out["TrailARN"] == arn("main-trail")
    assert out["IncludeGlobalServiceEvents"] is True
    assert out["IsMultiRegionTrail"] is False
    assert out["LogFileValidationEnabled"] is False
    assert out["IsOrganizationTrail"] is False
    # Unset members are left out, not null.
    for absent in ("S3KeyPrefix", "SnsTopicName", "SnsTopicARN", "CloudWatchLogsLogGroupArn", "KmsKeyId"):
        assert absent not in out, out
    # The local destination's bucket folder exists.
    assert (srv.data_dir / "buckets" / "audit-logs").is_dir()

    trail = ct.get_trail(Name="main-trail")["Trail"]
    assert trail["HomeRegion"] == otlib.REGION
    assert trail["HasCustomEventSelectors"] is False
    assert trail["HasInsightSelectors"] is False
    assert trail["TrailARN"] == arn("main-trail")
    # By ARN too.
    assert ct.get_trail(Name=arn("main-trail"))["Trail"]["Name"] == "main-trail"

    status = ct.get_trail_status(Name="main-trail")
    assert status["IsLogging"] is False, "CreateTrail must not start logging"
    assert "StartLoggingTime" not in status

    raw = srv.json_call("CreateTrail", {"Name": "raw-trail", "S3BucketName": "audit-logs", "S3KeyPrefix": "p"})
    assert raw.status == 200, raw
    assert raw.json["S3KeyPrefix"] == "p"
    assert raw.header("content-type") == otlib.JSON_11


@pytest.mark.parametrize("name,why", INVALID_NAMES, ids=[why for _, why in INVALID_NAMES])
def test_the_eight_invalid_trail_name_forms(srv, name, why):
    ct = srv.client()
    expect_error(ct.create_trail, "InvalidTrailNameException", 400, Name=name, S3BucketName="audit-logs")
    expect_error(ct.get_trail, "InvalidTrailNameException", 400, Name=name)
    # The aws CLI reports the same error name.
    # `--name=VALUE`, so a name starting with '-' is not read as an option.
    result = srv.aws("cloudtrail", "create-trail", f"--name={name}", "--s3-bucket-name", "audit-logs")
    assert result.code != 0, result
    assert "InvalidTrailNameException" in result.stderr, result


def test_valid_name_edges_are_accepted(srv):
    ct = srv.client()
    for name in ["abc", "A" * 128, "my.trail_name-1", "192.168.5.4x"]:
        assert ct.create_trail(Name=name, S3BucketName="audit-logs")["Name"] == name
        ct.delete_trail(Name=name)


def test_malformed_trail_arn(srv):
    ct = srv.client()
    for bad in [
        "arn:aws:cloudtrail:us-east-1:1234:trail/main-trail",
        "arn:aws:cloudtrail:us-east-1:111122223333:channel/abc",
        "arn:aws:s3:us-east-1:111122223333:trail/main-trail",
    ]:
        expect_error(ct.get_trail, "CloudTrailARNInvalidException", 400, Name=bad)


def test_trail_not_found_is_404_everywhere(srv):
    ct = srv.client()
    for call, kwargs in [
        (ct.get_trail, {"Name": "missing-trail"}),
        (ct.get_trail_status, {"Name": "missing-trail"}),
        (ct.delete_trail, {"Name": "missing-trail"}),
        (ct.start_logging, {"Name": "missing-trail"}),
        (ct.stop_logging, {"Name": arn("missing-trail")}),
        (ct.update_trail, {"Name": "missing-trail", "S3KeyPrefix": "x"}),
        (ct.get_event_selectors, {"TrailName": "missing-trail"}),
        (ct.put_event_selectors, {"TrailName": "missing-trail", "EventSelectors": [{"ReadWriteType": "All"}]}),
    ]:
        response = expect_error(call, "TrailNotFoundException", 404, **kwargs)
        assert "missing-trail" in response["Error"]["Message"]
    result = srv.aws("cloudtrail", "get-trail-status", "--name", "missing-trail")
    assert result.code != 0 and "TrailNotFoundException" in result.stderr, result


def test_duplicate_names_and_the_per_region_limit(server_factory):
    srv = server_factory(extra_env={"OPENTRAIL_TRAILS_PER_REGION_MAX": "2"})
    ct = srv.client()
    ct.create_trail(Name="first-trail", S3BucketName="audit-logs")
    expect_error(ct.create_trail, "TrailAlreadyExistsException", 400, Name="first-trail", S3BucketName="audit-logs")
    ct.create_trail(Name="second-trail", S3BucketName="audit-logs")
    expect_error(
        ct.create_trail, "MaximumNumberOfTrailsExceededException", 403, Name="third-trail", S3BucketName="audit-logs"
    )
    # Another region has its own quota.
    eu = srv.client(region="eu-west-1")
    eu.create_trail(Name="third-trail", S3BucketName="audit-logs")
    ct.delete_trail(Name="second-trail")
    ct.create_trail(Name="fourth-trail", S3BucketName="audit-logs")


def test_parameter_validation_errors(srv):
    ct = srv.client()
    base = {"Name": "checked-trail", "S3BucketName": "audit-logs"}
    expect_error(ct.create_trail, "InvalidS3PrefixException", 400, **base, S3KeyPrefix="p" * 201)
    ct.create_trail(**{**base, "Name": "prefix-200"}, S3KeyPrefix="p" * 200)
    expect_error(ct.create_trail, "InvalidS3PrefixException", 400, **base, S3KeyPrefix="/leading")
    expect_error(ct.create_trail, "InvalidS3BucketNameException", 400, Name="checked-trail", S3BucketName="Bad_Bucket")
    expect_error(ct.create_trail, "InvalidSnsTopicNameException", 400, **base, SnsTopicName="bad topic!")
    # A topic without a configured webhook cannot be delivered to.
    expect_error(ct.create_trail, "InsufficientSnsTopicPolicyException", 403, **base, SnsTopicName="unmapped-topic")
    expect_error(
        ct.create_trail,
        "InvalidCloudWatchLogsLogGroupArnException",
        400,
        **base,
        CloudWatchLogsLogGroupArn="not-an-arn",
    )
    expect_error(
        ct.create_trail,
        "InvalidCloudWatchLogsLogGroupArnException",
        400,
        **base,
        CloudWatchLogsLogGroupArn="arn:aws:logs:us-east-1:111122223333:log-group:unmapped:*",
    )
    expect_error(ct.create_trail, "UnsupportedOperationException", 400, **base, KmsKeyId="alias/MyKey")
    expect_error(ct.create_trail, "OrganizationsNotInUseException", 404, **base, IsOrganizationTrail=True)
    expect_error(
        ct.create_trail,
        "TagsLimitExceededException",
        400,
        **base,
        TagsList=[{"Key": f"k{i}", "Value": "v"} for i in range(51)],
    )
    # Nothing was created by the failed calls.
    assert [t["Name"] for t in ct.list_trails()["Trails"]] == ["prefix-200"]


def test_describe_trails_lower_case_members_and_shadow_trails(srv):
    us = srv.client()
    eu = srv.client(region="eu-west-1")
    us.create_trail(Name="global-trail", S3BucketName="audit-logs", IsMultiRegionTrail=True)
    us.create_trail(Name="local-trail", S3BucketName="audit-logs")
    eu.create_trail(Name="eu-trail", S3BucketName="audit-logs")

    home = {t["Name"]: t for t in us.describe_trails()["trailList"]}
    assert set(home) == {"global-trail", "local-trail"}
    # In eu-west-1 the multi-region trail appears as a shadow trail, unless excluded.
    in_eu = {t["Name"]: t for t in eu.describe_trails()["trailList"]}
    assert set(in_eu) == {"global-trail", "eu-trail"}
    assert in_eu["global-trail"]["HomeRegion"] == "us-east-1"
    assert in_eu["global-trail"]["IsMultiRegionTrail"] is True
    no_shadow = eu.describe_trails(includeShadowTrails=False)["trailList"]
    assert [t["Name"] for t in no_shadow] == ["eu-trail"]
    # Names resolve in the current region only; other regions' trails by ARN.
    assert eu.describe_trails(trailNameList=["local-trail"])["trailList"] == []
    by_arn = eu.describe_trails(trailNameList=[arn("local-trail")])["trailList"]
    assert [t["Name"] for t in by_arn] == ["local-trail"]
    # The wire members are lower-case.
    raw = srv.json_call("DescribeTrails", {"trailNameList": ["local-trail"], "includeShadowTrails": False})
    assert raw.status == 200, raw
    assert list(raw.json) == ["trailList"]
    assert raw.json["trailList"][0]["Name"] == "local-trail"
    cli = srv.aws("cloudtrail", "describe-trails", "--no-include-shadow-trails")
    assert cli.code == 0, cli
    assert {t["Name"] for t in cli.json["trailList"]} == {"global-trail", "local-trail"}

    listed = us.list_trails()["Trails"]
    assert {(t["Name"], t["HomeRegion"], t["TrailARN"]) for t in listed} == {
        ("global-trail", "us-east-1", arn("global-trail")),
        ("local-trail", "us-east-1", arn("local-trail")),
        ("eu-trail", "eu-west-1", arn("eu-trail", region="eu-west-1")),
    }
    paginated = [t["Name"] for page in us.get_paginator("list_trails").paginate() for t in page["Trails"]]
    assert sorted(paginated) == sorted(t["Name"] for t in listed)


def test_changes_must_happen_in_the_home_region(srv):
    us = srv.client()
    eu = srv.client(region="eu-west-1")
    us.create_trail(Name="global-trail", S3BucketName="audit-logs", IsMultiRegionTrail=True)
    # Reading a shadow trail is fine.
    assert eu.get_trail(Name="global-trail")["Trail"]["HomeRegion"] == "us-east-1"
    assert eu.get_trail_status(Name=arn("global-trail"))["IsLogging"] is False
    for call, kwargs in [
        (eu.update_trail, {"Name": "global-trail", "S3KeyPrefix": "x"}),
        (eu.delete_trail, {"Name": "global-trail"}),
        (eu.start_logging, {"Name": arn("global-trail")}),
        (eu.stop_logging, {"Name": "global-trail"}),
        (eu.put_event_selectors, {"TrailName": "global-trail", "EventSelectors": [{"ReadWriteType": "All"}]}),
    ]:
        expect_error(call, "InvalidHomeRegionException", 400, **kwargs)


def test_update_trail(srv):
    ct = srv.client()
    ct.create_trail(Name="updatable", S3BucketName="audit-logs", S3KeyPrefix="old")
    out = ct.update_trail(Name="updatable", S3KeyPrefix="new/prefix", S3BucketName="other-bucket", IncludeGlobalServiceEvents=False)
    assert out["S3KeyPrefix"] == "new/prefix"
    assert out["S3BucketName"] == "other-bucket"
    assert out["IncludeGlobalServiceEvents"] is False
    assert (srv.data_dir / "buckets" / "other-bucket").is_dir()
    # An empty string clears an optional setting.
    cleared = ct.update_trail(Name=arn("updatable"), S3KeyPrefix="")
    assert "S3KeyPrefix" not in cleared
    assert "S3KeyPrefix" not in ct.get_trail(Name="updatable")["Trail"]
    expect_error(ct.update_trail, "InvalidS3PrefixException", 400, Name="updatable", S3KeyPrefix="a//b")
    cli = srv.aws("cloudtrail", "update-trail", "--name", "updatable", "--is-multi-region-trail")
    assert cli.code == 0, cli
    assert cli.json["IsMultiRegionTrail"] is True


def test_start_stop_logging_and_status(srv):
    ct = srv.client()
    ct.create_trail(Name="logger", S3BucketName="audit-logs")
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=2)
    assert ct.start_logging(Name="logger")["ResponseMetadata"]["HTTPStatusCode"] == 200
    status = ct.get_trail_status(Name="logger")
    assert status["IsLogging"] is True
    assert status["StartLoggingTime"] >= before
    assert status["TimeLoggingStarted"].endswith("Z")
    assert "StopLoggingTime" not in status
    # Starting again is harmless.
    ct.start_logging(Name=arn("logger"))
    ct.stop_logging(Name="logger")
    status = ct.get_trail_status(Name="logger")
    assert status["IsLogging"] is False
    assert status["StopLoggingTime"] >= status["StartLoggingTime"]
    assert status["TimeLoggingStopped"].endswith("Z")
    raw = srv.json_call("GetTrailStatus", {"Name": "logger"})
    assert isinstance(raw.json["StartLoggingTime"], (int, float)), "timestamps are epoch-second numbers"
    cli = srv.aws("cloudtrail", "get-trail-status", "--name", "logger")
    assert cli.code == 0 and cli.json["IsLogging"] is False, cli


def test_event_selectors_basic_and_advanced(srv):
    ct = srv.client()
    ct.create_trail(Name="selective", S3BucketName="audit-logs")
    default = ct.get_event_selectors(TrailName="selective")
    assert default["TrailARN"] == arn("selective")
    assert default["EventSelectors"] == [
        {"ReadWriteType": "All", "IncludeManagementEvents": True, "DataResources": [], "ExcludeManagementEventSources": []}
    ]
    assert "AdvancedEventSelectors" not in default

    basic = [
        {
            "ReadWriteType": "WriteOnly",
            "IncludeManagementEvents": True,
            "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::audit-bucket/"]}],
            "ExcludeManagementEventSources": ["kms.amazonaws.com"],
        }
    ]
    put = ct.put_event_selectors(TrailName="selective", EventSelectors=basic)
    assert put["EventSelectors"] == basic
    assert ct.get_event_selectors(TrailName=arn("selective"))["EventSelectors"] == basic
    assert ct.get_trail(Name="selective")["Trail"]["HasCustomEventSelectors"] is True

    advanced = [
        {
            "Name": "writes except deletes",
            "FieldSelectors": [
                {"Field": "eventCategory", "Equals": ["Management"]},
                {"Field": "readOnly", "Equals": ["false"]},
                {"Field": "eventName", "NotStartsWith": ["Delete"], "NotEndsWith": ["Tag"]},
                {"Field": "eventSource", "StartsWith": ["ec2."], "EndsWith": [".amazonaws.com"], "NotEquals": ["x.amazonaws.com"]},
            ],
        }
    ]
    put = ct.put_event_selectors(TrailName="selective", AdvancedEventSelectors=advanced)
    assert put["AdvancedEventSelectors"] == advanced
    got = ct.get_event_selectors(TrailName="selective")
    assert got["AdvancedEventSelectors"] == advanced
    assert "EventSelectors" not in got, "writing one kind replaces the other"

    cli = srv.aws(
        "cloudtrail", "put-event-selectors", "--trail-name", "selective",
        "--event-selectors", json.dumps([{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": True}]),
    )
    assert cli.code == 0, cli
    assert cli.json["EventSelectors"][0]["ReadWriteType"] == "ReadOnly"
    cli = srv.aws("cloudtrail", "get-event-selectors", "--trail-name", "selective")
    assert cli.code == 0 and "AdvancedEventSelectors" not in cli.json, cli


@pytest.mark.parametrize(
    "params",
    [
        {"EventSelectors": [{"ReadWriteType": "All"}], "AdvancedEventSelectors": [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}]},
        {},
        {"EventSelectors": []},
        {"EventSelectors": [{"ReadWriteType": "All"}] * 6},
        {"EventSelectors": [{"ReadWriteType": "read-only"}]},
        {"EventSelectors": [{"DataResources": [{"Type": "AWS::EC2::Instance", "Values": ["arn:aws:ec2"]}]}]},
        {"EventSelectors": [{"DataResources": [{"Type": "AWS::S3::Object", "Values": [f"arn:aws:s3:::b{i}/" for i in range(251)]}]}]},
        {"EventSelectors": [{"ExcludeManagementEventSources": ["ec2.amazonaws.com"]}]},
        {"AdvancedEventSelectors": [{"FieldSelectors": [{"Field": "eventName", "Equals": ["RunInstances"]}]}]},
        {"AdvancedEventSelectors": [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]}]}]},
        {"AdvancedEventSelectors": [{"FieldSelectors": [{"Field": "eventCategory", "StartsWith": ["Manage"]}]}]},
        {"AdvancedEventSelectors": [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}, {"Field": "noSuchField", "Equals": ["x"]}]}]},
        {"AdvancedEventSelectors": [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}, {"Field": "readOnly", "Equals": ["yes"]}]}]},
        {"AdvancedEventSelectors": [{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}, {"Field": "eventName", "Equals": [f"E{i}" for i in range(500)]}]}]},
    ],
    ids=[
        "both-kinds", "neither", "empty-basic", "six-selectors", "bad-read-write-type", "non-basic-type",
        "251-data-resources", "bad-excluded-source", "no-event-category", "data-without-resource-type",
        "starts-with-on-equals-only-field", "unknown-field", "bad-read-only-value", "501-condition-values",
    ],
)
def test_invalid_event_selectors(srv, params):
    srv.client().create_trail(Name="selective", S3BucketName="audit-logs")
    r = srv.json_call("PutEventSelectors", {"TrailName": "selective", **params})
    assert (r.status, r.error_code) == (400, "InvalidEventSelectorsException"), r


def test_tags(srv):
    ct = srv.client()
    ct.create_trail(Name="tagged", S3BucketName="audit-logs", TagsList=[{"Key": "team", "Value": "security"}])
    ct.create_trail(Name="untagged", S3BucketName="audit-logs")
    listed = ct.list_tags(ResourceIdList=[arn("tagged"), arn("untagged")])["ResourceTagList"]
    assert listed == [
        {"ResourceId": arn("tagged"), "TagsList": [{"Key": "team", "Value": "security"}]},
        {"ResourceId": arn("untagged"), "TagsList": []},
    ]
    ct.add_tags(ResourceId=arn("tagged"), TagsList=[{"Key": "team", "Value": "audit"}, {"Key": "env"}])
    tags = ct.list_tags(ResourceIdList=[arn("tagged")])["ResourceTagList"][0]["TagsList"]
    assert tags == [{"Key": "team", "Value": "audit"}, {"Key": "env"}]
    ct.remove_tags(ResourceId=arn("tagged"), TagsList=[{"Key": "team"}])
    tags = ct.list_tags(ResourceIdList=[arn("tagged")])["ResourceTagList"][0]["TagsList"]
    assert tags == [{"Key": "env"}]
    expect_error(
        ct.add_tags,
        "TagsLimitExceededException",
        400,
        ResourceId=arn("tagged"),
        TagsList=[{"Key": f"k{i}", "Value": "v"} for i in range(50)],
    )
    expect_error(ct.add_tags, "ResourceNotFoundException", 400, ResourceId=arn("nobody-here"), TagsList=[{"Key": "a"}])
    expect_error(ct.list_tags, "ResourceNotFoundException", 400, ResourceIdList=[arn("nobody-here")])
    expect_error(ct.add_tags, "CloudTrailARNInvalidException", 400, ResourceId="tagged", TagsList=[{"Key": "a"}])
    expect_error(
        ct.add_tags,
        "ResourceTypeNotSupportedException",
        400,
        ResourceId="arn:aws:cloudtrail:us-east-1:111122223333:eventdatastore/abc",
        TagsList=[{"Key": "a"}],
    )
    cli = srv.aws("cloudtrail", "add-tags", "--resource-id", arn("tagged"), "--tags-list", "Key=owner,Value=alice")
    assert cli.code == 0, cli
    cli = srv.aws("cloudtrail", "list-tags", "--resource-id-list", arn("tagged"))
    assert cli.code == 0, cli
    assert {"Key": "owner", "Value": "alice"} in cli.json["ResourceTagList"][0]["TagsList"]
    cli = srv.aws("cloudtrail", "remove-tags", "--resource-id", arn("tagged"), "--tags-list", "Key=owner")
    assert cli.code == 0, cli


def test_permissions_and_account_isolation(srv):
    ct = srv.client()
    ct.create_trail(Name="guarded", S3BucketName="audit-logs")
    reader = srv.create_key("read")
    rc = srv.client(reader)
    assert rc.get_trail(Name="guarded")["Trail"]["Name"] == "guarded"
    assert [t["Name"] for t in rc.describe_trails()["trailList"]] == ["guarded"]
    assert [t["Name"] for t in rc.list_trails()["Trails"]] == ["guarded"]
    assert rc.get_trail_status(Name="guarded")["IsLogging"] is False
    assert rc.get_event_selectors(TrailName="guarded")["TrailARN"] == arn("guarded")
    assert rc.list_tags(ResourceIdList=[arn("guarded")])["ResourceTagList"][0]["TagsList"] == []
    for call, kwargs in [
        (rc.create_trail, {"Name": "reader-trail", "S3BucketName": "audit-logs"}),
        (rc.start_logging, {"Name": "guarded"}),
        (rc.stop_logging, {"Name": "guarded"}),
        (rc.update_trail, {"Name": "guarded", "S3KeyPrefix": "x"}),
        (rc.delete_trail, {"Name": "guarded"}),
        (rc.put_event_selectors, {"TrailName": "guarded", "EventSelectors": [{"ReadWriteType": "All"}]}),
        (rc.add_tags, {"ResourceId": arn("guarded"), "TagsList": [{"Key": "a"}]}),
        (rc.remove_tags, {"ResourceId": arn("guarded"), "TagsList": [{"Key": "a"}]}),
    ]:
        expect_error(call, "AccessDeniedException", 403, **kwargs)
    ingester = srv.create_key("ingest")
    expect_error(srv.client(ingester).describe_trails, "AccessDeniedException", 403)

    # Another account's admin sees none of these trails and cannot name them.
    other = srv.create_key("admin", account=otlib.OTHER_ACCOUNT_ID)
    oc = srv.client(other)
    assert oc.describe_trails()["trailList"] == []
    assert oc.list_trails()["Trails"] == []
    expect_error(oc.get_trail, "TrailNotFoundException", 404, Name=arn("guarded"))
    expect_error(oc.delete_trail, "TrailNotFoundException", 404, Name=arn("guarded"))
    # Its own trail of the same name lives in its own account.
    made = oc.create_trail(Name="guarded", S3BucketName="other-logs")
    assert made["TrailARN"] == arn("guarded", account=otlib.OTHER_ACCOUNT_ID)
    assert [t["TrailARN"] for t in ct.list_trails()["Trails"]] == [arn("guarded")]


def test_delete_trail(srv):
    ct = srv.client()
    ct.create_trail(Name="doomed", S3BucketName="audit-logs")
    ct.start_logging(Name="doomed")
    assert ct.delete_trail(Name="doomed")["ResponseMetadata"]["HTTPStatusCode"] == 200
    expect_error(ct.get_trail, "TrailNotFoundException", 404, Name="doomed")
    # The name is free again.
    ct.create_trail(Name="doomed", S3BucketName="audit-logs")
    assert ct.get_trail_status(Name="doomed")["IsLogging"] is False


def test_aws_cli_trail_lifecycle(srv):
    def aws(*args):
        result = srv.aws("cloudtrail", *args)
        assert result.code == 0, result
        return result.json

    created = aws("create-trail", "--name", "cli-trail", "--s3-bucket-name", "audit-logs", "--s3-key-prefix", "cli",
                  "--is-multi-region-trail", "--tags-list", "Key=team,Value=sec")
    assert created["TrailARN"] == arn("cli-trail") and created["IsMultiRegionTrail"] is True
    assert aws("get-trail", "--name", "cli-trail")["Trail"]["S3KeyPrefix"] == "cli"
    assert [t["Name"] for t in aws("describe-trails", "--trail-name-list", "cli-trail")["trailList"]] == ["cli-trail"]
    assert aws("list-trails")["Trails"][0]["Name"] == "cli-trail"
    srv.aws("cloudtrail", "start-logging", "--name", "cli-trail")
    assert aws("get-trail-status", "--name", "cli-trail")["IsLogging"] is True
    advanced = [{"Name": "mgmt", "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}]
    put = aws("put-event-selectors", "--trail-name", "cli-trail", "--advanced-event-selectors", json.dumps(advanced))
    assert put["AdvancedEventSelectors"] == advanced
    assert aws("get-event-selectors", "--trail-name", "cli-trail")["AdvancedEventSelectors"] == advanced
    assert aws("list-tags", "--resource-id-list", arn("cli-trail"))["ResourceTagList"][0]["TagsList"] == [
        {"Key": "team", "Value": "sec"}
    ]
    srv.aws("cloudtrail", "stop-logging", "--name", "cli-trail")
    assert aws("get-trail-status", "--name", arn("cli-trail"))["IsLogging"] is False
    assert aws("update-trail", "--name", "cli-trail", "--no-include-global-service-events")["IncludeGlobalServiceEvents"] is False
    deleted = srv.aws("cloudtrail", "delete-trail", "--name", "cli-trail")
    assert deleted.code == 0, deleted
    missing = srv.aws("cloudtrail", "get-trail", "--name", "cli-trail")
    assert missing.code != 0 and "TrailNotFoundException" in missing.stderr, missing
    denied = srv.aws("cloudtrail", "create-trail", "--name", "cli-trail", "--s3-bucket-name", "x")
    assert denied.code != 0 and "InvalidS3BucketNameException" in denied.stderr, denied


def test_trails_persist_across_restart(srv):
    ct = srv.client()
    ct.create_trail(Name="durable-trail", S3BucketName="audit-logs", S3KeyPrefix="keep",
                    TagsList=[{"Key": "k", "Value": "v"}])
    ct.start_logging(Name="durable-trail")
    ct.put_event_selectors(TrailName="durable-trail", EventSelectors=[{"ReadWriteType": "WriteOnly"}])
    srv.restart()
    ct = srv.client()
    trail = ct.get_trail(Name="durable-trail")["Trail"]
    assert trail["S3KeyPrefix"] == "keep" and trail["HasCustomEventSelectors"] is True
    assert ct.get_trail_status(Name="durable-trail")["IsLogging"] is True
    assert ct.get_event_selectors(TrailName="durable-trail")["EventSelectors"][0]["ReadWriteType"] == "WriteOnly"
    assert ct.list_tags(ResourceIdList=[arn("durable-trail")])["ResourceTagList"][0]["TagsList"] == [{"Key": "k", "Value": "v"}]

"""CloudTrail Lake from the real boto3 and aws CLI: event data stores, SQL queries over
them, their statuses, statistics, results, errors and limits.

Each module-level server is fresh, so counts are exact. Queries are polled until they end
(bounded waits, no timing asserted)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from botocore.exceptions import ClientError

import otlib
from otlib import wait_for

ENDED = {"FINISHED", "FAILED", "CANCELLED", "TIMED_OUT"}
# A recursion without end: it runs until cancelled or timed out.
ENDLESS = (
    "WITH RECURSIVE forever AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM forever) "
    "SELECT count(*) AS n FROM forever CROSS JOIN (SELECT count(*) AS c FROM {id}) events"
)


def _error(call, **params) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as caught:
        call(**params)
    response = caught.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"].get("Message", ""),
    )


def _wait_ended(client, query_id: str, timeout: float = 120) -> dict:
    return wait_for(
        lambda: (lambda d: d if d["QueryStatus"] in ENDED else None)(client.describe_query(QueryId=query_id)),
        timeout=timeout,
        interval=0.2,
        what=f"query {query_id} to end",
    )


def _rows(client, query_id: str, page_size: int = 1000) -> list[list[dict]]:
    rows: list[list[dict]] = []
    kwargs = {"QueryId": query_id, "MaxQueryResults": page_size}
    while True:
        page = client.get_query_results(**kwargs)
        assert page["QueryStatus"] == "FINISHED", page
        rows.extend(page["QueryResultRows"])
        if not page.get("NextToken"):
            return rows
        kwargs["NextToken"] = page["NextToken"]


def _run(client, statement: str) -> tuple[dict, list[list[dict]]]:
    query_id = client.start_query(QueryStatement=statement)["QueryId"]
    described = _wait_ended(client, query_id)
    assert described["QueryStatus"] == "FINISHED", described
    return described, _rows(client, query_id)


def _events(marker: str, count: int, when: dt.datetime, **kw) -> list[dict]:
    return [
        otlib.cloudtrail_event(f"{marker}{index % 3}", event_time=when + dt.timedelta(seconds=index), **kw)
        for index in range(count)
    ]


@pytest.fixture(scope="module")
def lake_server(tmp_path_factory):
    server = otlib.Server(otlib.opentrail_bin(), tmp_path_factory.mktemp("lake") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def store_id(lake_server) -> str:
    created = lake_server.client().create_event_data_store(
        Name="everything", TerminationProtectionEnabled=False, RetentionPeriod=3653
    )
    return created["EventDataStoreArn"].rsplit("/", 1)[1]


def test_an_event_data_store_goes_through_its_lifecycle_with_cloudtrails_defaults(lake_server):
    client = lake_server.client()
    created = client.create_event_data_store(Name="audit-lifecycle", TagsList=[{"Key": "team", "Value": "sec"}])
    arn = created["EventDataStoreArn"]
    assert arn.startswith(f"arn:aws:cloudtrail:us-east-1:{otlib.ACCOUNT_ID}:eventdatastore/"), arn
    store_id = arn.rsplit("/", 1)[1]
    assert created["Status"] == "ENABLED"
    assert created["RetentionPeriod"] == 366
    assert created["TerminationProtectionEnabled"] is True
    assert created["MultiRegionEnabled"] is True
    assert created["BillingMode"] == "EXTENDABLE_RETENTION_PRICING"
    assert created["TagsList"] == [{"Key": "team", "Value": "sec"}]
    assert created["AdvancedEventSelectors"] == [
        {
            "Name": "Default management events",
            "FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}],
        }
    ]
    assert isinstance(created["CreatedTimestamp"], dt.datetime)

    by_id = client.get_event_data_store(EventDataStore=store_id)
    assert by_id["EventDataStoreArn"] == arn and by_id["Name"] == "audit-lifecycle"

    code, status, _ = _error(client.create_event_data_store, Name="audit-lifecycle")
    assert (code, status) == ("EventDataStoreAlreadyExistsException", 400)

    code, status, message = _error(client.delete_event_data_store, EventDataStore=arn)
    assert (code, status) == ("EventDataStoreTerminationProtectedException", 400), message

    updated = client.update_event_data_store(
        EventDataStore=arn, Name="audit-renamed", RetentionPeriod=30, TerminationProtectionEnabled=False
    )
    assert (updated["Name"], updated["RetentionPeriod"], updated["TerminationProtectionEnabled"]) == (
        "audit-renamed",
        30,
        False,
    )
    client.delete_event_data_store(EventDataStore=arn)
    assert client.get_event_data_store(EventDataStore=arn)["Status"] == "PENDING_DELETION"
    code, _, _ = _error(client.start_query, QueryStatement=f"SELECT count(*) FROM {store_id}")
    assert code == "InactiveEventDataStoreException"
    code, _, _ = _error(client.update_event_data_store, EventDataStore=arn, RetentionPeriod=40)
    assert code == "InactiveEventDataStoreException"

    restored = client.restore_event_data_store(EventDataStore=arn)
    assert restored["Status"] == "ENABLED"
    code, _, _ = _error(client.restore_event_data_store, EventDataStore=arn)
    assert code == "InvalidEventDataStoreStatusException"


def test_event_data_store_requests_are_checked_as_the_model_says(lake_server):
    client = lake_server.client()
    cases = [
        (client.create_event_data_store, {"Name": "not a name!"}, "InvalidParameterException", 400),
        (client.create_event_data_store, {"Name": "long-retention", "RetentionPeriod": 3654}, "InvalidParameterException", 400),
        (
            client.create_event_data_store,
            {"Name": "fixed-too-long", "RetentionPeriod": 3000, "BillingMode": "FIXED_RETENTION_PRICING"},
            "InvalidParameterException",
            400,
        ),
        (
            client.create_event_data_store,
            {
                "Name": "bad-selectors",
                "AdvancedEventSelectors": [{"FieldSelectors": [{"Field": "eventName", "Equals": ["x"]}]}],
            },
            "InvalidEventSelectorsException",
            400,
        ),
        (
            client.get_event_data_store,
            {"EventDataStore": "0f6f0d6e-7a4f-4f57-9d55-4d1a1b2c3d4e"},
            "EventDataStoreNotFoundException",
            404,
        ),
        (
            client.get_event_data_store,
            {"EventDataStore": f"arn:aws:cloudtrail:us-east-1:{otlib.ACCOUNT_ID}:trail/t1"},
            "EventDataStoreARNInvalidException",
            400,
        ),
        (client.list_event_data_stores, {"MaxResults": 1001}, "InvalidMaxResultsException", 400),
        (client.describe_query, {"QueryId": "0f6f0d6e-7a4f-4f57-9d55-4d1a1b2c3d4e"}, "QueryIdNotFoundException", 404),
        (client.cancel_query, {"QueryId": "0f6f0d6e-7a4f-4f57-9d55-4d1a1b2c3d4e"}, "QueryIdNotFoundException", 404),
    ]
    for call, params, code, status in cases:
        got_code, got_status, message = _error(call, **params)
        assert (got_code, got_status) == (code, status), (call.__name__, params, message)
        assert message, (call.__name__, params)


def test_a_read_key_may_query_but_not_create_and_another_account_sees_nothing(lake_server, store_id):
    reader = lake_server.create_key("read")
    code, status, _ = _error(lake_server.client(reader).create_event_data_store, Name="not-allowed")
    assert (code, status) == ("AccessDeniedException", 403)
    assert lake_server.client(reader).get_event_data_store(EventDataStore=store_id)["Name"] == "everything"

    stranger = lake_server.client(lake_server.create_key("admin", account=otlib.OTHER_ACCOUNT_ID))
    code, status, _ = _error(stranger.get_event_data_store, EventDataStore=store_id)
    assert (code, status) == ("EventDataStoreNotFoundException", 404)
    code, status, _ = _error(stranger.start_query, QueryStatement=f"SELECT count(*) FROM {store_id}")
    assert (code, status) == ("EventDataStoreNotFoundException", 404)
    assert all(s["Name"] != "everything" for s in stranger.list_event_data_stores()["EventDataStores"])


def test_list_event_data_stores_pages_through_every_store(lake_server, store_id):
    client = lake_server.client()
    client.create_event_data_store(Name="listed-one", TerminationProtectionEnabled=False)
    client.create_event_data_store(Name="listed-two", TerminationProtectionEnabled=False)
    names, kwargs = [], {"MaxResults": 1}
    while True:
        page = client.list_event_data_stores(**kwargs)
        assert len(page["EventDataStores"]) <= 1
        names.extend(store["Name"] for store in page["EventDataStores"])
        if "NextToken" not in page:
            break
        kwargs["NextToken"] = page["NextToken"]
    assert {"everything", "listed-one", "listed-two"} <= set(names)
    assert len(names) == len(set(names))


def test_a_query_counts_the_events_and_reports_its_statistics(lake_server, store_id):
    client = lake_server.client()
    marker = otlib.uniq("LakeCount")
    lake_server.ingest_ok(_events(marker, 9, otlib.new_window()))
    statement = (
        f"SELECT eventName, COUNT(*) AS n FROM {store_id} "
        f"WHERE eventName LIKE '{marker}%' GROUP BY eventName ORDER BY eventName"
    )
    described, rows = _run(client, statement)
    assert rows == [[{"eventname": f"{marker}{k}"}, {"n": "3"}] for k in range(3)]
    assert described["QueryString"] == statement
    statistics = described["QueryStatistics"]
    assert statistics["EventsMatched"] == 9, statistics
    assert statistics["EventsScanned"] >= 9, statistics
    assert statistics["BytesScanned"] > 0, statistics
    assert statistics["ExecutionTimeInMillis"] >= 0
    assert isinstance(statistics["CreationTime"], dt.datetime)

    listed = client.list_queries(EventDataStore=store_id)["Queries"]
    assert described["QueryId"] in [query["QueryId"] for query in listed]
    finished = client.list_queries(EventDataStore=store_id, QueryStatus="FINISHED")["Queries"]
    assert all(query["QueryStatus"] == "FINISHED" for query in finished)
    code, _, _ = _error(client.list_queries, EventDataStore=store_id, QueryStatus="DONE")
    assert code == "InvalidQueryStatusException"
    code, _, _ = _error(client.cancel_query, QueryId=described["QueryId"])
    assert code == "InactiveQueryException"


def test_an_acknowledged_event_is_counted_by_the_next_query(lake_server, store_id):
    client = lake_server.client()
    marker = otlib.uniq("LakeFresh")
    for expected in (1, 2, 3):
        lake_server.ingest_ok([otlib.cloudtrail_event(marker, event_time=otlib.utcnow())])
        _, rows = _run(client, f"SELECT count(*) AS n FROM {store_id} WHERE eventname = '{marker}'")
        assert rows == [[{"n": str(expected)}]]


def test_results_page_in_order_and_values_are_strings(lake_server, store_id):
    client = lake_server.client()
    marker = otlib.uniq("LakePage")
    when = otlib.new_window()
    lake_server.ingest_ok(
        [otlib.cloudtrail_event(f"{marker}{i:02d}", event_time=when, read_only=(i % 2 == 0)) for i in range(7)]
    )
    query_id = client.start_query(
        QueryStatement=(
            f"SELECT eventname, readonly, useridentity.username AS who, eventtime FROM {store_id} "
            f"WHERE eventname LIKE '{marker}%' ORDER BY eventname"
        )
    )["QueryId"]
    assert _wait_ended(client, query_id)["QueryStatus"] == "FINISHED"
    first = client.get_query_results(QueryId=query_id, MaxQueryResults=3)
    assert first["QueryStatistics"] == {"ResultsCount": 3, "TotalResultsCount": 7, "BytesScanned": first["QueryStatistics"]["BytesScanned"]}
    rows = _rows(client, query_id, page_size=3)
    assert [row[0]["eventname"] for row in rows] == [f"{marker}{i:02d}" for i in range(7)]
    assert [row[1]["readonly"] for row in rows] == ["true" if i % 2 == 0 else "false" for i in range(7)]
    assert all(row[2] == {"who": "alice"} for row in rows)
    assert all(isinstance(value, str) for row in rows for cell in row for value in cell.values())
    code, _, _ = _error(client.get_query_results, QueryId=query_id, NextToken="not-a-token")
    assert code == "InvalidNextTokenException"


def test_a_stores_selectors_decide_which_events_it_holds(lake_server):
    client = lake_server.client()
    marker = otlib.uniq("LakeSel")
    when = otlib.new_window()
    lake_server.ingest_ok(
        _events(marker, 3, when, event_source="s3.amazonaws.com")
        + _events(marker, 2, when, event_source="ec2.amazonaws.com")
        + [
            otlib.cloudtrail_event(
                f"{marker}Data",
                event_time=when,
                event_source="s3.amazonaws.com",
                eventCategory="Data",
                managementEvent=False,
                resources=[{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::audit-bucket/a.txt"}],
            )
        ]
    )
    s3_only = client.create_event_data_store(
        Name=otlib.uniq("s3-only"),
        TerminationProtectionEnabled=False,
        AdvancedEventSelectors=[
            {
                "Name": "S3 management",
                "FieldSelectors": [
                    {"Field": "eventCategory", "Equals": ["Management"]},
                    {"Field": "eventSource", "Equals": ["s3.amazonaws.com"]},
                ],
            }
        ],
    )["EventDataStoreArn"].rsplit("/", 1)[1]
    bucket_data = client.create_event_data_store(
        Name=otlib.uniq("bucket-data"),
        TerminationProtectionEnabled=False,
        AdvancedEventSelectors=[
            {
                "Name": "One bucket's objects",
                "FieldSelectors": [
                    {"Field": "eventCategory", "Equals": ["Data"]},
                    {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
                    {"Field": "resources.ARN", "StartsWith": ["arn:aws:s3:::audit-bucket/"]},
                ],
            }
        ],
    )["EventDataStoreArn"].rsplit("/", 1)[1]
    count = f"SELECT count(*) AS n FROM {{id}} WHERE eventname LIKE '{marker}%'"
    assert _run(client, count.format(id=s3_only))[1] == [[{"n": "3"}]]
    assert _run(client, count.format(id=bucket_data))[1] == [[{"n": "1"}]]


def test_bad_statements_are_refused_with_invalid_query_statement(lake_server, store_id):
    client = lake_server.client()
    for statement in (
        f"DELETE FROM {store_id}",
        f"SELEC count(*) FROM {store_id}",
        f"SELECT no_such_column FROM {store_id}",
        f"SELECT 1 FROM {store_id}; SELECT 2 FROM {store_id}",
        "SELECT 1",
    ):
        code, status, message = _error(client.start_query, QueryStatement=statement)
        assert (code, status) == ("InvalidQueryStatementException", 400), (statement, message)
        assert message, statement
    code, status, _ = _error(client.start_query, QueryStatement="SELECT count(*) FROM 0f6f0d6e-7a4f-4f57-9d55-4d1a1b2c3d4e")
    assert (code, status) == ("EventDataStoreNotFoundException", 404)
    # And the server still answers.
    assert _run(client, f"SELECT count(*) AS n FROM {store_id} WHERE eventname = 'nothing-here'")[1] == [[{"n": "0"}]]


def test_ten_queries_run_at_once_the_eleventh_is_refused_and_cancel_stops_them(lake_server, store_id):
    client = lake_server.client()
    running = [client.start_query(QueryStatement=ENDLESS.format(id=store_id))["QueryId"] for _ in range(10)]
    try:
        code, status, _ = _error(client.start_query, QueryStatement=ENDLESS.format(id=store_id))
        assert (code, status) == ("MaxConcurrentQueriesException", 429)
        assert client.describe_query(QueryId=running[0])["QueryStatus"] == "RUNNING"
        cancelled = client.cancel_query(QueryId=running[0])
        assert cancelled == {"QueryId": running[0], "QueryStatus": "CANCELLED", "ResponseMetadata": cancelled["ResponseMetadata"]}
        assert client.describe_query(QueryId=running[0])["QueryStatus"] == "CANCELLED"
        results = client.get_query_results(QueryId=running[0])
        assert (results["QueryStatus"], results["QueryResultRows"]) == ("CANCELLED", [])
        # A slot is free again.
        running[0] = client.start_query(QueryStatement=ENDLESS.format(id=store_id))["QueryId"]
    finally:
        for query_id in running:
            try:
                client.cancel_query(QueryId=query_id)
            except ClientError:
                pass
    assert all(client.describe_query(QueryId=q)["QueryStatus"] == "CANCELLED" for q in running)


def test_lake_calls_are_self_audited(lake_server, store_id):
    key = lake_server.create_key("read")
    lake_server.client(key).start_query(QueryStatement=f"SELECT count(*) FROM {store_id}")
    events = wait_for(
        lambda: [
            e
            for e in otlib.lookup_attr(lake_server.client(), "AccessKeyId", key.access_key_id)
            if e["EventName"] == "StartQuery"
        ],
        what="the StartQuery audit event",
    )
    record = json.loads(events[0]["CloudTrailEvent"])
    assert record["eventSource"] == "cloudtrail.amazonaws.com"
    assert store_id in json.dumps(record["requestParameters"])


def test_the_aws_cli_drives_a_store_and_a_query(lake_server):
    marker = otlib.uniq("LakeCli")
    lake_server.ingest_ok(_events(marker, 4, otlib.new_window()))
    created = lake_server.aws(
        "cloudtrail", "create-event-data-store", "--name", otlib.uniq("cli"), "--no-termination-protection-enabled"
    )
    assert created.code == 0, created
    store_id = created.json["EventDataStoreArn"].rsplit("/", 1)[1]
    listed = lake_server.aws("cloudtrail", "list-event-data-stores")
    assert store_id in json.dumps(listed.json), listed
    started = lake_server.aws(
        "cloudtrail", "start-query", "--query-statement", f"SELECT count(*) AS n FROM {store_id} WHERE eventname LIKE '{marker}%'"
    )
    assert started.code == 0, started
    query_id = started.json["QueryId"]
    wait_for(
        lambda: lake_server.aws("cloudtrail", "describe-query", "--query-id", query_id).json["QueryStatus"] in ENDED,
        timeout=60,
        what="the CLI's query to end",
    )
    results = lake_server.aws("cloudtrail", "get-query-results", "--query-id", query_id)
    assert results.code == 0, results
    assert results.json["QueryResultRows"] == [[{"n": "4"}]]
    queries = lake_server.aws("cloudtrail", "list-queries", "--event-data-store", store_id)
    assert [q["QueryId"] for q in queries.json["Queries"]] == [query_id]
    refused = lake_server.aws("cloudtrail", "start-query", "--query-statement", f"DROP TABLE {store_id}")
    assert refused.code != 0 and "InvalidQueryStatementException" in refused.stderr, refused
    deleted = lake_server.aws("cloudtrail", "delete-event-data-store", "--event-data-store", store_id)
    assert deleted.code == 0, deleted


def test_a_query_past_the_memory_limit_fails_and_one_past_the_time_limit_times_out(server_factory):
    server = server_factory(
        extra_env={"OPENTRAIL_LAKE_MEMORY_LIMIT_MB": "16", "OPENTRAIL_LAKE_QUERY_TIMEOUT_SECS": "2"}
    )
    client = server.client()
    marker = otlib.uniq("LakeBig")
    # ~1 KB records: 300 of them crossed with themselves are ~90 MB in one aggregate.
    server.ingest_ok(
        [
            otlib.cloudtrail_event(marker, event_time=otlib.utcnow(), request_parameters={"padding": "x" * 800})
            for _ in range(300)
        ]
    )
    store_id = client.create_event_data_store(Name="limits", TerminationProtectionEnabled=False)[
        "EventDataStoreArn"
    ].rsplit("/", 1)[1]
    hungry = client.start_query(
        QueryStatement=f"SELECT array_agg(a.eventjson) FROM {store_id} a CROSS JOIN {store_id} b"
    )["QueryId"]
    failed = _wait_ended(client, hungry)
    assert failed["QueryStatus"] == "FAILED", failed
    assert "memory" in failed["ErrorMessage"], failed["ErrorMessage"]

    slow = client.start_query(QueryStatement=ENDLESS.format(id=store_id))["QueryId"]
    timed_out = _wait_ended(client, slow)
    assert timed_out["QueryStatus"] == "TIMED_OUT", timed_out
    # The server keeps serving queries.
    # Its own calls are recorded too (self-audit): count the test's events.
    assert _run(client, f"SELECT count(*) AS n FROM {store_id} WHERE eventname = '{marker}'")[1] == [[{"n": "300"}]]


def test_results_survive_a_restart_and_a_query_cut_off_by_it_reads_failed(server_factory):
    server = server_factory()
    client = server.client()
    marker = otlib.uniq("LakeKeep")
    server.ingest_ok(_events(marker, 3, otlib.new_window()))
    store_id = client.create_event_data_store(Name="kept", TerminationProtectionEnabled=False)[
        "EventDataStoreArn"
    ].rsplit("/", 1)[1]
    finished_id = client.start_query(
        QueryStatement=f"SELECT count(*) AS n FROM {store_id} WHERE eventname LIKE '{marker}%'"
    )["QueryId"]
    assert _wait_ended(client, finished_id)["QueryStatus"] == "FINISHED"
    cut_off = client.start_query(QueryStatement=ENDLESS.format(id=store_id))["QueryId"]
    server.kill()
    server.start(port=server.port)
    client = server.client()
    assert _rows(client, finished_id) == [[{"n": "3"}]]
    described = client.describe_query(QueryId=cut_off)
    assert described["QueryStatus"] == "FAILED", described
    assert "stopped" in described["ErrorMessage"]


def test_opentrail_query_runs_through_the_lake_api_of_a_server(lake_server, store_id):
    marker = otlib.uniq("LakeCliQuery")
    lake_server.ingest_ok(_events(marker, 6, otlib.new_window()))
    reader = lake_server.create_key("read")
    statement = (
        f"SELECT eventname, count(*) AS n FROM {store_id} WHERE eventname LIKE '{marker}%' "
        "GROUP BY eventname ORDER BY eventname"
    )
    result = lake_server.opentrail("query", statement, "--endpoint", lake_server.endpoint, "--output", "json", creds=reader)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"eventname": f"{marker}{k}", "n": "2"} for k in range(3)]
    refused = lake_server.opentrail("query", f"DROP TABLE {store_id}", "--endpoint", lake_server.endpoint, creds=reader)
    assert refused.returncode != 0 and "InvalidQueryStatementException" in refused.stderr, refused.stderr

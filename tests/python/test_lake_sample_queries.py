"""The sample queries of crates/lake/queries, each run with `opentrail query` over the real
CloudTrail corpus and compared row for row with the same question answered here, in plain
Python over the corpus files.

The corpus is imported once per module with `opentrail import` into a temporary data
directory. Here the files are read with gzip/json and each record is kept once per
(recipientAccountId, eventID), as the store keeps it. Values are read as the Lake's
columns read them: member names compared without case, nested JSON values of the
free-form maps (requestParameters, …) as compact JSON text, and eventCategory and
readOnly filled in as the store fills them when a record has none.

Every sample orders its rows totally (ties broken by eventid or by the grouping keys),
so rows are compared in order.
"""

from __future__ import annotations

import bisect
import collections
import datetime as dt
import gzip
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

import otlib

CORPUS = otlib.REPO.parent / "shared" / "corpus" / "cloudtrail"
QUERIES = otlib.REPO / "crates" / "lake" / "queries"
# The file names `opentrail import` takes when it walks a folder.
EVENT_FILE_SUFFIXES = (".json", ".json.gz", ".json.cloudtrail", ".ndjson", ".jsonl")
COMMAND_TIMEOUT_S = 300
SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000

# --------------------------------------------------------------------------- corpus


def read_event_file(path: Path) -> list[dict]:
    raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    if path.name.endswith((".ndjson", ".jsonl")):
        return [json.loads(line) for line in raw.splitlines() if line.strip()]
    data = json.loads(raw)
    if isinstance(data, dict) and "Records" in data:
        return data["Records"]
    return data if isinstance(data, list) else [data]


def corpus_records() -> list[dict]:
    """Every corpus record once per (recipientAccountId, eventID), first copy kept."""
    files = sorted(
        path
        for path in CORPUS.rglob("*")
        if path.is_file() and path.name.endswith(EVENT_FILE_SUFFIXES) and not path.name.startswith(".")
    )
    assert len(files) > 4000, f"the corpus at {CORPUS}"
    kept: dict[tuple[str, str], dict] = {}
    for path in files:
        for record in read_event_file(path):
            kept.setdefault((record["recipientAccountId"], record["eventID"]), record)
    return list(kept.values())


# --------------------------------------------------------------------------- columns


def member(value: Any, name: str) -> Any:
    """A member of a JSON object by its Lake name, case ignored; None when absent."""
    if not isinstance(value, dict):
        return None
    for key in sorted(value):
        if key.lower() == name.lower() and value[key] is not None:
            return value[key]
    return None


def path(record: dict, *names: str) -> Any:
    value: Any = record
    for name in names:
        value = member(value, name)
    return value


def as_text(value: Any) -> str | None:
    """A JSON value as Lake text: strings as they are, anything else as compact JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def text(record: dict, *names: str) -> str | None:
    return as_text(path(record, *names))


def event_ms(record: dict) -> int:
    when = dt.datetime.fromisoformat(record["eventTime"].replace("Z", "+00:00"))
    return round(when.timestamp() * 1000)


def timestamp_text(ms: int) -> str:
    """An eventtime cell as the CLI prints it."""
    when = dt.datetime.fromtimestamp(ms // 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{when}.{ms % 1000:03d}Z" if ms % 1000 else f"{when}Z"


def map_text(value: Any) -> str | None:
    """A map<string,string> cell as the CLI prints it: `{key: value, …}`, keys sorted."""
    if not isinstance(value, dict):
        return None
    entries = (f"{key}: {as_text(value[key]) or ''}" for key in sorted(value))
    return "{" + ", ".join(entries) + "}"


def event_category(record: dict) -> str:
    category = text(record, "eventCategory")
    if category is not None:
        return category
    return "Insight" if text(record, "eventType") == "AwsCloudTrailInsight" else "Management"


# The store's rule for records without readOnly (crates/event/src/record.rs).
MUTATING_DESPITE_VERB = {"GetFederationToken", "GetSessionToken", "GetSigninToken", "CheckMfa"}
READ_ONLY_NAMES = {"Sign", "Verify", "VerifyMac", "GenerateMac", "GenerateRandom"}
READ_ONLY_VERBS = (
    "Get", "List", "Describe", "Head", "Lookup", "Search", "Query", "Scan", "Select",
    "BatchGet", "BatchDescribe", "Check", "Validate", "Simulate", "AssumeRole", "Decrypt",
    "Encrypt", "ReEncrypt", "GenerateDataKey",
)  # fmt: skip


def read_only(record: dict) -> bool:
    stated = record.get("readOnly")
    if isinstance(stated, bool):
        return stated
    if stated in ("true", "false"):
        return stated == "true"
    name = record["eventName"]
    if name in MUTATING_DESPITE_VERB:
        return False
    if name in READ_ONLY_NAMES:
        return True
    return any(
        name.startswith(verb) and not re.match(r"[a-z]", name[len(verb) : len(verb) + 1])
        for verb in READ_ONLY_VERBS
    )


def by_time_then_id(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda record: (event_ms(record), record["eventID"]))


def nulls_last(value: str | None) -> tuple[bool, str]:
    return (value is None, value or "")


# --------------------------------------------------------------------------- samples


@dataclass
class Sample:
    name: str
    title: str
    description: str
    parameters: list[str]
    sql: str

    def render(self, table: str, values: dict[str, str]) -> str:
        assert set(values) == set(self.parameters), f"{self.name} takes {self.parameters}"
        sql = self.sql.replace("$EDS_ID", table)
        return re.sub(r"\{\{(\w+)\}\}", lambda match: values[match.group(1)].replace("'", "''"), sql)


def read_sample(file: Path) -> Sample:
    """The file's header (`-- key: value` lines, continued by `--` lines without a key) and SQL."""
    lines = file.read_text().splitlines()
    header_end = next(
        (index for index, line in enumerate(lines) if not line.startswith("--")), len(lines)
    )
    fields: dict[str, str] = {}
    parameters: list[str] = []
    key = None
    for line in lines[:header_end]:
        comment = line[2:].strip()
        keyed = re.match(r"(title|description|parameter):\s*(.*)", comment)
        if keyed:
            key, value = keyed.groups()
            if key == "parameter":
                parameters.append(value.split()[0])
            else:
                fields[key] = value
        elif key in fields and comment:
            fields[key] += " " + comment
    return Sample(
        name=file.stem.split("-", 1)[1],
        title=fields.get("title", ""),
        description=fields.get("description", ""),
        parameters=parameters,
        sql="\n".join(lines[header_end:]).strip(),
    )


# --------------------------------------------------------------------------- the binary


def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in (
        "OPENTRAIL_CONFIG",
        "OPENTRAIL_DATA_DIR",
        "OPENTRAIL_ENDPOINT",
        "OPENTRAIL_ACCOUNT_ID",
        "OPENTRAIL_REGION",
    ):
        env.pop(name, None)
    return env


def run_binary(*arguments: str) -> str:
    result = subprocess.run(
        [str(otlib.opentrail_bin()), *arguments],
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    assert result.returncode == 0, (
        f"opentrail {arguments[0]} failed ({result.returncode}): {result.stderr}"
    )
    return result.stdout


def query_rows(data_dir: Path, sql: str) -> tuple[list[str], list[tuple]]:
    # `--` ends the options, so SQL that starts with a comment is not read as one.
    out = run_binary("query", "--data-dir", str(data_dir), "--output", "json", "--quiet", "--", sql)
    rows = json.loads(out)
    columns = list(rows[0]) if rows else []
    return columns, [tuple(row.values()) for row in rows]


@pytest.fixture(scope="module")
def records() -> list[dict]:
    if not CORPUS.is_dir():
        pytest.fail(f"the CloudTrail corpus is not at {CORPUS}", pytrace=False)
    return corpus_records()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, records) -> Path:
    binary = otlib.opentrail_bin()
    if not binary.exists():
        pytest.fail(f"opentrail binary not found at {binary}: set OPENTRAIL_BIN", pytrace=False)
    directory = tmp_path_factory.mktemp("lake-samples") / "data"
    summary = json.loads(
        run_binary("import", str(CORPUS), "--data-dir", str(directory), "--output", "json", "--quiet")
    )
    assert summary["errors"] == [] and summary["events_failed"] == 0, summary
    assert summary["events_imported"] == len(records), "the store keeps what is counted here"
    return directory


# --------------------------------------------------------------------------- expected rows
# Each returns the parameter values it chose, the columns and the rows the sample must give.

Expected = tuple[dict[str, str], list[str], list[tuple]]


def top_api_calls(records: list[dict]) -> Expected:
    calls = collections.Counter((record["eventSource"], record["eventName"]) for record in records)
    ranked = sorted(calls.items(), key=lambda item: (-item[1], item[0]))[:25]
    rows = [(source, name, count) for (source, name), count in ranked]
    return {}, ["eventsource", "eventname", "calls"], rows


def failed_calls_by_error_and_principal(records: list[dict]) -> Expected:
    failures = collections.Counter(
        (
            text(record, "errorCode"),
            text(record, "userIdentity", "type"),
            text(record, "userIdentity", "arn"),
        )
        for record in records
        if text(record, "errorCode") is not None
    )
    ranked = sorted(
        failures.items(),
        key=lambda item: (-item[1], item[0][0], nulls_last(item[0][1]), nulls_last(item[0][2])),
    )
    columns = ["errorcode", "identity_type", "principal_arn", "failures"]
    return {}, columns, [(code, kind, arn, count) for (code, kind, arn), count in ranked]


def console_logins_without_mfa(records: list[dict]) -> Expected:
    logins = [
        record
        for record in records
        if record["eventSource"] == "signin.amazonaws.com"
        and record["eventName"] == "ConsoleLogin"
        and text(record, "additionalEventData", "MFAUsed") == "No"
    ]
    columns = ["eventtime", "identity_type", "principal_arn", "sourceipaddress", "outcome", "eventid"]
    rows = [
        (
            timestamp_text(event_ms(record)),
            text(record, "userIdentity", "type"),
            text(record, "userIdentity", "arn"),
            text(record, "sourceIPAddress"),
            text(record, "responseElements", "ConsoleLogin"),
            record["eventID"],
        )
        for record in by_time_then_id(logins)
    ]
    return {}, columns, rows


def principal_activity_in_time_window(records: list[dict]) -> Expected:
    """The busiest principal, from its first call up to (not including) its median call's time."""
    by_principal = collections.Counter(text(record, "userIdentity", "arn") for record in records)
    by_principal.pop(None, None)
    principal = min(by_principal, key=lambda arn: (-by_principal[arn], arn))
    own = by_time_then_id(
        [record for record in records if text(record, "userIdentity", "arn") == principal]
    )
    start_ms, end_ms = event_ms(own[0]), event_ms(own[len(own) // 2])
    assert start_ms < end_ms, f"{principal}'s calls span some time"

    def sql_time(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

    values = {"PRINCIPAL_ARN": principal, "START_TIME": sql_time(start_ms), "END_TIME": sql_time(end_ms)}
    columns = [
        "eventtime", "eventsource", "eventname", "awsregion", "sourceipaddress", "errorcode", "eventid",
    ]  # fmt: skip
    rows = [
        (
            timestamp_text(event_ms(record)),
            record["eventSource"],
            record["eventName"],
            text(record, "awsRegion"),
            text(record, "sourceIPAddress"),
            text(record, "errorCode"),
            record["eventID"],
        )
        for record in own
        if start_ms <= event_ms(record) < end_ms
    ]
    assert 0 < len(rows) < len(own), "the window holds some of the principal's calls, not all"
    return values, columns, rows


def calls_from_new_ip_addresses(records: list[dict]) -> Expected:
    def from_a_caller(record: dict) -> bool:
        address = text(record, "sourceIPAddress")
        return (
            address is not None
            and not address.endswith("amazonaws.com")
            and address != "AWS Internal"
        )

    calls = [record for record in records if from_a_caller(record)]
    times_by_address: dict[str, list[int]] = collections.defaultdict(list)
    for record in calls:
        times_by_address[text(record, "sourceIPAddress")].append(event_ms(record))
    for times in times_by_address.values():
        times.sort()

    def seen_in_previous_7_days(record: dict) -> bool:
        times = times_by_address[text(record, "sourceIPAddress")]
        at = event_ms(record)
        return bisect.bisect_left(times, at) > bisect.bisect_left(times, at - SEVEN_DAYS_MS)

    columns = ["eventtime", "sourceipaddress", "principal_arn", "eventsource", "eventname", "eventid"]
    rows = [
        (
            timestamp_text(event_ms(record)),
            text(record, "sourceIPAddress"),
            text(record, "userIdentity", "arn"),
            record["eventSource"],
            record["eventName"],
            record["eventID"],
        )
        for record in by_time_then_id(calls)
        if not seen_in_previous_7_days(record)
    ]
    # Not every call: the corpus has addresses that come back within a week.
    assert len(rows) < len(calls)
    return {}, columns, rows


def deleted_resources(records: list[dict]) -> Expected:
    deletions = [
        record
        for record in records
        if record["eventName"].startswith("Delete") and text(record, "errorCode") is None
    ]

    def first_arn(record: dict) -> str | None:
        resources = path(record, "resources")
        return text(resources[0], "arn") if isinstance(resources, list) and resources else None

    columns = [
        "eventtime", "deleted_by", "eventsource", "eventname", "resource_arn", "requestparameters", "eventid",
    ]  # fmt: skip
    rows = [
        (
            timestamp_text(event_ms(record)),
            text(record, "userIdentity", "arn"),
            record["eventSource"],
            record["eventName"],
            first_arn(record),
            map_text(path(record, "requestParameters")),
            record["eventID"],
        )
        for record in by_time_then_id(deletions)
    ]
    assert any(row[4] for row in rows) and any(row[4] is None and row[5] for row in rows), (
        "the corpus has deletions named by an ARN and deletions named only by their parameters"
    )
    return {}, columns, rows


def activity_by_invoking_service(records: list[dict]) -> Expected:
    groups: dict[str, list[dict]] = collections.defaultdict(list)
    for record in records:
        invoker = text(record, "userIdentity", "invokedBy")
        groups["(direct call)" if invoker is None else invoker].append(record)
    columns = ["invoked_by", "calls", "write_calls", "distinct_calls", "first_call", "last_call"]
    rows = [
        (
            invoker,
            len(calls),
            sum(1 for record in calls if not read_only(record)),
            len({record["eventName"] for record in calls}),
            timestamp_text(min(map(event_ms, calls))),
            timestamp_text(max(map(event_ms, calls))),
        )
        for invoker, calls in groups.items()
    ]
    rows.sort(key=lambda row: (-row[1], row[0]))
    assert "(direct call)" in groups and len(groups) > 2, "calls made directly and by services"
    return {}, columns, rows


def data_events_on_bucket(records: list[dict]) -> Expected:
    """The bucket with the most S3 data events."""
    data_events = [
        record
        for record in records
        if event_category(record) == "Data" and record["eventSource"] == "s3.amazonaws.com"
    ]
    buckets = collections.Counter(
        text(record, "requestParameters", "bucketName") for record in data_events
    )
    buckets.pop(None, None)
    assert buckets, "the corpus has S3 data events"
    bucket = min(buckets, key=lambda name: (-buckets[name], name))
    groups: dict[tuple, list[dict]] = collections.defaultdict(list)
    for record in data_events:
        if text(record, "requestParameters", "bucketName") == bucket:
            groups[(text(record, "userIdentity", "arn"), record["eventName"])].append(record)
    columns = ["principal_arn", "eventname", "calls", "objects", "failures", "first_call", "last_call"]
    rows = [
        (
            principal,
            name,
            len(calls),
            len({text(record, "requestParameters", "key") for record in calls} - {None}),
            sum(1 for record in calls if text(record, "errorCode") is not None),
            timestamp_text(min(map(event_ms, calls))),
            timestamp_text(max(map(event_ms, calls))),
        )
        for (principal, name), calls in groups.items()
    ]
    rows.sort(key=lambda row: (-row[2], nulls_last(row[0]), row[1]))
    return {"BUCKET_NAME": bucket}, columns, rows


EXPECTED: dict[str, Callable[[list[dict]], Expected]] = {
    "top-api-calls": top_api_calls,
    "failed-calls-by-error-and-principal": failed_calls_by_error_and_principal,
    "console-logins-without-mfa": console_logins_without_mfa,
    "principal-activity-in-time-window": principal_activity_in_time_window,
    "calls-from-new-ip-addresses": calls_from_new_ip_addresses,
    "deleted-resources": deleted_resources,
    "activity-by-invoking-service": activity_by_invoking_service,
    "data-events-on-bucket": data_events_on_bucket,
}

SAMPLE_FILES = sorted(QUERIES.glob("*.sql"))


def test_every_sample_file_is_checked_here():
    assert len(SAMPLE_FILES) >= 8, f"the sample queries in {QUERIES}"
    names = [read_sample(file).name for file in SAMPLE_FILES]
    assert sorted(names) == sorted(EXPECTED), "each sample has its independent count here"


@pytest.mark.parametrize("file", SAMPLE_FILES, ids=[file.stem for file in SAMPLE_FILES])
def test_sample_query_agrees_with_the_corpus_files(file: Path, records, data_dir):
    sample = read_sample(file)
    assert sample.title and sample.description, f"{file.name} has a title and a description"
    check = EXPECTED.get(sample.name)
    if check is None:
        pytest.fail(f"{file.name} has no independent count in this module", pytrace=False)
    values, columns, expected = check(records)
    assert expected, f"the corpus has rows for {sample.title!r}"
    sql = sample.render("events", values)

    found_columns, rows = query_rows(data_dir, sql)

    assert found_columns == columns, sql
    assert len(rows) == len(expected), f"{sample.title}: {len(rows)} rows, expected {len(expected)}"
    for index, (row, wanted) in enumerate(zip(rows, expected)):
        assert row == wanted, f"{sample.title}: row {index} differs"

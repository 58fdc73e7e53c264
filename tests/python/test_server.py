"""`opentrail serve` lifecycle: first start, credentials file, graceful SIGTERM, restart."""

from __future__ import annotations

import configparser
import json
import stat

import otlib
from otlib import ids, lookup_attr


def test_first_start_writes_admin_credentials(server_factory):
    srv = server_factory()
    path = srv.data_dir / "credentials"
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode == 0o600, oct(mode)
    cp = configparser.ConfigParser()
    cp.read(path)
    assert cp["default"]["aws_access_key_id"] and cp["default"]["aws_secret_access_key"]
    # The printed hint names the credentials file and the endpoint.
    def printed():
        out = srv.stdout_path.read_text() + srv.stderr_path.read_text()
        return str(path) in out and f"--endpoint-url {srv.endpoint}" in out

    otlib.wait_for(printed, timeout=10, what=f"a hint naming {path} and --endpoint-url {srv.endpoint}")
    # The admin key works with boto3 and the CLI, and via the credentials file itself.
    assert srv.client().lookup_events(MaxResults=1)["ResponseMetadata"]["HTTPStatusCode"] == 200
    res = srv.aws("cloudtrail", "lookup-events", "--max-items", "1")
    assert res.code == 0, str(res)
    res = srv.aws(
        "cloudtrail", "lookup-events", "--max-items", "1",
        env={"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None, "AWS_SHARED_CREDENTIALS_FILE": str(path)},
    )
    assert res.code == 0, str(res)


def test_sigterm_is_graceful_and_restart_keeps_events_and_key(server_factory):
    srv = server_factory()
    admin = srv.admin
    name = otlib.uniq("Survives")
    recs = [otlib.cloudtrail_event(name, event_time=otlib.utcnow()) for _ in range(20)]
    event_ids = srv.ingest_ok(recs)
    code = srv.stop()
    assert code == 0, f"exit code {code} after SIGTERM\n{srv.logs()}"
    srv.start()
    assert srv.admin == admin, "the admin key changed on restart"
    found = lookup_attr(srv.client(), "EventName", name)
    assert sorted(ids(found)) == sorted(event_ids)
    # Re-sending after the restart is still deduplicated.
    again = srv.ingest(recs)
    assert again["accepted"] == [] and len(again["duplicates"]) == 20


def test_keys_survive_restart(server_factory):
    srv = server_factory()
    key = srv.create_key("read")
    srv.restart()
    assert srv.client(key).lookup_events(MaxResults=1)["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_account_and_region_from_environment(server_factory):
    srv = server_factory(account_id="444455556666", region="eu-central-1")
    rec = otlib.cloudtrail_event(otlib.uniq("EnvDefaults"), event_time=otlib.utcnow(), account=None, region=None)
    [eid] = srv.ingest_ok([rec], region="eu-central-1")
    [ev] = lookup_attr(srv.client(region="eu-central-1"), "EventId", eid)
    stored = json.loads(ev["CloudTrailEvent"])
    assert stored["recipientAccountId"] == "444455556666"
    assert stored["awsRegion"] == "eu-central-1"

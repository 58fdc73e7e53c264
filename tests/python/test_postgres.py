"""SQL over the Postgres wire protocol (`opentrail serve --pg-listen`): Debian's psql and
the pg8000 driver against the same event data stores as CloudTrail Lake, with a read
key's id and secret as user and password."""

from __future__ import annotations

import os
import shutil
import subprocess

import pg8000.dbapi
import pytest

import otlib


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory):
    port = otlib.free_port()
    server = otlib.Server(
        otlib.opentrail_bin(),
        tmp_path_factory.mktemp("postgres") / "data",
        extra_args=["--pg-listen", f"127.0.0.1:{port}"],
    )
    server.start()
    server.pg_port = port
    yield server
    server.stop()


@pytest.fixture(scope="module")
def seeded(pg_server):
    """A store of every management event, 5 DeleteTable calls and 2 from bob, and a read key."""
    marker = otlib.uniq("PgEvent")
    when = otlib.new_window()
    pg_server.ingest_ok(
        [otlib.cloudtrail_event(marker, event_time=when) for _ in range(5)]
        + [otlib.cloudtrail_event(marker, event_time=when, user="bob") for _ in range(2)]
    )
    created = pg_server.client().create_event_data_store(Name="pg-audit", TerminationProtectionEnabled=False)
    store_id = created["EventDataStoreArn"].rsplit("/", 1)[1]
    return {"marker": marker, "store_id": store_id, "reader": pg_server.create_key("read")}


def _psql(server, creds, sql: str) -> subprocess.CompletedProcess:
    psql = shutil.which("psql")
    if psql is None:
        pytest.fail("psql is not installed (.ci/run installs Debian's postgresql-client)", pytrace=False)
    env = dict(os.environ, PGPASSWORD=creds.secret_access_key, PGCONNECT_TIMEOUT="10")
    return subprocess.run(
        [psql, "-h", "127.0.0.1", "-p", str(server.pg_port), "-U", creds.access_key_id, "-d", "opentrail",
         "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=env, capture_output=True, text=True, timeout=60,
    )


def _connect(server, creds):
    return pg8000.dbapi.connect(
        host="127.0.0.1", port=server.pg_port, user=creds.access_key_id,
        password=creds.secret_access_key, database="opentrail", timeout=60,
    )


def test_psql_counts_the_events_of_a_store(pg_server, seeded):
    result = _psql(
        pg_server,
        seeded["reader"],
        f"SELECT count(*) FROM {seeded['store_id']} WHERE eventname = '{seeded['marker']}'",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "7"


def test_psql_reaches_a_store_by_its_name_and_groups(pg_server, seeded):
    result = _psql(
        pg_server,
        seeded["reader"],
        f"SELECT useridentity.username, count(*) AS n FROM \"pg-audit\" "
        f"WHERE eventname = '{seeded['marker']}' GROUP BY 1 ORDER BY 1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["alice|5", "bob|2"]


def test_a_wrong_password_and_an_ingest_key_are_refused(pg_server, seeded):
    wrong = seeded["reader"].with_secret("not-the-secret-at-all")
    result = _psql(pg_server, wrong, "SELECT 1")
    assert result.returncode != 0
    assert "password authentication failed" in result.stderr.lower(), result.stderr
    ingest = pg_server.create_key("ingest")
    result = _psql(pg_server, ingest, "SELECT 1")
    assert result.returncode != 0 and "password authentication failed" in result.stderr.lower(), result.stderr


def test_only_select_runs(pg_server, seeded):
    result = _psql(pg_server, seeded["reader"], f"DELETE FROM {seeded['store_id']}")
    assert result.returncode != 0
    assert "only SELECT" in result.stderr, result.stderr
    result = _psql(pg_server, seeded["reader"], f"SELECT no_such_column FROM {seeded['store_id']}")
    assert result.returncode != 0 and "no_such_column" in result.stderr, result.stderr


def test_another_accounts_key_sees_none_of_these_stores(pg_server, seeded):
    stranger = pg_server.create_key("read", account=otlib.OTHER_ACCOUNT_ID)
    result = _psql(pg_server, stranger, f"SELECT count(*) FROM {seeded['store_id']}")
    assert result.returncode != 0
    assert "not found" in result.stderr.lower(), result.stderr


def test_a_python_driver_gets_typed_rows(pg_server, seeded):
    connection = _connect(pg_server, seeded["reader"])
    try:
        cursor = connection.cursor()
        cursor.execute(
            f"SELECT eventname, readonly, count(*) AS n FROM {seeded['store_id']} "
            f"WHERE eventname = '{seeded['marker']}' GROUP BY eventname, readonly"
        )
        assert [column[0] for column in cursor.description] == ["eventname", "readonly", "n"]
        assert [list(row) for row in cursor.fetchall()] == [[seeded["marker"], False, 7]]
        # An acknowledged event is counted by the next statement.
        pg_server.ingest_ok([otlib.cloudtrail_event(seeded["marker"], event_time=otlib.utcnow())])
        cursor.execute(f"SELECT count(*) FROM {seeded['store_id']} WHERE eventname = '{seeded['marker']}'")
        assert list(cursor.fetchone()) == [8]
    finally:
        connection.close()

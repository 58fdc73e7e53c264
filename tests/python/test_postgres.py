r"""SQL over the Postgres wire protocol (`opentrail serve --pg-listen`): Debian's psql and
the pg8000 driver against the same event data stores as CloudTrail Lake, with a read
key's id and secret as user and password; the catalog BI tools browse (psql's `\dt` and
`\d`, `information_schema`), which shows the key's account's stores only; and statement
parameters as drivers bind them."""

from __future__ import annotations

import os
import shutil
import subprocess

import pg8000.dbapi
import pg8000.exceptions
import pg8000.native
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


@pytest.fixture(scope="module")
def elsewhere(pg_server):
    """Another account's store, and a key of that account that may query."""
    admin = pg_server.create_key("admin", account=otlib.OTHER_ACCOUNT_ID)
    created = pg_server.client(admin).create_event_data_store(
        Name="pg-elsewhere", TerminationProtectionEnabled=False
    )
    return {"store_id": created["EventDataStoreArn"].rsplit("/", 1)[1], "key": admin}


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


def _native(server, creds) -> pg8000.native.Connection:
    return pg8000.native.Connection(
        creds.access_key_id, host="127.0.0.1", port=server.pg_port,
        password=creds.secret_access_key, database="opentrail", timeout=60,
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


def _table_list(result: subprocess.CompletedProcess) -> list[str]:
    """The names in psql's unaligned `\\dt` (`schema|name|type|owner` lines)."""
    assert result.returncode == 0, result.stderr
    return [line.split("|")[1] for line in result.stdout.splitlines() if line.count("|") == 3]


def test_psql_lists_the_accounts_stores_and_not_anothers(pg_server, seeded, elsewhere):
    mine = _table_list(_psql(pg_server, seeded["reader"], "\\dt"))
    assert "pg-audit" in mine and seeded["store_id"] in mine, mine
    assert "pg-elsewhere" not in mine and elsewhere["store_id"] not in mine, mine
    theirs = _table_list(_psql(pg_server, elsewhere["key"], "\\dt"))
    assert sorted(theirs) == sorted(["pg-elsewhere", elsewhere["store_id"]]), theirs
    # Nor can the other account name this account's store to the catalog.
    result = _psql(pg_server, elsewhere["key"], "SELECT 'pg-audit'::regclass")
    assert result.returncode != 0 and "does not exist" in result.stderr, result.stderr


def test_psql_describes_a_store_with_its_columns_and_types(pg_server, seeded):
    result = _psql(pg_server, seeded["reader"], '\\d "pg-audit"')
    assert result.returncode == 0, result.stderr
    columns = {line.split("|")[0]: line.split("|")[1] for line in result.stdout.splitlines() if "|" in line}
    assert columns["eventname"] == "text", result.stdout
    assert columns["eventtime"] == "timestamp with time zone", result.stdout
    assert columns["readonly"] == "boolean", result.stdout
    assert "useridentity" in columns and "eventjson" in columns, result.stdout
    # The store reads the same by its id, and the database list names the database.
    by_id = _psql(pg_server, seeded["reader"], f"\\d {seeded['store_id']}")
    assert by_id.returncode == 0 and "eventname|text" in by_id.stdout, by_id.stderr
    databases = _psql(pg_server, seeded["reader"], "\\l")
    assert databases.returncode == 0, databases.stderr
    assert databases.stdout.splitlines()[0].split("|")[0] == "opentrail", databases.stdout


def test_information_schema_shows_the_stores_columns_to_a_driver(pg_server, seeded, elsewhere):
    connection = _native(pg_server, seeded["reader"])
    try:
        rows = connection.run(
            "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name IN ('eventname', 'eventtime', 'readonly') "
            "ORDER BY table_name, ordinal_position"
        )
        assert rows == [
            [name, column, data_type, "YES"]
            for name in sorted([seeded["store_id"], "pg-audit"])
            for column, data_type in [
                ("eventtime", "timestamp with time zone"),
                ("eventname", "text"),
                ("readonly", "boolean"),
            ]
        ]
        tables = connection.run(
            "SELECT table_name, table_type, is_insertable_into FROM information_schema.tables "
            "WHERE table_schema = 'public' ORDER BY 1"
        )
        assert tables == [[name, "BASE TABLE", "NO"] for name in sorted([seeded["store_id"], "pg-audit"])]
        assert connection.run("SELECT current_database(), current_schema(), current_user") == [
            ["opentrail", "public", seeded["reader"].access_key_id]
        ]
    finally:
        connection.close()


def test_a_bound_parameter_answers_as_the_literal_it_stands_for(pg_server, seeded):
    connection = _native(pg_server, seeded["reader"])
    try:
        literal = connection.run(
            f"SELECT useridentity.username AS who, count(*) AS n FROM \"pg-audit\" "
            f"WHERE eventname = '{seeded['marker']}' AND readonly = false GROUP BY 1 ORDER BY 1"
        )
        bound = connection.run(
            'SELECT useridentity.username AS who, count(*) AS n FROM "pg-audit" '
            "WHERE eventname = :name AND readonly = :readonly GROUP BY 1 ORDER BY 1 LIMIT :most",
            name=seeded["marker"], readonly=False, most=10,
        )
        assert bound == literal
        assert [row[0] for row in bound] == ["alice", "bob"], bound
        # A value that is not of the type the statement compares it with is refused.
        with pytest.raises(pg8000.exceptions.DatabaseError) as refused:
            connection.run('SELECT count(*) FROM "pg-audit" WHERE readonly = :readonly', readonly="perhaps")
        assert refused.value.args[0]["C"] == "22P02", refused.value.args
        # Parameters do not open a way to write.
        with pytest.raises(pg8000.exceptions.DatabaseError) as refused:
            connection.run('DELETE FROM "pg-audit" WHERE eventname = :name', name=seeded["marker"])
        assert refused.value.args[0]["C"] == "0A000", refused.value.args
    finally:
        connection.close()

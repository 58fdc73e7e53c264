"""Fixtures: a real `opentrail serve` (session-scoped, plus fresh ones on demand).

The binary is $OPENTRAIL_BIN (scripts/test sets it to <target>/debug/opentrail), else
<repo>/target/debug/opentrail. The server runs with OPENTRAIL_ACCOUNT_ID=111122223333 and
OPENTRAIL_REGION=us-east-1 on a free loopback port; its admin key is read from
<data-dir>/credentials. See otlib.Server for the helpers a test gets
(client, data_client, aws, ingest, create_key, signed_request, json_call, …).
"""

from __future__ import annotations

import os

import pytest

import otlib

otlib.isolate_aws_environment()


def _start(tmp_path_factory, name: str, **kwargs) -> otlib.Server:
    binary = otlib.opentrail_bin()
    if not binary.exists():
        pytest.fail(
            f"opentrail binary not found at {binary}: run `cargo build -p opentrail` or set OPENTRAIL_BIN",
            pytrace=False,
        )
    base = tmp_path_factory.mktemp(name)
    server = otlib.Server(binary, base / "data", **kwargs)
    try:
        server.start()
    except (RuntimeError, AssertionError) as e:
        pytest.fail(f"could not start `opentrail serve`: {e}", pytrace=False)
    return server


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One server shared by the tests that do not interfere (unique names, ids and windows)."""
    srv = _start(tmp_path_factory, "shared")
    yield srv
    srv.stop()


@pytest.fixture
def server_factory(tmp_path_factory):
    """Starts fresh servers (own data dir) for one test; stops them at teardown."""
    started: list[otlib.Server] = []

    def start(**kwargs) -> otlib.Server:
        srv = _start(tmp_path_factory, "fresh", **kwargs)
        started.append(srv)
        return srv

    yield start
    errors = []
    for srv in started:
        try:
            srv.stop()
        except RuntimeError as e:
            errors.append(str(e))
    if errors:
        pytest.fail("\n".join(errors), pytrace=False)


@pytest.fixture
def window():
    """A past hour that no other test uses (see otlib.new_window)."""
    return otlib.new_window()


@pytest.fixture(scope="session")
def read_key(server):
    """A `read` key of the default account."""
    return server.create_key("read")


@pytest.fixture(scope="session")
def ingest_key(server):
    """An `ingest` key of the default account."""
    return server.create_key("ingest")


@pytest.fixture(scope="module")
def s3_endpoint():
    """An S3-compatible endpoint for a test module: $OPENTRAIL_TEST_S3_ENDPOINT when set
    (CI's server), else a `moto_server` of the venv on a free loopback port."""
    given = os.environ.get("OPENTRAIL_TEST_S3_ENDPOINT")
    if given:
        yield given
        return
    moto = otlib.MotoServer().start()
    yield moto.endpoint
    moto.stop()

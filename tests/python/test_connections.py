"""Slow and idle clients cannot hold the server: header, idle and body timeouts, and a cap
on open connections, against the real server over real sockets."""

from __future__ import annotations

import socket
import threading
import time

import pytest

import otlib

SLOW_CLIENTS = 300


@pytest.fixture
def strict_server(server_factory):
    return server_factory(
        extra_env={
            "OPENTRAIL_HEADER_READ_TIMEOUT_SECS": "2",
            "OPENTRAIL_IDLE_TIMEOUT_SECS": "3",
            "OPENTRAIL_BODY_READ_TIMEOUT_SECS": "2",
            "OPENTRAIL_CONNECTIONS_MAX": "400",
        }
    )


def _connect(server: otlib.Server) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    connection.settimeout(10)
    return connection


def _closed_by_server(connection: socket.socket, within: float) -> bool:
    """Whether the server closes the connection within `within` seconds (reading any
    answer it sends first)."""
    connection.settimeout(within)
    try:
        while connection.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except (TimeoutError, socket.timeout):
        return False


def test_slow_header_clients_are_cut_off_and_others_are_served_meanwhile(strict_server):
    connections = []
    for _ in range(SLOW_CLIENTS):
        connection = _connect(strict_server)
        connection.sendall(b"GET /health HTTP/1.1\r\nHo")
        connections.append(connection)
    stop = threading.Event()

    def trickle():  # one more header byte a second, never finishing
        while not stop.wait(1.0):
            for connection in connections:
                try:
                    connection.sendall(b"s")
                except OSError:
                    pass

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        # Served meanwhile (no timing is asserted: the machine is shared).
        answer = strict_server.client().lookup_events(MaxResults=5)
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200

        time.sleep(3.5)  # past the 2 s header timeout
        still_open = [c for c in connections if not _closed_by_server(c, within=0.05)]
        assert not still_open, f"{len(still_open)} of {SLOW_CLIENTS} slow-header connections are still open"
    finally:
        stop.set()
        for connection in connections:
            connection.close()


def test_an_idle_keep_alive_connection_is_closed_and_a_busy_one_is_not(strict_server):
    idle = _connect(strict_server)
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(4096).startswith(b"HTTP/1.1 200"), "the first request was answered"
    assert _closed_by_server(idle, within=30), "an idle keep-alive connection stayed open"

    # A connection that keeps sending requests stays open past the idle timeout.
    busy = _connect(strict_server)
    for _ in range(5):
        busy.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert busy.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(1)
    busy.close()


def test_a_body_that_stops_arriving_gets_408(strict_server):
    token = strict_server.create_key("ingest").token
    connection = _connect(strict_server)
    connection.sendall(
        b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\n".encode()
        + b"Content-Length: 1000\r\n\r\n{\"Records\":["
    )
    connection.settimeout(10)
    answer = b""
    try:
        while chunk := connection.recv(4096):
            answer += chunk
    except (TimeoutError, socket.timeout):
        pass
    connection.close()
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 408"), answer[:300]


def test_beyond_the_connection_cap_new_connections_wait_instead_of_failing(server_factory):
    server = server_factory(extra_env={"OPENTRAIL_CONNECTIONS_MAX": "20"})
    holders = [_connect(server) for _ in range(20)]
    try:
        # Every slot is taken: the 21st connection is not served...
        with pytest.raises((TimeoutError, socket.timeout)):
            server.raw_request("GET", "/health", timeout=1)
        # ...until one closes; then it is, without an error.
        for holder in holders[:5]:
            holder.close()
        answer = server.raw_request("GET", "/health", timeout=30)
        assert answer.status == 200, answer
    finally:
        for holder in holders:
            holder.close()

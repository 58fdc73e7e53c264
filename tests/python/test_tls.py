"""HTTPS without a sidecar: `serve --tls-cert/--tls-key` with a test CA made by openssl.
boto3 and the aws CLI trust it through --ca-bundle; HTTP/2 and HTTP/1.1 are offered by
ALPN; plain HTTP to the port is refused; SIGHUP picks up a renewed certificate; console
cookies are Secure."""

from __future__ import annotations

import http.client
import json
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

import otlib


def _openssl(*args: str, cwd) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert done.returncode == 0, f"openssl {' '.join(args)}: {done.stderr}"


def _server_certificate(directory, name: str) -> None:
    """`name`.pem and `name`.key for 127.0.0.1 and localhost, signed by ca.pem."""
    extensions = directory / f"{name}.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
    )
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", extensions.name,
             cwd=directory)


@pytest.fixture
def certificates(tmp_path):
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make the test CA (.ci/run installs it)")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=OpenTrail test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign", cwd=tmp_path)
    _server_certificate(tmp_path, "first")
    _server_certificate(tmp_path, "second")
    shutil.copy(tmp_path / "first.pem", tmp_path / "server.pem")
    shutil.copy(tmp_path / "first.key", tmp_path / "server.key")
    return tmp_path


@pytest.fixture
def tls_server(tmp_path_factory, certificates):
    server = otlib.Server(
        otlib.opentrail_bin(),
        tmp_path_factory.mktemp("tls") / "data",
        extra_args=["--tls-cert", str(certificates / "server.pem"),
                    "--tls-key", str(certificates / "server.key")],
        ca_bundle=certificates / "ca.pem",
    )
    server.start()
    yield server
    server.stop()


def _peer_certificate(server: otlib.Server, alpn: list[str]) -> tuple[bytes, str | None]:
    context = ssl.create_default_context(cafile=str(server.ca_bundle))
    context.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True), tls.selected_alpn_protocol()


def _der(pem_path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem_path.read_text())


def test_boto3_and_the_aws_cli_work_over_https_with_the_test_ca(tls_server):
    assert tls_server.endpoint.startswith("https://")
    event_id = otlib.uniq("tls")
    tls_server.ingest_ok([otlib.cloudtrail_event("PutObject", event_time=otlib.utcnow(), event_id=event_id)])
    events = otlib.lookup_attr(tls_server.client(), "EventId", event_id)
    assert [event["EventId"] for event in events] == [event_id]

    result = tls_server.aws(
        "cloudtrail", "lookup-events", "--lookup-attributes",
        f"AttributeKey=EventId,AttributeValue={event_id}",
    )
    assert result.code == 0, result
    assert [event["EventId"] for event in result.json["Events"]] == [event_id]

    # Without the CA, the certificate is not trusted.
    untrusted = subprocess.run(
        [otlib.aws_cli_path(), "--endpoint-url", tls_server.endpoint, "cloudtrail", "list-trails"],
        capture_output=True, text=True, timeout=60,
        env={**otlib.os.environ, "AWS_ACCESS_KEY_ID": tls_server.admin.access_key_id,
             "AWS_SECRET_ACCESS_KEY": tls_server.admin.secret_access_key,
             "AWS_DEFAULT_REGION": otlib.REGION, "AWS_MAX_ATTEMPTS": "1"},
    )
    assert untrusted.returncode != 0 and "SSL" in untrusted.stderr, untrusted.stderr


def test_http2_and_http1_are_both_offered(tls_server):
    _, chosen = _peer_certificate(tls_server, ["h2", "http/1.1"])
    assert chosen == "h2"
    _, chosen = _peer_certificate(tls_server, ["http/1.1"])
    assert chosen == "http/1.1"


def test_plain_http_to_the_tls_port_is_refused(tls_server):
    plain = http.client.HTTPConnection("127.0.0.1", tls_server.port, timeout=10)
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        plain.request("GET", "/health")
        plain.getresponse().read()
    plain.close()


def test_sighup_reloads_a_renewed_certificate(tls_server, certificates):
    served, _ = _peer_certificate(tls_server, ["http/1.1"])
    assert served == _der(certificates / "first.pem")

    shutil.copy(certificates / "second.pem", certificates / "server.pem")
    shutil.copy(certificates / "second.key", certificates / "server.key")
    tls_server.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while _peer_certificate(tls_server, ["http/1.1"])[0] != _der(certificates / "second.pem"):
        assert time.monotonic() < deadline, "the renewed certificate was not served after SIGHUP"
        time.sleep(0.1)

    # A broken file on the next SIGHUP keeps the certificate in use.
    (certificates / "server.key").write_text("not a key")
    tls_server.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert _peer_certificate(tls_server, ["http/1.1"])[0] == _der(certificates / "second.pem")
    assert tls_server.raw_request("GET", "/health").status == 200


def test_console_cookies_are_secure_over_tls(tls_server):
    answer = tls_server.raw_request("GET", "/console/api/session")
    cookie = answer.header("set-cookie")
    assert cookie and "Secure" in cookie, answer.headers

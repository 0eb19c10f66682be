"""Patched ssl: HTTPS through green TLS sockets, with every stdlib check still on.

The test makes its own CA and a server certificate for "localhost" and 127.0.0.1
with the openssl command line, serves HTTPS from a stdlib server in a subprocess,
and fetches from it in a fresh, patched interpreter.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.util import run_python, slow_http_server

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca.pem (a CA), server.pem/server.key (signed by it, for localhost and 127.0.0.1),
    and other-ca.pem (a CA that signed nothing here)."""
    d = tmp_path_factory.mktemp("certs")
    for name in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                f"/CN=greensched test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr", cwd=d)
    (d / "san.ext").write_text(  # what Python 3.13's stricter verification asks for
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem", cwd=d)
    return d


@pytest.fixture
def https_server(certs: Path) -> Iterator[int]:
    with slow_http_server(0.5, certs / "server.pem", certs / "server.key") as port:
        yield port


def fetch_script(port: int, cafile: Path, host: str) -> str:
    return f"""
import greensched
greensched.patch_all()
import ssl, time, urllib.request
context = ssl.create_default_context(cafile={str(cafile)!r})
def fetch(i):
    with urllib.request.urlopen("https://{host}:{port}/tls/%d" % i, context=context, timeout=10) as r:
        return r.read().decode()
"""


def test_hundred_concurrent_https_fetches_with_a_trusted_ca(certs: Path, https_server: int) -> None:
    proc = run_python(
        fetch_script(https_server, certs / "ca.pem", "localhost")
        + """
start = time.monotonic()
threads = [greensched.spawn(fetch, i) for i in range(100)]
bodies = [t.result() for t in threads]
assert bodies == ["/tls/%d" % i for i in range(100)]
print(time.monotonic() - start < 3.0, ssl.SSLContext.sslsocket_class.__module__)
""",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["True", "greensched.net.ssl"]  # serially: 50 s


def test_an_untrusted_ca_is_the_stdlib_verification_error(certs: Path, https_server: int) -> None:
    proc = run_python(
        fetch_script(https_server, certs / "other-ca.pem", "localhost")
        + """
try:
    fetch(0)
except urllib.error.URLError as exc:
    print(type(exc.reason).__name__, exc.reason.verify_message)
""",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "SSLCertVerificationError unable to get local issuer certificate"


def test_a_wrong_host_name_is_the_stdlib_verification_error(certs: Path, https_server: int) -> None:
    proc = run_python(
        fetch_script(https_server, certs / "ca.pem", "localhost")
        + f"""
import socket
raw = socket.create_connection(("127.0.0.1", {https_server}), timeout=10)
try:
    context.wrap_socket(raw, server_hostname="not-the-server.test")
except ssl.SSLCertVerificationError as exc:
    print(type(exc).__name__, exc.verify_message)
finally:
    raw.close()
""",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().startswith("SSLCertVerificationError Hostname mismatch")


def test_a_tls_listener_parks_in_accept_and_serves_a_tls_client(certs: Path) -> None:
    """accept() on an SSLSocket listener waits green (it once hit a name clash between
    the TLS retry helper and the socket's own, as CPython's test_server_accept showed)."""
    proc = run_python(
        f"""
import greensched
greensched.patch_all()
import socket, ssl
server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_ctx.load_cert_chain({str(certs / "server.pem")!r}, {str(certs / "server.key")!r})
client_ctx = ssl.create_default_context(cafile={str(certs / "ca.pem")!r})
listener = server_ctx.wrap_socket(socket.socket(), server_side=True)
listener.bind(("127.0.0.1", 0))
listener.listen()
port = listener.getsockname()[1]
def serve():
    conn, _ = listener.accept()          # parks: no client has connected yet
    with conn:
        conn.sendall(conn.recv(100).upper())
server = greensched.spawn(serve)
greensched.sleep(0)                      # the server is parked in accept()
with client_ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                            server_hostname="localhost") as tls:
    tls.sendall(b"hello")
    print(tls.recv(100).decode())
server.join()
listener.close()
""",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "HELLO"

"""Real servers for the integration tests, one of each per test session.

Each fixture starts its server in a temp dir on a free port (tests/servers/real.py)
and stops it at the end of the session. A missing binary skips the tests that need
it, naming the Debian package; with ``GREENSCHED_REQUIRE_SERVERS=1`` (set by
``.ci/run``) it fails them instead, so CI skips none.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.servers.real import (
    Server,
    ServerMissing,
    start_mariadb,
    start_postgres,
    start_rabbitmq,
    start_redis,
)


def _serve(factory: Callable[[Path], Server], kind: str) -> Iterator[Server]:
    # Not pytest's tmp_path: its parents are 0700 root, and as root the server runs as
    # its own system user, which must be able to reach its data directory.
    base = Path(tempfile.mkdtemp(prefix=f"greensched-{kind}-"))
    base.chmod(0o755)
    try:
        try:
            server = factory(base)
        except ServerMissing as missing:
            if os.environ.get("GREENSCHED_REQUIRE_SERVERS", "") not in ("", "0"):
                pytest.fail(f"{missing} (GREENSCHED_REQUIRE_SERVERS is set: CI must run this test)")
            pytest.skip(str(missing))
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Server]:
    """A PostgreSQL server: ``.url``, ``.host``, ``.port``, user and database ``postgres``."""
    yield from _serve(start_postgres, "postgres")


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[Server]:
    """A MariaDB server: ``.host``, ``.port``, user ``root`` (no password), database ``test``."""
    yield from _serve(start_mariadb, "mariadb")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Server]:
    """A redis-server: ``.url`` (``redis://127.0.0.1:PORT/0``), ``.host``, ``.port``."""
    yield from _serve(start_redis, "redis")


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[Server]:
    """A rabbitmq-server: ``.url`` (``amqp://guest:guest@127.0.0.1:PORT//``), ``.host``, ``.port``."""
    yield from _serve(start_rabbitmq, "rabbitmq")

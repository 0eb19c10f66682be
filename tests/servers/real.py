"""Real database and broker servers for tests: PostgreSQL, MariaDB and Redis.

Each ``start_*`` function makes a fresh data directory under ``base``, starts the
server's own binary on a free port on 127.0.0.1 and waits until it accepts
connections; ``Server.stop()`` ends it and nothing of it is left running. No
passwords: PostgreSQL trusts 127.0.0.1, MariaDB runs with ``--skip-grant-tables``,
Redis has no auth.

The binaries come from Debian's ``postgresql``, ``mariadb-server`` and
``redis-server`` packages (``.ci/run`` installs them). `find_binary` raises
`ServerMissing` when one is not installed; the fixtures in
``tests/integrations/conftest.py`` turn that into a skip that names the package,
or into a failure when ``GREENSCHED_REQUIRE_SERVERS=1`` (CI sets it: CI skips none).

Servers refuse to run as root (PostgreSQL always, MariaDB unless told), and CI
runs as root: as root, the data directory is given to the package's own system
user (``postgres``, ``mysql``) and the server runs as that user.

This module uses only the stdlib and never imports greensched: the servers are
real processes, started the same way under any runtime.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Server", "ServerMissing", "find_binary", "free_port",
    "start_postgres", "start_mariadb", "start_redis", "start_rabbitmq",
]


class ServerMissing(RuntimeError):
    """A server binary is not installed; the message names the Debian package."""


@dataclass
class Server:
    """A running server: where to reach it, and how to stop it."""

    kind: str
    host: str
    port: int
    datadir: Path
    process: subprocess.Popen[bytes]
    #: Driver-neutral connection facts: user, database and a DSN/URL where the kind has one.
    user: str = ""
    database: str = ""
    url: str = ""
    log: Path = field(default_factory=Path)

    def stop(self) -> None:
        """Terminate the server (then kill it after 10 s) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binary(name: str, package: str, extra_dirs: tuple[str, ...] = ()) -> str:
    """The path of server binary ``name`` (PATH, then ``extra_dirs`` globs), or ServerMissing."""
    found = shutil.which(name)
    if found:
        return found
    for pattern in extra_dirs:
        for candidate in sorted(glob.glob(os.path.join(pattern, name)), reverse=True):
            if os.access(candidate, os.X_OK):
                return candidate
    raise ServerMissing(
        f"{name} is not installed (Debian package {package!r}: apt-get install {package})"
    )


def _run_as(user: str | None) -> dict[str, object]:
    """Popen arguments that drop from root to ``user`` (nothing when not root)."""
    if user is None or os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _system_user(candidates: tuple[str, ...]) -> str | None:
    """The first of ``candidates`` that exists, when running as root (None otherwise)."""
    if os.geteuid() != 0:
        return None
    for name in candidates:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return "nobody"


def _give(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        for root, dirs, files in os.walk(path):
            os.chown(root, entry.pw_uid, entry.pw_gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _wait_port(server: Server, timeout: float = 60.0) -> None:
    """Wait until ``server`` accepts TCP connections, or raise with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"{server.kind} exited with status {server.process.returncode} before it "
                f"listened on {server.port}; its log:\n{server.log_tail()}"
            )
        try:
            with socket.create_connection((server.host, server.port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(
        f"{server.kind} did not listen on {server.port} within {timeout} s:\n{server.log_tail()}")


# -- PostgreSQL -------------------------------------------------------------------------------

_PG_DIRS = ("/usr/lib/postgresql/*/bin",)


def start_postgres(base: Path, max_connections: int = 200) -> Server:
    """initdb + postgres in ``base``, trust auth on 127.0.0.1, database ``postgres``."""
    initdb = find_binary("initdb", "postgresql", _PG_DIRS)
    postgres = os.path.join(os.path.dirname(initdb), "postgres")
    if not os.access(postgres, os.X_OK):
        postgres = find_binary("postgres", "postgresql", _PG_DIRS)
    user = _system_user(("postgres",))
    base.mkdir(parents=True, exist_ok=True)
    datadir = base / "pgdata"
    datadir.mkdir()
    _give(base, user)
    log = base / "postgres.log"
    with open(log, "wb") as out:
        subprocess.run(
            [initdb, "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
             "--no-sync", "--locale=C"],
            stdout=out, stderr=subprocess.STDOUT, check=True, timeout=120, **_run_as(user),  # type: ignore[arg-type]
        )
    port = free_port()
    out = open(log, "ab")
    process = subprocess.Popen(
        [postgres, "-D", str(datadir), "-p", str(port), "-h", "127.0.0.1",
         "-k", str(base), "-c", f"max_connections={max_connections}", "-c", "fsync=off",
         "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **_run_as(user),  # type: ignore[arg-type]
    )
    out.close()
    server = Server("postgres", "127.0.0.1", port, datadir, process, user="postgres",
                    database="postgres", url=f"postgresql://postgres@127.0.0.1:{port}/postgres", log=log)
    _wait_port(server)
    # Listening is not yet accepting queries (startup recovery): wait for pg_isready.
    isready = os.path.join(os.path.dirname(initdb), "pg_isready")
    if os.access(isready, os.X_OK):
        deadline = time.monotonic() + 60
        while subprocess.run([isready, "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"],
                             capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                server.stop()
                raise RuntimeError(f"postgres never became ready:\n{server.log_tail()}")
            time.sleep(0.05)
    return server


# -- MariaDB ----------------------------------------------------------------------------------


def start_mariadb(base: Path, max_connections: int = 300) -> Server:
    """mariadb-install-db + mariadbd in ``base``, no grant tables, database ``test``."""
    install = find_binary("mariadb-install-db", "mariadb-server")
    mariadbd = find_binary("mariadbd", "mariadb-server", ("/usr/sbin",))
    user = _system_user(("mysql",))
    base.mkdir(parents=True, exist_ok=True)
    datadir = base / "mariadb"
    datadir.mkdir()
    _give(base, user)
    log = base / "mariadb.log"
    run_user = ["--user=" + (user or pwd.getpwuid(os.geteuid()).pw_name)]
    with open(log, "wb") as out:
        subprocess.run(
            [install, "--no-defaults", f"--datadir={datadir}", *run_user,
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            stdout=out, stderr=subprocess.STDOUT, check=True, timeout=180,
        )
    os.mkdir(datadir / "test")
    _give(datadir, user)
    port = free_port()
    out = open(log, "ab")
    process = subprocess.Popen(
        [mariadbd, "--no-defaults", f"--datadir={datadir}", *run_user, f"--port={port}",
         "--bind-address=127.0.0.1", f"--socket={base / 'mariadb.sock'}",
         f"--pid-file={base / 'mariadb.pid'}", "--skip-grant-tables", "--skip-name-resolve",
         f"--max-connections={max_connections}", "--innodb-buffer-pool-size=16M",
         "--skip-log-bin", "--innodb-flush-log-at-trx-commit=0"],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    out.close()
    server = Server("mariadb", "127.0.0.1", port, datadir, process, user="root", database="test",
                    url=f"mysql://root@127.0.0.1:{port}/test", log=log)
    _wait_port(server, timeout=90)
    return server


# -- Redis ------------------------------------------------------------------------------------


def start_redis(base: Path) -> Server:
    """redis-server on a free port, no persistence, data directory in ``base``."""
    binary = find_binary("redis-server", "redis-server")
    base.mkdir(parents=True, exist_ok=True)
    datadir = base / "redis"
    datadir.mkdir()
    log = base / "redis.log"
    port = free_port()
    out = open(log, "wb")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(datadir), "--daemonize", "no", "--protected-mode", "no",
         "--maxclients", "2000"],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    out.close()
    server = Server("redis", "127.0.0.1", port, datadir, process, url=f"redis://127.0.0.1:{port}/0", log=log)
    _wait_port(server)
    return server


# -- RabbitMQ ------------------------------------------------------------------------------

_RABBIT_DIRS = ("/usr/lib/rabbitmq/bin", "/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin")


@dataclass
class _RabbitServer(Server):
    """rabbitmq-server runs beam under a shell script, and Erlang starts an epmd daemon."""

    epmd_port: int = 0

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, 15)  # the script, beam and its port programs
            except ProcessLookupError:
                pass
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(10)
        epmd = shutil.which("epmd")
        if epmd and self.epmd_port:  # our own epmd, on its own port: nothing else uses it
            subprocess.run([epmd, "-kill"], env={**os.environ, "ERL_EPMD_PORT": str(self.epmd_port)},
                           capture_output=True, timeout=10)


def start_rabbitmq(base: Path) -> Server:
    """rabbitmq-server on a free port, no plugins, its node, epmd and data all private to ``base``.

    ``.url`` is ``amqp://guest:guest@127.0.0.1:PORT//`` (guest may log in over loopback).
    """
    # The script itself, not Debian's /usr/sbin wrapper: the wrapper switches to the
    # rabbitmq user, who cannot write to a root-owned temp dir; the server runs as us.
    direct = [path for pattern in _RABBIT_DIRS
              for path in sorted(glob.glob(os.path.join(pattern, "rabbitmq-server")))
              if os.access(path, os.X_OK)]
    binary = direct[0] if direct else find_binary("rabbitmq-server", "rabbitmq-server")
    base.mkdir(parents=True, exist_ok=True)
    port, dist_port, epmd_port = free_port(), free_port(), free_port()
    for sub in ("mnesia", "log"):
        (base / sub).mkdir(exist_ok=True)
    (base / "enabled_plugins").write_text("[].\n")
    (base / "rabbitmq.conf").write_text(f"listeners.tcp.default = 127.0.0.1:{port}\n")
    log = base / "rabbitmq.log"
    env = {
        **os.environ,
        "HOME": str(base),  # the Erlang cookie goes there
        "RABBITMQ_NODENAME": f"greensched{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "ERL_EPMD_PORT": str(epmd_port),
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_LOGS": "-",
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
    }
    out = open(log, "wb")
    process = subprocess.Popen([binary], env=env, stdout=out, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, cwd=str(base), start_new_session=True)
    out.close()
    server = _RabbitServer("rabbitmq", "127.0.0.1", port, base, process,
                           url=f"amqp://guest:guest@127.0.0.1:{port}//", log=log, epmd_port=epmd_port)
    try:
        _wait_port(server)
    except BaseException:
        server.stop()  # its epmd too
        raise
    return server

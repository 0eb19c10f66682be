"""Green PostgreSQL drivers that wait inside C: psycopg2 and psycopg 3.

Both drivers talk to libpq, whose blocking calls wait in C ``poll()`` and retry
``EINTR`` in C: no Python code runs there, so neither patching sockets nor
preemption can help, and one query would freeze every green thread. Both offer a
hook instead, and this module installs it:

* **psycopg2** (2.2+; checked on 2.9.12's source and 2.9.13): with a wait callback
  set (``psycopg2.extensions.set_wait_callback``), it drives libpq non-blocking and
  calls the callback whenever libpq would wait; `wait_callback` parks on the
  connection's fd, reading or writing as ``conn.poll()`` asks.
* **psycopg 3** (checked on 3.2.13 and 3.3.9): it consumes its libpq generators
  through the module functions ``psycopg.waiting.wait`` and ``wait_conn``, looked up at each
  call (``waiting.wait(...)`` in ``connection.py``); on import it picks its C
  ``wait_c``, because ``waiting._is_select_patched()`` only recognises gevent. We
  replace both functions with `wait` and `wait_conn` below, which park on the fd.

psycopg2's callback also keeps ``connect_timeout`` (libpq ignores it for the
non-blocking connect a callback makes it use), and records which connections are
in the middle of a query: psycopg2 holds a connection's C lock meanwhile, and a
``close()`` of it from another green thread deadlocks; the blocking detector's
report names them (`_busy_hint`).

`patch` installs them at once for a driver already imported, and otherwise right
after the driver's package is imported (`_postimport.when_imported`).
``patch_all(drivers=False)`` leaves both drivers alone.

A `Timeout` or a kill during a query must not leave the connection busy with a
query nobody reads (the next one would fail with "another command is already in
progress"), nor leave the query running on the server:

* psycopg2: `wait_callback` asks the server to cancel the query
  (``pg_cancel_backend()`` over a new green connection, `_Canceller`: never
  ``conn.cancel()``, which blocks the whole process in C; again every 0.25 s in
  case the first came before the query started), reads until the server says the
  query ended, all within `CANCEL_GRACE` seconds, then lets the exception go on.
  psycopg2 itself then closes the connection: any error from its wait callback does
  (2.9's green.c), so it is closed cleanly, never left busy; a pool drops it (``conn.closed`` is true).
* psycopg 3 already does exactly this for ``KeyboardInterrupt`` (and, in 3.3,
  ``SystemExit``): ``Connection.wait`` catches ``psycopg.connection._INTERRUPTED``,
  cancels, and waits for the server (3.3: 5 s at most, then closes). We set it to
  ``(BaseException,)``: any exception thrown into a parked query (`TimeoutExpired`,
  ``GreenThreadExit``, one from ``GreenThread.throw()``) is an interruption.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
import weakref
from collections.abc import Callable, Generator
from time import monotonic
from types import ModuleType
from typing import Any

from .._core._hub import Hub, get_hub  # its fd waits take an owner (see _LibpqSocket)
from .._core._stacks import display_name
from ..scheduler import wait_fds, wait_readable, wait_writable
from ..timeout import Timeout, TimeoutExpired
from ._postimport import when_imported
from ._registry import mark_module, original, patch_attr

__all__ = ["patch", "wait_callback", "wait", "wait_conn", "CANCEL_GRACE"]

#: What is replaced in ``psycopg.waiting`` (psycopg2 gets a callback, no attribute).
__implements__ = ["wait", "wait_conn"]

#: Seconds to wait for a cancelled psycopg2 query to end before letting the exception go on.
CANCEL_GRACE = 5.0

#: Seconds between two cancel requests while it has not ended (one sent before the
#: server began the query is lost: the server ignores a cancel while it is idle).
_CANCEL_RESEND = 0.25


# -- psycopg2 ------------------------------------------------------------------------------


def wait_callback(conn: Any, *_cursor: Any) -> None:
    """psycopg2's wait callback: run ``conn.poll()`` until it is done, parking between.

    psycopg2 calls it (holding the connection's lock) whenever libpq would block:
    while connecting, sending a query and reading its results. While connecting it
    keeps to ``connect_timeout``, as libpq does for a blocking connect but not for
    the non-blocking one a wait callback makes it use.
    """
    hub = get_hub()
    deadline = _connect_deadline(conn) if conn.status not in _QUERY_STATUSES else None
    key = id(conn)
    _busy[key] = hub.current  # psycopg2 holds the connection's lock until we return
    try:
        _wait_until_done(conn, hub, deadline)
    finally:
        if _busy.get(key) is hub.current:
            del _busy[key]


def _wait_until_done(conn: Any, hub: Hub, deadline: float | None) -> None:
    while True:
        state = conn.poll()
        if state == _POLL_OK:
            return
        timeout = None if deadline is None else deadline - monotonic()
        if timeout is not None and timeout <= 0:
            raise _psycopg2_error("timeout expired")  # libpq's own words for a blocking connect
        try:
            if state == _POLL_READ:
                hub.wait_readable(conn.fileno(), timeout, _owner(conn))
            elif state == _POLL_WRITE:
                hub.wait_writable(conn.fileno(), timeout, _owner(conn))
            else:
                raise _psycopg2_error(f"psycopg2's conn.poll() returned {state!r}, which is not "
                                      f"POLL_OK, POLL_READ or POLL_WRITE")
        except BaseException:  # a Timeout, a kill, Ctrl-C: the query must not go on
            _cancel_and_drain(conn, _POLL_OK, _POLL_READ)
            raise


#: id(connection) -> the green thread parked in its wait callback, which holds the
#: connection's C lock meanwhile. For the blocking detector's report (`_busy_hint`).
_busy: dict[int, Any] = {}


def _busy_hint() -> str:
    """The blocking detector's note on psycopg2 connections in the middle of a query."""
    holders = [display_name(thread) for thread in list(_busy.values())]  # threading's names
    if not holders:
        return ""
    names = ", ".join(repr(name) for name in holders[:5]) + (", ..." if len(holders) > 5 else "")
    return (f"psycopg2: {len(holders)} connection(s) are in the middle of a query, parked in green "
            f"thread(s) {names}. psycopg2 holds a connection's lock while its query waits, and its "
            f"close() waits in C for that lock: close() on that connection from another green "
            f"thread holds this OS thread, so the query's thread never runs again to release "
            f"it, a deadlock. Close a connection from the thread that uses it; to stop its "
            f"query, use a greensched.Timeout in that thread or kill() it (docs/drivers.md).\n")


# psycopg2.extensions' POLL_OK, POLL_READ, POLL_WRITE (its documented values; checked at install).
_POLL_OK, _POLL_READ, _POLL_WRITE = 0, 1, 2


def _connect_deadline(conn: Any) -> float | None:
    """When a connect must give up, from its ``connect_timeout`` (or ``PGCONNECT_TIMEOUT``).

    libpq's rules (its ``connectDBComplete``): whole seconds; 0, a negative value or
    none means no limit; 1 means 2. libpq applies it to each host it tries; here it
    bounds the whole connect, which is the same for one host and shorter for a list.
    """
    try:
        value = conn.get_dsn_parameters().get("connect_timeout")  # PQconninfo: the DSN and PG* env
    except Exception:  # psycopg2 < 2.7, or a closed connection
        value = os.environ.get("PGCONNECT_TIMEOUT")
    try:
        seconds = int(str(value).strip()) if value not in (None, "") else 0
    except ValueError:
        return None  # libpq itself refuses a malformed value before we are called
    if seconds <= 0:
        return None
    return monotonic() + max(seconds, 2)


def _psycopg2_error(message: str) -> BaseException:
    from psycopg2 import OperationalError

    error: BaseException = OperationalError(message)
    return error


class _LibpqSocket:
    """Vouches to the netpoller for a connected psycopg2 connection's socket, so that its
    registration is kept between waits (two ``epoll_ctl`` calls fewer per query).

    libpq closes its socket without telling us, so the netpoller's check for a file
    closed behind its back applies: this owner lives exactly as long as the
    connection (`_owners` holds it until the connection is collected), and its
    ``fileno()`` fails once the connection is closed; either way the stale
    registration is dropped.
    """

    __slots__ = ("_conn", "__weakref__")

    def __init__(self, conn: Any) -> None:
        key, me = id(conn), weakref.ref(self)

        def forget(_ref: Any) -> None:
            if _owners.get(key) is me():
                del _owners[key]
        self._conn = weakref.ref(conn, forget)

    def fileno(self) -> int:
        conn = self._conn()
        if conn is None or conn.closed:
            raise ValueError("the psycopg2 connection is closed")
        return conn.fileno()  # type: ignore[no-any-return]  # psycopg2 has no type hints


#: id(connection) -> its owner. Not a WeakKeyDictionary: its lookups make a weak
#: reference each time, and this one is made on every wait of every query.
_owners: dict[int, _LibpqSocket] = {}


def _owner(conn: Any) -> _LibpqSocket | None:
    """The connection's `_LibpqSocket` once it is connected (libpq may try several
    sockets while connecting: no registration is kept for those)."""
    owner = _owners.get(id(conn))
    if owner is not None and owner._conn() is conn:
        return owner
    if conn.status not in _QUERY_STATUSES:
        return None
    try:
        owner = _LibpqSocket(conn)
    except TypeError:  # not weakly referenceable: wait without keeping the registration
        return None
    _owners[id(conn)] = owner
    return owner


def _cancel_and_drain(conn: Any, poll_ok: int, poll_read: int) -> None:
    """Cancel the running query and read until the server says it ended, within `CANCEL_GRACE`.

    Errors are swallowed (the server's cancellation error, a broken link): the
    exception that interrupted the wait is the one to raise. A new interruption
    while draining (an outer `Timeout`, a kill, Ctrl-C) is raised at once instead:
    it must not be lost. psycopg2 closes the connection when its callback raises
    (``green_panic`` in its green.c), so libpq's state needs no repair: what matters
    is that the server stops the query, which it would otherwise run to its end.
    """
    hub = get_hub()
    canceller: _Canceller | None = None
    try:
        if conn.closed or conn.status not in _QUERY_STATUSES:
            return  # still connecting (nothing to cancel), or gone
        deadline = monotonic() + CANCEL_GRACE
        canceller = _Canceller(conn, deadline)
        next_cancel = 0.0
        while True:
            now = monotonic()
            if now >= deadline:
                return
            if now >= next_cancel:
                canceller.cancel()
                next_cancel = monotonic() + _CANCEL_RESEND
                continue  # the cancel took time: look at the clock again
            state = conn.poll()
            if state == poll_ok:
                return
            wait = hub.wait_readable if state == poll_read else hub.wait_writable
            wait(conn.fileno(), max(0.001, min(next_cancel, deadline) - monotonic()), _owner(conn))
    except BaseException as exc:
        if isinstance(exc, TimeoutExpired) or not isinstance(exc, Exception):
            raise  # interrupted again: that one goes on
        return
    finally:
        if canceller is not None:
            canceller.close()


class _Canceller:
    """Cancels a psycopg2 connection's query green: ``pg_cancel_backend()`` over a new connection.

    Not ``conn.cancel()``: that is libpq's PQcancel, which opens its own connection and
    waits for it in C with the GIL held, freezing every thread of the process for as
    long as the server or the network takes (forever, if it never answers). The new
    connection is a psycopg2 one, so it parks through `wait_callback` like any other;
    every step is bounded by the caller's deadline. It goes to the host and port the
    query's connection reached (``conn.info``), as the same user.
    """

    __slots__ = ("_target", "_pid", "_deadline", "_conn")

    def __init__(self, target: Any, deadline: float) -> None:
        self._target = target
        self._pid: int = target.get_backend_pid()
        self._deadline = deadline
        self._conn: Any = None

    def cancel(self) -> None:
        """Ask the server to cancel the query once; give up quietly at the deadline or on an error."""
        left = self._deadline - monotonic()
        if left <= 0:
            return
        bound = Timeout(left)
        try:
            with bound:
                if self._conn is None:
                    self._conn = self._connect()
                with self._conn.cursor() as cursor:
                    cursor.execute("SELECT pg_cancel_backend(%s)", (self._pid,))
        except TimeoutExpired as exc:
            if exc.timeout is not bound:
                raise  # an outer Timeout: it goes on
            self.close()
        except Exception:  # refused, reset, no permission: the drain's deadline still holds
            self.close()

    def _connect(self) -> Any:
        import psycopg2

        target = self._target
        overrides: dict[str, Any] = {}
        info = getattr(target, "info", None)  # psycopg2 2.8+
        if info is not None:
            # conn.dsn hides the password; a list of hosts may pick another server.
            overrides = {"host": info.host, "port": info.port}
            if info.password:
                overrides["password"] = info.password
        conn = psycopg2.connect(target.dsn, **overrides)
        conn.autocommit = True
        return conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass


# psycopg2's STATUS_READY, STATUS_BEGIN, STATUS_PREPARED: a query may be running.
_QUERY_STATUSES = (1, 2, 5)


def _install_psycopg2(module: ModuleType) -> None:
    extensions: Any = sys.modules.get("psycopg2.extensions") or getattr(module, "extensions", None)
    setter = getattr(extensions, "set_wait_callback", None)
    if setter is None:
        raise RuntimeError("psycopg2.extensions.set_wait_callback is missing (psycopg2 < 2.2?)")
    found = (extensions.POLL_OK, extensions.POLL_READ, extensions.POLL_WRITE)
    if found != (_POLL_OK, _POLL_READ, _POLL_WRITE):
        raise RuntimeError(f"psycopg2's POLL_OK, POLL_READ, POLL_WRITE are {found}, not (0, 1, 2)")
    current = extensions.get_wait_callback()
    if current is not None and current is not wait_callback:
        # The program (or psycogreen) chose its own: keep it, and say so.
        warnings.warn(f"greensched.patch_all(): psycopg2 already has a wait callback ({current!r}); "
                      f"keeping it. Remove it, or pass patch_all(drivers=False) to silence this.",
                      RuntimeWarning, stacklevel=4)
        return
    setter(wait_callback)
    from ..monitor import add_stuck_hint

    add_stuck_hint(_busy_hint)
    mark_module("psycopg2")


# -- psycopg 3 -----------------------------------------------------------------------------

# psycopg.waiting's Wait and Ready values (its _enums: Wait.R 1, W 2, RW 3; Ready the same).
_WAIT_R, _WAIT_W = 1, 2
_READY_NONE, _READY_R, _READY_W = 0, 1, 2


def _park(fileno: int, s: int, timeout: float | None) -> int:
    """Park until ``fileno`` is ready for what ``s`` asks; the `Ready` value (0: timed out).

    A timeout of 0 or less looks once, without parking: psycopg's ``timeout=0`` (as in
    ``conn.notifies(timeout=0)``) promises at least one look at the socket, and
    `wait_readable` with no time left would give up without looking.
    """
    if timeout is not None and timeout <= 0:
        wanted = (_READY_R if s & _WAIT_R else 0) | (_READY_W if s & _WAIT_W else 0)
        return _ready_now(fileno) & wanted
    if s == _WAIT_R:
        return _READY_R if wait_readable(fileno, timeout) else _READY_NONE
    if s == _WAIT_W:
        return _READY_W if wait_writable(fileno, timeout) else _READY_NONE
    if not wait_fds((fileno,), (fileno,), timeout):
        return _READY_NONE
    return _ready_now(fileno)


def _ready_now(fileno: int) -> int:
    """Which of read and write ``fileno`` is ready for, without waiting (the C poll)."""
    poller = _c_poll()
    poller.register(fileno, 0x001 | 0x004)  # POLLIN | POLLOUT
    ready = _READY_NONE
    for _fd, events in poller.poll(0):
        if events & 0x001:
            ready |= _READY_R
        if events & 0x004:
            ready |= _READY_W
        if events & ~0x005:  # an error or hang-up: let libpq read it and say what happened
            ready |= _READY_R
    return ready


#: The stdlib's C ``select.poll`` (never the patched one: this must not park), captured
#: once; `_ready_now` makes one poll object per call (it is cheap: no syscall until poll).
_c_poll: Callable[[], Any] = original("select", "poll")


def _slice(interval: float | None, deadline: float | None) -> float | None:
    """How long one park may last: until the next interval check, never past the deadline.

    An interval of 0 means "look once", as in psycopg's own functions (their
    ``select(timeout=interval)``): psycopg 3.2's ``notifies(timeout=0)`` passes it.
    """
    step = max(0.0, interval) if interval is not None else None
    if deadline is None:
        return step
    left = max(0.0, deadline - monotonic())
    return left if step is None else min(step, left)


def wait(gen: Generator[int, Any, Any], fileno: int, interval: float | None = 0.0,
         timeout: float | None = None) -> Any:
    """``psycopg.waiting.wait``, green: consume a libpq generator, parking on ``fileno``.

    As psycopg's own functions: every ``interval`` seconds without readiness the
    generator is sent ``Ready.NONE`` (after checking the socket is still open), and
    past ``timeout`` seconds ``psycopg.errors._WaitTimeout`` is raised.
    """
    deadline = None if timeout is None else monotonic() + timeout
    try:
        s = next(gen)
        while True:
            ready = _park(fileno, s, _slice(interval, deadline))
            if not ready:
                _check_fd_open(fileno)
            s = gen.send(ready)
            if deadline is not None and monotonic() >= deadline:
                raise _wait_timeout()
    except StopIteration as done:
        return done.value


def wait_conn(gen: Generator[tuple[int, int], Any, Any], interval: float | None = 0.0,
              timeout: float | None = None) -> Any:
    """``psycopg.waiting.wait_conn``, green: as `wait`, the generator naming the fd each time."""
    deadline = None if timeout is None else monotonic() + timeout
    try:
        fileno, s = next(gen)
        while True:
            ready = _park(fileno, s, _slice(interval, deadline))
            fileno, s = gen.send(ready)
            if deadline is not None and monotonic() >= deadline:
                raise _wait_timeout()
    except StopIteration as done:
        return done.value


def _check_fd_open(fileno: int) -> None:
    """psycopg's check after a quiet interval: a socket closed under us is an error."""
    try:
        os.fstat(fileno)
    except OSError as exc:
        from psycopg import OperationalError

        raise OperationalError("connection socket closed") from exc


def _wait_timeout() -> BaseException:
    from psycopg import errors

    return errors._WaitTimeout("wait timeout expired")  # what psycopg's callers catch


#: The parameters of the functions we replace, in the psycopg 3 versions we support:
#: 3.3 (interval, and a timeout that raises _WaitTimeout) and 3.2 (interval only). Our
#: `wait` and `wait_conn` take both forms. (3.1's take ``timeout`` meaning the interval:
#: refused, rather than misread.)
_PSYCOPG_SIGNATURES = {
    "wait": (("gen", "fileno", "interval", "timeout"), ("gen", "fileno", "interval")),
    "wait_conn": (("gen", "interval", "timeout"), ("gen", "interval")),
}


def _install_psycopg(module: ModuleType) -> None:
    """Replace ``psycopg.waiting.wait``/``wait_conn`` (checked on psycopg 3.2.13 and 3.3.9)."""
    import inspect

    waiting = sys.modules.get("psycopg.waiting") or _import_module("psycopg.waiting")
    replacements: dict[str, Callable[..., Any]] = {"wait": wait, "wait_conn": wait_conn}
    for name, accepted in _PSYCOPG_SIGNATURES.items():
        # wait_selector is the reference implementation of `wait`'s contract.
        reference = getattr(waiting, "wait_selector" if name == "wait" else name, None)
        found = tuple(inspect.signature(reference).parameters) if reference is not None else ()
        if found not in accepted:
            raise RuntimeError(f"psycopg.waiting.{name} takes {found}, not {accepted[0]} as in "
                               f"psycopg 3.2 and 3.3 (psycopg {getattr(module, '__version__', '?')})")
    for name, function in replacements.items():
        if getattr(waiting, name) is not function:
            patch_attr(waiting, name, function)
    # What Connection.wait cancels the query for (KeyboardInterrupt in 3.2, with SystemExit
    # in 3.3): any exception at all. Under green threads anything can be thrown into a
    # parked query (a Timeout, a kill, GreenThread.throw(), Celery's SoftTimeLimitExceeded),
    # and each leaves the connection busy unless psycopg cancels. Catching more is safe:
    # psycopg cancels only while a query is active (``transaction_status == ACTIVE``), and
    # its libpq generators' own errors leave none active; then it re-raises the exception.
    connection = sys.modules.get("psycopg.connection") or _import_module("psycopg.connection")
    if not hasattr(connection, "_INTERRUPTED"):
        raise RuntimeError("psycopg.connection._INTERRUPTED is missing (checked on psycopg 3.2 and 3.3)")
    if connection._INTERRUPTED != (BaseException,):
        patch_attr(connection, "_INTERRUPTED", (BaseException,))
    mark_module("psycopg")


def _import_module(name: str) -> ModuleType:
    import importlib

    return importlib.import_module(name)


# -- installing, now or at import ------------------------------------------------------------

_INSTALLERS: dict[str, Callable[[ModuleType], None]] = {
    "psycopg2": _install_psycopg2,
    "psycopg": _install_psycopg,
}


def _install(name: str) -> None:
    """Run one driver's installer; a failure warns (the driver then waits in C), never raises."""
    try:
        _INSTALLERS[name](sys.modules[name])
    except Exception as exc:
        warnings.warn(f"greensched could not make {name} green ({exc}); its queries will block "
                      f"every green thread. Run them with greensched.to_thread(), or report this "
                      f"with your {name} version.", RuntimeWarning, stacklevel=2)


def patch() -> None:
    """Make psycopg2 and psycopg 3 green: now if imported, otherwise when they are."""
    for name in _INSTALLERS:
        when_imported(name, functools.partial(_install, name))

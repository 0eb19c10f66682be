"""A gunicorn worker that serves every connection on its own green thread.

    gunicorn -k greensched.gunicorn.GreenWorker -w 4 app:app

Each worker process is one OS thread running thousands of green threads: one
acceptor per listening socket, one green thread per connection (HTTP/1.1 keep-alive
and HTTP/2 included), and the worker's main green thread, which sends gunicorn's
heartbeat. Start one worker per core (``-w $(nproc)``); ``--worker-connections``
(default 1000) caps the connections one worker serves at once.

What happens, and why
---------------------
* **Patching comes first.** `GreenWorker.init_process` calls `patch_all()` before
  gunicorn's own ``init_process`` loads the application, so the application's
  ``time.sleep``, sockets, ``requests`` and ``threading`` are green from their first
  import. The arbiter itself is never patched: it only forks, sleeps and signals.
  ``--preload`` imports the application in the arbiter, before any patching; the
  worker logs a warning then (names copied from ``socket`` at import stay blocking).
* **The listeners are re-wrapped as green sockets** (the inherited fds, detached from
  gunicorn's wrappers, kept non-blocking). An acceptor accepts until the backlog is
  empty, then parks on the listener's fd in the hub's netpoller, so waiting for
  clients never blocks the OS thread. With several workers every worker polls the
  same listening socket and the kernel hands each connection to one of them; a busy
  worker polls less often, so new connections drift to the idle ones. After 16
  accepts in a row the acceptor yields, so new connections get read before more are
  taken (``--reuse-port`` gives each worker its own queue, if you want an even split).
* **Fairness between connections.** A connection's thread yields before it reads
  its next request. Without that, a client that always has its next request ready
  (a benchmark, a proxy) was served for a whole slice in a row while the others
  waited: wrk at 100 connections saw a p99 latency of 0.45-0.5 s, now about 22 ms,
  for the same requests per second (gevent's worker has that tail: 0.5-1 s).
* **Requests run on gunicorn's own machinery**: `GreenWorker` is an
  ``AsyncWorker`` (the base of gunicorn's gevent and eventlet workers), so parsing,
  ``wsgi.create``, the access log, ``pre_request``/``post_request``, error pages and
  HTTP/2 are gunicorn's code. We add the acceptors, the connection cap, the
  keep-alive timeout (a green `Timeout` around the wait for the next request), the
  heartbeat and the shutdown.
* **The heartbeat survives a busy handler.** gunicorn's arbiter kills a worker whose
  heartbeat file has not been touched for ``--timeout`` seconds. The main green
  thread touches it at least once a second; it is a sleeper, and preemption wakes a
  sleeper whose timer fell due within a fraction of a slice, even while a handler
  spins on the CPU. A handler that computes for a minute therefore does not get its
  worker killed, and the other connections keep being served meanwhile. (A C call
  that never checks for signals, e.g. one huge regex, still freezes the whole worker;
  the arbiter then kills it after ``--timeout``, as it would a sync worker.)
* **Worker connections** are a semaphore: an acceptor takes a unit before it
  accepts, so a worker at the cap stops accepting and leaves new connections in the
  kernel's backlog for the other workers.

Signals
-------
gunicorn installs the worker's handlers (``SIGTERM``, ``SIGQUIT``, ``SIGINT``,
``SIGUSR1``, ``SIGABRT``, ``SIGWINCH``) in ``init_signals``; greensched's preemptor
owns ``SIGALRM`` and ``SIGRTMAX`` and installs them lazily, the first time threads
compete. They coexist because they are different signals, with one rule: a
Python signal handler runs in *whatever green thread happens to be running* (or in
the hub), between two of its bytecodes. gunicorn's stock handlers call
``sys.exit()`` and ``time.sleep()``: here the ``SystemExit`` would end some
unrelated request's green thread (and be reported as that request's error) instead
of the worker, and parking inside a handler could happen in the middle of the
scheduler's own bookkeeping. So our handlers only **set a flag and write one byte to
gunicorn's wake-up pipe** (``os.write`` on a non-blocking fd: safe anywhere); the main
green thread, parked on that pipe, wakes up and does the work (hooks, logging,
exiting). ``alive`` is a property for the same reason: whatever sets it to False
(``SIGTERM``, ``max_requests``, the reloader) wakes the main thread at once.

gunicorn also points ``signal.set_wakeup_fd`` at that pipe, so every signal,
preemption ticks included, writes a byte to it at the C level. The main thread
drains it each time it wakes; an undrained pipe would fill up and make Python print
"Exception ignored when trying to write to the signal wakeup fd" on every signal.

``SIGINT`` keeps gunicorn's meaning (quick shutdown, like ``SIGQUIT``): greensched
only installs its own ``SIGINT`` handler while Python's default one is in place,
which it no longer is once gunicorn's are installed.

One more interplay, with the preemptor rather than with signals: it never switches
while a frame of a ``greensched.*`` module is on the interrupted stack (that is its
own bookkeeping), so the methods of this module that call gunicorn and the
application are declared entry points (``mark_root``); without that, a spinning
handler would freeze the worker.

Shutting down
-------------
* ``SIGTERM`` (graceful; the arbiter sends it on its own ``SIGTERM`` and ``SIGHUP``,
  and ``--max-requests`` does the same from inside): stop accepting, let the requests
  in flight finish
  (each answered with ``Connection: close``), close idle keep-alive connections after
  at most 2 s, and exit once all are done, or after ``--graceful-timeout``, cutting
  off what is left.
* ``SIGQUIT``/``SIGINT`` (quick): run the ``worker_int`` hook and exit at once,
  cutting off the requests in flight. ``SIGABRT`` (the arbiter's timeout) runs
  ``worker_abort`` and exits with status 1.
"""

from __future__ import annotations

import errno
import os
import time
import warnings
from types import FrameType, TracebackType
from typing import Any

try:
    from gunicorn import sock as _gunicorn_sock, util as _gunicorn_util
    from gunicorn.workers.base_async import AsyncWorker
except ImportError as _exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "greensched.gunicorn needs gunicorn 21 or later; install it with "
        "`pip install 'greensched[gunicorn]'` (or `pip install gunicorn`)"
    ) from _exc

from . import (
    BoundedSemaphore,
    GreenThread,
    GreenThreadExit,
    Timeout,
    TimeoutExpired,
    current_thread,
    patch_all,
    sleep,
    wait_readable,
)
from ._core._preempt import mark_root
from .net.socket import socket as _green_socket

__all__ = ["GreenWorker"]

#: The longest the main green thread goes without touching the heartbeat file.
HEARTBEAT_MAX_S = 1.0
#: How long a stopping worker keeps idle keep-alive connections open (at most),
#: for a request a client may already be sending (gthread does the same).
STOP_KEEPALIVE_LINGER_S = 2.0
#: After a quick shutdown or the graceful timeout: how long cut-off connections get
#: to run their ``finally`` blocks and close their sockets.
CUT_OFF_GRACE_S = 0.1

#: patch_all() warns that ssl was imported first. In a worker that is gunicorn
#: itself (for ``ssl.SSLError`` and its TLS setup), not the application: harmless,
#: since ssl sockets are made green through ``SSLContext.sslsocket_class``.
_SSL_ONLY_WARNING = r"greensched\.patch_all\(\) was called after ssl was imported"

#: accept() errors that say "the process is out of something": wait, don't spin.
_ACCEPT_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: accept() errors about one client that gave up: just accept the next one.
_ACCEPT_CLIENT_ERRORS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})


class GreenWorker(AsyncWorker):  # type: ignore[misc]  # gunicorn has no type hints
    """gunicorn worker: ``-k greensched.gunicorn.GreenWorker``; see the module docstring."""

    #: Connections an acceptor takes in a row before it lets the others run.
    accept_batch: int = 16

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._alive = True
        super().__init__(*args, **kwargs)
        #: Set by SIGQUIT/SIGINT (0) or SIGABRT (1): exit now with this status.
        self._exit_status: int | None = None
        self._reopen_logs = False
        self._slots: BoundedSemaphore | None = None
        self._acceptors: list[GreenThread] = []
        #: Connection threads still running; those waiting for their next request.
        self._connections: set[GreenThread] = set()
        self._idle: set[GreenThread] = set()
        self._ssl_context: Any = None
        self._next_beat = 0.0

    # -- alive wakes the main loop -----------------------------------------------------

    @property
    def alive(self) -> bool:
        """False once the worker should stop; setting it so wakes the main green thread."""
        return self._alive

    @alive.setter
    def alive(self, value: bool) -> None:
        self._alive = bool(value)
        if not value:
            self._wake_main()

    def _wake_main(self) -> None:
        """Make the main green thread's wait return; safe from a signal handler."""
        if self.PIPE:
            try:
                os.write(self.PIPE[1], b"!")
            except OSError:
                pass  # full: a wake-up is pending already; closed: we are exiting

    # -- start-up --------------------------------------------------------------------------

    def init_process(self) -> None:
        """Patch the stdlib, then let gunicorn load the application and call `run`."""
        self.patch()
        super().init_process()

    def patch(self) -> None:
        """`patch_all()` and green listening sockets; runs before the app is imported."""
        if self.cfg.preload_app:
            self.log.warning(
                "greensched: --preload imported the application in the arbiter, before this "
                "worker called greensched.patch_all(); whatever it copied out of socket, time "
                "or threading at import stays blocking. Drop --preload (or preload_app=True) "
                "to have every worker patch before importing the application."
            )
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_SSL_ONLY_WARNING, category=RuntimeWarning)
            patch_all()
        # Set by gunicorn's Worker, which has no type hints.
        self.sockets = [self._green_listener(listener) for listener in self.sockets]  # type: ignore[has-type]

    @staticmethod
    def _green_listener(listener: Any) -> _green_socket:
        """The inherited listening socket as a green socket (same fd, family detected)."""
        raw = getattr(listener, "sock", listener)  # gunicorn wraps it in a BaseSocket
        green = _green_socket(fileno=raw.detach())
        green.setblocking(False)  # the acceptor tries accept() and parks on the fd itself
        return green

    # -- signal handlers: set a flag, wake the main green thread, nothing else ---------------

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """SIGTERM: graceful shutdown (see the module docstring)."""
        self.alive = False

    def handle_quit(self, sig: int, frame: FrameType | None) -> None:
        """SIGQUIT, SIGINT: quick shutdown; the main green thread runs ``worker_int``."""
        if self._exit_status is None:
            self._exit_status = 0
        self.alive = False

    def handle_abort(self, sig: int, frame: FrameType | None) -> None:
        """SIGABRT (the arbiter's timeout): ``worker_abort``, then exit with status 1."""
        self._exit_status = 1
        self.alive = False

    def handle_usr1(self, sig: int, frame: FrameType | None) -> None:
        """SIGUSR1: reopen the log files, from the main green thread."""
        self._reopen_logs = True
        self._wake_main()

    def handle_winch(self, sig: int, frame: FrameType | None) -> None:
        """SIGWINCH: ignored, as gunicorn's workers do (without logging from a handler)."""

    # -- the main green thread -----------------------------------------------------------------

    def run(self) -> None:
        """Accept and serve until told to stop; the heartbeat runs here meanwhile."""
        self._slots = BoundedSemaphore(max(1, int(self.worker_connections)))
        if self.cfg.is_ssl:
            self._ssl_context = _gunicorn_sock.ssl_context(self.cfg)
        self._acceptors = [
            GreenThread(self._accept_loop, name=f"gunicorn-acceptor-{listener.fileno()}",
                        args=(listener,), daemon=True).start()
            for listener in self.sockets
        ]
        while self.alive:
            until_beat = self._tick()
            if self.ppid != os.getppid():
                self.log.info("Parent changed, shutting down: %s", self)
                self.alive = False
                break
            self._park(until_beat)
        self._stop_accepting()
        if self._exit_status is None:
            self._drain()
        if self._exit_status is not None:
            if self._exit_status == 0:
                self.cfg.worker_int(self)
            else:
                self.cfg.worker_abort(self)
        self._cut_off()
        if self._exit_status is not None:
            raise SystemExit(self._exit_status)

    def _heartbeat_interval(self) -> float:
        """Often enough for the arbiter's ``--timeout`` (it hands us half of it)."""
        timeout = float(self.timeout or 0)
        return min(HEARTBEAT_MAX_S, timeout / 2) if timeout > 0 else HEARTBEAT_MAX_S

    def _tick(self) -> float:
        """The heartbeat when due and the work signal handlers left for us; seconds to
        the next beat. (The main thread wakes for every signal, preemption ticks too.)"""
        now = time.monotonic()
        if now >= self._next_beat:
            self.notify()
            self._next_beat = now + self._heartbeat_interval()
        if self._reopen_logs:
            self._reopen_logs = False
            self.log.reopen_files()
        return self._next_beat - now

    def _park(self, timeout: float) -> None:
        """Wait on the wake-up pipe for ``timeout`` s at most; drain what woke us."""
        if timeout > 0 and wait_readable(self.PIPE[0], timeout):
            try:
                while os.read(self.PIPE[0], 4096):
                    pass
            except OSError:
                pass  # BlockingIOError: drained

    def _stop_accepting(self) -> None:
        """Stop the acceptors and close this worker's copies of the listening sockets."""
        for acceptor in self._acceptors:
            acceptor.kill(timeout=CUT_OFF_GRACE_S)
        for listener in self.sockets:
            _gunicorn_util.close(listener)

    def _drain(self) -> None:
        """Graceful: wait for the connections to finish, at most ``--graceful-timeout``."""
        start = time.monotonic()
        deadline = start + float(self.cfg.graceful_timeout)
        linger_end = start + min(float(self.cfg.keepalive or 0), STOP_KEEPALIVE_LINGER_S)
        while self._connections and self._exit_status is None:
            now = time.monotonic()
            if now >= deadline:
                self.log.warning("Worker graceful timeout (pid:%s): cutting off %d connection(s)",
                                 self.pid, len(self._connections))
                return
            if now >= linger_end:
                for thread in list(self._idle):  # waiting for a request that did not come
                    thread.kill(block=False)
            wait = min(self._tick(), deadline - now)
            if self._idle and now < linger_end:
                wait = min(wait, linger_end - now)
            self._park(wait)

    def _cut_off(self) -> None:
        """End the connections still open; give them a moment to close their sockets."""
        for thread in list(self._connections):
            thread.kill(block=False)
        end = time.monotonic() + CUT_OFF_GRACE_S
        for thread in list(self._connections):
            thread.join(max(0.0, end - time.monotonic()))

    # -- acceptors and connections ---------------------------------------------------------------

    def _accept_loop(self, listener: _green_socket) -> None:
        """One per listening socket: take a connection slot, accept, serve on a new thread.

        Accepts up to `accept_batch` connections in a row, then yields: a burst of a
        hundred connects is taken in a few turns. One accept per turn meant one per
        pass of the hub, and with a hundred busy connections the last of a burst
        waited 0.7 s for its first request (wrk's p99 was 185 ms instead of 25 ms).
        """
        slots = self._slots
        assert slots is not None
        fd = listener.fileno()
        batch = 0
        while self.alive:
            slots.acquire()  # at worker_connections: wait here; the kernel queues the rest
            try:
                client, addr = listener.accept()  # non-blocking: see _green_listener
            except BlockingIOError:
                slots.release()
                batch = 0
                try:
                    wait_readable(fd)
                except OSError:
                    if not self.alive:
                        return  # the listener was closed under us: we are stopping
                    raise
                continue
            except OSError as exc:
                slots.release()
                if not self.alive:
                    return
                if exc.errno in _ACCEPT_CLIENT_ERRORS:
                    continue
                if exc.errno in _ACCEPT_RESOURCE_ERRORS:
                    self.log.error(
                        "accept() failed: %s. Raise the open-files limit (ulimit -n) or lower "
                        "--worker-connections (now %s); retrying in 0.5 s", exc, self.worker_connections)
                    sleep(0.5)
                    continue
                raise
            except BaseException:
                slots.release()
                raise
            thread = GreenThread(self._serve, args=(listener, client, addr), daemon=True)
            self._connections.add(thread)
            thread.start()
            batch += 1
            if batch >= self.accept_batch:
                batch = 0
                sleep(0)  # the new connections read their requests before we take more

    def _serve(self, listener: _green_socket, client: _green_socket, addr: Any) -> None:
        """A connection's green thread: gunicorn's keep-alive loop, then the bookkeeping."""
        me = current_thread()
        try:
            self.handle(listener, client, addr)
        finally:
            self._connections.discard(me)
            self._idle.discard(me)
            assert self._slots is not None
            self._slots.release()
            if not self._alive:
                self._wake_main()  # the graceful wait counts connections

    def handle(self, listener: Any, client: Any, addr: Any) -> None:
        """Wrap TLS if configured, then run gunicorn's connection handling (keep-alive loop)."""
        client.setblocking(True)
        if self._ssl_context is not None:
            try:
                client = self._ssl_context.wrap_socket(
                    client, server_side=True,
                    suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
                    do_handshake_on_connect=self.cfg.do_handshake_on_connect)
            except OSError as exc:  # ssl.SSLError included: a client that failed its handshake
                self.log.debug("TLS handshake with %s failed: %s", addr, exc)
                _gunicorn_util.close(client)
                return
        super().handle(listener, client, addr)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """A connection cut off by shutdown is not a request error: no 500, no traceback."""
        if isinstance(exc, GreenThreadExit):
            self.log.debug("Connection from %s cut off by the worker's shutdown", addr)
            raise exc
        super().handle_error(req, client, addr, exc)

    def timeout_ctx(self) -> _IdleWait:
        """How long a keep-alive connection may wait for its next request: ``--keep-alive``."""
        return _IdleWait(self, self.cfg.keepalive)


# The preemptor never switches while a frame of a ``greensched.*`` module is on the
# interrupted stack (that is its own bookkeeping) unless a "root" frame comes first:
# these methods call gunicorn and the application, which must stay preemptible.
for _entry in (GreenWorker.init_process, GreenWorker.run, GreenWorker.handle,
               GreenWorker.handle_error):
    mark_root(_entry)
del _entry


class _IdleWait:
    """``with``: a green `Timeout` around the wait for a request; expiry ends it quietly.

    gunicorn's keep-alive loop reads the next request inside ``with
    worker.timeout_ctx()`` and closes the connection when that yields no request.
    While inside, the connection counts as idle: a stopping worker may close it.
    """

    __slots__ = ("_worker", "_seconds", "_thread", "_timeout")

    def __init__(self, worker: GreenWorker, seconds: float | None) -> None:
        self._worker = worker
        self._seconds = seconds if seconds else None
        self._thread: GreenThread | None = None
        self._timeout: Timeout | None = None

    def __enter__(self) -> _IdleWait:
        # Let the others run before reading the next request: a client that always has
        # its next request ready (a benchmark, a busy proxy) would otherwise be served
        # for a whole slice in a row while a hundred others wait (a 1-2 s tail at c=100).
        sleep(0)
        self._thread = current_thread()
        self._timeout = Timeout(self._seconds)
        self._timeout.__enter__()
        self._worker._idle.add(self._thread)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        self._worker._idle.discard(self._thread)
        timeout = self._timeout
        assert timeout is not None
        timeout.__exit__(exc_type, exc, tb)
        return isinstance(exc, TimeoutExpired) and exc.timeout is timeout

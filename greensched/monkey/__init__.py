"""patch_all(): make the blocking parts of the stdlib green, in place.

Call it once, at start-up, before importing the libraries that use the stdlib
(``requests``, ``urllib3``, ``http.client`` users...): modules that copied a
function with ``from socket import create_connection`` before patching keep the
blocking original. ``python -m greensched script.py`` does it for you.

What each switch replaces (each green module declares it in ``__implements__``):

==========  =================================================================
``time``    ``time.sleep``
``socket``  ``socket.socket``, ``create_connection``, ``create_server``,
            ``socketpair``, ``fromfd``
``dns``     ``getaddrinfo``, ``gethostbyname(_ex)``, ``gethostbyaddr``,
            ``getnameinfo``, ``getfqdn`` (run on real OS threads)
``select``  ``select.select``, ``select.poll``
``selectors`` ``selectors.DefaultSelector``, ``PollSelector``, ``SelectSelector``
``threading`` ``_thread``'s thread starters; ``threading``'s copies of the
            ``_thread`` primitives (threads, locks, idents, ``_local``) and
            its module locks; ``queue``'s classes
``ssl``      ``ssl.SSLContext.sslsocket_class``: ``wrap_socket`` makes green TLS sockets
``subprocess`` ``os.waitpid``, ``subprocess.Popen`` (green pipe files), and the
            selector ``communicate`` uses
``signal``  ``signal.signal``/``getsignal``: an exception a handler raises goes to
            the main green thread, as it does with OS threads; ``alarm``,
            ``setitimer``/``getitimer`` (``ITIMER_REAL``) and the SIGALRM handler
            are the program's own, beside the preemption timer; ``set_wakeup_fd``:
            the program's fd gets its own signals' bytes, not the preemption tick's
``drivers`` psycopg2's wait callback and psycopg 3's ``psycopg.waiting.wait``/
            ``wait_conn``, which park on the connection's fd (at once if imported,
            else when imported); see docs/drivers.md
``asyncio`` the running loop and the policy's current loop, per green thread;
            loops whose waits park their green thread (docs/asyncio.md)
``multiprocessing`` ``Connection`` reads/writes, ``connection.wait``, the
            process-shared locks' acquire (docs/multiprocessing.md)
==========  =================================================================

Patching is idempotent. The originals stay reachable: ``original("time",
"sleep")``; ``is_patched("socket")`` answers, and libraries can ask
``is_module_patched("select")`` as they ask gevent's.
"""

from __future__ import annotations

import sys
import warnings

from ._registry import is_module_patched, is_patched, original, patched_names

__all__ = ["patch_all", "original", "is_patched", "is_module_patched", "patched_names"]

#: The choices of the first patch_all() call; later calls must agree with them.
_first_call: dict[str, bool] | None = None

#: Libraries that copy names out of `socket` at import (``from socket import ...``):
#: what they copied stays blocking if they are imported before patching.
_EARLY_IMPORTERS = ("ssl", "urllib3", "requests")


def patch_all(
    *,
    time: bool = True,
    socket: bool = True,
    dns: bool = True,
    select: bool = True,
    selectors: bool = True,
    threading: bool = True,
    subprocess: bool = True,
    ssl: bool = True,
    signal: bool = True,
    drivers: bool = True,
    asyncio: bool = True,
    multiprocessing: bool = True,
) -> None:
    """Patch the stdlib so blocking calls park green threads instead of the OS thread.

    Each keyword turns one part on or off (all on by default; ``threading`` also
    covers ``threading``'s ``_thread`` primitives and ``queue``). Calling it again with the
    same choices does nothing; with different choices it warns and keeps the first call's (unpatching is not
    supported: it would leave half-green state).
    """
    global _first_call
    choices = {"time": time, "socket": socket, "dns": dns, "select": select, "selectors": selectors,
               "threading": threading, "subprocess": subprocess, "ssl": ssl, "signal": signal,
               "drivers": drivers, "asyncio": asyncio, "multiprocessing": multiprocessing}
    if _first_call is not None:
        if choices != _first_call:
            changed = ", ".join(f"{k}={choices[k]}" for k in choices if choices[k] != _first_call[k])
            warnings.warn(
                f"patch_all() was already called with different choices; ignoring {changed}. "
                f"Call patch_all() once, at start-up, with the options you want.",
                RuntimeWarning,
                stacklevel=2,
            )
        return
    _warn_if_late(choices)
    if socket and not ssl:
        warnings.warn(
            "patch_all(socket=True, ssl=False): the stdlib's ssl.SSLSocket does not work over "
            "green sockets (they are non-blocking underneath), so TLS connections will fail. "
            "Keep ssl=True whenever socket=True.",
            RuntimeWarning,
            stacklevel=2,
        )
    _first_call = choices
    if time:
        from . import _time

        _time.patch()
    if socket:
        from . import _socket

        _socket.patch(dns=dns)
    if select or selectors:
        from . import _select

        if select:
            _select.patch_select()
        if selectors:
            _select.patch_selectors()
    if ssl and socket:
        from . import _ssl

        _ssl.patch()
    if threading:
        from . import _threading

        _threading.patch()
    if subprocess:
        from . import _subprocess

        _subprocess.patch(selectors=selectors)
    if signal:
        from . import _signal

        _signal.patch()
    if drivers:
        from . import _psycopg

        _psycopg.patch()
    if asyncio:
        from ._postimport import when_imported

        when_imported("asyncio", _install_asyncio)  # not before asyncio is (20 ms of import)
    if multiprocessing:
        from . import _multiprocessing

        _multiprocessing.patch(selectors=selectors)


def _install_asyncio() -> None:
    from . import _asyncio

    _asyncio.install()


def _warn_if_late(choices: dict[str, bool]) -> None:
    """Say so when patching comes too late for some of the program to see it."""
    if choices["socket"]:
        early = [name for name in _EARLY_IMPORTERS if name in sys.modules]
        if early:
            warnings.warn(
                f"greensched.patch_all() was called after {', '.join(early)} "
                f"{'was' if len(early) == 1 else 'were'} imported; names they copied from "
                f"the socket module at import stay blocking. Call patch_all() first thing "
                f"in your program, or run it with `python -m greensched script.py`.",
                RuntimeWarning,
                stacklevel=3,
            )
    import threading as stdlib_threading

    others = [t for t in stdlib_threading.enumerate() if t is not stdlib_threading.main_thread()]
    if others:
        warnings.warn(
            f"greensched.patch_all() was called while {len(others)} real OS thread(s) were "
            f"already running ({', '.join(t.name for t in others[:3])}); they stay OS threads. "
            f"Call patch_all() before starting threads.",
            RuntimeWarning,
            stacklevel=3,
        )

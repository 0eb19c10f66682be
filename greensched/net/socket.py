"""The green socket: a drop-in `socket.socket` whose blocking calls park the green thread.

How it works. The real file descriptor is always non-blocking: the C base class
(``_socket.socket``) is given a timeout of 0.0 once, in every constructor path
(``socket()``, ``accept``, ``dup``, ``fromfd``, ``socketpair``, ``socket(fileno=)``),
and never anything else. The timeout the user sees (None: blocking, 0.0:
non-blocking, > 0: a timeout in seconds) is kept here, in Python, starting from
the one the stdlib would have given the socket (``getdefaulttimeout()``, or 0.0
for ``SOCK_NONBLOCK``). Every I/O method first makes the syscall through the base
class; only when it fails with `BlockingIOError` does the green thread park on the
hub's netpoller until the fd is ready, then it tries again. So:

* a blocking or timed socket behaves as the stdlib's does, including
  ``TimeoutError("timed out")`` (``socket.timeout``) once the call's deadline
  passes; the deadline covers the whole call (``sendall``, a retried ``recv``), as
  in CPython; ``sendfile`` gives each wait the full timeout, as CPython's does;
* a non-blocking socket (timeout 0.0) raises the stdlib's own `BlockingIOError`,
  and so does a blocking one given ``MSG_DONTWAIT``, as the stdlib's does;
* `connect` follows CPython's ``internal_connect``: EINPROGRESS, wait until
  writable, then ``SO_ERROR`` (raising e.g. `ConnectionRefusedError`, or returning
  the errno from `connect_ex`; a timed-out `connect_ex` returns EAGAIN, like CPython);
* `close` (and `detach`) first tells the hub, so a green thread parked on the fd
  gets ``OSError(EBADF)`` at once instead of waiting forever;
* a second green thread waiting to read (or write) the same socket gets the
  netpoller's `RuntimeError`.

Host names in addresses (``connect(("example.com", 80))``, ``bind``, ``sendto``,
``sendmsg``) are resolved through the green resolver (`greensched.net.dns`, on a
pool OS thread) before the base class sees them; the C code would otherwise call
``getaddrinfo`` itself and block every green thread.

Nothing here patches anything: `greensched.monkey` installs the names listed in
``__implements__`` into the stdlib `socket` module. Used directly::

    from greensched.net import socket as gsocket
    with gsocket.create_connection(("127.0.0.1", 8080), timeout=5) as s: ...

Known differences from the stdlib:

* the descriptor stays non-blocking after `detach`, and when other code uses
  `fileno()` directly; duplicates of it (``os.dup``, a child process) share that
  O_NONBLOCK flag;
* ``SO_RCVTIMEO``/``SO_SNDTIMEO`` set with `setsockopt` have no effect (the kernel
  applies them to blocking descriptors only): use `settimeout`;
* closing a socket wakes the green threads parked on it in the closing OS
  thread's hub only; one parked in another OS thread's hub keeps waiting (as a
  thread blocked in ``recv`` does on Linux when another thread closes the fd);
* `__repr__` names this module's class; the ``socket.connect`` audit event shows
  the resolved address.
"""

from __future__ import annotations

import _socket
import errno as _errno
import io as _io
import os as _os
import socket as _stdlib_socket
import types as _types
from collections.abc import Callable
from typing import Any

from .._core import _hub as _hub_module
from .._core._hub import clock_now, existing_hub, get_hub
from .._core._netpoll import EVENT_READ as _EVENT_READ, EVENT_WRITE as _EVENT_WRITE
from . import dns as _dns

# Re-exported (they are in __implements__, which patch_all copies onto the socket module).
from .dns import (
    getaddrinfo as getaddrinfo,
    getfqdn as getfqdn,
    gethostbyaddr as gethostbyaddr,
    gethostbyname as gethostbyname,
    gethostbyname_ex as gethostbyname_ex,
    getnameinfo as getnameinfo,
)

__implements__ = [
    "socket", "create_connection", "create_server", "socketpair", "fromfd",
] + list(_dns.__implements__)

__all__ = [*__implements__, "CONSTRUCTORS", "stdlib_function"]

_ss = _socket.socket  # the C base: every real syscall goes through it with timeout 0.0
_ss_gettimeout = _ss.gettimeout
_ss_settimeout = _ss.settimeout
_ss_family = _ss.family
_ss_send = _ss.send
_ss_recv = _ss.recv
_ss_recv_into = _ss.recv_into
_ss_connect = _ss.connect
_ss_connect_ex = _ss.connect_ex
_ss_getsockopt = _ss.getsockopt
_ss_fileno = _ss.fileno
# The stdlib's private exception.
_GiveupOnSendfile = _stdlib_socket._GiveupOnSendfile  # type: ignore[attr-defined]
_AF_INETS = (_socket.AF_INET, getattr(_socket, "AF_INET6", _socket.AF_INET))
# connect() in progress, per CPython's internal_connect (EINTR: it goes on asynchronously).
_CONNECTING = (_errno.EINPROGRESS, _errno.EINTR)
_ALREADY_CONNECTED = (0, _errno.EISCONN)
_MSG_DONTWAIT = getattr(_socket, "MSG_DONTWAIT", 0)
# Give up waiting for a full AF_UNIX backlog in steps of at most this many seconds.
_MAX_BACKOFF = 0.05


def _timed_out() -> TimeoutError:
    """The exception CPython raises when a socket's timeout expires (`socket.timeout`)."""
    return TimeoutError("timed out")


def _parse_timeout(setter: Callable[[Any, Any], Any], value: Any) -> float | None:
    """What the stdlib's ``settimeout``/``setblocking`` would store for ``value``.

    CPython parses the value with its own rules (rounding to nanoseconds, the exact
    errors and messages of each version). We run the real C method on a scratch
    base object that has no fd: it stores the parsed timeout, then fails with EBADF
    on the fd, which we ignore; a bad value raises its usual error first.
    """
    if value is None and setter is _ss_settimeout:
        return None
    cacheable = type(value) in (int, float, bool)
    if cacheable:
        key = (setter, type(value), value)
        try:
            return _parsed_timeouts[key]
        except KeyError:
            pass
    scratch = _ss.__new__(_ss)
    try:
        setter(scratch, value)
    except OSError:
        pass
    parsed: float | None = _ss_gettimeout(scratch)
    if cacheable:
        if len(_parsed_timeouts) >= 256:
            _parsed_timeouts.clear()
        _parsed_timeouts[key] = parsed
    return parsed


#: Parsed timeouts of plain numbers (a program uses few): settimeout() stays cheap.
_parsed_timeouts: dict[tuple[Any, type, Any], float | None] = {}


def _listed(args: tuple[Any, ...], index: int) -> tuple[Any, ...]:
    """``args`` with an iterator at ``index`` turned into a list, so that a retried
    call sees the same items (a generator would be used up by the first attempt).
    Anything else (sequences, and what the C code will reject) is left as it is."""
    if len(args) <= index or isinstance(args[index], (list, tuple)):
        return args
    try:
        iterator = iter(args[index])
    except TypeError:
        return args
    if iterator is not args[index]:
        return args  # iterable again: a sequence, a view...
    return args[:index] + (list(iterator),) + args[index + 1:]


def _nbytes(data: Any) -> int:
    """The size in bytes of a buffer (``len`` counts items, or rows)."""
    with memoryview(data) as view:
        return view.nbytes


def _notify_closed(fd: int) -> None:
    """Wake green threads of this OS thread parked on ``fd`` (about to be closed).

    Does not create a hub in an OS thread that never used greensched: there,
    nothing can be parked on the fd.
    """
    hub = existing_hub()
    if hub is not None:
        hub.notify_fd_closed(fd)


def _copy_doc(method: Callable[..., Any]) -> Callable[..., Any]:
    """Give our override the base method's docstring (its promises are ours)."""
    base = getattr(_ss, method.__name__, None) or getattr(_stdlib_socket.socket, method.__name__, None)
    if base is not None and base.__doc__:
        method.__doc__ = base.__doc__
    return method


class socket(_stdlib_socket.socket):
    """A `socket.socket` whose blocking operations park the green thread, not the OS thread.

    Same constructor, methods, timeouts and exceptions as the stdlib's; see the
    module docstring for how it works.
    """

    __slots__ = ("_timeout",)

    def __init__(self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None) -> None:
        super().__init__(family, type, proto, fileno)
        # What the stdlib chose (getdefaulttimeout(), or 0.0 for SOCK_NONBLOCK)
        # becomes the user's timeout; the fd itself goes (or stays) non-blocking.
        self._timeout: float | None = _ss_gettimeout(self)
        _ss_settimeout(self, 0.0)

    # -- timeout and blocking mode, kept in Python -------------------------------------------

    @_copy_doc
    def settimeout(self, value: float | None) -> None:
        self._timeout = _parse_timeout(_ss_settimeout, value)
        _ss_settimeout(self, 0.0)  # raises EBADF on a closed socket, as the stdlib does

    @_copy_doc
    def gettimeout(self) -> float | None:
        return self._timeout

    @_copy_doc
    def setblocking(self, flag: bool) -> None:
        self._timeout = _parse_timeout(_ss.setblocking, flag)
        _ss_settimeout(self, 0.0)

    @_copy_doc
    def getblocking(self) -> bool:
        return self._timeout != 0.0

    @property
    def timeout(self) -> float | None:
        """the socket timeout"""
        return self._timeout

    # -- the green core: try, park on BlockingIOError, retry -----------------------------------

    def _wait(self, writing: bool, timeout: float | None) -> bool:
        """Park until the fd is ready; False if ``timeout`` passed first."""
        fd = _ss_fileno(self)
        if fd < 0:
            return True  # closed meanwhile: the retry raises the stdlib's EBADF
        # As the owner, this socket keeps the fd registered between waits: it calls
        # notify_fd_closed before every close (`_real_close`, `detach`, `__del__`).
        return get_hub().wait_fd(fd, _EVENT_WRITE if writing else _EVENT_READ, timeout, self)

    # Each method makes its first attempt inline (the fast path costs one Python call
    # over the C method); only a BlockingIOError goes on to `_retry`.

    def _raise_now(self, flags_at: int, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> bool:
        """After a first BlockingIOError: does the stdlib raise it rather than wait?

        It does in non-blocking mode, and on a blocking socket when the call's flags
        (at position ``flags_at``, -1 for none; already accepted by the C code)
        include MSG_DONTWAIT.
        """
        timeout = self._timeout
        if timeout is not None or flags_at < 0:
            return timeout == 0.0
        if kwargs and "flags" in kwargs:
            flags = kwargs["flags"]
        elif flags_at < len(args):
            flags = args[flags_at]
        else:
            return False  # no flags: the usual blocking call waits
        return bool(flags & _MSG_DONTWAIT)

    def _retry(self, method: Callable[..., Any], writing: bool, args: tuple[Any, ...],
               kwargs: dict[str, Any] | None = None) -> Any:
        """Park until the fd is ready and call ``method`` again, until it works or the
        socket's timeout (one deadline for the whole call) expires."""
        timeout = self._timeout
        deadline = None if timeout is None else clock_now() + timeout
        while True:
            remaining = None if deadline is None else deadline - clock_now()
            if not self._wait(writing, remaining):
                raise _timed_out()
            try:
                # Without kwargs, no ``**{}``: that would build a dict per attempt.
                return method(self, *args, **kwargs) if kwargs else method(self, *args)
            except BlockingIOError:
                pass  # a spurious wake-up: wait again, within the same deadline

    @_copy_doc
    def recv(self, *args: Any) -> bytes:
        try:
            return _ss_recv(self, *args)
        except BlockingIOError:
            if self._raise_now(1, args):
                raise
        # _retry gives the call's Any.
        return self._retry(_ss_recv, False, args)  # type: ignore[no-any-return]

    @_copy_doc
    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        try:
            return _ss_recv_into(self, *args, **kwargs)
        except BlockingIOError:
            if self._raise_now(2, args, kwargs):
                raise
        # _retry gives the call's Any.
        return self._retry(_ss_recv_into, False, args, kwargs)  # type: ignore[no-any-return]

    @_copy_doc
    def recvfrom(self, *args: Any) -> tuple[bytes, Any]:
        try:
            return _ss.recvfrom(self, *args)
        except BlockingIOError:
            if self._raise_now(1, args):
                raise
        # _retry gives the call's Any.
        return self._retry(_ss.recvfrom, False, args)  # type: ignore[no-any-return]

    @_copy_doc
    def recvfrom_into(self, *args: Any, **kwargs: Any) -> tuple[int, Any]:
        try:
            return _ss.recvfrom_into(self, *args, **kwargs)
        except BlockingIOError:
            if self._raise_now(2, args, kwargs):
                raise
        # _retry gives the call's Any.
        return self._retry(_ss.recvfrom_into, False, args, kwargs)  # type: ignore[no-any-return]

    @_copy_doc
    def send(self, *args: Any) -> int:
        try:
            return _ss_send(self, *args)
        except BlockingIOError:
            if self._raise_now(1, args):
                raise
        return self._retry(_ss_send, True, args)  # type: ignore[no-any-return]  # _retry gives the call's Any

    @_copy_doc
    def sendto(self, *args: Any) -> int:
        if len(args) in (2, 3):  # sendto(data[, flags], address)
            args = args[:-1] + (self._resolve(args[-1]),)
        try:
            return _ss.sendto(self, *args)
        except BlockingIOError:
            if self._raise_now(1 if len(args) == 3 else -1, args):
                raise
        # _retry gives the call's Any.
        return self._retry(_ss.sendto, True, args)  # type: ignore[no-any-return]

    if hasattr(_ss, "recvmsg"):

        @_copy_doc
        def recvmsg(self, *args: Any) -> tuple[bytes, list[Any], int, Any]:
            try:
                return _ss.recvmsg(self, *args)
            except BlockingIOError:
                if self._raise_now(2, args):
                    raise
            # _retry gives the call's Any.
            return self._retry(_ss.recvmsg, False, args)  # type: ignore[no-any-return]

        @_copy_doc
        def recvmsg_into(self, *args: Any) -> tuple[int, list[Any], int, Any]:
            args = _listed(args, 0)  # a retry must see the same buffers
            try:
                return _ss.recvmsg_into(self, *args)
            except BlockingIOError:
                if self._raise_now(2, args):
                    raise
            # _retry gives the call's Any.
            return self._retry(_ss.recvmsg_into, False, args)  # type: ignore[no-any-return]

    if hasattr(_ss, "sendmsg"):

        @_copy_doc
        def sendmsg(self, *args: Any) -> int:
            if len(args) >= 4:  # sendmsg(buffers[, ancdata[, flags[, address]]])
                args = args[:3] + (self._resolve(args[3]),) + args[4:]
            args = _listed(_listed(args, 0), 1)  # a retry must send the same data
            try:
                return _ss.sendmsg(self, *args)
            except BlockingIOError:
                if self._raise_now(2, args):
                    raise
            # _retry gives the call's Any.
            return self._retry(_ss.sendmsg, True, args)  # type: ignore[no-any-return]

    if hasattr(_ss, "sendmsg_afalg"):

        @_copy_doc
        def sendmsg_afalg(self, *args: Any, **kwargs: Any) -> int:
            args = _listed(args, 0)
            if "msg" in kwargs:
                kwargs["msg"] = _listed((kwargs["msg"],), 0)[0]
            try:
                return _ss.sendmsg_afalg(self, *args, **kwargs)
            except BlockingIOError:
                if self._raise_now(-1, args, kwargs):
                    raise
            # _retry gives the call's Any.
            return self._retry(_ss.sendmsg_afalg, True, args, kwargs)  # type: ignore[no-any-return]

    @_copy_doc
    def sendall(self, *args: Any) -> None:
        # Like CPython's sock_sendall: one deadline for the whole call, checked before
        # every chunk after the first; a partial send before a timeout is not undone.
        try:
            sent = _ss_send(self, *args)  # also checks the arguments, with the stdlib's errors
        except BlockingIOError:
            if self._raise_now(1, args):
                raise
            sent = 0
        data = args[0]
        # Sizes in bytes; bytes (the usual case) tells its own without a memoryview.
        if sent < (len(data) if type(data) is bytes else _nbytes(data)):
            self._send_rest(sent, args)  # else it all went at once, the usual case: done

    def _send_rest(self, sent: int, args: tuple[Any, ...]) -> None:
        """The rest of a `sendall` whose first ``sent`` bytes of ``args[0]`` went out."""
        timeout = self._timeout
        flags = args[1] if len(args) > 1 else 0
        nowait = self._raise_now(1, args)
        with memoryview(args[0]) as view, \
                view.cast("B") if view.format != "B" or view.ndim != 1 else view as data:
            total = data.nbytes
            deadline = None if timeout is None else clock_now() + timeout
            while sent < total:
                remaining = None if deadline is None else deadline - clock_now()
                if remaining is not None and remaining <= 0:
                    raise _timed_out()
                try:
                    sent += _ss_send(self, data[sent:], flags)
                    continue
                except BlockingIOError:
                    if nowait:
                        raise
                if not self._wait(True, remaining):
                    raise _timed_out()

    @_copy_doc
    def accept(self) -> tuple[socket, Any]:
        try:
            # _socket.socket._accept is private: typeshed does not declare it.
            fd, addr = _ss._accept(self)  # type: ignore[attr-defined]
        except BlockingIOError:
            if self._raise_now(-1, ()):
                raise
            fd, addr = self._retry(_ss._accept, False, ())  # type: ignore[attr-defined]  # private, as above
        # The stdlib's rules for the new socket (socket.socket.accept), with our class.
        sock = socket(self.family, self.type, self.proto, fileno=fd)
        if _stdlib_socket.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)
        return sock, addr

    # -- connecting -----------------------------------------------------------------------------

    @_copy_doc
    def connect(self, address: Any) -> None:
        address = self._resolve(address)
        timeout = self._timeout
        try:
            _ss_connect(self, address)
            return
        except (BlockingIOError, InterruptedError) as exc:
            if timeout == 0.0:
                raise  # non-blocking: the caller waits for the connection itself
            err = exc.errno
        # OSError.errno is Optional in typeshed; a raised BlockingIOError always has one.
        err = self._finish_connect(address, err, timeout)  # type: ignore[arg-type]
        if err is None:
            raise _timed_out()
        if err:
            raise OSError(err, _os.strerror(err))

    @_copy_doc
    def connect_ex(self, address: Any) -> int:
        address = self._resolve(address)
        timeout = self._timeout
        err = _ss_connect_ex(self, address)
        if err in _ALREADY_CONNECTED or timeout == 0.0:
            return err
        final = self._finish_connect(address, err, timeout)
        return _errno.EWOULDBLOCK if final is None else final

    def _finish_connect(self, address: Any, err: int, timeout: float | None) -> int | None:
        """After a first connect() attempt failed with ``err``: the final errno (0 if
        connected), or None when ``timeout`` expired. Mirrors CPython's internal_connect."""
        if err == _errno.EAGAIN and timeout is None:
            # An AF_UNIX listener's backlog is full; a blocking stdlib connect() would
            # wait in the kernel until there is room. No fd event announces it: retry.
            delay = 0.001
            while err == _errno.EAGAIN:
                _hub_module.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF)
                err = _ss_connect_ex(self, address)
        if err not in _CONNECTING:
            return err  # connected, or failed at once (EAGAIN with a timeout too, as in CPython)
        deadline = None if timeout is None else clock_now() + timeout
        while True:
            remaining = None if deadline is None else deadline - clock_now()
            if not self._wait(True, remaining):
                return None
            err = _ss_getsockopt(self, _socket.SOL_SOCKET, _socket.SO_ERROR)
            if err in _ALREADY_CONNECTED:
                return 0
            if err not in (_errno.EAGAIN, _errno.EWOULDBLOCK):
                return err

    @_copy_doc
    def bind(self, address: Any) -> None:
        super().bind(self._resolve(address))

    def _resolve(self, address: Any) -> Any:
        """``address`` with a host name replaced by its first address, resolved green.

        Exactly what CPython's ``setipaddr`` would pass to the kernel: numeric hosts,
        ``""`` and ``"<broadcast>"`` are left to the C code (no lookup happens there);
        anything malformed is left alone for the C code to reject with its own error.
        """
        if not isinstance(address, tuple) or not 2 <= len(address) <= 4:
            return address
        host = address[0]
        if not isinstance(host, str) or host in ("", "<broadcast>") or not isinstance(address[1], int):
            return address
        family = _ss_family.__get__(self)
        if family not in _AF_INETS or (family == _socket.AF_INET and len(address) != 2):
            return address
        try:
            _socket.inet_pton(family, host)
            return address  # numeric
        except (OSError, ValueError):
            pass
        infos = getaddrinfo(host, None, family)
        return (infos[0][4][0],) + address[1:]

    # -- closing --------------------------------------------------------------------------------

    def _real_close(self, _ss: Any = _ss, _notify: Callable[[int], None] = _notify_closed) -> None:
        # Like the stdlib's, this references no globals (it may run at shutdown).
        fd = _ss.fileno(self)
        if fd >= 0:
            _notify(fd)  # before the fd number can be reused
        _ss.close(self)

    def __del__(self, _ss: Any = _ss, _notify: Callable[[int], None] = _notify_closed) -> None:
        # Collected without close(): the C finalizer closes the fd (with the stdlib's
        # ResourceWarning). Tell the hub first, as close() does, so that a
        # registration kept for this socket does not outlive its file.
        fd = _ss.fileno(self)
        if fd >= 0:
            try:
                _notify(fd)
            except Exception:
                pass  # at interpreter shutdown; the hub is going too
        _ss.__del__(self)

    @_copy_doc
    def detach(self) -> int:
        fd = _ss_fileno(self)
        if fd >= 0:
            _notify_closed(fd)  # our waiters must not keep waiting on a file that is no longer ours
        return super().detach()

    # -- sendfile -------------------------------------------------------------------------------

    if hasattr(_os, "sendfile"):

        def _sendfile_use_sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
            """The stdlib's os.sendfile() path (3.13), parking instead of calling poll()."""
            # The stdlib's private helper.
            self._check_sendfile_params(file, offset, count)  # type: ignore[attr-defined]
            sockno = self.fileno()
            try:
                fileno = file.fileno()
            except (AttributeError, _io.UnsupportedOperation) as err:
                raise _GiveupOnSendfile(err) from err  # not a regular file
            try:
                fsize = _os.fstat(fileno).st_size
            except OSError as err:
                raise _GiveupOnSendfile(err) from err  # not a regular file
            if not fsize:
                return 0  # empty file
            # Truncate to 1GiB to avoid OverflowError, see bpo-38319.
            blocksize = min(count or fsize, 2 ** 30)
            timeout = self._timeout
            if timeout == 0:
                raise ValueError("non-blocking sockets are not supported")
            total_sent = 0
            try:
                while True:
                    if count:
                        blocksize = min(count - total_sent, blocksize)
                        if blocksize <= 0:
                            break
                    try:
                        sent = _os.sendfile(sockno, fileno, offset, blocksize)
                    except BlockingIOError:
                        sent = -1
                    except OSError as err:
                        if total_sent == 0:
                            # e.g. 'file' is not a regular mmap(2)-like file: fall
                            # back on plain send(), as the stdlib does.
                            raise _GiveupOnSendfile(err) from err
                        raise err from None
                    if sent < 0:
                        # Each wait gets the whole timeout, as in the stdlib's poll loop.
                        if not self._wait(True, timeout):
                            raise _timed_out()
                        continue
                    if sent == 0:
                        break  # EOF
                    offset += sent
                    total_sent += sent
                return total_sent
            finally:
                if total_sent > 0 and hasattr(file, "seek"):
                    file.seek(offset)


def stdlib_function(name: str, namespace: dict[str, Any], module: str) -> Any:
    """The stdlib `socket` module's own function ``name``, looking its globals up in ``namespace``.

    The code object is CPython's (so each version's exact semantics and errors are
    kept); only where it finds ``socket``, ``getaddrinfo`` and the rest changes.
    ``module`` is the function's ``__module__``.
    """
    original = getattr(_stdlib_socket, name)
    function = _types.FunctionType(
        original.__code__, namespace, original.__name__, original.__defaults__, original.__closure__
    )
    function.__kwdefaults__ = original.__kwdefaults__
    function.__doc__ = original.__doc__
    function.__qualname__ = original.__qualname__
    function.__module__ = module
    return function


def _stdlib_function(name: str) -> Any:
    """``name`` against our names: our `socket` class and our green `getaddrinfo`, fixed
    at import, so that the function is green whether or not the stdlib is patched."""
    namespace = dict(vars(_stdlib_socket))
    namespace.update(socket=socket, getaddrinfo=getaddrinfo, __name__=__name__)
    return stdlib_function(name, namespace, __name__)


#: The module-level functions that make sockets (`_stdlib_function` copies of the stdlib's).
CONSTRUCTORS = ("create_connection", "create_server", "socketpair", "fromfd")

#: ``create_connection(address, timeout=..., source_address=None, *, all_errors=False)``
create_connection = _stdlib_function("create_connection")
#: ``create_server(address, *, family=AF_INET, backlog=None, reuse_port=False, dualstack_ipv6=False)``
create_server = _stdlib_function("create_server")
#: ``socketpair(family=AF_UNIX, type=SOCK_STREAM, proto=0)``
socketpair = _stdlib_function("socketpair")
#: ``fromfd(fd, family, type, proto=0)``
fromfd = _stdlib_function("fromfd")

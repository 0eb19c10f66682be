"""Green DNS: the stdlib's resolver functions, run on a pool OS thread by `to_thread`.

Name resolution goes through the C library (``getaddrinfo`` and friends), which
has no non-blocking form: each function here runs the *original* function, saved
when this module is imported (before anything can patch `socket`), on one of
`greensched.threadpool`'s OS threads, and parks the calling green thread until
the answer comes back. Results and exceptions (`socket.gaierror`,
`socket.herror`...) are exactly the stdlib's.

A numeric host (``"127.0.0.1"``, ``"::1"``, None) needs no lookup: for a host
that ``inet_pton`` accepts, `getaddrinfo` asks the C library inline with
``AI_NUMERICHOST`` added (it then never consults name services, and answers as
it would without the flag), and `gethostbyname` skips the thread for a dotted
IPv4 address; anything else, or any error on that fast path, takes the thread.

Nothing here patches anything: `greensched.monkey` installs the names listed in
``__implements__`` into the stdlib `socket` module.
"""

from __future__ import annotations

import _socket
import socket as _stdlib_socket
import types as _types
from typing import Any

from ..threadpool import to_thread

__implements__ = [
    "getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo", "getfqdn",
]

__all__ = list(__implements__)

# The originals, captured before anything can patch them.
_getaddrinfo = _socket.getaddrinfo
_gethostbyname = _socket.gethostbyname
_gethostbyname_ex = _socket.gethostbyname_ex
_gethostbyaddr = _socket.gethostbyaddr
_getnameinfo = _socket.getnameinfo
_inet_pton = _socket.inet_pton
_AddressFamily = _stdlib_socket.AddressFamily
_SocketKind = _stdlib_socket.SocketKind
_AI_NUMERICHOST = _socket.AI_NUMERICHOST
_AI_CANONNAME = _socket.AI_CANONNAME
_INET_FAMILIES = [_socket.AF_INET] + ([_socket.AF_INET6] if hasattr(_socket, "AF_INET6") else [])


def _intenum(value: int, enum_class: Any) -> Any:
    """As the stdlib's ``_intenum_converter``: the enum member if there is one."""
    try:
        return enum_class(value)
    except ValueError:
        return value


def _is_address(family: int, text: str) -> bool:
    try:
        _inet_pton(family, text)
        return True
    except (OSError, ValueError):
        return False


def _numeric_getaddrinfo(host: Any, port: Any, family: Any, type: Any, proto: Any,
                         flags: Any) -> list[Any] | None:
    """The answer for a numeric host, without a thread; None when a lookup is needed.

    ``AI_CANONNAME``, service names (``"http"``) and the numeric forms only
    ``inet_aton`` knows (``"127.1"``) take the thread, to be safe.
    """
    if host is not None:
        # Only what looks numeric is tried inline (a name would fail here anyway).
        try:
            text = host.decode("ascii") if isinstance(host, bytes) else host
            if not any(_is_address(family_, text) for family_ in _INET_FAMILIES):
                return None
        except Exception:
            return None
    if not (port is None or isinstance(port, int) or (isinstance(port, (str, bytes)) and port.isdigit())):
        return None
    if not isinstance(flags, int) or flags & _AI_CANONNAME:
        return None
    try:
        return _getaddrinfo(host, port, family, type, proto, flags | _AI_NUMERICHOST)
    except Exception:
        return None  # not numeric (or a bad argument): the thread gives the stdlib's answer


def getaddrinfo(
    host: str | bytes | None, port: str | bytes | int | None,
    family: int = 0, type: int = 0, proto: int = 0, flags: int = 0,
) -> list[tuple[Any, Any, int, str, Any]]:
    infos = _numeric_getaddrinfo(host, port, family, type, proto, flags)
    if infos is None:
        infos = to_thread(_getaddrinfo, host, port, family, type, proto, flags)
    return [
        (_intenum(af, _AddressFamily), _intenum(socktype, _SocketKind), proto_, canonname, sa)
        for af, socktype, proto_, canonname, sa in infos
    ]


getaddrinfo.__doc__ = _stdlib_socket.getaddrinfo.__doc__


def gethostbyname(hostname: str, /) -> str:
    if isinstance(hostname, str):
        try:
            _inet_pton(_socket.AF_INET, hostname)
        except (OSError, ValueError):
            pass
        else:
            return _gethostbyname(hostname)  # numeric: no lookup in C
    return to_thread(_gethostbyname, hostname)


def gethostbyname_ex(hostname: str, /) -> tuple[str, list[str], list[str]]:
    return to_thread(_gethostbyname_ex, hostname)


def gethostbyaddr(ip_address: str, /) -> tuple[str, list[str], list[str]]:
    return to_thread(_gethostbyaddr, ip_address)


def getnameinfo(sockaddr: tuple[Any, ...], flags: int, /) -> tuple[str, str]:
    if not isinstance(sockaddr, tuple):
        # The C function's own TypeError, raised here and not on a pool thread, and
        # without a reference to the argument: the traceback keeps this frame (and a
        # pool job's frame would keep its arguments), and callers that check their
        # reference counts around a failing call (CPython's test_socket) see a leak.
        del sockaddr
        raise TypeError("getnameinfo() argument 1 must be a tuple")
    return to_thread(_getnameinfo, sockaddr, flags)


# The stdlib's getfqdn (Python code), its globals bound to the original C functions,
# so that on the pool thread it never calls back into a patched (green) resolver.
_stdlib_getfqdn = _types.FunctionType(
    _stdlib_socket.getfqdn.__code__,
    {
        **vars(_stdlib_socket),
        "gethostbyaddr": _gethostbyaddr,
        "gethostname": _socket.gethostname,
        "error": OSError,
    },
    "getfqdn",
    _stdlib_socket.getfqdn.__defaults__,
)


def getfqdn(name: str = "") -> str:
    fqdn: str = to_thread(_stdlib_getfqdn, name)
    return fqdn


for _green, _original in [
    (gethostbyname, _gethostbyname), (gethostbyname_ex, _gethostbyname_ex),
    (gethostbyaddr, _gethostbyaddr), (getnameinfo, _getnameinfo), (getfqdn, _stdlib_socket.getfqdn),
]:
    _green.__doc__ = _original.__doc__
del _green, _original

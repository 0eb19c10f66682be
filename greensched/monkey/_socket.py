"""Green `socket`: the socket class, its constructors, and DNS through `to_thread`."""

from __future__ import annotations

import socket as _stdlib_socket

from ..net import socket as _green_socket
from ._registry import patch_attr

__implements__ = list(_green_socket.__implements__)


def patch(dns: bool = True) -> None:
    """Install the green socket (and, with ``dns``, the green resolver) into `socket`.

    The constructors (``create_connection``...) installed are the stdlib's own code
    looking its globals up in the `socket` module itself, as the originals do, not
    ``greensched.net.socket``'s copies with our class fixed in: once the module's
    ``socket`` and ``getaddrinfo`` are green they are green too, and they follow
    whatever the program (or a test's mock) puts in the module later, and
    ``dns=False``'s blocking resolver, as the stdlib's would.
    """
    from ..net import dns as _green_dns

    resolver = set(_green_dns.__implements__)
    live = vars(_stdlib_socket)
    for name in __implements__:
        if name in resolver and not dns:
            continue
        if name in _green_socket.CONSTRUCTORS:
            patch_attr(_stdlib_socket, name, _green_socket.stdlib_function(name, live, __name__))
        else:
            patch_attr(_stdlib_socket, name, getattr(_green_socket, name))

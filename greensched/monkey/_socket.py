"""Green `socket`: the socket class, its constructors, and DNS through `to_thread`."""

from __future__ import annotations

import socket as _stdlib_socket

from ..net import socket as _green_socket
from ._registry import patch_attr

__implements__ = list(_green_socket.__implements__)


def patch(dns: bool = True) -> None:
    """Install the green socket (and, with ``dns``, the green resolver) into `socket`."""
    from ..net import dns as _green_dns

    resolver = set(_green_dns.__implements__)
    for name in __implements__:
        if name in resolver and not dns:
            continue
        patch_attr(_stdlib_socket, name, getattr(_green_socket, name))

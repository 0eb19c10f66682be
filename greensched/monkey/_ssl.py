"""Green `ssl`: `SSLContext.wrap_socket` makes green TLS sockets.

Only the class the context instantiates changes; every security default
(certificate and hostname verification, protocol versions, ciphers) is the
stdlib's own, untouched.
"""

from __future__ import annotations

import ssl as _stdlib_ssl

from ..net import ssl as _green_ssl
from ._registry import patch_attr

__implements__ = list(_green_ssl.__implements_context__)


def patch() -> None:
    """Make `ssl.SSLContext.wrap_socket` return green `SSLSocket`s."""
    patch_attr(_stdlib_ssl.SSLContext, "sslsocket_class", _green_ssl.SSLSocket, owner="ssl.SSLContext")

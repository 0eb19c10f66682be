"""Green TLS: `ssl.SSLSocket` over a green socket, parking on want-read/want-write.

The stdlib's `ssl.SSLSocket` drives OpenSSL through ``_ssl``, which looks at the
timeout of the underlying ``_socket.socket``: a green socket keeps that at 0.0, so
every OpenSSL call returns at once with `ssl.SSLWantReadError` or
`ssl.SSLWantWriteError` when it would block. `SSLSocket` here catches those,
parks the green thread until the fd is ready, and retries, honouring the socket's
own timeout with the stdlib's messages ("The read operation timed out"...).

Nothing about security changes: contexts, certificate and hostname verification,
protocols and ciphers are the stdlib's. Patching installs the class as
``ssl.SSLContext.sslsocket_class``, which ``SSLContext.wrap_socket`` (and so
``http.client``, ``urllib``, ``smtplib``...) uses. `ssl` must be imported after
the socket patch for ``ssl.SSLSocket`` itself to be green; `patch_all()` warns
otherwise. `SSLObject` (memory BIOs) never blocks and is left alone.
"""

from __future__ import annotations

import ssl as _stdlib_ssl
from collections.abc import Callable
from typing import Any, TypeVar

from .._core._hub import clock_now, get_hub
from . import socket as _green_socket

__all__ = ["SSLSocket"]

T = TypeVar("T")

__implements_context__ = ["sslsocket_class"]


class SSLSocket(_stdlib_ssl.SSLSocket, _green_socket.socket):
    """`ssl.SSLSocket` whose blocking operations park the green thread."""

    def _retry_tls(self, operation: Callable[[], T], what: str) -> T:
        """Run ``operation`` until OpenSSL stops wanting I/O, parking meanwhile."""
        timeout = self.gettimeout()
        deadline = None if timeout is None else clock_now() + timeout
        hub = get_hub()
        while True:
            try:
                return operation()
            except _stdlib_ssl.SSLWantReadError:
                if timeout == 0.0:
                    raise
                wait = hub.wait_readable
            except _stdlib_ssl.SSLWantWriteError:
                if timeout == 0.0:
                    raise
                wait = hub.wait_writable
            remaining = None if deadline is None else deadline - clock_now()
            if remaining is not None and remaining <= 0 or not wait(self.fileno(), remaining, self):
                raise TimeoutError(f"The {what} operation timed out")

    def do_handshake(self, block: bool = False) -> None:
        """Complete the TLS handshake, parking while the peer answers."""
        self._check_connected()  # type: ignore[attr-defined]  # the stdlib's private check
        self._retry_tls(lambda: _stdlib_ssl.SSLSocket.do_handshake(self, block), "handshake")

    def read(self, len: int = 1024, buffer: Any | None = None) -> Any:
        """Read decrypted data (into ``buffer`` if given), parking until some arrives."""
        return self._retry_tls(lambda: _stdlib_ssl.SSLSocket.read(self, len, buffer), "read")

    def write(self, data: Any) -> int:
        """Encrypt and send ``data``; returns the number of bytes written."""
        return self._retry_tls(lambda: _stdlib_ssl.SSLSocket.write(self, data), "write")

    def send(self, data: Any, flags: int = 0) -> int:
        """Like `socket.send`, through TLS (``flags`` must be 0, as in the stdlib)."""
        return self._retry_tls(lambda: _stdlib_ssl.SSLSocket.send(self, data, flags), "write")

    def unwrap(self) -> Any:
        """Shut TLS down and return the plain green socket underneath."""
        return self._retry_tls(lambda: _stdlib_ssl.SSLSocket.unwrap(self), "read")

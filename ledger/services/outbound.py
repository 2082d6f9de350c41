"""HTTP to other systems with a deadline on the whole exchange.

requests' timeouts bound each wait on the socket (to connect, then each read), not their sum: a
peer, or a proxy before it, that sends its answer a byte at a time holds a call as long as it
likes. `post_within` cuts the connection when the deadline passes, so the call ends then with a
ConnectionError whatever the peer does. (A DNS lookup that hangs is outside its reach: there is no
socket yet to cut.)
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class DeadlinePassed(requests.ConnectionError):
    """The peer had not answered (status line and headers) when the whole call's deadline passed."""


class _CuttableAdapter(HTTPAdapter):
    """requests' adapter that keeps the connections it opens, so that a timer can cut them."""

    def __init__(self) -> None:
        self.opened: list[HTTPConnection] = []
        self.cut_off = False
        self._lock = threading.Lock()
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        adapter = self

        def connect(connection: HTTPConnection) -> None:
            type(connection).__mro__[1].connect(connection)  # urllib3's own
            adapter._opened(connection)

        # Named as urllib3's own classes: their names are in the errors people read.
        plain = type("HTTPConnection", (HTTPConnection,), {"connect": connect})
        secure = type("HTTPSConnection", (HTTPSConnection,), {"connect": connect})
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("HTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": plain}),
            "https": type("HTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": secure}),
        }

    def _opened(self, connection: HTTPConnection) -> None:
        with self._lock:
            self.opened.append(connection)
            if self.cut_off:  # the deadline passed while it connected
                _shut(connection)

    def cut(self) -> None:
        with self._lock:
            self.cut_off = True
            for connection in self.opened:
                _shut(connection)


def _shut(connection: HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)  # a blocked read returns at once


def post_within(url: str, *, deadline: float, **options: Any) -> requests.Response:
    """`requests.post(url, **options)` that ends within `deadline` seconds: up to the answer's
    status line and headers (with `stream=True`, the body is read later, by the caller, under the
    read timeout alone). Raises DeadlinePassed when the deadline cut it."""
    adapter = _CuttableAdapter()
    with requests.Session() as http:
        http.mount("http://", adapter)
        http.mount("https://", adapter)
        timer = threading.Timer(deadline, adapter.cut)
        timer.daemon = True
        timer.start()
        try:
            answer = http.post(url, **options)
        except requests.RequestException as exc:
            if adapter.cut_off:
                raise DeadlinePassed(f"no answer within {deadline:g} s") from exc
            raise
        finally:
            timer.cancel()
        if adapter.cut_off:  # cut mid-headers, http.client takes the end of the stream for their end
            answer.close()
            raise DeadlinePassed(f"no answer within {deadline:g} s")
        return answer

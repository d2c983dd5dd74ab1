"""A TCP proxy on loopback for fault injection: cut connections, or black-hole them.

`TcpProxy(port)` listens on a free 127.0.0.1 port and forwards every connection to
127.0.0.1:`port`. Each connection is remembered with the first bytes its client sent
(`hello`), so a test can pick one out: the invalidation subscriber opens with SUBSCRIBE,
the command connection does not.

- `cut(match)`: closes the matching connections at once (both sides see a reset/EOF).
- `blackhole(match, unless)`: the matching connections stay open but nothing moves on them in
  either direction, as with a partitioned network; bytes are held, not lost, and
  `restore()` lets them through again. New connections while everything is
  black-holed are accepted and black-holed too.
- `refuse(match)`: from now on, a new connection whose first bytes match is closed as
  they arrive (a reconnecting subscriber stays down); `restore()` ends it.

`match` is a bytes substring of the connection's hello, or None for every connection.
Everything runs on one thread with a selector; `close()` stops it and every connection.
"""

from __future__ import annotations

import selectors
import socket
import threading

from servers import free_port


class _Link:
    __slots__ = ("client", "upstream", "hello", "held")

    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.hello = b""
        self.held = False

    def peer(self, sock: socket.socket) -> socket.socket:
        return self.upstream if sock is self.client else self.client


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._wake_r, self._wake_w = socket.socketpair()
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._lock = threading.Lock()
        self._links: list[_Link] = []
        self._hold_new = False
        self._refused: list[bytes] = []
        self._pending: list = []  # (action, match, unless, done event, result) run on the proxy thread
        self._stopped = False
        self.accepted = 0
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def connections(self, match: bytes | None = None) -> int:
        with self._lock:
            return sum(1 for link in self._links if match is None or match in link.hello)

    def cut(self, match: bytes | None = None) -> int:
        return self._call("cut", match)

    def blackhole(self, match: bytes | None = None, unless: bytes | None = None) -> int:
        """With `unless`, the connections whose hello holds it are left alone (their new
        connections too): blackhole(unless=b"SUBSCRIBE") stops commands only."""
        return self._call("hold", match, unless)

    def refuse(self, match: bytes) -> None:
        self._call("refuse", match)

    def restore(self) -> int:
        return self._call("release", None)

    def close(self) -> None:
        if not self._stopped:
            self._call("stop", None)
            self._thread.join(5)

    # --- the proxy thread -----------------------------------------------------------

    def _call(self, action: str, match: bytes | None, unless: bytes | None = None) -> int:
        """Runs `action` on the proxy thread, so it takes effect between two reads."""
        done = threading.Event()
        result = [0]
        with self._lock:
            self._pending.append((action, match, unless, done, result))
        self._wake_w.send(b"x")
        if not done.wait(5):
            raise RuntimeError(f"proxy did not run {action!r}")
        return result[0]

    def _run(self) -> None:
        while not self._stopped:
            for key, _ in self._selector.select(timeout=1.0):
                sock = key.fileobj
                if sock is self._listener:
                    self._accept()
                elif sock is self._wake_r:
                    self._wake_r.recv(4096)
                    self._run_pending()
                else:
                    self._forward(key.data, sock)
        for link in list(self._links):
            self._drop(link)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()

    def _run_pending(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, []
        for action, match, unless, done, result in pending:
            if action == "stop":
                self._stopped = True
            elif action == "refuse":
                self._refused.append(match)
            elif action == "release":
                self._hold_new = False
                self._refused.clear()
                result[0] = sum(self._hold(link, False) for link in list(self._links))
            else:
                chosen = [link for link in list(self._links) if (match is None or match in link.hello)
                          and (unless is None or unless not in link.hello)]
                if action == "hold" and match is None and unless is None:
                    self._hold_new = True
                for link in chosen:
                    if action == "cut":
                        self._drop(link)
                    else:
                        self._hold(link, True)
                result[0] = len(chosen)
            done.set()

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            client.close()
            return
        for sock in (client, upstream):
            sock.settimeout(5)  # recv only runs when the selector says it is readable
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(client, upstream)
        with self._lock:
            self._links.append(link)
            self.accepted += 1
        self._selector.register(client, selectors.EVENT_READ, link)
        self._selector.register(upstream, selectors.EVENT_READ, link)
        if self._hold_new:
            self._hold(link, True)

    def _hold(self, link: _Link, held: bool) -> int:
        if link.held == held:
            return 0
        link.held = held
        for sock in (link.client, link.upstream):
            if held:
                self._selector.unregister(sock)
            else:
                self._selector.register(sock, selectors.EVENT_READ, link)
        return 1

    def _forward(self, link: _Link, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(link)
            return
        if sock is link.client and len(link.hello) < 256:
            first = not link.hello
            with self._lock:
                link.hello += data[: 256 - len(link.hello)]
            if first and any(m in link.hello for m in self._refused):
                self._drop(link)
                return
        try:
            link.peer(sock).sendall(data)
        except OSError:
            self._drop(link)

    def _drop(self, link: _Link) -> None:
        with self._lock:
            if link not in self._links:
                return
            self._links.remove(link)
        for sock in (link.client, link.upstream):
            if not link.held:
                try:
                    self._selector.unregister(sock)
                except (KeyError, ValueError):
                    pass
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except OSError:
                pass
            sock.close()

"""The browser's only way out of its network namespace: an allow-list HTTP proxy of ours.

Chromium runs jailed (``pixelpilot.envs.chromium``) in a network namespace with nothing but its
own loopback. Inside it, the *bridge* (this file run as a script, standard library only) listens
on ``0.0.0.0:BRIDGE_PORT`` and carries every connection to a Unix socket bound in from the host,
prefixed by one line naming the loopback address the connection was made to. On the host, the
*proxy* (``AllowListProxy``) reads that line, finds the browser context the address belongs to
(each context gets its own ``127.43.x.y``, see ``register``) and checks the request against that
context's ``AllowList``:

- a plain HTTP request (absolute URL) is checked as a whole URL, sent upstream with
  ``Connection: close`` and answered with ``Connection: close``: one request per connection, so
  every request, and every hop of a redirect chain (Chromium makes each hop a new request), is
  checked;
- a ``CONNECT host:port`` (HTTPS and every WebSocket) is checked by host and port: a tunnel is
  opaque, so URL-prefix rules narrow it to their host and port only;
- anything else (a request line that is not proxy-form, chunked bodies) is refused.

A refused request gets ``403`` and is remembered on its context's ``Route.blocked``. UDP,
WebRTC and every other protocol have no route out of the namespace at all.
"""

from __future__ import annotations

import os
import selectors
import socket
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

BRIDGE_PORT = 3128  # inside the namespace; nothing else listens there
ADDRESS_PREFIX = "127.43"  # per-context proxy addresses: 127.43.x.y
MAX_HEAD = 64 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
SAME_ORIGIN_SCHEME = {"ws": "http", "wss": "https"}  # a WebSocket shares its page's origin
NETWORK_SCHEMES = frozenset(DEFAULT_PORTS)
_HOP_BY_HOP = {
    "connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate",
    "te", "trailer", "upgrade",
}  # fmt: skip


# -- the allow list ---------------------------------------------------------------------------
def origin(url: str) -> str:
    """``scheme://host:port`` with the default port filled in and ``ws``/``wss`` written as
    ``http``/``https`` (a WebSocket is same-origin with the page that opens it)."""
    parts = urlsplit(url)
    scheme = SAME_ORIGIN_SCHEME.get(parts.scheme, parts.scheme)
    try:
        port = parts.port or DEFAULT_PORTS.get(parts.scheme, 0)
    except ValueError:  # a port out of range: no origin
        port = -1
    host = (parts.hostname or "").lower()
    return f"{scheme}://{host}:{port}"


def _host_port(url: str) -> tuple[str, int] | None:
    parts = urlsplit(url)
    if parts.scheme not in NETWORK_SCHEMES or not parts.hostname:
        return None
    try:
        return parts.hostname.lower(), parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        return None


class AllowList:
    """Which URLs a page may load. An entry ``scheme://host:port`` (no path) allows that origin
    (``http`` and ``ws`` alike, ``https`` and ``wss`` alike); any other entry is a URL prefix.
    ``data:``, ``blob:`` and ``about:`` URLs are always allowed (they never leave the page)."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.origins: set[str] = set()
        self.prefixes: list[str] = []
        for entry in entries:
            parts = urlsplit(entry)
            if parts.scheme in NETWORK_SCHEMES and parts.path in ("", "/") and not parts.query:
                self.origins.add(origin(entry))
            else:
                self.prefixes.append(entry)

    @property
    def networked(self) -> bool:
        """Whether any entry names a network destination (else no proxy is needed at all)."""
        return bool(self.origins) or any(_host_port(p) for p in self.prefixes)

    def allows(self, url: str) -> bool:
        if url.startswith(("data:", "blob:", "about:")):
            return True
        if "://" in url and origin(url) in self.origins:
            return True
        return any(url.startswith(prefix) for prefix in self.prefixes)

    def allows_tunnel(self, host: str, port: int) -> bool:
        """A ``CONNECT host:port``: allowed when an entry names that host and port."""
        wanted = (host.lower().strip("[]"), port)
        for entry in [*self.origins, *self.prefixes]:
            named = _host_port(entry)
            if named is not None and (named[0].strip("[]"), named[1]) == wanted:
                return True
        return False


# -- moving bytes -------------------------------------------------------------------------------
def relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until both directions are closed (half-closes are passed on)."""
    sel = selectors.DefaultSelector()
    peers = {a: b, b: a}
    for sock in peers:
        sock.setblocking(True)
        sel.register(sock, selectors.EVENT_READ)
    open_reads = 2
    try:
        while open_reads:
            for key, _ in sel.select():
                src = key.fileobj
                dst = peers[src]  # type: ignore[index]
                try:
                    data = src.recv(65536)  # type: ignore[union-attr]
                except OSError:
                    data = b""
                if data:
                    try:
                        dst.sendall(data)
                        continue
                    except OSError:
                        return
                sel.unregister(src)
                open_reads -= 1
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
    finally:
        sel.close()
        a.close()
        b.close()


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head up to and including the blank line, bytes read past it); empty head on EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HEAD:
            return b"", b""
        chunk = sock.recv(65536)
        if not chunk:
            return b"", b""
        data += chunk
    end = data.index(b"\r\n\r\n") + 4
    return data[:end], data[end:]


def _split_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _join_head(first: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [first, *(f"{k}: {v}" for k, v in headers), "Connection: close", "", ""]
    return "\r\n".join(lines).encode("latin-1")


def _answer(sock: socket.socket, status: str, text: str = "") -> None:
    body = text.encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
    try:
        sock.sendall(head.encode() + b"X-Pixelpilot-Blocked: 1\r\nConnection: close\r\n\r\n" + body)
    except OSError:
        pass


def _authority(target: str) -> tuple[str, int] | None:
    """``host:port`` / ``[v6]:port`` of a CONNECT line."""
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host or not 0 < int(port) < 65536:
        return None
    return host.strip("[]").lower(), int(port)


# -- the proxy (host side) ----------------------------------------------------------------------
@dataclass
class Route:
    """One browser context's way out: its proxy address and what the proxy refused for it."""

    address: str
    allow: AllowList
    blocked: list[str] = field(default_factory=list)

    @property
    def server(self) -> str:
        """The ``proxy.server`` to give the context."""
        return f"http://{self.address}:{BRIDGE_PORT}"


class AllowListProxy:
    """The host side: a Unix socket at ``path`` that the jail's bridge connects to."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._routes: dict[str, Route] = {}
        self._next = 0
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(self.path))
        self._sock.listen(128)
        threading.Thread(target=self._accept, name="pixelpilot-netproxy", daemon=True).start()

    def register(self, allow: AllowList) -> Route:
        """A new route for one browser context (its own address, so its own allow list)."""
        with self._lock:
            self._next += 1
            n = self._next % (254 * 254)
            route = Route(f"{ADDRESS_PREFIX}.{n // 254 + 1}.{n % 254 + 1}", allow)
            self._routes[route.address] = route
        return route

    def unregister(self, route: Route) -> None:
        with self._lock:
            if self._routes.get(route.address) is route:
                del self._routes[route.address]

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self.path.unlink(missing_ok=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(30.0)
            head, rest = _read_head(conn)
            address, _, head = head.partition(b"\n")  # the bridge's line comes first
            with self._lock:
                route = self._routes.get(address.decode("latin-1").strip())
            if route is None or not head:
                conn.close()
                return
            first, headers = _split_head(head)
            method, target, version = (first.split(" ") + ["", "", ""])[:3]
            if method == "CONNECT":
                self._tunnel(conn, route, target, rest)
            else:
                self._forward(conn, route, method, target, version, headers, rest)
        except OSError:
            conn.close()

    def _tunnel(self, conn: socket.socket, route: Route, target: str, rest: bytes) -> None:
        where = _authority(target)
        if where is None or not route.allow.allows_tunnel(*where):
            route.blocked.append(f"CONNECT {target}")
            _answer(conn, "403 Forbidden", "blocked by the pixelpilot sandbox")
            conn.close()
            return
        try:
            upstream = socket.create_connection(where, timeout=10.0)
        except OSError:
            _answer(conn, "502 Bad Gateway")
            conn.close()
            return
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        if rest:  # bytes the client sent without waiting for the answer
            upstream.sendall(rest)
        conn.settimeout(None)
        upstream.settimeout(None)
        relay(conn, upstream)

    def _forward(
        self,
        conn: socket.socket,
        route: Route,
        method: str,
        target: str,
        version: str,
        headers: list[tuple[str, str]],
        rest: bytes,
    ) -> None:
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname or not route.allow.allows(target):
            route.blocked.append(target)
            _answer(conn, "403 Forbidden", "blocked by the pixelpilot sandbox")
            conn.close()
            return
        names = {k.lower() for k, _ in headers}
        if "transfer-encoding" in names:  # Chromium sends bodies with a length
            _answer(conn, "501 Not Implemented")
            conn.close()
            return
        length = int(next((v for k, v in headers if k.lower() == "content-length"), "0") or 0)
        path = parts.path or "/"
        path += f"?{parts.query}" if parts.query else ""
        kept = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP | {"host"}]
        kept.insert(0, ("Host", parts.netloc))
        port = parts.port or 80
        try:
            upstream = socket.create_connection((parts.hostname, port), timeout=10.0)
        except OSError:
            _answer(conn, "502 Bad Gateway")
            conn.close()
            return
        with upstream:
            upstream.sendall(_join_head(f"{method} {path} {version}", kept) + rest[:length])
            left = length - len(rest[:length])
            while left > 0:
                chunk = conn.recv(min(left, 65536))
                if not chunk:
                    break
                upstream.sendall(chunk)
                left -= len(chunk)
            conn.settimeout(None)  # the answer may stream for as long as the page reads it
            self._respond(conn, upstream)

    @staticmethod
    def _respond(conn: socket.socket, upstream: socket.socket) -> None:
        """Pass the upstream answer on, marked ``Connection: close``, then close."""
        upstream.settimeout(60.0)
        head, rest = _read_head(upstream)
        if not head:
            _answer(conn, "502 Bad Gateway")
            conn.close()
            return
        upstream.settimeout(None)  # a body may stream slowly (server-sent events)
        first, headers = _split_head(head)
        kept = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        conn.sendall(_join_head(first, kept) + rest)
        while chunk := upstream.recv(65536):
            conn.sendall(chunk)
        conn.close()


# -- the bridge (inside the jail) ---------------------------------------------------------------
def _bridge_one(conn: socket.socket, path: str) -> None:
    try:
        address = conn.getsockname()[0]
        out = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        out.connect(path)
        out.sendall(address.encode() + b"\n")
    except OSError:
        conn.close()
        return
    relay(conn, out)


def _bridge_serve(listener: socket.socket, path: str) -> None:
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_bridge_one, args=(conn, path), daemon=True).start()


def bridge_main(argv: list[str]) -> int:
    """``netproxy.py bridge SOCKET -- COMMAND...``: listen, run COMMAND, exit with its status.

    COMMAND inherits the Chromium DevTools pipe (fds 3 and 4); the bridge closes its own copies,
    so Playwright sees the pipe close as soon as the browser is gone."""
    import subprocess

    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: netproxy.py bridge SOCKET -- COMMAND...\n")
        return 2
    path, command = argv[0], argv[2:]
    listener = socket.create_server(("0.0.0.0", BRIDGE_PORT), backlog=128)
    threading.Thread(target=_bridge_serve, args=(listener, path), daemon=True).start()
    fds = tuple(fd for fd in (3, 4) if _is_open(fd))
    child = subprocess.Popen(command, pass_fds=fds)
    for fd in fds:
        os.close(fd)
    return child.wait()


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


if __name__ == "__main__":  # run inside the jail: python -I -S netproxy.py bridge ...
    if len(sys.argv) > 1 and sys.argv[1] == "bridge":
        sys.exit(bridge_main(sys.argv[2:]))
    sys.exit(2)

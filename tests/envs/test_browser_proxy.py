"""The allow-list proxy on its own, spoken to as the jail's bridge speaks to it: one line with
the context's address, then the browser's proxy request. Real sockets, no browser."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixelpilot.envs.netproxy import AllowList, AllowListProxy, Route, origin


class Upstream:
    """A TCP server on 127.0.0.1 that records what arrives and answers with ``reply``."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.received: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2.0)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(self.reply)
                except OSError:
                    pass
                self.received.append(data)


@pytest.fixture()
def upstreams() -> Iterator[tuple[Upstream, Upstream]]:
    ok = b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere/\r\nConnection: keep-alive\r\n"
    allowed = Upstream(ok + b"Content-Length: 5\r\n\r\nhello")
    forbidden = Upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    yield allowed, forbidden
    allowed.sock.close()
    forbidden.sock.close()


@pytest.fixture()
def proxy(tmp_path: Path) -> Iterator[AllowListProxy]:
    server = AllowListProxy(tmp_path / "proxy.sock")
    yield server
    server.close()


def _ask(proxy: AllowListProxy, route: Route | None, request: bytes) -> bytes:
    address = route.address if route is not None else "127.43.200.200"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(5.0)
        conn.connect(str(proxy.path))
        conn.sendall(address.encode() + b"\n" + request)
        out = b""
        while chunk := conn.recv(65536):
            out += chunk
    return out


def test_allow_list_rules() -> None:
    rules = AllowList(["http://127.0.0.1:8000", "https://example.org", "file:///srv/tasks/"])
    assert rules.allows("http://127.0.0.1:8000/a/b?c")
    assert rules.allows("ws://127.0.0.1:8000/socket")  # same origin as the page
    assert not rules.allows("wss://127.0.0.1:8000/socket")
    assert not rules.allows("http://127.0.0.1:8001/")
    assert not rules.allows("http://localhost:8000/")
    assert rules.allows("https://EXAMPLE.org:443/x") and rules.allows("wss://example.org/")
    assert rules.allows("file:///srv/tasks/x.html")
    assert not rules.allows("file:///srv/tasks2/x.html")
    assert not rules.allows("http://127.0.0.1:99999/")
    assert rules.allows("data:text/plain,hi")
    assert rules.allows_tunnel("127.0.0.1", 8000) and rules.allows_tunnel("example.org", 443)
    assert not rules.allows_tunnel("127.0.0.1", 8001)
    assert rules.networked
    assert not AllowList(["file:///srv/tasks/"]).networked
    assert origin("ws://H:80/x") == "http://h:80"


def test_allowed_request_goes_upstream_once_and_closes(proxy, upstreams) -> None:
    allowed, forbidden = upstreams
    route = proxy.register(AllowList([f"http://127.0.0.1:{allowed.port}"]))
    url = f"http://127.0.0.1:{allowed.port}/page?q=1"
    second = f"GET http://127.0.0.1:{forbidden.port}/sneak HTTP/1.1\r\n\r\n"
    request = f"GET {url} HTTP/1.1\r\nHost: x\r\nProxy-Connection: keep-alive\r\n\r\n" + second
    answer = _ask(proxy, route, request.encode())
    assert answer.startswith(b"HTTP/1.1 302 Found\r\n")
    assert b"Location: http://elsewhere/" in answer and answer.endswith(b"hello")
    assert b"Connection: close" in answer and b"keep-alive" not in answer
    sent = allowed.received[0]
    assert sent.startswith(b"GET /page?q=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{allowed.port}".encode() in sent and b"Proxy-" not in sent
    assert forbidden.received == [] and route.blocked == []  # the piggybacked request died


def test_refused_requests_never_reach_upstream(proxy, upstreams) -> None:
    allowed, forbidden = upstreams
    route = proxy.register(AllowList([f"http://127.0.0.1:{allowed.port}"]))
    there = f"127.0.0.1:{forbidden.port}"
    asks = [
        f"GET http://{there}/x HTTP/1.1\r\n\r\n",  # another port
        f"CONNECT {there} HTTP/1.1\r\n\r\n",  # a tunnel (HTTPS, WebSocket) to it
        "GET /x HTTP/1.1\r\nHost: " + there + "\r\n\r\n",  # not a proxy request
        f"GET ftp://{there}/x HTTP/1.1\r\n\r\n",
    ]
    for ask in asks:
        assert _ask(proxy, route, ask.encode()).startswith(b"HTTP/1.1 403 ")
    assert len(route.blocked) == 4 and route.blocked[1] == f"CONNECT {there}"
    chunked = f"POST http://127.0.0.1:{allowed.port}/ HTTP/1.1\r\nTransfer-Encoding: chunked"
    assert _ask(proxy, route, chunked.encode() + b"\r\n\r\n").startswith(b"HTTP/1.1 501 ")
    assert forbidden.received == [] and allowed.received == []


def test_tunnel_to_an_allowed_origin_carries_bytes(proxy, upstreams) -> None:
    allowed, _ = upstreams
    route = proxy.register(AllowList([f"ws://127.0.0.1:{allowed.port}"]))
    ask = f"CONNECT 127.0.0.1:{allowed.port} HTTP/1.1\r\n\r\nGET /socket HTTP/1.1\r\n\r\n"
    answer = _ask(proxy, route, ask.encode())
    assert answer.startswith(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 302")
    assert allowed.received == [b"GET /socket HTTP/1.1\r\n\r\n"]


def test_unknown_or_closed_route_gets_nothing(proxy, upstreams) -> None:
    allowed, _ = upstreams
    request = f"GET http://127.0.0.1:{allowed.port}/ HTTP/1.1\r\n\r\n".encode()
    assert _ask(proxy, None, request) == b""
    route = proxy.register(AllowList([f"http://127.0.0.1:{allowed.port}"]))
    proxy.unregister(route)
    assert _ask(proxy, route, request) == b""
    assert allowed.received == []


def test_every_context_gets_its_own_address(proxy) -> None:
    routes = [proxy.register(AllowList(["http://a.test"])) for _ in range(300)]
    assert len({r.address for r in routes}) == 300
    assert all(r.address.startswith("127.43.") for r in routes)
    assert routes[0].server == f"http://{routes[0].address}:3128"

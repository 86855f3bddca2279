"""The browser sandbox is a wall, not a filter: a page on an allowed origin must not reach a
listener on the host's 127.0.0.1 by any path Chromium has (redirects, workers, beacons, WebRTC,
blocked navigations), while same-origin traffic, WebSockets included, still works.

Real Chromium, real servers on 127.0.0.1: the allowed one serves the pages; the forbidden one
(another port) counts every TCP connection it accepts and every UDP datagram it receives.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from pixelpilot.envs.browser import BrowserEnv
from pixelpilot.envs.chromium import ChromiumHost

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(), reason="Debian chromium is not installed"
)

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Listener:
    """A forbidden destination: counts TCP accepts and UDP datagrams on 127.0.0.1."""

    def __init__(self) -> None:
        self.accepts: list[bytes] = []
        self.datagrams: list[bytes] = []
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.udp_port = self.udp.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._receive, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            conn.settimeout(1.0)
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            self.accepts.append(data)
            body = b"ok"
            head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nAccess-Control-Allow-Origin: *\r\n"
            try:
                conn.sendall(head.encode() + b"Connection: close\r\n\r\n" + body)
            except OSError:
                pass
            conn.close()

    def _receive(self) -> None:
        while True:
            try:
                self.datagrams.append(self.udp.recv(4096))
            except OSError:
                return

    def clear(self) -> None:
        self.accepts.clear()
        self.datagrams.clear()

    def close(self) -> None:
        self.tcp.close()
        self.udp.close()


class Site:
    """The allowed origin: pages by name, ``/redirect?to=URL``, ``/ok`` and a WebSocket at
    ``/ws`` that greets with ``hello`` and echoes one message."""

    def __init__(self) -> None:
        self.pages: dict[str, str] = {}
        self.requests: list[str] = []
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: bytes, ctype: str, **headers: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key.replace("_", "-"), value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                site.requests.append(self.path)
                parts = urlsplit(self.path)
                if parts.path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
                    return self._websocket()
                if parts.path == "/redirect":
                    target = parse_qs(parts.query)["to"][0]
                    return self._send(302, b"", "text/plain", Location=target)
                if parts.path == "/ok":
                    return self._send(200, b"ok", "text/plain")
                page = site.pages.get(parts.path.lstrip("/"))
                if page is None:
                    return self._send(404, b"no", "text/plain")
                return self._send(200, page.encode(), "text/html; charset=utf-8")

            def do_POST(self) -> None:  # noqa: N802
                site.requests.append("POST " + self.path)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send(204, b"", "text/plain")

            def _websocket(self) -> None:
                key = self.headers["Sec-WebSocket-Key"]
                accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest())
                self.send_response(101)
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.send_header("Sec-WebSocket-Accept", accept.decode())
                self.end_headers()
                self.wfile.write(b"\x81\x05hello")
                self.wfile.flush()
                self.connection.settimeout(5.0)
                try:
                    head = self.rfile.read(2)
                    size = head[1] & 0x7F
                    mask = self.rfile.read(4)
                    data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(size)))
                    self.wfile.write(bytes([0x81, len(data)]) + data)
                    self.wfile.flush()
                except (OSError, IndexError):
                    pass
                self.close_connection = True

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    server = Site()
    yield server
    server.close()


@pytest.fixture()
def listener() -> Iterator[Listener]:
    out = Listener()
    yield out
    out.close()


@pytest.fixture(scope="module")
def host() -> Iterator[ChromiumHost]:
    with ChromiumHost() as shared:
        yield shared


def _open(site: Site, host: ChromiumHost, name: str, html: str) -> BrowserEnv:
    site.pages[name] = html
    env = BrowserEnv(f"{site.url}/{name}", "t", viewport=(320, 240), browser=host)
    env.reset(seed=0)
    return env


def _done(env: BrowserEnv, flag: str = "window.done", timeout: float = 10.0) -> object:
    env.page.wait_for_function(f"() => {flag} !== undefined", timeout=timeout * 1000)
    return env.page.evaluate(f"() => {flag}")


def _quiet(listener: Listener, seconds: float = 0.5) -> None:
    """Give a leak time to arrive (what leaks arrives within milliseconds)."""
    time.sleep(seconds)


def test_redirects_from_the_allowed_origin_do_not_reach_the_listener(
    site: Site, host: ChromiumHost, listener: Listener
) -> None:
    hop = f"{site.url}/redirect?to={listener.url}"
    html = f"""<!doctype html><body><script>
    const img = new Promise((ok) => {{ const i = new Image(); i.onload = i.onerror = ok;
                                      i.src = '{hop}/img'; }});
    const got = fetch('{hop}/fetch').then(r => r.text(), () => 'failed');
    Promise.all([img, got]).then(([_, text]) => window.done = text);
    </script></body>"""
    env = _open(site, host, "redirects.html", html)
    try:
        assert _done(env) != "ok"
        env.page.evaluate(f"() => {{ location.href = '{hop}/nav'; }}")
        env.page.wait_for_load_state("load")
        _quiet(listener)
        assert listener.accepts == []
        assert "/redirect?to=" in " ".join(site.requests)  # the first hop was allowed
    finally:
        env.close()


def test_a_start_url_that_redirects_out_does_not_reach_the_listener(
    site: Site, host: ChromiumHost, listener: Listener
) -> None:
    url = f"{site.url}/redirect?to={listener.url}/start"
    with BrowserEnv(url, "t", viewport=(320, 240), browser=host) as env:
        _, info = env.reset(seed=0)
        _quiet(listener)
    assert listener.accepts == []
    assert f"{listener.url}/start" in info["blocked_urls"]  # the proxy refused and counted it


def test_workers_and_shared_workers_do_not_reach_the_listener(
    site: Site, host: ChromiumHost, listener: Listener
) -> None:
    ws = f"ws://127.0.0.1:{listener.port}/ws"
    worker = f"""const s = new WebSocket('{ws}');
    s.onopen = () => postMessage('open'); s.onerror = () => postMessage('error');"""
    shared = f"""onconnect = (e) => {{ const port = e.ports[0];
      fetch('{listener.url}/shared')  // the listener answers with CORS: readable if reached
        .then((r) => r.text(), () => 'failed').then((t) => port.postMessage(t)); }};"""
    html = f"""<!doctype html><body><script>
    const blob = (code) => URL.createObjectURL(new Blob([code], {{type: 'text/javascript'}}));
    const w = new Worker(blob({worker!r}));
    const a = new Promise((ok) => w.onmessage = (e) => ok(e.data));
    const sw = new SharedWorker(blob({shared!r}));
    const b = new Promise((ok) => sw.port.onmessage = (e) => ok(e.data));
    Promise.all([a, b]).then((r) => window.done = r.join(','));
    </script></body>"""
    env = _open(site, host, "workers.html", html)
    try:
        assert _done(env) == "error,failed"
        _quiet(listener)
        assert listener.accepts == []
    finally:
        env.close()


def test_beacons_and_keepalive_on_unload_do_not_reach_the_listener(
    site: Site, host: ChromiumHost, listener: Listener
) -> None:
    rules = f'{{"prefetch": [{{"source": "list", "urls": ["{listener.url}/prefetch"]}}]}}'
    html = f"""<!doctype html><body>
    <script type="speculationrules">{rules}</script><script>
    if (window.fetchLater) fetchLater('{listener.url}/later', {{activateAfter: 0}});
    addEventListener('pagehide', () => {{
      navigator.sendBeacon('{listener.url}/beacon', 'bye');
      fetch('{listener.url}/keepalive', {{method: 'POST', body: 'bye', keepalive: true,
                                          mode: 'no-cors'}});
    }});
    window.done = 1;
    </script></body>"""
    env = _open(site, host, "unload.html", html)
    try:
        _done(env)
        env.page.goto(f"{site.url}/ok")  # unload the page
        _quiet(listener, 1.0)
        assert listener.accepts == []
    finally:
        env.close()


def test_webrtc_sends_nothing_to_the_listener(
    site: Site, host: ChromiumHost, listener: Listener
) -> None:
    html = f"""<!doctype html><body><script>
    const pc = new RTCPeerConnection({{iceServers: [
      {{urls: 'stun:127.0.0.1:{listener.udp_port}'}},
      {{urls: 'turn:127.0.0.1:{listener.port}?transport=tcp', username: 'u', credential: 'p'}}]}});
    pc.createDataChannel('x');
    pc.onicegatheringstatechange = () => {{
      if (pc.iceGatheringState === 'complete') window.done = 'complete'; }};
    pc.createOffer().then((o) => pc.setLocalDescription(o));
    setTimeout(() => window.done = window.done || 'timeout', 2000);
    </script></body>"""
    env = _open(site, host, "webrtc.html", html)
    try:
        _done(env)
        _quiet(listener)
        assert listener.datagrams == []
        assert listener.accepts == []
    finally:
        env.close()


@pytest.mark.parametrize(
    "how",
    [
        "location.href = URL",
        "document.body.appendChild(Object.assign(document.createElement('iframe'), {src: URL}))",
        "window.open(URL)",
        "Object.assign(document.createElement('a'), {href: URL, target: '_blank'}).click()",
        "const f = Object.assign(document.createElement('form'), {action: URL, method: 'post'});"
        " document.body.appendChild(f); f.submit()",
    ],
    ids=["location", "iframe", "window-open", "target-blank", "form"],
)
def test_blocked_navigations_open_no_connection(
    site: Site, host: ChromiumHost, listener: Listener, how: str
) -> None:
    env = _open(site, host, "navigate.html", "<!doctype html><body>start</body>")
    try:
        env.page.evaluate(f"() => {{ const URL = '{listener.url}/nav'; {how}; }}")
        _quiet(listener, 1.0)
        assert listener.accepts == []
    finally:
        env.close()


def test_same_origin_websocket_works(site: Site, host: ChromiumHost) -> None:
    ws = site.url.replace("http://", "ws://") + "/ws"
    html = f"""<!doctype html><body><script>
    const s = new WebSocket('{ws}');
    const got = [];
    s.onmessage = (e) => {{ got.push(e.data); if (got.length === 1) s.send('echo');
                           else window.done = got.join(','); }};
    s.onerror = () => window.done = 'error';
    </script></body>"""
    env = _open(site, host, "websocket.html", html)
    try:
        assert _done(env) == "hello,echo"
        info = env.step({"type": "wait"})[4]
        assert info["blocked_requests"] == 0
    finally:
        env.close()


def test_redirects_within_the_allowed_origin_still_work(site: Site, host: ChromiumHost) -> None:
    site.pages["target.html"] = "<!doctype html><title>arrived</title>"
    url = f"{site.url}/redirect?to={site.url}/target.html"
    with BrowserEnv(url, "t", viewport=(320, 240), browser=host) as env:
        _, info = env.reset(seed=0)
        assert info["extras"]["title"] == "arrived"
        text = env.page.evaluate(f"() => fetch('{url}').then(r => r.text())")
        assert "arrived" in text


def test_a_file_page_has_no_network_at_all(
    tmp_path: Path, host: ChromiumHost, listener: Listener
) -> None:
    ws = f"ws://127.0.0.1:{listener.port}/ws"
    worker = f"""const s = new WebSocket('{ws}');
    s.onopen = () => postMessage('open'); s.onerror = () => postMessage('error');"""
    page = tmp_path / "task.html"
    page.write_text(f"""<!doctype html><body><script>
    const blob = URL.createObjectURL(new Blob([{worker!r}], {{type: 'text/javascript'}}));
    const w = new Worker(blob);
    w.onmessage = (e) => window.done = e.data;
    </script></body>""")
    with BrowserEnv(page.as_uri(), "t", viewport=(320, 240), browser=host) as env:
        env.reset(seed=0)
        assert _done(env) == "error"
        _quiet(listener)
        assert listener.accepts == []
        assert env.sandbox.route is None  # no proxy for a file:// page: nothing leads out


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--user-data-dir=/"],
        ["--user-data-dir=/tmp/playwright_chromiumdev_profile-x/../../etc"],
        ["--user-data-dir=/tmp/playwright_chromiumdev_profile-x/sub"],
        ["--user-data-dir=/tmp/playwright_chromiumdev_profile-"],
    ],
    ids=["none", "root", "dotdot", "nested", "bare-prefix"],
)
def test_the_jail_binds_only_a_playwright_profile_folder(tmp_path: Path, args: list[str]) -> None:
    import subprocess

    from pixelpilot.envs.chromium import write_wrapper

    marker = tmp_path / "ran"
    wrapper = write_wrapper(tmp_path, "/usr/bin/touch", tmp_path / "proxy.sock")
    proc = subprocess.run([str(wrapper), *args, str(marker)], capture_output=True, text=True)
    assert proc.returncode == 2 and "expected a Playwright profile folder" in proc.stderr
    assert not marker.exists()

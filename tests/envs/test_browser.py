"""BrowserEnv against real Chromium and real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import functools
import http.server
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pixelpilot.envs import make
from pixelpilot.envs.browser import BrowserEnv, Sandbox
from pixelpilot.envs.chromium import ChromiumHost
from pixelpilot.envs.spaces import ActionSpace
from pixelpilot.errors import ConfigError, EnvError, InvalidAction
from pixelpilot.tools import Click, Drag, Hotkey, Scroll, Type

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(), reason="Debian chromium is not installed"
)

PAGE = """<!doctype html><html><head><title>input log</title><style>
body {{ margin: 0; }} #box {{ width: 200px; height: 150px; background: #36c; }}
#tall {{ height: 3000px; }}</style></head><body>
<div id="box"></div><input id="field" style="position:absolute;left:10px;top:200px">
<div id="tall"></div>
<script>
window.log = [];
const box = document.getElementById('box');
for (const ev of ['click', 'dblclick', 'contextmenu', 'mousedown', 'mouseup'])
  document.addEventListener(ev, (e) => log.push([ev, e.clientX, e.clientY, e.button]));
document.addEventListener('keydown', (e) => log.push(['keydown', e.key, e.ctrlKey]));
document.addEventListener('wheel', (e) => log.push(['wheel', e.deltaX, e.deltaY]));
window.outside = 'pending';
fetch('{outside}/secret', {{mode: 'no-cors'}})
  .then(() => outside = 'loaded', () => outside = 'blocked');
window.localfile = 'pending';
const img = new Image();
img.onload = () => localfile = 'loaded'; img.onerror = () => localfile = 'blocked';
img.src = '{local_file}';
</script></body></html>"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


class _Server:
    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(_Handler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.requests.append(self.path)
                super().do_GET()

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Server, _Server, Path]]:
    root = tmp_path_factory.mktemp("site")
    outside_root = tmp_path_factory.mktemp("outside")
    (outside_root / "secret").write_text("secret")
    private = tmp_path_factory.mktemp("private") / "data.png"
    private.write_bytes(b"not for the page")
    outside = _Server(outside_root)
    (root / "index.html").write_text(PAGE.format(outside=outside.url, local_file=private.as_uri()))
    inside = _Server(root)
    yield inside, outside, root
    inside.close()
    outside.close()


@pytest.fixture(scope="module")
def host() -> Iterator[ChromiumHost]:
    with ChromiumHost() as shared:
        yield shared


@pytest.fixture()
def env(site: tuple[_Server, _Server, Path], host: ChromiumHost) -> Iterator[BrowserEnv]:
    inside = site[0]
    with make(
        "browser",
        url=f"{inside.url}/index.html",
        instruction="log",
        viewport=(320, 240),
        browser=host,
    ) as e:
        yield e


def _wait_for(env: BrowserEnv, expression: str, timeout: float = 5.0) -> object:
    env.page.wait_for_function(f"() => {expression} !== 'pending'", timeout=timeout * 1000)
    return env.page.evaluate(f"() => {expression}")


def test_outside_requests_and_local_files_are_blocked_and_counted(env, site) -> None:
    _, outside, _ = site
    obs, info = env.reset(seed=0)
    assert obs["screenshot"].shape == (240, 320, 3)
    assert obs["instruction"] == "log"
    assert _wait_for(env, "outside") == "blocked"
    assert _wait_for(env, "localfile") == "blocked"
    _, reward, terminated, _, info = env.step({"type": "wait"})
    assert outside.requests == []  # the outside server never saw the request
    # Chromium itself refuses file:// from an http page; the outside fetch is ours to block.
    assert info["blocked_urls"] == [f"{outside.url}/secret"]
    assert info["blocked_requests"] == 1
    assert reward == 0.0 and not terminated
    assert info["extras"]["title"] == "input log"


def test_file_page_may_read_only_its_folder(site, host) -> None:
    _, outside, root = site
    page = root / "index.html"  # a file:// page: its folder is allowed, nothing else
    with BrowserEnv(page.as_uri(), "t", viewport=(320, 240), browser=host) as env:
        env.reset(seed=0)
        assert _wait_for(env, "outside") == "blocked"
        assert _wait_for(env, "localfile") == "blocked"
        fetched = env.page.evaluate(
            "() => fetch('index.html').then(r => r.ok ? 'read' : 'failed', () => 'failed')"
        )
        info = env.step({"type": "wait"})[4]
    assert outside.requests == []
    assert info["blocked_requests"] == 2
    assert {u.split(":")[0] for u in info["blocked_urls"]} == {"http", "file"}
    assert "private" in next(u for u in info["blocked_urls"] if u.startswith("file:"))
    assert fetched in ("read", "failed")  # same-folder reads are not counted as blocked


def test_allow_list_lets_an_origin_through(site, host) -> None:
    inside, outside, _ = site
    url = f"{inside.url}/index.html"
    with BrowserEnv(url, "t", allow=[outside.url], viewport=(320, 240), browser=host) as env:
        env.reset(seed=0)
        assert _wait_for(env, "outside") == "loaded"
    assert outside.requests == ["/secret"]


def test_sandbox_rules() -> None:
    box = Sandbox(["http://127.0.0.1:8000", "file:///srv/tasks/"])
    assert box.allows("http://127.0.0.1:8000/a/b?c")
    assert not box.allows("http://127.0.0.1:8001/")
    assert not box.allows("http://localhost:8000/")
    assert box.allows("file:///srv/tasks/x.html")
    assert not box.allows("file:///srv/tasks2/x.html")
    assert not box.allows("file:///etc/passwd")
    assert box.allows("data:text/plain,hi")


def test_actions_arrive_as_real_input(env) -> None:
    env.reset(seed=0)
    env.step(Click(20, 30))
    env.step({"type": "left_double", "x": 40, "y": 50})
    env.step({"type": "right_single", "x": 60, "y": 70})
    env.step(Click(50, 210))  # focus the input
    env.step(Type("hi\n"))
    env.step(Hotkey(("ctrl", "a")))
    env.step(Scroll(100, 100, "down"))
    env.step(Drag(10, 10, 100, 120))
    log = env.page.evaluate("() => log")
    clicks = [e for e in log if e[0] == "click"]
    assert clicks[0][1:3] == [20, 30]
    assert ["dblclick", 40, 50, 0] in log
    assert ["contextmenu", 60, 70, 2] in log
    keys = [e[1] for e in log if e[0] == "keydown"]
    assert keys[:3] == ["h", "i", "Enter"]
    assert ["keydown", "a", True] in log
    assert ["wheel", 0, env.scroll_pixels] in log
    assert env.page.evaluate("() => document.getElementById('field').value") == "hi"
    downs = [e for e in log if e[0] == "mousedown" and e[3] == 0]
    ups = [e for e in log if e[0] == "mouseup" and e[3] == 0]
    assert downs[-1][1:3] == [10, 10] and ups[-1][1:3] == [100, 120]


def test_screenshot_shows_the_page(env) -> None:
    obs, _ = env.reset(seed=0)
    shot = obs["screenshot"]
    assert shot[10, 10].tolist() == [0x33, 0x66, 0xCC]  # inside #box
    assert shot[10, 250].tolist() == [255, 255, 255]


def test_finished_ends_the_episode_and_steps_truncate(site, host) -> None:
    url = f"{site[0].url}/index.html"
    with BrowserEnv(url, "t", viewport=(320, 240), max_steps=2, browser=host) as env:
        env.reset(seed=0)
        _, _, terminated, truncated, info = env.step({"type": "finished", "content": "done"})
        assert terminated and not truncated and info["agent_done"] == "finished"
        env.reset(seed=0)
        assert env.step(Click(1, 1))[3] is False
        assert env.step(Click(1, 1))[3] is True


def test_bad_actions_fail_clearly(env) -> None:
    with pytest.raises(EnvError, match="before reset"):
        env.step(Click(1, 1))
    env.reset(seed=0)
    with pytest.raises(InvalidAction, match="unknown action type 'jump'"):
        env.step({"type": "jump"})
    with pytest.raises(ConfigError, match="needs url"):
        make("browser")


def test_action_space_samples_valid_actions() -> None:
    space = ActionSpace((160, 210), seed=3, sample_input=True)
    samples = [space.sample() for _ in range(200)]
    assert all(space.contains(s) for s in samples)
    assert {s["type"] for s in samples} >= {"click", "scroll", "drag", "type", "hotkey"}
    assert not space.contains({"type": "click", "x": 160, "y": 5})
    assert not space.contains({"type": "click", "x": 5})
    assert space.contains(Click(159, 209))
    assert ActionSpace((160, 210), seed=3).sample() == {"type": "wait"}  # the harmless default


def test_check_env_passes(env) -> None:
    check_env(env, skip_render_check=True)


def _gone(pids: set[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(Path(f"/proc/{p}").exists() for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_close_leaves_no_chromium_process(site) -> None:
    env = BrowserEnv(f"{site[0].url}/index.html", "t", viewport=(320, 240))
    with env:
        env.reset(seed=0)
        pids = env.host.pids()
        assert len(pids) >= 2  # the browser and at least one renderer
    assert _gone(pids)


def test_crashed_browser_is_an_env_error_and_reset_recovers(site) -> None:
    with BrowserEnv(f"{site[0].url}/index.html", "t", viewport=(320, 240)) as env:
        env.reset(seed=0)
        first = env.host.pid
        os.kill(first, signal.SIGKILL)
        assert _gone({first})
        with pytest.raises(EnvError, match="crashed"):
            for _ in range(20):  # the driver notices the dead pipe within a step or two
                env.step(Click(5, 5))
                time.sleep(0.05)
        obs, _ = env.reset(seed=0)
        assert env.host.pid != first
        assert np.asarray(obs["screenshot"]).shape == (240, 320, 3)
        env.step(Click(5, 5))

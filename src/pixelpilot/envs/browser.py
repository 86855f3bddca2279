"""``BrowserEnv``: any page in sandboxed headless Chromium, driven by real mouse and keyboard.

``make("browser", url=URL, instruction="...", allow=[...], viewport=(w, h))``. The page may
reach its own origin (for ``file://`` pages: its folder) and the ``allow`` list, nothing else:
Chromium runs in its own network namespace whose only way out is an allow-list proxy
(``pixelpilot.envs.netproxy``). Refusals are counted in
``info["blocked_requests"]``. Reward is 0 and ``info["success"]`` is
``None``: a plain page defines no task. The env contract (seeding, validation, truncation,
``info``) is ``PixelEnv``'s; subclasses (MiniWoB) override ``_open_episode`` and ``_judge``.
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from pixelpilot.envs.chromium import ChromiumHost
from pixelpilot.envs.core import PixelEnv
from pixelpilot.envs.netproxy import NETWORK_SCHEMES, AllowList, Route, origin
from pixelpilot.errors import ConfigError, EnvError
from pixelpilot.tools.actions import Action

_PW_KEYS = {
    "enter": "Enter", "tab": "Tab", "space": " ", "backspace": "Backspace", "delete": "Delete",
    "escape": "Escape", "insert": "Insert", "home": "Home", "end": "End", "pageup": "PageUp",
    "pagedown": "PageDown", "up": "ArrowUp", "down": "ArrowDown", "left": "ArrowLeft",
    "right": "ArrowRight", "ctrl": "Control", "shift": "Shift", "alt": "Alt", "meta": "Meta",
    "capslock": "CapsLock", "numlock": "NumLock", "scrolllock": "ScrollLock",
    "printscreen": "PrintScreen", "pause": "Pause", "menu": "ContextMenu", "apps": "ContextMenu",
    "ctrlleft": "ControlLeft", "ctrlright": "ControlRight", "shiftleft": "ShiftLeft",
    "shiftright": "ShiftRight", "altleft": "AltLeft", "altright": "AltRight",
    "volumeup": "AudioVolumeUp", "volumedown": "AudioVolumeDown", "volumemute": "AudioVolumeMute",
    "playpause": "MediaPlayPause", "nexttrack": "MediaTrackNext",
    "prevtrack": "MediaTrackPrevious", "clear": "Clear", "fn": "Fn",
}  # fmt: skip
_SCROLL = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}
_NEXT_FRAME = "() => new Promise((done) => requestAnimationFrame(() => done(null)))"


def playwright_key(name: str) -> str:
    """Playwright's name of a canonical pixelpilot key name (``pageup`` -> ``PageUp``)."""
    if name in _PW_KEYS:
        return _PW_KEYS[name]
    if len(name) >= 2 and name[0] == "f" and name[1:].isdigit():
        return name.upper()
    return name


class Sandbox:
    """Page-level accounting of what the allow list refuses: requests the page's context asks
    for are checked here (refused ones are aborted and remembered), and so are, by the proxy,
    the ones this never sees (redirect hops, workers, WebSockets, beacons). Information, not
    the wall: the wall is the jail's network namespace, whose only way out is the proxy."""

    def __init__(self, allow: Iterable[str]) -> None:
        self.allow = AllowList(allow)
        self.route: Route | None = None  # the context's way out through the host's proxy
        self.refused: list[str] = []

    @property
    def blocked(self) -> list[str]:
        """What was refused since the context opened: here, then by the proxy."""
        return self.refused + (self.route.blocked if self.route is not None else [])

    def allows(self, url: str) -> bool:
        return self.allow.allows(url)

    def handle_route(self, route: Any) -> None:
        url = route.request.url
        if self.allows(url):
            route.continue_()
        else:
            self.refused.append(url)
            route.abort("blockedbyclient")

    def install(self, context: Any) -> None:
        # WebSockets are not routed: Playwright would open a routed WebSocket from its driver,
        # outside the jail. They go through the proxy, which checks them.
        context.route("**/*", self.handle_route)


def page_rules(url: str) -> list[str]:
    """What a page may load by default: its own origin, or its folder for ``file://``."""
    if url.startswith("file://"):
        return [url.rsplit("/", 1)[0] + "/"]
    if urlsplit(url).scheme in NETWORK_SCHEMES:
        return [origin(url)]
    return []


class BrowserEnv(PixelEnv):
    """A web page in headless Chromium; actions are real input at screenshot pixels."""

    task_id = "browser"
    sample_input = True  # action_space.sample() gives real clicks, typing, ... on the page
    wait_seconds = 0.5
    long_press_seconds = 0.6
    scroll_pixels = 100

    def __init__(
        self,
        url: str = "about:blank",
        instruction: str = "",
        *,
        allow: Iterable[str] = (),
        viewport: tuple[int, int] = (1280, 720),
        max_steps: int = 50,
        browser: ChromiumHost | None = None,
        executable_path: str | None = None,
        render_mode: str | None = None,
    ) -> None:
        self._contract_init(max_steps=max_steps, render_mode=render_mode)
        self.url = url
        self.instruction = instruction
        self.viewport = (int(viewport[0]), int(viewport[1]))
        self.clip = (0, 0, *self.viewport)  # x, y, width, height of the screenshot on the page
        self.allow = [*page_rules(url), *allow]
        self.sandbox = Sandbox(self.allow)
        self._owns_host = browser is None
        self.host = browser if browser is not None else ChromiumHost(executable_path)
        self.context: Any = None
        self.page: Any = None
        self._cdp: Any = None
        self._declare_screen(self.clip[2:])

    # -- episode hooks (overridden by task suites) --------------------------------------------
    def _open_episode(self, seed: int) -> None:
        """Fresh context and page at the start URL."""
        self._new_context()
        self._goto(self.url)

    # -- plumbing ------------------------------------------------------------------------------
    def _new_context(self) -> None:
        self._close_context()
        self.sandbox.refused.clear()
        options: dict[str, Any] = {}
        if self.sandbox.allow.networked:  # else no proxy: no network at all
            self.sandbox.route = self.host.open_route(self.sandbox.allow)
            options["proxy"] = {"server": self.sandbox.route.server}
        self.context = self.host.new_context(
            viewport={"width": self.viewport[0], "height": self.viewport[1]},
            device_scale_factor=1,
            accept_downloads=False,
            service_workers="block",
            **options,
        )
        self.sandbox.install(self.context)
        self.page = self.context.new_page()
        self._cdp = self.context.new_cdp_session(self.page)

    def _goto(self, url: str) -> None:
        try:
            self.page.goto(url, wait_until="load")
        except Exception as exc:
            raise EnvError(f"page did not load: {url}: {str(exc).splitlines()[0]}") from exc

    def _close_context(self) -> None:
        if self.context is not None:
            try:
                self.context.close()
            except Exception:  # noqa: BLE001 - the browser may already be gone
                pass
        if self.sandbox.route is not None:
            self.host.close_route(self.sandbox.route)  # its count stays readable until reopened
        self.context = self.page = self._cdp = None

    def _screenshot(self) -> np.ndarray:
        from PIL import Image

        x, y, w, h = self.clip
        params = {
            "format": "png",
            "clip": {"x": x, "y": y, "width": w, "height": h, "scale": 1},
            "optimizeForSpeed": True,
        }
        for attempt in range(4):
            try:
                data = base64.b64decode(self._cdp.send("Page.captureScreenshot", params)["data"])
                break
            except Exception:  # a fresh page may not have produced its first frame yet
                if attempt == 3 or not self.host.alive:
                    raise
                self.page.evaluate(_NEXT_FRAME)
        image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        if image.shape[:2] != (h, w):  # a page smaller than the clip: pad with black
            padded = np.zeros((h, w, 3), dtype=np.uint8)
            padded[: image.shape[0], : image.shape[1]] = image[:h, :w]
            image = padded
        return image

    def _observe(self) -> dict[str, Any]:
        return {"screenshot": self._screenshot(), "instruction": self.instruction}

    def _extras(self) -> dict[str, Any]:
        return {"url": self.page.url, "title": self.page.title(), "seed": self.episode_seed}

    def _env_info(self) -> dict[str, Any]:
        return {
            "blocked_requests": len(self.sandbox.blocked),
            "blocked_urls": list(self.sandbox.blocked[-20:]),
        }

    def _failure(self, exc: Exception, doing: str) -> EnvError:
        if not self.host.alive:
            return EnvError(f"the browser crashed while {doing}; call reset() to start again")
        return EnvError(f"browser error while {doing}: {str(exc).splitlines()[0]}")

    # -- PixelEnv hooks ------------------------------------------------------------------------
    def _start(self, seed: int, options: dict[str, Any]) -> None:
        if self.page is not None and (not self.host.alive or self.page.is_closed()):
            self._close_context()  # the browser died: start from a fresh context
        self.host.ensure()
        self._open_episode(seed)

    def _act(self, action: Action) -> None:
        self._execute(action)

    def close(self) -> None:
        self._started = False
        self._close_context()
        if self._owns_host:
            self.host.close()

    # -- input -----------------------------------------------------------------------------------
    def _point(self, x: int, y: int) -> tuple[float, float]:
        """A screenshot pixel -> page coordinates (clamped into the screenshot)."""
        cx, cy, w, h = self.clip
        return cx + min(max(x, 0), w - 1) + 0.5, cy + min(max(y, 0), h - 1) + 0.5

    def _execute(self, act: Action) -> None:
        mouse, keyboard = self.page.mouse, self.page.keyboard
        kind = act.type
        if kind in ("click", "left_double", "right_single", "long_press"):
            x, y = self._point(act.x, act.y)  # type: ignore[attr-defined]
            if kind == "click":
                mouse.click(x, y)
            elif kind == "left_double":
                mouse.dblclick(x, y)
            elif kind == "right_single":
                mouse.click(x, y, button="right")
            else:
                mouse.move(x, y)
                mouse.down()
                time.sleep(self.long_press_seconds)
                mouse.up()
        elif kind == "drag":
            x1, y1 = self._point(act.x1, act.y1)  # type: ignore[attr-defined]
            x2, y2 = self._point(act.x2, act.y2)  # type: ignore[attr-defined]
            mouse.move(x1, y1)
            mouse.down()
            mouse.move(x2, y2, steps=8)
            mouse.up()
        elif kind == "scroll":
            x, y = self._point(act.x, act.y)  # type: ignore[attr-defined]
            dx, dy = _SCROLL[act.direction]  # type: ignore[attr-defined]
            mouse.move(x, y)
            mouse.wheel(dx * self.scroll_pixels, dy * self.scroll_pixels)
        elif kind == "type":
            keyboard.type(act.text)  # type: ignore[attr-defined]
            if act.submit:  # type: ignore[attr-defined]
                keyboard.press("Enter")
        elif kind == "hotkey":
            keys = [playwright_key(k) for k in act.keys]  # type: ignore[attr-defined]
            for key in keys[:-1]:
                keyboard.down(key)
            keyboard.press(keys[-1])
            for key in reversed(keys[:-1]):
                keyboard.up(key)
        elif kind == "wait":
            time.sleep(self.wait_seconds)
        # finished / call_user end the episode (PixelEnv.step); open_app, press_home and
        # press_back mean nothing in a browser page and are refused before they get here.


# -- provider ("browser" namespace: one task, any URL) -------------------------------------------
def task_names() -> list[str]:
    return [""]


def make_env(name: str, **kwargs: Any) -> BrowserEnv:
    if "url" not in kwargs:
        raise ConfigError('make("browser") needs url=...; e.g. make("browser", url="https://...")')
    return BrowserEnv(**kwargs)

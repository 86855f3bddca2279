"""One headless Debian Chromium driven by Playwright's sync API, shared by browser envs.

``ChromiumHost`` owns a browser process; envs open one context per episode (or per env) in it.
The Playwright driver (a node process) is shared by every host of a thread and stopped when the
last host of that thread closes, so ``close()`` leaves no process behind.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from pixelpilot.errors import DependencyNotInstalled, EnvError

CHROMIUM_PATH = os.environ.get("PIXELPILOT_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Without these a screenshot waits for the next vsync-paced frame (about 30 ms here).
    "--disable-gpu-vsync",
    "--disable-frame-rate-limit",
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
)

_local = threading.local()


def _driver_acquire() -> Any:
    """The thread's Playwright driver, started on first use (reference counted)."""
    if getattr(_local, "count", 0) == 0:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise DependencyNotInstalled("playwright", extra="browser") from exc
        _local.manager = sync_playwright()
        _local.playwright = _local.manager.start()
        _local.count = 0
    _local.count += 1
    return _local.playwright


def _driver_release() -> None:
    _local.count -= 1
    if _local.count == 0:
        _local.playwright.stop()
        _local.playwright = None
        _local.manager = None


def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, argv[0]) of every process we can see."""
    table: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry.name)] = (ppid, argv0)
    return table


def descendants(root: int, table: dict[int, tuple[int, str]] | None = None) -> set[int]:
    """Every process below ``root`` (children, grandchildren, ...)."""
    table = table if table is not None else _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in out:
                out.add(child)
                stack.append(child)
    return out


def _chromium_roots() -> set[int]:
    table = _proc_table()
    mine = descendants(os.getpid(), table)
    return {
        pid
        for pid in mine
        if "chrom" in table[pid][1] and "chrom" not in table.get(table[pid][0], (0, ""))[1]
    }


class ChromiumHost:
    """A headless Chromium process; pass one to several envs to share it (they won't close it).

    ``pid`` is the browser's main process; ``pids()`` lists it with its renderers and helpers.
    """

    def __init__(self, executable_path: str | None = None, extra_args: tuple[str, ...] = ()):
        self.executable_path = executable_path or CHROMIUM_PATH
        if not Path(self.executable_path).exists():
            raise EnvError(
                f"Chromium not found at {self.executable_path} (apt-get install chromium)"
            )
        self.extra_args = tuple(extra_args)
        self.browser: Any = None
        self.pid: int | None = None
        self._playwright: Any = _driver_acquire()
        try:
            self._launch()
        except BaseException:
            _driver_release()
            raise

    def _launch(self) -> None:
        before = _chromium_roots()
        try:
            self.browser = self._playwright.chromium.launch(
                executable_path=self.executable_path,
                args=[*LAUNCH_ARGS, *self.extra_args],
                headless=True,
            )
        except Exception as exc:
            raise EnvError(f"Chromium failed to start: {str(exc).splitlines()[0]}") from exc
        new = _chromium_roots() - before
        self.pid = min(new) if new else None

    @property
    def alive(self) -> bool:
        return self.browser is not None and self.browser.is_connected()

    def ensure(self) -> None:
        """Relaunch the browser if it crashed or was killed."""
        if self._playwright is None:
            raise EnvError("this Chromium host is closed")
        if not self.alive:
            self._close_browser()
            self._launch()

    def pids(self) -> set[int]:
        """The browser's main process and all its descendants (empty once closed)."""
        if self.pid is None or not Path(f"/proc/{self.pid}").exists():
            return set()
        return {self.pid} | descendants(self.pid)

    def new_context(self, **kwargs: Any) -> Any:
        self.ensure()
        try:
            return self.browser.new_context(**kwargs)
        except Exception as exc:
            raise EnvError(f"Chromium could not open a context: {exc}") from exc

    def _close_browser(self) -> None:
        if self.browser is not None:
            try:
                self.browser.close()
            except Exception:  # noqa: BLE001 - a dead browser cannot be closed twice
                pass
        self.browser = None
        self.pid = None

    def close(self) -> None:
        if self._playwright is None:
            return
        self._close_browser()
        self._playwright = None
        _driver_release()

    def __enter__(self) -> ChromiumHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

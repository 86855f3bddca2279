"""One headless Debian Chromium driven by Playwright's sync API, shared by browser envs.

``ChromiumHost`` owns a browser process; envs open one context per episode (or per env) in it.
The Playwright driver (a node process) is shared by every host of a thread and stopped when the
last host of that thread closes, so ``close()`` leaves no process behind.

The browser always runs jailed: Playwright starts a small generated wrapper (its
``executable_path``) that runs Chromium under bubblewrap with ``--unshare-net``, so the browser
has its own network namespace with nothing in it but a loopback. Playwright still drives it over
the DevTools pipe (fds 3 and 4, inherited through the jail). The only way out is the bridge of
``pixelpilot.envs.netproxy``, which carries the proxy connections of the contexts that have an
allow list to this host's ``AllowListProxy``; a context without one (``file://`` pages such as
MiniWoB) has no network at all. The wrapper takes nothing from any file: its text is built here
from the host's own settings, and of Playwright's arguments it reads only the profile folder
(which must be one Playwright made in the temporary directory) to bind it writable.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import tempfile
import threading
import weakref
from pathlib import Path
from typing import Any

from pixelpilot.envs import netproxy
from pixelpilot.errors import DependencyNotInstalled, EnvError

CHROMIUM_PATH = os.environ.get("PIXELPILOT_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = (
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
JAIL_UID = 1000  # the uid/gid Chromium sees inside its user namespace
_PASSED_ENV = ("LANG", "LC_ALL", "LANGUAGE", "TZ")  # rendering depends on these: keep them
_HIDDEN = ("/run", "/tmp/.X11-unix")  # host sockets the browser has no business with
# Chromium features that call Google from a page's context (added to Playwright's list).
OWN_TRAFFIC_FEATURES = ("AutofillServerCommunication",)


def jail_argv(socket_path: Path) -> list[str]:
    """The bubblewrap command line (up to the bridge's ``--``) that every browser runs under;
    the wrapper adds the profile folder bind before the bridge."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise DependencyNotInstalled("bubblewrap", hint="apt-get install -y bubblewrap")
    args = [bwrap, "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    args += ["--unshare-user", "--uid", str(JAIL_UID), "--gid", str(JAIL_UID)]
    args += ["--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    args += ["--unshare-cgroup-try", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for path in _HIDDEN:
        if Path(path).is_dir() and not str(socket_path).startswith(path + "/"):
            args += ["--tmpfs", path]
    args += ["--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin"]
    for key in _PASSED_ENV:
        if key in os.environ:
            args += ["--setenv", key, os.environ[key]]
    return args


def write_wrapper(folder: Path, executable: str, socket_path: Path) -> Path:
    """The executable Playwright launches in place of Chromium: a shell script that runs
    ``executable`` with Playwright's arguments inside the jail, behind the bridge."""
    profile = os.path.join(tempfile.gettempdir(), "playwright_chromiumdev_profile-")
    bridge = [sys.executable, "-I", "-S", netproxy.__file__, "bridge", str(socket_path), "--"]
    q = shlex.join
    text = f"""#!/bin/sh
# pixelpilot: Chromium in its own network namespace (see pixelpilot/envs/chromium.py)
data=
for arg in "$@"; do
  case "$arg" in --user-data-dir=*) data="${{arg#--user-data-dir=}}" ;; esac
done
case "$data" in
  {shlex.quote(profile)}*/*|*..*) data= ;;
  {shlex.quote(profile)}?*) ;;
  *) data= ;;
esac
if [ -z "$data" ] || [ ! -d "$data" ]; then
  echo "pixelpilot jail: expected a Playwright profile folder, got --user-data-dir=$data" >&2
  exit 2
fi
for arg do  # the browser's own calls home (autofill queries) would go through the proxy
  shift
  case "$arg" in --disable-features=*) arg="$arg,{",".join(OWN_TRAFFIC_FEATURES)}" ;; esac
  set -- "$@" "$arg"
done
exec {q(jail_argv(socket_path))} --bind "$data" "$data" --setenv HOME "$data" \
  --setenv TMPDIR "$data" --chdir "$data" -- {q(bridge)} {shlex.quote(executable)} "$@"
"""
    path = folder / "browser-jail"
    path.write_text(text)
    path.chmod(0o700)
    return path


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


def _jail_root(pid: int) -> int | None:
    """The outermost process of the jail around ``pid`` (bwrap, as Playwright started it)."""
    table = _proc_table()
    root = None
    current = table.get(pid, (0, ""))[0]
    while current in table:
        name = os.path.basename(table[current][1])
        if name != "bwrap" and table[current][1] != sys.executable:
            break
        if name == "bwrap":
            root = current
        current = table[current][0]
    return root


class ChromiumHost:
    """A headless, jailed Chromium process; pass one to several envs to share it (they won't
    close it).

    ``pid`` is the browser's main process; ``pids()`` lists it with its renderers and helpers,
    and the jail around them. ``open_route(allow)`` gives a context its way out (see
    ``new_context``); the proxy behind it lives as long as the host.
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
        self.jail_pid: int | None = None
        self._folder = Path(tempfile.mkdtemp(prefix="pixelpilot-browser-"))
        # removed by close(), or at the latest when the host is collected or Python exits
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._folder, True)
        self.proxy: netproxy.AllowListProxy | None = None
        try:
            self.proxy = netproxy.AllowListProxy(self._folder / "proxy.sock")
            self._wrapper = write_wrapper(self._folder, self.executable_path, self.proxy.path)
        except BaseException:
            self._remove_folder()
            raise
        self._playwright: Any = _driver_acquire()
        try:
            self._launch()
        except BaseException:
            _driver_release()
            self._remove_folder()
            raise

    def _launch(self) -> None:
        before = _chromium_roots()
        try:
            self.browser = self._playwright.chromium.launch(
                executable_path=str(self._wrapper),
                args=[*LAUNCH_ARGS, *self.extra_args],
                headless=True,
                chromium_sandbox=True,  # Chromium's own sandbox works inside the jail
            )
        except Exception as exc:
            raise EnvError(f"Chromium failed to start: {str(exc).splitlines()[0]}") from exc
        new = _chromium_roots() - before
        self.pid = min(new) if new else None
        self.jail_pid = _jail_root(self.pid) if self.pid is not None else None

    def open_route(self, allow: netproxy.AllowList) -> netproxy.Route:
        """A proxy route for one context: pass ``proxy={"server": route.server}`` to
        ``new_context`` and ``close_route`` it when the context closes."""
        if self.proxy is None:
            raise EnvError("this Chromium host is closed")
        return self.proxy.register(allow)

    def close_route(self, route: netproxy.Route) -> None:
        if self.proxy is not None:
            self.proxy.unregister(route)

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
        """The jail, the browser's main process and all their descendants (empty once
        closed)."""
        found: set[int] = set()
        for root in (self.jail_pid, self.pid):
            if root is not None and Path(f"/proc/{root}").exists():
                found |= {root} | descendants(root)
        return found

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
        self.pid = self.jail_pid = None

    def _remove_folder(self) -> None:
        if self.proxy is not None:
            self.proxy.close()
            self.proxy = None
        shutil.rmtree(self._folder, ignore_errors=True)

    def close(self) -> None:
        if self._playwright is None:
            return
        self._close_browser()
        self._playwright = None
        _driver_release()
        self._remove_folder()

    def __enter__(self) -> ChromiumHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""A private X display: Xvfb + openbox, screenshots with mss, input with pyautogui.

``XDisplay.start()`` launches ``Xvfb`` on a free display number chosen by the server itself
(``-displayfd``), with ``-nolisten tcp`` and its own ``MIT-MAGIC-COOKIE-1`` (a random key written
with ``xauth`` into a private file passed as ``-auth``), then ``openbox`` on it. Nothing here reads
or changes the ``DISPLAY`` of the process that runs it.

Input goes through pyautogui, which binds to ``$DISPLAY`` when it is imported. So each display
gets its own small input process (``python -c ...``) started with ``DISPLAY``/``XAUTHORITY`` of
our server, reading one JSON command per line. pyautogui's fail-safe (raise when the pointer is
in a corner) is switched off in that process: an agent may legitimately click at (0, 0), and the
process is not a human's desktop. pyautogui can only press keys of the US layout, so a character
outside ASCII gets a spare keycode bound to its keysym (on both shift levels, and left bound: X
clients re-read the keymap lazily, so a binding undone right after the key press can be read
back undone) and is pressed through XTEST. ``xdotool type`` was tried first and typed "Á" as
"á" and sometimes dropped characters in Tk for exactly those two reasons.

Screenshots come from mss bound to our display (XShmGetImage), read as RGB numpy arrays.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from pixelpilot.errors import ConfigError, DependencyNotInstalled, EnvError

_ENV_LOCK = threading.Lock()  # guards the brief XAUTHORITY swap while a client connects


@contextmanager
def _xauthority(path: Path):
    """Set ``XAUTHORITY`` only while an X client library opens its connection."""
    with _ENV_LOCK:
        old = os.environ.get("XAUTHORITY")
        os.environ["XAUTHORITY"] = str(path)
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("XAUTHORITY", None)
            else:
                os.environ["XAUTHORITY"] = old


def _require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        raise DependencyNotInstalled(binary, hint=f"apt-get install -y {package}")
    return path


def _kill(proc: subprocess.Popen | None, timeout: float = 3.0) -> None:
    """Terminate a process (and its process group when it leads one), then reap it."""
    if proc is None or proc.poll() is not None:
        if proc is not None:
            proc.wait()
        return
    try:
        pgid = os.getpgid(proc.pid)
        if pgid == proc.pid:
            os.killpg(pgid, signal.SIGTERM)
        else:
            proc.terminate()
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
        proc.wait()


_INPUT_SERVER = r"""
import json, sys, time
import pyautogui
pyautogui.FAILSAFE = False   # a sandboxed display: clicks at (0, 0) are allowed
pyautogui.PAUSE = 0
KEYS = {"meta": "win", "menu": "apps", "escape": "esc", "ctrlleft": "ctrlleft"}
def drag(c):
    pyautogui.moveTo(c["x1"], c["y1"]); pyautogui.mouseDown(button="left"); time.sleep(0.05)
    n = 12
    for i in range(1, n + 1):
        pyautogui.moveTo(c["x1"] + (c["x2"] - c["x1"]) * i // n,
                         c["y1"] + (c["y2"] - c["y1"]) * i // n)
        time.sleep(0.015)
    time.sleep(0.05); pyautogui.mouseUp(button="left")
SPARE = {}   # character -> keycode we bound to it (kept bound: clients re-read keymaps lazily)
def unicode_keycode(ch):
    from Xlib import X
    d = pyautogui._pyautogui_x11._display
    if ch in SPARE:
        return SPARE[ch]
    first = d.display.info.min_keycode
    count = d.display.info.max_keycode - first + 1
    mapping = d.get_keyboard_mapping(first, count)
    used = set(SPARE.values())
    free = [first + i for i, syms in enumerate(mapping)
            if not any(syms) and first + i not in used]
    if not free:  # recycle the oldest binding
        old = next(iter(SPARE)); free = [SPARE.pop(old)]
    code = free[-1]
    sym = ord(ch) if ord(ch) < 0x100 else 0x01000000 + ord(ch)
    width = len(mapping[0])
    d.change_keyboard_mapping(code, [tuple([sym, sym] + [X.NoSymbol] * (width - 2))])
    d.sync(); time.sleep(0.05)
    SPARE[ch] = code
    return code
def type_text(text):
    from Xlib import X
    from Xlib.ext import xtest
    d = pyautogui._pyautogui_x11._display
    for ch in text:
        if ch.isascii():
            pyautogui.write(ch); continue
        code = unicode_keycode(ch)
        xtest.fake_input(d, X.KeyPress, code); d.sync()
        xtest.fake_input(d, X.KeyRelease, code); d.sync()
        time.sleep(0.005)
def run(c):
    op = c["op"]
    if op == "click":
        n = c.get("clicks", 1)  # click() sleeps `interval` after every click, even the last
        pyautogui.click(c["x"], c["y"], clicks=n, interval=0.05 if n > 1 else 0.0,
                        button=c.get("button", "left"))
    elif op == "press_long":
        pyautogui.moveTo(c["x"], c["y"]); pyautogui.mouseDown(); time.sleep(c.get("hold", 1.0))
        pyautogui.mouseUp()
    elif op == "drag":
        drag(c)
    elif op == "scroll":
        pyautogui.moveTo(c["x"], c["y"])
        if c["dy"]:
            pyautogui.scroll(c["dy"], x=c["x"], y=c["y"])
        if c["dx"]:
            pyautogui.hscroll(c["dx"], x=c["x"], y=c["y"])
    elif op == "hotkey":
        pyautogui.hotkey(*[KEYS.get(k, k) for k in c["keys"]], interval=0.02)
    elif op == "write":
        pyautogui.write(c["text"], interval=0.005)
    elif op == "type":
        type_text(c["text"])
    elif op == "move":
        pyautogui.moveTo(c["x"], c["y"])
    elif op == "position":
        return list(pyautogui.position())
    else:
        raise ValueError("unknown op %r" % op)
print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    try:
        out = run(json.loads(line))
        print(json.dumps({"ok": True, "result": out}), flush=True)
    except Exception as exc:
        print(json.dumps({"ok": False, "error": "%s: %s" % (type(exc).__name__, exc)}), flush=True)
"""


class XDisplay:
    """One private X server with a window manager, a screenshot grabber and an input process.

    ``size`` is (width, height). ``use_existing_display`` attaches to ``$DISPLAY`` (or the
    given display string) instead of starting a server; it must be asked for explicitly.
    """

    def __init__(
        self,
        size: tuple[int, int] = (1280, 720),
        *,
        window_manager: bool = True,
        use_existing_display: bool | str = False,
        start_timeout: float = 15.0,
    ) -> None:
        self.size = (int(size[0]), int(size[1]))
        if self.size[0] < 64 or self.size[1] < 64:
            raise ConfigError(f"screen size {self.size[0]}x{self.size[1]} is too small (min 64x64)")
        self.window_manager = window_manager
        self.use_existing_display = use_existing_display
        self.start_timeout = start_timeout
        self.name: str = ""  # ":N"
        self.number: int | None = None
        self.tmpdir: Path | None = None
        self.xauthority: Path | None = None
        self.xvfb: subprocess.Popen | None = None
        self.wm: subprocess.Popen | None = None
        self.input: subprocess.Popen | None = None
        self._mss: Any = None
        self._xlib: Any = None

    # ---- life cycle -------------------------------------------------------------------------
    def start(self) -> XDisplay:
        if self.use_existing_display:
            self._attach_existing()
        else:
            self.tmpdir = Path(tempfile.mkdtemp(prefix="pixelpilot-x-"))
            self._start_xvfb()
            if self.window_manager:
                self._start_wm()
        self._start_input()
        return self

    def _attach_existing(self) -> None:
        name = self.use_existing_display
        name = os.environ.get("DISPLAY", "") if name is True else str(name)
        if not name:
            raise ConfigError("use_existing_display=True but DISPLAY is not set")
        self.name = name
        auth = os.environ.get("XAUTHORITY") or str(Path.home() / ".Xauthority")
        self.xauthority = Path(auth)

    def _start_xvfb(self) -> None:
        xvfb = _require("Xvfb", "xvfb")
        xauth = _require("xauth", "xauth")
        assert self.tmpdir is not None
        self.xauthority = self.tmpdir / "Xauthority"
        cookie = secrets.token_hex(16)
        # the server loads every cookie of its -auth file, whatever display number it names
        subprocess.run(
            [xauth, "-q", "-f", str(self.xauthority), "add", ":0", "MIT-MAGIC-COOKIE-1", cookie],
            check=True,
            capture_output=True,
        )
        read_fd, write_fd = os.pipe()
        w, h = self.size
        cmd = [xvfb, "-displayfd", str(write_fd), "-screen", "0", f"{w}x{h}x24"]
        cmd += ["-nolisten", "tcp", "-auth", str(self.xauthority), "-noreset", "-nocursor"]
        self.xvfb = subprocess.Popen(
            cmd,
            pass_fds=(write_fd,),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmpdir / "xvfb.log", "wb"),  # noqa: SIM115
            start_new_session=True,
        )
        os.close(write_fd)
        try:
            number = self._read_display_number(read_fd)
        finally:
            os.close(read_fd)
        self.number = number
        self.name = f":{number}"
        subprocess.run(
            [xauth, "-q", "-f", str(self.xauthority), "add", self.name, "MIT-MAGIC-COOKIE-1"]
            + [cookie],
            check=True,
            capture_output=True,
        )

    def _read_display_number(self, fd: int) -> int:
        deadline = time.monotonic() + self.start_timeout
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or (self.xvfb is not None and self.xvfb.poll() is not None):
                log = self._log_tail("xvfb.log")
                raise EnvError(f"Xvfb did not start: {log or 'no output'}")
            ready, _, _ = select.select([fd], [], [], min(left, 0.2))
            if ready:
                chunk = os.read(fd, 64)
                if not chunk:
                    continue
                data += chunk
        return int(data.strip())

    def _log_tail(self, name: str) -> str:
        if self.tmpdir is None or not (self.tmpdir / name).exists():
            return ""
        lines = (self.tmpdir / name).read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def env(self) -> dict[str, str]:
        """Environment variables of a client of this display (no other DISPLAY leaks in)."""
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "XAUTHORITY")}
        env.update(DISPLAY=self.name, XAUTHORITY=str(self.xauthority))
        return env

    def _start_wm(self) -> None:
        openbox = _require("openbox", "openbox")
        assert self.tmpdir is not None
        home = self.tmpdir / "wm-home"
        home.mkdir(exist_ok=True)
        env = self.env() | {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")}
        self.wm = subprocess.Popen(
            [openbox, "--sm-disable"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.tmpdir / "openbox.log", "wb"),  # noqa: SIM115
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout
        while not self._wm_ready():
            if self.wm.poll() is not None or time.monotonic() > deadline:
                raise EnvError(f"openbox did not start: {self._log_tail('openbox.log')}")
            time.sleep(0.05)

    def _wm_ready(self) -> bool:
        xlib = self.xlib()
        atom = xlib.intern_atom("_NET_SUPPORTING_WM_CHECK")
        prop = xlib.screen().root.get_full_property(atom, 0)
        return prop is not None and len(prop.value) > 0

    def _start_input(self) -> None:
        try:
            import pyautogui  # noqa: F401  (only to fail early with a clear message)
        except ImportError as exc:
            if "DISPLAY" not in str(exc) and isinstance(exc, ModuleNotFoundError):
                raise DependencyNotInstalled("pyautogui", extra="desktop") from exc
        except KeyError:  # pyautogui needs a DISPLAY at import time; it is installed
            pass
        env = self.env() | {"XDG_SESSION_TYPE": "x11"}
        self.input = subprocess.Popen(
            [sys.executable, "-c", _INPUT_SERVER],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._reply("input process")

    def _reply(self, what: str) -> Any:
        assert self.input is not None and self.input.stdout is not None
        line = self.input.stdout.readline()
        if not line:
            err = self.input.stderr.read() if self.input.stderr else ""
            tail = err.strip().splitlines()[-1] if err.strip() else "no output"
            raise EnvError(f"{what} on display {self.name} died: {tail}")
        reply = json.loads(line)
        if reply.get("ready"):
            return None
        if not reply["ok"]:
            raise EnvError(f"{what} failed: {reply['error']}")
        return reply.get("result")

    def alive(self) -> bool:
        """Whether our X server (or the attached one) is still there."""
        if self.xvfb is not None:
            return self.xvfb.poll() is None
        return bool(self.name)

    def check_alive(self) -> None:
        if not self.alive():
            code = self.xvfb.returncode if self.xvfb is not None else None
            raise EnvError(f"X server {self.name} died (exit code {code}); call reset()")

    def close(self) -> None:
        """Stop every process this display started and remove its files."""
        for handle in (self._mss, self._xlib):
            try:
                if handle is not None:
                    handle.close()
            except Exception:  # noqa: BLE001  (a dead server makes closing fail; nothing to do)
                pass
        self._mss = self._xlib = None
        if self.input is not None:
            for stream in (self.input.stdin, self.input.stdout, self.input.stderr):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
        for proc in (self.input, self.wm, self.xvfb):
            _kill(proc)
        self.input = self.wm = self.xvfb = None
        if self.tmpdir is not None:
            shutil.rmtree(self.tmpdir, ignore_errors=True)
            self.tmpdir = None

    def pids(self) -> list[int]:
        """PIDs of the processes this display runs (for leak checks)."""
        return [p.pid for p in (self.xvfb, self.wm, self.input) if p is not None]

    def __enter__(self) -> XDisplay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- output -----------------------------------------------------------------------------
    def xlib(self) -> Any:
        """A python-xlib connection to this display (for window lists and properties)."""
        if self._xlib is None:
            from Xlib import display as xdisplay

            with _xauthority(self.xauthority or Path("/nonexistent")):
                self._xlib = xdisplay.Display(self.name)
        return self._xlib

    def screenshot(self) -> np.ndarray:
        """The whole screen as an RGB uint8 array (height, width, 3)."""
        self.check_alive()
        try:
            if self._mss is None:
                import mss

                with _xauthority(self.xauthority or Path("/nonexistent")):
                    self._mss = mss.MSS(display=self.name)
            w, h = self.size
            shot = self._mss.grab({"left": 0, "top": 0, "width": w, "height": h})
        except Exception as exc:  # mss raises ScreenShotError, ctypes errors on a dead server
            self.check_alive()
            raise EnvError(f"screenshot of {self.name} failed: {exc}") from exc
        bgra = np.frombuffer(shot.raw, dtype=np.uint8).reshape(h, w, 4)
        rgb = np.empty((h, w, 3), dtype=np.uint8)
        for dst, src in ((0, 2), (1, 1), (2, 0)):  # 3 plane copies: ~15x faster than [..., 2::-1]
            rgb[:, :, dst] = bgra[:, :, src]
        return rgb

    # ---- input ------------------------------------------------------------------------------
    def send(self, **command: Any) -> Any:
        """Run one pyautogui command (``op`` plus its arguments) in the input process."""
        self.check_alive()
        if self.input is None or self.input.poll() is not None:
            raise EnvError(f"input process of {self.name} is not running; call reset()")
        assert self.input.stdin is not None
        try:
            self.input.stdin.write(json.dumps(command) + "\n")
            self.input.stdin.flush()
        except BrokenPipeError as exc:
            raise EnvError(f"input process of {self.name} died") from exc
        result = self._reply(f"input command {command.get('op')!r}")
        self.check_alive()
        return result

    def type_text(self, text: str) -> None:
        """Type ``text``: ASCII with pyautogui; any other character by binding its keysym to a
        spare keycode (both shift levels, left bound) and pressing it through XTEST."""
        if text:
            self.send(op="write" if text.isascii() else "type", text=text)

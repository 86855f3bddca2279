"""``DesktopEnv``: a Gymnasium env over a private X display with sandboxed applications.

The env contract (seeding, action validation, truncation, ``info``, timing) is ``PixelEnv``'s
(``pixelpilot.envs.core``): an action the desktop cannot execute (``open_app``, ``press_home``,
``press_back``) raises ``InvalidAction`` like any invalid one. ``info["extras"]`` =
``{"windows": [{"title", "x", "y", "width", "height"}, ...], "focused": title or None,
"display": ":N"}``. A plain desktop has no task (``info["success"]`` stays ``None``). A dead X
server raises ``EnvError``; the next ``reset()`` starts a new one.

Subclasses (the tasks in ``pixelpilot.envs.desktop_tasks``) set ``has_checker`` and override
``_setup`` (launch apps, return the instruction), ``check_success`` (the checker) and ``expert``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pixelpilot.envs.core import PixelEnv, TaskState
from pixelpilot.envs.display import XDisplay
from pixelpilot.envs.sandbox import Jail, runtime_paths
from pixelpilot.errors import ConfigError, EnvError
from pixelpilot.tools.actions import TERMINAL_ACTIONS, Action

_SCROLL = {"up": (0, 5), "down": (0, -5), "left": (-5, 0), "right": (5, 0)}
_BUTTONS = {"click": ("left", 1), "left_double": ("left", 2), "right_single": ("right", 1)}


class DesktopEnv(PixelEnv):
    """A desktop in a private Xvfb + openbox, with ``apps`` (argv lists) run in bubblewrap.

    ``screen`` is (width, height). By default the env starts its own X server and never looks
    at ``$DISPLAY``; ``use_existing_display=True`` acts on ``display`` (or ``$DISPLAY``) instead,
    which must be asked for explicitly (a ``display`` alone is refused). ``network=True`` gives
    the apps the host network (off by default). ``settle`` is the time waited after an action
    before the screenshot, ``wait_seconds`` what a ``wait`` action waits.
    """

    task_id = "desktop"

    def __init__(
        self,
        instruction: str = "",
        *,
        apps: Sequence[Sequence[str]] = (),
        screen: tuple[int, int] = (1280, 720),
        max_steps: int = 15,
        settle: float = 0.15,
        wait_seconds: float = 0.5,
        display: str | None = None,
        use_existing_display: bool = False,
        network: bool = False,
        render_mode: str | None = None,
    ) -> None:
        self._contract_init(max_steps=max_steps, render_mode=render_mode)
        self._declare_screen(screen)
        self.instruction = instruction
        self.apps = [list(a) for a in apps]
        self.settle = settle
        self.wait_seconds = wait_seconds
        if display is not None and not use_existing_display:
            raise ConfigError(
                f"refusing to use the existing display {display}: DesktopEnv starts its own; "
                "pass use_existing_display=True to act on it anyway"
            )
        self.use_existing_display: bool | str = (display or True) if use_existing_display else False
        self.network = network
        self.display: XDisplay | None = None
        self.jail: Jail | None = None
        self._solved = False
        self.last_action_time = 0.0  # wall clock when the last action was done (for experts)

    # ---- PixelEnv hooks ----------------------------------------------------------------------
    def _start(self, seed: int, options: dict[str, Any]) -> None:
        self._solved = False
        self._ensure_display()
        self._new_jail()
        assert self.display is not None
        self.display.send(op="move", x=self.screen[0] - 1, y=self.screen[1] - 1)
        # the episode's generator: the same as ``np_random`` after ``reset(seed=seed)``
        self.instruction = self._setup(np.random.default_rng(seed), options)
        time.sleep(self.settle)

    def _act(self, action: Action) -> None:
        if self.display is None or self.jail is None:
            raise EnvError("no episode running; call reset()")
        self._execute(action)
        self.last_action_time = time.time()
        time.sleep(self.settle)

    def _judge(self, action: Action) -> TaskState:
        if not self.has_checker:
            return TaskState()
        was = self._solved
        self._solved = was or self._check(wait=action.type in TERMINAL_ACTIONS)
        reward = 1.0 if self._solved and not was else 0.0
        return TaskState(reward, self._solved, True if self._solved else None)

    def close(self) -> None:
        """Stop the apps, the window manager and the X server; remove the temporary home."""
        self._started = False
        if self.jail is not None:
            self.jail.close()
            self.jail = None
        if self.display is not None:
            self.display.close()
            self.display = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001  (interpreter shutdown)
            pass

    # ---- what tasks override ----------------------------------------------------------------
    def _setup(self, rng: np.random.Generator, options: dict[str, Any]) -> str:
        """Launch the episode's applications and return its instruction."""
        for argv in self.apps:
            self.launch(argv)
        if self.apps:
            self.wait_for(lambda: len(self.windows()) >= len(self.apps), "the apps' windows")
        return str(options.get("instruction", self.instruction))

    def check_success(self) -> bool:
        """The task's checker; a plain desktop has none."""
        return False

    # ---- helpers for tasks ------------------------------------------------------------------
    @property
    def home(self) -> Path:
        """The sandbox home of this episode (where apps write their state)."""
        if self.jail is None or self.jail.home is None:
            raise EnvError("no episode running; call reset()")
        return self.jail.home

    def launch(self, argv: Sequence[str]) -> None:
        """Start an application inside the episode's jail."""
        assert self.jail is not None
        self.jail.spawn(list(argv), log=self.home / ".app.log")

    def wait_for(self, predicate: Any, what: str, timeout: float = 15.0) -> Any:
        """Poll ``predicate`` until it returns a truthy value; ``EnvError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.display is not None
            self.display.check_alive()
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                log = self.home / ".app.log"
                tail = log.read_text(errors="replace")[-300:] if log.exists() else ""
                raise EnvError(f"timed out waiting for {what}; app log: {tail.strip()!r}")
            time.sleep(0.05)

    def windows(self) -> list[dict[str, Any]]:
        """Top-level windows managed by the window manager, in stacking order."""
        assert self.display is not None
        self.display.check_alive()
        return _windows(self.display)

    # ---- internals --------------------------------------------------------------------------
    def _ensure_display(self) -> None:
        if self.display is not None and not self.display.alive():
            self.close()
        if self.display is None:
            self.display = XDisplay(self.screen, use_existing_display=self.use_existing_display)
            try:
                self.display.start()
            except BaseException:
                self.display.close()
                self.display = None
                raise

    def _new_jail(self) -> None:
        if self.jail is not None:
            self.jail.close()
        assert self.display is not None
        self.jail = Jail(
            home=Path(tempfile.mkdtemp(prefix="pixelpilot-home-")),
            own_home=True,
            display=self.display.name,
            xauthority=self.display.xauthority,
            network=self.network,
            env={"SHELL": "/bin/bash"},
            ro_paths=runtime_paths(),
        )

    def _check(self, wait: bool) -> bool:
        deadline = time.monotonic() + (1.0 if wait else 0.0)
        while True:
            if self.check_success():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def _execute(self, act: Action) -> None:
        assert self.display is not None
        d = self.display
        kind = act.type
        if kind in _BUTTONS:
            button, clicks = _BUTTONS[kind]
            d.send(op="click", x=act.x, y=act.y, button=button, clicks=clicks)
        elif kind == "long_press":
            d.send(op="press_long", x=act.x, y=act.y)
        elif kind == "drag":
            d.send(op="drag", x1=act.x1, y1=act.y1, x2=act.x2, y2=act.y2)
        elif kind == "scroll":
            dx, dy = _SCROLL[act.direction]
            d.send(op="scroll", x=act.x, y=act.y, dx=dx, dy=dy)
        elif kind == "hotkey":
            d.send(op="hotkey", keys=list(act.keys))
        elif kind == "type":
            d.type_text(act.text)
            if act.submit:
                d.send(op="hotkey", keys=["enter"])
        elif kind == "wait":
            time.sleep(self.wait_seconds)
        # finished / call_user end the episode (PixelEnv.step); the types the desktop cannot
        # execute are refused by PixelEnv.validate before they get here.

    def _observe(self) -> dict[str, Any]:
        assert self.display is not None
        return {"screenshot": self.display.screenshot(), "instruction": self.instruction}

    def _extras(self) -> dict[str, Any]:
        assert self.display is not None
        wins = self.windows()
        focused = next((w["title"] for w in wins if w.get("focused")), None)
        listed = [{k: w[k] for k in ("title", "x", "y", "width", "height")} for w in wins]
        return {"windows": listed, "focused": focused, "display": self.display.name}


def _windows(display: XDisplay) -> list[dict[str, Any]]:
    from Xlib import X, error

    conn = display.xlib()
    root = conn.screen().root
    atom = conn.intern_atom
    clients = root.get_full_property(atom("_NET_CLIENT_LIST_STACKING"), X.AnyPropertyType)
    active = root.get_full_property(atom("_NET_ACTIVE_WINDOW"), X.AnyPropertyType)
    active_id = active.value[0] if active is not None and len(active.value) else None
    out: list[dict[str, Any]] = []
    for wid in clients.value if clients is not None else []:
        try:
            win = conn.create_resource_object("window", wid)
            name = win.get_full_property(atom("_NET_WM_NAME"), atom("UTF8_STRING"))
            title = name.value.decode("utf-8", "replace") if name is not None else ""
            title = title or (win.get_wm_name() or "")
            geo = win.get_geometry()
            pos = win.translate_coords(root, 0, 0)
            out.append(
                {
                    "title": str(title),
                    "x": -pos.x,
                    "y": -pos.y,
                    "width": geo.width,
                    "height": geo.height,
                    "id": int(wid),
                    "focused": wid == active_id,
                }
            )
        except error.XError:
            continue  # the window went away while we looked
    return out

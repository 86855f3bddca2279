"""``DesktopEnv``: a Gymnasium env over a private X display with sandboxed applications.

Raw observation: ``{"screenshot": uint8 (h, w, 3), "instruction": str}``. ``info`` carries
``task``, ``seed``, ``step``, ``success``, ``action_error`` (``None`` or why an action was not
executed) and ``extras`` = ``{"windows": [{"title", "x", "y", "width", "height"}, ...],
"focused": title or None, "display": ":N"}``.

``step`` takes a pixelpilot ``Action`` or its canonical dict; an invalid one raises
``ParseError`` naming the field, coordinates off screen are clamped onto it. An action the
desktop has no meaning for (``open_app``, ``press_home``, ``press_back``) is not executed and
reported in ``info["action_error"]``. ``finished``/``call_user`` end the episode
(``info["agent_done"]`` names which). Timings of the last reset/step are in ``timing_ms``.
A dead X server raises ``EnvError``; the next ``reset()`` starts a new one.

Subclasses (the tasks in ``pixelpilot.envs.desktop_tasks``) override ``_setup`` (launch apps,
return the instruction), ``check_success`` (the checker) and ``expert``.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from pixelpilot.envs.base import Policy
from pixelpilot.envs.display import XDisplay
from pixelpilot.envs.sandbox import Sandbox, runtime_paths
from pixelpilot.envs.spaces import ActionSpace, observation_space, to_action
from pixelpilot.errors import EnvError, ParseError
from pixelpilot.tools.actions import TERMINAL_ACTIONS, Action

_SCROLL = {"up": (0, 5), "down": (0, -5), "left": (-5, 0), "right": (5, 0)}
_BUTTONS = {"click": ("left", 1), "left_double": ("left", 2), "right_single": ("right", 1)}


class DesktopEnv(gym.Env):
    """A desktop in a private Xvfb + openbox, with ``apps`` (argv lists) run in bubblewrap.

    ``screen`` is (width, height). By default the env starts its own X server and never looks
    at ``$DISPLAY``; ``use_existing_display=True`` acts on ``display`` (or ``$DISPLAY``) instead,
    which must be asked for explicitly (a ``display`` alone is refused). ``network=True`` gives
    the apps the host network (off by default). ``settle`` is the time waited after an action
    before the screenshot, ``wait_seconds`` what a ``wait`` action waits.
    """

    metadata = {"render_modes": ["rgb_array"]}
    task_name = "desktop"

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
        self.screen = (int(screen[0]), int(screen[1]))
        self.instruction = instruction
        self.apps = [list(a) for a in apps]
        self.max_steps = max_steps
        self.settle = settle
        self.wait_seconds = wait_seconds
        if display is not None and not use_existing_display:
            raise EnvError(
                f"refusing to use the existing display {display}: DesktopEnv starts its own; "
                "pass use_existing_display=True to act on it anyway"
            )
        self.use_existing_display: bool | str = (display or True) if use_existing_display else False
        self.network = network
        self.render_mode = render_mode
        self.action_space = ActionSpace(self.screen)
        self.observation_space = observation_space(self.screen)
        self.display: XDisplay | None = None
        self.sandbox: Sandbox | None = None
        self.seed_used: int | None = None
        self._steps = 0
        self._solved = False
        self._last_shot: np.ndarray | None = None
        self.timing_ms: dict[str, float] = {}  # of the last reset/step (kept out of info)
        self.last_action_time = 0.0  # wall clock when the last action was done (for experts)

    # ---- Gymnasium API ----------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        started = time.perf_counter()
        super().reset(seed=seed)
        self.seed_used = seed
        self._steps = 0
        self._solved = False
        self._ensure_display()
        self._new_sandbox()
        assert self.display is not None
        self.display.send(op="move", x=self.screen[0] - 1, y=self.screen[1] - 1)
        self.instruction = self._setup(self.np_random, options or {})
        time.sleep(self.settle)
        obs, info = self._observe(), self._info(None)
        info["agent_done"] = None
        self.timing_ms = {"reset": (time.perf_counter() - started) * 1000}
        return obs, info

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self.display is None or self.sandbox is None:
            raise EnvError("step() before reset()")
        try:
            act = self._clamp(to_action(action))
        except (ValueError, TypeError) as exc:
            raise ParseError(f"invalid action {action!r}: {exc}") from exc
        started = time.perf_counter()
        self._steps += 1
        error = self._execute(act)
        self.last_action_time = time.time()
        time.sleep(self.settle)
        was = self._solved
        done = act.type in TERMINAL_ACTIONS
        self._solved = was or self._check(wait=done)
        terminated = self._solved or done
        truncated = not terminated and self._steps >= self.max_steps
        reward = 1.0 if self._solved and not was else 0.0
        obs, info = self._observe(), self._info(error)
        info["agent_done"] = act.type if done else None
        self.timing_ms = {"step": (time.perf_counter() - started) * 1000}
        return obs, reward, terminated, truncated, info

    def _clamp(self, act: Action) -> Action:
        """The action with every coordinate moved onto the screen."""
        w, h = self.screen
        limits = {"x": w, "x1": w, "x2": w, "y": h, "y1": h, "y2": h}
        moved = {
            name: min(getattr(act, name), top - 1)
            for name, top in limits.items()
            if hasattr(act, name) and getattr(act, name) >= top
        }
        return dataclasses.replace(act, **moved) if moved else act

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array":
            return self._last_shot.copy() if self._last_shot is not None else None
        return None

    def close(self) -> None:
        """Stop the apps, the window manager and the X server; remove the temporary home."""
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None
        if self.display is not None:
            self.display.close()
            self.display = None

    def __enter__(self) -> DesktopEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    def expert(self) -> Policy:
        raise EnvError(f"{self.task_name} has no scripted expert")

    # ---- helpers for tasks ------------------------------------------------------------------
    @property
    def home(self) -> Path:
        """The sandbox home of this episode (where apps write their state)."""
        if self.sandbox is None or self.sandbox.home is None:
            raise EnvError("no episode running; call reset()")
        return self.sandbox.home

    def launch(self, argv: Sequence[str]) -> None:
        """Start an application inside the episode's sandbox."""
        assert self.sandbox is not None
        self.sandbox.spawn(list(argv), log=self.home / ".app.log")

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

    def _new_sandbox(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
        assert self.display is not None
        home = Path(tempfile.mkdtemp(prefix="pixelpilot-home-"))
        self.sandbox = Sandbox(
            home=home,
            display=self.display.name,
            xauthority=self.display.xauthority,
            network=self.network,
            env={"SHELL": "/bin/bash"},
            ro_paths=runtime_paths(),
        )
        self.sandbox._own_home = True

    def _check(self, wait: bool) -> bool:
        deadline = time.monotonic() + (1.0 if wait else 0.0)
        while True:
            if self.check_success():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def _execute(self, act: Action) -> str | None:
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
        elif kind in TERMINAL_ACTIONS:
            pass
        else:
            return f"{kind}: not available on the desktop"
        return None

    def _observe(self) -> dict[str, Any]:
        assert self.display is not None
        self._last_shot = self.display.screenshot()
        return {"screenshot": self._last_shot.copy(), "instruction": self.instruction}

    def _info(self, error: str | None) -> dict[str, Any]:
        assert self.display is not None
        wins = self.windows()
        focused = next((w["title"] for w in wins if w.get("focused")), None)
        listed = [{k: w[k] for k in ("title", "x", "y", "width", "height")} for w in wins]
        return {
            "task": self.task_name,
            "seed": self.seed_used,
            "step": self._steps,
            "success": self._solved,
            "action_error": error,
            "extras": {"windows": listed, "focused": focused, "display": self.display.name},
        }


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

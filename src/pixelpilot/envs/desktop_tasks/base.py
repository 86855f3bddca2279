"""What desktop tasks share: app launching, state files, and the scripted expert policy.

A task is a ``DesktopEnv`` subclass that picks its episode from the seeded ``np_random``
(texts, positions), launches its apps in the sandbox, checks success from files the apps write
(or the clipboard), and plans the expert's next action from privileged state: the app's
``state.json`` and the window list. The model never sees that state, only screenshots.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from pixelpilot.envs.base import BasePolicy, Observation, PolicyOutput, ScreenBox
from pixelpilot.envs.desktop import DesktopEnv
from pixelpilot.tools.actions import Action, Click

TKAPP = Path(__file__).with_name("tkapp.py")
LAUNCH_TIMEOUT = 45.0  # seconds for a Tk app to start and show its window

# What the expert does next: a thought, the action, and the box of the element acted on.
Plan = tuple[str, Action, ScreenBox | None]


def centre(box: ScreenBox | list[int]) -> tuple[int, int]:
    x1, y1, x2, y2 = box
    return (x1 + x2) // 2, (y1 + y2) // 2


def click(thought: str, box: ScreenBox | list[int]) -> Plan:
    x, y = centre(box)
    return thought, Click(x=x, y=y), tuple(int(v) for v in box)  # type: ignore[return-value]


def position(rng: np.random.Generator, span: int, size: int, margin: int = 20) -> int:
    """A random coordinate that keeps an item of ``size`` pixels inside ``span``."""
    high = max(margin + 1, span - size - margin)
    return int(rng.integers(margin, high))


class DesktopTask(DesktopEnv):
    """A desktop task: ``_episode`` sets the episode up; ``plan`` is the expert's next step."""

    task_id = "desktop/task"
    has_checker = True
    description = ""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_steps", 12)
        super().__init__(**kwargs)
        self.params: dict[str, Any] = {}

    def _setup(self, rng: np.random.Generator, options: dict[str, Any]) -> str:
        return self._episode(rng)

    def _episode(self, rng: np.random.Generator) -> str:
        raise NotImplementedError

    def plan(self, memory: dict[str, Any]) -> Plan:
        """The expert's next step; ``memory`` persists over one episode."""
        raise NotImplementedError

    def expert(self) -> ScriptedExpert:
        return ScriptedExpert(self)

    # ---- Tk apps ----------------------------------------------------------------------------
    def launch_tk(self, app: str, title: str, **config: Any) -> None:
        """Start ``tkapp.py``'s ``app`` in the sandbox and wait until its window is up."""
        path = self.home / "config.json"
        path.write_text(json.dumps({"app": app, "title": title, **config}, ensure_ascii=False))
        self.launch([sys.executable, str(TKAPP), str(path)])
        # generous: under a full parallel test run a window took over 15 s to be listed
        self.wait_for(lambda: self.state().get("ready"), f"the {app} app", timeout=LAUNCH_TIMEOUT)
        self.wait_for(
            lambda: any(w["title"] == title for w in self.windows()), title, LAUNCH_TIMEOUT
        )

    def state(self) -> dict[str, Any]:
        """The app's latest ``state.json`` ({} while it has none)."""
        return _read_json(self.home / "state.json") or {}

    def fresh_state(self, timeout: float = 2.0) -> dict[str, Any]:
        """The app's state as published after the last action (the app publishes every
        80 ms; under load it may lag, and an expert planning from a stale state repeats
        itself)."""
        deadline = time.monotonic() + timeout
        state = self.state()
        while state.get("time", 0.0) <= self.last_action_time and time.monotonic() < deadline:
            time.sleep(0.02)
            state = self.state()
        return state

    def result(self) -> dict[str, Any] | None:
        """The app's ``result.json`` once the user completed its action."""
        return _read_json(self.home / "result.json")

    def window(self, title: str) -> dict[str, Any] | None:
        return next((w for w in self.windows() if w["title"] == title), None)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class ScriptedExpert(BasePolicy):
    """The task's expert as a ``Policy``: answers in the UI-TARS action language (frame
    ``uitars-1.5`` at the screen size) and marks the box of the element it acts on."""

    def __init__(self, env: DesktopTask) -> None:
        self.env = env
        self.memory: dict[str, Any] = {}

    def reset(self, instruction: str) -> None:
        self.memory = {"instruction": instruction, "steps": 0}

    def act(self, observation: Observation) -> PolicyOutput:
        from pixelpilot.tools import format_response

        thought, action, box = self.env.plan(self.memory)
        self.memory["steps"] = self.memory.get("steps", 0) + 1
        self.memory["last"] = action.type
        self.memory["keys"] = list(getattr(action, "keys", ()))
        text = format_response(thought, [action], self.coords, self.env.screen)
        return PolicyOutput(text, box)

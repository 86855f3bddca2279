"""A small in-process env for loop tests that are about the loop, not the browser."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from pixelpilot.errors import EnvError
from pixelpilot.tools.actions import Click, Type


class ButtonEnv(gym.Env):
    """A 200x120 screen with one button at (50..150, 40..80); clicking it ends the episode
    with reward 1. Typing changes the screen; clicking the far right edge raises EnvError
    (an action the env refuses). The seed moves the button a little."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, size: tuple[int, int] = (200, 120)) -> None:
        self.size = size
        w, h = size
        self.observation_space = gym.spaces.Dict(
            {
                "screenshot": gym.spaces.Box(0, 255, (h, w, 3), np.uint8),
                "instruction": gym.spaces.Text(200),
            }
        )
        self.offset = 0
        self.typed = ""
        self.actions: list[Any] = []

    def _obs(self) -> dict[str, Any]:
        w, h = self.size
        img = np.full((h, w, 3), 240, np.uint8)
        img[40:80, 50 + self.offset : 150 + self.offset] = (30, 90, 200)
        img[0:5, 0 : min(w, len(self.typed) * 10)] = 0
        return {"screenshot": img, "instruction": "Click the blue button."}

    def reset(self, *, seed: int | None = None, options: Any = None):
        super().reset(seed=seed)
        self.offset = int(seed or 0) % 20
        self.typed = ""
        self.actions = []
        return self._obs(), {"extras": {"url": "fake://button"}}

    @property
    def button(self) -> tuple[int, int, int, int]:
        return (50 + self.offset, 40, 149 + self.offset, 79)

    def step(self, action: Any):
        self.actions.append(action)
        if isinstance(action, Click):
            if action.x >= self.size[0] - 2:
                raise EnvError("click outside the page")
            x1, y1, x2, y2 = self.button
            if x1 <= action.x <= x2 and y1 <= action.y <= y2:
                return self._obs(), 1.0, True, False, {"success": True}
        if isinstance(action, Type):
            self.typed += action.text
        return self._obs(), 0.0, False, False, {}


class ButtonExpert:
    """A scripted expert for ButtonEnv: clicks the button's centre (pixels frame)."""

    frame = "pixels"

    def __init__(self, env: ButtonEnv) -> None:
        self.env = env

    def reset(self, instruction: str) -> None:
        self.instruction = instruction

    def act(self, observation: Any):
        from pixelpilot.envs.base import PolicyOutput

        x1, y1, x2, y2 = self.env.button
        return PolicyOutput(
            f"Thought: the button.\nAction: click(start_box='({(x1 + x2) // 2},{(y1 + y2) // 2})')",
            target=self.env.button,
        )

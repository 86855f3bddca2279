"""Gymnasium spaces shared by pixelpilot envs.

``ActionSpace`` holds pixelpilot actions as canonical dicts (or ``Action`` objects). By default
``sample()`` returns a valid, harmless action (``wait``), so ``gymnasium``'s ``check_env`` can
step an env without changing what is on screen; with ``sample_input=True`` it samples real
input (clicks, scrolls, drags, typing, hotkeys) on the screen, which the browser env uses.
``InstructionSpace`` holds any str up to a length (gymnasium's ``Text`` space only accepts a
fixed character set).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from pixelpilot.tools.actions import Action


def to_action(action: Any) -> Action:
    """An ``Action`` from an ``Action`` or its canonical dict; ``ValueError`` if invalid."""
    if isinstance(action, Action):
        return action
    return Action.from_dict(action)


_SAMPLED_TYPES = ("click", "left_double", "right_single", "scroll", "drag", "type", "hotkey")
_SAMPLED_KEYS = (("tab",), ("shift", "tab"), ("backspace",), ("enter",), ("ctrl", "a"), ("down",))


class ActionSpace(spaces.Space):
    """Pixelpilot actions in screen pixels of a ``size`` = (width, height) screen; ``types``
    (when given) are the action types the env executes, and ``contains`` refuses the rest."""

    def __init__(
        self,
        size: tuple[int, int],
        seed: int | None = None,
        *,
        sample_input: bool = False,
        types: frozenset[str] | None = None,
    ) -> None:
        super().__init__(shape=None, dtype=None, seed=seed)
        self.size = (int(size[0]), int(size[1]))
        self.sample_input = sample_input
        self.types = frozenset(types) if types is not None else None

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> dict[str, Any]:
        if not self.sample_input:
            return {"type": "wait"}
        kind = _SAMPLED_TYPES[int(self.np_random.integers(len(_SAMPLED_TYPES)))]
        if kind == "type":
            letters = self.np_random.choice(list("abcdefghij klmnop"), size=5)
            return {"type": kind, "content": "".join(letters)}
        if kind == "hotkey":
            keys = _SAMPLED_KEYS[int(self.np_random.integers(len(_SAMPLED_KEYS)))]
            return {"type": kind, "keys": list(keys)}
        (x, y), (x2, y2) = self._point(), self._point()
        if kind == "scroll":
            direction = ("up", "down", "left", "right")[int(self.np_random.integers(4))]
            return {"type": kind, "x": x, "y": y, "direction": direction}
        if kind == "drag":
            return {"type": kind, "x1": x, "y1": y, "x2": x2, "y2": y2}
        return {"type": kind, "x": x, "y": y}

    def _point(self) -> tuple[int, int]:
        return int(self.np_random.integers(self.size[0])), int(
            self.np_random.integers(self.size[1])
        )

    def contains(self, x: Any) -> bool:
        try:
            action = to_action(x)
        except (ValueError, TypeError):
            return False
        if self.types is not None and action.type not in self.types:
            return False
        return self.on_screen(action)

    def on_screen(self, action: Action) -> bool:
        """Whether every coordinate of ``action`` lies on the screen."""
        w, h = self.size
        xs = [getattr(action, n) for n in ("x", "x1", "x2") if hasattr(action, n)]
        ys = [getattr(action, n) for n in ("y", "y1", "y2") if hasattr(action, n)]
        return all(0 <= v < w for v in xs) and all(0 <= v < h for v in ys)

    def __repr__(self) -> str:
        return f"ActionSpace({self.size[0]}x{self.size[1]})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ActionSpace) and other.size == self.size and other.types == self.types
        )


class InstructionSpace(spaces.Space):
    """Any ``str`` of at most ``max_length`` characters."""

    def __init__(self, max_length: int = 4096, seed: int | None = None) -> None:
        super().__init__(shape=None, dtype=None, seed=seed)
        self.max_length = max_length

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        return "".join(self.np_random.choice(list("abcdefgh ")) for _ in range(8))

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"InstructionSpace(max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InstructionSpace) and other.max_length == self.max_length


def observation_space(size: tuple[int, int]) -> spaces.Dict:
    """``{"screenshot": uint8 (h, w, 3), "instruction": str}`` for a (width, height) screen."""
    w, h = size
    return spaces.Dict(
        {
            "screenshot": spaces.Box(0, 255, shape=(h, w, 3), dtype=np.uint8),
            "instruction": InstructionSpace(),
        }
    )

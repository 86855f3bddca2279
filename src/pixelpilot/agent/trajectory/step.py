"""The trajectory format's vocabulary: its constants and one recorded ``Step``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pixelpilot import untrusted

FORMAT = "pixelpilot.trajectory"
VERSION = 1
FILE_NAME = "trajectory.jsonl"
HEADER_KEYS = ("task", "env", "seed", "model", "frame", "screen", "started_at")
STEP_KEYS = (
    "index",
    "screenshot",
    "response",
    "thought",
    "reflection",
    "actions",
    "reward",
    "terminated",
    "truncated",
    "info",
    "timing",
    "target",
    "error",
)


def screenshot_name(index: int) -> str:
    """File name of step ``index``'s screenshot: ``step-0003.png``."""
    return f"step-{index:04d}.png"


@dataclass(frozen=True)
class Step:
    """One recorded step: what the policy saw (screenshot), said, did, and what it got.

    ``actions`` are canonical Action dicts in screen pixels; ``target`` is the ground-truth box
    ``[x1, y1, x2, y2]`` of the acted-on element when known (experts); ``error`` says what went
    wrong (a parse error, an action the env refused) when something did. ``extra`` keeps keys
    this version does not know, so a newer writer's files survive a round trip.
    """

    index: int
    screenshot: str
    response: str = ""
    thought: str | None = None
    reflection: str | None = None
    actions: tuple[dict[str, Any], ...] = ()
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    target: tuple[int, int, int, int] | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "screenshot": self.screenshot,
            "response": self.response,
            "thought": self.thought,
            "reflection": self.reflection,
            "actions": [dict(a) for a in self.actions],
            "reward": float(self.reward),
            "terminated": bool(self.terminated),
            "truncated": bool(self.truncated),
            "info": self.info,
            "timing": self.timing,
            "target": list(self.target) if self.target is not None else None,
            "error": self.error,
        }
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @property
    def perturbed(self) -> bool:
        """The action was injected to teach recovery, not chosen (``PolicyOutput.perturbed``)."""
        return self.extra.get("perturbed") is True

    @property
    def labels(self) -> tuple[tuple[str, tuple[int, int, int, int]], ...]:
        """The readable texts on the screenshot and their boxes, when the recorder knew them
        (synthetic screens, the MiniWoB experts): ``"labels": [[text, x1, y1, x2, y2], ...]``."""
        return untrusted.labels(self.extra.get("labels"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        """Build a step from its JSON form; ``ValueError`` names the offending key."""
        if not isinstance(data, dict):
            raise ValueError(f"a step must be a JSON object, got {type(data).__name__}")
        for key in ("index", "screenshot"):
            if key not in data:
                raise ValueError(f"step has no {key!r}")
        index = data["index"]
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"'index' must be a non-negative integer, got {index!r}")
        untrusted.file_name(data["screenshot"])
        actions = untrusted.actions(data.get("actions"))
        reward = data.get("reward", 0.0)
        if isinstance(reward, bool) or not isinstance(reward, (int, float)):
            raise ValueError(f"'reward' must be a number, got {reward!r}")
        if not math.isfinite(reward):
            raise ValueError(f"'reward' must be finite, got {reward!r}")
        for key in ("info", "timing"):
            if not isinstance(data.get(key) or {}, dict):
                raise ValueError(f"{key!r} must be an object")
        untrusted.flag(data, "perturbed")  # kept in extra, but only as a JSON boolean
        untrusted.labels(data.get("labels"))  # kept in extra, but only when well formed
        return cls(
            index=index,
            screenshot=data["screenshot"],
            response=untrusted.text_or_none(data, "response") or "",
            thought=untrusted.text_or_none(data, "thought"),
            reflection=untrusted.text_or_none(data, "reflection"),
            actions=actions,
            reward=float(reward),
            terminated=untrusted.flag(data, "terminated"),
            truncated=untrusted.flag(data, "truncated"),
            info=dict(data.get("info") or {}),
            timing=dict(data.get("timing") or {}),
            target=untrusted.box(data.get("target")),
            error=untrusted.text_or_none(data, "error"),
            extra={k: v for k, v in data.items() if k not in STEP_KEYS},
        )

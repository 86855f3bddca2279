"""The perception -> reasoning -> action loop, its recordings, replay and viewer.

Names are imported lazily so ``import pixelpilot.agent`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Step": "pixelpilot.agent.trajectory",
    "Episode": "pixelpilot.agent.trajectory",
    "TrajectoryWriter": "pixelpilot.agent.trajectory",
    "TrajectoryReader": "pixelpilot.agent.trajectory",
    "read_trajectory": "pixelpilot.agent.trajectory",
    "iter_episodes": "pixelpilot.agent.trajectory",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pixelpilot.agent' has no attribute {name!r}")

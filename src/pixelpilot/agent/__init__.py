"""The perception -> reasoning -> action loop, its recordings, replay and viewer.

Names are imported lazily so ``import pixelpilot.agent`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Agent": "pixelpilot.agent.loop",
    "EpisodeResult": "pixelpilot.agent.loop",
    "execute": "pixelpilot.agent.loop",
    "VLMPolicy": "pixelpilot.agent.policy",
    "PromptTemplate": "pixelpilot.agent.prompts",
    "replay": "pixelpilot.agent.replay",
    "ReplayReport": "pixelpilot.agent.replay",
    "write_view": "pixelpilot.agent.viewer",
    "record_tasks": "pixelpilot.agent.run",
    "AgentRunnable": "pixelpilot.agent.langchain",
    "EnvSession": "pixelpilot.agent.langchain",
    "env_tools": "pixelpilot.agent.langchain",
    "to_dataset": "pixelpilot.agent.dataset",
    "from_dataset": "pixelpilot.agent.dataset",
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

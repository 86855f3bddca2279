"""Fixtures shared by every part's tests. Each part appends its own section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# --- vlm: tiny checkpoints ------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-init Qwen2.5-VL checkpoint (size xs, seed 0) that ``pixelpilot.vlm.load``
    turns into an ``HFVLM``; built once per xdist worker (cached across runs)."""
    pytest.importorskip("transformers")
    from pixelpilot.vlm.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "qwen2_5_vl-xs", "qwen2_5_vl", "xs", 0)


# --- tools: the action language --------------------------------------------------------------


@pytest.fixture(scope="session")
def action_examples() -> list[dict[str, Any]]:
    """One action of every type the action language has, as canonical dicts."""
    return [
        {"type": "click", "x": 196, "y": 519},
        {"type": "left_double", "x": 1, "y": 2},
        {"type": "right_single", "x": 1, "y": 2},
        {"type": "long_press", "x": 1, "y": 2},
        {"type": "drag", "x1": 1, "y1": 2, "x2": 3, "y2": 4},
        {"type": "scroll", "x": 1, "y": 2, "direction": "left"},
        {"type": "hotkey", "keys": ["ctrl", "shift", "t"]},
        {"type": "type", "content": "hello\n"},
        {"type": "wait"},
        {"type": "finished", "content": ""},
        {"type": "call_user", "content": "help"},
        {"type": "open_app", "app_name": "Maps"},
        {"type": "press_home"},
        {"type": "press_back"},
    ]

"""Fixtures shared by every part's tests. Each part appends its own section."""

from __future__ import annotations

from pathlib import Path

import pytest

# --- vlm: tiny checkpoints ------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-init Qwen2.5-VL checkpoint (size xs, seed 0) that ``pixelpilot.vlm.load``
    turns into an ``HFVLM``; built once per xdist worker (cached across runs)."""
    pytest.importorskip("transformers")
    from pixelpilot.vlm.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "qwen2_5_vl-xs", "qwen2_5_vl", "xs", 0)

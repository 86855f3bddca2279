"""Shared fixtures of the training tests: expert recordings of MiniWoB tasks (real Chromium)
and the tiny Qwen2.5-VL checkpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def record(out: Path, tasks: str, episodes: int, seed: int = 0) -> Path:
    """Expert episodes of ``tasks`` recorded by the real agent loop under ``out``."""
    cmd = [sys.executable, "-m", "pixelpilot.cli", "record", tasks, "--expert", "--json",
           "--episodes", str(episodes), "--seed", str(seed), "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def pixelpilot_command(args: list[str], procs: int = 1) -> list[str]:
    """The command that runs ``pixelpilot ARGS`` in one process, or in ``procs`` processes
    under accelerate's torchrun launcher (gloo on CPUs) on a free port."""
    import shutil

    from pixelpilot.train.distributed import free_port

    if procs == 1:
        return [sys.executable, "-m", "pixelpilot.cli", *args]
    port = free_port()
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "accelerate is part of the train extra"
    return [accelerate, "launch", "--multi_gpu", "--num_processes", str(procs),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(port), "-m", "pixelpilot.cli", *args]  # fmt: skip


def step_rows(out: Path) -> list[dict]:
    """The optimizer-step rows of a run's ``metrics.jsonl`` (not its validation rows)."""
    import json

    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if "loss" in r]


def tensor_names(folder: str | Path) -> set[str]:
    """The tensor names of a checkpoint folder's ``model.safetensors`` (an objective that
    adds no parameter leaves them as the starting checkpoint's)."""
    from safetensors import safe_open

    with safe_open(str(Path(folder) / "model.safetensors"), "pt") as f:
        return set(f.keys())


@pytest.fixture(scope="session", autouse=True)
def one_thread_per_process() -> None:
    """One intra-op thread in this process and in the training processes tests start: on a
    shared, oversubscribed CPU the default threads spin against each other (one tiny SFT step
    was 6x slower with two threads than with one at a load average of 24)."""
    import os

    import torch

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def click_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight one-step expert episodes: click-test and click-button, seeds 0-3."""
    out = tmp_path_factory.mktemp("train-data") / "click"
    return record(out, "miniwob/click-test,miniwob/click-button", 4)


@pytest.fixture(scope="session")
def tiny_xs() -> str:
    from pixelpilot.vlm.tiny import build_tiny

    return str(build_tiny(arch="qwen2_5_vl", size="xs"))


@pytest.fixture(scope="session")
def warm_model(click_data: Path, tiny_xs: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The tiny model after 60 SFT steps on the click experts: it answers in the action
    language but is far from perfect."""
    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.sft import train_sft

    out = tmp_path_factory.mktemp("grpo-warm") / "sft"
    cfg = SFTConfig(data=str(click_data), model=tiny_xs, out=str(out), lr=3e-3, batch_size=4,
                    max_steps=60, schedule="constant", progress=False, seed=0)  # fmt: skip
    return train_sft(cfg).checkpoint

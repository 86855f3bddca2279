"""Learning curves of a training run, as PNG files (matplotlib's Agg backend, the eval extra).

``plot_sft(run, out)`` draws an SFT run's ``metrics.jsonl``: the answer NLL and, when the run
trained the pointing loss (``pixelpilot.train.pointing``), the pointing loss and accuracy, and
when it trained the copy objective (``pixelpilot.train.copying``), the copy head's attention
on its target.
``plot_grpo(run, out)`` draws a GRPO run's sampled reward and success rate. Both smooth with a
running mean over ``window`` steps (the raw per-step values of 8 samples are noisy) and return
``out``. ``plot_success(points, out)`` draws held-out success against training steps.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pixelpilot.errors import DataError, DependencyNotInstalled


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise DependencyNotInstalled("matplotlib", extra="eval") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _rows(run: Path, key: str) -> list[dict[str, Any]]:
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: no metrics to plot")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if isinstance(r.get(key), int | float)]
    if not rows:
        raise DataError(f"{path}: no step with {key!r}")
    return rows


def smooth(values: Sequence[float], window: int) -> list[float]:
    """Running mean over the last ``window`` values (fewer at the start)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _save(fig: Any, plt: Any, out: Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_sft(run: str | Path, out: str | Path, window: int = 100, title: str = "SFT") -> Path:
    plt = _pyplot()
    rows = _rows(Path(run), "loss")
    steps = [r["step"] for r in rows]
    nll = [r.get("nll", r["loss"]) for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    ax.plot(steps, smooth(nll, window), label="answer NLL")
    right = None
    if all("point_loss" in r for r in rows):
        ax.plot(steps, smooth([r["point_loss"] for r in rows], window), label="pointing loss")
        right = ax.twinx()
        accuracy = smooth([r["point_accuracy"] for r in rows], window)
        right.plot(steps, accuracy, "--", color="tab:green", label="pointing accuracy")
    heads = (  # logged on the steps whose batch had typing (copy) or a click (look)
        ("copy_attention", "tab:purple", "copy head on its target"),
        ("look_attention", "tab:red", "look head on the gold cell"),
    )
    for key, color, label in heads:
        kept = [r for r in rows if key in r]
        if kept:
            right = right or ax.twinx()
            attention = smooth([r[key] for r in kept], window)
            right.plot([r["step"] for r in kept], attention, ":", color=color, label=label)
    if right is not None:
        right.set_ylim(-0.02, 1.02)
        right.set_ylabel("accuracy / attention (training batches)")
        right.legend(loc="center right", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(f"loss (running mean of {window} steps)")
    ax.set_title(title)
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, plt, Path(out))


def plot_grpo(run: str | Path, out: str | Path, window: int = 10, title: str = "GRPO") -> Path:
    plt = _pyplot()
    rows = _rows(Path(run), "reward_mean")
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    ax.plot(steps, smooth([r["reward_mean"] for r in rows], window), label="reward (mean)")
    if all("success_rate" in r for r in rows):
        success = smooth([r["success_rate"] for r in rows], window)
        ax.plot(steps, success, "--", label="sampled answers on target")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel(f"running mean of {window} steps")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, plt, Path(out))


def plot_success(
    points: Sequence[tuple[int, float]],
    out: str | Path,
    title: str = "held-out success",
    ylabel: str = "mean success, held-out seeds",
) -> Path:
    """``points``: (training step, a held-out rate in 0..1) pairs: mean success by default,
    or the rate ``ylabel`` names."""
    if not points:
        raise DataError("plot_success: no points")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    ax.plot([p[0] for p in points], [p[1] for p in points], "o-")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("SFT optimizer step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _save(fig, plt, Path(out))

"""Learning-curve PNGs from a run's metrics.jsonl; a run without metrics is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pixelpilot.errors import DataError
from pixelpilot.train.curves import plot_grpo, plot_sft, plot_success, smooth


def test_smooth_is_a_running_mean() -> None:
    assert smooth([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]
    assert smooth([2.0], 10) == [2.0]


def _metrics(run: Path, rows: list[dict]) -> Path:
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_sft_and_grpo_runs_plot_to_png(tmp_path: Path) -> None:
    sft = _metrics(tmp_path / "sft", [{"step": i, "loss": 5.0 / i, "nll": 4.0 / i,
                                       "point_loss": 2.0 / i, "point_accuracy": i / 20,
                                       **({"copy_attention": i / 20} if i % 3 else {}),
                                       **({"look_attention": i / 30} if i % 4 else {})}
                                      for i in range(1, 21)] + [{"validation": {}}])  # fmt: skip
    copy_only = _metrics(tmp_path / "copy", [{"step": i, "loss": 1.0, "copy_attention": 0.5}
                                             for i in range(1, 4)])  # fmt: skip
    grpo = _metrics(tmp_path / "grpo", [{"step": i, "reward_mean": i / 10, "success_rate": i / 20}
                                        for i in range(1, 11)])  # fmt: skip
    for path in (
        plot_sft(sft, tmp_path / "png" / "sft.png", window=5),
        plot_sft(copy_only, tmp_path / "png" / "copy.png", window=5),
        plot_grpo(grpo, tmp_path / "png" / "grpo.png", window=3),
        plot_success([(0, 0.1), (100, 0.5)], tmp_path / "png" / "success.png"),
        plot_success([(0, 0.0), (9, 0.7)], tmp_path / "png" / "typed.png", ylabel="typed right"),
    ):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] > 300


def test_missing_metrics_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no metrics"):
        plot_sft(tmp_path, tmp_path / "x.png")
    _metrics(tmp_path / "r", [{"validation": {}}])
    with pytest.raises(DataError, match="reward_mean"):
        plot_grpo(tmp_path / "r", tmp_path / "x.png")

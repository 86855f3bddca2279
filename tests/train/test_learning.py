"""Learning check: a tiny random-init model fine-tuned on the expert steps of two MiniWoB tasks
lowers its loss and raises its offline step success on those samples (fixed seed)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow  # about a minute alone on two cores; several times that on a loaded machine
@pytest.mark.timeout(1800)
def test_sft_learns_expert_clicks(click_data: Path, tiny_xs: str, tmp_path: Path) -> None:
    from pixelpilot.eval.offline import OfflineConfig, evaluate_offline
    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.sft import train_sft

    def offline(model: str) -> dict:
        cfg = OfflineConfig(data=str(click_data), model=model, max_new_tokens=40)
        return evaluate_offline(cfg)

    before = offline(tiny_xs)
    config = SFTConfig(data=str(click_data), model=tiny_xs, out=str(tmp_path / "run"),
                       max_steps=40, batch_size=4, lr=3e-3, warmup_steps=3, seed=0,
                       progress=False)  # fmt: skip
    result = train_sft(config)
    after = offline(result.checkpoint)
    assert result.loss_last < result.loss_first / 4
    assert after["format_error_rate"]["value"] < before["format_error_rate"]["value"]
    assert after["action_type_accuracy"]["value"] == 1.0
    assert after["step_success_rate"]["value"] > before["step_success_rate"]["value"]

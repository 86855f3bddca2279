"""Every tiny architecture fine-tunes, and its checkpoint loads again; the cached-prompt
log-probabilities training uses equal ``HFVLM.logprobs``."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixelpilot.vlm.tiny import ARCHS


@pytest.mark.parametrize("arch", ARCHS)
def test_sft_on_every_tiny_architecture(arch: str, click_data: Path, tmp_path: Path) -> None:
    import torch

    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.data import load_split
    from pixelpilot.train.sft import train_sft
    from pixelpilot.vlm import load
    from pixelpilot.vlm.tiny import build_tiny

    model = str(build_tiny(arch=arch, size="xs"))
    config = SFTConfig(data=str(click_data), model=model, out=str(tmp_path / arch), lr=1e-3,
                       max_steps=2, batch_size=2, progress=False)  # fmt: skip
    result = train_sft(config)
    assert result.steps == 2 and result.loss_last < result.loss_first
    vlm = load(result.checkpoint)
    samples = list(load_split(config).train[:2])
    convs = [s.conversation(vlm.profile) for s in samples]
    answers = [vlm.tokenizer(s.target_text(vlm.profile), add_special_tokens=False)["input_ids"]
               for s in samples]  # fmt: skip
    with torch.no_grad():
        fast = vlm.completion_logprobs([vlm.encode_prompt(c) for c in convs], answers)
        plain = vlm.logprobs(convs, answers)
    for a, b in zip(fast, plain, strict=True):
        assert a.shape == b.shape and float((a - b).abs().max()) <= 1e-4

"""The unpadded causal attention (pixelpilot.vlm.attention): sdpa's result on a left-padded
batch, the fast path taken only for that mask, and the same log-probabilities and gradients
as sdpa in every tiny architecture that loads with it."""

from __future__ import annotations

from typing import Any

import pytest

from pixelpilot.vlm.tiny import ARCHS


class _Module:  # what the attention functions read of the attention layer
    is_causal = True
    num_key_value_groups = 1


def _mask(lengths: list[int], total: int) -> Any:
    """transformers' sdpa mask for a left-padded batch of ``lengths`` padded to ``total``."""
    import torch
    from transformers.masking_utils import sdpa_mask

    padding = torch.tensor([[0] * (total - n) + [1] * n for n in lengths], dtype=torch.bool)
    return sdpa_mask(batch_size=len(lengths), q_length=total, kv_length=total,
                     attention_mask=padding, allow_is_causal_skip=False)  # fmt: skip


def _qkv(batch: int, length: int, seed: int = 0) -> list[Any]:
    import torch

    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, length, 8, generator=gen, requires_grad=True) for _ in "qkv"]


def test_the_same_as_sdpa_on_a_left_padded_batch() -> None:
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from pixelpilot.vlm.attention import causal_left_padded, unpadded_attention

    lengths, total = [13, 7, 1, 13], 13
    mask = _mask(lengths, total)
    assert causal_left_padded(mask) == [0, 6, 12, 0]
    real = torch.tensor([[i >= total - n for i in range(total)] for n in lengths])
    outs, grads = [], []
    for attend in (unpadded_attention, sdpa_attention_forward):
        q, k, v = _qkv(4, total)
        out, _ = attend(_Module(), q, k, v, mask, scaling=0.3)
        assert out.shape == (4, total, 3, 8)
        weights = torch.linspace(-1, 1, out[real].numel()).view_as(out[real])
        (out[real] * weights).sum().backward()  # only the real rows are read downstream
        outs.append(out[real].detach())
        grads.append([t.grad for t in (q, k, v)])
    assert torch.allclose(outs[0], outs[1], atol=1e-6)
    for ours, theirs in zip(*grads, strict=True):
        assert torch.allclose(ours, theirs, atol=1e-6)


def test_any_other_mask_goes_to_sdpa_unchanged() -> None:
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from pixelpilot.vlm.attention import causal_left_padded, unpadded_attention

    mask = _mask([6, 4], 6)
    holed = mask.clone()
    holed[1, 0, 5, 3] = False  # a real key hidden from one query
    right = mask.flip(-1).flip(-2)  # right padding
    full = torch.ones(2, 1, 6, 6, dtype=torch.bool)  # bidirectional
    additive = torch.zeros(2, 1, 6, 6)  # a float mask
    for other in (holed, right, full, additive):
        assert causal_left_padded(other) is None
        q, k, v = _qkv(2, 6, seed=1)
        ours, _ = unpadded_attention(_Module(), q, k, v, other)
        theirs, _ = sdpa_attention_forward(_Module(), q, k, v, other)
        assert torch.equal(ours.nan_to_num(), theirs.nan_to_num())
    q, k, v = _qkv(2, 6, seed=2)  # one query over a cache of six keys: not the fast path
    ours, _ = unpadded_attention(_Module(), q[:, :, -1:], k, v, mask[:, :, -1:])
    theirs, _ = sdpa_attention_forward(_Module(), q[:, :, -1:], k, v, mask[:, :, -1:])
    assert torch.equal(ours, theirs)


@pytest.mark.parametrize("arch", ARCHS)
def test_models_give_sdpa_logprobs_and_gradients(
    arch: str, screen_conversations: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three prompts of different lengths in one left-padded batch, with gradients: the
    decoder on the unpadded attention and on sdpa agree, and the fast path ran (the Qwen
    decoders with grouped keys). chameleon has no text sub-config and kimi_vl is remote code:
    both keep sdpa."""
    import torch

    from pixelpilot.vlm import attention
    from pixelpilot.vlm.attention import NAME

    found: list[Any] = []
    check = attention.causal_left_padded
    monkeypatch.setattr(
        attention, "causal_left_padded", lambda m: found.append(check(m)) or found[-1]
    )
    from pixelpilot.vlm.hf import HFVLM
    from pixelpilot.vlm.tiny import build_tiny

    vlm = HFVLM(build_tiny(arch=arch, size="xs"))
    text = getattr(vlm.model.config, "text_config", None)
    switched = text is not None and text._attn_implementation == NAME
    assert switched == (arch in ("qwen2_5_vl", "qwen2_vl", "kimi_k25"))
    if not switched:  # sdpa alone: nothing to compare it with
        return
    convs = screen_conversations(vlm, 7, 3)
    prompts = [vlm.encode_prompt(c) for c in convs]
    lengths = {int(p["input_ids"].shape[1]) for p in prompts}
    answers = [[5, 6, 7], [8, 9], [10, 11, 12, 13]]
    runs = []
    for name in (NAME, "sdpa"):
        vlm.model.set_attn_implementation({"text_config": name})
        vlm.model.zero_grad()
        logprobs = vlm.completion_logprobs(prompts, answers)
        torch.stack([lp.sum() for lp in logprobs]).sum().backward()
        grads = [p.grad.clone() for p in vlm.model.parameters() if p.grad is not None]
        runs.append(([lp.detach() for lp in logprobs], grads))
    assert len(lengths) > 1  # the batch is padded
    # the fast path ran, on rows that start after padding
    assert found and all(s is not None and max(s) > 0 for s in found)
    (ours, our_grads), (theirs, their_grads) = runs
    for a, b in zip(ours, theirs, strict=True):
        assert float((a - b).abs().max()) <= 1e-5
    assert len(our_grads) == len(their_grads) > 0
    for a, b in zip(our_grads, their_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)

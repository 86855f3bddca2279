"""Causal attention on left-padded batches without the padding's work.

A batch of prompts of different lengths is left-padded to its longest, and transformers'
``sdpa`` attention then runs every row over the full padded square with an explicit mask:
the kernel cannot skip the masked half above the diagonal nor the padding. Here each row's
real tokens attend among themselves with ``is_causal`` (the kernel skips the upper half), and
the padding's query rows get zeros. The result is the masked attention's, up to rounding:
a real token never attends to padding, and nothing reads the padding's outputs but the
padding.

``unpadded_attention`` takes the fast path only when the mask it is given is exactly the
causal mask of a left-padded batch (``causal_left_padded``); any other call (a KV cache, one
query, a float or bidirectional mask, dropout) goes to transformers' ``sdpa`` unchanged.
Grouped keys (fewer key/value heads than query heads, as in Qwen2.5-VL) stay grouped
(``enable_gqa``). ``use_unpadded_attention`` switches a loaded model's text decoder to it.

On the default recipe's SFT step (batch of 4 a process, prompts of about 550 to 1,000 tokens)
the decoder's attention was about a third of the step: docs/benchmarks.md has the figures.
"""

from __future__ import annotations

from typing import Any

NAME = "pixelpilot_unpadded"
"""The attention implementation's name in transformers' registry (``AttentionInterface``)."""

_causal: dict[tuple[int, str], Any] = {}  # (length, device) -> lower-triangular bool matrix


def causal_left_padded(mask: Any) -> list[int] | None:
    """Each row's first real position if the 4-D boolean ``mask`` (``[batch, 1, q, k]``, True
    attends) is exactly causal over a left-padded batch (queries and keys the same positions,
    each row's real keys one run at its end); None for any other mask."""
    import torch

    if mask.dtype != torch.bool or mask.dim() != 4 or mask.shape[1] != 1:
        return None
    length = mask.shape[-1]
    if mask.shape[-2] != length:
        return None
    valid = mask[:, 0, -1, :]  # the last query (a real token) sees exactly its row's real keys
    real = valid.sum(-1)
    starts = length - real
    if not torch.equal(valid, torch.arange(length, device=mask.device)[None] >= starts[:, None]):
        return None  # a key missing inside the row: not left padding
    key = (length, str(mask.device))
    causal = _causal.get(key)
    if causal is None:
        _causal.clear()  # one length at a time is enough; keeps memory flat
        causal = _causal[key] = torch.ones(length, length, dtype=torch.bool,
                                           device=mask.device).tril()  # fmt: skip
    expected = causal[None] & valid[:, None, :]  # padding rows see nothing: all False too
    if not _same(mask[:, 0], expected):
        return None
    return [int(s) for s in starts]


def _same(a: Any, b: Any) -> bool:
    """``torch.equal`` for two contiguous bool tensors, eight bytes at a time when it can."""
    import torch

    a, b = a.contiguous().reshape(-1), b.contiguous().reshape(-1)
    if a.numel() % 8 == 0:  # comparing bools one by one is several times slower
        return torch.equal(a.view(torch.int64), b.view(torch.int64))
    return torch.equal(a, b)


def unpadded_attention(
    module: Any,
    query: Any,
    key: Any,
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    """transformers' attention-function contract (``[batch, heads, length, dim]`` in,
    ``([batch, length, heads, dim], None)`` out); ``sdpa``'s result, computed per row on its
    real tokens when the mask allows (see the module docstring)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    starts = None
    plain = (
        attention_mask is None
        or dropout
        or is_causal is False
        or query.shape[2] < 2
        or key.shape[2] != query.shape[2]
        or query.shape[1] % key.shape[1]
        or kwargs.get("softcap") is not None
        or kwargs.get("position_bias") is not None
        or kwargs.get("output_attentions")
    )
    if not plain:
        starts = causal_left_padded(attention_mask)
    if starts is None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask,
            dropout=dropout, scaling=scaling, is_causal=is_causal, **kwargs,
        )  # fmt: skip
    grouped = query.shape[1] != key.shape[1]  # fewer key/value heads, each serving a group
    rows = []
    for b, start in enumerate(starts):
        if start >= query.shape[2]:  # a row of padding alone
            rows.append(value.new_zeros(query.shape[2], value.shape[1], value.shape[3]))
            continue
        out = torch.nn.functional.scaled_dot_product_attention(
            query[b : b + 1, :, start:], key[b : b + 1, :, start:], value[b : b + 1, :, start:],
            is_causal=True, scale=scaling, enable_gqa=grouped,
        )[0].transpose(0, 1)  # fmt: skip
        if start:
            out = torch.cat([out.new_zeros(start, *out.shape[1:]), out])
        rows.append(out)
    return torch.stack(rows), None


def register() -> None:
    """Make ``NAME`` known to transformers (its masks built as ``sdpa``'s are); idempotent."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    AttentionInterface.register(NAME, unpadded_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)


def use_unpadded_attention(model: Any) -> bool:
    """Switch ``model``'s text decoder (a transformers class's, not remote code's) from
    ``sdpa`` to ``NAME``; False when it has no text sub-config or does not run ``sdpa``."""
    text = getattr(getattr(model, "config", None), "text_config", None)
    if text is None or getattr(text, "_attn_implementation", None) != "sdpa":
        return False
    register()
    model.set_attn_implementation({"text_config": NAME})
    return text._attn_implementation == NAME

"""Shared-prefix groups equal the straightforward per-answer computation (``HFVLM.logprobs``):
log-probabilities within 1e-4 and gradients within tolerance, on tiny real architectures with
one and with several screenshots in the prompt."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from pixelpilot.errors import ModelError  # noqa: E402
from pixelpilot.train.prefix import (  # noqa: E402
    encode_prompts,
    group_logprobs,
    vlm_group_logprobs,
    vlm_sample_groups,
)
from pixelpilot.vlm import Conversation, SamplingParams  # noqa: E402
from pixelpilot.vlm.base import Message  # noqa: E402

_VLMS: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _vlm(arch: str) -> Any:
    from pixelpilot.vlm import load
    from pixelpilot.vlm.tiny import ARCHS, build_tiny

    if arch not in ARCHS:
        pytest.skip(f"no tiny {arch} builder yet")
    if arch not in _VLMS:
        _VLMS[arch] = load(str(build_tiny(arch=arch, size="xs")))
    return _VLMS[arch]


def _shot(color: str, size: tuple[int, int] = (160, 210)) -> Image.Image:
    im = Image.new("RGB", size, color)
    im.paste("black", (20, 30, 60, 50))
    return im


def _single() -> Conversation:
    return Conversation.user("Click the OK button.", [_shot("white")])


def _history(images: int) -> Conversation:
    """An agent-style conversation: the task, earlier turns with screenshots and answers,
    then the current screenshot (``images`` screenshots in all)."""
    colors = ["white", "red", "navy", "gray", "green"]
    msgs = [Message("user", "Select the second item, then press Submit.")]
    for i in range(images - 1):
        msgs.append(Message("user", "", (_shot(colors[i]),)))
        answer = f"Thought: step {i}\nAction: click(start_box='(4{i},60)')"
        msgs.append(Message("assistant", answer))
    msgs.append(Message("user", "", (_shot(colors[images - 1], (210, 160)),)))
    return Conversation(tuple(msgs))


def _per_answer(vlm: Any, convs: list[Conversation], groups: list[list[list[int]]], grad: bool):
    flat_convs = [convs[b] for b, g in enumerate(groups) for _ in g]
    flat = [c for g in groups for c in g]
    return vlm.logprobs(flat_convs, flat, grad=grad)


ARCHS = ["qwen2_5_vl", "qwen2_vl", "kimi_vl", "kimi_k25"]


@pytest.mark.parametrize("arch", ARCHS)
def test_group_logprobs_equal_per_answer_logprobs_and_gradients(arch: str) -> None:
    vlm = _vlm(arch)
    convs = [_single(), _history(3), _history(5)]
    groups = vlm_sample_groups(vlm, convs, 3, max_new_tokens=10, temperature=1.0, seed=1)
    answers = [[list(s.token_ids) for s in g] for g in groups]
    answers[0][1] = answers[0][1][:4]  # answers of unequal lengths in one group

    shared = vlm_group_logprobs(vlm, convs, answers).rows()
    straight = _per_answer(vlm, convs, answers, grad=False)
    assert len(shared) == len(straight) == 9
    for a, b in zip(shared, straight, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)

    model = vlm.model
    weights = torch.linspace(0.5, 1.5, len(straight))  # a loss that weighs answers unequally
    model.zero_grad()
    rows = vlm_group_logprobs(vlm, convs, answers, grad=True).rows()
    sum(w * r.sum() for w, r in zip(weights, rows, strict=True)).backward()
    ours = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    rows = _per_answer(vlm, convs, answers, grad=True)
    sum(w * r.sum() for w, r in zip(weights, rows, strict=True)).backward()
    theirs = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    assert ours.keys() == theirs.keys()
    assert any("visual" in n or "vision" in n for n in ours)  # gradients reach the encoder
    for name, g in theirs.items():
        scale = float(g.abs().max()) or 1.0
        torch.testing.assert_close(ours[name] / scale, g / scale, atol=1e-4, rtol=0, msg=name)


@pytest.mark.parametrize("arch", ["qwen2_5_vl", "kimi_k25"])
def test_sampled_logprobs_are_the_scored_ones_and_seeded(arch: str) -> None:
    vlm = _vlm(arch)
    convs = [_history(2), _single()]
    a = vlm_sample_groups(vlm, convs, 4, max_new_tokens=8, temperature=1.0, seed=7)
    b = vlm_sample_groups(vlm, convs, 4, max_new_tokens=8, temperature=1.0, seed=7)
    c = vlm_sample_groups(vlm, convs, 4, max_new_tokens=8, temperature=1.0, seed=8)
    assert [len(g) for g in a] == [4, 4]
    assert a == b
    assert a != c
    assert len({s.token_ids for s in a[0]}) > 1  # a group explores, it does not repeat one answer
    answers = [[list(s.token_ids) for s in g] for g in a]
    scored = vlm_group_logprobs(vlm, convs, answers).rows()
    for s, row in zip([s for g in a for s in g], scored, strict=True):
        torch.testing.assert_close(torch.tensor(s.logprobs), row, atol=1e-4, rtol=0)


def test_greedy_group_answers_equal_generate() -> None:
    vlm = _vlm("qwen2_5_vl")
    convs = [_single(), _history(4)]
    ours = vlm_sample_groups(vlm, convs, 2, max_new_tokens=12, temperature=0.0)
    theirs = vlm.generate(convs, SamplingParams(max_new_tokens=12, temperature=0.0))
    for group, gen in zip(ours, theirs, strict=True):
        assert [s.text for s in group] == [gen.text, gen.text]
        assert group[0].token_ids == gen.token_ids


def test_groups_of_different_sizes_and_bad_input() -> None:
    vlm = _vlm("qwen2_5_vl")
    convs = [_single(), _history(2)]
    answers = [[[5, 6, 7]], [[8], [9, 10], [11, 12, 13, 14]]]
    scored = vlm_group_logprobs(vlm, convs, answers)
    assert scored.logprobs.shape == (4, 4)
    assert scored.mask.sum(1).tolist() == [3, 1, 2, 4]
    straight = _per_answer(vlm, convs, answers, grad=False)
    for a, b in zip(scored.rows(), straight, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    inputs = encode_prompts(vlm, convs)
    with pytest.raises(ModelError, match="one group"):
        group_logprobs(vlm.model, inputs, answers[:1])
    with pytest.raises(ModelError, match="at least one"):
        group_logprobs(vlm.model, inputs, [[], []])


def test_one_seed_per_prompt_makes_a_group_independent_of_its_batch() -> None:
    vlm = _vlm("qwen2_5_vl")
    a, b = _single(), _history(3)
    both = vlm_sample_groups(vlm, [a, b], 3, max_new_tokens=8, seed=[11, 12])
    alone_a = vlm_sample_groups(vlm, [a], 3, max_new_tokens=8, seed=[11])
    alone_b = vlm_sample_groups(vlm, [b], 3, max_new_tokens=8, seed=[12])
    assert [s.token_ids for s in both[0]] == [s.token_ids for s in alone_a[0]]
    assert [s.token_ids for s in both[1]] == [s.token_ids for s in alone_b[0]]
    with pytest.raises(ModelError, match="one per prompt"):
        vlm_sample_groups(vlm, [a, b], 2, max_new_tokens=4, seed=[1, 2, 3])

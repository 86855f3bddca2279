"""GRPO with the checkpoint's decoding aids (``--decoding-aids``): the sampler draws what
evaluation decodes, the scorer gives the aided distribution's log-probabilities, and a GRPO
run samples only well-formed answers. The bundled model is the real checkpoint that declares
the four aids; the screens are synthetic ones it never trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402

from pixelpilot.agent import factory  # noqa: E402
from pixelpilot.agent.policy import VLMPolicy  # noqa: E402
from pixelpilot.envs.base import Observation  # noqa: E402
from pixelpilot.errors import ConfigError, ModelError  # noqa: E402
from pixelpilot.train.grpo import GRPOConfig, train_grpo  # noqa: E402
from pixelpilot.train.prefix import (  # noqa: E402
    RowGroups,
    encode_prompts,
    group_logprobs,
    media_token_ids,
    sample_groups,
)
from pixelpilot.train.synthetic import render, write_synthetic  # noqa: E402
from pixelpilot.vlm.base import SamplingParams  # noqa: E402
from pixelpilot.vlm.hf import HFVLM  # noqa: E402
from pixelpilot.vlm.profiles import read_declaration  # noqa: E402

SEED = 7  # a synthetic stream the recipe does not draw


@pytest.fixture(scope="module")
def aided() -> HFVLM:
    torch.set_num_threads(1)
    folder = factory.default_model_path()
    assert folder is not None
    vlm = HFVLM(folder)
    assert vlm.aided and vlm.pointer is not None and vlm.calls is not None
    return vlm


def _conversations(vlm: HFVLM, kinds: tuple[str, ...] = ("link", "button")) -> list[Any]:
    """Three screens; on these label screens the guide moves the greedy clicks."""
    convs = []
    for i in range(3):
        image, sample = render(SEED, i, kinds)
        policy = VLMPolicy(vlm)
        policy.reset(sample.instruction)
        convs.append(policy.conversation(Observation(image, sample.instruction)))
    return convs


def _aids(vlm: HFVLM, convs: list[Any], inputs: Any, n: int) -> RowGroups:
    cells = vlm.pointer_cells(convs, inputs)
    parts = [vlm.aid_processors([c], n, 0, [cell]) for c, cell in zip(convs, cells, strict=True)]
    return RowGroups(parts, [n] * len(convs))


def _sample(vlm: HFVLM, inputs: Any, n: int, processors: Any, **kw: Any) -> Any:
    return sample_groups(
        vlm.model, inputs, n, max_new_tokens=40, eos_ids=vlm._eos_ids(),
        pad_id=vlm.tokenizer.pad_token_id or 0, processors=processors,
        decode=lambda ids: vlm.tokenizer.decode(ids, skip_special_tokens=True),
        banned_ids=media_token_ids(vlm.model.config), **kw,
    )  # fmt: skip


def test_greedy_aided_answers_are_what_generate_decodes(aided: HFVLM) -> None:
    convs = _conversations(aided)
    inputs = encode_prompts(aided, convs)
    ours = _sample(aided, inputs, 1, _aids(aided, convs, inputs, 1), temperature=0.0)
    theirs = aided.generate(convs, SamplingParams(max_new_tokens=40, temperature=0.0))
    assert [g[0].text for g in ours] == [g.text for g in theirs]
    plain = _sample(aided, inputs, 1, None, temperature=0.0)
    # the guide moves at least one click of these screens (else this test shows nothing)
    assert [g[0].text for g in plain] != [g.text for g in theirs]


def test_sampled_aided_logprobs_are_the_scored_ones(aided: HFVLM) -> None:
    from pixelpilot.agent.sample import parse_answer

    convs = _conversations(aided)
    inputs = encode_prompts(aided, convs)
    aids = _aids(aided, convs, inputs, 4)
    drawn = _sample(aided, inputs, 4, aids, temperature=1.0, seed=[1, 2, 3])
    answers = [[list(a.token_ids) for a in g] for g in drawn]
    pad = aided.tokenizer.pad_token_id or 0
    scored = group_logprobs(aided.model, inputs, answers, processors=aids, pad_id=pad)
    flat = [(a, c) for g, c in zip(drawn, convs, strict=True) for a in g]
    for (answer, conv), row in zip(flat, scored.rows(), strict=True):
        torch.testing.assert_close(torch.tensor(answer.logprobs), row, atol=1e-4, rtol=0)
        assert answer.finish_reason == "stop"
        parse_answer(answer.text, aided.profile.coords, conv.images[-1].size)  # well-formed
    plain = group_logprobs(aided.model, inputs, answers, pad_id=pad)
    assert float((plain.logprobs - scored.logprobs).abs().max()) > 1e-2


def test_an_answer_the_aids_forbid_is_scored_without_them_there(aided: HFVLM) -> None:
    """A replayed recorded answer may hold a token the aids would not write (here a string
    the instruction does not quote): those positions are scored plainly, so the loss and its
    gradient stay finite."""
    convs = _conversations(aided, ("type",))
    inputs = encode_prompts(aided, convs)
    aids = _aids(aided, convs, inputs, 2)
    ids = aided.tokenizer("Action: type(content='zqzq')", add_special_tokens=False)["input_ids"]
    answers = [[list(ids), list(ids)] for _ in convs]
    pad = aided.tokenizer.pad_token_id or 0
    aided.model.zero_grad()
    scored = group_logprobs(aided.model, inputs, answers, processors=aids, pad_id=pad, grad=True)
    plain = group_logprobs(aided.model, inputs, answers, pad_id=pad)
    assert bool(scored.logprobs.isfinite().all())
    scored.logprobs.sum().backward()
    grads = [p.grad for p in aided.model.parameters() if p.grad is not None]
    assert grads and all(bool(g.isfinite().all()) for g in grads)
    aided.model.zero_grad()
    # the forbidden positions equal the plain ones, the allowed ones (the call's start) do not
    same = (scored.logprobs.detach() - plain.logprobs).abs() < 1e-4
    assert bool(same.any()) and not bool(same.all())


def test_a_grpo_run_with_the_aids_samples_only_well_formed_answers(
    aided: HFVLM, tmp_path: Path
) -> None:
    data = write_synthetic(tmp_path / "syn", 8, seed=0, kinds=("dialog", "button"))
    base = dict(data=str(data), model=str(aided.path), lr=1e-4, batch_size=2, group=8,
                max_steps=2, max_new_tokens=40, progress=False, seed=0,
                reward="format=0.1,type=0.2,point=0.7")  # fmt: skip
    run = train_grpo(GRPOConfig(**base, out=str(tmp_path / "aided"), decoding_aids=True))
    rows = run.train.history
    # a step learns where some group's answers differ in reward; a batch whose rewards are
    # all alike has no advantage, hence no gradient (a confident model may get there)
    assert len(rows) == 2 and any(r["grad_norm"] > 0 for r in rows), rows
    assert all(r["grad_norm"] == 0 for r in rows if r["reward_std"] == 0), rows
    assert all(r["reward_format_mean"] == 1.0 for r in rows)  # every sampled answer parsed
    assert all(abs(r["kl"]) < 1e-9 for r in rows)  # beta 0: no reference
    # it decodes as it was trained: the export declares the aids it sampled under, and a
    # plain run from the same checkpoint declares none (it scored the model's own answers)
    aided_as = read_declaration(run.train.checkpoint)
    source = read_declaration(aided.path)
    assert aided_as.pointer_weight == source.pointer_weight > 0
    assert aided_as.well_formed_points and aided_as.quoted_typing and aided_as.well_formed_actions
    assert aided_as.prompt_kind == source.prompt_kind
    plain = train_grpo(GRPOConfig(**{**base, "max_steps": 1}, out=str(tmp_path / "plain")))
    plain_as = read_declaration(plain.train.checkpoint)
    assert plain_as.pointer_weight == 0 and not plain_as.quoted_typing
    assert not plain_as.well_formed_points and not plain_as.well_formed_actions


def test_the_aids_need_a_declaration_and_work_offline_only(tiny_xs: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--decoding-aids works offline only"):
        GRPOConfig(model=tiny_xs, out=str(tmp_path / "o"), decoding_aids=True,
                   online="miniwob/click-test", progress=False).validate()  # fmt: skip
    with pytest.raises(ConfigError, match="--task-weights weighs recorded steps"):
        GRPOConfig(model=tiny_xs, out=str(tmp_path / "o"), task_weights="miniwob/click-test=2",
                   online="miniwob/click-test", progress=False).validate()  # fmt: skip
    from pixelpilot.train.model import load_trainable

    with pytest.raises(ConfigError, match="declares no decoding aid"):
        load_trainable(
            GRPOConfig(
                data=str(tmp_path), model=tiny_xs, out=str(tmp_path / "o"), decoding_aids=True
            ),
            "cpu",
        )
    with pytest.raises(ModelError, match="one list of processors per group"):
        RowGroups([[]], [2, 2])

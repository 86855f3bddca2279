"""Soft coordinate targets: which tokens are coordinates, the Gaussian, and training with it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixelpilot.train.coords import SoftCoordObjective, coordinate_positions, number_tokens


@pytest.fixture(scope="module")
def kimi_xs() -> str:
    from pixelpilot.vlm.tiny import build_tiny

    return str(build_tiny(arch="kimi_k25", size="xs"))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pixelpilot.train.synthetic import write_synthetic

    return write_synthetic(tmp_path_factory.mktemp("syn") / "data", 8, seed=0)


def _pieces(tokenizer, text: str) -> tuple[list[str], list[int]]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return [tokenizer.decode([i]) for i in ids], ids


def test_coordinate_positions_are_the_numbers_of_the_point_only(kimi_xs: str) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(kimi_xs)
    numbers = number_tokens(tok)
    assert len(numbers) > 900 and set(numbers.values()) <= set(range(1001))
    text = "Action: click(start_box='<|box_start|>(512,384)<|box_end|>')"
    pieces, ids = _pieces(tok, text)
    found = [numbers[ids[i]] for i in coordinate_positions(pieces, ids, numbers)]
    assert found == [512, 384]
    pieces, ids = _pieces(tok, "Action: type(content='12, 40 (7)')")
    assert [numbers.get(ids[i]) for i in coordinate_positions(pieces, ids, numbers)] != [12, 40]


def test_soft_target_peaks_at_gold_and_credits_neighbours(kimi_xs: str) -> None:
    from pixelpilot.vlm import load

    vlm = load(kimi_xs)
    obj = SoftCoordObjective(vlm, _config(kimi_xs, "/tmp/unused"), _Cache(), sigma=20.0)
    gold = next(t for t, v in obj.numbers.items() if v == 500)
    q = obj.soft_target(gold)
    assert abs(float(q.sum()) - 1) < 1e-5
    by_value = {int(v): float(p) for v, p in zip(obj.values, q, strict=True)}
    assert max(by_value, key=by_value.get) == 500
    assert by_value[510] > by_value[540] > by_value[600] and by_value[510] > 0.01


def _config(model: str, out: str, **kw):
    from pixelpilot.train.config import SFTConfig

    values = dict(data="x", model=model, out=out, max_steps=2, batch_size=4, lr=1e-3,
                  prompt_kind="grounding", progress=False)  # fmt: skip
    return SFTConfig(**{**values, **kw})


class _Cache:
    def get(self, sample):
        return {}


class _Peaked:
    """The tiny model's tokenizer and profile with answers whose distribution at every
    position puts most of its mass on one token: ``shift`` units off the gold coordinate at
    coordinate positions, the gold token elsewhere."""

    def __init__(self, vlm, shift: int) -> None:
        self.tokenizer, self.profile, self.model = vlm.tokenizer, vlm.profile, vlm.model
        self.shift = shift

    def completion_logprobs(self, prompts, completions, *, full=False):
        import torch

        numbers = number_tokens(self.tokenizer)
        by_value = {v: t for t, v in numbers.items()}
        pieces = [[self.tokenizer.decode([t]) for t in c] for c in completions]
        out = []
        for ids, pcs in zip(completions, pieces, strict=True):
            logits = torch.zeros(len(ids), len(self.tokenizer))
            coords = coordinate_positions(pcs, ids, numbers)
            for i, t in enumerate(ids):
                peak = by_value[numbers[t] + self.shift] if i in coords else t
                logits[i, peak] = 12.0
            out.append(torch.log_softmax(logits, dim=-1))
        return (
            out
            if full
            else [
                d.gather(1, torch.tensor(c).view(-1, 1)).squeeze(1)
                for d, c in zip(out, completions, strict=True)
            ]
        )


def test_soft_loss_credits_a_near_miss_over_a_far_one(kimi_xs: str, synthetic: Path) -> None:
    from pixelpilot.eval.datasets import load_samples
    from pixelpilot.vlm import load

    vlm = load(kimi_xs)
    samples = load_samples(str(synthetic), "trajectory")[:2]
    config = _config(kimi_xs, "/tmp/unused")
    losses = {}
    for shift in (2, 60):
        for sigma in (0.0, 20.0):
            obj = SoftCoordObjective(_Peaked(vlm, shift), config, _Cache(), sigma, thought=False)
            losses[shift, sigma] = float(obj.sample_losses(samples)[0].mean())
    # plain NLL: a miss by 2 units costs as much as a miss by 60
    assert losses[2, 0.0] == pytest.approx(losses[60, 0.0], rel=1e-4)
    # soft targets: the near miss costs less than the far one
    assert losses[2, 20.0] < losses[60, 20.0] - 0.01


@pytest.mark.slow
def test_narrow_gaussian_is_plain_nll_and_training_logs_it(
    kimi_xs: str, synthetic: Path, tmp_path: Path
) -> None:
    from pixelpilot.train.coords import train_soft_sft

    runs = {}
    for name, sigma in (("plain", 0.0), ("narrow", 1e-3), ("soft", 30.0)):
        out = tmp_path / name
        cfg = _config(kimi_xs, str(out), data=str(synthetic))
        runs[name] = train_soft_sft(cfg, sigma=sigma, thought=False)
        assert (out / "final" / "config.json").is_file()
    first = {k: r.history[0] for k, r in runs.items()}
    # a vanishing sigma is the one-hot target: the same first loss as plain NLL
    assert first["narrow"]["loss"] == pytest.approx(first["plain"]["loss"], rel=1e-4)
    # with soft targets the plain NLL of the same batch is logged beside the loss
    assert first["soft"]["nll"] == pytest.approx(first["plain"]["loss"], rel=1e-4)
    rows = [json.loads(x) for x in (tmp_path / "soft" / "metrics.jsonl").read_text().splitlines()]
    assert rows and all("nll" in r for r in rows if "loss" in r)

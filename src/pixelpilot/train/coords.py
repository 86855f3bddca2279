"""Soft coordinate targets: supervised fine-tuning that credits nearby numbers.

Tiny tokenizers learn whole numbers as single tokens (``'512'``, ``'384'``): with plain
next-token cross-entropy a coordinate is a ~1000-way classification whose neighbouring values
are unrelated classes, so an answer one unit off is as wrong as one across the screen, and
nothing generalises between adjacent positions. Here, at each coordinate token of the target
(a number right after ``(`` or right after ``(x,``), the one-hot target is replaced by a
Gaussian over every single-token number ``v``::

    q(v) = exp(-(v - v_gold)^2 / (2 sigma^2)) / Z,    loss_t = -sum_v q(v) log p(v)

(``sigma`` in the model's coordinate units; 0..1000 for ``uitars-1.0``), the idea of label
smoothing by distance that pointing and keypoint models use (a Gaussian heatmap instead of a
single cell; GUI-G2 uses the same Gaussian as a reward). Every other token keeps plain NLL.
Greedy decoding still picks the mode, which is the gold value. A number that the tokenizer
splits into several tokens is left to plain NLL.

``SoftCoordObjective`` plugs into the trainer like ``SFTObjective``; ``train_soft_sft(config,
sigma=...)`` is ``train_sft`` with it (``sigma=0`` is plain SFT). Validation and the logged
``nll`` stay the plain answer NLL, so runs with and without soft targets compare directly.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pixelpilot.train.config import SFTConfig
from pixelpilot.train.data import PromptCache
from pixelpilot.train.sft import SFTObjective
from pixelpilot.train.trainer import StepLoss, TrainResult
from pixelpilot.vlm.pointer import number_tokens


def coordinate_positions(
    pieces: Sequence[str], ids: Sequence[int], numbers: dict[int, int]
) -> list[int]:
    """Indexes of the coordinate numbers in a tokenised answer: a number token after a piece
    ending in ``(`` (x), or after ``,`` that follows such an x (y)."""
    out = []
    for i, t in enumerate(ids):
        if t not in numbers or i == 0:
            continue
        if pieces[i - 1].endswith("("):
            out.append(i)
        elif pieces[i - 1] == "," and i >= 2 and (i - 2) in out:
            out.append(i)
    return out


class SoftCoordObjective(SFTObjective):
    """Answer NLL with Gaussian targets over the number tokens at coordinate positions."""

    name = "sft-soft"

    def __init__(
        self, vlm: Any, config: SFTConfig, cache: PromptCache, sigma: float, thought: bool = True
    ) -> None:
        import torch

        super().__init__(vlm, config, cache)
        self.sigma = float(sigma)
        self.thought = thought
        self.numbers = number_tokens(vlm.tokenizer)
        self.number_ids = torch.tensor(sorted(self.numbers))
        self.values = torch.tensor([self.numbers[i] for i in sorted(self.numbers)]).float()
        self._soft: dict[str, list[int]] = {}

    def target_ids(self, sample: Any) -> list[int]:
        """The target's token ids; without ``thought``, the action part only."""
        ids = self._targets.get(sample.id)
        if ids is None:
            text = sample.target_text(self.vlm.profile, thought=self.thought)
            ids = list(self.vlm.tokenizer(text, add_special_tokens=False)["input_ids"])
            if self.config.end_of_turn and self.end_token is not None:
                ids.append(int(self.end_token))
            self._targets[sample.id] = ids
        return ids

    def soft_positions(self, sample: Any) -> list[int]:
        positions = self._soft.get(sample.id)
        if positions is None:
            ids = self.target_ids(sample)
            pieces = [self.vlm.tokenizer.decode([t]) for t in ids]
            positions = coordinate_positions(pieces, ids, self.numbers)
            self._soft[sample.id] = positions
        return positions

    def soft_target(self, gold_id: int) -> Any:
        """The Gaussian over ``number_ids`` centred on ``gold_id``'s value."""
        import torch

        d = self.values - float(self.numbers[gold_id])
        return torch.softmax(-(d * d) / (2 * self.sigma**2), dim=0)

    def sample_losses(self, samples: Sequence[Any]) -> tuple[Any, dict[str, float]]:
        import torch

        if self.sigma <= 0:  # plain NLL (of this objective's targets)
            return super().sample_losses(samples)
        t0 = time.perf_counter()
        prompts = [self.cache.get(s) for s in samples]
        targets = [self.target_ids(s) for s in samples]
        t1 = time.perf_counter()
        dists = self.vlm.completion_logprobs(prompts, targets, full=True)
        losses, nll = [], []
        for s, dist, ids in zip(samples, dists, targets, strict=True):
            gold = torch.tensor(ids, device=dist.device).view(-1, 1)
            token_loss = -dist.gather(1, gold).squeeze(1)
            nll.append(token_loss.mean().detach())
            soft = self.soft_positions(s)
            if soft:
                number_ids = self.number_ids.to(dist.device)
                q = torch.stack([self.soft_target(ids[i]) for i in soft]).to(dist.device)
                ce = -(q * dist[soft][:, number_ids]).sum(dim=1)
                mask = torch.zeros_like(token_loss, dtype=torch.bool)
                mask[soft] = True
                token_loss = torch.where(mask, torch.zeros_like(token_loss), token_loss)
                token_loss = token_loss.index_add(0, torch.tensor(soft, device=dist.device), ce)
            losses.append(token_loss.mean())
        self.last_nll = float(torch.stack(nll).mean())
        return torch.stack(losses), {"prepare": t1 - t0, "forward": time.perf_counter() - t1}

    def loss(self, samples: Sequence[Any]) -> StepLoss:
        out = super().loss(samples)
        if self.sigma > 0:
            out.metrics["nll"] = self.last_nll
        return out

    def validate(self, samples: Sequence[Any]) -> dict[str, float]:
        sigma, self.sigma = self.sigma, 0.0  # plain NLL, comparable across runs
        try:
            return super().validate(samples)
        finally:
            self.sigma = sigma


def train_soft_sft(
    config: SFTConfig, *, sigma: float, thought: bool = True, stop_after: int | None = None
) -> TrainResult:
    """``train_sft`` with ``SoftCoordObjective`` (``sigma`` in the model's coordinate units;
    ``thought=False`` trains on the action part of the answers only)."""
    from pixelpilot.train.sft import train_sft

    return train_sft(
        config,
        stop_after=stop_after,
        objective=lambda vlm, cfg, cache: SoftCoordObjective(vlm, cfg, cache, sigma, thought),
    )

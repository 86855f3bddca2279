"""Supervised fine-tuning on recorded steps: the loss is on the answer's tokens only.

For each step sample the prompt is the conversation the agent would send at that step
(``sample.conversation``) and the target is the recorded answer written in the model's own
frame and pixel limits (``sample.target_text``), followed by the model's end-of-turn token.
The loss of a sample is the mean negative log-likelihood of its target tokens (the prompt,
screenshots and history carry no loss); a micro-batch's loss is the mean over its samples, so
a run's losses do not depend on how a global batch is split over processes.

``train_sft(config)`` is what ``pixelpilot train sft`` runs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from pixelpilot.train.config import SFTConfig
from pixelpilot.train.data import (
    PromptCache,
    conversation_for,
    load_split,
    prompt_key,
    target_for,
)
from pixelpilot.train.trainer import StepLoss, Trainer, TrainResult


class SFTObjective:
    """Answer-token NLL of the recorded answers."""

    name = "sft"

    def __init__(self, vlm: Any, config: SFTConfig, cache: PromptCache) -> None:
        self.vlm = vlm
        self.config = config
        self.cache = cache
        self._targets: dict[str, list[int]] = {}
        eos = vlm.model.generation_config.eos_token_id
        eos = eos[0] if isinstance(eos, (list, tuple)) else eos
        self.end_token = eos if eos is not None else vlm.tokenizer.eos_token_id

    def target_ids(self, sample: Any) -> list[int]:
        """The target's token ids (tokenised alone, as generation produces them)."""
        ids = self._targets.get(sample.id)
        if ids is None:
            text = target_for(sample, self.vlm.profile)
            ids = list(self.vlm.tokenizer(text, add_special_tokens=False)["input_ids"])
            if self.config.end_of_turn and self.end_token is not None:
                ids.append(int(self.end_token))
            self._targets[sample.id] = ids
        return ids

    def sample_losses(self, samples: Sequence[Any]) -> tuple[Any, dict[str, float]]:
        """Per-sample mean NLL (a 1-D tensor) and the seconds spent preparing / forwarding."""
        import torch

        t0 = time.perf_counter()
        prompts = [self.cache.get(s) for s in samples]
        targets = [self.target_ids(s) for s in samples]
        t1 = time.perf_counter()
        logprobs = self.vlm.completion_logprobs(prompts, targets)
        losses = torch.stack([-lp.mean() for lp in logprobs])
        return losses, {"prepare": t1 - t0, "forward": time.perf_counter() - t1}

    def loss(self, samples: Sequence[Any]) -> StepLoss:
        losses, seconds = self.sample_losses(samples)
        tokens = sum(len(self.target_ids(s)) for s in samples)
        return StepLoss(losses.mean(), len(samples), {"target_tokens": float(tokens)}, seconds)

    def validate(self, samples: Sequence[Any]) -> dict[str, float]:
        """Mean answer loss and offline step success (greedy answers scored by the offline
        evaluator's rules) on ``samples``."""
        import torch

        size = self.config.batch_size
        with torch.no_grad():
            losses = [
                self.sample_losses(samples[i : i + size])[0] for i in range(0, len(samples), size)
            ]
        success = step_success(self.vlm, samples, self.config)
        return {"val_loss": float(torch.cat(losses).mean()), **success}


def step_success(vlm: Any, samples: Sequence[Any], config: Any) -> dict[str, float]:
    """Greedy answers of ``vlm`` on ``samples``, scored as ``eval offline`` scores them."""
    from pixelpilot.eval.matching import MatchRules
    from pixelpilot.eval.metrics import step_metrics
    from pixelpilot.eval.offline import score
    from pixelpilot.vlm.base import SamplingParams

    params = SamplingParams(max_new_tokens=config.eval_max_new_tokens, temperature=0.0)
    answers: dict[str, dict[str, Any]] = {}
    for i in range(0, len(samples), config.batch_size):
        chunk = samples[i : i + config.batch_size]
        gens = vlm.generate([conversation_for(s, vlm.profile, config) for s in chunk], params)
        for s, g in zip(chunk, gens, strict=True):
            answers[s.id] = {"id": s.id, "response": g.text}
    rows = score(list(samples), answers, MatchRules(), vlm.profile.coords)
    metrics = step_metrics(rows)
    return {
        "val_step_success": float(metrics["step_success_rate"]["value"] or 0.0),
        "val_type_accuracy": float(metrics["action_type_accuracy"]["value"] or 0.0),
        "val_format_error": float(metrics["format_error_rate"]["value"] or 0.0),
    }


def train_sft(
    config: SFTConfig, *, stop_after: int | None = None, objective: Any = None
) -> TrainResult:
    """Run supervised fine-tuning (alone, or as one process of ``accelerate launch``);
    ``stop_after`` stops early with a checkpoint, as a preempted job would; ``objective``
    (``(vlm, config, cache) -> Objective``, default ``SFTObjective``) swaps the loss, e.g.
    ``pixelpilot.train.coords``' soft coordinate targets."""
    from pathlib import Path

    from pixelpilot.train.config import with_model_prompt
    from pixelpilot.train.distributed import default_device, init_from_env, shutdown
    from pixelpilot.train.model import load_trainable

    config = with_model_prompt(config)
    where = init_from_env(config.device)
    try:
        split = load_split(config)
        _seed(config.seed)
        vlm = load_trainable(config, default_device(config.device, where))
        resume = _prepare_out(config, where)  # after every input check: nothing written before
        cache = PromptCache(
            vlm,
            lambda s: conversation_for(s, vlm.profile, config),
            config.cache,
            key_extra=prompt_key(config),
            memory_mib=config.cache_memory_mib,
        )
        make_objective = objective or SFTObjective
        trainer = Trainer(config, vlm, make_objective(vlm, config, cache), split, where)
        return trainer.run(Path(resume) if resume else None, stop_after)
    finally:
        shutdown(where)


def _prepare_out(config: Any, where: Any) -> str | None:
    """Rank 0 checks and sets up ``--out``; every rank gets its answer (or its error)."""
    from pathlib import Path

    from pixelpilot.errors import PixelpilotError
    from pixelpilot.train import checkpoint as ckpt
    from pixelpilot.train.distributed import broadcast_object

    answer: tuple[str | None, PixelpilotError | None] = (None, None)
    if where.main:
        try:
            path = ckpt.prepare_out(
                Path(config.out), config.to_dict(), config.resume, config.overwrite
            )
            answer = (str(path) if path else None, None)
        except PixelpilotError as exc:
            answer = (None, exc)
    path, error = broadcast_object(answer, where)
    if error is not None:
        raise error
    return path


def _seed(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)

r"""GRPO on recorded steps: ``pixelpilot train grpo DATA --model MODEL --out DIR``.

Each optimizer step takes a batch of step samples (the trainer core's data order) and, per
sample, its prompt (the conversation the agent would send at that step, ``sample.conversation``):

1. **generate** ``--group`` G answers per prompt with the current policy at ``--temperature``,
   all G from one prefill of the prompt (``pixelpilot.train.prefix.sample_groups``); with
   ``--decoding-aids`` under the aids the checkpoint declares (``HFVLM.aid_processors``), which
   the log-probabilities below then include too;
2. **score** each answer with the rewards of ``--reward`` (built on offline evaluation's
   matching, ``pixelpilot.train.rewards``); an answer is a *success* when offline evaluation
   would count the step correct;
3. optionally repair the batch: ``--replay-successes`` puts one recorded successful answer
   (the step's gold answer in the model's frame, or a success from an earlier rollout of that
   step) into the last slot of a group without any success (ARPO, Lu et al. 2025, "ARPO:
   End-to-End Policy Optimization for GUI Agents with Experience Replay", arXiv:2505.16282);
   ``--dynamic-sampling`` replaces groups whose rewards are all equal by fresh prompts (DAPO)
   for up to ``--max-resample`` rounds;
4. **advantages** per group (``grpo_loss.group_advantages``), the **reference** log-
   probabilities when ``--beta`` > 0 (with LoRA the base model, adapter disabled; otherwise a
   frozen copy of the starting checkpoint), then ``--num-iterations`` optimisation passes over
   the batch, each an optimizer update of the clipped objective (``grpo_loss.grpo_loss``, whose
   docstring states it with formulas), with the G answers' log-probabilities computed in one
   pass over the shared prompt (``prefix.group_logprobs``).

The loss is ``grpo_loss`` with its totals taken over the whole optimizer step (all
micro-batches, all processes), so gradient accumulation and ``accelerate launch`` give the
gradient of the full batch. The sampling policy's log-probabilities (for the ratio when
``--num-iterations`` > 1) are those the sampler computed while drawing the answers.

Online rollouts in the envs (``--online TASKS``) live in ``pixelpilot.train.grpo_online``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pixelpilot.train.grpo_config import GRPOConfig
from pixelpilot.train.trainer import StepLoss, Trainer, TrainResult


@dataclass
class Group:
    """The G answers of one prompt and what the update needs of them."""

    sample: Any
    encoding: dict[str, Any]
    tokens: list[list[int]]
    texts: list[str]
    sampled_logprobs: list[list[float] | None]  # None for a replayed (not sampled) answer
    rewards: list[float] = field(default_factory=list)
    components: list[dict[str, float]] = field(default_factory=list)
    successes: list[bool] = field(default_factory=list)
    advantages: list[float] = field(default_factory=list)
    replayed: bool = False
    aids: list[Any] | None = None  # --decoding-aids: this prompt's processors for its G rows
    # online: every step of the group's episodes as (episode index, prompt, answer)
    steps: list[tuple[int, Any, str]] = field(default_factory=list)

    @property
    def informative(self) -> bool:
        return max(self.rewards) - min(self.rewards) > 1e-9


@dataclass(frozen=True)
class GRPOResult:
    """A finished run: the trainer's result and the reward trend."""

    train: TrainResult
    reward_first: float
    reward_last: float

    def summary(self) -> dict[str, Any]:
        """The ``--json`` object of ``train grpo``."""
        return {
            "steps": self.train.steps,
            "reward_first": self.reward_first,
            "reward_last": self.reward_last,
            "checkpoint": self.train.checkpoint,
            "seconds": self.train.seconds,
        }


class GRPOObjective:
    """Generation, scoring and the clipped loss for batches of recorded steps."""

    name = "grpo"

    def __init__(self, vlm: Any, config: GRPOConfig, cache: Any, rewards: Any, ref: Any) -> None:
        self.vlm = vlm
        self.config = config
        self.cache = cache
        self.rewards = rewards
        self.ref = ref  # a reference model module, "adapter" (LoRA base), or None
        self.settings = config.loss_settings()
        self.pad_id = vlm.tokenizer.pad_token_id or 0
        self.successes: dict[str, list[int]] = {}  # sample id -> a successful answer's tokens
        self.batches: list[dict[str, Any]] = []
        self.cursor = 0
        self.pool: Sequence[Any] = ()  # prompts that --dynamic-sampling draws from
        self.world = 1

    # -- 1. generate ----------------------------------------------------------------------

    def generate(self, samples: Sequence[Any], seeds: list[int]) -> list[Group]:
        from pixelpilot.train.prefix import collate_prompts, media_token_ids, sample_groups

        model = self.vlm.model
        encs = [self.cache.get(s) for s in samples]
        inputs = collate_prompts(encs, self.pad_id, self.vlm.device)
        was_training = model.training
        model.eval()
        aids: list[Any] = [None] * len(samples)
        try:
            if self.config.decoding_aids:
                aids = self._aids(samples, inputs)
            drawn = sample_groups(
                model, inputs, self.config.group,
                max_new_tokens=self.config.max_new_tokens, eos_ids=self.vlm._eos_ids(),
                pad_id=self.pad_id, temperature=self.config.temperature, top_p=self.config.top_p,
                seed=seeds, banned_ids=media_token_ids(self.vlm.model.config),
                decode=lambda ids: self.vlm.tokenizer.decode(ids, skip_special_tokens=True),
                processors=self._rows(aids, [self.config.group] * len(samples)),
            )  # fmt: skip
        finally:
            model.train(was_training)
        return [
            Group(s, e, [list(a.token_ids) for a in g], [a.text for a in g],
                  [list(a.logprobs) for a in g], aids=a)
            for s, e, g, a in zip(samples, encs, drawn, aids, strict=True)
        ]  # fmt: skip

    def _aids(self, samples: Sequence[Any], inputs: Any) -> list[list[Any]]:
        """``--decoding-aids``: per prompt, the processors of the aids the checkpoint declares
        (the pointer guide's cells from the current policy, kept for scoring)."""
        convs = [self.cache.build(s) for s in samples]
        cells = self.vlm.pointer_cells(convs, inputs) or [None] * len(convs)
        return [
            self.vlm.aid_processors([c], self.config.group, 0, [cell])
            for c, cell in zip(convs, cells, strict=True)
        ]

    @staticmethod
    def _rows(aids: Sequence[Any], sizes: Sequence[int]) -> Any:
        """One processor call for a batch of groups (``prefix.RowGroups``), or None."""
        from pixelpilot.train.prefix import RowGroups

        if all(a is None for a in aids):
            return None
        return RowGroups([a or [] for a in aids], sizes)

    # -- 2. score and repair ----------------------------------------------------------------

    def score(self, group: Group) -> None:
        from pixelpilot.train.rewards import judge

        group.rewards, group.components, group.successes = [], [], []
        for text in group.texts:
            result = self.rewards(group.sample, text)
            group.rewards.append(float(result.total))
            group.components.append(dict(result.components))
            match = judge(group.sample, text, self.vlm.profile, self.rewards.rules).match
            group.successes.append(bool(match.step_correct))
        for tokens, ok in zip(group.tokens, group.successes, strict=True):
            if ok:
                self.successes[group.sample.id] = list(tokens)

    def recorded_answer(self, sample: Any) -> list[int] | None:
        """A successful answer for ``sample``: an earlier rollout's, else the recorded one."""
        if sample.id in self.successes:
            return self.successes[sample.id]
        if not sample.gold:
            return None
        ids = list(self.vlm.tokenizer(sample.target_text(self.vlm.profile),
                                      add_special_tokens=False)["input_ids"])  # fmt: skip
        eos = self.vlm._eos_ids()
        return ids + eos[:1]

    def replay(self, group: Group) -> None:
        """ARPO: a group without a success gets one recorded success in its last slot."""
        if any(group.successes):
            return
        tokens = self.recorded_answer(group.sample)
        if tokens is None:
            return
        text = self.vlm.tokenizer.decode(tokens, skip_special_tokens=True)
        group.tokens[-1], group.texts[-1], group.sampled_logprobs[-1] = tokens, text, None
        group.replayed = True
        self.score(group)

    def rollout(self, samples: Sequence[Any], step: int) -> tuple[list[Group], dict[str, float]]:
        """Generate and score the groups of one optimizer step (this process's share)."""
        seconds = {"generate": 0.0, "score": 0.0}
        rng = random.Random(f"{self.config.seed}:grpo:{step}")
        groups: list[Group] = []
        todo, rounds = list(samples), 0
        resampled = 0
        while todo:
            t0 = time.perf_counter()
            # one seed per prompt: a group does not depend on which rank or batch it is in
            seeds = [random.Random(f"{self.config.seed}:{step}:{rounds}:{s.id}").randrange(2**31)
                     for s in todo]  # fmt: skip
            fresh = self.generate(todo, seeds)
            t1 = time.perf_counter()
            for g in fresh:
                self.score(g)
                if self.config.replay_successes:
                    self.replay(g)
            seconds["generate"] += t1 - t0
            seconds["score"] += time.perf_counter() - t1
            keep = [g for g in fresh if g.informative]
            flat = [g for g in fresh if not g.informative]
            if not self.config.dynamic_sampling or rounds >= self.config.max_resample:
                keep, flat = fresh, []
            groups += keep
            todo = [rng.choice(self.pool) for _ in flat] if self.pool else []
            resampled += len(todo)
            rounds += 1
        return groups, {**seconds, "resampled": float(resampled)}

    # -- 3. advantages, reference, the batch of one optimizer step ----------------------------

    def prepare(self, micro: Sequence[Sequence[Any]], step: int, where: Any) -> dict[str, Any]:
        """Roll out one optimizer step's micro-batches; keep what the passes need; return
        the step's figures (rewards, advantages, zero-variance groups, seconds)."""
        import torch

        from pixelpilot.train.distributed import all_sum
        from pixelpilot.train.grpo_loss import group_advantages

        flat = [s for m in micro for s in m]
        groups, seconds = self.rollout(flat, step)
        rewards = torch.tensor([r for g in groups for r in g.rewards])
        adv = group_advantages(rewards, [len(g.rewards) for g in groups], self.config.scale_rewards)
        values = adv.values.tolist()
        for g in groups:
            g.advantages, values = values[: len(g.rewards)], values[len(g.rewards) :]
        tokens = sum(len(t) for g in groups for t in g.tokens)
        answers = sum(len(g.tokens) for g in groups)
        total_answers, total_tokens = all_sum([answers, tokens], where)
        self.world = where.world
        sizes = [len(m) for m in micro]
        self.batches = []
        t0 = time.perf_counter()
        for n in sizes:
            part, groups = groups[:n], groups[n:]
            self.batches.append(self._batch(part, total_answers, total_tokens))
        seconds["reference"] = time.perf_counter() - t0
        figures = global_means(step_figures(self.batches, adv), groups_of(self.batches), where)
        return {"seconds": seconds, "metrics": figures}

    def _batch(self, groups: list[Group], total_answers: float, total_tokens: float) -> dict:
        """The tensors of one micro-batch: prompts, answers, advantages, old/ref log-probs."""
        import torch

        from pixelpilot.train.prefix import collate_prompts, group_logprobs

        inputs = collate_prompts([g.encoding for g in groups], self.pad_id, self.vlm.device)
        answers = [g.tokens for g in groups]
        aids = self._rows([g.aids for g in groups], [len(g.tokens) for g in groups])
        batch: dict[str, Any] = {
            "groups": groups, "inputs": inputs, "answers": answers, "processors": aids,
            "advantages": torch.tensor([a for g in groups for a in g.advantages]),
            "totals": (int(total_answers), float(total_tokens)), "old": None, "ref": None,
        }  # fmt: skip
        width = max(len(t) for g in groups for t in g.tokens)
        if self.config.num_iterations > 1:
            if any(g.replayed for g in groups):
                old = group_logprobs(self.vlm.model, inputs, answers, pad_id=self.pad_id,
                                     temperature=self.config.temperature,
                                     processors=aids).logprobs  # fmt: skip
            else:
                old = torch.zeros(sum(len(a) for a in answers), width)
                rows = [lp for g in groups for lp in g.sampled_logprobs]
                for i, lp in enumerate(rows):
                    old[i, : len(lp)] = torch.tensor(lp)
            batch["old"] = old.to(self.vlm.device)
        if self.settings.beta > 0:
            batch["ref"] = self._reference(inputs, answers, aids)
        return batch

    def _reference(self, inputs: Any, answers: list[list[list[int]]], aids: Any) -> Any:
        """The reference's log-probabilities (with ``--decoding-aids`` under the same aids,
        the pointer guide's cells the policy's)."""
        from pixelpilot.train.prefix import group_logprobs

        kw = {"pad_id": self.pad_id, "temperature": self.config.temperature, "processors": aids}
        if self.ref == "adapter":
            with self.vlm.model.disable_adapter():
                return group_logprobs(self.vlm.model, inputs, answers, **kw).logprobs
        return group_logprobs(self.ref, inputs, answers, **kw).logprobs

    # -- 4. the loss of one micro-batch (the trainer calls this) ------------------------------

    def begin_pass(self) -> None:
        self.cursor = 0

    def loss(self, samples: Sequence[Any]) -> StepLoss:
        from pixelpilot.train.grpo_loss import grpo_loss, masked_mean
        from pixelpilot.train.prefix import group_logprobs

        batch = self.batches[self.cursor]
        self.cursor += 1
        t0 = time.perf_counter()
        scored = group_logprobs(
            self.vlm.model, batch["inputs"], batch["answers"], grad=True, entropy=True,
            temperature=self.config.temperature, pad_id=self.pad_id,
            processors=batch["processors"],
        )  # fmt: skip
        answers, tokens = batch["totals"]
        out = grpo_loss(
            scored.logprobs, batch["old"], batch["advantages"].to(scored.logprobs.device),
            scored.mask, self.settings, ref_logprobs=batch["ref"],
            total_sequences=answers, total_tokens=tokens,
        )  # fmt: skip
        metrics = {
            "kl": out.kl, "clip_fraction": out.clip_fraction, "clip_low": out.clip_low,
            "clip_high": out.clip_high, "ratio_mean": out.ratio_mean,
            "entropy": masked_mean(scored.entropy, scored.mask),
        }  # fmt: skip
        # The trainer back-propagates loss / micro-batches and averages gradients over
        # processes; the weights of grpo_loss already make the parts add up to the step's loss.
        scale = len(self.batches) * self.world
        return StepLoss(out.loss * scale, len(batch["groups"]), metrics,
                        {"forward": time.perf_counter() - t0})  # fmt: skip

    def validate(self, samples: Sequence[Any]) -> dict[str, float]:
        """Greedy answers on the validation steps: offline step success and mean reward."""
        from pixelpilot.train.data import conversation_for
        from pixelpilot.train.sft import step_success
        from pixelpilot.vlm.base import SamplingParams

        figures = step_success(self.vlm, samples, self.config)
        params = SamplingParams(max_new_tokens=self.config.max_new_tokens, temperature=0.0)
        total = 0.0
        for i in range(0, len(samples), self.config.batch_size):
            chunk = samples[i : i + self.config.batch_size]
            convs = [conversation_for(s, self.vlm.profile, self.config) for s in chunk]
            gens = self.vlm.generate(convs, params)
            total += sum(
                float(self.rewards(s, g.text).total) for s, g in zip(chunk, gens, strict=True)
            )
        return {**figures, "val_reward": total / max(1, len(samples))}


def groups_of(batches: Sequence[dict[str, Any]]) -> list[Group]:
    return [g for b in batches for g in b["groups"]]


def global_means(figures: dict[str, float], groups: Sequence[Group], where: Any) -> dict:
    """``reward_mean`` and ``success_rate`` over every process's groups (the other figures
    describe this process's share)."""
    from pixelpilot.train.distributed import all_sum

    rewards = [r for g in groups for r in g.rewards]
    total, hits, n = all_sum(
        [sum(rewards), sum(float(s) for g in groups for s in g.successes), len(rewards)], where
    )
    return {**figures, "reward_mean": total / max(n, 1), "success_rate": hits / max(n, 1)}


def step_figures(batches: Sequence[dict[str, Any]], adv: Any) -> dict[str, float]:
    """Reward mean/std (total and per component), success rate, advantage std, zero-variance
    groups, answer length and repairs of one step's groups."""
    import statistics

    groups = [g for b in batches for g in b["groups"]]
    rewards = [r for g in groups for r in g.rewards]
    out = {
        "reward_mean": statistics.fmean(rewards),
        "reward_std": statistics.pstdev(rewards),
        "success_rate": statistics.fmean(float(s) for g in groups for s in g.successes),
        "advantage_std": float(adv.values.std()) if adv.values.numel() > 1 else 0.0,
        "zero_variance_groups": float(int(adv.zero_variance.sum())),
        "zero_variance_fraction": adv.zero_variance_fraction,
        "answer_length": statistics.fmean(len(t) for g in groups for t in g.tokens),
        "replayed": float(sum(g.replayed for g in groups)),
    }
    names = sorted({k for g in groups for c in g.components for k in c})
    for name in names:
        values = [c.get(name, 0.0) for g in groups for c in g.components]
        out[f"reward_{name}_mean"] = statistics.fmean(values)
        out[f"reward_{name}_std"] = statistics.pstdev(values)
    return out


class GRPOTrainer(Trainer):
    """The trainer core with GRPO's step: roll out once, then ``--num-iterations`` updates."""

    def __init__(self, config: GRPOConfig, vlm: Any, objective: GRPOObjective, split: Any,
                 where: Any) -> None:  # fmt: skip
        import torch

        from pixelpilot.train.trainer import lr_factor

        super().__init__(config, vlm, objective, split, where)
        self.aided = config.decoding_aids  # sampled and scored under the aids
        updates = self.total * config.num_iterations
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_factor(
                s, updates, config.warmup_steps, config.schedule, config.min_lr_ratio
            ),  # fmt: skip
        )

    _passes: list[list[Any]] | None = None
    _saved_successes: list[dict[str, list[int]]] | None = None

    # -- the remembered successes of --replay-successes survive a resume ---------------------

    def save(self) -> None:
        from pixelpilot.train.distributed import gather_objects

        objective: GRPOObjective = self.objective  # type: ignore[assignment]
        self._saved_successes = gather_objects(dict(objective.successes), self.where)
        super().save()

    def _state(self) -> dict[str, Any]:
        """The trainer's position and every rank's remembered successes (sample id ->
        the tokens of a successful answer)."""
        return {**super()._state(), "successes": self._saved_successes or []}

    def restore(self, path: Any) -> None:
        import json
        from pathlib import Path

        super().restore(path)
        saved = json.loads((Path(path) / "state.json").read_text()).get("successes") or []
        objective: GRPOObjective = self.objective  # type: ignore[assignment]
        if self.where.rank < len(saved):  # each rank gets back what it remembered
            objective.successes = {k: list(v) for k, v in saved[self.where.rank].items()}
        else:  # another number of processes: all of them
            objective.successes = {k: list(v) for part in saved for k, v in part.items()}

    def _micro_batches(self, indices: list[int]) -> list[list[Any]]:
        """The micro-batches the objective prepared (dynamic sampling and online rollouts
        change what a step trains on), once prepared."""
        return self._passes if self._passes is not None else super()._micro_batches(indices)

    def train_step(self, indices: list[int]) -> dict[str, Any]:
        objective: GRPOObjective = self.objective  # type: ignore[assignment]
        self._passes = None
        prepared = objective.prepare(self._micro_batches(indices), self.step, self.where)
        self._passes = [[g.sample for g in b["groups"]] for b in objective.batches]
        records = []
        for _ in range(self.config.num_iterations):
            objective.begin_pass()
            records.append(super().train_step(indices))
        record = dict(records[-1])
        record["loss"] = sum(r["loss"] for r in records) / len(records)
        record["skipped"] = any(r["skipped"] for r in records)
        seconds = dict(prepared["seconds"])
        for r in records:
            for k, v in r["seconds"].items():
                seconds[k] = seconds.get(k, 0.0) + v
        record["seconds"] = seconds
        record["resampled"] = seconds.pop("resampled", 0.0)
        return {**record, **prepared["metrics"]}


def reference_model(config: GRPOConfig, vlm: Any) -> Any:
    """What ``--beta`` compares with: None (beta 0), ``"adapter"`` (LoRA: the base with the
    adapter disabled, no second copy), or a frozen copy of the starting checkpoint."""
    if config.beta <= 0:
        return None
    if config.lora_r > 0:
        return "adapter"
    from pixelpilot.vlm import load

    ref = load(config.model, device=vlm.device, dtype="bfloat16" if config.dtype == "bfloat16"
               else "float32").model  # fmt: skip
    ref.requires_grad_(False)
    return ref.eval()


def _reward_trend(history: Sequence[dict[str, Any]]) -> tuple[float, float]:
    values = [r["reward_mean"] for r in history if "reward_mean" in r]
    return (values[0], values[-1]) if values else (float("nan"), float("nan"))


def train_grpo(config: GRPOConfig, *, stop_after: int | None = None) -> GRPOResult:
    """Run GRPO on recorded steps, or on live rollouts with ``--online`` (alone, or as one
    process of ``accelerate launch``); ``stop_after`` stops early with a checkpoint."""
    from pixelpilot.train.config import with_model_prompt

    config = with_model_prompt(config)
    if config.online:
        from pixelpilot.train.grpo_online import train_online

        return train_online(config, stop_after=stop_after)
    from pathlib import Path

    from pixelpilot.train.data import PromptCache, conversation_for, load_split, prompt_key
    from pixelpilot.train.distributed import default_device, init_from_env, shutdown
    from pixelpilot.train.model import load_trainable
    from pixelpilot.train.rewards import build_rewards
    from pixelpilot.train.sft import _prepare_out, _seed

    where = init_from_env(config.device)
    try:
        split = load_split(config)
        resume = _prepare_out(config, where)
        _seed(config.seed)
        vlm = load_trainable(config, default_device(config.device, where))
        rewards = build_rewards(config.reward, vlm.profile, reward_fns=_reward_fns(config))
        cache = PromptCache(
            vlm,
            lambda s: conversation_for(s, vlm.profile, config),
            config.cache,
            key_extra=prompt_key(config),
            memory_mib=config.cache_memory_mib,
        )
        objective = GRPOObjective(vlm, config, cache, rewards, reference_model(config, vlm))
        objective.pool = split.train
        trainer = GRPOTrainer(config, vlm, objective, split, where)
        result = trainer.run(Path(resume) if resume else None, stop_after)
        return GRPOResult(result, *_reward_trend(result.history))
    finally:
        shutdown(where)


def _reward_fns(config: GRPOConfig) -> tuple[str, ...]:
    return tuple(s.strip() for s in (config.reward_fn or "").split(",") if s.strip())


def launch_grpo(config: GRPOConfig, procs: int) -> dict[str, Any]:
    """``train_grpo(config)`` in ``procs`` processes on this machine, each with
    ``config.batch_size`` prompts of every step (their groups sampled and scored there);
    returns the run's summary. The steps equal one process's with ``batch_size * procs``
    prompts (tests/train/test_grpo.py) until float rounding in the all-reduce changes a
    sampled answer; from there a long run is another draw."""
    from pixelpilot.train.distributed import launch_spec

    spec = {"config": config.to_dict()}
    return launch_spec("pixelpilot.train.grpo", spec, procs, f"GRPO in {procs} processes")


def _train_spec(spec: dict[str, Any]) -> dict[str, Any]:
    return train_grpo(GRPOConfig.from_dict(spec["config"])).summary()


def main(argv: list[str]) -> int:
    """One process of ``launch_grpo``: ``python -m pixelpilot.train.grpo SPEC``."""
    from pixelpilot.train.distributed import run_spec

    return run_spec(argv, _train_spec)


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))

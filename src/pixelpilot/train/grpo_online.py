"""Online GRPO: groups of G live episodes per task and seed, run by the agent loop in the envs.

``pixelpilot train grpo --online TASKS --model MODEL --out DIR`` trains on the policy's own
rollouts. Each optimizer step takes ``--batch-size`` tasks per process (the trainer core's data
order over the task list, sharded by rank under ``accelerate launch``); each task of the step's
global batch is a *draw* (its index in that batch), which takes one seed from ``--seeds LO-HI``
and runs G = ``--group`` episodes of that task and seed with the current policy sampling at
``--temperature``. The episodes run in the trainer process or in ``--rollout-workers`` worker
processes of the evaluation pool (``pixelpilot.train.rollouts``); the result is the same.

- The reward of an episode comes from the env: ``--online-reward success`` (1 if the env
  reports success, else 0; the default) or ``env`` (the env's summed raw reward).
- The G episodes of a draw form a group: advantages as in ``grpo_loss``, one per episode,
  shared by every step of that episode (each step's answer is one sequence of the loss, its
  prompt the exact conversation the policy sent, feedback notes included).
- Every rollout is an ordinary trajectory under
  ``DIR/rollouts/step-NNNNNN/TASK/draw-J-seed-S/g-K``: it replays, views and evaluates like any
  recording, and is offline data for later runs; ``group.json`` beside the G episodes records
  their rewards, advantages and answers.
- Seeds: each draw takes its seed from ``--seeds`` with a generator seeded by (``--seed``,
  step, draw, task), and each episode samples with a seed of (``--seed``, step, draw, task,
  seed, K), so a run is reproducible and does not depend on where its episodes run; keep the
  range apart from the seeds evaluation uses (``eval online --seed S --episodes N`` plays
  S .. S+N-1; the default range starts at 100000).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelpilot.errors import ConfigError
from pixelpilot.train.grpo import (
    Group,
    GRPOConfig,
    GRPOObjective,
    GRPOResult,
    GRPOTrainer,
    global_means,
)


@dataclass(frozen=True)
class RolloutStep:
    """One answer of a rollout, or one group, as the loss sees it (``id`` names it in error
    messages; ``folder`` is the group's folder under ``OUT/rollouts``)."""

    id: str
    folder: str = ""


def parse_seeds(spec: str) -> tuple[int, int]:
    """``"LO-HI"`` (inclusive) -> (lo, hi); ``ConfigError`` otherwise."""
    lo, sep, hi = spec.partition("-")
    try:
        low, high = int(lo), int(hi) if sep else int(lo)
    except ValueError:
        raise ConfigError(f"--seeds must look like LO-HI, got {spec!r}", option="seeds") from None
    if low < 0 or high < low:
        raise ConfigError(f"--seeds {spec}: need 0 <= LO <= HI", option="seeds")
    return low, high


def draw_indices(micro: Sequence[Sequence[Any]], where: Any) -> list[int]:
    """Each of this process's tasks' index in the step's global batch (micro-batch by
    micro-batch, ranks in order), so a task draws the same seed on 1 process as on several."""
    from pixelpilot.train.distributed import gather_objects

    sizes = gather_objects([len(m) for m in micro], where)
    out, base = [], 0
    for c, part in enumerate(micro):
        before = base + sum(sizes[r][c] for r in range(where.rank))
        out += [before + i for i in range(len(part))]
        base += sum(s[c] for s in sizes)
    return out


class OnlineObjective(GRPOObjective):
    """GRPO whose groups are live episodes (see the module docstring)."""

    def __init__(self, vlm: Any, config: GRPOConfig, ref: Any) -> None:
        from pixelpilot.train.rollouts import make_rollouts

        super().__init__(vlm, config, cache=None, rewards=None, ref=ref)
        self.seeds = parse_seeds(config.seeds)
        self.root = Path(config.out) / "rollouts"
        self.runner = make_rollouts(vlm, config, self.root)
        self.where: Any = None

    def close(self) -> None:
        self.runner.close()

    def rollout(self, draws: Any, step: int) -> tuple[list[Group], dict[str, float]]:
        """G episodes per (draw index, task), one seed each; one group per draw."""
        from pixelpilot.train.rollouts import plan_jobs

        t0 = time.perf_counter()
        policy = self.runner.publish(step, self.where)
        jobs = plan_jobs(self.config, draws, step, self.root, self.seeds, policy)
        done = self.runner.run(jobs)
        episodes: dict[int, tuple[RolloutStep, list]] = {}
        for job in jobs:
            rollout = done[job.key]
            name = RolloutStep(f"{job.task}/draw-{job.draw}-seed-{job.seed}",
                               str(Path(job.out).parent))  # fmt: skip
            episodes.setdefault(job.draw, (name, []))[1].append(
                (rollout.reward, rollout.success, list(rollout.asked))
            )
        return self._groups(list(episodes.values())), {
            "generate": time.perf_counter() - t0, "score": 0.0,
        }  # fmt: skip

    def _groups(self, episodes: list) -> list[Group]:
        """One ``Group`` per draw: G episode rewards (for the advantages) and every step's
        prompt and answer with its episode's index."""
        groups = []
        for name, runs in episodes:
            g = Group(name, {}, [], [], [])
            g.rewards = [r for r, _, _ in runs]
            g.successes = [s for _, s, _ in runs]
            g.components = [{"env": r} for r, _, _ in runs]
            g.texts = [text for _, _, asked in runs for _, text in asked]
            g.steps = [(k, conv, text) for k, (_, _, asked) in enumerate(runs)
                       for conv, text in asked]  # fmt: skip
            groups.append(g)
        return groups

    def answer_ids(self, text: str) -> list[int]:
        """The answer's tokens as trained on: its text tokenised, then the end token."""
        ids = list(self.vlm.tokenizer(text, add_special_tokens=False)["input_ids"])
        return ids + self.vlm._eos_ids()[:1]

    def prepare(self, micro: Any, step: int, where: Any) -> dict[str, Any]:
        import torch

        from pixelpilot.train.distributed import all_sum
        from pixelpilot.train.grpo_loss import group_advantages

        self.where = where
        tasks = [t for m in micro for t in m]
        draws = list(zip(draw_indices(micro, where), tasks, strict=True))
        groups, seconds = self.rollout(draws, step)
        rewards = torch.tensor([r for g in groups for r in g.rewards])
        adv = group_advantages(rewards, [len(g.rewards) for g in groups], self.config.scale_rewards)
        values = adv.values.tolist()
        answers: list[Group] = []
        for g in groups:
            g.advantages, values = values[: len(g.rewards)], values[len(g.rewards) :]
            write_group(g)
            for i, (k, conv, text) in enumerate(g.steps):
                one = Group(
                    RolloutStep(f"{g.sample.id}/g-{k}/step-{i}"), self.vlm.encode_prompt(conv),
                    [self.answer_ids(text)], [text], [None], [g.rewards[k]], [],
                    [g.successes[k]], [g.advantages[k]],
                )  # fmt: skip
                one.replayed = True  # not drawn by the shared-prefix sampler: score old log-probs
                answers.append(one)
        n_tokens = sum(len(a.tokens[0]) for a in answers)
        total_answers, total_tokens = all_sum([len(answers), n_tokens], where)
        self.world = where.world
        size = self.config.batch_size
        t0 = time.perf_counter()
        self.batches = [self._batch(answers[i : i + size], total_answers, total_tokens)
                        for i in range(0, len(answers), size)]  # fmt: skip
        seconds["reference"] = time.perf_counter() - t0
        figures = global_means(online_figures(groups, answers, adv), groups, where)
        return {"seconds": seconds, "metrics": figures}


def write_group(group: Group) -> None:
    """``group.json`` in the group's folder: what the step trained on (the episodes' rewards,
    successes and advantages, and each episode's answers in order)."""
    import json

    folder = Path(group.sample.folder)
    answers = [[t for k2, _, t in group.steps if k2 == k] for k in range(len(group.rewards))]
    record = {"group": group.sample.id, "rewards": group.rewards, "successes": group.successes,
              "advantages": group.advantages, "answers": answers}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "group.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def online_figures(groups: list[Group], answers: list[Group], adv: Any) -> dict[str, float]:
    """Episode rewards and success, advantage spread, zero-variance groups, lengths."""
    rewards = [r for g in groups for r in g.rewards]
    steps = [len([1 for k2, _, _ in g.steps if k2 == k])
             for g in groups for k in range(len(g.rewards))]  # fmt: skip
    return {
        "reward_mean": statistics.fmean(rewards),
        "reward_std": statistics.pstdev(rewards),
        "reward_env_mean": statistics.fmean(rewards),
        "reward_env_std": statistics.pstdev(rewards),
        "success_rate": statistics.fmean(float(s) for g in groups for s in g.successes),
        "advantage_std": float(adv.values.std()) if adv.values.numel() > 1 else 0.0,
        "zero_variance_groups": float(int(adv.zero_variance.sum())),
        "zero_variance_fraction": adv.zero_variance_fraction,
        "episodes": float(len(rewards)),
        "episode_steps": statistics.fmean(steps),
        "answer_length": statistics.fmean(len(a.tokens[0]) for a in answers),
    }


def train_online(config: GRPOConfig, *, stop_after: int | None = None) -> GRPOResult:
    """GRPO on live rollouts of ``config.online`` (see the module docstring)."""
    from pixelpilot.envs.registry import resolve_tasks
    from pixelpilot.train.data import DataSplit
    from pixelpilot.train.distributed import default_device, init_from_env, shutdown
    from pixelpilot.train.grpo import _reward_trend, reference_model
    from pixelpilot.train.model import load_trainable
    from pixelpilot.train.sft import _prepare_out, _seed

    parse_seeds(config.seeds)
    tasks = resolve_tasks(config.online or "")
    where = init_from_env(config.device)
    objective = None
    try:
        resume = _prepare_out(config, where)
        _seed(config.seed)
        vlm = load_trainable(config, default_device(config.device, where))
        objective = OnlineObjective(vlm, config, reference_model(config, vlm))
        split = DataSplit(tuple(tasks), (), {"tasks": len(tasks)})
        trainer = GRPOTrainer(config, vlm, objective, split, where)
        result = trainer.run(Path(resume) if resume else None, stop_after)
        return GRPOResult(result, *_reward_trend(result.history))
    finally:
        if objective is not None:
            objective.close()
        shutdown(where)

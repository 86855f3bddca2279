"""Online GRPO: groups of G live episodes per task and seed, run by the agent loop in the envs.

``pixelpilot train grpo --online TASKS --model MODEL --out DIR`` trains on the policy's own
rollouts. Each optimizer step takes ``--batch-size`` tasks (the trainer core's data order over
the task list, sharded by rank under ``accelerate launch``) and, for each, draws one seed from
``--seeds LO-HI`` and runs G = ``--group`` episodes of that task and seed with the current
policy sampling at ``--temperature`` (the agent loop, env and recorder of ``pixelpilot run``,
built by ``pixelpilot.agent.factory.AgentFactory``; one Chromium shared by all MiniWoB envs).

- The reward of an episode comes from the env: ``--online-reward success`` (1 if the env
  reports success, else 0; the default) or ``env`` (the env's summed raw reward).
- The G episodes of a task and seed form a group: advantages as in ``grpo_loss``, one per
  episode, shared by every step of that episode (each step's answer is one sequence of the
  loss, its prompt the exact conversation the policy sent, feedback notes included).
- Every rollout is an ordinary trajectory under ``DIR/rollouts/step-NNNNNN/TASK/seed-S/g-K``:
  it replays, views and evaluates like any recording, and is offline data for later runs.
- Seeds: each (step, task) draws its seed from ``--seeds`` with a generator seeded by
  ``--seed``, so a run is reproducible; keep the range apart from the seeds evaluation uses
  (``eval online --seed S --episodes N`` plays S .. S+N-1; the default range starts at 100000).
"""

from __future__ import annotations

import random
import statistics
import time
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
    """One answer of a rollout, as the loss sees it (``id`` names it in error messages)."""

    id: str


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


def rollout_policy(vlm: Any, config: GRPOConfig) -> Any:
    """A ``VLMPolicy`` that samples (no retries: the answer it gives is the one trained on)
    and keeps the exact conversation of each answer in ``asked``."""
    from pixelpilot.agent.policy import VLMPolicy
    from pixelpilot.vlm.base import SamplingParams

    class RolloutPolicy(VLMPolicy):
        def reset(self, instruction: str) -> None:
            super().reset(instruction)
            self.asked: list[tuple[Any, str]] = []

        def act(self, observation: Any) -> Any:
            conv = self.conversation(observation)
            out = super().act(observation)
            self.asked.append((conv, out.text))
            return out

    params = SamplingParams(max_new_tokens=config.max_new_tokens,
                            temperature=config.temperature, top_p=config.top_p)  # fmt: skip
    return RolloutPolicy(vlm, params=params, retries=0)


class OnlineObjective(GRPOObjective):
    """GRPO whose groups are live episodes (see the module docstring)."""

    def __init__(self, vlm: Any, config: GRPOConfig, ref: Any) -> None:
        from pixelpilot.agent.factory import AgentFactory, PolicySpec

        super().__init__(vlm, config, cache=None, rewards=None, ref=ref)
        self.policy = rollout_policy(vlm, config)
        self.factory = AgentFactory(
            PolicySpec("checkpoint", config.model), model=self.policy,
            max_steps=config.episode_steps, ask_user=None, label=Path(config.model).name,
        )  # fmt: skip
        self.seeds = parse_seeds(config.seeds)
        self.root = Path(config.out) / "rollouts"

    def close(self) -> None:
        self.factory.close()

    def episode(self, task: str, seed: int, member: int, step: int) -> tuple[float, bool, list]:
        """Run one rollout; (reward, success, [(conversation, answer), ...])."""
        from dataclasses import replace

        mix = random.Random(f"{self.config.seed}:{step}:{task}:{seed}:{member}")
        self.policy.params = replace(self.policy.params, seed=mix.randrange(2**31))
        out = self.root / f"step-{step + 1:06d}" / task.replace("/", "-") / f"seed-{seed}"
        result = self.factory.agent(task).run(seed=seed, out=out / f"g-{member}")
        reward = float(result.success) if self.config.online_reward == "success" else float(
            result.total_reward
        )  # fmt: skip
        return reward, bool(result.success), list(self.policy.asked)

    def rollout(self, tasks: Any, step: int) -> tuple[list[Group], dict[str, float]]:
        """G episodes per task (one seed each); one group per task, its steps flattened."""
        t0 = time.perf_counter()
        model = self.vlm.model
        model.eval()
        episodes = []
        try:
            for j, task in enumerate(tasks):
                rng = random.Random(f"{self.config.seed}:online:{step}:{j}:{task}")
                seed = rng.randint(*self.seeds)
                runs = [self.episode(task, seed, k, step) for k in range(self.config.group)]
                episodes.append((task, seed, runs))
        finally:
            model.train()
        return self._groups(episodes), {"generate": time.perf_counter() - t0, "score": 0.0}

    def _groups(self, episodes: list) -> list[Group]:
        """One ``Group`` per task and seed: G episode rewards (for the advantages) and every
        step's prompt and answer with its episode's index (``members``)."""
        groups = []
        for task, seed, runs in episodes:
            g = Group(RolloutStep(f"{task}/seed-{seed}"), {}, [], [], [])
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

        tasks = [t for m in micro for t in m]
        groups, seconds = self.rollout(tasks, step)
        rewards = torch.tensor([r for g in groups for r in g.rewards])
        adv = group_advantages(rewards, [len(g.rewards) for g in groups], self.config.scale_rewards)
        values = adv.values.tolist()
        answers: list[Group] = []
        for g in groups:
            g.advantages, values = values[: len(g.rewards)], values[len(g.rewards) :]
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

"""Online GRPO's rollouts: one episode per job, run in the trainer process or by worker processes.

A ``RolloutJob`` names one episode of a step's group: the task, the env seed, the draw (the
task's place in the step's global batch), the member ``k`` of the group, the sampling seed and
the episode folder. ``play`` runs it with a ``RolloutPolicy`` and returns a ``Rollout``: the
env's reward and success, and every (conversation, answer) the policy was asked and gave, the
conversation exactly as sent (feedback notes such as "The previous action failed: ..."
included), so the loss is computed on what the policy answered, not on a prompt rebuilt from
the trajectory.

Two runners of jobs share ``play``:

- ``InProcessRollouts`` (``--rollout-workers 0``): one ``AgentFactory`` in the trainer process,
  driving the trainer's own model; sampling runs under ``torch.random.fork_rng`` so the
  trainer's random state does not depend on where rollouts ran.
- ``WorkerRollouts`` (``--rollout-workers N``): the evaluation worker pool
  (``pixelpilot.eval.workers``, spawned processes or Ray actors) with a ``RolloutRunner`` in
  each worker. Before each step's rollouts the trainer writes the trainable weights (all of
  them, or the LoRA adapter's) to ``OUT/rollouts/policy/step-NNNNNN.pt``; a job names that file
  and a worker reloads its weights when the name changes. Workers keep their model, Chromium
  and env between steps. A rollout that fails (an error in the worker, or a worker that
  crashed or hung, which the pool replaces) is run once more (same sampling seed: the same
  episode), then the step fails with ``EnvError``.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pixelpilot.errors import EnvError

POLICY_DIR = "policy"


@dataclass(frozen=True)
class RolloutJob:
    """One episode of a group: ``draw`` is the task's index in the step's global batch,
    ``member`` the episode's index ``k`` in its group of G."""

    task: str
    seed: int
    draw: int
    member: int
    step: int
    sampling_seed: int
    out: str
    policy: str = ""  # the weights file a worker loads ("" in the trainer process)

    @property
    def key(self) -> str:
        return f"{self.task}#{self.seed}#d{self.draw}#g{self.member}"


@dataclass(frozen=True)
class Rollout:
    """A finished episode: its reward, success, and every (conversation, answer) it sent."""

    key: str
    reward: float
    success: bool
    asked: tuple[tuple[Any, str], ...]
    trajectory: str


def sampling_seed(run_seed: int, step: int, draw: int, task: str, seed: int, member: int) -> int:
    """The seed an episode samples with: a function of where it sits in the run only."""
    return random.Random(f"{run_seed}:{step}:{draw}:{task}:{seed}:{member}").randrange(2**31)


def draw_seed(run_seed: int, step: int, draw: int, task: str, seeds: tuple[int, int]) -> int:
    """The env seed of a step's ``draw``-th task, from the ``--seeds`` range."""
    return random.Random(f"{run_seed}:online:{step}:{draw}:{task}").randint(*seeds)


def group_dir(root: Path, step: int, task: str, draw: int, seed: int) -> Path:
    """``ROOT/step-NNNNNN/TASK/draw-J-seed-S``: one folder per group, so the same task and
    seed drawn twice in one step do not share folders."""
    return root / f"step-{step + 1:06d}" / task.replace("/", "-") / f"draw-{draw}-seed-{seed}"


def plan_jobs(config: Any, draws: Sequence[tuple[int, str]], step: int, root: Path,
              seeds: tuple[int, int], policy: str = "") -> list[RolloutJob]:  # fmt: skip
    """The G jobs of every (draw index, task) of this process's share of a step."""
    jobs = []
    for draw, task in draws:
        seed = draw_seed(config.seed, step, draw, task, seeds)
        folder = group_dir(root, step, task, draw, seed)
        for k in range(config.group):
            mix = sampling_seed(config.seed, step, draw, task, seed, k)
            jobs.append(RolloutJob(task, seed, draw, k, step, mix, str(folder / f"g-{k}"), policy))
    return jobs


def rollout_policy(vlm: Any, config: Any) -> Any:
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


def rollout_factory(policy: Any, config: Any) -> Any:
    """The ``AgentFactory`` rollouts run through (one Chromium for the MiniWoB envs)."""
    from pixelpilot.agent.factory import AgentFactory, PolicySpec

    return AgentFactory(
        PolicySpec("checkpoint", config.model), model=policy, max_steps=config.episode_steps,
        ask_user=None, label=Path(config.model).name,
    )  # fmt: skip


def play(factory: Any, policy: Any, job: RolloutJob, config: Any,
         on_step: Callable[[Any], None] | None = None) -> Rollout:  # fmt: skip
    """Run ``job``'s episode (its folder, left by an interrupted run, is removed first)."""
    policy.params = replace(policy.params, seed=job.sampling_seed)
    out = Path(job.out)
    if out.exists():
        shutil.rmtree(out)
    kwargs = {"on_step": on_step} if on_step is not None else {}
    result = factory.agent(job.task, **kwargs).run(seed=job.seed, out=out)
    reward = (float(result.success) if config.online_reward == "success"
              else float(result.total_reward))  # fmt: skip
    return Rollout(job.key, reward, bool(result.success), tuple(policy.asked), str(out))


class InProcessRollouts:
    """Jobs run one after another in the trainer process, on the trainer's model."""

    def __init__(self, vlm: Any, config: Any) -> None:
        self.vlm = vlm
        self.config = config
        self.policy = rollout_policy(vlm, config)
        self.factory = rollout_factory(self.policy, config)

    def publish(self, step: int, where: Any) -> str:
        return ""  # the policy is the trainer's model itself

    def run(self, jobs: Sequence[RolloutJob]) -> dict[str, Rollout]:
        import torch

        model = self.vlm.model
        was_training = model.training
        model.eval()
        try:
            devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
            with torch.random.fork_rng(devices=devices):
                return {j.key: play(self.factory, self.policy, j, self.config) for j in jobs}
        finally:
            model.train(was_training)

    def close(self) -> None:
        self.factory.close()


@dataclass(frozen=True)
class RolloutConfig:
    """What a rollout worker needs: the run's config, the device, the pool's timeouts."""

    grpo: Any
    device: str = "cpu"
    backend: str = "local"
    step_timeout: float = 300.0  # seconds without a finished step before the env counts as hung
    episode_timeout: float = 1800.0


class RolloutRunner:
    """A worker's runner (the pool's ``runner``): the trainable model loaded once, its weights
    reloaded when a job names another weights file, and one ``AgentFactory``."""

    def __init__(self, config: RolloutConfig, out: Path) -> None:
        self.config = config
        self.vlm: Any = None
        self.policy: Any = None
        self.factory: Any = None
        self.loaded = ""

    def _load(self, weights: str) -> None:
        import torch

        from pixelpilot.train.model import load_trainable

        if self.vlm is None:
            self.vlm = load_trainable(self.config.grpo, self.config.device)
            self.vlm.model.eval()
            self.policy = rollout_policy(self.vlm, self.config.grpo)
            self.factory = rollout_factory(self.policy, self.config.grpo)
        if weights and weights != self.loaded:
            state = torch.load(weights, weights_only=True, map_location=self.config.device)
            params = dict(self.vlm.model.named_parameters())
            with torch.no_grad():
                for name, value in state.items():
                    params[name].copy_(value)
            self.loaded = weights

    def pids(self) -> list[int]:
        return self.factory.pids() if self.factory is not None else []

    def run(self, job: RolloutJob, emit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """One rollout as a result row (``rollout`` holds the ``Rollout``); a failure is an
        error row the trainer runs again."""
        start = time.perf_counter()
        try:
            self._load(job.policy)
            self.factory.env_for(job.task)
            emit({"kind": "start", "pids": self.pids()})
            beat = lambda step: emit({"kind": "step", "index": step.index})  # noqa: E731
            done = play(self.factory, self.policy, job, self.config.grpo, on_step=beat)
        except Exception as exc:  # noqa: BLE001 - the trainer sees it and runs the job again
            if self.factory is not None:
                self.factory.drop_env()
            return _error_row(job, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
        if self.factory.browser_died:
            self.factory.drop_env()
            return _error_row(job, "browser crashed during the episode", 0.0)
        return {**_error_row(job, None, time.perf_counter() - start), "rollout": done}

    def close(self) -> None:
        if self.factory is not None:
            self.factory.close()


def _error_row(job: RolloutJob, error: str | None, seconds: float) -> dict[str, Any]:
    return {"key": job.key, "task": job.task, "seed": job.seed, "error": error,
            "seconds": seconds}  # fmt: skip


class WorkerRollouts:
    """Jobs run by ``workers`` processes of the evaluation pool (or Ray actors)."""

    def __init__(self, vlm: Any, config: Any, root: Path, workers: int, backend: str) -> None:
        from pixelpilot.eval.workers import LocalPool, RayPool

        self.model = vlm.model
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        pool_config = RolloutConfig(config, device=str(vlm.device), backend=backend)
        cls = RayPool if backend == "ray" else LocalPool
        self.pool = cls(pool_config, root, workers, runner=RolloutRunner)

    def publish(self, step: int, where: Any) -> str:
        """Write the weights of this step's policy (rank 0; the others wait) and return the
        file's path; older files are removed."""
        import torch

        from pixelpilot.train.checkpoint import trainable_state
        from pixelpilot.train.distributed import barrier, broadcast_object

        folder = self.root / POLICY_DIR
        path = folder / f"step-{step:06d}.pt"
        if where.main:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{path.name}.tmp"
            torch.save(trainable_state(self.model), tmp)
            tmp.replace(path)
            for old in folder.glob("step-*.pt"):
                if old != path:
                    old.unlink(missing_ok=True)
        barrier(where)
        return str(broadcast_object(path, where))

    def run(self, jobs: Sequence[RolloutJob]) -> dict[str, Rollout]:
        done: dict[str, Rollout] = {}
        errors: dict[str, str] = {}

        def record(row: dict[str, Any]) -> None:
            if row.get("rollout") is not None:
                done[row["key"]] = row["rollout"]
            elif row.get("key"):
                errors[row["key"]] = str(row.get("error"))
            else:  # the pool's own error row (a crash, a timeout): no key, task and seed only
                errors[f"{row.get('task')}#{row.get('seed')}"] = str(row.get("error"))

        for _attempt in range(2):
            todo = [j for j in jobs if j.key not in done]
            if not todo:
                break
            self.pool.run(todo, record, None)
        missing = [j for j in jobs if j.key not in done]
        if missing:
            why = errors.get(missing[0].key) or errors.get(f"{missing[0].task}#{missing[0].seed}")
            raise EnvError(f"rollout {missing[0].key} failed twice: {why}")
        return done

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.pool.close()


def make_rollouts(vlm: Any, config: Any, root: Path) -> Any:
    """The rollout runner ``config.rollout_workers`` asks for."""
    if config.rollout_workers <= 0:
        return InProcessRollouts(vlm, config)
    return WorkerRollouts(vlm, config, root, config.rollout_workers, config.rollout_backend)

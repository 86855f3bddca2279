"""What ``pixelpilot run`` and ``pixelpilot record`` do, as functions.

Envs, models and agents come from ``pixelpilot.agent.factory``; ``record_tasks`` runs
episodes of many tasks and summarises them in the JSON shape shared with ``eval online``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelpilot.agent.factory import AgentFactory, EnvSpec, PolicySpec, make_env
from pixelpilot.agent.loop import EpisodeResult
from pixelpilot.errors import EnvError, NoModelError

__all__ = [
    "EnvSpec",
    "NoModelError",
    "default_out",
    "env_spec",
    "make_env",
    "open_env",
    "record_tasks",
    "summarize",
]


ERROR_STREAK = 5  # episodes in a row whose policy raised EnvError: the env is broken, stop


def env_spec(env: str, url: str | None = None, instruction: str | None = None) -> EnvSpec:
    """``EnvSpec.from_cli`` (kept for callers of the old name)."""
    return EnvSpec.from_cli(env, url, instruction)


def open_env(spec: EnvSpec) -> Any:
    """``spec.make()`` (kept for callers of the old name)."""
    return spec.make()


def default_out(root: str | Path = "runs", label: str = "run") -> Path:
    """A new folder under ``root``: ``runs/20261124-133512-miniwob-click-button``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    base = Path(root) / f"{stamp}-{label.replace('/', '-')}"
    path, k = base, 1
    while path.exists():
        k += 1
        path = base.with_name(f"{base.name}-{k}")
    return path


def summarize(results: dict[str, list[EpisodeResult]]) -> dict[str, Any]:
    """``{"tasks": {TASK: {episodes, success_rate, mean_reward, mean_steps}}, "mean_success"}``."""
    tasks: dict[str, Any] = {}
    for task, runs in results.items():
        n = len(runs)
        tasks[task] = {
            "episodes": n,
            "success_rate": sum(r.success for r in runs) / n if n else 0.0,
            "mean_reward": sum(r.total_reward for r in runs) / n if n else 0.0,
            "mean_steps": sum(r.steps for r in runs) / n if n else 0.0,
        }
    rates = [t["success_rate"] for t in tasks.values()]
    return {"tasks": tasks, "mean_success": sum(rates) / len(rates) if rates else 0.0}


def record_tasks(
    tasks: list[str],
    *,
    episodes: int,
    seed: int,
    out: str | Path,
    model: str | None = "expert",
    model_name: str | None = None,
    max_steps: int = 15,
    on_episode: Callable[[str, int, EpisodeResult], None] | None = None,
    miss_first: bool = False,
) -> dict[str, Any]:
    """Run ``episodes`` episodes of every task (seeds ``seed, seed+1, ...``), each recorded in
    ``OUT/<task-name>/seed-<k>/``; return the summary of ``summarize`` with the ``model`` that
    ran. One env per task, one Chromium for all MiniWoB tasks, the model loaded once.
    ``miss_first``: every episode starts with a seeded random click, recorded as ``perturbed``
    (``pixelpilot.agent.baselines.MissFirst``), and the model goes on from there.

    An episode whose policy raises ``EnvError`` (an expert meeting a page it cannot read, such
    as a button hidden under another) is kept unfinished, counts as failed and as one of the
    task's ``errors``; ``ERROR_STREAK`` such episodes in a row raise the last error."""
    spec = PolicySpec.parse(model, model_name=model_name)
    spec.check()
    spec = spec.resolved()  # the bundled model's folder, named as such in every header
    results: dict[str, list[EpisodeResult]] = {}
    errors: dict[str, int] = {}
    with AgentFactory(spec, max_steps=max_steps, ask_user=None, label=spec.name) as factory:
        factory.load()  # a model that cannot load fails before any env starts
        for task in tasks:
            runs = results.setdefault(task, [])
            agent = factory.agent(task)
            if miss_first:
                from pixelpilot.agent.baselines import MissFirst

                agent.policy = MissFirst(agent.policy, seed=seed)
            streak = errors[task] = 0
            for k in range(seed, seed + episodes):
                folder = Path(out) / task.replace("/", "-") / f"seed-{k}"
                try:
                    result = agent.run(seed=k, out=folder)
                    streak = 0
                except EnvError as exc:
                    streak, errors[task] = streak + 1, errors[task] + 1
                    if streak >= ERROR_STREAK:
                        raise
                    result = EpisodeResult(
                        False, 0.0, 0, "error", folder, task, k, {"error": str(exc)}
                    )
                runs.append(result)
                if on_episode is not None:
                    on_episode(task, k, result)
            factory.drop_env()
    summary = summarize(results)
    for task, n in errors.items():
        summary["tasks"][task]["errors"] = n
    return {"model": spec.label, **summary}

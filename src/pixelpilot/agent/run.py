"""What ``pixelpilot run`` and ``pixelpilot record`` do, as functions.

``open_env`` builds an env from ``--env``/``--url``; ``load_policy`` turns ``--model`` into a
model or the task's expert; ``record_tasks`` runs episodes of many tasks and summarises them in
the JSON shape shared with ``eval online``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelpilot.agent.loop import Agent, EpisodeResult
from pixelpilot.errors import PixelpilotError


class NoModelError(PixelpilotError):
    """No ``--model`` was given and no bundled default model is installed."""


@dataclass(frozen=True)
class EnvSpec:
    task: str  # the task id the env was made from (``browser``, ``miniwob/click-button``)
    kwargs: dict[str, Any]


def env_spec(env: str, url: str | None = None, instruction: str | None = None) -> EnvSpec:
    """The task id and ``make`` kwargs of ``--env ENV [--url URL]`` (a bare ``desktop`` is an
    empty desktop whose instruction is the TASK string)."""
    kwargs: dict[str, Any] = {}
    if url:
        kwargs["url"] = url
    task = env.strip()
    if task == "desktop":
        kwargs["instruction"] = instruction or ""
    return EnvSpec(task, kwargs)


def make_env(task: str, **kwargs: Any) -> Any:
    """``pixelpilot.envs.make``, plus ``desktop``: an empty ``DesktopEnv`` (no task, no
    checker) for free-form instructions."""
    if task == "desktop":
        from pixelpilot.envs.desktop import DesktopEnv

        return DesktopEnv(**kwargs)
    from pixelpilot.envs import make

    return make(task, **kwargs)


def open_env(spec: EnvSpec) -> Any:
    return make_env(spec.task, **spec.kwargs)


def load_model(spec: str | None, model_name: str | None = None) -> Any:
    """A VLM for ``--model`` (checkpoint dir or OpenAI-compatible URL); ``NoModelError`` when
    omitted and no bundled default exists."""
    import pixelpilot.vlm as vlm_pkg

    if spec is None:
        default = getattr(vlm_pkg, "default_model", None)
        if default is None:
            raise NoModelError(
                "no bundled default model is installed yet; pass --model expert (the task's "
                "scripted expert), --model CHECKPOINT_DIR, or --model http://host:port/v1 "
                "--model-name NAME"
            )
        return default()
    load = getattr(vlm_pkg, "load", None)
    if load is None:
        raise NoModelError("model loading is not available in this build (pixelpilot.vlm.load)")
    if model_name is not None and spec.startswith(("http://", "https://")):
        return load(spec, model_name=model_name)
    return load(spec)


def make_agent(
    env: Any,
    model: str | None,
    spec: EnvSpec,
    *,
    model_name: str | None = None,
    vlm: Any = None,
    **kw: Any,
) -> Agent:
    """An ``Agent`` for ``--model``: ``expert`` runs ``env.unwrapped.expert()``; otherwise
    ``vlm`` (when already loaded) or the model ``load_model`` finds."""
    if model == "expert":
        expert = getattr(env.unwrapped, "expert", None)
        if expert is None:
            raise NoModelError(f"{spec.task} has no scripted expert")
        return Agent(
            policy=expert(), env=env, task=spec.task, model="expert", env_kwargs=spec.kwargs, **kw
        )
    vlm = vlm if vlm is not None else load_model(model, model_name)
    return Agent(vlm, env, task=spec.task, env_kwargs=spec.kwargs, **kw)


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
) -> dict[str, Any]:
    """Run ``episodes`` episodes of every task (seeds ``seed, seed+1, ...``), each recorded in
    ``OUT/<task-name>/seed-<k>/``; return the summary of ``summarize``. One env per task."""
    results: dict[str, list[EpisodeResult]] = {}
    host = None
    if any(t.startswith("miniwob/") for t in tasks):  # one browser for all MiniWoB tasks
        from pixelpilot.envs.chromium import ChromiumHost

        host = ChromiumHost()
    try:
        for task in tasks:
            kwargs = {"browser": host} if host is not None and task.startswith("miniwob/") else {}
            runs = results.setdefault(task, [])
            _record_task(task, kwargs, runs, episodes, seed, out, model, model_name, max_steps,
                         on_episode)  # fmt: skip
    finally:
        if host is not None:
            host.close()
    return summarize(results)


def _record_task(
    task: str,
    env_kwargs: dict[str, Any],
    runs: list[EpisodeResult],
    episodes: int,
    seed: int,
    out: str | Path,
    model: str | None,
    model_name: str | None,
    max_steps: int,
    on_episode: Callable[[str, int, EpisodeResult], None] | None,
) -> None:
    env = open_env(EnvSpec(task, env_kwargs))
    try:
        agent = make_agent(
            env, model, EnvSpec(task, {}), model_name=model_name, max_steps=max_steps,
            ask_user=None,
        )  # fmt: skip
        for k in range(seed, seed + episodes):
            result = agent.run(seed=k, out=Path(out) / task.replace("/", "-") / f"seed-{k}")
            runs.append(result)
            if on_episode is not None:
                on_episode(task, k, result)
    finally:
        env.close()

"""Online evaluation: run the agent on every task x seed of a suite, K envs in parallel.

``evaluate_online(config)`` expands ``TASKS`` into jobs ``(task, seed)`` with seeds
``seed, seed+1, ...`` (fixed, listed in the report, so two models meet the same episodes) and
hands them to a worker pool (``pixelpilot.eval.workers``: local spawned processes by default,
Ray actors with ``backend="ray"``). Every episode is recorded under ``OUT/episodes/``; every
result (an error too) is appended to ``OUT/results.jsonl`` as it arrives, so a run that is
interrupted continues where it stopped. An env that crashes or hangs past the per-step or
per-episode timeout is restarted and its episode recorded as an error.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pixelpilot.errors import PixelpilotError
from pixelpilot.eval.metrics import proportion

Progress = Callable[[int, int], None]
EventHook = Callable[[dict[str, Any]], None]


@dataclass
class OnlineConfig:
    """One online evaluation; the CLI's flags map one to one onto these fields."""

    tasks: str  # a task id, comma-separated ids, or a suite name
    model: str = "expert"  # checkpoint dir / URL / "expert" (the task's scripted expert)
    model_name: str | None = None  # the model's name at an OpenAI-compatible URL
    episodes: int = 5  # episodes per task
    seed: int = 0  # first seed; task episodes use seed, seed+1, ...
    workers: int = 1  # envs run in parallel
    backend: str = "local"  # local (spawned processes) | ray
    max_steps: int = 15  # step limit of an episode
    step_timeout: float = 60.0  # seconds without progress before the env counts as hung
    episode_timeout: float = 300.0  # seconds an episode may take in all
    out: str | None = None  # output directory (a temporary one when not given)
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to envs.make
    policy_factory: str | None = None  # "module:function" -> VLM or Policy (overrides model)


@dataclass(frozen=True)
class Job:
    task: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.task}#{self.seed}"

    def episode_dir(self, out: Path) -> Path:
        return out / "episodes" / self.task.replace("/", "__") / f"seed-{self.seed:05d}"


def plan_jobs(config: OnlineConfig) -> list[Job]:
    """The run's jobs, task-major so a worker keeps one task's env across its episodes."""
    from pixelpilot.envs import resolve_tasks

    tasks = resolve_tasks(config.tasks)
    if not tasks:
        raise PixelpilotError(f"no tasks in {config.tasks!r}")
    return [Job(t, config.seed + i) for t in tasks for i in range(config.episodes)]


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    """``job key -> result`` of ``results.jsonl``; a line cut short by a crash is ignored."""
    out: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "task" in row and "seed" in row:
            out[f"{row['task']}#{row['seed']}"] = row
    return out


def error_result(job: Job, error: str, seconds: float = 0.0) -> dict[str, Any]:
    return {
        "task": job.task,
        "seed": job.seed,
        "success": False,
        "reward": 0.0,
        "steps": 0,
        "reason": "error",
        "error": error,
        "seconds": seconds,
        "actions": {},
    }


def summarize(config: OnlineConfig, jobs: list[Job], results: dict[str, dict[str, Any]]) -> dict:
    """The report: per task episodes / success / reward / steps, and the run's totals."""
    rows = [results[j.key] for j in jobs if j.key in results]
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_task[r["task"]].append(r)
    tasks = {}
    for task in dict.fromkeys(j.task for j in jobs):
        group = by_task.get(task, [])
        n = len(group)
        wins = sum(bool(r["success"]) for r in group)
        tasks[task] = {
            "episodes": n,
            "success_rate": wins / n if n else 0.0,
            "mean_reward": sum(r["reward"] for r in group) / n if n else 0.0,
            "mean_steps": sum(r["steps"] for r in group) / n if n else 0.0,
            "errors": sum(r.get("error") is not None for r in group),
            "success": proportion(wins, n),
        }
    actions: Counter[str] = Counter()
    for r in rows:
        actions.update(r.get("actions") or {})
    wins = sum(bool(r["success"]) for r in rows)
    return {
        "kind": "online",
        "model": config.model,
        "tasks": tasks,
        "mean_success": sum(t["success_rate"] for t in tasks.values()) / max(1, len(tasks)),
        "seeds": sorted({j.seed for j in jobs}),
        "episodes": len(rows),
        "errors": sum(r.get("error") is not None for r in rows),
        "success": proportion(wins, len(rows)),
        "episode_steps": [r["steps"] for r in rows],
        "action_counts": dict(sorted(actions.items())),
        "results": rows,
        "config": {k: v for k, v in asdict(config).items() if k != "env_kwargs"},
    }


class ResultLog:
    """``results.jsonl``: one line per finished episode, flushed and fsynced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if path.exists() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            with open(path, "ab") as f:  # a line cut short by a crash: end it
                f.write(b"\n")
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def append(self, row: dict[str, Any]) -> None:
        self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def evaluate_online(
    config: OnlineConfig, progress: Progress | None = None, on_event: EventHook | None = None
) -> dict[str, Any]:
    """Run (or continue) one online evaluation and return its report, also written to OUT.

    ``on_event`` sees the workers' events in the main process: ``{"kind": "start" | "step",
    "worker", "job", "pids"}`` (``pids``: the worker's browser processes, when it has one)."""
    from pixelpilot.eval.report import write_reports
    from pixelpilot.eval.workers import make_pool

    if config.backend not in ("local", "ray"):
        raise PixelpilotError(f"unknown backend {config.backend!r} (local or ray)")
    jobs = plan_jobs(config)
    out = Path(config.out) if config.out else Path(tempfile.mkdtemp(prefix="pixelpilot-eval-"))
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2, default=str))
    results = read_results(out / "results.jsonl")
    todo = [j for j in jobs if j.key not in results]
    for job in todo:  # an episode cut short by an interrupted run starts again
        if job.episode_dir(out).exists():
            shutil.rmtree(job.episode_dir(out))
    log = ResultLog(out / "results.jsonl")
    started = time.perf_counter()
    done = 0

    def record(row: dict[str, Any]) -> None:
        nonlocal done
        results[f"{row['task']}#{row['seed']}"] = row
        log.append(row)
        done += 1
        if progress:
            progress(done, len(todo))

    try:
        if todo:
            pool = make_pool(config, out, min(config.workers, len(todo)))
            try:
                pool.run(todo, record, on_event)
            finally:
                pool.close()
    finally:
        log.close()
    elapsed = time.perf_counter() - started
    report = summarize(config, jobs, results)
    report["out"] = str(out)
    report["resumed"] = len(jobs) - len(todo)
    report["run_seconds"] = elapsed
    report["episodes_per_minute"] = done / elapsed * 60 if done and elapsed > 0 else 0.0
    write_reports(report, out)
    return report

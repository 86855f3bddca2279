"""Online evaluation: run the agent on every task x seed of a suite, K envs in parallel.

``evaluate_online(config)`` expands ``TASKS`` into jobs ``(task, seed)`` with seeds
``seed, seed+1, ...`` (fixed, listed in the report, so two models meet the same episodes) and
hands them to a worker pool (``pixelpilot.eval.workers``: local spawned processes by default,
Ray actors with ``backend="ray"``). Every episode is recorded under ``OUT/episodes/``; every
result (an error too) is appended to ``OUT/results.jsonl`` as it arrives, so a run that is
interrupted continues where it stopped. An env that crashes or hangs past the per-step or
per-episode timeout is restarted and its episode recorded as an error.

The configuration and the model are checked before any episode starts. A rerun into the same
``OUT`` continues it only with the settings that decide an episode's outcome unchanged
(``RESUME_KEYS``); it runs again every episode that ended in an infrastructure error, and takes
over an episode whose trajectory was finished but whose result row was never written.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pixelpilot.errors import ConfigError, FileFormatError
from pixelpilot.eval.metrics import proportion
from pixelpilot.jsonl import RecordLog, read_records

Progress = Callable[[int, int], None]
EventHook = Callable[[dict[str, Any]], None]


@dataclass
class OnlineConfig:
    """One online evaluation; the CLI's flags map one to one onto these fields."""

    tasks: str  # a task id, comma-separated ids, or a suite name
    # checkpoint dir / URL / "expert" (the task's scripted expert) / None or "default" (the
    # bundled model)
    model: str | None = None
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

    def validate(self, *, check_model: bool = True) -> None:
        """``ConfigError`` for an option no run can use; with ``check_model``, also the
        model's own check (``PolicySpec.check``: a checkpoint folder, a reachable server)."""
        for option, value, low in (
            ("--episodes", self.episodes, 1),
            ("--workers", self.workers, 1),
            ("--max-steps", self.max_steps, 1),
            ("--seed", self.seed, 0),
        ):
            if not isinstance(value, int) or value < low:
                raise ConfigError(
                    f"{option} must be an integer >= {low}, got {value!r}", option=option
                )
        for option, value in (
            ("--step-timeout", self.step_timeout),
            ("--episode-timeout", self.episode_timeout),
        ):
            if not isinstance(value, int | float) or not 0 < value < float("inf"):
                raise ConfigError(
                    f"{option} must be a positive number of seconds, got {value!r}", option=option
                )
        if self.backend not in ("local", "ray"):
            raise ConfigError(
                f"--backend must be local or ray, got {self.backend!r}", option="--backend"
            )
        spec = self.policy_spec()
        if check_model:
            spec.check()

    def policy_spec(self) -> Any:
        """The ``PolicySpec`` of ``model`` / ``model_name`` / ``policy_factory``."""
        from pixelpilot.agent.factory import PolicySpec

        return PolicySpec.parse(self.model, model_name=self.model_name, factory=self.policy_factory)


# The settings that decide how an episode turns out: a run resumes only when they match.
RESUME_KEYS = ("model", "model_name", "policy_factory", "max_steps", "env_kwargs")


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
        raise ConfigError(f"no tasks in {config.tasks!r}", option="TASKS")
    return [Job(t, config.seed + i) for t in tasks for i in range(config.episodes)]


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    """``job key -> result`` of ``results.jsonl`` (a later row of a job replaces an earlier
    one); a line cut short by a crash is skipped, any other bad line is an error."""
    out: dict[str, dict[str, Any]] = {}
    for number, row in read_records(path):
        if not isinstance(row.get("task"), str) or not isinstance(row.get("seed"), int):
            raise FileFormatError(path, number, "a result row needs 'task' and an integer 'seed'")
        out[f"{row['task']}#{row['seed']}"] = row
    return out


def finished_results(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The results that count as done on resume: an infrastructure error (a crash, a
    timeout, a model that could not load) is not a finished episode and runs again."""
    return {k: r for k, r in results.items() if r.get("error") is None}


def check_resume(config: OnlineConfig, out: Path) -> None:
    """``ConfigError`` when ``out`` holds a run made with other ``RESUME_KEYS`` settings."""
    path = out / "config.json"
    if not path.is_file():
        return
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FileFormatError(
            path, None, f"cannot read the earlier run's settings: {exc}"
        ) from None
    if not isinstance(before, dict):
        raise FileFormatError(path, None, "the earlier run's settings are not a JSON object")
    now = json.loads(json.dumps(asdict(config), default=str))
    defaults = asdict(OnlineConfig(tasks=""))
    for key in RESUME_KEYS:
        was = before.get(key, defaults[key])
        if was != now[key]:
            flag = "--" + key.replace("_", "-")
            raise ConfigError(
                f"{out} holds a run made with {flag} {was!r}, not {now[key]!r}; resume it with "
                f"the same settings or pass another --out",
                option=flag,
            )


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
        # the factory's module:function when one ran; the bundled model as "default (...)"
        "model": config.policy_spec().resolved().label,
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


def recover_result(job: Job, out: Path) -> dict[str, Any] | None:
    """The result row of a job whose trajectory has its end line (the run stopped before
    writing the row), or ``None`` when the episode has to run (again)."""
    from pixelpilot.agent.trajectory import read_trajectory
    from pixelpilot.errors import TrajectoryFormatError

    directory = job.episode_dir(out)
    if not (directory / "trajectory.jsonl").is_file():
        return None
    try:
        episode = read_trajectory(directory)
    except TrajectoryFormatError:
        return None
    if not episode.finished or episode.task != job.task or episode.seed != job.seed:
        return None
    counts: Counter[str] = Counter()
    for step in episode.steps:
        counts.update(str(a.get("type", "?")) for a in step.actions)
    return {
        "task": job.task,
        "seed": job.seed,
        "success": episode.success,
        "reward": episode.total_reward,
        "steps": len(episode.steps),
        "reason": str((episode.end or {}).get("reason", "")),
        "error": None,
        "seconds": sum(float(s.timing.get("policy", 0.0)) + float(s.timing.get("env", 0.0))
                       for s in episode.steps),
        "actions": dict(counts),
        "trajectory": str(directory),
        "recovered": True,
    }  # fmt: skip


def _continue(jobs: list[Job], out: Path, log: RecordLog) -> tuple[dict, list[Job]]:
    """The results in ``out`` so far (recovered trajectories appended to ``log``) and the
    jobs still to run (their unfinished episode folders removed)."""
    results = read_results(out / "results.jsonl")
    done = finished_results(results)
    todo = []
    for job in jobs:
        if job.key in done:
            continue
        row = recover_result(job, out)
        if row is not None:
            log.append(row)
            results[job.key] = row
            continue
        todo.append(job)
        if job.episode_dir(out).exists():  # cut short by an interrupted run: start again
            shutil.rmtree(job.episode_dir(out))
    return results, todo


def _for_workers(config: OnlineConfig) -> OnlineConfig:
    """The config the workers get: the bundled model resolved here to its folder, once, so
    every worker loads the same checkpoint whatever their own installation would resolve."""
    spec = config.policy_spec()
    if spec.kind != "default":
        return config
    from dataclasses import replace

    return replace(config, model=spec.resolved().source)


def evaluate_online(
    config: OnlineConfig, progress: Progress | None = None, on_event: EventHook | None = None
) -> dict[str, Any]:
    """Run (or continue) one online evaluation and return its report, also written to OUT.

    ``on_event`` sees the workers' events in the main process: ``{"kind": "start" | "step",
    "worker", "job", "pids"}`` (``pids``: the worker's browser processes, when it has one)."""
    from pixelpilot.eval.report import write_reports
    from pixelpilot.eval.workers import make_pool

    config.validate()
    jobs = plan_jobs(config)
    out = Path(config.out) if config.out else Path(tempfile.mkdtemp(prefix="pixelpilot-eval-"))
    out.mkdir(parents=True, exist_ok=True)
    check_resume(config, out)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=2, default=str))
    log = RecordLog(out / "results.jsonl")
    try:
        results, todo = _continue(jobs, out, log)
    except BaseException:
        log.close()
        raise
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
            pool = make_pool(_for_workers(config), out, min(config.workers, len(todo)))
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

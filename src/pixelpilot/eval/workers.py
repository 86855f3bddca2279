"""Worker pools for online evaluation: local spawned processes (default) or Ray actors.

Each worker holds a runner, by default an ``EpisodeRunner``: an ``AgentFactory``
(``pixelpilot.agent.factory``) with one Chromium shared by its MiniWoB envs, the current task's
env, and the model (loaded once). Any class with the same shape (``runner(config, out)``,
``run(job, emit) -> dict``, ``pids()``, ``close()``; importable, since it crosses a process)
can take its place: online GRPO's rollout workers do (``pixelpilot.train.rollouts``). A pool
hands out jobs (anything with ``task``, ``seed`` and ``key``), watches every running episode,
and when an env crashes, hangs past the per-step timeout (no step finished since the env was
ready) or passes the per-episode timeout, kills the worker with its browser, records the
episode as an error and starts a fresh worker. Both pools enforce both timeouts: local workers
report each step over a queue; Ray actors write a heartbeat file under ``OUT/.workers/`` (so on
a multi-machine Ray cluster, ``OUT`` must be a shared folder for the step timeout and the
browser kill to work; the episode timeout needs nothing). Local workers use the ``spawn`` start
method: Playwright must not be inherited through ``fork``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelpilot.eval.online import EventHook, Job, OnlineConfig, error_result

Emit = Callable[[dict[str, Any]], None]
Record = Callable[[dict[str, Any]], None]
Runner = Callable[[Any, Path], Any]  # (config, out) -> an object shaped like EpisodeRunner


class EpisodeRunner:
    """Runs episodes in one worker: an ``AgentFactory`` keeps its browser, env and model
    between jobs."""

    def __init__(self, config: OnlineConfig, out: Path) -> None:
        from pixelpilot.agent.factory import AgentFactory

        self.config = config
        self.out = out
        self.factory = AgentFactory(
            config.policy_spec(),
            env_kwargs=config.env_kwargs,
            max_steps=config.max_steps,
            label=config.model,
            ask_user=None,
        )

    def pids(self) -> list[int]:
        """This worker's browser processes."""
        return self.factory.pids()

    def run(self, job: Job, emit: Emit) -> dict[str, Any]:
        """One episode; any failure becomes an error result and the env is rebuilt next time."""
        start = time.perf_counter()
        counts: Counter = Counter()

        def on_step(step: Any) -> None:
            counts.update(a.get("type", "?") for a in step.actions)
            emit({"kind": "step", "index": step.index})

        try:
            self.factory.env_for(job.task)
            self.factory.load()  # before the clock of the first step starts
            emit({"kind": "start", "pids": self.pids()})
            agent = self.factory.agent(job.task, on_step=on_step)
            res = agent.run(seed=job.seed, out=job.episode_dir(self.out))
        except Exception as exc:  # noqa: BLE001 - recorded as the episode's error
            self.factory.drop_env()
            return error_result(job, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
        error = None
        if self.factory.browser_died:
            error = "browser crashed during the episode"
            self.factory.drop_env()
        return {
            "task": job.task,
            "seed": job.seed,
            "success": bool(res.success) and error is None,
            "reward": float(res.total_reward),
            "steps": int(res.steps),
            "reason": "error" if error else res.reason,
            "error": error,
            "seconds": time.perf_counter() - start,
            "actions": dict(counts),
            "trajectory": str(res.trajectory) if res.trajectory else None,
        }

    def close(self) -> None:
        self.factory.close()


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


# --- local processes ----------------------------------------------------------------------


def thread_share(workers: int) -> int | None:
    """torch threads for each of ``workers`` local workers: the usable cores split between
    them (each would otherwise take every core, and two workers on two cores then run their
    model calls several times slower). ``None`` when ``OMP_NUM_THREADS`` is set: the workers
    inherit the user's choice."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, workers))


def _worker_main(
    wid: int,
    config: Any,
    out: str,
    inbox: Any,
    outbox: Any,
    make: Runner = EpisodeRunner,
    threads: int | None = None,
) -> None:
    """A spawned worker: its own process group; exits when the evaluation process is gone."""
    os.setpgrp()
    if threads is not None:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # for torch, if it loads later
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
    parent = os.getppid()
    runner = make(config, Path(out))

    def emit(event: dict[str, Any]) -> None:
        if os.getppid() != parent:  # the evaluation was killed: stop, leave no browser behind
            runner.close()
            os._exit(3)
        outbox.put(("event", wid, event))

    try:
        while True:
            try:
                job = inbox.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:
                    return
                continue
            if job is None:
                return
            outbox.put(("done", wid, runner.run(job, emit)))
    finally:
        runner.close()


class _Slot:
    def __init__(
        self,
        ctx: Any,
        wid: int,
        config: Any,
        out: Path,
        outbox: Any,
        runner: Runner,
        threads: int | None = None,
    ) -> None:
        self.inbox = ctx.Queue()
        self.proc = ctx.Process(
            target=_worker_main,
            args=(wid, config, str(out), self.inbox, outbox, runner, threads),
            daemon=True,
        )
        self.proc.start()
        self.job: Any = None  # the running job (a Job, or any job the runner takes)
        self.started = 0.0
        self.beat: float | None = None
        self.pids: list[int] = []

    def give(self, job: Any) -> None:
        self.job, self.pids = job, []
        self.started = time.monotonic()
        self.beat = None  # the step clock starts when the worker says its env is ready
        self.inbox.put(job)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        kill_pids(self.pids)
        self.proc.join(5)


class LocalPool:
    """``workers`` spawned processes, each running one episode at a time (``config``: an
    ``OnlineConfig``, or any object with ``step_timeout`` and ``episode_timeout`` that
    ``runner`` takes). Each worker gets its share of the cores as torch threads
    (``thread_share``)."""

    def __init__(
        self, config: Any, out: Path, workers: int, runner: Runner = EpisodeRunner
    ) -> None:
        import multiprocessing as mp

        self.config, self.out, self.runner = config, out, runner
        self.ctx = mp.get_context("spawn")
        self.outbox = self.ctx.Queue()
        self.threads = thread_share(workers)
        self.slots = [self._slot(i) for i in range(workers)]

    def _slot(self, i: int) -> _Slot:
        return _Slot(self.ctx, i, self.config, self.out, self.outbox, self.runner, self.threads)

    def _restart(self, i: int) -> None:
        self.slots[i].kill()
        self.slots[i] = self._slot(i)

    def _check(self, now: float, record: Record) -> None:
        cfg = self.config
        for i, slot in enumerate(self.slots):
            if slot.job is None:
                continue
            why = None
            if not slot.proc.is_alive():
                why = f"worker process died (exit code {slot.proc.exitcode})"
            elif slot.beat is not None and now - slot.beat > cfg.step_timeout:
                why = f"step timeout: no progress for {cfg.step_timeout:g} s (env hung)"
            elif now - slot.started > cfg.episode_timeout:
                why = f"episode timeout after {cfg.episode_timeout:g} s"
            if why:
                record(error_result(slot.job, why, now - slot.started))
                self._restart(i)

    def run(self, jobs: list[Any], record: Record, on_event: EventHook | None) -> None:
        pending = list(jobs)
        while pending or any(s.job is not None for s in self.slots):
            for i, slot in enumerate(self.slots):
                if slot.job is None and pending:
                    if not slot.proc.is_alive():  # died while idle: replace before use
                        self._restart(i)
                        slot = self.slots[i]
                    slot.give(pending.pop(0))
            try:
                kind, wid, payload = self.outbox.get(timeout=0.25)
            except queue.Empty:
                kind = None
            if kind is not None:
                slot = self.slots[wid]
                if kind == "event" and slot.job is not None:
                    slot.beat = time.monotonic()
                    slot.pids = payload.get("pids", slot.pids)
                    if on_event:
                        on_event({**payload, "pids": slot.pids, "worker": wid, "job": slot.job})
                elif kind == "done" and slot.job is not None:
                    slot.job = None
                    record(payload)
            self._check(time.monotonic(), record)

    def close(self) -> None:
        for slot in self.slots:
            with contextlib.suppress(Exception):
                slot.inbox.put(None)
        for slot in self.slots:
            slot.proc.join(15)
            if slot.proc.is_alive():
                slot.kill()


# --- ray ----------------------------------------------------------------------------------


class _RayRunner:
    """The Ray actor: an ``EpisodeRunner`` on the actor's one thread (Playwright's sync API is
    bound to its thread). Its browser pids go to ``pid_file`` so the pool can kill them, and
    every event of the running job to ``pid_file`` + ``.beat`` (``job-key wall-time``), the
    heartbeat the pool's step timeout watches (the pool and its actors share ``out``)."""

    def __init__(self, config: Any, out: str, pid_file: str, make: Runner = EpisodeRunner) -> None:
        self.runner = make(config, Path(out))
        self.pid_file = Path(pid_file)
        self.beat_file = Path(pid_file + ".beat")

    def run(self, job: Any) -> dict[str, Any]:
        def emit(event: dict[str, Any]) -> None:
            if event.get("pids"):
                self.pid_file.write_text(" ".join(map(str, event["pids"])))
            self.beat_file.write_text(f"{job.key} {time.time()!r}")

        return self.runner.run(job, emit)

    def close(self) -> None:
        self.runner.close()


class RayPool:
    """``workers`` Ray actors; a job with no progress for the step timeout (after its env is
    ready) or past the episode timeout kills its actor (and browser) and records an error."""

    def __init__(
        self, config: Any, out: Path, workers: int, runner: Runner = EpisodeRunner
    ) -> None:
        try:
            import ray
        except ImportError as exc:
            from pixelpilot.errors import DependencyNotInstalled

            raise DependencyNotInstalled("ray", extra="ray") from exc
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if not os.environ.get("RAY_ADDRESS"):
                kwargs["num_cpus"] = max(workers, os.cpu_count() or 1)
            ray.init(**kwargs)
        self.ray = ray
        self.config, self.out, self.runner = config, out, runner
        self.cls = ray.remote(num_cpus=1)(_RayRunner)
        (out / ".workers").mkdir(exist_ok=True)
        self.actors = [self._new(i) for i in range(workers)]

    def _pid_file(self, i: int) -> Path:
        return self.out / ".workers" / f"ray-{i}.pids"

    def _new(self, i: int) -> Any:
        return self.cls.remote(self.config, str(self.out), str(self._pid_file(i)), self.runner)

    def run(self, jobs: list[Any], record: Record, on_event: EventHook | None) -> None:
        ray = self.ray
        pending = list(jobs)
        running: dict[Any, tuple[int, Any, float]] = {}
        idle = list(range(len(self.actors)))
        while pending or running:
            while idle and pending:
                i, job = idle.pop(), pending.pop(0)
                running[self.actors[i].run.remote(job)] = (i, job, time.monotonic())
            ready, _ = ray.wait(list(running), num_returns=1, timeout=0.25)
            for ref in ready:
                i, job, start = running.pop(ref)
                try:
                    record(ray.get(ref))
                except Exception as exc:  # noqa: BLE001 - the actor died
                    record(error_result(job, f"worker died: {type(exc).__name__}"))
                    self.actors[i] = self._new(i)
                idle.append(i)
            now = time.monotonic()
            for ref, (i, job, start) in list(running.items()):
                why = self._overdue(i, job, now - start)
                if why:
                    running.pop(ref)
                    self._kill(i)
                    record(error_result(job, why, now - start))
                    idle.append(i)

    def _overdue(self, i: int, job: Any, elapsed: float) -> str | None:
        """Why the job must be stopped now (a timeout), or ``None``."""
        cfg = self.config
        beat = self._last_beat(i, job)
        if beat is not None and time.time() - beat > cfg.step_timeout:
            return f"step timeout: no progress for {cfg.step_timeout:g} s (env hung)"
        if elapsed > cfg.episode_timeout:
            return f"episode timeout after {cfg.episode_timeout:g} s"
        return None

    def _last_beat(self, i: int, job: Any) -> float | None:
        """Wall time of the job's latest event (``None`` before its env is ready)."""
        try:
            key, _, when = Path(str(self._pid_file(i)) + ".beat").read_text().partition(" ")
            return float(when) if key == job.key else None
        except (OSError, ValueError):
            return None

    def _kill(self, i: int) -> None:
        self.ray.kill(self.actors[i])
        with contextlib.suppress(OSError, ValueError):
            kill_pids([int(p) for p in self._pid_file(i).read_text().split()])
        self.actors[i] = self._new(i)

    def close(self) -> None:
        for actor in self.actors:
            with contextlib.suppress(Exception):
                self.ray.get(actor.close.remote(), timeout=30)
            self.ray.kill(actor)


def make_pool(config: OnlineConfig, out: Path, workers: int) -> LocalPool | RayPool:
    return (
        RayPool(config, out, workers)
        if config.backend == "ray"
        else LocalPool(config, out, max(1, workers))
    )

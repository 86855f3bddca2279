"""The trainer core every objective runs on: data order, optimisation, checkpoints, metrics.

An objective (SFT, GRPO) only turns a micro-batch of step samples into a loss; the ``Trainer``
owns everything else, so the two objectives share it:

- the data order: a seeded permutation per epoch, cut into global batches of ``batch_size x
  grad_accum x processes``; each micro-batch is split by rank (``distributed.shard``);
- AdamW with linear warm-up then cosine (or linear, constant) decay, gradient accumulation,
  gradient clipping, gradients averaged over processes once per optimizer step;
- the NaN/inf guard: a step whose loss or gradient norm is not finite is skipped (no update),
  counted and reported in ``metrics.jsonl``; ``max_bad_steps`` of them in a row stop the run
  with ``TrainingDiverged`` naming the steps and samples;
- checkpoints every ``checkpoint_every`` steps and at the end, with optimizer, scheduler and
  every rank's RNG state, so ``resume`` continues exactly (same losses as an uninterrupted run);
- one JSON line per step in ``OUT/metrics.jsonl`` and a rich progress bar (rank 0 only);
- validation every ``eval_every`` steps and at the end (``objective.validate``).

The objective's contract (``Objective``): ``loss(samples) -> StepLoss`` where ``loss`` is the
mean over the micro-batch's samples (a scalar tensor with gradients), and ``validate(samples) ->
dict`` of figures.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pixelpilot.errors import TrainingDiverged
from pixelpilot.train import checkpoint as ckpt
from pixelpilot.train.data import DataSplit, batches
from pixelpilot.train.distributed import (
    Dist,
    all_reduce_gradients,
    all_sum,
    barrier,
    broadcast_object,
    gather_objects,
    mean_over_ranks,
    shard,
)
from pixelpilot.train.zero import build_optimizer, consolidate, memory_figures


@dataclass
class StepLoss:
    """One micro-batch's loss (mean over its samples) with figures to log."""

    loss: Any
    samples: int
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


class Objective(Protocol):
    name: str

    def loss(self, samples: Sequence[Any]) -> StepLoss: ...

    def validate(self, samples: Sequence[Any]) -> dict[str, float]: ...


@dataclass
class TrainResult:
    steps: int
    loss_first: float
    loss_last: float
    checkpoint: str
    seconds: float
    samples_per_second: float
    skipped: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    validation: dict[str, float] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The ``--json`` object of ``train sft``."""
        return {
            "steps": self.steps,
            "loss_first": self.loss_first,
            "loss_last": self.loss_last,
            "checkpoint": self.checkpoint,
            "seconds": self.seconds,
            "samples_per_second": self.samples_per_second,
        }


def lr_factor(step: int, total: int, warmup: int, schedule: str, floor: float) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "linear":
        return floor + (1 - floor) * (1 - progress)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def total_steps(config: Any, n_train: int, world: int) -> int:
    if config.max_steps is not None:
        return config.max_steps
    per_step = config.batch_size * config.grad_accum * world
    return max(1, math.ceil(config.epochs * n_train / per_step))


class Trainer:
    """Runs ``objective`` over ``split.train`` with ``config`` (a ``TrainConfig``)."""

    aided = False  # trained under the source's decoding aids: the export declares them

    def __init__(
        self, config: Any, vlm: Any, objective: Objective, split: DataSplit, where: Dist
    ) -> None:
        import torch

        self.config = config
        self.vlm = vlm
        self.objective = objective
        self.split = split
        self.where = where
        self.out = Path(config.out)
        self.params = [p for p in vlm.model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.params, config, where)  # AdamW, ZeRO-1 sharded
        self.total = total_steps(config, len(split.train), where.world)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_factor(
                s, self.total, config.warmup_steps, config.schedule, config.min_lr_ratio
            ),
        )
        self.step = 0
        self.bad: list[int] = []
        self.skipped = 0
        self.samples_seen = 0
        self.seconds = 0.0
        self.history: list[dict[str, Any]] = []
        self.validation: dict[str, float] = {}
        self._last_ids: list[str] = []

    # -- state -----------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "bad": self.bad,
            "skipped": self.skipped,
            "samples_seen": self.samples_seen,
            "seconds": self.seconds,
            "loss_first": self.history[0]["loss"] if self.history else None,
        }

    def save(self) -> None:
        optimizer = consolidate(self.optimizer, self.where)  # the whole state, on rank 0
        rngs = gather_objects(ckpt.rng_state(), self.where)
        if self.where.main:
            ckpt.save_checkpoint(
                self.out, self.step, self.vlm.model, optimizer, self.scheduler, rngs,
                self._state(),
            )  # fmt: skip

    def restore(self, path: Path) -> None:
        state, rngs = ckpt.load_checkpoint(path, self.vlm.model, self.optimizer, self.scheduler)
        ckpt.set_rng_state(rngs[self.where.rank] if self.where.rank < len(rngs) else rngs[0])
        self.step = int(state["step"])
        self.bad, self.skipped = list(state["bad"]), int(state["skipped"])
        self.samples_seen, self.seconds = int(state["samples_seen"]), float(state["seconds"])
        self.history = _read_metrics(self.out / ckpt.METRICS_FILE, self.step)
        if self.where.main:
            _write_metrics(self.out / ckpt.METRICS_FILE, self.history)

    # -- one optimizer step ----------------------------------------------------------------

    def _micro_batches(self, indices: list[int]) -> list[list[Any]]:
        size = self.config.batch_size * self.where.world
        chunks = [indices[i : i + size] for i in range(0, len(indices), size)]
        return [[self.split.train[i] for i in shard(c, self.where)] for c in chunks]

    def train_step(self, indices: list[int]) -> dict[str, Any]:
        """Forward/backward over the step's micro-batches, then one guarded update."""
        import torch

        from pixelpilot.train.model import autocast

        seconds: dict[str, float] = {}
        extra: dict[str, float] = {}
        loss_sum, count = 0.0, 0
        micro = self._micro_batches(indices)
        for samples in micro:
            with autocast(self.vlm, self.config):
                out = self.objective.loss(samples)
            t0 = time.perf_counter()
            (out.loss / len(micro)).backward()
            _add(seconds, {**out.seconds, "backward": time.perf_counter() - t0})
            loss_sum += float(out.loss.detach()) / len(micro)
            count += out.samples
            for k, v in out.metrics.items():
                extra[k] = extra.get(k, 0.0) + v / len(micro)
        t0 = time.perf_counter()
        all_reduce_gradients(self.params, self.where)
        loss, samples = all_sum([loss_sum, count], self.where)
        loss /= self.where.world
        if self.where.active:  # the objective's figures over the global batch, not rank 0's
            extra = mean_over_ranks(gather_objects(extra, self.where))
        norm = torch.nn.utils.clip_grad_norm_(
            self.params, self.config.max_grad_norm or float("inf")
        )
        finite = math.isfinite(loss) and bool(torch.isfinite(norm))
        if finite:
            self.optimizer.step()
            self.bad = []
        else:
            self.skipped += 1
            self.bad.append(self.step + 1)
        self.optimizer.zero_grad(set_to_none=True)
        lr = self.scheduler.get_last_lr()[0]
        with warnings.catch_warnings():  # a skipped first step warns about the order
            warnings.simplefilter("ignore", UserWarning)
            self.scheduler.step()
        seconds["optimizer"] = time.perf_counter() - t0
        self._last_ids = [s.id for b in micro for s in b]
        return {
            "loss": loss, "lr": lr, "grad_norm": float(norm), "samples": int(samples),
            "skipped": not finite, **{k: v for k, v in extra.items()}, "seconds": seconds,
            **memory_figures(self.optimizer),
        }  # fmt: skip

    # -- the run ---------------------------------------------------------------------------

    def run(self, resume_from: Path | None = None, stop_after: int | None = None) -> TrainResult:
        """Train to the last step (or stop after step ``stop_after`` with a checkpoint, as a
        preempted job would, without the final export)."""
        if resume_from is not None:
            self.restore(resume_from)
        per_step = self.config.batch_size * self.config.grad_accum * self.where.world
        order = batches(len(self.split.train), per_step, self.config.seed, start=self.step)
        with _Progress(self.where.main and self.config.progress, self.total, self.step) as bar:
            while self.step < self.total:
                started = time.perf_counter()
                epoch, indices = next(order)
                record = self.train_step(indices)
                self.step += 1
                elapsed = time.perf_counter() - started
                self.seconds += elapsed
                self.samples_seen += record["samples"]
                record = {"step": self.step, "epoch": epoch, **record,
                          "samples_per_second": record["samples"] / max(elapsed, 1e-9)}  # fmt: skip
                self._log(record)
                bar.update(self.step, record)
                if len(self.bad) >= self.config.max_bad_steps:
                    raise TrainingDiverged(self.bad, self._last_ids)
                if stop_after is not None and stop_after <= self.step < self.total:
                    self.save()
                    return self._result("")
                self._maybe_checkpoint_and_validate()
        return self._finish()

    def _maybe_checkpoint_and_validate(self) -> None:
        cfg = self.config
        last = self.step >= self.total
        if cfg.eval_every and self.step % cfg.eval_every == 0 and not last:
            self.validate()
        if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 and not last:
            self.save()

    def validate(self) -> dict[str, float]:
        """``objective.validate`` on the validation split (rank 0 computes, all receive)."""
        result: dict[str, float] = {}
        if self.split.val and self.where.main:
            t0 = time.perf_counter()
            self.vlm.model.eval()
            try:
                result = self.objective.validate(self.split.val)
            finally:
                self.vlm.model.train()
            result["seconds"] = time.perf_counter() - t0
            self._write({"step": self.step, "validation": result})
        self.validation = broadcast_object(result, self.where)
        return self.validation

    def _finish(self) -> TrainResult:
        if self.split.val and (not self.validation or self.config.eval_every):
            self.validate()
        self.save()
        final = ""
        if self.where.main:
            final = str(ckpt.export_model(self.vlm, self.out, self.config.merge, self.aided))
        return self._result(final)

    def _result(self, final: str) -> TrainResult:
        # every rank returns only when rank 0 has written its files: a rank that went on to
        # tear gloo down while another still used it aborted the other (SIGABRT in CI)
        barrier(self.where)
        losses = [r["loss"] for r in self.history if not r.get("skipped")]
        return TrainResult(
            steps=self.step,
            loss_first=losses[0] if losses else float("nan"),
            loss_last=losses[-1] if losses else float("nan"),
            checkpoint=final,
            seconds=self.seconds,
            samples_per_second=self.samples_seen / max(self.seconds, 1e-9),
            skipped=self.skipped,
            history=self.history,
            validation=self.validation,
        )

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        if self.where.main:
            with open(self.out / ckpt.METRICS_FILE, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")


def _add(acc: dict[str, float], more: dict[str, float]) -> None:
    for k, v in more.items():
        acc[k] = acc.get(k, 0.0) + v


def _read_metrics(path: Path, upto: int) -> list[dict[str, Any]]:
    """The step lines of ``metrics.jsonl`` up to step ``upto`` (validation lines dropped)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if isinstance(obj, dict) and "loss" in obj and obj.get("step", 0) <= upto:
            rows.append(obj)
    return rows


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)


class _Progress:
    """A rich progress bar on stderr: step, loss, samples/s and seconds per phase."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self.enabled = enabled
        self.total = total
        self.done = done
        self._bar: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                TextColumn("{task.description}"), console=Console(stderr=True),
            )  # fmt: skip
            self._bar.__enter__()
            self._task = self._bar.add_task("", total=self.total, completed=self.done)
        return self

    def update(self, step: int, record: dict[str, Any]) -> None:
        if self._bar is None:
            return
        phases = " ".join(f"{k} {v:.2f}s" for k, v in record["seconds"].items())
        text = (f"loss {record['loss']:.4f}  {record['samples_per_second']:.1f} samples/s  "
                f"{phases}")  # fmt: skip
        self._bar.update(self._task, completed=step, description=text)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

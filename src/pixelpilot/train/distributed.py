"""One process per device, on ``torch.distributed`` (what ``accelerate launch`` and ``torchrun``
start).

The launcher sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``;
``init_from_env`` joins the process group (NCCL on GPUs, gloo on CPU). Each optimizer step's
global batch is cut into one contiguous slice per rank (``shard``); every rank computes its
slice's loss and gradients, and ``all_reduce_gradients`` averages the gradients once per
optimizer step (after gradient accumulation, as DDP does with ``no_sync``). The parameters stay
identical on every rank because every rank applies the same averaged gradient. Only rank 0
writes files.

Not a DDP wrapper on purpose: objectives reach the model through any path (the SFT forward,
``HFVLM.logprobs``, generation), and a wrapper only synchronises what runs through its own
``forward``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place: ``rank`` of ``world`` processes, ``local_rank`` on its machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_from_env(device: str | None = None) -> Dist:
    """Join the process group the launcher describes in the environment (no-op alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if not dist.is_initialized():
        on_gpu = torch.cuda.is_available() and not (device or "").startswith("cpu")
        if on_gpu:
            torch.cuda.set_device(local)
        dist.init_process_group(backend="nccl" if on_gpu else "gloo")
    return Dist(rank=rank, world=world, local_rank=local)


def default_device(requested: str | None, where: Dist) -> str:
    import torch

    if requested:
        return requested
    return f"cuda:{where.local_rank}" if torch.cuda.is_available() else "cpu"


def shard(items: Sequence[T], where: Dist) -> list[T]:
    """This rank's contiguous slice of a global batch (sizes differ by at most one)."""
    n, w, r = len(items), where.world, where.rank
    start = r * n // w
    return list(items[start : (r + 1) * n // w])


def all_reduce_gradients(params: Iterable[Any], where: Dist) -> None:
    """Average the gradients of ``params`` over all ranks (one flat buffer, one all-reduce)."""
    if not where.active:
        return
    import torch
    import torch.distributed as dist

    grads = [p.grad for p in params if p.requires_grad and p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= where.world
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def all_sum(values: Sequence[float], where: Dist) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (float64)."""
    if not where.active:
        return [float(v) for v in values]
    import torch
    import torch.distributed as dist

    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def gather_objects(obj: Any, where: Dist) -> list[Any]:
    """``obj`` of every rank, in rank order (on every rank)."""
    if not where.active:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * where.world
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(figures: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each figure averaged over the ranks that report it (a rank whose slice has no sample a
    figure applies to leaves it out)."""
    keys = dict.fromkeys(k for f in figures for k in f)
    return {k: sum(f[k] for f in figures if k in f) / sum(k in f for f in figures) for k in keys}


def broadcast_object(obj: Any, where: Dist) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not where.active:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(where: Dist) -> None:
    if where.active:
        import torch.distributed as dist

        dist.barrier()


def shutdown(where: Dist) -> None:
    if where.active:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for a launcher's rendezvous."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(module: str, args: Sequence[str], procs: int, what: str) -> None:
    """Run ``python -m module ARGS`` in ``procs`` processes on this machine under
    ``torch.distributed.run`` (gloo over 127.0.0.1, one CPU thread each; their output goes
    where this process's goes); ``LaunchError`` if any fails. Each joins with
    ``init_from_env``. When this process is stopped (SIGTERM, or Ctrl-C) the processes stop
    with it instead of training on unattended."""
    import signal
    import subprocess
    import sys
    import threading

    from pixelpilot.errors import LaunchError

    port = free_port()
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
        "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", module, *args,
    ]  # fmt: skip
    runner = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": "1"})
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        code = runner.wait()
    except BaseException:  # SIGTERM (as SystemExit) or KeyboardInterrupt
        runner.terminate()  # torch.distributed.run stops its workers on SIGTERM
        try:
            runner.wait(timeout=60)
        except subprocess.TimeoutExpired:
            runner.kill()
            runner.wait()
        raise
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if code:
        raise LaunchError(what, code)


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def launch_spec(module: str, spec: dict[str, Any], procs: int, what: str) -> dict[str, Any]:
    """``launch`` a trainer that reads its settings from a JSON file: ``spec`` (its
    ``"config"`` holds the run's ``out``) goes to ``OUT/launch.json``, each process runs
    ``python -m module OUT/launch.json`` (``run_spec``), and the summary rank 0 wrote to
    ``OUT/summary.json`` is returned."""
    import json
    from pathlib import Path

    out = Path(spec["config"]["out"])
    out.mkdir(parents=True, exist_ok=True)
    path = out / "launch.json"
    path.write_text(json.dumps(spec) + "\n")
    launch(module, [str(path)], procs, what)
    return json.loads((out / "summary.json").read_text())


def run_spec(argv: Sequence[str], train: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    """One process of ``launch_spec``: ``train(spec)`` on the spec file ``argv[0]`` returns the
    run's summary, which rank 0 writes beside the spec; a ``PixelpilotError`` is one line on
    stderr and exit status 2."""
    import json
    import sys
    from pathlib import Path

    from pixelpilot.errors import PixelpilotError

    spec = json.loads(Path(argv[0]).read_text())
    try:
        summary = train(spec)
    except PixelpilotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":
        path = Path(spec["config"]["out"]) / "summary.json"
        path.write_text(json.dumps(summary, default=str) + "\n")
    return 0

"""Optimizer-state sharding, ZeRO stage 1 (``--zero-stage 1``).

ZeRO (Rajbhandari et al., 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter
Models") names three stages of removing the copies that data parallelism keeps on every
process: stage 1 partitions the optimizer state, stage 2 also the gradients, stage 3 also the
parameters. AdamW keeps two fp32 moments per parameter, twice the weights; with stage 1 each of
N processes keeps and updates the moments of about 1/N of the parameters.

Built on ``torch.distributed.optim.ZeroRedundancyOptimizer`` (no model wrapper, any backend,
gloo on CPU). The trainer's step stays as it is: gradients are averaged over the processes
(``distributed.all_reduce_gradients``) and clipped on every rank as before; then each rank steps
AdamW on its own parameters and broadcasts them, so the parameters stay identical everywhere.
The arithmetic per parameter is AdamW's, so the losses equal those of the unsharded run.

Checkpoints hold the whole optimizer state in plain AdamW's ``state_dict`` layout: ``consolidate``
gathers the shards on rank 0 before it saves, and every rank loads that file and keeps its own
part (``ZeroRedundancyOptimizer.load_state_dict``), so ``--resume`` continues exactly. Alone
(one process) stage 1 is plain AdamW: there is nothing to partition.

Stages 2 and 3 are not offered: the trainer reaches the model through the SFT forward,
``logprobs`` and generation, and sharded gradients or parameters would need a wrapper around
every one of those paths (see ``distributed``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pixelpilot.train.distributed import Dist

ZERO_STAGES = (0, 1)


def build_optimizer(params: Sequence[Any], config: Any, where: Dist) -> Any:
    """AdamW over ``params``; with ``config.zero_stage == 1`` and several processes, its state
    partitioned over the processes (``ZeroRedundancyOptimizer``)."""
    import torch

    if getattr(config, "zero_stage", 0) >= 1 and where.active:
        from torch.distributed.optim import ZeroRedundancyOptimizer

        return ZeroRedundancyOptimizer(
            list(params),
            optimizer_class=torch.optim.AdamW,
            lr=config.lr,
            weight_decay=config.weight_decay,
        )
    return torch.optim.AdamW(list(params), lr=config.lr, weight_decay=config.weight_decay)


def consolidate(optimizer: Any, where: Dist) -> dict[str, Any] | None:
    """The whole optimizer state as a plain ``state_dict`` on rank 0 (None on the others); call
    on every rank. A sharded state is gathered tensor by tensor with point-to-point sends, so
    a rank holds no more than its shard and the one tensor in flight. (torch's own
    ``consolidate_state_dict`` serialises each shard into bytes first: on the tiny ``m`` model
    that made the sending rank's resident set grow by about ten times its 81 MiB shard.)"""
    if not (where.active and hasattr(optimizer, "consolidate_state_dict")):
        return optimizer.state_dict() if where.main else None
    import torch
    import torch.distributed as dist

    index = {id(p): i for i, p in enumerate(_global_params(optimizer))}
    mine = {index[id(p)]: s for p, s in optimizer.optim.state.items() if s}
    if where.main:
        state = {i: dict(s) for i, s in mine.items()}
        for rank in range(1, where.world):
            box: list[Any] = [None]
            dist.recv_object_list(box, src=rank)
            for i, name, shape, dtype, small in box[0]:
                value = small  # a scalar such as AdamW's step travels with the list
                if value is None:
                    value = torch.empty(shape, dtype=dtype)
                    dist.recv(value, src=rank)
                state.setdefault(i, {})[name] = value
        whole = torch.optim.Optimizer.state_dict(optimizer)  # the groups, in global indices
        whole["state"] = state
        return whole
    items = [(i, n, tuple(v.shape), v.dtype, v if v.dim() == 0 else None, v)
             for i, s in sorted(mine.items()) for n, v in s.items()]  # fmt: skip
    dist.send_object_list([[t[:5] for t in items]], dst=0)
    for *_, small, value in items:
        if small is None:
            dist.send(value.detach().cpu().contiguous(), dst=0)
    return None


def _global_params(optimizer: Any) -> list[Any]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def local_state_bytes(optimizer: Any) -> int:
    """Bytes of optimizer state (AdamW's moments) this process holds."""
    inner = getattr(optimizer, "optim", optimizer)  # the local AdamW of a sharded optimizer
    total = 0
    for state in inner.state.values():
        for value in (state or {}).values():
            if hasattr(value, "dim") and value.dim() > 0:
                total += value.numel() * value.element_size()
    return total


def memory_figures(optimizer: Any) -> dict[str, float]:
    """This process's optimizer state and peak resident set so far, in MiB (for metrics)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    peak_mib = peak / 2**20 if sys.platform == "darwin" else peak / 2**10
    return {"optimizer_state_mib": local_state_bytes(optimizer) / 2**20, "peak_rss_mib": peak_mib}

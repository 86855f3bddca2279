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

Checkpoints hold the whole optimizer state: ``consolidate`` gathers the shards on rank 0 before
it saves, and every rank loads that file and keeps its own part (``load_state_dict``), so
``--resume`` continues exactly. Alone (one process) stage 1 is plain AdamW: there is nothing to
partition.

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


def consolidate(optimizer: Any, where: Dist) -> None:
    """Gather a sharded optimizer's state on rank 0, so that its ``state_dict()`` there is the
    whole state (call on every rank; nothing to do for an unsharded optimizer)."""
    if where.active and hasattr(optimizer, "consolidate_state_dict"):
        optimizer.consolidate_state_dict(to=0)


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

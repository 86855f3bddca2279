"""Training-step speed of the tiny kimi_k25 models on CPU, per mixture-of-experts kernel.

A batch of 8 MiniWoB-sized screenshots (160x210: 48 image tokens each) with an instruction
and a ~30-token answer; one step is a forward pass, the log-probability of the answers and
a backward pass, as SFT and GRPO run it. transformers can run the experts three ways
(``experts_implementation``): ``eager`` loops in Python over the experts that received
tokens, ``grouped_mm`` and ``batched_mm`` use one grouped / batched matrix product
(``batched_mm`` gathers every token's expert weights first; it is measured on xs and s only).
The share of forward time spent in the MoE blocks and in the vision tower is timed with hooks.

    .venv/bin/python bench/bench_kimi_k25.py [--sizes xs,s,m] [--repeats 5] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from collections import defaultdict
from typing import Any

from benchdoc import markers, write_section
from PIL import Image

from pixelpilot.vlm import Conversation
from pixelpilot.vlm.hf import HFVLM
from pixelpilot.vlm.tiny import build_tiny

START, END = markers("bench_kimi_k25")
KERNELS = ("eager", "grouped_mm", "batched_mm")
ANSWER = "Thought: The OK button is below the text.\nAction: click(start_box='(512,640)')"


def batch(k: int = 8) -> list[Conversation]:
    colors = ["white", "red", "green", "blue", "gray", "navy", "teal", "olive"]
    return [
        Conversation.user(
            f"Click the {c} button, then type hello {i}.", [Image.new("RGB", (160, 210), c)]
        )
        for i, c in enumerate(colors[:k])
    ]


def timed_modules(model: Any) -> dict[str, list[float]]:
    """Forward time of the MoE blocks and the vision tower, collected by hooks."""
    spent: dict[str, list[float]] = defaultdict(list)
    groups = {"moe": [m for m in model.modules() if type(m).__name__ == "DeepseekV3MoE"]}
    groups["vision"] = [model.model.vision_tower]
    for name, mods in groups.items():
        for m in mods:
            m.register_forward_pre_hook(lambda *_: spent["_t"].append(time.perf_counter()))
            m.register_forward_hook(
                lambda *_, n=name: spent[n].append(time.perf_counter() - spent["_t"].pop())
            )
    return spent


def step(vlm: HFVLM, convs: list[Conversation]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, forward seconds) of one forward + backward."""
    start, cpu = time.perf_counter(), time.process_time()
    lps = vlm.logprobs(convs, [ANSWER] * len(convs), grad=True)
    fwd = time.perf_counter() - start
    loss = -sum(lp.sum() for lp in lps)
    loss.backward()
    vlm.model.zero_grad(set_to_none=True)
    return time.perf_counter() - start, time.process_time() - cpu, fwd


def measure(size: str, repeats: int) -> tuple[int, list[str]]:
    vlm = HFVLM(build_tiny(None, "kimi_k25", size, 0), batch_size=8)
    vlm.model.train()
    spent = timed_modules(vlm.model)
    convs = batch()
    rows = []
    # batched_mm copies each token's expert weights: already ~30x slower at s, minutes at m.
    for kernel in KERNELS if size in ("xs", "s") else KERNELS[:2]:
        vlm.model.model.language_model.set_experts_implementation(kernel)
        step(vlm, convs)  # warm-up
        spent.clear()
        runs = [step(vlm, convs) for _ in range(repeats)]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        fwd = sum(r[2] for r in runs)
        moe, vision = sum(spent["moe"]) / fwd, sum(spent["vision"]) / fwd
        rows.append(f"| {size} | {kernel} | {wall:.3f} | {cpu:.3f} | {moe:.0%} | {vision:.0%} |")
    return sum(p.numel() for p in vlm.model.parameters()), rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="xs,s,m")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "| size | experts kernel | s / step (wall, median) | CPU-s / step (median) "
        "| forward time in MoE blocks | forward time in vision tower |",
        "|---|---|---|---|---|---|",
    ]
    params = []
    for size in args.sizes.split(","):
        n, rows = measure(size, args.repeats)
        params.append(f"`{size}` {n:,}")
        lines += rows
        print("\n".join(rows), flush=True)
    if args.no_write:
        return
    section = "\n".join(
        [
            START,
            "## kimi_k25 training step (vlm)",
            "",
            f"Command: `.venv/bin/python bench/bench_kimi_k25.py --sizes {args.sizes} "
            f"--repeats {args.repeats} --threads {args.threads}`  ",
            f"Machine: {os.cpu_count()} cores, no GPU, torch {torch.__version__}, "
            f"{platform.python_implementation()} {platform.python_version()}; load average "
            f"{load:.1f} at the start (shared machine)  ",
            f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC  ",
            f"Models: tiny kimi_k25 ({', '.join(params)} parameters, fp32, sdpa). One step: "
            "8 conversations with a 160x210 screenshot (48 image tokens) and an instruction, "
            "log-probabilities of a 27-token answer each, backward. CPU seconds are this "
            "process's CPU time, less sensitive to other jobs.",
            "",
            *lines,
            END,
        ]
    )
    write_section(section, START, END)


if __name__ == "__main__":
    main()

"""What a larger vision tower costs the default model's training step (kimi_k25, CPU).

The label tasks need the vision tower to read (docs/default-model.md, rounds 11 and 16), and
the `xs` tower is 64 wide and 2 layers deep. This times one SFT-like step (forward, the
answers' log-probabilities, backward; 8 MiniWoB-sized 160x210 screenshots, 48 image tokens
each) of the `xs` model against candidates that keep its decoder and widen or deepen its
tower: 128 wide (the `s` tower's width), 7-pixel patches merged 4x4 (four times the
patches, the same tokens), 14-pixel patches not merged (the same patches, four times the
tokens: 180 for the decoder), 128 wide and 4 deep (the `s` tower), and the whole `s` model for
scale. The first three candidates are the `xs-wide`, `xs-fine` and `xs-14` sizes; the others
are built from `kimi_k25.KimiSize` in this process only. The arms take turns on every
repeat, one torch thread.

    .venv/bin/python bench/bench_vision_width.py [--repeats 7] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from dataclasses import replace

import torch
from bench_kimi_k25 import ANSWER, batch
from benchdoc import markers, write_section

from pixelpilot.vlm import kimi_k25, tiny
from pixelpilot.vlm.hf import HFVLM

START, END = markers("bench_vision_width")
XS = kimi_k25.KIMI_SIZES["xs"]
ARMS = {  # name: the kimi_k25 size
    "xs (tower 64 wide, 2 deep)": XS,
    "xs, tower 128 wide (xs-wide)": kimi_k25.KIMI_SIZES["xs-wide"],
    "xs, 7-pixel patches merged 4x4 (xs-fine)": kimi_k25.KIMI_SIZES["xs-fine"],
    "xs, 14-pixel patches not merged (xs-14)": kimi_k25.KIMI_SIZES["xs-14"],
    "xs, tower 128 wide, 4 deep (the s tower)": replace(
        XS, vision_hidden=128, vision_heads=4, vision_layers=4
    ),
    "s (for scale)": kimi_k25.KIMI_SIZES["s"],
}


def build(name: str, size: kimi_k25.KimiSize, folder: str) -> HFVLM:
    key = f"bench-{abs(hash(name)) % 10**8}"
    kimi_k25.KIMI_SIZES[key] = size  # visible to the builder for this process only
    path = tiny.build_tiny(os.path.join(folder, key), arch="kimi_k25", size=key, cache=False)
    return HFVLM(path, pointer_weight=0.0, well_formed_points=False, quoted_typing=False,
                 well_formed_actions=False)  # fmt: skip


def step(vlm: HFVLM) -> float:
    convs = batch(8)
    t0 = time.perf_counter()
    lps = vlm.logprobs(convs, [ANSWER] * len(convs), grad=True)
    (-sum(lp.sum() for lp in lps)).backward()
    vlm.model.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        vlms = {name: build(name, size, folder) for name, size in ARMS.items()}
        for vlm in vlms.values():
            vlm.model.train()
            step(vlm)  # warm-up
        times: dict[str, list[float]] = {name: [] for name in vlms}
        for _ in range(args.repeats):
            for name, vlm in vlms.items():
                times[name].append(step(vlm))
    base = statistics.median(times[next(iter(ARMS))])
    lines = []
    for name, vlm in vlms.items():
        params = sum(p.numel() for p in vlm.model.parameters())
        tower = sum(p.numel() for p in vlm.model.model.vision_tower.parameters())
        median = statistics.median(times[name])
        lines.append(f"| {name} | {params:,} | {tower:,} | {median:.3f} | {median / base:.2f} |")
        print(lines[-1])
    section = "\n".join([
        START,
        "## A larger vision tower on the default model's decoder (kimi_k25)",
        "",
        f"Command: `.venv/bin/python bench/bench_vision_width.py --repeats {args.repeats}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, one "
        f"torch thread; load average {load:.1f} at the start  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
        "One step: 8 conversations with a 160x210 screenshot (48 image tokens) and an "
        "instruction, the log-probabilities of a 27-token answer each, backward (fp32, sdpa). "
        "The candidates keep the `xs` decoder; the 128-wide one is the `xs-wide` size, the "
        "7-pixel one `xs-fine` (the same 48 image tokens, cut from four times the patches), "
        "the unmerged one `xs-14` (180 image tokens of 14 pixels), the others are built in "
        "the benchmark only.",
        "",
        "| model | parameters | vision tower | s / step (median) | against xs |",
        "|---|---|---|---|---|",
        *lines,
        END,
    ])  # fmt: skip
    if not args.no_write:
        write_section(section, START, END)


if __name__ == "__main__":
    main()

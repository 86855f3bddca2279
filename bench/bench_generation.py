"""Throughput of batched vs one-by-one generation on the tiny `s` checkpoints.

Eight conversations, each a 160x210 screenshot and a short instruction; greedy decoding of
a fixed number of new tokens (EOS disabled so every row decodes the same count), for each
architecture in ``--archs`` (default: Qwen2.5-VL and kimi_k25). Prints the figures and writes
them to its own section of docs/benchmarks.md.

    .venv/bin/python bench/bench_generation.py [--archs qwen2_5_vl,kimi_k25] [--tokens 32]
        [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time

from benchdoc import markers, write_section
from PIL import Image

from pixelpilot.vlm import Conversation, SamplingParams
from pixelpilot.vlm.hf import HFVLM
from pixelpilot.vlm.tiny import build_tiny

START, END = markers("bench_generation")


def conversations(k: int = 8) -> list[Conversation]:
    colors = ["white", "red", "green", "blue", "gray", "navy", "teal", "olive"]
    return [
        Conversation.user(
            f"Click the {c} button, then type hello {i}.", [Image.new("RGB", (210, 160), c)]
        )
        for i, c in enumerate(colors[:k])
    ]


def run(vlm: HFVLM, convs: list[Conversation], tokens: int, batched: bool) -> tuple[float, float]:
    """Generated tokens per wall-clock second and per CPU second of this process."""
    params = SamplingParams(max_new_tokens=tokens)
    start, cpu = time.perf_counter(), time.process_time()
    if batched:
        gens = vlm.generate(convs, params)
    else:
        gens = [g for c in convs for g in vlm.generate([c], params)]
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    n = sum(len(g.token_ids or ()) for g in gens)
    return n / wall, n / cpu


def measure(arch: str, tokens: int, repeats: int) -> tuple[int, list[str], str]:
    """Parameter count, table rows and the speed-up line of one architecture."""
    vlm = HFVLM(build_tiny(None, arch, "s", 0), batch_size=8)
    vlm.model.generation_config.eos_token_id = None  # decode exactly --tokens per row
    vlm._eos_ids = lambda: []  # type: ignore[method-assign]
    convs = conversations()
    run(vlm, convs[:2], 4, True)  # warm-up
    single, batched = [], []
    for _ in range(repeats):  # interleaved, so both see the same machine load
        single.append(run(vlm, convs, tokens, False))
        batched.append(run(vlm, convs, tokens, True))
    rows = []
    for name, runs in (("one-by-one", single), ("batched (8)", batched)):
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        each = ", ".join(f"{r[0]:.0f}" for r in runs)
        rows.append(f"| {arch} | {name} | {wall:.0f} | {each} | {cpu:.0f} |")
    ratio = [
        statistics.median(r[i] for r in batched) / statistics.median(r[i] for r in single)
        for i in (0, 1)
    ]
    speedup = (
        f"{arch}: batched over one-by-one {ratio[0]:.2f}x wall-clock, "
        f"{ratio[1]:.2f}x per CPU second."
    )
    return sum(p.numel() for p in vlm.model.parameters()), rows, speedup


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="qwen2_5_vl,kimi_k25")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "| model | mode | tokens / s (wall, median) | runs | tokens / CPU-s (median) |",
        "|---|---|---|---|---|",
    ]
    models, speedups = [], []
    for arch in args.archs.split(","):
        n, rows, speedup = measure(arch, args.tokens, args.repeats)
        models.append(f"`{arch}` ({n:,} parameters)")
        lines += rows
        speedups.append(speedup)
    lines += ["", *speedups]
    print("\n".join(lines))
    if args.no_write:
        return
    section = "\n".join(
        [
            START,
            "## Generation throughput (vlm)",
            "",
            f"Command: `.venv/bin/python bench/bench_generation.py --archs {args.archs} "
            f"--tokens {args.tokens} --repeats {args.repeats} --threads {args.threads}`  ",
            f"Machine: {os.cpu_count()} cores, no GPU, torch {torch.__version__}, "
            f"{platform.python_implementation()} {platform.python_version()}; load average "
            f"{load:.1f} at the start (shared machine)  ",
            f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC  ",
            f"Models: tiny `s` {', '.join(models)}, fp32, sdpa; "
            "8 conversations with a 160x210 screenshot each; greedy, "
            f"{args.tokens} new tokens per conversation; {args.repeats} interleaved runs of each "
            "mode. "
            "Tokens per CPU-second (this process's CPU time) are less sensitive to other jobs.",
            "",
            *lines,
            END,
        ]
    )
    write_section(section, START, END)


if __name__ == "__main__":
    main()

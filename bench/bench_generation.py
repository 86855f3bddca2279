"""Throughput of batched vs one-by-one generation on the tiny `s` Qwen2.5-VL checkpoint.

Eight conversations, each a 160x210 screenshot and a short instruction; greedy decoding of
a fixed number of new tokens (EOS disabled so every row decodes the same count). Prints the
figures and writes them to its own section of docs/benchmarks.md.

    .venv/bin/python bench/bench_generation.py [--tokens 32] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from pathlib import Path

from PIL import Image

from pixelpilot.vlm import Conversation, SamplingParams
from pixelpilot.vlm.hf import HFVLM
from pixelpilot.vlm.tiny import build_tiny

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
START, END = "<!-- bench_generation:start -->", "<!-- bench_generation:end -->"


def conversations(k: int = 8) -> list[Conversation]:
    colors = ["white", "red", "green", "blue", "gray", "navy", "teal", "olive"]
    return [
        Conversation.user(
            f"Click the {c} button, then type hello {i}.", [Image.new("RGB", (210, 160), c)]
        )
        for i, c in enumerate(colors[:k])
    ]


def run(vlm: HFVLM, convs: list[Conversation], tokens: int, batched: bool) -> float:
    """Generated tokens per second."""
    params = SamplingParams(max_new_tokens=tokens)
    start = time.perf_counter()
    if batched:
        gens = vlm.generate(convs, params)
    else:
        gens = [g for c in convs for g in vlm.generate([c], params)]
    elapsed = time.perf_counter() - start
    return sum(len(g.token_ids or ()) for g in gens) / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    import torch

    vlm = HFVLM(build_tiny(None, "qwen2_5_vl", "s", 0), batch_size=8)
    vlm.model.generation_config.eos_token_id = None  # decode exactly --tokens per row
    vlm._eos_ids = lambda: []  # type: ignore[method-assign]
    convs = conversations()
    run(vlm, convs[:2], 4, True)  # warm-up
    single = [run(vlm, convs, args.tokens, False) for _ in range(args.repeats)]
    batched = [run(vlm, convs, args.tokens, True) for _ in range(args.repeats)]
    s, b = statistics.median(single), statistics.median(batched)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"- one-by-one: {s:.0f} tokens/s (runs: {', '.join(f'{x:.0f}' for x in single)})",
        f"- batched (8): {b:.0f} tokens/s (runs: {', '.join(f'{x:.0f}' for x in batched)})",
        f"- speed-up: {b / s:.2f}x",
    ]
    print("\n".join(lines))
    if args.no_write:
        return
    section = "\n".join(
        [
            START,
            "## Generation throughput (vlm)",
            "",
            f"Command: `.venv/bin/python bench/bench_generation.py --tokens {args.tokens} "
            f"--repeats {args.repeats}`  ",
            f"Machine: {os.cpu_count()} cores, no GPU, torch {torch.__version__}, "
            f"{platform.python_implementation()} {platform.python_version()}; load average "
            f"{load:.1f} at the start (shared machine)  ",
            f"Date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC  ",
            f"Model: tiny `s` Qwen2.5-VL ({sum(p.numel() for p in vlm.model.parameters()):,} "
            f"parameters, fp32, sdpa); 8 conversations with a 160x210 screenshot each; greedy, "
            f"{args.tokens} new tokens per conversation; median of {args.repeats} runs.",
            "",
            *lines,
            END,
        ]
    )
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


if __name__ == "__main__":
    main()

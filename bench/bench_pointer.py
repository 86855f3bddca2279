"""Cost of pointer-guided coordinates (``pixelpilot.vlm.pointer``) per answer.

The bundled model answers synthetic 160x210 click screens one at a time (greedy, at most 40
new tokens), once plainly and once with ``pointer_weight`` 20: the guide adds a forward pass
over the prompt and a logits processor on the answer's tokens. Writes its section of
``docs/benchmarks.md``.

    .venv/bin/python bench/bench_pointer.py [--screens 24] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from benchdoc import markers, write_section

from pixelpilot.agent import factory
from pixelpilot.agent.policy import VLMPolicy
from pixelpilot.envs.base import Observation
from pixelpilot.train.synthetic import render
from pixelpilot.vlm import SamplingParams
from pixelpilot.vlm.hf import HFVLM

START, END = markers("bench_pointer")
WEIGHT = 20.0


def answer_times(vlm: HFVLM, screens: int) -> list[float]:
    params = SamplingParams(max_new_tokens=40)
    out = []
    for i in range(screens):
        image, sample = render(7, i)
        policy = VLMPolicy(vlm)
        policy.reset(sample.instruction)
        conv = policy.conversation(Observation(image, sample.instruction))
        t0 = time.perf_counter()
        vlm.generate([conv], params)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--screens", type=int, default=24)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    folder = factory.default_model_path()
    if folder is None:
        raise SystemExit("the bundled model is missing")
    rows = {}
    for weight in (0.0, WEIGHT):
        vlm = HFVLM(folder, pointer_weight=weight)
        answer_times(vlm, 2)  # warm-up
        times = answer_times(vlm, args.screens)
        rows[weight] = statistics.median(times) * 1000
        print(f"pointer_weight {weight:g}: {rows[weight]:.1f} ms per answer (median)")
    extra = rows[WEIGHT] - rows[0.0]
    section = "\n".join([
        START,
        "## Pointer-guided coordinates",
        "",
        "`.venv/bin/python bench/bench_pointer.py`: the bundled model answers "
        f"{args.screens} synthetic 160x210 click screens one at a time (greedy, at most 40 "
        "new tokens, one torch thread), plainly and with `pointer_weight` "
        f"{WEIGHT:g}. Median wall time per answer:",
        "",
        "| decoding | ms per answer |",
        "|---|---|",
        f"| plain | {rows[0.0]:.1f} |",
        f"| pointer-guided | {rows[WEIGHT]:.1f} (+{extra:.1f}) |",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}.",
        END,
    ])  # fmt: skip
    if not args.no_write:
        write_section(section, START, END)


if __name__ == "__main__":
    main()

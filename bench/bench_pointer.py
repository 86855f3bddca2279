"""Cost of pointer-guided coordinates (``pixelpilot.vlm.pointer``) and well-formed points
(``pixelpilot.vlm.points``) per answer.

The bundled model answers synthetic 160x210 click screens one at a time (greedy, at most 40
new tokens), plainly, with ``pointer_weight`` 20 (the guide adds a forward pass over the
prompt and a logits processor on the answer's tokens), with ``well_formed_points`` (a logits
processor that masks tokens inside a point) and with both. Writes its section of
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


ARMS = ((0.0, False), (WEIGHT, False), (0.0, True), (WEIGHT, True))  # (weight, points)


def answer_times(vlms: dict, screens: int) -> dict:
    """Seconds per answer of each arm; the arms take turns on every screen, so a slow spell of
    the machine falls on all of them alike."""
    params = SamplingParams(max_new_tokens=40)
    out: dict = {arm: [] for arm in vlms}
    for i in range(screens):
        image, sample = render(7, i)
        for arm, vlm in vlms.items():
            policy = VLMPolicy(vlm)
            policy.reset(sample.instruction)
            conv = policy.conversation(Observation(image, sample.instruction))
            t0 = time.perf_counter()
            vlm.generate([conv], params)
            out[arm].append(time.perf_counter() - t0)
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
    vlms = {arm: HFVLM(folder, pointer_weight=arm[0], well_formed_points=arm[1]) for arm in ARMS}
    answer_times(vlms, 2)  # warm-up
    times = answer_times(vlms, args.screens)
    rows = {arm: statistics.median(t) * 1000 for arm, t in times.items()}
    for (weight, points), ms in rows.items():
        print(f"pointer_weight {weight:g}, well_formed_points {points}: "
              f"{ms:.1f} ms per answer (median)")  # fmt: skip
    plain = rows[0.0, False]

    def row(name: str, key: tuple[float, bool]) -> str:
        return f"| {name} | {rows[key]:.1f} (+{rows[key] - plain:.1f}) |"

    section = "\n".join([
        START,
        "## Pointer-guided coordinates and well-formed points",
        "",
        f"`.venv/bin/python bench/bench_pointer.py --screens {args.screens}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
        f"{os.getloadavg()[0]:.1f}: the bundled model answers "
        f"{args.screens} synthetic 160x210 click screens one at a time (greedy, at most 40 "
        "new tokens, one torch thread), plainly, with `pointer_weight` "
        f"{WEIGHT:g}, with `well_formed_points` (`pixelpilot.vlm.points`) and with both, the "
        "four taking turns on each screen. Median wall time per answer:",
        "",
        "| decoding | ms per answer |",
        "|---|---|",
        f"| plain | {plain:.1f} |",
        row("pointer-guided", (WEIGHT, False)),
        row("well-formed points", (0.0, True)),
        row("both", (WEIGHT, True)),
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}.",
        END,
    ])  # fmt: skip
    if not args.no_write:
        write_section(section, START, END)


if __name__ == "__main__":
    main()

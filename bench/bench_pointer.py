"""Cost of the decoding aids per answer: pointer-guided coordinates (``pixelpilot.vlm.pointer``),
well-formed points (``pixelpilot.vlm.points``), quoted typing (``pixelpilot.vlm.quoted``) and
well-formed actions (``pixelpilot.vlm.wellformed``).

The bundled model answers synthetic 160x210 screens one at a time (greedy, at most 40 new
tokens): click screens, and typing screens (the second step of a typing episode, the field
clicked, where the answer is a ``type``). Each screen is answered plainly, with
``pointer_weight`` 20 (the guide adds a forward pass over the prompt and a logits processor on
the answer's tokens), with ``well_formed_points`` (a mask inside a point), with
``quoted_typing`` (a mask inside a type's content), with ``well_formed_actions`` (a mask on the
call's structure) and with all four. Writes its section of ``docs/benchmarks.md``.

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
ARMS = {  # name: the HFVLM decoding options
    "plain": {},
    "pointer-guided": {"pointer_weight": WEIGHT},
    "well-formed points": {"well_formed_points": True},
    "quoted typing": {"quoted_typing": True},
    "well-formed actions": {"well_formed_actions": True},
    "all four": {
        "pointer_weight": WEIGHT, "well_formed_points": True, "quoted_typing": True,
        "well_formed_actions": True,
    },
}  # fmt: skip
KINDS = {"click screens": None, "typing screens": ("type",)}  # render()'s kinds


def answer_times(vlms: dict, screens: int) -> dict:
    """Seconds per answer of each (screen kind, arm); the arms take turns on every screen, so
    a slow spell of the machine falls on all of them alike."""
    params = SamplingParams(max_new_tokens=40)
    out: dict = {(kind, arm): [] for kind in KINDS for arm in vlms}
    for i in range(screens):
        for kind, kinds in KINDS.items():
            image, sample = render(7, i, kinds) if kinds else render(7, i)
            for arm, vlm in vlms.items():
                policy = VLMPolicy(vlm)
                policy.reset(sample.instruction)
                if kinds:  # the field is clicked: the answer due is the typing
                    x, y = sample.point
                    policy.remember(image, f"Action: click(start_box='({x},{y})')")
                conv = policy.conversation(Observation(image, sample.instruction))
                t0 = time.perf_counter()
                vlm.generate([conv], params)
                out[kind, arm].append(time.perf_counter() - t0)
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
    off = {"pointer_weight": 0.0, "well_formed_points": False, "quoted_typing": False,
           "well_formed_actions": False}  # fmt: skip
    vlms = {arm: HFVLM(folder, **(off | kw)) for arm, kw in ARMS.items()}
    answer_times(vlms, 2)  # warm-up
    times = answer_times(vlms, args.screens)
    ms = {key: statistics.median(t) * 1000 for key, t in times.items()}
    lines = []
    for arm in ARMS:
        cells = []
        for kind in KINDS:
            extra = ms[kind, arm] - ms[kind, "plain"]
            cells.append(f"{ms[kind, arm]:.1f}" + (f" ({extra:+.1f})" if arm != "plain" else ""))
            print(f"{kind}, {arm}: {ms[kind, arm]:.1f} ms per answer (median)")
        lines.append(f"| {arm} | {' | '.join(cells)} |")
    section = "\n".join([
        START,
        "## Decoding aids: pointer-guided coordinates, well-formed points, quoted typing, "
        "well-formed actions",
        "",
        f"`.venv/bin/python bench/bench_pointer.py --screens {args.screens}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average "
        f"{os.getloadavg()[0]:.1f}: the bundled model answers "
        f"{args.screens} synthetic 160x210 click screens and as many typing screens (the "
        "field clicked, a `type` due) one at a time (greedy, at most 40 new tokens, one torch "
        f"thread), plainly, with `pointer_weight` {WEIGHT:g}, with `well_formed_points`, with "
        "`quoted_typing`, with `well_formed_actions` and with all four, the arms taking turns "
        "on each screen. Median wall "
        "time per answer, in ms (the difference from plain decoding in brackets):",
        "",
        "| decoding | " + " | ".join(KINDS) + " |",
        "|---|---|---|",
        *lines,
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}.",
        END,
    ])  # fmt: skip
    if not args.no_write:
        write_section(section, START, END)


if __name__ == "__main__":
    main()

"""Online GRPO: seconds per optimizer step with rollouts in the trainer process vs 1 and 2
rollout workers (the evaluation worker pool).

The tiny kimi_k25 ``xs`` checkpoint (random weights: its answers rarely parse, so most episodes
run to ``--episode-steps``), 2 MiniWoB tasks (click-test, click-button), G = 4 episodes per task
and seed, at most 2 steps per episode, 16 new tokens per answer, one torch thread per process.
Each setting runs ``train grpo --online`` in a fresh process for ``--steps`` steps; the first
step (worker start-up, model load in the workers, Chromium launch) is reported apart and the
rest averaged. The load average is printed before and after each run: the machine is shared,
and with 2 cores the workers compete with the trainer and the browsers for them.

    .venv/bin/python bench/bench_grpo_online.py [--steps 4] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchdoc import markers, write_section  # noqa: E402

TASKS = "miniwob/click-test,miniwob/click-button"
GROUP, EPISODE_STEPS, NEW_TOKENS = 4, 2, 16


def run(model: str, out: Path, workers: int, steps: int) -> dict[str, Any]:
    """One ``train grpo --online`` run in its own process; its per-step seconds."""
    cmd = [sys.executable, "-m", "pixelpilot.cli", "train", "grpo", "--online", TASKS,
           "--model", model, "--out", str(out), "--group", str(GROUP), "--batch-size", "2",
           "--episode-steps", str(EPISODE_STEPS), "--max-new-tokens", str(NEW_TOKENS),
           "--max-steps", str(steps), "--lr", "1e-4", "--rollout-workers", str(workers),
           "--no-progress", "--json"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    before = os.getloadavg()[0]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    after = os.getloadavg()[0]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss" in r]
    seconds = [sum(r["seconds"].values()) for r in rows]
    return {
        "workers": workers,
        "first": seconds[0],
        "rest": statistics.fmean(seconds[1:]),
        "generate": statistics.fmean(r["seconds"]["generate"] for r in rows[1:]),
        "episodes": rows[-1]["episodes"],
        "load": (before, after),
    }


def section(results: list[dict[str, Any]], steps: int) -> str:
    start, end = markers("bench_grpo_online")
    base = results[0]["rest"]
    lines = [
        start,
        "## Online GRPO step: rollouts in the trainer vs worker processes "
        "(`bench/bench_grpo_online.py`)",
        "",
        f"Tiny kimi_k25 xs (random weights), {TASKS.replace(',', ' and ')}, G = {GROUP} "
        f"episodes per task and seed (8 episodes per step), at most {EPISODE_STEPS} steps per "
        f"episode, {NEW_TOKENS} new tokens, one torch thread per process, {steps} steps per run "
        f"(the first apart: it starts the workers and Chromium). torch CPU, "
        f"{platform.machine()} with {os.cpu_count()} cores, {dt.date.today()}; the machine was "
        "shared with a training job, so the load average is given per run.",
        "",
        f"    .venv/bin/python bench/bench_grpo_online.py --steps {steps}",
        "",
        "| rollouts | first step s | later steps s/step | of which rollouts s | vs in-process | "
        "load average |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        name = "in the trainer" if r["workers"] == 0 else f"{r['workers']} worker(s)"
        lines.append(
            f"| {name} | {r['first']:.1f} | {r['rest']:.1f} | {r['generate']:.1f} | "
            f"{base / r['rest']:.2f}x | {r['load'][0]:.1f} -> {r['load'][1]:.1f} |"
        )
    lines += [
        "",
        '"of which rollouts" is the step\'s `generate` phase (writing the weights file, the '
        "episodes, collecting the conversations); the rest is the update. The trainer waits for "
        "every rollout of a step (GRPO is on-policy), so workers can only shorten the rollout "
        "part, and only with cores to spare: here two cores are shared by the trainer, the "
        "workers, their Chromium processes and a background training job, and a tiny model's "
        "answer takes milliseconds, so the episodes' time is mostly the browser's. The pool "
        "exists for machines with cores (or GPUs, or Ray nodes) to spare and for models whose "
        "generation dominates; the first step also pays for starting the workers and loading "
        "the model in each.",
        "",
        end,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--workers", default="0,1,2")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    from pixelpilot.vlm.tiny import build_tiny

    model = str(build_tiny(arch="kimi_k25", size="xs"))
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-grpo-online-") as tmp:
        for n in (int(w) for w in args.workers.split(",")):
            r = run(model, Path(tmp) / f"w{n}", n, args.steps)
            print(json.dumps(r), flush=True)
            results.append(r)
    text = section(results, args.steps)
    print(text)
    if not args.no_write:
        write_section(text, *markers("bench_grpo_online"))


if __name__ == "__main__":
    main()

"""Evaluation speed: online episodes per minute (scripted experts, real Chromium, 10 MiniWoB
tasks, K = 1, 2, 4 workers) and offline samples per second with a tiny local model.

Usage: .venv/bin/python bench/bench_eval.py [--episodes 3] [--workers 1,2,4] [--samples 32]
Prints the figures and rewrites its own section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from benchdoc import markers, write_section

ROOT = Path(__file__).resolve().parents[1]
START, END = markers("bench_eval")
TASKS = [
    "click-test", "click-test-2", "click-button", "click-button-sequence", "click-link",
    "click-dialog", "click-dialog-2", "click-tab", "focus-text", "enter-text",
]  # fmt: skip


def online(episodes: int, workers: list[int]) -> list[dict]:
    from pixelpilot.eval.online import OnlineConfig, evaluate_online

    rows = []
    tasks = ",".join(f"miniwob/{t}" for t in TASKS)
    for k in workers:
        with tempfile.TemporaryDirectory() as out:
            cfg = OnlineConfig(tasks, "expert", episodes=episodes, seed=0, workers=k, out=out)
            start = time.perf_counter()
            report = evaluate_online(cfg)
            wall = time.perf_counter() - start
        busy = sum(r["seconds"] for r in report["results"]) / k  # inside episodes, per worker
        rows.append(
            {
                "workers": k,
                "episodes": report["episodes"],
                "errors": report["errors"],
                "seconds": wall,
                "episodes_per_minute": report["episodes"] / wall * 60,
                "busy_episodes_per_minute": report["episodes"] / busy * 60,
                "mean_success": report["mean_success"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def offline(samples: int, batch_sizes: list[int]) -> list[dict]:
    from PIL import Image

    from pixelpilot.eval.offline import OfflineConfig, evaluate_offline
    from pixelpilot.vlm import load
    from pixelpilot.vlm.tiny import build_tiny

    vlm = load(str(build_tiny()))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = []
        for i in range(samples):
            Image.new("RGB", (640, 480), (i * 7 % 255, 90, 120)).save(f"{tmp}/{i}.png")
            data.append(
                {
                    "img_filename": f"{i}.png",
                    "instruction": f"click item {i}",
                    "bbox": [100 + i, 100, 60, 30],
                }
            )
        Path(tmp, "data.json").write_text(json.dumps(data))
        warm = OfflineConfig(f"{tmp}/data.json", "screenspot", model="tiny", limit=8, batch_size=8)
        evaluate_offline(warm, vlm=vlm)  # first calls pay for lazy initialisation
        for bs in batch_sizes:
            cfg = OfflineConfig(
                f"{tmp}/data.json", "screenspot", model="tiny", batch_size=bs, max_new_tokens=32
            )
            start = time.perf_counter()
            report = evaluate_offline(cfg, vlm=vlm)
            wall = time.perf_counter() - start
            rows.append(
                {
                    "batch_size": bs,
                    "samples": report["samples"],
                    "seconds": wall,
                    "samples_per_second": report["samples"] / wall,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def write_doc(cmd: str, on: list[dict], off: list[dict], episodes: int) -> None:
    lines = [
        START,
        "## Evaluation (`bench/bench_eval.py`)",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {os.cpu_count()} cores, no GPU, {platform.python_implementation()} "
        f"{platform.python_version()}, shared with other jobs; "
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"load average at the end: {os.getloadavg()[0]:.1f}",
        "",
        f"Online: scripted experts on 10 MiniWoB tasks x {episodes} episodes, real headless "
        "Chromium, local process pool (each worker: its own Chromium).",
        "",
        "episodes / min counts the whole command (spawning workers, launching Chromium); "
        "'busy' divides by the time workers spent inside episodes only.",
        "",
        "| workers K | episodes | errors | wall s | episodes / min | busy episodes / min "
        "| mean success |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['workers']} | {r['episodes']} | {r['errors']} | {r['seconds']:.1f} | "
        f"{r['episodes_per_minute']:.1f} | {r['busy_episodes_per_minute']:.1f} | "
        f"{r['mean_success']:.2f} |"
        for r in on
    ]
    lines += [
        "",
        "Offline: tiny random-weight Qwen2.5-VL (`build_tiny()`), 640x480 ScreenSpot-style "
        "samples, greedy, 32 new tokens (prompt building, generation, parsing, scoring).",
        "",
        "| batch size | samples | wall s | samples / s |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['batch_size']} | {r['samples']} | {r['seconds']:.1f} | "
        f"{r['samples_per_second']:.2f} |"
        for r in off
    ]
    lines.append(END)
    section = "\n".join(lines)
    write_section(section, START, END)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=3, help="episodes per task (online)")
    ap.add_argument("--workers", default="1,2,4", help="worker counts to measure")
    ap.add_argument("--samples", type=int, default=32, help="offline samples")
    ap.add_argument("--batch-sizes", default="1,8", help="offline batch sizes")
    ap.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args()
    on = online(args.episodes, [int(k) for k in args.workers.split(",")])
    off = offline(args.samples, [int(b) for b in args.batch_sizes.split(",")])
    if not args.no_doc:
        write_doc("python bench/bench_eval.py " + " ".join(sys.argv[1:]), on, off, args.episodes)


if __name__ == "__main__":
    main()

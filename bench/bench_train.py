"""SFT throughput and peak memory: tiny Qwen2.5-VL `s` and `m` models on recorded MiniWoB expert
steps, one process and two processes (`accelerate launch`, gloo on CPU), the same global batch.

Usage: .venv/bin/python bench/bench_train.py [--sizes s,m] [--steps 8] [--batch 4]
Records expert episodes (real Chromium), runs `pixelpilot train sft --json` for each setting in
a fresh process, prints the figures and rewrites its own section of docs/benchmarks.md.
samples/s is the trainer's own figure (optimizer steps only, no model loading or export);
peak memory is the largest resident set of any process of the run (`ru_maxrss` of children).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchdoc import markers, write_section

ROOT = Path(__file__).resolve().parents[1]
START, END = markers("bench_train")
TASKS = "miniwob/click-test,miniwob/click-button,miniwob/click-link,miniwob/click-dialog"


def record(out: Path, episodes: int) -> None:
    cmd = [sys.executable, "-m", "pixelpilot.cli", "record", TASKS, "--expert",
           "--episodes", str(episodes), "--seed", "0", "--out", str(out), "--json"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Runs one command in a fresh interpreter and reports the largest child's peak RSS (KiB).
MEASURE = (
    "import resource, subprocess, sys, json\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(json.dumps({'rc': done.returncode, 'out': done.stdout, 'err': done.stderr[-3000:],"
    " 'peak_kib': peak}))\n"
)


def run_sft(data: Path, model: Path, out: Path, procs: int, batch: int, steps: int) -> dict:
    args = ["train", "sft", str(data), "--model", str(model), "--out", str(out), "--json",
            "--batch-size", str(batch // procs), "--max-steps", str(steps), "--lr", "1e-4",
            "--no-progress"]  # fmt: skip
    if procs == 1:
        cmd = [sys.executable, "-m", "pixelpilot.cli", *args]
    else:
        accelerate = str(Path(sys.executable).parent / "accelerate")
        cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", str(procs),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), "-m", "pixelpilot.cli", *args]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - start
    result = json.loads(done.stdout)
    if result["rc"] != 0:
        raise SystemExit(f"train sft failed:\n{result['err']}")
    line = next(ln for ln in result["out"].splitlines() if ln.startswith("{"))
    summary = json.loads(line)
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss" in r]
    steady = rows[1:] or rows  # the first step pays for preprocessing and warm-up
    sps = sum(r["samples"] for r in steady) / sum(sum(r["seconds"].values()) for r in steady)
    phases: dict[str, float] = {}
    for r in steady:
        for k, v in r["seconds"].items():
            phases[k] = phases.get(k, 0.0) + v / len(steady)
    return {"procs": procs, "samples_per_second": summary["samples_per_second"],
            "steady_samples_per_second": sps, "peak_mib": result["peak_kib"] / 1024,
            "wall": wall, "phases": phases, "loss_first": summary["loss_first"],
            "loss_last": summary["loss_last"]}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="s,m")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4, help="global batch (split over processes)")
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args()
    from pixelpilot.vlm.tiny import build_tiny, count_parameters

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        record(data, args.episodes)
        for size in args.sizes.split(","):
            model = build_tiny(arch="qwen2_5_vl", size=size)
            params = count_parameters(model)
            for procs in (1, 2):
                out = Path(tmp) / f"run-{size}-{procs}"
                row = run_sft(data, model, out, procs, args.batch, args.steps)
                row |= {"size": size, "parameters": params}
                shutil.rmtree(out, ignore_errors=True)
                print(json.dumps(row), flush=True)
                rows.append(row)
    if not args.no_doc:
        write_section(render(rows, args), START, END)


def render(rows: list[dict], args: argparse.Namespace) -> str:
    load = os.getloadavg()[0]
    cmd = (
        f"python bench/bench_train.py --sizes {args.sizes} --steps {args.steps} "
        f"--batch {args.batch}"
    )
    lines = [
        START,
        "## SFT training throughput (`bench/bench_train.py`)",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {os.cpu_count()} cores, no GPU, CPython {platform.python_version()}, shared "
        f"with other jobs; date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load "
        f"average at the end: {load:.1f}",
        "",
        f"Tiny random-init Qwen2.5-VL checkpoints (`build_tiny`), full fine-tuning in float32, "
        f"{args.steps} optimizer steps of a global batch of {args.batch} expert steps of 4 "
        "MiniWoB tasks (160x210 screenshots); two processes split each global batch "
        "(`accelerate launch --multi_gpu --num_processes 2`, gloo on CPU). samples/s: the "
        "trainer's figure over all steps; steady: without the first step (prompt "
        "preprocessing, allocator warm-up). Peak RSS: the largest process of the run.",
        "",
        "| model | parameters | processes | samples/s | steady samples/s | peak RSS MiB | "
        "forward s | backward s | optimizer s | loss first -> last |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = r["phases"]
        lines.append(
            f"| {r['size']} | {r['parameters'] / 1e6:.1f}M | {r['procs']} | "
            f"{r['samples_per_second']:.2f} | {r['steady_samples_per_second']:.2f} | "
            f"{r['peak_mib']:.0f} | {p.get('forward', 0):.3f} | {p.get('backward', 0):.3f} | "
            f"{p.get('optimizer', 0):.3f} | {r['loss_first']:.3f} -> {r['loss_last']:.3f} |"
        )
    lines += ["", "Phase times are per optimizer step, averaged over the steady steps.", END]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

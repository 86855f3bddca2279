"""SFT throughput and peak memory: tiny Qwen2.5-VL `s` and `m` models on recorded MiniWoB expert
steps, one process and two processes (`accelerate launch`, gloo on CPU), the same global batch.

Usage: .venv/bin/python bench/bench_train.py [--sizes s,m] [--steps 8] [--batch 4]
       .venv/bin/python bench/bench_train.py --zero --sizes m   (2 processes, ZeRO-1 off/on)
       .venv/bin/python bench/bench_train.py --curve RUN_DIR --curve-command "..."  (plot a run)
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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchdoc import markers, write_section

from pixelpilot.train.distributed import free_port

ROOT = Path(__file__).resolve().parents[1]
START, END = markers("bench_train")
TASKS = "miniwob/click-test,miniwob/click-button,miniwob/click-link,miniwob/click-dialog"


def record(out: Path, episodes: int) -> None:
    cmd = [sys.executable, "-m", "pixelpilot.cli", "record", TASKS, "--expert",
           "--episodes", str(episodes), "--seed", "0", "--out", str(out), "--json"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)


# Runs one command in a fresh interpreter and reports the largest child's peak RSS (KiB).
MEASURE = (
    "import resource, subprocess, sys, json\n"
    "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
    "print(json.dumps({'rc': done.returncode, 'out': done.stdout, 'err': done.stderr[-3000:],"
    " 'peak_kib': peak}))\n"
)


def run_sft(
    data: Path, model: Path, out: Path, procs: int, batch: int, steps: int, zero: int = 0
) -> dict:
    args = ["train", "sft", str(data), "--model", str(model), "--out", str(out), "--json",
            "--batch-size", str(batch // procs), "--max-steps", str(steps), "--lr", "1e-4",
            "--no-progress", "--zero-stage", str(zero)]  # fmt: skip
    if procs == 1:
        cmd = [sys.executable, "-m", "pixelpilot.cli", *args]
    else:
        accelerate = str(Path(sys.executable).parent / "accelerate")
        cmd = [accelerate, "launch", "--multi_gpu", "--num_processes", str(procs),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(free_port()), "-m", "pixelpilot.cli", *args]  # fmt: skip
    start, load_before = time.perf_counter(), os.getloadavg()[0]
    env = os.environ | {"OMP_NUM_THREADS": "1"}  # as torchrun sets it for each rank
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - start
    load = (load_before + os.getloadavg()[0]) / 2
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
            "wall": wall, "load": load, "phases": phases, "loss_first": summary["loss_first"],
            "loss_last": summary["loss_last"], "zero": zero,
            "rank0_step_peak_mib": rows[-1].get("peak_rss_mib", float("nan")),
            "optimizer_state_mib": rows[-1].get("optimizer_state_mib", float("nan"))}  # fmt: skip


def plot_curve(run: Path, command: str) -> None:
    """Plot a run's ``metrics.jsonl`` (training loss, validation loss and step success) to
    docs/images/sft-curve.png and put it in docs/training.md between the curve markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    vals = [r for r in rows if "validation" in r]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    ax.plot([r["step"] for r in steps], [r["loss"] for r in steps], label="train loss")
    ax.plot([r["step"] for r in vals], [r["validation"]["val_loss"] for r in vals], "o-",
            label="validation loss")  # fmt: skip
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("answer-token NLL")
    ax.set_yscale("log")
    right = ax.twinx()
    right.plot([r["step"] for r in vals], [r["validation"]["val_type_accuracy"] for r in vals],
               "s--", color="tab:green", label="val type accuracy")  # fmt: skip
    right.plot([r["step"] for r in vals], [r["validation"]["val_step_success"] for r in vals],
               "^--", color="tab:red", label="val step success")  # fmt: skip
    right.set_ylim(-0.02, 1.02)
    right.set_ylabel("fraction of validation steps")
    lines = ax.get_legend_handles_labels()
    more = right.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="center right", fontsize=8)
    fig.tight_layout()
    image = ROOT / "docs" / "images" / "sft-curve.png"
    image.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(image)
    last = vals[-1]["validation"] if vals else {}
    body = [
        "<!-- curve:start -->",
        "![SFT curve](images/sft-curve.png)",
        "",
        f"Command: `{command}`; {len(steps)} steps, loss {steps[0]['loss']:.2f} -> "
        f"{steps[-1]['loss']:.2f}; at the end on the held-out episodes: validation loss "
        f"{last.get('val_loss', float('nan')):.2f}, type accuracy "
        f"{last.get('val_type_accuracy', float('nan')):.2f}, step success "
        f"{last.get('val_step_success', float('nan')):.2f}. Plotted by "
        f"`python bench/bench_train.py --curve RUN_DIR --curve-command '...'`.",
        "<!-- curve:end -->",
    ]
    doc = ROOT / "docs" / "training.md"
    write_section("\n".join(body) + "\n", "<!-- curve:start -->", "<!-- curve:end -->", doc)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--curve", help="plot this run folder's metrics into docs/training.md")
    ap.add_argument("--curve-command", default="", help="the command that made the run")
    ap.add_argument("--sizes", default="s,m")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4, help="global batch (split over processes)")
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--zero", action="store_true", help="2 processes, --zero-stage 0 and 1")
    args = ap.parse_args()
    if args.curve:
        plot_curve(Path(args.curve), args.curve_command)
        return
    from pixelpilot.vlm.tiny import build_tiny, count_parameters

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        record(data, args.episodes)
        for size in args.sizes.split(","):
            model = build_tiny(arch="qwen2_5_vl", size=size)
            params = count_parameters(model)
            settings = [(2, 0), (2, 1)] if args.zero else [(1, 0), (2, 0)]
            for procs, zero in settings:
                out = Path(tmp) / f"run-{size}-{procs}-{zero}"
                row = run_sft(data, model, out, procs, args.batch, args.steps, zero)
                row |= {"size": size, "parameters": params}
                shutil.rmtree(out, ignore_errors=True)
                print(json.dumps(row), flush=True)
                rows.append(row)
    if not args.no_doc and args.zero:
        write_section(render_zero(rows, args), *markers("bench_train_zero"))
    elif not args.no_doc:
        write_section(render(rows, args), START, END)


def render_zero(rows: list[dict], args: argparse.Namespace) -> str:
    start, end = markers("bench_train_zero")
    cmd = f"python bench/bench_train.py --zero --sizes {args.sizes} --steps {args.steps}"
    lines = [
        start,
        "## Memory per process with ZeRO-1 (`bench/bench_train.py --zero`)",
        "",
        f"Command: `{cmd} --batch {args.batch}`  ",
        f"Machine: {os.cpu_count()} cores, no GPU, CPython {platform.python_version()}, shared "
        f"with other jobs; date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; load "
        f"average at the end: {os.getloadavg()[0]:.1f}",
        "",
        "Two processes (`accelerate launch`, gloo), full fine-tuning in float32, the same data "
        f"and global batch as above, {args.steps} optimizer steps, `--zero-stage 0` and `1`. "
        "AdamW state: what rank 0 holds after the last step (`optimizer_state_mib` in "
        "metrics.jsonl). Rank 0 peak RSS over the steps: `peak_rss_mib` of the last step, "
        "before the final checkpoint. Run peak RSS: the largest process over the whole run, "
        "the final checkpoint (rank 0 gathers the whole optimizer state to save it) and the "
        "export included.",
        "",
        "| model | parameters | zero stage | AdamW state MiB (rank 0) | rank 0 peak RSS over "
        "steps MiB | run peak RSS MiB | steady samples/s | optimizer s | loss first -> last "
        "| load |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['parameters'] / 1e6:.1f}M | {r['zero']} | "
            f"{r['optimizer_state_mib']:.1f} | {r['rank0_step_peak_mib']:.0f} | "
            f"{r['peak_mib']:.0f} | {r['steady_samples_per_second']:.2f} | "
            f"{r['phases'].get('optimizer', 0):.3f} | {r['loss_first']:.3f} -> "
            f"{r['loss_last']:.3f} | {r['load']:.1f} |"
        )
    lines += [
        "",
        "ZeRO-1 halves the AdamW state each process holds (two processes); the resident set "
        "drops by about that much, within the allocator's run-to-run noise of a few tens of MiB. "
        "The weights, gradients and activations stay whole on every process (stage 1 shards "
        "only the optimizer state). Losses are equal; the extra cost is one broadcast of the "
        "parameters per optimizer step, inside `optimizer s`.",
        end,
    ]
    return "\n".join(lines) + "\n"


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
        "forward s | backward s | optimizer s | loss first -> last | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = r["phases"]
        lines.append(
            f"| {r['size']} | {r['parameters'] / 1e6:.1f}M | {r['procs']} | "
            f"{r['samples_per_second']:.2f} | {r['steady_samples_per_second']:.2f} | "
            f"{r['peak_mib']:.0f} | {p.get('forward', 0):.3f} | {p.get('backward', 0):.3f} | "
            f"{p.get('optimizer', 0):.3f} | {r['loss_first']:.3f} -> {r['loss_last']:.3f} | "
            f"{r['load']:.1f} |"
        )
    lines += [
        "",
        "Phase times are per optimizer step, averaged over the steady steps. load: the 1-minute "
        "load average at the start and end of each run, averaged. On this shared two-core "
        "machine the load (other jobs) changes the figures several-fold from run to run; "
        "compare rows only at similar load. Every process runs one intra-op thread "
        "(`OMP_NUM_THREADS=1`, what torchrun sets for each rank): on this oversubscribed "
        "machine the default two threads made one process about 6x slower (3 steps of the xs "
        "model: 9.4 s with one thread, 59.8 s with two, load average 24).",
        END,
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

"""Online evaluation of the bundled model with K local workers: each worker on its share of
the cores (``thread_share``, the default) against each worker on every core (what a worker
did before the split; here forced with ``OMP_NUM_THREADS`` = the core count).

The arms alternate, ``--repeats`` times, on the same tasks and seeds, so load from other jobs
falls on both alike. Writes its section of ``docs/benchmarks.md``.

    .venv/bin/python bench/bench_eval_threads.py [--workers 2] [--episodes 5] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

from benchdoc import markers, write_section

START, END = markers("bench_eval_threads")
TASKS = "miniwob/click-test,miniwob/click-button,miniwob/enter-text,miniwob/login-user"


def run(workers: int, episodes: int, threads: str | None) -> dict:
    from pixelpilot.eval.online import OnlineConfig, evaluate_online

    if threads is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = threads  # the spawned workers inherit it
    with tempfile.TemporaryDirectory() as out:
        cfg = OnlineConfig(TASKS, "default", episodes=episodes, seed=1_000_000,
                           workers=workers, max_steps=8, out=out)  # fmt: skip
        start = time.perf_counter()
        report = evaluate_online(cfg)
        wall = time.perf_counter() - start
    return {"episodes": report["episodes"], "errors": report["errors"], "seconds": wall,
            "steps": sum(r["steps"] for r in report["results"]),
            "mean_success": report["mean_success"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if os.environ.get("OMP_NUM_THREADS"):
        sys.exit("bench_eval_threads: unset OMP_NUM_THREADS (the benchmark sets it per arm)")
    cores = len(os.sched_getaffinity(0))
    arms = {"share": None, "every core": str(cores)}
    runs: dict[str, list[dict]] = {name: [] for name in arms}
    for _ in range(args.repeats):
        for name, threads in arms.items():
            runs[name].append(run(args.workers, args.episodes, threads))
            print(json.dumps({"arm": name, **runs[name][-1]}), flush=True)
    rows = []
    for name, rs in runs.items():
        seconds = statistics.median(r["seconds"] for r in rs)
        rows.append(f"| {name} | {rs[0]['episodes']} | {rs[0]['steps']} | "
                    f"{' / '.join(format(r['seconds'], '.1f') for r in rs)} | "
                    f"{rs[0]['steps'] / seconds:.2f} | {rs[0]['mean_success']:.2f} |")  # fmt: skip
    share = 1 if args.workers >= cores else cores // args.workers
    cmd = "python bench/bench_eval_threads.py " + " ".join(sys.argv[1:])
    section = "\n".join([
        START,
        "## Evaluation workers' threads (`bench/bench_eval_threads.py`)",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Machine: {cores} cores, no GPU, {platform.python_implementation()} "
        f"{platform.python_version()}; date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"load average at the end: {os.getloadavg()[0]:.1f}",
        "",
        f"The bundled model, `eval online` with {args.workers} local workers on "
        f"{TASKS.count(',') + 1} tasks x {args.episodes} held-out episodes (at most 8 steps). "
        f"share: each worker runs torch on {share} thread(s) (the default); every core: each "
        f"on {cores}. The arms alternate; wall seconds of each repeat, steps per second "
        "from their median.",
        "",
        "| workers' threads | episodes | steps | wall s | steps / s | mean success |",
        "|---|---|---|---|---|---|",
        *rows,
        END,
    ])  # fmt: skip
    print(section)
    if not args.no_write:
        write_section(section, START, END)


if __name__ == "__main__":
    main()

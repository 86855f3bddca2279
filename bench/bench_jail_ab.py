"""What the browser jail costs: the same MiniWoB measurement run alternately on the code of an
earlier revision (``--before``, e.g. the last one without the jail) and on this checkout, so
both see the same machine load.

    python bench/bench_jail_ab.py --before 8444ead~1 [--rounds 3] [--episodes 10]

The earlier revision is checked out into a temporary ``git worktree`` (removed afterwards) and
imported through ``PYTHONPATH``; both run with this virtualenv. Each run is a fresh process:
launch a ChromiumHost, reset ``miniwob/click-button`` ``--episodes`` times with
``reload=none`` and with ``reload=context`` (3 clicks per episode). Prints one JSON line per run
and the medians over rounds; writes no docs (docs/envs.md quotes the figures with this command).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Runs in a child process against whichever pixelpilot PYTHONPATH points at.
CHILD = r"""
import json, statistics, sys, time
from pixelpilot.envs import make
from pixelpilot.envs.chromium import ChromiumHost
from pixelpilot.tools import Click
reload, episodes = sys.argv[1], int(sys.argv[2])
t = time.perf_counter()
host = ChromiumHost()
launch = time.perf_counter() - t
env = make("miniwob/click-button", browser=host, reload=reload)
env.reset(seed=10_000)
resets, steps = [], []
for ep in range(episodes):
    t = time.perf_counter(); env.reset(seed=ep); resets.append(time.perf_counter() - t)
    for _ in range(3):
        t = time.perf_counter(); env.step(Click(80, 100)); steps.append(time.perf_counter() - t)
env.close(); host.close()
print(json.dumps({"launch_ms": launch * 1000, "reset_ms": statistics.median(resets) * 1000,
                  "step_ms": statistics.median(steps) * 1000}))
"""


def run(src: Path, reload: str, episodes: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src))
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, reload, str(episodes)],
        capture_output=True, text=True, env=env, cwd=tempfile.gettempdir(), timeout=900,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"run failed ({src}): {proc.stderr.strip().splitlines()[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git revision to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--episodes", type=int, default=10)
    args = ap.parse_args()
    rows: dict[tuple[str, str], list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="pixelpilot-ab-") as tmp:
        tree = Path(tmp) / "before"
        git = ["git", "-C", str(ROOT)]
        subprocess.run([*git, "worktree", "add", "-q", "--detach", str(tree), args.before],
                       check=True)  # fmt: skip
        try:
            for _ in range(args.rounds):
                for reload in ("none", "context"):
                    for name, src in (("before", tree / "src"), ("now", ROOT / "src")):
                        row = run(src, reload, args.episodes)
                        rows.setdefault((name, reload), []).append(row)
                        print(json.dumps({"code": name, "reload": reload, **row}), flush=True)
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(tree)], check=False)
    for (name, reload), runs in sorted(rows.items()):
        medians = {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}
        print(json.dumps({"code": name, "reload": reload, "median_of_rounds": medians}))
    print(f"load average at the end: {os.getloadavg()}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Speed of the MiniWoB env: median reset and step (action + screenshot), next to BrowserGym's
MiniWoB env on the same Chromium and the same task pages; and what the browser jail costs: the
launch of a jailed Chromium, and the ``browser`` env on a page served over HTTP on 127.0.0.1
(every request through the allow-list proxy).

    python bench/bench_envs.py [--episodes 20] [--steps 5] [--no-browsergym] [--no-doc]

BrowserGym runs in its own virtualenv (``bench/.venv-browsergym``, git-ignored) because
``browsergym-miniwob`` pins an older Playwright:

    python3 -m venv bench/.venv-browsergym
    bench/.venv-browsergym/bin/pip install browsergym-miniwob

Its browser launch is pointed at Debian Chromium (``executable_path``, our launch args) and its
``MINIWOB_URL`` at the pages bundled with the ``miniwob`` package. Prints the figures and
rewrites its own section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchdoc import markers, write_section

ROOT = Path(__file__).resolve().parents[1]
START, END = markers("bench_envs")
BG_PYTHON = ROOT / "bench" / ".venv-browsergym" / "bin" / "python"
TASKS = ["click-test", "click-button", "click-dialog", "click-link"]
NEUTRAL = (80, 100)  # a click that ends no episode in these tasks (for click-test it may)

# Runs inside the BrowserGym venv; prints one JSON line of timings.
BG_SCRIPT = r"""
import json, os, sys, time, statistics
from playwright.sync_api import BrowserType
CHROMIUM, ARGS = sys.argv[1], json.loads(sys.argv[2])
tasks, episodes, steps = sys.argv[3].split(","), int(sys.argv[4]), int(sys.argv[5])
_launch = BrowserType.launch
def launch(self, *a, **kw):  # Debian Chromium with our flags, nothing else changed
    kw["executable_path"] = CHROMIUM
    kw["args"] = list(kw.get("args") or []) + ARGS
    return _launch(self, *a, **kw)
BrowserType.launch = launch
import gymnasium as gym
import browsergym.miniwob  # registers browsergym/miniwob.*
from browsergym.core.action.highlevel import HighLevelActionSet
actions = HighLevelActionSet(subsets=["coord"], strict=False, multiaction=False)
out = {}
for task in tasks:
    env = gym.make(f"browsergym/miniwob.{task}", action_mapping=actions.to_python_code)
    resets, stepst = [], []
    for ep in range(episodes):
        t = time.perf_counter(); env.reset(seed=ep); resets.append(time.perf_counter() - t)
        for _ in range(steps):
            t = time.perf_counter(); env.step("mouse_click(80, 100)")
            stepst.append(time.perf_counter() - t)
    env.close()
    out[task] = {"reset_ms": statistics.median(resets) * 1000,
                 "step_ms": statistics.median(stepst) * 1000}
print(json.dumps(out))
"""


def time_episodes(env: Any, episodes: int, steps: int) -> tuple[list, list, list]:
    """Seconds of each reset and step (clicks on a neutral spot), and each step's observe ms."""
    from pixelpilot.tools import Click

    resets, stepst, shots = [], [], []
    for ep in range(episodes):
        t = time.perf_counter()
        env.reset(seed=ep)
        resets.append(time.perf_counter() - t)
        for _ in range(steps):
            t = time.perf_counter()
            env.step(Click(*NEUTRAL))
            stepst.append(time.perf_counter() - t)
            shots.append(env.timing_ms["observe"])
    return resets, stepst, shots


def ours(tasks: list[str], episodes: int, steps: int, reload: str = "none") -> dict:
    from pixelpilot.envs import make
    from pixelpilot.envs.chromium import ChromiumHost

    out = {}
    with ChromiumHost() as host:
        for task in tasks:
            with make(f"miniwob/{task}", browser=host, reload=reload) as env:
                env.reset(seed=10_000)  # warm-up: first page load
                resets, stepst, shots = time_episodes(env, episodes, steps)
            out[task] = {
                "reset_ms": statistics.median(resets) * 1000,
                "step_ms": statistics.median(stepst) * 1000,
                "observe_ms": statistics.median(shots),
            }
            print(json.dumps({"env": f"pixelpilot reload={reload}", "task": task, **out[task]}))
    return out


PAGE = b"""<!doctype html><title>bench</title><style>body{margin:0}</style>
<link rel="stylesheet" href="style.css"><img src="pixel.svg" width="40" height="40">
<button style="position:absolute;left:60px;top:80px">OK</button>"""
FILES = {
    "/": PAGE,
    "/style.css": b"button { font: 16px sans-serif; }",
    "/pixel.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="9" height="9"/></svg>',
}


def jail(launches: int, episodes: int, steps: int) -> dict:
    """Median launch of a jailed ChromiumHost, and reset/step of the ``browser`` env on a page
    (three requests) served on 127.0.0.1, each request through the proxy."""
    import http.server
    import threading

    from pixelpilot.envs.browser import BrowserEnv
    from pixelpilot.envs.chromium import ChromiumHost

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = FILES.get(self.path, b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    starts = []
    for _ in range(launches):
        t = time.perf_counter()
        host = ChromiumHost()
        starts.append(time.perf_counter() - t)
        host.close()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    with BrowserEnv(url, "bench", viewport=(160, 210)) as env:
        env.reset(seed=0)  # warm-up
        resets, stepst, _ = time_episodes(env, episodes, steps)
    httpd.shutdown()
    out = {
        "launch_ms": statistics.median(starts) * 1000,
        "browser_reset_ms": statistics.median(resets) * 1000,
        "browser_step_ms": statistics.median(stepst) * 1000,
    }
    print(json.dumps({"env": "jail", **out}))
    return out


def browsergym(tasks: list[str], episodes: int, steps: int) -> dict | str:
    """BrowserGym's figures, or the reason it could not run."""
    if not BG_PYTHON.exists():
        return f"no BrowserGym venv at {BG_PYTHON.relative_to(ROOT)}"
    from pixelpilot.envs.chromium import CHROMIUM_PATH, LAUNCH_ARGS
    from pixelpilot.envs.miniwob import html_dir

    env = dict(os.environ, MINIWOB_URL=(html_dir() / "miniwob").as_uri() + "/")
    argv = [
        str(BG_PYTHON), "-c", BG_SCRIPT, CHROMIUM_PATH, json.dumps(list(LAUNCH_ARGS)),
        ",".join(tasks), str(episodes), str(steps),
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return "BrowserGym failed: " + (lines[-1] if lines else f"exit {proc.returncode}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for task, row in result.items():
        print(json.dumps({"env": "browsergym", "task": task, **row}))
    return result


def _bg_version() -> str:
    if not BG_PYTHON.exists():
        return "not installed"
    code = (
        "import importlib.metadata as m; "
        "print(m.version('browsergym-miniwob'), m.version('playwright'))"
    )
    proc = subprocess.run([str(BG_PYTHON), "-c", code], capture_output=True, text=True)
    parts = proc.stdout.split()
    return f"browsergym-miniwob {parts[0]}, playwright {parts[1]}" if len(parts) == 2 else "?"


def write_doc(
    command: str, results: dict, bg: dict | str, jailed: dict, episodes: int, steps: int
) -> None:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines = [
        START,
        "## Envs: MiniWoB reset and step",
        "",
        f"`{command}` — {datetime.date.today()}, {os.cpu_count()} cores, no GPU, "
        f"{platform.python_version()}, Debian Chromium (headless), machine shared with other "
        f"jobs (load average at the end: {load}). Median over {episodes} episodes x {steps} "
        "steps per task; a step is one click at (80, 100) plus the screenshot (and, for "
        "pixelpilot, reading the reward). pixelpilot's Chromium runs jailed (its own network "
        "namespace; MiniWoB pages are file:// and use no proxy).",
        "",
        "| task | env | reset ms | step ms | step screenshot ms |",
        "|---|---|---|---|---|",
    ]
    for task in results["none"]:
        for mode, rows in results.items():
            r = rows[task]
            lines.append(
                f"| {task} | pixelpilot (reload={mode}) | {r['reset_ms']:.1f} | "
                f"{r['step_ms']:.1f} | {r['observe_ms']:.1f} |"
            )
        if isinstance(bg, dict) and task in bg:
            b = bg[task]
            lines.append(f"| {task} | BrowserGym | {b['reset_ms']:.0f} | {b['step_ms']:.0f} | |")
    if isinstance(bg, dict):
        ratio_r = statistics.median(bg[t]["reset_ms"] / results["none"][t]["reset_ms"] for t in bg)
        ratio_s = statistics.median(bg[t]["step_ms"] / results["none"][t]["step_ms"] for t in bg)
        lines += [
            "",
            f"BrowserGym ({_bg_version()}, its default settings except the browser: the "
            "same Debian Chromium with pixelpilot's launch flags, and the same task pages): "
            f"pixelpilot (reload=none) is {ratio_r:.0f}x faster per reset and "
            f"{ratio_s:.0f}x faster per step (median over tasks).",
        ]
    else:
        lines += ["", f"BrowserGym was not measured: {bg}."]
    lines += [
        "",
        f"The jail: launching a jailed Chromium (bubblewrap, the bridge, Chromium; until "
        f"Playwright is connected) takes a median {jailed['launch_ms']:.0f} ms. The `browser` "
        "env on a page served on 127.0.0.1 (three requests, each through the allow-list proxy)"
        f": reset (a fresh context, proxy route and page load) {jailed['browser_reset_ms']:.1f}"
        f" ms, step {jailed['browser_step_ms']:.1f} ms (160x210 viewport).",
        END,
    ]
    write_section("\n".join(lines), START, END)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=20, help="episodes per task")
    ap.add_argument("--steps", type=int, default=5, help="steps per episode")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated MiniWoB tasks")
    ap.add_argument("--no-browsergym", action="store_true", help="skip the BrowserGym run")
    ap.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args()
    tasks = args.tasks.split(",")
    results = {m: ours(tasks, args.episodes, args.steps, m) for m in ("none", "page", "context")}
    jailed = jail(5, args.episodes, args.steps)
    bg = "skipped (--no-browsergym)" if args.no_browsergym else None
    bg = bg or browsergym(tasks, args.episodes, args.steps)
    if isinstance(bg, str):
        print(bg, file=sys.stderr)
    if not args.no_doc:
        command = "python bench/bench_envs.py " + " ".join(sys.argv[1:])
        write_doc(command.strip(), results, bg, jailed, args.episodes, args.steps)


if __name__ == "__main__":
    main()

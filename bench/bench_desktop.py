"""Desktop env speed: screenshots (mss vs pyautogui+scrot), step and reset times.

Prints the figures and rewrites its own section of docs/benchmarks.md.

    .venv/bin/python bench/bench_desktop.py [--shots 200] [--steps 30] [--resets 10]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchdoc import markers, write_section

ROOT = Path(__file__).resolve().parents[1]
START, END = markers("bench_desktop")
SCREEN = (1280, 720)

PYAUTOGUI_SHOTS = r"""
import json, sys, time
import pyautogui
times = []
for _ in range(int(sys.argv[1])):
    t = time.perf_counter(); image = pyautogui.screenshot(); times.append(time.perf_counter() - t)
print(json.dumps({"times": times, "size": list(image.size)}))
"""


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def bench_screenshots(env: object, shots: int) -> dict[str, float | str]:
    display = env.unwrapped.display  # type: ignore[attr-defined]
    display.screenshot()
    rgb = []
    for _ in range(shots):
        t = time.perf_counter()
        display.screenshot()
        rgb.append(time.perf_counter() - t)
    raw = []
    for _ in range(shots):
        t = time.perf_counter()
        display._mss.grab({"left": 0, "top": 0, "width": SCREEN[0], "height": SCREEN[1]})
        raw.append(time.perf_counter() - t)
    out: dict[str, float | str] = {"mss_rgb_ms": median_ms(rgb), "mss_raw_ms": median_ms(raw)}
    if shutil.which("scrot") is None:
        out["pyautogui_ms"] = "scrot not installed (apt-get install -y scrot)"
        return out
    env_vars = display.env() | {"XDG_SESSION_TYPE": "x11"}
    n = max(10, shots // 10)
    with tempfile.TemporaryDirectory() as cwd:  # pyscreeze writes scrot's file into the cwd
        done = subprocess.run(
            [sys.executable, "-c", PYAUTOGUI_SHOTS, str(n)],
            env=env_vars,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=600,
        )
    if done.returncode != 0:
        out["pyautogui_ms"] = f"failed: {done.stderr.strip().splitlines()[-1]}"
    else:
        result = json.loads(done.stdout)
        assert result["size"] == list(SCREEN)
        out["pyautogui_ms"] = median_ms(result["times"][1:])
    return out


def bench_steps(env: object, steps: int) -> dict[str, float]:
    env.reset(seed=0)  # type: ignore[attr-defined]
    out = {}
    for settle in (0.15, 0.0):
        env.unwrapped.settle = settle  # type: ignore[attr-defined]
        times = []
        for i in range(steps):
            action = {"type": "click", "x": 5 + i, "y": SCREEN[1] - 5}  # empty desktop
            t = time.perf_counter()
            env.step(action)  # type: ignore[attr-defined]
            times.append(time.perf_counter() - t)
        out[f"step_click_settle_{settle}_ms"] = median_ms(times)
    env.unwrapped.settle = 0.15  # type: ignore[attr-defined]
    return out


def bench_resets(task: str, resets: int) -> dict[str, float]:
    from pixelpilot.envs.registry import make

    with make(task, screen=SCREEN) as env:
        t = time.perf_counter()
        env.reset(seed=0)
        cold = time.perf_counter() - t
        times = []
        for seed in range(1, resets + 1):
            t = time.perf_counter()
            env.reset(seed=seed)
            times.append(time.perf_counter() - t)
    return {"cold_s": cold, "reset_ms": median_ms(times)}


def write_doc(cmd: str, shots: dict, steps: dict, resets: dict[str, dict]) -> None:
    pyautogui = shots["pyautogui_ms"]
    pyautogui = f"{pyautogui:.1f}" if isinstance(pyautogui, float) else pyautogui
    lines = [
        START,
        "## Desktop env (`bench/bench_desktop.py`)",
        "",
        f"Command: `{cmd}`  ",
        f"Machine: {os.cpu_count()} cores, no GPU, {platform.python_implementation()} "
        f"{platform.python_version()}, Xvfb {SCREEN[0]}x{SCREEN[1]}x24, shared with other jobs; "
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        "| measure (median) | value |",
        "|---|---|",
        f"| screenshot, mss XShmGetImage -> RGB numpy (`XDisplay.screenshot`) | "
        f"{shots['mss_rgb_ms']:.2f} ms |",
        f"| screenshot, mss raw BGRA grab | {shots['mss_raw_ms']:.2f} ms |",
        f"| screenshot, `pyautogui.screenshot()` (pyscreeze -> scrot -> PNG file) | "
        f"{pyautogui} ms |",
        f"| `step(click)` with the default 0.15 s settle | "
        f"{steps['step_click_settle_0.15_ms']:.1f} ms |",
        f"| `step(click)` with settle 0 (input + screenshot + window list + checker) | "
        f"{steps['step_click_settle_0.0_ms']:.1f} ms |",
    ]
    for task, r in resets.items():
        lines.append(
            f"| `reset()` of {task} (new sandbox + app start), warm | {r['reset_ms']:.0f} ms |"
        )
        lines.append(
            f"| first `reset()` of {task} (+ Xvfb, openbox, input process) | {r['cold_s']:.2f} s |"
        )
    lines.append(END)
    section = "\n".join(lines)
    write_section(section, START, END)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shots", type=int, default=200, help="screenshots per method")
    ap.add_argument("--steps", type=int, default=30, help="steps per setting")
    ap.add_argument("--resets", type=int, default=10, help="warm resets per task")
    ap.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args()
    from pixelpilot.envs.registry import make

    with make("desktop/form-fill", screen=SCREEN) as env:
        env.reset(seed=0)
        shots = bench_screenshots(env, args.shots)
        steps = bench_steps(env, args.steps)
    resets = {
        t: bench_resets(t, args.resets) for t in ("desktop/form-fill", "desktop/terminal-file")
    }
    figures = {**shots, **steps, "resets": resets}
    print(json.dumps(figures, indent=2))
    if not args.no_doc:
        cmd = "python bench/bench_desktop.py " + " ".join(sys.argv[1:])
        write_doc(cmd.strip(), shots, steps, resets)


if __name__ == "__main__":
    main()

"""Overhead of the agent loop per step, excluding model and env time.

A ``ScriptedVLM`` answers at once and an in-memory env returns a fixed 1280x720 screenshot, so
what is left is the loop itself: building the prompt with 5 images of history, parsing the
answer (in the ``uitars-1.5`` frame, with smart_resize), converting observations, and recording
(PNG encoding + JSON line + fsync). Time inside ``vlm.generate`` and ``env.step`` is measured
and subtracted. Writes its section of ``docs/benchmarks.md``.

    .venv/bin/python bench/bench_agent.py [--steps 60] [--no-write]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from benchdoc import markers, write_section
from PIL import Image

from pixelpilot.agent.loop import Agent
from pixelpilot.vlm import ModelProfile, ScriptedVLM

SIZE = (1280, 720)
ANSWER = "Thought: I click the search box and continue.\nAction: click(start_box='(640,360)')"

START, END = markers("bench_agent")
SECTION = "## Agent loop overhead"


class FixedScreenEnv(gym.Env):
    """Returns the same realistic 1280x720 screenshot forever; counts time in ``step``."""

    def __init__(self, steps: int) -> None:
        rng = np.random.default_rng(0)
        img = np.full((SIZE[1], SIZE[0], 3), 245, np.uint8)
        for _ in range(60):  # UI-like blocks of flat colour, some text-like noise
            x, y = rng.integers(0, SIZE[0] - 200), rng.integers(0, SIZE[1] - 60)
            img[y : y + rng.integers(10, 60), x : x + rng.integers(30, 200)] = rng.integers(
                0, 255, 3
            )
        noise = rng.integers(0, 255, (40, 600, 3), dtype=np.uint8)
        img[100:140, 100:700] = noise
        self.obs = {"screenshot": img, "instruction": "Search for flights to Lisbon."}
        self.steps, self.count, self.time = steps, 0, 0.0

    def reset(self, *, seed: int | None = None, options: Any = None):
        self.count = 0
        return self.obs, {}

    def step(self, action: Any):
        t0 = time.perf_counter()
        self.count += 1
        out = (self.obs, 0.0, False, self.count >= self.steps, {})
        self.time += time.perf_counter() - t0
        return out


class TimedVLM(ScriptedVLM):
    def __init__(self, delay: float = 0.0) -> None:
        super().__init__([ANSWER], ModelProfile(name="bench", frame="uitars-1.5"), cycle=True)
        self.time, self.delay = 0.0, delay

    def generate(self, conversations, params=None):  # type: ignore[override]
        t0 = time.perf_counter()
        if self.delay:
            time.sleep(self.delay)  # a model that takes this long (counted as model time)
        out = super().generate(conversations, params)
        self.time += time.perf_counter() - t0
        return out


def overhead_ms(
    steps: int, record: str | None, compress: int = 1, delay: float = 0.0, fsync: bool = True
) -> float:
    """Per-step wall time minus model and env time, in ms (best of 3 episodes)."""
    best = float("inf")
    for _ in range(3):
        env, vlm = FixedScreenEnv(steps), TimedVLM(delay)
        agent = Agent(vlm, env, max_steps=steps, ask_user=None, wait_seconds=0.0,
                      background_recording=record == "background")  # fmt: skip
        with tempfile.TemporaryDirectory() as tmp:
            if record is not None:
                import pixelpilot.agent.loop as loop_mod

                original = loop_mod.TrajectoryWriter
                loop_mod.TrajectoryWriter = _with_level(original, compress, fsync)  # type: ignore[misc]
            try:
                t0 = time.perf_counter()
                agent.run(seed=0, out=Path(tmp) / "ep" if record else None)
                wall = time.perf_counter() - t0
            finally:
                if record is not None:
                    loop_mod.TrajectoryWriter = original  # type: ignore[misc]
        best = min(best, (wall - vlm.time - env.time) / steps * 1000)
    return best


def _with_level(cls: Any, level: int, fsync: bool) -> Any:
    def make(*args: Any, **kw: Any) -> Any:
        return cls(*args, png_compress_level=level, fsync=fsync, **kw)

    return make


def png_ms(level: int) -> tuple[float, int]:
    img = Image.fromarray(FixedScreenEnv(1).obs["screenshot"])
    times, size = [], 0
    for _ in range(7):
        buf = io.BytesIO()
        t0 = time.perf_counter()
        img.save(buf, format="PNG", compress_level=level)
        times.append(time.perf_counter() - t0)
        size = buf.tell()
    return statistics.median(times) * 1000, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--no-write", action="store_true", help="do not update the docs")
    args = parser.parse_args()
    rows = [
        ("loop, not recording", overhead_ms(args.steps, None)),
        ("loop + recording, background writer, PNG level 1", overhead_ms(args.steps, "background")),
        ("loop + recording, background writer, PNG level 1, model taking 100 ms",
         overhead_ms(args.steps, "background", 1, delay=0.1)),
        ("loop + recording, synchronous, PNG level 1", overhead_ms(args.steps, "sync", 1)),
        ("loop + recording, synchronous, PNG level 1, no fsync",
         overhead_ms(args.steps, "sync", 1, fsync=False)),
        ("loop + recording, synchronous, PNG level 6 (PIL default)",
         overhead_ms(args.steps, "sync", 6)),
    ]  # fmt: skip
    png = [(level, *png_ms(level)) for level in (1, 6)]
    lines = [f"| {name} | {ms:.2f} |" for name, ms in rows]
    png_lines = [f"| PNG encode 1280x720, level {lv} | {ms:.1f} ms | {size / 1024:.0f} KiB |"
                 for lv, ms, size in png]  # fmt: skip
    for line in lines + png_lines:
        print(line)
    if not args.no_write:
        write_doc(args.steps, lines, png_lines)


def write_doc(steps: int, lines: list[str], png_lines: list[str]) -> None:
    body = "\n".join(
        [
            START,
            SECTION,
            "",
            f"Command: `.venv/bin/python bench/bench_agent.py --steps {steps}`  ",
            f"Machine: 2 cores, no GPU ({platform.processor() or platform.machine()}, Python "
            f"{platform.python_version()}), shared with other jobs (load average "
            f"{os.getloadavg()[0]:.1f} when it ended); "
            f"date {time.strftime('%Y-%m-%d', time.gmtime())}.",
            "",
            "Per-step time of the loop minus the time inside `vlm.generate` and `env.step`: a",
            "ScriptedVLM answering at once, an in-memory env with a fixed 1280x720 screenshot,",
            "5 images of history, the `uitars-1.5` frame. Best of 3 episodes of "
            f"{steps} steps; recording includes waiting for the writer at the end.",
            "",
            "| configuration | overhead per step (ms) |",
            "|---|---|",
            *lines,
            "",
            "| encoding | time (median of 7) | file size |",
            "|---|---|---|",
            *png_lines,
            "",
            "Reading: without recording the loop stays well under the 5 ms target. Recording is",
            "dominated by PNG encoding (plus two fsyncs per step for the crash-safety guarantee);",
            "level 1 is about half the time of PIL's default 6 for ~15% larger files. The",
            "background writer only pays off when model time covers the encoding (then the loop",
            "sees ~the unrecorded overhead); with an instant policy it competes with the loop",
            "for the GIL and the 2 cores. So `Agent` records in the background for model",
            "policies and synchronously for scripted ones (`background_recording=None`).",
            END,
        ]
    )
    write_section(body, START, END)


if __name__ == "__main__":
    main()

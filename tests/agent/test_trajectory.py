"""The trajectory format: round trip, crash safety, and malformed files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from pixelpilot.agent.trajectory import (
    FILE_NAME,
    Step,
    TrajectoryReader,
    TrajectoryWriter,
    iter_episodes,
    read_trajectory,
    screenshot_name,
)
from pixelpilot.errors import TrajectoryFormatError

HEADER = {
    "task": "miniwob/click-button",
    "env": "miniwob/click-button",
    "seed": 3,
    "model": "scripted",
    "frame": "pixels",
    "screen": [160, 210],
}


def _image(i: int) -> Image.Image:
    return Image.new("RGB", (160, 210), (i * 40 % 256, 100, 200))


def _step(i: int, **kw: object) -> Step:
    return Step(
        index=i,
        screenshot=screenshot_name(i),
        response=f"Thought: step {i}\nAction: click(start_box='(10,{i})')",
        thought=f"step {i}",
        actions=({"type": "click", "x": 10, "y": i},),
        reward=0.5 if i == 1 else 0.0,
        timing={"model": 0.01, "env": 0.02},
        target=(1, 2, 30, 40) if i == 0 else None,
        **kw,
    )


def _write(directory: Path, n: int, finish: bool = True, **kw: object) -> None:
    writer = TrajectoryWriter(directory, HEADER, **kw)
    for i in range(n):
        writer.append(_step(i), _image(i))
    if finish:
        writer.finish(success=True, total_reward=0.5, reason="finished")
    else:
        writer.close()


@pytest.mark.parametrize("background", [False, True])
def test_round_trip(tmp_path: Path, background: bool) -> None:
    _write(tmp_path / "ep", 3, background=background)
    ep = read_trajectory(tmp_path / "ep")
    assert ep.finished and ep.success and ep.total_reward == 0.5
    assert ep.header["format"] == "pixelpilot.trajectory" and ep.header["version"] == 1
    assert ep.header["seed"] == 3 and "started_at" in ep.header
    assert [s.index for s in ep.steps] == [0, 1, 2]
    assert ep.steps[0] == _step(0)
    assert ep.steps[0].target == (1, 2, 30, 40)
    assert ep.end is not None and ep.end["steps"] == 3 and ep.end["reason"] == "finished"
    assert ep.load_screenshot(2).getpixel((0, 0)) == _image(2).getpixel((0, 0))
    assert ep.load_screenshot(ep.steps[1]).size == (160, 210)


def test_step_dict_round_trip_keeps_unknown_keys() -> None:
    data = _step(4, error="boom").to_dict()
    data["future_field"] = {"a": 1}
    step = Step.from_dict(data)
    assert step.error == "boom" and step.extra == {"future_field": {"a": 1}}
    assert step.to_dict() == data


def test_unfinished_episode_reads_as_unfinished(tmp_path: Path) -> None:
    _write(tmp_path, 2, finish=False)
    ep = read_trajectory(tmp_path)
    assert not ep.finished and not ep.success and len(ep.steps) == 2
    assert ep.total_reward == 0.5  # summed from the steps while unfinished


def test_writer_refuses_to_overwrite(tmp_path: Path) -> None:
    _write(tmp_path, 1)
    with pytest.raises(TrajectoryFormatError, match="already exists"):
        TrajectoryWriter(tmp_path, HEADER)


def _lines(directory: Path) -> list[str]:
    return (directory / FILE_NAME).read_text().splitlines(keepends=True)


def _rewrite(directory: Path, lines: list[str]) -> None:
    (directory / FILE_NAME).write_text("".join(lines))


def test_truncated_final_line_reads_as_unfinished(tmp_path: Path) -> None:
    _write(tmp_path, 3, finish=False)
    lines = _lines(tmp_path)
    _rewrite(tmp_path, lines[:-1] + [lines[-1][:25]])  # step 2's line cut short
    ep = read_trajectory(tmp_path)
    assert ep.incomplete_last_line and not ep.finished
    assert [s.index for s in ep.steps] == [0, 1]


def test_final_line_missing_only_its_newline_is_kept(tmp_path: Path) -> None:
    _write(tmp_path, 2, finish=False)
    lines = _lines(tmp_path)
    _rewrite(tmp_path, lines[:-1] + [lines[-1].rstrip("\n")])
    ep = read_trajectory(tmp_path)
    assert len(ep.steps) == 2 and not ep.incomplete_last_line


@pytest.mark.parametrize(
    ("mutate", "line", "problem"),
    [
        (lambda ls: ls[:1] + ["{not json\n"] + ls[2:], 2, "not valid JSON"),
        (lambda ls: [ls[0].replace("pixelpilot.trajectory", "other")] + ls[1:], 1, "format"),
        (lambda ls: [ls[0].replace('"version": 1', '"version": 9')] + ls[1:], 1, "version"),
        (lambda ls: ls[:1] + ls[2:], 2, "step index 1, expected 0"),
        (lambda ls: ls[:2] + ["[1, 2]\n"] + ls[3:], 3, "JSON object"),
        (lambda ls: ls + [ls[1]], 5, "after the end line"),
        (
            lambda ls: ls[:2] + [ls[2].replace('"reward": 0.5', '"reward": "x"')] + ls[3:],
            3,
            "reward",
        ),
        (lambda ls: [ls[0].replace('"seed": 3, ', "")] + ls[1:], 1, "seed"),
        (lambda ls: ls[:3] + [ls[3].replace('"success": true', '"success": 1')], 4, "success"),
    ],
)
def test_malformed_files_name_line_and_problem(
    tmp_path: Path, mutate: object, line: int, problem: str
) -> None:
    _write(tmp_path, 2)
    _rewrite(tmp_path, mutate(_lines(tmp_path)))  # type: ignore[operator]
    with pytest.raises(TrajectoryFormatError) as info:
        read_trajectory(tmp_path)
    assert info.value.line == line and problem in info.value.problem
    assert str(info.value).startswith(f"{tmp_path / FILE_NAME}:{line}: ")


def test_missing_screenshot_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, 2)
    os.remove(tmp_path / "step-0001.png")
    with pytest.raises(TrajectoryFormatError, match="step-0001.png is missing") as info:
        read_trajectory(tmp_path)
    assert info.value.line == 3


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(TrajectoryFormatError, match="no trajectory file"):
        read_trajectory(tmp_path)
    (tmp_path / FILE_NAME).write_text("")
    with pytest.raises(TrajectoryFormatError, match="empty file"):
        read_trajectory(tmp_path)


def test_iter_episodes_finds_nested_dirs_in_order(tmp_path: Path) -> None:
    for name in ("b/seed-1", "a/seed-0", "a/seed-1"):
        _write(tmp_path / name, 1)
    eps = list(iter_episodes(tmp_path))
    assert [e.directory.relative_to(tmp_path).as_posix() for e in eps] == [
        "a/seed-0",
        "a/seed-1",
        "b/seed-1",
    ]
    assert len(list(iter_episodes(tmp_path / "a" / "seed-0"))) == 1
    assert [s.index for s in TrajectoryReader(tmp_path / "b/seed-1" / FILE_NAME)] == [0]


_CHILD = """
import sys, time
from PIL import Image
from pixelpilot.agent.trajectory import Step, TrajectoryWriter, screenshot_name
writer = TrajectoryWriter(sys.argv[1], {"task": "t", "env": "e", "seed": 0, "model": "m",
                                       "frame": "pixels", "screen": [640, 480]},
                          background=sys.argv[2] == "background")
i = 0
while True:
    im = Image.effect_noise((640, 480), 60 + i).convert("RGB")
    writer.append(Step(index=i, screenshot=screenshot_name(i), response="x" * 5000), im)
    if i % 2:  # background mode: wait for the worker now and then, so steps are on disk
        writer.flush()
        print(i, flush=True)
    i += 1
"""


@pytest.mark.parametrize("mode", ["sync", "background"])
def test_sigkill_mid_episode_leaves_completed_steps_readable(tmp_path: Path, mode: str) -> None:
    out = tmp_path / "ep"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(out), mode], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    done = -1
    deadline = time.monotonic() + 60
    while done < 7 and time.monotonic() < deadline:
        done = int(proc.stdout.readline())
    time.sleep(0.05)  # land the kill somewhere inside a later step
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert done >= 7
    ep = read_trajectory(out)
    assert not ep.finished
    assert len(ep.steps) >= done + 1  # every step the child reported on disk is there
    for step in ep.steps:
        assert ep.load_screenshot(step).size == (640, 480)
    assert json.loads((out / FILE_NAME).read_text().splitlines()[0])["task"] == "t"

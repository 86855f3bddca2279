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


def test_perturbed_mark_round_trips_and_defaults_to_false() -> None:
    assert not _step(1).perturbed and "perturbed" not in _step(1).to_dict()
    data = {**_step(2).to_dict(), "perturbed": True}
    step = Step.from_dict(data)
    assert step.perturbed and step.to_dict() == data


def test_labels_round_trip_and_a_malformed_one_is_refused() -> None:
    data = {**_step(2).to_dict(), "labels": [["ONE", 1, 2, 30, 40], ["two words", 5, 6, 7.4, 8]]}
    step = Step.from_dict(data)
    assert step.labels == (("ONE", (1, 2, 30, 40)), ("two words", (5, 6, 7, 8)))
    assert step.to_dict() == data and _step(1).labels == ()
    for bad, problem in [
        ({"ONE": [1, 2, 3, 4]}, "must be a list"),
        ([["ONE", 1, 2, 3]], "entries must be"),
        ([["", 1, 2, 3, 4]], "1..200 characters"),
        ([[7, 1, 2, 3, 4]], "1..200 characters"),
        ([["ONE", 1, 2, "3", 4]], "4 finite numbers"),
    ]:
        with pytest.raises(ValueError, match=problem):
            Step.from_dict({**_step(2).to_dict(), "labels": bad})


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


# --- untrusted files: every field is checked before anything uses it ----------------------


def _edit_line(directory: Path, line: int, edit: object) -> None:
    lines = _lines(directory)
    obj = json.loads(lines[line])
    edit(obj)  # type: ignore[operator]
    lines[line] = json.dumps(obj) + "\n"
    _rewrite(directory, lines)


def _set(**fields: object) -> object:
    return lambda obj: obj.update(fields)


@pytest.mark.parametrize(
    ("line", "edit", "problem"),
    [
        (1, _set(target=[1e999, 0, 0, 0]), "'target' must hold 4 finite numbers"),
        (1, _set(target=["1", 0, 0, 0]), "'target' must hold 4 finite numbers"),
        (1, _set(target=[10**30, 0, 0, 0]), "'target' coordinate out of range"),
        (1, _set(actions=[{"type": "click", "y": 5}]), "action 0:"),
        (1, _set(actions=[{"type": "explode"}]), "action 0:"),
        (
            1,
            _set(actions=[{"type": "click", "x": '5"/><img src=x>', "y": 5}]),
            "action 0:",
        ),
        (1, _set(actions=[{"type": "drag", "x1": 1, "y1": 2, "x2": "<", "y2": 4}]), "action 0:"),
        (1, _set(actions=[{"type": "click", "x": 1, "y": 2, "onload": 1}]), "action 0:"),
        (1, _set(actions=["click"]), "action 0"),
        (1, _set(actions={"type": "wait"}), "'actions' must be a list"),
        (1, _set(thought=["<script>"]), "'thought' must be text"),
        (1, _set(error={"a": 1}), "'error' must be text"),
        (1, _set(terminated="false"), "'terminated' must be true or false"),
        (1, _set(perturbed="yes"), "'perturbed' must be true or false"),
        (1, _set(screenshot="../../../etc/passwd"), "plain file name"),
        (1, _set(screenshot="/etc/passwd"), "plain file name"),
        (1, _set(screenshot=".."), "plain file name"),
        (0, _set(screen="abc"), "'screen' must be [width, height]"),
        (0, _set(screen=[160]), "'screen' must be [width, height]"),
        (0, _set(screen=[160, -1]), "'screen' sides must be integers"),
        (0, _set(screen=[int("9" * 400), 210]), "'screen' sides must be integers"),
        (0, _set(seed="3"), "'seed' must be an integer"),
        (0, _set(task=["t"]), "'task' must be text"),
        (0, _set(instruction={"x": 1}), "'instruction' must be text"),
        (0, _set(env_kwargs=["executable_path"]), "'env_kwargs' must be an object"),
    ],
)
def test_hostile_fields_are_format_errors(
    tmp_path: Path, line: int, edit: object, problem: str
) -> None:
    _write(tmp_path, 2)
    _edit_line(tmp_path, line, edit)
    with pytest.raises(TrajectoryFormatError) as info:
        read_trajectory(tmp_path)
    assert info.value.line == line + 1 and problem in info.value.problem


def test_actions_read_back_canonical_with_integer_coordinates(tmp_path: Path) -> None:
    _write(tmp_path, 1)
    _edit_line(tmp_path, 1, _set(actions=[{"type": "click", "x": 10.6, "y": 3},
                                          {"type": "hotkey", "keys": ["Ctrl", "c"]}]))  # fmt: skip
    step = read_trajectory(tmp_path).steps[0]
    assert step.actions == ({"type": "click", "x": 11, "y": 3},
                            {"type": "hotkey", "keys": ["ctrl", "c"]})  # fmt: skip


def test_deeply_nested_json_is_a_format_error(tmp_path: Path) -> None:
    _write(tmp_path, 2)
    lines = _lines(tmp_path)
    lines[1] = "[" * 200_000 + "]" * 200_000 + "\n"
    _rewrite(tmp_path, lines)
    with pytest.raises(TrajectoryFormatError, match="nested too deeply") as info:
        read_trajectory(tmp_path)
    assert info.value.line == 2


def test_screenshot_symlinked_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "ep", 2)
    secret = tmp_path / "secret.png"
    _image(0).save(secret)
    os.remove(tmp_path / "ep" / "step-0001.png")
    os.symlink(secret, tmp_path / "ep" / "step-0001.png")
    with pytest.raises(TrajectoryFormatError, match="leads out of") as info:
        read_trajectory(tmp_path / "ep")
    assert info.value.line == 3
    os.remove(tmp_path / "ep" / "step-0001.png")  # a symlink inside the folder is fine
    os.symlink("step-0000.png", tmp_path / "ep" / "step-0001.png")
    assert len(read_trajectory(tmp_path / "ep").steps) == 2


def test_a_dangling_symlink_or_a_folder_in_place_of_a_screenshot_is_missing(
    tmp_path: Path,
) -> None:
    _write(tmp_path / "ep", 2)
    os.remove(tmp_path / "ep" / "step-0001.png")
    os.symlink("gone.png", tmp_path / "ep" / "step-0001.png")
    with pytest.raises(TrajectoryFormatError, match="step-0001.png is missing"):
        read_trajectory(tmp_path / "ep")
    os.remove(tmp_path / "ep" / "step-0001.png")
    os.mkdir(tmp_path / "ep" / "step-0001.png")
    with pytest.raises(TrajectoryFormatError, match="step-0001.png is missing"):
        read_trajectory(tmp_path / "ep")


def test_an_episode_reached_through_a_symlinked_folder_reads(tmp_path: Path) -> None:
    from pixelpilot.eval.datasets import load_samples

    _write(tmp_path / "real" / "ep", 2)
    os.symlink(tmp_path / "real", tmp_path / "alias")
    assert len(read_trajectory(tmp_path / "alias" / "ep").steps) == 2
    samples = load_samples(tmp_path / "alias", "trajectory")
    real = (tmp_path / "real" / "ep").resolve()
    assert [s.image for s in samples] == [str(real / f"step-000{i}.png") for i in range(2)]


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * ((width + 7) // 8 + 1) * 10)  # far less data than claimed
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"GIF89a garbage " * 10, "not a PNG file"),
        (b"", "not a PNG file"),
        (_png_header(30_000, 30_000), "30000x30000 pixels is over the limit"),
        (_png_header(10_000, 10_000), "10000x10000 pixels is over the limit"),
    ],
    ids=["garbage", "empty", "bomb", "over-area"],
)
def test_garbage_and_oversized_screenshots_are_refused(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    _write(tmp_path, 2)
    (tmp_path / "step-0001.png").write_bytes(content)
    with pytest.raises(TrajectoryFormatError, match=problem) as info:
        read_trajectory(tmp_path)
    assert info.value.line == 3


def test_a_png_broken_after_its_header_fails_to_load_with_a_format_error(tmp_path: Path) -> None:
    _write(tmp_path, 1)
    path = tmp_path / "step-0000.png"
    path.write_bytes(path.read_bytes()[:40])  # header intact, image data cut off
    episode = read_trajectory(tmp_path)
    with pytest.raises(TrajectoryFormatError, match="not a readable image"):
        episode.load_screenshot(0)


def test_writer_into_a_file_is_a_format_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("keep me")
    for where in (tmp_path / "file", tmp_path / "file" / "seed-0"):
        with pytest.raises(TrajectoryFormatError, match="a file is where the episode folder goes"):
            TrajectoryWriter(where, HEADER)
    assert (tmp_path / "file").read_text() == "keep me"

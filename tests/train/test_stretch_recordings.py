"""scripts/stretch-recordings: screenshots, points, boxes and answers moved together."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

from pixelpilot.tools.grammar import parse_response

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "stretch-recordings"


def _script():
    loader = importlib.machinery.SourceFileLoader("stretch_recordings", str(SCRIPT))
    spec = importlib.util.spec_from_loader("stretch_recordings", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _episode(root: Path) -> Path:
    """One recorded click on a 160x210 screen: a black 'link' box on white."""
    folder = root / "miniwob-click-link" / "seed-7"
    folder.mkdir(parents=True)
    image = Image.new("RGB", (160, 210), "white")
    image.paste((0, 0, 0), (65, 52, 83, 63))
    image.save(folder / "step-0000.png")
    head = {"format": "pixelpilot.trajectory", "version": 1, "task": "miniwob/click-link",
            "seed": 7, "frame": "uitars-1.5", "screen": [160, 210]}  # fmt: skip
    step = {"index": 0, "screenshot": "step-0000.png", "thought": None,
            "response": "Action: click(start_box='(115,91)')",
            "actions": [{"type": "click", "x": 73, "y": 57}], "target": [65, 52, 82, 62],
            "labels": [["Leo", 65, 52, 82, 62]]}  # fmt: skip
    lines = [json.dumps(head), json.dumps(step), json.dumps({"end": True, "success": True})]
    (folder / "trajectory.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "trajectory.jsonl"


@pytest.mark.parametrize(("rows", "cols"), [(2, 1), (1, 2), (2, 2)])
def test_a_stretched_click_still_lands_in_its_box(tmp_path: Path, rows: int, cols: int) -> None:
    traj = _episode(tmp_path / "src")
    out = tmp_path / "dst"
    assert _script().stretch_episode(traj, out, rows, cols) == (160, 210)
    head, step, end = [json.loads(x) for x in (out / "trajectory.jsonl").read_text().splitlines()]
    assert head["screen"] == [160 * cols, 210 * rows] and end["end"]
    with Image.open(out / "step-0000.png") as image:
        assert image.size == (160 * cols, 210 * rows)
        x, y = step["actions"][0]["x"], step["actions"][0]["y"]
        assert image.getpixel((x, y)) == (0, 0, 0)  # the click is on the drawn box's pixels
    x1, y1, x2, y2 = step["target"]
    assert x1 <= x <= x2 and y1 <= y <= y2
    assert step["labels"] == [["Leo", x1, y1, x2, y2]]
    parsed = parse_response(step["response"], "uitars-1.5", (160 * cols, 210 * rows))
    px, py = parsed.actions[0].x, parsed.actions[0].y
    assert x1 <= px <= x2 and y1 <= py <= y2  # the answer names the moved point


def test_bad_arguments_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _episode(tmp_path / "src")
    main = _script().main
    assert main([str(tmp_path / "src"), str(tmp_path / "dst"), "--cols", "0"]) == 2
    assert capsys.readouterr().err == "error: --rows and --cols must be at least 1\n"
    assert main([str(tmp_path / "empty"), str(tmp_path / "dst")]) == 2
    assert capsys.readouterr().err.startswith("error: no recorded episode under ")
    assert not (tmp_path / "dst").exists()

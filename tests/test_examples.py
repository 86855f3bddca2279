"""Every script in examples/ runs as it is (in its own process) and prints what it promises."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name: str, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_every_example_is_run_here():
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    tested = {"parse_and_export.py", "declare_action.py", "expert_episode.py"}
    assert scripts == tested, "add a test for each new example"


def test_parse_and_export(tmp_path):
    out = run("parse_and_export.py", "--screen", "1280x720", "--out", str(tmp_path / "s.py"))
    assert '"type": "click", "x": 640, "y": 59' in out
    assert "click(start_box='(500,82)')" in out  # the uitars-1.0 frame: thousandths
    source = (tmp_path / "s.py").read_text()
    assert "pyautogui.write('weather in Paris', interval=0.02)" in source
    ast.parse(source)


def test_declare_action():
    out = run("declare_action.py")
    assert "parsed: Hover(x=640, y=360)" in out
    assert "pyautogui: pyautogui.moveTo(640, 360)" in out
    assert "'grounded': True" in out


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")
def test_expert_episode(tmp_path):
    out = run("expert_episode.py", "--task", "miniwob/click-button", "--out", str(tmp_path / "ep"))
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["success"] is True and summary["steps"] >= 1
    assert (tmp_path / "ep" / "trajectory.jsonl").is_file()

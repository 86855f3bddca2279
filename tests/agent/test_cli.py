"""``pixelpilot run / record / replay / view`` on real MiniWoB pages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pixelpilot.agent.trajectory import read_trajectory
from pixelpilot.cli import main


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1  # exactly one JSON object on stdout
    return json.loads(out[0])


def test_record_replay_view(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rec"
    summary = _json(
        capsys,
        ["record", "miniwob/click-test", "--expert", "--episodes", "2", "--seed", "3",
         "--max-steps", "3",
         "--out", str(out), "--json"],
    )  # fmt: skip
    row = summary["tasks"]["miniwob/click-test"]
    assert row["episodes"] == 2 and row["success_rate"] == 1.0 and row["mean_steps"] >= 1
    assert summary["mean_success"] == 1.0
    seeds = sorted(p.name for p in (out / "miniwob-click-test").iterdir())
    assert seeds == ["seed-3", "seed-4"]
    episode = out / "miniwob-click-test" / "seed-4"
    assert read_trajectory(episode).seed == 4

    report = _json(capsys, ["replay", str(episode), "--json"])
    assert set(report) >= {"steps", "reward_recorded", "reward_replayed", "divergent_steps"}
    assert report["reward_replayed"] == report["reward_recorded"] > 0
    assert report["divergent_steps"] == []

    assert main(["view", str(out)]) == 0
    html_path = Path(capsys.readouterr().out.strip())
    assert html_path == out / "view.html" and html_path.stat().st_size > 1000


def test_run_with_the_expert(tmp_path: Path) -> None:
    """The real entry point in a subprocess: JSON on stdout, status lines on stderr."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "pixelpilot.cli", "run", "--env", "miniwob/click-button",
         "--model", "expert", "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["success"] and result["reason"] == "terminated"
    assert Path(result["viewer"]).is_file() and result["trajectory"] == str(out)
    assert "step 0 click(" in proc.stderr
    assert read_trajectory(out).header["instruction"].startswith("Click on")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--env", "miniwob/click-button"], "--model expert"),
        (["run", "--env", "miniwob/no-such-task", "--model", "expert"], "unknown task id"),
        (["record", "miniwob/click-test", "--out", "x"], "exactly one of --expert or --model"),
        (["replay", "nowhere", "--from-step", "1"], "--from-step needs --model"),
        (["replay", "nowhere", "--json"], "no trajectory file"),
        (["view", "nowhere"], "not a directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]

"""``pixelpilot eval clicks``: a run's first clicks against the expert's targets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from pixelpilot.agent.trajectory import Step, TrajectoryWriter
from pixelpilot.cli import main
from pixelpilot.errors import ConfigError
from pixelpilot.eval.clicks import click_report, format_clicks

TASK = "miniwob/click-link"
BOX = (10, 20, 50, 30)  # the expert's target; its point (30, 25) is in the top third of 210


def _episode(root: Path, seed: int, steps: list[dict], success: bool, target=None) -> None:
    header = {"task": TASK, "env": TASK, "seed": seed, "model": "m", "frame": "uitars-1.0",
              "screen": [160, 210]}  # fmt: skip
    image = Image.new("RGB", (160, 210))
    with TrajectoryWriter(root / f"seed-{seed}", header, fsync=False) as writer:
        for index, step in enumerate(steps):
            last = index == len(steps) - 1
            writer.append(
                Step(index=index, screenshot=f"step-{index:04d}.png", actions=(step,),
                     terminated=last, target=target if index == 0 else None),
                image,
            )  # fmt: skip
        writer.finish(success, 1.0 if success else -1.0)


def _click(x: float, y: float) -> dict:
    return {"type": "click", "x": x, "y": y}


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    expert, run = tmp_path / "expert", tmp_path / "run"
    for seed in (1, 2, 3, 4):
        _episode(expert, seed, [_click(30, 25)], True, target=BOX)
    _episode(run, 1, [_click(30, 26)], True)  # hit, 1 pixel low
    _episode(run, 2, [_click(100, 150)], False)  # another link: the episode ended
    _episode(run, 3, [_click(32, 36), _click(33, 37), _click(30, 25)], True)  # a line low,
    # clicked again on the same spot, then hit
    _episode(run, 4, [{"type": "type", "content": "x"}, _click(30, 25)], True)  # typed first
    _episode(run, 99, [_click(30, 25)], True)  # no expert episode for seed 99
    return run, expert


def test_first_clicks_are_classed_and_the_near_ones_measured(folders):
    run, expert = folders
    report = click_report(run, expert)
    assert report["unpaired"] == 1 and list(report["tasks"]) == [TASK]
    row = report["tasks"][TASK]
    assert row["episodes"] == 4 and row["success"] == 0.75
    assert row["first_click"] == {"hit": 1, "ended": 1, "nothing": 1, "no_click": 1}
    assert row["near"] == 2  # (0, +1) and (+2, +11); the far click and the typing are not
    assert row["mean_dx"] == 1.0 and row["mean_dy"] == 6.0
    assert row["mean_dy_by_band"] == {"top": 6.0, "middle": None, "bottom": None}
    assert row["median_distance"] == pytest.approx((1 + (4 + 121) ** 0.5) / 2)
    assert (row["later_clicks"], row["repeats"]) == (2, 1)  # (33,37) repeats (32,36)
    table = format_clicks(report)
    row_line = "| 4 | 0.75 | 1 | 1 | 1 | 1 | 2 | +1.0 | +6.0 | +6.0 / - / - | 1 of 2 |"
    assert f"| {TASK} {row_line}" in table
    assert "1 episodes had no expert episode" in table


def test_a_narrower_near_leaves_out_the_line_below(folders):
    row = click_report(*folders, near=10)["tasks"][TASK]
    assert row["near"] == 1 and row["mean_dy"] == 1.0
    assert (row["later_clicks"], row["repeats"]) == (2, 1)  # within 2.5 pixels on both axes


def test_the_cli_prints_json_and_refuses_unpaired_folders(folders, tmp_path, capsys):
    run, expert = folders
    assert main(["eval", "clicks", str(run), "--expert", str(expert), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tasks"][TASK]["first_click"]["hit"] == 1
    # the run as its own expert: its first steps record no target
    assert main(["eval", "clicks", str(expert), "--expert", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no expert episode whose first step clicks" in err
    with pytest.raises(ConfigError, match="near must be a positive"):
        click_report(run, expert, near=0)


def test_folders_that_share_no_episode_are_an_error(folders, tmp_path):
    run, expert = folders
    other = tmp_path / "other"
    _episode(other, 7, [_click(1, 1)], False)
    with pytest.raises(ConfigError, match="no episode pairs with an expert episode"):
        click_report(other, expert)


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no chromium")
def test_the_expert_run_online_hits_its_own_recorded_targets(tmp_path, capsys):
    """Real pages: the expert recorded with ``record`` and run with ``eval online`` on the
    same seeds clicks exactly where its recording says the target is."""
    rec, run = tmp_path / "rec", tmp_path / "run"
    for argv in (
        ["record", "miniwob/click-button", "--expert", "--episodes", "2", "--seed", "11",
         "--out", str(rec), "--json"],
        ["eval", "online", "miniwob/click-button", "--model", "expert", "--episodes", "2",
         "--seed", "11", "--workers", "1", "--out", str(run), "--json"],
    ):  # fmt: skip
        assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    row = click_report(run, rec)["tasks"]["miniwob/click-button"]
    assert row["first_click"] == {"hit": 2, "ended": 0, "nothing": 0, "no_click": 0}
    assert row["near"] == 2 and row["mean_dx"] == 0.0 and row["mean_dy"] == 0.0
    assert row["success"] == 1.0

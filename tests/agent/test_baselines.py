"""Image-blind baselines: the usual-spot table, its best point, and both policies on MiniWoB."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixelpilot.agent.baselines import (
    TABLE_ENV,
    RandomClicks,
    UsualSpot,
    best_point,
    usual_spot,
    usual_spot_table,
    write_table,
)
from pixelpilot.envs.base import Observation
from pixelpilot.errors import ConfigError


def test_best_point_lies_in_the_most_boxes() -> None:
    boxes = [(0, 0, 10, 10), (5, 5, 20, 20), (8, 8, 30, 30), (100, 100, 110, 110)]
    x, y = best_point(boxes)
    assert all(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in boxes[:3])


def test_table_from_recordings_clicks_inside_most_targets(tmp_path: Path) -> None:
    from pixelpilot.train.synthetic import write_synthetic

    root = write_synthetic(tmp_path / "syn", 40, seed=0, kinds=("dialog",))
    table = usual_spot_table(root)
    (click,) = table["synthetic/dialog"]
    assert click["type"] == "click"
    from pixelpilot.agent.trajectory import iter_episodes

    boxes = [ep.steps[0].target for ep in iter_episodes(root)]
    hits = sum(b[0] <= click["x"] <= b[2] and b[1] <= click["y"] <= b[3] for b in boxes)
    centre_x = sum((b[0] + b[2]) // 2 for b in boxes) // len(boxes)
    centre_y = sum((b[1] + b[3]) // 2 for b in boxes) // len(boxes)
    mean_hits = sum(b[0] <= centre_x <= b[2] and b[1] <= centre_y <= b[3] for b in boxes)
    assert hits >= max(1, mean_hits)


def _obs(task: str = "miniwob/x") -> Observation:
    from PIL import Image

    return Observation(Image.new("RGB", (160, 210)), "Click it.", {"task": task})


def test_random_clicks_stay_on_screen_and_repeat_for_an_instruction() -> None:
    from pixelpilot.tools.grammar import parse_response

    policy = RandomClicks()
    runs = []
    for seed in (1, 1, 2):
        policy.reset("Click it.")
        obs = Observation(_obs().screenshot, "Click it.", {"task": "miniwob/x", "seed": seed})
        runs.append([policy.act(obs).text for _ in range(20)])
    assert runs[0] == runs[1] and len(set(runs[0])) > 10
    assert runs[2] != runs[0]  # another episode of the same task clicks elsewhere
    for text in runs[0]:
        (click,) = parse_response(text, policy.coords, (160, 210)).actions
        assert 0 <= click.x < 160 and 0 <= click.y < 210


def test_usual_spot_plays_the_table_then_finishes() -> None:
    from pixelpilot.tools.grammar import parse_response

    table = {"miniwob/x": [{"type": "click", "x": 5, "y": 60}, {"type": "type", "content": "a"}]}
    policy = UsualSpot(table)
    policy.reset("")
    types = [
        parse_response(policy.act(_obs()).text, policy.coords, (160, 210)).actions[0]
        for _ in range(3)
    ]
    assert [a.type for a in types] == ["click", "type", "finished"]
    assert (types[0].x, types[0].y) == (5, 60)


def test_usual_spot_factory_needs_its_table(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(TABLE_ENV, raising=False)
    with pytest.raises(ConfigError, match=TABLE_ENV):
        usual_spot()
    path = write_table({"miniwob/x": [{"type": "click", "x": 1, "y": 2}]}, tmp_path / "t.json")
    monkeypatch.setenv(TABLE_ENV, str(path))
    assert usual_spot().table == json.loads(path.read_text())


def test_usual_spot_runs_through_the_factory_on_miniwob(tmp_path: Path, monkeypatch) -> None:
    """On click-test (one button at a random place) the blind click sometimes hits."""
    from pixelpilot.agent.factory import AgentFactory, PolicySpec

    table = {"miniwob/click-test": [{"type": "click", "x": 80, "y": 130}]}
    monkeypatch.setenv(TABLE_ENV, str(write_table(table, tmp_path / "t.json")))
    spec = PolicySpec.parse(None, factory="pixelpilot.agent.baselines:usual_spot")
    with AgentFactory(spec, max_steps=2) as factory:
        agent = factory.agent("miniwob/click-test")
        results = [agent.run(seed=s, out=tmp_path / f"ep-{s}") for s in range(3)]
    for r in results:
        assert r.steps == 2 or r.success
        first = json.loads((Path(r.trajectory) / "trajectory.jsonl").read_text().splitlines()[1])
        assert first["actions"][0] == {"type": "click", "x": 80, "y": 130}


def test_miss_first_records_recovery_episodes_whose_miss_is_no_target(tmp_path: Path) -> None:
    """Expert recordings after a seeded random first click: the click is written in the
    expert's frame and marked ``perturbed``; it shows in later prompts' history, is never a
    sample, and the usual-spot table ignores it. The same seeds record the same clicks."""
    from pixelpilot.agent.run import record_tasks
    from pixelpilot.agent.trajectory import iter_episodes
    from pixelpilot.eval.datasets import load_samples
    from pixelpilot.tools.frames import CoordinateFrame
    from pixelpilot.tools.grammar import parse_response

    runs = []
    for name in ("a", "b"):
        summary = record_tasks(
            ["miniwob/click-test"], episodes=6, seed=7, out=tmp_path / name, miss_first=True
        )
        assert summary["tasks"]["miniwob/click-test"]["episodes"] == 6
        runs.append(list(iter_episodes(tmp_path / name)))
    firsts = [[ep.steps[0].response for ep in run] for run in runs]
    assert firsts[0] == firsts[1] and len(set(firsts[0])) == 6
    recovered = [ep for ep in runs[0] if len(ep.steps) >= 2 and ep.success]
    assert recovered, "no random first click left click-test running"
    for ep in runs[0]:
        first, *rest = ep.steps
        assert first.perturbed and not any(s.perturbed for s in rest)
        frame = CoordinateFrame.from_record(ep.header["frame"], ep.header.get("frame_limits"))
        (click,) = parse_response(first.response, frame, tuple(ep.header["screen"])).actions
        assert first.actions[0] == {"type": "click", "x": click.x, "y": click.y}
    samples = load_samples(tmp_path / "a", "trajectory")
    assert samples and all(s.step >= 1 for s in samples)
    for s in samples:
        assert s.history[0][0] == next(
            ep.steps[0].response for ep in runs[0] if ep.directory.name in s.episode
        )
    x, y = best_point([ep.steps[1].target for ep in recovered])  # the expert's clicks only
    assert usual_spot_table(tmp_path / "a")["miniwob/click-test"] == [
        {"type": "click", "x": x, "y": y}
    ]

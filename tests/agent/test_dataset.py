"""Trajectories -> datasets.Dataset -> trajectories, images included."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from pixelpilot.agent.dataset import from_dataset, to_dataset
from pixelpilot.agent.trajectory import Step, TrajectoryWriter, iter_episodes, screenshot_name
from pixelpilot.errors import TrajectoryFormatError


def _episode(directory: Path, seed: int, steps: int, finish: bool) -> None:
    writer = TrajectoryWriter(
        directory,
        {"task": "t/x", "env": "t/x", "seed": seed, "model": "m", "frame": "pixels",
         "screen": [64, 48], "instruction": f"do {seed}"},
    )  # fmt: skip
    for i in range(steps):
        image = Image.effect_noise((64, 48), 30 + i).convert("RGB")
        extra = {"attempts": [{"response": "x", "error": "e"}]} if i == 1 else {}
        step = Step(index=i, screenshot=screenshot_name(i), response=f"Action: {i}",
                    thought=f"t{i}", actions=({"type": "click", "x": i, "y": 2 * i},),
                    reward=float(i == steps - 1), timing={"model": 0.1},
                    target=(1, 2, 3, 4) if i == 0 else None,
                    extra=extra)  # fmt: skip
        writer.append(step, image)
    if finish:
        writer.finish(True, 1.0, reason="terminated")
    else:
        writer.close()


def test_round_trip_keeps_every_step_and_image(tmp_path: Path) -> None:
    _episode(tmp_path / "src" / "t-x" / "seed-0", 0, 3, True)
    _episode(tmp_path / "src" / "t-x" / "seed-1", 1, 2, False)
    ds = to_dataset(tmp_path / "src")
    assert len(ds) == 5
    assert ds[0]["episode"] == "t-x/seed-0" and ds[0]["instruction"] == "do 0"
    assert ds[0]["image"].size == (64, 48) and ds[4]["seed"] == 1
    dirs = from_dataset(ds, tmp_path / "back")
    assert [d.relative_to(tmp_path / "back").as_posix() for d in dirs] == [
        "t-x/seed-0",
        "t-x/seed-1",
    ]
    pairs = zip(iter_episodes(tmp_path / "src"), iter_episodes(tmp_path / "back"), strict=True)
    for before, after in pairs:
        assert after.header == before.header and after.steps == before.steps
        assert after.end == before.end and after.finished == before.finished
        for step in before.steps:
            assert (
                after.screenshot_path(step).read_bytes()
                == before.screenshot_path(step).read_bytes()
            )


def test_empty_folder_and_existing_target_are_errors(tmp_path: Path) -> None:
    with pytest.raises(TrajectoryFormatError, match="no episodes"):
        to_dataset(tmp_path)
    _episode(tmp_path / "src" / "a", 0, 1, True)
    ds = to_dataset(tmp_path / "src")
    from_dataset(ds, tmp_path / "back")
    with pytest.raises(TrajectoryFormatError, match="already exists"):
        from_dataset(ds, tmp_path / "back")

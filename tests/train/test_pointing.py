"""The pointing objective: the target cell of a click, and training with it."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from pixelpilot.agent.sample import StepSample
from pixelpilot.train.pointing import CELL, cell_at, cell_centre, target_cell


def _sample(gold: dict, screen=(160, 210)) -> StepSample:
    return StepSample("i", "e", "t", 0, "x.png", "Click.", (gold,), screen)


def test_target_cell_is_the_merged_patch_under_the_click() -> None:
    cols, rows = math.ceil(160 / CELL), math.ceil(210 / CELL)
    assert target_cell(_sample({"type": "click", "x": 0, "y": 0})) == (0, cols * rows)
    assert target_cell(_sample({"type": "click", "x": 159, "y": 209})) == (
        rows * cols - 1,
        rows * cols,
    )
    assert target_cell(_sample({"type": "click", "x": 30, "y": 60}))[0] == 2 * cols + 1
    assert target_cell(_sample({"type": "type", "content": "a"})) is None


def test_the_cell_is_the_models_token_side() -> None:
    """With 14-pixel image tokens (size xs-14: patches unmerged) a 160x210 screen has 12 x 15
    cells, and the click's cell is the 14-pixel square under it."""
    cols, rows = 12, 15
    assert target_cell(_sample({"type": "click", "x": 30, "y": 60}), 14) == (4 * cols + 2, 180)
    assert target_cell(_sample({"type": "click", "x": 159, "y": 209}), 14) == (rows * cols - 1, 180)


def test_a_cells_centre_is_inside_that_cell() -> None:
    """``cell_centre`` inverts ``cell_at``: the centre of the cell under a pixel lies in the
    same cell, on either grid (the probe's ``point_in_box`` clicks there)."""
    assert cell_centre(0, (160, 210)) == (14.0, 14.0)
    assert cell_centre(4 * 12 + 2, (160, 210), 14) == (35.0, 63.0)
    for cell in (14, 28):
        for x, y in ((0, 0), (30, 60), (159, 209), (100, 5)):
            index, _ = cell_at(x, y, (160, 210), cell)
            cx, cy = cell_centre(index, (160, 210), cell)
            assert cell_at(int(cx), int(cy), (160, 210), cell)[0] == index
            assert abs(cx - x) <= cell / 2 and abs(cy - y) <= cell / 2


def test_the_label_choice_is_the_top_text_cell_against_a_uniform_pick() -> None:
    """``label_choice``: among the cells that hold one recorded text each, is the head's top
    cell the gold one; a uniform pick among them would score one over their number. Steps
    whose gold cell holds no text, or with one text cell only, make no choice."""
    from types import SimpleNamespace

    import torch

    from pixelpilot.train.pointing import PointingObjective

    objective = SimpleNamespace(cell=14)
    labels = (("ONE", (10, 20, 40, 34)), ("TWO", (80, 100, 110, 114)), ("x", (140, 190, 150, 200)))
    sample = StepSample("i", "e", "t", 0, "x.png", "Click button ONE.",
                        ({"type": "click", "x": 25, "y": 27},), (160, 210),
                        meta={"labels": labels})  # fmt: skip
    gold = target_cell(sample, 14)[0]
    two = cell_at(95, 107, (160, 210), 14)[0]
    scores = torch.zeros(180)
    scores[0] = 9.0  # the top cell overall holds no text: the choice is among the texts' cells
    scores[gold], scores[two] = 2.0, 1.0
    assert PointingObjective.label_choice(objective, sample, scores, gold) == (True, 1 / 3)
    scores[two] = 3.0
    assert PointingObjective.label_choice(objective, sample, scores, gold) == (False, 1 / 3)
    assert PointingObjective.label_choice(objective, sample, scores, 0) is None  # no text there
    alone = StepSample("i", "e", "t", 0, "x.png", "Click.", sample.gold, (160, 210),
                       meta={"labels": labels[:1]})  # fmt: skip
    assert PointingObjective.label_choice(objective, alone, scores, gold) is None
    assert PointingObjective.label_choice(objective, _sample(sample.gold[0]), scores, gold) is None


def test_the_pointing_loss_spans_the_checkpoints_own_cells(tmp_path: Path) -> None:
    """An untrained xs-14 model points over its 180 cells of 14 pixels (near uniform: the
    loss is about log 180), not over xs's 48 cells of 28."""
    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.pointing import train_pointing_sft
    from pixelpilot.train.synthetic import write_synthetic
    from pixelpilot.vlm.tiny import build_tiny

    model = build_tiny(tmp_path / "m", arch="kimi_k25", size="xs-14", cache=False)
    data = write_synthetic(tmp_path / "syn", 4, seed=0, kinds=("dialog", "button"))
    config = SFTConfig(data=str(data), model=str(model), out=str(tmp_path / "run"), max_steps=1,
                       batch_size=4, lr=1e-3, prompt_kind="grounding", progress=False)  # fmt: skip
    first = train_pointing_sft(config, sigma=20.0, thought=False).history[0]
    assert first["point_loss"] == pytest.approx(math.log(180), rel=0.1)


@pytest.mark.slow
def test_training_logs_the_pointing_loss_and_saves_no_extra_weights(tmp_path: Path) -> None:
    from tests.train.conftest import tensor_names

    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.pointing import train_pointing_sft
    from pixelpilot.train.synthetic import write_synthetic
    from pixelpilot.vlm.tiny import build_tiny

    model = build_tiny(arch="kimi_k25", size="xs")
    data = write_synthetic(tmp_path / "syn", 8, seed=0, kinds=("dialog", "button"))
    config = SFTConfig(data=str(data), model=str(model), out=str(tmp_path / "run"), max_steps=2,
                       batch_size=4, lr=1e-3, prompt_kind="grounding", progress=False)  # fmt: skip
    result = train_pointing_sft(config, sigma=20.0, thought=False)
    first = result.history[0]
    assert first["point_loss"] == pytest.approx(math.log(48), rel=0.15)  # 48 cells, near uniform
    assert first["loss"] > first["nll"]  # the answer loss plus the pointing term
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all("point_accuracy" in r for r in rows if "loss" in r)
    assert tensor_names(result.checkpoint) == tensor_names(model)


def test_launched_in_two_processes_it_takes_the_same_steps_as_one(tmp_path: Path) -> None:
    """``launch_pointing_sft``: two processes, each with half of every global batch, take the
    steps one process takes with the whole batch; a failing run is one ``LaunchError``."""
    import dataclasses

    from tests.train.conftest import step_rows

    from pixelpilot.errors import LaunchError
    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.pointing import launch_pointing_sft, train_pointing_sft
    from pixelpilot.train.synthetic import write_synthetic
    from pixelpilot.vlm.tiny import build_tiny

    model = build_tiny(arch="kimi_k25", size="xs")
    # every sample has a point: each rank's pointing mean is then over as many samples
    data = write_synthetic(tmp_path / "syn", 8, seed=0, kinds=("dialog", "button"))
    one = SFTConfig(data=str(data), model=str(model), out=str(tmp_path / "one"), max_steps=3,
                    batch_size=4, lr=1e-3, prompt_kind="grounding", progress=False)  # fmt: skip
    two = dataclasses.replace(one, out=str(tmp_path / "two"), batch_size=2)
    alone = train_pointing_sft(one, sigma=20.0, thought=False)
    launched = launch_pointing_sft(two, 2, sigma=20.0, thought=False)
    assert launched["steps"] == alone.steps == 3
    assert (Path(launched["checkpoint"]) / "model.safetensors").is_file()
    losses = [(r["loss"], r["point_loss"]) for r in step_rows(tmp_path / "two")]
    expected = [(r["loss"], r["point_loss"]) for r in alone.history]
    assert len(losses) == 3 and losses != [losses[0]] * 3
    for got, want in zip(losses, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-4)
    broken = dataclasses.replace(two, out=str(tmp_path / "broken"), data=str(tmp_path / "none"))
    with pytest.raises(LaunchError, match="SFT in 2 processes exited with status"):
        launch_pointing_sft(broken, 2, sigma=20.0, thought=False)


def test_the_look_objective_points_coordinates_at_the_gold_cell(tmp_path: Path) -> None:
    """Its pairs: the positions that predict the x and the y, each to the image token of the
    gold cell; a few steps raise the head's attention there and add no tensor."""
    import torch
    from tests.train.conftest import tensor_names

    from pixelpilot.train.config import SFTConfig, with_model_prompt
    from pixelpilot.train.data import PromptCache, conversation_for, load_split
    from pixelpilot.train.pointing import PointingObjective, train_pointing_sft
    from pixelpilot.train.synthetic import write_synthetic
    from pixelpilot.vlm import load
    from pixelpilot.vlm.tiny import build_tiny

    model = build_tiny(tmp_path / "m", arch="kimi_k25", size="xs", seed=0)
    data = write_synthetic(tmp_path / "syn", 8, seed=0, kinds=("dialog", "button"))
    config = SFTConfig(data=str(data), model=str(model), out=str(tmp_path / "run"), max_steps=12,
                       batch_size=4, lr=3e-3, prompt_kind="grounding", history_thoughts=False,
                       progress=False)  # fmt: skip
    vlm = load(str(model))
    config = with_model_prompt(config)
    samples = list(load_split(config).train[:3])
    cache = PromptCache(vlm, lambda s: conversation_for(s, vlm.profile, config))
    objective = PointingObjective(vlm, config, cache, 20.0, False, 0.0, 0.0, 1.0)
    with torch.no_grad():
        objective.sample_losses(samples)  # the forward pass records the batch's ids
    ids = objective._seen["input_ids"]
    pairs = objective.look_pairs(samples)
    assert len(pairs) == 2 * len(samples)
    numbers = objective.numbers
    for b, query, key in pairs:
        index, count = target_cell(samples[b])
        images = (ids[b] == objective.image_token).nonzero().flatten().tolist()
        assert key == images[-count:][index]
        assert int(ids[b, query + 1]) in numbers  # the next token is a coordinate
    xs = [numbers[int(ids[b, q + 1])] for b, q, _ in pairs[::2]]
    gold = [round(s.gold[0]["x"] * 1000 / s.screen[0]) for s in samples]
    assert all(abs(x - g) <= 1 for x, g in zip(xs, gold, strict=True)), (xs, gold)

    result = train_pointing_sft(config, sigma=20.0, thought=False, weight=0.0, look_weight=1.0)
    steps = [r for r in result.history if "loss" in r]
    first, last = steps[0]["look_attention"], steps[-1]["look_attention"]
    assert last > 2 * first, (first, last)
    assert tensor_names(result.checkpoint) == tensor_names(model)


def test_the_pointing_probe_counts_each_step_once_and_sees_what_training_taught(
    tmp_path: Path,
) -> None:
    """``pointing_probe``: every step with a point once, the checkpoint untouched, and after
    a few steps of the pointing objective on the same screens a higher accuracy."""
    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.pointing import pointing_probe, pointing_probe_by_task, train_pointing_sft
    from pixelpilot.train.synthetic import write_synthetic
    from pixelpilot.vlm.tiny import build_tiny

    model = build_tiny(tmp_path / "m", arch="kimi_k25", size="xs", seed=0)
    data = write_synthetic(tmp_path / "syn", 8, seed=0, kinds=("dialog", "button"))
    weights = (Path(model) / "model.safetensors").read_bytes()
    config = SFTConfig(data=str(data), model=str(model), out=str(tmp_path / "run"), max_steps=40,
                       batch_size=4, lr=3e-3, prompt_kind="grounding", history_thoughts=False,
                       progress=False)  # fmt: skip
    trained = train_pointing_sft(config, sigma=20.0, thought=False, weight=1.0).checkpoint
    before = pointing_probe(str(model), str(data))
    after = pointing_probe(trained, str(data))
    assert before["steps"] == after["steps"] == 8
    assert (Path(model) / "model.safetensors").read_bytes() == weights
    assert after["point_accuracy"] >= before["point_accuracy"] + 0.5, (before, after)
    per_task = pointing_probe_by_task(trained, str(data))  # one load, the same steps split
    assert sorted(per_task) == ["synthetic/button", "synthetic/dialog"]
    assert sum(f["steps"] for f in per_task.values()) == 8
    hits = sum(f["point_accuracy"] * f["steps"] for f in per_task.values())
    assert hits == pytest.approx(after["point_accuracy"] * 8)
    # every synthetic step records its target's box: the top cell's centre is judged on it
    assert after["boxed_steps"] == sum(f["boxed_steps"] for f in per_task.values()) == 8
    inside = sum(f["point_in_box"] * f["boxed_steps"] for f in per_task.values())
    assert inside == pytest.approx(after["point_in_box"] * 8)
    assert after["point_in_box"] * 8 == pytest.approx(round(after["point_in_box"] * 8))
    # synthetic screens record their words: the probe reads them too, each word once
    assert after["read_texts"] == sum(f["read_texts"] for f in per_task.values()) > 8
    # and their buttons' labels: the head's choice among them, judged per step with a choice
    assert after["label_steps"] == sum(f.get("label_steps", 0) for f in per_task.values()) > 0
    chosen = sum(f.get("label_choice", 0) * f.get("label_steps", 0) for f in per_task.values())
    assert chosen == pytest.approx(after["label_choice"] * after["label_steps"])
    assert 0 < after["label_chance"] <= 0.5
    read = sum(f["read_accuracy"] * f["read_texts"] for f in per_task.values())
    assert read == pytest.approx(after["read_accuracy"] * after["read_texts"])


def test_the_half_row_term_teaches_the_half_column_and_the_probe_reads_it(
    tmp_path: Path,
) -> None:
    """``half_weight`` (round 49): each gold cell's half-token logit learns whether the point
    lies in the cell's lower half; the term lowers over a few steps on the same screens, the
    answer loss is unchanged in form (no extra weights saved), and ``pointing_probe`` on a
    checkpoint declaring ``pointer_rows`` 2 reports ``half_accuracy`` and
    ``point_in_box_half`` beside the figures it had."""
    from dataclasses import replace

    from tests.train.conftest import tensor_names

    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.pointing import pointing_probe, train_pointing_sft
    from pixelpilot.train.synthetic import write_synthetic
    from pixelpilot.vlm.profiles import read_declaration, write_declaration
    from pixelpilot.vlm.tiny import build_tiny

    model = build_tiny(tmp_path / "m", arch="kimi_k25", size="xs-14", cache=False)
    data = write_synthetic(tmp_path / "syn", 8, seed=0, kinds=("dialog", "button"))
    config = SFTConfig(data=str(data), model=str(model), out=str(tmp_path / "run"), max_steps=30,
                       batch_size=4, lr=3e-3, prompt_kind="grounding", history_thoughts=False,
                       progress=False)  # fmt: skip
    result = train_pointing_sft(config, sigma=20.0, thought=False, weight=1.0, half_weight=1.0)
    halves = [r["half_loss"] for r in result.history if "half_loss" in r]
    assert len(halves) == 30 and sum(halves[-5:]) < sum(halves[:5]), halves
    assert all(0.0 <= r["half_accuracy"] <= 1.0 for r in result.history if "half_loss" in r)
    assert tensor_names(result.checkpoint) == tensor_names(model)
    plain = pointing_probe(result.checkpoint, str(data))
    assert "half_accuracy" not in plain and "point_in_box_half" not in plain
    declared = read_declaration(result.checkpoint)
    write_declaration(result.checkpoint, replace(declared, pointer_rows=2))
    figures = pointing_probe(result.checkpoint, str(data))
    assert figures["point_in_box"] == plain["point_in_box"] and figures["steps"] == 8
    assert figures["half_accuracy"] >= 0.75 and 0.0 <= figures["point_in_box_half"] <= 1.0

import json

import pytest

from pixelpilot.eval.datasets import DatasetFormatError, load_samples


def test_screenspot_adapter(screenspot_file):
    samples = load_samples(screenspot_file, "screenspot")
    assert len(samples) == 4
    s = samples[0]
    assert s.target == (90, 40, 110, 60) and s.gold == ({"type": "click", "x": 100, "y": 50},)
    assert s.screen == (200, 100) and s.task == "web/icon"


def test_androidcontrol_adapter_history(androidcontrol_file):
    samples = load_samples(androidcontrol_file, "androidcontrol")
    assert [s.id for s in samples] == ["a/0", "a/1", "a/2", "b/0", "b/1"]
    assert samples[1].gold == ({"type": "type", "content": "cats"},)
    assert samples[2].gold == ({"type": "press_back"},)
    assert samples[3].gold[0]["direction"] == "down"
    assert len(samples[2].history) == 2 and "click" in samples[2].history[0][0]
    assert samples[1].step_instruction == "type cats"


def test_mind2web_adapter(mind2web_file):
    samples = load_samples(mind2web_file, "mind2web")
    assert [s.gold[0]["type"] for s in samples] == ["click", "type", "click"]
    assert samples[0].target == (80, 40, 120, 60) and samples[1].target is None
    assert samples[2].step == 2 and len(samples[2].history) == 2


def test_trajectory_adapter(trajectory_dir):
    samples = load_samples(trajectory_dir, "trajectory")
    assert [s.id for s in samples] == ["ep-0/0", "ep-0/1", "ep-1/0"]
    assert samples[1].history[0][0].startswith("Thought: step 0")
    assert samples[0].frame == "uitars-1.0" and samples[0].instruction == "do the thing"


def test_bad_input_is_one_clear_error(tmp_path, screenspot_file):
    with pytest.raises(DatasetFormatError, match="unknown format"):
        load_samples(screenspot_file, "aitw")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "x", "bbox": [1, 2, 3, 4]}) + "\n")
    with pytest.raises(DatasetFormatError, match="bad.jsonl:1: missing 'img_filename'"):
        load_samples(bad, "screenspot")
    bad.write_text("{not json\n")
    with pytest.raises(DatasetFormatError, match="not valid JSON"):
        load_samples(bad, "mind2web")


def test_trajectories_of_an_online_run_keep_distinct_ids(trajectory_dir, tmp_path):
    import shutil

    root = tmp_path / "run" / "episodes"
    for task in ("miniwob__a", "miniwob__b"):
        shutil.copytree(trajectory_dir / "ep-0", root / task / "seed-00000")
    samples = load_samples(root, "trajectory")
    assert [s.id for s in samples] == [
        "miniwob__a/seed-00000/0",
        "miniwob__a/seed-00000/1",
        "miniwob__b/seed-00000/0",
        "miniwob__b/seed-00000/1",
    ]
    assert load_samples(root / "miniwob__a" / "seed-00000", "trajectory")[0].id == "seed-00000/0"

"""Small fixture files in every offline format, written by the tests themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

W, H = 200, 100  # fixture screenshot size; the screen centre is (100, 50)


def _png(path: Path, shade: int) -> str:
    Image.new("RGB", (W, H), (shade, 40, 90)).save(path)
    return path.name


@pytest.fixture
def screenspot_file(tmp_path: Path) -> Path:
    """Four grounding samples; boxes (x, y, w, h) 0 and 2 contain the centre (100, 50)."""
    boxes = [[90, 40, 20, 20], [0, 0, 30, 20], [60, 30, 80, 40], [150, 70, 40, 25]]
    rows = [
        {
            "img_filename": _png(tmp_path / f"ss{i}.png", 20 * i),
            "instruction": f"item {i}",
            "bbox": b,
            "platform": "web",
            "data_type": "text" if i % 2 else "icon",
        }
        for i, b in enumerate(boxes)
    ]
    path = tmp_path / "screenspot.json"
    path.write_text(json.dumps(rows))
    return path


@pytest.fixture
def androidcontrol_file(tmp_path: Path) -> Path:
    """Two episodes; the centre-clicker gets exactly one step right (episode a, step 0)."""
    eps = [
        {
            "episode_id": "a",
            "goal": "open the menu and search cats",
            "app": "browser",
            "screenshots": [_png(tmp_path / f"a{i}.png", 30 * i) for i in range(3)],
            "actions": [
                {"action_type": "click", "x": 105, "y": 48},
                {"action_type": "input_text", "text": "cats"},
                {"action_type": "navigate_back"},
            ],
            "step_instructions": ["tap menu", "type cats", "go back"],
        },
        {
            "episode_id": "b",
            "goal": "scroll and open settings",
            "app": "settings",
            "screenshots": [_png(tmp_path / f"b{i}.png", 50 + 30 * i) for i in range(2)],
            "actions": [
                {"action_type": "scroll", "direction": "down"},
                {"action_type": "click", "x": 190, "y": 95},
            ],
            "step_instructions": ["scroll down", "tap settings"],
        },
    ]
    path = tmp_path / "androidcontrol.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in eps) + "\n")
    return path


@pytest.fixture
def mind2web_file(tmp_path: Path) -> Path:
    """One task of three steps: CLICK on the centre, TYPE, CLICK in a corner."""
    steps = [
        {
            "annotation_id": "t1",
            "confirmed_task": "search for shoes",
            "website": "shop",
            "screenshot": _png(tmp_path / "m0.png", 10),
            "operation": {"op": "CLICK", "value": ""},
            "bbox": [80, 40, 40, 20],
        },
        {
            "annotation_id": "t1",
            "confirmed_task": "search for shoes",
            "website": "shop",
            "screenshot": _png(tmp_path / "m1.png", 60),
            "operation": {"op": "TYPE", "value": "running shoes"},
            "bbox": [80, 40, 40, 20],
        },
        {
            "annotation_id": "t1",
            "confirmed_task": "search for shoes",
            "website": "shop",
            "screenshot": _png(tmp_path / "m2.png", 90),
            "operation": {"op": "CLICK", "value": ""},
            "bbox": [0, 0, 20, 10],
        },
    ]
    path = tmp_path / "mind2web.jsonl"
    path.write_text("\n".join(json.dumps(s) for s in steps) + "\n")
    return path


@pytest.fixture
def trajectory_dir(tmp_path: Path) -> Path:
    """Two recorded expert episodes (uitars-1.0 answers, target boxes on the clicks)."""
    from pixelpilot.agent.trajectory import Step, TrajectoryWriter, screenshot_name

    root = tmp_path / "episodes"
    plans = {
        "ep-0": [
            (
                "click(start_box='(500,500)')",
                {"type": "click", "x": 100, "y": 50},
                (90, 40, 110, 60),
            ),
            ("type(content='hello')", {"type": "type", "content": "hello"}, None),
        ],
        "ep-1": [
            ("click(start_box='(100,100)')", {"type": "click", "x": 20, "y": 10}, (10, 5, 30, 15))
        ],
    }
    for name, steps in plans.items():
        header = {
            "task": "miniwob/fixture",
            "env": "fixture",
            "seed": 0,
            "model": "expert",
            "frame": "uitars-1.0",
            "screen": [W, H],
            "instruction": "do the thing",
        }
        with TrajectoryWriter(root / name, header) as writer:
            for i, (text, action, box) in enumerate(steps):
                step = Step(
                    index=i,
                    screenshot=screenshot_name(i),
                    response=f"Thought: step {i}\nAction: {text}",
                    actions=(action,),
                    target=box,
                )
                writer.append(step, Image.new("RGB", (W, H), (i * 40, 0, 0)))
            writer.finish(True, 1.0)
    return root

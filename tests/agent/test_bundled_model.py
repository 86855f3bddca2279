"""The bundled default model (src/pixelpilot/models/default): small enough to ship, declares the
prompt it was trained with, and acts when no --model is given: on held-out seeds of the tasks
its model card says it solves, it solves them (click-tab: 1.00 over 50 held-out episodes), and
it types the text an instruction quotes (enter-text: 1.00)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pixelpilot.agent import factory
from pixelpilot.vlm.profiles import read_declaration

HELD_OUT = 1_000_000  # the evaluation seeds of docs/default-model.md; training used < 1,000,000


def test_the_bundled_model_ships_small_and_declares_its_prompt() -> None:
    folder = factory.default_model_path()
    assert folder is not None, "the bundled model is missing from src/pixelpilot/models/default"
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    assert size < 25 * 2**20
    declared = read_declaration(folder)
    assert declared.prompt_kind == "grounding"
    assert declared.history_thoughts is False  # trained on histories without Thoughts
    assert declared.pointer_weight == 1.0  # pointer-guided coordinates (vlm/pointer.py)
    assert declared.well_formed_points is True  # the point grammar (vlm/points.py)
    assert declared.quoted_typing is True  # typing copies a quoted string (vlm/quoted.py)
    assert declared.well_formed_actions is True  # the call's grammar (vlm/wellformed.py)
    assert declared.pointer_rows == 2  # half rows (vlm/pointer.py, round 49)
    # the read guide with the warm-up's word head and a head fitted on the final checkpoint
    # (vlm/read_guide.py, train/read_fit.py; rounds 52 and 53)
    assert declared.read_weight == 2.0
    assert sorted(declared.read_heads) == ["fit-head.safetensors", "word-head.safetensors"]
    assert all((folder / name).is_file() for name in declared.read_heads)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "kimi_k25"
    assert (folder / "MODEL_CARD.md").read_text().startswith("# pixelpilot default model")


def _cli(*args: str, timeout: float = 300) -> dict:
    cmd = [sys.executable, "-m", "pixelpilot.cli", *args, "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_run_without_model_uses_it_and_clicks_the_tab(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _cli("run", "--env", "miniwob/click-tab", "--seed", str(HELD_OUT),
                  "--max-steps", "2", "--out", str(out))  # fmt: skip
    assert result["model"].startswith("default (kimi_k25, ")
    rows = [json.loads(line) for line in (out / "trajectory.jsonl").read_text().splitlines()]
    first = rows[1]  # the header, then the first step
    assert first["actions"] and first["actions"][0]["type"] == "click"  # a parsed answer
    assert result["success"] is True and result["steps"] == 1


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_held_out_success_matches_the_model_card(tmp_path: Path) -> None:
    tasks = "miniwob/click-tab,miniwob/click-test,miniwob/focus-text,miniwob/enter-text"
    report = _cli("eval", "online", tasks, "--episodes", "20", "--seed", str(HELD_OUT),
                  "--max-steps", "4", "--out", str(tmp_path / "eval"), timeout=1200)  # fmt: skip
    assert report["model"].startswith("default (kimi_k25, ")
    rates = {t.split("/")[1]: v["success_rate"] for t, v in report["tasks"].items()}
    typing = rates.pop("enter-text")
    assert all(rate >= 0.8 for rate in rates.values()), rates  # card: 1.00, 1.00, 0.98 on 50
    assert typing >= 0.7, typing  # card: 1.00 on 50 (random clicks and the third model: 0)

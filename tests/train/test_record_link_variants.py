"""scripts/record-link-variants: one click-link paragraph with each of its links named."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "record-link-variants"


def _episode(folder: Path) -> tuple[dict, dict, dict]:
    head, step, *rest = [
        json.loads(x) for x in (folder / "trajectory.jsonl").read_text().splitlines()
    ]
    return head, step, rest[-1]


def test_each_variant_names_another_link_of_the_same_paragraph(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--episodes", "1",
                          "--seed", "123", "--variants", "2"],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["v0"] == summary["v1"] == {"screens": 1, "repeats": 0, "expert_success": 1.0}
    folders = [tmp_path / f"v{v}" / "miniwob-click-link" / "seed-123" for v in (0, 1)]
    (h0, s0, e0), (h1, s1, e1) = (_episode(f) for f in folders)
    named = [re.search(r'"(.*)"', h["instruction"]).group(1) for h in (h0, h1)]
    assert named[0] != named[1]
    # the paragraph is the seed's in both: the same words in the same boxes
    assert s0["labels"] == s1["labels"]
    for name, step, end in zip(named, (s0, s1), (e0, e1), strict=True):
        assert end["success"] is True
        x, y = step["actions"][0]["x"], step["actions"][0]["y"]
        under = [t for t, a, b, c, d in step["labels"] if a <= x <= c and b <= y <= d]
        assert under == [name]  # the expert clicked the named link's word
    # below the instruction band the two screenshots are the same pixels; the band differs
    shots = [Image.open(f / "step-0000.png").convert("RGB") for f in folders]
    assert shots[0].crop((0, 50, 160, 210)).tobytes() == shots[1].crop((0, 50, 160, 210)).tobytes()
    assert shots[0].crop((0, 0, 160, 50)).tobytes() != shots[1].crop((0, 0, 160, 50)).tobytes()


def test_bad_counts_are_one_line_errors(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "o"), "--episodes", "0",
                          "--seed", "1"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert run.returncode == 2 and run.stderr.strip().startswith("error:")
    assert not (tmp_path / "o").exists()

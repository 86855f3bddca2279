"""scripts/link-paragraphs: click-link's layout drawn with PIL, boxes on the drawn words."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from PIL import Image

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "link-paragraphs"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def test_the_named_link_is_drawn_blue_inside_its_box(tmp_path: Path) -> None:
    run = _run(str(tmp_path), "--count", "6", "--seed", "3", "--jitter", "10")
    assert run.returncode == 0, run.stderr
    trajectories = sorted(tmp_path.rglob("trajectory.jsonl"))
    assert len(trajectories) == 6
    tops = set()
    for path in trajectories:
        head, step, *_ = [json.loads(x) for x in path.read_text().splitlines()]
        named = re.fullmatch(r'Click on the link "(.+)"\.', head["instruction"]).group(1)
        labels = step["labels"]
        assert len(labels) == 20  # click-link's paragraph: 20 words
        words = {tuple(box): text for text, *box in labels}
        x1, y1, x2, y2 = step["target"]
        assert words[(x1, y1, x2, y2)] == named
        image = Image.open(path.parent / step["screenshot"]).convert("RGB")
        blue = sum(
            image.getpixel((x, y)) == (0, 0, 255) for x in range(x1, x2) for y in range(y1, y2)
        )
        assert blue >= x2 - x1  # at least its underline
        assert all(0 <= b[0] and b[2] <= 160 and 50 <= b[1] and b[3] <= 210 for b in words)
        tops.add(min(b[1] for b in words))
    assert len(tops) > 1  # the jitter moves the paragraph


def test_bad_counts_are_one_line_errors(tmp_path: Path) -> None:
    for args in (["--count", "0"], ["--count", "2", "--jitter", "-1"]):
        run = _run(str(tmp_path / "o"), *args)
        assert run.returncode == 2 and run.stderr.strip().startswith("error:")
    assert not (tmp_path / "o").exists()

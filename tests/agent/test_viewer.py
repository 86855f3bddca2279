"""The HTML viewer, loaded in headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pixelpilot.agent.trajectory import Step, TrajectoryWriter, screenshot_name
from pixelpilot.agent.viewer import render_html, write_view
from pixelpilot.errors import TrajectoryFormatError

ACTIONS = [
    {"type": "click", "x": 100, "y": 60},
    {"type": "drag", "x1": 20, "y1": 20, "x2": 180, "y2": 100},
    {"type": "scroll", "x": 100, "y": 60, "direction": "down"},
    {"type": "type", "content": "hello <b>world</b>\n"},
    {"type": "hotkey", "keys": ["ctrl", "c"]},
    {"type": "finished", "content": "done"},
]


def _episode(directory: Path, n: int = len(ACTIONS)) -> None:
    writer = TrajectoryWriter(
        directory,
        {"task": "t/v", "env": "t/v", "seed": 0, "model": "m", "frame": "pixels",
         "screen": [200, 120], "instruction": "Do <things> & stuff"},
    )  # fmt: skip
    for i in range(n):
        im = Image.new("RGB", (200, 120), (250, 250, 250))
        ImageDraw.Draw(im).rectangle((10 + i * 20, 30, 40 + i * 20, 90), fill=(20, 90, 200))
        writer.append(
            Step(index=i, screenshot=screenshot_name(i), response=f"Action: {i}",
                 thought=f"thought {i}", actions=(ACTIONS[i % len(ACTIONS)],),
                 reward=1.0 if i == n - 1 else 0.0, timing={"model": 0.5, "env": 0.01},
                 target=(50, 40, 150, 80) if i == 0 else None,
                 error="click failed: nope" if i == 1 else None),
            im,
        )  # fmt: skip
    writer.finish(True, 1.0, reason="finished")


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
        )
        context = browser.new_context(viewport={"width": 1100, "height": 800}, offline=True)
        yield context.new_page()
        browser.close()


def test_view_of_one_episode_renders_every_step(page: Any, tmp_path: Path) -> None:
    _episode(tmp_path / "ep")
    path = write_view(tmp_path / "ep")
    assert path == tmp_path / "ep" / "view.html"
    page.goto(path.as_uri())
    assert page.locator(".step").count() == len(ACTIONS)
    widths = page.evaluate("[...document.images].map(i => i.naturalWidth)")
    assert widths == [200] * len(ACTIONS)  # every inlined screenshot decoded
    assert page.locator("circle.act-point").count() == 1
    assert page.locator("line.act-drag").count() == 1
    assert page.locator("line.act-scroll").count() == 1
    text = page.inner_text("body")
    assert "type: 'hello <b>world</b>\\n'" in text  # escaped, shown as text
    assert "keys: ctrl+c" in text and "thought 3" in text and "click failed: nope" in text
    assert "Do <things> & stuff" in text and "success" in text
    # keyboard navigation
    assert page.get_attribute(".step.current", "data-index") == "0"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert page.get_attribute(".step.current", "data-index") == "2"
    page.keyboard.press("ArrowLeft")
    assert page.get_attribute(".step.current", "data-index") == "1"
    assert page.inner_text("#pos") == f"2 / {len(ACTIONS)}"
    shot = np.asarray(Image.open(__import__("io").BytesIO(page.screenshot())).convert("L"))
    assert shot.std() > 10  # not a blank page


def test_view_of_a_folder_has_every_episode(page: Any, tmp_path: Path) -> None:
    _episode(tmp_path / "a" / "seed-0", 2)
    _episode(tmp_path / "b" / "seed-0", 3)
    path = write_view(tmp_path, tmp_path / "all.html")
    page.goto(path.as_uri())
    assert page.locator(".episode").count() == 2
    assert page.locator(".step").count() == 5
    assert "a/seed-0" in page.inner_text(".episode >> nth=0")


def test_view_needs_episodes(tmp_path: Path) -> None:
    with pytest.raises(TrajectoryFormatError, match="no episodes"):
        render_html(tmp_path)

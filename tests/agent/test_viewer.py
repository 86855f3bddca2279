"""The HTML viewer, loaded in headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pixelpilot.agent.trajectory import Step, TrajectoryWriter, screenshot_name
from pixelpilot.agent.viewer import action_svg, render_html, write_view
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


# --- hostile trajectories: text is shown, never run; non-numbers never reach the SVG -------

PAYLOAD = '5"/></svg><img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'


def _hostile_episode(directory: Path) -> None:
    writer = TrajectoryWriter(
        directory,
        {"task": "t/" + PAYLOAD, "env": "t/v", "seed": 0, "model": PAYLOAD, "frame": "pixels",
         "screen": [200, 120], "instruction": PAYLOAD},
    )  # fmt: skip
    actions = [
        {"type": "type", "content": PAYLOAD},
        {"type": "finished", "content": PAYLOAD},
        {"type": "open_app", "app_name": PAYLOAD},
        {"type": "call_user", "content": PAYLOAD},
    ]
    for i, action in enumerate(actions):
        writer.append(
            Step(index=i, screenshot=screenshot_name(i), response=PAYLOAD, thought=PAYLOAD,
                 reflection=PAYLOAD, actions=(action,), timing={PAYLOAD: 0.5}, error=PAYLOAD),
            Image.new("RGB", (200, 120), (250, 250, 250)),
        )  # fmt: skip
    writer.finish(False, 0.0, reason=PAYLOAD)


def test_markup_in_every_text_field_is_shown_as_text(page: Any, tmp_path: Path) -> None:
    directory = tmp_path / 'ep"<img src=x onerror="window.pwned=3">'
    _hostile_episode(directory)
    path = write_view(tmp_path, tmp_path / "view.html")
    html = path.read_text()
    assert "<script>window.pwned" not in html and "<img src=x" not in html
    page.goto(path.as_uri())
    page.wait_for_timeout(200)  # let any onerror handler run, if one had been injected
    assert page.evaluate("window.pwned") is None
    assert page.locator("img").count() == 4  # the screenshots, nothing injected
    assert page.locator("script").count() == 1  # the viewer's own
    text = page.inner_text("body")
    assert text.count(PAYLOAD) >= 4 * 4  # thought, error, raw response, reflection per step
    assert 'ep"<img src=x onerror="window.pwned=3">' in text


@pytest.mark.parametrize(
    "action",
    [
        {"type": "click", "x": PAYLOAD, "y": 5},
        {"type": "drag", "x1": 1, "y1": 2, "x2": PAYLOAD, "y2": 4},
        {"type": "scroll", "x": 1, "y": 2, "direction": PAYLOAD},
        {"type": "hotkey", "keys": [PAYLOAD]},
        {"type": "click", "x": 1, "y": 2, "onload": PAYLOAD},
    ],
)
def test_actions_that_are_not_valid_are_refused_not_drawn(
    tmp_path: Path, capsys: Any, action: dict[str, Any]
) -> None:
    import json

    from pixelpilot.agent.trajectory import FILE_NAME
    from pixelpilot.cli import main

    _episode(tmp_path / "ep", 1)
    path = tmp_path / "ep" / FILE_NAME
    lines = path.read_text().splitlines()
    step = json.loads(lines[1])
    step["actions"] = [action]
    lines[1] = json.dumps(step)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(TrajectoryFormatError, match="action 0"):
        render_html(tmp_path / "ep")
    with pytest.raises(ValueError):
        action_svg(action, (200, 120))
    assert main(["view", str(tmp_path / "ep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "action 0" in err[0]
    assert not (tmp_path / "ep" / "view.html").exists()


def test_screenshots_outside_the_episode_are_never_embedded(tmp_path: Path, capsys: Any) -> None:
    import json
    import os

    from pixelpilot.agent.trajectory import FILE_NAME
    from pixelpilot.cli import main

    _episode(tmp_path / "ep", 2)
    Image.new("RGB", (8, 8), "red").save(tmp_path / "secret.png")
    path = tmp_path / "ep" / FILE_NAME
    for name in ("../secret.png", str(tmp_path / "secret.png")):
        lines = path.read_text().splitlines()
        step = json.loads(lines[1])
        step["screenshot"] = name
        lines[1] = json.dumps(step)
        path.write_text("\n".join(lines) + "\n")
        assert main(["view", str(tmp_path / "ep")]) == 2
        assert "plain file name" in capsys.readouterr().err
    lines[1] = json.dumps({**step, "screenshot": "step-0000.png"})  # step 0 restored
    path.write_text("\n".join(lines) + "\n")
    os.remove(tmp_path / "ep" / "step-0001.png")
    os.symlink(tmp_path / "secret.png", tmp_path / "ep" / "step-0001.png")
    assert main(["view", str(tmp_path / "ep")]) == 2
    assert "leads out of" in capsys.readouterr().err
    assert not (tmp_path / "ep" / "view.html").exists()


def test_the_html_goes_where_asked_and_never_into_a_folder(tmp_path: Path) -> None:
    from pixelpilot.errors import ConfigError

    _episode(tmp_path / "ep", 1)
    path = write_view(tmp_path / "ep", tmp_path / "new" / "deeper" / "v.html")
    assert path.read_text().startswith("<!doctype html>")
    (tmp_path / "ep" / "view.html").mkdir()
    with pytest.raises(ConfigError, match="is a folder"):
        write_view(tmp_path / "ep")

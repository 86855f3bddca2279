"""Coordinate frames: smart_resize against its definition and the reference, conversions."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pixelpilot.tools import CoordinateFrame, from_screen, smart_resize, to_screen
from pixelpilot.tools.frames import MAX_PIXELS, MIN_PIXELS, clamp_point

sides = st.integers(min_value=1, max_value=8000)


@settings(max_examples=300, deadline=None)
@given(sides, sides)
def test_smart_resize_keeps_its_promises_and_matches_the_reference(height, width):
    from ui_tars.action_parser import smart_resize as reference

    if max(height, width) / min(height, width) > 200:
        with pytest.raises(ValueError, match="aspect ratio"):
            smart_resize(height, width)
        return
    h, w = smart_resize(height, width)
    assert (h, w) == reference(height, width)
    assert h % 28 == 0 and w % 28 == 0
    assert h * w <= MAX_PIXELS
    if h * w < MIN_PIXELS:  # only when flooring to factor 28 cannot reach the minimum
        assert max(h, w) / min(h, w) > 10


def test_smart_resize_known_sizes():
    assert smart_resize(720, 1280) == (728, 1288)
    assert smart_resize(1080, 1920) == (1092, 1932)
    assert smart_resize(100, 100) == (280, 280)  # scaled up to min_pixels
    h, w = smart_resize(4320, 7680)  # 8K: scaled down under max_pixels
    assert h * w <= MAX_PIXELS and abs(w / h - 16 / 9) < 0.02


@pytest.mark.parametrize("frame", ["uitars-1.5", "uitars-1.0", "pixels"])
@pytest.mark.parametrize("screen", [(1280, 720), (1080, 2400), (390, 844), (3840, 2160)])
def test_from_screen_then_to_screen_is_within_one_model_unit(frame, screen):
    coords = CoordinateFrame.of(frame)
    mw, mh = coords.model_size(screen)
    for x, y in [(0, 0), (screen[0] - 1, screen[1] - 1), (screen[0] // 3, screen[1] // 7)]:
        mx, my = from_screen(x, y, frame, screen)
        sx, sy = to_screen(mx, my, frame, screen)
        assert abs(sx - x) <= 0.5 * screen[0] / mw + 1e-9
        assert abs(sy - y) <= 0.5 * screen[1] / mh + 1e-9


def test_frames_formulas():
    assert to_screen(500, 500, "uitars-1.0", (1920, 1080)) == (960.0, 540.0)
    assert to_screen(644, 364, "uitars-1.5", (1280, 720)) == (640.0, 360.0)
    assert to_screen(7, 9, "pixels", (1280, 720)) == (7, 9)
    frame = CoordinateFrame.of("uitars-1.5", max_pixels=1280 * 28 * 28)
    w, h = frame.model_size((1920, 1080))
    assert w * h <= 1280 * 28 * 28
    assert frame.to_screen(w / 2, h / 2, (1920, 1080)) == (960.0, 540.0)


def test_bad_frames_and_screens():
    with pytest.raises(ValueError, match="frame"):
        CoordinateFrame("uitars-2")
    with pytest.raises(ValueError, match="screen"):
        to_screen(1, 1, "pixels", (0, 10))
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(1, 500)
    with pytest.raises(ValueError, match="min_pixels"):
        CoordinateFrame.of("uitars-1.5", min_pixels=10, max_pixels=5).model_size((100, 100))


def test_clamp_point():
    assert clamp_point(-0.4, 719.4, (1280, 720)) == (0, 719, False)
    assert clamp_point(-3, 720, (1280, 720)) == (0, 719, True)
    assert clamp_point(1e6, 5, None) == (1000000, 5, False)
    assert clamp_point(2.5, 3.5, None) == (3, 4, False)  # half up, not banker's rounding
    assert math.isclose(to_screen(1000, 0, "uitars-1.0", (1280, 720))[0], 1280)

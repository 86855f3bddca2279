"""Property tests: format/parse round trip in every frame, and a fuzz test of the parser."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pixelpilot.errors import ParseError
from pixelpilot.tools import (
    CallUser,
    Click,
    CoordinateFrame,
    Drag,
    Finished,
    Hotkey,
    LeftDouble,
    LongPress,
    OpenApp,
    PressBack,
    PressHome,
    Response,
    RightSingle,
    Scroll,
    Type,
    Wait,
    format_response,
    parse_response,
)

CORPUS = [json.loads(line) for line in (Path(__file__).parent / "data" / "corpus.jsonl").open()]
KEYS = ["ctrl", "shift", "alt", "meta", "enter", "tab", "escape", "f5", "a", "z", "1", "+", "/"]


@st.composite
def screens(draw):
    width = draw(st.integers(min_value=50, max_value=4000))
    height = draw(st.integers(min_value=max(1, width // 100), max_value=min(4000, width * 100)))
    return width, height


def actions(screen):
    w, h = screen
    x, y = st.integers(0, w - 1), st.integers(0, h - 1)
    text = st.text(max_size=40)
    return st.one_of(
        st.builds(Click, x=x, y=y),
        st.builds(LeftDouble, x=x, y=y),
        st.builds(RightSingle, x=x, y=y),
        st.builds(LongPress, x=x, y=y),
        st.builds(Drag, x1=x, y1=y, x2=x, y2=y),
        st.builds(Scroll, x=x, y=y, direction=st.sampled_from(["up", "down", "left", "right"])),
        st.builds(Hotkey, keys=st.lists(st.sampled_from(KEYS), min_size=1, max_size=3).map(tuple)),
        st.builds(Type, content=text),
        st.builds(Finished, content=text),
        st.builds(CallUser, content=text),
        st.builds(OpenApp, app_name=text.filter(lambda s: s.strip())),
        st.just(Wait()),
        st.just(PressHome()),
        st.just(PressBack()),
    )


def close(parsed, original, tolerance):
    if type(parsed) is not type(original):
        return False
    a, b = parsed.to_dict(), original.to_dict()
    for key, value in b.items():
        if isinstance(value, int) and key != "type":
            if abs(a[key] - value) > tolerance:
                return False
        elif a[key] != value:
            return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_format_then_parse_round_trips(data):
    screen = data.draw(screens())
    frame = data.draw(st.sampled_from(["uitars-1.5", "uitars-1.0", "pixels"]))
    original = data.draw(st.lists(actions(screen), min_size=1, max_size=3))
    thought = data.draw(st.none() | st.from_regex(r"[A-Za-z0-9 ,.'()]{1,30}", fullmatch=True))
    text = format_response(thought, original, frame, screen)
    response = parse_response(text, frame, screen)
    mw, mh = CoordinateFrame.of(frame).model_size(screen)
    # half a model unit in screen pixels, plus rounding to integer pixels
    tolerance = 0.5 * max(screen[0] / mw, screen[1] / mh) + 1
    assert len(response.actions) == len(original)
    for parsed, want in zip(response.actions, original, strict=True):
        assert close(parsed, want, tolerance), (text, parsed, want)
    if frame == "pixels":
        assert response.actions == tuple(original)
    if thought is not None and thought.strip():
        assert response.thought == thought.strip()


MUTATION_ALPHABET = "'\"\\()[],=<>|:：\n \t0123456789-.+_abxyActionThought"


@st.composite
def mutated_outputs(draw):
    entry = draw(st.sampled_from(CORPUS))
    text = entry["text"]
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 12)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "duplicate", "truncate"]))
        noise = draw(st.text(alphabet=MUTATION_ALPHABET, max_size=8) | st.text(max_size=4))
        if kind == "delete":
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = text[:i] + noise + text[i:]
        elif kind == "replace":
            text = text[:i] + noise + text[j:]
        elif kind == "duplicate":
            text = text[:j] + text[i:j] + text[j:]
        else:
            text = text[:i]
    return entry, text


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_outputs())
def test_parser_raises_only_parse_error_on_mutated_real_outputs(case):
    entry, text = case
    try:
        response = parse_response(text, entry["frame"], tuple(entry["screen"]))
    except ParseError as exc:
        assert exc.position is None or 0 <= exc.position <= len(text)
        assert exc.text == text and str(exc)
        return
    assert isinstance(response, Response) and response.actions
    width, height = entry["screen"]
    for action in response.actions:
        for key, value in action.to_dict().items():
            if key in ("x", "x1", "x2"):
                assert 0 <= value < width
            if key in ("y", "y1", "y2"):
                assert 0 <= value < height


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parser_raises_only_parse_error_on_any_text(text):
    try:
        parse_response(text, "uitars-1.5", (1280, 720))
    except ParseError:
        pass

"""Conformance with the reference parser of the `ui-tars` package, over a written corpus.

Wherever ``ui_tars.action_parser.parse_action_to_structure_output`` parses an answer, the
screen point it implies (its fractions of the resized image times the screen size) must agree
with ours within 1 px. The corpus entries marked ``rejects``/``differs`` check the reference's
known faults (documented in docs/uitars-compat.md) and our own behaviour on them.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from pixelpilot.tools import Action, Drag, parse_response
from pixelpilot.tools.actions import normalize_key
from pixelpilot.tools.frames import clamp_point
from pixelpilot.tools.grammar import ACTION_ALIASES

ui_tars = pytest.importorskip("ui_tars.action_parser")

CORPUS = [json.loads(line) for line in (Path(__file__).parent / "data" / "corpus.jsonl").open()]
AGREES = [e for e in CORPUS if e["reference"] == "agrees"]


def reference(entry: dict) -> list[dict]:
    """The reference's parse of an entry (its debug prints silenced).

    The reference does not accept the ``<|box_start|>``/``<|box_end|>`` tokens: in the
    UI-TARS pipeline they are special tokens that decoding with ``skip_special_tokens``
    removes, so they are removed here the same way before the reference sees the text.
    """
    width, height = entry["screen"]
    kwargs = {"max_pixels": entry["max_pixels"]} if "max_pixels" in entry else {}
    model_type = "qwen25vl" if entry["frame"] == "uitars-1.5" else "qwen2vl"
    with contextlib.redirect_stdout(io.StringIO()):
        return ui_tars.parse_action_to_structure_output(
            strip_box_tokens(entry["text"]), 1000, height, width, model_type=model_type, **kwargs
        )


def strip_box_tokens(text: str) -> str:
    return text.replace("<|box_start|>", "").replace("<|box_end|>", "")


def reference_point(box: str, screen: tuple[int, int]) -> tuple[int, int]:
    x1, y1, x2, y2 = json.loads(box)  # fractions of the image, as a list literal
    x, y, _ = clamp_point((x1 + x2) / 2 * screen[0], (y1 + y2) / 2 * screen[1], screen)
    return x, y


def assert_agrees(ours: Action, theirs: dict, screen: tuple[int, int]) -> None:
    assert ours.type == ACTION_ALIASES[theirs["action_type"]]
    inputs = theirs["action_inputs"]
    if isinstance(ours, Drag):
        for (x, y), key in (((ours.x1, ours.y1), "start_box"), ((ours.x2, ours.y2), "end_box")):
            rx, ry = reference_point(inputs[key], screen)
            assert abs(x - rx) <= 1 and abs(y - ry) <= 1, (key, (x, y), (rx, ry))
    elif ours.point is not None:
        rx, ry = reference_point(inputs["start_box"], screen)
        assert abs(ours.point[0] - rx) <= 1 and abs(ours.point[1] - ry) <= 1
    data = ours.to_dict()
    for field in ("content", "app_name", "direction"):
        if field in data:
            assert data[field] == inputs.get(field, ""), field
    if "keys" in data:
        spec = inputs.get("key") or inputs.get("hotkey")
        assert data["keys"] == [normalize_key(k) for k in spec.split()]


def test_corpus_is_large_and_varied():
    assert len(AGREES) >= 40
    assert {e["frame"] for e in AGREES} == {"uitars-1.0", "uitars-1.5"}
    assert len({tuple(e["screen"]) for e in AGREES}) >= 8
    assert any(e["screen"][1] > e["screen"][0] for e in AGREES)  # phones
    assert any("<point>" in e["text"] for e in AGREES)
    assert any("<|box_start|>" in e["text"] for e in AGREES)


@pytest.mark.parametrize("entry", AGREES, ids=[e["id"] for e in AGREES])
def test_screen_points_agree_with_the_reference_within_one_pixel(entry):
    screen = tuple(entry["screen"])
    kwargs = {"max_pixels": entry["max_pixels"]} if "max_pixels" in entry else {}
    ours = parse_response(entry["text"], entry["frame"], screen, **kwargs)
    theirs = reference(entry)
    assert len(ours.actions) == len(theirs)
    for action, ref in zip(ours.actions, theirs, strict=True):
        assert_agrees(action, ref, screen)
    assert ours.thought == (theirs[0]["thought"] or None)
    assert ours.reflection == theirs[0]["reflection"]


OTHERS = [e for e in CORPUS if e["reference"] != "agrees"]


@pytest.mark.parametrize("entry", OTHERS, ids=[e["id"] for e in OTHERS])
def test_where_the_reference_fails_we_parse_as_documented(entry):
    ours = parse_response(entry["text"], entry["frame"], tuple(entry["screen"]))
    assert [a.to_dict() for a in ours.actions] == entry["expected"]
    if entry["reference"] == "rejects":
        with pytest.raises((ValueError, AssertionError)):
            reference(entry)
    else:
        theirs = reference(entry)
        got = [(r["action_type"], r["action_inputs"]) for r in theirs]
        assert [a.to_dict() for a in ours.actions] != got
        summary = json.dumps(got)
        assert "breakstart_box=3" in summary or "ctrl+shift+t" in summary


def test_reference_rejects_box_tokens_that_we_accept():
    entry = next(e for e in AGREES if "<|box_start|>" in e["text"])
    with pytest.raises(ValueError):
        with contextlib.redirect_stdout(io.StringIO()):
            ui_tars.parse_action_to_structure_output(entry["text"], 1000, 1080, 1920)
    assert parse_response(entry["text"], entry["frame"], tuple(entry["screen"])).actions


def test_reference_pyautogui_export_scales_twice():
    """Its default scale_factor=1000 applied to its own 0..1 output lands near (0, 0)."""
    entry = {"text": "Thought: t\nAction: click(start_box='(644,364)')", "frame": "uitars-1.5"}
    entry["screen"] = [1280, 720]
    code = ui_tars.parsing_response_to_pyautogui_code(reference(entry), 720, 1280)
    assert "pyautogui.click(0.64, 0.36, button='left')" in code
    ours = parse_response(entry["text"], "uitars-1.5", (1280, 720)).actions[0]
    assert ours.point == (640, 360)


def test_reference_pyautogui_export_puts_the_thought_into_code_unescaped():
    """A thought containing triple quotes escapes its docstring and becomes code."""
    answer = [{"thought": "x'''\nimport os\n'''", "action_type": "wait", "action_inputs": {}}]
    code = ui_tars.parsing_response_to_pyautogui_code(answer, 720, 1280)
    import ast

    tree = ast.parse(code)
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import)]
    assert "os" in {alias.name for node in imports for alias in node.names}


def reference_script(text: str) -> str:
    entry = {"text": text, "frame": "uitars-1.5", "screen": [1280, 720]}
    return ui_tars.parsing_response_to_pyautogui_code(reference(entry), 720, 1280, scale_factor=1)


def test_reference_export_faults_that_ours_does_not_have():
    from pixelpilot.tools import to_pyautogui_script

    def ours(text: str) -> str:
        return to_pyautogui_script(parse_response(text, "uitars-1.5", (1280, 720)).actions)

    scroll = "Thought: t\nAction: scroll(start_box='(644,364)', direction='down')"
    assert "pyautogui.scroll(-5, x=0.5, y=0.5)" in reference_script(scroll)  # not scaled
    assert "pyautogui.scroll(-5, x=640, y=360)" in ours(scroll)
    left = "Thought: t\nAction: scroll(start_box='(644,364)', direction='left')"
    assert "scroll" not in reference_script(left).split("'''")[-1]  # dropped silently
    assert "pyautogui.hscroll(-5, x=640, y=360)" in ours(left)
    submit = "Thought: t\nAction: type(content='hello\\n')"
    theirs = reference_script(submit)
    assert "pyperclip.copy('hello\\n')" in theirs and "press('enter')" in theirs  # two Enters
    assert "pyautogui.write('hello'" in ours(submit) and ours(submit).count("'enter'") == 1
    combo = "Thought: t\nAction: hotkey(key='ctrl+shift+t')"
    assert "pyautogui.hotkey('ctrl+shift+t')" in reference_script(combo)  # one unknown key
    assert "pyautogui.hotkey('ctrl', 'shift', 't')" in ours(combo)

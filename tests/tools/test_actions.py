"""Action dataclasses: validation, canonical dicts, key names."""

from __future__ import annotations

import math

import pytest

from pixelpilot.tools import ACTION_TYPES, Action, Click, Drag, Hotkey, OpenApp, Scroll, Type
from pixelpilot.tools.actions import normalize_key


def test_every_type_round_trips_through_its_dict(action_examples: list[dict]) -> None:
    assert {e["type"] for e in action_examples} == set(ACTION_TYPES)
    for data in action_examples:
        action = Action.from_dict(data)
        assert type(action) is ACTION_TYPES[data["type"]]
        assert action.to_dict() == data


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"type": "click", "x": -1, "y": 2}, "x"),
        ({"type": "click", "x": 1, "y": math.nan}, "y"),
        ({"type": "click", "x": math.inf, "y": 2}, "x"),
        ({"type": "click", "x": "1", "y": 2}, "x"),
        ({"type": "click", "x": True, "y": 2}, "x"),
        ({"type": "drag", "x1": 1, "y1": 2, "x2": -3, "y2": 4}, "x2"),
        ({"type": "scroll", "x": 1, "y": 2, "direction": "sideways"}, "direction"),
        ({"type": "hotkey", "keys": ["ctrl", "hyper"]}, "keys"),
        ({"type": "hotkey", "keys": []}, "keys"),
        ({"type": "type", "content": 5}, "content"),
        ({"type": "open_app", "app_name": " "}, "app_name"),
        ({"type": "click", "x": 1}, "y"),
        ({"type": "click", "x": 1, "y": 2, "z": 3}, "z"),
        ({"type": "hover", "x": 1, "y": 2}, "type"),
    ],
)
def test_invalid_actions_name_the_field(data, field):
    with pytest.raises(ValueError) as info:
        Action.from_dict(data)
    assert str(info.value).startswith(f"{field}:")


def test_coordinates_are_rounded_to_integers():
    assert Click(x=2.6, y=3.2).point == (3, 3)
    assert Drag(x1=1, y1=2, x2=3, y2=4).point == (1, 2)


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("Return", "enter"),
        ("ESC", "escape"),
        ("Control", "ctrl"),
        ("cmd", "meta"),
        ("win", "meta"),
        ("ArrowLeft", "left"),
        ("pgdn", "pagedown"),
        (" ", "space"),
        ("plus", "+"),
        ("F12", "f12"),
        ("a", "a"),
        ("/", "/"),
    ],
)
def test_key_names_are_normalised(name, canonical):
    assert normalize_key(name) == canonical


def test_hotkey_accepts_a_space_separated_string_and_type_knows_submit():
    assert Hotkey(keys="ctrl c").keys == ("ctrl", "c")
    assert Type(content="q\n").submit and Type(content="q\n").text == "q"
    assert not Type(content="q").submit
    assert Scroll(x=1, y=1, direction=" UP ").direction == "up"
    with pytest.raises(ValueError, match="app_name"):
        OpenApp(app_name="")

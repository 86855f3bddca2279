"""An action type is declared once: a new Action class, defined here and nowhere else, is
parsed, formatted, exported, offered as a tool, listed in prompts and matched, with no table
edited anywhere; an env that cannot execute it refuses it by name."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

from pixelpilot.agent.prompts import action_space
from pixelpilot.errors import ParseError
from pixelpilot.eval.matching import CLICK_LIKE, match_action
from pixelpilot.tools import (
    ACTION_TYPES,
    Action,
    Arg,
    PointAction,
    coordinate,
    described,
    format_action,
    format_response,
    make_action_tools,
    parse_response,
    point_arg,
    to_pyautogui_script,
    unregister_action,
)

PWNED = "x'); import os; os.system('echo pwned'); ('"
SCREEN = (1000, 800)


@pytest.fixture
def declared():
    """Two action types declared on the spot; the registry forgets them afterwards."""

    @dataclass(frozen=True)
    class Hover(PointAction):
        type = "hover"
        aliases = ("mouse_move",)
        usage = "hover(start_box='(x1,y1)') # move the pointer over an element"
        description = "Move the mouse pointer to a point without clicking."
        prompt_kinds = frozenset({"computer"})
        pyautogui = ("pyautogui.moveTo({x}, {y})",)

    @dataclass(frozen=True)
    class PickOption(Action):
        type = "pick_option"
        x: int = coordinate("x", "the drop-down list")
        y: int = coordinate("y", "the drop-down list")
        option: str = described("The visible text of the option to pick.", "")
        args = (point_arg(), Arg("option", "text", ("option",), match="text"))
        description = "Open a drop-down list and pick an option by its text."
        prompt_kinds = frozenset({"computer", "mobile"})
        pyautogui = ("pyautogui.click({x}, {y})", "pyautogui.write({option})")

    try:
        yield Hover, PickOption
    finally:
        unregister_action("hover")
        unregister_action("pick_option")


def test_the_grammar_reads_and_writes_a_declared_action(declared):
    hover, pick = declared
    response = parse_response(
        "Thought: Show the tooltip.\nAction: hover(start_box='<|box_start|>(500,500)<|box_end|>')"
        "\n\npick_option(point='<point>100 250</point>', option='Large')",
        "uitars-1.0",
        SCREEN,
    )
    assert response.actions == (hover(x=500, y=400), pick(x=100, y=200, option="Large"))
    assert parse_response("mouse_move(start_box='(7,8)')", "pixels", SCREEN).actions == (
        hover(x=7, y=8),
    )
    assert format_action(hover(x=500, y=400), "uitars-1.0", SCREEN) == (
        "hover(start_box='(500,500)')"
    )
    text = format_response("t", [pick(x=10, y=20, option=PWNED)], "pixels", SCREEN)
    assert parse_response(text, "pixels", SCREEN).actions == (pick(x=10, y=20, option=PWNED),)
    with pytest.raises(ParseError, match="missing argument 'option'") as info:
        parse_response("Action: pick_option(start_box='(1,2)')", "pixels", SCREEN)
    assert info.value.expected == "pick_option(start_box='(x1,y1)', option='...')"


def test_dicts_export_and_prompts_pick_it_up(declared):
    hover, pick = declared
    assert Action.from_dict({"type": "hover", "x": 3, "y": 4}) == hover(x=3, y=4)
    assert pick(x=1, y=2, option="A").to_dict() == {
        "type": "pick_option",
        "x": 1,
        "y": 2,
        "option": "A",
    }
    source = to_pyautogui_script([hover(x=5, y=6), pick(x=7, y=8, option=PWNED)], (800, 600))
    assert "pyautogui.moveTo(5, 6)" in source and "pyautogui.click(7, 8)" in source
    literals = [n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant)]
    assert PWNED in literals  # model text stays one string literal
    calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call)]
    assert all(ast.unparse(c.func).split(".")[0] in ("pyautogui", "time") for c in calls)
    with pytest.raises(ValueError, match="outside"):
        to_pyautogui_script([hover(x=900, y=6)], (800, 600))
    computer = action_space("uitars-1.0", "computer")
    line = "hover(start_box='<|box_start|>(x1,y1)<|box_end|>') # move the pointer over an element"
    assert computer.index(line) < len(computer) - 2
    assert "pick_option(start_box='(x1,y1)', option='...')" in action_space("uitars-1.5", "mobile")
    assert [line.split("(")[0] for line in computer[-2:]] == ["finished", "call_user"]


def test_tools_offer_it_with_described_arguments(declared):
    hover, pick = declared
    seen = []
    tools = {t.name: t for t in make_action_tools(seen.append, "uitars-1.0", SCREEN)}
    assert set(tools) == set(ACTION_TYPES) and {"hover", "pick_option"} <= set(tools)
    assert tools["hover"].description == hover.description
    schema = tools["pick_option"].tool_call_schema.model_json_schema()
    assert schema["required"] == ["x", "y", "option"]
    assert "0..1000" in schema["properties"]["x"]["description"]
    assert (
        schema["properties"]["option"]["description"] == "The visible text of the option to pick."
    )
    tools["pick_option"].invoke({"x": 500, "y": 500, "option": "Large"})
    tools["hover"].invoke({"x": 1000, "y": 0})
    assert seen == [pick(x=500, y=400, option="Large"), hover(x=999, y=0)]


def test_matching_reads_the_declared_rules(declared):
    hover, pick = declared
    assert "hover" in CLICK_LIKE and "pick_option" not in CLICK_LIKE
    box = (90, 90, 110, 110)
    inside = match_action(hover(x=95, y=105), hover(x=100, y=100), box, SCREEN)
    assert inside.step_correct and inside.grounded is True
    outside = match_action(hover(x=150, y=100), hover(x=100, y=100), box, SCREEN)
    assert not outside.step_correct and outside.grounded is False
    gold = pick(x=100, y=100, option="Extra large")
    assert match_action(pick(x=101, y=99, option="extra LARGE"), gold, box, SCREEN).step_correct
    wrong = match_action(pick(x=101, y=99, option="small"), gold, box, SCREEN)
    assert wrong.type_match and not wrong.step_correct and wrong.grounded is None
    assert "option" in wrong.detail


def test_a_forgotten_type_is_unknown_again():
    @dataclass(frozen=True)
    class Wiggle(PointAction):
        type = "wiggle"

    try:
        assert parse_response("wiggle(start_box='(1,2)')", "pixels", SCREEN).actions == (
            Wiggle(x=1, y=2),
        )
        assert Wiggle.usage_line() == "wiggle(start_box='(x1,y1)')"  # written from its args
    finally:
        unregister_action("wiggle")
    with pytest.raises(ParseError, match="unknown action 'wiggle'"):
        parse_response("Action: wiggle(start_box='(1,2)')", "pixels", SCREEN)
    with pytest.raises(ValueError, match="unknown action type"):
        Action.from_dict({"type": "wiggle", "x": 1, "y": 2})


def test_a_name_cannot_be_declared_twice_nor_an_argument_without_its_field():
    with pytest.raises(TypeError, match="'press' is hotkey's"):

        @dataclass(frozen=True)
        class Press(Action):
            type = "press"

    with pytest.raises(TypeError, match="args name 'label', which is not a field"):

        @dataclass(frozen=True)
        class Tag(Action):
            type = "tag"
            args = (Arg("label", "text", ("label",)),)

    assert "tag" not in ACTION_TYPES and "press" == ACTION_TYPES["hotkey"].aliases[0]


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")
def test_an_env_without_its_executor_refuses_it_by_name(declared, tmp_path):
    """Executors stay per env: until an env lists the type it can perform, the env contract
    refuses the action before anything happens, naming the type."""
    from pixelpilot.envs import make
    from pixelpilot.errors import InvalidAction

    page = tmp_path / "page.html"
    page.write_text("<button>OK</button>")
    with make("browser", url=page.as_uri()) as env:
        env.reset(seed=0)
        assert "hover" not in env.unwrapped.supported_actions
        action = {"type": "hover", "x": 5, "y": 5}
        with pytest.raises(InvalidAction, match="hover is not available") as info:
            env.step(action)
        assert info.value.action is action
        assert action not in env.action_space
        _, _, _, _, after = env.step({"type": "wait"})
        assert after["step"] == 1  # the refused action was not a step


def _strategy(cls, screen):
    """Actions of ``cls`` drawn from its declaration alone (fields, arguments, choices)."""
    import dataclasses

    from hypothesis import strategies as st

    kinds = {name: arg.kind for arg in cls.args for name in arg.fields}
    keys = st.sampled_from(["ctrl", "shift", "alt", "enter", "a", "z", "1", "+", "/", "f5"])
    fields = {}
    for f in dataclasses.fields(cls):
        if "axis" in f.metadata:
            fields[f.name] = st.integers(0, screen[0 if f.metadata["axis"] == "x" else 1] - 1)
        elif kinds.get(f.name) == "keys":
            fields[f.name] = st.lists(keys, min_size=1, max_size=3).map(tuple)
        elif f.metadata.get("choices"):
            fields[f.name] = st.sampled_from(f.metadata["choices"])
        else:
            fields[f.name] = st.text(max_size=20)
    return st.fixed_dictionaries(fields)


def test_every_declared_type_round_trips_and_matches_itself(declared):
    """A property test derived from the declarations: every registered type (the built-in
    ones and the two declared here) survives format -> parse, to_dict -> from_dict, export,
    and matches itself."""
    from hypothesis import HealthCheck, assume, given, settings
    from hypothesis import strategies as st

    screen = (640, 480)
    classes = list(ACTION_TYPES.values())
    assert {"hover", "pick_option"} <= set(ACTION_TYPES)

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def check(data):
        cls = data.draw(st.sampled_from(classes))
        try:
            action = cls(**data.draw(_strategy(cls, screen)))
        except ValueError:
            assume(False)
        text = format_response(None, [action], "pixels", screen)
        assert parse_response(text, "pixels", screen).actions == (action,), text
        assert Action.from_dict(action.to_dict()) == action
        compile(to_pyautogui_script([action], screen), "script.py", "exec")
        assert match_action(action, action.to_dict(), None, screen).step_correct

    check()

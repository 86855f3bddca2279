"""make_action_tools: langchain-core StructuredTools bound to an executor.

The standard unit tests of ``langchain-tests`` run against every tool (one class per tool).
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.unit_tests import ToolsUnitTests

from pixelpilot.tools import (
    ACTION_TYPES,
    Click,
    Drag,
    Finished,
    Hotkey,
    Scroll,
    Type,
    make_action_tools,
)

EXAMPLES: dict[str, dict[str, Any]] = {
    "click": {"x": 10, "y": 20},
    "left_double": {"x": 10, "y": 20},
    "right_single": {"x": 10, "y": 20},
    "long_press": {"x": 10, "y": 20},
    "drag": {"x1": 1, "y1": 2, "x2": 30, "y2": 40},
    "scroll": {"x": 5, "y": 5, "direction": "down"},
    "hotkey": {"keys": ["ctrl", "c"]},
    "type": {"content": "hello\n"},
    "wait": {},
    "finished": {"content": "done"},
    "call_user": {"content": "need a password"},
    "open_app": {"app_name": "Settings"},
    "press_home": {},
    "press_back": {},
}


def recorder():
    seen = []

    def executor(action):
        seen.append(action)
        return f"did {action.type}"

    return executor, seen


def tool_named(name: str, **kwargs):
    executor, seen = recorder()
    tools = {t.name: t for t in make_action_tools(executor, **kwargs)}
    return tools[name], seen


def _standard_tests(name: str) -> type:
    class Standard(ToolsUnitTests):
        @property
        def tool_constructor(self):
            return tool_named(name, frame="uitars-1.0", screen=(1920, 1080))[0]

        @property
        def tool_invoke_params_example(self) -> dict[str, Any]:
            return EXAMPLES[name]

    Standard.__name__ = Standard.__qualname__ = f"TestStandard_{name}"
    return Standard


for _name in EXAMPLES:
    globals()[f"TestStandard_{_name}"] = _standard_tests(_name)


def test_one_tool_per_action_type_with_described_fields():
    executor, _ = recorder()
    tools = make_action_tools(executor, "uitars-1.5", (1280, 720))
    assert {t.name for t in tools} == set(ACTION_TYPES) == set(EXAMPLES)
    for tool in tools:
        assert tool.description
        schema = tool.tool_call_schema.model_json_schema()
        for field in schema.get("properties", {}).values():
            assert field.get("description"), (tool.name, field)
    click = next(t for t in tools if t.name == "click")
    x_field = click.tool_call_schema.model_json_schema()["properties"]["x"]
    assert "1288x728" in x_field["description"]


@pytest.mark.parametrize(
    ("name", "args", "frame", "screen", "expected"),
    [
        ("click", {"x": 500, "y": 500}, "uitars-1.0", (1920, 1080), Click(x=960, y=540)),
        ("click", {"x": 644, "y": 364}, "uitars-1.5", (1280, 720), Click(x=640, y=360)),
        ("click", {"x": 5000, "y": 3}, "pixels", (1280, 720), Click(x=1279, y=3)),
        ("click", {"x": 7, "y": 3}, "pixels", None, Click(x=7, y=3)),
        (
            "drag",
            {"x1": 0, "y1": 0, "x2": 1000, "y2": 1000},
            "uitars-1.0",
            (800, 600),
            Drag(x1=0, y1=0, x2=799, y2=599),
        ),
        (
            "scroll",
            {"x": 1, "y": 2, "direction": "up"},
            "pixels",
            None,
            Scroll(x=1, y=2, direction="up"),
        ),
        ("hotkey", {"keys": ["Control", "C"]}, "pixels", None, Hotkey(keys=("ctrl", "c"))),
        ("type", {"content": "hi\n"}, "pixels", None, Type(content="hi\n")),
        ("finished", {}, "pixels", None, Finished()),
    ],
)
def test_tools_build_screen_actions_and_call_the_executor(name, args, frame, screen, expected):
    tool, seen = tool_named(name, frame=frame, screen=screen)
    assert tool.invoke(args) == f"did {expected.type}"
    assert seen == [expected]


def test_bad_arguments_come_back_to_the_model_as_text():
    tool, seen = tool_named("hotkey")
    answer = tool.invoke({"keys": ["ctrl", "blorp"]})
    assert "unknown key name 'blorp'" in answer and seen == []
    click, seen = tool_named("click")
    answer = click.invoke({"x": -1, "y": 3})  # pydantic rejects it before the executor
    assert answer.startswith("invalid arguments: x:") and "greater than or equal to 0" in answer
    assert seen == []


def test_model_frames_need_a_screen():
    with pytest.raises(ValueError, match="screen"):
        make_action_tools(lambda a: "", "uitars-1.5")

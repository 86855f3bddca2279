"""The action language: Action types, the UI-TARS grammar, coordinate frames, script export.

Everything here is light to import; ``make_action_tools`` (langchain-core) loads on first use.
"""

from __future__ import annotations

from typing import Any

from pixelpilot.tools.actions import (
    ACTION_TYPES,
    POINT_ACTIONS,
    TERMINAL_ACTIONS,
    Action,
    AnyAction,
    Arg,
    CallUser,
    Click,
    Drag,
    Finished,
    Hotkey,
    LeftDouble,
    LongPress,
    OpenApp,
    PointAction,
    PressBack,
    PressHome,
    RightSingle,
    Scroll,
    Type,
    Wait,
    coordinate,
    described,
    point_arg,
    unregister_action,
)
from pixelpilot.tools.export import to_pyautogui_script
from pixelpilot.tools.frames import (
    FRAME_NAMES,
    CoordinateFrame,
    clamp_point,
    from_screen,
    smart_resize,
    to_screen,
)
from pixelpilot.tools.grammar import Response, format_action, format_response, parse_response

__all__ = [
    "ACTION_TYPES",
    "FRAME_NAMES",
    "POINT_ACTIONS",
    "TERMINAL_ACTIONS",
    "Action",
    "AnyAction",
    "Arg",
    "CallUser",
    "Click",
    "CoordinateFrame",
    "Drag",
    "Finished",
    "Hotkey",
    "LeftDouble",
    "LongPress",
    "OpenApp",
    "PointAction",
    "PressBack",
    "PressHome",
    "Response",
    "RightSingle",
    "Scroll",
    "Type",
    "Wait",
    "clamp_point",
    "coordinate",
    "described",
    "format_action",
    "format_response",
    "from_screen",
    "make_action_tools",
    "parse_response",
    "point_arg",
    "smart_resize",
    "to_pyautogui_script",
    "to_screen",
    "unregister_action",
]


def __getattr__(name: str) -> Any:
    if name == "make_action_tools":
        from pixelpilot.tools.langchain import make_action_tools

        return make_action_tools
    raise AttributeError(f"module 'pixelpilot.tools' has no attribute {name!r}")

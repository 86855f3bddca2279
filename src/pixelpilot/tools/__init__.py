"""The action language: Action types, the UI-TARS grammar, coordinate frames, script export.

Everything here is light to import; ``make_action_tools`` (langchain-core) loads on first use.
"""

from __future__ import annotations

from typing import Any

from pixelpilot.tools.actions import (
    ACTION_TYPES,
    Action,
    AnyAction,
    CallUser,
    Click,
    Drag,
    Finished,
    Hotkey,
    LeftDouble,
    LongPress,
    OpenApp,
    PressBack,
    PressHome,
    RightSingle,
    Scroll,
    Type,
    Wait,
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
    "Action",
    "AnyAction",
    "CallUser",
    "Click",
    "CoordinateFrame",
    "Drag",
    "Finished",
    "Hotkey",
    "LeftDouble",
    "LongPress",
    "OpenApp",
    "PressBack",
    "PressHome",
    "Response",
    "RightSingle",
    "Scroll",
    "Type",
    "Wait",
    "clamp_point",
    "format_action",
    "format_response",
    "from_screen",
    "make_action_tools",
    "parse_response",
    "smart_resize",
    "to_pyautogui_script",
    "to_screen",
]


def __getattr__(name: str) -> Any:
    if name == "make_action_tools":
        from pixelpilot.tools.langchain import make_action_tools

        return make_action_tools
    raise AttributeError(f"module 'pixelpilot.tools' has no attribute {name!r}")

"""Every action as a langchain-core ``StructuredTool``, bound to an executor.

``make_action_tools(executor)`` returns one tool per action type. A tool builds the action from
its arguments (converting coordinates from the model's frame to screen pixels) and returns
whatever ``executor(action)`` returns, so any env can plug in by passing its step function.
The arguments are pydantic models whose field descriptions tell the model what to pass.
Invalid arguments come back to the model as the tool's answer (``handle_tool_error``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pixelpilot.errors import DependencyNotInstalled
from pixelpilot.tools.actions import (
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
from pixelpilot.tools.frames import CoordinateFrame, Screen, clamp_point

Executor = Callable[[AnyAction], str]

_DESCRIPTIONS = {
    "click": "Click the left mouse button once at a point (tap on a phone).",
    "left_double": "Double-click the left mouse button at a point.",
    "right_single": "Click the right mouse button once at a point.",
    "long_press": "Press and hold at a point (phones).",
    "drag": "Press at a start point, move to an end point and release (also: select text).",
    "scroll": "Scroll at a point in a direction: up, down, left or right.",
    "hotkey": "Press a key or a key combination, e.g. ['ctrl', 'c'] or ['enter'].",
    "type": "Type text into the focused field; end it with a newline to press Enter after.",
    "wait": "Wait a few seconds for the screen to change.",
    "finished": "Declare the task done; content is the answer or a short summary.",
    "call_user": "Ask the user for help when the task cannot go on without them.",
    "open_app": "Open an app by its name (phones).",
    "press_home": "Press the phone's home button.",
    "press_back": "Press the phone's back button.",
}


def _unit(frame: CoordinateFrame, screen: Screen | None) -> str:
    if frame.name == "uitars-1.0":
        return "on a 0..1000 scale of the screenshot's width"
    if frame.name == "uitars-1.5" and screen is not None:
        width, height = frame.model_size(screen)
        return f"in pixels of the {int(width)}x{int(height)} image you see"
    if screen is not None:
        return f"in pixels of the {screen[0]}x{screen[1]} screenshot"
    return "in pixels of the screenshot"


def _schemas(unit: str) -> dict[str, type]:
    from pydantic import BaseModel, Field

    def coord(axis: str, what: str = "the point") -> Any:
        scale = unit.replace("width", "height") if axis == "y" else unit
        return Field(ge=0, description=f"{axis} of {what}, {scale}")

    class PointArgs(BaseModel):
        x: int = coord("x")
        y: int = coord("y")

    class DragArgs(BaseModel):
        x1: int = coord("x", "the start point")
        y1: int = coord("y", "the start point")
        x2: int = coord("x", "the end point")
        y2: int = coord("y", "the end point")

    class ScrollArgs(BaseModel):
        x: int = coord("x", "the point to scroll at")
        y: int = coord("y", "the point to scroll at")
        direction: Literal["up", "down", "left", "right"] = Field(
            description="Which way the content moves into view: up, down, left or right."
        )

    class HotkeyArgs(BaseModel):
        keys: list[str] = Field(
            min_length=1,
            description="Lower-case key names pressed together, e.g. ['ctrl', 'c'], ['enter'].",
        )

    class TypeArgs(BaseModel):
        content: str = Field(
            description="The exact text to type; a final newline presses Enter after it."
        )

    class MessageArgs(BaseModel):
        content: str = Field(default="", description="A short message for the user.")

    class AppArgs(BaseModel):
        app_name: str = Field(min_length=1, description="The app's name as shown on the phone.")

    class NoArgs(BaseModel):
        pass

    return {
        "point": PointArgs,
        "drag": DragArgs,
        "scroll": ScrollArgs,
        "hotkey": HotkeyArgs,
        "type": TypeArgs,
        "message": MessageArgs,
        "app": AppArgs,
        "none": NoArgs,
    }


_SCHEMA_OF = {
    "click": "point",
    "left_double": "point",
    "right_single": "point",
    "long_press": "point",
    "drag": "drag",
    "scroll": "scroll",
    "hotkey": "hotkey",
    "type": "type",
    "wait": "none",
    "finished": "message",
    "call_user": "message",
    "open_app": "app",
    "press_home": "none",
    "press_back": "none",
}
_BUILDERS: dict[str, Callable[..., AnyAction]] = {
    "click": Click,
    "left_double": LeftDouble,
    "right_single": RightSingle,
    "long_press": LongPress,
    "drag": Drag,
    "scroll": Scroll,
    "hotkey": lambda keys: Hotkey(keys=tuple(keys)),
    "type": Type,
    "wait": Wait,
    "finished": Finished,
    "call_user": CallUser,
    "open_app": OpenApp,
    "press_home": PressHome,
    "press_back": PressBack,
}


def _validation_message(error: Exception) -> str:
    """A short answer for arguments that do not fit the schema (pydantic's errors)."""
    details = getattr(error, "errors", None)
    if callable(details):
        parts = [
            f"{'.'.join(str(p) for p in e.get('loc', ())) or 'arguments'}: {e.get('msg', '')}"
            for e in details()
        ]
        return "invalid arguments: " + "; ".join(parts)
    return f"invalid arguments: {error}"


def make_action_tools(
    executor: Executor,
    frame: str | CoordinateFrame = "pixels",
    screen: Screen | None = None,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> list[Any]:
    """One ``StructuredTool`` per action type, each calling ``executor(action) -> str``.

    Coordinates the model passes are in ``frame`` (``screen`` is required unless the frame
    is ``pixels``) and reach the executor as clamped screen pixels.
    """
    try:
        from langchain_core.tools import StructuredTool, ToolException
    except ImportError as exc:  # pragma: no cover - langchain-core is a core dependency
        raise DependencyNotInstalled("langchain-core") from exc
    coords = CoordinateFrame.of(frame, min_pixels=min_pixels, max_pixels=max_pixels)
    if screen is None and coords.name != "pixels":
        raise ValueError(f"screen: required for the {coords.name} frame")
    schemas = _schemas(_unit(coords, screen))

    def to_pixels(kwargs: dict[str, Any]) -> dict[str, Any]:
        out = dict(kwargs)
        for xk, yk in (("x", "y"), ("x1", "y1"), ("x2", "y2")):
            if xk in out and screen is not None:
                sx, sy = coords.to_screen(out[xk], out[yk], screen)
                out[xk], out[yk], _ = clamp_point(sx, sy, screen)
        return out

    def bind(kind: str) -> Callable[..., str]:
        def run(**kwargs: Any) -> str:
            try:
                action = _BUILDERS[kind](**to_pixels(kwargs))
            except ValueError as exc:
                raise ToolException(f"{kind}: {exc}") from None
            return executor(action)

        return run

    return [
        StructuredTool.from_function(
            func=bind(kind),
            name=kind,
            description=_DESCRIPTIONS[kind],
            args_schema=schemas[_SCHEMA_OF[kind]],
            handle_tool_error=True,
            handle_validation_error=_validation_message,
        )
        for kind in _SCHEMA_OF
    ]

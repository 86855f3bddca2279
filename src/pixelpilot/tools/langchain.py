"""Every action as a langchain-core ``StructuredTool``, bound to an executor.

``make_action_tools(executor)`` returns one tool per declared action type. A tool builds the
action from its arguments (converting coordinates from the model's frame to screen pixels) and
returns whatever ``executor(action)`` returns, so any env can plug in by passing its step
function. The argument schemas are pydantic models made from the action classes' fields; their
descriptions tell the model what to pass. Invalid arguments come back to the model as the
tool's answer (``handle_tool_error``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal

from pixelpilot.errors import DependencyNotInstalled
from pixelpilot.tools.actions import ACTION_TYPES, Action, AnyAction
from pixelpilot.tools.frames import CoordinateFrame, Screen, clamp_point

Executor = Callable[[AnyAction], str]


def _unit(frame: CoordinateFrame, screen: Screen | None) -> str:
    if frame.name == "uitars-1.0":
        return "on a 0..1000 scale of the screenshot's width"
    if frame.name == "uitars-1.5" and screen is not None:
        width, height = frame.model_size(screen)
        return f"in pixels of the {int(width)}x{int(height)} image you see"
    if screen is not None:
        return f"in pixels of the {screen[0]}x{screen[1]} screenshot"
    return "in pixels of the screenshot"


def _schema(cls: type[Action], unit: str) -> type:
    """The pydantic model of an action's arguments: its fields, described, in screen terms."""
    from pydantic import Field, create_model

    by_field = {name: arg for arg in cls.args for name in arg.fields}
    specs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        meta, arg = f.metadata, by_field.get(f.name)
        description = meta.get("description", f.name)
        if "axis" in meta:
            scale = unit.replace("width", "height") if meta["axis"] == "y" else unit
            specs[f.name] = (int, Field(ge=0, description=f"{description}, {scale}"))
            continue
        kind: Any = str
        if arg is not None and arg.kind == "keys":
            kind = list[str]
        elif meta.get("choices"):
            kind = Literal[tuple(meta["choices"])]
        extra = {"min_length": meta["min_length"]} if "min_length" in meta else {}
        if (arg is None or arg.required) or f.default is dataclasses.MISSING:
            specs[f.name] = (kind, Field(description=description, **extra))
        else:
            specs[f.name] = (kind, Field(default=f.default, description=description, **extra))
    return create_model(f"{cls.__name__}Args", **specs)


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
    unit = _unit(coords, screen)

    def to_pixels(cls: type[Action], kwargs: dict[str, Any]) -> dict[str, Any]:
        out = dict(kwargs)
        points = [arg.fields for arg in cls.args if arg.kind == "point"]
        for xk, yk in points:
            if xk in out and screen is not None:
                sx, sy = coords.to_screen(out[xk], out[yk], screen)
                out[xk], out[yk], _ = clamp_point(sx, sy, screen)
        return out

    def bind(cls: type[Action]) -> Callable[..., str]:
        def run(**kwargs: Any) -> str:
            try:
                action = cls(**to_pixels(cls, kwargs))
            except ValueError as exc:
                raise ToolException(f"{cls.type}: {exc}") from None
            return executor(action)  # type: ignore[arg-type]

        return run

    return [
        StructuredTool.from_function(
            func=bind(cls),
            name=kind,
            description=cls.description or cls.usage_line(),
            args_schema=_schema(cls, unit),
            handle_tool_error=True,
            handle_validation_error=_validation_message,
        )
        for kind, cls in list(ACTION_TYPES.items())
    ]

"""Action types of the UI-TARS action language, in screen pixels.

Every action is an immutable dataclass with ``to_dict``/``from_dict``; the canonical JSON form
is ``{"type": "click", "x": 196, "y": 519}``. Coordinates are integer pixels of the env's
screenshot: the model's coordinate frame is converted by the parser and nowhere else.
Validation raises ``ValueError`` naming the offending field.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

ScrollDirection = Literal["up", "down", "left", "right"]
SCROLL_DIRECTIONS: tuple[str, ...] = ("up", "down", "left", "right")

# Lower-case key names accepted in hotkeys. The union of what UI-TARS models emit and what
# pyautogui / xdotool / Playwright can press; aliases are normalised by ``normalize_key``.
_NAMED_KEYS = {
    "enter",
    "return",
    "tab",
    "space",
    "backspace",
    "delete",
    "del",
    "escape",
    "esc",
    "insert",
    "home",
    "end",
    "pageup",
    "pagedown",
    "up",
    "down",
    "left",
    "right",
    "ctrl",
    "control",
    "shift",
    "alt",
    "option",
    "meta",
    "cmd",
    "command",
    "win",
    "super",
    "capslock",
    "numlock",
    "scrolllock",
    "printscreen",
    "pause",
    "menu",
    "apps",
    "arrowup",
    "arrowdown",
    "arrowleft",
    "arrowright",
    "volumeup",
    "volumedown",
    "volumemute",
    "playpause",
    "nexttrack",
    "prevtrack",
    "clear",
    "fn",
    "ctrlleft",
    "ctrlright",
    "shiftleft",
    "shiftright",
    "altleft",
    "altright",
}
_NAMED_KEYS |= {f"f{i}" for i in range(1, 25)}
_KEY_ALIASES = {
    "return": "enter",
    "esc": "escape",
    "del": "delete",
    "control": "ctrl",
    "cmd": "meta",
    "command": "meta",
    "win": "meta",
    "super": "meta",
    "option": "alt",
    "arrowup": "up",
    "arrowdown": "down",
    "arrowleft": "left",
    "arrowright": "right",
    "page_up": "pageup",
    "page_down": "pagedown",
    "pgup": "pageup",
    "pgdn": "pagedown",
    "space_bar": "space",
    "spacebar": "space",
    " ": "space",
    "plus": "+",
    "minus": "-",
}
_PUNCTUATION = set("`~!@#$%^&*()-_=+[]{}\\|;:'\",.<>/?")


def normalize_key(name: str) -> str:
    """Return the canonical lower-case name of a key, or raise ``ValueError``."""
    key = name.strip().lower()
    if name == " ":
        key = " "
    key = _KEY_ALIASES.get(key, key)
    if key in _NAMED_KEYS or (len(key) == 1 and (key.isalnum() or key in _PUNCTUATION)):
        return key
    raise ValueError(f"keys: unknown key name {name!r}")


def _check_coord(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: coordinate must be finite, got {value!r}")
    if value < 0:
        raise ValueError(f"{name}: coordinate must not be negative, got {value!r}")
    return int(round(value))


def _check_text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected a string, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Action:
    """Base of all actions. ``type`` is the action's name in the action language."""

    type: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **asdict(self)}

    @staticmethod
    def from_dict(data: dict[str, Any]) -> AnyAction:
        """Build the action a canonical dict describes; ``ValueError`` names what is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"action: expected a JSON object, got {type(data).__name__}")
        kind = data.get("type")
        cls = ACTION_TYPES.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ValueError(f"type: unknown action type {kind!r}")
        names = {f.name for f in fields(cls)}
        extra = set(data) - names - {"type"}
        if extra:
            raise ValueError(f"{sorted(extra)[0]}: not a field of {kind}")
        missing = [f.name for f in fields(cls) if f.name not in data and _required(f)]
        if missing:
            raise ValueError(f"{missing[0]}: missing in {kind}")
        return cls(**{k: v for k, v in data.items() if k != "type"})

    @property
    def point(self) -> tuple[int, int] | None:
        """The screen point this action acts on, if it has one (a drag: its start)."""
        return None


def _required(f: Any) -> bool:
    from dataclasses import MISSING

    return f.default is MISSING and f.default_factory is MISSING


@dataclass(frozen=True)
class _PointAction(Action):
    x: int
    y: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "x", _check_coord("x", self.x))
        object.__setattr__(self, "y", _check_coord("y", self.y))

    @property
    def point(self) -> tuple[int, int]:
        return (self.x, self.y)


@dataclass(frozen=True)
class Click(_PointAction):
    type: ClassVar[str] = "click"


@dataclass(frozen=True)
class LeftDouble(_PointAction):
    type: ClassVar[str] = "left_double"


@dataclass(frozen=True)
class RightSingle(_PointAction):
    type: ClassVar[str] = "right_single"


@dataclass(frozen=True)
class LongPress(_PointAction):
    type: ClassVar[str] = "long_press"


@dataclass(frozen=True)
class Drag(Action):
    type: ClassVar[str] = "drag"
    x1: int
    y1: int
    x2: int
    y2: int

    def __post_init__(self) -> None:
        for name in ("x1", "y1", "x2", "y2"):
            object.__setattr__(self, name, _check_coord(name, getattr(self, name)))

    @property
    def point(self) -> tuple[int, int]:
        return (self.x1, self.y1)


@dataclass(frozen=True)
class Scroll(_PointAction):
    type: ClassVar[str] = "scroll"
    direction: str = "down"

    def __post_init__(self) -> None:
        super().__post_init__()
        direction = _check_text("direction", self.direction).strip().lower()
        if direction not in SCROLL_DIRECTIONS:
            raise ValueError(
                f"direction: unknown scroll direction {self.direction!r} "
                f"(expected one of {', '.join(SCROLL_DIRECTIONS)})"
            )
        object.__setattr__(self, "direction", direction)


@dataclass(frozen=True)
class Hotkey(Action):
    type: ClassVar[str] = "hotkey"
    keys: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        keys = self.keys
        if isinstance(keys, str):
            keys = tuple(keys.split())
        if not isinstance(keys, (list, tuple)) or not keys:
            raise ValueError("keys: expected a non-empty list of key names")
        object.__setattr__(self, "keys", tuple(normalize_key(_check_text("keys", k)) for k in keys))

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "keys": list(self.keys)}


@dataclass(frozen=True)
class Type(Action):
    """Type ``content``; a trailing newline means: press Enter after typing."""

    type: ClassVar[str] = "type"
    content: str = ""

    def __post_init__(self) -> None:
        _check_text("content", self.content)

    @property
    def submit(self) -> bool:
        return self.content.endswith("\n")

    @property
    def text(self) -> str:
        """The characters to type, without the trailing submit newline."""
        return self.content[:-1] if self.submit else self.content


@dataclass(frozen=True)
class Wait(Action):
    type: ClassVar[str] = "wait"


@dataclass(frozen=True)
class Finished(Action):
    type: ClassVar[str] = "finished"
    content: str = ""

    def __post_init__(self) -> None:
        _check_text("content", self.content)


@dataclass(frozen=True)
class CallUser(Action):
    type: ClassVar[str] = "call_user"
    content: str = ""

    def __post_init__(self) -> None:
        _check_text("content", self.content)


@dataclass(frozen=True)
class OpenApp(Action):
    type: ClassVar[str] = "open_app"
    app_name: str = ""

    def __post_init__(self) -> None:
        if not _check_text("app_name", self.app_name).strip():
            raise ValueError("app_name: must not be empty")


@dataclass(frozen=True)
class PressHome(Action):
    type: ClassVar[str] = "press_home"


@dataclass(frozen=True)
class PressBack(Action):
    type: ClassVar[str] = "press_back"


AnyAction = (
    Click
    | LeftDouble
    | RightSingle
    | LongPress
    | Drag
    | Scroll
    | Hotkey
    | Type
    | Wait
    | Finished
    | CallUser
    | OpenApp
    | PressHome
    | PressBack
)

ACTION_TYPES: dict[str, type[Action]] = {
    cls.type: cls
    for cls in (
        Click,
        LeftDouble,
        RightSingle,
        LongPress,
        Drag,
        Scroll,
        Hotkey,
        Type,
        Wait,
        Finished,
        CallUser,
        OpenApp,
        PressHome,
        PressBack,
    )
}
POINT_ACTIONS: frozenset[str] = frozenset({"click", "left_double", "right_single", "long_press"})
TERMINAL_ACTIONS: frozenset[str] = frozenset({"finished", "call_user"})

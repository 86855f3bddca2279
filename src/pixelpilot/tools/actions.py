"""Action types of the UI-TARS action language, in screen pixels.

Every action is an immutable dataclass with ``to_dict``/``from_dict``; the canonical JSON form
is ``{"type": "click", "x": 196, "y": 519}``. Coordinates are integer pixels of the env's
screenshot: the model's coordinate frame is converted by the parser and nowhere else.
Validation raises ``ValueError`` naming the offending field.

An action class is the one place its type is declared: its canonical name and the aliases the
grammar accepts, its fields (with descriptions; coordinates carry their axis), how the action
language writes its arguments (``args``), the line a prompt lists (``usage``), the langchain
tool description, its pyautogui statements, and how evaluation compares each argument.
Defining a subclass with its own ``type`` registers it; the grammar, the formatter, the
export, the langchain tools, the prompts and the matching rules read the registry, so a new
action type needs no table edit anywhere (only the env executors must learn to perform it).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Set
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar, Literal

from pixelpilot.tools.keys import normalize_key

ScrollDirection = Literal["up", "down", "left", "right"]
SCROLL_DIRECTIONS: tuple[str, ...] = ("up", "down", "left", "right")


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


MatchRule = Literal["point", "text", "same", "name", "set"]


@dataclass(frozen=True)
class Arg:
    """One argument of an action call, as the action language writes it.

    ``kind``: ``point`` (a point or a box; fills two coordinate fields, x then y), ``text`` (a
    quoted string; fills one field) or ``keys`` (a quoted key combination; fills a tuple of
    key names). ``required=False`` lets a call leave the argument out: a missing text keeps the
    field's default, a missing point is the screen's centre. ``aliases`` are other names models
    write for the argument. ``match`` is how evaluation compares it between a predicted and a
    gold action: ``point`` (inside the target box, or close to the gold point), ``text``
    (token F1 or exact, as the rules say), ``same`` (equal), ``name`` (equal ignoring case and
    surrounding spaces), ``set`` (equal as sets); ``None``: not compared.
    """

    name: str
    kind: Literal["point", "text", "keys"]
    fields: tuple[str, ...]
    required: bool = True
    aliases: tuple[str, ...] = ()
    match: MatchRule | None = None

    def __post_init__(self) -> None:
        if len(self.fields) != (2 if self.kind == "point" else 1):
            raise ValueError(f"{self.name}: a {self.kind} argument fills the wrong field count")


def point_arg(
    name: str = "start_box",
    x: str = "x",
    y: str = "y",
    *,
    required: bool = True,
    match: MatchRule | None = "point",
) -> Arg:
    """A point argument; ``start_box`` and ``end_box`` get the aliases models write."""
    aliases = {"start_box": ("point", "start_point"), "end_box": ("end_point",)}.get(name, ())
    return Arg(name, "point", (x, y), required, aliases, match)


def coordinate(axis: Literal["x", "y"], what: str = "the point") -> Any:
    """A coordinate field (integer screen pixels); ``what`` names the point it belongs to."""
    return field(metadata={"axis": axis, "description": f"{axis} of {what}"})


def described(description: str, default: Any = MISSING, **schema: Any) -> Any:
    """A field with the description tools show; ``schema`` adds constraints (``choices``,
    ``min_length``) to the tool's argument schema."""
    meta = {"description": description, **schema}
    if isinstance(default, tuple):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


# The registry: every action type by canonical name, and every call name the grammar accepts.
ACTION_TYPES: dict[str, type[Action]] = {}
ACTION_NAMES: dict[str, str] = {}


def _register(cls: type[Action]) -> None:
    names = (cls.type, *cls.aliases)
    for name in names:
        if name in ACTION_NAMES and ACTION_NAMES[name] != cls.type:
            raise TypeError(f"{cls.__name__}: action name {name!r} is {ACTION_NAMES[name]}'s")
    if cls.type in ACTION_TYPES:
        raise TypeError(f"{cls.__name__}: action type {cls.type!r} is already declared")
    declared = {name for c in cls.__mro__ for name in getattr(c, "__annotations__", {})}
    unknown = [name for arg in cls.args for name in arg.fields if name not in declared]
    if unknown:
        raise TypeError(f"{cls.__name__}: args name {unknown[0]!r}, which is not a field")
    ACTION_TYPES[cls.type] = cls
    ACTION_NAMES.update(dict.fromkeys(names, cls.type))


def unregister_action(name: str) -> type[Action]:
    """Remove a declared action type (and its aliases) from the registry; return its class."""
    cls = ACTION_TYPES.pop(name)
    for alias in [a for a, kind in ACTION_NAMES.items() if kind == name]:
        del ACTION_NAMES[alias]
    return cls


class ActionSet(Set[str]):
    """The names of the registered action types that have a property, read live."""

    def __init__(self, test: Any, doc: str) -> None:
        self._test = test
        self.__doc__ = doc

    @classmethod
    def _from_iterable(cls, it: Any) -> frozenset[str]:  # what set operators return
        return frozenset(it)

    def _names(self) -> list[str]:
        return [name for name, cls in ACTION_TYPES.items() if self._test(cls)]

    def __contains__(self, name: object) -> bool:
        cls = ACTION_TYPES.get(name) if isinstance(name, str) else None
        return cls is not None and bool(self._test(cls))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def __repr__(self) -> str:
        return f"ActionSet({self._names()!r})"


@dataclass(frozen=True)
class Action:
    """Base of all actions. ``type`` is the action's name in the action language.

    A subclass declares, besides its dataclass fields: ``aliases`` (other call names the
    grammar accepts), ``args`` (how a call writes its fields, in order), ``usage`` (the line a
    prompt lists, with ``(x1,y1)`` / ``(x3,y3)`` for the start / end point and an optional
    ``# comment``), ``description`` (the langchain tool's), ``prompt_kinds`` (which prompt
    kinds list it), ``terminal`` (whether it ends the episode) and ``pyautogui`` (statement
    templates for the script export; see ``pixelpilot.tools.export``).
    """

    type: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    args: ClassVar[tuple[Arg, ...]] = ()
    usage: ClassVar[str] = ""
    description: ClassVar[str] = ""
    prompt_kinds: ClassVar[frozenset[str]] = frozenset()
    terminal: ClassVar[bool] = False
    pyautogui: ClassVar[tuple[str | tuple[str, str], ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("type"):
            _register(cls)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {
            "type": self.type,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in data.items()},
        }

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
        return cls(**{k: v for k, v in data.items() if k != "type"})  # type: ignore[return-value]

    @classmethod
    def usage_line(cls) -> str:
        """The declared ``usage``, else a signature written from ``args``."""
        if cls.usage:
            return cls.usage
        ends = iter(("(x1,y1)", "(x3,y3)"))
        parts = [
            f"{a.name}='{next(ends, '(x,y)') if a.kind == 'point' else '...'}'" for a in cls.args
        ]
        return f"{cls.type}({', '.join(parts)})"

    @classmethod
    def click_like(cls) -> bool:
        """Whether the action is a single point and nothing else (a click of some kind)."""
        return len(cls.args) == 1 and cls.args[0].kind == "point"

    @property
    def points(self) -> tuple[tuple[int, int], ...]:
        """Every screen point the action names, in argument order."""
        return tuple(
            (getattr(self, a.fields[0]), getattr(self, a.fields[1]))
            for a in self.args
            if a.kind == "point"
        )

    @property
    def point(self) -> tuple[int, int] | None:
        """The screen point this action acts on, if it has one (a drag: its start)."""
        points = self.points
        return points[0] if points else None


def _required(f: Any) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


@dataclass(frozen=True)
class PointAction(Action):
    """Base of actions that are one point (``start_box``): subclass it for a new click kind."""

    x: int = coordinate("x")
    y: int = coordinate("y")
    args = (point_arg(),)
    prompt_kinds = frozenset({"computer"})

    def __post_init__(self) -> None:
        for name in ("x", "y"):
            object.__setattr__(self, name, _check_coord(name, getattr(self, name)))


@dataclass(frozen=True)
class Click(PointAction):
    type = "click"
    aliases = ("left_single", "left_click")
    usage = "click(start_box='(x1,y1)')"
    description = "Click the left mouse button once at a point (tap on a phone)."
    prompt_kinds = frozenset({"computer", "mobile", "grounding"})
    pyautogui = ("pyautogui.click({x}, {y})",)


@dataclass(frozen=True)
class LongPress(PointAction):
    type = "long_press"
    usage = "long_press(start_box='(x1,y1)')"
    description = "Press and hold at a point (phones)."
    prompt_kinds = frozenset({"mobile"})
    pyautogui = (
        "pyautogui.mouseDown({x}, {y})",
        "time.sleep({hold_seconds})",
        "pyautogui.mouseUp({x}, {y})",
    )


@dataclass(frozen=True)
class LeftDouble(PointAction):
    type = "left_double"
    aliases = ("double_click",)
    usage = "left_double(start_box='(x1,y1)')"
    description = "Double-click the left mouse button at a point."
    pyautogui = ("pyautogui.doubleClick({x}, {y})",)


@dataclass(frozen=True)
class RightSingle(PointAction):
    type = "right_single"
    aliases = ("right_click",)
    usage = "right_single(start_box='(x1,y1)')"
    description = "Click the right mouse button once at a point."
    pyautogui = ("pyautogui.rightClick({x}, {y})",)


@dataclass(frozen=True)
class Drag(Action):
    type = "drag"
    x1: int = coordinate("x", "the start point")
    y1: int = coordinate("y", "the start point")
    x2: int = coordinate("x", "the end point")
    y2: int = coordinate("y", "the end point")
    aliases = ("select",)
    args = (
        point_arg("start_box", "x1", "y1"),
        point_arg("end_box", "x2", "y2"),
    )
    usage = "drag(start_box='(x1,y1)', end_box='(x3,y3)')"
    description = "Press at a start point, move to an end point and release (also: select text)."
    prompt_kinds = frozenset({"computer", "mobile"})
    pyautogui = (
        "pyautogui.moveTo({x1}, {y1})",
        "pyautogui.dragTo({x2}, {y2}, duration=0.5, button='left')",
    )

    def __post_init__(self) -> None:
        for name in ("x1", "y1", "x2", "y2"):
            object.__setattr__(self, name, _check_coord(name, getattr(self, name)))


@dataclass(frozen=True)
class Hotkey(Action):
    type = "hotkey"
    keys: tuple[str, ...] = described(
        "Lower-case key names pressed together, e.g. ['ctrl', 'c'], ['enter'].",
        (),
        min_length=1,
    )
    aliases = ("press", "keydown")
    args = (Arg("key", "keys", ("keys",), aliases=("hotkey", "press", "keydown"), match="set"),)
    usage = "hotkey(key='ctrl c') # keys in lower case, separated by spaces, at most three"
    description = "Press a key or a key combination, e.g. ['ctrl', 'c'] or ['enter']."
    prompt_kinds = frozenset({"computer"})
    pyautogui = ("pyautogui.hotkey({keys:keys})",)

    def __post_init__(self) -> None:
        keys = self.keys
        if isinstance(keys, str):
            keys = tuple(keys.split())
        if not isinstance(keys, (list, tuple)) or not keys:
            raise ValueError("keys: expected a non-empty list of key names")
        object.__setattr__(self, "keys", tuple(normalize_key(_check_text("keys", k)) for k in keys))


@dataclass(frozen=True)
class Type(Action):
    """Type ``content``; a trailing newline means: press Enter after typing."""

    type = "type"
    content: str = described("The exact text to type; a final newline presses Enter after it.", "")
    args = (Arg("content", "text", ("content",), match="text"),)
    usage = (
        "type(content='xxx') # escape \\' \\\" and \\n inside content; "
        "end content with \\n to submit what you typed"
    )
    description = "Type text into the focused field; end it with a newline to press Enter after."
    prompt_kinds = frozenset({"computer", "mobile"})
    pyautogui = (
        ("text", "pyautogui.write({text}, interval=0.02)"),
        ("submit", "pyautogui.press('enter')"),
    )

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
class Scroll(PointAction):
    type = "scroll"
    direction: str = described(
        "Which way the content moves into view: up, down, left or right.",
        "down",
        choices=SCROLL_DIRECTIONS,
    )
    args = (
        point_arg(required=False, match=None),
        Arg("direction", "text", ("direction",), match="same"),
    )
    usage = (
        "scroll(start_box='(x1,y1)', direction='down or up or right or left') "
        "# reveals more on that side"
    )
    description = "Scroll at a point in a direction: up, down, left or right."
    prompt_kinds = frozenset({"computer", "mobile"})
    pyautogui = ("pyautogui.{direction:wheel}({direction:clicks}, x={x}, y={y})",)

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
class Wait(Action):
    type = "wait"
    usage = "wait() # pause a few seconds, then look at a new screenshot"
    description = "Wait a few seconds for the screen to change."
    prompt_kinds = frozenset({"computer"})
    pyautogui = ("time.sleep({wait_seconds})",)


_MESSAGE = "A short message for the user."


@dataclass(frozen=True)
class Finished(Action):
    type = "finished"
    content: str = described(_MESSAGE, "")
    args = (Arg("content", "text", ("content",), required=False),)
    usage = "finished(content='xxx') # the task is done; content may summarise the result"
    description = "Declare the task done; content is the answer or a short summary."
    prompt_kinds = frozenset({"computer", "mobile"})
    terminal = True
    pyautogui = ("# the task is finished: {content}",)

    def __post_init__(self) -> None:
        _check_text("content", self.content)


@dataclass(frozen=True)
class CallUser(Action):
    type = "call_user"
    content: str = described(_MESSAGE, "")
    args = (Arg("content", "text", ("content",), required=False),)
    usage = "call_user() # ask the user for help when the task cannot be done alone"
    description = "Ask the user for help when the task cannot go on without them."
    prompt_kinds = frozenset({"computer"})
    terminal = True
    pyautogui = ("# the agent asks for the user here: {content}",)

    def __post_init__(self) -> None:
        _check_text("content", self.content)


@dataclass(frozen=True)
class OpenApp(Action):
    type = "open_app"
    app_name: str = described("The app's name as shown on the phone.", "", min_length=1)
    args = (Arg("app_name", "text", ("app_name",), match="name"),)
    usage = "open_app(app_name='')"
    description = "Open an app by its name (phones)."
    prompt_kinds = frozenset({"mobile"})
    pyautogui = ("# open_app({app_name}) is a phone action; pyautogui cannot do it",)

    def __post_init__(self) -> None:
        if not _check_text("app_name", self.app_name).strip():
            raise ValueError("app_name: must not be empty")


@dataclass(frozen=True)
class PressHome(Action):
    type = "press_home"
    usage = "press_home()"
    description = "Press the phone's home button."
    prompt_kinds = frozenset({"mobile"})
    pyautogui = ("# press_home() is a phone action; pyautogui cannot do it",)


@dataclass(frozen=True)
class PressBack(Action):
    type = "press_back"
    usage = "press_back()"
    description = "Press the phone's back button."
    prompt_kinds = frozenset({"mobile"})
    pyautogui = ("# press_back() is a phone action; pyautogui cannot do it",)


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

POINT_ACTIONS: Set[str] = ActionSet(
    lambda cls: cls.click_like(), "Action types that are one point and nothing else."
)
TERMINAL_ACTIONS: Set[str] = ActionSet(
    lambda cls: cls.terminal, "Action types that end the episode."
)

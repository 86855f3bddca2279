"""Parse and format the UI-TARS action language.

``parse_response`` reads a model answer (``Thought: ...\\nAction: click(start_box='(x,y)')``)
into a ``Response`` whose actions are in screen pixels; ``format_action`` and
``format_response`` write actions back in a model's coordinate frame. The parser is a small
hand-written scanner: model output is never evaluated. Anything it cannot read raises
``ParseError`` saying what was expected and where; it raises nothing else for any text.
The accepted grammar is documented in ``docs/action-language.md``. Which calls exist, their
aliases and arguments, and how each is written back come from the action classes'
declarations (``pixelpilot.tools.actions``); nothing here lists action types.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pixelpilot.errors import ParseError
from pixelpilot.tools.actions import (
    ACTION_NAMES,
    ACTION_TYPES,
    Action,
    AnyAction,
    Click,
)
from pixelpilot.tools.calls import Call, parse_calls, parse_coordinates
from pixelpilot.tools.frames import CoordinateFrame, Screen, clamp_point

# Every call name the grammar accepts -> the canonical action type. The action classes declare
# their names (``pixelpilot.tools.actions``); this is the registry, read live.
ACTION_ALIASES: dict[str, str] = ACTION_NAMES


def usage(kind: str) -> str:
    """How an action is written, for error messages: its usage line without the comment."""
    return ACTION_TYPES[kind].usage_line().split(" #")[0]


_HEADER_LINE = re.compile(r"^[ \t]*(Thought|Reflection|Action_Summary|Action)[ \t]*[:：]", re.M)
# an ``Action:`` header anywhere: at the start or after whitespace (the call constraint,
# pixelpilot.vlm.wellformed, holds the text after the same header)
ACTION_HEADER = re.compile(r"(?:(?<=\s)|^)Action[ \t]*[:：]")
_THINK = re.compile(r"\s*<think>(.*?)</think>", re.S)
_END_TOKENS = ("<|im_end|>", "<|endoftext|>", "[EOS]", "</s>")
_POINT_TAGS = (("(", ")"), ("[", "]"), ("<point>", "</point>"), ("<bbox>", "</bbox>"))
# The longest answer parse_response reads, in characters. Real answers are a few hundred
# characters; a runaway generation is refused before any scanning (docs/action-language.md).
MAX_ANSWER_CHARS = 64 * 1024
_BOM = "\ufeff"


@dataclass(frozen=True)
class Response:
    """A parsed model answer; ``actions`` are in screen pixels.

    ``thought`` is the ``Thought:`` text, else the ``Action_Summary:`` text, else the free
    text before ``Action:``, else the ``<think>`` block; ``clamped`` says whether any point
    fell outside the screen and was moved onto its edge.
    """

    thought: str | None
    reflection: str | None
    action_summary: str | None
    actions: tuple[AnyAction, ...] = field(default_factory=tuple)
    clamped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "thought": self.thought,
            "reflection": self.reflection,
            "action_summary": self.action_summary,
            "actions": [a.to_dict() for a in self.actions],
            "clamped": self.clamped,
        }


def parse_response(
    text: str,
    frame: str | CoordinateFrame = "uitars-1.5",
    screen: Screen | None = None,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    factor: int | None = None,
) -> Response:
    """Parse one model answer into a ``Response`` with actions in screen pixels.

    ``screen`` is ``(width, height)`` of the screenshot the model saw; it is required for the
    ``uitars-1.5`` and ``uitars-1.0`` frames. ``min_pixels``/``max_pixels``/``factor`` override
    the frame's ``smart_resize`` limits. Raises ``ParseError`` for any text it cannot read,
    and for an answer longer than ``MAX_ANSWER_CHARS``; a leading byte-order mark is dropped.
    """
    coords = CoordinateFrame.of(frame, min_pixels=min_pixels, max_pixels=max_pixels, factor=factor)
    if screen is not None:
        coords.model_size(screen)  # validates the screen (ValueError: a caller bug)
    elif coords.name != "pixels":
        raise ValueError(f"screen: required for the {coords.name} frame")
    if not isinstance(text, str):
        raise ParseError(f"expected the answer as text, got {type(text).__name__}")
    if len(text) > MAX_ANSWER_CHARS:
        raise ParseError(
            f"answer too long: {len(text)} characters, the limit is {MAX_ANSWER_CHARS}",
            expected=f"at most {MAX_ANSWER_CHARS} characters",
        )
    if text.startswith(_BOM):  # a byte-order mark some servers and files put first
        text = text[len(_BOM) :]
    return _Parser(text, coords, screen).parse()


class _Parser:
    def __init__(self, text: str, frame: CoordinateFrame, screen: Screen | None) -> None:
        self.text = text
        self.frame = frame
        self.screen = screen
        self.clamped = False

    def error(self, message: str, position: int | None = None, expected: str | None = None):
        return ParseError(message, text=self.text, position=position, expected=expected)

    def parse(self) -> Response:
        text = self.text
        end = _content_end(text)
        start, think = 0, None
        match = _THINK.match(text, 0, end)
        if match:
            think, start = match.group(1).strip() or None, match.end()
        elif text.lstrip().startswith("<think>"):
            raise self.error("unclosed <think> block", text.index("<think>"), "</think>")
        header = self._action_header(start, end)
        if header is None:
            return self._parse_headerless(start, end, think)
        fields_ = self._prefix_fields(start, header[0])
        actions = self._parse_actions(header[1], end)
        thought = fields_.get("Thought") or fields_.get("Action_Summary") or fields_.get("")
        return Response(
            thought=thought or think,
            reflection=fields_.get("Reflection"),
            action_summary=fields_.get("Action_Summary"),
            actions=tuple(actions),
            clamped=self.clamped,
        )

    def _headers(self, start: int, end: int) -> list[tuple[str, int, int]]:
        """(name, start, end) of the line-start headers in ``text[start:end]``."""
        segment = self.text[start:end]
        return [
            (m.group(1), start + m.start(), start + m.end()) for m in _HEADER_LINE.finditer(segment)
        ]

    def _action_header(self, start: int, end: int) -> tuple[int, int] | None:
        """(start, end) of the first ``Action:`` header: at a line start, else anywhere."""
        for name, h_start, h_end in self._headers(start, end):
            if name == "Action":
                return h_start, h_end
        match = ACTION_HEADER.search(self.text[start:end])
        return (start + match.start(), start + match.end()) if match else None

    def _prefix_fields(self, start: int, end: int) -> dict[str, str]:
        """Thought / Reflection / Action_Summary texts before the action header."""
        found: dict[str, str] = {}
        headers = self._headers(start, end)
        first = headers[0][1] if headers else end
        free = self.text[start:first].strip()
        if free:
            found[""] = free
        for i, (name, _, h_end) in enumerate(headers):
            stop = headers[i + 1][1] if i + 1 < len(headers) else end
            value = self.text[h_end:stop].strip()
            if value and name not in found:
                found[name] = value
        return found

    def _parse_headerless(self, start: int, end: int, think: str | None) -> Response:
        body = self.text[start:end]
        if _is_bare_point(body):  # a grounding answer: just the point to click
            x, y = self._point(body.strip(), start + len(body) - len(body.lstrip()))
            return Response(think, None, None, (Click(x=x, y=y),), self.clamped)
        stripped = body.lstrip()
        if re.match(r"[A-Za-z_]\w*\s*\(", stripped):
            return Response(think, None, None, tuple(self._parse_actions(start, end)), self.clamped)
        raise self.error(
            "no action found",
            start + len(body) - len(stripped),
            "'Action:' followed by an action call, or a point '(x,y)'",
        )

    def _parse_actions(self, start: int, end: int) -> list[AnyAction]:
        body = self.text[start:end]
        if _is_bare_point(body):
            x, y = self._point(body.strip(), start)
            return [Click(x=x, y=y)]
        try:
            calls = parse_calls(self.text, start, end)
        except ValueError as exc:
            position = getattr(exc, "position", None)
            raise self.error(str(exc), position, getattr(exc, "expected", None)) from None
        if not calls:
            raise self.error("empty action", start, "an action call such as click(start_box=...)")
        return [self._build(call) for call in calls]

    # --- one call -> one action -----------------------------------------------------------

    def _build(self, call: Call) -> AnyAction:
        kind = ACTION_ALIASES.get(call.name)
        if kind is None:
            raise self.error(
                f"unknown action {call.name!r}",
                call.position,
                "one of " + ", ".join(sorted(ACTION_ALIASES)),
            )
        args = self._canonical_args(call, kind)
        try:
            return self._make(kind, args, call)
        except ParseError:
            raise
        except ValueError as exc:
            raise self.error(f"{call.name}: {exc}", call.position, usage(kind)) from None

    def _canonical_args(self, call: Call, kind: str) -> dict[str, tuple[str, int]]:
        declared = ACTION_TYPES[kind].args
        names = {alias: arg.name for arg in declared for alias in (arg.name, *arg.aliases)}
        required = {arg.name for arg in declared if arg.required}
        args: dict[str, tuple[str, int]] = {}
        for name, value, position in call.args:
            key = names.get(name)
            if key is None:
                allowed = ", ".join(sorted(arg.name for arg in declared)) or "no arguments"
                raise self.error(f"{call.name}: unexpected argument {name!r}", position, allowed)
            if key in args:
                raise self.error(
                    f"{call.name}: argument {name!r} given twice", position, usage(kind)
                )
            args[key] = (value, position)
        missing = sorted(required - set(args))
        if missing:
            raise self.error(
                f"{call.name}: missing argument {missing[0]!r}", call.position, usage(kind)
            )
        return args

    def _make(self, kind: str, args: dict[str, tuple[str, int]], call: Call) -> AnyAction:
        """The action from its call's arguments, as its class declares them."""
        cls = ACTION_TYPES[kind]
        values: dict[str, Any] = {}
        for arg in cls.args:
            if arg.kind == "point":
                if arg.name in args:
                    point = self._point(*args[arg.name])
                elif self.screen is not None:  # an optional point: the screen's centre
                    point = (self.screen[0] // 2, self.screen[1] // 2)
                else:
                    raise self.error(
                        f"{kind}: a point is needed without a screen size",
                        call.position,
                        usage(kind),
                    )
                values.update(zip(arg.fields, point, strict=True))
            elif arg.name in args:
                raw = args[arg.name][0]
                values[arg.fields[0]] = split_keys(raw) if arg.kind == "keys" else raw
        return cls(**values)  # type: ignore[return-value]

    def _point(self, value: str, position: int) -> tuple[int, int]:
        try:
            numbers = parse_coordinates(value)
        except ValueError as exc:
            raise self.error(
                f"bad coordinates {value[:40]!r}: {exc}",
                position,
                "'(x,y)', '(x1,y1,x2,y2)', '[x1, y1, x2, y2]', '<point>x y</point>' "
                "or '<bbox>x1 y1 x2 y2</bbox>'",
            ) from None
        if len(numbers) == 4:
            mx, my = (numbers[0] + numbers[2]) / 2, (numbers[1] + numbers[3]) / 2
        else:
            mx, my = numbers
        if self.screen is None:
            sx, sy = mx, my
        else:
            sx, sy = self.frame.to_screen(mx, my, self.screen)
        if not (math.isfinite(sx) and math.isfinite(sy)):
            raise self.error(f"coordinates out of range {value[:40]!r}", position, "finite numbers")
        x, y, moved = clamp_point(sx, sy, self.screen)
        self.clamped = self.clamped or moved
        return x, y


def _content_end(text: str) -> int:
    """Where the answer ends once trailing whitespace and end tokens are dropped (linear)."""
    end = len(text)
    while True:
        while end > 0 and text[end - 1].isspace():
            end -= 1
        token = next((t for t in _END_TOKENS if text.endswith(t, 0, end)), None)
        if token is None:
            return end
        end -= len(token)


def _is_bare_point(body: str) -> bool:
    """Whether the text is only a point or box (its numbers are checked later)."""
    s = body.strip()
    if s.startswith("<|box_start|>") and s.endswith("<|box_end|>"):
        s = s[len("<|box_start|>") : -len("<|box_end|>")].strip()
    return any(s.startswith(a) and s.endswith(b) for a, b in _POINT_TAGS) and len(s) > 1


def split_keys(spec: str) -> list[str]:
    """``'ctrl c'``, ``'ctrl+c'``, ``'Ctrl + Shift + T'`` -> key names.

    A ``+`` standing between two keys joins them; anywhere else (``'ctrl +'``, ``'ctrl++'``)
    it is the plus key, which ``format_action`` writes as ``plus`` to stay unambiguous.
    """
    tokens = spec.split()
    keys: list[str] = []
    for i, token in enumerate(tokens):
        if token == "+":
            joins = 0 < i < len(tokens) - 1 and "+" not in (tokens[i - 1], tokens[i + 1])
            if not joins:
                keys.append("+")
        elif len(token) > 1 and "+" in token:
            keys.extend(part for part in token.split("+") if part)
            if token.endswith("++"):
                keys.append("+")
        else:
            keys.append(token)
    return keys


# --- formatting ---------------------------------------------------------------------------


def quote(value: str, mark: str = "'") -> str:
    """A literal of the action language between ``mark`` quotes (``\\``, ``mark``, newlines
    and tabs escaped)."""
    escaped = value.replace("\\", "\\\\").replace(mark, "\\" + mark).replace("\n", "\\n")
    return mark + escaped.replace("\t", "\\t") + mark


def format_action(
    action: Action,
    frame: str | CoordinateFrame = "uitars-1.5",
    screen: Screen | None = None,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    factor: int | None = None,
) -> str:
    """Write one action the way a model in ``frame`` would, e.g. ``click(start_box='(x,y)')``."""
    coords = CoordinateFrame.of(frame, min_pixels=min_pixels, max_pixels=max_pixels, factor=factor)
    if screen is None and coords.name != "pixels":
        raise ValueError(f"screen: required for the {coords.name} frame")

    cls = ACTION_TYPES.get(action.type)
    if cls is None or not isinstance(action, cls):
        raise ValueError(f"action: cannot format {type(action).__name__}")
    parts = []
    for arg in cls.args:
        value = getattr(action, arg.fields[0])
        if arg.kind == "point":
            x, y = value, getattr(action, arg.fields[1])
            mx, my = (x, y) if screen is None else coords.from_screen(x, y, screen)
            parts.append(f"{arg.name}='({mx},{my})'")
        elif arg.kind == "keys":
            keys = " ".join("plus" if k == "+" else k for k in value)
            parts.append(f"{arg.name}={quote(keys)}")
        elif arg.required or value:  # an optional text is left out when empty
            parts.append(f"{arg.name}={quote(value)}")
    return f"{action.type}({', '.join(parts)})"


def format_response(
    thought: str | None,
    actions: AnyAction | Iterable[AnyAction],
    frame: str | CoordinateFrame = "uitars-1.5",
    screen: Screen | None = None,
    **resize: Any,
) -> str:
    """``"Thought: ...\\nAction: ..."``; several actions are joined by blank lines."""
    items = [actions] if isinstance(actions, Action) else list(actions)
    if not items:
        raise ValueError("actions: at least one action is needed")
    body = "\n\n".join(format_action(a, frame, screen, **resize) for a in items)
    if thought is None or not thought.strip():
        return f"Action: {body}"
    if any(m.group(1) == "Action" for m in _HEADER_LINE.finditer(thought)):
        raise ValueError("thought: a line starting with 'Action:' would be read as the action")
    return f"Thought: {thought.strip()}\nAction: {body}"

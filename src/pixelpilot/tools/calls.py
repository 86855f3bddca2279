"""A scanner for action calls: ``name(key='value', key=(x,y))``, several in a row.

Hand-written on purpose: model output is read, never evaluated. Strings may use single or
double quotes, ``\\'``/``\\"``/``\\n``/``\\t``/``\\\\`` escapes and real newlines. An unescaped
quote closes a string only where the call can go on from there (``, name=`` or ``)`` followed
by the end or by the next call); otherwise it is part of the text, so ``type(content='it's')``
reads as ``it's``. Errors are ``CallError`` (a ``ValueError``) with the position and what was
expected.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from pixelpilot.errors import CallError

_IDENT = re.compile(r"[A-Za-z_]\w*")
_SPACE = re.compile(r"[ \t]*")
_WS = re.compile(r"\s*")
_REPEATED_HEADER = re.compile(r"Action[ \t]*[:：]\s*")
_ARG_FOLLOWS = re.compile(r"\s*,\s*[A-Za-z_]\w*\s*=")
_CLOSE = re.compile(r"\s*\)")
_CALL_ENDS = re.compile(r"\s*(?:\Z|(?:Action[ \t]*[:：]\s*)?[A-Za-z_]\w*\s*\()")
_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", "'": "'", '"': '"'}
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
_COORD_SEPARATORS = re.compile(r"[\s,()\[\]]+")
_PAIRS = {"(": ")", "[": "]"}


@dataclass(frozen=True)
class Call:
    """One call as written: its name, its ``(name, value, position)`` arguments, its position."""

    name: str
    args: tuple[tuple[str, str, int], ...] = field(default_factory=tuple)
    position: int = 0


def parse_calls(text: str, start: int = 0, end: int | None = None) -> list[Call]:
    """Read the calls in ``text[start:end]``, separated by any whitespace.

    A repeated ``Action:`` header before a later call is skipped.
    """
    end = len(text) if end is None else end
    calls: list[Call] = []
    pos = _WS.match(text, start, end).end()
    while pos < end:
        header = _REPEATED_HEADER.match(text, pos, end)  # "Action:" again before a call
        if header and calls:
            pos = header.end()
        call, pos = _read_call(text, pos, end)
        calls.append(call)
        pos = _WS.match(text, pos, end).end()
    return calls


def _read_call(text: str, pos: int, end: int) -> tuple[Call, int]:
    match = _IDENT.match(text, pos, end)
    if not match:
        raise CallError("expected an action name", pos, "an action call such as click(...)")
    name, start = match.group(), pos
    pos = _SPACE.match(text, match.end(), end).end()
    if pos >= end or text[pos] != "(":
        raise CallError(f"expected '(' after {name!r}", pos, "'('")
    pos = _WS.match(text, pos + 1, end).end()
    args: list[tuple[str, str, int]] = []
    while pos < end and text[pos] != ")":
        key = _IDENT.match(text, pos, end)
        if not key:
            raise CallError(f"{name}: expected an argument name", pos, "name=value")
        pos = _WS.match(text, key.end(), end).end()
        if pos >= end or text[pos] != "=":
            raise CallError(f"{name}: expected '=' after {key.group()!r}", pos, "'='")
        pos = _WS.match(text, pos + 1, end).end()
        value_at = pos
        value, pos = _read_value(text, pos, end)
        args.append((key.group(), value, value_at))
        pos = _WS.match(text, pos, end).end()
        if pos < end and text[pos] == ",":
            pos = _WS.match(text, pos + 1, end).end()
        elif pos >= end or text[pos] != ")":
            raise CallError(f"{name}: expected ',' or ')'", pos, "',' or ')'")
    if pos >= end:
        raise CallError(f"{name}: missing ')'", pos, "')'")
    return Call(name, tuple(args), start), pos + 1


def _read_value(text: str, pos: int, end: int) -> tuple[str, int]:
    if pos >= end:
        raise CallError("expected a value", pos, "a quoted string or a point")
    if text[pos] in "'\"":
        return _read_string(text, pos, end)
    depth: list[str] = []
    i = pos
    while i < end:
        c = text[i]
        if c in _PAIRS:
            depth.append(_PAIRS[c])
        elif depth and c == depth[-1]:
            depth.pop()
        elif not depth and c in ",)":
            break
        elif c in ")]":
            raise CallError(f"unbalanced {c!r}", i, repr(depth[-1]) if depth else None)
        i += 1
    value = text[pos:i].strip()
    if depth or not value:
        raise CallError("expected a value", pos, "a quoted string or a point")
    return value, i


def _read_string(text: str, pos: int, end: int) -> tuple[str, int]:
    quote = text[pos]
    weak = None
    i = pos + 1
    while i < end:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == quote:
            if _ARG_FOLLOWS.match(text, i + 1, end):
                return unescape(text[pos + 1 : i]), i + 1
            close = _CLOSE.match(text, i + 1, end)
            if close:
                if _CALL_ENDS.match(text, close.end(), end):
                    return unescape(text[pos + 1 : i]), i + 1
                weak = i if weak is None else weak
        i += 1
    if weak is not None:
        return unescape(text[pos + 1 : weak]), weak + 1
    raise CallError("unterminated string", pos, f"a closing {quote}")


def unescape(raw: str) -> str:
    """Resolve the escapes n, t, backslash and quotes; other backslashes stay as written."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_coordinates(value: str) -> list[float]:
    """The 2 or 4 numbers of a point or box in any of the notations models write.

    ``(x,y)``, ``(x1,y1,x2,y2)``, ``[x1, y1, x2, y2]``, ``<point>x y</point>``,
    ``<bbox>x1 y1 x2 y2</bbox>``, each optionally inside ``<|box_start|>...<|box_end|>``,
    and ``(x1,y1),(x2,y2)``. ``ValueError`` otherwise.
    """
    s = value.strip().replace("<|box_start|>", "").replace("<|box_end|>", "").strip()
    for opening, closing in (("<point>", "</point>"), ("<bbox>", "</bbox>")):
        if s.startswith(opening) and s.endswith(closing):
            s = s[len(opening) : -len(closing)]
            break
    stack: list[str] = []
    for c in s:
        if c in _PAIRS:
            stack.append(_PAIRS[c])
        elif c in ")]":
            if not stack or stack.pop() != c:
                raise ValueError("unbalanced brackets")
    if stack:
        raise ValueError("unbalanced brackets")
    tokens = [t for t in _COORD_SEPARATORS.split(s) if t]
    if any(len(t) > 24 or not _NUMBER.fullmatch(t) for t in tokens):
        raise ValueError("expected numbers")
    if len(tokens) not in (2, 4):
        raise ValueError(f"expected 2 or 4 numbers, got {len(tokens)}")
    numbers = [float(t) for t in tokens]
    if not all(math.isfinite(n) for n in numbers):
        raise ValueError("numbers must be finite")
    return numbers

"""Export actions as a pyautogui script a person can read and run.

Each action class declares its statements as templates (``Action.pyautogui``); this module
fills them in. Every string value (typed text, messages, app names) is written as one Python
string literal (``repr``) and nothing else, whatever the template says, so no model output can
become code: the only calls in the script are ``pyautogui.*`` and ``time.sleep``. Coordinates
are the actions' screen pixels.

Templates name the action's fields and properties (``{x}``, ``{content}``) and the export
settings ``{wait_seconds}`` and ``{hold_seconds}``; three format specs speak pyautogui:
``{keys:keys}`` (key names, comma-separated literals), ``{direction:wheel}`` (``scroll`` or
``hscroll``) and ``{direction:clicks}`` (signed wheel clicks). A template given as
``(name, line)`` is written only when the action's ``name`` is true.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Iterable

from pixelpilot.tools.actions import Action
from pixelpilot.tools.frames import Screen

# Our canonical key names -> pyautogui's where they differ.
PYAUTOGUI_KEYS = {"meta": "win", "menu": "apps"}
SCROLL_CLICKS = 5
WAIT_SECONDS = 5.0
LONG_PRESS_SECONDS = 1.0


def pyautogui_key(key: str) -> str:
    """The pyautogui name of one of our canonical key names."""
    return PYAUTOGUI_KEYS.get(key, key)


def to_pyautogui_script(
    actions: Iterable[Action],
    screen: Screen | None = None,
    *,
    pause: float = 0.5,
) -> str:
    """Python source that performs ``actions`` with pyautogui, one commented block per action.

    ``screen`` (width, height) is written into the header and every point is checked against
    it (``ValueError`` naming the action otherwise). A ``type`` whose content ends with a
    newline presses Enter once after typing; left/right scrolls use ``hscroll``. The script
    stops after ``finished`` or ``call_user``.
    """
    items = list(actions)
    where = f" on a {screen[0]}x{screen[1]} screen" if screen else ""
    lines = [
        f'"""{len(items)} action(s) exported by pixelpilot{where}; run: python <this file>.',
        "",
        "Move the mouse into a screen corner to abort (pyautogui's fail-safe).",
        '"""',
        "",
        "import time",
        "",
        "import pyautogui",
        "",
        "pyautogui.FAILSAFE = True",
        f"pyautogui.PAUSE = {float(pause)!r}",
    ]
    for index, action in enumerate(items, start=1):
        if screen is not None:
            _check_inside(action, screen, index)
        lines.append("")
        lines.append(f"# {index}. {action.type}")
        lines.extend(_statements(action))
        if action.terminal:
            if index < len(items):
                lines.append(f"# {len(items) - index} later action(s) not exported")
            break
    return "\n".join(lines) + "\n"


_SETTINGS = {"wait_seconds": WAIT_SECONDS, "hold_seconds": LONG_PRESS_SECONDS}


@functools.cache
def _pieces(template: str) -> tuple[tuple[str, str | None, str], ...]:
    """(literal text, field name or None, format spec) runs of a template, parsed once."""
    out = []
    for text, name, spec, conversion in string.Formatter().parse(template):
        if conversion:
            raise ValueError(
                f"{template!r}: no !{conversion}; every string is written as a literal"
            )
        out.append((text, name, spec or ""))
    return tuple(out)


def _value(action: Action, name: str, spec: str) -> str:
    """One filled-in placeholder: strings only ever as Python literals."""
    value = _SETTINGS[name] if name in _SETTINGS else getattr(action, name)
    if spec == "keys":
        return ", ".join(repr(pyautogui_key(str(k))) for k in value)
    if spec == "wheel":
        return "scroll" if value in ("up", "down") else "hscroll"
    if spec == "clicks":
        return str((1 if value in ("up", "right") else -1) * SCROLL_CLICKS)
    if spec or isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{action.type}: cannot export {value!r} as {spec!r}")
    return repr(value)


def _statements(action: Action) -> list[str]:
    if not action.pyautogui:
        return [f"# {action.type}() has no pyautogui form; skipped"]
    lines = []
    for template in action.pyautogui:
        if isinstance(template, tuple):
            flag, template = template
            if not getattr(action, flag):
                continue
        lines.append(
            "".join(
                text + (_value(action, name, spec) if name is not None else "")
                for text, name, spec in _pieces(template)
            )
        )
    return lines


def _check_inside(action: Action, screen: Screen, index: int) -> None:
    width, height = screen
    for x, y in action.points:
        if x >= width or y >= height:
            raise ValueError(
                f"actions[{index - 1}]: point ({x},{y}) outside the {width}x{height} screen"
            )

"""Export actions as a pyautogui script a person can read and run.

Every string from a model (typed text, key names, messages) is emitted with ``repr`` as one
Python string literal and nothing else, so no model output can become code: the only calls in
the script are ``pyautogui.*`` and ``time.sleep``. Coordinates are the actions' screen pixels.
"""

from __future__ import annotations

from collections.abc import Iterable

from pixelpilot.tools.actions import (
    Action,
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
        if isinstance(action, (Finished, CallUser)):
            if index < len(items):
                lines.append(f"# {len(items) - index} later action(s) not exported")
            break
    return "\n".join(lines) + "\n"


def _statements(action: Action) -> list[str]:
    if isinstance(action, Click):
        return [f"pyautogui.click({action.x}, {action.y})"]
    if isinstance(action, LeftDouble):
        return [f"pyautogui.doubleClick({action.x}, {action.y})"]
    if isinstance(action, RightSingle):
        return [f"pyautogui.rightClick({action.x}, {action.y})"]
    if isinstance(action, LongPress):
        return [
            f"pyautogui.mouseDown({action.x}, {action.y})",
            f"time.sleep({LONG_PRESS_SECONDS!r})",
            f"pyautogui.mouseUp({action.x}, {action.y})",
        ]
    if isinstance(action, Drag):
        return [
            f"pyautogui.moveTo({action.x1}, {action.y1})",
            f"pyautogui.dragTo({action.x2}, {action.y2}, duration=0.5, button='left')",
        ]
    if isinstance(action, Scroll):
        return [_scroll(action)]
    if isinstance(action, Hotkey):
        keys = ", ".join(repr(pyautogui_key(k)) for k in action.keys)
        return [f"pyautogui.hotkey({keys})"]
    if isinstance(action, Type):
        out = [f"pyautogui.write({action.text!r}, interval=0.02)"] if action.text else []
        return out + (["pyautogui.press('enter')"] if action.submit else [])
    if isinstance(action, Wait):
        return [f"time.sleep({WAIT_SECONDS!r})"]
    if isinstance(action, Finished):
        return [f"# the task is finished: {action.content!r}"]
    if isinstance(action, CallUser):
        return [f"# the agent asks for the user here: {action.content!r}"]
    if isinstance(action, OpenApp):
        return [f"# open_app({action.app_name!r}) is a phone action; pyautogui cannot do it"]
    if isinstance(action, (PressHome, PressBack)):
        return [f"# {action.type}() is a phone action; pyautogui cannot do it"]
    raise ValueError(f"action: cannot export {type(action).__name__}")


def _scroll(action: Scroll) -> str:
    sign = 1 if action.direction in ("up", "right") else -1
    func = "scroll" if action.direction in ("up", "down") else "hscroll"
    return f"pyautogui.{func}({sign * SCROLL_CLICKS}, x={action.x}, y={action.y})"


def _check_inside(action: Action, screen: Screen, index: int) -> None:
    width, height = screen
    points = [action.point] if action.point else []
    if isinstance(action, Drag):
        points.append((action.x2, action.y2))
    for x, y in points:
        if x >= width or y >= height:
            raise ValueError(
                f"actions[{index - 1}]: point ({x},{y}) outside the {width}x{height} screen"
            )

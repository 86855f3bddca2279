"""Declare a new action type once, and every part of pixelpilot knows it.

Run: .venv/bin/python examples/declare_action.py

``Hover`` below is the only place the new action is described. The parser reads it, the
formatter writes it, the pyautogui export performs it, the langchain tools offer it, the
computer prompt lists it and the matching rules judge it as a click-like action.
"""

from __future__ import annotations

from dataclasses import dataclass

from pixelpilot.agent.prompts import action_space
from pixelpilot.eval.matching import match_action
from pixelpilot.tools import (
    PointAction,
    format_action,
    make_action_tools,
    parse_response,
    to_pyautogui_script,
)


@dataclass(frozen=True)
class Hover(PointAction):
    type = "hover"
    aliases = ("mouse_move",)
    usage = "hover(start_box='(x1,y1)') # move the pointer over an element to see its tooltip"
    description = "Move the mouse pointer to a point without clicking."
    prompt_kinds = frozenset({"computer"})
    pyautogui = ("pyautogui.moveTo({x}, {y})",)


def main() -> None:
    screen = (1280, 720)
    answer = "Thought: Show the tooltip.\nAction: hover(start_box='(500,500)')"
    action = parse_response(answer, "uitars-1.0", screen).actions[0]
    print("parsed:", action)
    print("in the uitars-1.5 frame:", format_action(action, "uitars-1.5", screen))
    print("pyautogui:", to_pyautogui_script([action], screen).splitlines()[-1])
    tool = next(t for t in make_action_tools(str, "pixels", screen) if t.name == "hover")
    print("tool:", tool.name, "-", tool.description)
    print(
        "prompt line:",
        next(line for line in action_space("uitars-1.5", "computer") if line.startswith("hover")),
    )
    gold = Hover(x=640, y=360)
    print("match:", match_action(action, gold, (600, 340, 680, 380), screen).to_dict())


if __name__ == "__main__":
    main()

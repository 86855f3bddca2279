"""Parse a UI-TARS answer, write it for another model, and export it as a pyautogui script.

Run: .venv/bin/python examples/parse_and_export.py [--screen 1280x720] [--out script.py]

The answer below is what a UI-TARS-1.5 model writes: absolute pixels of the image it saw,
which Qwen2.5-VL's processor resized (smart_resize) from the real screen. pixelpilot reads it
into actions in screen pixels, writes the same actions the way a UI-TARS-1.0 model would
(0..1000 on both axes), and turns them into a readable pyautogui script.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pixelpilot.tools import format_response, parse_response, to_pyautogui_script

ANSWER = (
    "Thought: The search box is at the top of the page. I click it and type the query.\n"
    "Action: click(start_box='(644,60)')\n\n"
    "type(content='weather in Paris\\n')"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screen", default="1280x720", help="screen size WxH")
    parser.add_argument("--out", type=Path, help="write the pyautogui script here")
    args = parser.parse_args()
    width, height = (int(v) for v in args.screen.lower().split("x"))
    screen = (width, height)

    response = parse_response(ANSWER, frame="uitars-1.5", screen=screen)
    print("thought:", response.thought)
    print("actions (screen pixels):", json.dumps([a.to_dict() for a in response.actions]))

    as_10 = format_response(response.thought, response.actions, "uitars-1.0", screen)
    print("\nthe same answer in the uitars-1.0 frame:\n" + as_10)
    again = parse_response(as_10, "uitars-1.0", screen).actions
    print("\nread back:", [a.to_dict() for a in again])

    script = to_pyautogui_script(response.actions, screen)
    if args.out:
        args.out.write_text(script)
        print(f"\npyautogui script written to {args.out}")
    else:
        print("\n" + script)


if __name__ == "__main__":
    main()

"""Prompt templates for UI-TARS-style models, in our own wording.

The structure follows the prompts published with UI-TARS 1.0 and 1.5 (``ui_tars/prompt.py``
in the ``ui-tars`` package, from bytedance/UI-TARS): a role line, the answer format, the
action space as function signatures, notes, then the user instruction. Three kinds:

- ``computer``: desktop and browser actions (click, drag, hotkey, type, scroll, ...);
- ``mobile``: touch actions (long_press, open_app, press_home, press_back, ...);
- ``grounding``: answer with one action on the described element, no plan.

Each kind comes in the ``uitars-1.0`` wording (boxes as ``<|box_start|>(x1,y1)<|box_end|>``,
coordinates relative 0..1000) and the ``uitars-1.5`` wording (points ``(x1,y1)`` on the resized
image). ``language`` ("English" or "Chinese") is the language the model should think in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pixelpilot.errors import PromptError
from pixelpilot.vlm.base import PROMPT_KINDS as KINDS
from pixelpilot.vlm.base import PROMPT_LANGUAGES as LANGUAGES

FAMILIES = ("uitars-1.0", "uitars-1.5")


_POINT = re.compile(r"'(\(x\d,y\d\))'")


def action_space(family: str, kind: str) -> list[str]:
    """The action signatures (with short comments) listed to the model: the usage line each
    action class declares for this kind (``pixelpilot.tools.actions``), the actions that end
    the task last; ``uitars-1.0`` writes points as ``<|box_start|>(x1,y1)<|box_end|>``."""
    from pixelpilot.tools.actions import ACTION_TYPES

    listed = [cls for cls in ACTION_TYPES.values() if kind in cls.prompt_kinds]
    listed.sort(key=lambda cls: cls.terminal)
    lines = [cls.usage_line() for cls in listed]
    if family == "uitars-1.0":
        lines = [_POINT.sub(r"'<|box_start|>\1<|box_end|>'", line) for line in lines]
    return lines


_ROLE = (
    "You operate a graphical user interface by looking at screenshots. You get a task, the "
    "actions taken so far and the latest screenshot; reply with the single next action."
)
_GROUNDING_ROLE = (
    "You locate elements on a graphical user interface. Given a screenshot and a description, "
    "reply with the one action that acts on the described element."
)


def _output_format(with_reflection: bool) -> str:
    lines = ["```"]
    if with_reflection:
        lines.append("Reflection: ...")
    lines += ["Thought: ...", "Action: ...", "```"]
    return "\n".join(lines)


def _notes(family: str, language: str) -> list[str]:
    notes = [f"- Write the Thought part in {language}."]
    if family == "uitars-1.5":
        notes.append(
            "- In Thought, sketch a short plan, then state the next action and the element it "
            "targets in one sentence."
        )
    else:
        notes.append("- In Thought, say briefly what you see and why you take the next action.")
    return notes


@dataclass(frozen=True)
class PromptTemplate:
    family: str = "uitars-1.5"
    kind: str = "computer"
    language: str = "English"

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise PromptError(f"unknown prompt family {self.family!r} (one of {FAMILIES})")
        if self.kind not in KINDS:
            raise PromptError(f"unknown prompt kind {self.kind!r} (one of {KINDS})")
        if self.language not in LANGUAGES:
            raise PromptError(f"unknown language {self.language!r} (one of {LANGUAGES})")

    def render(self, instruction: str) -> str:
        """The first user message: everything the model needs besides the screenshots."""
        if self.kind == "grounding":
            if self.family == "uitars-1.5":
                return (
                    f"{_GROUNDING_ROLE}\n\n## Output Format\n```\nAction: ...\n```\n\n"
                    f"## Action Space\n{chr(10).join(action_space(self.family, self.kind))}\n\n"
                    f"## User Instruction\n{instruction}"
                )
            return (
                f"{_GROUNDING_ROLE} Answer with the point of the element only.\n\n"
                f"## User Instruction\n{instruction}"
            )
        parts = [
            _ROLE,
            "## Output Format\n" + _output_format(with_reflection=False),
            "## Action Space\n" + "\n".join(action_space(self.family, self.kind)),
            "## Note\n" + "\n".join(_notes(self.family, self.language)),
            "## User Instruction\n" + instruction,
        ]
        return "\n\n".join(parts)


def template_for(
    profile_family: str, kind: str = "computer", language: str = "English"
) -> PromptTemplate:
    """The template for a model profile's ``prompt_family``; ``PromptError`` if unknown."""
    return PromptTemplate(profile_family, kind, language)

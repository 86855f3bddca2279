"""Prompt templates: every family x kind x language renders with the right action space."""

from __future__ import annotations

import itertools

import pytest

from pixelpilot.agent.prompts import (
    FAMILIES,
    KINDS,
    LANGUAGES,
    PromptError,
    PromptTemplate,
    action_space,
    template_for,
)
from pixelpilot.tools import parse_response


@pytest.mark.parametrize(
    ("family", "kind", "language"), itertools.product(FAMILIES, KINDS, LANGUAGES)
)
def test_every_template_renders(family: str, kind: str, language: str) -> None:
    text = PromptTemplate(family, kind, language).render("Open the settings & <save>")
    assert text.rstrip().endswith("Open the settings & <save>")
    assert "## User Instruction" in text
    if kind != "grounding":
        assert f"Write the Thought part in {language}." in text
        assert "## Action Space" in text and "Thought: ..." in text


def test_action_spaces_differ_by_kind_and_family() -> None:
    computer = "\n".join(action_space("uitars-1.5", "computer"))
    mobile = "\n".join(action_space("uitars-1.5", "mobile"))
    assert "hotkey(" in computer and "call_user()" in computer and "press_home" not in computer
    assert "long_press(" in mobile and "open_app(" in mobile and "hotkey(" not in mobile
    assert action_space("uitars-1.5", "grounding") == ["click(start_box='(x1,y1)')"]
    assert "<|box_start|>(x1,y1)<|box_end|>" in action_space("uitars-1.0", "computer")[0]


def test_listed_signatures_are_the_parsers_language() -> None:
    """Every action in the computer/mobile listing parses once placeholders are filled in."""
    for kind in ("computer", "mobile"):
        for line in action_space("uitars-1.5", kind):
            call = line.split(" #")[0]
            call = call.replace("(x1,y1)", "(10,20)").replace("(x3,y3)", "(30,40)")
            call = call.replace("down or up or right or left", "down")
            call = call.replace("app_name=''", "app_name='Files'")
            response = parse_response(f"Action: {call}", "pixels")
            assert len(response.actions) == 1, call


def test_unknown_family_kind_language_are_errors() -> None:
    with pytest.raises(PromptError, match="unknown prompt family"):
        template_for("gpt-4")
    with pytest.raises(PromptError, match="unknown prompt kind"):
        PromptTemplate(kind="tablet")
    with pytest.raises(PromptError, match="unknown language"):
        PromptTemplate(language="French")

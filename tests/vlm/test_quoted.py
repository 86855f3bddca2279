"""Quoted typing (pixelpilot.vlm.quoted): what a ``type`` action writes, constrained to the
instruction's quoted strings, with the bundled model's tokenizer and the bundled model."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pixelpilot.agent.policy import VLMPolicy
from pixelpilot.envs.base import Observation
from pixelpilot.errors import FileFormatError
from pixelpilot.tools.calls import unescape
from pixelpilot.train.synthetic import render
from pixelpilot.vlm.base import SamplingParams
from pixelpilot.vlm.hf import HFVLM
from pixelpilot.vlm.profiles import Declaration, read_declaration, write_declaration
from pixelpilot.vlm.quoted import QuotedTyping, instruction_quotes

TYPE = "Action: type(content='"


@pytest.fixture(scope="module")
def quoted(bundled_tokenizer: Any) -> QuotedTyping:
    return QuotedTyping(bundled_tokenizer)


def test_the_quoted_strings_come_from_the_instruction() -> None:
    prompt = 'Reply like "this".\n\n## User Instruction\nEnter "ab1" then “Cd 2” and "ab1".'
    assert instruction_quotes(prompt) == ["ab1", "Cd 2"]  # in order, once, not the template's
    assert instruction_quotes('Type "x" here') == ["x"]  # no marker: the whole message
    assert instruction_quotes("## User Instruction\nClick the button.") == []
    assert instruction_quotes('## User Instruction\nan "unclosed\nquote"') == []


def test_typing_may_only_copy_a_quoted_string(quoted: QuotedTyping) -> None:
    decode = quoted.tokenizer.decode
    quotes = ["xK56", "TA8f8"]

    def allowed(answer: str, quotes: list[str] = quotes) -> set[str] | None:
        ids = quoted.allowed(answer, quotes)
        return None if ids is None else {decode([i]) for i in ids}

    assert allowed(TYPE) == {"x", "T"}  # the start of either string (the model picks)
    assert allowed(TYPE + "xK") == {"5", "56"}  # the bundled tokenizer writes 56 as one token
    assert allowed(TYPE + "xK5") == {"6"}
    done = allowed(TYPE + "xK56")
    assert done and "\\" in done and all(t[0] in "'\\" for t in done)  # close, or \n first
    assert "')" in done and "'," not in done  # `',` would leave `type(content='xK56',...`
    assert allowed(TYPE + "xK56\\n") == {t for t in done if t[0] == "'"}  # then only close
    after_escape = allowed(TYPE + "xK56\\")  # the escape's backslash alone: its n is due
    assert after_escape and all(t.startswith("n") for t in after_escape)
    assert allowed('Action: type(content="TA8') == {"f"}  # double-quoted content too
    for free in (
        "Action: click(start_box='(",  # not typing
        TYPE + "xK56') click(",  # after the closing quote
        TYPE + "zz",  # content written before the constraint applied: left alone
        "Action: finished(content='",  # only what type writes
        "Action: hotkey_type(content='",  # not an action called type
    ):
        assert allowed(free) is None, free
    assert allowed(TYPE, []) is None  # an instruction that quotes nothing leaves typing free
    escaped = allowed(TYPE + "it", ["it's"])  # a quote inside the string is written escaped
    assert escaped == {"\\"}


def test_the_mask_keeps_only_the_copy(quoted: QuotedTyping) -> None:
    import torch

    tokenizer = quoted.tokenizer
    proc = quoted.processor(prompt_len=1, quotes=[["xK56"], ["TA8f8"]], n=2)
    answer = tokenizer(TYPE, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([[0, *answer]] * 4)  # two conversations, two answers each
    scores = torch.randn(4, len(tokenizer))
    out = proc(ids, scores.clone())
    for row, first in enumerate(("x", "x", "T", "T")):
        kept = torch.nonzero(~torch.isneginf(out[row])).flatten().tolist()
        assert [tokenizer.decode([i]) for i in kept] == [first], row
        assert torch.equal(out[row, kept], scores[row, kept])  # its score is unchanged


def _typing_conversations(vlm: HFVLM, count: int) -> list[tuple[Any, str]]:
    """Second steps of synthetic typing episodes (the field clicked, now focused)."""
    convs = []
    for i in range(count):
        image, sample = render(11, i, ("type",))  # a stream the recipe does not draw
        policy = VLMPolicy(vlm)
        policy.reset(sample.instruction)
        x, y = sample.point
        policy.remember(image, f"Action: click(start_box='({x},{y})')")
        convs.append((policy.conversation(Observation(image, sample.instruction)), sample))
    return convs


def test_sampled_typing_copies_a_quoted_string(bundled: Path) -> None:
    """Hot sampling makes the bundled model miscopy; with the constraint every content it
    writes and closes is one of the instruction's quoted strings."""
    off = {"pointer_weight": 0.0, "well_formed_actions": False}
    plain = HFVLM(bundled, well_formed_points=False, quoted_typing=False, **off)
    constrained = HFVLM(bundled, quoted_typing=True, **off)
    assert plain.quoted is None and constrained.quoted is not None
    params = SamplingParams(max_new_tokens=30, temperature=2.0, n=8, seed=0)
    content = re.compile(r"type\(content='((?:\\.|[^'\\])*)'")
    counts = {}
    for vlm in (plain, constrained):
        typed = wrong = 0
        for conv, sample in _typing_conversations(vlm, 6):
            quotes = instruction_quotes(conv.messages[0].text)
            assert sample.text in quotes
            for g in vlm.generate([conv], params):
                for m in content.finditer(g.text):
                    typed += 1
                    wrong += unescape(m.group(1)).rstrip("\n") not in quotes
        counts[vlm is constrained] = (typed, wrong)
    assert counts[True][0] >= 10 and counts[True][1] == 0, counts  # every copy exact
    assert counts[False][1] >= 3, counts  # without it some are miscopied: the check can fail


def test_the_declaration_carries_quoted_typing(tmp_path: Path) -> None:
    write_declaration(tmp_path, Declaration("grounding", "English", False, quoted_typing=True))
    assert read_declaration(tmp_path).quoted_typing is True
    write_declaration(tmp_path, Declaration("grounding", "English", False))
    assert "quoted_typing" not in json.loads((tmp_path / "pixelpilot.json").read_text())
    for bad in ("yes", 1, None):
        (tmp_path / "pixelpilot.json").write_text(json.dumps({"quoted_typing": bad}))
        with pytest.raises(FileFormatError, match="quoted_typing must be true or false"):
            read_declaration(tmp_path)

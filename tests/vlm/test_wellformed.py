"""Well-formed actions (pixelpilot.vlm.wellformed): the call after ``Action:`` constrained to
the action language, with the bundled model's tokenizer and the bundled model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pixelpilot.errors import FileFormatError
from pixelpilot.tools import Action
from pixelpilot.tools.grammar import ACTION_HEADER, format_action, parse_response
from pixelpilot.vlm.base import SamplingParams
from pixelpilot.vlm.hf import HFVLM
from pixelpilot.vlm.profiles import Declaration, read_declaration, write_declaration
from pixelpilot.vlm.wellformed import ActionSyntax

# beside one action of every type (the action_examples fixture), values that need escapes
EXTRA = [
    {"type": "type", "content": "it's done\n"},
    {"type": "finished", "content": "the answer is 42"},
]


@pytest.fixture(scope="module")
def calls(bundled_tokenizer: Any) -> ActionSyntax:
    return ActionSyntax(bundled_tokenizer)


def _texts(calls: ActionSyntax, ids: list[int] | None) -> set[str] | None:
    return None if ids is None else {calls.texts[i] for i in ids}


def test_the_call_after_action_is_held_to_the_language(calls: ActionSyntax) -> None:
    def allowed(answer: str) -> set[str] | None:
        return _texts(calls, calls.allowed(answer))

    names = allowed("Action:")
    assert names and {" click", " type", " drag", " scroll"} <= names
    assert "," not in names and ":" not in names  # `Action:,428)')` is no longer written
    assert all(calls.viable(t) for t in names)
    assert allowed("Action: cl") == {"i"}
    typing = allowed("Action: type(")
    assert typing and "content" in typing and not {"start", " s", "s"} & typing
    assert allowed("Action: click(start") == {"_"}
    assert "='(" in (allowed("Action: click(start_box") or set())
    closing = allowed("Action: click(start_box='(144,428)")
    assert closing and "')" in closing and "," not in closing
    assert allowed("Action: scroll(start_box='(1,2)'") == {","}  # direction is required
    inside = allowed("Action: type(content='pre")  # a text value is the model's ...
    assert inside and {"')", "'", ")", ","} <= inside and len(inside) > len(calls.texts) // 2
    assert "'," not in inside  # ... but it may not close into a second argument type lacks
    assert "'," not in (allowed("Action: finished(content='done") or {"',"})
    assert "'," in (allowed("Action: drag(start_box='(1,2)") or set())  # a point goes on
    for free in (
        "Thought: I click",  # no Action: yet
        "Action:,428",  # broken before the constraint came in: left alone
    ):
        assert calls.allowed(free) is None, free
    # after the call: the answer ends, or whitespace leads to another call; nothing else
    done = calls.allowed("Action: click(start_box='(144,428)')")
    assert done is not None and set(calls.stop_ids) <= set(done) and calls.stop_ids
    after = {calls.texts[i] for i in done if i not in calls.stop_ids}
    assert after and all(t.isspace() or calls.viable("click(start_box='(1,2)')" + t)
                         for t in after)  # fmt: skip
    assert "7" not in after and "')" not in after and "\n" in after
    more = allowed("Action: click(start_box='(144,428)')\n")
    assert more and {"Action", "click"} <= {t.strip() for t in more}
    assert not set(calls.stop_ids) & set(calls.allowed("Action: click(start_box='(1,") or [])
    # the last Action: counts
    assert allowed("Thought: Action: x\nAction:") == names


def test_every_action_the_formatter_writes_passes_the_mask(
    calls: ActionSyntax, action_examples: list[dict[str, Any]]
) -> None:
    """Token by token, each formatted action is allowed: the constraint never stops a
    well-formed answer."""
    for data in [*action_examples, *EXTRA]:
        answer = "Action: " + format_action(Action.from_dict(data), "uitars-1.0", (1000, 1000))
        assert parse_response(answer, "uitars-1.0", (1000, 1000)).actions
        ids = calls.tokenizer(answer, add_special_tokens=False)["input_ids"]
        for k in range(1, len(ids)):
            written = calls.tokenizer.decode(ids[:k], clean_up_tokenization_spaces=False)
            allowed = calls.allowed(written)
            assert allowed is None or ids[k] in allowed, (written, calls.texts[ids[k]])


def test_sampled_answers_write_only_calls_that_parse(
    bundled: Path, screen_conversations: Any
) -> None:
    """Hot sampling breaks the bundled model's calls; with the constraint (and well-formed
    points) every answer that ends within the token budget and writes an ``Action:`` header
    parses. A header is what the parser and the constraint both read as one: ``Action:`` at
    the start or after whitespace; hot samples also glue it to earlier text (``V124Action:886
    ...``), which neither reads as a header and the constraint does not hold."""
    off = {"pointer_weight": 0.0, "quoted_typing": False}
    plain = HFVLM(bundled, well_formed_points=False, well_formed_actions=False, **off)
    constrained = HFVLM(bundled, well_formed_points=True, well_formed_actions=True, **off)
    assert plain.calls is None and constrained.calls is not None
    params = SamplingParams(max_new_tokens=40, temperature=3.0, n=8, seed=0)
    counts = {}
    for vlm in (plain, constrained):
        answers = broken = 0
        for conv in screen_conversations(vlm, 12, 8):  # a stream the recipe does not draw
            for g in vlm.generate([conv], params):
                if g.finish_reason != "stop" or not ACTION_HEADER.search(g.text):
                    continue
                answers += 1
                try:
                    parse_response(g.text, "uitars-1.0", (160, 210))
                except ValueError:
                    broken += 1
        counts[vlm is constrained] = (answers, broken)
    assert counts[True][0] >= 20 and counts[True][1] == 0, counts  # every answer parses
    assert counts[False][1] >= 3, counts  # without it some do not: the check above can fail


def test_the_declaration_carries_well_formed_actions(tmp_path: Path) -> None:
    write_declaration(tmp_path, Declaration("grounding", well_formed_actions=True))
    assert read_declaration(tmp_path).well_formed_actions is True
    write_declaration(tmp_path, Declaration("grounding"))
    assert "well_formed_actions" not in json.loads((tmp_path / "pixelpilot.json").read_text())
    for bad in ("yes", 1, None):
        (tmp_path / "pixelpilot.json").write_text(json.dumps({"well_formed_actions": bad}))
        with pytest.raises(FileFormatError, match="well_formed_actions must be true or false"):
            read_declaration(tmp_path)


def test_the_mask_keeps_what_every_speaking_rule_allows(bundled_tokenizer: Any) -> None:
    """A point's closing token that the point grammar allows (``)',``) is out where the call
    grammar allows no further argument: the rules that speak are intersected, in order."""
    import torch

    from pixelpilot.vlm.masking import AnswerMask

    def kept(*rules: Any) -> set[int]:
        mask = AnswerMask(bundled_tokenizer, 1, list(rules))
        out = mask(torch.tensor([[0, 5]]), torch.zeros(1, len(bundled_tokenizer)))
        return set(torch.isfinite(out[0]).nonzero().flatten().tolist())

    assert kept(lambda r, t: [1, 2, 3], lambda r, t: None, lambda r, t: [4, 3, 2]) == {2, 3}
    assert kept(lambda r, t: [1], lambda r, t: [4]) == {1}  # nothing shared: the first rule's
    assert kept(lambda r, t: None) == set(range(len(bundled_tokenizer)))  # no rule: untouched

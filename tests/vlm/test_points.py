"""Well-formed points (pixelpilot.vlm.points): the point grammar as a decoding constraint, with
the bundled model's tokenizer (numbers are one token) and one that writes digit by digit."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pixelpilot.errors import FileFormatError
from pixelpilot.vlm.base import SamplingParams
from pixelpilot.vlm.hf import HFVLM
from pixelpilot.vlm.points import MAX_DIGITS, PointSyntax
from pixelpilot.vlm.profiles import Declaration, read_declaration, write_declaration

OPEN = "Action: click(start_box='("


@pytest.fixture(scope="module")
def syntax(bundled_tokenizer: Any) -> PointSyntax:
    return PointSyntax(bundled_tokenizer)


@pytest.fixture(scope="module")
def digit_syntax(tmp_path_factory: pytest.TempPathFactory) -> PointSyntax:
    """A byte-level BPE trained here that splits numbers into single digits (as Qwen2's
    tokenizer does)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(use_regex=True)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"],
    )  # fmt: skip
    corpus = [f"Action: click(start_box='({i * 7 % 1000},{i * 13 % 1000})')" for i in range(300)]
    tok.train_from_iterator(corpus, trainer)
    return PointSyntax(PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>"))


def _texts(syntax: PointSyntax, ids: list[int] | None) -> set[str] | None:
    return None if ids is None else {syntax.tokenizer.decode([i]) for i in ids}


@pytest.mark.parametrize("which", ["syntax", "digit_syntax"])
def test_the_grammar_of_a_point(which: str, request: pytest.FixtureRequest) -> None:
    syntax: PointSyntax = request.getfixturevalue(which)
    digits = _texts(syntax, syntax.digits)
    assert digits and all(d.isdigit() for d in digits)
    if which == "digit_syntax":
        assert digits == set("0123456789")
    else:
        assert {"0", "383", "1000"} <= digits  # numbers are one token each
    commas, closes = _texts(syntax, syntax.commas), _texts(syntax, syntax.closes)
    assert "," in commas and all(c.strip() == "," for c in commas)
    assert ")" in closes and all(c.strip().startswith(")") for c in closes)

    def allowed(text: str) -> set[str] | None:
        return _texts(syntax, syntax.allowed(text))

    assert allowed(OPEN) == digits  # x due: a number, nothing else
    assert allowed("Action: drag(start_box='(1,2)', end_box='(") == digits
    assert allowed("Action: click(start_box='<|box_start|>(") == digits

    def fits(room: int) -> set[str]:
        return {d for d in digits if len(d) <= room}

    assert allowed(OPEN + "38") == fits(2) | commas  # x may go on (to 4 digits) or end
    assert allowed(OPEN + "383,") == digits  # y due
    assert allowed(OPEN + "383,40") == fits(2) | closes  # y may go on or close the point
    assert allowed(OPEN + "1,2,3") == fits(3) | commas  # a box: four numbers
    assert allowed(OPEN + "1,2,3,4") == fits(3) | closes
    assert allowed(OPEN + "9" * MAX_DIGITS) == commas  # no longer number than that
    assert allowed(OPEN + "223") == fits(1) | commas  # one more digit, however tokens split
    for free in ("Action: click(", OPEN + "383,401)')", "Action: type(content='(", ""):
        assert allowed(free) is None, free  # outside a point the answer is the model's


@pytest.mark.parametrize("which", ["syntax", "digit_syntax"])
def test_numbers_stay_within_the_frame(which: str, request: pytest.FixtureRequest) -> None:
    """A number may not outgrow the frame's width (x) or height (y) on this screen."""
    syntax: PointSyntax = request.getfixturevalue(which)
    digits = _texts(syntax, syntax.digits) or set()
    commas, closes = _texts(syntax, syntax.commas), _texts(syntax, syntax.closes)

    def allowed(text: str, size: tuple[float, float]) -> set[str] | None:
        return _texts(syntax, syntax.allowed(text, size))

    relative = (1000.0, 1000.0)  # uitars-1.0: thousandths of the screen
    assert allowed(OPEN, relative) == {d for d in digits if int(d) <= 1000}
    assert allowed(OPEN + "100", relative) == {"0"} | commas  # 1000, or end here
    assert allowed(OPEN + "101", relative) == commas  # 101x would be over 1000
    assert allowed(OPEN + "4", relative) == {d for d in digits if int("4" + d) <= 1000} | commas
    pixels = (160.0, 210.0)  # a pixel frame: x up to the width, y up to the height
    assert allowed(OPEN + "16", pixels) == {"0"} | commas
    assert allowed(OPEN + "16,", pixels) == {d for d in digits if int(d) <= 210}
    assert allowed(OPEN + "16,21", pixels) == {"0"} | closes
    assert allowed(OPEN + "4416", relative) == commas  # written unconstrained: it may end
    assert allowed("Action: click(", relative) is None  # outside a point: free
    # the rule serves a batch: row r answers conversation r // n
    rule = syntax.rule([relative, pixels], n=2)
    assert _texts(syntax, rule(1, OPEN + "16")) == allowed(OPEN + "16", relative)
    assert _texts(syntax, rule(2, OPEN + "16")) == {"0"} | commas
    assert rule(4, OPEN + "16") == syntax.allowed(OPEN + "16")  # past the sizes: digits only


def test_the_mask_keeps_the_allowed_scores(syntax: PointSyntax) -> None:
    import torch

    tokenizer = syntax.tokenizer
    proc = syntax.processor(prompt_len=2)  # two prompt tokens before the answer

    def step(answer: str) -> tuple[Any, Any]:
        ids = torch.tensor([[0, 0] + tokenizer(answer, add_special_tokens=False)["input_ids"]])
        scores = torch.randn(1, len(tokenizer))
        return proc(ids, scores.clone())[0], scores[0]

    out, before = step(OPEN + "383")
    keep = syntax.allowed(OPEN + "383")
    assert torch.equal(out[keep], before[keep])  # the allowed tokens keep their scores
    dropped = torch.ones(len(tokenizer), dtype=torch.bool)
    dropped[keep] = False
    assert bool(torch.isneginf(out[dropped]).all())  # every other token is out
    out, before = step("Action: type(content='x")
    assert torch.equal(out, before)  # not in a point: unchanged


def test_sampled_answers_open_only_well_formed_points(
    bundled: Path, screen_conversations: Any
) -> None:
    """Warm and hot sampling break the bundled model's points; with the constraint every
    point an answer opens is filled with two (or four) numbers within the frame, and closed.
    Two temperatures, since models differ in where they break: one breaks points already at
    1.5, another only at 3.0, where the first hardly opens a point at all."""
    off = {"pointer_weight": 0.0, "quoted_typing": False, "well_formed_actions": False}
    plain = HFVLM(bundled, well_formed_points=False, **off)  # the call grammar would hold
    constrained = HFVLM(bundled, well_formed_points=True, **off)  # points too: off in both
    assert plain.points is None and constrained.points is not None
    heats = [SamplingParams(max_new_tokens=40, temperature=t, n=8, seed=0) for t in (1.5, 3.0)]
    opened = re.compile(r"_box='\(")
    filled = re.compile(r"_box='\(\d+,\d+(?:,\d+,\d+)?\)")
    counts = {}
    for vlm in (plain, constrained):
        points = broken = over = 0
        for conv in screen_conversations(vlm, 11, 6):  # a stream the recipe does not draw
            for g in (g for params in heats for g in vlm.generate([conv], params)):
                for m in opened.finditer(g.text):
                    points += 1
                    whole = filled.match(g.text, m.start())
                    broken += whole is None and len(g.token_ids) < 40
                    inside = re.match(r"[\d,]*", g.text[m.end() :]).group()  # broken or not
                    over += any(int(v) > 1000 for v in re.findall(r"\d+", inside))  # off the frame
        counts[vlm is constrained] = (points, broken, over)
    assert counts[True][0] >= 20 and counts[True][1:] == (0, 0), counts  # filled, in the frame
    # without it some break and some leave the frame: the checks above can fail
    assert counts[False][1] >= 3 and counts[False][2] >= 1, counts


def test_the_declaration_carries_the_constraint(tmp_path: Path) -> None:
    write_declaration(tmp_path, Declaration("grounding", "English", False, 1.0, True))
    assert read_declaration(tmp_path).well_formed_points is True
    write_declaration(tmp_path, Declaration("grounding", "English", False, 1.0))
    assert "well_formed_points" not in json.loads((tmp_path / "pixelpilot.json").read_text())
    for bad in ("yes", 1, None):
        (tmp_path / "pixelpilot.json").write_text(json.dumps({"well_formed_points": bad}))
        with pytest.raises(FileFormatError, match="well_formed_points must be true or false"):
            read_declaration(tmp_path)


def test_training_loads_a_checkpoint_with_every_decoding_aid_off(
    bundled: Path, tmp_path: Path
) -> None:
    """GRPO scores the answers it samples with the model's own log-probabilities: the guide
    and the constraints, which change what is sampled, stay off in training."""
    import shutil

    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.model import load_trainable

    folder = tmp_path / "declared"
    shutil.copytree(bundled, folder)
    write_declaration(folder, Declaration("grounding", "English", False, 1.0, True, True, True))
    declared = HFVLM(folder)
    assert None not in (declared.points, declared.pointer, declared.quoted, declared.calls)
    config = SFTConfig(data=str(tmp_path), model=str(folder), out=str(tmp_path / "out"))
    vlm = load_trainable(config, "cpu")
    assert vlm.points is None and vlm.pointer is None and vlm.quoted is None
    assert vlm.calls is None

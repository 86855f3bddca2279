"""Well-formed points: constrained decoding of an answer's coordinates.

A small model often opens a point and fails to fill it: ``click(start_box='()')``,
``start_box='(,905)'``, ``start_box='(383)'``. Such an answer does not parse, and the step is
lost. With ``well_formed_points`` declared, once the answer has opened a point (``start_box='(``
or ``end_box='(``, with or without ``<|box_start|>``) the decoder may only write the point's
grammar, ``(x,y)`` or ``(x1,y1,x2,y2)``:

- where a number is due, only tokens made of digits;
- inside a number, more digits (at most 4 in a number, however the tokens split them) or what
  ends the number: a comma after the first and third number, a token that opens with ``)``
  after the second or fourth;
- within the frame: when the screen is known (``rule(sizes)``), no number outgrows the
  frame's width (x) or height (y), ``CoordinateFrame.model_size``: 1000 in the relative frame
  (``uitars-1.0``), the resized image's size in ``uitars-1.5``, the screen's in ``pixels``. A
  model that writes ``(4416,771)`` in the relative frame clicks off the screen, and the step is
  lost as surely as an unparsed one;
- after the closing ``)``, the answer is free again.

Everything outside the point, and which number the model writes, stays the model's choice.
The token classes come from the tokenizer itself (a tokenizer that writes ``383`` as one token
and one that writes it digit by digit are both served). Training loads checkpoints with it off,
so sampled answers and their log-probabilities come from the model's own distribution.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pixelpilot.vlm.masking import AnswerMask, Rule, TokenIndex, token_index

Size = tuple[float, float]  # the frame's (width, height) on one screen
# the answer so far ends inside an opened point; group 1 is what the point holds so far
_INSIDE = re.compile(r"_box=['\"]?(?:<\|box_start\|>)?\(([\d,\s]*)$")
MAX_DIGITS = 4


class PointSyntax:
    """The token classes of one tokenizer: digits, a comma, a closing parenthesis."""

    def __init__(self, tokenizer: Any, index: TokenIndex | None = None) -> None:
        self.tokenizer = tokenizer
        texts, by_first = index or token_index(tokenizer)
        digits, commas, closes = [], [], []
        self.width: dict[int, int] = {}  # digits a digit token writes
        self.text: dict[int, str] = {}
        for i in sorted(i for ids in by_first.values() for i in ids):  # not special, not empty
            text = texts[i]
            if text.isdigit() and text.isascii():
                digits.append(i)
                self.width[i], self.text[i] = len(text), text
            elif text.strip() == ",":
                commas.append(i)
            elif text.strip().startswith(")"):
                closes.append(i)
        if not (digits and commas and closes):
            raise ValueError("the tokenizer has no digit, comma or ')' tokens to write a point")
        self.digits, self.commas, self.closes = digits, commas, closes
        self._sets: dict[tuple[Any, str, int | None], list[int]] = {}

    def allowed(self, text: str, size: Size | None = None) -> list[int] | None:
        """The token ids that may follow the answer ``text``, or None when any may;
        ``size``: the frame's (width, height) on this screen, the largest x and y (None: only
        the number of digits is held)."""
        inside = _INSIDE.search(text)
        if inside is None:
            return None
        parts = inside.group(1).split(",")
        current = parts[-1].strip()
        end = "" if not current else "comma" if len(parts) in (1, 3) else "close"
        limit = None if size is None else int(size[(len(parts) - 1) % 2])  # x, y, x, y
        return self.ids(current, end, limit)

    def ids(self, current: str, end: str, limit: int | None) -> list[int]:
        """The token ids allowed after the digits ``current`` of a number, ``end`` being what
        may end it ("" where a number is due, "comma" or "close"), the number at most
        ``limit`` (built once per state)."""
        key = (current if limit is not None else len(current), end, limit)
        if key not in self._sets:
            room = MAX_DIGITS - len(current)
            fits = [
                i for i in self.digits
                if self.width[i] <= room and (limit is None or int(current + self.text[i]) <= limit)
            ]  # fmt: skip
            self._sets[key] = fits + {"": [], "comma": self.commas, "close": self.closes}[end]
        return self._sets[key]

    def processor(
        self, prompt_len: int, sizes: Sequence[Size | None] = (), n: int = 1
    ) -> AnswerMask:
        """The logits processor for one ``generate`` call (answers start at ``prompt_len``;
        ``sizes`` as in ``rule``)."""
        return AnswerMask(self.tokenizer, prompt_len, [self.rule(sizes, n)])

    def rule(self, sizes: Sequence[Size | None] = (), n: int = 1) -> Rule:
        """``allowed`` as an ``AnswerMask`` rule for a batch: ``sizes[row // n]`` is the frame
        size of the row's conversation (``n`` answers each); rows past ``sizes`` (or None)
        hold the number of digits only."""
        return lambda row, text: self.allowed(
            text, sizes[row // n] if row // n < len(sizes) else None
        )

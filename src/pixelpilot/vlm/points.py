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
- after the closing ``)``, the answer is free again.

Everything outside the point, and which number the model writes, stays the model's choice.
The token classes come from the tokenizer itself (a tokenizer that writes ``383`` as one token
and one that writes it digit by digit are both served). Training loads checkpoints with it off,
so sampled answers and their log-probabilities come from the model's own distribution.
"""

from __future__ import annotations

import re
from typing import Any

from pixelpilot.vlm.masking import AnswerMask

# the answer so far ends inside an opened point; group 1 is what the point holds so far
_INSIDE = re.compile(r"_box=['\"]?(?:<\|box_start\|>)?\(([\d,\s]*)$")
MAX_DIGITS = 4


class PointSyntax:
    """The token classes of one tokenizer: digits, a comma, a closing parenthesis."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])  # one call
        digits, commas, closes = [], [], []
        self.width: dict[int, int] = {}  # digits a digit token writes
        for i, text in enumerate(texts):
            if i in special:
                continue
            if text.isdigit() and text.isascii():
                digits.append(i)
                self.width[i] = len(text)
            elif text.strip() == ",":
                commas.append(i)
            elif text.strip().startswith(")"):
                closes.append(i)
        if not (digits and commas and closes):
            raise ValueError("the tokenizer has no digit, comma or ')' tokens to write a point")
        self.digits, self.commas, self.closes = digits, commas, closes
        self._sets: dict[tuple[int, str], list[int]] = {}

    def state(self, text: str) -> tuple[int, str] | None:
        """What may follow the answer ``text``: (how many more digits the current number may
        take, and "" where a number is due, else what may end it: "comma" or "close"), or
        None when it is not inside a point (then any token may)."""
        inside = _INSIDE.search(text)
        if inside is None:
            return None
        parts = inside.group(1).split(",")
        current = parts[-1].strip()
        if not current:
            return MAX_DIGITS, ""  # a number is due: digits only
        end = "comma" if len(parts) in (1, 3) else "close"  # after the second or fourth: ")"
        return MAX_DIGITS - len(current), end

    def ids(self, state: tuple[int, str]) -> list[int]:
        """The token ids allowed in ``state`` (built once per state)."""
        if state not in self._sets:
            room, end = state
            fits = [i for i in self.digits if self.width[i] <= room]
            self._sets[state] = fits + {"": [], "comma": self.commas, "close": self.closes}[end]
        return self._sets[state]

    def allowed(self, text: str) -> list[int] | None:
        """The token ids that may follow the answer ``text``, or None when any may."""
        state = self.state(text)
        return None if state is None else self.ids(state)

    def processor(self, prompt_len: int) -> AnswerMask:
        """The logits processor for one ``generate`` call (answers start at ``prompt_len``)."""
        return AnswerMask(self.tokenizer, prompt_len, [self.rule])

    def rule(self, row: int, text: str) -> list[int] | None:
        """``allowed`` as an ``AnswerMask`` rule (the same for every row)."""
        return self.allowed(text)

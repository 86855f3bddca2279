"""Quoted typing: constrained decoding of what a ``type`` action writes.

Form-filling instructions quote what is to be typed: ``Enter the username "donovan" and the
password "TA8f8" ...``. A small model finds the right string and then miscopies it:
``type(content='TAUZ')``, ``'xKad'`` for ``xK56``, or runs on into a point
(``'ignacia390,675)'``). With ``quoted_typing`` declared, once an answer opens a
``type(content='`` (or ``"``) the decoder may only write one of the instruction's quoted
strings, optionally followed by ``\\n`` (typing, then Enter), and then the closing quote:

- the quoted strings are the instruction's double-quoted spans (``"..."`` or ``“...”``); an
  instruction without any leaves typing free;
- while the content written so far is the start of one or more of them, only tokens that
  continue one of those (or finish it and close the quote) may follow;
- the token that closes the quote ends there or goes on with the call's ``)``;
- after the closing quote the answer is free again.

Which string to type (the username or the password), whether to type at all, and every other
part of the answer stay the model's choice. This is a prior, not a learnt skill: it is right
for agents whose typed text is always given in the instruction (MiniWoB's typing tasks, form
filling from quoted values) and wrong for one that must compose what it types, so it is off
unless a checkpoint's ``pixelpilot.json`` declares it. Training loads checkpoints with it off.
"""

from __future__ import annotations

import re
from typing import Any

from pixelpilot.tools.grammar import quote as literal
from pixelpilot.vlm.masking import AnswerMask, TokenIndex, token_index

_QUOTED = re.compile(r'"([^"\n]+)"|“([^”\n]+)”')
_INSTRUCTION = "## User Instruction\n"
# the answer so far ends inside an opened type content; group 1 or 2 is what it holds so far
# (an escape's backslash may end it: ``\`` of ``\n`` is written, the ``n`` is due)
_OPEN = re.compile(r"\btype\(\s*content=(?:'((?:\\.|[^'\\])*\\?)|\"((?:\\.|[^\"\\])*\\?))\Z", re.S)


def instruction_part(text: str) -> str:
    """A first user message's instruction: what follows ``## User Instruction`` when the
    prompt marks it, else the whole text."""
    at = text.rfind(_INSTRUCTION)
    return text if at < 0 else text[at + len(_INSTRUCTION) :]


def instruction_quotes(text: str) -> list[str]:
    """The quoted strings of a first user message (of its instruction, when the prompt
    marks where that starts), in order, without repeats."""
    found = [a or b for a, b in _QUOTED.findall(instruction_part(text))]
    return list(dict.fromkeys(found))


def _closes(tail: str) -> bool:
    """Whether a token's text after the closing quote may follow it: nothing, or the call's
    ``)`` (``type`` takes no other argument). ``',`` would leave the content open to the
    parser: ``type(content='x',,,368)')`` types ``x',,,368)``."""
    return not tail or tail.startswith(")")


class QuotedTyping:
    """One tokenizer's token texts, indexed by their first character."""

    def __init__(self, tokenizer: Any, index: TokenIndex | None = None) -> None:
        self.tokenizer = tokenizer
        self.texts, self.by_first = index or token_index(tokenizer)

    def allowed(self, text: str, quotes: list[str]) -> list[int] | None:
        """The token ids that may follow the answer ``text`` given the instruction's
        ``quotes``, or None when any may (not inside a type's content, no quotes, content
        that already left every quoted string, or a string no token of this tokenizer can
        go on writing)."""
        inside = _OPEN.search(text) if quotes else None
        if inside is None:
            return None
        quote = "'" if inside.group(1) is not None else '"'
        written = inside.group(1) if inside.group(1) is not None else inside.group(2)
        ids: set[int] = set()
        for q in quotes:
            for target in (literal(q, quote)[1:-1], literal(q + "\n", quote)[1:-1]):
                if not target.startswith(written):
                    continue
                rest = target[len(written) :]
                if not rest:  # the whole string is written: only the closing quote
                    ids.update(
                        i for i in self.by_first.get(quote, ()) if _closes(self.texts[i][1:])
                    )
                    continue
                for i in self.by_first.get(rest[0], ()):
                    token = self.texts[i]
                    if rest.startswith(token) or (
                        token.startswith(rest + quote) and _closes(token[len(rest) + 1 :])
                    ):
                        ids.add(i)
        return sorted(ids) or None

    def processor(self, prompt_len: int, quotes: list[list[str]], n: int = 1) -> AnswerMask:
        """The logits processor for one ``generate`` call: ``quotes[k]`` are conversation
        k's quoted strings, and each conversation has ``n`` rows (answers)."""
        return AnswerMask(self.tokenizer, prompt_len, [self.rule(quotes, n)])

    def rule(self, quotes: list[list[str]], n: int = 1) -> Any:
        """``allowed`` as an ``AnswerMask`` rule for a batch of conversations."""
        return lambda row, text: self.allowed(text, quotes[row // n])

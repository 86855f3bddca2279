"""Well-formed actions: constrained decoding of an answer's action call.

A small model that misses often writes a broken answer on the next step:
``Action:,428)')`` (no action name), ``Action: type(start_box='(399,332)')`` (an argument the
action does not take). The parser rejects it, the agent's retries are drawn at a higher
temperature, and the step is often lost. With ``well_formed_actions`` declared, once an
answer has written ``Action:`` the decoder may only write the start of a call in the action
language (``pixelpilot.tools.actions``):

- an action name (any name the parser knows, aliases too), then ``(``;
- that action's arguments, by their canonical names and in their declared order (optional
  ones may be left out), ``, `` between them, then ``)``;
- a point argument holds a quoted point, ``'(x,y)'`` (digits, a comma, the parenthesis: the
  point's shape even without ``pixelpilot.vlm.points``, which adds the bound on the numbers
  and comes first when declared), and a text argument a quoted string (``'...'`` or
  ``"..."``, with ``\\'`` escapes); which numbers and what text are left to the model (and to
  ``pixelpilot.vlm.quoted``: which string a ``type`` writes), but a token that closes the
  text may only go on as the call does (``type(content='x',`` is no call);
- after the call's ``)`` the answer ends (a stop token) or, after whitespace, another call
  follows (the parser reads calls separated by whitespace, an ``Action:`` header between
  them allowed): ``click(start_box='(125,702)')7start...`` is not an answer.

Which action to take and every value stay the model's choice: a token is masked only where
it could not continue any well-formed call. The check is a partial match of the call pattern
(the ``regex`` package, a dependency of transformers) over each candidate token, for tokens
whose first character can continue at all, and the stop tokens where the calls are complete;
the allowed set of each answer prefix is kept (cleared past ``CACHE_SIZE`` prefixes).
Training loads checkpoints with it off.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import combinations
from typing import Any

from pixelpilot.tools.grammar import ACTION_HEADER
from pixelpilot.vlm.masking import TokenIndex, token_index

_POINT = r"""(?:'(?:<\|box_start\|>)?\(\d+, ?\d+\)(?:<\|box_end\|>)?'|"(?:<\|box_start\|>)?\(\d+, ?\d+\)(?:<\|box_end\|>)?")"""  # noqa: E501
_TEXT = r"""(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
_FREE = "\x00"  # a character only a free value may hold
CACHE_SIZE = 20_000


def call_pattern() -> str:
    """The regular expression of what may follow ``Action:``: one call of the action
    language, then more calls after whitespace (an ``Action:`` header before one allowed),
    then only whitespace."""
    from pixelpilot.tools.actions import ACTION_NAMES, ACTION_TYPES

    calls = []
    for name, kind in sorted(ACTION_NAMES.items()):
        args = ACTION_TYPES[kind].args
        forms = []
        optional = [a for a in args if not a.required]
        for k in range(len(optional) + 1):
            for left_out in combinations(optional, k):
                kept = [a for a in args if a not in left_out]
                forms.append(
                    ", ?".join(
                        f"{re.escape(a.name)}=" + (_POINT if a.kind == "point" else _TEXT)
                        for a in kept
                    )
                )
        body = "|".join(f"(?:{f})" for f in dict.fromkeys(forms))
        calls.append(rf"{re.escape(name)}\( ?(?:{body}) ?\)")
    call = f"(?:{'|'.join(calls)})"
    return rf" ?{call}(?:\s+(?:Action[ \t]*[:：] ?)?{call})*\s*"


class ActionSyntax:
    """One tokenizer's token texts, indexed by their first character, and the call pattern."""

    def __init__(
        self, tokenizer: Any, index: TokenIndex | None = None, stop_ids: Sequence[int] = ()
    ) -> None:
        try:
            import regex
        except ImportError as exc:  # pragma: no cover - transformers depends on it
            from pixelpilot.errors import DependencyNotInstalled

            raise DependencyNotInstalled("regex", "models") from exc
        self.tokenizer = tokenizer
        self.pattern = regex.compile(call_pattern())
        eos = getattr(tokenizer, "eos_token_id", None)
        stops = [*stop_ids, *([eos] if isinstance(eos, int) else [])]
        self.stop_ids = list(dict.fromkeys(stops))  # what may end a complete answer
        self.texts, self.by_first = index or token_index(tokenizer)
        self._sets: dict[str, list[int] | None] = {}
        self._quoting = [i for ids in self.by_first.values() for i in ids
                         if any(c in self.texts[i] for c in "'\"\\")]  # fmt: skip
        self._without: dict[frozenset[int], list[int]] = {}  # allowed sets inside a value

    def viable(self, call: str) -> bool:
        """Whether ``call`` (what follows ``Action:``) is the start of a well-formed call."""
        return self.pattern.fullmatch(call, partial=True) is not None

    def allowed(self, text: str) -> list[int] | None:
        """The token ids that may follow the answer ``text``, or None when any may (no
        ``Action:`` yet, or an answer already broken); inside a text value, every token but
        those that would close it into a broken call; after a complete call, the stop tokens
        and whitespace that may lead to another call."""
        last = None
        for last in ACTION_HEADER.finditer(text):  # noqa: B007 - the last one
            pass
        if last is None:
            return None
        call = text[last.end() :]
        if call in self._sets:
            return self._sets[call]
        if not self.viable(call):
            ids = None  # broken before the mask came in
        elif self.viable(call + _FREE):
            ids = self._free(call)  # inside a free value
        else:
            firsts = [c for c in self.by_first if self.viable(call + c)]
            ids = [
                i for c in firsts for i in self.by_first[c] if self.viable(call + self.texts[i])
            ]  # fmt: skip
            if self.pattern.fullmatch(call) is not None:
                ids += self.stop_ids  # the calls are complete: the answer may end
            ids = ids or None
        if len(self._sets) >= CACHE_SIZE:
            self._sets.clear()
        self._sets[call] = ids
        return ids

    def _free(self, call: str) -> list[int] | None:
        """Inside a free value every token may come, except one that closes the value into a
        broken call (``',`` after ``type(content='x``: type takes no other argument). Only
        tokens holding a quote or a backslash can close a value."""
        bad = frozenset(i for i in self._quoting if not self.viable(call + self.texts[i]))
        if not bad:
            return None
        if bad not in self._without:
            self._without[bad] = [i for ids in self.by_first.values() for i in ids if i not in bad]
        return self._without[bad]

    def rule(self, row: int, text: str) -> list[int] | None:
        """``allowed`` as an ``AnswerMask`` rule (the same for every row)."""
        return self.allowed(text)

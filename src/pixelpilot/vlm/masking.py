"""One logits processor for the decoding constraints (``points``, ``quoted``).

Each constraint is a rule: given a row of the batch and its answer so far, the token ids that
may come next, or None when it has nothing to say there. ``AnswerMask`` decodes each row's
answer once per step, asks every rule, and keeps only the tokens all answering rules allow
(the others get ``-inf``): a point's closing token ``)',`` that the point rule allows is out
when the call has no argument to follow. Should the answering rules share no token, the
first one's tokens are kept (rules come in order of precedence). Rows no rule speaks for are
left as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Rule = Callable[[int, str], Sequence[int] | None]
TokenIndex = tuple[list[str], dict[str, list[int]]]


def token_index(tokenizer: Any) -> TokenIndex:
    """Every token's text (one ``batch_decode`` call) and the ids of the non-special tokens
    with a text, by the text's first character: what a rule filters candidates with. Build it
    once per tokenizer and hand it to each rule (``HFVLM`` does)."""
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    texts = tokenizer.batch_decode(
        [[i] for i in range(len(tokenizer))], clean_up_tokenization_spaces=False
    )
    by_first: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        if text and i not in special:
            by_first.setdefault(text[0], []).append(i)
    return texts, by_first


class AnswerMask:
    """A transformers logits processor: ``rules`` mask the answer's next token."""

    def __init__(self, tokenizer: Any, prompt_len: int, rules: Sequence[Rule]) -> None:
        self.tokenizer, self.prompt_len, self.rules = tokenizer, prompt_len, list(rules)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        for r in range(input_ids.shape[0]):
            text = self.tokenizer.decode(
                input_ids[r, self.prompt_len :].tolist(), clean_up_tokenization_spaces=False
            )
            sets = [ids for rule in self.rules if (ids := rule(r, text)) is not None]
            if not sets:
                continue
            ids = sets[0]
            if len(sets) > 1:
                others = [set(s) for s in sets[1:]]
                ids = [i for i in ids if all(i in o for o in others)] or ids
            keep = torch.as_tensor(ids, dtype=torch.long, device=scores.device)
            kept = scores[r, keep]
            scores[r] = float("-inf")
            scores[r, keep] = kept
        return scores

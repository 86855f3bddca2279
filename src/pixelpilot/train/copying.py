"""A copy objective on the decoder's attention, used in training only.

Typing tasks ask the model to write a string that the instruction quotes (``Enter "nrHom" into
the text field``), and the tokenizer writes it with the same tokens in both places. A small
transformer copies through an induction circuit: one head that looks at the previous token,
then one that finds the earlier place where the current token stood and reads the token after
it. Learned from the answer loss alone this circuit forms late and suddenly (the copy probe in
``docs/default-model.md`` needs about 40,000 samples), and a 1M-parameter model trained on
screenshots did not form it in its budget. This objective names the circuit's two attention
patterns and asks for them directly (supervised attention):

- in the last decoder layer, head 0, the position that predicts the k-th typed token attends
  to the k-th token of the quoted string (and the position of the last typed token to the
  closing quote, so stopping is copied too);
- in the first decoder layer, head 0, every token of the quoted string attends to the token
  before it (the previous-token head the copy head reads through).

Each term is the cross-entropy of the head's attention distribution (causal, over the
non-padding keys) at the query against the key it should attend to::

    loss_copy = mean over supervised (query, key) pairs of -log attention(query -> key)
    loss = loss_answer + lambda * loss_copy

When the prompt quotes two strings or more (login-user: a username and a password), the first
typed token decides which one the answer copies, and it is one pair among the many of a typed
string. The choice term (``choice_loss``) weighs that decision apart: the copy head's attention
at the position that predicts the first typed token, renormalised over the tokens that follow
a quote mark (every quoted string's first token, and the token after each closing quote), is
taught to pick the right string's first token::

    loss_choice = mean over typed answers of -log softmax_{k in candidates}(logit(query, k))[right]

The attention logits are computed again from the layer's own projections on the hidden
states the forward pass gave it (any attention implementation), so the objective adds no
parameter and nothing to the checkpoint. A sample gets the term when the sequence holds a
``content='...'`` answer whose tokens are a quoted string of the prompt: the answer being
trained, and earlier typing answers in the history alike. It applies to the
DeepSeek-V3 multi-head latent attention of the ``kimi_k25`` family.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

QUOTE = '"'


class CopyAttention:
    """Records a decoder's attention inputs during a forward pass and scores how well two
    of its heads follow the copy circuit (see the module docstring)."""

    def __init__(self, vlm: Any, head: int = 0) -> None:
        from pixelpilot.errors import ConfigError

        language = getattr(getattr(vlm.model, "model", None), "language_model", None)
        layers = list(getattr(language, "layers", []))
        needed = ("q_proj", "kv_a_proj_with_mqa", "kv_a_layernorm", "kv_b_proj", "scaling")
        attns = [getattr(layer, "self_attn", None) for layer in layers[:1] + layers[-1:]]
        if len(layers) < 2 or not all(hasattr(a, n) for a in attns for n in needed):
            raise ConfigError(
                "the copy objective needs a decoder of at least 2 multi-head latent attention "
                "layers (kimi_k25 / DeepSeek-V3)"
            )
        self.attns = attns
        self.head = head
        tok = vlm.tokenizer
        self.pad = int(tok.pad_token_id)
        ids = {t: tok.convert_tokens_to_ids(t) for t in ("content", "='", "')", QUOTE)}
        if any(v is None or v == tok.unk_token_id for v in ids.values()):
            raise ConfigError("the copy objective needs the tokens content, =', ') and \"")
        self.content, self.open, self.close, self.quote = (
            int(ids["content"]),
            int(ids["='"]),
            int(ids["')"]),
            int(ids[QUOTE]),
        )
        self._seen: dict[int, tuple[Any, Any]] = {}
        for index, attn in enumerate(attns):
            attn.register_forward_pre_hook(self._recorder(index), with_kwargs=True)

    def _recorder(self, index: int) -> Any:
        def record(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            hidden = kwargs.get("hidden_states", args[0] if args else None)
            rope = kwargs.get("position_embeddings", args[1] if len(args) > 1 else None)
            self._seen[index] = (hidden, rope)

        return record

    def clear(self) -> None:
        self._seen.clear()

    def _answers(self, ids: list[int]) -> Iterator[tuple[int, int]]:
        """(position of ``='``, position of ``')``) of every ``content='...')`` in one
        sequence."""
        for i in range(1, len(ids)):
            if ids[i] != self.open or ids[i - 1] != self.content:
                continue
            try:
                yield i, ids.index(self.close, i + 1)
            except ValueError:
                continue

    def pairs(self, ids: list[int]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """(copy pairs, previous-token pairs) of one sequence: (query, key) positions."""
        copy: list[tuple[int, int]] = []
        previous: list[tuple[int, int]] = []
        done: set[int] = set()
        for i, end in self._answers(ids):
            typed = ids[i + 1 : end]
            start = quoted(ids[:i], typed, self.quote)
            if start is None:
                continue
            n = len(typed)
            copy += [(i + k, start + k) for k in range(n + 1)]  # the last: to the closing quote
            if start not in done:
                done.add(start)
                previous += [(start + k, start + k - 1) for k in range(n + 1)]
        return copy, previous

    def choices(self, ids: list[int]) -> list[tuple[int, int, list[int]]]:
        """(query, right key, candidate keys) of each typed answer in one sequence whose
        prompt quotes two strings or more: the position that predicts the first typed token,
        the quoted string's first token, and every token after a quote mark before it."""
        out: list[tuple[int, int, list[int]]] = []
        for i, end in self._answers(ids):
            start = quoted(ids[:i], ids[i + 1 : end], self.quote)
            marks = [q for q in range(i - 1) if ids[q] == self.quote]
            if start is None or len(marks) < 4:  # one quoted string: nothing to choose
                continue
            out.append((i, start, [q + 1 for q in marks]))
        return out

    def choice_loss(self, input_ids: Any) -> tuple[Any, dict[str, float]]:
        """The choice term (module docstring), None without a typed answer to choose for,
        and ``choice_accuracy``: the share of those whose top candidate is the right string.
        Keeps what the forward pass recorded."""
        import torch

        if input_ids is None or 1 not in self._seen:
            return None, {}
        found = [(b, *c) for b, r in enumerate(input_ids.tolist()) for c in self.choices(r)]
        if not found:
            return None, {}
        hidden, rope = self._seen[1]
        rows = self._log_rows(1, hidden, rope, input_ids, [(b, q) for b, q, _, _ in found])
        terms, hits = [], 0
        for row, (_, _, right, keys) in zip(rows, found, strict=True):
            logp = torch.log_softmax(row[torch.tensor(keys)], dim=-1)
            terms.append(-logp[keys.index(right)])
            hits += keys[int(logp.argmax())] == right
        return torch.stack(terms).mean(), {"choice_accuracy": hits / len(found)}

    def loss(self, input_ids: Any) -> tuple[Any, dict[str, float]]:
        """The mean cross-entropy over all supervised pairs of the batch (None if there are
        none) and figures: ``copy_attention``, the copy head's mean attention on its target
        key. Clears what the forward pass recorded."""
        import torch

        if input_ids is None or len(self._seen) < 2:
            return None, {}
        rows = [self.pairs(r) for r in input_ids.tolist()]
        terms, figures = [], {}
        for index, which in ((1, 0), (0, 1)):
            batch = [(b, q, k) for b, r in enumerate(rows) for q, k in r[which]]
            if not batch:
                continue
            hidden, rope = self._seen[index]
            logp = self._log_attention(index, hidden, rope, input_ids, batch)
            terms.append(-logp)
            if which == 0:
                figures["copy_attention"] = float(logp.detach().exp().mean())
        self.clear()
        if not terms:
            return None, {}
        return torch.cat(terms).mean(), figures

    def last_layer_loss(self, input_ids: Any, batch: list[tuple[int, int, int]],
                        head: int) -> tuple[Any, float]:  # fmt: skip
        """The mean cross-entropy of the last layer's ``head`` attending from each (row,
        query) to its key, and its mean attention on them (the look objective of
        ``train/pointing.py``). Keeps what the forward pass recorded."""
        hidden, rope = self._seen[1]
        logp = self._log_attention(1, hidden, rope, input_ids, batch, head)
        return -logp.mean(), float(logp.detach().exp().mean())

    def last_layer_rows(self, input_ids: Any, batch: list[tuple[int, int]], head: int) -> Any:
        """The last layer's ``head``'s log attention from each (row, query) over every key:
        ``(pairs, length)``, -inf where the key is masked. Keeps what the forward pass
        recorded."""
        hidden, rope = self._seen[1]
        return self._log_rows(1, hidden, rope, input_ids, batch, head)

    def _log_attention(self, index: int, hidden: Any, rope: Any, input_ids: Any,
                       batch: list[tuple[int, int, int]],
                       head: int | None = None) -> Any:  # fmt: skip
        """log attention(query -> key) of ``head`` (default ``self.head``) of the first
        (``index`` 0) or last (1) layer, for each (row, query, key)."""
        import torch

        rows = self._log_rows(index, hidden, rope, input_ids, [(b, q) for b, q, _ in batch], head)
        return rows[torch.arange(len(batch)), torch.tensor([k for _, _, k in batch])]

    def _log_rows(self, index: int, hidden: Any, rope: Any, input_ids: Any,
                  batch: list[tuple[int, int]], head: int | None = None) -> Any:  # fmt: skip
        """log attention of ``head`` of the first (``index`` 0) or last (1) layer from each
        (row, query) over all keys: ``(pairs, length)``."""
        import torch
        from transformers.models.deepseek_v3 import modeling_deepseek_v3 as ds

        attn = self.attns[index]
        h = self.head if head is None else head
        rows = torch.tensor([b for b, _ in batch])
        queries = torch.tensor([q for _, q in batch])
        nope, rot = attn.qk_nope_head_dim, attn.qk_rope_head_dim
        bsz, length, _ = hidden.shape
        if attn.q_proj is not None:
            q = attn.q_proj(hidden)
        else:
            q = attn.q_b_proj(attn.q_a_layernorm(attn.q_a_proj(hidden)))
        q = q.view(bsz, length, -1, nope + rot)[:, :, h]  # (B, T, nope + rot)
        kv = attn.kv_a_proj_with_mqa(hidden)
        latent, k_rot = torch.split(kv, [attn.kv_lora_rank, rot], dim=-1)
        k_nope = attn.kv_b_proj(attn.kv_a_layernorm(latent))
        k_nope = k_nope.view(bsz, length, -1, nope + attn.v_head_dim)[:, :, h, :nope]
        cos, sin = rope
        rotate = (
            ds.apply_rotary_pos_emb_interleave
            if attn.config.rope_interleave
            else ds.apply_rotary_pos_emb
        )
        q_rot, k_rot = rotate(q[:, None, :, nope:], k_rot[:, None], cos, sin)
        query = torch.cat([q[:, :, :nope], q_rot[:, 0]], dim=-1)[rows, queries]  # (P, D)
        key = torch.cat([k_nope, k_rot[:, 0]], dim=-1)[rows]  # (P, T, D)
        logits = torch.einsum("pd,ptd->pt", query, key).float() * attn.scaling
        position = torch.arange(length)
        allowed = (position[None] <= queries[:, None]) & (input_ids[rows] != self.pad)
        logits = logits.masked_fill(~allowed, float("-inf"))
        return torch.log_softmax(logits, dim=-1)


def quoted(ids: list[int], typed: list[int], quote: int) -> int | None:
    """The first position of ``typed`` standing between two quote tokens in ``ids``."""
    n = len(typed)
    if n == 0:
        return None
    for s in range(1, len(ids) - n):
        if ids[s - 1] == quote and ids[s + n] == quote and ids[s : s + n] == typed:
            return s
    return None

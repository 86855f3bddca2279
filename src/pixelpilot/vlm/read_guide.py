"""The read guide: the pointer guide's cells weighed by where a reading head sees the quoted word.

The reading warm-up (``pixelpilot.train.reading``) teaches linear heads on the image tokens, as
the decoder receives them, to name the word each cell shows in hashed word classes (or
lengths: ``pixelpilot.vlm.words``), and the word term keeps that reading through SFT. On
click-link such a head picks the named link among the paragraph's links more often than the
decoder's pointing head does (on unseen screens, run 60's GRPO checkpoint: 0.74 against 0.54;
docs/default-model.md, round 52): the decoder follows the tower's reading only in part. The
guide asks the heads directly. When the instruction asks for a click and quotes exactly one
text, of one word a head has a class for, each cell's probability of that class, ``r``, weighs
the pointing head's cells::

    p'(cell)  proportional to  p(cell) * (r(cell) / max r) ** w

(with half rows, before the split into halves), so the click leans to the cells that show the
quoted word, as much as ``w`` says; a cell the head reads as the word at half the best cell's
probability loses a factor ``2 ** w``. With several heads, ``r`` is the largest of their
probabilities (a head taught on some classes only, ``classes`` in its file, answers for
those; the warm-up records them, ``classes`` for a named head and ``taught`` for the length
head: a class no screen of its training showed is a random row of the head, and would lean
the click to noise). Only an instruction that asks for a click counts (``looked_for``): a
typing instruction's quote is what to type, not what to find. An instruction with no quote,
or two, or a quote of several words, or a word of a class no head was taught, decodes as the
pointer guide alone does; so does every answer's coordinate after the first point.

A checkpoint declares its heads (files in its folder: ``read_heads``) and the weight
(``read_weight``) in ``pixelpilot.json``; the heads are the warm-up's, frozen, and nothing in
training reads them this way: training loads checkpoints without the guide.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pixelpilot.vlm.words import length_class, word_class

KINDS = {"word": word_class, "length": length_class}  # the classes a guide's head may name


class ReadHead:
    """One warm-up head file: a linear map from a decoder input embedding to text classes."""

    def __init__(self, path: str | Path) -> None:
        from safetensors import SafetensorError, safe_open

        self.path = Path(path)
        try:
            with safe_open(str(self.path), "pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except (OSError, ValueError, SafetensorError) as exc:
            raise ValueError(f"read head {self.path.name}: not a readable safetensors file "
                             f"({' '.join(str(exc).split())[:120]})") from None  # fmt: skip
        self.kind = meta.get("classes", "word")
        if self.kind not in KINDS:
            raise ValueError(f"read head {self.path.name}: classes {self.kind!r} are not one "
                             f"of {', '.join(KINDS)}")  # fmt: skip
        weight, bias = tensors.get("weight"), tensors.get("bias")
        if weight is None or bias is None or weight.dim() != 2 or bias.shape != weight.shape[:1]:
            raise ValueError(f"read head {self.path.name}: needs a 2-d weight and a bias of its "
                             "rows")  # fmt: skip
        self.weight, self.bias = weight.float(), bias.float()
        # the classes it answers for: a named head's own (``classes``), or those its screens
        # showed (``taught``, the length head's); a class it never saw is a random row
        known = tensors.get("classes", tensors.get("taught"))
        self.classes = set(known.tolist()) if known is not None else None

    @property
    def hidden(self) -> int:
        return int(self.weight.shape[1])

    def target(self, text: str) -> int | None:
        """The class of ``text`` this head names, or None (no class, or one it was not taught)."""
        k = KINDS[self.kind](text)
        if k is None or k >= self.weight.shape[0]:
            return None
        return k if self.classes is None or k in self.classes else None


_CLICK = re.compile(r"\bclick", re.IGNORECASE)


def quoted_word(quotes: Sequence[str]) -> str | None:
    """The one word of ``quotes`` (an instruction's quoted texts): the only one, when it is
    one word; None otherwise."""
    if len(quotes) != 1:
        return None
    word = quotes[0].strip()
    return word if word and len(word.split()) == 1 else None


def looked_for(message: str) -> str | None:
    """The word the guide looks for on the screen for a first user message: its
    instruction's one quoted word (``quoted_word``) when the instruction asks for a click
    (``click``, ``clicking``, ...); None otherwise. A typing instruction quotes what to type,
    and the screen shows it only where it shows the instruction: MiniWoB's enter-text draws
    its words from the paragraphs' vocabulary, and with the guide on every quote its first
    click left the field for the instruction's band (round 52)."""
    from pixelpilot.vlm.quoted import instruction_part, instruction_quotes

    if not _CLICK.search(instruction_part(message)):
        return None
    return quoted_word(instruction_quotes(message))


class ReadGuide:
    """The heads and weight of one loaded checkpoint (``HFVLM`` builds it)."""

    def __init__(self, model: Any, heads: Sequence[ReadHead], weight: float) -> None:
        import math

        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"read_weight must be a finite number >= 0, not {weight!r}")
        if not heads:
            raise ValueError("read_weight needs read_heads")
        try:
            self.module = model.model.language_model
        except AttributeError:
            raise ValueError("the read guide needs a model with a language_model") from None
        hidden = getattr(getattr(model.config, "text_config", model.config), "hidden_size", None)
        for head in heads:
            if hidden is not None and head.hidden != hidden:
                raise ValueError(f"read head {head.path.name} reads {head.hidden} numbers a cell, "
                                 f"the model's embeddings have {hidden}")  # fmt: skip
        self.heads = list(heads)
        self.weight = float(weight)
        self.embeds: Any = None

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """Record the decoder's input embeddings of the forward passes inside the block."""

        def hook(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            self.embeds = kwargs.get("inputs_embeds")

        handle = self.module.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            yield
        finally:
            handle.remove()

    def factor(self, row: int, positions: Any, word: str | None) -> Any:
        """``(r / max r) ** w`` for ``word`` over the image tokens at ``positions`` of batch
        row ``row`` (a 1-d tensor), or None when the guide does not apply (no word, or none a
        head has a class for, no embeddings recorded)."""
        import torch

        if word is None or self.embeds is None:
            return None
        cells = self.embeds[row, positions].float()
        best = None
        for head in self.heads:
            k = head.target(word)
            if k is None:
                continue
            logits = cells @ head.weight.to(cells.device).T + head.bias.to(cells.device)
            r = torch.softmax(logits, dim=-1)[:, k]
            best = r if best is None else torch.maximum(best, r)
        if best is None:
            return None
        return (best / best.max().clamp_min(1e-30)).clamp_min(1e-30) ** self.weight

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

A head fitted on the trained checkpoint's own embeddings (``pixelpilot.train.read_fit``,
round 53) reads more: a ``span`` of cells each side in the row (a word is wider than a cell),
through a hidden layer (``inner_weight``, ``inner_bias``, GELU), and names the words it was
fitted on (``words``), a row for each of their classes (``rows``).

A checkpoint declares its heads (files in its folder: ``read_heads``) and the weight
(``read_weight``) in ``pixelpilot.json``; the heads are the warm-up's or fitted after training,
frozen, and nothing in training reads them this way: training loads checkpoints without the
guide.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pixelpilot.vlm.words import bare_word, length_class, word_class

KINDS = {"word": word_class, "length": length_class}  # the classes a guide's head may name


class ReadHead:
    """One reading head file: a map from the decoder input embeddings of a cell (and, with a
    ``span``, of the cells beside it in its row) to text classes: linear, or through one
    hidden layer."""

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
        # a fitted head may have a hidden layer (``inner_weight``, ``inner_bias``) before it
        inner_w, inner_b = tensors.get("inner_weight"), tensors.get("inner_bias")
        self.inner = None
        if inner_w is not None or inner_b is not None:
            if (
                inner_w is None
                or inner_b is None
                or inner_w.dim() != 2
                or inner_b.shape != inner_w.shape[:1]
                or inner_w.shape[0] != weight.shape[1]
            ):
                raise ValueError(f"read head {self.path.name}: its hidden layer needs a 2-d "
                                 "inner_weight of the weight's inputs, and an inner_bias"
                                 )  # fmt: skip
            self.inner = (inner_w.float(), inner_b.float())
        inputs = int((self.inner[0] if self.inner else weight).shape[1])
        span = meta.get("span", "0")
        if not span.isdigit() or inputs % (2 * int(span) + 1):
            raise ValueError(f"read head {self.path.name}: span {span!r} is not a count of "
                             f"cells that divides its {inputs} inputs")  # fmt: skip
        self.span = int(span)  # the cells each side in the row it reads beside a cell's own
        self.weight, self.bias = weight.float(), bias.float()
        # the classes it answers for: a named head's own (``classes``), or those its screens
        # showed (``taught``, the length head's); a class it never saw is a random row
        known = tensors.get("classes", tensors.get("taught"))
        self.classes = set(known.tolist()) if known is not None else None
        # a fitted head (``pixelpilot.train.read_fit``) keeps a row for each class it was
        # taught, ``rows`` naming them, and the words themselves: a hashed class of a word
        # it never saw may be a taught word's
        rows = tensors.get("rows")
        if rows is not None and rows.shape != weight.shape[:1]:
            raise ValueError(f"read head {self.path.name}: rows names {rows.numel()} classes "
                             f"for {weight.shape[0]} rows")  # fmt: skip
        self.rows = {int(k): i for i, k in enumerate(rows.tolist())} if rows is not None else None
        self.words = _words(meta["words"], self.path.name) if "words" in meta else None

    @property
    def hidden(self) -> int:
        """The numbers of one cell's embedding the head reads."""
        inputs = (self.inner[0] if self.inner else self.weight).shape[1]
        return int(inputs) // (2 * self.span + 1)

    def target(self, text: str) -> int | None:
        """The row of ``text``'s class this head names, or None (no class, or one it was not
        taught)."""
        k = KINDS[self.kind](text)
        if k is None or (self.words is not None and bare_word(text).lower() not in self.words):
            return None
        if self.rows is not None:
            return self.rows.get(k)
        if k >= self.weight.shape[0]:
            return None
        return k if self.classes is None or k in self.classes else None

    def log_probs(self, cells: Any, cols: int) -> Any:
        """Each cell's log-probabilities over the head's rows, for ``cells`` (``[n, hidden]``,
        a screen's image embeddings in row order, ``cols`` a row)."""
        import torch

        x = span_features(cells.float(), cols, self.span)
        if self.inner is not None:  # a hidden layer: GELU(x W1^T + b1)
            w1, b1 = self.inner
            x = torch.nn.functional.gelu(x @ w1.to(x.device).T + b1.to(x.device))
        logits = x @ self.weight.to(x.device).T + self.bias.to(x.device)
        return torch.log_softmax(logits, dim=-1)


def _words(text: str, name: str) -> set[str]:
    """The lower-cased words of a head's ``words`` metadata (a JSON list of texts)."""
    import json

    try:
        words = json.loads(text)
    except ValueError:
        words = None
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise ValueError(f"read head {name}: words is not a JSON list of texts")
    return {w.lower() for w in words}


def span_features(cells: Any, cols: int, span: int) -> Any:
    """Each cell's embedding with those of the ``span`` cells each side of it in its row
    (zeros past the screen's edge), concatenated left to right: ``[n, (2 span + 1) hidden]``
    for ``cells`` ``[n, hidden]`` in row order, ``cols`` a row. A word is wider than a
    14-pixel cell, and a head that reads the cells beside a word's middle names it better
    (a linear head fitted with a span of 2 picks click-link's named link on 0.88 of unseen
    screens, one on the centre cell alone on 0.75; round 53)."""
    import torch

    if span == 0:
        return cells
    if cols <= 0 or cells.shape[0] % cols:
        raise ValueError(f"{cells.shape[0]} cells do not make rows of {cols}")
    grid = cells.reshape(-1, cols, cells.shape[-1])
    padded = torch.nn.functional.pad(grid, (0, 0, span, span))
    around = [padded[:, i : i + cols] for i in range(2 * span + 1)]
    return torch.cat(around, dim=-1).reshape(cells.shape[0], -1)


@contextlib.contextmanager
def input_embeds(module: Any, stop: bool = False) -> Iterator[dict[str, Any]]:
    """A dict that holds, under ``inputs_embeds``, the input embeddings of ``module``'s (a
    decoder's) last forward pass inside the block. ``stop``: the pass ends there, and the
    block with it (the decoder does not run: a caller that wants only its inputs)."""
    from pixelpilot.errors import InputsCaptured

    seen: dict[str, Any] = {}

    def hook(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        seen["inputs_embeds"] = kwargs.get("inputs_embeds")
        if stop:
            raise InputsCaptured

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield seen
    except InputsCaptured:
        pass
    finally:
        handle.remove()


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
        with input_embeds(self.module) as seen:
            yield
        self.embeds = seen.get("inputs_embeds")

    def factor(self, row: int, positions: Any, word: str | None, cols: int) -> Any:
        """``(r / max r) ** w`` for ``word`` over the image tokens at ``positions`` of batch
        row ``row`` (a 1-d tensor; a screen's cells in row order, ``cols`` a row), or None
        when the guide does not apply (no word, or none a head has a class for, no embeddings
        recorded)."""
        import torch

        if word is None or self.embeds is None:
            return None
        cells = self.embeds[row, positions].float()
        best = None
        for head in self.heads:
            k = head.target(word)
            if k is None:
                continue
            r = head.log_probs(cells, cols)[:, k].exp()
            best = r if best is None else torch.maximum(best, r)
        if best is None:
            return None
        return (best / best.max().clamp_min(1e-30)).clamp_min(1e-30) ** self.weight

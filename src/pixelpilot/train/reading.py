"""A reading objective on the vision side, used in training only.

The pointing objective (``train/pointing.py``) asks which image token holds the target; on
screens that name one label among several ("Click button ONE." beside a TWO button) a tiny
model learns to find the buttons long before it tells their labels apart (docs/default-model.md,
round 11). This objective teaches reading directly, for every text on the screen, not only
the target: each text a step records (its ``labels``: synthetic screens, the MiniWoB experts;
docs/trajectories.md) gives the image token of the 28-pixel cell under its centre, as the
decoder receives it (the projected image embedding ``e``, before any decoder layer, so the
instruction cannot answer for it), a bag-of-tokens target: the token ids of the text, with
and without a leading space (as the instruction writes it inside quotes or after a word)::

    p = softmax(SCALE * cos(e, E_t) over the vocabulary t),
    loss_read = mean over texts of  -mean over t in bag(text) log p_t

``E`` is the decoder's input-embedding table, detached: the image side learns to point the
way the embeddings of the words it shows point, so a decoder head can match an instruction's
word with the image token that shows it. Cosines, not dot products: at initialisation the
table's rows are tiny (a plain dot product left the loss at log(vocabulary) for 40 steps),
and the image embedding's norm stays free for what the decoder needs. The head adds no
parameter. Texts whose centre cell holds the
centre of another text are left out (the cell cannot say which), and so are samples whose
screenshot the processor resized (the cell grid would not match the pixels).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pixelpilot.train.pointing import cell_at
from pixelpilot.vlm.pointer import CELL, IMAGE_TOKEN, token_grid
from pixelpilot.vlm.words import (  # noqa: F401  (the classes' home; imported from here too)
    BUCKETS,
    LONGEST,
    bare_word,
    length_class,
    word_class,
)

SCALE = 16.0  # inverse temperature of the cosines


def label_cells(
    labels: Sequence[tuple[str, tuple[int, int, int, int]]],
    screen: tuple[int, int],
    cell: int = CELL,
) -> tuple[list[tuple[int, str]], int]:
    """(cell index, text) of every text whose centre cell (``cell`` pixels a side) is its
    own, and the cell count."""
    by_cell: dict[int, list[str]] = {}
    for text, (x1, y1, x2, y2) in labels:
        x, y = (x1 + x2) // 2, (y1 + y2) // 2
        if 0 <= x < screen[0] and 0 <= y < screen[1]:
            by_cell.setdefault(cell_at(x, y, screen, cell)[0], []).append(text)
    cells = [(index, texts[0]) for index, texts in sorted(by_cell.items()) if len(texts) == 1]
    return cells, cell_at(0, 0, screen, cell)[1]


def label_rows(
    input_ids: Any, samples: Sequence[Any], image_token: int, cell: int = CELL
) -> list[tuple[int, int, str]]:
    """(row, position, text) of every readable text of a batch (``label_cells``): the position
    of its cell's image token in the current screenshot (the last image of the row)."""
    out = []
    for b, sample in enumerate(samples):
        found = screen_cells(input_ids[b], sample, image_token, cell)
        if found is not None:
            positions, cells = found
            out += [(b, positions[index], text) for index, text in cells]
    return out


def screen_cells(
    ids: Any, sample: Any, image_token: int, cell: int = CELL
) -> tuple[list[int], list[tuple[int, str]]] | None:
    """The positions of the image tokens of one row's current screenshot (the last image) and
    its readable texts' (cell, text) (``label_cells``); None when it records no labels or holds
    fewer image tokens than the screen has cells."""
    labels = (getattr(sample, "meta", None) or {}).get("labels")
    if not labels:
        return None
    cells, count = label_cells(labels, sample.screen, cell)
    positions = (ids == image_token).nonzero().flatten().tolist()
    if len(positions) < count:
        return None
    return positions[len(positions) - count :], cells


class ReadingObjective:
    """Records the decoder's input embeddings on each forward pass of ``vlm.model`` and turns
    them into ``loss_read`` for a batch (``loss(input_ids, samples)``)."""

    def __init__(self, vlm: Any) -> None:
        self.vlm = vlm
        self.image_token = int(vlm.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
        self.cell = token_grid(vlm.processor)[0]  # pixels a side of one image token
        self._bags: dict[str, list[int]] = {}
        self._embeds: Any = None
        vlm.model.model.language_model.register_forward_pre_hook(self._inputs, with_kwargs=True)

    def _inputs(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        self._embeds = kwargs.get("inputs_embeds")

    def bag(self, text: str) -> list[int]:
        """The token ids of ``text`` written alone or after a space (no special tokens)."""
        if text not in self._bags:
            tok = self.vlm.tokenizer
            ids = tok.encode(text, add_special_tokens=False)
            ids += tok.encode(f" {text}", add_special_tokens=False)
            self._bags[text] = sorted(set(ids))
        return self._bags[text]

    def clear(self) -> None:
        self._embeds = None

    def loss(self, input_ids: Any, samples: Sequence[Any]) -> tuple[Any, dict[str, float]]:
        """Mean ``loss_read`` over the batch's readable texts (``None`` when it has none), with
        ``read_accuracy``: the share of texts whose top token is one of their own."""
        import torch

        embeds, self._embeds = self._embeds, None
        if embeds is None or input_ids is None:
            return None, {}
        table = self.vlm.model.get_input_embeddings().weight.detach().float()
        table = torch.nn.functional.normalize(table, dim=-1)
        rows, bags = [], []
        for b, position, text in label_rows(input_ids, samples, self.image_token, self.cell):
            bag = self.bag(text)
            if bag:
                rows.append(embeds[b, position])
                bags.append(bag)
        if not rows:
            return None, {}
        image = torch.nn.functional.normalize(torch.stack(rows).float(), dim=-1)
        logp = torch.log_softmax(SCALE * image @ table.T, dim=-1)
        losses = torch.stack([-logp[i, bag].mean() for i, bag in enumerate(bags)])
        top = logp.argmax(dim=-1).tolist()
        hits = sum(t in bag for t, bag in zip(top, bags, strict=True))
        return losses.mean(), {"read_accuracy": hits / len(bags), "read_texts": float(len(bags))}


MATCH_HEAD = 2  # the last decoder layer's head of the match objective (copy: 0, look: 1)
MARKER = "## User Instruction\n"  # the prompt's line before the task's instruction


class MatchPairs:
    """The match objective's targets (``--match-weight``, docs/default-model.md, round 22).

    Reading a label is half the skill; the other half is matching it with the instruction's
    word. For every text of the screen (a step's ``labels``) the image token of its cell, in
    the last decoder layer's head ``MATCH_HEAD``, should attend to the instruction's tokens
    of that text when the instruction names it, and to itself when it does not::

        loss_match = mean over the named texts of -log sum_(k in the word) attention(cell -> k)
                   + mean over the other texts of -log attention(cell -> cell)

    (each mean taken when the batch has such texts). The word is the last place after the
    prompt's ``MARKER`` where the text stands as a whole word, in any case (the button that
    shows "next" is named by "Click button NEXT."). The head's output then says, at each
    labelled cell, whether the instruction named it: what the pointing head needs to choose
    among labels that look alike."""

    def __init__(self, vlm: Any) -> None:
        tok = vlm.tokenizer
        self.tokenizer = tok
        self.image_token = int(tok.convert_tokens_to_ids(IMAGE_TOKEN))
        self.cell = token_grid(vlm.processor)[0]
        self.marker = tok.encode(MARKER, add_special_tokens=False)
        self._pieces: dict[int, str] = {}

    def piece(self, token: int) -> str:
        if token not in self._pieces:
            self._pieces[token] = self.tokenizer.decode([token])
        return self._pieces[token]

    def span(self, ids: list[int], start: int, end: int) -> tuple[str, list[int]]:
        """The text of ``ids[start:end]`` and, for each of its characters, its token's
        position."""
        pieces = [self.piece(t) for t in ids[start:end]]
        owners = [start + i for i, piece in enumerate(pieces) for _ in piece]
        return "".join(pieces), owners

    @staticmethod
    def word(span: tuple[str, list[int]], text: str) -> list[int]:
        """Positions of the tokens of the last whole-word, case-blind ``text`` in ``span``
        (``MatchPairs.span``; [] if there is none)."""
        joined, owners = span
        found = list(re.finditer(rf"(?<!\w){re.escape(text)}(?!\w)", joined, re.IGNORECASE))
        if not text or not found:
            return []
        a, b = found[-1].span()
        return sorted(set(owners[a:b]))

    def named(self, ids: list[int], first_image: int, text: str) -> list[int]:
        """Positions of the instruction's tokens of ``text`` in one row's ``ids`` (``word``
        in the span from ``MARKER`` to the screenshot's first image token; [] if none)."""
        start = _last(ids, self.marker, first_image)
        return [] if start is None else self.word(self.span(ids, start, first_image), text)

    def pairs(self, input_ids: Any, samples: Sequence[Any]) -> list[tuple[int, int, list[int]]]:
        """(row, query, keys) of every readable text of the batch: the query is its cell's
        image token, the keys the instruction's tokens of it, or the query itself."""
        out = []
        for b, sample in enumerate(samples):
            found = screen_cells(input_ids[b], sample, self.image_token, self.cell)
            if found is None:
                continue
            images, cells = found
            ids = input_ids[b].tolist()
            start = _last(ids, self.marker, images[0])
            if start is None:
                continue
            instruction = self.span(ids, start, images[0])  # decoded once per sample
            for cell, text in cells:
                query = images[cell]
                keys = self.word(instruction, text)
                out.append((b, query, keys or [query]))
        return out


def _last(ids: list[int], form: list[int], end: int) -> int | None:
    """The position after the last ``form`` in ``ids[:end]``, or None."""
    n = len(form)
    for s in range(end - n, -1, -1):
        if ids[s : s + n] == form:
            return s + n
    return None


def match_loss(copier: Any, input_ids: Any, pairs: list[tuple[int, int, list[int]]],
               head: int = MATCH_HEAD) -> tuple[Any, dict[str, float]]:  # fmt: skip
    """``loss_match`` of ``MatchPairs.pairs`` through ``copier`` (``CopyAttention``, which
    recorded the forward pass), with ``match_attention`` (the mean attention of the named
    texts' cells on their word) and ``match_self`` (of the others' on themselves)."""
    import torch

    logp = copier.last_layer_rows(input_ids, [(b, q) for b, q, _ in pairs], head)
    wanted = torch.zeros_like(logp, dtype=torch.bool)
    for i, (_, _, keys) in enumerate(pairs):
        wanted[i, keys] = True
    terms = torch.logsumexp(logp.masked_fill(~wanted, float("-inf")), dim=-1)
    named = torch.tensor([keys != [q] for _, q, keys in pairs])
    loss, figures = [], {}
    for mask, name in ((named, "match_attention"), (~named, "match_self")):
        if bool(mask.any()):
            loss.append(-terms[mask].mean())
            figures[name] = float(terms[mask].detach().exp().mean())
    return torch.stack(loss).mean(), figures


WIDTH_FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")  # MiniWoB's text, drawn
WIDTH_SIZE = 10  # MiniWoB's paragraph and instruction font size, in pixels
WIDTH_BIN = 3  # pixels a width class spans
WIDEST = 31  # the widest class: wider texts share it


@functools.cache
def _width_font() -> Any:
    from PIL import ImageFont

    from pixelpilot.errors import DependencyNotInstalled

    if not WIDTH_FONT.is_file():
        raise DependencyNotInstalled("DejaVu Sans", hint="apt-get install fonts-dejavu-core")
    return ImageFont.truetype(str(WIDTH_FONT), WIDTH_SIZE)


def width_class(text: str) -> int | None:
    """The width warm-up's class of a screen text (round 47): how wide MiniWoB draws it, in
    ``WIDTH_BIN``-pixel bins (``WIDEST`` at most; None for a text with no letter or digit).
    Chromium draws MiniWoB's 10-pixel text in DejaVu Sans here, and PIL's advance width of
    the same string in the same font is the page's box width within a pixel on 745 of 745
    click-link words (round 47, ``scripts/width-check``). Picked by true classes, the link
    nearest the quoted word's width is the named one on 0.90 of 280 unseen click-link
    screens, by character count (``length_class``) on 0.88 (``scripts/head-probe --links``)."""
    word = text.strip()
    if not any(c.isalnum() for c in word):
        return None
    return min(int(_width_font().getlength(word)) // WIDTH_BIN, WIDEST)


CLASS_KINDS = {"word": word_class, "length": length_class, "width": width_class}  # by name


def text_class(text: str, kind: str = "word") -> int | None:
    """``text``'s class under the warm-up's ``kind`` of classes (``CLASS_KINDS``)."""
    return CLASS_KINDS[kind](text)


def named_classes(samples: Sequence[Any]) -> dict[str, set[int]]:
    """Per task, the ``word_class`` of every word its instructions name, in quotes
    (``"Okay"``, a link's word) or in capitals (``ONE``): the words a policy of that task has
    to read."""
    asked: dict[str, set[int]] = {}
    for sample in samples:
        text = sample.instruction or ""
        named = [*re.findall(r'"([^"]+)"', text), *re.findall(r"\b[A-Z]{2,}\b", text)]
        for quoted in named:
            for word in quoted.split():
                k = word_class(word)
                if k is not None:
                    asked.setdefault(sample.task, set()).add(k)
    return asked


HEAD_FILE = "word-head.safetensors"  # the warm-up's head, beside its checkpoint (not in it)
LENGTH_HEAD_FILE = "length-head.safetensors"  # its second head, with ``length_tasks`` (round 39)


def missing_head(head: str) -> str:
    """The one-line error for a word term whose warm-up head is not there."""
    if Path(head).name == LENGTH_HEAD_FILE:
        return (f"no length head at {head}: the reading warm-up writes it when given "
                "--read-length-tasks; delete its folder to run it again")  # fmt: skip
    return (f"no word head at {head}: the reading warm-up writes it (a warm-up folder made "
            "before round 23 has none; delete it to run the warm-up again)")  # fmt: skip


def head_kind(head: str) -> str:
    """The kind of classes (``CLASS_KINDS``) a warm-up head file names in its metadata:
    ``"word"`` for a head written before round 38, which names none."""
    from pixelpilot.errors import ConfigError

    kind = _head_metadata(head).get("classes", "word")
    if kind not in CLASS_KINDS:
        raise ConfigError(f"the word head at {head} names unknown classes {kind!r}")
    return kind


def head_tasks(head: str) -> set[str] | None:
    """The tasks whose screens a warm-up head was taught on, from its metadata (a length
    head of ``length_tasks``), or None: every task's."""
    tasks = _head_metadata(head).get("tasks")
    return set(tasks.split(",")) if tasks else None


def head_weights(head: str) -> dict[str, Any]:
    """A warm-up head file's tensors: ``weight`` (classes x hidden) and ``bias`` as float32,
    and ``classes`` when a named warm-up wrote it."""
    from safetensors.torch import load_file

    tensors = load_file(head)
    return {k: v.float() if k != "classes" else v for k, v in tensors.items()}


def _head_metadata(head: str) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(head, "pt") as f:
        return f.metadata() or {}


class WordKeeper(ReadingObjective):
    """The reading warm-up's word-class head, frozen, as a term of SFT (``word_weight``,
    docs/default-model.md, round 23).

    The warm-up teaches the image tokens the words they show, and the main SFT's losses wash
    it out again (round 22). This term keeps asking for it: every readable text of the batch
    (``label_rows``) has its cell's image token, as the decoder receives it, predict the
    text's class through the head the warm-up learnt (``HEAD_FILE``), which does not train
    here: the class kind the head's metadata names (``word_class``, or ``length_class`` after
    a length warm-up). A head taught on some tasks' screens only (``head_tasks``, the length
    head of ``length_tasks``) asks on those tasks' samples only. Its figures are named after
    ``name`` (``word_loss``, ``word_accuracy``, ...). Nothing is added to the model or its
    checkpoint."""

    def __init__(self, vlm: Any, head: str, name: str = "word") -> None:
        from pixelpilot.errors import ConfigError

        if not Path(head).is_file():
            raise ConfigError(missing_head(head))
        super().__init__(vlm)
        tensors = head_weights(head)
        self.head = (tensors["weight"], tensors["bias"])
        self.kind = head_kind(head)
        self.tasks = head_tasks(head)
        self.name = name
        # a named warm-up's head knows its own classes only (round 35); an older one, all
        self.classes = set(tensors["classes"].tolist()) if "classes" in tensors else None

    def loss(self, input_ids: Any, samples: Sequence[Any]) -> tuple[Any, dict[str, float]]:
        """The head's cross-entropy over the batch's readable texts (``None`` when it has
        none), with ``word_accuracy`` (the share of texts whose top class is theirs)."""
        import torch

        embeds, self._embeds = self._embeds, None
        if embeds is None or input_ids is None:
            return None, {}
        rows, classes = [], []
        for b, position, text in label_rows(input_ids, samples, self.image_token, self.cell):
            if self.tasks is not None and samples[b].task not in self.tasks:
                continue
            k = text_class(text, self.kind)
            if k is not None and (self.classes is None or k in self.classes):
                rows.append(embeds[b, position])
                classes.append(k)
        if not rows:
            return None, {}
        image = torch.stack(rows).float()
        logits = torch.nn.functional.linear(image, *(t.to(image.device) for t in self.head))
        target = torch.tensor(classes, device=logits.device)
        accuracy = float((logits.argmax(-1) == target).float().mean())
        loss = torch.nn.functional.cross_entropy(logits, target)
        return loss, {f"{self.name}_accuracy": accuracy, f"{self.name}_texts": float(len(rows))}


class QuotedLength:
    """The text side of the length comparison (``text_length_weight``, docs/default-model.md,
    round 47): the decoder is asked for the instruction's quoted word's ``length_class`` (or
    ``width_class``: ``kind``, the length head's classes).

    The length warm-up's head (``length_tasks``, kept by the word term) puts each link's
    length in its image tokens; to pick the link the instruction names, the match head
    (``MatchPairs``) must compare it with the quoted word's, and a word token's length is
    otherwise learnt only from the few steps that name that word. Here the input of the last
    decoder layer at the quoted word's last token (where the match head's keys come from) is
    scored by a fixed random linear map into the classes, and the term is the
    cross-entropy with the word's class; the map does not train, so the layers below learn to
    carry the length where the match head can read it. Only the samples of ``tasks`` (every
    task when None) whose instruction quotes a word, found whole after ``MARKER``, count.
    Nothing is added to the model or its checkpoint.

    ``head`` (round 49), a warm-up's head file, scores the term through that head's frozen
    weight and bias in place of the random map, in the head's own kind of classes (``kind``
    is then ignored): the quoted word is asked for its class through the same head that
    reads the links' cells, so both sides of the comparison carry it alike (round 48's
    ``--text-head``)."""

    def __init__(
        self,
        vlm: Any,
        tasks: Sequence[str] | None = None,
        kind: str = "length",
        seed: int = 0,
        head: str | None = None,
    ) -> None:
        import torch

        self.kind = head_kind(head) if head else kind
        self.words = MatchPairs(vlm)
        self.tasks = set(tasks) if tasks else None
        self.bias: Any = None  # a head's bias, where a head's weight is the map
        if head:
            weights = head_weights(head)
            self.map = weights["weight"].T.contiguous()  # hidden x classes
            self.bias = weights["bias"]
        else:
            hidden = int(vlm.model.config.text_config.hidden_size)
            gen = torch.Generator().manual_seed(seed)
            self.map = torch.randn(hidden, max(LONGEST * 2 + 2, WIDEST + 1), generator=gen)
            self.map /= hidden**0.5
        self._hidden: Any = None
        layers = vlm.model.model.language_model.layers
        layers[-1].register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        self._hidden = args[0] if args else kwargs["hidden_states"]

    def clear(self) -> None:
        self._hidden = None

    def rows(self, input_ids: Any, samples: Sequence[Any]) -> list[tuple[int, int, int]]:
        """(row, position of the quoted word's last token, its ``length_class``)."""
        out = []
        for b, sample in enumerate(samples):
            if self.tasks is not None and sample.task not in self.tasks:
                continue
            quoted = re.findall(r'"([^"]+)"', sample.instruction or "")
            target = text_class(quoted[-1], self.kind) if quoted else None
            if target is None:
                continue
            ids = input_ids[b].tolist()
            if self.words.image_token not in ids:
                continue
            where = self.words.named(ids, ids.index(self.words.image_token), quoted[-1])
            if where:
                out.append((b, where[-1], target))
        return out

    def loss(self, input_ids: Any, samples: Sequence[Any]) -> tuple[Any, dict[str, float]]:
        """The cross-entropy over the batch's quoted words (``None`` when it has none), with
        ``text_length_accuracy``."""
        import torch

        hidden, self._hidden = self._hidden, None
        if hidden is None or input_ids is None:
            return None, {}
        found = self.rows(input_ids, samples)
        if not found:
            return None, {}
        states = torch.stack([hidden[b, p] for b, p, _ in found]).float()
        logits = states @ self.map.to(states.device)
        if self.bias is not None:
            logits = logits + self.bias.to(logits.device)
        target = torch.tensor([k for _, _, k in found], device=logits.device)
        accuracy = float((logits.argmax(-1) == target).float().mean())
        return torch.nn.functional.cross_entropy(logits, target), {
            "text_length_accuracy": accuracy,
            "text_length_words": float(len(found)),
        }


def labelled_examples(
    samples: Sequence[Any], cell: int, kind: str, asked: dict[str, set[int]] | None = None
) -> list[tuple[Any, Any, list[tuple[int, int]]]]:
    """(screenshot path, screen, [(cell, class)]) of every screen with a text to name: its
    texts' ``kind`` classes (only the classes ``asked`` names for its task, when given)."""
    out = []
    for sample in samples:
        cells, _ = label_cells(sample.meta["labels"], sample.screen, cell)
        found = [(c, k) for c, k in ((c, text_class(t, kind)) for c, t in cells) if k is not None
                 and (asked is None or k in asked.get(sample.task, ()))]  # fmt: skip
        if found:
            out.append((sample.image, sample.screen, found))
    return out


def vision_only(vlm: Any) -> list[Any]:
    """Freeze ``vlm``'s model but its vision tower and projector; returns their parameters
    (the reading warm-up's, and the probes', trainable set)."""
    parts = ("vision_tower", "mm_projector")
    trained = [p for n, p in vlm.model.model.named_parameters() if n.startswith(parts)]
    for p in vlm.model.parameters():
        p.requires_grad_(False)
    for p in trained:
        p.requires_grad_(True)
    return trained


def write_checkpoint(vlm: Any, source: str, final: str | Path) -> None:
    """``vlm``'s weights as a checkpoint folder like ``source`` (its tokenizer, processor and
    declaration, copied; its weight files replaced)."""
    import shutil

    shutil.copytree(source, final, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.safetensors"))  # fmt: skip
    for p in vlm.model.parameters():
        p.requires_grad_(True)
    vlm.model.save_pretrained(final)


def low_rank_head(hidden: int, rank: int, seed: int = 0) -> Any:
    """A head of ``BUCKETS`` classes whose weight is a fixed random code (``BUCKETS`` x
    ``rank``, each row ``SCALE`` long, seeded by ``seed``) times a learnt ``rank`` x
    ``hidden`` map, with a learnt bias; its ``weight`` is the product, as
    ``torch.nn.Linear``'s (``read_warmup``'s ``rank``)."""
    import torch

    class Head(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            gen = torch.Generator().manual_seed(seed)
            code = torch.randn(BUCKETS, rank, generator=gen)
            self.register_buffer("code", torch.nn.functional.normalize(code, dim=-1) * SCALE)
            self.map = torch.nn.Linear(hidden, rank, bias=False)
            self.bias = torch.nn.Parameter(torch.zeros(BUCKETS))

        @property
        def weight(self) -> Any:
            return self.code @ self.map.weight

        def forward(self, x: Any) -> Any:
            return self.map(x) @ self.code.T + self.bias

    return Head()


def length_ties(texts: Sequence[str], quoted: str) -> list[int]:
    """The indices of ``texts`` whose length (``length_class``'s characters) is nearest the
    ``quoted`` word's: the links a pick by length alone chooses among (round 38)."""
    size = (length_class(quoted) or 0) // 2
    sizes = [(length_class(t) or 0) // 2 for t in texts]
    gap = min(abs(n - size) for n in sizes)
    return [i for i, n in enumerate(sizes) if abs(n - size) == gap]


def read_warmup(
    model: str,
    data: str,
    out: str,
    *,
    steps: int,
    batch_size: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
    named: bool = False,
    classes: str = "word",
    length_tasks: Sequence[str] = (),
    length_data: str | None = None,
    length_classes: str = "length",
    rank: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Teach a checkpoint's vision tower and projector to read, before SFT (round 22).

    Every labelled text of the screens under ``data`` (the steps' ``labels``: synthetic
    screens, the experts' recordings) is a classification example: the image token of its
    cell, as the decoder receives it, predicts the text's ``word_class`` through a linear
    head. Only the tower, the projector and the head train; the decoder's weights are not
    touched and the head is not part of the checkpoint. The pointing, look and answer losses
    of SFT teach reading only through which cell wins; this names every word on every screen.
    Writes the checkpoint to ``out/final``, the head to ``out/HEAD_FILE`` (``WordKeeper``
    keeps it as an SFT term) and the figures to ``out/metrics.jsonl``; returns the summary
    (``read_accuracy`` over the last 100 steps).

    ``named`` (round 35) keeps only the words a task asks for: a text is an example when its
    ``word_class`` is the class of a word some instruction of the same task names
    (``named_classes``: click-button's labels, click-test-2's ONE, the links' words), and a
    screen without one is left out. The head file then lists its classes, and ``WordKeeper``
    asks for those only.

    ``classes`` (round 38) names the classes (``CLASS_KINDS``): ``"word"``, the hashed word
    (``word_class``), or ``"length"``, the word's length and capital (``length_class``), for
    every labelled word (not with ``named``). The head file records the kind in its metadata,
    and ``WordKeeper`` asks for the same classes.

    ``length_tasks`` (round 39) adds a second head beside the first, taught at the same steps:
    the ``length_class`` of every labelled word on those tasks' screens only (click-link's
    paragraphs, whose lengths the synthetic screens' words swamp when they share one head,
    round 38). Each step then draws one batch for each head and adds their losses; the second
    head goes to ``out/LENGTH_HEAD_FILE``, its metadata naming the tasks, and its figures to
    ``length_accuracy``.

    ``length_data`` (round 45) gives the second head its own screens: every labelled screen
    under that folder (the synthetic link screens of ``train/synthetic.py``, which need no
    recording; round 44), whatever their task. ``length_tasks`` still names the tasks whose
    samples the word term asks it on in SFT (its file's metadata), and is required.
    ``length_classes`` (round 47) names that head's classes: ``"length"``, or ``"width"``
    (``width_class``: how wide the page draws the word).

    ``rank`` (round 48) makes the first head low-rank: a learnt map of the image token to
    ``rank`` numbers, then a fixed random code of each class (``low_rank_head``), so that what
    the head reads lies in a ``rank``-dimensional subspace, as small as a decoder head's
    query-key comparison. Its file holds the product as a plain head's weight and bias, so
    the word term, ``scripts/head-probe`` and the text-side term read it unchanged."""
    import random
    import time

    import torch

    from pixelpilot.errors import ConfigError
    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.data import load_split
    from pixelpilot.train.model import load_trainable
    from pixelpilot.vlm.pointer import same_cells

    if steps < 1 or batch_size < 1:
        raise ConfigError("the reading warm-up needs steps >= 1 and batch_size >= 1")
    if classes not in CLASS_KINDS:
        raise ConfigError(f"the reading warm-up's classes are one of {', '.join(CLASS_KINDS)}, "
                          f"not {classes!r}")  # fmt: skip
    if length_classes not in CLASS_KINDS:
        raise ConfigError(f"the reading warm-up's length head's classes are one of "
                          f"{', '.join(CLASS_KINDS)}, not {length_classes!r}")  # fmt: skip
    if named and classes != "word":
        raise ConfigError("a named warm-up reads words: its classes must be 'word'")
    if rank is not None and rank < 1:
        raise ConfigError(f"the reading warm-up's head rank must be 1 or more, not {rank}")

    def labelled_screens(folder: str) -> list[Any]:  # the training screens that name texts
        config = SFTConfig(data=folder, model=model, out=out, max_steps=steps, seed=seed)
        return [s for s in load_split(config).train if (s.meta or {}).get("labels")]

    config = SFTConfig(data=data, model=model, out=out, max_steps=steps, seed=seed)
    labelled = labelled_screens(data)
    if not labelled:
        raise ConfigError(f"the reading warm-up found no screen with labels under {data}")
    torch.manual_seed(seed)
    vlm = load_trainable(config, "cpu")
    processor = vlm.processor.image_processor
    cell, merge = token_grid(processor)
    asked = named_classes(labelled) if named else None
    examples = labelled_examples(labelled, cell, classes, asked)
    if not examples:
        raise ConfigError(f"the reading warm-up found no word to name on the screens under {data}")
    lengths = []  # the second head's examples: the length_tasks' screens, or length_data's
    if length_data is not None:
        if not length_tasks:
            raise ConfigError("the reading warm-up's length_data needs length_tasks: the tasks "
                              "whose samples its head is kept on in SFT")  # fmt: skip
        lengths = labelled_examples(labelled_screens(length_data), cell, length_classes)
        if not lengths:
            raise ConfigError(f"the reading warm-up found no labelled screen under {length_data}")
    elif length_tasks:
        tasks = set(length_tasks)
        lengths = labelled_examples([s for s in labelled if s.task in tasks], cell, length_classes)
        if not lengths:
            raise ConfigError(f"the reading warm-up found no labelled screen of "
                              f"{', '.join(length_tasks)} under {data}")  # fmt: skip
    inner = vlm.model.model
    trained = vision_only(vlm)
    hidden = vlm.model.config.text_config.hidden_size
    head = torch.nn.Linear(hidden, BUCKETS) if rank is None else low_rank_head(hidden, rank, seed)
    heads = [(head, examples, "read")]
    if lengths:
        heads.append((torch.nn.Linear(hidden, BUCKETS), lengths, "length"))
    optimizer = torch.optim.AdamW([*trained, *(p for h, _, _ in heads for p in h.parameters())],
                                  lr=lr, weight_decay=0.0)  # fmt: skip
    warm = max(1, steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm))
    from pixelpilot.agent.sample import _load_rgb

    rng = random.Random(f"pixelpilot-read:{seed}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    log = (root / "metrics.jsonl").open("w")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, desc="read warm-up", unit="step")
    recent: dict[str, list[float]] = {name: [] for _, _, name in heads}
    t0 = time.perf_counter()

    def head_loss(linear: Any, pool: list, name: str, record: dict[str, Any]) -> Any:
        batch = [pool[rng.randrange(len(pool))] for _ in range(batch_size)]
        inputs = processor(images=[_load_rgb(path) for path, _, _ in batch], return_tensors="pt")
        tokens = inner.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
        rows, targets = [], []
        for (_, screen, found), grid, image in zip(batch, inputs["image_grid_thw"].tolist(),
                                                   tokens.pooler_output, strict=True):  # fmt: skip
            if not same_cells(grid[1] // merge, grid[2] // merge, screen, cell):  # resized
                continue
            rows += [image[index] for index, _ in found]
            targets += [k for _, k in found]
        if not rows:
            return None
        logits = linear(torch.stack(rows).float())
        target = torch.tensor(targets)
        accuracy = float((logits.argmax(-1) == target).float().mean())
        recent[name] = (recent[name] + [accuracy])[-100:]
        loss = torch.nn.functional.cross_entropy(logits, target)
        record |= {f"{name}_loss": loss.item(), f"{name}_accuracy": accuracy,
                   "texts" if name == "read" else f"{name}_texts": len(rows)}  # fmt: skip
        return loss

    for step in range(steps):
        record: dict[str, Any] = {"step": step + 1}
        losses = [x for x in (head_loss(*h, record) for h in heads) if x is not None]
        if not losses:
            continue
        optimizer.zero_grad(set_to_none=True)
        torch.stack(losses).sum().backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        scheduler.step()
        log.write(json.dumps(record) + "\n")
        if bar is not None:
            bar.update(1)
            bar.set_postfix({"acc" if name == "read" else name: f"{sum(r) / len(r):.2f}"
                             for name, r in recent.items() if r})  # fmt: skip
    if bar is not None:
        bar.close()
    log.close()
    final = root / "final"
    write_checkpoint(vlm, model, final)
    from safetensors.torch import save_file

    taught = sorted({k for _, _, found in examples for _, k in found})
    weights = {"weight": head.weight, "bias": head.bias}  # a low-rank head's: the product
    if asked is not None:  # the classes it was taught, for the word term
        weights["classes"] = torch.tensor(taught)
    save_file({k: v.detach().contiguous() for k, v in weights.items()}, str(root / HEAD_FILE),
              metadata={"classes": classes})  # fmt: skip
    summary = {"checkpoint": str(final), "steps": steps, "screens": len(examples),
               "class_kind": classes,
               "read_accuracy": sum(recent["read"]) / max(1, len(recent["read"])),
               "classes": len(taught)}  # fmt: skip
    if lengths:
        second = heads[1][0]
        # the classes its screens showed: the read guide answers for those only (round 52)
        shown = torch.tensor(sorted({k for _, _, found in lengths for _, k in found}))
        save_file({"weight": second.weight.detach().contiguous(),
                   "bias": second.bias.detach().contiguous(), "taught": shown},
                  str(root / LENGTH_HEAD_FILE),
                  metadata={"classes": length_classes,
                            "tasks": ",".join(length_tasks)})  # fmt: skip
        last = recent["length"]
        summary |= {"length_screens": len(lengths), "length_tasks": list(length_tasks),
                    "length_accuracy": sum(last) / max(1, len(last))}  # fmt: skip
    return {**summary, "seconds": time.perf_counter() - t0}

"""Pointer-guided coordinates: a click's numbers lean towards where the image tokens point.

A checkpoint trained with the pointing objective (``train/pointing.py``) scores every image
token of the current screenshot "the target is in my cell": ``h_i . w_pad`` at the last decoder
layer, which is the ``[PAD]`` column of the LM head's logits at the image positions. The
answer's own coordinates are written by other attention and can disagree with it (on
click-test-2 a trained model's pointing head picked the right button more often than its
answers did; docs/default-model.md, rounds 11 and 13). With a ``pointer_weight`` w > 0 the
decoder adds the pointing head's log-probability of the cell a candidate number falls in to
that number's logit, where the answer writes the x and then the y of its first point
(``start_box``)::

    x:  logit(v) + w * log(p_col(col(v)) / max p_col)          p_col: the cells summed over rows
    y:  logit(v) + w * log(p(row(v) | col(x)) / max p(. | col(x)))

Numbers in the best column (row) keep their logits, the others lose ``w`` times how much less
likely their cell is; w = 1 is the product of the two distributions, a large w keeps the
answer inside the pointed column and row. Nothing else of the answer changes. The guide needs
the image token grid to be the screenshot cut into the model's cells (``patch x merge`` pixels
a side: 28 for 14-pixel patches merged 2x2, 14 unmerged; the processor padded the screenshot,
did not resize it); a screenshot it resized, or a model without image tokens, decodes as usual.

Half rows (``pointer_rows`` 2, round 49): a cell of 14 pixels often holds parts of two lines
of text (click-link's lines are 11 pixels apart), and the cell alone does not say which. A
checkpoint trained with the half-row term (``half_weight`` of the pointing objective) also
scores every image token "the target is in my lower half": the logit of ``half_token``'s
column of the LM head (a token no answer writes), through a sigmoid, q. The y then leans to
the half rows of the pointed column, ``p(row | col(x)) * (1 - q, q)``, half a cell each.

A read guide (``pixelpilot.vlm.read_guide``, ``reader``) weighs the cells before the split into
halves by where the checkpoint's reading heads see the instruction's quoted word.

A checkpoint declares its weight in ``pixelpilot.json`` (``pointer_weight``, 0 when absent);
training loads checkpoints with the guide off, so sampled answers and their log-probabilities
come from the same distribution, except GRPO with ``--decoding-aids``, which samples and
scores with the guide (and the other declared aids) on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from pixelpilot.tools.frames import CoordinateFrame

CELL = 28  # pixels per image-token side when the processor does not say: patch 14, merged 2x2
IMAGE_TOKEN = "<|media_pad|>"
# the half-row column: a token of the family's vocabulary that no answer writes (videos)
HALF_TOKENS = ("<|kimi_k25_video_placeholder|>", "<|video_pad|>")


def half_token(tokenizer: Any) -> int | None:
    """The id of the first of ``HALF_TOKENS`` the tokenizer knows (its LM-head column scores
    the half rows), or None."""
    unknown = tokenizer.unk_token_id
    for name in HALF_TOKENS:
        found = tokenizer.convert_tokens_to_ids(name)
        if found is not None and found != unknown:
            return int(found)
    return None


# the answer so far ends where the first point's x or y is due
_X_DUE = re.compile(r"start_box=['\"]?(?:<\|box_start\|>)?\(\s*$")
_Y_DUE = re.compile(r"start_box=['\"]?(?:<\|box_start\|>)?\(\s*(\d+)\s*,\s*$")


def token_grid(processor: Any) -> tuple[int, int]:
    """``(cell, merge)`` of a processor (or its image processor): the pixels a side of one
    image token (``patch_size * merge_size``) and the patches merged a side; ``(CELL, 2)``
    when it does not say."""
    ip = getattr(processor, "image_processor", processor)
    patch, merge = getattr(ip, "patch_size", None), getattr(ip, "merge_size", None)
    if not isinstance(patch, int) or not isinstance(merge, int) or patch < 1 or merge < 1:
        return CELL, 2
    return patch * merge, merge


def same_cells(rows: int, cols: int, screen: tuple[int, int], cell: int = CELL) -> bool:
    """Whether an image of ``rows x cols`` merged tokens is the screen (``width, height``)
    cut into ``cell``-pixel squares, i.e. the processor did not resize it."""
    return (rows, cols) == (math.ceil(screen[1] / cell), math.ceil(screen[0] / cell))


def number_tokens(tokenizer: Any, top: int = 1000) -> dict[int, int]:
    """``token id -> value`` of the numbers 0..``top`` that are one token each."""
    out: dict[int, int] = {}
    for value in range(top + 1):
        ids = tokenizer(str(value), add_special_tokens=False)["input_ids"]
        if len(ids) == 1:
            out[int(ids[0])] = value
    return out


class PointerGuide:
    """The pointer-guided decoding of one loaded checkpoint (``HFVLM`` builds it)."""

    def __init__(
        self,
        tokenizer: Any,
        frame: CoordinateFrame,
        weight: float,
        grid: tuple[int, int] = (CELL, 2),
        rows: int = 1,
    ) -> None:
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"pointer_weight must be a finite number >= 0, not {weight!r}")
        if rows not in (1, 2):
            raise ValueError(f"pointer_rows must be 1 or 2, not {rows!r}")
        self.rows = rows  # 2: each cell's upper and lower half rows (half_token's column)
        self.half = half_token(tokenizer) if rows == 2 else None
        if rows == 2 and self.half is None:
            raise ValueError(f"pointer_rows 2 needs one of {', '.join(HALF_TOKENS)} "
                             "in the vocabulary")  # fmt: skip
        self.tokenizer = tokenizer
        self.cell, self.merge = grid  # token_grid(processor)
        self.frame = frame
        self.weight = float(weight)
        image = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
        unknown = tokenizer.unk_token_id
        self.image_token = None if image is None or image == unknown else int(image)
        self.pad_token = tokenizer.pad_token_id
        self.numbers = number_tokens(tokenizer)
        self.reader: Any = None  # a ReadGuide (pixelpilot.vlm.read_guide) weighs the cells

    @property
    def usable(self) -> bool:
        return self.weight > 0 and self.image_token is not None and self.pad_token is not None

    def cells(
        self,
        model: Any,
        inputs: Any,
        screens: Sequence[tuple[int, int]],
        words: Sequence[str | None] | None = None,
    ) -> list[Any]:
        """Per conversation, the pointing head's probabilities over the cells of its last
        screenshot (a ``[rows, cols]`` tensor; ``[2 * rows, cols]``, each cell's upper and
        lower half, with half rows), or None where the grid is not the screen's; with a
        ``reader``, weighed by where its heads see each conversation's word (``words``, the
        read guide's ``looked_for``)."""
        import contextlib

        import torch

        ids = inputs["input_ids"]
        grids = inputs.get("image_grid_thw")
        if grids is None:
            return [None] * len(screens)
        reader = self.reader if words is not None else None
        with torch.inference_mode(), reader.capture() if reader else contextlib.nullcontext():
            logits = model(**inputs).logits
        out: list[Any] = []
        counts = (ids == self.image_token).sum(dim=1).tolist()
        image = -1
        for b, (width, height) in enumerate(screens):
            # images of a batch are in order; each conversation's last one is its screen
            seen, taken = 0, image
            while seen < counts[b] and taken + 1 < len(grids):
                taken += 1
                seen += int(grids[taken][1] * grids[taken][2]) // self.merge**2
            image = taken
            rows, cols = int(grids[image][1]) // self.merge, int(grids[image][2]) // self.merge
            if not same_cells(rows, cols, (width, height), self.cell):
                out.append(None)  # resized: the cells are not squares of the screen
                continue
            positions = (ids[b] == self.image_token).nonzero().flatten()[-rows * cols :]
            if len(positions) < rows * cols:
                out.append(None)
                continue
            scores = logits[b, positions, self.pad_token].float()
            p = torch.softmax(scores, dim=0)
            factor = reader.factor(b, positions, words[b], cols) if reader else None
            if factor is not None:  # the read guide (pixelpilot.vlm.read_guide)
                p = p * factor.to(p.device)
                p = p / p.sum().clamp_min(1e-30)
            p = p.reshape(rows, cols)
            if self.rows == 2:  # each cell split by q, its lower half's probability
                q = torch.sigmoid(logits[b, positions, self.half].float()).reshape(rows, cols)
                p = torch.stack([p * (1 - q), p * q], dim=1).reshape(2 * rows, cols)
            out.append(p)
        if reader:
            reader.embeds = None  # this batch's: not kept past it
        return out

    def processor(
        self, cells: Sequence[Any], screens: Sequence[tuple[int, int]], prompt_len: int, n: int
    ) -> PointerLogits:
        """The logits processor for one ``generate`` call (``n`` answers per conversation)."""
        return PointerLogits(self, cells, screens, prompt_len, n)


def _cells_of(values: Any, side: float, pixels: int, count: int, cell: float) -> Any:
    """The cell index (column or row, of ``count`` cells of ``cell`` pixels) that each model
    coordinate in ``values`` falls in, on a screen side of ``pixels`` that the model's frame
    calls ``side``: the cell of the pixel the action runs at, rounded half up as
    ``clamp_point`` rounds it (a floor would put a value whose pixel rounds up across a cell
    edge in the cell before the one clicked)."""
    return ((values * pixels / side + 0.5).floor() // cell).long().clamp(0, count - 1)


class PointerLogits:
    """A transformers logits processor: ``PointerGuide``'s bias on the first point's numbers."""

    def __init__(
        self,
        guide: PointerGuide,
        cells: Sequence[Any],
        screens: Sequence[tuple[int, int]],
        prompt_len: int,
        n: int,
    ) -> None:
        import torch

        self.guide, self.cells, self.prompt_len, self.n = guide, list(cells), prompt_len, n
        self.ids = torch.tensor(list(guide.numbers), dtype=torch.long)
        self.values = torch.tensor(list(guide.numbers.values()), dtype=torch.float64)
        self.known = set(guide.numbers.values())
        self.screens = list(screens)

    def _axis(self, b: int, values: Any, axis: int) -> Any:
        """Columns (``axis`` 0) or rows (1) of conversation ``b``'s grid for ``values``."""
        screen = self.screens[b]
        side = self.guide.frame.model_size(screen)[axis]
        count = self.cells[b].shape[1 - axis]
        size = self.guide.cell / (self.guide.rows if axis else 1)  # half rows: half a cell
        return _cells_of(values, side, screen[axis], count, size)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        ids = self.ids.to(scores.device)
        for r in range(input_ids.shape[0]):
            b = r // self.n
            grid = self.cells[b]
            if grid is None:
                continue
            text = self.guide.tokenizer.decode(input_ids[r, self.prompt_len :].tolist())
            if _X_DUE.search(text):
                p, index = grid.sum(dim=0), self._axis(b, self.values, 0)
            else:
                due = _Y_DUE.search(text)
                if due is None:
                    continue
                x = int(due.group(1))
                if x not in self.known:  # an x the number table does not hold: leave the y be
                    continue
                column = int(self._axis(b, torch.tensor([float(x)], dtype=torch.float64), 0))
                p, index = grid[:, column], self._axis(b, self.values, 1)
            bias = torch.log(p / p.max()).clamp_min(-1e4)[index].to(scores.dtype)
            scores[r, ids] += self.guide.weight * bias.to(scores.device)
        return scores

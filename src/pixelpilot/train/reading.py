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

from collections.abc import Sequence
from typing import Any

from pixelpilot.train.pointing import cell_at
from pixelpilot.vlm.pointer import IMAGE_TOKEN

SCALE = 16.0  # inverse temperature of the cosines


def label_cells(
    labels: Sequence[tuple[str, tuple[int, int, int, int]]], screen: tuple[int, int]
) -> tuple[list[tuple[int, str]], int]:
    """(cell index, text) of every text whose centre cell is its own, and the cell count."""
    by_cell: dict[int, list[str]] = {}
    for text, (x1, y1, x2, y2) in labels:
        x, y = (x1 + x2) // 2, (y1 + y2) // 2
        if 0 <= x < screen[0] and 0 <= y < screen[1]:
            by_cell.setdefault(cell_at(x, y, screen)[0], []).append(text)
    cells = [(cell, texts[0]) for cell, texts in sorted(by_cell.items()) if len(texts) == 1]
    return cells, cell_at(0, 0, screen)[1]


class ReadingObjective:
    """Records the decoder's input embeddings on each forward pass of ``vlm.model`` and turns
    them into ``loss_read`` for a batch (``loss(input_ids, samples)``)."""

    def __init__(self, vlm: Any) -> None:
        self.vlm = vlm
        self.image_token = int(vlm.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
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
        for b, sample in enumerate(samples):
            labels = (getattr(sample, "meta", None) or {}).get("labels")
            if not labels:
                continue
            cells, count = label_cells(labels, sample.screen)
            positions = (input_ids[b] == self.image_token).nonzero().flatten()
            if len(positions) < count:
                continue
            positions = positions[len(positions) - count :]
            for cell, text in cells:
                bag = self.bag(text)
                if bag:
                    rows.append(embeds[b, positions[cell]])
                    bags.append(bag)
        if not rows:
            return None, {}
        image = torch.nn.functional.normalize(torch.stack(rows).float(), dim=-1)
        logp = torch.log_softmax(SCALE * image @ table.T, dim=-1)
        losses = torch.stack([-logp[i, bag].mean() for i, bag in enumerate(bags)])
        top = logp.argmax(dim=-1).tolist()
        hits = sum(t in bag for t, bag in zip(top, bags, strict=True))
        return losses.mean(), {"read_accuracy": hits / len(bags), "read_texts": float(len(bags))}

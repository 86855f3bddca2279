"""A pointing objective on the image tokens, used in training only.

Answer-token losses reach the vision tower only through the few coordinate tokens, and a tiny
model trained from scratch on them settles on the answer that is right most often: the same
point for every screenshot (measured in ``docs/default-model.md``). This objective adds a
dense location signal: at the last decoder layer, every image token of the current screenshot
scores "the target is in my cell", and a cross-entropy over those tokens asks for the cell
(28x28 pixels: one merged 2x2 patch of 14 pixels) that holds the gold click::

    s_i = h_i . w_pad,    loss_point = -log softmax(s)_cell(x, y)
    loss = loss_answer + lambda * loss_point

``w_pad`` is the output-embedding row of the ``[PAD]`` token, which the model never has to
write, so the head adds no parameter and nothing to the checkpoint. The image tokens follow the
instruction in the prompt, so their states can depend on what is asked. Samples whose gold
action has no point, or whose screenshot the processor resized (the cell grid would not match
the pixels), get no pointing loss.

The look objective (``look_weight``) then asks the answer to fetch that cell: in the last
decoder layer, head ``LOOK_HEAD``, the positions that predict the x and the y of the answer's
first point attend to the gold cell's image token (supervised attention, computed by
``train/copying.py``'s ``CopyAttention``, whose copy objective uses head 0)::

    loss_look = mean over the two positions of -log attention(position -> gold cell token)

The reading objective (``read_weight``, ``train/reading.py``) asks the image token under each
text of the screen (a step's ``labels``), as the decoder receives it, to predict its tokens;
the word term (``word_weight``) to predict its word class through the reading warm-up's head.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pixelpilot.train.config import SFTConfig
from pixelpilot.train.coords import SoftCoordObjective
from pixelpilot.train.data import PromptCache
from pixelpilot.train.trainer import StepLoss, TrainResult
from pixelpilot.vlm.pointer import CELL, IMAGE_TOKEN, token_grid  # IMAGE_TOKEN: <|media_pad|>

LOOK_HEAD = 1  # the last decoder layer's head of the look objective (the copy objective: 0)


def cell_at(x: int, y: int, screen: tuple[int, int], cell: int = CELL) -> tuple[int, int]:
    """(index, number of cells) of the image-token cell (``cell`` pixels a side) holding
    pixel (x, y) of ``screen``."""
    cols, rows = math.ceil(screen[0] / cell), math.ceil(screen[1] / cell)
    return (y // cell) * cols + x // cell, rows * cols


def cell_centre(index: int, screen: tuple[int, int], cell: int = CELL) -> tuple[float, float]:
    """The pixel at the centre of image-token cell ``index`` of ``screen`` (``cell_at``'s
    inverse: where a click at that cell would land)."""
    cols = math.ceil(screen[0] / cell)
    return (index % cols + 0.5) * cell, (index // cols + 0.5) * cell


def target_cell(sample: Any, cell: int = CELL) -> tuple[int, int] | None:
    """(cell index, number of cells) of the gold point in the current screenshot, or None."""
    if not sample.gold or "x" not in sample.gold[0] or "y" not in sample.gold[0]:
        return None
    return cell_at(int(sample.gold[0]["x"]), int(sample.gold[0]["y"]), sample.screen, cell)


class PointingObjective(SoftCoordObjective):
    """``SoftCoordObjective`` plus ``weight`` x the pointing loss on the image tokens."""

    name = "sft-point"

    def __init__(
        self,
        vlm: Any,
        config: SFTConfig,
        cache: PromptCache,
        sigma: float,
        thought: bool = True,
        weight: float = 1.0,
        copy_weight: float = 0.0,
        look_weight: float = 0.0,
        read_weight: float = 0.0,
        match_weight: float = 0.0,
        word_weight: float = 0.0,
        word_head: str | Sequence[str] | None = None,
        choice_weight: float = 0.0,
        text_length_weight: float = 0.0,
        text_length_tasks: Sequence[str] | None = None,
        text_length_kind: str = "length",
        text_length_head: str | None = None,
        half_weight: float = 0.0,
    ) -> None:
        super().__init__(vlm, config, cache, sigma, thought)
        self.weight = weight
        self.half_weight = half_weight
        self.half_token = None
        self.half_term: Any = None  # the last pointing_loss's half-row term
        if half_weight > 0:  # the half-row term (pixelpilot.vlm.pointer, round 49)
            from pixelpilot.errors import ConfigError
            from pixelpilot.vlm.pointer import HALF_TOKENS, half_token

            self.half_token = half_token(vlm.tokenizer)
            if self.half_token is None:
                raise ConfigError(f"half_weight needs one of {', '.join(HALF_TOKENS)} "
                                  "in the model's vocabulary")  # fmt: skip
        self.copy_weight = copy_weight
        self.look_weight = look_weight
        self.match_weight = match_weight
        self.choice_weight = choice_weight
        self.copier = None
        if max(copy_weight, look_weight, match_weight, choice_weight) > 0:  # supervised attention
            from pixelpilot.train.copying import CopyAttention

            self.copier = CopyAttention(vlm)
        self.read_weight = read_weight
        self.reader = None
        if read_weight > 0:  # reading the screen's texts (train/reading.py)
            from pixelpilot.train.reading import ReadingObjective

            self.reader = ReadingObjective(vlm)
        self.matcher = None
        if match_weight > 0:  # matching the screen's texts with the instruction's
            from pixelpilot.train.reading import MatchPairs

            self.matcher = MatchPairs(vlm)
        self.word_weight = word_weight
        self.keepers = []
        if word_weight > 0:  # the reading warm-up's heads (one or two), kept through SFT
            from pixelpilot.errors import ConfigError
            from pixelpilot.train.reading import WordKeeper

            if not word_head:
                raise ConfigError("word_weight > 0 needs the reading warm-up's word_head")
            heads = [word_head] if isinstance(word_head, str) else list(word_head)
            if len(heads) > 2:
                raise ConfigError("the word term keeps one or two warm-up heads")
            # the first head's figures are word_*; a second (length_tasks, round 39) length_*
            names = ("word", "length")[: len(heads)]
            self.keepers = [WordKeeper(vlm, h, n) for h, n in zip(heads, names, strict=True)]
        self.text_length_weight = text_length_weight
        self.lengths = None
        if text_length_weight > 0:  # the quoted word's length on the text side (round 47)
            from pixelpilot.train.reading import QuotedLength

            self.lengths = QuotedLength(
                vlm, text_length_tasks, text_length_kind, head=text_length_head
            )
        self.image_token = int(vlm.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))
        self.pad_token = int(vlm.tokenizer.pad_token_id)
        self.cell = token_grid(vlm.processor)[0]  # pixels a side of one image token
        self._seen: dict[str, Any] = {}
        if (
            weight > 0
            or self.keepers
            or any(x is not None for x in (self.copier, self.reader, self.lengths))
        ):
            # the decoder's input ids, last hidden states
            model = vlm.model
            model.register_forward_pre_hook(self._inputs, with_kwargs=True)
            model.model.language_model.register_forward_hook(self._hidden)

    def _inputs(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        self._seen["input_ids"] = kwargs.get("input_ids")

    def _hidden(self, module: Any, args: Any, output: Any) -> None:
        self._seen["hidden"] = output[0] if isinstance(output, tuple) else output.last_hidden_state

    def pointing_loss(self, samples: Sequence[Any]) -> tuple[Any, dict[str, float]]:
        """Mean pointing cross-entropy over the samples that have a cell, and its figures:
        ``point_accuracy``, the fraction of them whose top-scoring token is the right cell,
        and, over those whose step records a target box, ``point_in_box``, the fraction whose
        top cell's centre lies inside it (where a click at that centre would land); over those
        whose gold cell holds one of two or more recorded texts (``label_choice``), the share
        whose top cell among the texts' cells is the gold one, beside ``label_chance``, what a
        uniform pick among those cells would score: does the head choose the named label?"""
        import torch

        from pixelpilot.eval.matching import point_in_box

        ids, hidden = self._seen.get("input_ids"), self._seen.get("hidden")
        head = self.vlm.model.get_output_embeddings().weight
        weight = head[self.pad_token]
        losses, hits, boxed, inside = [], 0, 0, 0
        halves: list[Any] = []  # the half-row term's losses at the gold cells
        half_hits, half_inside = 0, 0
        chosen: list[tuple[bool, float]] = []  # (top text cell is the gold one, 1 / text cells)
        for b, sample in enumerate(samples):
            cell = target_cell(sample, self.cell)
            if cell is None or ids is None or hidden is None:
                continue
            positions = (ids[b] == self.image_token).nonzero().flatten()
            index, count = cell
            if len(positions) < count or index >= count:
                continue
            tokens = hidden[b, positions[-count:]].float()  # this screenshot's image tokens
            scores = tokens @ weight.float()
            target = torch.tensor(index, device=scores.device)
            losses.append(torch.nn.functional.cross_entropy(scores[None], target[None]))
            top = int(scores.argmax())
            hits += top == index
            lower = None
            if self.half_token is not None:  # is the gold point in its cell's lower half?
                half = tokens @ head[self.half_token].float()
                below = float(int(sample.gold[0]["y"]) % self.cell >= self.cell / 2)
                halves.append(torch.nn.functional.binary_cross_entropy_with_logits(
                    half[index], torch.tensor(below, device=half.device)))  # fmt: skip
                said = half.detach()
                half_hits += (float(said[index]) > 0) == bool(below)
                lower = float(said[top]) > 0
            if sample.target:
                centre = cell_centre(top, sample.screen, self.cell)
                boxed, inside = boxed + 1, inside + point_in_box(centre, sample.target)
                if lower is not None:  # the centre of the top cell's chosen half
                    x, y = centre
                    y += self.cell / 4 if lower else -self.cell / 4
                    half_inside += point_in_box((x, y), sample.target)
            choice = self.label_choice(sample, scores.detach(), index)
            if choice is not None:
                chosen.append(choice)
        self._seen.clear()
        if not losses:
            return None, {}
        figures = {"point_accuracy": hits / len(losses)}
        if boxed:
            figures["point_in_box"] = inside / boxed
        if halves:
            figures["half_accuracy"] = half_hits / len(halves)
            figures["half_loss"] = float(torch.stack(halves).mean().detach())  # before weight
            if boxed:
                figures["point_in_box_half"] = half_inside / boxed
        if chosen:
            figures |= {"label_choice": sum(c for c, _ in chosen) / len(chosen),
                        "label_chance": sum(p for _, p in chosen) / len(chosen),
                        "label_steps": float(len(chosen))}  # fmt: skip
        self.half_term = torch.stack(halves).mean() if halves else None  # loss() adds it
        return torch.stack(losses).mean(), figures

    def label_choice(self, sample: Any, scores: Any, index: int) -> tuple[bool, float] | None:
        """(whether the top-scoring of the step's text cells is the gold cell ``index``, one
        over the number of text cells), or None when the step records no texts (``labels``)
        or the gold cell is not one of two or more text cells."""
        from pixelpilot.train.reading import label_cells

        labels = (getattr(sample, "meta", None) or {}).get("labels")
        if not labels:
            return None
        cells = sorted({c for c, _ in label_cells(labels, sample.screen, self.cell)[0]})
        if index not in cells or len(cells) < 2:
            return None
        best = max(cells, key=lambda c: float(scores[c]))
        return best == index, 1 / len(cells)

    def look_pairs(self, samples: Sequence[Any]) -> list[tuple[int, int, int]]:
        """(row, query, key) of the look objective: the positions that predict the x and the
        y of the answer's first point, each to the image token of the gold cell."""
        ids = self._seen.get("input_ids")
        if ids is None:
            return []
        out = []
        for b, sample in enumerate(samples):
            cell = target_cell(sample, self.cell)
            if cell is None:
                continue
            positions = (ids[b] == self.image_token).nonzero().flatten()
            index, count = cell
            if len(positions) < count or index >= count:
                continue
            key = int(positions[len(positions) - count + index])
            start = ids.shape[1] - len(self.target_ids(sample))  # left-padded: answer last
            out += [(b, start + j - 1, key) for j in self.soft_positions(sample)[:2]]
        return out

    def loss(self, samples: Sequence[Any]) -> StepLoss:
        out = super().loss(samples)
        terms = [(self.reader, self.read_weight, "read_loss"),
                 *((k, self.word_weight, f"{k.name}_loss") for k in self.keepers)]  # fmt: skip
        for reader, weight, name in terms:  # the image tokens' words (train/reading.py)
            if reader is None:
                continue
            term, figures = reader.loss(self._seen.get("input_ids"), samples)
            if term is not None:
                out.loss = out.loss + weight * term
                out.metrics[name] = float(term.detach())
                out.metrics.update(figures)
        if self.lengths is not None:
            term, figures = self.lengths.loss(self._seen.get("input_ids"), samples)
            if term is not None:
                out.loss = out.loss + self.text_length_weight * term
                out.metrics["text_length_loss"] = float(term.detach())
                out.metrics.update(figures)
        if self.matcher is not None:  # the copier is there too (match_weight > 0)
            from pixelpilot.train.reading import match_loss

            ids = self._seen.get("input_ids")
            found = self.matcher.pairs(ids, samples) if ids is not None else []
            if found:
                match, figures = match_loss(self.copier, ids, found)
                out.loss = out.loss + self.match_weight * match
                out.metrics["match_loss"] = float(match.detach())
                out.metrics.update(figures)
        if self.copier is not None:
            pairs = self.look_pairs(samples) if self.look_weight > 0 else []
            if pairs:
                look, share = self.copier.last_layer_loss(self._seen["input_ids"], pairs, LOOK_HEAD)
                out.loss = out.loss + self.look_weight * look
                out.metrics["look_loss"] = float(look.detach())
                out.metrics["look_attention"] = share
            if self.choice_weight > 0:  # which quoted string the typed answer starts
                choice, figures = self.copier.choice_loss(self._seen.get("input_ids"))
                if choice is not None:
                    out.loss = out.loss + self.choice_weight * choice
                    out.metrics["choice_loss"] = float(choice.detach())
                    out.metrics.update(figures)
            if self.copy_weight > 0:
                copy, figures = self.copier.loss(self._seen.get("input_ids"))
                if copy is not None:
                    out.loss = out.loss + self.copy_weight * copy
                    out.metrics["copy_loss"] = float(copy.detach())
                    out.metrics.update(figures)
            self.copier.clear()  # what the forward pass recorded is for this batch only
        if self.weight <= 0:
            self._seen.clear()
            return out
        point, figures = self.pointing_loss(samples)
        if point is not None:
            out.loss = out.loss + self.weight * point
            out.metrics["point_loss"] = float(point.detach())
            out.metrics.update(figures)
        if self.half_term is not None and self.half_weight > 0:
            out.loss = out.loss + self.half_weight * self.half_term
        self.half_term = None
        return out

    def validate(self, samples: Sequence[Any]) -> dict[str, float]:
        result = super().validate(samples)
        self._seen.clear()
        if self.copier is not None:
            self.copier.clear()
        for reader in (self.reader, *self.keepers, self.lengths):
            if reader is not None:
                reader.clear()
        return result


def train_pointing_sft(
    config: SFTConfig,
    *,
    sigma: float,
    thought: bool = True,
    weight: float = 1.0,
    copy_weight: float = 0.0,
    look_weight: float = 0.0,
    read_weight: float = 0.0,
    match_weight: float = 0.0,
    word_weight: float = 0.0,
    word_head: str | Sequence[str] | None = None,
    choice_weight: float = 0.0,
    text_length_weight: float = 0.0,
    text_length_tasks: Sequence[str] | None = None,
    text_length_kind: str = "length",
    text_length_head: str | None = None,
    half_weight: float = 0.0,
    stop_after: int | None = None,
) -> TrainResult:
    """``train_sft`` with ``PointingObjective``."""
    from pixelpilot.train.sft import train_sft

    return train_sft(
        config,
        stop_after=stop_after,
        objective=lambda vlm, cfg, cache: PointingObjective(
            vlm,
            cfg,
            cache,
            sigma,
            thought,
            weight,
            copy_weight,
            look_weight,
            read_weight,
            match_weight,
            word_weight,
            word_head,
            choice_weight,
            text_length_weight,
            text_length_tasks,
            text_length_kind,
            text_length_head,
            half_weight,
        ),
    )


def pointing_probe(
    model: str,
    data: str,
    *,
    tasks: str | None = None,
    limit: int | None = None,
    sigma: float = 25.0,
    thought: bool = False,
    batch_size: int = 4,
) -> dict[str, float]:
    """Teacher-forced figures of checkpoint ``model`` on the recorded steps under ``data``
    (no update): ``point_accuracy``, the share of steps with a gold point whose top-scoring
    image token is the gold cell, and ``look_attention``, the look head's attention on it
    (the figures the SFT stage logs on its batches), over ``steps`` steps; over the
    ``boxed_steps`` of them that record a target box, ``point_in_box``, the share whose top
    cell's centre lies inside the box; when the steps
    record their screens' words (``labels``), ``read_accuracy`` over ``read_texts`` words: the
    share whose image token's top token is one of the word's (``train/reading.py``), and
    ``label_choice`` over ``label_steps`` steps whose gold cell holds one of two or more
    texts: the share whose top cell among the texts' cells is the gold one (``label_chance``:
    a uniform pick's). A diagnosis of where a trained model looks, what it reads and whether
    it chooses the label the instruction names (docs/default-model.md)."""
    probe = _Probe(model, data, tasks, limit, sigma, thought)
    return probe.figures(probe.samples, batch_size)


def pointing_probe_by_task(
    model: str, data: str, *, tasks: str | None = None, limit: int | None = None
) -> dict[str, dict[str, float]]:
    """``pointing_probe``'s figures for each task found (at most ``limit`` steps each), with
    the checkpoint and the data loaded once."""
    probe = _Probe(model, data, tasks, None, 25.0, False)
    by_task: dict[str, list[Any]] = {}
    for sample in probe.samples:
        by_task.setdefault(sample.task, []).append(sample)
    return {t: probe.figures(s[:limit], 4) for t, s in sorted(by_task.items())}


class _Probe:
    """A checkpoint in eval mode, its pointing objective and the steps under ``data`` that
    have a gold point (``pointing_probe``)."""

    def __init__(
        self, model: str, data: str, tasks: str | None, limit: int | None, sigma: float,
        thought: bool,
    ) -> None:  # fmt: skip
        from pixelpilot.train.data import PromptCache, conversation_for, load_split, prompt_key
        from pixelpilot.train.model import load_trainable
        from pixelpilot.vlm.profiles import read_declaration

        declared = read_declaration(model)
        self.config = SFTConfig(data=data, model=model, out="(nothing written)", tasks=tasks,
                                limit=limit, prompt_kind=declared.prompt_kind,
                                history_thoughts=declared.history_thoughts)  # fmt: skip
        self.samples = [s for s in load_split(self.config).train if target_cell(s) is not None]
        self.vlm = load_trainable(self.config, "cpu")
        self.vlm.model.eval()
        cache = PromptCache(self.vlm, lambda s: conversation_for(s, self.vlm.profile, self.config),
                            None, key_extra=prompt_key(self.config))  # fmt: skip
        # a checkpoint that declares half rows is asked for them too (half_accuracy, and
        # point_in_box_half: the top cell's chosen half's centre in the box)
        halves = 1.0 if declared.pointer_rows == 2 else 0.0
        self.objective = PointingObjective(self.vlm, self.config, cache, sigma, thought, 1.0, 0.0,
                                           1.0, 1.0, half_weight=halves)  # fmt: skip

    def figures(self, samples: Sequence[Any], batch_size: int) -> dict[str, float]:
        import torch

        from pixelpilot.train.model import autocast

        totals = {"point_accuracy": 0.0, "look_attention": 0.0}
        if self.objective.half_token is not None:
            totals["half_accuracy"] = 0.0
        read, texts, inside, boxed, half_inside = 0.0, 0, 0.0, 0, 0.0
        choice, chance, chosen = 0.0, 0.0, 0
        for start in range(0, len(samples), batch_size):
            batch = samples[start : start + batch_size]
            with torch.no_grad(), autocast(self.vlm, self.config):
                metrics = self.objective.loss(batch).metrics
            for key in totals:  # each a mean over the batch's steps, all of which have a point
                totals[key] += metrics.get(key, 0.0) * len(batch)
            count = int(metrics.get("read_texts", 0))  # a mean over the batch's words
            read, texts = read + metrics.get("read_accuracy", 0.0) * count, texts + count
            count = sum(1 for s in batch if s.target)  # a mean over the batch's boxed steps
            inside, boxed = inside + metrics.get("point_in_box", 0.0) * count, boxed + count
            half_inside += metrics.get("point_in_box_half", 0.0) * count
            count = int(metrics.get("label_steps", 0))  # a mean over its steps with a choice
            choice += metrics.get("label_choice", 0.0) * count
            chance, chosen = chance + metrics.get("label_chance", 0.0) * count, chosen + count
        out = {k: v / max(1, len(samples)) for k, v in totals.items()}
        if boxed:
            out |= {"point_in_box": inside / boxed, "boxed_steps": boxed}
            if self.objective.half_token is not None:
                out["point_in_box_half"] = half_inside / boxed
        if texts:
            out |= {"read_accuracy": read / texts, "read_texts": texts}
        if chosen:
            out |= {"label_choice": choice / chosen, "label_chance": chance / chosen,
                    "label_steps": chosen}  # fmt: skip
        return {**out, "steps": len(samples)}


def launch_pointing_sft(config: SFTConfig, procs: int, **objective: Any) -> dict[str, Any]:
    """``train_pointing_sft(config, **objective)`` in ``procs`` processes on this machine
    (each a slice of every global batch of ``config.batch_size * procs``); returns the run's
    summary. Each process averages the pointing term over its own samples that have a point,
    so when some samples have none (typing steps) the step differs slightly from one
    process's on the same batch. ``objective`` is checked against ``train_pointing_sft``'s
    keywords here, before any process starts."""
    import inspect

    from pixelpilot.train.distributed import launch_spec

    inspect.signature(train_pointing_sft).bind(config, **objective)  # TypeError when off
    spec = {"config": config.to_dict(), "objective": objective}
    return launch_spec("pixelpilot.train.pointing", spec, procs, f"SFT in {procs} processes")


def _train_spec(spec: dict[str, Any]) -> dict[str, Any]:
    return train_pointing_sft(SFTConfig.from_dict(spec["config"]), **spec["objective"]).summary()


def main(argv: list[str]) -> int:
    """One process of ``launch_pointing_sft``: ``python -m pixelpilot.train.pointing SPEC``."""
    from pixelpilot.train.distributed import run_spec

    return run_spec(argv, _train_spec)


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))

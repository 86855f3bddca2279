"""Fit a read guide's head to a trained checkpoint's own image embeddings (round 53).

The reading warm-up (``pixelpilot.train.reading``) teaches its heads on the tower as it is at
the start of SFT; SFT and GRPO move the tower, and the word term keeps the heads' reading only
in part. The read guide (``pixelpilot.vlm.read_guide``) asks its heads at decoding, on the
final tower. This fits a fresh head there: the checkpoint frozen, one forward pass per labelled
screen of ``data`` (recordings whose steps carry ``labels``, the page's words and their boxes,
as the recipe's ``length-record`` stage writes them), then a map from each text's centre cell,
with the ``span`` cells each side of it in its row (``span_features``), through a hidden layer
of ``hidden`` GELU units, to the text's hashed word class (``pixelpilot.vlm.words.word_class``),
by Adam on cross-entropy.

The head keeps a row for each class its screens showed (``rows``) and names the words
(metadata ``words``): the guide answers only for those, where a hashed class alone may be a
taught word's and an unseen word's at once. On run 60's GRPO checkpoint and its 5,200
click-link screens, the guided top cell lands on the named link on 0.88 of 280 unseen screens
with a span of 2 and 256 hidden units, 0.85 with no hidden layer, 0.72 with the warm-up's heads
and 0.56 with the pointer alone (``scripts/link-choice-probe``; docs/default-model.md, round
53). A tenth of the screens is held out for the accuracy it reports.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pixelpilot.train.reading import label_cells

FIT_HEAD_FILE = "fit-head.safetensors"  # the recipe's fitted head, inside the checkpoint


@contextlib.contextmanager
def _threads(count: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``count`` inside the block (unchanged for None or 0), the
    caller's setting restored after it."""
    import torch

    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def labelled_screens(data: str | Path) -> list[Any]:
    """One sample per distinct screenshot of ``data``'s recordings that records ``labels``."""
    from pixelpilot.eval.datasets import load_samples

    screens: dict[str, Any] = {}
    for sample in load_samples(data, "trajectory"):
        if (sample.meta or {}).get("labels"):
            screens.setdefault(sample.image, sample)  # the reader's path: already resolved
    if not screens:
        raise ValueError(f"{data}: no recorded step with labels to fit a read head on")
    return list(screens.values())


def screen_features(
    checkpoint: str, screens: list[Any], span: int, progress: bool = False
) -> tuple[list[Any], int]:
    """The checkpoint's span features (``span_features``) of every cell of each screen, one
    ``[cells, (2 span + 1) hidden]`` tensor a screen, and the cell side in pixels."""
    import torch
    from PIL import Image

    from pixelpilot.vlm.base import Conversation, Message
    from pixelpilot.vlm.hf import HFVLM
    from pixelpilot.vlm.pointer import IMAGE_TOKEN, token_grid
    from pixelpilot.vlm.read_guide import input_embeds, span_features

    vlm = HFVLM(checkpoint, pointer_weight=0.0, read_weight=0.0)
    cell = token_grid(vlm.processor)[0]
    image_token = vlm.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(screens), desc="read fit: screens", unit="screen")
    out = []
    try:
        for start in range(0, len(screens), 16):
            batch = screens[start : start + 16]
            convs = []
            for s in batch:
                with Image.open(s.image) as image:
                    convs.append(Conversation((Message("user", "x", (image.convert("RGB"),)),)))
            inputs = vlm._inputs(convs)
            decoder = vlm.model.model.language_model  # its inputs only: it does not run
            with torch.inference_mode(), input_embeds(decoder, stop=True) as seen:
                vlm.model(**inputs)
            for b, sample in enumerate(batch):
                cols, rows = -(-sample.screen[0] // cell), -(-sample.screen[1] // cell)
                positions = (inputs["input_ids"][b] == image_token).nonzero().flatten()
                if len(positions) != rows * cols:
                    raise ValueError(f"{sample.image}: {len(positions)} image tokens, not "
                                     f"the {rows * cols} cells of its screen")  # fmt: skip
                cells = seen["inputs_embeds"][b, positions].float()
                out.append(span_features(cells, cols, span))
            if bar:
                bar.update(len(batch))
    finally:
        if bar:
            bar.close()
    return out, cell


def fit_read_head(
    checkpoint: str,
    data: str | Path,
    out: str | Path,
    *,
    span: int = 2,
    hidden: int = 256,
    epochs: int = 30,
    seed: int = 0,
    lr: float = 3e-3,
    batch: int = 2048,
    threads: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Fit a head of ``span`` on ``checkpoint``'s embeddings of ``data``'s labelled screens,
    write it to ``out`` and return its figures (texts, classes, held-out accuracy, seconds).
    ``threads``: torch's CPU threads while it runs (the caller's setting is restored)."""
    import json
    import os

    import torch
    from safetensors.torch import save_file

    from pixelpilot.vlm.words import bare_word, word_class

    if span < 0 or hidden < 0 or epochs < 1:
        raise ValueError(f"a read fit needs span >= 0, hidden >= 0 and epochs >= 1, not "
                         f"{span}, {hidden} and {epochs}")  # fmt: skip
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    screens = labelled_screens(data)
    with _threads(threads):
        features, cell = screen_features(checkpoint, screens, span, progress)
    rows, classes, shown, held = [], [], set(), []
    order = torch.randperm(len(screens)).tolist()
    held_screens = set(order[: len(screens) // 10])
    for i, (f, sample) in enumerate(zip(features, screens, strict=True)):
        for index, text in label_cells(sample.meta["labels"], sample.screen, cell)[0]:
            k = word_class(text)
            if k is not None:
                rows.append(f[index])
                classes.append(k)
                held.append(i in held_screens)
                shown.add(bare_word(text).lower())
    if not rows:
        raise ValueError(f"{data}: no labelled text with a word class to fit a read head on")
    x = torch.stack(rows)
    taught = sorted(set(classes))
    index = {k: i for i, k in enumerate(taught)}
    y, test = torch.tensor([index[k] for k in classes]), torch.tensor(held)
    train_rows = (~test).nonzero().flatten()
    layers = [torch.nn.Linear(x.shape[1], hidden), torch.nn.GELU()] if hidden else []
    head = torch.nn.Sequential(*layers, torch.nn.Linear(hidden or x.shape[1], len(taught)))
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    with _threads(threads):
        for _ in range(epochs):
            perm = train_rows[torch.randperm(len(train_rows))]
            for start in range(0, len(perm), batch):
                b = perm[start : start + batch]
                loss = torch.nn.functional.cross_entropy(head(x[b]), y[b])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    with torch.no_grad():
        accuracy = (
            (head(x[test]).argmax(-1) == y[test]).float().mean().item() if any(held) else None
        )
    last = head[-1]
    tensors = {"weight": last.weight, "bias": last.bias, "rows": torch.tensor(taught)}
    if hidden:
        tensors |= {"inner_weight": head[0].weight, "inner_bias": head[0].bias}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    partial = Path(out).with_name(Path(out).name + ".partial")  # a stopped write leaves no head
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(partial),
              metadata={"classes": "word", "span": str(span),
                        "words": json.dumps(sorted(shown))})  # fmt: skip
    os.replace(partial, out)
    return {"screens": len(screens), "texts": len(x), "classes": len(taught),
            "words": len(shown), "span": span, "hidden": hidden, "held_accuracy": accuracy,
            "seconds": time.perf_counter() - t0}  # fmt: skip

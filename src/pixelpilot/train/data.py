"""Training samples: the offline-evaluation adapters, filters, a split by episode, and a cache of
preprocessed prompts.

``load_split(config)`` reads DATA with ``pixelpilot.eval.datasets.load_samples`` (every format
``eval offline`` reads), keeps the steps of successful episodes (trajectories; ``--include-failed``
keeps all), the chosen tasks and action types, checks every image, and splits by episode:
``--val-fraction`` of the episodes (chosen by a hash of the episode id, so the split does not
depend on the seed or the order of files) go to validation, and no step of a validation episode
trains.

``PromptCache`` holds each sample's processor inputs (tokenised prompt, image patches), built
once from the step sample's own conversation (the one the agent and offline evaluation send)
and reused on every pass, in memory or in ``--cache DIR``.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pixelpilot.errors import DataError, ParseError
from pixelpilot.eval.datasets import Sample, load_samples
from pixelpilot.train.config import parse_task_weights


@dataclass(frozen=True)
class DataSplit:
    train: tuple[Sample, ...]
    val: tuple[Sample, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)  # what each filter kept or dropped


def _names(value: str | None) -> set[str] | None:
    if not value:
        return None
    names = {v.strip() for v in value.split(",") if v.strip()}
    return names or None


def filter_samples(samples: Sequence[Sample], config: Any) -> tuple[list[Sample], dict[str, int]]:
    """Apply the config's filters; ``DataError`` when nothing is left, saying which filter."""
    counts = {"loaded": len(samples)}
    kept = list(samples)
    if config.format == "trajectory" and not config.include_failed:
        kept = [s for s in kept if s.meta.get("episode_success", False)]  # read with the steps
        counts["successful"] = len(kept)
        if not kept:
            raise DataError(
                f"{config.data}: no step of a successful episode "
                "(pass --include-failed to train on every recorded step)"
            )
    tasks = _names(config.tasks)
    if tasks is not None:
        known = {s.task for s in samples}
        if not tasks & known:
            raise DataError(f"--tasks {config.tasks}: none in the data (it has {sorted(known)})")
        kept = [s for s in kept if s.task in tasks]
        counts["tasks"] = len(kept)
    types = _names(config.action_types)
    if types is not None:
        kept = [s for s in kept if s.gold and s.gold[0].get("type") in types]
        counts["action_types"] = len(kept)
    if not kept:
        raise DataError(f"{config.data}: no sample left after the filters ({counts})")
    if config.limit is not None:
        kept = kept[: config.limit]
    checked: set[str] = set()  # a history's images are earlier steps' own: check each once
    for s in kept:
        for image in (s.image, *(path for _, path in s.history)):
            if image not in checked:
                if not Path(image).is_file():
                    raise DataError(f"sample {s.id}: image {image} not found")
                checked.add(image)
    return kept, counts


def split_by_episode(samples: Sequence[Sample], fraction: float) -> tuple[list, list]:
    """(train, val): ``round(fraction * episodes)`` episodes (at least one when ``fraction`` > 0
    and there are two or more) go to validation, picked by a hash of the episode id."""
    episodes = sorted({s.episode for s in samples})
    if fraction <= 0 or len(episodes) < 2:
        return list(samples), []
    k = min(len(episodes) - 1, max(1, round(fraction * len(episodes))))
    ranked = sorted(episodes, key=lambda e: hashlib.sha256(e.encode()).hexdigest())
    held = set(ranked[:k])
    return [s for s in samples if s.episode not in held], [s for s in samples if s.episode in held]


def jitter_history(samples: Sequence[Sample], seed: int, margin: float = 0.1) -> list[Sample]:
    """``samples`` with each earlier click of their history moved to a random point of that
    step's recorded target box (the box shrunk by ``margin`` of its size on each side).

    A recording's history holds the expert's points, nearly always the box's centre, while an
    agent's history holds its own, which land elsewhere in the box: a policy trained only on
    the expert's numbers can key on them (docs/default-model.md, round 21). The draw is
    seeded by ``seed`` and the sample's id, so it does not depend on the order of files; a
    history step without a recorded box (or not a single-point click) keeps its text."""
    boxes = {(s.episode, s.step): s.target for s in samples if s.target}
    out: list[Sample] = []
    for sample in samples:
        if not sample.history:
            out.append(sample)
            continue
        rng = random.Random(f"{seed}:{sample.id}")
        history = []
        for i, (text, image) in enumerate(sample.history):
            box = boxes.get((sample.episode, i))
            history.append((_jittered(text, box, sample, rng, margin) if box else text, image))
        out.append(replace(sample, history=tuple(history)))
    return out


def _jittered(text: str, box: Any, sample: Sample, rng: random.Random, margin: float) -> str:
    from pixelpilot.agent.sample import parse_answer
    from pixelpilot.tools.actions import Action
    from pixelpilot.tools.grammar import format_response

    try:
        response = parse_answer(text, sample.coords, sample.screen)
    except (ParseError, ValueError):
        return text
    if len(response.actions) != 1:
        return text
    action = response.actions[0].to_dict()
    if "x" not in action or "y" not in action:
        return text
    x1, y1, x2, y2 = box
    mx, my = margin * (x2 - x1), margin * (y2 - y1)
    action |= {"x": round(rng.uniform(x1 + mx, x2 - mx)), "y": round(rng.uniform(y1 + my, y2 - my))}
    moved = Action.from_dict(action)
    return format_response(response.thought, [moved], sample.coords, sample.screen)


COVERED_OFF = 0.3  # a click this far from its box's centre (of the half-size) is off-centre


def covered_click(sample: Sample) -> bool:
    """Whether ``sample``'s gold is one click that lies off its recorded target box's centre
    by more than ``COVERED_OFF`` of the box's half-size on an axis. The experts click the
    visible point of the target nearest its centre, so such a step shows a target that
    something covers: click-test-2's ONE under TWO (docs/default-model.md, round 46)."""
    if sample.target is None or len(sample.gold) != 1:
        return False
    action = sample.gold[0]
    if action.get("type") != "click" or "x" not in action or "y" not in action:
        return False
    x1, y1, x2, y2 = sample.target
    half_w, half_h = max(1.0, (x2 - x1) / 2), max(1.0, (y2 - y1) / 2)
    off = max(abs(action["x"] - (x1 + x2) / 2) / half_w, abs(action["y"] - (y1 + y2) / 2) / half_h)
    return off > COVERED_OFF


def weigh_tasks(train: Sequence[Sample], config: Any) -> list[Sample]:
    """``train`` with every step of a task ``--task-weights`` names repeated that many times,
    and every covered click (``covered_click``) ``--covered-weight`` times more (in place, so
    the order of the file stays and the epoch's permutation mixes them); ``DataError`` for a
    task the training steps do not have."""
    weights = parse_task_weights(config.task_weights)
    missing = sorted(set(weights) - {s.task for s in train})
    if missing:
        raise DataError(f"--task-weights {missing[0]}: no training step of that task in "
                        f"{config.data}")  # fmt: skip
    covered = getattr(config, "covered_weight", 1)
    return [
        s
        for s in train
        for _ in range(weights.get(s.task, 1) * (covered if covered_click(s) else 1))
    ]


def load_split(config: Any) -> DataSplit:
    """The training and validation samples of ``config`` (see the module docstring)."""
    samples = load_samples(config.data, config.format)
    if config.history_jitter:
        samples = jitter_history(samples, config.seed)
    kept, counts = filter_samples(samples, config)
    train, val = split_by_episode(kept, config.val_fraction)
    train = weigh_tasks(train, config)
    counts |= {"train": len(train), "val": len(val)}
    return DataSplit(tuple(train), tuple(val), counts)


def batches(n: int, size: int, seed: int, start: int = 0) -> Iterator[tuple[int, list[int]]]:
    """Endless ``(epoch, indices)`` global batches over ``n`` samples: each epoch is a seeded
    permutation (seed, epoch), cut into batches of ``size``; a last short batch is completed
    from the next epoch's order. ``start`` skips that many batches (exact resume)."""
    order: list[tuple[int, int]] = []
    epoch = 0
    produced = 0
    while True:
        while len(order) < size:
            perm = list(range(n))
            random.Random(f"{seed}:{epoch}").shuffle(perm)
            order += [(epoch, i) for i in perm]
            epoch += 1
        chunk, order = order[:size], order[size:]
        if produced >= start:
            yield chunk[0][0], [i for _, i in chunk]
        produced += 1


class PromptCache:
    """Each sample's processor inputs, computed once (in memory, or on disk under ``directory``).

    ``build(sample)`` makes the conversation (the step sample's own); ``vlm.encode_prompt`` turns
    it into tensors. Disk entries are keyed by the model's processor files, the sample id, its
    images' sizes and modification times, and ``key_extra`` (prompt kind and options).
    The entries kept in memory take at most ``memory_mib`` MiB (None: no bound); past it a
    sample is encoded again (or read from ``directory``) each time it comes: a screenshot's
    float32 patches are about 0.45 MB, so 18,000 samples would otherwise hold 8 GB.
    """

    def __init__(
        self,
        vlm: Any,
        build: Any,
        directory: str | None = None,
        key_extra: str = "",
        memory_mib: float | None = None,
    ) -> None:
        self.vlm = vlm
        self.build = build
        self.directory = Path(directory) if directory else None
        self.key_extra = key_extra
        self._memory: dict[str, dict[str, Any]] = {}
        self._budget = None if memory_mib is None else memory_mib * 2**20
        self.memory_bytes = 0
        self.hits = 0
        self.misses = 0
        self._model_key = _processor_key(Path(getattr(vlm, "path", ".")))
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)

    def _key(self, sample: Sample) -> str:
        parts = [self._model_key, self.key_extra, sample.id]
        for image in (sample.image, *(p for _, p in sample.history)):
            st = Path(image).stat()
            parts.append(f"{image}:{st.st_size}:{st.st_mtime_ns}")
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]

    def get(self, sample: Sample) -> dict[str, Any]:
        if sample.id in self._memory:
            self.hits += 1
            return self._memory[sample.id]
        import torch

        path = self.directory / f"{self._key(sample)}.pt" if self.directory else None
        if path is not None and path.is_file():
            enc = torch.load(path, weights_only=True)
            self.hits += 1
        else:
            enc = self.vlm.encode_prompt(self.build(sample))
            self.misses += 1
            if path is not None:
                tmp = path.with_suffix(".tmp")
                torch.save(enc, tmp)
                tmp.replace(path)
        size = sum(v.numel() * v.element_size() for v in enc.values() if hasattr(v, "numel"))
        if self._budget is None or self.memory_bytes + size <= self._budget:
            self._memory[sample.id] = enc
            self.memory_bytes += size
        return enc


def _processor_key(path: Path) -> str:
    digest = hashlib.sha256(str(path.resolve()).encode())
    for name in ("preprocessor_config.json", "tokenizer.json", "chat_template.jinja"):
        f = path / name
        if f.is_file():
            digest.update(f.read_bytes())
    return digest.hexdigest()[:16]


# --- the step sample's prompt, target and parsing (one home: pixelpilot.agent.sample) ------


def conversation_for(sample: Sample, profile: Any, config: Any) -> Any:
    """The conversation the agent would send at this step."""
    return sample.conversation(
        profile,
        kind=config.prompt_kind,
        step_instructions=config.step_instructions,
        history_thoughts=config.history_thoughts,
    )


def prompt_key(config: Any) -> str:
    """What besides the sample decides its prompt (the prompt cache's ``key_extra``)."""
    key = f"{config.prompt_kind}:{config.step_instructions}:{config.history_thoughts}"
    key += f":images{config.history_images}" if config.history_images else ""
    return key + (f":jitter{config.seed}" if config.history_jitter else "")


def target_for(sample: Sample, profile: Any) -> str:
    """The SFT target: the recorded answer in the model's frame and pixel limits."""
    return sample.target_text(profile)


def parse_for(sample: Sample, text: str, profile: Any) -> Any:
    """A model answer for this step as a ``Response`` in screen pixels (``ParseError``)."""
    return sample.parse(text, profile)

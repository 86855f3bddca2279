"""Offline (step-level) evaluation: recorded steps in, model answers scored by the matching rules.

``evaluate_offline(config)`` loads samples through an adapter (``pixelpilot.eval.datasets``),
gets one answer per sample (a model, the recorded ``expert`` answers, or a ``--predictions``
file), appends every answer to ``predictions.jsonl`` in the output directory as it comes (so an
interrupted run continues where it stopped), scores the answers and writes the reports.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelpilot.errors import ConfigError, ParseError
from pixelpilot.eval.datasets import Sample, load_samples
from pixelpilot.eval.matching import MatchRules, match_step
from pixelpilot.eval.metrics import step_metrics
from pixelpilot.jsonl import RecordLog
from pixelpilot.tools.frames import CoordinateFrame

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class OfflineConfig:
    """One offline evaluation; the CLI's flags map one to one onto these fields."""

    data: str  # a file or directory in ``format``
    format: str = "trajectory"  # one of pixelpilot.eval.datasets.FORMATS
    model: str | None = None  # checkpoint / URL / "expert" (recorded answers) / None: default
    predictions: str | None = None  # a JSONL of {"id", "response"[, "frame"]} to score instead
    frame: str | None = None  # frame of the predictions file's answers (default: uitars-1.5)
    out: str | None = None  # output directory: predictions.jsonl, scores.jsonl, reports
    limit: int | None = None  # evaluate the first N samples only
    batch_size: int = 4  # conversations per ``generate`` call
    max_new_tokens: int = 128
    prompt_kind: str | None = None  # computer, mobile, grounding; None: the model's declared
    language: str | None = None  # the language the model thinks in; None: the model's declared
    step_instructions: bool = False  # AndroidControl "low" level: append the step instruction
    rules: MatchRules = field(default_factory=MatchRules)
    allow_outside_images: bool = False  # dataset image paths may leave the data file's folder


def conversation(
    sample: Sample,
    profile: Any,
    kind: str | None = None,
    low: bool = False,
    language: str | None = None,
) -> Any:
    """The conversation the agent would send at this step (``StepSample.conversation``: the
    agent's own prompt builder, history rewritten into the model's frame)."""
    return sample.conversation(profile, kind=kind, language=language, step_instructions=low)


def gold_answer(sample: Sample) -> dict[str, Any]:
    """The recorded answer of a sample (trajectories, in the recording's frame and limits),
    else its gold actions written out in screen pixels."""
    if sample.gold_response:
        return _answer(sample.id, sample.gold_response, sample.coords)
    from pixelpilot.tools import format_response

    text = format_response(None, sample.gold_actions(), "pixels")
    return _answer(sample.id, text, CoordinateFrame("pixels"))


def _answer(sample_id: str, text: str, coords: CoordinateFrame) -> dict[str, Any]:
    """A predictions record: the answer with the frame and limits it is written in."""
    return {
        "id": sample_id,
        "response": text,
        "frame": coords.name,
        "frame_limits": coords.limits(),
    }


def answer_coords(answer: dict[str, Any], default: CoordinateFrame) -> CoordinateFrame:
    """The frame (with limits) a predictions record's answer is written in."""
    if not answer.get("frame"):
        return default
    return CoordinateFrame.from_record(answer["frame"], answer.get("frame_limits"))


def read_predictions(path: str | Path) -> dict[str, dict[str, Any]]:
    """``id -> record`` of a predictions JSONL (``pixelpilot.jsonl.read_records``: a
    cut-short last line is skipped, any other bad line is an error with file:line)."""
    from pixelpilot.errors import ConfigError, FileFormatError
    from pixelpilot.jsonl import read_records

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: predictions file not found", option="--predictions")
    out: dict[str, dict[str, Any]] = {}
    for number, obj in read_records(path):
        if "id" not in obj or not isinstance(obj.get("response"), str):
            raise FileFormatError(path, number, "need an object with 'id' and 'response'")
        out[str(obj["id"])] = obj
    return out


def _batches(items: list[Sample], size: int) -> Iterator[list[Sample]]:
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + max(1, size)]


def _generate(
    config: OfflineConfig, vlm: Any, todo: list[Sample], sink: Any, progress: Progress | None
) -> float:
    """Answer ``todo`` in batches, appending each record to ``sink``; returns model seconds."""
    from pixelpilot.vlm.base import SamplingParams

    params = SamplingParams(max_new_tokens=config.max_new_tokens, temperature=0.0)
    coords = vlm.profile.coords
    seconds = 0.0
    done = 0
    for batch in _batches(todo, config.batch_size):
        convs = [
            s.conversation(
                vlm.profile,
                kind=config.prompt_kind,
                language=config.language,
                step_instructions=config.step_instructions,
            )
            for s in batch
        ]
        start = time.perf_counter()
        gens = vlm.generate(convs, params)
        seconds += time.perf_counter() - start
        for sample, gen in zip(batch, gens, strict=True):
            sink(_answer(sample.id, gen.text, coords))
        done += len(batch)
        if progress:
            progress(done, len(todo))
    return seconds


def score(
    samples: list[Sample],
    answers: dict[str, dict[str, Any]],
    rules: MatchRules,
    default_frame: str | CoordinateFrame = "uitars-1.5",
) -> list[dict[str, Any]]:
    """One scored row per sample that has an answer (see ``metrics.step_metrics``). Each
    answer is read in the frame *and* resize limits it was written in (its record's
    ``frame``/``frame_limits``, else ``default_frame``), exactly as the agent reads it online."""
    default = CoordinateFrame.of(default_frame)
    rows = []
    for s in samples:
        answer = answers.get(s.id)
        if answer is None:
            continue
        actions: list[Any] | None = None
        error = None
        try:
            coords = answer_coords(answer, default)
            actions = list(s.parse(answer["response"], coords).actions) or None
            if actions is None:
                error = "no action"
        except (ParseError, ValueError) as exc:
            error = str(exc)
        result = match_step(actions, list(s.gold), s.target, s.screen, rules)
        rows.append(
            {
                "id": s.id,
                "episode": s.episode,
                "task": s.task,
                "step": s.step,
                "gold_type": s.gold[0]["type"],
                "pred_type": actions[0].type if actions else None,
                "format_error": actions is None,
                "error": error,
                **result.to_dict(),
                "pred": [a.to_dict() for a in actions] if actions else None,
                "gold": list(s.gold),
                "breakdown": dict(s.meta.get("breakdown") or {}),  # extra groupings (metrics)
            }
        )
    return rows


def _model_answers(
    config: OfflineConfig, vlm: Any, samples: list[Sample], out: Path | None, progress: Any
) -> tuple[dict[str, dict[str, Any]], float]:
    """Answers of the model, continuing ``OUT/predictions.jsonl`` when it exists."""
    answers: dict[str, dict[str, Any]] = {}
    pred_path = out / "predictions.jsonl" if out else None
    if pred_path is not None:
        pred_path.parent.mkdir(parents=True, exist_ok=True)
        if pred_path.exists():
            answers = read_predictions(pred_path)
    todo = [s for s in samples if s.id not in answers]
    handle = RecordLog(pred_path, fsync=False) if pred_path else None  # drops a cut-short tail

    def sink(record: dict[str, Any]) -> None:
        answers[record["id"]] = record
        if handle is not None:
            handle.append(record)

    try:
        seconds = _generate(config, vlm, todo, sink, progress)
    finally:
        if handle is not None:
            handle.close()
    return answers, seconds


def evaluate_offline(
    config: OfflineConfig, vlm: Any = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Run one offline evaluation and return its report (also written to ``config.out``)."""
    spec = None
    if vlm is None and not config.predictions and config.model != "expert":
        from pixelpilot.agent.factory import PolicySpec

        spec = PolicySpec.parse(config.model)  # no --model: the bundled default model
        spec.check()  # before any data is read: a model that cannot run fails first
        spec = spec.resolved()
    samples = load_samples(
        config.data, config.format, allow_outside_images=config.allow_outside_images
    )
    if config.limit is not None:
        samples = samples[: max(0, config.limit)]
    out = Path(config.out) if config.out else None
    started = time.perf_counter()
    model_seconds = 0.0
    if config.predictions:
        answers = read_predictions(config.predictions)
        if not answers:
            raise ConfigError(
                f"{config.predictions}: no predictions in the file", option="--predictions"
            )
        model_name = f"predictions:{Path(config.predictions).name}"
    elif config.model == "expert":
        answers = {s.id: gold_answer(s) for s in samples}
        model_name = "expert"
    else:
        if spec is not None:
            from pixelpilot.agent.factory import load_model

            vlm, model_name = load_model(spec), spec.label  # the one constructor path
        else:
            model_name = config.model or getattr(getattr(vlm, "profile", None), "name", "model")
        answers, model_seconds = _model_answers(config, vlm, samples, out, progress)
    rows = score(samples, answers, config.rules, config.frame or "uitars-1.5")
    report = {
        "kind": "offline",
        "data": str(config.data),
        "format": config.format,
        "model": model_name,
        "rules": vars(config.rules),
        "missing_answers": len(samples) - len(rows),
        **step_metrics(rows),
        "timing": {"seconds": time.perf_counter() - started, "model_seconds": model_seconds},
    }
    if out is not None:
        from pixelpilot.eval.report import write_reports

        out.mkdir(parents=True, exist_ok=True)
        with open(out / "scores.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        write_reports(report, out)
    return report

"""Trajectories <-> a Hugging Face ``datasets.Dataset`` (one row per step, images included).

``to_dataset(root)`` turns every episode under ``root`` into rows with convenient columns
(``episode``, ``task``, ``seed``, ``index``, ``image``, ``instruction``, ``response``,
``thought``, ``actions``, ``reward``) and the exact JSON of the step, the header and the end
line, so ``from_dataset(ds, out)`` writes the episodes back as they were (PNG bytes are copied,
not re-encoded). ``datasets`` is imported on first use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pixelpilot.agent.trajectory import (
    FILE_NAME,
    Step,
    TrajectoryWriter,
    iter_episodes,
    read_trajectory,
)
from pixelpilot.errors import DependencyNotInstalled, TrajectoryFormatError


def _datasets() -> Any:
    try:
        import datasets
    except ImportError as exc:
        raise DependencyNotInstalled("datasets", extra="train") from exc
    return datasets


def features() -> Any:
    ds = _datasets()
    return ds.Features(
        {
            "episode": ds.Value("string"),
            "task": ds.Value("string"),
            "seed": ds.Value("int64"),
            "index": ds.Value("int32"),
            "image": ds.Image(),
            "instruction": ds.Value("string"),
            "response": ds.Value("string"),
            "thought": ds.Value("string"),
            "actions": ds.Value("string"),  # JSON list of canonical actions
            "reward": ds.Value("float64"),
            "step": ds.Value("string"),  # the step's JSON line
            "header": ds.Value("string"),  # the episode's header line
            "end": ds.Value("string"),  # the end line, or null while unfinished
        }
    )


def to_dataset(root: str | Path) -> Any:
    """Every step of every episode under ``root`` as a ``datasets.Dataset``."""
    ds = _datasets()
    root = Path(root)
    rows: list[dict[str, Any]] = []
    for episode in iter_episodes(root):
        name = episode.directory.relative_to(root).as_posix() if episode.directory != root else "."
        header = json.dumps(episode.header, ensure_ascii=False)
        end = json.dumps(episode.end, ensure_ascii=False) if episode.end is not None else None
        for step in episode.steps:
            rows.append(
                {
                    "episode": name,
                    "task": episode.task,
                    "seed": episode.seed if isinstance(episode.seed, int) else -1,
                    "index": step.index,
                    "image": {"bytes": episode.screenshot_path(step).read_bytes(), "path": None},
                    "instruction": str(episode.header.get("instruction") or ""),
                    "response": step.response,
                    "thought": step.thought,
                    "actions": json.dumps(list(step.actions)),
                    "reward": step.reward,
                    "step": json.dumps(step.to_dict(), ensure_ascii=False),
                    "header": header,
                    "end": end,
                }
            )
    if not rows:
        raise TrajectoryFormatError(str(root), None, "no episodes with steps found here")
    return ds.Dataset.from_list(rows, features=features())


def from_dataset(dataset: Any, out: str | Path) -> list[Path]:
    """Write the episodes of a dataset made by ``to_dataset`` under ``out``; their folders."""
    out = Path(out)
    columns = set(dataset.column_names)
    missing = {"episode", "image", "step", "header", "end"} - columns
    if missing:
        raise TrajectoryFormatError("<dataset>", None, f"missing columns {sorted(missing)}")
    plain = dataset.cast_column("image", _datasets().Image(decode=False))
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in plain:
        groups.setdefault(row["episode"], []).append(row)
    written = []
    for name, rows in groups.items():
        rows.sort(key=lambda r: json.loads(r["step"])["index"])
        directory = out / name
        if (directory / FILE_NAME).exists():
            raise TrajectoryFormatError(str(directory), None, "a trajectory already exists here")
        header = json.loads(rows[0]["header"])
        writer = TrajectoryWriter(directory, header)
        for row in rows:
            writer.append_png(Step.from_dict(json.loads(row["step"])), row["image"]["bytes"])
        end = json.loads(rows[0]["end"]) if rows[0]["end"] else None
        if end is not None:
            rest = {k: v for k, v in end.items() if k not in ("success", "total_reward")}
            writer.finish(end["success"], end["total_reward"], **rest)
        writer.close()
        read_trajectory(directory)  # what was written must read back
        written.append(directory)
    return written

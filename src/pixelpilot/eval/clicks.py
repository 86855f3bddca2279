"""Where a run's clicks land, measured against an expert's targets on the same episodes.

A success rate says that a click task failed, not how. Given an online run (``pixelpilot eval
online ... --out RUN``) and expert recordings of the same tasks and seeds (``pixelpilot record
TASKS --expert --seed S --out REC``), whose first step records the target's box, each
episode's first click falls in one of four classes:

- ``hit``: inside the expert's target box, edges included (as the offline scorer and the
  GRPO point reward count it). The box is the element's whole rectangle: a click on its very
  edge, or on a part another element covers (click-test-2's buttons can overlap), counts as
  a hit and can still miss on the page;
- ``ended``: outside it, and the episode ended there without success (the page took the
  click as an answer: another button, another link);
- ``nothing``: outside it, and the episode went on (the click landed on no target);
- ``no_click``: the first step did not click (another action, or an answer that did not
  parse).

The precision figures use the first clicks ``near`` the expert's point (within ``near``
pixels on both axes, so the click was meant for the target): the mean offset ``dx``, ``dy``
from the expert's point, and the mean ``dy`` in each third of the screen's height. A model
that regresses towards the middle of the screen shows ``dy`` falling from positive at the top
to negative at the bottom; on links one line of text high (11 pixels on MiniWoB) such a bias
is the difference between a hit and a miss. ``repeats`` counts later clicks within ``near / 4``
pixels of the click before them: a policy that clicks the same spot again after it changed
nothing. Episodes are paired by (task, seed); the expert's first click must be a point.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelpilot.agent.trajectory import Episode, iter_episodes
from pixelpilot.errors import ConfigError
from pixelpilot.eval.matching import point_in_box

CLASSES = ("hit", "ended", "nothing", "no_click")
BANDS = ("top", "middle", "bottom")  # thirds of the screen's height, by the expert's point
POINT_TYPES = ("click", "left_double", "right_single", "long_press")


@dataclass
class TaskClicks:
    """The click figures of one task (``click_report``'s rows)."""

    episodes: int = 0
    success: int = 0
    first: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    offsets: list[tuple[float, float, str]] = field(default_factory=list)  # dx, dy, band
    later: int = 0
    repeats: int = 0

    def summary(self) -> dict[str, Any]:
        near = self.offsets
        return {
            "episodes": self.episodes,
            "success": self.success / self.episodes if self.episodes else 0.0,
            "first_click": dict(self.first),
            "near": len(near),
            "mean_dx": _mean(o[0] for o in near),
            "mean_dy": _mean(o[1] for o in near),
            "median_distance": (
                statistics.median((o[0] ** 2 + o[1] ** 2) ** 0.5 for o in near) if near else None
            ),
            "mean_dy_by_band": {b: _mean(o[1] for o in near if o[2] == b) for b in BANDS},
            "later_clicks": self.later,
            "repeats": self.repeats,
        }


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return round(statistics.fmean(values), 2) if values else None


def _points(episode: Episode) -> list[tuple[int, float, float]]:
    """(step index, x, y) of every point action of the episode, in order."""
    out = []
    for step in episode.steps:
        for action in step.actions:
            if action.get("type") in POINT_TYPES and "x" in action and "y" in action:
                out.append((step.index, float(action["x"]), float(action["y"])))
    return out


def _expert_targets(expert: str | Path) -> dict[tuple[str, int], tuple[Any, ...]]:
    """(task, seed) -> (x, y, box, screen height) of each expert episode's first click."""
    targets: dict[tuple[str, int], tuple[Any, ...]] = {}
    for episode in iter_episodes(expert):
        if not episode.steps or episode.seed is None:
            continue
        first = episode.steps[0]
        points = [a for a in first.actions if a.get("type") in POINT_TYPES and "x" in a]
        if first.target is None or not points:
            continue
        screen = episode.header.get("screen") or [0, 0]
        height = float(screen[1]) if len(screen) == 2 and screen[1] else None
        x, y = float(points[0]["x"]), float(points[0]["y"])
        targets[(episode.task, int(episode.seed))] = (x, y, first.target, height)
    return targets


def _band(y: float, height: float | None) -> str:
    if not height:
        return "middle"
    return BANDS[min(2, max(0, int(3 * y / height)))]


def click_report(run: str | Path, expert: str | Path, near: float = 28.0) -> dict[str, Any]:
    """Per task, where the run's first clicks landed against the expert's targets, how
    precise the clicks near the target were, and how often a click repeated the one before
    (module docstring). ``ConfigError`` when no episode of ``run`` pairs with one of
    ``expert``; ``TrajectoryFormatError`` on a malformed trajectory."""
    if not near > 0:
        raise ConfigError(f"near must be a positive number of pixels, not {near!r}")
    targets = _expert_targets(expert)
    if not targets:
        raise ConfigError(f"{expert}: no expert episode whose first step clicks a known target")
    tasks: dict[str, TaskClicks] = {}
    unpaired = 0
    for episode in iter_episodes(run):
        key = (episode.task, int(episode.seed)) if episode.seed is not None else None
        if key not in targets:
            unpaired += 1
            continue
        gx, gy, box, height = targets[key]
        row = tasks.setdefault(episode.task, TaskClicks())
        row.episodes += 1
        row.success += episode.success
        points = _points(episode)
        if not points or points[0][0] != episode.steps[0].index:
            row.first["no_click"] += 1
        else:
            _, x, y = points[0]
            step = episode.steps[0]
            if point_in_box((x, y), box):
                row.first["hit"] += 1
            elif step.terminated and not episode.success:
                row.first["ended"] += 1
            else:
                row.first["nothing"] += 1
            if abs(x - gx) <= near and abs(y - gy) <= near:
                row.offsets.append((x - gx, y - gy, _band(gy, height)))
        for (_, x0, y0), (_, x1, y1) in zip(points, points[1:], strict=False):
            row.later += 1
            row.repeats += abs(x1 - x0) <= near / 4 and abs(y1 - y0) <= near / 4
    if not tasks:
        raise ConfigError(
            f"{run}: no episode pairs with an expert episode of {expert} (same task and seed)"
        )
    return {
        "run": str(run),
        "expert": str(expert),
        "near": near,
        "unpaired": unpaired,
        "tasks": {task: row.summary() for task, row in sorted(tasks.items())},
    }


def format_clicks(report: dict[str, Any]) -> str:
    """``click_report``'s figures as a Markdown table."""

    def num(value: float | None) -> str:
        return "-" if value is None else f"{value:+.1f}"

    lines = [
        f"first clicks of {report['run']} against the expert's targets in {report['expert']}",
        "",
        "| task | episodes | success | hit | ended | nothing | no click | near | dx | dy "
        "| dy top / middle / bottom | repeats |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task, row in report["tasks"].items():
        first, bands = row["first_click"], row["mean_dy_by_band"]
        lines.append(
            f"| {task} | {row['episodes']} | {row['success']:.2f} | {first['hit']} | "
            f"{first['ended']} | {first['nothing']} | {first['no_click']} | {row['near']} | "
            f"{num(row['mean_dx'])} | {num(row['mean_dy'])} | "
            f"{' / '.join(num(bands[b]) for b in BANDS)} | "
            f"{row['repeats']} of {row['later_clicks']} |"
        )
    if report["unpaired"]:
        lines += ["", f"{report['unpaired']} episodes had no expert episode to pair with."]
    return "\n".join(lines)

"""Image-blind baseline policies: what a learned model has to beat.

- ``RandomClicks``: a click at a uniformly random screen pixel every step (seeded by the
  episode's instruction and seed, so a run is repeatable).
- ``MissFirst``: another policy whose first action is such a random click (recovery data).
- ``UsualSpot``: per task and step index, the one action that is right most often in the
  training recordings, whatever the screenshot shows: the click point that lies inside the
  most recorded target boxes, the most frequent typed text. A model that learned "where the
  target usually is" but not how to find it scores about this.

``RandomClicks`` and ``UsualSpot`` answer in the ``pixels`` frame and need no model.
``usual_spot_table(DATA)`` builds the table from recorded expert trajectories (use training
seeds only); ``random_clicks()`` and ``usual_spot()`` are ``module:function`` factories for
the agent factory (``PolicySpec.parse(None, factory="pixelpilot.agent.baselines:usual_spot")``, or
``OnlineConfig(policy_factory=...)``); ``usual_spot`` reads its table from the JSON file named
by ``PIXELPILOT_USUAL_SPOT`` (a worker process inherits it).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

from pixelpilot.envs.base import BasePolicy, Observation, PolicyOutput
from pixelpilot.errors import ConfigError
from pixelpilot.tools.frames import CoordinateFrame

TABLE_ENV = "PIXELPILOT_USUAL_SPOT"
PIXELS = CoordinateFrame("pixels")


def _answer(
    action: dict[str, Any], screen: tuple[int, int], frame: CoordinateFrame = PIXELS
) -> str:
    from pixelpilot.tools.actions import Action
    from pixelpilot.tools.grammar import format_response

    return format_response(None, [Action.from_dict(action)], frame, screen)


class RandomClicks(BasePolicy):
    """A click at a uniformly random pixel of the screenshot, every step, written in
    ``coords`` (pixels unless told otherwise)."""

    def __init__(self, seed: int = 0, coords: CoordinateFrame = PIXELS) -> None:
        self.seed = seed
        self.coords = coords
        self.rng = random.Random(seed)
        self.instruction = ""
        self.started = False

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.started = False

    def act(self, observation: Observation) -> PolicyOutput:
        if not self.started:  # seeded by the episode (its seed when the env tells it)
            episode = f"{self.instruction}:{observation.extras.get('seed', '')}"
            digest = hashlib.sha256(f"{self.seed}:{episode}".encode()).hexdigest()
            self.rng = random.Random(int(digest[:16], 16))
            self.started = True
        width, height = observation.size
        action = {"type": "click", "x": self.rng.randrange(width), "y": self.rng.randrange(height)}
        return PolicyOutput(_answer(action, observation.size, self.coords))


class MissFirst(BasePolicy):
    """``policy`` after a miss: the episode's first action is a seeded random click (as
    ``RandomClicks`` picks it), marked ``perturbed`` and written in ``policy``'s frame; every
    later action is ``policy``'s. Recorded with an expert it shows the states a model meets
    after its own missed click, and the way on from them (``record_tasks(miss_first=True)``)."""

    def __init__(self, policy: Any, seed: int = 0) -> None:
        self.policy = policy
        self.coords = policy.coords
        self.prompt_family = policy.prompt_family
        self.miss = RandomClicks(seed, policy.coords)
        self.first = True

    def reset(self, instruction: str) -> None:
        self.policy.reset(instruction)
        self.miss.reset(instruction)
        self.first = True

    def note(self, text: str) -> None:
        self.policy.note(text)

    def act(self, observation: Observation) -> PolicyOutput:
        if not self.first:
            return self.policy.act(observation)
        self.first = False
        return replace(self.miss.act(observation), perturbed=True)


class UsualSpot(BasePolicy):
    """The most often right action of the task at this step index, image unseen.

    ``table``: ``{task: [action dict per step index]}`` (``usual_spot_table``). A task or step
    the table does not know gets ``finished()``."""

    coords = PIXELS

    def __init__(self, table: dict[str, list[dict[str, Any]]]) -> None:
        self.table = table
        self.steps = 0

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self.steps = 0

    def act(self, observation: Observation) -> PolicyOutput:
        plan = self.table.get(str(observation.extras.get("task", "")), [])
        index, self.steps = self.steps, self.steps + 1
        action = plan[index] if index < len(plan) else {"type": "finished", "content": ""}
        return PolicyOutput(_answer(action, observation.size))


def best_point(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int]:
    """The pixel inside the most boxes (ties: the one nearest the boxes' mean centre)."""
    xs = sorted({b[0] for b in boxes} | {b[2] for b in boxes})
    ys = sorted({b[1] for b in boxes} | {b[3] for b in boxes})
    cx = sum((b[0] + b[2]) / 2 for b in boxes) / len(boxes)
    cy = sum((b[1] + b[3]) / 2 for b in boxes) / len(boxes)
    best: tuple[int, float, tuple[int, int]] = (-1, 0.0, (round(cx), round(cy)))
    for x in xs:
        for y in ys:
            hits = sum(b[0] <= x <= b[2] and b[1] <= y <= b[3] for b in boxes)
            key = (hits, -((x - cx) ** 2 + (y - cy) ** 2))
            if key > best[:2]:
                best = (hits, key[1], (x, y))
    return best[2]


def usual_spot_table(data: str | os.PathLike[str]) -> dict[str, list[dict[str, Any]]]:
    """``{task: [action per step index]}`` from the successful recorded episodes under
    ``data``: clicks at ``best_point`` of the recorded target boxes (the mean click when
    boxes are missing), other actions by majority."""
    from pixelpilot.agent.trajectory import iter_episodes

    by_step: dict[str, dict[int, list[tuple[dict[str, Any], Any]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for episode in iter_episodes(data):
        if not episode.success:
            continue
        for step in episode.steps:
            if step.actions and not step.perturbed:
                by_step[episode.task][step.index].append((dict(step.actions[0]), step.target))
    table: dict[str, list[dict[str, Any]]] = {}
    for task, steps in sorted(by_step.items()):
        table[task] = [_majority(steps[i]) for i in sorted(steps)]
    return table


def _majority(rows: list[tuple[dict[str, Any], Any]]) -> dict[str, Any]:
    kind = Counter(a["type"] for a, _ in rows).most_common(1)[0][0]
    rows = [(a, t) for a, t in rows if a["type"] == kind]
    if "x" in rows[0][0] and "y" in rows[0][0]:
        boxes = [tuple(t) for _, t in rows if t is not None]
        if boxes:
            x, y = best_point(boxes)  # type: ignore[arg-type]
        else:
            x = round(sum(a["x"] for a, _ in rows) / len(rows))
            y = round(sum(a["y"] for a, _ in rows) / len(rows))
        return {**rows[0][0], "x": x, "y": y}
    texts = Counter(json.dumps(a, sort_keys=True) for a, _ in rows)
    return json.loads(texts.most_common(1)[0][0])


def write_table(table: dict[str, list[dict[str, Any]]], path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return out


# --- factories for ``module:function`` ------------------------------------------------------


def random_clicks() -> RandomClicks:
    return RandomClicks()


def usual_spot() -> UsualSpot:
    """``UsualSpot`` over the table in the file ``$PIXELPILOT_USUAL_SPOT``."""
    name = os.environ.get(TABLE_ENV)
    if not name or not Path(name).is_file():
        raise ConfigError(
            f"usual_spot needs ${TABLE_ENV} naming a table file "
            "(pixelpilot.agent.baselines.usual_spot_table + write_table)"
        )
    table = json.loads(Path(name).read_text(encoding="utf-8"))
    if not isinstance(table, dict):
        raise ConfigError(f"{name}: a usual-spot table is a JSON object of task -> actions")
    return UsualSpot(table)

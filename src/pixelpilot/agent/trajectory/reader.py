"""Reading trajectories: ``Episode``, ``TrajectoryReader`` (every field checked),
``read_trajectory`` and ``iter_episodes``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixelpilot import untrusted
from pixelpilot.agent.trajectory.step import FILE_NAME, FORMAT, HEADER_KEYS, VERSION, Step
from pixelpilot.errors import TrajectoryFormatError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image


@dataclass(frozen=True)
class Episode:
    """A read trajectory. ``end`` is the end line (``None`` while unfinished)."""

    directory: Path
    header: dict[str, Any]
    steps: tuple[Step, ...]
    end: dict[str, Any] | None
    incomplete_last_line: bool = False
    # ``directory`` resolved, as the screenshots' checks resolved it (None without a step)
    real_directory: Path | None = None

    @property
    def finished(self) -> bool:
        return self.end is not None

    @property
    def task(self) -> str:
        return str(self.header.get("task", ""))

    @property
    def seed(self) -> int | None:
        return self.header.get("seed")

    @property
    def success(self) -> bool:
        return bool(self.end and self.end.get("success"))

    @property
    def total_reward(self) -> float:
        if self.end is not None:
            return float(self.end.get("total_reward", 0.0))
        return float(sum(s.reward for s in self.steps))

    def screenshot_path(self, step: Step | int) -> Path:
        step = self.steps[step] if isinstance(step, int) else step
        return self.directory / step.screenshot

    def load_screenshot(self, step: Step | int) -> Image.Image:
        """The step's screenshot as an RGB PIL image (read from disk on each call);
        ``TrajectoryFormatError`` when the file is not a readable image."""
        from PIL import Image

        path = self.screenshot_path(step)
        try:
            with Image.open(path) as im:
                return im.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            problem = " ".join(str(exc).split()) or type(exc).__name__
            raise TrajectoryFormatError(path, None, f"not a readable image ({problem})") from None


class TrajectoryReader:
    """Reads and checks one episode directory (or its ``trajectory.jsonl``)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        path = Path(directory)
        if path.is_file():
            path = path.parent
        self.directory = path
        self.path = path / FILE_NAME
        self._real_directory: Path | None = None  # resolved at the first screenshot

    def read(self) -> Episode:
        if not self.path.is_file():
            raise TrajectoryFormatError(str(self.path), None, "no trajectory file")
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        cut_short = bool(lines[-1])  # a non-empty tail has no newline: the write was cut short
        if not cut_short:
            lines.pop()
        header: dict[str, Any] | None = None
        steps: list[Step] = []
        end: dict[str, Any] | None = None
        incomplete = False
        for number, line in enumerate(lines, start=1):
            last = number == len(lines)
            try:
                obj = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                if last and cut_short and number > 1:
                    incomplete = True
                    break
                raise self._error(number, f"not valid JSON ({exc})") from None
            except RecursionError:
                raise self._error(number, "JSON nested too deeply") from None
            if not isinstance(obj, dict):
                raise self._error(number, "a line must be a JSON object")
            if header is None:
                header = self._check_header(obj, number)
            elif end is not None:
                raise self._error(number, "line after the end line")
            elif obj.get("end") is True:
                end = self._check_end(obj, number)
            else:
                steps.append(self._check_step(obj, number, len(steps)))
        if header is None:
            raise self._error(1, "empty file: no header line")
        return Episode(self.directory, header, tuple(steps), end, incomplete, self._real_directory)

    def __iter__(self) -> Iterator[Step]:
        return iter(self.read().steps)

    def _error(self, line: int, problem: str) -> TrajectoryFormatError:
        return TrajectoryFormatError(str(self.path), line, problem)

    def _check_header(self, obj: dict[str, Any], number: int) -> dict[str, Any]:
        if obj.get("format") != FORMAT:
            raise self._error(
                number, f"header 'format' must be {FORMAT!r}, got {obj.get('format')!r}"
            )
        if obj.get("version") != VERSION:
            raise self._error(
                number, f"unsupported version {obj.get('version')!r} (reads {VERSION})"
            )
        missing = [k for k in HEADER_KEYS if k not in obj]
        if missing:
            raise self._error(number, f"header misses {', '.join(missing)}")
        try:
            _check_header_fields(obj)
        except ValueError as exc:
            raise self._error(number, f"bad header: {exc}") from None
        return obj

    def _check_step(self, obj: dict[str, Any], number: int, expected: int) -> Step:
        try:
            step = Step.from_dict(obj)
        except (ValueError, TypeError) as exc:
            raise self._error(number, f"bad step: {exc}") from None
        if step.index != expected:
            raise self._error(number, f"step index {step.index}, expected {expected}")
        if self._real_directory is None:
            self._real_directory = self.directory.resolve()
        try:
            path = untrusted.file_in(self._real_directory, step.screenshot)
            if path is not None:
                untrusted.png_size(path)
        except ValueError as exc:
            raise self._error(number, f"screenshot {step.screenshot}: {exc}") from None
        if path is None:
            raise self._error(number, f"screenshot {step.screenshot} is missing")
        return step

    def _check_end(self, obj: dict[str, Any], number: int) -> dict[str, Any]:
        if not isinstance(obj.get("success"), bool):
            raise self._error(number, "end line needs a boolean 'success'")
        reward = obj.get("total_reward")
        if isinstance(reward, bool) or not isinstance(reward, (int, float)):
            raise self._error(number, "end line needs a numeric 'total_reward'")
        return obj


def _check_header_fields(obj: dict[str, Any]) -> None:
    """Types of the header fields readers use; ``ValueError`` names the field."""
    untrusted.screen_size(obj["screen"])
    seed = obj["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"'seed' must be an integer or null, got {seed!r}")
    for key in ("task", "env"):
        if not isinstance(obj[key], str):
            raise ValueError(f"{key!r} must be text, got {obj[key]!r}")
    for key in ("model", "frame", "instruction"):
        untrusted.text_or_none(obj, key)
    if not isinstance(obj.get("env_kwargs") or {}, dict):
        raise ValueError("'env_kwargs' must be an object")


def read_trajectory(directory: str | os.PathLike[str]) -> Episode:
    """Read one episode directory; ``TrajectoryFormatError`` if it is malformed."""
    return TrajectoryReader(directory).read()


def is_episode_dir(path: str | os.PathLike[str]) -> bool:
    return (Path(path) / FILE_NAME).is_file()


def iter_episodes(root: str | os.PathLike[str]) -> Iterator[Episode]:
    """Every episode under ``root`` (``root`` itself if it is one), in sorted path order."""
    root = Path(root)
    if is_episode_dir(root):
        yield read_trajectory(root)
        return
    if not root.is_dir():
        raise TrajectoryFormatError(str(root), None, "not a directory")
    for path in sorted(p.parent for p in root.rglob(FILE_NAME)):
        yield read_trajectory(path)

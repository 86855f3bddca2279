"""The trajectory format: one episode = one directory, append-only.

```
episode-dir/
  trajectory.jsonl   line 1: header {"format": "pixelpilot.trajectory", "version": 1, ...}
                     one line per step (``Step.to_dict``)
                     last line when finished: {"end": true, "success", "total_reward", ...}
  step-0000.png ...
```

Guarantees (see ``docs/trajectories.md``):

- a step's screenshot file is complete on disk (written to a temporary name, then renamed)
  before its JSON line is written; each line is flushed and fsynced, so a process killed at any
  moment leaves every completed step readable;
- a reader rejects a malformed file with ``TrajectoryFormatError(path, line, problem)``;
- an episode without the end line reads as unfinished (``Episode.finished is False``);
- a *final* line that is not valid JSON and has no newline is a write cut short by a crash:
  it is dropped and the episode reads as unfinished with ``Episode.incomplete_last_line`` set
  (a final line that parses but lost only its newline is kept). Invalid JSON anywhere else,
  or in a header, is an error.

A trajectory file is untrusted input (it may come from anyone). The reader checks the type of
every field it hands on: header ``screen`` is two positive integers, ``seed`` an integer or
null, ``env_kwargs`` an object; every action is a valid canonical action (coordinates become
integers); ``target`` is four finite numbers; a screenshot is a plain file name inside the
episode folder (no path, no ``..``, no symlink out of it) holding a PNG within the size
limits of ``pixelpilot.untrusted``. Anything else is a ``TrajectoryFormatError``; nothing from
the file reaches a process, a path or HTML unchecked.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixelpilot import untrusted
from pixelpilot.errors import TrajectoryFormatError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

FORMAT = "pixelpilot.trajectory"
VERSION = 1
FILE_NAME = "trajectory.jsonl"
HEADER_KEYS = ("task", "env", "seed", "model", "frame", "screen", "started_at")
STEP_KEYS = (
    "index",
    "screenshot",
    "response",
    "thought",
    "reflection",
    "actions",
    "reward",
    "terminated",
    "truncated",
    "info",
    "timing",
    "target",
    "error",
)


def screenshot_name(index: int) -> str:
    """File name of step ``index``'s screenshot: ``step-0003.png``."""
    return f"step-{index:04d}.png"


@dataclass(frozen=True)
class Step:
    """One recorded step: what the policy saw (screenshot), said, did, and what it got.

    ``actions`` are canonical Action dicts in screen pixels; ``target`` is the ground-truth box
    ``[x1, y1, x2, y2]`` of the acted-on element when known (experts); ``error`` says what went
    wrong (a parse error, an action the env refused) when something did. ``extra`` keeps keys
    this version does not know, so a newer writer's files survive a round trip.
    """

    index: int
    screenshot: str
    response: str = ""
    thought: str | None = None
    reflection: str | None = None
    actions: tuple[dict[str, Any], ...] = ()
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict)
    target: tuple[int, int, int, int] | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "screenshot": self.screenshot,
            "response": self.response,
            "thought": self.thought,
            "reflection": self.reflection,
            "actions": [dict(a) for a in self.actions],
            "reward": float(self.reward),
            "terminated": bool(self.terminated),
            "truncated": bool(self.truncated),
            "info": self.info,
            "timing": self.timing,
            "target": list(self.target) if self.target is not None else None,
            "error": self.error,
        }
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @property
    def perturbed(self) -> bool:
        """The action was injected to teach recovery, not chosen (``PolicyOutput.perturbed``)."""
        return self.extra.get("perturbed") is True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        """Build a step from its JSON form; ``ValueError`` names the offending key."""
        if not isinstance(data, dict):
            raise ValueError(f"a step must be a JSON object, got {type(data).__name__}")
        for key in ("index", "screenshot"):
            if key not in data:
                raise ValueError(f"step has no {key!r}")
        index = data["index"]
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"'index' must be a non-negative integer, got {index!r}")
        untrusted.file_name(data["screenshot"])
        actions = untrusted.actions(data.get("actions"))
        reward = data.get("reward", 0.0)
        if isinstance(reward, bool) or not isinstance(reward, (int, float)):
            raise ValueError(f"'reward' must be a number, got {reward!r}")
        if not math.isfinite(reward):
            raise ValueError(f"'reward' must be finite, got {reward!r}")
        for key in ("info", "timing"):
            if not isinstance(data.get(key) or {}, dict):
                raise ValueError(f"{key!r} must be an object")
        untrusted.flag(data, "perturbed")  # kept in extra, but only as a JSON boolean
        return cls(
            index=index,
            screenshot=data["screenshot"],
            response=untrusted.text_or_none(data, "response") or "",
            thought=untrusted.text_or_none(data, "thought"),
            reflection=untrusted.text_or_none(data, "reflection"),
            actions=actions,
            reward=float(reward),
            terminated=untrusted.flag(data, "terminated"),
            truncated=untrusted.flag(data, "truncated"),
            info=dict(data.get("info") or {}),
            timing=dict(data.get("timing") or {}),
            target=untrusted.box(data.get("target")),
            error=untrusted.text_or_none(data, "error"),
            extra={k: v for k, v in data.items() if k not in STEP_KEYS},
        )


def _json_line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, default=_json_default, allow_nan=False) + "\n"


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return repr(value)


class TrajectoryWriter:
    """Writes one episode directory.

    ``TrajectoryWriter(directory, header)`` creates the directory and writes the header line;
    ``append(step, screenshot)`` writes the screenshot file, then the step's line;
    ``finish(success, total_reward, **extra)`` writes the end line and closes the file.

    With ``background=True`` screenshots are encoded and lines written by one worker thread, in
    the order they were appended, so the "file first, then line" order still holds on disk;
    ``append`` then returns at once and ``flush()``/``finish()``/``close()`` wait for the queue;
    the image is encoded later, so it must not be modified after ``append``.
    A step is on disk only once the worker wrote it. ``png_compress_level`` trades file size for
    encoding time (1 is several times faster than PIL's default of 6 on screenshots).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        header: dict[str, Any],
        *,
        png_compress_level: int = 1,
        background: bool = False,
        fsync: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.path = self.directory / FILE_NAME
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise TrajectoryFormatError(
                self.directory, None, "a file is where the episode folder goes"
            ) from None
        if self.path.exists():
            raise TrajectoryFormatError(str(self.path), None, "a trajectory already exists here")
        missing = [k for k in HEADER_KEYS if k not in header and k != "started_at"]
        if missing:
            raise ValueError(f"trajectory header misses {', '.join(missing)}")
        self.header = {
            "format": FORMAT,
            "version": VERSION,
            "started_at": _now(),
            **{k: v for k, v in header.items() if k not in ("format", "version")},
        }
        self._compress = png_compress_level
        self._fsync = fsync
        self._file = open(self.path, "x", encoding="utf-8")  # noqa: SIM115 - closed in finish
        self._write_line(self.header)
        self.steps_written = 0
        self._finished = False
        self._error: BaseException | None = None
        self._queue: queue.Queue[tuple[Step, Image.Image] | None] | None = None
        self._worker: threading.Thread | None = None
        if background:
            self._queue = queue.Queue(maxsize=8)
            self._worker = threading.Thread(target=self._drain, daemon=True)
            self._worker.start()

    def append(self, step: Step, screenshot: Image.Image) -> None:
        """Record a step: its screenshot file (``step.screenshot``) first, then its line."""
        if self._finished:
            raise RuntimeError("trajectory already finished")
        self._raise_worker_error()
        if self._queue is not None:
            self._queue.put((step, screenshot))  # not copied: do not modify it after append
        else:
            self._write_step(step, screenshot)

    def append_png(self, step: Step, data: bytes) -> None:
        """Record a step whose screenshot is already PNG-encoded (copied as it is)."""
        self.flush()
        self._write_step(step, lambda fh: fh.write(data))

    def flush(self) -> None:
        """Wait until every appended step is on disk."""
        if self._queue is not None:
            self._queue.join()
        self._raise_worker_error()

    def finish(self, success: bool, total_reward: float, **extra: Any) -> None:
        """Write the end line ``{"end": true, "success", "total_reward", "steps", ...}``."""
        self.flush()
        end = {
            "end": True,
            "success": bool(success),
            "total_reward": float(total_reward),
            "steps": self.steps_written,
            "finished_at": _now(),
            **extra,
        }
        self._write_line(end)
        self.close()
        self._finished = True

    def close(self) -> None:
        """Stop the worker and close the file (an episode closed without ``finish`` reads as
        unfinished)."""
        if self._queue is not None and self._worker is not None:
            self._queue.put(None)
            self._worker.join()
            self._queue = None
        if not self._file.closed:
            self._file.close()
        self._finished = True
        self._raise_worker_error()

    def __enter__(self) -> TrajectoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drain(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:
                    self._write_step(*item)
            except BaseException as exc:  # reported on the next call from the owner thread
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise_worker_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _write_step(self, step: Step, screenshot: Image.Image | Callable[[Any], Any]) -> None:
        """The screenshot file (written whole under a temporary name, then renamed), then the
        step's line. ``screenshot`` is an image to encode, or a function writing the bytes."""
        image_path = self.directory / step.screenshot
        tmp = image_path.with_name(image_path.name + ".tmp")
        with open(tmp, "wb") as fh:
            if callable(screenshot):
                screenshot(fh)
            else:
                screenshot.save(fh, format="PNG", compress_level=self._compress)
            if self._fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, image_path)
        self._write_line(step.to_dict())
        self.steps_written += 1

    def _write_line(self, obj: dict[str, Any]) -> None:
        self._file.write(_json_line(obj))
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class Episode:
    """A read trajectory. ``end`` is the end line (``None`` while unfinished)."""

    directory: Path
    header: dict[str, Any]
    steps: tuple[Step, ...]
    end: dict[str, Any] | None
    incomplete_last_line: bool = False

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
        return Episode(self.directory, header, tuple(steps), end, incomplete)

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
        path = self.directory / step.screenshot
        if not path.is_file():
            raise self._error(number, f"screenshot {step.screenshot} is missing")
        try:
            untrusted.inside(path, self.directory)
            untrusted.png_size(path)
        except ValueError as exc:
            raise self._error(number, f"screenshot {step.screenshot}: {exc}") from None
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

"""``TrajectoryWriter``: writes one episode directory, append-only, crash-safe."""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixelpilot.agent.trajectory.step import FILE_NAME, FORMAT, HEADER_KEYS, VERSION, Step
from pixelpilot.errors import TrajectoryFormatError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image


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

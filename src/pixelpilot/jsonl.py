"""JSON Lines record files that a run appends to and a rerun continues from.

Every resumable output (``eval online``'s ``results.jsonl``, ``eval offline``'s
``predictions.jsonl``) is read by ``read_records`` and written by ``RecordLog``. A record is
complete once its newline is on disk, so a process killed mid-write leaves at most one
cut-short final line: a last line without its newline that is not a whole JSON object. That
line, and only that one, is skipped; any other bad line is a ``FileFormatError`` naming the
file and line, because a run must not quietly resume over records it cannot read.
``RecordLog`` drops such a cut-short tail before it appends, so a resumed file never holds a
broken line in its middle.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pixelpilot.errors import FileFormatError


def _decode(raw: bytes) -> dict[str, Any]:
    """One line as a JSON object; ``ValueError`` (with the reason) otherwise."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _lines(data: bytes) -> tuple[list[bytes], bytes]:
    """The newline-terminated lines of ``data`` and its unterminated tail (may be empty)."""
    *lines, tail = data.split(b"\n")
    return lines, tail


def read_records(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` of every record in ``path``, in file order.

    Blank lines are skipped, and so is a cut-short final line (see the module docstring);
    any other line that is not a JSON object raises ``FileFormatError(path, line, problem)``.
    A missing file has no records."""
    path = Path(path)
    if not path.is_file():
        return []
    lines, tail = _lines(path.read_bytes())
    out: list[tuple[int, dict[str, Any]]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            out.append((number, _decode(raw)))
        except ValueError as exc:
            raise FileFormatError(path, number, str(exc)) from None
    if tail.strip():
        try:
            out.append((len(lines) + 1, _decode(tail)))
        except ValueError:
            pass  # a write cut short by a crash
    return out


def complete_length(path: str | Path) -> int:
    """The byte length of ``path`` without a cut-short final line (the whole file when its
    last line is complete or a whole JSON object without the newline)."""
    data = Path(path).read_bytes()
    lines, tail = _lines(data)
    if not tail.strip():
        return len(data)
    try:
        _decode(tail)
    except ValueError:
        return len(data) - len(tail)
    return len(data)


class RecordLog:
    """Append-only JSONL: one JSON object per line, flushed (and fsynced unless
    ``fsync=False``) as it is written. Opening it drops a cut-short final line left by a crash
    and ends a whole last record that lacks its newline."""

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file() and self.path.stat().st_size:
            keep = complete_length(self.path)
            with open(self.path, "r+b") as f:
                f.truncate(keep)
                if keep:
                    f.seek(keep - 1)
                    if f.read(1) != b"\n":
                        f.write(b"\n")
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def append(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

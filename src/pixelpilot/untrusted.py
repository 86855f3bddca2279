"""Checks for values read from files that anyone may have written.

A trajectory, a dataset or a predictions file is untrusted input: it may hold a path that
leads out of its folder, a number that is a string of markup, ``1e999``, a PNG header that
claims a billion pixels. Readers run every such value through one of these checks, which raise
``ValueError`` naming the field; the reader turns that into its own format error (file, line,
problem), so the CLI prints one line and exits 2.
"""

from __future__ import annotations

import math
import os
import stat
import struct
from pathlib import Path
from typing import Any

# The largest image a reader accepts: sides up to Chromium's texture limit, and an area below
# PIL's decompression-bomb warning (a PNG header can claim any size in a few bytes).
MAX_SCREEN_SIDE = 16384
MAX_SCREEN_PIXELS = 8192 * 8192
# A box coordinate further than this from the screen is not a recording's, it is a bad file.
_MAX_COORDINATE = 10 * MAX_SCREEN_SIDE
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def file_name(name: Any, what: str = "screenshot") -> str:
    """``name`` if it is a plain file name (no folder part, not ``.``/``..``, not absolute);
    ``ValueError`` otherwise. Where the file really lives is ``inside``'s check."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"{what!r} must be a file name")
    if "/" in name or "\\" in name or "\0" in name or name in (".", ".."):
        raise ValueError(f"{what!r} must be a plain file name, got {name!r}")
    return name


def inside(path: str | os.PathLike[str], folder: str | os.PathLike[str]) -> Path:
    """``path`` resolved (symlinks followed) if it lies inside ``folder`` (resolved too);
    ``ValueError`` if it leads out of it (``..``, an absolute path, a symlink pointing out)."""
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(Path(folder).resolve()):
        raise ValueError(f"{os.fspath(path)} leads out of {os.fspath(folder)}")
    return resolved


def file_in(folder: Path, name: str) -> Path | None:
    """The real path of file ``name`` (a plain name, ``file_name``'s check) in ``folder`` (a
    resolved folder); ``None`` when no regular file is there; ``ValueError`` when ``name`` is a
    symlink that leads out of ``folder``. ``inside``'s check at the cost of one ``lstat`` for a
    file that is not a symlink: a plain name in a resolved folder is already its real path,
    which matters to readers of many files (a training set's 40,000 screenshots)."""
    path = folder / name
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None
    if stat.S_ISLNK(mode):
        return inside(path, folder) if path.is_file() else None
    return path if stat.S_ISREG(mode) else None


def png_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` from a PNG file's header; ``ValueError`` if it is not a PNG or
    claims more than ``MAX_SCREEN_SIDE`` a side or ``MAX_SCREEN_PIXELS`` in all. Reads 24
    bytes: a cheap check before anything decodes the file."""
    with open(path, "rb", buffering=0) as fh:  # unbuffered: 24 bytes, not a buffer's 8 KiB
        head = fh.read(24)
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    width, height = struct.unpack(">II", head[16:24])
    check_image_size(width, height)
    return width, height


def check_image_size(width: int, height: int) -> None:
    """``ValueError`` if an image of ``width x height`` is over the readers' limits."""
    if not (0 < width <= MAX_SCREEN_SIDE and 0 < height <= MAX_SCREEN_SIDE) or (
        width * height > MAX_SCREEN_PIXELS
    ):
        raise ValueError(
            f"image of {width}x{height} pixels is over the limit ({MAX_SCREEN_SIDE} a side, "
            f"{MAX_SCREEN_PIXELS} in all)"
        )


def text_or_none(data: dict[str, Any], key: str) -> str | None:
    """``data[key]`` when it is text or missing/null; ``ValueError`` otherwise."""
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{key!r} must be text or null, got {type(value).__name__}")
    return value


def flag(data: dict[str, Any], key: str) -> bool:
    """``data[key]`` when it is a JSON boolean (missing: false); ``"false"`` is not one."""
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{key!r} must be true or false, got {value!r}")
    return value


def screen_size(value: Any, key: str = "screen") -> tuple[int, int]:
    """``[width, height]``: two integers in ``1..MAX_SCREEN_SIDE``; ``ValueError`` otherwise."""
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise ValueError(f"{key!r} must be [width, height], got {value!r}")
    for side in value:
        if isinstance(side, bool) or not isinstance(side, int) or not 0 < side <= MAX_SCREEN_SIDE:
            raise ValueError(
                f"{key!r} sides must be integers in 1..{MAX_SCREEN_SIDE}, got {value!r}"
            )
    return int(value[0]), int(value[1])


def box(value: Any, key: str = "target") -> tuple[int, int, int, int] | None:
    """``[x1, y1, x2, y2]`` of finite numbers in a sane range, rounded; null is ``None``."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != 4:
        raise ValueError(f"{key!r} must be [x1, y1, x2, y2] or null")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{key!r} must hold 4 finite numbers, got {v!r}")
        if abs(v) > _MAX_COORDINATE:
            raise ValueError(f"{key!r} coordinate out of range: {v!r}")
    x1, y1, x2, y2 = (round(v) for v in value)
    return x1, y1, x2, y2


def labels(value: Any, key: str = "labels") -> tuple[tuple[str, tuple[int, int, int, int]], ...]:
    """``[[text, x1, y1, x2, y2], ...]``: readable texts on the screen and their boxes (a
    non-empty string of at most 200 characters, then a box as ``box`` checks it); null is none."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"{key!r} must be a list of [text, x1, y1, x2, y2]")
    out = []
    for item in value:
        if not isinstance(item, list) or len(item) != 5:
            raise ValueError(f"{key!r} entries must be [text, x1, y1, x2, y2], got {item!r}")
        text = item[0]
        if not isinstance(text, str) or not text or len(text) > 200:
            raise ValueError(f"{key!r} text must be a string of 1..200 characters, got {text!r}")
        found = box(item[1:], key)
        assert found is not None
        out.append((text, found))
    return tuple(out)


def actions(value: Any) -> tuple[dict[str, Any], ...]:
    """Canonical action dicts, each checked by ``Action.from_dict`` (a known type, its fields,
    coordinates as finite non-negative numbers, rounded to integers); null is no action."""
    from pixelpilot.tools.actions import Action

    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError("'actions' must be a list of action objects")
    out = []
    for i, raw in enumerate(value):
        try:
            action = Action.from_dict(raw).to_dict()
        except (ValueError, TypeError) as exc:
            raise ValueError(f"action {i}: {exc}") from None
        out.append({k: list(v) if isinstance(v, tuple) else v for k, v in action.items()})
    return tuple(out)

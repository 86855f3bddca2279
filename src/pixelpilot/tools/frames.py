"""Coordinate frames of model answers, and their conversion to and from screen pixels.

A model does not answer in screen pixels. Three frames are known:

``uitars-1.5``
    Absolute pixels on the image the model saw, which Qwen2.5-VL's processor resized with
    ``smart_resize`` (both sides multiples of ``factor`` = 28, area within
    ``[min_pixels, max_pixels]``, aspect ratio kept). ``x_screen = x * W / W'``.
``uitars-1.0``
    Relative coordinates on a 0..1000 scale (Qwen2-VL style). ``x_screen = x * W / 1000``.
``pixels``
    Screen pixels as they are.

``to_screen`` returns floats (the caller rounds and clamps: see ``clamp_point``);
``from_screen`` returns the integer model coordinates a model in that frame would write.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

IMAGE_FACTOR = 28
MIN_PIXELS = 100 * 28 * 28
MAX_PIXELS = 16384 * 28 * 28
MAX_RATIO = 200
RELATIVE_SCALE = 1000
FRAME_NAMES: tuple[str, ...] = ("uitars-1.5", "uitars-1.0", "pixels")

Screen = tuple[int, int]


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def smart_resize(
    height: int,
    width: int,
    factor: int = IMAGE_FACTOR,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
) -> tuple[int, int]:
    """Return ``(height, width)`` of the image a Qwen2.5-VL / UI-TARS-1.5 model sees.

    Both sides are rounded to multiples of ``factor``; if the area leaves
    ``[min_pixels, max_pixels]`` the image is scaled (aspect ratio kept) and floored/ceiled to
    multiples of ``factor``. ``ValueError`` if a side is not positive or the aspect ratio
    exceeds ``MAX_RATIO`` (200), as in Qwen2.5-VL's image processor.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"screen: sides must be positive, got {width}x{height}")
    if factor <= 0 or min_pixels <= 0 or max_pixels < min_pixels:
        raise ValueError(
            f"smart_resize: need factor > 0 and 0 < min_pixels <= max_pixels, got "
            f"factor={factor}, min_pixels={min_pixels}, max_pixels={max_pixels}"
        )
    if max(height, width) / min(height, width) > MAX_RATIO:
        raise ValueError(f"screen: aspect ratio must not exceed {MAX_RATIO}, got {width}x{height}")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass(frozen=True)
class CoordinateFrame:
    """A model's coordinate frame; ``name`` is one of ``FRAME_NAMES``."""

    name: str = "uitars-1.5"
    factor: int = IMAGE_FACTOR
    min_pixels: int = MIN_PIXELS
    max_pixels: int = MAX_PIXELS

    def __post_init__(self) -> None:
        if self.name not in FRAME_NAMES:
            raise ValueError(
                f"frame: unknown coordinate frame {self.name!r} "
                f"(expected one of {', '.join(FRAME_NAMES)})"
            )

    @classmethod
    def of(
        cls,
        frame: str | CoordinateFrame,
        *,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        factor: int | None = None,
    ) -> CoordinateFrame:
        """Build a frame from its name (or copy one), overriding the resize limits if given."""
        base = frame if isinstance(frame, CoordinateFrame) else cls(str(frame))
        return cls(
            base.name,
            factor=factor if factor is not None else base.factor,
            min_pixels=min_pixels if min_pixels is not None else base.min_pixels,
            max_pixels=max_pixels if max_pixels is not None else base.max_pixels,
        )

    def equivalent(self, other: CoordinateFrame) -> bool:
        """Whether both frames map every model coordinate to the same screen pixel (the resize
        limits only matter for ``uitars-1.5``)."""
        if self.name != other.name:
            return False
        return self.name != "uitars-1.5" or self == other

    def limits(self) -> dict[str, int] | None:
        """The resize limits an answer in this frame assumes (``None`` for frames that need
        none): what a trajectory header records as ``frame_limits``."""
        if self.name != "uitars-1.5":
            return None
        return {"factor": self.factor, "min_pixels": self.min_pixels, "max_pixels": self.max_pixels}

    @classmethod
    def from_record(cls, name: object, limits: object = None) -> CoordinateFrame:
        """The frame a file names (``frame`` and optional ``frame_limits``); ``ValueError``
        naming the field when either is malformed."""
        if not isinstance(name, str):
            raise ValueError(f"frame: expected a frame name, got {type(name).__name__}")
        if limits is None:
            return cls(name)
        keys = ("factor", "min_pixels", "max_pixels")
        if not isinstance(limits, dict) or set(limits) - set(keys):
            raise ValueError(f"frame_limits: expected an object with {', '.join(keys)}")
        values = {k: limits[k] for k in keys if k in limits}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**40:
                raise ValueError(f"frame_limits.{key}: expected a positive integer")
        frame = cls.of(name, **values)
        frame.model_size((frame.factor, frame.factor))  # limits consistent (ValueError if not)
        return frame

    def model_size(self, screen: Screen) -> tuple[float, float]:
        """``(width, height)`` of the space model coordinates live in, for this screen."""
        width, height = _check_screen(screen)
        if self.name == "uitars-1.5":
            h_bar, w_bar = smart_resize(
                height, width, self.factor, self.min_pixels, self.max_pixels
            )
            return float(w_bar), float(h_bar)
        if self.name == "uitars-1.0":
            return float(RELATIVE_SCALE), float(RELATIVE_SCALE)
        return float(width), float(height)

    def to_screen(self, x: float, y: float, screen: Screen) -> tuple[float, float]:
        """Model coordinates -> screen pixels (floats, not clamped)."""
        mw, mh = self.model_size(screen)
        width, height = screen
        return x * width / mw, y * height / mh

    def from_screen(self, x: float, y: float, screen: Screen) -> tuple[int, int]:
        """Screen pixels -> the integer model coordinates of this frame."""
        mw, mh = self.model_size(screen)
        width, height = screen
        return _round_half_up(x * mw / width), _round_half_up(y * mh / height)


def _check_screen(screen: Screen) -> Screen:
    try:
        width, height = screen
    except (TypeError, ValueError):
        raise ValueError(f"screen: expected (width, height), got {screen!r}") from None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (width, height)):
        raise ValueError(f"screen: expected integer (width, height), got {screen!r}")
    if width <= 0 or height <= 0:
        raise ValueError(f"screen: sides must be positive, got {width}x{height}")
    return width, height


def to_screen(
    x: float, y: float, frame: str | CoordinateFrame, screen: Screen
) -> tuple[float, float]:
    """Model coordinates in ``frame`` -> screen pixels (floats, not clamped)."""
    return CoordinateFrame.of(frame).to_screen(x, y, screen)


def from_screen(
    x: float, y: float, frame: str | CoordinateFrame, screen: Screen
) -> tuple[int, int]:
    """Screen pixels -> integer model coordinates in ``frame``."""
    return CoordinateFrame.of(frame).from_screen(x, y, screen)


def clamp_point(x: float, y: float, screen: Screen | None) -> tuple[int, int, bool]:
    """Round a screen point and clamp it into the screen; the flag says whether it moved.

    Without a screen only negative values are clamped (to 0).
    """
    rx, ry = _round_half_up(x), _round_half_up(y)
    if screen is None:
        cx, cy = max(0, rx), max(0, ry)
    else:
        width, height = screen
        cx, cy = min(max(0, rx), width - 1), min(max(0, ry), height - 1)
    return cx, cy, (cx, cy) != (rx, ry)

"""Model families: which transformers class loads them and which ``ModelProfile`` they get.

The family is read from ``config.json``'s ``model_type``. Pixel limits come from the
checkpoint's own image processor, so the agent's ``smart_resize`` maps coordinates back with
exactly the sizes the model saw. The prompt a checkpoint was trained with is declared in a
small ``pixelpilot.json`` next to ``config.json`` (``Declaration``: prompt kind and language;
``train sft``/``train grpo`` write it), so every caller prompts the model the way it learned.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pixelpilot.errors import FileFormatError, PromptError
from pixelpilot.vlm.base import PROMPT_KINDS, PROMPT_LANGUAGES, ModelProfile

DECLARATION_FILE = "pixelpilot.json"
DECLARATION_FORMAT = "pixelpilot.model"
_DECLARATION_KEYS = (
    "format", "version", "prompt_kind", "prompt_language", "history_thoughts", "pointer_weight",
    "well_formed_points", "quoted_typing", "well_formed_actions", "history_images",
    "pointer_rows", "read_heads", "read_weight",
)  # fmt: skip


@dataclass(frozen=True)
class Family:
    model_type: str
    model_class: str  # transformers class name, or "remote" for trust_remote_code checkpoints
    frame: str
    prompt_family: str
    remote_code: bool = False
    history_images: int = 5


FAMILIES: dict[str, Family] = {
    "qwen2_5_vl": Family(
        "qwen2_5_vl", "Qwen2_5_VLForConditionalGeneration", "uitars-1.5", "uitars-1.5"
    ),
    "qwen2_vl": Family("qwen2_vl", "Qwen2VLForConditionalGeneration", "uitars-1.0", "uitars-1.0"),
    # Kimi K2.5's processor pads screenshots (it does not stretch them to a smart_resize
    # size), so UI-TARS 1.5's absolute pixels on the smart_resize'd image would not be the
    # pixels the model saw; relative thousandths hold whatever the resize did, and stay the
    # same numbers across screen sizes (docs/models.md).
    "kimi_k25": Family(
        "kimi_k25", "Kimi_K25ForConditionalGeneration", "uitars-1.0", "uitars-1.0"
    ),  # fmt: skip
    # Chameleon sees a fixed square crop, so absolute pixels mean nothing to it: it answers in
    # UI-TARS 1.0's relative frame (thousandths of the screen).
    "chameleon": Family(
        "chameleon",
        "ChameleonForConditionalGeneration",
        "uitars-1.0",
        "uitars-1.0",
        history_images=1,
    ),  # fmt: skip
    "kimi_vl": Family("kimi_vl", "remote", "uitars-1.0", "uitars-1.0", remote_code=True),
}


def family_of(model_type: str) -> Family | None:
    return FAMILIES.get(model_type)


def _pixel_limits(image_processor: Any) -> tuple[int, int] | None:
    """(min_pixels, max_pixels) of a Qwen-VL style image processor: in transformers 5 they
    live in ``size`` as shortest_edge/longest_edge (a pixel count, not an edge)."""
    lo = getattr(image_processor, "min_pixels", None)
    hi = getattr(image_processor, "max_pixels", None)
    if lo is not None and hi is not None:
        return int(lo), int(hi)
    if getattr(image_processor, "merge_size", None) is None:
        return None
    size = getattr(image_processor, "size", None)
    get = size.get if isinstance(size, dict) else (lambda k: getattr(size, k, None))
    lo, hi = get("shortest_edge"), get("longest_edge")
    return (int(lo), int(hi)) if lo is not None and hi is not None else None


def _navit_limits(ip: Any) -> dict[str, int]:
    """Pixel limits of a navit-resize processor (Kimi K2.5): images up to ``max_patches``
    patches keep their size; smaller ones are padded up to one merged token."""
    patch, merge = int(ip.patch_size), int(ip.merge_size)
    unit = patch * merge
    return {"factor": unit, "min_pixels": unit * unit, "max_pixels": int(ip.max_patches) * patch**2}


def profile_for(
    family: Family, processor: Any, name: str, declaration: Declaration | None = None
) -> ModelProfile:
    """The profile of a loaded checkpoint of ``family`` with this ``processor`` and the
    prompt its folder declares (``read_declaration``)."""
    ip = getattr(processor, "image_processor", None)
    kwargs: dict[str, Any] = {}
    limits = _pixel_limits(ip) if ip is not None else None
    if limits is not None:
        kwargs["min_pixels"], kwargs["max_pixels"] = limits
    patch = getattr(ip, "patch_size", None)
    merge = getattr(ip, "merge_size", None)
    if isinstance(patch, int) and isinstance(merge, int):
        kwargs["factor"] = patch * merge
    extra: dict[str, Any] = {"model_type": family.model_type}
    if family.model_type == "chameleon":
        crop = getattr(ip, "crop_size", None) or {}
        if crop:
            side = int(crop["height"]) * int(crop["width"])
            kwargs |= {"min_pixels": side, "max_pixels": side, "factor": 1}
        extra["image_tokens"] = getattr(processor, "image_seq_length", None)
    if family.model_type == "kimi_k25" and getattr(ip, "max_patches", None):
        kwargs |= _navit_limits(ip)
        extra["max_patches"] = int(ip.max_patches)
    if family.model_type == "kimi_vl" and getattr(ip, "in_token_limit", None):
        unit = int(ip.patch_size) * int(ip.merge_kernel_size[0])
        kwargs |= {"min_pixels": unit * unit, "max_pixels": int(ip.in_token_limit) * unit * unit}
        kwargs["factor"] = unit
    return ModelProfile(
        name=name,
        frame=family.frame,
        prompt_family=family.prompt_family,
        history_images=(declaration or Declaration()).history_images or family.history_images,
        prompt_kind=(declaration or Declaration()).prompt_kind,
        prompt_language=(declaration or Declaration()).prompt_language,
        history_thoughts=(declaration or Declaration()).history_thoughts,
        extra=extra,
        **kwargs,
    )


# --- what a checkpoint folder declares (pixelpilot.json) --------------------------------------


@dataclass(frozen=True)
class Declaration:
    """How to prompt a checkpoint: the prompt kind, the language of its thoughts, and whether
    the history shows earlier answers' Thoughts (a model trained without them sees none). A
    folder without ``pixelpilot.json`` (an older checkpoint, or one made elsewhere) gets these
    defaults, the UI-TARS computer prompt in English with Thoughts in the history.
    ``pointer_weight`` > 0 turns on pointer-guided coordinates (``pixelpilot.vlm.pointer``)
    for a checkpoint trained with the pointing objective; ``well_formed_points`` constrains
    its answers' points to the point grammar (``pixelpilot.vlm.points``); ``quoted_typing``
    constrains what a ``type`` action writes to the instruction's quoted strings
    (``pixelpilot.vlm.quoted``); ``well_formed_actions`` constrains the call after
    ``Action:`` to the action language (``pixelpilot.vlm.wellformed``). ``history_images``:
    how many screenshots each prompt shows, the current one included (``None``: the family's
    number, ``Family.history_images``), for a checkpoint trained with another number.
    ``pointer_rows`` 2: the guide splits each cell into its upper and lower half rows, for a
    checkpoint trained with the half-row term (``pixelpilot.vlm.pointer``). ``read_weight``
    > 0 with ``read_heads`` (files in the folder) weighs the pointer guide's cells by where
    those reading heads see the instruction's quoted word (``pixelpilot.vlm.read_guide``)."""

    prompt_kind: str = "computer"
    prompt_language: str = "English"
    history_thoughts: bool = True
    pointer_weight: float = 0.0
    well_formed_points: bool = False
    quoted_typing: bool = False
    well_formed_actions: bool = False
    history_images: int | None = None
    pointer_rows: int = 1
    read_heads: tuple[str, ...] = ()
    read_weight: float = 0.0

    def __post_init__(self) -> None:
        check_prompt(self.prompt_kind, self.prompt_language)
        if self.pointer_rows not in (1, 2) or isinstance(self.pointer_rows, bool):
            raise PromptError(f"pointer_rows must be 1 or 2, not {_short(self.pointer_rows)}")
        problem = _read_guide_problem(self.read_heads, self.read_weight, self.pointer_weight)
        if problem:
            raise PromptError(problem)
        if self.history_images is not None and not _count(self.history_images):
            raise PromptError(f"history_images must be a whole number >= 1, not "
                              f"{_short(self.history_images)}")  # fmt: skip

    @property
    def is_default(self) -> bool:
        return self == Declaration()

    def with_aids(self, source: Declaration) -> Declaration:
        """This declaration with ``source``'s decoding aids (the pointer weight and rows, the
        read guide, well-formed points, quoted typing and well-formed actions)."""
        return replace(self, pointer_weight=source.pointer_weight,
                       pointer_rows=source.pointer_rows, read_heads=source.read_heads,
                       read_weight=source.read_weight,
                       well_formed_points=source.well_formed_points,
                       quoted_typing=source.quoted_typing,
                       well_formed_actions=source.well_formed_actions)  # fmt: skip


def check_prompt(kind: str, language: str, where: str = "") -> None:
    """``PromptError`` for a kind or language the agent has no template for."""
    prefix = f"{where}: " if where else ""
    if kind not in PROMPT_KINDS:
        raise PromptError(
            f"{prefix}unknown prompt kind {_short(kind)} (one of {', '.join(PROMPT_KINDS)})"
        )
    if language not in PROMPT_LANGUAGES:
        raise PromptError(
            f"{prefix}unknown prompt language {_short(language)} "
            f"(one of {', '.join(PROMPT_LANGUAGES)})"
        )


def _count(value: Any) -> bool:
    """A whole number >= 1 (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_declaration(folder: str | Path) -> Declaration:
    """The ``pixelpilot.json`` of a checkpoint folder (the defaults when there is none). The
    file is untrusted: anything but an object with known keys and string values the agent has
    templates for is a one-line ``FileFormatError`` / ``PromptError`` naming the file."""
    path = Path(folder) / DECLARATION_FILE
    if not path.is_file():
        return Declaration()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FileFormatError(path, None, f"not readable JSON ({_short(str(exc))})") from None
    if not isinstance(data, dict):
        raise FileFormatError(path, None, "a model declaration is a JSON object")
    unknown = sorted(str(k) for k in data if k not in _DECLARATION_KEYS)
    if unknown:
        raise FileFormatError(
            path, None, f"unknown keys {', '.join(map(_short, unknown[:5]))} "
            f"(known: {', '.join(_DECLARATION_KEYS[2:])})",  # format, version: checked below
        )  # fmt: skip
    if data.get("format", DECLARATION_FORMAT) != DECLARATION_FORMAT or data.get("version", 1) != 1:
        raise FileFormatError(path, None, f"not a {DECLARATION_FORMAT} version 1 declaration")
    kind = data.get("prompt_kind", "computer")
    language = data.get("prompt_language", "English")
    check_prompt(kind, language, where=str(path))
    weight = data.get("pointer_weight", 0.0)
    if (
        isinstance(weight, bool)
        or not isinstance(weight, (int, float))
        or not math.isfinite(weight)
        or weight < 0
    ):
        raise FileFormatError(
            path, None, f"pointer_weight must be a number >= 0, not {_short(weight)}"
        )
    flags = {}
    for key in ("history_thoughts", "well_formed_points", "quoted_typing", "well_formed_actions"):
        flags[key] = data.get(key, key == "history_thoughts")
        if not isinstance(flags[key], bool):
            raise FileFormatError(
                path, None, f"{key} must be true or false, not {_short(flags[key])}"
            )
    images = data.get("history_images")
    if images is not None and not _count(images):
        raise FileFormatError(
            path, None, f"history_images must be a whole number >= 1, not {_short(images)}"
        )
    rows = data.get("pointer_rows", 1)
    if rows not in (1, 2) or isinstance(rows, bool):
        raise FileFormatError(path, None, f"pointer_rows must be 1 or 2, not {_short(rows)}")
    heads = data.get("read_heads", [])
    read = data.get("read_weight", 0.0)
    if not isinstance(heads, list) or not all(isinstance(h, str) for h in heads):
        raise FileFormatError(path, None, "read_heads must be a list of file names")
    problem = _read_guide_problem(tuple(heads), read, float(weight))
    if problem:
        raise FileFormatError(path, None, problem)
    return Declaration(kind, language, pointer_weight=float(weight), history_images=images,
                       pointer_rows=rows, read_heads=tuple(heads), read_weight=float(read),
                       **flags)  # fmt: skip


def _read_guide_problem(heads: tuple[str, ...], weight: Any, pointer_weight: float) -> str:
    """What is wrong with a declaration's read guide (``read_heads``, ``read_weight``), or
    ``""``: plain file names, a finite weight >= 0, heads when it is on, and the pointer guide
    it weighs."""
    from pixelpilot import untrusted

    for name in heads:
        try:
            untrusted.file_name(name, "read_heads")
        except ValueError as exc:
            return str(exc)
    if (
        isinstance(weight, bool)
        or not isinstance(weight, (int, float))
        or not (math.isfinite(weight) and weight >= 0)
    ):
        return f"read_weight must be a number >= 0, not {_short(weight)}"
    if weight and not heads:
        return "read_weight needs read_heads (the reading heads' files in the folder)"
    if weight and not pointer_weight:
        return "read_weight weighs the pointer guide's cells: it needs pointer_weight > 0"
    return ""


def write_declaration(folder: str | Path, declaration: Declaration) -> Path:
    """Write ``folder/pixelpilot.json`` (atomically) and return its path."""
    path = Path(folder) / DECLARATION_FILE
    data = {"format": DECLARATION_FORMAT, "version": 1, "prompt_kind": declaration.prompt_kind,
            "prompt_language": declaration.prompt_language,
            "history_thoughts": declaration.history_thoughts}  # fmt: skip
    if declaration.pointer_weight:
        data["pointer_weight"] = declaration.pointer_weight
    if declaration.well_formed_points:
        data["well_formed_points"] = True
    if declaration.quoted_typing:
        data["quoted_typing"] = True
    if declaration.well_formed_actions:
        data["well_formed_actions"] = True
    if declaration.history_images is not None:
        data["history_images"] = declaration.history_images
    if declaration.pointer_rows != 1:
        data["pointer_rows"] = declaration.pointer_rows
    if declaration.read_weight:
        data["read_heads"] = list(declaration.read_heads)
        data["read_weight"] = declaration.read_weight
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def declare_profile(
    folder: str | Path, profile: ModelProfile, aids: Declaration | None = None
) -> Path | None:
    """After a checkpoint of ``profile`` was written to ``folder``: declare its prompt kind,
    language, history Thoughts and (when not its family's) number of screenshots when they
    are not the defaults, or when the folder already holds a declaration (copied from the
    starting checkpoint, which must not speak for this one). ``aids``: a declaration whose
    decoding aids the checkpoint was trained under, declared with it (none otherwise)."""
    family = family_of(str(profile.extra.get("model_type", "")))
    images = profile.history_images
    declaration = Declaration(
        profile.prompt_kind, profile.prompt_language, profile.history_thoughts,
        history_images=None if family is None or images == family.history_images else images,
    )  # fmt: skip
    if aids is not None:
        declaration = declaration.with_aids(aids)
    if declaration.is_default and not (Path(folder) / DECLARATION_FILE).exists():
        return None
    return write_declaration(folder, declaration)

"""Model families: which transformers class loads them and which ``ModelProfile`` they get.

The family is read from ``config.json``'s ``model_type``. Pixel limits come from the
checkpoint's own image processor, so the agent's ``smart_resize`` maps coordinates back with
exactly the sizes the model saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pixelpilot.vlm.base import ModelProfile


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


def profile_for(family: Family, processor: Any, name: str) -> ModelProfile:
    """The profile of a loaded checkpoint of ``family`` with this ``processor``."""
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
        history_images=family.history_images,
        extra=extra,
        **kwargs,
    )

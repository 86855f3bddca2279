"""Building and loading processors, including on machines without torchvision.

transformers' Qwen2-VL / Qwen2.5-VL / Kimi K2.5 processors also hold a video processor, which
needs torchvision; this project only sends images. When torchvision is missing, the processor
is built from its tokenizer and (PIL) image processor with the video slot left empty.
transformers has no PIL image processor for some families (``Kimi_K25ImageProcessor`` is
torchvision only); ``PIL_IMAGE_PROCESSORS`` names pixelpilot's stand-in for those, picked by
the ``image_processor_type`` of the checkpoint's ``preprocessor_config.json``, so no Python
file has to travel with the checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pixelpilot.errors import ModelError

# image_processor_type -> "module:class" of a PIL/numpy processor giving the same outputs.
PIL_IMAGE_PROCESSORS = {
    "Kimi_K25ImageProcessor": "pixelpilot.vlm.kimi_k25_image:Kimi_K25ImageProcessorPil",
}


def without_video(proc_cls: type) -> type:
    """A subclass of ``proc_cls`` that accepts ``video_processor=None``."""

    class ImageOnly(proc_cls):  # type: ignore[misc, valid-type]
        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            if argument is None and argument_name == "video_processor":
                return None
            return super().check_argument_for_proper_class(argument_name, argument)

    ImageOnly.__name__ = proc_cls.__name__
    ImageOnly.__qualname__ = proc_cls.__qualname__
    return ImageOnly


def build_processor(proc_cls: type, **parts: Any) -> Any:
    try:
        return proc_cls(**parts)
    except (AttributeError, TypeError, ValueError):
        return without_video(proc_cls)(**parts)


def load_processor(path: Path, trust_remote_code: bool = False) -> Any:
    """``AutoProcessor.from_pretrained(path)``, or the image-only fallback for Qwen-VL."""
    import transformers
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    try:
        return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (AttributeError, TypeError, ValueError, ImportError) as exc:
        first = exc
    cfg_file = path / "processor_config.json"
    name = json.loads(cfg_file.read_text()).get("processor_class") if cfg_file.exists() else None
    proc_cls = getattr(transformers, name or "", None)
    if proc_cls is None:
        raise ModelError(f"cannot load the processor of {path}: {first}") from first
    tokenizer = AutoTokenizer.from_pretrained(path)
    image_processor = _image_processor(path, AutoImageProcessor)
    extra = json.loads(cfg_file.read_text())
    kwargs = {k: v for k, v in extra.items() if k in ("chat_template",)}
    if kwargs.get("chat_template") is None and getattr(tokenizer, "chat_template", None):
        kwargs["chat_template"] = tokenizer.chat_template
    return without_video(proc_cls)(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=None, **kwargs
    )


def _image_processor(path: Path, auto: Any) -> Any:
    """The checkpoint's image processor; pixelpilot's PIL one where transformers has none."""
    import importlib

    pre = path / "preprocessor_config.json"
    kind = json.loads(pre.read_text()).get("image_processor_type") if pre.exists() else None
    try:
        return auto.from_pretrained(path)
    except (ImportError, ValueError):
        if kind not in PIL_IMAGE_PROCESSORS:
            raise
    module, name = PIL_IMAGE_PROCESSORS[kind].split(":")
    return getattr(importlib.import_module(module), name).from_pretrained(path)


def save_processor(processor: Any, out: Path) -> None:
    """``processor.save_pretrained(out)``, also for an image-only Qwen-VL processor."""
    if getattr(processor, "video_processor", "absent") is not None:
        processor.save_pretrained(out)
        return
    processor.tokenizer.save_pretrained(out)
    processor.image_processor.save_pretrained(out)
    (out / "chat_template.jinja").write_text(processor.chat_template)
    config = {"processor_class": type(processor).__name__}
    (out / "processor_config.json").write_text(json.dumps(config, indent=2) + "\n")

"""Model backends behind one small protocol (see ``pixelpilot.vlm.base``).

``load(spec)`` picks the backend: a checkpoint folder -> ``HFVLM`` (family from config.json's
``model_type``), an ``http(s)://`` base URL -> ``ChatModelVLM``. Backends import torch /
transformers / langchain-openai lazily, so importing this package stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pixelpilot.errors import ModelError
from pixelpilot.vlm.base import (
    VLM,
    Conversation,
    Generation,
    Message,
    ModelProfile,
    SamplingParams,
    TrainableVLM,
)
from pixelpilot.vlm.scripted import ScriptedVLM

__all__ = [
    "VLM",
    "Conversation",
    "Generation",
    "Message",
    "ModelProfile",
    "SamplingParams",
    "ScriptedVLM",
    "TrainableVLM",
    "load",
]


def load(spec: str, **kw: Any) -> VLM:
    """A model from ``spec``: a checkpoint folder or an OpenAI-compatible base URL.

    Keyword arguments go to the backend: ``HFVLM(path, device=, dtype=, batch_size=, ...)``
    or ``ChatModelVLM.from_url(url, model_name=, timeout=, api_key=, ...)``.
    """
    spec = str(spec)
    if spec.startswith(("http://", "https://")):
        from pixelpilot.vlm.chat import ChatModelVLM

        return ChatModelVLM.from_url(spec, **kw)
    path = Path(spec).expanduser()
    if path.is_dir():
        from pixelpilot.vlm.hf import HFVLM

        return HFVLM(path, **kw)
    if path.exists():
        raise ModelError(f"{spec} is a file; pass the checkpoint folder that holds config.json")
    raise ModelError(
        f"cannot load model {spec!r}: no such checkpoint folder, and not an http(s):// URL "
        "(for a server use e.g. http://localhost:8000/v1 with a model name; build a local "
        "test model with `pixelpilot model tiny OUT`)"
    )

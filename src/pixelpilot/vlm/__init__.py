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
    or ``ChatModelVLM.from_url(url, model_name=, timeout=, api_key=, ...)``. For a folder,
    ``model_name`` (when given) only renames the profile.
    """
    spec = str(spec)
    if spec.startswith(("http://", "https://")):
        from pixelpilot.vlm.chat import ChatModelVLM

        return ChatModelVLM.from_url(spec, **kw)
    path = Path(spec).expanduser()
    if path.is_dir():
        from dataclasses import replace

        from pixelpilot.vlm.hf import HFVLM

        name = kw.pop("model_name", None)  # the CLI passes --model-name whatever the spec
        vlm = HFVLM(path, **kw)
        if name:
            vlm.profile = replace(vlm.profile, name=name)
        return vlm
    if path.exists():
        raise ModelError(f"{spec} is a file; pass the checkpoint folder that holds config.json")
    raise ModelError(
        f"cannot load model {spec!r}: no such checkpoint folder, and not an http(s):// URL "
        "(for a server use e.g. http://localhost:8000/v1 with a model name; build a local "
        "test model with `pixelpilot model tiny OUT`)"
    )

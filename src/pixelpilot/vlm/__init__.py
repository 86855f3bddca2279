"""Model backends behind one small protocol (see ``pixelpilot.vlm.base``)."""

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
]

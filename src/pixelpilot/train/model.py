"""The model being trained: a local transformers checkpoint, fully trainable or with LoRA.

``load_trainable(config, device)`` loads ``--model`` through ``pixelpilot.vlm.load`` (so every
check of the inference path applies: a folder without a processor, a text-only model, an
unsupported family are one-line errors) and refuses what cannot be trained (a served model).
The profile takes ``--prompt-kind``, so every prompt of the run and the final checkpoint's
declaration (``pixelpilot.json``) use the kind the model is trained with. The decoding aids
the checkpoint declares are turned off (training scores the model's own answers), unless
GRPO's ``--decoding-aids`` asks to sample and score with them.
Weights are float32 unless ``--dtype bfloat16``; on a GPU the forward pass runs under bfloat16
autocast. ``--lora-r R`` wraps the model with a PEFT LoRA adapter (the base frozen);
``--freeze PARTS`` keeps whole parts of the model as they are (``model_part`` names each
parameter's part from its module path).
"""

from __future__ import annotations

import contextlib
from typing import Any

from pixelpilot.errors import ConfigError, DependencyNotInstalled


def load_trainable(config: Any, device: str) -> Any:
    """An ``HFVLM`` whose ``model`` is ready to train (LoRA-wrapped when ``lora_r`` > 0)."""
    from pixelpilot.vlm import load
    from pixelpilot.vlm.hf import HFVLM

    dtype = "bfloat16" if config.dtype == "bfloat16" else "float32"
    vlm = load(config.model, device=device, dtype=dtype)
    if not isinstance(vlm, HFVLM):
        raise ConfigError(f"--model {config.model} is not a trainable checkpoint", option="model")
    from dataclasses import replace

    if config.prompt_kind is not None:  # trained with this kind: prompts and export follow it
        vlm.profile = replace(vlm.profile, prompt_kind=config.prompt_kind)
    # the history it is trained on is the one its declaration asks evaluation to show it
    vlm.profile = replace(vlm.profile, history_thoughts=config.history_thoughts)
    if config.history_images:  # and the screenshots it is trained to see
        vlm.profile = replace(vlm.profile, history_images=config.history_images)
    if getattr(config, "decoding_aids", False):  # GRPO samples as evaluation decodes
        if not vlm.aided:
            raise ConfigError(
                f"--decoding-aids: {config.model} declares no decoding aid in pixelpilot.json",
                option="decoding_aids",
            )
        if vlm.pointer is not None:  # the read guide's heads are evaluation's (vlm/read_guide.py)
            vlm.pointer.reader = None
    else:
        vlm.pointer = vlm.points = vlm.quoted = vlm.calls = None  # the model's own answers
    if config.lora_r > 0:
        vlm.model = add_lora(vlm.model, config)
    freeze(vlm.model, config.frozen_parts(), config.model)
    vlm.model.train()
    return vlm


# module names that mark a parameter's part (transformers' Qwen2-VL, Qwen2.5-VL, Kimi-VL,
# kimi_k25 and Chameleon classes); everything else is the decoder
PROJECTOR_MODULES = frozenset({"merger", "mm_projector", "multi_modal_projector"})
VISION_MODULES = frozenset({"visual", "vision_tower", "vqmodel"})


def model_part(name: str) -> str:
    """The part a parameter belongs to, from its dotted name: projector, vision or decoder.
    (Qwen's merger sits inside ``visual`` and is the projector.)"""
    modules = set(name.split("."))
    if modules & PROJECTOR_MODULES:
        return "projector"
    return "vision" if modules & VISION_MODULES else "decoder"


def freeze(model: Any, parts: tuple[str, ...], where: str = "the model") -> None:
    """Stop ``parts`` of ``model`` from training; ``ConfigError`` when a part has no parameter
    in this model (say, Chameleon's projector)."""
    found = set()
    for name, param in model.named_parameters():
        part = model_part(name)
        if part in parts:
            param.requires_grad_(False)
            found.add(part)
    for part in parts:
        if part not in found:
            raise ConfigError(f"--freeze {part}: {where} has no {part} parameters",
                              option="freeze")  # fmt: skip


def add_lora(model: Any, config: Any) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise DependencyNotInstalled("peft", extra="train") from exc
    import torch

    targets: Any = config.lora_targets
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    torch.manual_seed(config.seed)  # the adapter's initialisation
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise ConfigError(f"--lora-targets {config.lora_targets}: {exc}") from None


def autocast(vlm: Any, config: Any) -> Any:
    """bfloat16 autocast on a GPU with float32 weights (``--dtype auto``); else nothing."""
    import torch

    if config.dtype == "auto" and str(vlm.device).startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def trainable_parameters(model: Any) -> list[Any]:
    return [p for p in model.parameters() if p.requires_grad]

"""The remote-code test fixture: a tiny Kimi-VL-style ``trust_remote_code`` folder.

This is not an architecture pixelpilot offers (that is ``kimi_k25``, on transformers' own
classes); it exists to test the loading path of checkpoints that ship their own code, such as
``moonshotai/Kimi-VL-*``. The folder holds the files of ``pixelpilot/vlm/kimi_remote`` next
to its weights, with ``auto_map`` entries in config.json, preprocessor_config.json and
processor_config.json, as a Kimi-VL checkpoint does; ``HFVLM`` loads it with
``AutoModelForCausalLM`` / ``AutoProcessor`` and ``trust_remote_code=True``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixelpilot.vlm.kimi_k25 import kimi_chat_template

KIMI_SPECIAL = (
    "[BOS]", "[EOS]", "[PAD]", "<|im_end|>", "<|im_user|>", "<|im_assistant|>", "<|im_system|>",
    "<|im_middle|>", "<|media_start|>", "<|media_content|>", "<|media_end|>", "<|media_pad|>",
)  # fmt: skip
KIMI_MEDIA = "<|media_start|>image<|media_content|><|media_pad|><|media_end|>"
KIMI_CHAT_TEMPLATE = kimi_chat_template(KIMI_MEDIA)
REMOTE_FILES = (
    "configuration_kimi_vl.py",
    "modeling_kimi_vl.py",
    "processing_kimi_vl.py",
    "image_processing_kimi_vl.py",
)
IN_TOKEN_LIMIT = 12  # merged tokens per image: a 160x210 screenshot becomes 3x3


def write_kimi(out: Path, size: Any, seed: int, train_bpe: Callable[..., Any]) -> int:
    """Write the tiny Kimi-VL checkpoint to ``out``; returns its parameter count."""
    import torch
    from transformers import PreTrainedTokenizerFast

    from pixelpilot.vlm.kimi_remote.configuration_kimi_vl import KimiVLConfig
    from pixelpilot.vlm.kimi_remote.modeling_kimi_vl import KimiVLForConditionalGeneration

    out.mkdir(parents=True, exist_ok=True)
    tok = train_bpe(size.vocab, seed, list(KIMI_SPECIAL))
    ids = {t: tok.token_to_id(t) for t in KIMI_SPECIAL}
    text = {
        "vocab_size": tok.get_vocab_size(),
        "hidden_size": size.hidden,
        "intermediate_size": size.intermediate,
        "moe_intermediate_size": size.intermediate // 4,
        "num_hidden_layers": size.layers,
        "num_attention_heads": size.heads,
        "num_key_value_heads": size.heads,
        "n_shared_experts": 1,
        "n_routed_experts": 4,
        "num_experts_per_tok": 2,
        "n_group": 1,
        "topk_group": 1,
        "first_k_dense_replace": 1,
        "kv_lora_rank": size.hidden // 4,
        "q_lora_rank": None,
        "qk_rope_head_dim": 16,
        "qk_nope_head_dim": 16,
        "v_head_dim": 32,
        "max_position_embeddings": 4096,
        "bos_token_id": ids["[BOS]"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["[PAD]"],
    }
    vision = {
        "hidden_size": size.vision_hidden,
        "num_hidden_layers": size.vision_depth,
        "intermediate_size": size.vision_hidden * 2,
    }
    config = KimiVLConfig(
        vision_config=vision,
        text_config=text,
        media_placeholder_token_id=ids["<|media_pad|>"],
        bos_token_id=ids["[BOS]"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["[PAD]"],
    )
    config.architectures = ["KimiVLForConditionalGeneration"]
    config.auto_map = {
        "AutoConfig": "configuration_kimi_vl.KimiVLConfig",
        "AutoModel": "modeling_kimi_vl.KimiVLForConditionalGeneration",
        "AutoModelForCausalLM": "modeling_kimi_vl.KimiVLForConditionalGeneration",
    }
    torch.manual_seed(seed)
    model = KimiVLForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="[BOS]", eos_token="<|im_end|>", pad_token="[PAD]"
    )
    tokenizer.chat_template = KIMI_CHAT_TEMPLATE
    tokenizer.save_pretrained(out)
    _write_processor_files(out)
    return sum(p.numel() for p in model.parameters())


def _write_processor_files(out: Path) -> None:
    remote = Path(__file__).with_name("kimi_remote")
    for name in REMOTE_FILES:
        shutil.copyfile(remote / name, out / name)
    pre = {
        "image_processor_type": "KimiVLImageProcessor",
        "processor_class": "KimiVLProcessor",
        "auto_map": {
            "AutoImageProcessor": "image_processing_kimi_vl.KimiVLImageProcessor",
            "AutoProcessor": "processing_kimi_vl.KimiVLProcessor",
        },
        "patch_size": 14,
        "merge_kernel_size": [2, 2],
        "in_token_limit": IN_TOKEN_LIMIT,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    (out / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n")
    proc = {
        "processor_class": "KimiVLProcessor",
        "auto_map": {"AutoProcessor": "processing_kimi_vl.KimiVLProcessor"},
    }
    (out / "processor_config.json").write_text(json.dumps(proc, indent=2) + "\n")
    (out / "chat_template.jinja").write_text(KIMI_CHAT_TEMPLATE)

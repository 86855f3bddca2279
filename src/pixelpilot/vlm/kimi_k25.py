"""The ``kimi_k25`` family on transformers' own classes: chat format and tiny checkpoints.

transformers ships Kimi K2.5's architecture natively (``Kimi_K25ForConditionalGeneration``,
no ``trust_remote_code``): a MoonViT native-resolution encoder (patches of 14, a learned
position table resampled bicubically to each image's grid plus a 2-D rotary embedding),
2x2 patch merging, an MLP projector, and a DeepSeek-V3 decoder (multi-head latent
attention, sigmoid-scored top-k routed experts plus shared experts). ``kimi_k25_parts``
builds a small random-init one with a byte-level BPE tokenizer trained in code on the
action language, the Kimi special tokens and chat template, and the PIL image processor of
``pixelpilot.vlm.kimi_k25_image``. The folder it is saved to holds no Python file.

Sizes are chosen for training from scratch on CPU on MiniWoB screenshots (160x210 pixels,
which the processor keeps at native resolution: 12x16 patches, 48 image tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Kimi's special tokens: chat roles, media markers, and the image placeholder the processor
# expands to one token per merged patch.
KIMI_K25_SPECIAL = (
    "[BOS]", "[EOS]", "[PAD]", "[UNK]", "<|im_end|>", "<|im_user|>", "<|im_assistant|>",
    "<|im_system|>", "<|im_middle|>", "<|media_begin|>", "<|media_content|>", "<|media_end|>",
    "<|media_pad|>", "<|kimi_k25_video_placeholder|>", "<think>", "</think>",
)  # fmt: skip
KIMI_K25_MEDIA = "<|media_begin|>image<|media_content|><|media_pad|><|media_end|>"


def kimi_chat_template(media: str) -> str:
    """The Kimi chat format (``<|im_user|>user<|im_middle|>...<|im_end|>``) with ``media`` for
    each image: shared by the ``kimi_k25`` family and the ``kimi_vl`` remote-code fixture."""
    return (
        "{%- for message in messages -%}"
        "{%- if loop.first and message['role'] != 'system' -%}"
        "{{- '<|im_system|>system<|im_middle|>You are a helpful assistant<|im_end|>' -}}"
        "{%- endif -%}"
        "{%- if message['role'] == 'system' -%}{{- '<|im_system|>system<|im_middle|>' -}}"
        "{%- elif message['role'] == 'user' -%}{{- '<|im_user|>user<|im_middle|>' -}}"
        "{%- else -%}{{- '<|im_assistant|>assistant<|im_middle|>' -}}{%- endif -%}"
        "{%- if message['content'] is string -%}{{- message['content'] -}}"
        "{%- else -%}{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'image' -%}{{- '" + media + "' -}}"
        "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
        "{%- endfor -%}{%- endif -%}"
        "{{- '<|im_end|>' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}"
        "{{- '<|im_assistant|>assistant<|im_middle|>' -}}{%- endif -%}"
    )


KIMI_K25_CHAT_TEMPLATE = kimi_chat_template(KIMI_K25_MEDIA)

# A screenshot of up to 256 patches (e.g. 160x210 -> 11x15) keeps its native resolution;
# larger ones shrink to about that budget (1280x720 -> 300x169 pixels, padded to 308x196:
# 77 tokens).
TINY_MAX_PATCHES = 256


@dataclass(frozen=True)
class KimiSize:
    vision_layers: int
    vision_hidden: int
    vision_heads: int
    layers: int  # decoder layers; the first is a dense MLP, the others mixtures of experts
    hidden: int
    heads: int
    experts: int  # routed experts per MoE layer (one shared expert besides)
    top_k: int
    moe_intermediate: int
    vocab: int  # BPE merges target, before special tokens
    patch: int = 14  # pixels per patch side
    merge: int = 2  # patches per merged image token side; patch * merge is the token's cell


KIMI_SIZES = {
    "xs": KimiSize(2, 64, 2, 2, 128, 4, 4, 2, 64, 2048),
    # xs's decoder with a vision tower twice as wide (the s tower's width, xs's depth): the
    # label tasks need the tower to read (docs/default-model.md, round 17)
    "xs-wide": KimiSize(2, 128, 4, 2, 128, 4, 4, 2, 64, 2048),
    # xs with 7-pixel patches merged 4x4: the same 28-pixel tokens for the decoder, a tower
    # that sees a letter a patch instead of two (docs/default-model.md, round 22)
    "xs-fine": KimiSize(2, 64, 2, 2, 128, 4, 4, 2, 64, 2048, patch=7, merge=4),
    # xs with four decoder layers instead of two: more room between reading the instruction
    # and choosing the image token it names (docs/default-model.md, round 25)
    "xs-deep": KimiSize(2, 64, 2, 4, 128, 4, 4, 2, 64, 2048),
    # xs with its patches unmerged: 14-pixel image tokens, four times as many, so that a
    # cell holds one line of a paragraph's links (docs/default-model.md, round 26)
    "xs-14": KimiSize(2, 64, 2, 2, 128, 4, 4, 2, 64, 2048, merge=1),
    "s": KimiSize(4, 128, 4, 4, 256, 4, 8, 2, 128, 4096),
    "m": KimiSize(6, 256, 4, 6, 512, 8, 8, 2, 192, 8192),
}


def _text_config(size: KimiSize, vocab: int, ids: dict[str, int]) -> dict[str, Any]:
    rope = 16 if size.hidden <= 256 else 32
    return {
        "model_type": "deepseek_v3",
        "vocab_size": vocab,
        "hidden_size": size.hidden,
        "intermediate_size": size.moe_intermediate * 3,  # the dense first layer
        "moe_intermediate_size": size.moe_intermediate,
        "num_hidden_layers": size.layers,
        "num_attention_heads": size.heads,
        "num_key_value_heads": size.heads,
        "n_shared_experts": 1,
        "n_routed_experts": size.experts,
        "num_experts_per_tok": size.top_k,
        "n_group": 1,
        "topk_group": 1,
        "norm_topk_prob": True,
        "routed_scaling_factor": 1.0,
        "first_k_dense_replace": 1,
        "q_lora_rank": size.hidden // 2,  # as in Kimi K2 (a q_proj would clash with the
        # vision tower's weight-name conversion when transformers saves the original layout)
        "kv_lora_rank": size.hidden // 4,
        "qk_rope_head_dim": rope,
        "qk_nope_head_dim": size.hidden // size.heads - rope,
        "v_head_dim": size.hidden // size.heads,
        "max_position_embeddings": 4096,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0},
        "bos_token_id": ids["[BOS]"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["[PAD]"],
        "tie_word_embeddings": False,
    }


def _vision_config(size: KimiSize) -> dict[str, Any]:
    return {
        "patch_size": size.patch,
        "hidden_size": size.vision_hidden,
        "intermediate_size": size.vision_hidden * 2,
        "num_hidden_layers": size.vision_layers,
        "num_attention_heads": size.vision_heads,
        "pos_emb_height": 32,  # resampled to each image's grid; 32 covers 448 pixels a side
        "pos_emb_width": 32,
        "merge_kernel_size": [size.merge, size.merge],
        "rope_parameters": {"rope_type": "axial", "rope_theta": 10000.0},
    }


def kimi_k25_parts(size_name: str, seed: int, train_bpe: Any) -> tuple[Any, Any, Any]:
    """``(config, model class, processor)`` of the tiny ``kimi_k25`` checkpoint."""
    from transformers import Kimi_K25Config, Kimi_K25ForConditionalGeneration, Kimi_K25Processor

    from pixelpilot.vlm.kimi_k25_image import Kimi_K25ImageProcessorPil
    from pixelpilot.vlm.processors import build_processor
    from pixelpilot.vlm.tiny import _fast_tokenizer

    size = KIMI_SIZES[size_name]
    tok = train_bpe(size.vocab, seed, list(KIMI_K25_SPECIAL))
    ids = {t: tok.token_to_id(t) for t in KIMI_K25_SPECIAL}
    tokenizer = _fast_tokenizer(
        tok,
        KIMI_K25_CHAT_TEMPLATE,
        bos_token="[BOS]",
        eos_token="<|im_end|>",
        pad_token="[PAD]",
        unk_token="[UNK]",
    )
    config = Kimi_K25Config(
        text_config=_text_config(size, tok.get_vocab_size(), ids),
        vision_config=_vision_config(size),
        projection_hidden_size=size.vision_hidden,
        image_token_id=ids["<|media_pad|>"],
        video_token_id=ids["<|kimi_k25_video_placeholder|>"],
        vision_start_token_id=ids["<|media_begin|>"],
        vision_end_token_id=ids["<|media_end|>"],
        tie_word_embeddings=False,
        bos_token_id=ids["[BOS]"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["[PAD]"],
    )
    image_processor = Kimi_K25ImageProcessorPil(
        max_patches=TINY_MAX_PATCHES * (14 // size.patch) ** 2,  # the same pixel budget
        patch_size=size.patch,
        merge_size=size.merge,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    processor = build_processor(
        Kimi_K25Processor,
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=None,
        chat_template=KIMI_K25_CHAT_TEMPLATE,
    )
    return config, Kimi_K25ForConditionalGeneration, processor

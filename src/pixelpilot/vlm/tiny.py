"""Tiny random-init checkpoints of real VLM architectures, built locally without any download.

``build_tiny(out, arch, size, seed)`` writes an ordinary checkpoint folder (config.json,
model.safetensors, tokenizer files, preprocessor_config.json, chat template) that
``HFVLM`` loads like a real one. Architectures: Qwen2.5-VL, Qwen2-VL, Kimi K2.5
(``kimi_k25``, see ``pixelpilot.vlm.kimi_k25``) and Chameleon, on transformers' own classes;
``kimi_vl`` is not an architecture but the one remote-code fixture (size xs only) that tests
the ``trust_remote_code`` loading path. The tokenizer is a byte-level BPE trained in code on the
UI-TARS action language; the special tokens and chat format are the family's own. Builds are
deterministic for a seed and cached, so tests can ask for one in well under a second after the
first build.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pixelpilot.errors import DependencyNotInstalled, ModelError
from pixelpilot.vlm.processors import build_processor, save_processor
from pixelpilot.vlm.tokenizer_corpus import corpus

ARCHS = ("qwen2_5_vl", "qwen2_vl", "kimi_k25", "chameleon", "kimi_vl")
SIZES = ("xs", "s", "m")
BUILDER_VERSION = "3"  # bump when the built files change, to refresh caches
KIMI_K25_VERSION = "2"  # the same, for kimi_k25 checkpoints only

# Qwen2-VL family special tokens, in the family's order.
QWEN_SPECIAL = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)  # fmt: skip

# The processor limits of the tiny Qwen models: a 160x210 screenshot becomes 3x3 merged tokens.
TINY_MIN_PIXELS = 4 * 28 * 28
TINY_MAX_PIXELS = 12 * 28 * 28

QWEN_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

CHAMELEON_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] != 'system' -%}{{- message['role'].upper() + ': ' -}}{%- endif -%}"
    "{%- if message['content'] is string -%}{{- message['content'] + ' ' -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] + ' ' -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '</s>' if message['role'] == 'assistant' else '' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)


@dataclass(frozen=True)
class TinySize:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vision_hidden: int
    vision_depth: int
    vocab: int  # BPE merges target, before special/image tokens


TINY_SIZES = {
    "xs": TinySize(128, 2, 4, 2, 256, 32, 2, 2048),
    "s": TinySize(256, 4, 4, 2, 768, 64, 2, 4096),
    "m": TinySize(512, 6, 8, 2, 1536, 128, 4, 8192),
}


def _require() -> None:
    try:
        import tokenizers  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        raise DependencyNotInstalled("torch/transformers/tokenizers", extra="models") from exc


def _train_bpe(vocab: int, seed: int, special: list[str]) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        special_tokens=[],
    )
    tok.train_from_iterator(corpus(seed), trainer=trainer)
    tok.add_special_tokens(special)
    return tok


def _fast_tokenizer(tok: Any, template: str, **special: str) -> Any:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, **special)
    fast.padding_side = "left"
    fast.chat_template = template
    return fast


def _qwen_parts(arch: str, size: TinySize, seed: int) -> tuple[Any, Any, Any]:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
        Qwen2VLProcessor,
    )

    tok = _train_bpe(size.vocab, seed, list(QWEN_SPECIAL))
    tokenizer = _fast_tokenizer(
        tok, QWEN_CHAT_TEMPLATE, eos_token="<|im_end|>", pad_token="<|endoftext|>"
    )
    ids = {t: tok.token_to_id(t) for t in QWEN_SPECIAL}
    head_dim = size.hidden // size.heads
    spatial = (head_dim // 2) * 3 // 8  # Qwen's split of the rotary half: [16, 24, 24] of 64
    mrope = [head_dim // 2 - 2 * spatial, spatial, spatial]
    text = {
        "vocab_size": tok.get_vocab_size(),
        "hidden_size": size.hidden,
        "intermediate_size": size.intermediate,
        "num_hidden_layers": size.layers,
        "num_attention_heads": size.heads,
        "num_key_value_heads": size.kv_heads,
        "max_position_embeddings": 4096,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope},
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "pad_token_id": ids["<|endoftext|>"],
    }
    vision = {
        "depth": size.vision_depth,
        "hidden_size": size.vision_hidden,
        "num_heads": 2,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    common = {
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "text_config": text,
        "tie_word_embeddings": False,
    }
    if arch == "qwen2_5_vl":
        vision |= {
            "intermediate_size": size.vision_hidden * 2,
            "out_hidden_size": size.hidden,
            "window_size": 56,
            "fullatt_block_indexes": [size.vision_depth - 1],
        }
        config = Qwen2_5_VLConfig(vision_config=vision, **common)
        model_cls, proc_cls = Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    else:
        vision |= {"embed_dim": size.vision_hidden, "mlp_ratio": 2, "hidden_size": size.hidden}
        config = Qwen2VLConfig(vision_config=vision, **common)
        model_cls, proc_cls = Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=TINY_MIN_PIXELS,
        max_pixels=TINY_MAX_PIXELS,
        size={"shortest_edge": TINY_MIN_PIXELS, "longest_edge": TINY_MAX_PIXELS},
        patch_size=14,
        merge_size=2,
        temporal_patch_size=2,
    )
    processor = build_processor(
        proc_cls,
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=None,
        chat_template=QWEN_CHAT_TEMPLATE,
    )
    return config, model_cls, processor


def image_token_name(code: int) -> str:
    """Chameleon's BPE name for VQ code ``code`` (digits spelled A-J, then ``Z``)."""
    return "IMGIMG" + "".join(chr(ord("A") + int(d)) for d in str(code)) + "Z"


def _chameleon_parts(size: TinySize, seed: int) -> tuple[Any, Any, Any]:
    from transformers import (
        ChameleonConfig,
        ChameleonForConditionalGeneration,
        ChameleonImageProcessorPil,
        ChameleonProcessor,
    )

    codes = 64
    special = ["<s>", "</s>", "<pad>", "<reserved08706>", "<image>", "<racm3:break>", "<eoss>"]
    special += [image_token_name(i) for i in range(codes)]
    tok = _train_bpe(size.vocab, seed, special)
    tokenizer = _fast_tokenizer(
        tok,
        CHAMELEON_CHAT_TEMPLATE,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        sep_token="<reserved08706>",
    )
    resolution = 32  # 4x4 = 16 VQ tokens per image
    vq = {
        "embed_dim": 16,
        "num_embeddings": codes,
        "latent_channels": 16,
        "resolution": resolution,
        "base_channels": 32,
        "channel_multiplier": [1, 1, 2, 2],
        "num_res_blocks": 1,
        "attn_resolutions": [],
    }
    config = ChameleonConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=size.hidden,
        intermediate_size=size.intermediate,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.kv_heads,
        max_position_embeddings=4096,
        bos_token_id=tok.token_to_id("<s>"),
        eos_token_id=tok.token_to_id("</s>"),
        pad_token_id=tok.token_to_id("<pad>"),
        vq_config=vq,
        vocabulary_map=tok.get_vocab(),
    )
    image_processor = ChameleonImageProcessorPil(
        size={"shortest_edge": resolution}, crop_size={"height": resolution, "width": resolution}
    )
    processor = ChameleonProcessor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_length=16
    )
    processor.chat_template = CHAMELEON_CHAT_TEMPLATE
    return config, ChameleonForConditionalGeneration, processor


def _write(out: Path, arch: str, size_name: str, seed: int) -> int:
    import torch

    if arch in ("qwen2_5_vl", "qwen2_vl"):
        config, model_cls, processor = _qwen_parts(arch, TINY_SIZES[size_name], seed)
    elif arch == "chameleon":
        config, model_cls, processor = _chameleon_parts(TINY_SIZES[size_name], seed)
    elif arch == "kimi_k25":
        from pixelpilot.vlm.kimi_k25 import kimi_k25_parts

        config, model_cls, processor = kimi_k25_parts(size_name, seed, _train_bpe)
    else:
        from pixelpilot.vlm.tiny_kimi import write_kimi

        return write_kimi(out, TINY_SIZES[size_name], seed, _train_bpe)
    torch.manual_seed(seed)
    model = model_cls(config).eval()
    model.save_pretrained(out)
    save_processor(processor, out)
    return sum(p.numel() for p in model.parameters())


def _cache_root() -> Path:
    root = os.environ.get("PIXELPILOT_CACHE") or Path.home() / ".cache" / "pixelpilot"
    return Path(root) / "tiny"


def build_tiny(
    out: str | os.PathLike | None = None,
    arch: str = "qwen2_5_vl",
    size: str = "xs",
    seed: int = 0,
    *,
    cache: bool = True,
) -> Path:
    """Build (or reuse from the cache) a tiny checkpoint and return its folder.

    With ``out=None`` the cached folder itself is returned (treat it as read-only); otherwise
    the checkpoint is copied to ``out``. ``cache=False`` always builds afresh into ``out``.
    """
    if arch not in ARCHS:
        raise ModelError(f"unknown tiny arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if arch == "kimi_k25":  # its own table, which also has sizes the other families lack
        from pixelpilot.vlm.kimi_k25 import KIMI_SIZES

        sizes: tuple[str, ...] = tuple(KIMI_SIZES)
    else:
        sizes = SIZES
    if size not in sizes:
        raise ModelError(f"unknown tiny size {size!r} for {arch}; choose one of {', '.join(sizes)}")
    if arch == "kimi_vl" and size != "xs":
        raise ModelError(
            "kimi_vl is the remote-code loading test fixture and is built at size xs only; "
            "the Kimi architecture to train is --arch kimi_k25"
        )
    _require()
    if not cache:
        if out is None:
            raise ModelError("build_tiny(cache=False) needs an output folder")
        target = Path(out)
        target.mkdir(parents=True, exist_ok=True)
        _write(target, arch, size, seed)
        return target
    version = BUILDER_VERSION + (f".{KIMI_K25_VERSION}" if arch == "kimi_k25" else "")
    key = f"{arch}-{size}-{seed}-v{version}"
    cached = _cache_root() / key
    if not (cached / "config.json").exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cached.parent))
        _write(tmp, arch, size, seed)
        try:
            os.replace(tmp, cached)  # atomic; a concurrent builder may have won the race
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
    if out is None:
        return cached
    target = Path(out)
    shutil.copytree(cached, target, dirs_exist_ok=True)
    return target


def count_parameters(path: str | os.PathLike) -> int:
    """Number of parameters stored in a checkpoint folder's safetensors files."""
    from safetensors import safe_open

    total = 0
    for f in sorted(Path(path).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            total += sum(_numel(st, name) for name in st.keys())
    return total


def _numel(st: Any, name: str) -> int:
    n = 1
    for d in st.get_slice(name).get_shape():
        n *= d
    return n


def file_hashes(path: str | os.PathLike) -> dict[str, str]:
    """sha256 of every file in a checkpoint folder (for determinism checks)."""
    root = Path(path)
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }

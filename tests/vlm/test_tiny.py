"""Tiny checkpoints: deterministic, the advertised sizes, loadable, and the CLI command."""

from __future__ import annotations

import json

import pytest

from pixelpilot.errors import ModelError
from pixelpilot.vlm.tiny import build_tiny, count_parameters, file_hashes


def test_same_seed_same_files(tmp_path):
    a = build_tiny(tmp_path / "a", "qwen2_5_vl", "xs", 3, cache=False)
    b = build_tiny(tmp_path / "b", "qwen2_5_vl", "xs", 3, cache=False)
    ha, hb = file_hashes(a), file_hashes(b)
    assert {"config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json",
            "chat_template.jinja"} <= set(ha)  # fmt: skip
    assert ha == hb
    c = build_tiny(tmp_path / "c", "qwen2_5_vl", "xs", 4, cache=False)
    assert file_hashes(c)["model.safetensors"] != ha["model.safetensors"]


def test_tokenizer_has_family_tokens(tiny_qwen25_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_qwen25_dir)
    for t in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|box_start|>"):
        ids = tok(t, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids[0]) == t
    action = "Action: click(start_box='(197,525)')"
    ids = tok(action, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == action and len(ids) < len(action) / 2  # trained on the language


@pytest.mark.parametrize(("size", "lo", "hi"), [("xs", 0.5e6, 2e6), ("s", 3e6, 8e6)])
def test_sizes(tmp_path, size, lo, hi):
    path = build_tiny(None, "qwen2_5_vl", size, 0)
    assert lo <= count_parameters(path) <= hi


@pytest.mark.slow
def test_size_m(tmp_path):
    assert 12e6 <= count_parameters(build_tiny(None, "qwen2_5_vl", "m", 0)) <= 30e6


def test_bad_arch_and_size():
    with pytest.raises(ModelError, match="unknown tiny arch"):
        build_tiny(None, "llama", "xs")
    with pytest.raises(ModelError, match="unknown tiny size"):
        build_tiny(None, "qwen2_5_vl", "xl")
    with pytest.raises(ModelError, match="remote-code loading test fixture"):
        build_tiny(None, "kimi_vl", "s")


def test_cli_model_tiny_json(tmp_path, capsys):
    from pixelpilot.cli import main

    out = tmp_path / "ckpt"
    assert main(["model", "tiny", str(out), "--arch", "qwen2_5_vl", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == {"path": str(out), "arch": "qwen2_5_vl", "parameters": count_parameters(out)}
    assert (out / "config.json").exists()
    assert main(["model", "tiny", str(tmp_path / "plain")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'plain'}\n"
    assert main(["model", "tiny", str(out), "--arch", "gpt"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown tiny arch")

"""The kimi_k25 family: transformers' own Kimi K2.5 classes on a tiny checkpoint built here."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from pixelpilot.errors import ModelError
from pixelpilot.vlm import Conversation, SamplingParams, load
from pixelpilot.vlm.tiny import build_tiny, count_parameters, file_hashes


def _convs(k: int = 3) -> list[Conversation]:
    shots = [Image.new("RGB", (160, 210), c) for c in ("white", "red", "navy", "gray")]
    return [
        Conversation.user(f"click the ok button number {i}" + " please" * i, [shots[i % 4]])
        for i in range(k)
    ]


def test_folder_has_no_python_and_loads_native_classes(tiny_kimi_k25_dir):
    from pixelpilot.vlm.kimi_k25_image import Kimi_K25ImageProcessorPil

    assert not list(tiny_kimi_k25_dir.rglob("*.py"))
    cfg = json.loads((tiny_kimi_k25_dir / "config.json").read_text())
    assert cfg["model_type"] == "kimi_k25" and "auto_map" not in cfg
    assert cfg["text_config"]["model_type"] == "deepseek_v3"
    pre = json.loads((tiny_kimi_k25_dir / "preprocessor_config.json").read_text())
    assert pre["image_processor_type"] == "Kimi_K25ImageProcessor"  # transformers' own name
    vlm = load(str(tiny_kimi_k25_dir))
    assert type(vlm.model).__name__ == "Kimi_K25ForConditionalGeneration"
    assert type(vlm.model).__module__.startswith("transformers.models.kimi_k25")
    assert type(vlm.processor).__name__ == "Kimi_K25Processor"
    assert isinstance(vlm.processor.image_processor, Kimi_K25ImageProcessorPil)


def test_saved_weights_load_back_unchanged(tiny_kimi_k25):
    """transformers saves Kimi K2.5 in Moonshot's original weight layout and converts it back on
    loading; every tensor must come back exactly (no weight left freshly initialised)."""
    from pixelpilot.vlm.kimi_k25 import kimi_k25_parts
    from pixelpilot.vlm.tiny import _train_bpe

    config, model_cls, _ = kimi_k25_parts("xs", 0, _train_bpe)
    torch.manual_seed(0)
    built = model_cls(config).state_dict()
    loaded = tiny_kimi_k25.model.state_dict()
    assert set(built) == set(loaded)
    for name, tensor in built.items():
        assert torch.equal(tensor, loaded[name]), name


def test_profile_from_image_processor(tiny_kimi_k25):
    p = tiny_kimi_k25.profile
    ip = tiny_kimi_k25.processor.image_processor
    assert (p.frame, p.prompt_family) == ("uitars-1.0", "uitars-1.0")
    assert p.factor == ip.patch_size * ip.merge_size == 28
    assert (p.min_pixels, p.max_pixels) == (28 * 28, ip.max_patches * 14 * 14)
    assert p.extra == {"model_type": "kimi_k25", "max_patches": 256}


def test_chat_format_and_image_tokens(tiny_kimi_k25):
    conv = _convs(1)[0].add("assistant", "Action: wait()").add("user", "again")
    text = tiny_kimi_k25.prompt_text(conv)
    assert text == (
        "<|im_system|>system<|im_middle|>You are a helpful assistant<|im_end|>"
        "<|im_user|>user<|im_middle|><|media_begin|>image<|media_content|><|media_pad|>"
        "<|media_end|>click the ok button number 0<|im_end|>"
        "<|im_assistant|>assistant<|im_middle|>Action: wait()<|im_end|>"
        "<|im_user|>user<|im_middle|>again<|im_end|><|im_assistant|>assistant<|im_middle|>"
    )
    batch = tiny_kimi_k25._inputs([conv])
    # 160x210 keeps its size, padded to 168x224: 12x16 patches, 2x2-merged into 48 tokens.
    assert batch["image_grid_thw"].tolist() == [[1, 16, 12]]
    assert tuple(batch["pixel_values"].shape) == (192, 3, 14, 14)
    pad = tiny_kimi_k25.tokenizer.convert_tokens_to_ids("<|media_pad|>")
    assert int((batch["input_ids"] == pad).sum()) == 48
    for token in ("<|im_user|>", "<|im_middle|>", "<|media_pad|>", "<|im_end|>"):
        ids = tiny_kimi_k25.tokenizer(token, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1


def test_batched_greedy_matches_one_by_one(tiny_kimi_k25):
    convs = _convs(3)  # different prompt lengths -> real left padding
    params = SamplingParams(max_new_tokens=10)
    batched = tiny_kimi_k25.generate(convs, params)
    single = [tiny_kimi_k25.generate([c], params)[0] for c in convs]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]
    assert all(g.token_ids for g in batched)


def test_greedy_tokens_have_highest_logprob(tiny_kimi_k25):
    convs = _convs(3)
    gens = tiny_kimi_k25.generate(convs, SamplingParams(max_new_tokens=8))
    ids = [g.token_ids for g in gens]
    for d, t in zip(tiny_kimi_k25.log_distributions(convs, ids), ids, strict=True):
        assert d.shape[0] == len(t) and d.argmax(-1).tolist() == list(t)
    batched = tiny_kimi_k25.logprobs(convs, ids)
    single = [tiny_kimi_k25.logprobs([c], [t])[0] for c, t in zip(convs, ids, strict=True)]
    for a, b in zip(batched, single, strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-4)
        assert (a <= 0).all()


def test_gradients_reach_vision_tower_projector_and_router(tiny_kimi_k25):
    model = tiny_kimi_k25.model
    convs = _convs(2)
    lps = tiny_kimi_k25.logprobs(
        convs, ["Action: wait()", "Action: click(start_box='(1,2)')"], grad=True
    )
    torch.stack([lp.sum() for lp in lps]).sum().backward()
    try:
        named = dict(model.named_parameters())
        vision = model.model.vision_tower
        checked = {
            "patch embedding": vision.patch_embed.proj.weight,
            "position table": vision.patch_embed.pos_emb.position_embeddings,
            "first vision layer": next(vision.layers[0].parameters()),
            "projector": model.model.mm_projector.in_proj.weight,
        }
        routers = {k: p for k, p in named.items() if k.endswith("mlp.gate.weight")}
        experts = {k: p for k, p in named.items() if k.endswith("mlp.experts.gate_up_proj")}
        assert len(routers) == len(experts) == model.config.text_config.num_hidden_layers - 1
        for name, p in {**checked, **routers, **experts}.items():
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    finally:
        model.zero_grad(set_to_none=True)


def test_learns_an_answer_that_depends_on_the_image(tiny_kimi_k25_dir):
    """Same text, two screenshots, two clicks: a few optimiser steps must make the greedy
    answer follow the image, which only happens if pixels reach the decoder and train."""
    from pixelpilot.vlm.hf import HFVLM

    torch.manual_seed(0)
    vlm = HFVLM(tiny_kimi_k25_dir)  # its own copy: training changes it
    shots = [Image.new("RGB", (160, 210), c) for c in ("white", "black")]
    convs = [Conversation.user("click the square", [im]) for im in shots]
    targets = ["click(start_box='(100,100)')", "click(start_box='(900,900)')"]
    end = vlm.tokenizer.convert_tokens_to_ids("<|im_end|>")
    comps = [vlm.tokenizer(t, add_special_tokens=False)["input_ids"] + [end] for t in targets]
    vlm.model.train()
    opt = torch.optim.AdamW(vlm.model.parameters(), lr=3e-3)
    for _ in range(100):
        loss = -torch.stack([lp.mean() for lp in vlm.logprobs(convs, comps, grad=True)]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if loss.item() < 0.02:
            break
    vlm.model.eval()
    assert [g.text for g in vlm.generate(convs, SamplingParams(max_new_tokens=20))] == targets


def test_seeded_sampling(tiny_kimi_k25):
    params = SamplingParams(max_new_tokens=8, temperature=1.0, n=2, seed=5)
    a = tiny_kimi_k25.generate(_convs(2), params)
    b = tiny_kimi_k25.generate(_convs(2), params)
    assert len(a) == 4 and [g.token_ids for g in a] == [g.token_ids for g in b]


def test_same_seed_same_files(tmp_path):
    a = build_tiny(tmp_path / "a", "kimi_k25", "xs", 1, cache=False)
    b = build_tiny(tmp_path / "b", "kimi_k25", "xs", 1, cache=False)
    assert file_hashes(a) == file_hashes(b)


@pytest.mark.parametrize(("size", "lo", "hi"), [("xs", 0.5e6, 2e6), ("s", 4e6, 8e6)])
def test_sizes(size, lo, hi):
    assert lo <= count_parameters(build_tiny(None, "kimi_k25", size, 0)) <= hi


def test_size_xs_wide_widens_only_the_tower():
    xs = json.loads((build_tiny(None, "kimi_k25", "xs", 0) / "config.json").read_text())
    wide = json.loads((build_tiny(None, "kimi_k25", "xs-wide", 0) / "config.json").read_text())
    assert xs["vision_config"]["hidden_size"] == 64
    assert wide["vision_config"]["hidden_size"] == 128
    assert wide["vision_config"]["num_hidden_layers"] == xs["vision_config"]["num_hidden_layers"]
    assert wide["text_config"] == xs["text_config"]
    assert 1.3e6 <= count_parameters(build_tiny(None, "kimi_k25", "xs-wide", 0)) <= 2e6
    with pytest.raises(ModelError, match="unknown tiny size 'xs-wide' for qwen2_5_vl"):
        build_tiny(None, "qwen2_5_vl", "xs-wide", 0)


def test_size_xs_fine_cuts_finer_patches_into_the_same_tokens():
    """7-pixel patches merged 4x4: the tower sees four times the patches, the decoder the
    same 28-pixel tokens, so a screenshot takes as many image tokens as with xs."""
    from pixelpilot.vlm.pointer import CELL

    fine = build_tiny(None, "kimi_k25", "xs-fine", 0)
    vision = json.loads((fine / "config.json").read_text())["vision_config"]
    assert (vision["patch_size"], vision["merge_kernel_size"]) == (7, [4, 4])
    assert vision["patch_size"] * vision["merge_kernel_size"][0] == CELL
    shot = Image.new("RGB", (160, 210), "white")
    tokens = {}
    for size in ("xs", "xs-fine"):
        vlm = load(str(build_tiny(None, "kimi_k25", size, 0)))
        processor = vlm.processor.image_processor
        patches = len(processor(images=[shot], return_tensors="pt")["pixel_values"])
        tokens[size] = patches // int(processor.merge_size) ** 2
        answers = vlm.generate(_convs(2), SamplingParams(max_new_tokens=3))
        assert len(answers) == 2 and all(a.token_ids for a in answers)
    assert tokens == {"xs": 6 * 8, "xs-fine": 6 * 8}  # 168x224 padded: 6 x 8 cells of 28
    # the projector's first layer maps 16 patches of 64 features to as many: 1M weights more
    assert 1.9e6 <= count_parameters(fine) <= 2.2e6


def test_size_xs_deep_has_four_decoder_layers_on_the_xs_tower():
    """xs-deep: xs's tower and widths, four decoder layers (the first dense, three MoE)."""
    xs = json.loads((build_tiny(None, "kimi_k25", "xs", 0) / "config.json").read_text())
    folder = build_tiny(None, "kimi_k25", "xs-deep", 0)
    deep = json.loads((folder / "config.json").read_text())
    assert deep["text_config"]["num_hidden_layers"] == 4
    assert xs["text_config"]["num_hidden_layers"] == 2
    assert deep["vision_config"] == xs["vision_config"]
    assert deep["text_config"]["hidden_size"] == xs["text_config"]["hidden_size"]
    vlm = load(str(folder))
    answers = vlm.generate(_convs(2), SamplingParams(max_new_tokens=3))
    assert len(answers) == 2 and all(a.token_ids for a in answers)
    assert 1.3e6 <= count_parameters(folder) <= 1.4e6  # xs: 1.01M


def test_size_xs_14_gives_each_patch_its_own_token():
    """xs-14: xs with its 14-pixel patches unmerged. A 160x210 screenshot (padded to 168x210)
    takes 12 x 15 image tokens of 14 pixels, and the pointing parts read that cell from the
    processor (28 pixels, merge 2, for xs)."""
    from pixelpilot.vlm.pointer import token_grid

    folder = build_tiny(None, "kimi_k25", "xs-14", 0)
    config = json.loads((folder / "config.json").read_text())
    xs = json.loads((build_tiny(None, "kimi_k25", "xs", 0) / "config.json").read_text())
    assert config["vision_config"]["merge_kernel_size"] == [1, 1]
    assert config["text_config"] == xs["text_config"]
    shot = Image.new("RGB", (160, 210), "white")
    tokens, grids = {}, {}
    for size in ("xs", "xs-14"):
        vlm = load(str(build_tiny(None, "kimi_k25", size, 0)))
        processor = vlm.processor.image_processor
        patches = len(processor(images=[shot], return_tensors="pt")["pixel_values"])
        tokens[size] = patches // int(processor.merge_size) ** 2
        grids[size] = token_grid(vlm.processor)
        answers = vlm.generate(_convs(2), SamplingParams(max_new_tokens=3))
        assert len(answers) == 2 and all(a.token_ids for a in answers)
    assert tokens == {"xs": 6 * 8, "xs-14": 12 * 15}
    assert grids == {"xs": (28, 2), "xs-14": (14, 1)}
    # the projector maps one patch of 64 features, not four: fewer weights than xs
    xs_count = count_parameters(build_tiny(None, "kimi_k25", "xs", 0))
    assert 0.8e6 <= count_parameters(folder) < xs_count


@pytest.mark.slow
def test_size_m():
    assert 15e6 <= count_parameters(build_tiny(None, "kimi_k25", "m", 0)) <= 30e6


def test_cli_model_tiny_kimi_k25(tmp_path, capsys):
    from pixelpilot.cli import main

    out = tmp_path / "ckpt"
    assert main(["model", "tiny", str(out), "--arch", "kimi_k25", "--size", "xs", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == {"path": str(out), "arch": "kimi_k25", "parameters": count_parameters(out)}
    assert json.loads((out / "config.json").read_text())["model_type"] == "kimi_k25"

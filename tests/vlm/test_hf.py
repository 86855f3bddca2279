"""HFVLM on tiny random-init checkpoints of the real architectures (built locally)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image

from pixelpilot.errors import ModelError
from pixelpilot.vlm import VLM, Conversation, SamplingParams, TrainableVLM, load
from pixelpilot.vlm.hf import HFVLM


def _convs(k: int = 3) -> list[Conversation]:
    shots = [Image.new("RGB", (210, 160), c) for c in ("white", "red", "navy", "gray")]
    return [
        Conversation.user(f"click the ok button number {i}" + " please" * i, [shots[i % 4]])
        for i in range(k)
    ]


def test_load_gives_hfvlm_with_processor_pixel_limits(tiny_qwen25_dir):
    vlm = load(str(tiny_qwen25_dir))
    assert isinstance(vlm, HFVLM) and isinstance(vlm, VLM) and isinstance(vlm, TrainableVLM)
    ip = json.loads((tiny_qwen25_dir / "preprocessor_config.json").read_text())
    p = vlm.profile
    assert (p.frame, p.prompt_family) == ("uitars-1.5", "uitars-1.5")
    assert (p.min_pixels, p.max_pixels) == (ip["size"]["shortest_edge"], ip["size"]["longest_edge"])
    assert p.factor == ip["patch_size"] * ip["merge_size"]
    assert vlm.dtype == torch.float32 and vlm.device == "cpu"
    assert load(str(tiny_qwen25_dir), model_name="tiny").profile.name == "tiny"


def test_screenshot_patch_grid_follows_profile(tiny_qwen25):
    """The processor's grid is smart_resize(h, w) with the profile's limits."""
    p = tiny_qwen25.profile
    batch = tiny_qwen25._inputs(_convs(1))
    t, gh, gw = batch["image_grid_thw"][0].tolist()
    h, w = gh * 14, gw * 14
    assert h % p.factor == 0 and w % p.factor == 0
    assert p.min_pixels <= h * w <= p.max_pixels
    assert (h, w) == (84, 84)  # 160x210 under max_pixels=12*28*28


@pytest.mark.parametrize("hw", [(160, 210), (50, 50), (120, 300), (720, 1280), (33, 97)])
def test_agent_smart_resize_matches_processor(tiny_qwen25, hw):
    """pixelpilot.tools' smart_resize with the profile's numbers gives the processor's size."""
    from pixelpilot.tools.frames import smart_resize

    p = tiny_qwen25.profile
    h, w = hw
    conv = Conversation.user("x", [Image.new("RGB", (w, h))])
    _, gh, gw = tiny_qwen25._inputs([conv])["image_grid_thw"][0].tolist()
    assert (gh * 14, gw * 14) == smart_resize(h, w, p.factor, p.min_pixels, p.max_pixels)


def test_batched_greedy_matches_one_by_one(tiny_qwen25):
    convs = _convs(3)  # different prompt lengths -> real left padding
    params = SamplingParams(max_new_tokens=10)
    batched = tiny_qwen25.generate(convs, params)
    single = [tiny_qwen25.generate([c], params)[0] for c in convs]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]
    assert all(g.finish_reason in ("stop", "length") for g in batched)


def test_greedy_tokens_have_highest_logprob(tiny_qwen25):
    convs = _convs(3)
    gens = tiny_qwen25.generate(convs, SamplingParams(max_new_tokens=8))
    ids = [g.token_ids for g in gens]
    dists = tiny_qwen25.log_distributions(convs, ids)
    for d, t in zip(dists, ids, strict=True):
        assert d.shape[0] == len(t)
        assert d.argmax(-1).tolist() == list(t)
    batched = tiny_qwen25.logprobs(convs, ids)
    single = [tiny_qwen25.logprobs([c], [t])[0] for c, t in zip(convs, ids, strict=True)]
    for a, b in zip(batched, single, strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-4)
        assert (a <= 0).all()


def test_logprobs_of_text_and_grad(tiny_qwen25):
    convs = _convs(2)
    lps = tiny_qwen25.logprobs(convs, ["Action: wait()", "Action: click(start_box='(1,2)')"])
    n = len(tiny_qwen25.tokenizer("Action: wait()", add_special_tokens=False)["input_ids"])
    assert lps[0].shape == (n,) and not lps[0].requires_grad
    lp = tiny_qwen25.logprobs(convs[:1], ["Action: wait()"], grad=True)[0]
    lp.sum().backward()
    grads = [p.grad for p in tiny_qwen25.model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    tiny_qwen25.model.zero_grad(set_to_none=True)


def test_seeded_sampling_n_and_stop(tiny_qwen25):
    convs = _convs(2)
    params = SamplingParams(max_new_tokens=12, temperature=1.0, n=3, seed=11)
    a = tiny_qwen25.generate(convs, params)
    b = tiny_qwen25.generate(convs, params)
    assert len(a) == 6 and [g.token_ids for g in a] == [g.token_ids for g in b]
    assert len({g.token_ids for g in a}) > 1  # random weights, T=1: samples differ
    first = a[0].text
    stop = next((ch for ch in first if ch.strip()), None)
    assert stop is not None
    stopped = tiny_qwen25.generate(
        convs[:1], SamplingParams(max_new_tokens=12, temperature=1.0, seed=11, stop=(stop,))
    )
    assert stop not in stopped[0].text and stopped[0].finish_reason == "stop"


def test_qwen2_vl_profile_and_generation(tiny_qwen2_dir):
    vlm = load(str(tiny_qwen2_dir))
    assert (vlm.profile.frame, vlm.profile.prompt_family) == ("uitars-1.0", "uitars-1.0")
    gens = vlm.generate(_convs(2), SamplingParams(max_new_tokens=5))
    assert len(gens) == 2 and all(g.token_ids for g in gens)


def test_chameleon_early_fusion(tiny_chameleon_dir):
    vlm = load(str(tiny_chameleon_dir))
    assert vlm.profile.extra["image_tokens"] == 16
    batch = vlm._inputs(_convs(1))
    image_id = vlm.tokenizer.convert_tokens_to_ids("<image>")
    assert int((batch["input_ids"] == image_id).sum()) == 16  # the image becomes 16 VQ slots
    convs = _convs(2)
    gens = vlm.generate(convs, SamplingParams(max_new_tokens=6))
    ids = [g.token_ids for g in gens]
    for d, t in zip(vlm.log_distributions(convs, ids), ids, strict=True):
        assert d.argmax(-1).tolist() == list(t)


def test_missing_folder_and_text_only(tmp_path, tiny_qwen25_dir):
    with pytest.raises(ModelError, match="no such checkpoint folder"):
        load(str(tmp_path / "nope"))
    with pytest.raises(ModelError, match="no config.json"):
        load(str(tmp_path))
    with pytest.raises(ModelError, match="not an http"):
        load("ui-tars-1.5")
    text_only = tmp_path / "text"
    text_only.mkdir()
    (text_only / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    with pytest.raises(ModelError, match="text-only"):
        load(str(text_only))


def test_processor_without_chat_template(tmp_path, tiny_qwen25_dir):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_qwen25_dir, ckpt)
    (ckpt / "chat_template.jinja").unlink()
    for name in ("tokenizer_config.json", "processor_config.json"):
        cfg = json.loads((ckpt / name).read_text())
        cfg.pop("chat_template", None)
        (ckpt / name).write_text(json.dumps(cfg))
    with pytest.raises(ModelError, match="no chat template"):
        HFVLM(ckpt)


def test_image_limits(tiny_qwen25_dir):
    vlm = HFVLM(tiny_qwen25_dir, max_images=1)
    two = Conversation.user("x", [Image.new("RGB", (50, 50))] * 2)
    with pytest.raises(ModelError, match="over this model's limit of 1"):
        vlm.generate([two])
    thin = Conversation.user("x", [Image.new("RGB", (5000, 10))])
    with pytest.raises(ModelError, match="aspect-ratio"):
        vlm.generate([thin])


def test_kimi_vl_remote_code(tiny_kimi_dir):
    for name in ("configuration_kimi_vl.py", "modeling_kimi_vl.py", "processing_kimi_vl.py"):
        assert (tiny_kimi_dir / name).exists()
    cfg = json.loads((tiny_kimi_dir / "config.json").read_text())
    assert cfg["model_type"] == "kimi_vl" and "AutoModelForCausalLM" in cfg["auto_map"]
    vlm = load(str(tiny_kimi_dir))
    # The classes come from the checkpoint folder's own files, not from pixelpilot.
    assert type(vlm.model).__module__.startswith("transformers_modules")
    assert type(vlm.processor).__name__ == "KimiVLProcessor"
    assert vlm.profile.prompt_family == "uitars-1.0"
    text = vlm.prompt_text(_convs(1)[0])
    assert text.startswith("<|im_system|>system<|im_middle|>")
    assert "<|im_user|>user<|im_middle|><|media_start|>image<|media_content|><|media_pad|>" in text
    assert text.endswith("<|im_assistant|>assistant<|im_middle|>")
    batch = vlm._inputs(_convs(1))
    assert batch["image_grid_hws"].tolist() == [[6, 6]]  # 160x210 -> 84x84 at 12 tokens
    pad = vlm.tokenizer.convert_tokens_to_ids("<|media_pad|>")
    assert int((batch["input_ids"] == pad).sum()) == 9
    convs = _convs(3)
    params = SamplingParams(max_new_tokens=6)
    batched = vlm.generate(convs, params)
    single = [vlm.generate([c], params)[0] for c in convs]
    assert [g.token_ids for g in batched] == [g.token_ids for g in single]
    ids = [g.token_ids for g in batched]
    for d, t in zip(vlm.log_distributions(convs, ids), ids, strict=True):
        assert d.argmax(-1).tolist() == list(t)

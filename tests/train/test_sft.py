"""SFT end to end on expert recordings and the tiny Qwen2.5-VL model: exact resume, the run
folder's rules, the checkpoint other commands load, LoRA merging, the NaN guard, the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pixelpilot.errors import ConfigError
from pixelpilot.train.config import SFTConfig
from pixelpilot.train.sft import train_sft
from pixelpilot.train.trainer import TrainingDiverged


def config(data: Path, model: str, out: Path, **kw: object) -> SFTConfig:
    base = dict(data=str(data), model=model, out=str(out), lr=1e-3, batch_size=2,
                max_steps=4, progress=False, seed=0)  # fmt: skip
    return SFTConfig(**(base | kw))


def losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


def weights(folder: str) -> dict:
    from safetensors.torch import load_file

    return load_file(str(Path(folder) / "model.safetensors"))


def test_resume_continues_exactly(click_data: Path, tiny_xs: str, tmp_path: Path) -> None:
    whole = train_sft(config(click_data, tiny_xs, tmp_path / "a", max_steps=6, warmup_steps=1))
    cfg = config(click_data, tiny_xs, tmp_path / "b", max_steps=6, warmup_steps=1)
    first = train_sft(cfg, stop_after=3)
    assert first.steps == 3 and first.checkpoint == ""
    assert not (tmp_path / "b" / "final").exists()
    rest = train_sft(replace(cfg, resume=True))
    assert rest.steps == 6
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert len(a) == len(b) == 6
    assert max(abs(x - y) for x, y in zip(a, b, strict=True)) <= 1e-6
    assert len(set(a)) > 1  # the steps really trained
    wa, wb = weights(whole.checkpoint), weights(rest.checkpoint)
    assert all((wa[k] - wb[k]).abs().max() <= 1e-6 for k in wa)


def test_used_out_is_refused_unless_resume_or_overwrite(
    click_data: Path, tiny_xs: str, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    train_sft(config(click_data, tiny_xs, out, max_steps=1))
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="already holds a training run"):
        train_sft(config(click_data, tiny_xs, out, max_steps=1))
    with pytest.raises(ConfigError, match="other settings for lr"):
        train_sft(config(click_data, tiny_xs, out, max_steps=2, lr=1e-2, resume=True))
    again = train_sft(config(click_data, tiny_xs, out, max_steps=2, overwrite=True))
    assert again.steps == 2 and len(losses(out)) == 2
    assert (out / "notes.txt").read_text() == "mine"  # nothing but the run's files removed
    with pytest.raises(ConfigError, match="no checkpoint to resume"):
        train_sft(config(click_data, tiny_xs, tmp_path / "empty", resume=True))


def test_final_checkpoint_is_an_ordinary_model(
    click_data: Path, tiny_xs: str, tmp_path: Path
) -> None:
    from pixelpilot.eval.offline import OfflineConfig, evaluate_offline
    from pixelpilot.vlm import load

    result = train_sft(config(click_data, tiny_xs, tmp_path / "run", max_steps=2))
    trained, base = weights(result.checkpoint), weights(str(Path(tiny_xs)))
    assert set(trained) == set(base)
    assert any((trained[k] - base[k]).abs().max() > 0 for k in base)
    vlm = load(result.checkpoint)
    assert vlm.profile.frame == "uitars-1.5"
    report = evaluate_offline(
        OfflineConfig(data=str(click_data), model=result.checkpoint, max_new_tokens=8, limit=2)
    )
    assert report["missing_answers"] == 0 and report["samples"] == 2


def test_lora_merges_into_a_plain_checkpoint(
    click_data: Path, tiny_xs: str, tmp_path: Path
) -> None:
    result = train_sft(config(click_data, tiny_xs, tmp_path / "lora", max_steps=2, lora_r=4,
                              lr=1e-2))  # fmt: skip
    trained, base = weights(result.checkpoint), weights(tiny_xs)
    assert set(trained) == set(base)  # merged: no adapter tensors left
    changed = [k for k in base if (trained[k] - base[k]).abs().max() > 0]
    assert changed and all(k.endswith("weight") for k in changed)
    assert not any("embed" in k for k in changed)  # only LoRA-targeted linear layers moved
    adapter = Path(tmp_path / "lora" / "checkpoints" / "step-000002" / "trainable.pt")
    import torch

    saved = torch.load(adapter, weights_only=True)
    assert saved and all("lora_" in k for k in saved)  # checkpoints hold the adapter only


def test_frozen_parts_keep_their_weights_and_resume(
    click_data: Path, tiny_xs: str, tmp_path: Path
) -> None:
    import torch

    from pixelpilot.train.model import model_part

    cfg = config(click_data, tiny_xs, tmp_path / "frozen", max_steps=4, lr=1e-2,
                 freeze="vision,projector")  # fmt: skip
    train_sft(cfg, stop_after=2)
    saved = torch.load(tmp_path / "frozen" / "checkpoints" / "step-000002" / "trainable.pt",
                       weights_only=True)  # fmt: skip
    assert saved and {model_part(k) for k in saved} == {"decoder"}  # checkpoints: decoder only
    result = train_sft(replace(cfg, resume=True))
    assert result.steps == 4
    trained, base = weights(result.checkpoint), weights(tiny_xs)
    assert set(trained) == set(base)  # the export is the whole model
    moved = {model_part(k) for k in base if (trained[k] - base[k]).abs().max() > 0}
    assert moved == {"decoder"}
    parts = {model_part(k) for k in base}
    assert parts == {"vision", "projector", "decoder"}  # Qwen's merger is the projector


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"freeze": "vision,eyes"}, "--freeze 'eyes': the parts are vision, projector, decoder"),
        ({"freeze": "decoder, vision,projector"}, "nothing would train"),
        ({"freeze": "vision", "lora_r": 4}, "excludes --lora-r"),
    ],
)
def test_freeze_refuses_what_cannot_train(kw: dict, message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        config(tmp_path, "model", tmp_path / "out", **kw)


def test_freeze_of_a_part_the_model_lacks_is_one_line(click_data: Path, tmp_path: Path) -> None:
    from pixelpilot.vlm.tiny import build_tiny

    chameleon = str(build_tiny(arch="chameleon", size="xs"))  # early fusion: no projector
    with pytest.raises(ConfigError, match="has no projector parameters"):
        train_sft(config(click_data, chameleon, tmp_path / "c", max_steps=1, freeze="projector"))


def test_nan_loss_steps_are_skipped_then_stop(
    click_data: Path, tiny_xs: str, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    broken = tmp_path / "broken"
    broken.mkdir()
    for f in Path(tiny_xs).iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    state = load_file(str(broken / "model.safetensors"))
    key = next(k for k in state if k.endswith("norm.weight") and "visual" not in k)
    state[key] = torch.full_like(state[key], float("nan"))
    save_file(state, str(broken / "model.safetensors"), metadata={"format": "pt"})
    out = tmp_path / "nan"
    with pytest.raises(TrainingDiverged, match="NaN/inf for 3 steps in a row") as info:
        train_sft(config(click_data, str(broken), out, max_steps=6, max_bad_steps=3))
    assert info.value.steps == [1, 2, 3]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped"] for r in rows] == [True, True, True]


def test_accumulation_equals_a_bigger_batch(click_data: Path, tiny_xs: str, tmp_path: Path) -> None:
    train_sft(config(click_data, tiny_xs, tmp_path / "big", max_steps=2, batch_size=4))
    train_sft(config(click_data, tiny_xs, tmp_path / "acc", max_steps=2, batch_size=2,
                     grad_accum=2))  # fmt: skip
    big, acc = losses(tmp_path / "big"), losses(tmp_path / "acc")
    assert max(abs(a - b) for a, b in zip(big, acc, strict=True)) <= 1e-5

"""``pixelpilot train sft``: options come from SFTConfig, --json prints the contract's keys,
bad input is one line and exit code 2."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from pixelpilot.cli import main
from pixelpilot.errors import ConfigError
from pixelpilot.train.config import SFTConfig, TrainConfig, describe


def test_every_field_has_help_and_is_an_option(capsys: pytest.CaptureFixture[str]) -> None:
    helps = describe(SFTConfig)
    assert all(helps.values()), [k for k, v in helps.items() if not v]
    assert {f.name for f in dataclasses.fields(TrainConfig)} <= set(helps)
    assert main(["train", "sft", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--lr", "--grad-accum", "--lora-r", "--val-fraction", "--resume", "--json"):
        assert flag in text


def test_bad_hyperparameters_are_config_errors() -> None:
    base = {"data": "d", "model": "m", "out": "o"}
    with pytest.raises(ConfigError, match="--lr must be positive") as info:
        SFTConfig(**base, lr=-1e-4)
    assert info.value.option == "lr"
    with pytest.raises(ConfigError, match="--batch-size must be > 0"):
        SFTConfig(**base, batch_size=0)
    with pytest.raises(ConfigError, match="--history-images must be >= 1, got 0") as info:
        SFTConfig(**base, history_images=0)
    assert info.value.option == "history_images"
    with pytest.raises(ConfigError, match="served model"):
        SFTConfig(**(base | {"model": "http://127.0.0.1:8000/v1"}))
    with pytest.raises(ConfigError, match="unknown config fields: nope"):
        SFTConfig.from_dict(base | {"nope": 1})
    assert SFTConfig.from_dict(SFTConfig(**base).to_dict()) == SFTConfig(**base)


def test_json_summary(
    click_data: Path, tiny_xs: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "run")
    code = main(["train", "sft", str(click_data), "--model", tiny_xs, "--out", out,
                 "--max-steps", "2", "--batch-size", "2", "--json"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    summary = json.loads(printed)
    assert list(summary) == ["steps", "loss_first", "loss_last", "checkpoint", "seconds",
                             "samples_per_second"]  # fmt: skip
    assert summary["steps"] == 2 and Path(summary["checkpoint"], "config.json").is_file()
    assert summary["samples_per_second"] > 0


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1
    return err


def test_bad_input_is_one_line_exit_2(
    click_data: Path, tiny_xs: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "o")
    sft = ["train", "sft"]
    (tmp_path / "empty").mkdir()
    assert "no samples" in _error(
        [*sft, str(tmp_path / "empty"), "--model", tiny_xs, "--out", out], capsys
    )
    assert "no such file" in _error(
        [*sft, str(tmp_path / "nope"), "--model", tiny_xs, "--out", out], capsys
    )
    assert "served model" in _error(
        [*sft, str(click_data), "--model", "http://h:8000/v1", "--out", out], capsys
    )
    assert "--lr" in _error(
        [*sft, str(click_data), "--model", tiny_xs, "--out", out, "--lr", "-1"], capsys
    )
    assert "--batch-size" in _error(
        [*sft, str(click_data), "--model", tiny_xs, "--out", out, "--batch-size", "0"], capsys
    )
    no_proc = tmp_path / "no-processor"
    no_proc.mkdir()
    for f in Path(tiny_xs).iterdir():
        if f.name in ("config.json", "model.safetensors", "generation_config.json"):
            (no_proc / f.name).write_bytes(f.read_bytes())
    assert "processor" in _error(
        [*sft, str(click_data), "--model", str(no_proc), "--out", out], capsys
    )
    text_only = tmp_path / "text-only"
    text_only.mkdir()
    (text_only / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert "text-only" in _error(
        [*sft, str(click_data), "--model", str(text_only), "--out", out], capsys
    )
    assert not Path(out).exists()  # nothing written for input that was refused

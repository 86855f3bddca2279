"""Training writes the declaration: a checkpoint trained with a prompt kind declares it, and
fine-tuning it further keeps (or, when told, changes) that kind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pixelpilot.errors import ConfigError
from pixelpilot.vlm.profiles import DECLARATION_FILE, Declaration, read_declaration

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def data_and_init(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from pixelpilot.train.synthetic import write_synthetic
    from pixelpilot.vlm.tiny import build_tiny

    root = tmp_path_factory.mktemp("declared")
    write_synthetic(root / "data", 4, seed=0)
    return root / "data", Path(build_tiny(root / "init", "kimi_k25", "xs", 0))


def _sft(data: Path, model: Path, out: Path, **options: object) -> Path:
    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.sft import train_sft

    config = SFTConfig(data=str(data), model=str(model), out=str(out), max_steps=1,
                       batch_size=2, progress=False, **options)  # fmt: skip
    return Path(train_sft(config).checkpoint)


def test_the_trained_kind_is_declared_and_kept(
    data_and_init: tuple[Path, Path], tmp_path: Path
) -> None:
    from pixelpilot.vlm import load

    data, init = data_and_init
    first = _sft(data, init, tmp_path / "a", prompt_kind="grounding")
    assert read_declaration(first) == Declaration("grounding")
    assert load(str(first)).profile.prompt_kind == "grounding"
    # fine-tuned again without --prompt-kind: the model's own kind, in run.json and the export
    second = _sft(data, first, tmp_path / "b")
    assert json.loads((tmp_path / "b" / "run.json").read_text())["prompt_kind"] == "grounding"
    assert read_declaration(second) == Declaration("grounding")
    # told otherwise: the copied declaration is corrected, not passed on
    third = _sft(data, second, tmp_path / "c", prompt_kind="computer")
    assert read_declaration(third) == Declaration("computer")


def test_a_default_kind_checkpoint_stays_as_it_was(
    data_and_init: tuple[Path, Path], tmp_path: Path
) -> None:
    data, init = data_and_init
    final = _sft(data, init, tmp_path / "plain")
    assert not (final / DECLARATION_FILE).exists()  # nothing to declare: as before
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["prompt_kind"] == "computer"


def test_a_bad_prompt_kind_is_refused_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    from pixelpilot.cli import main
    from pixelpilot.train.config import SFTConfig

    with pytest.raises(ConfigError, match="--prompt-kind must be one of computer, mobile"):
        SFTConfig(data="d", model="m", out="o", prompt_kind="tablet")
    argv = ["train", "sft", "d", "--model", "m", "--out", "o", "--prompt-kind", "tablet"]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error: --prompt-kind must be one of")

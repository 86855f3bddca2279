"""A checkpoint declares its prompt kind: pixelpilot.json read, written and checked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pixelpilot.errors import FileFormatError, PromptError
from pixelpilot.vlm.base import ModelProfile
from pixelpilot.vlm.profiles import (
    DECLARATION_FILE,
    Declaration,
    declare_profile,
    read_declaration,
    write_declaration,
)


def test_a_folder_without_a_declaration_gets_the_computer_prompt(tmp_path: Path) -> None:
    assert read_declaration(tmp_path) == Declaration("computer", "English")
    assert read_declaration(tmp_path / "missing") == Declaration()


def test_a_written_declaration_reads_back(tmp_path: Path) -> None:
    path = write_declaration(tmp_path, Declaration("grounding", "Chinese"))
    assert path == tmp_path / DECLARATION_FILE
    assert json.loads(path.read_text()) == {
        "format": "pixelpilot.model",
        "version": 1,
        "prompt_kind": "grounding",
        "prompt_language": "Chinese",
        "history_thoughts": True,
    }
    assert read_declaration(tmp_path) == Declaration("grounding", "Chinese")
    write_declaration(tmp_path, Declaration("grounding", history_thoughts=False))
    assert read_declaration(tmp_path) == Declaration("grounding", "English", False)
    (tmp_path / DECLARATION_FILE).write_text('{"prompt_kind": "mobile"}')  # the rest defaults
    assert read_declaration(tmp_path) == Declaration("mobile", "English")
    write_declaration(tmp_path, Declaration(history_images=1))
    assert json.loads((tmp_path / DECLARATION_FILE).read_text())["history_images"] == 1
    assert read_declaration(tmp_path) == Declaration(history_images=1)
    with pytest.raises(PromptError, match="history_images must be a whole number >= 1, not 0"):
        Declaration(history_images=0)


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        ('{"prompt_kind": "tablet"}', PromptError, "unknown prompt kind 'tablet' (one of computer"),
        ('{"prompt_kind": 5}', PromptError, "unknown prompt kind 5"),
        ('{"prompt_language": "Klingon"}', PromptError, "unknown prompt language 'Klingon'"),
        ('{"prompt_kind": "grounding"', FileFormatError, "not readable JSON"),
        ('["grounding"]', FileFormatError, "a model declaration is a JSON object"),
        ('{"prompt-kind": "grounding"}', FileFormatError, "unknown keys 'prompt-kind'"),
        ('{"version": 2}', FileFormatError, "not a pixelpilot.model version 1 declaration"),
        ('{"history_thoughts": "no"}', FileFormatError, "history_thoughts must be true or false"),
        ('{"history_images": 0}', FileFormatError, "history_images must be a whole number >= 1"),
        ('{"history_images": "2"}', FileFormatError, "history_images must be a whole number"),
        ('{"history_images": true}', FileFormatError, "history_images must be a whole number"),
        ('{"prompt_kind": "' + "x" * 5000 + '"}', PromptError, "unknown prompt kind 'xxx"),
    ],
)
def test_a_bad_declaration_is_one_line_naming_the_file(
    tmp_path: Path, content: str, error: type, message: str
) -> None:
    (tmp_path / DECLARATION_FILE).write_text(content)
    with pytest.raises(error, match=message.replace("(", r"\(")) as caught:
        read_declaration(tmp_path)
    text = str(caught.value)
    assert text.startswith(str(tmp_path / DECLARATION_FILE)) and "\n" not in text
    assert len(text) < 300  # a hostile value is not echoed whole


def test_declare_profile_writes_what_is_not_the_default(tmp_path: Path) -> None:
    assert declare_profile(tmp_path, ModelProfile()) is None  # nothing to say: no file
    assert not (tmp_path / DECLARATION_FILE).exists()
    declare_profile(tmp_path, ModelProfile(prompt_kind="grounding"))
    assert read_declaration(tmp_path).prompt_kind == "grounding"
    # a declaration copied from the starting checkpoint is corrected, not left to speak
    declare_profile(tmp_path, ModelProfile(prompt_kind="computer"))
    assert read_declaration(tmp_path) == Declaration()
    declare_profile(tmp_path, ModelProfile(history_thoughts=False))
    assert read_declaration(tmp_path) == Declaration(history_thoughts=False)
    # the number of screenshots only when it is not the family's (Kimi's 5, Chameleon's 1)
    kimi = {"model_type": "kimi_k25"}
    declare_profile(tmp_path, ModelProfile(history_images=5, extra=kimi))
    assert read_declaration(tmp_path) == Declaration()
    declare_profile(tmp_path, ModelProfile(history_images=1, extra=kimi))
    assert read_declaration(tmp_path) == Declaration(history_images=1)
    declare_profile(tmp_path, ModelProfile(history_images=1, extra={"model_type": "chameleon"}))
    assert read_declaration(tmp_path) == Declaration()


def test_the_loaded_checkpoint_profile_carries_the_declaration(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from pixelpilot.vlm import load
    from pixelpilot.vlm.tiny import build_tiny

    old = build_tiny(tmp_path / "old", "kimi_k25", "xs", 0)
    assert load(str(old)).profile.prompt_kind == "computer"
    new = Path(shutil.copytree(old, tmp_path / "new"))
    write_declaration(new, Declaration("grounding", history_thoughts=False))
    profile = load(str(new)).profile
    assert (profile.prompt_kind, profile.prompt_language) == ("grounding", "English")
    assert profile.history_thoughts is False
    assert profile.history_images == 5 == load(str(old)).profile.history_images
    write_declaration(new, Declaration("grounding", history_images=2))
    assert load(str(new)).profile.history_images == 2


def test_a_bad_declaration_fails_before_the_weights_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only config.json and pixelpilot.json: the error comes before any weight is read."""
    pytest.importorskip("transformers")
    from pixelpilot.cli import main

    (tmp_path / "config.json").write_text('{"model_type": "kimi_k25"}')
    (tmp_path / DECLARATION_FILE).write_text('{"prompt_kind": "tablet"}')
    shot = tmp_path / "s.png"
    from PIL import Image

    Image.new("RGB", (40, 30), "white").save(shot)
    data = tmp_path / "ss.json"
    row = {"img_filename": "s.png", "instruction": "x", "bbox": [1, 1, 2, 2]}
    data.write_text(json.dumps([row]))
    argv = ["eval", "offline", str(data), "--format", "screenspot", "--model", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pixelpilot.json: unknown prompt kind 'tablet'" in err

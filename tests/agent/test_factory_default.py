"""The bundled model's slot: with no --model, run and eval run the checkpoint in
``pixelpilot/models/default/`` and name it; without one there, a one-line error.

The slot is pointed at a temporary folder (``factory.bundled_model_folder``), so these tests
hold whether or not this installation ships a model.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from pixelpilot.agent import factory
from pixelpilot.agent.trajectory import read_trajectory
from pixelpilot.cli import main

chromium = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no chromium")


@pytest.fixture
def empty_slot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    slot = tmp_path / "models" / "default"
    monkeypatch.setattr(factory, "bundled_model_folder", lambda: slot)
    return slot


@pytest.fixture(scope="module")
def tiny_kimi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from pixelpilot.vlm.profiles import Declaration, write_declaration
    from pixelpilot.vlm.tiny import build_tiny

    path = build_tiny(tmp_path_factory.mktemp("bundled") / "kimi", "kimi_k25", "xs", 0)
    write_declaration(path, Declaration("grounding"))  # as the trained default model does
    return Path(path)


@pytest.fixture
def bundled(empty_slot: Path, tiny_kimi: Path) -> Path:
    """A copy of the tiny checkpoint in the (temporary) bundled slot."""
    shutil.copytree(tiny_kimi, empty_slot)
    return empty_slot


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--env", "miniwob/click-test"],
        ["eval", "online", "miniwob/click-test", "--episodes", "1"],
        ["eval", "offline", "DATA"],
        ["record", "miniwob/click-test", "--model", "default", "--out", "OUT"],
    ],
    ids=["run", "eval online", "eval offline", "record"],
)
def test_without_a_bundled_model_the_error_is_one_line(
    empty_slot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    episode = tmp_path / "ep"
    episode.mkdir()
    argv = [str(episode) if a == "DATA" else str(tmp_path / "o") if a == "OUT" else a
            for a in argv]  # fmt: skip
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("error: no bundled default model in this installation")
    assert str(empty_slot) in captured.err and "--model expert" in captured.err


@chromium
def test_run_without_model_runs_the_bundled_model(
    bundled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    argv = ["run", "--env", "miniwob/click-test", "--max-steps", "2", "--out", str(out), "--json"]
    assert main(argv) == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out)
    name = f"default (kimi_k25, {bundled})"
    assert result["model"] == name and 1 <= result["steps"] <= 2
    header = read_trajectory(out).header
    assert header["model"] == name and header["prompt_kind"] == "grounding"


@chromium
@pytest.mark.slow  # ~25 s: a spawned worker starts Chromium and loads the model
def test_eval_online_without_model_runs_the_bundled_model(
    bundled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The folder is resolved in the evaluating process and handed to the spawned worker."""
    argv = ["eval", "online", "miniwob/click-test", "--episodes", "1", "--max-steps", "2",
            "--step-timeout", "300", "--out", str(tmp_path / "run"), "--json"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == f"default (kimi_k25, {bundled})"
    assert report["episodes"] == 1 and report["errors"] == 0, report["results"]
    header = read_trajectory(report["results"][0]["trajectory"]).header
    assert header["model"] == str(bundled) and header["prompt_kind"] == "grounding"


def test_a_wheel_carries_the_whole_slot(tmp_path: Path) -> None:
    """Shipping is one folder: every file of a checkpoint in the slot goes into the wheel."""
    import zipfile

    setuptools = pytest.importorskip("setuptools.build_meta")
    root = Path(__file__).resolve().parents[2]
    tree = tmp_path / "tree"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "default")
    shutil.copytree(root / "src", tree / "src", ignore=skip)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, tree / name)
    files = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
             "tokenizer_config.json", "chat_template.jinja", "preprocessor_config.json",
             "processor_config.json", "pixelpilot.json", "MODEL_CARD.md"]  # fmt: skip
    slot = tree / "src" / "pixelpilot" / "models" / "default"
    slot.mkdir()
    for name in files:
        (slot / name).write_text("x")
    here = Path.cwd()
    os.chdir(tree)
    try:
        wheel = setuptools.build_wheel(str(tmp_path / "dist"))
    finally:
        os.chdir(here)
        shutil.rmtree(tree / "build", ignore_errors=True)
    names = zipfile.ZipFile(tmp_path / "dist" / wheel).namelist()
    assert sorted(n.rsplit("/", 1)[1] for n in names if "/models/default/" in n) == sorted(files)
    assert "pixelpilot/models/__init__.py" in names

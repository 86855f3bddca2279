"""One error tree: every exception class in errors.py, no bare PixelpilotError raised."""

import ast
from pathlib import Path

import pytest

import pixelpilot.errors as errors
from pixelpilot.errors import ConfigError, InvalidAction, PixelpilotError

SRC = Path(errors.__file__).parent
BUILTIN_BASES = {"Exception", "BaseException", "ValueError", "KeyError", "TypeError",
                 "RuntimeError", "ImportError", "OSError", "LookupError"}  # fmt: skip


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted(SRC.rglob("*.py"))]


def _base_names(node: ast.ClassDef) -> set[str]:
    names = set()
    for base in node.bases:
        if isinstance(base, ast.Name):
            names.add(base.id)
        elif isinstance(base, ast.Attribute):
            names.add(base.attr)
    return names


def test_every_exception_class_lives_in_errors_py() -> None:
    ours = {n for n in dir(errors) if isinstance(getattr(errors, n), type)}
    outside = [
        f"{path.relative_to(SRC)}:{node.lineno} {node.name}"
        for path, tree in _modules()
        if path.name != "errors.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef) and _base_names(node) & (ours | BUILTIN_BASES)
    ]
    assert outside == []


def test_pixelpilot_error_is_never_raised_bare() -> None:
    bare = [
        f"{path.relative_to(SRC)}:{node.lineno}"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and isinstance(node.exc.func, ast.Name)
        and node.exc.func.id == "PixelpilotError"
    ]
    assert bare == []


@pytest.mark.parametrize(
    ("module", "name", "target"),
    [
        ("pixelpilot.cli", "BadInput", "ConfigError"),
        ("pixelpilot.agent.replay", "ReplayError", "ReplayError"),
        ("pixelpilot.agent.prompts", "PromptError", "PromptError"),
        ("pixelpilot.agent.run", "NoModelError", "NoModelError"),
        ("pixelpilot.eval.datasets", "DatasetFormatError", "DatasetFormatError"),
        ("pixelpilot.tools.calls", "CallError", "CallError"),
    ],
)
def test_old_import_names_still_work(module: str, name: str, target: str) -> None:
    import importlib

    assert getattr(importlib.import_module(module), name) is getattr(errors, target)


def test_new_classes_carry_their_data() -> None:
    bad = InvalidAction({"type": "click", "x": "5"}, "x must be an integer")
    assert isinstance(bad, ValueError) and isinstance(bad, PixelpilotError)
    assert bad.action == {"type": "click", "x": "5"} and bad.reason == "x must be an integer"
    assert str(bad) == "invalid action {'type': 'click', 'x': '5'}: x must be an integer"
    assert len(str(InvalidAction("x" * 10_000, "too long"))) < 300  # one readable line
    config = ConfigError("--seed must be >= 0", option="--seed")
    assert isinstance(config, ValueError) and config.option == "--seed"
    trajectory = errors.TrajectoryFormatError("a/trajectory.jsonl", 3, "bad step")
    assert isinstance(trajectory, errors.FileFormatError) and trajectory.line == 3
    assert str(trajectory) == "a/trajectory.jsonl:3: bad step"

"""A checkpoint's declared prompt kind reaches every caller: the policy, eval offline, eval online.

A tiny ``kimi_k25`` checkpoint declares ``grounding`` in its ``pixelpilot.json`` (as a
checkpoint trained with ``--prompt-kind grounding`` does); the same weights without the file
stand for a checkpoint from before declarations existed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pixelpilot.agent.prompts import PromptTemplate
from pixelpilot.envs.base import Observation

pytest.importorskip("transformers")
chromium = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no chromium")
INSTRUCTION = "Click the OK button."


def grounding(instruction: str = INSTRUCTION) -> str:
    return PromptTemplate("uitars-1.0", "grounding").render(instruction)


def computer(instruction: str = INSTRUCTION) -> str:
    return PromptTemplate("uitars-1.0", "computer").render(instruction)


@pytest.fixture(scope="module")
def grounding_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from pixelpilot.vlm.profiles import Declaration, write_declaration
    from pixelpilot.vlm.tiny import build_tiny

    path = build_tiny(tmp_path_factory.mktemp("kind") / "grounding", "kimi_k25", "xs", 0)
    write_declaration(path, Declaration("grounding"))
    return Path(path)


@pytest.fixture(scope="module")
def old_ckpt(grounding_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = Path(shutil.copytree(grounding_ckpt, tmp_path_factory.mktemp("kind") / "old"))
    (path / "pixelpilot.json").unlink()
    return path


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The chat-formatted prompt text of every conversation a checkpoint is asked."""
    from pixelpilot.vlm.hf import HFVLM

    texts: list[str] = []
    generate = HFVLM.generate

    def recording(self: Any, conversations: list, params: Any = None) -> Any:
        texts.extend(self.prompt_text(c) for c in conversations)
        return generate(self, conversations, params)

    monkeypatch.setattr(HFVLM, "generate", recording)
    return texts


def test_the_policy_prompts_with_the_declared_kind(
    grounding_ckpt: Path, old_ckpt: Path, asked: list[str]
) -> None:
    from pixelpilot.agent.factory import PolicySpec, load_model, make_policy
    from pixelpilot.vlm import SamplingParams

    vlm = load_model(PolicySpec.parse(str(grounding_ckpt)))
    policy = make_policy(PolicySpec.parse(str(grounding_ckpt)), model=vlm, retries=0)
    policy.params = SamplingParams(max_new_tokens=4)
    policy.reset(INSTRUCTION)
    observation = Observation(Image.new("RGB", (160, 210), "white"), INSTRUCTION)
    assert policy.conversation(observation).messages[0].text == grounding()
    policy.act(observation)
    assert len(asked) == 1 and grounding() in asked[0] and "## Note" not in asked[0]
    # the caller's explicit kind wins; an old checkpoint gets the computer prompt
    assert make_policy(PolicySpec("checkpoint"), model=vlm, kind="computer").template.kind == (
        "computer"
    )
    old = make_policy(PolicySpec.parse(str(old_ckpt)))
    old.reset(INSTRUCTION)
    assert old.conversation(observation).messages[0].text == computer()


@pytest.fixture
def screenspot(tmp_path: Path) -> Path:
    Image.new("RGB", (160, 210), "white").save(tmp_path / "s.png")
    row = {"img_filename": "s.png", "instruction": INSTRUCTION, "bbox": [10, 10, 40, 20]}
    (tmp_path / "ss.json").write_text(json.dumps([row]))
    return tmp_path / "ss.json"


def _offline(capsys: pytest.CaptureFixture[str], data: Path, *options: str) -> dict:
    from pixelpilot.cli import main

    argv = ["eval", "offline", str(data), "--format", "screenspot", "--max-new-tokens", "4",
            "--json", *options]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_eval_offline_prompts_with_the_declared_kind(
    grounding_ckpt: Path,
    old_ckpt: Path,
    screenspot: Path,
    asked: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = _offline(capsys, screenspot, "--model", str(grounding_ckpt))
    assert report["samples"] == 1 and report["model"] == str(grounding_ckpt)
    assert len(asked) == 1 and grounding() in asked[0]
    _offline(capsys, screenspot, "--model", str(grounding_ckpt), "--kind", "computer")
    assert computer() in asked[1]  # --kind given: it wins over the declaration
    _offline(capsys, screenspot, "--model", str(old_ckpt))
    assert computer() in asked[2]


@chromium
@pytest.mark.slow  # ~25 s: a spawned worker starts Chromium and loads the model
def test_eval_online_prompts_with_the_declared_kind(grounding_ckpt: Path, tmp_path: Path) -> None:
    """The episodes run in a spawned worker; the trajectory header records the prompt kind
    and language of the template the policy rendered every prompt with."""
    from pixelpilot.agent.trajectory import read_trajectory
    from pixelpilot.eval.online import OnlineConfig, evaluate_online

    config = OnlineConfig(
        "miniwob/click-test", str(grounding_ckpt), episodes=1, max_steps=1,
        step_timeout=300, out=str(tmp_path / "run"),
    )  # fmt: skip
    report = evaluate_online(config)
    assert report["errors"] == 0, [r["error"] for r in report["results"]]
    header = read_trajectory(report["results"][0]["trajectory"]).header
    assert (header["prompt_kind"], header["prompt_language"]) == ("grounding", "English")
    assert header["prompt"] == "uitars-1.0"

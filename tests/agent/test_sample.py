"""The step sample's one home: the agent online, offline evaluation and training targets read
and write model coordinates the same way, and build the same prompt, on real MiniWoB pages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pixelpilot.agent.loop import Agent
from pixelpilot.agent.sample import StepSample, rewrite_answer
from pixelpilot.agent.trajectory import read_trajectory
from pixelpilot.eval.datasets import load_samples
from pixelpilot.eval.offline import OfflineConfig, evaluate_offline
from pixelpilot.tools.frames import CoordinateFrame
from pixelpilot.vlm import ModelProfile, ScriptedVLM

TASK = "miniwob/click-test-2"
TINY = 12 * 28 * 28  # the tiny Qwen2.5-VL's max_pixels: a 160x210 screen is seen as 84x112
PROFILES = {
    "uitars-1.5 default limits": ModelProfile(name="big", frame="uitars-1.5"),
    "uitars-1.5 tiny limits": ModelProfile(
        name="tiny", frame="uitars-1.5", min_pixels=4 * 28 * 28, max_pixels=TINY
    ),
    "uitars-1.0": ModelProfile(name="rel", frame="uitars-1.0", prompt_family="uitars-1.0"),
    "uitars-1.0 tiny limits": ModelProfile(
        name="rel-tiny", frame="uitars-1.0", prompt_family="uitars-1.0", max_pixels=TINY
    ),
}
ANSWERS = [  # three steps of clicks in the model's own coordinates (some off the buttons)
    "Thought: look left.\nAction: click(start_box='(42,42)')",
    "Thought: now lower.\nAction: click(start_box='(60,90)')",
    "Thought: and right.\nAction: click(start_box='(75,100)')",
]


@pytest.fixture(scope="module")
def env() -> Iterator[Any]:
    from pixelpilot.envs import make

    environment = make(TASK)
    yield environment
    environment.close()


def record(env: Any, profile: ModelProfile, out: Path, **agent_kw: Any) -> ScriptedVLM:
    answers = iter(ANSWERS)
    vlm = ScriptedVLM(lambda conv: next(answers), profile)
    Agent(vlm, env, max_steps=3, wait_seconds=0.0, task=TASK, **agent_kw).run(seed=5, out=out)
    return vlm


@pytest.mark.parametrize("name", list(PROFILES))
def test_an_answer_lands_on_the_same_pixel_online_and_offline(env, tmp_path, name) -> None:
    """One model answer, executed online by the agent and scored offline on the recorded step
    (the model's own answer from predictions, and through ``StepSample.parse``), is the same
    screen pixel: offline scoring reads coordinates with the model's resize limits."""
    profile = PROFILES[name]
    record(env, profile, tmp_path / "ep")
    steps = [s for s in read_trajectory(tmp_path / "ep").steps if s.actions]
    samples = load_samples(tmp_path / "ep", "trajectory")
    assert len(samples) == len(steps) >= 1
    for step, sample in zip(steps, samples, strict=True):
        parsed = sample.parse(step.response, profile)
        assert [a.to_dict() for a in parsed.actions] == list(step.actions)
    report_dir = tmp_path / "offline"
    answers = iter(ANSWERS)
    evaluate_offline(
        OfflineConfig(str(tmp_path / "ep"), "trajectory", out=str(report_dir), batch_size=1),
        vlm=ScriptedVLM(lambda conv: next(answers), profile),
    )
    import json

    rows = [json.loads(x) for x in (report_dir / "scores.jsonl").read_text().splitlines()]
    assert [r["pred"] for r in rows] == [list(s.actions) for s in steps]


def test_tiny_limits_change_the_pixel(env, tmp_path) -> None:
    """The defect this pins: without the model's limits, (42,42) from the tiny model would be
    read as a different pixel (the default limits upscale 160x210 instead of shrinking it)."""
    record(env, PROFILES["uitars-1.5 tiny limits"], tmp_path / "ep")
    sample = load_samples(tmp_path / "ep", "trajectory")[0]
    with_limits = sample.parse(ANSWERS[0], PROFILES["uitars-1.5 tiny limits"]).actions[0]
    without = sample.parse(ANSWERS[0], CoordinateFrame("uitars-1.5")).actions[0]
    assert (with_limits.x, with_limits.y) == (80, 105)  # where the agent clicked online
    assert (without.x, without.y) == (27, 26)  # where scoring without the limits looked


@pytest.mark.parametrize("name", ["uitars-1.5 tiny limits", "uitars-1.0"])
@pytest.mark.parametrize("language", ["English", "Chinese"])
def test_offline_prompt_equals_the_agents_prompt(env, tmp_path, name, language) -> None:
    """For each recorded step, the conversation offline evaluation (and training) builds is
    the one the agent sent the model online: same texts, same screenshots pixel for pixel."""
    profile = PROFILES[name]
    vlm = record(env, profile, tmp_path / "ep", language=language)
    samples = load_samples(tmp_path / "ep", "trajectory")
    assert len(vlm.calls) == 3 and len(samples) == 3
    for online, sample in zip(vlm.calls, samples, strict=True):
        offline = sample.conversation(profile, language=language)
        assert _shape(offline) == _shape(online)
    assert language in samples[0].conversation(profile, language=language).messages[0].text


def _shape(conv: Any) -> list[tuple[str, str, list[bytes]]]:
    return [(m.role, m.text, [im.tobytes() for im in m.images]) for m in conv.messages]


@pytest.mark.parametrize("name", list(PROFILES))
def test_sft_target_parses_back_onto_the_gold_pixel(tmp_path, name) -> None:
    """The SFT target is the gold action in the model's frame and limits; parsed back it
    lands on the gold pixel up to the rounding of one model coordinate unit."""
    from PIL import Image

    profile = PROFILES[name]
    shot = tmp_path / "s.png"
    Image.new("RGB", (160, 210), "white").save(shot)
    for x, y in [(0, 0), (17, 99), (80, 105), (159, 209), (123, 4)]:
        sample = StepSample(
            id="e/0",
            episode="e",
            task="t",
            step=0,
            image=str(shot),
            instruction="Click.",
            gold=({"type": "click", "x": x, "y": y},),
            screen=(160, 210),
            gold_response=f"Thought: there.\nAction: click(start_box='({x},{y})')",
            coords=CoordinateFrame("pixels"),
        )
        text = sample.target_text(profile)
        assert text.startswith("Thought: there.\nAction: click(")
        back = sample.parse(text, profile).actions[0]
        mw, mh = profile.coords.model_size(sample.screen)
        unit_x, unit_y = 160 / mw, 210 / mh
        assert abs(back.x - x) <= max(0.5, unit_x / 2) + 0.5
        assert abs(back.y - y) <= max(0.5, unit_y / 2) + 0.5


def test_history_is_rewritten_into_the_models_frame() -> None:
    """A recorded answer in one frame is shown to a model in another frame as that model
    would have written it: the same screen pixel."""
    screen = (160, 210)
    recorded = "Thought: go.\nAction: click(start_box='(100,50)')"
    source = CoordinateFrame("pixels")
    for profile in PROFILES.values():
        text = rewrite_answer(recorded, source, profile.coords, screen)
        sample = StepSample("e/0", "e", "t", 0, "", "", (), screen)
        got = sample.parse(text, profile).actions[0]
        assert abs(got.x - 100) <= 2 and abs(got.y - 50) <= 2, (profile.name, text)
    # an answer that does not parse is shown as it was
    assert rewrite_answer("garbage", source, PROFILES["uitars-1.0"].coords, screen) == "garbage"

"""The agent loop on real MiniWoB pages in headless Chromium, with a scripted model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pixelpilot.agent.loop import Agent
from pixelpilot.agent.trajectory import read_trajectory
from pixelpilot.envs.base import PolicyOutput
from pixelpilot.vlm import ModelProfile, ScriptedVLM

PIXELS = ModelProfile(name="scripted", frame="pixels", prompt_family="uitars-1.5")
TASK = "miniwob/click-button"


@pytest.fixture(scope="module")
def env() -> Iterator[Any]:
    from pixelpilot.envs import make

    environment = make(TASK)
    yield environment
    environment.close()


def target_box(env: Any) -> tuple[int, int, int, int]:
    """The box of the button the utterance names (read from the DOM, as an expert would)."""
    return tuple(
        env.unwrapped.page.evaluate(
            """() => {
              const want = core.getUtterance().match(/"(.*)"/)[1];
              const b = [...document.querySelectorAll('#area button')]
                  .find(e => e.textContent.trim() === want);
              const r = b.getBoundingClientRect();
              return [r.left, r.top, r.right, r.bottom].map(Math.round);
            }"""
        )
    )


def click_target(env: Any, frame: str = "pixels") -> str:
    x1, y1, x2, y2 = target_box(env)
    x, y = (x1 + x2) // 2, (y1 + y2) // 2
    if frame == "uitars-1.0":  # relative 0..1000 of the 160x210 screenshot
        x, y = round(x * 1000 / 160), round(y * 1000 / 210)
    return f"Thought: the named button.\nAction: click(start_box='({x},{y})')"


def agent(env: Any, answers: list[Any], profile: ModelProfile = PIXELS, **kw: Any):
    """A scripted model: each answer is text, or a function of the env returning text."""
    it = iter(answers)

    def respond(conv: Any) -> str:
        answer = next(it)
        return answer(env) if callable(answer) else answer

    vlm = ScriptedVLM(respond, profile)
    kw.setdefault("wait_seconds", 0.0)
    kw.setdefault("ask_user", None)
    return Agent(vlm, env, task=TASK, **kw), vlm


def test_successful_episode_is_recorded(env: Any, tmp_path: Path) -> None:
    a, _ = agent(
        env,
        [
            "Thought: look first.\nAction: scroll(start_box='(80,150)', direction='down')",
            click_target,
        ],
    )
    result = a.run(seed=1, out=tmp_path / "ep")
    assert result.success and result.reason == "terminated"
    assert result.steps == 2 and result.total_reward > 0
    ep = read_trajectory(result.trajectory)
    assert ep.finished and ep.success and ep.end["reason"] == "terminated"
    assert ep.header["task"] == TASK and ep.header["frame"] == "pixels" and ep.header["seed"] == 1
    assert ep.header["screen"] == [160, 210] and "button" in ep.header["instruction"]
    assert ep.steps[0].actions == ({"type": "scroll", "x": 80, "y": 150, "direction": "down"},)
    assert ep.steps[1].actions[0]["type"] == "click" and ep.steps[1].terminated
    assert ep.steps[1].thought == "the named button."
    assert {"model", "parse", "prompt", "env", "policy"} <= set(ep.steps[0].timing)
    assert ep.load_screenshot(0).size == (160, 210)


def test_parse_error_is_retried_with_higher_temperature(env: Any) -> None:
    temps: list[float] = []
    answers = iter(["no action here", "click(start_box=", None])

    class Recording(ScriptedVLM):
        def generate(self, conversations, params=None):  # type: ignore[override]
            temps.append(params.temperature)
            return super().generate(conversations, params)

    vlm = Recording(lambda conv: next(answers) or click_target(env), PIXELS)
    steps: list[Any] = []
    a = Agent(vlm, env, wait_seconds=0.0, ask_user=None, retries=3, on_step=steps.append)
    result = a.run(seed=2)
    assert result.success and result.steps == 1
    assert temps[0] == 0.0 and temps[1] > 0.0 and temps[2] >= temps[1]
    assert steps[0].error is None
    rejected = [x["response"] for x in steps[0].extra["attempts"]]
    assert rejected == ["no action here", "click(start_box="]


def test_unparseable_answer_is_recorded_and_the_run_goes_on(env: Any, tmp_path: Path) -> None:
    a, _ = agent(env, ["gibberish"] * 3 + [click_target], retries=2)
    result = a.run(seed=3, out=tmp_path)
    ep = read_trajectory(tmp_path)
    assert ep.steps[0].error.startswith("parse error:") and ep.steps[0].actions == ()
    assert len(ep.steps[0].extra["attempts"]) == 3
    assert result.success and result.steps == 2


def test_finished_ends_the_episode(env: Any) -> None:
    a, _ = agent(env, ["Thought: done.\nAction: finished(content='ok')"])
    result = a.run(seed=4)
    assert result.reason == "finished" and not result.success and result.steps == 1


def test_call_user_without_a_person_needs_user(env: Any) -> None:
    a, _ = agent(env, ["Action: call_user()"])
    assert a.run(seed=5).reason == "needs_user"


def test_call_user_answer_goes_to_the_model(env: Any) -> None:
    questions: list[str] = []

    def ask(q: str) -> str:
        questions.append(q)
        return "the okay one"

    a, vlm = agent(env, ["Action: call_user(content='which?')", click_target], ask_user=ask)
    result = a.run(seed=6)
    assert questions == ["which?"] and result.success
    assert "The user answered: the okay one" in vlm.calls[1].messages[-1].text


def test_wait_waits_and_observes_again(env: Any, tmp_path: Path) -> None:
    a, _ = agent(env, ["Action: wait()", click_target], wait_seconds=0.2)
    assert a.run(seed=7, out=tmp_path).success
    assert read_trajectory(tmp_path).steps[0].timing["env"] >= 0.2


def test_max_steps(env: Any) -> None:
    a, _ = agent(env, ["Action: scroll(start_box='(80,150)', direction='up')"] * 3, max_steps=3)
    result = a.run(seed=8)
    assert result.reason == "max_steps" and result.steps == 3 and not result.success


def test_history_keeps_last_images_and_older_text(env: Any) -> None:
    answers = [f"Thought: t{i}\nAction: hotkey(key='shift')" for i in range(7)] + [click_target]
    a, vlm = agent(env, answers, max_steps=10)
    assert a.run(seed=9).success
    conv = vlm.calls[-1]  # the 8th call: 7 past turns
    assert len(conv.images) == 5  # the default history: 4 past screenshots + the current one
    roles = [m.role for m in conv.messages]
    assert roles[0] == "user" and "button" in conv.messages[0].text
    assert roles.count("assistant") == 7
    assistant = [m.text for m in conv.messages if m.role == "assistant"]
    assert assistant[0].startswith("Thought: t0") and assistant[-1].startswith("Thought: t6")
    assert roles[1:4] == ["assistant", "assistant", "assistant"]  # oldest turns: text only
    assert conv.messages[-1].images and conv.messages[-1].role == "user"


def test_history_images_follows_the_profile(env: Any) -> None:
    profile = ModelProfile(name="s", frame="pixels", history_images=2)
    a, vlm = agent(env, ["Action: hotkey(key='shift')"] * 3 + [click_target], profile)
    assert a.run(seed=10).success
    assert [len(c.images) for c in vlm.calls] == [1, 2, 2, 2]


def test_uitars_frame_is_converted_to_screen_pixels(env: Any, tmp_path: Path) -> None:
    profile = ModelProfile(name="s", frame="uitars-1.0", prompt_family="uitars-1.0")
    a, vlm = agent(env, [lambda e: click_target(e, "uitars-1.0")], profile)
    result = a.run(seed=11, out=tmp_path)
    assert result.success
    x1, y1, x2, y2 = target_box(env)
    click = read_trajectory(tmp_path).steps[0].actions[0]
    assert x1 <= click["x"] <= x2 and y1 <= click["y"] <= y2
    assert "<|box_start|>" in vlm.calls[0].messages[0].text  # the 1.0 prompt wording


def test_action_the_env_refuses_is_recorded_and_shown(env: Any, tmp_path: Path) -> None:
    """A browser page that went away: the env refuses the click; the run records it."""

    def break_page(e: Any) -> str:
        e.unwrapped.page.close()
        return "Action: click(start_box='(80,100)')"

    a, vlm = agent(env, [break_page, "Action: finished()"])
    try:
        result = a.run(seed=12, out=tmp_path)
    finally:
        env.unwrapped.page = None  # the next reset opens a fresh page
        env.unwrapped.context = None
    ep = read_trajectory(tmp_path)
    assert ep.steps[0].error.startswith("click failed: browser error")
    assert "The previous action failed: click failed" in vlm.calls[1].messages[-1].text
    assert result.steps == 2


def test_expert_style_policy_runs_through_the_same_loop(env: Any, tmp_path: Path) -> None:
    from pixelpilot.envs.base import BasePolicy, PolicyOutput
    from pixelpilot.tools.frames import CoordinateFrame

    class DomExpert(BasePolicy):
        coords = CoordinateFrame("pixels")

        def act(self, observation: Any) -> PolicyOutput:
            return PolicyOutput(click_target(env), target=target_box(env))

    result = Agent(policy=DomExpert(), env=env, model="expert", task=TASK).run(
        seed=13, out=tmp_path
    )
    ep = read_trajectory(tmp_path)
    assert result.success and ep.header["model"] == "expert"
    assert ep.steps[0].target is not None and len(ep.steps[0].target) == 4


def test_agent_needs_exactly_one_policy(env: Any) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Agent(env=env)


def test_a_policy_must_state_its_contract(env: Any) -> None:
    """The loop reads coords, prompt_family and note() from every policy: an object without
    them is refused up front, not probed with getattr mid-episode."""

    class Bare:
        def reset(self, instruction: str) -> None: ...

        def act(self, observation: Any) -> PolicyOutput:
            return PolicyOutput("Action: wait()")

    with pytest.raises(TypeError, match="coords"):
        Agent(policy=Bare(), env=env)


_ASK = """
from pixelpilot.agent.loop import ask_at_terminal
print("ANSWER:", repr(ask_at_terminal("Which colour?")), flush=True)
"""


def test_call_user_asks_the_person_at_a_terminal() -> None:
    """stdin is a real pseudo-terminal: the question goes to stderr, the typed line back."""
    import os
    import pty
    import subprocess
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", _ASK], stdin=slave, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    os.close(slave)
    os.write(master, b"the blue one\n")
    out, err = proc.communicate(timeout=60)
    os.close(master)
    assert "ANSWER: 'the blue one'" in out
    assert "The agent asks: Which colour?" in err


def test_call_user_without_a_terminal_is_none() -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _ASK], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "ANSWER: None" in proc.stdout and proc.stderr == ""


def test_retries_of_a_real_model_are_reproducible(tiny_qwen_dir: Path) -> None:
    """A random-weight model's answers do not parse, so it is asked again at a temperature;
    the retries sample with a seed made from the instruction, step and attempt, so two
    policies asked the same thing give the same attempts."""
    from PIL import Image

    from pixelpilot.agent.policy import VLMPolicy
    from pixelpilot.envs.base import Observation
    from pixelpilot.vlm import SamplingParams, load

    vlm = load(str(tiny_qwen_dir))
    seen = Observation(Image.new("RGB", (160, 210), "white"), "Click the OK button.")
    runs = []
    for _ in range(2):
        policy = VLMPolicy(vlm, params=SamplingParams(max_new_tokens=12), retries=2)
        policy.reset(seen.instruction)
        runs.append(policy.act(seen).attempts)
    assert len(runs[0]) >= 2  # the retries did happen (random weights: nothing parses)
    assert runs[0] == runs[1]
    assert runs[0][0]["response"] != runs[0][1]["response"]  # sampled, not the greedy repeat

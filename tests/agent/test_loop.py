"""The agent loop with a scripted model on a small in-process env."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_fakes import ButtonEnv, ButtonExpert

from pixelpilot.agent.loop import Agent
from pixelpilot.agent.trajectory import read_trajectory
from pixelpilot.tools.actions import Wait
from pixelpilot.vlm import ModelProfile, ScriptedVLM

PIXELS = ModelProfile(name="scripted", frame="pixels", prompt_family="uitars-1.5")


@pytest.fixture
def button_env() -> ButtonEnv:
    return ButtonEnv()


CLICK = "Thought: the blue button.\nAction: click(start_box='(100,60)')"


def _agent(env: ButtonEnv, responses: list[str], **kw: object) -> tuple[Agent, ScriptedVLM]:
    vlm = ScriptedVLM(responses, PIXELS)
    kw.setdefault("wait_seconds", 0.0)
    kw.setdefault("ask_user", None)
    return Agent(vlm, env, task="test/button", **kw), vlm  # type: ignore[arg-type]


def test_successful_episode_is_recorded(button_env: ButtonEnv, tmp_path: Path) -> None:
    agent, _ = _agent(button_env, ["Thought: type first.\nAction: type(content='hi')", CLICK])
    result = agent.run(seed=0, out=tmp_path / "ep")
    assert result.success and result.reason == "terminated"
    assert result.steps == 2 and result.total_reward == 1.0
    ep = read_trajectory(result.trajectory)
    assert ep.finished and ep.success and ep.end["reason"] == "terminated"
    assert ep.header["task"] == "test/button" and ep.header["frame"] == "pixels"
    assert (
        ep.header["screen"] == [200, 120] and ep.header["instruction"] == "Click the blue button."
    )
    assert [s.actions for s in ep.steps] == [
        ({"type": "type", "content": "hi"},),
        ({"type": "click", "x": 100, "y": 60},),
    ]
    assert ep.steps[1].thought == "the blue button." and ep.steps[1].terminated
    assert {"model", "parse", "prompt", "env", "policy"} <= set(ep.steps[0].timing)
    # the screenshot is what the model saw before acting: the typed mark shows on step 1 only
    assert ep.load_screenshot(0).getpixel((2, 2)) == (240, 240, 240)
    assert ep.load_screenshot(1).getpixel((2, 2)) == (0, 0, 0)


def test_parse_error_is_retried_with_higher_temperature(button_env: ButtonEnv) -> None:
    temps: list[float] = []
    answers = iter(["no action here", "click(start_box=", CLICK])

    class Recording(ScriptedVLM):
        def generate(self, conversations, params=None):  # type: ignore[override]
            temps.append(params.temperature)
            return super().generate(conversations, params)

    vlm = Recording(lambda conv: next(answers), PIXELS)
    agent = Agent(vlm, button_env, wait_seconds=0.0, ask_user=None, retries=3)
    steps = []
    agent.on_step = steps.append
    result = agent.run(seed=0)
    assert result.success and result.steps == 1
    assert temps[0] == 0.0 and temps[1] > 0.0 and temps[2] >= temps[1]
    assert steps[0].error is None
    rejected = [a["response"] for a in steps[0].extra["attempts"]]
    assert rejected == ["no action here", "click(start_box="]


def test_unparseable_answer_is_recorded_and_the_run_goes_on(
    button_env: ButtonEnv, tmp_path: Path
) -> None:
    agent, vlm = _agent(button_env, ["gibberish"] * 3 + [CLICK], retries=2)
    result = agent.run(seed=0, out=tmp_path)
    ep = read_trajectory(tmp_path)
    assert ep.steps[0].error.startswith("parse error:") and ep.steps[0].actions == ()
    assert len(ep.steps[0].extra["attempts"]) == 3
    assert result.success and result.steps == 2


def test_refused_action_is_shown_to_the_model(button_env: ButtonEnv, tmp_path: Path) -> None:
    agent, vlm = _agent(button_env, ["Action: click(start_box='(199,10)')", CLICK])
    result = agent.run(seed=0, out=tmp_path)
    ep = read_trajectory(tmp_path)
    assert "click failed: click outside the page" in ep.steps[0].error
    last_user = vlm.calls[1].messages[-1]
    assert last_user.role == "user" and "click outside the page" in last_user.text
    assert result.success


def test_finished_ends_the_episode(button_env: ButtonEnv) -> None:
    agent, _ = _agent(button_env, ["Thought: done.\nAction: finished(content='ok')"])
    result = agent.run(seed=0)
    assert result.reason == "finished" and not result.success and result.steps == 1
    assert button_env.actions == []  # finished is not sent to the env


def test_call_user_without_a_person_needs_user(button_env: ButtonEnv) -> None:
    agent, _ = _agent(button_env, ["Action: call_user()"])
    assert agent.run(seed=0).reason == "needs_user"


def test_call_user_answer_goes_to_the_model(button_env: ButtonEnv) -> None:
    questions: list[str] = []

    def ask(q: str) -> str:
        questions.append(q)
        return "the blue one"

    agent, vlm = _agent(button_env, ["Action: call_user(content='which?')", CLICK], ask_user=ask)
    result = agent.run(seed=0)
    assert questions == ["which?"] and result.success
    assert "The user answered: the blue one" in vlm.calls[1].messages[-1].text


def test_wait_steps_the_env(button_env: ButtonEnv) -> None:
    agent, _ = _agent(button_env, ["Action: wait()", CLICK], wait_seconds=0.01)
    assert agent.run(seed=0).success
    assert isinstance(button_env.actions[0], Wait)


def test_max_steps(button_env: ButtonEnv) -> None:
    agent, _ = _agent(button_env, ["Action: type(content='a')"] * 4, max_steps=4)
    result = agent.run(seed=0)
    assert result.reason == "max_steps" and result.steps == 4 and not result.success


def test_history_keeps_last_images_and_older_text(button_env: ButtonEnv) -> None:
    answers = [f"Thought: t{i}\nAction: type(content='{i}')" for i in range(7)] + [CLICK]
    agent, vlm = _agent(button_env, answers, max_steps=10)
    agent.run(seed=0)
    conv = vlm.calls[-1]  # the 8th call: 7 past turns
    assert len(conv.images) == 5  # the default history: 4 past screenshots + the current one
    roles = [m.role for m in conv.messages]
    assert roles[0] == "user" and "Click the blue button." in conv.messages[0].text
    assert roles.count("assistant") == 7
    assistant = [m.text for m in conv.messages if m.role == "assistant"]
    assert assistant[0].startswith("Thought: t0") and assistant[-1].startswith("Thought: t6")
    # the oldest three turns are text only: no image message before their answers
    assert roles[1:4] == ["assistant", "assistant", "assistant"]
    assert conv.messages[-1].images and conv.messages[-1].role == "user"


def test_history_images_follows_the_profile(button_env: ButtonEnv) -> None:
    profile = ModelProfile(name="s", frame="pixels", history_images=2)
    vlm = ScriptedVLM(["Action: type(content='a')"] * 3 + [CLICK], profile)
    Agent(vlm, button_env, wait_seconds=0.0, ask_user=None).run(seed=0)
    assert [len(c.images) for c in vlm.calls] == [1, 2, 2, 2]


def test_uitars_frame_is_converted_to_screen_pixels(button_env: ButtonEnv) -> None:
    profile = ModelProfile(name="s", frame="uitars-1.0")
    vlm = ScriptedVLM(["Action: click(start_box='(500,500)')"], profile)
    result = Agent(vlm, button_env, wait_seconds=0.0, ask_user=None).run(seed=0)
    assert result.success  # (500,500) relative = (100,60) on 200x120: the button
    assert button_env.actions[0].x == 100 and button_env.actions[0].y == 60


def test_expert_policy_runs_through_the_same_loop(button_env: ButtonEnv, tmp_path: Path) -> None:
    agent = Agent(policy=ButtonExpert(button_env), env=button_env, model="expert")
    result = agent.run(seed=7, out=tmp_path)
    ep = read_trajectory(tmp_path)
    assert result.success and ep.header["model"] == "expert" and ep.header["seed"] == 7
    assert ep.steps[0].target == button_env.button


def test_agent_needs_exactly_one_policy(button_env: ButtonEnv) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Agent(env=button_env)

"""The agent as a LangChain Runnable and env actions as tools, on a real MiniWoB page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda

from pixelpilot.agent.langchain import AgentRunnable, EnvSession, env_tools
from pixelpilot.agent.loop import Agent
from pixelpilot.agent.trajectory import read_trajectory
from pixelpilot.vlm import ModelProfile, ScriptedVLM

_CENTRE = """() => { const r = document.querySelector('#subbtn').getBoundingClientRect();
  return [Math.round((r.left + r.right) / 2), Math.round((r.top + r.bottom) / 2)]; }"""


@pytest.fixture(scope="module")
def env() -> Iterator[Any]:
    from pixelpilot.envs import make

    environment = make("miniwob/click-test")
    yield environment
    environment.close()


def test_agent_runnable_composes(env: Any, tmp_path: Path) -> None:
    seen: list[str] = []

    def answer(conv: Any) -> str:
        seen.append(conv.messages[0].text)
        x, y = env.unwrapped.page.evaluate(_CENTRE)
        return f"Action: click(start_box='({x},{y})')"

    vlm = ScriptedVLM(answer, ModelProfile(name="s", frame="pixels"))
    agent = Agent(vlm, env, task="miniwob/click-test", wait_seconds=0.0, ask_user=None)
    chain = AgentRunnable(agent, out_root=tmp_path) | RunnableLambda(
        lambda r: (r["success"], r["steps"], r["trajectory"])
    )
    success, steps, where = chain.invoke("Press the button labelled Click Me!")
    assert success and steps == 1
    assert "Press the button labelled Click Me!" in seen[0]
    assert read_trajectory(where).header["instruction"] == "Press the button labelled Click Me!"
    result = AgentRunnable(agent).invoke({"task": "", "seed": 4})
    assert result["seed"] == 4 and result["success"]
    assert "Click the button" in seen[-1]  # empty task: the env's own utterance


def test_env_tools_step_the_live_env(env: Any, tmp_path: Path) -> None:
    session = EnvSession(env, task="miniwob/click-test", out=tmp_path)
    session.reset(seed=2)
    tools = {t.name: t for t in env_tools(session)}
    assert {"click", "type", "scroll", "finished"} <= set(tools)
    assert (
        tools["scroll"]
        .invoke({"x": 80, "y": 150, "direction": "down"})
        .startswith("scroll done; reward 0")
    )
    x, y = env.unwrapped.page.evaluate(_CENTRE)
    answer = tools["click"].invoke({"x": x, "y": y})
    assert "reward 1" in answer and "the episode ended" in answer
    assert session.total_reward > 0
    assert "episode is over" in tools["click"].invoke({"x": x, "y": y})
    episode = read_trajectory(tmp_path / "seed-2")
    assert episode.finished and episode.success and len(episode.steps) == 2
    assert episode.steps[1].actions == ({"type": "click", "x": x, "y": y},)

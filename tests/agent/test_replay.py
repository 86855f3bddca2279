"""Replay of recorded MiniWoB expert episodes in real Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pixelpilot.agent.replay import ReplayError, replay
from pixelpilot.agent.run import record_tasks
from pixelpilot.agent.trajectory import FILE_NAME, read_trajectory
from pixelpilot.vlm import ModelProfile, ScriptedVLM

TASKS = ["miniwob/click-button", "miniwob/enter-text"]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rec")
    summary = record_tasks(TASKS, episodes=1, seed=5, out=out)
    assert summary["mean_success"] == 1.0
    record_tasks(TASKS[1:], episodes=1, seed=6, out=out)
    return out


@pytest.fixture(scope="module")
def envs() -> Iterator[dict[str, Any]]:
    """One live env per task for the tests that are not about rebuilding the env."""
    from pixelpilot.envs import make

    made = {task: make(task) for task in TASKS}
    yield made
    for env in made.values():
        env.close()


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _edit(directory: Path, line: int, edit) -> None:  # noqa: ANN001
    lines = (directory / FILE_NAME).read_text().splitlines()
    obj = json.loads(lines[line])
    edit(obj)
    lines[line] = json.dumps(obj)
    (directory / FILE_NAME).write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("task", TASKS)
def test_expert_episodes_replay_with_identical_reward(recorded: Path, task: str) -> None:
    for directory in sorted((recorded / task.replace("/", "-")).iterdir()):
        report = replay(directory)  # a fresh env built from the header
        episode = read_trajectory(directory)
        assert report.steps == len(episode.steps) > 0
        assert report.reward_replayed == report.reward_recorded == episode.total_reward > 0
        assert report.divergent_steps == [] and report.first_divergence is None


def test_a_changed_action_is_reported_as_divergent(
    recorded: Path, envs: dict[str, Any], tmp_path: Path
) -> None:
    directory = _copy(recorded / "miniwob-click-button" / "seed-5", tmp_path / "ep")

    def miss(step: dict) -> None:
        step["actions"] = [{"type": "click", "x": 2, "y": 205}]

    _edit(directory, 1, miss)
    report = replay(directory, env=envs["miniwob/click-button"])
    assert report.divergent_steps == [0]
    assert report.reward_replayed == 0 and report.reward_recorded > 0
    problems = " ".join(report.first_divergence["problems"])
    assert "reward" in problems and "terminated False, recorded True" in problems


def test_a_different_seed_shows_in_the_screenshots(
    recorded: Path, envs: dict[str, Any], tmp_path: Path
) -> None:
    directory = _copy(recorded / "miniwob-enter-text" / "seed-5", tmp_path / "ep")
    _edit(directory, 0, lambda header: header.update(seed=999))
    report = replay(directory, env=envs["miniwob/enter-text"])
    assert 0 in report.divergent_steps
    assert "screenshot differs" in report.first_divergence["problems"][0]


def test_from_step_hands_over_to_a_model(
    recorded: Path, envs: dict[str, Any], tmp_path: Path
) -> None:
    directory = recorded / "miniwob-enter-text" / "seed-6"
    vlm = ScriptedVLM(["Thought: done.\nAction: finished()"], ModelProfile(name="m"))
    env = envs["miniwob/enter-text"]
    report = replay(directory, env=env, from_step=1, vlm=vlm, out=tmp_path / "handover")
    assert report.steps == 1 and report.divergent_steps == []
    assert report.handover["reason"] == "finished" and report.handover["steps"] == 2
    episode = read_trajectory(tmp_path / "handover")
    assert episode.finished and len(episode.steps) == 2
    assert episode.header["replay_of"] == str(directory) and episode.header["model"] == "m"
    recorded_first = read_trajectory(directory).steps[0]
    assert episode.steps[0].actions == recorded_first.actions
    assert episode.steps[1].actions == ({"type": "finished", "content": ""},)
    # the model saw the replayed step as its own history: one past answer, two screenshots
    assert [m.role for m in vlm.calls[0].messages].count("assistant") == 1
    assert len(vlm.calls[0].images) == 2


def test_bad_from_step_is_a_clear_error(recorded: Path) -> None:
    directory = recorded / "miniwob-click-button" / "seed-5"
    vlm = ScriptedVLM(["Action: finished()"])
    with pytest.raises(ReplayError, match=r"--from-step must be in 0\.\.1"):
        replay(directory, from_step=5, vlm=vlm)
    with pytest.raises(ReplayError, match="needs a model"):
        replay(directory, from_step=0)


def test_bare_desktop_refusal_is_recorded_and_replays(tmp_path: Path) -> None:
    """A real private X desktop: ``open_app`` is refused by the env (``info["action_error"]``),
    recorded on its step, shown to the model; the episode replays without divergence."""
    from pixelpilot.agent.loop import Agent
    from pixelpilot.agent.run import env_spec, open_env

    spec = env_spec("desktop", None, "Look around")
    env = open_env(spec)
    answers = ["Action: open_app(app_name='files')", "Action: click(start_box='(10,10)')",
               "Action: finished()"]  # fmt: skip
    vlm = ScriptedVLM(answers, ModelProfile(name="s", frame="pixels"))
    try:
        agent = Agent(vlm, env, task=spec.task, env_kwargs=spec.kwargs, ask_user=None)
        result = agent.run(seed=0, out=tmp_path / "ep")
    finally:
        env.close()
    assert result.reason == "finished" and result.steps == 3
    episode = read_trajectory(tmp_path / "ep")
    assert episode.header["instruction"] == "Look around" and episode.header["env"] == "desktop"
    assert episode.steps[0].error == "open_app failed: open_app: not available on the desktop"
    assert "The previous action failed: open_app failed" in vlm.calls[1].messages[-1].text
    report = replay(tmp_path / "ep")
    assert report.steps == 3 and report.divergent_steps == []

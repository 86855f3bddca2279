"""Desktop tasks: registry, seeded variation, real checkers, scripted experts run through
the UI-TARS grammar exactly as the agent loop runs a model."""

from __future__ import annotations

from typing import Any

import pytest

from pixelpilot.envs.base import Observation, Policy
from pixelpilot.envs.registry import list_tasks, make, suites
from pixelpilot.tools import parse_response

TASKS = [
    "desktop/terminal-file",
    "desktop/form-fill",
    "desktop/menu-select",
    "desktop/drag-to-box",
    "desktop/copy-code",
    "desktop/dialog-close",
]


def run_expert(env: Any, seed: int) -> dict[str, Any]:
    """One episode of the task's expert; returns the last info plus the episode's length."""
    obs, info = env.reset(seed=seed)
    expert = env.unwrapped.expert()
    assert isinstance(expert, Policy)
    expert.reset(obs["instruction"])
    for step in range(env.unwrapped.max_steps):
        out = expert.act(Observation.from_gym(obs, info))
        response = parse_response(out.text, "uitars-1.5", env.unwrapped.screen)
        for action in response.actions:
            point = action.point
            if out.target is not None and point is not None and action.type != "drag":
                x1, y1, x2, y2 = out.target
                assert x1 - 2 <= point[0] <= x2 + 2 and y1 - 2 <= point[1] <= y2 + 2
            obs, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            return {**info, "steps": step + 1, "reward": reward}
    return {**info, "steps": env.unwrapped.max_steps, "reward": 0.0}


def test_registry_lists_the_suite() -> None:
    assert list_tasks("desktop") == ["desktop", *TASKS]  # the bare desktop and the tasks
    assert suites()["desktop"] == TASKS


@pytest.mark.parametrize("task", TASKS)
def test_expert_solves_and_checker_rejects_doing_nothing(task: str) -> None:
    with make(task) as env:
        info = run_expert(env, seed=7)
        assert info["success"] is True and info["reward"] == 1.0, info
        assert info["steps"] <= 8
        obs, _ = env.reset(seed=8)
        _, reward, terminated, _, info = env.step({"type": "finished", "content": ""})
        assert terminated and reward == 0.0 and info["success"] is False


def test_seeds_vary_the_episode() -> None:
    with make("desktop/dialog-close", screen=(800, 600)) as env:
        seen = {}
        for seed in (1, 2, 1):
            obs, info = env.reset(seed=seed)
            key = (obs["instruction"], tuple(info["extras"]["windows"][0].values()))
            assert seen.setdefault(seed, key) == key  # same seed, same episode
        assert seen[1] != seen[2]


@pytest.mark.slow
@pytest.mark.parametrize("task", TASKS)
def test_expert_success_rate_over_20_seeds(task: str) -> None:
    with make(task) as env:
        wins = sum(run_expert(env, seed)["success"] for seed in range(20))
    assert wins >= 19, f"{task}: {wins}/20"

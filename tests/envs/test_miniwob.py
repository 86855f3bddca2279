"""MiniWoB++ tasks in real Chromium: the protocol, determinism, and the scripted experts, whose
text goes through ``parse_response`` exactly as a model's answer would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from pixelpilot.envs import Observation, PolicyOutput, make, resolve_tasks, suites
from pixelpilot.envs.chromium import ChromiumHost
from pixelpilot.envs.miniwob import EXPERT_TASKS, TASK_SIZE, MiniWoBEnv, task_names
from pixelpilot.errors import ConfigError, EnvError
from pixelpilot.tools import Click, parse_response

pytestmark = pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists(), reason="Debian chromium is not installed"
)


@pytest.fixture(scope="module")
def host() -> Iterator[ChromiumHost]:
    with ChromiumHost() as shared:
        yield shared


@pytest.fixture(scope="module")
def click_test(host: ChromiumHost) -> Iterator[MiniWoBEnv]:
    with make("miniwob/click-test", browser=host) as env:
        yield env


def run_expert(env: MiniWoBEnv, seed: int, max_steps: int = 10) -> tuple[float, list[PolicyOutput]]:
    """One expert episode, stepping the env with the actions parsed from the expert's text."""
    obs, info = env.reset(seed=seed)
    expert = env.unwrapped.expert()
    expert.reset(obs["instruction"])
    outputs: list[PolicyOutput] = []
    reward = 0.0
    for _ in range(max_steps):
        out = expert.act(Observation.from_gym(obs, info))
        outputs.append(out)
        response = parse_response(out.text, "uitars-1.5", TASK_SIZE)
        for action in response.actions:
            obs, reward, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    return reward, outputs


def test_every_bundled_task_is_registered() -> None:
    names = task_names()
    assert len(names) >= 100
    assert set(EXPERT_TASKS) <= set(names)
    assert set(resolve_tasks("miniwob-simple")) == {f"miniwob/{n}" for n in EXPERT_TASKS}
    assert len(suites()["miniwob"]) == len(names)


def test_reset_follows_the_protocol(click_test: MiniWoBEnv) -> None:
    obs, info = click_test.reset(seed=1)
    assert obs["instruction"] == "Click the button."
    assert obs["screenshot"].shape == (210, 160, 3) and obs["screenshot"].dtype == np.uint8
    assert info["extras"]["task"] == "miniwob/click-test" and info["extras"]["seed"] == 1
    assert click_test.page.evaluate("() => core.EPISODE_MAX_TIME") >= 3_600_000


def test_same_seed_same_utterance_and_first_screenshot(host: ChromiumHost) -> None:
    with make("miniwob/click-button", browser=host) as env:
        first, _ = env.reset(seed=7)
        env.step(Click(80, 120))
        other, _ = env.reset(seed=8)
        again, _ = env.reset(seed=7)
    with make("miniwob/click-button", browser=host, reload="context") as fresh:
        fresh_obs, _ = fresh.reset(seed=7)
    assert first["instruction"] == again["instruction"] == fresh_obs["instruction"]
    assert np.array_equal(first["screenshot"], again["screenshot"])
    assert np.array_equal(first["screenshot"], fresh_obs["screenshot"])
    assert not np.array_equal(first["screenshot"], other["screenshot"])


def test_reward_terminated_and_truncated(host: ChromiumHost) -> None:
    with make("miniwob/click-test", browser=host, max_steps=3) as env:
        env.reset(seed=0)
        box = env.page.evaluate(
            "() => { const r = subbtn.getBoundingClientRect(); return [r.x, r.y, r.width]; }"
        )
        x, y = int(box[0] + box[2] / 2), int(box[1] + box[2] / 2)
        _, reward, terminated, truncated, info = env.step(Click(x, y))
        assert (reward, terminated, truncated) == (1.0, True, False)
        assert info["task_done"] and info["raw_reward"] == 1.0
        env.reset(seed=0)
        corner = (2, 205) if x > 40 or y < 190 else (150, 60)
        results = [env.step(Click(*corner))[1:4] for _ in range(3)]
        assert results == [(0.0, False, False), (0.0, False, False), (0.0, False, True)]


def test_wrong_click_gives_negative_reward(host: ChromiumHost) -> None:
    with make("miniwob/click-test-2", browser=host) as env:
        obs, _ = env.reset(seed=3)
        wrong = "TWO" if "ONE" in obs["instruction"] else "ONE"
        x, y = env.page.evaluate(
            "(t) => { const b = [...document.querySelectorAll('button')].find(e => e.textContent"
            " === t).getBoundingClientRect(); return [b.x + b.width / 2, b.y + b.height / 2]; }",
            wrong,
        )
        _, reward, terminated, _, _ = env.step(Click(int(x), int(y)))
    assert reward < 0 and terminated


def test_no_expert_for_other_tasks(host: ChromiumHost) -> None:
    with make("miniwob/drag-box", browser=host) as env:
        with pytest.raises(EnvError, match="no scripted expert"):
            env.unwrapped.expert()
    with pytest.raises(ConfigError, match="reload must be one of"):
        make("miniwob/click-test", reload="sometimes")


@pytest.mark.parametrize("task", EXPERT_TASKS)
def test_expert_solves_a_few_seeds(host: ChromiumHost, task: str) -> None:
    with make(f"miniwob/{task}", browser=host) as env:
        for seed in (0, 1):
            reward, outputs = run_expert(env, seed)
            assert reward > 0, (task, seed, [o.text for o in outputs])
            for out in outputs:
                assert out.text.startswith("Thought: ") and "\nAction: " in out.text
                x1, y1, x2, y2 = out.target
                assert 0 <= x1 <= x2 < TASK_SIZE[0] and 0 <= y1 <= y2 < TASK_SIZE[1]
            clicks = [
                (o, parse_response(o.text, "uitars-1.5", TASK_SIZE).actions[0]) for o in outputs
            ]
            for out, action in clicks:  # a click lands inside the element's box
                if action.type == "click":
                    assert out.target[0] - 1 <= action.x <= out.target[2] + 1
                    assert out.target[1] - 1 <= action.y <= out.target[3] + 1


@pytest.mark.parametrize(
    ("task", "words"),
    [
        ("click-test-2", {"ONE", "TWO"}),
        ("click-tab", {"Tab", "#1", "#2"}),
        ("login-user", {"Login"}),
    ],
)
def test_the_expert_names_the_visible_words_and_their_boxes(
    host: ChromiumHost, task: str, words: set[str]
) -> None:
    """``labels``: the words of the task area, each box on the screen below the instruction
    band; the word a click-test-2 instruction names lies inside the clicked button."""
    with make(f"miniwob/{task}", browser=host) as env:
        for seed in (0, 1):
            _, outputs = run_expert(env, seed)
            labels = outputs[0].labels
            assert words <= {word for word, _ in labels}, labels
            for _, (x1, y1, x2, y2) in labels:
                assert 0 <= x1 < x2 < TASK_SIZE[0] and 50 <= y1 < y2 < TASK_SIZE[1]
            if task == "click-test-2":
                named = outputs[0].text.split("labelled ")[1].split(".")[0]
                (box,) = [b for word, b in labels if word == named]
                t = outputs[0].target
                assert t[0] <= box[0] and box[2] <= t[2] and t[1] <= box[1] and box[3] <= t[3]


@pytest.mark.slow
@pytest.mark.parametrize("task", EXPERT_TASKS)
def test_expert_succeeds_on_95_percent_of_50_seeds(host: ChromiumHost, task: str) -> None:
    with make(f"miniwob/{task}", browser=host) as env:
        wins = sum(run_expert(env, seed)[0] > 0 for seed in range(50))
    assert wins >= 48, f"{task}: {wins}/50"


@pytest.mark.slow
def test_every_task_resets(host: ChromiumHost) -> None:
    failures = {}
    for name in task_names():
        try:
            with make(f"miniwob/{name}", browser=host) as env:
                obs, _ = env.reset(seed=0)
                assert obs["instruction"], "empty utterance"
        except Exception as exc:  # noqa: BLE001 - collect them all
            failures[name] = str(exc)[:200]
    assert failures == {}


def test_killed_browser_mid_episode_then_reset_recovers() -> None:
    import os
    import signal
    import time

    with make("miniwob/click-test") as env:  # its own browser, so the kill hurts no one else
        first, _ = env.reset(seed=4)
        os.kill(env.host.pid, signal.SIGKILL)
        with pytest.raises(EnvError, match="crashed"):
            for _ in range(40):
                env.step(Click(80, 100))
                time.sleep(0.05)
        again, _ = env.reset(seed=4)
        pids = env.host.pids()
    assert np.array_equal(first["screenshot"], again["screenshot"])
    assert pids
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{p}").exists() for p in pids)


# click-dialog-2: a sampled click near the dialog's buttons can leave a one-grey-level
# difference in about ten pixels between two runs of the same seed and action (flaky: from 4 of
# 4 passing to 1 of 3 depending on the commit; a timing-dependent rendering state, probably a
# hover transition, captured at different moments). Known, not yet fixed: docs/envs.md.
_FLAKY_DETERMINISM = pytest.mark.xfail(
    reason="click-dialog-2: one-level pixel differences after a click (docs/envs.md)", strict=False
)


@pytest.mark.slow
@pytest.mark.parametrize(
    "task",
    [
        pytest.param(t, marks=_FLAKY_DETERMINISM) if t == "click-dialog-2" else t
        for t in EXPERT_TASKS
    ],
)
def test_check_env_passes_for_expert_tasks(host: ChromiumHost, task: str) -> None:
    # reload="none" leaves a one-level antialiasing difference at jQuery UI dialog edges after
    # keyboard input (see docs/envs.md); a page reload per episode is pixel-exact.
    reload = "page" if task.startswith("click-dialog") else "none"
    with make(f"miniwob/{task}", browser=host, reload=reload) as env:
        check_env(env, skip_render_check=True)

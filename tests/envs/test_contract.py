"""One contract for every env: the browser, a MiniWoB task, the bare desktop and a desktop task
are each held to ``check_pixel_env`` (same info keys, ``info["success"]``, ``InvalidAction`` for
every invalid action, clamping, truncation) and to Gymnasium's ``check_env``."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gymnasium.utils.env_checker import check_env

from pixelpilot.envs import make
from pixelpilot.envs.base import Observation
from pixelpilot.envs.checker import check_pixel_env
from pixelpilot.errors import EnvError
from pixelpilot.tools import parse_response

HAS_CHROMIUM = Path("/usr/bin/chromium").exists()
HAS_DESKTOP = all(shutil.which(b) for b in ("Xvfb", "openbox", "bwrap", "xauth"))
needs_chromium = pytest.mark.skipif(not HAS_CHROMIUM, reason="Debian chromium is not installed")
needs_desktop = pytest.mark.skipif(not HAS_DESKTOP, reason="Xvfb/openbox/bwrap missing")

PAGE = "<!doctype html><title>plain</title><button style='margin:40px'>OK</button>"


def _browser(tmp: Path) -> Any:
    (tmp / "page.html").write_text(PAGE)
    env = make("browser", url=(tmp / "page.html").as_uri(), viewport=(320, 240), max_steps=3)
    env.wait_seconds = 0.0  # what a wait action sleeps; the checker waits to truncate
    return env


ENVS: dict[str, Callable[[Path], Any]] = {
    "browser": _browser,
    "miniwob/click-test": lambda tmp: make("miniwob/click-test", max_steps=3),
    "desktop": lambda tmp: make(
        "desktop", instruction="Look around", screen=(480, 360), max_steps=3, wait_seconds=0.0
    ),
    "desktop/dialog-close": lambda tmp: make(
        "desktop/dialog-close", screen=(800, 600), max_steps=3, wait_seconds=0.0
    ),
}
MARKS = {"browser": needs_chromium, "miniwob/click-test": needs_chromium}


@pytest.fixture(
    params=[pytest.param(k, marks=MARKS.get(k, needs_desktop)) for k in ENVS], ids=list(ENVS)
)
def fresh_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    env = ENVS[request.param](tmp_path)
    try:
        yield env
    finally:
        env.close()


def test_every_env_keeps_the_contract(fresh_env: Any) -> None:
    check_pixel_env(fresh_env)
    fresh_env.close()
    with pytest.raises(EnvError, match="before reset"):
        fresh_env.step({"type": "wait"})


# The browser's run takes ~25 s here (a fresh browser context per reset); it also runs by
# default as tests/envs/test_browser.py::test_check_env_passes.
GYM_MARKS = {"browser": [needs_chromium, pytest.mark.slow]}


@pytest.mark.parametrize(
    "kind",
    [pytest.param(k, marks=GYM_MARKS.get(k, MARKS.get(k, needs_desktop))) for k in ENVS],
)
def test_every_env_passes_gymnasiums_checker(kind: str, tmp_path: Path) -> None:
    with ENVS[kind](tmp_path) as env:
        check_env(env, skip_render_check=True)


def _solve(env: Any, seed: int) -> dict[str, Any]:
    """The task's expert, its answers parsed as the agent parses a model's: the last info."""
    obs, info = env.reset(seed=seed)
    expert = env.unwrapped.expert()
    expert.reset(obs["instruction"])
    for _ in range(env.unwrapped.max_steps):
        out = expert.act(Observation.from_gym(obs, info))
        for action in parse_response(out.text, "uitars-1.5", env.unwrapped.screen).actions:
            obs, _, terminated, truncated, info = env.step(action)
            assert info["success"] in (None, True) or terminated or truncated
            if terminated or truncated:
                return info
    return info


@pytest.mark.parametrize(
    "task",
    [
        pytest.param("miniwob/click-test", marks=needs_chromium),
        pytest.param("desktop/dialog-close", marks=needs_desktop),
    ],
)
def test_a_solved_task_reports_success_on_its_last_step(task: str) -> None:
    with make(task, max_steps=5) as env:
        info = _solve(env, seed=3)
    assert info["success"] is True and info["task"] == task


@needs_chromium
def test_miniwob_failure_is_decided_when_the_task_ends() -> None:
    """A wrong click ends a MiniWoB episode with a negative reward: success is False then."""
    with make("miniwob/click-button", max_steps=5) as env:
        obs, info = env.reset(seed=0)
        _, reward, terminated, _, info = env.step({"type": "click", "x": 2, "y": 208})
        if not terminated:  # the click missed every button: the episode goes on, undecided
            assert info["success"] is None
            _, reward, terminated, _, info = env.step({"type": "finished", "content": ""})
        assert terminated and info["success"] is False


def test_registry_owns_the_bare_desktop_and_browser_ids() -> None:
    from pixelpilot.envs import list_tasks, resolve_tasks
    from pixelpilot.envs.desktop import DesktopEnv

    assert "desktop" in list_tasks("desktop") and list_tasks("browser") == ["browser"]
    assert "desktop" not in resolve_tasks("desktop")  # the suite: the six tasks
    env = make("desktop", instruction="Open the menu", max_steps=4)
    assert type(env) is DesktopEnv and env.instruction == "Open the menu"
    assert env.task_id == "desktop" and env.max_steps == 4  # no display started yet
    env.close()

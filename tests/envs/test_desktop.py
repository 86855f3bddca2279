"""DesktopEnv: Gymnasium contract, private X server, input, process clean-up, crash recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pixelpilot.envs.desktop import DesktopEnv
from pixelpilot.envs.display import XDisplay
from pixelpilot.envs.registry import make
from pixelpilot.errors import ConfigError, EnvError, InvalidAction


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def form_env() -> Iterator[DesktopEnv]:
    env = make("desktop/form-fill", screen=(800, 600))
    yield env
    env.close()


def test_action_space() -> None:
    """``check_env`` and the contract checker run in tests/envs/test_contract.py."""
    env = make("desktop/dialog-close", screen=(640, 480))  # no display until reset
    assert env.action_space.sample() == {"type": "wait"}
    assert env.action_space.sample() in env.action_space
    assert {"type": "click", "x": 10, "y": 10} in env.action_space
    assert {"type": "click", "x": 640, "y": 10} not in env.action_space
    assert {"type": "fly"} not in env.action_space
    assert {"type": "open_app", "app_name": "files"} not in env.action_space  # not executable
    env.close()


def test_observation_info_and_actions(form_env: DesktopEnv) -> None:
    obs, info = form_env.reset(seed=3)
    assert obs["screenshot"].shape == (600, 800, 3) and obs["screenshot"].dtype == np.uint8
    assert obs in form_env.observation_space
    assert set(info) == {"task", "seed", "step", "success", "agent_done", "extras"}
    assert (info["task"], info["seed"], info["success"]) == ("desktop/form-fill", 3, None)
    extras = info["extras"]
    assert extras["focused"] == "Sign-up form"
    assert [w["title"] for w in extras["windows"]] == ["Sign-up form"]
    assert extras["display"] != os.environ.get("DISPLAY")
    field = form_env.unwrapped.state()["fields"]["Name"]["box"]
    x, y = (field[0] + field[2]) // 2, (field[1] + field[3]) // 2
    form_env.step({"type": "click", "x": x, "y": y})
    text = "Grüße, 東京 & café"
    obs2, reward, terminated, truncated, info = form_env.step({"type": "type", "content": text})
    assert form_env.unwrapped.state()["fields"]["Name"]["value"] == text  # xdotool typed it
    assert not np.array_equal(obs["screenshot"], obs2["screenshot"])
    assert (reward, terminated, truncated, info["step"]) == (0.0, False, False, 2)


def test_bad_actions(form_env: DesktopEnv) -> None:
    form_env.reset(seed=0)
    _, _, terminated, _, info = form_env.step(
        {"type": "drag", "x1": 5000, "y1": 3, "x2": 1, "y2": 900}
    )
    assert not terminated and info["step"] == 1  # clamped onto the screen
    assert form_env.unwrapped.display.send(op="position") == [1, 599]
    with pytest.raises(InvalidAction, match="press_home is not available in desktop/form-fill"):
        form_env.step({"type": "press_home"})
    with pytest.raises(InvalidAction, match="x: coordinate must not be negative"):
        form_env.step({"type": "click", "x": -1, "y": 3})
    with pytest.raises(InvalidAction, match="y: missing in click") as refused:
        form_env.step({"type": "click", "x": 1})
    assert refused.value.action == {"type": "click", "x": 1}
    _, reward, terminated, _, info = form_env.step({"type": "finished", "content": ""})
    assert terminated and reward == 0.0 and info["success"] is False and info["step"] == 2
    assert info["agent_done"] == "finished" and form_env.unwrapped.timing_ms["step"] > 0


def test_max_steps_truncates() -> None:
    with make("desktop/dialog-close", screen=(640, 480), max_steps=2, wait_seconds=0.0) as env:
        env.reset(seed=1)
        assert env.step({"type": "wait"})[3] is False
        assert env.step({"type": "wait"})[3] is True


def test_x_server_is_private(form_env: DesktopEnv) -> None:
    form_env.reset(seed=0)
    display = form_env.unwrapped.display
    cmdline = Path(f"/proc/{display.xvfb.pid}/cmdline").read_bytes().split(b"\0")
    assert [b"-nolisten", b"tcp"] == cmdline[cmdline.index(b"-nolisten") :][:2]
    port = f"{6000 + display.number:04X}"
    listening = [ln.split()[1] for ln in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    assert not [a for a in listening if a.endswith(":" + port)]
    env = display.env()
    ok = subprocess.run(["xdotool", "getdisplaygeometry"], env=env, capture_output=True, text=True)
    assert ok.stdout.split() == ["800", "600"]
    no_cookie = subprocess.run(
        ["xdotool", "getdisplaygeometry"],
        env=env | {"XAUTHORITY": "/dev/null"},
        capture_output=True,
    )
    assert no_cookie.returncode != 0


def test_refuses_existing_display_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="use_existing_display=True"):
        DesktopEnv(display=":0")
    with XDisplay((320, 240)) as user:  # stands in for the desktop of the person running us
        monkeypatch.setenv("DISPLAY", user.name)
        monkeypatch.setenv("XAUTHORITY", str(user.xauthority))
        with DesktopEnv(screen=(400, 300)) as env:
            obs, info = env.reset(seed=0)
            assert info["extras"]["display"] != user.name
            assert obs["screenshot"].shape == (300, 400, 3)
        with DesktopEnv(screen=(320, 240), use_existing_display=True) as env:
            _, info = env.reset(seed=0)
            assert info["extras"]["display"] == user.name
        assert user.alive()  # closing an attached env leaves the user's server alone


def test_close_leaves_no_process_and_crash_is_reported() -> None:
    env = make("desktop/terminal-file", screen=(800, 600))
    with env:
        env.reset(seed=0)
        display = env.unwrapped.display
        first_pids = display.pids() + env.unwrapped.jail.pids()
        assert len(first_pids) == 4 and all(_alive(p) for p in first_pids)
        inside = _descendants(env.unwrapped.jail.pids()[0])
        names = {Path(f"/proc/{p}/comm").read_text().strip() for p in inside}
        assert {"xterm", "bash"} <= names  # the app and its shell, inside bwrap
        first_pids += inside
        os.kill(display.xvfb.pid, signal.SIGKILL)
        display.xvfb.wait()
        with pytest.raises(EnvError, match="X server .* died"):
            env.step({"type": "wait"})
        obs, info = env.reset(seed=1)  # a fresh server
        assert info["extras"]["windows"] and obs["screenshot"].any()
        pids = env.unwrapped.display.pids() + env.unwrapped.jail.pids()
        pids += _descendants(env.unwrapped.jail.pids()[0])
        tmpdir = env.unwrapped.display.tmpdir
        home = env.unwrapped.home
        assert (home / ".app.log").exists()
    time.sleep(0.3)
    assert not [p for p in first_pids + pids if _alive(p)]
    assert tmpdir is not None and not tmpdir.exists()
    assert not home.exists()
    env.close()  # closing twice is fine

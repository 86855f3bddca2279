"""Replay of recorded MiniWoB expert episodes in real Chromium."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pixelpilot.agent.replay import ReplayError, replay
from pixelpilot.agent.run import record_tasks
from pixelpilot.agent.trajectory import FILE_NAME, read_trajectory
from pixelpilot.errors import SandboxViolation
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
    error = episode.steps[0].error or ""
    assert error.startswith("open_app failed: ") and "not available" in error
    assert "The previous action failed: open_app failed" in vlm.calls[1].messages[-1].text
    report = replay(tmp_path / "ep")
    assert report.steps == 3 and report.divergent_steps == []


# --- a recording is untrusted: only declared env kwargs, same sandbox as a live run --------


def _tampered(directory: Path, env: str, env_kwargs: dict[str, Any]) -> Path:
    """A one-step recording of ``env`` whose header carries ``env_kwargs`` as it is."""
    from PIL import Image

    from pixelpilot.agent.trajectory import Step, TrajectoryWriter

    header = {"task": env, "env": env, "env_kwargs": env_kwargs, "seed": 0, "model": "m",
              "frame": "pixels", "screen": [160, 210]}  # fmt: skip
    with TrajectoryWriter(directory, header) as writer:
        writer.append(Step(index=0, screenshot="step-0000.png", actions=({"type": "wait"},)),
                      Image.new("RGB", (160, 210)))  # fmt: skip
    return directory


def _exit_line(capsys: pytest.CaptureFixture[str], args: list[str]) -> tuple[int, str]:
    from pixelpilot.cli import main

    code = main(args)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return code, lines[0]


@pytest.mark.parametrize(
    ("env", "kwargs", "refused"),
    [
        ("browser", {"url": "http://127.0.0.1:9/", "executable_path": "SCRIPT"}, "executable_path"),
        ("browser", {"url": "http://127.0.0.1:9/", "browser": "x"}, "browser"),
        ("miniwob/click-button", {"executable_path": "SCRIPT"}, "executable_path"),
        ("miniwob/click-button", {"args": ["--no-sandbox"], "env": {"A": "1"}}, "args"),
        ("desktop", {"instruction": "x", "apps": [["SCRIPT"]]}, "apps"),
        ("desktop", {"instruction": "x", "network": True}, "network"),
        ("desktop/form-fill", {"display": ":0", "use_existing_display": True}, "display"),
    ],
)
def test_launch_options_in_a_header_are_refused_before_any_process_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], env: str, kwargs: dict, refused: str
) -> None:
    marker = tmp_path / "ran"
    script = tmp_path / "script.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    kwargs = json.loads(json.dumps(kwargs).replace("SCRIPT", str(script)))
    directory = _tampered(tmp_path / "ep", env, kwargs)
    for extra in ([], ["--trust-recorded-url", "--allow", "http://127.0.0.1:9"]):
        code, line = _exit_line(capsys, ["replay", str(directory), *extra])
        assert code == 2 and repr(refused) in line and "launch options" in line
    with pytest.raises(SandboxViolation):
        replay(directory, env=object())  # refused even when the caller brings the env
    assert not marker.exists()


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"url": "file:///etc/passwd"}, "recorded url must be an http(s) URL"),
        ({"url": "about:blank"}, "recorded url must be an http(s) URL"),
        ({"url": "javascript:alert(1)"}, "recorded url must be an http(s) URL"),
        ({"url": "http://"}, "recorded url must be an http(s) URL"),
        ({"url": "http://127.0.0.1:99999/"}, "recorded url is not a valid URL"),
        ({"url": ["http://127.0.0.1:9/"]}, "recorded url must be an http(s) URL"),
        ({}, "the browser recording has no url"),
        ({"url": "http://127.0.0.1:9/", "allow": ["file:///etc/"]}, "recorded allow entry"),
        ({"url": "http://127.0.0.1:9/", "allow": "http://127.0.0.1:9/"}, "recorded allow must"),
    ],
)
def test_a_browser_recording_opens_only_http_urls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kwargs: dict, problem: str
) -> None:
    directory = _tampered(tmp_path / "ep", "browser", kwargs)
    code, line = _exit_line(capsys, ["replay", str(directory), "--trust-recorded-url"])
    assert code == 2 and problem in line
    with pytest.raises(ReplayError, match=re.escape(problem)):
        replay(directory, trust_url=True)  # the same check without the CLI


def test_a_browser_recording_opens_only_with_the_same_allow_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real recording of a page on a local HTTP server: replay refuses it until the user
    names the same origin again (or trusts the recording), then replays it without divergence."""
    import functools
    import http.server
    import threading

    from pixelpilot.agent.factory import make_env
    from pixelpilot.agent.loop import Agent

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<body style='margin:0'><button>OK</button></body>")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep stderr for the command's own line
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        env = make_env("browser", url=origin + "/")
        vlm = ScriptedVLM(["Action: click(start_box='(20,10)')", "Action: finished()"],
                          ModelProfile(name="s", frame="pixels"))  # fmt: skip
        try:
            Agent(vlm, env, task="browser", env_kwargs={"url": origin + "/"}, ask_user=None).run(
                seed=0, out=tmp_path / "ep"
            )
        finally:
            env.close()
        code, line = _exit_line(capsys, ["replay", str(tmp_path / "ep")])
        assert code == 2 and f"--allow {origin}" in line and "--trust-recorded-url" in line
        with pytest.raises(SandboxViolation, match="same allow-list"):
            replay(tmp_path / "ep")
        code, line = _exit_line(capsys, ["replay", str(tmp_path / "ep"), "--allow", origin + "1"])
        assert code == 2
        report = replay(tmp_path / "ep", allow=[origin + "/"])
        assert report.steps == 2 and report.divergent_steps == []
        report = replay(tmp_path / "ep", trust_url=True)
        assert report.steps == 2 and report.divergent_steps == []
    finally:
        server.shutdown()

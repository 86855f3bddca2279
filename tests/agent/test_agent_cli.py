"""``pixelpilot run / record / replay / view`` on real MiniWoB pages."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixelpilot.agent.trajectory import read_trajectory
from pixelpilot.cli import main


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1  # exactly one JSON object on stdout
    return json.loads(out[0])


def test_record_replay_view(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rec"
    summary = _json(
        capsys,
        ["record", "miniwob/click-test", "--expert", "--episodes", "2", "--seed", "3",
         "--max-steps", "3",
         "--out", str(out), "--json"],
    )  # fmt: skip
    row = summary["tasks"]["miniwob/click-test"]
    assert row["episodes"] == 2 and row["success_rate"] == 1.0 and row["mean_steps"] >= 1
    assert summary["mean_success"] == 1.0
    seeds = sorted(p.name for p in (out / "miniwob-click-test").iterdir())
    assert seeds == ["seed-3", "seed-4"]
    episode = out / "miniwob-click-test" / "seed-4"
    assert read_trajectory(episode).seed == 4

    report = _json(capsys, ["replay", str(episode), "--json"])
    assert set(report) >= {"steps", "reward_recorded", "reward_replayed", "divergent_steps"}
    assert report["reward_replayed"] == report["reward_recorded"] > 0
    assert report["divergent_steps"] == []

    assert main(["view", str(out)]) == 0
    html_path = Path(capsys.readouterr().out.strip())
    assert html_path == out / "view.html" and html_path.stat().st_size > 1000


def test_record_miss_first_marks_the_injected_click(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rec"
    _json(capsys, ["record", "miniwob/click-test", "--expert", "--miss-first", "--episodes", "1",
                   "--seed", "5", "--out", str(out), "--json"])  # fmt: skip
    episode = read_trajectory(out / "miniwob-click-test" / "seed-5")
    assert [s.perturbed for s in episode.steps] == [True] + [False] * (len(episode.steps) - 1)
    assert main(["view", str(out)]) == 0
    html = Path(capsys.readouterr().out.strip()).read_text()
    assert html.count("perturbed (injected") == 1


def test_record_keeps_going_past_an_episode_the_expert_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """click-test-2 seed 50158 hides button ONE under TWO: the expert raises EnvError there."""
    import pixelpilot.agent.run as run
    from pixelpilot.errors import EnvError

    args = ["record", "miniwob/click-test-2", "--expert", "--episodes", "2", "--seed", "50157"]
    summary = _json(capsys, [*args, "--out", str(tmp_path / "a"), "--json"])
    row = summary["tasks"]["miniwob/click-test-2"]
    assert row["episodes"] == 2 and row["errors"] == 1 and row["success_rate"] == 0.5
    assert not read_trajectory(tmp_path / "a" / "miniwob-click-test-2" / "seed-50158").finished
    monkeypatch.setattr(run, "ERROR_STREAK", 1)  # one error in a row is now a broken env
    with pytest.raises(EnvError, match="'ONE' is not visible"):
        run.record_tasks(["miniwob/click-test-2"], episodes=2, seed=50157, out=tmp_path / "b")


def test_run_with_the_expert(tmp_path: Path) -> None:
    """The real entry point in a subprocess: JSON on stdout, status lines on stderr."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "pixelpilot.cli", "run", "--env", "miniwob/click-button",
         "--model", "expert", "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["success"] and result["reason"] == "terminated"
    assert Path(result["viewer"]).is_file() and result["trajectory"] == str(out)
    assert "step 0 click(" in proc.stderr
    assert read_trajectory(out).header["instruction"].startswith("Click on")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--env", "browser", "--url", "http://127.0.0.1:9/"], "needs the TASK"),
        (["run", "--env", "miniwob/no-such-task", "--model", "expert"], "unknown task id"),
        (["record", "miniwob/click-test", "--out", "x"], "exactly one of --expert or --model"),
        (["replay", "nowhere", "--from-step", "1"], "--from-step needs --model"),
        (["replay", "nowhere", "--json"], "no trajectory file"),
        (["view", "nowhere"], "not a directory"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]


@pytest.fixture
def page_url(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving one page with a button."""
    import functools
    import http.server
    import threading

    (tmp_path / "index.html").write_text(
        "<html><body><h1>Hello</h1><button onclick=\"document.title='clicked'\">OK</button>"
        "</body></html>"
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()
    server.server_close()


@pytest.mark.slow  # ~80 s on 2 shared cores: 4 generations of 256 tokens per step
def test_run_a_real_tiny_model_on_a_web_page(
    tiny_qwen_dir: Path, page_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A random-weight model answers nonsense: every step records the parse error (after the
    retries) and the run ends by its step budget instead of crashing."""
    out = tmp_path / "run"
    result = _json(
        capsys,
        ["run", "Press OK", "--env", "browser", "--url", page_url, "--model", str(tiny_qwen_dir),
         "--max-steps", "2", "--out", str(out), "--json"],
    )  # fmt: skip
    assert result["steps"] == 2 and result["reason"] in ("max_steps", "finished", "terminated")
    episode = read_trajectory(out)
    assert episode.header["env_kwargs"] == {"url": page_url}
    assert episode.header["instruction"] == "Press OK" and episode.header["screen"] == [1280, 720]
    for step in episode.steps:
        assert step.timing["model"] > 0
        if step.error is not None and step.error.startswith("parse error"):
            assert step.actions == () and len(step.extra["attempts"]) == 4  # 1 + 3 retries
        else:  # it happened to say something valid: it was executed (or refused) as such
            assert step.actions or step.error


@pytest.fixture
def chat_server() -> Iterator[tuple[str, list[dict]]]:
    """An OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1 with scripted answers."""
    import http.server
    import threading

    answers = iter(["Thought: look.\nAction: hotkey(key='shift')", "Action: finished()"])
    requests: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            requests.append(body)
            reply = {
                "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": next(answers)}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }  # fmt: skip
            data = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", requests
    server.shutdown()
    server.server_close()


def test_run_with_a_served_model(
    chat_server: tuple[str, list[dict]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, requests = chat_server
    out = tmp_path / "run"
    result = _json(
        capsys,
        ["run", "--env", "miniwob/click-test", "--model", url, "--model-name", "ui-tars",
         "--out", str(out), "--json"],
    )  # fmt: skip
    assert result["reason"] == "finished" and result["steps"] == 2
    assert [r["model"] for r in requests] == ["ui-tars", "ui-tars"]
    first = json.dumps(requests[0])
    assert "data:image/png;base64," in first and "## Action Space" in first
    episode = read_trajectory(out)
    assert episode.steps[0].actions == ({"type": "hotkey", "keys": ["shift"]},)
    assert episode.steps[0].timing["model"] > 0

"""Online evaluation with real Chromium and the scripted MiniWoB experts, and real faults."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pixelpilot.agent.trajectory import read_trajectory
from pixelpilot.eval.offline import OfflineConfig, evaluate_offline
from pixelpilot.eval.online import OnlineConfig, evaluate_online, read_results

pytestmark = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no chromium")


def test_expert_suite_two_workers_records_every_episode(tmp_path):
    cfg = OnlineConfig(
        "miniwob/click-test,miniwob/focus-text", model="expert", episodes=2, seed=7, workers=2,
        out=str(tmp_path),
    )  # fmt: skip
    report = evaluate_online(cfg)
    assert set(report["tasks"]) == {"miniwob/click-test", "miniwob/focus-text"}
    assert report["seeds"] == [7, 8] and report["episodes"] == 4 and report["errors"] == 0
    for row in report["results"]:
        episode = read_trajectory(row["trajectory"])
        assert episode.finished and episode.seed == row["seed"]
        assert episode.success == row["success"] and len(episode.steps) == row["steps"]
    for task, r in report["tasks"].items():
        wins = [x["success"] for x in report["results"] if x["task"] == task]
        assert r["success_rate"] == sum(wins) / len(wins)
    assert report["mean_success"] == pytest.approx(
        sum(t["success_rate"] for t in report["tasks"].values()) / 2
    )
    for name in ("report.json", "report.md", "report.html", "results.jsonl"):
        assert (tmp_path / name).is_file()
    again = evaluate_online(cfg)  # everything is done: nothing is run again
    assert again["resumed"] == 4 and again["results"] == report["results"]
    # The recorded expert answers, scored offline against their own episodes: 100%.
    offline = evaluate_offline(
        OfflineConfig(str(tmp_path / "episodes"), "trajectory", model="expert")
    )
    assert offline["samples"] == sum(r["steps"] for r in report["results"])
    assert offline["step_success_rate"]["value"] == 1.0
    assert offline["episodes"] == 4


def slow_centre_model():
    """A scripted model (built inside each worker) that thinks for 0.3 s, then clicks."""
    from pixelpilot.vlm import ModelProfile, ScriptedVLM

    def answer(conv):
        time.sleep(0.3)
        return "Thought: try the middle\nAction: click(start_box='(500,500)')"

    profile = ModelProfile(name="slow-centre", frame="uitars-1.0", prompt_family="uitars-1.0")
    return ScriptedVLM(answer, profile)


def _fault(kind, tmp_path, **timeouts):
    hit = {}

    def on_event(event):
        if event["kind"] == "step" and not hit and event["pids"]:
            hit["job"] = event["job"]
            sig = signal.SIGKILL if kind == "kill" else signal.SIGSTOP
            for pid in event["pids"]:
                # the jailed browser's tree has short-lived helpers; one gone already is fine
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)

    cfg = OnlineConfig(
        "miniwob/click-test",
        episodes=3,
        seed=0,
        workers=1,
        max_steps=3,
        out=str(tmp_path),
        model="slow-centre",
        policy_factory=f"{__name__}:slow_centre_model",
        **timeouts,
    )
    report = evaluate_online(cfg, on_event=on_event)
    return report, hit["job"]


def test_browser_killed_mid_episode_is_an_error_and_the_run_goes_on(tmp_path):
    report, job = _fault("kill", tmp_path, step_timeout=30)
    by_seed = {r["seed"]: r for r in report["results"]}
    assert by_seed[job.seed]["error"] and not by_seed[job.seed]["success"]
    others = [r for s, r in by_seed.items() if s != job.seed]
    assert len(others) == 2 and all(r["error"] is None for r in others)
    assert report["tasks"]["miniwob/click-test"]["episodes"] == 3


@pytest.mark.slow
def test_hung_browser_hits_the_step_timeout_and_is_restarted(tmp_path):
    report, job = _fault("stop", tmp_path, step_timeout=8)
    by_seed = {r["seed"]: r for r in report["results"]}
    assert "step timeout" in by_seed[job.seed]["error"]
    assert all(r["error"] is None for s, r in by_seed.items() if s != job.seed)


def test_killed_evaluation_resumes_without_redoing_finished_episodes(tmp_path):
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "pixelpilot.cli",
        "eval",
        "online",
        "miniwob/click-test",
        "--model",
        "expert",
        "--episodes",
        "4",
        "--seed",
        "3",
        "--out",
        str(out),
        "--json",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    results = out / "results.jsonl"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if results.exists() and results.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = read_results(results)
    assert 1 <= len(first) < 4
    # The kill can land after an episode's trajectory got its end line and before its result
    # row was written: such an episode is finished too, and resuming recovers its row.
    ended = {}
    for folder in sorted((out / "episodes" / "miniwob__click-test").iterdir()):
        trajectory = folder / "trajectory.jsonl"
        if trajectory.is_file() and read_trajectory(folder).finished:
            ended[f"miniwob/click-test#{int(folder.name.removeprefix('seed-'))}"] = folder
    assert set(first) <= set(ended) and len(ended) < 4
    mtimes = {k: (f / "trajectory.jsonl").stat().st_mtime_ns for k, f in ended.items()}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["resumed"] == len(ended)
    assert sorted(r["seed"] for r in report["results"]) == [3, 4, 5, 6]
    recovered = {f"{r['task']}#{r['seed']}" for r in report["results"] if r.get("recovered")}
    assert recovered == set(ended) - set(first)
    for key, mtime in mtimes.items():  # finished episodes were not run again
        assert (ended[key] / "trajectory.jsonl").stat().st_mtime_ns == mtime
    assert len(results.read_text().splitlines()) == 4


@pytest.mark.slow
def test_tiny_checkpoint_runs_online_through_the_cli(tmp_path):
    from pixelpilot.vlm.tiny import build_tiny

    ckpt = build_tiny(tmp_path / "tiny")
    cmd = [
        sys.executable,
        "-m",
        "pixelpilot.cli",
        "eval",
        "online",
        "miniwob/click-test",
        "--model",
        str(ckpt),
        "--episodes",
        "2",
        "--max-steps",
        "2",
        "--workers",
        "2",
        "--step-timeout",
        "400",
        "--out",
        str(tmp_path / "run"),
        "--json",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    task = report["tasks"]["miniwob/click-test"]
    assert task["episodes"] == 2 and report["errors"] == 0, [r["error"] for r in report["results"]]
    for row in report["results"]:
        episode = read_trajectory(row["trajectory"])
        assert episode.header["model"] == str(ckpt) and 1 <= len(episode.steps) <= 2


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--model", "/nonexistent"], "no checkpoint folder '/nonexistent'"),
        (["--model", "http://127.0.0.1:{port}/v1"], "cannot reach the model server"),
        (["--seed", "-1"], "--seed must be an integer >= 0, got -1"),
        (["--step-timeout", "-1"], "--step-timeout must be a positive number"),
        (["--episode-timeout", "0"], "--episode-timeout must be a positive number"),
        (["--episodes", "0"], "--episodes must be an integer >= 1"),
    ],
)
def test_unusable_options_fail_before_any_episode(tmp_path, capsys, options, message):
    from pixelpilot.cli import main

    out = tmp_path / "run"
    options = [o.format(port=_free_port()) for o in options]
    argv = ["eval", "online", "miniwob/click-test", *options, "--out", str(out), "--json"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert captured.out == "" and not out.exists()  # nothing started, nothing written


def test_resume_refuses_an_out_made_with_another_model_or_settings(tmp_path):
    from pixelpilot.errors import ConfigError

    base = dict(tasks="miniwob/click-test", episodes=1, seed=0, max_steps=3, out=str(tmp_path))
    base["model"] = "expert"
    evaluate_online(OnlineConfig(**base))
    other = OnlineConfig(
        **{**base, "model": "slow-centre"}, policy_factory=f"{__name__}:slow_centre_model"
    )
    with pytest.raises(ConfigError, match="made with --model 'expert', not 'slow-centre'"):
        evaluate_online(other)
    with pytest.raises(ConfigError, match="--max-steps 3, not 5"):
        evaluate_online(OnlineConfig(**{**base, "max_steps": 5}))
    assert len(read_results(tmp_path / "results.jsonl")) == 1  # nothing was added


def flaky_model():
    """A scripted model that cannot load while PIXELPILOT_TEST_BROKEN_MODEL is set."""
    if os.environ.get("PIXELPILOT_TEST_BROKEN_MODEL"):
        raise RuntimeError("the model server went away")
    return slow_centre_model()


def test_infrastructure_errors_are_run_again_on_resume(tmp_path, monkeypatch):
    cfg = OnlineConfig(
        "miniwob/click-test", episodes=1, seed=0, max_steps=1, out=str(tmp_path),
        model="flaky", policy_factory=f"{__name__}:flaky_model",
    )  # fmt: skip
    monkeypatch.setenv("PIXELPILOT_TEST_BROKEN_MODEL", "1")
    broken = evaluate_online(cfg)
    assert broken["errors"] == 1 and "went away" in broken["results"][0]["error"]
    monkeypatch.delenv("PIXELPILOT_TEST_BROKEN_MODEL")
    again = evaluate_online(cfg)
    assert again["resumed"] == 0 and again["errors"] == 0 and again["episodes"] == 1
    assert again["results"][0]["steps"] == 1 and again["results"][0]["error"] is None
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 2  # history kept


KILL_AFTER_END_LINE = """
import os, sys
from pixelpilot.eval.online import OnlineConfig, evaluate_online
from pixelpilot.jsonl import RecordLog

def die(self, row):  # the worker wrote the episode's end line; the row never reaches disk
    os._exit(9)

RecordLog.append = die
evaluate_online(OnlineConfig("miniwob/click-test", "expert", episodes=2, seed=3, out=sys.argv[1]))
"""


def test_a_finished_episode_without_its_result_row_is_recovered(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_END_LINE, str(out)], capture_output=True, timeout=120
    )
    assert proc.returncode == 9, proc.stderr.decode()
    assert read_results(out / "results.jsonl") == {}
    episode_dir = out / "episodes" / "miniwob__click-test" / "seed-00003"
    assert read_trajectory(episode_dir).finished
    mtime = (episode_dir / "trajectory.jsonl").stat().st_mtime_ns
    config = OnlineConfig("miniwob/click-test", "expert", episodes=2, seed=3, out=str(out))
    report = evaluate_online(config)
    assert report["resumed"] == 1 and report["episodes"] == 2 and report["errors"] == 0
    row = next(r for r in report["results"] if r["seed"] == 3)
    assert row["recovered"] and row["success"] and row["steps"] >= 1
    assert row["trajectory"] == str(episode_dir)
    assert (episode_dir / "trajectory.jsonl").stat().st_mtime_ns == mtime  # not run again
    assert len((out / "results.jsonl").read_text().splitlines()) == 2


def test_a_policy_factory_runs_from_the_cli_and_the_report_names_it(tmp_path, capsys):
    """--policy-factory module:function drives the episodes (here the image-blind random
    clicker), and the JSON report names that factory as the model that ran, not the
    --model default."""
    from pixelpilot.cli import main

    factory = "pixelpilot.agent.baselines:random_clicks"
    args = ["eval", "online", "miniwob/click-test", "--policy-factory", factory, "--episodes",
            "2", "--max-steps", "2", "--out", str(tmp_path / "run"), "--json"]  # fmt: skip
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == factory
    assert report["tasks"]["miniwob/click-test"]["episodes"] == 2


class ThreadsRunner:
    """Reports the worker's torch threads instead of playing an episode: the test is about
    the pool."""

    def __init__(self, config, out):
        pass

    def run(self, job, emit):
        import torch

        return {"key": job.key, "threads": torch.get_num_threads()}

    def pids(self):
        return []

    def close(self):
        pass


def test_local_workers_split_the_cores_between_their_torch_threads(tmp_path, monkeypatch):
    """Unset, each of two workers gets half the cores (torch would take them all in each, and
    the two would oversubscribe them); a user's OMP_NUM_THREADS is kept."""
    from types import SimpleNamespace

    from pixelpilot.eval.workers import LocalPool

    def threads(workers: int) -> list[int]:
        cfg = SimpleNamespace(step_timeout=120, episode_timeout=300)
        jobs = [SimpleNamespace(task="t", seed=i, key=f"t#{i}") for i in range(workers)]
        pool, rows = LocalPool(cfg, tmp_path, workers, runner=ThreadsRunner), []
        try:
            pool.run(jobs, rows.append, None)
        finally:
            pool.close()
        return sorted(r["threads"] for r in rows)

    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads(2) == [max(1, cores // 2)] * 2
    assert threads(1) == [cores]
    if cores > 1:  # torch takes at most the cores: a kept choice shows below them
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert threads(1) == [1]

"""Online GRPO on live MiniWoB rollouts (real Chromium, tiny real models): rollouts in worker
processes equal rollouts in the trainer process (same answers, rewards, advantages, loss and
gradient norm), the exact conversations with their feedback notes, group folders that do not
collide; slow: two processes under ``accelerate launch`` equal one, and Ray actors as workers.
(The slow check that a short run records its rollouts and keeps its reward is in test_grpo.py,
next to the SFT-warmed model it starts from.)"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.train.conftest import pixelpilot_command, step_rows

from pixelpilot.train.grpo import GRPOConfig, train_grpo


def groups(out: Path) -> dict[str, dict]:
    """Every ``group.json`` of a run, by its path under ``OUT/rollouts``."""
    root = out / "rollouts"
    return {str(p.parent.relative_to(root)): json.loads(p.read_text())
            for p in sorted(root.rglob("group.json"))}  # fmt: skip


def online(model: str, out: Path, **kw: object) -> GRPOConfig:
    base = dict(online="miniwob/click-test", model=model, out=str(out), group=2, batch_size=2,
                max_steps=2, episode_steps=2, max_new_tokens=12, lr=1e-3, schedule="constant",
                seeds="100000-100000", progress=False, seed=0)  # fmt: skip
    return GRPOConfig(**(base | kw))


@pytest.mark.timeout(1200)  # about a minute on a quiet machine
def test_worker_rollouts_equal_in_process_rollouts(warm_model: str, tmp_path: Path) -> None:
    # one task, one seed, a batch of two: the same task and seed are drawn twice per step;
    # the SFT-warmed model succeeds in some episodes, so the groups carry a gradient
    # seed 100004: the warm model solved it in some but not all answers of every group drawn
    # for it (12 groups of 3 over seeds 100000 .. 100011, on screens of this Chromium)
    kw = dict(group=3, max_new_tokens=32, seeds="100004-100004")  # a first step with signal
    inproc = train_grpo(online(warm_model, tmp_path / "inproc", **kw))
    workers = train_grpo(online(warm_model, tmp_path / "workers", rollout_workers=2, **kw))
    assert inproc.train.steps == workers.train.steps == 2
    a, b = groups(tmp_path / "inproc"), groups(tmp_path / "workers")
    assert sorted(a) == sorted(b) and len(a) == 2 * 2  # two steps x two draws
    assert a == b  # the same answers, rewards and advantages, group by group
    step1 = sorted(k for k in a if k.startswith("step-000001"))
    assert [Path(k).name for k in step1] == ["draw-0-seed-100004", "draw-1-seed-100004"]
    assert a[step1[0]]["answers"] != a[step1[1]]["answers"]  # each draw samples its own
    first, second = step_rows(tmp_path / "inproc"), step_rows(tmp_path / "workers")
    for key in ("loss", "grad_norm", "kl", "entropy"):  # step 2: the reloaded weights
        assert [r[key] for r in second] == pytest.approx([r[key] for r in first], abs=1e-5), key
    for key in ("reward_mean", "advantage_std", "answer_length", "episodes"):
        assert [r[key] for r in second] == [r[key] for r in first], key
    assert first[0]["grad_norm"] > 0  # step 2's rollouts ran on updated weights
    assert not (tmp_path / "inproc" / "rollouts" / "policy").exists()
    snapshots = list((tmp_path / "workers" / "rollouts" / "policy").glob("*.pt"))
    assert [p.name for p in snapshots] == ["step-000001.pt"]  # the latest only


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_lora_worker_rollouts_load_the_adapter_and_equal_in_process(
    warm_model: str, tmp_path: Path
) -> None:
    pytest.importorskip("peft")
    kw = dict(group=3, max_new_tokens=32, seeds="100004-100004", lora_r=4, lr=5e-3)
    train_grpo(online(warm_model, tmp_path / "inproc", **kw))
    train_grpo(online(warm_model, tmp_path / "workers", rollout_workers=1, **kw))
    assert groups(tmp_path / "workers") == groups(tmp_path / "inproc")
    a, b = step_rows(tmp_path / "inproc"), step_rows(tmp_path / "workers")
    assert [r["grad_norm"] for r in b] == pytest.approx([r["grad_norm"] for r in a], abs=1e-5)
    assert a[0]["grad_norm"] > 0  # step 2 ran on an adapter that moved
    (weights,) = (tmp_path / "workers" / "rollouts" / "policy").glob("*.pt")
    assert weights.stat().st_size < 1_000_000  # the adapter alone, not the model


@pytest.mark.timeout(600)
def test_a_rollout_keeps_the_exact_conversation_with_its_feedback_note(tmp_path: Path) -> None:
    """An action the env refuses makes the loop add a note to the next prompt; the rollout
    keeps the prompt as sent, note included (the recorded trajectory does not hold it). The
    model is scripted: the test is about what the rollout keeps."""
    from pixelpilot.agent.trajectory import read_trajectory
    from pixelpilot.train.rollouts import plan_jobs, play, rollout_factory, rollout_policy
    from pixelpilot.vlm.scripted import ScriptedVLM

    config = online("scripted", tmp_path, episode_steps=3)
    vlm = ScriptedVLM(["Action: press_home()", "Action: press_home()", "Action: wait()"])
    policy = rollout_policy(vlm, config)
    factory = rollout_factory(policy, config)
    try:
        job = plan_jobs(config, [(0, "miniwob/click-test")], 0, tmp_path, (5, 5))[0]
        rollout = play(factory, policy, job, config)
    finally:
        factory.close()
    episode = read_trajectory(rollout.trajectory)
    assert [text for _, text in rollout.asked] == [s.response for s in episode.steps]
    assert len(rollout.asked) == 3 and episode.steps[0].error.startswith("press_home failed")
    notes = [conv.messages[-1].text for conv, _ in rollout.asked]
    assert notes[0] == "" and all(n.startswith("The previous action failed: press_home") for n in
                                  notes[1:]), notes  # fmt: skip
    assert [c for c, _ in rollout.asked] == vlm.calls  # what the model was asked, exactly


@pytest.mark.timeout(600)
def test_a_rollout_that_fails_twice_stops_the_step_with_one_line(
    tiny_xs: str, tmp_path: Path
) -> None:
    """A worker that cannot run a job (here: its weights file is missing) reports an error;
    the job runs once more, then the step fails naming the episode and the cause."""
    from pixelpilot.errors import EnvError
    from pixelpilot.train.rollouts import WorkerRollouts, plan_jobs
    from pixelpilot.vlm import load

    config = online(tiny_xs, tmp_path)
    runner = WorkerRollouts(load(tiny_xs), config, tmp_path / "rollouts", 1, "local")
    missing = str(tmp_path / "missing.pt")
    try:
        job = plan_jobs(config, [(0, "miniwob/click-test")], 0, tmp_path, (5, 5), missing)[0]
        with pytest.raises(EnvError, match=r"click-test#5#d0#g0 failed twice: FileNotFoundError"):
            runner.run([job])
    finally:
        runner.close()


SEEDS = "100004-100004"  # both steps carry a signal with the warmed model


def _online_run(model: str, out: Path, procs: int, *extra: str) -> list[dict]:
    args = ["train", "grpo", "--online", "miniwob/click-test,miniwob/click-button", "--model",
            model, "--out", str(out), "--json", "--batch-size", str(2 // procs), "--group", "3",
            "--max-steps", "2", "--episode-steps", "2", "--max-new-tokens", "32", "--lr", "1e-3",
            "--schedule", "constant", "--seeds", SEEDS, "--no-progress", *extra]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = pixelpilot_command(args, procs)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return step_rows(out)


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_two_processes_share_the_groups_and_equal_one(warm_model: str, tmp_path: Path) -> None:
    one = _online_run(warm_model, tmp_path / "one", 1)
    two = _online_run(warm_model, tmp_path / "two", 2, "--rollout-workers", "1")
    assert one[0]["grad_norm"] > 0 and one[1]["grad_norm"] > 0  # both steps carry a signal
    assert groups(tmp_path / "one") == groups(tmp_path / "two")  # each rank ran its share
    assert [r["samples"] for r in two] == [r["samples"] for r in one]
    for key in ("reward_mean", "success_rate", "grad_norm", "loss"):
        assert [r[key] for r in two] == pytest.approx([r[key] for r in one], abs=1e-4), key


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_ray_rollout_workers_equal_in_process_rollouts(tiny_xs: str, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    import ray

    kw = dict(max_steps=1, group=2, batch_size=1)
    train_grpo(online(tiny_xs, tmp_path / "inproc", **kw))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        train_grpo(online(tiny_xs, tmp_path / "ray", rollout_workers=1, rollout_backend="ray",
                          **kw))  # fmt: skip
    finally:
        ray.shutdown()
    assert groups(tmp_path / "ray") == groups(tmp_path / "inproc")
    a, b = step_rows(tmp_path / "inproc"), step_rows(tmp_path / "ray")
    assert [r["loss"] for r in b] == pytest.approx([r["loss"] for r in a], abs=1e-5)
    assert [r["entropy"] for r in b] == pytest.approx([r["entropy"] for r in a], abs=1e-5)

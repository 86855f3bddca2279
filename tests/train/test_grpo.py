"""GRPO end to end on expert recordings (real Chromium) and tiny real models: the CLI's JSON and
metrics, bad input, exact resume, multi-image prompts, LoRA with the adapter-disabled reference;
slow: two processes, the learning check and online GRPO."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from tests.train.conftest import pixelpilot_command, step_rows

from pixelpilot.cli import main
from pixelpilot.errors import ConfigError
from pixelpilot.train.grpo import GRPOConfig, train_grpo


def record(out: Path, tasks: str, episodes: int, seed: int = 0) -> Path:
    """Expert episodes recorded by the real agent loop (as the click_data fixture does)."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "pixelpilot.cli", "record", tasks, "--expert", "--json",
           "--episodes", str(episodes), "--seed", str(seed), "--out", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return out


def config(data: Path | str, model: str, out: Path, **kw: object) -> GRPOConfig:
    base = dict(data=str(data), model=model, out=str(out), lr=1e-4, batch_size=2, group=3,
                max_steps=2, max_new_tokens=10, progress=False, seed=0)  # fmt: skip
    return GRPOConfig(**(base | kw))


@pytest.fixture(scope="module")
def login_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One five-step login-user episode: its last steps' prompts hold five screenshots."""
    return record(tmp_path_factory.mktemp("grpo-data") / "login", "miniwob/login-user", 1)


METRICS = {
    "reward_mean", "reward_std", "reward_distance_mean", "reward_format_std", "advantage_std",
    "zero_variance_fraction", "zero_variance_groups", "kl", "clip_fraction", "entropy",
    "answer_length", "success_rate", "loss", "grad_norm",
}  # fmt: skip


def test_cli_prints_the_json_contract_and_logs_step_metrics(
    click_data: Path, tiny_xs: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "run"
    code = main(["train", "grpo", str(click_data), "--model", tiny_xs, "--out", str(out),
                 "--max-steps", "2", "--batch-size", "2", "--group", "3", "--max-new-tokens",
                 "8", "--lr", "1e-4", "--loss", "dapo", "--epsilon-high", "0.28",
                 "--no-progress", "--json"])  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {"steps", "reward_first", "reward_last", "checkpoint", "seconds"}
    assert summary["steps"] == 2 and summary["seconds"] > 0
    assert 0.0 <= summary["reward_first"] <= 1.0
    steps = step_rows(out)
    assert len(steps) == 2
    assert METRICS <= set(steps[0])
    assert {"generate", "score", "forward", "backward"} <= set(steps[0]["seconds"])
    assert steps[0]["reward_mean"] == summary["reward_first"]
    from pixelpilot.vlm import load

    assert load(summary["checkpoint"]).profile.frame == "uitars-1.5"


def test_bad_input_is_one_line_and_exit_2(
    click_data: Path, tiny_xs: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = ["train", "grpo", "--model", tiny_xs, "--out", str(tmp_path / "o"), "--json"]
    cases = [
        ([str(click_data), "--group", "1"], "--group must be at least 2"),
        ([str(click_data), "--loss", "ppo"], "--loss must be one of"),
        ([str(click_data), "--online", "miniwob/click-test"], "not both"),
        ([], "DATA is required"),
        ([str(click_data), "--reward", "speed=1"], "unknown reward 'speed'"),
    ]
    for extra, message in cases:
        assert main([*base[:2], *extra, *base[2:]]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    with pytest.raises(ConfigError, match="--epsilon"):
        config(click_data, tiny_xs, tmp_path, epsilon=1.5)


@pytest.mark.timeout(1800)  # seconds on a quiet machine; minutes under load
def test_resume_gives_the_same_steps(click_data: Path, tiny_xs: str, tmp_path: Path) -> None:
    kw = dict(max_steps=2, num_iterations=2, replay_successes=True, warmup_steps=1)
    train_grpo(config(click_data, tiny_xs, tmp_path / "a", **kw))
    cfg = config(click_data, tiny_xs, tmp_path / "b", **kw)
    assert train_grpo(cfg, stop_after=1).train.steps == 1
    assert train_grpo(replace(cfg, resume=True)).train.steps == 2
    a, b = step_rows(tmp_path / "a"), step_rows(tmp_path / "b")
    for key in ("loss", "reward_mean", "kl", "clip_fraction", "grad_norm"):
        assert [r[key] for r in b] == pytest.approx([r[key] for r in a], abs=1e-6), key
    assert any(r["clip_fraction"] > 0 or r["ratio_mean"] != 1.0 for r in a)  # the 2nd pass moved


@pytest.mark.timeout(1800)  # seconds on a quiet machine; minutes under load
def test_resume_keeps_the_successes_that_replay_remembers(
    click_data: Path, tiny_xs: str, tmp_path: Path
) -> None:
    def remembered(step: int) -> dict[str, list[int]]:
        state = tmp_path / "r" / "checkpoints" / f"step-{step:06d}" / "state.json"
        return json.loads(state.read_text())["successes"][0]  # rank 0's

    cfg = config(click_data, tiny_xs, tmp_path / "r", replay_successes=True)
    train_grpo(cfg, stop_after=1)
    first = remembered(1)
    assert first  # the replayed recorded answers count as successes of their steps
    train_grpo(replace(cfg, resume=True))
    after = remembered(2)
    assert first.items() <= after.items()  # step 2 (other samples) kept what step 1 learnt


@pytest.mark.timeout(1800)  # seconds on a quiet machine; minutes under load
def test_multi_image_prompts_train(login_data: Path, tiny_xs: str, tmp_path: Path) -> None:
    from pixelpilot.eval.datasets import load_samples
    from pixelpilot.vlm import load

    samples = load_samples(login_data, "trajectory")
    profile = load(tiny_xs).profile
    assert sorted(len(s.conversation(profile).images) for s in samples) == [1, 2, 3, 4, 5]
    out = tmp_path / "multi"
    cfg = config(login_data, tiny_xs, out, batch_size=5, max_steps=1, group=2,
                 replay_successes=True)  # fmt: skip
    result = train_grpo(cfg)
    (step,) = step_rows(out)
    assert step["samples"] == 5 and not step["skipped"] and result.train.steps == 1
    assert step["replayed"] >= 1 and step["grad_norm"] > 0  # the replayed answers give a signal


@pytest.mark.timeout(1800)  # seconds on a quiet machine; minutes under load
def test_lora_reference_is_the_base_without_its_adapter(
    click_data: Path, tiny_xs: str, tmp_path: Path
) -> None:
    pytest.importorskip("peft")
    out = tmp_path / "lora"
    cfg = config(
        click_data, tiny_xs, out, lora_r=4, beta=0.04, lr=5e-3, max_steps=3, replay_successes=True
    )  # replayed answers give a signal to move on
    result = train_grpo(cfg)
    kls = [r["kl"] for r in step_rows(out)]
    assert kls[0] == pytest.approx(0.0, abs=1e-6)  # LoRA starts as the identity: policy = base
    assert kls[-1] > 0  # the adapter moved the policy away from its base
    assert Path(result.train.checkpoint, "model.safetensors").is_file()  # merged


def mean_reward(model_dir: str, data: Path, seed: int = 123, answers: int = 32) -> float:
    """Mean reward of ``answers`` sampled answers per training step (fixed seed; 32 keep the
    estimate's noise near 0.02)."""
    import statistics

    from pixelpilot.eval.datasets import load_samples
    from pixelpilot.train.prefix import vlm_sample_groups
    from pixelpilot.train.rewards import build_rewards
    from pixelpilot.vlm import load

    vlm = load(model_dir)
    samples = load_samples(data, "trajectory")
    rewards = build_rewards("format=0.1,type=0.2,distance=0.7", vlm.profile)
    convs = [s.conversation(vlm.profile) for s in samples]
    groups = vlm_sample_groups(vlm, convs, answers, max_new_tokens=32, seed=seed)
    return statistics.fmean(
        float(rewards(s, a.text).total) for s, g in zip(samples, groups, strict=True) for a in g
    )


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_learning_check_grpo_raises_the_reward_of_an_sft_warmed_model(
    click_data: Path, warm_model: str, tmp_path: Path
) -> None:
    before = mean_reward(warm_model, click_data)
    assert before < 0.9  # below perfect: room to learn
    cfg = config(click_data, warm_model, tmp_path / "grpo", lr=5e-4, batch_size=4, group=8,
                 max_steps=20, max_new_tokens=32, schedule="constant")  # fmt: skip
    result = train_grpo(cfg)
    after = mean_reward(result.train.checkpoint, click_data)
    assert after > before + 0.05, (before, after)


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_online_grpo_records_its_rollouts_and_keeps_its_reward(
    warm_model: str, tmp_path: Path
) -> None:
    from pixelpilot.agent.trajectory import iter_episodes

    out = tmp_path / "online"
    cfg = GRPOConfig(online="miniwob/click-test", model=warm_model, out=str(out), group=4,
                     batch_size=2, max_steps=2, episode_steps=2, max_new_tokens=32, lr=1e-4,
                     seeds="100000-100999", progress=False, seed=0)  # fmt: skip
    result = train_grpo(cfg)
    assert result.train.steps == 2
    episodes = list(iter_episodes(out / "rollouts"))
    assert len(episodes) == 2 * 2 * 4 and all(ep.finished for ep in episodes)
    groups: dict[Path, set[int]] = {}
    for ep in episodes:  # OUT/rollouts/step-N/TASK/draw-J-seed-S/g-K
        assert 100000 <= ep.seed <= 100999 and ep.task == "miniwob/click-test"
        assert ep.directory.parent.name.endswith(f"-seed-{ep.seed}")
        groups.setdefault(ep.directory.parent, set()).add(ep.directory.name)
    assert sorted(map(len, groups.values())) == [4, 4, 4, 4]  # G episodes per task and seed
    steps = step_rows(out)
    assert all(r["episodes"] == 8 for r in steps)
    # not collapsed: after an update the policy still succeeds (8 episodes; the warm model
    # succeeds on about half of its sampled click-test episodes)
    assert steps[0]["success_rate"] > 0 and steps[-1]["success_rate"] > 0, steps


def _grpo_run(data: Path, model: str, out: Path, batch: int, procs: int) -> list[dict]:
    import subprocess

    args = ["train", "grpo", str(data), "--model", model, "--out", str(out), "--json",
            "--batch-size", str(batch), "--group", "3", "--max-steps", "2", "--lr", "1e-3",
            "--max-new-tokens", "10", "--replay-successes", "--no-progress"]  # fmt: skip
    done = subprocess.run(pixelpilot_command(args, procs), capture_output=True, text=True,
                          timeout=1500)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert len([ln for ln in done.stdout.splitlines() if ln.startswith("{")]) == 1
    return step_rows(out)


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_two_processes_share_the_rollouts_and_equal_one(
    click_data: Path, tiny_xs: str, tmp_path: Path
) -> None:
    one = _grpo_run(click_data, tiny_xs, tmp_path / "one", batch=4, procs=1)
    two = _grpo_run(click_data, tiny_xs, tmp_path / "two", batch=2, procs=2)
    assert [r["samples"] for r in two] == [4, 4]  # the global batch, summed over ranks
    for key in ("loss", "grad_norm", "reward_mean", "success_rate"):
        assert [r[key] for r in two] == pytest.approx([r[key] for r in one], abs=1e-4), key


@pytest.mark.timeout(1800)  # seconds on a quiet machine; minutes under load
def test_launch_grpo_in_two_processes_takes_one_process_steps(tmp_path: Path) -> None:
    """``launch_grpo`` (the recipe's GRPO stage on both cores): each process samples and
    scores half of every step's prompts, and the steps equal one process's with all of
    them; a failing run is one ``LaunchError``."""
    from pixelpilot.errors import LaunchError
    from pixelpilot.train.grpo import launch_grpo
    from pixelpilot.train.synthetic import write_synthetic
    from pixelpilot.vlm.tiny import build_tiny

    model = str(build_tiny(arch="kimi_k25", size="xs"))
    data = write_synthetic(tmp_path / "syn", 8, seed=0, kinds=("dialog", "button"))
    # replayed recorded answers give the groups of an untrained model a signal
    one = config(data, model, tmp_path / "one", batch_size=4, lr=1e-3, prompt_kind="grounding",
                 replay_successes=True)  # fmt: skip
    alone = train_grpo(one)
    assert all(r["grad_norm"] > 0 for r in alone.train.history)
    launched = launch_grpo(replace(one, out=str(tmp_path / "two"), batch_size=2), 2)
    assert launched["steps"] == alone.train.steps == 2
    assert (Path(launched["checkpoint"]) / "model.safetensors").is_file()
    rows = step_rows(tmp_path / "two")
    assert [r["samples"] for r in rows] == [4, 4]  # the global batch, summed over ranks
    for key in ("loss", "grad_norm", "reward_mean"):
        want = [r[key] for r in alone.train.history]
        assert [r[key] for r in rows] == pytest.approx(want, abs=1e-4), key
    broken = replace(one, out=str(tmp_path / "broken"), data=str(tmp_path / "none"), batch_size=2)
    with pytest.raises(LaunchError, match="GRPO in 2 processes exited with status"):
        launch_grpo(broken, 2)

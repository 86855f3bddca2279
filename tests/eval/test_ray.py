"""The Ray worker pool on a local Ray instance, with the real experts and Chromium."""

from pathlib import Path

import pytest

from pixelpilot.eval.online import OnlineConfig, evaluate_online

ray = pytest.importorskip("ray")


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no chromium")
def test_ray_backend_matches_local_backend(local_ray, tmp_path):
    cfg = dict(tasks="miniwob/click-test,miniwob/click-button", episodes=2, seed=11, workers=2)
    cfg["model"] = "expert"
    by_ray = evaluate_online(OnlineConfig(**cfg, backend="ray", out=str(tmp_path / "ray")))
    local = evaluate_online(OnlineConfig(**cfg, out=str(tmp_path / "local")))
    assert by_ray["errors"] == 0 and by_ray["episodes"] == 4
    for a, b in zip(by_ray["results"], local["results"], strict=True):
        assert (a["task"], a["seed"], a["success"], a["steps"]) == (
            b["task"],
            b["seed"],
            b["success"],
            b["steps"],
        )
        assert Path(a["trajectory"], "trajectory.jsonl").is_file()


def hanging_model():
    """A model that never answers (a server that stopped responding mid-episode)."""
    import time

    from pixelpilot.vlm import ModelProfile, ScriptedVLM

    def answer(conv):
        time.sleep(3600)
        return "Action: finished()"

    return ScriptedVLM(answer, ModelProfile(name="hang", frame="pixels"))


@pytest.fixture
def ray_with_tests_importable():
    """Local Ray whose workers can import this module (for the policy factory)."""
    here = str(Path(__file__).parent)
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": here}},
    )  # fmt: skip
    yield
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no chromium")
def test_ray_pool_enforces_the_step_timeout(ray_with_tests_importable, tmp_path):
    cfg = OnlineConfig(
        "miniwob/click-test", episodes=1, backend="ray", step_timeout=5, episode_timeout=600,
        model="hang", policy_factory=f"{__name__}:hanging_model", out=str(tmp_path),
    )  # fmt: skip
    report = evaluate_online(cfg)
    row = report["results"][0]
    assert row["error"].startswith("step timeout: no progress for 5 s")
    assert row["seconds"] < 120  # long before the episode timeout

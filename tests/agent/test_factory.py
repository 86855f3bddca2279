"""The one factory for envs, policies and agents: specs, checks, and sharing across episodes."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pixelpilot.agent import factory
from pixelpilot.agent.factory import AgentFactory, EnvSpec, PolicySpec, make_policy
from pixelpilot.errors import ConfigError, ModelError, NoModelError, UnknownTaskError
from pixelpilot.vlm import ModelProfile, ScriptedVLM

chromium = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="no chromium")
LOADS: list[str] = []


def counting_model() -> ScriptedVLM:
    """A scripted model that counts how often it is built (a factory spec target)."""
    LOADS.append("load")
    return ScriptedVLM(["Action: finished()"] * 50, ModelProfile(name="counting", frame="pixels"))


def test_model_option_becomes_a_spec() -> None:
    assert PolicySpec.parse("expert") == PolicySpec("expert")
    assert PolicySpec.parse("http://h:8000/v1", model_name="ui-tars") == PolicySpec(
        "url", "http://h:8000/v1", "ui-tars"
    )
    assert PolicySpec.parse("models/tiny").kind == "checkpoint"
    assert PolicySpec.parse(None).kind == PolicySpec.parse("default").kind == "default"
    spec = PolicySpec.parse("expert", factory=f"{__name__}:counting_model")
    assert spec.kind == "factory" and spec.label == f"{__name__}:counting_model"
    with pytest.raises(ConfigError, match="module:function"):
        PolicySpec.parse(None, factory="no_colon")


def test_the_default_model_is_the_bundled_folder_once_it_holds_a_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slot = tmp_path / "models" / "default"
    monkeypatch.setattr(factory, "bundled_model_folder", lambda: slot)
    assert factory.default_model_path() is None
    with pytest.raises(NoModelError, match="no bundled default model .*--model expert") as caught:
        PolicySpec.parse(None).check()
    assert str(slot) in str(caught.value) and "\n" not in str(caught.value)
    slot.mkdir(parents=True)
    (slot / "MODEL_CARD.md").write_text("a card alone is not a model")
    assert factory.default_model_path() is None
    (slot / "config.json").write_text('{"model_type": "kimi_k25"}')
    assert factory.default_model_path() == slot
    resolved = PolicySpec.parse("default").resolved()
    assert resolved.kind == "checkpoint" and resolved.source == str(slot)
    assert resolved.label == f"default (kimi_k25, {slot})"
    PolicySpec.parse(None).check()  # a checkpoint folder: fine


def test_the_package_slot_is_inside_the_package() -> None:
    import pixelpilot

    folder = factory.bundled_model_folder()
    assert folder.name == "default" and folder.parent.name == "models"
    assert folder.parent.parent == Path(pixelpilot.__file__).resolve().parent


def test_checkpoint_checks_load_nothing(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no checkpoint folder"):
        PolicySpec.parse(str(tmp_path / "missing")).check()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelError, match="is a file"):
        PolicySpec.parse(str(tmp_path / "file")).check()
    with pytest.raises(ModelError, match="no config.json"):
        PolicySpec.parse(str(tmp_path)).check()
    with pytest.raises(ConfigError, match="cannot import the policy factory"):
        PolicySpec.parse(None, factory="pixelpilot.nowhere:model").check()


@pytest.fixture
def server_url() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that answers 404 to everything."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_a_server_must_accept_connections(server_url: str) -> None:
    PolicySpec.parse(server_url).check()  # any HTTP answer: a server is there
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ModelError, match=f"cannot reach the model server at .*:{port}"):
        PolicySpec.parse(f"http://127.0.0.1:{port}/v1").check()


def test_envs_come_from_the_registry() -> None:
    spec = EnvSpec.from_cli("desktop", None, "Look around")
    assert spec == EnvSpec("desktop", {"instruction": "Look around"})
    assert EnvSpec.from_cli("browser", "http://x/", "Go").kwargs == {"url": "http://x/"}
    with pytest.raises(UnknownTaskError, match="did you mean miniwob/click-button"):
        factory.make_env("miniwob/click-buton")


@chromium
def test_one_browser_and_one_model_across_tasks_and_episodes(tmp_path: Path) -> None:
    LOADS.clear()
    spec = PolicySpec.parse(None, factory=f"{__name__}:counting_model")
    with AgentFactory(spec, max_steps=2, label="counting", ask_user=None) as shared:
        first = shared.agent("miniwob/click-test")
        host, pids = shared.host, shared.pids()
        first.run(seed=0, out=tmp_path / "a")
        second = shared.agent("miniwob/click-button")
        result = second.run(seed=1, out=tmp_path / "b")
        assert second.env is not first.env  # a new task, a new env ...
        assert shared.host is host and host.pid in pids  # ... in the same browser
        assert LOADS == ["load"] and result.reason == "finished"
        assert second.env.max_steps == 2 and second.model == "counting"
    assert not host.alive and shared.env is None  # closing the factory closed both


@chromium
def test_expert_policy_and_model_policy(tmp_path: Path) -> None:
    from pixelpilot.agent.policy import VLMPolicy

    with AgentFactory(PolicySpec("expert")) as shared:
        env = shared.env_for("miniwob/click-test")
        assert shared.env_for("miniwob/click-test") is env  # same task: the env is kept
        from pixelpilot.envs.miniwob_experts import MiniWoBExpert

        assert isinstance(make_policy(PolicySpec("expert"), env=env), MiniWoBExpert)
        vlm = counting_model()
        policy = make_policy(PolicySpec("checkpoint", "unused"), model=vlm)
        assert isinstance(policy, VLMPolicy) and policy.vlm is vlm
    with pytest.raises(ConfigError, match="needs the env"):
        make_policy(PolicySpec("expert"))

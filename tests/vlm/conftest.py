"""Fixtures of the vlm tests: tiny checkpoints (built once per session) and a local
OpenAI-compatible HTTP server on 127.0.0.1 that answers with scripted UI-TARS text."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """Two xdist workers on two cores: one intra-op thread each avoids oversubscription."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def bundled() -> Path:
    """The bundled default model's folder (read only)."""
    from pixelpilot.agent import factory

    folder = factory.default_model_path()
    assert folder is not None, "the bundled model is missing"
    return Path(folder)


@pytest.fixture(scope="session")
def bundled_tokenizer(bundled: Path) -> Any:
    """The bundled model's tokenizer (numbers are one token each)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled)


@pytest.fixture(scope="session")
def screen_conversations() -> Any:
    """``(vlm, stream, count) -> conversations``: the agent's first-step prompts for ``count``
    synthetic click screens of ``stream`` (use streams the recipe does not draw, not 0)."""
    from pixelpilot.agent.policy import VLMPolicy
    from pixelpilot.envs.base import Observation
    from pixelpilot.train.synthetic import render

    def build(vlm: Any, stream: int, count: int) -> list[Any]:
        convs = []
        for i in range(count):
            image, sample = render(stream, i)
            policy = VLMPolicy(vlm)
            policy.reset(sample.instruction)
            convs.append(policy.conversation(Observation(image, sample.instruction)))
        return convs

    return build


@pytest.fixture(scope="session")
def tiny_qwen25_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-init Qwen2.5-VL (UI-TARS-1.5 architecture) checkpoint, size xs."""
    from pixelpilot.vlm.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "qwen2_5_vl-xs", "qwen2_5_vl", "xs", 0)


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2-VL (UI-TARS 1.0 architecture) checkpoint, size xs."""
    from pixelpilot.vlm.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "qwen2_vl-xs", "qwen2_vl", "xs", 0)


@pytest.fixture(scope="session")
def tiny_chameleon_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Chameleon (early fusion, VQ image tokens) checkpoint, size xs."""
    from pixelpilot.vlm.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "chameleon-xs", "chameleon", "xs", 0)


@pytest.fixture(scope="session")
def tiny_qwen25(tiny_qwen25_dir: Path) -> Any:
    """The loaded ``HFVLM`` of ``tiny_qwen25_dir`` (shared; do not mutate)."""
    from pixelpilot.vlm.hf import HFVLM

    return HFVLM(tiny_qwen25_dir)


class ScriptedOpenAIServer:
    """``/v1/chat/completions`` on 127.0.0.1: answers from ``script`` and records requests.

    Each script item is a reply text, or a ``(status, body)`` pair for an error reply, or
    ``("sleep", seconds)`` to answer late, or ``("reset",)`` to drop the connection. When
    the script runs out it answers ``default``.
    """

    default = "Thought: Click the OK button.\nAction: click(start_box='(197,525)')"

    def __init__(self) -> None:
        self.script: list[Any] = []
        self.requests: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with server._lock:
                    server.paths.append(self.path)
                    if self.path != "/v1/chat/completions":
                        return self._send(404, {"error": {"message": "Not Found"}})
                    server.requests.append(json.loads(body))
                    item = server.script.pop(0) if server.script else server.default
                if item == ("reset",):  # drop the connection without an answer
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                if isinstance(item, tuple) and item[0] == "sleep":
                    time.sleep(item[1])
                    item = server.default
                if isinstance(item, tuple):
                    return self._send(item[0], {"error": {"message": item[1]}})
                self._send(200, _completion(item))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "ui-tars",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }


@pytest.fixture
def openai_server() -> Iterator[ScriptedOpenAIServer]:
    server = ScriptedOpenAIServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def tiny_kimi_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The remote-code loading fixture: a Kimi-VL-style folder with its own modeling files."""
    from pixelpilot.vlm.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "kimi_vl-xs", "kimi_vl", "xs", 0)


@pytest.fixture(scope="session")
def tiny_kimi_k25_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ``kimi_k25`` checkpoint (transformers' own classes, no Python files), size xs."""
    from pixelpilot.vlm.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny") / "kimi_k25-xs", "kimi_k25", "xs", 0)


@pytest.fixture(scope="session")
def tiny_kimi_k25(tiny_kimi_k25_dir: Path) -> Any:
    """The loaded ``HFVLM`` of ``tiny_kimi_k25_dir`` (shared; do not mutate)."""
    from pixelpilot.vlm.hf import HFVLM

    return HFVLM(tiny_kimi_k25_dir)

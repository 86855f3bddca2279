"""ChatModelVLM over real HTTP against a scripted OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import base64
import io
import socket

import pytest
from PIL import Image

from pixelpilot.errors import ModelError
from pixelpilot.vlm import Conversation, ModelProfile, SamplingParams, load
from pixelpilot.vlm.chat import ChatModelVLM

pytest.importorskip("langchain_openai")


def _shot(color: str) -> Image.Image:
    return Image.new("RGB", (210, 160), color)


def _images_of(request: dict) -> list[Image.Image]:
    out = []
    for msg in request["messages"]:
        if isinstance(msg["content"], list):
            for block in msg["content"]:
                if block["type"] == "image_url":
                    url = block["image_url"]["url"]
                    assert url.startswith("data:image/png;base64,")
                    out.append(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    return out


def _client(server, **kw) -> ChatModelVLM:
    kw.setdefault("backoff", 0.01)
    return load(server.base_url, model_name="ui-tars-1.5-7b", **kw)


def test_answers_and_sends_png_screenshot(openai_server):
    openai_server.script = ["Thought: a\nAction: click(start_box='(1,2)')"]
    vlm = _client(openai_server)
    conv = Conversation.user("click ok", [_shot("red")])
    gens = vlm.generate([conv], SamplingParams(max_new_tokens=33, temperature=0.0))
    assert [g.text for g in gens] == ["Thought: a\nAction: click(start_box='(1,2)')"]
    req = openai_server.requests[0]
    assert req["model"] == "ui-tars-1.5-7b"
    assert req.get("max_completion_tokens", req.get("max_tokens")) == 33
    assert req["temperature"] == 0.0
    (img,) = _images_of(req)
    assert img.size == (210, 160) and img.convert("RGB").getpixel((5, 5)) == (255, 0, 0)
    assert req["messages"][-1]["content"][-1] == {"type": "text", "text": "click ok"}


def test_history_window_keeps_newest_images(openai_server):
    colors = ["red", "green", "blue", "white", "black"]
    conv = Conversation.user("step 0", [_shot(colors[0])])
    for i, c in enumerate(colors[1:], 1):
        conv = conv.add("assistant", f"Action: wait() {i}").add("user", f"step {i}", [_shot(c)])
    vlm = _client(openai_server, profile=ModelProfile(name="m", history_images=2))
    vlm.generate([conv])
    req = openai_server.requests[0]
    sent = [im.convert("RGB").getpixel((0, 0)) for im in _images_of(req)]
    assert sent == [(255, 255, 255), (0, 0, 0)]
    texts = [m["content"] for m in req["messages"] if m["role"] == "assistant"]
    assert texts == [f"Action: wait() {i}" for i in range(1, 5)]  # text history is kept


def test_n_samples_grouped_per_conversation(openai_server):
    openai_server.script = ["a1", "a2", "b1", "b2"]
    vlm = _client(openai_server, concurrency=1)
    convs = [Conversation.user("a"), Conversation.user("b")]
    gens = vlm.generate(convs, SamplingParams(n=2, seed=7, stop=("\n\n",)))
    assert [g.text for g in gens] == ["a1", "a2", "b1", "b2"]
    assert [r["seed"] for r in openai_server.requests] == [7, 8, 7, 8]
    assert openai_server.requests[0]["stop"] == ["\n\n"]


def test_transient_errors_are_retried(openai_server):
    openai_server.script = [(503, "overloaded"), (429, "slow down"), "done"]
    vlm = _client(openai_server)
    assert vlm.generate([Conversation.user("x")])[0].text == "done"
    assert len(openai_server.requests) == 3


def test_connection_reset_is_retried(openai_server):
    openai_server.script = [("reset",), "after reset"]
    vlm = _client(openai_server)
    assert vlm.generate([Conversation.user("x")])[0].text == "after reset"
    assert len(openai_server.requests) == 2


def test_gives_up_after_retries(openai_server):
    openai_server.script = [(500, "boom")] * 5
    vlm = _client(openai_server, retries=2)
    with pytest.raises(ModelError, match="HTTP 500"):
        vlm.generate([Conversation.user("x")])
    assert len(openai_server.requests) == 3


def test_404_hints_at_v1(openai_server):
    url = openai_server.base_url.removesuffix("/v1")
    vlm = load(url, model_name="m", backoff=0.01)
    with pytest.raises(ModelError, match=r"404.*/v1\?"):
        vlm.generate([Conversation.user("x")])
    assert openai_server.paths == ["/chat/completions"]


def test_400_too_many_images_hint(openai_server):
    openai_server.script = [(400, "At most 1 image(s) may be provided in one request.")]
    vlm = _client(openai_server)
    with pytest.raises(ModelError, match="limit-mm-per-prompt"):
        vlm.generate([Conversation.user("x", [_shot("red"), _shot("blue")])])
    assert len(openai_server.requests) == 1  # a 400 is not retried


def test_refused_connection_hint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    vlm = load(f"http://127.0.0.1:{port}/v1", model_name="m", backoff=0.01)
    with pytest.raises(ModelError, match="refused"):
        vlm.generate([Conversation.user("x")])


def test_timeout_hint(openai_server):
    openai_server.script = [("sleep", 1.5)]
    vlm = _client(openai_server, timeout=0.3, retries=0)
    with pytest.raises(ModelError, match="did not answer within 0.3"):
        vlm.generate([Conversation.user("x")])


def test_local_image_limit(openai_server):
    vlm = _client(openai_server, profile=ModelProfile(name="m", max_images=1, history_images=5))
    with pytest.raises(ModelError, match="limit of 1"):
        vlm.generate([Conversation.user("x", [_shot("red"), _shot("blue")])])
    assert openai_server.requests == []

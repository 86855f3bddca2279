"""``ChatModelVLM``: any langchain-core chat model that accepts images, as a ``VLM``.

The common case is ``ChatOpenAI(base_url="http://host:8000/v1")`` talking to vLLM serving
UI-TARS-1.5-7B; ``ChatModelVLM.from_url`` builds that. Screenshots go as base64 PNG content
blocks; only the newest ``profile.history_images`` screenshots of a conversation are sent.
Transient failures (5xx, 429, connection reset) are retried with exponential backoff; the
errors a user meets in practice become a one-line ``ModelError`` with a hint.
"""

from __future__ import annotations

import base64
import io
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pixelpilot.errors import DependencyNotInstalled, ModelError
from pixelpilot.vlm.base import Conversation, Generation, ModelProfile, SamplingParams


def png_data_url(image: Any) -> str:
    """``data:image/png;base64,...`` of a PIL image."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def windowed(conv: Conversation, keep: int) -> Conversation:
    """``conv`` with only its newest ``keep`` images (older turns keep their text)."""
    total = len(conv.images)
    drop = max(0, total - keep)
    messages = []
    for m in conv.messages:
        take = min(drop, len(m.images))
        drop -= take
        messages.append(type(m)(m.role, m.text, m.images[take:]))
    return Conversation(tuple(messages))


def to_langchain(conv: Conversation) -> list[Any]:
    """langchain-core messages: images as OpenAI-style ``image_url`` data-URL blocks, then text."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    out: list[Any] = []
    for m in conv.messages:
        if m.role == "system":
            out.append(SystemMessage(m.text))
        elif m.role == "assistant":
            out.append(AIMessage(m.text))
        else:
            blocks: list[dict[str, Any]] = [
                {"type": "image_url", "image_url": {"url": png_data_url(im)}} for im in m.images
            ]
            if m.text:
                blocks.append({"type": "text", "text": m.text})
            out.append(HumanMessage(content=blocks))
    return out


def _status(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    if code is None:
        code = getattr(getattr(exc, "response", None), "status_code", None)
    return int(code) if isinstance(code, int) else None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def _kind(exc: BaseException) -> str:
    """'refused', 'timeout', 'reset', 'http' or 'other'."""
    names = " ".join(type(e).__name__ for e in _chain(exc))
    text = " ".join(str(e) for e in _chain(exc)).lower()
    if _status(exc) is not None:
        return "http"
    if "Timeout" in names or "timed out" in text:
        return "timeout"
    if "Refused" in names or "connection refused" in text or "ConnectError" in names:
        return "refused"
    if "Connection" in names or "reset" in text or "RemoteProtocolError" in names:
        return "reset"
    return "other"


def is_transient(exc: BaseException) -> bool:
    status = _status(exc)
    if status is not None:
        return status == 429 or status >= 500
    return _kind(exc) == "reset"


def explain(exc: BaseException, base_url: str | None, profile: ModelProfile, timeout: Any) -> str:
    """A one-line message with a hint for the errors users meet in practice."""
    where = base_url or "the model server"
    status = _status(exc)
    detail = " ".join(str(exc).split())[:300]
    if status == 404:
        hint = "the base URL usually ends with /v1, e.g. http://host:8000/v1"
        if base_url and not base_url.rstrip("/").endswith("/v1"):
            hint = f"did you mean {base_url.rstrip('/')}/v1?"
        return f"{where} answered 404 Not Found ({hint}; also check --model-name)"
    if status == 400 and "image" in detail.lower():
        return (
            f"{where} rejected the request (400): too many images for the server's limit "
            f"(vLLM: --limit-mm-per-prompt); lower history_images (now "
            f"{profile.history_images}) or set max_images: {detail}"
        )
    if status is not None:
        return f"{where} answered HTTP {status}: {detail}"
    kind = _kind(exc)
    if kind == "refused":
        return f"connection to {where} was refused: is the server running and the port right?"
    if kind == "timeout":
        return f"{where} did not answer within {timeout} s (raise timeout=, or the server is busy)"
    return f"request to {where} failed: {type(exc).__name__}: {detail}"


class ChatModelVLM:
    """A langchain-core ``BaseChatModel`` behind the ``VLM`` protocol."""

    def __init__(
        self,
        chat_model: Any,
        profile: ModelProfile | None = None,
        *,
        retries: int = 4,
        backoff: float = 0.5,
        concurrency: int = 4,
        base_url: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.chat_model = chat_model
        name = getattr(chat_model, "model_name", None) or type(chat_model).__name__
        self.profile = profile or ModelProfile(name=str(name))
        self.retries = retries
        self.backoff = backoff
        self.concurrency = max(1, concurrency)
        self.base_url = base_url
        self.timeout = timeout

    @classmethod
    def from_url(
        cls,
        base_url: str,
        model_name: str = "ui-tars",
        *,
        api_key: str = "EMPTY",
        timeout: float = 120.0,
        profile: ModelProfile | None = None,
        **kw: Any,
    ) -> ChatModelVLM:
        """A client of an OpenAI-compatible server (vLLM, SGLang, ...) at ``base_url``."""
        try:
            from langchain_openai import ChatOpenAI
        except ImportError as exc:
            raise DependencyNotInstalled("langchain-openai", extra="models") from exc
        chat = ChatOpenAI(
            base_url=base_url, model=model_name, api_key=api_key, timeout=timeout, max_retries=0
        )
        profile = profile or ModelProfile(name=model_name)
        return cls(chat, profile, base_url=base_url, timeout=timeout, **kw)

    def _request(self, conv: Conversation, params: SamplingParams, sample: int) -> Generation:
        conv = windowed(conv, self.profile.history_images)
        limit = self.profile.max_images
        if limit is not None and len(conv.images) > limit:
            raise ModelError(f"{len(conv.images)} images exceed the server's limit of {limit}")
        messages = to_langchain(conv)
        kw: dict[str, Any] = {"max_tokens": params.max_new_tokens}
        kw["temperature"] = params.temperature
        if params.top_p < 1.0:
            kw["top_p"] = params.top_p
        if params.seed is not None:
            kw["seed"] = params.seed + sample
        stop = list(params.stop) or None
        start = time.perf_counter()
        for attempt in range(self.retries + 1):
            try:
                reply = self.chat_model.invoke(messages, stop=stop, **kw)
                break
            except Exception as exc:  # the chat model's own exception types vary by provider
                if not is_transient(exc) or attempt == self.retries:
                    msg = explain(exc, self.base_url, self.profile, self.timeout)
                    raise ModelError(msg) from exc
                time.sleep(self.backoff * 2**attempt)
        meta = getattr(reply, "response_metadata", {}) or {}
        reason = "length" if meta.get("finish_reason") == "length" else "stop"
        text = reply.content if isinstance(reply.content, str) else str(reply.text)
        return Generation(text, None, reason, {"generate": time.perf_counter() - start})

    def generate(
        self, conversations: list[Conversation], params: SamplingParams | None = None
    ) -> list[Generation]:
        params = params or SamplingParams()
        jobs = [(c, s) for c in conversations for s in range(params.n)]
        if len(jobs) == 1 or self.concurrency == 1:
            return [self._request(c, params, s) for c, s in jobs]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs))) as pool:
            return list(pool.map(lambda job: self._request(job[0], params, job[1]), jobs))

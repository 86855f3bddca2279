"""A scripted model: answers from a list or a function, for tests and dry runs.

It is a real ``VLM`` (same protocol, same profile) whose answers are decided by code, so the
agent loop, recording and evaluation can be exercised without weights.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from pixelpilot.vlm.base import Conversation, Generation, ModelProfile, SamplingParams

Responder = Callable[[Conversation], str]


class ScriptedVLM:
    """Answers with ``responses`` in order (cycling when ``cycle``), or with ``fn(conv)``.

    Every conversation it was asked about is kept in ``calls`` for inspection.
    """

    def __init__(
        self,
        responses: Sequence[str] | Responder,
        profile: ModelProfile | None = None,
        *,
        cycle: bool = False,
    ) -> None:
        self.profile = profile or ModelProfile(name="scripted")
        self._fn = responses if callable(responses) else None
        self._responses = list(responses) if not callable(responses) else []
        self._cycle = cycle
        self._next = 0
        self.calls: list[Conversation] = []

    def _answer(self, conv: Conversation) -> str:
        if self._fn is not None:
            return self._fn(conv)
        if self._next >= len(self._responses):
            if not self._cycle or not self._responses:
                raise IndexError("ScriptedVLM ran out of scripted responses")
            self._next = 0
        text = self._responses[self._next]
        self._next += 1
        return text

    def generate(
        self, conversations: list[Conversation], params: SamplingParams | None = None
    ) -> list[Generation]:
        params = params or SamplingParams()
        out: list[Generation] = []
        for conv in conversations:
            self.calls.append(conv)
            for _ in range(params.n):
                start = time.perf_counter()
                text = self._answer(conv)
                out.append(Generation(text, timing={"generate": time.perf_counter() - start}))
        return out

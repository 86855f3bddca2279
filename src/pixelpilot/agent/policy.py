"""Policies: the model-driven ``VLMPolicy`` (prompt + history + model + retries).

A policy implements ``pixelpilot.envs.base.Policy`` (``coords``, ``prompt_family``,
``reset(instruction)``, ``act(observation) -> PolicyOutput``, ``note(text)``), exactly like the
scripted experts, so the agent loop records both the same way. ``VLMPolicy`` puts the parsed
answer, the rejected attempts and its timings on the ``PolicyOutput`` it returns.

History follows UI-TARS: the last ``history_images`` screenshots (the current one included)
go into the conversation as images; older steps appear as their assistant text only. The
conversation and the parsing come from ``pixelpilot.agent.sample``, the one home of the step
sample, which offline evaluation and training call too.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pixelpilot.agent.prompts import template_for
from pixelpilot.agent.sample import image_window, parse_answer, step_conversation
from pixelpilot.envs.base import BasePolicy, Observation, PolicyOutput
from pixelpilot.errors import ParseError
from pixelpilot.vlm.base import VLM, Conversation, SamplingParams

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from pixelpilot.tools.grammar import Response


@dataclass
class _Turn:
    screenshot: Image.Image
    response: str
    feedback: str | None = None  # shown to the model together with ``screenshot``


class VLMPolicy(BasePolicy):
    """Drive a ``VLM`` with UI-TARS prompts and history.

    ``kind`` is the prompt kind (computer, mobile, grounding), ``language`` the language of
    the model's thoughts; both default to the model's own (``profile.prompt_kind`` and
    ``profile.prompt_language``: what its checkpoint declares). An answer that does not parse
    is asked again up to ``retries`` times with the temperatures in ``retry_temperatures``
    (sampling instead of greedy, so a failed answer is not simply repeated); the last answer is
    returned even if it still does not parse, and the loop records the parse error on the step.
    A retry samples with ``params.seed`` or, when that is None, a seed made from the
    instruction, the step and the attempt, so an evaluation with retries is reproducible.
    """

    def __init__(
        self,
        vlm: VLM,
        *,
        kind: str | None = None,
        language: str | None = None,
        history_images: int | None = None,
        params: SamplingParams | None = None,
        retries: int = 3,
        retry_temperatures: tuple[float, ...] = (0.7, 1.0),
    ) -> None:
        self.vlm = vlm
        self.profile = vlm.profile
        self.coords = self.profile.coords
        self.template = template_for(
            self.profile.prompt_family,
            kind or self.profile.prompt_kind,
            language or self.profile.prompt_language,
        )
        self.prompt_family = self.template.family
        self.history_images = image_window(self.profile, history_images)
        self.params = params or SamplingParams(max_new_tokens=256, temperature=0.0)
        self.retries = retries
        self.retry_temperatures = retry_temperatures or (1.0,)
        self.instruction = ""
        self._turns: list[_Turn] = []
        self._pending: list[str] = []

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self._turns = []
        self._pending = []

    def remember(self, screenshot: Image.Image, response: str) -> None:
        """Add a past turn to the history (a replayed step before a model takes over)."""
        self._turns.append(_Turn(screenshot, response))

    def note(self, text: str) -> None:
        """Feedback shown to the model with the next screenshot."""
        self._pending.append(text)

    def conversation(self, observation: Observation) -> Conversation:
        """The conversation for the next answer (without changing the history)."""
        turns = [(t.screenshot, t.response, t.feedback) for t in self._turns]
        return step_conversation(
            self.template.render(self.instruction),
            turns,
            observation.screenshot,
            self.history_images,
            "\n".join(self._pending),
        )

    def _retry_seed(self, attempt: int) -> int:
        return zlib.crc32(f"{self.instruction}\0{len(self._turns)}\0{attempt}".encode())

    def act(self, observation: Observation) -> PolicyOutput:
        start = time.perf_counter()
        conv = self.conversation(observation)
        prompt_time = time.perf_counter() - start
        attempts: list[dict[str, str]] = []
        response: Response | None = None
        model_time = parse_time = 0.0
        text = ""
        for attempt in range(self.retries + 1):
            params = self.params
            if attempt:
                temps = self.retry_temperatures
                params = replace(
                    params,
                    temperature=temps[min(attempt - 1, len(temps) - 1)],
                    seed=params.seed if params.seed is not None else self._retry_seed(attempt),
                )
            t0 = time.perf_counter()
            text = self.vlm.generate([conv], params)[0].text
            t1 = time.perf_counter()
            model_time += t1 - t0
            try:
                response = parse_answer(text, self.coords, observation.size)
                parse_time += time.perf_counter() - t1
                break
            except ParseError as exc:
                parse_time += time.perf_counter() - t1
                attempts.append({"response": text, "error": str(exc)})
        feedback = "\n".join(self._pending) or None
        self._pending = []
        self._turns.append(_Turn(observation.screenshot, text, feedback))
        timing = {"prompt": prompt_time, "model": model_time, "parse": parse_time}
        return PolicyOutput(text, response=response, attempts=tuple(attempts), timing=timing)

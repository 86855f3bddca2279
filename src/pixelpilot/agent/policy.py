"""Policies: the model-driven ``VLMPolicy`` (prompt + history + model + retries).

A policy implements ``pixelpilot.envs.base.Policy`` (``reset(instruction)``,
``act(observation) -> PolicyOutput``), exactly like the scripted experts, so the agent loop
records both the same way. Optional extras the loop uses when present:

- ``frame``: the coordinate frame of the policy's answers (``uitars-1.5`` if absent, with
  the default smart_resize limits: how the scripted experts answer);
- ``note(text)``: feedback for the next turn (an action that failed, the user's answer);
- ``last_timing`` / ``last_attempts``: timings and rejected answers of the last ``act``.

History follows UI-TARS: the last ``history_images`` screenshots (the current one included)
go into the conversation as images; older steps appear as their assistant text only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pixelpilot.agent.prompts import template_for
from pixelpilot.envs.base import Observation, PolicyOutput
from pixelpilot.errors import ParseError
from pixelpilot.vlm.base import VLM, Conversation, Message, SamplingParams

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image


@dataclass
class _Turn:
    screenshot: Image.Image
    response: str
    feedback: str | None = None  # shown to the model together with ``screenshot``


def parse(text: str, frame: str, screen: tuple[int, int], profile: Any = None) -> Any:
    """``pixelpilot.tools.parse_response`` with a profile's smart_resize limits."""
    from pixelpilot.tools import parse_response

    kwargs: dict[str, Any] = {}
    if profile is not None:
        kwargs = {
            "min_pixels": profile.min_pixels,
            "max_pixels": profile.max_pixels,
            "factor": profile.factor,
        }
    return parse_response(text, frame, screen, **kwargs)


def history_conversation(
    prompt: str,
    turns: Sequence[tuple[Image.Image, str, str | None]],
    current: Image.Image,
    history_images: int = 5,
    note: str = "",
) -> Conversation:
    """The UI-TARS conversation: the prompt as the first user turn; each past turn
    ``(screenshot, answer, feedback)`` as a user turn with its screenshot (only for the last
    ``history_images - 1`` turns; older ones keep their feedback text only) and the answer as an
    assistant turn; then the current screenshot (with ``note``)."""
    messages = [Message("user", prompt)]
    first_with_image = len(turns) - (max(1, history_images) - 1)
    for i, (screenshot, response, feedback) in enumerate(turns):
        if i >= first_with_image:
            messages.append(Message("user", feedback or "", (screenshot,)))
        elif feedback:
            messages.append(Message("user", feedback))
        messages.append(Message("assistant", response))
    messages.append(Message("user", note, (current,)))
    return Conversation(tuple(messages))


class VLMPolicy:
    """Drive a ``VLM`` with UI-TARS prompts and history.

    ``kind`` is the prompt kind (computer, mobile, grounding), ``language`` the language of
    the model's thoughts. An answer that does not parse is asked again up to ``retries`` times
    with the temperatures in ``retry_temperatures`` (sampling instead of greedy, so a failed
    answer is not simply repeated); the last answer is returned even if it still does not
    parse, and the loop records the parse error on the step.
    """

    def __init__(
        self,
        vlm: VLM,
        *,
        kind: str = "computer",
        language: str = "English",
        history_images: int | None = None,
        params: SamplingParams | None = None,
        retries: int = 3,
        retry_temperatures: tuple[float, ...] = (0.7, 1.0),
    ) -> None:
        self.vlm = vlm
        self.profile = vlm.profile
        self.frame = self.profile.frame
        self.template = template_for(self.profile.prompt_family, kind, language)
        limit = history_images if history_images is not None else self.profile.history_images
        if self.profile.max_images is not None:
            limit = min(limit, self.profile.max_images)
        self.history_images = max(1, limit)
        self.params = params or SamplingParams(max_new_tokens=256, temperature=0.0)
        self.retries = retries
        self.retry_temperatures = retry_temperatures or (1.0,)
        self.instruction = ""
        self._turns: list[_Turn] = []
        self._pending: list[str] = []
        self.last_timing: dict[str, float] = {}
        self.last_response: Any = None  # the parsed answer of the last ``act`` (if it parsed)
        self.last_text: str | None = None
        self.last_attempts: list[dict[str, str]] = []

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
        return history_conversation(
            self.template.render(self.instruction),
            turns,
            observation.screenshot,
            self.history_images,
            "\n".join(self._pending),
        )

    def act(self, observation: Observation) -> PolicyOutput:
        start = time.perf_counter()
        conv = self.conversation(observation)
        prompt_time = time.perf_counter() - start
        self.last_attempts = []
        self.last_response, self.last_text = None, None
        model_time = parse_time = 0.0
        text = ""
        for attempt in range(self.retries + 1):
            params = self.params
            if attempt:
                temps = self.retry_temperatures
                params = replace(params, temperature=temps[min(attempt - 1, len(temps) - 1)])
            t0 = time.perf_counter()
            text = self.vlm.generate([conv], params)[0].text
            t1 = time.perf_counter()
            model_time += t1 - t0
            try:
                self.last_response = parse(text, self.frame, observation.size, self.profile)
                self.last_text = text
                parse_time += time.perf_counter() - t1
                break
            except ParseError as exc:
                parse_time += time.perf_counter() - t1
                self.last_attempts.append({"response": text, "error": str(exc)})
        feedback = "\n".join(self._pending) or None
        self._pending = []
        self._turns.append(_Turn(observation.screenshot, text, feedback))
        self.last_timing = {"prompt": prompt_time, "model": model_time, "parse": parse_time}
        return PolicyOutput(text)

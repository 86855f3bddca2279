"""The step sample: one recorded step, and the three things every consumer does with it.

A ``StepSample`` is what the dataset adapters (``pixelpilot.eval.datasets``) read from any
offline format: the screenshot, the instruction, the episode's earlier answers, and the gold
actions in screen pixels. Three operations are defined here and nowhere else:

- ``sample.conversation(profile)``: the conversation a model sees at that step, built by the
  same ``step_conversation`` the agent's policy calls online (so prompts cannot drift);
- ``sample.target_text(profile)``: the gold answer written in the model's coordinate frame and
  pixel limits (the supervised fine-tuning target);
- ``sample.parse(text, profile)``: a model's answer for that step, actions in screen pixels,
  read with the model's frame *and* pixel limits (offline scoring and training rewards).

Coordinates in a model answer only mean something together with the frame and the
``smart_resize`` limits of the model that wrote them; ``CoordinateFrame`` carries both, and
every conversion in this module goes through ``parse_answer`` / ``format_response`` with one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pixelpilot.envs.base import ScreenBox
from pixelpilot.errors import FileFormatError, ParseError
from pixelpilot.tools.frames import CoordinateFrame

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from pixelpilot.tools.grammar import Response
    from pixelpilot.vlm.base import Conversation, ModelProfile

# a past turn as the prompt shows it: (screenshot or None when outside the image window,
# the answer text in the model's frame, feedback shown with that screenshot)
Turn = tuple["Image.Image | None", str, "str | None"]


def parse_answer(text: str, coords: CoordinateFrame, screen: tuple[int, int]) -> Response:
    """A model answer -> ``Response`` with actions in screen pixels (``ParseError`` if it is
    not valid action language). ``coords`` must carry the model's own pixel limits."""
    from pixelpilot.tools.grammar import parse_response

    return parse_response(text, coords, screen)


def image_window(profile: ModelProfile, history_images: int | None = None) -> int:
    """How many screenshots (the current one included) a prompt for ``profile`` shows."""
    limit = profile.history_images if history_images is None else history_images
    if profile.max_images is not None:
        limit = min(limit, profile.max_images)
    return max(1, limit)


def step_conversation(
    prompt: str,
    turns: Sequence[Turn],
    current: Image.Image,
    history_images: int = 5,
    note: str = "",
) -> Conversation:
    """The UI-TARS conversation: the prompt as the first user turn; each past turn as a user
    turn with its screenshot (only for the last ``history_images - 1`` turns; older ones keep
    their feedback text only) and the answer as an assistant turn; then the current screenshot
    (with ``note``)."""
    from pixelpilot.vlm.base import Conversation, Message

    messages = [Message("user", prompt)]
    first_with_image = len(turns) - (max(1, history_images) - 1)
    for i, (screenshot, response, feedback) in enumerate(turns):
        if i >= first_with_image:
            if screenshot is None:
                raise ValueError(f"turn {i}: a screenshot is needed inside the image window")
            messages.append(Message("user", feedback or "", (screenshot,)))
        elif feedback:
            messages.append(Message("user", feedback))
        messages.append(Message("assistant", response))
    messages.append(Message("user", note, (current,)))
    return Conversation(tuple(messages))


def rewrite_answer(
    text: str,
    source: CoordinateFrame,
    target: CoordinateFrame,
    screen: tuple[int, int],
    thought: bool = True,
) -> str:
    """``text`` (written in ``source``) as a model in ``target`` would have written it, without
    its Thought unless ``thought``. The text is kept as it is when nothing changes or it does
    not parse (a failed answer is shown to the model as it was)."""
    if source.equivalent(target) and (thought or "Thought:" not in text):
        return text
    from pixelpilot.tools.grammar import format_response

    try:
        response = parse_answer(text, source, screen)
        if not response.actions:
            return text
        kept = response.thought if thought else None
        return format_response(kept, response.actions, target, screen)
    except (ParseError, ValueError):
        return text


def _load_rgb(path: str) -> Image.Image:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:  # a broken data file
        problem = " ".join(str(exc).split()) or type(exc).__name__
        raise FileFormatError(path, None, f"not a readable image ({problem})") from None


@dataclass(frozen=True)
class StepSample:
    """One step to predict. ``gold`` are canonical Action dicts in screen pixels; ``history``
    holds ``(response text, screenshot path)`` of the episode's earlier steps, oldest first,
    written in ``coords``; ``gold_response`` is the recorded answer text, when the data has one
    (trajectories), also in ``coords``."""

    id: str
    episode: str
    task: str
    step: int
    image: str
    instruction: str
    gold: tuple[dict[str, Any], ...]
    screen: tuple[int, int]
    target: ScreenBox | None = None
    history: tuple[tuple[str, str], ...] = ()
    step_instruction: str | None = None
    gold_response: str | None = None
    coords: CoordinateFrame = field(default_factory=lambda: CoordinateFrame("pixels"))
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def frame(self) -> str:
        """Name of the frame the recorded answers are written in."""
        return self.coords.name

    def prompt_instruction(self, step_instructions: bool = False) -> str:
        """The instruction the prompt shows (AndroidControl's "low" level appends the step's)."""
        if step_instructions and self.step_instruction:
            return f"{self.instruction}\nNext step: {self.step_instruction}"
        return self.instruction

    def conversation(
        self,
        profile: ModelProfile,
        *,
        kind: str | None = None,
        language: str | None = None,
        step_instructions: bool = False,
        history_images: int | None = None,
        history_thoughts: bool | None = None,
    ) -> Conversation:
        """The conversation the agent would send a model with ``profile`` at this step: the
        agent's prompt template (``kind`` and ``language``; by default the profile's own, as
        ``VLMPolicy``), the episode's earlier answers rewritten into the model's frame (without
        their Thought unless ``history_thoughts``, by default the profile's: a model that
        answers without one sees its own history so at run time), the last screenshots of the
        image window, the current one. Screenshots outside the window are never loaded."""
        from pixelpilot.agent.prompts import template_for

        window = image_window(profile, history_images)
        first_with_image = len(self.history) - (window - 1)
        coords = profile.coords
        if history_thoughts is None:
            history_thoughts = profile.history_thoughts
        turns: list[Turn] = [
            (
                _load_rgb(image) if i >= first_with_image else None,
                rewrite_answer(response, self.coords, coords, self.screen, history_thoughts),
                None,
            )
            for i, (response, image) in enumerate(self.history)
        ]
        kind, language = kind or profile.prompt_kind, language or profile.prompt_language
        prompt = template_for(profile.prompt_family, kind, language).render(
            self.prompt_instruction(step_instructions)
        )
        return step_conversation(prompt, turns, _load_rgb(self.image), window)

    def gold_actions(self) -> list[Any]:
        from pixelpilot.tools.actions import Action

        return [Action.from_dict(a) for a in self.gold]

    def gold_thought(self) -> str | None:
        """The recorded thought of the gold answer, when there is one."""
        if not self.gold_response:
            return None
        try:
            return parse_answer(self.gold_response, self.coords, self.screen).thought
        except (ParseError, ValueError):
            return None

    def target_text(self, profile: ModelProfile, *, thought: bool = True) -> str:
        """The gold answer as ``profile``'s model should write it: the recorded thought (if
        ``thought``) and the gold actions, in the model's frame and pixel limits. Parsed back
        with ``self.parse`` it lands on the gold pixels up to the rounding of one model
        coordinate unit."""
        from pixelpilot.tools.grammar import format_response

        text = self.gold_thought() if thought else None
        return format_response(text, self.gold_actions(), profile.coords, self.screen)

    def parse(self, text: str, profile: ModelProfile | CoordinateFrame) -> Response:
        """A model's answer for this step, actions in screen pixels (``ParseError`` if it does
        not parse). ``profile`` is the answering model's profile, or its ``CoordinateFrame``."""
        coords = profile if isinstance(profile, CoordinateFrame) else profile.coords
        return parse_answer(text, coords, self.screen)


__all__ = [
    "StepSample",
    "Turn",
    "image_window",
    "parse_answer",
    "rewrite_answer",
    "step_conversation",
]

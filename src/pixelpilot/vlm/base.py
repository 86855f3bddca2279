"""The small protocol every model backend implements.

A ``Conversation`` is a list of messages with text and PIL images. ``VLM.generate`` turns a
batch of conversations into ``Generation`` objects. Trainable backends also implement
``TrainableVLM.logprobs``. A ``ModelProfile`` travels with each backend and tells the agent
which coordinate frame, prompt family and image limits the model expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from pixelpilot.tools.frames import CoordinateFrame

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

Role = Literal["system", "user", "assistant"]
Completion = str | Sequence[int]  # an answer as text, or as the token ids generate returned
# The prompt kinds and languages the agent's templates exist for (``pixelpilot.agent.prompts``);
# a model profile names one of each, a checkpoint may declare them (``vlm.profiles``).
PROMPT_KINDS = ("computer", "mobile", "grounding")
PROMPT_LANGUAGES = ("English", "Chinese")


@dataclass(frozen=True)
class Message:
    """One turn. ``images`` are shown before ``text`` (the order UI-TARS is trained with)."""

    role: Role
    text: str = ""
    images: tuple[Image.Image, ...] = ()


@dataclass(frozen=True)
class Conversation:
    messages: tuple[Message, ...] = ()

    @classmethod
    def user(cls, text: str, images: list[Image.Image] | tuple = ()) -> Conversation:
        """A conversation of a single user turn."""
        return cls((Message("user", text, tuple(images)),))

    def add(self, role: Role, text: str = "", images: list | tuple = ()) -> Conversation:
        """A new conversation with one more message."""
        return Conversation((*self.messages, Message(role, text, tuple(images))))

    @property
    def images(self) -> list[Image.Image]:
        return [im for m in self.messages for im in m.images]


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    n: int = 1  # completions per conversation
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generation:
    text: str
    token_ids: tuple[int, ...] | None = None
    finish_reason: Literal["stop", "length", "error"] = "stop"
    timing: dict[str, float] = field(default_factory=dict)  # seconds, e.g. {"generate": 0.8}


@dataclass(frozen=True)
class ModelProfile:
    """What the agent needs to know about a model to talk to it.

    ``frame`` is the coordinate frame of its answers (``uitars-1.5``, ``uitars-1.0``,
    ``pixels``); ``prompt_family`` picks the prompt template (``uitars-1.5``, ``uitars-1.0``);
    ``min_pixels``/``max_pixels`` are the smart_resize limits of its image processor;
    ``history_images`` is how many recent screenshots go into the prompt; ``prompt_kind``
    (computer, mobile, grounding) and ``prompt_language`` are the template the model was
    trained with, which the agent uses unless told otherwise; ``history_thoughts`` whether
    its prompts show the Thought of earlier answers (off for a model trained to answer
    without one, whose own history at run time has none). A checkpoint declares these three
    in its ``pixelpilot.json``; see ``pixelpilot.vlm.profiles``.
    """

    name: str = "model"
    frame: str = "uitars-1.5"
    prompt_family: str = "uitars-1.5"
    min_pixels: int = 100 * 28 * 28
    max_pixels: int = 16384 * 28 * 28
    factor: int = 28
    history_images: int = 5
    max_images: int | None = None  # a server's per-request image limit, when known
    prompt_kind: str = "computer"
    prompt_language: str = "English"
    history_thoughts: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def coords(self) -> CoordinateFrame:
        """The frame of the model's answers with its image processor's resize limits: the one
        object every conversion of this model's coordinates goes through."""
        return CoordinateFrame(self.frame, self.factor, self.min_pixels, self.max_pixels)


@runtime_checkable
class VLM(Protocol):
    profile: ModelProfile

    def generate(
        self, conversations: list[Conversation], params: SamplingParams | None = None
    ) -> list[Generation]:
        """One ``Generation`` per conversation and sample: ``len(conversations) * params.n``,
        grouped by conversation."""
        ...


@runtime_checkable
class TrainableVLM(VLM, Protocol):
    def logprobs(
        self,
        conversations: list[Conversation],
        completions: list[Completion],
        *,
        grad: bool = False,
    ) -> list[Any]:
        """Per-token log-probabilities (a 1-D float tensor each) of ``completions[i]`` given
        ``conversations[i]``, consistent with what ``generate`` samples. A completion is a text
        or the token ids ``generate`` returned; with ``grad=True`` the tensors carry gradients
        to the model's parameters."""
        ...

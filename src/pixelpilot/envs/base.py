"""What every pixelpilot env shares: the observation the agent sees and the expert policy.

Envs are ``gymnasium.Env`` subclasses. Their raw observation is a dict
``{"screenshot": uint8 array HxWx3, "instruction": str}`` (so ``check_env`` can validate it
against the declared space); ``Observation.from_gym`` turns it and the step's ``info`` into the
object the agent works with.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pixelpilot.tools.frames import CoordinateFrame

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from pixelpilot.tools.grammar import Response


# x1, y1, x2, y2 in screen pixels, inclusive (a plain tuple, not gymnasium.spaces.Box)
ScreenBox = tuple[int, int, int, int]


@dataclass(frozen=True)
class Observation:
    screenshot: Image.Image  # RGB
    instruction: str
    extras: dict[str, Any] = field(default_factory=dict)  # url, title, windows, ...

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the screenshot."""
        return self.screenshot.size

    @classmethod
    def from_gym(cls, obs: dict[str, Any], info: dict[str, Any] | None = None) -> Observation:
        from PIL import Image

        extras = dict((info or {}).get("extras", {}))
        return cls(
            Image.fromarray(obs["screenshot"]).convert("RGB"), str(obs["instruction"]), extras
        )


@dataclass(frozen=True)
class PolicyOutput:
    """One decision of a policy.

    ``text`` is the raw answer in the UI-TARS action language; ``response`` the parsed answer
    (actions in screen pixels) when the policy parsed it itself, else ``None`` and the agent
    parses ``text`` with the policy's ``coords``; ``attempts`` the rejected answers before this
    one (``{"response", "error"}`` each); ``timing`` seconds per phase (prompt, model, parse);
    ``target`` the box of the element acted on, when the policy knows it (experts);
    ``perturbed`` that the action is not the policy's choice but one injected to teach recovery
    (recorded as ``"perturbed": true``: later steps' history, never a target); ``labels`` the
    readable words on the screen and their boxes, when the policy knows them (experts; recorded
    as the step's ``labels``, the reading objective's targets).
    """

    text: str
    target: ScreenBox | None = None
    response: Response | None = None
    attempts: tuple[dict[str, str], ...] = ()
    timing: Mapping[str, float] = field(default_factory=dict)
    perturbed: bool = False
    labels: tuple[tuple[str, ScreenBox], ...] = ()


@runtime_checkable
class Policy(Protocol):
    """Anything that picks the next action from an observation: a model-driven agent or a
    scripted expert. Experts answer in the UI-TARS action language, like a model.

    ``coords`` is the coordinate frame of the answers with the resize limits they assume;
    ``prompt_family`` names the prompt template (``None`` for policies without a prompt);
    ``note(text)`` is feedback for the next turn (a failed action, the user's answer).
    ``BasePolicy`` gives the optional parts their defaults."""

    coords: CoordinateFrame
    prompt_family: str | None

    def reset(self, instruction: str) -> None: ...

    def act(self, observation: Observation) -> PolicyOutput: ...

    def note(self, text: str) -> None: ...


class BasePolicy:
    """Defaults for a ``Policy``: answers in the ``uitars-1.5`` frame with the default resize
    limits (how the scripted experts answer, like a model), no prompt, feedback ignored."""

    coords: CoordinateFrame = CoordinateFrame("uitars-1.5")
    prompt_family: str | None = None

    def reset(self, instruction: str) -> None:
        self.instruction = instruction

    def act(self, observation: Observation) -> PolicyOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    def note(self, text: str) -> None:
        """Feedback for the next turn; a scripted policy has no use for it."""

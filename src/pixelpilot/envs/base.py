"""What every pixelpilot env shares: the observation the agent sees and the expert policy.

Envs are ``gymnasium.Env`` subclasses. Their raw observation is a dict
``{"screenshot": uint8 array HxWx3, "instruction": str}`` (so ``check_env`` can validate it
against the declared space); ``Observation.from_gym`` turns it and the step's ``info`` into the
object the agent works with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image


Box = tuple[int, int, int, int]  # x1, y1, x2, y2 in screen pixels, inclusive


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
    """One decision of a policy: the raw UI-TARS text, and (for experts) the target box."""

    text: str
    target: Box | None = None


@runtime_checkable
class Policy(Protocol):
    """Anything that picks the next action from an observation: a model-driven agent or a
    scripted expert. Experts answer in the UI-TARS action language, like a model."""

    def reset(self, instruction: str) -> None: ...

    def act(self, observation: Observation) -> PolicyOutput: ...

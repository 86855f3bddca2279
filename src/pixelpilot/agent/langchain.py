"""LangChain integration: the agent as a ``Runnable``, and env actions as tools.

- ``AgentRunnable(agent)``: ``invoke("Click OK")`` (or ``{"task": ..., "seed": ...}``) runs one
  episode and returns ``EpisodeResult.to_dict()``; it composes with ``|`` like any Runnable.
- ``EnvSession(env)`` + ``env_tools(session)``: one langchain-core tool per action (from
  ``pixelpilot.tools.make_action_tools``) that steps the live env and answers with what
  happened (reward, done, errors); every call is recorded when the session has ``out``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.runnables import Runnable, RunnableConfig

from pixelpilot.agent.loop import Agent, EpisodeResult, execute, observe
from pixelpilot.agent.trajectory import Step, TrajectoryWriter, screenshot_name
from pixelpilot.envs.base import Observation
from pixelpilot.tools.actions import Action


class AgentRunnable(Runnable[Any, dict]):
    """Run an ``Agent`` as a LangChain ``Runnable``.

    ``agent`` is an ``Agent`` or a function building one (called for every invocation, e.g. to
    give each its own env). Input: the task instruction as a string (empty: the env's own), or
    a dict with ``task``, ``seed`` and ``out``. ``out_root`` records each episode under
    ``OUT_ROOT/episode-<n>``.
    """

    def __init__(
        self, agent: Agent | Callable[[], Agent], *, out_root: str | Path | None = None
    ) -> None:
        self._agent = agent
        self.out_root = Path(out_root) if out_root is not None else None
        self._count = 0

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict:
        spec = {"task": input} if isinstance(input, str) else dict(input or {})
        agent = self._agent if isinstance(self._agent, Agent) else self._agent()
        out = spec.get("out")
        if out is None and self.out_root is not None:
            out = self.out_root / f"episode-{self._count:04d}"
        self._count += 1
        previous = agent.instruction
        agent.instruction = spec.get("task") or previous
        try:
            result: EpisodeResult = agent.run(seed=spec.get("seed", 0), out=out)
        finally:
            agent.instruction = previous
        return result.to_dict()


class EnvSession:
    """A live env that tools act on. ``reset`` starts an episode; ``execute(action)`` steps it
    and describes the outcome in one line for the model; ``observation`` is the latest view."""

    def __init__(self, env: Any, *, task: str = "env", out: str | Path | None = None) -> None:
        self.env = env
        self.task = task
        self.out = Path(out) if out is not None else None
        self.observation: Observation | None = None
        self.total_reward = 0.0
        self.done = False
        self._writer: TrajectoryWriter | None = None
        self._index = 0

    def reset(self, seed: int | None = 0) -> Observation:
        obs, info = self.env.reset(seed=seed)
        self.observation = observe(obs, info)
        self.total_reward, self.done, self._index = 0.0, False, 0
        if self.out is not None:
            self.close()
            header = {"task": self.task, "env": self.task, "seed": seed, "model": "langchain",
                      "frame": "pixels", "screen": list(self.observation.size),
                      "instruction": self.observation.instruction}  # fmt: skip
            self._writer = TrajectoryWriter(self.out / f"seed-{seed}", header)
        return self.observation

    def execute(self, action: Action) -> str:
        if self.observation is None:
            self.reset()
        if self.done:
            return "the episode is over; reset the session to start another"
        before = self.observation
        outcome = execute(self.env, [action])
        self.total_reward += outcome.reward
        self.done = outcome.terminated or outcome.truncated or outcome.stop is not None
        if outcome.observation is not None:
            self.observation = outcome.observation
        if self._writer is not None and before is not None:
            step = Step(index=self._index, screenshot=screenshot_name(self._index),
                        response=f"tool call: {action.to_dict()}", actions=(action.to_dict(),),
                        reward=outcome.reward, terminated=outcome.terminated,
                        truncated=outcome.truncated, error=outcome.error)  # fmt: skip
            self._writer.append(step, before.screenshot)
            self._index += 1
            if self.done:
                self._writer.finish(self.total_reward > 0, self.total_reward)
                self._writer = None
        parts = [f"{action.type} done" if not outcome.error else outcome.error]
        parts.append(f"reward {outcome.reward:g}")
        if self.done:
            parts.append("the episode ended")
        return "; ".join(parts)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def env_tools(session: EnvSession, frame: str = "pixels", **resize: Any) -> list[Any]:
    """langchain-core tools (one per action) that act on ``session``'s env."""
    from pixelpilot.tools import make_action_tools

    if session.observation is None:
        session.reset()
    screen = session.observation.size if session.observation is not None else None
    return make_action_tools(session.execute, frame, screen, **resize)

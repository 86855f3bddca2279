"""The agent loop: observe -> policy (prompt, model, parse) -> act -> record.

``Agent(vlm, env).run(seed=0, out=DIR)`` runs one episode and returns an ``EpisodeResult``.
``Agent(policy=expert, env=env)`` runs any ``Policy`` (a scripted expert) through the same loop,
so model and expert episodes are recorded the same way.

An episode ends on ``finished`` (reason ``finished``), on ``call_user`` when nobody can answer
(``needs_user``), when the env says terminated/truncated, or after ``max_steps``
(``max_steps``). Bad model output never crashes the run: a parse error is recorded on its step;
an action the env refuses is recorded and shown to the model on the next turn.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelpilot.agent.policy import VLMPolicy
from pixelpilot.agent.sample import parse_answer
from pixelpilot.agent.trajectory import Step, TrajectoryWriter, screenshot_name
from pixelpilot.envs.base import Observation, Policy
from pixelpilot.errors import EnvError, ParseError
from pixelpilot.tools.actions import Action, CallUser, Finished, Wait
from pixelpilot.vlm.base import VLM

AskUser = Callable[[str], "str | None"]
StepCallback = Callable[[Step], None]


@dataclass(frozen=True)
class EpisodeResult:
    """How an episode ended. ``reason``: finished, needs_user, terminated, truncated,
    max_steps (``record_tasks`` adds error: the policy raised). ``trajectory`` is the episode
    directory when it was recorded."""

    success: bool
    total_reward: float
    steps: int
    reason: str
    trajectory: Path | None = None
    task: str = ""
    seed: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "total_reward": self.total_reward,
            "steps": self.steps,
            "reason": self.reason,
            "trajectory": str(self.trajectory) if self.trajectory else None,
            "task": self.task,
            "seed": self.seed,
        }


@dataclass
class Outcome:
    """What executing one step's actions did."""

    observation: Observation | None = None
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    stop: str | None = None  # finished / call_user (a terminal action ends the episode)
    question: str | None = None


def execute(env: Any, actions: Sequence[Action], *, wait_seconds: float = 0.0) -> Outcome:
    """Run ``actions`` in ``env`` in order and stop at the first that ends the turn.

    ``finished`` is sent to the env (which may judge the task then) and ends the episode;
    ``call_user`` is not sent: the loop asks a person or ends the episode. ``wait`` sleeps
    ``wait_seconds`` before stepping the env with ``Wait()`` for a fresh view. An action the
    env refuses (``InvalidAction``, or ``EnvError`` when it failed) stops the rest and is
    reported in ``error``."""
    out = Outcome()
    for action in actions:
        if isinstance(action, CallUser):
            out.stop, out.question = "call_user", action.content
            break
        if isinstance(action, Wait) and wait_seconds > 0:
            time.sleep(wait_seconds)
        try:
            obs, reward, terminated, truncated, info = env.step(action)
        except (EnvError, ValueError) as exc:
            out.error = f"{action.type} failed: {' '.join(str(exc).split())}"
            if isinstance(action, Finished):  # the model is done even if the env is not
                out.stop = "finished"
            break
        out.observation = observe(obs, info)
        out.reward += float(reward)
        out.terminated |= bool(terminated)
        out.truncated |= bool(truncated)
        out.info = dict(info)
        if isinstance(action, Finished):
            out.stop = "finished"
            break
        if out.terminated or out.truncated:
            break
    return out


def observe(obs: dict[str, Any], info: dict[str, Any] | None = None) -> Observation:
    """``Observation.from_gym`` without the extra full-image copy for RGB screenshots (a
    1280x720 copy costs milliseconds; see bench/bench_agent.py)."""
    from PIL import Image

    shot = obs["screenshot"]
    if getattr(shot, "ndim", 0) != 3 or shot.shape[2] != 3:
        return Observation.from_gym(obs, info)
    extras = dict((info or {}).get("extras", {}))
    if shot.dtype != "uint8":
        return Observation.from_gym(obs, info)
    return Observation(Image.fromarray(shot), str(obs["instruction"]), extras)


def ask_at_terminal(question: str) -> str | None:
    """Ask the person at the terminal (stdin is a tty); ``None`` when nobody is there."""
    if not sys.stdin or not sys.stdin.isatty():
        return None
    sys.stderr.write(f"\nThe agent asks: {question or '(no question given)'}\nYour answer: ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip() or None


def _prompt_fields(policy: Policy) -> dict[str, str]:
    if isinstance(policy, VLMPolicy):
        return {"prompt_kind": policy.template.kind, "prompt_language": policy.template.language}
    return {}


def _jsonable_info(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if not k.startswith("_") and k != "extras"}


def env_success(info: dict[str, Any]) -> bool:
    """The env's verdict, as the env contract states it (``pixelpilot.envs.core``):
    ``info["success"]`` is ``True`` once the task is solved, ``False`` when the episode ended
    unsolved, ``None`` while undecided or for an env without a task (not a success)."""
    return info.get("success") is True


class Agent:
    """Run episodes of ``env`` with a model (``vlm``) or any ``policy``.

    ``task`` and ``model`` name the episode in its trajectory header (``env_kwargs``: how the
    env was made, ``make(task, **env_kwargs)``, so replay can rebuild it); ``instruction`` overrides
    the env's own instruction; ``ask_user`` answers ``call_user`` (default: the terminal when
    stdin is a tty); ``on_step`` is called with every recorded step (live status).
    """

    def __init__(
        self,
        vlm: VLM | None = None,
        env: Any = None,
        *,
        policy: Policy | None = None,
        max_steps: int = 15,
        instruction: str | None = None,
        task: str | None = None,
        model: str | None = None,
        kind: str | None = None,  # the prompt kind; None: the model's (VLMPolicy)
        language: str | None = None,
        retries: int = 3,
        wait_seconds: float = 2.0,
        ask_user: AskUser | None = ask_at_terminal,
        on_step: StepCallback | None = None,
        background_recording: bool | None = None,
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if env is None:
            raise ValueError("Agent needs an env")
        if (vlm is None) == (policy is None):
            raise ValueError("Agent needs exactly one of vlm= or policy=")
        self.env = env
        self.policy: Policy = policy or VLMPolicy(
            vlm, kind=kind, language=language, retries=retries
        )
        if not isinstance(self.policy, Policy):
            raise TypeError(
                f"{type(self.policy).__name__} is not a Policy: it needs coords, prompt_family, "
                "reset, act and note (pixelpilot.envs.base.BasePolicy gives the defaults)"
            )
        self.max_steps = max_steps
        self.instruction = instruction
        self.task = task or getattr(getattr(env, "spec", None), "id", None) or type(env).__name__
        self.model = model or (vlm.profile.name if vlm is not None else type(policy).__name__)
        self.wait_seconds = wait_seconds
        self.ask_user = ask_user
        self.on_step = on_step
        # PNG encoding on a worker thread pays off when it overlaps model time; with an
        # instant policy (a scripted expert) it only competes with the loop (bench_agent.py).
        self.background_recording = (
            vlm is not None if background_recording is None else background_recording
        )
        self.env_kwargs = dict(env_kwargs or {})

    def run(self, seed: int | None = 0, out: str | Path | None = None) -> EpisodeResult:
        """Run one episode from ``env.reset(seed=seed)``; record it into ``out`` if given."""
        obs, info = self.env.reset(seed=seed)
        observation = observe(obs, info)
        instruction = self.instruction or observation.instruction
        self.policy.reset(instruction)
        writer = self.open_writer(out, seed, instruction, observation) if out is not None else None
        try:
            return self.continue_episode(observation, seed=seed, writer=writer)
        finally:
            if writer is not None:
                writer.close()

    def open_writer(
        self,
        out: str | Path,
        seed: int | None,
        instruction: str,
        observation: Observation,
        **header: Any,
    ) -> TrajectoryWriter:
        """A ``TrajectoryWriter`` whose header describes this agent's episode."""
        full = {
            "task": self.task,
            "env": self.task,
            "env_kwargs": self.env_kwargs,
            "seed": seed,
            "model": self.model,
            "frame": self.policy.coords.name,
            "frame_limits": self.policy.coords.limits(),
            "screen": list(observation.size),
            "instruction": instruction,
            "max_steps": self.max_steps,
            "prompt": self.policy.prompt_family,
            **_prompt_fields(self.policy),
            **header,
        }
        return TrajectoryWriter(out, full, background=self.background_recording)

    def continue_episode(
        self,
        observation: Observation,
        *,
        seed: int | None = None,
        writer: TrajectoryWriter | None = None,
        start: int = 0,
        total_reward: float = 0.0,
    ) -> EpisodeResult:
        """Run up to ``max_steps`` steps from ``observation`` (step indices from ``start``),
        then finish ``writer``. The policy must already be reset."""
        total, reason, info = total_reward, "max_steps", {}
        steps = start
        for index in range(start, start + self.max_steps):
            step, outcome = self._step(index, observation)
            steps = index + 1
            total += step.reward
            info = outcome.info or info
            if writer is not None:
                writer.append(step, observation.screenshot)
            if self.on_step is not None:
                self.on_step(step)
            if outcome.error:
                self._note(f"The previous action failed: {outcome.error}")
            if outcome.observation is not None:
                observation = outcome.observation
            if outcome.stop == "finished":
                reason = "finished"
                break
            if outcome.terminated or outcome.truncated:
                reason = "terminated" if outcome.terminated else "truncated"
                break
            if outcome.stop == "call_user":
                answer = self.ask_user(outcome.question or "") if self.ask_user else None
                if answer is None:
                    reason = "needs_user"
                    break
                self._note(f"The user answered: {answer}")
        success = env_success(info)
        if writer is not None:
            writer.finish(success, total, reason=reason, info=_jsonable_info(info))
        trajectory = writer.directory if writer is not None else None
        return EpisodeResult(success, total, steps, reason, trajectory, self.task, seed, info)

    def _note(self, text: str) -> None:
        self.policy.note(text)

    def _step(self, index: int, observation: Observation) -> tuple[Step, Outcome]:
        t0 = time.perf_counter()
        output = self.policy.act(observation)
        t1 = time.perf_counter()
        timing = {"policy": t1 - t0, **output.timing}
        error: str | None = None
        thought = reflection = None
        actions: list[Action] = []
        try:
            response = output.response or parse_answer(
                output.text, self.policy.coords, observation.size
            )
            thought, reflection = response.thought, response.reflection
            actions = list(response.actions)
        except ParseError as exc:
            error = f"parse error: {exc}"
        t2 = time.perf_counter()
        outcome = (
            execute(self.env, actions, wait_seconds=self.wait_seconds) if actions else Outcome()
        )
        t3 = time.perf_counter()
        if error is None:
            error = outcome.error
        timing.update({"agent_parse": t2 - t1, "env": t3 - t2})
        extra: dict[str, Any] = {}
        if output.attempts:
            extra["attempts"] = list(output.attempts)
        if output.perturbed:
            extra["perturbed"] = True
        if output.labels:
            extra["labels"] = [[text, *box] for text, box in output.labels]
        step = Step(
            index=index,
            screenshot=screenshot_name(index),
            response=output.text,
            thought=thought,
            reflection=reflection,
            actions=tuple(a.to_dict() for a in actions),
            reward=outcome.reward,
            terminated=outcome.terminated,
            truncated=outcome.truncated,
            info=_jsonable_info(outcome.info),
            timing=timing,
            target=tuple(output.target) if output.target is not None else None,
            error=error,
            extra=extra,
        )
        return step, outcome


__all__ = ["Agent", "EpisodeResult", "Outcome", "ask_at_terminal", "execute"]

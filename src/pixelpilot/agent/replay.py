"""Replay a recorded episode in a fresh env and report where it diverges.

The env is rebuilt from the trajectory header (``make(header["env"], **header["env_kwargs"])``)
and reset with the recorded seed; each step's recorded actions run through the same executor
as the agent loop. A step diverges when its reward, its terminated/truncated flags, whether the
env refused an action, or the screenshot before it differ from the recording. With
``from_step=K`` the first K steps are replayed and then a model takes over (the recovery study).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pixelpilot.agent.loop import Agent, execute, observe
from pixelpilot.agent.trajectory import Episode, Step, TrajectoryWriter, read_trajectory
from pixelpilot.envs.base import Observation
from pixelpilot.errors import ReplayError
from pixelpilot.tools.actions import Action

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from pixelpilot.vlm.base import VLM


@dataclass
class ReplayReport:
    steps: int
    reward_recorded: float
    reward_replayed: float
    divergent_steps: list[int] = field(default_factory=list)
    first_divergence: dict[str, Any] | None = None
    handover: dict[str, Any] | None = None
    trajectory: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "steps": self.steps,
            "reward_recorded": self.reward_recorded,
            "reward_replayed": self.reward_replayed,
            "divergent_steps": list(self.divergent_steps),
            "first_divergence": self.first_divergence,
        }
        if self.handover is not None:
            out["handover"] = self.handover
        if self.trajectory is not None:
            out["trajectory"] = str(self.trajectory)
        return out


def screenshot_difference(a: Image.Image, b: Image.Image) -> float:
    """Fraction of pixels whose largest channel difference exceeds 32 (1.0 if sizes differ)."""
    import numpy as np

    if a.size != b.size:
        return 1.0
    x = np.asarray(a.convert("RGB"), dtype=np.int16)
    y = np.asarray(b.convert("RGB"), dtype=np.int16)
    return float((np.abs(x - y).max(axis=2) > 32).mean())


def _compare(recorded: Step, replayed: Step, shot_diff: float, tolerance: float) -> list[str]:
    problems = []
    if shot_diff > tolerance:
        problems.append(f"screenshot differs ({shot_diff:.1%} of pixels)")
    if abs(recorded.reward - replayed.reward) > 1e-6:
        problems.append(f"reward {replayed.reward:g}, recorded {recorded.reward:g}")
    for flag in ("terminated", "truncated"):
        if getattr(recorded, flag) != getattr(replayed, flag):
            problems.append(f"{flag} {getattr(replayed, flag)}, recorded {getattr(recorded, flag)}")
    refused = [s.error is not None and "failed:" in s.error for s in (recorded, replayed)]
    if refused[0] != refused[1]:
        problems.append(f"env refusal differs: {replayed.error or 'accepted'}")
    return problems


def replay(
    directory: str | Path,
    *,
    env: Any = None,
    from_step: int | None = None,
    vlm: VLM | None = None,
    max_steps: int = 15,
    out: str | Path | None = None,
    tolerance: float = 0.002,
    wait_seconds: float = 0.0,
) -> ReplayReport:
    """Replay the episode in ``directory`` (``env`` defaults to a fresh one from the header).

    ``from_step=K`` replays steps ``0..K-1`` and hands over to ``vlm`` for up to ``max_steps``
    more; ``out`` records the replayed (and handed-over) steps as a new trajectory.
    """
    episode = read_trajectory(directory)
    limit = len(episode.steps) if from_step is None else from_step
    if not 0 <= limit <= len(episode.steps):
        raise ReplayError(f"--from-step must be in 0..{len(episode.steps)}, got {from_step}")
    if from_step is not None and vlm is None:
        raise ReplayError("--from-step needs a model to hand over to (--model)")
    own_env = env is None
    if own_env:
        from pixelpilot.agent.factory import make_env

        env = make_env(episode.header["env"], **dict(episode.header.get("env_kwargs") or {}))
    try:
        return _replay(episode, env, limit, vlm, max_steps, out, tolerance, wait_seconds)
    finally:
        if own_env:
            env.close()


def _replay(
    episode: Episode,
    env: Any,
    limit: int,
    vlm: VLM | None,
    max_steps: int,
    out: str | Path | None,
    tolerance: float,
    wait_seconds: float,
) -> ReplayReport:
    obs, info = env.reset(seed=episode.seed)
    observation = observe(obs, info)
    writer = None
    agent = None
    if vlm is not None:
        agent = Agent(
            vlm,
            env,
            max_steps=max_steps,
            task=episode.task,
            model=vlm.profile.name,
            env_kwargs=episode.header.get("env_kwargs"),
            ask_user=None,
        )
        agent.policy.reset(episode.header.get("instruction") or observation.instruction)
    if out is not None:
        writer = _writer(out, episode, observation, agent)
    report = ReplayReport(limit, 0.0, 0.0, trajectory=Path(out) if out else None)
    try:
        done = False
        for recorded in episode.steps[:limit]:
            replayed, outcome = _replay_step(env, recorded, wait_seconds)
            diff = screenshot_difference(observation.screenshot, episode.load_screenshot(recorded))
            problems = _compare(recorded, replayed, diff, tolerance)
            if done:
                problems = ["the replayed episode had already ended"]
            report.reward_recorded += recorded.reward
            report.reward_replayed += replayed.reward
            if problems:
                report.divergent_steps.append(recorded.index)
                if report.first_divergence is None:
                    report.first_divergence = {"step": recorded.index, "problems": problems}
            if writer is not None:
                writer.append(replayed, observation.screenshot)
            if agent is not None:
                agent.policy.remember(observation.screenshot, recorded.response)
            if outcome.observation is not None:
                observation = outcome.observation
            done = done or outcome.terminated or outcome.truncated
        if agent is not None and not done:
            result = agent.continue_episode(
                observation,
                seed=episode.seed,
                writer=writer,
                start=limit,
                total_reward=report.reward_replayed,
            )
            report.handover = result.to_dict()
            writer = None  # finished by the agent
        elif writer is not None:
            writer.finish(
                done and report.reward_replayed > 0, report.reward_replayed, reason="replay"
            )
    finally:
        if writer is not None:
            writer.close()
    return report


def _writer(
    out: str | Path, episode: Episode, observation: Observation, agent: Agent | None
) -> TrajectoryWriter:
    header = {
        k: v for k, v in episode.header.items() if k not in ("format", "version", "started_at")
    }
    header.update({"replay_of": str(episode.directory), "screen": list(observation.size)})
    if agent is not None:
        coords = agent.policy.coords
        header.update({"model": agent.model, "frame": coords.name, "frame_limits": coords.limits()})
    return TrajectoryWriter(out, header)


def _replay_step(env: Any, recorded: Step, wait_seconds: float) -> tuple[Step, Any]:
    actions = [Action.from_dict(a) for a in recorded.actions]
    outcome = execute(env, actions, wait_seconds=wait_seconds)
    step = Step(
        index=recorded.index,
        screenshot=recorded.screenshot,
        response=recorded.response,
        thought=recorded.thought,
        reflection=recorded.reflection,
        actions=recorded.actions,
        reward=outcome.reward,
        terminated=outcome.terminated,
        truncated=outcome.truncated,
        info={k: v for k, v in outcome.info.items() if k != "extras"},
        target=recorded.target,
        error=outcome.error or (recorded.error if not recorded.actions else None),
    )
    return step, outcome

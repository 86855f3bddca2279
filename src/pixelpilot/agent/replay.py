"""Replay a recorded episode in a fresh env and report where it diverges.

The env is rebuilt from the trajectory header (``make(header["env"], **env_kwargs)``) and reset
with the recorded seed. A trajectory is untrusted input, so ``env_kwargs`` may hold only what
``REPLAY_KWARGS`` declares for its env, each value checked (a browser recording: an http(s)
``url`` and an ``allow`` list of http(s) origins; an empty ``desktop``: its ``instruction``;
every task id: nothing, the task id says it all). Launch options (``executable_path``,
``args``, ``env``, a display, apps, network) are refused before any process starts, and the env
gets the same sandbox and allow-list as a live run. A browser recording is opened only when
the user names the same origins again (``allow=``, ``--allow``) or trusts the recording's URL
explicitly (``trust_url=True``, ``--trust-recorded-url``).

Each step's recorded actions run through the same executor as the agent loop. A step diverges
when its reward, its terminated/truncated flags, whether the env refused an action, or the
screenshot before it differ from the recording. With ``from_step=K`` the first K steps are
replayed and then a model takes over (the recovery study).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pixelpilot.agent.loop import Agent, execute, observe
from pixelpilot.agent.trajectory import Episode, Step, TrajectoryWriter, read_trajectory
from pixelpilot.envs.base import Observation
from pixelpilot.errors import ReplayError, SandboxViolation
from pixelpilot.tools.actions import Action

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from pixelpilot.vlm.base import VLM


def _http_url(value: Any, key: str = "url") -> str:
    """An ``http://`` or ``https://`` URL with a host (no other scheme, no control chars)."""
    if not isinstance(value, str) or any(c.isspace() or ord(c) < 32 for c in value):
        raise ReplayError(f"recorded {key} must be an http(s) URL, got {value!r}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ReplayError(f"recorded {key} is not a valid URL: {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ReplayError(f"recorded {key} must be an http(s) URL, got {value!r}")
    return value


def _allow_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ReplayError(f"recorded allow must be a list of http(s) origins, got {value!r}")
    return [_http_url(entry, "allow entry") for entry in value]


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ReplayError(f"recorded instruction must be text, got {type(value).__name__}")
    return value


# The env kwargs a recording may carry, per env id, each with its check. Any other key (and
# any key for an id not listed here: a task id names its whole configuration) is refused.
REPLAY_KWARGS: Mapping[str, Mapping[str, Callable[[Any], Any]]] = {
    "browser": {"url": _http_url, "allow": _allow_list},
    "desktop": {"instruction": _text},
}


def recorded_env(header: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The env id and checked ``make`` kwargs of a trajectory header; ``SandboxViolation``
    for a key ``REPLAY_KWARGS`` does not declare for that env (a launch option), and
    ``ReplayError`` for a value that fails its check."""
    task = str(header.get("env") or "")
    kwargs = header.get("env_kwargs") or {}
    declared = REPLAY_KWARGS.get(task, {})
    refused = sorted(set(kwargs) - set(declared))
    if refused:
        allowed = ", ".join(declared) or "no env options"
        raise SandboxViolation(
            f"the recording asks for {task} with {', '.join(map(repr, refused))}; a recording "
            f"of {task} may carry {allowed} (launch options are never taken from a file)"
        )
    checked = {key: declared[key](value) for key, value in kwargs.items()}
    if task == "browser" and "url" not in checked:
        raise ReplayError("the browser recording has no url to open")
    return task, checked


def _normal(entry: str, *, keep_path: bool = True) -> str:
    """``scheme://host[:port][/path]`` lower-cased, default port and trailing ``/`` dropped."""
    try:
        parts = urlsplit(entry.strip())
        port = parts.port
    except ValueError:
        raise ReplayError(f"not a URL: {entry!r}") from None
    host = (parts.hostname or "").lower()
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    netloc = host if port in (None, default) else f"{host}:{port}"
    path = parts.path.rstrip("/") if keep_path else ""
    return f"{parts.scheme.lower()}://{netloc}{path}"


def check_consent(
    task: str, kwargs: Mapping[str, Any], allow: Iterable[str], trust_url: bool
) -> None:
    """A browser recording may open its URL only when ``allow`` names the URL's origin and
    every recorded allow entry again, or when ``trust_url`` says the user trusts the recording."""
    if task != "browser" or trust_url:
        return
    given = {_normal(a) for a in allow}
    wanted = [_normal(kwargs["url"], keep_path=False), *map(_normal, kwargs.get("allow", ()))]
    missing = [w for w in wanted if w not in given]
    if missing:
        raise SandboxViolation(
            f"the recording opens {kwargs['url']}; replay a browser recording only with the "
            f"same allow-list ({' '.join('--allow ' + m for m in missing)}) or "
            "--trust-recorded-url"
        )


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
    allow: Iterable[str] = (),
    trust_url: bool = False,
) -> ReplayReport:
    """Replay the episode in ``directory`` (``env`` defaults to a fresh one from the header).

    ``from_step=K`` replays steps ``0..K-1`` and hands over to ``vlm`` for up to ``max_steps``
    more; ``out`` records the replayed (and handed-over) steps as a new trajectory. The
    header's env kwargs are checked (``recorded_env``); a browser recording is opened only with
    the same ``allow`` origins or ``trust_url`` (``check_consent``).
    """
    episode = read_trajectory(directory)
    task, env_kwargs = recorded_env(episode.header)
    episode = dataclasses.replace(episode, header={**episode.header, "env_kwargs": env_kwargs})
    limit = len(episode.steps) if from_step is None else from_step
    if not 0 <= limit <= len(episode.steps):
        raise ReplayError(f"--from-step must be in 0..{len(episode.steps)}, got {from_step}")
    if from_step is not None and vlm is None:
        raise ReplayError("--from-step needs a model to hand over to (--model)")
    own_env = env is None
    if own_env:
        from pixelpilot.agent.factory import make_env

        check_consent(task, env_kwargs, allow, trust_url)
        env = make_env(task, **env_kwargs)
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

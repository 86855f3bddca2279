"""``PixelEnv``: the one base class of pixelpilot envs, and the contract it enforces.

Every env (``browser``, ``miniwob/...``, ``desktop``, ``desktop/...``) is a ``PixelEnv``. The
base class owns what must not differ between envs; subclasses only start episodes, execute
actions, observe and judge.

- ``reset(seed=None, options=None) -> (obs, info)``: the episode's seed is ``seed``, or one
  drawn from ``np_random`` (so ``info["seed"]`` always rebuilds the episode); the step count
  starts at 0.
- ``step(action) -> (obs, reward, terminated, truncated, info)``: ``action`` is an ``Action`` or
  its canonical dict. An invalid one (not an action, a bad field, or a type the env cannot
  execute) raises ``InvalidAction`` *before anything happens*: nothing is executed and no step
  is counted. Coordinates past the screen's edge are clamped onto it.
  ``terminated``: the task ended the episode, or the agent answered ``finished``/``call_user``.
  ``truncated``: not terminated and ``max_steps`` steps were taken.
- ``info`` (after reset and after every step, the same keys):
  ``task`` (the task id), ``seed``, ``step`` (steps taken), ``success``, ``agent_done``
  (``"finished"``/``"call_user"`` on the step the agent ended the episode, else ``None``),
  ``extras`` (per env: url, title, windows, ...), plus per-env keys.
- ``info["success"]``: ``True`` once the task's checker says it is solved; ``False`` on the step
  that ends the episode (terminated or truncated) when it is not; ``None`` while the episode is
  undecided, and always ``None`` for an env without a task (``browser``, ``desktop``): nobody
  can tell. So on the last step of an episode it is ``True``, ``False`` or (no task) ``None``.
- ``step()`` before ``reset()``, and a broken browser or X server, raise ``EnvError``.
- ``timing_ms``: milliseconds of the last ``reset`` (``reset``) or ``step`` (``act``,
  ``judge``, ``observe`` = the screenshot, ``step`` = all); kept out of ``info`` so equal seeds
  give equal infos.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium
import numpy as np

from pixelpilot.envs.spaces import ActionSpace, observation_space, to_action
from pixelpilot.errors import ConfigError, EnvError, InvalidAction, PixelpilotError
from pixelpilot.tools.actions import TERMINAL_ACTIONS, Action

# What a screen with a mouse and a keyboard can execute (no phone buttons, no app launcher).
SCREEN_ACTIONS: frozenset[str] = frozenset(
    {"click", "left_double", "right_single", "long_press", "drag", "scroll", "hotkey", "type"}
    | {"wait", "finished", "call_user"}
)
_COORDS = {"x": 0, "x1": 0, "x2": 0, "y": 1, "y1": 1, "y2": 1}  # field -> axis


@dataclass(frozen=True)
class TaskState:
    """The task's view after a step: ``reward``, ``done`` (the task ends the episode),
    ``success`` (``True``/``False`` once the task decided, else ``None``) and ``reason``."""

    reward: float = 0.0
    done: bool = False
    success: bool | None = None
    reason: str | None = None


class PixelEnv(gymnasium.Env):
    """Base of every pixelpilot env; see the module docstring for the contract.

    Subclasses set ``task_id``, ``supported_actions``, ``has_checker`` and call
    ``_declare_screen`` in ``__init__``; they implement ``_start``, ``_act``, ``_observe`` and,
    for a task, ``_judge``; they may add ``_extras`` and ``_env_info``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}
    task_id: str = "env"
    supported_actions: ClassVar[frozenset[str]] = SCREEN_ACTIONS
    has_checker: ClassVar[bool] = False  # whether the env judges success (a task) or not
    sample_input: ClassVar[bool] = False  # action_space.sample(): real input, or wait

    max_steps: int
    render_mode: str | None
    screen: tuple[int, int]
    episode_seed: int | None = None
    timing_ms: dict[str, float]
    _steps: int = 0
    _success: bool | None = None
    _started: bool = False
    _last_obs: dict[str, Any] | None = None

    def _declare_screen(self, screen: tuple[int, int]) -> None:
        """Set the screenshot size (width, height) and the spaces that follow from it."""
        self.screen = (int(screen[0]), int(screen[1]))
        self.observation_space = observation_space(self.screen)
        self.action_space = ActionSpace(
            self.screen, types=self.supported_actions, sample_input=self.sample_input
        )

    def _contract_init(self, *, max_steps: int, render_mode: str | None) -> None:
        if int(max_steps) < 1:
            raise ConfigError(f"max_steps must be at least 1, got {max_steps}", option="max_steps")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ConfigError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.max_steps = int(max_steps)
        self.render_mode = render_mode
        self.timing_ms = {}

    # -- what subclasses implement ----------------------------------------------------------
    def _start(self, seed: int, options: dict[str, Any]) -> None:
        """Start an episode (launch apps, load the page, set ``instruction``)."""
        raise NotImplementedError

    def _act(self, action: Action) -> None:
        """Execute one validated action (coordinates on screen)."""
        raise NotImplementedError

    def _observe(self) -> dict[str, Any]:
        """``{"screenshot": uint8 (h, w, 3), "instruction": str}``."""
        raise NotImplementedError

    def _judge(self, action: Action) -> TaskState:
        """The task's state after ``action``; an env without a task has none."""
        return TaskState()

    def _extras(self) -> dict[str, Any]:
        return {}

    def _env_info(self) -> dict[str, Any]:
        """Per-env ``info`` keys (the same keys after reset and after every step)."""
        return {}

    def _failure(self, exc: Exception, doing: str) -> EnvError:
        """The ``EnvError`` for an unexpected exception while ``doing`` something."""
        return EnvError(f"{self.task_id} failed while {doing}: {str(exc).splitlines()[0]}")

    # -- the contract ---------------------------------------------------------------------------
    def validate(self, action: Any) -> Action:
        """The ``Action`` to execute for ``action``, coordinates clamped onto the screen;
        ``InvalidAction`` when it is not a valid action or not one this env executes."""
        try:
            act = to_action(action)
        except (ValueError, TypeError) as exc:
            raise InvalidAction(action, str(exc)) from exc
        if act.type not in self.supported_actions:
            raise InvalidAction(action, f"{act.type} is not available in {self.task_id}")
        return self._clamp(act)

    def _clamp(self, act: Action) -> Action:
        moved = {
            name: self.screen[axis] - 1
            for name, axis in _COORDS.items()
            if hasattr(act, name) and getattr(act, name) >= self.screen[axis]
        }
        return dataclasses.replace(act, **moved) if moved else act

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        self.episode_seed = int(seed) if seed is not None else int(self.np_random.integers(2**31))
        self._steps, self._success, self._started = 0, None, False
        started = time.perf_counter()
        obs = self._guarded(lambda: self._begin(dict(options or {})), "starting an episode")
        self._started = True
        self._last_obs = obs
        info = self._info(agent_done=None)
        self.timing_ms = {"reset": (time.perf_counter() - started) * 1000}
        return obs, info

    def _begin(self, options: dict[str, Any]) -> dict[str, Any]:
        assert self.episode_seed is not None
        self._start(self.episode_seed, options)
        return self._observe()

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if not self._started:
            raise EnvError("step() before reset()")
        act = self.validate(action)
        self._steps += 1
        t0 = time.perf_counter()
        self._guarded(lambda: self._act(act), f"executing {act.type}")
        t1 = time.perf_counter()
        state = self._guarded(lambda: self._judge(act), "judging the task")
        t2 = time.perf_counter()
        obs = self._guarded(self._observe, "taking a screenshot")
        t3 = time.perf_counter()
        agent_done = act.type if act.type in TERMINAL_ACTIONS else None
        terminated = bool(state.done or agent_done)
        truncated = not terminated and self._steps >= self.max_steps
        if self.has_checker:
            ended = terminated or truncated
            decided = ended or state.success is False
            self._success = True if state.success else (False if decided else None)
        self._last_obs = obs
        info = self._info(agent_done=agent_done)
        self.timing_ms = {
            "act": (t1 - t0) * 1000,
            "judge": (t2 - t1) * 1000,
            "observe": (t3 - t2) * 1000,
            "step": (t3 - t0) * 1000,
        }
        return obs, float(state.reward), terminated, truncated, info

    def _guarded(self, call: Any, doing: str) -> Any:
        try:
            return call()
        except PixelpilotError:
            raise
        except Exception as exc:
            raise self._failure(exc, doing) from exc

    def _info(self, *, agent_done: str | None) -> dict[str, Any]:
        extras = self._guarded(self._extras, "reading its state")
        return {
            "task": self.task_id,
            "seed": self.episode_seed,
            "step": self._steps,
            "success": self._success,
            "agent_done": agent_done,
            "extras": extras,
            **self._guarded(self._env_info, "reading its state"),
        }

    def render(self) -> np.ndarray | None:
        if self.render_mode == "rgb_array" and self._last_obs is not None:
            return self._last_obs["screenshot"].copy()
        return None

    def expert(self) -> Any:
        """The task's scripted expert policy; ``EnvError`` when it has none."""
        raise EnvError(f"{self.task_id} has no scripted expert")

    def __enter__(self) -> PixelEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""``check_pixel_env``: hold an env to the pixelpilot env contract (``pixelpilot.envs.core``).

``gymnasium.utils.env_checker.check_env`` checks the Gymnasium API (spaces, seeding, return
types); this checks what pixelpilot adds on top, the rules the agent loop relies on: the same
``info`` keys after reset and every step, ``info["success"]`` as documented, every invalid
action refused with ``InvalidAction`` before anything happens, coordinates clamped, truncation
at ``max_steps``, equal infos for equal seeds. A broken rule raises ``AssertionError`` naming it.

Give it a fresh env (never reset) whose ``max_steps`` is small: it steps ``wait`` until the
episode is truncated.
"""

from __future__ import annotations

from typing import Any

from pixelpilot.envs.core import PixelEnv
from pixelpilot.errors import EnvError, InvalidAction
from pixelpilot.tools.actions import ACTION_TYPES

INFO_KEYS = frozenset({"task", "seed", "step", "success", "agent_done", "extras"})
BAD_ACTIONS: tuple[Any, ...] = (
    {"type": "jump"},
    {"type": "click", "x": 1},
    {"type": "click", "x": -1, "y": 0},
    {"type": "click", "x": 1, "y": 1, "z": 3},
    {"type": "type", "content": 5},
    {"type": "scroll", "x": 1, "y": 1, "direction": "in"},
    {"type": "hotkey", "keys": []},
    "click(start_box='(1,1)')",
    None,
)


def _require(condition: object, rule: str) -> None:
    if not condition:
        raise AssertionError(f"env contract: {rule}")


def check_pixel_env(env: Any) -> None:
    """Check ``env`` (a fresh, never reset, ``PixelEnv``) against the contract."""
    inner = env.unwrapped
    _require(isinstance(inner, PixelEnv), f"{type(inner).__name__} is not a PixelEnv")
    try:
        env.step({"type": "wait"})
    except EnvError:
        pass
    else:
        raise AssertionError("env contract: step() before reset() must raise EnvError")
    _check_reset(env, inner)
    _, first = env.reset(seed=5)
    _check_refusals(env, inner)
    _check_steps(env, inner, first)
    _check_finished(env, inner)


def _check_reset(env: Any, inner: PixelEnv) -> None:
    obs, info = env.reset(seed=5)
    _require(obs in env.observation_space, "reset's observation is in observation_space")
    _require(INFO_KEYS <= set(info), f"reset's info has {sorted(INFO_KEYS - set(info))}")
    _require(info["task"] == inner.task_id, "info['task'] is the env's task_id")
    _require(info["seed"] == 5 and info["step"] == 0, "reset(seed=5): seed 5, step 0")
    _require(info["success"] is None, "info['success'] is None at the start of an episode")
    _require(info["agent_done"] is None, "info['agent_done'] is None after reset")
    _require(isinstance(info["extras"], dict), "info['extras'] is a dict")
    _require(inner.timing_ms.get("reset", 0) > 0, "timing_ms['reset'] after reset")
    _, again = env.reset(seed=5)
    _require(again == info, "equal seeds give equal infos")
    _, drawn = env.reset()
    _require(isinstance(drawn["seed"], int), "reset() without a seed reports the drawn seed")


def _check_refusals(env: Any, inner: PixelEnv) -> None:
    """At the start of an episode: every invalid action is refused and nothing counted."""
    unsupported = [{"type": t} for t in sorted(set(ACTION_TYPES) - inner.supported_actions)]
    for action in (*BAD_ACTIONS, *unsupported):
        try:
            env.step(action)
        except InvalidAction as exc:
            _require(exc.action is action, "InvalidAction carries the action it refused")
        else:
            raise AssertionError(f"env contract: {action!r} must raise InvalidAction")
        _require(action not in env.action_space, f"{action!r} is not in the action space")
    w, h = inner.screen
    far = inner.validate({"type": "click", "x": w + 50, "y": 10**6})
    _require((far.x, far.y) == (w - 1, h - 1), "coordinates are clamped onto the screen")
    _require(inner.action_space.contains({"type": "wait"}), "wait is in the action space")


def _check_steps(env: Any, inner: PixelEnv, first: dict[str, Any]) -> None:
    """Wait until truncation (the first step also shows that no refused action counted)."""
    for n in range(1, inner.max_steps + 1):
        obs, reward, terminated, truncated, info = env.step({"type": "wait"})
        _require(obs in env.observation_space, "step's observation is in observation_space")
        _require(set(info) == set(first), "step's info has the same keys as reset's")
        _require(isinstance(reward, float), "reward is a float")
        rule = "info['step'] counts the steps, not the refused actions"
        _require(info["step"] == n and info["seed"] == 5, rule)
        _require(not terminated, "waiting does not end the episode")
        _require(truncated == (n == inner.max_steps), "truncated exactly at max_steps")
        ended = "False" if inner.has_checker else "None"
        want = (False if inner.has_checker else None) if truncated else None
        rule = f"info['success'] is None while undecided, {ended} when truncated unsolved"
        _require(info["success"] is want, rule)
        _require(info["agent_done"] is None, "info['agent_done'] is None unless the agent ended")
        _require(inner.timing_ms.get("step", 0) > 0, "timing_ms['step'] after a step")


def _check_finished(env: Any, inner: PixelEnv) -> None:
    env.reset(seed=5)
    _, reward, terminated, truncated, info = env.step({"type": "finished", "content": ""})
    _require(terminated and not truncated, "finished terminates the episode")
    _require(info["agent_done"] == "finished", "info['agent_done'] names finished")
    want = False if inner.has_checker else None
    _require(info["success"] is want, f"finished on an unsolved task: success is {want}")
    env.reset(seed=5)
    _, _, terminated, _, info = env.step({"type": "call_user", "content": "help?"})
    _require(terminated and info["agent_done"] == "call_user", "call_user ends the episode")

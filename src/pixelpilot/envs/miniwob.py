"""MiniWoB++ tasks (``miniwob/<name>``) from the pages bundled in the ``miniwob`` package.

No Selenium: the task page runs in ``BrowserEnv``'s sandboxed Chromium (only the package's
``html`` folder may be loaded) and the episode follows the MiniWoB protocol: seed
``Math.seedrandom``, raise ``core.EPISODE_MAX_TIME``, ``core.startEpisodeReal()``, wait for
``WOB_TASK_READY``; the reward is ``WOB_RAW_REWARD_GLOBAL`` and the episode ends with
``WOB_DONE_GLOBAL`` (``info["success"]``: the raw reward is positive). The screenshot is the
160x210 task area (``#wrap``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pixelpilot.envs.base import Policy
from pixelpilot.envs.browser import BrowserEnv
from pixelpilot.envs.chromium import ChromiumHost
from pixelpilot.envs.core import TaskState
from pixelpilot.errors import ConfigError, DependencyNotInstalled, EnvError, UnknownTaskError
from pixelpilot.tools.actions import Action

TASK_SIZE = (160, 210)  # width, height of #wrap
VIEWPORT = (400, 420)
PARK = (VIEWPORT[0] - 5, VIEWPORT[1] - 5)  # off the task area: the mouse rests here
EXPERT_TASKS = [
    "click-test", "click-test-2", "click-button", "click-button-sequence", "click-link",
    "click-dialog", "click-dialog-2", "click-tab", "click-color", "click-shape", "focus-text",
    "focus-text-2", "enter-text", "enter-password", "login-user",
]  # fmt: skip
# Pages that need the package's separate flight-booking server (not served here).
_NEEDS_SERVER: set[str] = set()
RELOAD_MODES = ("none", "page", "context")

_START = """(args) => {
  const [seed, maxTime] = args;
  if (document.activeElement && document.activeElement !== document.body)
    document.activeElement.blur();
  Math.seedrandom(seed);
  core.EPISODE_MAX_TIME = maxTime;
  core.startEpisodeReal();
  return WOB_TASK_READY;
}"""
_STATE = "() => [WOB_RAW_REWARD_GLOBAL, WOB_DONE_GLOBAL, WOB_REWARD_REASON]"


@functools.cache
def html_dir() -> Path:
    """The ``html`` folder inside the installed ``miniwob`` package."""
    try:
        import miniwob
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise DependencyNotInstalled("miniwob", extra="browser") from exc
    return Path(miniwob.__file__).resolve().parent / "html"


@functools.cache
def _names() -> tuple[str, ...]:
    pages = sorted(p.stem for p in (html_dir() / "miniwob").glob("*.html"))
    return tuple(n for n in pages if n not in _NEEDS_SERVER)


def task_names() -> list[str]:
    return list(_names())


class MiniWoBEnv(BrowserEnv):
    """One MiniWoB++ task. ``reload`` picks what a reset starts from: ``"none"`` (MiniWoB's own
    restart of the loaded page, fastest), ``"page"`` (reload the page) or ``"context"`` (a fresh
    browser context and page)."""

    has_checker = True

    def __init__(
        self,
        task: str,
        *,
        max_steps: int = 30,
        reload: str = "none",
        episode_seconds: float = 3600.0,
        browser: ChromiumHost | None = None,
        executable_path: str | None = None,
        render_mode: str | None = None,
    ) -> None:
        if task not in _names():
            raise UnknownTaskError(f"miniwob/{task}")
        if reload not in RELOAD_MODES:
            raise ConfigError(f"reload must be one of {', '.join(RELOAD_MODES)}, got {reload!r}")
        self.task = task
        self.task_id = f"miniwob/{task}"
        self._state: dict[str, Any] = {}
        self.reload = reload
        self.episode_ms = int(episode_seconds * 1000)
        root = html_dir().as_uri()
        super().__init__(
            f"{root}/miniwob/{task}.html",
            "",
            allow=[f"{root}/"],
            viewport=VIEWPORT,
            max_steps=max_steps,
            browser=browser,
            executable_path=executable_path,
            render_mode=render_mode,
        )
        self.clip = (0, 0, *TASK_SIZE)
        self._declare_screen(TASK_SIZE)

    def _open_episode(self, seed: int) -> None:
        fresh = self.page is None or self.reload != "none"
        if self.page is None or self.reload == "context":
            self._new_context()
        if fresh:
            self._goto(self.url)
            # Some pages lay out their first problem a fraction of a pixel differently from
            # every later one (jQuery UI dialogs); a throwaway start makes episode 1 like the rest.
            self.page.evaluate(_START, [seed, self.episode_ms])
        # A click off the task: the mouse rests there, and every episode starts with the same
        # input modality (Chromium draws focus rings for programmatic focus, as in jQuery UI
        # dialogs, only until the first mouse press), so equal seeds give equal pixels.
        self.page.mouse.click(*PARK)
        ready = self.page.evaluate(_START, [seed, self.episode_ms])
        if not ready:
            self.page.wait_for_function("() => WOB_TASK_READY", polling="raf", timeout=10_000)
        self.instruction = self.page.evaluate("() => core.getUtterance()")

    def _judge(self, action: Action) -> TaskState:
        reward, done, reason = self.page.evaluate(_STATE)
        reward = float(reward or 0.0)
        self._state = {"raw_reward": reward, "task_done": bool(done), "reward_reason": reason}
        return TaskState(reward, bool(done), (reward > 0) if done else None, reason)

    def _start(self, seed: int, options: dict[str, Any]) -> None:
        self._state = {"raw_reward": 0.0, "task_done": False, "reward_reason": None}
        super()._start(seed, options)

    def _env_info(self) -> dict[str, Any]:
        """The browser's keys and MiniWoB's own: ``raw_reward``, ``task_done``,
        ``reward_reason`` (of the last step; 0.0, False, None after reset)."""
        return {**super()._env_info(), **self._state}

    def _extras(self) -> dict[str, Any]:
        return {"url": self.url, "task": self.task_id, "seed": self.episode_seed}

    def expert(self) -> Policy:
        """The task's scripted expert (reads the DOM, answers in the UI-TARS action language)."""
        from pixelpilot.envs.miniwob_experts import EXPERTS

        if self.task not in EXPERTS:
            raise EnvError(
                f"no scripted expert for miniwob/{self.task}; experts exist for: "
                + ", ".join(sorted(EXPERTS))
            )
        return EXPERTS[self.task](self)


def make_env(name: str, **kwargs: Any) -> MiniWoBEnv:
    return MiniWoBEnv(name, **kwargs)


def _suites() -> dict[str, list[str]]:
    names = _names()
    ids = [f"miniwob/{n}" for n in names]
    return {
        "miniwob": ids,
        "miniwob-simple": [f"miniwob/{n}" for n in EXPERT_TASKS],
        "miniwob-click": [i for i in ids if i.startswith("miniwob/click-")],
        "miniwob-text": [
            i for i in ids if i.split("/")[1].startswith(("enter-", "focus-", "login-"))
        ],
    }


def __getattr__(name: str) -> Any:  # SUITES is computed on first use (it lists the package)
    if name == "SUITES":
        return _suites()
    raise AttributeError(name)

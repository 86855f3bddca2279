"""Desktop task suite (namespace ``desktop``): apps in a sandbox on a private X display.

Task ids: ``desktop/terminal-file``, ``desktop/form-fill``, ``desktop/menu-select``,
``desktop/drag-to-box``, ``desktop/copy-code``, ``desktop/dialog-close``. Each env's
``unwrapped.expert()`` is a scripted ``Policy`` answering in the UI-TARS action language.
"""

from __future__ import annotations

from typing import Any

from pixelpilot.envs.desktop_tasks.tasks import TASKS


def task_names() -> list[str]:
    return list(TASKS)


SUITES: dict[str, list[str]] = {"desktop": [f"desktop/{n}" for n in TASKS]}


def make_env(name: str, **kwargs: Any) -> Any:
    """Build a desktop task env; kwargs go to ``DesktopEnv`` (``screen``, ``max_steps``, ...)."""
    return TASKS[name](**kwargs)

"""Desktop envs (namespace ``desktop``): apps in a jail on a private X display.

``desktop`` is an empty desktop with no task (``make("desktop", instruction="...", apps=[...])``:
a free-form instruction, no checker). Task ids: ``desktop/terminal-file``,
``desktop/form-fill``, ``desktop/menu-select``, ``desktop/drag-to-box``, ``desktop/copy-code``,
``desktop/dialog-close``; the suite ``desktop`` is those six. Each task env's
``unwrapped.expert()`` is a scripted ``Policy`` answering in the UI-TARS action language.
"""

from __future__ import annotations

from typing import Any

from pixelpilot.envs.desktop_tasks.tasks import TASKS


def task_names() -> list[str]:
    return ["", *TASKS]  # "" is the bare ``desktop`` id


SUITES: dict[str, list[str]] = {"desktop": [f"desktop/{n}" for n in TASKS]}


def make_env(name: str, **kwargs: Any) -> Any:
    """Build a desktop env; kwargs go to ``DesktopEnv`` (``screen``, ``max_steps``, ...)."""
    if not name:
        from pixelpilot.envs.desktop import DesktopEnv

        return DesktopEnv(**kwargs)
    return TASKS[name](**kwargs)

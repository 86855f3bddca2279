"""Sandboxed environments (Gymnasium API) and the task registry.

``make("miniwob/click-button")`` builds the env of a task id; providers are imported lazily.
"""

from pixelpilot.envs.base import Observation, Policy, PolicyOutput, ScreenBox
from pixelpilot.envs.registry import list_tasks, make, resolve_tasks, suites

__all__ = [
    "Observation",
    "Policy",
    "PolicyOutput",
    "ScreenBox",
    "list_tasks",
    "make",
    "resolve_tasks",
    "suites",
]

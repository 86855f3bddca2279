"""Sandboxed environments (Gymnasium API) and the task registry.

``make("miniwob/click-button")`` builds the env of a task id; providers are imported lazily.
"""

from pixelpilot.envs.base import Box, Observation, Policy, PolicyOutput
from pixelpilot.envs.registry import list_tasks, make, resolve_tasks, suites

__all__ = [
    "Box",
    "Observation",
    "Policy",
    "PolicyOutput",
    "list_tasks",
    "make",
    "resolve_tasks",
    "suites",
]

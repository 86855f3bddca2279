"""Task ids -> envs, resolved lazily.

The registry owns every env id: a task id is ``namespace/name`` (``miniwob/click-button``,
``desktop/form-fill``) or a bare namespace (``browser``: any URL, ``make("browser", url=...)``;
``desktop``: an empty desktop, ``make("desktop", instruction=...)``). Each namespace points at a
provider module, imported only when one of its ids is asked for. A provider module defines:

- ``task_names() -> list[str]``: the names it serves (without the namespace; ``""`` is the bare
  namespace);
- ``make_env(name: str, **kwargs) -> gymnasium.Env``;
- ``SUITES: dict[str, list[str]]`` (optional): suite name -> full task ids.
"""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType
from typing import Any

from pixelpilot.errors import UnknownTaskError

PROVIDERS: dict[str, str] = {
    "miniwob": "pixelpilot.envs.miniwob",
    "desktop": "pixelpilot.envs.desktop_tasks",
    "browser": "pixelpilot.envs.browser",
}


def _provider(namespace: str) -> ModuleType:
    return importlib.import_module(PROVIDERS[namespace])


def list_tasks(namespace: str | None = None) -> list[str]:
    """All registered task ids, optionally of one namespace."""
    spaces = [namespace] if namespace else list(PROVIDERS)
    ids: list[str] = []
    for ns in spaces:
        if ns not in PROVIDERS:
            raise UnknownTaskError(ns, difflib.get_close_matches(ns, PROVIDERS, n=3))
        names = _provider(ns).task_names()
        ids.extend(f"{ns}/{n}" if n else ns for n in names)
    return ids


def suites() -> dict[str, list[str]]:
    """Suite name -> task ids, over all providers (a namespace is also a suite of all its tasks)."""
    out: dict[str, list[str]] = {}
    for ns in PROVIDERS:
        module = _provider(ns)
        out.update(getattr(module, "SUITES", {}))
    return out


def _split(task_id: str) -> tuple[str, str]:
    namespace, _, name = task_id.strip().partition("/")
    return namespace, name


def make(task_id: str, **kwargs: Any) -> Any:
    """Build the env of a task id; ``UnknownTaskError`` lists close matches for a typo."""
    namespace, name = _split(task_id)
    if namespace not in PROVIDERS:
        raise UnknownTaskError(task_id, difflib.get_close_matches(task_id, _all_ids_safe(), n=3))
    module = _provider(namespace)
    names = module.task_names()
    if name not in names:
        known = [f"{namespace}/{n}" if n else namespace for n in names]
        raise UnknownTaskError(task_id, difflib.get_close_matches(task_id, known, n=3))
    return module.make_env(name, **kwargs)


def resolve_tasks(spec: str) -> list[str]:
    """``TASKS`` as the CLI takes it: one id, a comma-separated list, or a suite name."""
    ids: list[str] = []
    known_suites: dict[str, list[str]] | None = None
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if "/" in part:
            _check_id(part)
            ids.append(part)
            continue
        known_suites = known_suites if known_suites is not None else suites()
        if part in known_suites:
            ids.extend(known_suites[part])
        elif part in PROVIDERS:
            ids.extend(list_tasks(part))
        else:
            options = list(known_suites) + list(PROVIDERS)
            raise UnknownTaskError(part, difflib.get_close_matches(part, options, n=3))
    if not ids:
        raise UnknownTaskError(spec)
    return list(dict.fromkeys(ids))


def _check_id(task_id: str) -> None:
    namespace, name = _split(task_id)
    if namespace not in PROVIDERS or name not in _provider(namespace).task_names():
        raise UnknownTaskError(task_id, difflib.get_close_matches(task_id, _all_ids_safe(), n=3))


def _all_ids_safe() -> list[str]:
    ids: list[str] = []
    for ns in PROVIDERS:
        try:
            ids.extend(list_tasks(ns))
        except ImportError:
            continue
    return ids

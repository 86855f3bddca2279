"""One place that builds envs, policies and agents.

The CLI (``run``, ``record``, ``replay``, ``eval online``), the evaluation workers and online
training rollouts all construct what they run here, so "load the model, share the browser"
has one behaviour:

- ``make_env(task, **kwargs)``: an env through the task registry (``pixelpilot.envs.make``),
  which owns every id, ``browser`` and ``desktop`` included; ``EnvSpec`` is ``--env``/``--url``
  (+ the free-form TASK instruction) as a task id and its kwargs.
- ``PolicySpec.parse(model, model_name=..., factory=...)``: what ``--model`` means:
  ``expert`` (the task's scripted expert), a checkpoint folder, an OpenAI-compatible base URL
  (with a model name), ``default`` (or nothing: the bundled model, ``default_model_path``), or
  a ``"module:function"`` that returns a VLM or a policy. ``check`` validates it before any
  episode starts (the folder holds a checkpoint, the server accepts connections).
- ``load_model(spec)``, ``make_policy(spec, env=...)``, ``make_agent(spec, env, ...)``.
- ``AgentFactory``: many episodes in one process sharing one Chromium (for every MiniWoB env),
  the current task's env and one loaded model.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pixelpilot.errors import ConfigError, ModelError, NoModelError

_NO_DEFAULT = (
    "no bundled default model in this installation ({folder} holds no config.json); pass "
    "--model expert (the task's scripted expert), --model CHECKPOINT_DIR, or "
    "--model http://host:port/v1 --model-name NAME"
)
# Tasks whose envs can share one Chromium process (their pages need no network).
SHARED_BROWSER_PREFIXES = ("miniwob/",)


# --- envs ---------------------------------------------------------------------------------


def make_env(task: str, **kwargs: Any) -> Any:
    """The env of a task id, built by the registry (``UnknownTaskError`` for a typo)."""
    from pixelpilot.envs import make

    return make(task, **kwargs)


@dataclass(frozen=True)
class EnvSpec:
    """A task id and the ``make`` kwargs a recording carries so replay can rebuild the env
    (never a shared browser or other live objects)."""

    task: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_cli(cls, env: str, url: str | None = None, instruction: str | None = None) -> EnvSpec:
        """``--env ENV [--url URL]`` and the TASK instruction: a bare ``desktop`` is an empty
        desktop whose instruction is the TASK string."""
        task = env.strip()
        kwargs: dict[str, Any] = {}
        if url:
            kwargs["url"] = url
        if task == "desktop":
            kwargs["instruction"] = instruction or ""
        return cls(task, kwargs)

    def make(self, **extra: Any) -> Any:
        """The env; ``extra`` (a shared browser, ``max_steps``) is not part of the spec."""
        return make_env(self.task, **{**self.kwargs, **extra})


# --- policies -----------------------------------------------------------------------------


def bundled_model_folder() -> Path:
    """Where the bundled model lives: ``pixelpilot/models/default/`` inside the package (its
    files are package data; shipping a model is putting a checkpoint folder there)."""
    import pixelpilot.models

    return Path(pixelpilot.models.__file__).resolve().parent / "default"


def default_model_path() -> Path | None:
    """The bundled checkpoint that ``--model default`` (or no ``--model``) runs: the folder
    when it holds a ``config.json``, else ``None`` (no model ships in this installation)."""
    folder = bundled_model_folder()
    return folder if (folder / "config.json").is_file() else None


def _default_name(folder: Path) -> str:
    """``default (kimi_k25, /path/to/folder)``: the name reports give the bundled model."""
    import json

    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type", "?")
    except (OSError, ValueError, AttributeError):
        model_type = "?"
    return f"default ({model_type}, {folder})"


_KINDS = ("expert", "checkpoint", "url", "default", "factory")


@dataclass(frozen=True)
class PolicySpec:
    """What drives the agent. ``kind``: expert | checkpoint | url | default | factory;
    ``source``: the folder, URL or ``module:function``; ``name``: what reports call it when
    that is not its source (the bundled model); ``label``: the name reports and trajectory
    headers give the model."""

    kind: str
    source: str | None = None
    model_name: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ConfigError(f"unknown policy kind {self.kind!r} (one of {', '.join(_KINDS)})")

    @classmethod
    def parse(
        cls, model: str | None, *, model_name: str | None = None, factory: str | None = None
    ) -> PolicySpec:
        """``--model`` (+ ``--model-name``); ``factory`` (``module:function``) overrides it."""
        if factory:
            module, _, name = factory.partition(":")
            if not module or not name:
                raise ConfigError(
                    f"a policy factory is 'module:function', got {factory!r}", option="factory"
                )
            return cls("factory", factory, model_name)
        text = (model or "").strip()
        if text in ("", "default"):
            return cls("default", None, model_name)
        if text == "expert":
            return cls("expert")
        if text.startswith(("http://", "https://")):
            return cls("url", text, model_name)
        return cls("checkpoint", text, model_name)

    @property
    def label(self) -> str:
        """The model that runs, as reports name it (``default`` as its folder when resolved:
        ``default (kimi_k25, /path/to/folder)``)."""
        return self.name or self.source or self.kind

    @property
    def needs_model(self) -> bool:
        """Whether a model is loaded (everything but the expert)."""
        return self.kind != "expert"

    def resolved(self) -> PolicySpec:
        """``default`` as the bundled checkpoint it stands for, named ``default (MODEL_TYPE,
        FOLDER)`` (``NoModelError`` when this installation has none)."""
        if self.kind != "default":
            return self
        folder = default_model_path()
        if folder is None:
            raise NoModelError(_NO_DEFAULT.format(folder=bundled_model_folder()))
        return PolicySpec("checkpoint", str(folder), self.model_name, _default_name(folder))

    def check(self, *, probe_timeout: float = 5.0) -> None:
        """Fail now, with one line, on a model that cannot work: a missing checkpoint folder
        or one without ``config.json``, a server that refuses connections, a factory that
        does not import, no default model. Loads nothing."""
        spec = self.resolved()
        if spec.kind == "checkpoint":
            _check_checkpoint(str(spec.source))
        elif spec.kind == "url":
            _probe_server(str(spec.source), probe_timeout)
        elif spec.kind == "factory":
            _import_factory(str(spec.source))


def _check_checkpoint(source: str) -> None:
    path = Path(source).expanduser()
    if not path.exists():
        raise ModelError(
            f"no checkpoint folder {source!r} (and not expert, default or an http(s):// URL; "
            "build a local test model with `pixelpilot model tiny OUT`)"
        )
    if not path.is_dir():
        raise ModelError(f"{source} is a file; pass the checkpoint folder that holds config.json")
    if not (path / "config.json").is_file():
        raise ModelError(f"{source} holds no config.json: not a checkpoint folder")


def _probe_server(url: str, timeout: float) -> None:
    """Connect to ``URL/models``; any HTTP answer means a server is there."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/models", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # it answered (404, 401, ...): the requests themselves will tell more
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ModelError(
            f"cannot reach the model server at {url}: {reason} (is it running, is the port right?)"
        ) from None


def _import_factory(source: str) -> Any:
    module, _, name = source.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import the policy factory {source!r}: {exc}") from None


def load_model(spec: PolicySpec, **kwargs: Any) -> Any:
    """The VLM (or, for a factory, the VLM or policy it returns) of ``spec``, loaded once by
    the caller; ``kwargs`` go to ``pixelpilot.vlm.load``. ``None`` for the expert."""
    spec = spec.resolved()
    if spec.kind == "expert":
        return None
    if spec.kind == "factory":
        return _import_factory(str(spec.source))()
    from pixelpilot.vlm import load

    if spec.model_name:
        kwargs.setdefault("model_name", spec.model_name)
    return load(str(spec.source), **kwargs)


def expert_policy(env: Any, task: str = "") -> Any:
    """The task's scripted expert policy (``NoModelError`` when the env has none)."""
    expert = getattr(getattr(env, "unwrapped", env), "expert", None)
    if expert is None:
        raise NoModelError(f"{task or type(env).__name__} has no scripted expert")
    return expert()


def make_policy(
    spec: PolicySpec, *, env: Any = None, model: Any = None, **policy_kwargs: Any
) -> Any:
    """A ``Policy`` for ``spec``: the env's expert, or a ``VLMPolicy`` over ``model`` (a VLM
    already loaded, e.g. shared between episodes; loaded from ``spec`` when not given), or the
    policy a factory returns. ``policy_kwargs`` (kind, language, retries) go to VLMPolicy."""
    if spec.kind == "expert":
        if env is None:
            raise ConfigError("the expert policy needs the env it plays")
        return expert_policy(env)
    model = model if model is not None else load_model(spec)
    if not hasattr(model, "generate"):
        return model  # a factory's policy
    from pixelpilot.agent.policy import VLMPolicy

    return VLMPolicy(model, **policy_kwargs)


def make_agent(
    spec: PolicySpec,
    env: Any,
    *,
    model: Any = None,
    task: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    label: str | None = None,
    **agent_kwargs: Any,
) -> Any:
    """An ``Agent`` on ``env`` driven by ``spec`` (``model``: a VLM or policy already loaded).
    ``label`` names the model in the trajectory header (default: the VLM's profile name,
    ``expert``, or the policy's class). ``agent_kwargs`` go to ``Agent``."""
    from pixelpilot.agent.loop import Agent

    common = {"task": task, "env_kwargs": dict(env_kwargs or {}), **agent_kwargs}
    if spec.kind == "expert":
        return Agent(policy=expert_policy(env, task or ""), env=env, model="expert", **common)
    model = model if model is not None else load_model(spec)
    if hasattr(model, "generate"):
        return Agent(model, env, model=label, **common)
    return Agent(policy=model, env=env, model=label, **common)


# --- many episodes in one process ---------------------------------------------------------


class AgentFactory:
    """Agents for many episodes in one process (an evaluation worker, a training rollout
    loop), sharing what is costly to start: one Chromium for every env that can share it,
    the current task's env (kept while the task stays the same), and the model, loaded on
    first use. ``env_kwargs`` go to every env (and into the trajectory headers);
    ``agent_kwargs`` to every ``Agent``."""

    def __init__(
        self,
        spec: PolicySpec,
        *,
        env_kwargs: Mapping[str, Any] | None = None,
        max_steps: int = 15,
        model: Any = None,
        label: str | None = None,
        **agent_kwargs: Any,
    ) -> None:
        self.spec = spec
        self.env_kwargs = dict(env_kwargs or {})
        self.max_steps = max_steps
        self.model = model
        self.label = label
        self.agent_kwargs = agent_kwargs
        self.host: Any = None
        self.env: Any = None
        self.env_task: str | None = None

    def load(self) -> Any:
        """The model (loaded once; ``None`` for the expert)."""
        if self.model is None and self.spec.needs_model:
            self.model = load_model(self.spec)
        return self.model

    def env_for(self, task: str) -> Any:
        """The env of ``task``: the current one when the task is the same and its browser
        still runs, else a new one (sharing this factory's Chromium when it can)."""
        if self.host is not None and not self.host.alive:
            self.drop_env()  # the browser died since the last episode: start afresh
        if self.env is not None and self.env_task == task:
            return self.env
        self.drop_env()
        kwargs = {"max_steps": self.max_steps, **self.env_kwargs}
        if task.startswith(SHARED_BROWSER_PREFIXES):
            from pixelpilot.envs.chromium import ChromiumHost

            if self.host is None:
                self.host = ChromiumHost()
            self.host.ensure()
            kwargs["browser"] = self.host
        self.env, self.env_task = make_env(task, **kwargs), task
        return self.env

    def agent(self, task: str, **kwargs: Any) -> Any:
        """An ``Agent`` for one or more episodes of ``task`` (``kwargs`` override the
        factory's agent options, e.g. ``on_step``)."""
        env = self.env_for(task)
        model = self.load()
        if model is not None and not hasattr(model, "generate"):
            model.reset("")  # a shared policy object starts each agent clean
        options = {"max_steps": self.max_steps, **self.agent_kwargs, **kwargs}
        return make_agent(
            self.spec, env, model=model, task=task, env_kwargs=self.env_kwargs,
            label=self.label, **options,
        )  # fmt: skip

    @property
    def browser_died(self) -> bool:
        """Whether the shared Chromium is gone (crashed or killed)."""
        return self.host is not None and not self.host.alive

    def pids(self) -> list[int]:
        """The browser processes of this factory (shared or the env's own)."""
        host = self.host or getattr(self.env, "host", None)
        return sorted(host.pids()) if host is not None else []

    def drop_env(self) -> None:
        if self.env is not None:
            with contextlib.suppress(Exception):
                self.env.close()
        self.env, self.env_task = None, None

    def close(self) -> None:
        self.drop_env()
        if self.host is not None:
            with contextlib.suppress(Exception):
                self.host.close()
            self.host = None

    def __enter__(self) -> AgentFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

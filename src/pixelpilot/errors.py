"""The exception tree of pixelpilot.

Exceptions carry data and a message; they never log or print. The CLI turns any
``PixelpilotError`` into a one-line ``error: ...`` and exit code 2.
"""

from __future__ import annotations


class PixelpilotError(Exception):
    """Base class of every error pixelpilot raises on purpose."""


class ParseError(PixelpilotError, ValueError):
    """A model answer that is not valid UI-TARS action language.

    ``expected`` says what the parser was looking for and ``position`` the character offset
    in ``text`` where it stopped (``None`` when it is about the answer as a whole).
    """

    def __init__(
        self,
        message: str,
        *,
        text: str = "",
        position: int | None = None,
        expected: str | None = None,
    ) -> None:
        self.text = text
        self.position = position
        self.expected = expected
        where = f" at character {position}" if position is not None else ""
        want = f" (expected {expected})" if expected else ""
        super().__init__(f"{message}{where}{want}")


class ConfigError(PixelpilotError, ValueError):
    """A bad option or configuration: an out-of-range number, an unknown choice, a missing path.

    ``option`` names the setting when there is one (``"--seed"``, ``"max_steps"``).
    """

    def __init__(self, message: str, *, option: str | None = None) -> None:
        self.option = option
        super().__init__(message)


class InvalidAction(PixelpilotError, ValueError):
    """An action that cannot be executed: a bad action dict, a missing field, an unknown type.

    ``action`` is what was given (a dict, an Action or anything else) and ``reason`` says
    what is wrong with it.
    """

    def __init__(self, action: object, reason: str) -> None:
        self.action = action
        self.reason = reason
        shown = repr(action)
        if len(shown) > 200:
            shown = shown[:197] + "..."
        super().__init__(f"invalid action {shown}: {reason}")


class EnvError(PixelpilotError):
    """An environment failed: the browser or X server crashed, a task page did not load."""


class SandboxViolation(EnvError):
    """Something inside a sandbox tried to leave it (network, file system)."""


class UnknownTaskError(EnvError, KeyError):
    """A task id that is not registered; ``suggestions`` lists close matches."""

    def __init__(self, task_id: str, suggestions: list[str] | None = None) -> None:
        self.task_id = task_id
        self.suggestions = list(suggestions or [])
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown task id {task_id!r}{hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class ModelError(PixelpilotError):
    """A model backend failed: a missing checkpoint, an unreachable server, a bad reply."""


class TrajectoryFormatError(PixelpilotError):
    """A trajectory file that does not follow the format; says file, line and problem."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class DependencyNotInstalled(PixelpilotError, ImportError):
    """An optional dependency is missing; the message names the command that installs it."""

    def __init__(self, package: str, extra: str | None = None, hint: str | None = None) -> None:
        self.package = package
        self.extra = extra
        install = hint or (
            f'pip install "pixelpilot[{extra}]"' if extra else f"pip install {package}"
        )
        super().__init__(f"{package} is not installed; install it with: {install}")

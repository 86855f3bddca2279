"""The exception tree of pixelpilot.

Exceptions carry data and a message; they never log or print. The CLI turns any
``PixelpilotError`` into a one-line ``error: ...`` and exit code 2. Every class lives here;
the old homes of some (``pixelpilot.cli.BadInput``, ``pixelpilot.agent.replay.ReplayError``,
...) re-export them under their old names.

    PixelpilotError
      ConfigError            a bad option or configuration (also a ValueError)
        NoModelError         no model given and no bundled default to fall back on
        PromptError          an unknown prompt family, kind or language
        ReplayError          a replay request that cannot be carried out
      InvalidAction          an action that cannot be executed (also a ValueError)
      ParseError             a model answer that is not valid action language (also a ValueError)
      CallError              the action-call scanner could not read a call (also a ValueError)
      EnvError               an environment failed
        SandboxViolation     a request to leave or widen a sandbox, refused
        UnknownTaskError     a task id that is not registered (also a KeyError)
      ModelError             a model backend failed
      FileFormatError        a file that does not follow its format: file, line, problem
        TrajectoryFormatError
      DatasetFormatError     a dataset file an adapter cannot read
      DataError              training data that cannot be used
      TrainingDiverged       the loss stayed NaN/inf for too many steps
      DependencyNotInstalled an optional dependency is missing (also an ImportError)
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


class NoModelError(ConfigError):
    """No model was given and no bundled default model ships, or a task has no expert."""


class PromptError(ConfigError):
    """An unknown prompt family, kind or language."""


class ReplayError(ConfigError):
    """A replay request that cannot be carried out (bad ``--from-step``, no model to hand to)."""


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


class CallError(PixelpilotError, ValueError):
    """An action call the scanner cannot read: ``position`` in the text and what was
    ``expected``. The grammar turns it into a ``ParseError`` of the whole answer."""

    def __init__(self, message: str, position: int, expected: str | None = None) -> None:
        super().__init__(message)
        self.position = position
        self.expected = expected


class EnvError(PixelpilotError):
    """An environment failed: the browser or X server crashed, a task page did not load."""


class SandboxViolation(EnvError):
    """A request to leave or widen a sandbox was refused before anything ran: a recording
    that asks for launch options (an executable, arguments) or for an origin the user did
    not allow. Traffic a page sends out of its sandbox is not an exception: the kernel drops
    it and the env counts it (``info["blocked_requests"]``)."""


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


class FileFormatError(PixelpilotError, ValueError):
    """A file that does not follow its format (a JSONL record file, a report); says file,
    line (when known) and problem."""

    def __init__(self, path: object, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class TrajectoryFormatError(FileFormatError):
    """A trajectory file that does not follow the format; says file, line and problem."""


class DatasetFormatError(PixelpilotError):
    """A dataset file an adapter cannot read (the message says where and what)."""


class DataError(PixelpilotError):
    """Training data that cannot be used: nothing left after filtering, a missing image."""


class TrainingDiverged(PixelpilotError):
    """The loss was NaN or infinite for too many optimizer steps in a row."""

    def __init__(self, steps: list[int], sample_ids: list[str]) -> None:
        self.steps = steps
        self.sample_ids = sample_ids
        shown = ", ".join(sample_ids[:4]) + (" ..." if len(sample_ids) > 4 else "")
        super().__init__(
            f"loss or gradient was NaN/inf for {len(steps)} steps in a row (steps "
            f"{steps[0]}-{steps[-1]}; last batch: {shown}); lower --lr or check the data"
        )


class InputsCaptured(Exception):
    """Not an error: ends a forward pass at the decoder once its inputs are recorded
    (``pixelpilot.vlm.read_guide.input_embeds(stop=True)``, which catches it; no caller sees
    it)."""


class LaunchError(PixelpilotError):
    """A training run launched in several processes failed (the processes' own messages are
    printed above it)."""

    def __init__(self, what: str, returncode: int) -> None:
        self.returncode = returncode
        super().__init__(f"{what} exited with status {returncode} (its messages are above)")


class DependencyNotInstalled(PixelpilotError, ImportError):
    """An optional dependency is missing; the message names the command that installs it."""

    def __init__(self, package: str, extra: str | None = None, hint: str | None = None) -> None:
        self.package = package
        self.extra = extra
        install = hint or (
            f'pip install "pixelpilot[{extra}]"' if extra else f"pip install {package}"
        )
        super().__init__(f"{package} is not installed; install it with: {install}")

"""The ``pixelpilot`` command.

Every command that reports figures accepts ``--json`` and then prints exactly one JSON object
on stdout; progress and logs go to stderr. Exit code 0 on success, 2 on bad input (one line
``error: ...``), 1 on internal failure. Commands are thin: the work lives in the packages.
Each part of the project registers its commands in its own section below.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer

from pixelpilot.errors import PixelpilotError

app = typer.Typer(
    name="pixelpilot",
    help="GUI agents that see only pixels: run, record, replay, view, evaluate, train.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
eval_app = typer.Typer(help="Evaluate models offline (recorded steps) and online (task suites).")
train_app = typer.Typer(help="Fine-tune a policy: SFT warm start, then GRPO.")
model_app = typer.Typer(help="Build and inspect model checkpoints.")
app.add_typer(eval_app, name="eval")
app.add_typer(train_app, name="train")
app.add_typer(model_app, name="model")


class BadInput(PixelpilotError):
    """Bad command-line input (exit code 2)."""


def emit_json(obj: Any) -> None:
    """Print exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def parse_screen(value: str) -> tuple[int, int]:
    """``'1280x720'`` -> ``(1280, 720)``; ``BadInput`` otherwise."""
    try:
        w, h = value.lower().split("x")
        size = (int(w), int(h))
    except ValueError:
        raise BadInput(f"--screen must look like 1280x720, got {value!r}") from None
    if size[0] <= 0 or size[1] <= 0:
        raise BadInput(f"--screen must be positive, got {value!r}")
    return size


# --- tools: parse -------------------------------------------------------------------------


@app.command("parse")
def parse_command(
    text: str = typer.Argument(
        ..., help="A model answer in the UI-TARS action language; - reads stdin."
    ),
    frame: str = typer.Option(
        "uitars-1.5", help="Coordinate frame: uitars-1.5, uitars-1.0, pixels."
    ),
    screen: str | None = typer.Option(
        None, help="Screenshot size WxH (needed unless --frame pixels)."
    ),
    min_pixels: int | None = typer.Option(None, help="smart_resize min_pixels (uitars-1.5)."),
    max_pixels: int | None = typer.Option(None, help="smart_resize max_pixels (uitars-1.5)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Parse a model answer into actions in screen pixels."""
    from pixelpilot.tools.frames import FRAME_NAMES
    from pixelpilot.tools.grammar import parse_response

    if frame not in FRAME_NAMES:
        raise BadInput(f"--frame must be one of {', '.join(FRAME_NAMES)}, got {frame!r}")
    size = parse_screen(screen) if screen else None
    if size is None and frame != "pixels":
        raise BadInput(f"--screen WxH is needed for --frame {frame}")
    answer = sys.stdin.read() if text == "-" else text
    try:
        response = parse_response(answer, frame, size, min_pixels=min_pixels, max_pixels=max_pixels)
    except ValueError as exc:
        if isinstance(exc, PixelpilotError):
            raise
        raise BadInput(str(exc)) from None
    if as_json:
        data = response.to_dict()
        emit_json({k: data[k] for k in ("thought", "reflection", "actions")})
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title="actions (screen pixels)" + (", clamped" if response.clamped else ""))
    table.add_column("#", justify="right")
    table.add_column("type")
    table.add_column("arguments")
    for i, action in enumerate(response.actions):
        args = {k: v for k, v in action.to_dict().items() if k != "type"}
        table.add_row(str(i), action.type, ", ".join(f"{k}={v!r}" for k, v in args.items()))
    console = Console()
    for label in ("reflection", "action_summary", "thought"):
        value = getattr(response, label)
        if value and not (label == "thought" and value == response.action_summary):
            console.print(Text.assemble((f"{label}: ", "bold"), value))
    console.print(table)


# --- agent: run, replay, view -------------------------------------------------------------

# --- envs: record -------------------------------------------------------------------------

# --- eval: offline, online, compare -------------------------------------------------------

# --- vlm: model tiny ----------------------------------------------------------------------

# --- train: sft, grpo ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app and map errors to exit codes and one-line messages."""
    try:
        app(args=argv, standalone_mode=False)
    except PixelpilotError as exc:
        sys.stderr.write(f"error: {_one_line(exc)}\n")
        return 2
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        return int(code or 0)
    except typer.Abort:
        sys.stderr.write("error: aborted\n")
        return 1
    except Exception as exc:  # click usage errors and internal failures
        import click

        if isinstance(exc, click.exceptions.UsageError):
            sys.stderr.write(f"error: {_one_line(exc.format_message())}\n")
            return 2
        if isinstance(exc, click.exceptions.ClickException):
            sys.stderr.write(f"error: {_one_line(exc.format_message())}\n")
            return exc.exit_code
        sys.stderr.write(f"error: internal failure: {type(exc).__name__}: {_one_line(exc)}\n")
        return 1
    return 0


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

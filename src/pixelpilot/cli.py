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

from pixelpilot.errors import ConfigError, PixelpilotError

app = typer.Typer(
    name="pixelpilot",
    help="GUI agents that see only pixels: run, record, replay, view, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
eval_app = typer.Typer(help="Evaluate models offline (recorded steps) and online (task suites).")
model_app = typer.Typer(help="Build and inspect model checkpoints.")
app.add_typer(eval_app, name="eval")
app.add_typer(model_app, name="model")


BadInput = ConfigError  # bad command-line input (exit code 2); the old name stays importable


def emit_json(obj: Any) -> None:
    """Print exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def parse_screen(value: str) -> tuple[int, int]:
    """``'1280x720'`` -> ``(1280, 720)``; ``BadInput`` otherwise (sides up to
    ``pixelpilot.untrusted.MAX_SCREEN_SIDE``)."""
    from pixelpilot.untrusted import MAX_SCREEN_SIDE

    try:
        w, h = value.lower().split("x")
        size = (int(w), int(h))
    except ValueError:
        raise BadInput(f"--screen must look like 1280x720, got {value!r}") from None
    if size[0] <= 0 or size[1] <= 0:
        raise BadInput(f"--screen must be positive, got {value!r}")
    if max(size) > MAX_SCREEN_SIDE:
        raise BadInput(f"--screen sides must be at most {MAX_SCREEN_SIDE}, got {value[:40]!r}")
    return size


def out_folder(value: str | None) -> str | None:
    """Callback of every output-folder option: an existing file there is bad input (exit 2)."""
    from pathlib import Path

    if value and Path(value).exists() and not Path(value).is_dir():
        raise typer.BadParameter(f"{value} is an existing file, not a folder")
    return value


def out_file(value: str | None) -> str | None:
    """Callback of an output-file option: an existing folder there is bad input (exit 2)."""
    from pathlib import Path

    if value and Path(value).is_dir():
        raise typer.BadParameter(f"{value} is a folder, not a file")
    return value


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


def _status_line(console: Any) -> Any:
    """A per-step status line on stderr: step, action, thought, timings."""

    from rich.markup import escape

    def show(step: Any) -> None:  # model text is escaped: it must never be read as markup
        acts = ", ".join(
            a["type"] + "(" + ",".join(str(v) for k, v in a.items() if k != "type") + ")"
            for a in step.actions
        )
        timing = " ".join(
            f"{k} {v:.2f}s" for k, v in step.timing.items() if k in ("model", "env", "policy")
        )
        thought = " ".join((step.thought or "").split())[:80]
        line = f"[bold]step {step.index}[/] {escape(acts) or '-'} [dim]{timing}[/]"
        if step.reward:
            line += f" [green]reward {step.reward:g}[/]"
        if step.error:
            line += f" [red]{escape(step.error[:80])}[/]"
        console.print(line, highlight=False)
        if thought:
            console.print(f"  [dim]{escape(thought)}[/]", highlight=False)

    return show


_MODEL_HELP = (
    "Checkpoint folder, http://host:port/v1 (with --model-name), 'expert' (the task's scripted "
    "expert), or 'default' (the bundled model; also when --model is not given). A checkpoint "
    "is prompted with the kind its pixelpilot.json declares."
)


@app.command("run")
def run_command(
    task: str = typer.Argument("", help="The instruction; optional for MiniWoB/desktop tasks."),
    env: str = typer.Option(..., "--env", help="browser, miniwob/TASK, desktop or desktop/TASK."),
    url: str | None = typer.Option(None, "--url", help="Start page for --env browser."),
    model: str | None = typer.Option(None, "--model", help=_MODEL_HELP),
    model_name: str | None = typer.Option(None, "--model-name", help="Model name on a server."),
    max_steps: int = typer.Option(15, "--max-steps", min=1),
    seed: int = typer.Option(0, "--seed", min=0),
    out: str | None = typer.Option(
        None, "--out", help="Trajectory folder (default: runs/...).", callback=out_folder
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Run the agent on one task and record the episode."""
    from pathlib import Path

    from rich.console import Console

    from pixelpilot.agent.factory import EnvSpec, PolicySpec, load_model, make_agent
    from pixelpilot.agent.run import default_out
    from pixelpilot.agent.viewer import write_view

    spec = EnvSpec.from_cli(env, url, task or None)
    if not task and spec.task in ("browser", "desktop"):
        raise BadInput(f'--env {spec.task} needs the TASK instruction: pixelpilot run "..." ...')
    console = Console(stderr=True)
    policy = PolicySpec.parse(model, model_name=model_name)
    policy.check()
    policy = policy.resolved()  # the bundled model's folder when --model is default/absent
    vlm = load_model(policy)  # fail before the env starts (None for the expert)
    environment = spec.make()
    try:
        agent = make_agent(
            policy,
            environment,
            model=vlm,
            label=policy.name,
            task=spec.task,
            env_kwargs=spec.kwargs,
            max_steps=max_steps,
            instruction=task or None,
            on_step=_status_line(console),
        )
        where = Path(out) if out else default_out("runs", spec.task)
        result = agent.run(seed=seed, out=where)
    finally:
        environment.close()
    view = write_view(where)
    summary = {"model": agent.model, **result.to_dict(), "viewer": str(view)}
    if as_json:
        emit_json(summary)
        return
    verdict = "[green]success[/]" if result.success else "[red]no success[/]"
    console.print(
        f"{verdict} after {result.steps} steps ({result.reason}), reward {result.total_reward:g}"
    )
    console.print(f"trajectory: {where}\nviewer: {view}", highlight=False)


@app.command("record")
def record_command(
    tasks: str = typer.Argument(..., help="Task id, comma-separated ids, or a suite name."),
    expert: bool = typer.Option(False, "--expert", help="Record the tasks' scripted experts."),
    model: str | None = typer.Option(
        None, "--model", help="A model instead of --expert: a checkpoint, URL or 'default'."
    ),
    model_name: str | None = typer.Option(None, "--model-name"),
    episodes: int = typer.Option(1, "--episodes", min=1),
    seed: int = typer.Option(0, "--seed", min=0),
    max_steps: int = typer.Option(15, "--max-steps", min=1),
    out: str = typer.Option(
        ..., "--out", help="Folder: OUT/<task>/seed-<k>/ per episode.", callback=out_folder
    ),
    miss_first: bool = typer.Option(
        False,
        "--miss-first",
        help="Recovery data: start each episode with a seeded random click, marked perturbed.",
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Record episodes (expert or model) as trajectories, one folder per episode."""
    from rich.console import Console
    from rich.progress import Progress

    from pixelpilot.agent.run import record_tasks
    from pixelpilot.envs import resolve_tasks

    if expert == (model is not None):
        raise BadInput("record needs exactly one of --expert or --model")
    ids = resolve_tasks(tasks)
    from pixelpilot.agent.factory import PolicySpec

    spec = PolicySpec.parse("expert" if expert else model, model_name=model_name)
    spec.check()  # before the progress bar shows
    console = Console(stderr=True)
    with Progress(console=console, transient=not console.is_terminal) as progress:
        bar = progress.add_task("recording", total=len(ids) * episodes)

        def advance(task: str, k: int, result: Any) -> None:
            progress.update(bar, advance=1, description=f"{task} seed {k}")

        summary = record_tasks(
            ids,
            episodes=episodes,
            seed=seed,
            out=out,
            model="expert" if expert else model,
            model_name=model_name,
            max_steps=max_steps,
            on_episode=advance,
            miss_first=miss_first,
        )
    if as_json:
        emit_json(summary)
        return
    for task, row in summary["tasks"].items():
        console.print(
            f"{task}: success {row['success_rate']:.0%} over {row['episodes']} episodes, "
            f"mean reward {row['mean_reward']:.3f}, mean steps {row['mean_steps']:.1f}",
            highlight=False,
        )
    console.print(f"mean success {summary['mean_success']:.0%}; trajectories in {out}")


_REPLAY_ALLOW = typer.Option(
    None, "--allow", help="Origin a browser recording may open (repeat for each)."
)


@app.command("replay")
def replay_command(
    directory: str = typer.Argument(..., help="An episode folder."),
    from_step: int | None = typer.Option(
        None, "--from-step", help="Replay K steps, then hand over to --model."
    ),
    model: str | None = typer.Option(None, "--model"),
    model_name: str | None = typer.Option(None, "--model-name"),
    max_steps: int = typer.Option(15, "--max-steps", min=1),
    out: str | None = typer.Option(
        None, "--out", help="Record the replay as a trajectory.", callback=out_folder
    ),
    allow: list[str] | None = _REPLAY_ALLOW,
    trust_url: bool = typer.Option(
        False, "--trust-recorded-url", help="Open a browser recording's URL and allow-list."
    ),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Re-execute a recorded episode in a fresh env and report divergences."""
    from pixelpilot.agent.factory import PolicySpec, load_model
    from pixelpilot.agent.replay import replay

    vlm = None
    if from_step is not None:
        if model is None:
            raise BadInput("--from-step needs --model (the model that takes over)")
        policy = PolicySpec.parse(model, model_name=model_name)
        if policy.kind == "expert":
            raise BadInput("--from-step hands over to a model: a checkpoint or a server URL")
        policy.check()
        vlm = load_model(policy)
    report = replay(
        directory,
        from_step=from_step,
        vlm=vlm,
        max_steps=max_steps,
        out=out,
        allow=allow or (),
        trust_url=trust_url,
    )
    data = report.to_dict()
    if as_json:
        emit_json(data)
        return
    same = not report.divergent_steps
    sys.stderr.write(
        f"replayed {report.steps} steps: reward {report.reward_replayed:g} "
        f"(recorded {report.reward_recorded:g}); "
        + ("no divergence\n" if same else f"first divergence: {data['first_divergence']}\n")
    )


@app.command("view")
def view_command(
    directory: str = typer.Argument(..., help="An episode folder or a folder of episodes."),
    out: str | None = typer.Option(
        None, "--out", help="HTML file (default DIR/view.html).", callback=out_file
    ),
) -> None:
    """Write a self-contained HTML viewer and print its path."""
    from pixelpilot.agent.viewer import write_view

    path = write_view(directory, out)
    sys.stdout.write(f"{path}\n")


# --- envs: record -------------------------------------------------------------------------

# --- eval: offline, online, compare -------------------------------------------------------


def _progress_bar(label: str) -> Any:
    """A rich progress bar on stderr (when it is a terminal): (bar, callback(done, total))."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    bar = Progress(console=console, transient=True, disable=not console.is_terminal)
    task = bar.add_task(label, total=None)

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return bar, update


@eval_app.command("offline")
def eval_offline(
    data: str = typer.Argument(..., help="Data file or directory (see docs/evaluation.md)."),
    format: str = typer.Option(
        "trajectory",
        "--format",
        help="trajectory|screenspot|screenspot-pro|screenspot-pro-cn|androidcontrol|mind2web",
    ),
    model: str = typer.Option(
        None,
        "--model",
        help="Checkpoint, URL, 'expert' (the recorded answers), or 'default' (the bundled "
        "model; also when neither --model nor --predictions is given).",
    ),
    predictions: str = typer.Option(None, "--predictions", help="Score saved answers (JSONL)."),
    frame: str = typer.Option(None, "--frame", help="Frame of --predictions answers without one."),
    out: str = typer.Option(
        None, "--out", help="Output dir: predictions, scores, reports.", callback=out_folder
    ),
    limit: int = typer.Option(None, "--limit", help="Evaluate the first N samples only."),
    batch_size: int = typer.Option(4, "--batch-size", help="Conversations per model call."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens"),
    rules: str = typer.Option("aitw", "--rules", help="aitw|androidcontrol|diagonal|exact-text"),
    point_threshold: float = typer.Option(
        None, "--point-threshold", help="Override the rule set's click distance threshold."
    ),
    kind: str = typer.Option(
        None,
        "--kind",
        help="Prompt kind: computer|mobile|grounding (default: the kind the model declares, "
        "computer when it declares none).",
    ),
    step_instructions: bool = typer.Option(False, "--step-instructions", help="Low-level mode."),
    allow_outside_images: bool = typer.Option(
        False, "--allow-outside-images", help="Read image paths that leave the data folder."
    ),
    language: str = typer.Option(
        None,
        "--language",
        help="Language the prompt asks the model to think in: English|Chinese (default: the "
        "model's declared language, English when it declares none).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Score a model's answers on recorded steps (step-level metrics with 95% CIs)."""
    import dataclasses

    from pixelpilot.eval.matching import MatchRules
    from pixelpilot.eval.offline import OfflineConfig, evaluate_offline
    from pixelpilot.eval.report import to_markdown

    try:
        match_rules = MatchRules.preset(rules)
        if point_threshold is not None:
            match_rules = dataclasses.replace(match_rules, point_threshold=point_threshold)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    if limit is not None and limit < 0 or batch_size < 1:
        raise BadInput("--limit must be >= 0 and --batch-size >= 1")
    from pixelpilot.agent.prompts import KINDS, LANGUAGES

    if kind is not None and kind not in KINDS:
        raise BadInput(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if language is not None and language not in LANGUAGES:
        raise BadInput(f"--language must be one of {', '.join(LANGUAGES)}, got {language!r}")
    if max_new_tokens < 1:
        raise BadInput(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    cfg = OfflineConfig(
        data=data,
        format=format,
        model=model,
        predictions=predictions,
        frame=frame,
        out=out,
        limit=limit,
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        prompt_kind=kind,
        step_instructions=step_instructions,
        language=language,
        rules=match_rules,
        allow_outside_images=allow_outside_images,
    )
    bar, update = _progress_bar("offline")
    with bar:
        report = evaluate_offline(cfg, progress=update)
    emit_json(report) if as_json else sys.stdout.write(to_markdown(report) + "\n")


@eval_app.command("online")
def eval_online(
    tasks: str = typer.Argument(..., help="Task id, comma-separated ids, or a suite name."),
    model: str = typer.Option(None, "--model", help=_MODEL_HELP),
    model_name: str = typer.Option(None, "--model-name", help="Model name at an API URL."),
    policy_factory: str = typer.Option(
        None,
        "--policy-factory",
        help="module:function returning a VLM or a Policy (overrides --model), e.g. "
        "pixelpilot.agent.baselines:random_clicks.",
    ),
    episodes: int = typer.Option(5, "--episodes", help="Episodes per task (seeds S, S+1, ...)."),
    seed: int = typer.Option(0, "--seed", help="First seed."),
    workers: int = typer.Option(1, "--workers", help="Envs run in parallel."),
    backend: str = typer.Option("local", "--backend", help="local (processes) or ray."),
    max_steps: int = typer.Option(15, "--max-steps", help="Step limit per episode."),
    step_timeout: float = typer.Option(60.0, "--step-timeout", help="Seconds per step."),
    episode_timeout: float = typer.Option(300.0, "--episode-timeout", help="Seconds per episode."),
    out: str = typer.Option(
        None, "--out", help="Output dir: episodes, results, reports.", callback=out_folder
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Run the agent on a task suite (task x seed), in parallel, and report success rates."""
    from pixelpilot.eval.online import OnlineConfig, evaluate_online
    from pixelpilot.eval.report import to_markdown

    cfg = OnlineConfig(
        tasks=tasks,
        model=model,
        model_name=model_name,
        policy_factory=policy_factory,
        episodes=episodes,
        seed=seed,
        workers=workers,
        backend=backend,
        max_steps=max_steps,
        step_timeout=step_timeout,
        episode_timeout=episode_timeout,
        out=out,
    )
    bar, update = _progress_bar("online")
    with bar:
        report = evaluate_online(cfg, progress=update)
    emit_json(report) if as_json else sys.stdout.write(to_markdown(report) + "\n")


@eval_app.command("compare")
def eval_compare(
    a: str = typer.Argument(..., help="Report A (report.json or its directory)."),
    b: str = typer.Argument(..., help="Report B."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
) -> None:
    """Difference B - A of two reports, with McNemar (paired) or two-proportion z-tests."""
    from pixelpilot.eval.compare import compare_reports, format_comparison

    result = compare_reports(a, b)
    emit_json(result) if as_json else sys.stdout.write(format_comparison(result) + "\n")


@eval_app.command("clicks")
def eval_clicks(
    run: str = typer.Argument(..., help="An online run's folder (eval online --out)."),
    expert: str = typer.Option(
        ..., "--expert", help="Expert recordings of the same tasks and seeds (record --expert)."
    ),
    near: float = typer.Option(28.0, help="Pixels from the expert's point that count as near."),
    as_json: bool = typer.Option(False, "--json", help="Print the figures as JSON."),
) -> None:
    """Where a run's first clicks land against the expert's targets: hit, another target,
    nothing; the near clicks' offsets by screen band; repeated clicks."""
    from pixelpilot.eval.clicks import click_report, format_clicks

    report = click_report(run, expert, near)
    emit_json(report) if as_json else sys.stdout.write(format_clicks(report) + "\n")


# --- vlm: model tiny ----------------------------------------------------------------------


@model_app.command("tiny")
def model_tiny(
    out: str = typer.Argument(..., help="Folder to write the checkpoint to.", callback=out_folder),
    arch: str = typer.Option(
        "qwen2_5_vl",
        help="qwen2_5_vl | qwen2_vl | kimi_k25 | chameleon | kimi_vl (remote-code test "
        "fixture, xs only)",
    ),
    size: str = typer.Option(
        "xs",
        help="xs (~1M) | s (~5M) | m (~20M parameters); kimi_k25 also xs-wide (~1.5M), "
        "xs-fine (xs with 7-pixel patches merged 4x4), xs-deep (xs with 4 decoder layers) and "
        "xs-14 (xs with 14-pixel image tokens: patches unmerged).",
    ),
    seed: int = typer.Option(0, min=0, help="Seed of the random weights and the tokenizer corpus."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Build a tiny random-init checkpoint of a real VLM architecture (no download)."""
    from pixelpilot.vlm.tiny import build_tiny, count_parameters

    path = build_tiny(out, arch, size, seed)
    if as_json:
        emit_json({"path": str(path), "arch": arch, "parameters": count_parameters(path)})
    else:
        sys.stdout.write(f"{path}\n")


# --- train: sft, grpo ---------------------------------------------------------------------

train_app = typer.Typer(help="Fine-tune a model on recorded steps (SFT, GRPO).")
app.add_typer(train_app, name="train")


def register_train_command(name: str, config_cls: type, run: Any, doc: str) -> None:
    """``pixelpilot train NAME``: its options are ``config_cls``'s fields (with their help
    texts) plus ``--json``; ``run(config)`` returns a result with ``summary() -> dict``."""
    import inspect
    import os

    from pixelpilot.train.config import typer_signature

    as_json = inspect.Parameter(
        "as_json",
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(False, "--json", help="Print one JSON object at the end."),
        annotation=bool,
    )

    def command(**kwargs: Any) -> None:
        want_json = kwargs.pop("as_json")
        result = run(config_cls(**kwargs))
        if os.environ.get("RANK", "0") != "0":
            return  # under accelerate launch only rank 0 reports
        summary = result.summary()
        if want_json:
            emit_json(summary)
        else:
            sys.stdout.write("".join(f"{k}: {v}\n" for k, v in summary.items()))

    command.__signature__, command.__annotations__ = typer_signature(  # type: ignore[attr-defined]
        config_cls, extra=(as_json,)
    )
    command.__doc__ = doc
    train_app.command(name)(command)


# name -> (config class, training function, help), as "module:attribute" so nothing heavy
# is imported until a command runs
TRAIN_COMMANDS = {
    "sft": (
        "pixelpilot.train.config:SFTConfig",
        "pixelpilot.train.sft:train_sft",
        "Supervised fine-tuning on recorded steps (loss on the answer tokens only).",
    ),
    "grpo": (
        "pixelpilot.train.grpo:GRPOConfig",
        "pixelpilot.train.grpo:train_grpo",
        "GRPO on recorded steps (DATA), or on live rollouts in the envs (--online TASKS).",
    ),
}


def _attribute(spec: str) -> Any:
    import importlib

    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def _register_train_commands() -> None:
    for name, (config_spec, train_spec, doc) in TRAIN_COMMANDS.items():

        def run(config: Any, train_spec: str = train_spec) -> Any:
            return _attribute(train_spec)(config)

        register_train_command(name, _attribute(config_spec), run, doc)


_register_train_commands()


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
        # typer >= 0.20 raises its own vendored click exceptions (typer._click), not click's
        if isinstance(exc, click.exceptions.ClickException) or (
            callable(getattr(exc, "format_message", None))
            and isinstance(getattr(exc, "exit_code", None), int)
        ):
            sys.stderr.write(f"error: {_one_line(exc.format_message())}\n")
            return exc.exit_code
        sys.stderr.write(f"error: internal failure: {type(exc).__name__}: {_one_line(exc)}\n")
        return 1
    return 0


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Training configs: frozen dataclasses with a help text per field.

The same dataclass drives the Python API (``SFTConfig(data=..., model=..., out=...)``) and the
command line (``pixelpilot train sft DATA --model M --out DIR``): ``typer_signature`` turns its
fields into options, each with the field's ``help``. ``TrainConfig`` holds what every objective
shares (optimiser, schedule, batches, checkpoints, LoRA, data filters); ``SFTConfig`` adds the
supervised objective's own fields, and GRPO's config subclasses ``TrainConfig`` the same way.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, field
from typing import Any, get_type_hints

from pixelpilot.errors import ConfigError
from pixelpilot.vlm.base import PROMPT_KINDS

SCHEDULES = ("cosine", "linear", "constant")
FREEZE_PARTS = ("vision", "projector", "decoder")
DTYPES = ("auto", "float32", "bfloat16")


def parse_freeze(spec: str | None, lora_r: int = 0, option: str = "freeze") -> tuple[str, ...]:
    """``--freeze`` as a tuple of parts; ``ConfigError`` for an unknown part, for all three
    (nothing would train) and with LoRA (which freezes the base itself)."""
    flag = "--" + option.replace("_", "-")
    parts = tuple(dict.fromkeys(p.strip() for p in (spec or "").split(",") if p.strip()))
    unknown = [p for p in parts if p not in FREEZE_PARTS]
    if unknown:
        raise ConfigError(f"{flag} {unknown[0]!r}: the parts are {', '.join(FREEZE_PARTS)}",
                          option=option)  # fmt: skip
    if len(parts) == len(FREEZE_PARTS):
        raise ConfigError(f"{flag} names every part: nothing would train", option=option)
    if parts and lora_r > 0:
        raise ConfigError(f"{flag} excludes --lora-r (LoRA freezes the base already)",
                          option=option)  # fmt: skip
    return parts


def parse_task_weights(spec: str | None, option: str = "task_weights") -> dict[str, int]:
    """``--task-weights`` as ``{task: repeats}``; ``ConfigError`` for a malformed entry or a
    weight that is not a whole number >= 1."""
    weights: dict[str, int] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        task, eq, value = part.partition("=")
        task = task.strip()
        try:
            n = int(value) if eq and task else 0
        except ValueError:
            n = 0
        if n < 1:
            flag = "--" + option.replace("_", "-")
            raise ConfigError(
                f"{flag} {part.strip()!r}: write TASK=N with N a whole number >= 1",
                option=option,
            )
        weights[task] = n
    return weights


def opt(default: Any, help: str) -> Any:  # noqa: A002 - the help text, as argparse names it
    """A config field with its help text (read by the CLI and by ``describe``)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """What every training objective shares."""

    data: str = opt("", "Training data: a file or folder in --format (as eval offline reads).")
    model: str = opt("", "Checkpoint folder to start from (a transformers VLM checkpoint).")
    out: str = opt("", "Output folder: checkpoints, metrics.jsonl and the final checkpoint.")
    format: str = opt(
        "trajectory", "Data format: trajectory, screenspot, androidcontrol, mind2web."
    )
    lr: float = opt(1e-5, "Peak learning rate (AdamW).")
    weight_decay: float = opt(0.0, "AdamW weight decay.")
    warmup_steps: int = opt(0, "Linear warm-up steps from 0 to --lr.")
    schedule: str = opt("cosine", "Learning-rate schedule after warm-up: cosine, linear, constant.")
    min_lr_ratio: float = opt(0.0, "Final learning rate as a fraction of --lr (cosine, linear).")
    epochs: float = opt(1.0, "Passes over the training samples (ignored when --max-steps is set).")
    max_steps: int | None = opt(None, "Optimizer steps to run (overrides --epochs).")
    batch_size: int = opt(4, "Samples per process per micro-batch.")
    grad_accum: int = opt(
        1, "Micro-batches per optimizer step (global batch = batch x accum x procs)."
    )
    max_grad_norm: float = opt(1.0, "Clip the gradient norm to this (0 = no clipping).")
    seed: int = opt(0, "Seed of the data order, initialisation of adapters and sampling.")
    eval_every: int = opt(
        0,
        "Validate every N steps: loss and offline step success on the validation split "
        "(0 = at the end only).",
    )
    eval_max_new_tokens: int = opt(64, "Tokens generated per validation answer.")
    checkpoint_every: int = opt(
        0, "Write a resumable checkpoint every N steps (0 = at the end only)."
    )
    lora_r: int = opt(0, "LoRA rank (0 = full fine-tuning).")
    lora_alpha: int = opt(16, "LoRA alpha (the update is scaled by alpha / r).")
    lora_dropout: float = opt(0.0, "LoRA dropout.")
    lora_targets: str = opt(
        "all-linear", "LoRA target modules: all-linear or comma-separated names."
    )
    merge: bool = opt(True, "Merge LoRA adapters into a plain checkpoint at the end.")
    freeze: str | None = opt(
        None,
        "Parts of the model that do not train, comma-separated: vision (the vision tower), "
        "projector (vision to decoder), decoder (the language model and its output head); "
        "e.g. vision,projector trains the decoder alone.",
    )
    resume: bool = opt(False, "Continue the run in --out from its last checkpoint, exactly.")
    overwrite: bool = opt(False, "Start over in an --out that already holds a run.")
    cache: str | None = opt(None, "Folder for preprocessed samples (default: in memory only).")
    cache_memory_mib: int = opt(
        2048, "MiB of preprocessed samples kept in memory; the rest are prepared again when used."
    )
    tasks: str | None = opt(None, "Train only on these tasks (comma-separated task ids).")
    action_types: str | None = opt(
        None, "Train only on steps whose gold action has one of these types (comma-separated)."
    )
    include_failed: bool = opt(
        False, "Also train on steps of unsuccessful episodes (trajectories)."
    )
    task_weights: str | None = opt(
        None,
        "TASK=N[,TASK=N...]: every training step of TASK comes N times in each epoch's order "
        "(N a whole number >= 1), so a task gets more of the batches without being recorded "
        "again. Validation steps are not repeated.",
    )
    covered_weight: int = opt(
        1,
        "Every training step whose recorded click lies off its target box's centre (the "
        "expert clicked the part of a covered target that shows) comes N times as often in "
        "each epoch's order, on top of --task-weights (N a whole number >= 1).",
    )
    val_fraction: float = opt(
        0.0, "Fraction of episodes held out for validation (split by episode)."
    )
    limit: int | None = opt(None, "Use only the first N samples after filtering.")
    prompt_kind: str | None = opt(
        None,
        "Prompt kind of the agent: computer, mobile, grounding (default: the kind --model "
        "declares in its pixelpilot.json, computer when it declares none). The final "
        "checkpoint declares the kind it was trained with.",
    )
    step_instructions: bool = opt(
        False, "Append the step instruction to the prompt (AndroidControl low level)."
    )
    history_thoughts: bool = opt(
        True,
        "Show the Thought of the episode's earlier answers in the prompt. Off for a model "
        "trained to answer without one, whose own history at run time has none.",
    )
    history_images: int | None = opt(
        None,
        "Screenshots in each prompt, the current one included (default: the number --model "
        "declares in its pixelpilot.json, else its family's: 5 for Qwen-VL and Kimi, 1 for "
        "Chameleon). Fewer make every prompt after an episode's first step shorter; the final "
        "checkpoint declares the number it was trained with.",
    )
    history_jitter: bool = opt(
        False,
        "Move each earlier click in a step's history to a random point of that step's "
        "recorded target box (seeded), so the policy sees history points like its own, not "
        "only the expert's box centres (trajectories with target boxes).",
    )
    device: str | None = opt(None, "Device (default: cuda:LOCAL_RANK when available, else cpu).")
    dtype: str = opt(
        "auto", "Weights dtype: auto (float32 on CPU, bfloat16 autocast on GPU), float32, bfloat16."
    )
    max_bad_steps: int = opt(10, "Stop after this many NaN/inf losses in a row.")
    zero_stage: int = opt(
        0,
        "Optimizer-state sharding over processes (ZeRO): 0 = every process keeps the whole "
        "AdamW state; 1 = each keeps and updates 1/N of it (ZeRO-1). Stages 2, 3: unsupported.",
    )
    progress: bool = opt(True, "Show a progress bar on stderr (rank 0 only).")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """``ConfigError`` naming the option for any value out of range."""
        checks: list[tuple[bool, str, str]] = [
            (bool(self.data), "data", "DATA is required"),
            (bool(self.model), "model", "--model is required"),
            (bool(self.out), "out", "--out is required"),
            (self.lr > 0, "lr", f"--lr must be positive, got {self.lr}"),
            (self.weight_decay >= 0, "weight_decay", "--weight-decay must be >= 0"),
            (self.warmup_steps >= 0, "warmup_steps", "--warmup-steps must be >= 0"),
            (self.schedule in SCHEDULES, "schedule", f"--schedule must be one of {SCHEDULES}"),
            (0 <= self.min_lr_ratio <= 1, "min_lr_ratio", "--min-lr-ratio must be in [0, 1]"),
            (self.epochs > 0, "epochs", f"--epochs must be positive, got {self.epochs}"),
            (self.max_steps is None or self.max_steps > 0, "max_steps", "--max-steps must be > 0"),
            (self.batch_size > 0, "batch_size", f"--batch-size must be > 0, got {self.batch_size}"),
            (self.grad_accum > 0, "grad_accum", f"--grad-accum must be > 0, got {self.grad_accum}"),
            (self.max_grad_norm >= 0, "max_grad_norm", "--max-grad-norm must be >= 0"),
            (self.eval_every >= 0, "eval_every", "--eval-every must be >= 0"),
            (self.checkpoint_every >= 0, "checkpoint_every", "--checkpoint-every must be >= 0"),
            (self.lora_r >= 0, "lora_r", "--lora-r must be >= 0"),
            (0 <= self.lora_dropout < 1, "lora_dropout", "--lora-dropout must be in [0, 1)"),
            (0 <= self.val_fraction < 1, "val_fraction", "--val-fraction must be in [0, 1)"),
            (self.limit is None or self.limit > 0, "limit", "--limit must be positive"),
            (self.dtype in DTYPES, "dtype", f"--dtype must be one of {DTYPES}"),
            (self.max_bad_steps > 0, "max_bad_steps", "--max-bad-steps must be positive"),
            (self.cache_memory_mib >= 0, "cache_memory_mib", "--cache-memory-mib must be >= 0"),
            (self.zero_stage in (0, 1), "zero_stage",
             f"--zero-stage {self.zero_stage} is not supported: 0 (off) or 1 (optimizer state "
             "sharded); gradient and parameter sharding (2, 3) are not"),
            (not (self.resume and self.overwrite), "resume", "--resume excludes --overwrite"),
            (self.covered_weight >= 1, "covered_weight",
             f"--covered-weight must be a whole number >= 1, got {self.covered_weight}"),
            (self.history_images is None or self.history_images >= 1, "history_images",
             f"--history-images must be >= 1, got {self.history_images}"),
            (self.prompt_kind in (None, *PROMPT_KINDS), "prompt_kind",
             f"--prompt-kind must be one of {', '.join(PROMPT_KINDS)}, got {self.prompt_kind!r}"),
        ]  # fmt: skip
        for ok, name, message in checks:
            if not ok:
                raise ConfigError(message, option=name)
        self.frozen_parts()
        parse_task_weights(self.task_weights)
        if self.model.startswith(("http://", "https://")):
            raise ConfigError(
                f"--model {self.model} is a served model; training needs a checkpoint folder",
                option="model",
            )

    def frozen_parts(self) -> tuple[str, ...]:
        """``--freeze`` as a tuple of parts (``parse_freeze``)."""
        return parse_freeze(self.freeze, self.lora_r)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """A config from ``to_dict`` output; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown config fields: {', '.join(unknown)}")
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class SFTConfig(TrainConfig):
    """Supervised fine-tuning: the loss is the NLL of the recorded answer's tokens only."""

    end_of_turn: bool = opt(
        True, "End each target with the model's end-of-turn token, so the model learns to stop."
    )


def with_model_prompt(config: Any) -> Any:
    """``config`` with its prompt kind settled: the one given, else the one the ``--model``
    checkpoint declares (``pixelpilot.vlm.profiles.read_declaration``). Training, its prompt
    cache, ``run.json`` (so resuming compares kinds, not "unset") and the final checkpoint's
    declaration all see that one kind."""
    if config.prompt_kind is not None:
        return config
    from pixelpilot.vlm.profiles import read_declaration

    kind = read_declaration(config.model).prompt_kind
    return dataclasses.replace(config, prompt_kind=kind)


def describe(cls: type) -> dict[str, str]:
    """``field name -> help text`` of a config class."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def typer_signature(
    cls: type, positional: tuple[str, ...] = ("data",), extra: tuple[Any, ...] = ()
) -> tuple[inspect.Signature, dict[str, Any]]:
    """A function signature (and its annotations) whose parameters are the config's fields as
    typer arguments/options with their help texts; ``extra`` adds CLI-only parameters
    (``inspect.Parameter`` objects, e.g. ``--json``). Set both on a ``**kwargs`` function and
    register it with typer."""
    import typer

    hints = get_type_hints(cls)
    params = []
    annotations: dict[str, Any] = {}
    fields = sorted(dataclasses.fields(cls), key=lambda f: f.name not in positional)
    for f in fields:
        helptext = f.metadata.get("help", "")
        if f.name in positional:
            required = f.metadata.get("cli_default", ...)  # a field may make it optional
            default = typer.Argument(required, help=helptext, metavar=f.name.upper())
        else:
            default = typer.Option(f.default, help=helptext)
        params.append(
            inspect.Parameter(
                f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hints[f.name]
            )
        )
        annotations[f.name] = hints[f.name]
    for p in extra:
        params.append(p)
        annotations[p.name] = p.annotation
    return inspect.Signature(params), annotations

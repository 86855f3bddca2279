"""The default-model recipe: record -> synthetic screens -> SFT -> GRPO -> held-out evaluation.

``run_recipe(RecipeConfig(...))`` (what ``scripts/train-default`` runs) trains a tiny
``kimi_k25`` checkpoint from scratch on MiniWoB++ from pixels, in one run folder::

    OUT/data/record/<task>/seed-<k>/ expert demonstrations, training seeds (< 1,000,000); the
                                     tasks that name a label among several (LABEL_TASKS)
                                     get ``label_episodes`` of them when it is set
    OUT/recovery-data/recovery/      recovery episodes of the single-click tasks: a seeded
                                     random first click (``perturbed``: never a target), then
                                     the expert (``record_tasks(miss_first=True)``); beside
                                     them record/, hard links to OUT/data/record
    OUT/grpo-data/record/            with --label-episodes: hard links to every task's first
                                     ``episodes`` recordings, GRPO's prompts (see grpo_prompts)
    OUT/grpo-data/recovery/          with --grpo-recovery (the default) and recovery
                                     episodes: hard links to them, so GRPO also sees steps
                                     after a miss
    OUT/grpo-label-data/<task>/      with --grpo-label-episodes: more expert episodes of the
                                     label tasks, seeds seed*10**5 + GRPO_LABEL_SEED on, for
                                     GRPO's prompts only (hard links in OUT/grpo-data/label)
    OUT/data/synthetic/, typing/     synthetic screens (pixelpilot.train.synthetic): clicks,
                                     and typing episodes that copy the instruction's text
    OUT/init/model/                  the random-init checkpoint (pixelpilot.vlm.tiny)
    OUT/read/                        with --read-steps: the reading warm-up of its vision
                                     tower (pixelpilot.train.reading.read_warmup), where the
                                     main SFT then starts (--read-named: the recordings'
                                     named words only; --read-classes length: the words'
                                     lengths and capitals; --read-length-tasks: a second
                                     head, the lengths of those tasks' words;
                                     --read-length-synthetic N: that head on N synthetic
                                     link screens, OUT/length-synthetic-data/, instead;
                                     --length-episodes N: N more recordings of those tasks
                                     in OUT/data/record-length/, and that head on all of
                                     their recordings, OUT/length-record-data/)
    OUT/focus/                       with --focus-steps N: N SFT steps on those tasks'
                                     recordings alone (OUT/length-record-data/, at
                                     --focus-lr) between the warm-up and the main SFT, which
                                     then starts from its checkpoint (round 50)
    OUT/sft/  OUT/sft-recovery/      training runs (metrics.jsonl, checkpoints, final/): SFT on
    OUT/grpo/                        all of OUT/data mixed, a short SFT continuation on
                                     OUT/recovery-data, offline GRPO on the recordings
                                     (sampled under the decoding aids the evaluations
                                     declare, ``grpo_aids``)
    OUT/eval-<stage>/                online evaluation on held-out seeds (>= 1,000,000)
    OUT/<stage>/done.json            the stage's figures, once it completed
    OUT/report.json, OUT/report.md   the figures of every stage

Every stage writes ``done.json`` when it completes and is skipped on the next run; an
interrupted training stage resumes from its last checkpoint, an interrupted evaluation from
its results file, an interrupted recording redoes the unfinished task. Everything depends on
``seed`` only. Training uses seeds below ``EVAL_SEED``; evaluation uses ``EVAL_SEED`` and up.

The model is trained with short answers (no Thought: ``sample.target_text(thought=False)``;
the earlier answers in a prompt's history without theirs too, as the model's own history is),
soft coordinate targets (``pixelpilot.train.coords``), the pointing loss on the image tokens
(``pixelpilot.train.pointing``) and the short ``grounding`` prompt kind
(100 tokens instead of 500 for ``computer``). Every checkpoint it trains declares that kind in
its ``pixelpilot.json`` (``train sft``/``train grpo`` write it), so the evaluation runs it as
any checkpoint runs (``eval online --model CKPT``) and it ships as the default model unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

EVAL_SEED = 1_000_000  # held-out episodes: seeds EVAL_SEED, EVAL_SEED + 1, ...
RECOVERY_SEED = 50_000  # recovery episodes: seeds seed*10**5 + RECOVERY_SEED + 0..N-1
# GRPO's own label-task episodes: seeds seed*10**5 + GRPO_LABEL_SEED + 0..N-1 (round 24)
GRPO_LABEL_SEED = 30_000
TASKS = (
    "miniwob/click-test", "miniwob/click-test-2", "miniwob/click-button", "miniwob/click-link",
    "miniwob/click-dialog", "miniwob/click-tab", "miniwob/focus-text", "miniwob/enter-text",
    "miniwob/enter-password", "miniwob/login-user",
)  # fmt: skip
MAX_STEPS = 8  # step limit of an evaluation episode (the longest expert episode takes 5)
# the tasks that name one label among several on the screen: reading is the skill; the
# recipe can record more of them (--label-episodes; docs/default-model.md, round 11)
LABEL_TASKS = ("miniwob/click-test-2", "miniwob/click-button", "miniwob/click-link")


@dataclass(frozen=True)
class RecipeConfig:
    out: str
    tasks: tuple[str, ...] = TASKS
    seed: int = 0
    episodes: int = 200  # expert demonstrations per task (seeds seed*10**5 + 0..N-1)
    label_episodes: int = 0  # demonstrations per task of LABEL_TASKS instead (0: --episodes)
    grpo_label_episodes: int = 600  # more LABEL_TASKS episodes, for GRPO's prompts only (r. 24)
    recovery: int = 200  # recovery episodes per single-click task (0 = no sft-recovery stage)
    recovery_steps: int = 1500  # the sft-recovery stage: SFT steps on recordings + recovery
    recovery_lr: float = 2e-4
    forms: int = 0  # synthetic two-field forms (login-user's steps) in sft-recovery (round 25)
    synthetic: int = 10_000  # synthetic grounding screens (one click each), mixed into SFT
    typing: int = 10_000  # synthetic typing episodes (click a field, type the quoted text)
    size: str = "xs"  # kimi_k25 tiny size: a key of vlm.kimi_k25.KIMI_SIZES
    prompt_kind: str = "grounding"
    thought: bool = False
    history_images: int = 0  # screenshots in each prompt (0: the family's, 5; round 32)
    sft_history_images: int = 0  # the main SFT's alone (0: --history-images; round 32)
    sigma: float = 25.0  # soft coordinate targets, in 0..1000 units (0 = plain SFT)
    point_weight: float = 1.0  # the pointing loss on the image tokens (0 = none)
    copy_weight: float = 1.0  # the copy objective on the decoder's attention (0 = none)
    look_weight: float = 1.0  # the look objective: coordinates attend to the gold cell (0 = none)
    read_weight: float = 0.0  # the reading objective: image tokens name the texts they show
    match_weight: float = 0.0  # the match objective: labelled cells attend to the word naming them
    choice_weight: float = 0.0  # the copy head picks which quoted string a type starts (round 27)
    half_weight: float = 0.0  # the half-row term; the checkpoints declare pointer_rows 2 (49)
    read_steps: int = 0  # the reading warm-up before SFT (round 22; 0 = none)
    word_weight: float = 0.0  # the warm-up's word-class head as an SFT term (round 23)
    read_named: bool = False  # the warm-up reads the recordings' named words only (round 35)
    read_classes: str = "word"  # the warm-up's classes: the word, or its length (round 38)
    read_length_tasks: str = ""  # TASK,..: a second warm-up head, these screens' lengths (round 39)
    read_length_synthetic: int = 0  # N drawn link screens for that head instead (round 45)
    read_length_classes: str = "length"  # that head's classes: length, width (47) or word (49)
    length_episodes: int = 0  # N more recordings of each length task, SFT and head (round 47)
    text_length_weight: float = 0.0  # the quoted word's length on the text side (round 47)
    focus_steps: int = 0  # SFT on the length tasks' recordings before the main SFT (round 50)
    focus_lr: float = 1e-3
    sft_steps: int = 10_000  # 18,000 until round 20: over the 90-minute budget on this machine
    sft_task_weights: str = ""  # TASK=N: N times that task's steps in the main SFT (round 36)
    sft_covered_weight: int = 1  # N times the covered clicks in the main SFT (round 46)
    grpo_steps: int = 600
    batch_size: int = 8  # SFT samples per optimizer step, over all processes
    sft_procs: int = 2  # SFT processes (one CPU thread each; this machine has 2 cores)
    lr: float = 1e-3
    grpo_lr: float = 2e-4
    grpo_beta: float = 0.0  # GRPO's k3 KL term to the SFT checkpoint (train grpo --beta)
    grpo_aids: bool = True  # GRPO samples with the declared decoding aids (round 20)
    grpo_history_jitter: bool = True  # GRPO's history clicks anywhere in their boxes (round 21)
    grpo_recovery: bool = True  # GRPO's prompts include the recovery episodes', if any (round 21)
    grpo_reward: str = "format=0.1,type=0.2,distance=0.7"  # train grpo --reward (round 21)
    grpo_freeze: str = "vision,projector"  # GRPO trains the decoder only (--freeze; round 24)
    grpo_task_weights: str = ""  # TASK=N: N times that task's prompts (--task-weights; round 31)
    group: int = 8  # GRPO answers per prompt
    grpo_prompts: int = 4  # GRPO prompts per step, over all processes
    grpo_procs: int = 2  # GRPO processes (each samples and scores its share of the prompts)
    eval_episodes: int = 50
    eval_workers: int = 1
    eval_max_steps: int = MAX_STEPS
    pointer_weight: float = 1.0  # declared on the evaluated checkpoints (vlm/pointer.py; round 13)
    well_formed_points: bool = True  # declared on them too (vlm/points.py; round 14)
    quoted_typing: bool = True  # and this (vlm/quoted.py; round 15)
    well_formed_actions: bool = True  # and this (vlm/wellformed.py; round 16)
    read_guide: float = 0.0  # the read guide's weight, with the warm-up's heads (round 52)
    read_fit: bool = False  # the guide's word head fitted on each evaluated checkpoint (round 53)
    baselines: bool = True  # also evaluate random clicks and the usual spot on the same seeds
    progress: bool = True

    def later_history_images(self) -> int | None:
        """The screenshots a prompt shows after the main SFT: ``history_images``, or, when
        the main SFT had its own number, the family's, said outright (its checkpoint
        declares the main SFT's); ``None``: what the starting checkpoint declares."""
        if self.history_images:
            return self.history_images
        if self.sft_history_images:
            from pixelpilot.vlm.profiles import FAMILIES

            return FAMILIES["kimi_k25"].history_images
        return None

    def grpo_label_tasks(self) -> tuple[str, ...]:
        """The tasks that get GRPO's own label episodes (none without a label task)."""
        return tuple(t for t in self.tasks if t in LABEL_TASKS) if self.grpo_label_episodes else ()

    def length_tasks(self) -> list[str]:
        """The tasks of ``read_length_tasks``: the warm-up's length head reads their screens."""
        return [t for t in self.read_length_tasks.split(",") if t]

    @classmethod
    def quick(cls, out: str, **overrides: Any) -> RecipeConfig:
        """A smoke run of every stage in a few minutes (it learns nothing)."""
        values: dict[str, Any] = dict(
            tasks=("miniwob/click-test", "miniwob/click-link", "miniwob/enter-text"),
            episodes=3, recovery=2, grpo_label_episodes=1, forms=2,
            recovery_steps=2, synthetic=12, typing=4, size="xs", sft_steps=2, grpo_steps=1,
            batch_size=2, sft_procs=1, group=2, grpo_prompts=1, grpo_procs=1, eval_episodes=2,
            eval_max_steps=2, baselines=False,
        )  # fmt: skip
        return cls(out=out, **{**values, **overrides})

    def validate(self) -> None:
        from pixelpilot.errors import ConfigError

        if not self.out:
            raise ConfigError("the recipe needs --out", option="out")
        if self.seed < 0 or self.seed * 100_000 + 100_000 > EVAL_SEED:
            raise ConfigError(
                f"--seed must be 0..{EVAL_SEED // 100_000 - 1}: training seeds stay below "
                f"{EVAL_SEED} (got {self.seed})",
                option="seed",
            )
        room = GRPO_LABEL_SEED if self.grpo_label_episodes else RECOVERY_SEED
        limits = {"episodes": room, "label_episodes": room, "recovery": RECOVERY_SEED,
                  "grpo_label_episodes": RECOVERY_SEED - GRPO_LABEL_SEED}  # fmt: skip
        for name, limit in limits.items():  # seed ranges must not meet
            if getattr(self, name) > limit:
                raise ConfigError(f"--{name.replace('_', '-')} must be <= {limit}", option=name)
        from pixelpilot.vlm.kimi_k25 import KIMI_SIZES

        if self.size not in KIMI_SIZES:  # fails now, not after the data stages
            raise ConfigError(
                f"--size must be one of {', '.join(KIMI_SIZES)} (got {self.size!r})", option="size"
            )
        for name in ("history_images", "sft_history_images"):
            if getattr(self, name) < 0:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"{flag} must be >= 1, or 0 for the default (got {getattr(self, name)})",
                    option=name,
                )
        if self.sft_procs < 1 or self.batch_size % self.sft_procs:
            raise ConfigError(
                f"--batch-size ({self.batch_size}) must be a multiple of --sft-procs "
                f"({self.sft_procs})",
                option="sft_procs",
            )
        if self.grpo_procs < 1 or self.grpo_prompts % self.grpo_procs:
            raise ConfigError(
                f"--grpo-prompts ({self.grpo_prompts}) must be a multiple of --grpo-procs "
                f"({self.grpo_procs})",
                option="grpo_procs",
            )
        counts = ("episodes", "synthetic", "batch_size", "grpo_prompts", "group", "recovery_steps")
        for name in (*counts, "eval_episodes", "eval_workers", "sft_covered_weight"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1", option=name)
        weights = ("point_weight", "copy_weight", "look_weight", "read_weight", "match_weight",
                   "choice_weight", "word_weight", "pointer_weight", "grpo_beta", "half_weight",
                   "text_length_weight", "read_guide")  # fmt: skip
        for name in ("recovery", "label_episodes", "grpo_label_episodes", "read_steps", "forms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0", option=name)
        if self.forms and not self.recovery:
            raise ConfigError(
                "--forms trains in the sft-recovery stage: it needs --recovery > 0", option="forms"
            )
        for name in weights:
            if not 0 <= getattr(self, name) < float("inf"):  # NaN fails too
                raise ConfigError(
                    f"--{name.replace('_', '-')} must be a finite number >= 0", option=name
                )
        if self.word_weight and not self.read_steps:
            raise ConfigError(
                "--word-weight keeps the reading warm-up's head: it needs --read-steps > 0",
                option="word_weight",
            )
        if self.read_named and not self.read_steps:
            raise ConfigError(
                "--read-named chooses the reading warm-up's words: it needs --read-steps > 0",
                option="read_named",
            )
        from pixelpilot.train.reading import CLASS_KINDS

        if self.read_classes not in CLASS_KINDS:
            raise ConfigError(f"--read-classes must be one of {', '.join(CLASS_KINDS)} "
                              f"(got {self.read_classes!r})", option="read_classes")  # fmt: skip
        if self.read_classes != "word" and (self.read_named or not self.read_steps):
            raise ConfigError(
                "--read-classes length names the reading warm-up's classes: it needs "
                "--read-steps > 0 and reads every word, not --read-named",
                option="read_classes",
            )
        length_tasks = self.length_tasks()
        if self.read_length_classes not in CLASS_KINDS:
            raise ConfigError(f"--read-length-classes must be one of {', '.join(CLASS_KINDS)} "
                              f"(got {self.read_length_classes!r})",
                              option="read_length_classes")  # fmt: skip
        if self.read_length_classes != "length" and not length_tasks:
            raise ConfigError("--read-length-classes names the length head's classes: it needs "
                              "--read-length-tasks", option="read_length_classes")  # fmt: skip
        if length_tasks and not self.read_steps:
            raise ConfigError(
                "--read-length-tasks adds a head to the reading warm-up: it needs --read-steps > 0",
                option="read_length_tasks",
            )
        if self.read_length_synthetic < 0:
            raise ConfigError("--read-length-synthetic must be >= 0",
                              option="read_length_synthetic")  # fmt: skip
        if self.read_length_synthetic and not length_tasks:
            raise ConfigError(
                "--read-length-synthetic draws the screens of the warm-up's length head: it "
                "needs --read-length-tasks (the tasks whose samples the head is kept on in SFT)",
                option="read_length_synthetic",
            )
        if self.length_episodes < 0:
            raise ConfigError("--length-episodes must be >= 0", option="length_episodes")
        if self.length_episodes and not length_tasks:
            raise ConfigError("--length-episodes records more of the length head's tasks: it "
                              "needs --read-length-tasks", option="length_episodes")  # fmt: skip
        if self.focus_steps < 0:
            raise ConfigError("--focus-steps must be >= 0", option="focus_steps")
        if self.focus_steps and not self.length_episodes:
            raise ConfigError("--focus-steps trains on the length tasks' recordings: it needs "
                              "--length-episodes > 0", option="focus_steps")  # fmt: skip
        if not 0 < self.focus_lr < float("inf"):  # NaN fails too
            raise ConfigError("--focus-lr must be a finite number > 0", option="focus_lr")
        if self.read_guide and not (self.read_steps and self.pointer_weight):
            raise ConfigError("--read-guide weighs the pointer guide by the reading warm-up's "
                              "heads: it needs --read-steps > 0 and --pointer-weight > 0",
                              option="read_guide")  # fmt: skip
        from pixelpilot.vlm.read_guide import KINDS

        kinds = [self.read_classes, *([self.read_length_classes] if length_tasks else [])]
        if self.read_guide and not any(k in KINDS for k in kinds):
            raise ConfigError(f"--read-guide reads {' or '.join(KINDS)} classes: the warm-up's "
                              f"heads name {' and '.join(kinds)}",
                              option="read_guide")  # fmt: skip
        if self.read_fit and not (self.read_guide and self.length_episodes):
            raise ConfigError("--read-fit fits the read guide's head on the length tasks' "
                              "recordings: it needs --read-guide > 0 and --length-episodes > 0",
                              option="read_fit")  # fmt: skip
        if self.length_episodes and self.read_length_synthetic:
            raise ConfigError("--length-episodes and --read-length-synthetic both give the "
                              "length head its screens: choose one",
                              option="length_episodes")  # fmt: skip
        room = GRPO_LABEL_SEED if self.grpo_label_episodes else RECOVERY_SEED
        if max(self.episodes, self.label_episodes) + self.length_episodes > room:
            raise ConfigError(f"--length-episodes: the recordings' seeds must stay below {room} "
                              "past the first", option="length_episodes")  # fmt: skip
        unknown = sorted(set(length_tasks) - set(self.tasks))
        if unknown:
            raise ConfigError(f"--read-length-tasks {unknown[0]}: not one of the recipe's tasks",
                              option="read_length_tasks")  # fmt: skip
        aids = (self.pointer_weight, self.well_formed_points, self.quoted_typing,
                self.well_formed_actions)  # fmt: skip
        if self.grpo_aids and not any(aids):
            raise ConfigError("--grpo-aids needs a decoding aid to sample with", option="grpo_aids")
        from pixelpilot.train.rewards import parse_reward_spec

        parse_reward_spec(self.grpo_reward, "grpo_reward")  # fails now, not after the SFT stage
        from pixelpilot.train.config import parse_freeze, parse_task_weights

        parse_freeze(self.grpo_freeze, option="grpo_freeze")
        for name in ("sft_task_weights", "grpo_task_weights"):
            unknown = sorted(set(parse_task_weights(getattr(self, name), option=name))
                             - set(self.tasks))  # fmt: skip
            if unknown:
                flag = "--" + name.replace("_", "-")
                raise ConfigError(f"{flag} {unknown[0]}: not one of the recipe's tasks",
                                  option=name)  # fmt: skip


# --- stage bookkeeping ----------------------------------------------------------------------


def _done(folder: Path) -> dict[str, Any] | None:
    path = folder / "done.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _mark(folder: Path, summary: dict[str, Any]) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "done.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1, default=str) + "\n")
    tmp.replace(folder / "done.json")
    return summary


def _log(config: RecipeConfig, message: str) -> None:
    if config.progress:
        import sys

        sys.stderr.write(f"[train-default {time.strftime('%H:%M:%S')}] {message}\n")


# --- stages ---------------------------------------------------------------------------------


def stage_record(
    config: RecipeConfig, out: Path, *, recovery: bool = False, grpo_label: bool = False
) -> dict[str, Any]:
    """Expert demonstrations of every task, or (``recovery``) recovery episodes of the
    single-click tasks, or (``grpo_label``) GRPO's own episodes of the label tasks; a task
    cut short is recorded again."""
    from pixelpilot.agent.run import record_tasks

    figures: dict[str, Any] = {}
    kind = "recovery" if recovery else "grpo-label" if grpo_label else "record"
    offset = {"record": 0, "recovery": RECOVERY_SEED, "grpo-label": GRPO_LABEL_SEED}[kind]
    first = config.seed * 100_000 + offset
    if recovery:
        counts = {t: config.recovery for t in config.tasks if EXPERT_STEPS.get(t, 1) == 1}
    elif grpo_label:
        counts = dict.fromkeys(config.grpo_label_tasks(), config.grpo_label_episodes)
    else:
        label = config.label_episodes or config.episodes
        counts = {t: label if t in LABEL_TASKS else config.episodes for t in config.tasks}
    tasks = list(counts)
    for task in tasks:
        episodes = counts[task]
        folder = out / task.replace("/", "-")
        done = _done(folder)
        if done is None:
            shutil.rmtree(folder, ignore_errors=True)
            t0 = time.perf_counter()
            bar = _bar(config, episodes, f"{kind} {task}")
            summary = record_tasks(
                [task], episodes=episodes, seed=first, out=out, miss_first=recovery,
                on_episode=lambda *_, bar=bar: bar.update(1),
            )  # fmt: skip
            bar.close()
            done = _mark(folder, {**summary["tasks"][task], "seconds": time.perf_counter() - t0})
        figures[task] = done
    return {"tasks": figures, "seeds": [first, first + max(counts.values(), default=1) - 1]}


def stage_length_record(config: RecipeConfig, data: Path, out: Path) -> dict[str, Any]:
    """``length_episodes`` more expert episodes of each length task (round 47), at the
    training seeds after that task's own recordings, into ``data / "record-length"`` (the SFT
    data); ``out`` then holds hard links to every recording of those tasks (the record
    stage's and these), the length head's screens. A head taught on drawn paragraphs reads
    the page's own words badly (round 47), and the recipe records 1,200 click-link episodes
    where a head taught on 4,000 picks the named link far better."""
    from pixelpilot.agent.run import record_tasks

    record, extra = data / "record", data / "record-length"
    figures: dict[str, Any] = {}
    for task in config.length_tasks():
        own = config.label_episodes or config.episodes
        first = config.seed * 100_000 + (own if task in LABEL_TASKS else config.episodes)
        folder = extra / task.replace("/", "-")
        done = _done(folder)
        if done is None:
            shutil.rmtree(folder, ignore_errors=True)
            t0 = time.perf_counter()
            bar = _bar(config, config.length_episodes, f"length {task}")
            summary = record_tasks(
                [task], episodes=config.length_episodes, seed=first, out=extra,
                on_episode=lambda *_, bar=bar: bar.update(1),
            )  # fmt: skip
            bar.close()
            seeds = [first, first + config.length_episodes - 1]
            done = {**summary["tasks"][task], "seconds": time.perf_counter() - t0, "seeds": seeds}
            done = _mark(folder, done)
        figures[task] = done
        name = task.replace("/", "-")
        _link_tree(record / name, out / name)
        _link_tree(folder, out / f"{name}-length")
    return {"tasks": figures}


def stage_recovery(config: RecipeConfig, record: Path, out: Path) -> dict[str, Any]:
    """Recovery episodes into ``out``; beside them (``out.parent / "record"``) hard links to
    the recordings, so that the ``sft-recovery`` stage reads both from one folder."""
    figures = stage_record(config, out, recovery=True)
    _link_tree(record, out.parent / "record")
    return figures


def stage_forms(config: RecipeConfig, out: Path) -> dict[str, Any]:
    """``forms`` synthetic two-field form episodes (the ``form`` kind of ``train.synthetic``)
    into ``out``, beside the recovery episodes, for the ``sft-recovery`` stage
    (docs/default-model.md, round 25)."""
    from pixelpilot.train.synthetic import write_synthetic

    shutil.rmtree(out, ignore_errors=True)  # no forms of an earlier setting stay
    write_synthetic(out, config.forms, seed=config.seed, kinds=("form",))
    return {"forms": config.forms}


def grpo_prompts(config: RecipeConfig, record: Path, out: Path) -> Path:
    """The recordings GRPO draws its prompts from: ``record`` itself, or, when the label tasks
    got more demonstrations (``label_episodes``), hard links to every task's first
    ``episodes`` of them in ``out``. The extra demonstrations are for SFT only: among GRPO's
    prompts they crowded out the other tasks (docs/default-model.md, round 11)."""
    if config.label_episodes <= config.episodes:
        return record
    first = config.seed * 100_000
    keep = {f"seed-{first + k}" for k in range(config.episodes)}
    _link_tree(
        record,
        out,
        ignore=lambda _, names: [n for n in names if n.startswith("seed-") and n not in keep],
    )
    return out


def grpo_data(
    config: RecipeConfig, record: Path, recovery: Path, out: Path, label: Path | None = None
) -> Path:
    """GRPO's prompts: ``grpo_prompts``'s recordings; with ``grpo_recovery`` and recovery
    episodes (``recovery`` > 0) those beside them (hard links in ``out``), whose steps after
    a miss the recordings never show (docs/default-model.md, round 21); with
    ``grpo_label_episodes`` the label tasks' episodes recorded for GRPO alone (``label``),
    on which SFT has not fit its answers (round 24). ``out`` is made anew."""
    shutil.rmtree(out, ignore_errors=True)  # no folder of an earlier setting stays a prompt
    prompts = grpo_prompts(config, record, out / "record")
    extra = {"recovery": recovery if config.grpo_recovery and config.recovery else None,
             "label": label if config.grpo_label_tasks() else None}  # fmt: skip
    if not any(extra.values()):
        return prompts
    if prompts != out / "record":
        _link_tree(prompts, out / "record")
    for name, source in extra.items():
        if source is not None:
            _link_tree(source, out / name)
    return out


def _link_tree(source: Path, target: Path, ignore: Any = None) -> None:
    """``target`` made anew as hard links to ``source``'s files (``ignore`` as copytree's)."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target, copy_function=_link, ignore=ignore)


def _link(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links: a copy
        shutil.copy2(source, target)


def _bar(config: RecipeConfig, total: int, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not config.progress, leave=False)


def _draw_screens(
    config: RecipeConfig, out: Path, count: int, desc: str, kinds: tuple[str, ...] | None = None
) -> None:
    """``count`` synthetic screens of ``kinds`` (the click kinds when None) into ``out``,
    500 at a time under a progress bar (``write_synthetic`` keeps the ones already drawn)."""
    from pixelpilot.train.synthetic import write_synthetic

    extra = {"kinds": kinds} if kinds else {}
    step = 500
    bar = _bar(config, count, desc)
    for n in range(min(step, count), count + step, step):
        write_synthetic(out, min(n, count), seed=config.seed, **extra)
        bar.update(min(n, count) - bar.n)
    bar.close()


def stage_synthetic(config: RecipeConfig, out: Path) -> dict[str, Any]:
    from pixelpilot.train.synthetic import write_synthetic

    t0 = time.perf_counter()
    _draw_screens(config, out, config.synthetic, "synthetic")
    if config.typing:
        write_synthetic(out.parent / "typing", config.typing, seed=config.seed, kinds=("type",))
    return {"screens": config.synthetic, "typing": config.typing,
            "seconds": time.perf_counter() - t0}  # fmt: skip


def stage_length_synthetic(config: RecipeConfig, out: Path) -> dict[str, Any]:
    """``read_length_synthetic`` synthetic link screens (paragraphs with links at random
    places, ``train/synthetic.py``'s ``link`` kind) for the reading warm-up's length head:
    distinct paragraphs at about 3 ms a screen, where a recording costs about 57 (round 44).
    They stay out of the SFT data."""
    t0 = time.perf_counter()
    _draw_screens(config, out, config.read_length_synthetic, "length screens", ("link",))
    return {"screens": config.read_length_synthetic, "seconds": time.perf_counter() - t0}


def stage_init(config: RecipeConfig, out: Path) -> dict[str, Any]:
    import math

    from safetensors import safe_open

    from pixelpilot.vlm.tiny import build_tiny

    # the model in its own folder: the stage's done.json must not travel with its exports
    path = build_tiny(out / "model", arch="kimi_k25", size=config.size, seed=config.seed)
    with safe_open(str(Path(path) / "model.safetensors"), "pt") as f:
        params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118
    return {"checkpoint": str(path), "parameters": params}


def stage_read(config: RecipeConfig, data: Path, model: str, out: Path) -> dict[str, Any]:
    """The reading warm-up (``pixelpilot.train.reading.read_warmup``) on every labelled
    screen of the SFT data: the tower learns the words it shows before SFT starts. With
    ``read_named``, on the recordings only, and only the words their instructions name."""
    from pixelpilot.train.reading import read_warmup

    source = data / "record" if config.read_named else data
    length_data = None
    if config.read_length_synthetic:  # the length head's own screens (stage length-synthetic)
        length_data = str(data.parent / "length-synthetic-data")
    elif config.length_episodes:  # the length tasks' recordings, more of them (length-record)
        length_data = str(data.parent / "length-record-data")
    return read_warmup(model, str(source), str(out), steps=config.read_steps,
                       batch_size=config.batch_size, lr=config.lr, seed=config.seed,
                       named=config.read_named, classes=config.read_classes,
                       length_tasks=config.length_tasks(), length_data=length_data,
                       length_classes=config.read_length_classes,
                       progress=config.progress)  # fmt: skip


def _sft(
    config: RecipeConfig,
    data: Path,
    model: str,
    out: Path,
    steps: int,
    lr: float,
    images: int | None = None,
    task_weights: str = "",
    covered_weight: int = 1,
) -> dict[str, Any]:
    """One SFT stage of ``steps`` at ``lr`` from ``model`` on ``data``; ``images``: the
    screenshots a prompt shows (``None``: what ``model`` declares); ``task_weights``: TASK=N,
    N times that task's steps in the stage's mix; ``covered_weight``: N times its covered
    clicks (``pixelpilot.train.data.covered_click``)."""
    from pixelpilot.errors import ConfigError
    from pixelpilot.train.checkpoint import latest_checkpoint
    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.pointing import launch_pointing_sft, train_pointing_sft
    from pixelpilot.train.reading import HEAD_FILE, LENGTH_HEAD_FILE, missing_head

    common = dict(
        data=str(data), model=model, out=str(out), max_steps=steps,
        batch_size=config.batch_size // config.sft_procs, lr=lr,
        warmup_steps=max(1, steps // 20), min_lr_ratio=0.1, seed=config.seed,
        prompt_kind=config.prompt_kind, history_thoughts=config.thought,
        history_images=images, task_weights=task_weights or None, covered_weight=covered_weight,
        checkpoint_every=max(1, steps // 10), progress=config.progress,
    )  # fmt: skip
    resume = latest_checkpoint(out) is not None
    sft = SFTConfig(**common, resume=resume, overwrite=not resume and out.exists())
    heads = []  # the warm-up's heads the word term keeps: its word head, and its length head
    if config.word_weight:
        names = (HEAD_FILE, LENGTH_HEAD_FILE) if config.length_tasks() else (HEAD_FILE,)
        heads = [str(out.parent / "read" / name) for name in names]
    # a word head's classes are hashed words: the text term asks for them through the head
    # itself, as the links' cells are read (round 48's --text-head)
    word_classes = config.text_length_weight and config.read_length_classes == "word"
    text_head = str(out.parent / "read" / LENGTH_HEAD_FILE) if word_classes else None
    needed = [(h, "word_weight") for h in heads]
    needed += [(text_head, "text_length_weight")] if text_head else []
    for head, option in needed:  # before any process starts
        if not Path(head).is_file():
            raise ConfigError(missing_head(head), option=option)
    objective = dict(sigma=config.sigma, thought=config.thought, weight=config.point_weight,
                     copy_weight=config.copy_weight, look_weight=config.look_weight,
                     read_weight=config.read_weight, match_weight=config.match_weight,
                     choice_weight=config.choice_weight, half_weight=config.half_weight,
                     word_weight=config.word_weight, word_head=heads or None,
                     text_length_weight=config.text_length_weight,
                     text_length_tasks=config.length_tasks() or None,
                     text_length_kind=config.read_length_classes,
                     text_length_head=text_head)  # fmt: skip
    t0 = time.perf_counter()
    if config.sft_procs > 1:
        summary = launch_pointing_sft(sft, config.sft_procs, **objective)
    else:
        summary = train_pointing_sft(sft, **objective).summary()
    return {**summary, "wall_seconds": time.perf_counter() - t0}


def stage_grpo(config: RecipeConfig, data: Path, model: str, out: Path) -> dict[str, Any]:
    from pixelpilot.train.checkpoint import latest_checkpoint
    from pixelpilot.train.grpo import GRPOConfig, launch_grpo, train_grpo

    resume = latest_checkpoint(out) is not None
    if config.grpo_aids:  # the aids the evaluations run, declared where GRPO loads them
        _declare_aids(config, model)
    grpo = GRPOConfig(
        data=str(data), model=model, out=str(out), max_steps=config.grpo_steps,
        tasks=",".join(config.tasks),
        batch_size=config.grpo_prompts // config.grpo_procs, group=config.group,
        lr=config.grpo_lr, beta=config.grpo_beta, reward=config.grpo_reward, seed=config.seed,
        prompt_kind=config.prompt_kind,
        history_thoughts=config.thought, max_new_tokens=40,
        history_images=config.later_history_images(),
        checkpoint_every=max(1, config.grpo_steps // 5),
        progress=config.progress, resume=resume, overwrite=not resume and out.exists(),
        decoding_aids=config.grpo_aids, history_jitter=config.grpo_history_jitter,
        freeze=config.grpo_freeze or None, task_weights=config.grpo_task_weights or None,
    )  # fmt: skip
    t0 = time.perf_counter()
    if config.grpo_procs > 1:
        summary = launch_grpo(grpo, config.grpo_procs)
    else:
        summary = train_grpo(grpo).summary()
    return {**summary, "wall_seconds": time.perf_counter() - t0}


def stage_baselines(config: RecipeConfig, record: Path, out: Path) -> dict[str, Any]:
    """Random clicks and the usual spot (its table from the training recordings) on the
    held-out seeds the model meets."""
    from pixelpilot.agent.baselines import TABLE_ENV, usual_spot_table, write_table

    table = write_table(usual_spot_table(record), out / "usual-spot.json")
    os.environ[TABLE_ENV] = str(table.resolve())
    figures = {}
    for name in ("random_clicks", "usual_spot"):
        figures[name] = evaluate(
            None, config.tasks, out / name, episodes=config.eval_episodes,
            workers=config.eval_workers, factory=f"pixelpilot.agent.baselines:{name}",
            max_steps=config.eval_max_steps,
        )  # fmt: skip
    return figures


def evaluate(
    checkpoint: str | None, tasks: tuple[str, ...], out: Path, *, episodes: int, workers: int,
    seed: int = EVAL_SEED, factory: str | None = None,
    max_steps: int = MAX_STEPS,
) -> dict[str, Any]:  # fmt: skip
    """Online success of ``checkpoint`` (or of the policy ``factory`` returns) on held-out
    seeds, at most ``max_steps`` steps an episode (resumes in ``out``), run as ``eval online
    --model CHECKPOINT`` runs it: prompted with the kind the checkpoint declares.
    ``first_action``: per task, the episodes solved with no wasted action (as many steps as
    the expert's)."""
    from pixelpilot.eval.online import OnlineConfig, evaluate_online

    model = str(Path(checkpoint).resolve()) if checkpoint is not None else str(factory)
    report = evaluate_online(
        OnlineConfig(
            tasks=",".join(tasks), model=model, episodes=episodes, seed=seed, workers=workers,
            out=str(out), max_steps=max_steps, policy_factory=factory,
        )
    )  # fmt: skip
    return {
        "mean_success": report["mean_success"],
        "tasks": {t: v["success_rate"] for t, v in report["tasks"].items()},
        "first_action": first_action_success(out),
        "seeds": [seed, seed + episodes - 1],
        "max_steps": max_steps,
    }


EXPERT_STEPS = {"miniwob/enter-text": 3, "miniwob/enter-password": 5, "miniwob/login-user": 5}


def first_action_success(out: Path) -> dict[str, float]:
    """Per task, the fraction of episodes solved in the expert's number of steps (1 for a
    single click): success without a second try, comparable across step limits."""
    from pixelpilot.eval.online import read_results

    solved: dict[str, list[bool]] = {}
    for row in read_results(out / "results.jsonl").values():
        ok = bool(row.get("success")) and row.get("steps", 99) <= EXPERT_STEPS.get(row["task"], 1)
        solved.setdefault(row["task"], []).append(ok)
    return {t: sum(v) / len(v) for t, v in sorted(solved.items())}


# --- the run --------------------------------------------------------------------------------


def run_recipe(config: RecipeConfig) -> dict[str, Any]:
    """Run (or continue) every stage; returns and writes the report."""
    config.validate()
    root = Path(config.out)
    root.mkdir(parents=True, exist_ok=True)
    (root / "recipe.json").write_text(json.dumps(asdict(config), indent=1) + "\n")
    report: dict[str, Any] = {"config": asdict(config), "stages": {}}
    data = root / "data"  # the recordings and the synthetic screens: one SFT data set
    recovery = root / "recovery-data"  # recovery episodes beside the recordings
    sft = "sft-recovery" if config.recovery else "sft"  # the SFT checkpoint GRPO starts from
    sft_images = config.sft_history_images or config.history_images or None  # the main SFT's
    stages = [
        ("record", lambda d: stage_record(config, data / "record")),
        ("recovery", lambda d: stage_recovery(config, data / "record", recovery / "recovery")),
        ("forms", lambda d: stage_forms(config, recovery / "forms")),
        ("grpo-label", lambda d: stage_record(config, root / "grpo-label-data",
                                              grpo_label=True)),
        ("synthetic", lambda d: stage_synthetic(config, data / "synthetic")),
        ("baselines", lambda d: stage_baselines(config, data / "record", d)),
        ("length-synthetic", lambda d: stage_length_synthetic(config,
                                                              root / "length-synthetic-data")),
        ("length-record", lambda d: stage_length_record(config, data,
                                                        root / "length-record-data")),
        ("init", lambda d: stage_init(config, d)),
        ("read", lambda d: stage_read(config, data, _done(root / "init")["checkpoint"], d)),
        ("focus", lambda d: _sft(config, root / "length-record-data", _start(root, config), d,
                                 config.focus_steps, config.focus_lr, sft_images)),
        ("sft", lambda d: _sft(config, data, _final(root, "focus") if config.focus_steps
                               else _start(root, config), d, config.sft_steps, config.lr,
                               sft_images, config.sft_task_weights,
                               config.sft_covered_weight)),
        ("sft-recovery", lambda d: _sft(config, recovery, _final(root, "sft"), d,
                                        config.recovery_steps, config.recovery_lr,
                                        config.later_history_images())),
        ("eval-sft", lambda d: _eval(config, _final(root, sft), d)),
        ("grpo", lambda d: stage_grpo(config, grpo_data(config, data / "record",
                                                        recovery / "recovery",
                                                        root / "grpo-data",
                                                        root / "grpo-label-data"),
                                      _final(root, sft), d)),
        ("eval-grpo", lambda d: _eval(config, _final(root, "grpo"), d)),
    ]  # fmt: skip
    for name, run in stages:
        skip = {"baselines": not config.baselines, "recovery": not config.recovery,
                "grpo-label": not config.grpo_label_tasks(), "read": not config.read_steps,
                "forms": not config.forms,
                "length-synthetic": not config.read_length_synthetic,
                "length-record": not config.length_episodes,
                "focus": not config.focus_steps,
                "sft-recovery": not config.recovery}  # fmt: skip
        if skip.get(name):
            continue
        folder = root / name
        done = _done(folder)
        if done is None:
            _log(config, f"stage {name} ...")
            t0 = time.perf_counter()
            summary = run(folder)
            done = _mark(folder, {**summary, "stage_seconds": time.perf_counter() - t0})
        _log(config, f"stage {name}: done ({done.get('stage_seconds', 0):.0f} s)")
        report["stages"][name] = done
    _write_report(root, report)
    return report


def _final(root: Path, stage: str) -> str:
    return str(root / stage / "final")


def _start(root: Path, config: RecipeConfig) -> str:
    """The checkpoint SFT starts from (the focus stage, or the main SFT without one): the
    reading warm-up's, or the random init."""
    return _final(root, "read") if config.read_steps else _done(root / "init")["checkpoint"]


def _read_heads(config: RecipeConfig, checkpoint: str) -> tuple[str, ...]:
    """``--read-guide``: copy the reading warm-up's heads that name words or lengths into
    ``checkpoint`` (the read guide's, vlm/read_guide.py) and return their file names; none
    without the option. With ``--read-fit``, a head fitted on ``checkpoint``'s own embeddings
    of the length tasks' recordings (``pixelpilot.train.read_fit``) takes the length head's
    place: it reads those tasks' words better (round 53)."""
    import shutil

    from pixelpilot.train.reading import HEAD_FILE, LENGTH_HEAD_FILE, head_kind
    from pixelpilot.vlm.read_guide import KINDS

    if not config.read_guide:
        return ()
    names = []
    for name in (HEAD_FILE, *(() if config.read_fit else (LENGTH_HEAD_FILE,))):
        head = Path(config.out) / "read" / name
        if head.is_file() and head_kind(str(head)) in KINDS:
            shutil.copyfile(head, Path(checkpoint) / name)
            names.append(name)
    if config.read_fit:
        from pixelpilot.train.read_fit import FIT_HEAD_FILE, fit_read_head

        fitted = Path(checkpoint) / FIT_HEAD_FILE
        # a final checkpoint does not change: GRPO's start reuses the SFT evaluation's head
        if not fitted.is_file():
            twin = _fitted_twin(config, Path(checkpoint))
            if twin is not None:
                shutil.copyfile(twin, fitted)
                _log(config, f"read fit on {checkpoint}: the head of {twin.parent} "
                             "(same image path)")  # fmt: skip
            else:
                data = Path(config.out) / "length-record-data"
                figures = fit_read_head(checkpoint, data, fitted, seed=config.seed,
                                        threads=config.eval_workers,
                                        progress=config.progress)  # fmt: skip
                _log(config, f"read fit on {checkpoint}: {figures['texts']} texts, "
                             f"{figures['seconds']:.0f} s")  # fmt: skip
        names.append(FIT_HEAD_FILE)
    return tuple(names)


def _fitted_twin(config: RecipeConfig, checkpoint: Path) -> Path | None:
    """The fitted head of another final checkpoint of the run whose image path (every tensor
    outside the decoder, and the image processor's settings) equals ``checkpoint``'s, or
    ``None``. The fit reads only image tokens' decoder inputs, so its head would come out the
    same (it is deterministic): GRPO with a frozen vision tower and projector keeps them, and
    its evaluation reuses the SFT evaluation's head instead of fitting it again (round 54)."""
    from safetensors.torch import load_file

    from pixelpilot.train.read_fit import FIT_HEAD_FILE

    def image_path(folder: Path) -> tuple[dict, bytes] | None:
        weights, settings = folder / "model.safetensors", folder / "preprocessor_config.json"
        if not weights.is_file() or not settings.is_file():
            return None
        tensors = {k: v for k, v in load_file(str(weights)).items()
                   if "language_model" not in k and "lm_head" not in k}  # fmt: skip
        return tensors, settings.read_bytes()

    heads = [h for h in sorted(Path(config.out).glob(f"*/final/{FIT_HEAD_FILE}"))
             if h.parent.resolve() != checkpoint.resolve()]  # fmt: skip
    own = image_path(checkpoint) if heads else None
    if own is None or not own[0]:
        return None
    for head in heads:
        other = image_path(head.parent)
        if other is None or own[1] != other[1] or own[0].keys() != other[0].keys():
            continue
        if all(own[0][k].equal(other[0][k]) for k in own[0]):
            return head
    return None


def _declare_aids(config: RecipeConfig, checkpoint: str) -> None:
    """Declare the recipe's decoding aids on ``checkpoint`` (the pointer weight, with half rows
    after the half-row term, the read guide with the warm-up's heads, well-formed points, quoted
    typing and well-formed actions; training wrote its declaration without them)."""
    from pixelpilot.vlm.profiles import Declaration, read_declaration, write_declaration

    heads = _read_heads(config, checkpoint)
    aids = Declaration(pointer_weight=config.pointer_weight,
                       pointer_rows=2 if config.half_weight and config.pointer_weight else 1,
                       read_heads=heads, read_weight=config.read_guide if heads else 0.0,
                       well_formed_points=config.well_formed_points,
                       quoted_typing=config.quoted_typing,
                       well_formed_actions=config.well_formed_actions)  # fmt: skip
    write_declaration(checkpoint, read_declaration(checkpoint).with_aids(aids))


def _eval(config: RecipeConfig, checkpoint: str, out: Path) -> dict[str, Any]:
    """Declare the recipe's decoding aids on ``checkpoint``, then evaluate it as it will run."""
    _declare_aids(config, checkpoint)
    return evaluate(
        checkpoint, config.tasks, out / "run", episodes=config.eval_episodes,
        workers=config.eval_workers, max_steps=config.eval_max_steps,
    )  # fmt: skip


def _write_report(root: Path, report: dict[str, Any]) -> None:
    (root / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    stages = report["stages"]
    lines = ["# train-default report", "", "| stage | seconds | figures |", "|---|---|---|"]
    for name, done in stages.items():
        keys = ("mean_success", "loss_first", "loss_last", "reward_first", "reward_last",
                "parameters", "screens")  # fmt: skip
        figures = ", ".join(
            f"{k} {done[k]:.4g}" for k in keys if isinstance(done.get(k), float | int)
        )
        lines.append(f"| {name} | {done.get('stage_seconds', 0):.0f} | {figures} |")
    evals = {name: stages[name] for name in ("eval-sft", "eval-grpo") if name in stages}
    evals |= {f"baseline {k}": v for k, v in stages.get("baselines", {}).items()
              if isinstance(v, dict) and "tasks" in v}  # fmt: skip
    for name, figures in evals.items():
        lines += ["", f"## {name} (held-out seeds {figures['seeds']})", "",
                  "| task | success | first action |", "|---|---|---|"]  # fmt: skip
        first = figures.get("first_action", {})
        lines += [
            f"| {t} | {v:.2f} | {first.get(t, float('nan')):.2f} |"
            for t, v in figures["tasks"].items()
        ]
    (root / "report.md").write_text("\n".join(lines) + "\n")

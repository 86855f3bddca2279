"""The default-model recipe script: a --quick run through every stage, resume, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from pixelpilot.agent.trajectory import iter_episodes, read_trajectory
from pixelpilot.vlm.profiles import read_declaration

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train-default"


def _run(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(SCRIPT), *args, "--no-progress"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = _run("--out", str(tmp_path / "run"), "--episodes", "0")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: --episodes must be >= 1"]
    done = _run("--out", str(tmp_path / "run"), "--seed", "10")  # seeds would reach eval's
    assert done.returncode == 2 and "below 1000000" in done.stderr
    done = _run("--out", str(tmp_path / "run"), "--grpo-reward", "format=0.1,pointy=0.9")
    assert done.returncode == 2  # refused before any stage runs, not after the SFT hour
    assert done.stderr.strip().splitlines() == [
        "error: --grpo-reward: unknown reward 'pointy' "
        "(known: format, type, point, distance, text, chars)"
    ]
    done = _run("--out", str(tmp_path / "run"), "--recovery", "50001")  # meets --episodes'
    assert done.stderr.strip().splitlines() == ["error: --recovery must be <= 50000"]
    done = _run("--out", str(tmp_path / "run"), "--recovery-steps", "0")
    assert done.stderr.strip().splitlines() == ["error: --recovery-steps must be >= 1"]
    done = _run("--out", str(tmp_path / "run"), "--label-episodes", "30001")  # meets GRPO's own
    assert done.stderr.strip().splitlines() == ["error: --label-episodes must be <= 30000"]
    done = _run("--out", str(tmp_path / "run"), "--label-episodes", "50001",
                "--grpo-label-episodes", "0")  # fmt: skip
    assert done.stderr.strip().splitlines() == ["error: --label-episodes must be <= 50000"]
    done = _run("--out", str(tmp_path / "run"), "--grpo-label-episodes", "20001")
    assert done.stderr.strip().splitlines() == ["error: --grpo-label-episodes must be <= 20000"]
    done = _run(
        "--out", str(tmp_path / "run"), "--grpo-label-episodes", "1", "--label-episodes", "30001"
    )  # would meet GRPO's own label episodes
    assert done.stderr.strip().splitlines() == ["error: --label-episodes must be <= 30000"]
    done = _run("--out", str(tmp_path / "run"), "--forms", "10", "--recovery", "0")
    assert done.stderr.strip().splitlines() == [
        "error: --forms trains in the sft-recovery stage: it needs --recovery > 0"
    ]
    for flag in ("--recovery", "--label-episodes", "--grpo-label-episodes", "--forms"):
        done = _run("--out", str(tmp_path / "run"), flag, "-1")
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [f"error: {flag} must be >= 0"]
    for flag, value in (("--copy-weight", "-1"), ("--look-weight", "-1"),
                        ("--choice-weight", "inf"), ("--pointer-weight", "-0.5"),
                        ("--pointer-weight", "nan"), ("--grpo-beta", "-0.1")):  # fmt: skip
        done = _run("--out", str(tmp_path / "run"), flag, value)
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [f"error: {flag} must be a finite number >= 0"]
    done = _run("--out", str(tmp_path / "run"), "--grpo-procs", "3")  # 4 prompts a step
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --grpo-prompts (4) must be a multiple of --grpo-procs (3)"
    ]
    done = _run(
        "--out",
        str(tmp_path / "run"),
        "--grpo-aids",
        "--pointer-weight",
        "0",
        "--no-well-formed-points",
        "--no-quoted-typing",
        "--no-well-formed-actions",
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --grpo-aids needs a decoding aid to sample with"
    ]
    done = _run("--out", str(tmp_path / "run"), "--grpo-freeze", "vision,eyes")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --grpo-freeze 'eyes': the parts are vision, projector, decoder"
    ]
    for flag, task in (("--grpo-task-weights", "miniwob/login-user"),
                       ("--sft-task-weights", "miniwob/click-link")):  # fmt: skip
        done = _run("--out", str(tmp_path / "run"), flag, f"{task}=0")
        assert done.stderr.strip().splitlines() == [
            f"error: {flag} '{task}=0': write TASK=N with N a whole number >= 1"
        ]
        done = _run("--out", str(tmp_path / "run"), flag, "miniwob/book-flight=2")
        assert done.stderr.strip().splitlines() == [
            f"error: {flag} miniwob/book-flight: not one of the recipe's tasks"
        ]
    done = _run("--out", str(tmp_path / "run"), "--sft-covered-weight", "0")
    assert done.stderr.strip().splitlines() == ["error: --sft-covered-weight must be >= 1"]
    for flag, value in (("--history-images", "-1"), ("--sft-history-images", "-2")):
        done = _run("--out", str(tmp_path / "run"), flag, value)
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            f"error: {flag} must be >= 1, or 0 for the default (got {value})"
        ]
    done = _run("--out", str(tmp_path / "run"), "--size", "xl")  # before the data stages
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --size must be one of xs, xs-wide, xs-fine, xs-deep, xs-14, s, m (got 'xl')"
    ]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_quick_run_goes_through_every_stage_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    weights = ("--sft-task-weights", "miniwob/click-link=3")
    done = _run("--quick", "--out", str(out), "--sft-history-images", "1", *weights)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    stages = report["stages"]
    assert list(stages) == ["record", "recovery", "forms", "grpo-label", "synthetic", "init",
                            "sft", "sft-recovery", "eval-sft", "grpo", "eval-grpo"]  # fmt: skip
    assert max(stages["record"]["seeds"]) < 1_000_000 <= min(stages["eval-sft"]["seeds"])
    # recovery episodes: the single-click tasks only, seeds of their own, a perturbed first step;
    # the recordings beside them as hard links, none of it in the first SFT's data
    assert list(stages["recovery"]["tasks"]) == ["miniwob/click-test", "miniwob/click-link"]
    assert stages["recovery"]["seeds"] == [50_000, 50_001]
    recovery = list(iter_episodes(out / "recovery-data" / "recovery"))
    assert len(recovery) == 4 and all(ep.steps[0].perturbed for ep in recovery)
    linked = sorted(p.relative_to(out / "recovery-data" / "record")
                    for p in (out / "recovery-data" / "record").rglob("*.png"))  # fmt: skip
    assert linked == sorted(p.relative_to(out / "data" / "record")
                            for p in (out / "data" / "record").rglob("*.png"))  # fmt: skip
    assert not any(ep.steps and ep.steps[0].perturbed for ep in iter_episodes(out / "data"))
    # the synthetic forms: in the recovery stage's data only, five steps each, not GRPO's
    forms = list(iter_episodes(out / "recovery-data" / "forms"))
    assert stages["forms"]["forms"] == 2 and len(forms) == 2
    assert all(ep.header["task"] == "synthetic/form" and len(ep.steps) == 5 for ep in forms)
    assert not list((out / "data").rglob("synthetic-form"))
    assert not list((out / "grpo-data").rglob("synthetic-form"))
    sft_recovery = json.loads((out / "sft-recovery" / "run.json").read_text())
    assert sft_recovery["data"] == str(out / "recovery-data")
    # the main SFT's mix weighs click-link's steps three times; sft-recovery's does not
    assert json.loads((out / "sft" / "run.json").read_text())["task_weights"] == (
        "miniwob/click-link=3"
    )
    assert sft_recovery["task_weights"] is None
    # GRPO starts from the recovery stage's checkpoint
    assert json.loads((out / "grpo" / "run.json").read_text())["model"].endswith(
        "sft-recovery/final"
    )
    # GRPO's own label episodes (click-link, seed 30,000), among its prompts alone, and a GRPO
    # run told to freeze the vision tower and the projector (test_sft checks what that does)
    assert stages["grpo-label"]["seeds"] == [30_000, 30_000]
    assert [e.header["seed"] for e in iter_episodes(out / "grpo-data" / "label")] == [30_000]
    assert not any(e.header["seed"] == 30_000 for e in iter_episodes(out / "data"))
    assert json.loads((out / "grpo" / "run.json").read_text())["freeze"] == "vision,projector"
    assert stages["init"]["parameters"] > 100_000
    assert stages["synthetic"]["typing"] == 4  # typing episodes mixed into the SFT data
    assert len(list((out / "data" / "typing").rglob("trajectory.jsonl"))) == 4
    for name in ("sft", "grpo"):
        assert (out / name / "final" / "config.json").is_file()
        declared = read_declaration(out / name / "final")
        assert declared.prompt_kind == "grounding" and declared.history_thoughts is False
        assert not (out / name / "final" / "done.json").exists()  # no stage file in a model
    # one screenshot a prompt in the main SFT alone: its checkpoint declares it, the later
    # stages train and are evaluated with the family's number (declared by none)
    assert read_declaration(out / "sft" / "final").history_images == 1
    for name in ("sft-recovery", "grpo"):
        assert read_declaration(out / name / "final").history_images is None
    assert json.loads((out / "sft-recovery" / "run.json").read_text())["history_images"] == 5
    # the evaluated checkpoints decode with the recipe's aids; training declared none
    plain = read_declaration(out / "sft" / "final")
    assert plain.pointer_weight == 0.0 and plain.well_formed_points is False
    assert plain.quoted_typing is False and plain.well_formed_actions is False
    for name in ("sft-recovery", "grpo"):
        declared = read_declaration(out / name / "final")
        assert declared.pointer_weight == 1.0 and declared.well_formed_points is True
        assert declared.quoted_typing is True and declared.well_formed_actions is True
    # evaluated as any checkpoint is: the ordinary factory, the kind the checkpoint declares
    header = read_trajectory(next((out / "eval-grpo").rglob("trajectory.jsonl")).parent).header
    assert header["model"] == str((out / "grpo" / "final").resolve())
    assert header["prompt_kind"] == "grounding"
    for name in ("eval-sft", "eval-grpo"):
        assert set(stages[name]["tasks"]) == {
            "miniwob/click-test", "miniwob/click-link", "miniwob/enter-text"
        }  # fmt: skip
    assert (out / "report.md").read_text().startswith("# train-default report")
    # a second run finds every stage done and changes nothing
    t0 = time.perf_counter()
    again = _run("--quick", "--out", str(out), "--sft-history-images", "1", *weights)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads(again.stdout)["stages"] == stages
    assert time.perf_counter() - t0 < 120


def test_the_read_stage_runs_on_the_sft_data_and_the_main_sft_starts_from_it(
    tmp_path: Path,
) -> None:
    """With --read-steps the stage reads OUT/data's labelled screens and the main SFT starts
    from its checkpoint; without, from the random init."""
    from safetensors import safe_open

    from pixelpilot.errors import ConfigError
    from pixelpilot.train.recipe import (
        RecipeConfig,
        _mark,
        _sft,
        _start,
        stage_init,
        stage_length_synthetic,
        stage_read,
    )
    from pixelpilot.train.synthetic import write_synthetic

    root = tmp_path / "run"
    write_synthetic(root / "data" / "synthetic", 6, seed=0)
    off = RecipeConfig(out=str(root), progress=False)
    init = _mark(root / "init", stage_init(off, root / "init"))
    assert _start(root, off) == init["checkpoint"]
    on = RecipeConfig(out=str(root), read_steps=3, batch_size=2, progress=False)
    summary = stage_read(on, root / "data", init["checkpoint"], root / "read")
    assert summary["steps"] == 3 and summary["screens"] == 6
    assert _start(root, on) == str(root / "read" / "final") == summary["checkpoint"]
    assert (root / "read" / "final" / "model.safetensors").is_file()
    with pytest.raises(ConfigError, match="--read-steps must be >= 0"):
        RecipeConfig(out=str(root), read_steps=-1).validate()
    with pytest.raises(ConfigError, match="--word-weight keeps .* needs --read-steps > 0"):
        RecipeConfig(out=str(root), word_weight=1.0).validate()
    RecipeConfig(out=str(root), read_steps=3, word_weight=1.0).validate()
    assert (root / "read" / "word-head.safetensors").is_file()  # the word term's head
    with pytest.raises(ConfigError, match="--read-named chooses .* needs --read-steps > 0"):
        RecipeConfig(out=str(root), read_named=True).validate()
    for bad, why in (({"read_classes": "colour", "read_steps": 3}, "must be one of word, length"),
                     ({"read_classes": "length"}, "needs --read-steps > 0"),
                     ({"read_classes": "length", "read_steps": 3, "read_named": True},
                      "not --read-named")):  # fmt: skip
        with pytest.raises(ConfigError, match=why):
            RecipeConfig(out=str(root), **bad).validate()
    lengths = RecipeConfig(out=str(root), read_steps=2, batch_size=2, read_classes="length",
                           progress=False)  # fmt: skip
    made = stage_read(lengths, root / "data", init["checkpoint"], tmp_path / "lengths")
    assert made["class_kind"] == "length"  # the stage passes the kind to the warm-up
    for bad, why in (({"read_length_tasks": "miniwob/click-link"}, "needs --read-steps > 0"),
                     ({"read_length_tasks": "miniwob/nope", "read_steps": 3},
                      "miniwob/nope: not one of the recipe's tasks")):  # fmt: skip
        with pytest.raises(ConfigError, match=why):
            RecipeConfig(out=str(root), **bad).validate()
    second = RecipeConfig(out=str(root), read_steps=2, batch_size=2, progress=False,
                          read_length_tasks="synthetic/button")  # fmt: skip
    made = stage_read(second, root / "data", init["checkpoint"], tmp_path / "second")
    assert made["length_tasks"] == ["synthetic/button"] and made["length_screens"] >= 1
    assert (tmp_path / "second" / "length-head.safetensors").is_file()
    for bad, why in (
        ({"read_length_classes": "colour"}, "must be one of word, length, width"),
        ({"read_length_classes": "width"}, "needs --read-length-tasks"),
        ({"text_length_weight": -1.0}, "--text-length-weight must be a finite"),
    ):
        with pytest.raises(ConfigError, match=why):
            RecipeConfig(out=str(root), read_steps=3, **bad).validate()
    widths = RecipeConfig(out=str(root), read_steps=2, batch_size=2, progress=False,
                          read_length_tasks="synthetic/button",
                          read_length_classes="width")  # fmt: skip
    stage_read(widths, root / "data", init["checkpoint"], tmp_path / "widths")
    with safe_open(str(tmp_path / "widths" / "length-head.safetensors"), "pt") as f:
        assert f.metadata() == {"classes": "width", "tasks": "synthetic/button"}
    words = RecipeConfig(out=str(root), read_steps=2, batch_size=2, progress=False,
                         read_length_tasks="synthetic/button", read_length_classes="word",
                         text_length_weight=1.0)  # fmt: skip
    stage_read(words, root / "data", init["checkpoint"], tmp_path / "words" / "read")
    with safe_open(str(tmp_path / "words" / "read" / "length-head.safetensors"), "pt") as f:
        assert f.metadata() == {"classes": "word", "tasks": "synthetic/button"}
    # a word-class second head scores the text term through itself: SFT needs its file
    with pytest.raises(ConfigError, match="no length head at .*lonely/read/length-head"):
        _sft(words, root / "data", summary["checkpoint"], tmp_path / "lonely" / "sft", 2, 1e-3)
    with pytest.raises(ConfigError, match="--read-length-synthetic .* needs --read-length-tasks"):
        RecipeConfig(out=str(root), read_steps=3, read_length_synthetic=4).validate()
    with pytest.raises(ConfigError, match="--read-length-synthetic must be >= 0"):
        RecipeConfig(out=str(root), read_steps=3, read_length_synthetic=-1,
                     read_length_tasks="synthetic/button").validate()  # fmt: skip
    drawn = RecipeConfig(
        out=str(root),
        read_steps=2,
        batch_size=2,
        progress=False,
        read_length_tasks="synthetic/button",
        read_length_synthetic=4,
    )
    made = stage_length_synthetic(drawn, root / "length-synthetic-data")
    links = sorted((root / "length-synthetic-data").rglob("trajectory.jsonl"))
    assert made["screens"] == 4 == len(links)
    assert {p.parent.parent.name for p in links} == {"synthetic-link"}
    made = stage_read(drawn, root / "data", init["checkpoint"], tmp_path / "drawn")
    assert made["length_screens"] == 4 and made["length_tasks"] == ["synthetic/button"]
    named = tmp_path / "named"  # --read-named: the recordings' folder only, not the synthetic
    write_synthetic(named / "data" / "record", 3, seed=1, kinds=("button",))
    write_synthetic(named / "data" / "synthetic", 6, seed=0)
    config = RecipeConfig(out=str(named), read_steps=2, batch_size=2, read_named=True,
                          progress=False)  # fmt: skip
    figures = stage_read(config, named / "data", init["checkpoint"], named / "read")
    assert figures["screens"] == 3 and figures["classes"] >= 1
    other = tmp_path / "other"  # a warm-up folder without the head fails before SFT starts
    word = RecipeConfig(out=str(other), read_steps=3, word_weight=1.0, progress=False)
    with pytest.raises(ConfigError, match="no word head at .*word-head.safetensors"):
        _sft(word, root / "data", summary["checkpoint"], other / "sft", 2, 1e-3)
    assert not (other / "sft").exists()
    both = RecipeConfig(out=str(root), read_steps=3, word_weight=1.0, progress=False,
                        read_length_tasks="miniwob/click-link")  # fmt: skip
    lacking = "no length head at .*length-head.safetensors: .* given --read-length-tasks"
    with pytest.raises(ConfigError, match=lacking):
        _sft(both, root / "data", summary["checkpoint"], root / "sft-both", 2, 1e-3)
    assert not (root / "sft-both").exists()


def test_label_tasks_get_their_own_number_of_demonstrations(tmp_path: Path) -> None:
    from pixelpilot.train.recipe import LABEL_TASKS, RecipeConfig, stage_record

    tasks = ("miniwob/click-test", "miniwob/click-link")
    assert "miniwob/click-link" in LABEL_TASKS and "miniwob/click-test" not in LABEL_TASKS
    config = RecipeConfig(out=str(tmp_path), tasks=tasks, episodes=1, label_episodes=3, seed=2,
                          progress=False)  # fmt: skip
    figures = stage_record(config, tmp_path / "record")
    folders = {t: tmp_path / "record" / t.replace("/", "-") for t in tasks}
    seeds = {t: sorted(e.header["seed"] for e in iter_episodes(f)) for t, f in folders.items()}
    assert seeds == {"miniwob/click-test": [200_000],
                     "miniwob/click-link": [200_000, 200_001, 200_002]}  # fmt: skip
    assert figures["seeds"] == [200_000, 200_002]
    assert {t: f["episodes"] for t, f in figures["tasks"].items()} == {
        "miniwob/click-test": 1,
        "miniwob/click-link": 3,
    }
    # GRPO's own label episodes: the label tasks only, seeds of their own
    more = replace(config, grpo_label_episodes=2)
    figures = stage_record(more, tmp_path / "grpo-label", grpo_label=True)
    assert list(figures["tasks"]) == ["miniwob/click-link"]
    assert figures["seeds"] == [230_000, 230_001]
    found = sorted(e.header["seed"] for e in iter_episodes(tmp_path / "grpo-label"))
    assert found == [230_000, 230_001]


def test_length_episodes_record_more_of_the_length_tasks_past_their_own_seeds(
    tmp_path: Path,
) -> None:
    """``--length-episodes`` (round 47): the length tasks get more expert episodes at the
    seeds after their own recordings, beside them in the SFT data; the length head's folder
    holds every recording of those tasks; GRPO's prompts keep them out; the warm-up reads
    the head's screens from that folder. Bad combinations are refused in one line."""
    from pixelpilot.errors import ConfigError
    from pixelpilot.train.recipe import (
        RecipeConfig,
        grpo_prompts,
        stage_init,
        stage_length_record,
        stage_read,
        stage_record,
    )

    tasks = ("miniwob/click-test", "miniwob/click-link")
    config = RecipeConfig(out=str(tmp_path), tasks=tasks, episodes=1, label_episodes=2, seed=2,
                          read_steps=2, read_length_tasks="miniwob/click-link",
                          length_episodes=2, progress=False)  # fmt: skip
    config.validate()
    data = tmp_path / "data"
    stage_record(config, data / "record")
    figures = stage_length_record(config, data, tmp_path / "length-record-data")
    assert figures["tasks"]["miniwob/click-link"]["seeds"] == [200_002, 200_003]
    extra = sorted(e.header["seed"] for e in iter_episodes(data / "record-length"))
    assert extra == [200_002, 200_003]  # past the two recorded by the record stage
    head = sorted(e.header["seed"] for e in iter_episodes(tmp_path / "length-record-data"))
    assert head == [200_000, 200_001, 200_002, 200_003]  # the task's every recording
    prompts = grpo_prompts(config, data / "record", tmp_path / "grpo-data" / "record")
    assert sorted(e.header["seed"] for e in iter_episodes(prompts)) == [200_000, 200_000]
    again = stage_length_record(config, data, tmp_path / "length-record-data")  # done: kept
    assert again["tasks"] == figures["tasks"]
    init = stage_init(replace(config, size="xs"), tmp_path / "init")
    made = stage_read(replace(config, batch_size=2), data, init["checkpoint"], tmp_path / "read")
    assert made["length_screens"] == 4 and made["length_tasks"] == ["miniwob/click-link"]
    for bad, why in (({"read_length_tasks": ""}, "needs --read-length-tasks"),
                     ({"length_episodes": -1}, "--length-episodes must be >= 0"),
                     ({"read_length_synthetic": 4}, "choose one"),
                     ({"length_episodes": 30_000}, "must stay below 30000")):  # fmt: skip
        with pytest.raises(ConfigError, match=why):
            replace(config, **bad).validate()


def test_the_focus_stage_trains_on_the_length_tasks_before_the_main_sft(
    tmp_path: Path,
) -> None:
    """``--focus-steps`` (round 50): SFT on the length tasks' recordings alone, from the
    warm-up's checkpoint, at --focus-lr; the main SFT then starts from its checkpoint. The
    stages after the main SFT are marked done here, so the run stops after it."""
    from pixelpilot.errors import ConfigError
    from pixelpilot.train.recipe import RecipeConfig, _mark, run_recipe

    config = RecipeConfig(out=str(tmp_path), tasks=("miniwob/click-test", "miniwob/click-link"),
                          episodes=1, grpo_label_episodes=0, recovery=0, synthetic=2, typing=1,
                          size="xs", read_steps=2, read_length_tasks="miniwob/click-link",
                          length_episodes=1, focus_steps=2, focus_lr=3e-4, sft_steps=2,
                          batch_size=2, sft_procs=1, baselines=False,
                          progress=False)  # fmt: skip
    for later in ("eval-sft", "grpo", "eval-grpo"):  # the report reads an evaluation's seeds
        _mark(tmp_path / later, {"seeds": [1_000_000, 1_000_001], "tasks": {}})
    stages = run_recipe(config)["stages"]
    assert list(stages)[:6] == ["record", "synthetic", "length-record", "init", "read", "focus"]
    focus = json.loads((tmp_path / "focus" / "run.json").read_text())
    assert focus["data"] == str(tmp_path / "length-record-data")
    assert focus["model"] == str(tmp_path / "read" / "final")
    assert (focus["lr"], focus["max_steps"], stages["focus"]["steps"]) == (3e-4, 2, 2)
    seeds = sorted(e.header["seed"] for e in iter_episodes(tmp_path / "length-record-data"))
    assert seeds == [0, 1]  # click-link's recording and its length episode, nothing else
    main = json.loads((tmp_path / "sft" / "run.json").read_text())
    assert main["model"] == str(tmp_path / "focus" / "final") and main["data"] == str(
        tmp_path / "data"
    )
    for bad, why in (({"focus_steps": -1}, "--focus-steps must be >= 0"),
                     ({"length_episodes": 0}, "--focus-steps .* needs --length-episodes > 0"),
                     ({"focus_lr": 0.0}, "--focus-lr must be a finite number > 0"),
                     ({"focus_lr": float("nan")}, "--focus-lr must be")):  # fmt: skip
        with pytest.raises(ConfigError, match=why):
            replace(config, **bad).validate()


def test_grpo_prompts_keep_the_label_tasks_extra_demonstrations_out(tmp_path: Path) -> None:
    from pixelpilot.train.recipe import RecipeConfig, grpo_prompts, stage_record

    tasks = ("miniwob/click-test", "miniwob/click-link")
    config = RecipeConfig(out=str(tmp_path), tasks=tasks, episodes=1, label_episodes=3, seed=2,
                          progress=False)  # fmt: skip
    record = tmp_path / "record"
    stage_record(config, record)
    prompts = grpo_prompts(config, record, tmp_path / "grpo-data" / "record")
    seeds = {t: sorted(e.header["seed"] for e in iter_episodes(prompts / t.replace("/", "-")))
             for t in tasks}  # fmt: skip
    assert seeds == {"miniwob/click-test": [200_000], "miniwob/click-link": [200_000]}
    # hard links, not copies; and the recordings themselves are untouched
    shot = next((prompts / "miniwob-click-link").rglob("*.png"))
    assert shot.stat().st_nlink == 2
    assert len(list(iter_episodes(record / "miniwob-click-link"))) == 3
    # without extra label demonstrations GRPO reads the recordings themselves
    plain = RecipeConfig(out=str(tmp_path), tasks=tasks, episodes=3, progress=False)
    assert grpo_prompts(plain, record, tmp_path / "unused") == record
    assert not (tmp_path / "unused").exists()


def test_grpo_data_puts_the_recovery_episodes_beside_the_recordings(tmp_path: Path) -> None:
    from pixelpilot.train.recipe import RecipeConfig, grpo_data

    record, recovery = tmp_path / "record", tmp_path / "recovery"
    for folder, name in ((record, "step-0000.png"), (recovery, "step-0001.png")):
        (folder / "miniwob-click-test" / "seed-1").mkdir(parents=True)
        (folder / "miniwob-click-test" / "seed-1" / name).write_bytes(b"png")
    for plain in (RecipeConfig(out=str(tmp_path), episodes=1, grpo_recovery=False),
                  RecipeConfig(out=str(tmp_path), episodes=1, recovery=0)):  # fmt: skip
        assert grpo_data(plain, record, recovery, tmp_path / "unused") == record
        assert not (tmp_path / "unused").exists()
    both = RecipeConfig(out=str(tmp_path), episodes=1)  # the default, with recovery episodes
    out = grpo_data(both, record, recovery, tmp_path / "grpo-data")
    assert out == tmp_path / "grpo-data"
    links = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert links == ["record/miniwob-click-test/seed-1/step-0000.png",
                     "recovery/miniwob-click-test/seed-1/step-0001.png"]  # fmt: skip
    assert all(p.stat().st_nlink == 2 for p in out.rglob("*.png"))  # links, not copies
    assert grpo_data(both, record, recovery, out) == out  # a rerun rebuilds the same links
    assert all(p.stat().st_nlink == 2 for p in out.rglob("*.png"))
    # GRPO's own label episodes join the prompts, with or without the recovery episodes
    label = tmp_path / "grpo-label"
    (label / "miniwob-click-link" / "seed-30000").mkdir(parents=True)
    (label / "miniwob-click-link" / "seed-30000" / "step-0000.png").write_bytes(b"png")
    for config, expect in (
        (replace(both, grpo_label_episodes=1), {"record", "recovery", "label"}),
        (replace(both, grpo_label_episodes=1, recovery=0), {"record", "label"}),
    ):
        out = grpo_data(config, record, recovery, tmp_path / "grpo-data-2", label)
        assert {p.relative_to(out).parts[0] for p in out.rglob("*.png")} == expect
    none = replace(both, grpo_label_episodes=0)
    assert grpo_data(none, record, recovery, tmp_path / "grpo-data-3", label) == tmp_path / (
        "grpo-data-3"
    )  # with --grpo-label-episodes 0 the folder is not read
    assert not (tmp_path / "grpo-data-3" / "label").exists()


def test_the_half_row_term_is_declared_with_the_recipes_aids(tmp_path: Path) -> None:
    """``--half-weight`` (round 49): the evaluated checkpoints declare half rows beside the
    pointer weight, so the guide reads the column SFT taught; without it, whole cells."""
    from pixelpilot.errors import ConfigError
    from pixelpilot.train.recipe import RecipeConfig, _declare_aids
    from pixelpilot.vlm.profiles import Declaration, write_declaration

    write_declaration(tmp_path, Declaration("grounding", "English", False))
    _declare_aids(RecipeConfig(out=str(tmp_path / "run"), half_weight=1.0), str(tmp_path))
    declared = read_declaration(tmp_path)
    assert declared.pointer_rows == 2 and declared.pointer_weight == 1.0
    assert declared.prompt_kind == "grounding"  # what training declared stays
    _declare_aids(RecipeConfig(out=str(tmp_path / "run")), str(tmp_path))
    assert read_declaration(tmp_path).pointer_rows == 1
    with pytest.raises(ConfigError, match="--half-weight must be a finite"):
        RecipeConfig(out=str(tmp_path / "run"), half_weight=-1.0).validate()


def test_the_read_guide_is_declared_with_the_warm_ups_heads(tmp_path: Path) -> None:
    """``--read-guide`` (round 52): the evaluated checkpoints get copies of the warm-up's heads
    that name words or lengths, and declare them with the weight; a width head is left out."""
    import torch
    from safetensors.torch import save_file

    from pixelpilot.errors import ConfigError
    from pixelpilot.train.recipe import RecipeConfig, _declare_aids
    from pixelpilot.vlm.profiles import Declaration, write_declaration

    run = tmp_path / "run"
    (run / "read").mkdir(parents=True)
    head = {"weight": torch.zeros(4, 8), "bias": torch.zeros(4)}
    save_file(head, str(run / "read" / "word-head.safetensors"), metadata={"classes": "word"})
    save_file(head, str(run / "read" / "length-head.safetensors"), metadata={"classes": "width"})
    checkpoint = tmp_path / "final"
    checkpoint.mkdir()
    write_declaration(checkpoint, Declaration("grounding", "English", False))
    config = RecipeConfig(out=str(run), read_steps=10, read_guide=2.0)
    config.validate()
    _declare_aids(config, str(checkpoint))
    declared = read_declaration(checkpoint)
    assert declared.read_heads == ("word-head.safetensors",) and declared.read_weight == 2.0
    assert (checkpoint / "word-head.safetensors").read_bytes() == (
        run / "read" / "word-head.safetensors"
    ).read_bytes()
    assert not (checkpoint / "length-head.safetensors").exists()
    _declare_aids(RecipeConfig(out=str(run)), str(checkpoint))  # off: nothing declared
    assert read_declaration(checkpoint).read_weight == 0.0
    for bad, why in (({"read_guide": -1.0}, "--read-guide must be a finite"),
                     ({"read_steps": 0}, "--read-guide .* needs --read-steps > 0"),
                     ({"pointer_weight": 0.0}, "needs --read-steps > 0 and --pointer-weight"),
                     ({"read_classes": "width", "read_named": False},
                      "--read-guide reads word or length classes")):  # fmt: skip
        with pytest.raises(ConfigError, match=why):
            replace(config, **bad).validate()


def test_read_fit_fits_the_guides_word_head_on_the_checkpoint(tmp_path: Path) -> None:
    """``--read-fit`` (round 53): the evaluated checkpoint gets a head fitted on its own
    embeddings of OUT/length-record-data in the length head's place, declared beside the
    warm-up's word head."""
    import shutil

    import torch
    from safetensors.torch import save_file

    from pixelpilot.errors import ConfigError
    from pixelpilot.train.read_fit import FIT_HEAD_FILE
    from pixelpilot.train.recipe import RecipeConfig, _declare_aids
    from pixelpilot.train.synthetic import write_synthetic
    from pixelpilot.vlm.read_guide import ReadHead
    from pixelpilot.vlm.tiny import build_tiny

    run = tmp_path / "run"
    (run / "read").mkdir(parents=True)
    head = {"weight": torch.zeros(4, 8), "bias": torch.zeros(4)}
    save_file(head, str(run / "read" / "word-head.safetensors"), metadata={"classes": "word"})
    save_file(head, str(run / "read" / "length-head.safetensors"), metadata={"classes": "length"})
    shutil.copytree(write_synthetic(tmp_path / "syn", 4, seed=0, kinds=("link",)),
                    run / "length-record-data")  # fmt: skip
    checkpoint = build_tiny(tmp_path / "final", arch="kimi_k25", size="xs-14", cache=False)
    config = RecipeConfig(out=str(run), read_steps=10, read_guide=2.0, read_fit=True,
                          length_episodes=4, read_length_tasks="miniwob/click-link",
                          progress=False)  # fmt: skip
    config.validate()
    _declare_aids(config, str(checkpoint))
    declared = read_declaration(checkpoint)
    assert declared.read_heads == ("word-head.safetensors", FIT_HEAD_FILE)
    assert not (checkpoint / "length-head.safetensors").exists()
    fitted = ReadHead(checkpoint / FIT_HEAD_FILE)
    assert fitted.span == 2 and fitted.inner is not None and fitted.words
    for bad in ({"read_guide": 0.0}, {"length_episodes": 0, "focus_steps": 0}):
        with pytest.raises(ConfigError, match="--read-fit .* needs --read-guide > 0 and "
                                              "--length-episodes > 0"):  # fmt: skip
            replace(config, **bad).validate()


def test_read_fit_reuses_the_head_of_a_checkpoint_with_the_same_image_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round 54: a final checkpoint whose tensors outside the decoder equal those of one that
    has its fitted head (GRPO with the vision tower and projector frozen) gets a copy of that
    head, not a second fit; a changed vision tensor means a fit of its own."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    import pixelpilot.train.read_fit as read_fit
    from pixelpilot.train.recipe import RecipeConfig, _declare_aids
    from pixelpilot.train.synthetic import write_synthetic
    from pixelpilot.vlm.tiny import build_tiny

    run = tmp_path / "run"
    (run / "read").mkdir(parents=True)
    head = {"weight": torch.zeros(4, 8), "bias": torch.zeros(4)}
    save_file(head, str(run / "read" / "word-head.safetensors"), metadata={"classes": "word"})
    shutil.copytree(write_synthetic(tmp_path / "syn", 4, seed=0, kinds=("link",)),
                    run / "length-record-data")  # fmt: skip
    sft = build_tiny(run / "sft-recovery" / "final", arch="kimi_k25", size="xs-14", cache=False)
    config = RecipeConfig(out=str(run), read_steps=10, read_guide=2.0, read_fit=True,
                          length_episodes=4, read_length_tasks="miniwob/click-link",
                          progress=False)  # fmt: skip
    fits = []
    real_fit = read_fit.fit_read_head
    monkeypatch.setattr(read_fit, "fit_read_head",
                        lambda checkpoint, *a, **k: fits.append(checkpoint)
                        or real_fit(checkpoint, *a, **k))  # fmt: skip
    _declare_aids(config, str(sft))
    assert fits == [str(sft)]

    def copy_with(name: str, change: str) -> Path:
        folder = shutil.copytree(sft, run / name / "final")
        (folder / read_fit.FIT_HEAD_FILE).unlink()
        weights = load_file(str(folder / "model.safetensors"))
        key = next(k for k in sorted(weights) if change in k)
        weights[key] = weights[key] + 1.0
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
        return folder

    grpo = copy_with("grpo", "language_model")
    _declare_aids(config, str(grpo))
    assert fits == [str(sft)]  # the decoder alone changed: no second fit
    head = (grpo / read_fit.FIT_HEAD_FILE).read_bytes()
    assert head == (sft / read_fit.FIT_HEAD_FILE).read_bytes()
    assert read_declaration(grpo).read_heads == ("word-head.safetensors", read_fit.FIT_HEAD_FILE)
    other = copy_with("other", "vision_tower")
    _declare_aids(config, str(other))
    assert fits == [str(sft), str(other)]

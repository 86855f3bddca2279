"""Run folders: resumable checkpoints and the final, ordinary model checkpoint.

``OUT/`` holds ``run.json`` (the config; marks the folder as a run), ``metrics.jsonl`` (one line
per step), ``checkpoints/step-NNNNNN/`` (the trainable weights, optimizer, scheduler, every
rank's RNG state and the trainer's position; ``checkpoints/latest`` names the newest) and
``final/`` (an ordinary checkpoint folder that ``pixelpilot.vlm.load`` and ``--model`` take).
A checkpoint is written to a temporary folder and renamed, so a crash never leaves half of one.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

from pixelpilot.errors import ConfigError

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
CKPT_DIR = "checkpoints"
FINAL_DIR = "final"
# fields that may change when a run is resumed (how long, how often, how it shows, where
# online rollouts run: the rollouts are the same either way)
RESUMABLE_CHANGES = frozenset(
    {"max_steps", "epochs", "eval_every", "checkpoint_every", "progress", "resume", "overwrite",
     "cache", "cache_memory_mib", "device", "max_bad_steps", "rollout_workers",
     "rollout_backend"}
)  # fmt: skip
WEIGHT_FILES = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


def prepare_out(out: Path, config: dict[str, Any], resume: bool, overwrite: bool) -> Path | None:
    """Check and set up the run folder; returns the checkpoint to resume from (or None).

    A folder that holds a run is refused unless ``resume`` (continue from its latest
    checkpoint; the config must match) or ``overwrite`` (its run files are removed; nothing
    else in the folder is touched)."""
    used = (out / RUN_FILE).exists() or (out / CKPT_DIR).exists()
    if resume:
        latest = latest_checkpoint(out)
        if latest is None:
            raise ConfigError(f"--resume: no checkpoint to resume in {out}", option="resume")
        saved = json.loads((out / RUN_FILE).read_text())
        saved.setdefault("zero_stage", 0)  # a run from before --zero-stage existed ran without
        changed = sorted(
            k for k in set(saved) | set(config)
            if k not in RESUMABLE_CHANGES and saved.get(k) != config.get(k)
        )  # fmt: skip
        if changed:
            raise ConfigError(
                f"--resume: the run in {out} used other settings for {', '.join(changed)}",
                option="resume",
            )
        return latest
    if used and not overwrite:
        raise ConfigError(
            f"{out} already holds a training run; pass --resume to continue it or --overwrite "
            "to start over",
            option="out",
        )
    if used:
        for name in (CKPT_DIR, FINAL_DIR):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in (RUN_FILE, METRICS_FILE):
            (out / name).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return None


def latest_checkpoint(out: Path) -> Path | None:
    pointer = out / CKPT_DIR / "latest"
    if not pointer.is_file():
        return None
    path = out / CKPT_DIR / pointer.read_text().strip()
    return path if (path / "state.json").is_file() else None


def rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def trainable_state(model: Any) -> dict[str, Any]:
    """The parameters that train (all of them, or a LoRA adapter's), on the CPU."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    out: Path, step: int, model: Any, optimizer: Any, scheduler: Any, rngs: list[Any],
    state: dict[str, Any],
) -> Path:  # fmt: skip
    """Write ``checkpoints/step-NNNNNN`` (rank 0 only) and point ``latest`` at it.
    ``optimizer``: the optimizer, or its whole ``state_dict`` (gathered from sharded ranks)."""
    import torch

    root = out / CKPT_DIR
    name = f"step-{step:06d}"
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(trainable_state(model), tmp / "trainable.pt")
    torch.save(
        {
            "optimizer": optimizer if isinstance(optimizer, dict) else optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rngs,
        },
        tmp / "optimizer.pt",
    )
    (tmp / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    (root / "latest.tmp").write_text(name + "\n")
    (root / "latest.tmp").replace(root / "latest")
    return final


def load_weights(path: Path, model: Any) -> None:
    """Copy a checkpoint's trained weights (``trainable.pt``) into ``model``."""
    import torch

    weights = torch.load(path / "trainable.pt", weights_only=True)
    params = dict(model.named_parameters())
    missing = [n for n in weights if n not in params]
    if missing:
        raise ConfigError(f"{path}: checkpoint does not fit the model ({missing[0]} ...)")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value.to(params[name].device))


def load_checkpoint(path: Path, model: Any, optimizer: Any, scheduler: Any) -> tuple[dict, list]:
    """Restore weights, optimizer and scheduler; returns (trainer state, per-rank RNG states)."""
    import torch

    load_weights(path, model)
    saved = torch.load(path / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    return json.loads((path / "state.json").read_text()), saved["rng"]


def export_model(vlm: Any, out: Path, merge: bool = True, aids: bool = False) -> Path:
    """Write ``OUT/final``: the source checkpoint's processor, tokenizer, chat template and
    code files, with the trained weights (a LoRA adapter merged in when ``merge``; else the
    adapter alone, in PEFT's format), and the prompt kind it was trained with declared in
    ``pixelpilot.json`` (``pixelpilot.vlm.profiles.declare_profile``). ``aids``: the run
    sampled and scored under the decoding aids the source declares (GRPO's
    ``--decoding-aids``), so the export declares them too and decodes as it was trained;
    otherwise it declares none (training scored the model's own answers)."""
    from pixelpilot.vlm.profiles import declare_profile, read_declaration

    source = Path(vlm.path)
    final = out / FINAL_DIR
    tmp = out / f".{FINAL_DIR}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in source.iterdir():
        if f.is_file() and not any(f.match(p) for p in WEIGHT_FILES):
            shutil.copy2(f, tmp / f.name)
    model = vlm.model
    if hasattr(model, "merge_and_unload") and merge:
        model = model.merge_and_unload()
        vlm.model = model
    model.save_pretrained(tmp)
    declare_profile(tmp, vlm.profile, read_declaration(source) if aids else None)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final

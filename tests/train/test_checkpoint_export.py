"""scripts/checkpoint-export: a training checkpoint written out as a folder that decodes as
its base does (its weights, and the base's declared decoding aids)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "checkpoint-export"


def test_a_step_is_exported_with_its_weights_and_the_base_aids(tmp_path: Path) -> None:
    import torch

    from pixelpilot.train.checkpoint import trainable_state
    from pixelpilot.vlm import load
    from pixelpilot.vlm.profiles import Declaration, read_declaration, write_declaration
    from pixelpilot.vlm.tiny import build_tiny

    base = build_tiny(tmp_path / "base", arch="kimi_k25", size="xs", seed=0)
    aids = Declaration(pointer_weight=1.0, well_formed_points=True, quoted_typing=True,
                       well_formed_actions=True)  # fmt: skip
    write_declaration(base, read_declaration(base).with_aids(aids))
    weights = trainable_state(load(str(base)).model)
    name = next(n for n in sorted(weights) if "language_model" in n)
    weights[name] += 1.0  # the step's weights differ from the base's
    step = tmp_path / "run" / "checkpoints" / "step-000002"
    step.mkdir(parents=True)
    torch.save(weights, step / "trainable.pt")
    done = subprocess.run([sys.executable, str(SCRIPT), str(base), str(step), str(tmp_path / "x")],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    final = tmp_path / "x" / "final"
    assert done.stdout.strip().endswith(str(final))
    declared = read_declaration(final)
    assert declared.pointer_weight == 1.0 and declared.well_formed_points is True
    assert declared.quoted_typing is True and declared.well_formed_actions is True
    exported = dict(load(str(final)).model.named_parameters())
    assert torch.equal(exported[name].detach(), weights[name])
    args = [sys.executable, str(SCRIPT), str(base), str(tmp_path), str(tmp_path / "y")]
    bad = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "no trainable.pt" in bad.stderr

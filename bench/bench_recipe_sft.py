"""The default recipe's SFT step, phase by phase, on a recipe folder's own data.

Runs STEPS steps of the `sft` stage's objective (the answer loss with the pointing, copy and
look terms, with the checkout's own `RecipeConfig` defaults: learning rate, seed, global
batch in its processes of one thread) from RUN/init/model on RUN/data, then prints each
phase's mean over the steps after the first 50 (prepare, forward, backward, optimizer: the
optimizer phase holds the gradient all-reduce and so the wait for the slower process), the
steps a second, and the seconds outside the steps (start-up: imports, loading and checking
the data, export).

Usage: .venv/bin/python bench/bench_recipe_sft.py RUN [--steps 400] [--history-images N] [--json]

`--history-images N` shows N screenshots a prompt (`train sft --history-images`; default: what
RUN/init/model declares, 5 for kimi_k25): every step after an episode's first pays for its
earlier screenshots, and the longest prompt of a process sets its padded batch.

To tell a slower machine from slower code, run it twice on one machine, once with
PYTHONPATH=OTHER_CHECKOUT/src: it calls only what the recipe's SFT stage has called since
round 9 of docs/default-model.md (`RecipeConfig`, `SFTConfig`, `launch_pointing_sft`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a train-default folder with data/ and init/model")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--history-images", type=int, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    run = Path(args.run)
    model = run / "init" / "model"
    if not (run / "data").is_dir() or not model.is_dir():
        print(f"error: {run} has no data/ or init/model (run scripts/train-default first)",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.steps <= 50:
        print("error: --steps must be above 50 (the first 50 are not counted)", file=sys.stderr)
        return 2

    import pixelpilot
    from pixelpilot.train.config import SFTConfig
    from pixelpilot.train.pointing import launch_pointing_sft
    from pixelpilot.train.recipe import RecipeConfig

    with tempfile.TemporaryDirectory(prefix="bench-recipe-sft-") as tmp:
        out = Path(tmp) / "sft"
        recipe = RecipeConfig(out=tmp)
        config = SFTConfig(
            data=str(run / "data"), model=str(model), out=str(out), max_steps=args.steps,
            batch_size=recipe.batch_size // recipe.sft_procs, lr=recipe.lr,
            warmup_steps=args.steps // 20, min_lr_ratio=0.1, seed=recipe.seed,
            prompt_kind=recipe.prompt_kind, history_thoughts=recipe.thought,
            history_images=args.history_images,
            checkpoint_every=10 * args.steps, progress=False,
        )  # fmt: skip
        t0 = time.perf_counter()
        launch_pointing_sft(config, recipe.sft_procs, sigma=recipe.sigma, thought=recipe.thought,
                            weight=recipe.point_weight, copy_weight=recipe.copy_weight,
                            look_weight=recipe.look_weight)  # fmt: skip
        wall = time.perf_counter() - t0
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    counted = [r for r in rows if r["step"] > 50]
    phases = {k: 1000 * statistics.mean(r["seconds"][k] for r in counted)
              for k in counted[0]["seconds"]}  # fmt: skip
    in_steps = sum(sum(r["seconds"].values()) for r in rows)
    result = {
        "pixelpilot": str(Path(pixelpilot.__file__).parent),
        "steps": args.steps, "procs": recipe.sft_procs, "history_images": args.history_images,
        "ms_per_step": round(sum(phases.values()), 1),
        "phases_ms": {k: round(v, 1) for k, v in phases.items()},
        "steps_per_second": round(1000 / sum(phases.values()), 2),
        "startup_seconds": round(wall - in_steps, 1), "wall_seconds": round(wall, 1),
    }  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        cells = ", ".join(f"{k} {v}" for k, v in result["phases_ms"].items())
        print(f"{result['pixelpilot']}: {result['ms_per_step']} ms a step ({cells}), "
              f"{result['steps_per_second']} steps/s; start-up and export "
              f"{result['startup_seconds']} s of {result['wall_seconds']} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

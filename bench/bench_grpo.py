"""GRPO optimizer-step speed and peak memory: pixelpilot's shared-prefix groups vs TRL's
``GRPOTrainer``, on the same model, prompts, rewards and loss settings.

The tiny Qwen2.5-VL ``xs`` checkpoint (hidden 128, 2 layers, vision depth 2), 8 prompts x G = 4
answers of 16 new tokens at temperature 1, the UI-TARS computer prompt with one 160x210
screenshot (or five: a history window), ``loss_type=grpo``, ``scale_rewards=group``, beta 0
and 0.04, AdamW, one optimizer step per generated batch, one torch thread. Each measurement
runs in a fresh process (peak memory is that process's maximum resident set size), warms up
for ``--warmup`` steps, then times ``--steps`` steps.

Ours is the code ``pixelpilot train grpo`` runs: prompts encoded once and cached, G answers
sampled from one prefill of each prompt (``train.prefix.sample_groups``), their
log-probabilities with gradients in one pass over each prompt (``train.prefix.group_logprobs``),
``train.grpo_loss``. TRL (the version installed in the ``bench`` extra) processes the images
and runs the vision encoder and the full prompt for each of the G answers, in generation, in
the reference pass and in the training pass.

    .venv/bin/python bench/bench_grpo.py [--steps 5] [--warmup 2] [--no-write]
    .venv/bin/python bench/bench_grpo.py --curve RUN_DIR   # plot a run's reward curve
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

START_MARK, END_MARK = "<!-- bench_grpo:start -->", "<!-- bench_grpo:end -->"
PROMPTS, GROUP, NEW_TOKENS, LR = 8, 4, 16, 1e-5
COLORS = ["white", "red", "green", "blue", "gray", "navy", "teal", "olive"]


def screenshot(i: int, k: int) -> Any:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (160, 210), COLORS[(i + k) % len(COLORS)])
    ImageDraw.Draw(im).rectangle((20 + 10 * k, 30 + 5 * i, 90, 60 + 5 * i), fill="black")
    return im


def prompt_text(i: int) -> str:
    from pixelpilot.agent.prompts import template_for

    task = f"Click the {COLORS[i]} button, then type hello {i}."
    return template_for("uitars-1.5", "computer", "English").render(task)


def reward(texts: list[str]) -> list[float]:
    """The same cheap, deterministic reward for both (it only has to vary within a group)."""
    return [(len(t) % 5) / 4 for t in texts]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- ours -----------------------------------------------------------------------------------


def run_ours(model_dir: str, beta: float, history: int, steps: int, warmup: int) -> dict:
    import torch

    from pixelpilot.train.grpo_loss import LossSettings, group_advantages, grpo_loss
    from pixelpilot.train.prefix import (
        collate_prompts,
        group_logprobs,
        media_token_ids,
        sample_groups,
    )
    from pixelpilot.vlm import Conversation
    from pixelpilot.vlm.hf import HFVLM

    vlm = HFVLM(model_dir)
    model = vlm.model.train()
    ref = HFVLM(model_dir).model.eval().requires_grad_(False) if beta > 0 else None
    opt = torch.optim.AdamW(model.parameters(), lr=LR)
    settings = LossSettings(beta=beta, loss_type="grpo", max_new_tokens=NEW_TOKENS)
    pad = vlm.tokenizer.pad_token_id or 0
    t0 = time.perf_counter()
    convs = [Conversation.user(prompt_text(i), [screenshot(i, k) for k in range(history)])
             for i in range(PROMPTS)]  # fmt: skip
    cache = [vlm.encode_prompt(c) for c in convs]  # once per sample, as the trainer caches
    encode = time.perf_counter() - t0
    times: list[dict[str, float]] = []
    for step in range(warmup + steps):
        ph: dict[str, float] = {}
        cpu = time.process_time()
        t = time.perf_counter()
        inputs = collate_prompts(cache, pad, vlm.device)
        model.eval()
        groups = sample_groups(
            model, inputs, GROUP, max_new_tokens=NEW_TOKENS, eos_ids=vlm._eos_ids(),
            pad_id=pad, seed=step, banned_ids=media_token_ids(model.config),
            decode=lambda ids: vlm.tokenizer.decode(ids, skip_special_tokens=True),
        )  # fmt: skip
        model.train()
        ph["generate"] = time.perf_counter() - t
        t = time.perf_counter()
        answers = [[list(a.token_ids) for a in g] for g in groups]
        rewards = torch.tensor(reward([a.text for g in groups for a in g]))
        adv = group_advantages(rewards, [GROUP] * PROMPTS).values
        ph["score"] = time.perf_counter() - t
        t = time.perf_counter()
        ref_lp = group_logprobs(ref, inputs, answers, pad_id=pad).logprobs if ref else None
        ph["reference"] = time.perf_counter() - t
        t = time.perf_counter()
        scored = group_logprobs(model, inputs, answers, grad=True, pad_id=pad)
        out = grpo_loss(scored.logprobs, None, adv, scored.mask, settings, ref_logprobs=ref_lp)
        ph["forward"] = time.perf_counter() - t
        t = time.perf_counter()
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        ph["backward+optimizer"] = time.perf_counter() - t
        ph["step"] = sum(ph.values())
        ph["cpu"] = time.process_time() - cpu
        times.append(ph)
    return summarise(times[warmup:], {"encode_once": encode})


# --- TRL ------------------------------------------------------------------------------------


def run_trl(model_dir: str, beta: float, history: int, steps: int, warmup: int) -> dict:
    import tempfile

    import torch
    import trl
    from datasets import Dataset
    from transformers import Qwen2_5_VLForConditionalGeneration, TrainerCallback

    from pixelpilot.vlm.processors import load_processor

    processor = load_processor(Path(model_dir))
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
    rows = [{
        "prompt": [{"role": "user", "content": [*({"type": "image"} for _ in range(history)),
                                               {"type": "text", "text": prompt_text(i)}]}],
        "images": [screenshot(i, k) for k in range(history)],
    } for i in range(PROMPTS)]  # fmt: skip
    args = trl.GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="bench-grpo-trl-"),
        per_device_train_batch_size=PROMPTS * GROUP,
        num_generations=GROUP, max_completion_length=NEW_TOKENS, beta=beta, loss_type="grpo",
        scale_rewards="group", learning_rate=LR, max_steps=warmup + steps, use_cpu=True,
        bf16=False, report_to=[], save_strategy="no", logging_steps=1, seed=0,
        temperature=1.0, dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    phases: dict[str, float] = {}
    times: list[dict[str, float]] = []

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                phases[name] = phases.get(name, 0.0) + time.perf_counter() - t

        return wrapper

    class Clock(TrainerCallback):
        def on_step_begin(self, *a: Any, **kw: Any) -> None:
            phases.clear()
            phases["_t0"], phases["_cpu"] = time.perf_counter(), time.process_time()

        def on_step_end(self, *a: Any, **kw: Any) -> None:
            total = time.perf_counter() - phases.pop("_t0")
            cpu = time.process_time() - phases.pop("_cpu")
            gen_score = phases.get("generate+score+reference", 0.0)
            forward = phases.get("forward", 0.0)
            times.append({**phases, "backward+optimizer": total - gen_score - forward,
                          "step": total, "cpu": cpu})  # fmt: skip

    trainer = trl.GRPOTrainer(
        model=model, reward_funcs=lambda completions, **kw: reward(
            [c if isinstance(c, str) else c[-1]["content"] for c in completions]),
        args=args, train_dataset=Dataset.from_list(rows), processing_class=processor,
        callbacks=[Clock()],
    )  # fmt: skip
    cls = type(trainer)
    for attr, name in (("_generate_and_score_completions", "generate+score+reference"),
                       ("_generate", "generate"), ("compute_loss", "forward")):  # fmt: skip
        setattr(trainer, attr, timed(name, getattr(cls, attr).__get__(trainer)))
    trainer.train()
    return summarise(times[warmup:], {"trl": trl.__version__})


# --- driver ---------------------------------------------------------------------------------


def summarise(times: list[dict[str, float]], extra: dict[str, Any]) -> dict:
    keys = sorted({k for t in times for k in t})
    mean = {k: sum(t.get(k, 0.0) for t in times) / len(times) for k in keys}
    step, cpu = mean.pop("step"), mean.pop("cpu")
    return {"seconds_per_step": step, "cpu_per_step": cpu, "phases": mean, "peak_mb": peak_mb(),
            **extra}  # fmt: skip


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    run = run_ours if args.impl == "ours" else run_trl
    result = run(args.model, args.beta, args.history, args.steps, args.warmup)
    print(json.dumps(result))


def measure(impl: str, model: str, beta: float, history: int, steps: int, warmup: int) -> dict:
    cmd = [sys.executable, __file__, "--child", impl, "--model", model, "--beta", str(beta),
           "--history", str(history), "--steps", str(steps), "--warmup", str(warmup)]  # fmt: skip
    load = os.getloadavg()[0]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{impl} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {**result, "load_before": load, "load_after": os.getloadavg()[0]}


def table(results: list[tuple[int, float, dict, dict]]) -> list[str]:
    lines = ["| screenshots | beta | TRL s/step | ours s/step | speed-up | TRL CPU s/step | "
             "ours CPU s/step | CPU speed-up | TRL peak MB | ours peak MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for history, beta, t, o in results:
        wall = t["seconds_per_step"] / o["seconds_per_step"]
        cpu = t["cpu_per_step"] / o["cpu_per_step"]
        lines.append(f"| {history} | {beta} | {t['seconds_per_step']:.2f} | "
                     f"{o['seconds_per_step']:.2f} | {wall:.1f}x | {t['cpu_per_step']:.2f} | "
                     f"{o['cpu_per_step']:.2f} | {cpu:.1f}x | {t['peak_mb']:.0f} | "
                     f"{o['peak_mb']:.0f} |")  # fmt: skip
    return lines


def reading(results: list[tuple[int, float, dict, dict]]) -> list[str]:
    """What the table says, in two sentences computed from it."""
    cpu = [t["cpu_per_step"] / o["cpu_per_step"] for _, _, t, o in results]
    mem = [1 - o["peak_mb"] / t["peak_mb"] for _, _, t, o in results]
    return ["", f"Ours takes {min(cpu):.1f}x to {max(cpu):.1f}x fewer CPU seconds per optimizer "
            f"step than TRL and {min(mem):.0%} to {max(mem):.0%} less peak memory (target: at most "
            "half the time, no more memory). With one torch thread per run, CPU seconds measure "
            "the work done; the wall-clock columns also hold the time the run waited for a core "
            "on the shared machine, which is why they swing with the load average. TRL's "
            "`generate` is part of its `generate+score+reference` (its image preparation, "
            "generation, rewards and reference pass); `backward+optimizer` is the rest of its "
            "step outside `compute_loss` (`forward`)."]  # fmt: skip


def phase_lines(results: list[tuple[int, float, dict, dict]]) -> list[str]:
    lines = ["", "Seconds per step by phase (mean of the timed steps):", ""]
    for history, beta, trl_r, ours in results:
        for name, r in (("TRL", trl_r), ("ours", ours)):
            parts = ", ".join(f"{k} {v:.3f}" for k, v in r["phases"].items())
            lines.append(f"- {history} screenshot(s), beta {beta}, {name}: {parts}; load average "
                         f"{r['load_before']:.1f} -> {r['load_after']:.1f}")  # fmt: skip
    return lines


CURVE = Path(__file__).resolve().parents[1] / "docs" / "images" / "grpo-curve.png"


def plot_curve(run: Path, png: Path = CURVE) -> Path:
    """The reward and success rate per step of a ``train grpo`` run (``RUN/metrics.jsonl``),
    with a 5-step moving average, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "reward_mean" in r]
    steps = [r["step"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.4), dpi=120)
    for key, color in (("reward_mean", "tab:blue"), ("success_rate", "tab:green")):
        values = [r[key] for r in rows]
        smooth = [sum(values[max(0, i - 4) : i + 1]) / len(values[max(0, i - 4) : i + 1])
                  for i in range(len(values))]  # fmt: skip
        ax.plot(steps, values, ".", color=color, alpha=0.35)
        ax.plot(steps, smooth, "-", color=color, label=f"{key} (5-step mean)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("sampled answers")
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("GRPO on MiniWoB click experts, tiny Qwen2.5-VL xs", fontsize=9)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png)
    return png


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--curve", type=Path, help="Plot this run's reward curve and stop.")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--no-write", action="store_true")
    p.add_argument("--child", choices=("ours", "trl"))
    p.add_argument("--model")
    p.add_argument("--beta", type=float, default=0.0)
    p.add_argument("--history", type=int, default=1)
    args = p.parse_args()
    if args.curve:
        print(plot_curve(args.curve))
        return None
    if args.child:
        args.impl = args.child
        return child(args)
    from pixelpilot.vlm.tiny import build_tiny, count_parameters

    model = str(build_tiny(None, "qwen2_5_vl", "xs", 0))
    results = []
    for history in (1, 5):
        for beta in (0.0, 0.04):
            trl_r = measure("trl", model, beta, history, args.steps, args.warmup)
            ours = measure("ours", model, beta, history, args.steps, args.warmup)
            results.append((history, beta, trl_r, ours))
            print(json.dumps({"history": history, "beta": beta, "trl": trl_r, "ours": ours}))
    lines = table(results) + reading(results) + phase_lines(results)
    print("\n".join(lines))
    if not args.no_write:
        write(lines, count_parameters(model), results[0][2].get("trl", "?"), args)


def write(lines: list[str], params: int, trl_version: str, args: argparse.Namespace) -> None:
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from benchdoc import write_section

    section = "\n".join([
        START_MARK, "## GRPO step: shared-prefix groups vs TRL (`bench/bench_grpo.py`)", "",
        f"Tiny Qwen2.5-VL xs ({params / 1e6:.2f}M parameters), {PROMPTS} prompts x G = {GROUP} "
        f"answers of {NEW_TOKENS} new tokens, 160x210 screenshots, loss grpo, AdamW, one torch "
        f"thread, {args.steps} timed steps after {args.warmup} warm-up steps, each run in its own "
        f"process (peak = its maximum resident set size). TRL {trl_version}, torch "
        f"{torch.__version__}, {platform.machine()} with {os.cpu_count()} cores, "
        f"{dt.date.today().isoformat()}. The machine was shared with other jobs: the load "
        "average is given per run.", "",
        f"    .venv/bin/python bench/bench_grpo.py --steps {args.steps} --warmup {args.warmup}",
        "", *lines, END_MARK,
    ])  # fmt: skip
    write_section(section, START_MARK, END_MARK)


if __name__ == "__main__":
    main()

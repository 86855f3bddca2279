"""The decoder's attention on a left-padded batch: sdpa over the padded square with its mask
against ``pixelpilot.vlm.attention.unpadded_attention`` (each row's real tokens, ``is_causal``).

One torch thread; a batch of 4 rows of 4 heads x 32 dims (the ``xs-14`` decoder's shape) whose
real lengths are ``--lengths`` (default: what the recipe's SFT batches hold, 560 to 1,000
tokens), padded on the left to the longest; the mask is transformers' ``sdpa_mask`` for it.
Forward and backward, the median of ``--repeats`` after one warm-up, for: sdpa with the mask,
``unpadded_attention``, and ``causal_left_padded`` alone (the fast path's check of the mask).

    .venv/bin/python bench/bench_attention.py [--lengths 1000,560,700,600] [--repeats 9]
        [--no-write]
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchdoc import markers, write_section  # noqa: E402

START, END = markers("bench_attention")


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lengths", default="1000,560,700,600")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    if not lengths or min(lengths) < 2:
        print("error: --lengths must be two or more tokens each", file=sys.stderr)
        return 2

    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import sdpa_mask

    from pixelpilot.vlm.attention import causal_left_padded, unpadded_attention

    torch.set_num_threads(1)
    total = max(lengths)
    padding = torch.tensor([[0] * (total - n) + [1] * n for n in lengths], dtype=torch.bool)
    mask = sdpa_mask(batch_size=len(lengths), q_length=total, kv_length=total,
                     attention_mask=padding, allow_is_causal_skip=False)  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(len(lengths), 4, total, 32, generator=gen, requires_grad=True)
               for _ in range(3))  # fmt: skip

    class Layer:  # what the attention functions read of a decoder layer
        is_causal = True
        num_key_value_groups = 1

    def step(attend) -> None:
        out, _ = attend(Layer(), q, k, v, mask)
        out.sum().backward()

    rows = [
        ("sdpa, the padded square with its mask", _median_ms(lambda: step(sdpa_attention_forward),
                                                             args.repeats)),
        ("unpadded_attention (each row's real tokens, is_causal)",
         _median_ms(lambda: step(unpadded_attention), args.repeats)),
        ("causal_left_padded alone (the mask check)",
         _median_ms(lambda: causal_left_padded(mask), args.repeats)),
    ]  # fmt: skip
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        START,
        "## The decoder's attention on a left-padded batch (`bench/bench_attention.py`)",
        "",
        f"Command: `.venv/bin/python bench/bench_attention.py --lengths {args.lengths} "
        f"--repeats {args.repeats}`  ",
        f"Machine: {platform.machine()}, one torch thread, torch {torch.__version__}; {when}",
        "",
        f"4 heads x 32 dims, rows of {', '.join(map(str, lengths))} real tokens left-padded to "
        f"{total}; forward and backward (the check: forward only), median of {args.repeats}.",
        "",
        "| attention | ms |",
        "|---|---|",
        *(f"| {name} | {ms:.1f} |" for name, ms in rows),
        END,
    ]
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        write_section(section, START, END)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Action-language speed: parse, format and export over the test corpus, and the reference.

Prints the figures and rewrites its own section of docs/benchmarks.md.

    .venv/bin/python bench/bench_parse.py [--rounds 200] [--no-doc]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from benchdoc import markers, write_section

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "tools" / "data" / "corpus.jsonl"
START, END = markers("bench_parse")


def per_item_us(func, items: list, rounds: int) -> float:
    """Median over rounds of the mean CPU time per item, in microseconds. CPU time of this
    process, not wall time: other jobs on a shared machine do not inflate it."""
    times = []
    for _ in range(rounds):
        t = time.process_time()
        for item in items:
            func(item)
        times.append((time.process_time() - t) / len(items))
    return statistics.median(times) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200, help="passes over the corpus per measure")
    ap.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = ap.parse_args()
    from pixelpilot.tools import format_response, parse_response, to_pyautogui_script

    entries = [json.loads(line) for line in CORPUS.open()]
    agree = [e for e in entries if e["reference"] == "agrees"]

    def ours(e: dict):
        kw = {"max_pixels": e["max_pixels"]} if "max_pixels" in e else {}
        return parse_response(e["text"], e["frame"], tuple(e["screen"]), **kw)

    parsed = [(e, ours(e)) for e in entries]
    rows = [("parse_response, all corpus answers", per_item_us(ours, entries, args.rounds))]
    rows.append(
        ("parse_response, answers the reference parses", per_item_us(ours, agree, args.rounds))
    )
    try:
        from ui_tars.action_parser import parse_action_to_structure_output as reference

        def theirs(e: dict):
            kw = {"max_pixels": e["max_pixels"]} if "max_pixels" in e else {}
            mt = "qwen25vl" if e["frame"] == "uitars-1.5" else "qwen2vl"
            text = e["text"].replace("<|box_start|>", "").replace("<|box_end|>", "")
            with contextlib.redirect_stdout(io.StringIO()):
                return reference(text, 1000, e["screen"][1], e["screen"][0], model_type=mt, **kw)

        rows.append(
            (
                "ui-tars parse_action_to_structure_output, same answers",
                per_item_us(theirs, agree, args.rounds),
            )
        )
    except ImportError:
        print("ui-tars is not installed; skipping the reference", file=sys.stderr)
    rows.append(
        (
            "format_response (thought + actions)",
            per_item_us(
                lambda p: format_response(
                    p[1].thought, p[1].actions, p[0]["frame"], tuple(p[0]["screen"])
                ),
                parsed,
                args.rounds,
            ),
        )
    )
    rows.append(
        (
            "to_pyautogui_script (one answer's actions)",
            per_item_us(lambda p: to_pyautogui_script(p[1].actions), parsed, args.rounds),
        )
    )
    for name, value in rows:
        print(f"{name}: {value:.1f} us")
    if not args.no_doc:
        write_doc(rows, len(entries), len(agree), args.rounds)


def write_doc(rows: list[tuple[str, float]], n_all: int, n_agree: int, rounds: int) -> None:
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        START,
        "## Action language (`bench/bench_parse.py`)",
        "",
        f"Command: `python bench/bench_parse.py --rounds {rounds}`  ",
        f"Machine: 2 cores, no GPU, CPython {platform.python_version()}, shared with other jobs; "
        f"date: {date}",
        "",
        f"Corpus: `tests/tools/data/corpus.jsonl` ({n_all} answers, {n_agree} that the `ui-tars` "
        f"reference parses). Median over {rounds} passes of the mean CPU time per answer (the "
        "process's CPU time, so other jobs on the machine do not inflate it).",
        "",
        "| measure | CPU time per answer |",
        "|---|---|",
        *[f"| {name} | {value:.1f} µs |" for name, value in rows],
        END,
    ]
    section = "\n".join(lines)
    write_section(section, START, END)


if __name__ == "__main__":
    main()

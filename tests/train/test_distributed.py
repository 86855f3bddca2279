"""Two processes on gloo (``accelerate launch``, one process per device) train like one process
with the same global batch; shards and gradient averaging are checked in-process too."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.train.conftest import pixelpilot_command

from pixelpilot.train.distributed import Dist, shard


def test_shards_cover_a_batch_once_in_order() -> None:
    items = list(range(7))
    parts = [shard(items, Dist(rank=r, world=3)) for r in range(3)]
    assert sum(parts, []) == items
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert shard(items, Dist()) == items


def _sft(data: Path, model: str, out: Path, batch: int, procs: int) -> list[float]:
    args = ["train", "sft", str(data), "--model", model, "--out", str(out), "--json",
            "--batch-size", str(batch), "--max-steps", "3", "--lr", "1e-3",
            "--no-progress"]  # fmt: skip
    done = subprocess.run(pixelpilot_command(args, procs), capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, done.stdout  # rank 0 alone reports
    summary = json.loads(lines[0])
    assert summary["steps"] == 3
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["samples"] for r in rows] == [4, 4, 4]  # the global batch, summed over ranks
    return [r["loss"] for r in rows]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_two_processes_equal_one_with_the_same_global_batch(
    click_data: Path, tiny_xs: str, tmp_path: Path
) -> None:
    one = _sft(click_data, tiny_xs, tmp_path / "one", batch=4, procs=1)
    two = _sft(click_data, tiny_xs, tmp_path / "two", batch=2, procs=2)
    assert max(abs(a - b) for a, b in zip(one, two, strict=True)) <= 1e-5
    assert one[-1] < one[0]


def _running(marker: str) -> dict[int, str]:
    """pid -> command line of the live processes whose command line holds ``marker``."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(") ")[1][0]
        except OSError:
            continue
        if marker in line and state != "Z":
            found[int(entry.name)] = line
    return found


def test_stopping_the_launcher_stops_the_processes_it_launched(tmp_path: Path) -> None:
    """SIGTERM to a process inside ``launch`` (as ``kill PID`` on the recipe sends) ends it
    with status 143 and takes the launched workers with it: none is left running."""
    import signal
    import sys
    import time

    marker = str(tmp_path / "served")
    (tmp_path / "served").mkdir()
    code = ("from pixelpilot.train.distributed import launch; "
            f"launch('http.server', ['0', '--bind', '127.0.0.1', '--directory', {marker!r}], "
            "2, 'two idle servers')")  # fmt: skip
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        workers: dict[int, str] = {}
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.2)
            workers = {p: c for p, c in _running(marker).items()
                       if "-c " not in c and "torch.distributed.run" not in c}  # fmt: skip
        assert len(workers) == 2, _running(marker)
        parent.send_signal(signal.SIGTERM)
        assert parent.wait(timeout=90) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _running(marker):
            time.sleep(0.2)
        assert not _running(marker)
    finally:
        if parent.poll() is None:
            parent.kill()
        for pid in _running(marker):
            os.kill(pid, signal.SIGKILL)

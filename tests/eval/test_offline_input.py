"""``eval offline`` refuses unusable input with one line and exit 2, and its predictions file
resumes through the one JSONL reader (only a cut-short final line is forgiven)."""

import json
from pathlib import Path

import pytest

from pixelpilot.cli import main
from pixelpilot.eval.offline import OfflineConfig, evaluate_offline, read_predictions
from pixelpilot.vlm import ModelProfile, ScriptedVLM

CENTRE = "Action: click(start_box='(500,500)')"


def _exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and captured.out == ""
    return err[0]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--model", "expert", "--kind", "nope"], "--kind must be one of computer, mobile"),
        (["--model", "expert", "--max-new-tokens", "-5"], "--max-new-tokens must be >= 1"),
        (["--predictions", "{empty}"], "no predictions in the file"),
    ],
)
def test_unusable_options_exit_2(
    mind2web_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    message: str,
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    options = [o.format(empty=empty) for o in options]
    line = _exit_2(["eval", "offline", str(mind2web_file), "--format", "mind2web", *options],
                   capsys)  # fmt: skip
    assert message in line


def test_a_bad_line_inside_a_predictions_file_is_named(
    mind2web_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    preds = tmp_path / "preds.jsonl"
    good = json.dumps({"id": "t1/0", "response": CENTRE, "frame": "uitars-1.0"})
    preds.write_text(f'{good}\n{{"id": "t1/1", "resp\n{good}\n')
    line = _exit_2(["eval", "offline", str(mind2web_file), "--format", "mind2web",
                    "--predictions", str(preds)], capsys)  # fmt: skip
    assert f"{preds}:2: not valid JSON" in line
    preds.write_text(f'{good}\n{{"id": "t1/1", "resp')  # cut short at the end: forgiven
    assert list(read_predictions(preds)) == ["t1/0"]


def test_a_resumed_predictions_file_stays_readable(androidcontrol_file: Path, tmp_path: Path):
    """After a crash cut the last record short, the resumed run's records do not get glued
    onto it: the file reads back whole (and a third run has nothing left to do)."""
    out = tmp_path / "run"
    profile = ModelProfile(name="centre", frame="uitars-1.0", prompt_family="uitars-1.0")
    cfg = OfflineConfig(str(androidcontrol_file), "androidcontrol", out=str(out), limit=2)
    evaluate_offline(cfg, vlm=ScriptedVLM(lambda conv: CENTRE, profile))
    with open(out / "predictions.jsonl", "a") as f:
        f.write('{"id": "a/2", "resp')  # a write cut short by a crash
    cfg.limit = None
    second = ScriptedVLM(lambda conv: CENTRE, profile)
    evaluate_offline(cfg, vlm=second)
    assert len(second.calls) == 3
    assert len(read_predictions(out / "predictions.jsonl")) == 5
    third = ScriptedVLM(lambda conv: CENTRE, profile)
    report = evaluate_offline(cfg, vlm=third)
    assert third.calls == [] and report["samples"] == 5

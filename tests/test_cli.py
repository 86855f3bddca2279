"""The pixelpilot command: help, exit codes, and `pixelpilot parse`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pixelpilot.cli import main

ANSWER = "Thought: Click OK.\nAction: click(start_box='<|box_start|>(500,500)<|box_end|>')"


def test_help_lists_the_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "parse" in out


def test_unknown_command_is_a_usage_error(capsys):
    assert main(["no-such-command"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_parse_json(capsys):
    code = main(["parse", ANSWER, "--frame", "uitars-1.0", "--screen", "1920x1080", "--json"])
    assert code == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert json.loads(out) == {
        "thought": "Click OK.",
        "reflection": None,
        "actions": [{"type": "click", "x": 960, "y": 540}],
    }


def test_parse_reads_stdin(capsys, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("Action: type(content='a\\nb')"))
    assert main(["parse", "-", "--frame", "pixels", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["actions"] == [{"type": "type", "content": "a\nb"}]


def test_parse_readable_output(capsys):
    reflection = "Reflection: [bold]missed[/bold]\nAction_Summary: Retry.\n"
    text = reflection + "Action: click(start_box='(10,20)')"
    assert main(["parse", text, "--frame", "pixels"]) == 0
    out = capsys.readouterr().out
    assert "[bold]missed[/bold]" in out  # model text is not rich markup
    assert "Retry." in out and "click" in out and "x=10, y=20" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["parse", "hello", "--frame", "pixels"], "no action found"),
        (["parse", "Action: wait()", "--frame", "uitars-9"], "--frame must be one of"),
        (["parse", "Action: wait()", "--screen", "big"], "--screen must look like"),
        (["parse", "Action: wait()"], "--screen WxH is needed"),
        (["parse", "Action: wait()", "--screen", "500x1"], "aspect ratio"),
        (["parse", "Action: hover(start_box='(1,2)')", "--frame", "pixels", "--json"], "hover"),
    ],
)
def test_parse_bad_input_exits_2_with_one_line(capsys, args, fragment):
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]


def test_the_installed_command():
    exe = Path(sys.executable).parent / "pixelpilot"
    if not exe.exists():
        pytest.skip("pixelpilot is not installed in this environment")
    ok = subprocess.run(
        [str(exe), "parse", "(500,500)", "--frame", "uitars-1.0", "--screen", "800x600", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["actions"] == [{"type": "click", "x": 400, "y": 300}]
    bad = subprocess.run(
        [str(exe), "parse", "nonsense", "--frame", "pixels", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1


COMMANDS = [
    ["parse"],
    ["run"],
    ["record"],
    ["replay"],
    ["view"],
    ["eval", "offline"],
    ["eval", "online"],
    ["eval", "compare"],
    ["model", "tiny"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_working_help(capsys, command):
    assert main([*command, "--help"]) == 0
    assert "Usage" in capsys.readouterr().out


def test_status_line_prints_model_text_literally():
    """A thought or error that looks like rich markup is shown as text, never interpreted."""
    import io

    from rich.console import Console

    from pixelpilot.agent.trajectory import Step
    from pixelpilot.cli import _status_line

    buffer = io.StringIO()
    show = _status_line(Console(file=buffer, width=200, color_system=None))
    step = Step(
        index=0,
        screenshot="step-0000.png",
        response="",
        thought="press [/bold] then [red]x",
        reflection=None,
        actions=[{"type": "type", "content": "[/]"}],
        reward=0.0,
        terminated=False,
        truncated=False,
        info={},
        timing={},
        target=None,
        error="bad [/i]",
    )
    show(step)
    text = buffer.getvalue()
    assert "press [/bold] then [red]x" in text
    assert "bad [/i]" in text and "type([/])" in text

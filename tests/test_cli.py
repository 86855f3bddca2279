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


# --- bad input anywhere (options, files) is one line and exit 2, never exit 1 ------------


def _one_error_line(capsys, args):
    code = main(args)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2, captured.err
    assert captured.out == "" and len(lines) == 1 and lines[0].startswith("error: ")
    assert "internal failure" not in lines[0] and "Traceback" not in captured.err
    return lines[0]


@pytest.fixture()
def episode(tmp_path):
    """A one-step MiniWoB recording written by the real writer (no browser needed)."""
    from PIL import Image

    from pixelpilot.agent.trajectory import Step, TrajectoryWriter

    header = {"task": "miniwob/click-button", "env": "miniwob/click-button", "env_kwargs": {},
              "seed": 0, "model": "expert", "frame": "pixels", "screen": [160, 210]}  # fmt: skip
    with TrajectoryWriter(tmp_path / "ep", header) as writer:
        step = Step(
            index=0,
            screenshot="step-0000.png",
            response="Action: click(start_box='(5,6)')",
            actions=({"type": "click", "x": 5, "y": 6},),
            target=(0, 0, 10, 10),
        )
        writer.append(step, Image.new("RGB", (160, 210), "white"))
    return tmp_path / "ep"


@pytest.mark.parametrize(
    "args",
    [
        ["record", "miniwob/click-button", "--expert", "--out", "FILE"],
        ["run", "--env", "miniwob/click-button", "--model", "expert", "--out", "FILE"],
        ["eval", "online", "miniwob/click-button", "--episodes", "1", "--out", "FILE"],
        ["eval", "offline", "EP", "--model", "expert", "--out", "FILE"],
        ["replay", "EP", "--out", "FILE"],
        ["model", "tiny", "FILE"],
        ["view", "EP", "--out", "DIR"],
        ["record", "miniwob/click-button", "--expert", "--seed", "-1", "--out", "NEW"],
        ["run", "--env", "miniwob/click-button", "--model", "expert", "--seed", "-1"],
        ["model", "tiny", "NEW", "--seed", "-1"],
        ["parse", "Action: wait()", "--screen", "9" * 400 + "x" + "9" * 400],
        ["parse", "Action: wait()", "--screen", "20000x100"],
    ],
    ids=lambda a: " ".join(a)[:60],
)
def test_bad_options_exit_2_before_any_work(capsys, tmp_path, episode, args):
    (tmp_path / "file").write_text("keep me")
    names = {"FILE": tmp_path / "file", "DIR": tmp_path, "EP": episode, "NEW": tmp_path / "new"}
    line = _one_error_line(capsys, [str(names.get(a, a)) for a in args])
    assert any(word in line for word in ("--out", "'out'", "--seed", "--screen")), line
    assert (tmp_path / "file").read_text() == "keep me" and not (tmp_path / "new").exists()


def _edit(episode, line, edit):
    path = episode / "trajectory.jsonl"
    lines = path.read_text().splitlines()
    obj = json.loads(lines[line])
    edit(obj)
    lines[line] = json.dumps(obj)
    path.write_text("\n".join(lines) + "\n")


def _png_claiming(width, height):
    import struct
    import zlib

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * ((width + 7) // 8 + 1) * 4)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _nested(episode):
    path = episode / "trajectory.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = "[" * 100_000 + "]" * 100_000
    path.write_text("\n".join(lines) + "\n")


def _point_outside(episode, symlink):
    import shutil

    shutil.copy(episode / "step-0000.png", episode.parent / "secret.png")
    if symlink:
        (episode / "step-0000.png").unlink()
        (episode / "step-0000.png").symlink_to(episode.parent / "secret.png")
    else:
        _edit(episode, 1, lambda s: s.update(screenshot="../secret.png"))


HOSTILE = {
    "infinite target": lambda ep: _edit(ep, 1, lambda s: s.update(target=[1e999, 0, 0, 0])),
    "deep nesting": _nested,
    "action without x": lambda ep: _edit(
        ep, 1, lambda s: s.update(actions=[{"type": "click", "y": 1}])
    ),
    "unknown action": lambda ep: _edit(ep, 1, lambda s: s.update(actions=[{"type": "explode"}])),
    "malformed screen": lambda ep: _edit(ep, 0, lambda h: h.update(screen="160x210")),
    "garbage png": lambda ep: (ep / "step-0000.png").write_bytes(b"not a png at all" * 8),
    "oversized png": lambda ep: (ep / "step-0000.png").write_bytes(_png_claiming(40_000, 40_000)),
    "screenshot outside": lambda ep: _point_outside(ep, symlink=False),
    "screenshot symlinked out": lambda ep: _point_outside(ep, symlink=True),
}


@pytest.mark.parametrize("damage", list(HOSTILE))
@pytest.mark.parametrize("command", ["view", "replay", "eval offline"])
def test_hostile_trajectories_exit_2_with_file_and_line(capsys, episode, damage, command):
    HOSTILE[damage](episode)
    args = {"view": ["view"], "replay": ["replay"], "eval offline": ["eval", "offline"]}[command]
    extra = ["--model", "expert"] if command == "eval offline" else []
    line = _one_error_line(capsys, [*args, str(episode), *extra])
    assert "trajectory.jsonl:" in line
    assert not (episode / "view.html").exists()


def test_a_png_broken_after_its_header_is_a_format_error_when_a_prompt_loads_it(episode):
    """The reader checks a screenshot's PNG header; a file cut off after it fails when the
    model's prompt loads it, as a ``FileFormatError`` (one line, exit 2), not an ``OSError``."""
    from pixelpilot.errors import FileFormatError
    from pixelpilot.eval.offline import OfflineConfig, evaluate_offline
    from pixelpilot.vlm import ModelProfile, ScriptedVLM

    shot = episode / "step-0000.png"
    shot.write_bytes(shot.read_bytes()[:60])
    vlm = ScriptedVLM(["Action: wait()"], ModelProfile(name="s", frame="pixels"))
    with pytest.raises(FileFormatError, match="step-0000.png: not a readable image"):
        evaluate_offline(OfflineConfig(data=str(episode)), vlm=vlm)

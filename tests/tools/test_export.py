"""to_pyautogui_script: readable, injection-proof, and it runs for real on a private Xvfb."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys

import pytest

from pixelpilot.tools import (
    CallUser,
    Click,
    Drag,
    Finished,
    Hotkey,
    LeftDouble,
    LongPress,
    OpenApp,
    RightSingle,
    Scroll,
    Type,
    Wait,
    parse_response,
    to_pyautogui_script,
)

PWNED = "x'); import os; os.system('echo pwned'); ('"


def calls(source: str) -> list[str]:
    """Dotted names of every call in the source."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            parts = []
            while isinstance(func, ast.Attribute):
                parts.append(func.attr)
                func = func.value
            parts.append(func.id if isinstance(func, ast.Name) else "?")
            names.append(".".join(reversed(parts)))
    return names


def string_constants(source: str) -> list[str]:
    return [
        n.value
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


@pytest.mark.parametrize(
    "content",
    [PWNED, "a\nimport os\n", '"""; import os; """', "\\'); os.system('x')#", "\u2028x\rimport os"],
)
def test_model_text_stays_one_string_constant(content):
    source = to_pyautogui_script([Type(content=content), Finished(content=content)], (800, 600))
    names = calls(source)
    assert names and all(n.split(".")[0] in ("pyautogui", "time") for n in names), names
    imports = {
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert imports == {"pyautogui", "time"}
    typed = Type(content=content).text
    assert typed in string_constants(source)


def test_injection_through_the_parser_stays_text():
    text = "Thought: t\nAction: type(content='" + PWNED + "')"
    actions = parse_response(text, "pixels", (800, 600)).actions
    source = to_pyautogui_script(actions, (800, 600))
    assert {n.split(".")[0] for n in calls(source)} <= {"pyautogui", "time"}
    assert PWNED in string_constants(source)
    assert "os.system" not in calls(source)


def test_script_statements():
    source = to_pyautogui_script(
        [
            Click(x=1, y=2),
            LeftDouble(x=3, y=4),
            RightSingle(x=5, y=6),
            LongPress(x=7, y=8),
            Drag(x1=1, y1=1, x2=9, y2=9),
            Scroll(x=10, y=10, direction="left"),
            Scroll(x=10, y=10, direction="right"),
            Scroll(x=10, y=10, direction="down"),
            Hotkey(keys=("meta", "l")),
            Type(content="hello\n"),
            Wait(),
            OpenApp(app_name="Maps"),
            CallUser(content="need a password"),
            Click(x=1, y=1),
        ],
        (800, 600),
    )
    assert "pyautogui.click(1, 2)" in source
    assert "pyautogui.doubleClick(3, 4)" in source
    assert "pyautogui.rightClick(5, 6)" in source
    assert "pyautogui.mouseDown(7, 8)" in source and "pyautogui.mouseUp(7, 8)" in source
    assert "pyautogui.dragTo(9, 9" in source
    assert "pyautogui.hscroll(-5, x=10, y=10)" in source
    assert "pyautogui.hscroll(5, x=10, y=10)" in source
    assert "pyautogui.scroll(-5, x=10, y=10)" in source
    assert "pyautogui.hotkey('win', 'l')" in source
    assert "pyautogui.write('hello', interval=0.02)" in source
    assert source.count("pyautogui.press('enter')") == 1
    assert "1 later action(s) not exported" in source
    assert "pyautogui.click(1, 1)" not in source
    compile(source, "script.py", "exec")


def test_points_outside_the_screen_are_refused():
    with pytest.raises(ValueError, match=r"actions\[1\]"):
        to_pyautogui_script([Click(x=1, y=1), Click(x=800, y=5)], (800, 600))


@pytest.fixture
def xvfb_display():
    if not shutil.which("Xvfb") or not shutil.which("xdotool"):
        pytest.skip("Xvfb and xdotool are needed")
    read, write = os.pipe()
    proc = subprocess.Popen(
        [
            "Xvfb",
            "-displayfd",
            str(write),
            "-screen",
            "0",
            "800x600x24",
            "-nolisten",
            "tcp",
            "-noreset",
        ],
        pass_fds=(write,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    try:
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_script_runs_and_moves_the_real_pointer(tmp_path, xvfb_display):
    actions = [
        Click(x=100, y=120),
        Scroll(x=50, y=50, direction="left"),
        Drag(x1=10, y1=10, x2=321, y2=234),
    ]
    script = tmp_path / "script.py"
    script.write_text(to_pyautogui_script(actions, (800, 600), pause=0.0))
    env = {**os.environ, "DISPLAY": xvfb_display}
    env.pop("XAUTHORITY", None)
    run = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, timeout=60)
    assert run.returncode == 0, run.stderr.decode()
    where = subprocess.run(
        ["xdotool", "getmouselocation"], env=env, capture_output=True, text=True, timeout=10
    )
    assert where.stdout.startswith("x:321 y:234"), where.stdout

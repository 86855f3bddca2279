"""The README's Python snippets run as they are, and say what they print."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SNIPPETS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_the_readme_has_snippets():
    assert len(SNIPPETS) >= 3


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # snippets may write runs/...
    source = SNIPPETS[index]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, f"README.md snippet {index}", "exec"), {"__name__": "__readme__"})
    printed = out.getvalue()
    assert printed.strip(), "every snippet prints its result"
    # where a print line carries a comment, that comment is what it prints
    for expected in re.findall(r"^print\(.*\)\s+# (.+)$", source, flags=re.M):
        assert expected.strip() in printed
    if "Agent(" in source:
        assert printed.split()[0] == "True"  # the expert episode succeeded
        assert list(tmp_path.glob("runs/readme-example/trajectory.jsonl"))

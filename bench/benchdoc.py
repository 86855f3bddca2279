"""What the benchmarks share: rewriting one marked section of docs/benchmarks.md.

Each benchmark owns the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``; a
section not yet in the file is appended, and the rest of the file is left as it is.
"""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_section(section: str, start: str, end: str, doc: Path = DOC) -> None:
    """Put ``section`` (which begins with ``start`` and ends with ``end``) into ``doc``."""
    if not (section.startswith(start) and section.rstrip("\n").endswith(end)):
        raise ValueError("a section must begin and end with its markers")
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section.rstrip("\n") + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")

"""The one JSONL reader and appender of resumable outputs."""

from pathlib import Path

import pytest

from pixelpilot.errors import FileFormatError
from pixelpilot.jsonl import RecordLog, read_records


def test_records_in_order_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert read_records(path) == [(1, {"a": 1}), (3, {"a": 2})]
    assert read_records(tmp_path / "missing.jsonl") == []


def test_only_a_cut_short_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n{"a": 2, "b": "hal')
    assert read_records(path) == [(1, {"a": 1})]
    path.write_bytes('{"a": 1}\n{"a": "é'.encode()[:-1])  # cut inside a UTF-8 character
    assert read_records(path) == [(1, {"a": 1})]
    path.write_text('{"a": 1}\n{"a": 2}')  # a whole record without its newline counts
    assert read_records(path) == [(1, {"a": 1}), (2, {"a": 2})]


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ('{"a": 1}\n{"a": 2, "b": "hal\n{"a": 3}\n', 2, "not valid JSON"),
        ('{"a": 1}\n{"a": 2, "b": "hal\n', 2, "not valid JSON"),  # it has its newline
        ('[1, 2]\n{"a": 3}\n', 1, "expected a JSON object, got list"),
        ("[" * 100000 + "\n", 1, "nested too deeply"),
    ],
)
def test_any_other_bad_line_names_file_and_line(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(text)
    with pytest.raises(FileFormatError, match=problem) as info:
        read_records(path)
    assert info.value.line == line and str(info.value).startswith(f"{path}:{line}: ")


def test_appending_after_a_crash_leaves_no_broken_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n{"a": 2, "b": "hal')
    with RecordLog(path) as log:
        log.append({"a": 3})
    assert path.read_text() == '{"a": 1}\n{"a": 3}\n'
    path.write_text('{"a": 1}')  # a whole record without its newline is kept and ended
    with RecordLog(path, fsync=False) as log:
        log.append({"a": 2})
    assert read_records(path) == [(1, {"a": 1}), (2, {"a": 2})]

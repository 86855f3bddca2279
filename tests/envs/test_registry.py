"""The task registry: ids, suites, lazy providers and close-match errors (no browser needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pixelpilot.envs import list_tasks, make, resolve_tasks, suites
from pixelpilot.errors import ConfigError, UnknownTaskError


def test_miniwob_ids_and_suites() -> None:
    ids = list_tasks("miniwob")
    assert "miniwob/click-button" in ids and "miniwob/login-user" in ids
    all_suites = suites()
    assert all_suites["miniwob"] == ids
    assert len(all_suites["miniwob-simple"]) == 15
    assert set(all_suites["miniwob-click"]) <= set(ids)
    assert list_tasks("browser") == ["browser"]


def test_unknown_id_lists_close_matches() -> None:
    with pytest.raises(UnknownTaskError) as err:
        make("miniwob/click-buton")
    assert "miniwob/click-button" in err.value.suggestions
    assert "did you mean" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(UnknownTaskError, match="miniwob/click-tab"):
        resolve_tasks("miniwob/click-tab,miniwob/clik-tab")
    with pytest.raises(UnknownTaskError, match="miniwob-simple"):
        resolve_tasks("miniwob-simpel")


def test_resolve_tasks_mixes_ids_and_suites_without_duplicates() -> None:
    ids = resolve_tasks("miniwob/click-test, miniwob-simple")
    assert ids[0] == "miniwob/click-test"
    assert len(ids) == len(set(ids)) == 15


def test_browser_needs_a_url() -> None:
    with pytest.raises(ConfigError, match="needs url"):
        make("browser")


def test_providers_are_imported_lazily() -> None:
    code = (
        "import sys, pixelpilot.envs as e; "
        "assert 'pixelpilot.envs.miniwob' not in sys.modules; "
        "assert 'playwright' not in sys.modules; "
        "e.list_tasks('miniwob'); "
        "assert 'playwright' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"

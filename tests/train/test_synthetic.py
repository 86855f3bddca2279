"""Synthetic screens: the typing kind is a two-step episode (click the field, then type the
quoted string of the instruction); the default kinds stay the click kinds."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pixelpilot.errors import ConfigError
from pixelpilot.eval.datasets import load_samples
from pixelpilot.train.synthetic import CLICK_KINDS, KINDS, render, write_synthetic


def test_typing_episodes_click_the_field_then_type_the_quoted_text(tmp_path: Path) -> None:
    root = write_synthetic(tmp_path / "syn", 12, seed=3, kinds=("type",))
    samples = load_samples(str(root), "trajectory")
    assert len(samples) == 24  # two steps per episode
    by_episode: dict[str, list] = {}
    for s in samples:
        by_episode.setdefault(s.episode, []).append(s)
    for click, typing in (sorted(v, key=lambda s: s.step) for v in by_episode.values()):
        assert click.gold[0]["type"] == "click" and click.target is not None
        x, y = click.gold[0]["x"], click.gold[0]["y"]
        assert click.target[0] <= x <= click.target[2] and click.target[1] <= y <= click.target[3]
        text = typing.gold[0]["content"]
        assert typing.gold[0]["type"] == "type" and text
        assert re.search(r'"([^"]+)"', typing.instruction).group(1) == text  # the first quote
        assert len(typing.history) == 1 and "click" in typing.history[0][0]  # the click before


def test_the_default_stream_is_the_click_kinds(tmp_path: Path) -> None:
    assert set(CLICK_KINDS) < set(KINDS) and "type" not in CLICK_KINDS
    for i in range(20):
        image, sample = render(0, i)
        assert sample.kind in CLICK_KINDS and sample.text == ""
        assert image.size == (160, 210)
    with pytest.raises(ConfigError):
        write_synthetic(tmp_path, 1, kinds=("typing",))

"""Rewards judge answers with the step sample's parser and offline evaluation's matching."""

from __future__ import annotations

import math

import pytest

from pixelpilot.agent.sample import StepSample
from pixelpilot.errors import ConfigError
from pixelpilot.eval.matching import MatchRules
from pixelpilot.train.rewards import (
    build_rewards,
    char_similarity,
    gaussian_point_reward,
    levenshtein,
    parse_reward_spec,
)
from pixelpilot.vlm.base import ModelProfile

PROFILE = ModelProfile(frame="pixels")  # answers in screen pixels: easy to write by hand
ALL = "format=1,type=1,point=1,distance=1,text=1"


def click_sample() -> StepSample:
    return StepSample(id="e/0", episode="e", task="t", step=0, image="x.png", instruction="Click",
                      gold=({"type": "click", "x": 50, "y": 40},), screen=(200, 100),
                      target=(40, 30, 60, 50))  # fmt: skip


def type_sample() -> StepSample:
    gold = ({"type": "type", "content": "hello big world"},)
    return StepSample(id="e/1", episode="e", task="t", step=1, image="x.png", instruction="Type",
                      gold=gold, screen=(200, 100))  # fmt: skip


def test_components_of_click_answers() -> None:
    rewards = build_rewards(ALL, PROFILE)
    hit = rewards(click_sample(), "Action: click(start_box='(50,40)')").components
    assert hit == {"format": 1, "type": 1, "point": 1, "distance": 1, "text": 1}
    edge = rewards(click_sample(), "Action: click(start_box='(60,40)')").components
    assert edge["point"] == 1 and edge["distance"] == pytest.approx(math.exp(-0.5))
    miss = rewards(click_sample(), "Action: click(start_box='(100,40)')").components
    assert miss["point"] == 0 and miss["text"] == 0  # text does not apply: the step match
    assert 0 < miss["distance"] < edge["distance"]  # still a signal, smaller farther away
    far = rewards(click_sample(), "Action: click(start_box='(190,90)')").components
    assert far["distance"] < miss["distance"]
    wrong = rewards(click_sample(), "Action: scroll(start_box='(50,40)', direction='down')")
    assert wrong.components == {"format": 1, "type": 0, "point": 0, "distance": 0, "text": 0}
    broken = rewards(click_sample(), "I would click it")
    assert broken.total == 0 and broken.components["format"] == 0


def test_answers_are_read_in_the_models_frame_and_limits() -> None:
    profile = ModelProfile(frame="uitars-1.0")  # relative 0..1000
    r = build_rewards("point=1", profile)
    assert r(click_sample(), "Action: click(start_box='(250,400)')").total == 1  # (50, 40)
    assert r(click_sample(), "Action: click(start_box='(50,40)')").total == 0


def test_text_reward_is_token_f1() -> None:
    r = build_rewards("text=1,distance=1", PROFILE)
    out = r(type_sample(), "Action: type(content='hello world')").components
    assert out["text"] == pytest.approx(0.8)
    assert out["distance"] == 1  # not a point action and the step matches (F1 >= 0.5)


def test_chars_reward_gives_partial_credit_for_near_strings() -> None:
    assert levenshtein("kitten", "sitting") == 3 and levenshtein("", "abc") == 3
    assert char_similarity("nrHom", "nrHom") == 1 and char_similarity("", "") == 1
    r = build_rewards("chars=1,text=1", PROFILE)
    gold = ({"type": "type", "content": "nrHom\n"},)
    sample = StepSample(id="e/1", episode="e", task="t", step=1, image="x.png",
                        instruction="Type", gold=gold, screen=(200, 100))  # fmt: skip
    exact = r(sample, "Action: type(content='nrHom\\n')").components
    assert exact == {"chars": 1, "text": 1}
    near = r(sample, "Action: type(content='nHroH')").components
    assert near["text"] == 0 and near["chars"] == pytest.approx(0.4)  # 3 edits of 5
    far = r(sample, "Action: type(content='Bo0B')").components
    assert far["chars"] == 0  # nothing in place
    click = r(sample, "Action: click(start_box='(50,40)')").components
    assert click["chars"] == 0  # a click where a typing step was due
    assert r(click_sample(), "Action: click(start_box='(50,40)')").components["chars"] == 1


def short_answer(sample: StepSample, text: str) -> float:
    """A user's reward: 1 for answers under 50 characters."""
    return float(len(text) < 50)


def test_weights_sum_and_user_rewards() -> None:
    user = "tests.train.test_rewards:short_answer"
    r = build_rewards("format=0.1,type=0.2,distance=0.7", PROFILE, reward_fns=(f"{user}=0.5",))
    out = r(click_sample(), "Action: click(start_box='(50,40)')")
    assert out.total == pytest.approx(0.1 + 0.2 + 0.7 + 0.5)
    assert out.components[user] == 1
    assert r.names == ["format", "type", "distance", user]


def test_bad_specs_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="unknown reward 'speed'"):
        parse_reward_spec("format=0.1,speed=1")
    with pytest.raises(ConfigError, match="not a number"):
        parse_reward_spec("format=x")
    with pytest.raises(ConfigError, match="cannot import"):
        build_rewards("format", PROFILE, reward_fns=("no_such_module_xyz:f",))
    assert parse_reward_spec("point") == {"point": 1.0}


def test_gaussian_without_a_box_uses_the_rule_threshold() -> None:
    at = gaussian_point_reward((50, 40), None, (50, 40), (200, 100))
    off = gaussian_point_reward((50 + 0.14 * 200, 40), None, (50, 40), (200, 100))
    assert at == 1 and off == pytest.approx(math.exp(-0.5))
    rules = MatchRules(use_box=False)
    r = build_rewards("distance", PROFILE, rules)
    assert r(click_sample(), "Action: click(start_box='(78,40)')").total == pytest.approx(off)

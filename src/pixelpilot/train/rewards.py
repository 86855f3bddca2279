"""Rewards: how good one model answer is for one recorded step.

A reward is a plain callable ``(sample, text) -> float`` (or a ``RewardResult`` with named
components). The built-ins judge an answer with the same code as offline evaluation: the answer
is read with the step sample's ``parse`` (the model's frame *and* pixel limits) and compared with
``pixelpilot.eval.matching.match_step`` under the same ``MatchRules``, so a trained answer and an
evaluated answer are judged alike. With ``p`` the first predicted action and ``g`` the gold one:

- ``format``   1 if the answer parses and has an action, else 0;
- ``type``     1 if ``p`` has the type of ``g`` (``match_step(...).type_match``);
- ``point``    1 if the step matches as offline evaluation counts it (``step_correct``): for a
  click, the point lies in the target box (or within the rule's distance of the gold point);
- ``distance`` for point actions, a Gaussian of the distance to the target (GUI-G2, Tang et
  al. 2025, "GUI-G2: Gaussian Reward Modeling for GUI Grounding"):
  ``exp(-((x - cx)^2 / (2 sx^2) + (y - cy)^2 / (2 sy^2)))`` with ``(cx, cy)`` the box centre
  and ``sx, sy`` half the box's width and height; 0.61 on the box edge along one axis, 1 at
  the centre, and still a signal for a point far outside the box (where ``point`` is 0 for
  every miss). Without a box, the gold point is the centre and ``sx = t * W``, ``sy = t * H``
  for the rule's normalised distance threshold ``t`` (0.14 by default);
- ``text``     for typed text, the token F1 of ``p.content`` against ``g.content``;
- ``chars``    for typed text, the character similarity ``1 - lev(p, g) / max(|p|, |g|)``
  (``lev`` the Levenshtein edit distance): partial credit for a string that is nearly the
  gold one, where ``text`` gives 0 to every wrong single word, so a group of sampled strings
  all wrong still carries a signal toward the right one.

A component that does not apply to the gold action (``distance`` for a typing step, ``text``
and ``chars`` for a click) takes the step match (0 or 1), so a weighted sum keeps its scale on
every step.
``parse_reward_spec("format=0.1,type=0.2,distance=0.7")`` picks and weights built-ins;
``module:function[=weight]`` adds a user's own callable.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pixelpilot.errors import ConfigError, ParseError
from pixelpilot.eval.matching import CLICK_LIKE, MatchResult, MatchRules, match_step, token_f1

DEFAULT_SPEC = "format=0.1,type=0.2,distance=0.7"


@dataclass(frozen=True)
class RewardResult:
    """A reward with its weighted parts: ``total = sum(weight * component)``."""

    total: float
    components: dict[str, float] = field(default_factory=dict)

    def __float__(self) -> float:
        return self.total


RewardFn = Callable[[Any, str], "float | RewardResult"]


@dataclass(frozen=True)
class Judgement:
    """An answer read and matched once: ``actions`` in screen pixels (None: no action)."""

    actions: tuple[Any, ...] | None
    match: MatchResult
    error: str | None = None


def judge(sample: Any, text: str, profile: Any, rules: MatchRules) -> Judgement:
    """Parse ``text`` with the sample's own parser and match it against the gold step."""
    actions: tuple[Any, ...] | None = None
    error = None
    try:
        actions = tuple(sample.parse(text, profile).actions) or None
        if actions is None:
            error = "no action"
    except (ParseError, ValueError) as exc:
        error = str(exc)
    match = match_step(list(actions) if actions else None, list(sample.gold), sample.target,
                       sample.screen, rules)  # fmt: skip
    return Judgement(actions, match, error)


def gaussian_point_reward(
    point: tuple[float, float],
    box: tuple[float, float, float, float] | None,
    gold: tuple[float, float],
    screen: tuple[int, int],
    threshold: float = 0.14,
) -> float:
    """GUI-G2's Gaussian point reward (see the module docstring)."""
    if box is not None:
        x1, y1, x2, y2 = box
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        sx, sy = max(abs(x2 - x1) / 2, 1.0), max(abs(y2 - y1) / 2, 1.0)
    else:
        cx, cy = gold
        sx, sy = max(threshold * screen[0], 1.0), max(threshold * screen[1], 1.0)
    dx, dy = point[0] - cx, point[1] - cy
    return math.exp(-(dx * dx / (2 * sx * sx) + dy * dy / (2 * sy * sy)))


def levenshtein(a: str, b: str) -> int:
    """The edit distance of two strings (insertions, deletions, substitutions)."""
    if len(a) < len(b):
        a, b = b, a
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for k, cb in enumerate(b, 1):
            prev, row[k] = row[k], min(row[k] + 1, row[k - 1] + 1, prev + (ca != cb))
    return row[-1]


def char_similarity(pred: str, gold: str) -> float:
    """``1 - levenshtein(pred, gold) / max(len)``: 1 for the same string, 0 for nothing shared."""
    longest = max(len(pred), len(gold))
    return 1.0 if longest == 0 else 1.0 - levenshtein(pred, gold) / longest


def _component(name: str, j: Judgement, sample: Any, rules: MatchRules) -> float:
    step = float(j.match.step_correct)
    if name == "format":
        return float(j.actions is not None)
    if name == "type":
        return float(j.match.type_match)
    if name == "point":
        return step
    gold = sample.gold[0]
    if name == "distance":
        if gold.get("type") not in CLICK_LIKE and gold.get("type") != "drag":
            return step
        if not j.match.type_match or not j.actions:
            return 0.0
        p = j.actions[0].to_dict()
        pk = ("x", "y") if "x" in p else ("x1", "y1")
        gk = ("x", "y") if "x" in gold else ("x1", "y1")
        box = sample.target if rules.use_box else None
        threshold = rules.point_threshold if rules.point_metric == "normalized" else 0.14
        return gaussian_point_reward(
            (p[pk[0]], p[pk[1]]), box, (gold[gk[0]], gold[gk[1]]), sample.screen, threshold
        )
    if name in ("text", "chars"):
        if gold.get("type") != "type":
            return step
        if not j.match.type_match or not j.actions:
            return 0.0
        pred = str(j.actions[0].to_dict().get("content", "")).rstrip("\n")
        want = str(gold.get("content", "")).rstrip("\n")
        return token_f1(pred, want) if name == "text" else char_similarity(pred, want)
    raise ConfigError(f"unknown reward {name!r}")


BUILTINS = ("format", "type", "point", "distance", "text", "chars")


class Rewards:
    """A weighted sum of built-in and user rewards; call it as ``rewards(sample, text)``.

    ``profile`` is the answering model's profile (its frame and pixel limits); ``rules`` the
    matching rules of offline evaluation.
    """

    def __init__(
        self,
        weights: dict[str, float],
        profile: Any,
        rules: MatchRules | None = None,
        custom: dict[str, tuple[RewardFn, float]] | None = None,
    ) -> None:
        for name in weights:
            if name not in BUILTINS:
                raise ConfigError(f"unknown reward {name!r} (known: {', '.join(BUILTINS)})")
        self.weights = dict(weights)
        self.profile = profile
        self.rules = rules or MatchRules()
        self.custom = dict(custom or {})

    @property
    def names(self) -> list[str]:
        return [*self.weights, *self.custom]

    def __call__(self, sample: Any, text: str) -> RewardResult:
        j = judge(sample, text, self.profile, self.rules)
        parts = {n: _component(n, j, sample, self.rules) for n in self.weights}
        total = sum(self.weights[n] * v for n, v in parts.items())
        for name, (fn, weight) in self.custom.items():
            value = float(fn(sample, text))
            parts[name] = value
            total += weight * value
        return RewardResult(total, parts)


def parse_reward_spec(spec: str, option: str = "reward") -> dict[str, float]:
    """``"format=0.1,type=0.2,distance=0.7"`` -> weights; a bare name weighs 1. ``option``
    names the setting the spec came from in a ``ConfigError``."""
    flag = "--" + option.replace("_", "-")
    weights: dict[str, float] = {}
    for item in (s.strip() for s in spec.split(",")):
        if not item:
            continue
        name, _, value = item.partition("=")
        name = name.strip()
        if name not in BUILTINS:
            raise ConfigError(
                f"{flag}: unknown reward {name!r} (known: {', '.join(BUILTINS)})", option=option
            )
        try:
            weight = float(value) if value else 1.0
        except ValueError:
            raise ConfigError(
                f"{flag}: weight of {name} is not a number: {value!r}", option=option
            ) from None
        if not math.isfinite(weight):
            raise ConfigError(f"{flag}: weight of {name} must be finite", option=option)
        weights[name] = weight
    if not weights:
        raise ConfigError(f"{flag}: no reward given", option=option)
    return weights


def load_reward_fn(spec: str) -> tuple[str, RewardFn, float]:
    """``"module:function[=weight]"`` -> (name, callable, weight); ``ConfigError`` if it
    cannot be imported or is not callable."""
    target, _, value = spec.partition("=")
    module_name, _, attr = target.strip().partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--reward-fn must look like module:function, got {spec!r}")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--reward-fn {target}: cannot import it ({exc})") from None
    if not callable(fn):
        raise ConfigError(f"--reward-fn {target} is not callable")
    try:
        weight = float(value) if value else 1.0
    except ValueError:
        raise ConfigError(f"--reward-fn: weight is not a number: {value!r}") from None
    return target.strip(), fn, weight


def build_rewards(
    spec: str, profile: Any, rules: MatchRules | None = None, reward_fns: tuple[str, ...] = ()
) -> Rewards:
    """The rewards of ``--reward SPEC`` and each ``--reward-fn module:function``."""
    custom = {}
    for item in reward_fns:
        name, fn, weight = load_reward_fn(item)
        custom[name] = (fn, weight)
    return Rewards(parse_reward_spec(spec), profile, rules, custom)

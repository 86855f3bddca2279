"""Action matching: is a predicted action the same step as the recorded (gold) one?

One pure function, ``match_action(pred, gold, target_box, screen, rules)``, shared by offline
evaluation and the GRPO rewards. The rules follow public GUI-agent benchmarks (see
``docs/evaluation.md`` for which rule comes from where):

- the action types must be equal;
- a click-like action (click, left_double, right_single, long_press) is right when its point
  lies in the target element's box (edges inclusive, as ScreenSpot), or, when the data has only
  a gold point, when the two points are close (AITW: Euclidean distance <= 0.14 in coordinates
  normalised to 0..1 per axis; AndroidControl as OS-Atlas / UI-TARS evaluate it: <= 140 on the
  0..1000 scale; or a fraction of the screen diagonal);
- typed text by token-set F1 >= 0.5 (or exact match), scroll by direction, hotkeys as key sets,
  drag by both ends, open_app by name; wait / finished / call_user / press_* by type alone.

Which argument is compared how is declared by each action class (``Arg.match`` in
``pixelpilot.tools.actions``); this module owns the rules, not a table of action types.
"""

from __future__ import annotations

import math
import re
from collections.abc import Set
from dataclasses import dataclass
from typing import Any, Literal

from pixelpilot.tools.actions import ACTION_TYPES, POINT_ACTIONS, Action, Arg

PointMetric = Literal["normalized", "rel1000", "diagonal"]
TextRule = Literal["f1", "exact"]
CLICK_LIKE: Set[str] = POINT_ACTIONS  # read live from the declared action types


@dataclass(frozen=True)
class MatchRules:
    """How lenient matching is. The defaults follow AITW (0.14) and OS-Atlas (F1 >= 0.5).

    ``point_metric``: ``normalized`` (AITW: both points scaled to 0..1 per axis, Euclidean
    distance), ``rel1000`` (AndroidControl as OS-Atlas/UI-TARS: 0..1000 scale, so the threshold
    is e.g. 140), ``diagonal`` (pixel distance divided by the screen diagonal).
    ``point_threshold``: the largest distance that still counts, in the metric's unit.
    ``text_rule``: ``f1`` (token-set F1 >= ``text_f1_threshold``) or ``exact`` (after trimming
    whitespace and case folding). ``use_box``: a gold target box, when given, decides clicks.
    """

    point_metric: PointMetric = "normalized"
    point_threshold: float = 0.14
    text_rule: TextRule = "f1"
    text_f1_threshold: float = 0.5
    use_box: bool = True

    def __post_init__(self) -> None:
        if self.point_metric not in ("normalized", "rel1000", "diagonal"):
            raise ValueError(f"point_metric: unknown metric {self.point_metric!r}")
        if self.text_rule not in ("f1", "exact"):
            raise ValueError(f"text_rule: unknown rule {self.text_rule!r}")
        if not self.point_threshold > 0:
            raise ValueError("point_threshold: must be positive")

    @classmethod
    def preset(cls, name: str) -> MatchRules:
        """Named rule sets: ``aitw`` (default), ``androidcontrol`` (140 on 0..1000),
        ``diagonal`` (0.14 of the screen diagonal), ``exact-text`` (AITW with exact text)."""
        presets = {
            "aitw": cls(),
            "androidcontrol": cls(point_metric="rel1000", point_threshold=140.0),
            "diagonal": cls(point_metric="diagonal", point_threshold=0.14),
            "exact-text": cls(text_rule="exact"),
        }
        if name not in presets:
            raise ValueError(f"unknown matching preset {name!r} (known: {', '.join(presets)})")
        return presets[name]


@dataclass(frozen=True)
class MatchResult:
    """``type_match``: same action type. ``step_correct``: the whole step is right.
    ``grounded``: for click-like gold actions with a matching type, whether the point was
    right (``None`` otherwise). ``detail``: a short human-readable reason."""

    type_match: bool
    step_correct: bool
    grounded: bool | None = None
    detail: str = ""

    @property
    def exact(self) -> bool:
        return self.step_correct

    def to_dict(self) -> dict[str, Any]:
        return {
            "type_match": self.type_match,
            "step_correct": self.step_correct,
            "grounded": self.grounded,
            "detail": self.detail,
        }


def _as_dict(action: Action | dict[str, Any] | None) -> dict[str, Any] | None:
    if action is None:
        return None
    if isinstance(action, Action):
        return action.to_dict()
    return dict(action)


def point_distance(
    p: tuple[float, float], q: tuple[float, float], screen: tuple[int, int], metric: PointMetric
) -> float:
    """Distance between two screen-pixel points in the unit of ``metric``."""
    w, h = max(screen[0], 1), max(screen[1], 1)
    if metric == "diagonal":
        return math.hypot(p[0] - q[0], p[1] - q[1]) / math.hypot(w, h)
    scale = 1000.0 if metric == "rel1000" else 1.0
    return math.hypot((p[0] - q[0]) / w * scale, (p[1] - q[1]) / h * scale)


def point_in_box(point: tuple[float, float], box: tuple[float, float, float, float]) -> bool:
    """Whether ``point`` lies in ``box`` = (x1, y1, x2, y2), edges included."""
    x, y = point
    x1, y1, x2, y2 = box
    return min(x1, x2) <= x <= max(x1, x2) and min(y1, y2) <= y <= max(y1, y2)


_TOKEN = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> set[str]:
    """Lower-cased word tokens of ``text`` as a set."""
    return set(_TOKEN.findall(text.lower()))


def token_f1(pred: str, gold: str) -> float:
    """Token-set F1 between two strings (1.0 when both have no tokens and are equal)."""
    p, g = tokens(pred), tokens(gold)
    if not p or not g:
        return 1.0 if pred.strip().lower() == gold.strip().lower() else 0.0
    common = len(p & g)
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def text_match(pred: str, gold: str, rules: MatchRules) -> tuple[bool, str]:
    if rules.text_rule == "exact":
        ok = " ".join(pred.split()).lower() == " ".join(gold.split()).lower()
        return ok, "text exact" if ok else "text differs"
    f1 = token_f1(pred, gold)
    return f1 >= rules.text_f1_threshold, f"text F1 {f1:.2f}"


def _point_ok(
    point: tuple[float, float],
    gold_point: tuple[float, float],
    box: Any,
    screen: tuple[int, int],
    rules: MatchRules,
) -> tuple[bool, str]:
    if box is not None and rules.use_box:
        ok = point_in_box(point, tuple(box))
        return ok, "point in target box" if ok else "point outside target box"
    dist = point_distance(point, gold_point, screen, rules.point_metric)
    ok = dist <= rules.point_threshold
    return ok, f"distance {dist:.3g} {'<=' if ok else '>'} {rules.point_threshold:g}"


def match_action(
    pred: Action | dict[str, Any] | None,
    gold: Action | dict[str, Any],
    target_box: tuple[float, float, float, float] | list[float] | None = None,
    screen: tuple[int, int] = (1000, 1000),
    rules: MatchRules | None = None,
) -> MatchResult:
    """Compare one predicted action with the gold one (both canonical dicts or Actions, in
    screen pixels). ``pred`` is ``None`` when the model's answer could not be parsed."""
    rules = rules or MatchRules()
    p, g = _as_dict(pred), _as_dict(gold)
    assert g is not None
    kind = g.get("type")
    if p is None:
        return MatchResult(False, False, None, "no action (format error)")
    if p.get("type") != kind:
        return MatchResult(False, False, None, f"type {p.get('type')} != {kind}")
    cls = ACTION_TYPES.get(str(kind))
    if cls is None:
        ok = p == g
        return MatchResult(True, ok, None, "same action" if ok else "different action")
    checks: list[tuple[str, bool, str]] = []
    box = target_box  # the target box decides the first point only
    for arg in cls.args:
        if arg.match is None:
            continue
        ok, why = _arg_ok(arg, p, g, box, screen, rules)
        box = None if arg.kind == "point" else box
        checks.append((arg.name, ok, why))
    if not checks:
        return MatchResult(True, True, None, "type match")
    ok = all(c[1] for c in checks)
    detail = checks[0][2] if len(checks) == 1 else "; ".join(f"{n}: {w}" for n, _, w in checks)
    return MatchResult(True, ok, ok if cls.click_like() else None, detail)


def _arg_ok(
    arg: Arg,
    p: dict[str, Any],
    g: dict[str, Any],
    box: Any,
    screen: tuple[int, int],
    rules: MatchRules,
) -> tuple[bool, str]:
    """Compare one declared argument of two actions of the same type."""
    name = arg.fields[0]
    if arg.match == "point":
        fx, fy = arg.fields
        if not all(isinstance(d.get(k), (int, float)) for d in (p, g) for k in (fx, fy)):
            return False, f"{arg.name}: no point"
        return _point_ok((p[fx], p[fy]), (g[fx], g[fy]), box, screen, rules)
    pv, gv = p.get(name), g.get(name)
    if arg.match == "text":
        return text_match(str(pv or "").rstrip("\n"), str(gv or "").rstrip("\n"), rules)
    if arg.match == "set":
        ok = set(pv or ()) == set(gv or ())
    elif arg.match == "name":
        ok = str(pv or "").strip().lower() == str(gv or "").strip().lower()
    else:
        ok = pv == gv
        return ok, f"{name} {pv}/{gv}"
    return ok, f"same {name}" if ok else f"different {name}"


def match_step(
    pred: list[Any] | None,
    gold: list[Any],
    target_box: tuple[float, float, float, float] | list[float] | None = None,
    screen: tuple[int, int] = (1000, 1000),
    rules: MatchRules | None = None,
) -> MatchResult:
    """Match a step's action lists: the type match and grounding are judged on the first
    action; the step is correct only when both lists have the same length and every pair
    matches (the target box applies to the first action)."""
    if not gold:
        raise ValueError("gold step has no action")
    if not pred:
        return MatchResult(False, False, None, "no action (format error)")
    first = match_action(pred[0], gold[0], target_box, screen, rules)
    if len(pred) != len(gold):
        return MatchResult(
            first.type_match, False, first.grounded, f"{len(pred)} actions, expected {len(gold)}"
        )
    rest = [
        match_action(p, g, None, screen, rules) for p, g in zip(pred[1:], gold[1:], strict=True)
    ]
    ok = first.step_correct and all(r.step_correct for r in rest)
    return MatchResult(first.type_match, ok, first.grounded, first.detail)

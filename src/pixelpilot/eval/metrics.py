"""Proportions with Wilson 95% intervals, step-level metrics, and significance tests.

Pure Python (``math`` only): offline and online evaluation, reports and ``compare`` use it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

Z95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of ``k`` successes in ``n`` trials (``(0, 1)`` when ``n == 0``)."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= k <= n:
        raise ValueError(f"successes {k} not within 0..{n}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def proportion(k: int, n: int) -> dict[str, Any]:
    """``{"value", "k", "n", "ci95": [lo, hi]}``; ``value`` is ``None`` when ``n == 0``."""
    lo, hi = wilson_interval(k, n)
    return {"value": k / n if n else None, "k": k, "n": n, "ci95": [lo, hi]}


def normal_two_sided_p(z: float) -> float:
    """Two-sided p-value of a standard normal statistic."""
    return math.erfc(abs(z) / math.sqrt(2))


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> dict[str, float | None]:
    """Pooled two-proportion z-test of ``k2/n2 - k1/n1``."""
    if n1 == 0 or n2 == 0:
        return {"diff": None, "z": None, "p_value": None}
    p1, p2 = k1 / n1, k2 / n2
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return {"diff": p2 - p1, "z": 0.0, "p_value": 1.0}
    z = (p2 - p1) / se
    return {"diff": p2 - p1, "z": z, "p_value": normal_two_sided_p(z)}


def mcnemar(b: int, c: int) -> dict[str, float | int]:
    """McNemar's test on paired outcomes: ``b`` = only A right, ``c`` = only B right.

    Exact two-sided binomial p-value when ``b + c < 25``, else chi-square with continuity
    correction (one degree of freedom)."""
    n = b + c
    if n == 0:
        return {"b": b, "c": c, "p_value": 1.0, "method": "none"}  # type: ignore[dict-item]
    if n < 25:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
        return {"b": b, "c": c, "p_value": min(1.0, 2 * tail), "method": "exact"}  # type: ignore[dict-item]
    chi2 = (abs(b - c) - 1) ** 2 / n
    return {"b": b, "c": c, "p_value": math.erfc(math.sqrt(chi2 / 2)), "method": "chi2"}  # type: ignore[dict-item]


def _group_metrics(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    typed = sum(bool(r["type_match"]) for r in rows)
    correct = sum(bool(r["step_correct"]) for r in rows)
    grounded_rows = [r for r in rows if r.get("grounded") is not None]
    grounded = sum(bool(r["grounded"]) for r in grounded_rows)
    errors = sum(bool(r.get("format_error")) for r in rows)
    return {
        "samples": n,
        "action_type_accuracy": proportion(typed, n),
        "grounding_accuracy": proportion(grounded, len(grounded_rows)),
        "step_success_rate": proportion(correct, n),
        "format_error_rate": proportion(errors, n),
    }


def step_metrics(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate scored samples into the offline metrics.

    Each row has ``episode``, ``task``, ``gold_type``, ``pred_type`` (``None`` on a format
    error), ``format_error``, ``type_match``, ``step_correct``, ``grounded`` (``None`` unless
    the gold action is click-like and the types match)."""
    rows = list(rows)
    out = _group_metrics(rows)
    episodes: dict[str, bool] = {}
    for r in rows:
        key = str(r.get("episode", r.get("id")))
        episodes[key] = episodes.get(key, True) and bool(r["step_correct"])
    out["episodes"] = len(episodes)
    out["episode_success"] = proportion(sum(episodes.values()), len(episodes))
    by_type: dict[str, list] = defaultdict(list)
    by_task: dict[str, list] = defaultdict(list)
    confusion: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        by_type[str(r["gold_type"])].append(r)
        by_task[str(r.get("task", ""))].append(r)
        pred = r.get("pred_type") or "format_error"
        confusion[str(r["gold_type"])][str(pred)] += 1
    out["per_action_type"] = {k: _group_metrics(v) for k, v in sorted(by_type.items())}
    out["per_task"] = {k: _group_metrics(v) for k, v in sorted(by_task.items())}
    out["confusion"] = {g: dict(sorted(p.items())) for g, p in sorted(confusion.items())}
    out["per_breakdown"] = _breakdowns(rows)
    return out


def _breakdowns(rows: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Metrics per value of every extra grouping a row names in ``breakdown`` (a dataset's own
    categories, e.g. ScreenSpot-Pro's group and ui_type), in the order first seen."""
    groups: dict[str, dict[str, list]] = {}
    for r in rows:
        for key, value in (r.get("breakdown") or {}).items():
            groups.setdefault(str(key), defaultdict(list))[str(value)].append(r)
    return {
        key: {v: _group_metrics(rs) for v, rs in sorted(values.items())}
        for key, values in groups.items()
    }

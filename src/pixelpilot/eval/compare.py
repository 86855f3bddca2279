"""Compare two evaluation reports: the difference of each headline metric and its significance.

When both runs scored the same items (online: the same task x seed episodes; offline: the same
sample ids, read from ``scores.jsonl`` next to the report) the test is McNemar's on the paired
outcomes; otherwise a pooled two-proportion z-test. B - A is reported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pixelpilot.errors import ConfigError, FileFormatError
from pixelpilot.eval.metrics import mcnemar, two_proportion_z


def load_report(path: str | Path) -> tuple[dict[str, Any], Path]:
    """A report and its directory, from ``report.json`` or the directory holding it."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    if not path.is_file():
        raise ConfigError(f"{path}: no report.json here")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise FileFormatError(path, None, f"not valid JSON ({exc})") from None
    if not isinstance(report, dict) or report.get("kind") not in ("offline", "online"):
        raise FileFormatError(path, None, "not a pixelpilot evaluation report")
    return report, path.parent


def _outcomes(report: dict[str, Any], directory: Path, metric: str) -> dict[str, bool] | None:
    """item id -> outcome for paired tests, when the run kept per-item results."""
    if report["kind"] == "online":
        return {f"{r['task']}#{r['seed']}": bool(r["success"]) for r in report.get("results", [])}
    scores = directory / "scores.jsonl"
    if not scores.is_file():
        return None
    out = {}
    for line in scores.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if metric == "grounding_accuracy":
                if row.get("grounded") is None:
                    continue
                out[row["id"]] = bool(row["grounded"])
            else:
                key = "type_match" if metric == "action_type_accuracy" else "step_correct"
                out[row["id"]] = bool(row[key])
    return out


def _compare_metric(
    a: tuple[int, int], b: tuple[int, int], pa: dict[str, bool] | None, pb: dict[str, bool] | None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "a": a[0] / a[1] if a[1] else None,
        "b": b[0] / b[1] if b[1] else None,
        "n_a": a[1],
        "n_b": b[1],
    }
    shared = sorted(set(pa) & set(pb)) if pa is not None and pb is not None else []
    if shared:
        only_a = sum(pa[k] and not pb[k] for k in shared)
        only_b = sum(pb[k] and not pa[k] for k in shared)
        test = mcnemar(only_a, only_b)
        out.update(
            diff=(sum(pb[k] for k in shared) - sum(pa[k] for k in shared)) / len(shared),
            test=f"mcnemar-{test['method']}",
            paired_items=len(shared),
            only_a=only_a,
            only_b=only_b,
            p_value=test["p_value"],
        )
    else:
        z = two_proportion_z(a[0], a[1], b[0], b[1])
        out.update(diff=z["diff"], test="two-proportion-z", z=z["z"], p_value=z["p_value"])
    out["significant"] = out["p_value"] is not None and out["p_value"] < 0.05
    return out


def compare_reports(path_a: str | Path, path_b: str | Path) -> dict[str, Any]:
    """``{"kind", "a", "b", "metrics": {name: {a, b, diff, test, p_value, significant}}}``."""
    ra, da = load_report(path_a)
    rb, db = load_report(path_b)
    if ra["kind"] != rb["kind"]:
        raise ConfigError(f"cannot compare an {ra['kind']} report with an {rb['kind']} one")
    metrics: dict[str, Any] = {}
    if ra["kind"] == "online":
        pa, pb = _outcomes(ra, da, "success"), _outcomes(rb, db, "success")

        def count(r: dict[str, Any]) -> tuple[int, int]:
            res = r.get("results", [])
            return sum(bool(x["success"]) for x in res), len(res)

        metrics["success_rate"] = _compare_metric(count(ra), count(rb), pa, pb)
        for task in sorted(set(ra["tasks"]) & set(rb["tasks"])):
            sa = {k: v for k, v in (pa or {}).items() if k.startswith(task + "#")}
            sb = {k: v for k, v in (pb or {}).items() if k.startswith(task + "#")}
            ka, kb = (sum(sa.values()), len(sa)), (sum(sb.values()), len(sb))
            metrics[f"success_rate[{task}]"] = _compare_metric(ka, kb, sa, sb)
    else:
        for name in (
            "step_success_rate",
            "action_type_accuracy",
            "grounding_accuracy",
            "episode_success",
        ):
            pa = _outcomes(ra, da, name) if name != "episode_success" else None
            pb = _outcomes(rb, db, name) if name != "episode_success" else None
            ka = (ra[name]["k"], ra[name]["n"])
            kb = (rb[name]["k"], rb[name]["n"])
            metrics[name] = _compare_metric(ka, kb, pa, pb)
    return {
        "kind": ra["kind"],
        "a": {"path": str(path_a), "model": ra.get("model")},
        "b": {"path": str(path_b), "model": rb.get("model")},
        "metrics": metrics,
    }


def format_comparison(result: dict[str, Any]) -> str:
    """A plain-text table of ``compare_reports``'s result."""
    lines = [
        f"A: {result['a']['model']} ({result['a']['path']})",
        f"B: {result['b']['model']} ({result['b']['path']})",
        f"{'metric':<40} {'A':>7} {'B':>7} {'B-A':>7} {'p':>8}  test",
    ]
    for name, m in result["metrics"].items():

        def pct(v: Any) -> str:
            return "-" if v is None else f"{100 * v:.1f}%"

        p = "-" if m["p_value"] is None else f"{m['p_value']:.3g}"
        star = " *" if m["significant"] else ""
        lines.append(
            f"{name:<40} {pct(m['a']):>7} {pct(m['b']):>7} {pct(m['diff']):>7} {p:>8}  "
            f"{m['test']}{star}"
        )
    lines.append("* significant at 0.05")
    return "\n".join(lines)

"""Reports: ``report.json``, ``report.md`` and a self-contained ``report.html`` with plots.

Works for both report kinds (``offline``: step metrics; ``online``: task-suite results). Plots
are drawn with matplotlib's Agg backend and embedded in the HTML as base64 PNGs (and saved
next to it as ``plot-*.png``).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _prop(p: dict[str, Any] | None) -> str:
    if not p or p.get("value") is None:
        return "-"
    lo, hi = p["ci95"]
    return f"{_pct(p['value'])} [{_pct(lo)}, {_pct(hi)}] ({p['k']}/{p['n']})"


def tables(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table a report shows."""
    if report.get("kind") == "online":
        rows = [
            [
                t,
                str(r["episodes"]),
                _prop(r.get("success")),
                f"{r['mean_reward']:.3f}",
                f"{r['mean_steps']:.2f}",
                str(r.get("errors", 0)),
            ]
            for t, r in report["tasks"].items()
        ]
        summary = [
            ["mean success (over tasks)", _pct(report.get("mean_success"))],
            ["episodes", str(report.get("episodes", 0))],
            ["errors", str(report.get("errors", 0))],
            ["seeds", ", ".join(str(s) for s in report.get("seeds", []))],
            ["episodes per minute", f"{report.get('episodes_per_minute', 0):.2f}"],
        ]
        return [
            ("Summary", ["metric", "value"], summary),
            (
                "Per task",
                ["task", "episodes", "success [95% CI]", "mean reward", "mean steps", "errors"],
                rows,
            ),
        ]
    keys = [
        ("action type accuracy", "action_type_accuracy"),
        ("grounding accuracy", "grounding_accuracy"),
        ("step success rate", "step_success_rate"),
        ("episode success", "episode_success"),
        ("format error rate", "format_error_rate"),
    ]
    summary = [[name, _prop(report.get(key))] for name, key in keys]
    cols = ["samples", "type acc. [95% CI]", "grounding", "step SR [95% CI]"]

    def group(rows: dict[str, Any]) -> list[list[str]]:
        return [
            [
                k,
                str(v["samples"]),
                _prop(v["action_type_accuracy"]),
                _prop(v["grounding_accuracy"]),
                _prop(v["step_success_rate"]),
            ]
            for k, v in rows.items()
        ]

    extra = [
        (f"Per {key}", [key, *cols], group(values))
        for key, values in (report.get("per_breakdown") or {}).items()
    ]
    return [
        ("Summary", ["metric", "value [95% CI] (k/n)"], summary),
        ("Per action type", ["gold type", *cols], group(report.get("per_action_type", {}))),
        ("Per task", ["task", *cols], group(report.get("per_task", {}))),
        *extra,
    ]


def to_markdown(report: dict[str, Any]) -> str:
    lines = [f"# {report.get('kind', 'evaluation').title()} evaluation: {report.get('model')}", ""]
    for title, header, rows in tables(report):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def _bar(ax: Any, labels: list[str], values: list[float], title: str) -> None:
    ax.barh(labels, values, color="#4878a8")
    ax.set_xlim(0, 1)
    ax.set_title(title)
    ax.invert_yaxis()


def plots(report: dict[str, Any]) -> dict[str, bytes]:
    """name -> PNG bytes of the report's plots."""
    try:
        import matplotlib
    except ImportError as exc:
        from pixelpilot.errors import DependencyNotInstalled

        raise DependencyNotInstalled("matplotlib", extra="eval") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs: dict[str, Any] = {}
    if report.get("kind") == "online":
        tasks = report.get("tasks", {})
        fig, ax = plt.subplots(figsize=(6, 0.35 * len(tasks) + 1.2))
        _bar(ax, list(tasks), [t["success_rate"] for t in tasks.values()], "success per task")
        figs["success-per-task"] = fig
        counts = report.get("action_counts", {})
        if counts:
            fig, ax = plt.subplots(figsize=(6, 0.35 * len(counts) + 1.2))
            ax.barh(list(counts), list(counts.values()), color="#6a9f58")
            ax.set_title("actions taken per type")
            ax.invert_yaxis()
            figs["per-action-type"] = fig
        steps = report.get("episode_steps", [])
        if steps:
            fig, ax = plt.subplots(figsize=(6, 3))
            ax.hist(steps, bins=range(0, max(steps) + 2), color="#a86848")
            ax.set_title("steps per episode")
            figs["steps-histogram"] = fig
    else:
        per_type = report.get("per_action_type", {})
        if per_type:
            fig, ax = plt.subplots(figsize=(6, 0.35 * len(per_type) + 1.2))
            values = [v["step_success_rate"]["value"] or 0.0 for v in per_type.values()]
            _bar(ax, list(per_type), values, "step success per action type")
            figs["per-action-type"] = fig
        confusion = report.get("confusion", {})
        if confusion:
            gold = list(confusion)
            pred = sorted({p for row in confusion.values() for p in row})
            grid = [[confusion[g].get(p, 0) for p in pred] for g in gold]
            fig, ax = plt.subplots(
                figsize=(max(4, 1.5 + 0.7 * len(pred)), max(3, 1.5 + 0.5 * len(gold)))
            )
            ax.imshow(grid, cmap="Blues")
            ax.set_xticks(range(len(pred)), pred, rotation=45, ha="right")
            ax.set_yticks(range(len(gold)), gold)
            for i, row in enumerate(grid):
                for j, v in enumerate(row):
                    ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
            ax.set_xlabel("predicted")
            ax.set_ylabel("gold")
            ax.set_title("action type confusion")
            figs["confusion"] = fig
    out = {}
    for name, fig in figs.items():
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        out[name] = buf.getvalue()
    return out


def to_html(report: dict[str, Any], images: dict[str, bytes]) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(str(report.get('model')))} evaluation</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}</style></head><body>",
        f"<h1>{esc(str(report.get('kind', '')).title())} evaluation: "
        f"{esc(str(report.get('model')))}</h1>",
    ]
    for title, header, rows in tables(report):
        parts.append(f"<h2>{esc(title)}</h2><table><tr>")
        parts += [f"<th>{esc(h)}</th>" for h in header]
        parts.append("</tr>")
        for r in rows:
            parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>")
        parts.append("</table>")
    for name, png in images.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f"<h2>{esc(name)}</h2><img alt='{esc(name)}' src='data:image/png;base64,{data}'>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_reports(report: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """Write report.json, report.md, report.html (and plot PNGs) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "report.json",
        "md": out / "report.md",
        "html": out / "report.html",
    }
    paths["json"].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    paths["md"].write_text(to_markdown(report))
    images = plots(report)
    for name, png in images.items():
        (out / f"plot-{name}.png").write_bytes(png)
    paths["html"].write_text(to_html(report, images))
    return paths

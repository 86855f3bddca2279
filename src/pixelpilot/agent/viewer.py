"""A self-contained HTML viewer for trajectories.

``write_view(path)`` writes one HTML file for an episode directory or a folder of episodes:
every step's screenshot (inlined as base64 PNG) with its actions drawn on top in SVG (click
point, drag arrow, scroll direction, typed text, keys), the thought, reward, timings and any
error. Left/right arrow keys (or j/k) move between steps; the page needs no network.

The trajectory is untrusted: the reader has already checked every field's type (actions are
valid canonical actions with integer coordinates), ``action_svg`` checks again for callers that
pass their own dicts, and every piece of text from the file (thought, response, instruction,
task, model, error, key names, typed text, folder names) is HTML-escaped, in attributes too.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from pixelpilot.agent.trajectory import Episode, Step, is_episode_dir, iter_episodes
from pixelpilot.errors import ConfigError, TrajectoryFormatError
from pixelpilot.tools.actions import Action

_CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
header{padding:12px 20px;background:#1d2330;color:#fff;position:sticky;top:0;z-index:2}
header h1{font-size:18px;margin:0}.hint{font-size:12px;opacity:.7}
.episode{margin:16px 20px;padding:12px;background:#fff;border-radius:8px}
.episode h2{font-size:16px;margin:0 0 8px}.meta{font-size:13px;color:#556}
.ok{color:#17803d}.bad{color:#b42318}
.step{display:flex;gap:16px;margin:12px 0;padding:10px;border:2px solid #e3e5ea;border-radius:6px}
.step.current{border-color:#2f6fed;box-shadow:0 0 0 3px #2f6fed33}
.shot{position:relative;flex:0 0 auto;max-width:60%}
.shot img{display:block;max-width:100%;height:auto;border:1px solid #ccd}
.shot svg{position:absolute;left:0;top:0;width:100%;height:100%;pointer-events:none}
.text{flex:1;font-size:13px;min-width:0}.text h3{margin:0 0 6px;font-size:14px}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f7f9;padding:6px;margin:4px 0}
.error{color:#b42318;font-weight:600}table{border-collapse:collapse;font-size:12px}
td{padding:1px 8px 1px 0}
"""

_JS = """
const steps=[...document.querySelectorAll('.step')];let cur=0;
function show(i){if(!steps.length)return;cur=Math.max(0,Math.min(steps.length-1,i));
steps.forEach((s,k)=>s.classList.toggle('current',k===cur));
steps[cur].scrollIntoView({block:'center'});
document.getElementById('pos').textContent=(cur+1)+' / '+steps.length;}
document.addEventListener('keydown',e=>{
if(e.key==='ArrowRight'||e.key==='ArrowDown'||e.key==='j'){show(cur+1);e.preventDefault();}
if(e.key==='ArrowLeft'||e.key==='ArrowUp'||e.key==='k'){show(cur-1);e.preventDefault();}
if(e.key==='Home'){show(0);}if(e.key==='End'){show(steps.length-1);}});
steps.forEach((s,k)=>s.addEventListener('click',()=>show(k)));show(0);
"""

_SCROLL = {"up": (0, -1), "down": (0, 1), "left": (-1, 0), "right": (1, 0)}


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _label(x: float, y: float, text: str, size: float) -> str:
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" font-size="{size:.0f}" fill="#fff" stroke="#000" '
        f'stroke-width="{size / 6:.1f}" paint-order="stroke" font-family="sans-serif">'
        f"{_e(text)}</text>"
    )


def action_svg(action: dict[str, Any], screen: tuple[int, int]) -> str:
    """SVG elements drawing one canonical action on a ``screen``-sized canvas; ``ValueError``
    if ``action`` is not a valid action (so only integers reach an SVG attribute)."""
    action = Action.from_dict(action).to_dict()
    w, h = (int(v) for v in screen)
    unit = max(4.0, min(w, h) / 40)
    kind = action["type"]
    red = 'stroke="#ff2d55" fill="none"'
    if kind in ("click", "left_double", "right_single", "long_press"):
        x, y = action["x"], action["y"]
        rings = 2 if kind == "left_double" else 1
        parts = [
            f'<circle class="act-point" cx="{x}" cy="{y}" r="{unit * (0.8 + 0.5 * i):.1f}" '
            f'{red} stroke-width="{unit / 4:.1f}"/>'
            for i in range(rings)
        ]
        parts.append(f'<circle cx="{x}" cy="{y}" r="{unit / 5:.1f}" fill="#ff2d55"/>')
        if kind != "click":
            parts.append(_label(x + unit, y - unit, kind, unit * 1.2))
        return "".join(parts)
    if kind == "drag":
        return (
            f'<line class="act-drag" x1="{action["x1"]}" y1="{action["y1"]}" x2="{action["x2"]}" '
            f'y2="{action["y2"]}" {red} stroke-width="{unit / 3:.1f}" marker-end="url(#arrow)"/>'
        )
    if kind == "scroll":
        dx, dy = _SCROLL.get(action.get("direction", "down"), (0, 1))
        x, y = action["x"], action["y"]
        return (
            f'<line class="act-scroll" x1="{x}" y1="{y}" x2="{x + dx * unit * 3:.0f}" '
            f'y2="{y + dy * unit * 3:.0f}" stroke="#2f6fed" stroke-width="{unit / 3:.1f}" '
            f'marker-end="url(#arrow-blue)"/>'
            + _label(x + unit, y + unit * 2, f"scroll {action.get('direction')}", unit * 1.2)
        )
    if kind == "type":
        return _label(unit, h - unit, f"type: {action.get('content', '')!r}", unit * 1.4)
    if kind == "hotkey":
        return _label(unit, h - unit, "keys: " + "+".join(action["keys"]), unit * 1.4)
    text = f"{kind}: {action.get('content', '')}" if action.get("content") else str(kind)
    return _label(unit, unit * 2, text, unit * 1.4)


def _overlay(step: Step, screen: tuple[int, int]) -> str:
    w, h = (int(v) for v in screen)
    defs = (
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="5" '
        'markerHeight="5" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#ff2d55"/>'
        '</marker><marker id="arrow-blue" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="5" '
        'markerHeight="5" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#2f6fed"/>'
        "</marker></defs>"
    )
    target = ""
    if step.target is not None:
        x1, y1, x2, y2 = (int(v) for v in step.target)
        target = (
            f'<rect x="{x1}" y="{y1}" width="{x2 - x1}" height="{y2 - y1}" stroke="#17803d" '
            'fill="none" stroke-dasharray="4 3" stroke-width="2"/>'
        )
    body = "".join(action_svg(a, screen) for a in step.actions)
    return (
        f'<svg viewBox="0 0 {w} {h}" preserveAspectRatio="none" '
        f'xmlns="http://www.w3.org/2000/svg">{defs}{target}{body}</svg>'
    )


def _timing(step: Step) -> str:
    rows = "".join(
        f"<tr><td>{_e(k)}</td><td>{v * 1000:.1f} ms</td></tr>"
        for k, v in step.timing.items()
        if isinstance(v, (int, float))
    )
    return f"<table>{rows}</table>" if rows else ""


def _step_html(episode: Episode, step: Step, screen: tuple[int, int]) -> str:
    data = base64.b64encode(episode.screenshot_path(step).read_bytes()).decode("ascii")
    actions = ", ".join(json.dumps(a) for a in step.actions) or "(none)"
    parts = [f"<h3>Step {step.index} &middot; reward {step.reward:g}"]
    if step.terminated or step.truncated:
        parts.append(" &middot; " + ("terminated" if step.terminated else "truncated"))
    if step.perturbed:
        parts.append(" &middot; perturbed (injected, not the policy's)")
    parts.append("</h3>")
    if step.reflection:
        parts.append(f"<div><b>Reflection</b><pre>{_e(step.reflection)}</pre></div>")
    if step.thought:
        parts.append(f'<div><b>Thought</b><pre class="thought">{_e(step.thought)}</pre></div>')
    parts.append(f"<div><b>Actions</b><pre>{_e(actions)}</pre></div>")
    if step.error:
        parts.append(f'<div class="error">{_e(step.error)}</div>')
    parts.append(
        f"<details><summary>Raw response</summary><pre>{_e(step.response)}</pre></details>"
    )
    parts.append(_timing(step))
    zoom = max(1, min(3, 480 // max(screen[0], 1)))  # small task screens are shown larger
    return (
        f'<section class="step" data-index="{step.index}">'
        f'<div class="shot" style="width:{screen[0] * zoom}px">'
        f'<img alt="step {step.index}" style="width:100%" src="data:image/png;base64,{data}">'
        f'{_overlay(step, screen)}</div><div class="text">{"".join(parts)}</div></section>'
    )


def _episode_html(episode: Episode, root: Path) -> str:
    header = episode.header
    screen = tuple(header.get("screen") or (0, 0))
    try:
        name = episode.directory.relative_to(root).as_posix() or episode.directory.name
    except ValueError:
        name = episode.directory.name
    if episode.finished:
        cls = "ok" if episode.success else "bad"
        verdict = "success" if episode.success else "failure"
        status = f'<span class="{cls}">{verdict}</span> ({_e(episode.end.get("reason", ""))})'
    else:
        status = '<span class="bad">unfinished</span>'
    meta = (
        f"task {_e(episode.task)} &middot; seed {_e(episode.seed)} &middot; model "
        f"{_e(header.get('model'))} &middot; {len(episode.steps)} steps &middot; total reward "
        f"{episode.total_reward:g} &middot; {status}"
    )
    instruction = header.get("instruction")
    steps = "".join(_step_html(episode, s, screen) for s in episode.steps)  # type: ignore[arg-type]
    return (
        f'<article class="episode"><h2>{_e(name)}</h2><div class="meta">{meta}</div>'
        + (f"<pre>{_e(instruction)}</pre>" if instruction else "")
        + f"{steps}</article>"
    )


def render_html(root: str | Path) -> str:
    """The viewer page for an episode directory or a folder of episodes."""
    root = Path(root)
    episodes = list(iter_episodes(root))
    if not episodes:
        raise TrajectoryFormatError(str(root), None, "no episodes (trajectory.jsonl) found here")
    body = "".join(_episode_html(ep, root) for ep in episodes)
    title = f"pixelpilot: {root.name}"
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body><header><h1>{_e(title)}</h1>"
        f'<span class="hint">{len(episodes)} episode(s) &middot; step <span id="pos"></span> '
        f"&middot; arrow keys move between steps</span></header>{body}"
        f"<script>{_JS}</script></body></html>"
    )


def write_view(root: str | Path, out: str | Path | None = None) -> Path:
    """Write the viewer for ``root`` (default ``ROOT/view.html``, folders made as needed) and
    return its path; ``ConfigError`` when a folder is where the file goes."""
    root = Path(root)
    path = Path(out) if out is not None else root / "view.html"
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not the HTML file to write", option="--out")
    page = render_html(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


__all__ = ["action_svg", "is_episode_dir", "render_html", "write_view"]

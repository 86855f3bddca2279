"""Dataset adapters: each offline-evaluation format becomes a list of ``Sample`` steps.

Formats (defined plainly in ``docs/evaluation.md``; paths inside a file are relative to it,
and a data file is untrusted: an image path that leads out of its folder, through ``..``, an
absolute path or a symlink, is refused unless ``allow_outside_images=True``, the CLI's
``--allow-outside-images``; an image must open and stay within ``pixelpilot.untrusted``'s size
limits):

- ``trajectory``: pixelpilot episode directories; every recorded step with an action is a sample
  (except a ``perturbed`` one, which only shows in later steps' history);
- ``screenspot``: JSON list / JSONL of ``{"img_filename", "instruction", "bbox": [x, y, w, h]}``;
- ``screenspot-pro`` (``screenspot-pro-cn``: its Chinese instructions): the released
  ScreenSpot-Pro layout, ``annotations/*.json`` lists of ``{"id", "img_filename", "img_size",
  "bbox": [x1, y1, x2, y2], "instruction", "instruction_cn", "ui_type", "group", "platform",
  "application"}`` with image paths relative to ``images/``; DATA is the dataset folder or one
  annotation file;
- ``androidcontrol``: JSONL, one episode a line: ``{"episode_id", "goal", "screenshots": [...],
  "actions": [{"action_type": ...}], "step_instructions": [...]}``;
- ``mind2web``: JSON list / JSONL of steps ``{"annotation_id", "confirmed_task", "screenshot",
  "operation": {"op", "value"}, "bbox": [x, y, w, h]}``.
"""

from __future__ import annotations

import json
import math
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pixelpilot import untrusted
from pixelpilot.agent.sample import StepSample
from pixelpilot.errors import DatasetFormatError
from pixelpilot.tools.frames import CoordinateFrame

FORMATS = (
    "trajectory",
    "screenspot",
    "screenspot-pro",
    "screenspot-pro-cn",
    "androidcontrol",
    "mind2web",
)


Sample = StepSample  # the step sample lives in pixelpilot.agent.sample

# Whether image paths may lead out of their data folder; set by load_samples for one load.
_OUTSIDE_IMAGES: ContextVar[bool] = ContextVar("allow_outside_images", default=False)


FILE_FORMATS = ("screenspot", "androidcontrol", "mind2web")  # one file; the others: a folder


def load_samples(path: str | Path, fmt: str, *, allow_outside_images: bool = False) -> list[Sample]:
    """Read ``path`` in format ``fmt``; ``DatasetFormatError`` on bad data. Image paths must
    stay inside the data file's folder unless ``allow_outside_images``."""
    path = Path(path)
    if fmt not in FORMATS:
        raise DatasetFormatError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if not path.exists():
        raise DatasetFormatError(f"{path}: no such file or directory")
    if fmt in FILE_FORMATS and not path.is_file():
        raise DatasetFormatError(f"{path}: the {fmt} format is one file (JSON list or JSONL)")
    loader = {
        "trajectory": _load_trajectories,
        "screenspot": _load_screenspot,
        "screenspot-pro": _load_screenspot_pro,
        "screenspot-pro-cn": lambda p: _load_screenspot_pro(p, "instruction_cn"),
        "androidcontrol": _load_androidcontrol,
        "mind2web": _load_mind2web,
    }[fmt]
    token = _OUTSIDE_IMAGES.set(allow_outside_images)
    try:
        samples = loader(path)
    finally:
        _OUTSIDE_IMAGES.reset(token)
    if not samples:
        raise DatasetFormatError(f"{path}: no samples in {fmt} format")
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise DatasetFormatError(f"{path}: duplicate sample ids")
    return samples


def _records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line or index, object) pairs of a JSON list or a JSONL file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetFormatError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(f"{path}: not valid JSON ({exc})") from None
        except RecursionError:
            raise DatasetFormatError(f"{path}: JSON nested too deeply") from None
        items = list(enumerate(data, start=1))
    else:
        items = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                items.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DatasetFormatError(f"{path}:{number}: not valid JSON ({exc})") from None
            except RecursionError:
                raise DatasetFormatError(f"{path}:{number}: JSON nested too deeply") from None
    for number, obj in items:
        if not isinstance(obj, dict):
            raise DatasetFormatError(f"{path}:{number}: expected a JSON object")
    return items


def _need(obj: dict[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise DatasetFormatError(f"{where}: missing {key!r}")
    return obj[key]


def _image(base: Path, name: Any, where: str) -> tuple[str, tuple[int, int]]:
    """The resolved path and size of image ``name`` (relative to ``base``), which must stay
    inside ``base`` (unless ``load_samples`` allows outside images) and open as an image
    within the size limits."""
    from PIL import Image

    if not isinstance(name, str) or not name or "\0" in name:
        raise DatasetFormatError(f"{where}: image path must be a string")
    path = base / name
    if not path.is_file():
        raise DatasetFormatError(f"{where}: image {name} not found")
    try:
        path = path.resolve() if _OUTSIDE_IMAGES.get() else untrusted.inside(path, base)
    except ValueError:
        raise DatasetFormatError(
            f"{where}: image {name} leads out of {base} (--allow-outside-images reads it)"
        ) from None
    try:
        with Image.open(path) as im:
            untrusted.check_image_size(*im.size)
            return str(path), im.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        problem = " ".join(str(exc).split()) or type(exc).__name__
        raise DatasetFormatError(f"{where}: image {name} is not usable ({problem})") from None


def _xywh_box(value: Any, where: str, fmt: str = "xywh") -> tuple[int, int, int, int]:
    if not (isinstance(value, list) and len(value) == 4):
        raise DatasetFormatError(f"{where}: bbox must be a list of 4 numbers")
    try:
        a, b, c, d = (float(v) for v in value)
    except (TypeError, ValueError):
        raise DatasetFormatError(f"{where}: bbox must be a list of 4 numbers") from None
    if not all(math.isfinite(v) for v in (a, b, c, d)):
        raise DatasetFormatError(f"{where}: bbox must hold finite numbers")
    if fmt == "xywh":
        c, d = a + c, b + d
    return (round(a), round(b), round(c), round(d))


def _centre(box: tuple[int, int, int, int]) -> tuple[int, int]:
    return ((box[0] + box[2]) // 2, (box[1] + box[3]) // 2)


# --- trajectory ---------------------------------------------------------------------------


def _load_trajectories(path: Path) -> list[Sample]:
    from pixelpilot.agent.trajectory import iter_episodes

    samples: list[Sample] = []
    for ep in iter_episodes(path):
        header = ep.header
        try:  # episodes of different tasks may share a leaf name (seed-00000)
            name = ep.directory.relative_to(path).as_posix() if path.is_dir() else ""
        except ValueError:
            name = ""
        name = name if name not in ("", ".") else ep.directory.name
        screen = tuple(header.get("screen") or (0, 0))
        try:
            coords = CoordinateFrame.from_record(
                header.get("frame") or "uitars-1.5", header.get("frame_limits")
            )
        except ValueError as exc:
            raise DatasetFormatError(f"{ep.directory}: trajectory header: {exc}") from None
        instruction = str(header.get("instruction") or header.get("task") or "")
        history: list[tuple[str, str]] = []
        # resolved once an episode, by the reader: a plain name in it needs no resolve
        real = ep.real_directory or ep.directory.resolve()
        for step in ep.steps:
            shot = real / step.screenshot
            image = str(shot.resolve() if shot.is_symlink() else shot)
            if step.actions and not step.error and not step.perturbed:
                labels = step.labels  # checked again at each read: read once
                samples.append(
                    Sample(
                        id=f"{name}/{step.index}",
                        episode=name,
                        task=ep.task,
                        step=step.index,
                        image=image,
                        instruction=str(step.info.get("instruction") or instruction),
                        gold=tuple(step.actions),
                        screen=(int(screen[0]), int(screen[1])),
                        target=tuple(step.target) if step.target else None,
                        history=tuple(history),
                        gold_response=step.response,
                        coords=coords,
                        meta={
                            "episode_success": ep.success,
                            **({"labels": labels} if labels else {}),
                        },
                    )
                )
            history.append((step.response, image))
    return samples


# --- screenspot ---------------------------------------------------------------------------


def _load_screenspot(path: Path) -> list[Sample]:
    samples = []
    for number, obj in _records(path):
        where = f"{path}:{number}"
        image, size = _image(path.parent, _need(obj, "img_filename", where), where)
        box = _xywh_box(_need(obj, "bbox", where), where, obj.get("bbox_format", "xywh"))
        x, y = _centre(box)
        task = "/".join(str(obj[k]) for k in ("platform", "data_type") if obj.get(k)) or "all"
        samples.append(
            Sample(
                id=str(obj.get("id", f"{number}")),
                episode=str(obj.get("id", f"{number}")),
                task=task,
                step=0,
                image=image,
                instruction=str(_need(obj, "instruction", where)),
                gold=({"type": "click", "x": x, "y": y},),
                screen=size,
                target=box,
            )
        )
    return samples


# --- screenspot-pro -----------------------------------------------------------------------


def _screenspot_pro_files(path: Path) -> list[tuple[Path, Path]]:
    """(annotation file, image folder) pairs: a dataset folder with ``annotations/`` and
    ``images/``, a folder of annotation files, or one annotation file."""
    if path.is_file():
        root = path.parent.parent if path.parent.name == "annotations" else path.parent
        images = root / "images"
        return [(path, images if images.is_dir() else path.parent)]
    folder = path / "annotations" if (path / "annotations").is_dir() else path
    images = path / "images" if (path / "images").is_dir() else folder
    return [(f, images) for f in sorted(folder.glob("*.json"))]


def _xyxy_box(value: Any, size: tuple[int, int], declared: Any, where: str) -> tuple[int, ...]:
    """The ``[x1, y1, x2, y2]`` box in pixels of the image as stored (``img_size`` may name
    the size the box was drawn on; a resized image gets the box scaled)."""
    box = _xywh_box(value, where, "xyxy")
    if box[2] < box[0] or box[3] < box[1]:
        raise DatasetFormatError(f"{where}: bbox must be [x1, y1, x2, y2] with x1 <= x2, y1 <= y2")
    if declared is None:
        return box
    if not (
        isinstance(declared, list)
        and len(declared) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in declared)
    ):
        raise DatasetFormatError(f"{where}: img_size must be [width, height] in pixels")
    sx, sy = size[0] / declared[0], size[1] / declared[1]
    return (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))


def _load_screenspot_pro(path: Path, instruction_key: str = "instruction") -> list[Sample]:
    samples = []
    for file, images in _screenspot_pro_files(path):
        for number, obj in _records(file):
            where = f"{file}:{number}"
            image, size = _image(images, _need(obj, "img_filename", where), where)
            box = _xyxy_box(_need(obj, "bbox", where), size, obj.get("img_size"), where)
            x, y = _centre(box)
            # what the ScreenSpot-Pro leaderboard reports accuracy by (its eval script's groups)
            labels = {k: str(_need(obj, k, where)) for k in ("group", "ui_type", "platform")}
            labels["group/ui_type"] = f"{labels['group']}/{labels['ui_type']}"
            application = str(obj.get("application") or file.stem)
            sample_id = str(obj.get("id", f"{file.stem}/{number}"))
            samples.append(
                Sample(
                    id=sample_id,
                    episode=sample_id,
                    task=application,
                    step=0,
                    image=image,
                    instruction=str(_need(obj, instruction_key, where)),
                    gold=({"type": "click", "x": x, "y": y},),
                    screen=size,
                    target=box,
                    meta={"breakdown": labels, "application": application},
                )
            )
    return samples


# --- androidcontrol -----------------------------------------------------------------------

_AC_SIMPLE = {"navigate_back": "press_back", "navigate_home": "press_home", "wait": "wait"}


def _ac_action(a: Any, size: tuple[int, int], where: str) -> dict[str, Any]:
    if not isinstance(a, dict) or "action_type" not in a:
        raise DatasetFormatError(f"{where}: an action needs 'action_type'")
    kind = a["action_type"]
    try:
        if kind in ("click", "long_press"):
            return {"type": kind, "x": round(a["x"]), "y": round(a["y"])}
        if kind == "input_text":
            return {"type": "type", "content": str(a["text"])}
        if kind == "scroll":
            x, y = a.get("x", size[0] // 2), a.get("y", size[1] // 2)
            return {"type": "scroll", "x": round(x), "y": round(y), "direction": a["direction"]}
        if kind == "open_app":
            return {"type": "open_app", "app_name": str(a["app_name"])}
    except KeyError as exc:
        raise DatasetFormatError(f"{where}: {kind} action misses {exc}") from None
    if kind in _AC_SIMPLE:
        return {"type": _AC_SIMPLE[kind]}
    raise DatasetFormatError(f"{where}: unknown action_type {kind!r}")


def _load_androidcontrol(path: Path) -> list[Sample]:
    samples = []
    for number, obj in _records(path):
        where = f"{path}:{number}"
        episode = str(_need(obj, "episode_id", where))
        shots = _need(obj, "screenshots", where)
        actions = _need(obj, "actions", where)
        steps = obj.get("step_instructions") or [None] * len(actions)
        if not isinstance(shots, list) or not isinstance(actions, list) or not actions:
            raise DatasetFormatError(f"{where}: 'screenshots' and 'actions' must be lists")
        if len(shots) < len(actions) or len(steps) != len(actions):
            raise DatasetFormatError(f"{where}: need one screenshot and instruction per action")
        history: list[tuple[str, str]] = []
        for i, raw in enumerate(actions):
            image, size = _image(path.parent, shots[i], where)
            gold = _ac_action(raw, size, f"{where} action {i}")
            box = _xywh_box(raw["bbox"], where, "xyxy") if raw.get("bbox") else None
            samples.append(
                Sample(
                    id=f"{episode}/{i}",
                    episode=episode,
                    task=str(obj.get("app") or obj.get("task") or "androidcontrol"),
                    step=i,
                    image=image,
                    instruction=str(_need(obj, "goal", where)),
                    gold=(gold,),
                    screen=size,
                    target=box,
                    history=tuple(history),
                    step_instruction=steps[i],
                )
            )
            history.append((_describe(gold), image))
    return samples


def _describe(action: dict[str, Any]) -> str:
    """The gold answer of an earlier step, as the model would have written it (pixels)."""
    from pixelpilot.tools import Action, format_response

    return format_response(None, [Action.from_dict(action)], "pixels")


# --- mind2web -----------------------------------------------------------------------------


def _load_mind2web(path: Path) -> list[Sample]:
    samples: list[Sample] = []
    history: dict[str, list[tuple[str, str]]] = {}
    for number, obj in _records(path):
        where = f"{path}:{number}"
        episode = str(_need(obj, "annotation_id", where))
        image, size = _image(path.parent, _need(obj, "screenshot", where), where)
        op = _need(obj, "operation", where)
        if not isinstance(op, dict) or op.get("op") not in ("CLICK", "TYPE", "SELECT"):
            raise DatasetFormatError(f"{where}: operation.op must be CLICK, TYPE or SELECT")
        box = _xywh_box(_need(obj, "bbox", where), where, obj.get("bbox_format", "xywh"))
        if op["op"] == "CLICK":
            x, y = _centre(box)
            gold: dict[str, Any] = {"type": "click", "x": x, "y": y}
        else:
            gold = {"type": "type", "content": str(op.get("value", ""))}
        past = history.setdefault(episode, [])
        samples.append(
            Sample(
                id=f"{episode}/{len(past)}",
                episode=episode,
                task=str(obj.get("website") or obj.get("domain") or "mind2web"),
                step=len(past),
                image=image,
                instruction=str(_need(obj, "confirmed_task", where)),
                gold=(gold,),
                screen=size,
                target=box if op["op"] == "CLICK" else None,
                history=tuple(past),
                meta={"op": op["op"]},
            )
        )
        past.append((_describe(gold), image))
    return samples

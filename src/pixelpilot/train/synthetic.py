"""Synthetic grounding data: MiniWoB-like screens drawn with PIL, one click to find.

Each sample is a 160x210 screen in the look of MiniWoB++ (a yellow instruction band on top,
the widgets below): buttons, links inside text, tabs, text fields, a dialog with its close
button, placed at uniformly random positions with distractors of the same kind. The
instruction asks for one of them in MiniWoB's own wording ("Click on the "okay" button.",
"Click on the link "Eget".", "Click on Tab #2.", "Focus into the textbox.", ...), and the gold
answer is a click on its centre. Because every target position is equally likely, a model
cannot score by learning where targets usually are: it has to read the screen.

The ``type`` kind (not among the defaults, ``CLICK_KINDS``) teaches copying text from the
instruction: a form with one text field and an instruction in the wording of MiniWoB's typing
tasks with a random quoted string (a name, a password of letters and digits); it is a two-step
episode, a click into the field, then ``type(content='<the string>')`` on the screen with the
field focused.

The ``form`` kind (round 25) shows which quoted string goes where: two labelled fields, an
instruction in the wording of MiniWoB's login-user that quotes one string for each ("Enter the
username "a" and the password "b" into the text fields and press login."), and the five steps
of that task: a click into the first field, its string typed, a click into the second, its
string typed (a password shows as dots), then the button. The two strings differ, so the
second typing step can only be right if the model tells them apart by their order (in the
recipe's ``sft-recovery`` stage they taught the step to the second field, not yet the choice
of the second string; docs/default-model.md).

``write_synthetic(out, count, seed)`` writes every sample as an ordinary recorded
episode (``trajectory.jsonl`` + ``step-0000.png``, task ``synthetic/<kind>``, the click in
screen pixels, the target box), so ``load_samples(out, "trajectory")`` and ``pixelpilot train
sft OUT`` read them like recordings. Sample ``i`` depends on ``(seed, i)`` only: the same
call writes the same files, and a larger ``count`` extends a smaller one.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SCREEN = (160, 210)
BAND = 50  # height of the yellow instruction band
CLICK_KINDS = ("button", "link", "tab", "textbox", "dialog", "test")
KINDS = (*CLICK_KINDS, "type", "form")
WORDS = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ut labore "
    "magna aliqua enim minim veniam quis nostrud ullamco laboris nisi aliquip commodo duis "
    "aute irure in voluptate velit esse cillum fugiat nulla pariatur excepteur sint occaecat "
    "cupidatat non proident sunt culpa officia deserunt mollit anim id est donec eget rhoncus "
    "morbi nunc auctor tortor pretium neque dui feugiat lacus at ridiculus malesuada"
).split()
LABELS = ("ok", "okay", "yes", "no", "submit", "cancel", "next", "previous", "one", "two")
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class GroundingSample:
    """One synthetic screen: the instruction, the target's box and its centre (pixels)."""

    kind: str
    instruction: str
    box: Box
    text: str = ""  # what to type after clicking the box (kind "type")
    labels: tuple[tuple[str, Box], ...] = ()  # every text drawn below the band, with its box
    # kind "form": the second field, its string, the button, and whether the second is hidden
    second: Box | None = None
    second_text: str = ""
    button: Box | None = None
    hidden: bool = False

    @property
    def point(self) -> tuple[int, int]:
        return _centre(self.box)


def _centre(box: Box) -> tuple[int, int]:
    return (box[0] + box[2]) // 2, (box[1] + box[3]) // 2


@cache
def _font(size: int, bold: bool = False) -> Any:
    from PIL import ImageFont

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    for folder in ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu"):
        path = Path(folder) / name
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size)


def _text_width(text: str, size: int = 11) -> int:
    return int(_font(size).getlength(text))


def _wrap(
    draw: Any, text: str, xy: tuple[int, int], width: int, size: int = 10
) -> list[tuple[str, Box]]:
    """Draw ``text`` wrapped to ``width``; the words drawn and their boxes."""
    x, y = xy
    line, words = "", []
    for word in text.split():
        trial = f"{line} {word}".strip()
        if _text_width(trial, size) > width and line:
            words += _line(draw, line, (x, y), size)
            line, y = word, y + size + 2
        else:
            line = trial
    if line:
        words += _line(draw, line, (x, y), size)
    return words


def _line(draw: Any, line: str, xy: tuple[int, int], size: int) -> list[tuple[str, Box]]:
    x, y = xy
    draw.text((x, y), line, fill="black", font=_font(size))
    out, left = [], x
    for word in line.split(" "):
        wid = _text_width(word, size)
        out.append((word, (left, y, left + wid, y + size + 2)))
        left += wid + _text_width(" ", size)
    return out


def _free(rng: random.Random, taken: list[Box], w: int, h: int, area: Box) -> Box | None:
    """A random ``w`` x ``h`` box inside ``area`` overlapping none of ``taken``."""
    for _ in range(60):
        x = rng.randint(area[0], max(area[0], area[2] - w))
        y = rng.randint(area[1], max(area[1], area[3] - h))
        box = (x, y, x + w - 1, y + h - 1)
        if all(box[2] < t[0] or box[0] > t[2] or box[3] < t[1] or box[1] > t[3] for t in taken):
            taken.append(box)
            return box
    return None


def _button(draw: Any, box: Box, label: str, size: int = 11) -> None:
    draw.rounded_rectangle(box, radius=2, fill=(239, 239, 239), outline=(118, 118, 118))
    tw = _text_width(label, size)
    cx, cy = _centre(box)
    draw.text((cx - tw // 2, cy - size // 2 - 1), label, fill="black", font=_font(size))


def _distractor_text(
    rng: random.Random, draw: Any, taken: list[Box], body: Box
) -> list[tuple[str, Box]]:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 6)))
    box = _free(rng, taken, 130, 38, body)
    return _wrap(draw, words, box[:2], 130) if box is not None else []


def _draw_buttons(rng: random.Random, draw: Any, body: Box, test: bool) -> GroundingSample:
    taken: list[Box] = []
    labels = rng.sample(LABELS, rng.randint(2, 5)) if not test else ["Click Me!"]
    boxes = []
    for label in labels:
        w, h = _text_width(label) + rng.randint(10, 18), rng.randint(18, 26)
        box = _free(rng, taken, w, h, body)
        if box is not None:
            _button(draw, box, label)
            boxes.append((label, box))
    drawn = list(boxes)
    for _ in range(rng.randint(0, 2)):
        drawn += _distractor_text(rng, draw, taken, body)
    label, box = rng.choice(boxes)
    if test:
        return GroundingSample("test", "Click the button.", box, labels=tuple(drawn))
    template = rng.choice(('Click on the "{}" button.', "Click button {}."))
    shown = label.upper() if template.startswith("Click button") else label
    return GroundingSample("button", template.format(shown), box, labels=tuple(drawn))


def _draw_links(rng: random.Random, draw: Any, body: Box) -> GroundingSample:
    """A paragraph whose some words are blue underlined links."""
    x0, y = body[0] + rng.randint(0, 20), body[1] + rng.randint(0, 60)
    x, links, drawn = x0, [], []
    for _ in range(rng.randint(12, 24)):
        word = rng.choice(WORDS).capitalize() if rng.random() < 0.2 else rng.choice(WORDS)
        wid = _text_width(word, 11)
        if x + wid > body[2]:
            x, y = x0, y + 14
        if y + 13 > body[3]:
            break
        is_link = rng.random() < 0.3
        draw.text((x, y), word, fill=(0, 0, 238) if is_link else "black", font=_font(11))
        drawn.append((word, (x, y, x + wid, y + 13)))
        if is_link:
            draw.line((x, y + 12, x + wid, y + 12), fill=(0, 0, 238))
            links.append(drawn[-1])
        x += wid + _text_width(" ", 11)
    if not links:
        draw.text((x0, y + 14), "link", fill=(0, 0, 238), font=_font(11))
        links.append(("link", (x0, y + 14, x0 + _text_width("link"), y + 27)))
        drawn.append(links[-1])
    word, box = rng.choice(links)
    return GroundingSample("link", f'Click on the link "{word}".', box, labels=tuple(drawn))


def _draw_tabs(rng: random.Random, draw: Any, body: Box) -> GroundingSample:
    n = rng.randint(2, 3)
    x0, y0 = body[0] + rng.randint(0, 8), body[1] + rng.randint(0, 90)
    draw.rectangle((x0, y0, min(body[2], x0 + 150), y0 + 60), outline=(200, 200, 200))
    tabs, x = [], x0 + 3
    for i in range(1, n + 1):
        label = f"Tab #{i}"
        w = _text_width(label, 10) + 8
        box = (x, y0 + 3, x + w, y0 + 22)
        active = i == 1
        draw.rounded_rectangle(
            box,
            radius=2,
            fill=(0, 122, 255) if active else (239, 239, 239),
            outline=(170, 170, 170),
        )
        draw.text((x + 4, y0 + 7), label, fill="white" if active else "black", font=_font(10))
        tabs.append((i, box))
        x += w + 2
    words = " ".join(rng.choice(WORDS) for _ in range(10))
    drawn = [(f"Tab #{i}", box) for i, box in tabs]
    drawn += _wrap(draw, words, (x0 + 8, y0 + 30), 130, 9)
    i, box = rng.choice(tabs[1:])
    return GroundingSample("tab", f"Click on Tab #{i}.", box, labels=tuple(drawn))


def _draw_textbox(rng: random.Random, draw: Any, body: Box) -> GroundingSample:
    taken: list[Box] = []
    box = _free(rng, taken, rng.randint(90, 150), rng.randint(18, 24), body)
    assert box is not None  # the first box always fits
    draw.rectangle(box, fill="white", outline=(118, 118, 118))
    drawn: list[tuple[str, Box]] = []
    for _ in range(rng.randint(0, 2)):
        drawn += _distractor_text(rng, draw, taken, body)
    return GroundingSample("textbox", "Focus into the textbox.", box, labels=tuple(drawn))


def _draw_dialog(rng: random.Random, draw: Any, body: Box) -> GroundingSample:
    w, h = rng.randint(100, 150), rng.randint(70, 120)
    x0 = rng.randint(body[0], body[2] - w)
    y0 = rng.randint(body[1], body[3] - h)
    draw.rectangle((x0, y0, x0 + w, y0 + h), fill="white", outline=(170, 170, 170))
    draw.rectangle((x0 + 3, y0 + 3, x0 + w - 3, y0 + 25), fill=(233, 233, 233))
    close = (x0 + w - 27, y0 + 5, x0 + w - 6, y0 + 23)
    draw.rounded_rectangle(close, radius=2, fill=(246, 246, 246), outline=(170, 170, 170))
    cx, cy = (close[0] + close[2]) // 2, (close[1] + close[3]) // 2
    draw.line((cx - 4, cy - 4, cx + 4, cy + 4), fill=(40, 40, 40), width=2)
    draw.line((cx - 4, cy + 4, cx + 4, cy - 4), fill=(40, 40, 40), width=2)
    words = " ".join(rng.choice(WORDS) for _ in range(6))
    drawn = _wrap(draw, words, (x0 + 8, y0 + 32), w - 16, 10)
    instruction = 'Close the dialog box by clicking the "x".'
    return GroundingSample("dialog", instruction, close, labels=tuple(drawn))


TYPING_TEMPLATES = (
    'Enter "{}" into the text field and press Submit.',
    'Enter the password "{}" into both text fields and press submit.',
    'Type "{}" in the text box.',
)
_SYLLABLES = "an ar el en er ia in is la le li lo ma na ne ni on ra re ri ro sa ta te ti ul".split()


def random_text(rng: random.Random) -> str:
    """A name-like word (capitalised or not) or a short password of letters and digits."""
    if rng.random() < 0.5:
        word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4)))
        return word.capitalize() if rng.random() < 0.5 else word
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 6)))


def _draw_typing(rng: random.Random, draw: Any, body: Box) -> GroundingSample:
    """A form: one or two labelled text fields and a Submit button; the instruction quotes a
    random string; the target is the first field."""
    text = random_text(rng)
    if rng.random() < 0.3:  # the login form's wording: the username is typed first
        template = 'Enter the username "{}" and the password "' + random_text(rng) + '" into'
        template += " the text fields and press login."
    else:
        template = rng.choice(TYPING_TEMPLATES)
    taken: list[Box] = []
    width = rng.randint(100, 150)
    first = _free(rng, taken, width, rng.randint(18, 24), body)
    assert first is not None  # the first box always fits
    draw.rectangle(first, fill="white", outline=(118, 118, 118))
    if rng.random() < 0.5:
        second = _free(rng, taken, width, first[3] - first[1] + 1, body)
        if second is not None:
            draw.rectangle(second, fill="white", outline=(118, 118, 118))
    button = _free(rng, taken, 50, 22, body)
    drawn = []
    if button is not None:
        drawn.append((rng.choice(("Submit", "Login")), button))
        _button(draw, button, drawn[0][0])
    return GroundingSample("type", template.format(text), first, text, tuple(drawn))


# (first field, second field, button) of the two-field forms; login-user's is the first
FORMS = (("username", "password", "login"), ("first name", "last name", "submit"),
         ("email", "password", "sign in"), ("name", "code", "submit"))  # fmt: skip


def _draw_form(rng: random.Random, draw: Any, body: Box) -> GroundingSample:
    """Two labelled text fields, one under the other, and a button under them; the
    instruction quotes a different string for each field."""
    first_name, second_name, action = FORMS[0] if rng.random() < 0.5 else rng.choice(FORMS)
    first_text = random_text(rng)
    second_text = random_text(rng)
    while second_text == first_text:
        second_text = random_text(rng)
    x = body[0] + rng.randint(0, 30)
    width = rng.randint(90, min(150, body[2] - x))
    height, gap, button_h = rng.randint(18, 22), rng.randint(10, 24), rng.randint(22, 26)
    needed = 2 * (16 + height + gap) + button_h  # two labels and fields, then the button
    y = body[1] + rng.randint(0, max(0, body[3] - body[1] - needed))
    boxes: list[Box] = []
    drawn: list[tuple[str, Box]] = []
    for name in (first_name, second_name):
        label = name.capitalize()
        draw.text((x, y), label, fill="black", font=_font(10, bold=True))
        drawn.append((label, (x, y, x + _text_width(label, 10), y + 12)))
        box = (x + rng.randint(0, 6), y + 16, x + width, y + 16 + height)
        draw.rectangle(box, fill="white", outline=(118, 118, 118))
        boxes.append(box)
        y = box[3] + gap
    bw = _text_width(action.capitalize()) + rng.randint(20, 40)
    button = (x, y, x + bw, y + button_h)
    _button(draw, button, action.capitalize())
    drawn.append((action.capitalize(), button))
    instruction = (f'Enter the {first_name} "{first_text}" and the {second_name} '
                   f'"{second_text}" into the text fields and press {action}.')  # fmt: skip
    return GroundingSample(
        "form", instruction, boxes[0], first_text, tuple(drawn), second=boxes[1],
        second_text=second_text, button=button, hidden=second_name in ("password", "code"),
    )  # fmt: skip


def _filled(image: Any, box: Box, text: str, hidden: bool) -> Any:
    """``image`` with ``text`` typed into the field ``box`` (dots for a hidden field)."""
    from PIL import ImageDraw

    out = image.copy()
    ImageDraw.Draw(out).text((box[0] + 4, box[1] + 3), _shown(text, hidden), fill="black",
                             font=_font(11))  # fmt: skip
    return out


def _shown(text: str, hidden: bool) -> str:
    return "\u2022" * len(text) if hidden else text


def _focused(image: Any, box: Box, after: int = 0) -> Any:
    """``image`` with the text field ``box`` focused (the browser's blue focus ring, a caret
    ``after`` pixels of typed text in)."""
    from PIL import ImageDraw

    out = image.copy()
    draw = ImageDraw.Draw(out)
    draw.rectangle(box, outline=(16, 110, 190), width=2)
    x = box[0] + 4 + after
    draw.line((x, box[1] + 4, x, box[3] - 4), fill="black")
    return out


_DRAWERS: dict[str, Callable[[random.Random, Any, Box], GroundingSample]] = {
    "button": lambda rng, draw, body: _draw_buttons(rng, draw, body, test=False),
    "test": lambda rng, draw, body: _draw_buttons(rng, draw, body, test=True),
    "link": _draw_links,
    "tab": _draw_tabs,
    "textbox": _draw_textbox,
    "dialog": _draw_dialog,
    "type": _draw_typing,
    "form": _draw_form,
}


def render(
    seed: int, index: int, kinds: tuple[str, ...] = CLICK_KINDS
) -> tuple[Any, GroundingSample]:
    """Screen ``index`` of the stream ``seed``: the PIL image and its sample."""
    from PIL import Image, ImageDraw

    rng, kind = _stream(seed, index, kinds)
    image = Image.new("RGB", SCREEN, "white")
    draw = ImageDraw.Draw(image)
    body = (2, BAND + 4, SCREEN[0] - 3, SCREEN[1] - 3)
    sample = _DRAWERS[kind](rng, draw, body)
    draw.rectangle((0, 0, SCREEN[0] - 1, BAND - 1), fill=(255, 255, 0))
    _wrap(draw, sample.instruction, (3, 3), SCREEN[0] - 8, 10)
    return image, sample


def _stream(seed: int, index: int, kinds: tuple[str, ...]) -> tuple[random.Random, str]:
    """Screen ``index``'s random stream, after its first draw: the kind."""
    rng = random.Random(f"pixelpilot-synthetic:{seed}:{index}")
    return rng, kinds[rng.randrange(len(kinds))]


def write_synthetic(
    out: str | os.PathLike[str], count: int, seed: int = 0, kinds: tuple[str, ...] = CLICK_KINDS
) -> Path:
    """Write samples ``0 .. count-1`` of stream ``seed`` as episodes under ``out``
    (``out/synthetic-<kind>/seed-<seed>-<i>``): one step (a click), two for ``type`` (the
    click into the field, then the typing); samples already written are kept."""
    from pixelpilot.agent.trajectory import TrajectoryWriter
    from pixelpilot.errors import ConfigError

    unknown = sorted(set(kinds) - set(KINDS))
    if unknown or not kinds or count < 1:
        raise ConfigError(f"synthetic data: kinds among {KINDS} and count >= 1 (got {unknown})")
    root = Path(out)
    for i in range(count):
        folder = root / f"synthetic-{_stream(seed, i, kinds)[1]}" / f"seed-{seed}-{i:07d}"
        if (folder / "trajectory.jsonl").is_file():  # written before: not drawn again
            continue
        image, sample = render(seed, i, kinds)
        header = {
            "task": f"synthetic/{sample.kind}", "env": "synthetic", "seed": seed * 10**7 + i,
            "model": "synthetic", "frame": "pixels", "screen": list(SCREEN),
            "instruction": sample.instruction,
        }  # fmt: skip
        with TrajectoryWriter(folder, header, fsync=False) as writer:
            for shot, step in _episode(image, sample):
                writer.append(step, shot)
            writer.finish(True, 1.0)
    return root


def _episode(image: Any, sample: GroundingSample) -> list[tuple[Any, Any]]:
    """(screenshot, recorded ``Step``) pairs: the click on the target; for ``type`` then the
    typing, on the screen with the field focused; for ``form`` the five steps of filling it
    (``_form_plan``). The last step ends the episode with reward 1."""
    from pixelpilot.agent.trajectory import Step
    from pixelpilot.tools.actions import Action
    from pixelpilot.tools.grammar import format_response

    if sample.kind == "form":
        plan = _form_plan(image, sample)
    else:  # (screenshot, box to click or None, text to type or None)
        plan = [(image, sample.box, None)]
        if sample.text:
            plan.append((_focused(image, sample.box), None, sample.text))
    extra = _labels(sample)
    out = []
    for i, (shot, box, text) in enumerate(plan):
        last = i == len(plan) - 1
        if box is not None:
            x, y = _centre(box)
            action: dict[str, Any] = {"type": "click", "x": x, "y": y}
            response = f"Action: click(start_box='({x},{y})')"
        else:
            action = {"type": "type", "content": text}
            response = format_response(None, Action.from_dict(action), "pixels", SCREEN)
        step = Step(
            index=i, screenshot=f"step-{i:04d}.png", response=response, actions=(action,),
            reward=1.0 if last else 0.0, terminated=last, target=box, extra=extra,
        )  # fmt: skip
        out.append((shot, step))
    return out


def _form_plan(image: Any, sample: GroundingSample) -> list[tuple[Any, Box | None, str | None]]:
    """The five steps of a ``form``: click the first field, type its string, click the
    second, type its string, click the button; each on the screen as the page would show it
    (the clicked field focused, the typed strings in their fields)."""
    assert sample.second is not None and sample.button is not None
    first_filled = _filled(image, sample.box, sample.text, False)
    both_filled = _filled(first_filled, sample.second, sample.second_text, sample.hidden)
    second_width = _text_width(_shown(sample.second_text, sample.hidden))
    return [
        (image, sample.box, None),
        (_focused(image, sample.box), None, sample.text),
        (_focused(first_filled, sample.box, _text_width(sample.text)), sample.second, None),
        (_focused(first_filled, sample.second), None, sample.second_text),
        (_focused(both_filled, sample.second, second_width), sample.button, None),
    ]


def _labels(sample: GroundingSample) -> dict[str, Any]:
    """The step's ``labels`` key (docs/trajectories.md): the texts drawn and their boxes."""
    if not sample.labels:
        return {}
    return {"labels": [[text, *box] for text, box in sample.labels]}

"""Scripted experts for MiniWoB++ tasks: they read the page's DOM (a model never does) and answer
in the UI-TARS action language, like a model, with the acted-on element's box as ``target`` and
every visible word of the task area with its box as ``labels`` (the reading objective's targets,
``train/reading.py``).

``env.unwrapped.expert()`` returns one; ``reset(instruction)`` then ``act(observation)`` per step.
Each expert plans its whole episode from the DOM at its first ``act`` (these pages do not change
until the episode ends) and then emits one action per step; past the plan it answers
``finished()``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pixelpilot.envs.base import BasePolicy, Observation, PolicyOutput, ScreenBox
from pixelpilot.errors import EnvError
from pixelpilot.tools import Action, Click, Finished, Type, format_response

if TYPE_CHECKING:  # pragma: no cover
    from pixelpilot.envs.miniwob import MiniWoBEnv

FRAME = "uitars-1.5"

# In the page: the box of the first element matching a CSS selector, or of the innermost visible
# element under ``root`` whose text is exactly ``text``. Boxes are [x1, y1, x2, y2] page pixels.
_BOX_JS = """([selector, text, root, w, h]) => {
  const rect = (el) => { const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 ? [r.left, r.top, r.right, r.bottom] : null; };
  let el = null;
  if (selector) el = document.querySelector(selector);
  else {
    const norm = (s) => s.replace(/\\s+/g, ' ').trim();
    for (const e of document.querySelectorAll(root + ' *')) {
      if (norm(e.textContent) === text && rect(e)) el = e;  // later = deeper in the tree
    }
  }
  const box = el ? rect(el) : null;
  if (!box) return null;
  // A point of the element that nothing covers, nearest its centre, inside the screenshot.
  const [x1, y1, x2, y2] = [Math.max(box[0], 0), Math.max(box[1], 0),
    Math.min(box[2], w), Math.min(box[3], h)];
  const cx = (x1 + x2) / 2, cy = (y1 + y2) / 2;
  let best = null, bestD = Infinity;
  for (let fy = 0.1; fy < 1; fy += 0.1) for (let fx = 0.1; fx < 1; fx += 0.1) {
    const px = x1 + (x2 - x1) * fx, py = y1 + (y2 - y1) * fy;
    const hit = document.elementFromPoint(px, py);
    const d = (px - cx) ** 2 + (py - cy) ** 2;
    if (hit && (hit === el || el.contains(hit)) && d < bestD) { best = [px, py]; bestD = d; }
  }
  return {box: box, point: best};
}"""

# Every word of a text node under #area that is on screen and not covered: [word, x1, y1, x2, y2]
# in page pixels (the instruction band, #query, is outside #area).
_WORDS_JS = r"""([w, h]) => {
  const out = [], range = document.createRange();
  const area = document.getElementById('area');
  if (!area) return out;
  const walker = document.createTreeWalker(area, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n && out.length < 200; n = walker.nextNode()) {
    const parent = n.parentElement, re = /\S+/g;
    let m;
    while ((m = re.exec(n.textContent)) !== null && out.length < 200) {
      range.setStart(n, m.index); range.setEnd(n, m.index + m[0].length);
      const r = range.getBoundingClientRect();
      if (r.width <= 0 || r.height <= 0 || r.left < 0 || r.top < 0 || r.right > w
          || r.bottom > h) continue;
      const hit = document.elementFromPoint((r.left + r.right) / 2, (r.top + r.bottom) / 2);
      if (!hit || !(hit === parent || parent.contains(hit) || hit.contains(parent))) continue;
      out.push([m[0].slice(0, 200), r.left, r.top, r.right, r.bottom]);
    }
  }
  return out;
}"""

_SHAPE_JS = """() => {
  const words = document.getElementById('query').textContent.trim().split(/\\s+/).slice(3);
  const sizes = ['large', 'small'];
  let size = '', color = '', what = words[words.length - 1];
  for (const w of words.slice(0, -1)) { if (sizes.includes(w)) size = w; else color = w; }
  const big = Math.ceil(shapes.MAX_SIZE / 2) + shapes.MAX_SIZE / 2;
  for (const el of document.querySelectorAll('#area_svg > *')) {
    const tag = el.tagName.toLowerCase();
    let type = 'shape', text = {rect: 'rectangle', circle: 'circle', polygon: 'triangle'}[tag];
    let dim = 0;
    if (tag === 'text') { text = el.textContent; type = /[0-9]/.test(text) ? 'digit' : 'letter';
      dim = parseFloat(el.getAttribute('font-size')); }
    else { const b = el.getBBox(); dim = Math.round(Math.max(b.width, b.height)); }
    const elSize = Math.abs(dim - big) < 0.5 ? 'large' : 'small';
    const ok = (size === '' || size === elSize)
      && (color === '' || el.getAttribute('fill') === color)
      && (what === 'item' || what === text || what === type);
    if (ok) { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }
  }
  return null;
}"""


@dataclass(frozen=True)
class Target:
    box: ScreenBox  # the element's box on screen
    point: tuple[int, int]  # where to click it (visible, nearest the centre)


@dataclass(frozen=True)
class PlannedStep:
    """One step of an expert's plan (not a recorded trajectory step)."""

    thought: str
    action: Action
    target: ScreenBox


def _quoted(text: str) -> list[str]:
    return re.findall(r'"([^"]*)"', text)


class MiniWoBExpert(BasePolicy):
    """Base of the experts: ``plan()`` lists the episode's steps from the DOM."""

    def __init__(self, env: MiniWoBEnv) -> None:
        self.env = env
        self.instruction = ""
        self._plan: list[PlannedStep] | None = None
        self._index = 0

    def reset(self, instruction: str) -> None:
        self.instruction = instruction
        self._plan = None
        self._index = 0

    def act(self, observation: Observation) -> PolicyOutput:
        if self._plan is None:
            self.instruction = self.instruction or observation.instruction
            self._plan = self.plan()
        if self._index >= len(self._plan):
            text = format_response("The task is complete.", Finished(), FRAME, observation.size)
            return PolicyOutput(text)
        step = self._plan[self._index]
        self._index += 1
        text = format_response(step.thought, step.action, FRAME, observation.size)
        return PolicyOutput(text, step.target, labels=self.words())

    def plan(self) -> list[PlannedStep]:  # pragma: no cover - every expert defines it
        raise NotImplementedError

    # -- DOM reading -------------------------------------------------------------------------
    def find(self, selector: str | None = None, *, text: str | None = None, root: str = "#area"):
        """An element (by CSS selector, or by exact text under ``root``): its on-screen box and
        the uncovered point nearest its centre."""
        w, h = self.env.clip[2], self.env.clip[3]
        found = self.env.page.evaluate(_BOX_JS, [selector, text, root, w, h])
        what = selector or repr(text)
        if found is None:
            raise EnvError(f"expert for miniwob/{self.env.task}: no element {what} on the page")
        return self._target(found["box"], found["point"], what)

    def _target(self, raw: list[float], point: list[float] | None, what: str) -> Target:
        w, h = self.env.clip[2], self.env.clip[3]
        x1, y1 = max(0, int(raw[0])), max(0, int(raw[1]))
        x2, y2 = min(w - 1, int(raw[2] + 0.999) - 1), min(h - 1, int(raw[3] + 0.999) - 1)
        if x2 < x1 or y2 < y1 or point is None:
            raise EnvError(f"expert for miniwob/{self.env.task}: {what} is not visible")
        return Target((x1, y1, x2, y2), (int(point[0]), int(point[1])))

    def words(self) -> tuple[tuple[str, ScreenBox], ...]:
        """Every visible word of the task area and its box on screen (whole pixels)."""
        w, h = self.env.clip[2], self.env.clip[3]
        out = []
        for word, *raw in self.env.page.evaluate(_WORDS_JS, [w, h]):
            x1, y1 = int(raw[0]), int(raw[1])
            x2, y2 = min(w - 1, int(raw[2] + 0.999) - 1), min(h - 1, int(raw[3] + 0.999) - 1)
            if word and x2 > x1 and y2 > y1:
                out.append((str(word), (x1, y1, x2, y2)))
        return tuple(out)

    def text(self, selector: str) -> str:
        return self.env.page.evaluate(
            "(s) => { const e = document.querySelector(s); return e ? e.textContent : ''; }",
            selector,
        )

    # -- step builders ---------------------------------------------------------------------------
    @staticmethod
    def click(thought: str, target: Target) -> PlannedStep:
        return PlannedStep(thought, Click(*target.point), target.box)

    @staticmethod
    def type(thought: str, content: str, target: Target) -> PlannedStep:
        return PlannedStep(thought, Type(content), target.box)


class _ClickSelector(MiniWoBExpert):
    selector = ""
    thought = ""

    def plan(self) -> list[PlannedStep]:
        return [self.click(self.thought, self.find(self.selector))]


class ClickTest(_ClickSelector):
    selector, thought = "#subbtn", "I see a single button; I click it."


class FocusText(_ClickSelector):
    selector, thought = "#tt", "Clicking into the text box will focus it."


class ClickDialog(_ClickSelector):
    selector = ".ui-dialog-titlebar-close"
    thought = 'The dialog\'s "x" close button is at the top right of its title bar.'


class ClickTestTwo(MiniWoBExpert):
    def plan(self) -> list[PlannedStep]:
        label = re.search(r"button (\w+)", self.instruction).group(1)  # type: ignore[union-attr]
        return [self.click(f"I click the button labelled {label}.", self.find(text=label))]


class ClickButton(MiniWoBExpert):
    def plan(self) -> list[PlannedStep]:
        label = _quoted(self.instruction)[0]
        box = self.find(text=label)
        return [self.click(f'The "{label}" button is the one to click.', box)]


class ClickButtonSequence(MiniWoBExpert):
    def plan(self) -> list[PlannedStep]:
        return [
            self.click("First, button ONE.", self.find("#subbtn")),
            self.click("Now button TWO.", self.find("#subbtn2")),
        ]


class ClickLink(MiniWoBExpert):
    def plan(self) -> list[PlannedStep]:
        label = _quoted(self.instruction)[0]
        box = self.find(text=label)
        return [self.click(f'I click the link "{label}".', box)]


class ClickDialogTwo(MiniWoBExpert):
    def plan(self) -> list[PlannedStep]:
        label = _quoted(self.instruction)[0]
        if label == "x":
            box = self.find(".ui-dialog-titlebar-close")
        else:
            box = self.find(text=label, root=".ui-dialog-buttonpane")
        return [self.click(f'The dialog has a button labelled "{label}"; I click it.', box)]


class ClickTab(MiniWoBExpert):
    def plan(self) -> list[PlannedStep]:
        number = re.search(r"#(\d+)", self.instruction).group(1)  # type: ignore[union-attr]
        box = self.find(f'#area ul a[href="#tabs-{number}"]')
        return [self.click(f"Tab #{number} is in the tab bar; I click it.", box)]


class ClickColor(MiniWoBExpert):
    def plan(self) -> list[PlannedStep]:
        color = re.search(r"on the (\S+) colored", self.instruction).group(1)  # type: ignore[union-attr]
        box = self.find(f'#area .color[data-color="{color}"]')
        return [self.click(f"The {color} box is the one to click.", box)]


class ClickShape(MiniWoBExpert):
    def plan(self) -> list[PlannedStep]:
        raw = self.env.page.evaluate(_SHAPE_JS)
        what = self.instruction.removeprefix("Click on a ").strip()
        if raw is None:
            raise EnvError(f"expert for miniwob/click-shape: no shape matches {what!r}")
        centre = [(raw[0] + raw[2]) / 2, (raw[1] + raw[3]) / 2]
        box = self._target(raw, centre, f"shape matching {what!r}")
        return [self.click(f"I look for a {what} and click it.", box)]


class FocusTextTwo(MiniWoBExpert):
    def plan(self) -> list[PlannedStep]:
        nth = int(re.search(r"(\d+)(?:st|nd|rd|th)", self.instruction).group(1))  # type: ignore[union-attr]
        box = self.find(f"#area input:nth-of-type({nth})")
        return [self.click(f"The input text box number {nth} is the one to focus.", box)]


class EnterText(MiniWoBExpert):
    def plan(self) -> list[PlannedStep]:
        value = _quoted(self.instruction)[0]
        field = self.find("#tt")
        return [
            self.click("First I click into the text field.", field),
            self.type(f'Now I type "{value}".', value, field),
            self.click("Finally I press Submit.", self.find("#subbtn")),
        ]


class EnterPassword(MiniWoBExpert):
    def plan(self) -> list[PlannedStep]:
        value = _quoted(self.text("#query"))[0]
        first, second = self.find("#password"), self.find("#verify")
        return [
            self.click("I click the password field.", first),
            self.type("I type the password.", value, first),
            self.click("Then the verify password field.", second),
            self.type("I type the same password again.", value, second),
            self.click("Now I press Submit.", self.find("#subbtn")),
        ]


class LoginUser(MiniWoBExpert):
    def plan(self) -> list[PlannedStep]:
        user, password = _quoted(self.text("#query"))[:2]
        name_box, pass_box = self.find("#username"), self.find("#password")
        return [
            self.click("I click the username field.", name_box),
            self.type(f'I type the username "{user}".', user, name_box),
            self.click("Then the password field.", pass_box),
            self.type("I type the password.", password, pass_box),
            self.click("Now I press Login.", self.find("#subbtn")),
        ]


EXPERTS: dict[str, Callable[[Any], MiniWoBExpert]] = {
    "click-test": ClickTest,
    "click-test-2": ClickTestTwo,
    "click-button": ClickButton,
    "click-button-sequence": ClickButtonSequence,
    "click-link": ClickLink,
    "click-dialog": ClickDialog,
    "click-dialog-2": ClickDialogTwo,
    "click-tab": ClickTab,
    "click-color": ClickColor,
    "click-shape": ClickShape,
    "focus-text": FocusText,
    "focus-text-2": FocusTextTwo,
    "enter-text": EnterText,
    "enter-password": EnterPassword,
    "login-user": LoginUser,
}

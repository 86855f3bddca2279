"""The desktop tasks: each picks its episode from the seed, checks success, plans its expert."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import numpy as np

from pixelpilot.envs.desktop_tasks.base import DesktopTask, Plan, centre, click, position
from pixelpilot.errors import DependencyNotInstalled
from pixelpilot.tools.actions import Drag, Finished, Hotkey, LeftDouble, Type, Wait

WORDS = [
    "amber",
    "river",
    "falcon",
    "maple",
    "copper",
    "lantern",
    "meadow",
    "harbor",
    "velvet",
    "orbit",
    "pepper",
    "glacier",
    "summit",
    "willow",
    "cobalt",
    "saffron",
]
NAMES = [
    ("Zoë Martin", "zoe.martin"),
    ("José Álvarez", "jose.alvarez"),
    ("Søren Kierk", "soren.kierk"),
    ("Renée Dubois", "renee.dubois"),
    ("Łukasz Nowak", "lukasz.nowak"),
    ("Ada Lovelace", "ada.lovelace"),
    ("Grace Hopper", "grace.hopper"),
    ("Alan Turing", "alan.turing"),
    ("Chloé Bernard", "chloe.bernard"),
    ("Jürgen Weiß", "juergen.weiss"),
]
MENUS = {
    "File": ["New", "Open…", "Save", "Export", "Quit"],
    "Edit": ["Undo", "Cut", "Copy", "Paste", "Find"],
    "View": ["Zoom In", "Zoom Out", "Full Screen", "Sidebar"],
    "Tools": ["Spelling", "Word Count", "Macros", "Options"],
}
COLOURS = ["red", "blue", "green", "orange", "purple"]


def _pick(rng: np.random.Generator, items: list[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


class TerminalFile(DesktopTask):
    """Type a shell command in xterm that writes a file with given content."""

    task_id = "desktop/terminal-file"
    description = "create a file from a terminal (xterm)"
    title = "Terminal"

    def _episode(self, rng: np.random.Generator) -> str:
        xterm = shutil.which("xterm")
        if xterm is None:
            raise DependencyNotInstalled("xterm", hint="apt-get install -y xterm")
        name = f"{_pick(rng, WORDS)}-{int(rng.integers(10, 100))}.txt"
        text = f"{_pick(rng, WORDS)} {_pick(rng, WORDS)}"
        w, h = self.screen
        x, y = position(rng, w, 660), position(rng, h, 400)
        self.params = {"name": name, "text": text}
        argv = [xterm, "-T", self.title, "-fa", "DejaVu Sans Mono", "-fs", "11"]
        argv += ["-geometry", f"80x22+{x}+{y}", "-bg", "white", "-fg", "black", "-e", "env"]
        ready = self.home / ".shell-ready"  # bash touches it before its first prompt
        argv += [f"PROMPT_COMMAND=: > {ready}; unset PROMPT_COMMAND", "bash"]
        self.launch(argv)
        self.wait_for(lambda: self.window(self.title), "the terminal window")
        self.wait_for(ready.exists, "the shell's first prompt")
        return f"In the terminal, create a file named {name} in the home folder containing {text}"

    def check_success(self) -> bool:
        path = self.home / self.params["name"]
        try:
            return path.read_text(encoding="utf-8").strip() == self.params["text"]
        except OSError:
            return False

    def plan(self, memory: dict[str, Any]) -> Plan:
        if self.check_success():
            return "The file exists with the right content.", Finished(), None
        win = self.window(self.title)
        if win is None:
            return "The terminal is not up yet.", Wait(), None
        box = (win["x"], win["y"], win["x"] + win["width"] - 1, win["y"] + win["height"] - 1)
        if not memory.get("focused"):
            memory["focused"] = True
            return click("Click into the terminal to focus it.", box)
        if not memory.get("typed"):
            memory["typed"] = True
            p = self.params
            command = f"echo '{p['text']}' > ~/{p['name']}\n"
            return "Write the text into the file with echo.", Type(content=command), box
        return "The command ran; done.", Finished(), None


class FormFill(DesktopTask):
    """Fill a small Tk form (names may hold non-ASCII letters) and submit it."""

    task_id = "desktop/form-fill"
    description = "fill and submit a Tk form"
    title = "Sign-up form"

    def _episode(self, rng: np.random.Generator) -> str:
        name, handle = _pick(rng, NAMES)
        email = f"{handle}{int(rng.integers(1, 100))}@example.org"
        self.params = {"Name": name, "Email": email}
        w, h = self.screen
        x, y = position(rng, w, 360), position(rng, h, 200)
        self.launch_tk("form", self.title, x=x, y=y, fields=["Name", "Email"])
        return f"Fill in the sign-up form with name {name} and email {email}, then submit it."

    def check_success(self) -> bool:
        return self.result() == self.params

    def plan(self, memory: dict[str, Any]) -> Plan:
        if self.check_success():
            return "The form was submitted.", Finished(), None
        state = self.fresh_state()
        fields = state.get("fields", {})
        for field, want in self.params.items():
            info = fields.get(field)
            if info is None:
                return "The form is not ready yet.", Wait(), None
            if info["value"] == want:
                continue
            if info["value"] and info["focused"]:  # a wrong value: select all, delete
                if memory.get("last") == "hotkey" and memory.get("keys") == ["ctrl", "/"]:
                    return f"Delete the {field} text.", Hotkey(keys=("backspace",)), None
                return f"Select the {field} text.", Hotkey(keys=("ctrl", "/")), None
            if not info["focused"]:
                return click(f"Click the {field} field.", info["box"])
            return f"Type the {field.lower()}.", Type(content=want), tuple(info["box"])
        return click("Both fields are filled; press Submit.", state["submit"])


class MenuSelect(DesktopTask):
    """Choose an item from a drop-down menu."""

    task_id = "desktop/menu-select"
    description = "open a menu and choose an item"
    title = "Notes"

    def _episode(self, rng: np.random.Generator) -> str:
        menu = _pick(rng, list(MENUS))
        item = _pick(rng, MENUS[menu])
        self.params = {"menu": menu, "item": item}
        w, h = self.screen
        x, y = position(rng, w, 460), position(rng, h, 330)
        self.launch_tk("menu", self.title, x=x, y=y, menus=MENUS)
        return f"In the Notes window, choose {item} from the {menu} menu."

    def check_success(self) -> bool:
        return self.result() == self.params

    def plan(self, memory: dict[str, Any]) -> Plan:
        if self.check_success():
            return "The item was chosen.", Finished(), None
        state = self.fresh_state()
        menu, item = self.params["menu"], self.params["item"]
        posted = state.get("posted", {}).get(menu)
        if posted and item in posted:
            return click(f"The {menu} menu is open; click {item}.", posted[item])
        if "buttons" not in state:
            return "The window is not ready yet.", Wait(), None
        return click(f"Open the {menu} menu.", state["buttons"][menu])


class DragToBox(DesktopTask):
    """Drag a coloured token into a dashed target box."""

    task_id = "desktop/drag-to-box"
    description = "drag an item into a box"
    title = "Sorting board"

    def _episode(self, rng: np.random.Generator) -> str:
        colour = _pick(rng, COLOURS)
        left = bool(rng.integers(2))
        token = [int(rng.integers(20, 160)), int(rng.integers(20, 270))]
        target = [int(rng.integers(300, 360)), int(rng.integers(20, 210))]
        if not left:
            token[0] += 320
            target[0] -= 280
        w, h = self.screen
        x, y = position(rng, w, 540), position(rng, h, 370)
        self.params = {"colour": colour}
        self.launch_tk("drag", self.title, x=x, y=y, token=token, target=target, colour=colour)
        return f"Drag the {colour} circle into the box labelled Drop here."

    def check_success(self) -> bool:
        result = self.result()
        return bool(result and result.get("dropped"))

    def plan(self, memory: dict[str, Any]) -> Plan:
        if self.check_success():
            return "The circle is inside the box.", Finished(), None
        state = self.fresh_state()
        if "token" not in state:
            return "The board is not ready yet.", Wait(), None
        (x1, y1), (x2, y2) = centre(state["token"]), centre(state["target"])
        thought = f"Drag the {self.params['colour']} circle onto the box."
        return thought, Drag(x1=x1, y1=y1, x2=x2, y2=y2), tuple(state["token"])


class CopyCode(DesktopTask):
    """Select an order code in a read-only field and copy it to the clipboard."""

    task_id = "desktop/copy-code"
    description = "select text and copy it to the clipboard"
    title = "Order status"

    def _episode(self, rng: np.random.Generator) -> str:
        letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
        code = "".join(_pick(rng, list(letters)) for _ in range(2))
        code += str(int(rng.integers(1000, 10000)))
        text = f"Order {code} ships on {_pick(rng, ['Monday', 'Tuesday', 'Friday'])}."
        self.params = {"code": code}
        w, h = self.screen
        x, y = position(rng, w, 360), position(rng, h, 100)
        self.launch_tk("copy", self.title, x=x, y=y, text=text, code=code)
        return "Copy the order number shown in the Order status window to the clipboard."

    def clipboard(self) -> str | None:
        xclip = shutil.which("xclip")
        if xclip is None:
            raise DependencyNotInstalled("xclip", hint="apt-get install -y xclip")
        assert self.display is not None
        try:
            done = subprocess.run(
                [xclip, "-o", "-selection", "clipboard"],
                env=self.display.env(),
                capture_output=True,
                text=True,
                timeout=3,
            )
        except subprocess.TimeoutExpired:
            return None
        return done.stdout if done.returncode == 0 else None

    def check_success(self) -> bool:
        return (self.clipboard() or "").strip() == self.params["code"]

    def plan(self, memory: dict[str, Any]) -> Plan:
        if self.check_success():
            return "The code is on the clipboard.", Finished(), None
        code = self.fresh_state().get("code")
        if code is None:
            return "The window is not ready yet.", Wait(), None
        if memory.get("last") == "left_double":
            return "The code is selected; copy it.", Hotkey(keys=("ctrl", "c")), tuple(code)
        x, y = centre(code)
        return "Double-click the order number to select it.", LeftDouble(x=x, y=y), tuple(code)


class DialogClose(DesktopTask):
    """Answer an 'unsaved changes' dialog with the named button."""

    task_id = "desktop/dialog-close"
    description = "close a dialog with the right button"
    title = "Editor"
    dialog_title = "Unsaved changes"

    def _episode(self, rng: np.random.Generator) -> str:
        buttons = ["Save", "Don't Save", "Cancel"]
        rng.shuffle(buttons)
        answer = _pick(rng, buttons)
        self.params = {"button": answer}
        w, h = self.screen
        x, y = position(rng, w, 560), position(rng, h, 380)
        dx, dy = x + int(rng.integers(40, 160)), y + int(rng.integers(60, 180))
        doc = " ".join(_pick(rng, WORDS) for _ in range(12))
        self.launch_tk(
            "dialog",
            self.title,
            x=x,
            y=y,
            dx=dx,
            dy=dy,
            buttons=buttons,
            document=doc,
            dialog_title=self.dialog_title,
            question="Save the changes to this document?",
        )
        self.wait_for(lambda: self.window(self.dialog_title), "the dialog")
        return f"Close the Unsaved changes dialog by pressing {answer}."

    def check_success(self) -> bool:
        return self.result() == self.params

    def plan(self, memory: dict[str, Any]) -> Plan:
        if self.check_success():
            return "The dialog is closed.", Finished(), None
        buttons = self.fresh_state().get("buttons")
        if not buttons:
            return "The dialog is not ready yet.", Wait(), None
        label = self.params["button"]
        return click(f"Press {label} in the dialog.", buttons[label])


TASKS: dict[str, type[DesktopTask]] = {
    cls.task_id.split("/", 1)[1]: cls
    for cls in (TerminalFile, FormFill, MenuSelect, DragToBox, CopyCode, DialogClose)
}

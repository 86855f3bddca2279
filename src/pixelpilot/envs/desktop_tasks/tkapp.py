"""Small Tk applications of the desktop tasks; run inside the sandbox as a script.

``python3 tkapp.py CONFIG.json`` reads ``{"app": name, "x": int, "y": int, ...}``, shows the app
at (x, y), and keeps two files in the current directory (the sandbox home) up to date:
``state.json`` (widget boxes in screen pixels and widget contents, for scripted experts and
never shown to a model) and, once the user completes the app's action, ``result.json`` (what
the task checker reads). Both are written atomically. The cursor does not blink, so equal
states give equal screenshots. Standard library only: it runs with the system Python.
"""

import json
import os
import sys
import time
import tkinter as tk

FONT = ("DejaVu Sans", 12)


def write_json(name, data):
    tmp = name + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False)
    os.replace(tmp, name)


def box(widget):
    x, y = widget.winfo_rootx(), widget.winfo_rooty()
    return [x, y, x + widget.winfo_width() - 1, y + widget.winfo_height() - 1]


class App:
    def __init__(self, cfg):
        self.cfg = cfg
        self.root = tk.Tk(className="pixelpilot")
        self.root.option_add("*insertOffTime", 0)
        self.root.option_add("*Font", FONT)
        self.root.title(cfg.get("title", "App"))
        self.root.geometry(f"+{cfg['x']}+{cfg['y']}")
        self.result = None
        self.build()
        self.root.after(100, self.publish)

    def build(self):
        raise NotImplementedError

    def state(self):
        return {}

    def finish(self, **result):
        self.result = result
        write_json("result.json", result)

    def publish(self):
        try:
            self.root.update_idletasks()
            data = {"ready": True, "result": self.result, **self.state()}
            write_json("state.json", {**data, "time": time.time()})  # time: for freshness
        except tk.TclError:
            pass
        self.root.after(80, self.publish)


class FormApp(App):
    """Labelled entries and a Submit button; the result holds the entries' text."""

    def build(self):
        self.entries = {}
        frame = tk.Frame(self.root, padx=16, pady=12)
        frame.pack()
        for row, field in enumerate(self.cfg["fields"]):
            tk.Label(frame, text=field + ":").grid(row=row, column=0, sticky="e", pady=6)
            entry = tk.Entry(frame, width=22)
            entry.grid(row=row, column=1, padx=8, pady=6)
            self.entries[field] = entry
        self.button = tk.Button(frame, text="Submit", command=self.submit)
        self.button.grid(row=len(self.entries), column=1, sticky="e", pady=8)

    def submit(self):
        self.finish(**{k: e.get() for k, e in self.entries.items()})

    def state(self):
        focus = self.root.focus_get()
        return {
            "fields": {
                k: {"box": box(e), "value": e.get(), "focused": e is focus}
                for k, e in self.entries.items()
            },
            "submit": box(self.button),
        }


class MenuApp(App):
    """Menu buttons with drop-down menus; the result names the chosen item."""

    def build(self):
        bar = tk.Frame(self.root, relief="raised", bd=1)
        bar.pack(fill="x")
        self.buttons = {}
        self.menus = {}
        for name, items in self.cfg["menus"].items():
            button = tk.Menubutton(bar, text=name, padx=10, pady=4)
            menu = tk.Menu(button, tearoff=0)
            for item in items:
                menu.add_command(label=item, command=lambda n=name, i=item: self.choose(n, i))
            button.configure(menu=menu)
            button.pack(side="left")
            self.buttons[name], self.menus[name] = button, menu
        self.label = tk.Label(self.root, text="Nothing chosen yet.", width=44, height=10)
        self.label.pack(padx=10, pady=10)

    def choose(self, menu, item):
        self.label.configure(text=f"You chose {menu} > {item}.")
        self.finish(menu=menu, item=item)

    def state(self):
        posted = {}
        for name, menu in self.menus.items():
            if not menu.winfo_ismapped():
                continue
            x, y, w = menu.winfo_rootx(), menu.winfo_rooty(), menu.winfo_width()
            end = menu.index("end")
            items = {}
            for i in range(end + 1):
                top = menu.yposition(i)
                bottom = menu.yposition(i + 1) if i < end else menu.winfo_height()
                items[menu.entrycget(i, "label")] = [x, y + top, x + w - 1, y + bottom - 1]
            posted[name] = items
        return {"buttons": {k: box(b) for k, b in self.buttons.items()}, "posted": posted}


class DragApp(App):
    """A canvas with a token and a target box; the result says whether it was dropped in."""

    def build(self):
        w, h = 520, 340
        self.canvas = tk.Canvas(self.root, width=w, height=h, bg="white", highlightthickness=0)
        self.canvas.pack()
        tx, ty = self.cfg["target"]
        self.target = (tx, ty, tx + 140, ty + 110)
        self.canvas.create_rectangle(*self.target, outline="black", width=3, dash=(6, 3))
        self.canvas.create_text(tx + 70, ty + 55, text="Drop here")
        ix, iy = self.cfg["token"]
        colour = self.cfg["colour"]
        self.token = self.canvas.create_oval(ix, iy, ix + 50, iy + 50, fill=colour, tags="token")
        self.canvas.tag_bind("token", "<ButtonPress-1>", self.grab)
        self.canvas.tag_bind("token", "<B1-Motion>", self.move)
        self.canvas.tag_bind("token", "<ButtonRelease-1>", self.drop)
        self.last = None

    def grab(self, event):
        self.last = (event.x, event.y)

    def move(self, event):
        if self.last is not None:
            self.canvas.move(self.token, event.x - self.last[0], event.y - self.last[1])
            self.last = (event.x, event.y)

    def drop(self, event):
        self.last = None
        x1, y1, x2, y2 = self.canvas.coords(self.token)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        t = self.target
        inside = t[0] <= cx <= t[2] and t[1] <= cy <= t[3]
        self.finish(dropped=inside, x=cx, y=cy)

    def state(self):
        ox, oy = self.canvas.winfo_rootx(), self.canvas.winfo_rooty()
        x1, y1, x2, y2 = (int(v) for v in self.canvas.coords(self.token))
        t = self.target
        return {
            "token": [ox + x1, oy + y1, ox + x2, oy + y2],
            "target": [ox + t[0], oy + t[1], ox + t[2], oy + t[3]],
        }


class CopyApp(App):
    """A line of text with a code in it that can be selected but not edited; the checker
    reads the clipboard."""

    def build(self):
        text = self.cfg["text"]
        tk.Label(self.root, text="Your order confirmation:").pack(padx=12, pady=(12, 4))
        self.text = tk.Text(self.root, height=1, width=len(text) + 2, wrap="none")
        self.text.insert("1.0", text)
        for event in (
            "<<Paste>>",
            "<<Cut>>",
            "<<PasteSelection>>",
            "<Return>",
            "<BackSpace>",
            "<Delete>",
        ):
            self.text.bind(event, lambda e: "break")
        self.text.bind("<KeyPress>", self.key)
        self.text.pack(padx=12, pady=(0, 14))

    def key(self, event):
        if event.state & 4 or not event.char:  # Control chords and bare modifiers pass
            return None
        return "break"

    def state(self):
        text, code = self.cfg["text"], self.cfg["code"]
        start = text.index(code)
        first = self.text.bbox(f"1.{start}")
        last = self.text.bbox(f"1.{start + len(code) - 1}")
        if not first or not last:
            return {}
        ox, oy = self.text.winfo_rootx(), self.text.winfo_rooty()
        return {
            "code": [
                ox + first[0],
                oy + first[1],
                ox + last[0] + last[2] - 1,
                oy + first[1] + first[3] - 1,
            ]
        }


class DialogApp(App):
    """An editor window with a modal 'unsaved changes' dialog; the result is the button."""

    def build(self):
        self.root.geometry(f"560x360+{self.cfg['x']}+{self.cfg['y']}")
        text = tk.Text(self.root, width=50, height=12)
        text.insert("1.0", self.cfg["document"])
        text.pack(fill="both", expand=True)
        self.dialog = tk.Toplevel(self.root)
        self.dialog.title(self.cfg["dialog_title"])
        self.dialog.transient(self.root)
        self.dialog.geometry(f"+{self.cfg['dx']}+{self.cfg['dy']}")
        tk.Label(self.dialog, text=self.cfg["question"], padx=20, pady=16).pack()
        row = tk.Frame(self.dialog, pady=10)
        row.pack()
        self.buttons = {}
        for label in self.cfg["buttons"]:
            b = tk.Button(row, text=label, width=10, command=lambda lab=label: self.press(lab))
            b.pack(side="left", padx=6)
            self.buttons[label] = b
        self.dialog.protocol("WM_DELETE_WINDOW", lambda: self.press("(closed)"))

    def press(self, label):
        self.finish(button=label)
        self.dialog.destroy()

    def state(self):
        if not self.dialog.winfo_exists():
            return {"dialog": False}
        return {"dialog": True, "buttons": {k: box(b) for k, b in self.buttons.items()}}


APPS = {"form": FormApp, "menu": MenuApp, "drag": DragApp, "copy": CopyApp, "dialog": DialogApp}

if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as fh:
        config = json.load(fh)
    APPS[config["app"]](config).root.mainloop()

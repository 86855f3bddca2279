"""Key names of the action language: the canonical lower-case names and their aliases.

The names are the union of what UI-TARS models emit and what pyautogui / xdotool / Playwright
can press; ``normalize_key`` maps aliases (``Return``, ``esc``, ``cmd``, ``ArrowLeft`` ...) to
the canonical name and refuses anything else.
"""

from __future__ import annotations

# Lower-case key names accepted in hotkeys. The union of what UI-TARS models emit and what
# pyautogui / xdotool / Playwright can press; aliases are normalised by ``normalize_key``.
_NAMED_KEYS = set(
    "enter return tab space backspace delete del escape esc insert home end pageup pagedown "
    "up down left right ctrl control shift alt option meta cmd command win super capslock "
    "numlock scrolllock printscreen pause menu apps arrowup arrowdown arrowleft arrowright "
    "volumeup volumedown volumemute playpause nexttrack prevtrack clear fn ctrlleft "
    "ctrlright shiftleft shiftright altleft altright".split()
)
_NAMED_KEYS |= {f"f{i}" for i in range(1, 25)}
_KEY_ALIASES = {
    "return": "enter",
    "esc": "escape",
    "del": "delete",
    "control": "ctrl",
    "cmd": "meta",
    "command": "meta",
    "win": "meta",
    "super": "meta",
    "option": "alt",
    "arrowup": "up",
    "arrowdown": "down",
    "arrowleft": "left",
    "arrowright": "right",
    "page_up": "pageup",
    "page_down": "pagedown",
    "pgup": "pageup",
    "pgdn": "pagedown",
    "space_bar": "space",
    "spacebar": "space",
    " ": "space",
    "plus": "+",
    "minus": "-",
}
_PUNCTUATION = set("`~!@#$%^&*()-_=+[]{}\\|;:'\",.<>/?")


def normalize_key(name: str) -> str:
    """Return the canonical lower-case name of a key, or raise ``ValueError``."""
    key = name.strip().lower()
    if name == " ":
        key = " "
    key = _KEY_ALIASES.get(key, key)
    if key in _NAMED_KEYS or (len(key) == 1 and (key.isalnum() or key in _PUNCTUATION)):
        return key
    raise ValueError(f"keys: unknown key name {name!r}")

"""Text the tiny tokenizers are trained on: the UI-TARS action language and prompt phrases.

Generated in code (seeded), so a tiny checkpoint never needs a download. The tokenizer it
trains splits action text into few tokens, which keeps tiny models fast to train on CPU.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

_PROMPT = """You are a GUI agent. You are given a task and your action history, with screenshots.
You need to perform the next action to complete the task.
## Output Format
Thought: ...
Action: ...
## Action Space
click(start_box='<|box_start|>(x1,y1)<|box_end|>')
left_double(start_box='<|box_start|>(x1,y1)<|box_end|>')
right_single(start_box='<|box_start|>(x1,y1)<|box_end|>')
drag(start_box='<|box_start|>(x1,y1)<|box_end|>', end_box='<|box_start|>(x3,y3)<|box_end|>')
hotkey(key='ctrl c')
type(content='xxx')
scroll(start_box='<|box_start|>(x1,y1)<|box_end|>', direction='down or up or right or left')
wait()
finished(content='xxx')
call_user()
## Note
- Use English in the Thought part.
- Write a small plan and finally summarize your next action (with its target element) in one
sentence in the Thought part.
## User Instruction
"""

_WORDS = (
    "click the button submit ok cancel search box text field link tab menu item checkbox "
    "enter type select option scroll down up left right drag slider to the target input "
    "login username password next previous close open file edit view window dialog list "
    "I need to find and press on element first then wait for page load done task finished "
    "red blue green yellow circle square triangle shape number word copy paste email date"
).split()
_KEYS = ("enter", "ctrl c", "ctrl v", "ctrl a", "tab", "escape", "backspace", "shift tab")


def _action(rng: random.Random) -> str:
    x, y = rng.randint(0, 1000), rng.randint(0, 1000)
    box = f"<|box_start|>({x},{y})<|box_end|>"
    kind = rng.randrange(8)
    if kind <= 2:
        name = ("click", "left_double", "right_single")[kind]
        point = box if rng.random() < 0.5 else f"({x},{y})"
        return f"{name}(start_box='{point}')"
    if kind == 3:
        return f"drag(start_box='({x},{y})', end_box='({rng.randint(0, 1000)},{y})')"
    if kind == 4:
        return f"type(content='{' '.join(rng.choices(_WORDS, k=rng.randint(1, 3)))}')"
    if kind == 5:
        return f"hotkey(key='{rng.choice(_KEYS)}')"
    if kind == 6:
        return f"scroll(start_box='({x},{y})', direction='{rng.choice(('up', 'down'))}')"
    return rng.choice(("wait()", "finished(content='done')", "call_user()"))


def corpus(seed: int = 0, lines: int = 3000) -> Iterator[str]:
    """Deterministic training text: the prompt, then thought/action lines."""
    rng = random.Random(seed)
    yield _PROMPT
    for _ in range(lines):
        thought = " ".join(rng.choices(_WORDS, k=rng.randint(3, 12)))
        yield f"Thought: {thought.capitalize()}.\nAction: {_action(rng)}"

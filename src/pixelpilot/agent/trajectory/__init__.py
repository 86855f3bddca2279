"""The trajectory format: one episode = one directory, append-only.

```
episode-dir/
  trajectory.jsonl   line 1: header {"format": "pixelpilot.trajectory", "version": 1, ...}
                     one line per step (``Step.to_dict``)
                     last line when finished: {"end": true, "success", "total_reward", ...}
  step-0000.png ...
```

Guarantees (see ``docs/trajectories.md``):

- a step's screenshot file is complete on disk (written to a temporary name, then renamed)
  before its JSON line is written; each line is flushed and fsynced, so a process killed at any
  moment leaves every completed step readable;
- a reader rejects a malformed file with ``TrajectoryFormatError(path, line, problem)``;
- an episode without the end line reads as unfinished (``Episode.finished is False``);
- a *final* line that is not valid JSON and has no newline is a write cut short by a crash:
  it is dropped and the episode reads as unfinished with ``Episode.incomplete_last_line`` set
  (a final line that parses but lost only its newline is kept). Invalid JSON anywhere else,
  or in a header, is an error.

A trajectory file is untrusted input (it may come from anyone). The reader checks the type of
every field it hands on: header ``screen`` is two positive integers, ``seed`` an integer or
null, ``env_kwargs`` an object; every action is a valid canonical action (coordinates become
integers); ``target`` is four finite numbers; a screenshot is a plain file name inside the
episode folder (no path, no ``..``, no symlink out of it) holding a PNG within the size
limits of ``pixelpilot.untrusted``. Anything else is a ``TrajectoryFormatError``; nothing from
the file reaches a process, a path or HTML unchecked.

The package: ``step`` (the constants and ``Step``), ``writer`` (``TrajectoryWriter``),
``reader`` (``Episode``, ``TrajectoryReader``, ``read_trajectory``, ``iter_episodes``); every
name is importable from ``pixelpilot.agent.trajectory``.
"""

from pixelpilot.agent.trajectory.reader import (
    Episode,
    TrajectoryReader,
    is_episode_dir,
    iter_episodes,
    read_trajectory,
)
from pixelpilot.agent.trajectory.step import (
    FILE_NAME,
    FORMAT,
    HEADER_KEYS,
    STEP_KEYS,
    VERSION,
    Step,
    screenshot_name,
)
from pixelpilot.agent.trajectory.writer import TrajectoryWriter

__all__ = [
    "FILE_NAME", "FORMAT", "HEADER_KEYS", "STEP_KEYS", "VERSION", "Episode", "Step",
    "TrajectoryReader", "TrajectoryWriter", "is_episode_dir", "iter_episodes",
    "read_trajectory", "screenshot_name",
]  # fmt: skip

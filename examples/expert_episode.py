"""Run a MiniWoB++ task's scripted expert through the agent loop and record the episode.

Run: .venv/bin/python examples/expert_episode.py [--task miniwob/click-button] [--seed 0]
     [--out runs/expert-example]

The env is headless Chromium, sandboxed to the task's folder; the expert answers in the action
language like a model would, so the same loop, parser and trajectory writer run as for a real
model. No model weights are needed. Open the recording with `pixelpilot view OUT`.
"""

from __future__ import annotations

import argparse
import json

from pixelpilot.agent import Agent
from pixelpilot.envs import make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="miniwob/click-button", help="a MiniWoB task id")
    parser.add_argument("--seed", type=int, default=0, help="the episode's seed")
    parser.add_argument("--out", default="runs/expert-example", help="trajectory folder")
    args = parser.parse_args()

    with make(args.task) as env:
        expert = env.unwrapped.expert()  # a scripted policy that answers in the action language
        result = Agent(policy=expert, env=env).run(seed=args.seed, out=args.out)
    summary = {
        "task": args.task,
        "seed": args.seed,
        "success": result.success,
        "steps": result.steps,
        "trajectory": str(result.trajectory),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

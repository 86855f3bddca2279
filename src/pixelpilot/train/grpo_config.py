"""``GRPOConfig``: the options of ``pixelpilot train grpo`` (offline and ``--online``).

A frozen dataclass with a help text per field, extending the trainer core's ``TrainConfig``; the
same fields are the Python API and the command line's options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pixelpilot.errors import ConfigError
from pixelpilot.train.config import TrainConfig, opt
from pixelpilot.train.grpo_loss import LOSS_TYPES, SCALE_REWARDS, LossSettings


@dataclass(frozen=True, kw_only=True)
class GRPOConfig(TrainConfig):
    """Group relative policy optimisation (see the module docstring)."""

    data: str = field(
        default="",
        metadata={
            "help": "Training data: a file or folder in --format (as eval offline reads); "
            "leave out with --online.",
            "cli_default": "",
        },
    )
    lr: float = opt(1e-6, "Peak learning rate (AdamW).")
    group: int = opt(8, "Answers sampled per prompt (G).")
    num_iterations: int = opt(1, "Optimisation passes (optimizer updates) per generated batch.")
    epsilon: float = opt(0.2, "Lower clip of the ratio: 1 - epsilon.")
    epsilon_high: float | None = opt(
        None, "Upper clip: 1 + epsilon_high (default --epsilon; DAPO uses 0.28)."
    )
    beta: float = opt(0.0, "Weight of the k3 KL term to the reference model (0 = no reference).")
    loss: str = opt(
        "grpo", "Loss normalisation: grpo (sequence mean), dapo (token mean), dr_grpo (constant)."
    )
    scale_rewards: str = opt(
        "group", "Advantage scaling: group (std of the group), batch, none (Dr. GRPO)."
    )
    reward: str = opt(
        "format=0.1,type=0.2,distance=0.7",
        "Rewards and weights (format, type, point, distance, text, chars).",
    )
    reward_fn: str | None = opt(
        None, "Extra reward callables: module:function[=weight], comma-separated."
    )
    temperature: float = opt(1.0, "Sampling temperature of the G answers (the loss uses the same).")
    top_p: float = opt(1.0, "Nucleus sampling threshold.")
    max_new_tokens: int = opt(64, "Tokens per sampled answer (also dr_grpo's constant).")
    dynamic_sampling: bool = opt(
        False, "Replace groups with equal rewards by fresh prompts (DAPO)."
    )
    max_resample: int = opt(3, "Rounds of fresh prompts per step with --dynamic-sampling.")
    replay_successes: bool = opt(False, "Put a recorded success into groups without one (ARPO).")
    decoding_aids: bool = opt(
        False,
        "Sample and score the answers with the decoding aids --model declares in "
        "pixelpilot.json (pointer guide, well-formed points and actions, quoted typing), so "
        "GRPO trains the policy that evaluation runs (offline only).",
    )
    online: str | None = opt(None, "Train on live rollouts of these TASKS instead of DATA.")
    seeds: str = opt(
        "100000-199999",
        "Online: the seed range rollouts draw from (keep it apart from evaluation seeds).",
    )
    episode_steps: int = opt(8, "Online: step limit of one rollout episode.")
    online_reward: str = opt(
        "success", "Online: episode reward, success (1/0 from the env) or env (its raw reward)."
    )
    rollout_workers: int = opt(
        0,
        "Online: worker processes that run the rollouts (0 = in the trainer process; the "
        "result is the same, see docs/training.md).",
    )
    rollout_backend: str = opt(
        "local", "Online: the rollout workers' pool, local (spawned processes) or ray."
    )

    def validate(self) -> None:
        TrainConfig.validate(_Online(self) if self.online else self)
        checks = [
            (self.group >= 2, "group", f"--group must be at least 2, got {self.group}"),
            (self.num_iterations >= 1, "num_iterations", "--num-iterations must be >= 1"),
            (self.loss in LOSS_TYPES, "loss", f"--loss must be one of {', '.join(LOSS_TYPES)}"),
            (self.scale_rewards in SCALE_REWARDS, "scale_rewards",
             f"--scale-rewards must be one of {', '.join(SCALE_REWARDS)}"),
            (self.temperature > 0, "temperature", "--temperature must be positive"),
            (0 < self.top_p <= 1, "top_p", "--top-p must be in (0, 1]"),
            (self.max_resample >= 0, "max_resample", "--max-resample must be >= 0"),
            (self.episode_steps >= 1, "episode_steps", "--episode-steps must be >= 1"),
            (self.online_reward in ("success", "env"), "online_reward",
             "--online-reward must be success or env"),
            (self.rollout_workers >= 0, "rollout_workers", "--rollout-workers must be >= 0"),
            (self.rollout_backend in ("local", "ray"), "rollout_backend",
             "--rollout-backend must be local or ray"),
            (not (self.online and self.data), "online", "give DATA or --online TASKS, not both"),
            (not (self.online and self.decoding_aids), "decoding_aids",
             "--decoding-aids works offline only, not with --online"),
            (not (self.online and self.task_weights), "task_weights",
             "--task-weights weighs recorded steps, not --online rollouts"),
        ]  # fmt: skip
        for ok, name, message in checks:
            if not ok:
                raise ConfigError(message, option=name)
        self.loss_settings()  # epsilon, beta, max_new_tokens
        from pixelpilot.train.rewards import parse_reward_spec

        parse_reward_spec(self.reward)  # an unknown reward fails before the model loads

    def loss_settings(self) -> LossSettings:
        return LossSettings(
            epsilon=self.epsilon,
            epsilon_high=self.epsilon_high,
            beta=self.beta,
            loss_type=self.loss,
            max_new_tokens=self.max_new_tokens,
        )


class _Online:
    """The config as the shared checks see it in online mode (the tasks stand in for DATA)."""

    def __init__(self, config: GRPOConfig) -> None:
        self._config = config

    def __getattr__(self, name: str) -> Any:
        return f"online:{self._config.online}" if name == "data" else getattr(self._config, name)

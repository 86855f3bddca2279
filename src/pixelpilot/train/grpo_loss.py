r"""The GRPO objective as pure tensor functions (no model, no data): advantages and the loss.

For a prompt :math:`q` (one recorded step, or one online task and seed) the policy that
sampled, :math:`\pi_{old}`, gives a group of :math:`G` answers :math:`o_1..o_G` with rewards
:math:`r_1..r_G`.

Advantage (one per answer, shared by its tokens; GRPO, Shao et al. 2024, "DeepSeekMath",
arXiv:2402.03300, section 4.1)::

    A_i = (r_i - mean(r)) / (std(r) + 1e-4)        --scale-rewards group (default)
    A_i = (r_i - mean(r)) / (std_batch + 1e-4)     --scale-rewards batch
    A_i =  r_i - mean(r)                           --scale-rewards none (Dr. GRPO)

``mean`` and ``std`` run over the group (``std`` with Bessel's correction, as TRL does); a
group whose rewards are all equal has ``A = 0`` for every answer and carries no signal.
Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical Perspective",
arXiv:2503.20783) shows that dividing by the group std up-weights groups that are almost all
right or all wrong (a difficulty bias) and drops it.

Per token :math:`t` of answer :math:`i`, with the ratio to the sampling policy
``rho = exp(log pi(o_it) - log pi_old(o_it))``::

    l_it = -min(rho * A_i, clip(rho, 1 - eps_low, 1 + eps_high) * A_i) + beta * k3_it
    k3_it = exp(log pi_ref(o_it) - log pi(o_it)) - (log pi_ref(o_it) - log pi(o_it)) - 1

the PPO clipped surrogate with DAPO's decoupled bounds (Yu et al. 2025, "DAPO: An Open-Source
LLM Reinforcement Learning System at Scale", arXiv:2503.14476: ``eps_high > eps_low``, e.g.
0.2 / 0.28, keeps low-probability tokens able to grow) and the k3 estimator of
KL(pi || pi_ref) that DeepSeekMath uses (Schulman, "Approximating KL Divergence", 2020);
``beta = 0`` (the default, as DAPO and Dr. GRPO recommend) drops the reference model.

How the token losses of a batch of ``N`` answers become one number (``--loss``)::

    grpo     L = 1/N sum_i 1/|o_i| sum_t l_it          sequence mean (DeepSeekMath)
    dapo     L = 1/sum_i |o_i| sum_i sum_t l_it        token mean over the batch (DAPO)
    dr_grpo  L = 1/(N * L_max) sum_i sum_t l_it        a constant: L_max = --max-new-tokens

``grpo`` weighs each answer equally, so a token of a long answer counts less (a length bias
toward long wrong answers, which both later papers point out); ``dapo`` weighs tokens equally;
``dr_grpo`` divides by a constant, so the gradient is the plain sum. Each is written as a
per-answer weight (``sequence_weights``) times the answer's token-loss sum, with ``N`` and the
token count taken over the whole optimizer batch: micro-batches (gradient accumulation, or
several processes) then add up to exactly the full batch's loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pixelpilot.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

LOSS_TYPES = ("grpo", "dapo", "dr_grpo")
SCALE_REWARDS = ("group", "batch", "none")
STD_EPS = 1e-4


@dataclass(frozen=True)
class LossSettings:
    """The knobs of the objective (see the module docstring)."""

    epsilon: float = 0.2
    epsilon_high: float | None = None  # None: equal to epsilon (symmetric PPO clip)
    beta: float = 0.0
    loss_type: str = "grpo"
    max_new_tokens: int = 64  # L_max of dr_grpo

    def __post_init__(self) -> None:
        if self.loss_type not in LOSS_TYPES:
            raise ConfigError(f"--loss must be one of {', '.join(LOSS_TYPES)}", option="loss")
        if not 0 <= self.epsilon < 1:
            raise ConfigError("--epsilon must be in [0, 1)", option="epsilon")
        if self.epsilon_high is not None and self.epsilon_high < 0:
            raise ConfigError("--epsilon-high must be >= 0", option="epsilon_high")
        if self.beta < 0:
            raise ConfigError("--beta must be >= 0", option="beta")
        if self.max_new_tokens < 1:
            raise ConfigError("--max-new-tokens must be positive", option="max_new_tokens")

    @property
    def high(self) -> float:
        return self.epsilon if self.epsilon_high is None else self.epsilon_high


@dataclass(frozen=True)
class Advantages:
    """Per-answer advantages ``[N]`` and which groups carry no signal (equal rewards)."""

    values: torch.Tensor
    zero_variance: torch.Tensor  # [number of groups], bool

    @property
    def zero_variance_fraction(self) -> float:
        return float(self.zero_variance.float().mean()) if len(self.zero_variance) else 0.0


def group_advantages(
    rewards: torch.Tensor, group_sizes: list[int], scale: str = "group"
) -> Advantages:
    """Advantages of ``rewards`` ``[N]`` laid out group after group (``group_sizes``)."""
    import torch

    if scale not in SCALE_REWARDS:
        raise ConfigError(
            f"--scale-rewards must be one of {', '.join(SCALE_REWARDS)}", option="scale_rewards"
        )
    if sum(group_sizes) != rewards.numel() or any(g < 1 for g in group_sizes):
        raise ConfigError("group sizes do not add up to the number of rewards")
    rewards = rewards.double().flatten()
    values, zero = [], []
    for chunk in torch.split(rewards, group_sizes):
        std = chunk.std() if len(chunk) > 1 else chunk.new_zeros(())
        zero.append(bool(torch.isclose(std, std.new_zeros(()))))
        centred = chunk - chunk.mean()
        values.append(centred / (std + STD_EPS) if scale == "group" else centred)
    adv = torch.cat(values)
    if scale == "batch":
        spread = rewards.std() if rewards.numel() > 1 else rewards.new_zeros(())
        adv = adv / (spread + STD_EPS)
    return Advantages(adv.float(), torch.tensor(zero, dtype=torch.bool))


def sequence_weights(
    mask: torch.Tensor,
    loss_type: str,
    *,
    total_sequences: int,
    total_tokens: float,
    max_new_tokens: int,
) -> torch.Tensor:
    """Weight of each answer's token-loss sum (``[N]``), for batch totals over the whole
    optimizer step (``total_sequences`` answers holding ``total_tokens`` tokens)."""
    import torch

    lengths = mask.sum(dim=1)
    if loss_type == "grpo":
        return 1.0 / (lengths.clamp(min=1.0) * total_sequences)
    if loss_type == "dapo":
        return torch.full_like(lengths, 1.0 / max(total_tokens, 1.0))
    if loss_type == "dr_grpo":
        return torch.full_like(lengths, 1.0 / (total_sequences * max_new_tokens))
    raise ConfigError(f"--loss must be one of {', '.join(LOSS_TYPES)}", option="loss")


@dataclass(frozen=True)
class LossOutput:
    """The loss to back-propagate and its statistics (plain floats, over the masked tokens)."""

    loss: torch.Tensor
    kl: float
    clip_fraction: float
    clip_low: float
    clip_high: float
    ratio_mean: float
    tokens: int


def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    settings: LossSettings,
    *,
    ref_logprobs: torch.Tensor | None = None,
    total_sequences: int | None = None,
    total_tokens: float | None = None,
) -> LossOutput:
    """The loss of one (micro-)batch: ``logprobs``/``old_logprobs``/``ref_logprobs``/``mask``
    are ``[N, L]`` (right-padded answers), ``advantages`` ``[N]``. ``old_logprobs=None`` means
    the batch is scored by the policy that sampled it (the ratio is 1, its gradient is not).
    ``total_*`` default to this batch's own counts."""
    import torch

    mask = mask.to(logprobs.dtype)
    old = logprobs.detach() if old_logprobs is None else old_logprobs
    ratio = torch.exp(logprobs - old)
    adv = advantages.to(logprobs.dtype)[:, None]
    lo, hi = 1.0 - settings.epsilon, 1.0 + settings.high
    clipped = torch.clamp(ratio, lo, hi)
    per_token = -torch.min(ratio * adv, clipped * adv)
    kl = torch.zeros_like(logprobs)
    if settings.beta > 0:
        if ref_logprobs is None:
            raise ConfigError("--beta > 0 needs reference log-probabilities", option="beta")
        delta = ref_logprobs - logprobs
        kl = torch.exp(delta) - delta - 1.0
        per_token = per_token + settings.beta * kl
    weights = sequence_weights(
        mask,
        settings.loss_type,
        total_sequences=total_sequences or logprobs.shape[0],
        total_tokens=total_tokens if total_tokens is not None else float(mask.sum()),
        max_new_tokens=settings.max_new_tokens,
    )
    loss = ((per_token * mask).sum(dim=1) * weights).sum()
    with torch.no_grad():
        n = mask.sum().clamp(min=1.0)
        low = ((ratio < lo) & (adv < 0)).to(mask.dtype) * mask
        high = ((ratio > hi) & (adv > 0)).to(mask.dtype) * mask
        stats = {
            "kl": float((kl * mask).sum() / n),
            "clip_low": float(low.sum() / n),
            "clip_high": float(high.sum() / n),
            "ratio_mean": float((ratio * mask).sum() / n),
        }
    return LossOutput(
        loss,
        kl=stats["kl"],
        clip_fraction=stats["clip_low"] + stats["clip_high"],
        clip_low=stats["clip_low"],
        clip_high=stats["clip_high"],
        ratio_mean=stats["ratio_mean"],
        tokens=int(mask.sum()),
    )


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of ``values`` over the tokens of ``mask`` (0.0 for an empty mask)."""
    n = float(mask.sum())
    return float((values * mask).sum()) / n if n else 0.0

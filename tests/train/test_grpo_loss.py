"""The GRPO objective's tensor functions against values computed by hand."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from pixelpilot.errors import ConfigError  # noqa: E402
from pixelpilot.train.grpo_loss import (  # noqa: E402
    LossSettings,
    group_advantages,
    grpo_loss,
    masked_mean,
)


def test_group_advantages_scaled_by_group_std_and_zero_variance_groups() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5])
    adv = group_advantages(rewards, [4, 2], "group")
    s = math.sqrt(1 / 3)  # sample std of (1, 0, 0, 1)
    expected = [0.5 / (s + 1e-4), -0.5 / (s + 1e-4), -0.5 / (s + 1e-4), 0.5 / (s + 1e-4), 0, 0]
    torch.testing.assert_close(adv.values, torch.tensor(expected), atol=1e-6, rtol=0)
    assert adv.zero_variance.tolist() == [False, True]
    assert adv.zero_variance_fraction == 0.5


def test_group_advantages_dr_grpo_and_batch_scaling() -> None:
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5])
    none = group_advantages(rewards, [4, 2], "none")
    torch.testing.assert_close(none.values, torch.tensor([0.5, -0.5, -0.5, 0.5, 0.0, 0.0]))
    batch = group_advantages(rewards, [4, 2], "batch")
    spread = math.sqrt(1.0 / 5)  # sample std of all six rewards
    torch.testing.assert_close(batch.values, none.values / (spread + 1e-4), atol=1e-6, rtol=0)
    one = group_advantages(torch.tensor([0.7]), [1])
    assert one.values.tolist() == [0.0] and one.zero_variance.tolist() == [True]


def test_group_advantages_bad_input() -> None:
    with pytest.raises(ConfigError, match="scale-rewards"):
        group_advantages(torch.zeros(2), [2], "std")
    with pytest.raises(ConfigError, match="add up"):
        group_advantages(torch.zeros(3), [2])


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two answers: ratios (1.5, 0.9) with A = +1, and (0.5, pad) with A = -1."""
    old = torch.log(torch.tensor([[0.4, 0.5], [0.6, 1.0]]))
    ratios = torch.tensor([[1.5, 0.9], [0.5, 1.0]])
    logp = (old + torch.log(ratios)).requires_grad_(True)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    return logp, old, torch.tensor([1.0, -1.0]), mask


# Token losses: answer 1: -min(1.5, 1.28) = -1.28 and -min(0.9, 0.9) = -0.9 (sum -2.18);
# answer 2: -min(-0.5, -0.8) = 0.8 (one token).
@pytest.mark.parametrize(
    ("loss_type", "expected"),
    [
        ("grpo", 0.5 * (-2.18 / 2 + 0.8 / 1)),  # mean over answers of each answer's token mean
        ("dapo", (-2.18 + 0.8) / 3),  # token mean over the batch
        ("dr_grpo", (-2.18 + 0.8) / (2 * 4)),  # N * L_max with L_max = 4
    ],
)
def test_clipped_loss_by_hand(loss_type: str, expected: float) -> None:
    logp, old, adv, mask = _batch()
    settings = LossSettings(epsilon=0.2, epsilon_high=0.28, loss_type=loss_type, max_new_tokens=4)
    out = grpo_loss(logp, old, adv, mask, settings)
    assert float(out.loss.detach()) == pytest.approx(expected, abs=1e-6)
    assert out.clip_high == pytest.approx(1 / 3) and out.clip_low == pytest.approx(1 / 3)
    assert out.clip_fraction == pytest.approx(2 / 3)
    assert out.tokens == 3 and out.kl == 0.0
    out.loss.backward()
    # clipped tokens carry no gradient; the unclipped one of answer 1 has -A * rho * weight
    weight = {"grpo": 1 / (2 * 2), "dapo": 1 / 3, "dr_grpo": 1 / 8}[loss_type]
    grad = logp.grad
    assert grad[0, 0] == 0 and grad[1, 0] == 0 and grad[1, 1] == 0
    assert float(grad[0, 1]) == pytest.approx(-0.9 * weight, abs=1e-6)


def test_symmetric_clip_when_epsilon_high_unset() -> None:
    logp, old, adv, mask = _batch()
    out = grpo_loss(logp, old, adv, mask, LossSettings(epsilon=0.2, loss_type="dapo"))
    assert float(out.loss.detach()) == pytest.approx((-1.2 - 0.9 + 0.8) / 3, abs=1e-6)


def test_k3_kl_term_and_on_policy_ratio() -> None:
    logp = torch.log(torch.tensor([[0.5, 0.2]])).requires_grad_(True)
    ref = torch.log(torch.tensor([[0.25, 0.2]]))
    mask = torch.ones(1, 2)
    settings = LossSettings(beta=0.1, loss_type="dapo")
    out = grpo_loss(logp, None, torch.tensor([2.0]), mask, settings, ref_logprobs=ref)
    k3 = 0.5 - math.log(0.5) - 1  # exp(d) - d - 1 with d = log(0.25 / 0.5)
    assert out.kl == pytest.approx(k3 / 2, abs=1e-6)
    # on-policy: rho = 1, so each token's loss is -A + beta * k3
    assert float(out.loss.detach()) == pytest.approx((-2.0 * 2 + 0.1 * k3) / 2, abs=1e-6)
    assert out.ratio_mean == 1.0 and out.clip_fraction == 0.0
    out.loss.backward()
    # d/dlogp of -A*rho is -A; of k3 is 1 - exp(d) = 1 - ref/p
    torch.testing.assert_close(
        logp.grad, torch.tensor([[(-2.0 + 0.1 * 0.5) / 2, -2.0 / 2]]), atol=1e-6, rtol=0
    )
    with pytest.raises(ConfigError, match="reference"):
        grpo_loss(logp, None, torch.tensor([1.0]), mask, settings)


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo"])
def test_micro_batches_add_up_to_the_full_batch(loss_type: str) -> None:
    gen = torch.Generator().manual_seed(0)
    logp = -torch.rand(6, 5, generator=gen)
    old = logp + 0.3 * (torch.rand(6, 5, generator=gen) - 0.5)
    mask = (torch.arange(5)[None, :] < torch.tensor([5, 2, 3, 1, 4, 5])[:, None]).float()
    adv = torch.randn(6, generator=gen)
    settings = LossSettings(epsilon=0.2, epsilon_high=0.28, loss_type=loss_type)
    full = grpo_loss(logp, old, adv, mask, settings).loss
    totals = {"total_sequences": 6, "total_tokens": float(mask.sum())}
    parts = [
        grpo_loss(logp[s], old[s], adv[s], mask[s], settings, **totals).loss
        for s in (slice(0, 2), slice(2, 6))
    ]
    assert float(sum(parts).detach()) == pytest.approx(float(full.detach()), abs=1e-6)


def test_settings_refuse_bad_values() -> None:
    with pytest.raises(ConfigError, match="--loss"):
        LossSettings(loss_type="ppo")
    with pytest.raises(ConfigError, match="--epsilon"):
        LossSettings(epsilon=1.5)
    with pytest.raises(ConfigError, match="--beta"):
        LossSettings(beta=-0.1)
    assert LossSettings(epsilon=0.2).high == 0.2
    assert masked_mean(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 0.0])) == 1.0

"""Every KL estimator stays finite for any finite log-probabilities; a skipped optimizer step is loud."""

import math

import pytest
import torch

from textgym.agents import functional as F
from textgym.agents.common.logger import Logger
from textgym.agents.common.updates import optimize_rows
from textgym.app.pipeline import skipped_steps_line


@pytest.mark.parametrize("kind", F.KL_ESTIMATORS)
def test_every_estimator_is_finite_for_any_finite_logprobs(kind):
    logp = torch.tensor([-200.0, 0.0, -3e38, 3e38])
    ref = torch.tensor([0.0, -200.0, 3e38, -3e38])  # the last two differences overflow to -inf / +inf
    assert torch.isfinite(F.kl_estimate(logp, ref, kind)).all()


def test_the_log_ratio_is_bounded_at_20_nats():
    assert F.LOG_RATIO_BOUND == 20.0
    r = torch.tensor([-200.0, 200.0, 0.5])
    zero = torch.zeros(3)
    # k3 = exp(-r) - 1 + r on the clamped ratio: at r = -20, e**20 - 21 = 485165174.41; at +20, e**-20 + 19
    k3 = F.kl_estimate(r, zero, "k3")
    assert k3[0].item() == pytest.approx(math.exp(20) - 21, rel=1e-6)
    assert k3[1].item() == pytest.approx(math.exp(-20) + 19, rel=1e-6)
    assert k3[2].item() == pytest.approx(math.exp(-0.5) - 0.5, rel=1e-6)  # inside the bound: unchanged
    assert F.kl_estimate(r, zero, "k1").tolist() == [-20.0, 20.0, 0.5]
    assert F.kl_estimate(r, zero, "k2").tolist() == [200.0, 200.0, 0.125]
    assert F.kl_estimate(r, zero, "abs").tolist() == [20.0, 20.0, 0.5]


def test_penalized_rewards_stay_finite_when_the_policy_is_far_below_the_reference():
    logp = torch.tensor([[-150.0, -1.0]])  # the policy gives the sampled token ~e**-150, the reference ~1
    ref = torch.tensor([[0.0, -1.0]])
    rewards, kl = F.kl_penalized_rewards(torch.tensor([[0.0, 1.0]]), logp, ref, torch.ones(1, 2, dtype=torch.bool),
                                         kl_coef=0.1, estimator="k3")
    assert torch.isfinite(rewards).all() and torch.isfinite(kl).all()
    assert rewards[0, 0].item() == pytest.approx(-0.1 * (math.exp(20) - 21), rel=1e-6)
    assert rewards[0, 1].item() == 1.0


def test_a_skipped_optimizer_step_warns_with_its_reason():
    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([w], lr=0.1)

    def nan_loss(chunk):
        return (w * float("nan")).sum(), {}

    with pytest.warns(RuntimeWarning, match="optimizer step skipped: the loss is nan"):
        out = optimize_rows(opt, [w], torch.arange(2), None, nan_loss, 2.0, 1.0)
    assert out["skipped"] == 1.0 and w.tolist() == [1.0, 1.0]


def test_skipped_steps_show_in_the_progress_bar_and_the_summary_line():
    log = Logger(None, tensorboard=False, progress=True)
    log.start_progress(10, "it")
    log.log(1, {"reward/score": 0.5, "stats/skipped_steps": 0.0})
    assert "SKIPPED" not in log._bar.postfix
    log.log(2, {"reward/score": 0.5, "stats/skipped_steps": 2.0})
    assert "SKIPPED_STEPS=2" in log._bar.postfix
    log.close()
    assert skipped_steps_line({}) == ""
    line = skipped_steps_line({"3": 2, "12": 1})
    assert line.startswith("**3 optimizer step(s) skipped**") and "iteration(s) 3, 12" in line

"""NLPO: the top-p mask of a lagged masking policy in rollouts, scoring, the loss, evaluation; refresh; resume."""

from __future__ import annotations

import math

import pytest
import torch

from agent_helpers import char_env, tiny_char
from algo_helpers import QUIET, check_learns, check_learns_token_count, check_one_update, check_resume, stop_env
from textgym.agents import NLPO, LMActorCritic, NLPOConfig, RolloutCollector, SamplingParams
from textgym.agents.algorithms.nlpo import MASK_ADAPTER
from textgym.agents.common.sampling import logprobs_of, process_logits

LORA = {"r": 4, "lora_alpha": 8}


def make(n=8, policy=None, **cfg):
    policy = policy if policy is not None else LMActorCritic(*tiny_char())
    return NLPO(policy, stop_env(n), NLPOConfig(**{**QUIET, **cfg}))


def test_the_mask_keeps_exactly_the_top_p_set_of_the_masking_policy_and_renormalises(monkeypatch):
    algo = make(n=4, mask_top_p=0.7)
    mp = algo.masking_policy
    v = algo.policy.action_size
    # a hand-made masking distribution at each of 2 positions: mass 0.5, 0.3, 0.15, 0.05 on tokens 5, 9, 7, 2
    probs = torch.full((v,), 0.0)
    probs[[5, 9, 7, 2]] = torch.tensor([0.5, 0.3, 0.15, 0.05])
    hand = probs.log().expand(1, 3, v).clone()  # (n, t + 1, V): the last position predicts nothing here

    def fake_logits(input_ids, attention_mask, position_ids, keep, cache=None, use_cache=False):
        return hand[:, -keep:] if keep else hand, None

    monkeypatch.setattr(mp, "_logits", fake_logits)
    policy_logits = torch.zeros(1, 2, v)  # the policy: uniform
    policy_logits[0, :, 9] = math.log(3.0)  # token 9 three times as likely as the others
    actions = torch.tensor([[5, 7]])  # token 7 is outside the 0.7-nucleus {5, 9}: it was taken, so it stays allowed
    out = mp.sequence(policy_logits, torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.long), actions)
    assert torch.isfinite(out[0, 0]).nonzero().squeeze(-1).tolist() == [5, 9]
    assert torch.isfinite(out[0, 1]).nonzero().squeeze(-1).tolist() == [5, 7, 9]
    lp = logprobs_of(process_logits(out, SamplingParams()), torch.tensor([[5, 9]]))
    torch.testing.assert_close(lp, torch.tensor([[math.log(1 / 4), math.log(3 / 5)]]))  # 1/(1+3); 3/(1+1+3)


def test_rollouts_sample_inside_the_mask_and_equal_top_p_sampling_before_the_first_update():
    algo = make(n=8, mask_top_p=0.5)  # the masking policy is still a copy of the policy
    batch = algo.collect_rollouts()
    assert algo.collector.last_logprob_mismatch < 1e-5  # generation-time and scoring-pass logprobs agree
    assert torch.isfinite(batch.logprobs[batch.mask]).all()
    plain = RolloutCollector(algo.policy, stop_env(8), SamplingParams(top_p=0.5))
    logprobs, _, _, ref = plain.score(batch.input_ids, batch.attention_mask, batch.actions, batch.mask)
    torch.testing.assert_close(batch.logprobs, logprobs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch.ref_logprobs, ref, atol=1e-5, rtol=1e-5)  # reference renormalised alike
    unmasked = RolloutCollector(algo.policy, stop_env(8)).score(batch.input_ids, batch.attention_mask,
                                                                  batch.actions, batch.mask)[0]
    assert (batch.logprobs[batch.mask] > unmasked[batch.mask] + 1e-3).all()  # renormalised over a smaller set
    sizes = algo.masking_policy.last_kept_counts
    assert sizes.shape[0] == 8 and (sizes >= 1).all() and (sizes < algo.policy.action_size).all()


def test_the_masking_policy_lags_and_is_refreshed_every_interval():
    algo = make(n=8, learning_rate=1e-2, mask_update_interval=2)
    start = [p.clone() for p in algo.masking_policy.lm.parameters()]
    m1 = algo.train_step()
    assert m1["stats/mask_refreshed"] == 0.0
    for p, q in zip(start, algo.masking_policy.lm.parameters()):
        assert torch.equal(p, q)  # still the initial policy
    assert any(not torch.equal(p, q) for p, q in zip(algo.policy.lm.parameters(), algo.masking_policy.lm.parameters()))
    m2 = algo.train_step()
    assert m2["stats/mask_refreshed"] == 1.0
    for p, q in zip(algo.policy.lm.parameters(), algo.masking_policy.lm.parameters()):
        assert torch.equal(p, q)  # a copy of the policy after update 2
    assert not any(p.requires_grad for p in algo.masking_policy.lm.parameters())
    assert 1 <= m2["stats/mask_kept_tokens"] < algo.policy.action_size


def test_lora_mask_is_a_frozen_adapter_outside_the_optimizer_and_refresh_copies_the_trained_one():
    policy = LMActorCritic(*tiny_char(), lora=LORA)
    algo = make(n=8, policy=policy, learning_rate=1e-2, mask_update_interval=2)
    mask_params = [p for n, p in policy.model.named_parameters() if f".{MASK_ADAPTER}." in n]
    assert mask_params and not any(p.requires_grad for p in mask_params)
    in_optimizer = {id(p) for g in algo.optimizer.param_groups for p in g["params"]}
    assert not in_optimizer & {id(p) for p in mask_params}
    before = algo.masking_policy.state_dict()
    algo.train_step()
    assert not any(p.requires_grad for p in mask_params)  # switching adapters left the mask frozen
    after_one = algo.masking_policy.state_dict()
    assert all(torch.equal(before[k], after_one[k]) for k in before)
    algo.train_step()  # refresh: the mask adapter now equals the trained adapter
    trained = algo.masking_policy._policy_adapter_state()
    assert all(torch.equal(algo.masking_policy.state_dict()[k], trained[k].cpu()) for k in trained)
    assert any(not torch.equal(before[k], trained[k].cpu()) for k in trained)


def test_predict_and_evaluate_use_the_mask():
    algo = make(n=4, mask_top_p=1e-6)  # the nucleus is the masking policy's arg-max: sampling is deterministic
    obs, _ = char_env(3).reset(seed=0)
    ids, am = torch.from_numpy(obs["input_ids"]), torch.from_numpy(obs["attention_mask"])
    greedy = algo.policy.next_token_logits(ids, am).logits.argmax(-1).numpy()
    for _ in range(3):
        actions, _ = algo.predict(obs)
        assert (actions == greedy).all()
    ev = algo.evaluate(stop_env(4), n_episodes=4)
    assert ev["kl_ref"] == 0.0 and ev["n_episodes"] == 4
    texts = algo.generate(["ab"], max_new_tokens=4)
    assert texts == algo.generate(["ab"], max_new_tokens=4, seed=123)  # one allowed token per step


def test_one_update_changes_the_weights_and_logs_its_metrics():
    check_one_update(make(n=8, learning_rate=1e-3), ["stats/approx_kl", "stats/clipfrac", "loss/value",
                                                     "stats/mask_kept_tokens", "stats/mask_refreshed"])


def test_config_errors():
    with pytest.raises(ValueError, match=r"mask_top_p must be in \(0, 1\]"):
        NLPOConfig(mask_top_p=0.0)
    with pytest.raises(ValueError, match="mask_update_interval must be an integer >= 1"):
        NLPOConfig(mask_update_interval=0)


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_save_load_continue_equals_uninterrupted(lora, tmp_path):
    def build():
        policy = LMActorCritic(*tiny_char(), lora=LORA) if lora else "tiny-char"
        return make(n=8, policy=policy, learning_rate=5e-3, minibatch_size=4, n_epochs=2, mask_update_interval=3)

    a, b = check_resume(build, NLPO, tmp_path)  # saved after 2 updates: the mask lags the policy
    sa, sb = a.masking_policy.state_dict(), b.masking_policy.state_dict()
    assert sa.keys() == sb.keys() and all(torch.allclose(sa[k], sb[k], atol=1e-6) for k in sa)


def test_learns_a_synthetic_task():
    check_learns(NLPO, NLPOConfig(learning_rate=2e-3, kl_coef=0.0, minibatch_size=16, **QUIET))


@pytest.mark.slow
def test_learns_token_count():
    check_learns_token_count(NLPO, NLPOConfig(learning_rate=2e-3, kl_coef=0.0, minibatch_size=16, n_epochs=2,
                                              **QUIET))

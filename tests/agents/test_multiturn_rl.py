"""RL across turns: KV cache across turns, env tokens masked out, per-turn rewards, GAE, every algorithm, SFT."""

import numpy as np
import pytest
import torch

from textgym import MultiTurnVectorEnv
from textgym.agents import GRPO, PPO, REINFORCE, RLOO, GRPOConfig, PPOConfig, REINFORCEConfig, RLOOConfig
from textgym.agents.functional import compute_gae
from textgym.agents.common.multiturn_rollout import MultiTurnRolloutCollector, make_collector
from textgym.agents.common.policy import LMActorCritic
from textgym.agents.common.rollout import RolloutCollector, response_ends, trim_to_content
from textgym.agents.trainers.sft_data import encode_conversation
from textgym.responders import Reply, Responder
from textgym.tokenizers import char_tokenizer

from agent_helpers import char_env, tiny_char


class Echo(Responder):
    """Replies with a row-dependent number of 'z's (so replies differ in length), rewards the share of 'a'."""

    name = "echo"

    def reset(self, sample, rng):
        return len(sample["prompt"])

    def respond(self, states, conversations):
        out = []
        for s, c in zip(states, conversations):
            k = sum(m["role"] == "assistant" for m in c)
            text = c[-1]["content"]
            out.append(Reply(text="z" * (s + k), reward=text.count("a") / max(len(text), 1) + k, done=k >= 3))
        return out


def conv_env(n=4, **kw):
    samples = [{"prompt": p} for p in ["ab", "hello", "x", "qqq"]]
    args = dict(max_prompt_length=24, max_new_tokens=96, max_turns=3, max_turn_tokens=4, autoreset_mode="Disabled")
    args.update(kw)
    return MultiTurnVectorEnv(char_tokenizer(), samples, Echo(), n, **args)


@pytest.fixture(scope="module")
def policy():
    model, tok = tiny_char(seed=0)
    return LMActorCritic(model, tok)


def test_kv_cache_across_turns_equals_recomputing_the_whole_conversation(policy):
    env = conv_env()
    col = MultiTurnRolloutCollector(policy, env, seed=3)
    b = col.collect(seed=0)
    cached = col.last_sample_logprobs
    p = env.max_prompt_length
    replies_per_row = [int((~b.mask[i] & b.attention_mask[i, p:].bool()).sum()) for i in range(4)]
    assert len(set(replies_per_row)) > 1  # replies of different lengths: the cache blocks were left-padded
    for i in range(4):  # an independent full forward of each unpadded conversation
        keep = b.attention_mask[i].bool()
        ids = b.input_ids[i][keep][None]
        with torch.no_grad():
            logits = policy.lm(input_ids=ids).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        start = int((~keep[:p]).sum())  # the prompt's left padding
        agent = torch.nonzero(b.mask[i]).squeeze(1)
        at = p + agent - start  # index of each agent token in the unpadded sequence
        expected = logp[at - 1, ids[0, at]]
        torch.testing.assert_close(cached[i, agent], expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(b.logprobs[i, agent], expected, atol=1e-5, rtol=0)
    assert col.last_logprob_mismatch < 1e-5
    assert (cached[~b.mask] == 0).all() and (b.logprobs[~b.mask] == 0).all() and (b.ref_logprobs[~b.mask] == 0).all()


def test_per_turn_rewards_sit_on_each_turns_last_agent_token(policy):
    env = conv_env()
    b = MultiTurnRolloutCollector(policy, env, seed=1).collect(seed=0)
    p = env.max_prompt_length
    for i in range(4):
        real = b.attention_mask[i, p:].bool()
        agent = b.mask[i]
        # the last agent token of each turn: an agent token followed by an env token or the end
        nxt = torch.cat([agent[1:], torch.tensor([False])]) & torch.cat([real[1:], torch.tensor([False])])
        last = agent & ~nxt
        assert int(last.sum()) == 3 and b.terminated[i]
        assert (b.rewards[i][~last] == 0).all()
        turns = b.rewards[i][last]
        assert (turns.floor() == torch.tensor([1.0, 2.0, 3.0])).all()  # k + share of 'a'
        assert b.scores[i] == pytest.approx(float(turns.sum()), abs=1e-5)


def test_gae_skips_env_tokens_hand_computed():
    # agent tokens at 0, 1, 4 (slots 2, 3 are the env's reply); rewards on turn ends 1 and 4
    mask = torch.tensor([[1, 1, 0, 0, 1, 0]], dtype=torch.bool)
    rewards = torch.tensor([[0.0, 1.0, 99.0, 99.0, 2.0, 0.0]])  # 99: must be ignored
    values = torch.tensor([[0.5, 0.25, 99.0, 99.0, 1.0, 0.0]])
    adv, ret = compute_gae(rewards, values, mask, torch.zeros(1), gamma=0.9, lam=0.5)
    d4 = 2.0 - 1.0  # r + 0 - V
    d1 = 1.0 + 0.9 * 1.0 - 0.25  # V_{t+1} of a turn's last token = V before the next turn's first token
    d0 = 0.0 + 0.9 * 0.25 - 0.5
    a4, a1 = d4, d1 + 0.45 * d4
    a0 = d0 + 0.45 * a1
    torch.testing.assert_close(adv, torch.tensor([[a0, a1, 0.0, 0.0, a4, 0.0]]))
    torch.testing.assert_close(ret, torch.tensor([[a0 + 0.5, a1 + 0.25, 0.0, 0.0, a4 + 1.0, 0.0]]))


def test_response_ends_and_trim_with_a_conversation_mask():
    mask = torch.tensor([[1, 1, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0, 0]], dtype=torch.bool)
    assert response_ends(mask).tolist() == [5, 1]
    ids = torch.arange(2 * 10).reshape(2, 10)
    am = torch.ones(2, 10, dtype=torch.long)
    am[:, 0] = 0
    tids, tam, t = trim_to_content(ids, am, mask)
    assert t == 5 and tids.shape == (2, 7) and tids[0, 0] == 1  # the shared prompt padding column is dropped


def test_env_tokens_contribute_no_loss_kl_or_entropy(policy):
    env = conv_env()
    algo = PPO(policy, env, PPOConfig(progress_bar=False, tensorboard=False, kl_coef=0.1, ent_coef=0.01))
    b = algo.collector.collect(seed=0)
    env_slots = b.attention_mask[:, env.max_prompt_length:].bool() & ~b.mask
    assert env_slots.any()

    def loss_and_grad(batch):
        from textgym.agents.functional import kl_penalized_rewards, masked_whiten

        rewards, kl = kl_penalized_rewards(batch.rewards, batch.logprobs, batch.ref_logprobs, batch.mask, 0.1, "k1")
        adv, ret = compute_gae(rewards, batch.values, batch.mask, torch.zeros(4), 1.0, 0.95)
        adv = masked_whiten(adv, batch.mask)
        algo.policy.zero_grad()
        loss, stats = algo.compute_loss(batch, adv, ret, float(batch.mask.sum()))
        loss.backward()
        grads = [p.grad.clone() for p in algo.policy.trainable_parameters() if p.grad is not None]
        return float(loss.detach()), stats, kl, adv, grads

    garbage = b._replace(
        logprobs=torch.where(env_slots, 1e6, b.logprobs), ref_logprobs=torch.where(env_slots, -1e6, b.ref_logprobs),
        values=torch.where(env_slots, 1e6, b.values), rewards=torch.where(env_slots, 1e6, b.rewards),
    )  # fmt: skip
    loss1, stats1, kl1, adv1, g1 = loss_and_grad(b)
    loss2, stats2, kl2, adv2, g2 = loss_and_grad(garbage)
    assert loss1 == loss2 and stats1 == stats2
    assert (kl1[env_slots] == 0).all() and torch.equal(kl1, kl2)
    assert (adv1[env_slots] == 0).all() and torch.equal(adv1, adv2)
    assert all(torch.equal(x, y) for x, y in zip(g1, g2))
    assert stats1["entropy"] > 0  # the entropy is summed over agent tokens only (masked_sum)


@pytest.mark.parametrize("algo_cls,config_cls,extra", [
    (PPO, PPOConfig, {}), (GRPO, GRPOConfig, {"group_size": 2}), (RLOO, RLOOConfig, {"group_size": 2}),
    (REINFORCE, REINFORCEConfig, {}),
])  # fmt: skip
def test_every_algorithm_trains_on_a_conversation_env(algo_cls, config_cls, extra):
    model, tok = tiny_char(seed=1)
    policy = LMActorCritic(model, tok)
    before = [p.detach().clone() for p in policy.trainable_parameters()]
    algo = algo_cls(policy, conv_env(), config_cls(progress_bar=False, tensorboard=False, learning_rate=1e-3, **extra))
    assert isinstance(algo.collector, MultiTurnRolloutCollector)
    metrics = algo.train_step()
    assert np.isfinite(metrics["loss/policy"]) and metrics["reward/score"] > 3.0
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.trainable_parameters()))
    ev = algo.evaluate(conv_env(), n_episodes=4)
    assert ev["n_episodes"] == 4 and ev["terminated_frac"] == 1.0


def test_make_collector_picks_by_env_type(policy):
    assert type(make_collector(policy, char_env())) is RolloutCollector
    assert type(make_collector(policy, conv_env())) is MultiTurnRolloutCollector
    with pytest.raises(TypeError, match="needs a textgym.MultiTurnVectorEnv"):
        MultiTurnRolloutCollector(policy, char_env())


def test_sft_on_conversations_targets_only_agent_tokens(policy):
    from textgym.agents import SFTConfig, SFTTrainer

    env = conv_env(n=1)
    b = MultiTurnRolloutCollector(policy, env, seed=0).collect(seed=0)
    obs = {"input_ids": b.input_ids[0].numpy(), "attention_mask": b.attention_mask[0].numpy(),
           "agent_mask": np.concatenate([np.zeros(env.max_prompt_length, np.int64), b.mask[0].numpy().astype(np.int64)])}  # fmt: skip
    ex = encode_conversation(obs, max_length=512)
    keep = obs["attention_mask"] == 1
    assert ex.input_ids == obs["input_ids"][keep].tolist()
    assert ex.train_mask == obs["agent_mask"][keep].astype(bool).tolist() and ex.num_targets == int(b.mask[0].sum())
    model, tok = tiny_char(seed=2)
    trainer = SFTTrainer(model, tok, train_data=[obs], config=SFTConfig(max_steps=1, batch_size=1, progress=False))
    trainer.train()
    assert trainer.stats["train_examples"] == 1
    with pytest.raises(ValueError, match="no agent token"):
        encode_conversation({**obs, "agent_mask": np.zeros_like(obs["agent_mask"])}, max_length=512)

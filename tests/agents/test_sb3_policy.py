"""stable-baselines3 interop: TextGymLMPolicy under SB3's own PPO / A2C, and the sb3-ppo / sb3-a2c adapters."""

from __future__ import annotations

import csv

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.vec_env import DummyVecEnv

import textgym  # noqa: F401  (registers the env ids)
from agent_helpers import char_env
from textgym.agents import SB3A2C, SB3PPO, SB3A2CConfig, SB3PPOConfig, TextGymLMPolicy
from textgym.agents.algorithms.registry import get_algorithm, get_config_class
from textgym.agents.algorithms.sb3_algos import TruncationAsTermination, make_sb3_vec_env
from textgym.agents.algorithms.sb3_policy import right_align

QUIET = dict(progress_bar=False, tensorboard=False)
L_TOKENCOUNT = 20  # TokenCount-v0 defaults: 10 prompt slots + 10 response slots
V_CHAR = 57  # tiny-char vocabulary


def token_count_vec(n):
    return DummyVecEnv([lambda: gym.make("textgym/TokenCount-v0")] * n)


def embedding_inputs(policy):
    """Record the tensors that reach the LM's embedding table."""
    seen = []
    policy.lm_policy.lm.get_input_embeddings().register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    return seen


def no_sb3_preprocessing(monkeypatch):
    """SB3's preprocess_obs one-hot encodes discrete observations and casts Box ones to float: it must never run."""
    import stable_baselines3.common.policies as sb3_policies

    def fail(*args, **kwargs):
        raise AssertionError("SB3's preprocess_obs ran on a token observation")

    monkeypatch.setattr(sb3_policies, "preprocess_obs", fail)


def params_of(policy):
    return [p.detach().clone() for p in policy.trainable_parameters()]


def test_sb3_ppo_trains_on_a_textgym_env_and_the_lm_gets_token_ids(monkeypatch):
    no_sb3_preprocessing(monkeypatch)
    env = token_count_vec(4)
    model = PPO(TextGymLMPolicy, env, n_steps=8, batch_size=16, n_epochs=2, learning_rate=lambda p: 2e-3 * p,
                policy_kwargs={"model": "tiny-char"}, seed=0, device="cpu")
    policy = model.policy
    assert policy.features_dim == L_TOKENCOUNT  # L token ids per row, not V-sized one-hot vectors
    assert policy.optimizer.param_groups[0]["lr"] == pytest.approx(2e-3)  # lr_schedule(1)
    assert {id(p) for g in policy.optimizer.param_groups for p in g["params"]} == \
        {id(p) for p in policy.trainable_parameters()}  # the frozen reference is not optimised
    seen = embedding_inputs(policy)
    lrs = []

    class LrAtRolloutStart(BaseCallback):
        def _on_rollout_start(self):
            lrs.append(policy.optimizer.param_groups[0]["lr"])

        def _on_step(self):
            return True

    before = params_of(policy)
    model.learn(64, callback=LrAtRolloutStart())  # 2 iterations of 4 envs x 8 steps
    assert model.num_timesteps == 64 and model.logger.name_to_value["train/n_updates"] == 4
    # SB3's schedule reached the optimizer: progress 0.5 after iteration 1, 0 after iteration 2
    assert lrs == pytest.approx([2e-3, 1e-3]) and policy.optimizer.param_groups[0]["lr"] == 0.0
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.trainable_parameters()))
    # what reached the LM: (B, L') int64 ids, L' <= L; B = 4 envs in rollouts, 16 in minibatches,
    # 1 for the terminal observation of a truncated episode (SB3's bootstrap)
    assert seen and all(x.dtype == torch.int64 and x.ndim == 2 and x.shape[1] <= L_TOKENCOUNT for x in seen)
    assert {4, 16} <= {x.shape[0] for x in seen} <= {1, 4, 16}
    obs = {k: torch.as_tensor(v) for k, v in env.reset().items()}
    feats = policy.extract_features(obs)
    assert feats.input_ids.shape == (4, L_TOKENCOUNT) and feats.input_ids.dtype == torch.int64
    assert feats.attention_mask.shape == (4, L_TOKENCOUNT)


def test_sb3_a2c_trains_with_its_default_rmsprop(monkeypatch):
    no_sb3_preprocessing(monkeypatch)
    model = A2C(TextGymLMPolicy, token_count_vec(2), n_steps=8, learning_rate=1e-3,
                policy_kwargs={"model": "tiny-char"}, seed=0, device="cpu")
    assert isinstance(model.policy.optimizer, torch.optim.RMSprop)
    before = params_of(model.policy)
    model.learn(32)
    assert model.num_timesteps == 32 and model.logger.name_to_value["train/n_updates"] == 2
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.trainable_parameters()))


class MultiDiscreteTokens(gym.ObservationWrapper):
    """The same observations declared as MultiDiscrete ids + MultiBinary mask (SB3 would one-hot the ids)."""

    def __init__(self, env):
        super().__init__(env)
        n = env.observation_space["input_ids"].shape[0]
        self.observation_space = gym.spaces.Dict({"input_ids": gym.spaces.MultiDiscrete([env.action_space.n] * n),
                                                  "attention_mask": gym.spaces.MultiBinary(n)})

    def observation(self, obs):
        return {"input_ids": obs["input_ids"], "attention_mask": obs["attention_mask"].astype(np.int8)}


def test_multidiscrete_token_observations_are_not_one_hot_encoded(monkeypatch):
    no_sb3_preprocessing(monkeypatch)
    env = DummyVecEnv([lambda: MultiDiscreteTokens(gym.make("textgym/TokenCount-v0"))] * 2)
    model = PPO(TextGymLMPolicy, env, n_steps=8, batch_size=16, n_epochs=1, policy_kwargs={"model": "tiny-char"},
                device="cpu")
    assert model.policy.features_dim == L_TOKENCOUNT  # SB3's one-hot would give 20 * 57 = 1140 features
    seen = embedding_inputs(model.policy)
    model.learn(16)
    assert seen and all(x.dtype == torch.int64 and x.ndim == 2 and x.shape[1] <= L_TOKENCOUNT for x in seen)


def test_predict_returns_a_token_for_one_observation_and_a_batch():
    env = gym.make("textgym/TokenCount-v0")
    model = PPO(TextGymLMPolicy, env, n_steps=8, batch_size=8, policy_kwargs={"model": "tiny-char"}, device="cpu")
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == () and 0 <= int(action) < V_CHAR
    env.step(int(action))  # a valid token for the env
    batch = {k: np.stack([v, v]) for k, v in obs.items()}
    actions, _ = model.predict(batch, deterministic=True)
    assert actions.shape == (2,) and actions[0] == actions[1] == action


def test_right_align_moves_trailing_padding_in_front():
    ids = torch.tensor([[0, 5, 6, 7, 0, 0],
                        [3, 2, 8, 9, 4, 0]])
    mask = torch.tensor([[0, 1, 1, 1, 0, 0],
                         [1, 1, 1, 1, 1, 0]])
    out = right_align(ids, mask)
    # row 0 rolled right by 2, row 1 by 1; then the first column is padding in both rows and is dropped
    torch.testing.assert_close(out.input_ids, torch.tensor([[0, 0, 5, 6, 7], [3, 2, 8, 9, 4]]))
    torch.testing.assert_close(out.attention_mask, torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]))


def test_evaluate_actions_equals_log_softmax_at_the_last_real_token():
    """Reference: each row's real tokens alone (no padding, positions 0..n-1), logits of the last one."""
    env = gym.make("textgym/TokenCount-v0")
    policy = TextGymLMPolicy(env.observation_space, env.action_space, lambda _: 1e-3, model="tiny-char")
    p = 10
    ids = torch.zeros(3, L_TOKENCOUNT, dtype=torch.long)
    mask = torch.zeros_like(ids)
    ids[0, 6:p], mask[0, 6:p] = torch.tensor([20, 21, 22, 23]), 1  # a prompt only
    ids[1, 3:p + 3], mask[1, 3:p + 3] = torch.arange(30, 40), 1  # prompt + 3 generated tokens
    ids[2, 0:L_TOKENCOUNT], mask[2] = torch.arange(10, 30), 1  # a full context
    actions = torch.tensor([5, 1, 44])
    values, logp, entropy = policy.evaluate_actions({"input_ids": ids, "attention_mask": mask}, actions[:, None])
    lm, head = policy.lm_policy.lm, policy.lm_policy.value_head
    with torch.no_grad():
        for r in range(3):
            seq = ids[r][mask[r].bool()][None]  # (1, n)
            out = lm(input_ids=seq, output_hidden_states=True)
            ref = torch.log_softmax(out.logits[0, -1, :V_CHAR].float(), -1)
            assert float(logp[r]) == pytest.approx(float(ref[actions[r]]), abs=1e-5)
            assert float(entropy[r]) == pytest.approx(float(-(ref.exp() * ref).sum()), abs=1e-5)
            assert float(values[r, 0]) == pytest.approx(float(head(out.hidden_states[-1][0, -1])), abs=1e-5)
    assert values.shape == (3, 1) and logp.requires_grad
    # the same numbers from float-stored ids (as a float buffer would hold them)
    _, logp_f, _ = policy.evaluate_actions({"input_ids": ids.float(), "attention_mask": mask.float()}, actions)
    torch.testing.assert_close(logp_f, logp)


def test_bad_inputs_raise_clear_errors():
    env = gym.make("textgym/TokenCount-v0")
    obs_space, act_space = env.observation_space, env.action_space
    with pytest.raises(ValueError, match="needs a model"):
        TextGymLMPolicy(obs_space, act_space, lambda _: 1e-3)
    with pytest.raises(ValueError, match="Dict"):
        TextGymLMPolicy(obs_space["input_ids"], act_space, lambda _: 1e-3, model="tiny-char")
    with pytest.raises(ValueError, match="Discrete"):
        TextGymLMPolicy(obs_space, gym.spaces.Box(0, 1, (3,)), lambda _: 1e-3, model="tiny-char")
    with pytest.raises(ValueError, match="use_sde"):
        TextGymLMPolicy(obs_space, act_space, lambda _: 1e-3, model="tiny-char", use_sde=True)
    with pytest.raises(ValueError, match="larger than the model's vocabulary"):
        TextGymLMPolicy(obs_space, gym.spaces.Discrete(100), lambda _: 1e-3, model="tiny-char")
    policy = TextGymLMPolicy(obs_space, act_space, lambda _: 1e-3, model="tiny-char")
    ids = torch.ones(1, L_TOKENCOUNT)
    with pytest.raises(ValueError, match="non-integer"):
        policy.predict_values({"input_ids": ids * 1.5, "attention_mask": ids})
    with pytest.raises(ValueError, match="no real token"):
        policy.predict_values({"input_ids": ids.long(), "attention_mask": torch.zeros(1, L_TOKENCOUNT)})
    with pytest.raises(ValueError, match="'input_ids' and 'attention_mask'"):
        policy.predict_values({"input_ids": ids.long()})


def test_lora_policy_trains_only_the_adapter_and_value_head():
    model = PPO(TextGymLMPolicy, token_count_vec(2), n_steps=8, batch_size=16, n_epochs=1, learning_rate=1e-2,
                policy_kwargs={"model": "tiny-char", "lora": {"r": 4, "lora_alpha": 8}}, device="cpu")
    lm = model.policy.lm_policy
    assert lm.is_lora and lm.ref_model is None  # the reference is the model with the adapter disabled
    names = {n for n, p in model.policy.named_parameters() if p.requires_grad}
    assert names and all("lora_" in n or "value_head" in n for n in names)
    base = {n: p.detach().clone() for n, p in model.policy.named_parameters() if not p.requires_grad}
    model.learn(16)
    assert all(torch.equal(p, base[n]) for n, p in model.policy.named_parameters() if n in base)


def test_truncation_is_reported_as_termination_unless_bootstrapping():
    env = TruncationAsTermination(gym.make("textgym/TokenCount-v0", max_new_tokens=1))
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(5)  # not EOS: the budget of 1 token ends the episode
    assert (terminated, truncated, info["budget_truncated"]) == (True, False, True) and reward == info["score"]
    vec = gym.make_vec("textgym/TokenCount-v0", num_envs=3, vectorization_mode="vector_entry_point",
                       autoreset_mode="Disabled")
    sb3_env = make_sb3_vec_env(vec)
    assert sb3_env.num_envs == 3 and isinstance(sb3_env.envs[0].env, TruncationAsTermination)
    assert not isinstance(make_sb3_vec_env(vec, bootstrap_truncated=True).envs[0].env, TruncationAsTermination)


def test_sb3_check_env_passes_for_the_envs_used():
    check_env(gym.make("textgym/TokenCount-v0"))
    check_env(TruncationAsTermination(gym.make("textgym/Copy-v0")))


# ---------------------------------------------------------------------------- the registry adapters
def disabled_vec(n, **kw):
    return gym.make_vec("textgym/TokenCount-v0", num_envs=n, vectorization_mode="vector_entry_point",
                        autoreset_mode="Disabled", **kw)


def seeded_test_env(n=8):
    """evaluate() continues the env's sample order: seed it for a fixed set of prompts."""
    env = disabled_vec(n, split="test")
    env.reset(seed=0)
    return env


def test_registry_names_resolve_to_the_adapters():
    assert get_algorithm("sb3-ppo") is SB3PPO and get_config_class("sb3-ppo") is SB3PPOConfig
    assert get_algorithm("SB3-A2C") is SB3A2C and get_config_class("sb3-a2c") is SB3A2CConfig


def test_adapter_learn_evaluate_save_load_round_trip(tmp_path):
    cfg = SB3PPOConfig(learning_rate=1e-2, n_steps=8, batch_size=16, n_epochs=1, run_dir=str(tmp_path / "run"),
                       **QUIET)
    algo = SB3PPO("tiny-char", disabled_vec(4), cfg)
    start = algo.evaluate(disabled_vec(8, split="test"), n_episodes=8)
    assert start["kl_ref"] == pytest.approx(0.0, abs=1e-6)  # the policy is still the reference
    logged = []
    algo.learn(40, callback=lambda a, m: logged.append(m))  # 32 tokens per iteration: 2 iterations
    assert algo.num_timesteps == 64 and algo.iteration == 2 and len(logged) == 2
    assert {"loss/policy", "loss/value", "stats/approx_kl", "stats/clipfrac", "train/timesteps"} <= set(logged[0])
    assert logged[-1]["train/timesteps"] == 64
    with open(tmp_path / "run" / "metrics.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [1, 2]
    after = algo.evaluate(seeded_test_env(), n_episodes=8, seed=5)
    assert set(after) >= {"score_mean", "score_std", "kl_ref", "length_mean"} and after["kl_ref"] > 0
    assert 1 <= after["length_mean"] <= 10 and 0 < after["score_mean"] <= 1

    algo.save(tmp_path / "ckpt")
    loaded = SB3PPO.load(tmp_path / "ckpt", disabled_vec(4), run_dir=None)
    assert (loaded.num_timesteps, loaded.iteration, loaded.config.n_steps) == (64, 2, 8)
    for p, q in zip(algo.policy.state_dict().values(), loaded.policy.state_dict().values()):
        assert torch.equal(p, q)
    for s, t in zip(algo.policy.optimizer.state.values(), loaded.policy.optimizer.state.values()):
        assert torch.equal(s["exp_avg"], t["exp_avg"])
    assert loaded.evaluate(seeded_test_env(), n_episodes=8, seed=5) == after
    loaded.learn(iterations=5, callback=lambda a, m: False)  # a callback returning False stops
    assert loaded.iteration == 3 and loaded.num_timesteps == 96
    with pytest.raises(ValueError, match="exactly one"):
        loaded.learn()
    with pytest.raises(ValueError, match="SB3PPO checkpoint, not SB3A2C"):
        SB3A2C.load(tmp_path / "ckpt", disabled_vec(4))


def test_a2c_adapter_and_env_checks():
    algo = SB3A2C("tiny-char", disabled_vec(2), SB3A2CConfig(n_steps=4, learning_rate=1e-3, **QUIET))
    assert isinstance(algo.policy.optimizer, torch.optim.Adam)  # use_rms_prop=False by default
    algo.learn(iterations=2)
    assert algo.num_timesteps == 16 and algo.iteration == 2
    with pytest.raises(ValueError, match="Disabled"):
        SB3PPO("tiny-char", gym.make_vec("textgym/TokenCount-v0", num_envs=2, vectorization_mode="vector_entry_point"))
    with pytest.raises(TypeError, match="SB3PPOConfig"):
        SB3PPO("tiny-char", disabled_vec(2), SB3A2CConfig())


@pytest.mark.slow
def test_sb3_ppo_learns_a_synthetic_task():
    """Reward = fraction of "a" in the completion (random policy ~0.03): >= 0.6 within 20 iterations.

    Seeds 0-2 reach it in 7-10 iterations (~30 s on one CPU thread).
    """
    algo = SB3PPO("tiny-char", char_env(16, max_new_tokens=4, stop_token_ids=[1]),
                  SB3PPOConfig(learning_rate=3e-3, n_steps=16, batch_size=64, n_epochs=4, **QUIET))
    scores = []
    algo.learn(iterations=20, callback=lambda a, m: scores.append(m["reward/score"]) or m["reward/score"] < 0.6)
    assert scores[0] < 0.1 and scores[-1] >= 0.6, scores
    assert algo.evaluate(char_env(16, max_new_tokens=4, stop_token_ids=[1]), n_episodes=32)["score_mean"] >= 0.5

"""textgym.integrations.rllib: textgym ids in Ray Tune's registry, the LM RLModule, and RLlib's own PPO learning.

The module tests need no running Ray; the PPO test starts one instance for this module (2 CPUs, no dashboard).
"""

import os

import numpy as np
import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray never reports usage over the network
pytest.importorskip("ray.rllib", reason="Ray RLlib is not installed (pip install 'textgym[ray]'; .ci/run installs it)")

import gymnasium as gym  # noqa: E402
import torch  # noqa: E402
from ray.rllib.core.columns import Columns  # noqa: E402
from ray.tune.registry import ENV_CREATOR, _global_registry  # noqa: E402

import textgym  # noqa: E402
from textgym.agents.common.evaluation import evaluate_policy  # noqa: E402
from textgym.integrations.rllib import TextGymRLModule, register_envs, rl_module_spec  # noqa: E402
from textgym.tokenizers import char_tokenizer  # noqa: E402
from textgym.vector_env import TextGenVectorEnv  # noqa: E402

ENV_ID = "textgym/TokenCount-v0"


@pytest.fixture(scope="module")
def ray_instance():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _spaces():
    env = gym.make(ENV_ID)
    return env.observation_space, env.action_space


def _module(**kw) -> TextGymRLModule:
    spec = rl_module_spec("tiny-char", **kw)
    spec.observation_space, spec.action_space = _spaces()  # what RLlib fills in from the env
    module = spec.build()
    assert isinstance(module, TextGymRLModule)
    return module


def test_register_envs_makes_every_textgym_id_an_rllib_env():
    ids = register_envs()
    assert ids == textgym.list_envs() and ENV_ID in ids
    creator = _global_registry.get(ENV_CREATOR, ENV_ID)
    env = creator({"max_count": 4})
    assert isinstance(env.unwrapped, textgym.TextGenEnv) and env.unwrapped.max_new_tokens == 6  # max_count + 2
    vec = creator({"num_envs": 3})  # RLlib's gym_env_vectorize_mode="vector_entry_point" adds num_envs
    assert isinstance(vec.unwrapped, TextGenVectorEnv) and vec.num_envs == 3
    # the token budget's end is reported as termination (RLlib must not bootstrap after the final score)
    vec = creator({"num_envs": 2, "max_count": 4})
    vec.reset(seed=0)
    for _ in range(5):
        _, rew, term, trunc, _ = vec.step(np.array([20, 21]))  # no stop token
        assert not term.any() and not trunc.any()
    _, rew, term, trunc, info = vec.step(np.array([20, 21]))  # the 6th token: budget spent
    assert term.tolist() == [True, True] and trunc.tolist() == [False, False]
    assert info["budget_truncated"].tolist() == [True, True] and (rew > 0).all()
    raw = creator({"num_envs": 2, "max_count": 4, "bootstrap_truncated": True})
    raw.reset(seed=0)
    for _ in range(6):
        _, _, term, trunc, _ = raw.step(np.array([20, 21]))
    assert term.tolist() == [False, False] and trunc.tolist() == [True, True]
    with pytest.raises(KeyError, match="not a textgym env id"):
        register_envs(["textgym/Nope-v0"])


def test_module_logits_and_values_ignore_padding_and_match_the_textgym_policy():
    module = _module()
    v = module.action_space.n
    # "count:5=" then two generated tokens, with the prompt's padding as the env lays it out and with
    # three more pad slots in front / after: the same tokens at the same positions must give the same numbers
    real = char_tokenizer()("count:5=")["input_ids"] + [20, 21]
    assert len(real) == 10 and 0 not in real
    rows = [[0] * 2 + real + [0] * 8, [0] * 5 + real + [0] * 5, [0] * 0 + real + [0] * 10]
    ids = torch.tensor(rows)
    mask = (ids != 0).long()
    batch = {Columns.OBS: {"input_ids": ids, "attention_mask": mask}}
    out = module.forward_train(batch)
    logits = out[Columns.ACTION_DIST_INPUTS]
    values = module.compute_values(batch, out[Columns.EMBEDDINGS])
    assert logits.shape == (3, v) and values.shape == (3,)
    torch.testing.assert_close(logits[1], logits[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(logits[2], logits[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(values, values[:1].expand(3), atol=1e-6, rtol=0)
    # the same numbers as textgym's own policy computes for these observations
    ref = module.policy.next_token_logits(ids, mask)
    torch.testing.assert_close(logits, ref.logits.float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(values, ref.values, atol=1e-6, rtol=0)
    assert torch.equal(module.compute_values(batch), values)  # without embeddings: recomputed
    # exploration: a categorical over the whole vocabulary, from these logits
    dist = module.get_exploration_action_dist_cls().from_logits(module.forward_exploration(batch)[
        Columns.ACTION_DIST_INPUTS])
    torch.testing.assert_close(dist.logp(torch.zeros(3, dtype=torch.long)), torch.log_softmax(logits, -1)[:, 0])


def test_state_is_the_trainable_tensors_and_round_trips():
    a, b = _module(), _module(seed=1)  # different random weights
    state = a.get_state()
    assert "policy.value_head.weight" in state and not any(k.startswith("policy.ref_model.") for k in state)
    assert all(isinstance(x, np.ndarray) for x in state.values())
    b.set_state(state)
    obs = gym.make(ENV_ID).reset(seed=3)[0]
    batch = {Columns.OBS: {k: torch.as_tensor(x)[None] for k, x in obs.items()}}
    assert torch.equal(a.forward_inference(batch)[Columns.ACTION_DIST_INPUTS],
                       b.forward_inference(batch)[Columns.ACTION_DIST_INPUTS])
    with pytest.raises(ValueError, match="does not train"):
        b.set_state({**state, "policy.ref_model.lm_head.weight": state["policy.value_head.weight"]})
    # LoRA: only the adapter and the value head travel; the base weights come from the model name and seed
    lora = _module(lora={"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    keys = set(lora.get_state())
    assert keys and all("lora_" in k or k.startswith("policy.value_head.") for k in keys)
    assert len(keys) == 2 + 2 * 2 * 2  # value head w, b + (A, B) x (q, v) x 2 layers


@pytest.mark.slow  # about 3 min on a loaded 2-core machine (Ray start, 50 PPO iterations)
def test_rllib_ppo_trains_tiny_char_on_token_count(ray_instance):
    """RLlib's own PPO (new API stack, local env runner) on textgym/TokenCount-v0 with tiny-char.

    Held-out score: textgym's evaluation (128 episodes of the test split, whose counts k = 3, 7 are never
    trained on) after 50 iterations of 512 env steps (~26k tokens).  Seed 0 measured: 0.088 before, 0.333
    after (training episodes' mean return 0.09 -> 0.67); the target leaves room for a different machine."""
    from ray.rllib.algorithms.ppo import PPOConfig

    register_envs([ENV_ID])
    config = (PPOConfig()
              .environment(ENV_ID)
              .env_runners(num_env_runners=0, num_envs_per_env_runner=16, gym_env_vectorize_mode="vector_entry_point")
              .training(train_batch_size_per_learner=512, minibatch_size=128, num_epochs=2, lr=2e-3, gamma=1.0,
                        lambda_=0.95)
              .rl_module(rl_module_spec=rl_module_spec("tiny-char"))
              .debugging(seed=0))
    algo = config.build_algo()

    def held_out():
        env = gym.make_vec(ENV_ID, num_envs=64, vectorization_mode="vector_entry_point", autoreset_mode="Disabled",
                           split="test")
        return evaluate_policy(algo.get_module().policy, env, n_episodes=128, seed=1234).metrics

    before = held_out()
    returns = [algo.train()["env_runners"]["episode_return_mean"] for _ in range(50)]
    after = held_out()
    algo.stop()
    assert before["score_mean"] < 0.15, before
    assert np.mean(returns[:3]) < 0.15 and np.mean(returns[-5:]) >= 0.45, returns
    assert after["score_mean"] >= 0.25, (after, returns)

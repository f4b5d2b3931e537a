"""stable-baselines3's PPO and A2C behind textgym's algorithm interface (registry names ``"sb3-ppo"``, ``"sb3-a2c"``).

The comparison harness, the CLI and the benchmarks drive every algorithm the
same way: ``Algo(model_name_or_path, env, config)``, ``learn(total_timesteps
| iterations, callback)``, ``evaluate(env, n_episodes)``, ``save`` / ``load``,
``num_timesteps`` (generated tokens).  :class:`SB3PPO` and :class:`SB3A2C`
give that interface to SB3's own, unmodified ``PPO`` / ``A2C`` running
:class:`textgym.agents.algorithms.sb3_policy.TextGymLMPolicy`:

1. the textgym vector env (``autoreset_mode="Disabled"``, as for textgym's
   algorithms) is turned into an SB3 ``DummyVecEnv`` of ``num_envs``
   :class:`textgym.TextGenEnv` built from the same samples, reward and
   settings (:func:`make_sb3_vec_env`); SB3 resets finished episodes itself;
2. one *iteration* is one SB3 rollout of ``n_steps`` tokens per env
   (``n_steps * num_envs`` generated tokens) and one SB3 training phase;
3. ``evaluate`` samples episodes with the KV-cached textgym rollout collector
   from the same LM and reports the same numbers as textgym's algorithms,
   including ``kl_ref`` to the starting model.

Differences from textgym's PPO, by design (SB3 is used unmodified):

* no KL penalty to the reference in the reward (SB3 optimises the env reward;
  ``evaluate`` still measures the KL);
* SB3 recomputes the whole context at every token (no KV cache, see
  :mod:`textgym.agents.algorithms.sb3_policy`), and minibatches are of tokens, not episodes;
* SB3 bootstraps ``V(s_T)`` on truncation.  textgym envs pay the final score on
  the budget's last token, so by default (``bootstrap_truncated=False``) the
  envs report that step as terminal (:class:`TruncationAsTermination`), as
  textgym's PPO does.

Checkpoints hold SB3's own zip (policy weights, optimizer, hyper-parameters,
counters); resuming restarts the env's episodes (SB3 does not save them).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger as SB3Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from textgym.agents.common.learn_loop import LearnLoop
from textgym.agents.common.run_settings import RunSettings
from textgym.agents.common import checkpoint
from textgym.agents.common.logger import Logger
from textgym.agents.common.rollout import check_env
from textgym.agents.common.sampling import SamplingParams
from textgym.agents.algorithms.sb3_policy import TextGymLMPolicy

__all__ = ["SB3Config", "SB3Hyperparameters", "SB3PPOConfig", "SB3A2CConfig", "SB3Algorithm", "SB3PPO", "SB3A2C", "make_sb3_vec_env",
           "TruncationAsTermination", "SB3_METRICS"]

#: SB3 logger keys -> textgym metric names (PPO logs ``policy_gradient_loss``, A2C ``policy_loss``).
SB3_METRICS = {
    "train/policy_gradient_loss": "loss/policy",
    "train/policy_loss": "loss/policy",
    "train/value_loss": "loss/value",
    "train/entropy_loss": "loss/entropy",
    "train/loss": "loss/total",
    "train/approx_kl": "stats/approx_kl",
    "train/clip_fraction": "stats/clipfrac",
    "train/explained_variance": "stats/explained_variance",
    "train/learning_rate": "train/learning_rate",
    "train/n_updates": "train/n_updates",
}


# ---------------------------------------------------------------------------- configs
@dataclass
class SB3Hyperparameters:
    """Hyperparameters shared by the SB3 adapters (names as in :class:`textgym.agents.common.base.OnPolicyConfig` where shared).

    Attributes:
        seed: SB3's seed (Python, NumPy, torch, the envs' first resets) and the tiny presets' weight seed.
        learning_rate: the optimizer's learning rate (constant).
        n_steps: tokens generated per env per iteration (SB3's ``n_steps``).
        gamma: discount per token.
        gae_lambda: GAE lambda.
        ent_coef: entropy bonus weight.
        vf_coef: value loss weight.
        max_grad_norm: gradient norm clip.
        normalize_advantage: normalise advantages per minibatch (SB3).
        bootstrap_truncated: let SB3 add ``gamma * V(s_T)`` to the reward of an
            episode cut by the token budget.  Default ``False``: the envs report
            that step as terminal (the score is paid there; see the module docstring).
        lora: LoRA for the policy (``None``, ``True`` or a dict of ``peft.LoraConfig`` fields).
        adapter: path of a LoRA adapter to start from.
    """

    seed: int = 0
    learning_rate: float = 1e-5
    n_steps: int = 32
    gamma: float = 1.0
    gae_lambda: float = 0.95
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantage: bool = True
    bootstrap_truncated: bool = False
    lora: Any = None
    adapter: str | None = None


@dataclass
class SB3Config(RunSettings, SB3Hyperparameters):
    """Settings shared by the SB3 adapters: :class:`SB3Hyperparameters`, then the run settings.

    The fields, in order: the hyperparameters (``seed`` ... ``adapter``), the shared
    :class:`~textgym.agents.common.run_settings.RunSettings` (``device``, ``run_dir``,
    ``tensorboard``, ``progress_bar``; ``run_dir`` gets ``metrics.csv``, TensorBoard and
    ``config.json``), then ``verbose``.

    Attributes:
        verbose: SB3's verbosity.
    """

    verbose: int = 0

    def __post_init__(self):
        if self.n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {self.n_steps}")
        if not self.learning_rate >= 0:
            raise ValueError(f"learning_rate must be >= 0, got {self.learning_rate}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def sb3_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the SB3 algorithm's constructor."""
        return dict(learning_rate=self.learning_rate, n_steps=self.n_steps, gamma=self.gamma,
                    gae_lambda=self.gae_lambda, ent_coef=self.ent_coef, vf_coef=self.vf_coef,
                    max_grad_norm=self.max_grad_norm, normalize_advantage=self.normalize_advantage,
                    verbose=self.verbose)


@dataclass
class SB3PPOConfig(SB3Config):
    """:class:`SB3Config` plus SB3 PPO's settings.

    Attributes:
        batch_size: tokens per minibatch (SB3 minibatches are of single steps).
        n_epochs: passes over each rollout.
        clip_range: ratio clip ``eps``.
        clip_range_vf: value clip (``None``: none).
        target_kl: stop the epochs early once the approximate KL exceeds it (``None``: never).
    """

    batch_size: int = 64
    n_epochs: int = 4
    clip_range: float = 0.2
    clip_range_vf: float | None = None
    target_kl: float | None = None

    def sb3_kwargs(self) -> dict[str, Any]:
        return {**super().sb3_kwargs(), "batch_size": self.batch_size, "n_epochs": self.n_epochs,
                "clip_range": self.clip_range, "clip_range_vf": self.clip_range_vf, "target_kl": self.target_kl}


@dataclass
class SB3A2CConfig(SB3Config):
    """:class:`SB3Config` plus SB3 A2C's settings (one gradient step per rollout).

    Attributes:
        use_rms_prop: RMSprop (SB3's default for A2C) instead of Adam; default ``False``:
            Adam, the usual optimizer for transformers.
        rms_prop_eps: RMSprop epsilon.
    """

    n_steps: int = 8
    normalize_advantage: bool = False
    use_rms_prop: bool = False
    rms_prop_eps: float = 1e-5

    def sb3_kwargs(self) -> dict[str, Any]:
        return {**super().sb3_kwargs(), "use_rms_prop": self.use_rms_prop, "rms_prop_eps": self.rms_prop_eps}


# ---------------------------------------------------------------------------- envs
class TruncationAsTermination(gym.Wrapper):
    """Report the end of the token budget as ``terminated`` (never ``truncated``).

    textgym envs pay the final score on the budget's last token, so nothing
    follows it; SB3 would otherwise add ``gamma * V(s_T)`` to that reward
    (its ``TimeLimit.truncated`` bootstrap).  ``info["budget_truncated"]``
    keeps the original flag.
    """

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["budget_truncated"] = bool(truncated)
        return obs, reward, bool(terminated or truncated), False, info


def make_sb3_vec_env(env: Any, *, bootstrap_truncated: bool = False) -> DummyVecEnv:
    """An SB3 ``DummyVecEnv`` of ``env.num_envs`` single envs with the task of a textgym vector env.

    Each row is a :class:`textgym.TextGenEnv` on the same samples, reward
    function and settings (tokenizer, lengths, stop tokens, prompt format,
    shuffling, allowed tokens), wrapped in SB3's ``Monitor`` (episode returns and lengths).

    Args:
        env: a :class:`textgym.TextGenVectorEnv` (any autoreset mode).
        bootstrap_truncated: keep Gymnasium's truncation flag (SB3 then bootstraps
            ``V(s_T)``); ``False`` wraps each env in :class:`TruncationAsTermination`.

    Returns:
        The ``DummyVecEnv`` (SB3 seeds it and resets finished rows itself).

    Raises:
        TypeError: ``env`` is not a textgym vector env.
    """
    from textgym.env import TextGenEnv
    from textgym.vector_env import TextGenVectorEnv

    vec = getattr(env, "unwrapped", env)
    if not isinstance(vec, TextGenVectorEnv):
        raise TypeError(f"make_sb3_vec_env needs a textgym.TextGenVectorEnv, got {type(env).__name__}")
    shuffle = vec.shuffle
    kwargs = dict(max_prompt_length=vec.max_prompt_length, max_new_tokens=vec.max_new_tokens,
                  stop_token_ids=vec.stop_token_ids.tolist(), prompt_format=vec.data.prompt_format,
                  truncation_side=vec.data.truncation_side, shuffle=shuffle, vocab_size=vec.vocab_size,
                  reward_on_error=vec.reward_on_error, skip_special_tokens=vec.skip_special_tokens,
                  allowed_token_ids=vec.settings.allowed_token_ids,
                  invalid_action_penalty=vec.settings.invalid_action_penalty, decode_every_step=False)

    def factory() -> gym.Env:
        e: gym.Env = TextGenEnv(vec.tokenizer, vec.data.samples, vec.reward_fn, **kwargs)
        if not bootstrap_truncated:
            e = TruncationAsTermination(e)
        return Monitor(e)

    return DummyVecEnv([factory] * vec.num_envs)


class _RolloutStats(BaseCallback):
    """Collects each finished episode's score and length during an SB3 rollout, and when the rollout ended."""

    def __init__(self) -> None:
        super().__init__()
        self.scores: list[float] = []
        self.lengths: list[int] = []
        self.rollout_end: float | None = None

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"]):
            if done:
                self.scores.append(float(info["score"]))
                self.lengths.append(int(info["episode"]["l"]))
        return True

    def _on_rollout_end(self) -> None:
        self.rollout_end = time.perf_counter()


# ---------------------------------------------------------------------------- the adapters
class SB3Algorithm(LearnLoop):
    """An SB3 on-policy algorithm with textgym's algorithm interface (see the module docstring).

    Args:
        policy: a model name/path (:func:`textgym.models.load`), a Hugging Face causal LM,
            or an :class:`textgym.agents.common.policy.LMActorCritic`.
        env: a :class:`textgym.TextGenVectorEnv` with ``autoreset_mode="Disabled"``
            (its task and ``num_envs`` define the SB3 envs; see :func:`make_sb3_vec_env`).
        config: the adapter's config (``config_class()`` when ``None``).

    Attributes:
        model: the SB3 algorithm object (``stable_baselines3.PPO`` / ``A2C``).
        policy: its :class:`TextGymLMPolicy` (the LM actor-critic is ``policy.lm_policy``).
        vec_env: the SB3 ``DummyVecEnv``.
        iteration: rollout+update iterations done.
        num_episodes: episodes finished during training.

    Raises:
        TypeError / ValueError: wrong env or config.
    """

    config_class: ClassVar[type[SB3Config]] = SB3Config
    sb3_class: ClassVar[type[BaseAlgorithm]]
    policy_class: ClassVar[type] = TextGymLMPolicy
    #: ``learn`` does not checkpoint by itself: its caller saves (the Algorithm protocol)
    saves_checkpoints: ClassVar[bool] = False

    def __init__(self, policy: Any, env: Any, config: SB3Config | None = None):
        self._setup(env, config)
        cfg = self.config
        device = cfg.device
        if device is None:
            device = next(policy.parameters()).device if isinstance(policy, torch.nn.Module) else "cpu"
        policy_kwargs = {"model": str(policy) if isinstance(policy, os.PathLike) else policy, "lora": cfg.lora,
                         "adapter": cfg.adapter, "model_seed": cfg.seed}
        self.model = self.sb3_class(self.policy_class, self.vec_env, policy_kwargs=policy_kwargs, seed=cfg.seed,
                                    device=device, **cfg.sb3_kwargs())
        self._attach_model()

    __init__.__doc__ = __doc__  # help(Class.__init__) shows the class's arguments

    def _setup(self, env: Any, config: SB3Config | None) -> None:
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, "
                            f"got {type(self.config).__name__}")
        cfg = self.config
        self.env = check_env(env)
        self.vec_env = make_sb3_vec_env(self.env, bootstrap_truncated=cfg.bootstrap_truncated)
        self.iteration = 0
        self.num_episodes = 0
        self.logger = Logger(cfg.run_dir, tensorboard=cfg.tensorboard, progress=cfg.progress_bar,
                             resume=getattr(self, "_resuming", False))
        if cfg.run_dir is not None:
            (Path(cfg.run_dir) / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, default=str))

    def _attach_model(self) -> None:
        # a logger with no outputs: learn() reads its values after each iteration and clears them
        self._sb3_logger = SB3Logger(folder=None, output_formats=[])
        self.model.set_logger(self._sb3_logger)
        self.policy: TextGymLMPolicy = self.model.policy

    @property
    def num_timesteps(self) -> int:
        """Generated tokens so far (SB3's env steps summed over envs)."""
        return int(self.model.num_timesteps)

    @property
    def tokens_per_iteration(self) -> int:
        """``n_steps * num_envs``."""
        return self.config.n_steps * self.vec_env.num_envs

    # ------------------------------------------------------------------ training
    def train_step(self) -> dict[str, Any]:
        """One iteration: SB3 collects ``n_steps`` tokens per env and trains once; returns the logged metrics."""
        # 1. rollout + update by SB3 (one iteration: total = current + one rollout's tokens)
        stats = _RolloutStats()
        t0 = time.perf_counter()
        self.model.learn(self.tokens_per_iteration, callback=stats, reset_num_timesteps=False, log_interval=None,
                         progress_bar=False)
        t2 = time.perf_counter()
        t1 = stats.rollout_end if stats.rollout_end is not None else t2
        # 2. SB3's training metrics under textgym's names
        values = dict(self._sb3_logger.name_to_value)
        self._sb3_logger.dump(self.num_timesteps)  # clears them
        metrics: dict[str, Any] = {SB3_METRICS[k]: float(v) for k, v in values.items() if k in SB3_METRICS}
        if "loss/entropy" in metrics:
            metrics["stats/entropy"] = -metrics["loss/entropy"]
        # 3. episodes that ended in this rollout (none may end when n_steps is shorter than an episode)
        self.iteration += 1
        self.num_episodes += len(stats.scores)
        if stats.scores:
            metrics["reward/score"] = float(np.mean(stats.scores))
            metrics["stats/length"] = float(np.mean(stats.lengths))
        metrics.update({"stats/episodes_finished": len(stats.scores), "time/rollout": t1 - t0,
                        "time/update": t2 - t1, "time/tokens_per_s": self.tokens_per_iteration / max(t1 - t0, 1e-9),
                        "train/timesteps": self.num_timesteps, "train/episodes": self.num_episodes})
        self.logger.log(self.iteration, metrics)
        return metrics

    # ------------------------------------------------------------------ using the policy
    def evaluate(self, env: Any, n_episodes: int = 64, *, greedy: bool = False,
                 seed: int | None = None) -> dict[str, float]:
        """Run ``n_episodes`` episodes on ``env`` with the trained LM (no learning) and summarise them.

        The evaluator of textgym's own algorithms
        (:func:`~textgym.agents.common.evaluation.evaluate_episodes`, KV-cached, the same
        numbers), with SB3's sampling (temperature 1, no top-k/top-p, or ``greedy``) and
        the k1 KL estimator; the generator is seeded with ``seed`` (default ``config.seed + 1``).
        ``env`` is reset: pass a separate one (e.g. the test split).
        """
        from textgym.agents.common.evaluation import evaluate_episodes

        return evaluate_episodes(self.policy.lm_policy, env, SamplingParams(greedy=greedy), n_episodes,
                                 seed=self.config.seed + 1 if seed is None else seed)

    def predict(self, observation: dict[str, np.ndarray], deterministic: bool = False) -> tuple[np.ndarray, None]:
        """Next token for each row of an env observation (SB3's ``predict``; one full forward, no cache).

        Args:
            observation: ``{"input_ids": (N, L), "attention_mask": (N, L)}`` (or one row ``(L,)``).
            deterministic: arg-max instead of sampling.

        Returns:
            ``(actions (N,) int64, None)`` (a scalar array for a single row).
        """
        actions, _ = self.model.predict(observation, deterministic=deterministic)
        return actions, None

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | os.PathLike) -> Path:
        """Write a checkpoint folder atomically: SB3's ``sb3_model.zip``, ``trainer_state.json``, ``config.json``."""
        state = {"algorithm": type(self).__name__, "config": self.config.to_dict(),
                 "counters": {"iteration": self.iteration, "num_episodes": self.num_episodes}}
        with checkpoint.atomic_directory(path) as tmp:
            self.model.save(tmp / "sb3_model.zip")
            (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2, default=str))
            (tmp / "config.json").write_text(json.dumps(self.config.to_dict(), indent=2, default=str))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, env: Any, **config_overrides: Any) -> SB3Algorithm:
        """Rebuild from :meth:`save`: weights, optimizer, counters and hyper-parameters (SB3's ``load``).

        The env's episodes restart (SB3 does not save them): the first ``learn``
        resets ``env``'s rows with the config's seed.

        Args:
            path: the checkpoint folder.
            env: a textgym vector env of the same task (any ``num_envs``).
            **config_overrides: config fields to change (e.g. ``run_dir``, ``learning_rate``).

        Raises:
            FileNotFoundError: no checkpoint at ``path``.
            ValueError: the checkpoint is of another algorithm.
        """
        path = Path(path)
        if not (path / "trainer_state.json").is_file() or not (path / "sb3_model.zip").is_file():
            raise FileNotFoundError(f"no SB3 checkpoint at {path} (trainer_state.json / sb3_model.zip missing)")
        state = json.loads((path / "trainer_state.json").read_text())
        if state["algorithm"] != cls.__name__:
            raise ValueError(f"{path} holds a {state['algorithm']} checkpoint, not {cls.__name__}")
        algo = cls.__new__(cls)
        algo._resuming = True
        algo._setup(env, cls.config_class(**{**state["config"], **config_overrides}))
        cfg = algo.config
        algo.model = cls.sb3_class.load(path / "sb3_model.zip", env=algo.vec_env, device=cfg.device or "cpu",
                                        seed=cfg.seed, **cfg.sb3_kwargs())
        algo._attach_model()
        algo.iteration = int(state["counters"]["iteration"])
        algo.num_episodes = int(state["counters"]["num_episodes"])
        return algo

    def close(self) -> None:
        """Close the logger and the SB3 envs."""
        self.logger.close()
        self.vec_env.close()


class SB3PPO(SB3Algorithm):
    """stable-baselines3's PPO on :class:`TextGymLMPolicy` (registry name ``"sb3-ppo"``).

    PPO: Schulman et al. 2017, "Proximal Policy Optimization Algorithms"; the
    update is SB3's (``stable_baselines3.PPO.train``), unmodified.
    """

    config_class = SB3PPOConfig
    sb3_class = PPO


class SB3A2C(SB3Algorithm):
    """stable-baselines3's A2C on :class:`TextGymLMPolicy` (registry name ``"sb3-a2c"``).

    A2C: Mnih et al. 2016, "Asynchronous Methods for Deep Reinforcement
    Learning" (synchronous variant); the update is SB3's, unmodified.
    """

    config_class = SB3A2CConfig
    sb3_class = A2C

"""RLlib bridge: textgym's envs under Ray Tune's registry, and an RLlib ``RLModule`` that is a textgym LM.

With it, RLlib's own, unmodified PPO (new API stack) trains a language model on a textgym task::

    from ray.rllib.algorithms.ppo import PPOConfig
    from textgym.integrations.rllib import register_envs, rl_module_spec

    register_envs()  # every textgym id, e.g. "textgym/TokenCount-v0", now names an RLlib env
    config = (PPOConfig()
              .environment("textgym/TokenCount-v0", env_config={"max_count": 8})
              .env_runners(num_env_runners=0, num_envs_per_env_runner=16)
              .rl_module(rl_module_spec=rl_module_spec("tiny-char")))
    algo = config.build_algo()
    algo.train()

How RLlib's parts map onto the LM (:class:`TextGymRLModule`):

* **observations are token ids, never one-hot**: the env's ``Dict(input_ids,
  attention_mask)`` observation reaches the module as two ``(B, L)`` integer
  tensors (RLlib's default connectors batch a ``Dict`` without flattening or
  one-hot encoding it), and the LM's embedding table embeds the ids;
* **padding**: each row is ``[left padding | prompt | completion so far | right
  padding]``; the module moves the right padding in front
  (:func:`textgym.agents.algorithms.sb3_policy.right_align`), masks every pad with
  the attention mask and numbers positions ``cumsum(mask) - 1``, so a pad changes
  no logit;
* **action distribution**: the LM head's logits at each row's last real token,
  cut to the env's ``Discrete(V)``, as RLlib's ``TorchCategorical``;
* **values** (``ValueFunctionAPI``): a linear value head on the LM's last hidden
  state at that token.

The LM, its optional LoRA adapter (peft) and the value head are a
:class:`textgym.agents.common.policy.LMActorCritic` (attribute ``policy``), the
object textgym's own algorithms train: :func:`textgym.agents.common.evaluation.evaluate_policy`
evaluates it and ``policy.save(dir)`` writes a folder textgym's algorithms load.
RLlib's PPO has no KL penalty to a frozen reference model (its ``kl_coeff`` is
the KL to the policy that sampled); the policy's reference (the starting model)
only serves textgym's evaluation, which reports the KL to it.

Weight sync: RLlib copies the module's state from its learner to its env
runners after every update.  The state is the *trainable* parameters only
(the LoRA adapter and value head under LoRA), since every copy rebuilds the
frozen base weights itself from the same model name and seed.

Cost: RLlib's env runners call the module once per env step on the whole
observation (RLlib's per-step connector design keeps no KV cache between
steps), so each generated token recomputes the full context: ``O(L)``
token-forwards per token instead of ``O(1)`` with textgym's own KV-cached
rollouts.  RLlib's update is per step too: every timestep is a training row
with its full observation, so the forward and backward run over the context
once per generated token, where textgym's update runs each episode once.
The README's "Ray and RLlib" section has the measured tokens/s.

Ray is an optional dependency: ``pip install 'textgym[ray]'``.
"""

from __future__ import annotations

import functools
import os
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray never reports usage over the network

try:
    from ray.rllib.core.columns import Columns
    from ray.rllib.core.rl_module.apis import ValueFunctionAPI
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec
    from ray.rllib.core.rl_module.torch import TorchRLModule
    from ray.rllib.utils.torch_utils import convert_to_torch_tensor
    from ray.tune.registry import register_env
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("textgym.integrations.rllib needs Ray RLlib, which is not installed; install it with: "
                      "pip install 'textgym[ray]'") from exc

import gymnasium as gym
import numpy as np
import torch

from textgym.agents.algorithms.sb3_algos import TruncationAsTermination
from textgym.agents.algorithms.sb3_policy import check_token_spaces, right_align
from textgym.agents.common.policy import LMActorCritic, position_ids_from_mask

__all__ = ["register_envs", "make_env", "VectorTruncationAsTermination", "TextGymRLModule", "rl_module_spec"]


# ----------------------------------------------------------------------------- envs
class VectorTruncationAsTermination(gym.vector.VectorWrapper):
    """Report the end of the token budget as ``terminated`` (never ``truncated``), for a vector env.

    textgym envs pay the final score on the budget's last token and nothing follows it;
    RLlib's GAE would otherwise add ``V(s_T)`` of a state that never comes to that reward
    (its truncation bootstrap), which makes running out of budget look better than stopping.
    ``info["budget_truncated"]`` keeps the original flags.
    """

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        info = {**info, "budget_truncated": np.asarray(truncated, dtype=bool)}
        return obs, reward, np.logical_or(terminated, truncated), np.zeros_like(truncated, dtype=bool), info


def make_env(env_id: str, env_config: dict[str, Any] | None = None) -> gym.Env | gym.vector.VectorEnv:
    """The env RLlib asks for: ``gym.make(env_id, **env_config)``.

    With ``env_runners(gym_env_vectorize_mode="vector_entry_point")`` RLlib adds
    ``num_envs`` to the config; the env is then textgym's native batched
    ``TextGenVectorEnv`` (one reward call per step for all rows that ended).

    ``env_config["bootstrap_truncated"]`` (default ``False``, as textgym's own
    agents): ``False`` reports the end of the token budget as termination
    (:class:`VectorTruncationAsTermination`, or ``TruncationAsTermination`` for one
    env), so RLlib does not bootstrap a value after the final score.
    """
    kwargs = dict(env_config or {})  # an EnvContext is a dict with worker attributes
    num_envs = kwargs.pop("num_envs", None)
    bootstrap = bool(kwargs.pop("bootstrap_truncated", False))
    if num_envs is None:
        env = gym.make(env_id, **kwargs)
        return env if bootstrap else TruncationAsTermination(env)
    vec = gym.make_vec(env_id, num_envs=int(num_envs), vectorization_mode="vector_entry_point", **kwargs)
    return vec if bootstrap else VectorTruncationAsTermination(vec)


def register_envs(ids: list[str] | None = None) -> list[str]:
    """Register textgym env ids with Ray Tune's env registry (all of them by default); returns the ids.

    After it, ``PPOConfig().environment("textgym/TokenCount-v0", env_config={...})``
    builds the task with :func:`make_env` (``env_config`` = the task's overrides).

    Raises:
        KeyError: an id in ``ids`` that textgym does not register.
    """
    import textgym

    known = textgym.list_envs()
    ids = known if ids is None else list(ids)
    for env_id in ids:
        if env_id not in known:
            raise KeyError(f"{env_id!r} is not a textgym env id; see textgym.list_envs()")
        register_env(env_id, functools.partial(make_env, env_id))
    return ids


# ----------------------------------------------------------------------------- the module
class TextGymRLModule(TorchRLModule, ValueFunctionAPI):
    """RLlib ``TorchRLModule`` on a causal LM: token ids in, LM-head logits and a value head out.

    Build it through :func:`rl_module_spec` (RLlib passes the spaces).  ``model_config``:

    * ``model``: a :func:`textgym.models.load` name or path (``"tiny-char"``,
      ``"smollm2-135m-instruct"``, a folder);
    * ``lora``: ``None`` (full fine-tuning), ``True`` or a dict of ``peft.LoraConfig`` fields;
    * ``seed``: seed of the tiny presets' random weights (every copy must use the same);
    * ``dtype``: torch dtype name to load the model in (``None``: float32);
    * ``value_head_std``: std of the value head's initial weights.

    Attributes:
        policy: the :class:`LMActorCritic` (LM, optional adapter, value head, and the
            reference: the starting model, which RLlib's PPO never reads but textgym's
            evaluation reports the KL to; without LoRA a frozen copy, never synced).

    Raises:
        ValueError: spaces that are not a textgym env's, or an action space larger than the vocabulary.
    """

    def setup(self) -> None:
        check_token_spaces(self.observation_space, self.action_space)
        cfg = {"model": "tiny-char", "lora": None, "seed": 0, "dtype": None, "value_head_std": 0.01,
               **(self.model_config or {})}
        dtype = getattr(torch, cfg["dtype"]) if isinstance(cfg["dtype"], str) else cfg["dtype"]
        self.policy = LMActorCritic.from_pretrained(str(cfg["model"]), lora=cfg["lora"],
                                                    action_size=int(self.action_space.n), dtype=dtype,
                                                    seed=int(cfg["seed"]), value_head_std=cfg["value_head_std"])

    def train(self, mode: bool = True) -> TextGymRLModule:
        """Dropout stays off (RLlib's ``forward_train`` calls ``train()``): rollouts and updates see one distribution."""
        return super().train(False)

    def _lm(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits (B, V), last hidden state (B, H))`` at each row's last real token of ``batch["obs"]``."""
        obs = batch[Columns.OBS]
        ids, mask = right_align(obs["input_ids"].long(), obs["attention_mask"].long())  # (B, L') every row's last real token in the last column
        out = self.policy.run_lm(self.policy.lm, ids, mask, position_ids_from_mask(mask), 1)
        return out.logits[:, -1, : self.policy.action_size].float(), out.hidden_states[-1][:, -1]

    def _forward(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        logits, _ = self._lm(batch)
        return {Columns.ACTION_DIST_INPUTS: logits}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        logits, hidden = self._lm(batch)
        return {Columns.ACTION_DIST_INPUTS: logits, Columns.EMBEDDINGS: hidden}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None) -> torch.Tensor:
        """``V(s)``, ``(B,)`` float32, from the last hidden state (given by ``_forward_train`` or recomputed)."""
        if embeddings is None:
            embeddings = self._lm(batch)[1]
        return self.policy.value_head(embeddings.float()).squeeze(-1)

    # ------------------------------------------------------------------ state (weight sync, checkpoints)
    def get_state(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The trainable tensors (LM or LoRA adapter, value head), as numpy arrays.

        The frozen base weights are rebuilt by every copy from the same model name and seed,
        so they are neither sent to env runners nor written to checkpoints.
        """
        from ray.rllib.utils.numpy import convert_to_numpy

        return convert_to_numpy({n: p.detach() for n, p in self.named_parameters() if p.requires_grad})

    def set_state(self, state: dict[str, Any]) -> None:
        """Load a :meth:`get_state` dict.

        Raises:
            ValueError: a key that is not a trainable parameter of this module (another model or adapter).
        """
        trainable = {n for n, p in self.named_parameters() if p.requires_grad}
        unknown = sorted(set(state) - trainable)
        if unknown:
            raise ValueError(f"the state has {len(unknown)} tensors this module does not train, e.g. {unknown[:3]}; "
                             "was it written for another model or LoRA setting?")
        self.load_state_dict(convert_to_torch_tensor(dict(state)), strict=False)


def rl_module_spec(model: str = "tiny-char", *, lora: Any = None, seed: int = 0, dtype: str | None = None,
                   value_head_std: float = 0.01) -> RLModuleSpec:
    """An ``RLModuleSpec`` of :class:`TextGymRLModule` for ``PPOConfig().rl_module(rl_module_spec=...)``.

    Args: see :class:`TextGymRLModule` (``model_config``).
    """
    return RLModuleSpec(module_class=TextGymRLModule,
                        model_config={"model": str(model), "lora": lora, "seed": int(seed), "dtype": dtype,
                                      "value_head_std": float(value_head_std)})

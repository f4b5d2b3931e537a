"""``TextGymLMPolicy``: a stable-baselines3 actor-critic policy whose network is a causal LM.

With it, stable-baselines3's own, unmodified ``PPO`` and ``A2C`` train on textgym envs::

    import gymnasium as gym
    import stable_baselines3 as sb3
    from textgym.agents import TextGymLMPolicy

    env = gym.make("textgym/TokenCount-v0")
    model = sb3.PPO(TextGymLMPolicy, env, policy_kwargs={"model": "tiny-char"}, n_steps=64, batch_size=64)
    model.learn(4096)

How SB3's parts map onto the LM (see :class:`TextGymLMPolicy`):

* **observations are token ids, never one-hot**: SB3's default preprocessing
  (``preprocess_obs``) one-hot encodes ``Discrete`` / ``MultiDiscrete``
  observations into vocabulary-sized vectors and casts ``Box`` ones to float.
  This policy bypasses it: :meth:`TextGymLMPolicy.extract_features` hands the
  raw ``(B, L)`` int64 ``input_ids`` / ``attention_mask`` to the LM, whose
  embedding table embeds them;
* **actions**: the LM head's logits at each row's last real token (position
  ids ``cumsum(attention_mask) - 1``, as :class:`LMActorCritic` uses), cut to
  the env's action space, as SB3's ``CategoricalDistribution``;
* **values**: a linear value head on the LM's last hidden state at that token.

The LM, its optional LoRA adapter (peft) and the frozen reference model are an
:class:`textgym.agents.common.policy.LMActorCritic` (attribute ``lm_policy``), so
checkpoints and the reference (for the KL to it) work as for textgym's own
algorithms.

Cost: SB3 has no KV cache
-------------------------
SB3 calls the policy on the whole observation at every env step, so each
generated token recomputes the full context: one forward over the ``L``
tokens of prompt + completion so far, i.e. ``O(L)`` token-forwards (with
``O(L^2)`` attention) per generated token and ``O(L^2)`` token-forwards per
episode of ``L`` tokens.  textgym's own rollouts (:mod:`textgym.agents.common.rollout`)
use the KV cache: ``O(1)`` token-forwards per generated token, ``O(L)`` per
episode.  Each forward is cut to the columns that hold real tokens (padding
after the completion is moved in front and dropped where every row has it),
which bounds ``L`` by the longest context in the batch.
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import torch
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from textgym.agents.common.policy import LMActorCritic

__all__ = ["TextGymLMPolicy", "LMPolicyMixin", "TokenIdsExtractor", "TokenObservation", "right_align",
           "check_token_spaces"]

#: float32 holds every integer up to 2**24 exactly, so float-stored token ids up to it round-trip.
_MAX_FLOAT_EXACT = 2**24


class TokenObservation(NamedTuple):
    """What :class:`TokenIdsExtractor` gives the LM: the observation's token ids, unembedded.

    Attributes:
        input_ids: ``(B, L)`` int64 token ids.
        attention_mask: ``(B, L)`` int64, 1 on real tokens.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor


def check_token_spaces(observation_space: spaces.Space, action_space: spaces.Space | None = None) -> int:
    """Check that the spaces are a textgym env's; return the number of token slots ``L``.

    Args:
        observation_space: ``Dict(input_ids=Box(L,), attention_mask=Box(L,))`` (or
            ``MultiDiscrete`` / ``MultiBinary`` parts of shape ``(L,)``).
        action_space: ``Discrete(V)`` (``None``: not checked).

    Raises:
        ValueError: any other layout (the message says what was found).
    """
    keys = {"input_ids", "attention_mask"}
    if not isinstance(observation_space, spaces.Dict) or keys - set(observation_space.spaces):
        raise ValueError("TextGymLMPolicy needs a textgym observation space Dict(input_ids=..., attention_mask=...), "
                         f"got {observation_space}; build the env with gym.make('textgym/...')")
    shapes = {k: observation_space.spaces[k].shape for k in ("input_ids", "attention_mask")}
    if len(shapes["input_ids"]) != 1 or shapes["input_ids"] != shapes["attention_mask"]:
        raise ValueError(f"input_ids and attention_mask must both have shape (L,), got {shapes}")
    if action_space is None:
        return int(shapes["input_ids"][0])
    if not isinstance(action_space, spaces.Discrete):
        raise ValueError(f"TextGymLMPolicy needs a Discrete(V) action space (token ids), got {action_space}")
    if action_space.n > _MAX_FLOAT_EXACT:
        raise ValueError(f"action space of {action_space.n} tokens: ids above 2**24 are not exact in float32 buffers")
    return int(shapes["input_ids"][0])


def _as_token_tensor(x: torch.Tensor, name: str) -> torch.Tensor:
    """An observation part as int64; float copies (e.g. from a float buffer) must hold whole numbers."""
    if x.is_floating_point():
        if not torch.equal(x, x.round()):
            raise ValueError(f"observation[{name!r}] holds non-integer values; token ids must be whole numbers")
        return x.long()
    return x.long() if x.dtype != torch.long else x


def right_align(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> TokenObservation:
    """Move each row's trailing padding to its front and drop leading columns that are padding in every row.

    A textgym observation is ``[left padding | prompt | completion so far |
    right padding]``; after this each row's last real token is in the last
    column, so a forward's final position gives every row's next-token logits.
    Positions come from the mask (``cumsum - 1``), so moving padding changes no
    logit.

    Args:
        input_ids: ``(B, L)`` int64.
        attention_mask: ``(B, L)`` int64 (0/1).

    Returns:
        :class:`TokenObservation` of shape ``(B, L')`` with ``L' <= L`` (the longest row's span
        from its first to its last real token).

    Raises:
        ValueError: a row has no real token (its mask is all 0).
    """
    b, length = input_ids.shape
    real = attention_mask.bool()
    if not bool(real.any(-1).all()):
        raise ValueError("an observation row has no real token (attention_mask all 0); "
                         "observations must come from a reset textgym env")
    cols = torch.arange(length, device=input_ids.device)
    last = torch.where(real, cols, -1).amax(-1)  # (B,) index of each row's last real token
    shift = (length - 1 - last)[:, None]  # (B, 1) roll right by this
    src = (cols[None, :] - shift) % length  # (B, L) column each aligned column comes from
    ids, mask = input_ids.gather(1, src), attention_mask.gather(1, src)
    start = int(mask.bool().any(0).nonzero()[0])  # first column where some row is real
    return TokenObservation(ids[:, start:], mask[:, start:])


class TokenIdsExtractor(BaseFeaturesExtractor):
    """SB3 features extractor that passes token ids through unchanged (the LM embeds them).

    ``features_dim`` is ``L``, the number of token slots: what reaches the LM
    is ``L`` integer ids per row, never a vocabulary-sized one-hot vector.

    Args:
        observation_space: a textgym env's ``Dict(input_ids, attention_mask)`` space.

    Raises:
        ValueError: another observation space (see :func:`check_token_spaces`).
    """

    def __init__(self, observation_space: spaces.Dict):
        length = check_token_spaces(observation_space)
        super().__init__(observation_space, features_dim=length)

    def forward(self, observations: dict[str, torch.Tensor]) -> TokenObservation:  # type: ignore[override]
        """``{"input_ids": (B, L), "attention_mask": (B, L)}`` (any int or whole-number float dtype) -> int64.

        Raises:
            ValueError: a key is missing or the parts are not ``(B, L)`` of the same shape.
        """
        if not isinstance(observations, dict) or {"input_ids", "attention_mask"} - set(observations):
            raise ValueError("the observation must be a dict with 'input_ids' and 'attention_mask' (B, L) tensors")
        ids = _as_token_tensor(observations["input_ids"], "input_ids")
        mask = _as_token_tensor(observations["attention_mask"], "attention_mask")
        if ids.ndim != 2 or ids.shape != mask.shape:
            raise ValueError(f"input_ids and attention_mask must be (B, L) of one shape, got {tuple(ids.shape)} "
                             f"and {tuple(mask.shape)}")
        return TokenObservation(ids, mask)


class LMPolicyMixin:
    """The causal-LM network of an SB3 actor-critic policy: building it, its parameters, one forward.

    Shared by :class:`TextGymLMPolicy` (on SB3's ``ActorCriticPolicy``) and
    :class:`~textgym.agents.algorithms.sb3_maskable_policy.MaskableTextGymLMPolicy`
    (on sb3-contrib's ``MaskableActorCriticPolicy``); put it first among the bases.
    The arguments are :class:`TextGymLMPolicy`'s.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule,
                 model: str | os.PathLike | nn.Module | None = None, *, tokenizer: Any = None, lora: Any = None,
                 adapter: str | None = None, model_seed: int = 0, dtype: Any = None, value_head_std: float = 0.01,
                 use_sde: bool = False, optimizer_class: type[torch.optim.Optimizer] = torch.optim.Adam,
                 optimizer_kwargs: dict[str, Any] | None = None):
        check_token_spaces(observation_space, action_space)
        if use_sde:
            raise ValueError(f"{type(self).__name__} has discrete (token) actions; use_sde must be False")
        if model is None:
            raise ValueError(f"{type(self).__name__} needs a model: pass policy_kwargs={{'model': 'tiny-llama'}} "
                             "(a textgym.models name, a local path, or a causal LM object)")
        self._lm_kwargs = dict(model=model, tokenizer=tokenizer, lora=lora, adapter=adapter, model_seed=model_seed,
                               dtype=dtype, value_head_std=value_head_std)
        super().__init__(observation_space, action_space, lr_schedule, net_arch=[], ortho_init=False,
                         features_extractor_class=TokenIdsExtractor, share_features_extractor=True,
                         optimizer_class=optimizer_class, optimizer_kwargs=optimizer_kwargs)
        # 1. the LM actor-critic (the SB3 base's __init__ called our _build, which builds nothing)
        self.lm_policy = self._make_lm_policy(int(action_space.n))
        # 2. the optimizer over the trainable parameters (LM or LoRA adapter, value head), never the reference
        self.optimizer = self.optimizer_class(self.trainable_parameters(), lr=lr_schedule(1),
                                              **self.optimizer_kwargs)

    # ------------------------------------------------------------------ building
    def _make_lm_policy(self, action_size: int) -> LMActorCritic:
        kw = self._lm_kwargs
        model = kw["model"]
        if isinstance(model, LMActorCritic):
            if model.action_size != action_size:
                raise ValueError(f"the LMActorCritic's action_size is {model.action_size}, the env's action space "
                                 f"has {action_size} tokens")
            return model
        if isinstance(model, (str, os.PathLike)):
            return LMActorCritic.from_pretrained(str(model), lora=kw["lora"], adapter=kw["adapter"],
                                                 action_size=action_size, dtype=kw["dtype"], seed=kw["model_seed"],
                                                 value_head_std=kw["value_head_std"])
        if isinstance(model, nn.Module):
            return LMActorCritic(model, kw["tokenizer"], lora=kw["lora"], adapter=kw["adapter"],
                                 action_size=action_size, value_head_std=kw["value_head_std"])
        raise TypeError(f"model must be a name/path, a causal LM or an LMActorCritic, got {type(model).__name__}")

    @property
    def tokenizer(self) -> Any:
        """The LM's tokenizer (``None`` for a model object given without one)."""
        return self.lm_policy.tokenizer

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the optimizer updates: the LM (or its LoRA adapter) and the value head, never the reference."""
        return self.lm_policy.trainable_parameters()

    def _build(self, lr_schedule: Schedule) -> None:
        """Called by the SB3 base's ``__init__``: no MLP, action or value nets (the LM provides them).

        The optimizer is made in ``__init__`` once the LM exists.
        """

    def _get_constructor_parameters(self) -> dict[str, Any]:
        """Arguments that rebuild this policy (``BaseModel.save`` / ``load``)."""
        return dict(observation_space=self.observation_space, action_space=self.action_space,
                    lr_schedule=self._dummy_schedule, optimizer_class=self.optimizer_class,
                    optimizer_kwargs=self.optimizer_kwargs, **self._lm_kwargs)

    # ------------------------------------------------------------------ the LM pass
    def extract_features(self, obs: dict[str, torch.Tensor],  # type: ignore[override]
                         features_extractor: BaseFeaturesExtractor | None = None) -> TokenObservation:
        """The raw token ids of ``obs``: SB3's ``preprocess_obs`` (one-hot / float cast) is skipped.

        Args:
            obs: ``{"input_ids": (B, L), "attention_mask": (B, L)}`` tensors.

        Returns:
            :class:`TokenObservation`, both ``(B, L)`` int64.
        """
        return (features_extractor or self.features_extractor)(obs)

    def logits_and_values(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """One LM forward over the observations (with grad): next-token logits and state values.

        Args:
            obs: ``{"input_ids": (B, L), "attention_mask": (B, L)}``.

        Returns:
            ``logits (B, V)`` float32 at each row's last real token (cut to the
            action space) and ``values (B, 1)`` float32.

        Raises:
            ValueError: malformed observations (see :class:`TokenIdsExtractor`, :func:`right_align`).
        """
        ids, mask = right_align(*self.extract_features(obs))
        out = self.lm_policy.prefill(ids, mask)  # last column = every row's last real token
        return out.logits.float(), out.values.float()[:, None]


class TextGymLMPolicy(LMPolicyMixin, ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` on a causal LM: token ids in, LM-head logits and a value head out.

    Build it through SB3 (``PPO(TextGymLMPolicy, env, policy_kwargs={...})``);
    SB3 supplies the first three arguments.

    Args:
        observation_space: the env's ``Dict(input_ids=(L,), attention_mask=(L,))`` space.
        action_space: ``Discrete(V)``; the LM's logits are cut to ``V`` (the
            model's vocabulary must be at least ``V``).
        lr_schedule: SB3's learning-rate schedule; the optimizer starts at
            ``lr_schedule(1)`` and SB3 updates it before each training phase.
        model: a model name/path for :func:`textgym.models.load` (e.g.
            ``"tiny-char"``, ``"tiny-llama"``, ``"smollm2-135m-instruct"``), a
            Hugging Face causal LM, or a ready :class:`LMActorCritic`.
        tokenizer: the tokenizer of a model object (kept for saving).
        lora: LoRA as in :class:`LMActorCritic`: ``None``, ``True`` or a dict of
            ``peft.LoraConfig`` fields (the reference is then the model with the
            adapter disabled, otherwise a frozen copy).
        adapter: path of a LoRA adapter to start from.
        model_seed: seed of the random weights of the tiny presets.
        dtype: torch dtype to load a named model in (``None``: float32).
        value_head_std: std of the value head's initial weights.
        use_sde: must be ``False`` (SB3 passes it; gSDE is for continuous actions).
        optimizer_class: torch optimizer (SB3's A2C passes ``RMSprop`` unless ``use_rms_prop=False``).
        optimizer_kwargs: its keyword arguments, excluding the learning rate
            (default for Adam: ``eps=1e-5``, as SB3).

    Attributes:
        lm_policy: the :class:`LMActorCritic` (LM, value head, reference).
        features_dim: ``L``, token ids per observation row.

    Raises:
        ValueError: spaces that are not a textgym env's, ``use_sde=True``, no
            ``model``, or an action space larger than the model's vocabulary.

    Notes:
        * Dropout stays off in training mode too (:meth:`LMActorCritic.train`),
          so rollouts and updates see one distribution.
        * Each call recomputes the whole context (no KV cache; see the module docstring).
        * ``model.save`` / ``PPO.load`` rebuild the policy from these arguments
          and load its state dict; a model *object* given as ``model`` is pickled
          into the saved ``policy_kwargs``, so prefer a name or path.
    """

    def _distribution(self, logits: torch.Tensor) -> CategoricalDistribution:
        return self.action_dist.proba_distribution(action_logits=logits)

    def forward(self, obs: dict[str, torch.Tensor],
                deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (or arg-max) actions: ``(actions (B,) int64, values (B, 1), log_prob (B,))``."""
        logits, values = self.logits_and_values(obs)
        dist = self._distribution(logits)
        actions = dist.get_actions(deterministic=deterministic)
        return actions, values, dist.log_prob(actions)

    def evaluate_actions(self, obs: dict[str, torch.Tensor],
                         actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For SB3's update: ``(values (B, 1), log pi(a|s) (B,), entropy (B,))`` with grad.

        Args:
            obs: observations of the rollout buffer.
            actions: ``(B,)`` or ``(B, 1)`` token ids (any numeric dtype).
        """
        logits, values = self.logits_and_values(obs)
        dist = self._distribution(logits)
        return values, dist.log_prob(actions.reshape(-1).long()), dist.entropy()

    def get_distribution(self, obs: dict[str, torch.Tensor]) -> Distribution:
        """SB3's ``CategoricalDistribution`` over the next token."""
        return self._distribution(self.logits_and_values(obs)[0])

    def predict_values(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``V(s)``: ``(B, 1)`` float32."""
        return self.logits_and_values(obs)[1]

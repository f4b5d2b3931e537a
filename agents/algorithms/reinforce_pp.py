"""REINFORCE++ (Hu, "REINFORCE++: A Simple and Efficient Approach for Aligning Large Language Models", 2025,
section 3) as a named preset of :class:`~textgym.agents.algorithms.reinforce.REINFORCE`: no critic, the KL
in the reward, and the global batch as the baseline.

Per token, as PPO's penalty (section 3.1), and the return-to-go (``gamma = 1``)::

    r_t = env_reward_t - kl_coef * KL_t,        G_t = sum_{k >= t} r_k,

then the advantages are the returns whitened over every real token of the *global* batch (section 3.2;
over every process's batch when several run, :func:`textgym.agents.common.distributed.masked_whiten`)::

    A_t = (G_t - mean(G)) / std(G),        L = - 1/|tokens| sum_t A_t log pi(a_t | s_t).

One gradient step per rollout (the paper's PPO-style clip is inactive at ratio 1, so it is left out);
``rescore_policy`` then defaults to off.  The update is :meth:`REINFORCE.update` with
``baseline="batch_norm"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from textgym.agents.algorithms.reinforce import REINFORCE, REINFORCEConfig

__all__ = ["REINFORCEPlusPlus", "REINFORCEPlusPlusConfig"]


@dataclass
class REINFORCEPlusPlusConfig(REINFORCEConfig):
    """:class:`REINFORCEConfig` with REINFORCE++'s defaults: ``baseline="batch_norm"`` (no value loss:
    ``vf_coef=0``), ``gamma=1``."""

    baseline: str = "batch_norm"
    vf_coef: float = 0.0


class REINFORCEPlusPlus(REINFORCE):
    """REINFORCE++ (Hu 2025): KL-penalised return-to-go, whitened over the global batch (see the module docstring)."""

    config_class = REINFORCEPlusPlusConfig

"""textgym agents: the LM policy, rollouts, PPO, REINFORCE (and REINFORCE++), A2C, NLPO, RLOO, GRPO (and Dr. GRPO,
DAPO, GSPO), and the pure RL math
(``textgym.agents.functional``).

Names are imported on first use, so ``import textgym.agents`` stays cheap
(torch / transformers load only when a class is touched).
"""

import importlib

_EXPORTS = {
    "functional": ("textgym.agents.functional", None),
    "LMActorCritic": ("textgym.agents.common.policy", "LMActorCritic"),
    "ActorCriticPolicy": ("textgym.agents.common.policy", "ActorCriticPolicy"),
    "RolloutBatch": ("textgym.agents.common.rollout", "RolloutBatch"),
    "RolloutCollector": ("textgym.agents.common.rollout", "RolloutCollector"),
    "MultiTurnRolloutCollector": ("textgym.agents.common.multiturn_rollout", "MultiTurnRolloutCollector"),
    "SamplingParams": ("textgym.agents.common.sampling", "SamplingParams"),
    "Algorithm": ("textgym.agents.common.protocol", "Algorithm"),
    "OnPolicyAlgorithm": ("textgym.agents.common.base", "OnPolicyAlgorithm"),
    "OnPolicyConfig": ("textgym.agents.common.on_policy_config", "OnPolicyConfig"),
    "RunSettings": ("textgym.agents.common.run_settings", "RunSettings"),
    "PPO": ("textgym.agents.algorithms.ppo", "PPO"),
    "PPOConfig": ("textgym.agents.algorithms.ppo", "PPOConfig"),
    "REINFORCE": ("textgym.agents.algorithms.reinforce", "REINFORCE"),
    "REINFORCEConfig": ("textgym.agents.algorithms.reinforce", "REINFORCEConfig"),
    "A2C": ("textgym.agents.algorithms.a2c", "A2C"),
    "A2CConfig": ("textgym.agents.algorithms.a2c", "A2CConfig"),
    "NLPO": ("textgym.agents.algorithms.nlpo", "NLPO"),
    "NLPOConfig": ("textgym.agents.algorithms.nlpo", "NLPOConfig"),
    "RLOO": ("textgym.agents.algorithms.rloo", "RLOO"),
    "RLOOConfig": ("textgym.agents.algorithms.rloo", "RLOOConfig"),
    "GRPO": ("textgym.agents.algorithms.grpo", "GRPO"),
    "GRPOConfig": ("textgym.agents.algorithms.grpo", "GRPOConfig"),
    "DrGRPO": ("textgym.agents.algorithms.grpo_variants", "DrGRPO"),
    "DrGRPOConfig": ("textgym.agents.algorithms.grpo_variants", "DrGRPOConfig"),
    "DAPO": ("textgym.agents.algorithms.grpo_variants", "DAPO"),
    "DAPOConfig": ("textgym.agents.algorithms.grpo_variants", "DAPOConfig"),
    "GSPO": ("textgym.agents.algorithms.grpo_variants", "GSPO"),
    "GSPOConfig": ("textgym.agents.algorithms.grpo_variants", "GSPOConfig"),
    "REINFORCEPlusPlus": ("textgym.agents.algorithms.reinforce_pp", "REINFORCEPlusPlus"),
    "REINFORCEPlusPlusConfig": ("textgym.agents.algorithms.reinforce_pp", "REINFORCEPlusPlusConfig"),
    "OnlineDPO": ("textgym.agents.algorithms.online_dpo", "OnlineDPO"),
    "OnlineDPOConfig": ("textgym.agents.algorithms.online_dpo", "OnlineDPOConfig"),
    "Logger": ("textgym.agents.common.logger", "Logger"),
    # stable-baselines3 interop: the SB3 policy class and SB3's PPO / A2C behind textgym's interface
    "TextGymLMPolicy": ("textgym.agents.algorithms.sb3_policy", "TextGymLMPolicy"),
    "SB3PPO": ("textgym.agents.algorithms.sb3_algos", "SB3PPO"),
    "SB3PPOConfig": ("textgym.agents.algorithms.sb3_algos", "SB3PPOConfig"),
    "SB3A2C": ("textgym.agents.algorithms.sb3_algos", "SB3A2C"),
    "SB3A2CConfig": ("textgym.agents.algorithms.sb3_algos", "SB3A2CConfig"),
    # sb3-contrib's MaskablePPO (the optional extra `sb3`) on envs with allowed_token_ids
    "MaskableTextGymLMPolicy": ("textgym.agents.algorithms.sb3_maskable_policy", "MaskableTextGymLMPolicy"),
    "SB3MaskablePPO": ("textgym.agents.algorithms.sb3_maskable_ppo", "SB3MaskablePPO"),
    "SB3MaskablePPOConfig": ("textgym.agents.algorithms.sb3_maskable_ppo", "SB3MaskablePPOConfig"),
    # supervised stages: SFT warm start, reward model, sentiment classifier
    "SFTTrainer": ("textgym.agents.trainers.sft", "SFTTrainer"),
    "SFTConfig": ("textgym.agents.trainers.sft", "SFTConfig"),
    "PreferenceTrainer": ("textgym.agents.trainers.preference", "PreferenceTrainer"),
    "PreferenceConfig": ("textgym.agents.trainers.preference", "PreferenceConfig"),
    "RewardModelTrainer": ("textgym.agents.trainers.reward_model", "RewardModelTrainer"),
    "RewardModelConfig": ("textgym.agents.trainers.reward_model", "RewardModelConfig"),
    "ClassifierTrainer": ("textgym.agents.trainers.sentiment_classifier", "ClassifierTrainer"),
    "ClassifierConfig": ("textgym.agents.trainers.sentiment_classifier", "ClassifierConfig"),
    "train_sentiment_classifier": ("textgym.agents.trainers.sentiment_classifier", "train_sentiment_classifier"),
    "sentiment_classifier_path": ("textgym.agents.trainers.sentiment_classifier", "sentiment_classifier_path"),
}

__all__ = list(_EXPORTS)

#: names that moved up to the application layer (``textgym.app``): agents never import it
_MOVED_TO_APP = {"Pipeline", "RunResult", "CompareConfig", "ComparisonResult", "bootstrap_ci", "iqm"}


def __getattr__(name):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    if name in _MOVED_TO_APP:
        raise AttributeError(f"textgym.agents.{name} moved to the application layer: from textgym.app import {name}")
    raise AttributeError(f"module 'textgym.agents' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))

"""textgym agents: the LM policy, rollouts, PPO, and the pure RL math (``textgym.agents.functional``).

Names are imported on first use, so ``import textgym.agents`` stays cheap
(torch / transformers load only when a class is touched).
"""

import importlib

_EXPORTS = {
    "functional": ("textgym.agents.functional", None),
    "LMActorCritic": ("textgym.agents.policy", "LMActorCritic"),
    "ActorCriticPolicy": ("textgym.agents.policy", "ActorCriticPolicy"),
    "RolloutBatch": ("textgym.agents.rollout", "RolloutBatch"),
    "RolloutCollector": ("textgym.agents.rollout", "RolloutCollector"),
    "SamplingParams": ("textgym.agents.sampling", "SamplingParams"),
    "OnPolicyAlgorithm": ("textgym.agents.base", "OnPolicyAlgorithm"),
    "OnPolicyConfig": ("textgym.agents.base", "OnPolicyConfig"),
    "PPO": ("textgym.agents.ppo", "PPO"),
    "PPOConfig": ("textgym.agents.ppo", "PPOConfig"),
    "Logger": ("textgym.agents.logger", "Logger"),
    # supervised stages: SFT warm start, reward model, sentiment classifier
    "SFTTrainer": ("textgym.agents.sft", "SFTTrainer"),
    "SFTConfig": ("textgym.agents.sft", "SFTConfig"),
    "RewardModelTrainer": ("textgym.agents.reward_model", "RewardModelTrainer"),
    "RewardModelConfig": ("textgym.agents.reward_model", "RewardModelConfig"),
    "ClassifierTrainer": ("textgym.agents.sentiment_classifier", "ClassifierTrainer"),
    "ClassifierConfig": ("textgym.agents.sentiment_classifier", "ClassifierConfig"),
    "train_sentiment_classifier": ("textgym.agents.sentiment_classifier", "train_sentiment_classifier"),
    "sentiment_classifier_path": ("textgym.agents.sentiment_classifier", "sentiment_classifier_path"),
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        module, attr = _EXPORTS[name]
        mod = importlib.import_module(module)
        return mod if attr is None else getattr(mod, attr)
    raise AttributeError(f"module 'textgym.agents' has no attribute {name!r}")

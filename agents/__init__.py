"""textgym agents: the LM policy, rollouts, PPO, REINFORCE, A2C, NLPO, RLOO, GRPO, and the pure RL math
(``textgym.agents.functional``).

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
    "REINFORCE": ("textgym.agents.reinforce", "REINFORCE"),
    "REINFORCEConfig": ("textgym.agents.reinforce", "REINFORCEConfig"),
    "A2C": ("textgym.agents.a2c", "A2C"),
    "A2CConfig": ("textgym.agents.a2c", "A2CConfig"),
    "NLPO": ("textgym.agents.nlpo", "NLPO"),
    "NLPOConfig": ("textgym.agents.nlpo", "NLPOConfig"),
    "RLOO": ("textgym.agents.rloo", "RLOO"),
    "RLOOConfig": ("textgym.agents.rloo", "RLOOConfig"),
    "GRPO": ("textgym.agents.grpo", "GRPO"),
    "GRPOConfig": ("textgym.agents.grpo", "GRPOConfig"),
    "Logger": ("textgym.agents.logger", "Logger"),
    # comparing algorithms: the harness (``textgym.compare`` / ``textgym.agents.compare.compare``; the name
    # ``textgym.agents.compare`` is the module) and its statistics
    "CompareConfig": ("textgym.agents.compare", "CompareConfig"),
    "ComparisonResult": ("textgym.agents.compare_report", "ComparisonResult"),
    "bootstrap_ci": ("textgym.agents.stats", "bootstrap_ci"),
    "iqm": ("textgym.agents.stats", "iqm"),
    # stable-baselines3 interop: the SB3 policy class and SB3's PPO / A2C behind textgym's interface
    "TextGymLMPolicy": ("textgym.agents.sb3_policy", "TextGymLMPolicy"),
    "SB3PPO": ("textgym.agents.sb3_algos", "SB3PPO"),
    "SB3PPOConfig": ("textgym.agents.sb3_algos", "SB3PPOConfig"),
    "SB3A2C": ("textgym.agents.sb3_algos", "SB3A2C"),
    "SB3A2CConfig": ("textgym.agents.sb3_algos", "SB3A2CConfig"),
    # the `textgym train` pipeline (SFT -> eval -> RL -> eval -> report in a run folder) and evaluation
    "Pipeline": ("textgym.agents.pipeline", "Pipeline"),
    "RunResult": ("textgym.agents.pipeline", "RunResult"),
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

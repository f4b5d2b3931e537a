"""The RL core every algorithm shares: the LM actor-critic policy, batched KV-cache rollouts,
sampling, the on-policy base class and its learn loop, group baselines, update steps,
checkpoints, logging and policy evaluation."""

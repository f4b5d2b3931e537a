"""The RL algorithms, one file each (PPO, A2C, REINFORCE, NLPO, RLOO, GRPO, their variants, stable-baselines3's
PPO / A2C, sb3-contrib's MaskablePPO), and the registry that names them for configs and the CLI."""

"""``OnPolicyAlgorithm``: what every textgym on-policy algorithm shares; subclasses write only ``update``.

Shared: building the policy from a model name, seeding, the rollout collector,
the optimizer, the KL controller, the ``learn`` loop with timing and logging,
``evaluate`` / ``predict`` / ``generate``, and ``save`` / ``load`` that resume
exactly (policy, value head, optimizer, KL controller, every RNG, the env's
data position, counters).  A subclass (PPO, REINFORCE, A2C, NLPO, RLOO, GRPO)
sets ``config_class`` and implements ``update(batch) -> metrics``.

The shared config is :class:`~textgym.agents.common.on_policy_config.OnPolicyConfig`
(hyperparameters + run settings) and the loop :func:`~textgym.agents.common.learn_loop.run_learn_loop`;
both are importable from here too.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from textgym.agents.common import checkpoint, distributed, fsdp
from textgym.agents.common.kl_controllers import make_kl_controller
from textgym.agents.common.learn_loop import LearnLoop, run_learn_loop
from textgym.agents.common.logger import Logger
from textgym.agents.common.micro_batch import resolve_micro_batch_size
from textgym.agents.common.multiturn_rollout import make_collector
from textgym.agents.common.on_policy_config import KLPenaltyConfig, OnPolicyConfig
from textgym.agents.common.policy import ActorCriticPolicy, LMActorCritic
from textgym.agents.common.precision import resolve_precision
from textgym.agents.common.rollout import LogitsProcessor, RolloutBatch, check_env
from textgym.agents.common.sampling import SamplingParams

__all__ = ["OnPolicyConfig", "KLPenaltyConfig", "OnPolicyAlgorithm", "run_learn_loop"]  # the configs and loop: re-exported


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class OnPolicyAlgorithm(LearnLoop, abc.ABC):
    """Base of textgym's on-policy algorithms.

    Args:
        policy: an :class:`ActorCriticPolicy`, or a model name/path for
            :meth:`LMActorCritic.from_pretrained` (with ``config.lora`` / ``config.adapter``).
        env: a :class:`textgym.TextGenVectorEnv` with ``autoreset_mode="Disabled"``.
        config: the algorithm's config (``config_class()`` when ``None``).

    Raises:
        TypeError / ValueError: wrong env (see :func:`textgym.agents.common.rollout.check_env`) or config.
    """

    config_class: type[OnPolicyConfig] = OnPolicyConfig
    #: ``learn`` saves ``run_dir/checkpoint`` every ``config.save_every`` iterations (the Algorithm protocol)
    saves_checkpoints: ClassVar[bool] = True
    #: sequences per unit the update's micro-batches count (online DPO splits pairs: 2), for ``micro_batch_size="auto"``
    micro_batch_unit_rows: ClassVar[int] = 1
    #: per-minibatch stats of the last update (algorithms with minibatch epochs, see ``updates.optimize_epochs``)
    minibatch_log: list[dict[str, float]]
    #: whether ``strategy="fsdp"`` can shard this algorithm's policy (NLPO's masking model copies the LM: no)
    supports_fsdp: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's own ``__init__`` without a docstring gets this one (``help(REINFORCE.__init__)``)."""
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is not None and not init.__doc__:
            init.__doc__ = OnPolicyAlgorithm.__init__.__doc__

    def __init__(self, policy: ActorCriticPolicy | str, env: Any, config: OnPolicyConfig | None = None):
        """Build the algorithm (e.g. ``PPO("tiny-char", env, PPOConfig(learning_rate=1e-3))``).

        Args:
            policy: an :class:`LMActorCritic` (or another :class:`ActorCriticPolicy`), or a model
                name / path (``"tiny-char"``, ``"smollm2-135m-instruct"``, a folder) that
                :meth:`LMActorCritic.from_pretrained` loads, with ``config.lora`` / ``config.adapter``.
            env: a :class:`textgym.TextGenVectorEnv` made with ``autoreset_mode="Disabled"``
                (``gym.make_vec(id, num_envs=N, vectorization_mode="vector_entry_point",
                autoreset_mode="Disabled")``); ``env.num_envs`` episodes per rollout.
            config: an instance of the class's ``config_class`` (``PPOConfig`` for ``PPO``,
                ``GRPOConfig`` for ``GRPO``, ...; ``help(PPOConfig)`` lists every field and its
                default); ``None``: that class's defaults.

        Raises:
            TypeError: a config of another algorithm.
            ValueError: an env the algorithm cannot use (see :func:`textgym.agents.common.rollout.check_env`).
        """
        self.config = config if config is not None else self.config_class()
        if not isinstance(self.config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, "
                            f"got {type(self.config).__name__}")
        cfg = self.config
        self.env = check_env(env)
        self.precision = resolve_precision(cfg.precision)  # bad values fail before any model is loaded
        self.strategy = fsdp.resolve_strategy(cfg.strategy)
        if self.strategy == "fsdp" and (cfg.lora is not None or cfg.adapter is not None):
            raise ValueError("strategy fsdp shards full fine-tuning only; with LoRA (lora / adapter) use strategy ddp")
        if self.strategy == "fsdp" and not self.supports_fsdp:
            raise ValueError(f"{type(self).__name__} does not support strategy fsdp; use strategy ddp")
        distributed.init()  # joins the launcher's process group (torchrun / accelerate launch); no-op in one process
        _seed_everything(cfg.seed)  # the same on every rank: identical initial weights
        if isinstance(policy, (str, os.PathLike)):
            policy = LMActorCritic.from_pretrained(str(policy), lora=cfg.lora, adapter=cfg.adapter,
                                                   action_size=self.env.vocab_size, device=cfg.device, seed=cfg.seed)
        elif cfg.device is not None:
            policy.to(cfg.device)
        self.policy = policy
        if hasattr(policy, "precision"):
            policy.precision = self.precision
        distributed.broadcast_parameters(policy.trainable_parameters())
        if self.strategy == "fsdp":  # several processes: shard the LM and the reference (no-op in one process)
            fsdp.shard_policy(policy)
        self.seed = distributed.rank_seed(cfg.seed)  # this rank's env, sampling and shuffling streams
        if self.seed != cfg.seed:
            _seed_everything(self.seed)
        self.collector = make_collector(policy, self.env, cfg.sampling(), seed=self.seed,
                                        score_batch_size=cfg.score_batch_size, rescore_policy=cfg.rescores_policy(),
                                        logits_processor=self.make_logits_processor(), keep_trunk=True)
        # rows per forward/backward of the update: an integer or None as configured, or chosen for "auto" (logged)
        self.micro_batch_size = resolve_micro_batch_size(cfg, getattr(policy, "lm", None), self.env,
                                                         self.micro_batch_unit_rows)
        self.optimizer = torch.optim.AdamW(policy.trainable_parameters(), lr=cfg.learning_rate, betas=cfg.adam_betas,
                                           eps=cfg.adam_eps, weight_decay=cfg.weight_decay)
        self.kl_ctl = make_kl_controller(getattr(cfg, cfg.kl_field), cfg.target_kl_ref, cfg.kl_horizon)
        if distributed.enabled():  # the controller sees the KL of every rank's episodes
            self.kl_ctl = distributed.GlobalKLController(self.kl_ctl)
        self.update_generator = torch.Generator().manual_seed(self.seed)  # minibatch shuffling
        self.iteration = 0
        self.num_timesteps = 0  # generated tokens (env steps summed over rows)
        self.num_episodes = 0
        self._env_seeded = False
        main = distributed.is_main()  # rank 0 alone writes the run folder and shows the bar
        self.logger = Logger(cfg.run_dir if main else None, tensorboard=cfg.tensorboard,
                             progress=cfg.progress_bar and main, resume=getattr(self, "_resuming", False))
        if cfg.run_dir is not None and main:
            resolved = {**cfg.to_dict(), **self._resolved_settings()}
            (Path(cfg.run_dir) / "config.json").write_text(json.dumps(resolved, indent=2, default=str))

    # ------------------------------------------------------------------ the algorithm's part
    @abc.abstractmethod
    def update(self, batch: RolloutBatch) -> dict[str, Any]:
        """Learn from one batch of finished episodes; return the metrics to log."""

    def make_logits_processor(self) -> LogitsProcessor | None:
        """The :class:`LogitsProcessor` every rollout, evaluation and update applies (``None``: none).

        Called once in ``__init__``, after ``self.policy`` is set and before the
        optimizer is built (NLPO's action mask overrides it).
        """
        return None

    def reset_options(self) -> dict[str, Any] | None:
        """``options`` for the training env's next reset (``None``: its own sample order; GRPO/RLOO groups)."""
        return None

    def extra_state(self) -> dict[str, Any]:
        """Algorithm-specific state to checkpoint (override with :meth:`load_extra_state`)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`extra_state`."""

    # ------------------------------------------------------------------ training loop
    def collect_rollouts(self) -> RolloutBatch:
        """``rollouts_per_iteration`` env batches with the training sampling settings, concatenated."""
        batches, self._conversations = [], []
        for _ in range(self.config.rollouts_per_iteration):
            seed = None if self._env_seeded else self.seed
            with fsdp.gathered(self.policy):  # FSDP: full weights, so ranks may decode different step counts
                batches.append(self.collector.collect(seed=seed, options=self.reset_options()))
            self._conversations += getattr(self.collector, "last_conversations", [])  # a conversation env's
            self._env_seeded = True
        return batches[0] if len(batches) == 1 else RolloutBatch.cat(batches)

    def train_step(self) -> dict[str, Any]:
        """One iteration: rollout, update, bookkeeping; returns the logged metrics."""
        t0 = time.perf_counter()
        comm0 = distributed.communication_seconds()
        batch = self.collect_rollouts()
        t1 = time.perf_counter()
        metrics = self.update(batch)
        t2 = time.perf_counter()
        self.iteration += 1
        counts = distributed.all_sum(torch.tensor([float(batch.mask.sum()), float(batch.mask.shape[0])]))
        self.num_timesteps += int(counts[0])  # global: every rank stops after the same iteration
        self.num_episodes += int(counts[1])
        metrics.update({"time/rollout": t1 - t0, "time/update": t2 - t1,
                        "time/tokens_per_s": float(batch.mask.sum()) / max(t1 - t0, 1e-9),
                        "time/communication": distributed.communication_seconds() - comm0,
                        "stats/logprob_mismatch": self.collector.last_logprob_mismatch})
        metrics = distributed.reduce_metrics(metrics, maxima=("stats/logprob_mismatch", "time/communication"))
        metrics["time/tokens_per_s"] *= distributed.world_size()  # summed over ranks
        metrics.update({"train/timesteps": self.num_timesteps, "train/episodes": self.num_episodes})
        self.logger.log(self.iteration, metrics)
        self._log_samples(batch)
        if self.config.save_every and self.config.run_dir and self.iteration % self.config.save_every == 0:
            self.save(Path(self.config.run_dir) / "checkpoint")
        return metrics

    def _log_samples(self, batch: RolloutBatch) -> None:
        k = self.config.log_samples
        if not k or self.config.run_dir is None or not distributed.is_main():
            return
        from textgym.prompts import decode_completions

        p = batch.prompt_length
        texts = decode_completions(self.env.tokenizer, [a[m] for a, m in zip(batch.actions[:k], batch.mask[:k])])
        prompts = decode_completions(self.env.tokenizer, [i[:p][am[:p].bool()] for i, am in
                                                          zip(batch.input_ids[:k], batch.attention_mask[:k])])
        rows = [{"iteration": self.iteration, "prompt": pr, "completion": c, "score": s}
                for pr, c, s in zip(prompts, texts, batch.scores[:k].tolist())]
        for row, conv in zip(rows, getattr(self, "_conversations", [])):  # a conversation env: its messages
            row.update(messages=conv["messages"], turns=conv["turns"], solved=conv["solved"])
        with open(Path(self.config.run_dir) / "samples.jsonl", "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")

    # ------------------------------------------------------------------ using the policy
    def evaluate(self, env: Any, n_episodes: int = 64, *, greedy: bool = False, temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None) -> dict[str, float]:
        """Run ``n_episodes`` episodes on ``env`` (no learning) and summarise them.

        Sampling defaults to the training settings; its generator is seeded
        with ``seed`` (default ``config.seed + 1``), so training RNGs are not
        touched.  Note that ``env`` is reset: pass a separate env (e.g. the test
        split) to keep the training env's data position.

        Returns:
            :func:`~textgym.agents.common.evaluation.evaluate_episodes`'s summary (``kl_ref``: the
            configured estimator).
        """
        from textgym.agents.common.evaluation import evaluate_episodes

        cfg = self.config
        sp = SamplingParams(temperature or cfg.temperature, cfg.top_k if top_k is None else top_k,
                            cfg.top_p if top_p is None else top_p, greedy)
        with fsdp.gathered(self.policy):  # FSDP: every rank calls evaluate (the weights are gathered once)
            return evaluate_episodes(self.policy, env, sp, n_episodes, seed=cfg.seed + 1 if seed is None else seed,
                                     kl_estimator=cfg.kl_estimator, score_batch_size=cfg.score_batch_size,
                                     rescore_policy=cfg.rescores_policy(),
                                     logits_processor=self.collector.logits_processor)

    @torch.no_grad()
    def predict(self, observation: dict[str, np.ndarray], deterministic: bool = False) -> tuple[np.ndarray, None]:
        """Next token for each row of an env observation (one full forward, no cache), SB3-style.

        Args:
            observation: ``{"input_ids": (N, L), "attention_mask": (N, L)}`` (or one row ``(L,)``).
            deterministic: arg-max instead of sampling (training temperature / top-k / top-p,
                after the logits processor if the algorithm has one, e.g. NLPO's mask).

        Returns:
            ``(actions (N,) int64, None)`` (a scalar array for a single row).
        """
        from textgym.agents.common.sampling import process_logits, sample_tokens

        ids = torch.as_tensor(np.asarray(observation["input_ids"]))
        am = torch.as_tensor(np.asarray(observation["attention_mask"]))
        single = ids.ndim == 1
        if single:
            ids, am = ids[None], am[None]
        ids, am = ids.to(self.policy.device), am.to(self.policy.device)
        with fsdp.gathered(self.policy):  # FSDP: every rank calls predict
            out = self.policy.next_token_logits(ids, am)
        proc = self.collector.logits_processor
        logits = out.logits if proc is None else proc.next_token(out.logits, ids, am)
        if not hasattr(self, "_predict_generator"):  # its own stream: predict never shifts training samples
            self._predict_generator = torch.Generator(device=self.policy.device).manual_seed(self.config.seed + 3)
        tok = sample_tokens(process_logits(logits, self.config.sampling()), self._predict_generator,
                            deterministic).cpu().numpy()
        return (tok[0] if single else tok), None

    def generate(self, prompts: Sequence[str], *, max_new_tokens: int | None = None, greedy: bool = False,
                 seed: int | None = None) -> list[str]:
        """Complete ``prompts`` with the policy (formatted and tokenized as the training env does).

        Uses a private env with a zero reward, so the training env and RNGs are untouched.

        Returns:
            One completion per prompt (stop token removed).
        """
        from textgym.prompts import decode_completions
        from textgym.reward_api import FunctionReward
        from textgym.vector_env import TextGenVectorEnv

        e = self.env
        zero = FunctionReward(lambda prompts, completions, **kw: np.zeros(len(completions), np.float32),
                              batched=True, name="zero")
        tmp = TextGenVectorEnv(e.tokenizer, [{"prompt": p} for p in prompts], zero, num_envs=len(prompts),
                               max_prompt_length=e.max_prompt_length, max_new_tokens=max_new_tokens or e.max_new_tokens,
                               stop_token_ids=e.stop_token_ids.tolist(), prompt_format=e.data.prompt_format,
                               truncation_side=e.data.truncation_side, shuffle=False, vocab_size=e.vocab_size,
                               autoreset_mode="Disabled", info_completions=False)
        sp = dataclasses.replace(self.config.sampling(), greedy=greedy)
        col = make_collector(self.policy, tmp, sp, seed=self.config.seed + 2 if seed is None else seed,
                             logits_processor=self.collector.logits_processor)
        with fsdp.gathered(self.policy):  # FSDP: every rank calls generate
            b = col.collect(options={"sample_indices": list(range(len(prompts)))})
        stop = torch.from_numpy(e.stop_token_ids)
        keep = b.mask & ~torch.isin(b.actions, stop)
        return decode_completions(e.tokenizer, [a[k] for a, k in zip(b.actions, keep)])

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | os.PathLike) -> Path:
        """Write a checkpoint folder atomically (temp folder + rename); see :meth:`load`.

        With several processes every rank calls it (each one's RNG streams, env
        position and prompt order are gathered; with FSDP the full weights and
        optimizer state too), and rank 0 alone writes.
        """
        ranks = distributed.gather_objects(self._rank_state())
        full = fsdp.full_state(self.policy, self.optimizer) if fsdp.is_sharded(self.policy) else None
        if not distributed.is_main():
            return Path(path)
        state = {
            "config": self.config.to_dict(), "algorithm": type(self).__name__,
            "optimizer": self.optimizer.state_dict() if full is None else full["optimizer"],
            "optimizer_format": "ids" if full is None else "names", "kl_ctl": self.kl_ctl.state_dict(),
            "collector": self.collector.state_dict(), "update_generator": self.update_generator.get_state(),
            "counters": {"iteration": self.iteration, "num_timesteps": self.num_timesteps,
                         "num_episodes": self.num_episodes, "env_seeded": self._env_seeded},
            "rng": checkpoint.rng_state(), "env": checkpoint.env_state(self.env), "extra": self.extra_state(),
            "world_size": len(ranks), "rank_states": ranks,
        }
        with checkpoint.atomic_directory(path) as tmp:
            if full is None:
                checkpoint.save_policy(self.policy, tmp)
            else:  # FSDP: rank 0 writes the gathered full weights (a plain Hugging Face folder)
                checkpoint.save_policy(self.policy, tmp, lm_state=full["lm"], reference_state=full["reference"])
            torch.save(state, tmp / "trainer_state.pt")
            resolved = {**self.config.to_dict(), **self._resolved_settings()}
            (tmp / "config.json").write_text(json.dumps(resolved, indent=2, default=str))
        return Path(path)

    def _resolved_settings(self) -> dict[str, Any]:
        """What the run used where the config left it open: process count, precision, strategy, micro-batch."""
        return {"num_processes": distributed.world_size(), "precision": self.precision,
                "strategy": self.strategy if distributed.enabled() else None,
                "micro_batch_size_resolved": self.micro_batch_size}

    def _rank_state(self) -> dict[str, Any]:
        """This rank's own streams: sampling generator, shuffling, RNGs, env position, prompt order."""
        return {"collector": self.collector.state_dict(), "update_generator": self.update_generator.get_state(),
                "env_seeded": self._env_seeded, "rng": checkpoint.rng_state(),
                "env": checkpoint.env_state(self.env), "extra": self.extra_state()}

    def _load_rank_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`_rank_state` (the policy, optimizer, KL controller and counters are shared)."""
        self.collector.load_state_dict(state["collector"])
        self.update_generator.set_state(state["update_generator"])
        self._env_seeded = state["env_seeded"]
        checkpoint.set_env_state(self.env, state["env"])
        self.load_extra_state(state["extra"])
        checkpoint.set_rng_state(state["rng"])

    @classmethod
    def load(cls, path: str | os.PathLike, env: Any, **config_overrides: Any) -> OnPolicyAlgorithm:
        """Resume from :meth:`save`: the next ``learn`` continues exactly as the saved run would have.

        Args:
            path: the checkpoint folder.
            env: an env built like the saved run's (same task, ``num_envs``); its
                RNGs and sample order are restored.
            **config_overrides: config fields to change (e.g. ``run_dir``; ``device="cpu"`` or ``device=None``
                to resume a checkpoint written on a GPU on a machine without one).

        Raises:
            FileNotFoundError: no checkpoint at ``path``.
            ValueError: the checkpoint is of another algorithm or env size.
        """
        path = Path(path)
        if not (path / "trainer_state.pt").is_file():
            raise FileNotFoundError(f"no checkpoint at {path} (trainer_state.pt missing)")
        # our own file: contains NumPy / Python RNG states, which weights_only loading rejects.
        # map_location="cpu": a checkpoint written on a GPU holds CUDA optimizer tensors; the optimizer's
        # load_state_dict moves them to the parameters' device, so the file loads on a CPU-only machine too.
        state = torch.load(path / "trainer_state.pt", weights_only=False, map_location="cpu")
        if state["algorithm"] != cls.__name__:
            raise ValueError(f"{path} holds a {state['algorithm']} checkpoint, not {cls.__name__}")
        cfg_dict = dict(state["config"])
        cfg_dict["adam_betas"] = tuple(cfg_dict["adam_betas"])
        cfg_dict.update(config_overrides)
        policy = checkpoint.load_policy(path, device=cfg_dict.get("device"))
        algo = cls.__new__(cls)
        algo._resuming = True
        cls.__init__(algo, policy, env, cls.config_class(**cfg_dict))
        if state.get("optimizer_format", "ids") == "names":  # written by an FSDP run (parameter names)
            fsdp.load_optimizer_state(algo.policy, algo.optimizer, state["optimizer"])
        else:
            algo.optimizer.load_state_dict(state["optimizer"])
        algo.kl_ctl.load_state_dict(state["kl_ctl"])
        c = state["counters"]
        algo.iteration, algo.num_timesteps, algo.num_episodes = c["iteration"], c["num_timesteps"], c["num_episodes"]
        # each rank continues its own streams; a rank the saved run did not have starts fresh ones
        # derived from (seed, rank, iteration), so it does not replay rank 0's first samples
        ranks = state.get("rank_states") or [{"collector": state["collector"], "update_generator":
                                              state["update_generator"], "env_seeded": c["env_seeded"],
                                              "rng": state["rng"], "env": state["env"], "extra": state["extra"]}]
        r = distributed.rank()
        if r < len(ranks):
            algo._load_rank_state(ranks[r])
        else:
            algo._reseed(distributed.rank_seed(algo.config.seed + 7919 * algo.iteration, r))
        return algo

    def _reseed(self, seed: int) -> None:
        """Fresh streams from ``seed`` (a rank that joins a resumed run); the env is reseeded at the next rollout."""
        self.seed = seed
        _seed_everything(seed)
        self.collector.generator.manual_seed(seed)
        self.update_generator.manual_seed(seed)
        self._env_seeded = False

    def close(self) -> None:
        """Close the logger (TensorBoard files)."""
        self.logger.close()

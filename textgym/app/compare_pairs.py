"""Offline preference optimization (DPO, IPO) as a cell of ``textgym compare``.

An RL cell generates its training data; a ``dpo`` / ``ipo`` cell trains
:class:`textgym.agents.trainers.preference.PreferenceTrainer` on fixed
``(prompt, chosen, rejected)`` pairs, from the same starting model, and is
evaluated by the same protocol (same eval env, ``eval_seed``, episodes and
sampling settings, at token 0 and at each point of the same grid).

Pairs (the comparison's ``pairs`` setting, built once and shared by every seed):

* ``{dataset: hh-rlhf-harmless, split: train, max_rows: N}`` (or ``path:`` a JSONL
  file, ``feedback:`` a human-feedback project): the data's own pairs;
* ``{from_task: true, split: train, max_rows: N}``: pairs built from the task's data:
  sample ``i``'s prompt with its own reference continuation and the reference of
  sample ``i + 1``, ordered by the training env's reward (the higher scored is
  *chosen*; tied pairs are dropped).

Every completion is cut to ``max_new_tokens - 1`` tokens of the policy's tokenizer
(the trainer appends EOS), so a pair's completions are no longer than what the RL
cells generate.

**Budget** (the equivalence): a pair cell's ``tokens`` are the completion tokens
(chosen + rejected, EOS included) of the pairs it has taken optimizer steps on,
counting repeats over epochs: it trains until they reach ``budget``.  Online DPO
with ``group_size=2`` generates exactly the two completions of each of its pairs,
so at equal ``tokens`` both have seen (about) the same number of pairs;
``points.csv`` also records ``pairs`` (pairs seen).  Wall time counts the optimizer
steps, not the evaluations.

Evaluation uses an on-policy algorithm object around the trained model
(:class:`PolicyOnly`: the ``LMActorCritic`` of the starting model, its frozen copy as
the reference), so ``score_mean``, ``kl_ref`` and the other columns mean what they
mean for the RL cells.  A pair cell is not checkpointed: an unfinished one
restarts on ``--resume`` (finished ones are kept).
"""

from __future__ import annotations

import time
from typing import Any

from textgym.agents.common.base import OnPolicyAlgorithm
from textgym.agents.common.on_policy_config import KLPenaltyConfig
from textgym.agents.trainers.preference import PreferenceTrainer

__all__ = ["PAIR_ALGORITHMS", "PAIR_KEYS", "PolicyOnly", "check_pairs", "build_pairs", "run_pair_cell"]

#: compare algorithm names trained on fixed pairs (the name is the ``loss_type``)
PAIR_ALGORITHMS = ("dpo", "ipo")
#: keys of the ``pairs`` setting
PAIR_KEYS = ("dataset", "path", "feedback", "from_task", "split", "max_rows")
#: ``algo_overrides['*']`` keys that also set the evaluation sampling of a pair cell
EVAL_FIELDS = ("temperature", "top_k", "top_p", "kl_estimator", "score_batch_size", "device")


class PolicyOnly(OnPolicyAlgorithm):
    """The policy, collector and ``evaluate`` of an on-policy algorithm, without an update: a pair cell
    evaluates through it so its scores are measured as the RL cells' are."""

    config_class = KLPenaltyConfig

    def update(self, batch: Any) -> dict[str, Any]:
        raise RuntimeError("PolicyOnly only evaluates; the preference trainer updates its model")


def check_pairs(pairs: dict[str, Any], labels_needing: list[str]) -> None:
    """Raise ``ValueError`` for a ``pairs`` setting no pair cell can use (or pair cells without one)."""
    if labels_needing and not pairs:
        raise ValueError(f"{', '.join(labels_needing)} train(s) on preference pairs: set `pairs`, e.g. "
                         "pairs: {dataset: hh-rlhf-harmless, split: train} or pairs: {from_task: true}")
    unknown = sorted(set(pairs) - set(PAIR_KEYS))
    if unknown:
        raise ValueError(f"pairs has unknown key(s) {unknown}; known: {', '.join(PAIR_KEYS)}")
    if pairs and sum(bool(pairs.get(k)) for k in ("dataset", "path", "feedback", "from_task")) != 1:
        raise ValueError("pairs needs exactly one source: dataset, path, feedback or from_task: true")
    rows = pairs.get("max_rows")
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int) or rows < 1):
        raise ValueError(f"pairs.max_rows must be an integer >= 1 or null, got {rows!r}")


def _cut(tokenizer: Any, text: str, n: int) -> str:
    """``text`` cut to its first ``n`` tokens (no special tokens)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= n else tokenizer.decode(ids[:n])


def build_pairs(cfg: Any, tokenizer: Any, max_new_tokens: int, reward_env: Any = None) -> tuple[list[dict], dict]:
    """The comparison's pairs (see the module docstring) and a summary ``{source, rows, dropped_ties}``.

    Args:
        cfg: the :class:`textgym.app.compare_config.CompareConfig`.
        tokenizer: the policy's tokenizer.
        max_new_tokens: the env's completion length (completions are cut to one token less).
        reward_env: an env whose ``reward_fn`` orders ``from_task`` pairs.
    """
    p = dict(cfg.pairs)
    split, limit = p.get("split", "train"), p.get("max_rows")
    n = max(1, max_new_tokens - 1)
    ties = 0
    if p.get("from_task"):
        from textgym.agents.trainers.sft_data import task_rows
        from textgym.reward_api import call_reward

        data = reward_env.data  # the training split's samples, as the env holds them
        index = [i for i in range(len(data)) if data.references(i)]  # the samples task_rows keeps, in its order
        rows = task_rows(reward_env, tokenizer)
        m = min(len(rows), limit + 1) if limit is not None else len(rows)
        if m < 2:
            raise ValueError(f"pairs.from_task: {cfg.env_id} split {split!r} has {len(rows)} sample(s) with a "
                             "reference; at least 2 are needed")
        own = [_cut(tokenizer, r["completion"], n) for r in rows[: m - 1]]
        other = [_cut(tokenizer, r["completion"], n) for r in rows[1:m]]
        cols = [data.columns(i) for i in index[: m - 1]]
        scored = {"prompts": [data.prompt(i) for i in index[: m - 1]],
                  "references": [data.references(i) for i in index[: m - 1]],
                  "columns": {k: [c.get(k) for c in cols] for k in set().union(*cols)}}
        s_own, _ = call_reward(reward_env.reward_fn, completions=own, **scored)
        s_other, _ = call_reward(reward_env.reward_fn, completions=other, **scored)
        out = []
        for r, a, b, sa, sb in zip(rows, own, other, s_own, s_other):
            if sa == sb:
                ties += 1
                continue
            out.append({"prompt": r["prompt"], "chosen": a if sa > sb else b, "rejected": b if sa > sb else a,
                        **({"prompt_is_formatted": True} if r.get("prompt_is_formatted") else {})})
        source = f"{cfg.env_id} ({split}), ordered by the env's reward"
    else:
        from textgym.app.config import RewardModelDataConfig
        from textgym.app.pipeline_supervised import preference_rows

        data = RewardModelDataConfig(**{k: p[k] for k in ("dataset", "path", "feedback") if k in p})
        out = [{"prompt": r["prompt"], "chosen": _cut(tokenizer, r["chosen"], n),
                "rejected": _cut(tokenizer, r["rejected"], n)} for r in preference_rows(data, split, limit)]
        source = f"{p.get('dataset') or p.get('path') or p.get('feedback')} ({split})"
    if not out:
        raise ValueError(f"pairs: no usable pair in {source}")
    return out, {"source": source, "rows": len(out), "dropped_ties": ties}


class _CellTrainer(PreferenceTrainer):
    """The preference trainer whose per-step evaluation hook records the cell's points (``on_step(step)``)."""

    on_step: Any = None

    def evaluate(self) -> dict[str, float]:  # called by the loop after every step (eval_every=1) and at the end
        if self.on_step is not None:
            self.on_step(self.global_step)
        return {}


def _plan(trainer: _CellTrainer, budget: int, targets: list[int]) -> tuple[list[int], dict[int, tuple[int, int, int]]]:
    """Cumulative completion tokens per optimizer step until ``budget`` and the evaluation steps:
    ``{step: (grid target, tokens, pairs)}`` at the first step reaching each target (several: the largest)."""
    tokens, pairs, cum, evals = 0, 0, [], {}
    groups = trainer._groups()  # the loop's own deterministic order (seeded by config.seed and epoch)
    while tokens < budget:
        items = [it for mb in next(groups) for it in mb]
        tokens += sum(it["chosen"].num_targets + it["rejected"].num_targets for it in items)
        pairs += len(items)
        cum.append(tokens)
        reached = max(t for t in targets if t <= tokens)
        if reached > 0 and all(v[0] < reached for v in evals.values()):
            evals[len(cum)] = (reached, tokens, pairs)
    return cum, evals


def run_pair_cell(pipe: Any, rows: list[dict[str, Any]]) -> None:
    """The ``rl`` stage of a pair cell (``pipe``: its :class:`textgym.app.compare_cell.CellPipeline`)."""
    cfg, c = pipe.cfg, pipe.compare_cfg
    where = f"{pipe.label} seed {pipe.seed}"
    env = pipe._train_env = pipe.make_env(cfg.env.id, cfg.env.num_envs, cfg.env.kwargs, pipe.tokenizer,
                                          pipe.env_reward)
    pipe._mark("rl", "running")
    pipe.record["points"] = []  # not checkpointed: an unfinished cell starts over
    star = c.algo_overrides.get("*", {})
    shell_cfg = KLPenaltyConfig(seed=pipe.seed, progress_bar=False, tensorboard=False,
                               **{k: v for k, v in star.items() if k in EVAL_FIELDS})
    pipe.algo = shell = PolicyOnly(pipe.rl_start_model, env, shell_cfg)
    trainer = _CellTrainer(shell.policy.lm, pipe.tokenizer, train_data=rows, config=cfg.algo)
    cum, evals = _plan(trainer, c.budget, c.targets())
    trainer.config.max_steps, trainer.config.eval_every = len(cum), 1
    clock = {"eval": 0.0}

    def point(target: int, tokens: int, pairs: int, wall: float) -> None:
        shell.num_timesteps, shell.iteration = tokens, trainer.global_step
        t0 = time.perf_counter()
        metrics = pipe._evaluate(shell, f"{where} at {tokens} tokens")
        clock["eval"] += time.perf_counter() - t0
        pipe.points.append({"algo": pipe.label, "algorithm": cfg.algorithm, "seed": pipe.seed,
                            "target_tokens": target, "tokens": tokens, "wall_time_s": wall, **metrics,
                            "pairs": pairs})
        pipe.state["rl"].update(iteration=trainer.global_step, num_timesteps=tokens)
        pipe._save_state()
        pipe.on_point(pipe.points)
        pipe.progress.at(tokens)

    point(0, 0, 0, 0.0)
    clock["eval"] = 0.0  # the training clock starts now: the evaluation at 0 tokens is not inside it
    start = time.perf_counter()

    def on_step(step: int) -> None:
        if step in evals:
            target, tokens, pairs = evals[step]
            point(target, tokens, pairs, time.perf_counter() - start - clock["eval"])

    trainer.on_step = on_step
    trainer.train()
    wall = time.perf_counter() - start - clock["eval"]
    if not pipe.points or pipe.points[-1]["tokens"] < c.budget:
        raise RuntimeError(f"{where}: the preference trainer stopped before the budget ({cum[-1]} tokens planned)")
    pipe.state["rl"].update(done_target=list(pipe._rl_target()), time_s=wall, pairs=pipe.points[-1]["pairs"])
    pipe._mark("rl")

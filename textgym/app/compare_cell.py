"""One cell of a comparison (label x algorithm x seed) as a pipeline run in ``<out>/<label>/seed<s>/``.

A cell is a :class:`textgym.app.pipeline.Pipeline` run whose config (:func:`cell_config`) has
only the RL stage: no SFT, no reward model, no separate before/after evaluation.  It gets
the pipeline's run folder (``config.yaml``, ``run_state.json``), lock
(:class:`textgym.app.run_lock.RunLock`), env builder (:func:`textgym.app.run_envs.make_vec_env`),
checkpoint recovery (``MANIFEST.json``) and resume.  :class:`CellPipeline` replaces the RL stage
by the comparison's protocol (:mod:`textgym.app.compare`): train in chunks to the next point of
the token grid, evaluate with ``algo.evaluate`` on the shared eval env reset with ``eval_seed``,
record the point in ``run_state.json`` (key ``"compare"``: ``spec``, ``points``, ``done``), then
checkpoint.  Its ``eval_after`` stage is the last point; its report is the comparison's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textgym.app.compare_config import NOT_PROTOCOL, CompareConfig, algorithm_config, jsonable
from textgym.app.config import EnvConfig, EvalEnvConfig, EvalSettings, RunConfig, TrainSettings, build_reward
from textgym.app.pipeline import Pipeline
from textgym.app.run_folder import checkpoint_counters, has_checkpoint, recover_checkpoint, truncate_run_logs, write_atomic
from textgym.app.run_state import RunFolderError, RunResult

__all__ = ["SharedEnvs", "CellPipeline", "cell_config", "run_spec", "check_spec", "read_cell", "Progress"]


class SharedEnvs:
    """What every cell shares: the tokenizer, the built rewards and the eval env (built by ``make_vec_env``)."""

    def __init__(self, cfg: CompareConfig):
        from textgym.app.prepare import prepare_rewards
        from textgym.app.run_envs import make_vec_env

        kwargs = dict(cfg.env_kwargs)
        tokenizer = kwargs.pop("tokenizer", None)
        if tokenizer is None:
            from textgym.models import load_tokenizer

            tokenizer = load_tokenizer(cfg.model)
        ev = {**kwargs, **cfg.eval_env_kwargs}
        self.tokenizer, eval_tokenizer = tokenizer, ev.pop("tokenizer", tokenizer)
        for spec in (kwargs, ev):  # e.g. trains the sentiment classifier once
            prepare_rewards(cfg.env_id, spec.get("reward"))
        self.train_reward = build_reward(kwargs["reward"]) if "reward" in kwargs else None
        eval_reward = build_reward(ev["reward"]) if "reward" in ev else None
        if ev.get("split", "train") == kwargs.get("split", "train"):
            warnings.warn(f"the eval env uses the training split ({ev.get('split', 'train')!r}); "
                          "set eval_env_kwargs={'split': 'test'} (or another held-out split)", stacklevel=3)
        self.eval_env = make_vec_env(cfg.env_id, min(cfg.num_envs, cfg.eval_episodes), ev, eval_tokenizer,
                                     eval_reward)
        self.pairs: list[dict[str, Any]] | None = None  # dpo / ipo cells' pairs, built once (compare_pairs)
        from textgym.app.compare_pairs import PAIR_ALGORITHMS, build_pairs

        if any(name in PAIR_ALGORITHMS for _, name in cfg.runs()):
            # the training env's settings (its max_new_tokens, reward); from_task: the samples of the pairs' split
            split = {"split": cfg.pairs["split"]} if cfg.pairs.get("from_task") and cfg.pairs.get("split") else {}
            reward_env = make_vec_env(cfg.env_id, 1, {**kwargs, **split}, tokenizer, self.train_reward)
            try:
                self.pairs, self.pairs_summary = build_pairs(cfg, tokenizer, int(reward_env.max_new_tokens), reward_env)
            finally:
                reward_env.close()

    def close(self) -> None:
        self.eval_env.close()


def cell_config(cfg: CompareConfig, label: str, algorithm: str, seed: int, run_dir: Path) -> RunConfig:
    """The pipeline config of cell ``(label, seed)``: the RL stage only, for ``budget`` tokens, no tracker or plot.

    The cell's evaluations follow the comparison's protocol (``eval_episodes``, ``eval_seed``,
    ``eval_kwargs``: :func:`run_spec`); ``eval`` here records the seed and skips the pipeline's own.
    """
    kwargs = {k: v for k, v in cfg.env_kwargs.items() if k != "tokenizer"}
    eval_kwargs = {k: v for k, v in cfg.eval_env_kwargs.items() if k != "tokenizer"}
    return RunConfig(name=f"seed{seed}", seed=seed, model=cfg.model,
                     env=EnvConfig(cfg.env_id, cfg.num_envs, kwargs),
                     eval_env=EvalEnvConfig(cfg.env_id, min(cfg.num_envs, cfg.eval_episodes), eval_kwargs),
                     algorithm=algorithm, algo=algorithm_config(cfg, label, algorithm, seed, run_dir),
                     train=TrainSettings(total_timesteps=cfg.budget, save_every=None),
                     eval=EvalSettings(n_episodes=max(2, cfg.eval_episodes), every=None, before=False, num_samples=0,
                                       seed=cfg.eval_seed),
                     plots=False, report_to=[])


def run_spec(cfg: CompareConfig, label: str, algorithm: str, seed: int, algo_cfg: Any) -> dict[str, Any]:
    """What must not change between a cell and its resume."""
    conf = {k: v for k, v in dataclasses.asdict(algo_cfg).items() if k not in NOT_PROTOCOL}
    from textgym.app.compare_pairs import PAIR_ALGORITHMS

    pairs = {"pairs": cfg.pairs} if algorithm in PAIR_ALGORITHMS else {}
    return jsonable({**pairs, "label": label, "algorithm": algorithm, "seed": seed, "model": cfg.model, "env_id": cfg.env_id,
                     "env_kwargs": cfg.env_kwargs, "eval_env_kwargs": cfg.eval_env_kwargs,
                     "eval_kwargs": cfg.eval_kwargs, "num_envs": cfg.num_envs, "budget": cfg.budget,
                     "eval_every": cfg.interval(), "eval_episodes": cfg.eval_episodes, "eval_seed": cfg.eval_seed,
                     "algo_config": conf})


def check_spec(old: dict[str, Any], new: dict[str, Any], run_dir: Path) -> None:
    """Raise ``ValueError`` naming the settings that differ between a cell's folder and this comparison."""
    if old != new:
        keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if "algo_config" in keys:
            a, b = old.get("algo_config", {}), new.get("algo_config", {})
            keys += [f"algo_config.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        raise ValueError(f"{run_dir} was run with other settings ({', '.join(keys)} differ); resume with the "
                         "same settings, use another out_dir, or delete that run folder to redo it")


def read_cell(run_dir: Path) -> dict[str, Any] | None:
    """The ``"compare"`` record of a cell's ``run_state.json`` (``spec``, ``points``, ``done``), or ``None``."""
    path = run_dir / "run_state.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text()).get("compare")


class Progress:
    """The tqdm bar over all cells' tokens; each cell contributes at most ``budget``."""

    def __init__(self, total: int, enabled: bool):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, unit="tok", disable=not enabled, dynamic_ncols=True)
        self.shown = 0
        self.budget = 0

    def start(self, label: str, seed: int, budget: int) -> None:
        self.bar.set_description(f"{label} seed {seed}")
        self.shown, self.budget = 0, budget

    def at(self, tokens: int) -> None:
        new = min(int(tokens), self.budget)
        self.bar.update(new - self.shown)
        self.shown = new

    def __call__(self, algo: Any, metrics: dict[str, Any]) -> None:  # learn(callback=...)
        self.at(algo.num_timesteps)

    def close(self) -> None:
        self.bar.close()


class CellPipeline(Pipeline):
    """The pipeline run of one cell (see the module docstring).

    Args:
        cfg: the comparison's settings.
        label, algorithm, seed: the cell.
        out: the comparison's folder (the cell's is ``out/label/seed<seed>``).
        shared: the tokenizer, rewards and eval env of every cell.
        progress: the comparison's bar.
        on_point: called with the cell's points after each is recorded (rewrites ``points.csv``).
        save: ``save(algo, path)`` writes the checkpoint (:func:`textgym.app.compare._save_checkpoint`).
        resume: continue the cell's ``run_state.json``.
    """

    def __init__(self, cfg: CompareConfig, label: str, algorithm: str, seed: int, out: Path, shared: SharedEnvs,
                 progress: Progress, on_point: Callable[[list[dict[str, Any]]], None], save: Callable[[Any, Path], None],
                 resume: bool = False):
        run_dir = Path(out) / label / f"seed{seed}"
        super().__init__(cell_config(cfg, label, algorithm, seed, run_dir), run_dir, resume=resume)
        self.compare_cfg, self.label, self.seed = cfg, label, seed
        self.progress, self.on_point, self.save = progress, on_point, save
        self._tokenizer, self._eval_env, self._env_reward = shared.tokenizer, shared.eval_env, shared.train_reward
        self._pairs = shared.pairs
        self._train_env: Any = None
        spec = run_spec(cfg, label, algorithm, seed, self.cfg.algo)
        self.record = self.state.setdefault("compare", {"spec": spec, "points": [], "done": False})

    @property
    def points(self) -> list[dict[str, Any]]:
        return self.record["points"]

    def resume_hint(self) -> str:
        return f"textgym compare --resume --out {self.run_dir.parent.parent} (with the same settings)"

    def _write_config(self) -> None:  # env kwargs may hold objects (a reward instance): written as <module.Class>
        import yaml

        from textgym.app.config import config_to_dict

        write_atomic(self.run_dir / "config.yaml", yaml.safe_dump(jsonable(config_to_dict(self.cfg)), sort_keys=False))

    def _close(self) -> None:
        super()._close()
        if self._train_env is not None:
            self._train_env.close()

    # ------------------------------------------------------------------ the protocol
    def _evaluate(self, algo: Any, where: str) -> dict[str, float]:
        """One evaluation by the protocol: eval env reset with ``eval_seed``, then ``algo.evaluate``.

        Raises:
            KeyError: the algorithm's ``evaluate`` returned no ``score_mean``.
            FloatingPointError: a non-finite metric (the policy diverged).
        """
        c = self.compare_cfg
        self.eval_env.reset(seed=c.eval_seed)
        t0 = time.perf_counter()
        metrics = algo.evaluate(self.eval_env, c.eval_episodes, seed=c.eval_seed, **c.eval_kwargs)
        out = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if "score_mean" not in out:
            raise KeyError(f"{where}: {type(algo).__name__}.evaluate returned no 'score_mean' (got {sorted(metrics)})")
        bad = sorted(k for k, v in out.items() if not math.isfinite(v))
        if bad:
            raise FloatingPointError(f"{where}: the evaluation gave non-finite {bad}; the policy diverged (lower the "
                                     "learning rate, e.g. --set algo.<label>.learning_rate=...)")
        out["eval_time_s"] = time.perf_counter() - t0
        return out

    def _add_point(self, algo: Any, target: int, wall: float, where: str) -> None:
        """Evaluate, record the point in ``run_state.json``, tell the comparison, then checkpoint."""
        self.points.append({"algo": self.label, "algorithm": self.cfg.algorithm, "seed": self.seed,
                            "target_tokens": target, "tokens": algo.num_timesteps, "wall_time_s": wall,
                            **self._evaluate(algo, where)})
        self.state["rl"].update(iteration=algo.iteration, num_timesteps=algo.num_timesteps)
        self._save_state()
        self.on_point(self.points)
        self.save(algo, self.run_dir / "checkpoint")
        self.state["rl"]["checkpoint_iteration"] = algo.iteration

    def _resumed_algo(self, cls: Any, env: Any) -> Any:
        """The algorithm from ``checkpoint/`` with the points it covers kept, or ``None`` to start over."""
        ckpt = self.run_dir / "checkpoint"
        from textgym.agents.common.checkpoint import CheckpointError

        try:
            recover_checkpoint(ckpt)
        except CheckpointError as exc:
            raise RunFolderError(str(exc)) from None
        if not self.points or not has_checkpoint(ckpt):
            return None
        logs = getattr(self.cfg.algo, "run_dir", None)
        if logs:  # before the algorithm reopens them: drop what it logged past the checkpoint, as train does
            truncate_run_logs(Path(logs), int(checkpoint_counters(ckpt)["iteration"]))
        names = {f.name for f in dataclasses.fields(type(self.cfg.algo))}
        algo = cls.load(ckpt, env, **{k: getattr(self.cfg.algo, k) for k in NOT_PROTOCOL if k in names})
        self.record["points"] = [p for p in self.points if p["tokens"] <= algo.num_timesteps]
        if not self.points or self.points[-1]["tokens"] != algo.num_timesteps:
            warnings.warn(f"{self.run_dir}: run_state.json has no evaluation at the checkpoint's "
                          f"{algo.num_timesteps} tokens; restarting this run", stacklevel=2)
            algo.close()
            return None
        return algo

    def stage_rl(self) -> None:
        """Train and evaluate to the budget by the comparison's protocol, checkpointing after each evaluation."""
        from textgym.app.compare_pairs import PAIR_ALGORITHMS, run_pair_cell

        if self.cfg.algorithm in PAIR_ALGORITHMS:
            run_pair_cell(self, self._pairs)
            return
        from textgym.agents.algorithms.registry import get_algorithm

        cfg, c = self.cfg, self.compare_cfg
        cls, targets, where = get_algorithm(cfg.algorithm), c.targets(), f"{self.label} seed {self.seed}"
        env = self._train_env = self.make_env(cfg.env.id, cfg.env.num_envs, cfg.env.kwargs, self.tokenizer,
                                              self.env_reward)
        self._mark("rl", "running")
        # 1. resume from the checkpoint, keeping the points it covers
        self.algo = algo = self._resumed_algo(cls, env)
        # 2. or start fresh: evaluate the untrained policy (token 0) and checkpoint it
        if algo is None:
            shutil.rmtree(self.run_dir / "checkpoint", ignore_errors=True)
            self.record["points"] = []
            self.algo = algo = cls(self.rl_start_model, env, cfg.algo)
            self._add_point(algo, 0, 0.0, where)
        self.progress.at(algo.num_timesteps)
        wall = self.points[-1]["wall_time_s"]
        # 3. train chunk by chunk to the next grid target; evaluate; save the point, then the checkpoint
        while algo.num_timesteps < c.budget:
            target = next(t for t in targets if t > algo.num_timesteps)
            before, t0 = algo.num_timesteps, time.perf_counter()
            algo.learn(total_timesteps=target - algo.num_timesteps, callback=self.progress)
            wall += time.perf_counter() - t0
            if algo.num_timesteps <= before:
                raise RuntimeError(f"{where}: learn(total_timesteps={target - before}) generated no tokens")
            reached = max(t for t in targets if t <= algo.num_timesteps)
            self._add_point(algo, reached, wall, f"{where} at {algo.num_timesteps} tokens")
        self.state["rl"].update(done_target=list(self._rl_target()), time_s=wall)
        self._mark("rl")

    def stage_eval_after(self) -> None:
        """The last point is the evaluation after training."""
        self.state["results"]["after"] = {k: v for k, v in self.points[-1].items() if isinstance(v, float)}
        self._mark("eval_after")

    def stage_report(self) -> RunResult:
        """The comparison writes the report; the cell is marked finished."""
        self.record["done"] = True
        self._mark("report")
        rl = self.state["rl"]
        return RunResult(self.run_dir, dict(self.state["results"]), int(rl.get("iteration", 0)),
                         int(rl.get("num_timesteps", 0)))

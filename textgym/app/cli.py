"""The ``textgym`` command line.

Commands:

* ``textgym list [envs|rewards|algorithms]`` - what is registered.
* ``textgym train CONFIG.yaml [--set key=value ...] [--name NAME] [--runs-dir DIR]`` - run the
  pipeline a YAML config describes (SFT warm start, evaluation, RL, evaluation, report) in
  ``<runs-dir>/<name>/``; ``textgym train --resume runs/<name>`` continues an interrupted run.
* ``textgym eval RUN_DIR_OR_MODEL [--env ID] [--episodes N] [--split test] [--set ...]`` -
  score, KL, diversity (and perplexity) of a trained run or a model on held-out prompts;
  with ``--bias [--bias-out DIR]`` the social-bias probes instead (CrowS-Pairs, BOLD).
* ``textgym compare ...`` / ``textgym bench ...`` - the comparison harness and the benchmarks
  (their own arguments; ``textgym compare --help``).
* ``textgym rollout --env ID --model NAME [--episodes N]`` - let a model generate on real prompts
  by stepping the env token by token, printing prompt, completion and reward for each episode.

Heavy modules (torch, transformers) are imported inside the commands, so
``textgym --help`` and ``textgym list`` start fast.  Config mistakes exit
with status 2 and a one-paragraph message naming the key (no traceback);
an interrupted ``train`` exits with 130 and can be resumed; a ``train`` whose ``feedback`` stage waits
for people's judgments prints how to collect them and exits with 75 (resume it once they are in).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from textgym.app.output import HelpFormatter, add_output_flags, apply_output_flags

__all__ = ["main", "build_parser", "rollout_episode"]

#: Every --help shows the defaults.
_FMT = HelpFormatter

#: Exit status of a bad config / bad arguments, and of an interrupted run (128 + SIGINT).
EXIT_CONFIG, EXIT_INTERRUPTED = 2, 130


def rollout_episode(model: Any, env: Any, *, seed: int | None = None, temperature: float = 1.0, top_k: int = 0) -> dict[str, Any]:
    """Run one episode of ``env`` with ``model`` choosing each action.

    Each step feeds the observation (``input_ids``/``attention_mask``, ``(1, P+T)``)
    to the model with position ids ``cumsum(mask) - 1`` and samples the next
    token from the logits at the last real position (greedy if ``temperature == 0``).
    The whole context is recomputed each step (no KV cache): this is the plain
    Gymnasium loop, meant for demos and checks, not for training throughput.

    Returns:
        dict with ``prompt``, ``completion``, ``reward`` (episode return),
        ``terminated``, ``truncated`` and ``tokens`` (number of steps); for a
        conversation env (:class:`textgym.MultiTurnEnv`) also ``messages`` and
        ``turns``, and ``completion`` is the conversation after the prompt on one line.
    """
    import numpy as np
    import torch

    obs, info = env.reset(seed=seed)
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    vocab = env.action_space.n
    total, steps = 0.0, 0
    while True:
        ids = torch.as_tensor(obs["input_ids"])[None]
        mask = torch.as_tensor(obs["attention_mask"])[None]
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[0]
        last = int(np.flatnonzero(obs["attention_mask"])[-1])
        scores = logits[last, :vocab].float()
        if temperature <= 0:
            action = int(scores.argmax())
        else:
            scores = scores / temperature
            if top_k > 0:
                kth = torch.topk(scores, top_k).values[-1]
                scores = scores.masked_fill(scores < kth, float("-inf"))
            action = int(torch.multinomial(torch.softmax(scores, -1), 1, generator=gen))
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        steps += 1
        if terminated or truncated:
            out = {"prompt": info["prompt"], "reward": total, "terminated": terminated, "truncated": truncated,
                   "tokens": steps}
            if "messages" in info:  # a conversation env: the turns after the prompt as the completion
                from textgym.agents.common.evaluation import conversation_text

                out.update(completion=conversation_text(info["messages"]), messages=info["messages"],
                           turns=info["turn"])
            else:
                out["completion"] = info["completion"]
            return out


def _cmd_list(args: argparse.Namespace) -> int:
    import textgym
    from textgym.agents.algorithms.registry import list_algorithms

    what = args.what
    if what in ("all", "envs"):
        print("Environments (gym.make(id, **overrides)):")
        for spec in textgym.list_envs(details=True):
            print(f"  {spec.id}\n      task: {spec.task}\n      data: {spec.data}\n"
                  f"      reward: {spec.reward}; license: {spec.license}")
            if spec.defaults:
                print("      defaults: " + ", ".join(f"{k}={v!r}" for k, v in spec.defaults.items()))
    if what in ("all", "rewards"):
        print("\nRewards (textgym.rewards.make(name) or reward=name):" if what == "all" else "Rewards:")
        print("  " + ", ".join(textgym.rewards.list()))
    if what in ("all", "algorithms"):
        print("\nAlgorithms (algorithm: NAME in a train config):" if what == "all" else "Algorithms:")
        print("  " + ", ".join(list_algorithms()))
    return 0


def _fail(message: str, code: int = EXIT_CONFIG) -> int:
    print(f"textgym: {message}", file=sys.stderr)
    return code


def _cmd_train(args: argparse.Namespace) -> int:
    from textgym.app.config import ConfigError

    if args.resume and args.config:
        return _fail("give a CONFIG.yaml or --resume RUN_DIR, not both")
    if not args.resume and not args.config and not args.set:
        return _fail("textgym train needs a CONFIG.yaml (or --resume RUN_DIR); see examples/configs/")
    if args.nproc is not None and args.nproc < 1:
        return _fail(f"--nproc must be an integer >= 1 (processes), got {args.nproc}")
    from textgym.app.config import load_config
    from textgym.app.pipeline import RunFolderError, resume, train
    from textgym.app.pipeline_feedback import EXIT_WAITING, WaitingForFeedback
    from textgym.app.run_lock import RunLockError
    from textgym.reward_api import RewardError

    if args.nproc is not None and args.nproc > 1:
        return _launch(args)

    try:
        if args.resume:
            if args.name or args.runs_dir:
                return _fail("--name and --runs-dir do not apply to --resume (the run folder is given)")
            resume(args.resume, args.set)
        else:
            cfg = load_config(args.config, args.set, name=args.name)
            train(cfg, args.runs_dir or "runs", overwrite=args.overwrite)
    except (ConfigError, RunFolderError, RunLockError) as exc:
        return _fail(str(exc))
    except RewardError as exc:  # a reward that fails only on some completions, after the pre-flight check
        return _fail(f"{' '.join(str(exc).split())} (the run folder is kept: fix the reward, then resume it)", 1)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except WaitingForFeedback as exc:
        print(str(exc), flush=True)
        return EXIT_WAITING
    return 0


def _launch(args: argparse.Namespace) -> int:
    """``--nproc N``: check the config and the run folder here, then start N processes of the same command."""
    from pathlib import Path

    from textgym.app.config import ConfigError, load_config
    from textgym.app.launch import launch_local

    argv = ["train"]
    try:
        if args.resume:
            if args.name or args.runs_dir:
                return _fail("--name and --runs-dir do not apply to --resume (the run folder is given)")
            if not (Path(args.resume) / "run_state.json").is_file():
                return _fail(f"{args.resume} is not a textgym run folder (config.yaml / run_state.json missing)")
            argv += ["--resume", args.resume]
        else:
            cfg = load_config(args.config, args.set, name=args.name)
            if str(cfg.algorithm).startswith("sb3-"):
                return _fail(f"algorithm {cfg.algorithm} (the Stable-Baselines3 adapter) trains in one process; "
                             "drop --nproc or use ppo / a2c")
            run_dir = Path(args.runs_dir or "runs") / str(cfg.name)
            if run_dir.exists() and any(run_dir.iterdir()) and not args.overwrite:
                return _fail(f"run folder {run_dir} exists already; continue it with `textgym train --resume "
                             f"{run_dir} --nproc {args.nproc}`, pick another --name, or pass --overwrite")
            argv += [args.config] + (["--name", args.name] if args.name else [])
            argv += (["--runs-dir", args.runs_dir] if args.runs_dir else []) + (["--overwrite"] if args.overwrite else [])
    except ConfigError as exc:
        return _fail(str(exc))
    for item in args.set:
        argv += ["--set", item]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    for flag in ("no_progress", "quiet", "verbose"):
        if getattr(args, flag, False):
            argv.append("--" + flag.replace("_", "-"))
    return launch_local(args.nproc, argv)


def _print_eval(result: Any) -> None:
    from textgym.app.pipeline import format_table

    m = result.metrics
    print(format_table({"value": m}, metrics=list(m)))
    for s in result.samples:
        print(f"\n[{s['score']:.3f}] {s['prompt']!r}\n     -> {s['completion']!r}")


def _cmd_eval(args: argparse.Namespace) -> int:
    from textgym.app.pipeline import RunFolderError, evaluate_target
    from textgym.app.config import ConfigError

    if args.bias:  # the bias probes instead of the env evaluation
        from textgym.app.bias_report import eval_bias

        try:
            eval_bias(args.target, overrides=args.set, out_dir=args.bias_out, seed=args.seed)
        except (ConfigError, RunFolderError, OSError, ValueError) as exc:
            return _fail(str(exc))
        return 0
    try:
        result = evaluate_target(args.target, env_id=args.env, split=args.split, episodes=args.episodes,
                                 overrides=args.set, seed=args.seed, greedy=True if args.greedy else None)
    except (ConfigError, RunFolderError, OSError) as exc:  # OSError: a model that cannot be loaded
        return _fail(str(exc))
    _print_eval(result)
    if args.output:
        with open(args.output, "w") as f:
            f.write(result.to_json())
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from textgym.app.export import ExportError, main as export

    try:
        out = export(args.run, args.out, merge=args.merge, overwrite=args.overwrite)
    except ExportError as exc:
        return _fail(str(exc))
    print(f"exported to {out}\nload it with: AutoModelForCausalLM.from_pretrained({str(out)!r})")
    return 0


def _delegate(module: str, argv: list[str]) -> int:
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        return _fail(f"{module} is not available ({exc})", 1)
    return int(mod.main(argv) or 0)


def _cmd_rollout(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import textgym  # noqa: F401  (registers the ids)
    from textgym.app.prepare import prepare_rewards
    from textgym.models import load

    if args.env not in gym.registry:  # before loading the model: a typo fails at once
        import difflib

        ids = sorted(k for k in gym.registry if k.startswith("textgym/"))
        close = difflib.get_close_matches(args.env, ids, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return _fail(f"--env: unknown env id {args.env!r}.{hint} See `textgym list envs`.")
    t0 = time.perf_counter()
    print(f"loading {args.model} ...", flush=True)
    try:
        model, tok = load(args.model)
    except OSError as exc:
        return _fail(str(exc))
    print(f"loaded in {time.perf_counter() - t0:.1f} s", flush=True)
    from textgym.app.config import is_conversation_env

    kwargs: dict[str, Any] = {"tokenizer": tok}
    if args.max_new_tokens or not is_conversation_env(args.env):  # a conversation env has its own budget
        kwargs["max_new_tokens"] = args.max_new_tokens or 32
    if args.split is not None:
        kwargs["split"] = args.split
    if args.reward:
        kwargs["reward"] = args.reward
    if args.chat:
        kwargs["prompt_format"] = "chat"
    try:
        prepare_rewards(args.env, kwargs.get("reward"))  # e.g. trains the sentiment classifier once
        env = gym.make(args.env, **kwargs)
    except (ValueError, KeyError, TypeError) as exc:  # unknown split, reward or argument: the message names them
        return _fail(f"cannot build {args.env}: {exc.args[0] if exc.args else exc}")
    rewards = []
    for ep in range(args.episodes):
        t = time.perf_counter()
        out = rollout_episode(model, env, seed=args.seed + ep, temperature=args.temperature, top_k=args.top_k)
        rewards.append(out["reward"])
        if "messages" in out:
            end = ("the responder" if out["terminated"] else "the turn / token limit") + f", {out['turns']} turns"
        else:
            end = "EOS" if out["terminated"] else f"{out['tokens']} tokens (truncated)"
        print(f"\n--- episode {ep + 1}/{args.episodes}  ({time.perf_counter() - t:.1f} s, ended by {end})")
        print(f"prompt:     {out['prompt']}")
        print(f"completion: {out['completion'].strip()}")
        print(f"reward:     {out['reward']:.3f}")
    print(f"\nmean reward over {len(rewards)} episodes: {sum(rewards) / len(rewards):.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``textgym`` command."""
    parser = argparse.ArgumentParser(prog="textgym", description="Gymnasium environments and RL agents for text generation.",
                                     formatter_class=_FMT)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", formatter_class=_FMT, help="list registered envs, rewards and algorithms")
    p.add_argument("what", nargs="?", default="all", choices=["all", "envs", "rewards", "algorithms"])
    add_output_flags(p)
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("train", formatter_class=_FMT, help="run a training pipeline from a YAML config (or resume one)",
                       description="Run the pipeline a YAML config describes in <runs-dir>/<name>/; "
                                   "examples/configs/ has commented examples, and the README's 'Train from a config' "
                                   "section lists the sections and keys.")
    p.add_argument("config", nargs="?", help="the run config (YAML)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set algo.learning_rate=1e-4 (repeatable; YAML values)")
    p.add_argument("--name", help="run name (default: the config's name, else the file name)")
    p.add_argument("--runs-dir", help="parent folder of run folders (default: runs)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its folder")
    p.add_argument("--overwrite", action="store_true", help="delete an existing run folder of the same name")
    add_output_flags(p)
    p.add_argument("--nproc", type=int, default=None, metavar="N",
                   help="train data-parallel in N local processes (torch.distributed, gloo on CPU; rank 0 writes "
                        "the run folder); under torchrun / accelerate launch leave it out")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", formatter_class=_FMT, help="evaluate a trained run or a model on held-out prompts")
    p.add_argument("target", metavar="RUN_DIR_OR_MODEL", help="a run folder, a model name or a model folder")
    p.add_argument("--env", default=None, help="env id (default for a run: its eval env; required for a model)")
    p.add_argument("--episodes", type=int, default=None, help="episodes (default: the config's eval.n_episodes)")
    p.add_argument("--split", default=None, help="data split (default: test)")
    p.add_argument("--seed", type=int, default=None, help="evaluation seed (default: the config's)")
    p.add_argument("--greedy", action="store_true", help="arg-max decoding instead of sampling")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a run-config key, e.g. --set eval.perplexity.data=movie-reviews")
    p.add_argument("--output", default=None, help="also write the result as JSON to this file")
    p.add_argument("--bias", action="store_true",
                   help="run the bias probes (CrowS-Pairs, BOLD) instead: tables, plots and bias.json "
                        "(settings: the run's bias section, --set bias.KEY=VALUE)")
    p.add_argument("--bias-out", default=None, metavar="DIR", help="folder of the --bias report (default: bias_report)")
    add_output_flags(p)
    p.set_defaults(func=_cmd_eval)

    for name, module, text in (("compare", "textgym.app.compare", "compare algorithms on one env and budget"),
                               ("bench", "textgym.app.bench", "speed / memory / learning benchmarks")):
        p = sub.add_parser(name, help=f"{text} (see `textgym {name} --help`)", add_help=False)
        p.add_argument("rest", nargs=argparse.REMAINDER)
        p.set_defaults(func=lambda args, module=module: _delegate(module, args.rest))

    p = sub.add_parser("export", formatter_class=_FMT, help="write a run's final model as a plain transformers folder",
                       description="Write the final model of a run (its RL policy, else its SFT model) to OUT: "
                                   "weights, tokenizer (chat template included), generation config and a model card; "
                                   "loadable offline with AutoModelForCausalLM.from_pretrained(OUT).")
    p.add_argument("run", metavar="RUN_DIR", help="a run folder (runs/<name>)")
    p.add_argument("out", metavar="OUT", help="the folder to write")
    p.add_argument("--merge", action="store_true", help="merge a LoRA adapter into the weights (a standalone model); "
                   "without it a LoRA run exports the adapter plus its base model in OUT/base")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_output_flags(p)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("rollout", formatter_class=_FMT, help="let a model generate on an env's prompts, step by step")
    p.add_argument("--env", default="textgym/IMDB-v0", help="registered env id (see `textgym list`)")
    p.add_argument("--model", default="smollm2-135m-instruct", help="model alias, tiny preset or local path")
    p.add_argument("--episodes", type=int, default=3, help="episodes to run")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="tokens per completion (default 32; a conversation env: its own budget for all turns)")
    p.add_argument("--split", default=None, help="data split (default: the env's own default split)")
    p.add_argument("--reward", default=None, help="reward name (default: the env's)")
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature (0: greedy)")
    p.add_argument("--top-k", type=int, default=50, help="sample from the k most likely tokens (0: all)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    p.add_argument("--chat", action="store_true", help="format prompts with the model's chat template")
    add_output_flags(p)
    p.set_defaults(func=_cmd_rollout)

    from textgym.app.feedback.cli import add_parser as add_feedback_parser

    add_feedback_parser(sub)  # `textgym feedback ...` (textgym/app/feedback/cli.py)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``textgym`` console script; returns the exit status.

    ``compare`` and ``bench`` hand all their arguments to ``textgym.app.compare.main(argv)``
    and ``textgym.app.bench.main(argv)``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("compare", "bench"):
        module = "textgym.app.compare" if argv[0] == "compare" else "textgym.app.bench"
        return _delegate(module, argv[1:])
    args = build_parser().parse_args(argv)
    try:
        apply_output_flags(args)
    except ValueError as exc:
        return _fail(str(exc))
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

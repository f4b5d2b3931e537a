"""``textgym feedback ...``: create a project, add annotators, serve, simulate, report, export.

::

    textgym feedback new PROJECT.db --model M | --run RUN  --env ID [--split S] --prompts N --k K
    textgym feedback new PROJECT.db --from-jsonl rows.jsonl         # rows: {"prompt", "completions": [...]}
    textgym feedback add-annotator PROJECT.db NAME [--admin]        # prints a login link with a new token
    textgym feedback serve PROJECT.db [--host 127.0.0.1] [--port 8765]
    textgym feedback simulate PROJECT.db --annotators 3 --rater sentiment|reward-model:PATH|NAME --noise 0.1 \
        [--edit-rate 0.3]
    textgym feedback status PROJECT.db [--json]
    textgym feedback export PROJECT.db --pairs pairs.jsonl [--sft sft.jsonl] [--aggregate majority|none]

Bad arguments exit with status 2 and one line saying what to fix, before any work starts.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from textgym.app.output import add_output_flags, apply_output_flags

__all__ = ["add_parser", "main"]

EXIT_USAGE = 2


class UsageError(Exception):
    """A bad argument; its message is printed as ``textgym feedback: ...`` and the command exits with 2."""


def _project(path: str) -> Any:
    from textgym.app.feedback.db import Project, ProjectError

    try:
        return Project(path)
    except ProjectError as exc:
        raise UsageError(str(exc)) from None


def _need_web() -> None:
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn", "httpx", "jinja2") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"the web app needs {', '.join(missing)}: pip install -e \".[feedback]\" (or make install)")


def _link(url: str, token: str) -> str:
    return f"{url.rstrip('/')}/login?token={token}"


def cmd_new(args: argparse.Namespace) -> int:
    from textgym.app.feedback.db import ProjectError, read_jsonl_items

    sources = [s for s in (args.model, args.run, args.from_jsonl) if s]
    if len(sources) != 1:
        raise UsageError("give exactly one of --model M, --run RUN or --from-jsonl FILE")
    if Path(args.project).exists():
        raise UsageError(f"{args.project} already exists; pick a new project file or delete it first")
    if args.judgments_per_item < 1:
        raise UsageError(f"--judgments-per-item must be >= 1, got {args.judgments_per_item}")
    if args.from_jsonl:
        if not Path(args.from_jsonl).is_file():
            raise UsageError(f"--from-jsonl: no such file {args.from_jsonl!r}")
        try:
            rows = read_jsonl_items(args.from_jsonl)
        except ProjectError as exc:
            raise UsageError(str(exc)) from None
        origin = f"imported from {Path(args.from_jsonl).name}"
    else:
        import gymnasium as gym

        import textgym  # noqa: F401  (registers the env ids)

        if not args.env or args.env not in gym.registry:
            raise UsageError(f"--env: {args.env!r} is not a registered env id; see `textgym list envs`")
        if args.prompts < 1 or args.k < 2:
            raise UsageError(f"need --prompts >= 1 and --k >= 2, got {args.prompts} and {args.k}")
        if args.run and not (Path(args.run) / "run_state.json").is_file():
            raise UsageError(f"--run: {args.run!r} is not a run folder (no run_state.json)")
        from textgym.app.feedback.generate import sample_items

        model = args.run or args.model
        kwargs = {"max_new_tokens": args.max_new_tokens} if args.max_new_tokens else {}
        print(f"sampling {args.k} completions for each of {args.prompts} prompts of {args.env} ({args.split}) "
              f"from {model} ...", flush=True)
        try:
            rows = sample_items(model, args.env, prompts=args.prompts, k=args.k, split=args.split, seed=args.seed,
                                temperature=args.temperature, env_kwargs=kwargs)
        except (ValueError, KeyError, OSError) as exc:
            raise UsageError(f"cannot sample from {model} on {args.env}: {exc}") from None
        origin = model
    from textgym.app.feedback.generate import create_project

    try:
        n, token = create_project(args.project, rows, origin=origin, judgments_per_item=args.judgments_per_item)
    except ProjectError as exc:
        raise UsageError(str(exc)) from None
    print(f"created {args.project}: {n} items, {args.judgments_per_item} judgments per item")
    print(f"admin login (status, export; keep it secret): {_link(args.url, token)}")
    print(f"next: textgym feedback add-annotator {args.project} NAME; textgym feedback serve {args.project}")
    return 0


def cmd_add_annotator(args: argparse.Namespace) -> int:
    from textgym.app.feedback.db import ProjectError

    project = _project(args.project)
    try:
        token = project.add_annotator(args.name, role="admin" if args.admin else "annotator")
    except ProjectError as exc:
        raise UsageError(str(exc)) from None
    print(f"login link for {args.name} (personal; shown once): {_link(args.url, token)}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    _need_web()
    from textgym.app.feedback.serve import bind_warning, serve

    _project(args.project).close()
    msg = bind_warning(args.host)
    if msg:
        print(f"textgym feedback: warning: {msg}", file=sys.stderr)
    print(f"serving {args.project} on http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
    serve(args.project, args.host, args.port)
    return 0


def status_text(project: Any) -> str:
    """The ``status`` report: counts, per-annotator judgments, agreement."""
    from textgym.app.feedback.agreement import agreement_report

    c, a = project.counts(), agreement_report(project.judgments())
    fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
    lines = [f"items: {c['items']} ({c['items_complete']} with >= {c['judgments_per_item']} judgments); "
             f"judgments: {c['judgments']}; skips: {c['skips']}; annotators: {c['annotators']}"]
    lines += [f"  {name}: {n}" for name, n in project.per_annotator().items()]
    lines.append(f"agreement: Krippendorff's alpha (ratings) ordinal {fmt(a['rating_alpha_ordinal'])}, interval "
                 f"{fmt(a['rating_alpha_interval'])}; rankings pairwise {fmt(a['ranking_pairwise'])} "
                 f"({a['ranking_comparisons']} comparisons); A/B votes {fmt(a['vote_agreement'])} "
                 f"({a['vote_pairs']} pairs)")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    project = _project(args.project)
    if args.json:
        from textgym.app.feedback.agreement import agreement_report

        print(json.dumps({"counts": project.counts(), "annotators": project.per_annotator(),
                          "agreement": agreement_report(project.judgments())}, indent=2))
    else:
        print(status_text(project))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from textgym.app.feedback.export import preference_pairs, sft_rows, write_jsonl

    if not args.pairs and not args.sft:
        raise UsageError("give --pairs FILE and/or --sft FILE")
    if not 1 <= args.margin <= 6:
        raise UsageError(f"--margin: a rating difference from 1 to 6, got {args.margin}")
    project = _project(args.project)
    items, judgments = project.items(), project.judgments()
    split = (lambda rows: rows) if args.split == "all" else (lambda rows: [r for r in rows if r["split"] == args.split])
    if args.pairs:
        rows = split(preference_pairs(items, judgments, margin=args.margin, aggregate=args.aggregate))
        n = write_jsonl(rows, args.pairs)
        by = {}
        for r in rows:
            by[r["source"]] = by.get(r["source"], 0) + 1
        print(f"{args.pairs}: {n} preference pairs ({', '.join(f'{k} {v}' for k, v in sorted(by.items())) or 'none'}; "
              f"aggregate {args.aggregate}, rating margin {args.margin})")
    if args.sft:
        n = write_jsonl(split(sft_rows(items, judgments)), args.sft)
        print(f"{args.sft}: {n} SFT rows (from edits)")
    print(status_text(project))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    _need_web()
    from textgym.app.feedback.db import ProjectError
    from textgym.app.feedback.serve import BackgroundServer
    from textgym.app.feedback.simulate import TASKS, make_rater, run_simulation

    if args.annotators < 1 or args.noise < 0:
        raise UsageError(f"need --annotators >= 1 and --noise >= 0, got {args.annotators} and {args.noise}")
    if not 0 <= args.edit_rate <= 1:
        raise UsageError(f"--edit-rate: a probability from 0 to 1, got {args.edit_rate}")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    if not tasks or any(t not in TASKS for t in tasks):
        raise UsageError(f"--tasks: a comma-separated subset of {','.join(TASKS)}, got {args.tasks!r}")
    project = _project(args.project)
    try:
        rater = make_rater(args.rater)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    taken = {a.name for a in project.annotators()}
    names = [n for n in (f"sim-{i}" for i in range(1, 10 * args.annotators + len(taken) + 2)) if n not in taken]
    try:
        tokens = {n: project.add_annotator(n) for n in names[: args.annotators]}
    except ProjectError as exc:
        raise UsageError(str(exc)) from None
    kwargs = {"noise": args.noise, "seed": args.seed, "tasks": tasks, "edit_rate": args.edit_rate}
    if args.url:
        result = run_simulation(args.url, tokens, rater, **kwargs)
    else:
        with BackgroundServer(project) as url:
            result = run_simulation(url, tokens, rater, **kwargs)
    edits = f" ({result.edits} with an edit)" if args.edit_rate > 0 else ""
    print(f"{len(tokens)} simulated annotators ({', '.join(tokens)}; rater {args.rater}, noise {args.noise}) "
          f"stored {len(result.acks)} judgments{edits} in {result.seconds:.1f} s")
    for e in result.errors:
        print(f"  error: {e}", file=sys.stderr)
    print(status_text(project))
    return 1 if result.errors else 0


def add_parser(sub: Any) -> None:
    """Register ``feedback`` and its subcommands on the ``textgym`` parser's subparsers."""
    from textgym.app.feedback.serve import DEFAULT_HOST, DEFAULT_PORT

    fb = sub.add_parser("feedback", help="human feedback: a web app to rate, rank and edit generations",
                        description=__doc__.split("\n\n")[0])
    fsub = fb.add_subparsers(dest="feedback_command", required=True)
    url = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"

    p = fsub.add_parser("new", help="create a project: prompts and K completions each")
    p.add_argument("project", help="the project file to create (SQLite, e.g. feedback.db)")
    p.add_argument("--model", help="sample from this model (name or folder)")
    p.add_argument("--run", help="sample from a run folder's trained policy (else its SFT model)")
    p.add_argument("--from-jsonl", help="import rows {\"prompt\", \"completions\": [...]} instead of sampling")
    p.add_argument("--env", help="env id whose prompts are used (with --model / --run)")
    p.add_argument("--split", default="test", help="the env's data split (default: test)")
    p.add_argument("--prompts", type=int, default=32, help="number of prompts (default 32)")
    p.add_argument("--k", type=int, default=2, help="completions per prompt (default 2: A/B votes)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="completion length (default: the env's)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--judgments-per-item", type=int, default=2, help="annotators per item (default 2)")
    p.add_argument("--url", default=url, help="the server's address, for the printed admin link")
    p.set_defaults(feedback_func=cmd_new)

    p = fsub.add_parser("add-annotator", help="add a person; prints their login link")
    p.add_argument("project")
    p.add_argument("name", help="letters, digits, _ . -")
    p.add_argument("--admin", action="store_true", help="an admin (status and export pages) instead")
    p.add_argument("--url", default=url, help="the server's address, for the printed link")
    p.set_defaults(feedback_func=cmd_add_annotator)

    p = fsub.add_parser("serve", help="run the web app")
    p.add_argument("project")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.set_defaults(feedback_func=cmd_serve)

    p = fsub.add_parser("status", help="progress and agreement")
    p.add_argument("project")
    p.add_argument("--json", action="store_true")
    p.set_defaults(feedback_func=cmd_status)

    p = fsub.add_parser("export", help="preference pairs and SFT rows as JSON Lines")
    p.add_argument("project")
    p.add_argument("--pairs", help="write preference pairs here")
    p.add_argument("--sft", help="write SFT rows (from edits) here")
    p.add_argument("--aggregate", choices=["majority", "none"], default="majority",
                   help="majority: one row per item and pair, the annotators' majority; none: every annotator's pair")
    p.add_argument("--margin", type=int, default=2, help="rating difference that makes a pair (default 2)")
    p.add_argument("--split", choices=["all", "train", "validation", "test"], default="all")
    p.set_defaults(feedback_func=cmd_export)

    p = fsub.add_parser("simulate", help="simulated annotators judge the queue through the HTTP API")
    p.add_argument("project")
    p.add_argument("--annotators", type=int, default=3)
    p.add_argument("--rater", default="sentiment",
                   help="sentiment | reward-model:PATH | a registered reward name (default sentiment)")
    p.add_argument("--noise", type=float, default=0.1, help="std of the noise on standardised scores")
    p.add_argument("--tasks", default="rate,rank,vote", help="what each judgment holds (default rate,rank,vote)")
    p.add_argument("--edit-rate", type=float, default=0.0,
                   help="chance that a judgment also rewrites the best completion into one the rater scores higher")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--url", default=None, help="a running server (default: start one on a free local port)")
    p.set_defaults(feedback_func=cmd_simulate)
    for command in fsub.choices.values():  # --no-progress, -q, -v, --threads: every textgym command takes them
        add_output_flags(command)
    fb.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``feedback`` command; a :class:`UsageError` prints one line and returns 2."""
    try:
        return int(args.feedback_func(args) or 0)
    except UsageError as exc:
        print(f"textgym feedback: {exc}", file=sys.stderr)
        return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    """``python -m textgym.app.feedback.cli ...`` (the same as ``textgym feedback ...``)."""
    parser = argparse.ArgumentParser(prog="textgym")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["feedback", *(sys.argv[1:] if argv is None else argv)])
    try:
        apply_output_flags(args)
    except ValueError as exc:
        print(f"textgym feedback: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

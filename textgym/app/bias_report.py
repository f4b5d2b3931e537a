"""Bias reports: run the probes of :mod:`textgym.agents.common.bias` on a model or run, print tables, draw plots.

* ``textgym eval MODEL_OR_RUN --bias [--bias-out DIR] [--set bias.KEY=VALUE]``
  (:func:`eval_bias`) probes a model (name / folder) or a run's trained policy,
  prints the CrowS-Pairs and BOLD tables and writes ``bias.json``,
  ``crows_pairs.png`` and ``bold_<scorer>.png`` (per-group bars with 95% CIs)
  to ``DIR`` (default ``bias_report/``).
* A ``bias:`` section in a run config (:class:`BiasSettings`) makes the
  pipeline probe every evaluated stage (before, sft, after): the headline
  numbers join ``eval.json`` (and so ``plots/before_after.png``), the full
  results go to ``bias/<stage>.json`` with their plots, and ``summary.md``
  gets a "Bias" section with the change and its CIs (:func:`summary_section`).

Flat metrics (:func:`flat_metrics`): ``bias/crows_score`` (percent, 50 = no
preference) with ``_lo`` / ``_hi`` (its 95% CI), and per scorer and domain
``bias/bold_<scorer>_gap/<domain>`` (the largest gap between two groups' mean
sentiment) with ``_lo`` / ``_hi``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BiasSettings", "run_probes", "format_tables", "flat_metrics", "plot_bias", "write_report",
           "summary_section", "eval_bias", "DEFAULT_OUT"]

#: Output folder of ``textgym eval --bias`` when ``--bias-out`` is not given.
DEFAULT_OUT = "bias_report"
_SCORERS = ("sentiment", "vader")
_DOMAINS = ("gender", "race", "religious_ideology", "political_ideology", "profession")
_CROWS_TYPES = ("age", "disability", "gender", "nationality", "physical-appearance", "race-color", "religion",
                "sexual-orientation", "socioeconomic")


@dataclass
class BiasSettings:
    """The ``bias:`` section of a run config (and the settings of ``textgym eval --bias``).

    The defaults are sized so that probing SmolLM2-135M takes a few minutes on a
    2-core CPU (README, "Bias").

    Attributes:
        crows: run the CrowS-Pairs probe.
        crows_method: ``shared`` (log-likelihood of the shared tokens) or ``full`` (whole sentence).
        crows_per_type: a seeded sample of this many pairs of each bias type (all of a
            smaller type; ``null``: every pair of the 1508).
        crows_max_pairs: then keep only the first this many pairs (``null``: no limit).
        crows_types: only these bias types (``null``: all nine).
        bold: run the BOLD probe.
        bold_per_group: prompts per (domain, category).
        bold_domains: domains to probe (``null``: all five).
        bold_max_new_tokens: tokens generated per prompt.
        scorers: sentiment scorers of the continuations: ``sentiment`` (textgym's
            classifier) and / or ``vader``.
        temperature: sampling temperature of the continuations.
        batch_size: rows per forward / generation batch.
        seed: prompt sample, sampling noise and bootstrap seed.
    """

    crows: bool = True
    crows_method: str = "shared"
    crows_per_type: int | None = 30
    crows_max_pairs: int | None = None
    crows_types: list[str] | None = None
    bold: bool = True
    bold_per_group: int = 5
    bold_domains: list[str] | None = None
    bold_max_new_tokens: int = 16
    scorers: list[str] = field(default_factory=lambda: list(_SCORERS))
    temperature: float = 1.0
    batch_size: int = 32
    seed: int = 0

    def check(self) -> None:
        """Raise ``ValueError`` (one line, naming the key) for a bad value."""
        if self.crows_method not in ("shared", "full"):
            raise ValueError(f"crows_method must be 'shared' or 'full', got {self.crows_method!r}")
        for key in ("crows_per_type", "crows_max_pairs", "bold_per_group", "bold_max_new_tokens", "batch_size"):
            v = getattr(self, key)
            if v is not None and v < 1:
                raise ValueError(f"{key} must be >= 1, got {v}")
        bad = [s for s in self.scorers if s not in _SCORERS]
        if bad or not self.scorers:
            raise ValueError(f"scorers must be a non-empty list of {list(_SCORERS)}, got {self.scorers}")
        bad = [t for t in self.crows_types or () if t not in _CROWS_TYPES]
        if bad:
            raise ValueError(f"unknown crows_types {bad}; choose from {list(_CROWS_TYPES)}")
        bad = [d for d in self.bold_domains or () if d not in _DOMAINS]
        if bad:
            raise ValueError(f"unknown bold_domains {bad}; choose from {list(_DOMAINS)}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not (self.crows or self.bold):
            raise ValueError("crows and bold are both false: nothing to probe")


def run_probes(policy: Any, settings: BiasSettings) -> dict[str, Any]:
    """Run the enabled probes on ``policy`` (an ``LMActorCritic``); returns ``{"crows": ..., "bold": ..., "time_s"}``."""
    import time

    from textgym.agents.common import bias
    from textgym.envs import datasets as tds

    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    if settings.crows:
        pairs = tds.load("crows-pairs", "test")
        pairs = [r for r in pairs if not settings.crows_types or r["bias_type"] in settings.crows_types]
        if settings.crows_per_type is not None:
            pairs = bias.stratified_sample(pairs, ("bias_type",), settings.crows_per_type, settings.seed)
        if settings.crows_max_pairs is not None:
            pairs = pairs[: settings.crows_max_pairs]
        out["crows"] = bias.crows_pairs_score(policy, pairs, method=settings.crows_method,
                                              batch_size=settings.batch_size, seed=settings.seed)
    if settings.bold:
        out["bold"] = bias.bold_bias(policy, tds.load("bold-prompts", "test"), per_group=settings.bold_per_group,
                                     domains=settings.bold_domains, scorers=settings.scorers,
                                     max_new_tokens=settings.bold_max_new_tokens, temperature=settings.temperature,
                                     batch_size=settings.batch_size, seed=settings.seed)
    out["time_s"] = time.perf_counter() - t0
    return out


def _ci(lo: float | None, hi: float | None, digits: int) -> str:
    return "-" if lo is None or hi is None else f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in rows)])


def format_tables(results: dict[str, Any]) -> str:
    """Plain-text tables: CrowS-Pairs per bias type, BOLD per group and the largest gap per domain."""
    parts = []
    crows = results.get("crows")
    if crows is not None:
        rows = [[t, f"{e.value:.1f}", _ci(e.lo, e.hi, 1), str(e.n)] for t, e in crows.by_type.items()]
        o = crows.overall
        rows.append(["overall", f"{o.value:.1f}", _ci(o.lo, o.hi, 1), str(o.n)])
        parts.append(f"CrowS-Pairs stereotype score (% of pairs where the stereotypical sentence is more likely; "
                     f"50 = no preference; method {crows.method})\n"
                     + _table(["bias type", "score", "95% CI", "pairs"], rows))
    bold = results.get("bold")
    if bold is not None:
        for scorer, domains in bold.groups.items():
            rows = []
            for domain, groups in domains.items():
                for g in groups:
                    rows.append([f"{domain}/{g.group}", "-" if g.mean is None else f"{g.mean:.3f}",
                                 _ci(g.lo, g.hi, 3), str(g.n), g.note])
            parts.append(f"BOLD: mean {scorer} of the continuations per group (0 negative .. 1 positive)\n"
                         + _table(["group", "mean", "95% CI", "n", "note"], rows))
            rows = []
            for domain, gap in bold.gaps[scorer].items():
                if gap.gap is None:
                    rows.append([domain, "-", "-", "-", gap.note])
                else:
                    rows.append([domain, f"{gap.gap:.3f}", _ci(gap.lo, gap.hi, 3), f"{gap.high} - {gap.low}",
                                 gap.note])
            parts.append(f"BOLD: largest gap between two groups' mean {scorer} per domain (CI of that difference)\n"
                         + _table(["domain", "gap", "95% CI", "groups", "note"], rows))
    return "\n\n".join(parts)


def flat_metrics(results: dict[str, Any]) -> dict[str, float]:
    """Headline numbers as ``{metric: float}`` (see the module docstring); missing CIs are left out, never NaN."""
    out: dict[str, float] = {}
    crows = results.get("crows")
    if crows is not None:
        o = crows.overall
        out["bias/crows_score"] = o.value
        if o.lo is not None:
            out["bias/crows_score_lo"], out["bias/crows_score_hi"] = o.lo, o.hi
    bold = results.get("bold")
    if bold is not None:
        for scorer, gaps in bold.gaps.items():
            for domain, gap in gaps.items():
                if gap.gap is not None:
                    key = f"bias/bold_{scorer}_gap/{domain}"
                    out[key], out[key + "_lo"], out[key + "_hi"] = gap.gap, gap.lo, gap.hi
    return out


def _save(fig: Any, path: Path) -> Path:
    from textgym.app.plots import _save_atomic

    return _save_atomic(fig, path)


def plot_bias(results: dict[str, Any], out_dir: str | os.PathLike, title: str = "") -> list[Path]:
    """``crows_pairs.png`` (score per bias type, CI bars, a line at 50) and ``bold_<scorer>.png``
    (per-group mean sentiment with CI bars, one panel per domain); returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    crows = results.get("crows")
    if crows is not None:
        items = [*crows.by_type.items(), ("overall", crows.overall)]
        fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(items) + 1.2))
        vals = [e.value for _, e in items]
        err = [[e.value - e.lo if e.lo is not None else 0 for _, e in items],
               [e.hi - e.value if e.hi is not None else 0 for _, e in items]]
        ax.barh(range(len(items)), vals, xerr=err, capsize=3, color=["C0"] * (len(items) - 1) + ["C1"])
        ax.axvline(50, color="k", lw=0.8, ls="--")
        ax.set_yticks(range(len(items)), [f"{t} (n={e.n})" for t, e in items])
        ax.set_xlim(0, 100)
        ax.set_xlabel("stereotype score, % (50 = no preference; 95% CI)")
        ax.set_title(f"CrowS-Pairs {title}".strip())
        fig.tight_layout()  # room for the long type labels
        paths.append(_save(fig, out_dir / "crows_pairs.png"))
    bold = results.get("bold")
    if bold is not None:
        for scorer, domains in bold.groups.items():
            fig, axes = plt.subplots(len(domains), 1, figsize=(7, 1.0 + sum(0.3 * len(g) + 0.6 for g in domains.values())),
                                     gridspec_kw={"height_ratios": [max(1, len(g)) for g in domains.values()]},
                                     squeeze=False)
            for ax, (domain, groups) in zip(axes[:, 0], domains.items()):
                shown = [g for g in groups if g.mean is not None]
                means = [g.mean for g in shown]
                err = [[g.mean - g.lo if g.lo is not None else 0 for g in shown],
                       [g.hi - g.mean if g.hi is not None else 0 for g in shown]]
                ax.barh(range(len(shown)), means, xerr=err, capsize=3)
                ax.set_yticks(range(len(shown)), [f"{g.group} (n={g.n})" for g in shown], fontsize=7)
                ax.set_xlim(0, 1)
                ax.set_title(domain, fontsize=9)
            axes[-1, 0].set_xlabel(f"mean {scorer} of the continuation (95% CI)")
            fig.suptitle(f"BOLD {title}".strip())
            fig.tight_layout()
            paths.append(_save(fig, out_dir / f"bold_{scorer}.png"))
    return paths


def _to_json(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"time_s": results.get("time_s")}
    if results.get("crows") is not None:
        out["crows"] = results["crows"].to_dict()
    if results.get("bold") is not None:
        out["bold"] = results["bold"].to_dict()
        out["bold"]["samples"] = results["bold"].samples
    out["metrics"] = flat_metrics(results)
    return out


def write_report(results: dict[str, Any], out_dir: str | os.PathLike, name: str = "bias", title: str = "",
                 plots: bool = True) -> list[Path]:
    """Write ``<name>.json`` (atomically) and, with ``plots``, the figures; returns the files written."""
    from textgym.app.run_folder import write_atomic

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    write_atomic(path, json.dumps(_to_json(results), indent=2))
    return [path, *(plot_bias(results, out_dir, title) if plots else [])]


def summary_section(evals: dict[str, dict[str, float]]) -> str:
    """The "Bias" section of ``summary.md``: each bias metric per stage with its 95% CI, and the change."""
    stages = [s for s, m in evals.items() if any(k.startswith("bias/") for k in m)]
    if not stages:
        return ""
    keys = sorted({k for s in stages for k in evals[s] if k.startswith("bias/") and not k.endswith(("_lo", "_hi"))})
    lines = ["## Bias", "",
             "CrowS-Pairs score: % of pairs where the more stereotypical sentence is more likely (50 = no "
             "preference). BOLD gap: the largest difference between two groups' mean sentiment of the "
             "continuations in a domain. Brackets: bootstrap 95% CIs. Where the CIs of two stages overlap, "
             "read the change as not resolved at this probe size (a conservative reading: the stages are "
             "probed on the same pairs and prompts).", "",
             "| metric | " + " | ".join(stages) + (" | change |" if len(stages) > 1 else ""),
             "|---|" + "---:|" * (len(stages) + (len(stages) > 1))]
    for k in keys:
        cells = []
        for s in stages:
            m = evals[s]
            v = m.get(k)
            lo, hi = m.get(k + "_lo"), m.get(k + "_hi")
            cells.append("-" if v is None else f"{v:.3g}" + ("" if lo is None else f" [{lo:.3g}, {hi:.3g}]"))
        first, last = evals[stages[0]].get(k), evals[stages[-1]].get(k)
        change = [f"{last - first:+.3g}" if first is not None and last is not None else "-"] if len(stages) > 1 else []
        lines.append(f"| {k} | " + " | ".join(cells + change) + " |")
    return "\n".join(lines) + "\n"


def eval_bias(target: str, *, overrides: list[str] | tuple[str, ...] = (), out_dir: str | None = None,
              seed: int | None = None) -> tuple[dict[str, Any], list[Path]]:
    """``textgym eval TARGET --bias``: probe a model or a run's trained policy; print the tables, write the report.

    Settings: the run config's ``bias:`` section (for a run), else :class:`BiasSettings`
    defaults, then ``--set bias.KEY=VALUE`` overrides.

    Raises:
        ConfigError: a bad ``bias.*`` override or a ``--set`` key outside ``bias.``.
        RunFolderError / OSError: a run without a trained policy, a model that cannot be loaded.
    """
    from textgym.app.config import ConfigError, apply_overrides, build_dataclass, parse_overrides

    run = Path(target)
    is_run = (run / "config.yaml").is_file() and (run / "run_state.json").is_file()
    raw: dict[str, Any] = {}
    if is_run:
        import yaml

        raw = {"bias": (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("bias") or {}}
    parsed = parse_overrides(overrides)
    bad = [k for k, _ in parsed if not k.startswith("bias.")]
    if bad:
        raise ConfigError(f"with --bias, --set takes only bias.* keys (e.g. bias.bold_per_group=4), got {bad[0]!r}",
                          bad[0])
    apply_overrides(raw, parsed)
    settings = build_dataclass(BiasSettings, raw.get("bias") or {}, "bias", label="bias settings")
    if seed is not None:
        settings.seed = seed
    policy = _load_policy(target, run, is_run)
    results = run_probes(policy, settings)
    print(format_tables(results))
    out = Path(out_dir or DEFAULT_OUT)
    files = write_report(results, out, title=run.name if is_run else str(target))
    print(f"\nprobe time {results['time_s']:.0f} s; wrote " + ", ".join(str(f) for f in files))
    return results, files


def _load_policy(target: str, run: Path, is_run: bool) -> Any:
    from textgym.app.config import NO_RL, load_config
    from textgym.app.pipeline import RunFolderError, _policy_for_eval, load_trained_policy, make_vec_env, resolve_model

    if not is_run:
        if not run.exists() and "/" in target:
            raise RunFolderError(f"{target!r}: there is no such folder (give a run folder, a model name or folder)")
        return _policy_for_eval(resolve_model(target), None, 0)
    cfg = load_config(run / "config.yaml")
    if cfg.algorithm == NO_RL:
        stage = next((s for s in ("preference", "sft") if (run / s / "config.json").is_file()), None)
        if stage is None:
            raise RunFolderError(f"run {run} trained no policy (algorithm none, no sft or preference stage)")
        return _policy_for_eval(str((run / stage).resolve()), None, getattr(cfg, stage).config.seed)
    from textgym.models import load_tokenizer

    tok = load_tokenizer(resolve_model(cfg.model))
    env = make_vec_env(cfg.env.id, cfg.env.num_envs, cfg.env.kwargs, tok)
    return load_trained_policy(run, cfg.algorithm, env)

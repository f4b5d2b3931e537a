"""Shared pieces of the benchmark scripts: threads, exclusive phase timers, tables, machine info, shared rewards.

Not a benchmark itself (``textgym bench`` skips names starting with ``_``).
Every script imports it as ``from _common import ...``: Python puts the
script's own folder first on ``sys.path``, and ``textgym bench`` runs the
scripts by path, so this works from any working directory.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import platform
import re
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"

#: Positive words of the cheap deterministic lexicon reward shared by both sides of a comparison.
POSITIVE_WORDS = frozenset(
    "good great excellent wonderful best love loved beautiful fun funny brilliant amazing enjoy enjoyed "
    "perfect nice fine superb favorite happy well strong moving touching charming".split()
)


def set_threads(n: int | None) -> int:
    """Use ``n`` torch CPU threads (``None``: leave torch's choice); returns the number in use.

    Both sides of every comparison run in one process after this call, so they
    get the same thread count.

    Raises:
        ValueError: ``n < 1``.
    """
    import torch

    if n is not None:
        if n < 1:
            raise ValueError(f"--threads must be >= 1, got {n}")
        torch.set_num_threads(n)
    return torch.get_num_threads()


def quiet() -> None:
    """Silence transformers/TRL progress bars and advisory warnings, so a table is readable."""
    import logging
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    logging.getLogger("trl").setLevel(logging.ERROR)


def lexicon_reward(prompts: Sequence[str], completions: Sequence[str], **kwargs: Any) -> list[float]:
    """Share of the completion's words that are in :data:`POSITIVE_WORDS` (0 for an empty completion).

    Cheap and deterministic, so both sides of a speed comparison pay the same
    (negligible) reward cost.  Works as a TRL reward function and, wrapped in
    :class:`textgym.reward_api.FunctionReward` (``batched=True``), as a textgym one.

    Returns:
        One float in ``[0, 1]`` per completion.
    """
    out = []
    for c in completions:
        if not isinstance(c, str):  # TRL passes conversational completions as message lists
            c = " ".join(m.get("content", "") for m in c)
        words = re.findall(r"[a-z']+", c.lower())
        out.append(sum(w in POSITIVE_WORDS for w in words) / len(words) if words else 0.0)
    return out


class PhaseTimer:
    """Wall time per named phase, *exclusive*: a phase that starts inside another pauses the outer one.

    So the phases of one step never double count and ``total - sum(phases)``
    is the time spent in nothing that was wrapped ("other").  Use
    :meth:`phase` as a context manager, :meth:`wrap` to time a method of an
    object (restored by :meth:`restore`), or :meth:`add` for an interval
    measured elsewhere.  Times are seconds (``time.perf_counter``).
    """

    def __init__(self, sync: Callable[[], None] | None = None):
        self.totals: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)
        self._stack: list[list[Any]] = []  # [name, start of the running slice]
        self._patched: list[tuple[Any, str, Any, bool]] = []
        self._sync = sync or (lambda: None)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Attribute the time inside the block to ``name`` (minus nested phases)."""
        self._sync()
        now = time.perf_counter()
        if self._stack:
            outer = self._stack[-1]
            self.totals[outer[0]] += now - outer[1]
        self._stack.append([name, now])
        self.counts[name] += 1
        try:
            yield
        finally:
            self._sync()
            now = time.perf_counter()
            top = self._stack.pop()
            self.totals[top[0]] += now - top[1]
            if self._stack:
                self._stack[-1][1] = now

    def add(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to ``name`` (for intervals bracketed by callbacks)."""
        self.totals[name] += seconds
        self.counts[name] += 1

    def wrap(self, obj: Any, attr: str, name: str | Callable[..., str]) -> None:
        """Replace ``obj.attr`` (a callable) by a timed version until :meth:`restore`.

        Args:
            name: the phase name, or ``name(*args, **kwargs) -> str`` to choose it per call.
        """
        original = getattr(obj, attr)
        had_own = attr in getattr(obj, "__dict__", {})
        timer = self

        def timed(*args: Any, **kwargs: Any) -> Any:
            label = name(*args, **kwargs) if callable(name) else name
            with timer.phase(label):
                return original(*args, **kwargs)

        setattr(obj, attr, timed)
        self._patched.append((obj, attr, original, had_own))

    def restore(self) -> None:
        """Undo every :meth:`wrap` (last first)."""
        while self._patched:
            obj, attr, original, had_own = self._patched.pop()
            if had_own:
                setattr(obj, attr, original)
            else:
                delattr(obj, attr)

    def reset(self) -> None:
        """Zero the totals (e.g. after a warm-up step); wrappers stay in place."""
        self.totals.clear()
        self.counts.clear()

    def snapshot(self) -> dict[str, float]:
        """A copy of the totals so far."""
        return dict(self.totals)


def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """``after - before`` per key (phases of one step from two :meth:`PhaseTimer.snapshot` s)."""
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def machine_info() -> str:
    """One line: CPU model, logical cores, RAM, torch version and threads (if torch is loaded), load average, date."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load average {os.getloadavg()[0]:.1f}"
    gpu = torch_part = ""
    torch = sys.modules.get("torch")  # not imported here: model-free benchmarks stay torch-free
    if torch is not None:
        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name(0)}"
        torch_part = f"; torch {torch.__version__} with {torch.get_num_threads()} thread(s)"
    return f"{cpu}, {os.cpu_count()} logical cores{mem}{gpu}{torch_part}{load}; {time.strftime('%Y-%m-%d %H:%M')}"


def fmt(x: Any, digits: int = 2) -> str:
    """Numbers for tables: ints with thousands separators, floats with ``digits`` decimals, NaN as ``-``."""
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return f"{int(x):,}"
    if isinstance(x, (float, np.floating)):
        if not np.isfinite(x):
            return "-"
        return f"{float(x):,.{digits}f}"
    return str(x)


class Table:
    """A result table: printed as Markdown and written to ``benchmarks/results/<name>.md`` and ``.csv``.

    Args:
        name: the benchmark name (file stem).
        columns: column headers.
        digits: decimals for floats (per column: a dict ``header -> digits``, default 2).
    """

    def __init__(self, name: str, columns: Sequence[str], digits: dict[str, int] | None = None):
        self.name = name
        self.columns = list(columns)
        self.rows: list[list[Any]] = []
        self.digits = digits or {}

    def add(self, *values: Any) -> None:
        """Append a row (one value per column).

        Raises:
            ValueError: wrong number of values.
        """
        if len(values) != len(self.columns):
            raise ValueError(f"table {self.name!r} has {len(self.columns)} columns, got {len(values)} values")
        self.rows.append(list(values))

    def markdown(self) -> str:
        """The table in GitHub Markdown (numbers right-aligned)."""
        cells = [[fmt(v, self.digits.get(c, 2)) for c, v in zip(self.columns, r)] for r in self.rows]
        numeric = [all(isinstance(r[i], (int, float, np.number)) for r in self.rows) if self.rows else False
                   for i in range(len(self.columns))]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(self.columns)]
        head = "| " + " | ".join(c.ljust(w) for c, w in zip(self.columns, widths)) + " |"
        rule = "|" + "|".join(("-" * (w + 1) + ":") if n else ("-" * (w + 2)) for w, n in zip(widths, numeric)) + "|"
        body = ["| " + " | ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(r, widths, numeric)) + " |"
                for r in cells]
        return "\n".join([head, rule, *body])

    def csv_text(self) -> str:
        """The table as CSV (raw values, full precision)."""
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(self.columns)
        w.writerows(self.rows)
        return buf.getvalue()

    def write(self, header: str = "", notes: str = "", out_dir: Path | None = None) -> tuple[Path, str]:
        """Write ``<out_dir>/<name>.md`` (``header``, the table, ``notes``) and ``.csv`` (default ``benchmarks/results``).

        Returns:
            ``(path of the Markdown file, its text)``.
        """
        out = Path(out_dir) if out_dir is not None else RESULTS_DIR
        out.mkdir(parents=True, exist_ok=True)
        text = "\n\n".join(x for x in (header.strip(), self.markdown(), notes.strip()) if x) + "\n"
        md = out / f"{self.name}.md"
        md.write_text(text)
        (out / f"{self.name}.csv").write_text(self.csv_text())
        return md, text

    def emit(self, header: str = "", notes: str = "", out_dir: Path | None = None) -> Path:
        """:meth:`write` the table and print it; returns the path of the Markdown file."""
        md, text = self.write(header, notes, out_dir)
        print("\n" + text, flush=True)
        return md


WORDS = "the a movie film was very good bad plot actor scene story great boring long short music".split()


def zero_reward(prompts: Sequence[str], completions: Sequence[str], **kwargs: Any) -> np.ndarray:
    """A batched reward of 0 for every completion (``(B,)`` float32): speed runs that time the model only."""
    return np.zeros(len(completions), np.float32)


def synthetic_env(tokenizer: Any, batch: int, prompt_length: int, new_tokens: int, vocab_size: int,
                  reward: Any = None) -> Any:
    """A ``TextGenVectorEnv`` whose every row has a full ``P``-token prompt and generates exactly ``T`` tokens.

    Prompts are random words (seed 0), longer than ``P`` tokens and truncated
    on the left, so every prompt fills all ``P`` slots; there is no stop token,
    so every episode is truncated at ``T`` tokens.  ``reward`` defaults to
    :func:`zero_reward` with ``needs_text = False`` (no decoding at all).

    Args:
        tokenizer: the model's tokenizer.
        batch: ``num_envs``.
        prompt_length, new_tokens: ``P`` and ``T``.
        vocab_size: the policy's action-space size.
        reward: a textgym reward function (default: zero, no text).
    """
    from textgym import TextGenVectorEnv
    from textgym.reward_api import FunctionReward

    rng = np.random.default_rng(0)
    samples = [{"prompt": " ".join(rng.choice(WORDS, 4 * prompt_length))} for _ in range(batch)]
    if reward is None:
        reward = FunctionReward(zero_reward, batched=True, name="zero")
        reward.needs_text = False
    return TextGenVectorEnv(tokenizer, samples, reward, num_envs=batch, max_prompt_length=prompt_length,
                            max_new_tokens=new_tokens, stop_token_ids=[], vocab_size=vocab_size,
                            autoreset_mode="Disabled", info_completions=False)


def sync(device: Any) -> None:
    """Wait for queued CUDA work (no-op on CPU), so wall-clock timings are complete."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed_runs(run: Callable[[], Any], repeats: int, device: Any) -> Iterator[tuple[float, Any]]:
    """Call ``run()`` ``repeats + 1`` times, the first a warm-up; yield ``(seconds, result)`` of each timed call.

    The device is synchronised before and after each call (:func:`sync`), so the
    seconds are complete; code between two yields (e.g. reading what the call
    recorded) is not timed.
    """
    for i in range(repeats + 1):
        sync(device)
        t0 = time.perf_counter()
        out = run()
        sync(device)
        if i:
            yield time.perf_counter() - t0, out


def time_scoring(collector: Any) -> dict[str, float]:
    """Wrap ``collector.score_with_trunk`` (the scoring pass every rollout collector's ``collect``
    runs, directly or through ``score``) so that the seconds of its latest call are in the returned
    dict under ``"score"``: a rollout's time without it is ``total - spent["score"]``."""
    inner, spent = collector.score_with_trunk, {}

    def timed_score(*a: Any, **kw: Any) -> Any:
        t0 = time.perf_counter()
        out = inner(*a, **kw)
        spent["score"] = time.perf_counter() - t0
        return out

    collector.score_with_trunk = timed_score
    return spent


def parse_bench_args(ap: Any, argv: Sequence[str] | None, *, repeats: int, out: str = "table") -> Any:
    """Add ``--repeats``, ``--threads`` and ``--out-dir`` to the ``argparse`` parser ``ap``, parse ``argv``,
    then :func:`quiet` and :func:`set_threads` (a throughput script's common start); returns the arguments."""
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--out-dir", default=None, help=f"where to write the {out} (default benchmarks/results)")
    args = ap.parse_args(argv)
    quiet()
    set_threads(args.threads)
    return args


def export_model(name: str, dtype: str = "float32") -> str:
    """Save ``textgym.models.load(name)`` (model + tokenizer) to a local folder, for libraries that want a path.

    TRL builds its reference model with ``from_pretrained(model.config._name_or_path)``,
    so it must get a local folder, never a Hub id (the machine is offline).  A
    local model folder is returned as is.

    Returns:
        The folder (under the system temp dir, reused while it exists).
    """
    if os.path.isdir(name):
        return name
    from textgym.models import load

    folder = Path(tempfile.gettempdir()) / f"textgym-bench-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}-{dtype}"
    if not (folder / "config.json").is_file():
        import torch

        model, tok = load(name, dtype=getattr(torch, dtype))
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + ".tmp"))
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        os.replace(tmp, folder)
    return str(folder)


def imdb_prompts(n: int, prompt_words: int = 20, split: str = "train") -> list[str]:
    """The first ``n`` IMDB review prefixes of ``split`` (``prompt_words`` words each), in file order."""
    from textgym.envs.sentiment import imdb_samples

    rows = imdb_samples(split, prompt_words=prompt_words)
    if n > len(rows):
        raise ValueError(f"asked for {n} prompts, the {split} split has {len(rows)}")
    return [r["prompt"] for r in rows[:n]]


def check_trl(version: str = "1.16.0") -> Any:
    """Import ``trl`` and check its version.

    Raises:
        SystemExit: TRL missing or another version, with the install command.
    """
    try:
        import trl
    except ImportError:
        sys.exit(f"this benchmark needs TRL {version}: pip install --no-deps trl=={version} "
                 f"(or pip install 'textgym[bench]')")
    if trl.__version__ != version:
        print(f"warning: TRL {trl.__version__} installed, the published numbers used {version}", file=sys.stderr)
    return trl

"""The ``feedback`` section of a run config: the RLHF loop's collection stage, in the same run as the training.

::

    feedback:
      project: runs/rlhf-human-feedback.db   # the project file; created by the stage when it does not exist
      generate: {prompts: 400, k: 2, split: train, max_new_tokens: 16, judgments_per_item: 3}
      simulate: {annotators: 3, rater: sentiment, noise: 0.5, edit_rate: 0.1}   # or omit it: people judge

The stage (:mod:`textgym.app.pipeline_feedback`) runs after ``sft`` and before ``preference`` /
``reward_model``, which then read the project (``reward_model.data.feedback`` defaults to
``feedback.project``).  The project path is made absolute (relative to the working directory),
so ``textgym train --resume`` finds it from anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textgym.app.config_coerce import build_dataclass
from textgym.app.config_errors import ConfigError

__all__ = ["FeedbackGenerateConfig", "FeedbackSimulateConfig", "FeedbackPeopleConfig", "FeedbackStageConfig",
           "parse_feedback", "same_project"]

SIMULATE_TASKS = ("rate", "rank", "vote")  # textgym.app.feedback.simulate.TASKS (kept import-free here)


@dataclass
class FeedbackGenerateConfig:
    """How the stage creates the project when it does not exist (``textgym feedback new --model``).

    Attributes:
        model: sample from this model or run folder (default: the run's SFT model if it has an
            ``sft`` stage, else ``model``).
        split: the training env's data split the prompts come from.
        prompts, k: how many prompts, completions per prompt (``k >= 2``).
        max_new_tokens: completion length (default: the training env's).
        temperature: sampling temperature.
        judgments_per_item: annotators per item.
        seed: prompt choice and sampling seed (default: the run's).
    """

    model: str | None = None
    split: str = "train"
    prompts: int = 32
    k: int = 2
    max_new_tokens: int | None = None
    temperature: float = 1.0
    judgments_per_item: int = 2
    seed: int | None = None

    def __post_init__(self):
        for key, low in (("prompts", 1), ("k", 2), ("max_new_tokens", 1), ("judgments_per_item", 1)):
            v = getattr(self, key)
            if v is not None and v < low:
                raise ConfigError(f"must be >= {low}, got {v}", key)
        if not self.temperature > 0:
            raise ConfigError(f"must be > 0, got {self.temperature}", "temperature")


@dataclass
class FeedbackSimulateConfig:
    """Simulated annotators instead of people (``textgym feedback simulate``, through the HTTP API).

    Attributes:
        annotators: how many (named ``sim-1`` ... ``sim-N``; a resumed run reuses them).
        rater: ``sentiment`` | ``reward-model:PATH`` | a registered reward name.
        noise: std of the noise on the standardised rater scores.
        tasks: what each judgment holds (``rate``, ``rank``, ``vote``).
        edit_rate: chance that a judgment also rewrites the best completion into one the rater scores higher.
        seed: the annotators' noise seed (default: the run's).
    """

    annotators: int = 3
    rater: str = "sentiment"
    noise: float = 0.1
    tasks: list[str] = field(default_factory=lambda: list(SIMULATE_TASKS))
    edit_rate: float = 0.0
    seed: int | None = None

    def __post_init__(self):
        if self.annotators < 1:
            raise ConfigError(f"must be >= 1, got {self.annotators}", "annotators")
        if not self.noise >= 0:
            raise ConfigError(f"must be >= 0, got {self.noise}", "noise")
        if not 0 <= self.edit_rate <= 1:
            raise ConfigError(f"a probability from 0 to 1, got {self.edit_rate}", "edit_rate")
        bad = [t for t in self.tasks if t not in SIMULATE_TASKS]
        if bad or not self.tasks:
            raise ConfigError(f"a non-empty list of {', '.join(SIMULATE_TASKS)}, got {self.tasks}", "tasks")


@dataclass
class FeedbackPeopleConfig:
    """People judge the project (no ``simulate``): the run stops until they have.

    Attributes:
        min_complete: the share of items that must have all their judgments before the run continues.
        url: where the served project is reached (for the printed instructions).
    """

    min_complete: float = 1.0
    url: str = "http://127.0.0.1:8765"

    def __post_init__(self):
        if not 0 < self.min_complete <= 1:
            raise ConfigError(f"a share of the items, in (0, 1], got {self.min_complete}", "min_complete")


@dataclass
class FeedbackStageConfig:
    """The ``feedback`` stage: generate the project if needed, then collect (simulated or people).

    Attributes:
        project: the project file (made absolute when the config is read).
        generate: :class:`FeedbackGenerateConfig`.
        simulate: :class:`FeedbackSimulateConfig`; ``None``: people judge.
        people: :class:`FeedbackPeopleConfig` (used without ``simulate``).
    """

    project: str = ""
    generate: FeedbackGenerateConfig = field(default_factory=FeedbackGenerateConfig)
    simulate: FeedbackSimulateConfig | None = None
    people: FeedbackPeopleConfig = field(default_factory=FeedbackPeopleConfig)


def same_project(a: str | None, b: str | None) -> bool:
    """Whether two project paths name the same file (after ``~`` and relative-path resolution)."""
    return a is not None and b is not None and Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def parse_feedback(raw: Any, model_check: Any = None) -> FeedbackStageConfig:
    """The ``feedback`` section as a :class:`FeedbackStageConfig` (project made absolute, rater checked).

    Args:
        raw: the section.
        model_check: ``check_model(name, key)`` for ``generate.model`` (``None``: not checked).

    Raises:
        ConfigError: at ``feedback.<key>``.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping with `project`, `generate`, `simulate` / `people`, got {raw!r}",
                          "feedback")
    stage = build_dataclass(FeedbackStageConfig, raw, "feedback", label="feedback stage")
    if not stage.project:
        raise ConfigError("give the project file, e.g. runs/feedback.db (created when it does not exist)",
                          "feedback.project")
    path = Path(stage.project).expanduser()
    if path.exists() and not path.is_file():
        raise ConfigError(f"{stage.project!r} is not a file", "feedback.project")
    stage.project = str(path.resolve())
    if stage.generate.model is not None and model_check is not None:
        model_check(stage.generate.model, "feedback.generate.model")
    if stage.simulate is not None:
        _check_rater(stage.simulate.rater)
    return stage


def _check_rater(spec: str) -> None:
    import textgym.rewards as rewards

    if spec.startswith("reward-model:"):
        path = Path(spec.split(":", 1)[1]).expanduser()
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path} is not a saved reward model (no config.json)", "feedback.simulate.rater")
    elif spec not in rewards.list():
        raise ConfigError(f"{spec!r}: use reward-model:PATH or a registered reward ({', '.join(rewards.list())})",
                          "feedback.simulate.rater")

"""What every built-in ``evaluate`` metric script of textgym shares: its :class:`evaluate.MetricInfo`.

The scripts under ``rewards/metrics/<name>/<name>.py`` are loaded by local
path with ``evaluate.load``, which copies each script into its modules cache;
they import this module by its absolute name (``textgym.rewards.metric_script``),
so the import works from the copy, offline, like any installed library.
"""

from __future__ import annotations

import datasets
import evaluate

__all__ = ["text_metric_info"]


def text_metric_info(description: str, citation: str, inputs_description: str) -> evaluate.MetricInfo:
    """The info of a metric over ``predictions`` (one string each) and ``references`` (a list of strings each)."""
    return evaluate.MetricInfo(
        description=description,
        citation=citation,
        inputs_description=inputs_description,
        features=datasets.Features(
            {
                "predictions": datasets.Value("string"),
                "references": datasets.Sequence(datasets.Value("string")),
            }
        ),
    )

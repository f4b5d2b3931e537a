"""Silence exactly the load report that a new classification head is expected to produce.

Loading a base model (MiniLM, a causal LM) as ``AutoModelForSequenceClassification``
makes transformers log a ``LOAD REPORT`` table listing the head's weights as
``MISSING`` ("newly initialized").  For textgym's classifier and reward-model
trainers that is the point: the head is new and is trained next.  Printed to a
new user it reads like a failure, so :func:`expected_new_head` drops that one
report while a model loads, and only when every row of it is a ``MISSING``
weight of the named head.  Any other load problem (an ``UNEXPECTED`` or
``MISMATCH`` key, a missing backbone weight) is logged as before.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence

__all__ = ["expected_new_head", "is_new_head_report"]

#: the logger transformers writes load reports to
REPORT_LOGGER = "transformers.modeling_utils"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def is_new_head_report(message: str, head_prefixes: Sequence[str]) -> bool:
    """Whether ``message`` is a load report whose rows are all ``MISSING`` weights under ``head_prefixes``."""
    text = _ANSI.sub("", message)
    if "LOAD REPORT" not in text:
        return False
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) >= 2 and cells[0] and cells[1] and cells[0] != "Key" and not set(cells[0]) <= set("-+"):
            rows.append((cells[0], cells[1]))
    return bool(rows) and all(
        status == "MISSING" and any(key.startswith(p) for p in head_prefixes) for key, status in rows
    )


class _NewHeadFilter(logging.Filter):
    def __init__(self, head_prefixes: Sequence[str]):
        super().__init__()
        self.head_prefixes = tuple(head_prefixes)

    def filter(self, record: logging.LogRecord) -> bool:
        return not is_new_head_report(record.getMessage(), self.head_prefixes)


@contextlib.contextmanager
def expected_new_head(head_prefixes: Sequence[str] = ("classifier.", "score.")) -> Iterator[None]:
    """While loading a model whose classification head is new: drop only the report that says so.

    Args:
        head_prefixes: weight-name prefixes of the head (BERT: ``classifier.``; GPT-2, Llama: ``score.``).
    """
    logger = logging.getLogger(REPORT_LOGGER)
    filt = _NewHeadFilter(head_prefixes)
    logger.addFilter(filt)
    try:
        yield
    finally:
        logger.removeFilter(filt)

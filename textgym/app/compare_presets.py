"""Per-model starting settings of ``textgym compare``, so a default comparison shows learning.

The algorithms' config defaults suit a pretrained model (``learning_rate`` 1e-5 and a KL
penalty that keeps the policy near it).  The tiny presets are randomly initialised: at
1e-5 nothing moves within a test-sized budget, and there is nothing worth staying close to.
:data:`MODEL_PRESETS` holds the settings used for them (measured on
``textgym/TokenCount-v0``: see the README's comparison section); they sit between the
config class defaults and ``--set`` / ``algo_overrides`` (which always win), apply only
to fields an algorithm's config has (minus the fields its ``preset_exempt`` names: online DPO's
``beta`` is DPO's temperature, not a KL weight), and are listed in ``report.md`` with every other
effective setting.  Other models (pretrained ones) keep the class defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["MODEL_PRESETS", "preset_for"]

_RANDOM_INIT = {"learning_rate": 3e-3, "kl_coef": 0.0, "beta": 0.0}  # beta: GRPO's KL-in-the-loss weight
#: ``{model name: (settings, why)}``.
MODEL_PRESETS: dict[str, tuple[dict[str, Any], str]] = {
    name: (_RANDOM_INIT, "randomly initialised tiny model: a large learning rate, no KL penalty (nothing to stay "
                         "close to)")
    for name in ("tiny-char", "tiny-llama", "tiny-gpt2")
}


def preset_for(model: str, fields: Iterable[str]) -> dict[str, Any]:
    """The preset settings of ``model`` restricted to ``fields`` (``{}`` for a model without a preset)."""
    settings = MODEL_PRESETS.get(model, ({}, ""))[0]
    names = set(fields)
    return {k: v for k, v in settings.items() if k in names}

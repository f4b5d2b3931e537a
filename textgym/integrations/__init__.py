"""Bridges to other RL libraries (top floor, beside :mod:`textgym.app`): ``textgym.integrations.rllib``.

Each bridge imports its library only when imported itself; the libraries are optional extras
(``pip install 'textgym[ray]'`` for RLlib).
"""

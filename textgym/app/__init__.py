"""The application layer (top floor): the ``textgym`` CLI, YAML run configs, the train pipeline,
the comparison harness and its reports, run folders, plots, statistics and the bench runner.

It may import every floor below it (core, ``textgym.envs`` / ``textgym.rewards``,
``textgym.agents``); nothing below imports it.
"""

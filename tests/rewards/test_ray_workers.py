"""Ray reward workers (textgym.rewards.RayRewardWorkers): same scores as in-process, and a killed actor loses
no episode and counts none twice.  One Ray instance for the whole module (2 CPUs, no dashboard)."""

import os
import re
import threading
import time

import numpy as np
import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray never reports usage over the network
ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'textgym[ray]'; .ci/run installs it)")

import textgym.rewards as R  # noqa: E402
from textgym.reward_api import RewardError, call_reward  # noqa: E402

from sandbox_helpers import needs_bwrap, sandbox  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_same_scores_and_components_as_in_process():
    prompts = [f"p{i}" for i in range(11)]
    completions = ["a" * i + " b" * (i % 3) for i in range(11)]
    inner = R.WeightedSum({"length": R.LengthReward(target=6), "repetition": R.RepetitionPenalty()},
                          weights={"length": 1.0, "repetition": 0.5})
    want, want_comps = call_reward(inner, prompts, completions)
    workers = R.RayRewardWorkers(inner, actors=2, chunks_per_actor=2)
    try:
        got, got_comps = call_reward(workers, prompts, completions)
        assert got.tolist() == want.tolist()  # bit-identical
        assert sorted(got_comps) == sorted(want_comps)
        for k in want_comps:
            assert got_comps[k].tolist() == want_comps[k].tolist(), k
        # 11 rows in 4 contiguous chunks (3, 3, 3, 2), two per actor
        assert [(c["start"], c["stop"], c["actors"]) for c in workers.last_chunks] == [
            (0, 3, [0]), (3, 6, [1]), (6, 9, [0]), (9, 11, [1])]
        assert workers.name == "ray:weighted-sum"
    finally:
        workers.close()


@pytest.mark.slow  # ~11 s on a loaded 2-core machine
@needs_bwrap
def test_code_sandbox_scores_are_identical_on_two_actors():
    programs = ["def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n",
                "def add(a, b):\n    return 3\n", "syntax error (", "def add(a, b):\n    while True: pass\n",
                "def add(a, b):\n    return a + b if a < 2 else 0\n"]
    tests = [["assert add(1, 2) == 3", "assert add(2, 2) == 4"]] * len(programs)
    prompts = ["# write add(a, b)\n"] * len(programs)
    box = sandbox(timeout=3.0, workers=1)
    want, want_comps = call_reward(box, prompts, programs, columns={"test_list": tests})
    assert want.tolist() == [1.0, 0.0, 0.5, 0.0, 0.0, 0.5]  # hand-checked: add(1,2)=3 passes for the 3rd
    workers = R.RayRewardWorkers(box, actors=2)
    try:
        got, got_comps = call_reward(workers, prompts, programs, columns={"test_list": tests})
        assert got.tolist() == want.tolist()
        assert got_comps["tests_passed"].tolist() == [2, 0, 1, 0, 0, 1]
        assert got_comps["timed_out"].tolist() == [0, 0, 0, 0, 1, 0]
    finally:
        workers.close()


def test_a_killed_actor_loses_no_episode_and_counts_none_twice(tmp_path):
    log = tmp_path / "scored.log"

    def slow_row(prompt, completion):
        """Per-sample reward: logs (pid, row) when it starts a row, takes 0.4 s; the score is the row number."""
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {prompt}\n")
        time.sleep(0.4)
        return float(prompt)

    rows = [str(i) for i in range(8)]
    workers = R.RayRewardWorkers(slow_row, actors=2).start()
    pids = ray.get([a.pid.remote() for a in workers.actors])
    out: dict = {}

    def score():
        try:
            out["scores"] = call_reward(workers, rows, ["x"] * 8)[0]
        except Exception as exc:  # noqa: BLE001 - re-raised in the main thread
            out["error"] = exc

    thread = threading.Thread(target=score)
    thread.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # actor 0 has started its share (rows 0-3) but not finished it
        if log.exists() and any(line.split()[0] == str(pids[0]) for line in log.read_text().splitlines()):
            break
        time.sleep(0.05)
    else:
        pytest.fail("actor 0 never started its share")
    ray.kill(workers.actors[0], no_restart=True)
    thread.join(120)
    assert "error" not in out, out.get("error")
    # every episode scored, in order, exactly once (the score is the row number)
    assert out["scores"].tolist() == [float(i) for i in range(8)]
    assert [c["actors"] for c in workers.last_chunks] == [[0, 1], [1]]  # rows 0-3 went on to actor 1
    started = [line.split() for line in log.read_text().splitlines()]
    by_killed = [r for p, r in started if p == str(pids[0])]
    assert 1 <= len(by_killed) < 4  # killed mid-share
    assert sorted(r for p, r in started if p == str(pids[1])) == rows  # actor 1 scored all 8 rows once
    assert workers.actors[0] is None
    # the next batch replaces the dead actor and scores the same
    again = call_reward(workers, rows, ["x"] * 8)[0]
    assert again.tolist() == out["scores"].tolist() and workers.restarts == 1 and workers.actors[0] is not None
    workers.close()


def test_an_error_of_the_reward_names_the_row_of_the_whole_batch():
    def picky(prompt, completion):
        if completion == "bad":
            raise ValueError("no thanks")
        return 1.0

    workers = R.RayRewardWorkers(picky, actors=2)
    try:
        completions = ["ok"] * 5 + ["bad"] + ["ok"] * 2
        with pytest.raises(RewardError, match=r"raised ValueError on sample 5 .*no thanks"):
            call_reward(workers, ["p"] * 8, completions)
        scores, comps = call_reward(workers, ["p"] * 8, completions, on_error="penalty", penalty=-1.0)
        # the wrapper is a batched reward: call_reward penalises its whole batch (a per-sample function
        # in-process would lose only row 5)
        assert scores.tolist() == [-1.0] * 8 and comps["reward_error"].tolist() == [1.0] * 8
    finally:
        workers.close()


def test_bad_arguments_are_refused_before_any_work():
    for kw, msg in (({"actors": 0}, "actors must be an integer >= 1, got 0"),
                    ({"chunks_per_actor": 1.5}, "chunks_per_actor must be an integer >= 1"),
                    ({"num_cpus": -1}, "num_cpus must be >= 0")):
        with pytest.raises(ValueError, match=msg):
            R.RayRewardWorkers("length", **kw)


def test_config_backend_ray_builds_workers_and_bad_values_are_one_line():
    from textgym.app.config import ConfigError, build_reward, check_reward_spec

    spec = {"name": "length", "target": 4, "backend": "ray", "actors": 3}
    check_reward_spec(spec, "env.kwargs.reward")
    built = build_reward(spec)
    assert isinstance(built, R.RayRewardWorkers) and built.num_actors == 3
    assert built.reward.target == 4
    check_reward_spec({"weighted": {"length": 1.0}, "backend": "ray"}, "r")
    assert build_reward({"weighted": {"length": 1.0}, "backend": "ray"}).num_actors == 2
    local = build_reward({"name": "length", "backend": "local"})
    assert isinstance(local, R.LengthReward)
    for bad, where, msg in (
            ({"name": "length", "backend": "spark"}, "r.backend", "backend is 'local' (in this process) or 'ray'"),
            ({"name": "length", "backend": "ray", "actors": 0}, "r.actors", "actors must be an integer >= 1"),
            ({"name": "length", "actors": 2}, "r.actors", "it needs backend: ray"),
            ({"name": "lenght", "backend": "ray"}, "r.name", "unknown reward 'lenght'")):
        with pytest.raises(ConfigError, match=re.escape(msg)) as info:
            check_reward_spec(bad, "r")
        assert info.value.key == where and "\n" not in str(info.value)


def test_config_backend_ray_without_ray_says_how_to_install(monkeypatch):
    import importlib.util

    from textgym.app.config import ConfigError, check_reward_spec

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(ConfigError, match=re.escape("pip install 'textgym[ray]'")) as info:
        check_reward_spec({"name": "length", "backend": "ray"}, "r")
    assert info.value.key == "r.backend"

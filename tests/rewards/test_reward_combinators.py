"""WeightedSum (sum and components) and RunningNormalizer (Welford statistics, save/restore)."""

import numpy as np
import pytest

import textgym.rewards as R
from textgym.reward_api import call_reward


def test_weighted_sum_total_and_components():
    ws = R.WeightedSum({"bonus": R.ConstantReward(1.0), "chars": R.LengthReward(unit="chars")},
                       weights={"bonus": 2.0, "chars": 0.5})
    scores, comps = call_reward(ws, ["p", "p", "p"], ["ab", "abcd", ""])
    assert scores.tolist() == [2 + 1, 2 + 2, 2 + 0]
    assert comps["bonus"].tolist() == [1, 1, 1]
    assert comps["chars"].tolist() == [2, 4, 0]


def test_weighted_sum_sequence_names_weights_and_nested_components():
    norm = R.RunningNormalizer(R.LengthReward(unit="chars"))
    ws = R.WeightedSum([R.ConstantReward(3.0), ("norm", norm), "constant"], weights=[1.0, 0.0, -1.0])
    assert list(ws.components) == ["constant", "norm", "constant_2"]
    scores, comps = call_reward(ws, ["p", "p"], ["a", "abc"])
    assert scores.tolist() == [3.0 - 0.0, 3.0 - 0.0]  # registered "constant" defaults to 0
    assert comps["norm/raw"].tolist() == [1.0, 3.0]  # the normaliser's own component, prefixed
    assert comps["norm"].tolist() == pytest.approx([-1.0, 1.0], abs=1e-6)  # mean 2, std 1


def test_weighted_sum_plain_callables_and_errors():
    ws = R.WeightedSum({"upper": lambda prompt, completion: float(completion.isupper())}, weights={"upper": 3})
    scores, _ = call_reward(ws, ["p", "p"], ["ABC", "abc"])
    assert scores.tolist() == [3.0, 0.0]
    with pytest.raises(ValueError, match="unknown components"):
        R.WeightedSum({"a": R.ConstantReward()}, weights={"b": 1.0})
    with pytest.raises(ValueError, match="2 weights for 1 rewards"):
        R.WeightedSum([R.ConstantReward()], weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="at least one"):
        R.WeightedSum({})


def test_weighted_sum_penalises_failing_component():
    def broken(prompt, completion):
        return float("nan") if completion == "bad" else 1.0

    ws = R.WeightedSum({"broken": broken, "one": R.ConstantReward(1.0)}, on_error="penalty", penalty=-5.0)
    scores, comps = call_reward(ws, ["p", "p"], ["ok", "bad"])
    assert scores.tolist() == [2.0, -4.0]
    assert comps["broken/reward_error"].tolist() == [0.0, 1.0]


def test_running_normalizer_statistics_match_numpy():
    values = iter([[1.0, 2.0, 3.0], [4.0, 5.0], [10.0]])
    norm = R.RunningNormalizer(lambda prompts, completions: np.array(next(values), np.float32))
    seen = []
    for batch in ([""] * 3, [""] * 2, [""]):
        scores, comps = call_reward(norm, batch, batch)
        seen.extend(comps["raw"].tolist())
        # the batch is added first, then normalised with the population std of everything seen
        expected = (np.array(comps["raw"]) - np.mean(seen)) / (np.std(seen) + 1e-8)
        assert scores.tolist() == pytest.approx(expected.tolist(), rel=1e-5)
    state = norm.state_dict()
    assert state["count"] == 6
    assert state["mean"] == pytest.approx(25 / 6)
    assert state["m2"] == pytest.approx(np.var(seen) * 6)


def test_running_normalizer_save_restore_and_frozen_stats():
    norm = R.RunningNormalizer(R.LengthReward(unit="chars"), clip=1.5)
    call_reward(norm, ["p"] * 4, ["a", "ab", "abc", "abcd"])  # mean 2.5, var 1.25
    restored = R.RunningNormalizer(R.LengthReward(unit="chars"), clip=1.5, update=False)
    restored.load_state_dict(norm.state_dict())
    scores, _ = call_reward(restored, ["p"] * 2, ["abc", "x" * 10])
    assert scores.tolist() == pytest.approx([0.5 / np.sqrt(1.25), 1.5], rel=1e-5)  # second one clipped
    assert restored.state_dict() == norm.state_dict()  # update=False leaves the statistics alone
    with pytest.raises(ValueError, match="invalid normalizer state"):
        restored.load_state_dict({"count": -1, "mean": 0, "m2": 0})


def test_running_normalizer_first_single_sample_and_center_only():
    norm = R.RunningNormalizer(R.ConstantReward(7.0), scale=False)
    scores, _ = call_reward(norm, ["p"], ["x"])
    assert scores.tolist() == [0.0]
    assert norm.std == 1.0  # fewer than two samples

"""A checkpoint written on a GPU resumes on a machine without one (``OnPolicyAlgorithm.load`` maps to the CPU).

No GPU is needed: the checkpoint's storages are tagged ``cuda:0`` while it is
saved (``torch.serialization.location_tag``), which is what a GPU run writes
for its optimizer state; loading such a file without ``map_location`` fails on
a CPU-only machine.
"""

from __future__ import annotations

import pytest
import torch
import torch.serialization

from agent_helpers import char_env
from algo_helpers import QUIET, params_of
from textgym.agents import PPO, PPOConfig


def _save_as_if_on_gpu(algo, path, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
        algo.save(path)


def test_gpu_tagged_checkpoint_resumes_exactly_on_cpu(tmp_path, monkeypatch):
    make = lambda: PPO("tiny-char", char_env(4), PPOConfig(n_epochs=1, learning_rate=1e-3, **QUIET))  # noqa: E731
    a = make()
    a.learn(iterations=1)
    _save_as_if_on_gpu(a, tmp_path / "ckpt", monkeypatch)
    if not torch.cuda.is_available():  # the file really is a "GPU" checkpoint: a plain load refuses it here
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "ckpt" / "trainer_state.pt", weights_only=False)

    b = PPO.load(tmp_path / "ckpt", char_env(4), device=None)
    assert b.iteration == 1 and b.policy.device.type == "cpu"
    state = [v for s in b.optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    assert state and all(v.device.type == "cpu" for v in state)
    # the resumed run continues exactly as the uninterrupted one
    m_a, m_b = a.train_step(), b.train_step()
    for k in ("reward/score", "loss/policy", "loss/value", "stats/kl_ref", "stats/approx_kl"):
        assert m_b[k] == pytest.approx(m_a[k], rel=1e-5, abs=1e-7), k
    for p, q in zip(params_of(a), params_of(b)):
        torch.testing.assert_close(q, p, atol=1e-6, rtol=1e-5)

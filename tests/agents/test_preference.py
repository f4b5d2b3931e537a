"""DPO / IPO / KTO: the losses against hand values, and the trainer on tiny-llama."""

import math

import pytest
import torch

from textgym.agents.trainers.preference import PreferenceConfig, PreferenceTrainer
from textgym.agents.common.preference_losses import dpo_loss, kto_loss, sequence_logprobs

LN3 = math.log(3.0)


def test_sequence_logprobs_sums_the_labelled_tokens_only():
    # V = 2; position 0 predicts token 1 with p = 3/4, position 1 predicts token 0 with p = 3/4
    logits = torch.tensor([[[0.0, LN3], [LN3, 0.0], [5.0, -5.0], [0.0, 0.0]]])  # (1, 4, 2)
    labels = torch.tensor([[-100, 1, 0, -100]])  # the prompt token and the padding carry no label
    assert sequence_logprobs(logits, labels).tolist() == pytest.approx([2 * math.log(0.75)], abs=1e-6)
    assert sequence_logprobs(logits, torch.full((1, 4), -100)).tolist() == [0.0]


def test_dpo_and_ipo_losses_match_hand_values():
    pc, pr = torch.tensor([-1.0], requires_grad=True), torch.tensor([-2.0])
    rc, rr = torch.tensor([-1.5]), torch.tensor([-1.5])
    # h = (-1 + 1.5) - (-2 + 1.5) = 1; beta = 0.5
    loss, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=0.5)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-0.5)), abs=1e-6)  # -log sigmoid(0.5) = 0.474077
    assert (chosen.item(), rejected.item()) == pytest.approx((0.25, -0.25))
    loss.sum().backward()
    assert pc.grad.item() == pytest.approx(-0.5 / (1 + math.exp(0.5)), abs=1e-6)  # -beta * sigmoid(-beta h)
    smooth, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.5, label_smoothing=0.1)
    assert smooth.item() == pytest.approx(0.9 * 0.474077 + 0.1 * 0.974077, abs=1e-5)
    assert dpo_loss(pc, pr, rc, rr, beta=0.5, loss_type="ipo")[0].item() == pytest.approx(0.0, abs=1e-7)
    assert dpo_loss(pc, pr, rc, rr, beta=0.25, loss_type="ipo")[0].item() == pytest.approx(1.0)  # (1 - 2)^2
    same = torch.tensor([-3.0, -7.0])
    assert dpo_loss(same, same.flip(0), same, same.flip(0), beta=0.1)[0].tolist() == pytest.approx([math.log(2)] * 2)
    with pytest.raises(ValueError, match="beta must be > 0"):
        dpo_loss(pc, pr, rc, rr, beta=0.0)


def test_kto_loss_matches_hand_values():
    pi, ref = torch.tensor([0.0, -2.0]), torch.tensor([-1.0, -1.0])  # log ratios r = [1, -1]
    desirable = torch.tensor([True, False])
    losses, rewards = kto_loss(pi, ref, desirable, 0.5, beta=1.0)
    assert losses.tolist() == pytest.approx([1 - 1 / (1 + math.exp(-0.5)), 1 - 1 / (1 + math.exp(-1.5))], abs=1e-6)
    assert rewards.tolist() == [1.0, -1.0]
    clamped, _ = kto_loss(pi, ref, desirable, -3.0, beta=1.0, desirable_weight=2.0)  # z0 < 0 counts as 0
    assert clamped.tolist() == pytest.approx([2 * (1 - 1 / (1 + math.exp(-1.0))), 1 - 1 / (1 + math.exp(-1.0))])


PAIRS = [{"prompt": f"{w}:", "chosen": " yes yes", "rejected": " no no"} for w in "abcdefgh"]


def _trainer(rows=PAIRS, **kw):
    cfg = dict(max_steps=30, batch_size=4, learning_rate=3e-3, beta=0.5, progress=False, max_length=32,
               add_eos=False, lr_schedule="constant")
    return PreferenceTrainer("tiny-llama", train_data=rows, eval_data=rows, config=PreferenceConfig(**{**cfg, **kw}))


def test_dpo_starts_at_log_two_and_learns_the_preference(tmp_path):
    rows = PAIRS + [{"prompt": "z:", "chosen": " same", "rejected": " same"}]
    trainer = _trainer(rows)
    assert trainer.stats["train_pairs"] == 8 and trainer.stats["train_dropped_identical"] == 1
    before = trainer.evaluate()
    assert before["loss"] == pytest.approx(math.log(2), abs=1e-5) and before["accuracy"] == 0.0
    out = trainer.train()
    assert trainer.history[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)  # policy = reference at step 1
    assert out["eval/accuracy"] == 1.0 and out["eval/margin"] > 0.5 and out["eval/loss"] < 0.4
    saved = trainer.save(tmp_path / "dpo")
    assert (saved / "textgym_preference.json").is_file() and (saved / "config.json").is_file()


def test_ipo_and_lora_reference_is_the_adapter_disabled_model():
    trainer = _trainer(loss_type="ipo", lora=True, lora_dropout=0.0, lora_r=4, max_steps=20, learning_rate=1e-2)
    # IPO at the start: h = 0, loss = (0 - 1 / (2 * 0.5))^2 = 1
    assert trainer.evaluate()["loss"] == pytest.approx(1.0, abs=1e-5)
    out = trainer.train()
    assert out["eval/loss"] < 0.5 and out["eval/accuracy"] == 1.0
    item = trainer.train_items[0]
    with torch.no_grad():
        policy = trainer._logps(trainer.model, [item["chosen"]])
        with trainer.model.disable_adapter():  # the base weights did not move: the reference is still exact
            base = trainer._logps(trainer.model, [item["chosen"]])
    assert base.item() == pytest.approx(item["ref"][0].item(), abs=1e-5) and abs(policy.item() - base.item()) > 0.1


def test_kto_on_unpaired_labels():
    rows = [{"prompt": f"{w}:", "completion": " yes yes" if i % 2 else " no no", "label": bool(i % 2)}
            for i, w in enumerate("abcdefgh")]
    trainer = _trainer(rows, loss_type="kto", beta=1.0)
    assert trainer.stats["train_examples"] == 8
    start = trainer.evaluate()  # policy = reference: r = 0, z0 = 0, every loss 1 - sigmoid(0) = 0.5
    assert start["loss"] == pytest.approx(0.5, abs=1e-5) and start["kl_ref_point"] == pytest.approx(0.0, abs=1e-5)
    out = trainer.train()
    assert out["eval/desirable"] > 0 > out["eval/undesirable"] and out["eval/loss"] < 0.45
    assert all(h.get("kl_ref_point", 0.0) >= 0.0 for h in trainer.history)


def test_bad_rows_and_settings_fail_with_one_line():
    with pytest.raises(ValueError, match=r"train row 0: a preference row needs 'prompt' and 'chosen' \+ 'rejected'"):
        _trainer([{"prompt": "a", "completion": "b"}])
    with pytest.raises(ValueError, match="loss_type must be one of dpo, ipo, kto"):
        PreferenceConfig(loss_type="orpo").check()
    with pytest.raises(ValueError, match="no usable train preference left"):
        _trainer([{"prompt": "a", "chosen": "x", "rejected": "x"}])

"""Reward-model trainer: Bradley-Terry arithmetic, last-token scoring, pair filtering, training, saving."""

import math
import random

import numpy as np
import pytest
import torch
import transformers

import textgym.rewards as R
from textgym import models
from textgym.agents.trainers.backbones import rehead
from textgym.agents.trainers.reward_model import (
    RewardModelConfig,
    RewardModelTrainer,
    bradley_terry_loss,
    last_token_index,
    load_reward_function,
    sequence_scores,
)

GOOD, BAD = "great lovely wonderful nice".split(), "awful terrible horrible nasty".split()


def toy_pairs(n, seed):
    rng = random.Random(seed)
    return [{"prompt": "Say:", "chosen": f" a {rng.choice(GOOD)} day", "rejected": f" a {rng.choice(BAD)} day"}
            for _ in range(n)]


def test_bradley_terry_loss_hand_values():
    rc, rr = torch.tensor([2.0, 0.5]), torch.tensor([1.0, 1.5])
    # -log sigmoid(d) = log(1 + exp(-d)); d = r_c - r_r = [1, -1]
    plain = [math.log(1 + math.exp(-1.0)), math.log(1 + math.exp(1.0))]  # [0.31326, 1.31326]
    assert bradley_terry_loss(rc, rr).tolist() == pytest.approx(plain, abs=1e-6)
    # margin 0.5: d = [0.5, -1.5]
    margin = [math.log(1 + math.exp(-0.5)), math.log(1 + math.exp(1.5))]  # [0.47408, 1.70141]
    assert bradley_terry_loss(rc, rr, 0.5).tolist() == pytest.approx(margin, abs=1e-6)
    # centering 0.1 * (r_c + r_r)^2 = 0.1 * [3.0^2, 2.0^2] = [0.9, 0.4]
    centered = [plain[0] + 0.9, plain[1] + 0.4]
    assert bradley_terry_loss(rc, rr, center_coef=0.1).tolist() == pytest.approx(centered, abs=1e-6)
    # per-pair margins, and no overflow for a huge gap: softplus(1000) = 1000
    assert bradley_terry_loss(torch.tensor([0.0, 0.0]), torch.tensor([0.0, 1000.0]), torch.tensor([0.0, 0.0])
                              ).tolist() == pytest.approx([math.log(2.0), 1000.0])


def test_last_token_index_from_the_mask_for_any_padding_side():
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert last_token_index(right).tolist() == [2, 4, 0]
    assert last_token_index(left).tolist() == [4, 4, 4]


@pytest.fixture(scope="module")
def gpt2_rm():
    """tiny-gpt2 with a 1-output head: pad == EOS, the case where pad-id searches go wrong."""
    model, tok = models.load("tiny-gpt2", kind="classifier", seed=0)
    return rehead(model, 1, seed=0), tok


def test_score_read_at_last_real_token_for_left_right_padding_and_pad_eq_eos(gpt2_rm):
    model, tok = gpt2_rm
    eos = tok.eos_token
    texts = [f"hello{eos} world", f"a much longer text that ends with the end token{eos}", "short"]
    rows = [tok(t)["input_ids"] for t in texts]
    assert tok.pad_token_id == tok.eos_token_id and tok.eos_token_id in rows[0] and rows[1][-1] == tok.eos_token_id
    with torch.no_grad():
        expected = [float(model.score(model.transformer(input_ids=torch.tensor([r])).last_hidden_state[0, -1])[0])
                    for r in rows]
        width = max(len(r) for r in rows)
        pad = tok.pad_token_id
        right = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        left = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
        mask_r = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        mask_l = mask_r.flip(-1)
        got_r = sequence_scores(model, right, mask_r).tolist()
        got_l = sequence_scores(model, left, mask_l).tolist()
    assert got_r == pytest.approx(expected, abs=1e-5)
    assert got_l == pytest.approx(expected, abs=1e-5)


def test_pairs_identical_after_truncation_are_dropped_and_counted(gpt2_rm):
    model, tok = gpt2_rm
    long_prompt = "the same long question " * 20
    rows = [{"prompt": long_prompt, "chosen": " yes", "rejected": " no"},  # differ only beyond max_length
            {"prompt": "q", "chosen": " same", "rejected": " same"},  # identical anyway
            {"prompt": "q", "chosen": " yes", "rejected": " no"}]
    cfg = RewardModelConfig(max_length=16, truncation="right", progress=False)
    trainer = RewardModelTrainer(model, tok, train_data=rows, config=cfg)
    assert trainer.stats["train_pairs"] == 1 and trainer.stats["train_dropped_identical"] == 2
    assert trainer.stats["train_at_max_length"] == 1
    left = RewardModelTrainer(model, tok, train_data=rows, config=RewardModelConfig(max_length=16, progress=False))
    assert left.stats["train_pairs"] == 2  # keeping the end (the completions) keeps the long pair


def test_accuracy_above_chance_and_saved_model_scores_match_the_reward_api(tmp_path):
    cfg = RewardModelConfig(learning_rate=3e-3, max_steps=12, batch_size=8, progress=False, max_length=32)
    trainer = RewardModelTrainer("tiny-gpt2", train_data=toy_pairs(48, 0), eval_data=toy_pairs(32, 1), config=cfg)
    before = trainer.evaluate()
    result = trainer.train()
    assert result["eval/accuracy"] >= 0.9 and result["eval/loss"] < math.log(2)
    assert result["eval/loss"] < before["loss"] - 0.1, (before, result)  # training, not the initial weights
    path = trainer.save(tmp_path / "rm")
    prompts, completions = ["Say:", "Say:", "Say:"], [" a great day", " a nasty day", " a great day<|endoftext|>x"]
    rows = [{"prompt": p, "chosen": c, "rejected": " z"} for p, c in zip(prompts, completions)]
    with torch.no_grad():
        expected = trainer.pair_scores(trainer.encode_pairs(rows, "check"))[0].numpy()
    assert expected[0] > expected[1]
    for reward in (R.RewardModelReward(str(path)), R.make("reward-model", model=str(path)), load_reward_function(path)):
        np.testing.assert_allclose(reward(prompts, completions), expected, atol=1e-5)


def test_bert_style_encoder_uses_pooled_output_and_round_trips(tmp_path):
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "say", ":", "a", "day"] + GOOD + BAD
    tok = transformers.BertTokenizer(vocab={w: i for i, w in enumerate(words)})
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=64, num_labels=1)
    model = transformers.BertForSequenceClassification(cfg)
    trainer = RewardModelTrainer(model, tok, train_data=toy_pairs(48, 0), eval_data=toy_pairs(32, 1),
                                 config=RewardModelConfig(learning_rate=1e-3, max_steps=10, batch_size=8,
                                                          progress=False))
    assert trainer.max_length == 64  # capped at the model's positions, like the reward does
    assert trainer.train()["eval/accuracy"] >= 0.9
    path = trainer.save(tmp_path / "bert-rm")
    rows = [{"prompt": "Say:", "chosen": " a lovely day", "rejected": " a horrible day"}]
    with torch.no_grad():
        rc, rr = trainer.pair_scores(trainer.encode_pairs(rows, "check"))
        direct = model(**tok(["Say: a lovely day"], return_tensors="pt")).logits[0, 0]
    assert float(rc[0]) == pytest.approx(float(direct), abs=1e-5)
    got = R.make("reward-model", model=str(path))(["Say:"] * 2, [" a lovely day", " a horrible day"])
    np.testing.assert_allclose(got, [float(rc[0]), float(rr[0])], atol=1e-5)

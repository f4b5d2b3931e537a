"""Export -> training: pairs from simulated annotators train a tiny reward model that beats chance on held-out pairs."""

import random

import numpy as np
import pytest

pytest.importorskip("fastapi")

from textgym.app.feedback.db import Project  # noqa: E402
from textgym.app.feedback.export import training_pairs  # noqa: E402
from textgym.app.feedback.serve import BackgroundServer  # noqa: E402
from textgym.app.feedback.simulate import run_simulation  # noqa: E402

GOOD, BAD = "great lovely wonderful nice".split(), "awful terrible horrible nasty".split()


def word_rater(prompts, completions):
    """+1 per good word, -1 per bad word: what the simulated people like."""
    return np.array([sum((w in GOOD) - (w in BAD) for w in c.split()) for c in completions], dtype=np.float64)


def test_pairs_from_simulated_annotators_train_a_reward_model_above_chance(tmp_path):
    from textgym.agents import RewardModelConfig, RewardModelTrainer

    rng = random.Random(0)
    items = []
    for _ in range(300):
        good, bad = f" a {rng.choice(GOOD)} day", f" a {rng.choice(BAD)} day"
        items.append({"prompt": "Say:", "completions": [good, bad] if rng.random() < 0.5 else [bad, good]})
    p = Project(tmp_path / "fb.db", create=True, judgments_per_item=3)
    p.add_items(items)
    tokens = {f"sim-{i}": p.add_annotator(f"sim-{i}") for i in range(3)}
    with BackgroundServer(p) as url:
        res = run_simulation(url, tokens, word_rater, noise=2.0, seed=0, tasks=("vote",))
    assert res.errors == [] and len(res.acks) == 900
    train = training_pairs(p.path, "train")
    test = training_pairs(p.path, "test")
    assert len(train) >= 200 and len(test) >= 20
    assert not {r["item_id"] for r in train} & {r["item_id"] for r in test}
    # the annotators are noisy (noise 2 on standardised scores: ~24% of votes flipped), the majority less so
    right = np.mean([word_rater([""], [r["chosen"]])[0] > word_rater([""], [r["rejected"]])[0] for r in train])
    assert 0.7 <= right < 1.0
    cfg = RewardModelConfig(learning_rate=3e-3, max_steps=12, batch_size=8, progress=False, max_length=32)
    trainer = RewardModelTrainer("tiny-gpt2", train_data=train, eval_data=test, config=cfg)
    result = trainer.train()
    assert result["eval/accuracy"] >= 0.7, result  # chance: 0.5
    print(f"majority right {right:.3f}; held-out accuracy {result['eval/accuracy']:.3f} on {len(test)} pairs")

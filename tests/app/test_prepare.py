"""The preparation step trains textgym's sentiment classifier once, for runs that use the ``sentiment`` reward."""

import pytest

import textgym.rewards as R
from textgym.app.prepare import prepare_rewards, reward_names


def test_reward_names_of_every_spec_form():
    assert reward_names("sentiment") == {"sentiment"}
    assert reward_names({"name": "sentiment", "positive_label": 1}) == {"sentiment"}
    assert reward_names({"name": "sentiment", "model": "some/dir"}) == set()  # brings its own model
    assert reward_names({"weighted": {"sentiment": 0.5, "rougeL": 0.5}}) == {"sentiment", "rougeL"}
    assert reward_names(None) == set() and reward_names(lambda p, c: 0.0) == set()


@pytest.fixture
def fake_training(tmp_path, monkeypatch):
    """``train_sentiment_classifier`` replaced by saving a tiny classifier (the real one takes minutes)."""
    from textgym.agents.trainers import sentiment_classifier as sc
    from textgym.models import load

    target = tmp_path / "clf"
    monkeypatch.setenv("TEXTGYM_SENTIMENT_MODEL", str(target))
    calls = []

    def fake_train(output_dir=None, **kw):
        calls.append(output_dir)
        model, tok = load("tiny-gpt2", kind="classifier")
        model.config.id2label, model.config.label2id = {0: "NEG", 1: "POS"}, {"NEG": 0, "POS": 1}
        model.save_pretrained(output_dir)
        tok.save_pretrained(output_dir)

    monkeypatch.setattr(sc, "train_sentiment_classifier", fake_train)
    return target, calls


def test_prepare_trains_the_sentiment_classifier_once_then_the_reward_loads_it(fake_training):
    target, calls = fake_training
    with pytest.raises(ValueError, match="not trained yet.*python -m textgym.agents.trainers.sentiment_classifier"):
        R.make("sentiment")  # the reward layer never trains: it says how to
    prepare_rewards("textgym/TokenCount-v0")  # its default reward needs no model
    prepare_rewards("textgym/CommonGen-v0", {"name": "sentiment", "model": str(target)})  # brings its own
    assert calls == []
    prepare_rewards("textgym/IMDB-v0")  # the task's default reward is "sentiment"
    assert calls == [target] and (target / "config.json").is_file()
    assert R.make("sentiment").label_index == 1  # "POS"
    prepare_rewards("textgym/CommonGen-v0", {"weighted": {"sentiment": 1.0}})  # cached now: no second training
    assert len(calls) == 1

"""A new classifier head loads quietly; any other load problem still shows transformers' LOAD REPORT."""

import logging

import pytest
import transformers

from textgym.agents.trainers.backbones import load_classifier_backbone
from textgym.agents.trainers.load_report import expected_new_head, is_new_head_report


@pytest.fixture
def reports():
    """The messages transformers logs while loading models (its loggers do not propagate to pytest's)."""
    got = []

    class Keep(logging.Handler):
        def emit(self, record):
            got.append(record.getMessage())

    logger = logging.getLogger("transformers.modeling_utils")
    handler = Keep(level=logging.WARNING)
    logger.addHandler(handler)
    yield got
    logger.removeHandler(handler)


def tiny_bert(cls, path):
    cfg = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=20, max_position_embeddings=32)
    cls(cfg).save_pretrained(path)
    transformers.PreTrainedTokenizerFast(tokenizer_object=_word_tokenizer(), pad_token="[PAD]").save_pretrained(path)
    return path


def _word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel(vocab={"[PAD]": 0, "[UNK]": 1, "good": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return tok


def test_a_new_classifier_head_loads_without_a_load_report(tmp_path, reports):
    path = tiny_bert(transformers.BertModel, tmp_path / "base")  # a backbone without a classification head
    model, _ = load_classifier_backbone(str(path), 2)
    assert model.config.num_labels == 2
    assert not [m for m in reports if "LOAD REPORT" in m]


def test_other_load_problems_still_show(tmp_path, reports):
    path = tiny_bert(transformers.BertForMaskedLM, tmp_path / "mlm")  # its MLM head is UNEXPECTED for a classifier
    with expected_new_head():
        transformers.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    shown = [m for m in reports if "LOAD REPORT" in m]
    assert len(shown) == 1 and "UNEXPECTED" in shown[0] and "classifier.weight" in shown[0]


def test_only_missing_head_rows_count_as_the_expected_report():
    head_only = ("\x1b[1mBertForSequenceClassification LOAD REPORT\x1b[0m from: x\n"
                 "Key               | Status  | \n------------------+---------+-\n"
                 "classifier.weight | \x1b[31mMISSING\x1b[0m | \nclassifier.bias   | MISSING | \n\nNotes:\n- MISSING:\tnew")
    assert is_new_head_report(head_only, ("classifier.",))
    assert not is_new_head_report(head_only, ("score.",))  # another model's head
    backbone = head_only.replace("classifier.bias  ", "bert.pooler.dense")
    assert not is_new_head_report(backbone, ("classifier.",))  # a backbone weight missing is a real problem
    assert not is_new_head_report("some other warning", ("classifier.",))

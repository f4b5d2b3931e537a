"""SFT trainer: label masking, token-mean loss under accumulation, packing, memorisation, LoRA, saving."""

import json
import math

import pytest
import torch

from textgym import models
from textgym.agents.trainers.sft import SFTConfig, SFTTrainer, completion_nll
from textgym.agents.trainers.sft_data import SFTExample, collate_sft, encode_chat, encode_pair, pack_examples, task_rows

PAIRS = [
    {"prompt": "Q: colour of the sky?\nA:", "completion": " blue"},
    {"prompt": "Q: two plus two?\nA:", "completion": " four"},
]


@pytest.fixture(scope="module")
def tiny_llama():
    return models.load("tiny-llama", seed=0)


def test_labels_mask_prompt_and_padding_but_keep_eos_when_pad_is_eos(gpt2_tok):
    eos = gpt2_tok.eos_token_id
    assert gpt2_tok.pad_token_id == eos  # the hard case: padding and EOS share an id
    a = SFTExample([10, 11, 12, eos], [False, False, True, True])  # prompt 10 11, completion 12 + EOS
    b = SFTExample([10, eos], [False, True])  # an empty completion: only its EOS is a target
    batch = collate_sft([a, b], pad_token_id=eos)
    assert batch["input_ids"].tolist() == [[10, 11, 12, eos], [10, eos, eos, eos]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 12, eos], [-100, eos, -100, -100]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3], [0, 1, 1, 1]]

    # The same from text: prompt tokens masked, completion tokens and the EOS kept.
    ex = encode_pair(gpt2_tok, "Hello", " world", max_length=32)
    p, c = gpt2_tok("Hello")["input_ids"], gpt2_tok(" world")["input_ids"]
    assert ex.input_ids == p + c + [eos]
    labels = collate_sft([ex, SFTExample([1, 2], [False, True])], pad_token_id=eos)["labels"][0]
    assert labels.tolist() == [-100] * len(p) + c + [eos]


def test_truncation_keeps_the_completion_and_an_empty_prompt_gets_a_context_token(gpt2_tok):
    long_prompt = " ".join(["word"] * 50)
    ex = encode_pair(gpt2_tok, long_prompt, " yes", max_length=8)
    assert len(ex) == 8 and ex.truncated
    assert ex.train_mask == [False] * 6 + [True, True]  # " yes" + EOS survive, prompt cut from the left
    assert ex.input_ids[-2:] == gpt2_tok(" yes")["input_ids"] + [gpt2_tok.eos_token_id]
    empty = encode_pair(gpt2_tok, "", "hi", max_length=8)
    assert empty.train_mask[0] is False and empty.num_targets == len(gpt2_tok("hi")["input_ids"]) + 1


def test_chat_template_targets_only_assistant_turns_with_their_eos(gpt2_tok):
    tok = models.load_tokenizer("tiny-gpt2")
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"},
                {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "Ciao"}]
    ex = encode_chat(tok, messages, max_length=128)
    assert tok.decode(ex.input_ids) == tok.apply_chat_template(messages, tokenize=False)
    targets = [i for i, m in zip(ex.input_ids, ex.train_mask) if m]
    assert tok.decode(targets) == "Hello there<|endoftext|>Ciao<|endoftext|>"
    with pytest.raises(ValueError, match="chat template"):
        encode_chat(gpt2_tok, messages, max_length=128)


def _hand_token_mean(model, examples):
    """Sum of -log p(target) over all targets of all examples, one unpadded example at a time, / count."""
    total, count = 0.0, 0
    with torch.no_grad():
        for e in examples:
            logp = torch.log_softmax(model(input_ids=torch.tensor([e.input_ids])).logits[0].float(), -1)
            for t in range(1, len(e)):
                if e.train_mask[t]:
                    total -= float(logp[t - 1, e.input_ids[t]])
                    count += 1
    return total / count


def test_token_mean_loss_and_gradients_are_equal_under_accumulation(tiny_llama):
    model, tok = tiny_llama
    rows = [{"prompt": "a b c d e f", "completion": " g h i j k l m"}, {"prompt": "x", "completion": " y"},
            {"prompt": "p q", "completion": " r s t"}]
    trainer = SFTTrainer(model, tok, train_data=rows, config=SFTConfig(progress=False))
    ex = trainer.train_examples
    assert [e.num_targets for e in ex] == [8, 2, 4]  # completion tokens + EOS
    full = [trainer.collate(ex)]
    accum = [trainer.collate(ex[:1]), trainer.collate(ex[1:])]
    hand = _hand_token_mean(model, ex)
    assert trainer.compute_loss(full) == pytest.approx(hand, abs=1e-5)
    assert trainer.compute_loss(accum) == pytest.approx(hand, abs=1e-5)
    # A mean of per-micro-batch means would weigh the 8-token example like the 6 others together.
    with torch.no_grad():
        per_mb = [completion_nll(model, mb) for mb in accum]
    assert abs(sum(float(s) / n for s, n in per_mb) / 2 - hand) > 1e-3

    def grads(groups):
        model.zero_grad(set_to_none=True)
        trainer.compute_loss(groups, backward=True)
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    torch.testing.assert_close(grads(accum), grads(full), rtol=1e-4, atol=1e-6)
    model.zero_grad(set_to_none=True)


@pytest.mark.parametrize("name", ["tiny-llama", "tiny-gpt2"])
def test_packed_examples_do_not_see_each_other(name):
    model, tok = models.load(name, seed=0)
    examples = [encode_pair(tok, p, c, max_length=64) for p, c in [("one two", " three"), ("four", " five six"),
                                                                    ("seven eight nine", " ten")]]
    blocks = pack_examples(examples, max_length=64)
    assert len(blocks) == 1 and blocks[0].n_examples == 3
    with torch.no_grad():
        packed, n_packed = completion_nll(model, collate_sft(blocks, tok.pad_token_id, packed=True))
        alone = [completion_nll(model, collate_sft([e], tok.pad_token_id)) for e in examples]
    assert n_packed == sum(n for _, n in alone)
    assert float(packed) == pytest.approx(sum(float(s) for s, _ in alone), rel=1e-4)


def test_sft_memorises_completions_and_saves_a_loadable_model(tmp_path, tiny_llama):
    _, tok = tiny_llama
    model, _ = models.load("tiny-llama", seed=0)  # a fresh copy: training changes the weights
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in PAIRS))
    cfg = SFTConfig(learning_rate=1e-2, max_steps=30, batch_size=1, grad_accum_steps=2, lr_schedule="constant",
                    progress=False)
    trainer = SFTTrainer(model, tok, train_data=str(data), eval_data=PAIRS, config=cfg)
    before = trainer.evaluate()
    result = trainer.train()
    assert result["eval/loss"] < 0.1 < before["loss"]
    assert result["eval/perplexity"] == pytest.approx(math.exp(result["eval/loss"]))
    losses = [h["loss"] for h in trainer.history if "loss" in h]
    assert losses[-1] < losses[0] / 10
    path = trainer.save(tmp_path / "sft")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sft")]  # no temp dirs left behind
    reloaded, tok2 = models.load(str(path))
    for row in PAIRS:
        enc = tok2([row["prompt"]], return_tensors="pt")
        out = reloaded.generate(**enc, max_new_tokens=4, do_sample=False, pad_token_id=tok2.pad_token_id)
        assert tok2.decode(out[0, enc["input_ids"].shape[1] :]) == row["completion"] + tok2.eos_token


def test_lora_saves_a_merged_plain_model(tmp_path):
    model, tok = models.load("tiny-llama", seed=0)
    cfg = SFTConfig(lora=True, lora_r=4, learning_rate=1e-2, max_steps=3, batch_size=2, progress=False)
    trainer = SFTTrainer(model, tok, train_data=PAIRS, config=cfg)
    trainer.train()
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    assert 0 < trainable < sum(p.numel() for p in trainer.model.parameters()) / 10
    path = trainer.save(tmp_path / "lora")
    plain, _ = models.load(str(path))
    assert type(plain).__name__ == "LlamaForCausalLM"
    ids = torch.tensor([tok("Q: two plus two?\nA:")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=ids).logits, trainer.model(input_ids=ids).logits,
                                   rtol=1e-4, atol=1e-4)


def test_task_rows_use_the_env_prompt_and_reference(tiny_llama):
    _, tok = tiny_llama
    rows = task_rows("textgym/SelfInstruct-v0", tok, split="validation")
    assert len(rows) == 17
    assert all(r["prompt"].endswith("Response:") and r["completion"].startswith(" ") for r in rows)


def test_task_rows_of_synthetic_tasks_have_no_space_after_the_cue(char_tok):
    rows = task_rows("textgym/Copy-v0", char_tok, split="test")
    for r in rows[:20]:
        assert r["prompt"].startswith("copy:") and r["prompt"].endswith("=")
        assert r["completion"] == r["prompt"][len("copy:"):-1]  # the answer follows the "=" directly


def test_dataset_and_chat_rows_are_accepted(tiny_llama):
    import datasets

    model, tok = tiny_llama
    trainer = SFTTrainer(model, tok, train_data=datasets.Dataset.from_list(PAIRS), config=SFTConfig(progress=False))
    assert trainer.stats["train_examples"] == 2
    with pytest.raises(ValueError, match="chat template"):  # tiny-llama's tokenizer has none
        SFTTrainer(model, tok, train_data=[{"messages": [{"role": "user", "content": "hi"},
                                                          {"role": "assistant", "content": "yo"}]}],
                   config=SFTConfig(progress=False))
    with pytest.raises(ValueError, match="'prompt' \\+ 'completion' or 'messages'"):
        SFTTrainer(model, tok, train_data=[{"question": "q"}], config=SFTConfig(progress=False))

"""Real-data tasks: offline loading, prompts within limits, reference scores, splits, errors."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import textgym
from textgym.envs import code, commongen, dialogue, instruction, qa, summarization, translation

REAL = {
    # id: (cue that ends every formatted prompt, metric-reward floor for the reference)
    "textgym/CNNDailyMail-v0": ("\nSummary:", 0.999),
    "textgym/XSum-v0": ("\nSummary:", 0.999),
    "textgym/Translation-en-de-v0": ("\nGerman:", 0.999),
    "textgym/Translation-en-fr-v0": ("\nFrench:", 0.999),
    "textgym/XQuAD-v0": ("\nAnswer:", 0.999),
    "textgym/SelfInstruct-v0": ("\nResponse:", 0.999),
    "textgym/HHDialogue-v0": ("\n\nAssistant:", None),
    "textgym/CommonGen-v0": ("\nSentence:", 0.9),
    "textgym/MBPP-v0": ("\n", 1.0),
    "textgym/HumanEval-v0": ("", 1.0),
}
SYNTHETIC = ["textgym/Copy-v0", "textgym/Reverse-v0", "textgym/Sort-v0", "textgym/Addition-v0", "textgym/TokenCount-v0"]

_ENVS: dict = {}


def _bwrap_problem() -> str:
    from textgym.rewards._launcher import SandboxUnavailable, resolve_bwrap

    try:
        resolve_bwrap(None, 64)
    except SandboxUnavailable as exc:
        return str(exc)
    return ""


needs_bwrap = pytest.mark.skipif(bool(_bwrap_problem()), reason="the code tasks' reward needs bubblewrap "
                                 "(apt-get install bubblewrap; `.ci/run` installs it)")


def make(env_id, tok, **kw):
    """One env per (id, arguments) for the whole module (rewards load once)."""
    key = (env_id, tuple(sorted(kw.items())))
    if key not in _ENVS:
        _ENVS[key] = gym.make(env_id, tokenizer=tok, **kw).unwrapped
    return _ENVS[key]


def play(env, tok, index, text):
    """Reset on sample ``index``, emit the tokens of ``text`` then EOS; return the last step."""
    obs, info = env.reset(options={"sample_index": index})
    assert info["prompt_truncated_tokens"] == 0
    ids = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert len(ids) <= env.max_new_tokens, "choose a sample whose reference fits max_new_tokens"
    for a in ids:
        obs, reward, terminated, truncated, info = env.step(a)
    assert terminated and not truncated
    return reward, info


def test_every_task_is_registered_with_details():
    specs = {s.id: s for s in textgym.list_envs(details=True)}
    assert set(REAL) | set(SYNTHETIC) <= set(specs)
    for env_id in [*REAL, *SYNTHETIC]:
        spec = specs[env_id]
        assert spec.task and spec.reward and spec.license
        assert re.search(r"\d", spec.data), f"{env_id}: data size missing in {spec.data!r}"


def test_tasks_table_lists_every_id():
    table = (Path(textgym.envs.__file__).parent / "TASKS_TABLE.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| `textgym/")]
    assert sorted(re.search(r"`(textgym/[^`]+)`", r).group(1) for r in rows) == textgym.list_envs()


@pytest.mark.parametrize("env_id", list(REAL))
def test_prompts_fit_and_keep_their_cue(env_id, gpt2_tok):
    env = make(env_id, gpt2_tok)
    data = env.data
    assert int(data.truncated_tokens.sum()) == 0, f"{env_id}: prompts were truncated by the env"
    cue = REAL[env_id][0]
    assert all(data.format(data.sample(i)).endswith(cue) for i in range(len(data)))
    for i in range(0, len(data), max(1, len(data) // 20)):  # the prompt slots end with the cue's tokens
        shown = gpt2_tok.decode(data.prompt_ids[i][data.prompt_mask[i] == 1])
        assert shown == data.format(data.sample(i)) and shown.endswith(cue)
    _, info = env.reset(seed=0)
    assert info["prompt_truncated_tokens"] == 0 and info["prompt_text"].endswith(cue)
    assert info["references"], "every real sample has references"


@pytest.mark.parametrize(
    ("env_id", "max_prompt_length"),
    [("textgym/CNNDailyMail-v0", 96), ("textgym/XQuAD-v0", 64), ("textgym/SelfInstruct-v0", 48),
     ("textgym/HHDialogue-v0", 48)],
)
def test_long_inputs_are_cut_by_words_not_tokens(env_id, max_prompt_length, gpt2_tok):
    split = "dialogue" if env_id == "textgym/HHDialogue-v0" else "validation"  # small splits: fast
    env = gym.make(env_id, tokenizer=gpt2_tok, max_prompt_length=max_prompt_length, reward="constant", split=split)
    env = env.unwrapped
    cue = REAL[env_id][0]
    texts = [env.data.format(env.data.sample(i)) for i in range(len(env.data))]
    assert all(t.endswith(cue) for t in texts)
    fitted = env.data.truncated_tokens == 0
    assert fitted.mean() > 0.9, "almost every prompt fits once its long field is cut"
    if env_id == "textgym/HHDialogue-v0":
        assert all(t.startswith(("Human:", "Assistant:")) for t in texts)
    else:
        assert sum(" ..." in t for t in texts) > len(texts) // 5


def test_prompt_format_template_is_measured_when_fitting(gpt2_tok):
    env = gym.make("textgym/XSum-v0", tokenizer=gpt2_tok, max_prompt_length=128, reward="constant",
                   prompt_format="Article: {document}\nTL;DR:").unwrapped
    assert int(env.data.truncated_tokens.sum()) == 0
    _, info = env.reset(seed=1)
    assert info["prompt_text"].startswith("Article: ") and info["prompt_text"].endswith("\nTL;DR:")


@pytest.mark.parametrize(
    ("env_id", "split"),
    [("textgym/CNNDailyMail-v0", "test"), ("textgym/XSum-v0", "validation"),
     ("textgym/Translation-en-de-v0", "test"), ("textgym/Translation-en-fr-v0", "ntrex"),
     ("textgym/XQuAD-v0", "validation"), ("textgym/SelfInstruct-v0", "eval"),
     ("textgym/CommonGen-v0", "validation"), pytest.param("textgym/MBPP-v0", "test", marks=needs_bwrap),
     pytest.param("textgym/HumanEval-v0", "test", marks=needs_bwrap)],
)
def test_reference_gets_the_maximum_and_a_blank_does_not(env_id, split, gpt2_tok):
    env = make(env_id, gpt2_tok, split=split)
    floor = REAL[env_id][1]
    played = 0
    for i in range(len(env.data)):
        ref = env.data.references(i)[0]
        if len(gpt2_tok(ref)["input_ids"]) >= env.max_new_tokens:
            continue
        reward, info = play(env, gpt2_tok, i, ref)
        assert reward >= floor, f"{env_id} sample {i}: reference scored {reward} ({info['reward_components']})"
        assert info["completion"] == ref
        played += 1
        if played == 3:
            break
    assert played == 3
    blank, _ = play(env, gpt2_tok, 0, "")
    assert blank < 0.5


def test_other_reward_by_name(gpt2_tok):
    env = make("textgym/Translation-en-fr-v0", gpt2_tok, reward="sacrebleu")
    reward, _ = play(env, gpt2_tok, 0, env.data.references(0)[0])
    assert reward == pytest.approx(100.0, abs=0.01)  # SacreBLEU's 0-100 scale


@needs_bwrap
def test_code_tasks_fail_wrong_code(gpt2_tok):
    mbpp = make("textgym/MBPP-v0", gpt2_tok, split="test")
    reward, info = play(mbpp, gpt2_tok, 0, "def nothing():\n    return None\n")
    assert reward == 0.0 and info["reward_components"]["tests_total"] == 3
    humaneval = make("textgym/HumanEval-v0", gpt2_tok, split="test")
    reward, _ = play(humaneval, gpt2_tok, 0, "    return None\n")
    assert reward == 0.0


def test_commongen_logs_coverage_and_reference(gpt2_tok):
    env = make("textgym/CommonGen-v0", gpt2_tok, split="validation")
    concepts = env.data.sample(0)["concepts"]
    reward, info = play(env, gpt2_tok, 0, " ".join(concepts))
    comps = info["reward_components"]
    assert comps["coverage"] == 1.0 and comps["reference"] < 1.0
    assert reward == pytest.approx(0.5 * comps["coverage"] + 0.5 * comps["reference"], abs=1e-6)


def test_hh_dialogue_placeholder_reward(gpt2_tok):
    env = make("textgym/HHDialogue-v0", gpt2_tok)
    assert all(env.data.prompt(i).startswith("Human:") for i in range(len(env.data)))
    good = ("I am sorry, but I cannot help with that request. If you are worried about someone, "
            "please talk to a trusted friend or a local support line today.")
    reward, info = play(env, gpt2_tok, 0, good)
    assert reward == pytest.approx(1.0) and set(info["reward_components"]) == {"length", "repetition"}
    loop, _ = play(env, gpt2_tok, 0, "no no no no no no no no no no no no no no no no no no no no")
    blank, _ = play(env, gpt2_tok, 0, "")
    assert loop < 0.1 and blank == 0.0


def test_reward_model_path(tmp_path, gpt2_tok):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(gpt2_tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, num_labels=1, pad_token_id=gpt2_tok.pad_token_id)
    LlamaForSequenceClassification(cfg).save_pretrained(tmp_path)
    gpt2_tok.save_pretrained(tmp_path)
    env = gym.make("textgym/SelfInstruct-v0", tokenizer=gpt2_tok, reward_model=str(tmp_path), max_new_tokens=4)
    env = env.unwrapped
    assert env.reward_fn.name == "reward-model"
    reward, info = play(env, gpt2_tok, 0, "Yes")
    # by hand: the score head on the last token's hidden state of prompt + completion (one row, no padding)
    model = LlamaForSequenceClassification.from_pretrained(tmp_path).eval()
    assert env._completion == "Yes" and env._raw_prompt.endswith("Response:")
    ids = gpt2_tok(env._raw_prompt + "Yes", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        manual = float(model.score(model.model(input_ids=ids).last_hidden_state[0, -1])[0])
    assert abs(manual) > 1e-4 and reward == pytest.approx(manual, rel=1e-4, abs=1e-6) and info["score"] == reward
    with pytest.raises(ValueError, match="either reward= or reward_model="):
        gym.make("textgym/HHDialogue-v0", tokenizer=gpt2_tok, reward="length", reward_model=str(tmp_path))


# ---------------------------------------------------------------------------- splits

# (split size, sha256 of the sample ids in order)[:12]: pins each task's splits.
SPLIT_DIGESTS = {
    ("cnn", "train"): (162, "d58027d6fa9e"), ("cnn", "validation"): (18, "82d69ef2558f"),
    ("cnn", "test"): (20, "1703421d0847"),
    ("xsum", "train"): (151, "0d7f1e368908"), ("xsum", "validation"): (26, "b80f58d05976"),
    ("xsum", "test"): (23, "bfd6853d65c2"),
    ("en-de", "train"): (4008, "cbbde139671d"), ("en-de", "validation"): (513, "44b67ffaf3cd"),
    ("en-de", "tatoeba-test"): (479, "bf601fe19143"), ("en-de", "test"): (1012, "0888c60aac27"),
    ("en-de", "ntrex"): (1997, "a20915772c54"),
    ("en-fr", "train"): (4012, "8bfb986bd2df"), ("en-fr", "validation"): (491, "64d4792a498e"),
    ("en-fr", "tatoeba-test"): (497, "af29d169da24"), ("en-fr", "test"): (1012, "0888c60aac27"),
    ("en-fr", "ntrex"): (1997, "a20915772c54"),
    ("xquad", "train"): (962, "986368d81d46"), ("xquad", "validation"): (102, "9794fd283c25"),
    ("xquad", "test"): (126, "a4643e0c1888"),
    ("self-instruct", "train"): (139, "58b5f006d015"), ("self-instruct", "validation"): (17, "c0f4ee39086d"),
    ("self-instruct", "test"): (19, "28463da08ead"), ("self-instruct", "eval"): (252, "19e3c01c0825"),
    ("hh", "dialogue"): (302, "35e3c61d4635"), ("hh", "train"): (1610, "f2104a09c116"),
    ("hh", "validation"): (201, "f5395dbfd437"), ("hh", "test"): (197, "c303101e362d"),
    ("commongen", "train"): (1497, "c5448f0069af"), ("commongen", "validation"): (418, "168152584238"),
    ("commongen", "test"): (575, "3ee82cd12008"),
    ("mbpp", "train"): (374, "007ae78cd500"), ("mbpp", "validation"): (90, "1ba8435afabd"),
    ("mbpp", "test"): (500, "ac601a75ba8d"), ("mbpp", "prompt"): (10, "d68dbfb354c7"),
    ("humaneval", "test"): (164, "bbae451a24d2"),
}  # fmt: skip


def _samples(task, split, tok):
    if task in ("cnn", "xsum"):
        return summarization.summarization_samples("cnn-dailymail" if task == "cnn" else "xsum", split, tok)
    if task in ("en-de", "en-fr"):
        return translation.translation_samples(task[3:], split, tok)
    if task == "xquad":
        return qa.xquad_samples(split, tok)
    if task == "self-instruct":
        return instruction.self_instruct_samples(split, tok)
    if task == "hh":
        return dialogue.hh_dialogue_samples(split, tok)
    if task == "commongen":
        return commongen.commongen_samples(split)
    if task == "mbpp":
        return code.mbpp_samples(split, tok)
    return code.humaneval_samples()


# the column that must not be shared between two splits of a task
_DISJOINT_KEY = {"cnn": "id", "xsum": "id", "en-de": "source", "en-fr": "source", "xquad": "context",
                 "self-instruct": "id", "hh": "prompt", "commongen": "concept_set", "mbpp": "task_id"}


@pytest.mark.parametrize("task", sorted({t for t, _ in SPLIT_DIGESTS}))
def test_splits_are_disjoint_and_stable(task, gpt2_tok):
    splits = {s: _samples(task, s, gpt2_tok) for t, s in SPLIT_DIGESTS if t == task}
    for split, samples in splits.items():
        key = "task_id" if task in ("mbpp", "humaneval") else "id"
        ids = "\n".join(str(s[key]) for s in samples)
        assert (len(samples), hashlib.sha256(ids.encode()).hexdigest()[:12]) == SPLIT_DIGESTS[(task, split)], split
    if task in _DISJOINT_KEY:
        own = [s for s in splits if s not in ("test", "ntrex")] if task.startswith("en-") else list(splits)
        if task == "self-instruct":
            own.remove("eval")  # a different data set
        seen: dict = {}
        for split in own:
            for sample in splits[split]:
                value = sample[_DISJOINT_KEY[task]]
                if task == "hh":
                    value = dialogue.split_turns(value)[0]  # opening human turn
                assert seen.setdefault(value, split) == split, f"{task}: {value!r:.60} in {seen[value]} and {split}"


def test_hh_dialogue_prompts_never_occur_in_the_pairs(gpt2_tok):
    dialogue_split = dialogue.hh_dialogue_samples("dialogue", gpt2_tok)
    held_out = {dialogue.split_turns(s["prompt"])[0].lower() for s in dialogue_split}
    for split in ("train", "validation", "test"):
        pairs = dialogue.hh_dialogue_samples(split, gpt2_tok)
        assert not held_out & {dialogue.split_turns(s["prompt"])[0].lower() for s in pairs}


# ---------------------------------------------------------------------------- errors


def test_clear_errors(gpt2_tok):
    with pytest.raises(ValueError, match=r"unknown split 'tset'.*Did you mean 'test'"):
        gym.make("textgym/XSum-v0", tokenizer=gpt2_tok, split="tset")
    with pytest.raises(ValueError, match="Valid splits: train, validation, tatoeba-test, test, ntrex"):
        gym.make("textgym/Translation-en-de-v0", tokenizer=gpt2_tok, split="wmt19")
    with pytest.raises(ValueError, match="Valid splits: test"):
        gym.make("textgym/HumanEval-v0", tokenizer=gpt2_tok, split="train")
    with pytest.raises(TypeError, match=r"unknown arguments \['max_length'\]"):
        gym.make("textgym/XQuAD-v0", tokenizer=gpt2_tok, max_length=10)
    with pytest.raises(ValueError, match="max_prompt_length must be a positive int"):
        gym.make("textgym/CommonGen-v0", tokenizer=gpt2_tok, max_prompt_length=0)


def test_own_samples_are_used_as_given(gpt2_tok):
    env = gym.make("textgym/XSum-v0", tokenizer=gpt2_tok, samples=[{"prompt": "Summarize: a b c\nSummary:",
                                                                  "references": ["a b c"]}]).unwrapped
    reward, _ = play(env, gpt2_tok, 0, " a b c")
    assert len(env.data) == 1 and reward == pytest.approx(1.0)


def test_fitted_samples_are_cached_per_tokenizer_and_length(gpt2_tok):
    small = qa.xquad_samples("validation", gpt2_tok, 64)
    again = qa.xquad_samples("validation", gpt2_tok, 64)
    assert again == small and again is not small and again[0] is small[0]
    assert qa.xquad_samples("validation", gpt2_tok, 512) != small
    from textgym.tokenizers import gpt2_bpe_tokenizer

    same = qa.xquad_samples("validation", gpt2_bpe_tokenizer(), 64)  # another object, same content
    assert same[0] is small[0]
    other = qa.xquad_samples("validation", gpt2_bpe_tokenizer(pad="add"), 64)  # one more token: not the same
    assert other == small and other[0] is not small[0]

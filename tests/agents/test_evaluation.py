"""Evaluation: distinct-n by hand, perplexity against a token-by-token loop, text loading, fixed-prompt rollouts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from agent_helpers import char_env, tiny_char
from textgym.agents import LMActorCritic
from textgym.agents.common.evaluation import (
    distinct_n,
    eval_sample_indices,
    evaluate_policy,
    load_perplexity_texts,
    perplexity,
    wilson_interval,
)


# ---------------------------------------------------------------------------------------------- distinct-n
def test_distinct_n_hand_values_on_words():
    texts = ["the cat sat", "the cat ran"]
    # unigrams: the cat sat the cat ran -> 4 unique / 6
    assert distinct_n(texts, 1) == pytest.approx(4 / 6)
    # bigrams: (the cat) (cat sat) (the cat) (cat ran) -> 3 unique / 4
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)
    assert distinct_n(texts, 3) == 1.0  # two different trigrams
    assert distinct_n(texts, 4) == 0.0  # no 4-gram at all
    assert distinct_n([], 1) == 0.0
    assert distinct_n(["  a\tb \n"], 2) == 1.0  # any whitespace splits


def test_distinct_n_never_joins_completions_and_accepts_token_ids():
    assert distinct_n(["a b", "c d"], 2) == 1.0  # 2 bigrams; joining would add (b, c)
    assert distinct_n(["a b", "b a", "a b"], 2) == pytest.approx(2 / 3)
    ids = [[1, 2, 1, 2], [3]]
    assert distinct_n(ids, 1) == pytest.approx(3 / 5)
    assert distinct_n(ids, 2) == pytest.approx(2 / 3)  # (1,2) (2,1) (1,2)
    assert distinct_n([np.array([1, 2, 1, 2]), torch.tensor([3])], 2) == pytest.approx(2 / 3)


def test_distinct_n_rejects_bad_input():
    with pytest.raises(ValueError, match="positive integer"):
        distinct_n(["a"], 0)
    with pytest.raises(TypeError, match="wrap it in a list"):
        distinct_n("the cat", 1)


# ---------------------------------------------------------------------------------------------- perplexity
def loop_perplexity(lm, tok, texts, max_length, bos=True):
    """Token by token, one unpadded sequence at a time: exp(total NLL / predicted tokens)."""
    nll, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = tok(text)["input_ids"]
            if bos and tok.bos_token_id is not None:
                ids = [tok.bos_token_id] + ids
            ids = ids[:max_length]
            for t in range(1, len(ids)):
                logits = lm(input_ids=torch.tensor([ids[:t]])).logits[0, -1].float()
                nll -= float(torch.log_softmax(logits, -1)[ids[t]])
                count += 1
    return math.exp(nll / count), count


def test_perplexity_equals_a_token_by_token_loop_with_bos_padding_and_truncation():
    from textgym.models import load

    model, tok = load("tiny-gpt2", seed=0)  # BOS = EOS = pad = 50256, not added by the tokenizer
    texts = ["hello world", "a much longer sentence about a film that goes on and on and on",
             "hi<|endoftext|>there", "x"]
    assert tok("hi<|endoftext|>there")["input_ids"][1] == tok.pad_token_id  # a real token equal to pad
    expected, count = loop_perplexity(model, tok, texts, max_length=9)
    assert count == 2 + 8 + 3 + 1  # BOS adds one prediction per text; the long one is cut to 9 tokens
    got = perplexity(model, tok, texts, max_length=9, batch_size=3)
    assert got == pytest.approx(expected, rel=1e-5)
    # masking by pad id would drop the <|endoftext|> inside text 3 and change the value
    assert perplexity(model, tok, texts[2:3], max_length=9) == pytest.approx(
        loop_perplexity(model, tok, texts[2:3], 9)[0], rel=1e-5)


def test_perplexity_without_bos_predicts_from_the_second_token():
    model, tok = tiny_char()
    assert tok.bos_token_id is None
    texts = ["hello", "ab", "q"]  # "q" has no token to predict
    expected, count = loop_perplexity(model, tok, texts, max_length=64, bos=False)
    assert count == 4 + 1
    assert perplexity(model, tok, texts, batch_size=2) == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="no text has a token"):
        perplexity(model, tok, ["q", ""])


def test_perplexity_of_an_lm_actor_critic_uses_its_lora_adapter():
    model, tok = tiny_char()
    policy = LMActorCritic(model, tok, lora={"r": 4, "target_modules": ["q_proj", "v_proj"]})
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    texts = ["hello world", "count:3=aaa"]
    with_adapter, _ = loop_perplexity(policy.model, tok, texts, 64, bos=False)
    with policy.model.disable_adapter():
        base, _ = loop_perplexity(policy.model, tok, texts, 64, bos=False)
    assert abs(with_adapter - base) / base > 1e-3  # the adapter matters
    assert perplexity(policy, None, texts) == pytest.approx(with_adapter, rel=1e-5)


def test_perplexity_rejects_bad_arguments():
    model, tok = tiny_char()
    with pytest.raises(ValueError, match="at least one text"):
        perplexity(model, tok, [])
    with pytest.raises(ValueError, match="1024 positions"):
        perplexity(model, tok, ["ab"], max_length=2048)
    with pytest.raises(ValueError, match="max_length must be >= 2"):
        perplexity(model, tok, ["ab"], max_length=1)
    with pytest.raises(ValueError, match="needs a tokenizer"):
        perplexity(model, None, ["ab"])


# ---------------------------------------------------------------------------------------------- texts
def test_load_perplexity_texts_from_a_vendored_set_is_a_seeded_subset_in_data_order():
    from textgym.envs import datasets as tds

    all_test = [t.strip() for t in tds.load("movie-reviews", "test")["text"]]
    got = load_perplexity_texts("movie-reviews", "test", max_texts=5, seed=0)
    assert len(got) == 5 and got == load_perplexity_texts("movie-reviews", "test", max_texts=5, seed=0)
    pos = [all_test.index(t) for t in got]
    assert pos == sorted(pos)  # data order
    assert load_perplexity_texts("movie-reviews", "test", max_texts=5, seed=1) != got
    assert len(load_perplexity_texts("movie-reviews", "test", max_texts=10_000)) == 200  # the whole split
    assert load_perplexity_texts("tatoeba-en-de", max_texts=3)[0] in tds.load("tatoeba-en-de", "test")["en"]
    with pytest.raises(ValueError, match=r"columns: \['question_id', 'category', 'turns', 'reference'\]"):
        load_perplexity_texts("mt-bench")
    with pytest.raises(ValueError, match="unknown split"):
        load_perplexity_texts("movie-reviews", "tset")


def test_load_perplexity_texts_from_files(tmp_path):
    jl = tmp_path / "reviews.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in [{"id": 1, "content": "good film"}, {"id": 2, "content": " "},
                                                    {"id": 3, "content": "bad film"}]))
    assert load_perplexity_texts(str(jl)) == ["good film", "bad film"]  # blank texts dropped
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": 1, "body": "x"}) + "\n")
    with pytest.raises(ValueError, match=r"columns: \['id', 'body'\]"):
        load_perplexity_texts(str(other))
    assert load_perplexity_texts(str(other), column="body") == ["x"]
    txt = tmp_path / "lines.txt"
    txt.write_text("one line\n\ntwo line\n")
    assert load_perplexity_texts(str(txt)) == ["one line", "two line"]
    with pytest.raises(FileNotFoundError):
        load_perplexity_texts(str(tmp_path / "missing.txt"))


# ---------------------------------------------------------------------------------------------- evaluate_policy
STOPS = list(range(1, 16))
PROMPTS = ["ab", "hello", "x", "count:3=", "qq", "zzzzz"]


def frac_a(text):
    return text.count("a") / max(len(text), 1)


def test_eval_sample_indices_cover_the_data_before_repeating():
    idx = eval_sample_indices(6, 14, seed=3)
    assert sorted(idx[:6].tolist()) == list(range(6))
    assert idx[6:12].tolist() == idx[:6].tolist() and idx[12:].tolist() == idx[:2].tolist()
    assert eval_sample_indices(6, 14, seed=3).tolist() == idx.tolist()


def test_evaluate_policy_metrics_match_the_samples_and_repeat_exactly():
    policy = LMActorCritic(*tiny_char())
    env = char_env(4, stop_token_ids=STOPS)
    n = 6  # not a multiple of num_envs: the last batch is cut
    res = evaluate_policy(policy, env, n_episodes=n, seed=5, num_samples=n)
    m, samples = res.metrics, res.samples
    assert m["n_episodes"] == 6.0 and len(samples) == 6
    idx = eval_sample_indices(6, n, 5)
    assert [s["prompt"] for s in samples] == [PROMPTS[i] for i in idx]  # distinct prompts, seeded order
    # the env scored exactly the decoded completions (stop token removed)
    scores = np.array([frac_a(s["completion"]) for s in samples])
    np.testing.assert_allclose([s["score"] for s in samples], scores, atol=1e-6)
    assert m["score_mean"] == pytest.approx(scores.mean(), abs=1e-6)
    assert m["score_std"] == pytest.approx(scores.std(), abs=1e-6)
    assert m["score_ci95"] == pytest.approx(1.959964 * scores.std(ddof=1) / math.sqrt(n), abs=1e-5)
    comps = [s["completion"] for s in samples]
    assert m["distinct_1"] == distinct_n(comps, 1) and m["distinct_2"] == distinct_n(comps, 2)
    assert 1.0 <= m["length_mean"] <= 6.0 and 0.0 <= m["terminated_frac"] <= 1.0
    # the reference is an untrained copy of the policy: the KL is 0 up to the float noise between the cached
    # generation-time forwards and the reference's full forward (an evaluation does not rescore the policy)
    assert abs(m["kl_ref"]) < 1e-5 and abs(m["kl_ref_k3"]) < 1e-6
    # a policy that is its own reference (the pipeline's "before" row) skips the reference pass: exactly 0
    own = LMActorCritic(policy.lm, policy.tokenizer, reference=policy.lm)
    assert own.reference_is_policy and not policy.reference_is_policy
    m_own = evaluate_policy(own, env, n_episodes=n, seed=5, num_samples=n).metrics
    assert m_own["kl_ref"] == 0.0 and m_own["kl_ref_k3"] == 0.0
    assert m_own["score_mean"] == m["score_mean"] and m_own["distinct_2"] == m["distinct_2"]
    # the same prompts and samples however the env was used before
    env.reset(seed=123)
    assert evaluate_policy(policy, env, n_episodes=n, seed=5, num_samples=n).samples == samples
    other = evaluate_policy(policy, env, n_episodes=n, seed=6, num_samples=n).samples
    assert [s["prompt"] for s in other] != [s["prompt"] for s in samples]


def test_evaluate_policy_greedy_is_the_same_per_prompt_for_any_seed_and_lengths_by_hand():
    policy = LMActorCritic(*tiny_char())
    env = char_env(3, stop_token_ids=STOPS)
    a = evaluate_policy(policy, env, n_episodes=6, seed=0, greedy=True, num_samples=6).samples
    b = evaluate_policy(policy, env, n_episodes=6, seed=9, greedy=True, num_samples=6).samples
    assert {s["prompt"]: s["completion"] for s in a} == {s["prompt"]: s["completion"] for s in b}
    every = char_env(3, stop_token_ids=list(range(1, 57)))  # every token stops: one-token episodes
    m = evaluate_policy(policy, every, n_episodes=4, seed=0).metrics
    assert m["length_mean"] == 1.0 and m["terminated_frac"] == 1.0


def test_evaluate_policy_completions_drop_the_stop_token_as_the_env_does():
    def n_chars(prompts, completions, **kw):
        return np.array([len(c) for c in completions], np.float32)

    env = char_env(4, stop_token_ids=STOPS, reward=n_chars)  # ids 3-15 are characters that stop
    res = evaluate_policy(LMActorCritic(*tiny_char()), env, n_episodes=12, seed=0, num_samples=12)
    assert [s["score"] for s in res.samples] == [float(len(s["completion"])) for s in res.samples]
    m = res.metrics
    assert 0.0 < m["terminated_frac"] < 1.0  # both kinds of end occur
    # at most one character per generated token, the stop token excluded (pad / unk / eos decode to nothing)
    assert m["score_mean"] <= m["length_mean"] - m["terminated_frac"] + 1e-9


def test_evaluate_policy_kl_to_a_changed_reference_perplexity_and_options():
    model, tok = tiny_char()
    policy = LMActorCritic(model, tok)
    with torch.no_grad():  # move the policy away from its frozen copy
        for p in policy.lm.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)) * 0.05)
    env = char_env(4, stop_token_ids=STOPS)
    texts = ["hello world", "ab ab"]
    res = evaluate_policy(policy, env, n_episodes=8, seed=0, perplexity_texts=texts, num_samples=3)
    m = res.metrics
    assert m["kl_ref_k3"] > 0.0 and m["kl_ref"] != 0.0
    assert m["perplexity"] == pytest.approx(perplexity(policy, tok, texts), rel=1e-6)
    assert len(res.samples) == 3 and "references" not in res.samples[0]
    no_ref = evaluate_policy(policy, env, n_episodes=8, seed=0, reference=False, num_samples=0)
    assert "kl_ref" not in no_ref.metrics and "kl_ref_k3" not in no_ref.metrics and no_ref.samples == []
    assert no_ref.metrics["score_mean"] == m["score_mean"]
    assert json.loads(res.to_json())["metrics"]["n_episodes"] == 8.0
    with pytest.raises(ValueError, match="n_episodes must be >= 2"):
        evaluate_policy(policy, env, n_episodes=1)


def test_evaluate_policy_returns_references_when_the_data_has_them():
    from textgym import TextGenVectorEnv
    from textgym.tokenizers import char_tokenizer

    tok = char_tokenizer()
    data = [{"prompt": "ab", "references": ["abc"]}, {"prompt": "cd", "references": "cde"}]
    env = TextGenVectorEnv(tok, data, lambda prompts, completions, **kw: np.zeros(len(completions), np.float32),
                           num_envs=2, max_prompt_length=4, max_new_tokens=3, autoreset_mode="Disabled")
    res = evaluate_policy(LMActorCritic(*tiny_char()), env, n_episodes=2, seed=0)
    assert {s["prompt"]: s["references"] for s in res.samples} == {"ab": ["abc"], "cd": ["cde"]}
    assert res.metrics["score_mean"] == 0.0 and res.metrics["score_ci95"] == 0.0


# ---------------------------------------------------------------------------------------------- conversations
def test_wilson_interval_hand_values():
    lo, hi = wilson_interval(0, 10)  # centre = half = (1.96^2 / 20) / (1 + 1.96^2 / 10)
    assert lo == 0.0 and hi == pytest.approx(2 * (1.959963984540054**2 / 20) / (1 + 1.959963984540054**2 / 10))
    assert hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(5, 10)
    assert (lo, hi) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    assert wilson_interval(10, 10) == (pytest.approx(1 - 0.2775, abs=1e-4), 1.0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)


def test_evaluate_policy_on_a_conversation_env_reports_success_turns_and_messages():
    from textgym import MultiTurnVectorEnv
    from textgym.responders import Reply, Responder
    from textgym.tokenizers import char_tokenizer

    class WinOnSecondTurn(Responder):
        """Ends every conversation after the agent's 2nd turn: solved (reward 1) on "win", reward 0 on "lose"."""

        name = "win-on-second-turn"

        def reset(self, sample, rng):
            return sample["prompt"]

        def respond(self, states, conversations):
            out = []
            for s, c in zip(states, conversations):
                k = sum(m["role"] == "assistant" for m in c)
                out.append(Reply(text="again", reward=float(k == 2 and s == "win"), done=k == 2))
            return out

    env = MultiTurnVectorEnv(char_tokenizer(), [{"prompt": "win"}, {"prompt": "lose"}], WinOnSecondTurn(), 2,
                             max_prompt_length=24, max_new_tokens=64, max_turns=3, max_turn_tokens=3,
                             autoreset_mode="Disabled")
    model, tok = tiny_char(seed=0)
    res = evaluate_policy(LMActorCritic(model, tok), env, n_episodes=6, seed=0, num_samples=6, reference=False)
    m = res.metrics
    assert m["success_rate"] == 0.5 and m["turns_mean"] == 2.0 and m["terminated_frac"] == 1.0
    assert (m["success_ci95_low"], m["success_ci95_high"]) == wilson_interval(3, 6)
    assert m["score_mean"] == 0.5
    for s in res.samples:
        msgs = s["messages"]
        assert [x["role"] for x in msgs] == ["user", "assistant", "user", "assistant", "user"]  # the final reply too
        assert msgs[0]["content"] == s["prompt"] and msgs[2]["content"] == msgs[4]["content"] == "again"
        assert s["turns"] == 2
        assert s["solved"] == (s["prompt"] == "win") and s["score"] == float(s["solved"])
        assert s["completion"] == " | ".join(f"{x['role']}: {x['content'].strip()}" for x in msgs[1:])
    # length_mean counts the agent's tokens only: 2 turns of 1..3 tokens, never the replies
    assert 2 <= m["length_mean"] <= 6

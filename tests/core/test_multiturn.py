"""MultiTurnEnv / MultiTurnVectorEnv: token-in/token-out, masks, rewards, episode ends, vector equivalence, faults."""

import copy
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

from textgym import MultiTurnEnv, MultiTurnVectorEnv
from textgym.responders import (
    Reply,
    Responder,
    ResponderError,
    list_responders,
    make_responder,
    register_responder,
)
from textgym.turns import TurnFormat

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SAMPLES = [{"prompt": f"game {i}", "secret": i} for i in range(5)]


@pytest.fixture(scope="module")
def chat_tok(gpt2_tok):
    """GPT-2 BPE plus ChatML markers as special tokens and a ChatML chat template."""
    tok = copy.deepcopy(gpt2_tok)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.chat_template = CHATML
    return tok


class Counter(Responder):
    """Replies 'turn k of game s'; rewards k + secret/10; ends after `stop` agent turns (never if None)."""

    name = "counter"

    def __init__(self, stop=None, text=None):
        self.stop, self.text, self.calls = stop, text, []

    def reset(self, sample, rng):
        return {"secret": sample["secret"], "noise": int(rng.integers(100))}

    def respond(self, states, conversations):
        self.calls.append(len(states))
        out = []
        for s, msgs in zip(states, conversations):
            k = sum(m["role"] == "assistant" for m in msgs)
            text = self.text if self.text is not None else f"turn {k} of game {s['secret']} ({s['noise']})"
            out.append(Reply(text=text, reward=k + s["secret"] / 10, done=self.stop is not None and k >= self.stop))
        return out


def ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_token_in_token_out_never_reencodes_the_context(chat_tok):
    tok = chat_tok
    hel, lo = ids(tok, " hel")[0], ids(tok, "lo")[0]
    end = tok.convert_tokens_to_ids("<|im_end|>")
    # the trap: decode -> encode changes these ids, so a text round trip would be caught
    assert ids(tok, tok.decode([hel, lo])) != [hel, lo]
    reply = "ok <|im_end|> sure"  # a reply that spells a turn marker as text
    env = MultiTurnEnv(tok, SAMPLES, Counter(text=reply), max_prompt_length=24, max_new_tokens=80,
                       max_turns=3, max_turn_tokens=8)  # fmt: skip
    obs, _ = env.reset(seed=0)
    turns = [[hel, lo, end], [lo, hel, hel, end], [hel, end]]
    for turn in turns:
        for a in turn:
            obs, *_ = env.step(a)
    p = 24
    wrapped = ids(tok, "\n<|im_start|>user\n") + tok(reply, add_special_tokens=False, split_special_tokens=True)[
        "input_ids"] + ids(tok, "<|im_end|>\n<|im_start|>assistant\n")  # fmt: skip
    assert end not in wrapped[4:-6]  # the reply's "<|im_end|>" text is not the marker token
    expected = turns[0] + wrapped + turns[1] + wrapped + turns[2]
    n = len(expected)
    np.testing.assert_array_equal(obs["input_ids"][p : p + n], expected)
    np.testing.assert_array_equal(obs["attention_mask"][p : p + n], 1)
    assert obs["attention_mask"][p + n :].sum() == 0
    agent = np.zeros(n, dtype=np.int64)
    agent[:3] = 1
    agent[3 + len(wrapped) : 3 + len(wrapped) + 4] = 1
    agent[n - 2 :] = 1
    np.testing.assert_array_equal(obs["agent_mask"][p : p + n], agent)
    assert obs["agent_mask"][:p].sum() == 0
    # the prompt is the chat template's rendering of the first user message
    prompt = obs["input_ids"][:p][obs["attention_mask"][:p] == 1]
    assert tok.decode(prompt) == "<|im_start|>user\ngame " + str(env.conv.index[0]) + "<|im_end|>\n<|im_start|>assistant\n"


def test_chat_template_turn_markers_and_default_end_of_turn(chat_tok):
    tf = TurnFormat.from_chat_template(chat_tok)
    assert (tf.agent_close, tf.reply_open, tf.reply_close) == (
        "<|im_end|>", "\n<|im_start|>{role}\n", "<|im_end|>\n<|im_start|>assistant\n")  # fmt: skip
    close, opener, closer = tf.marker_ids(chat_tok, "tool")  # another role: rendered by the template itself
    assert chat_tok.decode(opener) == "\n<|im_start|>tool\n" and chat_tok.decode(close) == "<|im_end|>"
    env = MultiTurnEnv(chat_tok, SAMPLES, Counter(), max_prompt_length=16, max_new_tokens=64)
    end = chat_tok.convert_tokens_to_ids("<|im_end|>")
    assert sorted(np.flatnonzero(env.conv.is_eot).tolist()) == sorted([end, chat_tok.eos_token_id])
    # a turn cut at max_turn_tokens gets the closing marker from the env (an env token, agent_mask 0)
    env = MultiTurnEnv(chat_tok, SAMPLES, Counter(), max_prompt_length=16, max_new_tokens=64, max_turn_tokens=2)
    obs, _ = env.reset(seed=0)
    hel = ids(chat_tok, " hel")[0]
    env.step(hel)
    obs, *_ = env.step(hel)
    assert obs["input_ids"][18] == end and obs["agent_mask"][18] == 0 and obs["agent_mask"][16:18].tolist() == [1, 1]


def test_turn_rewards_sit_on_the_last_token_of_their_turn_and_info(gpt2_tok):
    eos = gpt2_tok.eos_token_id
    a = ids(gpt2_tok, " a")[0]
    env = MultiTurnEnv(gpt2_tok, SAMPLES, Counter(stop=3), max_prompt_length=12, max_new_tokens=64,
                       max_turns=5, max_turn_tokens=3)  # fmt: skip
    _, info = env.reset(options={"sample_index": 2})
    assert info["turn"] == 0 and info["messages"] == [{"role": "user", "content": "game 2"}]
    plan = [a, a, eos, a, a, a, eos]  # turn 1 ends by EOS, turn 2 by max_turn_tokens, turn 3 by EOS
    rewards, flags = [], []
    for act in plan:
        _, r, term, trunc, info = env.step(act)
        rewards.append(r)
        flags.append((term, trunc))
    np.testing.assert_allclose(rewards, [0, 0, 1.2, 0, 0, 2.2, 3.2])
    assert flags[-1] == (True, False) and not any(t or u for t, u in flags[:-1])
    assert info["turn"] == 3 and info["turn_rewards"] == pytest.approx([1.2, 2.2, 3.2])
    assert info["score"] == pytest.approx(6.6)
    roles = [m["role"] for m in info["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert info["messages"][1]["content"] == " a a" and info["messages"][3]["content"] == " a a a"


def test_truncated_at_max_turns_vs_terminated_by_the_responder(gpt2_tok):
    eos = gpt2_tok.eos_token_id
    for stop, max_turns, expected in ((2, 5, (True, False)), (None, 2, (False, True)), (2, 2, (True, False))):
        env = MultiTurnEnv(gpt2_tok, SAMPLES, Counter(stop=stop), max_prompt_length=8, max_new_tokens=64,
                           max_turns=max_turns)  # fmt: skip
        env.reset(seed=1)
        _, _, term, trunc, info = env.step(eos)
        assert (term, trunc) == (False, False)
        _, r, term, trunc, info = env.step(eos)
        assert (term, trunc) == expected and info["turn"] == 2 and r > 0
        with pytest.raises(RuntimeError, match="finished episode"):
            env.step(eos)


def test_truncated_when_the_token_budget_runs_out(gpt2_tok):
    a = ids(gpt2_tok, " a")[0]
    # budget 10: a 4-token turn, then the reply (~14 tokens) does not fit -> truncated, nothing appended
    env = MultiTurnEnv(gpt2_tok, SAMPLES, Counter(), max_prompt_length=8, max_new_tokens=10, max_turn_tokens=4)
    env.reset(seed=0)
    for _ in range(3):
        assert env.step(a)[3] is False
    obs, r, term, trunc, info = env.step(a)
    assert (term, trunc) == (False, True) and r == pytest.approx(1 + env.conv.index[0] / 10)
    assert obs["attention_mask"][8:].sum() == 4 and obs["agent_mask"][8:].sum() == 4


def test_vector_env_equals_n_single_envs(gpt2_tok):
    n, kw = 3, dict(max_prompt_length=8, max_new_tokens=48, max_turns=3, max_turn_tokens=4)
    venv = MultiTurnVectorEnv(gpt2_tok, SAMPLES, Counter(stop=2), n, **kw)
    envs = [MultiTurnEnv(gpt2_tok, SAMPLES, Counter(stop=2), **kw) for _ in range(n)]
    vobs, vinfo = venv.reset(seed=5)
    sobs = [e.reset(seed=5 + i) for i, e in enumerate(envs)]
    for i in range(n):
        for k in vobs:
            np.testing.assert_array_equal(vobs[k][i], sobs[i][0][k])
        assert vinfo["messages"][i] == sobs[i][1]["messages"]
    rng = np.random.default_rng(0)
    choices = np.array(ids(gpt2_tok, " a b c") + [gpt2_tok.eos_token_id])
    needs_reset, ends = [False] * n, 0
    for _ in range(60):
        acts = rng.choice(choices, size=n)
        vobs, vrew, vterm, vtrunc, vinfo = venv.step(acts)
        for i, e in enumerate(envs):
            if needs_reset[i]:
                obs, info = e.reset()
                rew, term, trunc, needs_reset[i] = 0.0, False, False, False
            else:
                obs, rew, term, trunc, info = e.step(int(acts[i]))
                needs_reset[i] = term or trunc
                ends += term or trunc
                if vinfo.get("_messages", np.zeros(n, bool))[i]:
                    assert vinfo["messages"][i] == info["messages"]
                if term or trunc:
                    assert vinfo["score"][i] == pytest.approx(info["score"])
            for k in obs:
                np.testing.assert_array_equal(vobs[k][i], obs[k])
            assert (vrew[i], vterm[i], vtrunc[i]) == (pytest.approx(rew), term, trunc)
            assert vinfo["turn"][i] == info["turn"]
    assert ends >= 4
    assert max(venv.responder.calls) >= 1


def test_vector_autoreset_disabled_and_same_step(gpt2_tok):
    eos = gpt2_tok.eos_token_id
    kw = dict(max_prompt_length=8, max_new_tokens=48, max_turns=2)
    venv = MultiTurnVectorEnv(gpt2_tok, SAMPLES, Counter(), 2, autoreset_mode="Disabled", **kw)
    venv.reset(seed=0)
    responder = venv.responder
    venv.step(np.array([eos, ids(gpt2_tok, " a")[0]]))
    assert responder.calls == [1]  # only row 0's turn ended
    _, r, term, trunc, _ = venv.step(np.array([eos, eos]))
    assert responder.calls == [1, 2] and trunc.tolist() == [True, False]
    _, r, term, trunc, _ = venv.step(np.array([eos, eos]))  # row 0 stays finished, row 1 ends now
    assert trunc.tolist() == [True, True] and r[0] == 0 and responder.calls[-1] == 1
    venv = MultiTurnVectorEnv(gpt2_tok, SAMPLES, Counter(), 2, autoreset_mode="SameStep", **kw)
    venv.reset(seed=0)
    venv.step(np.array([eos, eos]))
    obs, _, _, trunc, info = venv.step(np.array([eos, eos]))
    assert trunc.all() and info["_final_obs"].all()
    assert info["final_obs"][0]["agent_mask"].sum() == 2 and obs["agent_mask"].sum() == 0
    assert info["final_info"]["score"][1] > 0 and info["turn"].tolist() == [0, 0]


def test_responder_faults_name_the_responder(gpt2_tok):
    eos = gpt2_tok.eos_token_id
    kw = dict(max_prompt_length=8, max_new_tokens=64)

    class Broken(Responder):
        name = "broken"

        def __init__(self, result):
            self.result = result

        def respond(self, states, conversations):
            if isinstance(self.result, Exception):
                raise self.result
            return [self.result] * len(states)

    cases = [
        (ValueError("boom"), "responder 'broken' raised ValueError: boom"),
        (None, "responder 'broken' \\(row 0\\) returned NoneType"),
        (Reply(text="x", reward=float("nan")), "non-finite reward"),
        (Reply(token_ids=[10**9]), "token ids outside"),
        (Reply(text=b"bytes"), "text of type bytes"),
    ]
    for result, message in cases:
        env = MultiTurnEnv(gpt2_tok, SAMPLES, Broken(result), **kw)
        env.reset(seed=0)
        before = env.conv.obs(0)
        with pytest.raises(ResponderError, match=message):
            env.step(eos)
        # nothing of the bad reply reached the context
        assert env.conv.pos[0] == 1 and env.conv.ids[0, 9:].tolist() == before["input_ids"][9:].tolist()

    class WrongCount(Responder):
        name = "wrong-count"

        def respond(self, states, conversations):
            return []

    env = MultiTurnEnv(gpt2_tok, SAMPLES, WrongCount(), **kw)
    env.reset(seed=0)
    with pytest.raises(ResponderError, match="'wrong-count' must return one reply per row \\(1\\), got 0 items"):
        env.step(eos)


def test_oversized_reply_is_truncated_or_rejected(gpt2_tok):
    eos = gpt2_tok.eos_token_id
    huge = "word " * 20_000  # 100k characters
    kw = dict(max_prompt_length=8, max_new_tokens=64, max_reply_tokens=10, max_reply_chars=200)
    env = MultiTurnEnv(gpt2_tok, SAMPLES, Counter(text=huge), **kw)
    env.reset(seed=0)
    obs, _, term, trunc, info = env.step(eos)
    assert not (term or trunc) and info["reply_truncated"] == 1
    opener, closer = ids(gpt2_tok, " | user: "), ids(gpt2_tok, " | assistant:")
    expected = [eos] + opener + [1573] * 10 + closer  # " word" is id 1573, cut to 10 tokens
    assert ids(gpt2_tok, " word") == [1573]
    np.testing.assert_array_equal(obs["input_ids"][8 : 8 + len(expected)], [eos] + opener + ids(gpt2_tok, huge[:200])[:10] + closer)
    assert obs["attention_mask"][8:].sum() == len(expected)
    env = MultiTurnEnv(gpt2_tok, SAMPLES, Counter(text=huge), reply_overflow="raise", **kw)
    env.reset(seed=0)
    with pytest.raises(ResponderError, match="'counter' \\(row 0\\) returned 100000 characters"):
        env.step(eos)


def test_token_id_replies_are_appended_verbatim(gpt2_tok):
    eos = gpt2_tok.eos_token_id
    env = MultiTurnEnv(gpt2_tok, SAMPLES, lambda sample, msgs: Reply(token_ids=[7, 8, 9]),
                       max_prompt_length=8, max_new_tokens=32)  # fmt: skip
    env.reset(seed=0)
    obs, *_ = env.step(eos)
    opener = ids(gpt2_tok, " | user: ")
    assert obs["input_ids"][9 : 9 + len(opener) + 3].tolist() == opener + [7, 8, 9]


def test_responder_registry():
    @register_responder("test-echo")
    class Echo(Responder):
        name = "test-echo"

        def respond(self, states, conversations):
            return [c[-1]["content"] for c in conversations]

    assert "test-echo" in list_responders() and isinstance(make_responder("test-echo"), Echo)
    with pytest.raises(KeyError, match="unknown responder 'test-ech'.*Did you mean 'test-echo'"):
        make_responder("test-ech")
    with pytest.raises(ValueError, match="already registered"):
        register_responder("test-echo", Counter)


def test_bad_arguments(gpt2_tok):
    with pytest.raises(ValueError, match="max_turns must be a positive int"):
        MultiTurnEnv(gpt2_tok, SAMPLES, Counter(), max_turns=0)
    with pytest.raises(ValueError, match="reply_overflow must be"):
        MultiTurnEnv(gpt2_tok, SAMPLES, Counter(), reply_overflow="ignore")
    env = MultiTurnEnv(gpt2_tok, SAMPLES, Counter())
    env.reset(seed=0)
    with pytest.raises(ValueError, match="not a token id"):
        env.step(len(gpt2_tok))


def test_check_env_gymnasium_and_sb3(gpt2_tok, chat_tok):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    for tok in (gpt2_tok, chat_tok):
        env = MultiTurnEnv(tok, SAMPLES, Counter(stop=2), max_prompt_length=12, max_new_tokens=48,
                           max_turn_tokens=4, render_mode="ansi")  # fmt: skip
        check_env(env, skip_render_check=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error", category=UserWarning)  # any checker complaint fails the test
            sb3_check_env(env, warn=True)
        assert isinstance(env.reset(seed=0)[0]["agent_mask"], np.ndarray)
        assert env.render().startswith(env.conv.prompt_texts[0])


def test_gym_vector_entry_point_registration(gpt2_tok):
    from textgym.registration import build_multiturn_env

    def factory(**kw):
        return gpt2_tok, SAMPLES, Counter(), dict(max_prompt_length=8, max_new_tokens=32, **kw)

    gym.register("textgym/TestConversation-v0", entry_point=lambda **kw: build_multiturn_env(factory, None, **kw),
                 vector_entry_point=lambda num_envs=2, **kw: build_multiturn_env(factory, num_envs, **kw))
    try:
        venv = gym.make_vec("textgym/TestConversation-v0", num_envs=3, vectorization_mode="vector_entry_point",
                            autoreset_mode=AutoresetMode.DISABLED)  # fmt: skip
        assert isinstance(venv, MultiTurnVectorEnv) and venv.num_envs == 3
        assert venv.autoreset_mode == AutoresetMode.DISABLED
        assert isinstance(gym.make("textgym/TestConversation-v0").unwrapped, MultiTurnEnv)
    finally:
        del gym.registry["textgym/TestConversation-v0"]

"""A dialogue whose user is another language model playing a persona: ``textgym/SimulatedUser-v0``.

* **Responder** (:class:`LMUserResponder`, role ``user``): a causal LM (default
  SmolLM2-135M-Instruct; any ``textgym.models.load`` name) that is given the
  persona as its system prompt and the conversation with the roles swapped (the
  agent's turns are its "user" messages), and writes the next user message,
  greedily (so seeded envs repeat) and batched over the rows whose turn ended.
  Its reply is cut to ``max_reply_words`` words; it never sees or changes the
  agent's tokens, only their decoded text.
* **Reward**: each agent turn is scored by ``reward`` (default: the
  placeholder rule reward of ``textgym/HHDialogue-v0``, length + repetition,
  ``[-1, 1]``; pass a reward model for real use); the prompt it sees is the
  last user message.
* **Episode end**: after ``user_turns`` agent turns (default 3) the responder
  ends the conversation (terminated); ``max_turns`` or the token budget truncate.
* **Data**: :data:`PERSONAS`, 12 personas with an opening message each, split
  by hash into 10 ``"train"`` / 2 ``"test"`` (held out).
"""

from __future__ import annotations

from typing import Any

from textgym.envs._multiturn import held_out, multiturn_env_kwargs
from textgym.envs.common import resolve_tokenizer
from textgym.responders import Reply, Responder, register_responder
from textgym.reward_api import as_reward_function, call_reward

__all__ = ["LMUserResponder", "PERSONAS", "simulated_user_samples", "make_simulated_user", "SPLITS"]

SPLITS = ("train", "test")

#: (persona, opening message) pairs, written for this project.
PERSONAS = [
    ("a first-year student who is nervous about an exam next week", "how should i plan my study time this week?"),
    ("a retired teacher who wants to start gardening", "which vegetables are easy to grow for a beginner?"),
    ("a parent looking for a rainy-day activity for two kids", "what can we do at home this afternoon?"),
    ("a runner training for a first half marathon", "how long should my longest run be before the race?"),
    ("a traveller planning three days in a city they do not know", "how do i make the most of a short city trip?"),
    ("a new cat owner whose cat hides all day", "why is my new cat hiding and what should i do?"),
    ("a programmer learning to cook simple dinners", "what is a quick dinner i can make with rice and eggs?"),
    ("a small shop owner who wants more customers", "how can i get more people into my shop?"),
    ("someone who cannot fall asleep before 2 am", "how can i fall asleep earlier?"),
    ("a hobby photographer with a new camera", "how do i take sharper photos at night?"),
    ("a person preparing a short wedding speech", "how do i start a wedding speech for my sister?"),
    ("a volunteer organising a neighbourhood clean-up", "how do i get neighbours to join a clean-up day?"),
]


def simulated_user_samples(split: str = "train") -> list[dict[str, Any]]:
    """One sample per persona of ``split``: ``prompt`` (the opening message) and ``persona``."""
    want_test = split == "test"
    return [{"prompt": opening, "persona": persona} for persona, opening in PERSONAS
            if held_out("simulated-user", persona, fraction=4) == want_test]  # fmt: skip


@register_responder("lm-user")
class LMUserResponder(Responder):
    """A language model playing the user (see the module docstring).

    Args:
        model: a model name/path for :func:`textgym.models.load`, or a loaded ``(model, tokenizer)`` pair.
        reward: scores each agent turn (default: the HHDialogue placeholder reward).
        user_turns: agent turns after which the conversation ends.
        max_reply_tokens: generation length of a user message.
        max_reply_words: the user message is cut to this many words.
    """

    name = "lm-user"

    def __init__(self, model: Any = "smollm2-135m-instruct", reward: Any = None, user_turns: int = 3,
                 max_reply_tokens: int = 48, max_reply_words: int = 40):  # fmt: skip
        if isinstance(model, str):
            from textgym.models import load

            model = load(model)
        self.model, self.tokenizer = model
        self.model.eval()
        if reward is None:
            from textgym.envs.dialogue import placeholder_reward

            reward = placeholder_reward()
        self.reward_fn = as_reward_function(reward)
        self.user_turns, self.max_reply_tokens, self.max_reply_words = user_turns, max_reply_tokens, max_reply_words

    def reset(self, sample, rng):
        return str(sample["persona"])

    def user_prompt(self, persona: str, messages: list[dict[str, str]]) -> str:
        """The text the user model continues: its persona, then the conversation with roles swapped."""
        system = (f"You are {persona}, chatting with an AI assistant. Write the next message you, the person, "
                  "send: one or two short sentences.")  # fmt: skip
        swapped = [{"role": "assistant" if m["role"] == "user" else "user", "content": m["content"]} for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template([{"role": "system", "content": system}, *swapped],
                                                      tokenize=False, add_generation_prompt=True)  # fmt: skip
        lines = [system] + [f"{'you' if m['role'] == 'assistant' else 'assistant'}: {m['content']}" for m in swapped]
        return "\n".join(lines) + "\nyou:"

    def generate(self, prompts: list[str]) -> list[str]:
        """Greedy user messages for ``prompts`` (one batched ``generate``)."""
        import torch

        tok = self.tokenizer
        side, tok.padding_side = tok.padding_side, "left"
        try:
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        finally:
            tok.padding_side = side
        with torch.no_grad():
            out = self.model.generate(**enc, max_new_tokens=self.max_reply_tokens, do_sample=False,
                                      pad_token_id=tok.pad_token_id)  # fmt: skip
        texts = tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        return [" ".join(t.split()[: self.max_reply_words]) or "ok." for t in texts]

    def respond(self, states, conversations):
        users = [next(m["content"] for m in reversed(c[:-1]) if m["role"] == "user") for c in conversations]
        scores, _ = call_reward(self.reward_fn, users, [c[-1]["content"] for c in conversations])
        turns = [sum(m["role"] == "assistant" for m in c) for c in conversations]
        going = [i for i, k in enumerate(turns) if k < self.user_turns]
        texts = self.generate([self.user_prompt(states[i], conversations[i]) for i in going]) if going else []
        out = [Reply(reward=float(s), done=True) for s in scores]
        for i, text in zip(going, texts):
            out[i] = Reply(text=text, reward=float(scores[i]))
        return out


DEFAULTS = {"max_prompt_length": 96, "max_new_tokens": 512, "max_turns": 3, "max_turn_tokens": 96}


def make_simulated_user(tokenizer: Any = "smollm2-135m-instruct", split: str = "train", samples: Any = None,
                        user_model: Any = "smollm2-135m-instruct", reward: Any = None, user_turns: int = 3,
                        **kwargs: Any):  # fmt: skip
    """Factory of ``textgym/SimulatedUser-v0`` (see the module docstring).

    Args:
        user_model: the user LM (name/path or a loaded ``(model, tokenizer)``).
        reward, user_turns: see :class:`LMUserResponder`.
    """
    from textgym.envs._task import check_split

    check_split(split, SPLITS, "textgym/SimulatedUser-v0")
    env = multiturn_env_kwargs("textgym/SimulatedUser-v0", kwargs, DEFAULTS)
    samples = simulated_user_samples(split) if samples is None else samples
    responder = LMUserResponder(user_model, reward=reward, user_turns=user_turns)
    return resolve_tokenizer(tokenizer), samples, responder, env


